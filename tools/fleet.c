/* fleet.c - otad-fleet: many virtual devices on one libuv loop, provisioning and updating.
 *
 * Every virtual device is a full `device` (the same state machine, states and transport as
 * otad) with its own ID, Uptane key, TLS identity and store; they share only the loop, the
 * curl multi handle (connections and TLS sessions are kept apart by each request's own
 * certificate blob), the read-only config, and in shared mode the fleet key parsed once.
 *
 * Two ways to get an identity: shared mode registers with the credentials.zip's fleet key
 * (POST /devices); device mode makes a key and a certificate signed by a fleet CA on the
 * thread pool as each device starts (transport/certgen.c, as otad-cert-provider does) and
 * stores it the way an imported identity is stored, so the device goes straight to ECU
 * registration. After provisioning each device polls (--cycles K or --duration S): signed
 * manifest, Uptane metadata, and when the server assigned an update a download that only
 * hashes (--storage mem) and an installation with [pacman] type none.
 *
 * Starts are limited by --concurrency (devices provisioning at once) and --ramp (starts
 * per second). Every request's outcome reaches one observer on the HTTP client, which
 * feeds core/fleet_stats (per-kind latency histograms, handshakes, identity checks).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/rng.h"
#include "crypto/certgen.h"
#include "crypto/tls.h"
#include "device/device.h"
#include "states/states.h"
#include "storage/credzip.h"
#include "storage/image.h"
#include "storage/store.h"
#include "tools/fleet_stats.h"
#include "transport/http.h"

#define PROG "otad-fleet"

static const char usage_text[] =
    "Usage: " PROG " --devices N --credentials ZIP [OPTIONS]            (shared mode)\n"
    "       " PROG " --devices N --mode device --fleet-ca CA.pem --fleet-ca-key CA.key\n"
    "                  --server URL --server-ca SERVER_CA.pem [OPTIONS]   (device mode)\n"
    "\n"
    "Runs N virtual devices in one process, each with its own ID, keys and certificate,\n"
    "through provisioning and (with --cycles or --duration) the update cycle, and reports\n"
    "latencies per request kind, handshakes, identity checks, memory and CPU.\n"
    "\n"
    "Identity:\n"
    "  -n, --devices N         number of virtual devices (required)\n"
    "      --mode M            shared (default): register with the zip's fleet key;\n"
    "                          device: certificates signed by --fleet-ca, made at start\n"
    "  -z, --credentials ZIP   shared mode: the fleet's credentials.zip\n"
    "      --p12-password PW   password of the zip's PKCS#12 (default empty)\n"
    "      --fleet-ca FILE     device mode: fleet CA certificate (the server must trust it:\n"
    "                          ota-server add-fleet-ca)\n"
    "      --fleet-ca-key FILE device mode: its private key (unencrypted PEM)\n"
    "      --server-ca FILE    device mode: the CA the server's certificate chains to\n"
    "  -s, --server URL        device gateway (shared mode default: autoprov.url of the zip)\n"
    "      --tls-key T         device mode TLS keys: EC256 (default) | RSA2048\n"
    "      --key-type T        Uptane key: ED25519 (default), RSA2048, RSA3072, RSA4096\n"
    "      --hwid H            primary ECU hardware ID (default: the host name)\n"
    "\n"
    "Load:\n"
    "      --concurrency C     devices provisioning at the same time (default 64)\n"
    "      --ramp R            device starts per second (default 0: as fast as C allows)\n"
    "      --cycles K          each device polls K times after provisioning, then stops\n"
    "      --duration S        or: run S seconds, then stop every device and report\n"
    "                          (neither: provisioning only)\n"
    "      --poll S            seconds between a device's polls (default 10; fractions ok)\n"
    "      --on-provisioned CMD  once every device is provisioned, run CMD (/bin/sh -c) and\n"
    "                          wait for it before any device polls (e.g. ota-server assign\n"
    "                          DIR --all ...); the first polls are then spread over --poll\n"
    "      --jitter F          +-F fraction of random spread of --poll (default 0.1)\n"
    "      --keep-alive        keep each device's connection open between polls; without it\n"
    "                          every poll connects anew (resuming the device's own TLS\n"
    "                          session when the server allows it)\n"
    "      --storage mem|DIR   in-memory stores and hash-only downloads (default), or one\n"
    "                          store directory and images directory per device under DIR\n"
    "      --retries N         transient failures in a row a device tolerates (default 8)\n"
    "      --seed S            reproducible IDs, jitter and start order (default: clock)\n"
    "\n"
    "Output:\n"
    "      --journal FILE      append every device's transitions (otad-replay reads it)\n"
    "      --report FILE       write the report as JSON to FILE (the table goes to stdout)\n"
    "      --list-devices      add every device (label, IDs, state) to the JSON report\n"
    "      --no-progress       no live progress line (shown only when stderr is a terminal)\n"
    "      --loglevel N        0 trace .. 5 fatal (default 3: warnings and errors)\n"
    "  -h, --help              this text\n"
    "\n"
    "Exit status: 0 every device reached the expected final state (provisioned; with\n"
    "--cycles K polled K times; with --duration not failed), 1 some did not, 2 usage or\n"
    "setup error.\n";

typedef struct fleet fleet;

/* Command-line settings that are not fleet state of their own. */
typedef struct fleet_args {
  const char *zip, *p12pw, *key_type, *journal_path, *report, *mode, *ca, *ca_key, *server_ca,
      *tls_key, *hwid, *storage, *on_provisioned;
  int loglevel;
  bool no_progress;
} fleet_args;

/* One virtual device and what the fleet tracks about it. */
typedef struct fleet_dev {
  device d; /* first: a device* of the fleet is a fleet_dev* */
  fleet *f;
  uint32_t index;
  uint32_t cycles;
  bool provisioned, finished, closed;
} fleet_dev;

/* A device-mode identity being made on the thread pool. */
typedef struct id_job {
  uv_work_t work;
  fleet *f;
  uint32_t index;
  char cn[64];
  char *key_pem, *cert_pem;
  int rc;
  otad_errbuf eb;
} id_job;

struct fleet {
  fleet_args args;
  otad_config cfg;
  uv_loop_t *loop;
  http_client *http;
  journal *jr;
  tls_creds prov; /* shared mode */
  char prov_cn[256];
  char *url;
  bool device_mode;
  char *ca_pem, *ca_key_pem, *server_ca_pem; /* device mode */
  int rsa_bits;
  char run_id[20];
  const char *storage_dir; /* NULL = memory */
  otad_config *dev_cfgs;   /* --storage DIR: per-device copies with their images path */

  fleet_dev **devs;
  int n, started, generating, provisioning, finished, closed, failed_setup;
  int concurrency, retries, cycles;
  double ramp, duration, poll_s, jitter;
  bool keep_alive, progress, list_devices, stopping, all_closed;
  const char *on_provisioned; /* command run once all are provisioned, or NULL */
  int hook_state;             /* 0 not run, 1 running, 2 done */
  int hook_status;
  int provisioned; /* devices that reached provisioned */
  uv_process_t hook;
  unsigned long long seed;
  uint64_t t0, t_end;
  uint64_t cycles_completed, updates_installed;
  uv_timer_t ramp_timer, tick_timer, duration_timer;
  uv_signal_t sigint;
  fleet_stats *stats;
  uint64_t last_requests, last_tick;
  size_t heap_base, heap_at_end;
  double store_bytes, cred_bytes; /* summed over the devices at the end */
  uint64_t fds_at_end;
  otad_errbuf setup_eb;
  /* Connect-per-poll runs that end with every device idle measure the heap once libcurl
   * has closed the idle connections: 0 not yet, 1 pruning, 2 done. */
  int prune_state;
  uint64_t prune_t0;
};

static void start_more(fleet *f);
static void finish_all(fleet *f);
static void maybe_run_hook(fleet *f);

/* Heap bytes in use (brk arenas and mmapped blocks). */
static size_t heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

static uint64_t count_open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return 0;
  uint64_t n = 0;
  while (readdir(d))
    n++;
  closedir(d);
  return n > 3 ? n - 3 : 0; /* ., .. and the directory's own descriptor */
}

/* ---- the request observer ---- */

static void on_request(void *ctx, const http_request *r) {
  fleet *f = ctx;
  if (r->err == OTAD_ECANCELED) return;
  device *d = r->data;
  const char *expect = NULL;
  if (d && r->cert_pem && r->cert_pem == d->creds.cert_pem)
    expect = d->uuid;
  else if (r->cert_pem && f->prov.cert_pem && r->cert_pem == f->prov.cert_pem)
    expect = f->prov_cn;
  fleet_stats_request(f->stats, r->method, r->url, r->err, r->status, r->elapsed_us,
                      r->new_connection, r->handshake, r->resumed, r->identity, expect);
}

/* ---- device lifecycle ---- */

static void maybe_all_closed(fleet *f) {
  if (!f->stopping || f->all_closed || f->closed < f->started || f->generating) return;
  f->all_closed = true;
  http_client_close(f->http);
  uv_close((uv_handle_t *)&f->sigint, NULL);
  uv_close((uv_handle_t *)&f->tick_timer, NULL);
  uv_close((uv_handle_t *)&f->ramp_timer, NULL);
  uv_close((uv_handle_t *)&f->duration_timer, NULL);
}

static void on_closed(device *d) {
  fleet_dev *fd = (fleet_dev *)d;
  fd->closed = true;
  fd->f->closed++;
  maybe_all_closed(fd->f);
}

/* The device is done (reached what the run asked, or failed): stop it. */
static void device_finished(fleet_dev *fd) {
  fleet *f = fd->f;
  if (fd->finished) return;
  fd->finished = true;
  f->finished++;
  if (!fd->provisioned) f->provisioning--;
  device_close(&fd->d, on_closed);
  if (f->finished + f->failed_setup >= f->n)
    finish_all(f);
  else
    start_more(f);
  if (!fd->provisioned) maybe_run_hook(f);
}

/* Polls begin: at once, or spread over one interval after the --on-provisioned command. */
static void begin_polling(fleet_dev *fd, bool spread) {
  fleet *f = fd->f;
  device *d = &fd->d;
  if (!spread) {
    device_fire(d, EV_POLL, NULL);
    return;
  }
  uint64_t poll_ms = (uint64_t)(f->poll_s * 1000);
  device_poll_in(d, rng_below(&d->rng, poll_ms + 1));
}

static void run_hook(fleet *f);

/* The command runs once no device is still on its way to provisioned. */
static void maybe_run_hook(fleet *f) {
  if (f->on_provisioned && !f->stopping && f->provisioned + f->finished + f->failed_setup >= f->n)
    run_hook(f);
}

static bool polls(const fleet *f) {
  return f->cycles > 0 || f->duration > 0;
}

/* Provisioned (the run may end here) or failed. */
static void on_device_done(device *d) {
  fleet_dev *fd = (fleet_dev *)d;
  fleet *f = fd->f;
  if (d->state != ST_PROVISIONED || !polls(f) || f->stopping) {
    device_finished(fd);
    return;
  }
  if (!f->on_provisioned) {
    begin_polling(fd, false);
    return;
  }
  maybe_run_hook(f);
}

static void on_hook_exit(uv_process_t *p, int64_t status, int sig) {
  fleet *f = p->data;
  uv_close((uv_handle_t *)p, NULL);
  f->hook_state = 2;
  f->hook_status = sig ? 128 + sig : (int)status;
  if (f->hook_status)
    fprintf(stderr,
            "\n" PROG ": --on-provisioned command exited with status %d; polling "
            "anyway\n",
            f->hook_status);
  if (f->stopping) return;
  for (int i = 0; i < f->n; i++) {
    fleet_dev *fd = f->devs[i];
    if (fd && !fd->finished && fd->d.state == ST_PROVISIONED) begin_polling(fd, true);
  }
}

/* Every device is provisioned (or gave up): run the command once. */
static void run_hook(fleet *f) {
  if (f->hook_state) return;
  f->hook_state = 1;
  char *args[] = {"/bin/sh", "-c", (char *)f->on_provisioned, NULL};
  uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                   {.flags = UV_INHERIT_FD, .data.fd = 2},
                                   {.flags = UV_INHERIT_FD, .data.fd = 2}};
  uv_process_options_t o = {
      .exit_cb = on_hook_exit, .file = args[0], .args = args, .stdio_count = 3, .stdio = stdio};
  f->hook.data = f;
  int rc = uv_spawn(f->loop, &f->hook, &o);
  if (rc) {
    fprintf(stderr, PROG ": cannot run --on-provisioned command: %s\n", uv_strerror(rc));
    uv_close((uv_handle_t *)&f->hook, NULL);
    f->hook_state = 2;
    f->hook_status = 127;
    for (int i = 0; i < f->n; i++) {
      fleet_dev *fd = f->devs[i];
      if (fd && !fd->finished && fd->d.state == ST_PROVISIONED) begin_polling(fd, true);
    }
    return;
  }
  fprintf(stderr, "%s" PROG ": all devices provisioned; running: %s\n", f->progress ? "\n" : "",
          f->on_provisioned);
}

static void on_step(device *d, const transition *t) {
  fleet_dev *fd = (fleet_dev *)d;
  fleet *f = fd->f;
  if (t->action == ACT_FINISH && !fd->provisioned) {
    fd->provisioned = true;
    f->provisioned++;
    f->provisioning--;
    if (!f->stopping) start_more(f);
  }
  if (t->event == EV_INSTALLED) f->updates_installed++;
  if (t->action == ACT_IDLE) {
    fd->cycles++;
    f->cycles_completed++;
    if (f->cycles > 0 && fd->cycles >= (uint32_t)f->cycles) device_finished(fd);
  }
}

static store *open_store(fleet *f, const char *label, otad_errbuf *eb) {
  if (!f->storage_dir) {
    store *s = store_mem_open();
    if (!s) otad_fail(eb, OTAD_ENOMEM, "out of memory");
    return s;
  }
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s/storage", f->storage_dir, label);
  return store_fs_open(path, eb);
}

/* Stores a device-mode identity as an imported one is stored (credentials.c's files). */
static int store_identity(fleet *f, store *st, id_job *j, otad_errbuf *eb) {
  int rc = store_write(st, STORE_PKEY_PEM, j->key_pem, strlen(j->key_pem), true, eb);
  if (!rc) rc = store_write(st, STORE_CLIENT_PEM, j->cert_pem, strlen(j->cert_pem), false, eb);
  if (!rc)
    rc = store_write(st, STORE_ROOT_CRT, f->server_ca_pem, strlen(f->server_ca_pem), false, eb);
  if (!rc) rc = store_write(st, STORE_DEVICE_ID, j->cn, strlen(j->cn), false, eb);
  return rc;
}

static void launch_device(fleet *f, uint32_t i, id_job *j) {
  char label[32];
  snprintf(label, sizeof(label), "dev-%06u", i);
  otad_errbuf eb = {{0}};
  store *st = open_store(f, label, &eb);
  if (st && j && store_identity(f, st, j, &eb) != 0) {
    store_close(st);
    st = NULL;
  }
  if (!st) {
    if (!f->setup_eb.msg[0])
      snprintf(f->setup_eb.msg, sizeof(f->setup_eb.msg), "%s: %s", label, eb.msg);
    f->failed_setup++;
    f->provisioning--;
    if (f->finished + f->failed_setup >= f->n) finish_all(f);
    return;
  }
  fleet_dev *fd = calloc(1, sizeof(*fd));
  if (!fd) {
    store_close(st);
    f->failed_setup++;
    f->provisioning--;
    return;
  }
  fd->f = f;
  fd->index = i;
  device_opts o = {
      .actions = &states_actions,
      .label = label,
      .cfg = f->dev_cfgs ? &f->dev_cfgs[i] : &f->cfg,
      .loop = f->loop,
      .http = f->http,
      .st = st,
      .jr = f->jr,
      .shared_prov = f->device_mode ? NULL : &f->prov,
      .shared_url = f->url,
      .seed = f->seed ? (f->seed * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)i + 1) : 0,
      .max_retries = f->retries,
      .quiet = true,
      .updates = false, /* polls are started by on_device_done */
      .done = on_device_done,
      .data = f,
      .image_sink = f->storage_dir == NULL ? image_sink_hash_only_new : NULL,
      .connect_per_poll = !f->keep_alive,
      .http_max_idle_s = f->keep_alive ? 0 : 1,
      .tls_cache = i + 1,
      .poll_ms = (uint32_t)(f->poll_s * 1000 + 0.5),
      .poll_jitter = f->jitter,
      .on_step = on_step,
  };
  if (!o.poll_ms) o.poll_ms = 1;
  f->devs[i] = fd;
  f->started++;
  device_init(&fd->d, &o);
  device_start(&fd->d);
}

static void id_work(uv_work_t *w) {
  id_job *j = w->data;
  fleet *f = j->f;
  certgen_opts o = {.cn = j->cn, .days = 365, .rsa_bits = f->rsa_bits};
  j->rc = certgen_device(f->ca_pem, f->ca_key_pem, &o, &j->key_pem, &j->cert_pem, &j->eb);
}

static void id_done(uv_work_t *w, int status) {
  id_job *j = w->data;
  fleet *f = j->f;
  f->generating--;
  if (status == 0 && j->rc == 0 && !f->stopping) {
    launch_device(f, j->index, j);
  } else {
    if (status == 0 && j->rc && !f->setup_eb.msg[0])
      snprintf(f->setup_eb.msg, sizeof(f->setup_eb.msg), "device certificate for %s: %s", j->cn,
               j->eb.msg);
    f->failed_setup++;
    f->provisioning--;
    if (!f->stopping && f->finished + f->failed_setup >= f->n) finish_all(f);
    maybe_run_hook(f);
  }
  if (j->key_pem) explicit_bzero(j->key_pem, strlen(j->key_pem));
  free(j->key_pem);
  free(j->cert_pem);
  free(j);
  maybe_all_closed(f);
}

static void start_one(fleet *f) {
  uint32_t i = (uint32_t)(f->started + f->generating + f->failed_setup);
  f->provisioning++;
  if (!f->device_mode) {
    launch_device(f, i, NULL);
    return;
  }
  id_job *j = calloc(1, sizeof(*j));
  if (!j) {
    f->failed_setup++;
    f->provisioning--;
    return;
  }
  j->f = f;
  j->index = i;
  snprintf(j->cn, sizeof(j->cn), "fleet-%s-%06u", f->run_id, i);
  j->work.data = j;
  f->generating++;
  if (uv_queue_work(f->loop, &j->work, id_work, id_done) != 0) {
    f->generating--;
    f->failed_setup++;
    f->provisioning--;
    free(j);
  }
}

static int launched(const fleet *f) {
  return f->started + f->generating + f->failed_setup;
}

static void start_more(fleet *f) {
  if (f->stopping) return;
  int allowed = f->n;
  if (f->ramp > 0) {
    double elapsed = (double)(uv_now(f->loop) - f->t0) / 1000.0;
    allowed = (int)(elapsed * f->ramp) + 1;
  }
  while (launched(f) < f->n && launched(f) < allowed && f->provisioning < f->concurrency)
    start_one(f);
}

static void on_ramp(uv_timer_t *t) {
  start_more(t->data);
}

static void on_settle_timer(uv_timer_t *t) {
  fleet *f = t->data;
  uint64_t fds = count_open_fds();
  /* pruned connections end with a TLS close_notify, in the background: wait for them
   * (their sockets closing) for up to 3 s */
  if (fds < f->fds_at_end && uv_now(f->loop) - f->prune_t0 < 3000) {
    f->fds_at_end = fds;
    uv_timer_start(t, on_settle_timer, 100, 0);
    return;
  }
  f->prune_state = 2;
  finish_all(f);
}

static void on_pruned(void *data) {
  fleet *f = data;
  if (f->stopping) return;
  f->prune_t0 = uv_now(f->loop);
  f->fds_at_end = UINT64_MAX;
  uv_timer_start(&f->duration_timer, on_settle_timer, 100, 0);
}

/* Two seconds after the last request (libcurl counts idle time in whole seconds), has the
 * client close the idle connections, so the heap is then what idle devices hold. */
static void on_prune_timer(uv_timer_t *t) {
  fleet *f = t->data;
  if (http_client_prune_idle(f->http, on_pruned, f) != 0) {
    f->prune_state = 2;
    finish_all(f);
  }
}

/* Measures the heap with every device still in memory (after a cycles run without
 * --keep-alive: with the idle connections closed), then closes them all. */
static void finish_all(fleet *f) {
  if (f->stopping) return;
  if (f->prune_state == 0 && !f->keep_alive && f->cycles > 0 &&
      f->finished + f->failed_setup >= f->n) {
    f->prune_state = 1;
    f->t_end = uv_now(f->loop);
    uv_timer_stop(&f->ramp_timer);
    uv_timer_start(&f->duration_timer, on_prune_timer, 2100, 0);
    return;
  }
  f->stopping = true;
  if (f->prune_state != 2) f->t_end = uv_now(f->loop); /* else: when the last one finished */
  f->heap_at_end = heap_in_use();
  f->fds_at_end = count_open_fds();
  for (int i = 0; i < f->n; i++) {
    fleet_dev *fd = f->devs[i];
    if (!fd) continue;
    const tls_creds *c = &fd->d.creds;
    f->store_bytes += (double)store_mem_bytes(fd->d.o.st);
    if (c->key_pem)
      f->cred_bytes +=
          (double)(strlen(c->key_pem) + strlen(c->cert_pem) + strlen(c->ca_pem) + 3 * 17);
  }
  uv_timer_stop(&f->ramp_timer);
  uv_timer_stop(&f->duration_timer);
  for (int i = 0; i < f->n; i++) {
    fleet_dev *fd = f->devs[i];
    if (fd && !fd->finished) {
      fd->finished = true;
      f->finished++;
      device_close(&fd->d, on_closed);
    }
  }
  maybe_all_closed(f);
}

static void on_duration(uv_timer_t *t) {
  finish_all(t->data);
}

static void on_sigint(uv_signal_t *h, int sig) {
  fleet *f = h->data;
  fprintf(stderr, "\n" PROG ": interrupted; stopping %d devices\n", f->started - f->finished);
  finish_all(f);
}

/* ---- progress ---- */

static void on_tick(uv_timer_t *t) {
  fleet *f = t->data;
  if (!f->progress) return;
  int per_state[ST__COUNT] = {0};
  for (int i = 0; i < f->n; i++)
    if (f->devs[i]) per_state[f->devs[i]->d.state]++;
  uint64_t now = uv_now(f->loop), total = fleet_stats_total_requests(f->stats), errors = 0;
  for (int k = 0; k < FR__COUNT; k++)
    errors += f->stats->req[k].errors;
  double dt = (double)(now - f->last_tick) / 1000.0;
  double rps = dt > 0 ? (double)(total - f->last_requests) / dt : 0;
  f->last_tick = now;
  f->last_requests = total;
  char line[512];
  int p = snprintf(line, sizeof(line), "\r[%6.1fs]", (double)(now - f->t0) / 1000.0);
  if (f->generating) p += snprintf(line + p, sizeof(line) - (size_t)p, " keys %d", f->generating);
  static const char *const shortname[ST__COUNT] = {"unprov", "reg", "ecu",  "prov",
                                                   "poll",   "dl",  "inst", "failed"};
  for (int s = 0; s < ST__COUNT && p < (int)sizeof(line) - 32; s++)
    if (per_state[s])
      p += snprintf(line + p, sizeof(line) - (size_t)p, " %s %d", shortname[s], per_state[s]);
  snprintf(line + p, sizeof(line) - (size_t)p, " | %.0f req/s, %llu errors, %d/%d done   ", rps,
           (unsigned long long)errors, f->finished, f->n);
  fputs(line, stderr);
  fflush(stderr);
}

/* ---- the report ---- */

/* Groups why devices did not get where they should: the same message counts once. */
static void print_failures(fleet *f, FILE *out) {
  typedef struct reason {
    char msg[160];
    int count;
  } reason;
  reason rs[16];
  int nr = 0, other = 0;
  for (int i = 0; i < f->n; i++) {
    fleet_dev *fd = f->devs[i];
    if (!fd || fd->d.state != ST_FAILED) continue;
    const device *d = &fd->d;
    const char *m = d->eb.msg[0] ? d->eb.msg : otad_strerror(d->last_err);
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
  if (nr) fprintf(out, "\nwhy devices failed:\n");
  for (int k = 0; k < nr; k++)
    fprintf(out, "  %6d  %s\n", rs[k].count, rs[k].msg);
  if (other) fprintf(out, "  %6d  (other reasons)\n", other);
  if (f->failed_setup) fprintf(out, "  %6d  not started: %s\n", f->failed_setup, f->setup_eb.msg);
}

/* Did the device get where the run asked it to go? */
static bool as_expected(const fleet *f, const fleet_dev *fd) {
  if (fd->d.state == ST_FAILED || !fd->provisioned) return false;
  if (f->cycles > 0) return fd->cycles >= (uint32_t)f->cycles;
  if (f->duration > 0) return true;
  return fd->d.state == ST_PROVISIONED;
}

static void summarize(fleet *f, fleet_summary *m) {
  memset(m, 0, sizeof(*m));
  m->devices = f->n;
  m->mode = f->device_mode ? "device" : "shared";
  m->keep_alive = f->keep_alive;
  m->wall_seconds = (double)(f->t_end - f->t0) / 1000.0;
  for (int i = 0; i < f->n; i++) {
    fleet_dev *fd = f->devs[i];
    if (!fd) {
      m->not_started++; /* the run ended first, or its identity could not be made */
      continue;
    }
    m->final_states[fd->d.state]++;
    m->expected_ok += as_expected(f, fd);
  }
  m->cycles_completed = f->cycles_completed;
  m->updates_installed = f->updates_installed;
  m->cycles_per_device = f->cycles;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  m->peak_rss_kib = ru.ru_maxrss;
  m->cpu_seconds = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  m->heap_bytes_per_device = f->started && f->heap_at_end > f->heap_base
                                 ? (double)(f->heap_at_end - f->heap_base) / f->started
                                 : 0;
  m->open_connections = f->fds_at_end;
}

static int write_report(fleet *f, const fleet_summary *m, const char *path) {
  cJSON *o = fleet_report_json(f->stats, m);
  if (!o) return -1;
  cJSON_AddNumberToObject(o, "provisioned", m->expected_ok); /* older readers */
  if (f->list_devices) {
    cJSON *arr = cJSON_AddArrayToObject(o, "device_list");
    for (int i = 0; i < f->n; i++) {
      fleet_dev *fd = f->devs[i];
      if (!fd) continue;
      device *d = &fd->d;
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "label", d->label);
      cJSON_AddStringToObject(e, "device_id", d->id);
      cJSON_AddStringToObject(e, "uuid", d->uuid);
      cJSON_AddStringToObject(e, "ecu_serial", d->ecu_serial);
      cJSON_AddStringToObject(e, "state", machine_state_name(d->state));
      cJSON_AddNumberToObject(e, "cycles", fd->cycles);
      if (d->state == ST_FAILED) cJSON_AddStringToObject(e, "error", d->eb.msg);
      cJSON_AddItemToArray(arr, e);
    }
  }
  char *s = cJSON_Print(o);
  cJSON_Delete(o);
  FILE *out = s ? fopen(path, "w") : NULL;
  if (!out) {
    fprintf(stderr, PROG ": cannot write %s: %m\n", path);
    free(s);
    return -1;
  }
  fprintf(out, "%s\n", s);
  fclose(out);
  free(s);
  return 0;
}

/* Raises the open-file limit as far as allowed and says what it allows. */
static void raise_nofile(fleet *f) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  long usable = (long)rl.rlim_cur - 64; /* journal, stores, the loop's own descriptors */
  long want = f->keep_alive ? f->n : f->concurrency * 2;
  if (usable < want)
    fprintf(stderr,
            PROG ": the open-file limit (%ld) allows about %ld connections at once; "
                 "%s needs about %ld%s\n",
            (long)rl.rlim_cur, usable, f->keep_alive ? "--keep-alive" : "this run", want,
            f->keep_alive ? ": devices beyond it will reconnect for every poll" : "");
}

/* ---- setup ---- */

static char *read_text(const char *path, otad_errbuf *eb) {
  FILE *in = fopen(path, "rb");
  if (!in) {
    otad_fail(eb, OTAD_EIO, "cannot read %s: %m", path);
    return NULL;
  }
  char *buf = malloc(1 << 20);
  size_t n = buf ? fread(buf, 1, (1 << 20) - 1, in) : 0;
  fclose(in);
  if (!buf) return NULL;
  buf[n] = 0;
  return buf;
}

static int setup_device_mode(fleet *f, const char *ca, const char *ca_key, const char *server_ca,
                             const char *tls_key, otad_errbuf *eb) {
  if (!ca || !ca_key || !server_ca || !f->url)
    return otad_fail(eb, OTAD_ECONFIG,
                     "--mode device needs --fleet-ca, --fleet-ca-key, "
                     "--server-ca and --server");
  if (strcasecmp(tls_key, "EC256") == 0)
    f->rsa_bits = 0;
  else if (strcasecmp(tls_key, "RSA2048") == 0)
    f->rsa_bits = 2048;
  else
    return otad_fail(eb, OTAD_ECONFIG, "--tls-key: EC256 or RSA2048, not %s", tls_key);
  if (!(f->ca_pem = read_text(ca, eb)) || !(f->ca_key_pem = read_text(ca_key, eb)) ||
      !(f->server_ca_pem = read_text(server_ca, eb)))
    return OTAD_EIO;
  otad_errbuf ceb = {{0}};
  if (certgen_check_ca(f->ca_pem, f->ca_key_pem, &ceb) != 0)
    return otad_fail(eb, OTAD_ECERT, "%s: %s", ca, ceb.msg);
  if (!strstr(f->server_ca_pem, "-----BEGIN CERTIFICATE-----"))
    return otad_fail(eb, OTAD_ECERT, "%s holds no PEM certificate", server_ca);
  return 0;
}

static int setup_shared_mode(fleet *f, const char *zip, const char *p12pw, otad_errbuf *eb) {
  if (!zip) return otad_fail(eb, OTAD_ECONFIG, "--credentials ZIP is required in shared mode");
  credzip z = {0};
  otad_errbuf zeb = {{0}};
  if (credzip_read(zip, &z, &zeb) != 0 ||
      tls_p12_parse(z.p12, z.p12_len, p12pw, &f->prov, &zeb) != 0) {
    credzip_free(&z);
    return otad_fail(eb, OTAD_ECONFIG, "%s: %s", zip, zeb.msg);
  }
  if (!f->url && z.url) f->url = strdup(z.url);
  credzip_free(&z);
  if (!f->url)
    return otad_fail(eb, OTAD_ECONFIG, "no server URL (--server, or autoprov.url in the zip)");
  tls_cert_info ci;
  if (tls_cert_info_pem(f->prov.cert_pem, &ci, &zeb) == 0)
    snprintf(f->prov_cn, sizeof(f->prov_cn), "%s", ci.cn);
  return 0;
}

static int setup_config(fleet *f, const char *zip, const char *key_type, const char *hwid,
                        otad_errbuf *eb) {
  config_init(&f->cfg);
  /* device mode: the stored identity is used and the zip is never read */
  int rc = config_set(&f->cfg, "provision.provision_path",
                      zip ? zip : "(device mode: no credentials.zip)", eb);
  if (!rc) rc = config_set(&f->cfg, "uptane.key_type", key_type, eb);
  if (!rc) rc = config_set(&f->cfg, "provision.mode", "SharedCredReuse", eb);
  if (!rc) rc = config_set(&f->cfg, "pacman.type", "none", eb);
  if (!rc && f->device_mode) rc = config_set(&f->cfg, "tls.server", f->url, eb);
  if (!rc && hwid) rc = config_set(&f->cfg, "provision.primary_ecu_hardware_id", hwid, eb);
  if (!rc && f->storage_dir) rc = config_set(&f->cfg, "storage.path", f->storage_dir, eb);
  if (!rc) rc = config_finish(&f->cfg, eb);
  if (rc || !f->storage_dir) return rc;
  /* one images directory per device: a shallow copy of the config each */
  f->dev_cfgs = calloc((size_t)f->n, sizeof(*f->dev_cfgs));
  if (!f->dev_cfgs) return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  for (int i = 0; i < f->n; i++) {
    f->dev_cfgs[i] = f->cfg;
    if (asprintf(&f->dev_cfgs[i].images_path, "%s/dev-%06d/images", f->storage_dir, i) < 0)
      return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  }
  return 0;
}

/* Parses argv into f (its settings) and f->args. Returns -1 to go on, or the exit code
 * (help, usage error). Long because it is one independent case per option. */
static int parse_args(int argc, char **argv, fleet *f) {
  enum {
    OPT_P12PW = 256,
    OPT_KEYTYPE,
    OPT_CONC,
    OPT_RAMP,
    OPT_RETRIES,
    OPT_SEED,
    OPT_JOURNAL,
    OPT_REPORT,
    OPT_LOGLEVEL,
    OPT_MODE,
    OPT_FLEETCA,
    OPT_FLEETCAKEY,
    OPT_SERVERCA,
    OPT_TLSKEY,
    OPT_HWID,
    OPT_CYCLES,
    OPT_DURATION,
    OPT_POLL,
    OPT_JITTER,
    OPT_KEEPALIVE,
    OPT_STORAGE,
    OPT_NOPROGRESS,
    OPT_LIST,
    OPT_HOOK
  };
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
                                           {"mode", required_argument, 0, OPT_MODE},
                                           {"fleet-ca", required_argument, 0, OPT_FLEETCA},
                                           {"fleet-ca-key", required_argument, 0, OPT_FLEETCAKEY},
                                           {"server-ca", required_argument, 0, OPT_SERVERCA},
                                           {"tls-key", required_argument, 0, OPT_TLSKEY},
                                           {"hwid", required_argument, 0, OPT_HWID},
                                           {"cycles", required_argument, 0, OPT_CYCLES},
                                           {"duration", required_argument, 0, OPT_DURATION},
                                           {"poll", required_argument, 0, OPT_POLL},
                                           {"jitter", required_argument, 0, OPT_JITTER},
                                           {"keep-alive", no_argument, 0, OPT_KEEPALIVE},
                                           {"storage", required_argument, 0, OPT_STORAGE},
                                           {"no-progress", no_argument, 0, OPT_NOPROGRESS},
                                           {"list-devices", no_argument, 0, OPT_LIST},
                                           {"help", no_argument, 0, 'h'},
                                           {"on-provisioned", required_argument, 0, OPT_HOOK},
                                           {0, 0, 0, 0}};
  fleet_args *o = &f->args;
  o->p12pw = "";
  o->key_type = "ED25519";
  o->mode = "shared";
  o->tls_key = "EC256";
  o->storage = "mem";
  o->loglevel = LOG_WARN;
  int ch;
  char *end;
  f->concurrency = 64;
  f->retries = 8;
  f->poll_s = 10;
  f->jitter = 0.1;
#define NUM(var, conv, cond, what)                                                                 \
  do {                                                                                             \
    var = conv;                                                                                    \
    if (*end || end == optarg || !(cond)) {                                                        \
      fprintf(stderr, PROG ": %s, not '%s'\n", what, optarg);                                      \
      return 2;                                                                                    \
    }                                                                                              \
  } while (0)
  while ((ch = getopt_long(argc, argv, "n:z:s:h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'n':
      NUM(f->n, (int)strtol(optarg, &end, 10), f->n > 0, "--devices needs a number > 0");
      break;
    case 'z': o->zip = optarg; break;
    case 's': f->url = strdup(optarg); break;
    case OPT_P12PW: o->p12pw = optarg; break;
    case OPT_KEYTYPE: o->key_type = optarg; break;
    case OPT_CONC:
      NUM(f->concurrency, (int)strtol(optarg, &end, 10), f->concurrency > 0,
          "--concurrency needs a number > 0");
      break;
    case OPT_RAMP:
      NUM(f->ramp, strtod(optarg, &end), f->ramp >= 0, "--ramp needs a number >= 0");
      break;
    case OPT_RETRIES:
      NUM(f->retries, (int)strtol(optarg, &end, 10), f->retries >= 0,
          "--retries needs a number >= 0");
      break;
    case OPT_SEED: NUM(f->seed, strtoull(optarg, &end, 10), 1, "--seed needs a number"); break;
    case OPT_JOURNAL: o->journal_path = optarg; break;
    case OPT_REPORT: o->report = optarg; break;
    case OPT_LOGLEVEL:
      NUM(o->loglevel, (int)strtol(optarg, &end, 10), o->loglevel >= 0 && o->loglevel <= 5,
          "--loglevel needs 0..5");
      break;
    case OPT_MODE: o->mode = optarg; break;
    case OPT_FLEETCA: o->ca = optarg; break;
    case OPT_FLEETCAKEY: o->ca_key = optarg; break;
    case OPT_SERVERCA: o->server_ca = optarg; break;
    case OPT_TLSKEY: o->tls_key = optarg; break;
    case OPT_HWID: o->hwid = optarg; break;
    case OPT_CYCLES:
      NUM(f->cycles, (int)strtol(optarg, &end, 10), f->cycles >= 0, "--cycles needs a number >= 0");
      break;
    case OPT_DURATION:
      NUM(f->duration, strtod(optarg, &end), f->duration > 0, "--duration needs seconds > 0");
      break;
    case OPT_POLL:
      NUM(f->poll_s, strtod(optarg, &end), f->poll_s > 0 && f->poll_s < 86400,
          "--poll needs seconds > 0");
      break;
    case OPT_JITTER:
      NUM(f->jitter, strtod(optarg, &end), f->jitter >= 0 && f->jitter < 1,
          "--jitter needs a fraction in [0, 1)");
      break;
    case OPT_KEEPALIVE: f->keep_alive = true; break;
    case OPT_STORAGE: o->storage = optarg; break;
    case OPT_NOPROGRESS: o->no_progress = true; break;
    case OPT_LIST: f->list_devices = true; break;
    case OPT_HOOK: o->on_provisioned = optarg; break;
    case 'h': fputs(usage_text, stdout); return 0;
    default: fputs(usage_text, stderr); return 2;
    }
  }
#undef NUM
  if (optind != argc) {
    fprintf(stderr, PROG ": unexpected argument '%s'\n\n%s", argv[optind], usage_text);
    return 2;
  }
  if (f->n <= 0) {
    fprintf(stderr, PROG ": --devices N (N > 0) is required\n\n%s", usage_text);
    return 2;
  }
  if (strcmp(o->mode, "device") == 0)
    f->device_mode = true;
  else if (strcmp(o->mode, "shared") != 0) {
    fprintf(stderr, PROG ": --mode is shared or device, not '%s'\n", o->mode);
    return 2;
  }
  if (f->cycles > 0 && f->duration > 0) {
    fprintf(stderr, PROG ": --cycles and --duration exclude each other\n");
    return 2;
  }
  return -1;
}

/* Sets the loop, the HTTP client and the timers up and runs the fleet to its end.
 * 0, or 2 when out of memory. */
static int run_fleet(fleet *f) {
  raise_nofile(f);
  f->stats = calloc(1, sizeof(*f->stats));
  f->devs = calloc((size_t)f->n, sizeof(*f->devs));
  f->loop = uv_default_loop();
  f->http = http_client_new(f->loop);
  if (!f->stats || !f->devs || !f->http) {
    fprintf(stderr, PROG ": out of memory\n");
    return 2;
  }
  fleet_stats_init(f->stats);
  http_client_set_observer(f->http, on_request, f);
  /* One pooled connection per device: a smaller pool closes the connection of a device
   * between two requests of its poll (curl evicts the oldest idle one). Without
   * --keep-alive a connection idle for a second is closed at the next pool sweep. */
  http_client_set_max_connects(f->http, (long)f->n + 16);
  if (http_client_session_shards(f->http, 24, f->keep_alive) != 0)
    fprintf(stderr, PROG ": libcurl cannot share TLS sessions: no per-device session cache\n");
  uv_timer_init(f->loop, &f->ramp_timer);
  uv_timer_init(f->loop, &f->tick_timer);
  uv_timer_init(f->loop, &f->duration_timer);
  f->ramp_timer.data = f->tick_timer.data = f->duration_timer.data = f;
  uv_signal_init(f->loop, &f->sigint);
  f->sigint.data = f;
  uv_signal_start(&f->sigint, on_sigint, SIGINT);
  f->progress = !f->args.no_progress && isatty(2);
  fprintf(stderr, PROG ": %d devices (%s mode) against %s, concurrency %d%s", f->n, f->args.mode,
          f->url, f->concurrency, f->ramp > 0 ? ", ramped" : "");
  if (f->cycles) fprintf(stderr, ", %d cycles every %.1f s", f->cycles, f->poll_s);
  if (f->duration > 0) fprintf(stderr, ", %.0f s, polls every %.1f s", f->duration, f->poll_s);
  fprintf(stderr, "\n");
  f->on_provisioned = polls(f) ? f->args.on_provisioned : NULL;
  f->heap_base = heap_in_use();
  f->t0 = f->last_tick = uv_now(f->loop);
  start_more(f);
  if (f->ramp > 0) uv_timer_start(&f->ramp_timer, on_ramp, 10, 10);
  uv_timer_start(&f->tick_timer, on_tick, 1000, 1000);
  if (f->duration > 0)
    uv_timer_start(&f->duration_timer, on_duration, (uint64_t)(f->duration * 1000), 0);
  if (f->n == f->failed_setup) finish_all(f);
  uv_run(f->loop, UV_RUN_DEFAULT);
  if (f->progress) fputs("\n", stderr);

  return 0;
}

/* Prints the report (and writes it as JSON when asked). True when every device did what
 * the run expected of it. */
static bool report_fleet(fleet *f) {
  fleet_summary m;
  summarize(f, &m);
  /* Where the heap went: the connections are gone now (the client is closed); the update
   * state is what device_update_free() gives back. */
  size_t heap_closed = heap_in_use();
  for (int i = 0; i < f->n; i++)
    if (f->devs[i]) device_update_free(&f->devs[i]->d);
  size_t heap_no_upd = heap_in_use();
  if (f->started && mallinfo2().uordblks) { /* 0 under valgrind */
    double n = f->started;
    m.heap_split.device_struct = sizeof(fleet_dev) + 16;
    m.heap_split.store = f->store_bytes / n;
    m.heap_split.credentials = f->cred_bytes / n;
    m.heap_split.update_state =
        heap_closed > heap_no_upd ? (double)(heap_closed - heap_no_upd) / n : 0;
    m.heap_split.connections_and_tls =
        f->heap_at_end > heap_closed ? (double)(f->heap_at_end - heap_closed) / n : 0;
  }
  fleet_report_table(f->stats, &m, stdout);
  print_failures(f, stdout);
  if (f->args.report) write_report(f, &m, f->args.report);

  return m.expected_ok == (uint64_t)f->n;
}

/* Frees what the run made. */
static void free_fleet(fleet *f) {
  for (int i = 0; i < f->n; i++) {
    if (!f->devs[i]) continue;
    device_free(&f->devs[i]->d);
    free(f->devs[i]);
  }
  if (f->dev_cfgs)
    for (int i = 0; i < f->n; i++)
      free(f->dev_cfgs[i].images_path);
  free(f->dev_cfgs);
  free(f->devs);
  free(f->stats);
  free(f->url);
  free(f->ca_pem);
  if (f->ca_key_pem) explicit_bzero(f->ca_key_pem, strlen(f->ca_key_pem));
  free(f->ca_key_pem);
  free(f->server_ca_pem);
  tls_creds_free(&f->prov);
  journal_close(f->jr);
  config_free(&f->cfg);
  uv_loop_close(f->loop);
  http_global_cleanup();
}

int main(int argc, char **argv) {
  static fleet f;
  int rc = parse_args(argc, argv, &f);
  if (rc >= 0) return rc;
  fleet_args *o = &f.args;
  if (strcmp(o->storage, "mem") != 0) f.storage_dir = o->storage;
  log_set_level(o->loglevel);
  http_global_init();
  tls_global_init();

  otad_errbuf eb = {{0}};
  rc = f.device_mode ? setup_device_mode(&f, o->ca, o->ca_key, o->server_ca, o->tls_key, &eb)
                     : setup_shared_mode(&f, o->zip, o->p12pw, &eb);
  if (!rc) rc = setup_config(&f, o->zip, o->key_type, o->hwid, &eb);
  if (rc) {
    fprintf(stderr, PROG ": %s\n", eb.msg);
    return 2;
  }
  if (o->journal_path && !(f.jr = journal_open(o->journal_path, &eb))) {
    fprintf(stderr, PROG ": %s\n", eb.msg);
    return 2;
  }
  rng r;
  rng_seed(&r, f.seed);
  snprintf(f.run_id, sizeof(f.run_id), "%08llx", (unsigned long long)rng_below(&r, 0xffffffffu));
  rc = run_fleet(&f);
  if (rc) return rc;
  bool all = report_fleet(&f);
  free_fleet(&f);
  return all ? 0 : 1;
}
