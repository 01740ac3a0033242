/* main.c - otad, the device agent: command line, configuration, one device on one loop.
 *
 * Data flows one way: the command line and sota.toml make an otad_config; the config makes
 * one device; the device's state machine uses transport/ and storage/. `once` exits when
 * the device reaches a final state; `daemon` stays up (SIGTERM/SIGINT end it cleanly);
 * `check` runs one cycle up to the verified metadata and prints what is available.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "device/device.h"
#include "core/log.h"
#include "device/status.h"
#include "states/states.h"
#include "storage/store.h"
#include "transport/http.h"
#include "crypto/tls.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_NOT_PROVISIONED = 3 };

static const char usage_text[] =
    "Usage: otad [OPTIONS] COMMAND\n"
    "\n"
    "An over-the-air update agent speaking the OTA Connect device API.\n"
    "\n"
    "Commands:\n"
    "  once          provision the device if needed, run one update cycle, then exit\n"
    "                (0 when provisioned and the cycle found nothing to do or installed)\n"
    "  check         provision if needed, verify the metadata and print the update available\n"
    "                (name, version, length) or \"no update\"; downloads nothing\n"
    "  daemon        provision, then poll every [uptane] polling_sec until SIGTERM/SIGINT\n"
    "  status        print device ID, provisioning state, server, certificate expiry, the\n"
    "                installed target and the progress of an unfinished download\n"
    "\n"
    "Options:\n"
    "  -c, --config PATH        a sota.toml file or a directory of *.toml (repeatable);\n"
    "                           default: /usr/lib/sota/conf.d then /etc/sota/conf.d\n"
    "      --loglevel N         0 trace, 1 debug, 2 info, 3 warning, 4 error, 5 fatal\n"
    "      --storage DIR        where credentials and keys are kept ([storage] path)\n"
    "      --provision-path ZIP the fleet's credentials.zip ([provision] provision_path)\n"
    "      --server URL         the device gateway ([tls] server)\n"
    "      --device-id ID       the device ID to ask for ([provision] device_id)\n"
    "      --set SECTION.KEY=VALUE  set any configuration key\n"
    "      --journal FILE       append state transitions to FILE\n"
    "                           (default: STORAGE/journal.jsonl; 'none' to disable)\n"
    "      --retries N          once: transient failures tolerated in a row (default 8)\n"
    "      --retry-cap SECONDS  longest delay between retries (default 60)\n"
    "      --json               status, check: print JSON\n"
    "      --no-updates         provision only: do not poll for updates\n"
    "  -h, --help               this text\n"
    "  -V, --version            print the version\n"
    "\n"
    "Exit status: 0 success, 1 provisioning or the update cycle failed (the log says why),\n"
    "2 usage or configuration error, 3 status: device not provisioned.\n";

typedef struct agent {
  otad_config cfg;
  uv_loop_t *loop;
  http_client *http;
  journal *jr;
  device dev;
  uv_signal_t sigterm, sigint;
  int daemon;
  int check;
  int no_updates;
  int exit_code;
  int stopping;
} agent;

static void config_warning(void *ctx, const char *msg) { log_msg(LOG_WARN, "config", "%s", msg); }

static void on_device_closed(device *d) {
  agent *a = d->o.data;
  http_client_close(a->http);
  a->http = NULL;
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
}

static void stop(agent *a) {
  if (a->stopping) return;
  a->stopping = 1;
  device_close(&a->dev, on_device_closed);
}

static void on_device_done(device *d) {
  agent *a = d->o.data;
  bool cycle_ok = d->state == ST_POLLING && !(d->upd && d->upd->cycle_failed);
  a->exit_code = d->state == ST_PROVISIONED || cycle_ok ? EXIT_OK : EXIT_FAILED;
  if (!a->daemon || d->state == ST_FAILED) stop(a);
  else log_msg(LOG_INFO, d->label, "running; waiting for SIGTERM");
}

static void on_signal(uv_signal_t *h, int signum) {
  agent *a = h->data;
  log_msg(LOG_INFO, "otad", "%s received; stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  if (a->exit_code < 0) a->exit_code = EXIT_OK;
  stop(a);
}

/* otad status: reads the store only; no network. */
static int cmd_status(const otad_config *cfg, int json) {
  otad_errbuf eb = {{0}};
  store *st = store_fs_open(cfg->storage_path, &eb);
  if (!st) {
    fprintf(stderr, "otad: %s\n", eb.msg);
    return EXIT_FAILED;
  }
  char *id = store_read_string(st, STORE_DEVICE_ID);
  char *cert = store_read_string(st, STORE_CLIENT_PEM);
  char *key = store_read_string(st, STORE_PKEY_PEM);
  char *url = store_read_string(st, STORE_SERVER_URL);
  char *serial = store_read_string(st, STORE_ECU_SERIAL);
  char *hwid = store_read_string(st, STORE_ECU_HWID);
  char *reg = store_read_string(st, STORE_ECU_REGISTERED);
  char *inst_js = store_read_string(st, STORE_INSTALLED_TARGET);
  char *report_js = store_read_string(st, STORE_INSTALL_REPORT);
  char *pending_js = store_read_string(st, STORE_PENDING_TARGET);
  cJSON *inst = inst_js ? cJSON_Parse(inst_js) : NULL;
  cJSON *report = report_js ? cJSON_Parse(report_js) : NULL;
  cJSON *pending = pending_js ? cJSON_Parse(pending_js) : NULL;
  const cJSON *iname = cJSON_GetObjectItemCaseSensitive(inst, "name");
  const cJSON *pname = cJSON_GetObjectItemCaseSensitive(pending, "name");
  const cJSON *rcode = cJSON_GetObjectItemCaseSensitive(report, "code");
  const cJSON *rtarget = cJSON_GetObjectItemCaseSensitive(report, "target");
  const char *server = cfg->tls_server ? cfg->tls_server : url;
  download_progress dl;
  bool downloading = device_download_progress(cfg, st, &dl);
  int percent = dl.total ? (int)(dl.received * 100 / dl.total) : 0;
  const char *dl_state = !downloading ? NULL
                         : dl.complete ? "downloaded"
                         : dl.received ? "partial"
                                       : "not_started";
  tls_cert_info ci = {0};
  int have_cert = cert && tls_cert_info_pem(cert, &ci, &eb) == 0;
  int provisioned = have_cert && key && reg;
  const char *state = provisioned ? "provisioned" : have_cert ? "ecu_registering" : "unprovisioned";
  char until[32] = "";
  if (have_cert) {
    struct tm tm;
    gmtime_r(&ci.not_after, &tm);
    strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
  }
  if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddBoolToObject(o, "provisioned", provisioned);
    id ? cJSON_AddStringToObject(o, "device_id", id) : cJSON_AddNullToObject(o, "device_id");
    have_cert ? cJSON_AddStringToObject(o, "device_uuid", ci.cn)
              : cJSON_AddNullToObject(o, "device_uuid");
    server ? cJSON_AddStringToObject(o, "server", server) : cJSON_AddNullToObject(o, "server");
    have_cert ? cJSON_AddStringToObject(o, "certificate_subject", ci.subject)
              : cJSON_AddNullToObject(o, "certificate_subject");
    have_cert ? cJSON_AddStringToObject(o, "certificate_expires", until)
              : cJSON_AddNullToObject(o, "certificate_expires");
    serial ? cJSON_AddStringToObject(o, "primary_ecu_serial", serial)
           : cJSON_AddNullToObject(o, "primary_ecu_serial");
    hwid ? cJSON_AddStringToObject(o, "primary_ecu_hardware_id", hwid)
         : cJSON_AddNullToObject(o, "primary_ecu_hardware_id");
    cJSON_AddStringToObject(o, "storage", cfg->storage_path);
    cJSON_AddItemToObject(o, "installed_target", inst ? inst : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "unreported_result", report ? report : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "pending_reboot", pending ? pending : cJSON_CreateNull());
    if (downloading) {
      cJSON *d = cJSON_AddObjectToObject(o, "download");
      cJSON_AddStringToObject(d, "target", dl.name);
      cJSON_AddStringToObject(d, "state", dl_state);
      cJSON_AddNumberToObject(d, "received", (double)dl.received);
      cJSON_AddNumberToObject(d, "total", (double)dl.total);
      cJSON_AddNumberToObject(d, "percent", percent);
    } else {
      cJSON_AddNullToObject(o, "download");
    }
    inst = report = pending = NULL; /* now owned by o */
    char *s = cJSON_Print(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
  } else {
    printf("state:        %s\n", state);
    printf("device ID:    %s\n", id ? id : "-");
    printf("device UUID:  %s\n", have_cert ? ci.cn : "-");
    printf("server:       %s\n", server ? server : "-");
    printf("certificate:  %s\n", have_cert ? ci.subject : "-");
    printf("expires:      %s\n", have_cert ? until : "-");
    printf("primary ECU:  %s%s%s\n", serial ? serial : "-", hwid ? " on " : "", hwid ? hwid : "");
    printf("installed:    %s\n", cJSON_IsString(iname) ? iname->valuestring : "-");
    if (cJSON_IsString(pname))
      printf("pending:      %s (installed; a reboot completes it)\n", pname->valuestring);
    if (downloading && dl.complete)
      printf("download:     %s: %llu bytes, downloaded and verified; not installed yet\n",
             dl.name, (unsigned long long)dl.total);
    else if (downloading)
      printf("download:     %s: %llu of %llu bytes (%d%%)%s\n", dl.name,
             (unsigned long long)dl.received, (unsigned long long)dl.total, percent,
             dl.received ? "; the next cycle resumes it" : "; not started");
    if (cJSON_IsString(rcode))
      printf("to report:    %s (%s)\n", rcode->valuestring,
             cJSON_IsString(rtarget) ? rtarget->valuestring : "?");
    printf("storage:      %s\n", cfg->storage_path);
  }
  cJSON_Delete(inst);
  cJSON_Delete(report);
  cJSON_Delete(pending);
  free(inst_js);
  free(report_js);
  free(pending_js);
  free(id);
  free(cert);
  if (key) memset(key, 0, strlen(key));
  free(key);
  free(url);
  free(serial);
  free(hwid);
  free(reg);
  store_close(st);
  return provisioned ? EXIT_OK : EXIT_NOT_PROVISIONED;
}

/* otad check: what the verified metadata offers, on stdout. */
static void print_check(const device *d, int json) {
  const device_update *u = d->upd;
  const update_target *t = u && u->check_available ? &u->target : NULL;
  if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "update_available", t != NULL);
    if (t) {
      cJSON_AddStringToObject(o, "name", t->name);
      cJSON_AddStringToObject(o, "version", t->version);
      cJSON_AddNumberToObject(o, "length", (double)t->length);
      cJSON_AddStringToObject(o, "sha256", t->sha256);
      cJSON_AddStringToObject(o, "correlation_id", t->correlation_id);
    }
    char *s = cJSON_Print(o);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
  } else if (t) {
    printf("update available: %s\n", t->name);
    printf("version:          %s\n", t->version[0] ? t->version : "-");
    printf("length:           %llu bytes\n", (unsigned long long)t->length);
  } else {
    printf("no update\n");
  }
}

static int run_device(agent *a, const char *journal_path, int retries, int retry_cap_s,
                      int json) {
  otad_errbuf eb = {{0}};
  store *st = store_fs_open(a->cfg.storage_path, &eb);
  if (!st) {
    log_msg(LOG_ERROR, "otad", "storage: %s", eb.msg);
    return EXIT_FAILED;
  }
  char jpath[4096];
  if (!journal_path) snprintf(jpath, sizeof(jpath), "%s/journal.jsonl", a->cfg.storage_path);
  else snprintf(jpath, sizeof(jpath), "%s", journal_path);
  if (strcmp(jpath, "none") != 0) {
    a->jr = journal_open(jpath, &eb);
    if (!a->jr) log_msg(LOG_WARN, "otad", "%s; continuing without a journal", eb.msg);
  }
  a->loop = uv_default_loop();
  a->http = http_client_new(a->loop);
  if (!a->http) {
    store_close(st);
    log_msg(LOG_ERROR, "otad", "cannot initialise libcurl");
    return EXIT_FAILED;
  }
  device_opts o = {
      .actions = &states_actions,
      .label = "otad",
      .cfg = &a->cfg,
      .loop = a->loop,
      .http = a->http,
      .st = st,
      .jr = a->jr,
      .retry_cap_ms = (uint32_t)retry_cap_s * 1000,
      .max_retries = a->daemon ? -1 : retries,
      .one_shot = !a->daemon,
      .watch_import = a->daemon,
      .updates = !a->no_updates || a->check,
      .check_only = a->check,
      .done = on_device_done,
      .data = a,
  };
  device_init(&a->dev, &o);
  uv_signal_init(a->loop, &a->sigterm);
  uv_signal_init(a->loop, &a->sigint);
  a->sigterm.data = a->sigint.data = a;
  uv_signal_start(&a->sigterm, on_signal, SIGTERM);
  uv_signal_start(&a->sigint, on_signal, SIGINT);
  a->exit_code = -1;
  device_start(&a->dev);
  uv_run(a->loop, UV_RUN_DEFAULT);
  if (a->check && a->exit_code == EXIT_OK) print_check(&a->dev, json);
  device_free(&a->dev);
  journal_close(a->jr);
  uv_loop_close(a->loop);
  return a->exit_code < 0 ? EXIT_FAILED : a->exit_code;
}

int main(int argc, char **argv) {
  enum { OPT_LOGLEVEL = 256, OPT_STORAGE, OPT_PROVPATH, OPT_SERVER, OPT_DEVID, OPT_SET,
         OPT_JOURNAL, OPT_RETRIES, OPT_RETRYCAP, OPT_JSON, OPT_NOUPDATES };
  static const struct option longopts[] = {
      {"config", required_argument, 0, 'c'},
      {"loglevel", required_argument, 0, OPT_LOGLEVEL},
      {"storage", required_argument, 0, OPT_STORAGE},
      {"provision-path", required_argument, 0, OPT_PROVPATH},
      {"server", required_argument, 0, OPT_SERVER},
      {"device-id", required_argument, 0, OPT_DEVID},
      {"set", required_argument, 0, OPT_SET},
      {"journal", required_argument, 0, OPT_JOURNAL},
      {"retries", required_argument, 0, OPT_RETRIES},
      {"retry-cap", required_argument, 0, OPT_RETRYCAP},
      {"json", no_argument, 0, OPT_JSON},
      {"no-updates", no_argument, 0, OPT_NOUPDATES},
      {"help", no_argument, 0, 'h'},
      {"version", no_argument, 0, 'V'},
      {0, 0, 0, 0}};
  const char *configs[64];
  int nconfigs = 0;
  const char *sets[64];
  int nsets = 0;
  const char *journal_path = NULL;
  int loglevel = -1, retries = 8, retry_cap = 60, json = 0, ch;
  char *end;
  static agent a;
  config_init(&a.cfg);

  while ((ch = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
    switch (ch) {
      case 'c':
        if (nconfigs < 64) configs[nconfigs++] = optarg;
        break;
      case OPT_LOGLEVEL:
        loglevel = (int)strtol(optarg, &end, 10);
        if (*end || loglevel < 0 || loglevel > 5) {
          fprintf(stderr, "otad: --loglevel takes 0..5, not '%s'\n", optarg);
          return EXIT_USAGE;
        }
        break;
      case OPT_STORAGE: sets[nsets++] = "storage.path"; sets[nsets++] = optarg; break;
      case OPT_PROVPATH: sets[nsets++] = "provision.provision_path"; sets[nsets++] = optarg; break;
      case OPT_SERVER: sets[nsets++] = "tls.server"; sets[nsets++] = optarg; break;
      case OPT_DEVID: sets[nsets++] = "provision.device_id"; sets[nsets++] = optarg; break;
      case OPT_SET: {
        char *eq = strchr(optarg, '=');
        if (!eq || eq == optarg) {
          fprintf(stderr, "otad: --set takes SECTION.KEY=VALUE, not '%s'\n", optarg);
          return EXIT_USAGE;
        }
        *eq = 0;
        sets[nsets++] = optarg;
        sets[nsets++] = eq + 1;
        break;
      }
      case OPT_JOURNAL: journal_path = optarg; break;
      case OPT_RETRIES:
        retries = (int)strtol(optarg, &end, 10);
        if (*end || retries < 0) {
          fprintf(stderr, "otad: --retries takes a number >= 0, not '%s'\n", optarg);
          return EXIT_USAGE;
        }
        break;
      case OPT_RETRYCAP:
        retry_cap = (int)strtol(optarg, &end, 10);
        if (*end || retry_cap < 1) {
          fprintf(stderr, "otad: --retry-cap takes seconds >= 1, not '%s'\n", optarg);
          return EXIT_USAGE;
        }
        break;
      case OPT_JSON: json = 1; break;
      case OPT_NOUPDATES: a.no_updates = 1; break;
      case 'h': fputs(usage_text, stdout); return EXIT_OK;
      case 'V': printf("otad %s\n", OTAD_VERSION); return EXIT_OK;
      default: fputs(usage_text, stderr); return EXIT_USAGE;
    }
    if (nsets > 62) {
      fprintf(stderr, "otad: too many overrides\n");
      return EXIT_USAGE;
    }
  }
  if (optind != argc - 1) {
    fprintf(stderr, "otad: %s\n\n%s", optind >= argc ? "a command is needed" : "one command only",
            usage_text);
    return EXIT_USAGE;
  }
  const char *cmd = argv[optind];
  if (strcmp(cmd, "once") && strcmp(cmd, "daemon") && strcmp(cmd, "status") &&
      strcmp(cmd, "check")) {
    fprintf(stderr, "otad: unknown command '%s' (once, check, daemon, status)\n", cmd);
    return EXIT_USAGE;
  }

  otad_errbuf eb = {{0}};
  int rc = 0;
  if (nconfigs == 0) rc = config_load_default(&a.cfg, NULL, config_warning, NULL, &eb);
  for (int i = 0; i < nconfigs && !rc; i++)
    rc = config_load_path(&a.cfg, configs[i], config_warning, NULL, &eb);
  for (int i = 0; i < nsets && !rc; i += 2) rc = config_set(&a.cfg, sets[i], sets[i + 1], &eb);
  if (!rc) rc = config_finish(&a.cfg, &eb);
  if (rc) {
    fprintf(stderr, "otad: configuration error: %s\n", eb.msg);
    config_free(&a.cfg);
    return EXIT_USAGE;
  }
  log_set_level(loglevel >= 0 ? loglevel : a.cfg.loglevel);
  http_global_init();
  tls_global_init();

  if (strcmp(cmd, "status") == 0) rc = cmd_status(&a.cfg, json);
  else {
    a.daemon = strcmp(cmd, "daemon") == 0;
    a.check = strcmp(cmd, "check") == 0;
    rc = run_device(&a, journal_path, retries, retry_cap, json);
  }
  config_free(&a.cfg);
  http_global_cleanup();
  return rc;
}
