/* utf8.h - keeping the JSON the agent sends valid UTF-8 (RFC 8259 requires it).
 *
 * Strings the agent reports come from elsewhere (the director's metadata, the store, an
 * installer's error text) and are often cut to fixed-size fields, which can split a
 * multi-byte character. A strict server refuses such a document, and a refused manifest
 * would carry the same report again every cycle, so the JSON builders repair strings
 * before they sign or send them: each byte that is not part of a well-formed UTF-8
 * sequence (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF) becomes '?'.
 * The length never changes, so repairs happen in place.
 */
#ifndef OTAD_UTF8_H
#define OTAD_UTF8_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Length of the well-formed UTF-8 sequence at s[0..n), 0 when there is none. */
size_t utf8_sequence(const unsigned char *s, size_t n);

/* Replaces every byte of the NUL-terminated s that is not UTF-8 with '?'. Returns how
 * many bytes it replaced. */
size_t utf8_repair(char *s);

/* utf8_repair() on every string value and member name in the tree v. */
void utf8_repair_json(cJSON *v);

#endif
