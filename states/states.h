/* states.h - the actions the state machine names, one file per state.
 *
 * core/device.c calls these after machine_step() chose them; each one starts I/O (through
 * transport/ and storage/) and raises the next event with device_fire() when it is done.
 * States never call each other: only events move a device on.
 */
#ifndef OTAD_STATES_H
#define OTAD_STATES_H

#include <cjson/cJSON.h>

#include "../core/device.h"

/* unprovisioned.c: reads storage; finds the device finished, half done, or new (then reads
 * credentials.zip). */
void unprovisioned_inspect(device *d);

/* registering.c: POST /devices with the fleet key; stores the issued credentials. */
void registering_register(device *d);

/* registering.c: forgets the device ID the server called taken, makes a new one, registers. */
void registering_new_id(device *d);

/* ecu_registering.c: loads the stored Uptane key or generates one on the thread pool. */
void ecu_registering_prepare_key(device *d);

/* ecu_registering.c: POST /director/ecus with the primary ECU. */
void ecu_registering_register(device *d);

/* provisioned.c: logs what the device is and tells its owner. */
void provisioned_finish(device *d);

/* provisioned.c: logs why the device gave up and tells its owner. */
void failed_finish(device *d);

/* polling.c: one cycle: PUT the signed manifest (with a pending installation report),
 * then director and image-repository metadata, verified; raises no_update,
 * update_available (d->upd->target set) or verification_failed. */
void polling_poll(device *d);

/* polling.c: waits polling_sec (with jitter) before the next cycle; `once` ends here. */
void polling_idle(device *d);

/* polling.c: sends the manifest carrying d->upd->result; raises reported. */
void polling_report(device *d);

/* polling.c: records the outcome of an attempt (d->upd->target) for the next manifest,
 * kept in storage until a manifest carrying it is accepted. */
void polling_set_result(device *d, bool success, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* polling.c: the signed manifest (with d->upd->result when pending) as JSON text (heap),
 * or NULL with eb filled when it cannot be signed. Bumps the report counter. */
char *polling_build_manifest(device *d, otad_errbuf *eb);

/* polling.c: frees d->upd and the trusted metadata it holds. */
void polling_free(device *d);

/* device_data.c: sends each kind of device data (hardware, installed target, network,
 * config; device_data.h) whose body changed since the server last accepted it, over d->req,
 * then calls then(d). A failure is a warning and never an event: what was not accepted is
 * sent next cycle. then() runs in every case but a cancel (device_close). Needs d->upd. */
void device_data_send(device *d, void (*then)(device *d));

/* downloading.c: streams d->upd->target to [pacman] images_path (resuming a .part file
 * with Range), hashing as it goes; raises downloaded (d->upd->image_path set),
 * download_failed (d->upd->result filled: hash or length mismatch, nothing kept) or
 * transient_error (network: retried, resumed). */
void downloading_start(device *d);

/* downloading.c: closes the .part file and frees the download's state and paths (safe
 * to call twice). */
void downloading_release(device *d);

/* A download as it stands on disk, for `otad status`. */
typedef struct download_progress {
  char name[256];    /* the target */
  uint64_t received; /* bytes in its .part file (total when complete) */
  uint64_t total;    /* its length, as the verified metadata declares it */
  bool complete;     /* downloaded and renamed to its final name; not installed yet */
} download_progress;

/* downloading.c: the target the stored (verified) director targets assign to the primary
 * ECU, when it is neither installed nor waiting for a reboot, and how much of it is in
 * [pacman] images_path (the size of its .part file). Reads the store and the directory
 * only: nothing is written during a download to track it. False when there is none. */
bool downloading_progress(const otad_config *cfg, store *st, download_progress *out);

/* installing.c: installs d->upd->image_path by [pacman] type (none, archive, command);
 * raises installed or install_failed with d->upd->result filled. */
void installing_start(device *d);

/* request.c: starts method on url (heap, consumed) with body (heap, consumed; NULL for GET)
 * of content_type, identity id, response cap (0 = 64 KiB) and [network] timeout_sec.
 * Returns 0 (done() will be called) or an OTAD_E* code (it will not). */
int states_request(device *d, const char *method, char *url, char *body,
                   const char *content_type, size_t max_response, const tls_creds *id,
                   http_done_fn done);

/* request.c: sends method to url (heap, consumed) with body (JSON text, heap, consumed; NULL
 * for GET) and identity id; the response is capped at max_response bytes (0 = 64 KiB);
 * what ("PUT /director/manifest") names the call in errors. done() gets the outcome. */
void states_send(device *d, const char *method, const char *what, char *url, char *body,
                 size_t max_response, const tls_creds *id, http_done_fn done);

/* request.c: POSTs body (consumed) as JSON to url (heap, consumed) with identity id;
 * what ("POST /devices") names the call in errors. done() gets the outcome. */
void states_post_json(device *d, const char *what, char *url, cJSON *body, const tls_creds *id,
                      http_done_fn done);

/* registering.c: turns a failed request into the right event (transient, rejected). */
void registering_classify_failure(device *d, http_request *r, const char *what);

/* unprovisioned.c: removes the fleet key from credentials.zip unless SharedCredReuse. */
void unprovisioned_strip_fleet_key(device *d);

/* import.c: reads and checks the [import] files (key, certificate, CA) and the server
 * URL. Returns 0 with out/url filled (heap), or an error saying which file and why:
 * OTAD_ENOENT "Device credentials expected but not found", OTAD_ECERT (expired, not yet
 * valid, key does not match), OTAD_EIO, OTAD_ECONFIG (no server URL). */
int import_device_credentials(device *d, tls_creds *out, char **url, otad_errbuf *eb);

/* credentials.c: stores key, certificate chain, pinned CA and server URL as one unit
 * (crash-safe, see the file). Returns 0 or an error with d->eb filled. */
int credentials_store(device *d, const char *key, const char *chain, const char *ca,
                      const char *url);

/* credentials.c: completes a credential write a crash interrupted (no-op when none). */
int credentials_finish_pending(device *d);

/* credentials.c: loads a complete stored identity into d->creds (and d->uuid from its
 * CN); false when none or an incomplete one is stored. */
bool credentials_load_stored(device *d);

#endif
