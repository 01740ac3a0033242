/* unpack.c - an archive target unpacked into a versioned tree, trusting nothing in it
 * (see unpack.h). No device and no loop: the archive backend runs it on the thread pool,
 * the unit tests and the fuzzer feed it hostile archives directly.
 *
 * libarchive's write-disk resolves relative names against the process's working
 * directory, which a thread-pool job must not change; so each entry's name is checked by
 * us, then prefixed with the real path (no symlinks in it) of the directory being built,
 * and libarchive's own NODOTDOT and SYMLINKS guards run on top. Its NOABSOLUTEPATHS guard
 * cannot, as every name is absolute by then: our check of the name as the archive gives it
 * takes its place.
 */
#include "unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../storage/fsutil.h"
#include "../storage/store.h"

#define MIN_EXTRACT_CAP (16ull * 1024 * 1024)

static int failf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int failf(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

int install_version_ok(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > 64 || name[0] == '.' || strcmp(name, "current") == 0) return 0;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
          strchr("._+-", *p)))
      return 0;
  return 1;
}

/* An archive's entry name made relative and clean: "./a//b/" -> "a/b" ("" for the root).
 * 0, or -1 (absolute), -2 (a ".." component), -3 (too long). */
static int clean_name(const char *in, char *out, size_t n) {
  if (in[0] == '/') return -1;
  size_t j = 0;
  const char *p = in;
  while (*p) {
    const char *e = strchr(p, '/');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == 2 && p[0] == '.' && p[1] == '.') return -2;
    if (len > 0 && !(len == 1 && p[0] == '.')) {
      if (j + len + 2 > n) return -3;
      if (j) out[j++] = '/';
      memcpy(out + j, p, len);
      j += len;
    }
    p += len;
    while (*p == '/')
      p++;
  }
  out[j] = 0;
  return 0;
}

/* A symlink at path (clean, relative to the tree) pointing at target stays in the tree:
 * target is relative, its ".." components all come first (so they climb through real
 * directories: no entry is ever extracted below a symlink), and there are no more of them
 * than path has parents. Every name after them descends, through directories or through
 * symlinks that obey the same rule, so nothing resolves outside. */
static bool symlink_stays_inside(const char *path, const char *target) {
  if (!target || !target[0] || target[0] == '/') return false;
  int depth = 0;
  for (const char *p = path; *p; p++)
    if (*p == '/') depth++;
  bool descended = false;
  const char *p = target;
  while (*p) {
    const char *e = strchr(p, '/');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == 2 && p[0] == '.' && p[1] == '.') {
      if (descended || --depth < 0) return false;
    } else if (len > 0 && !(len == 1 && p[0] == '.')) {
      descended = true;
    }
    p += len;
    while (*p == '/')
      p++;
  }
  return true;
}

/* A hardlink's target (clean, relative) must be a regular file already extracted under
 * root, reached through real directories only. */
static bool hardlink_target_ok(const char *root, const char *target) {
  if (!target[0]) return false;
  char path[PATH_MAX];
  size_t rl = strlen(root);
  if (rl + 1 + strlen(target) + 1 > sizeof(path)) return false;
  memcpy(path, root, rl);
  path[rl] = '/';
  strcpy(path + rl + 1, target);
  struct stat st;
  for (char *p = path + rl + 1;; p++) {
    if (*p != '/' && *p) continue;
    char c = *p;
    *p = 0;
    if (lstat(path, &st) != 0) return false;
    *p = c;
    if (!c) return S_ISREG(st.st_mode);
    if (!S_ISDIR(st.st_mode)) return false;
  }
}

static const char *arch_err(struct archive *a) {
  const char *s = archive_error_string(a);
  return s ? s : "unknown error";
}

static const char *type_name(mode_t t) {
  switch (t) {
  case AE_IFCHR: return "a character device";
  case AE_IFBLK: return "a block device";
  case AE_IFIFO: return "a FIFO";
  case AE_IFSOCK: return "a socket";
  default: return "of an unknown type";
  }
}

/* Refuses what an entry must not be, and rewrites its name (and a hardlink's target) to
 * an absolute path under dir. 0, 1 for the tree's own root ("./": skip it), or -1 with
 * err filled. raw is the name as the archive gives it (for messages). */
static int check_entry(struct archive_entry *e, const char *dir, const char *raw, uint64_t total,
                       uint64_t max_bytes, char *err, size_t errlen) {
  char name[PATH_MAX], link[PATH_MAX], full[PATH_MAX * 2];
  const char *orig = archive_entry_pathname(e);
  int c = orig ? clean_name(orig, name, sizeof(name)) : -3;
  if (c)
    return failf(err, errlen, "entry '%s': %s; refused", raw,
                 c == -1   ? "absolute path"
                 : c == -2 ? "'..' in the path"
                           : "name too long");
  mode_t type = archive_entry_filetype(e);
  const char *hard = archive_entry_hardlink(e);
  if (hard) {
    c = clean_name(hard, link, sizeof(link));
    if (c || !hardlink_target_ok(dir, link))
      return failf(err, errlen,
                   "entry '%s': a hardlink to '%s', which is not a file extracted "
                   "before it inside the tree; refused",
                   raw, hard);
    snprintf(full, sizeof(full), "%s/%s", dir, link);
    archive_entry_copy_hardlink(e, full);
  } else if (type == AE_IFLNK) {
    if (!symlink_stays_inside(name, archive_entry_symlink(e)))
      return failf(err, errlen, "entry '%s': a symlink to '%s', outside the tree; refused", raw,
                   archive_entry_symlink(e) ? archive_entry_symlink(e) : "");
  } else if (type != AE_IFREG && type != AE_IFDIR) {
    return failf(err, errlen, "entry '%s' is %s; refused", raw, type_name(type));
  }
  if (!name[0]) return 1; /* "./": the tree's own root */
  if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0 &&
      total + (uint64_t)archive_entry_size(e) > max_bytes)
    return failf(err, errlen,
                 "entry '%s': the content would exceed %" PRIu64 " bytes "
                 "(a decompression bomb?); refused",
                 raw, max_bytes);
  mode_t perm = archive_entry_perm(e) & 0777; /* no setuid, setgid or sticky bits */
  archive_entry_set_perm(e, type == AE_IFDIR ? perm | 0700 : perm);
  archive_entry_set_uid(e, 0);
  archive_entry_set_gid(e, 0);
  snprintf(full, sizeof(full), "%s/%s", dir, name);
  archive_entry_copy_pathname(e, full);
  return 0;
}

/* Copies the current entry's data from a to w, counting it against max_bytes. */
static int copy_data(struct archive *a, struct archive *w, const char *raw, uint64_t *total,
                     uint64_t max_bytes, char *err, size_t errlen) {
  for (;;) {
    const void *buf;
    size_t sz;
    la_int64_t off;
    int r = archive_read_data_block(a, &buf, &sz, &off);
    if (r == ARCHIVE_EOF) return 0;
    if (r < ARCHIVE_WARN) return failf(err, errlen, "entry '%s': %s", raw, arch_err(a));
    *total += sz;
    if (*total > max_bytes)
      return failf(err, errlen,
                   "entry '%s': the content exceeds %" PRIu64 " bytes "
                   "(a decompression bomb?); refused",
                   raw, max_bytes);
    if (archive_write_data_block(w, buf, sz, off) < ARCHIVE_WARN)
      return failf(err, errlen, "entry '%s': %s", raw, arch_err(w));
  }
}

/* A reader for tar and zip, plain or compressed; a writer that restores modes and times. */
static void set_up(struct archive *a, struct archive *w) {
  archive_read_support_format_tar(a);
  archive_read_support_format_zip(a);
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_xz(a);
  archive_read_support_filter_lzma(a);
  archive_read_support_filter_zstd(a);
  archive_write_disk_set_options(w, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                        ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_PERM |
                                        ARCHIVE_EXTRACT_TIME);
}

/* Extracts archive into the empty directory dir (a real path). */
static int extract(const char *archive, const char *dir, uint64_t max_bytes, char *err,
                   size_t errlen) {
  struct archive *a = archive_read_new(), *w = archive_write_disk_new();
  if (!a || !w) {
    archive_read_free(a);
    archive_write_free(w);
    return failf(err, errlen, "out of memory");
  }
  set_up(a, w);
  int rc = 0;
  if (archive_read_open_filename(a, archive, 64 * 1024) != ARCHIVE_OK) {
    rc = failf(err, errlen, "%s: not a tar or zip archive (%s)", archive, arch_err(a));
    goto out;
  }
  uint64_t total = 0, entries = 0;
  struct archive_entry *e;
  for (;;) {
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      rc = entries ? failf(err, errlen, "after %" PRIu64 " entries: %s", entries, arch_err(a))
                   : failf(err, errlen, "not a tar or zip archive (%s)", arch_err(a));
      goto out;
    }
    if (++entries > INSTALL_MAX_ENTRIES) {
      rc = failf(err, errlen, "more than %d entries; refused", INSTALL_MAX_ENTRIES);
      goto out;
    }
    /* the entry's own strings change below (the name is rewritten): keep a copy to show */
    char raw[256];
    const char *orig = archive_entry_pathname(e);
    snprintf(raw, sizeof(raw), "%s", orig ? orig : "(no name)");
    int c = check_entry(e, dir, raw, total, max_bytes, err, errlen);
    if (c < 0) {
      rc = -1;
      goto out;
    }
    if (c > 0) {
      archive_read_data_skip(a);
      continue;
    }
    if (archive_write_header(w, e) < ARCHIVE_WARN) {
      rc = failf(err, errlen, "entry '%s': %s", raw, arch_err(w));
      goto out;
    }
    if ((rc = copy_data(a, w, raw, &total, max_bytes, err, errlen)) != 0) goto out;
    if (archive_write_finish_entry(w) < ARCHIVE_WARN) {
      rc = failf(err, errlen, "entry '%s': %s", raw, arch_err(w));
      goto out;
    }
    store_test_step("install-entry"); /* crash tests (no-op) */
  }
  if (entries == 0) {
    rc = failf(err, errlen, "the archive holds no entries");
    goto out;
  }
  if (archive_write_close(w) < ARCHIVE_WARN) /* sets the deferred directory modes */
    rc = failf(err, errlen, "finishing the tree: %s", arch_err(w));
out:
  archive_read_free(a);
  archive_write_free(w);
  return rc;
}

/* Points root/current at version atomically; *prev gets what it pointed at ("" none). */
static int switch_current(int rootfd, const char *version, char *prev, size_t prevlen, char *err,
                          size_t errlen) {
  ssize_t n = readlinkat(rootfd, "current", prev, prevlen - 1);
  prev[n > 0 ? n : 0] = 0;
  if (strchr(prev, '/')) prev[0] = 0; /* not one of ours */
  char tmp[64];
  snprintf(tmp, sizeof(tmp), ".current.new.%ld", (long)getpid());
  unlinkat(rootfd, tmp, 0);
  if (symlinkat(version, rootfd, tmp) != 0)
    return failf(err, errlen, "creating the link to %s: %s", version, strerror(errno));
  if (renameat(rootfd, tmp, rootfd, "current") != 0) {
    int e = errno;
    unlinkat(rootfd, tmp, 0);
    return failf(err, errlen, "switching 'current' to %s: %s", version, strerror(e));
  }
  fsync(rootfd);
  return 0;
}

/* Removes leftovers of interrupted installs and, when versions is set, the versions other
 * than keep and prev. */
static void prune_versions(const char *root, int rootfd, const char *keep, const char *prev,
                           bool versions) {
  int fd = dup(rootfd);
  DIR *dh = fd >= 0 ? fdopendir(fd) : NULL;
  if (!dh) {
    if (fd >= 0) close(fd);
    return;
  }
  struct dirent *e;
  char path[PATH_MAX];
  while ((e = readdir(dh))) {
    const char *n = e->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "current") || !strcmp(n, keep) ||
        !strcmp(n, prev))
      continue;
    bool leftover = n[0] == '.' && strstr(n, ".new.");
    if (!leftover && (!versions || !install_version_ok(n))) continue;
    snprintf(path, sizeof(path), "%s/%s", root, n);
    fs_rm_tree(path);
  }
  closedir(dh);
}

int install_archive(const char *archive, const char *dest_root, const char *version,
                    uint64_t max_bytes, char *err, size_t errlen) {
  if (!install_version_ok(version))
    return failf(err, errlen, "'%s' cannot name an installed version", version ? version : "");
  struct stat st;
  if (stat(archive, &st) != 0) return failf(err, errlen, "%s: %s", archive, strerror(errno));
  if (!max_bytes) {
    max_bytes = (uint64_t)st.st_size * 16;
    if (max_bytes < MIN_EXTRACT_CAP) max_bytes = MIN_EXTRACT_CAP;
  }
  int e = fs_mkdir_p(dest_root, 0755, NULL);
  if (e) return failf(err, errlen, "creating %s: %s", dest_root, strerror(e));
  char root[PATH_MAX];
  if (!realpath(dest_root, root)) return failf(err, errlen, "%s: %s", dest_root, strerror(errno));
  int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return failf(err, errlen, "%s: %s", root, strerror(errno));

  char tmp[PATH_MAX], fin[PATH_MAX], prev[256] = "";
  snprintf(tmp, sizeof(tmp), "%s/.%s.new.XXXXXX", root, version);
  snprintf(fin, sizeof(fin), "%s/%s", root, version);
  int rc = -1;
  if (!mkdtemp(tmp)) {
    failf(err, errlen, "creating a directory in %s: %s", root, strerror(errno));
    goto out;
  }
  if (extract(archive, tmp, max_bytes, err, errlen) != 0) {
    fs_rm_tree(tmp);
    goto out;
  }
  chmod(tmp, 0755);
  syncfs(rootfd); /* the files' contents are durable before anything points at them */
  store_test_step("install-unpacked");
  if (lstat(fin, &st) == 0) {
    /* the same version again: swap the new tree in, then drop the old one */
#ifdef RENAME_EXCHANGE
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, fin, RENAME_EXCHANGE) == 0) {
      fs_rm_tree(tmp);
    } else
#endif
    {
      fs_rm_tree(fin);
      if (rename(tmp, fin) != 0) {
        failf(err, errlen, "renaming %s to %s: %s", tmp, fin, strerror(errno));
        fs_rm_tree(tmp);
        goto out;
      }
    }
  } else if (rename(tmp, fin) != 0) {
    failf(err, errlen, "renaming %s to %s: %s", tmp, fin, strerror(errno));
    fs_rm_tree(tmp);
    goto out;
  }
  fsync(rootfd);
  store_test_step("install-renamed");
  if (switch_current(rootfd, version, prev, sizeof(prev), err, errlen) != 0) goto out;
  store_test_step("install-switched");
  /* leftovers go also on a first install or a reinstall (a crash left them earlier) */
  prune_versions(root, rootfd, version, prev, prev[0] && strcmp(prev, version) != 0);
  rc = 0;
out:
  close(rootfd);
  return rc;
}
