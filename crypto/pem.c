/* pem.c - DER to PEM through wolfSSL (pem.h). */
#include "pem.h"

#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>

char *pem_from_der(const uint8_t *der, size_t len, int type) {
  int need = wc_DerToPem(der, (word32)len, NULL, 0, type);
  if (need <= 0) return NULL;
  char *pem = malloc((size_t)need + 1);
  if (!pem) return NULL;
  int n = wc_DerToPem(der, (word32)len, (byte *)pem, (word32)need, type);
  if (n <= 0) {
    explicit_bzero(pem, (size_t)need + 1);
    free(pem);
    return NULL;
  }
  pem[n] = '\0';
  return pem;
}
