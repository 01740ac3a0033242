/* park.c - suspending held connections and resuming them when due (see park.h).
 *
 * Lock order: a worker suspends its connection before it takes the park's lock, and the
 * thread resumes connections after releasing it, so the park's lock is never held while
 * libmicrohttpd takes its own.
 */
#include "park.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "utctime.h"

#define TICK_MS 20

typedef struct held {
  struct MHD_Connection *c;
  uint64_t due_ms;
} held;

struct park {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_t thread;
  held *items;
  size_t n, cap;
  bool closing, stop;
};

/* Moves the connections due at now (all when everything) out of the list into out. */
static size_t take_due(park *p, uint64_t now, bool everything, held **out) {
  *out = NULL;
  if (everything) { /* hands the array over: no allocation that could fail */
    size_t n = p->n;
    *out = p->items;
    p->items = NULL;
    p->n = p->cap = 0;
    return n;
  }
  size_t due = 0;
  for (size_t i = 0; i < p->n; i++)
    due += p->items[i].due_ms <= now;
  if (!due) return 0;
  held *list = malloc(due * sizeof *list);
  if (!list) return 0; /* tried again at the next tick */
  size_t k = 0, kept = 0;
  for (size_t i = 0; i < p->n; i++) {
    if (p->items[i].due_ms <= now)
      list[k++] = p->items[i];
    else
      p->items[kept++] = p->items[i];
  }
  p->n = kept;
  *out = list;
  return due;
}

static void resume_all(held *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    MHD_resume_connection(list[i].c);
  free(list);
}

static void *run(void *arg) {
  park *p = arg;
  pthread_mutex_lock(&p->lock);
  while (!p->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += TICK_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&p->wake, &p->lock, &ts);
    held *list;
    size_t n = take_due(p, utc_monotonic_ms(), false, &list);
    if (!n) continue;
    pthread_mutex_unlock(&p->lock);
    resume_all(list, n);
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

int park_create(park **out) {
  park *p = calloc(1, sizeof *p);
  if (!p) return -1;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->wake, &attr);
  pthread_condattr_destroy(&attr);
  if (pthread_create(&p->thread, NULL, run, p) != 0) {
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
    return -1;
  }
  *out = p;
  return 0;
}

int park_hold(park *p, struct MHD_Connection *c, uint64_t due_ms) {
  if (park_closing(p)) return -1;
  MHD_suspend_connection(c);
  pthread_mutex_lock(&p->lock);
  bool room = p->n < p->cap;
  if (!room && !p->closing) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    held *grown = realloc(p->items, cap * sizeof *grown);
    if (grown) {
      p->items = grown;
      p->cap = cap;
      room = true;
    }
  }
  if (p->closing || !room) { /* nobody would resume it: let it run on */
    pthread_mutex_unlock(&p->lock);
    MHD_resume_connection(c);
    return 0;
  }
  p->items[p->n++] = (held){c, due_ms};
  pthread_mutex_unlock(&p->lock);
  return 0;
}

bool park_closing(park *p) {
  pthread_mutex_lock(&p->lock);
  bool closing = p->closing;
  pthread_mutex_unlock(&p->lock);
  return closing;
}

void park_close(park *p) {
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->closing = true;
  held *list;
  size_t n = take_due(p, 0, true, &list);
  pthread_mutex_unlock(&p->lock);
  resume_all(list, n);
}

void park_free(park *p) {
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->stop = true;
  pthread_cond_signal(&p->wake);
  pthread_mutex_unlock(&p->lock);
  pthread_join(p->thread, NULL);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->lock);
  free(p->items);
  free(p);
}
