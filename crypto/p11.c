/* p11.c - keys in a PKCS#11 token through wolfSSL's PKCS#11 layer (see p11.h).
 *
 * wolfSSL does the cryptography: a key created with wc_ecc_init_id / wc_InitRsaKey_Id and
 * our device ID sends its private operations to wc_Pkcs11_CryptoDevCb, which finds the
 * token object by CKA_ID and calls C_Sign. What wolfSSL does not offer is done here with
 * raw calls through the module's function list: choosing the token, logging in (so a wrong
 * PIN is reported as such, where wolfSSL would only say "hardware error"), finding objects
 * to tell "no such ID" apart from other failures, and reading a certificate's CKA_VALUE or
 * an RSA key's public half.
 *
 * Each open token keeps one logged-in session for its whole life and gives its handle to
 * wolfSSL's Pkcs11Token, so wolfSSL neither opens a session nor logs in per operation. A
 * PKCS#11 session must not be used by two threads at once, so every use of it, ours and
 * the crypto callback's, holds the token's lock.
 */
#include "p11.h"
#include "../core/hex.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include "tls.h"

bool p11_is_uri(const char *text) {
  return text && strncmp(text, "pkcs11:", 7) == 0;
}

#if defined(HAVE_PKCS11) && defined(WOLF_PRIVATE_KEY_ID)

#include <wolfssl/wolfcrypt/wc_pkcs11.h>

/* PKCS#11 constants that wolfSSL's reduced pkcs11.h leaves out (values from the standard). */
#ifndef CKO_CERTIFICATE
#define CKO_CERTIFICATE 0x1UL
#endif
#ifndef CKA_CERTIFICATE_TYPE
#define CKA_CERTIFICATE_TYPE 0x80UL
#endif
#ifndef CKC_X_509
#define CKC_X_509 0x0UL
#endif
#ifndef CKK_EC_EDWARDS
#define CKK_EC_EDWARDS 0x40UL
#endif
#ifndef CKF_LOGIN_REQUIRED
#define CKF_LOGIN_REQUIRED 0x4UL
#endif
#ifndef CKF_TOKEN_INITIALIZED
#define CKF_TOKEN_INITIALIZED 0x400UL
#endif

#define P11_MAX_ID 32 /* wolfCrypt's RSA_MAX_ID_LEN and ECC_MAX_ID_LEN */

struct p11_token {
  struct p11_token *next;
  char *module;
  char *pin; /* a copy, to refuse a second open with another PIN; zeroed when freed */
  char label[33];
  char serial[17];
  int dev_id;
  bool registered, logged_in, have_session;
  pthread_mutex_t lock; /* the session: one user at a time */
  Pkcs11Dev dev;
  Pkcs11Token tok;
  CK_SESSION_HANDLE session;
};

/* Open tokens: PKCS#11 initialises a module once per process, so this table is too. */
static pthread_mutex_t p11__table_lock = PTHREAD_MUTEX_INITIALIZER;
static p11_token *p11__tokens;
static int p11__next_dev_id = 0x6f746164; /* "otad": clear of wolfSSL's own IDs */

/* Return values by name, for messages. */
static const char *p11__rv_name(CK_RV rv) {
  static const struct {
    CK_RV rv;
    const char *name;
  } names[] = {
      {0x0, "CKR_OK"},
      {0x1, "CKR_CANCEL"},
      {0x2, "CKR_HOST_MEMORY"},
      {0x3, "CKR_SLOT_ID_INVALID"},
      {0x5, "CKR_GENERAL_ERROR"},
      {0x6, "CKR_FUNCTION_FAILED"},
      {0x7, "CKR_ARGUMENTS_BAD"},
      {0x9, "CKR_NEED_TO_CREATE_THREADS"},
      {0xa, "CKR_CANT_LOCK"},
      {0x11, "CKR_ATTRIBUTE_SENSITIVE"},
      {0x12, "CKR_ATTRIBUTE_TYPE_INVALID"},
      {0x30, "CKR_DEVICE_ERROR"},
      {0x31, "CKR_DEVICE_MEMORY"},
      {0x32, "CKR_DEVICE_REMOVED"},
      {0x54, "CKR_FUNCTION_NOT_SUPPORTED"},
      {0x60, "CKR_KEY_HANDLE_INVALID"},
      {0x63, "CKR_KEY_TYPE_INCONSISTENT"},
      {0x68, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
      {0x70, "CKR_MECHANISM_INVALID"},
      {0x82, "CKR_OBJECT_HANDLE_INVALID"},
      {0x90, "CKR_OPERATION_ACTIVE"},
      {0xa0, "CKR_PIN_INCORRECT"},
      {0xa1, "CKR_PIN_INVALID"},
      {0xa2, "CKR_PIN_LEN_RANGE"},
      {0xa3, "CKR_PIN_EXPIRED"},
      {0xa4, "CKR_PIN_LOCKED"},
      {0xb0, "CKR_SESSION_CLOSED"},
      {0xb1, "CKR_SESSION_COUNT"},
      {0xb3, "CKR_SESSION_HANDLE_INVALID"},
      {0xe0, "CKR_TOKEN_NOT_PRESENT"},
      {0xe1, "CKR_TOKEN_NOT_RECOGNIZED"},
      {0x100, "CKR_USER_ALREADY_LOGGED_IN"},
      {0x101, "CKR_USER_NOT_LOGGED_IN"},
      {0x102, "CKR_USER_PIN_NOT_INITIALIZED"},
      {0x103, "CKR_USER_TYPE_INVALID"},
      {0x150, "CKR_BUFFER_TOO_SMALL"},
      {0x190, "CKR_CRYPTOKI_NOT_INITIALIZED"},
      {0x191, "CKR_CRYPTOKI_ALREADY_INITIALIZED"},
  };
  static __thread char other[32];
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (names[i].rv == rv) return names[i].name;
  snprintf(other, sizeof(other), "CKR 0x%lx", (unsigned long)rv);
  return other;
}

/* A field of CK_TOKEN_INFO (blank-padded, not terminated) as a C string. */
static void p11__field(char *out, size_t out_size, const CK_UTF8CHAR *in, size_t n) {
  while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\0'))
    n--;
  if (n >= out_size) n = out_size - 1;
  memcpy(out, in, n);
  out[n] = '\0';
}

static void p11__free_token(p11_token *t) {
  if (!t) return;
  if (t->registered) wc_CryptoCb_UnRegisterDevice(t->dev_id);
  if (t->have_session) {
    if (t->logged_in) t->dev.func->C_Logout(t->session);
    t->dev.func->C_CloseSession(t->session);
  }
  wc_Pkcs11_Finalize(&t->dev);
  if (t->pin) {
    explicit_bzero(t->pin, strlen(t->pin));
    free(t->pin);
  }
  free(t->module);
  pthread_mutex_destroy(&t->lock);
  free(t);
}

/* Every private-key operation wolfCrypt routes to the token, under the session's lock. */
static int p11__crypto_cb(int dev_id, wc_CryptoInfo *info, void *ctx) {
  p11_token *t = ctx;
  pthread_mutex_lock(&t->lock);
  int ret = wc_Pkcs11_CryptoDevCb(dev_id, info, &t->tok);
  pthread_mutex_unlock(&t->lock);
  return ret;
}

/* The first slot whose token is initialised (SoftHSM2 always adds an empty one). */
static int p11__pick_slot(p11_token *t, CK_SLOT_ID *slot, CK_TOKEN_INFO *ti, otad_errbuf *eb) {
  CK_FUNCTION_LIST *f = t->dev.func;
  CK_ULONG n = 0;
  CK_RV rv = f->C_GetSlotList(CK_TRUE, NULL, &n);
  if (rv != CKR_OK)
    return otad_fail(eb, OTAD_ECONFIG, "PKCS#11 module %s: cannot list its slots (%s)", t->module,
                     p11__rv_name(rv));
  CK_SLOT_ID *slots = calloc(n ? n : 1, sizeof(*slots));
  if (!slots) return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  rv = f->C_GetSlotList(CK_TRUE, slots, &n);
  int found = 0;
  for (CK_ULONG i = 0; rv == CKR_OK && i < n && !found; i++) {
    if (f->C_GetTokenInfo(slots[i], ti) == CKR_OK && (ti->flags & CKF_TOKEN_INITIALIZED)) {
      *slot = slots[i];
      found = 1;
    }
  }
  free(slots);
  if (rv != CKR_OK)
    return otad_fail(eb, OTAD_ECONFIG, "PKCS#11 module %s: cannot list its slots (%s)", t->module,
                     p11__rv_name(rv));
  if (!found)
    return otad_fail(eb, OTAD_ECONFIG,
                     "PKCS#11 module %s: no initialised token in its %lu slot(s) with a token",
                     t->module, (unsigned long)n);
  return 0;
}

static int p11__login(p11_token *t, const char *pin, const CK_TOKEN_INFO *ti, otad_errbuf *eb) {
  if (!pin) {
    if (ti->flags & CKF_LOGIN_REQUIRED)
      return otad_fail(eb, OTAD_ECONFIG, "PKCS#11: token '%s' needs the user PIN: set [p11] pass",
                       t->label);
    return 0;
  }
  CK_RV rv =
      t->dev.func->C_Login(t->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
  if (rv == CKR_OK || rv == 0x100 /* CKR_USER_ALREADY_LOGGED_IN */) {
    t->logged_in = rv == CKR_OK;
    return 0;
  }
  const char *why;
  switch (rv) {
  case 0xa0: why = "wrong PIN"; break;
  case 0xa4: why = "the PIN is locked after too many wrong tries"; break;
  case 0xa1:
  case 0xa2: why = "the token refuses a PIN of this length or with these characters"; break;
  case 0xa3: why = "the PIN has expired"; break;
  case 0x102: why = "the token has no user PIN set"; break;
  default: why = "the token refused it"; break;
  }
  return otad_fail(eb, OTAD_ECONFIG, "PKCS#11: login to token '%s' failed: %s (%s)", t->label, why,
                   p11__rv_name(rv));
}

/* Loads module, picks the token, opens a session, logs in, registers the wolfCrypt device. */
static int p11__open_new(const char *module, const char *pin, p11_token **out, otad_errbuf *eb) {
  /* dlopen once ourselves for dlerror()'s words: wolfSSL loads it too but keeps them. */
  void *probe = dlopen(module, RTLD_NOW | RTLD_LOCAL);
  if (!probe) {
    const char *why = dlerror();
    size_t ml = strlen(module);
    if (why && strncmp(why, module, ml) == 0 && strncmp(why + ml, ": ", 2) == 0) why += ml + 2;
    return otad_fail(eb, OTAD_ECONFIG, "PKCS#11 module %s: cannot load (%s)", module,
                     why ? why : "unknown reason");
  }
  if (!dlsym(probe, "C_GetFunctionList")) {
    dlclose(probe);
    return otad_fail(eb, OTAD_ECONFIG,
                     "PKCS#11 module %s: cannot load (not a PKCS#11 library: it has no "
                     "C_GetFunctionList)",
                     module);
  }
  p11_token *t = calloc(1, sizeof(*t));
  if (!t || !(t->module = strdup(module)) || (pin && !(t->pin = strdup(pin)))) {
    if (t) free(t->module);
    free(t);
    dlclose(probe);
    return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  }
  pthread_mutex_init(&t->lock, NULL);
  CK_RV rv = CKR_OK;
  int ret = wc_Pkcs11_Initialize_ex(&t->dev, module, NULL, &rv);
  dlclose(probe); /* wolfSSL holds its own reference now */
  int err = 0;
  if (ret == WC_NO_ERR_TRACE(WC_HW_E))
    err = otad_fail(eb, OTAD_ECONFIG, "PKCS#11 module %s: C_GetFunctionList failed (%s)", module,
                    p11__rv_name(rv));
  else if (ret != 0)
    err = otad_fail(eb, OTAD_ECONFIG, "PKCS#11 module %s: C_Initialize failed (%s)", module,
                    rv != CKR_OK ? p11__rv_name(rv) : wc_GetErrorString(ret));
  CK_SLOT_ID slot = 0;
  CK_TOKEN_INFO ti;
  memset(&ti, 0, sizeof(ti));
  if (!err) err = p11__pick_slot(t, &slot, &ti, eb);
  if (!err) {
    p11__field(t->label, sizeof(t->label), ti.label, sizeof(ti.label));
    p11__field(t->serial, sizeof(t->serial), ti.serialNumber, sizeof(ti.serialNumber));
    rv = t->dev.func->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &t->session);
    if (rv != CKR_OK)
      err = otad_fail(eb, OTAD_ECONFIG, "PKCS#11: cannot open a session on token '%s' (%s)",
                      t->label, p11__rv_name(rv));
    t->have_session = rv == CKR_OK;
  }
  if (!err) err = p11__login(t, pin, &ti, eb);
  if (!err) {
    /* wolfSSL's token search takes a slot number as an int and looks tokens up by index, so
     * the token is filled in here: our slot, our logged-in session, no login of its own. */
    memset(&t->tok, 0, sizeof(t->tok));
    t->tok.func = t->dev.func;
    t->tok.slotId = slot;
    t->tok.handle = t->session;
    t->dev_id = __atomic_fetch_add(&p11__next_dev_id, 1, __ATOMIC_RELAXED);
    ret = wc_CryptoCb_RegisterDevice(t->dev_id, p11__crypto_cb, t);
    if (ret != 0)
      err = otad_fail(eb, OTAD_ECONFIG, "PKCS#11: wolfSSL cannot take token '%s' as a device (%s)",
                      t->label, wc_GetErrorString(ret));
    t->registered = ret == 0;
  }
  if (err) {
    p11__free_token(t);
    return err;
  }
  *out = t;
  return 0;
}

int p11_open(const char *module, const char *pin, p11_token **out, otad_errbuf *eb) {
  *out = NULL;
  if (!module || !*module)
    return otad_fail(eb, OTAD_ECONFIG, "PKCS#11: no module given (set [p11] module)");
  tls_global_init();
  pthread_mutex_lock(&p11__table_lock);
  p11_token *t = p11__tokens;
  while (t && strcmp(t->module, module) != 0)
    t = t->next;
  int err = 0;
  if (t) {
    if ((t->pin == NULL) != (pin == NULL) || (pin && strcmp(t->pin, pin) != 0))
      err = otad_fail(eb, OTAD_ECONFIG, "PKCS#11 module %s is already in use with another PIN",
                      module);
  } else if ((err = p11__open_new(module, pin, &t, eb)) == 0) {
    t->next = p11__tokens;
    p11__tokens = t;
  }
  pthread_mutex_unlock(&p11__table_lock);
  if (!err) *out = t;
  return err;
}

const char *p11_token_label(const p11_token *t) {
  return t ? t->label : "";
}

void p11_shutdown(void) {
  pthread_mutex_lock(&p11__table_lock);
  while (p11__tokens) {
    p11_token *t = p11__tokens;
    p11__tokens = t->next;
    p11__free_token(t);
  }
  pthread_mutex_unlock(&p11__table_lock);
}

/* ---- object IDs and URIs ---- */

/* "02" -> {0x02}; an even number of hex digits, 1 to 32 bytes. */
static int p11__parse_id(const char *hex, uint8_t *id, size_t *len, otad_errbuf *eb) {
  size_t n = hex ? strlen(hex) : 0;
  int bad = n == 0 || n % 2 != 0 || n / 2 > P11_MAX_ID;
  for (size_t i = 0; !bad && i < n / 2; i++) {
    int hi = hex_digit((unsigned char)hex[2 * i]), lo = hex_digit((unsigned char)hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      bad = 1;
    else
      id[i] = (uint8_t)(hi << 4 | lo);
  }
  if (bad)
    return otad_fail(eb, OTAD_ECONFIG,
                     "PKCS#11: object ID '%.70s' is not 1 to %d bytes of hex digits (e.g. \"02\")",
                     hex ? hex : "", P11_MAX_ID);
  *len = n / 2;
  return 0;
}

static void p11__id_text(const uint8_t *id, size_t len, char out[2 * P11_MAX_ID + 1]) {
  hex_encode(id, len, out, false);
}

/* Appends s percent-encoded (RFC 7512: unreserved characters stay, and '/' where asked). */
static char *p11__pct(char *o, const uint8_t *s, size_t n, bool all, bool keep_slash) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    int c = s[i];
    bool plain =
        !all && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/'));
    if (plain) {
      *o++ = (char)c;
    } else {
      *o++ = '%';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 15];
    }
  }
  return o;
}

static char *p11__make_uri(const p11_token *t, const uint8_t *id, size_t id_len) {
  size_t ml = strlen(t->module), ll = strlen(t->label), sl = strlen(t->serial);
  char *u = malloc(64 + 3 * (ml + ll + sl + id_len));
  if (!u) return NULL;
  char *o = u + sprintf(u, "pkcs11:token=");
  o = p11__pct(o, (const uint8_t *)t->label, ll, false, false);
  o += sprintf(o, ";serial=");
  o = p11__pct(o, (const uint8_t *)t->serial, sl, false, false);
  o += sprintf(o, ";id=");
  o = p11__pct(o, id, id_len, true, false);
  o += sprintf(o, ";type=private?module-path=");
  o = p11__pct(o, (const uint8_t *)t->module, ml, false, true);
  *o = '\0';
  return u;
}

/* What a key URI names. */
typedef struct p11__ref {
  p11_token *t;
  uint8_t id[P11_MAX_ID];
  size_t id_len;
  char id_text[2 * P11_MAX_ID + 1];
} p11__ref;

/* Percent-decodes [s, e) into out (size n). Returns the length or -1. */
static long p11__unpct(const char *s, const char *e, uint8_t *out, size_t n) {
  size_t k = 0;
  while (s < e) {
    int c = (unsigned char)*s++;
    if (c == '%') {
      int hi = s < e ? hex_digit((unsigned char)s[0]) : -1;
      int lo = s + 1 < e ? hex_digit((unsigned char)s[1]) : -1;
      if (hi < 0 || lo < 0) return -1;
      c = hi << 4 | lo;
      s += 2;
    }
    if (k + 1 >= n) return -1;
    out[k++] = (uint8_t)c;
  }
  out[k] = 0;
  return (long)k;
}

/* Resolves a key URI to an open token and the object ID. */
static int p11__resolve(const char *uri, p11__ref *r, otad_errbuf *eb) {
  memset(r, 0, sizeof(*r));
  if (!p11_is_uri(uri)) return otad_fail(eb, OTAD_EINVAL, "not a PKCS#11 URI");
  char module[4096] = "", serial[64] = "";
  long id_len = -1;
  uint8_t idbuf[P11_MAX_ID + 1];
  const char *p = uri + 7;
  while (*p) {
    const char *end = p + strcspn(p, ";?&");
    const char *eq = memchr(p, '=', (size_t)(end - p));
    if (eq) {
      size_t nl = (size_t)(eq - p);
      if (nl == 2 && memcmp(p, "id", 2) == 0)
        id_len = p11__unpct(eq + 1, end, idbuf, sizeof(idbuf));
      else if (nl == 6 && memcmp(p, "serial", 6) == 0)
        p11__unpct(eq + 1, end, (uint8_t *)serial, sizeof(serial));
      else if (nl == 11 && memcmp(p, "module-path", 11) == 0)
        p11__unpct(eq + 1, end, (uint8_t *)module, sizeof(module));
    }
    p = *end ? end + 1 : end;
  }
  if (id_len <= 0 || id_len > P11_MAX_ID || !module[0])
    return otad_fail(eb, OTAD_EINVAL, "PKCS#11 URI without an id or a module-path: %.200s", uri);
  memcpy(r->id, idbuf, (size_t)id_len);
  r->id_len = (size_t)id_len;
  p11__id_text(r->id, r->id_len, r->id_text);
  pthread_mutex_lock(&p11__table_lock);
  p11_token *t = p11__tokens;
  while (t && strcmp(t->module, module) != 0)
    t = t->next;
  pthread_mutex_unlock(&p11__table_lock);
  if (!t)
    return otad_fail(eb, OTAD_ECONFIG,
                     "PKCS#11: the token of module %s is not open (the module could not be "
                     "loaded or the login failed)",
                     module);
  if (serial[0] && strcmp(serial, t->serial) != 0)
    return otad_fail(eb, OTAD_ECONFIG,
                     "PKCS#11: the key is in the token with serial %s, but module %s now offers "
                     "token '%s' with serial %s",
                     serial, module, t->label, t->serial);
  r->t = t;
  return 0;
}

/* ---- objects (the caller holds t->lock) ---- */

/* The first object of class cls with CKA_ID id; CK_INVALID_HANDLE when there is none. */
static CK_RV p11__find(p11_token *t, CK_OBJECT_CLASS cls, const uint8_t *id, size_t id_len,
                       CK_OBJECT_HANDLE *h) {
  CK_FUNCTION_LIST *f = t->dev.func;
  CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_ID, (void *)id, (CK_ULONG)id_len}};
  CK_ULONG count = 0;
  *h = CK_INVALID_HANDLE;
  CK_RV rv = f->C_FindObjectsInit(t->session, tmpl, 2);
  if (rv != CKR_OK) return rv;
  rv = f->C_FindObjects(t->session, h, 1, &count);
  f->C_FindObjectsFinal(t->session);
  if (rv == CKR_OK && count == 0) *h = CK_INVALID_HANDLE;
  return rv;
}

/* One attribute's value into a heap buffer. */
static CK_RV p11__attr(p11_token *t, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, uint8_t **val,
                       CK_ULONG *len) {
  CK_FUNCTION_LIST *f = t->dev.func;
  CK_ATTRIBUTE a = {type, NULL, 0};
  *val = NULL;
  CK_RV rv = f->C_GetAttributeValue(t->session, h, &a, 1);
  if (rv != CKR_OK) return rv;
  if (a.ulValueLen == (CK_ULONG)-1) return 0x12; /* CKR_ATTRIBUTE_TYPE_INVALID */
  if (!(a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1))) return 0x2; /* CKR_HOST_MEMORY */
  rv = f->C_GetAttributeValue(t->session, h, &a, 1);
  if (rv != CKR_OK) {
    free(a.pValue);
    return rv;
  }
  *val = a.pValue;
  *len = a.ulValueLen;
  return CKR_OK;
}

/* Finds the private key of r; its key type in *type. */
static int p11__private_key(const p11__ref *r, CK_OBJECT_HANDLE *h, CK_KEY_TYPE *type,
                            CK_BBOOL *can_sign, otad_errbuf *eb) {
  p11_token *t = r->t;
  CK_RV rv = p11__find(t, CKO_PRIVATE_KEY, r->id, r->id_len, h);
  if (rv != CKR_OK)
    return otad_fail(eb, OTAD_ECONFIG, "PKCS#11: cannot search token '%s' for key %s (%s)",
                     t->label, r->id_text, p11__rv_name(rv));
  if (*h == CK_INVALID_HANDLE)
    return otad_fail(eb, OTAD_ECONFIG,
                     "PKCS#11: no private key with ID %s on token '%s' (module %s)", r->id_text,
                     t->label, t->module);
  CK_ATTRIBUTE a[] = {{CKA_KEY_TYPE, type, sizeof(*type)}, {CKA_SIGN, can_sign, sizeof(*can_sign)}};
  *can_sign = CK_TRUE;
  rv = t->dev.func->C_GetAttributeValue(t->session, *h, a, 2);
  if (rv != CKR_OK)
    return otad_fail(eb, OTAD_ECONFIG, "PKCS#11: cannot read the type of key %s on token '%s' (%s)",
                     r->id_text, t->label, p11__rv_name(rv));
  return 0;
}

int p11_key_ref(p11_token *t, const char *id_hex, char **uri, enum p11_key_kind *kind,
                otad_errbuf *eb) {
  *uri = NULL;
  p11__ref r = {.t = t};
  int err = p11__parse_id(id_hex, r.id, &r.id_len, eb);
  if (err) return err;
  p11__id_text(r.id, r.id_len, r.id_text);
  CK_OBJECT_HANDLE h;
  CK_KEY_TYPE type = 0;
  CK_BBOOL can_sign = CK_TRUE;
  pthread_mutex_lock(&t->lock);
  err = p11__private_key(&r, &h, &type, &can_sign, eb);
  pthread_mutex_unlock(&t->lock);
  if (err) return err;
  if (type == CKK_RSA)
    *kind = P11_KEY_RSA;
  else if (type == CKK_EC)
    *kind = P11_KEY_EC;
  else
    return otad_fail(eb, OTAD_ECONFIG,
                     "PKCS#11: the private key with ID %s on token '%s' is %s; only RSA and EC "
                     "keys can be used through wolfSSL's PKCS#11 layer",
                     r.id_text, t->label,
                     type == CKK_EC_EDWARDS ? "an EdDSA (ED25519) key" : "of an unsupported type");
  if (!can_sign)
    return otad_fail(eb, OTAD_ECONFIG,
                     "PKCS#11: the private key with ID %s on token '%s' may not sign (CKA_SIGN "
                     "is false)",
                     r.id_text, t->label);
  if (!(*uri = p11__make_uri(t, r.id, r.id_len)))
    return otad_fail(eb, OTAD_ENOMEM, "out of memory");
  return 0;
}

int p11_cert_pem(p11_token *t, const char *id_hex, char **pem, otad_errbuf *eb) {
  *pem = NULL;
  p11__ref r = {.t = t};
  int err = p11__parse_id(id_hex, r.id, &r.id_len, eb);
  if (err) return err;
  p11__id_text(r.id, r.id_len, r.id_text);
  CK_OBJECT_HANDLE h;
  uint8_t *der = NULL;
  CK_ULONG der_len = 0;
  pthread_mutex_lock(&t->lock);
  CK_RV rv = p11__find(t, CKO_CERTIFICATE, r.id, r.id_len, &h);
  if (rv == CKR_OK && h != CK_INVALID_HANDLE) rv = p11__attr(t, h, CKA_VALUE, &der, &der_len);
  pthread_mutex_unlock(&t->lock);
  if (rv != CKR_OK)
    return otad_fail(eb, OTAD_ECONFIG, "PKCS#11: cannot read certificate %s from token '%s' (%s)",
                     r.id_text, t->label, p11__rv_name(rv));
  if (h == CK_INVALID_HANDLE)
    return otad_fail(eb, OTAD_ECONFIG,
                     "PKCS#11: no certificate with ID %s on token '%s' (module %s)", r.id_text,
                     t->label, t->module);
  WOLFSSL_X509 *x = der_len < 0x7fffffff ? wolfSSL_X509_d2i(NULL, der, (int)der_len) : NULL;
  bool is_cert = x != NULL;
  wolfSSL_X509_free(x);
  int need = is_cert ? wc_DerToPem(der, (word32)der_len, NULL, 0, CERT_TYPE) : -1;
  char *out = need > 0 ? malloc((size_t)need + 1) : NULL;
  int n = out ? wc_DerToPem(der, (word32)der_len, (byte *)out, (word32)need, CERT_TYPE) : -1;
  free(der);
  if (!is_cert)
    return otad_fail(eb, OTAD_ECERT,
                     "PKCS#11: the certificate object with ID %s on token '%s' is not an X.509 "
                     "certificate",
                     r.id_text, t->label);
  if (n <= 0) {
    free(out);
    return otad_fail(eb, OTAD_ENOMEM, "cannot write the certificate from the token as PEM");
  }
  out[n] = '\0';
  *pem = out;
  return 0;
}

/* Modulus and public exponent of an RSA key in the token: the private object's own
 * attributes, else those of the public key object with the same ID. */
static int p11__rsa_public(const p11__ref *r, uint8_t **n, CK_ULONG *n_len, uint8_t **e,
                           CK_ULONG *e_len, otad_errbuf *eb) {
  p11_token *t = r->t;
  CK_OBJECT_HANDLE h;
  CK_KEY_TYPE type = 0;
  CK_BBOOL can_sign;
  *n = *e = NULL;
  pthread_mutex_lock(&t->lock);
  int err = p11__private_key(r, &h, &type, &can_sign, eb);
  CK_RV rv = CKR_OK;
  if (!err && type != CKK_RSA)
    err = otad_fail(eb, OTAD_ECONFIG, "PKCS#11: the key with ID %s on token '%s' is not an RSA key",
                    r->id_text, t->label);
  if (!err) {
    rv = p11__attr(t, h, CKA_MODULUS, n, n_len);
    if (rv == CKR_OK) rv = p11__attr(t, h, CKA_PUBLIC_EXPONENT, e, e_len);
    if (rv != CKR_OK && p11__find(t, CKO_PUBLIC_KEY, r->id, r->id_len, &h) == CKR_OK &&
        h != CK_INVALID_HANDLE) {
      free(*n);
      free(*e);
      *n = *e = NULL;
      rv = p11__attr(t, h, CKA_MODULUS, n, n_len);
      if (rv == CKR_OK) rv = p11__attr(t, h, CKA_PUBLIC_EXPONENT, e, e_len);
    }
  }
  pthread_mutex_unlock(&t->lock);
  if (!err && rv != CKR_OK)
    err = otad_fail(eb, OTAD_ECONFIG,
                    "PKCS#11: cannot read the public half of RSA key %s on token '%s' (%s)",
                    r->id_text, t->label, p11__rv_name(rv));
  if (err) {
    free(*n);
    free(*e);
    *n = *e = NULL;
  }
  return err;
}

int p11_rsa_key(const char *uri, struct RsaKey *key, int *bits, otad_errbuf *eb) {
  p11__ref r;
  int err = p11__resolve(uri, &r, eb);
  uint8_t *n = NULL, *e = NULL;
  CK_ULONG n_len = 0, e_len = 0;
  if (!err) err = p11__rsa_public(&r, &n, &n_len, &e, &e_len, eb);
  if (err) return err;
  size_t lead = 0; /* the size in bits, whatever zero bytes lead the modulus */
  while (lead < n_len && n[lead] == 0)
    lead++;
  int b = (int)(n_len - lead) * 8;
  for (unsigned top = lead < n_len ? n[lead] : 0x80; !(top & 0x80); top <<= 1)
    b--;
  *bits = b;
  free(n);
  free(e);
  /* Only the ID: wolfCrypt asks the token for the size and fills in the public half on
   * the first private operation (decoding it here as well would leak its copy). */
  int ret = wc_InitRsaKey_Id(key, r.id, (int)r.id_len, NULL, r.t->dev_id);
  if (ret != 0)
    return otad_fail(eb, OTAD_ECRYPTO, "cannot set up the token's RSA key: %s",
                     wc_GetErrorString(ret));
  return 0;
}

int p11_rsa_public_der(const char *uri, uint8_t **der, size_t *len, otad_errbuf *eb) {
  *der = NULL;
  p11__ref r;
  int err = p11__resolve(uri, &r, eb);
  uint8_t *n = NULL, *e = NULL;
  CK_ULONG n_len = 0, e_len = 0;
  if (!err) err = p11__rsa_public(&r, &n, &n_len, &e, &e_len, eb);
  if (err) return err;
  RsaKey *pub = malloc(sizeof(*pub));
  uint8_t *out = malloc(n_len + e_len + 64);
  int ret = pub && out ? wc_InitRsaKey(pub, NULL) : MEMORY_E;
  if (ret == 0) {
    ret = wc_RsaPublicKeyDecodeRaw(n, (word32)n_len, e, (word32)e_len, pub);
    if (ret == 0) ret = wc_RsaKeyToPublicDer(pub, out, (word32)(n_len + e_len + 64));
    wc_FreeRsaKey(pub);
  }
  free(pub);
  free(n);
  free(e);
  if (ret <= 0) {
    free(out);
    return otad_fail(eb, OTAD_ECRYPTO, "cannot encode the token's RSA public key: %s",
                     wc_GetErrorString(ret));
  }
  *der = out;
  *len = (size_t)ret;
  return 0;
}

/* The certificate's SubjectPublicKeyInfo (DER) into spki. */
static int p11__cert_spki(const char *cert_pem, uint8_t *spki, int *spki_len, otad_errbuf *eb) {
  WOLFSSL_X509 *x =
      cert_pem ? wolfSSL_X509_load_certificate_buffer((const unsigned char *)cert_pem,
                                                      (int)strlen(cert_pem), WOLFSSL_FILETYPE_PEM)
               : NULL;
  int ok = x && wolfSSL_X509_get_pubkey_buffer(x, spki, spki_len) == WOLFSSL_SUCCESS;
  wolfSSL_X509_free(x);
  return ok ? 0 : otad_fail(eb, OTAD_ECERT, "cannot read the certificate's public key");
}

int p11_key_matches_cert(const char *uri, const char *cert_pem, otad_errbuf *eb) {
  p11__ref r;
  int err = p11__resolve(uri, &r, eb);
  uint8_t spki[2048];
  int spki_len = (int)sizeof(spki);
  if (!err) err = p11__cert_spki(cert_pem, spki, &spki_len, eb);
  CK_OBJECT_HANDLE h;
  CK_KEY_TYPE type = 0;
  CK_BBOOL can_sign;
  if (!err) {
    pthread_mutex_lock(&r.t->lock);
    err = p11__private_key(&r, &h, &type, &can_sign, eb);
    pthread_mutex_unlock(&r.t->lock);
  }
  if (err) return err;

  WC_RNG rng;
  uint8_t challenge[WC_SHA256_DIGEST_SIZE], sig[512], plain[512];
  word32 sig_len = sizeof(sig);
  int ret = wc_InitRng(&rng);
  if (ret != 0) return otad_fail(eb, OTAD_ECRYPTO, "no random numbers: %s", wc_GetErrorString(ret));
  ret = wc_RNG_GenerateBlock(&rng, challenge, sizeof(challenge));
  int signed_ok = 0, fits = 0, cert_kind_ok = 0;
  word32 idx = 0;
  if (ret == 0 && type == CKK_RSA) {
    RsaKey *tk = malloc(sizeof(*tk)), *pub = malloc(sizeof(*pub));
    int bits = 0;
    if (tk && pub && wc_InitRsaKey(pub, NULL) == 0) {
      cert_kind_ok = wc_RsaPublicKeyDecode(spki, &idx, pub, (word32)spki_len) == 0;
      if (cert_kind_ok && p11_rsa_key(uri, tk, &bits, eb) == 0) {
        ret = wc_RsaPSS_Sign_ex(challenge, sizeof(challenge), sig, sig_len, WC_HASH_TYPE_SHA256,
                                WC_MGF1SHA256, WC_SHA256_DIGEST_SIZE, tk, &rng);
        signed_ok = ret > 0;
        if (signed_ok)
          fits =
              wc_RsaPSS_VerifyCheck(sig, (word32)ret, plain, sizeof(plain), challenge,
                                    sizeof(challenge), WC_HASH_TYPE_SHA256, WC_MGF1SHA256, pub) > 0;
        wc_FreeRsaKey(tk);
      } else if (cert_kind_ok) {
        err = OTAD_ECONFIG; /* eb says why */
      }
      wc_FreeRsaKey(pub);
    }
    free(tk);
    free(pub);
  } else if (ret == 0 && type == CKK_EC) {
    ecc_key tk, pub;
    if (wc_ecc_init(&pub) == 0) {
      cert_kind_ok = wc_EccPublicKeyDecode(spki, &idx, &pub, (word32)spki_len) == 0;
      if (cert_kind_ok && wc_ecc_init_id(&tk, r.id, (int)r.id_len, NULL, r.t->dev_id) == 0) {
        ret = wc_ecc_sign_hash(challenge, sizeof(challenge), sig, &sig_len, &rng, &tk);
        signed_ok = ret == 0;
        int verified = 0;
        if (signed_ok &&
            wc_ecc_verify_hash(sig, sig_len, challenge, sizeof(challenge), &verified, &pub) == 0)
          fits = verified == 1;
        wc_ecc_free(&tk);
      }
      wc_ecc_free(&pub);
    }
  }
  wc_FreeRng(&rng);
  if (err) return err;
  if (!cert_kind_ok)
    return otad_fail(eb, OTAD_ECERT,
                     "the certificate's public key is not %s like the token's key %s, so that "
                     "key does not belong to it",
                     type == CKK_RSA ? "RSA" : "EC", r.id_text);
  if (!signed_ok)
    return otad_fail(eb, OTAD_ECRYPTO, "PKCS#11: token '%s' could not sign with key %s (%s)",
                     r.t->label, r.id_text, wc_GetErrorString(ret));
  if (!fits)
    return otad_fail(eb, OTAD_ECERT,
                     "the token's private key %s does not belong to the certificate (a challenge "
                     "it signed does not verify with the certificate's public key)",
                     r.id_text);
  return 0;
}

int p11_tls_configure(void *wolfssl_ctx, const char *cert_pem, const char *uri, otad_errbuf *eb) {
  WOLFSSL_CTX *ctx = wolfssl_ctx;
  p11__ref r;
  int err = p11__resolve(uri, &r, eb);
  if (err) return err;
  if (!cert_pem ||
      wolfSSL_CTX_use_certificate_chain_buffer(ctx, (const unsigned char *)cert_pem,
                                               (long)strlen(cert_pem)) != WOLFSSL_SUCCESS)
    return otad_fail(eb, OTAD_ECERT, "wolfSSL cannot use the client certificate");
  if (wolfSSL_CTX_use_PrivateKey_Id(ctx, r.id, (long)r.id_len, r.t->dev_id) != WOLFSSL_SUCCESS)
    return otad_fail(eb, OTAD_ETLS, "wolfSSL cannot use key %s of token '%s'", r.id_text,
                     r.t->label);
  return 0;
}

#else /* no PKCS#11 in this wolfSSL */

#define P11__NONE                                                                                  \
  otad_fail(eb, OTAD_ECONFIG,                                                                      \
            "PKCS#11: this build's wolfSSL has no PKCS#11 support (configure wolfSSL with "        \
            "--enable-pkcs11)")

int p11_open(const char *module, const char *pin, p11_token **out, otad_errbuf *eb) {
  *out = NULL;
  return P11__NONE;
}
const char *p11_token_label(const p11_token *t) {
  return "";
}
int p11_key_ref(p11_token *t, const char *id_hex, char **uri, enum p11_key_kind *kind,
                otad_errbuf *eb) {
  *uri = NULL;
  return P11__NONE;
}
int p11_cert_pem(p11_token *t, const char *id_hex, char **pem, otad_errbuf *eb) {
  *pem = NULL;
  return P11__NONE;
}
int p11_key_matches_cert(const char *uri, const char *cert_pem, otad_errbuf *eb) {
  return P11__NONE;
}
int p11_rsa_key(const char *uri, struct RsaKey *key, int *bits, otad_errbuf *eb) {
  return P11__NONE;
}
int p11_rsa_public_der(const char *uri, uint8_t **der, size_t *len, otad_errbuf *eb) {
  *der = NULL;
  return P11__NONE;
}
int p11_tls_configure(void *wolfssl_ctx, const char *cert_pem, const char *uri, otad_errbuf *eb) {
  return P11__NONE;
}
void p11_shutdown(void) {}

#endif
