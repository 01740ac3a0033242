/* fsutil.h - the small file-system helpers every writer of the tree shares: directories
 * made on demand, a directory's fsync after a rename, a tree removed without following
 * symlinks. Blocking calls: the loop runs them only where the cost is a few syscalls. */
#ifndef OTAD_FSUTIL_H
#define OTAD_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../core/config.h"
#include "../core/error.h"

/* mkdir -p: missing parents 0755, path itself leaf_mode; existing directories are left as
 * they are. Returns 0, or the errno of the step that failed (ENOTDIR when path exists and
 * is no directory) with eb (may be NULL) saying "creating DIR: why". */
int fs_mkdir_p(const char *path, mode_t leaf_mode, otad_errbuf *eb);

/* fsyncs the directory holding path (after a rename into it); errors are ignored. */
void fs_fsync_dir_of(const char *path);

/* rm -rf path, never following a symlink; read-only directories are opened up first. */
void fs_rm_tree(const char *path);

/* The images directory: [pacman] images_path, else <[storage] path>/images (aktualizr:
 * /var/sota/images), without a trailing '/'. Heap; NULL when out of memory. */
char *storage_images_dir(const otad_config *c);

/* The file name of an image in that directory: its sha256 (or sha512), else its name made
 * safe ([A-Za-z0-9._-], no leading '.'). The `.part` file adds ".part". */
void storage_image_base(const char *name, const char *sha256, const char *sha512, char *out,
                        size_t n);

#endif
