/* import.c - implicit provisioning: device credentials installed beside the agent.
 *
 * A factory tool (otad-cert-provider) or the operator puts root.crt, client.pem and
 * pkey.pem under [import] base_path; the certificate is signed by the fleet's own CA, so
 * nothing is issued by the server and the device ID is the certificate's CN. Everything is
 * checked before anything is stored: the files exist and parse, the key belongs to the
 * certificate, the certificate is valid now. The server URL comes from [tls] server or the
 * file named by [tls] server_url_path.
 *
 * HSM variant ([tls] pkey_source / cert_source = "pkcs11"): the key, and optionally the
 * certificate, live in a PKCS#11 token ([p11] module, pass, tls_pkey_id,
 * tls_clientcert_id). The key never leaves it: the identity's "key" is then a PKCS#11 URI
 * naming it (p11.h), stored and compared like the PEM it replaces, and the token proves it
 * holds the certificate's key by signing a challenge. root.crt and the URL still come from
 * the [import] files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/log.h"
#include "../crypto/p11.h"
#include "credentials.h"

/* Reads a whole small file; OTAD_ENOENT / OTAD_EIO with the path in eb. */
static int read_file(const char *path, char **out, otad_errbuf *eb) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return otad_fail(eb, errno == ENOENT ? OTAD_ENOENT : OTAD_EIO, "%s: %s", path, strerror(errno));
  char *buf = malloc(65537);
  size_t n = buf ? fread(buf, 1, 65536, f) : 0;
  int err = ferror(f);
  int more = !err && fgetc(f) != EOF;
  fclose(f);
  if (!buf) return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  if (err || more) {
    free(buf);
    return otad_fail(eb, OTAD_EIO, "%s: %s", path,
                     more ? "larger than 64 KiB, not a credential file" : "read error");
  }
  buf[n] = 0;
  *out = buf;
  return 0;
}

static void utc_text(time_t t, char *buf, size_t n) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Server URL for DeviceCred: [tls] server, else the file [tls] server_url_path names. */
static int import_server_url(device *d, char **url, otad_errbuf *eb) {
  const otad_config *c = d->o.cfg;
  if (c->tls_server) {
    *url = strdup(c->tls_server);
    return *url ? 0 : OTAD_ENOMEM;
  }
  if (!c->tls_server_url_path)
    return otad_fail(eb, OTAD_ECONFIG, "no server URL: set [tls] server or [tls] server_url_path");
  char *path = config_path(c, c->tls_server_url_path);
  int rc = path ? read_file(path, url, eb) : OTAD_ENOMEM;
  free(path);
  if (rc) return rc;
  char *s = *url, *e = s + strlen(s);
  while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
    s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
    *--e = 0;
  memmove(*url, s, strlen(s) + 1);
  if (!**url) {
    free(*url);
    *url = NULL;
    return otad_fail(eb, OTAD_ECONFIG, "%s is empty", c->tls_server_url_path);
  }
  return 0;
}

static bool from_token(const char *source) {
  return source && strcmp(source, "pkcs11") == 0;
}

/* The key (as a PKCS#11 URI) and/or the certificate (as PEM) from the token, per
 * [tls] pkey_source and cert_source; *where names the certificate's origin for messages. */
static int import_from_token(const otad_config *c, char **key, char **cert, char *where,
                             size_t where_size, otad_errbuf *eb) {
  p11_token *t;
  int rc = p11_open(c->p11_module, c->p11_pass, &t, eb);
  enum p11_key_kind kind;
  if (!rc && from_token(c->tls_pkey_source))
    rc = p11_key_ref(t, c->p11_tls_pkey_id, key, &kind, eb);
  if (!rc && from_token(c->tls_cert_source)) {
    rc = p11_cert_pem(t, c->p11_tls_clientcert_id, cert, eb);
    snprintf(where, where_size, "certificate %s on token '%s'", c->p11_tls_clientcert_id,
             p11_token_label(t));
  }
  return rc;
}

int device_import_credentials(device *d, tls_creds *out, char **url, otad_errbuf *eb) {
  const otad_config *c = d->o.cfg;
  memset(out, 0, sizeof(*out));
  *url = NULL;
  bool key_p11 = from_token(c->tls_pkey_source), cert_p11 = from_token(c->tls_cert_source);
  if (from_token(c->tls_ca_source))
    return otad_fail(eb, OTAD_ECONFIG,
                     "tls.ca_source = \"pkcs11\" is not supported: the server's CA "
                     "certificate comes from [import] tls_cacert_path");
  /* Files first (key, certificate, CA: whichever are not in the token), then the token. */
  const char *names[3] = {key_p11 ? NULL : c->import_tls_pkey_path,
                          cert_p11 ? NULL : c->import_tls_clientcert_path,
                          c->import_tls_cacert_path};
  char *paths[3] = {0}, *texts[3] = {0};
  int rc = 0;
  for (int i = 0; i < 3 && !rc; i++) {
    if (!names[i]) continue;
    paths[i] = config_path(c, names[i]);
    if (!paths[i])
      rc = OTAD_ENOMEM;
    else
      rc = read_file(paths[i], &texts[i], eb);
  }
  if (rc == OTAD_ENOENT) {
    char m[sizeof(eb->msg)];
    snprintf(m, sizeof(m), "Device credentials expected but not found: %s", eb->msg);
    snprintf(eb->msg, sizeof(eb->msg), "%s", m);
  }
  char cert_where[320];
  snprintf(cert_where, sizeof(cert_where), "%s", paths[1] ? paths[1] : "");
  if (!rc && (key_p11 || cert_p11))
    rc = import_from_token(c, &texts[0], &texts[1], cert_where, sizeof(cert_where), eb);
  tls_cert_info ci, ca;
  time_t now = time(NULL);
  char t1[32], t2[32];
  if (!rc && tls_cert_info_pem(texts[1], &ci, eb) != 0)
    rc = otad_fail(eb, OTAD_ECERT, "%s: no readable certificate", cert_where);
  if (!rc && tls_cert_info_pem(texts[2], &ca, eb) != 0)
    rc = otad_fail(eb, OTAD_ECERT, "%s: no readable CA certificate", paths[2]);
  if (!rc && !ci.cn[0])
    rc = otad_fail(eb, OTAD_ECERT, "%s: the certificate has no CN to serve as device ID",
                   cert_where);
  if (!rc && now < ci.not_before) {
    utc_text(ci.not_before, t1, sizeof(t1));
    rc = otad_fail(eb, OTAD_ECERT, "%s: certificate CN=%s is not valid before %s", cert_where,
                   ci.cn, t1);
  }
  if (!rc && now > ci.not_after) {
    utc_text(ci.not_after, t2, sizeof(t2));
    rc = otad_fail(eb, OTAD_ECERT, "%s: certificate CN=%s expired on %s", cert_where, ci.cn, t2);
  }
  /* A provisioned daemon re-reads [import] every polling cycle: the identity it already
   * uses was proven when it was imported, so the token need not sign for it again. */
  bool in_use = d->state == ST_PROVISIONED && d->creds.key_pem && d->creds.cert_pem && texts[0] &&
                texts[1] && strcmp(d->creds.key_pem, texts[0]) == 0 &&
                strcmp(d->creds.cert_pem, texts[1]) == 0;
  if (!rc && key_p11 && !in_use) {
    /* The token signs a challenge that the certificate's public key must verify. */
    rc = p11_key_matches_cert(texts[0], texts[1], eb);
    if (rc == OTAD_ECERT) {
      char m[sizeof(eb->msg)];
      snprintf(m, sizeof(m), "%s: %s", cert_where, eb->msg);
      snprintf(eb->msg, sizeof(eb->msg), "%s", m);
    }
  } else if (!rc && !key_p11 && tls_key_matches_cert(texts[0], texts[1], eb) != 0) {
    rc = otad_fail(eb, OTAD_ECERT, "%s does not hold the private key of the certificate in %s",
                   paths[0], cert_where);
  }
  if (!rc) rc = import_server_url(d, url, eb);
  for (int i = 0; i < 3; i++)
    free(paths[i]);
  if (rc) {
    if (texts[0]) memset(texts[0], 0, strlen(texts[0]));
    for (int i = 0; i < 3; i++)
      free(texts[i]);
    return rc;
  }
  out->key_pem = texts[0];
  out->cert_pem = texts[1];
  out->ca_pem = texts[2];
  return 0;
}
