/* listing.h - `ota-server devices`, `requests` and `fleet-cas`: the database, for people and
 * for tests (--json). */
#ifndef OTA_SERVER_LISTING_H
#define OTA_SERVER_LISTING_H

#include <stdbool.h>

/* Prints the registered devices with their ECUs. Returns the exit code (0 or 1). */
int list_devices(const char *dir, bool json);

/* Prints the request log (cn, method, path, status). Returns the exit code (0 or 1). */
int list_requests(const char *dir, bool json);

/* Prints the uploaded fleet CAs (name, expiry, fingerprint, subject). Returns the exit code. */
int list_fleet_cas(const char *dir, bool json);

#endif
