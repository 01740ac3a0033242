/* backoff.c - exponential backoff with jitter (see backoff.h). */
#include "backoff.h"

void backoff_init(backoff *b, uint32_t base_ms, uint32_t cap_ms) {
  b->base_ms = base_ms ? base_ms : 1;
  b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
  b->attempts = 0;
}

uint32_t backoff_next(backoff *b, rng *r) {
  uint64_t d = b->base_ms;
  for (uint32_t i = 0; i < b->attempts && d < b->cap_ms; i++)
    d *= 2;
  if (d > b->cap_ms) d = b->cap_ms;
  if (b->attempts < 32) b->attempts++;
  /* uniform in [d/2, d] */
  return (uint32_t)(d / 2 + rng_below(r, d / 2 + 1));
}

void backoff_reset(backoff *b) {
  b->attempts = 0;
}
