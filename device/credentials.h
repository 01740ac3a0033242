/* credentials.h - the device's TLS identity in the store (credentials.c) and the
 * [import] files it may come from (import.c). */
#ifndef OTAD_DEVICE_CREDENTIALS_H
#define OTAD_DEVICE_CREDENTIALS_H

#include <stdbool.h>

#include "device.h"

/* Stores key, certificate chain, pinned CA and server URL as one unit (crash-safe, see
 * credentials.c). Returns 0 or an error with d->eb filled. */
int credentials_store(device *d, const char *key, const char *chain, const char *ca,
                      const char *url);

/* Completes a credential write a crash interrupted (no-op when none). */
int credentials_finish_pending(device *d);

/* Loads a complete stored identity into d->creds (and d->uuid from its CN); false when
 * none or an incomplete one is stored. */
bool credentials_load_stored(device *d);

/* Removes the fleet key from credentials.zip unless SharedCredReuse. */
void credentials_strip_fleet_key(device *d);

/* Reads and checks the [import] files (key, certificate, CA) and the server URL. Returns
 * 0 with out/url filled (heap), or an error saying which file and why: OTAD_ENOENT
 * "Device credentials expected but not found", OTAD_ECERT (expired, not yet valid, key
 * does not match), OTAD_EIO, OTAD_ECONFIG (no server URL). */
int device_import_credentials(device *d, tls_creds *out, char **url, otad_errbuf *eb);

#endif
