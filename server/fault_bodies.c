/* fault_bodies.c - oversized, trickled and broken replies for --faults (see fault_bodies.h). */
#include "fault_bodies.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "utctime.h"

const char FAULT_BAD_JSON[] =
    "{\"signatures\":[{\"keyid\":\"00\",\"method\":\"ed25519\",\"sig\":\"00\"}],"
    "\"signed\":{\"_type\":\"Timestamp\",\"version\":1,,\"meta\":{\"snapshot.json\":"
    "{\"version\":1,\"length\":";

/* ---- huge ---- */

static const char HUGE_HEAD[] =
    "{\"signatures\":[],\"signed\":{\"_type\":\"Targets\",\"padding\":\"";
static const char HUGE_TAIL[] = "\"}}";

typedef struct huge {
  uint64_t size;
} huge;

static char huge_byte(uint64_t size, uint64_t pos) {
  uint64_t head = sizeof HUGE_HEAD - 1, tail = sizeof HUGE_TAIL - 1;
  if (pos < head) return HUGE_HEAD[pos];
  if (size >= head + tail && pos >= size - tail) return HUGE_TAIL[pos - (size - tail)];
  return (char)('a' + pos % 26);
}

static ssize_t huge_read(void *cls, uint64_t pos, char *buf, size_t max) {
  huge *h = cls;
  if (pos >= h->size) return MHD_CONTENT_READER_END_OF_STREAM;
  size_t n = h->size - pos < max ? (size_t)(h->size - pos) : max;
  for (size_t i = 0; i < n; i++)
    buf[i] = huge_byte(h->size, pos + i);
  return (ssize_t)n;
}

struct MHD_Response *fault_huge_response(uint64_t size, bool chunked) {
  huge *h = malloc(sizeof *h);
  if (!h) return NULL;
  h->size = size;
  struct MHD_Response *resp = MHD_create_response_from_callback(chunked ? MHD_SIZE_UNKNOWN : size,
                                                                32 * 1024, huge_read, h, free);
  if (!resp) free(h);
  return resp;
}

/* ---- trickle ---- */

typedef struct trickle {
  park *park;
  struct MHD_Connection *c;
  char *body;
  int fd;
  uint64_t offset, len;
  unsigned bps;
  uint64_t next_ms; /* when the next bytes may go */
} trickle;

static ssize_t trickle_read(void *cls, uint64_t pos, char *buf, size_t max) {
  trickle *t = cls;
  if (park_closing(t->park)) return MHD_CONTENT_READER_END_WITH_ERROR;
  if (pos >= t->len) return MHD_CONTENT_READER_END_OF_STREAM;
  uint64_t now = utc_monotonic_ms();
  if (now < t->next_ms) /* wait, suspended: returning 0 unsuspended would spin */
    return park_hold(t->park, t->c, t->next_ms) == 0 ? 0 : MHD_CONTENT_READER_END_WITH_ERROR;
  size_t n = t->bps < max ? t->bps : max;
  if (n > t->len - pos) n = (size_t)(t->len - pos);
  if (t->body) {
    memcpy(buf, t->body + pos, n);
  } else {
    ssize_t got = pread(t->fd, buf, n, (off_t)(t->offset + pos));
    if (got <= 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    n = (size_t)got;
  }
  t->next_ms = now + 1000;
  return (ssize_t)n;
}

static void trickle_free(void *cls) {
  trickle *t = cls;
  if (t->body)
    free(t->body);
  else
    close(t->fd);
  free(t);
}

struct MHD_Response *fault_trickle_response(park *p, struct MHD_Connection *c, char *body, int fd,
                                            uint64_t offset, uint64_t len, unsigned bps) {
  trickle *t = malloc(sizeof *t);
  if (!t) return NULL;
  *t = (trickle){p, c, body, fd, offset, len, bps ? bps : 1, 0};
  struct MHD_Response *resp =
      MHD_create_response_from_callback(len, 4096, trickle_read, t, trickle_free);
  if (!resp) free(t);
  return resp;
}
