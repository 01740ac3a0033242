/* test_device_data.c - the device data (states/device_data.c) and the download progress
 * `otad status` shows (device_download_progress in device/status.c).
 *
 * The builders run on a fake root (cpuinfo, meminfo, device tree, os-release, route) and
 * on this machine; the change detection on an in-memory store; the sending against a tiny
 * HTTP server on a thread of this process that records each request and answers as the
 * test says, so a refused kind, a server that is gone and the [telemetry] switches are all
 * seen from the wire.
 */
/* cmocka.h needs these first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "loopback_server.h"
/* clang-format on */

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "device/device.h"
#include "device/device_data.h"
#include "device/status.h"
#include "states/states.h"

/* ---- files ---------------------------------------------------------------------------- */

static char tmp_root[64];

static void mkdirs(const char *path) {
  char p[512];
  snprintf(p, sizeof(p), "%s", path);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = 0;
      mkdir(p, 0755);
      *s = '/';
    }
  mkdir(p, 0755);
}

/* Writes len bytes of data to root/rel, making the directories. */
static void put_file(const char *root, const char *rel, const char *data, size_t len) {
  char path[512];
  snprintf(path, sizeof(path), "%s%s", root, rel);
  char *slash = strrchr(path, '/');
  *slash = 0;
  mkdirs(path);
  *slash = '/';
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
}

static void put_text(const char *root, const char *rel, const char *text) {
  put_file(root, rel, text, strlen(text));
}

static void rm_rf(const char *path) {
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
  assert_int_equal(system(cmd), 0);
}

static int make_root(void **state) {
  (void)state;
  snprintf(tmp_root, sizeof(tmp_root), "/tmp/otad-dd.XXXXXX");
  assert_non_null(mkdtemp(tmp_root));
  return 0;
}

static int remove_root(void **state) {
  (void)state;
  rm_rf(tmp_root);
  return 0;
}

static const char *str_of(const cJSON *o, const char *a, const char *b) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
  if (b) v = cJSON_GetObjectItemCaseSensitive(v, b);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_of(const cJSON *o, const char *a, const char *b) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
  if (b) v = cJSON_GetObjectItemCaseSensitive(v, b);
  assert_true(cJSON_IsNumber(v));
  return v->valuedouble;
}

/* ---- builders ---------------------------------------------------------------------------- */

static void test_hardware_fake_root(void **state) {
  (void)state;
  char root[128];
  snprintf(root, sizeof(root), "%s/arm", tmp_root);
  put_text(root, "/proc/cpuinfo",
           "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd\n\n"
           "processor\t: 1\nBogoMIPS\t: 108.00\n\nprocessor\t: 2\n\nprocessor\t: 3\n\n"
           "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n");
  put_text(root, "/proc/meminfo", "MemTotal:        3884532 kB\nMemFree:          100 kB\n");
  /* the device tree's strings end in a NUL, and it wins over cpuinfo's Model */
  put_file(root, "/sys/firmware/devicetree/base/model", "Board From DT\0", 14);
  put_text(root, "/etc/os-release", "NAME=\"Poky\"\nPRETTY_NAME=\"Poky 4.0 (kirkstone)\"\n");
  char *js = device_data_hardware(root);
  assert_non_null(js);
  cJSON *o = cJSON_Parse(js);
  assert_non_null(o);
  char host[256] = "";
  gethostname(host, sizeof(host));
  struct utsname u;
  uname(&u);
  assert_string_equal(str_of(o, "id", NULL), host);
  assert_string_equal(str_of(o, "class", NULL), "system");
  assert_string_equal(str_of(o, "product", NULL), "Board From DT");
  assert_null(str_of(o, "vendor", NULL)); /* no DMI: left out, not made up */
  assert_string_equal(str_of(o, "architecture", NULL), u.machine);
  assert_string_equal(str_of(o, "os", NULL), "Poky 4.0 (kirkstone)");
  assert_int_equal((int)num_of(o, "cpu", "count"), 4);
  assert_null(str_of(o, "cpu", "product")); /* arm64 cpuinfo names no model */
  assert_true(num_of(o, "memory", "size") == 3884532.0 * 1024);
  assert_string_equal(str_of(o, "memory", "units"), "bytes");
  cJSON_Delete(o);
  free(js);

  /* A PC: DMI names product and vendor; cpuinfo the CPU. */
  snprintf(root, sizeof(root), "%s/pc", tmp_root);
  put_text(root, "/proc/cpuinfo",
           "processor\t: 0\nmodel name\t: Example CPU @ 2.00GHz  \n\n"
           "processor\t: 1\nmodel name\t: Example CPU @ 2.00GHz\n");
  put_text(root, "/sys/class/dmi/id/product_name", "Box 3000\n");
  put_text(root, "/sys/class/dmi/id/sys_vendor", "ACME\n");
  js = device_data_hardware(root);
  o = cJSON_Parse(js);
  assert_string_equal(str_of(o, "product", NULL), "Box 3000");
  assert_string_equal(str_of(o, "vendor", NULL), "ACME");
  assert_string_equal(str_of(o, "cpu", "product"), "Example CPU @ 2.00GHz");
  assert_int_equal((int)num_of(o, "cpu", "count"), 2);
  assert_null(cJSON_GetObjectItemCaseSensitive(o, "memory")); /* no meminfo */
  assert_null(cJSON_GetObjectItemCaseSensitive(o, "os"));
  cJSON_Delete(o);
  free(js);

  /* The same system twice: the same text (no clock, no counters in it). */
  char *a = device_data_hardware(""), *b = device_data_hardware("");
  assert_non_null(a);
  assert_string_equal(a, b);
  o = cJSON_Parse(a);
  assert_string_equal(str_of(o, "architecture", NULL), u.machine);
  cJSON_Delete(o);
  free(a);
  free(b);
}

static void test_default_iface(void **state) {
  (void)state;
  static const char hdr[] =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
  char text[1024], ifname[17];
  snprintf(text, sizeof(text),
           "%s"
           "wlan0\t0000A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0\n"
           "wlan0\t00000000\t0100A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
           "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
           "down0\t00000000\t0101A8C0\t0002\t0\t0\t1\t00000000\t0\t0\t0\n",
           hdr);
  assert_true(device_data_default_iface(text, ifname, sizeof(ifname)));
  assert_string_equal(ifname, "eth0"); /* lowest metric among routes that are up */
  snprintf(text, sizeof(text), "%seth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
           hdr);
  assert_false(device_data_default_iface(text, ifname, sizeof(ifname)));
  assert_false(device_data_default_iface(hdr, ifname, sizeof(ifname)));
  assert_false(device_data_default_iface("", ifname, sizeof(ifname)));
  assert_false(device_data_default_iface(NULL, ifname, sizeof(ifname)));
  assert_false(device_data_default_iface("garbage\nmore garbage here\n", ifname, sizeof(ifname)));

  /* The network record of this machine: the fields are there, the hostname is ours. */
  char *js = device_data_network("");
  cJSON *o = cJSON_Parse(js);
  assert_non_null(o);
  char host[256] = "";
  gethostname(host, sizeof(host));
  assert_string_equal(str_of(o, "hostname", NULL), host);
  assert_non_null(str_of(o, "local_ipv4", NULL));
  assert_non_null(str_of(o, "mac", NULL));
  cJSON_Delete(o);
  free(js);

  /* A fake root whose default route names an interface: its MAC comes from /sys. */
  char root[128];
  snprintf(root, sizeof(root), "%s/net", tmp_root);
  snprintf(text, sizeof(text), "%slo\t00000000\t00000000\t0003\t0\t0\t0\t00000000\t0\t0\t0\n", hdr);
  put_text(root, "/proc/net/route", text);
  put_text(root, "/sys/class/net/lo/address", "00:00:00:00:00:00\n");
  js = device_data_network(root);
  o = cJSON_Parse(js);
  assert_string_equal(str_of(o, "mac", NULL), "00:00:00:00:00:00");
  assert_string_equal(str_of(o, "local_ipv4", NULL), "127.0.0.1");
  cJSON_Delete(o);
  free(js);
}

static void test_installed(void **state) {
  (void)state;
  char *js = device_data_installed(NULL);
  assert_string_equal(js, "[]");
  free(js);
  js = device_data_installed("not json");
  assert_string_equal(js, "[]");
  free(js);
  js = device_data_installed("{\"name\":\"fw-2.bin\",\"sha256\":\"ab\",\"version\":\"2.0\"}");
  assert_string_equal(js, "[{\"name\":\"fw-2.bin\",\"version\":\"2.0\"}]");
  free(js);
  js = device_data_installed("{\"name\":\"fw-3.bin\",\"version\":\"\"}");
  assert_string_equal(js, "[{\"name\":\"fw-3.bin\",\"version\":\"fw-3.bin\"}]");
  free(js);
}

static void test_change_detection(void **state) {
  (void)state;
  store *st = store_mem_open();
  char d1[65], d2[65];
  otad_errbuf eb = {{0}};
  assert_true(device_data_changed(st, DEVICE_DATA_NETWORK, "{\"a\":1}", d1));
  assert_int_equal(strlen(d1), 64);
  /* not accepted yet: still changed */
  assert_true(device_data_changed(st, DEVICE_DATA_NETWORK, "{\"a\":1}", d2));
  assert_string_equal(d1, d2);
  assert_int_equal(device_data_accepted(st, DEVICE_DATA_NETWORK, d1, &eb), 0);
  assert_false(device_data_changed(st, DEVICE_DATA_NETWORK, "{\"a\":1}", d2));
  /* other kinds keep their own record */
  assert_true(device_data_changed(st, DEVICE_DATA_CONFIG, "{\"a\":1}", d2));
  assert_true(device_data_changed(st, DEVICE_DATA_NETWORK, "{\"a\":2}", d2));
  assert_string_not_equal(d1, d2);
  /* a damaged record counts as different */
  assert_int_equal(store_write(st, STORE_SENT_NETWORK, "xyz", 3, false, &eb), 0);
  assert_true(device_data_changed(st, DEVICE_DATA_NETWORK, "{\"a\":1}", d2));
  assert_string_equal(device_data_kind_name(DEVICE_DATA_SYSTEM_INFO), "system_info");
  assert_string_equal(device_data_kind_name(DEVICE_DATA_INSTALLED), "installed");
  assert_string_equal(device_data_kind_name(DEVICE_DATA_KINDS), "?");
  store_close(st);
}

static void test_config_telemetry(void **state) {
  (void)state;
  otad_config cfg;
  otad_errbuf eb = {{0}};
  config_init(&cfg);
  assert_true(cfg.report_network);
  assert_true(cfg.report_config);
  assert_int_equal(config_set(&cfg, "provision.p12_password", "hunter2", &eb), 0);
  assert_int_equal(config_set(&cfg, "p11.pass", "1234", &eb), 0);
  assert_int_equal(config_set(&cfg, "telemetry.report_network", "false", &eb), 0);
  assert_int_not_equal(config_set(&cfg, "telemetry.report_config", "maybe", &eb), 0);
  assert_non_null(strstr(eb.msg, "telemetry.report_config: must be true or false"));
  assert_true(cfg.report_config);
  assert_int_equal(config_set(&cfg, "telemetry.report_config", "0", &eb), 0);
  assert_false(cfg.report_config);
  assert_int_equal(config_finish(&cfg, &eb), 0);
  char *dump = config_dump(&cfg);
  assert_non_null(dump);
  assert_non_null(strstr(dump, "[telemetry]\nreport_network = false\nreport_config = false\n"));
  assert_null(strstr(dump, "hunter2"));
  assert_null(strstr(dump, "1234"));
  assert_non_null(strstr(dump, "pass = \"<redacted>\"\n"));
  free(dump);
  /* read back from a file: bare TOML booleans */
  char path[128];
  snprintf(path, sizeof(path), "%s/t.toml", tmp_root);
  put_text("", path, "[telemetry]\nreport_network = true # on\nreport_config = false\n");
  config_free(&cfg);
  config_init(&cfg);
  assert_int_equal(config_load_path(&cfg, path, NULL, NULL, &eb), 0);
  assert_true(cfg.report_network);
  assert_false(cfg.report_config);
  config_free(&cfg);
}

/* ---- sending ------------------------------------------------------------------------------ */

#define MAX_SEEN 16

typedef struct server {
  loopback_server lb;
  pthread_mutex_t mu;
  char fail_path[64]; /* answered with fail_status */
  int fail_status;
  int n;
  char method[MAX_SEEN][8], path[MAX_SEEN][64], type[MAX_SEEN][64];
  char *body[MAX_SEEN];
} server;

static void serve_one(server *s, int c) {
  static char req[1 << 18];
  size_t len = 0, want = 0;
  char *body = NULL;
  while (len < sizeof(req) - 1) {
    ssize_t k = recv(c, req + len, sizeof(req) - 1 - len, 0);
    if (k <= 0) return;
    len += (size_t)k;
    req[len] = 0;
    if (!body && (body = strstr(req, "\r\n\r\n"))) {
      body += 4;
      const char *cl = strcasestr(req, "\r\nContent-Length: ");
      want = cl ? strtoul(cl + 18, NULL, 10) : 0;
    }
    if (body && (size_t)(req + len - body) >= want) break;
  }
  if (!body) return;
  pthread_mutex_lock(&s->mu);
  int i = s->n++;
  int status = 200;
  if (i < MAX_SEEN) {
    sscanf(req, "%7s %63s", s->method[i], s->path[i]);
    const char *ct = strcasestr(req, "\r\nContent-Type: ");
    s->type[i][0] = 0;
    if (ct) sscanf(ct + 16, "%63[^\r]", s->type[i]);
    s->body[i] = strndup(body, want);
    if (s->fail_status && strcmp(s->path[i], s->fail_path) == 0) status = s->fail_status;
  }
  pthread_mutex_unlock(&s->mu);
  char h[160];
  int hl = snprintf(h, sizeof(h),
                    "HTTP/1.1 %d X\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", status);
  send(c, h, (size_t)hl, MSG_NOSIGNAL);
}

static void serve_cb(void *ctx, int c) {
  serve_one(ctx, c);
}

static void seen_clear(server *s) {
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < s->n && i < MAX_SEEN; i++)
    free(s->body[i]);
  s->n = 0;
  pthread_mutex_unlock(&s->mu);
}

typedef struct fixture {
  server srv;
  uv_loop_t loop;
  http_client *http;
  otad_config cfg;
  device d;
  int sent; /* then() was called */
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  pthread_mutex_init(&f->srv.mu, NULL);
  loopback_start(&f->srv.lb, serve_cb, &f->srv);
  uv_loop_init(&f->loop);
  f->http = http_client_new(&f->loop);
  config_init(&f->cfg);
  otad_errbuf eb = {{0}};
  assert_int_equal(config_set(&f->cfg, "provision.p12_password", "s3cret-pw", &eb), 0);
  assert_int_equal(config_set(&f->cfg, "storage.path", "/var/sota-test", &eb), 0);
  device_opts o = {.actions = &states_actions,
                   .label = "test",
                   .cfg = &f->cfg,
                   .loop = &f->loop,
                   .http = f->http,
                   .st = store_mem_open(),
                   .seed = 1,
                   .quiet = !getenv("OTAD_TEST_VERBOSE"),
                   .data = f};
  device_init(&f->d, &o);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/", f->srv.lb.port);
  f->d.server_url = strdup(url);
  f->d.upd = calloc(1, sizeof(device_update));
  *state = f;
  return 0;
}

static void device_closed(device *d) {
  (void)d;
}

static int teardown(void **state) {
  fixture *f = *state;
  device_close(&f->d, device_closed);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  free(f->d.upd);
  f->d.upd = NULL;
  device_free(&f->d);
  http_client_close(f->http);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  config_free(&f->cfg);
  loopback_stop(&f->srv.lb);
  seen_clear(&f->srv);
  pthread_mutex_destroy(&f->srv.mu);
  free(f);
  return 0;
}

static void on_sent(device *d) {
  fixture *f = d->o.data;
  f->sent++;
}

/* One device_data_send(); returns "METHOD PATH" of each request, space-separated. */
static const char *send_data(fixture *f, char *out, size_t n) {
  seen_clear(&f->srv);
  f->sent = 0;
  device_data_send(&f->d, on_sent);
  uint64_t t0 = uv_hrtime();
  while (!f->sent && uv_hrtime() - t0 < 30ull * 1000000000ull)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(f->sent, 1);
  out[0] = 0;
  pthread_mutex_lock(&f->srv.mu);
  for (int i = 0; i < f->srv.n && i < MAX_SEEN; i++) {
    size_t l = strlen(out);
    snprintf(out + l, n - l, "%s%s %s", i ? ", " : "", f->srv.method[i], f->srv.path[i]);
  }
  pthread_mutex_unlock(&f->srv.mu);
  return out;
}

static void test_send_when_changed(void **state) {
  fixture *f = *state;
  char seen[512];
  assert_string_equal(send_data(f, seen, sizeof(seen)),
                      "PUT /system_info, PUT /core/installed, PUT /system_info/network, "
                      "POST /system_info/config");
  /* what went out */
  cJSON *hw = cJSON_Parse(f->srv.body[0]);
  assert_non_null(str_of(hw, "id", NULL));
  cJSON_Delete(hw);
  assert_string_equal(f->srv.type[0], "application/json");
  assert_string_equal(f->srv.body[1], "[]");
  assert_string_equal(f->srv.type[3], "application/toml");
  assert_non_null(strstr(f->srv.body[3], "[storage]\npath = \"/var/sota-test\"\n"));
  assert_null(strstr(f->srv.body[3], "s3cret-pw"));
  assert_non_null(strstr(f->srv.body[3], "p12_password = \"<redacted>\""));

  /* nothing changed: nothing sent */
  assert_string_equal(send_data(f, seen, sizeof(seen)), "");

  /* an installation: only the installed list goes again */
  otad_errbuf eb = {{0}};
  const char *inst = "{\"name\":\"fw-1.bin\",\"sha256\":\"00\",\"version\":\"1.0\"}";
  assert_int_equal(store_write(f->d.o.st, STORE_INSTALLED_TARGET, inst, strlen(inst), false, &eb),
                   0);
  assert_string_equal(send_data(f, seen, sizeof(seen)), "PUT /core/installed");
  assert_string_equal(f->srv.body[0], "[{\"name\":\"fw-1.bin\",\"version\":\"1.0\"}]");
  assert_string_equal(send_data(f, seen, sizeof(seen)), "");
}

static void test_refused_kind_is_retried(void **state) {
  fixture *f = *state;
  char seen[512];
  snprintf(f->srv.fail_path, sizeof(f->srv.fail_path), "/system_info");
  f->srv.fail_status = 500;
  /* refused: a warning, the other kinds still go, then() is called */
  assert_string_equal(send_data(f, seen, sizeof(seen)),
                      "PUT /system_info, PUT /core/installed, PUT /system_info/network, "
                      "POST /system_info/config");
  assert_null(store_read_string(f->d.o.st, STORE_SENT_SYSTEM_INFO));
  assert_string_equal(send_data(f, seen, sizeof(seen)), "PUT /system_info"); /* still refused */
  f->srv.fail_status = 0;
  assert_string_equal(send_data(f, seen, sizeof(seen)), "PUT /system_info");
  assert_string_equal(send_data(f, seen, sizeof(seen)), "");
}

static void test_telemetry_switches(void **state) {
  fixture *f = *state;
  char seen[512];
  f->cfg.report_network = false;
  f->cfg.report_config = false;
  assert_string_equal(send_data(f, seen, sizeof(seen)), "PUT /system_info, PUT /core/installed");
  f->cfg.report_config = true;
  assert_string_equal(send_data(f, seen, sizeof(seen)), "POST /system_info/config");
}

static void test_server_gone(void **state) {
  fixture *f = *state;
  char seen[512];
  /* a port nothing listens on: the first kind fails, the rest wait for the next cycle */
  loopback_server gone;
  loopback_start(&gone, serve_cb, &f->srv);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/", gone.port);
  loopback_stop(&gone);
  free(f->d.server_url);
  f->d.server_url = strdup(url);
  assert_string_equal(send_data(f, seen, sizeof(seen)), "");
  for (int k = 0; k < DEVICE_DATA_KINDS; k++) {
    char d[65];
    assert_true(device_data_changed(f->d.o.st, (enum device_data_kind)k, "x", d));
  }
  assert_null(store_read_string(f->d.o.st, STORE_SENT_SYSTEM_INFO));
  /* no server URL known yet: then() at once */
  free(f->d.server_url);
  f->d.server_url = NULL;
  assert_string_equal(send_data(f, seen, sizeof(seen)), "");
}

/* ---- download progress ------------------------------------------------------------------- */

static void test_download_progress(void **state) {
  (void)state;
  store *st = store_mem_open();
  otad_config cfg;
  otad_errbuf eb = {{0}};
  config_init(&cfg);
  char images[128];
  snprintf(images, sizeof(images), "%s/images", tmp_root);
  mkdirs(images);
  assert_int_equal(config_set(&cfg, "pacman.images_path", images, &eb), 0);
  download_progress p;
  assert_false(device_download_progress(&cfg, st, &p)); /* nothing assigned */

  const char *sha = "aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11";
  char dt[1024];
  snprintf(dt, sizeof(dt),
           "{\"signatures\":[],\"signed\":{\"_type\":\"Targets\",\"targets\":{"
           "\"other.bin\":{\"length\":5,\"hashes\":{\"sha256\":\"00\"},\"custom\":{"
           "\"ecuIdentifiers\":{\"ecu-2\":{\"hardwareId\":\"b\"}}}},"
           "\"fw-9.bin\":{\"length\":1000,\"hashes\":{\"sha256\":\"%s\"},\"custom\":{"
           "\"ecuIdentifiers\":{\"ecu-1\":{\"hardwareId\":\"b\"}}}}}}}",
           sha);
  assert_int_equal(store_write(st, STORE_DIRECTOR_TARGETS, dt, strlen(dt), false, &eb), 0);
  assert_int_equal(store_write(st, STORE_ECU_SERIAL, "ecu-1", 5, false, &eb), 0);
  assert_true(device_download_progress(&cfg, st, &p));
  assert_string_equal(p.name, "fw-9.bin");
  assert_int_equal(p.received, 0);
  assert_int_equal(p.total, 1000);
  assert_false(p.complete);

  char part[256], rel[200];
  snprintf(rel, sizeof(rel), "/%s.part", sha);
  static char bytes[1000];
  put_file(images, rel, bytes, 420);
  assert_true(device_download_progress(&cfg, st, &p));
  assert_int_equal(p.received, 420);
  assert_false(p.complete);

  snprintf(rel, sizeof(rel), "/%s", sha);
  put_file(images, rel, bytes, 1000);
  snprintf(part, sizeof(part), "%s/%s.part", images, sha);
  unlink(part);
  assert_true(device_download_progress(&cfg, st, &p));
  assert_true(p.complete);
  assert_int_equal(p.received, 1000);

  /* installed (or waiting for a reboot): no download to show */
  char inst[256];
  snprintf(inst, sizeof(inst), "{\"name\":\"fw-9.bin\",\"sha256\":\"%s\"}", sha);
  assert_int_equal(store_write(st, STORE_PENDING_TARGET, inst, strlen(inst), false, &eb), 0);
  assert_false(device_download_progress(&cfg, st, &p));
  assert_int_equal(store_remove(st, STORE_PENDING_TARGET, &eb), 0);
  assert_int_equal(store_write(st, STORE_INSTALLED_TARGET, inst, strlen(inst), false, &eb), 0);
  assert_false(device_download_progress(&cfg, st, &p));
  config_free(&cfg);
  store_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hardware_fake_root),
      cmocka_unit_test(test_default_iface),
      cmocka_unit_test(test_installed),
      cmocka_unit_test(test_change_detection),
      cmocka_unit_test(test_config_telemetry),
      cmocka_unit_test_setup_teardown(test_send_when_changed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused_kind_is_retried, setup, teardown),
      cmocka_unit_test_setup_teardown(test_telemetry_switches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_server_gone, setup, teardown),
      cmocka_unit_test(test_download_progress),
  };
  return cmocka_run_group_tests(tests, make_root, remove_root);
}
