/* utf8.c - UTF-8 checks and in-place repair for the JSON the agent sends (see utf8.h). */
#include "utf8.h"

#include <string.h>

size_t utf8_sequence(const unsigned char *s, size_t n) {
  if (n == 0) return 0;
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t k;
  unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
  if (c >= 0xC2 && c <= 0xDF) {
    k = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    k = 3;
    if (c == 0xE0) lo = 0xA0; /* overlong */
    if (c == 0xED) hi = 0x9F; /* surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    k = 4;
    if (c == 0xF0) lo = 0x90; /* overlong */
    if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
  } else {
    return 0;
  }
  if (n < k || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < k; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return k;
}

size_t utf8_repair(char *s) {
  if (!s) return 0;
  unsigned char *p = (unsigned char *)s;
  size_t n = strlen(s), fixed = 0;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_sequence(p + i, n - i);
    if (k) {
      i += k;
    } else {
      p[i++] = '?';
      fixed++;
    }
  }
  return fixed;
}

void utf8_repair_json(cJSON *v) {
  for (; v; v = v->next) {
    if (v->string) utf8_repair(v->string);
    if (cJSON_IsString(v)) utf8_repair(v->valuestring);
    utf8_repair_json(v->child);
  }
}
