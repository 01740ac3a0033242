/* test_config.c - sota.toml parsing: defaults, aktualizr files, order of sources, errors
 * and warnings with file:line, TOML details (quotes, comments, CRLF), overrides, derived
 * values and the dump.
 *
 * Every test writes its own files under one mkdtemp() directory, so the cases read in one
 * place and need no fixture tree.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw, mkdtemp */
#endif
/* cmocka needs these in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>
/* clang-format on */

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"

static char tmpdir[64];

/* ---- helpers ---------------------------------------------------------------------------- */

/* tmpdir/rel in one of a few rotating buffers (enough for one test's paths at a time). */
static const char *tpath(const char *rel) {
  static char bufs[8][256];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, sizeof(bufs[0]), "%s/%s", tmpdir, rel);
  return b;
}

static void mkdirs(const char *rel) {
  char buf[256];
  snprintf(buf, sizeof(buf), "%s", tpath(rel));
  for (char *s = buf + strlen(tmpdir) + 1; *s; s++)
    if (*s == '/') {
      *s = '\0';
      mkdir(buf, 0755);
      *s = '/';
    }
  mkdir(buf, 0755);
}

/* Writes tmpdir/rel (its directory is created) and returns its path. */
static const char *wfile(const char *rel, const char *content) {
  char dir[256];
  snprintf(dir, sizeof(dir), "%s", rel);
  char *slash = strrchr(dir, '/');
  if (slash) {
    *slash = '\0';
    mkdirs(dir);
  }
  const char *path = tpath(rel);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
  assert_int_equal(fclose(f), 0);
  return path;
}

typedef struct warnings {
  int n;
  char *msg[16];
} warnings;

static void collect_warning(void *ctx, const char *msg) {
  warnings *w = ctx;
  if (w->n < 16) w->msg[w->n++] = strdup(msg);
}

static void warnings_free(warnings *w) {
  for (int i = 0; i < w->n; i++)
    free(w->msg[i]);
  w->n = 0;
}

/* Loads one file; returns the result, eb has the message. */
static int load(otad_config *cfg, const char *path, warnings *w, otad_errbuf *eb) {
  return config_load_path(cfg, path, collect_warning, w, eb);
}

/* Loads content as a file named name and expects it to fail with err and a message
 * containing "<path>:<line>:" and the text want. */
static void expect_error(const char *name, const char *content, int err, int line,
                         const char *want) {
  otad_config cfg;
  otad_errbuf eb = {{0}};
  warnings w = {0};
  char prefix[300];
  config_init(&cfg);
  const char *path = wfile(name, content);
  snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
  int rc = load(&cfg, path, &w, &eb);
  if (rc != err || strncmp(eb.msg, prefix, strlen(prefix)) != 0 || !strstr(eb.msg, want))
    fail_msg("%s: got %d '%s', want %d '%s...%s'", name, rc, eb.msg, err, prefix, want);
  config_free(&cfg);
  warnings_free(&w);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}

static int setup(void **state) {
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/otad-test-config-XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
  return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_defaults(void **state) {
  otad_config cfg;
  otad_errbuf eb;
  config_init(&cfg);
  assert_int_equal(cfg.loglevel, 2);
  assert_int_equal(cfg.polling_sec, 10);
  assert_int_equal(cfg.expiry_days, 36000);
  assert_int_equal(cfg.key_type, KEY_RSA2048);
  assert_int_equal(cfg.mode, PROVISION_AUTO);
  assert_null(cfg.storage_path);
  assert_int_equal(config_mode(&cfg), PROVISION_DEVICE_CRED);

  assert_int_equal(config_finish(&cfg, &eb), 0);
  assert_int_equal(cfg.mode, PROVISION_DEVICE_CRED);
  assert_string_equal(cfg.storage_path, "/var/sota");
  assert_string_equal(cfg.import_base_path, "/var/sota/import");
  assert_string_equal(cfg.import_tls_cacert_path, "root.crt");
  assert_string_equal(cfg.import_tls_clientcert_path, "client.pem");
  assert_string_equal(cfg.import_tls_pkey_path, "pkey.pem");
  assert_string_equal(cfg.p12_password, "");
  assert_string_equal(cfg.tls_ca_source, "file");
  assert_string_equal(cfg.tls_pkey_source, "file");
  assert_string_equal(cfg.tls_cert_source, "file");
  assert_string_equal(cfg.key_source, "file");
  /* No server known yet: it may come from credentials.zip later. */
  assert_null(cfg.tls_server);
  assert_null(cfg.provision_server);
  assert_null(cfg.director_server);
  assert_null(cfg.repo_server);
  assert_null(cfg.pacman_type);
  assert_null(cfg.device_id);

  char *p = config_path(&cfg, cfg.import_tls_pkey_path);
  assert_string_equal(p, "/var/sota/import/pkey.pem");
  free(p);
  p = config_path(&cfg, "/etc/x.pem");
  assert_string_equal(p, "/etc/x.pem");
  free(p);
  config_free(&cfg);
  assert_null(cfg.storage_path);
}

/* What meta-updater installs for aktualizr-auto-prov, plus the usual fragments. */
static const char aktualizr_autoprov[] =
    "# sota_autoprov.toml as aktualizr ships it, with the usual fragments merged\n"
    "[logger]\n"
    "loglevel = 1\n"
    "\n"
    "[tls]\n"
    "server = \"https://ota.example.com:8443\"\n"
    "\n"
    "[provision]\n"
    "server = \"https://ota.example.com:8443\"\n"
    "p12_password = \"s3cret\"\n"
    "expiry_days = \"36000\"\n"
    "provision_path = \"/var/sota/sota_provisioning_credentials.zip\"\n"
    "primary_ecu_hardware_id = \"raspberrypi4\"\n"
    "\n"
    "[uptane]\n"
    "polling_sec = 300\n"
    "key_type = \"ED25519\"\n"
    "force_install_completion = false\n"
    "secondary_config_file = \"\"\n"
    "\n"
    "[pacman]\n"
    "type = \"ostree\"\n"
    "os = \"poky\"\n"
    "sysroot = \"/\"\n"
    "ostree_server = \"https://ota.example.com:8443/treehub\"\n"
    "packages_file = \"/usr/package.manifest\"\n"
    "\n"
    "[storage]\n"
    "type = \"sqlite\"\n"
    "path = \"/var/sota/\"\n"
    "sqldb_path = \"sql.db\"\n"
    "\n"
    "[import]\n"
    "base_path = \"/var/sota/import\"\n"
    "\n"
    "[telemetry]\n"
    "report_network = true\n"
    "\n"
    "[bootloader]\n"
    "rollback_mode = \"uboot_masked\"\n"
    "reboot_sentinel_dir = \"/var/run/aktualizr-session\"\n"
    "reboot_command = \"/sbin/reboot\"\n";

static void test_aktualizr_file(void **state) {
  otad_config cfg;
  otad_errbuf eb = {{0}};
  warnings w = {0};
  config_init(&cfg);
  assert_int_equal(load(&cfg, wfile("akt/sota.toml", aktualizr_autoprov), &w, &eb), 0);
  assert_int_equal(w.n, 0); /* aktualizr keys otad does not use are known, not unknown */
  assert_int_equal(cfg.loglevel, 1);
  assert_string_equal(cfg.tls_server, "https://ota.example.com:8443");
  assert_string_equal(cfg.provision_server, "https://ota.example.com:8443");
  assert_string_equal(cfg.p12_password, "s3cret");
  assert_int_equal(cfg.expiry_days, 36000);
  assert_string_equal(cfg.provision_path, "/var/sota/sota_provisioning_credentials.zip");
  assert_string_equal(cfg.primary_ecu_hardware_id, "raspberrypi4");
  assert_int_equal(cfg.polling_sec, 300);
  assert_int_equal(cfg.key_type, KEY_ED25519);
  assert_string_equal(cfg.pacman_type, "ostree");
  assert_string_equal(cfg.storage_path, "/var/sota/");
  assert_string_equal(cfg.import_base_path, "/var/sota/import");
  assert_string_equal(cfg.reboot_sentinel_dir, "/var/run/aktualizr-session");
  assert_string_equal(cfg.reboot_command, "/sbin/reboot");

  assert_int_equal(config_finish(&cfg, &eb), 0);
  assert_int_equal(config_mode(&cfg), PROVISION_SHARED_CRED);
  assert_string_equal(cfg.director_server, "https://ota.example.com:8443/director");
  assert_string_equal(cfg.repo_server, "https://ota.example.com:8443/repo");
  config_free(&cfg);
}

static void test_later_file_wins(void **state) {
  otad_config cfg;
  otad_errbuf eb;
  warnings w = {0};
  config_init(&cfg);
  const char *a = wfile("later/a.toml", "[provision]\ndevice_id = \"first\"\n"
                                        "primary_ecu_serial = \"serial-a\"\n"
                                        "[uptane]\npolling_sec = 5\n");
  const char *b = wfile("later/b.toml", "[provision]\ndevice_id = \"second\"\n");
  assert_int_equal(load(&cfg, a, &w, &eb), 0);
  assert_int_equal(load(&cfg, b, &w, &eb), 0);
  assert_string_equal(cfg.device_id, "second");
  assert_string_equal(cfg.primary_ecu_serial, "serial-a"); /* not named later: kept */
  assert_int_equal(cfg.polling_sec, 5);
  /* An empty value unsets, as it does for aktualizr. */
  assert_int_equal(load(&cfg, wfile("later/c.toml", "[provision]\ndevice_id = \"\"\n"), &w, &eb),
                   0);
  assert_null(cfg.device_id);
  assert_int_equal(w.n, 0);
  config_free(&cfg);
}

static void test_directory_in_name_order(void **state) {
  otad_config cfg;
  otad_errbuf eb;
  warnings w = {0};
  config_init(&cfg);
  wfile("dir/20-b.toml", "[provision]\ndevice_id = \"from-20\"\n[uptane]\npolling_sec = 20\n");
  wfile("dir/10-a.toml", "[provision]\ndevice_id = \"from-10\"\nprimary_ecu_serial = \"s10\"\n");
  wfile("dir/30-c.toml", "[uptane]\npolling_sec = 30\n");
  wfile("dir/99-z.toml.bak", "[uptane]\npolling_sec = 99\n"); /* not *.toml */
  wfile("dir/README", "not a config\n");
  mkdirs("dir/50-sub.toml"); /* a directory, not a file */
  assert_int_equal(load(&cfg, tpath("dir"), &w, &eb), 0);
  assert_string_equal(cfg.device_id, "from-20");
  assert_string_equal(cfg.primary_ecu_serial, "s10");
  assert_int_equal(cfg.polling_sec, 30);
  assert_int_equal(w.n, 0);

  /* A directory with no *.toml is a warning, not an error. */
  mkdirs("emptydir");
  assert_int_equal(load(&cfg, tpath("emptydir"), &w, &eb), 0);
  assert_int_equal(w.n, 1);
  assert_non_null(strstr(w.msg[0], "no *.toml"));
  warnings_free(&w);
  config_free(&cfg);
}

static void test_confd_replacement(void **state) {
  otad_config cfg;
  otad_errbuf eb;
  warnings w = {0};
  config_init(&cfg);
  /* The vendor's 10-server.toml is replaced whole by the admin's file of the same name. */
  wfile("usr/conf.d/10-server.toml", "[tls]\nserver = \"https://vendor\"\n"
                                     "[provision]\nprimary_ecu_serial = \"vendor-serial\"\n");
  wfile("usr/conf.d/30-poll.toml", "[uptane]\npolling_sec = 30\n"
                                   "[provision]\ndevice_id = \"vendor-30\"\n");
  wfile("etc/conf.d/10-server.toml", "[tls]\nserver = \"https://admin\"\n");
  /* Name order crosses directories: etc's 20 comes before usr's 30. */
  wfile("etc/conf.d/20-id.toml", "[provision]\ndevice_id = \"admin-20\"\n"
                                 "[uptane]\npolling_sec = 20\n");
  const char *dirs[] = {tpath("usr/conf.d"), tpath("etc/conf.d"), tpath("missing/conf.d"), NULL};
  assert_int_equal(config_load_default(&cfg, dirs, collect_warning, &w, &eb), 0);
  assert_string_equal(cfg.tls_server, "https://admin");
  assert_null(cfg.primary_ecu_serial); /* only in the replaced vendor file */
  assert_string_equal(cfg.device_id, "vendor-30");
  assert_int_equal(cfg.polling_sec, 30);
  assert_int_equal(w.n, 0);
  config_free(&cfg);

  /* No directories at all: nothing applied, no error. */
  const char *none[] = {tpath("nothing/here"), NULL};
  config_init(&cfg);
  assert_int_equal(config_load_default(&cfg, none, collect_warning, &w, &eb), 0);
  assert_null(cfg.tls_server);
  config_free(&cfg);
}

static void test_missing_path(void **state) {
  otad_config cfg;
  otad_errbuf eb;
  char want[300];
  config_init(&cfg);
  const char *path = tpath("does/not/exist.toml");
  assert_int_equal(config_load_path(&cfg, path, NULL, NULL, &eb), OTAD_ENOENT);
  snprintf(want, sizeof(want), "%s: no such file or directory", path);
  assert_string_equal(eb.msg, want);
  config_free(&cfg);
}

static void test_malformed_lines(void **state) {
  expect_error("bad/noeq.toml", "[provision]\n\ndevice_id \"x\"\n", OTAD_ECONFIG, 3, "missing '='");
  expect_error("bad/noeq2.toml", "# c\njust some words\n", OTAD_ECONFIG, 2, "missing '='");
  expect_error("bad/unterminated.toml", "[tls]\nserver = \"https://x\n", OTAD_ECONFIG, 2,
               "unterminated string");
  expect_error("bad/unterminated2.toml", "[tls]\nserver = 'https://x\n", OTAD_ECONFIG, 2,
               "unterminated string");
  expect_error("bad/escape-eol.toml", "[tls]\nserver = \"x\\\"\n", OTAD_ECONFIG, 2,
               "unterminated string");
  expect_error("bad/section.toml", "[logger]\nloglevel = 1\n[provision\n", OTAD_ECONFIG, 3,
               "section header without ']'");
  expect_error("bad/section2.toml", "[uptane] polling_sec = 1\n", OTAD_ECONFIG, 1,
               "unexpected text after the section header");
  expect_error("bad/after.toml", "[tls]\nserver = \"a\" \"b\"\n", OTAD_ECONFIG, 2,
               "unexpected text after the value");
  expect_error("bad/empty.toml", "[tls]\nserver =\n", OTAD_ECONFIG, 2, "missing value");
  expect_error("bad/nokey.toml", "[tls]\n= \"x\"\n", OTAD_ECONFIG, 2, "missing key name");
  expect_error("bad/escape.toml", "[tls]\nserver = \"a\\qb\"\n", OTAD_ECONFIG, 2, "invalid escape");
  expect_error("bad/multiline.toml", "[tls]\nserver = \"\"\"x\n\"\"\"\n", OTAD_ECONFIG, 2,
               "multi-line strings are not supported");
  expect_error("bad/array.toml", "[[tls]]\n", OTAD_ECONFIG, 1, "not supported");
  expect_error("bad/secname.toml", "[t ls]\n", OTAD_ECONFIG, 1, "invalid section name");
  expect_error("bad/dotted.toml", "\nprovision.server = \"x\"\n", OTAD_ECONFIG, 2,
               "dotted keys are not supported");
}

static void test_unknown_keys_warn(void **state) {
  otad_config cfg;
  otad_errbuf eb;
  warnings w = {0};
  char want[300];
  config_init(&cfg);
  const char *path = wfile("unknown/sota.toml", "[provision]\n"
                                                "device_id = \"d\"\n"
                                                "colour = \"blue\"\n"
                                                "\n"
                                                "[gadgets]\n"
                                                "count = 3\n"
                                                "[uptane]\n"
                                                "polling_sec = 7\n");
  assert_int_equal(load(&cfg, path, &w, &eb), 0);
  assert_int_equal(w.n, 2);
  snprintf(want, sizeof(want), "%s:3: unknown key 'provision.colour' (ignored)", path);
  assert_string_equal(w.msg[0], want);
  snprintf(want, sizeof(want), "%s:6: unknown key 'gadgets.count' (ignored)", path);
  assert_string_equal(w.msg[1], want);
  /* The rest of the file still applies. */
  assert_string_equal(cfg.device_id, "d");
  assert_int_equal(cfg.polling_sec, 7);
  warnings_free(&w);

  /* A key before any section. */
  path = wfile("unknown/top.toml", "server = \"x\"\n");
  assert_int_equal(load(&cfg, path, &w, &eb), 0);
  assert_int_equal(w.n, 1);
  snprintf(want, sizeof(want), "%s:1: unknown key 'server' (ignored)", path);
  assert_string_equal(w.msg[0], want);
  warnings_free(&w);

  /* No callback: unknown keys are still not errors. */
  assert_int_equal(config_load_path(&cfg, path, NULL, NULL, &eb), 0);
  config_free(&cfg);
}

static void test_bad_values(void **state) {
  expect_error("val/ll.toml", "[logger]\nloglevel = 6\n", OTAD_ECONFIG, 2, "logger.loglevel");
  expect_error("val/ll2.toml", "[logger]\nloglevel = -1\n", OTAD_ECONFIG, 2, "0..5");
  expect_error("val/ll3.toml", "[logger]\nloglevel = \"info\"\n", OTAD_ECONFIG, 2, "'info'");
  expect_error("val/poll.toml", "[uptane]\npolling_sec = 0\n", OTAD_ECONFIG, 2,
               "uptane.polling_sec: must be a positive integer, not '0'");
  expect_error("val/poll2.toml", "\n\n[uptane]\npolling_sec = \"10s\"\n", OTAD_ECONFIG, 4,
               "uptane.polling_sec");
  expect_error("val/poll3.toml", "[uptane]\npolling_sec = 99999999999\n", OTAD_ECONFIG, 2,
               "positive integer");
  expect_error("val/exp.toml", "[provision]\nexpiry_days = -5\n", OTAD_ECONFIG, 2,
               "provision.expiry_days");
  expect_error("val/mode.toml", "[provision]\nmode = \"Shared\"\n", OTAD_ECONFIG, 2,
               "provision.mode: must be SharedCred, DeviceCred or SharedCredReuse, not 'Shared'");
  expect_error("val/mode2.toml", "[provision]\nmode = \"sharedcred\"\n", OTAD_ECONFIG, 2,
               "provision.mode");
  expect_error("val/kt.toml", "[uptane]\nkey_type = \"RSA1024\"\n", OTAD_ECONFIG, 2,
               "uptane.key_type");
  expect_error("val/src.toml", "[tls]\npkey_source = \"hsm\"\n", OTAD_ECONFIG, 2,
               "tls.pkey_source: must be \"file\" or \"pkcs11\"");
  expect_error("val/src2.toml", "[tls]\ncert_source = \"\"\n", OTAD_ECONFIG, 2, "tls.cert_source");
  expect_error("val/src3.toml", "[uptane]\nkey_source = \"disk\"\n", OTAD_ECONFIG, 2,
               "uptane.key_source");
  expect_error("val/src4.toml", "[tls]\nca_source = \"x\"\n", OTAD_ECONFIG, 2, "tls.ca_source");

  /* Every accepted spelling. */
  otad_config cfg;
  otad_errbuf eb;
  warnings w = {0};
  static const struct {
    const char *text;
    enum provision_mode mode;
    enum uptane_key_type kt;
  } ok[] = {
      {"mode = \"SharedCred\"\nkey_type = \"RSA2048\"", PROVISION_SHARED_CRED, KEY_RSA2048},
      {"mode = \"DeviceCred\"\nkey_type = \"RSA3072\"", PROVISION_DEVICE_CRED, KEY_RSA3072},
      {"mode = SharedCredReuse\nkey_type = RSA4096", PROVISION_SHARED_CRED_REUSE, KEY_RSA4096},
      {"mode = 'DeviceCred'\nkey_type = 'ED25519'", PROVISION_DEVICE_CRED, KEY_ED25519},
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    char text[200];
    const char *mode_line = ok[i].text, *nl = strchr(mode_line, '\n');
    snprintf(text, sizeof(text), "[provision]\n%.*s\n[uptane]\n%s\n[logger]\nloglevel = 5\n",
             (int)(nl - mode_line), mode_line, nl + 1);
    config_init(&cfg);
    assert_int_equal(load(&cfg, wfile("val/ok.toml", text), &w, &eb), 0);
    assert_int_equal(cfg.mode, ok[i].mode);
    assert_int_equal(cfg.key_type, ok[i].kt);
    assert_int_equal(cfg.loglevel, 5);
    config_free(&cfg);
  }
  assert_int_equal(w.n, 0);
}

static void test_comments_and_quoting(void **state) {
  otad_config cfg;
  otad_errbuf eb = {{0}};
  warnings w = {0};
  char longval[400], text[1200];
  memset(longval, 'a', sizeof(longval) - 1);
  memcpy(longval, "/long/", 6);
  longval[sizeof(longval) - 1] = '\0';
  snprintf(text, sizeof(text),
           "# full-line comment\n"
           "; an INI-style comment\n"
           "   # indented comment\n"
           "[tls]   # comment after a section\n"
           "server = \"https://x\" # prod\n"
           "server_url_path = /etc/sota/gateway.url   # bare value, comment\n"
           "  [provision]\n"
           "  device_id = \"dev#1 ; not a comment\"\n"   /* indented keys: still keys */
           "  primary_ecu_serial = 'C:\\raw\\literal'\n" /* literal: no escapes */
           "\tprimary_ecu_hardware_id=\"tab\\tbed \\\"quoted\\\" \\u00e9\"\n"
           "p12_password = \"  spaced  \"\n"
           "[bootloader]\n"
           "reboot_command = \"%s\"\n"
           "[ p11 ]\n"
           "pass = \"1234\"#tight comment\n",
           longval);
  config_init(&cfg);
  assert_int_equal(load(&cfg, wfile("comments/sota.toml", text), &w, &eb), 0);
  assert_int_equal(w.n, 0);
  assert_string_equal(cfg.tls_server, "https://x");
  assert_string_equal(cfg.tls_server_url_path, "/etc/sota/gateway.url");
  assert_string_equal(cfg.device_id, "dev#1 ; not a comment");
  assert_string_equal(cfg.primary_ecu_serial, "C:\\raw\\literal");
  assert_string_equal(cfg.primary_ecu_hardware_id, "tab\tbed \"quoted\" \xc3\xa9");
  assert_string_equal(cfg.p12_password, "  spaced  ");
  assert_string_equal(cfg.reboot_command, longval); /* longer than inih's line buffer */
  assert_string_equal(cfg.p11_pass, "1234");
  config_free(&cfg);
}

static void test_crlf_and_bom(void **state) {
  otad_config cfg;
  otad_errbuf eb = {{0}};
  warnings w = {0};
  config_init(&cfg);
  const char *path = wfile("crlf/sota.toml", "\xEF\xBB\xBF[provision]\r\n"
                                             "device_id = \"win\"\r\n"
                                             "\r\n"
                                             "# comment\r\n"
                                             "[uptane]\r\n"
                                             "polling_sec = 42\r\n"
                                             "repo_server = https://r # c\r\n"
                                             "wat = 1\r\n");
  assert_int_equal(load(&cfg, path, &w, &eb), 0);
  assert_string_equal(cfg.device_id, "win");
  assert_int_equal(cfg.polling_sec, 42);
  assert_string_equal(cfg.repo_server, "https://r");
  assert_int_equal(w.n, 1);
  assert_non_null(strstr(w.msg[0], ":8: unknown key 'uptane.wat'"));
  warnings_free(&w);
  config_free(&cfg);

  /* Line numbers stay right with CRLF (and no final newline). */
  expect_error("crlf/bad.toml", "[logger]\r\n\r\nloglevel = 9", OTAD_ECONFIG, 3, "logger.loglevel");
}

static void test_config_set(void **state) {
  otad_config cfg;
  otad_errbuf eb = {{0}};
  config_init(&cfg);
  assert_int_equal(config_set(&cfg, "provision.device_id", "cli-device", &eb), 0);
  assert_string_equal(cfg.device_id, "cli-device");
  assert_int_equal(config_set(&cfg, "provision.device_id", "again", &eb), 0);
  assert_string_equal(cfg.device_id, "again");
  assert_int_equal(config_set(&cfg, "uptane.polling_sec", "60", &eb), 0);
  assert_int_equal(cfg.polling_sec, 60);
  assert_int_equal(config_set(&cfg, "provision.mode", "SharedCredReuse", &eb), 0);
  assert_int_equal(cfg.mode, PROVISION_SHARED_CRED_REUSE);
  /* The value is taken literally: no quote stripping on the command line. */
  assert_int_equal(config_set(&cfg, "bootloader.reboot_command", "\"x\" # y", &eb), 0);
  assert_string_equal(cfg.reboot_command, "\"x\" # y");
  assert_int_equal(config_set(&cfg, "storage.type", "sqlite", &eb), 0); /* known, ignored */

  assert_int_equal(config_set(&cfg, "uptane.polling_sec", "soon", &eb), OTAD_ECONFIG);
  assert_string_equal(eb.msg, "uptane.polling_sec: must be a positive integer, not 'soon'");
  assert_int_equal(cfg.polling_sec, 60);
  assert_int_equal(config_set(&cfg, "uptane.key_type", "DSA", &eb), OTAD_ECONFIG);
  assert_non_null(strstr(eb.msg, "uptane.key_type"));
  assert_int_equal(config_set(&cfg, "logger.loglevel", "", &eb), OTAD_ECONFIG);
  assert_non_null(strstr(eb.msg, "logger.loglevel"));
  assert_int_equal(config_set(&cfg, "provision.colour", "blue", &eb), OTAD_ECONFIG);
  assert_string_equal(eb.msg, "unknown key 'provision.colour'");
  assert_int_equal(config_set(&cfg, "device_id", "x", &eb), OTAD_ECONFIG);
  assert_non_null(strstr(eb.msg, "'device_id'"));
  config_free(&cfg);
}

static void test_finish_mode(void **state) {
  otad_config cfg;
  otad_errbuf eb = {{0}};

  config_init(&cfg); /* provision_path alone means SharedCred */
  assert_int_equal(config_set(&cfg, "provision.provision_path", "/c.zip", &eb), 0);
  assert_int_equal(config_mode(&cfg), PROVISION_SHARED_CRED);
  assert_int_equal(config_finish(&cfg, &eb), 0);
  assert_int_equal(cfg.mode, PROVISION_SHARED_CRED);
  assert_string_equal(config_mode_name(config_mode(&cfg)), "SharedCred");
  config_free(&cfg);

  config_init(&cfg); /* explicit DeviceCred wins over provision_path */
  assert_int_equal(config_set(&cfg, "provision.provision_path", "/c.zip", &eb), 0);
  assert_int_equal(config_set(&cfg, "provision.mode", "DeviceCred", &eb), 0);
  assert_int_equal(config_finish(&cfg, &eb), 0);
  assert_int_equal(config_mode(&cfg), PROVISION_DEVICE_CRED);
  config_free(&cfg);

  static const char *const shared[] = {"SharedCred", "SharedCredReuse"};
  for (int i = 0; i < 2; i++) {
    config_init(&cfg);
    assert_int_equal(config_set(&cfg, "provision.mode", shared[i], &eb), 0);
    assert_int_equal(config_finish(&cfg, &eb), OTAD_ECONFIG);
    assert_non_null(strstr(eb.msg, shared[i]));
    assert_non_null(strstr(eb.msg, "provision.provision_path"));
    config_free(&cfg);
  }

  config_init(&cfg); /* an HSM key needs the module and the key's ID */
  assert_int_equal(config_set(&cfg, "tls.pkey_source", "pkcs11", &eb), 0);
  assert_int_equal(config_finish(&cfg, &eb), OTAD_ECONFIG);
  assert_non_null(strstr(eb.msg, "p11.module"));
  assert_int_equal(config_set(&cfg, "p11.module", "/usr/lib/softhsm/libsofthsm2.so", &eb), 0);
  assert_int_equal(config_finish(&cfg, &eb), OTAD_ECONFIG);
  assert_non_null(strstr(eb.msg, "p11.tls_pkey_id"));
  assert_int_equal(config_set(&cfg, "p11.tls_pkey_id", "02", &eb), 0);
  assert_int_equal(config_finish(&cfg, &eb), 0);
  assert_int_equal(cfg.mode, PROVISION_DEVICE_CRED);
  config_free(&cfg);
  config_init(&cfg); /* ... and only in DeviceCred mode: SharedCred's key comes from the server */
  assert_int_equal(config_set(&cfg, "provision.provision_path", "/x/credentials.zip", &eb), 0);
  assert_int_equal(config_set(&cfg, "tls.pkey_source", "pkcs11", &eb), 0);
  assert_int_equal(config_set(&cfg, "p11.module", "/usr/lib/softhsm/libsofthsm2.so", &eb), 0);
  assert_int_equal(config_set(&cfg, "p11.tls_pkey_id", "02", &eb), 0);
  assert_int_equal(config_finish(&cfg, &eb), OTAD_ECONFIG);
  assert_non_null(strstr(eb.msg, "needs provision.mode = \"DeviceCred\""));
  config_free(&cfg);
}

static void test_server_derivation(void **state) {
  otad_config cfg;
  otad_errbuf eb = {{0}};

  config_init(&cfg); /* tls.server, trailing slash */
  assert_int_equal(config_set(&cfg, "tls.server", "https://gw:443/", &eb), 0);
  assert_int_equal(config_finish(&cfg, &eb), 0);
  assert_string_equal(cfg.director_server, "https://gw:443/director");
  assert_string_equal(cfg.repo_server, "https://gw:443/repo");
  assert_string_equal(cfg.provision_server, "https://gw:443/");
  config_free(&cfg);

  config_init(&cfg); /* provision.server only; an explicit repo kept */
  assert_int_equal(config_set(&cfg, "provision.server", "https://prov", &eb), 0);
  assert_int_equal(config_set(&cfg, "uptane.repo_server", "https://images", &eb), 0);
  assert_int_equal(config_finish(&cfg, &eb), 0);
  assert_null(cfg.tls_server);
  assert_string_equal(cfg.director_server, "https://prov/director");
  assert_string_equal(cfg.repo_server, "https://images");
  config_free(&cfg);

  config_init(&cfg); /* both: tls.server decides */
  assert_int_equal(config_set(&cfg, "provision.server", "https://prov", &eb), 0);
  assert_int_equal(config_set(&cfg, "tls.server", "https://tls", &eb), 0);
  assert_int_equal(config_finish(&cfg, &eb), 0);
  assert_string_equal(cfg.director_server, "https://tls/director");
  assert_string_equal(cfg.provision_server, "https://prov");
  config_free(&cfg);
}

#define ASSERT_SAME_STR(field)                                                                     \
  do {                                                                                             \
    if (a->field || b->field) {                                                                    \
      assert_non_null(a->field);                                                                   \
      assert_non_null(b->field);                                                                   \
      assert_string_equal(a->field, b->field);                                                     \
    }                                                                                              \
  } while (0)

static void assert_same_config(const otad_config *a, const otad_config *b) {
  assert_int_equal(a->loglevel, b->loglevel);
  assert_int_equal(a->expiry_days, b->expiry_days);
  assert_int_equal(a->mode, b->mode);
  assert_int_equal(a->polling_sec, b->polling_sec);
  assert_int_equal(a->key_type, b->key_type);
  ASSERT_SAME_STR(tls_server);
  ASSERT_SAME_STR(tls_server_url_path);
  ASSERT_SAME_STR(tls_ca_source);
  ASSERT_SAME_STR(tls_pkey_source);
  ASSERT_SAME_STR(tls_cert_source);
  ASSERT_SAME_STR(provision_server);
  ASSERT_SAME_STR(p12_password);
  ASSERT_SAME_STR(provision_path);
  ASSERT_SAME_STR(device_id);
  ASSERT_SAME_STR(primary_ecu_serial);
  ASSERT_SAME_STR(primary_ecu_hardware_id);
  ASSERT_SAME_STR(ecu_registration_endpoint);
  ASSERT_SAME_STR(director_server);
  ASSERT_SAME_STR(repo_server);
  ASSERT_SAME_STR(key_source);
  ASSERT_SAME_STR(pacman_type);
  ASSERT_SAME_STR(images_path);
  ASSERT_SAME_STR(storage_path);
  ASSERT_SAME_STR(import_base_path);
  ASSERT_SAME_STR(import_tls_cacert_path);
  ASSERT_SAME_STR(import_tls_clientcert_path);
  ASSERT_SAME_STR(import_tls_pkey_path);
  ASSERT_SAME_STR(p11_module);
  ASSERT_SAME_STR(p11_pass);
  ASSERT_SAME_STR(p11_tls_pkey_id);
  ASSERT_SAME_STR(p11_tls_clientcert_id);
  ASSERT_SAME_STR(p11_uptane_key_id);
  ASSERT_SAME_STR(reboot_sentinel_dir);
  ASSERT_SAME_STR(reboot_command);
}

static void test_dump_roundtrip(void **state) {
  otad_config cfg, back;
  otad_errbuf eb = {{0}};
  warnings w = {0};
  config_init(&cfg);
  assert_int_equal(load(&cfg, wfile("dump/in.toml", aktualizr_autoprov), &w, &eb), 0);
  static const char *const sets[][2] = {
      {"provision.device_id", "dev \"quoted\" \\ back#slash ; semi"},
      {"provision.primary_ecu_serial", "line1\nline2\ttab\x01"},
      {"provision.mode", "SharedCredReuse"},
      {"provision.ecu_registration_endpoint", "https://e/ecus"},
      {"uptane.key_source", "pkcs11"},
      {"p11.module", "/usr/lib/libsofthsm2.so"},
      {"p11.uptane_key_id", "02"},
      {"pacman.images_path", "/var/sota/images"},
      {"logger.loglevel", "0"},
  };
  for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
    assert_int_equal(config_set(&cfg, sets[i][0], sets[i][1], &eb), 0);
  assert_int_equal(config_finish(&cfg, &eb), 0);

  char *dump = config_dump(&cfg);
  assert_non_null(dump);
  assert_non_null(strstr(dump, "[provision]\n"));
  assert_non_null(strstr(dump, "mode = \"SharedCredReuse\"\n"));
  assert_non_null(strstr(dump, "polling_sec = 300\n"));
  assert_non_null(strstr(dump, "key_type = \"ED25519\"\n"));
  assert_null(strstr(dump, "s3cret")); /* the dump goes to the server */
  assert_non_null(strstr(dump, "p12_password = \"<redacted>\"\n"));
  assert_null(strstr(dump, "sqlite"));   /* ignored keys are not part of otad's config */
  assert_null(strstr(dump, "[p11]\n[")); /* no empty sections */

  config_init(&back);
  assert_int_equal(load(&back, wfile("dump/out.toml", dump), &w, &eb), 0);
  assert_int_equal(w.n, 0);
  assert_int_equal(config_finish(&back, &eb), 0);
  assert_string_equal(back.p12_password, "<redacted>");
  free(cfg.p12_password); /* the one value that does not come back */
  cfg.p12_password = strdup("<redacted>");
  assert_same_config(&cfg, &back);

  /* Dumping the re-read config gives the same text. */
  char *dump2 = config_dump(&back);
  assert_string_equal(dump, dump2);
  free(dump);
  free(dump2);
  config_free(&back);
  config_free(&cfg);

  /* A fresh config dumps its defaults and round-trips too. */
  config_init(&cfg);
  assert_int_equal(config_finish(&cfg, &eb), 0);
  dump = config_dump(&cfg);
  assert_non_null(dump);
  assert_non_null(strstr(dump, "p12_password = \"\"\n")); /* empty is not a secret */
  assert_null(strstr(dump, "director_server"));
  config_init(&back);
  assert_int_equal(load(&back, wfile("dump/defaults.toml", dump), &w, &eb), 0);
  assert_int_equal(config_finish(&back, &eb), 0);
  assert_same_config(&cfg, &back);
  free(dump);
  config_free(&back);
  config_free(&cfg);
}

static void test_names(void **state) {
  assert_string_equal(config_mode_name(PROVISION_SHARED_CRED), "SharedCred");
  assert_string_equal(config_mode_name(PROVISION_DEVICE_CRED), "DeviceCred");
  assert_string_equal(config_mode_name(PROVISION_SHARED_CRED_REUSE), "SharedCredReuse");
  assert_string_equal(config_key_type_name(KEY_RSA2048), "RSA2048");
  assert_string_equal(config_key_type_name(KEY_RSA3072), "RSA3072");
  assert_string_equal(config_key_type_name(KEY_RSA4096), "RSA4096");
  assert_string_equal(config_key_type_name(KEY_ED25519), "ED25519");
  assert_string_equal(config_key_type_name((enum uptane_key_type)42), "unknown");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),          cmocka_unit_test(test_aktualizr_file),
      cmocka_unit_test(test_later_file_wins),   cmocka_unit_test(test_directory_in_name_order),
      cmocka_unit_test(test_confd_replacement), cmocka_unit_test(test_missing_path),
      cmocka_unit_test(test_malformed_lines),   cmocka_unit_test(test_unknown_keys_warn),
      cmocka_unit_test(test_bad_values),        cmocka_unit_test(test_comments_and_quoting),
      cmocka_unit_test(test_crlf_and_bom),      cmocka_unit_test(test_config_set),
      cmocka_unit_test(test_finish_mode),       cmocka_unit_test(test_server_derivation),
      cmocka_unit_test(test_dump_roundtrip),    cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
