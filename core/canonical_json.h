/* canonical_json.h - the one byte string a JSON value signs as (Uptane/TUF metadata).
 *
 * Canonical form as OTA Connect signs it and aktualizr verifies it (circe's and jsoncpp's
 * compact writers with sorted keys; python's json.dumps(sort_keys=True,
 * separators=(",", ":"), ensure_ascii=False) writes the same bytes):
 * - object members sorted by the bytes of their UTF-8 names, no insignificant whitespace;
 * - strings quoted, `"` and `\` backslash-escaped, \b \f \n \r \t as those two-character
 *   escapes, other bytes below 0x20 as \u00xx (lower-case hex), every other byte as it is
 *   (no \uXXXX for non-ASCII, no escaped `/`);
 * - numbers only as integers (decimal, `-` for negatives), true, false, null.
 * This differs from OLPC canonical JSON (securesystemslib), which escapes only `"` and `\`
 * and writes control characters raw: PEM public keys in root.json hold newlines, and OTA
 * Connect signs them as `\n`.
 */
#ifndef OTAD_CANONICAL_JSON_H
#define OTAD_CANONICAL_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "error.h"

/* Writes the canonical form of v into a heap buffer: *out (NUL-terminated, free() it) and
 * *len (without the NUL). Returns 0; OTAD_EINVAL with the reason in eb for what has no
 * canonical form: a number that is not an integer or lies beyond +-2^53 (cJSON holds
 * numbers as doubles, so larger ones may not be the digits that were signed), an object
 * with two members of the same name, a raw or invalid cJSON node; or OTAD_ENOMEM. */
int canonical_json(const cJSON *v, char **out, size_t *len, otad_errbuf *eb);

/* Receives canonical_json_string()'s output piece by piece. */
typedef void (*canonical_put_fn)(void *ctx, const char *s, size_t n);

/* Writes the n bytes of s as a canonical JSON string (quotes and escapes as above) through
 * put, without allocating: what a key ID hashes. */
void canonical_json_string(const char *s, size_t n, canonical_put_fn put, void *ctx);

#endif
