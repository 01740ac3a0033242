/* none.c - `[pacman] type = "none"` (the default): records the target as installed and
 * touches nothing else. For simulation (the fleet's hash-only images have no file) and
 * tests. It ends at once: done() is called from inside start(). */
#include <stdio.h>

#include "pacman.h"

static int none_start(pacman_job *job, otad_errbuf *eb) {
  char desc[400];
  snprintf(desc, sizeof(desc), "installed %s ([pacman] type none: recorded only)",
           job->target->name);
  job->done(job, PACMAN_INSTALLED, desc);
  return 0;
}

const pacman_backend pacman_none = {"none", 0, NULL, none_start, NULL, NULL};
