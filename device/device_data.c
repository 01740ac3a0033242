/* device_data.c - the device data: hardware, installed target, network and configuration,
 * sent to the server when they change (see device_data.h).
 *
 * polling.c calls device_data_send() inside the update cycle, after the manifest and the
 * events: the kinds go one after another over d->req, each only when its body's SHA-256
 * differs from the one stored when the server last accepted that kind. Sending device data
 * never fails the cycle: an HTTP error is a warning and the next kind is tried; a transport
 * error is a warning and ends the sending (the server just became unreachable). Whatever
 * was not accepted is tried again on the next cycle, because its digest was not stored.
 * Nothing here raises an event, so the journal shows the cycle as before.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../core/log.h"
#include "../crypto/hash.h"
#include "device_data.h"
#include "request.h"

#define SMALL_FILE_MAX (256 * 1024) /* /proc/cpuinfo of a many-core machine fits */

static const struct data_kind {
  const char *name;          /* the server's name for it */
  const char *method, *path; /* under {server} */
  const char *content_type;
  const char *store_name; /* sha256 of the body last accepted */
} data_kinds[DEVICE_DATA_KINDS] = {
    [DEVICE_DATA_SYSTEM_INFO] = {"system_info", "PUT", "system_info", "application/json",
                                 STORE_SENT_SYSTEM_INFO},
    [DEVICE_DATA_INSTALLED] = {"installed", "PUT", "core/installed", "application/json",
                               STORE_SENT_INSTALLED},
    [DEVICE_DATA_NETWORK] = {"network", "PUT", "system_info/network", "application/json",
                             STORE_SENT_NETWORK},
    [DEVICE_DATA_CONFIG] = {"config", "POST", "system_info/config", "application/toml",
                            STORE_SENT_CONFIG},
};

const char *device_data_kind_name(enum device_data_kind k) {
  return (unsigned)k < DEVICE_DATA_KINDS ? data_kinds[k].name : "?";
}

/* ---- reading the system ----------------------------------------------------------------- */

/* root + path as a new heap string. */
static char *rooted(const char *root, const char *path) {
  char *p = NULL;
  if (asprintf(&p, "%s%s", root ? root : "", path) < 0) return NULL;
  return p;
}

/* A small file (proc files report size 0, so it is read to the end), NUL-terminated; NULL
 * when absent, unreadable or larger than SMALL_FILE_MAX. */
static char *read_small(const char *root, const char *path) {
  char *full = rooted(root, path);
  FILE *f = full ? fopen(full, "re") : NULL;
  free(full);
  if (!f) return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap + 1);
  while (buf) {
    size_t n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (len < cap) break;
    if (cap >= SMALL_FILE_MAX) {
      free(buf);
      buf = NULL;
      break;
    }
    char *more = realloc(buf, cap * 2 + 1);
    if (!more) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = more;
    cap *= 2;
  }
  if (buf && ferror(f)) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) buf[len] = 0;
  return buf;
}

/* s without surrounding whitespace and NULs (the device tree's strings end in one), in
 * place; NULL when s is NULL or nothing is left. */
static char *trimmed(char *s) {
  if (!s) return NULL;
  char *b = s;
  while (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r')
    b++;
  size_t n = strlen(b);
  while (n && (b[n - 1] == ' ' || b[n - 1] == '\t' || b[n - 1] == '\n' || b[n - 1] == '\r'))
    b[--n] = 0;
  return *b ? b : NULL;
}

/* One value of a small file, trimmed, as a heap string (NULL when absent or empty). */
static char *read_value(const char *root, const char *path) {
  char *raw = read_small(root, path), *t = trimmed(raw), *v = t ? strdup(t) : NULL;
  free(raw);
  return v;
}

/* The value of the first "key : value" line of text (cpuinfo, meminfo) whose key is key,
 * copied into out; false when there is none. */
static bool colon_value(const char *text, const char *key, char *out, size_t n) {
  size_t klen = strlen(key);
  for (const char *line = text; line && *line;
       line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
    if (strncmp(line, key, klen) != 0) continue;
    const char *p = line + klen;
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p != ':') continue;
    p++;
    while (*p == ' ' || *p == '\t')
      p++;
    size_t len = strcspn(p, "\n");
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r'))
      len--;
    if (!len) continue;
    snprintf(out, n, "%.*s", (int)len, p);
    return true;
  }
  return false;
}

/* How many "processor : N" lines text has. */
static int count_processors(const char *text) {
  int n = 0;
  for (const char *line = text; line && *line;
       line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
    if (strncmp(line, "processor", 9) != 0) continue;
    const char *p = line + 9;
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == ':') n++;
  }
  return n;
}

/* PRETTY_NAME of os-release text, unquoted, into out. */
static bool os_pretty_name(const char *text, char *out, size_t n) {
  for (const char *line = text; line && *line;
       line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
    if (strncmp(line, "PRETTY_NAME=", 12) != 0) continue;
    const char *p = line + 12;
    size_t len = strcspn(p, "\n");
    if (len >= 2 && (p[0] == '"' || p[0] == '\'') && p[len - 1] == p[0]) {
      p++;
      len -= 2;
    }
    if (!len) return false;
    snprintf(out, n, "%.*s", (int)len, p);
    return true;
  }
  return false;
}

static void hostname_of(char *out, size_t n) {
  if (gethostname(out, n) != 0) out[0] = 0;
  out[n - 1] = 0;
}

/* Adds key = value (a heap string, consumed) unless value is NULL. */
static void add_owned(cJSON *o, const char *key, char *value) {
  if (value) cJSON_AddStringToObject(o, key, value);
  free(value);
}

char *device_data_hardware(const char *root) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  char host[256], buf[256];
  hostname_of(host, sizeof(host));
  cJSON_AddStringToObject(o, "id", host);
  cJSON_AddStringToObject(o, "class", "system");

  char *cpuinfo = read_small(root, "/proc/cpuinfo");
  /* The board: DMI on PCs, the device tree's model on ARM, cpuinfo's Model on old Pis. */
  char *product = read_value(root, "/sys/class/dmi/id/product_name");
  if (!product) product = read_value(root, "/sys/firmware/devicetree/base/model");
  if (!product && cpuinfo && colon_value(cpuinfo, "Model", buf, sizeof(buf))) product = strdup(buf);
  add_owned(o, "product", product);
  add_owned(o, "vendor", read_value(root, "/sys/class/dmi/id/sys_vendor"));

  struct utsname u;
  if (uname(&u) == 0) {
    cJSON_AddStringToObject(o, "architecture", u.machine);
    snprintf(buf, sizeof(buf), "%s %s", u.sysname, u.release);
    cJSON_AddStringToObject(o, "kernel", buf);
  }
  char *os = read_small(root, "/etc/os-release");
  if (!os) os = read_small(root, "/usr/lib/os-release");
  if (os && os_pretty_name(os, buf, sizeof(buf))) cJSON_AddStringToObject(o, "os", buf);
  free(os);

  cJSON *cpu = cJSON_AddObjectToObject(o, "cpu");
  static const char *const model_keys[] = {"model name", "Processor", "cpu model", "cpu"};
  for (size_t i = 0; cpuinfo && i < sizeof(model_keys) / sizeof(model_keys[0]); i++)
    if (colon_value(cpuinfo, model_keys[i], buf, sizeof(buf))) {
      cJSON_AddStringToObject(cpu, "product", buf);
      break;
    }
  int count = cpuinfo ? count_processors(cpuinfo) : 0;
  if (count <= 0) count = (int)sysconf(_SC_NPROCESSORS_CONF);
  if (count > 0) cJSON_AddNumberToObject(cpu, "count", count);
  free(cpuinfo);

  char *meminfo = read_small(root, "/proc/meminfo");
  unsigned long long kib = 0;
  if (meminfo && colon_value(meminfo, "MemTotal", buf, sizeof(buf)) &&
      sscanf(buf, "%llu", &kib) == 1 && kib > 0) {
    cJSON *mem = cJSON_AddObjectToObject(o, "memory");
    cJSON_AddNumberToObject(mem, "size", (double)kib * 1024.0);
    cJSON_AddStringToObject(mem, "units", "bytes");
  }
  free(meminfo);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return text;
}

char *device_data_installed(const char *installed_json) {
  cJSON *inst = installed_json ? cJSON_Parse(installed_json) : NULL;
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(inst, "name"),
              *version = cJSON_GetObjectItemCaseSensitive(inst, "version");
  cJSON *list = cJSON_CreateArray();
  if (list && cJSON_IsString(name) && name->valuestring[0]) {
    cJSON *item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, "name", name->valuestring);
    cJSON_AddStringToObject(item, "version",
                            cJSON_IsString(version) && version->valuestring[0]
                                ? version->valuestring
                                : name->valuestring);
    cJSON_AddItemToArray(list, item);
  }
  cJSON_Delete(inst);
  char *text = list ? cJSON_PrintUnformatted(list) : NULL;
  cJSON_Delete(list);
  return text;
}

bool device_data_default_iface(const char *route_text, char *ifname, size_t n) {
  bool found = false;
  unsigned long best = 0;
  const char *line = route_text ? strchr(route_text, '\n') : NULL; /* the header line */
  for (; line && *line; line = strchr(line, '\n')) {
    line++;
    char iface[IF_NAMESIZE + 1];
    unsigned long dest, gateway, mask, metric;
    unsigned flags;
    int refcnt, use;
    /* Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT */
    if (sscanf(line, "%16s %lx %lx %x %d %d %lu %lx", iface, &dest, &gateway, &flags, &refcnt, &use,
               &metric, &mask) != 8)
      continue;
    if (dest != 0 || mask != 0 || !(flags & 0x1 /* RTF_UP */)) continue;
    if (found && metric >= best) continue;
    snprintf(ifname, n, "%s", iface);
    best = metric;
    found = true;
  }
  return found;
}

char *device_data_network(const char *root) {
  char iface[IF_NAMESIZE + 1] = "", ipv4[INET_ADDRSTRLEN] = "", host[256];
  char *route = read_small(root, "/proc/net/route");
  bool have_route = device_data_default_iface(route, iface, sizeof(iface));
  free(route);
  struct ifaddrs *ifs = NULL;
  if (getifaddrs(&ifs) == 0) {
    for (const struct ifaddrs *a = ifs; a; a = a->ifa_next) {
      if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
      if (have_route ? strcmp(a->ifa_name, iface) != 0
                     : (a->ifa_flags & IFF_LOOPBACK) || !(a->ifa_flags & IFF_UP))
        continue;
      inet_ntop(AF_INET, &((const struct sockaddr_in *)a->ifa_addr)->sin_addr, ipv4, sizeof(ipv4));
      if (!have_route) snprintf(iface, sizeof(iface), "%s", a->ifa_name);
      break;
    }
    freeifaddrs(ifs);
  }
  char *mac = NULL;
  if (iface[0]) {
    char path[64];
    snprintf(path, sizeof(path), "/sys/class/net/%s/address", iface);
    mac = read_value(root, path);
  }
  hostname_of(host, sizeof(host));
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "local_ipv4", ipv4);
  cJSON_AddStringToObject(o, "mac", mac ? mac : "");
  cJSON_AddStringToObject(o, "hostname", host);
  free(mac);
  char *text = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  return text;
}

/* ---- change detection ----------------------------------------------------------------- */

static void sha256_hex(const char *body, char out[65]) {
  hash_ctx h = {0};
  out[0] = 0;
  if (hash_init(&h, true, false) != 0 || hash_update(&h, body, strlen(body)) != 0 ||
      hash_final(&h, out, NULL) != 0) {
    hash_free(&h);
    out[0] = 0; /* never equal to a stored digest: the body is sent */
  }
}

bool device_data_changed(store *st, enum device_data_kind k, const char *body, char digest[65]) {
  sha256_hex(body, digest);
  char *sent = store_read_string(st, data_kinds[k].store_name);
  bool changed = !sent || !digest[0] || strcmp(sent, digest) != 0;
  free(sent);
  return changed;
}

int device_data_accepted(store *st, enum device_data_kind k, const char *digest, otad_errbuf *eb) {
  return store_write(st, data_kinds[k].store_name, digest, strlen(digest), false, eb);
}

/* ---- sending -------------------------------------------------------------------------- */

/* The body of kind k for d now, or NULL when [telemetry] switches it off (or no memory). */
static char *body_of(device *d, enum device_data_kind k) {
  const otad_config *c = d->o.cfg;
  switch (k) {
  case DEVICE_DATA_SYSTEM_INFO: return device_data_hardware("");
  case DEVICE_DATA_INSTALLED: {
    char *js = store_read_string(d->o.st, STORE_INSTALLED_TARGET);
    char *body = device_data_installed(js);
    free(js);
    return body;
  }
  case DEVICE_DATA_NETWORK: return c->report_network ? device_data_network("") : NULL;
  case DEVICE_DATA_CONFIG: return c->report_config ? config_dump(c) : NULL;
  default: return NULL;
  }
}

static void data_next(device *d);

static void data_end(device *d) {
  void (*then)(device * d) = d->upd->data_then;
  d->upd->data_then = NULL;
  if (then) then(d);
}

static void on_data_sent(http_request *r) {
  device *d = r->data;
  if (r->err == OTAD_ECANCELED) return;
  device_update *u = d->upd;
  const struct data_kind *k = &data_kinds[u->data_kind];
  int err = r->err;
  long status = r->status;
  char why[300];
  snprintf(why, sizeof(why), "%s", err ? r->errmsg : "");
  http_request_reset(r);
  if (err) {
    device_log(d, LOG_WARN, "device data not sent: %s /%s: %s (%s); tried again next cycle",
               k->method, k->path, otad_strerror(err), why);
    data_end(d);
    return;
  }
  if (status >= 200 && status < 300) {
    otad_errbuf eb = {{0}};
    if (device_data_accepted(d->o.st, (enum device_data_kind)u->data_kind, u->data_digest, &eb))
      device_log(d, LOG_WARN, "sent %s, but could not record it (%s): sent again next cycle",
                 k->name, eb.msg);
    else
      device_log(d, LOG_INFO, "sent device data: %s (%s /%s)", k->name, k->method, k->path);
  } else {
    device_log(d, LOG_WARN,
               "device data not sent: %s /%s: server answered HTTP %ld; tried "
               "again next cycle",
               k->method, k->path, status);
  }
  u->data_kind++;
  data_next(d);
}

/* Sends the next kind whose body changed, or ends. */
static void data_next(device *d) {
  device_update *u = d->upd;
  for (; d->server_url && u->data_kind < DEVICE_DATA_KINDS; u->data_kind++) {
    enum device_data_kind kind = (enum device_data_kind)u->data_kind;
    const struct data_kind *k = &data_kinds[kind];
    char *body = body_of(d, kind);
    if (!body) continue; /* switched off */
    if (!device_data_changed(d->o.st, kind, body, u->data_digest)) {
      free(body);
      continue;
    }
    char *url = device_url(d->server_url, k->path);
    if (!url) {
      free(body);
      device_log(d, LOG_WARN, "device data not sent: out of memory");
      break;
    }
    device_log(d, LOG_DEBUG, "%s %s: %s changed", k->method, url, k->name);
    int rc = device_request(d, k->method, url, body, k->content_type, 0, &d->creds, on_data_sent);
    if (rc) {
      device_log(d, LOG_WARN, "device data not sent: %s", otad_strerror(rc));
      break;
    }
    return;
  }
  data_end(d);
}

void device_data_send(device *d, void (*then)(device *d)) {
  d->upd->data_then = then;
  d->upd->data_kind = 0;
  data_next(d);
}
