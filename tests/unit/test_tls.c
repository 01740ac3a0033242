/* test_tls.c - PKCS#12 parsing and certificate facts (transport/tls.c) against fixtures
 * made by the openssl CLI (tests/data/make_fixtures.sh). */
/* cmocka needs these in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "crypto/tls.h"

/* Reads a fixture as a NUL-terminated heap buffer; *len (if given) gets its size. */
static char *fixture(const char *name, size_t *len) {
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
  if (len) *len = (size_t)n;
  return buf;
}

/* A value from facts.txt ("name.key=value"), what openssl says about the certificates. */
static void fact(const char *key, char *out, size_t size) {
  char *facts = fixture("facts.txt", NULL);
  size_t klen = strlen(key);
  out[0] = '\0';
  for (char *line = strtok(facts, "\n"); line; line = strtok(NULL, "\n")) {
    if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
      snprintf(out, size, "%s", line + klen + 1);
      free(facts);
      return;
    }
  }
  free(facts);
  fail_msg("no fact %s in facts.txt", key);
}

static long long fact_num(const char *key) {
  char v[64];
  fact(key, v, sizeof(v));
  return atoll(v);
}

static int parse_fixture(const char *name, const char *password, tls_creds *c, otad_errbuf *eb) {
  size_t len;
  char *der = fixture(name, &len);
  int ret = tls_p12_parse((const uint8_t *)der, len, password, c, eb);
  free(der);
  return ret;
}

static void assert_creds_empty(const tls_creds *c) {
  assert_null(c->key_pem);
  assert_null(c->cert_pem);
  assert_null(c->ca_pem);
}

/* What libcurl does with the blobs: chain + key into a context, and the key must fit. */
static void assert_loads_in_wolfssl(const tls_creds *c) {
  WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
  assert_non_null(ctx);
  size_t n = strlen(c->cert_pem) + strlen(c->ca_pem);
  char *chain = malloc(n + 1);
  assert_non_null(chain);
  strcpy(chain, c->cert_pem);
  strcat(chain, c->ca_pem);
  assert_int_equal(
      wolfSSL_CTX_use_certificate_chain_buffer(ctx, (const unsigned char *)chain, (long)n),
      WOLFSSL_SUCCESS);
  assert_int_equal(wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)c->key_pem,
                                                     (long)strlen(c->key_pem),
                                                     WOLFSSL_FILETYPE_PEM),
                   WOLFSSL_SUCCESS);
  assert_int_equal(wolfSSL_CTX_check_private_key(ctx), WOLFSSL_SUCCESS);
  assert_int_equal(wolfSSL_CTX_load_verify_buffer(ctx, (const unsigned char *)c->ca_pem,
                                                  (long)strlen(c->ca_pem), WOLFSSL_FILETYPE_PEM),
                   WOLFSSL_SUCCESS);
  wolfSSL_CTX_free(ctx);
  free(chain);
}

/* An EC archive of any cipher gives back exactly the PEM files openssl started from. */
static void check_ec_archive(const char *name) {
  tls_creds c;
  otad_errbuf eb = {{0}};
  int ret = parse_fixture(name, "", &c, &eb);
  if (ret != 0) fail_msg("%s: %s: %s", name, otad_errname(ret), eb.msg);
  char *cert = fixture("client-ec.pem", NULL), *ca = fixture("ca.pem", NULL);
  char *key = fixture("client-ec.key", NULL);
  assert_string_equal(c.cert_pem, cert);
  assert_string_equal(c.ca_pem, ca);
  /* wolfSSL's PKCS#8 for EC (with curve and public key) is openssl's byte for byte. */
  assert_string_equal(c.key_pem, key);
  assert_int_equal(tls_key_matches_cert(c.key_pem, cert, &eb), 0);
  assert_loads_in_wolfssl(&c);
  free(cert);
  free(ca);
  free(key);
  tls_creds_free(&c);
  assert_creds_empty(&c);
}

static void test_p12_ec_rc2_legacy(void **state) {
  check_ec_archive("ec-rc2.p12");
}
static void test_p12_ec_3des(void **state) {
  check_ec_archive("ec-3des.p12");
}
static void test_p12_ec_aes(void **state) {
  check_ec_archive("ec-aes.p12");
}

static void check_rsa_archive(const char *name) {
  tls_creds c;
  otad_errbuf eb = {{0}};
  int ret = parse_fixture(name, "s3cret", &c, &eb);
  if (ret != 0) fail_msg("%s: %s: %s", name, otad_errname(ret), eb.msg);
  char *cert = fixture("client-rsa.pem", NULL), *ca = fixture("ca.pem", NULL);
  char *key = fixture("client-rsa.key", NULL);
  assert_string_equal(c.cert_pem, cert);
  assert_string_equal(c.ca_pem, ca);
  /* RSA PKCS#8 has one DER encoding, so wolfSSL's PEM must equal openssl's byte for byte. */
  assert_string_equal(c.key_pem, key);
  assert_loads_in_wolfssl(&c);
  free(cert);
  free(ca);
  free(key);
  tls_creds_free(&c);
}

static void test_p12_rsa_rc2_password(void **state) {
  check_rsa_archive("rsa-rc2-s3cret.p12");
}
static void test_p12_rsa_aes_password(void **state) {
  check_rsa_archive("rsa-aes-s3cret.p12");
}

/* wolfSSL alone would take the CA certificate (first on the key's curve) as the client's. */
static void test_p12_ca_listed_first(void **state) {
  tls_creds c;
  otad_errbuf eb = {{0}};
  int ret = parse_fixture("ec-ca-first-s3cret.p12", "s3cret", &c, &eb);
  if (ret != 0) fail_msg("%s: %s", otad_errname(ret), eb.msg);
  char *cert = fixture("client-ec.pem", NULL), *ca = fixture("ca.pem", NULL);
  assert_string_equal(c.cert_pem, cert);
  assert_string_equal(c.ca_pem, ca);
  assert_loads_in_wolfssl(&c);
  free(cert);
  free(ca);
  tls_creds_free(&c);
}

static void test_p12_ed25519(void **state) {
  tls_creds c;
  otad_errbuf eb = {{0}};
  int ret = parse_fixture("ed25519-aes.p12", "", &c, &eb);
  if (ret != 0) fail_msg("%s: %s", otad_errname(ret), eb.msg);
  char *cert = fixture("client-ed25519.pem", NULL), *ca = fixture("ca.pem", NULL);
  assert_string_equal(c.cert_pem, cert);
  assert_string_equal(c.ca_pem, ca);
  assert_non_null(strstr(c.key_pem, "-----BEGIN PRIVATE KEY-----\n"));
  assert_int_equal(tls_key_matches_cert(c.key_pem, cert, &eb), 0);
  assert_loads_in_wolfssl(&c);
  free(cert);
  free(ca);
  tls_creds_free(&c);
}

static void test_p12_wrong_password(void **state) {
  const char *archives[] = {"rsa-rc2-s3cret.p12", "rsa-aes-s3cret.p12"};
  const char *wrong[] = {"", "s3cret ", "S3cret", NULL};
  for (size_t a = 0; a < 2; a++) {
    for (size_t w = 0; w < 4; w++) {
      tls_creds c;
      otad_errbuf eb = {{0}};
      assert_int_equal(parse_fixture(archives[a], wrong[w], &c, &eb), OTAD_EP12PASS);
      assert_non_null(strstr(eb.msg, "wrong password"));
      assert_creds_empty(&c);
    }
  }
  /* And an archive made with the empty password refuses a non-empty one. */
  tls_creds c;
  otad_errbuf eb = {{0}};
  assert_int_equal(parse_fixture("ec-aes.p12", "x", &c, &eb), OTAD_EP12PASS);
}

static void test_p12_truncated(void **state) {
  tls_creds c;
  otad_errbuf eb = {{0}};
  assert_int_equal(parse_fixture("truncated.p12", "", &c, &eb), OTAD_EP12);
  assert_non_null(strstr(eb.msg, "truncated"));
  assert_creds_empty(&c);
}

/* An archive asking for ~10^8 MAC iterations (found by fuzz_p12) is refused at once
 * instead of stalling the device in PBKDF2. */
static void test_p12_huge_iterations(void **state) {
  tls_creds c;
  otad_errbuf eb = {{0}};
  time_t t0 = time(NULL);
  assert_int_equal(parse_fixture("huge-iterations.p12", "", &c, &eb), OTAD_EP12);
  assert_true(time(NULL) - t0 < 5);
  assert_non_null(strstr(eb.msg, "key-derivation iterations"));
  assert_creds_empty(&c);
}

static void test_p12_not_pkcs12(void **state) {
  tls_creds c;
  otad_errbuf eb = {{0}};
  assert_int_equal(parse_fixture("not-p12.der", "", &c, &eb), OTAD_EP12);
  assert_non_null(strstr(eb.msg, "not a PKCS#12"));
  assert_creds_empty(&c);

  const char *junk = "this is not DER at all";
  assert_int_equal(tls_p12_parse((const uint8_t *)junk, strlen(junk), "", &c, &eb), OTAD_EP12);
  assert_int_equal(tls_p12_parse((const uint8_t *)junk, 0, "", &c, &eb), OTAD_EP12);
  assert_int_equal(tls_p12_parse(NULL, 0, "", &c, &eb), OTAD_EP12);
  assert_creds_empty(&c);
}

static void test_p12_without_key(void **state) {
  tls_creds c;
  otad_errbuf eb = {{0}};
  assert_int_equal(parse_fixture("certonly.p12", "", &c, &eb), OTAD_EP12);
  assert_non_null(strstr(eb.msg, "no private key"));
  assert_creds_empty(&c);
}

static void test_p12_without_cert(void **state) {
  tls_creds c;
  otad_errbuf eb = {{0}};
  assert_int_equal(parse_fixture("keyonly.p12", "", &c, &eb), OTAD_EP12);
  assert_non_null(strstr(eb.msg, "no certificate"));
  assert_creds_empty(&c);
}

/* Every fact openssl reported about a certificate, read with the clock's zone far from UTC. */
static void check_cert_facts(const char *name) {
  char key[128], want[512];
  char *pem = fixture(name, NULL);
  char base[64];
  snprintf(base, sizeof(base), "%.*s", (int)(strlen(name) - 4), name);
  tls_cert_info info;
  otad_errbuf eb = {{0}};
  int ret = tls_cert_info_pem(pem, &info, &eb);
  if (ret != 0) fail_msg("%s: %s", name, eb.msg);
  snprintf(key, sizeof(key), "%s.cn", base);
  fact(key, want, sizeof(want));
  assert_string_equal(info.cn, want);
  snprintf(key, sizeof(key), "%s.subject", base);
  fact(key, want, sizeof(want));
  assert_string_equal(info.subject, want);
  snprintf(key, sizeof(key), "%s.issuer", base);
  fact(key, want, sizeof(want));
  assert_string_equal(info.issuer, want);
  snprintf(key, sizeof(key), "%s.not_before", base);
  assert_int_equal((long long)info.not_before, fact_num(key));
  snprintf(key, sizeof(key), "%s.not_after", base);
  assert_int_equal((long long)info.not_after, fact_num(key));
  free(pem);
}

static void test_cert_info_matches_openssl(void **state) {
  setenv("TZ", "XYZ-13:30", 1); /* a zone that would shift a local-time conversion */
  tzset();
  check_cert_facts("client-ec.pem");
  check_cert_facts("client-rsa.pem");
  check_cert_facts("client-ed25519.pem");
  check_cert_facts("expired.pem");
  check_cert_facts("ca.pem");
  unsetenv("TZ");
  tzset();
}

/* Dates known without openssl: the script asks for them (UTCTime and GeneralizedTime). */
static void test_cert_info_known_dates(void **state) {
  tls_cert_info info;
  otad_errbuf eb = {{0}};
  char *pem = fixture("expired.pem", NULL);
  assert_int_equal(tls_cert_info_pem(pem, &info, &eb), 0);
  assert_string_equal(info.cn, "expired-device");
  assert_int_equal((long long)info.not_before, 1577836800LL); /* 2020-01-01T00:00:00Z */
  assert_int_equal((long long)info.not_after, 1609459200LL);  /* 2021-01-01T00:00:00Z */
  assert_true(info.not_after < time(NULL));
  free(pem);

  pem = fixture("client-ec.pem", NULL);
  assert_int_equal(tls_cert_info_pem(pem, &info, &eb), 0);
  assert_string_equal(info.cn, "ec-device-0001");
  assert_string_equal(info.subject, "CN=ec-device-0001, O=otad test fleet");
  assert_string_equal(info.issuer, "O=otad test, CN=otad test CA");
  assert_int_equal((long long)info.not_before, 1704067200LL); /* 2024-01-01T00:00:00Z */
  assert_int_equal((long long)info.not_after, 4102444799LL);  /* 2099-12-31T23:59:59Z */
  free(pem);
}

static void test_cert_info_first_of_chain(void **state) {
  char *cert = fixture("client-rsa.pem", NULL), *ca = fixture("ca.pem", NULL);
  char *chain = malloc(strlen(cert) + strlen(ca) + 1);
  assert_non_null(chain);
  strcpy(chain, cert);
  strcat(chain, ca);
  tls_cert_info info;
  otad_errbuf eb = {{0}};
  assert_int_equal(tls_cert_info_pem(chain, &info, &eb), 0);
  assert_string_equal(info.cn, "rsa-device-0002");
  free(chain);
  free(cert);
  free(ca);
}

static void test_cert_info_garbage(void **state) {
  tls_cert_info info;
  otad_errbuf eb = {{0}};
  assert_int_equal(tls_cert_info_pem("no certificate here", &info, &eb), OTAD_ECERT);
  assert_int_equal(tls_cert_info_pem("", &info, &eb), OTAD_ECERT);
  assert_int_equal(tls_cert_info_pem(NULL, &info, &eb), OTAD_ECERT);
  char *key = fixture("client-ec.key", NULL);
  assert_int_equal(tls_cert_info_pem(key, &info, &eb), OTAD_ECERT);
  free(key);
  /* A certificate with a damaged body. */
  char *pem = fixture("ca.pem", NULL);
  pem[100] = pem[100] == 'A' ? 'B' : 'A';
  pem[101] = '!';
  assert_int_equal(tls_cert_info_pem(pem, &info, &eb), OTAD_ECERT);
  free(pem);
}

static void test_key_matches_cert(void **state) {
  char *ec_key = fixture("client-ec.key", NULL), *ec_cert = fixture("client-ec.pem", NULL);
  char *rsa_key = fixture("client-rsa.key", NULL), *rsa_cert = fixture("client-rsa.pem", NULL);
  char *expired = fixture("expired.pem", NULL), *ca = fixture("ca.pem", NULL);
  otad_errbuf eb = {{0}};
  assert_int_equal(tls_key_matches_cert(ec_key, ec_cert, &eb), 0);
  assert_int_equal(tls_key_matches_cert(rsa_key, rsa_cert, &eb), 0);
  assert_int_equal(tls_key_matches_cert(ec_key, expired, &eb), 0); /* same key, other cert */
  assert_int_equal(tls_key_matches_cert(ec_key, rsa_cert, &eb), OTAD_ECERT);
  assert_int_equal(tls_key_matches_cert(rsa_key, ec_cert, &eb), OTAD_ECERT);
  /* Same curve, other key: wolfSSL's own check_private_key passes this one. */
  assert_int_equal(tls_key_matches_cert(ec_key, ca, &eb), OTAD_ECERT);
  assert_non_null(strstr(eb.msg, "does not belong"));
  assert_int_equal(tls_key_matches_cert("junk", ec_cert, &eb), OTAD_ECERT);
  assert_int_equal(tls_key_matches_cert(ec_key, "junk", &eb), OTAD_ECERT);
  free(ec_key);
  free(ec_cert);
  free(rsa_key);
  free(rsa_cert);
  free(expired);
  free(ca);
}

static void test_creds_free_resets(void **state) {
  tls_creds c;
  otad_errbuf eb = {{0}};
  assert_int_equal(parse_fixture("ec-aes.p12", "", &c, &eb), 0);
  tls_creds_free(&c);
  assert_creds_empty(&c);
  tls_creds_free(&c); /* twice is harmless */
  tls_creds_free(NULL);
}

int main(void) {
  tls_global_init();
  tls_global_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_p12_ec_rc2_legacy),
      cmocka_unit_test(test_p12_ec_3des),
      cmocka_unit_test(test_p12_ec_aes),
      cmocka_unit_test(test_p12_rsa_rc2_password),
      cmocka_unit_test(test_p12_rsa_aes_password),
      cmocka_unit_test(test_p12_ca_listed_first),
      cmocka_unit_test(test_p12_ed25519),
      cmocka_unit_test(test_p12_wrong_password),
      cmocka_unit_test(test_p12_truncated),
      cmocka_unit_test(test_p12_huge_iterations),
      cmocka_unit_test(test_p12_not_pkcs12),
      cmocka_unit_test(test_p12_without_key),
      cmocka_unit_test(test_p12_without_cert),
      cmocka_unit_test(test_cert_info_matches_openssl),
      cmocka_unit_test(test_cert_info_known_dates),
      cmocka_unit_test(test_cert_info_first_of_chain),
      cmocka_unit_test(test_cert_info_garbage),
      cmocka_unit_test(test_key_matches_cert),
      cmocka_unit_test(test_creds_free_resets),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  wolfSSL_Cleanup();
  return failed;
}
