/* journal.c - appending transitions as JSON lines and replaying them (see journal.h).
 *
 * Writing formats each line by hand into a stack buffer: no allocation per transition,
 * which matters when a fleet of thousands journals into one file. Replay uses cJSON and a
 * small open-addressing table from label to last state.
 */
#include "journal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Disk space reserved past the journal's end (fallocate, KEEP_SIZE): a full disk must not
 * cost the journal its rows, or a replay of the run would stop at the gap. Renewed when
 * less than half of it is left; where the file system cannot reserve, rows are written as
 * they come. */
#define JOURNAL_RESERVE (32 * 1024)

struct journal {
  int fd;
  off_t end;      /* the file's size as we wrote it */
  off_t reserved; /* space is reserved up to here */
};

/* Tops the reserve up to JOURNAL_RESERVE past the end when less than half is left. */
static void reserve(journal *j) {
  if (j->reserved - j->end >= JOURNAL_RESERVE / 2) return;
  if (fallocate(j->fd, FALLOC_FL_KEEP_SIZE, j->end, JOURNAL_RESERVE) == 0)
    j->reserved = j->end + JOURNAL_RESERVE;
}

journal *journal_open(const char *path, otad_errbuf *eb) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    otad_fail(eb, OTAD_EIO, "cannot open journal %s: %s", path, strerror(errno));
    return NULL;
  }
  journal *j = malloc(sizeof(*j));
  if (!j) {
    close(fd);
    otad_fail(eb, OTAD_ENOMEM, "out of memory");
    return NULL;
  }
  j->fd = fd;
  j->end = lseek(fd, 0, SEEK_END);
  j->reserved = 0;
  if (j->end < 0) j->end = 0;
  reserve(j);
  return j;
}

void journal_close(journal *j) {
  if (!j) return;
  close(j->fd);
  free(j);
}

void journal_timestamp(char *buf, size_t len) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

/* Appends s as a JSON string literal to buf at *pos; truncates quietly when full. */
static void put_json_string(char *buf, size_t cap, size_t *pos, const char *s) {
  size_t p = *pos;
  if (p + 2 >= cap) return;
  buf[p++] = '"';
  for (; s && *s && p + 8 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[p++] = '\\';
      buf[p++] = (char)c;
    } else if (c == '\n') {
      buf[p++] = '\\';
      buf[p++] = 'n';
    } else if (c < 0x20) {
      p += (size_t)snprintf(buf + p, cap - p, "\\u%04x", c);
    } else {
      buf[p++] = (char)c;
    }
  }
  buf[p++] = '"';
  *pos = p;
}

static void put_raw(char *buf, size_t cap, size_t *pos, const char *s) {
  size_t n = strlen(s);
  if (*pos + n >= cap) n = cap - *pos - 1;
  memcpy(buf + *pos, s, n);
  *pos += n;
}

int journal_record(journal *j, const char *label, const char *id, const transition *t,
                   const char *detail) {
  if (!j) return 0;
  char line[1024], ts[32];
  size_t p = 0, cap = sizeof(line) - 2; /* room for "}\n" */
  journal_timestamp(ts, sizeof(ts));
  put_raw(line, cap, &p, "{\"t\":");
  put_json_string(line, cap, &p, ts);
  put_raw(line, cap, &p, ",\"device\":");
  put_json_string(line, cap, &p, label ? label : "");
  put_raw(line, cap, &p, ",\"id\":");
  put_json_string(line, cap, &p, id ? id : "");
  put_raw(line, cap, &p, ",\"from\":");
  put_json_string(line, cap, &p, machine_state_name(t->from));
  put_raw(line, cap, &p, ",\"event\":");
  put_json_string(line, cap, &p, machine_event_name(t->event));
  put_raw(line, cap, &p, ",\"to\":");
  put_json_string(line, cap, &p, machine_state_name(t->to));
  put_raw(line, cap, &p, ",\"action\":");
  put_json_string(line, cap, &p, machine_action_name(t->action));
  put_raw(line, cap, &p, ",\"detail\":");
  put_json_string(line, cap, &p, detail ? detail : "");
  line[p++] = '}';
  line[p++] = '\n';
  reserve(j);
  ssize_t w;
  do {
    w = write(j->fd, line, p);
  } while (w < 0 && errno == EINTR);
  if (w > 0 && w < (ssize_t)p) {
    /* a full disk took part of the line: cut it off again, so the journal stays whole
     * lines (a replay would stop at a torn one) and the next record starts clean */
    if (ftruncate(j->fd, j->end) != 0) return OTAD_EIO;
    return OTAD_ENOSPC;
  }
  if (w == (ssize_t)p) j->end += w;
  return w == (ssize_t)p ? 0 : OTAD_EIO;
}

/* ---- replay ---- */

typedef struct slot {
  char *label;
  int state;
  int diverged; /* journal_replay_each: reported once, skipped from then on */
} slot;

typedef struct label_table {
  slot *slots;
  size_t cap, used;
} label_table;

static size_t hash_label(const char *s) {
  size_t h = 1469598103934665603ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

/* Returns the slot for label, inserting it with state -1 when new; NULL on OOM. */
static slot *table_get(label_table *t, const char *label) {
  if ((t->used + 1) * 2 > t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 64;
    slot *ns = calloc(ncap, sizeof(*ns));
    if (!ns) return NULL;
    for (size_t i = 0; i < t->cap; i++) {
      if (!t->slots[i].label) continue;
      size_t k = hash_label(t->slots[i].label) & (ncap - 1);
      while (ns[k].label)
        k = (k + 1) & (ncap - 1);
      ns[k] = t->slots[i];
    }
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
  }
  size_t k = hash_label(label) & (t->cap - 1);
  while (t->slots[k].label) {
    if (strcmp(t->slots[k].label, label) == 0) return &t->slots[k];
    k = (k + 1) & (t->cap - 1);
  }
  t->slots[k].label = strdup(label);
  if (!t->slots[k].label) return NULL;
  t->slots[k].state = -1;
  t->slots[k].diverged = 0;
  t->used++;
  return &t->slots[k];
}

static void table_free(label_table *t) {
  for (size_t i = 0; i < t->cap; i++)
    free(t->slots[i].label);
  free(t->slots);
}

static const char *json_str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int diverge(replay_result *res, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int diverge(replay_result *res, size_t line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->why, sizeof(res->why), fmt, ap);
  va_end(ap);
  res->diverged = 1;
  res->line = line;
  return OTAD_EJOURNAL;
}

/* Checks one parsed line against the table and the device's previous state. *sp gets the
 * device's slot once it is known. */
static int replay_line(label_table *tab, replay_result *res, size_t n, const cJSON *o, slot **sp) {
  const char *label = json_str(o, "device"), *from = json_str(o, "from"),
             *event = json_str(o, "event"), *to = json_str(o, "to"),
             *action = json_str(o, "action");
  if (!label || !from || !event || !to)
    return diverge(res, n, "line %zu: missing one of device, from, event, to", n);
  int f = machine_state_from_name(from), e = machine_event_from_name(event),
      t = machine_state_from_name(to);
  if (f < 0 || e < 0 || t < 0)
    return diverge(res, n, "line %zu: unknown state or event name (%s --%s--> %s)", n, from, event,
                   to);
  slot *s = table_get(tab, label);
  if (!s) return diverge(res, n, "line %zu: out of memory", n);
  *sp = s;
  if (s->diverged) return 0; /* journal_replay_each: already reported */
  if (e == EV_START) {
    res->runs++;
    if (f != ST_UNPROVISIONED)
      return diverge(res, n, "line %zu: device %s starts in '%s', a run begins in 'unprovisioned'",
                     n, label, from);
  } else if (s->state < 0) {
    return diverge(res, n, "line %zu: device %s has '%s' before any 'start'", n, label, event);
  } else if (s->state != f) {
    return diverge(res, n, "line %zu: device %s was left in '%s' but this line starts from '%s'", n,
                   label, machine_state_name((enum dev_state)s->state), from);
  }
  transition tr;
  if (!machine_step((enum dev_state)f, (enum dev_event)e, &tr))
    return diverge(res, n, "line %zu: device %s: event '%s' is not allowed in state '%s'", n, label,
                   event, from);
  if ((int)tr.to != t)
    return diverge(res, n, "line %zu: device %s: '%s' on '%s' leads to '%s', journal says '%s'", n,
                   label, from, event, machine_state_name(tr.to), to);
  if (action && machine_action_from_name(action) != (int)tr.action)
    return diverge(res, n, "line %zu: device %s: '%s' on '%s' does '%s', journal says '%s'", n,
                   label, from, event, machine_action_name(tr.action), action);
  s->state = t;
  res->transitions++;
  return 0;
}

/* Both replays: keep_going checks each device apart and reports through cb. */
static int replay(FILE *in, replay_result *res, int keep_going, journal_divergence_fn cb,
                  void *ctx) {
  memset(res, 0, sizeof(*res));
  label_table tab = {0};
  char *line = NULL;
  size_t cap = 0, n = 0;
  ssize_t len;
  int rc = 0, malformed = 0;
  replay_result first = {0};
  while ((len = getline(&line, &cap, in)) > 0) {
    n++;
    int complete = line[len - 1] == '\n';
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = 0;
    if (len == 0) continue;
    res->lines++;
    cJSON *o = cJSON_Parse(line);
    int lrc;
    slot *s = NULL;
    if (!o || !cJSON_IsObject(o)) {
      cJSON_Delete(o);
      if (!complete) { /* a crash cut the last line short: not a divergence */
        res->torn_tail = 1;
        res->lines--;
        break;
      }
      lrc = diverge(res, n, "line %zu: not a JSON object", n);
    } else {
      lrc = replay_line(&tab, res, n, o, &s);
      cJSON_Delete(o);
    }
    if (!lrc) continue;
    if (!rc) { /* the first divergence is the one res describes */
      rc = lrc;
      first.line = res->line;
      memcpy(first.why, res->why, sizeof(first.why));
    }
    if (!keep_going) break;
    if (s) {
      s->diverged = 1;
      res->diverged_devices++;
    } else if (!malformed++) {
      res->diverged_devices++;
    }
    if (cb) cb(ctx, n, s ? s->label : "", res->why);
  }
  if (ferror(in) && !rc) rc = OTAD_EIO;
  if (rc == OTAD_EJOURNAL) {
    res->diverged = 1;
    res->line = first.line;
    memcpy(res->why, first.why, sizeof(res->why));
  }
  free(line);
  res->devices = tab.used;
  for (size_t i = 0; i < tab.cap; i++)
    if (tab.slots[i].label && tab.slots[i].state >= 0 && !tab.slots[i].diverged)
      res->final_counts[tab.slots[i].state]++;
  table_free(&tab);
  return rc;
}

int journal_replay(FILE *in, replay_result *res) {
  return replay(in, res, 0, NULL, NULL);
}

int journal_replay_each(FILE *in, replay_result *res, journal_divergence_fn cb, void *ctx) {
  return replay(in, res, 1, cb, ctx);
}
