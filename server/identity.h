/* identity.h - who is on the other end of a TLS connection, by client certificate.
 *
 * libmicrohttpd asks every client for a certificate (trusting both fleet CAs) but lets the
 * handshake finish without one, so the handler can answer 401/403 with a JSON body. Here the
 * presented chain is verified against each CA on its own, which tells a provisioning
 * certificate from a device certificate, and the subject CN is read.
 */
#ifndef OTA_SERVER_IDENTITY_H
#define OTA_SERVER_IDENTITY_H

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

enum identity_role {
  ROLE_NONE = 0,     /* no client certificate */
  ROLE_UNTRUSTED,    /* a certificate no fleet CA vouches for (or expired) */
  ROLE_PROVISIONING, /* chains to the provisioning CA: may only POST /devices */
  ROLE_DEVICE        /* chains to the device CA: cn is the device UUID */
};

#define IDENTITY_CN_MAX 128

typedef struct identity {
  enum identity_role role;
  char cn[IDENTITY_CN_MAX]; /* "-" unless role is PROVISIONING or DEVICE */
} identity;

/* The two trust anchors, each alone in its own list. */
typedef struct identity_anchors {
  gnutls_x509_trust_list_t provisioning;
  gnutls_x509_trust_list_t device;
} identity_anchors;

/* Builds the anchors from the CA certificates (copied). Returns 0 or a GnuTLS error. */
int identity_anchors_init(identity_anchors *a, gnutls_x509_crt_t provisioning_ca,
                          gnutls_x509_crt_t device_ca);

/* Frees both lists. */
void identity_anchors_free(identity_anchors *a);

/* Classifies the peer of session (NULL session: ROLE_NONE). */
void identity_of(const identity_anchors *a, gnutls_session_t session, identity *out);

#endif
