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
