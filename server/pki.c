/* pki.c - keys and X.509 certificates on GnuTLS's x509 API.
 *
 * Certificates get random 128-bit serials, subject and authority key identifiers, and the
 * key usages a strict verifier (wolfSSL on the device) expects: CAs keyCertSign + cRLSign,
 * leaves digitalSignature (+ keyEncipherment for RSA) and serverAuth or clientAuth.
 * Validity starts an hour back so a device with a slightly slow clock accepts it.
 */
#include "pki.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>

#include "files.h"

#define CLOCK_SKEW_SECONDS 3600

static int key_generate(enum pki_key_type type, gnutls_x509_privkey_t *out) {
  gnutls_x509_privkey_t key;
  int rc = gnutls_x509_privkey_init(&key);
  if (rc < 0) return rc;
  if (type == PKI_KEY_RSA2048)
    rc = gnutls_x509_privkey_generate(key, GNUTLS_PK_RSA, 2048, 0);
  else
    rc = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
  if (rc < 0) {
    gnutls_x509_privkey_deinit(key);
    return rc;
  }
  *out = key;
  return 0;
}

/* One subjectAltName: an IP address when it parses as one, else a DNS name. */
static int add_san(gnutls_x509_crt_t crt, const char *name) {
  unsigned char ip[16];
  if (inet_pton(AF_INET, name, ip) == 1)
    return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4,
                                                GNUTLS_FSAN_APPEND);
  if (inet_pton(AF_INET6, name, ip) == 1)
    return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16,
                                                GNUTLS_FSAN_APPEND);
  return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name, (unsigned)strlen(name),
                                              GNUTLS_FSAN_APPEND);
}

static int set_extensions(gnutls_x509_crt_t crt, const pki_cert_spec *spec,
                          gnutls_x509_privkey_t key, const pki_cred *issuer) {
  unsigned char id[64];
  size_t id_len = sizeof id;
  int rc = gnutls_x509_privkey_get_key_id(key, 0, id, &id_len);
  if (rc < 0 || (rc = gnutls_x509_crt_set_subject_key_id(crt, id, id_len)) < 0) return rc;
  if (issuer) {
    id_len = sizeof id;
    if ((rc = gnutls_x509_crt_get_subject_key_id(issuer->crt, id, &id_len, NULL)) < 0 ||
        (rc = gnutls_x509_crt_set_authority_key_id(crt, id, id_len)) < 0)
      return rc;
  }
  if (spec->usage == PKI_USAGE_CA) {
    if ((rc = gnutls_x509_crt_set_basic_constraints(crt, 1, -1)) < 0) return rc;
    return gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
  }
  unsigned usage = GNUTLS_KEY_DIGITAL_SIGNATURE;
  if (spec->key_type == PKI_KEY_RSA2048) usage |= GNUTLS_KEY_KEY_ENCIPHERMENT;
  if ((rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
      (rc = gnutls_x509_crt_set_key_usage(crt, usage)) < 0)
    return rc;
  const char *purpose =
      spec->usage == PKI_USAGE_SERVER ? GNUTLS_KP_TLS_WWW_SERVER : GNUTLS_KP_TLS_WWW_CLIENT;
  if ((rc = gnutls_x509_crt_set_key_purpose_oid(crt, purpose, 0)) < 0) return rc;
  for (size_t i = 0; i < spec->nsans; i++)
    if ((rc = add_san(crt, spec->sans[i])) < 0) return rc;
  return 0;
}

int pki_cred_create(const pki_cert_spec *spec, const pki_cred *issuer, pki_cred *out) {
  return pki_cred_create_dated(spec, issuer, 0, 0, out);
}

int pki_cred_create_dated(const pki_cert_spec *spec, const pki_cred *issuer, time_t not_before,
                          time_t not_after, pki_cred *out) {
  gnutls_x509_privkey_t key = NULL;
  gnutls_x509_crt_t crt = NULL;
  int rc = key_generate(spec->key_type, &key);
  if (rc < 0) return rc;
  if ((rc = gnutls_x509_crt_init(&crt)) < 0) {
    gnutls_x509_privkey_deinit(key);
    return rc;
  }
  unsigned char serial[16];
  time_t now = time(NULL);
  bool dated = not_before && not_after;
  if ((rc = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial)) < 0) goto fail;
  serial[0] = (serial[0] & 0x7f) | 0x40; /* positive, and no leading zero to strip */
  if ((rc = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
      (rc = gnutls_x509_crt_set_serial(crt, serial, sizeof serial)) < 0 ||
      (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, spec->cn,
                                          (unsigned)strlen(spec->cn))) < 0 ||
      (rc = gnutls_x509_crt_set_activation_time(crt, dated ? not_before
                                                           : now - CLOCK_SKEW_SECONDS)) < 0 ||
      (rc = gnutls_x509_crt_set_expiration_time(
           crt, dated ? not_after : now + (time_t)spec->days * 86400)) < 0 ||
      (rc = gnutls_x509_crt_set_key(crt, key)) < 0 ||
      (rc = set_extensions(crt, spec, key, issuer)) < 0)
    goto fail;
  if (issuer)
    rc = gnutls_x509_crt_sign2(crt, issuer->crt, issuer->key, GNUTLS_DIG_SHA256, 0);
  else
    rc = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
  if (rc < 0) goto fail;
  out->key = key;
  out->crt = crt;
  return 0;
fail:
  gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(key);
  return rc;
}

void pki_cred_free(pki_cred *c) {
  if (c->crt) gnutls_x509_crt_deinit(c->crt);
  if (c->key) gnutls_x509_privkey_deinit(c->key);
  c->crt = NULL;
  c->key = NULL;
}

int pki_cred_save(const pki_cred *c, const char *key_path, const char *crt_path) {
  gnutls_datum_t key = {0}, crt = {0};
  int rc =
      gnutls_x509_privkey_export2_pkcs8(c->key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &key);
  if (rc < 0) return rc;
  if ((rc = gnutls_x509_crt_export2(c->crt, GNUTLS_X509_FMT_PEM, &crt)) < 0) goto done;
  if (file_write(key_path, key.data, key.size, 0600) != 0 ||
      file_write(crt_path, crt.data, crt.size, 0644) != 0)
    rc = GNUTLS_E_FILE_ERROR;
done:
  if (key.data) {
    memset(key.data, 0, key.size);
    gnutls_free(key.data);
  }
  gnutls_free(crt.data);
  return rc;
}

int pki_cred_load(pki_cred *c, const char *key_path, const char *crt_path) {
  gnutls_datum_t key = {0}, crt = {0};
  c->key = NULL;
  c->crt = NULL;
  int rc = gnutls_load_file(key_path, &key);
  if (rc < 0) return rc;
  if ((rc = gnutls_load_file(crt_path, &crt)) < 0) goto done;
  if ((rc = gnutls_x509_privkey_init(&c->key)) < 0 ||
      (rc = gnutls_x509_privkey_import2(c->key, &key, GNUTLS_X509_FMT_PEM, NULL,
                                        GNUTLS_PKCS_PLAIN)) < 0 ||
      (rc = gnutls_x509_crt_init(&c->crt)) < 0 ||
      (rc = gnutls_x509_crt_import(c->crt, &crt, GNUTLS_X509_FMT_PEM)) < 0)
    pki_cred_free(c);
done:
  if (key.data) {
    memset(key.data, 0, key.size);
    gnutls_free(key.data);
  }
  gnutls_free(crt.data);
  return rc;
}

int pki_crt_der(gnutls_x509_crt_t crt, gnutls_datum_t *out) {
  return gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, out);
}

int pki_key_pkcs8_der(gnutls_x509_privkey_t key, gnutls_datum_t *out) {
  return gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_DER, NULL, GNUTLS_PKCS_PLAIN, out);
}

int pki_crt_cn(gnutls_x509_crt_t crt, char *buf, size_t size) {
  size_t n = size;
  int rc = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &n);
  if (rc < 0) return rc;
  if (n >= size || strlen(buf) != n) /* embedded NULs would let one CN pose as another */
    return GNUTLS_E_ASN1_DER_ERROR;
  return 0;
}

int pki_crt_sha256(gnutls_x509_crt_t crt, char out[65]) {
  unsigned char digest[32];
  size_t n = sizeof digest;
  int rc = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, digest, &n);
  if (rc < 0) return rc;
  if (n != sizeof digest) return GNUTLS_E_INTERNAL_ERROR;
  for (size_t i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", digest[i]);
  return 0;
}

int pki_uuid4(char out[37]) {
  unsigned char b[16];
  int rc = gnutls_rnd(GNUTLS_RND_NONCE, b, sizeof b);
  if (rc < 0) return rc;
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
  return 0;
}

int pki_key_type_parse(const char *name, enum pki_key_type *out) {
  if (strcmp(name, "ec256") == 0)
    *out = PKI_KEY_EC256;
  else if (strcmp(name, "rsa2048") == 0)
    *out = PKI_KEY_RSA2048;
  else
    return -1;
  return 0;
}

const char *pki_key_type_name(enum pki_key_type t) {
  return t == PKI_KEY_RSA2048 ? "rsa2048" : "ec256";
}
