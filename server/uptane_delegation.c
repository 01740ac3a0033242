/* uptane_delegation.c - delegated targets roles of the image repository.
 *
 * A delegated role NAME is a Targets document at uptane/image/delegations/NAME.json (and
 * N.NAME.json for each version), signed by its own keys (keys/delegations/NAME*.key). Its
 * parent (the top-level targets, or another delegated role) lists it in
 * signed.delegations: {"keys":{keyid: key}, "roles":[{"name","keyids","threshold","paths",
 * "terminating"}]}; the snapshot records NAME.json beside targets.json. Target lookup
 * follows what clients do (TUF, aktualizr, otad): the top-level targets first, then depth
 * first through the roles whose paths (fnmatch patterns; a star also matches a slash)
 * match the name, in the order listed, stopping after a terminating role that matched.
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uptane_repo_internal.h"

#define MAX_DEPTH 8   /* as deep as clients follow (otad: 8) */
#define MAX_VISITS 32 /* roles visited in one search */
#define NAME_MAX_LEN 64

int repo_delegation_name_valid(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > NAME_MAX_LEN || !isalnum((unsigned char)name[0])) return 0;
  for (const char *p = name; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') return 0;
  return strcmp(name, "root") != 0 && strcmp(name, "targets") != 0 &&
         strcmp(name, "snapshot") != 0 && strcmp(name, "timestamp") != 0;
}

/* The delegated role's whole document (new cJSON), or NULL (message printed unless the file
 * is missing and missing is given). */
static cJSON *role_doc(const char *rdir, const char *name, bool *missing) {
  char *path = NULL;
  if (asprintf(&path, "%s/%s/%s.json", rdir, REPO_DELEGATIONS_DIR, name) < 0) return NULL;
  cJSON *doc = repo_read_json(path, missing);
  free(path);
  return doc;
}

static const cJSON *roles_of(const cJSON *sig_obj) {
  return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sig_obj, "delegations"),
                                          "roles");
}

static const char *role_name(const cJSON *role) {
  return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(role, "name"));
}

/* ---- the roles reachable from the targets ---- */

typedef struct name_list {
  char **v;
  size_t n;
} name_list;

static bool listed(const name_list *l, const char *name) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i], name) == 0) return true;
  return false;
}

static int collect(const char *rdir, const cJSON *sig_obj, int depth, name_list *l) {
  if (depth > MAX_DEPTH) return 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, roles_of(sig_obj)) {
    const char *name = role_name(r);
    if (!name || listed(l, name)) continue;
    char **grown = realloc(l->v, (l->n + 1) * sizeof *grown);
    char *copy = strdup(name);
    if (!grown || !copy) {
      free(copy);
      if (grown) l->v = grown;
      return -1;
    }
    l->v = grown;
    l->v[l->n++] = copy;
    cJSON *doc = role_doc(rdir, name, NULL);
    if (!doc) return -1;
    int rc = collect(rdir, cJSON_GetObjectItemCaseSensitive(doc, "signed"), depth + 1, l);
    cJSON_Delete(doc);
    if (rc != 0) return -1;
  }
  return 0;
}

int repo_delegation_names(const char *rdir, const cJSON *ts, char ***names, size_t *n) {
  name_list l = {0};
  int rc = collect(rdir, ts, 0, &l);
  if (rc != 0) {
    for (size_t i = 0; i < l.n; i++)
      free(l.v[i]);
    free(l.v);
    l = (name_list){0};
  }
  *names = l.v;
  *n = l.n;
  return rc;
}

/* ---- finding a role's entry ---- */

/* Where a role is delegated: the parent's name (NULL: the top-level targets) and its entry. */
typedef struct role_ref {
  char *parent; /* malloc'd, or NULL */
  cJSON *entry; /* a duplicate */
} role_ref;

static int find_in(const char *rdir, const cJSON *sig_obj, const char *parent, const char *name,
                   int depth, role_ref *out) {
  if (depth > MAX_DEPTH) return 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, roles_of(sig_obj)) {
    const char *rn = role_name(r);
    if (rn && strcmp(rn, name) == 0) {
      out->parent = parent ? strdup(parent) : NULL;
      out->entry = cJSON_Duplicate(r, 1);
      return out->entry && (!parent || out->parent) ? 1 : -1;
    }
  }
  cJSON_ArrayForEach(r, roles_of(sig_obj)) {
    const char *rn = role_name(r);
    cJSON *doc = rn ? role_doc(rdir, rn, NULL) : NULL;
    if (!doc) continue;
    int rc =
        find_in(rdir, cJSON_GetObjectItemCaseSensitive(doc, "signed"), rn, name, depth + 1, out);
    cJSON_Delete(doc);
    if (rc != 0) return rc;
  }
  return 0;
}

/* 1 with *out filled when some document delegates to name, 0 when none, -1 on errors. */
static int find_role(const char *dir, const char *name, role_ref *out) {
  *out = (role_ref){0};
  char *rdir = repo_path(dir, REPO_IMAGE, NULL);
  cJSON *ts = rdir ? repo_image_targets_signed(dir) : NULL;
  int rc = ts ? find_in(rdir, ts, NULL, name, 0, out) : -1;
  cJSON_Delete(ts);
  free(rdir);
  return rc;
}

static void role_ref_free(role_ref *r) {
  free(r->parent);
  cJSON_Delete(r->entry);
  *r = (role_ref){0};
}

static bool paths_match(const cJSON *entry, const char *target) {
  const cJSON *p;
  cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(entry, "paths")) {
    if (cJSON_IsString(p) && fnmatch(p->valuestring, target, 0) == 0) return true;
  }
  return false;
}

/* The paths of an entry as one string (comma-separated), malloc'd. */
static char *paths_text(const cJSON *entry) {
  size_t len = 1;
  const cJSON *p, *paths = cJSON_GetObjectItemCaseSensitive(entry, "paths");
  cJSON_ArrayForEach(p, paths) len += (cJSON_IsString(p) ? strlen(p->valuestring) : 0) + 2;
  char *out = calloc(1, len);
  cJSON_ArrayForEach(p, paths) {
    if (!out || !cJSON_IsString(p)) continue;
    if (*out) strcat(out, ", ");
    strcat(out, p->valuestring);
  }
  return out;
}

/* The keys of a delegated role, with the threshold its parent lists. */
static int role_keys(const char *dir, const char *name, const cJSON *entry, repo_keyset *ks) {
  char rest[NAME_MAX_LEN + 32];
  snprintf(rest, sizeof rest, "keys/%s/%s", REPO_DELEGATIONS_DIR, name);
  char *base = repo_path(dir, REPO_IMAGE, rest);
  int rc = base ? keyset_load(base, ks) : -1;
  free(base);
  if (rc != 0) return -1;
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(entry, "threshold");
  if (cJSON_IsNumber(t) && t->valuedouble >= 1) ks->threshold = (int)t->valuedouble;
  return 0;
}

cJSON *repo_delegation_signed(const char *dir, const char *name, const char *target) {
  role_ref ref;
  int found = find_role(dir, name, &ref);
  if (found != 1) {
    if (found == 0)
      fprintf(stderr,
              "ota-server: the image repository delegates to no role '%s' (ota-server "
              "uptane delegate first)\n",
              name);
    return NULL;
  }
  if (target && !paths_match(ref.entry, target)) {
    char *paths = paths_text(ref.entry);
    fprintf(stderr,
            "ota-server: target '%s' does not match the paths of delegated role '%s' (%s): "
            "clients would not look for it there\n",
            target, name, paths ? paths : "?");
    free(paths);
    role_ref_free(&ref);
    return NULL;
  }
  role_ref_free(&ref);
  char *rdir = repo_path(dir, REPO_IMAGE, NULL);
  cJSON *doc = rdir ? role_doc(rdir, name, NULL) : NULL;
  free(rdir);
  cJSON *s = doc ? cJSON_DetachItemFromObjectCaseSensitive(doc, "signed") : NULL;
  cJSON_Delete(doc);
  if (s && !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "targets"))) {
    fprintf(stderr, "ota-server: delegations/%s.json has no targets object\n", name);
    cJSON_Delete(s);
    s = NULL;
  }
  return s;
}

int repo_delegation_sign(const char *dir, const char *name, cJSON *sig_obj,
                         const repo_attack *attack, const repo_keyset ks[4], time_t chain_expires) {
  role_ref ref;
  repo_keyset rk = {.n = 0};
  char *rdir = repo_path(dir, REPO_IMAGE, NULL), *ddir = NULL;
  int rc = -1;
  if (find_role(dir, name, &ref) != 1) {
    fprintf(stderr, "ota-server: the image repository delegates to no role '%s'\n", name);
    cJSON_Delete(sig_obj);
    free(rdir);
    return -1;
  }
  if (!rdir || asprintf(&ddir, "%s/%s", rdir, REPO_DELEGATIONS_DIR) < 0 ||
      role_keys(dir, name, ref.entry, &rk) != 0) {
    cJSON_Delete(sig_obj);
    goto out;
  }
  rc = repo_sign_write(ddir, name, sig_obj, &rk, attack, NULL, NULL);
  if (rc == 0) rc = repo_sign_snapshot_timestamp(rdir, ks, chain_expires);
out:
  keyset_free(&rk);
  role_ref_free(&ref);
  free(rdir);
  free(ddir);
  return rc;
}

/* ---- target lookup ---- */

enum found { FOUND, CONTINUE, STOP };

static enum found search(const char *rdir, const cJSON *sig_obj, const char *name, int depth,
                         int *visits, cJSON **target) {
  if (depth > MAX_DEPTH || ++*visits > MAX_VISITS) return STOP;
  const cJSON *r;
  cJSON_ArrayForEach(r, roles_of(sig_obj)) {
    const char *rn = role_name(r);
    if (!rn || !paths_match(r, name)) continue;
    cJSON *doc = role_doc(rdir, rn, NULL);
    if (!doc) return STOP;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(doc, "signed");
    const cJSON *t =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "targets"), name);
    enum found f = CONTINUE;
    if (t) {
      *target = cJSON_Duplicate(t, 1);
      f = *target ? FOUND : STOP;
    } else {
      f = search(rdir, s, name, depth + 1, visits, target);
    }
    cJSON_Delete(doc);
    if (f != CONTINUE) return f;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "terminating"))) return STOP;
  }
  return CONTINUE;
}

cJSON *repo_image_target_lookup(const char *dir, const char *name, bool quiet) {
  char *rdir = repo_path(dir, REPO_IMAGE, NULL);
  cJSON *ts = rdir ? repo_image_targets_signed(dir) : NULL, *t = NULL;
  if (ts) {
    t = cJSON_DetachItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(ts, "targets"),
                                                name);
    int visits = 0;
    if (!t) search(rdir, ts, name, 0, &visits, &t);
    if (!t && !quiet)
      fprintf(stderr, "ota-server: the image repository has no target '%s' (add-target first)\n",
              name);
  }
  cJSON_Delete(ts);
  free(rdir);
  return t;
}

/* ---- delegate ---- */

/* Keeps in keys_obj only the keys some role of roles lists. */
static void prune_keys(cJSON *keys_obj, const cJSON *roles) {
  cJSON *k = keys_obj ? keys_obj->child : NULL;
  while (k) {
    cJSON *next = k->next;
    bool used = false;
    const cJSON *r, *id;
    cJSON_ArrayForEach(r, roles) {
      cJSON_ArrayForEach(id, cJSON_GetObjectItemCaseSensitive(r, "keyids")) {
        used |= cJSON_IsString(id) && strcmp(id->valuestring, k->string) == 0;
      }
    }
    if (!used) cJSON_Delete(cJSON_DetachItemViaPointer(keys_obj, k));
    k = next;
  }
}

/* Puts the role entry (owned) and its keys into the parent's signed object. */
static int set_entry(cJSON *parent_signed, cJSON *entry, const repo_keyset *rk) {
  cJSON *del = cJSON_GetObjectItemCaseSensitive(parent_signed, "delegations");
  if (!cJSON_IsObject(del)) {
    cJSON_DeleteItemFromObjectCaseSensitive(parent_signed, "delegations");
    del = cJSON_AddObjectToObject(parent_signed, "delegations");
  }
  cJSON *keys = del ? cJSON_GetObjectItemCaseSensitive(del, "keys") : NULL;
  if (del && !cJSON_IsObject(keys)) {
    cJSON_DeleteItemFromObjectCaseSensitive(del, "keys");
    keys = cJSON_AddObjectToObject(del, "keys");
  }
  cJSON *roles = del ? cJSON_GetObjectItemCaseSensitive(del, "roles") : NULL;
  if (del && !cJSON_IsArray(roles)) {
    cJSON_DeleteItemFromObjectCaseSensitive(del, "roles");
    roles = cJSON_AddArrayToObject(del, "roles");
  }
  if (!keys || !roles) {
    cJSON_Delete(entry);
    return -1;
  }
  for (size_t i = 0; i < rk->n; i++)
    if (!cJSON_GetObjectItemCaseSensitive(keys, rk->keys[i].id)) {
      cJSON *obj = tuf_key_object(&rk->keys[i]);
      if (!obj) {
        cJSON_Delete(entry);
        return -1;
      }
      cJSON_AddItemToObject(keys, rk->keys[i].id, obj);
    }
  int at = 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, roles) { /* replace in place: the order is the search order */
    const char *rn = role_name(r);
    if (rn && strcmp(rn, role_name(entry)) == 0) {
      cJSON_ReplaceItemInArray(roles, at, entry);
      prune_keys(keys, roles);
      return 0;
    }
    at++;
  }
  cJSON_AddItemToArray(roles, entry);
  return 0;
}

/* {"name","keyids","threshold","paths","terminating"} for d with keys rk; keeps old's paths
 * when d gives none. */
static cJSON *make_entry(const repo_delegation_spec *d, const repo_keyset *rk, const cJSON *old) {
  cJSON *e = cJSON_CreateObject(), *ids = NULL, *paths = NULL;
  if (!e || !cJSON_AddStringToObject(e, "name", d->name) ||
      !(ids = cJSON_AddArrayToObject(e, "keyids")) ||
      !cJSON_AddNumberToObject(e, "threshold", rk->threshold) ||
      !cJSON_AddBoolToObject(e, "terminating", d->terminating))
    goto fail;
  for (size_t i = 0; i < rk->n; i++)
    cJSON_AddItemToArray(ids, cJSON_CreateString(rk->keys[i].id));
  const cJSON *old_paths = cJSON_GetObjectItemCaseSensitive(old, "paths");
  if (d->npaths == 0 && cJSON_IsArray(old_paths)) {
    paths = cJSON_Duplicate(old_paths, 1);
  } else {
    paths = cJSON_CreateArray();
    for (size_t i = 0; paths && i < d->npaths; i++)
      cJSON_AddItemToArray(paths, cJSON_CreateString(d->paths[i]));
    if (paths && d->npaths == 0) cJSON_AddItemToArray(paths, cJSON_CreateString("*"));
  }
  if (!paths) goto fail;
  cJSON_AddItemToObject(e, "paths", paths);
  return e;
fail:
  cJSON_Delete(e);
  return NULL;
}

int repo_delegate(const char *dir, const repo_delegation_spec *d, time_t expires) {
  if (!repo_delegation_name_valid(d->name) ||
      (d->parent && !repo_delegation_name_valid(d->parent))) {
    fprintf(stderr,
            "ota-server: delegated role '%s': expected 1 to %d of A-Z a-z 0-9 _ -, "
            "starting with a letter or digit, not a top-level role's name\n",
            repo_delegation_name_valid(d->name) ? d->parent : d->name, NAME_MAX_LEN);
    return -1;
  }
  if (d->parent && strcmp(d->parent, d->name) == 0) {
    fprintf(stderr, "ota-server: a role cannot delegate to itself\n");
    return -1;
  }
  int fd = repo_lock(dir);
  if (fd < 0) return -1;
  repo_keyset ks[4] = {{.n = 0}}, rk = {.n = 0}, pk = {.n = 0};
  role_ref ref = {0}, pref = {0};
  char *rdir = repo_path(dir, REPO_IMAGE, NULL), *ddir = NULL, *base = NULL, *retired = NULL;
  cJSON *doc = NULL, *parent_signed = NULL, *role_signed = NULL;
  int rc = -1;
  if (!rdir || repo_ensure_locked(dir, d->type, true) != 0 ||
      repo_keys_load(dir, REPO_IMAGE, ks) != 0 ||
      asprintf(&ddir, "%s/%s", rdir, REPO_DELEGATIONS_DIR) < 0 ||
      asprintf(&base, "%s/keys/%s/%s", rdir, REPO_DELEGATIONS_DIR, d->name) < 0) {
    ddir = base = NULL;
    goto out;
  }
  int exists = find_role(dir, d->name, &ref);
  if (exists < 0) goto out;
  if (exists && !(ref.parent ? d->parent && strcmp(ref.parent, d->parent) == 0 : !d->parent)) {
    fprintf(stderr, "ota-server: role '%s' is delegated by %s already, not by %s\n", d->name,
            ref.parent ? ref.parent : "the targets", d->parent ? d->parent : "the targets");
    goto out;
  }
  if (d->parent && find_role(dir, d->parent, &pref) != 1) {
    fprintf(stderr, "ota-server: the image repository delegates to no role '%s' (the --parent)\n",
            d->parent);
    goto out;
  }
  int err = repo_mkdir_p(ddir, 0755);
  char *kdir = NULL;
  if (err == 0 && asprintf(&kdir, "%s/keys/%s", rdir, REPO_DELEGATIONS_DIR) >= 0) {
    err = repo_mkdir_p(kdir, 0700);
    free(kdir);
  }
  if (err != 0) {
    fprintf(stderr, "ota-server: %s: %s\n", ddir, strerror(-err));
    goto out;
  }
  /* the role's keys: new ones, or those it has */
  bool new_keys = !exists || d->nkeys > 0;
  size_t nkeys = d->nkeys ? d->nkeys : 1;
  if (new_keys) {
    int threshold = d->threshold ? d->threshold : 1;
    if (nkeys > REPO_KEYS_MAX || threshold < 1 || (size_t)threshold > nkeys) {
      fprintf(stderr,
              "ota-server: delegate: %zu key(s) with threshold %d: expected 1 to %d keys "
              "and a threshold of 1 to the number of keys\n",
              nkeys, threshold, REPO_KEYS_MAX);
      goto out;
    }
    if (keyset_generate(&rk, d->type, nkeys) != 0) goto out;
    rk.threshold = threshold;
  } else {
    if (role_keys(dir, d->name, ref.entry, &rk) != 0) goto out;
    if (d->threshold) {
      if ((size_t)d->threshold > rk.n) {
        fprintf(stderr, "ota-server: delegate: threshold %d, but role '%s' has %zu key(s)\n",
                d->threshold, d->name, rk.n);
        goto out;
      }
      rk.threshold = d->threshold;
    }
  }
  /* 1. the role's own document, signed by its keys */
  if (exists) {
    doc = role_doc(rdir, d->name, NULL);
    role_signed = doc ? cJSON_DetachItemFromObjectCaseSensitive(doc, "signed") : NULL;
    cJSON_Delete(doc);
    doc = NULL;
  } else {
    role_signed = cJSON_CreateObject();
    if (role_signed && (!cJSON_AddStringToObject(role_signed, "_type", "Targets") ||
                        !cJSON_AddObjectToObject(role_signed, "targets"))) {
      cJSON_Delete(role_signed);
      role_signed = NULL;
    }
  }
  long role_version = role_signed ? repo_version_of_signed(role_signed) + 1 : 0;
  if (!role_signed || repo_stamp(role_signed, role_version,
                                 expires ? expires : repo_default_expiry(REPO_ROLE_TARGETS)) != 0)
    goto out;
  if (new_keys && exists) {
    if (asprintf(&retired, "%s/keys/retired/delegation-%s-v%ld", rdir, d->name, role_version - 1) <
        0) {
      retired = NULL;
      goto out;
    }
    char *rd = repo_path(dir, REPO_IMAGE, "keys/retired");
    err = rd ? repo_mkdir_p(rd, 0700) : -ENOMEM;
    free(rd);
    if (err != 0 || keyset_move(base, retired) != 0) goto out;
  }
  if (new_keys && keyset_save(&rk, base) != 0) goto out;
  rc = repo_sign_write(ddir, d->name, role_signed, &rk, NULL, NULL, NULL);
  role_signed = NULL;
  if (rc != 0) goto out;
  rc = -1;
  /* 2. the parent, listing it */
  cJSON *entry = make_entry(d, &rk, ref.entry);
  if (d->parent) {
    doc = role_doc(rdir, d->parent, NULL);
    parent_signed = doc ? cJSON_DetachItemFromObjectCaseSensitive(doc, "signed") : NULL;
  } else {
    parent_signed = repo_image_targets_signed(dir);
  }
  long parent_version = parent_signed ? repo_version_of_signed(parent_signed) + 1 : 0;
  if (!entry || !parent_signed || set_entry(parent_signed, entry, &rk) != 0 ||
      repo_stamp(parent_signed, parent_version,
                 expires ? expires : repo_default_expiry(REPO_ROLE_TARGETS)) != 0) {
    if (!parent_signed) cJSON_Delete(entry);
    goto out;
  }
  if (d->parent) {
    if (role_keys(dir, d->parent, pref.entry, &pk) != 0) goto out;
    rc = repo_sign_write(ddir, d->parent, parent_signed, &pk, NULL, NULL, NULL);
  } else {
    rc = repo_sign_write(rdir, "targets", parent_signed, &ks[REPO_ROLE_TARGETS], NULL, NULL, NULL);
  }
  parent_signed = NULL;
  /* 3. snapshot (recording both) and timestamp */
  if (rc == 0) rc = repo_sign_snapshot_timestamp(rdir, ks, expires);
  if (rc == 0)
    printf("%s delegated role '%s' (delegations/%s.json version %ld, %zu %s key(s), threshold "
           "%d%s) in %s%s version %ld\n",
           exists ? "updated" : "added", d->name, d->name, role_version, rk.n,
           tuf_key_type_name(rk.keys[0].type), rk.threshold, d->terminating ? ", terminating" : "",
           d->parent ? "delegated role " : "image targets", d->parent ? d->parent : "",
           parent_version);
out:
  repo_keys_free(ks);
  keyset_free(&rk);
  keyset_free(&pk);
  role_ref_free(&ref);
  role_ref_free(&pref);
  cJSON_Delete(doc);
  cJSON_Delete(parent_signed);
  cJSON_Delete(role_signed);
  free(rdir);
  free(ddir);
  free(base);
  free(retired);
  repo_unlock(fd);
  return rc;
}
