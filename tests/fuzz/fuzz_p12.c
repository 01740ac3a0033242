/* fuzz_p12.c - libFuzzer target: PKCS#12 parsing (the fleet key and the server's reply)
 * and certificate facts of what comes out. */
#include <stdint.h>
#include <stdlib.h>

#include "crypto/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) {
    tls_global_init();
    init = 1;
  }
  tls_creds c = {0};
  otad_errbuf eb;
  if (tls_p12_parse(data, size, "", &c, &eb) == 0) {
    tls_cert_info ci;
    tls_cert_info_pem(c.cert_pem, &ci, &eb);
    tls_key_matches_cert(c.key_pem, c.cert_pem, &eb);
    tls_creds_free(&c);
  }
  /* The same bytes as PEM text. */
  char *pem = malloc(size + 1);
  if (!pem) return 0;
  for (size_t i = 0; i < size; i++)
    pem[i] = data[i] ? (char)data[i] : ' ';
  pem[size] = 0;
  tls_cert_info ci;
  tls_cert_info_pem(pem, &ci, &eb);
  free(pem);
  return 0;
}
