/* installing.c - hands the verified image to the package manager named by [pacman] type.
 *
 *   none (or unset)  records the target as installed: simulation and tests;
 *   archive          unpacks a tar(.gz/.xz/.zst) or zip into images_path/installed/<version>
 *                    on the thread pool and switches images_path/installed/current to it;
 *   command          runs [pacman] install_command (uv_spawn, no shell) with the image path
 *                    and the target name as arguments: exit 0 = installed, 100 = installed,
 *                    a reboot completes it (NEED_COMPLETION), anything else = failed.
 *                    It also gets OTAD_TARGET_NAME, OTAD_TARGET_VERSION, OTAD_TARGET_SHA256
 *                    and OTAD_CORRELATION_ID in its environment.
 *
 * A success is recorded in the store (installed_target, or pending_target when a reboot
 * must complete it), so the next manifest names the image; d->upd->result carries the
 * report either way. Events: EcuInstallationStarted, then EcuInstallationCompleted (with
 * success), or EcuInstallationApplied when a reboot completes it: then need_reboot is
 * raised, [bootloader] reboot_command runs after the report, and the first poll of the
 * next run (after the reboot) records the target as installed and reports OK
 * (installing_complete, the action "complete").
 *
 * Archives come from the server, so their extraction trusts nothing in them (see
 * install_archive() in installing.h). libarchive's write-disk resolves relative names
 * against the process's working directory, which a thread-pool job must not change; so
 * each entry's name is checked by us, then prefixed with the real path (no symlinks in
 * it) of the directory being built, and libarchive's own NODOTDOT and SYMLINKS guards run
 * on top. Its NOABSOLUTEPATHS guard cannot, as every name is absolute by then: our check
 * of the name as the archive gives it takes its place.
 */
#include "installing.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/log.h"
#include "events.h"
#include "states.h"

#define EXIT_NEED_COMPLETION 100
#define MIN_EXTRACT_CAP (16ull * 1024 * 1024)

/* ---- install_archive: no device, no loop --------------------------------------------- */

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

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  remove(path);
  return 0;
}

static int open_up_dir(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  if (flag == FTW_D || flag == FTW_DNR) chmod(path, 0700); /* a read-only dir from an archive */
  return 0;
}

/* rm -rf path, without following symlinks. */
static void rm_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    nftw(path, open_up_dir, 16, FTW_PHYS);
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  } else {
    unlink(path);
  }
}

static int mkdir_p(const char *path) {
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) return ENAMETOOLONG;
  for (char *p = tmp + 1;; p++) {
    if (*p != '/' && *p) continue;
    char c = *p;
    *p = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return errno;
    *p = c;
    if (!c) break;
  }
  return 0;
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
    while (*p == '/') p++;
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
    while (*p == '/') p++;
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

/* Extracts archive into the empty directory dir (a real path). */
static int extract(const char *archive, const char *dir, uint64_t max_bytes, char *err,
                   size_t errlen) {
  struct archive *a = archive_read_new(), *w = archive_write_disk_new();
  if (!a || !w) {
    archive_read_free(a);
    archive_write_free(w);
    return failf(err, errlen, "out of memory");
  }
  archive_read_support_format_tar(a);
  archive_read_support_format_zip(a);
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_xz(a);
  archive_read_support_filter_lzma(a);
  archive_read_support_filter_zstd(a);
  archive_write_disk_set_options(w, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                        ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                        ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME);
  int rc = 0;
  if (archive_read_open_filename(a, archive, 64 * 1024) != ARCHIVE_OK) {
    rc = failf(err, errlen, "%s: not a tar or zip archive (%s)", archive, arch_err(a));
    goto out;
  }
  uint64_t total = 0, entries = 0;
  struct archive_entry *e;
  char name[PATH_MAX], link[PATH_MAX], full[PATH_MAX * 2];
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
    int c = orig ? clean_name(orig, name, sizeof(name)) : -3;
    if (c) {
      rc = failf(err, errlen, "entry '%s': %s; refused", raw,
                 c == -1 ? "absolute path" : c == -2 ? "'..' in the path" : "name too long");
      goto out;
    }
    mode_t type = archive_entry_filetype(e);
    const char *hard = archive_entry_hardlink(e);
    if (hard) {
      c = clean_name(hard, link, sizeof(link));
      if (c || !hardlink_target_ok(dir, link)) {
        rc = failf(err, errlen, "entry '%s': a hardlink to '%s', which is not a file extracted "
                   "before it inside the tree; refused", raw, hard);
        goto out;
      }
      snprintf(full, sizeof(full), "%s/%s", dir, link);
      archive_entry_copy_hardlink(e, full);
    } else if (type == AE_IFLNK) {
      if (!symlink_stays_inside(name, archive_entry_symlink(e))) {
        rc = failf(err, errlen, "entry '%s': a symlink to '%s', outside the tree; refused", raw,
                   archive_entry_symlink(e) ? archive_entry_symlink(e) : "");
        goto out;
      }
    } else if (type != AE_IFREG && type != AE_IFDIR) {
      rc = failf(err, errlen, "entry '%s' is %s; refused", raw, type_name(type));
      goto out;
    }
    if (!name[0]) { /* "./": the tree's own root */
      archive_read_data_skip(a);
      continue;
    }
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0 &&
        total + (uint64_t)archive_entry_size(e) > max_bytes) {
      rc = failf(err, errlen, "entry '%s': the content would exceed %" PRIu64 " bytes "
                 "(a decompression bomb?); refused", raw, max_bytes);
      goto out;
    }
    mode_t perm = archive_entry_perm(e) & 0777; /* no setuid, setgid or sticky bits */
    archive_entry_set_perm(e, type == AE_IFDIR ? perm | 0700 : perm);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    snprintf(full, sizeof(full), "%s/%s", dir, name);
    archive_entry_copy_pathname(e, full);
    if (archive_write_header(w, e) < ARCHIVE_WARN) {
      rc = failf(err, errlen, "entry '%s': %s", raw, arch_err(w));
      goto out;
    }
    for (;;) {
      const void *buf;
      size_t sz;
      la_int64_t off;
      r = archive_read_data_block(a, &buf, &sz, &off);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) {
        rc = failf(err, errlen, "entry '%s': %s", raw, arch_err(a));
        goto out;
      }
      total += sz;
      if (total > max_bytes) {
        rc = failf(err, errlen, "entry '%s': the content exceeds %" PRIu64 " bytes "
                   "(a decompression bomb?); refused", raw, max_bytes);
        goto out;
      }
      if (archive_write_data_block(w, buf, sz, off) < ARCHIVE_WARN) {
        rc = failf(err, errlen, "entry '%s': %s", raw, arch_err(w));
        goto out;
      }
    }
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
static int switch_current(int rootfd, const char *version, char *prev, size_t prevlen,
                          char *err, size_t errlen) {
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
    rm_tree(path);
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
  int e = mkdir_p(dest_root);
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
    rm_tree(tmp);
    goto out;
  }
  chmod(tmp, 0755);
  syncfs(rootfd); /* the files' contents are durable before anything points at them */
  store_test_step("install-unpacked");
  if (lstat(fin, &st) == 0) {
    /* the same version again: swap the new tree in, then drop the old one */
#ifdef RENAME_EXCHANGE
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, fin, RENAME_EXCHANGE) == 0) {
      rm_tree(tmp);
    } else
#endif
    {
      rm_tree(fin);
      if (rename(tmp, fin) != 0) {
        failf(err, errlen, "renaming %s to %s: %s", tmp, fin, strerror(errno));
        rm_tree(tmp);
        goto out;
      }
    }
  } else if (rename(tmp, fin) != 0) {
    failf(err, errlen, "renaming %s to %s: %s", tmp, fin, strerror(errno));
    rm_tree(tmp);
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

/* ---- the installing state ---------------------------------------------------------------- */

static void install_failed(device *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void install_failed(device *d, const char *fmt, ...) {
  char desc[sizeof(d->eb.msg)];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(desc, sizeof(desc), fmt, ap);
  va_end(ap);
  if (d->upd) {
    polling_set_result(d, false, UPDATE_INSTALL_FAILED, "%s", desc);
    events_queue(d, EVENT_INSTALLATION_COMPLETED, d->upd->target.correlation_id, EVENT_FAILED);
  }
  device_log(d, LOG_ERROR, "%s", desc);
  device_fail_with(d, EV_INSTALL_FAILED, OTAD_EIO, "%s", desc);
}

/* The target as JSON for the store (see installing.h). done: the package manager finished
 * (no reboot needed), only recording and reporting it remain - a pending_target so marked
 * is completed by the next run whatever the reboot sentinel says. */
static char *target_json(const update_target *t, bool done) {
  cJSON *o = cJSON_CreateObject();
  if (done) cJSON_AddBoolToObject(o, "installed", true);
  cJSON_AddStringToObject(o, "name", t->name);
  cJSON_AddStringToObject(o, "sha256", t->sha256);
  cJSON_AddStringToObject(o, "sha512", t->sha512);
  cJSON_AddNumberToObject(o, "length", (double)t->length);
  cJSON_AddStringToObject(o, "version", t->version);
  cJSON_AddStringToObject(o, "correlation_id", t->correlation_id);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

/* Writes the reboot sentinel aktualizr uses ([bootloader] reboot_sentinel_dir/need_reboot). */
static void write_reboot_sentinel(device *d) {
  const char *dir = d->o.cfg->reboot_sentinel_dir;
  if (!dir || !dir[0]) return;
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/need_reboot", dir);
  otad_errbuf eb = {{0}};
  if (mkdir_p(dir) != 0 || atomic_write_file(path, "", 0, 0644, &eb) != 0)
    device_log(d, LOG_WARN, "cannot write the reboot sentinel %s: %s", path,
               eb.msg[0] ? eb.msg : strerror(errno));
}

/* The package manager succeeded (code OK or NEED_COMPLETION): record, report, go on.
 * OK is recorded as pending_target marked installed, then installed_target, then the
 * report, then pending_target goes: a crash anywhere in between leaves the pending
 * record, which the next run completes and reports (installing_complete). Without it a
 * crash after installed_target would lose the report: the next run finds the target
 * installed and the server never hears of it. */
static void install_succeeded(device *d, const char *code, const char *desc) {
  device_update *u = d->upd;
  bool complete = strcmp(code, UPDATE_OK) == 0;
  char *json = target_json(&u->target, complete);
  otad_errbuf eb = {{0}};
  int rc = json ? store_write(d->o.st, STORE_PENDING_TARGET, json, strlen(json), false, &eb)
                : otad_fail(&eb, OTAD_ENOMEM, "out of memory");
  if (!rc && complete)
    rc = store_write(d->o.st, STORE_INSTALLED_TARGET, json, strlen(json), false, &eb);
  free(json);
  if (rc) {
    char desc2[sizeof(d->eb.msg)];
    snprintf(desc2, sizeof(desc2), "%s, but recording it failed: %s", desc, eb.msg);
    polling_set_result(d, false, UPDATE_INTERNAL_ERROR, "%s", desc2);
    events_queue(d, EVENT_INSTALLATION_COMPLETED, u->target.correlation_id, EVENT_FAILED);
    device_log(d, LOG_ERROR, "%s", desc2);
    device_fail_with(d, EV_INSTALL_FAILED, rc, "%s", desc2);
    return;
  }
  /* as aktualizr: only OK counts as success; NEED_COMPLETION waits for the reboot, but
   * is no failure of this cycle */
  polling_set_result(d, complete, code, "%s", desc);
  device_log(d, LOG_INFO, "%s", desc);
  if (complete && store_remove(d->o.st, STORE_PENDING_TARGET, &eb) != 0)
    device_log(d, LOG_WARN, "%s", eb.msg); /* the next run completes it again: harmless */
  if (complete) {
    events_queue(d, EVENT_INSTALLATION_COMPLETED, u->target.correlation_id, EVENT_SUCCEEDED);
    device_fire(d, EV_INSTALLED, u->target.name);
    return;
  }
  write_reboot_sentinel(d);
  u->cycle_failed = false;
  u->reboot_requested = true;
  events_queue(d, EVENT_INSTALLATION_APPLIED, u->target.correlation_id, EVENT_NO_SUCCESS);
  device_fire(d, EV_NEED_REBOOT, u->target.name);
}

/* -- the installation a reboot completes -- */

bool installing_reboot_completed(device *d, char *name, size_t n) {
  char *js = store_read_string(d->o.st, STORE_PENDING_TARGET);
  cJSON *o = js ? cJSON_Parse(js) : NULL;
  free(js);
  const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
  snprintf(name, n, "%s", cJSON_IsString(nm) ? nm->valuestring : "");
  bool pending = o != NULL;
  bool done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "installed"));
  cJSON_Delete(o);
  if (!pending) return false;
  if (done) {
    device_log(d, LOG_INFO, "%s was installed, but a restart interrupted recording it", name);
    return true;
  }
  const char *dir = d->o.cfg->reboot_sentinel_dir;
  char path[PATH_MAX];
  if (dir && dir[0] && snprintf(path, sizeof(path), "%s/need_reboot", dir) < (int)sizeof(path) &&
      access(path, F_OK) == 0) {
    device_log(d, LOG_INFO, "%s is installed and waits for a reboot (%s exists)", name, path);
    return false;
  }
  return true;
}

static void copy_str(const cJSON *o, const char *key, char *out, size_t n) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  snprintf(out, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

void installing_complete(device *d) {
  d->eb.msg[0] = 0;
  device_update *u = d->upd;
  char *js = store_read_string(d->o.st, STORE_PENDING_TARGET);
  cJSON *o = js ? cJSON_Parse(js) : NULL;
  if (!o) {
    free(js);
    install_failed(d, "bug: no pending installation to complete");
    return;
  }
  update_target *t = &u->target; /* the report and the events name it */
  memset(t, 0, sizeof(*t));
  copy_str(o, "name", t->name, sizeof(t->name));
  copy_str(o, "sha256", t->sha256, sizeof(t->sha256));
  copy_str(o, "sha512", t->sha512, sizeof(t->sha512));
  copy_str(o, "version", t->version, sizeof(t->version));
  copy_str(o, "correlation_id", t->correlation_id, sizeof(t->correlation_id));
  const cJSON *len = cJSON_GetObjectItemCaseSensitive(o, "length");
  t->length = cJSON_IsNumber(len) ? (uint64_t)len->valuedouble : 0;
  bool done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "installed"));
  cJSON_Delete(o);
  /* the report first: until pending_target is gone, a crash only means completing again */
  polling_set_result(d, true, UPDATE_OK, "installed %s: %s", t->name,
                     done ? "recorded after a restart" : "completed by a reboot");
  otad_errbuf eb = {{0}};
  int rc = store_write(d->o.st, STORE_INSTALLED_TARGET, js, strlen(js), false, &eb);
  free(js);
  if (!rc) rc = store_remove(d->o.st, STORE_PENDING_TARGET, &eb);
  if (rc) {
    install_failed(d, "completing %s after the reboot: %s", t->name, eb.msg);
    return;
  }
  events_queue(d, EVENT_INSTALLATION_COMPLETED, t->correlation_id, EVENT_SUCCEEDED);
  device_log(d, LOG_INFO, "installed %s: %s", t->name,
             done ? "recorded and reported after a restart" : "the reboot completed the installation");
  device_fire(d, EV_INSTALLED, t->name);
}

typedef struct reboot_job {
  uv_process_t proc;
  char label[40];
} reboot_job;

static void free_reboot_job(uv_handle_t *h) { free(h->data); }

static void reboot_exited(uv_process_t *p, int64_t status, int signal) {
  reboot_job *j = p->data;
  if (status || signal)
    log_msg(LOG_WARN, j->label, "the reboot command ended with %s %d",
            signal ? "signal" : "exit code", signal ? signal : (int)status);
  uv_close((uv_handle_t *)p, free_reboot_job);
}

void installing_reboot(device *d) {
  const char *cmd = d->o.cfg->reboot_command;
  if (!cmd || !cmd[0]) {
    device_log(d, LOG_INFO, "a reboot completes the installation (no [bootloader] "
               "reboot_command: waiting for one)");
    return;
  }
  reboot_job *j = calloc(1, sizeof(*j));
  if (!j) {
    device_log(d, LOG_ERROR, "cannot run the reboot command: out of memory");
    return;
  }
  snprintf(j->label, sizeof(j->label), "%s", d->label);
  j->proc.data = j;
  char *args[] = {"/bin/sh", "-c", (char *)cmd, NULL};
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE}, {.flags = UV_INHERIT_FD, .data.fd = 1},
      {.flags = UV_INHERIT_FD, .data.fd = 2}};
  uv_process_options_t opts = {.exit_cb = reboot_exited, .file = args[0], .args = args,
                               .stdio_count = 3, .stdio = stdio};
  device_log(d, LOG_INFO, "rebooting to complete the installation: %s", cmd);
  int rc = uv_spawn(d->o.loop, &j->proc, &opts);
  if (rc) {
    device_log(d, LOG_ERROR, "cannot run the reboot command %s: %s", cmd, uv_strerror(rc));
    uv_close((uv_handle_t *)&j->proc, free_reboot_job);
  }
}

/* -- archive -- */

typedef struct archive_job {
  uv_work_t work;
  device *d;
  char *archive, *root;
  char version[72];
  int rc;
  char err[400];
} archive_job;

static void archive_work(uv_work_t *w) {
  archive_job *j = w->data;
  j->rc = install_archive(j->archive, j->root, j->version, 0, j->err, sizeof(j->err));
}

static void archive_job_free(archive_job *j) {
  free(j->archive);
  free(j->root);
  free(j);
}

static void archive_done(uv_work_t *w, int status) {
  archive_job *j = w->data;
  device *d = j->d;
  if (d->closing) {
    if (status == 0 && j->rc == 0) { /* done on disk: the next run records and reports it */
      char *json = target_json(&d->upd->target, true);
      otad_errbuf eb = {{0}};
      if (json) store_write(d->o.st, STORE_PENDING_TARGET, json, strlen(json), false, &eb);
      free(json);
    }
    archive_job_free(j);
    device_work_finished(d);
    return;
  }
  d->work_busy = false;
  if (status == UV_ECANCELED) {
    archive_job_free(j);
    return;
  }
  char desc[600];
  if (j->rc) {
    snprintf(desc, sizeof(desc), "installing %s: %s", d->upd->target.name, j->err);
    archive_job_free(j);
    install_failed(d, "%s", desc);
    return;
  }
  snprintf(desc, sizeof(desc), "installed %s: unpacked into %s/%s, now current",
           d->upd->target.name, j->root, j->version);
  archive_job_free(j);
  install_succeeded(d, UPDATE_OK, desc);
}

/* The directory name of a target's tree: its version if that is a plain name, else the
 * first 16 hex digits of its hash. */
static void version_name(const update_target *t, char *out, size_t n) {
  if (install_version_ok(t->version))
    snprintf(out, n, "%s", t->version);
  else
    snprintf(out, n, "%.16s", t->sha256[0] ? t->sha256 : t->sha512[0] ? t->sha512 : "unknown");
}

static void install_from_archive(device *d) {
  device_update *u = d->upd;
  const otad_config *c = d->o.cfg;
  archive_job *j = calloc(1, sizeof(*j));
  char *images = c->images_path && c->images_path[0]
                     ? strdup(c->images_path)
                     : device_url(c->storage_path ? c->storage_path : "/var/sota", "images");
  if (j) {
    j->d = d;
    j->archive = strdup(u->image_path);
    j->root = images ? device_url(images, "installed") : NULL;
    j->work.data = j;
    version_name(&u->target, j->version, sizeof(j->version));
  }
  free(images);
  if (!j || !j->archive || !j->root) {
    if (j) archive_job_free(j);
    install_failed(d, "installing %s: out of memory", u->target.name);
    return;
  }
  device_log(d, LOG_INFO, "installing %s: unpacking %s into %s/%s", u->target.name,
             u->image_path, j->root, j->version);
  d->work_busy = true;
  int rc = uv_queue_work(d->o.loop, &j->work, archive_work, archive_done);
  if (rc) {
    d->work_busy = false;
    archive_job_free(j);
    install_failed(d, "installing %s: cannot queue work on the thread pool: %s",
                   u->target.name, uv_strerror(rc));
  }
}

/* -- command -- */

typedef struct command_job {
  uv_process_t proc;
  device *d;
} command_job;

static void free_proc(uv_handle_t *h) { free(h->data); }

static void command_exited(uv_process_t *p, int64_t status, int signal) {
  command_job *j = p->data;
  device *d = j->d;
  uv_close((uv_handle_t *)p, free_proc);
  if (d->closing) {
    if (!signal && status == 0) { /* the next run records and reports it */
      char *json = target_json(&d->upd->target, true);
      otad_errbuf eb = {{0}};
      if (json) store_write(d->o.st, STORE_PENDING_TARGET, json, strlen(json), false, &eb);
      free(json);
    }
    device_work_finished(d);
    return;
  }
  d->work_busy = false;
  const char *name = d->upd->target.name;
  char desc[400];
  if (signal) {
    install_failed(d, "installing %s: the install command was killed by signal %d", name, signal);
  } else if (status == 0) {
    snprintf(desc, sizeof(desc), "installed %s: the install command succeeded", name);
    install_succeeded(d, UPDATE_OK, desc);
  } else if (status == EXIT_NEED_COMPLETION) {
    snprintf(desc, sizeof(desc), "installed %s: a reboot completes the installation", name);
    install_succeeded(d, UPDATE_NEED_COMPLETION, desc);
  } else {
    install_failed(d, "installing %s: the install command exited with code %" PRId64, name,
                   status);
  }
}

/* environ without our OTAD_TARGET_* names, plus ours; the array is heap, the strings it
 * adds are extra[]. */
static char **command_env(char *extra[], size_t n_extra) {
  size_t n = 0;
  while (environ && environ[n]) n++;
  char **env = calloc(n + n_extra + 1, sizeof(char *));
  if (!env) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "OTAD_TARGET_", 12) != 0 &&
        strncmp(environ[i], "OTAD_CORRELATION_ID=", 20) != 0)
      env[k++] = environ[i];
  for (size_t i = 0; i < n_extra; i++)
    if (extra[i]) env[k++] = extra[i];
  return env;
}

static void install_with_command(device *d) {
  device_update *u = d->upd;
  const update_target *t = &u->target;
  const char *cmd = d->o.cfg->pacman_install_command;
  if (!cmd || !cmd[0]) {
    install_failed(d, "installing %s: [pacman] type = \"command\" but no [pacman] "
                   "install_command is configured", t->name);
    return;
  }
  command_job *j = calloc(1, sizeof(*j));
  char *extra[4] = {NULL};
  if (asprintf(&extra[0], "OTAD_TARGET_NAME=%s", t->name) < 0) extra[0] = NULL;
  if (asprintf(&extra[1], "OTAD_TARGET_VERSION=%s", t->version) < 0) extra[1] = NULL;
  if (asprintf(&extra[2], "OTAD_TARGET_SHA256=%s", t->sha256) < 0) extra[2] = NULL;
  if (asprintf(&extra[3], "OTAD_CORRELATION_ID=%s", t->correlation_id) < 0) extra[3] = NULL;
  char **env = command_env(extra, 4);
  int rc = UV_ENOMEM;
  if (j && env) {
    j->d = d;
    j->proc.data = j;
    char *args[] = {(char *)cmd, u->image_path, (char *)t->name, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE}, {.flags = UV_INHERIT_FD, .data.fd = 1},
        {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t opts = {.exit_cb = command_exited, .file = cmd, .args = args,
                                 .env = env, .stdio_count = 3, .stdio = stdio};
    device_log(d, LOG_INFO, "installing %s: running %s %s %s", t->name, cmd, u->image_path,
               t->name);
    rc = uv_spawn(d->o.loop, &j->proc, &opts);
    if (rc == 0) {
      d->work_busy = true; /* a closing device waits for the command to end */
      j = NULL;
    } else {
      uv_close((uv_handle_t *)&j->proc, free_proc); /* libuv: close even a failed spawn */
      j = NULL;
    }
  }
  free(j);
  free(env);
  for (int i = 0; i < 4; i++) free(extra[i]);
  if (rc)
    install_failed(d, "installing %s: cannot run %s: %s", t->name, cmd, uv_strerror(rc));
}

void installing_start(device *d) {
  d->eb.msg[0] = 0;
  device_update *u = d->upd;
  if (!u || !u->image_path) {
    install_failed(d, "bug: no downloaded image to install");
    return;
  }
  events_queue(d, EVENT_INSTALLATION_STARTED, u->target.correlation_id, EVENT_NO_SUCCESS);
  const char *type = d->o.cfg->pacman_type;
  if (!type || !type[0] || strcmp(type, "none") == 0) {
    char desc[400];
    snprintf(desc, sizeof(desc), "installed %s ([pacman] type none: recorded only)",
             u->target.name);
    install_succeeded(d, UPDATE_OK, desc);
  } else if (strcmp(type, "archive") == 0) {
    install_from_archive(d);
  } else if (strcmp(type, "command") == 0) {
    install_with_command(d);
  } else {
    install_failed(d, "installing %s: [pacman] type \"%s\" is not supported here (none, "
                   "archive, command)", u->target.name, type);
  }
}
