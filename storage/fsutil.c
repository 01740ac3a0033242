/* fsutil.c - mkdir -p, fsync of a parent directory, rm -rf (see fsutil.h). */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_mkdir_p(const char *path, mode_t leaf_mode, otad_errbuf *eb) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
    if (eb) otad_fail(eb, OTAD_EINVAL, "%s: path too long", path);
    return ENAMETOOLONG;
  }
  for (char *p = buf + 1;; p++) {
    if (*p && *p != '/') continue;
    char c = *p;
    *p = '\0';
    if (mkdir(buf, c ? 0755 : leaf_mode) < 0 && errno != EEXIST) {
      int e = errno;
      if (eb) otad_fail(eb, OTAD_EIO, "creating %s: %s", buf, strerror(e));
      return e;
    }
    *p = c;
    if (!c) break;
  }
  struct stat st;
  int e = stat(buf, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  if (e && eb) otad_fail(eb, OTAD_EIO, "creating %s: %s", buf, strerror(e));
  return e;
}

void fs_fsync_dir_of(const char *path) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash) return;
  *slash = 0;
  int fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  remove(path);
  return 0;
}

static int open_up_dir(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  if (flag == FTW_D || flag == FTW_DNR) chmod(path, 0700); /* a read-only dir from an archive */
  return 0;
}

void fs_rm_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    nftw(path, open_up_dir, 16, FTW_PHYS);
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  } else {
    unlink(path);
  }
}

char *storage_images_dir(const otad_config *c) {
  const char *base = c->images_path && c->images_path[0] ? c->images_path : NULL;
  const char *storage = c->storage_path ? c->storage_path : "/var/sota";
  size_t sl = strlen(storage);
  while (!base && sl > 0 && storage[sl - 1] == '/')
    sl--;
  char *dir = NULL;
  if (base ? asprintf(&dir, "%s", base) < 0 : asprintf(&dir, "%.*s/images", (int)sl, storage) < 0)
    return NULL;
  for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
    dir[n - 1] = 0;
  return dir;
}

void storage_image_base(const char *name, const char *sha256, const char *sha512, char *out,
                        size_t n) {
  if (sha256[0] || sha512[0]) {
    snprintf(out, n, "%s", sha256[0] ? sha256 : sha512);
    return;
  }
  size_t j = 0;
  for (const char *p = name; *p && j + 1 < n; p++) {
    char c = *p;
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || (c == '.' && j > 0);
    out[j++] = ok ? c : '_';
  }
  out[j] = 0;
  if (!j) snprintf(out, n, "target");
}
