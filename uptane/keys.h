/* keys.h - the primary ECU's Uptane key: generation, public form, KeyId and signatures.
 *
 * Key generation is slow (RSA 2048 takes tens of milliseconds, RSA 4096 seconds), so
 * callers run keys_generate() on the libuv thread pool; nothing here touches the loop and
 * every call uses its own wolfCrypt RNG and key objects, so calls may run concurrently.
 */
#ifndef OTAD_KEYS_H
#define OTAD_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/config.h"
#include "../core/error.h"

typedef struct uptane_key {
  enum uptane_key_type type;
  char *private_pem; /* unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----") for RSA and
                        ED25519 alike, as openssl writes it; this is the text to store. For
                        an RSA key in a PKCS#11 token, the token's URI of it ("pkcs11:...",
                        see p11.h): not secret, and the key itself never leaves the token */
  char *public_text; /* what goes in keyval.public: PEM "-----BEGIN PUBLIC KEY-----..." for
                        RSA, 64 upper-case hex digits for ED25519 */
  char keyid[65];    /* lower-case hex SHA-256 of the canonical JSON string of public_text */
} uptane_key;

/* Generates a new key of the given type. Returns 0 or OTAD_ECRYPTO. Thread-safe. */
int keys_generate(enum uptane_key_type type, uptane_key *out, otad_errbuf *eb);

/* Loads a stored private key (type, public text and KeyId derived). Reads PKCS#8 PEM
 * (RSA or ED25519), traditional "RSA PRIVATE KEY" PEM, aktualizr's ED25519 form (128
 * hex digits: seed then public key), and the PKCS#11 URI of an RSA key in a token opened
 * earlier; out->private_pem is always rewritten as PKCS#8 PEM (a URI stays as it is).
 * RSA keys must be 2048, 3072 or 4096 bits. Returns 0 or OTAD_ECRYPTO. */
int keys_load(const char *private_text, uptane_key *out, otad_errbuf *eb);

/* Loads the RSA key with CKA_ID id_hex (e.g. "01") from the PKCS#11 token of module,
 * logging in with pin: out->private_pem becomes its URI, public_text and keyid come from
 * its public half. Nothing is generated: the key must exist. Returns 0, or OTAD_ECONFIG
 * (module, PIN, missing ID, not RSA) with the reason in eb. keys_load() and keys_sign()
 * accept the URI afterwards (the token stays open in this process). */
int keys_load_pkcs11(const char *module, const char *pin, const char *id_hex, uptane_key *out,
                     otad_errbuf *eb);

/* KeyId of a public key value: lower-case hex SHA-256 over its canonical-JSON string
 * literal: trailing newlines trimmed, then quoted with `"` and `\` backslash-escaped,
 * newline as \n, other control characters as \u00xx (as python's json.dumps and jsoncpp
 * write them); other bytes as they are. out gets 65 bytes. */
void keys_keyid(const char *public_text, char out[65]);

/* The "keytype" the director expects: "RSA" or "ED25519". */
const char *keys_director_type(enum uptane_key_type type);

/* Signs msg with k for Uptane metadata: *sig_b64 gets a heap base64 string (no newlines)
 * and *method a static string: "ed25519" for ED25519 keys, "rsassa-pss-sha256" for RSA
 * (RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt). Parses k->private_pem on each call;
 * a key in a token signs there. Returns 0 or OTAD_ECRYPTO (OTAD_ECONFIG when the token of
 * a URI is not open). Thread-safe. */
int keys_sign(const uptane_key *k, const uint8_t *msg, size_t len, char **sig_b64,
              const char **method, otad_errbuf *eb);

/* Frees the strings of k (private key zeroed first). */
void keys_free(uptane_key *k);

#endif
