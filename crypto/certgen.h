/* certgen.h - device certificates signed by a fleet CA, made with wolfSSL.
 *
 * For implicit (device-credential) provisioning the operator signs each device's
 * certificate with a fleet root CA the server trusts; the certificate's CN is the device
 * ID. This is what otad-cert-provider does at the factory or the developer's desk. Keys
 * and certificates travel as PEM text, the same forms transport/tls.c uses for the agent:
 * the private key as unencrypted PKCS#8 ("-----BEGIN PRIVATE KEY-----").
 * Nothing here keeps state; every call has its own RNG and key objects (thread-safe).
 */
#ifndef OTAD_CERTGEN_H
#define OTAD_CERTGEN_H

#include "../core/error.h"

/* The longest CN (and ST, O) wolfSSL's certificate writer takes. */
#define CERTGEN_MAX_NAME 63
/* The longest validity accepted: a hundred years, as ota-server caps a ttl. */
#define CERTGEN_MAX_DAYS 36500

typedef struct certgen_opts {
  const char *cn; /* subject CN = the device ID; 1..CERTGEN_MAX_NAME printable characters */
  const char *c;  /* subject C, two letters; NULL = none */
  const char *st; /* subject ST; NULL = none */
  const char *o;  /* subject O; NULL = none */
  int days;       /* valid until days from now, 1..CERTGEN_MAX_DAYS (from an hour ago) */
  int rsa_bits;   /* 0: EC P-256 device key; else an RSA key of 2048, 3072 or 4096 bits */
} certgen_opts;

/* Checks that a fleet CA can sign device certificates: ca_cert_pem's first certificate
 * is readable, ca_key_pem is an unencrypted RSA, EC or ED25519 private key (PKCS#8,
 * PKCS#1 or SEC1 PEM) and is the key of that certificate, the certificate says CA:TRUE
 * (basicConstraints), its keyUsage (if present) allows keyCertSign, and it is valid now.
 * Returns 0 or OTAD_ECERT with the first problem found in eb. */
int certgen_check_ca(const char *ca_cert_pem, const char *ca_key_pem, otad_errbuf *eb);

/* Generates a device key and an X.509 v3 certificate for it signed by the fleet CA
 * (checked first, as certgen_check_ca does): subject [C, ST, O,] CN; issuer = the CA's
 * subject, byte for byte; a random 128-bit serial; basicConstraints CA:FALSE; keyUsage
 * digitalSignature (+ keyEncipherment for RSA); extendedKeyUsage clientAuth; subject and
 * authority key identifiers; signed with SHA-256 (SHA-384/512 for P-384/P-521 CA keys,
 * Ed25519 for an Ed25519 CA). *key_pem (PKCS#8 PEM) and *cert_pem get heap strings the
 * caller frees (zero the key first). Returns 0, OTAD_EINVAL (bad opts), OTAD_ECERT (the
 * CA), OTAD_ECRYPTO or OTAD_ENOMEM; on error both outputs are NULL. */
int certgen_device(const char *ca_cert_pem, const char *ca_key_pem, const certgen_opts *o,
                   char **key_pem, char **cert_pem, otad_errbuf *eb);

/* Verifies with wolfSSL that the first certificate of cert_pem is signed by a certificate
 * of ca_pem and is valid now. Returns 0 or OTAD_ECERT. */
int certgen_verify(const char *cert_pem, const char *ca_pem, otad_errbuf *eb);

#endif
