/* image.c - the image sinks (image.h): a `.part` file renamed into place once verified, and
 * a hash-only count for the fleet. */
#include "image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../core/log.h"
#include "fsutil.h"
#include "store.h"

/* ---- file ------------------------------------------------------------------------------- */

typedef struct file_sink {
  image_sink pub;
  char *dir;
  char label[40];
  int fd; /* the .part file, -1 when closed */
} file_sink;

static int errno_code(int e) {
  return e == ENOSPC || e == EDQUOT ? OTAD_ENOSPC : OTAD_EIO;
}

/* Removes .part files of other images (an abandoned assignment) from the directory. */
static void remove_stale_parts(file_sink *f, const char *keep) {
  DIR *dh = opendir(f->dir);
  if (!dh) return;
  const char *keep_base = strrchr(keep, '/') ? strrchr(keep, '/') + 1 : keep;
  struct dirent *e;
  while ((e = readdir(dh))) {
    size_t n = strlen(e->d_name);
    if (n <= 5 || strcmp(e->d_name + n - 5, ".part") != 0 || strcmp(e->d_name, keep_base) == 0)
      continue;
    if (unlinkat(dirfd(dh), e->d_name, 0) == 0)
      log_msg(LOG_INFO, f->label, "removed %s/%s, left by an earlier download", f->dir, e->d_name);
  }
  closedir(dh);
}

static void file_close(image_sink *s) {
  file_sink *f = (file_sink *)s;
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
}

/* Points the sink at base; a new image closes the old one's file and sweeps stale parts.
 * *same: base is the image the sink pointed at already. */
static int file_paths(file_sink *f, const char *base, bool *same, otad_errbuf *eb) {
  char *part = NULL, *fin = NULL;
  if (asprintf(&part, "%s/%s.part", f->dir, base) < 0) part = NULL;
  if (asprintf(&fin, "%s/%s", f->dir, base) < 0) fin = NULL;
  if (!part || !fin) {
    free(part);
    free(fin);
    return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  }
  *same = f->pub.part_path && strcmp(f->pub.part_path, part) == 0;
  if (*same) {
    free(part);
    free(fin);
    return 0;
  }
  file_close(&f->pub);
  free(f->pub.part_path);
  free(f->pub.path);
  f->pub.part_path = part;
  f->pub.path = fin;
  remove_stale_parts(f, part);
  return 0;
}

static int file_open(image_sink *s, const char *base, uint64_t length, image_held *held,
                     otad_errbuf *eb) {
  file_sink *f = (file_sink *)s;
  memset(held, 0, sizeof(*held));
  int e = fs_mkdir_p(f->dir, 0755, NULL);
  if (e)
    return otad_fail(eb, OTAD_EIO, "cannot create the images directory %s: %s", f->dir,
                     strerror(e));
  int rc = file_paths(f, base, &held->same, eb);
  if (rc) return rc;

  /* A complete image from an earlier run (renamed, then the agent stopped)? */
  struct stat st;
  if (lstat(s->path, &st) == 0) {
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size == length) {
      held->complete = true;
      return 0;
    }
    unlink(s->path);
  }
  if (f->fd < 0) {
    f->fd = open(s->part_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (f->fd < 0)
      return otad_fail(eb, OTAD_EIO, "cannot open %s: %s", s->part_path, strerror(errno));
  }
  if (fstat(f->fd, &st) != 0)
    return otad_fail(eb, OTAD_EIO, "%s: %s", s->part_path, strerror(errno));
  uint64_t size = (uint64_t)st.st_size;
  if (size > length) { /* not this image: start over */
    log_msg(LOG_WARN, f->label,
            "%s holds %" PRIu64 " bytes, more than the %" PRIu64 " declared; starting over",
            s->part_path, size, length);
    if (ftruncate(f->fd, 0) != 0)
      return otad_fail(eb, OTAD_EIO, "truncating %s: %s", s->part_path, strerror(errno));
    size = 0;
  }
  struct statvfs vfs; /* refuse early what cannot fit, as aktualizr does */
  uint64_t need = length - size;
  if (fstatvfs(f->fd, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < need)
    return otad_fail(eb, OTAD_ENOSPC,
                     "not enough space for %s: %" PRIu64 " bytes needed, %" PRIu64 " free",
                     s->part_path, need, (uint64_t)vfs.f_bavail * vfs.f_frsize);
  held->bytes = size;
  return 0;
}

static int file_write(image_sink *s, const uint8_t *data, size_t len, uint64_t at,
                      otad_errbuf *eb) {
  file_sink *f = (file_sink *)s;
  store_test_download(f->fd, data, len, at); /* crash tests: a no-op otherwise */
  for (size_t off = 0; off < len;) {
    ssize_t n = write(f->fd, data + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      return otad_fail(eb, errno_code(e), "writing %s: %s", s->part_path, strerror(e));
    }
    off += (size_t)n;
  }
  return 0;
}

static int file_restart(image_sink *s, otad_errbuf *eb) {
  file_sink *f = (file_sink *)s;
  if (f->fd >= 0 && ftruncate(f->fd, 0) != 0)
    return otad_fail(eb, OTAD_EIO, "truncating %s: %s", s->part_path, strerror(errno));
  return 0;
}

static int file_hash_held(image_sink *s, hash_ctx *h, uint64_t len, otad_errbuf *eb) {
  return hash_fd(h, ((file_sink *)s)->fd, len, eb);
}

static int file_hash_complete(image_sink *s, hash_ctx *h, uint64_t len, otad_errbuf *eb) {
  int fd = open(s->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return otad_fail(eb, OTAD_EIO, "%s: %s", s->path, strerror(errno));
  int rc = hash_fd(h, fd, len, eb);
  close(fd);
  return rc;
}

static int file_commit(image_sink *s, otad_errbuf *eb) {
  file_sink *f = (file_sink *)s;
  if (fsync(f->fd) != 0)
    return otad_fail(eb, errno_code(errno), "fsync %s: %s", s->part_path, strerror(errno));
  if (rename(s->part_path, s->path) != 0)
    return otad_fail(eb, OTAD_EIO, "renaming %s to %s: %s", s->part_path, s->path, strerror(errno));
  fs_fsync_dir_of(s->path);
  return 0;
}

static int file_discard(image_sink *s, bool complete, otad_errbuf *eb) {
  if (complete) {
    if (s->path && unlink(s->path) != 0 && errno != ENOENT)
      return otad_fail(eb, OTAD_EIO, "cannot remove %s: %s", s->path, strerror(errno));
    return 0;
  }
  file_close(s);
  if (s->part_path) unlink(s->part_path);
  return 0;
}

static void file_free(image_sink *s) {
  file_sink *f = (file_sink *)s;
  file_close(s);
  free(f->dir);
  free(s->path);
  free(s->part_path);
  free(f);
}

static const image_sink_ops file_ops = {
    "file",      file_open,    file_write, file_restart, file_hash_held, file_hash_complete,
    file_commit, file_discard, file_close, file_free};

image_sink *image_sink_file_new(const char *dir, const char *label) {
  file_sink *f = calloc(1, sizeof(*f));
  if (!f) return NULL;
  f->pub.ops = &file_ops;
  f->fd = -1;
  f->dir = strdup(dir);
  snprintf(f->label, sizeof(f->label), "%s", label ? label : "");
  if (!f->dir) {
    free(f);
    return NULL;
  }
  return &f->pub;
}

/* ---- hash-only -------------------------------------------------------------------------- */

typedef struct count_sink {
  image_sink pub;
  uint64_t bytes; /* "held": what went through since the last restart */
} count_sink;

static int count_open(image_sink *s, const char *base, uint64_t length, image_held *held,
                      otad_errbuf *eb) {
  count_sink *c = (count_sink *)s;
  char *path = NULL;
  if (asprintf(&path, "mem:%s", base) < 0) return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  memset(held, 0, sizeof(*held));
  held->same = s->path && strcmp(s->path, path) == 0;
  if (!held->same) c->bytes = 0; /* another image */
  free(s->path);
  s->path = path;
  held->bytes = c->bytes;
  return 0;
}

static int count_write(image_sink *s, const uint8_t *data, size_t len, uint64_t at,
                       otad_errbuf *eb) {
  ((count_sink *)s)->bytes = at + len;
  return 0;
}

static int count_restart(image_sink *s, otad_errbuf *eb) {
  ((count_sink *)s)->bytes = 0;
  return 0;
}

static int count_hash_complete(image_sink *s, hash_ctx *h, uint64_t len, otad_errbuf *eb) {
  return otad_fail(eb, OTAD_EINVAL, "a hash-only sink holds no image");
}

static int count_discard(image_sink *s, bool complete, otad_errbuf *eb) {
  ((count_sink *)s)->bytes = 0;
  return 0;
}

static void count_close(image_sink *s) {}

static void count_free(image_sink *s) {
  free(s->path);
  free(s);
}

static const image_sink_ops count_ops = {
    "hash-only",         count_open, count_write,   count_restart, NULL,
    count_hash_complete, NULL,       count_discard, count_close,   count_free};

image_sink *image_sink_hash_only_new(void) {
  count_sink *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->pub.ops = &count_ops;
  return &c->pub;
}
