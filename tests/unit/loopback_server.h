/* loopback_server.h - a tiny HTTP peer on 127.0.0.1 for unit tests that need a real
 * socket (streaming, Range, events). One thread accepts connections one at a time and hands
 * each to the test's serve callback, then half-closes and drains it. Header-only: each test
 * program includes it once (cmocka must be included first). */
#ifndef OTAD_TEST_LOOPBACK_SERVER_H
#define OTAD_TEST_LOOPBACK_SERVER_H

#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct loopback_server {
  int fd;
  int port; /* set by loopback_start() */
  pthread_t thread;
  void (*serve)(void *ctx, int conn); /* answers one accepted connection */
  void *ctx;
} loopback_server;

/* Sends all of p, unless the client went away (-1). */
static inline int loopback_send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
    if (k <= 0) return -1;
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

static void *loopback_main(void *arg) {
  loopback_server *l = arg;
  for (;;) {
    int c = accept(l->fd, NULL, NULL);
    if (c < 0) break;
    l->serve(l->ctx, c);
    shutdown(c, SHUT_WR);
    char drain[256];
    while (recv(c, drain, sizeof(drain), 0) > 0) {
    }
    close(c);
  }
  return NULL;
}

/* Listens on an ephemeral loopback port and starts the accepting thread. */
static inline void loopback_start(loopback_server *l, void (*serve)(void *, int), void *ctx) {
  l->serve = serve;
  l->ctx = ctx;
  l->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(l->fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(l->fd, 8), 0);
  socklen_t al = sizeof(a);
  getsockname(l->fd, (struct sockaddr *)&a, &al);
  l->port = ntohs(a.sin_port);
  assert_int_equal(pthread_create(&l->thread, NULL, loopback_main, l), 0);
}

/* Wakes accept(), joins the thread, closes the socket. */
static inline void loopback_stop(loopback_server *l) {
  shutdown(l->fd, SHUT_RDWR);
  pthread_join(l->thread, NULL);
  close(l->fd);
}

#endif
