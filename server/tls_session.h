/* tls_session.h - what serve.c sets on every TLS session libmicrohttpd makes: the cipher and
 * group preferences, and session tickets so that a device reconnecting for its next poll
 * resumes its session (a PSK handshake) instead of doing a full one.
 *
 * libmicrohttpd 0.9.75 has no option for tickets, but it creates each connection's GnuTLS
 * session before it calls the connection-notification callback and starts the handshake
 * after it, so the callback enables tickets on the session with the server's ticket key.
 */
#ifndef OTA_SERVER_TLS_SESSION_H
#define OTA_SERVER_TLS_SESSION_H

#include <stdbool.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>

/* GnuTLS priorities of the server: NORMAL, with the server's order deciding and the group
 * P-256 first. otad (wolfSSL) lists P-521 first among its groups but sends a P-256 key share:
 * GnuTLS's default (the client's order) answers a HelloRetryRequest for P-521, which costs a
 * round trip and two P-521 operations per handshake. */
extern const char TLS_SERVER_PRIORITIES[];

/* The ticket key of one server run; disabled (no tickets) when `enabled` is false. */
typedef struct tls_tickets {
  bool enabled;
  gnutls_datum_t key;
} tls_tickets;

/* Makes a fresh random ticket key (tickets do not outlive the process). 0 or a GnuTLS error. */
int tls_tickets_init(tls_tickets *t);

/* Wipes and frees the key. */
void tls_tickets_free(tls_tickets *t);

/* MHD_OPTION_NOTIFY_CONNECTION callback (cls: a tls_tickets): enables session tickets on each
 * new connection's session, and sends certificate requests without a list of CA names. */
void tls_on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);

#endif
