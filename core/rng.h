/* rng.h - a small per-device pseudo-random generator (xorshift64*).
 *
 * Used for jitter and generated names, where reproducibility (--seed in the fleet) matters
 * more than secrecy. Keys and nonces come from wolfSSL's RNG, never from here.
 */
#ifndef OTAD_RNG_H
#define OTAD_RNG_H

#include <stdint.h>

typedef struct rng {
  uint64_t s;
} rng;

/* Seeds r; a zero seed takes one from the clock and the process ID. */
void rng_seed(rng *r, uint64_t seed);

/* Next 64 random bits. */
uint64_t rng_next(rng *r);

/* A uniform integer in [0, n) (n > 0). */
uint64_t rng_below(rng *r, uint64_t n);

#endif
