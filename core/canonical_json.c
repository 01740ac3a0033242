/* canonical_json.c - canonical JSON writer (see canonical_json.h for the exact form).
 *
 * One growing heap buffer; object members are sorted through a temporary array of
 * pointers per object, so the input tree is never modified. Recursion depth is bounded by
 * cJSON's own nesting limit at parse time.
 */
#include "canonical_json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cj__buf {
  char *p;
  size_t len, cap;
  int nomem;
} cj__buf;

static void cj__put(cj__buf *b, const char *s, size_t n) {
  if (b->nomem) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->nomem = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void cj__puts(cj__buf *b, const char *s) {
  cj__put(b, s, strlen(s));
}

void canonical_json_string(const char *s, size_t n, canonical_put_fn put, void *ctx) {
  put(ctx, "\"", 1);
  size_t start = 0, i = 0; /* runs without escapes go in one put */
  for (; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    const char *e = NULL;
    switch (c) {
    case '"': e = "\\\""; break;
    case '\\': e = "\\\\"; break;
    case '\b': e = "\\b"; break;
    case '\f': e = "\\f"; break;
    case '\n': e = "\\n"; break;
    case '\r': e = "\\r"; break;
    case '\t': e = "\\t"; break;
    default:
      if (c < 0x20) {
        snprintf(esc, sizeof(esc), "\\u%04x", c);
        e = esc;
      }
    }
    if (!e) continue;
    put(ctx, s + start, i - start);
    put(ctx, e, strlen(e));
    start = i + 1;
  }
  put(ctx, s + start, i - start);
  put(ctx, "\"", 1);
}

static void cj__put_cb(void *ctx, const char *s, size_t n) {
  cj__put(ctx, s, n);
}

static void cj__string(cj__buf *b, const char *s) {
  canonical_json_string(s, strlen(s), cj__put_cb, b);
}

static int cj__cmp_names(const void *a, const void *b) {
  const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
  return strcmp(x->string, y->string); /* strcmp compares as unsigned char: byte order */
}

static int cj__value(cj__buf *b, const cJSON *v, otad_errbuf *eb);

static int cj__object(cj__buf *b, const cJSON *v, otad_errbuf *eb) {
  size_t n = 0;
  for (const cJSON *c = v->child; c; c = c->next)
    n++;
  const cJSON **members = n ? malloc(n * sizeof(*members)) : NULL;
  if (n && !members) return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  size_t i = 0;
  for (const cJSON *c = v->child; c; c = c->next) {
    if (!c->string) {
      free(members);
      return otad_fail(eb, OTAD_EINVAL, "object member without a name");
    }
    members[i++] = c;
  }
  if (n > 1) qsort(members, n, sizeof(*members), cj__cmp_names);
  int ret = 0;
  cj__put(b, "{", 1);
  for (i = 0; i < n && ret == 0; i++) {
    if (i > 0 && strcmp(members[i - 1]->string, members[i]->string) == 0) {
      ret =
          otad_fail(eb, OTAD_EINVAL, "object has two members named \"%.64s\"", members[i]->string);
      break;
    }
    if (i > 0) cj__put(b, ",", 1);
    cj__string(b, members[i]->string);
    cj__put(b, ":", 1);
    ret = cj__value(b, members[i], eb);
  }
  cj__put(b, "}", 1);
  free(members);
  return ret;
}

static int cj__value(cj__buf *b, const cJSON *v, otad_errbuf *eb) {
  switch (v->type & 0xff) {
  case cJSON_False: cj__puts(b, "false"); return 0;
  case cJSON_True: cj__puts(b, "true"); return 0;
  case cJSON_NULL: cj__puts(b, "null"); return 0;
  case cJSON_String:
    if (!v->valuestring) return otad_fail(eb, OTAD_EINVAL, "string node without a value");
    cj__string(b, v->valuestring);
    return 0;
  case cJSON_Number: {
    double d = v->valuedouble;
    /* 2^53: every integer up to it is exact in a double, so its digits are the signed ones */
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0)
      return otad_fail(eb, OTAD_EINVAL, "number %g is not an integer canonical JSON can hold", d);
    char num[32];
    snprintf(num, sizeof(num), "%lld", (long long)d);
    cj__puts(b, num);
    return 0;
  }
  case cJSON_Array: {
    cj__put(b, "[", 1);
    for (const cJSON *c = v->child; c; c = c->next) {
      if (c != v->child) cj__put(b, ",", 1);
      int ret = cj__value(b, c, eb);
      if (ret) return ret;
    }
    cj__put(b, "]", 1);
    return 0;
  }
  case cJSON_Object: return cj__object(b, v, eb);
  default: return otad_fail(eb, OTAD_EINVAL, "JSON node of type %d has no canonical form", v->type);
  }
}

int canonical_json(const cJSON *v, char **out, size_t *len, otad_errbuf *eb) {
  *out = NULL;
  if (len) *len = 0;
  if (!v) return otad_fail(eb, OTAD_EINVAL, "no JSON value");
  cj__buf b = {0};
  int ret = cj__value(&b, v, eb);
  if (ret == 0 && b.nomem) ret = otad_fail(eb, OTAD_ENOMEM, "out of memory");
  if (ret != 0) {
    free(b.p);
    return ret;
  }
  *out = b.p;
  if (len) *len = b.len;
  return 0;
}
