/* test_certgen.c - device certificates signed by a fleet CA (transport/certgen.c).
 *
 * The fleet CAs are made by the openssl CLI at the start (EC P-256, RSA 2048, Ed25519, a
 * SEC1 key with an EC PARAMETERS block, a leaf that is no CA, a CA whose keyUsage forbids
 * signing, an expired CA), as an operator would make them. Every certificate generated
 * is checked by wolfSSL (certgen_verify) and by `openssl verify -x509_strict`, and what it
 * says by `openssl x509 -text`.
 */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crypto/certgen.h"
#include "crypto/tls.h"

static char tmpdir[64];

/* Makes the CA fixtures with openssl; see the comment at the top. */
static const char make_cas[] =
    "set -e\n"
    "cat > ext.cnf <<'EOF'\n"
    "[req]\n"
    "distinguished_name = dn\n"
    "[dn]\n"
    "[ca]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[nosign]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,digitalSignature\n"
    "[leaf]\n"
    "basicConstraints = CA:FALSE\n"
    "[ca_ca]\n"
    "default_ca = d\n"
    "[d]\n"
    "database = index.txt\n"
    "new_certs_dir = .\n"
    "serial = serial\n"
    "default_md = sha256\n"
    "policy = p\n"
    "[p]\n"
    "commonName = supplied\n"
    "EOF\n"
    "req() { openssl req -x509 -config ext.cnf -nodes -days 30 \"$@\" 2>/dev/null; }\n"
    "req -extensions ca -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout ecca.key "
    "  -out ecca.pem -subj '/C=DE/O=Fleet/CN=Fleet EC CA'\n"
    "req -extensions ca -newkey rsa:2048 -keyout rsaca.key -out rsaca.pem "
    "  -subj '/O=Fleet/CN=Fleet RSA CA'\n"
    "req -extensions ca -newkey ed25519 -keyout edca.key -out edca.pem -subj '/CN=Fleet Ed CA'\n"
    "openssl ecparam -genkey -name prime256v1 -out sec1.key\n"
    "req -extensions ca -key sec1.key -out sec1.pem -subj '/CN=Fleet SEC1 CA'\n"
    "req -extensions nosign -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout nosign.key "
    "  -out nosign.pem -subj '/CN=No Signing CA'\n"
    "openssl req -new -config ext.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
    "  -keyout leaf.key -out leaf.csr -subj '/CN=some-device' 2>/dev/null\n"
    "openssl x509 -req -in leaf.csr -CA ecca.pem -CAkey ecca.key -CAcreateserial -days 30 "
    "  -extfile ext.cnf -extensions leaf -out leaf.pem 2>/dev/null\n"
    "openssl pkey -in ecca.key -aes256 -passout pass:secret -out encrypted.key\n"
    "touch index.txt; echo 01 > serial\n"
    "openssl req -new -config ext.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
    "  -keyout expired.key -out expired.csr -subj '/CN=Expired CA' 2>/dev/null\n"
    "openssl ca -batch -config ext.cnf -name d -selfsign -keyfile expired.key -in expired.csr "
    "  -out expired.pem -extfile ext.cnf -extensions ca -startdate 20200101000000Z "
    "  -enddate 20210101000000Z -notext 2>/dev/null\n";

static int setup(void **state) {
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/otad-certgen.XXXXXX");
  if (!mkdtemp(tmpdir)) return -1;
  char script[1024];
  snprintf(script, sizeof(script), "%s/make.sh", tmpdir);
  FILE *f = fopen(script, "w");
  if (!f) return -1;
  fputs(make_cas, f);
  fclose(f);
  char cmd[1200];
  snprintf(cmd, sizeof(cmd), "cd %s && sh make.sh", tmpdir);
  if (system(cmd) != 0) {
    fprintf(stderr, "making the CA fixtures with openssl failed\n");
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  char cmd[256];
  if (!getenv("KEEP")) {
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) return -1;
  }
  return 0;
}

/* A fixture file as a heap string. */
static char *slurp(const char *name) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
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

static void spit(const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Runs a shell command in tmpdir; returns its exit status. */
static int sh(const char *fmt, ...) {
  char cmd[2048];
  int n = snprintf(cmd, sizeof(cmd), "cd %s && ", tmpdir);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
  va_end(ap);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Generates a device certificate with ca (name stem of NAME.pem/NAME.key) and checks it
 * the generic ways; the key and certificate are left in out.key / out.pem. */
static void generate_and_check(const char *ca, const certgen_opts *o) {
  char name[64];
  snprintf(name, sizeof(name), "%s.pem", ca);
  char *ca_pem = slurp(name);
  snprintf(name, sizeof(name), "%s.key", ca);
  char *ca_key = slurp(name);
  char *key = NULL, *cert = NULL;
  otad_errbuf eb = {{0}};
  int rc = certgen_device(ca_pem, ca_key, o, &key, &cert, &eb);
  if (rc) fail_msg("certgen_device with %s: %s", ca, eb.msg);
  assert_non_null(strstr(key, "-----BEGIN PRIVATE KEY-----"));
  assert_non_null(strstr(cert, "-----BEGIN CERTIFICATE-----"));

  /* wolfSSL: the key is the certificate's and the CA signed it. */
  assert_int_equal(tls_key_matches_cert(key, cert, &eb), 0);
  rc = certgen_verify(cert, ca_pem, &eb);
  if (rc) fail_msg("wolfSSL does not verify the certificate: %s", eb.msg);

  /* The facts. */
  tls_cert_info ci, cai;
  assert_int_equal(tls_cert_info_pem(cert, &ci, &eb), 0);
  assert_int_equal(tls_cert_info_pem(ca_pem, &cai, &eb), 0);
  assert_string_equal(ci.cn, o->cn);
  assert_string_equal(ci.issuer, cai.subject);
  time_t now = time(NULL);
  assert_true(ci.not_before <= now - 3600 + 5 && ci.not_before >= now - 3600 - 300);
  assert_true(ci.not_after > now + (time_t)o->days * 86400 - 300);
  assert_true(ci.not_after < now + (time_t)o->days * 86400 + 300);

  /* openssl: strict verification for a TLS client, and the extensions asked for. */
  spit("out.pem", cert);
  spit("out.key", key);
  snprintf(name, sizeof(name), "%s.pem", ca);
  assert_int_equal(sh("openssl verify -x509_strict -purpose sslclient -CAfile %s out.pem "
                      ">/dev/null",
                      name),
                   0);
  assert_int_equal(sh("openssl x509 -in out.pem -noout -text > out.txt"), 0);
  char *text = slurp("out.txt");
  assert_non_null(strstr(text, "Version: 3"));
  assert_non_null(strstr(text, "CA:FALSE"));
  assert_non_null(strstr(text, "Digital Signature"));
  assert_non_null(strstr(text, "TLS Web Client Authentication"));
  assert_non_null(strstr(text, "X509v3 Subject Key Identifier"));
  assert_non_null(strstr(text, "X509v3 Authority Key Identifier"));
  assert_non_null(strstr(text, o->rsa_bits ? "rsaEncryption" : "id-ecPublicKey"));
  if (o->rsa_bits) {
    char bits[64];
    snprintf(bits, sizeof(bits), "Public-Key: (%d bit)", o->rsa_bits);
    assert_non_null(strstr(text, bits));
    assert_non_null(strstr(text, "Key Encipherment"));
  } else {
    assert_non_null(strstr(text, "prime256v1"));
  }
  /* openssl reads the key, and it is the certificate's. */
  assert_int_equal(sh("test \"$(openssl pkey -in out.key -pubout)\" = "
                      "\"$(openssl x509 -in out.pem -noout -pubkey)\""),
                   0);
  free(text);
  explicit_bzero(key, strlen(key));
  free(key);
  free(cert);
  free(ca_pem);
  free(ca_key);
}

static void test_ec_device_ec_ca(void **state) {
  certgen_opts o = {
      .cn = "brave-otter-4821", .c = "de", .st = "Berlin", .o = "Acme GmbH", .days = 365};
  generate_and_check("ecca", &o);
  assert_int_equal(sh("test $(openssl asn1parse -in out.pem | grep -c UTCTIME) = 2"), 0);
  tls_cert_info ci;
  otad_errbuf eb;
  char *cert = slurp("out.pem");
  assert_int_equal(tls_cert_info_pem(cert, &ci, &eb), 0);
  assert_string_equal(ci.subject, "C=DE, ST=Berlin, O=Acme GmbH, CN=brave-otter-4821");
  assert_string_equal(ci.issuer, "C=DE, O=Fleet, CN=Fleet EC CA");
  free(cert);
  char *text = slurp("out.txt");
  assert_non_null(strstr(text, "ecdsa-with-SHA256"));
  free(text);
}

static void test_rsa_device_rsa_ca(void **state) {
  certgen_opts o = {.cn = "rsa-device", .days = 10, .rsa_bits = 2048};
  generate_and_check("rsaca", &o);
  char *text = slurp("out.txt");
  assert_non_null(strstr(text, "sha256WithRSAEncryption"));
  assert_non_null(strstr(text, "Subject: CN = rsa-device"));
  free(text);
}

static void test_ec_device_rsa_ca(void **state) {
  certgen_opts o = {.cn = "mixed-1", .days = 1};
  generate_and_check("rsaca", &o);
}

static void test_rsa_device_ec_ca(void **state) {
  certgen_opts o = {.cn = "mixed-2", .o = "Fleet", .days = 36500, .rsa_bits = 2048};
  generate_and_check("ecca", &o);
  /* RFC 5280: UTCTime through 2049, GeneralizedTime from 2050. */
  assert_int_equal(sh("openssl asn1parse -in out.pem | grep -A1 UTCTIME | grep -q GENERALIZEDTIME"),
                   0);
}

static void test_ed25519_ca(void **state) {
  certgen_opts o = {.cn = "ed-signed", .days = 30};
  generate_and_check("edca", &o);
  char *text = slurp("out.txt");
  assert_non_null(strstr(text, "Signature Algorithm: ED25519"));
  free(text);
}

/* `openssl ecparam -genkey` writes an EC PARAMETERS block before a SEC1 key. */
static void test_sec1_ca_key(void **state) {
  char *key = slurp("sec1.key");
  assert_non_null(strstr(key, "EC PARAMETERS"));
  assert_non_null(strstr(key, "BEGIN EC PRIVATE KEY"));
  free(key);
  certgen_opts o = {.cn = "sec1-signed", .days = 30};
  generate_and_check("sec1", &o);
}

/* Two certificates never share a serial; the maximal CN fits. */
static void test_serials_and_long_cn(void **state) {
  char cn[CERTGEN_MAX_NAME + 1];
  memset(cn, 'a', CERTGEN_MAX_NAME);
  cn[CERTGEN_MAX_NAME] = 0;
  certgen_opts o = {.cn = cn, .days = 30};
  generate_and_check("ecca", &o);
  assert_int_equal(sh("openssl x509 -in out.pem -noout -serial > serial1"), 0);
  generate_and_check("ecca", &o);
  assert_int_equal(sh("openssl x509 -in out.pem -noout -serial > serial2"), 0);
  assert_int_not_equal(sh("cmp -s serial1 serial2"), 0);
  char *s = slurp("serial1");
  assert_int_equal(strlen(s), strlen("serial=") + 32 + 1); /* 16 bytes, positive */
  free(s);
}

static void expect_bad_ca(const char *cert_name, const char *key_name, const char *words) {
  char *ca_pem = slurp(cert_name), *ca_key = slurp(key_name);
  otad_errbuf eb = {{0}};
  assert_int_equal(certgen_check_ca(ca_pem, ca_key, &eb), OTAD_ECERT);
  if (!strstr(eb.msg, words)) fail_msg("expected '%s' in: %s", words, eb.msg);
  char *key = (char *)"x", *cert = (char *)"x";
  certgen_opts o = {.cn = "dev", .days = 1};
  assert_int_equal(certgen_device(ca_pem, ca_key, &o, &key, &cert, &eb), OTAD_ECERT);
  assert_null(key);
  assert_null(cert);
  free(ca_pem);
  free(ca_key);
}

static void test_good_cas_pass_the_check(void **state) {
  const char *cas[] = {"ecca", "rsaca", "edca", "sec1"};
  for (size_t i = 0; i < sizeof(cas) / sizeof(cas[0]); i++) {
    char n[64];
    snprintf(n, sizeof(n), "%s.pem", cas[i]);
    char *c = slurp(n);
    snprintf(n, sizeof(n), "%s.key", cas[i]);
    char *k = slurp(n);
    otad_errbuf eb = {{0}};
    if (certgen_check_ca(c, k, &eb)) fail_msg("%s: %s", cas[i], eb.msg);
    free(c);
    free(k);
  }
}

static void test_mismatched_key_refused(void **state) {
  expect_bad_ca("ecca.pem", "nosign.key", "does not belong"); /* another EC key */
  expect_bad_ca("ecca.pem", "rsaca.key", "does not belong");  /* another type */
  expect_bad_ca("rsaca.pem", "ecca.key", "does not belong");
}

static void test_not_a_ca_refused(void **state) {
  expect_bad_ca("leaf.pem", "leaf.key", "not a CA");
  expect_bad_ca("nosign.pem", "nosign.key", "keyCertSign");
}

static void test_expired_ca_refused(void **state) {
  expect_bad_ca("expired.pem", "expired.key", "expired on 2021-01-01");
}

static void test_unreadable_inputs_refused(void **state) {
  expect_bad_ca("ecca.key", "ecca.key", "no PEM certificate");
  expect_bad_ca("ecca.pem", "ecca.pem", "not a PEM private key");
  expect_bad_ca("ecca.pem", "encrypted.key", "encrypted");
  spit("empty", "");
  expect_bad_ca("ecca.pem", "empty", "empty");
  spit("garbage.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  expect_bad_ca("garbage.pem", "ecca.key", "fleet CA certificate");
}

static void test_bad_options_refused(void **state) {
  char *ca_pem = slurp("ecca.pem"), *ca_key = slurp("ecca.key");
  char long_cn[CERTGEN_MAX_NAME + 2];
  memset(long_cn, 'a', sizeof(long_cn) - 1);
  long_cn[sizeof(long_cn) - 1] = 0;
  const certgen_opts bad[] = {
      {.cn = NULL, .days = 1},
      {.cn = "", .days = 1},
      {.cn = long_cn, .days = 1},
      {.cn = "a\nb", .days = 1},
      {.cn = "x", .c = "DEU", .days = 1},
      {.cn = "x", .c = "1A", .days = 1},
      {.cn = "x", .st = "", .days = 1},
      {.cn = "x", .o = "", .days = 1},
      {.cn = "x", .days = 0},
      {.cn = "x", .days = CERTGEN_MAX_DAYS + 1},
      {.cn = "x", .days = 1, .rsa_bits = 1024},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char *key = NULL, *cert = NULL;
    otad_errbuf eb = {{0}};
    assert_int_equal(certgen_device(ca_pem, ca_key, &bad[i], &key, &cert, &eb), OTAD_EINVAL);
    assert_null(key);
    assert_null(cert);
    assert_true(eb.msg[0] != 0);
  }
  free(ca_pem);
  free(ca_key);
}

/* certgen_verify says no to a certificate another CA signed. */
static void test_verify_other_ca(void **state) {
  char *ec = slurp("ecca.pem"), *ec_key = slurp("ecca.key"), *rsa = slurp("rsaca.pem");
  char *key, *cert;
  otad_errbuf eb = {{0}};
  certgen_opts o = {.cn = "dev", .days = 1};
  assert_int_equal(certgen_device(ec, ec_key, &o, &key, &cert, &eb), 0);
  assert_int_equal(certgen_verify(cert, ec, &eb), 0);
  assert_int_equal(certgen_verify(cert, rsa, &eb), OTAD_ECERT);
  assert_non_null(strstr(eb.msg, "does not verify"));
  free(key);
  free(cert);
  free(ec);
  free(ec_key);
  free(rsa);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ec_device_ec_ca),
      cmocka_unit_test(test_rsa_device_rsa_ca),
      cmocka_unit_test(test_ec_device_rsa_ca),
      cmocka_unit_test(test_rsa_device_ec_ca),
      cmocka_unit_test(test_ed25519_ca),
      cmocka_unit_test(test_sec1_ca_key),
      cmocka_unit_test(test_serials_and_long_cn),
      cmocka_unit_test(test_good_cas_pass_the_check),
      cmocka_unit_test(test_mismatched_key_refused),
      cmocka_unit_test(test_not_a_ca_refused),
      cmocka_unit_test(test_expired_ca_refused),
      cmocka_unit_test(test_unreadable_inputs_refused),
      cmocka_unit_test(test_bad_options_refused),
      cmocka_unit_test(test_verify_other_ca),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
