/* pki.h - keys and X.509 certificates for a fleet: CAs, the server, devices.
 *
 * Everything is GnuTLS's x509 API, the same library libmicrohttpd serves TLS with. A fleet
 * has three CAs (server, provisioning, device) and each leaf is a key + certificate pair
 * (pki_cred). Functions return 0 or a negative GnuTLS error code (gnutls_strerror()).
 */
#ifndef OTA_SERVER_PKI_H
#define OTA_SERVER_PKI_H

#include <stddef.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

enum pki_key_type { PKI_KEY_EC256, PKI_KEY_RSA2048 };

/* What a leaf certificate is for: its extended key usage and alternative names. */
enum pki_usage { PKI_USAGE_CA, PKI_USAGE_SERVER, PKI_USAGE_CLIENT };

/* A private key with its certificate. Both NULL when empty. */
typedef struct pki_cred {
  gnutls_x509_privkey_t key;
  gnutls_x509_crt_t crt;
} pki_cred;

/* What to put into a new certificate. `sans` (server only): DNS names or IP addresses. */
typedef struct pki_cert_spec {
  const char *cn;
  unsigned days;
  enum pki_usage usage;
  enum pki_key_type key_type;
  const char *const *sans;
  size_t nsans;
} pki_cert_spec;

/* Generates a key and a certificate for it: self-signed when issuer is NULL (CAs), else
 * signed by issuer. */
int pki_cred_create(const pki_cert_spec *spec, const pki_cred *issuer, pki_cred *out);

/* pki_cred_create() with the validity not_before..not_after instead of an hour back to
 * spec->days ahead (an expired certificate for tests). */
int pki_cred_create_dated(const pki_cert_spec *spec, const pki_cred *issuer, time_t not_before,
                          time_t not_after, pki_cred *out);

/* Frees both halves and empties the pair. */
void pki_cred_free(pki_cred *c);

/* Writes the key (PKCS#8 PEM, mode 0600) and the certificate (PEM, 0644). */
int pki_cred_save(const pki_cred *c, const char *key_path, const char *crt_path);

/* Reads a pair written by pki_cred_save(). */
int pki_cred_load(pki_cred *c, const char *key_path, const char *crt_path);

/* The certificate as DER (free out->data with gnutls_free). */
int pki_crt_der(gnutls_x509_crt_t crt, gnutls_datum_t *out);

/* The key as unencrypted PKCS#8 PrivateKeyInfo DER (free with gnutls_free). */
int pki_key_pkcs8_der(gnutls_x509_privkey_t key, gnutls_datum_t *out);

/* Copies the subject CN into buf (NUL-terminated); an error if absent or too long. */
int pki_crt_cn(gnutls_x509_crt_t crt, char *buf, size_t size);

/* Writes the lower-case hex SHA-256 of the DER certificate into out[65]. */
int pki_crt_sha256(gnutls_x509_crt_t crt, char out[65]);

/* Writes a random (version 4) UUID, lower-case, into out[37]. */
int pki_uuid4(char out[37]);

/* Parses "ec256" or "rsa2048"; returns 0, or -1 for anything else. */
int pki_key_type_parse(const char *name, enum pki_key_type *out);

/* The name pki_key_type_parse() accepts for t. */
const char *pki_key_type_name(enum pki_key_type t);

#endif
