/* idgen.h - readable device IDs: "adjective-noun-NNNNNN", lower case.
 *
 * The last resort of the device ID rules (docs/protocol.md, section 2: stored ID,
 * configured ID, certificate CN, then a generated name). Readable names are easier to find in a
 * server's console.
 */
#ifndef OTAD_IDGEN_H
#define OTAD_IDGEN_H

#include <stddef.h>

#include "rng.h"

/* Writes a new name like "brave-otter-048213" into out (cap >= 48 is always enough). */
void idgen_readable(rng *r, char *out, size_t cap);

/* True when id is acceptable as a device ID: 1..64 chars of [A-Za-z0-9._-]. */
int idgen_valid(const char *id);

#endif
