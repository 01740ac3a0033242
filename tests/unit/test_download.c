/* test_download.c - the downloading and installing states on a real device and loop.
 *
 * A device is put in the downloading state with a target and runs downloading_start()
 * against a tiny HTTP server on a thread of this process (plain HTTP on 127.0.0.1; the
 * server can cut a reply short once, ignore Range, send more than declared, or fail).
 * The run goes on through the table as in the agent: downloaded -> installing (pacman
 * none/archive/command) -> installed -> report; the report then stops at the manifest,
 * as this device has no Uptane key (config_error -> failed), which ends the test run.
 * Checked: the result, the files in images_path, the Range the server saw, and the store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "loopback_server.h"

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "crypto/hash.h"
#include "device/device.h"
#include "states/states.h"

static uint8_t pattern(uint64_t i) {
  return (uint8_t)(i * 13 + i / 509);
}

/* ---- the server ------------------------------------------------------------------------ */

typedef struct server {
  loopback_server lb;
  pthread_mutex_t mu;
  /* what to serve (set by the test between runs) */
  const uint8_t *body; /* NULL: pattern() */
  uint64_t len;
  uint64_t extra;  /* bytes sent beyond len (declared too) */
  uint64_t cut_at; /* > 0: the next reply stops at this offset (then reset) */
  int ignore_range;
  int status; /* > 0: answer this status instead */
  /* what it saw */
  int requests;
  char last_range[64];
  char last_path[512];
} server;

static void serve_one(server *s, int c) {
  char req[4096];
  size_t len = 0;
  while (len < sizeof(req) - 1) {
    ssize_t k = recv(c, req + len, sizeof(req) - 1 - len, 0);
    if (k <= 0) return;
    len += (size_t)k;
    req[len] = 0;
    if (strstr(req, "\r\n\r\n")) break;
  }
  pthread_mutex_lock(&s->mu);
  s->requests++;
  sscanf(req, "GET %511s", s->last_path);
  s->last_range[0] = 0;
  unsigned long long from = 0;
  const char *r = strcasestr(req, "\r\nRange: ");
  if (r) {
    sscanf(r + 9, "%63[^\r]", s->last_range);
    sscanf(s->last_range, "bytes=%llu-", &from);
  }
  const uint8_t *body = s->body;
  uint64_t total = s->len + s->extra, cut = s->cut_at;
  int status = s->status, ignore = s->ignore_range;
  s->cut_at = 0;
  pthread_mutex_unlock(&s->mu);

  char h[512];
  if (status) {
    int n = snprintf(h, sizeof(h),
                     "HTTP/1.1 %d X\r\nConnection: close\r\nContent-Length: 5\r\n\r\n"
                     "nope\n",
                     status);
    loopback_send_all(c, h, (size_t)n);
    return;
  }
  if (ignore || from == 0 || from >= total) from = 0;
  int n = from ? snprintf(h, sizeof(h),
                          "HTTP/1.1 206 Partial\r\nConnection: close\r\n"
                          "Content-Range: bytes %llu-%llu/%llu\r\nContent-Length: %llu\r\n\r\n",
                          from, (unsigned long long)total - 1, (unsigned long long)total,
                          (unsigned long long)(total - from))
               : snprintf(h, sizeof(h),
                          "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                          "Content-Length: %llu\r\n\r\n",
                          (unsigned long long)total);
  if (loopback_send_all(c, h, (size_t)n)) return;
  uint64_t end = cut && cut > from ? cut : total;
  uint8_t buf[16384];
  for (uint64_t off = from; off < end;) {
    size_t k = end - off < sizeof(buf) ? (size_t)(end - off) : sizeof(buf);
    for (size_t i = 0; i < k; i++)
      buf[i] = body && off + i < s->len ? body[off + i] : pattern(off + i);
    if (loopback_send_all(c, buf, k)) return;
    off += k;
  }
}

static void serve_cb(void *ctx, int c) {
  serve_one(ctx, c);
}

static void server_start(server *s) {
  pthread_mutex_init(&s->mu, NULL);
  loopback_start(&s->lb, serve_cb, s);
}

static void server_stop(server *s) {
  loopback_stop(&s->lb);
  pthread_mutex_destroy(&s->mu);
}

/* ---- the device --------------------------------------------------------------------------- */

typedef struct fixture {
  char dir[64];
  char images[128];
  server srv;
  uv_loop_t loop;
  http_client *http;
  otad_config cfg;
  device d;
  int done; /* the device reached a final state */
} fixture;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}

static void on_device_done(device *d) {
  fixture *f = d->o.data;
  f->done = 1;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  strcpy(f->dir, "/tmp/otad-test-download-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->images, sizeof(f->images), "%s/images", f->dir);
  server_start(&f->srv);
  uv_loop_init(&f->loop);
  f->http = http_client_new(&f->loop);
  config_init(&f->cfg);
  f->cfg.images_path = strdup(f->images);
  char repo[64];
  snprintf(repo, sizeof(repo), "http://127.0.0.1:%d/repo", f->srv.lb.port);
  f->cfg.repo_server = strdup(repo);
  device_opts o = {.actions = &states_actions,
                   .label = "test",
                   .cfg = &f->cfg,
                   .loop = &f->loop,
                   .http = f->http,
                   .st = store_mem_open(),
                   .seed = 1,
                   .retry_base_ms = 5,
                   .retry_cap_ms = 10,
                   .max_retries = 3,
                   .quiet = !getenv("OTAD_TEST_VERBOSE"),
                   .done = on_device_done,
                   .data = f};
  device_init(&f->d, &o);
  f->d.upd = calloc(1, sizeof(device_update));
  *state = f;
  return 0;
}

/* Forgets the download's state (the .part file stays), as a new attempt would find it. */
static void release_download(device *d) {
  if (d->upd && d->upd->download_release) d->upd->download_release(d->upd);
}

static void device_closed(device *d) {}

static int teardown(void **state) {
  fixture *f = *state;
  device_close(&f->d, device_closed);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  release_download(&f->d);
  device_free(&f->d);
  http_client_close(f->http);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  config_free(&f->cfg);
  server_stop(&f->srv);
  nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

/* The target: name, the server's bytes (body, or len bytes of pattern()) and their hash. */
static void set_target(fixture *f, const char *name, const uint8_t *body, uint64_t len) {
  update_target *t = &f->d.upd->target;
  memset(t, 0, sizeof(*t));
  snprintf(t->name, sizeof(t->name), "%s", name);
  snprintf(t->version, sizeof(t->version), "1.0");
  snprintf(t->correlation_id, sizeof(t->correlation_id), "corr-1");
  t->length = len;
  hash_ctx h;
  assert_int_equal(hash_init(&h, true, true), 0);
  uint8_t buf[8192];
  for (uint64_t off = 0; off < len;) {
    size_t k = len - off < sizeof(buf) ? (size_t)(len - off) : sizeof(buf);
    for (size_t i = 0; i < k; i++)
      buf[i] = body ? body[off + i] : pattern(off + i);
    hash_update(&h, buf, k);
    off += k;
  }
  assert_int_equal(hash_final(&h, t->sha256, t->sha512), 0);
  f->srv.body = body;
  f->srv.len = len;
}

/* Runs the device from downloading_start() until it stops (see the file comment). */
static void run(fixture *f) {
  f->d.state = ST_DOWNLOADING;
  downloading_start(&f->d);
  uint64_t t0 = uv_hrtime();
  while (!f->done && uv_hrtime() - t0 < 60ull * 1000000000ull)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_true(f->done);
}

static char *path_in(fixture *f, const char *name) {
  static char p[512];
  snprintf(p, sizeof(p), "%s/%s", f->images, name);
  return p;
}

static char *image_path(fixture *f) {
  return path_in(f, f->d.upd->target.sha256);
}

static char *part_path(fixture *f) {
  static char p[512];
  snprintf(p, sizeof(p), "%s/%s.part", f->images, f->d.upd->target.sha256);
  return p;
}

static int exists(const char *p) {
  struct stat st;
  return lstat(p, &st) == 0;
}

static uint64_t size_of(const char *p) {
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  return (uint64_t)st.st_size;
}

static void assert_result(fixture *f, const char *code, const char *words) {
  update_result *r = &f->d.upd->result;
  assert_true(r->pending);
  if (strcmp(r->code, code) != 0 || (words && !strstr(r->description, words)))
    fail_msg("result %s '%s', expected %s with '%s'", r->code, r->description, code,
             words ? words : "");
  assert_int_equal(r->success, strcmp(code, UPDATE_OK) == 0);
  assert_string_equal(r->correlation_id, "corr-1");
  assert_string_equal(r->target, f->d.upd->target.name);
}

static void assert_installed(fixture *f, int yes) {
  char *js = store_read_string(f->d.o.st, STORE_INSTALLED_TARGET);
  if (!yes) {
    assert_null(js);
    return;
  }
  assert_non_null(js);
  char want[200];
  snprintf(want, sizeof(want), "\"sha256\":\"%s\"", f->d.upd->target.sha256);
  assert_non_null(strstr(js, want));
  assert_non_null(strstr(js, "\"correlation_id\":\"corr-1\""));
  free(js);
}

/* Writes the first n bytes of pattern() (corrupted at one byte when bad) as the .part. */
static void write_part(fixture *f, uint64_t n, int bad) {
  mkdir(f->images, 0755);
  int fd = open(part_path(f), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  uint8_t buf[8192];
  for (uint64_t off = 0; off < n;) {
    size_t k = n - off < sizeof(buf) ? (size_t)(n - off) : sizeof(buf);
    for (size_t i = 0; i < k; i++)
      buf[i] = pattern(off + i) ^ (bad && off + i == 77 ? 1 : 0);
    assert_int_equal(write(fd, buf, k), (ssize_t)k);
    off += k;
  }
  close(fd);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_download_and_install_none(void **state) {
  fixture *f = *state;
  set_target(f, "dir/my image+1.bin", NULL, 400000);
  run(f);
  assert_result(f, UPDATE_OK, "installed");
  assert_int_equal(f->srv.requests, 1);
  assert_string_equal(f->srv.last_range, "");
  assert_string_equal(f->srv.last_path, "/repo/targets/dir/my%20image%2B1.bin");
  assert_int_equal(size_of(image_path(f)), 400000);
  assert_false(exists(part_path(f)));
  assert_string_equal(f->d.upd->image_path, image_path(f));
  struct stat st;
  assert_int_equal(stat(image_path(f), &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_installed(f, 1);
}

static void test_resume_after_interruption(void **state) {
  fixture *f = *state;
  set_target(f, "fw.bin", NULL, 500000);
  f->srv.cut_at = 123456;
  run(f);
  assert_result(f, UPDATE_OK, NULL);
  assert_int_equal(f->srv.requests, 2);
  assert_string_equal(f->srv.last_range, "bytes=123456-");
  assert_int_equal(size_of(image_path(f)), 500000);
}

static void test_resume_part_of_earlier_run(void **state) {
  fixture *f = *state;
  set_target(f, "fw.bin", NULL, 300000);
  write_part(f, 150000, 0);
  run(f);
  assert_result(f, UPDATE_OK, NULL);
  assert_int_equal(f->srv.requests, 1);
  assert_string_equal(f->srv.last_range, "bytes=150000-");
  assert_false(exists(part_path(f)));
}

static void test_corrupt_part_is_deleted(void **state) {
  fixture *f = *state;
  set_target(f, "fw.bin", NULL, 300000);
  write_part(f, 150000, 1);
  run(f);
  assert_result(f, UPDATE_DOWNLOAD_FAILED, "hash mismatch");
  assert_false(exists(part_path(f)));
  assert_false(exists(image_path(f)));
  assert_installed(f, 0);
}

static void test_range_ignored_restarts(void **state) {
  fixture *f = *state;
  set_target(f, "fw.bin", NULL, 300000);
  write_part(f, 100000, 0);
  f->srv.ignore_range = 1;
  run(f);
  assert_result(f, UPDATE_OK, NULL);
  assert_int_equal(f->srv.requests, 1);
  assert_string_equal(f->srv.last_range, "bytes=100000-");
  assert_int_equal(size_of(image_path(f)), 300000);
}

/* Every hash the metadata lists is checked; a target may list sha512 alone. */
static void test_sha512(void **state) {
  fixture *f = *state;
  set_target(f, "fw.bin", NULL, 70000);
  f->d.upd->target.sha512[100] = f->d.upd->target.sha512[100] == '0' ? '1' : '0';
  run(f);
  assert_result(f, UPDATE_DOWNLOAD_FAILED, "hash mismatch: sha512");
  release_download(&f->d);
  memset(&f->d.upd->result, 0, sizeof(f->d.upd->result));
  f->done = 0;
  set_target(f, "fw.bin", NULL, 70000);
  char sha512[129];
  snprintf(sha512, sizeof(sha512), "%s", f->d.upd->target.sha512);
  f->d.upd->target.sha256[0] = 0;
  run(f);
  assert_result(f, UPDATE_OK, NULL);
  assert_true(exists(path_in(f, sha512))); /* named by the hash it has */
}

static void test_longer_than_declared(void **state) {
  fixture *f = *state;
  set_target(f, "fw.bin", NULL, 200000);
  f->srv.extra = 1000;
  run(f);
  assert_result(f, UPDATE_DOWNLOAD_FAILED, "exceeds the declared length 200000");
  assert_false(exists(part_path(f)));
  assert_false(exists(image_path(f)));
}

static void test_hash_mismatch(void **state) {
  fixture *f = *state;
  set_target(f, "fw.bin", NULL, 200000);
  f->d.upd->target.sha256[10] ^= 1; /* still hex, no longer the hash */
  run(f);
  assert_result(f, UPDATE_DOWNLOAD_FAILED, "hash mismatch");
  assert_false(exists(part_path(f)));
  assert_false(exists(image_path(f)));
}

static void test_not_found(void **state) {
  fixture *f = *state;
  set_target(f, "fw.bin", NULL, 1000);
  f->srv.status = 404;
  run(f);
  assert_result(f, UPDATE_DOWNLOAD_FAILED, "HTTP 404");
  assert_int_equal(f->srv.requests, 1);
  assert_false(exists(part_path(f)));
}

/* 5xx: retried (with the .part kept) until the budget is spent, then reported. */
static void test_server_error_retried(void **state) {
  fixture *f = *state;
  set_target(f, "fw.bin", NULL, 1000);
  f->srv.status = 503;
  run(f);
  assert_result(f, UPDATE_DOWNLOAD_FAILED, "HTTP 503");
  assert_int_equal(f->srv.requests, 4); /* max_retries = 3 */
}

static void test_complete_image_from_earlier_run(void **state) {
  fixture *f = *state;
  set_target(f, "fw.bin", NULL, 100000);
  write_part(f, 100000, 0);
  assert_int_equal(rename(part_path(f), image_path(f)), 0);
  run(f);
  assert_result(f, UPDATE_OK, NULL);
  assert_int_equal(f->srv.requests, 0);
}

static void test_stale_parts_removed(void **state) {
  fixture *f = *state;
  mkdir(f->images, 0755);
  int fd = open(path_in(f, "0123abcd.part"), O_WRONLY | O_CREAT, 0600);
  close(fd);
  set_target(f, "fw.bin", NULL, 1000);
  run(f);
  assert_result(f, UPDATE_OK, NULL);
  assert_false(exists(path_in(f, "0123abcd.part")));
}

/* A target larger than the free space is refused before a byte is fetched (a 1 MiB
 * tmpfs as images_path; skipped where mounting is not allowed). */
static void test_not_enough_space(void **state) {
  fixture *f = *state;
  mkdir(f->images, 0755);
  if (geteuid() != 0 || mount("tmpfs", f->images, "tmpfs", 0, "size=1m") != 0) {
    skip();
    return;
  }
  set_target(f, "fw.bin", NULL, 2u << 20);
  run(f);
  umount2(f->images, MNT_DETACH);
  assert_result(f, UPDATE_DOWNLOAD_FAILED, "not enough space");
  assert_int_equal(f->srv.requests, 0);
}

/* Memory does not grow with the target: a 48 MiB download leaves the peak RSS alone. */
static void test_memory_flat(void **state) {
  fixture *f = *state;
  const char *pre = getenv("LD_PRELOAD");
  if (pre && strstr(pre, "vgpreload")) { /* valgrind: RSS says nothing; keep it short */
    set_target(f, "big.bin", NULL, 4u << 20);
    run(f);
    assert_result(f, UPDATE_OK, NULL);
    return;
  }
  set_target(f, "big.bin", NULL, 48u << 20);
  struct rusage before, after;
  getrusage(RUSAGE_SELF, &before);
  run(f);
  getrusage(RUSAGE_SELF, &after);
  assert_result(f, UPDATE_OK, NULL);
  long grew_kib = after.ru_maxrss - before.ru_maxrss;
  if (grew_kib > 8 * 1024) fail_msg("peak RSS grew by %ld KiB for a 48 MiB download", grew_kib);
}

/* pacman archive through the device: the tree lands under images/installed/<version>. */
static void test_install_archive(void **state) {
  fixture *f = *state;
  static uint8_t tgz[65536];
  size_t used = 0;
  struct archive *a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_add_filter_gzip(a);
  assert_int_equal(archive_write_open_memory(a, tgz, sizeof(tgz), &used), ARCHIVE_OK);
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, "app/hello.txt");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, 6);
  archive_write_header(a, e);
  archive_write_data(a, "hello\n", 6);
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  free(f->cfg.pacman_type);
  f->cfg.pacman_type = strdup("archive");
  set_target(f, "app.tar.gz", tgz, used);
  snprintf(f->d.upd->target.version, sizeof(f->d.upd->target.version), "2.1");
  run(f);
  assert_result(f, UPDATE_OK, "now current");
  char p[512];
  snprintf(p, sizeof(p), "%s/installed/current/app/hello.txt", f->images);
  int fd = open(p, O_RDONLY);
  assert_true(fd >= 0);
  char buf[16] = {0};
  assert_int_equal(read(fd, buf, sizeof(buf)), 6);
  close(fd);
  assert_string_equal(buf, "hello\n");
  char link[64] = {0};
  snprintf(p, sizeof(p), "%s/installed/current", f->images);
  assert_true(readlink(p, link, sizeof(link) - 1) > 0);
  assert_string_equal(link, "2.1");
  assert_installed(f, 1);
}

static void test_install_archive_refused(void **state) {
  fixture *f = *state;
  free(f->cfg.pacman_type);
  f->cfg.pacman_type = strdup("archive");
  set_target(f, "app.tar.gz", NULL, 5000); /* pattern bytes: not an archive */
  run(f);
  assert_result(f, UPDATE_INSTALL_FAILED, "not a tar or zip archive");
  assert_installed(f, 0);
}

/* pacman command: 0 installed, 100 needs a reboot, anything else failed. */
static void command_case(fixture *f, int code, const char *want_code, const char *want_words) {
  char script[256], out[256], cmd[1024];
  snprintf(script, sizeof(script), "%s/install.sh", f->dir);
  snprintf(out, sizeof(out), "%s/args", f->dir);
  snprintf(cmd, sizeof(cmd),
           "#!/bin/sh\necho \"$1|$2|$OTAD_TARGET_NAME|$OTAD_CORRELATION_ID\" > %s\nexit %d\n", out,
           code);
  int fd = open(script, O_WRONLY | O_CREAT | O_TRUNC, 0755);
  assert_int_equal(write(fd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
  close(fd);
  free(f->cfg.pacman_install_command);
  f->cfg.pacman_install_command = strdup(script);
  free(f->cfg.pacman_type);
  f->cfg.pacman_type = strdup("command");
  set_target(f, "fw.bin", NULL, 1000);
  run(f);
  assert_result(f, want_code, want_words);
  char line[1024] = {0}, want[1024];
  fd = open(out, O_RDONLY);
  assert_true(fd >= 0);
  assert_true(read(fd, line, sizeof(line) - 1) > 0);
  close(fd);
  snprintf(want, sizeof(want), "%s|fw.bin|fw.bin|corr-1\n", image_path(f));
  assert_string_equal(line, want);
}

static void test_install_command_ok(void **state) {
  fixture *f = *state;
  command_case(f, 0, UPDATE_OK, "succeeded");
  assert_installed(f, 1);
}

static void test_install_command_needs_reboot(void **state) {
  fixture *f = *state;
  command_case(f, 100, UPDATE_NEED_COMPLETION, "reboot");
  assert_installed(f, 0);
  char *js = store_read_string(f->d.o.st, STORE_PENDING_TARGET);
  assert_non_null(js);
  assert_non_null(strstr(js, "\"name\":\"fw.bin\""));
  free(js);
}

static void test_install_command_fails(void **state) {
  fixture *f = *state;
  command_case(f, 3, UPDATE_INSTALL_FAILED, "exited with code 3");
  assert_installed(f, 0);
}

int main(void) {
  http_global_init();
  log_set_level(getenv("OTAD_TEST_VERBOSE") ? LOG_INFO : LOG_ERROR + 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_download_and_install_none, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resume_after_interruption, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resume_part_of_earlier_run, setup, teardown),
      cmocka_unit_test_setup_teardown(test_corrupt_part_is_deleted, setup, teardown),
      cmocka_unit_test_setup_teardown(test_range_ignored_restarts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sha512, setup, teardown),
      cmocka_unit_test_setup_teardown(test_longer_than_declared, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hash_mismatch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
      cmocka_unit_test_setup_teardown(test_server_error_retried, setup, teardown),
      cmocka_unit_test_setup_teardown(test_complete_image_from_earlier_run, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stale_parts_removed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_enough_space, setup, teardown),
      cmocka_unit_test_setup_teardown(test_memory_flat, setup, teardown),
      cmocka_unit_test_setup_teardown(test_install_archive, setup, teardown),
      cmocka_unit_test_setup_teardown(test_install_archive_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_install_command_ok, setup, teardown),
      cmocka_unit_test_setup_teardown(test_install_command_needs_reboot, setup, teardown),
      cmocka_unit_test_setup_teardown(test_install_command_fails, setup, teardown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  http_global_cleanup();
  return rc;
}
