/* fleet_stats.c - request statistics and the fleet report (see fleet_stats.h). */
#include "fleet_stats.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const char *const kind_names[FR__COUNT] = {
    [FR_REGISTER] = "register",       [FR_ECUS] = "ecus",         [FR_MANIFEST] = "manifest",
    [FR_METADATA] = "metadata",       [FR_DOWNLOAD] = "download", [FR_EVENTS] = "events",
    [FR_DEVICE_DATA] = "device_data", [FR_OTHER] = "other"};

const char *fleet_req_kind_name(int kind) {
  return kind >= 0 && kind < FR__COUNT ? kind_names[kind] : "?";
}

static bool ends_with(const char *s, size_t n, const char *suffix) {
  size_t m = strlen(suffix);
  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

int fleet_req_classify(const char *method, const char *url) {
  if (!url) return FR_OTHER;
  const char *p = strstr(url, "://");
  p = p ? strchr(p + 3, '/') : url;
  if (!p) return FR_OTHER;
  size_t n = strcspn(p, "?#");
  bool get = method && strcmp(method, "GET") == 0;
  if (ends_with(p, n, "/devices")) return FR_REGISTER;
  if (ends_with(p, n, "/ecus")) return FR_ECUS;
  if (ends_with(p, n, "/manifest")) return FR_MANIFEST;
  if (ends_with(p, n, "/events")) return FR_EVENTS;
  if (strstr(p, "/system_info") || strstr(p, "/core/installed")) return FR_DEVICE_DATA;
  const char *t = strstr(p, "/targets/");
  if (get && t && t < p + n) return FR_DOWNLOAD;
  if (get && ends_with(p, n, ".json")) return FR_METADATA;
  return get ? FR_DOWNLOAD : FR_OTHER; /* a target's custom URI */
}

void fleet_stats_init(fleet_stats *s) {
  memset(s, 0, sizeof(*s));
  for (int k = 0; k < FR__COUNT; k++)
    hist_init(&s->req[k].latency_us);
}

/* The slot of name, added when new; the last slot is kept for "other". */
static int error_slot(fleet_stats *s, const char *name) {
  for (int i = 0; i < s->nerrors; i++)
    if (strcmp(s->errors[i].name, name) == 0) return i;
  if (s->nerrors >= FLEET_MAX_ERROR_KINDS - 1 && strcmp(name, "other") != 0)
    return error_slot(s, "other");
  int i = s->nerrors++;
  snprintf(s->errors[i].name, sizeof(s->errors[i].name), "%s", name);
  s->errors[i].count = 0;
  return i;
}

void fleet_stats_error(fleet_stats *s, const char *name, uint64_t n) {
  s->errors[error_slot(s, name)].count += n;
}

void fleet_stats_request(fleet_stats *s, const char *method, const char *url, int err, long status,
                         uint64_t elapsed_us, bool new_connection, bool handshake, bool resumed,
                         const char *identity, const char *expected_identity) {
  int kind = fleet_req_classify(method, url);
  fleet_req_stats *k = &s->req[kind];
  k->count++;
  hist_record(&k->latency_us, elapsed_us);
  bool end_of_chain = kind == FR_METADATA && status == 404;
  if (err) {
    k->errors++;
    fleet_stats_error(s, otad_errname(err), 1);
  } else if (status >= 400 && !end_of_chain) {
    char name[24];
    snprintf(name, sizeof(name), "http_%ld", status);
    k->errors++;
    fleet_stats_error(s, name, 1);
  }
  s->new_connections += new_connection;
  s->handshakes += handshake;
  s->resumed += handshake && resumed;
  if (identity && identity[0]) {
    s->identity_checked++;
    if (expected_identity && strcmp(identity, expected_identity) != 0) s->identity_mismatches++;
  }
}

uint64_t fleet_stats_total_requests(const fleet_stats *s) {
  uint64_t n = 0;
  for (int k = 0; k < FR__COUNT; k++)
    n += s->req[k].count;
  return n;
}

static double ms(uint64_t us) {
  return (double)us / 1000.0;
}

static uint64_t device_cycles(const fleet_summary *m) {
  return m->cycles_completed;
}

cJSON *fleet_report_json(const fleet_stats *s, const fleet_summary *m) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddNumberToObject(o, "devices", m->devices);
  cJSON_AddStringToObject(o, "mode", m->mode ? m->mode : "shared");
  cJSON_AddBoolToObject(o, "keep_alive", m->keep_alive);
  cJSON_AddNumberToObject(o, "wall_seconds", m->wall_seconds);
  cJSON *fs = cJSON_AddObjectToObject(o, "final_states");
  for (int st = 0; st < ST__COUNT; st++)
    if (m->final_states[st])
      cJSON_AddNumberToObject(fs, machine_state_name((enum dev_state)st),
                              (double)m->final_states[st]);
  if (m->not_started) cJSON_AddNumberToObject(fs, "not_started", (double)m->not_started);
  cJSON_AddNumberToObject(o, "expected_final_state", (double)m->expected_ok);
  cJSON_AddNumberToObject(o, "cycles_completed", (double)m->cycles_completed);
  cJSON_AddNumberToObject(o, "updates_installed", (double)m->updates_installed);
  cJSON *rq = cJSON_AddObjectToObject(o, "requests");
  for (int k = 0; k < FR__COUNT; k++) {
    const fleet_req_stats *r = &s->req[k];
    if (k == FR_OTHER && !r->count) continue;
    cJSON *e = cJSON_AddObjectToObject(rq, fleet_req_kind_name(k));
    cJSON_AddNumberToObject(e, "count", (double)r->count);
    cJSON_AddNumberToObject(e, "errors", (double)r->errors);
    cJSON_AddNumberToObject(e, "p50_ms", ms(hist_percentile(&r->latency_us, 50)));
    cJSON_AddNumberToObject(e, "p90_ms", ms(hist_percentile(&r->latency_us, 90)));
    cJSON_AddNumberToObject(e, "p99_ms", ms(hist_percentile(&r->latency_us, 99)));
    cJSON_AddNumberToObject(e, "max_ms", ms(r->latency_us.max));
  }
  uint64_t total = fleet_stats_total_requests(s);
  cJSON_AddNumberToObject(o, "requests_total", (double)total);
  cJSON_AddNumberToObject(o, "requests_per_second",
                          m->wall_seconds > 0 ? (double)total / m->wall_seconds : 0);
  cJSON_AddNumberToObject(o, "new_connections", (double)s->new_connections);
  cJSON_AddNumberToObject(o, "handshakes", (double)s->handshakes);
  cJSON_AddNumberToObject(o, "handshakes_per_second",
                          m->wall_seconds > 0 ? (double)s->handshakes / m->wall_seconds : 0);
  cJSON_AddNumberToObject(o, "resumed_sessions", (double)s->resumed);
  cJSON_AddNumberToObject(o, "identity_mismatches", (double)s->identity_mismatches);
  cJSON_AddNumberToObject(o, "identity_checked", (double)s->identity_checked);
  cJSON *er = cJSON_AddObjectToObject(o, "errors");
  for (int i = 0; i < s->nerrors; i++)
    cJSON_AddNumberToObject(er, s->errors[i].name, (double)s->errors[i].count);
  cJSON_AddNumberToObject(o, "peak_rss_kib", (double)m->peak_rss_kib);
  cJSON_AddNumberToObject(o, "heap_bytes_per_device", m->heap_bytes_per_device);
  cJSON *hs = cJSON_AddObjectToObject(o, "heap_per_device_split");
  cJSON_AddNumberToObject(hs, "device_struct", m->heap_split.device_struct);
  cJSON_AddNumberToObject(hs, "store", m->heap_split.store);
  cJSON_AddNumberToObject(hs, "credentials", m->heap_split.credentials);
  cJSON_AddNumberToObject(hs, "update_state", m->heap_split.update_state);
  cJSON_AddNumberToObject(hs, "connections_and_tls", m->heap_split.connections_and_tls);
  cJSON_AddNumberToObject(o, "open_connections", (double)m->open_connections);
  cJSON_AddNumberToObject(o, "cpu_seconds", m->cpu_seconds);
  uint64_t dc = device_cycles(m);
  cJSON_AddNumberToObject(o, "cpu_seconds_per_device_cycle", dc ? m->cpu_seconds / (double)dc : 0);
  return o;
}

void fleet_report_table(const fleet_stats *s, const fleet_summary *m, FILE *out) {
  double w = m->wall_seconds;
  fprintf(out, "devices:       %d (%s mode, %s)\n", m->devices, m->mode ? m->mode : "shared",
          m->keep_alive ? "keep-alive" : "connect per poll");
  fprintf(out, "final states: ");
  for (int st = 0; st < ST__COUNT; st++)
    if (m->final_states[st])
      fprintf(out, " %s %llu", machine_state_name((enum dev_state)st),
              (unsigned long long)m->final_states[st]);
  if (m->not_started) fprintf(out, " not_started %llu", (unsigned long long)m->not_started);
  fprintf(out, "\nas expected:   %llu of %d\n", (unsigned long long)m->expected_ok, m->devices);
  fprintf(out, "cycles:        %llu completed, %llu updates installed\n",
          (unsigned long long)m->cycles_completed, (unsigned long long)m->updates_installed);
  uint64_t total = fleet_stats_total_requests(s);
  fprintf(out, "wall time:     %.2f s, %llu requests (%.1f/s)\n", w, (unsigned long long)total,
          w > 0 ? (double)total / w : 0);
  fprintf(out, "\n%-12s %9s %7s %9s %9s %9s %9s\n", "request", "count", "errors", "p50 ms",
          "p90 ms", "p99 ms", "max ms");
  for (int k = 0; k < FR__COUNT; k++) {
    const fleet_req_stats *r = &s->req[k];
    if (!r->count) continue;
    fprintf(out, "%-12s %9llu %7llu %9.1f %9.1f %9.1f %9.1f\n", fleet_req_kind_name(k),
            (unsigned long long)r->count, (unsigned long long)r->errors,
            ms(hist_percentile(&r->latency_us, 50)), ms(hist_percentile(&r->latency_us, 90)),
            ms(hist_percentile(&r->latency_us, 99)), ms(r->latency_us.max));
  }
  fprintf(out, "\nconnections:   %llu opened, %llu TLS handshakes (%.1f/s), %llu resumed\n",
          (unsigned long long)s->new_connections, (unsigned long long)s->handshakes,
          w > 0 ? (double)s->handshakes / w : 0, (unsigned long long)s->resumed);
  fprintf(out, "identity:      %llu mismatches in %llu replies naming a certificate\n",
          (unsigned long long)s->identity_mismatches, (unsigned long long)s->identity_checked);
  if (s->nerrors) {
    fprintf(out, "errors:       ");
    for (int i = 0; i < s->nerrors; i++)
      fprintf(out, " %s %llu", s->errors[i].name, (unsigned long long)s->errors[i].count);
    fprintf(out, "\n");
  }
  uint64_t dc = device_cycles(m);
  fprintf(out, "memory:        peak RSS %.1f MiB, heap %.0f bytes per device (%llu sockets open)\n",
          m->peak_rss_kib / 1024.0, m->heap_bytes_per_device,
          (unsigned long long)m->open_connections);
  if (m->heap_split.device_struct > 0)
    fprintf(out,
            "  per device:  struct %.0f, store %.0f, credentials %.0f, update state %.0f, "
            "connections+TLS %.0f bytes\n",
            m->heap_split.device_struct, m->heap_split.store, m->heap_split.credentials,
            m->heap_split.update_state, m->heap_split.connections_and_tls);
  fprintf(out, "cpu:           %.2f s", m->cpu_seconds);
  if (dc) fprintf(out, ", %.3f ms per device-cycle", m->cpu_seconds * 1000.0 / (double)dc);
  fprintf(out, "\n");
}
