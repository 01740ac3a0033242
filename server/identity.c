/* identity.c - verifies a TLS client's certificate chain against one CA at a time.
 *
 * Each anchor is tried in turn: provisioning CA, device CA, then the fleet CAs in upload
 * order. The first anchor the chain verifies against wins; failing that, the first one it
 * would verify against with the clock ignored names the refusal (expired, not yet valid).
 * Fleet CAs' certificates must also allow TLS client use when they name their purposes.
 */
#include "identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki.h"

#define TIMELESS (GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS)

/* How a chain stands with one anchor. */
enum standing {
  CHAIN_UNRELATED,
  CHAIN_OK,
  CHAIN_EXPIRED,
  CHAIN_NOT_YET_VALID,
  CHAIN_WRONG_PURPOSE
};

/* A trust list owning a copy of one CA certificate. */
static int anchor_list(gnutls_x509_trust_list_t *list, gnutls_x509_crt_t ca) {
  gnutls_datum_t der = {0};
  gnutls_x509_crt_t copy = NULL;
  int rc = gnutls_x509_trust_list_init(list, 0);
  if (rc < 0) return rc;
  if ((rc = pki_crt_der(ca, &der)) < 0 || (rc = gnutls_x509_crt_init(&copy)) < 0 ||
      (rc = gnutls_x509_crt_import(copy, &der, GNUTLS_X509_FMT_DER)) < 0)
    goto fail;
  rc = gnutls_x509_trust_list_add_cas(*list, &copy, 1, 0); /* the list owns copy now */
  if (rc != 1) {
    rc = rc < 0 ? rc : GNUTLS_E_CERTIFICATE_ERROR;
    goto fail;
  }
  gnutls_free(der.data);
  return 0;
fail:
  if (copy) gnutls_x509_crt_deinit(copy);
  gnutls_free(der.data);
  gnutls_x509_trust_list_deinit(*list, 1);
  *list = NULL;
  return rc;
}

int identity_anchors_init(identity_anchors *a, gnutls_x509_crt_t provisioning_ca,
                          gnutls_x509_crt_t device_ca) {
  *a = (identity_anchors){0};
  int rc = anchor_list(&a->provisioning, provisioning_ca);
  if (rc == 0 && (rc = anchor_list(&a->device, device_ca)) < 0) identity_anchors_free(a);
  return rc;
}

int identity_anchors_add_fleet(identity_anchors *a, const char *name, gnutls_x509_crt_t ca) {
  identity_fleet_anchor *grown = realloc(a->fleet, (a->nfleet + 1) * sizeof *grown);
  if (!grown) return GNUTLS_E_MEMORY_ERROR;
  a->fleet = grown;
  identity_fleet_anchor *f = &a->fleet[a->nfleet];
  if (!(f->name = strdup(name))) return GNUTLS_E_MEMORY_ERROR;
  int rc = anchor_list(&f->list, ca);
  if (rc < 0) {
    free(f->name);
    return rc;
  }
  a->nfleet++;
  return 0;
}

void identity_anchors_free(identity_anchors *a) {
  if (a->provisioning) gnutls_x509_trust_list_deinit(a->provisioning, 1);
  if (a->device) gnutls_x509_trust_list_deinit(a->device, 1);
  for (size_t i = 0; i < a->nfleet; i++) {
    gnutls_x509_trust_list_deinit(a->fleet[i].list, 1);
    free(a->fleet[i].name);
  }
  free(a->fleet);
  *a = (identity_anchors){0};
}

/* GnuTLS's verification status (0: trusted) of chain against list; purpose may be NULL. */
static unsigned verify_status(gnutls_x509_trust_list_t list, gnutls_x509_crt_t *chain, unsigned n,
                              unsigned flags, const char *purpose) {
  gnutls_typed_vdata_st data = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                .data = (unsigned char *)purpose};
  unsigned status = 0;
  if (gnutls_x509_trust_list_verify_crt2(list, chain, n, purpose ? &data : NULL, purpose ? 1 : 0,
                                         flags, &status, NULL) < 0)
    return GNUTLS_CERT_INVALID;
  return status;
}

static enum standing standing_of(gnutls_x509_trust_list_t list, gnutls_x509_crt_t *chain,
                                 unsigned n, const char *purpose) {
  unsigned status = verify_status(list, chain, n, 0, purpose);
  if (status == 0) return CHAIN_OK;
  if (verify_status(list, chain, n, TIMELESS, NULL) != 0) return CHAIN_UNRELATED;
  if (purpose && verify_status(list, chain, n, TIMELESS, purpose) != 0) return CHAIN_WRONG_PURPOSE;
  if (status & GNUTLS_CERT_NOT_ACTIVATED) return CHAIN_NOT_YET_VALID;
  if (status & GNUTLS_CERT_EXPIRED) return CHAIN_EXPIRED;
  return CHAIN_UNRELATED; /* nothing else depends on the clock; not expected */
}

/* The anchor with index i: provisioning, device, then the fleet CAs. */
static gnutls_x509_trust_list_t anchor_at(const identity_anchors *a, size_t i,
                                          enum identity_role *role, const char **fleet_ca) {
  *fleet_ca = NULL;
  if (i == 0) {
    *role = ROLE_PROVISIONING;
    return a->provisioning;
  }
  if (i == 1) {
    *role = ROLE_DEVICE;
    return a->device;
  }
  *role = ROLE_FLEET_DEVICE;
  *fleet_ca = a->fleet[i - 2].name;
  return a->fleet[i - 2].list;
}

static int printable(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return 0;
  return *s != '\0';
}

/* Subject, issuer and validity of the presented certificate, for messages. */
static void describe(gnutls_x509_crt_t crt, identity *out) {
  size_t n = sizeof out->subject;
  if (gnutls_x509_crt_get_dn(crt, out->subject, &n) < 0) out->subject[0] = '\0';
  n = sizeof out->issuer;
  if (gnutls_x509_crt_get_issuer_dn(crt, out->issuer, &n) < 0) out->issuer[0] = '\0';
  out->not_before = gnutls_x509_crt_get_activation_time(crt);
  out->not_after = gnutls_x509_crt_get_expiration_time(crt);
}

static void classify(const identity_anchors *a, gnutls_x509_crt_t *chain, unsigned n,
                     identity *out) {
  enum standing best = CHAIN_UNRELATED;
  enum identity_role role = ROLE_UNTRUSTED;
  const char *fleet_ca = NULL;
  for (size_t i = 0; i < 2 + a->nfleet && best != CHAIN_OK; i++) {
    enum identity_role r;
    const char *f;
    gnutls_x509_trust_list_t list = anchor_at(a, i, &r, &f);
    enum standing st = standing_of(list, chain, n, f ? GNUTLS_KP_TLS_WWW_CLIENT : NULL);
    if (st == CHAIN_OK || (st != CHAIN_UNRELATED && best == CHAIN_UNRELATED)) {
      best = st;
      role = r;
      fleet_ca = f;
    }
  }
  out->fleet_ca = fleet_ca;
  switch (best) {
  case CHAIN_UNRELATED: out->refusal = REFUSED_UNKNOWN_CA; return;
  case CHAIN_EXPIRED: out->refusal = REFUSED_EXPIRED; return;
  case CHAIN_NOT_YET_VALID: out->refusal = REFUSED_NOT_YET_VALID; return;
  case CHAIN_WRONG_PURPOSE: out->refusal = REFUSED_WRONG_PURPOSE; return;
  case CHAIN_OK: break;
  }
  if (pki_crt_cn(chain[0], out->cn, sizeof out->cn) != 0 || !printable(out->cn)) {
    snprintf(out->cn, sizeof out->cn, "-");
    out->refusal = REFUSED_BAD_CN;
    return;
  }
  out->role = role;
}

void identity_of(const identity_anchors *a, gnutls_session_t session, identity *out) {
  *out = (identity){.role = ROLE_NONE};
  snprintf(out->cn, sizeof out->cn, "-");
  unsigned n = 0;
  const gnutls_datum_t *peers = session ? gnutls_certificate_get_peers(session, &n) : NULL;
  if (!peers || n == 0) return;
  out->role = ROLE_UNTRUSTED;
  out->refusal = REFUSED_BAD_CHAIN;
  if (n > IDENTITY_CHAIN_MAX) return;
  gnutls_x509_crt_t chain[IDENTITY_CHAIN_MAX] = {0};
  unsigned imported = 0;
  for (; imported < n; imported++)
    if (gnutls_x509_crt_init(&chain[imported]) < 0 ||
        gnutls_x509_crt_import(chain[imported], &peers[imported], GNUTLS_X509_FMT_DER) < 0) {
      if (chain[imported]) gnutls_x509_crt_deinit(chain[imported]);
      break;
    }
  if (imported == n) {
    describe(chain[0], out);
    classify(a, chain, n, out);
  }
  for (unsigned i = 0; i < imported; i++)
    gnutls_x509_crt_deinit(chain[i]);
}
