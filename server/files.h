/* files.h - whole-file reads and atomic writes with explicit modes.
 *
 * Fleet directories hold private keys, so every write names its mode (0600 for keys) and
 * goes through a temporary file and rename(), so a crash never leaves half a key behind.
 */
#ifndef OTA_SERVER_FILES_H
#define OTA_SERVER_FILES_H

#include <stddef.h>
#include <sys/types.h>

/* Writes data to path atomically with the given mode. Returns 0 or -errno. */
int file_write(const char *path, const void *data, size_t len, mode_t mode);

/* Reads a whole file into a malloc'd, NUL-terminated buffer (len excludes the NUL).
 * Returns 0 or -errno. */
int file_read(const char *path, char **data, size_t *len);

/* Joins dir and name into a malloc'd path, or NULL when out of memory. */
char *path_join(const char *dir, const char *name);

#endif
