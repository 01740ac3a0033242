/* device.h - one device: everything it owns, and the runtime that moves it through the
 * state machine.
 *
 * The agent runs one device; the fleet simulator runs thousands on the same loop, so a
 * device holds no pointers to globals: the loop, HTTP client, config and journal it uses
 * are handed in by its owner, and shared read-only or through their own interfaces. Every
 * change of state goes through device_fire(), which asks machine_step() for the next state,
 * journals the transition and performs the action. The runtime does not know which
 * functions the actions are: its owner hands it a table (device_opts.actions; states/
 * builds the real one), so this folder never includes a state.
 */
#ifndef OTAD_DEVICE_H
#define OTAD_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../core/backoff.h"
#include "../core/config.h"
#include "../core/error.h"
#include "../core/journal.h"
#include "../core/machine.h"
#include "../core/rng.h"
#include "../crypto/tls.h"
#include "../storage/store.h"
#include "../transport/http.h"
#include "../uptane/keys.h"
#include "update.h"

typedef struct device device;
typedef struct device_work device_work;

/* Told when the device reaches a final state (provisioned or failed). */
typedef void (*device_done_fn)(device *d);

/* One action of the state machine: starts its work and raises the next event when done. */
typedef void (*device_action_fn)(device *d);

/* What the runtime runs for each action of the table (indexed by enum dev_action); a NULL
 * entry does nothing. */
typedef struct device_actions {
  device_action_fn run[ACT__COUNT];
} device_actions;

/* How a device is set up by its owner. */
typedef struct device_opts {
  const char *label;      /* stable name in logs and the journal */
  const otad_config *cfg; /* shared, read-only */
  uv_loop_t *loop;
  http_client *http;             /* shared by all devices of a loop */
  store *st;                     /* the device's own storage (owned by the device) */
  journal *jr;                   /* may be NULL; shared */
  const tls_creds *shared_prov;  /* fleet key parsed once by the owner (fleet); NULL = the
                                    device reads credentials.zip itself */
  const char *shared_url;        /* server URL that goes with shared_prov */
  uint64_t seed;                 /* for jitter and names; 0 = from the clock */
  uint32_t retry_base_ms;        /* first backoff delay; 0 = 1000 */
  uint32_t retry_cap_ms;         /* longest backoff delay; 0 = 60000 */
  int max_retries;               /* transient failures tolerated in a row; < 0 = no limit */
  bool one_shot;                 /* otad once: a failure that waits for the next cycle ends
                                    the run instead */
  bool watch_import;             /* provisioned with DeviceCred: re-import when the [import]
                                    files change (checked every polling_sec) */
  bool quiet;                    /* log only warnings and errors (fleet) */
  bool updates;                  /* once provisioned, poll for updates (else the run ends) */
  bool check_only;               /* otad check: the first verified update ends the run
                                    (d->upd->check_available); nothing is downloaded and no
                                    pending installation is completed */
  const device_actions *actions; /* required: states_actions (states/states.h), or a test's */
  device_done_fn done;
  void *data; /* the owner's */

  /* Fleet simulation (all optional; zero = as the agent behaves). */
  struct image_sink *(*image_sink)(void); /* where downloads go (storage/image.h); NULL =
                                 files in the images directory. The fleet: hash-only (nothing
                                 kept; only [pacman] type none can install such an image) */
  bool connect_per_poll;                  /* each poll opens a new connection (resuming the device's
                                             TLS session when it can) instead of reusing a pooled one */
  long http_max_idle_s; /* http_request.max_idle_s of every request (0 = curl's) */
  uint32_t tls_cache;   /* http_request.tls_cache: the device's TLS session slot */
  uint32_t poll_ms;     /* time between polls; 0 = [uptane] polling_sec */
  double poll_jitter;   /* with poll_ms: +- this fraction at random (0 = none) */
  void (*on_step)(device *d, const transition *t); /* told of every transition, after the
                                 state changed and before its action runs; may call
                                 device_close() to stop the device there */
} device_opts;

struct device {
  device_opts o;
  char label[40];
  char id[72];   /* device ID sent at registration */
  char uuid[72]; /* CN of the device certificate the server issued */
  enum dev_state state;
  int pending;             /* an event raised while an action runs, or -1 */
  char pending_detail[80]; /* its detail, unless it is the last error (eb) */
  bool pending_is_error;
  bool dispatching;

  /* Provisioning inputs and results. */
  char *server_url;      /* gateway base URL, heap */
  tls_creds own_prov;    /* fleet provisioning identity read from credentials.zip */
  const tls_creds *prov; /* &own_prov, or the owner's shared copy */
  tls_creds creds;       /* device identity: key, cert chain, pinned CA bundle */
  uptane_key ecu_key;
  char ecu_serial[72];
  char ecu_hwid[72];

  /* Work in flight. */
  http_request req;
  char *req_body;
  char *req_url;
  uv_timer_t retry_timer;  /* backoff, or a wait for the next cycle: raises retry */
  uv_timer_t poll_timer;   /* the next update cycle: raises poll */
  uv_timer_t *watch_timer; /* DeviceCred daemon: re-reads the [import] files (heap, made
                              only for a device that watches them) */
  void (*watch_cb)(device *d);
  int handles_open; /* timers not closed yet (device_close) */
  bool work_busy;   /* a job of device_queue_work() runs: a close waits for it */
  bool closing;
  void (*close_cb)(device *d);
  backoff bo;
  rng rng;
  int failures; /* transient failures in a row */

  device_update *upd; /* allocated at the first poll; NULL before */

  /* The last error, for the owner and `otad status`. */
  int last_err;
  otad_errbuf eb;
  uint64_t t_start_ms, t_done_ms;
};

/* Sets d up (no I/O yet). The device takes ownership of o->st. */
void device_init(device *d, const device_opts *o);

/* Begins (or resumes) provisioning: fires "start". */
void device_start(device *d);

/* Raises an event; detail (may be NULL) goes into the journal and the log. */
void device_fire(device *d, enum dev_event ev, const char *detail);

/* Records err + detail as the device's last error and raises ev. */
void device_fail_with(device *d, enum dev_event ev, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Stops timers and requests; calls cb(d) once every handle is closed (the loop must run). */
void device_close(device *d, void (*cb)(device *d));

/* Work a device hands to the thread pool (a key to generate, a PKCS#12 to parse, an image
 * to hash): allocated for the job and freed when its done() returns, so an idle device
 * holds none of it. */
struct device_work {
  uv_work_t req; /* private */
  device *d;
  void (*work)(device_work *w);            /* private: runs on the pool */
  void (*done)(device *d, device_work *w); /* private: runs on the loop */
  int rc;                                  /* the job's result, and */
  otad_errbuf eb;                          /*   why when rc != 0 */
  uint8_t *in; /* input handed over with device_queue_work (freed with w) */
  size_t in_len;
  tls_creds creds; /* a PKCS#12 parse's output (freed with w unless the caller takes it) */
};

/* Runs work(w) on the thread pool, then done(d, w) on the loop; w is freed after done()
 * returns. A device that is closing meanwhile gets no done(): w is freed and the close
 * finishes. in (may be NULL, then in_len 0) is handed over. Returns 0, or OTAD_ENOMEM
 * when the job cannot be queued (in is freed, nothing runs; the caller raises its event). */
int device_queue_work(device *d, void (*work)(device_work *w),
                      void (*done)(device *d, device_work *w), uint8_t *in, size_t in_len);

/* Called by a job that ends outside device_queue_work (an install backend), so a pending
 * close can finish. */
void device_work_finished(device *d);

/* Frees what the device holds (after device_close's callback). */
void device_free(device *d);

/* Logs for d at level with its label as the prefix. */
void device_log(const device *d, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The wait before the next poll: poll_ms +- poll_jitter when set, else [uptane]
 * polling_sec +- 10 %. */
uint64_t device_poll_delay_ms(device *d);

/* [uptane] polling_sec in ms (10 s when unset). */
uint64_t device_polling_period_ms(const device *d);

/* Arms the poll timer: poll is raised after delay_ms (replacing an earlier arming). */
void device_poll_in(device *d, uint64_t delay_ms);

/* Calls cb(d) every period_ms until device_watch_stop() or device_close(). Returns 0 or
 * OTAD_ENOMEM. */
int device_watch_start(device *d, uint64_t period_ms, void (*cb)(device *d));

/* Stops the watch timer (no-op when none runs). */
void device_watch_stop(device *d);

/* The action backoff: arms the retry timer (exponential, with jitter and the server's
 * Retry-After), or raises give_up once max_retries failures came in a row. */
void device_backoff(device *d);

/* The action wait_cycle: arms the retry timer for one polling interval (+- 10 %); in a
 * one-shot run raises give_up instead. */
void device_wait_cycle(device *d);

/* Joins a URL: server + path, without a doubled '/'. Heap string. */
char *device_url(const char *base, const char *path);

/* The director's URL for path: [uptane] director_server, else {server}/director. Heap. */
char *device_director_url(const device *d, const char *path);

/* The image repository's URL for path: [uptane] repo_server, else {server}/repo. Heap. */
char *device_repo_url(const device *d, const char *path);

#endif
