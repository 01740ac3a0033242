/* reboot.h - an installation that a reboot completes: the sentinel that tells a reboot
 * from a restart, and [bootloader] reboot_command (reboot.c). */
#ifndef OTAD_DEVICE_REBOOT_H
#define OTAD_DEVICE_REBOOT_H

#include <stdbool.h>
#include <stddef.h>

#include "device.h"

/* True when a target waits in STORE_PENDING_TARGET for a reboot and the device has
 * rebooted since it was installed: the reboot sentinel ([bootloader] reboot_sentinel_dir/
 * need_reboot, on a tmpfs that a reboot empties) is gone; without a sentinel directory
 * every new run counts as a reboot. name gets the target's name. Reads the store only. */
bool device_reboot_completed(device *d, char *name, size_t n);

/* Writes the reboot sentinel ([bootloader] reboot_sentinel_dir/need_reboot), when set. */
void device_reboot_sentinel_write(device *d);

/* Runs [bootloader] reboot_command (through /bin/sh, not waited for) when it is set. */
void device_reboot(device *d);

#endif
