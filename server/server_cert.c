/* server_cert.c - server certificates that must be refused, for client tests (see
 * server_cert.h). The names an expired certificate carries are those init gives the real
 * one: its CN (--host) and localhost, 127.0.0.1, ::1. */
#include "server_cert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "files.h"
#include "fleet.h"
#include "pki.h"

#define DAY 86400

int server_cert_kind_parse(const char *name, enum server_cert_kind *out) {
  if (strcmp(name, "fleet") == 0)
    *out = SERVER_CERT_FLEET;
  else if (strcmp(name, "wrong-host") == 0)
    *out = SERVER_CERT_WRONG_HOST;
  else if (strcmp(name, "expired") == 0)
    *out = SERVER_CERT_EXPIRED;
  else
    return -1;
  return 0;
}

/* A GnuTLS datum as a heap string (the datum is freed). */
static char *datum_string(gnutls_datum_t *d) {
  char *s = malloc(d->size + 1);
  if (s) {
    memcpy(s, d->data, d->size);
    s[d->size] = '\0';
  }
  gnutls_free(d->data);
  d->data = NULL;
  return s;
}

/* The CN of the fleet's own server certificate (init's --host). */
static int fleet_host(const char *dir, char *host, size_t size) {
  char *path = path_join(dir, FLEET_SERVER_CRT);
  gnutls_datum_t pem = {0};
  gnutls_x509_crt_t crt = NULL;
  int rc = path ? gnutls_load_file(path, &pem) : GNUTLS_E_MEMORY_ERROR;
  if (rc >= 0 && (rc = gnutls_x509_crt_init(&crt)) >= 0 &&
      (rc = gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM)) >= 0)
    rc = pki_crt_cn(crt, host, size);
  if (crt) gnutls_x509_crt_deinit(crt);
  gnutls_free(pem.data);
  free(path);
  return rc;
}

int server_cert_make(const char *dir, enum server_cert_kind kind, char **key_pem, char **crt_pem) {
  if (kind == SERVER_CERT_FLEET) return 0;
  char host[256];
  pki_cred ca = {0}, leaf = {0};
  gnutls_datum_t kd = {0}, cd = {0};
  char *ca_key = path_join(dir, FLEET_SERVER_CA_KEY), *ca_crt = path_join(dir, FLEET_SERVER_CA_CRT);
  int rc = ca_key && ca_crt ? pki_cred_load(&ca, ca_key, ca_crt) : GNUTLS_E_MEMORY_ERROR;
  if (rc >= 0 && kind == SERVER_CERT_EXPIRED) rc = fleet_host(dir, host, sizeof host);
  if (rc >= 0) {
    time_t now = time(NULL);
    const char *wrong[] = {"wrong-host.invalid"};
    const char *usual[] = {host, "localhost", "127.0.0.1", "::1"};
    pki_cert_spec spec = {.days = 30, .usage = PKI_USAGE_SERVER, .key_type = PKI_KEY_EC256};
    time_t from = 0, until = 0;
    if (kind == SERVER_CERT_WRONG_HOST) {
      spec.cn = wrong[0];
      spec.sans = wrong;
      spec.nsans = 1;
    } else {
      spec.cn = host;
      spec.sans = usual;
      spec.nsans = 4;
      from = now - 30 * DAY;
      until = now - DAY;
    }
    rc = pki_cred_create_dated(&spec, &ca, from, until, &leaf);
  }
  if (rc >= 0 && (rc = gnutls_x509_privkey_export2(leaf.key, GNUTLS_X509_FMT_PEM, &kd)) >= 0)
    rc = gnutls_x509_crt_export2(leaf.crt, GNUTLS_X509_FMT_PEM, &cd);
  char *k = rc >= 0 ? datum_string(&kd) : NULL, *c = rc >= 0 ? datum_string(&cd) : NULL;
  if (rc < 0)
    fprintf(stderr, "ota-server: --server-cert: making the certificate from %s: %s\n",
            ca_key ? ca_key : FLEET_SERVER_CA_KEY, gnutls_strerror(rc));
  else if (!k || !c)
    fprintf(stderr, "ota-server: --server-cert: out of memory\n");
  if (kd.data) {
    memset(kd.data, 0, kd.size);
    gnutls_free(kd.data);
  }
  gnutls_free(cd.data);
  pki_cred_free(&leaf);
  pki_cred_free(&ca);
  free(ca_key);
  free(ca_crt);
  if (!k || !c) {
    free(k);
    free(c);
    return -1;
  }
  memset(*key_pem, 0, strlen(*key_pem));
  free(*key_pem);
  free(*crt_pem);
  *key_pem = k;
  *crt_pem = c;
  fprintf(stderr, "ota-server: serving a %s certificate (--server-cert): devices must refuse it\n",
          kind == SERVER_CERT_WRONG_HOST ? "wrong-host (CN wrong-host.invalid)"
                                         : "expired (valid until yesterday)");
  return 0;
}
