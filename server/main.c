/* main.c - the ota-server command line: init, serve, add-fleet-ca, devices, requests,
 * fleet-cas.
 *
 * ota-server is the reference OTA Connect device gateway for otad's tests, demos and load
 * tests: it provisions devices from a fleet's shared credential (POST /devices), accepts
 * devices whose certificates chain to an uploaded fleet CA (implicit provisioning), and
 * registers their ECUs (POST /director/ecus). This file only parses arguments; each
 * command lives in its own file. Exit codes: 0 ok, 1 runtime error, 2 usage.
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

#ifndef OTAD_VERSION
#define OTAD_VERSION "0"
#endif

enum { EXIT_USAGE = 2 };

static const char USAGE[] =
    "Usage: ota-server COMMAND DIR [OPTIONS]\n"
    "\n"
    "A reference OTA Connect device gateway: shared-credential provisioning\n"
    "(POST /devices), implicit provisioning (device certificates of an uploaded fleet\n"
    "CA) and ECU registration (POST /director/ecus) over mutual TLS.\n"
    "\n"
    "Commands:\n"
    "  init DIR      create a fleet: CAs, server and provisioning certificates, and\n"
    "                DIR/credentials.zip for devices\n"
    "      --port N              port in autoprov.url (default 8443)\n"
    "      --host H              host in autoprov.url and the server certificate\n"
    "                            (default 127.0.0.1; localhost, 127.0.0.1, ::1 always)\n"
    "      --p12-password PW     password of autoprov_credentials.p12 (default empty)\n"
    "      --p12 legacy|3des     its certificate-bag cipher: RC2-40 or 3DES (default legacy)\n"
    "      --device-key ec256|rsa2048  key type serve issues to devices (default ec256)\n"
    "  serve DIR     serve the fleet over HTTPS until SIGTERM/SIGINT\n"
    "      --port N              (default: init's --port)\n"
    "      --bind ADDR           listening address (default 127.0.0.1)\n"
    "      --threads N           worker threads (default: one per CPU)\n"
    "      --faults SPEC         inject failures: ACTION@PATH[:COUNT],... where ACTION is\n"
    "                            an HTTP status (400-599), truncate, cut, garbage or close\n"
    "      --p12 legacy|3des     certificate-bag cipher of device archives (default 3des)\n"
    "      --device-key ec256|rsa2048  (default: init's --device-key)\n"
    "      --quiet               no log line per request\n"
    "  add-fleet-ca DIR CA.pem   trust a fleet root CA (PEM or DER): a device whose\n"
    "                            certificate chains to it is created on first contact, with\n"
    "                            its CN as device ID; a running serve trusts it on restart\n"
    "      --name NAME           its name (default: from its CN); [A-Za-z0-9._-], 1-64\n"
    "  devices DIR [--json]      list registered devices and their ECUs\n"
    "  requests DIR [--json]     list logged requests (time, client CN, method, path, status)\n"
    "  fleet-cas DIR [--json]    list the uploaded fleet CAs\n"
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
  OPT_QUIET,
  OPT_JSON,
  OPT_NAME,
  OPT_HELP
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
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"json", no_argument, NULL, OPT_JSON},
    {"name", required_argument, NULL, OPT_NAME},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Which options each command takes. */
static bool option_allowed(const char *cmd, int opt) {
  if (opt == OPT_HELP) return true;
  if (strcmp(cmd, "init") == 0)
    return opt == OPT_PORT || opt == OPT_HOST || opt == OPT_P12_PASSWORD || opt == OPT_P12 ||
           opt == OPT_DEVICE_KEY;
  if (strcmp(cmd, "serve") == 0)
    return opt == OPT_PORT || opt == OPT_BIND || opt == OPT_THREADS || opt == OPT_FAULTS ||
           opt == OPT_P12 || opt == OPT_DEVICE_KEY || opt == OPT_QUIET;
  if (strcmp(cmd, "add-fleet-ca") == 0) return opt == OPT_NAME;
  return opt == OPT_JSON; /* devices, requests, fleet-cas */
}

static const char *const COMMANDS[] = {"init",    "serve",    "add-fleet-ca",
                                       "devices", "requests", "fleet-cas"};

static bool known_command(const char *cmd) {
  for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
    if (strcmp(cmd, COMMANDS[i]) == 0) return true;
  return false;
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
  if (!known_command(cmd)) return usage_error("unknown command '%s'", cmd);

  init_options init = {.port = FLEET_DEFAULT_PORT,
                       .host = "127.0.0.1",
                       .p12_password = "",
                       .p12 = P12_CERTS_RC2_40,
                       .device_key = PKI_KEY_EC256};
  serve_options serve = {.port = -1, .bind = "127.0.0.1", .p12 = P12_CERTS_3DES};
  bool json = false, p12_set = false;
  const char *ca_name = NULL;
  enum p12_cert_cipher p12 = P12_CERTS_3DES;
  int port = -1, opt;
  optind = 2;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "h", OPTIONS, NULL)) != -1) {
    if (opt == 'h') opt = OPT_HELP;
    if (opt == '?') return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
    if (!option_allowed(cmd, opt))
      return usage_error("option '%s' does not apply to this command", argv[optind - 1]);
    switch (opt) {
    case OPT_HELP: fputs(USAGE, stdout); return 0;
    case OPT_PORT:
      if (parse_int(optarg, strcmp(cmd, "serve") == 0 ? 0 : 1, 65535, &port) != 0)
        return usage_error("--port '%s': expected a port number", optarg);
      break;
    case OPT_HOST:
      if (!*optarg || strlen(optarg) >= FLEET_HOST_MAX || strpbrk(optarg, "/ \t\n[]"))
        return usage_error("--host '%s': expected a host name or IP address", optarg);
      init.host = optarg;
      break;
    case OPT_P12_PASSWORD: init.p12_password = optarg; break;
    case OPT_P12:
      if (p12_cert_cipher_parse(optarg, &p12) != 0)
        return usage_error("--p12 '%s': expected legacy or 3des", optarg);
      p12_set = true;
      break;
    case OPT_DEVICE_KEY:
      if (pki_key_type_parse(optarg, &serve.device_key) != 0)
        return usage_error("--device-key '%s': expected ec256 or rsa2048", optarg);
      init.device_key = serve.device_key;
      serve.device_key_set = true;
      break;
    case OPT_BIND: {
      unsigned char addr[16];
      if (inet_pton(AF_INET, optarg, addr) != 1 && inet_pton(AF_INET6, optarg, addr) != 1)
        return usage_error("--bind '%s': expected an IPv4 or IPv6 address", optarg);
      serve.bind = optarg;
      break;
    }
    case OPT_THREADS:
      if (parse_int(optarg, 1, 1024, &serve.threads) != 0)
        return usage_error("--threads '%s': expected 1 to 1024", optarg);
      break;
    case OPT_FAULTS: {
      faults *f = NULL;
      char err[256];
      if (faults_parse(optarg, &f, err, sizeof err) != 0) return usage_error("--faults: %s", err);
      faults_free(f); /* checked here for the exit code; the server parses it again */
      serve.faults = optarg;
      break;
    }
    case OPT_QUIET: serve.quiet = true; break;
    case OPT_JSON: json = true; break;
    case OPT_NAME:
      if (!fleet_ca_name_valid(optarg))
        return usage_error("--name '%s': expected 1 to 64 of A-Z a-z 0-9 . _ -, starting with a "
                           "letter or digit",
                           optarg);
      ca_name = optarg;
      break;
    }
  }
  int operands = strcmp(cmd, "add-fleet-ca") == 0 ? 2 : 1;
  if (optind >= argc) return usage_error("%s: the fleet directory DIR is required", cmd);
  if (optind + 1 >= argc && operands == 2)
    return usage_error("%s: the CA certificate file is required", cmd);
  if (optind + operands < argc)
    return usage_error("unexpected argument '%s'", argv[optind + operands]);
  const char *dir = argv[optind];

  if (gnutls_global_init() < 0) {
    fprintf(stderr, "ota-server: cannot initialise GnuTLS\n");
    return 1;
  }
  int status;
  if (strcmp(cmd, "init") == 0) {
    init.dir = dir;
    if (port > 0) init.port = port;
    if (p12_set) init.p12 = p12;
    status = fleet_init(&init);
  } else if (strcmp(cmd, "serve") == 0) {
    serve.dir = dir;
    serve.port = port;
    if (p12_set) serve.p12 = p12;
    status = serve_run(&serve);
  } else if (strcmp(cmd, "add-fleet-ca") == 0) {
    status = fleet_ca_add(dir, argv[optind + 1], ca_name);
  } else if (strcmp(cmd, "devices") == 0) {
    status = list_devices(dir, json);
  } else if (strcmp(cmd, "fleet-cas") == 0) {
    status = list_fleet_cas(dir, json);
  } else {
    status = list_requests(dir, json);
  }
  gnutls_global_deinit();
  return status;
}
