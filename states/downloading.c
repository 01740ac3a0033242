/* downloading.c - the assigned target, streamed to [pacman] images_path.
 *
 * The body goes from curl's buffer straight to the device's image sink (storage/image.h:
 * a `.part` file, or a count in the fleet) and into a running SHA-256/512, so memory does
 * not grow with the target. The `.part` file is named
 * after the target's hash, so an interrupted download is found again by the next attempt
 * (a retry after a network error, or the next run): its bytes are hashed afresh on the
 * thread pool (the hash state is not persisted) and the rest is asked for with Range. A
 * server that answers 200 instead of 206 sends the whole image: the file is truncated
 * and the body taken from byte 0. Within one run the running hash survives a retry, so a
 * flaky link does not re-read the file each time.
 *
 * The transfer ends as soon as the image would grow past the length the verified
 * metadata declares (http.c's max_total), and when it crawls below 100 bytes/s for a
 * minute. A complete file is verified against every hash the metadata lists, then
 * fsync'ed and renamed to its final name on the thread pool. Outcomes:
 *   downloaded       d->upd->image_path is the verified image;
 *   download_failed  d->upd->result filled (DOWNLOAD_FAILED: too long, hash mismatch,
 *                    4xx, disk full, untrusted server) and the .part file deleted;
 *   transient_error  network, 5xx, short body: the .part file is kept and the retry
 *                    resumes it (the result is pre-filled in case the retries run out).
 *
 * Events: EcuDownloadStarted when an attempt begins (not again for its retries), then
 * EcuDownloadCompleted with success once it ends (the report action queues the failure of
 * an attempt whose retries ran out).
 *
 * Fleet simulation (device_opts.image_sink = image_sink_hash_only_new): the body goes
 * through the running hashes and the length check only and is then dropped, so thousands
 * of devices write no files; a retry resumes with Range from the hash state kept in
 * memory. The "image path" is then mem:<hash>, which only [pacman] type none accepts.
 *
 * Private state hangs on d->upd->download (a dl_state, with the sink); device_update_free()
 * frees it through u->download_release.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../crypto/hash.h"
#include "../device/events.h"
#include "../storage/fsutil.h"
#include "../storage/image.h"
#include "states.h"

#define LOW_SPEED_LIMIT 100    /* bytes/s ... */
#define LOW_SPEED_TIME 60      /* ... for a minute ends a transfer (docs/protocol.md, section 7) */
#define PROGRESS_MIN_MS 2000   /* no more than one progress line per 2 s, */
#define PROGRESS_IDLE_MS 10000 /* one at every 10 % or after 10 s without one */

enum dl_job { JOB_REHASH, JOB_VERIFY_FINAL, JOB_FINISH };

typedef struct dl_state {
  image_sink *sink; /* where the bytes go (owned) */
  hash_ctx h;       /* bytes [0, received) held by the sink, when h_valid */
  bool h_valid;
  enum dl_job job;                           /* what the thread pool does */
  uint64_t job_len;                          /* JOB_REHASH: bytes of the .part file to hash */
  char got256[65], got512[129];              /* JOB_VERIFY_FINAL: the final file's digests */
  char why[160];                             /* the sink's reason for stopping a transfer */
  uint64_t t_start, t_last_log, start_bytes; /* progress of the current transfer */
  int last_decile;
} dl_state;

static void release(device_update *u);

static void start_transfer(device *d);
static void verify_complete(device *d);

/* ---- small helpers ---------------------------------------------------------------------- */

/* The download's state, and its sink, made on first use. */
static dl_state *dl_get(device *d) {
  device_update *u = d->upd;
  if (!u->download) {
    dl_state *s = calloc(1, sizeof(dl_state));
    if (!s) return NULL;
    if (d->o.image_sink) {
      s->sink = d->o.image_sink();
    } else {
      char *dir = storage_images_dir(d->o.cfg);
      s->sink = dir ? image_sink_file_new(dir, d->label) : NULL;
      free(dir);
    }
    if (!s->sink) {
      free(s);
      return NULL;
    }
    u->download = s;
    u->download_release = release;
  }
  return u->download;
}

static void close_part(device_update *u) {
  dl_state *s = u->download;
  if (s) s->sink->ops->close(s->sink);
}

static void forget_hash(dl_state *s) {
  hash_free(&s->h);
  s->h_valid = false;
}

/* Deletes the held bytes and everything known about them. */
static void discard_part(device_update *u) {
  dl_state *s = u->download;
  otad_errbuf eb = {{0}};
  if (s) s->sink->ops->discard(s->sink, false, &eb);
  u->received = 0;
  if (s) forget_hash(s);
}

/* Closes the .part file and frees the download's state and paths (device_update_free
 * calls it through u->download_release; safe to call twice). */
static void release(device_update *u) {
  dl_state *s = u->download;
  if (s) {
    s->sink->ops->free(s->sink);
    forget_hash(s);
    free(s);
  }
  u->download = NULL;
  free(u->image_path);
  u->image_path = NULL;
  u->received = 0;
}

static double mib(uint64_t n) {
  return (double)n / (1024.0 * 1024.0);
}

/* {repo}/targets/NAME with NAME percent-encoded except A-Za-z0-9-._~/, or custom.uri. */
static char *target_url(device *d) {
  const update_target *t = &d->upd->target;
  if (t->uri[0]) return strdup(t->uri);
  size_t len = strlen(t->name);
  char *path = malloc(sizeof("targets/") + 3 * len);
  if (!path) return NULL;
  char *o = path + sprintf(path, "targets/");
  for (const unsigned char *p = (const unsigned char *)t->name; *p; p++) {
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
        strchr("-._~/", *p))
      *o++ = (char)*p;
    else
      o += sprintf(o, "%%%02X", *p);
  }
  *o = 0;
  char *url = device_repo_url(d, path);
  free(path);
  return url;
}

/* ---- outcomes ------------------------------------------------------------------------- */

/* EcuDownloadCompleted, once per attempt. */
static void event_completed(device *d, enum event_success ok) {
  device_update *u = d->upd;
  if (!u->ev_download_started || u->ev_download_done) return;
  u->ev_download_done = true;
  events_queue(d, EVENT_DOWNLOAD_COMPLETED, u->target.correlation_id, ok);
}

/* The outcome of a failed attempt, in memory only: should the retries run out, the report
 * says why; a retry that succeeds replaces it (the stored report is polling.c's, for
 * outcomes). */
static void note_failure(device *d, const char *desc) {
  update_result *res = &d->upd->result;
  res->pending = true;
  res->success = false;
  snprintf(res->code, sizeof(res->code), "%s", UPDATE_DOWNLOAD_FAILED);
  snprintf(res->description, sizeof(res->description), "%s", desc);
  snprintf(res->correlation_id, sizeof(res->correlation_id), "%s", d->upd->target.correlation_id);
  snprintf(res->target, sizeof(res->target), "%s", d->upd->target.name);
  d->upd->cycle_failed = true;
}

/* download_failed: nothing is kept, the report says why. */
static void fail_download(device *d, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_download(device *d, int err, const char *fmt, ...) {
  char desc[sizeof(d->eb.msg)];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(desc, sizeof(desc), fmt, ap);
  va_end(ap);
  discard_part(d->upd);
  device_set_result(d, false, UPDATE_DOWNLOAD_FAILED, "%s", desc);
  event_completed(d, EVENT_FAILED);
  device_log(d, LOG_ERROR, "%s", desc);
  device_fail_with(d, EV_DOWNLOAD_FAILED, err, "%s", desc);
}

/* transient_error: the .part file stays for the retry; should the retries run out, the
 * report says why. */
static void retry_download(device *d, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void retry_download(device *d, int err, const char *fmt, ...) {
  char desc[sizeof(d->eb.msg)];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(desc, sizeof(desc), fmt, ap);
  va_end(ap);
  close_part(d->upd);
  note_failure(d, desc);
  device_fail_with(d, EV_TRANSIENT_ERROR, err, "%s", desc);
}

/* ---- the thread pool: re-hash a .part file, verify a final file, fsync + rename --------- */

static void job_work(device_work *w) {
  device *d = w->d;
  device_update *u = d->upd;
  dl_state *s = u->download;
  image_sink *k = s->sink;
  const update_target *t = &u->target;
  switch (s->job) {
  case JOB_REHASH:
    w->rc = hash_init(&s->h, t->sha256[0], t->sha512[0]);
    if (!w->rc) w->rc = k->ops->hash_held(k, &s->h, s->job_len, &w->eb);
    break;
  case JOB_VERIFY_FINAL: {
    hash_ctx h;
    w->rc = hash_init(&h, t->sha256[0], t->sha512[0]);
    if (!w->rc) w->rc = k->ops->hash_complete(k, &h, t->length, &w->eb);
    if (!w->rc) w->rc = hash_final(&h, s->got256, s->got512);
    hash_free(&h);
    break;
  }
  case JOB_FINISH: w->rc = k->ops->commit(k, &w->eb); break;
  }
}

static bool hashes_match(const update_target *t, const char *got256, const char *got512) {
  return (!t->sha256[0] || hash_hex_equal(got256, t->sha256)) &&
         (!t->sha512[0] || hash_hex_equal(got512, t->sha512));
}

static void downloaded(device *d, const char *how) {
  device_update *u = d->upd;
  dl_state *s = u->download;
  free(u->image_path);
  u->image_path = strdup(s->sink->path);
  if (!u->image_path) {
    retry_download(d, OTAD_ENOMEM, "out of memory");
    return;
  }
  const update_target *t = &u->target;
  device_log(d, LOG_INFO, "downloaded %s to %s: %" PRIu64 " bytes, %s verified; %s", t->name,
             u->image_path, t->length,
             t->sha256[0] && t->sha512[0] ? "sha256 and sha512"
             : t->sha256[0]               ? "sha256"
                                          : "sha512",
             how);
  event_completed(d, EVENT_SUCCEEDED);
  device_fire(d, EV_DOWNLOADED, u->target.name);
}

static void job_done(device *d, device_work *w) {
  device_update *u = d->upd;
  dl_state *s = u->download;
  const update_target *t = &u->target;
  switch (s->job) {
  case JOB_REHASH:
    if (w->rc) { /* unreadable: drop it, the retry starts from byte 0 */
      forget_hash(s);
      discard_part(u);
      retry_download(d, w->rc, "%s cannot be re-read (%s); deleted", s->sink->part_path, w->eb.msg);
      return;
    }
    u->received = s->job_len;
    s->h_valid = true;
    verify_complete(d);
    return;
  case JOB_VERIFY_FINAL:
    if (!w->rc && hashes_match(t, s->got256, s->got512)) {
      otad_errbuf eb = {{0}};
      s->sink->ops->discard(s->sink, false, &eb); /* a .part file beside it goes */
      downloaded(d, "found complete from an earlier run");
      return;
    }
    device_log(d, LOG_WARN, "%s does not hold %s (%s); downloading it again", s->sink->path,
               t->name, w->rc ? w->eb.msg : "hash differs");
    otad_errbuf eb = {{0}};
    if (s->sink->ops->discard(s->sink, true, &eb) != 0) {
      retry_download(d, OTAD_EIO, "%s", eb.msg);
      return;
    }
    downloading_start(d);
    return;
  case JOB_FINISH:
    if (w->rc) {
      retry_download(d, w->rc, "download of %s: %s", t->name, w->eb.msg);
      return;
    }
    close_part(u);
    s->h_valid = false;
    uint64_t ms = uv_now(d->o.loop) - s->t_start;
    char how[96];
    snprintf(how, sizeof(how), "%.1f s, %.1f MiB/s", ms / 1000.0,
             ms ? mib(u->received - s->start_bytes) * 1000.0 / (double)ms : 0.0);
    downloaded(d, how);
    return;
  }
}

static void queue_job(device *d, enum dl_job job) {
  dl_state *s = d->upd->download;
  s->job = job;
  int rc = device_queue_work(d, job_work, job_done, NULL, 0);
  if (rc) retry_download(d, rc, "cannot queue work on the thread pool: %s", otad_strerror(rc));
}

/* ---- the transfer ----------------------------------------------------------------------- */

static void log_progress(device *d, bool force) {
  device_update *u = d->upd;
  dl_state *s = u->download;
  uint64_t now = uv_now(d->o.loop), len = u->target.length;
  int decile = len ? (int)(u->received * 10 / len) : 10;
  uint64_t since = now - s->t_last_log;
  if (!force && (since < PROGRESS_MIN_MS || (decile == s->last_decile && since < PROGRESS_IDLE_MS)))
    return;
  uint64_t ms = now - s->t_start;
  double rate = ms ? mib(u->received - s->start_bytes) * 1000.0 / (double)ms : 0.0;
  device_log(d, LOG_INFO, "download %d%% (%.1f of %.1f MiB, %.1f MiB/s)",
             len ? (int)(u->received * 100 / len) : 100, mib(u->received), mib(len), rate);
  s->t_last_log = now;
  s->last_decile = decile;
}

/* http.c's sink: body bytes to the .part file and the hash. */
static int on_body(http_request *r, const uint8_t *data, size_t len) {
  device *d = r->data;
  device_update *u = d->upd;
  dl_state *s = u->download;
  if (r->received == 0 && r->offset != u->received) {
    /* asked for a range, got the whole image (200): start the file over */
    device_log(d, LOG_INFO,
               "the server sent the whole image instead of the rest (HTTP %ld); "
               "restarting at byte 0",
               r->status);
    forget_hash(s);
    otad_errbuf eb = {{0}};
    if (s->sink->ops->restart(s->sink, &eb) != 0) {
      snprintf(s->why, sizeof(s->why), "%s", eb.msg);
      return OTAD_EIO;
    }
    u->received = 0;
    s->start_bytes = 0;
    if (hash_init(&s->h, u->target.sha256[0], u->target.sha512[0]) != 0) return OTAD_ECRYPTO;
    s->h_valid = true;
  }
  otad_errbuf eb = {{0}};
  int rc = s->sink->ops->write(s->sink, data, len, u->received, &eb);
  if (rc) {
    snprintf(s->why, sizeof(s->why), "%s", eb.msg);
    forget_hash(s); /* the file may hold bytes the hash has not seen: re-read it */
    return rc;
  }
  if (hash_update(&s->h, data, len) != 0) {
    forget_hash(s);
    return OTAD_ECRYPTO;
  }
  u->received += len;
  log_progress(d, false);
  return 0;
}

/* Leaves d->req as other states expect it: no streaming options. */
static void clear_stream_options(http_request *r) {
  r->sink = NULL;
  r->resume_from = 0;
  r->max_total = 0;
  r->low_speed_limit = r->low_speed_time = 0;
  r->timeout_ms = 0;
}

static void on_transfer_done(http_request *r) {
  device *d = r->data;
  clear_stream_options(r);
  if (r->err == OTAD_ECANCELED) {
    if (d->upd) close_part(d->upd);
    http_request_reset(r);
    return;
  }
  device_update *u = d->upd;
  dl_state *s = u->download;
  const update_target *t = &u->target;
  int err = r->err;
  long status = r->status;
  char msg[sizeof(r->errmsg)];
  snprintf(msg, sizeof(msg), "%s", s->why[0] ? s->why : r->errmsg);
  char body[160] = ""; /* the start of an error reply, for the report */
  if (!err && (status < 200 || status >= 300) && r->resp && r->resp_len) {
    snprintf(body, sizeof(body), ": %.*s", (int)(r->resp_len < 120 ? r->resp_len : 120),
             (const char *)r->resp);
    for (char *p = body; *p; p++)
      if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    for (size_t n = strlen(body); n > 2 && body[n - 1] == ' '; n--)
      body[n - 1] = 0;
  }
  const char *url = r->url;
  http_request_reset(r);

  if (err == OTAD_ETOOBIG) {
    fail_download(d, err,
                  "download of %s from %s: the image exceeds the declared length %" PRIu64
                  " bytes; deleted",
                  t->name, url, t->length);
  } else if (err == OTAD_ENOSPC) {
    fail_download(d, err, "download of %s: no space left for %" PRIu64 " bytes (%s); deleted",
                  t->name, t->length, msg);
  } else if (err == OTAD_EPEER) {
    fail_download(d, err, "download of %s: the server at %s is not trusted (%s)", t->name, url,
                  msg);
  } else if (err == OTAD_EPROTO) {
    discard_part(u); /* the server's ranges cannot be trusted: start over next time */
    retry_download(d, err, "download of %s: %s", t->name, msg);
  } else if (err) {
    log_progress(d, true);
    retry_download(d, err, "download of %s: %s (%s)", t->name, otad_strerror(err), msg);
  } else if (status >= 200 && status < 300) {
    if (u->received < t->length) {
      retry_download(d, OTAD_EPROTO,
                     "download of %s: the server sent %" PRIu64 " of %" PRIu64 " bytes", t->name,
                     u->received, t->length);
      return;
    }
    if (u->received > 1024 * 1024) log_progress(d, true);
    verify_complete(d);
  } else if (status == 416) {
    discard_part(u);
    retry_download(d, OTAD_EPROTO,
                   "download of %s: the server cannot resume at byte %" PRIu64
                   " (HTTP 416); starting over",
                   t->name, s->start_bytes);
  } else if (status >= 500 || status == 408 || status == 429) {
    retry_download(d, OTAD_EHTTP5XX, "download of %s: server answered HTTP %ld%s", t->name, status,
                   body);
  } else {
    fail_download(d, OTAD_EHTTP4XX, "download of %s from %s: HTTP %ld%s", t->name, url, status,
                  body);
  }
}

static void start_transfer(device *d) {
  device_update *u = d->upd;
  dl_state *s = u->download;
  const update_target *t = &u->target;
  char *url = target_url(d);
  if (!url) {
    fail_download(d, OTAD_ECONFIG, "download of %s: no image repository URL is known", t->name);
    return;
  }
  free(d->req_url);
  d->req_url = url;
  http_request *r = &d->req;
  r->method = "GET";
  r->url = url;
  r->content_type = NULL;
  r->body = NULL;
  r->body_len = 0;
  r->cert_pem = d->creds.cert_pem;
  r->key_pem = d->creds.key_pem;
  r->ca_pem = d->creds.ca_pem;
  r->max_response = HTTP_DEFAULT_MAX_RESPONSE; /* for an error reply */
  r->timeout_ms = -1;                          /* the low-speed floor instead */
  r->connect_timeout_ms = 0;
  r->sink = on_body;
  r->resume_from = u->received;
  r->max_total = t->length;
  r->low_speed_limit = LOW_SPEED_LIMIT;
  r->low_speed_time = LOW_SPEED_TIME;
  r->done = on_transfer_done;
  r->data = d;
  s->why[0] = 0;
  s->t_start = s->t_last_log = uv_now(d->o.loop);
  s->start_bytes = u->received;
  s->last_decile = t->length ? (int)(u->received * 10 / t->length) : 10;
  if (u->received)
    device_log(d, LOG_INFO, "resuming %s at byte %" PRIu64 " of %" PRIu64 " (%.1f MiB) from %s",
               t->name, u->received, t->length, mib(t->length), url);
  else
    device_log(d, LOG_INFO, "downloading %s (%" PRIu64 " bytes, %.1f MiB) from %s", t->name,
               t->length, mib(t->length), url);
  int rc = http_start(d->o.http, r);
  if (rc) {
    clear_stream_options(r);
    retry_download(d, rc, "cannot start the download of %s: %s", t->name, otad_strerror(rc));
  }
}

/* Every byte is here (or the file was complete already): check the hashes, then fsync and
 * rename on the thread pool. */
static void verify_complete(device *d) {
  device_update *u = d->upd;
  dl_state *s = u->download;
  const update_target *t = &u->target;
  if (u->received < t->length) {
    start_transfer(d);
    return;
  }
  char got256[65], got512[129];
  int rc = hash_final(&s->h, got256, got512);
  s->h_valid = false;
  if (rc) {
    retry_download(d, rc, "download of %s: hashing failed", t->name);
    return;
  }
  if (!hashes_match(t, got256, got512)) {
    bool bad256 = t->sha256[0] && !hash_hex_equal(got256, t->sha256);
    fail_download(d, OTAD_ECRYPTO,
                  "download of %s: hash mismatch: %s of the %" PRIu64
                  " bytes received is %s, the metadata says %s; deleted",
                  t->name, bad256 ? "sha256" : "sha512", u->received, bad256 ? got256 : got512,
                  bad256 ? t->sha256 : t->sha512);
    return;
  }
  if (!s->sink->ops->commit) { /* nothing to make durable (hash-only) */
    s->h_valid = false;
    uint64_t ms = uv_now(d->o.loop) - s->t_start;
    char how[96];
    snprintf(how, sizeof(how), "%s, %.1f s", s->sink->ops->name, ms / 1000.0);
    downloaded(d, how);
    return;
  }
  queue_job(d, JOB_FINISH);
}

void downloading_start(device *d) {
  device_update *u = d->upd;
  d->eb.msg[0] = 0;
  if (!u) {
    device_fail_with(d, EV_TRANSIENT_ERROR, OTAD_EINVAL, "bug: nothing to download");
    return;
  }
  dl_state *s = dl_get(d);
  if (!s) {
    device_fail_with(d, EV_TRANSIENT_ERROR, OTAD_ENOMEM, "out of memory");
    return;
  }
  const update_target *t = &u->target;
  if (!u->ev_download_started) {
    u->ev_download_started = true;
    events_queue(d, EVENT_DOWNLOAD_STARTED, t->correlation_id, EVENT_NO_SUCCESS);
  }
  if (!t->sha256[0] && !t->sha512[0]) {
    fail_download(d, OTAD_EINVAL, "target %s lists no sha256 or sha512 hash to verify it by",
                  t->name);
    return;
  }
  char base[140];
  storage_image_base(t->name, t->sha256, t->sha512, base, sizeof(base));
  free(u->image_path);
  u->image_path = NULL;
  image_held held;
  otad_errbuf eb = {{0}};
  int rc = s->sink->ops->open(s->sink, base, t->length, &held, &eb);
  if (rc || !held.same) { /* another target than before, or unsure: the running hash goes */
    forget_hash(s);
    u->received = 0;
  }
  if (rc == OTAD_ENOSPC) {
    fail_download(d, rc, "download of %s: %s", t->name, eb.msg);
    return;
  }
  if (rc) {
    retry_download(d, rc, "%s", eb.msg);
    return;
  }
  if (held.complete) { /* renamed into place by an earlier run: verify it */
    queue_job(d, JOB_VERIFY_FINAL);
    return;
  }
  if (s->h_valid && u->received == held.bytes) { /* our own bytes from the last attempt */
    verify_complete(d);
    return;
  }
  forget_hash(s);
  if (held.bytes > 0 && s->sink->ops->hash_held) { /* left by an earlier run: hash it off
                                                       the loop, then resume */
    s->job_len = held.bytes;
    queue_job(d, JOB_REHASH);
    return;
  }
  if (held.bytes > 0 && s->sink->ops->restart(s->sink, &eb) != 0) {
    retry_download(d, OTAD_EIO, "%s", eb.msg);
    return;
  }
  if (hash_init(&s->h, t->sha256[0], t->sha512[0]) != 0) {
    retry_download(d, OTAD_ECRYPTO, "cannot start hashing");
    return;
  }
  s->h_valid = true;
  u->received = 0;
  verify_complete(d);
}
