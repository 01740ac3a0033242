/* config.c - reading aktualizr's sota.toml into an otad_config (see config.h).
 *
 * One table (config_keys) lists every key: its section, its name, how its value is checked
 * and where it lives in the struct. Parsing, command-line overrides, dumping and freeing
 * all walk that table, so a new key is one line. Keys aktualizr knows but otad does not
 * use are in the table as KIND_IGNORED: an aktualizr file loads without warnings.
 *
 * libinih splits the file into sections and names and calls our handler once per key.
 * It reads through line_reader(), which does the TOML part inih cannot: it counts lines
 * (the packaged inih does not pass line numbers), strips quotes and comments, rejects
 * malformed lines with "file:line: what", and hands inih one canonical line per physical
 * line ("[section]", "name=" or an empty line) so inih's line numbers match ours. The
 * value itself goes to the handler beside inih, in the reader's state: inih's build-time
 * options (a ';' starting an inline comment, trimming, a 200-byte line limit) would
 * otherwise change quoted values.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* inih keeps section and key names in 50-byte buffers. */
#define NAME_MAX_LEN 48
/* A configuration file is small; anything bigger is a mistake (or not a config). */
#define FILE_MAX_BYTES (1024 * 1024)

#define DEFAULT_CONF_DIRS                                                                          \
  { "/usr/lib/sota/conf.d", "/etc/sota/conf.d", NULL }

enum key_kind {
  KIND_STRING,   /* any text; "" unsets */
  KIND_SOURCE,   /* "file" | "pkcs11" */
  KIND_LOGLEVEL, /* integer 0..5 */
  KIND_POSITIVE, /* integer 1..INT_MAX */
  KIND_MODE,     /* enum provision_mode by name */
  KIND_KEY_TYPE, /* enum uptane_key_type by name */
  KIND_BOOL,     /* true | false (bool field) */
  KIND_IGNORED   /* an aktualizr key otad does not use: accepted quietly */
};

typedef struct config_key {
  const char *section;
  const char *name;
  enum key_kind kind;
  size_t offset; /* of the field in otad_config; unused for KIND_IGNORED */
  bool secret;   /* dumped as "<redacted>" */
} config_key;

#define KEY(sec, nm, kind, field)                                                                  \
  { sec, nm, kind, offsetof(otad_config, field), false }
#define SECRET(sec, nm, field)                                                                     \
  { sec, nm, KIND_STRING, offsetof(otad_config, field), true }
#define IGNORED(sec, nm)                                                                           \
  { sec, nm, KIND_IGNORED, 0, false }

/* In the order config_dump() writes them. */
static const config_key config_keys[] = {
    KEY("logger", "loglevel", KIND_LOGLEVEL, loglevel),

    KEY("tls", "server", KIND_STRING, tls_server),
    KEY("tls", "server_url_path", KIND_STRING, tls_server_url_path),
    KEY("tls", "ca_source", KIND_SOURCE, tls_ca_source),
    KEY("tls", "pkey_source", KIND_SOURCE, tls_pkey_source),
    KEY("tls", "cert_source", KIND_SOURCE, tls_cert_source),

    KEY("provision", "server", KIND_STRING, provision_server),
    SECRET("provision", "p12_password", p12_password),
    KEY("provision", "expiry_days", KIND_POSITIVE, expiry_days),
    KEY("provision", "provision_path", KIND_STRING, provision_path),
    KEY("provision", "mode", KIND_MODE, mode),
    KEY("provision", "device_id", KIND_STRING, device_id),
    KEY("provision", "primary_ecu_serial", KIND_STRING, primary_ecu_serial),
    KEY("provision", "primary_ecu_hardware_id", KIND_STRING, primary_ecu_hardware_id),
    KEY("provision", "ecu_registration_endpoint", KIND_STRING, ecu_registration_endpoint),

    KEY("uptane", "polling_sec", KIND_POSITIVE, polling_sec),
    KEY("uptane", "director_server", KIND_STRING, director_server),
    KEY("uptane", "repo_server", KIND_STRING, repo_server),
    KEY("uptane", "key_source", KIND_SOURCE, key_source),
    KEY("uptane", "key_type", KIND_KEY_TYPE, key_type),
    IGNORED("uptane", "force_install_completion"),
    IGNORED("uptane", "secondary_config_file"),
    IGNORED("uptane", "secondary_preinstall_wait_sec"),
    IGNORED("uptane", "running_mode"),
    IGNORED("uptane", "legacy_interface"),
    IGNORED("uptane", "polling"),

    KEY("pacman", "type", KIND_STRING, pacman_type),
    KEY("pacman", "images_path", KIND_STRING, images_path),
    KEY("pacman", "install_command", KIND_STRING, pacman_install_command),
    IGNORED("pacman", "os"),
    IGNORED("pacman", "sysroot"),
    IGNORED("pacman", "ostree_server"),
    IGNORED("pacman", "packages_file"),
    IGNORED("pacman", "fake_need_reboot"),

    KEY("storage", "path", KIND_STRING, storage_path),
    IGNORED("storage", "type"),
    IGNORED("storage", "sqldb_path"),
    IGNORED("storage", "uptane_metadata_path"),
    IGNORED("storage", "uptane_private_key_path"),
    IGNORED("storage", "uptane_public_key_path"),
    IGNORED("storage", "tls_cacert_path"),
    IGNORED("storage", "tls_pkey_path"),
    IGNORED("storage", "tls_clientcert_path"),

    KEY("import", "base_path", KIND_STRING, import_base_path),
    KEY("import", "tls_cacert_path", KIND_STRING, import_tls_cacert_path),
    KEY("import", "tls_clientcert_path", KIND_STRING, import_tls_clientcert_path),
    KEY("import", "tls_pkey_path", KIND_STRING, import_tls_pkey_path),
    IGNORED("import", "uptane_private_key_path"),
    IGNORED("import", "uptane_public_key_path"),

    KEY("p11", "module", KIND_STRING, p11_module),
    SECRET("p11", "pass", p11_pass),
    KEY("p11", "tls_pkey_id", KIND_STRING, p11_tls_pkey_id),
    KEY("p11", "tls_clientcert_id", KIND_STRING, p11_tls_clientcert_id),
    KEY("p11", "uptane_key_id", KIND_STRING, p11_uptane_key_id),
    IGNORED("p11", "tls_cacert_id"),

    KEY("bootloader", "reboot_sentinel_dir", KIND_STRING, reboot_sentinel_dir),
    KEY("bootloader", "reboot_command", KIND_STRING, reboot_command),
    IGNORED("bootloader", "rollback_mode"),
    IGNORED("bootloader", "reboot_sentinel_name"),

    KEY("telemetry", "report_network", KIND_BOOL, report_network),
    KEY("telemetry", "report_config", KIND_BOOL, report_config),

    KEY("network", "timeout_sec", KIND_POSITIVE, network_timeout_sec),
    IGNORED("network", "curl_proxy"),
    IGNORED("network", "curl_bandwith"), /* sic: aktualizr's spelling */
    IGNORED("network", "use_oscp"),      /* sic */
};

#define N_KEYS (sizeof(config_keys) / sizeof(config_keys[0]))

static const char *const mode_names[] = {
    [PROVISION_AUTO] = "auto",
    [PROVISION_SHARED_CRED] = "SharedCred",
    [PROVISION_DEVICE_CRED] = "DeviceCred",
    [PROVISION_SHARED_CRED_REUSE] = "SharedCredReuse",
};

static const char *const key_type_names[] = {
    [KEY_RSA2048] = "RSA2048",
    [KEY_RSA3072] = "RSA3072",
    [KEY_RSA4096] = "RSA4096",
    [KEY_ED25519] = "ED25519",
};

/* ---- the table ---------------------------------------------------------------------- */

static const config_key *key_find(const char *section, const char *name) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (strcmp(config_keys[i].section, section) == 0 && strcmp(config_keys[i].name, name) == 0)
      return &config_keys[i];
  return NULL;
}

static char **key_str(otad_config *cfg, const config_key *k) {
  return (char **)((char *)cfg + k->offset);
}

static int *key_int(otad_config *cfg, const config_key *k) {
  return (int *)((char *)cfg + k->offset);
}

static bool *key_bool(otad_config *cfg, const config_key *k) {
  return (bool *)((char *)cfg + k->offset);
}

static bool key_is_string(const config_key *k) {
  return k->kind == KIND_STRING || k->kind == KIND_SOURCE;
}

/* Parses a whole decimal integer in [min, max]. */
static bool parse_int(const char *s, long min, long max, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max) return false;
  *out = (int)v;
  return true;
}

static int name_index(const char *const *names, int n, const char *s) {
  for (int i = 0; i < n; i++)
    if (names[i] && strcmp(names[i], s) == 0) return i;
  return -1;
}

/* Stores value into the field of k after checking it; where ("file:line: " or "")
 * prefixes the error. Values are echoed in errors cut to 64 bytes. */
static int key_apply(otad_config *cfg, const config_key *k, const char *value, const char *where,
                     otad_errbuf *eb) {
  int i;
  switch (k->kind) {
  case KIND_IGNORED: return 0;
  case KIND_SOURCE:
    if (strcmp(value, "file") != 0 && strcmp(value, "pkcs11") != 0)
      return otad_fail(eb, OTAD_ECONFIG, "%s%s.%s: must be \"file\" or \"pkcs11\", not '%.64s'",
                       where, k->section, k->name, value);
    /* fall through */
  case KIND_STRING: {
    char *copy = NULL;
    if (*value && !(copy = strdup(value)))
      return otad_fail(eb, OTAD_ENOMEM, "%s%s.%s: out of memory", where, k->section, k->name);
    char **field = key_str(cfg, k);
    free(*field);
    *field = copy; /* "" unsets, as in aktualizr where empty means "not given" */
    return 0;
  }
  case KIND_LOGLEVEL:
    if (!parse_int(value, 0, 5, key_int(cfg, k)))
      return otad_fail(eb, OTAD_ECONFIG,
                       "%s%s.%s: must be 0..5 (trace, debug, info, warning, error, fatal), "
                       "not '%.64s'",
                       where, k->section, k->name, value);
    return 0;
  case KIND_POSITIVE:
    if (!parse_int(value, 1, INT_MAX, key_int(cfg, k)))
      return otad_fail(eb, OTAD_ECONFIG, "%s%s.%s: must be a positive integer, not '%.64s'", where,
                       k->section, k->name, value);
    return 0;
  case KIND_MODE:
    i = name_index(mode_names, 4, value);
    if (i <= PROVISION_AUTO)
      return otad_fail(eb, OTAD_ECONFIG,
                       "%s%s.%s: must be SharedCred, DeviceCred or SharedCredReuse, not '%.64s'",
                       where, k->section, k->name, value);
    *key_int(cfg, k) = i;
    return 0;
  case KIND_KEY_TYPE:
    i = name_index(key_type_names, 4, value);
    if (i < 0)
      return otad_fail(eb, OTAD_ECONFIG,
                       "%s%s.%s: must be RSA2048, RSA3072, RSA4096 or ED25519, not '%.64s'", where,
                       k->section, k->name, value);
    *key_int(cfg, k) = i;
    return 0;
  case KIND_BOOL:
    /* TOML's booleans; aktualizr's parser also takes 1 and 0 */
    if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
      *key_bool(cfg, k) = true;
    else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
      *key_bool(cfg, k) = false;
    else
      return otad_fail(eb, OTAD_ECONFIG, "%s%s.%s: must be true or false, not '%.64s'", where,
                       k->section, k->name, value);
    return 0;
  }
  return 0;
}

/* ---- one file --------------------------------------------------------------------------- */

/* The reader's and the handler's shared state while inih walks one file. */
typedef struct file_parse {
  otad_config *cfg;
  const char *file;
  FILE *fp;
  char *raw; /* current physical line (getline's buffer) */
  size_t raw_cap;
  int lineno;
  char *value; /* the current key's value, unquoted */
  config_warn_fn warn;
  void *warn_ctx;
  otad_errbuf *eb;
  int rc; /* first error; the reader then reports end of file */
} file_parse;

static int parse_fail(file_parse *p, int err, const char *what, const char *arg) {
  p->rc = otad_fail(p->eb, err, "%s:%d: %s%s%s%s", p->file, p->lineno, what, arg ? " '" : "",
                    arg ? arg : "", arg ? "'" : "");
  return p->rc;
}

static bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

static char *skip_space(char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  return s;
}

/* After a value or a section header only a comment may follow. */
static bool only_comment_left(char *s) {
  s = skip_space(s);
  return *s == '\0' || *s == '#';
}

/* Appends the UTF-8 form of code point cp at out; returns bytes written (0 if invalid). */
static int utf8_put(char *out, unsigned long cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  if (cp <= 0x10FFFF) {
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
  }
  return 0;
}

/* Decodes a TOML basic string starting after its opening quote, in place (the result is
 * never longer than the source). Returns a pointer past the closing quote, or NULL with
 * the error reported. */
static char *lex_basic_string(file_parse *p, char *s, char **value) {
  char *out = s;
  *value = s;
  for (;;) {
    char c = *s++;
    if (c == '\0') {
      parse_fail(p, OTAD_ECONFIG, "unterminated string (missing closing '\"')", NULL);
      return NULL;
    }
    if (c == '"') break;
    if (c != '\\') {
      *out++ = c;
      continue;
    }
    c = *s++;
    const char *simple = c ? strchr("\"\\bfnrt", c) : NULL;
    if (c == '\0') {
      parse_fail(p, OTAD_ECONFIG, "unterminated string (missing closing '\"')", NULL);
      return NULL;
    } else if (simple) {
      *out++ = "\"\\\b\f\n\r\t"[simple - "\"\\bfnrt"];
    } else if (c == 'u' || c == 'U') {
      int digits = c == 'u' ? 4 : 8, n = 0;
      unsigned long cp = 0;
      char hex[9] = {0};
      memcpy(hex, s, strnlen(s, (size_t)digits));
      for (n = 0; n < digits && hex[n] && strchr("0123456789abcdefABCDEF", hex[n]); n++)
        cp = cp * 16 + (unsigned long)(hex[n] <= '9' ? hex[n] - '0' : (hex[n] | 0x20) - 'a' + 10);
      int len = n == digits ? utf8_put(out, cp) : 0;
      /* "\uXXXX" is 6 bytes and at most 3 out; "\UXXXXXXXX" 10 and at most 4 out. */
      if (len == 0 || cp == 0) {
        parse_fail(p, OTAD_ECONFIG, "invalid unicode escape in string", NULL);
        return NULL;
      }
      out += len;
      s += digits;
    } else {
      char esc[3] = {'\\', c, '\0'};
      parse_fail(p, OTAD_ECONFIG, "invalid escape in string:", esc);
      return NULL;
    }
  }
  *out = '\0';
  return s;
}

/* The value after '=': "basic", 'literal' or bare (up to a '#'). */
static int lex_value(file_parse *p, char *s, char **value) {
  char *end;
  if (s[0] == '"' || s[0] == '\'') {
    if (s[1] == s[0] && s[2] == s[0])
      return parse_fail(p, OTAD_ECONFIG, "multi-line strings are not supported", NULL);
    if (s[0] == '"') {
      end = lex_basic_string(p, s + 1, value);
      if (!end) return p->rc;
      /* end is past the quote; the decoded value was terminated in place before it. */
    } else {
      *value = s + 1;
      char *close = strchr(s + 1, '\'');
      if (!close)
        return parse_fail(p, OTAD_ECONFIG, "unterminated string (missing closing \"'\")", NULL);
      *close = '\0';
      end = close + 1;
    }
    if (!only_comment_left(end))
      return parse_fail(p, OTAD_ECONFIG, "unexpected text after the value:", skip_space(end));
    return 0;
  }
  end = strchr(s, '#');
  if (end)
    *end = '\0';
  else
    end = s + strlen(s);
  while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
    *--end = '\0';
  if (*s == '\0') return parse_fail(p, OTAD_ECONFIG, "missing value (write key = \"value\")", NULL);
  *value = s;
  return 0;
}

/* Checks one physical line and writes its canonical form for inih into out. */
static int lex_line(file_parse *p, char *line, char *out, int out_size) {
  char *s = skip_space(line), *name, *value = NULL;
  if (*s == '\0' || *s == '#' || *s == ';') {
    out[0] = '\0';
    return 0;
  }
  if (*s == '[') {
    if (s[1] == '[')
      return parse_fail(p, OTAD_ECONFIG, "arrays of tables ('[[...]]') are not supported", NULL);
    char *close = strchr(s, ']');
    if (!close) return parse_fail(p, OTAD_ECONFIG, "section header without ']'", NULL);
    if (!only_comment_left(close + 1))
      return parse_fail(p, OTAD_ECONFIG,
                        "unexpected text after the section header:", skip_space(close + 1));
    name = skip_space(s + 1);
    char *e = close;
    while (e > name && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    *e = '\0';
    for (char *c = name; *c; c++)
      if (!is_name_char(*c) && *c != '.')
        return parse_fail(p, OTAD_ECONFIG, "invalid section name", name);
    if (*name == '\0' || strlen(name) > NAME_MAX_LEN)
      return parse_fail(p, OTAD_ECONFIG, "invalid section name", name);
    snprintf(out, (size_t)out_size, "[%s]", name);
    return 0;
  }
  name = s;
  while (is_name_char(*s))
    s++;
  size_t name_len = (size_t)(s - name);
  s = skip_space(s);
  if (*s != '=') {
    if (*s == '.' && name_len > 0)
      return parse_fail(p, OTAD_ECONFIG, "dotted keys are not supported (use a [section])", NULL);
    if (name_len == 0)
      return parse_fail(p, OTAD_ECONFIG, "expected a key name or a [section]", NULL);
    return parse_fail(p, OTAD_ECONFIG, "expected key = \"value\" (missing '=')", NULL);
  }
  if (name_len == 0) return parse_fail(p, OTAD_ECONFIG, "missing key name before '='", NULL);
  if (name_len > NAME_MAX_LEN) return parse_fail(p, OTAD_ECONFIG, "key name too long", NULL);
  name[name_len] = '\0';
  if (lex_value(p, skip_space(s + 1), &value) != 0) return p->rc;
  free(p->value);
  if (!(p->value = strdup(value))) return parse_fail(p, OTAD_ENOMEM, "out of memory", NULL);
  snprintf(out, (size_t)out_size, "%s=", name);
  return 0;
}

/* inih's reader: one canonical line per physical line; NULL at the end or on an error. */
static char *line_reader(char *str, int num, void *stream) {
  file_parse *p = stream;
  if (p->rc != 0) return NULL;
  ssize_t n = getline(&p->raw, &p->raw_cap, p->fp);
  if (n < 0) return NULL;
  p->lineno++;
  while (n > 0 && (p->raw[n - 1] == '\n' || p->raw[n - 1] == '\r'))
    p->raw[--n] = '\0';
  if ((size_t)n != strlen(p->raw)) {
    parse_fail(p, OTAD_ECONFIG, "NUL byte in line", NULL);
    return NULL;
  }
  char *line = p->raw;
  if (p->lineno == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3;
  if (num < NAME_MAX_LEN + 4) { /* cannot happen with any inih build we know */
    parse_fail(p, OTAD_ECONFIG, "libinih line buffer too small", NULL);
    return NULL;
  }
  if (lex_line(p, line, str, num - 1) != 0) return NULL;
  strcat(str, "\n");
  return str;
}

/* inih's handler: one key of the current section; its value is in p->value. */
static int key_handler(void *user, const char *section, const char *name, const char *inih_value) {
  file_parse *p = user;
  (void)inih_value; /* always "": the lexer keeps the real one */
  char where[512];
  const config_key *k = key_find(section, name);
  if (!k) {
    if (p->warn) {
      char msg[600];
      snprintf(msg, sizeof(msg), "%s:%d: unknown key '%s%s%s' (ignored)", p->file, p->lineno,
               section, *section ? "." : "", name);
      p->warn(p->warn_ctx, msg);
    }
    return 1;
  }
  snprintf(where, sizeof(where), "%s:%d: ", p->file, p->lineno);
  p->rc = key_apply(p->cfg, k, p->value, where, p->eb);
  return p->rc == 0;
}

static int load_file(otad_config *cfg, const char *file, config_warn_fn warn, void *ctx,
                     otad_errbuf *eb) {
  struct stat st;
  FILE *fp = fopen(file, "r");
  if (!fp) {
    if (errno == ENOENT) return otad_fail(eb, OTAD_ENOENT, "%s: no such file or directory", file);
    return otad_fail(eb, OTAD_EIO, "%s: %s", file, strerror(errno));
  }
  if (fstat(fileno(fp), &st) == 0 && st.st_size > FILE_MAX_BYTES) {
    fclose(fp);
    return otad_fail(eb, OTAD_ECONFIG, "%s: larger than %d bytes, not a configuration file", file,
                     FILE_MAX_BYTES);
  }
  file_parse p = {.cfg = cfg, .file = file, .fp = fp, .warn = warn, .warn_ctx = ctx, .eb = eb};
  int ret = ini_parse_stream(line_reader, &p, key_handler, &p);
  if (p.rc == 0 && ferror(fp))
    p.rc = otad_fail(eb, OTAD_EIO, "%s:%d: read error", file, p.lineno + 1);
  else if (p.rc == 0 && ret == -2)
    p.rc = otad_fail(eb, OTAD_ENOMEM, "%s: out of memory", file);
  else if (p.rc == 0 && ret != 0) /* inih refused a line we made canonical: a bug here */
    p.rc = otad_fail(eb, OTAD_ECONFIG, "%s:%d: malformed line", file, ret);
  fclose(fp);
  free(p.raw);
  free(p.value);
  return p.rc;
}

/* ---- files and directories ---------------------------------------------------------------- */

/* A list of configuration files: name (for ordering and replacing) and full path. */
typedef struct file_list {
  struct file_entry {
    char *name;
    char *path;
  } * v;
  size_t n, cap;
} file_list;

static void file_list_free(file_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].name);
    free(l->v[i].path);
  }
  free(l->v);
  *l = (file_list){0};
}

static bool has_toml_suffix(const char *name) {
  size_t n = strlen(name);
  return n > 5 && strcmp(name + n - 5, ".toml") == 0;
}

static char *path_join(const char *dir, const char *name) {
  size_t dl = strlen(dir);
  while (dl > 1 && dir[dl - 1] == '/')
    dl--;
  char *s = malloc(dl + 1 + strlen(name) + 1);
  if (s) sprintf(s, "%.*s/%s", (int)dl, dir, name);
  return s;
}

/* Adds every *.toml file of dir to l; a name already in l is replaced (its path updated).
 * A missing directory adds nothing when missing_ok. */
static int file_list_add_dir(file_list *l, const char *dir, bool missing_ok, otad_errbuf *eb) {
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT && missing_ok) return 0;
    if (errno == ENOENT) return otad_fail(eb, OTAD_ENOENT, "%s: no such file or directory", dir);
    return otad_fail(eb, OTAD_EIO, "%s: %s", dir, strerror(errno));
  }
  int rc = 0;
  struct dirent *de;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    if (!has_toml_suffix(de->d_name)) continue;
    char *path = path_join(dir, de->d_name);
    struct stat st;
    if (!path) {
      rc = otad_fail(eb, OTAD_ENOMEM, "%s: out of memory", dir);
      break;
    }
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
      free(path); /* a directory or a dangling link named *.toml is not a file to read */
      continue;
    }
    size_t i;
    for (i = 0; i < l->n && strcmp(l->v[i].name, de->d_name) != 0; i++)
      ;
    if (i < l->n) {
      free(l->v[i].path);
      l->v[i].path = path;
      continue;
    }
    if (l->n == l->cap) {
      size_t cap = l->cap ? l->cap * 2 : 8;
      struct file_entry *v = realloc(l->v, cap * sizeof(*v));
      if (!v) {
        free(path);
        rc = otad_fail(eb, OTAD_ENOMEM, "%s: out of memory", dir);
        break;
      }
      l->v = v;
      l->cap = cap;
    }
    l->v[l->n].path = path;
    if (!(l->v[l->n].name = strdup(de->d_name))) {
      free(path);
      rc = otad_fail(eb, OTAD_ENOMEM, "%s: out of memory", dir);
      break;
    }
    l->n++;
  }
  closedir(d);
  return rc;
}

static int entry_cmp(const void *a, const void *b) {
  return strcmp(((const struct file_entry *)a)->name, ((const struct file_entry *)b)->name);
}

static int file_list_load(otad_config *cfg, file_list *l, config_warn_fn warn, void *ctx,
                          otad_errbuf *eb) {
  if (l->n > 1) qsort(l->v, l->n, sizeof(l->v[0]), entry_cmp);
  for (size_t i = 0; i < l->n; i++) {
    int rc = load_file(cfg, l->v[i].path, warn, ctx, eb);
    if (rc != 0) return rc;
  }
  return 0;
}

/* ---- public functions ------------------------------------------------------------------- */

void config_init(otad_config *cfg) {
  *cfg = (otad_config){
      .loglevel = 2,
      .expiry_days = 36000,
      .mode = PROVISION_AUTO,
      .polling_sec = 10,
      .network_timeout_sec = 60,
      .key_type = KEY_RSA2048,
      .report_network = true,
      .report_config = true,
  };
}

void config_free(otad_config *cfg) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (key_is_string(&config_keys[i])) free(*key_str(cfg, &config_keys[i]));
  config_init(cfg);
}

int config_load_path(otad_config *cfg, const char *path, config_warn_fn warn, void *ctx,
                     otad_errbuf *eb) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT) return otad_fail(eb, OTAD_ENOENT, "%s: no such file or directory", path);
    return otad_fail(eb, OTAD_EIO, "%s: %s", path, strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return load_file(cfg, path, warn, ctx, eb);
  file_list l = {0};
  int rc = file_list_add_dir(&l, path, false, eb);
  if (rc == 0 && l.n == 0 && warn) {
    char msg[600];
    snprintf(msg, sizeof(msg), "%s: no *.toml files in this directory", path);
    warn(ctx, msg);
  }
  if (rc == 0) rc = file_list_load(cfg, &l, warn, ctx, eb);
  file_list_free(&l);
  return rc;
}

int config_load_default(otad_config *cfg, const char *const *dirs, config_warn_fn warn, void *ctx,
                        otad_errbuf *eb) {
  static const char *const default_dirs[] = DEFAULT_CONF_DIRS;
  file_list l = {0};
  int rc = 0;
  for (const char *const *d = dirs ? dirs : default_dirs; rc == 0 && *d; d++)
    rc = file_list_add_dir(&l, *d, true, eb);
  if (rc == 0) rc = file_list_load(cfg, &l, warn, ctx, eb);
  file_list_free(&l);
  return rc;
}

int config_set(otad_config *cfg, const char *section_key, const char *value, otad_errbuf *eb) {
  const char *dot = strchr(section_key, '.');
  char section[NAME_MAX_LEN + 1];
  if (!dot || (size_t)(dot - section_key) > NAME_MAX_LEN)
    return otad_fail(eb, OTAD_ECONFIG, "'%.64s': expected section.key, e.g. provision.device_id",
                     section_key);
  memcpy(section, section_key, (size_t)(dot - section_key));
  section[dot - section_key] = '\0';
  const config_key *k = key_find(section, dot + 1);
  if (!k) return otad_fail(eb, OTAD_ECONFIG, "unknown key '%.64s'", section_key);
  return key_apply(cfg, k, value ? value : "", "", eb);
}

/* Sets *field to a copy of value when it is unset. */
static int default_str(char **field, const char *value) {
  if (*field) return 0;
  *field = strdup(value);
  return *field ? 0 : OTAD_ENOMEM;
}

/* Sets *field to base + suffix (base without trailing '/') when it is unset. */
static int default_url(char **field, const char *base, const char *suffix) {
  if (*field) return 0;
  size_t bl = strlen(base);
  while (bl > 0 && base[bl - 1] == '/')
    bl--;
  if (!(*field = malloc(bl + strlen(suffix) + 1))) return OTAD_ENOMEM;
  sprintf(*field, "%.*s%s", (int)bl, base, suffix);
  return 0;
}

/* pkcs11 sources need the module and the object's ID. */
static int check_pkcs11(const otad_config *cfg, const char *source, const char *what,
                        const char *id, const char *id_key, otad_errbuf *eb) {
  if (!source || strcmp(source, "pkcs11") != 0) return 0;
  if (!cfg->p11_module)
    return otad_fail(eb, OTAD_ECONFIG, "%s = \"pkcs11\" needs p11.module (the PKCS#11 library)",
                     what);
  if (id_key && !id)
    return otad_fail(eb, OTAD_ECONFIG, "%s = \"pkcs11\" needs p11.%s", what, id_key);
  return 0;
}

int config_finish(otad_config *cfg, otad_errbuf *eb) {
  int rc = 0;
  if (cfg->mode == PROVISION_AUTO)
    cfg->mode = cfg->provision_path ? PROVISION_SHARED_CRED : PROVISION_DEVICE_CRED;
  if ((cfg->mode == PROVISION_SHARED_CRED || cfg->mode == PROVISION_SHARED_CRED_REUSE) &&
      !cfg->provision_path)
    return otad_fail(eb, OTAD_ECONFIG,
                     "provision.mode = \"%s\" needs provision.provision_path "
                     "(the credentials.zip)",
                     mode_names[cfg->mode]);
  if ((rc = check_pkcs11(cfg, cfg->tls_pkey_source, "tls.pkey_source", cfg->p11_tls_pkey_id,
                         "tls_pkey_id", eb)) != 0 ||
      (rc = check_pkcs11(cfg, cfg->tls_cert_source, "tls.cert_source", cfg->p11_tls_clientcert_id,
                         "tls_clientcert_id", eb)) != 0 ||
      (rc = check_pkcs11(cfg, cfg->key_source, "uptane.key_source", cfg->p11_uptane_key_id,
                         "uptane_key_id", eb)) != 0 ||
      (rc = check_pkcs11(cfg, cfg->tls_ca_source, "tls.ca_source", NULL, NULL, eb)) != 0)
    return rc;
  /* The server issues the TLS key in SharedCred mode; a token key only fits DeviceCred. */
  if (cfg->mode != PROVISION_DEVICE_CRED) {
    const char *src =
        cfg->tls_pkey_source && strcmp(cfg->tls_pkey_source, "pkcs11") == 0   ? "tls.pkey_source"
        : cfg->tls_cert_source && strcmp(cfg->tls_cert_source, "pkcs11") == 0 ? "tls.cert_source"
                                                                              : NULL;
    if (src)
      return otad_fail(eb, OTAD_ECONFIG,
                       "%s = \"pkcs11\" needs provision.mode = \"DeviceCred\": in %s mode the "
                       "server issues the TLS key",
                       src, mode_names[cfg->mode]);
  }

  /* The server may also come later from credentials.zip (autoprov.url) or
   * tls.server_url_path; the derived URLs are filled here only when it is known now. */
  const char *server = cfg->tls_server ? cfg->tls_server : cfg->provision_server;
  if (cfg->tls_server) rc |= default_str(&cfg->provision_server, cfg->tls_server);
  if (server) {
    rc |= default_url(&cfg->director_server, server, "/director");
    rc |= default_url(&cfg->repo_server, server, "/repo");
  }
  rc |= default_str(&cfg->tls_ca_source, "file");
  rc |= default_str(&cfg->tls_pkey_source, "file");
  rc |= default_str(&cfg->tls_cert_source, "file");
  rc |= default_str(&cfg->key_source, "file");
  rc |= default_str(&cfg->p12_password, "");
  rc |= default_str(&cfg->storage_path, "/var/sota");
  rc |= default_str(&cfg->import_base_path, "/var/sota/import");
  if (!cfg->images_path && cfg->storage_path) { /* beside the store (aktualizr: /var/sota/images) */
    size_t n = strlen(cfg->storage_path) + sizeof("/images");
    cfg->images_path = malloc(n);
    if (cfg->images_path)
      snprintf(cfg->images_path, n, "%s/images", cfg->storage_path);
    else
      rc |= OTAD_ENOMEM;
  }
  rc |= default_str(&cfg->import_tls_cacert_path, "root.crt");
  rc |= default_str(&cfg->import_tls_clientcert_path, "client.pem");
  rc |= default_str(&cfg->import_tls_pkey_path, "pkey.pem");
  if (rc != 0) return otad_fail(eb, OTAD_ENOMEM, "configuration: out of memory");
  return 0;
}

enum provision_mode config_mode(const otad_config *cfg) {
  if (cfg->mode != PROVISION_AUTO) return cfg->mode;
  return cfg->provision_path ? PROVISION_SHARED_CRED : PROVISION_DEVICE_CRED;
}

char *config_path(const otad_config *cfg, const char *path) {
  if (!path) return NULL;
  if (path[0] == '/') return strdup(path);
  return path_join(cfg->import_base_path ? cfg->import_base_path : "/var/sota/import", path);
}

/* Writes s as a TOML basic string. */
static void dump_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    const char *esc = strchr("\"\\\b\f\n\r\t", c);
    if (c != '\0' && esc)
      fprintf(f, "\\%c", "\"\\bfnrt"[esc - "\"\\\b\f\n\r\t"]);
    else if (c < 0x20 || c == 0x7F)
      fprintf(f, "\\u%04X", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

/* Whether k has a value to write (unset strings and an unresolved mode do not). */
static bool dump_has_value(const otad_config *cfg, const config_key *k) {
  otad_config *c = (otad_config *)cfg; /* key_str/key_int only read here */
  switch (k->kind) {
  case KIND_IGNORED: return false;
  case KIND_STRING:
  case KIND_SOURCE: return *key_str(c, k) != NULL;
  case KIND_MODE: return *key_int(c, k) != PROVISION_AUTO;
  default: return true;
  }
}

static void dump_key(FILE *f, const otad_config *cfg, const config_key *k) {
  otad_config *c = (otad_config *)cfg;
  fprintf(f, "%s = ", k->name);
  switch (k->kind) {
  case KIND_STRING:
  case KIND_SOURCE: {
    const char *s = *key_str(c, k);
    /* The dump is sent to the server: secrets never leave the device. */
    dump_string(f, k->secret && *s ? "<redacted>" : s);
    break;
  }
  case KIND_MODE: dump_string(f, config_mode_name((enum provision_mode) * key_int(c, k))); break;
  case KIND_KEY_TYPE:
    dump_string(f, config_key_type_name((enum uptane_key_type) * key_int(c, k)));
    break;
  case KIND_BOOL: fputs(*key_bool(c, k) ? "true" : "false", f); break;
  default: fprintf(f, "%d", *key_int(c, k)); break;
  }
  fputc('\n', f);
}

char *config_dump(const otad_config *cfg) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  bool first = true;
  for (size_t i = 0; i < N_KEYS;) {
    /* One run of the table per section; its header only if some key has a value. */
    size_t end = i;
    bool any = false;
    for (; end < N_KEYS && strcmp(config_keys[end].section, config_keys[i].section) == 0; end++)
      any = any || dump_has_value(cfg, &config_keys[end]);
    if (any) {
      fprintf(f, "%s[%s]\n", first ? "" : "\n", config_keys[i].section);
      first = false;
    }
    for (; i < end; i++)
      if (dump_has_value(cfg, &config_keys[i])) dump_key(f, cfg, &config_keys[i]);
  }
  if (fclose(f) != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

const char *config_mode_name(enum provision_mode m) {
  return (unsigned)m < sizeof(mode_names) / sizeof(mode_names[0]) ? mode_names[m] : "unknown";
}

const char *config_key_type_name(enum uptane_key_type t) {
  return (unsigned)t < sizeof(key_type_names) / sizeof(key_type_names[0]) ? key_type_names[t]
                                                                          : "unknown";
}
