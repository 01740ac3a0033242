/* target.h - one target as the verified metadata describe it, copied out of the documents
 * so it outlives them: what the download fetches, the package manager installs and the
 * report names. */
#ifndef OTAD_UPTANE_TARGET_H
#define OTAD_UPTANE_TARGET_H

#include <stdint.h>

/* The target the director assigned to the primary ECU, as verified. */
typedef struct update_target {
  char name[256];
  char sha256[65];  /* lower-case hex; "" if the metadata lists none */
  char sha512[129]; /* lower-case hex; "" if none */
  uint64_t length;
  char uri[1024];   /* custom.uri of the image target, "" = {repo}/targets/NAME */
  char format[16];  /* custom.targetFormat: BINARY / OSTREE, "" unknown */
  char version[64]; /* custom.version, "" unknown */
  char correlation_id[128];
} update_target;

#endif
