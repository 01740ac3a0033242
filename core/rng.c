/* rng.c - xorshift64* (see rng.h). */
#include "rng.h"

#include <time.h>
#include <unistd.h>

void rng_seed(rng *r, uint64_t seed) {
  if (seed == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
  }
  /* splitmix64 step so that nearby seeds give unrelated streams */
  seed += 0x9e3779b97f4a7c15ULL;
  seed = (seed ^ (seed >> 30)) * 0xbf58476d1ce4e5b9ULL;
  seed = (seed ^ (seed >> 27)) * 0x94d049bb133111ebULL;
  r->s = (seed ^ (seed >> 31)) | 1;
}

uint64_t rng_next(rng *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545f4914f6cdd1dULL;
}

uint64_t rng_below(rng *r, uint64_t n) {
  return n ? rng_next(r) % n : 0;
}
