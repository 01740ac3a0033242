/* uptane_sig.c - public keys from metadata and the signature threshold check.
 *
 * Keys are kept in their smallest verifiable form (32 raw bytes for ED25519, the DER of
 * an RSA public key) and turned into wolfCrypt key objects only for the one signature
 * being checked; an RsaKey is several KiB and a root may list many keys. Threshold
 * counting is by key material, not keyid, so one key listed under two keyids cannot sign
 * twice.
 */
#include "../core/hex.h"
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "../core/canonical_json.h"

/* Largest RSA key we verify with (bits); the smallest is 2048. */
#define UPTANE__RSA_MAX_BITS 8192

/* ---- keys ---- */

void uptane_keyring_free(uptane_keyring *k) {
  if (!k) return;
  for (size_t i = 0; i < k->n; i++)
    free(k->keys[i].der);
  free(k->keys);
  k->keys = NULL;
  k->n = 0;
}

/* Checks an RSA public key's DER: decodes, at least 2048 bits. */
static int uptane__rsa_der_ok(const uint8_t *der, size_t len, int *bits) {
  RsaKey *rsa = malloc(sizeof(*rsa));
  if (!rsa || wc_InitRsaKey(rsa, NULL) != 0) {
    free(rsa);
    return 0;
  }
  word32 idx = 0;
  int ok = wc_RsaPublicKeyDecode(der, &idx, rsa, (word32)len) == 0;
  if (ok) {
    *bits = wc_RsaEncryptSize(rsa) * 8;
    ok = *bits >= 2048 && *bits <= UPTANE__RSA_MAX_BITS;
  }
  wc_FreeRsaKey(rsa);
  free(rsa);
  return ok;
}

static int uptane__parse_key(const cJSON *k, uptane_pubkey *out, const char *what,
                             uptane_err *err) {
  const char *id = k->string;
  if (!id || !*id || strlen(id) >= sizeof(out->keyid))
    return uptane__fail(err, UPTANE_MALFORMED, "%s: key ID \"%.80s\" is empty or too long", what,
                        id ? id : "");
  snprintf(out->keyid, sizeof(out->keyid), "%s", id);
  const cJSON *type = uptane__get(k, "keytype");
  const cJSON *pub = uptane__get(uptane__get(k, "keyval"), "public");
  if (!cJSON_IsString(type) || !cJSON_IsString(pub))
    return uptane__fail(err, UPTANE_MALFORMED, "%s: key %.16s needs keytype and keyval.public",
                        what, id);
  if (strcasecmp(type->valuestring, "ed25519") == 0) {
    out->type = UPTANE_KEY_ED25519;
    if (!hex_decode(pub->valuestring, out->ed25519, sizeof(out->ed25519)))
      return uptane__fail(err, UPTANE_MALFORMED,
                          "%s: ED25519 key %.16s is not 64 hexadecimal digits", what, id);
    return 0;
  }
  if (strcasecmp(type->valuestring, "rsa") == 0) {
    out->type = UPTANE_KEY_RSA;
    int pem_len = (int)strlen(pub->valuestring);
    uint8_t *der = malloc((size_t)pem_len + 1);
    if (!der) return uptane__nomem(err, what);
    int n = wc_PubKeyPemToDer((const unsigned char *)pub->valuestring, pem_len, der,
                              (word32)pem_len + 1);
    int bits = 0;
    if (n <= 0 || !uptane__rsa_der_ok(der, (size_t)n, &bits)) {
      free(der);
      if (bits)
        return uptane__fail(err, UPTANE_UNSUPPORTED, "%s: RSA key %.16s has %d bits (2048 to %d)",
                            what, id, bits, UPTANE__RSA_MAX_BITS);
      return uptane__fail(err, UPTANE_MALFORMED,
                          "%s: RSA key %.16s is not a PEM public key (\"BEGIN PUBLIC KEY\")", what,
                          id);
    }
    out->der = der;
    out->der_len = (size_t)n;
    return 0;
  }
  return uptane__fail(err, UPTANE_UNSUPPORTED, "%s: key %.16s has unsupported keytype \"%.32s\"",
                      what, id, type->valuestring);
}

int uptane_keyring_parse(const cJSON *keys, uptane_keyring *out, const char *what,
                         uptane_err *err) {
  out->keys = NULL;
  out->n = 0;
  if (!cJSON_IsObject(keys))
    return uptane__fail(err, UPTANE_MALFORMED, "%s: keys is missing or no object", what);
  size_t n = (size_t)cJSON_GetArraySize(keys);
  uptane_keyring ring = {n ? calloc(n, sizeof(uptane_pubkey)) : NULL, 0};
  if (n && !ring.keys) return uptane__nomem(err, what);
  const cJSON *k;
  cJSON_ArrayForEach(k, keys) {
    for (size_t i = 0; i < ring.n; i++) {
      if (strcmp(ring.keys[i].keyid, k->string) == 0) {
        uptane_keyring_free(&ring);
        return uptane__fail(err, UPTANE_MALFORMED, "%s: key ID %.16s listed twice", what,
                            k->string);
      }
    }
    int ret = uptane__parse_key(k, &ring.keys[ring.n], what, err);
    if (ret) {
      uptane_keyring_free(&ring);
      return ret;
    }
    ring.n++;
  }
  *out = ring;
  return uptane__ok(err);
}

int uptane__key_equal(const uptane_pubkey *a, const uptane_pubkey *b) {
  if (a->type != b->type) return 0;
  if (a->type == UPTANE_KEY_ED25519) return memcmp(a->ed25519, b->ed25519, 32) == 0;
  return a->der_len == b->der_len && memcmp(a->der, b->der, a->der_len) == 0;
}

static ssize_t uptane__key_index(const uptane_keyring *ring, const char *keyid) {
  for (size_t i = 0; i < ring->n; i++)
    if (strcmp(ring->keys[i].keyid, keyid) == 0) return (ssize_t)i;
  return -1;
}

/* Most signatures a role may require; aktualizr's limit too. */
#define UPTANE__MAX_THRESHOLD 1000

int uptane__role_keys_parse(const cJSON *role, const uptane_keyring *ring, uptane_role_keys *out,
                            const char *what, uptane_err *err) {
  memset(out, 0, sizeof(*out));
  const cJSON *keyids = uptane__get(role, "keyids");
  int64_t threshold;
  if (!cJSON_IsArray(keyids))
    return uptane__fail(err, UPTANE_MALFORMED, "%s: keyids is missing or no array", what);
  if (!uptane__int(uptane__get(role, "threshold"), 1, &threshold) ||
      threshold > UPTANE__MAX_THRESHOLD)
    return uptane__fail(err, UPTANE_MALFORMED, "%s: threshold must be an integer from 1 to %d",
                        what, UPTANE__MAX_THRESHOLD);
  size_t n = (size_t)cJSON_GetArraySize(keyids);
  uptane_role_keys r = {n ? calloc(n, sizeof(size_t)) : NULL, 0, (int)threshold};
  if (n && !r.idx) return uptane__nomem(err, what);
  const cJSON *id;
  cJSON_ArrayForEach(id, keyids) {
    if (!cJSON_IsString(id)) {
      free(r.idx);
      return uptane__fail(err, UPTANE_MALFORMED, "%s: a key ID is no string", what);
    }
    ssize_t i = uptane__key_index(ring, id->valuestring);
    if (i < 0) continue; /* a key the metadata does not list cannot sign */
    int dup = 0;
    for (size_t j = 0; j < r.n; j++)
      dup |= r.idx[j] == (size_t)i;
    if (!dup) r.idx[r.n++] = (size_t)i;
  }
  *out = r;
  return 0;
}

void uptane__role_keys_free(uptane_role_keys *r) {
  if (!r) return;
  free(r->idx);
  memset(r, 0, sizeof(*r));
}

static int uptane__role_has_key(const uptane_keyring *ring, const uptane_role_keys *r,
                                const uptane_pubkey *k) {
  for (size_t i = 0; i < r->n; i++)
    if (uptane__key_equal(&ring->keys[r->idx[i]], k)) return 1;
  return 0;
}

int uptane__role_keys_same(const uptane_keyring *ra, const uptane_role_keys *a,
                           const uptane_keyring *rb, const uptane_role_keys *b) {
  if (a->threshold != b->threshold) return 0;
  for (size_t i = 0; i < a->n; i++)
    if (!uptane__role_has_key(rb, b, &ra->keys[a->idx[i]])) return 0;
  for (size_t i = 0; i < b->n; i++)
    if (!uptane__role_has_key(ra, a, &rb->keys[b->idx[i]])) return 0;
  return 1;
}

/* ---- signatures ---- */

/* 1 when sig is k's valid signature of msg with method (lower case). */
static int uptane__sig_valid(const uptane_pubkey *k, const char *method, const uint8_t *sig,
                             size_t sig_len, const char *msg, size_t msg_len) {
  if (k->type == UPTANE_KEY_ED25519) {
    if (strcmp(method, "ed25519") != 0 || sig_len != ED25519_SIG_SIZE) return 0;
    ed25519_key *ed = malloc(sizeof(*ed));
    if (!ed) return 0;
    int res = 0;
    if (wc_ed25519_init(ed) == 0) {
      if (wc_ed25519_import_public(k->ed25519, 32, ed) == 0 &&
          wc_ed25519_verify_msg(sig, (word32)sig_len, (const byte *)msg, (word32)msg_len, &res,
                                ed) != 0)
        res = 0;
      wc_ed25519_free(ed);
    }
    free(ed);
    return res == 1;
  }
  if (strcmp(method, "rsassa-pss") != 0 && strcmp(method, "rsassa-pss-sha256") != 0) return 0;
  uint8_t digest[WC_SHA256_DIGEST_SIZE];
  if (wc_Sha256Hash((const byte *)msg, (word32)msg_len, digest) != 0) return 0;
  RsaKey *rsa = malloc(sizeof(*rsa));
  uint8_t *in = malloc(sig_len ? sig_len : 1), *out = malloc(sig_len ? sig_len : 1);
  int ok = 0;
  if (rsa && in && out && wc_InitRsaKey(rsa, NULL) == 0) {
    word32 idx = 0;
    if (wc_RsaPublicKeyDecode(k->der, &idx, rsa, (word32)k->der_len) == 0 &&
        sig_len == (size_t)wc_RsaEncryptSize(rsa)) {
      memcpy(in, sig, sig_len);
      ok = wc_RsaPSS_VerifyCheck(in, (word32)sig_len, out, (word32)sig_len, digest, sizeof(digest),
                                 WC_HASH_TYPE_SHA256, WC_MGF1SHA256, rsa) > 0;
    }
    wc_FreeRsaKey(rsa);
  }
  free(rsa);
  free(in);
  free(out);
  return ok;
}

int uptane_verify_signatures(const cJSON *meta, const uptane_keyring *keys,
                             const uptane_role_keys *role, const char *what, uptane_err *err) {
  const cJSON *sigs = uptane__get(meta, "signatures");
  const cJSON *signed_ = uptane__get(meta, "signed");
  if (!cJSON_IsArray(sigs) || !cJSON_IsObject(signed_))
    return uptane__fail(err, UPTANE_MALFORMED,
                        "%s: not signed metadata (needs \"signed\" and \"signatures\")", what);
  if (role->threshold < 1)
    return uptane__fail(err, UPTANE_THRESHOLD, "%s: no keys are trusted to sign it", what);

  /* Form first: every signature well-formed, no keyid twice, every method known. */
  const cJSON *s;
  cJSON_ArrayForEach(s, sigs) {
    const cJSON *keyid = uptane__get(s, "keyid"), *method = uptane__get(s, "method");
    if (!cJSON_IsString(keyid) || !cJSON_IsString(method) || !cJSON_IsString(uptane__get(s, "sig")))
      return uptane__fail(err, UPTANE_MALFORMED,
                          "%s: a signature lacks keyid, method or sig strings", what);
    for (const cJSON *p = sigs->child; p != s; p = p->next) {
      if (strcmp(uptane__get(p, "keyid")->valuestring, keyid->valuestring) == 0)
        return uptane__fail(err, UPTANE_DUPLICATE_SIGNATURE, "%s: two signatures with key ID %.16s",
                            what, keyid->valuestring);
    }
    if (strcasecmp(method->valuestring, "ed25519") != 0 &&
        strcasecmp(method->valuestring, "rsassa-pss") != 0 &&
        strcasecmp(method->valuestring, "rsassa-pss-sha256") != 0)
      return uptane__fail(err, UPTANE_UNSUPPORTED, "%s: unsupported signature method \"%.32s\"",
                          what, method->valuestring);
  }

  char *msg = NULL;
  size_t msg_len = 0;
  otad_errbuf ceb;
  int ret = canonical_json(signed_, &msg, &msg_len, &ceb);
  if (ret == OTAD_ENOMEM) return uptane__nomem(err, what);
  if (ret) return uptane__fail(err, UPTANE_MALFORMED, "%s: signed: %s", what, ceb.msg);

  const uptane_pubkey **counted = calloc(role->n ? role->n : 1, sizeof(*counted));
  if (!counted) {
    free(msg);
    return uptane__nomem(err, what);
  }
  size_t valid = 0, bad = 0;
  char bad_id[17] = "";
  cJSON_ArrayForEach(s, sigs) {
    const char *keyid = uptane__get(s, "keyid")->valuestring;
    const char *b64 = uptane__get(s, "sig")->valuestring;
    const uptane_pubkey *k = NULL;
    for (size_t i = 0; i < role->n && !k; i++)
      if (strcmp(keys->keys[role->idx[i]].keyid, keyid) == 0) k = &keys->keys[role->idx[i]];
    if (!k) continue; /* unknown key or not one of this role's: does not count */
    int dup = 0;
    for (size_t i = 0; i < valid; i++)
      dup |= uptane__key_equal(counted[i], k);
    if (dup) continue;
    char method[32];
    snprintf(method, sizeof(method), "%s", uptane__get(s, "method")->valuestring);
    for (char *c = method; *c; c++)
      *c = (char)tolower((unsigned char)*c);
    size_t b64_len = strlen(b64);
    word32 sig_len = (word32)(b64_len * 3 / 4 + 3);
    uint8_t *sig = malloc(sig_len);
    int ok = sig && Base64_Decode((const byte *)b64, (word32)b64_len, sig, &sig_len) == 0 &&
             uptane__sig_valid(k, method, sig, sig_len, msg, msg_len);
    free(sig);
    if (ok) {
      counted[valid++] = k;
    } else {
      if (!bad++) snprintf(bad_id, sizeof(bad_id), "%s", keyid);
    }
  }
  free(counted);
  free(msg);
  if (valid >= (size_t)role->threshold) return uptane__ok(err);
  if (bad)
    return uptane__fail(err, UPTANE_BAD_SIGNATURE,
                        "%s: %zu valid signature(s) of %d required; the signature by key %s%s does "
                        "not verify",
                        what, valid, role->threshold, bad_id, bad > 1 ? " (and others)" : "");
  return uptane__fail(err, UPTANE_THRESHOLD,
                      "%s: %zu valid signature(s) from trusted keys, %d required", what, valid,
                      role->threshold);
}

int uptane_verify_signed(const cJSON *meta, const uptane_root *root, enum uptane_role role,
                         const char *what, uptane_err *err) {
  if (!root || root->version < 1)
    return uptane__fail(err, UPTANE_MISSING, "%s: no trusted root to check it with", what);
  if ((unsigned)role >= UPTANE_ROLE__COUNT)
    return uptane__fail(err, UPTANE_MISSING, "%s: no such role", what);
  if (root->roles[role].threshold < 1)
    return uptane__fail(err, UPTANE_THRESHOLD, "%s: the root defines no %s role", what,
                        uptane_role_name(role));
  int ret = uptane_verify_signatures(meta, &root->keys, &root->roles[role], what, err);
  return ret ? ret : uptane__ok(err);
}
