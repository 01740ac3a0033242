/* histogram.c - log-linear latency histogram (see histogram.h). */
#include "histogram.h"

#include <string.h>

#define SUB (1u << HIST_SUB_BITS)

void hist_init(histogram *h) {
  memset(h, 0, sizeof(*h));
}

unsigned hist_bucket_of(uint64_t v) {
  if (v < SUB) return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v); /* 2^e <= v < 2^(e+1), e >= SUB_BITS */
  if (e > HIST_MAX_EXP) return HIST_BUCKETS - 1;
  unsigned shift = e - HIST_SUB_BITS;
  return ((shift + 1) << HIST_SUB_BITS) + (unsigned)((v >> shift) - SUB);
}

void hist_bucket_range(unsigned idx, uint64_t *lo, uint64_t *hi) {
  if (idx < SUB) {
    *lo = *hi = idx;
    return;
  }
  unsigned shift = (idx >> HIST_SUB_BITS) - 1, m = idx & (SUB - 1);
  *lo = (uint64_t)(SUB + m) << shift;
  *hi = *lo + ((uint64_t)1 << shift) - 1;
  if (idx == HIST_BUCKETS - 1) *hi = UINT64_MAX; /* the last bucket takes everything above */
}

void hist_record(histogram *h, uint64_t v) {
  if (h->count == 0 || v < h->min) h->min = v;
  if (v > h->max) h->max = v;
  h->count++;
  h->sum += v;
  h->buckets[hist_bucket_of(v)]++;
}

uint64_t hist_percentile(const histogram *h, double pct) {
  if (h->count == 0) return 0;
  if (pct <= 0) return h->min;
  if (pct >= 100) return h->max;
  /* the rank-th smallest value, rank = ceil(pct% of count), at least 1 */
  double want = pct / 100.0 * (double)h->count;
  uint64_t rank = (uint64_t)want;
  if ((double)rank < want) rank++;
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    seen += h->buckets[i];
    if (seen >= rank) {
      uint64_t lo, hi;
      hist_bucket_range(i, &lo, &hi);
      if (hi > h->max) hi = h->max;
      if (hi < h->min) hi = h->min;
      return hi;
    }
  }
  return h->max;
}

void hist_merge(histogram *dst, const histogram *src) {
  if (src->count == 0) return;
  if (dst->count == 0 || src->min < dst->min) dst->min = src->min;
  if (src->max > dst->max) dst->max = src->max;
  dst->count += src->count;
  dst->sum += src->sum;
  for (unsigned i = 0; i < HIST_BUCKETS; i++)
    dst->buckets[i] += src->buckets[i];
}

double hist_mean(const histogram *h) {
  return h->count ? (double)h->sum / (double)h->count : 0;
}
