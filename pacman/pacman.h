/* pacman.h - install backends behind one interface: [pacman] type names one.
 *
 * A backend starts an install and reports its outcome once through a callback; after a reboot it
 * says whether the pending target is what runs now; it says what it needs (a downloaded file, or
 * nothing because it fetches for itself) and whether an install may need a reboot. The installing
 * state drives every backend the same way, so adding one (OSTree, RAUC) is a new file here and a
 * row in backends.c, and never an edit of states/.
 *
 * Backends know no device: they get the loop, the configuration, the verified target and
 * the image path, and log under the caller's label.
 */
#ifndef OTAD_PACMAN_H
#define OTAD_PACMAN_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "../core/config.h"
#include "../core/error.h"
#include "../uptane/target.h"

/* How an install ended. */
enum pacman_outcome {
  PACMAN_INSTALLED,   /* done: the target runs (or is in place) now */
  PACMAN_NEED_REBOOT, /* in place; a reboot completes it (report NEED_COMPLETION) */
  PACMAN_FAILED       /* nothing changed that matters: report INSTALL_FAILED */
};

typedef struct pacman_job pacman_job;

/* Told once when an install ends; desc is the sentence for the report and the log. */
typedef void (*pacman_done_fn)(pacman_job *job, enum pacman_outcome outcome, const char *desc);

/* One install in flight; the caller owns it and keeps it alive until done() returns. */
struct pacman_job {
  /* Inputs, set before pacman_start(). */
  uv_loop_t *loop;
  const otad_config *cfg;
  const update_target *target;
  const char *image_path; /* the verified file (backends with PACMAN_NEEDS_FILE) */
  const char *label;      /* log prefix (the device's label) */
  bool quiet;             /* log warnings and errors only (the fleet) */
  pacman_done_fn done;
  void *data; /* the caller's */
  /* Private to the backend. */
  void *priv;
};

/* What a backend needs and may do. */
#define PACMAN_NEEDS_FILE 1u /* installs a file the agent downloaded and verified */
#define PACMAN_FETCHES 2u    /* fetches the target itself (OSTree): nothing is downloaded */
#define PACMAN_MAY_REBOOT 4u /* an install may need a reboot to complete */

typedef struct pacman_backend {
  const char *name; /* as [pacman] type spells it */
  unsigned caps;    /* PACMAN_* */
  /* Checks the configuration the backend needs, before any install. 0, or OTAD_ECONFIG
   * with eb saying which setting is missing or wrong. NULL: nothing to check. */
  int (*check)(const otad_config *cfg, otad_errbuf *eb);
  /* Starts installing job->target. 0: done() is called exactly once, later or (a backend
   * with nothing to wait for) before start returns. Else an error with eb saying why;
   * done() is not called. */
  int (*start)(pacman_job *job, otad_errbuf *eb);
  /* After a reboot: 0 when the pending target t is what runs now, else an error with eb
   * saying what booted instead. NULL: the reboot itself completes the install. */
  int (*complete)(const otad_config *cfg, const update_target *t, otad_errbuf *eb);
  /* Writes the name of what runs now to out. NULL: what the store records as installed.
   * No backend of today can tell more than the store; the first that can (OSTree: the
   * booted commit) brings the manifest's use of it. */
  int (*running)(const otad_config *cfg, char *out, size_t n, otad_errbuf *eb);
} pacman_backend;

/* The backend [pacman] type names (NULL or "" is "none"), or NULL when none has that name. */
const pacman_backend *pacman_find(const char *type);

/* The names of every backend, for messages: "none, archive, command". */
const char *pacman_names(void);

/* Starts job with backend b (see pacman_backend.start). */
int pacman_start(const pacman_backend *b, pacman_job *job, otad_errbuf *eb);

/* Logs for a backend under job->label (warnings and errors only when job->quiet). */
void pacman_log(const pacman_job *job, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The backends (one file each). */
extern const pacman_backend pacman_none;
extern const pacman_backend pacman_archive;
extern const pacman_backend pacman_command;

#endif
