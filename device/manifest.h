/* manifest.h - the signed manifest a device PUTs to the director (manifest.c). */
#ifndef OTAD_DEVICE_MANIFEST_H
#define OTAD_DEVICE_MANIFEST_H

#include "device.h"

/* The signed manifest (with d->upd->result when pending) as JSON text (heap), or NULL with
 * eb filled when it cannot be signed. Bumps the report counter. Needs d->upd and the ECU
 * identity (device_ecu_identity). */
char *device_manifest(device *d, otad_errbuf *eb);

#endif
