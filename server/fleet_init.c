/* fleet_init.c - `ota-server init DIR`: everything a fleet needs, in one directory.
 *
 * Three CAs, because each answers a different question: the server CA is what devices pin
 * (it signs the gateway's certificate), the provisioning CA vouches for the shared fleet
 * credential that may only register devices, and the device CA signs the per-device
 * certificates `serve` issues. credentials.zip has the real layout (autoprov.url,
 * autoprov_credentials.p12, server_ca.pem), written with libarchive.
 */
#include "fleet_init.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <archive.h>
#include <archive_entry.h>

#include "db.h"
#include "files.h"
#include "fleet.h"
#include "uptane_repo.h"

#define CA_DAYS 36525 /* device certificates may ask for 36000 days; CAs outlive them */
#define LEAF_DAYS 3650
#define PROVISIONING_CN "otad-provisioning"

/* One entry of credentials.zip. */
typedef struct zip_entry {
  const char *name;
  const void *data;
  size_t len;
  mode_t mode;
} zip_entry;

static int zip_write(const char *path, const zip_entry *entries, size_t n) {
  size_t cap = 64 * 1024, used = 0;
  for (size_t i = 0; i < n; i++)
    cap += entries[i].len + 512;
  char *buf = malloc(cap);
  struct archive *ar = archive_write_new();
  struct archive_entry *e = archive_entry_new();
  int rc = -1;
  if (!buf || !ar || !e) {
    fprintf(stderr, "ota-server: out of memory\n");
    goto done;
  }
  if (archive_write_set_format_zip(ar) != ARCHIVE_OK ||
      archive_write_open_memory(ar, buf, cap, &used) != ARCHIVE_OK)
    goto archive_error;
  time_t now = time(NULL);
  for (size_t i = 0; i < n; i++) {
    archive_entry_clear(e);
    archive_entry_set_pathname(e, entries[i].name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, entries[i].mode);
    archive_entry_set_size(e, (la_int64_t)entries[i].len);
    archive_entry_set_mtime(e, now, 0);
    if (archive_write_header(ar, e) != ARCHIVE_OK ||
        archive_write_data(ar, entries[i].data, entries[i].len) != (la_ssize_t)entries[i].len ||
        archive_write_finish_entry(ar) != ARCHIVE_OK)
      goto archive_error;
  }
  if (archive_write_close(ar) != ARCHIVE_OK) goto archive_error;
  int err = file_write(path, buf, used, 0600); /* it holds the fleet's provisioning key */
  if (err < 0)
    fprintf(stderr, "ota-server: %s: %s\n", path, strerror(-err));
  else
    rc = 0;
  goto done;
archive_error:
  fprintf(stderr, "ota-server: %s: %s\n", path, archive_error_string(ar));
done:
  if (e) archive_entry_free(e);
  if (ar) archive_write_free(ar);
  if (buf) memset(buf, 0, cap);
  free(buf);
  return rc;
}

/* Creates and saves one credential; prints a GnuTLS error with the file name. */
static int make_cred(const char *dir, const pki_cert_spec *spec, const pki_cred *issuer,
                     const char *key_name, const char *crt_name, pki_cred *out) {
  char *key = path_join(dir, key_name), *crt = path_join(dir, crt_name);
  int rc = key && crt ? pki_cred_create(spec, issuer, out) : GNUTLS_E_MEMORY_ERROR;
  if (rc >= 0 && (rc = pki_cred_save(out, key, crt)) < 0) pki_cred_free(out);
  if (rc < 0) fprintf(stderr, "ota-server: creating %s: %s\n", crt_name, gnutls_strerror(rc));
  free(key);
  free(crt);
  return rc < 0 ? -1 : 0;
}

/* The provisioning archive: fleet key + certificate + the server CA that verifies the
 * gateway. */
static int provisioning_p12(const init_options *o, const pki_cred *prov, const pki_cred *server_ca,
                            gnutls_datum_t *out) {
  gnutls_datum_t key = {0}, certs[2] = {{0}, {0}};
  int rc;
  if ((rc = pki_key_pkcs8_der(prov->key, &key)) >= 0 &&
      (rc = pki_crt_der(prov->crt, &certs[0])) >= 0 &&
      (rc = pki_crt_der(server_ca->crt, &certs[1])) >= 0)
    rc = pkcs12_build(&key, certs, 2, o->p12_password, o->p12, P12_ITERATIONS, out);
  if (rc < 0)
    fprintf(stderr, "ota-server: building autoprov_credentials.p12: %s\n", gnutls_strerror(rc));
  if (key.data) {
    memset(key.data, 0, key.size);
    gnutls_free(key.data);
  }
  gnutls_free(certs[0].data);
  gnutls_free(certs[1].data);
  return rc < 0 ? -1 : 0;
}

static int make_dir(const char *dir) {
  if (mkdir(dir, 0700) == 0) return 0;
  struct stat st;
  if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
  fprintf(stderr, "ota-server: %s: %s\n", dir, strerror(errno == EEXIST ? ENOTDIR : errno));
  return -1;
}

int fleet_init(const init_options *o) {
  if (make_dir(o->dir) != 0) return 1;
  if (fleet_exists(o->dir)) {
    fprintf(stderr, "ota-server: %s already holds a fleet (%s exists); use another directory\n",
            o->dir, FLEET_SERVER_CA_CRT);
    return 1;
  }
  unsigned char ip[16];
  bool host_is_v6 = inet_pton(AF_INET6, o->host, ip) == 1;
  const char *sans[4] = {"localhost", "127.0.0.1", "::1", NULL};
  size_t nsans = 3;
  if (strcmp(o->host, "localhost") != 0 && strcmp(o->host, "127.0.0.1") != 0 &&
      strcmp(o->host, "::1") != 0)
    sans[nsans++] = o->host;

  pki_cred server_ca = {0}, server = {0}, prov_ca = {0}, prov = {0}, device_ca = {0};
  gnutls_datum_t p12 = {0};
  char *url = NULL, *ca_pem_path = NULL, *ca_pem = NULL, *zip_path = NULL, *db_path = NULL;
  size_t ca_pem_len = 0;
  int status = 1;
  const pki_cert_spec server_ca_spec = {"otad server CA", CA_DAYS, PKI_USAGE_CA,
                                        PKI_KEY_EC256,    NULL,    0};
  const pki_cert_spec server_spec = {o->host,       LEAF_DAYS, PKI_USAGE_SERVER,
                                     PKI_KEY_EC256, sans,      nsans};
  const pki_cert_spec prov_ca_spec = {"otad provisioning CA", CA_DAYS, PKI_USAGE_CA,
                                      PKI_KEY_EC256,          NULL,    0};
  const pki_cert_spec prov_spec = {PROVISIONING_CN, LEAF_DAYS, PKI_USAGE_CLIENT,
                                   PKI_KEY_EC256,   NULL,      0};
  const pki_cert_spec device_ca_spec = {"otad device CA", CA_DAYS, PKI_USAGE_CA,
                                        PKI_KEY_EC256,    NULL,    0};
  if (make_cred(o->dir, &server_ca_spec, NULL, FLEET_SERVER_CA_KEY, FLEET_SERVER_CA_CRT,
                &server_ca) ||
      make_cred(o->dir, &server_spec, &server_ca, FLEET_SERVER_KEY, FLEET_SERVER_CRT, &server) ||
      make_cred(o->dir, &prov_ca_spec, NULL, FLEET_PROV_CA_KEY, FLEET_PROV_CA_CRT, &prov_ca) ||
      make_cred(o->dir, &prov_spec, &prov_ca, FLEET_PROV_KEY, FLEET_PROV_CRT, &prov) ||
      make_cred(o->dir, &device_ca_spec, NULL, FLEET_DEVICE_CA_KEY, FLEET_DEVICE_CA_CRT,
                &device_ca))
    goto out;
  if (provisioning_p12(o, &prov, &server_ca, &p12) != 0) goto out;

  int url_len = asprintf(&url, "https://%s%s%s:%d", host_is_v6 ? "[" : "", o->host,
                         host_is_v6 ? "]" : "", o->port);
  if (url_len < 0) url = NULL;
  ca_pem_path = path_join(o->dir, FLEET_SERVER_CA_CRT);
  zip_path = path_join(o->dir, FLEET_CREDENTIALS_ZIP);
  db_path = path_join(o->dir, FLEET_DB);
  if (!url || !ca_pem_path || !zip_path || !db_path) {
    fprintf(stderr, "ota-server: out of memory\n");
    goto out;
  }
  int rc = file_read(ca_pem_path, &ca_pem, &ca_pem_len);
  if (rc < 0) {
    fprintf(stderr, "ota-server: %s: %s\n", ca_pem_path, strerror(-rc));
    goto out;
  }
  const zip_entry entries[] = {
      {"autoprov.url", url, (size_t)url_len, 0644},
      {"autoprov_credentials.p12", p12.data, p12.size, 0600},
      {"server_ca.pem", ca_pem, ca_pem_len, 0644},
  };
  if (zip_write(zip_path, entries, sizeof entries / sizeof entries[0]) != 0) goto out;

  fleet_config conf = {.port = o->port, .device_key = o->device_key};
  snprintf(conf.host, sizeof conf.host, "%s", o->host);
  if ((rc = fleet_config_write(o->dir, &conf)) < 0) {
    fprintf(stderr, "ota-server: %s/%s: %s\n", o->dir, FLEET_CONFIG, strerror(-rc));
    goto out;
  }
  db *d = NULL;
  if (db_open(db_path, false, &d) != 0) goto out;
  db_close(d);
  if (repo_ensure(o->dir, o->uptane_key, false) != 0) goto out;

  printf("Fleet created in %s\n", o->dir);
  printf("  device credentials: %s (autoprov.url, autoprov_credentials.p12 [%s, password %s], "
         "server_ca.pem)\n",
         zip_path, o->p12 == P12_CERTS_RC2_40 ? "RC2-40/3DES" : "3DES",
         o->p12_password[0] ? "set" : "empty");
  printf("  server URL:         %s\n", url);
  printf("  server CA:          %s/%s (devices pin this)\n", o->dir, FLEET_SERVER_CA_CRT);
  printf("  provisioning cert:  %s/%s, key %s (CN %s)\n", o->dir, FLEET_PROV_CRT, FLEET_PROV_KEY,
         PROVISIONING_CN);
  printf("  CAs:                %s, %s (keys *.key, mode 0600)\n", FLEET_PROV_CA_CRT,
         FLEET_DEVICE_CA_CRT);
  printf("  Uptane:             %s/%s/{image,director} (%s keys); targets in %s/%s\n", o->dir,
         REPO_DIR, tuf_key_type_name(o->uptane_key), o->dir, REPO_TARGETS_DIR);
  printf("Start the server with: ota-server serve %s\n", o->dir);
  status = 0;

out:
  pki_cred_free(&server_ca);
  pki_cred_free(&server);
  pki_cred_free(&prov_ca);
  pki_cred_free(&prov);
  pki_cred_free(&device_ca);
  if (p12.data) {
    memset(p12.data, 0, p12.size);
    gnutls_free(p12.data);
  }
  free(url);
  free(ca_pem_path);
  free(ca_pem);
  free(zip_path);
  free(db_path);
  return status;
}
