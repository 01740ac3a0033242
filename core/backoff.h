/* backoff.h - retry delays: exponential with full jitter and a cap.
 *
 * Full jitter (a uniform delay in [base*2^n / 2, base*2^n], capped) spreads a fleet's
 * retries so a recovering server is not hit by every device at the same instant.
 */
#ifndef OTAD_BACKOFF_H
#define OTAD_BACKOFF_H

#include <stdint.h>

#include "rng.h"

typedef struct backoff {
  uint32_t base_ms;  /* first delay, e.g. 1000 */
  uint32_t cap_ms;   /* the longest delay, e.g. 60000 */
  uint32_t attempts; /* failures since the last success */
} backoff;

/* Sets the base and cap and clears the attempt count. */
void backoff_init(backoff *b, uint32_t base_ms, uint32_t cap_ms);

/* The delay before the next attempt; counts one more failure. */
uint32_t backoff_next(backoff *b, rng *r);

/* Forgets failures after a success. */
void backoff_reset(backoff *b);

#endif
