/* tuf_key.h - Uptane signing keys: Ed25519 (the default) or RSA 2048 with RSASSA-PSS.
 *
 * A key is kept as an unencrypted PKCS#8 PEM file (mode 0600) and described in metadata as
 * the TUF key object {"keytype":"ed25519","keyval":{"public":"<64 hex digits>"}} or
 * {"keytype":"rsa","keyval":{"public":"-----BEGIN PUBLIC KEY-----\n..."}}; its key ID is the
 * lower-case hex SHA-256 of that object's canonical JSON. Signatures are
 * {"keyid","method":"ed25519"|"rsassa-pss-sha256","sig":"<base64>"} over the canonical JSON
 * of "signed"; RSA-PSS uses SHA-256, MGF1-SHA-256 and a 32-byte salt (GnuTLS's default for
 * SHA-256, the salt length Uptane clients verify with). The verifier below checks the ECU
 * signatures of device manifests, whose keys come in the ECU registration's form
 * ("RSA" + PEM, "ED25519" + hex of either case).
 */
#ifndef OTA_SERVER_TUF_KEY_H
#define OTA_SERVER_TUF_KEY_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <gnutls/abstract.h>

enum tuf_key_type { TUF_KEY_ED25519, TUF_KEY_RSA };

typedef struct tuf_key {
  enum tuf_key_type type;
  gnutls_privkey_t priv;
  char *public_value; /* keyval.public: hex (Ed25519) or SubjectPublicKeyInfo PEM (RSA) */
  char id[65];        /* key ID: hex SHA-256 of the canonical key object */
} tuf_key;

/* Parses "ed25519" or "rsa": 0, or -1 for anything else. */
int tuf_key_type_parse(const char *name, enum tuf_key_type *out);

/* "ed25519" or "rsa". */
const char *tuf_key_type_name(enum tuf_key_type t);

/* Generates a new key (RSA: 2048 bits). Returns 0 or a GnuTLS error. */
int tuf_key_generate(enum tuf_key_type type, tuf_key *out);

/* Writes the private key to path (PKCS#8 PEM, mode 0600, atomically). 0 or a GnuTLS error. */
int tuf_key_save(const tuf_key *k, const char *path);

/* Reads a key written by tuf_key_save(). Returns 0 or a GnuTLS error. */
int tuf_key_load(const char *path, tuf_key *out);

/* Frees the key and empties *k. */
void tuf_key_free(tuf_key *k);

/* The TUF key object {"keytype","keyval":{"public"}} (new cJSON), or NULL. */
cJSON *tuf_key_object(const tuf_key *k);

/* Signs data; appends {"keyid","method","sig"} to the signatures array. 0 or an error. */
int tuf_key_sign(const tuf_key *k, const void *data, size_t len, cJSON *signatures);

/* Result of tuf_verify(). */
enum tuf_verdict { TUF_VALID, TUF_INVALID, TUF_UNSUPPORTED };

/* Verifies a base64 signature over data with a public key given as an ECU registers it
 * (keytype RSA/ED25519 in any case, public PEM or hex) and a method (ed25519, rsassa-pss,
 * rsassa-pss-sha256). */
enum tuf_verdict tuf_verify(const char *keytype, const char *public_value, const char *method,
                            const char *sig_base64, const void *data, size_t len);

#endif
