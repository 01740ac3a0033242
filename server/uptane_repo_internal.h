/* uptane_repo_internal.h - what uptane_repo.c shares with the files that extend it:
 * uptane_keyset.c (several keys per role, thresholds), uptane_delegation.c (delegated
 * targets roles) and uptane_attack.c (set-keys, signing that breaks the rules on purpose).
 * Not for the rest of the server: it uses uptane_repo.h.
 *
 * Key files: a role's keys are BASE.key, BASE.2.key, ... BASE.N.key where BASE is
 * DIR/uptane/KIND/keys/ROLE (or keys/delegations/NAME); the thresholds of the top-level
 * roles are in DIR/uptane/KIND/keys/thresholds.json ({"targets":2}; a role it does not
 * name has threshold 1); a delegated role's threshold is the one its parent lists.
 */
#ifndef OTA_SERVER_UPTANE_REPO_INTERNAL_H
#define OTA_SERVER_UPTANE_REPO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "tuf_key.h"
#include "uptane_repo.h"

#define REPO_THRESHOLDS_FILE "keys/thresholds.json"
#define REPO_DELEGATIONS_DIR "delegations"

/* The keys of one role and how many of them must sign. */
typedef struct repo_keyset {
  tuf_key keys[REPO_KEYS_MAX];
  size_t n;
  int threshold;
} repo_keyset;

/* ---- uptane_repo.c ---- */

/* DIR/uptane/KIND[/rest], malloc'd (NULL when out of memory). */
char *repo_path(const char *dir, enum repo_kind kind, const char *rest);

/* mkdir -p: 0 or -errno. */
int repo_mkdir_p(const char *path, mode_t mode);

/* Takes the repositories' lock: the fd to give to repo_unlock(), or -1 (message printed). */
int repo_lock(const char *dir);
void repo_unlock(int fd);

/* Makes whatever repository is missing; the caller holds the lock. */
int repo_ensure_locked(const char *dir, enum tuf_key_type type, bool verbose);

/* Parses a JSON file: the document, or NULL with a message, except for a file that does not
 * exist when `missing` is given (then *missing is set, silently). */
cJSON *repo_read_json(const char *path, bool *missing);

/* signed.version of a document, or 0; version of a "signed" object, or 0. */
long repo_version_of(const cJSON *doc);
long repo_version_of_signed(const cJSON *sig_obj);

/* Sets signed.version and signed.expires of a "signed" object: 0 or -1. */
int repo_stamp(cJSON *sig_obj, long version, time_t expires);

/* now + the default lifetime of role. */
time_t repo_default_expiry(enum repo_role role);

/* Signs sig_obj (owned) with keys (in that order; one may sign twice) and writes
 * RDIR/V.ROLE.json then RDIR/ROLE.json. *out (when not NULL): the document's bytes. */
int repo_write_signed(const char *rdir, const char *role, cJSON *sig_obj,
                      const tuf_key *const *keys, size_t nkeys, char **out, size_t *outlen);

/* Signs sig_obj (owned) with the keys of ks (as attack says, NULL: all of them) and writes
 * RDIR/V.ROLE.json then RDIR/ROLE.json. *out (when not NULL): the document's bytes. */
int repo_sign_write(const char *rdir, const char *role, cJSON *sig_obj, const repo_keyset *ks,
                    const repo_attack *attack, char **out, size_t *outlen);

/* The signed part of a root listing the keys and thresholds of ks[0..roles of kind). */
cJSON *repo_root_signed(enum repo_kind kind, const repo_keyset ks[4], long version, time_t expires);

/* Signs the image snapshot (next version) recording targets.json and every delegated role
 * reachable from it, as they are on disk, then the timestamp recording that snapshot.
 * expires 0: the defaults. */
int repo_sign_snapshot_timestamp(const char *rdir, const repo_keyset ks[4], time_t expires);

/* The image repository's current targets "signed" (new cJSON), or NULL with a message. */
cJSON *repo_image_targets_signed(const char *dir);

/* Signs a device's director targets (sig_obj owned) as attack says (NULL: normally). */
int repo_sign_device_targets(const char *dir, const char *uuid, cJSON *sig_obj,
                             const repo_attack *attack);

/* repo_resign() for a caller that holds the lock. */
int repo_resign_locked(const char *dir, enum repo_kind kind, enum repo_role role,
                       const char *delegation, const char *uuid, time_t expires, long version,
                       const repo_attack *attack);

/* 1 when uuid may name a device directory. */
int repo_uuid_valid(const char *uuid);

/* ---- uptane_keyset.c ---- */

/* Loads BASE.key, BASE.2.key, ... into *ks (threshold 1). 0, or -1 with a message (no
 * BASE.key). */
int keyset_load(const char *base, repo_keyset *ks);

/* Makes n new keys of type (threshold set by the caller). 0, or -1 with a message. */
int keyset_generate(repo_keyset *ks, enum tuf_key_type type, size_t n);

/* Writes the keys as BASE.key, BASE.2.key, ... (0600). 0, or -1 with a message. */
int keyset_save(const repo_keyset *ks, const char *base);

/* Moves BASE.key, BASE.2.key, ... to TO.key, TO.2.key, ... 0, or -1 with a message. */
int keyset_move(const char *base, const char *to);

void keyset_free(repo_keyset *ks);

/* The keys of every role of kind with their thresholds. 0, or -1 with a message. */
int repo_keys_load(const char *dir, enum repo_kind kind, repo_keyset ks[4]);
void repo_keys_free(repo_keyset ks[4]);

/* Records the thresholds of ks (every role of kind). 0, or -1 with a message. */
int repo_thresholds_save(const char *dir, enum repo_kind kind, const repo_keyset ks[4]);

/* Who signs a document of a role with keys ks as attack says: fills signers (room for
 * REPO_KEYS_MAX + 1) and *n; a wrong key is made into *fresh (free it). 0, or -1 with a
 * message naming what (e.g. "image targets.json"). */
int keyset_signers(const repo_keyset *ks, const repo_attack *attack, const char *what,
                   tuf_key *fresh, const tuf_key **signers, size_t *n);

/* ---- uptane_delegation.c ---- */

/* The image target named name (a duplicate, new cJSON), searched as clients do: the
 * top-level targets, then the delegations whose paths match, depth first, stopping after a
 * terminating one. NULL when there is none (message printed unless quiet) or on errors. */
cJSON *repo_image_target_lookup(const char *dir, const char *name, bool quiet);

/* The "signed" object of the delegated role name (new cJSON), or NULL with a message when
 * there is no such role; with target (not NULL), also NULL with a message when the role's
 * paths do not match that target name. */
cJSON *repo_delegation_signed(const char *dir, const char *name, const char *target);

/* Signs the delegated role's document (sig_obj owned, its version and expiry set) with its
 * keys as attack says (NULL: normally), then snapshot and timestamp with ks (next versions,
 * expiry chain_expires, 0: the defaults). */
int repo_delegation_sign(const char *dir, const char *name, cJSON *sig_obj,
                         const repo_attack *attack, const repo_keyset ks[4], time_t chain_expires);

/* The names of the delegated roles reachable from the image targets "signed" object ts,
 * in search order (a malloc'd array of malloc'd strings, *n of them). 0, or -1. */
int repo_delegation_names(const char *rdir, const cJSON *ts, char ***names, size_t *n);

#endif
