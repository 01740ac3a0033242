/* p11.h - private keys that live in a PKCS#11 token (an HSM, a smart card, SoftHSM2 in
 * the tests), used through wolfSSL's PKCS#11 crypto callback: the token signs, the key
 * never leaves it.
 *
 * A token is opened once per process and module (PKCS#11's C_Initialize is per process, so
 * the open tokens are a process-wide table, not a device's): p11_open() loads the module,
 * takes the first initialised token, logs in with the user PIN and registers a wolfCrypt
 * device for it. Everything else names a key by a PKCS#11 URI (RFC 7512) that p11 writes,
 * e.g. "pkcs11:token=otad;serial=0c3a...;id=%02;type=private?module-path=/usr/lib/...so":
 * not a secret (the PIN is never in it), so it is stored where a key file would be
 * (pkey.pem, ecukey.pem) and handed around as the "key" text; the transport sees the
 * "pkcs11:" prefix and signs through the token instead of loading PEM.
 *
 * Calls may come from several threads (the TLS handshake on the loop, signing on the
 * thread pool): each token's session is used under its own lock.
 */
#ifndef OTAD_P11_H
#define OTAD_P11_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"

typedef struct p11_token p11_token;
struct RsaKey; /* wolfCrypt's */

enum p11_key_kind { P11_KEY_RSA = 1, P11_KEY_EC = 2 };

/* Opens the token of module (a path to a PKCS#11 library) and logs in with pin (NULL =
 * no login). A module already opened in this process returns the same token (the PIN
 * must be the same). The token is the first slot's token that is initialised. Errors are
 * OTAD_ECONFIG with a message naming the module or token and the PKCS#11 reason:
 * "PKCS#11 module /x.so: cannot load (...)", "PKCS#11: login to token 'otad' failed:
 * wrong PIN (CKR_PIN_INCORRECT)", ... The token stays open until p11_shutdown(). */
int p11_open(const char *module, const char *pin, p11_token **out, otad_errbuf *eb);

/* The token's label (trailing blanks removed), for messages. */
const char *p11_token_label(const p11_token *t);

/* Whether a key text is a PKCS#11 URI (starts with "pkcs11:") rather than PEM. */
bool p11_is_uri(const char *text);

/* Finds the private key with CKA_ID id_hex (hex digits, e.g. "02") in t and returns its
 * URI (heap) and kind. OTAD_ECONFIG "PKCS#11: no private key with ID 02 on token 'otad'
 * (module ...)" when there is none; a key that may not sign is refused too. */
int p11_key_ref(p11_token *t, const char *id_hex, char **uri, enum p11_key_kind *kind,
                otad_errbuf *eb);

/* Reads the X.509 certificate object with CKA_ID id_hex from t as PEM (heap).
 * OTAD_ECONFIG when there is none; OTAD_ECERT when it is not DER X.509. */
int p11_cert_pem(p11_token *t, const char *id_hex, char **pem, otad_errbuf *eb);

/* Proves that the token key named by uri is the private key of the first certificate in
 * cert_pem: the token signs a random challenge, which is verified in software with the
 * certificate's public key (RSA or EC). Returns 0 or OTAD_ECERT (does not fit), or an
 * OTAD_ECONFIG / OTAD_ECRYPTO error of the token. */
int p11_key_matches_cert(const char *uri, const char *cert_pem, otad_errbuf *eb);

/* Sets up key (uninitialised) as a wolfCrypt RSA key that lives in the token named by
 * uri: private operations go to the token through the crypto callback (wolfCrypt pads,
 * the token does the raw RSA operation, so RSASSA-PSS works with any token that offers
 * CKM_RSA_X_509). *bits gets the modulus size. The key holds only the ID, as wolfSSL's
 * own TLS code does: wolfCrypt asks the token for the size and loads the public half on
 * the first private operation, so use it for one signature (a second would load it again
 * and leak the first copy), and only for moduli of whole bytes (2048, 3072, 4096: the PSS
 * padding is computed before the modulus is known). Free it with wc_FreeRsaKey(). The
 * token must be open. */
int p11_rsa_key(const char *uri, struct RsaKey *key, int *bits, otad_errbuf *eb);

/* The SubjectPublicKeyInfo (DER, heap) of the RSA key named by uri. */
int p11_rsa_public_der(const char *uri, uint8_t **der, size_t *len, otad_errbuf *eb);

/* Gives a WOLFSSL_CTX (as void *, from curl's CURLOPT_SSL_CTX_FUNCTION) the client
 * certificate chain cert_pem and the token key named by uri. The certificate goes first:
 * wolfSSL takes the key's type and size from it, since a key ID carries neither. */
int p11_tls_configure(void *wolfssl_ctx, const char *cert_pem, const char *uri, otad_errbuf *eb);

/* Logs out, closes every token and unloads the modules (at process exit). */
void p11_shutdown(void);

#endif
