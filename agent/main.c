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
#include "core/log.h"
#include "crypto/tls.h"
#include "device/device.h"
#include "device/status.h"
#include "states/states.h"
#include "storage/store.h"
#include "transport/http.h"

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

static void config_warning(void *ctx, const char *msg) {
  log_msg(LOG_WARN, "config", "%s", msg);
}

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
  if (!a->daemon || d->state == ST_FAILED)
    stop(a);
  else
    log_msg(LOG_INFO, d->label, "running; waiting for SIGTERM");
}

static void on_signal(uv_signal_t *h, int signum) {
  agent *a = h->data;
  log_msg(LOG_INFO, "otad", "%s received; stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  if (a->exit_code < 0) a->exit_code = EXIT_OK;
  stop(a);
}

/* What `otad status` shows, read from the store (strings heap, JSON parsed). */
typedef struct status {
  const otad_config *cfg;
  char *id, *cert, *key, *url, *serial, *hwid, *reg;
  cJSON *inst, *report, *pending; /* installed target, unreported result, pending reboot */
  const char *server;
  download_progress dl;
  bool downloading;
  tls_cert_info ci;
  bool have_cert, provisioned;
  char until[32];
} status;

static cJSON *read_json(store *st, const char *name) {
  char *js = store_read_string(st, name);
  cJSON *o = js ? cJSON_Parse(js) : NULL;
  free(js);
  return o;
}

static void status_load(status *s, const otad_config *cfg, store *st) {
  memset(s, 0, sizeof(*s));
  s->cfg = cfg;
  s->id = store_read_string(st, STORE_DEVICE_ID);
  s->cert = store_read_string(st, STORE_CLIENT_PEM);
  s->key = store_read_string(st, STORE_PKEY_PEM);
  s->url = store_read_string(st, STORE_SERVER_URL);
  s->serial = store_read_string(st, STORE_ECU_SERIAL);
  s->hwid = store_read_string(st, STORE_ECU_HWID);
  s->reg = store_read_string(st, STORE_ECU_REGISTERED);
  s->inst = read_json(st, STORE_INSTALLED_TARGET);
  s->report = read_json(st, STORE_INSTALL_REPORT);
  s->pending = read_json(st, STORE_PENDING_TARGET);
  s->server = cfg->tls_server ? cfg->tls_server : s->url;
  s->downloading = device_download_progress(cfg, st, &s->dl);
  otad_errbuf eb = {{0}};
  s->have_cert = s->cert && tls_cert_info_pem(s->cert, &s->ci, &eb) == 0;
  s->provisioned = s->have_cert && s->key && s->reg;
  if (s->have_cert) {
    struct tm tm;
    gmtime_r(&s->ci.not_after, &tm);
    strftime(s->until, sizeof(s->until), "%Y-%m-%dT%H:%M:%SZ", &tm);
  }
}

static void status_free(status *s) {
  cJSON_Delete(s->inst);
  cJSON_Delete(s->report);
  cJSON_Delete(s->pending);
  if (s->key) memset(s->key, 0, strlen(s->key));
  char *strs[] = {s->id, s->cert, s->key, s->url, s->serial, s->hwid, s->reg};
  for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
    free(strs[i]);
}

static const char *status_state(const status *s) {
  return s->provisioned ? "provisioned" : s->have_cert ? "ecu_registering" : "unprovisioned";
}

static int download_percent(const download_progress *dl) {
  return dl->total ? (int)(dl->received * 100 / dl->total) : 0;
}

/* Adds key: value, or key: null when value is NULL. */
static void add_str_or_null(cJSON *o, const char *key, const char *value) {
  if (value)
    cJSON_AddStringToObject(o, key, value);
  else
    cJSON_AddNullToObject(o, key);
}

static void status_print_json(status *s) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "state", status_state(s));
  cJSON_AddBoolToObject(o, "provisioned", s->provisioned);
  add_str_or_null(o, "device_id", s->id);
  add_str_or_null(o, "device_uuid", s->have_cert ? s->ci.cn : NULL);
  add_str_or_null(o, "server", s->server);
  add_str_or_null(o, "certificate_subject", s->have_cert ? s->ci.subject : NULL);
  add_str_or_null(o, "certificate_expires", s->have_cert ? s->until : NULL);
  add_str_or_null(o, "primary_ecu_serial", s->serial);
  add_str_or_null(o, "primary_ecu_hardware_id", s->hwid);
  cJSON_AddStringToObject(o, "storage", s->cfg->storage_path);
  cJSON_AddItemToObject(o, "installed_target", s->inst ? s->inst : cJSON_CreateNull());
  cJSON_AddItemToObject(o, "unreported_result", s->report ? s->report : cJSON_CreateNull());
  cJSON_AddItemToObject(o, "pending_reboot", s->pending ? s->pending : cJSON_CreateNull());
  s->inst = s->report = s->pending = NULL; /* now owned by o */
  if (s->downloading) {
    const download_progress *dl = &s->dl;
    cJSON *d = cJSON_AddObjectToObject(o, "download");
    cJSON_AddStringToObject(d, "target", dl->name);
    cJSON_AddStringToObject(d, "state",
                            dl->complete   ? "downloaded"
                            : dl->received ? "partial"
                                           : "not_started");
    cJSON_AddNumberToObject(d, "received", (double)dl->received);
    cJSON_AddNumberToObject(d, "total", (double)dl->total);
    cJSON_AddNumberToObject(d, "percent", download_percent(dl));
  } else {
    cJSON_AddNullToObject(o, "download");
  }
  char *text = cJSON_Print(o);
  printf("%s\n", text);
  free(text);
  cJSON_Delete(o);
}

/* A string member of o, or NULL. */
static const char *str_member(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void status_print_text(const status *s) {
  const char *iname = str_member(s->inst, "name"), *pname = str_member(s->pending, "name");
  const char *rcode = str_member(s->report, "code"), *rtarget = str_member(s->report, "target");
  const download_progress *dl = &s->dl;
  printf("state:        %s\n", status_state(s));
  printf("device ID:    %s\n", s->id ? s->id : "-");
  printf("device UUID:  %s\n", s->have_cert ? s->ci.cn : "-");
  printf("server:       %s\n", s->server ? s->server : "-");
  printf("certificate:  %s\n", s->have_cert ? s->ci.subject : "-");
  printf("expires:      %s\n", s->have_cert ? s->until : "-");
  printf("primary ECU:  %s%s%s\n", s->serial ? s->serial : "-", s->hwid ? " on " : "",
         s->hwid ? s->hwid : "");
  printf("installed:    %s\n", iname ? iname : "-");
  if (pname) printf("pending:      %s (installed; a reboot completes it)\n", pname);
  if (s->downloading && dl->complete)
    printf("download:     %s: %llu bytes, downloaded and verified; not installed yet\n", dl->name,
           (unsigned long long)dl->total);
  else if (s->downloading)
    printf("download:     %s: %llu of %llu bytes (%d%%)%s\n", dl->name,
           (unsigned long long)dl->received, (unsigned long long)dl->total, download_percent(dl),
           dl->received ? "; the next cycle resumes it" : "; not started");
  if (rcode) printf("to report:    %s (%s)\n", rcode, rtarget ? rtarget : "?");
  printf("storage:      %s\n", s->cfg->storage_path);
}

/* otad status: reads the store only; no network. */
static int cmd_status(const otad_config *cfg, int json) {
  otad_errbuf eb = {{0}};
  store *st = store_fs_open(cfg->storage_path, &eb);
  if (!st) {
    fprintf(stderr, "otad: %s\n", eb.msg);
    return EXIT_FAILED;
  }
  status s;
  status_load(&s, cfg, st);
  if (json)
    status_print_json(&s);
  else
    status_print_text(&s);
  bool provisioned = s.provisioned;
  status_free(&s);
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

static int run_device(agent *a, const char *journal_path, int retries, int retry_cap_s, int json) {
  otad_errbuf eb = {{0}};
  store *st = store_fs_open(a->cfg.storage_path, &eb);
  if (!st) {
    log_msg(LOG_ERROR, "otad", "storage: %s", eb.msg);
    return EXIT_FAILED;
  }
  char jpath[4096];
  if (!journal_path)
    snprintf(jpath, sizeof(jpath), "%s/journal.jsonl", a->cfg.storage_path);
  else
    snprintf(jpath, sizeof(jpath), "%s", journal_path);
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

/* The command line, parsed. */
typedef struct cli {
  const char *configs[64];
  int nconfigs;
  const char *sets[64]; /* SECTION.KEY, VALUE pairs, applied after the files */
  int nsets;
  const char *journal_path;
  const char *cmd;
  int loglevel, retries, retry_cap, json, no_updates;
} cli;

/* Parses argv into c. Returns -1 to go on, or the exit code (help, version, usage error).
 * Long because it is one independent case per option. */
static int parse_args(int argc, char **argv, cli *c) {
  enum {
    OPT_LOGLEVEL = 256,
    OPT_STORAGE,
    OPT_PROVPATH,
    OPT_SERVER,
    OPT_DEVID,
    OPT_SET,
    OPT_JOURNAL,
    OPT_RETRIES,
    OPT_RETRYCAP,
    OPT_JSON,
    OPT_NOUPDATES
  };
  static const struct option longopts[] = {{"config", required_argument, 0, 'c'},
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
  memset(c, 0, sizeof(*c));
  c->loglevel = -1;
  c->retries = 8;
  c->retry_cap = 60;
  char *end;
  int ch;
  while ((ch = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
    switch (ch) {
    case 'c':
      if (c->nconfigs < 64) c->configs[c->nconfigs++] = optarg;
      break;
    case OPT_LOGLEVEL:
      c->loglevel = (int)strtol(optarg, &end, 10);
      if (*end || c->loglevel < 0 || c->loglevel > 5) {
        fprintf(stderr, "otad: --loglevel takes 0..5, not '%s'\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case OPT_STORAGE:
      c->sets[c->nsets++] = "storage.path";
      c->sets[c->nsets++] = optarg;
      break;
    case OPT_PROVPATH:
      c->sets[c->nsets++] = "provision.provision_path";
      c->sets[c->nsets++] = optarg;
      break;
    case OPT_SERVER:
      c->sets[c->nsets++] = "tls.server";
      c->sets[c->nsets++] = optarg;
      break;
    case OPT_DEVID:
      c->sets[c->nsets++] = "provision.device_id";
      c->sets[c->nsets++] = optarg;
      break;
    case OPT_SET: {
      char *eq = strchr(optarg, '=');
      if (!eq || eq == optarg) {
        fprintf(stderr, "otad: --set takes SECTION.KEY=VALUE, not '%s'\n", optarg);
        return EXIT_USAGE;
      }
      *eq = 0;
      c->sets[c->nsets++] = optarg;
      c->sets[c->nsets++] = eq + 1;
      break;
    }
    case OPT_JOURNAL: c->journal_path = optarg; break;
    case OPT_RETRIES:
      c->retries = (int)strtol(optarg, &end, 10);
      if (*end || c->retries < 0) {
        fprintf(stderr, "otad: --retries takes a number >= 0, not '%s'\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case OPT_RETRYCAP:
      c->retry_cap = (int)strtol(optarg, &end, 10);
      if (*end || c->retry_cap < 1) {
        fprintf(stderr, "otad: --retry-cap takes seconds >= 1, not '%s'\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case OPT_JSON: c->json = 1; break;
    case OPT_NOUPDATES: c->no_updates = 1; break;
    case 'h': fputs(usage_text, stdout); return EXIT_OK;
    case 'V': printf("otad %s\n", OTAD_VERSION); return EXIT_OK;
    default: fputs(usage_text, stderr); return EXIT_USAGE;
    }
    if (c->nsets > 62) {
      fprintf(stderr, "otad: too many overrides\n");
      return EXIT_USAGE;
    }
  }
  if (optind != argc - 1) {
    fprintf(stderr, "otad: %s\n\n%s", optind >= argc ? "a command is needed" : "one command only",
            usage_text);
    return EXIT_USAGE;
  }
  c->cmd = argv[optind];
  if (strcmp(c->cmd, "once") && strcmp(c->cmd, "daemon") && strcmp(c->cmd, "status") &&
      strcmp(c->cmd, "check")) {
    fprintf(stderr, "otad: unknown command '%s' (once, check, daemon, status)\n", c->cmd);
    return EXIT_USAGE;
  }
  return -1;
}

/* The configuration files (or the default places), then the command line's settings. */
static int load_config(const cli *c, otad_config *cfg, otad_errbuf *eb) {
  int rc = 0;
  if (c->nconfigs == 0) rc = config_load_default(cfg, NULL, config_warning, NULL, eb);
  for (int i = 0; i < c->nconfigs && !rc; i++)
    rc = config_load_path(cfg, c->configs[i], config_warning, NULL, eb);
  for (int i = 0; i < c->nsets && !rc; i += 2)
    rc = config_set(cfg, c->sets[i], c->sets[i + 1], eb);
  if (!rc) rc = config_finish(cfg, eb);
  return rc;
}

int main(int argc, char **argv) {
  static cli c;
  int rc = parse_args(argc, argv, &c);
  if (rc >= 0) return rc;
  static agent a;
  config_init(&a.cfg);
  a.no_updates = c.no_updates;
  otad_errbuf eb = {{0}};
  if (load_config(&c, &a.cfg, &eb)) {
    fprintf(stderr, "otad: configuration error: %s\n", eb.msg);
    config_free(&a.cfg);
    return EXIT_USAGE;
  }
  log_set_level(c.loglevel >= 0 ? c.loglevel : a.cfg.loglevel);
  http_global_init();
  tls_global_init();

  if (strcmp(c.cmd, "status") == 0)
    rc = cmd_status(&a.cfg, c.json);
  else {
    a.daemon = strcmp(c.cmd, "daemon") == 0;
    a.check = strcmp(c.cmd, "check") == 0;
    rc = run_device(&a, c.journal_path, c.retries, c.retry_cap, c.json);
  }
  config_free(&a.cfg);
  http_global_cleanup();
  return rc;
}
