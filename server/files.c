/* files.c - whole-file reads and atomic writes (temporary file, fsync, rename). */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int file_write(const char *path, const void *data, size_t len, mode_t mode) {
  char *tmp = NULL;
  if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) return -ENOMEM;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    int err = -errno;
    free(tmp);
    return err;
  }
  int err = 0;
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = -errno;
      break;
    }
    p += n;
    len -= (size_t)n;
  }
  if (err == 0 && fchmod(fd, mode) != 0) /* the umask may have narrowed or widened it */
    err = -errno;
  if (err == 0 && fsync(fd) != 0) err = -errno;
  if (close(fd) != 0 && err == 0) err = -errno;
  if (err == 0 && rename(tmp, path) != 0) err = -errno;
  if (err != 0) unlink(tmp);
  free(tmp);
  return err;
}

int file_read(const char *path, char **data, size_t *len) {
  FILE *f = fopen(path, "rbe");
  if (!f) return -errno;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  int err = 0;
  while (buf) {
    if (n + 1 >= cap) {
      char *grown = realloc(buf, cap * 2);
      if (!grown) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = grown;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) {
      if (ferror(f)) err = -EIO;
      break;
    }
  }
  fclose(f);
  if (!buf) return -ENOMEM;
  if (err) {
    free(buf);
    return err;
  }
  buf[n] = '\0';
  *data = buf;
  if (len) *len = n;
  return 0;
}

char *path_join(const char *dir, const char *name) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s", dir, name) < 0) return NULL;
  return p;
}
