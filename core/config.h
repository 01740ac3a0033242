/* config.h - otad's configuration: aktualizr-compatible sota.toml files.
 *
 * The files are INI-shaped TOML (`[section]`, `key = "value"`, `#` comments), read with
 * libinih exactly as aktualizr reads them. Sources are applied in order and later values
 * win: every `-c FILE|DIR` given, else every *.toml in /usr/lib/sota/conf.d then
 * /etc/sota/conf.d (a name in the later directory replaces the same name in the earlier;
 * files in name order). A malformed line is an error naming file and line; an unknown key
 * is a warning naming file and line. One otad_config is read once and then only read:
 * the fleet shares one between all its devices.
 */
#ifndef OTAD_CONFIG_H
#define OTAD_CONFIG_H

#include <stdbool.h>

#include "error.h"

enum provision_mode {
  PROVISION_AUTO = 0,         /* unset: SharedCred if provision_path set, else DeviceCred */
  PROVISION_SHARED_CRED,      /* "SharedCred" */
  PROVISION_DEVICE_CRED,      /* "DeviceCred" */
  PROVISION_SHARED_CRED_REUSE /* "SharedCredReuse": keep the fleet key (testing only) */
};

enum uptane_key_type { KEY_RSA2048 = 0, KEY_RSA3072, KEY_RSA4096, KEY_ED25519 };

/* Every string is NULL when unset or a heap string owned by the config. config_init()
 * sets the numeric defaults; config_finish() fills the string defaults noted below (until
 * then NULL means "not given"). Paths are as written; config_path() resolves relative
 * import paths. */
typedef struct otad_config {
  /* [logger] */
  int loglevel; /* 0 trace .. 5 fatal, aktualizr's numbers; default 2 (info) */
  /* [tls] */
  char *tls_server;
  char *tls_server_url_path;
  char *tls_ca_source;   /* "file" (default) | "pkcs11" */
  char *tls_pkey_source; /* "file" (default) | "pkcs11" */
  char *tls_cert_source; /* "file" (default) | "pkcs11" */
  /* [provision] */
  char *provision_server;
  char *p12_password; /* default "" */
  int expiry_days;    /* default 36000 */
  char *provision_path;
  enum provision_mode mode;
  char *device_id;
  char *primary_ecu_serial;
  char *primary_ecu_hardware_id;
  char *ecu_registration_endpoint; /* NULL: {director}/ecus */
  /* [uptane] */
  int polling_sec;       /* default 10 */
  char *director_server; /* default {server}/director when a server is configured */
  char *repo_server;     /* default {server}/repo when a server is configured */
  char *key_source;      /* "file" (default) | "pkcs11" */
  enum uptane_key_type key_type;
  /* [pacman] */
  char *pacman_type;            /* none (default), archive, command */
  char *images_path;            /* default /var/sota/images */
  char *pacman_install_command; /* type = command: the program run as CMD IMAGE TARGET */
  /* [storage] */
  char *storage_path; /* default /var/sota */
  /* [import] */
  char *import_base_path;           /* default /var/sota/import */
  char *import_tls_cacert_path;     /* default root.crt */
  char *import_tls_clientcert_path; /* default client.pem */
  char *import_tls_pkey_path;       /* default pkey.pem */
  /* [p11] */
  char *p11_module;
  char *p11_pass;
  char *p11_tls_pkey_id;
  char *p11_tls_clientcert_id;
  char *p11_uptane_key_id;
  /* [bootloader] */
  char *reboot_sentinel_dir;
  char *reboot_command;
  /* [network] */
  int network_timeout_sec; /* bound of every request but a download (which has a low-speed
                              floor instead): connect, send, wait and read; default 60 */
  /* [telemetry] (device data, docs/protocol.md, section 4) */
  bool report_network; /* PUT /system_info/network when it changes; default true */
  bool report_config;  /* POST /system_info/config when it changes; default true */
} otad_config;

/* Called for each warning (unknown key, deprecated value) with "file:line: text".
 * Keys aktualizr knows but otad does not use (storage.type, pacman.os, ...) are accepted
 * without a warning. */
typedef void (*config_warn_fn)(void *ctx, const char *msg);

/* Sets every number to its default and every string to NULL (unset). */
void config_init(otad_config *cfg);

/* Frees every string the config owns and resets it as config_init() does. */
void config_free(otad_config *cfg);

/* Applies one file or every *.toml of a directory (in name order) on top of cfg.
 * Returns 0, or OTAD_ECONFIG / OTAD_ENOENT / OTAD_EIO with "file:line: what" in eb; on an
 * error cfg keeps what was applied before it (still to be freed). A value of "" unsets. */
int config_load_path(otad_config *cfg, const char *path, config_warn_fn warn, void *ctx,
                     otad_errbuf *eb);

/* Applies the default sources (/usr/lib/sota/conf.d then /etc/sota/conf.d, later names
 * replacing earlier ones) on top of cfg; dirs is a NULL-terminated list to use instead,
 * or NULL for the defaults. Missing directories are skipped. */
int config_load_default(otad_config *cfg, const char *const *dirs, config_warn_fn warn, void *ctx,
                        otad_errbuf *eb);

/* Sets one "section.key" to value as if it came from a file (command-line overrides).
 * Returns 0, or OTAD_ECONFIG with the reason in eb. */
int config_set(otad_config *cfg, const char *section_key, const char *value, otad_errbuf *eb);

/* Checks cross-field rules after loading (SharedCred needs provision_path, a pkcs11
 * source needs p11.module and the object's ID) and fills derived defaults (mode from
 * provision_path, director/repo from the server, string defaults). Returns 0,
 * OTAD_ECONFIG or OTAD_ENOMEM. */
int config_finish(otad_config *cfg, otad_errbuf *eb);

/* The effective provisioning mode (resolved the same way before config_finish()). */
enum provision_mode config_mode(const otad_config *cfg);

/* An import path made absolute: as is when it starts with '/', else under
 * import_base_path. A new heap string, or NULL for a NULL path or no memory. */
char *config_path(const otad_config *cfg, const char *path);

/* Writes the effective configuration as TOML to a new heap string (for
 * POST /system_info/config and `otad config`); unset strings are left out and non-empty
 * secrets (p12_password, p11.pass) are written as "<redacted>". NULL if out of memory. */
char *config_dump(const otad_config *cfg);

/* Names for enums: "SharedCred", "RSA2048", ... */
const char *config_mode_name(enum provision_mode m);
const char *config_key_type_name(enum uptane_key_type t);

#endif
