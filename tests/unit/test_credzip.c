/* test_credzip.c - reading credentials.zip and stripping the fleet key from it.
 *
 * The zips are made by Info-ZIP's `zip` (what operators use), from files written into a
 * fresh directory per test; broken ones (random bytes, half a zip, empty, a tar) are
 * made by hand. The stripped zip is checked with libarchive (entries and their bytes)
 * and with `unzip -t`, so it stays readable by other tools.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/credzip.h"

#define URL_TEXT "https://gw.example:443\n  \n"
#define CA_TEXT "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
#define P12_LEN 8192

typedef struct fixture {
  char root[64]; /* mkdtemp'ed, removed at teardown */
  char src[128]; /* root/src: files that go into zips */
  char zip[128]; /* root/credentials.zip */
  uint8_t p12[P12_LEN];
} fixture;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}

static void write_raw(const char *path, const void *data, size_t len) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, len, fp), len);
  fclose(fp);
}

static void write_src(fixture *f, const char *name, const void *data, size_t len) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", f->src, name);
  write_raw(path, data, len);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  strcpy(f->root, "/tmp/otad-test-credzip-XXXXXX");
  assert_non_null(mkdtemp(f->root));
  snprintf(f->src, sizeof(f->src), "%s/src", f->root);
  snprintf(f->zip, sizeof(f->zip), "%s/credentials.zip", f->root);
  assert_int_equal(mkdir(f->src, 0755), 0);
  uint32_t x = 12345; /* incompressible, with NULs: a stand-in for a PKCS#12 */
  for (size_t i = 0; i < P12_LEN; i++)
    f->p12[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
  write_src(f, "autoprov.url", URL_TEXT, strlen(URL_TEXT));
  write_src(f, "autoprov_credentials.p12", f->p12, P12_LEN);
  write_src(f, "server_ca.pem", CA_TEXT, strlen(CA_TEXT));
  write_src(f, "treehub.json", "{\"oauth2\":{}}", 13);
  write_src(f, "root.json", "{\"signed\":{\"_type\":\"Root\"}}\n", 28);
  write_src(f, "tufrepo.url", "https://repo.example\n", 21);
  char dir[256];
  snprintf(dir, sizeof(dir), "%s/sub", f->src);
  assert_int_equal(mkdir(dir, 0755), 0);
  write_src(f, "sub/autoprov.url", "https://wrong.example", 21);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

/* Zips the named files of src (space-separated, in that order) into f->zip. */
static void make_zip(fixture *f, const char *names) {
  char cmd[1024];
  unlink(f->zip);
  snprintf(cmd, sizeof(cmd), "cd '%s' && zip -q -X '%s' %s", f->src, f->zip, names);
  assert_int_equal(system(cmd), 0);
}

#define ALL_ENTRIES                                                                                \
  "sub/autoprov.url autoprov.url treehub.json autoprov_credentials.p12 root.json "                 \
  "server_ca.pem tufrepo.url"

/* The bytes of entry name in zip (heap, caller frees), NULL if absent. */
static char *entry_bytes(const char *zip, const char *name, size_t *len) {
  struct archive *a = archive_read_new();
  archive_read_support_format_zip(a);
  assert_int_equal(archive_read_open_filename(a, zip, 16384), ARCHIVE_OK);
  struct archive_entry *e;
  char *out = NULL;
  while (!out && archive_read_next_header(a, &e) == ARCHIVE_OK) {
    if (strcmp(archive_entry_pathname(e), name) != 0) continue;
    out = malloc(2 * 1024 * 1024);
    la_ssize_t n = archive_read_data(a, out, 2 * 1024 * 1024);
    assert_true(n >= 0);
    *len = (size_t)n;
  }
  archive_read_free(a);
  return out;
}

/* Entry names of zip, each followed by a space. */
static void entry_names(const char *zip, char *out, size_t n) {
  struct archive *a = archive_read_new();
  archive_read_support_format_zip(a);
  assert_int_equal(archive_read_open_filename(a, zip, 16384), ARCHIVE_OK);
  struct archive_entry *e;
  out[0] = '\0';
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    strncat(out, archive_entry_pathname(e), n - strlen(out) - 2);
    strcat(out, " ");
  }
  archive_read_free(a);
}

static void assert_entry(const char *zip, const char *name, const void *want, size_t len) {
  size_t got_len = 0;
  char *got = entry_bytes(zip, name, &got_len);
  if (!got) fail_msg("%s: no entry %s", zip, name);
  assert_int_equal(got_len, len);
  assert_memory_equal(got, want, len);
  free(got);
}

static char *slurp(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  *len = (size_t)ftell(fp);
  rewind(fp);
  char *buf = malloc(*len + 1);
  assert_int_equal(fread(buf, 1, *len, fp), *len);
  fclose(fp);
  return buf;
}

static void expect_zip_error(const char *path, const char *needle) {
  credzip z;
  otad_errbuf eb = {{0}};
  assert_int_equal(credzip_read(path, &z, &eb), OTAD_EZIP);
  if (!strstr(eb.msg, needle)) fail_msg("\"%s\" lacks \"%s\"", eb.msg, needle);
  assert_non_null(strstr(eb.msg, path));
  assert_null(z.url);
  assert_null(z.p12);
  assert_null(z.server_ca_pem);
  credzip_free(&z);
}

/* ---- reading ---------------------------------------------------------------------- */

static void test_read_valid(void **state) {
  fixture *f = *state;
  make_zip(f, ALL_ENTRIES);
  credzip z;
  otad_errbuf eb = {{0}};
  assert_int_equal(credzip_read(f->zip, &z, &eb), 0);
  assert_string_equal(z.url, "https://gw.example:443"); /* trimmed; not sub/autoprov.url */
  assert_int_equal(z.p12_len, P12_LEN);
  assert_memory_equal(z.p12, f->p12, P12_LEN);
  assert_string_equal(z.server_ca_pem, CA_TEXT);
  credzip_free(&z);
  assert_null(z.p12);
  credzip_free(&z); /* twice is harmless */
}

static void test_read_without_server_ca(void **state) {
  fixture *f = *state;
  make_zip(f, "autoprov_credentials.p12 autoprov.url");
  credzip z;
  otad_errbuf eb = {{0}};
  assert_int_equal(credzip_read(f->zip, &z, &eb), 0);
  assert_string_equal(z.url, "https://gw.example:443");
  assert_null(z.server_ca_pem);
  credzip_free(&z);
}

static void test_read_missing_entries(void **state) {
  fixture *f = *state;
  make_zip(f, "sub/autoprov.url autoprov_credentials.p12 treehub.json");
  expect_zip_error(f->zip, "no autoprov.url entry");
  make_zip(f, "autoprov.url server_ca.pem root.json");
  expect_zip_error(f->zip, "no autoprov_credentials.p12 entry");
  write_src(f, "autoprov.url", " \n", 2);
  make_zip(f, "autoprov.url autoprov_credentials.p12");
  expect_zip_error(f->zip, "autoprov.url is empty");
}

static void test_read_too_big_entry(void **state) {
  fixture *f = *state;
  char *big = calloc(1, 1024 * 1024 + 1);
  write_src(f, "autoprov_credentials.p12", big, 1024 * 1024 + 1);
  free(big);
  make_zip(f, "autoprov.url autoprov_credentials.p12");
  expect_zip_error(f->zip, "larger than 1 MiB");
}

static void test_read_not_a_zip(void **state) {
  fixture *f = *state;
  uint8_t junk[4096];
  uint32_t x = 7;
  for (size_t i = 0; i < sizeof(junk); i++)
    junk[i] = (uint8_t)((x = x * 69069u + 1u) >> 24);
  junk[0] = 'X'; /* never "PK" */
  write_raw(f->zip, junk, sizeof(junk));
  expect_zip_error(f->zip, "not a zip archive (");

  write_raw(f->zip, "", 0);
  expect_zip_error(f->zip, "not a zip archive (");

  char cmd[512]; /* a well-formed archive of another format */
  snprintf(cmd, sizeof(cmd), "cd '%s' && tar cf '%s' autoprov.url autoprov_credentials.p12", f->src,
           f->zip);
  assert_int_equal(system(cmd), 0);
  expect_zip_error(f->zip, "not a zip archive (");
}

static void test_read_truncated(void **state) {
  fixture *f = *state;
  make_zip(f, ALL_ENTRIES);
  size_t len;
  char *whole = slurp(f->zip, &len);
  write_raw(f->zip, whole, len / 2);
  free(whole);
  expect_zip_error(f->zip, "");
}

static void test_read_missing_file(void **state) {
  fixture *f = *state;
  credzip z;
  otad_errbuf eb = {{0}};
  assert_int_equal(credzip_read(f->zip, &z, &eb), OTAD_ENOENT);
  char want[256];
  snprintf(want, sizeof(want), "%s: no such file", f->zip);
  assert_string_equal(eb.msg, want);
  assert_null(z.p12);
  assert_int_equal(credzip_read(f->src, &z, &eb), OTAD_EZIP); /* a directory */
}

/* ---- stripping -------------------------------------------------------------------- */

static void test_strip(void **state) {
  fixture *f = *state;
  make_zip(f, ALL_ENTRIES);
  assert_int_equal(chmod(f->zip, 0640), 0);
  otad_errbuf eb = {{0}};
  assert_int_equal(credzip_strip_fleet_key(f->zip, &eb), 0);

  char names[512];
  entry_names(f->zip, names, sizeof(names));
  assert_string_equal(names, "sub/autoprov.url autoprov.url root.json server_ca.pem "
                             "tufrepo.url ");
  assert_entry(f->zip, "autoprov.url", URL_TEXT, strlen(URL_TEXT));
  assert_entry(f->zip, "sub/autoprov.url", "https://wrong.example", 21);
  assert_entry(f->zip, "root.json", "{\"signed\":{\"_type\":\"Root\"}}\n", 28);
  assert_entry(f->zip, "server_ca.pem", CA_TEXT, strlen(CA_TEXT));
  assert_entry(f->zip, "tufrepo.url", "https://repo.example\n", 21);

  struct stat st;
  assert_int_equal(stat(f->zip, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0640);
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "unzip -tq '%s' >/dev/null", f->zip);
  assert_int_equal(system(cmd), 0);

  credzip z;
  assert_int_equal(credzip_read(f->zip, &z, &eb), OTAD_EZIP);
  assert_non_null(strstr(eb.msg, "autoprov_credentials.p12"));

  DIR *d = opendir(f->root); /* no temp file left beside it */
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    assert_null(strstr(de->d_name, ".tmp."));
  closedir(d);
}

static void test_strip_already_stripped(void **state) {
  fixture *f = *state;
  make_zip(f, "autoprov.url treehub.json root.json"); /* treehub alone does not count */
  struct stat before, after;
  assert_int_equal(stat(f->zip, &before), 0);
  size_t len0, len1;
  char *bytes0 = slurp(f->zip, &len0);
  otad_errbuf eb = {{0}};
  assert_int_equal(credzip_strip_fleet_key(f->zip, &eb), 0);
  assert_int_equal(stat(f->zip, &after), 0);
  assert_int_equal(before.st_ino, after.st_ino);
  char *bytes1 = slurp(f->zip, &len1);
  assert_int_equal(len0, len1);
  assert_memory_equal(bytes0, bytes1, len0);
  free(bytes0);
  free(bytes1);

  /* A full strip followed by a second one: the second changes nothing. */
  make_zip(f, ALL_ENTRIES);
  assert_int_equal(credzip_strip_fleet_key(f->zip, &eb), 0);
  assert_int_equal(stat(f->zip, &before), 0);
  assert_int_equal(credzip_strip_fleet_key(f->zip, &eb), 0);
  assert_int_equal(stat(f->zip, &after), 0);
  assert_int_equal(before.st_ino, after.st_ino);
}

static void test_strip_bad_input_leaves_file(void **state) {
  fixture *f = *state;
  otad_errbuf eb = {{0}};
  assert_int_equal(credzip_strip_fleet_key(f->zip, &eb), OTAD_ENOENT);

  make_zip(f, ALL_ENTRIES);
  size_t len;
  char *whole = slurp(f->zip, &len);
  write_raw(f->zip, whole, len / 2);
  assert_int_equal(credzip_strip_fleet_key(f->zip, &eb), OTAD_EZIP);
  size_t len2;
  char *after = slurp(f->zip, &len2);
  assert_int_equal(len2, len / 2);
  assert_memory_equal(after, whole, len2);
  free(after);
  free(whole);

  write_raw(f->zip, "not a zip", 9);
  assert_int_equal(credzip_strip_fleet_key(f->zip, &eb), OTAD_EZIP);
  assert_non_null(strstr(eb.msg, "not a zip archive"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_read_valid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_without_server_ca, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_missing_entries, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_too_big_entry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_not_a_zip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_truncated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_missing_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_strip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_strip_already_stripped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_strip_bad_input_leaves_file, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
