/* installing.h - the parts of installing.c beyond installing_start() (states.h): unpacking
 * an archive target safely, the names of what an installation records in the store, and
 * the installation a reboot completes.
 *
 * install_archive() is what `[pacman] type = "archive"` runs on the thread pool; it is
 * public so the unit tests can feed it hostile archives.
 */
#ifndef OTAD_INSTALLING_H
#define OTAD_INSTALLING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../device/device.h"

/* Store name of a target that was installed but needs a reboot to complete, in the JSON
 * form of STORE_INSTALLED_TARGET (store.h): {"name","sha256","sha512","length","version",
 * "correlation_id"}. */
#define STORE_PENDING_TARGET "pending_target"

/* The most entries an archive target may hold (many tiny files exhaust inodes). */
#define INSTALL_MAX_ENTRIES 100000

/* Unpacks the tar (plain, .gz, .xz, .zst) or zip file archive into dest_root/version and
 * points dest_root/current at it (a relative symlink, switched atomically: a temporary
 * link renamed over `current`). The tree is built under a temporary name first and only
 * renamed into place when complete; a version directory that exists already is replaced
 * atomically (renameat2 RENAME_EXCHANGE). The version `current` pointed to before is
 * kept for rollback; older versions are removed.
 *
 * Refused, with nothing left behind: absolute paths, `..` components, symlinks whose
 * target is absolute or leads out of the tree, hardlinks to anything but a regular file
 * extracted earlier from the same archive, entries below a symlink, device nodes, FIFOs
 * and sockets, more than INSTALL_MAX_ENTRIES entries, and more than max_bytes of content
 * in total (0 = 16 times the archive's size, at least 16 MiB). setuid/setgid/sticky bits
 * and owners are not restored.
 *
 * version must be a plain name ([A-Za-z0-9._+-], 1..64 characters, not starting with '.',
 * not "current"). Blocking (file I/O): run it off the loop. Returns 0, or -1 with the
 * reason in err. */
int install_archive(const char *archive, const char *dest_root, const char *version,
                    uint64_t max_bytes, char *err, size_t errlen);

/* True when name can be install_archive()'s version. */
int install_version_ok(const char *name);

/* True when a target waits in STORE_PENDING_TARGET for a reboot and the device has
 * rebooted since it was installed: the reboot sentinel ([bootloader] reboot_sentinel_dir/
 * need_reboot, on a tmpfs that a reboot empties) is gone; without a sentinel directory
 * every new run counts as a reboot. name gets the target's name. Reads the store only. */
bool device_reboot_completed(device *d, char *name, size_t n);

/* The action complete: records the pending target as installed (its result OK), queues
 * EcuInstallationCompleted and raises installed (or install_failed when the store
 * cannot record it). Needs d->upd. */
void installing_complete(device *d);

/* Runs [bootloader] reboot_command (through /bin/sh, not waited for) when it is set. */
void device_reboot(device *d);

#endif
