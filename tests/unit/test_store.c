/* test_store.c - the store interface on both backends, and the atomic write beneath it.
 *
 * Every test gets a fresh directory under /tmp. The same basic checks run on the fs and
 * the memory backend; the fs tests add modes, repairs at open, stale temp files and
 * failures (missing dir, read-only dir, full disk) that must leave the old content intact.
 * Read-only and full-disk cases need a tmpfs mount when running as root (root ignores
 * permission bits); they are skipped where mounting is not allowed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/store.h"

typedef struct fixture {
  char root[64]; /* mkdtemp'ed, removed at teardown */
  char dir[128]; /* root/a/b/store: the store's directory (not created yet) */
  char mnt[128]; /* root/mnt, a tmpfs when mounted */
  int mounted;
  int warns;
  char last_warn[1024];
} fixture;

static void capture_warn(void *ctx, const char *msg) {
  fixture *f = ctx;
  f->warns++;
  snprintf(f->last_warn, sizeof(f->last_warn), "%s", msg);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  strcpy(f->root, "/tmp/otad-test-store-XXXXXX");
  assert_non_null(mkdtemp(f->root));
  snprintf(f->dir, sizeof(f->dir), "%s/a/b/store", f->root);
  snprintf(f->mnt, sizeof(f->mnt), "%s/mnt", f->root);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (f->mounted) umount2(f->mnt, MNT_DETACH);
  nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

/* Mounts a tmpfs of size bytes at f->mnt; 0 if it worked (root and allowed). */
static int mount_tmpfs(fixture *f, const char *size) {
  if (geteuid() != 0) return -1;
  mkdir(f->mnt, 0755);
  char opts[64];
  snprintf(opts, sizeof(opts), "size=%s,mode=0700", size);
  if (mount("tmpfs", f->mnt, "tmpfs", 0, opts) != 0) return -1;
  f->mounted = 1;
  return 0;
}

static void write_raw(const char *path, const char *data, size_t len, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
}

static void assert_file(const char *path, const char *want) {
  char buf[256] = {0};
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  assert_true(n >= 0);
  assert_string_equal(buf, want);
}

static unsigned mode_of(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return st.st_mode & 07777;
}

static int count_temps(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    n += strstr(de->d_name, ".tmp.") != NULL;
  closedir(d);
  return n;
}

static void assert_value(store *s, const char *name, const char *want) {
  char *data = NULL;
  size_t len = 99;
  otad_errbuf eb = {{0}};
  assert_int_equal(store_read(s, name, &data, &len, &eb), 0);
  assert_int_equal(len, strlen(want));
  assert_memory_equal(data, want, len + 1); /* with the NUL */
  free(data);
}

static store *open_fs(fixture *f) {
  otad_errbuf eb = {{0}};
  store *s = store_fs_open_warn(f->dir, capture_warn, f, &eb);
  if (!s) fail_msg("store_fs_open: %s", eb.msg);
  return s;
}

/* ---- checks both backends must pass ----------------------------------------------- */

static void exercise_basic(store *s) {
  otad_errbuf eb = {{0}};
  char *data = (char *)"untouched";
  size_t len = 7;
  assert_int_equal(store_read(s, STORE_DEVICE_ID, &data, &len, &eb), OTAD_ENOENT);
  assert_null(data);
  assert_non_null(strstr(eb.msg, "device_id"));

  assert_int_equal(store_write(s, STORE_DEVICE_ID, "abc", 3, false, &eb), 0);
  assert_value(s, STORE_DEVICE_ID, "abc");
  assert_int_equal(store_write(s, STORE_DEVICE_ID, "a longer value", 14, false, &eb), 0);
  assert_value(s, STORE_DEVICE_ID, "a longer value");
  assert_int_equal(store_write(s, STORE_DEVICE_ID, "x", 1, false, &eb), 0);
  assert_value(s, STORE_DEVICE_ID, "x");
  assert_int_equal(store_write(s, STORE_PKEY_PEM, "secret", 6, true, &eb), 0);
  assert_value(s, STORE_PKEY_PEM, "secret");
  assert_value(s, STORE_DEVICE_ID, "x");
  assert_int_equal(store_write(s, STORE_ECU_REGISTERED, "", 0, false, &eb), 0);
  assert_value(s, STORE_ECU_REGISTERED, "");

  assert_int_equal(store_remove(s, STORE_DEVICE_ID, &eb), 0);
  assert_int_equal(store_read(s, STORE_DEVICE_ID, &data, &len, &eb), OTAD_ENOENT);
  assert_int_equal(store_remove(s, STORE_DEVICE_ID, &eb), 0); /* absent: fine */
  assert_value(s, STORE_PKEY_PEM, "secret");
}

static void exercise_names(store *s) {
  static const char *const bad[] = {
      "", ".", "..", "a/b", "/etc/passwd", "../x", ".hidden", ".pkey.pem.tmp.1"};
  otad_errbuf eb = {{0}};
  char *data;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(store_write(s, bad[i], "x", 1, false, &eb), OTAD_EINVAL);
    assert_int_equal(store_read(s, bad[i], &data, NULL, &eb), OTAD_EINVAL);
    assert_int_equal(store_remove(s, bad[i], &eb), OTAD_EINVAL);
  }
  char name[202];
  memset(name, 'n', 201);
  name[201] = '\0';
  assert_int_equal(store_write(s, name, "x", 1, false, &eb), OTAD_EINVAL);
  name[200] = '\0';
  assert_int_equal(store_write(s, name, "x", 1, false, &eb), 0);
  assert_value(s, name, "x");
  assert_int_equal(store_check_name("gateway.url", &eb), 0);
}

static void exercise_limits(store *s) {
  otad_errbuf eb = {{0}};
  char *big = calloc(1, STORE_MAX_VALUE + 1);
  memset(big, 'b', STORE_MAX_VALUE + 1);
  assert_int_equal(store_write(s, "big", big, STORE_MAX_VALUE + 1, false, &eb), OTAD_EINVAL);
  assert_int_equal(store_write(s, "big", big, STORE_MAX_VALUE, false, &eb), 0);
  char *data;
  size_t len;
  assert_int_equal(store_read(s, "big", &data, &len, &eb), 0);
  assert_int_equal(len, STORE_MAX_VALUE);
  assert_memory_equal(data, big, len);
  assert_int_equal(data[len], '\0');
  free(data);
  free(big);
}

static void exercise_read_string(store *s) {
  otad_errbuf eb = {{0}};
  assert_int_equal(
      store_write(s, STORE_SERVER_URL, " \thttps://gw.example:443 \n\n", 27, false, &eb), 0);
  char *url = store_read_string(s, STORE_SERVER_URL);
  assert_string_equal(url, "https://gw.example:443");
  free(url);
  assert_int_equal(store_write(s, STORE_SERVER_URL, " \n ", 3, false, &eb), 0);
  url = store_read_string(s, STORE_SERVER_URL);
  assert_string_equal(url, "");
  free(url);
  assert_null(store_read_string(s, "absent"));
}

/* ---- fs backend ------------------------------------------------------------------- */

static void test_fs_basic(void **state) {
  fixture *f = *state;
  store *s = open_fs(f);
  exercise_basic(s);
  exercise_read_string(s);
  store_close(s);
  assert_int_equal(f->warns, 0);
  assert_int_equal(count_temps(f->dir), 0);
}

static void test_fs_persists(void **state) {
  fixture *f = *state;
  otad_errbuf eb;
  store *s = open_fs(f);
  assert_int_equal(store_write(s, STORE_CLIENT_PEM, "cert", 4, false, &eb), 0);
  store_close(s);
  s = store_fs_open(f->dir, &eb);
  assert_non_null(s);
  assert_value(s, STORE_CLIENT_PEM, "cert");
  store_close(s);
  char path[256];
  snprintf(path, sizeof(path), "%s/client.pem", f->dir);
  assert_file(path, "cert");
}

static void test_fs_names(void **state) {
  fixture *f = *state;
  store *s = open_fs(f);
  exercise_names(s);
  store_close(s);
}

static void test_fs_limits(void **state) {
  fixture *f = *state;
  store *s = open_fs(f);
  exercise_limits(s);
  /* A file on disk bigger than the limit (put there by someone else) is refused. */
  char path[256];
  snprintf(path, sizeof(path), "%s/huge", f->dir);
  char *big = calloc(1, STORE_MAX_VALUE + 1);
  write_raw(path, big, STORE_MAX_VALUE + 1, 0644);
  free(big);
  otad_errbuf eb = {{0}};
  char *data;
  assert_int_equal(store_read(s, "huge", &data, NULL, &eb), OTAD_EIO);
  assert_non_null(strstr(eb.msg, "1 MiB"));
  assert_non_null(strstr(eb.msg, path));
  /* A directory where a value should be is an I/O error, not a crash. */
  snprintf(path, sizeof(path), "%s/adir", f->dir);
  assert_int_equal(mkdir(path, 0700), 0);
  assert_int_equal(store_read(s, "adir", &data, NULL, &eb), OTAD_EIO);
  store_close(s);
}

static void test_fs_modes(void **state) {
  fixture *f = *state;
  mode_t old = umask(077); /* the modes must not depend on the umask */
  store *s = open_fs(f);
  otad_errbuf eb;
  assert_int_equal(store_write(s, STORE_PKEY_PEM, "k", 1, true, &eb), 0);
  assert_int_equal(store_write(s, STORE_ROOT_CRT, "c", 1, false, &eb), 0);
  store_close(s);
  umask(old);
  char path[256];
  assert_int_equal(mode_of(f->dir), 0700);
  snprintf(path, sizeof(path), "%s/pkey.pem", f->dir);
  assert_int_equal(mode_of(path), 0600);
  snprintf(path, sizeof(path), "%s/root.crt", f->dir);
  assert_int_equal(mode_of(path), 0644);
  snprintf(path, sizeof(path), "%s/a", f->root); /* a parent made by mkdir -p */
  assert_int_equal(mode_of(path) & 0700, 0700);
  assert_int_equal(f->warns, 0);
}

static void test_fs_fixes_modes_at_open(void **state) {
  fixture *f = *state;
  char path[256];
  snprintf(path, sizeof(path), "%s/a", f->root);
  mkdir(path, 0755);
  snprintf(path, sizeof(path), "%s/a/b", f->root);
  mkdir(path, 0755);
  assert_int_equal(mkdir(f->dir, 0755), 0);
  assert_int_equal(chmod(f->dir, 0755), 0);
  snprintf(path, sizeof(path), "%s/pkey.pem", f->dir);
  write_raw(path, "k", 1, 0644);
  snprintf(path, sizeof(path), "%s/ecukey.pem", f->dir);
  write_raw(path, "e", 1, 0640);
  snprintf(path, sizeof(path), "%s/creds.pending", f->dir);
  write_raw(path, "{}", 2, 0604);
  snprintf(path, sizeof(path), "%s/client.pem", f->dir);
  write_raw(path, "c", 1, 0644);

  store *s = open_fs(f);
  assert_int_equal(f->warns, 4);
  assert_int_equal(mode_of(f->dir), 0700);
  snprintf(path, sizeof(path), "%s/pkey.pem", f->dir);
  assert_int_equal(mode_of(path), 0600);
  snprintf(path, sizeof(path), "%s/ecukey.pem", f->dir);
  assert_int_equal(mode_of(path), 0600);
  snprintf(path, sizeof(path), "%s/creds.pending", f->dir);
  assert_int_equal(mode_of(path), 0600);
  snprintf(path, sizeof(path), "%s/client.pem", f->dir);
  assert_int_equal(mode_of(path), 0644); /* not a secret: left alone */
  assert_value(s, STORE_PKEY_PEM, "k");
  store_close(s);

  f->warns = 0; /* a second open finds nothing to fix */
  store_close(open_fs(f));
  assert_int_equal(f->warns, 0);
}

static void test_fs_removes_stale_temps(void **state) {
  fixture *f = *state;
  store_close(open_fs(f));
  char path[256];
  snprintf(path, sizeof(path), "%s/.pkey.pem.tmp.1234", f->dir);
  write_raw(path, "half a key", 10, 0600);
  snprintf(path, sizeof(path), "%s/.device_id.tmp.99999", f->dir);
  write_raw(path, "", 0, 0644);
  snprintf(path, sizeof(path), "%s/device_id", f->dir);
  write_raw(path, "kept", 4, 0644);
  snprintf(path, sizeof(path), "%s/.tmp.", f->dir); /* not our pattern: left alone */
  write_raw(path, "", 0, 0644);

  store *s = open_fs(f);
  assert_int_equal(f->warns, 2);
  assert_non_null(strstr(f->last_warn, "interrupted write"));
  assert_int_equal(count_temps(f->dir), 1);
  assert_int_equal(access(path, F_OK), 0);
  assert_value(s, STORE_DEVICE_ID, "kept");
  store_close(s);
}

static void test_fs_open_fails_cleanly(void **state) {
  fixture *f = *state;
  otad_errbuf eb = {{0}};
  char path[256];
  snprintf(path, sizeof(path), "%s/file", f->root);
  write_raw(path, "x", 1, 0644);
  snprintf(path, sizeof(path), "%s/file/store", f->root);
  assert_null(store_fs_open(path, &eb));
  assert_non_null(strstr(eb.msg, f->root));
  assert_null(store_fs_open("", &eb));
}

static void test_atomic_write_file(void **state) {
  fixture *f = *state;
  otad_errbuf eb = {{0}};
  char path[256], tmp[300];
  snprintf(path, sizeof(path), "%s/creds.zip", f->root);
  write_raw(path, "old", 3, 0600);
  /* A leftover temp file of this very PID (an earlier crash) does not block the write. */
  snprintf(tmp, sizeof(tmp), "%s/.creds.zip.tmp.%ld", f->root, (long)getpid());
  write_raw(tmp, "junk", 4, 0644);
  assert_int_equal(atomic_write_file(path, "new", 3, 0640, &eb), 0);
  assert_file(path, "new");
  assert_int_equal(mode_of(path), 0640);
  assert_int_equal(count_temps(f->root), 0);

  /* Relative path: the directory is ".". */
  char cwd[256];
  assert_non_null(getcwd(cwd, sizeof(cwd)));
  assert_int_equal(chdir(f->root), 0);
  assert_int_equal(atomic_write_file("rel", "r", 1, 0644, &eb), 0);
  assert_int_equal(chdir(cwd), 0);
  snprintf(path, sizeof(path), "%s/rel", f->root);
  assert_file(path, "r");
}

static void test_atomic_missing_dir(void **state) {
  fixture *f = *state;
  otad_errbuf eb = {{0}};
  char path[256];
  snprintf(path, sizeof(path), "%s/missing/dir/file", f->root);
  assert_int_equal(atomic_write_file(path, "x", 1, 0644, &eb), OTAD_EIO);
  assert_non_null(strstr(eb.msg, path));
  assert_non_null(strstr(eb.msg, "No such file"));
  snprintf(path, sizeof(path), "%s/", f->root);
  assert_int_equal(atomic_write_file(path, "x", 1, 0644, &eb), OTAD_EINVAL);
}

/* A directory the agent cannot write: old content stays, no temp file is left. */
static void test_atomic_readonly_dir(void **state) {
  fixture *f = *state;
  otad_errbuf eb = {{0}};
  char path[256];
  if (geteuid() != 0) {
    snprintf(f->mnt, sizeof(f->mnt), "%s/ro", f->root);
    assert_int_equal(mkdir(f->mnt, 0755), 0);
  } else if (mount_tmpfs(f, "64k") != 0) {
    skip();
  }
  snprintf(path, sizeof(path), "%s/pkey.pem", f->mnt);
  write_raw(path, "old key", 7, 0600);
  if (geteuid() != 0)
    assert_int_equal(chmod(f->mnt, 0500), 0);
  else
    assert_int_equal(mount("tmpfs", f->mnt, "tmpfs", MS_REMOUNT | MS_RDONLY, NULL), 0);

  assert_int_equal(atomic_write_file(path, "new key", 7, 0600, &eb), OTAD_EIO);
  assert_non_null(strstr(eb.msg, path));
  assert_file(path, "old key");
  assert_int_equal(count_temps(f->mnt), 0);
  /* Opening it as a store fails too: it cannot be written. */
  assert_null(store_fs_open(f->mnt, &eb));
  if (geteuid() != 0) chmod(f->mnt, 0700);
}

/* A full disk: OTAD_ENOSPC, the old value intact, no temp file left. */
static void test_fs_disk_full(void **state) {
  fixture *f = *state;
  if (mount_tmpfs(f, "64k") != 0) skip();
  otad_errbuf eb = {{0}};
  store *s = store_fs_open_warn(f->mnt, capture_warn, f, &eb);
  assert_non_null(s);
  assert_int_equal(store_write(s, STORE_PKEY_PEM, "old key", 7, true, &eb), 0);

  size_t n = 256 * 1024;
  char *big = malloc(n);
  memset(big, 'k', n);
  assert_int_equal(store_write(s, STORE_PKEY_PEM, big, n, true, &eb), OTAD_ENOSPC);
  char want[256];
  snprintf(want, sizeof(want), "writing %s/pkey.pem: No space left on device", f->mnt);
  assert_string_equal(eb.msg, want);
  assert_value(s, STORE_PKEY_PEM, "old key");
  assert_int_equal(count_temps(f->mnt), 0);

  assert_int_equal(store_write(s, STORE_CLIENT_PEM, big, n, false, &eb), OTAD_ENOSPC);
  char *data;
  assert_int_equal(store_read(s, STORE_CLIENT_PEM, &data, NULL, &eb), OTAD_ENOENT);
  assert_int_equal(count_temps(f->mnt), 0);

  char path[256];
  snprintf(path, sizeof(path), "%s/creds.zip", f->mnt);
  assert_int_equal(atomic_write_file(path, big, n, 0600, &eb), OTAD_ENOSPC);
  assert_int_equal(access(path, F_OK), -1);
  free(big);

  /* Once there is room again, writes work. */
  assert_int_equal(store_write(s, STORE_PKEY_PEM, "new key", 7, true, &eb), 0);
  assert_value(s, STORE_PKEY_PEM, "new key");
  store_close(s);
}

/* ---- memory backend --------------------------------------------------------------- */

static void test_mem_basic(void **state) {
  store *s = store_mem_open();
  assert_non_null(s);
  exercise_basic(s);
  exercise_read_string(s);
  store_close(s);
}

static void test_mem_names_and_limits(void **state) {
  store *s = store_mem_open();
  exercise_names(s);
  exercise_limits(s);
  store_close(s);
}

static void test_mem_stores_are_separate(void **state) {
  store *a = store_mem_open(), *b = store_mem_open();
  otad_errbuf eb;
  assert_int_equal(store_write(a, STORE_DEVICE_ID, "a", 1, false, &eb), 0);
  assert_int_equal(store_write(b, STORE_DEVICE_ID, "b", 1, false, &eb), 0);
  /* Binary data with NULs comes back whole. */
  assert_int_equal(store_write(a, "bin", "x\0y", 3, true, &eb), 0);
  assert_value(a, STORE_DEVICE_ID, "a");
  assert_value(b, STORE_DEVICE_ID, "b");
  char *data;
  size_t len;
  assert_int_equal(store_read(a, "bin", &data, &len, &eb), 0);
  assert_int_equal(len, 3);
  assert_memory_equal(data, "x\0y", 4);
  free(data);
  store_close(a);
  store_close(b);
  store_close(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_fs_basic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fs_persists, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fs_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fs_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fs_modes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fs_fixes_modes_at_open, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fs_removes_stale_temps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fs_open_fails_cleanly, setup, teardown),
      cmocka_unit_test_setup_teardown(test_atomic_write_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_atomic_missing_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_atomic_readonly_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fs_disk_full, setup, teardown),
      cmocka_unit_test(test_mem_basic),
      cmocka_unit_test(test_mem_names_and_limits),
      cmocka_unit_test(test_mem_stores_are_separate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
