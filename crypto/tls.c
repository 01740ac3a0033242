/* tls.c - TLS credentials with wolfSSL: PKCS#12 archives and certificate facts.
 *
 * A device's TLS identity reaches otad as a DER PKCS#12 archive (the fleet's provisioning
 * archive, then the one the server returns for the device). wolfCrypt's PKCS#12 parser
 * decrypts it (RC2-40, 3DES and PBES2/AES bags) and hands back DER; here it becomes the
 * PEM text libcurl gets as blobs. The private key is always written as unencrypted PKCS#8
 * ("-----BEGIN PRIVATE KEY-----"), whatever its algorithm, because wolfSSL, libcurl and
 * openssl all read that form (it is what openssl's PEM_write_PrivateKey writes). Every
 * buffer of ours that held key material is zeroed before it is freed.
 */
#include "tls.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pem.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/pkcs12.h>
#include <wolfssl/wolfcrypt/rsa.h>

static pthread_once_t tls__once = PTHREAD_ONCE_INIT;

static void tls__init_once(void) {
  wolfSSL_Init();
}

void tls_global_init(void) {
  pthread_once(&tls__once, tls__init_once);
}

/* Frees a buffer that held secrets, zeroing it first. */
static void tls__free_secret(void *p, size_t len) {
  if (p) {
    explicit_bzero(p, len);
    free(p);
  }
}

/* Appends src to the heap string *dst (which may be NULL). Returns 0 or -1. */
static int tls__append(char **dst, const char *src) {
  size_t a = *dst ? strlen(*dst) : 0, b = strlen(src);
  char *s = realloc(*dst, a + b + 1);
  if (!s) return -1;
  memcpy(s + a, src, b + 1);
  *dst = s;
  return 0;
}

/* PKCS#8 DER of a traditional private key (PKCS#1 RSA, SEC1 EC, or an ED25519 key in
 * either form). Returns the heap buffer (caller zeroes and frees) and sets *out_len, or
 * NULL with the reason in eb. */
static uint8_t *tls__key_to_pkcs8(const uint8_t *der, word32 len, word32 *out_len,
                                  otad_errbuf *eb) {
  uint8_t *out = NULL;
  word32 idx = 0, sz = 0;
  int ret;

  RsaKey rsa;
  if (wc_InitRsaKey(&rsa, NULL) == 0) {
    ret = wc_RsaPrivateKeyDecode(der, &idx, &rsa, len);
    wc_FreeRsaKey(&rsa);
    if (ret == 0) {
      if (wc_CreatePKCS8Key(NULL, &sz, (byte *)der, len, RSAk, NULL, 0) != LENGTH_ONLY_E ||
          !(out = malloc(sz))) {
        otad_fail(eb, OTAD_ENOMEM, "cannot wrap the RSA key as PKCS#8");
        return NULL;
      }
      ret = wc_CreatePKCS8Key(out, &sz, (byte *)der, len, RSAk, NULL, 0);
      if (ret == ASN_PARSE_E && sz >= len) { /* it had a PKCS#8 header already */
        memcpy(out, der, len);
        ret = (int)len;
      }
      if (ret <= 0) {
        tls__free_secret(out, sz);
        otad_fail(eb, OTAD_EP12, "cannot wrap the RSA key as PKCS#8: %s", wc_GetErrorString(ret));
        return NULL;
      }
      *out_len = (word32)ret;
      return out;
    }
  }

  ecc_key ecc;
  idx = 0;
  if (wc_ecc_init(&ecc) == 0) {
    ret = wc_EccPrivateKeyDecode(der, &idx, &ecc, len);
    if (ret == 0 && ecc.type == ECC_PRIVATEKEY_ONLY) ret = wc_ecc_make_pub(&ecc, NULL);
    if (ret == 0) {
      sz = 0;
      if (wc_EccKeyToPKCS8(&ecc, NULL, &sz) != LENGTH_ONLY_E || !(out = malloc(sz))) {
        wc_ecc_free(&ecc);
        otad_fail(eb, OTAD_ENOMEM, "cannot wrap the EC key as PKCS#8");
        return NULL;
      }
      ret = wc_EccKeyToPKCS8(&ecc, out, &sz);
      wc_ecc_free(&ecc);
      if (ret <= 0) {
        tls__free_secret(out, sz);
        otad_fail(eb, OTAD_EP12, "cannot wrap the EC key as PKCS#8: %s", wc_GetErrorString(ret));
        return NULL;
      }
      *out_len = (word32)ret;
      return out;
    }
    wc_ecc_free(&ecc);
  }

  ed25519_key ed;
  idx = 0;
  if (wc_ed25519_init(&ed) == 0) {
    ret = wc_Ed25519PrivateKeyDecode(der, &idx, &ed, len);
    if (ret == 0) {
      sz = 64; /* 48 bytes; wolfSSL 5.7.2 cannot tell the size of this one */
      ret = (out = malloc(sz)) ? wc_Ed25519PrivateKeyToDer(&ed, out, sz) : MEMORY_E;
    }
    wc_ed25519_free(&ed);
    if (out && ret > 0) {
      *out_len = (word32)ret;
      return out;
    }
    tls__free_secret(out, sz);
  }
  otad_fail(eb, OTAD_EP12,
            "the PKCS#12 private key is not an RSA, EC or ED25519 key wolfSSL can read");
  return NULL;
}

/* Whether a private key (DER: PKCS#8, PKCS#1, SEC1) belongs to a certificate (DER):
 * 1 yes, 0 no, -1 when either cannot be read. The public key is computed from the private
 * one, not taken from beside it: wolfSSL 5.7.2 built without WOLFSSL_VALIDATE_ECC_IMPORT
 * (as here) checks only that an EC key is on the certificate's curve, so its
 * check_private_key and its PKCS#12 key-to-certificate matching accept any EC key. */
static int tls__key_fits_cert(const uint8_t *key, word32 key_len, const uint8_t *cert,
                              word32 cert_len) {
  uint8_t spki[2048];
  int spki_len = (int)sizeof(spki);
  WOLFSSL_X509 *x = wolfSSL_X509_d2i(NULL, cert, (int)cert_len);
  if (!x) return -1;
  int ok = wolfSSL_X509_get_pubkey_buffer(x, spki, &spki_len) == WOLFSSL_SUCCESS;
  wolfSSL_X509_free(x);
  if (!ok) return -1;

  int fits = -1;
  word32 idx = 0, pidx = 0;
  RsaKey *priv_rsa = malloc(sizeof(RsaKey)), *pub_rsa = malloc(sizeof(RsaKey));
  if (priv_rsa && pub_rsa && wc_InitRsaKey(priv_rsa, NULL) == 0) {
    if (wc_InitRsaKey(pub_rsa, NULL) == 0) {
      if (wc_RsaPrivateKeyDecode(key, &idx, priv_rsa, key_len) == 0) {
        uint8_t n1[1024], e1[16], n2[1024], e2[16];
        word32 n1_len = sizeof(n1), e1_len = sizeof(e1), n2_len = sizeof(n2), e2_len = sizeof(e2);
        fits = wc_RsaPublicKeyDecode(spki, &pidx, pub_rsa, (word32)spki_len) == 0 &&
               wc_RsaFlattenPublicKey(priv_rsa, e1, &e1_len, n1, &n1_len) == 0 &&
               wc_RsaFlattenPublicKey(pub_rsa, e2, &e2_len, n2, &n2_len) == 0 && n1_len == n2_len &&
               e1_len == e2_len && memcmp(n1, n2, n1_len) == 0 && memcmp(e1, e2, e1_len) == 0;
      }
      wc_FreeRsaKey(pub_rsa);
    }
    wc_FreeRsaKey(priv_rsa);
  }
  if (priv_rsa) explicit_bzero(priv_rsa, sizeof(RsaKey));
  free(priv_rsa);
  free(pub_rsa);
  if (fits >= 0) return fits;

  ecc_key priv_ec, pub_ec;
  idx = pidx = 0;
  if (wc_ecc_init(&priv_ec) == 0) {
    if (wc_ecc_init(&pub_ec) == 0) {
      if (wc_EccPrivateKeyDecode(key, &idx, &priv_ec, key_len) == 0) {
        ecc_point *computed = wc_ecc_new_point();
        fits = computed && wc_EccPublicKeyDecode(spki, &pidx, &pub_ec, (word32)spki_len) == 0 &&
               priv_ec.dp && pub_ec.dp && priv_ec.dp->id == pub_ec.dp->id &&
               wc_ecc_make_pub(&priv_ec, computed) == 0 &&
               wc_ecc_cmp_point(computed, &pub_ec.pubkey) == MP_EQ;
        wc_ecc_del_point(computed);
      }
      wc_ecc_free(&pub_ec);
    }
    wc_ecc_free(&priv_ec);
  }
  if (fits >= 0) return fits;

  ed25519_key priv_ed, pub_ed;
  idx = pidx = 0;
  if (wc_ed25519_init(&priv_ed) == 0) {
    if (wc_ed25519_init(&pub_ed) == 0) {
      uint8_t seed[ED25519_KEY_SIZE], p1[ED25519_PUB_KEY_SIZE], p2[ED25519_PUB_KEY_SIZE];
      word32 seed_len = sizeof(seed), p2_len = sizeof(p2);
      ed25519_key tmp;
      if (wc_Ed25519PrivateKeyDecode(key, &idx, &priv_ed, key_len) == 0 &&
          wc_ed25519_export_private_only(&priv_ed, seed, &seed_len) == 0 &&
          wc_ed25519_init(&tmp) == 0) {
        fits = wc_ed25519_import_private_only(seed, seed_len, &tmp) == 0 &&
               wc_ed25519_make_public(&tmp, p1, sizeof(p1)) == 0 &&
               wc_Ed25519PublicKeyDecode(spki, &pidx, &pub_ed, (word32)spki_len) == 0 &&
               wc_ed25519_export_public(&pub_ed, p2, &p2_len) == 0 && p2_len == sizeof(p1) &&
               memcmp(p1, p2, sizeof(p1)) == 0;
        wc_ed25519_free(&tmp);
      }
      explicit_bzero(seed, sizeof(seed));
      wc_ed25519_free(&pub_ed);
    }
    wc_ed25519_free(&priv_ed);
  }
  return fits;
}

void tls_creds_free(tls_creds *c) {
  if (!c) return;
  if (c->key_pem) tls__free_secret(c->key_pem, strlen(c->key_pem));
  free(c->cert_pem);
  free(c->ca_pem);
  memset(c, 0, sizeof(*c));
}

/* ---- iteration counts ----
 * wolfSSL derives keys for every iteration count an archive asks for; one asking for
 * billions stalls the device (found by fuzz_p12). Before parsing, a DER walk finds each
 * {salt OCTET STRING, iterations INTEGER} pair (PBE parameters) and each MacData
 * {DigestInfo, salt, iterations}, descending into constructed values and into OCTET
 * STRINGs that hold DER (the PKCS#7 data of an authSafe), and refuses large counts. */

#define P12_MAX_ITERATIONS 1000000 /* GnuTLS writes 600,000; real servers 1,024-2,048 */

typedef struct der_tlv {
  uint8_t tag;
  const uint8_t *val;
  size_t len;
} der_tlv;

/* Reads one TLV at *p (definite lengths only); 0 on success. */
static int der_next(const uint8_t **p, const uint8_t *end, der_tlv *t) {
  if (end - *p < 2) return -1;
  t->tag = (*p)[0];
  size_t n = (*p)[1], i = 2;
  if (n & 0x80) {
    size_t k = n & 0x7f;
    if (k == 0 || k > 4 || (size_t)(end - *p) < 2 + k) return -1;
    n = 0;
    for (size_t j = 0; j < k; j++)
      n = (n << 8) | (*p)[2 + j];
    i += k;
  }
  if ((size_t)(end - *p) - i < n) return -1;
  t->val = *p + i;
  t->len = n;
  *p += i + n;
  return 0;
}

/* The value of a small non-negative INTEGER, or ULONG_MAX when it does not fit. */
static unsigned long der_uint(const der_tlv *t) {
  if (t->len == 0 || t->len > 8 || (t->val[0] & 0x80)) return ULONG_MAX;
  unsigned long v = 0;
  for (size_t i = 0; i < t->len; i++) {
    if (v > (ULONG_MAX >> 8)) return ULONG_MAX;
    v = (v << 8) | t->val[i];
  }
  return v;
}

/* True when an OCTET STRING's content is exactly one DER SEQUENCE (PKCS#7 data), not
 * ciphertext that happens to start like one. */
static int holds_der(const der_tlv *t) {
  const uint8_t *q = t->val;
  der_tlv inner;
  return t->len > 2 && t->val[0] == 0x30 && der_next(&q, t->val + t->len, &inner) == 0 &&
         q == t->val + t->len;
}

/* Largest iteration count among the values in [p, end); each value may run up to limit,
 * the end of the archive, since wolfSSL's reader is as lenient (a MacData INTEGER that
 * overruns its SEQUENCE is still read). depth bounds the walk. */
static unsigned long max_iterations(const uint8_t *p, const uint8_t *end, const uint8_t *limit,
                                    int depth) {
  unsigned long most = 0;
  if (depth > 24) return 0;
  der_tlv kids[4];
  int n = 0;
  const uint8_t *q = p;
  while (q < end) {
    der_tlv t;
    if (der_next(&q, limit, &t) != 0) break;
    if (n < 4) kids[n] = t;
    n++;
    unsigned long inner = 0;
    if (t.tag & 0x20)
      inner = max_iterations(t.val, t.val + t.len, limit, depth + 1);
    else if (t.tag == 0x04 && holds_der(&t))
      inner = max_iterations(t.val, t.val + t.len, limit, depth + 1);
    if (inner > most) most = inner;
  }
  /* {salt, iterations} or {digestInfo, salt, iterations} at this level */
  if ((n == 2 && kids[0].tag == 0x04 && kids[1].tag == 0x02) ||
      (n == 3 && kids[0].tag == 0x30 && kids[1].tag == 0x04 && kids[2].tag == 0x02)) {
    unsigned long it = der_uint(&kids[n - 1]);
    if (it > most) most = it;
  }
  return most;
}

int tls_p12_parse(const uint8_t *der, size_t len, const char *password, tls_creds *out,
                  otad_errbuf *eb) {
  memset(out, 0, sizeof(*out));
  if (!der || len == 0) return otad_fail(eb, OTAD_EP12, "PKCS#12 archive is empty");
  if (len > 0x7fffffff) return otad_fail(eb, OTAD_EP12, "PKCS#12 archive is too large");
  tls_global_init();
  unsigned long iters = max_iterations(der, der + len, der + len, 0);
  if (iters > P12_MAX_ITERATIONS)
    return otad_fail(eb, OTAD_EP12,
                     "PKCS#12 asks for %lu key-derivation iterations (at most %d are accepted): "
                     "refused, it would stall the device",
                     iters, P12_MAX_ITERATIONS);

  WC_PKCS12 *p12 = wc_PKCS12_new();
  if (!p12) return otad_fail(eb, OTAD_ENOMEM, "out of memory reading PKCS#12");
  int ret = wc_d2i_PKCS12(der, (word32)len, p12);
  if (ret != 0) {
    wc_PKCS12_free(p12);
    return otad_fail(eb, OTAD_EP12,
                     "not a PKCS#12 archive, or a truncated one (%zu bytes; wolfSSL: %s)", len,
                     wc_GetErrorString(ret));
  }

  byte *key = NULL, *cert = NULL;
  word32 key_len = 0, cert_len = 0;
  WC_DerCertList *cas = NULL;
  ret = wc_PKCS12_parse(p12, password ? password : "", &key, &key_len, &cert, &cert_len, &cas);
  wc_PKCS12_free(p12);
  if (ret == MAC_CMP_FAILED_E)
    return otad_fail(eb, OTAD_EP12PASS,
                     "wrong password for PKCS#12 (or damaged archive: MAC check failed)");
  if (ret != 0)
    return otad_fail(eb, OTAD_EP12,
                     "cannot decrypt or parse the PKCS#12 contents (wolfSSL: %s); a damaged "
                     "archive, an unsupported algorithm, or a wrong password on an archive "
                     "without MAC",
                     wc_GetErrorString(ret));

  /* wolfSSL's choice of client certificate is re-checked: it takes the first certificate
   * on the key's curve (see tls__key_fits_cert), so a CA certificate listed before the
   * device's would win. The certificate the key really fits is the client certificate;
   * every other one, in archive order, is a CA certificate. */
  WC_DerCertList first = {.buffer = cert, .bufferSz = cert_len, .next = cas};
  WC_DerCertList *all = cert ? &first : cas, *chosen = NULL;
  for (WC_DerCertList *c = all; key && c && !chosen; c = c->next)
    if (tls__key_fits_cert(key, key_len, c->buffer, c->bufferSz) == 1) chosen = c;

  int err = 0;
  if (!key) {
    err = otad_fail(eb, OTAD_EP12, "PKCS#12 archive holds no private key");
  } else if (!chosen) {
    err = otad_fail(eb, OTAD_EP12, "PKCS#12 archive holds no certificate for its private key");
  }

  uint8_t *pkcs8 = NULL;
  word32 pkcs8_len = 0;
  if (!err && !(pkcs8 = tls__key_to_pkcs8(key, key_len, &pkcs8_len, eb))) err = OTAD_EP12;
  if (!err && !(out->key_pem = pem_from_der(pkcs8, pkcs8_len, PKCS8_PRIVATEKEY_TYPE)))
    err = otad_fail(eb, OTAD_ENOMEM, "cannot write the private key as PEM");
  if (!err && !(out->cert_pem = pem_from_der(chosen->buffer, chosen->bufferSz, CERT_TYPE)))
    err = otad_fail(eb, OTAD_ENOMEM, "cannot write the certificate as PEM");
  if (!err && !(out->ca_pem = calloc(1, 1))) err = otad_fail(eb, OTAD_ENOMEM, "out of memory");
  for (WC_DerCertList *c = all; !err && c; c = c->next) {
    if (c == chosen) continue;
    char *pem = pem_from_der(c->buffer, c->bufferSz, CERT_TYPE);
    if (!pem || tls__append(&out->ca_pem, pem) != 0)
      err = otad_fail(eb, OTAD_ENOMEM, "cannot write a CA certificate as PEM");
    free(pem);
  }

  if (pkcs8) tls__free_secret(pkcs8, pkcs8_len);
  if (key) {
    explicit_bzero(key, key_len);
    XFREE(key, NULL, DYNAMIC_TYPE_PUBLIC_KEY);
  }
  if (cert) XFREE(cert, NULL, DYNAMIC_TYPE_PKCS);
  wc_FreeCertList(cas, NULL);
  if (err) tls_creds_free(out);
  return err;
}

/* Seconds since the epoch of a UTC calendar date (a timegm() that needs no TZ games). */
static time_t tls__utc_seconds(const struct tm *tm) {
  long long y = tm->tm_year + 1900LL, m = tm->tm_mon + 1, d = tm->tm_mday;
  y -= m <= 2;
  long long era = (y >= 0 ? y : y - 399) / 400;
  long long yoe = y - era * 400;
  long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  long long days = era * 146097 + doe - 719468;
  long long secs = days * 86400 + tm->tm_hour * 3600LL + tm->tm_min * 60LL + tm->tm_sec;
  /* A 32-bit time_t cannot hold certificates valid past 2038 ("until 9999" is common):
   * saturate rather than wrap into the past. */
  if (sizeof(time_t) < sizeof(long long)) {
    if (secs > INT32_MAX) return (time_t)INT32_MAX;
    if (secs < INT32_MIN) return (time_t)INT32_MIN;
  }
  return (time_t)secs;
}

/* One-line "CN=abc, O=fleet" form of a name, in the certificate's order. */
static void tls__name_oneline(WOLFSSL_X509_NAME *name, char *buf, size_t size) {
  size_t n = 0;
  buf[0] = '\0';
  int count = name ? wolfSSL_X509_NAME_entry_count(name) : 0;
  for (int i = 0; i < count; i++) {
    WOLFSSL_X509_NAME_ENTRY *e = wolfSSL_X509_NAME_get_entry(name, i);
    if (!e) continue;
    WOLFSSL_ASN1_STRING *v = wolfSSL_X509_NAME_ENTRY_get_data(e);
    const char *sn = wolfSSL_OBJ_nid2sn(wolfSSL_OBJ_obj2nid(wolfSSL_X509_NAME_ENTRY_get_object(e)));
    if (!v) continue;
    int w = snprintf(buf + n, size - n, "%s%s=%.*s", n ? ", " : "", sn ? sn : "?",
                     wolfSSL_ASN1_STRING_length(v), (const char *)wolfSSL_ASN1_STRING_get0_data(v));
    if (w < 0 || (size_t)w >= size - n) {
      buf[size - 1] = '\0';
      return;
    }
    n += (size_t)w;
  }
}

static int tls__asn1_time(const WOLFSSL_ASN1_TIME *t, time_t *out) {
  struct tm tm;
  if (!t || wolfSSL_ASN1_TIME_to_tm(t, &tm) != WOLFSSL_SUCCESS) return -1;
  *out = tls__utc_seconds(&tm);
  return 0;
}

int tls_cert_info_pem(const char *pem, tls_cert_info *out, otad_errbuf *eb) {
  memset(out, 0, sizeof(*out));
  if (!pem || !*pem) return otad_fail(eb, OTAD_ECERT, "no certificate given");
  tls_global_init();
  WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer((const unsigned char *)pem,
                                                         (int)strlen(pem), WOLFSSL_FILETYPE_PEM);
  if (!x) return otad_fail(eb, OTAD_ECERT, "not a PEM certificate");

  WOLFSSL_X509_NAME *subject = wolfSSL_X509_get_subject_name(x);
  if (subject &&
      wolfSSL_X509_NAME_get_text_by_NID(subject, NID_commonName, out->cn, (int)sizeof(out->cn)) < 0)
    out->cn[0] = '\0';
  tls__name_oneline(subject, out->subject, sizeof(out->subject));
  tls__name_oneline(wolfSSL_X509_get_issuer_name(x), out->issuer, sizeof(out->issuer));
  int bad = tls__asn1_time(wolfSSL_X509_get_notBefore(x), &out->not_before) != 0 ||
            tls__asn1_time(wolfSSL_X509_get_notAfter(x), &out->not_after) != 0;
  wolfSSL_X509_free(x);
  if (bad) {
    memset(out, 0, sizeof(*out));
    return otad_fail(eb, OTAD_ECERT, "certificate has an unreadable validity period");
  }
  return 0;
}

int tls_key_matches_cert(const char *key_pem, const char *cert_pem, otad_errbuf *eb) {
  if (!key_pem || !cert_pem) return otad_fail(eb, OTAD_ECERT, "no key or certificate given");
  tls_global_init();
  size_t key_size = strlen(key_pem) + 1, cert_size = strlen(cert_pem) + 1;
  uint8_t *key = malloc(key_size), *cert = malloc(cert_size);
  int err = 0;
  if (!key || !cert) err = otad_fail(eb, OTAD_ENOMEM, "out of memory");
  int key_len = err ? 0
                    : wc_KeyPemToDer((const unsigned char *)key_pem, (int)key_size - 1, key,
                                     (int)key_size, NULL);
  int cert_len = err ? 0
                     : wc_CertPemToDer((const unsigned char *)cert_pem, (int)cert_size - 1, cert,
                                       (int)cert_size, CERT_TYPE);
  if (!err && key_len <= 0) err = otad_fail(eb, OTAD_ECERT, "cannot read the private key PEM");
  if (!err && cert_len <= 0) err = otad_fail(eb, OTAD_ECERT, "cannot read the certificate PEM");
  if (!err && tls__key_fits_cert(key, (word32)key_len, cert, (word32)cert_len) != 1)
    err = otad_fail(eb, OTAD_ECERT, "the private key does not belong to the certificate");
  tls__free_secret(key, key_size);
  free(cert);
  if (err) return err;

  /* Load them the way libcurl will, so "matches" also means "libcurl can use them". */
  WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
  if (!ctx) return otad_fail(eb, OTAD_ENOMEM, "cannot create a wolfSSL context");
  if (wolfSSL_CTX_use_certificate_chain_buffer(ctx, (const unsigned char *)cert_pem,
                                               (long)strlen(cert_pem)) != WOLFSSL_SUCCESS)
    err = otad_fail(eb, OTAD_ECERT, "wolfSSL cannot use the client certificate PEM");
  else if (wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)key_pem,
                                             (long)strlen(key_pem),
                                             WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
    err = otad_fail(eb, OTAD_ECERT, "wolfSSL cannot use the private key PEM");
  else if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS)
    err = otad_fail(eb, OTAD_ECERT, "wolfSSL finds that the key does not fit the certificate");
  wolfSSL_CTX_free(ctx);
  return err;
}
