/* pkcs12.h - writes PKCS#12 archives with the parameters real OTA servers use.
 *
 * A real device gateway hands out PKCS#12 with a SHA-1 MAC, 1,024 iterations, the key in a
 * 3DES-shrouded key bag and the certificates in a bag encrypted with RC2-40 (the "legacy"
 * OpenSSL defaults) or 3DES. GnuTLS's own writer uses 600,000 iterations (seconds per
 * archive, far too slow for fleets) and wolfSSL's uses a SHA-256 MAC, so this is a small
 * DER writer of our own on GnuTLS's ciphers and hashes. `openssl pkcs12 -info` reads the
 * result; see server/README.md for how to check it.
 */
#ifndef OTA_SERVER_PKCS12_H
#define OTA_SERVER_PKCS12_H

#include <stddef.h>

#include <gnutls/gnutls.h>

/* How the certificate bag is encrypted (the key bag is always 3DES). */
enum p12_cert_cipher {
  P12_CERTS_RC2_40, /* pbeWithSHAAnd40BitRC2-CBC: OpenSSL's -legacy default */
  P12_CERTS_3DES    /* pbeWithSHAAnd3-KeyTripleDES-CBC */
};

/* The iteration count of real servers' archives (PBE and MAC). */
#define P12_ITERATIONS 1024

/* Builds a DER PKCS#12 into *out (free with gnutls_free): key = PKCS#8 PrivateKeyInfo DER,
 * certs[0] = the key's certificate, certs[1..n-1] = CA certificates. Password is UTF-8 ("" for
 * none). Returns 0 or a negative GnuTLS error code. */
int pkcs12_build(const gnutls_datum_t *pkcs8_key, const gnutls_datum_t *certs, size_t ncerts,
                 const char *password, enum p12_cert_cipher cert_cipher, unsigned iterations,
                 gnutls_datum_t *out);

/* Parses "legacy" (RC2-40) or "3des"; returns 0, or -1 for anything else. */
int p12_cert_cipher_parse(const char *name, enum p12_cert_cipher *out);

#endif
