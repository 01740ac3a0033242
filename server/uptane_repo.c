/* uptane_repo.c - signing and storing the metadata of the image repository and the director.
 *
 * Every change is a read-modify-write of files under DIR/uptane, made under an exclusive
 * flock of DIR/uptane/.lock (taken on its own file description, so it also orders the
 * threads of one serve process). A role is signed by building its "signed" object, signing
 * the canonical JSON of it, and writing the whole document, canonical too, as N.ROLE.json
 * and then ROLE.json. Parents are written after their children (targets, snapshot,
 * timestamp), so a client that reads while add-target runs never finds a record of a
 * document that is not there yet.
 */
#include "uptane_repo.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "canonical.h"
#include "files.h"
#include "uptane_repo_internal.h"
#include "utctime.h"

#define LOCK_FILE ".lock"
#define COPY_CHUNK (64 * 1024)
#define DAY 86400

static const char *const ROLE_NAMES[] = {"root", "targets", "snapshot", "timestamp"};

const char *repo_kind_name(enum repo_kind k) {
  return k == REPO_DIRECTOR ? "director" : "image";
}

const char *repo_role_name(enum repo_role r) {
  return ROLE_NAMES[r];
}

int repo_kind_parse(const char *s, enum repo_kind *out) {
  if (strcmp(s, "image") == 0)
    *out = REPO_IMAGE;
  else if (strcmp(s, "director") == 0)
    *out = REPO_DIRECTOR;
  else
    return -1;
  return 0;
}

int repo_role_parse(const char *s, enum repo_role *out) {
  for (int r = 0; r < 4; r++)
    if (strcmp(s, ROLE_NAMES[r]) == 0) {
      *out = (enum repo_role)r;
      return 0;
    }
  return -1;
}

int repo_expiry_parse(const char *s, time_t *out) {
  if (s[0] == '+' || s[0] == '-') {
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s + 1, &end, 10);
    long long unit = 0;
    if (end && end[0] && !end[1])
      unit = *end == 's'   ? 1
             : *end == 'm' ? 60
             : *end == 'h' ? 3600
             : *end == 'd' ? DAY
             : *end == 'w' ? 7 * DAY
                           : 0;
    if (errno || end == s + 1 || !unit || n > 100LL * 366 * DAY) return -1;
    *out = time(NULL) + (time_t)(s[0] == '-' ? -n * unit : n * unit);
    return 0;
  }
  struct tm tm = {0};
  const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (!end || *end) return -1;
  *out = timegm(&tm);
  return 0;
}

int repo_target_name_valid(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > REPO_NAME_MAX || name[0] == '/') return 0;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    if (*p < 0x20 || *p == 0x7f || *p == '\\') return 0;
  const char *c = name;
  while (c) { /* each component between slashes */
    const char *slash = strchr(c, '/');
    size_t len = slash ? (size_t)(slash - c) : strlen(c);
    if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.')) return 0;
    c = slash ? slash + 1 : NULL;
  }
  return 1;
}

/* ---- paths, locking, files ---- */

/* DIR/uptane/KIND[/rest], malloc'd. */
char *repo_path(const char *dir, enum repo_kind kind, const char *rest) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s/%s%s%s", dir, REPO_DIR, repo_kind_name(kind), rest ? "/" : "",
               rest ? rest : "") < 0)
    return NULL;
  return p;
}

int repo_mkdir_p(const char *path, mode_t mode) {
  char *copy = strdup(path);
  if (!copy) return -ENOMEM;
  int rc = 0;
  for (char *p = copy + 1; rc == 0; p++) {
    if (*p != '/' && *p != '\0') continue;
    char c = *p;
    *p = '\0';
    if (mkdir(copy, mode) != 0 && errno != EEXIST) rc = -errno;
    *p = c;
    if (!c) break;
  }
  free(copy);
  return rc;
}

/* Takes the repositories' lock: the fd to give to repo_unlock(), or -1 (message printed). */
int repo_lock(const char *dir) {
  char *base = NULL, *path = NULL;
  int fd = -1;
  if (asprintf(&base, "%s/%s", dir, REPO_DIR) < 0) return -1;
  if (repo_mkdir_p(base, 0700) != 0 || asprintf(&path, "%s/%s", base, LOCK_FILE) < 0) {
    fprintf(stderr, "ota-server: %s: %s\n", base, strerror(errno));
    free(base);
    return -1;
  }
  fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || flock(fd, LOCK_EX) != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", path, strerror(errno));
    if (fd >= 0) close(fd);
    fd = -1;
  }
  free(base);
  free(path);
  return fd;
}

void repo_unlock(int fd) {
  if (fd >= 0) close(fd); /* closing the description releases the flock */
}

/* Parses a JSON file: the document, or NULL with a message, except for a file that does not
 * exist when `missing` is given (then *missing is set, silently). */
cJSON *repo_read_json(const char *path, bool *missing) {
  char *text = NULL;
  size_t len = 0;
  int rc = file_read(path, &text, &len);
  if (missing) *missing = rc == -ENOENT;
  if (rc < 0) {
    if (!(missing && rc == -ENOENT)) fprintf(stderr, "ota-server: %s: %s\n", path, strerror(-rc));
    return NULL;
  }
  cJSON *doc = cJSON_ParseWithLength(text, len);
  free(text);
  if (!doc) fprintf(stderr, "ota-server: %s: not valid JSON\n", path);
  return doc;
}

static void hex(const unsigned char *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

time_t repo_default_expiry(enum repo_role role) {
  int days = role == REPO_ROLE_ROOT        ? REPO_ROOT_DAYS
             : role == REPO_ROLE_SNAPSHOT  ? REPO_SNAPSHOT_DAYS
             : role == REPO_ROLE_TIMESTAMP ? REPO_TIMESTAMP_DAYS
                                           : REPO_TARGETS_DAYS;
  return time(NULL) + (time_t)days * DAY;
}

/* signed.version of a document, or 0. */
long repo_version_of(const cJSON *doc) {
  const cJSON *v =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "signed"), "version");
  return cJSON_IsNumber(v) && v->valuedouble >= 1 ? (long)v->valuedouble : 0;
}

long repo_version_of_signed(const cJSON *sig_obj) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(sig_obj, "version");
  return cJSON_IsNumber(v) && v->valuedouble >= 1 ? (long)v->valuedouble : 0;
}

/* Sets signed.version and signed.expires. */
int repo_stamp(cJSON *sig_obj, long version, time_t expires) {
  char when[UTC_ISO_LEN];
  utc_iso(expires, when);
  cJSON_DeleteItemFromObjectCaseSensitive(sig_obj, "version");
  cJSON_DeleteItemFromObjectCaseSensitive(sig_obj, "expires");
  return cJSON_AddNumberToObject(sig_obj, "version", (double)version) &&
                 cJSON_AddStringToObject(sig_obj, "expires", when)
             ? 0
             : -1;
}

int repo_write_signed(const char *rdir, const char *role, cJSON *sig_obj,
                      const tuf_key *const *keys, size_t nkeys, char **out, size_t *outlen) {
  cJSON *doc = cJSON_CreateObject(), *sigs = cJSON_CreateArray();
  char *msg = NULL, *text = NULL, *versioned = NULL, *current = NULL;
  size_t msg_len = 0, len = 0;
  int rc = -1;
  if (!doc || !sigs || !(msg = canonical_json(sig_obj, &msg_len))) {
    cJSON_Delete(sig_obj);
    cJSON_Delete(sigs);
    fprintf(stderr, "ota-server: %s/%s.json: cannot serialise\n", rdir, role);
    goto out;
  }
  for (size_t i = 0; i < nkeys; i++) {
    int grc = tuf_key_sign(keys[i], msg, msg_len, sigs);
    if (grc < 0) {
      fprintf(stderr, "ota-server: signing %s/%s.json: %s\n", rdir, role, gnutls_strerror(grc));
      cJSON_Delete(sig_obj);
      cJSON_Delete(sigs);
      goto out;
    }
  }
  cJSON_AddItemToObject(doc, "signatures", sigs);
  cJSON_AddItemToObject(doc, "signed", sig_obj);
  long version = repo_version_of(doc);
  if (!(text = canonical_json(doc, &len)) ||
      asprintf(&versioned, "%s/%ld.%s.json", rdir, version, role) < 0 ||
      asprintf(&current, "%s/%s.json", rdir, role) < 0) {
    fprintf(stderr, "ota-server: out of memory\n");
    goto out;
  }
  int err = file_write(versioned, text, len, 0644);
  if (err == 0) err = file_write(current, text, len, 0644);
  if (err != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", current, strerror(-err));
    goto out;
  }
  rc = 0;
  if (out) {
    *out = text;
    *outlen = len;
    text = NULL;
  }
out:
  cJSON_Delete(doc);
  free(msg);
  free(text);
  free(versioned);
  free(current);
  return rc;
}

int repo_sign_write(const char *rdir, const char *role, cJSON *sig_obj, const repo_keyset *ks,
                    const repo_attack *attack, char **out, size_t *outlen) {
  const tuf_key *signers[REPO_KEYS_MAX + 1];
  size_t n = 0;
  tuf_key fresh = {0};
  char what[300];
  snprintf(what, sizeof what, "%s/%s.json", rdir, role);
  if (keyset_signers(ks, attack, what, &fresh, signers, &n) != 0) {
    cJSON_Delete(sig_obj);
    return -1;
  }
  int rc = repo_write_signed(rdir, role, sig_obj, signers, n, out, outlen);
  tuf_key_free(&fresh);
  return rc;
}

/* {"hashes":{"sha256":..},"length":len,"version":v}: how a parent records a document. */
static cJSON *record_of(const char *bytes, size_t len, long version) {
  unsigned char d[32];
  char h[65];
  cJSON *rec = cJSON_CreateObject(), *hashes = cJSON_CreateObject();
  if (!rec || !hashes || gnutls_hash_fast(GNUTLS_DIG_SHA256, bytes, len, d) < 0) {
    cJSON_Delete(rec);
    cJSON_Delete(hashes);
    return NULL;
  }
  hex(d, sizeof d, h);
  cJSON_AddStringToObject(hashes, "sha256", h);
  cJSON_AddItemToObject(rec, "hashes", hashes);
  cJSON_AddNumberToObject(rec, "length", (double)len);
  cJSON_AddNumberToObject(rec, "version", (double)version);
  return rec;
}

/* The record of the document at path (its bytes as on disk), or NULL with a message. */
static cJSON *record_file(const char *path) {
  char *bytes = NULL;
  size_t len = 0;
  int err = file_read(path, &bytes, &len);
  if (err != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", path, strerror(-err));
    return NULL;
  }
  cJSON *doc = cJSON_ParseWithLength(bytes, len);
  cJSON *rec = doc ? record_of(bytes, len, repo_version_of(doc)) : NULL;
  if (!doc) fprintf(stderr, "ota-server: %s: not valid JSON\n", path);
  cJSON_Delete(doc);
  free(bytes);
  return rec;
}

/* ---- keys ---- */

static int roles_of(enum repo_kind kind) {
  return kind == REPO_DIRECTOR ? 2 : 4; /* the director has root and targets only */
}

/* Adds key's object to keys_obj (once) and its ID to the array ids. */
static int list_key(cJSON *keys_obj, cJSON *ids, const tuf_key *k) {
  if (!cJSON_GetObjectItemCaseSensitive(keys_obj, k->id)) {
    cJSON *obj = tuf_key_object(k);
    if (!obj) return -1;
    cJSON_AddItemToObject(keys_obj, k->id, obj);
  }
  cJSON *id = cJSON_CreateString(k->id);
  if (!id) return -1;
  cJSON_AddItemToArray(ids, id);
  return 0;
}

cJSON *repo_root_signed(enum repo_kind kind, const repo_keyset ks[4], long version,
                        time_t expires) {
  cJSON *s = cJSON_CreateObject();
  cJSON *keys_obj = NULL, *roles_obj = NULL;
  if (!s || !cJSON_AddStringToObject(s, "_type", "Root") ||
      !cJSON_AddBoolToObject(s, "consistent_snapshot", false) ||
      !(keys_obj = cJSON_AddObjectToObject(s, "keys")) ||
      !(roles_obj = cJSON_AddObjectToObject(s, "roles")))
    goto fail;
  for (int r = 0; r < roles_of(kind); r++) {
    cJSON *role = cJSON_AddObjectToObject(roles_obj, ROLE_NAMES[r]);
    cJSON *ids = role ? cJSON_AddArrayToObject(role, "keyids") : NULL;
    if (!ids || !cJSON_AddNumberToObject(role, "threshold", ks[r].threshold)) goto fail;
    for (size_t i = 0; i < ks[r].n; i++)
      if (list_key(keys_obj, ids, &ks[r].keys[i]) != 0) goto fail;
  }
  if (repo_stamp(s, version, expires) != 0) goto fail;
  return s;
fail:
  cJSON_Delete(s);
  return NULL;
}

/* An empty targets, snapshot or timestamp "signed" object. */
static cJSON *empty_signed(const char *type) {
  cJSON *s = cJSON_CreateObject();
  if (s && !cJSON_AddStringToObject(s, "_type", type)) {
    cJSON_Delete(s);
    s = NULL;
  }
  return s;
}

/* ---- the image repository's chain: targets -> snapshot -> timestamp ---- */

/* Signs RDIR/ROLE.json ("snapshot" or "timestamp") at the next version and expires (0: the
 * default), its meta (owned) recording its children. */
static int sign_record(const char *rdir, const repo_keyset ks[4], enum repo_role role, cJSON *meta,
                       time_t expires) {
  char *path = NULL;
  cJSON *old = NULL, *s = NULL;
  bool missing = false;
  int rc = -1;
  if (asprintf(&path, "%s/%s.json", rdir, ROLE_NAMES[role]) < 0) {
    cJSON_Delete(meta);
    return -1;
  }
  old = repo_read_json(path, &missing);
  if (!old && !missing) goto out;
  s = empty_signed(role == REPO_ROLE_SNAPSHOT ? "Snapshot" : "Timestamp");
  if (!s) goto out;
  cJSON_AddItemToObject(s, "meta", meta);
  meta = NULL;
  if (repo_stamp(s, repo_version_of(old) + 1, expires ? expires : repo_default_expiry(role)))
    goto out;
  rc = repo_sign_write(rdir, ROLE_NAMES[role], s, &ks[role], NULL, NULL, NULL);
  s = NULL;
out:
  cJSON_Delete(old);
  cJSON_Delete(s);
  cJSON_Delete(meta);
  free(path);
  return rc;
}

/* Signs the timestamp (next version) recording snapshot.json as it is on disk. */
static int sign_timestamp(const char *rdir, const repo_keyset ks[4], time_t expires) {
  char *path = NULL;
  if (asprintf(&path, "%s/snapshot.json", rdir) < 0) return -1;
  cJSON *meta = cJSON_CreateObject(), *rec = record_file(path);
  free(path);
  if (!meta || !rec) {
    cJSON_Delete(meta);
    cJSON_Delete(rec);
    return -1;
  }
  cJSON_AddItemToObject(meta, "snapshot.json", rec);
  return sign_record(rdir, ks, REPO_ROLE_TIMESTAMP, meta, expires);
}

int repo_sign_snapshot_timestamp(const char *rdir, const repo_keyset ks[4], time_t expires) {
  char *path = NULL, **names = NULL;
  size_t nnames = 0;
  int rc = -1;
  cJSON *meta = cJSON_CreateObject(), *targets = NULL, *rec = NULL;
  if (!meta || asprintf(&path, "%s/targets.json", rdir) < 0) {
    path = NULL;
    goto out;
  }
  if (!(rec = record_file(path)) || !(targets = repo_read_json(path, NULL))) goto out;
  cJSON_AddItemToObject(meta, "targets.json", rec);
  rec = NULL;
  if (repo_delegation_names(rdir, cJSON_GetObjectItemCaseSensitive(targets, "signed"), &names,
                            &nnames) != 0)
    goto out;
  for (size_t i = 0; i < nnames; i++) {
    char *file = NULL;
    if (asprintf(&file, "%s/%s/%s.json", rdir, REPO_DELEGATIONS_DIR, names[i]) < 0) goto out;
    rec = record_file(file);
    free(file);
    if (!rec) goto out;
    char key[REPO_NAME_MAX + 8];
    snprintf(key, sizeof key, "%s.json", names[i]);
    cJSON_AddItemToObject(meta, key, rec);
    rec = NULL;
  }
  rc = sign_record(rdir, ks, REPO_ROLE_SNAPSHOT, meta, expires);
  meta = NULL;
  if (rc == 0) rc = sign_timestamp(rdir, ks, expires);
out:
  for (size_t i = 0; i < nnames; i++)
    free(names[i]);
  free(names);
  cJSON_Delete(meta);
  cJSON_Delete(targets);
  cJSON_Delete(rec);
  free(path);
  return rc;
}

/* Signs targets (sig_obj owned) at its version and expiry, then snapshot and timestamp. */
static int sign_image_chain(const char *rdir, const repo_keyset ks[4], cJSON *targets,
                            time_t chain_expires) {
  if (repo_sign_write(rdir, "targets", targets, &ks[REPO_ROLE_TARGETS], NULL, NULL, NULL) != 0)
    return -1;
  return repo_sign_snapshot_timestamp(rdir, ks, chain_expires);
}

/* ---- repo_ensure ---- */

static int create_repo(const char *dir, enum repo_kind kind, enum tuf_key_type type, bool verbose) {
  repo_keyset ks[4] = {{.n = 0}};
  char *rdir = repo_path(dir, kind, NULL), *kdir = repo_path(dir, kind, "keys");
  int rc = -1;
  if (!rdir || !kdir) goto out;
  int err = repo_mkdir_p(kdir, 0700);
  if (err != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", kdir, strerror(-err));
    goto out;
  }
  for (int r = 0; r < roles_of(kind); r++) {
    char *base = NULL;
    if (asprintf(&base, "%s/%s", kdir, ROLE_NAMES[r]) < 0) goto out;
    int bad = keyset_generate(&ks[r], type, 1) != 0 || keyset_save(&ks[r], base) != 0;
    free(base);
    if (bad) goto out;
  }
  if (kind == REPO_IMAGE) { /* targets, snapshot, timestamp first: root.json marks it done */
    cJSON *t = empty_signed("Targets");
    if (!t || !cJSON_AddObjectToObject(t, "targets") ||
        repo_stamp(t, 1, repo_default_expiry(REPO_ROLE_TARGETS)) != 0) {
      cJSON_Delete(t);
      goto out;
    }
    if (sign_image_chain(rdir, ks, t, 0) != 0) goto out;
  }
  cJSON *root = repo_root_signed(kind, ks, 1, repo_default_expiry(REPO_ROLE_ROOT));
  if (!root || repo_sign_write(rdir, "root", root, &ks[REPO_ROLE_ROOT], NULL, NULL, NULL) != 0)
    goto out;
  if (verbose)
    printf("Uptane %s repository created in %s (%s keys)\n", repo_kind_name(kind), rdir,
           tuf_key_type_name(type));
  rc = 0;
out:
  repo_keys_free(ks);
  free(rdir);
  free(kdir);
  return rc;
}

/* Makes whatever is missing; caller holds the lock. */
int repo_ensure_locked(const char *dir, enum tuf_key_type type, bool verbose) {
  char *targets = path_join(dir, REPO_TARGETS_DIR);
  int err = targets ? repo_mkdir_p(targets, 0755) : -ENOMEM;
  if (err != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", targets ? targets : dir, strerror(-err));
    free(targets);
    return -1;
  }
  free(targets);
  for (int k = 0; k < 2; k++) {
    char *root = repo_path(dir, (enum repo_kind)k, "root.json");
    if (!root) return -1;
    bool have = access(root, F_OK) == 0;
    free(root);
    if (!have && create_repo(dir, (enum repo_kind)k, type, verbose) != 0) return -1;
  }
  return 0;
}

int repo_ensure(const char *dir, enum tuf_key_type type, bool verbose) {
  int fd = repo_lock(dir);
  if (fd < 0) return -1;
  int rc = repo_ensure_locked(dir, type, verbose);
  repo_unlock(fd);
  return rc;
}

/* ---- add-target ---- */

/* Copies src to dst (unless they are the same file) while hashing; sha256/sha512 in hex. */
static int copy_hash(const char *src, const char *dst, char sha256[65], char sha512[129],
                     unsigned long long *length) {
  int in = open(src, O_RDONLY | O_CLOEXEC), out = -1;
  char *tmp = NULL;
  gnutls_hash_hd_t h256 = NULL, h512 = NULL;
  unsigned char *chunk = malloc(COPY_CHUNK);
  int rc = -1;
  struct stat sst, dst_st;
  if (in < 0 || fstat(in, &sst) != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", src, strerror(errno));
    goto out;
  }
  if (!S_ISREG(sst.st_mode)) {
    fprintf(stderr, "ota-server: %s: not a regular file\n", src);
    goto out;
  }
  bool same = stat(dst, &dst_st) == 0 && dst_st.st_dev == sst.st_dev && dst_st.st_ino == sst.st_ino;
  if (!chunk || gnutls_hash_init(&h256, GNUTLS_DIG_SHA256) < 0 ||
      gnutls_hash_init(&h512, GNUTLS_DIG_SHA512) < 0 ||
      asprintf(&tmp, "%s.tmp.%ld", dst, (long)getpid()) < 0) {
    tmp = NULL;
    fprintf(stderr, "ota-server: out of memory\n");
    goto out;
  }
  if (!same && (out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
    fprintf(stderr, "ota-server: %s: %s\n", tmp, strerror(errno));
    goto out;
  }
  *length = 0;
  for (;;) {
    ssize_t n = read(in, chunk, COPY_CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fprintf(stderr, "ota-server: %s: %s\n", src, strerror(errno));
      goto out;
    }
    if (n == 0) break;
    gnutls_hash(h256, chunk, (size_t)n);
    gnutls_hash(h512, chunk, (size_t)n);
    *length += (unsigned long long)n;
    for (ssize_t off = 0; out >= 0 && off < n;) {
      ssize_t w = write(out, chunk + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        fprintf(stderr, "ota-server: %s: %s\n", tmp, strerror(errno));
        goto out;
      }
      off += w;
    }
  }
  if (out >= 0) {
    int bad = fsync(out) != 0;
    bad |= close(out) != 0;
    out = -1;
    if (bad || rename(tmp, dst) != 0) {
      fprintf(stderr, "ota-server: %s: %s\n", dst, strerror(errno));
      goto out;
    }
  }
  unsigned char d[64];
  gnutls_hash_output(h256, d);
  hex(d, 32, sha256);
  gnutls_hash_output(h512, d);
  hex(d, 64, sha512);
  rc = 0;
out:
  if (out >= 0) close(out);
  if (rc != 0 && tmp) unlink(tmp);
  if (in >= 0) close(in);
  if (h256) gnutls_hash_deinit(h256, NULL);
  if (h512) gnutls_hash_deinit(h512, NULL);
  free(tmp);
  free(chunk);
  return rc;
}

/* The image repository's current targets "signed" (new cJSON), or NULL. */
cJSON *repo_image_targets_signed(const char *dir) {
  char *path = repo_path(dir, REPO_IMAGE, "targets.json");
  cJSON *doc = path ? repo_read_json(path, NULL) : NULL, *s = NULL;
  free(path);
  if (doc) s = cJSON_DetachItemFromObjectCaseSensitive(doc, "signed");
  cJSON_Delete(doc);
  if (s && !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "targets"))) {
    fprintf(stderr, "ota-server: image targets.json has no targets object\n");
    cJSON_Delete(s);
    s = NULL;
  }
  return s;
}

int repo_has_target(const char *dir, const char *name) {
  cJSON *t = repo_image_target_lookup(dir, name, false);
  cJSON_Delete(t);
  return t ? 1 : 0;
}

static cJSON *target_entry(const repo_target_spec *t, const char *sha256, const char *sha512,
                           unsigned long long length, const cJSON *old) {
  char now[UTC_ISO_LEN];
  utc_iso(time(NULL), now);
  cJSON *e = cJSON_CreateObject(), *hashes = cJSON_CreateObject(), *custom = cJSON_CreateObject();
  cJSON *hw = cJSON_CreateArray();
  if (!e || !hashes || !custom || !hw) {
    cJSON_Delete(e);
    cJSON_Delete(hashes);
    cJSON_Delete(custom);
    cJSON_Delete(hw);
    return NULL;
  }
  cJSON_AddStringToObject(hashes, "sha256", sha256);
  cJSON_AddStringToObject(hashes, "sha512", sha512);
  cJSON_AddItemToObject(e, "hashes", hashes);
  cJSON_AddNumberToObject(e, "length", (double)length);
  for (size_t i = 0; i < t->nhwids; i++)
    cJSON_AddItemToArray(hw, cJSON_CreateString(t->hwids[i]));
  cJSON_AddStringToObject(custom, "name", t->name);
  cJSON_AddStringToObject(custom, "version", t->version);
  cJSON_AddItemToObject(custom, "hardwareIds", hw);
  cJSON_AddStringToObject(custom, "targetFormat", t->format);
  if (t->uri) cJSON_AddStringToObject(custom, "uri", t->uri);
  const char *created = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(old, "custom"), "createdAt"));
  cJSON_AddStringToObject(custom, "createdAt", created ? created : now);
  cJSON_AddStringToObject(custom, "updatedAt", now);
  cJSON_AddItemToObject(e, "custom", custom);
  return e;
}

int repo_add_target(const char *dir, const repo_target_spec *t, time_t expires) {
  int fd = repo_lock(dir);
  if (fd < 0) return -1;
  repo_keyset ks[4] = {{.n = 0}};
  char *dst = NULL, *rdir = repo_path(dir, REPO_IMAGE, NULL);
  cJSON *s = NULL;
  int rc = -1;
  char sha256[65], sha512[129];
  unsigned long long length = 0;
  if (!rdir || repo_ensure_locked(dir, TUF_KEY_ED25519, true) != 0 ||
      repo_keys_load(dir, REPO_IMAGE, ks) != 0)
    goto out;
  s = t->delegation ? repo_delegation_signed(dir, t->delegation, t->name)
                    : repo_image_targets_signed(dir);
  if (!s) goto out;
  if (asprintf(&dst, "%s/%s/%s", dir, REPO_TARGETS_DIR, t->name) < 0) goto out;
  char *slash = strrchr(dst, '/'); /* a name with slashes lives in subdirectories */
  *slash = '\0';
  int err = repo_mkdir_p(dst, 0755);
  *slash = '/';
  if (err != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", dst, strerror(-err));
    goto out;
  }
  if (copy_hash(t->file, dst, sha256, sha512, &length) != 0) goto out;
  cJSON *targets = cJSON_GetObjectItemCaseSensitive(s, "targets");
  cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(targets, t->name);
  bool replaced = old != NULL;
  cJSON *entry = target_entry(t, sha256, sha512, length, old);
  cJSON_Delete(old);
  long version = repo_version_of_signed(s) + 1;
  if (!entry || !cJSON_AddItemToObject(targets, t->name, entry) ||
      repo_stamp(s, version, expires ? expires : repo_default_expiry(REPO_ROLE_TARGETS)) != 0) {
    fprintf(stderr, "ota-server: out of memory\n");
    goto out;
  }
  rc = t->delegation ? repo_delegation_sign(dir, t->delegation, s, NULL, ks, expires)
                     : sign_image_chain(rdir, ks, s, expires);
  s = NULL;
  if (rc == 0)
    printf("%s target '%s' (%llu bytes, sha256 %s) in %s%s version %ld\n",
           replaced ? "replaced" : "added", t->name, length, sha256,
           t->delegation ? "delegated role " : "image targets", t->delegation ? t->delegation : "",
           version);
out:
  cJSON_Delete(s);
  repo_keys_free(ks);
  free(dst);
  free(rdir);
  repo_unlock(fd);
  return rc;
}

/* ---- the director ---- */

int repo_uuid_valid(const char *uuid) {
  size_t n = strlen(uuid);
  if (n == 0 || n > 64) return 0;
  for (const char *p = uuid; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '-') return 0;
  return 1;
}

/* DIR/uptane/director/devices/UUID[/file], malloc'd. */
static char *device_path(const char *dir, const char *uuid, const char *file) {
  char *p = NULL;
  if (!repo_uuid_valid(uuid) || asprintf(&p, "%s/%s/director/devices/%s%s%s", dir, REPO_DIR, uuid,
                                         file ? "/" : "", file ? file : "") < 0)
    return NULL;
  return p;
}

int repo_sign_device_targets(const char *dir, const char *uuid, cJSON *sig_obj,
                             const repo_attack *attack) {
  repo_keyset ks[4] = {{.n = 0}};
  char *ddir = device_path(dir, uuid, NULL);
  int rc = -1;
  if (!ddir || repo_keys_load(dir, REPO_DIRECTOR, ks) != 0) {
    cJSON_Delete(sig_obj);
    goto out;
  }
  int err = repo_mkdir_p(ddir, 0755);
  if (err != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", ddir, strerror(-err));
    cJSON_Delete(sig_obj);
    goto out;
  }
  rc = repo_sign_write(ddir, "targets", sig_obj, &ks[REPO_ROLE_TARGETS], attack, NULL, NULL);
out:
  repo_keys_free(ks);
  free(ddir);
  return rc;
}

/* The device's current director targets document (new cJSON); NULL and *missing when it has
 * none. */
static cJSON *device_targets_doc(const char *dir, const char *uuid, bool *missing) {
  char *path = device_path(dir, uuid, "targets.json");
  *missing = false;
  if (!path) return NULL;
  cJSON *doc = repo_read_json(path, missing);
  free(path);
  return doc;
}

int repo_assign(const char *dir, const repo_assignment *a, time_t expires) {
  if (!repo_uuid_valid(a->uuid)) return -1;
  int fd = repo_lock(dir);
  if (fd < 0) return -1;
  int rc = -1;
  cJSON *image = NULL, *old = NULL, *s = NULL;
  if (repo_ensure_locked(dir, TUF_KEY_ED25519, true) != 0 ||
      !(image = repo_image_target_lookup(dir, a->target, false)))
    goto out;
  const cJSON *it = image;
  const cJSON *hwids = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(it, "custom"), "hardwareIds");
  bool listed = false;
  const cJSON *h;
  cJSON_ArrayForEach(h, hwids) listed |= cJSON_IsString(h) && strcmp(h->valuestring, a->hwid) == 0;
  if (!listed && !a->force) {
    rc = REPO_HWID_MISMATCH;
    goto out;
  }
  bool missing = false;
  old = device_targets_doc(dir, a->uuid, &missing);
  if (!old && !missing) goto out;
  s = empty_signed("Targets");
  cJSON *targets = cJSON_CreateObject(), *entry = cJSON_CreateObject();
  cJSON *custom = cJSON_CreateObject(), *ecus = cJSON_CreateObject(), *ecu = cJSON_CreateObject();
  cJSON *scustom = cJSON_CreateObject();
  if (!s || !targets || !entry || !custom || !ecus || !ecu || !scustom) {
    cJSON_Delete(targets);
    cJSON_Delete(entry);
    cJSON_Delete(custom);
    cJSON_Delete(ecus);
    cJSON_Delete(ecu);
    cJSON_Delete(scustom);
    goto out;
  }
  cJSON_AddItemToObject(entry, "hashes",
                        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(it, "hashes"), 1));
  cJSON_AddItemToObject(entry, "length",
                        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(it, "length"), 1));
  cJSON_AddStringToObject(ecu, "hardwareId", a->hwid);
  cJSON_AddItemToObject(ecus, a->ecu_serial, ecu);
  cJSON_AddItemToObject(custom, "ecuIdentifiers", ecus);
  cJSON_AddItemToObject(entry, "custom", custom);
  cJSON_AddItemToObject(targets, a->target, entry);
  cJSON_AddItemToObject(s, "targets", targets);
  cJSON_AddStringToObject(scustom, "correlationId", a->correlation_id);
  cJSON_AddItemToObject(s, "custom", scustom);
  long version = repo_version_of(old) + 1;
  if (repo_stamp(s, version, expires ? expires : repo_default_expiry(REPO_ROLE_TARGETS)) != 0)
    goto out;
  rc = repo_sign_device_targets(dir, a->uuid, s, NULL);
  s = NULL;
  if (rc == 0)
    printf("assigned '%s' to device %s (ECU %s, hardware %s): director targets version %ld, "
           "correlation ID %s\n",
           a->target, a->uuid, a->ecu_serial, a->hwid, version, a->correlation_id);
out:
  cJSON_Delete(image);
  cJSON_Delete(old);
  cJSON_Delete(s);
  repo_unlock(fd);
  return rc;
}

/* An empty director targets "signed" at version. */
static cJSON *no_targets(long version) {
  cJSON *s = empty_signed("Targets");
  if (!s || !cJSON_AddObjectToObject(s, "targets") ||
      repo_stamp(s, version, repo_default_expiry(REPO_ROLE_TARGETS)) != 0) {
    cJSON_Delete(s);
    return NULL;
  }
  return s;
}

int repo_director_targets(const char *dir, const char *uuid, const char *file, char **data,
                          size_t *len) {
  if (strcmp(file, "targets.json") != 0) { /* N.targets.json: history only */
    const char *p = file;
    while (isdigit((unsigned char)*p))
      p++;
    if (p == file || strcmp(p, ".targets.json") != 0) return -ENOENT;
  }
  char *path = device_path(dir, uuid, file);
  if (!path) return -ENOENT;
  int rc = file_read(path, data, len);
  if (rc == -ENOENT && strcmp(file, "targets.json") == 0) {
    int fd = repo_lock(dir);
    if (fd < 0) {
      free(path);
      return -EIO;
    }
    rc = file_read(path, data, len); /* made by another request meanwhile? */
    if (rc == -ENOENT) {
      cJSON *s = no_targets(1);
      rc = s && repo_sign_device_targets(dir, uuid, s, NULL) == 0 ? file_read(path, data, len)
                                                                  : -EIO;
    }
    repo_unlock(fd);
  }
  free(path);
  return rc;
}

int repo_director_complete(const char *dir, const char *uuid, const char *correlation_id) {
  if (!repo_uuid_valid(uuid) || !correlation_id) return 0;
  int fd = repo_lock(dir);
  if (fd < 0) return -1;
  bool missing = false;
  cJSON *doc = device_targets_doc(dir, uuid, &missing);
  int rc = doc || missing ? 0 : -1;
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(doc, "signed");
  const char *cid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(s, "custom"), "correlationId"));
  const cJSON *targets = cJSON_GetObjectItemCaseSensitive(s, "targets");
  if (cid && strcmp(cid, correlation_id) == 0 && cJSON_GetArraySize(targets) > 0) {
    cJSON *next = no_targets(repo_version_of(doc) + 1);
    rc = next && repo_sign_device_targets(dir, uuid, next, NULL) == 0 ? 1 : -1;
  }
  cJSON_Delete(doc);
  repo_unlock(fd);
  return rc;
}

cJSON *repo_director_signed(const char *dir, const char *uuid) {
  bool missing = false;
  cJSON *doc = device_targets_doc(dir, uuid, &missing);
  cJSON *s = doc ? cJSON_DetachItemFromObjectCaseSensitive(doc, "signed") : NULL;
  cJSON_Delete(doc);
  return s;
}

/* ---- resign ---- */

/* Re-signs an image role other than root at (version, expires) as attack says, cascading to
 * its parents (signed normally). */
static int resign_image(const char *rdir, enum repo_role role, time_t expires, long version,
                        const repo_keyset ks[4], const repo_attack *attack) {
  char *path = NULL;
  cJSON *doc = NULL, *s = NULL;
  int rc = -1;
  if (asprintf(&path, "%s/%s.json", rdir, ROLE_NAMES[role]) < 0) {
    path = NULL;
    goto out;
  }
  if (!(doc = repo_read_json(path, NULL))) goto out;
  long v = version ? version : repo_version_of(doc) + 1;
  s = cJSON_DetachItemFromObjectCaseSensitive(doc, "signed");
  if (!s || repo_stamp(s, v, expires ? expires : repo_default_expiry(role)) != 0) goto out;
  rc = repo_sign_write(rdir, ROLE_NAMES[role], s, &ks[role], attack, NULL, NULL);
  s = NULL;
  if (rc == 0 && role == REPO_ROLE_TARGETS)
    rc = repo_sign_snapshot_timestamp(rdir, ks, 0);
  else if (rc == 0 && role == REPO_ROLE_SNAPSHOT)
    rc = sign_timestamp(rdir, ks, 0);
  if (rc == 0)
    printf("image %s.json signed again: version %ld%s\n", ROLE_NAMES[role], v,
           role == REPO_ROLE_TARGETS    ? " (and snapshot and timestamp)"
           : role == REPO_ROLE_SNAPSHOT ? " (and timestamp)"
                                        : "");
out:
  cJSON_Delete(doc);
  cJSON_Delete(s);
  free(path);
  return rc;
}

/* Re-signs a delegated role's document (next version or version) as attack says, then
 * snapshot and timestamp. */
static int resign_delegation(const char *dir, const char *name, time_t expires, long version,
                             const repo_keyset ks[4], const repo_attack *attack) {
  cJSON *s = repo_delegation_signed(dir, name, NULL);
  if (!s) return -1;
  long v = version ? version : repo_version_of_signed(s) + 1;
  if (repo_stamp(s, v, expires ? expires : repo_default_expiry(REPO_ROLE_TARGETS)) != 0) {
    cJSON_Delete(s);
    return -1;
  }
  int rc = repo_delegation_sign(dir, name, s, attack, ks, 0);
  if (rc == 0)
    printf("image delegations/%s.json signed again: version %ld (and snapshot and timestamp)\n",
           name, v);
  return rc;
}

int repo_resign_locked(const char *dir, enum repo_kind kind, enum repo_role role,
                       const char *delegation, const char *uuid, time_t expires, long version,
                       const repo_attack *attack) {
  if (kind == REPO_DIRECTOR && (role == REPO_ROLE_SNAPSHOT || role == REPO_ROLE_TIMESTAMP)) {
    fprintf(stderr, "ota-server: the director has no %s role\n", ROLE_NAMES[role]);
    return -1;
  }
  if (kind == REPO_DIRECTOR && delegation) {
    fprintf(stderr, "ota-server: the director has no delegations\n");
    return -1;
  }
  repo_keyset ks[4] = {{.n = 0}};
  char *rdir = repo_path(dir, kind, NULL);
  cJSON *doc = NULL;
  int rc = -1;
  if (!rdir || repo_ensure_locked(dir, TUF_KEY_ED25519, true) != 0 ||
      repo_keys_load(dir, kind, ks) != 0)
    goto out;
  if (delegation) {
    rc = resign_delegation(dir, delegation, expires, version, ks, attack);
  } else if (role == REPO_ROLE_ROOT) {
    char *path = repo_path(dir, kind, "root.json");
    doc = path ? repo_read_json(path, NULL) : NULL;
    free(path);
    if (!doc) goto out;
    long v = version ? version : repo_version_of(doc) + 1;
    cJSON *s =
        repo_root_signed(kind, ks, v, expires ? expires : repo_default_expiry(REPO_ROLE_ROOT));
    rc = s ? repo_sign_write(rdir, "root", s, &ks[REPO_ROLE_ROOT], attack, NULL, NULL) : -1;
    if (rc == 0) printf("%s root.json signed again: version %ld\n", repo_kind_name(kind), v);
  } else if (kind == REPO_IMAGE) {
    rc = resign_image(rdir, role, expires, version, ks, attack);
  } else {
    bool missing = false;
    doc = device_targets_doc(dir, uuid, &missing);
    if (!doc && missing) { /* never asked for: start from the empty version 1 */
      cJSON *s = no_targets(1);
      doc = cJSON_CreateObject();
      if (!doc || !s) {
        cJSON_Delete(s);
        goto out;
      }
      cJSON_AddItemToObject(doc, "signed", s);
    }
    if (!doc) goto out;
    long v = version ? version : repo_version_of(doc) + 1;
    cJSON *s = cJSON_DetachItemFromObjectCaseSensitive(doc, "signed");
    if (!s || repo_stamp(s, v, expires ? expires : repo_default_expiry(REPO_ROLE_TARGETS)) != 0) {
      cJSON_Delete(s);
      goto out;
    }
    rc = repo_sign_device_targets(dir, uuid, s, attack);
    if (rc == 0) printf("director targets.json of device %s signed again: version %ld\n", uuid, v);
  }
out:
  cJSON_Delete(doc);
  repo_keys_free(ks);
  free(rdir);
  return rc;
}

int repo_resign(const char *dir, enum repo_kind kind, enum repo_role role, const char *delegation,
                const char *uuid, time_t expires, long version, const repo_attack *attack) {
  int fd = repo_lock(dir);
  if (fd < 0) return -1;
  int rc = repo_resign_locked(dir, kind, role, delegation, uuid, expires, version, attack);
  repo_unlock(fd);
  return rc;
}

/* ---- serving ---- */

/* 1 when file is "ROLE.json" or "N.ROLE.json" with a role of kind, or (image)
 * "delegations/NAME.json". */
static int servable(enum repo_kind kind, const char *file) {
  if (strncmp(file, "delegations/", 12) == 0) {
    const char *name = file + 12;
    size_t n = strlen(name);
    if (kind != REPO_IMAGE || n <= 5 || name[0] == '.' || strcmp(name + n - 5, ".json") != 0)
      return 0;
    for (const char *p = name; *p; p++)
      if (!isalnum((unsigned char)*p) && !strchr("._-", *p)) return 0;
    return 1;
  }
  const char *p = file;
  while (isdigit((unsigned char)*p))
    p++;
  if (p != file && *p++ != '.') return 0;
  for (int r = 0; r < roles_of(kind); r++) {
    size_t n = strlen(ROLE_NAMES[r]);
    if (strncmp(p, ROLE_NAMES[r], n) == 0 && strcmp(p + n, ".json") == 0)
      return kind == REPO_IMAGE || r == REPO_ROLE_ROOT; /* director targets are per device */
  }
  return 0;
}

int repo_read(const char *dir, enum repo_kind kind, const char *file, char **data, size_t *len) {
  if (!servable(kind, file)) return -ENOENT;
  char *path = repo_path(dir, kind, file);
  if (!path) return -ENOMEM;
  int rc = file_read(path, data, len);
  free(path);
  return rc;
}

int repo_target_open(const char *dir, const char *name, int *fd, unsigned long long *size) {
  if (!repo_target_name_valid(name)) return -ENOENT;
  char *path = NULL;
  if (asprintf(&path, "%s/%s/%s", dir, REPO_TARGETS_DIR, name) < 0) return -ENOMEM;
  int f = open(path, O_RDONLY | O_CLOEXEC);
  free(path);
  struct stat st;
  if (f < 0) return errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
  if (fstat(f, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(f);
    return -ENOENT;
  }
  *fd = f;
  *size = (unsigned long long)st.st_size;
  return 0;
}
