/* walk.h - one update cycle's metadata walk as an engine: it names the next document to
 * fetch, takes its bytes, and says what to trust, store and install. No I/O, no clock
 * (the caller passes "now"), no loop: the caller fetches, stores and journals.
 *
 * The order (docs/protocol.md, section 5): the director's root chain
 * ({N+1}.root.json until one is absent), its targets.json; when the director assigns the
 * primary ECU a target the caller does not have yet, the image repository's root chain,
 * timestamp.json, snapshot.json (when the timestamp names a version not trusted yet),
 * targets.json (the same, by the snapshot), and the delegations the target needs; then the
 * check of both repositories together before anything is downloaded.
 *
 *   uptane_walk_begin(&w, &director, &image, ecus, n, &target);
 *   for (;;) switch (uptane_walk_next(&w, now)) {
 *     case UPTANE_WALK_FETCH:    GET w.path from w.repo (at most w.cap bytes), then
 *                                uptane_walk_feed() (or _absent() on 404, _too_big());
 *                                on success store the bytes as w.doc, unless a delegation;
 *     case UPTANE_WALK_ASSIGNED: w.assigned names the director's target: the cycle ends if
 *                                the caller has it; else uptane_walk_into_image();
 *     case UPTANE_WALK_NO_UPDATE, UPTANE_WALK_UPDATE (*w.target), UPTANE_WALK_FAILED (w.err):
 *                                the cycle ends.
 *   }
 *
 * A document that fails verification leaves the trusted state as it was (uptane.h).
 */
#ifndef OTAD_UPTANE_WALK_H
#define OTAD_UPTANE_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "target.h"
#include "uptane.h"

/* The documents of a walk. */
#define UPTANE_WALK_DOCS(X)                                                                        \
  X(UPTANE_DOC_DIRECTOR_ROOT, "director root")                                                     \
  X(UPTANE_DOC_DIRECTOR_TARGETS, "director targets.json")                                          \
  X(UPTANE_DOC_IMAGE_ROOT, "image root")                                                           \
  X(UPTANE_DOC_IMAGE_TIMESTAMP, "image timestamp.json")                                            \
  X(UPTANE_DOC_IMAGE_SNAPSHOT, "image snapshot.json")                                              \
  X(UPTANE_DOC_IMAGE_TARGETS, "image targets.json")                                                \
  X(UPTANE_DOC_IMAGE_DELEGATION, "image delegation")

enum uptane_walk_doc {
#define UPTANE_DOC_ENUM(e, n) e,
  UPTANE_WALK_DOCS(UPTANE_DOC_ENUM)
#undef UPTANE_DOC_ENUM
      UPTANE_DOC__COUNT
};

/* "director root", "image snapshot.json", ...; "?" out of range. */
const char *uptane_walk_doc_name(enum uptane_walk_doc doc);

enum uptane_repo_kind { UPTANE_REPO_DIRECTOR, UPTANE_REPO_IMAGE };

typedef enum uptane_walk_verdict {
  UPTANE_WALK_FETCH,     /* fetch w.path from w.repo, then feed it */
  UPTANE_WALK_ASSIGNED,  /* the director assigns w.assigned (w.assigned_sha256) */
  UPTANE_WALK_NO_UPDATE, /* verified: the director assigns the primary ECU nothing */
  UPTANE_WALK_UPDATE,    /* verified, both repositories agree: install w.target */
  UPTANE_WALK_FAILED     /* a verification failed: w.err */
} uptane_walk_verdict;

typedef struct uptane_walk {
  /* Inputs (uptane_walk_begin): the trusted state, owned by the caller. */
  uptane_director *director;
  uptane_image *image;
  const uptane_ecu *ecus; /* ecus[0] is the primary */
  size_t necus;

  /* Outputs, read-only. */
  enum uptane_walk_doc doc;        /* FETCH: the document asked for; after a feed: the one taken */
  enum uptane_repo_kind repo;      /* FETCH: from which repository */
  char path[UPTANE_MAX_NAME + 32]; /* FETCH: "3.root.json", "targets.json", "delegations/x.json" */
  size_t cap;                      /* FETCH: the most bytes the document may have */
  const char *assigned;            /* ASSIGNED: the director's target for the primary, and */
  const char *assigned_sha256;     /*   its sha256 ("" none); both point into the director's
                                        trusted targets (valid until the next feed) */
  update_target *target;           /* UPDATE: what to download and install (the caller's, from
                                      begin) */
  uptane_err err;                  /* FAILED: why */

  /* Private. */
  int step;
  char need[UPTANE_MAX_NAME + 1];
} uptane_walk;

/* Starts a cycle over the caller's trusted state (nothing is fetched yet); an UPDATE
 * verdict fills *target. */
void uptane_walk_begin(uptane_walk *w, uptane_director *director, uptane_image *image,
                       const uptane_ecu *ecus, size_t necus, update_target *target);

/* What to do next (see the file comment); fills the outputs that go with the verdict. */
uptane_walk_verdict uptane_walk_next(uptane_walk *w, time_t now);

/* Takes the bytes of the document FETCH asked for. 0: verified and trusted (store it, then
 * call next); else the verdict is FAILED and w.err says why (nothing trusted changed). */
int uptane_walk_feed(uptane_walk *w, const char *json, size_t len, time_t now);

/* The document FETCH asked for does not exist (HTTP 404). True when that was allowed: the
 * end of a root chain with a trusted root; false (the caller treats the 404 as any failed
 * request) otherwise. */
bool uptane_walk_absent(uptane_walk *w);

/* The document was larger than w.cap: an attack, not a hiccup. Fills w.err (TOO_BIG). */
void uptane_walk_too_big(uptane_walk *w, const char *what);

/* After ASSIGNED, for a target the caller does not have yet: go on into the image
 * repository (whose trusted state the caller restored into w->image). */
void uptane_walk_into_image(uptane_walk *w);

#endif
