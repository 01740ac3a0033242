/* tls_session.c - per-session TLS settings: priorities and session tickets (see the header).
 *
 * A resumed session carries the client certificate chain of the full handshake it resumes
 * (GnuTLS stores it in the ticket, which only this process can open), so api.c sees the same
 * peer certificates and verifies them again per request, as for a full handshake.
 */
#include "tls_session.h"

#include <stdio.h>
#include <string.h>

const char TLS_SERVER_PRIORITIES[] =
    "NORMAL:%SERVER_PRECEDENCE:-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519:+GROUP-SECP384R1:"
    "+GROUP-SECP521R1:+GROUP-FFDHE2048:+GROUP-FFDHE3072";

int tls_tickets_init(tls_tickets *t) {
  *t = (tls_tickets){0};
  int rc = gnutls_session_ticket_key_generate(&t->key);
  if (rc < 0) return rc;
  t->enabled = true;
  return 0;
}

void tls_tickets_free(tls_tickets *t) {
  if (t->key.data) {
    memset(t->key.data, 0, t->key.size);
    gnutls_free(t->key.data);
  }
  *t = (tls_tickets){0};
}

void tls_on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                       enum MHD_ConnectionNotificationCode code) {
  const tls_tickets *t = cls;
  if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (!info || !info->tls_session) return;
  /* The certificate request names no CAs: every client of this server has exactly one
   * certificate to offer, and a wolfSSL client keeps each name for the life of the
   * connection (about 1.2 KB per name per held connection on a fleet). */
  gnutls_certificate_send_x509_rdn_sequence((gnutls_session_t)info->tls_session, 1);
  if (!t || !t->enabled) return;
  int rc = gnutls_session_ticket_enable_server((gnutls_session_t)info->tls_session, &t->key);
  if (rc < 0) /* the handshake goes on, only without a ticket to resume */
    fprintf(stderr, "ota-server: session tickets: %s\n", gnutls_strerror(rc));
}
