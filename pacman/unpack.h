/* unpack.h - unpacking an archive target safely into a versioned tree (unpack.c): what
 * `[pacman] type = "archive"` runs on the thread pool. */
#ifndef OTAD_PACMAN_UNPACK_H
#define OTAD_PACMAN_UNPACK_H

#include <stddef.h>
#include <stdint.h>

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

#endif
