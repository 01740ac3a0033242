/* uptane.h - Uptane metadata verification for both repositories (docs/protocol.md,
 * section 5).
 *
 * Pure code over documents the caller fetched: no I/O, no network, no clock (every check
 * of expiry takes the caller's "now"), no globals. Trusted state lives in caller-owned
 * structs, one per repository (uptane_director, uptane_image). Each update function
 * verifies one downloaded document completely and only then replaces the trusted copy, so
 * a failed verification leaves the trusted state exactly as it was.
 *
 * Storage is the caller's business: it persists the raw bytes of every document an update
 * function accepted (and every root of the chain) and, after a restart, loads the latest
 * root with uptane_*_root() and the others with uptane_*_restore(), which check
 * signatures but neither expiry nor the links between documents (those are rechecked by
 * uptane_director_check(), uptane_image_check() and uptane_verify_update()).
 *
 * One cycle (docs/protocol.md, section 5; uptane/walk.h walks it): director root chain
 * (uptane_director_root() for 1.root.json or a stored root, then for each {N+1}.root.json
 * until 404), uptane_root_check_expiry(), uptane_director_targets(); if it lists targets, the image
 * repository the same way: root chain, uptane_image_timestamp(), uptane_image_snapshot() when
 * uptane_image_snapshot_needed(), uptane_image_targets() when uptane_image_targets_needed(),
 * then uptane_image_find() for each director target, fetching the delegations it asks for
 * with uptane_image_delegation(); finally uptane_verify_update() before any download.
 *
 * Choices:
 * - Two signatures with the same keyid make the whole document invalid
 *   (UPTANE_DUPLICATE_SIGNATURE), as in aktualizr: docs/protocol.md (section 5) says to
 *   reject them, and a correct server never sends them. Two keyids naming the same key material
 * count once, so one key cannot meet a threshold of two. An unknown signature method is an error
 * too (UPTANE_UNSUPPORTED, as aktualizr); a signature by a key the role does not list is skipped
 * (it may be meant for another client).
 * - KeyIds are not recomputed from the keys: aktualizr does not either, OTA Connect and
 *   TUF compute them differently, and the signed root already binds each keyid to its key.
 * - Hashes and lengths a parent records match either the raw bytes (TUF) or the canonical
 *   JSON of the whole document (what aktualizr hashes); both pin the same content.
 * - A root rotation forgets the trusted metadata of each role whose keys or threshold
 *   changed (timestamp and snapshot together, targets with its delegations): TUF's
 *   recovery from a fast-forward attack signed with compromised keys.
 * - A document is expired when now >= expires ("YYYY-MM-DDTHH:MM:SS[.fff]Z", UTC).
 * - RSA keys must have 2048 to 8192 bits; RSASSA-PSS salt is 32 bytes (what OTA Connect
 *   and keys_sign() make), other salt lengths do not verify.
 *
 * Every failure returns OTAD_EPROTO (not metadata we understand), OTAD_ECRYPTO (metadata
 * we understand that does not verify), OTAD_EINVAL (the caller's mistake) or OTAD_ENOMEM,
 * and fills an uptane_err: the kind, and a sentence naming the document, e.g.
 * "image targets.json: version 3 is lower than trusted version 4 (rollback)".
 */
#ifndef OTAD_UPTANE_H
#define OTAD_UPTANE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "../core/error.h"

/* Size caps for each metadata fetch (enforced by the fetch layer, checked again here). */
#define UPTANE_MAX_ROOT_SIZE (64 * 1024)
#define UPTANE_MAX_TIMESTAMP_SIZE (64 * 1024)
#define UPTANE_MAX_SNAPSHOT_SIZE (64 * 1024) /* unless the timestamp states the length */
#define UPTANE_MAX_DIRECTOR_TARGETS_SIZE (64 * 1024)
#define UPTANE_MAX_IMAGE_TARGETS_SIZE (8 * 1024 * 1024) /* unless the snapshot states it */

/* Longest delegated role name (it becomes a path: delegations/<name>.json). */
#define UPTANE_MAX_NAME 128

/* Why a verification failed. */
#define UPTANE_FAILS(X)                                                                            \
  X(UPTANE_OK, "ok")                                                                               \
  X(UPTANE_MALFORMED, "malformed metadata") /* not JSON, missing field, bad _type */               \
  X(UPTANE_TOO_BIG, "metadata larger than allowed")                                                \
  X(UPTANE_UNSUPPORTED, "unsupported key type or signature method")                                \
  X(UPTANE_BAD_SIGNATURE, "signature does not verify") /* and the threshold was not met */         \
  X(UPTANE_THRESHOLD, "too few signatures")            /* none failed: too few were there */       \
  X(UPTANE_DUPLICATE_SIGNATURE, "two signatures with the same key ID")                             \
  X(UPTANE_EXPIRED, "metadata expired")                                                            \
  X(UPTANE_ROLLBACK, "version lower than trusted (rollback)")                                      \
  X(UPTANE_VERSION_MISMATCH, "version differs from the one recorded")                              \
  X(UPTANE_HASH_MISMATCH, "hash or length differs from the one recorded")                          \
  X(UPTANE_MISSING, "required metadata not verified yet")                                          \
  X(UPTANE_UNKNOWN_ECU, "target for an unknown ECU")                                               \
  X(UPTANE_HWID_MISMATCH, "hardware ID mismatch")                                                  \
  X(UPTANE_DUPLICATE_ECU, "ECU named by two targets")                                              \
  X(UPTANE_TARGET_MISMATCH, "director and image targets differ")                                   \
  X(UPTANE_NO_TARGET, "no such target in the image repository")                                    \
  X(UPTANE_NOMEM, "out of memory")

enum uptane_fail {
#define UPTANE_FAIL_ENUM(name, text) name,
  UPTANE_FAILS(UPTANE_FAIL_ENUM)
#undef UPTANE_FAIL_ENUM
};

/* Symbolic name ("UPTANE_ROLLBACK") and words for a failure kind; never NULL. */
const char *uptane_fail_name(enum uptane_fail f);
const char *uptane_fail_text(enum uptane_fail f);

/* What went wrong: set by every function that can fail (fail = UPTANE_OK on success). */
typedef struct uptane_err {
  enum uptane_fail fail;
  otad_errbuf eb;
} uptane_err;

/* The four top-level roles a root delegates to. */
enum uptane_role {
  UPTANE_ROLE_ROOT,
  UPTANE_ROLE_TARGETS,
  UPTANE_ROLE_SNAPSHOT,
  UPTANE_ROLE_TIMESTAMP,
  UPTANE_ROLE__COUNT
};

/* "root", "targets", "snapshot", "timestamp". */
const char *uptane_role_name(enum uptane_role r);

/* A public key from metadata. */
enum uptane_keytype { UPTANE_KEY_ED25519, UPTANE_KEY_RSA };
typedef struct uptane_pubkey {
  char keyid[65];
  enum uptane_keytype type;
  uint8_t ed25519[32]; /* ED25519: the raw public key */
  uint8_t *der;        /* RSA: SubjectPublicKeyInfo DER (heap), at least 2048 bits */
  size_t der_len;
} uptane_pubkey;

/* Keys, and which of them sign for a role with what threshold. */
typedef struct uptane_keyring {
  uptane_pubkey *keys;
  size_t n;
} uptane_keyring;
typedef struct uptane_role_keys {
  size_t *idx; /* indexes into the keyring (keyids that name no key are left out) */
  size_t n;
  int threshold; /* 0: the root does not define this role */
} uptane_role_keys;

/* A trusted root. version 0 = none yet. */
typedef struct uptane_root {
  int64_t version;
  int64_t expires; /* seconds since the epoch, UTC */
  uptane_keyring keys;
  uptane_role_keys roles[UPTANE_ROLE__COUNT];
} uptane_root;

/* One trusted non-root document: the whole parsed JSON ({"signatures","signed"}), its
 * signed.version and signed.expires. doc NULL = none. */
typedef struct uptane_meta {
  cJSON *doc;
  int64_t version;
  int64_t expires;
} uptane_meta;

/* An ECU of this device, as the caller knows it. */
typedef struct uptane_ecu {
  const char *serial;
  const char *hwid;
} uptane_ecu;

/* ---- time ---- */

/* Parses "YYYY-MM-DDTHH:MM:SSZ" (optionally with a fraction of a second before the Z) as
 * UTC into *out. Returns 0 or OTAD_EINVAL. */
int uptane_parse_time(const char *s, int64_t *out);

/* ---- roots and signatures ---- */

/* Zeroes r (no trusted root). */
void uptane_root_init(uptane_root *r);
void uptane_root_free(uptane_root *r);

/* Trusts json as the root, replacing *r: for the first root (shipped, or fetched on first
 * use as aktualizr does) or the latest stored one. It must be signed by a threshold of its
 * own root keys; expiry is not checked (uptane_root_check_expiry()). On failure *r is
 * unchanged. */
int uptane_root_load(uptane_root *r, const char *json, size_t len, uptane_err *err);

/* Rotates *r to json, which must be version r->version + 1 and signed by a threshold of
 * the keys of the old root and by a threshold of its own. Expiry of the roots of a chain
 * is not checked, only that of the last one (uptane_root_check_expiry()). On failure *r
 * is unchanged. */
int uptane_root_update(uptane_root *r, const char *json, size_t len, uptane_err *err);

/* Fails with UPTANE_EXPIRED when now >= r->expires, UPTANE_MISSING without a root. */
int uptane_root_check_expiry(const uptane_root *r, time_t now, uptane_err *err);

/* Verifies that meta ({"signatures":[...],"signed":{...}}) carries valid signatures of a
 * threshold of distinct keys the root authorises for role, over the canonical JSON of
 * "signed". what names the document in messages ("image snapshot.json"). Methods
 * ed25519, rsassa-pss and rsassa-pss-sha256 (SHA-256, MGF1-SHA-256, salt 32 bytes). */
int uptane_verify_signed(const cJSON *meta, const uptane_root *root, enum uptane_role role,
                         const char *what, uptane_err *err);

/* The same against any keyring and role (delegations). */
int uptane_verify_signatures(const cJSON *meta, const uptane_keyring *keys,
                             const uptane_role_keys *role, const char *what, uptane_err *err);

/* Parses a "keys" object ({keyid: {"keytype","keyval":{"public"}}}; keytype "ed25519"
 * (64 hex digits) or "rsa" (PEM), any case) into *out (heap; uptane_keyring_free()). */
int uptane_keyring_parse(const cJSON *keys, uptane_keyring *out, const char *what, uptane_err *err);
void uptane_keyring_free(uptane_keyring *k);

/* ---- the director repository ---- */

typedef struct uptane_director {
  uptane_root root;
  uptane_meta targets;
} uptane_director;

void uptane_director_init(uptane_director *d);
void uptane_director_free(uptane_director *d);

/* The next root of the chain: uptane_root_load() when there is no trusted root yet,
 * uptane_root_update() otherwise (then forgets targets if the targets keys changed). */
int uptane_director_root(uptane_director *d, const char *json, size_t len, uptane_err *err);

/* Verifies a fetched director targets.json and makes it the trusted one: signed by the
 * targets role, _type Targets, version >= the trusted one, not expired, no delegations,
 * each target with a length, a sha256 or sha512 hash and custom.ecuIdentifiers naming
 * ECUs of ecus[] (known serial, same hardware ID), no ECU named twice. */
int uptane_director_targets(uptane_director *d, const char *json, size_t len, time_t now,
                            const uptane_ecu *ecus, size_t necus, uptane_err *err);

/* Takes a stored director targets.json back as trusted (signature and form only). */
int uptane_director_restore(uptane_director *d, const char *json, size_t len, uptane_err *err);

/* Rechecks the trusted director state: root and targets present and not expired, the ECU
 * rules of uptane_director_targets(). */
int uptane_director_check(const uptane_director *d, time_t now, const uptane_ecu *ecus,
                          size_t necus, uptane_err *err);

/* signed.targets of the trusted director targets (an object: name -> target), or NULL. */
const cJSON *uptane_director_target_list(const uptane_director *d);

/* The target of a director targets list (signed.targets: name -> target) whose
 * custom.ecuIdentifiers name the ECU serial, or NULL; serial NULL: the first that names any
 * ECU. */
const cJSON *uptane_target_for_ecu(const cJSON *targets, const char *serial);

/* signed.custom.correlationId of the trusted director targets, or NULL. */
const char *uptane_director_correlation_id(const uptane_director *d);

/* ---- the image repository ---- */

typedef struct uptane_delegated {
  char name[UPTANE_MAX_NAME + 1];
  uptane_meta meta;
} uptane_delegated;

typedef struct uptane_image {
  uptane_root root;
  uptane_meta timestamp, snapshot, targets;
  uptane_delegated *delegations; /* delegated targets verified so far */
  size_t ndelegations;
} uptane_image;

void uptane_image_init(uptane_image *img);
void uptane_image_free(uptane_image *img);

/* The next root of the chain, as uptane_director_root(); a rotation forgets timestamp and
 * snapshot if either's keys changed, and targets and delegations if the targets keys did. */
int uptane_image_root(uptane_image *img, const char *json, size_t len, uptane_err *err);

/* timestamp.json: signed by the timestamp role, _type Timestamp, meta["snapshot.json"]
 * with a version, timestamp version >= the trusted one, snapshot version >= the one the
 * trusted timestamp recorded, not expired. */
int uptane_image_timestamp(uptane_image *img, const char *json, size_t len, time_t now,
                           uptane_err *err);

/* 1 when the trusted snapshot is not the version the trusted timestamp records. */
int uptane_image_snapshot_needed(const uptane_image *img);

/* snapshot.json: needs a trusted timestamp; version, length and hashes as it records;
 * signed by the snapshot role; not expired; meta["targets.json"] present; no version in
 * meta lower than in the trusted snapshot (entries may be dropped); version >= trusted. */
int uptane_image_snapshot(uptane_image *img, const char *json, size_t len, time_t now,
                          uptane_err *err);

/* 1 when the trusted targets are not the version the trusted snapshot records. */
int uptane_image_targets_needed(const uptane_image *img);

/* targets.json: needs a trusted snapshot; version, length and hashes as it records;
 * signed by the targets role; not expired; version >= trusted; well-formed targets and
 * delegations. A new version forgets the delegated metadata. */
int uptane_image_targets(uptane_image *img, const char *json, size_t len, time_t now,
                         uptane_err *err);

/* delegations/<name>.json: name must be delegated by the trusted targets or a trusted
 * delegation (the first in search order is the parent); signed by a threshold of the
 * parent's keys for it; _type Targets; version, length and hashes as the snapshot records
 * for "<name>.json"; version >= a trusted copy; not expired. */
int uptane_image_delegation(uptane_image *img, const char *name, const char *json, size_t len,
                            time_t now, uptane_err *err);

/* Takes a stored document back as trusted: role TIMESTAMP, SNAPSHOT or TARGETS with
 * delegation NULL, or TARGETS with the delegated role's name. Signature and form only. */
int uptane_image_restore(uptane_image *img, enum uptane_role role, const char *delegation,
                         const char *json, size_t len, uptane_err *err);

/* The size cap for fetching role (TARGETS with delegation NULL or a delegated name): the
 * length the timestamp or snapshot records, else the UPTANE_MAX_* default. */
size_t uptane_image_size_cap(const uptane_image *img, enum uptane_role role,
                             const char *delegation);

/* Rechecks the trusted image state: root, timestamp, snapshot and targets present and not
 * expired, snapshot and targets the versions their parents record. */
int uptane_image_check(const uptane_image *img, time_t now, uptane_err *err);

/* Looks a target up by name: in the targets, then depth-first through the delegations
 * whose paths (fnmatch patterns, `*` also matching `/`, as aktualizr) match the name,
 * stopping after a terminating one. Returns 0 with *target = the entry of the "targets"
 * object (->string is the name; valid until the document holding it is replaced or
 * freed); UPTANE_NEED_DELEGATION with need = a delegated role to
 * fetch (uptane_image_delegation()) and look again; or an error (UPTANE_NO_TARGET). Uses
 * only delegations of the version the snapshot records. */
#define UPTANE_NEED_DELEGATION 1
int uptane_image_find(const uptane_image *img, const char *name, const cJSON **target,
                      char need[UPTANE_MAX_NAME + 1], uptane_err *err);

/* ---- both ---- */

/* A director target and an image target are the same image: same name, same length, every
 * hash algorithm (sha256, sha512) both list equal and at least one in common, and every
 * hardware ID of the director's custom.ecuIdentifiers in the image's custom.hardwareIds. */
int uptane_target_match(const cJSON *director_target, const cJSON *image_target, uptane_err *err);

/* The check before any download: both repositories pass their checks and every director
 * target has a matching image target (all delegations it needs already verified). */
int uptane_verify_update(const uptane_director *d, const uptane_image *img, const uptane_ecu *ecus,
                         size_t necus, time_t now, uptane_err *err);

#endif
