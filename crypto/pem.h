/* pem.h - DER to PEM, for certificates, keys and public keys made or read with wolfSSL. */
#ifndef OTAD_PEM_H
#define OTAD_PEM_H

#include <stddef.h>
#include <stdint.h>

/* der (of wolfSSL's type: CERT_TYPE, PKCS8_PRIVATEKEY_TYPE, PUBLICKEY_TYPE, ...) as a
 * NUL-terminated heap PEM string, or NULL when out of memory or wolfSSL refuses (a
 * half-written buffer is wiped before it is freed: it may hold a key). */
char *pem_from_der(const uint8_t *der, size_t len, int type);

#endif
