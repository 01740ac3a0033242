/* fleet_init.h - `ota-server init`: creates a fleet's CAs, credentials, credentials.zip and
 * Uptane repositories. */
#ifndef OTA_SERVER_FLEET_INIT_H
#define OTA_SERVER_FLEET_INIT_H

#include "pkcs12.h"
#include "pki.h"
#include "tuf_key.h"

typedef struct init_options {
  const char *dir;
  int port;                     /* in autoprov.url */
  const char *host;             /* in autoprov.url, and a name of the server certificate */
  const char *p12_password;     /* of autoprov_credentials.p12 */
  enum p12_cert_cipher p12;     /* certificate-bag cipher of autoprov_credentials.p12 */
  enum pki_key_type device_key; /* default key type for serve to issue */
  enum tuf_key_type uptane_key; /* keys of the Uptane repositories */
} init_options;

/* Creates the fleet in o->dir (made if missing; refused if it already holds a fleet) and
 * prints what it wrote. Returns the process exit code (0, or 1 on errors). */
int fleet_init(const init_options *o);

#endif
