/* serve.c - the HTTPS daemon: libmicrohttpd on GnuTLS, with poll() and a thread pool by
 * default. A fleet made before the Uptane repositories gets them (Ed25519 keys) when serve
 * starts.
 *
 * The event loop (--event-loop): libmicrohttpd 0.9.75 in epoll mode busy-loops while a TLS
 * handshake waits for the client (its handshake reads the socket itself, so the connection
 * never leaves the ready list until the handshake is over): with many devices connecting,
 * the server burns a core on epoll_wait(0)/recv() = EAGAIN (measured: 3 times the CPU of
 * poll() for the same fleet). poll() costs time per open connection at every wake-up, which
 * only matters with thousands of idle keep-alive connections; `threads` (a thread per
 * connection, each blocked in poll() on its one socket) serves those without either cost.
 *
 * Clients are asked for a certificate trusting the fleet's CAs (provisioning, device, and the
 * uploaded fleet CAs, which are read once here: a new one is trusted after a restart), but
 * the handshake does not insist: api.c verifies the chain per request and answers 401/403
 * with a JSON body, as a real gateway does. Signals are blocked before the daemon starts, so
 * its threads inherit the mask and the main thread alone waits for SIGTERM/SIGINT.
 */
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api.h"
#include "files.h"
#include "fleet.h"
#include "fleet_cas.h"
#include "tls_session.h"
#include "uptane_repo.h"
#include "utctime.h"

#define MIN_CONNECTIONS 10000
#define MAX_CONNECTIONS 1000000
#define FDS_RESERVED 64 /* database, log, listening sockets, epoll */
#define CONNECTION_TIMEOUT_S 120
#define LISTEN_BACKLOG 4096
#define THREAD_STACK_BYTES (512 * 1024) /* --event-loop threads: a thread per connection */

/* Raises the open-file limit as far as allowed; returns the connection limit it permits. */
static unsigned connection_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return MIN_CONNECTIONS;
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t want = rl.rlim_max == RLIM_INFINITY ? MAX_CONNECTIONS + FDS_RESERVED : rl.rlim_max;
    struct rlimit raised = {want, rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl.rlim_cur = want;
  }
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > MAX_CONNECTIONS + FDS_RESERVED)
    return MAX_CONNECTIONS;
  unsigned limit = rl.rlim_cur > FDS_RESERVED + 16 ? (unsigned)(rl.rlim_cur - FDS_RESERVED) : 16;
  if (limit < MIN_CONNECTIONS)
    fprintf(stderr, "ota-server: warning: open-file limit %llu allows only %u connections\n",
            (unsigned long long)rl.rlim_cur, limit);
  return limit;
}

/* Reads a PEM file of the fleet into a NUL-terminated string. */
static char *read_pem(const char *dir, const char *name) {
  char *path = path_join(dir, name), *text = NULL;
  int rc = path ? file_read(path, &text, NULL) : -ENOMEM;
  if (rc < 0) fprintf(stderr, "ota-server: %s: %s\n", path ? path : name, strerror(-rc));
  free(path);
  return rc < 0 ? NULL : text;
}

static int parse_bind(const char *addr, int port, struct sockaddr_storage *ss, bool *v6) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    *v6 = false;
    return 0;
  }
  if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    *v6 = true;
    return 0;
  }
  return -1;
}

/* Says which fleet CAs the server trusts, and warns about expired ones. */
static void report_fleet_cas(const fleet_ca_set *cas) {
  time_t now = time(NULL);
  for (size_t i = 0; i < cas->n; i++) {
    char expiry[UTC_ISO_LEN];
    time_t not_after = gnutls_x509_crt_get_expiration_time(cas->cas[i].crt);
    utc_iso(not_after, expiry);
    if (not_after < now)
      fprintf(stderr,
              "ota-server: warning: fleet CA '%s' expired on %s: its devices are refused "
              "(certificate_expired)\n",
              cas->cas[i].name, expiry);
    else
      fprintf(stderr, "ota-server: trusting fleet CA '%s' (expires %s)\n", cas->cas[i].name,
              expiry);
  }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  fputs("ota-server: httpd: ", stderr);
  vfprintf(stderr, fmt, ap);
}

int serve_run(const serve_options *o) {
  fleet_config conf;
  if (!fleet_exists(o->dir)) {
    fprintf(stderr, "ota-server: %s is not a fleet directory (run `ota-server init %s`)\n", o->dir,
            o->dir);
    return 1;
  }
  if (fleet_config_read(o->dir, &conf) != 0) return 1;
  int port = o->port >= 0 ? o->port : conf.port;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned threads = o->threads > 0 ? (unsigned)o->threads : cpus > 0 ? (unsigned)cpus : 1;
  struct sockaddr_storage ss;
  bool v6 = false;
  if (parse_bind(o->bind, port, &ss, &v6) != 0) {
    fprintf(stderr, "ota-server: --bind %s: not an IPv4 or IPv6 address\n", o->bind);
    return 1;
  }

  if (repo_ensure(o->dir, TUF_KEY_ED25519, false) != 0) return 1; /* a fleet from before Uptane */
  fleet_ca_set fleet_cas = {0};
  if (fleet_ca_set_load(o->dir, &fleet_cas) != 0) return 1;
  api_options ao = {.device_key = o->device_key_set ? o->device_key : conf.device_key,
                    .p12 = o->p12,
                    .faults = o->faults,
                    .faults_seed = o->faults_seed,
                    .fleet_cas = &fleet_cas,
                    .quiet = o->quiet};
  api *a = NULL;
  char *key = read_pem(o->dir, FLEET_SERVER_KEY), *crt = read_pem(o->dir, FLEET_SERVER_CRT);
  char *prov_ca = read_pem(o->dir, FLEET_PROV_CA_CRT),
       *dev_ca = read_pem(o->dir, FLEET_DEVICE_CA_CRT);
  char *trust = NULL, *pid_path = path_join(o->dir, FLEET_PID);
  int status = 1;
  struct MHD_Daemon *d = NULL;
  tls_tickets tickets = {0};
  if (!key || !crt || !prov_ca || !dev_ca || !pid_path) goto out;
  if (server_cert_make(o->dir, o->server_cert, &key, &crt) != 0) goto out;
  if (asprintf(&trust, "%s%s%s", prov_ca, dev_ca, fleet_cas.pem) < 0) {
    trust = NULL;
    goto out;
  }
  if (api_create(o->dir, &ao, &a) != 0) goto out;
  report_fleet_cas(&fleet_cas);

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);

  unsigned flags =
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
  switch (o->event_loop) {
  case SERVE_LOOP_POLL: flags |= MHD_USE_POLL; break;
  case SERVE_LOOP_EPOLL: flags |= MHD_USE_EPOLL; break;
  case SERVE_LOOP_THREADS: flags |= MHD_USE_POLL | MHD_USE_THREAD_PER_CONNECTION; break;
  }
  if (api_holds_connections(a)) flags |= MHD_ALLOW_SUSPEND_RESUME; /* stall, trickle faults */
  bool per_connection = o->event_loop == SERVE_LOOP_THREADS;
  if (tls_tickets_init(&tickets) < 0) /* resumption is an optimisation: serve without it */
    fprintf(stderr, "ota-server: warning: no session tickets (no random key): every "
                    "connection does a full TLS handshake\n");
  d = MHD_start_daemon(
      flags, (uint16_t)port, NULL, NULL, api_handle, a, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
      threads > 1 && !per_connection ? threads : 0, MHD_OPTION_THREAD_STACK_SIZE,
      (size_t)(per_connection ? THREAD_STACK_BYTES : 0), MHD_OPTION_CONNECTION_LIMIT,
      connection_limit(), MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)LISTEN_BACKLOG, MHD_OPTION_NOTIFY_COMPLETED,
      api_completed, a, MHD_OPTION_NOTIFY_CONNECTION, tls_on_connection, &tickets,
      MHD_OPTION_HTTPS_PRIORITIES, TLS_SERVER_PRIORITIES, MHD_OPTION_HTTPS_MEM_KEY, key,
      MHD_OPTION_HTTPS_MEM_CERT, crt, MHD_OPTION_HTTPS_MEM_TRUST, trust, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "ota-server: cannot listen on %s port %d (in use? see messages above)\n",
            o->bind, port);
    goto out;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  if (info && info->port) port = info->port;

  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  int rc = file_write(pid_path, pid, (size_t)n, 0644);
  if (rc < 0) {
    fprintf(stderr, "ota-server: %s: %s\n", pid_path, strerror(-rc));
    goto out;
  }
  fprintf(stderr, "ota-server: listening on https://%s%s%s:%d\n", v6 ? "[" : "", o->bind,
          v6 ? "]" : "", port);
  fflush(stderr);

  int sig = 0;
  while (sigwait(&stop, &sig) != 0)
    ;
  fprintf(stderr, "ota-server: %s, stopping\n", strsignal(sig));
  unlink(pid_path);
  status = 0;

out:
  api_release_connections(a); /* a daemon must not stop with suspended connections */
  if (d) MHD_stop_daemon(d);
  api_free(a);
  tls_tickets_free(&tickets);
  if (key) {
    memset(key, 0, strlen(key));
    free(key);
  }
  free(crt);
  free(prov_ca);
  free(dev_ca);
  free(trust);
  free(pid_path);
  fleet_ca_set_free(&fleet_cas);
  return status;
}
