/* test_utf8.c - UTF-8 repair (core/utf8.c): well-formed text is left alone, each byte of
 * an ill-formed sequence becomes '?', JSON trees are repaired in names and values. */
/* cmocka needs these in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>
/* clang-format on */

#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

static void repaired(const char *in, const char *want, size_t nfixed) {
  char buf[64];
  strcpy(buf, in);
  assert_int_equal(utf8_repair(buf), nfixed);
  assert_string_equal(buf, want);
}

static void test_valid_is_kept(void **state) {
  (void)state;
  repaired("", "", 0);
  repaired("plain \x01\x7f", "plain \x01\x7f", 0);
  repaired("\xc3\xa9t\xc3\xa9 \xe2\x9c\x93 \xf0\x9d\x84\x9e",
           "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93 \xf0\x9d\x84\x9e", 0);
  repaired("\xed\x9f\xbf \xef\xbf\xbf \xf4\x8f\xbf\xbf",
           "\xed\x9f\xbf \xef\xbf\xbf \xf4\x8f\xbf\xbf", 0);
}

static void test_invalid_is_replaced(void **state) {
  (void)state;
  repaired("cut \xe2\x9c", "cut ??", 2);          /* a character split by truncation */
  repaired("\x80x\xbf", "?x?", 2);                /* stray continuation bytes */
  repaired("\xc0\xaf \xe0\x80\xaf", "?? ???", 5); /* overlong forms */
  repaired("\xed\xa0\x80", "???", 3);             /* a UTF-16 surrogate */
  repaired("\xf4\x90\x80\x80", "????", 4);        /* above U+10FFFF */
  repaired("\xff\xfe", "??", 2);
  repaired("\xc3\xc3\xa9", "?\xc3\xa9", 1); /* a lead byte without its tail */
}

static void test_json_tree(void **state) {
  (void)state;
  cJSON *o = cJSON_CreateObject();
  cJSON *inner = cJSON_AddObjectToObject(o, "k\xff");
  cJSON_AddStringToObject(inner, "v", "x\xe2\x9c");
  cJSON *a = cJSON_AddArrayToObject(o, "list");
  cJSON_AddItemToArray(a, cJSON_CreateString("\xc3\xa9\x80"));
  cJSON_AddNumberToObject(o, "n", 1);
  utf8_repair_json(o);
  char *text = cJSON_PrintUnformatted(o);
  assert_string_equal(text, "{\"k?\":{\"v\":\"x??\"},\"list\":[\"\xc3\xa9?\"],\"n\":1}");
  free(text);
  cJSON_Delete(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_is_kept),
      cmocka_unit_test(test_invalid_is_replaced),
      cmocka_unit_test(test_json_tree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
