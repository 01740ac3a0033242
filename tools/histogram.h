/* histogram.h - latencies in fixed memory: log-linear buckets, percentiles, merge.
 *
 * A value v (microseconds, say) below 16 has a bucket of its own; above, each power of two
 * [2^e, 2^(e+1)) is split into 16 equal buckets, so a bucket is at most 1/16 (6.25 %) of
 * its values wide and a percentile is within that of the truth. Values from 2^48 on share
 * the last bucket. count, sum, min and max are kept exactly. No allocation: a histogram
 * is one plain struct (about 6 KiB) the caller owns; merging adds bucket by bucket, so
 * per-thread or per-kind histograms combine without loss.
 */
#ifndef OTAD_HISTOGRAM_H
#define OTAD_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB_BITS 4 /* 16 buckets per power of two */
#define HIST_MAX_EXP 47 /* values up to 2^48 - 1 are exact to 1/16 */
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 2) << HIST_SUB_BITS)

typedef struct histogram {
  uint64_t count, sum, min, max;
  uint64_t buckets[HIST_BUCKETS];
} histogram;

/* Empties h. */
void hist_init(histogram *h);

/* Counts one value. */
void hist_record(histogram *h, uint64_t v);

/* The value below which pct percent (0..100) of the recorded values lie: the upper
 * bound of the bucket holding that rank, clamped to [min, max]. 0 when h is empty;
 * pct 0 gives min, 100 gives max. */
uint64_t hist_percentile(const histogram *h, double pct);

/* Adds every value of src to dst. */
void hist_merge(histogram *dst, const histogram *src);

/* The mean of the recorded values; 0 when empty. */
double hist_mean(const histogram *h);

/* The bucket index of v and the inclusive range [lo, hi] a bucket covers (for tests). */
unsigned hist_bucket_of(uint64_t v);
void hist_bucket_range(unsigned idx, uint64_t *lo, uint64_t *hi);

#endif
