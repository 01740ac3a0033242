/* fuzz_archive.c - libFuzzer target: the archive installer (install_archive(), pacman/unpack.h)
 * with hostile archives: tar (plain, gzip, xz, zstd) or zip, as `[pacman] type = "archive"`
 * unpacks a downloaded target.
 *
 * Each input is written to a file on tmpfs and installed as version "v1" into an empty
 * directory, next to a directory "outside" holding one file. Checked (abort when broken):
 * nothing is created, changed or removed outside the install directory; a failure says
 * why and leaves the install directory empty; a success leaves `current` -> v1 and a tree
 * with only directories, regular files and symlinks that stay inside it (no device nodes,
 * FIFOs, sockets, setuid/setgid bits). The directories are removed again after each input.
 * FUZZ_ARCHIVE_VERBOSE=1 prints each outcome (to check the seeds).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "pacman/unpack.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz_archive: invariant broken: %s (line %d)\n", #cond, __LINE__);          \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static char base[PATH_MAX], root[PATH_MAX], outside[PATH_MAX], archive[PATH_MAX];
static char tree[PATH_MAX]; /* realpath of root/v1 during a check */

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  (void)flag, (void)ftw;
  if (S_ISDIR(st->st_mode)) chmod(p, 0700); /* unpacked without write permission */
  remove(p);
  return 0;
}

/* Names in dir, 0 when it is empty; -1 when it cannot be read. */
static int count_entries(const char *dir, char *first, size_t n) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (count++ == 0 && first) snprintf(first, n, "%s", e->d_name);
  }
  closedir(d);
  return count;
}

static int check_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  (void)ftw;
  CHECK(flag != FTW_NS);
  CHECK(S_ISDIR(st->st_mode) || S_ISREG(st->st_mode) || S_ISLNK(st->st_mode));
  CHECK((st->st_mode & (S_ISUID | S_ISGID)) == 0);
  if (S_ISLNK(st->st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlink(p, target, sizeof(target) - 1);
    CHECK(n > 0);
    target[n] = 0;
    if (target[0] == '/') {
      fprintf(stderr, "fuzz_archive: absolute symlink %s -> %s\n", p, target);
      abort();
    }
    char real[PATH_MAX];
    if (realpath(p, real)) { /* dangling is harmless; a resolving one must stay inside */
      size_t tl = strlen(tree);
      if (strncmp(real, tree, tl) != 0 || (real[tl] != 0 && real[tl] != '/')) {
        fprintf(stderr, "fuzz_archive: symlink %s leads out, to %s\n", p, real);
        abort();
      }
    }
  }
  return 0;
}

static void cleanup(void) {
  nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  log_set_level(LOG_FATAL + 1);
  snprintf(base, sizeof(base), "/dev/shm/otad-fuzz-archive-%d", (int)getpid());
  nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  snprintf(root, sizeof(root), "%s/install", base);
  snprintf(outside, sizeof(outside), "%s/outside", base);
  snprintf(archive, sizeof(archive), "%s/target.archive", base);
  CHECK(mkdir(base, 0700) == 0 && mkdir(outside, 0700) == 0);
  char sentinel[PATH_MAX];
  snprintf(sentinel, sizeof(sentinel), "%s/keep", outside);
  FILE *f = fopen(sentinel, "w");
  CHECK(f && fputs("keep", f) >= 0 && fclose(f) == 0);
  atexit(cleanup);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FILE *f = fopen(archive, "wb");
  CHECK(f != NULL);
  CHECK(fwrite(data, 1, size, f) == size || size == 0);
  CHECK(fclose(f) == 0);
  CHECK(mkdir(root, 0700) == 0);

  char err[512] = "";
  int rc = install_archive(archive, root, "v1", 4 * 1024 * 1024, err, sizeof(err));
  if (getenv("FUZZ_ARCHIVE_VERBOSE")) fprintf(stderr, "install: %d %s\n", rc, err);

  /* nothing outside the install directory moved */
  char first[256] = "";
  CHECK(count_entries(base, NULL, 0) == 3); /* install, outside, target.archive */
  CHECK(count_entries(outside, first, sizeof(first)) == 1 && strcmp(first, "keep") == 0);
  struct stat st;
  char sentinel[PATH_MAX];
  snprintf(sentinel, sizeof(sentinel), "%s/keep", outside);
  CHECK(lstat(sentinel, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 4);

  if (rc != 0) {
    CHECK(err[0] != 0);
    int n = count_entries(root, first, sizeof(first));
    if (n != 0) {
      fprintf(stderr, "fuzz_archive: failed (%s) but left %s behind\n", err, first);
      abort();
    }
  } else {
    char link[PATH_MAX], cur[PATH_MAX], v1[PATH_MAX];
    snprintf(cur, sizeof(cur), "%s/current", root);
    ssize_t n = readlink(cur, link, sizeof(link) - 1);
    CHECK(n == 2 && memcmp(link, "v1", 2) == 0);
    snprintf(v1, sizeof(v1), "%s/v1", root);
    CHECK(realpath(v1, tree) != NULL);
    CHECK(nftw(v1, check_cb, 16, FTW_PHYS) == 0);
    CHECK(count_entries(root, NULL, 0) == 2); /* current, v1 */
  }
  nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
