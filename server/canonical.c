/* canonical.c - canonical JSON of a cJSON tree (see canonical.h). */
#include "canonical.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAFE_INTEGER 9007199254740992.0 /* 2^53: every integer up to it is exact */

typedef struct buf {
  char *data;
  size_t len, cap;
  bool failed;
} buf;

static void put(buf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (b->len + n + 1 > cap)
      cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) {
      b->failed = true;
      return;
    }
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void put_string(buf *b, const char *s) {
  put(b, "\"", 1);
  const char *run = s;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    const char *e = NULL;
    switch (*p) {
    case '"': e = "\\\""; break;
    case '\\': e = "\\\\"; break;
    case '\b': e = "\\b"; break;
    case '\f': e = "\\f"; break;
    case '\n': e = "\\n"; break;
    case '\r': e = "\\r"; break;
    case '\t': e = "\\t"; break;
    default:
      if (*p < 0x20) {
        snprintf(esc, sizeof esc, "\\u%04x", *p);
        e = esc;
      }
    }
    if (!e) continue;
    put(b, run, (size_t)((const char *)p - run));
    put(b, e, strlen(e));
    run = (const char *)p + 1;
  }
  put(b, run, strlen(run));
  put(b, "\"", 1);
}

static int by_key(const void *x, const void *y) {
  const cJSON *a = *(const cJSON *const *)x, *b = *(const cJSON *const *)y;
  return strcmp(a->string ? a->string : "", b->string ? b->string : "");
}

static void put_item(buf *b, const cJSON *item);

static void put_object(buf *b, const cJSON *obj) {
  size_t n = 0;
  for (const cJSON *c = obj->child; c; c = c->next)
    n++;
  const cJSON **members = n ? malloc(n * sizeof *members) : NULL;
  if (n && !members) {
    b->failed = true;
    return;
  }
  n = 0;
  for (const cJSON *c = obj->child; c; c = c->next)
    members[n++] = c;
  if (n) qsort(members, n, sizeof *members, by_key);
  put(b, "{", 1);
  for (size_t i = 0; i < n; i++) {
    if (i) put(b, ",", 1);
    put_string(b, members[i]->string ? members[i]->string : "");
    put(b, ":", 1);
    put_item(b, members[i]);
  }
  put(b, "}", 1);
  free(members);
}

static void put_item(buf *b, const cJSON *item) {
  if (b->failed) return;
  if (cJSON_IsObject(item)) {
    put_object(b, item);
  } else if (cJSON_IsArray(item)) {
    put(b, "[", 1);
    for (const cJSON *c = item->child; c; c = c->next) {
      if (c != item->child) put(b, ",", 1);
      put_item(b, c);
    }
    put(b, "]", 1);
  } else if (cJSON_IsString(item)) {
    put_string(b, item->valuestring ? item->valuestring : "");
  } else if (cJSON_IsNumber(item)) {
    double v = item->valuedouble;
    char num[32];
    if (!(v >= -MAX_SAFE_INTEGER && v <= MAX_SAFE_INTEGER) || v != (double)(long long)v) {
      b->failed = true;
      return;
    }
    int n = snprintf(num, sizeof num, "%lld", (long long)v);
    put(b, num, (size_t)n);
  } else if (cJSON_IsTrue(item)) {
    put(b, "true", 4);
  } else if (cJSON_IsFalse(item)) {
    put(b, "false", 5);
  } else if (cJSON_IsNull(item)) {
    put(b, "null", 4);
  } else {
    b->failed = true;
  }
}

char *canonical_json(const cJSON *item, size_t *len) {
  buf b = {0};
  put_item(&b, item);
  if (b.failed || !b.data) {
    free(b.data);
    return NULL;
  }
  if (len) *len = b.len;
  return b.data;
}
