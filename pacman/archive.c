/* archive.c - `[pacman] type = "archive"`: unpacks a tar(.gz/.xz/.zst) or zip target into
 * images_path/installed/<version> on the thread pool and switches
 * images_path/installed/current to it (unpack.h says what is refused). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../storage/fsutil.h"
#include "pacman.h"
#include "unpack.h"

typedef struct archive_job {
  uv_work_t work;
  pacman_job *job;
  char *archive, *root;
  char version[72];
  int rc;
  char err[400];
} archive_job;

static void archive_work(uv_work_t *w) {
  archive_job *j = w->data;
  j->rc = install_archive(j->archive, j->root, j->version, 0, j->err, sizeof(j->err));
}

static void archive_job_free(archive_job *j) {
  free(j->archive);
  free(j->root);
  free(j);
}

static void archive_done(uv_work_t *w, int status) {
  archive_job *j = w->data;
  pacman_job *job = j->job;
  const char *name = job->target->name;
  char desc[600];
  enum pacman_outcome out = PACMAN_FAILED;
  if (status)
    snprintf(desc, sizeof(desc), "installing %s: %s", name, uv_strerror(status));
  else if (j->rc)
    snprintf(desc, sizeof(desc), "installing %s: %s", name, j->err);
  else {
    snprintf(desc, sizeof(desc), "installed %s: unpacked into %s/%s, now current", name, j->root,
             j->version);
    out = PACMAN_INSTALLED;
  }
  archive_job_free(j);
  job->done(job, out, desc);
}

/* The directory name of a target's tree: its version if that is a plain name, else the
 * first 16 hex digits of its hash. */
static void version_name(const update_target *t, char *out, size_t n) {
  if (install_version_ok(t->version))
    snprintf(out, n, "%s", t->version);
  else
    snprintf(out, n, "%.16s", t->sha256[0] ? t->sha256 : t->sha512[0] ? t->sha512 : "unknown");
}

/* images_path/installed. Heap. */
static char *installed_root(const otad_config *c) {
  char *images = storage_images_dir(c), *root = NULL;
  if (images && asprintf(&root, "%s/installed", images) < 0) root = NULL;
  free(images);
  return root;
}

static int archive_start(pacman_job *job, otad_errbuf *eb) {
  const update_target *t = job->target;
  archive_job *j = calloc(1, sizeof(*j));
  if (j) {
    j->job = job;
    j->archive = strdup(job->image_path);
    j->root = installed_root(job->cfg);
    j->work.data = j;
    version_name(t, j->version, sizeof(j->version));
  }
  if (!j || !j->archive || !j->root) {
    if (j) archive_job_free(j);
    return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  }
  pacman_log(job, LOG_INFO, "installing %s: unpacking %s into %s/%s", t->name, job->image_path,
             j->root, j->version);
  int rc = uv_queue_work(job->loop, &j->work, archive_work, archive_done);
  if (rc) {
    archive_job_free(j);
    return otad_fail(eb, OTAD_ENOMEM, "cannot queue work on the thread pool: %s", uv_strerror(rc));
  }
  return 0;
}

const pacman_backend pacman_archive = {"archive", PACMAN_NEEDS_FILE, NULL, archive_start, NULL,
                                       NULL};
