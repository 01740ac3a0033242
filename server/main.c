/* main.c - the ota-server command line: init, serve, add-fleet-ca, devices, requests,
 * fleet-cas, add-target, assign, rotate-root, resign.
 *
 * ota-server is the reference OTA Connect device gateway for otad's tests, demos and load
 * tests: it provisions devices from a fleet's shared credential (POST /devices), accepts
 * devices whose certificates chain to an uploaded fleet CA (implicit provisioning),
 * registers their ECUs (POST /director/ecus), and serves updates: an Uptane image
 * repository and director with real signed metadata, target downloads, and storage for
 * manifests, events and device data. This file only parses arguments; each command lives
 * in its own file. Exit codes: 0 ok, 1 runtime error, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "faults.h"
#include "fleet.h"
#include "fleet_cas.h"
#include "fleet_init.h"
#include "listing.h"
#include "pkcs12.h"
#include "pki.h"
#include "serve.h"
#include "uptane_cli.h"
#include "uptane_repo.h"

#ifndef OTAD_VERSION
#define OTAD_VERSION "0"
#endif

enum { EXIT_USAGE = 2 };

static const char USAGE[] =
    "Usage: ota-server COMMAND DIR [OPTIONS]\n"
    "\n"
    "A reference OTA Connect device gateway: shared-credential provisioning\n"
    "(POST /devices), implicit provisioning (device certificates of an uploaded fleet\n"
    "CA), ECU registration (POST /director/ecus) and Uptane updates (director and image\n"
    "repository metadata, targets, manifests, events) over mutual TLS.\n"
    "\n"
    "Commands:\n"
    "  init DIR      create a fleet: CAs, server and provisioning certificates,\n"
    "                DIR/credentials.zip for devices, and the Uptane repositories\n"
    "      --port N              port in autoprov.url (default 8443)\n"
    "      --host H              host in autoprov.url and the server certificate\n"
    "                            (default 127.0.0.1; localhost, 127.0.0.1, ::1 always)\n"
    "      --p12-password PW     password of autoprov_credentials.p12 (default empty)\n"
    "      --p12 legacy|3des     its certificate-bag cipher: RC2-40 or 3DES (default legacy)\n"
    "      --device-key ec256|rsa2048  key type serve issues to devices (default ec256)\n"
    "      --key-type ed25519|rsa      Uptane signing keys (default ed25519)\n"
    "  serve DIR     serve the fleet over HTTPS until SIGTERM/SIGINT\n"
    "      --port N              (default: init's --port)\n"
    "      --bind ADDR           listening address (default 127.0.0.1)\n"
    "      --threads N           worker threads (default: one per CPU)\n"
    "      --faults SPEC         inject failures, comma-separated rules\n"
    "                            ACTION[+OPT...][%RATE]@PATH[:COUNT][:for=SECONDS]; ACTION\n"
    "                            is an HTTP status (400-599, +retry=S adds Retry-After),\n"
    "                            truncate, cut, garbage, close, reset, stall (+hold=S),\n"
    "                            trickle (+bps=N), huge, huge-chunked (+size=N[K|M]),\n"
    "                            badjson or badmac; PATH is a glob (/repo/*, *); see\n"
    "                            server/README.md, Faults\n"
    "      --faults-seed N       seed of the %RATE dice (default 0: a fixed sequence)\n"
    "      --server-cert fleet|wrong-host|expired  serve a certificate devices must refuse,\n"
    "                            made from the fleet's server CA (default fleet)\n"
    "      --p12 legacy|3des     certificate-bag cipher of device archives (default 3des)\n"
    "      --device-key ec256|rsa2048  (default: init's --device-key)\n"
    "      --event-loop poll|epoll|threads  how connections are waited for: poll() in the\n"
    "                            worker threads (default; best when clients connect per\n"
    "                            request), epoll (best for thousands of held keep-alive\n"
    "                            connections; spins while a TLS handshake waits for the\n"
    "                            client), or a thread per connection; see server/README.md\n"
    "      --quiet               no log line per request\n"
    "  add-fleet-ca DIR CA.pem   trust a fleet root CA (PEM or DER): a device whose\n"
    "                            certificate chains to it is created on first contact, with\n"
    "                            its CN as device ID; a running serve trusts it on restart\n"
    "      --name NAME           its name (default: from its CN); [A-Za-z0-9._-], 1-64\n"
    "  devices DIR [--json]      list devices: ECUs, last manifest, installed target, last\n"
    "                            installation report, assignment, last events\n"
    "  requests DIR [--json]     list logged requests (time, client CN, method, path, status)\n"
    "  fleet-cas DIR [--json]    list the uploaded fleet CAs\n"
    "  add-target DIR FILE       add FILE to the image repository as a target (copied to\n"
    "                            DIR/targets/NAME) and sign targets, snapshot, timestamp\n"
    "      --name N --version V --hwid H   required; --hwid may be repeated\n"
    "      --format BINARY|OSTREE          custom.targetFormat (default BINARY)\n"
    "      --uri URL                       custom.uri: where devices download it from\n"
    "  assign DIR --target N (--device ID | --all)\n"
    "                            sign director targets naming target N for the primary ECU\n"
    "                            of a device (device ID or uuid), or of every device whose\n"
    "                            primary ECU's hardware ID the target lists\n"
    "      --correlation-id X    (default urn:here-ota:mtu:<uuid>)\n"
    "      --force               assign even when the target is for other hardware\n"
    "  rotate-root DIR --repo director|image\n"
    "                            a new root key; root version N+1 signed by old and new key\n"
    "      --key-type ed25519|rsa  the new key's type (default: the old key's)\n"
    "  resign DIR --repo director|image --role root|targets|snapshot|timestamp\n"
    "                            sign a role's current content again (image targets also\n"
    "                            re-sign snapshot and timestamp; snapshot the timestamp)\n"
    "      --device ID | --all   (director targets) one device's, or every device's\n"
    "      --version N           this metadata version (default: the next one; a lower one\n"
    "                            makes a rollback for tests)\n"
    "  Options of add-target, assign, rotate-root and resign:\n"
    "      --expires WHEN        expiry of what they sign: YYYY-MM-DDTHH:MM:SSZ, or +N/-N\n"
    "                            with s, m, h, d or w (-1d: expired yesterday). Defaults:\n"
    "                            root 365 d, targets 365 d, snapshot 90 d, timestamp 30 d\n"
    "      --key-type ed25519|rsa  keys of repositories made now (a fleet made before\n"
    "                            Uptane gets them on first use; default ed25519)\n"
    "  uptane ACTION DIR ...     keys and thresholds per role, delegations, and attacks for\n"
    "                            client tests (see `ota-server uptane --help`)\n"
    "\n"
    "Options for every command: -h, --help; --version.\n";

static int usage_error(const char *fmt, const char *arg) {
  fputs("ota-server: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\nTry 'ota-server --help'.\n", stderr);
  return EXIT_USAGE;
}

/* Parses a decimal integer in [min, max]. */
static int parse_int(const char *s, long min, long max, int *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max) return -1;
  *out = (int)v;
  return 0;
}

enum {
  OPT_PORT = 256,
  OPT_HOST,
  OPT_P12_PASSWORD,
  OPT_P12,
  OPT_DEVICE_KEY,
  OPT_BIND,
  OPT_THREADS,
  OPT_FAULTS,
  OPT_FAULTS_SEED,
  OPT_SERVER_CERT,
  OPT_QUIET,
  OPT_JSON,
  OPT_NAME,
  OPT_HELP,
  OPT_KEY_TYPE,
  OPT_EXPIRES,
  OPT_VERSION,
  OPT_HWID,
  OPT_FORMAT,
  OPT_URI,
  OPT_DEVICE,
  OPT_ALL,
  OPT_TARGET,
  OPT_CORRELATION_ID,
  OPT_FORCE,
  OPT_REPO,
  OPT_ROLE,
  OPT_EVENT_LOOP
};

static const struct option OPTIONS[] = {
    {"port", required_argument, NULL, OPT_PORT},
    {"host", required_argument, NULL, OPT_HOST},
    {"p12-password", required_argument, NULL, OPT_P12_PASSWORD},
    {"p12", required_argument, NULL, OPT_P12},
    {"device-key", required_argument, NULL, OPT_DEVICE_KEY},
    {"bind", required_argument, NULL, OPT_BIND},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"faults", required_argument, NULL, OPT_FAULTS},
    {"faults-seed", required_argument, NULL, OPT_FAULTS_SEED},
    {"server-cert", required_argument, NULL, OPT_SERVER_CERT},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"json", no_argument, NULL, OPT_JSON},
    {"name", required_argument, NULL, OPT_NAME},
    {"help", no_argument, NULL, OPT_HELP},
    {"key-type", required_argument, NULL, OPT_KEY_TYPE},
    {"expires", required_argument, NULL, OPT_EXPIRES},
    {"version", required_argument, NULL, OPT_VERSION},
    {"hwid", required_argument, NULL, OPT_HWID},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"uri", required_argument, NULL, OPT_URI},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"all", no_argument, NULL, OPT_ALL},
    {"target", required_argument, NULL, OPT_TARGET},
    {"correlation-id", required_argument, NULL, OPT_CORRELATION_ID},
    {"force", no_argument, NULL, OPT_FORCE},
    {"repo", required_argument, NULL, OPT_REPO},
    {"role", required_argument, NULL, OPT_ROLE},
    {"event-loop", required_argument, NULL, OPT_EVENT_LOOP},
    {NULL, 0, NULL, 0},
};

/* Which options each command takes. */
static bool option_allowed(const char *cmd, int opt) {
  if (opt == OPT_HELP) return true;
  if (opt == OPT_EVENT_LOOP) return strcmp(cmd, "serve") == 0;
  if (strcmp(cmd, "init") == 0)
    return opt == OPT_PORT || opt == OPT_HOST || opt == OPT_P12_PASSWORD || opt == OPT_P12 ||
           opt == OPT_DEVICE_KEY || opt == OPT_KEY_TYPE;
  if (strcmp(cmd, "serve") == 0)
    return opt == OPT_PORT || opt == OPT_BIND || opt == OPT_THREADS || opt == OPT_FAULTS ||
           opt == OPT_P12 || opt == OPT_DEVICE_KEY || opt == OPT_QUIET || opt == OPT_FAULTS_SEED ||
           opt == OPT_SERVER_CERT;
  if (strcmp(cmd, "add-fleet-ca") == 0) return opt == OPT_NAME;
  bool signs = opt == OPT_EXPIRES || opt == OPT_KEY_TYPE;
  if (strcmp(cmd, "add-target") == 0)
    return signs || opt == OPT_NAME || opt == OPT_VERSION || opt == OPT_HWID || opt == OPT_FORMAT ||
           opt == OPT_URI;
  if (strcmp(cmd, "assign") == 0)
    return signs || opt == OPT_DEVICE || opt == OPT_ALL || opt == OPT_TARGET ||
           opt == OPT_CORRELATION_ID || opt == OPT_FORCE;
  if (strcmp(cmd, "rotate-root") == 0) return signs || opt == OPT_REPO;
  if (strcmp(cmd, "resign") == 0)
    return signs || opt == OPT_REPO || opt == OPT_ROLE || opt == OPT_DEVICE || opt == OPT_ALL ||
           opt == OPT_VERSION;
  return opt == OPT_JSON; /* devices, requests, fleet-cas */
}

static const char *const COMMANDS[] = {"init",        "serve",     "add-fleet-ca", "devices",
                                       "requests",    "fleet-cas", "add-target",   "assign",
                                       "rotate-root", "resign"};

/* Checks the options an Uptane command needs; a usage error's exit code, or 0. */
static int check_uptane_options(const char *cmd, const uptane_cli_options *u, bool repo_set,
                                bool role_set) {
  if (strcmp(cmd, "add-target") == 0) {
    if (!u->name || !u->version || u->nhwids == 0)
      return usage_error("%s: --name, --version and --hwid are required", cmd);
  } else if (strcmp(cmd, "assign") == 0) {
    if (!u->target) return usage_error("%s: --target is required", cmd);
    if (!u->device == !u->all) return usage_error("%s: give either --device ID or --all", cmd);
  } else if (strcmp(cmd, "rotate-root") == 0) {
    if (!repo_set) return usage_error("%s: --repo director|image is required", cmd);
  } else if (strcmp(cmd, "resign") == 0) {
    if (!repo_set || !role_set) return usage_error("%s: --repo and --role are required", cmd);
    bool director_targets = u->repo == REPO_DIRECTOR && u->role == REPO_ROLE_TARGETS;
    if (director_targets && !u->device == !u->all)
      return usage_error("%s: director targets are per device: give --device ID or --all", cmd);
    if (!director_targets && (u->device || u->all))
      return usage_error("%s: --device and --all apply to director targets only", cmd);
    if (u->repo == REPO_DIRECTOR && u->role != REPO_ROLE_ROOT && u->role != REPO_ROLE_TARGETS)
      return usage_error("%s: the director has root and targets only", cmd);
  }
  return 0;
}

static bool known_command(const char *cmd) {
  for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
    if (strcmp(cmd, COMMANDS[i]) == 0) return true;
  return false;
}

#define HELP_SHOWN (-1)

/* Everything the command line says, parsed. */
typedef struct server_cli {
  const char *cmd;
  init_options init;
  serve_options serve;
  uptane_cli_options up;
  bool json, p12_set, repo_set, role_set;
  const char *ca_name;
  enum p12_cert_cipher p12;
  int port;
} server_cli;

/* One option (getopt's opt, its optarg) into c. 0, HELP_SHOWN (--help printed), or the
 * exit code of a usage error. Long because it is one independent case per option, each
 * with its own check and message. */
static int parse_option(server_cli *c, int opt) {
  switch (opt) {
  case OPT_HELP: fputs(USAGE, stdout); return HELP_SHOWN;
  case OPT_PORT:
    if (parse_int(optarg, strcmp(c->cmd, "serve") == 0 ? 0 : 1, 65535, &c->port) != 0)
      return usage_error("--port '%s': expected a port number", optarg);
    break;
  case OPT_HOST:
    if (!*optarg || strlen(optarg) >= FLEET_HOST_MAX || strpbrk(optarg, "/ \t\n[]"))
      return usage_error("--host '%s': expected a host name or IP address", optarg);
    c->init.host = optarg;
    break;
  case OPT_P12_PASSWORD: c->init.p12_password = optarg; break;
  case OPT_P12:
    if (p12_cert_cipher_parse(optarg, &c->p12) != 0)
      return usage_error("--p12 '%s': expected legacy or 3des", optarg);
    c->p12_set = true;
    break;
  case OPT_DEVICE_KEY:
    if (pki_key_type_parse(optarg, &c->serve.device_key) != 0)
      return usage_error("--device-key '%s': expected ec256 or rsa2048", optarg);
    c->init.device_key = c->serve.device_key;
    c->serve.device_key_set = true;
    break;
  case OPT_BIND: {
    unsigned char addr[16];
    if (inet_pton(AF_INET, optarg, addr) != 1 && inet_pton(AF_INET6, optarg, addr) != 1)
      return usage_error("--bind '%s': expected an IPv4 or IPv6 address", optarg);
    c->serve.bind = optarg;
    break;
  }
  case OPT_THREADS:
    if (parse_int(optarg, 1, 1024, &c->serve.threads) != 0)
      return usage_error("--threads '%s': expected 1 to 1024", optarg);
    break;
  case OPT_FAULTS: {
    faults *f = NULL;
    char err[256];
    if (faults_parse(optarg, 0, &f, err, sizeof err) != 0) return usage_error("--faults: %s", err);
    faults_free(f); /* checked here for the exit code; the server parses it again */
    c->serve.faults = optarg;
    break;
  }
  case OPT_FAULTS_SEED: {
    char *end = NULL;
    errno = 0;
    c->serve.faults_seed = strtoull(optarg, &end, 10);
    if (errno || end == optarg || *end || *optarg == '-')
      return usage_error("--faults-seed '%s': expected a number", optarg);
    break;
  }
  case OPT_SERVER_CERT:
    if (server_cert_kind_parse(optarg, &c->serve.server_cert) != 0)
      return usage_error("--server-cert '%s': expected fleet, wrong-host or expired", optarg);
    break;
  case OPT_QUIET: c->serve.quiet = true; break;
  case OPT_JSON: c->json = true; break;
  case OPT_EVENT_LOOP:
    if (strcmp(optarg, "poll") == 0)
      c->serve.event_loop = SERVE_LOOP_POLL;
    else if (strcmp(optarg, "epoll") == 0)
      c->serve.event_loop = SERVE_LOOP_EPOLL;
    else if (strcmp(optarg, "threads") == 0)
      c->serve.event_loop = SERVE_LOOP_THREADS;
    else
      return usage_error("--event-loop '%s': expected poll, epoll or threads", optarg);
    break;
  case OPT_NAME:
    if (strcmp(c->cmd, "add-target") == 0) {
      if (!repo_target_name_valid(optarg))
        return usage_error("--name '%s': expected 1 to 255 bytes, no control characters or "
                           "backslashes, no empty, . or .. parts between slashes",
                           optarg);
      c->up.name = optarg;
      break;
    }
    if (!fleet_ca_name_valid(optarg))
      return usage_error("--name '%s': expected 1 to 64 of A-Z a-z 0-9 . _ -, starting with a "
                         "letter or digit",
                         optarg);
    c->ca_name = optarg;
    break;
  case OPT_KEY_TYPE:
    if (tuf_key_type_parse(optarg, &c->up.key_type) != 0)
      return usage_error("--key-type '%s': expected ed25519 or rsa", optarg);
    c->up.key_type_set = true;
    break;
  case OPT_EXPIRES:
    if (repo_expiry_parse(optarg, &c->up.expires) != 0)
      return usage_error("--expires '%s': expected YYYY-MM-DDTHH:MM:SSZ or +N/-N with s, m, "
                         "h, d or w",
                         optarg);
    break;
  case OPT_VERSION:
    if (strcmp(c->cmd, "resign") == 0) {
      int v = 0;
      if (parse_int(optarg, 1, 2000000000, &v) != 0)
        return usage_error("--version '%s': expected a metadata version of 1 or more", optarg);
      c->up.meta_version = v;
    } else {
      if (!*optarg) return usage_error("%s", "--version: expected a version");
      c->up.version = optarg;
    }
    break;
  case OPT_HWID:
    if (!*optarg) return usage_error("%s", "--hwid: expected a hardware ID");
    if (c->up.nhwids == CLI_HWIDS_MAX) return usage_error("%s", "--hwid: too many");
    c->up.hwids[c->up.nhwids++] = optarg;
    break;
  case OPT_FORMAT:
    if (strcmp(optarg, "BINARY") != 0 && strcmp(optarg, "OSTREE") != 0)
      return usage_error("--format '%s': expected BINARY or OSTREE", optarg);
    c->up.format = optarg;
    break;
  case OPT_URI: c->up.uri = optarg; break;
  case OPT_DEVICE: c->up.device = optarg; break;
  case OPT_ALL: c->up.all = true; break;
  case OPT_TARGET: c->up.target = optarg; break;
  case OPT_CORRELATION_ID:
    if (!*optarg) return usage_error("%s", "--correlation-id: expected an ID");
    c->up.correlation_id = optarg;
    break;
  case OPT_FORCE: c->up.force = true; break;
  case OPT_REPO:
    if (repo_kind_parse(optarg, &c->up.repo) != 0)
      return usage_error("--repo '%s': expected director or image", optarg);
    c->repo_set = true;
    break;
  case OPT_ROLE:
    if (repo_role_parse(optarg, &c->up.role) != 0)
      return usage_error("--role '%s': expected root, targets, snapshot or timestamp", optarg);
    c->role_set = true;
    break;
  }
  return 0;
}

/* Runs c->cmd on the fleet directory dir (file: the command's second operand, or NULL). */
static int run_command(server_cli *c, const char *dir, const char *file) {
  const char *cmd = c->cmd;
  if (strcmp(cmd, "init") == 0) {
    c->init.dir = dir;
    if (c->port > 0) c->init.port = c->port;
    if (c->p12_set) c->init.p12 = c->p12;
    return fleet_init(&c->init);
  }
  if (strcmp(cmd, "serve") == 0) {
    c->serve.dir = dir;
    c->serve.port = c->port;
    if (c->p12_set) c->serve.p12 = c->p12;
    return serve_run(&c->serve);
  }
  if (strcmp(cmd, "add-fleet-ca") == 0) return fleet_ca_add(dir, file, c->ca_name);
  if (strcmp(cmd, "devices") == 0) return list_devices(dir, c->json);
  if (strcmp(cmd, "fleet-cas") == 0) return list_fleet_cas(dir, c->json);
  if (strcmp(cmd, "add-target") == 0) return cli_add_target(&c->up);
  if (strcmp(cmd, "assign") == 0) return cli_assign(&c->up);
  if (strcmp(cmd, "rotate-root") == 0) return cli_rotate_root(&c->up);
  if (strcmp(cmd, "resign") == 0) return cli_resign(&c->up);
  return list_requests(dir, c->json);
}

int main(int argc, char **argv) {
  if (argc < 2) return usage_error("%s", "a command is required");
  const char *cmd = argv[1];
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
    fputs(USAGE, stdout);
    return 0;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("ota-server %s\n", OTAD_VERSION);
    return 0;
  }
  if (strcmp(cmd, "uptane") == 0) return uptane_tool_main(argc - 1, argv + 1); /* own options */
  if (!known_command(cmd)) return usage_error("unknown command '%s'", cmd);

  static server_cli c = {.init = {.port = FLEET_DEFAULT_PORT,
                                  .host = "127.0.0.1",
                                  .p12_password = "",
                                  .p12 = P12_CERTS_RC2_40,
                                  .device_key = PKI_KEY_EC256},
                         .serve = {.port = -1, .bind = "127.0.0.1", .p12 = P12_CERTS_3DES},
                         .p12 = P12_CERTS_3DES,
                         .port = -1};
  c.cmd = cmd;
  int opt;
  optind = 2;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "h", OPTIONS, NULL)) != -1) {
    if (opt == 'h') opt = OPT_HELP;
    if (opt == '?') return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
    if (!option_allowed(cmd, opt))
      return usage_error("option '%s' does not apply to this command", argv[optind - 1]);
    int rc = parse_option(&c, opt);
    if (rc) return rc == HELP_SHOWN ? 0 : rc;
  }
  bool add_target = strcmp(cmd, "add-target") == 0;
  int operands = strcmp(cmd, "add-fleet-ca") == 0 || add_target ? 2 : 1;
  if (optind >= argc) return usage_error("%s: the fleet directory DIR is required", cmd);
  if (optind + 1 >= argc && operands == 2)
    return usage_error("%s", add_target ? "add-target: the target FILE is required"
                                        : "add-fleet-ca: the CA certificate file is required");
  if (optind + operands < argc)
    return usage_error("unexpected argument '%s'", argv[optind + operands]);
  const char *dir = argv[optind];
  int bad = check_uptane_options(cmd, &c.up, c.repo_set, c.role_set);
  if (bad) return bad;
  c.up.dir = dir;
  c.up.file = operands == 2 ? argv[optind + 1] : NULL;
  if (c.up.key_type_set) c.init.uptane_key = c.up.key_type;

  if (gnutls_global_init() < 0) {
    fprintf(stderr, "ota-server: cannot initialise GnuTLS\n");
    return 1;
  }
  int status = run_command(&c, dir, c.up.file);
  gnutls_global_deinit();
  return status;
}
