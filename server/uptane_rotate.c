/* uptane_rotate.c - new keys for a role: rotate-root, set-keys (any role, several keys, a
 * threshold), and the broken-chain attack (a root the previous root's keys did not sign).
 *
 * A key change is a new root version N+1 listing the new keys, signed by every key of root
 * N (so a client's check of the old threshold passes) and by every key of its own root
 * role. The new keys are written first (ROLE.next*.key), then the root; then the old keys
 * move to keys/retired/ROLE-vN*.key and the new ones take their place, and what the role
 * signs is signed again with them, since a client that follows the rotation forgets what
 * the old keys signed.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uptane_repo_internal.h"

/* Re-signs what role signs with its (new) keys: the image role's document (with its
 * parents), or every device's director targets. */
static int resign_role(const char *dir, enum repo_kind kind, enum repo_role role) {
  if (role == REPO_ROLE_ROOT) return 0;
  if (kind == REPO_IMAGE) return repo_resign_locked(dir, kind, role, NULL, NULL, 0, 0, NULL);
  char *devices = repo_path(dir, REPO_DIRECTOR, "devices");
  DIR *d = devices ? opendir(devices) : NULL;
  int rc = 0;
  if (!d) {
    if (devices && errno != ENOENT) {
      fprintf(stderr, "ota-server: %s: %s\n", devices, strerror(errno));
      rc = -1;
    }
    free(devices);
    return rc;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || !repo_uuid_valid(e->d_name)) continue;
    char *targets = NULL;
    if (asprintf(&targets, "%s/%s/targets.json", devices, e->d_name) < 0) {
      rc = -1;
      break;
    }
    bool missing = false;
    cJSON *doc = repo_read_json(targets, &missing);
    free(targets);
    if (!doc) continue; /* nothing signed for it yet */
    cJSON_Delete(doc);
    if (repo_resign_locked(dir, REPO_DIRECTOR, REPO_ROLE_TARGETS, NULL, e->d_name, 0, 0, NULL) != 0)
      rc = -1;
  }
  closedir(d);
  free(devices);
  return rc;
}

/* DIR/uptane/KIND/keys/NAME, malloc'd. */
static char *key_base(const char *dir, enum repo_kind kind, const char *fmt, const char *role,
                      long n) {
  char rest[128];
  snprintf(rest, sizeof rest, fmt, role, n);
  return repo_path(dir, kind, rest);
}

/* The key change described above; keep_shape (rotate-root): as many keys and the same
 * threshold as the role has now. */
static int change_keys(const char *dir, enum repo_kind kind, enum repo_role role, size_t nkeys,
                       int threshold, const enum tuf_key_type *type_opt, time_t expires,
                       bool keep_shape) {
  int fd = repo_lock(dir);
  if (fd < 0) return -1;
  repo_keyset ks[4] = {{.n = 0}}, old = {.n = 0};
  char *rdir = repo_path(dir, kind, NULL), *root_path = repo_path(dir, kind, "root.json");
  char *base = NULL, *next = NULL, *retired = NULL, *retired_dir = NULL;
  cJSON *root = NULL;
  int rc = -1;
  const char *role_name = repo_role_name(role);
  if (!rdir || !root_path ||
      repo_ensure_locked(dir, type_opt ? *type_opt : TUF_KEY_ED25519, true) != 0 ||
      repo_keys_load(dir, kind, ks) != 0 || !(root = repo_read_json(root_path, NULL)))
    goto out;
  if (keep_shape) { /* rotate-root: as many keys and the same threshold as now */
    nkeys = ks[role].n;
    threshold = ks[role].threshold;
  }
  long version = repo_version_of(root) + 1;
  base = key_base(dir, kind, "keys/%s", role_name, 0);
  next = key_base(dir, kind, "keys/%s.next", role_name, 0);
  retired = key_base(dir, kind, "keys/retired/%s-v%ld", role_name, version - 1);
  retired_dir = repo_path(dir, kind, "keys/retired");
  if (!base || !next || !retired || !retired_dir) goto out;
  old = ks[role];
  enum tuf_key_type type = type_opt ? *type_opt : old.keys[0].type;
  if (keyset_generate(&ks[role], type, nkeys) != 0) {
    ks[role] = (repo_keyset){0};
    goto out;
  }
  ks[role].threshold = threshold;
  if (keyset_save(&ks[role], next) != 0) goto out;
  /* every key of root N, and (for the root role) every new root key */
  const tuf_key *signers[2 * REPO_KEYS_MAX];
  size_t nsigners = 0;
  const repo_keyset *old_root = role == REPO_ROLE_ROOT ? &old : &ks[REPO_ROLE_ROOT];
  for (size_t i = 0; i < old_root->n; i++)
    signers[nsigners++] = &old_root->keys[i];
  for (size_t i = 0; role == REPO_ROLE_ROOT && i < ks[role].n; i++)
    signers[nsigners++] = &ks[role].keys[i];
  cJSON *s =
      repo_root_signed(kind, ks, version, expires ? expires : repo_default_expiry(REPO_ROLE_ROOT));
  if (!s || repo_write_signed(rdir, "root", s, signers, nsigners, NULL, NULL) != 0) goto out;
  int err = repo_mkdir_p(retired_dir, 0700);
  if (err != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", retired_dir, strerror(-err));
    goto out;
  }
  if (keyset_move(base, retired) != 0 || keyset_move(next, base) != 0 ||
      repo_thresholds_save(dir, kind, ks) != 0 || resign_role(dir, kind, role) != 0)
    goto out;
  if (keep_shape)
    printf("%s root rotated to version %ld: new %s root key %s (the old one, %s, signed it too "
           "and is kept as %s.key)\n",
           repo_kind_name(kind), version, tuf_key_type_name(type), ks[role].keys[0].id,
           old.keys[0].id, retired);
  else
    printf("%s %s: %zu new %s key(s), threshold %d, in root version %ld signed by the keys of "
           "root version %ld%s; the old keys are kept as %s*.key\n",
           repo_kind_name(kind), role_name, ks[role].n, tuf_key_type_name(type), threshold, version,
           version - 1, role == REPO_ROLE_ROOT ? " and the new ones" : "", retired);
  rc = 0;
out:
  repo_keys_free(ks);
  keyset_free(&old);
  cJSON_Delete(root);
  free(rdir);
  free(root_path);
  free(base);
  free(next);
  free(retired);
  free(retired_dir);
  repo_unlock(fd);
  return rc;
}

int repo_rotate_root(const char *dir, enum repo_kind kind, const enum tuf_key_type *type,
                     time_t expires) {
  return change_keys(dir, kind, REPO_ROLE_ROOT, 0, 0, type, expires, true);
}

int repo_set_keys(const char *dir, enum repo_kind kind, enum repo_role role, size_t nkeys,
                  int threshold, const enum tuf_key_type *type, time_t expires) {
  if (kind == REPO_DIRECTOR && role != REPO_ROLE_ROOT && role != REPO_ROLE_TARGETS) {
    fprintf(stderr, "ota-server: the director has no %s role\n", repo_role_name(role));
    return -1;
  }
  if (nkeys < 1 || nkeys > REPO_KEYS_MAX || threshold < 1 || (size_t)threshold > nkeys) {
    fprintf(stderr,
            "ota-server: set-keys: %zu key(s) with threshold %d: expected 1 to %d keys "
            "and a threshold of 1 to the number of keys\n",
            nkeys, threshold, REPO_KEYS_MAX);
    return -1;
  }
  return change_keys(dir, kind, role, nkeys, threshold, type, expires, false);
}

int repo_rotate_root_bad_chain(const char *dir, enum repo_kind kind, time_t expires) {
  int fd = repo_lock(dir);
  if (fd < 0) return -1;
  repo_keyset ks[4] = {{.n = 0}}, fresh = {.n = 0}, old = {.n = 0};
  char *rdir = repo_path(dir, kind, NULL), *root_path = repo_path(dir, kind, "root.json");
  cJSON *root = NULL;
  int rc = -1;
  if (!rdir || !root_path || repo_ensure_locked(dir, TUF_KEY_ED25519, true) != 0 ||
      repo_keys_load(dir, kind, ks) != 0 || !(root = repo_read_json(root_path, NULL)))
    goto out;
  long version = repo_version_of(root) + 1;
  if (keyset_generate(&fresh, ks[REPO_ROLE_ROOT].keys[0].type, 1) != 0) goto out;
  old = ks[REPO_ROLE_ROOT];
  ks[REPO_ROLE_ROOT] = fresh; /* listed and signing: the new key alone */
  fresh = (repo_keyset){0};
  cJSON *s =
      repo_root_signed(kind, ks, version, expires ? expires : repo_default_expiry(REPO_ROLE_ROOT));
  if (!s || repo_sign_write(rdir, "root", s, &ks[REPO_ROLE_ROOT], NULL, NULL, NULL) != 0) goto out;
  printf("%s root version %ld: a broken chain, signed only by a new root key (%s) that root "
         "version %ld does not list; the repository's keys are unchanged (`ota-server resign %s "
         "--repo %s --role root --version %ld` replaces it with a valid root)\n",
         repo_kind_name(kind), version, ks[REPO_ROLE_ROOT].keys[0].id, version - 1, dir,
         repo_kind_name(kind), version);
  rc = 0;
out:
  repo_keys_free(ks);
  keyset_free(&fresh);
  keyset_free(&old);
  cJSON_Delete(root);
  free(rdir);
  free(root_path);
  repo_unlock(fd);
  return rc;
}
