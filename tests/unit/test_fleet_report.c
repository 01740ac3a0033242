/* test_fleet_report.c - core/fleet_stats: request classification, counting, the JSON
 * report's schema and arithmetic, and the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tools/fleet_stats.h"

static void test_classify(void **state) {
  (void)state;
  static const struct {
    const char *method, *url;
    int kind;
  } cases[] = {
      {"POST", "https://gw:8443/devices", FR_REGISTER},
      {"POST", "https://gw:8443/director/ecus", FR_ECUS},
      {"PUT", "https://gw/director/manifest", FR_MANIFEST},
      {"GET", "https://gw/director/2.root.json", FR_METADATA},
      {"GET", "https://gw/director/targets.json", FR_METADATA},
      {"GET", "https://gw/repo/timestamp.json", FR_METADATA},
      {"GET", "https://gw/repo/targets.json", FR_METADATA},
      {"GET", "https://gw/repo/delegations/role-a.json", FR_METADATA},
      {"GET", "https://gw/repo/targets/fw-1.0", FR_DOWNLOAD},
      {"GET", "https://gw/repo/targets/dir/app.json", FR_DOWNLOAD}, /* a target, not metadata */
      {"GET", "https://cdn.example/images/fw.bin", FR_DOWNLOAD},    /* a custom URI */
      {"POST", "https://gw/events", FR_EVENTS},
      {"PUT", "https://gw/system_info", FR_DEVICE_DATA},
      {"PUT", "https://gw/system_info/network", FR_DEVICE_DATA},
      {"POST", "https://gw/system_info/config", FR_DEVICE_DATA},
      {"PUT", "https://gw/core/installed", FR_DEVICE_DATA},
      {"DELETE", "https://gw/something", FR_OTHER},
      {"GET", NULL, FR_OTHER},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int k = fleet_req_classify(cases[i].method, cases[i].url);
    if (k != cases[i].kind)
      fail_msg("%s %s: %s, expected %s", cases[i].method, cases[i].url ? cases[i].url : "(null)",
               fleet_req_kind_name(k), fleet_req_kind_name(cases[i].kind));
  }
  assert_string_equal(fleet_req_kind_name(FR_DEVICE_DATA), "device_data");
  assert_string_equal(fleet_req_kind_name(99), "?");
}

/* A small made-up run: 2 devices, 1 cycle each, one update, one failing request. */
static fleet_stats *sample_stats(void) {
  fleet_stats *s = malloc(sizeof(*s));
  fleet_stats_init(s);
  const char *gw = "https://gw";
  char url[128];
  for (int d = 0; d < 2; d++) {
    char cn[16];
    snprintf(cn, sizeof(cn), "dev-%d", d);
    snprintf(url, sizeof(url), "%s/devices", gw);
    fleet_stats_request(s, "POST", url, 0, 200, 100000, true, true, false, "prov", "prov");
    snprintf(url, sizeof(url), "%s/director/ecus", gw);
    fleet_stats_request(s, "POST", url, 0, 200, 20000, true, true, false, cn, cn);
    snprintf(url, sizeof(url), "%s/director/manifest", gw);
    fleet_stats_request(s, "PUT", url, 0, 200, 3000, false, false, false, cn, cn);
    snprintf(url, sizeof(url), "%s/director/2.root.json", gw); /* end of chain: not an error */
    fleet_stats_request(s, "GET", url, 0, 404, 1000, false, false, false, cn, cn);
    snprintf(url, sizeof(url), "%s/director/targets.json", gw);
    fleet_stats_request(s, "GET", url, 0, 200, 2000, false, false, false, cn, cn);
  }
  /* device 0 downloads; one reply names the wrong certificate; one request fails */
  fleet_stats_request(s, "GET", "https://gw/repo/targets/fw", 0, 200, 50000, true, true, true,
                      "dev-0", "dev-0");
  fleet_stats_request(s, "POST", "https://gw/events", 0, 200, 1500, false, false, false, "dev-1",
                      "dev-0");
  fleet_stats_request(s, "PUT", "https://gw/director/manifest", OTAD_ENET, 0, 60000, true, false,
                      false, "", "dev-0");
  fleet_stats_request(s, "GET", "https://gw/director/targets.json", 0, 503, 900, false, false,
                      false, "dev-1", "dev-1");
  return s;
}

static const cJSON *obj(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  if (!v) fail_msg("no key %s in the report", k);
  return v;
}

static double num(const cJSON *o, const char *k) {
  const cJSON *v = obj(o, k);
  assert_true(cJSON_IsNumber(v));
  return v->valuedouble;
}

static void test_counts(void **state) {
  (void)state;
  fleet_stats *s = sample_stats();
  assert_int_equal(s->req[FR_REGISTER].count, 2);
  assert_int_equal(s->req[FR_MANIFEST].count, 3);
  assert_int_equal(s->req[FR_MANIFEST].errors, 1);
  assert_int_equal(s->req[FR_METADATA].count, 5);
  assert_int_equal(s->req[FR_METADATA].errors, 1); /* the 503, not the two 404s */
  assert_int_equal(s->handshakes, 5);
  assert_int_equal(s->new_connections, 6);
  assert_int_equal(s->resumed, 1);
  assert_int_equal(s->identity_mismatches, 1);
  assert_int_equal(s->identity_checked, 13); /* the failed request named none */
  assert_int_equal(fleet_stats_total_requests(s), 14);
  assert_int_equal(s->nerrors, 2);
  free(s);
}

static void test_json(void **state) {
  (void)state;
  fleet_stats *s = sample_stats();
  fleet_summary m = {.devices = 3,
                     .mode = "shared",
                     .keep_alive = false,
                     .wall_seconds = 2.0,
                     .cycles_completed = 2,
                     .updates_installed = 1,
                     .expected_ok = 2,
                     .peak_rss_kib = 4096,
                     .heap_bytes_per_device = 20000.5,
                     .cpu_seconds = 0.5,
                     .not_started = 1};
  m.final_states[ST_POLLING] = 2;
  cJSON *o = fleet_report_json(s, &m);
  assert_non_null(o);
  assert_true(num(o, "devices") == 3);
  assert_string_equal(obj(o, "mode")->valuestring, "shared");
  assert_true(cJSON_IsFalse(obj(o, "keep_alive")));
  /* the final states add up to the devices */
  const cJSON *fs = obj(o, "final_states"), *e;
  double sum = 0;
  cJSON_ArrayForEach(e, fs) sum += e->valuedouble;
  assert_true(sum == 3);
  assert_true(num(fs, "polling") == 2);
  assert_true(num(fs, "not_started") == 1);
  assert_null(cJSON_GetObjectItemCaseSensitive(fs, "failed")); /* zero counts are left out */
  /* every kind is there with its six numbers, and the counts add up to the total */
  const cJSON *rq = obj(o, "requests");
  static const char *kinds[] = {"register", "ecus",   "manifest",   "metadata",
                                "download", "events", "device_data"};
  double total = 0;
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    const cJSON *k = obj(rq, kinds[i]);
    total += num(k, "count");
    assert_true(num(k, "errors") <= num(k, "count"));
    assert_true(num(k, "p50_ms") <= num(k, "p90_ms"));
    assert_true(num(k, "p90_ms") <= num(k, "p99_ms"));
    assert_true(num(k, "p99_ms") <= num(k, "max_ms"));
  }
  assert_null(cJSON_GetObjectItemCaseSensitive(rq, "other"));
  assert_true(total == num(o, "requests_total"));
  assert_true(num(o, "requests_per_second") == 7);
  const cJSON *reg = obj(rq, "register");
  assert_true(num(reg, "max_ms") == 100);
  assert_true(num(obj(rq, "download"), "p50_ms") == 50);
  assert_true(num(o, "handshakes") == 5);
  assert_true(num(o, "handshakes_per_second") == 2.5);
  assert_true(num(o, "resumed_sessions") == 1);
  assert_true(num(o, "identity_mismatches") == 1);
  const cJSON *errs = obj(o, "errors");
  assert_true(num(errs, "OTAD_ENET") == 1);
  assert_true(num(errs, "http_503") == 1);
  assert_true(num(o, "cycles_completed") == 2);
  assert_true(num(o, "updates_installed") == 1);
  assert_true(num(o, "peak_rss_kib") == 4096);
  assert_true(num(o, "heap_bytes_per_device") == 20000.5);
  assert_true(num(o, "cpu_seconds") == 0.5);
  assert_true(num(o, "cpu_seconds_per_device_cycle") == 0.25);
  cJSON_Delete(o);
  free(s);
}

static void test_error_kinds_bounded(void **state) {
  (void)state;
  fleet_stats *s = malloc(sizeof(*s));
  fleet_stats_init(s);
  for (int i = 0; i < 100; i++) {
    char name[16];
    snprintf(name, sizeof(name), "http_%d", 400 + i);
    fleet_stats_error(s, name, 1);
  }
  assert_int_equal(s->nerrors, FLEET_MAX_ERROR_KINDS);
  uint64_t sum = 0;
  for (int i = 0; i < s->nerrors; i++)
    sum += s->errors[i].count;
  assert_int_equal(sum, 100); /* nothing lost: the overflow went to "other" */
  assert_string_equal(s->errors[FLEET_MAX_ERROR_KINDS - 1].name, "other");
  assert_int_equal(s->errors[FLEET_MAX_ERROR_KINDS - 1].count, 100 - (FLEET_MAX_ERROR_KINDS - 1));
  free(s);
}

static void test_table(void **state) {
  (void)state;
  fleet_stats *s = sample_stats();
  fleet_summary m = {.devices = 2,
                     .mode = "device",
                     .keep_alive = true,
                     .wall_seconds = 1,
                     .cycles_completed = 2,
                     .expected_ok = 2};
  m.final_states[ST_POLLING] = 2;
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  fleet_report_table(s, &m, out);
  fclose(out);
  assert_non_null(strstr(buf, "2 (device mode, keep-alive)"));
  assert_non_null(strstr(buf, "polling 2"));
  assert_non_null(strstr(buf, "register"));
  assert_non_null(strstr(buf, "5 TLS handshakes"));
  assert_non_null(strstr(buf, "1 mismatches"));
  assert_non_null(strstr(buf, "http_503 1"));
  assert_null(strstr(buf, "other")); /* no request of kind other */
  free(buf);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_classify), cmocka_unit_test(test_counts),
      cmocka_unit_test(test_json),     cmocka_unit_test(test_error_kinds_bounded),
      cmocka_unit_test(test_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
