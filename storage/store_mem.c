/* store_mem.c - the in-memory backend of store.h, for fleets of simulated devices.
 *
 * A device's store is a singly linked list of entries, one heap block each: a 16-byte
 * header, the name and the value, both NUL-terminated (a read is one malloc + memcpy).
 * A device holds about a dozen values of a few KiB, so a list walk beats any index and
 * an empty store costs one small struct. A write builds the new entry before it unlinks
 * the old one, so a failed write leaves the old value, as the fs backend does. Names,
 * size limit and error codes are the fs backend's; secrets are zeroed before free.
 */
#include "store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct mem_entry {
  struct mem_entry *next;
  uint32_t len;     /* value bytes, NUL excluded (<= STORE_MAX_VALUE) */
  uint8_t name_len; /* strlen(name) (<= 200, see store_check_name) */
  bool secret;      /* value zeroed before the entry is freed */
  char bytes[];     /* name, NUL, value, NUL */
} mem_entry;

typedef struct mem_store {
  store base; /* first member: a store* from store_mem_open is a mem_store* */
  mem_entry *head;
} mem_store;

static char *entry_value(mem_entry *e) {
  return e->bytes + e->name_len + 1;
}

static void entry_free(mem_entry *e) {
  if (e->secret) explicit_bzero(entry_value(e), e->len);
  free(e);
}

/* The link that points at name's entry, or at the NULL ending the list. */
static mem_entry **find(mem_store *ms, const char *name) {
  mem_entry **link = &ms->head;
  while (*link && strcmp((*link)->bytes, name) != 0)
    link = &(*link)->next;
  return link;
}

static int mem_read(store *s, const char *name, char **data, size_t *len, otad_errbuf *eb) {
  *data = NULL;
  if (len) *len = 0;
  int rc = store_check_name(name, eb);
  if (rc) return rc;
  mem_entry *e = *find((mem_store *)s, name);
  if (!e) return otad_fail(eb, OTAD_ENOENT, "%s: no such file", name);
  char *copy = malloc((size_t)e->len + 1);
  if (!copy) return otad_fail(eb, OTAD_ENOMEM, "reading %s: out of memory", name);
  memcpy(copy, entry_value(e), (size_t)e->len + 1);
  *data = copy;
  if (len) *len = e->len;
  return 0;
}

static int mem_write(store *s, const char *name, const void *data, size_t len, bool secret,
                     otad_errbuf *eb) {
  int rc = store_check_name(name, eb);
  if (rc) return rc;
  if (len > STORE_MAX_VALUE)
    return otad_fail(eb, OTAD_EINVAL, "writing %s: %zu bytes, larger than the 1 MiB allowed", name,
                     len);
  size_t name_len = strlen(name);
  mem_entry *e = malloc(sizeof(*e) + name_len + 1 + len + 1);
  if (!e) return otad_fail(eb, OTAD_ENOMEM, "writing %s: out of memory", name);
  e->len = (uint32_t)len;
  e->name_len = (uint8_t)name_len;
  e->secret = secret;
  memcpy(e->bytes, name, name_len + 1);
  if (len) memcpy(entry_value(e), data, len);
  entry_value(e)[len] = '\0';

  mem_entry **link = find((mem_store *)s, name);
  mem_entry *old = *link;
  e->next = old ? old->next : NULL;
  *link = e;
  if (old) entry_free(old);
  return 0;
}

static int mem_remove(store *s, const char *name, otad_errbuf *eb) {
  int rc = store_check_name(name, eb);
  if (rc) return rc;
  mem_entry **link = find((mem_store *)s, name);
  mem_entry *e = *link;
  if (e) {
    *link = e->next;
    entry_free(e);
  }
  return 0;
}

static void mem_close(store *s) {
  mem_store *ms = (mem_store *)s;
  while (ms->head) {
    mem_entry *e = ms->head;
    ms->head = e->next;
    entry_free(e);
  }
  free(ms);
}

static const store_ops mem_ops = {mem_read, mem_write, mem_remove, mem_close};

size_t store_mem_bytes(const store *s) {
  if (!s || s->ops != &mem_ops) return 0;
  size_t n = sizeof(mem_store) + 16; /* + malloc's header, about */
  for (const mem_entry *e = ((const mem_store *)s)->head; e; e = e->next)
    n += sizeof(*e) + e->name_len + 1 + e->len + 1 + 16;
  return n;
}

store *store_mem_open(void) {
  mem_store *ms = calloc(1, sizeof(*ms));
  if (!ms) return NULL;
  ms->base.ops = &mem_ops;
  return &ms->base;
}
