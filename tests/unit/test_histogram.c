/* test_histogram.c - core/histogram: bucket layout, percentiles, merge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "tools/histogram.h"

/* Every value lands in a bucket whose range holds it; buckets are contiguous. */
static void test_buckets_cover_values(void **state) {
  (void)state;
  uint64_t vals[] = {0,          1,         15,   16,     17,         31,
                     32,         33,        63,   64,     100,        1000,
                     1023,       1024,      1025, 999999, 1ull << 40, (1ull << 48) - 1,
                     1ull << 48, UINT64_MAX};
  for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
    unsigned b = hist_bucket_of(vals[i]);
    assert_true(b < HIST_BUCKETS);
    uint64_t lo, hi;
    hist_bucket_range(b, &lo, &hi);
    assert_true(lo <= vals[i]);
    assert_true(vals[i] <= hi);
  }
  for (unsigned b = 0; b + 1 < HIST_BUCKETS; b++) {
    uint64_t lo, hi, lo2, hi2;
    hist_bucket_range(b, &lo, &hi);
    hist_bucket_range(b + 1, &lo2, &hi2);
    assert_true(lo <= hi);
    assert_true(hi + 1 == lo2); /* no gap, no overlap */
    if (b >= 16 && b + 1 < HIST_BUCKETS - 1) assert_true((hi - lo + 1) * 16 <= lo); /* <= 1/16 */
  }
  for (uint64_t v = 0; v < 70000; v++) { /* a dense sweep: monotonic */
    assert_true(hist_bucket_of(v) <= hist_bucket_of(v + 1));
  }
}

static void test_empty_and_single(void **state) {
  (void)state;
  histogram *h = malloc(sizeof(*h));
  hist_init(h);
  assert_int_equal(hist_percentile(h, 50), 0);
  assert_int_equal(hist_percentile(h, 100), 0);
  assert_true(hist_mean(h) == 0);
  hist_record(h, 12345);
  assert_int_equal(h->count, 1);
  assert_int_equal(hist_percentile(h, 0), 12345);
  assert_int_equal(hist_percentile(h, 50), 12345); /* clamped to [min, max] */
  assert_int_equal(hist_percentile(h, 99), 12345);
  assert_int_equal(hist_percentile(h, 100), 12345);
  free(h);
}

/* Uniform 1..10000: each percentile within 1/16 of the exact rank value, above it. */
static void test_percentiles_uniform(void **state) {
  (void)state;
  histogram *h = malloc(sizeof(*h));
  hist_init(h);
  for (uint64_t v = 10000; v >= 1; v--)
    hist_record(h, v); /* order does not matter */
  assert_int_equal(h->min, 1);
  assert_int_equal(h->max, 10000);
  assert_int_equal(h->count, 10000);
  assert_true(hist_mean(h) == 5000.5);
  double pcts[] = {1, 10, 50, 90, 99, 99.9};
  for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
    uint64_t exact = (uint64_t)(pcts[i] * 100 + 0.5), got = hist_percentile(h, pcts[i]);
    assert_true(got >= exact);
    assert_true((double)got <= (double)exact * (1 + 1.0 / 16) + 1);
  }
  assert_int_equal(hist_percentile(h, 100), 10000);
  free(h);
}

/* A skewed set: p50 sits in the bulk, p99 in the tail. */
static void test_percentiles_tail(void **state) {
  (void)state;
  histogram *h = malloc(sizeof(*h));
  hist_init(h);
  for (int i = 0; i < 980; i++)
    hist_record(h, 2000); /* 2 ms */
  for (int i = 0; i < 20; i++)
    hist_record(h, 900000); /* 900 ms */
  uint64_t p50 = hist_percentile(h, 50), p90 = hist_percentile(h, 90), p99 = hist_percentile(h, 99);
  assert_true(p50 >= 2000 && p50 <= 2000 + 2000 / 16);
  assert_true(p90 >= 2000 && p90 <= 2000 + 2000 / 16);
  assert_true(p99 >= 900000 - 900000 / 16 && p99 <= 900000);
  assert_int_equal(hist_percentile(h, 100), 900000);
  free(h);
}

/* Merging two halves gives exactly what recording everything into one gives. */
static void test_merge(void **state) {
  (void)state;
  histogram *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *all = malloc(sizeof(*all));
  hist_init(a);
  hist_init(b);
  hist_init(all);
  srand(42);
  for (int i = 0; i < 5000; i++) {
    uint64_t v = (uint64_t)rand() % 5000000;
    hist_record(i % 3 ? a : b, v);
    hist_record(all, v);
  }
  histogram *empty = malloc(sizeof(*empty));
  hist_init(empty);
  hist_merge(a, empty); /* a no-op */
  hist_merge(a, b);
  assert_int_equal(a->count, all->count);
  assert_int_equal(a->sum, all->sum);
  assert_int_equal(a->min, all->min);
  assert_int_equal(a->max, all->max);
  assert_memory_equal(a->buckets, all->buckets, sizeof(a->buckets));
  hist_merge(empty, b); /* into an empty one: min comes from src */
  assert_int_equal(empty->min, b->min);
  free(a);
  free(b);
  free(all);
  free(empty);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_buckets_cover_values),
      cmocka_unit_test(test_empty_and_single),
      cmocka_unit_test(test_percentiles_uniform),
      cmocka_unit_test(test_percentiles_tail),
      cmocka_unit_test(test_merge),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
