/* status.h - a download as it stands on disk, for `otad status` (status.c). */
#ifndef OTAD_DEVICE_STATUS_H
#define OTAD_DEVICE_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/config.h"
#include "../storage/store.h"

typedef struct download_progress {
  char name[256];    /* the target */
  uint64_t received; /* bytes in its .part file (total when complete) */
  uint64_t total;    /* its length, as the verified metadata declares it */
  bool complete;     /* downloaded and renamed to its final name; not installed yet */
} download_progress;

/* The target the stored (verified) director targets assign to the primary ECU, when it is
 * neither installed nor waiting for a reboot, and how much of it is in the images
 * directory (the size of its .part file). Reads the store and the directory only: nothing
 * is written during a download to track it. False when there is none. */
bool device_download_progress(const otad_config *cfg, store *st, download_progress *out);

#endif
