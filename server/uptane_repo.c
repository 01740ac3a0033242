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
static char *repo_path(const char *dir, enum repo_kind kind, const char *rest) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s/%s%s%s", dir, REPO_DIR, repo_kind_name(kind), rest ? "/" : "",
               rest ? rest : "") < 0)
    return NULL;
  return p;
}

static int mkdir_p(const char *path, mode_t mode) {
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

/* Takes the repositories' lock: the fd to give to unlock(), or -1 (message printed). */
static int lock(const char *dir) {
  char *base = NULL, *path = NULL;
  int fd = -1;
  if (asprintf(&base, "%s/%s", dir, REPO_DIR) < 0) return -1;
  if (mkdir_p(base, 0700) != 0 || asprintf(&path, "%s/%s", base, LOCK_FILE) < 0) {
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

static void unlock(int fd) {
  if (fd >= 0) close(fd); /* closing the description releases the flock */
}

/* Parses a JSON file: the document, or NULL with a message, except for a file that does not
 * exist when `missing` is given (then *missing is set, silently). */
static cJSON *read_json(const char *path, bool *missing) {
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

static time_t default_expiry(enum repo_role role) {
  int days = role == REPO_ROLE_ROOT        ? REPO_ROOT_DAYS
             : role == REPO_ROLE_SNAPSHOT  ? REPO_SNAPSHOT_DAYS
             : role == REPO_ROLE_TIMESTAMP ? REPO_TIMESTAMP_DAYS
                                           : REPO_TARGETS_DAYS;
  return time(NULL) + (time_t)days * DAY;
}

/* signed.version of a document, or 0. */
static long version_of(const cJSON *doc) {
  const cJSON *v =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "signed"), "version");
  return cJSON_IsNumber(v) && v->valuedouble >= 1 ? (long)v->valuedouble : 0;
}

/* Sets signed.version and signed.expires. */
static int stamp(cJSON *sig_obj, long version, time_t expires) {
  char when[UTC_ISO_LEN];
  utc_iso(expires, when);
  cJSON_DeleteItemFromObjectCaseSensitive(sig_obj, "version");
  cJSON_DeleteItemFromObjectCaseSensitive(sig_obj, "expires");
  return cJSON_AddNumberToObject(sig_obj, "version", (double)version) &&
                 cJSON_AddStringToObject(sig_obj, "expires", when)
             ? 0
             : -1;
}

/* Signs sig_obj (owned) with keys and writes RDIR/V.ROLE.json then RDIR/ROLE.json. On success
 * *out (when not NULL) is the document's bytes (malloc'd). */
static int write_signed(const char *rdir, const char *role, cJSON *sig_obj,
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
  long version = version_of(doc);
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

/* ---- keys ---- */

static int roles_of(enum repo_kind kind) {
  return kind == REPO_DIRECTOR ? 2 : 4; /* the director has root and targets only */
}

static int load_key(const char *dir, enum repo_kind kind, enum repo_role role, tuf_key *out) {
  char name[64];
  snprintf(name, sizeof name, "keys/%s.key", ROLE_NAMES[role]);
  char *path = repo_path(dir, kind, name);
  int rc = path ? tuf_key_load(path, out) : GNUTLS_E_MEMORY_ERROR;
  if (rc < 0) fprintf(stderr, "ota-server: %s: %s\n", path ? path : name, gnutls_strerror(rc));
  free(path);
  return rc < 0 ? -1 : 0;
}

static int load_keys(const char *dir, enum repo_kind kind, tuf_key keys[4]) {
  for (int r = 0; r < roles_of(kind); r++)
    if (load_key(dir, kind, (enum repo_role)r, &keys[r]) != 0) {
      for (int i = 0; i < r; i++)
        tuf_key_free(&keys[i]);
      return -1;
    }
  return 0;
}

static void free_keys(tuf_key keys[4]) {
  for (int r = 0; r < 4; r++)
    tuf_key_free(&keys[r]);
}

/* The signed part of a root whose roles use keys[0..roles_of(kind)), threshold 1 each. */
static cJSON *root_signed(enum repo_kind kind, const tuf_key keys[4], long version,
                          time_t expires) {
  cJSON *s = cJSON_CreateObject();
  cJSON *keys_obj = NULL, *roles_obj = NULL;
  if (!s || !cJSON_AddStringToObject(s, "_type", "Root") ||
      !cJSON_AddBoolToObject(s, "consistent_snapshot", false) ||
      !(keys_obj = cJSON_AddObjectToObject(s, "keys")) ||
      !(roles_obj = cJSON_AddObjectToObject(s, "roles")))
    goto fail;
  for (int r = 0; r < roles_of(kind); r++) {
    if (!cJSON_GetObjectItemCaseSensitive(keys_obj, keys[r].id)) {
      cJSON *obj = tuf_key_object(&keys[r]);
      if (!obj) goto fail;
      cJSON_AddItemToObject(keys_obj, keys[r].id, obj);
    }
    cJSON *role = cJSON_AddObjectToObject(roles_obj, ROLE_NAMES[r]);
    cJSON *ids = role ? cJSON_AddArrayToObject(role, "keyids") : NULL;
    cJSON *id = cJSON_CreateString(keys[r].id);
    if (!ids || !id || !cJSON_AddNumberToObject(role, "threshold", 1)) {
      cJSON_Delete(id);
      goto fail;
    }
    cJSON_AddItemToArray(ids, id);
  }
  if (stamp(s, version, expires) != 0) goto fail;
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

/* Signs RDIR/ROLE.json ("snapshot" or "timestamp") at version (0: the next one) and expires
 * (0: the default), its meta recording one child document (`child`: its file name). On
 * success *out (when not NULL) is the document's bytes. */
static int sign_record(const char *rdir, const tuf_key keys[4], enum repo_role role,
                       const char *child, const char *child_bytes, size_t child_len,
                       long child_version, time_t expires, long version, char **out,
                       size_t *outlen) {
  char *path = NULL;
  cJSON *old = NULL, *s = NULL, *meta = NULL, *rec = NULL;
  bool missing = false;
  int rc = -1;
  if (asprintf(&path, "%s/%s.json", rdir, ROLE_NAMES[role]) < 0) return -1;
  old = read_json(path, &missing);
  if (!old && !missing) goto out;
  s = empty_signed(role == REPO_ROLE_SNAPSHOT ? "Snapshot" : "Timestamp");
  meta = cJSON_CreateObject();
  rec = record_of(child_bytes, child_len, child_version);
  if (!s || !meta || !rec) goto out;
  cJSON_AddItemToObject(meta, child, rec);
  cJSON_AddItemToObject(s, "meta", meta);
  meta = rec = NULL;
  if (stamp(s, version ? version : version_of(old) + 1, expires ? expires : default_expiry(role)))
    goto out;
  const tuf_key *k = &keys[role];
  rc = write_signed(rdir, ROLE_NAMES[role], s, &k, 1, out, outlen);
  s = NULL;
out:
  cJSON_Delete(old);
  cJSON_Delete(s);
  cJSON_Delete(meta);
  cJSON_Delete(rec);
  free(path);
  return rc;
}

/* Signs the snapshot recording targets (its bytes and version), then the timestamp
 * recording that snapshot; next versions, expiry `expires` (0: the defaults). */
static int sign_snapshot_timestamp(const char *rdir, const tuf_key keys[4], const char *targets,
                                   size_t targets_len, long targets_version, time_t expires) {
  char *snap = NULL;
  size_t snap_len = 0;
  if (sign_record(rdir, keys, REPO_ROLE_SNAPSHOT, "targets.json", targets, targets_len,
                  targets_version, expires, 0, &snap, &snap_len) != 0)
    return -1;
  cJSON *doc = cJSON_ParseWithLength(snap, snap_len);
  int rc = sign_record(rdir, keys, REPO_ROLE_TIMESTAMP, "snapshot.json", snap, snap_len,
                       version_of(doc), expires, 0, NULL, NULL);
  cJSON_Delete(doc);
  free(snap);
  return rc;
}

/* Signs targets (sig_obj owned) at its version and expiry, then snapshot and timestamp. */
static int sign_image_chain(const char *rdir, const tuf_key keys[4], cJSON *targets,
                            time_t chain_expires) {
  char *bytes = NULL;
  size_t len = 0;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(targets, "version");
  long version = cJSON_IsNumber(v) ? (long)v->valuedouble : 1;
  const tuf_key *k = &keys[REPO_ROLE_TARGETS];
  if (write_signed(rdir, "targets", targets, &k, 1, &bytes, &len) != 0) return -1;
  int rc = sign_snapshot_timestamp(rdir, keys, bytes, len, version, chain_expires);
  free(bytes);
  return rc;
}

/* ---- repo_ensure ---- */

static int create_repo(const char *dir, enum repo_kind kind, enum tuf_key_type type, bool verbose) {
  tuf_key keys[4] = {{0}};
  char *rdir = repo_path(dir, kind, NULL), *kdir = repo_path(dir, kind, "keys");
  int rc = -1;
  if (!rdir || !kdir) goto out;
  int err = mkdir_p(kdir, 0700);
  if (err != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", kdir, strerror(-err));
    goto out;
  }
  for (int r = 0; r < roles_of(kind); r++) {
    char *path = NULL;
    int grc = tuf_key_generate(type, &keys[r]);
    if (grc >= 0 && asprintf(&path, "%s/%s.key", kdir, ROLE_NAMES[r]) < 0) grc = -1;
    if (grc >= 0) grc = tuf_key_save(&keys[r], path);
    free(path);
    if (grc < 0) {
      fprintf(stderr, "ota-server: making the %s %s key: %s\n", repo_kind_name(kind), ROLE_NAMES[r],
              gnutls_strerror(grc));
      goto out;
    }
  }
  if (kind == REPO_IMAGE) { /* targets, snapshot, timestamp first: root.json marks it done */
    cJSON *t = empty_signed("Targets");
    if (!t || !cJSON_AddObjectToObject(t, "targets") ||
        stamp(t, 1, default_expiry(REPO_ROLE_TARGETS)) != 0) {
      cJSON_Delete(t);
      goto out;
    }
    if (sign_image_chain(rdir, keys, t, 0) != 0) goto out;
  }
  cJSON *root = root_signed(kind, keys, 1, default_expiry(REPO_ROLE_ROOT));
  const tuf_key *rk = &keys[REPO_ROLE_ROOT];
  if (!root || write_signed(rdir, "root", root, &rk, 1, NULL, NULL) != 0) goto out;
  if (verbose)
    printf("Uptane %s repository created in %s (%s keys)\n", repo_kind_name(kind), rdir,
           tuf_key_type_name(type));
  rc = 0;
out:
  free_keys(keys);
  free(rdir);
  free(kdir);
  return rc;
}

/* Makes whatever is missing; caller holds the lock. */
static int ensure_locked(const char *dir, enum tuf_key_type type, bool verbose) {
  char *targets = path_join(dir, REPO_TARGETS_DIR);
  int err = targets ? mkdir_p(targets, 0755) : -ENOMEM;
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
  int fd = lock(dir);
  if (fd < 0) return -1;
  int rc = ensure_locked(dir, type, verbose);
  unlock(fd);
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
static cJSON *image_targets_signed(const char *dir) {
  char *path = repo_path(dir, REPO_IMAGE, "targets.json");
  cJSON *doc = path ? read_json(path, NULL) : NULL, *s = NULL;
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
  cJSON *s = image_targets_signed(dir);
  if (!s) return -1;
  int has = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "targets"),
                                             name) != NULL;
  cJSON_Delete(s);
  if (!has)
    fprintf(stderr, "ota-server: the image repository has no target '%s' (add-target first)\n",
            name);
  return has;
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
  int fd = lock(dir);
  if (fd < 0) return -1;
  tuf_key keys[4] = {{0}};
  char *dst = NULL, *rdir = repo_path(dir, REPO_IMAGE, NULL);
  cJSON *s = NULL;
  int rc = -1;
  char sha256[65], sha512[129];
  unsigned long long length = 0;
  if (!rdir || ensure_locked(dir, TUF_KEY_ED25519, true) != 0 ||
      load_keys(dir, REPO_IMAGE, keys) != 0 || !(s = image_targets_signed(dir)))
    goto out;
  if (asprintf(&dst, "%s/%s/%s", dir, REPO_TARGETS_DIR, t->name) < 0) goto out;
  char *slash = strrchr(dst, '/'); /* a name with slashes lives in subdirectories */
  *slash = '\0';
  int err = mkdir_p(dst, 0755);
  *slash = '/';
  if (err != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", dst, strerror(-err));
    goto out;
  }
  if (copy_hash(t->file, dst, sha256, sha512, &length) != 0) goto out;
  cJSON *targets = cJSON_GetObjectItemCaseSensitive(s, "targets");
  cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(targets, t->name);
  cJSON *entry = target_entry(t, sha256, sha512, length, old);
  cJSON_Delete(old);
  long version = (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "version")) + 1;
  if (!entry || !cJSON_AddItemToObject(targets, t->name, entry) ||
      stamp(s, version, expires ? expires : default_expiry(REPO_ROLE_TARGETS)) != 0) {
    fprintf(stderr, "ota-server: out of memory\n");
    goto out;
  }
  rc = sign_image_chain(rdir, keys, s, expires);
  s = NULL;
  if (rc == 0)
    printf("%s target '%s' (%llu bytes, sha256 %s) in image targets version %ld\n",
           old ? "replaced" : "added", t->name, length, sha256, version);
out:
  cJSON_Delete(s);
  free_keys(keys);
  free(dst);
  free(rdir);
  unlock(fd);
  return rc;
}

/* ---- the director ---- */

static int uuid_valid(const char *uuid) {
  size_t n = strlen(uuid);
  if (n == 0 || n > 64) return 0;
  for (const char *p = uuid; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '-') return 0;
  return 1;
}

/* DIR/uptane/director/devices/UUID[/file], malloc'd. */
static char *device_path(const char *dir, const char *uuid, const char *file) {
  char *p = NULL;
  if (!uuid_valid(uuid) || asprintf(&p, "%s/%s/director/devices/%s%s%s", dir, REPO_DIR, uuid,
                                    file ? "/" : "", file ? file : "") < 0)
    return NULL;
  return p;
}

/* Signs a device's director targets (sig_obj owned). */
static int sign_device_targets(const char *dir, const char *uuid, cJSON *sig_obj) {
  tuf_key k = {0};
  char *ddir = device_path(dir, uuid, NULL);
  int rc = -1;
  if (!ddir || load_key(dir, REPO_DIRECTOR, REPO_ROLE_TARGETS, &k) != 0) {
    cJSON_Delete(sig_obj);
    goto out;
  }
  int err = mkdir_p(ddir, 0755);
  if (err != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", ddir, strerror(-err));
    cJSON_Delete(sig_obj);
    goto out;
  }
  const tuf_key *kp = &k;
  rc = write_signed(ddir, "targets", sig_obj, &kp, 1, NULL, NULL);
out:
  tuf_key_free(&k);
  free(ddir);
  return rc;
}

/* The device's current director targets document (new cJSON); NULL and *missing when it has
 * none. */
static cJSON *device_targets_doc(const char *dir, const char *uuid, bool *missing) {
  char *path = device_path(dir, uuid, "targets.json");
  *missing = false;
  if (!path) return NULL;
  cJSON *doc = read_json(path, missing);
  free(path);
  return doc;
}

int repo_assign(const char *dir, const repo_assignment *a, time_t expires) {
  if (!uuid_valid(a->uuid)) return -1;
  int fd = lock(dir);
  if (fd < 0) return -1;
  int rc = -1;
  cJSON *image = NULL, *old = NULL, *s = NULL;
  if (ensure_locked(dir, TUF_KEY_ED25519, true) != 0 || !(image = image_targets_signed(dir)))
    goto out;
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(image, "targets"), a->target);
  if (!it) {
    fprintf(stderr, "ota-server: the image repository has no target '%s' (add-target first)\n",
            a->target);
    goto out;
  }
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
  long version = version_of(old) + 1;
  if (stamp(s, version, expires ? expires : default_expiry(REPO_ROLE_TARGETS)) != 0) goto out;
  rc = sign_device_targets(dir, a->uuid, s);
  s = NULL;
  if (rc == 0)
    printf("assigned '%s' to device %s (ECU %s, hardware %s): director targets version %ld, "
           "correlation ID %s\n",
           a->target, a->uuid, a->ecu_serial, a->hwid, version, a->correlation_id);
out:
  cJSON_Delete(image);
  cJSON_Delete(old);
  cJSON_Delete(s);
  unlock(fd);
  return rc;
}

/* An empty director targets "signed" at version. */
static cJSON *no_targets(long version) {
  cJSON *s = empty_signed("Targets");
  if (!s || !cJSON_AddObjectToObject(s, "targets") ||
      stamp(s, version, default_expiry(REPO_ROLE_TARGETS)) != 0) {
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
    int fd = lock(dir);
    if (fd < 0) {
      free(path);
      return -EIO;
    }
    rc = file_read(path, data, len); /* made by another request meanwhile? */
    if (rc == -ENOENT) {
      cJSON *s = no_targets(1);
      rc = s && sign_device_targets(dir, uuid, s) == 0 ? file_read(path, data, len) : -EIO;
    }
    unlock(fd);
  }
  free(path);
  return rc;
}

int repo_director_complete(const char *dir, const char *uuid, const char *correlation_id) {
  if (!uuid_valid(uuid) || !correlation_id) return 0;
  int fd = lock(dir);
  if (fd < 0) return -1;
  bool missing = false;
  cJSON *doc = device_targets_doc(dir, uuid, &missing);
  int rc = doc || missing ? 0 : -1;
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(doc, "signed");
  const char *cid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(s, "custom"), "correlationId"));
  const cJSON *targets = cJSON_GetObjectItemCaseSensitive(s, "targets");
  if (cid && strcmp(cid, correlation_id) == 0 && cJSON_GetArraySize(targets) > 0) {
    cJSON *next = no_targets(version_of(doc) + 1);
    rc = next && sign_device_targets(dir, uuid, next) == 0 ? 1 : -1;
  }
  cJSON_Delete(doc);
  unlock(fd);
  return rc;
}

cJSON *repo_director_signed(const char *dir, const char *uuid) {
  bool missing = false;
  cJSON *doc = device_targets_doc(dir, uuid, &missing);
  cJSON *s = doc ? cJSON_DetachItemFromObjectCaseSensitive(doc, "signed") : NULL;
  cJSON_Delete(doc);
  return s;
}

/* ---- rotate-root and resign ---- */

int repo_rotate_root(const char *dir, enum repo_kind kind, const enum tuf_key_type *type_opt,
                     time_t expires) {
  int fd = lock(dir);
  if (fd < 0) return -1;
  tuf_key keys[4] = {{0}}, old_root = {0};
  char *rdir = repo_path(dir, kind, NULL), *root_path = repo_path(dir, kind, "root.json");
  char *key_path = repo_path(dir, kind, "keys/root.key"), *next_path = NULL, *retired = NULL;
  cJSON *old = NULL;
  int rc = -1;
  if (!rdir || !root_path || !key_path ||
      ensure_locked(dir, type_opt ? *type_opt : TUF_KEY_ED25519, true) != 0 ||
      load_keys(dir, kind, keys) != 0 || !(old = read_json(root_path, NULL)))
    goto out;
  long version = version_of(old) + 1;
  if (asprintf(&next_path, "%s/keys/root.next.key", rdir) < 0 ||
      asprintf(&retired, "%s/keys/retired/root-v%ld.key", rdir, version - 1) < 0)
    goto out;
  old_root = keys[REPO_ROLE_ROOT];
  keys[REPO_ROLE_ROOT] = (tuf_key){0};
  enum tuf_key_type type = type_opt ? *type_opt : old_root.type;
  int grc = tuf_key_generate(type, &keys[REPO_ROLE_ROOT]);
  if (grc >= 0) grc = tuf_key_save(&keys[REPO_ROLE_ROOT], next_path);
  if (grc < 0) {
    fprintf(stderr, "ota-server: making a new root key: %s\n", gnutls_strerror(grc));
    goto out;
  }
  cJSON *s = root_signed(kind, keys, version, expires ? expires : default_expiry(REPO_ROLE_ROOT));
  const tuf_key *signers[2] = {&old_root, &keys[REPO_ROLE_ROOT]};
  if (!s || write_signed(rdir, "root", s, signers, 2, NULL, NULL) != 0) goto out;
  char *slash = strrchr(retired, '/');
  *slash = '\0';
  int err = mkdir_p(retired, 0700);
  *slash = '/';
  if (err != 0 || rename(key_path, retired) != 0 || rename(next_path, key_path) != 0) {
    fprintf(stderr, "ota-server: %s: moving the root keys: %s\n", rdir,
            strerror(err ? -err : errno));
    goto out;
  }
  printf("%s root rotated to version %ld: new %s root key %s (the old one, %s, signed it too "
         "and is kept as %s)\n",
         repo_kind_name(kind), version, tuf_key_type_name(type), keys[REPO_ROLE_ROOT].id,
         old_root.id, retired);
  rc = 0;
out:
  free_keys(keys);
  tuf_key_free(&old_root);
  cJSON_Delete(old);
  free(rdir);
  free(root_path);
  free(key_path);
  free(next_path);
  free(retired);
  unlock(fd);
  return rc;
}

/* Re-signs an image role other than root at (version, expires), cascading to its parents. */
static int resign_image(const char *rdir, enum repo_role role, time_t expires, long version,
                        const tuf_key keys[4]) {
  char *path = NULL, *bytes = NULL;
  size_t len = 0;
  cJSON *doc = NULL, *s = NULL;
  int rc = -1;
  if (asprintf(&path, "%s/%s.json", rdir, ROLE_NAMES[role]) < 0 || !(doc = read_json(path, NULL)))
    goto out;
  long v = version ? version : version_of(doc) + 1;
  s = cJSON_DetachItemFromObjectCaseSensitive(doc, "signed");
  if (!s || stamp(s, v, expires ? expires : default_expiry(role)) != 0) goto out;
  const tuf_key *k = &keys[role];
  rc = write_signed(rdir, ROLE_NAMES[role], s, &k, 1, &bytes, &len);
  s = NULL;
  if (rc == 0 && role == REPO_ROLE_TARGETS)
    rc = sign_snapshot_timestamp(rdir, keys, bytes, len, v, 0);
  else if (rc == 0 && role == REPO_ROLE_SNAPSHOT)
    rc = sign_record(rdir, keys, REPO_ROLE_TIMESTAMP, "snapshot.json", bytes, len, v, 0, 0, NULL,
                     NULL);
  if (rc == 0)
    printf("image %s.json signed again: version %ld%s\n", ROLE_NAMES[role], v,
           role == REPO_ROLE_TARGETS    ? " (and snapshot and timestamp)"
           : role == REPO_ROLE_SNAPSHOT ? " (and timestamp)"
                                        : "");
out:
  cJSON_Delete(doc);
  cJSON_Delete(s);
  free(path);
  free(bytes);
  return rc;
}

int repo_resign(const char *dir, enum repo_kind kind, enum repo_role role, const char *uuid,
                time_t expires, long version) {
  if (kind == REPO_DIRECTOR && (role == REPO_ROLE_SNAPSHOT || role == REPO_ROLE_TIMESTAMP)) {
    fprintf(stderr, "ota-server: the director has no %s role\n", ROLE_NAMES[role]);
    return -1;
  }
  int fd = lock(dir);
  if (fd < 0) return -1;
  tuf_key keys[4] = {{0}};
  char *rdir = repo_path(dir, kind, NULL);
  cJSON *doc = NULL;
  int rc = -1;
  if (!rdir || ensure_locked(dir, TUF_KEY_ED25519, true) != 0 || load_keys(dir, kind, keys) != 0)
    goto out;
  if (role == REPO_ROLE_ROOT) {
    char *path = repo_path(dir, kind, "root.json");
    doc = path ? read_json(path, NULL) : NULL;
    free(path);
    if (!doc) goto out;
    long v = version ? version : version_of(doc) + 1;
    cJSON *s = root_signed(kind, keys, v, expires ? expires : default_expiry(REPO_ROLE_ROOT));
    const tuf_key *k = &keys[REPO_ROLE_ROOT];
    rc = s ? write_signed(rdir, "root", s, &k, 1, NULL, NULL) : -1;
    if (rc == 0) printf("%s root.json signed again: version %ld\n", repo_kind_name(kind), v);
  } else if (kind == REPO_IMAGE) {
    rc = resign_image(rdir, role, expires, version, keys);
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
    long v = version ? version : version_of(doc) + 1;
    cJSON *s = cJSON_DetachItemFromObjectCaseSensitive(doc, "signed");
    if (!s || stamp(s, v, expires ? expires : default_expiry(REPO_ROLE_TARGETS)) != 0) {
      cJSON_Delete(s);
      goto out;
    }
    rc = sign_device_targets(dir, uuid, s);
    if (rc == 0) printf("director targets.json of device %s signed again: version %ld\n", uuid, v);
  }
out:
  cJSON_Delete(doc);
  free_keys(keys);
  free(rdir);
  unlock(fd);
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
