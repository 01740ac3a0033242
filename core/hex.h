/* hex.h - bytes as hexadecimal digits and back: digests, key IDs, raw Ed25519 keys,
 * PKCS#11 object IDs all use it. */
#ifndef OTAD_HEX_H
#define OTAD_HEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writes len bytes as 2 * len digits (lower or upper case) and a NUL into out. */
void hex_encode(const uint8_t *in, size_t len, char *out, bool upper);

/* The value of one hex digit (either case), or -1. */
int hex_digit(int c);

/* Reads exactly 2 * n hex digits (either case) of hex into out. False when hex has another
 * length or a character that is no hex digit (out may then be partly written). */
bool hex_decode(const char *hex, uint8_t *out, size_t n);

#endif
