/* uptane_internal.h - what the uptane_*.c files share and nothing else should call. */
#ifndef OTAD_UPTANE_INTERNAL_H
#define OTAD_UPTANE_INTERNAL_H

#include "uptane.h"

/* Fills err (kind + formatted words) and returns the kind's OTAD_E* code: OTAD_EPROTO for
 * MALFORMED, TOO_BIG and UNSUPPORTED, OTAD_EINVAL for MISSING (a step skipped),
 * OTAD_ENOMEM for NOMEM, OTAD_ECRYPTO for every other failed check. */
int uptane__fail(uptane_err *err, enum uptane_fail f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int uptane__nomem(uptane_err *err, const char *what);
int uptane__ok(uptane_err *err);

/* Case-sensitive member lookup (cJSON_GetObjectItem ignores case: "Signed" != "signed"). */
const cJSON *uptane__get(const cJSON *obj, const char *name);

/* v is a JSON integer in [min, 2^53]: stores it in *out and returns 1, else 0. */
int uptane__int(const cJSON *v, int64_t min, int64_t *out);

/* Parses one metadata document: at most cap bytes, one JSON object and nothing after it,
 * "signed" an object, "signatures" an array. */
int uptane__parse_doc(const char *json, size_t len, size_t cap, const char *what, cJSON **out,
                      uptane_err *err);

/* Checks signed._type (compared ignoring case, as aktualizr) and reads signed.version
 * (>= 1) and signed.expires. */
int uptane__signed_common(const cJSON *doc, const char *type, const char *what, int64_t *version,
                          int64_t *expires, uptane_err *err);

/* UPTANE_EXPIRED when now >= expires. */
int uptane__check_expiry(int64_t expires, time_t now, const char *what, uptane_err *err);

/* Checks a document against what its parent recorded of it (an object with "version" and
 * optional "length" and "hashes"): version equal, length equal to len, each sha256/sha512
 * hash equal to that of the raw bytes or of the canonical JSON of doc. */
int uptane__check_record(const cJSON *record, const char *json, size_t len, const cJSON *doc,
                         int64_t version, const char *what, uptane_err *err);

/* Parses a role's {"keyids":[...],"threshold":N} against ring. */
int uptane__role_keys_parse(const cJSON *role, const uptane_keyring *ring, uptane_role_keys *out,
                            const char *what, uptane_err *err);
void uptane__role_keys_free(uptane_role_keys *r);

/* 1 when two roles have the same threshold and the same set of key material. */
int uptane__role_keys_same(const uptane_keyring *ra, const uptane_role_keys *a,
                           const uptane_keyring *rb, const uptane_role_keys *b);

/* 1 when two keys are the same key material. */
int uptane__key_equal(const uptane_pubkey *a, const uptane_pubkey *b);

/* Checks the "targets" object of a targets document: each entry an object with a length
 * (integer >= 0) and a hashes object of strings; custom, when present, an object. */
int uptane__check_target_list(const cJSON *targets, const char *what, uptane_err *err);

/* uptane_root_load() and uptane_root_update() naming the repository in messages ("director
 * root.json: ..."); *changed gets a bit (1 << role) for each role whose keys or threshold
 * the rotation changed. */
int uptane__root_load(uptane_root *r, const char *json, size_t len, const char *repo,
                      uptane_err *err);
int uptane__root_update(uptane_root *r, const char *json, size_t len, const char *repo,
                        unsigned *changed, uptane_err *err);

void uptane__meta_free(uptane_meta *m);
/* Frees *dst and moves src into it. */
void uptane__meta_replace(uptane_meta *dst, uptane_meta *src);

#endif
