/* faults.h - injected failures for tests: `--faults 500@/devices:2,503+retry=5%30@/repo/x`.
 *
 * A spec is comma-separated rules ACTION[+OPTION...][%RATE]@PATTERN[:COUNT][:for=SECONDS].
 * PATTERN is a glob over the decoded path (fnmatch without FNM_PATHNAME: `*` crosses `/`).
 * A rule answers the first COUNT requests that match it (default 1), or, with a RATE, each
 * matching request with RATE percent probability (a PRNG seeded by --faults-seed, so a run
 * is reproducible), or every matching request for SECONDS after the first one it matched;
 * limits combine. A retired rule, or one whose dice said no, lets the next rule try; rules
 * apply in the order given. Shared by all server threads (a mutex guards counts and dice).
 */
#ifndef OTA_SERVER_FAULTS_H
#define OTA_SERVER_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct faults faults;

enum fault_action {
  FAULT_NONE = 0,
  FAULT_STATUS,       /* answer `status` (400..599) with a JSON error body */
  FAULT_TRUNCATE,     /* 200 with the first half of the real body (a short but complete reply) */
  FAULT_CUT,          /* headers for the whole body, then half of it and a closed connection */
  FAULT_GARBAGE,      /* 200 with random bytes */
  FAULT_CLOSE,        /* close the connection without answering */
  FAULT_RESET,        /* reset the connection (TCP RST) without answering */
  FAULT_STALL,        /* read the request, never answer; the connection is held hold_s */
  FAULT_TRICKLE,      /* the real reply, bps bytes per second */
  FAULT_HUGE,         /* 200 with `size` bytes of JSON-looking text and a Content-Length */
  FAULT_HUGE_CHUNKED, /* the same, chunked (no Content-Length) */
  FAULT_BADJSON,      /* 200 application/json whose text is broken JSON */
  FAULT_BADMAC        /* the real PKCS#12 reply with its MAC altered (POST /devices) */
};

#define FAULT_DEFAULT_BPS 2
#define FAULT_DEFAULT_HOLD_S 300
#define FAULT_DEFAULT_HUGE (8u << 20)

/* The rule that fired for a request. */
typedef struct fault {
  enum fault_action action;
  int status;             /* FAULT_STATUS only */
  unsigned retry_after_s; /* FAULT_STATUS: a Retry-After header (+retry=N); 0 = none */
  unsigned bps;           /* FAULT_TRICKLE: bytes per second (+bps=N) */
  unsigned hold_s;        /* FAULT_STALL: how long the connection is held (+hold=N) */
  uint64_t size;          /* FAULT_HUGE*: body bytes (+size=N, K/M suffixes) */
  char rule[160];         /* the rule as written, for logs and error bodies */
} fault;

/* Parses spec (NULL or "" is no faults); seed drives the %RATE dice. On error writes a
 * message to err and returns -1. */
int faults_parse(const char *spec, uint64_t seed, faults **out, char *err, size_t errlen);

/* Frees the rules (NULL is fine). */
void faults_free(faults *f);

/* Takes one use of the first live rule for path at now_ms (a monotonic clock, for windows);
 * returns FAULT_NONE in out when none fires. */
void faults_take(faults *f, const char *path, uint64_t now_ms, fault *out);

/* True when some rule holds connections open (stall, trickle): the server must be able to
 * suspend and resume connections. */
bool faults_hold_connections(const faults *f);

/* Alters the MAC of a DER PKCS#12 (PFX) in place, leaving it well-formed; -1 when der is not
 * a PFX with MacData. */
int faults_break_p12_mac(unsigned char *der, size_t len);

#endif
