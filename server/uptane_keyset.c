/* uptane_keyset.c - the keys of a role: BASE.key, BASE.2.key, ... and the thresholds of a
 * repository's top-level roles (see uptane_repo_internal.h), and who signs a document
 * when a test asks for a broken signature.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "files.h"
#include "uptane_repo_internal.h"

static const char *const ROLE_KEYS[] = {"root", "targets", "snapshot", "timestamp"};

/* BASE.key for i 0, BASE.(i+1).key after; malloc'd. */
static char *key_file(const char *base, size_t i) {
  char *p = NULL;
  int rc = i == 0 ? asprintf(&p, "%s.key", base) : asprintf(&p, "%s.%zu.key", base, i + 1);
  return rc < 0 ? NULL : p;
}

void keyset_free(repo_keyset *ks) {
  for (size_t i = 0; i < REPO_KEYS_MAX; i++)
    tuf_key_free(&ks->keys[i]);
  ks->n = 0;
  ks->threshold = 0;
}

int keyset_load(const char *base, repo_keyset *ks) {
  *ks = (repo_keyset){.threshold = 1};
  for (size_t i = 0; i < REPO_KEYS_MAX; i++) {
    char *path = key_file(base, i);
    if (!path) {
      fprintf(stderr, "ota-server: out of memory\n");
      keyset_free(ks);
      return -1;
    }
    if (i > 0 && access(path, F_OK) != 0) { /* the keys end at the first gap */
      free(path);
      break;
    }
    int rc = tuf_key_load(path, &ks->keys[i]);
    if (rc < 0) {
      fprintf(stderr, "ota-server: %s: %s\n", path, gnutls_strerror(rc));
      free(path);
      keyset_free(ks);
      return -1;
    }
    free(path);
    ks->n++;
  }
  return 0;
}

int keyset_generate(repo_keyset *ks, enum tuf_key_type type, size_t n) {
  *ks = (repo_keyset){.threshold = 1};
  for (size_t i = 0; i < n && i < REPO_KEYS_MAX; i++) {
    int rc = tuf_key_generate(type, &ks->keys[i]);
    if (rc < 0) {
      fprintf(stderr, "ota-server: making a %s key: %s\n", tuf_key_type_name(type),
              gnutls_strerror(rc));
      keyset_free(ks);
      return -1;
    }
    ks->n++;
  }
  return 0;
}

int keyset_save(const repo_keyset *ks, const char *base) {
  for (size_t i = 0; i < ks->n; i++) {
    char *path = key_file(base, i);
    int rc = path ? tuf_key_save(&ks->keys[i], path) : GNUTLS_E_MEMORY_ERROR;
    if (rc < 0) {
      fprintf(stderr, "ota-server: %s: %s\n", path ? path : base, gnutls_strerror(rc));
      free(path);
      return -1;
    }
    free(path);
  }
  return 0;
}

int keyset_move(const char *base, const char *to) {
  for (size_t i = 0; i < REPO_KEYS_MAX; i++) {
    char *from = key_file(base, i), *dst = key_file(to, i);
    int rc = 0;
    if (!from || !dst)
      rc = -ENOMEM;
    else if (rename(from, dst) != 0)
      rc = -errno;
    if (rc == -ENOENT && i > 0) { /* no more keys */
      free(from);
      free(dst);
      return 0;
    }
    if (rc != 0) {
      fprintf(stderr, "ota-server: moving %s to %s: %s\n", from ? from : base, dst ? dst : to,
              strerror(-rc));
      free(from);
      free(dst);
      return -1;
    }
    free(from);
    free(dst);
  }
  return 0;
}

/* The thresholds of kind's top-level roles (new cJSON object; empty when there is no file),
 * or NULL with a message. */
static cJSON *thresholds_read(const char *dir, enum repo_kind kind) {
  char *path = repo_path(dir, kind, REPO_THRESHOLDS_FILE);
  bool missing = false;
  cJSON *doc = path ? repo_read_json(path, &missing) : NULL;
  if (!doc && missing) doc = cJSON_CreateObject();
  if (doc && !cJSON_IsObject(doc)) {
    fprintf(stderr, "ota-server: %s: not a JSON object\n", path);
    cJSON_Delete(doc);
    doc = NULL;
  }
  free(path);
  return doc;
}

int repo_keys_load(const char *dir, enum repo_kind kind, repo_keyset ks[4]) {
  for (int r = 0; r < 4; r++)
    ks[r] = (repo_keyset){0};
  cJSON *th = thresholds_read(dir, kind);
  if (!th) return -1;
  int roles = kind == REPO_DIRECTOR ? 2 : 4;
  for (int r = 0; r < roles; r++) {
    char rest[64];
    snprintf(rest, sizeof rest, "keys/%s", ROLE_KEYS[r]);
    char *base = repo_path(dir, kind, rest);
    if (!base || keyset_load(base, &ks[r]) != 0) {
      free(base);
      cJSON_Delete(th);
      repo_keys_free(ks);
      return -1;
    }
    free(base);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(th, ROLE_KEYS[r]);
    if (cJSON_IsNumber(t)) ks[r].threshold = (int)t->valuedouble;
    if (ks[r].threshold < 1 || (size_t)ks[r].threshold > ks[r].n) {
      fprintf(stderr,
              "ota-server: %s %s: threshold %d in keys/thresholds.json, but the role has %zu "
              "key(s)\n",
              repo_kind_name(kind), ROLE_KEYS[r], ks[r].threshold, ks[r].n);
      cJSON_Delete(th);
      repo_keys_free(ks);
      return -1;
    }
  }
  cJSON_Delete(th);
  return 0;
}

void repo_keys_free(repo_keyset ks[4]) {
  for (int r = 0; r < 4; r++)
    keyset_free(&ks[r]);
}

int repo_thresholds_save(const char *dir, enum repo_kind kind, const repo_keyset ks[4]) {
  cJSON *th = cJSON_CreateObject();
  int roles = kind == REPO_DIRECTOR ? 2 : 4;
  for (int r = 0; th && r < roles; r++)
    if (ks[r].threshold != 1 && !cJSON_AddNumberToObject(th, ROLE_KEYS[r], ks[r].threshold)) {
      cJSON_Delete(th);
      th = NULL;
    }
  char *path = repo_path(dir, kind, REPO_THRESHOLDS_FILE);
  char *text = th ? cJSON_PrintUnformatted(th) : NULL;
  int rc = path && text ? file_write(path, text, strlen(text), 0600) : -ENOMEM;
  if (rc != 0) fprintf(stderr, "ota-server: %s: %s\n", path ? path : dir, strerror(-rc));
  cJSON_Delete(th);
  free(text);
  free(path);
  return rc == 0 ? 0 : -1;
}

int keyset_signers(const repo_keyset *ks, const repo_attack *attack, const char *what,
                   tuf_key *fresh, const tuf_key **signers, size_t *n) {
  *n = 0;
  if (attack && attack->wrong_key) {
    enum tuf_key_type type = ks->n ? ks->keys[0].type : TUF_KEY_ED25519;
    int rc = tuf_key_generate(type, fresh);
    if (rc < 0) {
      fprintf(stderr, "ota-server: making a key for %s: %s\n", what, gnutls_strerror(rc));
      return -1;
    }
    signers[(*n)++] = fresh;
  } else {
    size_t want = attack && attack->sign_with >= 0 ? (size_t)attack->sign_with : ks->n;
    if (want > ks->n) {
      fprintf(stderr, "ota-server: %s: --sign-with %zu, but the role has %zu key(s)\n", what, want,
              ks->n);
      return -1;
    }
    for (size_t i = 0; i < want; i++)
      signers[(*n)++] = &ks->keys[i];
  }
  if (attack && attack->duplicate_signatures) {
    if (*n == 0) {
      fprintf(stderr,
              "ota-server: %s: --duplicate-signatures needs a signer (--sign-with 1 or "
              "more)\n",
              what);
      return -1;
    }
    signers[*n] = signers[0];
    (*n)++;
  }
  return 0;
}
