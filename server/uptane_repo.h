/* uptane_repo.h - the fleet's two Uptane repositories: the image repository and the director.
 *
 * Everything lives in files under DIR, so `serve` and the commands that change metadata
 * (add-target, assign, rotate-root, resign) can run at the same time; they take turns on
 * DIR/uptane/.lock (flock), and every file is replaced by rename(), so a reader always sees
 * a whole document:
 *
 *   DIR/targets/NAME                        the image files add-target copied
 *   DIR/uptane/image/keys/ROLE.key          root, targets, snapshot, timestamp (PKCS#8, 0600)
 *   DIR/uptane/image/ROLE.json              the current root, targets, snapshot, timestamp
 *   DIR/uptane/image/N.ROLE.json            every version ever signed (N.root.json: the chain)
 *   DIR/uptane/director/keys/ROLE.key       root, targets
 *   DIR/uptane/director/root.json, N.root.json
 *   DIR/uptane/director/devices/UUID/targets.json, N.targets.json   per device
 *   DIR/uptane/{image,director}/keys/retired/ROLE-vN.key   keys replaced by rotate-root or
 *                                           set-keys (N: the last root version listing them)
 *   DIR/uptane/KIND/keys/ROLE.2.key, ...    more keys of a role (set-keys), and
 *   DIR/uptane/KIND/keys/thresholds.json    thresholds other than 1
 *   DIR/uptane/image/delegations/NAME.json, N.NAME.json   delegated targets roles, with keys
 *                                           in DIR/uptane/image/keys/delegations/NAME.key
 *
 * Documents are written as canonical JSON, so hashes and lengths that a parent records hold
 * for the bytes served as well as for the canonical form aktualizr hashes. Keys and the
 * version 1 metadata are made on first use (repo_ensure()). Functions print what went wrong
 * to stderr and return -1.
 */
#ifndef OTA_SERVER_UPTANE_REPO_H
#define OTA_SERVER_UPTANE_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "tuf_key.h"

#define REPO_DIR "uptane"
#define REPO_TARGETS_DIR "targets"
#define REPO_NAME_MAX 255

/* Default lifetimes of what is signed (there is no online re-signing: `resign` renews). */
#define REPO_ROOT_DAYS 365
#define REPO_TARGETS_DAYS 365 /* image targets and director targets */
#define REPO_SNAPSHOT_DAYS 90
#define REPO_TIMESTAMP_DAYS 30

enum repo_kind { REPO_IMAGE, REPO_DIRECTOR };

enum repo_role { REPO_ROLE_ROOT, REPO_ROLE_TARGETS, REPO_ROLE_SNAPSHOT, REPO_ROLE_TIMESTAMP };

/* Most keys a role may have. */
#define REPO_KEYS_MAX 8

/* Metadata a correct client must refuse, for its tests: how a document is signed. */
typedef struct repo_attack {
  int sign_with;             /* -1: every key of the role signs; N >= 0: only the first N */
  bool duplicate_signatures; /* the first signer signs twice: the same key ID twice */
  bool wrong_key;            /* a new key that no root lists signs instead of the role's */
} repo_attack;

/* "image" / "director"; "root", "targets", "snapshot", "timestamp". */
const char *repo_kind_name(enum repo_kind k);
const char *repo_role_name(enum repo_role r);

/* Parses those names: 0, or -1. */
int repo_kind_parse(const char *s, enum repo_kind *out);
int repo_role_parse(const char *s, enum repo_role *out);

/* Parses an expiry: "YYYY-MM-DDTHH:MM:SSZ", or [+-]N followed by s, m, h, d or w relative to
 * now ("-1d" is a day ago). Returns 0, or -1. */
int repo_expiry_parse(const char *s, time_t *out);

/* 1 when name may name a target: 1 to 255 bytes, no control characters, no backslash, not
 * starting with '/', and no empty, "." or ".." component between slashes. */
int repo_target_name_valid(const char *name);

/* 1 when name may name a delegated role: 1 to 64 of A-Z a-z 0-9 _ -, starting with a letter
 * or digit, and not "root", "targets", "snapshot" or "timestamp". */
int repo_delegation_name_valid(const char *name);

/* Makes the keys and version 1 metadata of each repository that has none yet, with new keys
 * of type `type` (an image repository starts with empty targets). Quiet unless it makes
 * something (then one line per repository on stdout when verbose). */
int repo_ensure(const char *dir, enum tuf_key_type type, bool verbose);

/* What add-target adds. */
typedef struct repo_target_spec {
  const char *file;    /* copied to DIR/targets/NAME (unless it is that file) */
  const char *name;    /* repo_target_name_valid() */
  const char *version; /* custom.version */
  const char *const *hwids;
  size_t nhwids;
  const char *format;     /* custom.targetFormat: BINARY or OSTREE */
  const char *uri;        /* custom.uri, or NULL */
  const char *delegation; /* a delegated role to put it in (its paths must match the name),
                             or NULL for the top-level targets */
} repo_target_spec;

/* Adds (or replaces) a target in the image repository and re-signs targets (or the
 * delegated role), snapshot and timestamp with the next versions. expires 0: the
 * defaults. Prints the target on stdout. */
int repo_add_target(const char *dir, const repo_target_spec *t, time_t expires);

/* One device's assignment. */
typedef struct repo_assignment {
  const char *uuid;           /* the device */
  const char *ecu_serial;     /* its primary ECU */
  const char *hwid;           /* that ECU's hardware ID */
  const char *target;         /* a target of the image repository */
  const char *correlation_id; /* signed.custom.correlationId */
  bool force;                 /* even when the image target does not list hwid */
} repo_assignment;

/* 1 when the image repository has a target called name (in its targets or, as clients
 * search, in a delegated role), 0 when not (message printed), -1 on errors. */
int repo_has_target(const char *dir, const char *name);

#define REPO_HWID_MISMATCH 1 /* repo_assign(): the target is not for the ECU's hardware */

/* Signs the device's director targets.json (next version) naming the target for its primary
 * ECU, with the image repository's length and hashes. expires 0: the default. Returns 0,
 * REPO_HWID_MISMATCH (nothing signed, nothing printed) unless a->force, or -1. */
int repo_assign(const char *dir, const repo_assignment *a, time_t expires);

/* New root keys (as many as now, of type *type, or of the old first key's type when type is
 * NULL) and root version N+1, signed by the old and the new root keys; the other keys stay.
 * The old keys move to keys/retired/root-vN.key (root-vN.2.key, ...). expires 0: the
 * default. */
int repo_rotate_root(const char *dir, enum repo_kind kind, const enum tuf_key_type *type,
                     time_t expires);

/* Signs a role's current content again with the given expiry (0: the default) and version
 * (0: the next one): for renewals and for making expired or rolled-back metadata in tests.
 * Image targets (and a delegated role: delegation, image only; role is then ignored)
 * cascade to snapshot and timestamp, snapshot to timestamp (next versions, default
 * expiries, signed normally), so the repository stays consistent. Director targets need
 * uuid. attack (NULL: none) says how the role's document itself is signed. */
int repo_resign(const char *dir, enum repo_kind kind, enum repo_role role, const char *delegation,
                const char *uuid, time_t expires, long version, const repo_attack *attack);

/* Gives role nkeys new keys (of *type, or the type of its current first key) of which
 * threshold must sign, in root version N+1 signed by the keys of root N and, for the root
 * role, by the new ones; the old keys move to keys/retired/ROLE-vN[.I].key. Then signs the
 * role's metadata with the new keys: image targets (with snapshot and timestamp), snapshot
 * (with timestamp), timestamp, or every device's director targets (next versions). */
int repo_set_keys(const char *dir, enum repo_kind kind, enum repo_role role, size_t nkeys,
                  int threshold, const enum tuf_key_type *type, time_t expires);

/* The broken-chain attack: root version N+1 listing a new root key (the other roles keep
 * theirs) signed by that new key only, not by the keys of root N. The repository's keys do
 * not change; `resign --role root --version N+1` replaces it with a valid root. */
int repo_rotate_root_bad_chain(const char *dir, enum repo_kind kind, time_t expires);

/* A delegated targets role of the image repository. */
typedef struct repo_delegation_spec {
  const char *name;         /* repo_delegation_name_valid() */
  const char *parent;       /* the delegated role that delegates to it, or NULL: the targets */
  const char *const *paths; /* patterns of the target names it may sign (none: "*") */
  size_t npaths;
  bool terminating;
  size_t nkeys;  /* new keys (0: 1, or the current ones when it exists) */
  int threshold; /* (0: 1, or the current one) */
  enum tuf_key_type type;
} repo_delegation_spec;

/* Adds the delegated role to its parent (or updates its paths, terminating flag and, with
 * nkeys, its keys), signing the parent, the role's document (version 1 with no targets
 * when new, else the next version), snapshot and timestamp. expires 0: the defaults. */
int repo_delegate(const char *dir, const repo_delegation_spec *d, time_t expires);

/* ---- for serve ---- */

/* Reads a metadata file of a repository: "root.json", "N.root.json", and for the image
 * repository "timestamp.json", "snapshot.json", "targets.json", "N.ROLE.json" and
 * "delegations/NAME.json". 0 with a malloc'd *data, -ENOENT when there is no such file (or
 * the name is not one of these), another -errno on errors. */
int repo_read(const char *dir, enum repo_kind kind, const char *file, char **data, size_t *len);

/* A device's director targets.json, or "N.targets.json" (file) of its history. The first
 * request for targets.json of a device without one signs an empty one (version 1). 0 with
 * a malloc'd *data, -ENOENT, or another negative number on errors. */
int repo_director_targets(const char *dir, const char *uuid, const char *file, char **data,
                          size_t *len);

/* The device's report for correlation_id finished its assignment: when its director targets
 * carry that correlation ID and name targets, signs the next version with no targets.
 * Returns 1 when it did, 0 when there was nothing to finish, -1 on errors. */
int repo_director_complete(const char *dir, const char *uuid, const char *correlation_id);

/* The image target named name: opens its file (O_RDONLY) into *fd with its length, or
 * returns -ENOENT when the image repository has no such target or file. */
int repo_target_open(const char *dir, const char *name, int *fd, unsigned long long *size);

/* The signed part of a device's current director targets (new cJSON), or NULL if none. */
cJSON *repo_director_signed(const char *dir, const char *uuid);

#endif
