/* fleet_stats.h - what otad-fleet measures, and the report it makes of it.
 *
 * Every request a simulated device makes ends in fleet_stats_request(): it is classified
 * by its URL path (register, ecus, manifest, metadata, download, events, device_data),
 * counted, timed into that kind's histogram, and checked against the identity the server
 * says it saw (X-Client-Identity). The fleet adds the rest (states, cycles, memory, CPU)
 * in a fleet_summary, and fleet_report_json() / fleet_report_table() turn both into the
 * report: JSON for programs (schema in the otad-fleet help), a table for people. Kept
 * apart from tools/fleet.c so the report is unit-tested without a fleet.
 */
#ifndef OTAD_FLEET_STATS_H
#define OTAD_FLEET_STATS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/machine.h"
#include "histogram.h"

enum fleet_req_kind {
  FR_REGISTER,    /* POST /devices */
  FR_ECUS,        /* POST /director/ecus */
  FR_MANIFEST,    /* PUT /director/manifest */
  FR_METADATA,    /* GET director or image repository metadata (*.json) */
  FR_DOWNLOAD,    /* GET /repo/targets/... (or a target's custom URI) */
  FR_EVENTS,      /* POST /events */
  FR_DEVICE_DATA, /* system_info, installed packages, network, configuration */
  FR_OTHER,
  FR__COUNT
};

/* "register", "ecus", ... */
const char *fleet_req_kind_name(int kind);

/* The kind of a request from its method and URL (scheme and host are skipped). */
int fleet_req_classify(const char *method, const char *url);

#define FLEET_MAX_ERROR_KINDS 32

typedef struct fleet_req_stats {
  uint64_t count, errors;
  histogram latency_us;
} fleet_req_stats;

typedef struct fleet_stats {
  fleet_req_stats req[FR__COUNT];
  uint64_t new_connections;     /* requests that opened a connection */
  uint64_t handshakes;          /* TLS handshakes (new connections over TLS) */
  uint64_t resumed;             /* of them, resumed TLS sessions */
  uint64_t identity_mismatches; /* replies naming another certificate than the request's */
  uint64_t identity_checked;    /* replies that named one at all */
  struct {
    char name[40];
    uint64_t count;
  } errors[FLEET_MAX_ERROR_KINDS]; /* by kind: "OTAD_ENET", "http_503", ...; full: "other" */
  int nerrors;
} fleet_stats;

/* Empties s (it is large, about 50 KiB: allocate it, or make it static). */
void fleet_stats_init(fleet_stats *s);

/* Counts one finished request: err (OTAD_E*, 0 when a reply came), its HTTP status, its
 * time, whether it made a (resumed) TLS handshake, the identity the reply named ("" or
 * NULL: none) and the one expected (NULL: do not check). A reply is an error when err is
 * set or the status is 4xx/5xx, except a metadata 404 (the end of a root chain). */
void fleet_stats_request(fleet_stats *s, const char *method, const char *url, int err, long status,
                         uint64_t elapsed_us, bool new_connection, bool handshake, bool resumed,
                         const char *identity, const char *expected_identity);

/* Adds n to the error kind named name. */
void fleet_stats_error(fleet_stats *s, const char *name, uint64_t n);

/* The requests of all kinds. */
uint64_t fleet_stats_total_requests(const fleet_stats *s);

/* What the fleet knows besides requests. */
typedef struct fleet_summary {
  int devices;
  const char *mode; /* "shared" | "device" */
  bool keep_alive;
  double wall_seconds;
  uint64_t final_states[ST__COUNT]; /* devices per state they ended in */
  uint64_t not_started;             /* devices the run ended before (or whose identity could
                                       not be made); reported as final state "not_started" */
  uint64_t cycles_completed;        /* polling cycles that reached idle */
  uint64_t updates_installed;       /* installed events */
  uint64_t expected_ok;             /* devices that reached what the run asked for */
  long peak_rss_kib;
  double heap_bytes_per_device; /* heap in use by the fleet's devices, per device */
  struct {                      /* where heap_bytes_per_device goes (0 = not measured) */
    double device_struct, store, credentials, update_state, connections_and_tls;
  } heap_split;
  uint64_t open_connections; /* sockets open when the heap was measured */
  double cpu_seconds;        /* user + system */
  int cycles_per_device;     /* --cycles (0 = none) */
} fleet_summary;

/* The report as JSON: devices, mode, keep_alive, wall_seconds, final_states,
 * cycles_completed, updates_installed, requests{kind:{count,errors,p50_ms,p90_ms,p99_ms,
 * max_ms}}, handshakes, handshakes_per_second, resumed_sessions, identity_mismatches,
 * errors{kind:n}, peak_rss_kib, heap_bytes_per_device, cpu_seconds,
 * cpu_seconds_per_device_cycle (and a few more). NULL when out of memory. */
cJSON *fleet_report_json(const fleet_stats *s, const fleet_summary *m);

/* The same as a table for people. */
void fleet_report_table(const fleet_stats *s, const fleet_summary *m, FILE *out);

#endif
