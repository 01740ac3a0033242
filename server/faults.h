/* faults.h - injected failures for tests: `--faults 500@/devices:2,truncate@/devices`.
 *
 * A spec is comma-separated rules ACTION@PATH[:COUNT]. Each rule answers the first COUNT
 * (default 1) requests for PATH that would otherwise be served, then retires; rules for the
 * same path apply in the order given. Shared by all server threads (a mutex guards counts).
 */
#ifndef OTA_SERVER_FAULTS_H
#define OTA_SERVER_FAULTS_H

#include <stddef.h>

typedef struct faults faults;

enum fault_action {
  FAULT_NONE = 0,
  FAULT_STATUS,   /* answer `status` (400..599) with a JSON error body */
  FAULT_TRUNCATE, /* 200 with the first half of the real body (a short but complete reply) */
  FAULT_CUT,      /* headers for the whole body, then half of it and a closed connection */
  FAULT_GARBAGE,  /* 200 with random bytes */
  FAULT_CLOSE     /* close the connection without answering */
};

/* The rule that fired for a request. */
typedef struct fault {
  enum fault_action action;
  int status;     /* FAULT_STATUS only */
  char rule[160]; /* the rule as written, for logs and error bodies */
} fault;

/* Parses spec (NULL or "" is no faults). On error writes a message to err and returns -1. */
int faults_parse(const char *spec, faults **out, char *err, size_t errlen);

/* Frees the rules (NULL is fine). */
void faults_free(faults *f);

/* Takes one use of the first live rule for path; returns FAULT_NONE in out when none. */
void faults_take(faults *f, const char *path, fault *out);

#endif
