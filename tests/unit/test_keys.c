/* test_keys.c - the Uptane key (transport/keys.c): KeyIds against python's answers, keys
 * made by openssl, and signatures checked with wolfCrypt and the openssl CLI. */
/* cmocka needs these in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>
/* clang-format on */

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "uptane/keys.h"

static char *fixture(const char *name) {
  const char *dir = getenv("OTAD_TEST_DATA");
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/data", name);
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open fixture %s (is OTAD_TEST_DATA set?)", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

/* The KeyId python computed for a fixture key (keyids.txt, "name=hex"). */
static void expected_keyid(const char *name, char out[65]) {
  char *ids = fixture("keyids.txt");
  char *p = strstr(ids, name);
  assert_non_null(p);
  assert_int_equal(p[strlen(name)], '=');
  snprintf(out, 65, "%.64s", p + strlen(name) + 1);
  free(ids);
}

/* Known answers computed with python3:
 * hashlib.sha256(json.dumps(text.rstrip("\n")).encode()).hexdigest() */
static const char RSA_PUB[] = "-----BEGIN PUBLIC KEY-----\n"
                              "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAy4HOKvfr9pwnRmRcj8Ct\n"
                              "fVeURIJl7gRSeVuGr6+AVy83NQ3AMm3xYm40jOrxbILQwLDL3k+lFFgHRk3IfiYD\n"
                              "IW00iAQos8fw1/2zhjSCLU+3gdKiG0ytSAKERVWTaaoaySW5ctSnP+AvJc814M3m\n"
                              "DJNCclOuo6UVJQVVJn2kc7LQh2J3zWPoIZs/RYCZoW1Gt7vorB2z+fnxxmv2OFOO\n"
                              "YVgMXgqYQuHrUiLbQ94/VaNl/nOoe2ddedFY9IwbtAyI0Njvd4GDu9NuIA9NVSi1\n"
                              "pbZ1Sjs9VKgMeceDNeo5fk+vaBdr5hojC5eeqjmfqzBZ+o3j3sHGIJp+wcfu5IdO\n"
                              "wwIDAQAB\n"
                              "-----END PUBLIC KEY-----\n";
static const char RSA_PUB_KEYID[] =
    "f00cb91116f78cf04b1d16dfc9530593edc007756933c3e3036bb9623509fb5b";
/* RFC 8032 test 1: seed 9d61b19d..., public key: */
static const char ED_PUB[] = "D75A980182B10AB7D54BFED3C964073A0EE172F3DAA62325AF021A68F707511A";
static const char ED_PUB_KEYID[] =
    "cb189cfe1530d8f74be62a0ba7304fad8ed41f642164e1dfb155d83156871f48";
/* ...and its signature of the empty message, base64. */
static const char ED_EMPTY_SIG[] =
    "5VZDAMNgrHKQhuLMgG6CioSHfx645dl02HPgZSJJAVVfuIIVkKM7rMYeOXAc+bRr0lv18FlbviRlUUFDjnoQCw==";
static const char ED_SEED_HEX[] =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

static void test_keyid_known_answers(void **state) {
  char id[65];
  keys_keyid(RSA_PUB, id);
  assert_string_equal(id, RSA_PUB_KEYID);
  keys_keyid(ED_PUB, id);
  assert_string_equal(id, ED_PUB_KEYID);
  /* Every escape json.dumps makes: "\"a\\\"b\\\\c\\u0001\\u001f\\t\\r\\b\\fz/\"" */
  keys_keyid("a\"b\\c\x01\x1f\t\r\b\fz/", id);
  assert_string_equal(id, "072fde449e14ad96ea2ca6c63a7e7aed7186a568f57fda7d93ad772c564bf6e6");
  /* Trailing newlines go, all of them; the empty string is "". */
  keys_keyid("abc\n\n", id);
  assert_string_equal(id, "6cc43f858fbb763301637b5af970e2a46b46f461f27e5a0f41e009c59b827b25");
  keys_keyid("abc", id);
  assert_string_equal(id, "6cc43f858fbb763301637b5af970e2a46b46f461f27e5a0f41e009c59b827b25");
  keys_keyid("", id);
  assert_string_equal(id, "12ae32cb1ec02d01eda3581b127c1fee3b0dc53572ed6baf239721a03d82e126");
}

static void test_director_type(void **state) {
  assert_string_equal(keys_director_type(KEY_RSA2048), "RSA");
  assert_string_equal(keys_director_type(KEY_RSA3072), "RSA");
  assert_string_equal(keys_director_type(KEY_RSA4096), "RSA");
  assert_string_equal(keys_director_type(KEY_ED25519), "ED25519");
}

/* An openssl RSA key: same public PEM as `openssl pkey -pubout`, python's KeyId, and the
 * stored text is openssl's own PKCS#8 PEM, whichever PEM form went in. */
static void test_load_openssl_rsa(void **state) {
  const char *inputs[] = {"uptane-rsa.key", "uptane-rsa-trad.key"};
  char *pkcs8 = fixture("uptane-rsa.key"), *pub = fixture("uptane-rsa.pub");
  char want_id[65];
  expected_keyid("uptane-rsa", want_id);
  for (size_t i = 0; i < 2; i++) {
    char *text = fixture(inputs[i]);
    uptane_key k;
    otad_errbuf eb = {{0}};
    int ret = keys_load(text, &k, &eb);
    if (ret != 0) fail_msg("%s: %s", inputs[i], eb.msg);
    assert_int_equal(k.type, KEY_RSA2048);
    assert_string_equal(k.public_text, pub);
    assert_string_equal(k.keyid, want_id);
    assert_string_equal(k.private_pem, pkcs8);
    keys_free(&k);
    assert_null(k.private_pem);
    assert_null(k.public_text);
    free(text);
  }
  free(pkcs8);
  free(pub);
}

static void test_load_openssl_ed25519(void **state) {
  char *text = fixture("uptane-ed25519.key"), *pubhex = fixture("uptane-ed25519.pubhex");
  char want_id[65];
  expected_keyid("uptane-ed25519", want_id);
  uptane_key k;
  otad_errbuf eb = {{0}};
  int ret = keys_load(text, &k, &eb);
  if (ret != 0) fail_msg("%s", eb.msg);
  assert_int_equal(k.type, KEY_ED25519);
  pubhex[strcspn(pubhex, "\n")] = '\0';
  assert_string_equal(k.public_text, pubhex);
  assert_string_equal(k.public_text, ED_PUB);
  assert_string_equal(k.keyid, want_id);
  assert_string_equal(k.keyid, ED_PUB_KEYID);
  assert_string_equal(k.private_pem, text);
  keys_free(&k);
  free(text);
  free(pubhex);
}

/* aktualizr keeps ED25519 private keys as hex of seed || public key. */
static void test_load_aktualizr_ed25519_hex(void **state) {
  char hex[160];
  snprintf(hex, sizeof(hex), "%s%s\n", ED_SEED_HEX, ED_PUB);
  uptane_key k;
  otad_errbuf eb = {{0}};
  assert_int_equal(keys_load(hex, &k, &eb), 0);
  assert_int_equal(k.type, KEY_ED25519);
  assert_string_equal(k.public_text, ED_PUB);
  char *pkcs8 = fixture("uptane-ed25519.key");
  assert_string_equal(k.private_pem, pkcs8);
  free(pkcs8);
  keys_free(&k);

  hex[strlen(ED_SEED_HEX) + 5] ^= 1; /* damage the public half */
  assert_int_equal(keys_load(hex, &k, &eb), OTAD_ECRYPTO);
  assert_non_null(strstr(eb.msg, "does not match"));
  assert_null(k.private_pem);
}

static void test_load_rejects(void **state) {
  uptane_key k;
  otad_errbuf eb = {{0}};
  assert_int_equal(keys_load("", &k, &eb), OTAD_ECRYPTO);
  assert_int_equal(keys_load(NULL, &k, &eb), OTAD_ECRYPTO);
  assert_int_equal(keys_load("not a key", &k, &eb), OTAD_ECRYPTO);
  assert_int_equal(keys_load(ED_SEED_HEX, &k, &eb), OTAD_ECRYPTO); /* 64 digits: too short */
  char *pub = fixture("uptane-rsa.pub");
  assert_int_equal(keys_load(pub, &k, &eb), OTAD_ECRYPTO); /* a public key */
  free(pub);
  char *ec = fixture("client-ec.key");
  assert_int_equal(keys_load(ec, &k, &eb), OTAD_ECRYPTO); /* EC is no Uptane key type */
  assert_null(k.private_pem);
  assert_null(k.public_text);
  free(ec);
  char *rsa = fixture("uptane-rsa.key");
  rsa[200] = rsa[200] == 'A' ? 'B' : 'A'; /* damaged body */
  rsa[201] = '*';
  assert_int_equal(keys_load(rsa, &k, &eb), OTAD_ECRYPTO);
  free(rsa);
}

static int is_upper_hex(const char *s, size_t n) {
  if (strlen(s) != n) return 0;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s) && !(*s >= 'A' && *s <= 'F')) return 0;
  return 1;
}

/* A fresh key, round-tripped through its stored text. */
static void check_generated(enum uptane_key_type type, int rsa_bytes) {
  uptane_key k, again;
  otad_errbuf eb = {{0}};
  int ret = keys_generate(type, &k, &eb);
  if (ret != 0) fail_msg("keys_generate(%d): %s", (int)type, eb.msg);
  assert_int_equal(k.type, type);
  assert_non_null(strstr(k.private_pem, "-----BEGIN PRIVATE KEY-----\n"));
  char id[65];
  keys_keyid(k.public_text, id);
  assert_string_equal(k.keyid, id);
  assert_int_equal(strlen(k.keyid), 64);
  if (rsa_bytes) {
    const char *head = "-----BEGIN PUBLIC KEY-----\n", *tail = "\n-----END PUBLIC KEY-----\n";
    assert_memory_equal(k.public_text, head, strlen(head));
    size_t n = strlen(k.public_text);
    assert_string_equal(k.public_text + n - strlen(tail), tail);
    /* The public key wolfCrypt reads from it has the size asked for and e = 65537. */
    uint8_t der[1024];
    int der_len = wc_PubKeyPemToDer((const unsigned char *)k.public_text, (int)n, der, sizeof(der));
    assert_true(der_len > 0);
    RsaKey rsa;
    word32 idx = 0;
    assert_int_equal(wc_InitRsaKey(&rsa, NULL), 0);
    assert_int_equal(wc_RsaPublicKeyDecode(der, &idx, &rsa, (word32)der_len), 0);
    assert_int_equal(wc_RsaEncryptSize(&rsa), rsa_bytes);
    uint8_t e[8], mod[600];
    word32 e_len = sizeof(e), mod_len = sizeof(mod);
    assert_int_equal(wc_RsaFlattenPublicKey(&rsa, e, &e_len, mod, &mod_len), 0);
    assert_int_equal(e_len, 3);
    assert_memory_equal(e, "\x01\x00\x01", 3);
    wc_FreeRsaKey(&rsa);
  } else {
    assert_true(is_upper_hex(k.public_text, 64));
  }
  assert_int_equal(keys_load(k.private_pem, &again, &eb), 0);
  assert_int_equal(again.type, type);
  assert_string_equal(again.public_text, k.public_text);
  assert_string_equal(again.keyid, k.keyid);
  assert_string_equal(again.private_pem, k.private_pem);
  keys_free(&again);
  keys_free(&k);
}

static void test_generate_ed25519(void **state) {
  check_generated(KEY_ED25519, 0);
  uptane_key a, b;
  otad_errbuf eb = {{0}};
  assert_int_equal(keys_generate(KEY_ED25519, &a, &eb), 0);
  assert_int_equal(keys_generate(KEY_ED25519, &b, &eb), 0);
  assert_string_not_equal(a.public_text, b.public_text);
  keys_free(&a);
  keys_free(&b);
}

static void test_generate_rsa2048(void **state) {
  check_generated(KEY_RSA2048, 256);
}
static void test_generate_rsa3072(void **state) {
  check_generated(KEY_RSA3072, 384);
}
static void test_generate_rsa4096(void **state) {
  check_generated(KEY_RSA4096, 512);
}

static void test_generate_rejects_unknown_type(void **state) {
  uptane_key k;
  otad_errbuf eb = {{0}};
  assert_int_equal(keys_generate((enum uptane_key_type)42, &k, &eb), OTAD_EINVAL);
  assert_null(k.private_pem);
}

static size_t b64_decode(const char *b64, uint8_t *out, size_t size) {
  word32 n = (word32)size;
  assert_int_equal(Base64_Decode((const byte *)b64, (word32)strlen(b64), out, &n), 0);
  return n;
}

/* Ed25519 is deterministic: RFC 8032's own answer. */
static void test_sign_ed25519_known_answer(void **state) {
  char *text = fixture("uptane-ed25519.key");
  uptane_key k;
  otad_errbuf eb = {{0}};
  assert_int_equal(keys_load(text, &k, &eb), 0);
  char *sig;
  const char *method;
  assert_int_equal(keys_sign(&k, (const uint8_t *)"", 0, &sig, &method, &eb), 0);
  assert_string_equal(method, "ed25519");
  assert_string_equal(sig, ED_EMPTY_SIG);
  free(sig);
  keys_free(&k);
  free(text);
}

static void test_sign_ed25519_verifies(void **state) {
  uptane_key k;
  otad_errbuf eb = {{0}};
  assert_int_equal(keys_generate(KEY_ED25519, &k, &eb), 0);
  const char *msg = "{\"signed\":{\"primary_ecu_serial\":\"s1\"}}";
  char *sig_b64;
  const char *method;
  assert_int_equal(keys_sign(&k, (const uint8_t *)msg, strlen(msg), &sig_b64, &method, &eb), 0);
  assert_string_equal(method, "ed25519");
  uint8_t sig[128], pub[32];
  size_t sig_len = b64_decode(sig_b64, sig, sizeof(sig));
  assert_int_equal(sig_len, 64);
  word32 pub_len = sizeof(pub);
  assert_int_equal(Base16_Decode((const byte *)k.public_text, 64, pub, &pub_len), 0);
  ed25519_key ed;
  int ok = 0;
  assert_int_equal(wc_ed25519_init(&ed), 0);
  assert_int_equal(wc_ed25519_import_public(pub, 32, &ed), 0);
  assert_int_equal(wc_ed25519_verify_msg(sig, 64, (const byte *)msg, (word32)strlen(msg), &ok, &ed),
                   0);
  assert_int_equal(ok, 1);
  ok = 0;
  wc_ed25519_verify_msg(sig, 64, (const byte *)"{}", 2, &ok, &ed); /* another message */
  assert_int_equal(ok, 0);
  wc_ed25519_free(&ed);
  free(sig_b64);
  keys_free(&k);
}

/* Writes a file in a temporary directory; returns its path in a static slot. */
static void write_tmp(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
}

static void check_rsa_signature(const uptane_key *k, const char *msg, const char *sig_b64) {
  uint8_t der[1024], sig[600], hash[WC_SHA256_DIGEST_SIZE];
  int der_len = wc_PubKeyPemToDer((const unsigned char *)k->public_text,
                                  (int)strlen(k->public_text), der, sizeof(der));
  assert_true(der_len > 0);
  RsaKey rsa;
  word32 idx = 0;
  assert_int_equal(wc_InitRsaKey(&rsa, NULL), 0);
  assert_int_equal(wc_RsaPublicKeyDecode(der, &idx, &rsa, (word32)der_len), 0);
  size_t sig_len = b64_decode(sig_b64, sig, sizeof(sig));
  assert_int_equal(sig_len, (size_t)wc_RsaEncryptSize(&rsa));
  assert_int_equal(wc_Sha256Hash((const byte *)msg, (word32)strlen(msg), hash), 0);
  int bits = wc_RsaEncryptSize(&rsa) * 8;

  uint8_t out[600];
  uint8_t copy[600];
  memcpy(copy, sig, sig_len);
  int n = wc_RsaPSS_Verify_ex(copy, (word32)sig_len, out, sizeof(out), WC_HASH_TYPE_SHA256,
                              WC_MGF1SHA256, 32, &rsa);
  assert_true(n > 0);
  assert_int_equal(
      wc_RsaPSS_CheckPadding_ex(hash, sizeof(hash), out, (word32)n, WC_HASH_TYPE_SHA256, 32, bits),
      0);
  /* The salt is exactly 32 bytes: a 20-byte expectation must fail. */
  memcpy(copy, sig, sig_len);
  n = wc_RsaPSS_Verify_ex(copy, (word32)sig_len, out, sizeof(out), WC_HASH_TYPE_SHA256,
                          WC_MGF1SHA256, 20, &rsa);
  assert_true(n < 0 || wc_RsaPSS_CheckPadding_ex(hash, sizeof(hash), out, (word32)n,
                                                 WC_HASH_TYPE_SHA256, 20, bits) != 0);
  /* Another message's hash must fail. */
  uint8_t other[WC_SHA256_DIGEST_SIZE];
  assert_int_equal(wc_Sha256Hash((const byte *)"x", 1, other), 0);
  memcpy(copy, sig, sig_len);
  n = wc_RsaPSS_Verify_ex(copy, (word32)sig_len, out, sizeof(out), WC_HASH_TYPE_SHA256,
                          WC_MGF1SHA256, 32, &rsa);
  assert_true(n > 0);
  assert_int_not_equal(wc_RsaPSS_CheckPadding_ex(other, sizeof(other), out, (word32)n,
                                                 WC_HASH_TYPE_SHA256, 32, bits),
                       0);
  wc_FreeRsaKey(&rsa);

  /* And the openssl CLI agrees, when it is installed. */
  if (system("openssl version >/dev/null 2>&1") != 0) return;
  char dir[] = "/tmp/otad-test-keys-XXXXXX", path[3][128], cmd[1024];
  assert_non_null(mkdtemp(dir));
  snprintf(path[0], sizeof(path[0]), "%s/pub.pem", dir);
  snprintf(path[1], sizeof(path[1]), "%s/sig.bin", dir);
  snprintf(path[2], sizeof(path[2]), "%s/hash.bin", dir);
  write_tmp(path[0], k->public_text, strlen(k->public_text));
  write_tmp(path[1], sig, sig_len);
  write_tmp(path[2], hash, sizeof(hash));
  snprintf(cmd, sizeof(cmd),
           "openssl pkeyutl -verify -pubin -inkey %s -sigfile %s -in %s "
           "-pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 -pkeyopt digest:sha256 "
           ">/dev/null 2>&1",
           path[0], path[1], path[2]);
  int openssl_ok = system(cmd) == 0;
  write_tmp(path[2], other, sizeof(other));
  int openssl_other = system(cmd) == 0;
  for (int i = 0; i < 3; i++)
    unlink(path[i]);
  rmdir(dir);
  assert_true(openssl_ok);
  assert_false(openssl_other);
}

static void test_sign_rsa_pss(void **state) {
  char *text = fixture("uptane-rsa.key");
  uptane_key k;
  otad_errbuf eb = {{0}};
  assert_int_equal(keys_load(text, &k, &eb), 0);
  const char *msg = "{\"signed\":{\"primary_ecu_serial\":\"s1\"}}";
  char *sig1, *sig2;
  const char *method;
  assert_int_equal(keys_sign(&k, (const uint8_t *)msg, strlen(msg), &sig1, &method, &eb), 0);
  assert_string_equal(method, "rsassa-pss-sha256");
  assert_null(strchr(sig1, '\n'));
  check_rsa_signature(&k, msg, sig1);
  /* PSS is randomised: a second signature differs and verifies too. */
  assert_int_equal(keys_sign(&k, (const uint8_t *)msg, strlen(msg), &sig2, &method, &eb), 0);
  assert_string_not_equal(sig1, sig2);
  check_rsa_signature(&k, msg, sig2);
  free(sig1);
  free(sig2);
  keys_free(&k);
  free(text);
}

static void test_sign_rsa3072_generated(void **state) {
  uptane_key k;
  otad_errbuf eb = {{0}};
  assert_int_equal(keys_generate(KEY_RSA3072, &k, &eb), 0);
  char *sig;
  const char *method;
  const char *msg = "manifest";
  assert_int_equal(keys_sign(&k, (const uint8_t *)msg, strlen(msg), &sig, &method, &eb), 0);
  assert_string_equal(method, "rsassa-pss-sha256");
  check_rsa_signature(&k, msg, sig);
  free(sig);
  keys_free(&k);
}

static void test_sign_rejects_bad_key(void **state) {
  uptane_key k = {.type = KEY_RSA2048, .private_pem = "garbage"};
  otad_errbuf eb = {{0}};
  char *sig = (char *)1;
  const char *method = "x";
  assert_int_equal(keys_sign(&k, (const uint8_t *)"m", 1, &sig, &method, &eb), OTAD_ECRYPTO);
  assert_null(sig);
  assert_null(method);
}

/* keys_generate runs on the libuv pool: several at once must each get a sound key. */
static void *generate_thread(void *arg) {
  uptane_key *k = arg;
  otad_errbuf eb;
  if (keys_generate(KEY_ED25519, k, &eb) != 0) k->keyid[0] = '\0';
  return NULL;
}

static void test_generate_concurrently(void **state) {
  enum { N = 6 };
  pthread_t t[N];
  uptane_key k[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(pthread_create(&t[i], NULL, generate_thread, &k[i]), 0);
  for (int i = 0; i < N; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < N; i++) {
    assert_int_equal(strlen(k[i].keyid), 64);
    for (int j = 0; j < i; j++)
      assert_string_not_equal(k[i].keyid, k[j].keyid);
    char *sig;
    const char *method;
    otad_errbuf eb;
    assert_int_equal(keys_sign(&k[i], (const uint8_t *)"m", 1, &sig, &method, &eb), 0);
    free(sig);
  }
  for (int i = 0; i < N; i++)
    keys_free(&k[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keyid_known_answers),
      cmocka_unit_test(test_director_type),
      cmocka_unit_test(test_load_openssl_rsa),
      cmocka_unit_test(test_load_openssl_ed25519),
      cmocka_unit_test(test_load_aktualizr_ed25519_hex),
      cmocka_unit_test(test_load_rejects),
      cmocka_unit_test(test_generate_ed25519),
      cmocka_unit_test(test_generate_rsa2048),
      cmocka_unit_test(test_generate_rsa3072),
      cmocka_unit_test(test_generate_rsa4096),
      cmocka_unit_test(test_generate_rejects_unknown_type),
      cmocka_unit_test(test_sign_ed25519_known_answer),
      cmocka_unit_test(test_sign_ed25519_verifies),
      cmocka_unit_test(test_sign_rsa_pss),
      cmocka_unit_test(test_sign_rsa3072_generated),
      cmocka_unit_test(test_sign_rejects_bad_key),
      cmocka_unit_test(test_generate_concurrently),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  wolfSSL_Cleanup();
  return failed;
}
