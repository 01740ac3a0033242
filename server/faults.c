/* faults.c - parsing and counting --faults rules (see faults.h). */
#include "faults.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rule {
  enum fault_action action;
  int status;
  char *path;
  long remaining;
  char text[160];
} rule;

struct faults {
  rule *rules;
  size_t n;
  pthread_mutex_t lock;
};

static int parse_action(const char *s, enum fault_action *action, int *status) {
  static const struct {
    const char *name;
    enum fault_action action;
  } names[] = {{"truncate", FAULT_TRUNCATE},
               {"cut", FAULT_CUT},
               {"garbage", FAULT_GARBAGE},
               {"close", FAULT_CLOSE}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(s, names[i].name) == 0) {
      *action = names[i].action;
      *status = 200;
      return 0;
    }
  char *end = NULL;
  errno = 0;
  long code = strtol(s, &end, 10);
  if (errno || end == s || *end || code < 400 || code > 599) return -1;
  *action = FAULT_STATUS;
  *status = (int)code;
  return 0;
}

/* Parses one ACTION@PATH[:COUNT] (tok is modified). */
static int parse_rule(char *tok, rule *r, char *err, size_t errlen) {
  snprintf(r->text, sizeof r->text, "%s", tok);
  char *at = strchr(tok, '@');
  if (!at) {
    snprintf(err, errlen, "fault rule '%s': expected ACTION@PATH[:COUNT]", r->text);
    return -1;
  }
  *at = '\0';
  char *path = at + 1;
  r->remaining = 1;
  char *colon = strrchr(path, ':');
  if (colon) {
    *colon = '\0';
    char *end = NULL;
    errno = 0;
    r->remaining = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || r->remaining < 1) {
      snprintf(err, errlen, "fault rule '%s': COUNT must be a positive number", r->text);
      return -1;
    }
  }
  if (parse_action(tok, &r->action, &r->status) != 0) {
    snprintf(err, errlen,
             "fault rule '%s': ACTION must be an HTTP status 400-599, truncate, cut, garbage or "
             "close",
             r->text);
    return -1;
  }
  if (path[0] != '/') {
    snprintf(err, errlen, "fault rule '%s': PATH must start with '/'", r->text);
    return -1;
  }
  r->path = strdup(path);
  if (!r->path) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  return 0;
}

int faults_parse(const char *spec, faults **out, char *err, size_t errlen) {
  faults *f = calloc(1, sizeof *f);
  char *copy = strdup(spec ? spec : "");
  if (!f || !copy || pthread_mutex_init(&f->lock, NULL) != 0) {
    snprintf(err, errlen, "out of memory");
    free(f);
    free(copy);
    return -1;
  }
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
    free(f->rules[i].path);
  free(f->rules);
  pthread_mutex_destroy(&f->lock);
  free(f);
}

void faults_take(faults *f, const char *path, fault *out) {
  out->action = FAULT_NONE;
  out->status = 0;
  out->rule[0] = '\0';
  if (!f || f->n == 0) return;
  pthread_mutex_lock(&f->lock);
  for (size_t i = 0; i < f->n; i++) {
    rule *r = &f->rules[i];
    if (r->remaining > 0 && strcmp(r->path, path) == 0) {
      r->remaining--;
      out->action = r->action;
      out->status = r->status;
      snprintf(out->rule, sizeof out->rule, "%s", r->text);
      break;
    }
  }
  pthread_mutex_unlock(&f->lock);
}
