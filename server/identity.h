/* identity.h - who is on the other end of a TLS connection, by client certificate.
 *
 * libmicrohttpd asks every client for a certificate (trusting the fleet's CAs) but lets the
 * handshake finish without one, or with one no CA vouches for, so the handler can answer
 * 401/403 with a JSON body. Here the presented chain is verified against each CA on its own
 * (provisioning, device, then every uploaded fleet CA), which tells the kinds of certificate
 * apart, and the subject CN is read. A chain that would verify but for the clock is told
 * apart from one no CA signed, so the client learns which of the two it has.
 *
 * Verifying costs a certificate parse and an ECDSA (or RSA) verification per request, which
 * is more than the rest of a metadata poll: accepted chains are remembered (by a SHA-256 of
 * the certificates) until the first certificate of the chain, or its CA, expires.
 */
#ifndef OTA_SERVER_IDENTITY_H
#define OTA_SERVER_IDENTITY_H

#include <stddef.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

enum identity_role {
  ROLE_NONE = 0,     /* no client certificate */
  ROLE_UNTRUSTED,    /* refused; `refusal` says why */
  ROLE_PROVISIONING, /* chains to the provisioning CA: may only POST /devices */
  ROLE_DEVICE,       /* chains to the device CA: cn is the device UUID */
  ROLE_FLEET_DEVICE  /* chains to an uploaded fleet CA: cn is the device ID (implicit) */
};

enum identity_refusal {
  REFUSED_UNKNOWN_CA = 0, /* chains to none of the server's CAs */
  REFUSED_EXPIRED,        /* chains to one, but the certificate or a CA of the chain expired */
  REFUSED_NOT_YET_VALID,  /* chains to one, but the certificate is not valid yet */
  REFUSED_WRONG_PURPOSE,  /* a fleet CA's, but its extendedKeyUsage excludes TLS clients */
  REFUSED_BAD_CN,         /* chains to one, but has no CN of 1 to 127 printable characters */
  REFUSED_BAD_CHAIN       /* more than IDENTITY_CHAIN_MAX certificates, or one does not parse */
};

#define IDENTITY_CN_MAX 128
#define IDENTITY_DN_MAX 256
#define IDENTITY_CHAIN_MAX 8

typedef struct identity {
  enum identity_role role;
  enum identity_refusal refusal; /* ROLE_UNTRUSTED only */
  char cn[IDENTITY_CN_MAX];      /* "-" unless role is PROVISIONING, DEVICE or FLEET_DEVICE */
  const char *fleet_ca;          /* the fleet CA the chain leads to (FLEET_DEVICE, and refusals
                                    of such chains), owned by the anchors; else NULL */
  char subject[IDENTITY_DN_MAX]; /* of the presented certificate, for messages ("" if none) */
  char issuer[IDENTITY_DN_MAX];
  time_t not_before, not_after; /* of the presented certificate (0 if none) */
} identity;

/* One uploaded fleet CA, alone in its own list. */
typedef struct identity_fleet_anchor {
  char *name;
  gnutls_x509_trust_list_t list;
  time_t not_before, not_after; /* of the CA certificate */
} identity_fleet_anchor;

typedef struct identity_cache identity_cache; /* accepted chains (identity.c) */

/* The trust anchors, each alone in its own list. */
typedef struct identity_anchors {
  gnutls_x509_trust_list_t provisioning;
  gnutls_x509_trust_list_t device;
  time_t provisioning_from, provisioning_until; /* the CAs' validity */
  time_t device_from, device_until;
  identity_fleet_anchor *fleet;
  size_t nfleet;
  identity_cache *cache;
} identity_anchors;

/* Builds the anchors from the CA certificates (copied); no fleet CAs yet. Returns 0 or a
 * GnuTLS error. */
int identity_anchors_init(identity_anchors *a, gnutls_x509_crt_t provisioning_ca,
                          gnutls_x509_crt_t device_ca);

/* Adds an uploaded fleet CA (copied) under its name. Returns 0 or a GnuTLS error. */
int identity_anchors_add_fleet(identity_anchors *a, const char *name, gnutls_x509_crt_t ca);

/* Frees every list. */
void identity_anchors_free(identity_anchors *a);

/* Classifies the peer of session (NULL session: ROLE_NONE). Thread-safe. */
void identity_of(const identity_anchors *a, gnutls_session_t session, identity *out);

/* Classifies a chain of DER certificates, leaf first, as identity_of() does (n = 0: no
 * certificate), the remembered verdicts included. */
void identity_of_chain(const identity_anchors *a, const gnutls_datum_t *certs, unsigned n,
                       identity *out);

/* How many verdicts came from the cache and how many chains were verified, since the start. */
void identity_cache_stats(const identity_anchors *a, unsigned long long *hits,
                          unsigned long long *verified);

#endif
