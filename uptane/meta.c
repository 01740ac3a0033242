/* uptane_meta.c - what every Uptane document shares: parsing, _type/version/expires, the
 * UTC time parser, expiry, and checking a document against its parent's record of it
 * (version, length, hashes). Also the failure kinds and how they map to OTAD_E* codes.
 */
#include "internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/sha512.h>

#include "../core/canonical_json.h"

const char *uptane_fail_name(enum uptane_fail f) {
  switch (f) {
#define UPTANE_FAIL_NAME(name, text)                                                               \
  case name: return #name;
    UPTANE_FAILS(UPTANE_FAIL_NAME)
#undef UPTANE_FAIL_NAME
  }
  return "UPTANE_UNKNOWN";
}

const char *uptane_fail_text(enum uptane_fail f) {
  switch (f) {
#define UPTANE_FAIL_TEXT(name, text)                                                               \
  case name: return text;
    UPTANE_FAILS(UPTANE_FAIL_TEXT)
#undef UPTANE_FAIL_TEXT
  }
  return "unknown failure";
}

const char *uptane_role_name(enum uptane_role r) {
  switch (r) {
  case UPTANE_ROLE_ROOT: return "root";
  case UPTANE_ROLE_TARGETS: return "targets";
  case UPTANE_ROLE_SNAPSHOT: return "snapshot";
  case UPTANE_ROLE_TIMESTAMP: return "timestamp";
  default: return "?";
  }
}

int uptane__fail(uptane_err *err, enum uptane_fail f, const char *fmt, ...) {
  if (err) {
    err->fail = f;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->eb.msg, sizeof(err->eb.msg), fmt, ap);
    va_end(ap);
  }
  switch (f) {
  case UPTANE_OK: return 0;
  case UPTANE_MALFORMED:
  case UPTANE_TOO_BIG:
  case UPTANE_UNSUPPORTED: return OTAD_EPROTO;
  case UPTANE_MISSING: return OTAD_EINVAL;
  case UPTANE_NOMEM: return OTAD_ENOMEM;
  default: return OTAD_ECRYPTO;
  }
}

int uptane__nomem(uptane_err *err, const char *what) {
  return uptane__fail(err, UPTANE_NOMEM, "%s: out of memory", what);
}

int uptane__ok(uptane_err *err) {
  if (err) {
    err->fail = UPTANE_OK;
    err->eb.msg[0] = '\0';
  }
  return 0;
}

const cJSON *uptane__get(const cJSON *obj, const char *name) {
  return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;
}

int uptane__int(const cJSON *v, int64_t min, int64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (d != d || d < (double)min || d > 9007199254740992.0 || d != (double)(int64_t)d) return 0;
  *out = (int64_t)d;
  return 1;
}

/* ---- time ---- */

static int64_t uptane__days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int uptane__digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) return 0;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 1;
}

int uptane_parse_time(const char *s, int64_t *out) {
  int y, mo, d, h, mi, sec;
  if (!s || strlen(s) < 20 || !uptane__digits(s, 4, &y) || s[4] != '-' ||
      !uptane__digits(s + 5, 2, &mo) || s[7] != '-' || !uptane__digits(s + 8, 2, &d) ||
      s[10] != 'T' || !uptane__digits(s + 11, 2, &h) || s[13] != ':' ||
      !uptane__digits(s + 14, 2, &mi) || s[16] != ':' || !uptane__digits(s + 17, 2, &sec))
    return OTAD_EINVAL;
  const char *p = s + 19;
  if (*p == '.') { /* a fraction of a second: ignored */
    p++;
    if (!isdigit((unsigned char)*p)) return OTAD_EINVAL;
    while (isdigit((unsigned char)*p))
      p++;
  }
  if (p[0] != 'Z' || p[1] != '\0') return OTAD_EINVAL;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) || h > 23 ||
      mi > 59 || sec > 59)
    return OTAD_EINVAL;
  *out = uptane__days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
  return 0;
}

int uptane__check_expiry(int64_t expires, time_t now, const char *what, uptane_err *err) {
  if ((int64_t)now >= expires) {
    time_t t = (time_t)expires;
    struct tm tm;
    char when[32] = "?";
    if (gmtime_r(&t, &tm)) strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return uptane__fail(err, UPTANE_EXPIRED, "%s: expired at %s", what, when);
  }
  return 0;
}

/* ---- documents ---- */

int uptane__parse_doc(const char *json, size_t len, size_t cap, const char *what, cJSON **out,
                      uptane_err *err) {
  *out = NULL;
  if (!json || len == 0) return uptane__fail(err, UPTANE_MALFORMED, "%s: empty", what);
  if (len > cap)
    return uptane__fail(err, UPTANE_TOO_BIG, "%s: %zu bytes, more than the %zu allowed", what, len,
                        cap);
  const char *end = NULL;
  cJSON *doc = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  if (!doc) return uptane__fail(err, UPTANE_MALFORMED, "%s: not valid JSON", what);
  while (end && end < json + len && isspace((unsigned char)*end))
    end++;
  if (!end || end != json + len) {
    cJSON_Delete(doc);
    return uptane__fail(err, UPTANE_MALFORMED, "%s: data after the JSON document", what);
  }
  if (!cJSON_IsObject(uptane__get(doc, "signed")) ||
      !cJSON_IsArray(uptane__get(doc, "signatures"))) {
    cJSON_Delete(doc);
    return uptane__fail(err, UPTANE_MALFORMED,
                        "%s: not signed metadata (needs \"signed\" and \"signatures\")", what);
  }
  *out = doc;
  return 0;
}

int uptane__signed_common(const cJSON *doc, const char *type, const char *what, int64_t *version,
                          int64_t *expires, uptane_err *err) {
  const cJSON *s = uptane__get(doc, "signed");
  const cJSON *t = uptane__get(s, "_type");
  if (!cJSON_IsString(t) || strcasecmp(t->valuestring, type) != 0)
    return uptane__fail(err, UPTANE_MALFORMED, "%s: _type is %s%.32s%s, not \"%s\"", what,
                        cJSON_IsString(t) ? "\"" : "",
                        cJSON_IsString(t) ? t->valuestring : "missing",
                        cJSON_IsString(t) ? "\"" : "", type);
  if (!uptane__int(uptane__get(s, "version"), 1, version))
    return uptane__fail(err, UPTANE_MALFORMED, "%s: no valid version (an integer >= 1)", what);
  const cJSON *e = uptane__get(s, "expires");
  if (!cJSON_IsString(e) || uptane_parse_time(e->valuestring, expires) != 0)
    return uptane__fail(err, UPTANE_MALFORMED, "%s: no valid expires (\"YYYY-MM-DDTHH:MM:SSZ\")",
                        what);
  return 0;
}

static int uptane__hex_equal(const uint8_t *digest, size_t n, const char *hex) {
  static const char digits[] = "0123456789abcdef";
  if (strlen(hex) != 2 * n) return 0;
  for (size_t i = 0; i < n; i++) {
    if (tolower((unsigned char)hex[2 * i]) != digits[digest[i] >> 4] ||
        tolower((unsigned char)hex[2 * i + 1]) != digits[digest[i] & 15])
      return 0;
  }
  return 1;
}

/* 1 when hex is the digest (by algo) of data. */
static int uptane__digest_is(int sha512, const void *data, size_t len, const char *hex) {
  uint8_t d[WC_SHA512_DIGEST_SIZE];
  int ret = sha512 ? wc_Sha512Hash(data, (word32)len, d) : wc_Sha256Hash(data, (word32)len, d);
  return ret == 0 &&
         uptane__hex_equal(d, sha512 ? WC_SHA512_DIGEST_SIZE : WC_SHA256_DIGEST_SIZE, hex);
}

int uptane__check_record(const cJSON *record, const char *json, size_t len, const cJSON *doc,
                         int64_t version, const char *what, uptane_err *err) {
  int64_t want;
  if (!uptane__int(uptane__get(record, "version"), 1, &want))
    return uptane__fail(err, UPTANE_MALFORMED, "%s: its parent records no valid version", what);
  if (version != want)
    return uptane__fail(err, UPTANE_VERSION_MISMATCH,
                        "%s: version %lld, but version %lld is recorded for it", what,
                        (long long)version, (long long)want);
  const cJSON *length = uptane__get(record, "length");
  const cJSON *hashes = uptane__get(record, "hashes");
  if (!length && !hashes) return 0;
  /* Hashes and length hold for the raw bytes (TUF) or the canonical JSON of the whole
   * document (aktualizr); the canonical form is made only when the raw bytes fail. */
  char *canon = NULL;
  size_t canon_len = 0;
  int canon_tried = 0;
  int ret = 0;
  if (length) {
    int64_t n;
    if (!uptane__int(length, 0, &n)) {
      ret = uptane__fail(err, UPTANE_MALFORMED, "%s: its parent records an invalid length", what);
      goto out;
    }
    if ((uint64_t)n != len) {
      canon_tried = 1;
      otad_errbuf eb;
      if (canonical_json(doc, &canon, &canon_len, &eb) != 0 || (uint64_t)n != canon_len) {
        ret = uptane__fail(err, UPTANE_HASH_MISMATCH,
                           "%s: %zu bytes, but a length of %lld is recorded for it", what, len,
                           (long long)n);
        goto out;
      }
    }
  }
  if (hashes && !cJSON_IsObject(hashes)) {
    ret = uptane__fail(err, UPTANE_MALFORMED, "%s: its parent records hashes that are no object",
                       what);
    goto out;
  }
  const cJSON *h;
  cJSON_ArrayForEach(h, hashes) {
    int sha512 = strcasecmp(h->string, "sha512") == 0;
    if (!sha512 && strcasecmp(h->string, "sha256") != 0) continue; /* unknown algorithm */
    if (!cJSON_IsString(h)) {
      ret = uptane__fail(err, UPTANE_MALFORMED, "%s: recorded %s is not a string", what, h->string);
      goto out;
    }
    if (uptane__digest_is(sha512, json, len, h->valuestring)) continue;
    if (!canon_tried) {
      canon_tried = 1;
      otad_errbuf eb;
      if (canonical_json(doc, &canon, &canon_len, &eb) != 0) canon = NULL;
    }
    if (canon && uptane__digest_is(sha512, canon, canon_len, h->valuestring)) continue;
    ret = uptane__fail(err, UPTANE_HASH_MISMATCH, "%s: %s differs from the one recorded for it",
                       what, sha512 ? "sha512" : "sha256");
    goto out;
  }
out:
  free(canon);
  return ret;
}

int uptane__check_target_list(const cJSON *targets, const char *what, uptane_err *err) {
  if (!cJSON_IsObject(targets))
    return uptane__fail(err, UPTANE_MALFORMED, "%s: signed.targets is missing or no object", what);
  const cJSON *t;
  cJSON_ArrayForEach(t, targets) {
    int64_t n;
    const cJSON *hashes = uptane__get(t, "hashes");
    if (!cJSON_IsObject(t) || !uptane__int(uptane__get(t, "length"), 0, &n) ||
        !cJSON_IsObject(hashes))
      return uptane__fail(err, UPTANE_MALFORMED,
                          "%s: target \"%.128s\" needs a length and a hashes object", what,
                          t->string);
    const cJSON *h;
    cJSON_ArrayForEach(h, hashes) {
      if (!cJSON_IsString(h))
        return uptane__fail(err, UPTANE_MALFORMED, "%s: target \"%.128s\": hash %.16s is no string",
                            what, t->string, h->string);
    }
    const cJSON *custom = uptane__get(t, "custom");
    if (custom && !cJSON_IsObject(custom) && !cJSON_IsNull(custom))
      return uptane__fail(err, UPTANE_MALFORMED, "%s: target \"%.128s\": custom is no object", what,
                          t->string);
  }
  return 0;
}

void uptane__meta_free(uptane_meta *m) {
  if (!m) return;
  cJSON_Delete(m->doc);
  memset(m, 0, sizeof(*m));
}

void uptane__meta_replace(uptane_meta *dst, uptane_meta *src) {
  uptane__meta_free(dst);
  *dst = *src;
  memset(src, 0, sizeof(*src));
}
