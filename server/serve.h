/* serve.h - `ota-server serve`: the HTTPS daemon around the device API (api.h). */
#ifndef OTA_SERVER_SERVE_H
#define OTA_SERVER_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "pkcs12.h"
#include "pki.h"
#include "server_cert.h"

/* How libmicrohttpd waits for its sockets (see serve.c). */
enum serve_event_loop {
  SERVE_LOOP_POLL = 0, /* poll() in a pool of --threads threads (the default) */
  SERVE_LOOP_EPOLL,    /* epoll in the pool: spins during TLS handshakes (libmicrohttpd 0.9.75) */
  SERVE_LOOP_THREADS   /* a thread per connection: for many idle keep-alive connections */
};

typedef struct serve_options {
  const char *dir;
  int port;         /* -1: the port server.conf names (init's --port) */
  const char *bind; /* listening address, e.g. 127.0.0.1 or :: */
  int threads;      /* 0: one per CPU */
  enum serve_event_loop event_loop;
  const char *faults;                /* --faults SPEC or NULL */
  uint64_t faults_seed;              /* --faults-seed (the %RATE dice) */
  enum server_cert_kind server_cert; /* --server-cert: a certificate devices must refuse */
  enum p12_cert_cipher p12;          /* certificate-bag cipher of issued archives */
  bool device_key_set;               /* false: server.conf's device_key */
  enum pki_key_type device_key;
  bool quiet;
} serve_options;

/* Serves until SIGTERM or SIGINT. Returns the process exit code (0, or 1 on errors). */
int serve_run(const serve_options *o);

#endif
