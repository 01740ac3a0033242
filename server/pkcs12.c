/* pkcs12.c - a PKCS#12 (RFC 7292) writer with real servers' parameters.
 *
 * The archive is built bottom-up as DER: each structure is encoded into its own buffer and
 * then wrapped (tag + length) into its parent. Buffers carry a sticky error flag so the
 * building code reads as the ASN.1 it writes and checks once at the end. Key derivation is
 * RFC 7292 appendix B with SHA-1; the password is the UTF-16BE string with its two-byte
 * terminator, so "" is two zero bytes, as OpenSSL and wolfSSL read it.
 */
#include "pkcs12.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

/* ---- a growable DER buffer with a sticky error ---- */

typedef struct der {
  uint8_t *data;
  size_t len, cap;
  bool failed;
} der;

static void der_put(der *d, const void *p, size_t n) {
  if (d->failed || n == 0) return;
  if (d->len + n > d->cap) {
    size_t cap = d->cap ? d->cap : 256;
    while (cap < d->len + n)
      cap *= 2;
    uint8_t *grown = realloc(d->data, cap);
    if (!grown) {
      d->failed = true;
      return;
    }
    d->data = grown;
    d->cap = cap;
  }
  memcpy(d->data + d->len, p, n);
  d->len += n;
}

/* Appends tag, DER length and content. */
static void der_tlv(der *d, uint8_t tag, const void *content, size_t n) {
  uint8_t hdr[6];
  size_t h = 0;
  hdr[h++] = tag;
  if (n < 0x80) {
    hdr[h++] = (uint8_t)n;
  } else {
    uint8_t bytes = n > 0xffffff ? 4 : n > 0xffff ? 3 : n > 0xff ? 2 : 1;
    hdr[h++] = 0x80 | bytes;
    for (int i = bytes - 1; i >= 0; i--)
      hdr[h++] = (uint8_t)(n >> (8 * i));
  }
  der_put(d, hdr, h);
  der_put(d, content, n);
}

/* Appends `inner` wrapped in `tag`, then frees inner (its error carries over). */
static void der_wrap(der *d, uint8_t tag, der *inner) {
  if (inner->failed) d->failed = true;
  der_tlv(d, tag, inner->data, inner->len);
  free(inner->data);
  *inner = (der){0};
}

/* Appends inner's bytes as they are, then frees inner (its error carries over). */
static void der_cat(der *d, der *inner) {
  if (inner->failed) d->failed = true;
  der_put(d, inner->data, inner->len);
  free(inner->data);
  *inner = (der){0};
}

static void der_uint(der *d, unsigned v) {
  uint8_t b[5];
  size_t n = 0;
  for (int i = 3; i >= 0; i--) {
    uint8_t byte = (uint8_t)(v >> (8 * i));
    if (n == 0 && byte == 0 && i > 0) continue;
    if (n == 0 && (byte & 0x80)) b[n++] = 0;
    b[n++] = byte;
  }
  der_tlv(d, 0x02, b, n);
}

enum {
  TAG_SEQ = 0x30,
  TAG_SET = 0x31,
  TAG_OCTETS = 0x04,
  TAG_OID = 0x06,
  TAG_CTX0 = 0xa0,
  TAG_CTX0_PRIM = 0x80
};

/* Object identifiers, DER content bytes. */
static const uint8_t OID_DATA[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01};
static const uint8_t OID_ENCRYPTED_DATA[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06};
static const uint8_t OID_SHROUDED_KEY_BAG[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
                                               0x01, 0x0c, 0x0a, 0x01, 0x02};
static const uint8_t OID_CERT_BAG[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
                                       0x01, 0x0c, 0x0a, 0x01, 0x03};
static const uint8_t OID_X509_CERT[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x01};
static const uint8_t OID_LOCAL_KEY_ID[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x15};
static const uint8_t OID_PBE_3DES[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03};
static const uint8_t OID_PBE_RC2_40[] = {0x2a, 0x86, 0x48, 0x86, 0xf7,
                                         0x0d, 0x01, 0x0c, 0x01, 0x06};
static const uint8_t OID_SHA1[] = {0x2b, 0x0e, 0x03, 0x02, 0x1a};

#define SALT_LEN 8
#define SHA1_LEN 20

/* ---- RFC 7292 appendix B key derivation (SHA-1: u = 20, v = 64) ---- */

enum { KDF_KEY = 1, KDF_IV = 2, KDF_MAC = 3 };

static int pkcs12_kdf(uint8_t id, const uint8_t *pass, size_t pass_len, const uint8_t *salt,
                      size_t salt_len, unsigned iterations, uint8_t *out, size_t n) {
  enum { U = SHA1_LEN, V = 64 };
  size_t s_len = V * ((salt_len + V - 1) / V);
  size_t p_len = V * ((pass_len + V - 1) / V);
  size_t i_len = s_len + p_len;
  uint8_t *I = malloc(i_len ? i_len : 1);
  if (!I) return GNUTLS_E_MEMORY_ERROR;
  for (size_t i = 0; i < s_len; i++)
    I[i] = salt[i % salt_len];
  for (size_t i = 0; i < p_len; i++)
    I[s_len + i] = pass[i % pass_len];

  uint8_t D[V], A[U], B[V];
  memset(D, id, sizeof D);
  gnutls_hash_hd_t h; /* one handle for every hash: gnutls_hash_output() resets it */
  int rc = gnutls_hash_init(&h, GNUTLS_DIG_SHA1);
  if (rc < 0) {
    free(I);
    return rc;
  }
  while (n > 0) {
    if ((rc = gnutls_hash(h, D, V)) < 0 || (rc = gnutls_hash(h, I, i_len)) < 0) break;
    gnutls_hash_output(h, A);
    for (unsigned r = 1; r < iterations && rc == 0; r++) {
      rc = gnutls_hash(h, A, U);
      gnutls_hash_output(h, A);
    }
    if (rc < 0) break;
    size_t take = n < U ? n : U;
    memcpy(out, A, take);
    out += take;
    n -= take;
    if (n == 0) break;
    for (size_t i = 0; i < V; i++)
      B[i] = A[i % U];
    for (size_t blk = 0; blk < i_len; blk += V) { /* I_j = (I_j + B + 1) mod 2^(8v) */
      unsigned carry = 1;
      for (int x = V - 1; x >= 0; x--) {
        carry += (unsigned)I[blk + x] + B[x];
        I[blk + x] = (uint8_t)carry;
        carry >>= 8;
      }
    }
  }
  gnutls_hash_deinit(h, NULL);
  memset(I, 0, i_len);
  free(I);
  return rc < 0 ? rc : 0;
}

/* UTF-8 to UTF-16BE with the two-byte terminator PKCS#12 passwords carry. */
static int password_bmp(const char *utf8, uint8_t **out, size_t *out_len) {
  size_t n = strlen(utf8);
  uint8_t *b = malloc(4 * n + 2); /* at most 4 bytes of UTF-16 per input byte */
  if (!b) return GNUTLS_E_MEMORY_ERROR;
  size_t o = 0;
  const uint8_t *s = (const uint8_t *)utf8;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t more;
    if (s[i] < 0x80) {
      cp = s[i];
      more = 0;
    } else if ((s[i] & 0xe0) == 0xc0) {
      cp = s[i] & 0x1f;
      more = 1;
    } else if ((s[i] & 0xf0) == 0xe0) {
      cp = s[i] & 0x0f;
      more = 2;
    } else if ((s[i] & 0xf8) == 0xf0) {
      cp = s[i] & 0x07;
      more = 3;
    } else {
      free(b);
      return GNUTLS_E_INVALID_UTF8_STRING;
    }
    if (i + more >= n) { /* truncated sequence */
      free(b);
      return GNUTLS_E_INVALID_UTF8_STRING;
    }
    for (size_t k = 1; k <= more; k++) {
      if ((s[i + k] & 0xc0) != 0x80) {
        free(b);
        return GNUTLS_E_INVALID_UTF8_STRING;
      }
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    i += more + 1;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      uint16_t hi = (uint16_t)(0xd800 | (cp >> 10)), lo = (uint16_t)(0xdc00 | (cp & 0x3ff));
      b[o++] = (uint8_t)(hi >> 8);
      b[o++] = (uint8_t)hi;
      b[o++] = (uint8_t)(lo >> 8);
      b[o++] = (uint8_t)lo;
    } else {
      b[o++] = (uint8_t)(cp >> 8);
      b[o++] = (uint8_t)cp;
    }
  }
  b[o++] = 0;
  b[o++] = 0;
  *out = b;
  *out_len = o;
  return 0;
}

/* ---- password-based encryption (PKCS#12 PBE, CBC with PKCS#7 padding) ---- */

typedef struct pbe {
  const uint8_t *oid;
  size_t oid_len;
  gnutls_cipher_algorithm_t cipher;
  size_t key_len;
} pbe;

static const pbe PBE_3DES = {OID_PBE_3DES, sizeof OID_PBE_3DES, GNUTLS_CIPHER_3DES_CBC, 24};
static const pbe PBE_RC2_40 = {OID_PBE_RC2_40, sizeof OID_PBE_RC2_40, GNUTLS_CIPHER_RC2_40_CBC, 5};

/* Encrypts plain under a fresh salt; appends AlgorithmIdentifier to `alg` and the
 * ciphertext to *ct (malloc'd). */
static int pbe_encrypt(const pbe *p, const uint8_t *bmp, size_t bmp_len, unsigned iterations,
                       const uint8_t *plain, size_t plain_len, der *alg, uint8_t **ct,
                       size_t *ct_len) {
  uint8_t salt[SALT_LEN], key[24], iv[8];
  int rc = gnutls_rnd(GNUTLS_RND_NONCE, salt, sizeof salt);
  if (rc < 0) return rc;
  if ((rc = pkcs12_kdf(KDF_KEY, bmp, bmp_len, salt, sizeof salt, iterations, key, p->key_len)) <
          0 ||
      (rc = pkcs12_kdf(KDF_IV, bmp, bmp_len, salt, sizeof salt, iterations, iv, sizeof iv)) < 0)
    return rc;

  size_t pad = 8 - plain_len % 8, n = plain_len + pad;
  uint8_t *buf = malloc(n);
  if (!buf) return GNUTLS_E_MEMORY_ERROR;
  memcpy(buf, plain, plain_len);
  memset(buf + plain_len, (int)pad, pad);

  gnutls_cipher_hd_t h;
  gnutls_datum_t k = {key, (unsigned)p->key_len}, v = {iv, sizeof iv};
  rc = gnutls_cipher_init(&h, p->cipher, &k, &v);
  if (rc == 0) {
    rc = gnutls_cipher_encrypt(h, buf, n);
    gnutls_cipher_deinit(h);
  }
  memset(key, 0, sizeof key);
  if (rc < 0) {
    free(buf);
    return rc;
  }

  der params = {0}, seq = {0};
  der_tlv(&params, TAG_OCTETS, salt, sizeof salt);
  der_uint(&params, iterations);
  der_tlv(&seq, TAG_OID, p->oid, p->oid_len);
  der_wrap(&seq, TAG_SEQ, &params);
  der_wrap(alg, TAG_SEQ, &seq);
  *ct = buf;
  *ct_len = n;
  return 0;
}

/* SET OF Attribute holding one localKeyId. */
static void attrs_local_key_id(der *d, const uint8_t *id, size_t id_len) {
  der value = {0}, attr = {0}, set = {0};
  der_tlv(&value, TAG_OCTETS, id, id_len);
  der_tlv(&attr, TAG_OID, OID_LOCAL_KEY_ID, sizeof OID_LOCAL_KEY_ID);
  der_wrap(&attr, TAG_SET, &value);
  der_wrap(&set, TAG_SEQ, &attr);
  der_wrap(d, TAG_SET, &set);
}

/* SafeBag { certBag, [0] CertBag { x509Certificate, [0] OCTET STRING cert }, attrs? } */
static void safe_bag_cert(der *d, const gnutls_datum_t *cert, const uint8_t *key_id) {
  der octets = {0}, value = {0}, certbag = {0}, seq = {0}, bag = {0};
  der_tlv(&octets, TAG_OCTETS, cert->data, cert->size);
  der_wrap(&value, TAG_CTX0, &octets);
  der_tlv(&certbag, TAG_OID, OID_X509_CERT, sizeof OID_X509_CERT);
  der_cat(&certbag, &value);
  der_wrap(&seq, TAG_SEQ, &certbag);
  der_tlv(&bag, TAG_OID, OID_CERT_BAG, sizeof OID_CERT_BAG);
  der_wrap(&bag, TAG_CTX0, &seq);
  if (key_id) attrs_local_key_id(&bag, key_id, SHA1_LEN);
  der_wrap(d, TAG_SEQ, &bag);
}

/* ContentInfo { encryptedData, [0] EncryptedData { 0, { data, alg, [0] IMPLICIT ct } } } */
static int content_info_encrypted(der *d, const pbe *p, const uint8_t *bmp, size_t bmp_len,
                                  unsigned iterations, const der *plain) {
  der eci = {0}, ed = {0}, ctx = {0}, ci = {0};
  uint8_t *ct = NULL;
  size_t ct_len = 0;
  der_tlv(&eci, TAG_OID, OID_DATA, sizeof OID_DATA);
  int rc = pbe_encrypt(p, bmp, bmp_len, iterations, plain->data, plain->len, &eci, &ct, &ct_len);
  if (rc < 0) {
    free(eci.data);
    return rc;
  }
  der_tlv(&eci, TAG_CTX0_PRIM, ct, ct_len);
  free(ct);
  der_uint(&ed, 0);
  der_wrap(&ed, TAG_SEQ, &eci);
  der_wrap(&ctx, TAG_SEQ, &ed);
  der_tlv(&ci, TAG_OID, OID_ENCRYPTED_DATA, sizeof OID_ENCRYPTED_DATA);
  der_wrap(&ci, TAG_CTX0, &ctx);
  der_wrap(d, TAG_SEQ, &ci);
  return 0;
}

/* ContentInfo { data, [0] OCTET STRING plain } */
static void content_info_data(der *d, const der *plain) {
  der octets = {0}, ctx = {0}, ci = {0};
  der_tlv(&octets, TAG_OCTETS, plain->data, plain->len);
  octets.failed |= plain->failed;
  der_wrap(&ctx, TAG_CTX0, &octets);
  der_tlv(&ci, TAG_OID, OID_DATA, sizeof OID_DATA);
  der_cat(&ci, &ctx);
  der_wrap(d, TAG_SEQ, &ci);
}

/* SafeBag { pkcs8ShroudedKeyBag, [0] EncryptedPrivateKeyInfo { alg, ct }, attrs } */
static int safe_bag_key(der *d, const gnutls_datum_t *pkcs8, const uint8_t *bmp, size_t bmp_len,
                        unsigned iterations, const uint8_t *key_id) {
  der epki = {0}, ctx = {0}, bag = {0};
  uint8_t *ct = NULL;
  size_t ct_len = 0;
  int rc = pbe_encrypt(&PBE_3DES, bmp, bmp_len, iterations, pkcs8->data, pkcs8->size, &epki, &ct,
                       &ct_len);
  if (rc < 0) {
    free(epki.data);
    return rc;
  }
  der_tlv(&epki, TAG_OCTETS, ct, ct_len);
  memset(ct, 0, ct_len);
  free(ct);
  der_wrap(&ctx, TAG_SEQ, &epki);
  der_tlv(&bag, TAG_OID, OID_SHROUDED_KEY_BAG, sizeof OID_SHROUDED_KEY_BAG);
  der_wrap(&bag, TAG_CTX0, &ctx);
  attrs_local_key_id(&bag, key_id, SHA1_LEN);
  der_wrap(d, TAG_SEQ, &bag);
  return 0;
}

/* MacData { DigestInfo { sha1, HMAC(authSafe) }, salt, iterations } */
static int mac_data(der *d, const uint8_t *bmp, size_t bmp_len, unsigned iterations,
                    const der *auth_safe) {
  uint8_t salt[SALT_LEN], key[SHA1_LEN], mac[SHA1_LEN];
  int rc = gnutls_rnd(GNUTLS_RND_NONCE, salt, sizeof salt);
  if (rc < 0 ||
      (rc = pkcs12_kdf(KDF_MAC, bmp, bmp_len, salt, sizeof salt, iterations, key, sizeof key)) <
          0 ||
      (rc = gnutls_hmac_fast(GNUTLS_MAC_SHA1, key, sizeof key, auth_safe->data, auth_safe->len,
                             mac)) < 0)
    return rc;
  static const uint8_t null[] = {0x05, 0x00};
  der alg = {0}, di = {0}, md = {0};
  der_tlv(&alg, TAG_OID, OID_SHA1, sizeof OID_SHA1);
  der_put(&alg, null, sizeof null);
  der_wrap(&di, TAG_SEQ, &alg);
  der_tlv(&di, TAG_OCTETS, mac, sizeof mac);
  der_wrap(&md, TAG_SEQ, &di);
  der_tlv(&md, TAG_OCTETS, salt, sizeof salt);
  der_uint(&md, iterations);
  der_wrap(d, TAG_SEQ, &md);
  return 0;
}

int pkcs12_build(const gnutls_datum_t *pkcs8_key, const gnutls_datum_t *certs, size_t ncerts,
                 const char *password, enum p12_cert_cipher cert_cipher, unsigned iterations,
                 gnutls_datum_t *out) {
  if (!pkcs8_key || !certs || ncerts == 0 || !password || !out || iterations == 0)
    return GNUTLS_E_INVALID_REQUEST;
  uint8_t *bmp = NULL;
  size_t bmp_len = 0;
  int rc = password_bmp(password, &bmp, &bmp_len);
  if (rc < 0) return rc;

  /* localKeyId pairs the key with its certificate: SHA-1 of the certificate, as OpenSSL. */
  uint8_t key_id[SHA1_LEN];
  der cert_bags = {0}, cert_contents = {0}, key_bags = {0}, key_contents = {0};
  der auth = {0}, auth_safe = {0}, pfx = {0}, result = {0};
  if ((rc = gnutls_hash_fast(GNUTLS_DIG_SHA1, certs[0].data, certs[0].size, key_id)) < 0) goto done;

  for (size_t i = 0; i < ncerts; i++)
    safe_bag_cert(&cert_bags, &certs[i], i == 0 ? key_id : NULL);
  der_wrap(&cert_contents, TAG_SEQ, &cert_bags);
  if (cert_contents.failed) {
    rc = GNUTLS_E_MEMORY_ERROR;
    goto done;
  }
  const pbe *p = cert_cipher == P12_CERTS_RC2_40 ? &PBE_RC2_40 : &PBE_3DES;
  if ((rc = content_info_encrypted(&auth, p, bmp, bmp_len, iterations, &cert_contents)) < 0)
    goto done;

  if ((rc = safe_bag_key(&key_bags, pkcs8_key, bmp, bmp_len, iterations, key_id)) < 0) goto done;
  der_wrap(&key_contents, TAG_SEQ, &key_bags);
  content_info_data(&auth, &key_contents);

  der_wrap(&auth_safe, TAG_SEQ, &auth);
  if (auth_safe.failed) {
    rc = GNUTLS_E_MEMORY_ERROR;
    goto done;
  }
  der_uint(&pfx, 3);
  content_info_data(&pfx, &auth_safe);
  if ((rc = mac_data(&pfx, bmp, bmp_len, iterations, &auth_safe)) < 0) goto done;
  der_wrap(&result, TAG_SEQ, &pfx);
  if (result.failed) {
    rc = GNUTLS_E_MEMORY_ERROR;
    goto done;
  }
  out->data = gnutls_malloc(result.len);
  if (!out->data) {
    rc = GNUTLS_E_MEMORY_ERROR;
    goto done;
  }
  memcpy(out->data, result.data, result.len);
  out->size = (unsigned)result.len;
  rc = 0;

done:
  if (key_contents.data) memset(key_contents.data, 0, key_contents.len);
  free(cert_bags.data);
  free(cert_contents.data);
  free(key_bags.data);
  free(key_contents.data);
  free(auth.data);
  free(auth_safe.data);
  free(pfx.data);
  free(result.data);
  memset(bmp, 0, bmp_len);
  free(bmp);
  return rc;
}

int p12_cert_cipher_parse(const char *name, enum p12_cert_cipher *out) {
  if (strcmp(name, "legacy") == 0 || strcmp(name, "rc2") == 0 || strcmp(name, "rc2-40") == 0)
    *out = P12_CERTS_RC2_40;
  else if (strcmp(name, "3des") == 0)
    *out = P12_CERTS_3DES;
  else
    return -1;
  return 0;
}
