/* fault_bodies.h - the replies of the faults that are not a rewritten handler reply: an
 * oversized body (with or without a length), a trickle (the real body a few bytes per
 * second, the connection parked in between), and broken JSON. Used by api.c's sending. */
#ifndef OTA_SERVER_FAULT_BODIES_H
#define OTA_SERVER_FAULT_BODIES_H

#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

#include "park.h"

/* A JSON-looking text that does not parse (the badjson fault's body). */
extern const char FAULT_BAD_JSON[];

/* size bytes of JSON-looking text, made as they are sent: with a Content-Length, or
 * chunked when chunked. NULL when out of memory. */
struct MHD_Response *fault_huge_response(uint64_t size, bool chunked);

/* The reply of len bytes at bps bytes a second: from body (malloc'd, taken on success) or,
 * when body is NULL, from fd at offset (taken on success). Between sends connection c is
 * held in p. NULL when out of memory (nothing taken). */
struct MHD_Response *fault_trickle_response(park *p, struct MHD_Connection *c, char *body, int fd,
                                            uint64_t offset, uint64_t len, unsigned bps);

#endif
