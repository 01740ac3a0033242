/* fleet.c - otad-fleet: many virtual devices provisioning on one libuv loop.
 *
 * Every virtual device is a full `device` (the same state machine, states and transport as
 * otad) with its own generated ID, Uptane key, issued certificate and in-memory store; they
 * share only the loop, the curl multi handle (whose connection and TLS session caches are
 * kept apart by each request's own certificate blobs), the read-only config and the fleet
 * key parsed once. Starts are limited by --concurrency (devices mid-provisioning at once)
 * and --ramp (starts per second), so the server sees a realistic arrival pattern.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/config.h"
#include "core/device.h"
#include "core/log.h"
#include "storage/credzip.h"
#include "storage/store.h"
#include "transport/http.h"
#include "transport/tls.h"

static const char usage_text[] =
    "Usage: otad-fleet --devices N --credentials ZIP [OPTIONS]\n"
    "\n"
    "Runs N virtual devices through automatic provisioning in one process, each with its own\n"
    "ID, key and certificate, and reports how many provisioned, how many failed and why.\n"
    "\n"
    "Options:\n"
    "  -n, --devices N         number of virtual devices (required)\n"
    "  -z, --credentials ZIP   the fleet's credentials.zip (required)\n"
    "  -s, --server URL        device gateway (default: autoprov.url from the zip)\n"
    "      --p12-password PW   password of the zip's PKCS#12 (default empty)\n"
    "      --key-type TYPE     Uptane key: ED25519 (default), RSA2048, RSA3072, RSA4096\n"
    "      --concurrency C     devices provisioning at the same time (default 64)\n"
    "      --ramp R            device starts per second (default 0: as fast as C allows)\n"
    "      --retries N         transient failures a device tolerates (default 8)\n"
    "      --seed S            seed for IDs and jitter (default: from the clock)\n"
    "      --journal FILE      append every device's transitions to FILE\n"
    "      --report FILE       write a JSON report (totals and every device) to FILE\n"
    "      --loglevel N        0 trace .. 5 fatal (default 3: warnings and errors)\n"
    "  -h, --help              this text\n"
    "\n"
    "Exit status: 0 every device provisioned, 1 some failed, 2 usage or setup error.\n";

typedef struct fleet {
  otad_config cfg;
  uv_loop_t *loop;
  http_client *http;
  journal *jr;
  tls_creds prov;
  char *url;
  device **devs;
  int n, started, finished, running, provisioned, failed, closed;
  int concurrency;
  int retries;
  unsigned long long seed;
  double ramp;
  uint64_t t0, t_end;
  uv_timer_t ramp_timer;
  uv_signal_t sigint;
  int ramp_closed;
} fleet;

static void start_more(fleet *f);

static void on_closed(device *d) {
  fleet *f = d->o.data;
  if (++f->closed == f->started) {
    http_client_close(f->http);
    uv_close((uv_handle_t *)&f->sigint, NULL);
  }
}

static void finish_all(fleet *f) {
  f->t_end = uv_now(f->loop);
  uv_timer_stop(&f->ramp_timer);
  if (!f->ramp_closed) {
    f->ramp_closed = 1;
    uv_close((uv_handle_t *)&f->ramp_timer, NULL);
  }
  for (int i = 0; i < f->started; i++) device_close(f->devs[i], on_closed);
  if (f->started == 0) {
    http_client_close(f->http);
    uv_close((uv_handle_t *)&f->sigint, NULL);
  }
}

static void on_device_done(device *d) {
  fleet *f = d->o.data;
  f->finished++;
  f->running--;
  if (d->state == ST_PROVISIONED) f->provisioned++;
  else f->failed++;
  if (f->finished == f->n) finish_all(f);
  else start_more(f);
}

static void start_one(fleet *f) {
  int i = f->started++;
  device *d = calloc(1, sizeof(*d));
  char label[32];
  snprintf(label, sizeof(label), "dev-%06d", i);
  device_opts o = {
      .label = label,
      .cfg = &f->cfg,
      .loop = f->loop,
      .http = f->http,
      .st = store_mem_open(),
      .jr = f->jr,
      .shared_prov = &f->prov,
      .shared_url = f->url,
      .seed = f->seed ? f->seed + (uint64_t)i : 0,
      .max_retries = f->retries,
      .quiet = true,
      .done = on_device_done,
      .data = f,
  };
  f->devs[i] = d;
  device_init(d, &o);
  f->running++;
  device_start(d);
}

static void on_ramp(uv_timer_t *t) {
  fleet *f = t->data;
  start_more(f);
}

static void start_more(fleet *f) {
  if (f->ramp > 0) {
    /* start as many as the ramp allows by now */
    double elapsed = (uv_now(f->loop) - f->t0) / 1000.0;
    int allowed = (int)(elapsed * f->ramp) + 1;
    while (f->started < f->n && f->started < allowed && f->running < f->concurrency)
      start_one(f);
  } else {
    while (f->started < f->n && f->running < f->concurrency) start_one(f);
  }
}

static void on_sigint(uv_signal_t *h, int sig) {
  fleet *f = h->data;
  fprintf(stderr, "otad-fleet: interrupted; stopping %d running devices\n", f->running);
  f->n = f->finished;
  finish_all(f);
}

/* Groups failure reasons: the same message counts once per kind. */
static void print_failures(fleet *f, FILE *out) {
  typedef struct reason {
    char msg[160];
    int count;
  } reason;
  reason rs[16];
  int nr = 0, other = 0;
  for (int i = 0; i < f->started; i++) {
    device *d = f->devs[i];
    if (d->state == ST_PROVISIONED) continue;
    const char *m = d->eb.msg[0] ? d->eb.msg : d->state == ST_FAILED ? otad_strerror(d->last_err)
                                                                     : "did not finish";
    int k;
    for (k = 0; k < nr; k++)
      if (strncmp(rs[k].msg, m, sizeof(rs[k].msg) - 1) == 0) break;
    if (k == nr) {
      if (nr == 16) {
        other++;
        continue;
      }
      snprintf(rs[nr].msg, sizeof(rs[nr].msg), "%s", m);
      rs[nr++].count = 0;
    }
    rs[k].count++;
  }
  for (int k = 0; k < nr; k++) fprintf(out, "  %6d  %s\n", rs[k].count, rs[k].msg);
  if (other) fprintf(out, "  %6d  (other reasons)\n", other);
}

static int write_report(fleet *f, const char *path, double wall, long rss_kb) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "devices", f->n);
  cJSON_AddNumberToObject(o, "provisioned", f->provisioned);
  cJSON_AddNumberToObject(o, "failed", f->n - f->provisioned);
  cJSON_AddNumberToObject(o, "wall_seconds", wall);
  cJSON_AddNumberToObject(o, "peak_rss_kib", (double)rss_kb);
  cJSON *arr = cJSON_AddArrayToObject(o, "device_list");
  for (int i = 0; i < f->started; i++) {
    device *d = f->devs[i];
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "label", d->label);
    cJSON_AddStringToObject(e, "device_id", d->id);
    cJSON_AddStringToObject(e, "uuid", d->uuid);
    cJSON_AddStringToObject(e, "ecu_serial", d->ecu_serial);
    cJSON_AddStringToObject(e, "state", machine_state_name(d->state));
    if (d->state != ST_PROVISIONED) cJSON_AddStringToObject(e, "error", d->eb.msg);
    cJSON_AddItemToArray(arr, e);
  }
  char *s = cJSON_Print(o);
  cJSON_Delete(o);
  FILE *out = fopen(path, "w");
  if (!out) {
    fprintf(stderr, "otad-fleet: cannot write %s: %m\n", path);
    free(s);
    return -1;
  }
  fprintf(out, "%s\n", s);
  fclose(out);
  free(s);
  return 0;
}

/* Raises the open-file limit as far as allowed; says how many connections it allows. */
static void raise_nofile(int want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if ((long)rl.rlim_cur < want + 64)
    fprintf(stderr, "otad-fleet: open-file limit %ld allows about %ld connections at once\n",
            (long)rl.rlim_cur, (long)rl.rlim_cur - 64);
}

int main(int argc, char **argv) {
  enum { OPT_P12PW = 256, OPT_KEYTYPE, OPT_CONC, OPT_RAMP, OPT_RETRIES, OPT_SEED, OPT_JOURNAL,
         OPT_REPORT, OPT_LOGLEVEL };
  static const struct option longopts[] = {{"devices", required_argument, 0, 'n'},
                                           {"credentials", required_argument, 0, 'z'},
                                           {"server", required_argument, 0, 's'},
                                           {"p12-password", required_argument, 0, OPT_P12PW},
                                           {"key-type", required_argument, 0, OPT_KEYTYPE},
                                           {"concurrency", required_argument, 0, OPT_CONC},
                                           {"ramp", required_argument, 0, OPT_RAMP},
                                           {"retries", required_argument, 0, OPT_RETRIES},
                                           {"seed", required_argument, 0, OPT_SEED},
                                           {"journal", required_argument, 0, OPT_JOURNAL},
                                           {"report", required_argument, 0, OPT_REPORT},
                                           {"loglevel", required_argument, 0, OPT_LOGLEVEL},
                                           {"help", no_argument, 0, 'h'},
                                           {0, 0, 0, 0}};
  static fleet f;
  const char *zip = NULL, *server = NULL, *p12pw = "", *key_type = "ED25519",
             *journal_path = NULL, *report = NULL;
  int retries = 8, loglevel = LOG_WARN, ch;
  unsigned long long seed = 0;
  f.concurrency = 64;
  while ((ch = getopt_long(argc, argv, "n:z:s:h", longopts, NULL)) != -1) {
    switch (ch) {
      case 'n': f.n = atoi(optarg); break;
      case 'z': zip = optarg; break;
      case 's': server = optarg; break;
      case OPT_P12PW: p12pw = optarg; break;
      case OPT_KEYTYPE: key_type = optarg; break;
      case OPT_CONC: f.concurrency = atoi(optarg); break;
      case OPT_RAMP: f.ramp = atof(optarg); break;
      case OPT_RETRIES: retries = atoi(optarg); break;
      case OPT_SEED: seed = strtoull(optarg, NULL, 10); break;
      case OPT_JOURNAL: journal_path = optarg; break;
      case OPT_REPORT: report = optarg; break;
      case OPT_LOGLEVEL: loglevel = atoi(optarg); break;
      case 'h': fputs(usage_text, stdout); return 0;
      default: fputs(usage_text, stderr); return 2;
    }
  }
  if (f.n <= 0 || !zip || optind != argc || f.concurrency <= 0) {
    fprintf(stderr, "otad-fleet: %s\n\n%s",
            f.n <= 0 ? "--devices N (N > 0) is required"
            : !zip   ? "--credentials ZIP is required"
                     : "bad arguments",
            usage_text);
    return 2;
  }
  log_set_level(loglevel);
  http_global_init();
  tls_global_init();

  otad_errbuf eb = {{0}};
  config_init(&f.cfg);
  int rc = config_set(&f.cfg, "provision.provision_path", zip, &eb);
  if (!rc) rc = config_set(&f.cfg, "uptane.key_type", key_type, &eb);
  if (!rc) rc = config_set(&f.cfg, "provision.mode", "SharedCredReuse", &eb);
  if (!rc) rc = config_finish(&f.cfg, &eb);
  if (rc) {
    fprintf(stderr, "otad-fleet: %s\n", eb.msg);
    return 2;
  }
  credzip z = {0};
  if ((rc = credzip_read(zip, &z, &eb)) != 0 ||
      (rc = tls_p12_parse(z.p12, z.p12_len, p12pw, &f.prov, &eb)) != 0) {
    fprintf(stderr, "otad-fleet: %s: %s\n", zip, eb.msg);
    credzip_free(&z);
    return 2;
  }
  f.url = strdup(server ? server : z.url ? z.url : "");
  credzip_free(&z);
  if (!f.url[0]) {
    fprintf(stderr, "otad-fleet: no server URL (--server, or autoprov.url in the zip)\n");
    return 2;
  }
  if (journal_path && !(f.jr = journal_open(journal_path, &eb))) {
    fprintf(stderr, "otad-fleet: %s\n", eb.msg);
    return 2;
  }
  raise_nofile(f.concurrency);
  f.devs = calloc((size_t)f.n, sizeof(*f.devs));
  f.loop = uv_default_loop();
  f.http = http_client_new(f.loop);
  uv_timer_init(f.loop, &f.ramp_timer);
  f.ramp_timer.data = &f;
  uv_signal_init(f.loop, &f.sigint);
  f.sigint.data = &f;
  uv_signal_start(&f.sigint, on_sigint, SIGINT);
  f.retries = retries;
  f.seed = seed;
  fprintf(stderr, "otad-fleet: provisioning %d devices against %s (concurrency %d%s)\n", f.n,
          f.url, f.concurrency, f.ramp > 0 ? ", ramped" : "");
  f.t0 = uv_now(f.loop);
  start_more(&f);
  if (f.ramp > 0) uv_timer_start(&f.ramp_timer, on_ramp, 10, 10);
  uv_run(f.loop, UV_RUN_DEFAULT);

  double wall = (f.t_end - f.t0) / 1000.0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("devices:      %d\n", f.n);
  printf("provisioned:  %d\n", f.provisioned);
  printf("failed:       %d\n", f.n - f.provisioned);
  if (f.n - f.provisioned) print_failures(&f, stdout);
  printf("wall time:    %.2f s (%.1f devices/s)\n", wall, wall > 0 ? f.provisioned / wall : 0);
  printf("cpu time:     %.2f s user, %.2f s system\n",
         ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
         ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
  printf("peak RSS:     %.1f MiB (%.1f KiB per device)\n", ru.ru_maxrss / 1024.0,
         (double)ru.ru_maxrss / f.n);
  if (report) write_report(&f, report, wall, ru.ru_maxrss);

  int all = f.provisioned == f.n;
  for (int i = 0; i < f.started; i++) {
    device_free(f.devs[i]);
    free(f.devs[i]);
  }
  free(f.devs);
  free(f.url);
  tls_creds_free(&f.prov);
  journal_close(f.jr);
  config_free(&f.cfg);
  uv_loop_close(f.loop);
  curl_global_cleanup();
  return all ? 0 : 1;
}
