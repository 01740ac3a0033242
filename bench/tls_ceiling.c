/* tls_ceiling.c - otad-bench-tls: the public-key operations of a device's TLS 1.3 handshake
 * on our wolfSSL build, timed on one core, and the handshake rate they allow per core.
 *
 * A full handshake with an EC P-256 client certificate costs the client: an ECDHE key pair
 * and shared secret, two ECDSA verifications (the server certificate's signature by its CA,
 * and the server's CertificateVerify) and one ECDSA signature (its own CertificateVerify).
 * A resumed handshake (PSK with ECDHE) costs the key pair and the shared secret only; PSK
 * without ECDHE costs none. The symmetric part (key schedule, Finished, record protection of
 * a few KiB) is timed as HMAC-SHA256 operations. Times are the thread's CPU time, so other
 * processes on the machine slow the figures less than wall time would.
 *
 * Usage: otad-bench-tls [--seconds S] [--json]
 */
#include <wolfssl/options.h>

#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/curve25519.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HMACS_PER_HANDSHAKE 24 /* TLS 1.3 key schedule, Finished MACs, transcript: about */

typedef struct bench {
  WC_RNG rng;
  ecc_key p256, p256_peer, p521, p521_peer;
  curve25519_key x25519, x25519_peer;
  byte hash[WC_SHA256_DIGEST_SIZE];
  byte sig[ECC_MAX_SIG_SIZE];
  word32 sig_len;
  Hmac hmac;
  bool failed;
} bench;

typedef void (*op_fn)(bench *b);

static void fail_op(bench *b, const char *what, int rc) {
  if (!b->failed) fprintf(stderr, "otad-bench-tls: %s failed: %d\n", what, rc);
  b->failed = true;
}

static void ecc_keygen(bench *b, int curve, int size) {
  ecc_key k;
  int rc = wc_ecc_init(&k);
  if (rc == 0) rc = wc_ecc_make_key_ex(&b->rng, size, &k, curve);
  if (rc != 0) fail_op(b, "ECC key generation", rc);
  wc_ecc_free(&k);
}

static void ecc_shared(bench *b, ecc_key *priv, ecc_key *peer) {
  byte out[80];
  word32 len = sizeof out;
  int rc = wc_ecc_shared_secret(priv, peer, out, &len);
  if (rc != 0) fail_op(b, "ECDH", rc);
}

static void op_p256_keygen(bench *b) {
  ecc_keygen(b, ECC_SECP256R1, 32);
}
static void op_p256_ecdh(bench *b) {
  ecc_shared(b, &b->p256, &b->p256_peer);
}
static void op_p521_keygen(bench *b) {
  ecc_keygen(b, ECC_SECP521R1, 66);
}
static void op_p521_ecdh(bench *b) {
  ecc_shared(b, &b->p521, &b->p521_peer);
}

static void op_p256_sign(bench *b) {
  byte sig[ECC_MAX_SIG_SIZE];
  word32 len = sizeof sig;
  int rc = wc_ecc_sign_hash(b->hash, sizeof b->hash, sig, &len, &b->rng, &b->p256);
  if (rc != 0) fail_op(b, "ECDSA sign", rc);
}

static void op_p256_verify(bench *b) {
  int ok = 0;
  int rc = wc_ecc_verify_hash(b->sig, b->sig_len, b->hash, sizeof b->hash, &ok, &b->p256);
  if (rc != 0 || ok != 1) fail_op(b, "ECDSA verify", rc ? rc : -1);
}

static void op_x25519_keygen(bench *b) {
  curve25519_key k;
  int rc = wc_curve25519_init(&k);
  if (rc == 0) rc = wc_curve25519_make_key(&b->rng, CURVE25519_KEYSIZE, &k);
  if (rc != 0) fail_op(b, "X25519 key generation", rc);
  wc_curve25519_free(&k);
}

static void op_x25519_shared(bench *b) {
  byte out[CURVE25519_KEYSIZE];
  word32 len = sizeof out;
  int rc = wc_curve25519_shared_secret(&b->x25519, &b->x25519_peer, out, &len);
  if (rc != 0) fail_op(b, "X25519", rc);
}

static void op_hmac(bench *b) {
  byte out[WC_SHA256_DIGEST_SIZE];
  int rc = wc_HmacUpdate(&b->hmac, b->hash, sizeof b->hash);
  if (rc == 0) rc = wc_HmacFinal(&b->hmac, out);
  if (rc != 0) fail_op(b, "HMAC-SHA256", rc);
}

static double thread_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Microseconds of CPU per call of fn, over at least `seconds` of CPU time. */
static double time_op(bench *b, op_fn fn, double seconds) {
  fn(b); /* warm up (tables, caches) */
  unsigned long n = 0, batch = 1;
  double start = thread_seconds(), spent = 0;
  while (spent < seconds && !b->failed) {
    for (unsigned long i = 0; i < batch; i++)
      fn(b);
    n += batch;
    spent = thread_seconds() - start;
    if (batch < 1024) batch *= 2;
  }
  return n ? spent * 1e6 / (double)n : 0;
}

static int setup(bench *b) {
  memset(b, 0, sizeof *b);
  int rc = wc_InitRng(&b->rng);
  if (rc != 0) return rc;
  ecc_key *keys[] = {&b->p256, &b->p256_peer, &b->p521, &b->p521_peer};
  for (size_t i = 0; i < 4; i++) {
    bool p521 = i >= 2;
    if ((rc = wc_ecc_init(keys[i])) != 0 ||
        (rc = wc_ecc_make_key_ex(&b->rng, p521 ? 66 : 32, keys[i],
                                 p521 ? ECC_SECP521R1 : ECC_SECP256R1)) != 0 ||
        (rc = wc_ecc_set_rng(keys[i], &b->rng)) != 0)
      return rc;
  }
  if ((rc = wc_curve25519_init(&b->x25519)) != 0 ||
      (rc = wc_curve25519_init(&b->x25519_peer)) != 0 ||
      (rc = wc_curve25519_make_key(&b->rng, CURVE25519_KEYSIZE, &b->x25519)) != 0 ||
      (rc = wc_curve25519_make_key(&b->rng, CURVE25519_KEYSIZE, &b->x25519_peer)) != 0)
    return rc;
  memset(b->hash, 0x5a, sizeof b->hash);
  b->sig_len = sizeof b->sig;
  if ((rc = wc_ecc_sign_hash(b->hash, sizeof b->hash, b->sig, &b->sig_len, &b->rng, &b->p256)) != 0)
    return rc;
  if ((rc = wc_HmacInit(&b->hmac, NULL, INVALID_DEVID)) != 0 ||
      (rc = wc_HmacSetKey(&b->hmac, WC_SHA256, b->hash, sizeof b->hash)) != 0)
    return rc;
  return 0;
}

static void teardown(bench *b) {
  wc_ecc_free(&b->p256);
  wc_ecc_free(&b->p256_peer);
  wc_ecc_free(&b->p521);
  wc_ecc_free(&b->p521_peer);
  wc_curve25519_free(&b->x25519);
  wc_curve25519_free(&b->x25519_peer);
  wc_HmacFree(&b->hmac);
  wc_FreeRng(&b->rng);
}

static const char USAGE[] =
    "Usage: otad-bench-tls [--seconds S] [--json]\n"
    "\n"
    "Times wolfSSL's P-256 ECDHE (key pair, shared secret), ECDSA P-256 sign and verify, and\n"
    "for comparison X25519 and P-521, on one core (thread CPU time), and derives how many\n"
    "TLS 1.3 client handshakes per second one core can do: full (EC P-256 client\n"
    "certificate), resumed with PSK+ECDHE, resumed with PSK only.\n"
    "\n"
    "  --seconds S   CPU seconds per operation (default 0.5)\n"
    "  --json        print JSON instead of the table\n";

int main(int argc, char **argv) {
  double seconds = 0.5;
  bool json = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      char *end = NULL;
      seconds = strtod(argv[++i], &end);
      if (!end || *end || seconds <= 0 || seconds > 60) {
        fprintf(stderr, "otad-bench-tls: --seconds '%s': expected a number of seconds, 0 to 60\n",
                argv[i]);
        return 2;
      }
    } else if (strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(USAGE, stdout);
      return 0;
    } else {
      fprintf(stderr, "otad-bench-tls: unknown argument '%s'\n%s", argv[i], USAGE);
      return 2;
    }
  }
  bench b;
  int rc = setup(&b);
  if (rc != 0) {
    fprintf(stderr, "otad-bench-tls: setting up keys failed: %d\n", rc);
    return 1;
  }
  struct {
    const char *name;
    op_fn fn;
    double us;
  } ops[] = {
      {"P-256 key pair (ECDHE)", op_p256_keygen, 0},
      {"P-256 shared secret (ECDHE)", op_p256_ecdh, 0},
      {"ECDSA P-256 sign", op_p256_sign, 0},
      {"ECDSA P-256 verify", op_p256_verify, 0},
      {"X25519 key pair", op_x25519_keygen, 0},
      {"X25519 shared secret", op_x25519_shared, 0},
      {"P-521 key pair", op_p521_keygen, 0},
      {"P-521 shared secret", op_p521_ecdh, 0},
      {"HMAC-SHA256 (32 bytes)", op_hmac, 0},
  };
  enum { KEYGEN, ECDH, SIGN, VERIFY, X_KEYGEN, X_SHARED, P521_KEYGEN, P521_ECDH, HMAC, NOPS };
  for (int i = 0; i < NOPS && !b.failed; i++)
    ops[i].us = time_op(&b, ops[i].fn, seconds);
  teardown(&b);
  if (b.failed) return 1;

  double sym = HMACS_PER_HANDSHAKE * ops[HMAC].us;
  struct {
    const char *name, *ops;
    double us;
  } hs[] = {
      {"full, EC P-256 client certificate", "keygen + ECDH + 2 verify + sign + symmetric",
       ops[KEYGEN].us + ops[ECDH].us + 2 * ops[VERIFY].us + ops[SIGN].us + sym},
      {"full, after HelloRetryRequest to P-521",
       "P-256 keygen + P-521 keygen/ECDH + 2 verify + sign",
       ops[KEYGEN].us + ops[P521_KEYGEN].us + ops[P521_ECDH].us + 2 * ops[VERIFY].us +
           ops[SIGN].us + sym},
      {"full, X25519 key exchange", "X25519 keygen/shared + 2 verify + sign + symmetric",
       ops[X_KEYGEN].us + ops[X_SHARED].us + 2 * ops[VERIFY].us + ops[SIGN].us + sym},
      {"resumed, PSK with ECDHE (P-256)", "keygen + ECDH + symmetric",
       ops[KEYGEN].us + ops[ECDH].us + sym},
      {"resumed, PSK only", "symmetric", sym},
  };
  size_t nhs = sizeof hs / sizeof hs[0];
  if (json) {
    printf("{\"operations_us\": {");
    for (int i = 0; i < NOPS; i++)
      printf("%s\"%s\": %.2f", i ? ", " : "", ops[i].name, ops[i].us);
    printf("},\n \"handshakes_per_second_per_core\": {");
    const char *keys[] = {"full", "full_hrr_p521", "full_x25519", "resumed_psk_ecdhe",
                          "resumed_psk"};
    for (size_t i = 0; i < nhs; i++)
      printf("%s\"%s\": %.1f", i ? ", " : "", keys[i], 1e6 / hs[i].us);
    printf("}}\n");
    return 0;
  }
  printf("wolfSSL %s, one core, CPU time per operation\n\n", LIBWOLFSSL_VERSION_STRING);
  printf("| operation | us | per second |\n|---|---:|---:|\n");
  for (int i = 0; i < NOPS; i++)
    printf("| %s | %.1f | %.0f |\n", ops[i].name, ops[i].us, 1e6 / ops[i].us);
  printf("\nTLS 1.3 client handshakes per core (public-key work + ~%d HMACs)\n\n",
         HMACS_PER_HANDSHAKE);
  printf("| handshake | operations | us | per second |\n|---|---|---:|---:|\n");
  for (size_t i = 0; i < nhs; i++)
    printf("| %s | %s | %.1f | %.0f |\n", hs[i].name, hs[i].ops, hs[i].us, 1e6 / hs[i].us);
  return 0;
}
