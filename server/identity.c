/* identity.c - verifies a TLS client's certificate chain against one fleet CA at a time. */
#include "identity.h"

#include <stdio.h>
#include <string.h>

#include "pki.h"

#define MAX_CHAIN 8

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
  a->provisioning = NULL;
  a->device = NULL;
  int rc = anchor_list(&a->provisioning, provisioning_ca);
  if (rc == 0 && (rc = anchor_list(&a->device, device_ca)) < 0) identity_anchors_free(a);
  return rc;
}

void identity_anchors_free(identity_anchors *a) {
  if (a->provisioning) gnutls_x509_trust_list_deinit(a->provisioning, 1);
  if (a->device) gnutls_x509_trust_list_deinit(a->device, 1);
  a->provisioning = NULL;
  a->device = NULL;
}

static int verifies(gnutls_x509_trust_list_t list, gnutls_x509_crt_t *chain, unsigned n) {
  unsigned status = 0;
  return gnutls_x509_trust_list_verify_crt(list, chain, n, 0, &status, NULL) == 0 && status == 0;
}

void identity_of(const identity_anchors *a, gnutls_session_t session, identity *out) {
  out->role = ROLE_NONE;
  snprintf(out->cn, sizeof out->cn, "-");
  unsigned n = 0;
  const gnutls_datum_t *peers = session ? gnutls_certificate_get_peers(session, &n) : NULL;
  if (!peers || n == 0) return;
  out->role = ROLE_UNTRUSTED;
  if (n > MAX_CHAIN) return;
  gnutls_x509_crt_t chain[MAX_CHAIN] = {0};
  unsigned imported = 0;
  for (; imported < n; imported++)
    if (gnutls_x509_crt_init(&chain[imported]) < 0 ||
        gnutls_x509_crt_import(chain[imported], &peers[imported], GNUTLS_X509_FMT_DER) < 0) {
      if (chain[imported]) gnutls_x509_crt_deinit(chain[imported]);
      break;
    }
  if (imported == n) {
    enum identity_role role = ROLE_UNTRUSTED;
    if (verifies(a->provisioning, chain, n))
      role = ROLE_PROVISIONING;
    else if (verifies(a->device, chain, n))
      role = ROLE_DEVICE;
    if (role != ROLE_UNTRUSTED && pki_crt_cn(chain[0], out->cn, sizeof out->cn) == 0)
      out->role = role;
    else
      snprintf(out->cn, sizeof out->cn, "-");
  }
  for (unsigned i = 0; i < imported; i++)
    gnutls_x509_crt_deinit(chain[i]);
}
