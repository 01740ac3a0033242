/* backends.c - the table of install backends and the few helpers they share. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../core/log.h"
#include "pacman.h"

static const pacman_backend *const backends[] = {&pacman_none, &pacman_archive, &pacman_command};

const pacman_backend *pacman_find(const char *type) {
  if (!type || !type[0]) return &pacman_none;
  for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
    if (strcmp(backends[i]->name, type) == 0) return backends[i];
  return NULL;
}

const char *pacman_names(void) {
  return "none, archive, command";
}

int pacman_start(const pacman_backend *b, pacman_job *job, otad_errbuf *eb) {
  if (b->check) {
    int rc = b->check(job->cfg, eb);
    if (rc) return rc;
  }
  return b->start(job, eb);
}

void pacman_log(const pacman_job *job, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_msgv(level, job->label, job->quiet, fmt, ap);
  va_end(ap);
}
