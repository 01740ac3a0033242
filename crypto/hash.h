/* hash.h - SHA-256 and SHA-512 of a stream, over wolfCrypt.
 *
 * A download is hashed as its bytes arrive, so a target is never held whole in memory to
 * be verified. One hash_ctx runs SHA-256, SHA-512 or both at once (Uptane targets may list
 * either, or both; every one listed is checked). The context is a plain struct the caller
 * embeds or allocates; nothing here allocates or touches a loop, so a context may be fed
 * on the libuv thread pool (re-hashing a partial file) and finished on the loop.
 */
#ifndef OTAD_HASH_H
#define OTAD_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/sha512.h>

#include "../core/error.h"

typedef struct hash_ctx {
  bool want256, want512;
  bool ready;     /* initialised and not yet finished */
  uint64_t bytes; /* fed so far */
  wc_Sha256 sha256;
  wc_Sha512 sha512;
} hash_ctx;

/* Starts h for the algorithms asked for (at least one). Returns 0 or OTAD_ECRYPTO. */
int hash_init(hash_ctx *h, bool sha256, bool sha512);

/* Feeds len bytes. Returns 0 or OTAD_ECRYPTO. */
int hash_update(hash_ctx *h, const void *data, size_t len);

/* Finishes h and writes the lower-case hex digests of the algorithms it runs (hex256:
 * 65 bytes, hex512: 129 bytes; either may be NULL; an algorithm not run gives ""). h is
 * released and must be initialised again before the next use. Returns 0 or OTAD_ECRYPTO. */
int hash_final(hash_ctx *h, char *hex256, char *hex512);

/* Releases h without a result (idempotent; also on a context never initialised if it was
 * zeroed). */
void hash_free(hash_ctx *h);

/* Feeds the first len bytes of the file open at fd (read from offset 0 with pread, the
 * file position is left alone) into h. Blocking: call it off the loop for large files.
 * Returns 0, OTAD_EIO (read error, or the file is shorter than len) or OTAD_ECRYPTO. */
int hash_fd(hash_ctx *h, int fd, uint64_t len, otad_errbuf *eb);

/* True when hex equals want, ignoring case ("" never equals). */
bool hash_hex_equal(const char *hex, const char *want);

#endif
