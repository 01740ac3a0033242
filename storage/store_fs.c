/* store_fs.c - the directory backend of store.h, and the atomic file write beneath it.
 *
 * One file per name in one directory. Every write goes through atomic_write_at(): a temp
 * file beside the target, created O_EXCL with its final mode, written in full, fsynced,
 * renamed over the target, then the directory fsynced. After a power cut a name holds its
 * old or its new content, never a mix, and a secret never exists with a wider mode. A
 * crash can leave a temp file behind; opening the store removes it.
 * The store keeps a descriptor of its directory and works relative to it (openat,
 * renameat), so it keeps working on the same directory whatever happens to the path.
 */
#include "fsutil.h"
#include "store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/log.h"

#define STORE_NAME_MAX 200 /* leaves room in NAME_MAX for ".NAME.tmp.PID" */

typedef struct fs_store {
  store base; /* first member: a store* from store_fs_open is an fs_store* */
  int dirfd;  /* the directory (O_DIRECTORY), closed by fs_close */
  char *dir;  /* its path as given, heap, owned; for messages only */
} fs_store;

/* Where open-time warnings go (see store_warn_fn). */
typedef struct warner {
  store_warn_fn fn;
  void *ctx;
} warner;

static void warn(const warner *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(const warner *w, const char *fmt, ...) {
  char msg[PATH_MAX + 160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (w->fn)
    w->fn(w->ctx, msg);
  else
    log_msg(LOG_WARN, "storage", "%s", msg);
}

/* OTAD_ENOSPC for a full disk (whatever step hit it: "writing PATH: No space left on
 * device"), else OTAD_EIO naming the step. */
static int fail_errno(otad_errbuf *eb, int err, const char *step, const char *path) {
  if (err == ENOSPC || err == EDQUOT)
    return otad_fail(eb, OTAD_ENOSPC, "writing %s: %s", path, strerror(err));
  return otad_fail(eb, OTAD_EIO, "%s %s: %s", step, path, strerror(err));
}

/* "dir/name" into out (truncated if absurdly long: it is only used in messages). */
static const char *join(char *out, size_t n, const char *dir, const char *name) {
  size_t dl = strlen(dir);
  snprintf(out, n, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
  return out;
}

int store_check_name(const char *name, otad_errbuf *eb) {
  if (!name || !*name) return otad_fail(eb, OTAD_EINVAL, "store: empty name");
  if (strlen(name) > STORE_NAME_MAX)
    return otad_fail(eb, OTAD_EINVAL, "store: name longer than %d characters", STORE_NAME_MAX);
  if (name[0] == '.' || strchr(name, '/'))
    return otad_fail(eb, OTAD_EINVAL,
                     "store: \"%s\" is not a plain file name (no '/', no leading '.')", name);
  return 0;
}

/* ---- atomic write ---------------------------------------------------------------- */

/* Writes all of data, retrying after EINTR and short writes. -1 with errno on failure. */
static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Creates the temp file tmp in dirfd with mode. A leftover of the same name can only be
 * ours from an earlier crash (the PID is in the name): remove it and retry once. */
static int create_temp(int dirfd, const char *tmp, int mode) {
  int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
  int fd = openat(dirfd, tmp, flags, mode);
  if (fd < 0 && errno == EEXIST && unlinkat(dirfd, tmp, 0) == 0)
    fd = openat(dirfd, tmp, flags, mode);
  return fd;
}

/* Crash-test seam, inert unless OTAD_TEST_KILL_AT_WRITE is in the environment (then one
 * getenv per process). It numbers every storage operation of the process from 1: each
 * atomic write (store values, the credentials zip, the reboot sentinel) and each store
 * remove, and names it on stderr ("otad-test: store op N: write NAME"). At op N the
 * process SIGKILLs itself, as a power cut would stop it: by default half way through (a
 * write has half its data in the temp file, a remove has not happened yet); with
 * OTAD_TEST_KILL_AFTER=1 just after the op is complete and durable (renamed or unlinked,
 * directory fsynced). Code outside the store can number a step of its own the same way
 * (store_test_step: the archive install). N = 0 only numbers the ops. A download stops
 * the same way with exactly N bytes in its .part file with OTAD_TEST_KILL_AT_BYTE=N
 * (store_test_download). Tests and scripts/kill_campaign.sh use
 * it to prove that a restart recovers from a kill at every step. */
enum { KILL_HALF, KILL_AFTER };

static long seam_target = -1; /* -1: not read yet; 0: no seam or counting only */
static long seam_count;
static int seam_after;
static int seam_on;

/* Numbers one op; true when the process must die at it (the caller picks the moment). */
static bool seam_op(const char *what, const char *name) {
  if (seam_target < 0) {
    const char *e = getenv("OTAD_TEST_KILL_AT_WRITE");
    const char *a = getenv("OTAD_TEST_KILL_AFTER");
    seam_on = e != NULL;
    seam_target = e ? atol(e) : 0;
    if (seam_target < 0) seam_target = 0;
    seam_after = a && a[0] == '1';
  }
  if (!seam_on) return false;
  long n = __atomic_add_fetch(&seam_count, 1, __ATOMIC_SEQ_CST);
  fprintf(stderr, "otad-test: store op %ld: %s %s\n", n, what, name);
  return seam_target > 0 && n == seam_target;
}

static void seam_kill(long n, const char *when) {
  fprintf(stderr, "otad-test: SIGKILL at store op %ld (%s)\n", n, when);
  raise(SIGKILL);
}

/* A write's kill point "half": half the data in the temp file, then SIGKILL. */
static void crash_half(bool die, int fd, const void *data, size_t len) {
  if (!die || seam_after) return;
  (void)write_all(fd, data, len / 2);
  (void)fsync(fd);
  seam_kill(seam_count, "half written");
}

/* The kill point "after" of an op that completed. */
static void crash_after(bool die) {
  if (die && seam_after) seam_kill(seam_count, "after the op");
}

void store_test_step(const char *what) {
  if (seam_op("step", what)) seam_kill(seam_count, "at the step");
}

void store_test_download(int fd, const void *data, size_t len, uint64_t at) {
  static long long kill_at = -2; /* -2: not read yet; -1: no seam */
  if (kill_at == -2) {
    const char *e = getenv("OTAD_TEST_KILL_AT_BYTE");
    kill_at = e && *e ? atoll(e) : -1;
  }
  if (kill_at < 0 || at > (uint64_t)kill_at || at + len < (uint64_t)kill_at) return;
  (void)write_all(fd, data, (size_t)((uint64_t)kill_at - at));
  (void)fsync(fd);
  fprintf(stderr, "otad-test: SIGKILL with %lld bytes in the download file\n", kill_at);
  raise(SIGKILL);
}

/* The atomic write of name inside dirfd; path names it in messages. */
static int atomic_write_at(int dirfd, const char *name, const char *path, const void *data,
                           size_t len, int mode, otad_errbuf *eb) {
  char tmp[NAME_MAX + 1];
  int n = snprintf(tmp, sizeof(tmp), ".%s.tmp.%ld", name, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof(tmp))
    return otad_fail(eb, OTAD_EINVAL, "writing %s: file name too long", path);

  int fd = create_temp(dirfd, tmp, mode);
  if (fd < 0) return fail_errno(eb, errno, "creating a temp file for", path);
  int err = 0;
  bool die = seam_op("write", name);
  crash_half(die, fd, data, len);
  /* fchmod: the mode is exact, not narrowed by the umask (it can only widen to mode). */
  if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) err = errno;
  if (close(fd) < 0 && !err && errno != EINTR) err = errno;
  if (!err && renameat(dirfd, tmp, dirfd, name) < 0) err = errno;
  if (err) {
    unlinkat(dirfd, tmp, 0);
    return fail_errno(eb, err, "writing", path);
  }
  /* Makes the rename durable. EINVAL: a filesystem that cannot sync directories. */
  if (fsync(dirfd) < 0 && errno != EINVAL)
    return fail_errno(eb, errno, "syncing the directory of", path);
  crash_after(die);
  return 0;
}

/* Removes temp files ".name.tmp.PID" that a process killed mid-write left in dirfd (its
 * PID no longer runs; a live one may be writing). Outside a store nothing else would:
 * the store removes its own at open. */
static void remove_dead_temps(int dirfd, const char *name) {
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (!d) {
    if (fd >= 0) close(fd);
    return;
  }
  size_t n = strlen(name);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *e = de->d_name;
    if (e[0] != '.' || strncmp(e + 1, name, n) != 0 || strncmp(e + 1 + n, ".tmp.", 5) != 0)
      continue;
    char *end;
    long pid = strtol(e + n + 6, &end, 10);
    if (*end || pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    unlinkat(dirfd, e, 0);
  }
  closedir(d);
}

int atomic_write_file(const char *path, const void *data, size_t len, int mode, otad_errbuf *eb) {
  const char *slash = strrchr(path, '/');
  const char *name = slash ? slash + 1 : path;
  char dir[PATH_MAX];
  if (!*name) return otad_fail(eb, OTAD_EINVAL, "writing %s: not a file name", path);
  if (slash && (size_t)(slash - path) >= sizeof(dir))
    return otad_fail(eb, OTAD_EINVAL, "writing %s: path too long", path);
  if (!slash)
    strcpy(dir, ".");
  else if (slash == path)
    strcpy(dir, "/");
  else
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);

  int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return fail_errno(eb, errno, "opening the directory of", path);
  int rc = atomic_write_at(dirfd, name, path, data, len, mode & 07777, eb);
  if (rc == 0) remove_dead_temps(dirfd, name);
  close(dirfd);
  return rc;
}

/* ---- the store's operations ------------------------------------------------------ */

/* Reads the open regular file fd (at most STORE_MAX_VALUE) into a new NUL-terminated
 * heap buffer the caller owns. */
static int read_fd(int fd, const char *path, char **data, size_t *len, otad_errbuf *eb) {
  struct stat st;
  if (fstat(fd, &st) < 0) return fail_errno(eb, errno, "reading", path);
  if (!S_ISREG(st.st_mode)) return otad_fail(eb, OTAD_EIO, "%s: not a regular file", path);
  if (st.st_size > STORE_MAX_VALUE)
    return otad_fail(eb, OTAD_EIO, "%s: %lld bytes, larger than the 1 MiB allowed", path,
                     (long long)st.st_size);
  size_t want = (size_t)st.st_size, got = 0;
  char *buf = malloc(want + 1);
  if (!buf) return otad_fail(eb, OTAD_ENOMEM, "reading %s: out of memory", path);
  while (got < want) {
    ssize_t n = read(fd, buf + got, want - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      free(buf);
      return fail_errno(eb, e, "reading", path);
    }
    if (n == 0) break; /* the file shrank under us: take what there is */
    got += (size_t)n;
  }
  buf[got] = '\0';
  *data = buf;
  if (len) *len = got;
  return 0;
}

static int fs_read(store *s, const char *name, char **data, size_t *len, otad_errbuf *eb) {
  fs_store *fs = (fs_store *)s;
  *data = NULL;
  if (len) *len = 0;
  int rc = store_check_name(name, eb);
  if (rc) return rc;
  char path[PATH_MAX];
  join(path, sizeof(path), fs->dir, name);
  int fd = openat(fs->dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return otad_fail(eb, OTAD_ENOENT, "%s: no such file", path);
  if (fd < 0) return fail_errno(eb, errno, "reading", path);
  rc = read_fd(fd, path, data, len, eb);
  close(fd);
  return rc;
}

static int fs_write(store *s, const char *name, const void *data, size_t len, bool secret,
                    otad_errbuf *eb) {
  fs_store *fs = (fs_store *)s;
  int rc = store_check_name(name, eb);
  if (rc) return rc;
  char path[PATH_MAX];
  join(path, sizeof(path), fs->dir, name);
  if (len > STORE_MAX_VALUE)
    return otad_fail(eb, OTAD_EINVAL, "writing %s: %zu bytes, larger than the 1 MiB allowed", path,
                     len);
  return atomic_write_at(fs->dirfd, name, path, data, len, secret ? 0600 : 0644, eb);
}

static int fs_remove(store *s, const char *name, otad_errbuf *eb) {
  fs_store *fs = (fs_store *)s;
  int rc = store_check_name(name, eb);
  if (rc) return rc;
  char path[PATH_MAX];
  join(path, sizeof(path), fs->dir, name);
  bool die = seam_op("remove", name);
  if (die && !seam_after) seam_kill(seam_count, "before the unlink");
  if (unlinkat(fs->dirfd, name, 0) < 0) {
    if (errno != ENOENT) return fail_errno(eb, errno, "removing", path);
    crash_after(die);
    return 0;
  }
  if (fsync(fs->dirfd) < 0 && errno != EINVAL)
    return fail_errno(eb, errno, "syncing the directory of", path);
  crash_after(die);
  return 0;
}

static void fs_close(store *s) {
  fs_store *fs = (fs_store *)s;
  close(fs->dirfd);
  free(fs->dir);
  free(fs);
}

static const store_ops fs_ops = {fs_read, fs_write, fs_remove, fs_close};

/* ---- open: create, then repair what a crash or a careless install left ------------- */

/* mkdir -p: missing parents 0755, dir itself 0700. Existing ones are left as they are
 * here (fix_dir_mode tightens dir). */
static int make_dirs(const char *dir, otad_errbuf *eb) {
  int e = fs_mkdir_p(dir, 0700, eb);
  return e == 0 ? 0 : e == ENAMETOOLONG ? OTAD_EINVAL : OTAD_EIO;
}

/* A store owned by another user is refused: that user could read the device's keys and
 * replace its pinned CA. Nothing is changed: the owner is for the administrator to fix. */
static int owned_by_us(const struct stat *st, const char *path, otad_errbuf *eb) {
  uid_t me = geteuid();
  if (st->st_uid == me) return 0;
  return otad_fail(eb, OTAD_EIO,
                   "%s is owned by uid %u, not by uid %u that runs otad: that user could read "
                   "or replace the device's keys and pinned CA; refusing to use it "
                   "(chown -R %u it, or set another [storage] path)",
                   path, (unsigned)st->st_uid, (unsigned)me, (unsigned)me);
}

static int fix_dir_mode(int dirfd, const char *dir, const warner *w, otad_errbuf *eb) {
  struct stat st;
  if (fstat(dirfd, &st) < 0) return fail_errno(eb, errno, "checking", dir);
  if (owned_by_us(&st, dir, eb)) return OTAD_EIO;
  if (!(st.st_mode & 077)) return 0;
  if (fchmod(dirfd, 0700) < 0)
    return otad_fail(eb, OTAD_EIO, "%s has mode %04o and cannot be restricted to 0700: %s", dir,
                     (unsigned)(st.st_mode & 07777), strerror(errno));
  warn(w, "%s had mode %04o (open to group/other): changed to 0700", dir,
       (unsigned)(st.st_mode & 07777));
  return 0;
}

/* Secret files readable by group/other (an older agent, a manual copy) become 0600. */
static int fix_secret_modes(int dirfd, const char *dir, const warner *w, otad_errbuf *eb) {
  static const char *const secrets[] = {STORE_PKEY_PEM, STORE_ECU_KEY, STORE_CREDS_PENDING};
  for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
    char path[PATH_MAX];
    struct stat st;
    join(path, sizeof(path), dir, secrets[i]);
    if (fstatat(dirfd, secrets[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) continue;
      return fail_errno(eb, errno, "checking", path);
    }
    if (owned_by_us(&st, path, eb)) return OTAD_EIO;
    if (!S_ISREG(st.st_mode) || !(st.st_mode & 077)) continue;
    if (fchmodat(dirfd, secrets[i], 0600, 0) < 0)
      return otad_fail(eb, OTAD_EIO, "%s has mode %04o and cannot be restricted to 0600: %s", path,
                       (unsigned)(st.st_mode & 07777), strerror(errno));
    warn(w, "%s had mode %04o (open to group/other): changed to 0600", path,
         (unsigned)(st.st_mode & 07777));
  }
  return 0;
}

/* ".NAME.tmp.PID", what atomic_write_at creates; store names never start with '.'. */
static bool is_temp_name(const char *name) {
  const char *t = name[0] == '.' ? strstr(name + 1, ".tmp.") : NULL;
  return t && t[5] != '\0';
}

/* Removes temp files a crash left between create and rename. */
static int remove_stale_temps(int dirfd, const char *dir, const warner *w, otad_errbuf *eb) {
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (!d) {
    int e = errno;
    if (fd >= 0) close(fd);
    return fail_errno(eb, e, "listing", dir);
  }
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (!is_temp_name(de->d_name)) continue;
    char path[PATH_MAX];
    join(path, sizeof(path), dir, de->d_name);
    if (unlinkat(dirfd, de->d_name, 0) == 0)
      warn(w, "removed %s, left by an interrupted write", path);
    else
      warn(w, "cannot remove %s, left by an interrupted write: %s", path, strerror(errno));
  }
  closedir(d);
  return 0;
}

store *store_fs_open_warn(const char *dir, store_warn_fn warn_fn, void *ctx, otad_errbuf *eb) {
  if (!dir || !*dir) {
    otad_fail(eb, OTAD_EINVAL, "storage path is empty");
    return NULL;
  }
  if (make_dirs(dir, eb) != 0) return NULL;
  int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    fail_errno(eb, errno, "opening", dir);
    return NULL;
  }
  const warner w = {warn_fn, ctx};
  fs_store *fs = NULL;
  if (fix_dir_mode(dirfd, dir, &w, eb) || fix_secret_modes(dirfd, dir, &w, eb) ||
      remove_stale_temps(dirfd, dir, &w, eb))
    goto fail;
  if (access(dir, W_OK | X_OK) < 0) { /* catches read-only mounts, even for root */
    fail_errno(eb, errno, "cannot write to", dir);
    goto fail;
  }
  fs = calloc(1, sizeof(*fs));
  if (!fs || !(fs->dir = strdup(dir))) {
    otad_fail(eb, OTAD_ENOMEM, "opening %s: out of memory", dir);
    goto fail;
  }
  fs->base.ops = &fs_ops;
  fs->dirfd = dirfd;
  return &fs->base;
fail:
  if (fs) free(fs);
  close(dirfd);
  return NULL;
}

store *store_fs_open(const char *dir, otad_errbuf *eb) {
  return store_fs_open_warn(dir, NULL, NULL, eb);
}

/* ---- helpers for any backend ------------------------------------------------------ */

char *store_read_string(store *s, const char *name) {
  char *data;
  size_t len;
  if (store_read(s, name, &data, &len, NULL) != 0) return NULL;
  size_t start = 0;
  while (start < len && isspace((unsigned char)data[start]))
    start++;
  while (len > start && isspace((unsigned char)data[len - 1]))
    len--;
  memmove(data, data + start, len - start);
  data[len - start] = '\0';
  return data;
}
