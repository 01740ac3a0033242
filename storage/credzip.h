/* credzip.h - the fleet's credentials.zip, read with libarchive.
 *
 * A device needs two entries, matched by exact name: `autoprov.url` (the gateway URL)
 * and `autoprov_credentials.p12` (the shared provisioning key). After a successful
 * shared-credential provisioning the device rewrites its copy of the zip without the
 * fleet key (and treehub.json), atomically.
 */
#ifndef OTAD_CREDZIP_H
#define OTAD_CREDZIP_H

#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"

typedef struct credzip {
  char *url;    /* trimmed autoprov.url, heap; NULL if absent */
  uint8_t *p12; /* autoprov_credentials.p12 bytes, heap; NULL if absent */
  size_t p12_len;
  char *server_ca_pem; /* server_ca.pem if present (cert-provider), heap; else NULL */
} credzip;

/* Reads path. Returns 0; OTAD_ENOENT if the file is missing; OTAD_EZIP if it is not a
 * readable zip or lacks autoprov.url or autoprov_credentials.p12 (the entry is named in
 * eb). Entries larger than 1 MiB are refused as corrupt. */
int credzip_read(const char *path, credzip *out, otad_errbuf *eb);

/* Rewrites path without autoprov_credentials.p12 and treehub.json: temp file, fsync,
 * rename, fsync of the directory (atomic_write_file), keeping the file's mode; the other
 * entries keep their names, contents and metadata. Returns 0 without touching the file
 * when the p12 is already gone, or an error (OTAD_ENOENT, OTAD_EZIP, OTAD_EIO,
 * OTAD_ENOSPC); on error path is unchanged. */
int credzip_strip_fleet_key(const char *path, otad_errbuf *eb);

/* Frees what out holds (the p12 bytes zeroed first). */
void credzip_free(credzip *z);

#endif
