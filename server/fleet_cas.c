/* fleet_cas.c - checking, storing and loading uploaded fleet CAs (add-fleet-ca, serve).
 *
 * A fleet CA is acceptable when the file holds one certificate that may sign certificates
 * (basicConstraints CA:TRUE, and keyCertSign when it lists key usages; a version 1
 * self-signed root, which has no extensions at all, passes too), whose self-signature holds
 * when it is self-issued, that is valid now, and that is none of the fleet's own CAs (those
 * have their roles already). The certificate is stored as GnuTLS re-exports it, so a file
 * with comments or a private key beside the certificate leaves only the certificate behind.
 * The database row is written before the file: two uploads racing for one name cannot leave
 * one's row with the other's file, and a file that failed to be written is written by the
 * next upload of the same certificate.
 */
#include "fleet_cas.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "files.h"
#include "fleet.h"
#include "pki.h"
#include "utctime.h"

#define TIMELESS (GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS)
#define SHA256_HEX 65
#define PATH_NAME_LEN (sizeof FLEET_CAS_DIR + FLEET_CA_NAME_MAX + sizeof ".pem")

/* The fleet's own CAs: never fleet CAs as well. */
static const struct {
  const char *file;
  const char *what;
} OWN_CAS[] = {
    {FLEET_SERVER_CA_CRT, "server CA (it signs the server's certificate)"},
    {FLEET_PROV_CA_CRT, "provisioning CA (it signs the shared provisioning credential)"},
    {FLEET_DEVICE_CA_CRT, "device CA (it signs the certificates POST /devices issues)"},
};

/* A fleet CA's row, as far as adding and loading need it. */
typedef struct known_ca {
  char name[FLEET_CA_NAME_MAX + 1];
  char sha256[SHA256_HEX];
} known_ca;

typedef struct known_cas {
  known_ca *v;
  size_t n;
  bool out_of_memory;
} known_cas;

static bool alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int fleet_ca_name_valid(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > FLEET_CA_NAME_MAX || !alnum(name[0])) return 0;
  for (const char *p = name; *p; p++)
    if (!alnum(*p) && *p != '.' && *p != '_' && *p != '-') return 0;
  return 1;
}

static int collect(const db_fleet_ca *ca, void *arg) {
  known_cas *k = arg;
  known_ca *grown = realloc(k->v, (k->n + 1) * sizeof *grown);
  if (!grown) {
    k->out_of_memory = true;
    return 1;
  }
  k->v = grown;
  snprintf(k->v[k->n].name, sizeof k->v[k->n].name, "%s", ca->name);
  snprintf(k->v[k->n].sha256, sizeof k->v[k->n].sha256, "%s", ca->sha256);
  k->n++;
  return 0;
}

/* Reads the fleet CA rows of the database in dir (opened read-write: it gains the table if
 * it predates fleet CAs). */
static int known_load(const char *dir, db **d, known_cas *out) {
  char *path = path_join(dir, FLEET_DB);
  *out = (known_cas){0};
  int rc = path ? db_open(path, false, d) : -1;
  free(path);
  if (rc != 0) {
    *d = NULL;
    return -1;
  }
  if (db_fleet_cas_foreach(*d, collect, out) != 0) return -1;
  if (out->out_of_memory) {
    fprintf(stderr, "ota-server: out of memory\n");
    return -1;
  }
  return 0;
}

/* Reads the one certificate in path (PEM or DER); says why not on stderr. */
static int read_candidate(const char *path, gnutls_x509_crt_t *out) {
  char *text = NULL;
  size_t len = 0;
  int rc = file_read(path, &text, &len);
  if (rc < 0) {
    fprintf(stderr, "ota-server: %s: %s\n", path, strerror(-rc));
    return -1;
  }
  gnutls_datum_t data = {(unsigned char *)text, (unsigned)len};
  gnutls_x509_crt_t *list = NULL;
  unsigned n = 0;
  int status = -1;
  *out = NULL;
  if (strstr(text, "-----BEGIN ")) {
    rc = gnutls_x509_crt_list_import2(&list, &n, &data, GNUTLS_X509_FMT_PEM, 0);
    if ((rc < 0 || n == 0) && strstr(text, "PRIVATE KEY-----"))
      fprintf(stderr,
              "ota-server: %s: refused: it holds a private key, not a certificate; give the "
              "fleet CA's certificate (its key stays with you)\n",
              path);
    else if (rc < 0 || n == 0)
      fprintf(stderr, "ota-server: %s: refused: no readable PEM certificate in it (%s)\n", path,
              rc < 0 ? gnutls_strerror(rc) : "none found");
    else if (n > 1)
      fprintf(stderr,
              "ota-server: %s: refused: it holds %u certificates; give one fleet CA "
              "certificate per call\n",
              path, n);
    else {
      *out = list[0];
      list[0] = NULL;
      status = 0;
    }
  } else if (gnutls_x509_crt_init(out) >= 0 &&
             gnutls_x509_crt_import(*out, &data, GNUTLS_X509_FMT_DER) >= 0) {
    status = 0;
  } else {
    fprintf(stderr,
            "ota-server: %s: refused: not a certificate (expected PEM, -----BEGIN "
            "CERTIFICATE-----, or DER)\n",
            path);
    if (*out) gnutls_x509_crt_deinit(*out);
    *out = NULL;
  }
  for (unsigned i = 0; i < n; i++)
    if (list[i]) gnutls_x509_crt_deinit(list[i]);
  gnutls_free(list);
  free(text);
  return status;
}

/* Whether crt can be a fleet CA at time now: 0, or -1 with the reason in why. */
static int check_ca(gnutls_x509_crt_t crt, time_t now, char *why, size_t size) {
  bool self_issued = gnutls_x509_crt_check_issuer(crt, crt) == 1;
  unsigned critical = 0, ca = 0, usage = 0;
  int pathlen = 0;
  int bc = gnutls_x509_crt_get_basic_constraints(crt, &critical, &ca, &pathlen);
  if (bc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
    if (gnutls_x509_crt_get_version(crt) != 1 || !self_issued) {
      snprintf(why, size,
               "it has no basicConstraints extension, so it is not a CA certificate (a CA has "
               "basicConstraints=critical,CA:TRUE)");
      return -1;
    }
  } else if (bc < 0) {
    snprintf(why, size, "its basicConstraints extension does not parse (%s)", gnutls_strerror(bc));
    return -1;
  } else if (!ca) {
    snprintf(why, size,
             "it is not a CA certificate (basicConstraints CA:FALSE): a device's or a server's "
             "certificate? Add the CA that signed it");
    return -1;
  }
  int ku = gnutls_x509_crt_get_key_usage(crt, &usage, &critical);
  if (ku < 0 && ku != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
    snprintf(why, size, "its keyUsage extension does not parse (%s)", gnutls_strerror(ku));
    return -1;
  }
  if (ku >= 0 && !(usage & GNUTLS_KEY_KEY_CERT_SIGN)) {
    snprintf(why, size, "its keyUsage lacks keyCertSign: it may not sign device certificates");
    return -1;
  }
  if (self_issued) {
    unsigned status = 0;
    int rc = gnutls_x509_crt_verify(
        crt, &crt, 1,
        GNUTLS_VERIFY_DO_NOT_ALLOW_SAME | TIMELESS | GNUTLS_VERIFY_ALLOW_X509_V1_CA_CRT, &status);
    if (rc < 0 || (status & GNUTLS_CERT_SIGNATURE_FAILURE)) {
      snprintf(why, size, "its self-signature does not verify: the certificate is damaged");
      return -1;
    }
  }
  time_t not_before = gnutls_x509_crt_get_activation_time(crt);
  time_t not_after = gnutls_x509_crt_get_expiration_time(crt);
  char when[UTC_ISO_LEN];
  if (not_before == (time_t)-1 || not_after == (time_t)-1) {
    snprintf(why, size, "its validity period does not parse");
    return -1;
  }
  if (not_after < now) {
    utc_iso(not_after, when);
    snprintf(why, size, "it expired on %s", when);
    return -1;
  }
  if (not_before > now) {
    utc_iso(not_before, when);
    snprintf(why, size, "it is not valid before %s", when);
    return -1;
  }
  return 0;
}

/* Reads a PEM certificate file (the first certificate in it). */
static int load_crt(const char *path, gnutls_x509_crt_t *out) {
  gnutls_datum_t pem = {0};
  int rc = gnutls_load_file(path, &pem);
  *out = NULL;
  if (rc >= 0 && (rc = gnutls_x509_crt_init(out)) >= 0 &&
      (rc = gnutls_x509_crt_import(*out, &pem, GNUTLS_X509_FMT_PEM)) < 0) {
    gnutls_x509_crt_deinit(*out);
    *out = NULL;
  }
  gnutls_free(pem.data);
  return rc < 0 ? rc : 0;
}

/* What the certificate with this fingerprint is among the fleet's own CAs, or NULL. */
static const char *own_ca(const char *dir, const char *sha256) {
  for (size_t i = 0; i < sizeof OWN_CAS / sizeof OWN_CAS[0]; i++) {
    char *path = path_join(dir, OWN_CAS[i].file), own[SHA256_HEX];
    gnutls_x509_crt_t crt = NULL;
    bool same = path && load_crt(path, &crt) == 0 && pki_crt_sha256(crt, own) == 0 &&
                strcmp(own, sha256) == 0;
    if (crt) gnutls_x509_crt_deinit(crt);
    free(path);
    if (same) return OWN_CAS[i].what;
  }
  return NULL;
}

/* A name from the subject's CN: [A-Za-z0-9._-] kept, runs of anything else one '-'. */
static void name_from_cn(gnutls_x509_crt_t crt, const char *sha256,
                         char out[FLEET_CA_NAME_MAX + 1]) {
  char cn[256];
  size_t n = sizeof cn, len = 0;
  if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &n) < 0) cn[0] = 0;
  for (const char *p = cn; *p && len < FLEET_CA_NAME_MAX; p++) {
    char c = alnum(*p) || *p == '.' || *p == '_' || *p == '-' ? *p : '-';
    if ((len == 0 && !alnum(c)) || (c == '-' && out[len - 1] == '-')) continue;
    out[len++] = c;
  }
  while (len > 0 && !alnum(out[len - 1]))
    len--;
  out[len] = '\0';
  if (len == 0) snprintf(out, FLEET_CA_NAME_MAX + 1, "fleet-ca-%.8s", sha256);
}

static const known_ca *find(const known_cas *k, const char *name, const char *sha256) {
  for (size_t i = 0; i < k->n; i++)
    if ((name && strcmp(k->v[i].name, name) == 0) ||
        (sha256 && strcmp(k->v[i].sha256, sha256) == 0))
      return &k->v[i];
  return NULL;
}

/* DIR/fleet_cas/NAME.pem, malloc'd. */
static char *ca_path(const char *dir, const char *name) {
  char rel[PATH_NAME_LEN];
  snprintf(rel, sizeof rel, "%s/%s.pem", FLEET_CAS_DIR, name);
  return path_join(dir, rel);
}

/* Writes the certificate to DIR/fleet_cas/NAME.pem unless it holds exactly that already. */
static int store_file(const char *dir, const char *name, gnutls_x509_crt_t crt) {
  char *sub = path_join(dir, FLEET_CAS_DIR), *path = ca_path(dir, name), *old = NULL;
  gnutls_datum_t pem = {0};
  int rc = -ENOMEM;
  if (!sub || !path) goto out;
  if (mkdir(sub, 0755) != 0 && errno != EEXIST) {
    rc = -errno;
    goto out;
  }
  if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem) < 0) goto out;
  size_t len = 0;
  if (file_read(path, &old, &len) == 0 && len == pem.size && memcmp(old, pem.data, len) == 0)
    rc = 0;
  else
    rc = file_write(path, pem.data, pem.size, 0644);
out:
  if (rc < 0) fprintf(stderr, "ota-server: %s: %s\n", path ? path : FLEET_CAS_DIR, strerror(-rc));
  gnutls_free(pem.data);
  free(old);
  free(sub);
  free(path);
  return rc;
}

static void print_ca(const char *dir, const char *name, const char *subject, const char *sha256,
                     const char *expiry) {
  printf("  subject: %s\n  sha256:  %s\n  expires: %s\n  file:    %s/%s/%s.pem\n", subject, sha256,
         expiry, dir, FLEET_CAS_DIR, name);
}

int fleet_ca_add(const char *dir, const char *pem_path, const char *name) {
  if (!fleet_exists(dir)) {
    fprintf(stderr, "ota-server: %s is not a fleet directory (run `ota-server init %s`)\n", dir,
            dir);
    return 1;
  }
  gnutls_x509_crt_t crt = NULL;
  if (read_candidate(pem_path, &crt) != 0) return 1;
  char why[256], sha256[SHA256_HEX], expiry[UTC_ISO_LEN], added[UTC_ISO_LEN],
      chosen[FLEET_CA_NAME_MAX + 1];
  gnutls_datum_t subject = {0};
  known_cas known = {0};
  db *d = NULL;
  int status = 1, rc;
  const char *own;
  if (check_ca(crt, time(NULL), why, sizeof why) != 0) {
    fprintf(stderr, "ota-server: %s: refused: %s\n", pem_path, why);
    goto out;
  }
  if ((rc = pki_crt_sha256(crt, sha256)) < 0 ||
      (rc = gnutls_x509_crt_get_dn3(crt, &subject, 0)) < 0) {
    fprintf(stderr, "ota-server: %s: %s\n", pem_path, gnutls_strerror(rc));
    goto out;
  }
  if ((own = own_ca(dir, sha256))) {
    fprintf(stderr,
            "ota-server: %s: refused: it is this fleet's own %s, trusted for that already\n",
            pem_path, own);
    goto out;
  }
  utc_iso(gnutls_x509_crt_get_expiration_time(crt), expiry);
  if (known_load(dir, &d, &known) != 0) goto out;

  const known_ca *same = find(&known, NULL, sha256);
  if (same && name && strcmp(name, same->name) != 0) {
    fprintf(stderr, "ota-server: %s: refused: this certificate was added already, as '%s'\n",
            pem_path, same->name);
    goto out;
  }
  if (same) {
    if (store_file(dir, same->name, crt) != 0) goto out;
    printf("fleet CA '%s' is present already (the same certificate); nothing changed\n",
           same->name);
    print_ca(dir, same->name, (const char *)subject.data, sha256, expiry);
    status = 0;
    goto out;
  }
  if (name) {
    const known_ca *taken = find(&known, name, NULL);
    if (taken) {
      fprintf(stderr,
              "ota-server: %s: refused: another fleet CA is named '%s' already (sha256 %s); "
              "choose another --name\n",
              pem_path, name, taken->sha256);
      goto out;
    }
    snprintf(chosen, sizeof chosen, "%s", name);
  } else {
    name_from_cn(crt, sha256, chosen);
    if (find(&known, chosen, NULL)) { /* another CA with the same CN: tell them apart */
      char base[FLEET_CA_NAME_MAX + 1];
      snprintf(base, sizeof base, "%s", chosen);
      snprintf(chosen, sizeof chosen, "%.*s-%.8s", FLEET_CA_NAME_MAX - 9, base, sha256);
      if (find(&known, chosen, NULL)) {
        fprintf(stderr, "ota-server: %s: refused: the names '%s' and '%s' are taken; give --name\n",
                pem_path, base, chosen);
        goto out;
      }
    }
  }
  utc_iso(time(NULL), added);
  db_fleet_ca row = {chosen, sha256, (const char *)subject.data, expiry, added};
  rc = db_fleet_ca_add(d, &row);
  if (rc == DB_CONFLICT) {
    fprintf(stderr,
            "ota-server: %s: another add-fleet-ca took the name '%s' or added this certificate "
            "just now; run this one again\n",
            pem_path, chosen);
    goto out;
  }
  if (rc != 0) goto out;
  if (store_file(dir, chosen, crt) != 0) {
    fprintf(stderr, "ota-server: the fleet CA is recorded, but its file is not: run this again\n");
    goto out;
  }
  printf("added fleet CA '%s': devices whose certificates chain to it are created on first "
         "contact\n",
         chosen);
  print_ca(dir, chosen, (const char *)subject.data, sha256, expiry);
  char *pid = path_join(dir, FLEET_PID);
  if (pid && access(pid, F_OK) == 0)
    printf("A running `ota-server serve %s` trusts it after a restart.\n", dir);
  free(pid);
  status = 0;
out:
  db_close(d);
  free(known.v);
  gnutls_free(subject.data);
  gnutls_x509_crt_deinit(crt);
  if (fflush(stdout) != 0) status = 1;
  return status;
}

/* ---- loading, for serve ---- */

/* Appends the fleet CA in DIR/fleet_cas/NAME.pem to the set, checking it is the one added. */
static int load_one(const char *dir, const known_ca *k, fleet_ca_set *set) {
  char *path = fleet_ca_name_valid(k->name) ? ca_path(dir, k->name) : NULL, sha256[SHA256_HEX];
  gnutls_x509_crt_t crt = NULL;
  gnutls_datum_t pem = {0};
  int status = -1, rc;
  if (!path) {
    fprintf(stderr, "ota-server: fleet CA '%s': not a valid name\n", k->name);
    return -1;
  }
  if ((rc = load_crt(path, &crt)) < 0) {
    fprintf(stderr, "ota-server: fleet CA '%s': %s: %s (add it again with add-fleet-ca)\n", k->name,
            path, rc == GNUTLS_E_FILE_ERROR ? "cannot read it" : gnutls_strerror(rc));
    goto out;
  }
  if ((rc = pki_crt_sha256(crt, sha256)) < 0 ||
      (rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem)) < 0) {
    fprintf(stderr, "ota-server: %s: %s\n", path, gnutls_strerror(rc));
    goto out;
  }
  if (strcmp(sha256, k->sha256) != 0) {
    fprintf(stderr,
            "ota-server: fleet CA '%s': %s is not the certificate added under that name (sha256 "
            "%s, expected %s)\n",
            k->name, path, sha256, k->sha256);
    goto out;
  }
  size_t have = strlen(set->pem);
  fleet_ca *grown = realloc(set->cas, (set->n + 1) * sizeof *grown);
  if (grown) set->cas = grown;
  char *text = grown ? realloc(set->pem, have + pem.size + 1) : NULL;
  if (!text) {
    fprintf(stderr, "ota-server: out of memory\n");
    goto out;
  }
  set->pem = text;
  memcpy(text + have, pem.data, pem.size);
  text[have + pem.size] = '\0';
  fleet_ca *ca = &set->cas[set->n++];
  snprintf(ca->name, sizeof ca->name, "%s", k->name);
  ca->crt = crt;
  crt = NULL;
  status = 0;
out:
  if (crt) gnutls_x509_crt_deinit(crt);
  gnutls_free(pem.data);
  free(path);
  return status;
}

int fleet_ca_set_load(const char *dir, fleet_ca_set *out) {
  *out = (fleet_ca_set){0};
  known_cas known = {0};
  db *d = NULL;
  int status = -1;
  if (!(out->pem = strdup(""))) goto out;
  if (known_load(dir, &d, &known) != 0) goto out;
  status = 0;
  for (size_t i = 0; i < known.n && status == 0; i++)
    status = load_one(dir, &known.v[i], out);
out:
  db_close(d);
  free(known.v);
  if (status != 0) fleet_ca_set_free(out);
  return status;
}

void fleet_ca_set_free(fleet_ca_set *s) {
  for (size_t i = 0; i < s->n; i++)
    gnutls_x509_crt_deinit(s->cas[i].crt);
  free(s->cas);
  free(s->pem);
  *s = (fleet_ca_set){0};
}
