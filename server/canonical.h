/* canonical.h - canonical JSON, the bytes Uptane signatures are made over.
 *
 * Object keys sorted by their UTF-8 bytes (which is code point order), no whitespace,
 * strings escaped only where JSON must ("\"", "\\", control characters: \b \f \n \r \t and
 * \u00XX for the rest), everything else, non-ASCII included, as it is; numbers as integers.
 * That is OLPC/TUF canonical JSON as aktualizr and python's
 * json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) write it. The
 * server's own copy: it does not link otad's library, whose canonical JSON it checks.
 */
#ifndef OTA_SERVER_CANONICAL_H
#define OTA_SERVER_CANONICAL_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* The canonical form of item as a malloc'd NUL-terminated string (length in *len when len
 * is not NULL), or NULL when out of memory or when item holds a number that is not an
 * integer of at most 2^53 in magnitude (canonical JSON has no fractions). */
char *canonical_json(const cJSON *item, size_t *len);

#endif
