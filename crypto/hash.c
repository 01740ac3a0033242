/* hash.c - streaming SHA-256/SHA-512 over wolfCrypt (see hash.h). */
#include "hash.h"
#include "../core/hex.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int hash_init(hash_ctx *h, bool sha256, bool sha512) {
  memset(h, 0, sizeof(*h));
  if (!sha256 && !sha512) return OTAD_EINVAL;
  if (sha256 && wc_InitSha256(&h->sha256) != 0) return OTAD_ECRYPTO;
  if (sha512 && wc_InitSha512(&h->sha512) != 0) {
    if (sha256) wc_Sha256Free(&h->sha256);
    return OTAD_ECRYPTO;
  }
  h->want256 = sha256;
  h->want512 = sha512;
  h->ready = true;
  return 0;
}

int hash_update(hash_ctx *h, const void *data, size_t len) {
  if (!h->ready) return OTAD_EINVAL;
  const byte *p = data;
  while (len > 0) { /* wolfCrypt takes a word32 length */
    word32 n = len > 0x40000000u ? 0x40000000u : (word32)len;
    if (h->want256 && wc_Sha256Update(&h->sha256, p, n) != 0) return OTAD_ECRYPTO;
    if (h->want512 && wc_Sha512Update(&h->sha512, p, n) != 0) return OTAD_ECRYPTO;
    p += n;
    len -= n;
    h->bytes += n;
  }
  return 0;
}

int hash_final(hash_ctx *h, char *hex256, char *hex512) {
  if (hex256) hex256[0] = 0;
  if (hex512) hex512[0] = 0;
  if (!h->ready) return OTAD_EINVAL;
  int rc = 0;
  uint8_t d[WC_SHA512_DIGEST_SIZE];
  if (h->want256) {
    if (wc_Sha256Final(&h->sha256, d) != 0)
      rc = OTAD_ECRYPTO;
    else if (hex256)
      hex_encode(d, WC_SHA256_DIGEST_SIZE, hex256, false);
  }
  if (h->want512) {
    if (wc_Sha512Final(&h->sha512, d) != 0)
      rc = OTAD_ECRYPTO;
    else if (hex512)
      hex_encode(d, WC_SHA512_DIGEST_SIZE, hex512, false);
  }
  hash_free(h);
  return rc;
}

void hash_free(hash_ctx *h) {
  if (!h->ready) return;
  if (h->want256) wc_Sha256Free(&h->sha256);
  if (h->want512) wc_Sha512Free(&h->sha512);
  h->ready = false;
}

int hash_fd(hash_ctx *h, int fd, uint64_t len, otad_errbuf *eb) {
  uint8_t buf[32 * 1024]; /* pool threads have ample stack; keep it modest anyway */
  uint64_t off = 0;
  while (off < len) {
    size_t want = len - off < sizeof(buf) ? (size_t)(len - off) : sizeof(buf);
    ssize_t n = pread(fd, buf, want, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return otad_fail(eb, OTAD_EIO, "reading at offset %llu: %s", (unsigned long long)off,
                       strerror(errno));
    if (n == 0)
      return otad_fail(eb, OTAD_EIO, "file ends at %llu bytes, %llu expected",
                       (unsigned long long)off, (unsigned long long)len);
    int rc = hash_update(h, buf, (size_t)n);
    if (rc) return otad_fail(eb, rc, "hashing failed");
    off += (uint64_t)n;
  }
  return 0;
}

bool hash_hex_equal(const char *hex, const char *want) {
  return hex && want && hex[0] && strlen(hex) == strlen(want) && strcasecmp(hex, want) == 0;
}
