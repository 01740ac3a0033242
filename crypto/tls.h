/* tls.h - TLS credentials with wolfSSL: PKCS#12 archives and certificate facts.
 *
 * Everything here works on memory, not files: the device hands libcurl its key,
 * certificate chain and CA bundle as PEM blobs (so libcurl compares them when it reuses a
 * connection or a TLS session, which keeps virtual devices' identities apart).
 */
#ifndef OTAD_TLS_H
#define OTAD_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../core/error.h"

/* A device's TLS identity as PEM text; every member a NUL-terminated heap string. */
typedef struct tls_creds {
  char *key_pem;  /* private key, always unencrypted PKCS#8 ("-----BEGIN PRIVATE KEY-----")
                     whether RSA, EC or ED25519 */
  char *cert_pem; /* the client certificate alone */
  char *ca_pem;   /* the CA certificate(s) of the archive, concatenated; may be "" */
} tls_creds;

/* Parses a DER PKCS#12 archive (RC2-40, 3DES or AES bags) with password (NULL = "").
 * The client certificate is the one the private key belongs to, wherever it sits in the
 * archive; every other certificate goes to ca_pem in archive order. Returns 0;
 * OTAD_EP12PASS on a wrong password or bad MAC; OTAD_EP12 when it is not PKCS#12, is
 * truncated, cannot be decrypted, or lacks a key or the key's certificate. Detail in eb;
 * on error *out is all NULL. Passwords are taken as ASCII (wolfSSL widens each byte). */
int tls_p12_parse(const uint8_t *der, size_t len, const char *password, tls_creds *out,
                  otad_errbuf *eb);

/* Frees the strings of c (key memory is zeroed first) and resets it. */
void tls_creds_free(tls_creds *c);

/* Facts of the first certificate in a PEM text. */
typedef struct tls_cert_info {
  char cn[256];      /* subject common name, "" if none */
  char subject[512]; /* one-line subject, e.g. "CN=abc, O=fleet" */
  char issuer[512];
  time_t not_before;
  time_t not_after;
} tls_cert_info;

/* Reads the first certificate of pem. Times are UTC seconds since the epoch whatever TZ
 * says (saturated where time_t is 32 bits); names are in certificate order, as openssl's
 * `-nameopt sep_comma_plus_space` prints them. Returns 0 or OTAD_ECERT. */
int tls_cert_info_pem(const char *pem, tls_cert_info *out, otad_errbuf *eb);

/* Checks that key_pem is the private key of the first certificate in cert_pem (the public
 * key is recomputed from the private one, for RSA, EC and ED25519) and that wolfSSL, as
 * libcurl will, accepts the pair. Returns 0 or OTAD_ECERT. */
int tls_key_matches_cert(const char *key_pem, const char *cert_pem, otad_errbuf *eb);

/* Initialises wolfSSL once per process (idempotent). */
void tls_global_init(void);

#endif
