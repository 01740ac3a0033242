/* api.h - the device API ota-server answers: POST /devices and POST /director/ecus, for
 * shared-credential devices and for implicit ones (certificates of an uploaded fleet CA), and
 * the update API: Uptane metadata of the director and the image repository, target
 * downloads, manifests, events and device data.
 *
 * The two functions below are libmicrohttpd's access handler and request-completed
 * callback; their closure (`cls`) is the api, the server's whole shared state. Handlers run
 * on any of the daemon's threads: the api itself is read-only after api_create(), and the
 * database and fault counters lock internally.
 */
#ifndef OTA_SERVER_API_H
#define OTA_SERVER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "fleet_cas.h"
#include "pkcs12.h"
#include "pki.h"

/* The largest request body accepted; larger ones get 413. */
#define API_MAX_BODY (64 * 1024)

typedef struct api api;

typedef struct api_options {
  enum pki_key_type device_key;  /* key type of issued device keys */
  enum p12_cert_cipher p12;      /* certificate-bag cipher of issued archives */
  const char *faults;            /* --faults SPEC, or NULL */
  uint64_t faults_seed;          /* --faults-seed: drives the %RATE dice */
  const fleet_ca_set *fleet_cas; /* uploaded fleet CAs (copied), or NULL */
  bool quiet;                    /* no per-request log lines */
} api_options;

/* Loads the fleet in dir (device CA, server CA, trust anchors, and opts->fleet_cas) and opens
 * its database.
 * Prints what went wrong to stderr and returns -1 on failure. */
int api_create(const char *dir, const api_options *opts, api **out);

/* True when --faults may hold connections (stall, trickle): the daemon must be started with
 * MHD_ALLOW_SUSPEND_RESUME. */
bool api_holds_connections(const api *a);

/* Lets go of held connections and holds no more; call before MHD_stop_daemon (NULL is
 * fine). */
void api_release_connections(api *a);

/* Frees everything api_create() made (NULL is fine). */
void api_free(api *a);

/* MHD_AccessHandlerCallback: reads the body, authenticates, routes and answers. */
enum MHD_Result api_handle(void *cls, struct MHD_Connection *connection, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_data_size, void **req_cls);

/* MHD_RequestCompletedCallback: logs the request (stderr and database) and frees it. */
void api_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                   enum MHD_RequestTerminationCode toe);

#endif
