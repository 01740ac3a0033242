/* keys.c - the primary ECU's Uptane key with wolfCrypt: generation, KeyId, signatures.
 *
 * One storage form for every key type: unencrypted PKCS#8 PEM, which openssl and wolfSSL
 * both read and write. A key is parsed from that text whenever it is used (parsing costs
 * little next to an RSA signature, and manifests are signed once per poll), so an
 * uptane_key stays plain strings the device can store and copy. Each call owns its RNG and
 * key objects, so calls from several threads never share state; the key objects live on
 * the heap because an RsaKey is several KiB.
 *
 * An RSA key may also live in a PKCS#11 token ([uptane] key_source = "pkcs11"): its
 * "private_pem" is then the PKCS#11 URI that names it (p11.h), and parsing it sets up a
 * wolfCrypt key whose private operations the token performs, so signing takes the same
 * wc_RsaPSS_Sign_ex path as a key in memory. wolfSSL 5.7.2's PKCS#11 layer has no EdDSA,
 * so ED25519 keys cannot live in a token.
 */
#include "keys.h"
#include "../core/canonical_json.h"
#include "../core/hex.h"
#include "../crypto/pem.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "../crypto/p11.h"
#include "../crypto/tls.h"

/* A parsed private key: at most one of rsa/ed is initialised, as is_rsa/is_ed say. */
typedef struct keys__parsed {
  enum uptane_key_type type;
  int is_rsa, is_ed;
  const char *uri; /* the PKCS#11 URI of a key in a token (not owned), or NULL */
  RsaKey rsa;
  ed25519_key ed;
} keys__parsed;

static void keys__free_secret(void *p, size_t len) {
  if (p) {
    explicit_bzero(p, len);
    free(p);
  }
}

static void keys__parsed_free(keys__parsed *p) {
  if (!p) return;
  if (p->is_rsa) wc_FreeRsaKey(&p->rsa);
  if (p->is_ed) wc_ed25519_free(&p->ed);
  keys__free_secret(p, sizeof(*p));
}

static void keys__sha256_put(void *sha, const char *s, size_t n) {
  wc_Sha256Update(sha, (const byte *)s, (word32)n);
}

void keys_keyid(const char *public_text, char out[65]) {
  size_t n = public_text ? strlen(public_text) : 0;
  while (n > 0 && public_text[n - 1] == '\n')
    n--;
  wc_Sha256 sha;
  uint8_t digest[WC_SHA256_DIGEST_SIZE];
  wc_InitSha256(&sha);
  canonical_json_string(public_text ? public_text : "", n, keys__sha256_put, &sha);
  wc_Sha256Final(&sha, digest);
  wc_Sha256Free(&sha);
  hex_encode(digest, sizeof(digest), out, false);
}

const char *keys_director_type(enum uptane_key_type type) {
  return type == KEY_ED25519 ? "ED25519" : "RSA";
}

static int keys__rsa_type(int bits, enum uptane_key_type *type) {
  switch (bits) {
  case 2048: *type = KEY_RSA2048; return 0;
  case 3072: *type = KEY_RSA3072; return 0;
  case 4096: *type = KEY_RSA4096; return 0;
  }
  return -1;
}

/* Makes the ED25519 key object whole from its seed: wolfCrypt's decoders may leave the
 * public half unset, and signing needs it. */
static int keys__ed25519_from_seed(ed25519_key *ed, const uint8_t seed[ED25519_KEY_SIZE]) {
  uint8_t pub[ED25519_PUB_KEY_SIZE];
  int ret = wc_ed25519_import_private_only(seed, ED25519_KEY_SIZE, ed);
  if (ret == 0) ret = wc_ed25519_make_public(ed, pub, sizeof(pub));
  if (ret == 0) ret = wc_ed25519_import_private_key(seed, ED25519_KEY_SIZE, pub, sizeof(pub), ed);
  return ret;
}

/* aktualizr's ED25519 private key: 128 hex digits (seed, then public key). */
static int keys__parse_ed25519_hex(const char *text, keys__parsed *p, otad_errbuf *eb) {
  uint8_t sk[2 * ED25519_KEY_SIZE], pub[ED25519_PUB_KEY_SIZE];
  word32 pub_len = sizeof(pub);
  for (size_t i = 0; i < sizeof(sk); i++)
    sk[i] = (uint8_t)(hex_digit(text[2 * i]) << 4 | hex_digit(text[2 * i + 1]));
  int ret = wc_ed25519_init(&p->ed);
  p->is_ed = ret == 0;
  if (ret == 0) ret = keys__ed25519_from_seed(&p->ed, sk);
  if (ret == 0) ret = wc_ed25519_export_public(&p->ed, pub, &pub_len);
  int mismatch = ret == 0 && memcmp(pub, sk + ED25519_KEY_SIZE, sizeof(pub)) != 0;
  explicit_bzero(sk, sizeof(sk));
  if (ret != 0) return otad_fail(eb, OTAD_ECRYPTO, "bad ED25519 key: %s", wc_GetErrorString(ret));
  if (mismatch)
    return otad_fail(eb, OTAD_ECRYPTO, "ED25519 key: the public half does not match the seed");
  p->type = KEY_ED25519;
  return 0;
}

static int keys__is_hex_key(const char *text) {
  size_t n = 0;
  while (hex_digit((unsigned char)text[n]) >= 0)
    n++;
  if (n != 4 * ED25519_KEY_SIZE) return 0;
  while (isspace((unsigned char)text[n]))
    n++;
  return text[n] == '\0';
}

/* Parses a private key text into a heap keys__parsed (free with keys__parsed_free). */
static int keys__parse(const char *text, keys__parsed **out, otad_errbuf *eb) {
  *out = NULL;
  if (!text || !*text) return otad_fail(eb, OTAD_ECRYPTO, "no private key given");
  keys__parsed *p = calloc(1, sizeof(*p));
  if (!p) return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  if (p11_is_uri(text)) {
    int bits = 0;
    int err = p11_rsa_key(text, &p->rsa, &bits, eb);
    p->is_rsa = err == 0;
    p->uri = text;
    if (!err && keys__rsa_type(bits, &p->type) != 0)
      err = otad_fail(eb, OTAD_ECRYPTO,
                      "RSA key of %d bits in the token: only 2048, 3072 and "
                      "4096 are used",
                      bits);
    if (err) {
      keys__parsed_free(p);
      return err;
    }
    *out = p;
    return 0;
  }
  if (keys__is_hex_key(text)) {
    int err = keys__parse_ed25519_hex(text, p, eb);
    if (err) {
      keys__parsed_free(p);
      return err;
    }
    *out = p;
    return 0;
  }

  int len = (int)strlen(text);
  int der_len = wc_KeyPemToDer((const unsigned char *)text, len, NULL, 0, NULL);
  uint8_t *der = der_len > 0 ? malloc((size_t)der_len) : NULL;
  if (der) der_len = wc_KeyPemToDer((const unsigned char *)text, len, der, der_len, NULL);
  if (!der || der_len <= 0) {
    keys__free_secret(der, der_len > 0 ? (size_t)der_len : 0);
    keys__parsed_free(p);
    return otad_fail(eb, OTAD_ECRYPTO, "the private key is not an unencrypted PEM key");
  }

  word32 idx = 0;
  int err = 0, ret;
  p->is_rsa = wc_InitRsaKey(&p->rsa, NULL) == 0;
  if (p->is_rsa && wc_RsaPrivateKeyDecode(der, &idx, &p->rsa, (word32)der_len) == 0) {
    int bits = wc_RsaEncryptSize(&p->rsa) * 8;
    if (keys__rsa_type(bits, &p->type) != 0)
      err = otad_fail(eb, OTAD_ECRYPTO, "RSA key of %d bits: only 2048, 3072 and 4096 are used",
                      bits);
  } else {
    if (p->is_rsa) wc_FreeRsaKey(&p->rsa);
    p->is_rsa = 0;
    uint8_t seed[ED25519_KEY_SIZE];
    word32 seed_len = sizeof(seed);
    idx = 0;
    ret = wc_ed25519_init(&p->ed);
    p->is_ed = ret == 0;
    if (ret == 0 && (ret = wc_Ed25519PrivateKeyDecode(der, &idx, &p->ed, (word32)der_len)) == 0 &&
        (ret = wc_ed25519_export_private_only(&p->ed, seed, &seed_len)) == 0)
      ret = keys__ed25519_from_seed(&p->ed, seed);
    explicit_bzero(seed, sizeof(seed));
    p->type = KEY_ED25519;
    if (ret != 0) err = otad_fail(eb, OTAD_ECRYPTO, "the private key is neither RSA nor ED25519");
  }
  keys__free_secret(der, (size_t)der_len);
  if (err) {
    keys__parsed_free(p);
    return err;
  }
  *out = p;
  return 0;
}

/* Fills out (private PKCS#8 PEM, public text, KeyId) from a parsed key. */
static int keys__fill(keys__parsed *p, uptane_key *out, otad_errbuf *eb) {
  memset(out, 0, sizeof(*out));
  out->type = p->type;
  uint8_t *der = NULL, *pkcs8 = NULL;
  word32 der_len = 0, pkcs8_len = 0;
  int ret;
  if (p->uri) {
    /* In a token: the URI stands for the private key; the public half is read from it. */
    size_t len = 0;
    int err = p11_rsa_public_der(p->uri, &der, &len, eb);
    if (err) return err;
    der_len = (word32)len;
    out->private_pem = strdup(p->uri);
    out->public_text = pem_from_der(der, der_len, PUBLICKEY_TYPE);
    ret = 0;
  } else if (p->is_rsa) {
    /* PKCS#1 from wolfCrypt, then wrapped as PKCS#8; the public key as SubjectPublicKeyInfo. */
    ret = wc_RsaKeyToDer(&p->rsa, NULL, 0);
    if (ret > 0 && (der = malloc((size_t)ret))) {
      der_len = (word32)ret;
      ret = wc_RsaKeyToDer(&p->rsa, der, der_len);
    }
    if (ret > 0) {
      der_len = (word32)ret;
      if (wc_CreatePKCS8Key(NULL, &pkcs8_len, der, der_len, RSAk, NULL, 0) == LENGTH_ONLY_E &&
          (pkcs8 = malloc(pkcs8_len)))
        ret = wc_CreatePKCS8Key(pkcs8, &pkcs8_len, der, der_len, RSAk, NULL, 0);
      else
        ret = MEMORY_E;
    }
    if (ret > 0) {
      pkcs8_len = (word32)ret;
      out->private_pem = pem_from_der(pkcs8, pkcs8_len, PKCS8_PRIVATEKEY_TYPE);
    }
    uint8_t pub[1024];
    int pub_len = ret > 0 ? wc_RsaKeyToPublicDer(&p->rsa, pub, sizeof(pub)) : ret;
    if (pub_len > 0)
      out->public_text = pem_from_der(pub, (word32)pub_len, PUBLICKEY_TYPE);
    else
      ret = pub_len;
  } else {
    uint8_t pub[ED25519_PUB_KEY_SIZE];
    word32 pub_len = sizeof(pub);
    pkcs8_len = 64; /* 48 bytes; wolfSSL 5.7.2 cannot tell the size of this one */
    ret = (pkcs8 = malloc(pkcs8_len)) ? wc_Ed25519PrivateKeyToDer(&p->ed, pkcs8, pkcs8_len)
                                      : MEMORY_E;
    if (ret > 0) {
      pkcs8_len = (word32)ret;
      out->private_pem = pem_from_der(pkcs8, pkcs8_len, PKCS8_PRIVATEKEY_TYPE);
      ret = wc_ed25519_export_public(&p->ed, pub, &pub_len);
    }
    if (ret == 0 && (out->public_text = malloc(2 * ED25519_PUB_KEY_SIZE + 1)))
      hex_encode(pub, ED25519_PUB_KEY_SIZE, out->public_text, true);
  }
  keys__free_secret(der, der_len);
  keys__free_secret(pkcs8, pkcs8_len);
  if (ret < 0) {
    keys_free(out);
    return otad_fail(eb, OTAD_ECRYPTO, "cannot encode the key: %s", wc_GetErrorString(ret));
  }
  if (!out->private_pem || !out->public_text) {
    keys_free(out);
    return otad_fail(eb, OTAD_ENOMEM, "out of memory encoding the key");
  }
  keys_keyid(out->public_text, out->keyid);
  return 0;
}

int keys_load(const char *private_text, uptane_key *out, otad_errbuf *eb) {
  memset(out, 0, sizeof(*out));
  tls_global_init();
  keys__parsed *p;
  int err = keys__parse(private_text, &p, eb);
  if (err) return err;
  err = keys__fill(p, out, eb);
  keys__parsed_free(p);
  return err;
}

int keys_load_pkcs11(const char *module, const char *pin, const char *id_hex, uptane_key *out,
                     otad_errbuf *eb) {
  memset(out, 0, sizeof(*out));
  p11_token *t;
  char *uri = NULL;
  enum p11_key_kind kind;
  int err = p11_open(module, pin, &t, eb);
  if (!err) err = p11_key_ref(t, id_hex, &uri, &kind, eb);
  if (!err && kind != P11_KEY_RSA)
    err = otad_fail(eb, OTAD_ECONFIG,
                    "PKCS#11: the key with ID %s on token '%s' is an EC key; an Uptane key in a "
                    "token must be RSA (2048, 3072 or 4096 bits)",
                    id_hex, p11_token_label(t));
  if (!err) err = keys_load(uri, out, eb);
  free(uri);
  return err;
}

int keys_generate(enum uptane_key_type type, uptane_key *out, otad_errbuf *eb) {
  memset(out, 0, sizeof(*out));
  int bits = type == KEY_RSA2048   ? 2048
             : type == KEY_RSA3072 ? 3072
             : type == KEY_RSA4096 ? 4096
                                   : 0;
  if (!bits && type != KEY_ED25519)
    return otad_fail(eb, OTAD_EINVAL, "unknown key type %d", (int)type);
  tls_global_init();
  keys__parsed *p = calloc(1, sizeof(*p));
  WC_RNG *rng = calloc(1, sizeof(*rng));
  int ret = p && rng ? wc_InitRng(rng) : MEMORY_E;
  int rng_ok = ret == 0;
  if (ret == 0 && bits) {
    p->type = type;
    ret = wc_InitRsaKey(&p->rsa, NULL);
    p->is_rsa = ret == 0;
    if (ret == 0) ret = wc_MakeRsaKey(&p->rsa, bits, WC_RSA_EXPONENT, rng);
  } else if (ret == 0) {
    p->type = KEY_ED25519;
    ret = wc_ed25519_init(&p->ed);
    p->is_ed = ret == 0;
    if (ret == 0) ret = wc_ed25519_make_key(rng, ED25519_KEY_SIZE, &p->ed);
  }
  if (rng_ok) wc_FreeRng(rng);
  free(rng);
  int err = 0;
  if (ret != 0)
    err = otad_fail(eb, ret == MEMORY_E ? OTAD_ENOMEM : OTAD_ECRYPTO,
                    "cannot generate the %s key: %s", bits ? "RSA" : "ED25519",
                    wc_GetErrorString(ret));
  else
    err = keys__fill(p, out, eb);
  keys__parsed_free(p);
  return err;
}

int keys_sign(const uptane_key *k, const uint8_t *msg, size_t len, char **sig_b64,
              const char **method, otad_errbuf *eb) {
  *sig_b64 = NULL;
  *method = NULL;
  if (!k || (!msg && len)) return otad_fail(eb, OTAD_EINVAL, "nothing to sign with");
  if (len > 0xffffffffu) return otad_fail(eb, OTAD_EINVAL, "message too large to sign");
  tls_global_init();
  keys__parsed *p;
  int err = keys__parse(k->private_pem, &p, eb);
  if (err) return err;

  uint8_t sig[512]; /* RSA 4096 */
  word32 sig_len = sizeof(sig);
  int ret;
  if (p->is_rsa) {
    uint8_t hash[WC_SHA256_DIGEST_SIZE];
    WC_RNG rng;
    ret = wc_Sha256Hash(msg ? msg : (const uint8_t *)"", (word32)len, hash);
    if (ret == 0 && (ret = wc_InitRng(&rng)) == 0) {
      ret = wc_RsaPSS_Sign_ex(hash, sizeof(hash), sig, sig_len, WC_HASH_TYPE_SHA256, WC_MGF1SHA256,
                              32, &p->rsa, &rng);
      wc_FreeRng(&rng);
    }
    if (ret > 0) {
      sig_len = (word32)ret;
      ret = 0;
    }
    *method = "rsassa-pss-sha256";
  } else {
    ret = wc_ed25519_sign_msg(msg ? msg : (const uint8_t *)"", (word32)len, sig, &sig_len, &p->ed);
    *method = "ed25519";
  }
  keys__parsed_free(p);
  if (ret != 0) {
    *method = NULL;
    return otad_fail(eb, OTAD_ECRYPTO, "cannot sign: %s", wc_GetErrorString(ret));
  }

  word32 b64_len = (sig_len + 2) / 3 * 4 + 1;
  char *b64 = malloc(b64_len);
  if (!b64) {
    *method = NULL;
    return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  }
  ret = Base64_Encode_NoNl(sig, sig_len, (byte *)b64, &b64_len);
  if (ret != 0) {
    free(b64);
    *method = NULL;
    return otad_fail(eb, OTAD_ECRYPTO, "cannot encode the signature: %s", wc_GetErrorString(ret));
  }
  b64[b64_len] = '\0';
  *sig_b64 = b64;
  return 0;
}

void keys_free(uptane_key *k) {
  if (!k) return;
  if (k->private_pem) keys__free_secret(k->private_pem, strlen(k->private_pem));
  free(k->public_text);
  memset(k, 0, sizeof(*k));
}
