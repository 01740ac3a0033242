/* faults.c - parsing --faults rules and deciding which one fires (see faults.h). */
#include "faults.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNLIMITED (-1L)
#define MAX_RETRY_AFTER_S 86400
#define MAX_HOLD_S 86400
#define MAX_HUGE (1ull << 32)

typedef struct rule {
  fault f;            /* what it answers (rule text included) */
  char *pattern;      /* glob over the decoded path */
  long remaining;     /* uses left, or UNLIMITED */
  double rate;        /* percent of matching requests, 100 = all */
  bool rated;         /* a %RATE was given */
  uint64_t window_ms; /* live this long after its first match; 0 = no window */
  uint64_t first_ms;  /* monotonic time of the first match, 0 = none yet */
} rule;

struct faults {
  rule *rules;
  size_t n;
  uint64_t dice; /* splitmix64 state */
  pthread_mutex_t lock;
};

static int parse_action(const char *s, fault *f) {
  static const struct {
    const char *name;
    enum fault_action action;
  } names[] = {
      {"truncate", FAULT_TRUNCATE}, {"cut", FAULT_CUT},      {"garbage", FAULT_GARBAGE},
      {"close", FAULT_CLOSE},       {"reset", FAULT_RESET},  {"stall", FAULT_STALL},
      {"trickle", FAULT_TRICKLE},   {"huge", FAULT_HUGE},    {"huge-chunked", FAULT_HUGE_CHUNKED},
      {"badjson", FAULT_BADJSON},   {"badmac", FAULT_BADMAC}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(s, names[i].name) == 0) {
      f->action = names[i].action;
      f->status = 200;
      return 0;
    }
  char *end = NULL;
  errno = 0;
  long code = strtol(s, &end, 10);
  if (errno || end == s || *end || code < 400 || code > 599) return -1;
  f->action = FAULT_STATUS;
  f->status = (int)code;
  return 0;
}

/* A whole decimal number in [min, max], with an optional unit suffix scaling it. */
static int parse_number(const char *s, const char *units, const unsigned long long *scale,
                        unsigned long long min, unsigned long long max, unsigned long long *out) {
  char *end = NULL;
  errno = 0;
  if (*s < '0' || *s > '9') return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s) return -1;
  if (*end) {
    const char *u = units ? strchr(units, *end) : NULL;
    if (!u || end[1]) return -1;
    unsigned long long k = scale[u - units];
    if (v > max / k) return -1;
    v *= k;
  }
  if (v < min || v > max) return -1;
  *out = v;
  return 0;
}

/* One +NAME=VALUE option of an action. */
static int parse_option(char *opt, rule *r, char *err, size_t errlen) {
  static const unsigned long long seconds[] = {1, 60}, bytes[] = {1024, 1024 * 1024};
  char *eq = strchr(opt, '=');
  unsigned long long v = 0;
  fault *f = &r->f;
  if (eq) *eq = '\0';
  const char *val = eq ? eq + 1 : "";
  bool ok;
  if (strcmp(opt, "retry") == 0 && f->action == FAULT_STATUS) {
    ok = parse_number(val, "sm", seconds, 1, MAX_RETRY_AFTER_S, &v) == 0;
    f->retry_after_s = (unsigned)v;
  } else if (strcmp(opt, "bps") == 0 && f->action == FAULT_TRICKLE) {
    ok = parse_number(val, NULL, NULL, 1, 1u << 20, &v) == 0;
    f->bps = (unsigned)v;
  } else if (strcmp(opt, "hold") == 0 && f->action == FAULT_STALL) {
    ok = parse_number(val, "sm", seconds, 1, MAX_HOLD_S, &v) == 0;
    f->hold_s = (unsigned)v;
  } else if (strcmp(opt, "size") == 0 &&
             (f->action == FAULT_HUGE || f->action == FAULT_HUGE_CHUNKED)) {
    ok = parse_number(val, "KM", bytes, 1, MAX_HUGE, &v) == 0;
    f->size = v;
  } else {
    snprintf(err, errlen,
             "fault rule '%s': option '+%s' does not apply (retry=SECONDS for a status, "
             "bps=N for trickle, hold=SECONDS for stall, size=N[K|M] for huge)",
             f->rule, opt);
    return -1;
  }
  if (!ok) {
    snprintf(err, errlen, "fault rule '%s': '+%s=%s' is not a valid value", f->rule, opt, val);
    return -1;
  }
  return 0;
}

/* ACTION[+OPTION...][%RATE] (s is modified). */
static int parse_head(char *s, rule *r, char *err, size_t errlen) {
  char *pct = strchr(s, '%');
  if (pct) {
    *pct = '\0';
    char *end = NULL;
    errno = 0;
    r->rated = true;
    r->rate = strtod(pct + 1, &end);
    if (errno || end == pct + 1 || *end || !(r->rate > 0 && r->rate <= 100)) {
      snprintf(err, errlen, "fault rule '%s': RATE must be a percentage above 0, at most 100",
               r->f.rule);
      return -1;
    }
  }
  char *save = NULL, *name = strtok_r(s, "+", &save);
  if (!name || parse_action(name, &r->f) != 0) {
    snprintf(err, errlen,
             "fault rule '%s': ACTION must be an HTTP status 400-599, truncate, cut, garbage, "
             "close, reset, stall, trickle, huge, huge-chunked, badjson or badmac",
             r->f.rule);
    return -1;
  }
  for (char *opt = strtok_r(NULL, "+", &save); opt; opt = strtok_r(NULL, "+", &save))
    if (parse_option(opt, r, err, errlen) != 0) return -1;
  return 0;
}

/* Strips :COUNT and :for=DURATION suffixes from the end of path (a ':' that starts neither
 * belongs to the path). */
static int parse_limits(char *path, rule *r, bool *counted, char *err, size_t errlen) {
  static const unsigned long long seconds[] = {1, 60};
  char *colon;
  while ((colon = strrchr(path, ':'))) {
    const char *s = colon + 1;
    unsigned long long v;
    if (strncmp(s, "for=", 4) == 0) {
      if (parse_number(s + 4, "sm", seconds, 1, MAX_HOLD_S, &v) != 0) {
        snprintf(err, errlen, "fault rule '%s': for= takes seconds (20, 20s or 2m)", r->f.rule);
        return -1;
      }
      r->window_ms = v * 1000;
    } else if (*s >= '0' && *s <= '9') {
      char *end = NULL;
      errno = 0;
      long n = strtol(s, &end, 10);
      if (errno || *end || n < 1) {
        snprintf(err, errlen, "fault rule '%s': COUNT must be a positive number", r->f.rule);
        return -1;
      }
      r->remaining = n;
      *counted = true;
    } else {
      break;
    }
    *colon = '\0';
  }
  return 0;
}

/* Parses one rule (tok is modified). */
static int parse_rule(char *tok, rule *r, char *err, size_t errlen) {
  snprintf(r->f.rule, sizeof r->f.rule, "%s", tok);
  r->rate = 100;
  r->remaining = UNLIMITED;
  r->f.bps = FAULT_DEFAULT_BPS;
  r->f.hold_s = FAULT_DEFAULT_HOLD_S;
  r->f.size = FAULT_DEFAULT_HUGE;
  char *at = strchr(tok, '@');
  if (!at) {
    snprintf(err, errlen,
             "fault rule '%s': expected ACTION[+OPTION...][%%RATE]@PATH[:COUNT][:for=SECONDS]",
             r->f.rule);
    return -1;
  }
  *at = '\0';
  char *path = at + 1;
  bool counted = false;
  if (parse_head(tok, r, err, errlen) != 0 || parse_limits(path, r, &counted, err, errlen) != 0)
    return -1;
  if (!counted && !r->rated && !r->window_ms) r->remaining = 1; /* the classic form */
  if (path[0] != '/' && path[0] != '*') {
    snprintf(err, errlen, "fault rule '%s': PATH must start with '/' or be a glob such as '*'",
             r->f.rule);
    return -1;
  }
  if (r->f.action == FAULT_BADMAC && strcmp(path, "/devices") != 0) {
    snprintf(err, errlen, "fault rule '%s': badmac applies to /devices only (the PKCS#12 reply)",
             r->f.rule);
    return -1;
  }
  r->pattern = strdup(path);
  if (!r->pattern) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  return 0;
}

int faults_parse(const char *spec, uint64_t seed, faults **out, char *err, size_t errlen) {
  faults *f = calloc(1, sizeof *f);
  char *copy = strdup(spec ? spec : "");
  if (!f || !copy || pthread_mutex_init(&f->lock, NULL) != 0) {
    snprintf(err, errlen, "out of memory");
    free(f);
    free(copy);
    return -1;
  }
  f->dice = seed;
  size_t max = 1;
  for (const char *p = copy; *p; p++)
    max += *p == ',';
  f->rules = calloc(max, sizeof *f->rules);
  if (!f->rules) {
    snprintf(err, errlen, "out of memory");
    free(copy);
    faults_free(f);
    return -1;
  }
  char *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (parse_rule(tok, &f->rules[f->n], err, errlen) != 0) {
      free(f->rules[f->n].pattern);
      free(copy);
      faults_free(f);
      return -1;
    }
    f->n++;
  }
  free(copy);
  *out = f;
  return 0;
}

void faults_free(faults *f) {
  if (!f) return;
  for (size_t i = 0; i < f->n; i++)
    free(f->rules[i].pattern);
  free(f->rules);
  pthread_mutex_destroy(&f->lock);
  free(f);
}

/* splitmix64: a uniform double in [0, 100). */
static double roll(faults *f) {
  uint64_t z = (f->dice += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) / (double)(1ull << 53) * 100.0;
}

void faults_take(faults *f, const char *path, uint64_t now_ms, fault *out) {
  memset(out, 0, sizeof *out);
  if (!f || f->n == 0) return;
  pthread_mutex_lock(&f->lock);
  for (size_t i = 0; i < f->n; i++) {
    rule *r = &f->rules[i];
    if (r->remaining == 0 || fnmatch(r->pattern, path, 0) != 0) continue;
    if (r->window_ms) {
      if (!r->first_ms) r->first_ms = now_ms ? now_ms : 1;
      if (now_ms - r->first_ms >= r->window_ms) {
        r->remaining = 0; /* the window has passed: retired */
        continue;
      }
    }
    if (r->rate < 100 && roll(f) >= r->rate) continue;
    if (r->remaining > 0) r->remaining--;
    *out = r->f;
    break;
  }
  pthread_mutex_unlock(&f->lock);
}

bool faults_hold_connections(const faults *f) {
  for (size_t i = 0; f && i < f->n; i++)
    if (f->rules[i].f.action == FAULT_STALL || f->rules[i].f.action == FAULT_TRICKLE) return true;
  return false;
}

/* ---- PKCS#12 ---- */

/* Reads the DER header at p (of n bytes): tag, content length, header length. */
static int der_header(const unsigned char *p, size_t n, unsigned *tag, size_t *len, size_t *hdr) {
  if (n < 2) return -1;
  *tag = p[0];
  size_t l = p[1], h = 2;
  if (l & 0x80) {
    size_t k = l & 0x7f;
    if (k == 0 || k > 4 || n < 2 + k) return -1;
    l = 0;
    for (size_t i = 0; i < k; i++)
      l = (l << 8) | p[2 + i];
    h += k;
  }
  if (l > n - h) return -1;
  *len = l;
  *hdr = h;
  return 0;
}

int faults_break_p12_mac(unsigned char *der, size_t len) {
  /* PFX ::= SEQUENCE { version INTEGER, authSafe ContentInfo, macData MacData }
   * MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER }
   * DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING } */
  unsigned tag;
  size_t l, h;
  if (der_header(der, len, &tag, &l, &h) != 0 || tag != 0x30) return -1;
  unsigned char *p = der + h, *end = p + l;
  static const unsigned expect[] = {0x02, 0x30}; /* version, authSafe: skipped */
  for (size_t i = 0; i < 2; i++) {
    if (der_header(p, (size_t)(end - p), &tag, &l, &h) != 0 || tag != expect[i]) return -1;
    p += h + l;
  }
  /* into MacData, DigestInfo; skip the AlgorithmIdentifier; the digest */
  for (int depth = 0; depth < 2; depth++) {
    if (der_header(p, (size_t)(end - p), &tag, &l, &h) != 0 || tag != 0x30) return -1;
    end = p + h + l;
    p += h;
  }
  if (der_header(p, (size_t)(end - p), &tag, &l, &h) != 0 || tag != 0x30) return -1;
  p += h + l;
  if (der_header(p, (size_t)(end - p), &tag, &l, &h) != 0 || tag != 0x04 || l == 0) return -1;
  p[h] ^= 0x01; /* one bit of the MAC: well-formed, and wrong */
  return 0;
}
