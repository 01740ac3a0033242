/* test_install.c - install_archive(): the rules for unpacking an archive target.
 *
 * Each test builds its archives with libarchive's writer (the same static libarchive
 * otad uses) in a fresh directory under /tmp: good tar.gz/.xz/.zst and zip trees that must
 * land under root/<version> with `current` switched, and hostile ones (path traversal,
 * absolute names, escaping symlinks and hardlinks, writing through a symlink, device
 * nodes, FIFOs, decompression bombs) that must be refused with nothing left behind:
 * no version directory, no temporary directory, `current` untouched, nothing outside.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "pacman/unpack.h"

enum fmt { TAR_GZ, TAR_XZ, TAR_ZST, TAR, ZIP };

/* One entry to write: a file (data, or zeros bytes of zeros), a directory, a symlink,
 * a hardlink, or a special file. */
typedef struct ent {
  const char *name;
  int type;         /* AE_IFREG (default when 0), AE_IFDIR, AE_IFLNK, AE_IFCHR, AE_IFIFO */
  const char *data; /* file content */
  const char *link; /* symlink target */
  const char *hard; /* hardlink target */
  unsigned mode;    /* 0 = 0644 / 0755 */
  size_t zeros;     /* file of this many zero bytes */
} ent;

typedef struct fixture {
  char dir[64];   /* mkdtemp'ed; archives live here */
  char root[128]; /* dir/images/installed: install_archive's dest_root */
  char err[512];
} fixture;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  if (flag == FTW_DP) chmod(path, 0700);
  return remove(path);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  strcpy(f->dir, "/tmp/otad-test-install-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->root, sizeof(f->root), "%s/images/installed", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

static void make_archive(const char *path, enum fmt fmt, const ent *ents, size_t n) {
  struct archive *a = archive_write_new();
  assert_non_null(a);
  if (fmt == ZIP) {
    assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
  } else {
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    if (fmt == TAR_GZ) assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    if (fmt == TAR_XZ) assert_int_equal(archive_write_add_filter_xz(a), ARCHIVE_OK);
    if (fmt == TAR_ZST) assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
  }
  assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
  static char zeros[65536];
  for (size_t i = 0; i < n; i++) {
    const ent *x = &ents[i];
    struct archive_entry *e = archive_entry_new();
    int type = x->type ? x->type : (int)AE_IFREG;
    archive_entry_set_pathname(e, x->name);
    archive_entry_set_mtime(e, 1700000000, 0);
    if (x->hard) {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_hardlink(e, x->hard);
      archive_entry_set_perm(e, 0644);
      archive_entry_set_size(e, 0);
    } else {
      archive_entry_set_filetype(e, (unsigned)type);
      archive_entry_set_perm(e, x->mode ? x->mode : type == AE_IFDIR ? 0755 : 0644);
      if (type == AE_IFLNK) archive_entry_set_symlink(e, x->link);
      if (type == AE_IFCHR) archive_entry_set_rdev(e, makedev(8, 0));
      size_t size = x->data ? strlen(x->data) : x->zeros;
      if (fmt != ZIP || x->data) /* a zip entry of zeros: size unknown up front */
        archive_entry_set_size(e, type == AE_IFREG ? (la_int64_t)size : 0);
    }
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    if (!x->hard && type == AE_IFREG) {
      if (x->data) {
        assert_int_equal(archive_write_data(a, x->data, strlen(x->data)),
                         (la_ssize_t)strlen(x->data));
      } else {
        for (size_t left = x->zeros; left;) {
          size_t k = left < sizeof(zeros) ? left : sizeof(zeros);
          assert_int_equal(archive_write_data(a, zeros, k), (la_ssize_t)k);
          left -= k;
        }
      }
    }
    archive_entry_free(e);
  }
  assert_int_equal(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

static const char *arch(fixture *f, const char *name) {
  static char path[256];
  snprintf(path, sizeof(path), "%s/%s", f->dir, name);
  return path;
}

static void assert_file(const char *path, const char *want) {
  char buf[512] = {0};
  int fd = open(path, O_RDONLY);
  if (fd < 0) fail_msg("%s: %s", path, strerror(errno));
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  assert_true(n >= 0);
  assert_string_equal(buf, want);
}

static void assert_link(const char *path, const char *want) {
  char buf[256];
  ssize_t n = readlink(path, buf, sizeof(buf) - 1);
  if (n < 0) fail_msg("%s: %s", path, strerror(errno));
  buf[n] = 0;
  assert_string_equal(buf, want);
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static char *in_root(fixture *f, const char *rel) {
  static char path[512];
  snprintf(path, sizeof(path), "%s/%s", f->root, rel);
  return path;
}

/* Names in root, excluding "." and ".."; hidden ones counted separately. */
static void count_root(fixture *f, int *visible, int *hidden) {
  *visible = *hidden = 0;
  DIR *d = opendir(f->root);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (e->d_name[0] == '.')
      ++*hidden;
    else
      ++*visible;
  }
  closedir(d);
}

/* Installs and expects a refusal whose message contains want; nothing may be left. */
static void expect_refused(fixture *f, const char *archive, const char *version, uint64_t max,
                           const char *want) {
  int before_visible, before_hidden;
  count_root(f, &before_visible, &before_hidden);
  char cur[256] = "";
  ssize_t n = readlink(in_root(f, "current"), cur, sizeof(cur) - 1);
  cur[n > 0 ? n : 0] = 0;
  f->err[0] = 0;
  int rc = install_archive(archive, f->root, version, max, f->err, sizeof(f->err));
  if (rc == 0) fail_msg("%s was installed, expected a refusal (%s)", archive, want);
  if (!strstr(f->err, want)) fail_msg("error '%s' does not mention '%s'", f->err, want);
  if (getenv("OTAD_TEST_VERBOSE")) print_message("refused: %s\n", f->err);
  assert_false(exists(in_root(f, version)));
  int visible, hidden;
  count_root(f, &visible, &hidden);
  assert_int_equal(visible, before_visible);
  assert_int_equal(hidden, 0); /* no temporary directory left */
  char now[256] = "";
  n = readlink(in_root(f, "current"), now, sizeof(now) - 1);
  now[n > 0 ? n : 0] = 0;
  assert_string_equal(now, cur);
}

static void install_ok(fixture *f, const char *archive, const char *version) {
  f->err[0] = 0;
  if (install_archive(archive, f->root, version, 0, f->err, sizeof(f->err)) != 0)
    fail_msg("install %s as %s: %s", archive, version, f->err);
  assert_link(in_root(f, "current"), version);
}

/* ---- good archives ------------------------------------------------------------------ */

static const ent tree[] = {
    {.name = "./", .type = AE_IFDIR},
    {.name = "bin/", .type = AE_IFDIR},
    {.name = "bin/app", .data = "#!/bin/sh\necho app\n", .mode = 04755},
    {.name = "./etc//conf", .data = "key=value\n"},
    {.name = "lib/libx.so.1", .data = "ELF"},
    {.name = "lib/libx.so", .type = AE_IFLNK, .link = "libx.so.1"},
    {.name = "bin/conf", .type = AE_IFLNK, .link = "../etc/conf"},
    {.name = "bin/app2", .hard = "bin/app"},
    {.name = "ro/", .type = AE_IFDIR, .mode = 0555},
    {.name = "ro/file", .data = "read-only dir\n"},
};

static void check_tree(fixture *f, const char *version) {
  char p[512];
  snprintf(p, sizeof(p), "%s/%s/bin/app", f->root, version);
  assert_file(p, "#!/bin/sh\necho app\n");
  struct stat st, st2;
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0755); /* setuid dropped */
  snprintf(p, sizeof(p), "%s/%s/bin/app2", f->root, version);
  assert_int_equal(stat(p, &st2), 0);
  assert_int_equal(st.st_ino, st2.st_ino); /* a real hardlink */
  snprintf(p, sizeof(p), "%s/%s/etc/conf", f->root, version);
  assert_file(p, "key=value\n");
  snprintf(p, sizeof(p), "%s/%s/lib/libx.so", f->root, version);
  assert_link(p, "libx.so.1");
  assert_file(p, "ELF");
  snprintf(p, sizeof(p), "%s/%s/bin/conf", f->root, version);
  assert_file(p, "key=value\n");
  snprintf(p, sizeof(p), "%s/current/ro/file", f->root);
  assert_file(p, "read-only dir\n");
}

static void test_tar_gz_installs_and_switches_current(void **state) {
  fixture *f = *state;
  make_archive(arch(f, "a.tar.gz"), TAR_GZ, tree, sizeof(tree) / sizeof(tree[0]));
  install_ok(f, arch(f, "a.tar.gz"), "1.0.0");
  check_tree(f, "1.0.0");
  int visible, hidden;
  count_root(f, &visible, &hidden);
  assert_int_equal(visible, 2); /* 1.0.0 and current */
  assert_int_equal(hidden, 0);
}

static void test_zip_installs(void **state) {
  fixture *f = *state;
  const ent z[] = {
      {.name = "app/", .type = AE_IFDIR},
      {.name = "app/run.sh", .data = "echo zip\n", .mode = 0755},
      {.name = "app/README", .data = "hello\n"},
      {.name = "app/link", .type = AE_IFLNK, .link = "README"},
  };
  make_archive(arch(f, "a.zip"), ZIP, z, 4);
  install_ok(f, arch(f, "a.zip"), "2.0");
  assert_file(in_root(f, "current/app/README"), "hello\n");
  assert_file(in_root(f, "2.0/app/run.sh"), "echo zip\n");
  assert_link(in_root(f, "2.0/app/link"), "README");
  struct stat st;
  assert_int_equal(stat(in_root(f, "2.0/app/run.sh"), &st), 0);
  assert_int_equal(st.st_mode & 0777, 0755);
}

static void test_xz_and_zstd(void **state) {
  fixture *f = *state;
  const ent one[] = {{.name = "f", .data = "compressed\n"}};
  make_archive(arch(f, "a.tar.xz"), TAR_XZ, one, 1);
  make_archive(arch(f, "a.tar.zst"), TAR_ZST, one, 1);
  make_archive(arch(f, "a.tar"), TAR, one, 1);
  install_ok(f, arch(f, "a.tar.xz"), "xz");
  assert_file(in_root(f, "current/f"), "compressed\n");
  install_ok(f, arch(f, "a.tar.zst"), "zst");
  assert_file(in_root(f, "current/f"), "compressed\n");
  install_ok(f, arch(f, "a.tar"), "plain");
  assert_file(in_root(f, "current/f"), "compressed\n");
}

/* The previous version stays for rollback; older ones go; the same version again is
 * replaced in place. */
static void test_versions_kept_pruned_replaced(void **state) {
  fixture *f = *state;
  const ent v1[] = {{.name = "v", .data = "1\n"}};
  const ent v2[] = {{.name = "v", .data = "2\n"}};
  const ent v3[] = {{.name = "v", .data = "3\n"}};
  const ent v3b[] = {{.name = "v", .data = "3b\n"}, {.name = "new", .data = "n\n"}};
  make_archive(arch(f, "1.tgz"), TAR_GZ, v1, 1);
  make_archive(arch(f, "2.tgz"), TAR_GZ, v2, 1);
  make_archive(arch(f, "3.tgz"), TAR_GZ, v3, 1);
  make_archive(arch(f, "3b.tgz"), TAR_GZ, v3b, 2);
  install_ok(f, arch(f, "1.tgz"), "v1");
  install_ok(f, arch(f, "2.tgz"), "v2");
  assert_file(in_root(f, "current/v"), "2\n");
  assert_file(in_root(f, "v1/v"), "1\n"); /* kept for rollback */
  install_ok(f, arch(f, "3.tgz"), "v3");
  assert_file(in_root(f, "current/v"), "3\n");
  assert_file(in_root(f, "v2/v"), "2\n");
  assert_false(exists(in_root(f, "v1"))); /* older than the previous one */
  install_ok(f, arch(f, "3b.tgz"), "v3");
  assert_file(in_root(f, "current/v"), "3b\n");
  assert_file(in_root(f, "current/new"), "n\n");
  assert_file(in_root(f, "v2/v"), "2\n"); /* a reinstall prunes nothing */
  int visible, hidden;
  count_root(f, &visible, &hidden);
  assert_int_equal(visible, 3);
  assert_int_equal(hidden, 0);
}

/* ---- refusals -------------------------------------------------------------------------- */

static void test_path_traversal(void **state) {
  fixture *f = *state;
  const ent good[] = {{.name = "ok", .data = "ok\n"}};
  make_archive(arch(f, "good.tgz"), TAR_GZ, good, 1);
  install_ok(f, arch(f, "good.tgz"), "base"); /* current exists and must stay */
  const ent dotdot[] = {{.name = "fine", .data = "x"}, {.name = "../x", .data = "evil\n"}};
  make_archive(arch(f, "dd.tgz"), TAR_GZ, dotdot, 2);
  expect_refused(f, arch(f, "dd.tgz"), "bad", 0, "'..'");
  const ent deep[] = {{.name = "a/b/../../../../escape", .data = "evil\n"}};
  make_archive(arch(f, "deep.zip"), ZIP, deep, 1);
  expect_refused(f, arch(f, "deep.zip"), "bad", 0, "'..'");
  assert_false(exists(in_root(f, "../x")));
  assert_false(exists(in_root(f, "../../escape")));
  assert_file(in_root(f, "current/ok"), "ok\n");
}

static void test_absolute_path(void **state) {
  fixture *f = *state;
  char abs[256];
  snprintf(abs, sizeof(abs), "%s/abs-target", f->dir);
  const ent e[] = {{.name = abs, .data = "evil\n"}};
  make_archive(arch(f, "abs.tgz"), TAR_GZ, e, 1);
  expect_refused(f, arch(f, "abs.tgz"), "bad", 0, "absolute path");
  assert_false(exists(abs));
  make_archive(arch(f, "abs.zip"), ZIP, e, 1);
  expect_refused(f, arch(f, "abs.zip"), "bad", 0, "absolute path");
  assert_false(exists(abs));
}

static void test_symlink_escapes(void **state) {
  fixture *f = *state;
  const ent up[] = {{.name = "a/evil", .type = AE_IFLNK, .link = "../../../etc"}};
  make_archive(arch(f, "up.tgz"), TAR_GZ, up, 1);
  expect_refused(f, arch(f, "up.tgz"), "bad", 0, "outside the tree");
  const ent abs[] = {{.name = "passwd", .type = AE_IFLNK, .link = "/etc/passwd"}};
  make_archive(arch(f, "abs.tgz"), TAR_GZ, abs, 1);
  expect_refused(f, arch(f, "abs.tgz"), "bad", 0, "outside the tree");
  /* each link alone looks inside; together "s1/.." would climb out of the tree */
  const ent chain[] = {{.name = "s1", .type = AE_IFLNK, .link = "."},
                       {.name = "s2", .type = AE_IFLNK, .link = "s1/../outside"}};
  make_archive(arch(f, "chain.zip"), ZIP, chain, 2);
  expect_refused(f, arch(f, "chain.zip"), "bad", 0, "outside the tree");
  /* a file written through a symlink that itself stays inside */
  const ent through[] = {{.name = "sub/", .type = AE_IFDIR},
                         {.name = "d", .type = AE_IFLNK, .link = "sub"},
                         {.name = "d/x", .data = "through\n"}};
  make_archive(arch(f, "through.tgz"), TAR_GZ, through, 3);
  expect_refused(f, arch(f, "through.tgz"), "bad", 0, "symlink");
}

static void test_hardlink_escapes(void **state) {
  fixture *f = *state;
  char outside[256];
  snprintf(outside, sizeof(outside), "%s/secret", f->dir);
  int fd = open(outside, O_WRONLY | O_CREAT, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "secret\n", 7), 7);
  close(fd);
  const ent up[] = {{.name = "h", .hard = "../../secret"}};
  make_archive(arch(f, "up.tgz"), TAR_GZ, up, 1);
  expect_refused(f, arch(f, "up.tgz"), "bad", 0, "hardlink");
  const ent abs[] = {{.name = "h", .hard = outside}};
  make_archive(arch(f, "abs.tgz"), TAR_GZ, abs, 1);
  expect_refused(f, arch(f, "abs.tgz"), "bad", 0, "hardlink");
  const ent missing[] = {{.name = "h", .hard = "not-extracted"}};
  make_archive(arch(f, "missing.tgz"), TAR_GZ, missing, 1);
  expect_refused(f, arch(f, "missing.tgz"), "bad", 0, "hardlink");
  /* through a symlink that points inside, to a file that is inside: still not a plain
   * path to a file extracted before */
  const ent vialink[] = {{.name = "dir/", .type = AE_IFDIR},
                         {.name = "dir/f", .data = "f\n"},
                         {.name = "l", .type = AE_IFLNK, .link = "dir"},
                         {.name = "h", .hard = "l/f"}};
  make_archive(arch(f, "vialink.tgz"), TAR_GZ, vialink, 4);
  expect_refused(f, arch(f, "vialink.tgz"), "bad", 0, "hardlink");
  struct stat st;
  assert_int_equal(stat(outside, &st), 0);
  assert_int_equal(st.st_nlink, 1);
}

static void test_special_files(void **state) {
  fixture *f = *state;
  const ent dev[] = {{.name = "ok", .data = "x"}, {.name = "dev/sda", .type = AE_IFCHR}};
  make_archive(arch(f, "dev.tgz"), TAR_GZ, dev, 2);
  expect_refused(f, arch(f, "dev.tgz"), "bad", 0, "character device");
  const ent fifo[] = {{.name = "pipe", .type = AE_IFIFO}};
  make_archive(arch(f, "fifo.tgz"), TAR_GZ, fifo, 1);
  expect_refused(f, arch(f, "fifo.tgz"), "bad", 0, "FIFO");
}

static void test_decompression_bomb(void **state) {
  fixture *f = *state;
  /* 4 MiB of zeros against an explicit 1 MiB cap */
  const ent small[] = {{.name = "zeros", .zeros = 4u << 20}};
  make_archive(arch(f, "small.tgz"), TAR_GZ, small, 1);
  expect_refused(f, arch(f, "small.tgz"), "bad", 1u << 20, "exceed");
  /* the default cap: 16 x a ~100 KiB archive, at least 16 MiB - 96 MiB of zeros is over */
  const ent big[] = {{.name = "a", .zeros = 48u << 20}, {.name = "b", .zeros = 48u << 20}};
  make_archive(arch(f, "big.tgz"), TAR_GZ, big, 2);
  expect_refused(f, arch(f, "big.tgz"), "bad", 0, "exceed");
  /* zip entries written without a size up front are counted as they are read */
  make_archive(arch(f, "big.zip"), ZIP, small, 1);
  expect_refused(f, arch(f, "big.zip"), "bad", 1u << 20, "exceed");
}

static void test_not_an_archive_and_bad_versions(void **state) {
  fixture *f = *state;
  int fd = open(arch(f, "junk"), O_WRONLY | O_CREAT, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "this is not an archive at all\n", 30), 30);
  close(fd);
  expect_refused(f, arch(f, "junk"), "bad", 0, "not a tar or zip archive");
  const ent one[] = {{.name = "f", .data = "x"}};
  make_archive(arch(f, "one.tgz"), TAR_GZ, one, 1);
  const char *bad[] = {"",
                       ".hidden",
                       "..",
                       "current",
                       "a/b",
                       "../x",
                       "white space",
                       "0123456789012345678901234567890123456789012345678901234567890123456789"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(install_version_ok(bad[i]), 0);
    assert_int_equal(
        install_archive(arch(f, "one.tgz"), f->root, bad[i], 0, f->err, sizeof(f->err)), -1);
  }
  assert_int_equal(install_version_ok("1.2.3-rc1+build_7"), 1);
  assert_int_equal(install_archive(arch(f, "missing.tgz"), f->root, "v", 0, f->err, sizeof(f->err)),
                   -1);
  assert_non_null(strstr(f->err, "missing.tgz"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_tar_gz_installs_and_switches_current, setup, teardown),
      cmocka_unit_test_setup_teardown(test_zip_installs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_xz_and_zstd, setup, teardown),
      cmocka_unit_test_setup_teardown(test_versions_kept_pruned_replaced, setup, teardown),
      cmocka_unit_test_setup_teardown(test_path_traversal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_absolute_path, setup, teardown),
      cmocka_unit_test_setup_teardown(test_symlink_escapes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hardlink_escapes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_special_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decompression_bomb, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_an_archive_and_bad_versions, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
