/* fleet_cas.h - fleet root CAs an operator uploads, for implicit provisioning.
 *
 * A device with implicit (device-credential) provisioning comes with a certificate signed by
 * its maker's fleet CA; `ota-server add-fleet-ca DIR CA.pem` checks that CA's certificate and
 * stores it as DIR/fleet_cas/NAME.pem with a row in the database's fleet_cas table (the
 * fingerprint, which `serve` compares with the file). `serve` loads them when it starts:
 * a running server trusts a new fleet CA after a restart.
 */
#ifndef OTA_SERVER_FLEET_CAS_H
#define OTA_SERVER_FLEET_CAS_H

#include <stddef.h>
#include <time.h>

#include <gnutls/x509.h>

#define FLEET_CA_NAME_MAX 64 /* characters of a name: [A-Za-z0-9._-], a letter or digit first */

/* One loaded fleet CA. */
typedef struct fleet_ca {
  char name[FLEET_CA_NAME_MAX + 1];
  gnutls_x509_crt_t crt;
} fleet_ca;

/* Every fleet CA of a fleet, in upload order. */
typedef struct fleet_ca_set {
  fleet_ca *cas;
  size_t n;
  char *pem; /* all their certificates, PEM, one after another ("" when there are none) */
} fleet_ca_set;

/* 1 when name may name a fleet CA (and its file), else 0. */
int fleet_ca_name_valid(const char *name);

/* `add-fleet-ca`: checks the certificate in pem_path (one CA certificate, PEM or DER,
 * valid now, not one of the fleet's own CAs) and stores it under name, or a name made from
 * its CN when name is NULL. Adding the same certificate again changes nothing and succeeds.
 * Prints what it did (stdout) or why not (stderr). Returns the exit code (0, or 1). */
int fleet_ca_add(const char *dir, const char *pem_path, const char *name);

/* Loads the fleet's CAs for serve. A file that is missing or no longer the certificate
 * added under its name is an error (message on stderr, -1). */
int fleet_ca_set_load(const char *dir, fleet_ca_set *out);

/* Frees what fleet_ca_set_load() made and empties the set. */
void fleet_ca_set_free(fleet_ca_set *s);

#endif
