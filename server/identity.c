/* identity.c - verifies a TLS client's certificate chain against one CA at a time.
 *
 * Each anchor is tried in turn: provisioning CA, device CA, then the fleet CAs in upload
 * order. The first anchor the chain verifies against wins; failing that, the first one it
 * would verify against with the clock ignored names the refusal (expired, not yet valid).
 * Fleet CAs' certificates must also allow TLS client use when they name their purposes.
 *
 * The cache: a verdict depends only on the certificates, the anchors (fixed while serving)
 * and the clock, so an accepted chain is remembered with the window in which every one of
 * its certificates and its CA are valid, and is taken again only inside that window; outside
 * it, or for a chain that was refused, the chain is verified again. The key is a SHA-256 over
 * the DER certificates; the table is emptied when it reaches CACHE_MAX chains.
 */
#include "identity.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "pki.h"

#define TIMELESS (GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS)
#define CACHE_BUCKETS 65536u /* a power of two */
#define CACHE_MAX 262144u    /* chains remembered at most (about 300 bytes each) */
#define KEY_LEN 32

/* One accepted chain: its verdict, and its strings after the struct (cn, subject, issuer). */
typedef struct cache_entry {
  struct cache_entry *next;
  unsigned char key[KEY_LEN];
  time_t valid_from, valid_until; /* the verdict holds for valid_from <= now < valid_until */
  enum identity_role role;
  const char *fleet_ca;
  time_t not_before, not_after;
  char strings[];
} cache_entry;

struct identity_cache {
  pthread_mutex_t lock;
  cache_entry **buckets; /* CACHE_BUCKETS chains, allocated on the first store */
  size_t n;
  unsigned long long hits, verified;
};

static void cache_clear_locked(identity_cache *c) {
  for (size_t i = 0; c->buckets && i < CACHE_BUCKETS; i++) {
    cache_entry *e = c->buckets[i];
    while (e) {
      cache_entry *next = e->next;
      free(e);
      e = next;
    }
    c->buckets[i] = NULL;
  }
  c->n = 0;
}

static identity_cache *cache_new(void) {
  identity_cache *c = calloc(1, sizeof *c);
  if (c && pthread_mutex_init(&c->lock, NULL) != 0) {
    free(c);
    return NULL;
  }
  return c;
}

static void cache_free(identity_cache *c) {
  if (!c) return;
  cache_clear_locked(c);
  free(c->buckets);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

static size_t bucket_of(const unsigned char key[KEY_LEN]) {
  uint32_t h;
  memcpy(&h, key, sizeof h);
  return h & (CACHE_BUCKETS - 1);
}

/* SHA-256 over each certificate's length and bytes. */
static int chain_key(const gnutls_datum_t *certs, unsigned n, unsigned char key[KEY_LEN]) {
  gnutls_hash_hd_t h;
  if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) return -1;
  int rc = 0;
  for (unsigned i = 0; i < n && rc == 0; i++) {
    unsigned char len[4] = {(unsigned char)(certs[i].size >> 24),
                            (unsigned char)(certs[i].size >> 16),
                            (unsigned char)(certs[i].size >> 8), (unsigned char)certs[i].size};
    if (gnutls_hash(h, len, sizeof len) < 0 || gnutls_hash(h, certs[i].data, certs[i].size) < 0)
      rc = -1;
  }
  gnutls_hash_deinit(h, key);
  return rc;
}

/* Fills out from a remembered verdict valid at now: true, or false when there is none. */
static bool cache_lookup(identity_cache *c, const unsigned char key[KEY_LEN], time_t now,
                         identity *out) {
  bool found = false;
  pthread_mutex_lock(&c->lock);
  for (cache_entry *e = c->buckets ? c->buckets[bucket_of(key)] : NULL; e; e = e->next) {
    if (memcmp(e->key, key, KEY_LEN) != 0) continue;
    if (now < e->valid_from || now >= e->valid_until) break; /* verify again */
    const char *cn = e->strings, *subject = cn + strlen(cn) + 1,
               *issuer = subject + strlen(subject) + 1;
    out->role = e->role;
    out->fleet_ca = e->fleet_ca;
    out->not_before = e->not_before;
    out->not_after = e->not_after;
    snprintf(out->cn, sizeof out->cn, "%s", cn);
    snprintf(out->subject, sizeof out->subject, "%s", subject);
    snprintf(out->issuer, sizeof out->issuer, "%s", issuer);
    c->hits++;
    found = true;
    break;
  }
  if (!found) c->verified++;
  pthread_mutex_unlock(&c->lock);
  return found;
}

/* Remembers an accepted verdict (replacing an older one of the same chain). */
static void cache_store(identity_cache *c, const unsigned char key[KEY_LEN], time_t valid_from,
                        time_t valid_until, const identity *id) {
  size_t lc = strlen(id->cn) + 1, ls = strlen(id->subject) + 1, li = strlen(id->issuer) + 1;
  cache_entry *e = malloc(sizeof *e + lc + ls + li);
  if (!e) return; /* remembering is an optimisation */
  memcpy(e->key, key, KEY_LEN);
  e->valid_from = valid_from;
  e->valid_until = valid_until;
  e->role = id->role;
  e->fleet_ca = id->fleet_ca;
  e->not_before = id->not_before;
  e->not_after = id->not_after;
  memcpy(e->strings, id->cn, lc);
  memcpy(e->strings + lc, id->subject, ls);
  memcpy(e->strings + lc + ls, id->issuer, li);
  pthread_mutex_lock(&c->lock);
  if (!c->buckets && !(c->buckets = calloc(CACHE_BUCKETS, sizeof *c->buckets))) {
    pthread_mutex_unlock(&c->lock);
    free(e);
    return;
  }
  if (c->n >= CACHE_MAX) cache_clear_locked(c);
  cache_entry **p = &c->buckets[bucket_of(key)];
  while (*p && memcmp((*p)->key, key, KEY_LEN) != 0)
    p = &(*p)->next;
  if (*p) { /* re-verified after its window: replace */
    e->next = (*p)->next;
    free(*p);
  } else {
    e->next = NULL;
    c->n++;
  }
  *p = e;
  pthread_mutex_unlock(&c->lock);
}

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
  if (!(a->cache = cache_new())) return GNUTLS_E_MEMORY_ERROR;
  a->provisioning_from = gnutls_x509_crt_get_activation_time(provisioning_ca);
  a->provisioning_until = gnutls_x509_crt_get_expiration_time(provisioning_ca);
  a->device_from = gnutls_x509_crt_get_activation_time(device_ca);
  a->device_until = gnutls_x509_crt_get_expiration_time(device_ca);
  int rc = anchor_list(&a->provisioning, provisioning_ca);
  if (rc == 0) rc = anchor_list(&a->device, device_ca);
  if (rc < 0) identity_anchors_free(a);
  return rc;
}

int identity_anchors_add_fleet(identity_anchors *a, const char *name, gnutls_x509_crt_t ca) {
  identity_fleet_anchor *grown = realloc(a->fleet, (a->nfleet + 1) * sizeof *grown);
  if (!grown) return GNUTLS_E_MEMORY_ERROR;
  a->fleet = grown;
  identity_fleet_anchor *f = &a->fleet[a->nfleet];
  if (!(f->name = strdup(name))) return GNUTLS_E_MEMORY_ERROR;
  f->not_before = gnutls_x509_crt_get_activation_time(ca);
  f->not_after = gnutls_x509_crt_get_expiration_time(ca);
  if (a->cache) { /* verdicts were made without this anchor */
    pthread_mutex_lock(&a->cache->lock);
    cache_clear_locked(a->cache);
    pthread_mutex_unlock(&a->cache->lock);
  }
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
  cache_free(a->cache);
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

/* Sets out's role (or refusal); *anchor is the index of the anchor the chain verified
 * against (anchor_at()). */
static void classify(const identity_anchors *a, gnutls_x509_crt_t *chain, unsigned n, identity *out,
                     size_t *anchor) {
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
      *anchor = i;
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

/* The window in which every certificate of the chain and the anchor at index i are valid;
 * false when a time cannot be read. */
static bool validity_window(const identity_anchors *a, size_t i, gnutls_x509_crt_t *chain,
                            unsigned n, time_t *from, time_t *until) {
  *from = i == 0 ? a->provisioning_from : i == 1 ? a->device_from : a->fleet[i - 2].not_before;
  *until = i == 0 ? a->provisioning_until : i == 1 ? a->device_until : a->fleet[i - 2].not_after;
  for (unsigned k = 0; k < n; k++) {
    time_t nb = gnutls_x509_crt_get_activation_time(chain[k]);
    time_t na = gnutls_x509_crt_get_expiration_time(chain[k]);
    if (nb == (time_t)-1 || na == (time_t)-1) return false;
    if (nb > *from) *from = nb;
    if (na < *until) *until = na;
  }
  return *from != (time_t)-1 && *until != (time_t)-1 && *from < *until;
}

void identity_of_chain(const identity_anchors *a, const gnutls_datum_t *certs, unsigned n,
                       identity *out) {
  *out = (identity){.role = ROLE_NONE};
  snprintf(out->cn, sizeof out->cn, "-");
  if (!certs || n == 0) return;
  out->role = ROLE_UNTRUSTED;
  out->refusal = REFUSED_BAD_CHAIN;
  if (n > IDENTITY_CHAIN_MAX) return;
  unsigned char key[KEY_LEN];
  time_t now = time(NULL);
  bool keyed = a->cache && chain_key(certs, n, key) == 0;
  if (keyed && cache_lookup(a->cache, key, now, out)) return;
  gnutls_x509_crt_t chain[IDENTITY_CHAIN_MAX] = {0};
  unsigned imported = 0;
  for (; imported < n; imported++)
    if (gnutls_x509_crt_init(&chain[imported]) < 0 ||
        gnutls_x509_crt_import(chain[imported], &certs[imported], GNUTLS_X509_FMT_DER) < 0) {
      if (chain[imported]) gnutls_x509_crt_deinit(chain[imported]);
      break;
    }
  if (imported == n) {
    size_t anchor = 0;
    time_t from, until;
    describe(chain[0], out);
    classify(a, chain, n, out, &anchor);
    bool accepted = out->role == ROLE_PROVISIONING || out->role == ROLE_DEVICE ||
                    out->role == ROLE_FLEET_DEVICE;
    if (keyed && accepted && validity_window(a, anchor, chain, n, &from, &until))
      cache_store(a->cache, key, from, until, out);
  }
  for (unsigned i = 0; i < imported; i++)
    gnutls_x509_crt_deinit(chain[i]);
}

void identity_of(const identity_anchors *a, gnutls_session_t session, identity *out) {
  unsigned n = 0;
  const gnutls_datum_t *peers = session ? gnutls_certificate_get_peers(session, &n) : NULL;
  identity_of_chain(a, peers, peers ? n : 0, out);
}

void identity_cache_stats(const identity_anchors *a, unsigned long long *hits,
                          unsigned long long *verified) {
  *hits = *verified = 0;
  if (!a->cache) return;
  pthread_mutex_lock(&a->cache->lock);
  *hits = a->cache->hits;
  *verified = a->cache->verified;
  pthread_mutex_unlock(&a->cache->lock);
}
