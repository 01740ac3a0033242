/* test_canonical_json.c - canonical JSON (core/canonical_json.c): known answers written by
 * hand, and python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
 * answers from tests/data/uptane/canonical.txt (made by make_fixtures.py). */
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

#include "core/canonical_json.h"

/* Canonical form of the JSON text in, or NULL with *ret set when there is none. */
static char *canon(const char *in, int *ret) {
  cJSON *v = cJSON_Parse(in);
  if (!v) fail_msg("test input is not JSON: %s", in);
  char *out = NULL;
  size_t len = 0;
  otad_errbuf eb = {{0}};
  int r = canonical_json(v, &out, &len, &eb);
  cJSON_Delete(v);
  if (ret) *ret = r;
  if (r == 0) {
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
  } else {
    assert_null(out);
    assert_true(eb.msg[0] != '\0');
  }
  return out;
}

static void expect(const char *in, const char *want) {
  int ret = -1;
  char *got = canon(in, &ret);
  if (ret != 0) fail_msg("no canonical form for %s", in);
  assert_string_equal(got, want);
  free(got);
}

static void expect_none(const char *in) {
  int ret = 0;
  char *got = canon(in, &ret);
  assert_null(got);
  assert_int_equal(ret, OTAD_EINVAL);
}

static void test_sorted_and_compact(void **state) {
  (void)state;
  expect("{ \"b\" : 1,\n  \"a\" : [ true , false , null ],\n \"c\": {\"z\": \"x\", \"y\": -5} }",
         "{\"a\":[true,false,null],\"b\":1,\"c\":{\"y\":-5,\"z\":\"x\"}}");
  expect("{}", "{}");
  expect("[]", "[]");
  expect("\"\"", "\"\"");
  expect("[ {\"b\": [ ], \"a\": { } } ]", "[{\"a\":{},\"b\":[]}]");
  expect("  42 ", "42");
  expect("null", "null");
}

/* Members sort by the bytes of their UTF-8 names: "" < "B" < "Z" < "_" < "a" < "aa" < "~" <
 * U+00E9 (0xC3 0xA9), not by letters or locale. */
static void test_key_byte_order(void **state) {
  (void)state;
  expect("{\"a\":1,\"\\u00e9\":2,\"~\":3,\"aa\":4,\"_t\":5,\"Z\":6,\"B\":7,\"\":8}",
         "{\"\":8,\"B\":7,\"Z\":6,\"_t\":5,\"a\":1,\"aa\":4,\"~\":3,\"\xc3\xa9\":2}");
}

/* `"` and `\` escaped; \b \f \n \r \t short; other controls \u00xx lower case; `/`, DEL
 * and UTF-8 as they are. */
static void test_string_escapes(void **state) {
  (void)state;
  expect("\"q\\\" b\\\\ s\\/ n\\n r\\r t\\t b\\b f\\f c\\u0001\\u001F d\\u007f e\\u00e9\"",
         "\"q\\\" b\\\\ s/ n\\n r\\r t\\t b\\b f\\f c\\u0001\\u001f d\x7f e\xc3\xa9\"");
  expect("{\"k\\n\\\"\":\"\\ud834\\udd1e\"}", "{\"k\\n\\\"\":\"\xf0\x9d\x84\x9e\"}");
  /* A PEM key as it sits in root.json: its newlines are signed as \n. */
  expect("{\"public\":\"-----BEGIN PUBLIC KEY-----\\nMIIB\\n-----END PUBLIC KEY-----\\n\"}",
         "{\"public\":\"-----BEGIN PUBLIC KEY-----\\nMIIB\\n-----END PUBLIC KEY-----\\n\"}");
}

static void test_integers(void **state) {
  (void)state;
  expect("[0,-1,1,2147483647,2147483648,-2147483649,9007199254740992,-9007199254740992]",
         "[0,-1,1,2147483647,2147483648,-2147483649,9007199254740992,-9007199254740992]");
  /* Integral values written otherwise come out as integers (cJSON keeps no digits). */
  expect("[1E2,-0,5.0]", "[100,0,5]");
}

static void test_no_canonical_form(void **state) {
  (void)state;
  expect_none("1.5");
  expect_none("{\"a\":[0.1]}");
  expect_none("9007199254740994"); /* beyond 2^53: not the digits that were signed */
  expect_none("-9007199254740994");
  expect_none("1e300");
  expect_none("{\"a\":1,\"b\":2,\"a\":3}"); /* two members with one name */
  expect_none("{\"x\":{\"d\":1,\"d\":1}}");
}

static void test_matches_python(void **state) {
  (void)state;
  const char *dir = getenv("OTAD_TEST_DATA");
  char path[1024];
  snprintf(path, sizeof(path), "%s/uptane/canonical.txt", dir ? dir : "tests/data");
  FILE *f = fopen(path, "r");
  if (!f) fail_msg("cannot open %s (is OTAD_TEST_DATA set?)", path);
  char *in = NULL, *want = NULL;
  size_t in_cap = 0, want_cap = 0;
  int pairs = 0;
  while (getline(&in, &in_cap, f) > 0) {
    assert_true(getline(&want, &want_cap, f) > 0);
    in[strcspn(in, "\n")] = '\0';
    want[strcspn(want, "\n")] = '\0';
    expect(in, want);
    pairs++;
  }
  free(in);
  free(want);
  fclose(f);
  assert_true(pairs >= 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sorted_and_compact), cmocka_unit_test(test_key_byte_order),
      cmocka_unit_test(test_string_escapes),     cmocka_unit_test(test_integers),
      cmocka_unit_test(test_no_canonical_form),  cmocka_unit_test(test_matches_python),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
