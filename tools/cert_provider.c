/* cert_provider.c - otad-cert-provider: a device's TLS credentials, made at the factory or
 * the developer's desk and installed where device-credential provisioning imports them.
 *
 * Two sources, as aktualizr-cert-provider has them: with a fleet CA the tool generates the
 * device key and signs its certificate itself (transport/certgen.c); without one it
 * registers the device with the server named in a credentials.zip, as a device would
 * (POST /devices over mutual TLS with the fleet's provisioning key, one request on a libuv
 * loop) and takes the credentials the server issues. Everything that can be checked is
 * checked before the server is asked, because a registration cannot be undone: inputs are
 * read, the CA is verified and local directories are created first.
 * The files (pkey.pem 0600, client.pem, root.crt, gateway.url) are written atomically into
 * the base path on this machine, under a local directory (-l), or copied to a device with
 * ssh and scp run directly (fork/exec, no shell), or both.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/idgen.h"
#include "core/log.h"
#include "core/rng.h"
#include "crypto/certgen.h"
#include "crypto/tls.h"
#include "device/request.h"
#include "storage/credzip.h"
#include "storage/store.h"
#include "transport/http.h"

#define PROG "otad-cert-provider"

enum {
  EXIT_OK = 0,
  EXIT_RUNTIME = 1, /* network, server, writing, ssh/scp */
  EXIT_USAGE = 2,
  EXIT_INPUT = 3,   /* an input file is unreadable or unusable */
  EXIT_ID_TAKEN = 4 /* -c: the server has a device with this ID */
};

static const char usage_text[] =
    "Usage: " PROG " --fleet-ca FILE --fleet-ca-key FILE [OPTIONS]\n"
    "       " PROG " -c credentials.zip [OPTIONS]\n"
    "\n"
    "Makes a device's TLS credentials for device-credential (implicit) provisioning and\n"
    "installs them where otad imports them: pkey.pem, client.pem and, when asked, root.crt\n"
    "and gateway.url, under [import] base_path (default /var/sota/import).\n"
    "\n"
    "Where the credentials come from (one is required):\n"
    "      --fleet-ca FILE      fleet CA certificate (PEM) that signs the device certificate\n"
    "      --fleet-ca-key FILE  its private key (PEM: PKCS#8, RSA, EC or Ed25519, unencrypted)\n"
    "                           A new device key and certificate are made here, with\n"
    "                           CN = device ID, signed by the fleet CA.\n"
    "  -c, --credentials ZIP    the fleet's credentials.zip. Without --fleet-ca: register the\n"
    "                           device with the server in the zip (POST /devices with its\n"
    "                           provisioning key) and install what the server issues\n"
    "                           (client.pem = certificate + CA chain, as otad stores it).\n"
    "                           With --fleet-ca: read only for -r and -u.\n"
    "      --p12-password PW    password of the zip's autoprov_credentials.p12 (default empty)\n"
    "\n"
    "The device:\n"
    "      --certificate-cn ID  device ID: the certificate's CN, or the deviceId registered\n"
    "                           with -c (the server chooses the CN); [A-Za-z0-9._-], at most\n"
    "                           63 characters; default: a generated name like brave-otter-048213\n"
    "      --days N             validity in days, 1..36500 (default 365); with -c the ttl asked\n"
    "      --certificate-c C    subject C, two letters        (--fleet-ca only)\n"
    "      --certificate-st ST  subject ST                    (--fleet-ca only)\n"
    "      --certificate-o O    subject O                     (--fleet-ca only)\n"
    "      --rsa-bits N         RSA device key of 2048, 3072 or 4096 bits instead of EC P-256\n"
    "                           (--fleet-ca only; --bits is the same)\n"
    "\n"
    "Extra files:\n"
    "  -r, --root-ca            also write the server's CA as root.crt: --server-ca if given;\n"
    "                           else with -c registration the CA the server returned; else the\n"
    "                           zip's server_ca.pem, else the CA certificates of its p12.\n"
    "                           With --fleet-ca this needs -c ZIP or --server-ca FILE.\n"
    "      --server-ca FILE     the server CA certificate(s) to write as root.crt (implies -r)\n"
    "  -u, --server-url         also write the server URL as gateway.url: --url if given, else\n"
    "                           the zip's autoprov.url. With --fleet-ca this needs -c or --url.\n"
    "      --url URL            the server URL to write as gateway.url (implies -u)\n"
    "\n"
    "Where the files go:\n"
    "  -d, --directory DIR      base path of the files on the device (default /var/sota/import)\n"
    "  -g, --config PATH        take base path and file names from sota.toml files or\n"
    "                           directories (repeatable): [import] base_path, tls_pkey_path,\n"
    "                           tls_clientcert_path, tls_cacert_path, [tls] server_url_path;\n"
    "                           relative names are under the base path; -d overrides base_path\n"
    "  -l, --local DIR          write on this machine under DIR (DIR/BASE/pkey.pem ...)\n"
    "  -t, --target [USER@]HOST copy to a device: ssh HOST mkdir -p BASE, scp -p FILES HOST:BASE/\n"
    "  -p, --port N             ssh port of the target (ssh -p N, scp -P N)\n"
    "  -s, --skip-checks        ssh and scp with -o StrictHostKeyChecking=no\n"
    "\n"
    "  Without -l and -t the files are written to BASE on this machine. pkey.pem gets mode\n"
    "  0600, the others 0644; every file is written atomically; missing directories are\n"
    "  created (0755). -t stages the files in $TMPDIR (default /tmp) and removes them after\n"
    "  the copy; if the copy of credentials the server issued (-c) fails, they are kept\n"
    "  there, because the registration cannot be repeated with the same ID.\n"
    "\n"
    "  -h, --help               this text\n"
    "  -V, --version            print the version\n"
    "\n"
    "Exit status:\n"
    "  0  the credentials were written\n"
    "  1  runtime error: server unreachable or refusing, writing files, ssh or scp failed\n"
    "  2  usage error: unknown or missing options, options that do not go together\n"
    "  3  an input file is invalid: fleet CA certificate or key unreadable, not matching or\n"
    "     not a CA; credentials.zip or its PKCS#12 unreadable or the password wrong;\n"
    "     --server-ca or a -g configuration unreadable\n"
    "  4  -c: the server already has a device with this ID; choose another --certificate-cn\n";

typedef struct cp_args {
  const char *fleet_ca, *fleet_ca_key, *credentials, *p12_password;
  const char *cn, *c, *st, *o;
  int days, rsa_bits;
  int root_ca, server_url, skip_checks;
  const char *server_ca, *url;
  const char *directory, *local, *target;
  const char *configs[16];
  int nconfigs;
  int port;
} cp_args;

/* One file to install. */
typedef struct cp_file {
  const char *what; /* "private key", ... */
  char *path;       /* where it goes on the device */
  const char *data;
  size_t len;
  int mode;
} cp_file;

enum { FILE_PKEY, FILE_CERT, FILE_CA, FILE_URL, FILE_COUNT };

/* Everything one run holds, freed in one place. */
typedef struct cp_run {
  otad_config cfg;
  cp_file files[FILE_COUNT];
  credzip zip;
  tls_creds prov; /* the zip's provisioning identity (parsed when needed) */
  int prov_parsed;
  char *ca_cert_pem;   /* --fleet-ca */
  char *ca_key_pem;    /* --fleet-ca-key */
  char *server_ca_pem; /* --server-ca */
  char device_id[72];
  char *key_pem, *cert_pem, *root_pem; /* what is written */
  const char *url;
  char stage[256]; /* -t: local staging directory (under $TMPDIR) */
} cp_run;

static int cp_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cp_error(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, PROG ": error: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  if (code == EXIT_USAGE) fprintf(stderr, "Try '" PROG " --help'.\n");
  return code;
}

static void cp_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void cp_warning(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, PROG ": warning: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void config_warning(void *ctx, const char *msg) {
  cp_warning("%s", msg);
}

static void free_secret(char *s) {
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

/* ---- command line ---------------------------------------------------------------- */

enum {
  OPT_FLEET_CA = 256,
  OPT_FLEET_CA_KEY,
  OPT_P12_PASSWORD,
  OPT_CN,
  OPT_C,
  OPT_ST,
  OPT_O,
  OPT_DAYS,
  OPT_RSA_BITS,
  OPT_SERVER_CA,
  OPT_URL,
};

/* A whole decimal number in [lo, hi], or -1. */
static long parse_number(const char *s, long lo, long hi) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  return v;
}

/* Parses argv into a; returns -1 to go on, or the exit code (help, version, usage). */
static int parse_args(int argc, char **argv, cp_args *a) {
  static const struct option longopts[] = {
      {"fleet-ca", required_argument, 0, OPT_FLEET_CA},
      {"fleet-ca-key", required_argument, 0, OPT_FLEET_CA_KEY},
      {"credentials", required_argument, 0, 'c'},
      {"p12-password", required_argument, 0, OPT_P12_PASSWORD},
      {"certificate-cn", required_argument, 0, OPT_CN},
      {"certificate-c", required_argument, 0, OPT_C},
      {"certificate-st", required_argument, 0, OPT_ST},
      {"certificate-o", required_argument, 0, OPT_O},
      {"days", required_argument, 0, OPT_DAYS},
      {"rsa-bits", required_argument, 0, OPT_RSA_BITS},
      {"bits", required_argument, 0, OPT_RSA_BITS},
      {"root-ca", no_argument, 0, 'r'},
      {"server-ca", required_argument, 0, OPT_SERVER_CA},
      {"server-url", no_argument, 0, 'u'},
      {"url", required_argument, 0, OPT_URL},
      {"directory", required_argument, 0, 'd'},
      {"config", required_argument, 0, 'g'},
      {"local", required_argument, 0, 'l'},
      {"target", required_argument, 0, 't'},
      {"port", required_argument, 0, 'p'},
      {"skip-checks", no_argument, 0, 's'},
      {"help", no_argument, 0, 'h'},
      {"version", no_argument, 0, 'V'},
      {0, 0, 0, 0},
  };
  memset(a, 0, sizeof(*a));
  a->days = 365;
  opterr = 0;
  int ch;
  long v;
  while ((ch = getopt_long(argc, argv, ":c:rud:g:l:t:p:shV", longopts, NULL)) != -1) {
    switch (ch) {
    case OPT_FLEET_CA: a->fleet_ca = optarg; break;
    case OPT_FLEET_CA_KEY: a->fleet_ca_key = optarg; break;
    case 'c': a->credentials = optarg; break;
    case OPT_P12_PASSWORD: a->p12_password = optarg; break;
    case OPT_CN: a->cn = optarg; break;
    case OPT_C: a->c = optarg; break;
    case OPT_ST: a->st = optarg; break;
    case OPT_O: a->o = optarg; break;
    case OPT_DAYS:
      if ((v = parse_number(optarg, 1, CERTGEN_MAX_DAYS)) < 0)
        return cp_error(EXIT_USAGE, "--days must be a number of days from 1 to %d, not '%s'",
                        CERTGEN_MAX_DAYS, optarg);
      a->days = (int)v;
      break;
    case OPT_RSA_BITS:
      v = parse_number(optarg, 0, 65536);
      if (v != 2048 && v != 3072 && v != 4096)
        return cp_error(EXIT_USAGE, "--rsa-bits must be 2048, 3072 or 4096, not '%s'", optarg);
      a->rsa_bits = (int)v;
      break;
    case 'r': a->root_ca = 1; break;
    case OPT_SERVER_CA:
      a->server_ca = optarg;
      a->root_ca = 1;
      break;
    case 'u': a->server_url = 1; break;
    case OPT_URL:
      a->url = optarg;
      a->server_url = 1;
      break;
    case 'd': a->directory = optarg; break;
    case 'g':
      if (a->nconfigs == (int)(sizeof(a->configs) / sizeof(a->configs[0])))
        return cp_error(EXIT_USAGE, "too many -g/--config options");
      a->configs[a->nconfigs++] = optarg;
      break;
    case 'l': a->local = optarg; break;
    case 't': a->target = optarg; break;
    case 'p':
      if ((v = parse_number(optarg, 1, 65535)) < 0)
        return cp_error(EXIT_USAGE, "--port must be a TCP port (1..65535), not '%s'", optarg);
      a->port = (int)v;
      break;
    case 's': a->skip_checks = 1; break;
    case 'h': fputs(usage_text, stdout); return EXIT_OK;
    case 'V': printf(PROG " %s\n", OTAD_VERSION); return EXIT_OK;
    case ':': return cp_error(EXIT_USAGE, "option '%s' needs a value", argv[optind - 1]);
    default:
      if (optopt) return cp_error(EXIT_USAGE, "unknown option '-%c'", optopt);
      return cp_error(EXIT_USAGE, "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) return cp_error(EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
  return -1;
}

/* Characters a remote path may hold: nothing a remote shell would interpret. */
static int remote_path_ok(const char *p) {
  for (; *p; p++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._+,=@%-", *p))
      return 0;
  return 1;
}

/* The rules between options; returns 0 or EXIT_USAGE (with the message printed). */
static int check_args(const cp_args *a) {
  int fleet = a->fleet_ca || a->fleet_ca_key;
  if (!a->fleet_ca != !a->fleet_ca_key)
    return cp_error(EXIT_USAGE, "--fleet-ca and --fleet-ca-key go together: give both or neither");
  if (!fleet && !a->credentials)
    return cp_error(EXIT_USAGE,
                    "nothing to make credentials from: give --fleet-ca and --fleet-ca-key, or "
                    "-c credentials.zip");
  if (!fleet) {
    const char *only = a->rsa_bits ? "--rsa-bits"
                       : a->c      ? "--certificate-c"
                       : a->st     ? "--certificate-st"
                       : a->o      ? "--certificate-o"
                                   : NULL;
    if (only)
      return cp_error(EXIT_USAGE,
                      "%s works only with --fleet-ca: with -c the server makes the key and "
                      "certificate",
                      only);
  }
  if (fleet && a->root_ca && !a->server_ca && !a->credentials)
    return cp_error(EXIT_USAGE,
                    "-r/--root-ca needs to know the server's CA: give -c credentials.zip (its "
                    "server_ca.pem or the CA in its p12) or --server-ca FILE");
  if (fleet && a->server_url && !a->url && !a->credentials)
    return cp_error(EXIT_USAGE,
                    "-u/--server-url needs to know the server URL: give -c credentials.zip (its "
                    "autoprov.url) or --url URL");
  if (a->url && !*a->url) return cp_error(EXIT_USAGE, "--url must not be empty");
  if (a->cn && (!idgen_valid(a->cn) || strlen(a->cn) > CERTGEN_MAX_NAME))
    return cp_error(EXIT_USAGE,
                    "--certificate-cn '%s' is not a usable device ID: 1 to %d characters of "
                    "A-Z a-z 0-9 . _ -",
                    a->cn, CERTGEN_MAX_NAME);
  if (a->c && !(strlen(a->c) == 2 &&
                strspn(a->c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == 2))
    return cp_error(EXIT_USAGE, "--certificate-c must be a two-letter country code, not '%s'",
                    a->c);
  if (a->st && (!*a->st || strlen(a->st) > CERTGEN_MAX_NAME))
    return cp_error(EXIT_USAGE, "--certificate-st must be 1 to %d characters", CERTGEN_MAX_NAME);
  if (a->o && (!*a->o || strlen(a->o) > CERTGEN_MAX_NAME))
    return cp_error(EXIT_USAGE, "--certificate-o must be 1 to %d characters", CERTGEN_MAX_NAME);
  if (a->directory && !*a->directory) return cp_error(EXIT_USAGE, "--directory must not be empty");
  if (a->local && !*a->local) return cp_error(EXIT_USAGE, "--local must not be empty");
  if (!a->target && (a->port || a->skip_checks))
    return cp_error(EXIT_USAGE, "%s is for copying with ssh: it needs -t/--target",
                    a->port ? "-p/--port" : "-s/--skip-checks");
  if (a->target && (!*a->target || a->target[0] == '-' || strpbrk(a->target, " \t\n:/")))
    return cp_error(EXIT_USAGE, "--target must be [USER@]HOST, not '%s'", a->target);
  return 0;
}

/* ---- files ------------------------------------------------------------------------ */

/* Reads a whole (small) file as a NUL-terminated heap string. 0 or an errno value. */
static int read_text(const char *path, char **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return errno;
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
  }
  if (st.st_size > STORE_MAX_VALUE) {
    fclose(f);
    return EFBIG;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  if (!buf) {
    fclose(f);
    return ENOMEM;
  }
  size_t n = fread(buf, 1, (size_t)st.st_size, f);
  int err = ferror(f) ? EIO : 0;
  fclose(f);
  if (err) {
    free(buf);
    return err;
  }
  buf[n] = '\0';
  *out = buf;
  return 0;
}

/* mkdir -p with mode for what it creates. 0 or an errno value. */
static int make_dirs(const char *dir, mode_t mode) {
  char *p = strdup(dir);
  if (!p) return ENOMEM;
  int err = 0;
  for (char *s = p + 1;; s++) {
    if (*s == '/' || *s == '\0') {
      char c = *s;
      *s = '\0';
      if (mkdir(p, mode) != 0 && errno != EEXIST) err = errno;
      *s = c;
      if (err || c == '\0') break;
    }
  }
  struct stat st;
  if (!err && (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))) err = errno ? errno : ENOTDIR;
  free(p);
  return err;
}

/* The directory part of a path (heap). */
static char *dir_of(const char *path) {
  char *copy = strdup(path);
  if (!copy) return NULL;
  char *d = strdup(dirname(copy));
  free(copy);
  return d;
}

/* prefix/path, path's leading slashes dropped (heap). */
static char *under(const char *prefix, const char *path) {
  while (*path == '/')
    path++;
  size_t n = strlen(prefix) + strlen(path) + 2;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s%s%s", prefix, prefix[strlen(prefix) - 1] == '/' ? "" : "/", path);
  return s;
}

/* Where each file goes on the device: -g configurations, -d, defaults. */
static int resolve_paths(const cp_args *a, cp_run *run) {
  otad_errbuf eb = {{0}};
  otad_config *cfg = &run->cfg;
  for (int i = 0; i < a->nconfigs; i++)
    if (config_load_path(cfg, a->configs[i], config_warning, NULL, &eb) != 0)
      return cp_error(EXIT_INPUT, "cannot use the configuration: %s", eb.msg);
  if (a->directory && config_set(cfg, "import.base_path", a->directory, &eb) != 0)
    return cp_error(EXIT_USAGE, "--directory: %s", eb.msg);
  if (config_finish(cfg, &eb) != 0) return cp_error(EXIT_INPUT, "configuration: %s", eb.msg);
  static const char *const what[FILE_COUNT] = {"private key", "certificate", "server CA",
                                               "server URL"};
  const char *names[FILE_COUNT] = {
      cfg->import_tls_pkey_path, cfg->import_tls_clientcert_path, cfg->import_tls_cacert_path,
      cfg->tls_server_url_path ? cfg->tls_server_url_path : STORE_SERVER_URL};
  for (int i = 0; i < FILE_COUNT; i++) {
    run->files[i].what = what[i];
    run->files[i].mode = i == FILE_PKEY ? 0600 : 0644;
    if (!(run->files[i].path = config_path(cfg, names[i])))
      return cp_error(EXIT_RUNTIME, "out of memory");
  }
  int used[FILE_COUNT] = {1, 1, a->root_ca, a->server_url};
  for (int i = 0; i < FILE_COUNT; i++)
    for (int j = i + 1; j < FILE_COUNT; j++)
      if (used[i] && used[j] && strcmp(run->files[i].path, run->files[j].path) == 0)
        return cp_error(EXIT_USAGE, "the %s and the %s would both be written to %s",
                        run->files[i].what, run->files[j].what, run->files[i].path);
  if (a->target)
    for (int i = 0; i < FILE_COUNT; i++)
      if (used[i] && !remote_path_ok(run->files[i].path))
        return cp_error(EXIT_USAGE,
                        "the remote path %s has characters ssh would pass to a shell; choose a "
                        "path of A-Z a-z 0-9 / . _ + , = @ %% -",
                        run->files[i].path);
  return 0;
}

/* ---- inputs ----------------------------------------------------------------------- */

static int read_input(const char *what, const char *path, char **out) {
  int e = read_text(path, out);
  if (e) return cp_error(EXIT_INPUT, "cannot read the %s %s: %s", what, path, strerror(e));
  return 0;
}

/* The zip's provisioning PKCS#12, parsed once. */
static int parse_prov(const cp_args *a, cp_run *run) {
  if (run->prov_parsed) return 0;
  otad_errbuf eb = {{0}};
  int rc = tls_p12_parse(run->zip.p12, run->zip.p12_len, a->p12_password, &run->prov, &eb);
  if (rc == OTAD_EP12PASS)
    return cp_error(EXIT_INPUT,
                    "%s: autoprov_credentials.p12: %s; give the right one with --p12-password",
                    a->credentials, eb.msg);
  if (rc) return cp_error(EXIT_INPUT, "%s: autoprov_credentials.p12: %s", a->credentials, eb.msg);
  run->prov_parsed = 1;
  return 0;
}

/* Reads and checks every input before anything is made or sent. */
static int read_inputs(const cp_args *a, cp_run *run) {
  otad_errbuf eb = {{0}};
  int rc;
  if (a->credentials) {
    rc = credzip_read(a->credentials, &run->zip, &eb);
    if (rc == OTAD_EZIP) return cp_error(EXIT_INPUT, "not a usable credentials.zip: %s", eb.msg);
    if (rc) return cp_error(EXIT_INPUT, "cannot read the credentials: %s", eb.msg);
    /* The p12 is needed to register, or for -r when the zip has no server_ca.pem. */
    if (!a->fleet_ca || (a->root_ca && !a->server_ca && !run->zip.server_ca_pem))
      if ((rc = parse_prov(a, run))) return rc;
  }
  if (a->server_ca) {
    if ((rc = read_input("server CA", a->server_ca, &run->server_ca_pem))) return rc;
    tls_cert_info ci;
    if (tls_cert_info_pem(run->server_ca_pem, &ci, &eb) != 0)
      return cp_error(EXIT_INPUT, "the server CA %s holds no PEM certificate: %s", a->server_ca,
                      eb.msg);
  }
  if (a->fleet_ca) {
    if ((rc = read_input("fleet CA certificate", a->fleet_ca, &run->ca_cert_pem))) return rc;
    if ((rc = read_input("fleet CA key", a->fleet_ca_key, &run->ca_key_pem))) return rc;
    if (certgen_check_ca(run->ca_cert_pem, run->ca_key_pem, &eb) != 0)
      return cp_error(EXIT_INPUT, "fleet CA %s with key %s: %s", a->fleet_ca, a->fleet_ca_key,
                      eb.msg);
    tls_cert_info ci;
    if (tls_cert_info_pem(run->ca_cert_pem, &ci, &eb) == 0 &&
        ci.not_after < time(NULL) + (time_t)a->days * 86400) {
      char when[32];
      struct tm tm;
      strftime(when, sizeof(when), "%Y-%m-%d", gmtime_r(&ci.not_after, &tm));
      cp_warning("the fleet CA expires on %s, before the device certificate; the device "
                 "cannot connect after that date",
                 when);
    }
  }
  return 0;
}

/* ---- making the credentials -------------------------------------------------------- */

static int make_with_fleet_ca(const cp_args *a, cp_run *run) {
  certgen_opts o = {.cn = run->device_id,
                    .c = a->c,
                    .st = a->st,
                    .o = a->o,
                    .days = a->days,
                    .rsa_bits = a->rsa_bits};
  otad_errbuf eb = {{0}};
  int rc =
      certgen_device(run->ca_cert_pem, run->ca_key_pem, &o, &run->key_pem, &run->cert_pem, &eb);
  if (rc == OTAD_EINVAL) return cp_error(EXIT_USAGE, "%s", eb.msg);
  if (rc == OTAD_ECERT) return cp_error(EXIT_INPUT, "%s", eb.msg);
  if (rc) return cp_error(EXIT_RUNTIME, "cannot make the device certificate: %s", eb.msg);
  /* The same check the server will make, before anything is written. */
  if (certgen_verify(run->cert_pem, run->ca_cert_pem, &eb) != 0)
    return cp_error(EXIT_RUNTIME, "the new certificate does not verify against the fleet CA: %s",
                    eb.msg);
  tls_cert_info ci;
  if (tls_cert_info_pem(run->cert_pem, &ci, &eb) == 0) {
    char when[32];
    struct tm tm;
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&ci.not_after, &tm));
    printf("Device ID: %s\nCertificate: %s, issued by %s, valid until %s (%s key)\n",
           run->device_id, ci.subject, ci.issuer, when, a->rsa_bits ? "RSA" : "EC P-256");
  }
  return 0;
}

typedef struct cp_reg {
  http_request req;
  int finished;
} cp_reg;

static void on_register_done(http_request *r) {
  ((cp_reg *)r->data)->finished = 1;
}

/* What the server's reply to POST /devices means; fills run->key_pem etc. on success. */
static int registration_result(const cp_args *a, cp_run *run, http_request *r, const char *url) {
  if (r->err == OTAD_EPEER)
    return cp_error(EXIT_RUNTIME,
                    "the server at %s is not trusted: its certificate is not signed by the CA in "
                    "%s (%s); nothing was sent",
                    url, a->credentials, r->errmsg);
  if (r->err == OTAD_ETLS)
    return cp_error(EXIT_RUNTIME, "TLS with %s failed (%s): %s", url, otad_strerror(r->err),
                    r->errmsg);
  if (r->err)
    return cp_error(EXIT_RUNTIME, "cannot register with %s: %s (%s)", url, otad_strerror(r->err),
                    r->errmsg);
  if (r->status < 200 || r->status >= 300) {
    char code[64], desc[256];
    device_error_reply(r, code, sizeof(code), desc, sizeof(desc));
    if (strcmp(code, "device_already_registered") == 0)
      return cp_error(EXIT_ID_TAKEN,
                      "the server already has a device with ID '%s'; choose another with "
                      "--certificate-cn (or leave it out for a generated one)",
                      run->device_id);
    return cp_error(EXIT_RUNTIME, "the server refused the registration: HTTP %ld%s%s%s%s",
                    r->status, code[0] ? " " : "", code, desc[0] ? ": " : "", desc);
  }
  tls_creds c;
  otad_errbuf eb = {{0}};
  if (tls_p12_parse(r->resp, r->resp_len, "", &c, &eb) != 0)
    return cp_error(EXIT_RUNTIME,
                    "the server registered '%s' but its reply (%zu bytes) is not a usable PKCS#12: "
                    "%s",
                    run->device_id, r->resp_len, eb.msg);
  /* As the agent stores them: the certificate with the CA chain appended; the CA pinned. */
  size_t cl = strlen(c.cert_pem), n = cl + strlen(c.ca_pem) + 2;
  run->cert_pem = malloc(n);
  if (!run->cert_pem) {
    tls_creds_free(&c);
    return cp_error(EXIT_RUNTIME, "out of memory");
  }
  snprintf(run->cert_pem, n, "%s%s%s", c.cert_pem, cl && c.cert_pem[cl - 1] != '\n' ? "\n" : "",
           c.ca_pem);
  run->key_pem = c.key_pem;
  c.key_pem = NULL;
  if (c.ca_pem[0]) {
    run->root_pem = c.ca_pem;
    c.ca_pem = NULL;
  }
  tls_cert_info ci;
  if (tls_cert_info_pem(run->cert_pem, &ci, &eb) == 0) {
    char when[32];
    struct tm tm;
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&ci.not_after, &tm));
    printf("Registered device ID: %s\nCertificate: %s, issued by %s, valid until %s\n",
           run->device_id, ci.subject, ci.issuer, when);
  }
  tls_creds_free(&c);
  return 0;
}

/* POST {autoprov.url}/devices with the provisioning identity; one request on a loop. */
static int make_by_registering(const cp_args *a, cp_run *run) {
  const char *ca =
      run->prov.ca_pem && run->prov.ca_pem[0] ? run->prov.ca_pem : run->zip.server_ca_pem;
  if (!ca)
    return cp_error(EXIT_INPUT,
                    "%s holds no CA certificate to verify the server with (none in "
                    "autoprov_credentials.p12, no server_ca.pem)",
                    a->credentials);
  char ttl[16];
  snprintf(ttl, sizeof(ttl), "%d", a->days);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "deviceId", run->device_id);
  cJSON_AddStringToObject(o, "ttl", ttl);
  char *body = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  size_t n = strlen(run->zip.url) + sizeof("/devices");
  char *url = malloc(n);
  if (!body || !url) {
    free(body);
    free(url);
    return cp_error(EXIT_RUNTIME, "out of memory");
  }
  snprintf(url, n, "%s", run->zip.url);
  while (*url && url[strlen(url) - 1] == '/')
    url[strlen(url) - 1] = '\0';
  strcat(url, "/devices");

  printf("Registering device ID %s with %s ...\n", run->device_id, run->zip.url);
  fflush(stdout);
  uv_loop_t *loop = uv_default_loop();
  http_client *client = http_client_new(loop);
  if (!client) {
    free(body);
    free(url);
    return cp_error(EXIT_RUNTIME, "cannot start libcurl");
  }
  cp_reg reg = {0};
  http_request *r = &reg.req;
  r->method = "POST";
  r->url = url;
  r->content_type = "application/json";
  r->body = body;
  r->body_len = strlen(body);
  r->cert_pem = run->prov.cert_pem;
  r->key_pem = run->prov.key_pem;
  r->ca_pem = ca;
  r->connect_timeout_ms = 30000;
  r->done = on_register_done;
  r->data = &reg;
  int rc = http_start(client, r);
  if (rc == 0) {
    while (!reg.finished)
      uv_run(loop, UV_RUN_ONCE);
    rc = registration_result(a, run, r, url);
  } else {
    rc = cp_error(EXIT_RUNTIME, "cannot start the request to %s: %s", url, otad_strerror(rc));
  }
  http_request_reset(r);
  http_client_close(client);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  free(body);
  free(url);
  return rc;
}

/* The server CA for -r and the URL for -u, in the order --help gives. */
static int choose_extras(const cp_args *a, cp_run *run) {
  if (a->root_ca) {
    const char *from = NULL;
    if (run->server_ca_pem) {
      free(run->root_pem);
      run->root_pem = strdup(run->server_ca_pem);
      from = a->server_ca;
    } else if (run->root_pem) {
      from = "the server's reply";
    } else if (run->zip.server_ca_pem) {
      run->root_pem = strdup(run->zip.server_ca_pem);
      from = "server_ca.pem in the zip";
    } else {
      int rc = parse_prov(a, run);
      if (rc) return rc;
      if (!run->prov.ca_pem || !run->prov.ca_pem[0])
        return cp_error(EXIT_INPUT,
                        "%s holds no server CA (no server_ca.pem, no CA certificate in "
                        "autoprov_credentials.p12); give it with --server-ca FILE",
                        a->credentials);
      run->root_pem = strdup(run->prov.ca_pem);
      from = "autoprov_credentials.p12 in the zip";
    }
    if (!run->root_pem) return cp_error(EXIT_RUNTIME, "out of memory");
    printf("Server CA from %s\n", from);
  }
  if (a->server_url) run->url = a->url ? a->url : run->zip.url;
  return 0;
}

/* ---- output ------------------------------------------------------------------------ */

/* The files to write, in order; their data filled in. */
static int wanted(const cp_args *a, cp_run *run, cp_file **out) {
  int n = 0;
  run->files[FILE_PKEY].data = run->key_pem;
  run->files[FILE_CERT].data = run->cert_pem;
  run->files[FILE_CA].data = run->root_pem;
  run->files[FILE_URL].data = run->url;
  int used[FILE_COUNT] = {1, 1, a->root_ca, a->server_url};
  for (int i = 0; i < FILE_COUNT; i++)
    if (used[i]) {
      run->files[i].len = strlen(run->files[i].data);
      out[n++] = &run->files[i];
    }
  return n;
}

/* Creates the directories the files go to (before the server is asked). */
static int prepare_local(const cp_args *a, cp_run *run) {
  int used[FILE_COUNT] = {1, 1, a->root_ca, a->server_url};
  for (int i = 0; i < FILE_COUNT; i++) {
    if (!used[i]) continue;
    char *dest = a->local ? under(a->local, run->files[i].path) : strdup(run->files[i].path);
    char *dir = dest ? dir_of(dest) : NULL;
    int e = dir ? make_dirs(dir, 0755) : ENOMEM;
    if (e)
      cp_error(EXIT_RUNTIME, "cannot create the directory %s: %s", dir ? dir : "", strerror(e));
    free(dest);
    free(dir);
    if (e) return EXIT_RUNTIME;
  }
  return 0;
}

static int write_local(const char *prefix, cp_file **files, int n) {
  for (int i = 0; i < n; i++) {
    char *dest = prefix ? under(prefix, files[i]->path) : strdup(files[i]->path);
    if (!dest) return cp_error(EXIT_RUNTIME, "out of memory");
    otad_errbuf eb = {{0}};
    int rc = atomic_write_file(dest, files[i]->data, files[i]->len, files[i]->mode, &eb);
    if (rc == 0) printf("Wrote the %s to %s (mode %04o)\n", files[i]->what, dest, files[i]->mode);
    free(dest);
    if (rc) return cp_error(EXIT_RUNTIME, "cannot write the %s: %s", files[i]->what, eb.msg);
  }
  return 0;
}

/* Runs argv (no shell), echoing it. 0 or EXIT_RUNTIME with the reason printed. */
static int run_command(char *const argv[]) {
  printf("Running:");
  for (int i = 0; argv[i]; i++)
    printf(" %s", argv[i]);
  printf("\n");
  fflush(stdout);
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) return cp_error(EXIT_RUNTIME, "pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) {
    close(pfd[0]);
    close(pfd[1]);
    return cp_error(EXIT_RUNTIME, "fork: %s", strerror(errno));
  }
  if (pid == 0) {
    close(pfd[0]);
    execvp(argv[0], argv);
    int e = errno;
    ssize_t w = write(pfd[1], &e, sizeof(e)); /* the parent learns why exec failed */
    (void)w;
    _exit(127);
  }
  close(pfd[1]);
  int exec_errno = 0;
  ssize_t got = read(pfd[0], &exec_errno, sizeof(exec_errno));
  close(pfd[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return cp_error(EXIT_RUNTIME, "waitpid: %s", strerror(errno));
  if (got == (ssize_t)sizeof(exec_errno))
    return cp_error(EXIT_RUNTIME, "cannot run '%s': %s", argv[0], strerror(exec_errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  if (WIFEXITED(status))
    return cp_error(EXIT_RUNTIME, "'%s' failed with exit status %d", argv[0], WEXITSTATUS(status));
  return cp_error(EXIT_RUNTIME, "'%s' was killed by signal %d", argv[0], WTERMSIG(status));
}

/* ssh/scp argument list: prog, options, then up to `extra` more. */
typedef struct cp_argv {
  char *v[40];
  int n;
} cp_argv;

static void argv_add(cp_argv *av, const char *s) {
  if (av->n < (int)(sizeof(av->v) / sizeof(av->v[0])) - 1) av->v[av->n++] = (char *)s;
  av->v[av->n] = NULL;
}

static void ssh_options(const cp_args *a, cp_argv *av, const char *port_flag, char *port) {
  if (a->port) {
    snprintf(port, 8, "%d", a->port);
    argv_add(av, port_flag);
    argv_add(av, port);
  }
  if (a->skip_checks) {
    argv_add(av, "-o");
    argv_add(av, "StrictHostKeyChecking=no");
  }
}

/* Removes the staging directory and what it holds. */
static void unstage(cp_run *run) {
  if (!run->stage[0]) return;
  for (int g = 0; g < FILE_COUNT; g++) {
    char d[300];
    snprintf(d, sizeof(d), "%s/%d", run->stage, g);
    for (int i = 0; i < FILE_COUNT; i++) {
      char *base = run->files[i].path ? strrchr(run->files[i].path, '/') : NULL;
      if (!base) continue;
      char *p = under(d, base + 1);
      if (p) unlink(p);
      free(p);
    }
    rmdir(d);
  }
  rmdir(run->stage);
  run->stage[0] = 0;
}

/* Copies the files to the target: one staging directory per remote directory (the files
 * under their final names and modes), then ssh mkdir -p and scp -p for each. */
static int copy_to_target(const cp_args *a, cp_run *run, cp_file **files, int n) {
  const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  if ((size_t)snprintf(run->stage, sizeof(run->stage), "%s/" PROG ".XXXXXX", tmp) >=
      sizeof(run->stage) - 8)
    return cp_error(EXIT_RUNTIME, "TMPDIR is too long: %s", tmp);
  if (!mkdtemp(run->stage)) {
    run->stage[0] = 0;
    return cp_error(EXIT_RUNTIME, "cannot create a temporary directory: %s", strerror(errno));
  }
  char *dirs[FILE_COUNT] = {0};
  int group[FILE_COUNT], ndirs = 0, rc = 0;
  for (int i = 0; i < n && !rc; i++) {
    char *d = dir_of(files[i]->path);
    if (!d) {
      rc = cp_error(EXIT_RUNTIME, "out of memory");
      break;
    }
    group[i] = -1;
    for (int g = 0; g < ndirs; g++)
      if (strcmp(dirs[g], d) == 0) group[i] = g;
    if (group[i] < 0) {
      group[i] = ndirs;
      dirs[ndirs++] = d;
    } else {
      free(d);
    }
  }
  /* stage */
  for (int i = 0; i < n && !rc; i++) {
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/%d", run->stage, group[i]);
    if (mkdir(sub, 0700) != 0 && errno != EEXIST) {
      rc = cp_error(EXIT_RUNTIME, "cannot create %s: %s", sub, strerror(errno));
      break;
    }
    char *p = under(sub, strrchr(files[i]->path, '/') ? strrchr(files[i]->path, '/') + 1
                                                      : files[i]->path);
    otad_errbuf eb = {{0}};
    if (!p || atomic_write_file(p, files[i]->data, files[i]->len, files[i]->mode, &eb) != 0)
      rc = cp_error(EXIT_RUNTIME, "cannot stage the %s: %s", files[i]->what, eb.msg);
    free(p);
  }
  /* copy */
  if (!rc) printf("Copying the credentials to %s ...\n", a->target);
  char port[8];
  char *paths[FILE_COUNT] = {0};
  char *dest[FILE_COUNT] = {0};
  for (int g = 0; g < ndirs && !rc; g++) {
    cp_argv ssh = {0};
    argv_add(&ssh, "ssh");
    ssh_options(a, &ssh, "-p", port);
    argv_add(&ssh, a->target);
    argv_add(&ssh, "mkdir");
    argv_add(&ssh, "-p");
    argv_add(&ssh, dirs[g]);
    if ((rc = run_command(ssh.v))) break;

    cp_argv scp = {0};
    argv_add(&scp, "scp");
    argv_add(&scp, "-p"); /* keeps pkey.pem's 0600 */
    ssh_options(a, &scp, "-P", port);
    for (int i = 0; i < n; i++) {
      if (group[i] != g) continue;
      char sub[300];
      snprintf(sub, sizeof(sub), "%s/%d", run->stage, g);
      const char *base =
          strrchr(files[i]->path, '/') ? strrchr(files[i]->path, '/') + 1 : files[i]->path;
      paths[i] = under(sub, base);
      argv_add(&scp, paths[i]);
    }
    size_t dl = strlen(a->target) + strlen(dirs[g]) + 3;
    if (!(dest[g] = malloc(dl))) {
      rc = cp_error(EXIT_RUNTIME, "out of memory");
      break;
    }
    snprintf(dest[g], dl, "%s:%s/", a->target, dirs[g]);
    argv_add(&scp, dest[g]);
    rc = run_command(scp.v);
  }
  for (int i = 0; i < FILE_COUNT; i++) {
    free(paths[i]);
    free(dest[i]);
    free(dirs[i]);
  }
  if (rc && run->key_pem && !a->fleet_ca) {
    /* A registration cannot be repeated with the same ID: keep what the server issued. */
    fprintf(stderr,
            PROG ": the credentials the server issued are kept in %s; copy them to the "
                 "device yourself, then delete them\n",
            run->stage);
    run->stage[0] = 0;
  } else if (rc == 0) {
    printf("Copied %d file%s to %s\n", n, n == 1 ? "" : "s", a->target);
  }
  return rc;
}

/* ---- main ------------------------------------------------------------------------- */

static void run_free(cp_run *run) {
  unstage(run);
  config_free(&run->cfg);
  for (int i = 0; i < FILE_COUNT; i++)
    free(run->files[i].path);
  credzip_free(&run->zip);
  tls_creds_free(&run->prov);
  free(run->ca_cert_pem);
  free_secret(run->ca_key_pem);
  free(run->server_ca_pem);
  free_secret(run->key_pem);
  free(run->cert_pem);
  free(run->root_pem);
}

static int run_provider(const cp_args *a) {
  cp_run run;
  memset(&run, 0, sizeof(run));
  config_init(&run.cfg);
  int rc = resolve_paths(a, &run);
  if (!rc) rc = read_inputs(a, &run);
  if (!rc && (a->local || !a->target)) rc = prepare_local(a, &run);
  if (!rc) {
    if (a->cn) {
      snprintf(run.device_id, sizeof(run.device_id), "%s", a->cn);
    } else {
      rng r;
      rng_seed(&r, 0);
      idgen_readable(&r, run.device_id, sizeof(run.device_id));
    }
    rc = a->fleet_ca ? make_with_fleet_ca(a, &run) : make_by_registering(a, &run);
  }
  if (!rc) rc = choose_extras(a, &run);
  cp_file *files[FILE_COUNT];
  int n = rc ? 0 : wanted(a, &run, files);
  if (!rc && (a->local || !a->target)) rc = write_local(a->local, files, n);
  if (!rc && a->target) rc = copy_to_target(a, &run, files, n);
  run_free(&run);
  return rc;
}

int main(int argc, char **argv) {
  cp_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  if ((rc = check_args(&a))) return rc;
  log_set_level(LOG_WARN);
  http_global_init();
  tls_global_init();
  rc = run_provider(&a);
  http_global_cleanup();
  return rc;
}
