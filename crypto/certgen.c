/* certgen.c - device certificates signed by a fleet CA, made with wolfSSL (see certgen.h).
 *
 * wolfCrypt's certificate writer (wc_MakeCert_ex + wc_SignCert_ex) builds the certificate:
 * the subject from a CertName, the issuer copied raw from the CA certificate's subject (so
 * a verifier's byte-wise name match never fails on a string type), key identifiers from
 * the two public keys. The fleet CA is checked before anything is signed: a certificate
 * signed by a key that is not the CA's, or by a certificate that is not a CA, would only
 * fail later on the device, where it is far harder to see why. Every buffer of ours that
 * held private key material is zeroed before it is freed.
 */
#include "certgen.h"
#include "pem.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include "tls.h"

/* Room for a certificate with an RSA 4096 key signed by an RSA 4096 CA, and then some. */
#define CERTGEN_DER_MAX 8192
/* notBefore lies this far back, for devices whose clocks lag (as ota-server does). */
#define CERTGEN_SKEW_SECONDS 3600

/* A signing or subject key of one of the three types wolfCrypt signs certificates with. */
typedef struct certgen__key {
  int type; /* RSA_TYPE, ECC_TYPE, ED25519_TYPE; 0 = nothing loaded */
  union {
    RsaKey rsa;
    ecc_key ecc;
    ed25519_key ed;
  } k;
} certgen__key;

static void certgen__free_secret(void *p, size_t len) {
  if (p) {
    explicit_bzero(p, len);
    free(p);
  }
}

static void certgen__key_free(certgen__key *k) {
  if (!k) return;
  if (k->type == RSA_TYPE)
    wc_FreeRsaKey(&k->k.rsa);
  else if (k->type == ECC_TYPE)
    wc_ecc_free(&k->k.ecc);
  else if (k->type == ED25519_TYPE)
    wc_ed25519_free(&k->k.ed);
  explicit_bzero(k, sizeof(*k));
  free(k);
}

/* Reads an unencrypted private key PEM (PKCS#8, PKCS#1 RSA, SEC1 EC; ED25519 in PKCS#8).
 * Returns a heap key or NULL with the reason in eb. */
static certgen__key *certgen__key_load(const char *pem, otad_errbuf *eb) {
  if (!pem || !*pem) {
    otad_fail(eb, OTAD_ECERT, "the CA private key file is empty");
    return NULL;
  }
  if (strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
      strstr(pem, "Proc-Type: 4,ENCRYPTED")) {
    otad_fail(eb, OTAD_ECERT,
              "the CA private key is encrypted; write an unencrypted copy for signing "
              "(openssl pkey -in KEY -out PLAIN.key) and keep it safe");
    return NULL;
  }
  size_t cap = strlen(pem) + 1;
  uint8_t *der = malloc(cap);
  certgen__key *k = calloc(1, sizeof(*k));
  if (!der || !k) {
    free(der);
    free(k);
    otad_fail(eb, OTAD_ENOMEM, "out of memory");
    return NULL;
  }
  int len = wc_KeyPemToDer((const unsigned char *)pem, (int)cap - 1, der, (int)cap, NULL);
  if (len <= 0) {
    certgen__free_secret(der, cap);
    free(k);
    otad_fail(eb, OTAD_ECERT, "not a PEM private key (wolfSSL: %s)", wc_GetErrorString(len));
    return NULL;
  }

  word32 idx = 0;
  if (wc_InitRsaKey(&k->k.rsa, NULL) == 0) {
    if (wc_RsaPrivateKeyDecode(der, &idx, &k->k.rsa, (word32)len) == 0)
      k->type = RSA_TYPE;
    else
      wc_FreeRsaKey(&k->k.rsa);
  }
  idx = 0;
  if (!k->type && wc_ecc_init(&k->k.ecc) == 0) {
    int ret = wc_EccPrivateKeyDecode(der, &idx, &k->k.ecc, (word32)len);
    /* A SEC1 key written without its public point: derive it (AKID, signing need it). */
    if (ret == 0 && k->k.ecc.type == ECC_PRIVATEKEY_ONLY) ret = wc_ecc_make_pub(&k->k.ecc, NULL);
    if (ret == 0)
      k->type = ECC_TYPE;
    else
      wc_ecc_free(&k->k.ecc);
  }
  idx = 0;
  if (!k->type && wc_ed25519_init(&k->k.ed) == 0) {
    int ret = wc_Ed25519PrivateKeyDecode(der, &idx, &k->k.ed, (word32)len);
    if (ret == 0 && !k->k.ed.pubKeySet) {
      /* PKCS#8 Ed25519 keys usually carry the seed only; signing needs the public half. */
      uint8_t pub[ED25519_PUB_KEY_SIZE];
      ret = wc_ed25519_make_public(&k->k.ed, pub, sizeof(pub));
      if (ret == 0)
        ret =
            wc_ed25519_import_private_key(k->k.ed.k, ED25519_KEY_SIZE, pub, sizeof(pub), &k->k.ed);
    }
    if (ret == 0)
      k->type = ED25519_TYPE;
    else
      wc_ed25519_free(&k->k.ed);
  }
  certgen__free_secret(der, cap);
  if (!k->type) {
    free(k);
    otad_fail(eb, OTAD_ECERT,
              "the CA private key is not an RSA, EC or Ed25519 key wolfSSL can read");
    return NULL;
  }
  return k;
}

/* DER of the first certificate in pem (heap, *len set), or NULL with the reason in eb. */
static uint8_t *certgen__cert_der(const char *pem, int *len, otad_errbuf *eb) {
  size_t cap = pem ? strlen(pem) + 1 : 0;
  if (!pem || !strstr(pem, "-----BEGIN CERTIFICATE-----")) {
    otad_fail(eb, OTAD_ECERT, "no PEM certificate (-----BEGIN CERTIFICATE-----) found");
    return NULL;
  }
  uint8_t *der = malloc(cap);
  if (!der) {
    otad_fail(eb, OTAD_ENOMEM, "out of memory");
    return NULL;
  }
  *len = wc_CertPemToDer((const unsigned char *)pem, (int)cap - 1, der, (int)cap, CERT_TYPE);
  if (*len <= 0) {
    otad_fail(eb, OTAD_ECERT, "the PEM certificate cannot be decoded (wolfSSL: %s)",
              wc_GetErrorString(*len));
    free(der);
    return NULL;
  }
  return der;
}

/* The checks of certgen_check_ca; on success *der and *der_len hold the CA certificate's DER
 * and *key its private key (both the caller's to free). */
static int certgen__load_ca(const char *ca_cert_pem, const char *ca_key_pem, uint8_t **der,
                            int *der_len, certgen__key **key, otad_errbuf *eb) {
  otad_errbuf sub = {{0}};
  *der = NULL;
  *key = NULL;
  tls_global_init();
  if (!(*der = certgen__cert_der(ca_cert_pem, der_len, &sub)))
    return otad_fail(eb, OTAD_ECERT, "fleet CA certificate: %s", sub.msg);
  if (!(*key = certgen__key_load(ca_key_pem, &sub))) {
    free(*der);
    *der = NULL;
    return otad_fail(eb, OTAD_ECERT, "fleet CA key: %s", sub.msg);
  }

  int err = 0;
  if (tls_key_matches_cert(ca_key_pem, ca_cert_pem, &sub) != 0)
    err = otad_fail(eb, OTAD_ECERT,
                    "the fleet CA key does not belong to the fleet CA certificate (%s)", sub.msg);

  DecodedCert dc;
  if (!err) {
    wc_InitDecodedCert(&dc, *der, (word32)*der_len, NULL);
    int ret = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL);
    if (ret != 0)
      err = otad_fail(eb, OTAD_ECERT, "the fleet CA certificate cannot be parsed (wolfSSL: %s)",
                      wc_GetErrorString(ret));
    else if (!dc.isCA)
      err = otad_fail(eb, OTAD_ECERT,
                      "the fleet CA certificate is not a CA certificate (%s); it cannot sign "
                      "device certificates",
                      dc.extBasicConstSet ? "basicConstraints says CA:FALSE"
                                          : "it has no basicConstraints CA:TRUE");
    else if (dc.extKeyUsageSet && !(dc.extKeyUsage & KEYUSE_KEY_CERT_SIGN))
      err = otad_fail(eb, OTAD_ECERT,
                      "the fleet CA certificate's keyUsage does not allow keyCertSign; it "
                      "cannot sign device certificates");
    wc_FreeDecodedCert(&dc);
  }

  tls_cert_info ci;
  if (!err && tls_cert_info_pem(ca_cert_pem, &ci, &sub) != 0)
    err = otad_fail(eb, OTAD_ECERT, "fleet CA certificate: %s", sub.msg);
  if (!err) {
    time_t now = time(NULL);
    char when[32];
    struct tm tm;
    if (ci.not_after < now) {
      strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&ci.not_after, &tm));
      err = otad_fail(eb, OTAD_ECERT, "the fleet CA certificate (%s) expired on %s", ci.subject,
                      when);
    } else if (ci.not_before > now) {
      strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&ci.not_before, &tm));
      err = otad_fail(eb, OTAD_ECERT, "the fleet CA certificate (%s) is not valid before %s",
                      ci.subject, when);
    }
  }
  if (err) {
    free(*der);
    *der = NULL;
    certgen__key_free(*key);
    *key = NULL;
  }
  return err;
}

int certgen_check_ca(const char *ca_cert_pem, const char *ca_key_pem, otad_errbuf *eb) {
  uint8_t *der;
  int der_len;
  certgen__key *key;
  int err = certgen__load_ca(ca_cert_pem, ca_key_pem, &der, &der_len, &key, eb);
  if (err) return err;
  free(der);
  certgen__key_free(key);
  return 0;
}

/* A subject name value: 1..CERTGEN_MAX_NAME printable characters (UTF-8 allowed). */
static int certgen__name_ok(const char *v) {
  size_t n = v ? strlen(v) : 0;
  if (n == 0 || n > CERTGEN_MAX_NAME) return 0;
  for (const unsigned char *p = (const unsigned char *)v; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return 0;
  return 1;
}

static int certgen__check_opts(const certgen_opts *o, otad_errbuf *eb) {
  if (!o) return otad_fail(eb, OTAD_EINVAL, "no options");
  if (!certgen__name_ok(o->cn))
    return otad_fail(eb, OTAD_EINVAL, "the CN must be 1 to %d printable characters",
                     CERTGEN_MAX_NAME);
  if (o->c && !(strlen(o->c) == 2 && ((o->c[0] | 0x20) >= 'a' && (o->c[0] | 0x20) <= 'z') &&
                ((o->c[1] | 0x20) >= 'a' && (o->c[1] | 0x20) <= 'z')))
    return otad_fail(eb, OTAD_EINVAL, "the country (C) must be two letters, e.g. DE");
  if (o->st && !certgen__name_ok(o->st))
    return otad_fail(eb, OTAD_EINVAL, "the state (ST) must be 1 to %d printable characters",
                     CERTGEN_MAX_NAME);
  if (o->o && !certgen__name_ok(o->o))
    return otad_fail(eb, OTAD_EINVAL, "the organisation (O) must be 1 to %d printable characters",
                     CERTGEN_MAX_NAME);
  if (o->days < 1 || o->days > CERTGEN_MAX_DAYS)
    return otad_fail(eb, OTAD_EINVAL, "the validity must be 1 to %d days", CERTGEN_MAX_DAYS);
  if (o->rsa_bits != 0 && o->rsa_bits != 2048 && o->rsa_bits != 3072 && o->rsa_bits != 4096)
    return otad_fail(eb, OTAD_EINVAL, "RSA keys must have 2048, 3072 or 4096 bits");
  return 0;
}

/* The signature algorithm for a CA key. */
static int certgen__sig_type(const certgen__key *ca) {
  if (ca->type == RSA_TYPE) return CTC_SHA256wRSA;
  if (ca->type == ED25519_TYPE) return CTC_ED25519;
  int size = wc_ecc_size((ecc_key *)&ca->k.ecc);
  return size > 48 ? CTC_SHA512wECDSA : size > 32 ? CTC_SHA384wECDSA : CTC_SHA256wECDSA;
}

/* Generates the device key (EC P-256 or RSA). */
static int certgen__key_generate(int rsa_bits, WC_RNG *rng, certgen__key **out, otad_errbuf *eb) {
  certgen__key *k = calloc(1, sizeof(*k));
  if (!k) return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  int ret;
  if (rsa_bits) {
    ret = wc_InitRsaKey(&k->k.rsa, NULL);
    if (ret == 0) {
      k->type = RSA_TYPE;
      ret = wc_MakeRsaKey(&k->k.rsa, rsa_bits, WC_RSA_EXPONENT, rng);
    }
  } else {
    ret = wc_ecc_init(&k->k.ecc);
    if (ret == 0) {
      k->type = ECC_TYPE;
      ret = wc_ecc_make_key_ex(rng, 32, &k->k.ecc, ECC_SECP256R1);
    }
  }
  if (ret != 0) {
    certgen__key_free(k);
    return otad_fail(eb, OTAD_ECRYPTO, "cannot generate the device key (wolfSSL: %s)",
                     wc_GetErrorString(ret));
  }
  *out = k;
  return 0;
}

/* The device key as unencrypted PKCS#8 PEM. */
static int certgen__key_pem(certgen__key *k, char **pem, otad_errbuf *eb) {
  uint8_t *der = NULL, *pkcs8 = NULL;
  word32 der_cap = 0, pkcs8_len = 0;
  int ret;
  if (k->type == ECC_TYPE) {
    if (wc_EccKeyToPKCS8(&k->k.ecc, NULL, &pkcs8_len) != LENGTH_ONLY_E ||
        !(pkcs8 = malloc(pkcs8_len)))
      return otad_fail(eb, OTAD_ENOMEM, "cannot write the EC key as PKCS#8");
    ret = wc_EccKeyToPKCS8(&k->k.ecc, pkcs8, &pkcs8_len);
  } else {
    der_cap = CERTGEN_DER_MAX;
    if (!(der = malloc(der_cap))) return otad_fail(eb, OTAD_ENOMEM, "out of memory");
    ret = wc_RsaKeyToDer(&k->k.rsa, der, der_cap);
    if (ret > 0) {
      word32 der_len = (word32)ret;
      if (wc_CreatePKCS8Key(NULL, &pkcs8_len, der, der_len, RSAk, NULL, 0) != LENGTH_ONLY_E ||
          !(pkcs8 = malloc(pkcs8_len))) {
        certgen__free_secret(der, der_cap);
        return otad_fail(eb, OTAD_ENOMEM, "cannot write the RSA key as PKCS#8");
      }
      ret = wc_CreatePKCS8Key(pkcs8, &pkcs8_len, der, der_len, RSAk, NULL, 0);
    }
    certgen__free_secret(der, der_cap);
  }
  if (ret <= 0) {
    certgen__free_secret(pkcs8, pkcs8_len);
    return otad_fail(eb, OTAD_ECRYPTO, "cannot write the device key as PKCS#8 (wolfSSL: %s)",
                     wc_GetErrorString(ret));
  }
  *pem = pem_from_der(pkcs8, (word32)ret, PKCS8_PRIVATEKEY_TYPE);
  certgen__free_secret(pkcs8, pkcs8_len);
  return *pem ? 0 : otad_fail(eb, OTAD_ENOMEM, "cannot write the device key as PEM");
}

/* A validity date as DER (tag, length, value) at seconds since the epoch: UTCTime through
 * 2049, GeneralizedTime from 2050, as RFC 5280 wants (wolfSSL on its own always writes
 * GeneralizedTime). 64-bit arithmetic, so a 32-bit time_t does not wrap. */
static int certgen__der_time(long long secs, byte *out) {
  long long days = secs / 86400, rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  /* civil_from_days (H. Hinnant) */
  long long z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
  long long doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
  int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
  long long y = yoe + era * 400 + (m <= 2);
  int hh = (int)(rem / 3600), mm = (int)(rem / 60 % 60), ss = (int)(rem % 60);
  char v[20];
  if (y >= 1950 && y < 2050) {
    snprintf(v, sizeof(v), "%02d%02d%02d%02d%02d%02dZ", (int)(y % 100), m, d, hh, mm, ss);
    out[0] = ASN_UTC_TIME;
  } else {
    snprintf(v, sizeof(v), "%04d%02d%02d%02d%02d%02dZ", (int)y, m, d, hh, mm, ss);
    out[0] = ASN_GENERALIZED_TIME;
  }
  out[1] = (byte)strlen(v);
  memcpy(out + 2, v, strlen(v));
  return 2 + (int)strlen(v);
}

/* Fills, makes and signs the certificate; returns its DER length or a negative OTAD_E. */
static int certgen__make_cert(const certgen_opts *o, const uint8_t *ca_der, int ca_der_len,
                              certgen__key *ca, certgen__key *dev, WC_RNG *rng, uint8_t *out,
                              otad_errbuf *eb) {
  Cert *cert = malloc(sizeof(*cert));
  if (!cert) return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  int ret = wc_InitCert(cert);
  const char *step = "wc_InitCert";
  if (ret == 0) {
    cert->version = 2; /* X.509 v3 */
    cert->daysValid = o->days;
    /* Valid from an hour back (a device's clock may lag a little) for days from now. */
    long long now = (long long)time(NULL);
    cert->beforeDateSz = certgen__der_time(now - CERTGEN_SKEW_SECONDS, cert->beforeDate);
    cert->afterDateSz = certgen__der_time(now + o->days * 86400LL, cert->afterDate);
    cert->selfSigned = 0;
    cert->isCA = 0;
    cert->basicConstSet = 1; /* an explicit basicConstraints with CA:FALSE */
    cert->sigType = certgen__sig_type(ca);
    snprintf(cert->subject.commonName, sizeof(cert->subject.commonName), "%s", o->cn);
    if (o->c) {
      cert->subject.country[0] = (char)(o->c[0] & ~0x20); /* upper case */
      cert->subject.country[1] = (char)(o->c[1] & ~0x20);
      cert->subject.country[2] = '\0';
    }
    if (o->st) snprintf(cert->subject.state, sizeof(cert->subject.state), "%s", o->st);
    if (o->o) snprintf(cert->subject.org, sizeof(cert->subject.org), "%s", o->o);
    step = "serial";
    ret = wc_RNG_GenerateBlock(rng, cert->serial, 16);
    cert->serial[0] = (byte)((cert->serial[0] & 0x7f) | 0x40); /* positive, 16 bytes long */
    cert->serialSz = 16;
  }
  if (ret == 0) {
    step = "issuer";
    ret = wc_SetIssuerRaw(cert, ca_der, ca_der_len);
  }
  if (ret == 0) {
    step = "subject key identifier";
    ret = wc_SetSubjectKeyIdFromPublicKey_ex(cert, dev->type, &dev->k);
  }
  if (ret == 0) {
    step = "authority key identifier";
    ret = wc_SetAuthKeyIdFromCert(cert, ca_der, ca_der_len);
  }
  if (ret == 0) {
    step = "keyUsage";
    ret = wc_SetKeyUsage(cert, dev->type == RSA_TYPE ? "digitalSignature,keyEncipherment"
                                                     : "digitalSignature");
  }
  if (ret == 0) {
    step = "extendedKeyUsage";
    ret = wc_SetExtKeyUsage(cert, "clientAuth");
  }
  if (ret == 0) {
    step = "wc_MakeCert_ex";
    ret = wc_MakeCert_ex(cert, out, CERTGEN_DER_MAX, dev->type, &dev->k, rng);
  }
  if (ret > 0) {
    step = "wc_SignCert_ex";
    ret = wc_SignCert_ex(cert->bodySz, cert->sigType, out, CERTGEN_DER_MAX, ca->type, &ca->k, rng);
  }
  free(cert); /* wolfSSL freed the decoded CA it cached (no WOLFSSL_CERT_GEN_CACHE) */
  if (ret <= 0)
    return otad_fail(eb, OTAD_ECRYPTO, "cannot make the certificate: %s failed (wolfSSL: %s)", step,
                     wc_GetErrorString(ret));
  return ret;
}

int certgen_device(const char *ca_cert_pem, const char *ca_key_pem, const certgen_opts *o,
                   char **key_pem, char **cert_pem, otad_errbuf *eb) {
  *key_pem = *cert_pem = NULL;
  int err = certgen__check_opts(o, eb);
  if (err) return err;
  uint8_t *ca_der = NULL;
  int ca_der_len = 0;
  certgen__key *ca = NULL, *dev = NULL;
  err = certgen__load_ca(ca_cert_pem, ca_key_pem, &ca_der, &ca_der_len, &ca, eb);
  if (err) return err;

  WC_RNG *rng = calloc(1, sizeof(*rng));
  uint8_t *der = malloc(CERTGEN_DER_MAX);
  if (!rng || !der) err = otad_fail(eb, OTAD_ENOMEM, "out of memory");
  int ret = err ? 0 : wc_InitRng(rng);
  if (!err && ret != 0)
    err = otad_fail(eb, OTAD_ECRYPTO, "cannot start the random generator (wolfSSL: %s)",
                    wc_GetErrorString(ret));
  int rng_ok = !err;
  if (!err) err = certgen__key_generate(o->rsa_bits, rng, &dev, eb);
  int der_len = 0;
  if (!err) {
    der_len = certgen__make_cert(o, ca_der, ca_der_len, ca, dev, rng, der, eb);
    if (der_len < 0) err = der_len;
  }
  if (!err && !(*cert_pem = pem_from_der(der, (word32)der_len, CERT_TYPE)))
    err = otad_fail(eb, OTAD_ENOMEM, "cannot write the certificate as PEM");
  if (!err) err = certgen__key_pem(dev, key_pem, eb);

  if (rng_ok) wc_FreeRng(rng);
  free(rng);
  free(der);
  free(ca_der);
  certgen__key_free(ca);
  certgen__key_free(dev);
  if (err) {
    free(*cert_pem);
    *cert_pem = NULL;
    if (*key_pem) certgen__free_secret(*key_pem, strlen(*key_pem));
    *key_pem = NULL;
  }
  return err;
}

int certgen_verify(const char *cert_pem, const char *ca_pem, otad_errbuf *eb) {
  if (!cert_pem || !ca_pem) return otad_fail(eb, OTAD_ECERT, "no certificate given");
  tls_global_init();
  WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
  if (!cm) return otad_fail(eb, OTAD_ENOMEM, "cannot create a wolfSSL certificate manager");
  int err = 0;
  int ret = wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)ca_pem, (long)strlen(ca_pem),
                                            WOLFSSL_FILETYPE_PEM);
  if (ret != WOLFSSL_SUCCESS)
    err = otad_fail(eb, OTAD_ECERT, "wolfSSL cannot load the CA certificate(s): %s",
                    wolfSSL_ERR_reason_error_string((unsigned long)ret));
  if (!err) {
    ret = wolfSSL_CertManagerVerifyBuffer(cm, (const unsigned char *)cert_pem,
                                          (long)strlen(cert_pem), WOLFSSL_FILETYPE_PEM);
    if (ret != WOLFSSL_SUCCESS)
      err = otad_fail(eb, OTAD_ECERT, "the certificate does not verify against the CA: %s",
                      wolfSSL_ERR_reason_error_string((unsigned long)ret));
  }
  wolfSSL_CertManagerFree(cm);
  return err;
}
