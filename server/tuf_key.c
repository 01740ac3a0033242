/* tuf_key.c - Uptane keys on GnuTLS's abstract key API (see tuf_key.h). */
#include "tuf_key.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "canonical.h"
#include "files.h"

#define RSA_BITS 2048

int tuf_key_type_parse(const char *name, enum tuf_key_type *out) {
  if (strcmp(name, "ed25519") == 0)
    *out = TUF_KEY_ED25519;
  else if (strcmp(name, "rsa") == 0)
    *out = TUF_KEY_RSA;
  else
    return -1;
  return 0;
}

const char *tuf_key_type_name(enum tuf_key_type t) {
  return t == TUF_KEY_RSA ? "rsa" : "ed25519";
}

static void hex(const unsigned char *data, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", data[i]);
}

cJSON *tuf_key_object(const tuf_key *k) {
  cJSON *obj = cJSON_CreateObject(), *keyval = cJSON_CreateObject();
  if (!obj || !keyval || !cJSON_AddStringToObject(keyval, "public", k->public_value) ||
      !cJSON_AddStringToObject(obj, "keytype", tuf_key_type_name(k->type))) {
    cJSON_Delete(obj);
    cJSON_Delete(keyval);
    return NULL;
  }
  cJSON_AddItemToObject(obj, "keyval", keyval);
  return obj;
}

/* Fills public_value and id from priv. */
static int describe(tuf_key *k) {
  gnutls_pubkey_t pub = NULL;
  gnutls_datum_t raw = {0};
  int rc = gnutls_pubkey_init(&pub);
  if (rc < 0) return rc;
  if ((rc = gnutls_pubkey_import_privkey(pub, k->priv, 0, 0)) < 0) goto out;
  if (k->type == TUF_KEY_ED25519) {
    if ((rc = gnutls_pubkey_export_ecc_raw2(pub, NULL, &raw, NULL, 0)) < 0) goto out;
    if (raw.size != 32 || !(k->public_value = malloc(2 * raw.size + 1))) {
      rc = GNUTLS_E_MEMORY_ERROR;
      goto out;
    }
    hex(raw.data, raw.size, k->public_value);
  } else {
    if ((rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_PEM, &raw)) < 0) goto out;
    if (!(k->public_value = strndup((const char *)raw.data, raw.size))) {
      rc = GNUTLS_E_MEMORY_ERROR;
      goto out;
    }
  }
  cJSON *obj = tuf_key_object(k);
  size_t len = 0;
  char *canon = obj ? canonical_json(obj, &len) : NULL;
  unsigned char digest[32];
  cJSON_Delete(obj);
  if (!canon || gnutls_hash_fast(GNUTLS_DIG_SHA256, canon, len, digest) < 0)
    rc = GNUTLS_E_MEMORY_ERROR;
  else
    hex(digest, sizeof digest, k->id);
  free(canon);
out:
  gnutls_free(raw.data);
  gnutls_pubkey_deinit(pub);
  return rc;
}

/* Takes priv (owned from now on) into *out and describes it. */
static int adopt(gnutls_privkey_t priv, tuf_key *out) {
  *out = (tuf_key){.priv = priv};
  int pk = gnutls_privkey_get_pk_algorithm(priv, NULL);
  if (pk == GNUTLS_PK_EDDSA_ED25519)
    out->type = TUF_KEY_ED25519;
  else if (pk == GNUTLS_PK_RSA)
    out->type = TUF_KEY_RSA;
  else {
    tuf_key_free(out);
    return GNUTLS_E_UNKNOWN_PK_ALGORITHM;
  }
  int rc = describe(out);
  if (rc < 0) tuf_key_free(out);
  return rc;
}

int tuf_key_generate(enum tuf_key_type type, tuf_key *out) {
  gnutls_privkey_t priv = NULL;
  int rc = gnutls_privkey_init(&priv);
  if (rc < 0) return rc;
  if (type == TUF_KEY_RSA)
    rc = gnutls_privkey_generate2(priv, GNUTLS_PK_RSA, RSA_BITS, 0, NULL, 0);
  else
    rc = gnutls_privkey_generate2(priv, GNUTLS_PK_EDDSA_ED25519, 256, 0, NULL, 0);
  if (rc < 0) {
    gnutls_privkey_deinit(priv);
    return rc;
  }
  return adopt(priv, out);
}

int tuf_key_save(const tuf_key *k, const char *path) {
  gnutls_x509_privkey_t x = NULL;
  gnutls_datum_t pem = {0};
  int rc = gnutls_privkey_export_x509(k->priv, &x);
  if (rc >= 0 &&
      (rc = gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                              &pem)) >= 0 &&
      file_write(path, pem.data, pem.size, 0600) != 0)
    rc = GNUTLS_E_FILE_ERROR;
  if (pem.data) {
    memset(pem.data, 0, pem.size);
    gnutls_free(pem.data);
  }
  if (x) gnutls_x509_privkey_deinit(x);
  return rc < 0 ? rc : 0;
}

int tuf_key_load(const char *path, tuf_key *out) {
  gnutls_datum_t pem = {0};
  gnutls_privkey_t priv = NULL;
  int rc = gnutls_load_file(path, &pem);
  if (rc >= 0 && (rc = gnutls_privkey_init(&priv)) >= 0 &&
      (rc = gnutls_privkey_import_x509_raw(priv, &pem, GNUTLS_X509_FMT_PEM, NULL, 0)) >= 0) {
    rc = adopt(priv, out);
    priv = NULL;
  }
  if (priv) gnutls_privkey_deinit(priv);
  if (pem.data) {
    memset(pem.data, 0, pem.size);
    gnutls_free(pem.data);
  }
  return rc;
}

void tuf_key_free(tuf_key *k) {
  if (k->priv) gnutls_privkey_deinit(k->priv);
  free(k->public_value);
  *k = (tuf_key){0};
}

int tuf_key_sign(const tuf_key *k, const void *data, size_t len, cJSON *signatures) {
  gnutls_datum_t msg = {(unsigned char *)data, (unsigned)len}, sig = {0}, b64 = {0};
  gnutls_sign_algorithm_t algo =
      k->type == TUF_KEY_RSA ? GNUTLS_SIGN_RSA_PSS_SHA256 : GNUTLS_SIGN_EDDSA_ED25519;
  int rc = gnutls_privkey_sign_data2(k->priv, algo, 0, &msg, &sig);
  if (rc >= 0) rc = gnutls_base64_encode2(&sig, &b64);
  if (rc >= 0) {
    cJSON *obj = cJSON_CreateObject();
    char *text = strndup((const char *)b64.data, b64.size);
    if (!obj || !text || !cJSON_AddStringToObject(obj, "keyid", k->id) ||
        !cJSON_AddStringToObject(obj, "method",
                                 k->type == TUF_KEY_RSA ? "rsassa-pss-sha256" : "ed25519") ||
        !cJSON_AddStringToObject(obj, "sig", text) || !cJSON_AddItemToArray(signatures, obj)) {
      cJSON_Delete(obj);
      rc = GNUTLS_E_MEMORY_ERROR;
    }
    free(text);
  }
  gnutls_free(sig.data);
  gnutls_free(b64.data);
  return rc < 0 ? rc : 0;
}

static int unhex(const char *s, unsigned char *out, size_t n) {
  if (strlen(s) != 2 * n) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned v = 0;
    for (int j = 0; j < 2; j++) {
      int c = tolower((unsigned char)s[2 * i + j]);
      if (!isxdigit(c)) return -1;
      v = v * 16 + (unsigned)(isdigit(c) ? c - '0' : c - 'a' + 10);
    }
    out[i] = (unsigned char)v;
  }
  return 0;
}

enum tuf_verdict tuf_verify(const char *keytype, const char *public_value, const char *method,
                            const char *sig_base64, const void *data, size_t len) {
  if (!keytype || !public_value || !method || !sig_base64) return TUF_UNSUPPORTED;
  int ed = strcasecmp(keytype, "ed25519") == 0, rsa = strcasecmp(keytype, "rsa") == 0;
  int ed_method = strcmp(method, "ed25519") == 0;
  int pss_method = strcmp(method, "rsassa-pss") == 0 || strcmp(method, "rsassa-pss-sha256") == 0;
  if (!(ed && ed_method) && !(rsa && pss_method)) return TUF_UNSUPPORTED;
  gnutls_pubkey_t pub = NULL;
  gnutls_datum_t sig = {0}, b64 = {(unsigned char *)sig_base64, (unsigned)strlen(sig_base64)};
  gnutls_datum_t msg = {(unsigned char *)data, (unsigned)len};
  enum tuf_verdict verdict = TUF_UNSUPPORTED;
  if (gnutls_pubkey_init(&pub) < 0) return TUF_UNSUPPORTED;
  int rc;
  if (ed) {
    unsigned char raw[32];
    gnutls_datum_t x = {raw, sizeof raw};
    rc = unhex(public_value, raw, sizeof raw) == 0
             ? gnutls_pubkey_import_ecc_raw(pub, GNUTLS_ECC_CURVE_ED25519, &x, NULL)
             : GNUTLS_E_INVALID_REQUEST;
  } else {
    gnutls_datum_t pem = {(unsigned char *)public_value, (unsigned)strlen(public_value)};
    rc = gnutls_pubkey_import(pub, &pem, GNUTLS_X509_FMT_PEM);
  }
  if (rc < 0) goto out;
  verdict = TUF_INVALID;
  if (gnutls_base64_decode2(&b64, &sig) < 0) goto out;
  rc = gnutls_pubkey_verify_data2(pub, ed ? GNUTLS_SIGN_EDDSA_ED25519 : GNUTLS_SIGN_RSA_PSS_SHA256,
                                  ed ? 0 : GNUTLS_VERIFY_RSA_PSS_FIXED_SALT_LENGTH, &msg, &sig);
  if (rc >= 0) verdict = TUF_VALID;
out:
  gnutls_free(sig.data);
  gnutls_pubkey_deinit(pub);
  return verdict;
}
