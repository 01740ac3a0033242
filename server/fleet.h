/* fleet.h - the layout of a fleet directory, shared by init, serve and the listings.
 *
 * `ota-server init DIR` writes the CAs, the server and provisioning credentials, the
 * device-facing credentials.zip, server.conf (defaults for serve) and server.db; `serve` adds
 * server.pid, and `add-fleet-ca` the fleet_cas directory. Keys are mode 0600.
 */
#ifndef OTA_SERVER_FLEET_H
#define OTA_SERVER_FLEET_H

#include "pki.h"

#define FLEET_SERVER_CA_KEY "server_ca.key"
#define FLEET_SERVER_CA_CRT "server_ca.pem"
#define FLEET_SERVER_KEY "server.key"
#define FLEET_SERVER_CRT "server.pem"
#define FLEET_PROV_CA_KEY "provisioning_ca.key"
#define FLEET_PROV_CA_CRT "provisioning_ca.pem"
#define FLEET_PROV_KEY "provisioning.key"
#define FLEET_PROV_CRT "provisioning.pem"
#define FLEET_DEVICE_CA_KEY "device_ca.key"
#define FLEET_DEVICE_CA_CRT "device_ca.pem"
#define FLEET_CREDENTIALS_ZIP "credentials.zip"
#define FLEET_CONFIG "server.conf"
#define FLEET_DB "server.db"
#define FLEET_PID "server.pid"
#define FLEET_CAS_DIR "fleet_cas" /* uploaded fleet CAs: fleet_cas/NAME.pem */

#define FLEET_DEFAULT_PORT 8443
#define FLEET_HOST_MAX 256

/* Defaults for serve, written by init (key=value lines). */
typedef struct fleet_config {
  int port;                     /* the port autoprov.url names */
  char host[FLEET_HOST_MAX];    /* the host autoprov.url names */
  enum pki_key_type device_key; /* the key type of issued device keys */
} fleet_config;

/* Reads DIR/server.conf; missing file or keys leave the defaults (8443, 127.0.0.1, ec256).
 * Returns 0, or -1 with a message on stderr for a malformed file. */
int fleet_config_read(const char *dir, fleet_config *out);

/* Writes DIR/server.conf. Returns 0 or -errno. */
int fleet_config_write(const char *dir, const fleet_config *c);

/* 1 if DIR holds an initialised fleet (its server CA exists), else 0. */
int fleet_exists(const char *dir);

#endif
