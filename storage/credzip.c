/* credzip.c - the fleet's credentials.zip: read what a device needs, strip the fleet key.
 *
 * libarchive with the zip reader only, so anything else (a tar, random bytes, an empty
 * file) is "not a zip archive" instead of being half-understood. Reading loads just the
 * entries a device uses, each capped at 1 MiB, and skips the rest. Stripping streams every
 * other entry from the reader into a zip built in memory, then replaces the file with
 * atomic_write_file (temp, fsync, rename, fsync dir), so a crash leaves the old zip or the
 * new one and never a torn file.
 */
#include "credzip.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

#define ENTRY_URL "autoprov.url"
#define ENTRY_P12 "autoprov_credentials.p12"
#define ENTRY_CA "server_ca.pem"
#define ENTRY_TREEHUB "treehub.json"

#define ENTRY_MAX (1024 * 1024)        /* a bigger entry a device reads is corrupt */
#define REWRITE_MAX (16 * 1024 * 1024) /* cap of the rewritten zip held in memory */

static const char *arch_err(struct archive *a) {
  const char *s = archive_error_string(a);
  return s ? s : "unknown error";
}

/* Opens path with the zip reader. *fd and *a are the caller's to free on success. */
static int open_zip(const char *path, int *fd, struct archive **a, struct stat *st,
                    otad_errbuf *eb) {
  *fd = open(path, O_RDONLY | O_CLOEXEC);
  if (*fd < 0 && errno == ENOENT) return otad_fail(eb, OTAD_ENOENT, "%s: no such file", path);
  if (*fd < 0) return otad_fail(eb, OTAD_EIO, "opening %s: %s", path, strerror(errno));
  int rc = 0;
  if (fstat(*fd, st) < 0)
    rc = otad_fail(eb, OTAD_EIO, "reading %s: %s", path, strerror(errno));
  else if (!S_ISREG(st->st_mode))
    rc = otad_fail(eb, OTAD_EZIP, "%s: not a zip archive (not a regular file)", path);
  else if (!(*a = archive_read_new()))
    rc = otad_fail(eb, OTAD_ENOMEM, "reading %s: out of memory", path);
  else if (archive_read_support_format_zip(*a) != ARCHIVE_OK ||
           archive_read_open_fd(*a, *fd, 16384) != ARCHIVE_OK) {
    rc = otad_fail(eb, OTAD_EZIP, "%s: not a zip archive (%s)", path, arch_err(*a));
    archive_read_free(*a);
  }
  if (rc) close(*fd);
  return rc;
}

/* The error for a failed archive_read_next_header after n good entries. */
static int header_error(struct archive *a, const char *path, int n, otad_errbuf *eb) {
  if (n == 0) return otad_fail(eb, OTAD_EZIP, "%s: not a zip archive (%s)", path, arch_err(a));
  return otad_fail(eb, OTAD_EZIP, "%s: damaged zip archive (%s)", path, arch_err(a));
}

/* Grows *buf to hold need bytes + NUL. The old block is zeroed before free: it may hold
 * part of the fleet key. */
static bool grow(uint8_t **buf, size_t *cap, size_t need) {
  if (need + 1 <= *cap) return true;
  size_t ncap = *cap ? *cap : 4096;
  while (ncap < need + 1)
    ncap *= 2;
  uint8_t *n = malloc(ncap);
  if (!n) return false;
  if (*buf) {
    memcpy(n, *buf, *cap);
    explicit_bzero(*buf, *cap);
    free(*buf);
  }
  *buf = n;
  *cap = ncap;
  return true;
}

/* Loads the current entry's data into a new NUL-terminated heap block (*out, owned by
 * the caller), at most ENTRY_MAX bytes. */
static int load_entry(struct archive *a, struct archive_entry *e, const char *path, uint8_t **out,
                      size_t *len, otad_errbuf *eb) {
  const char *name = archive_entry_pathname(e);
  if (*out) return otad_fail(eb, OTAD_EZIP, "%s: entry %s appears twice", path, name);
  if (archive_entry_size_is_set(e) && archive_entry_size(e) > ENTRY_MAX)
    return otad_fail(eb, OTAD_EZIP, "%s: entry %s is larger than 1 MiB", path, name);
  uint8_t *buf = NULL;
  size_t cap = 0, got = 0;
  int rc = 0;
  for (;;) {
    if (!grow(&buf, &cap, got + 4096)) {
      rc = otad_fail(eb, OTAD_ENOMEM, "%s: out of memory reading %s", path, name);
      break;
    }
    la_ssize_t n = archive_read_data(a, buf + got, cap - 1 - got);
    if (n == 0) break;
    if (n < 0) {
      rc = otad_fail(eb, OTAD_EZIP, "%s: cannot read entry %s (%s)", path, name, arch_err(a));
      break;
    }
    got += (size_t)n;
    if (got > ENTRY_MAX) {
      rc = otad_fail(eb, OTAD_EZIP, "%s: entry %s is larger than 1 MiB", path, name);
      break;
    }
  }
  if (rc) {
    if (buf) explicit_bzero(buf, cap);
    free(buf);
    return rc;
  }
  buf[got] = '\0';
  *out = buf;
  *len = got;
  return 0;
}

/* Trims surrounding whitespace in place. */
static void trim(char *s) {
  size_t len = strlen(s), start = 0;
  while (start < len && isspace((unsigned char)s[start]))
    start++;
  while (len > start && isspace((unsigned char)s[len - 1]))
    len--;
  memmove(s, s + start, len - start);
  s[len - start] = '\0';
}

/* Walks the archive, loading the entries a device uses into out. */
static int read_entries(struct archive *a, const char *path, credzip *out, otad_errbuf *eb) {
  struct archive_entry *e;
  size_t len;
  for (int n = 0;; n++) {
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) return 0;
    if (r < ARCHIVE_WARN) return header_error(a, path, n, eb);
    const char *name = archive_entry_pathname(e);
    if (!name) continue;
    int rc = 0;
    if (strcmp(name, ENTRY_URL) == 0)
      rc = load_entry(a, e, path, (uint8_t **)&out->url, &len, eb);
    else if (strcmp(name, ENTRY_P12) == 0)
      rc = load_entry(a, e, path, &out->p12, &out->p12_len, eb);
    else if (strcmp(name, ENTRY_CA) == 0)
      rc = load_entry(a, e, path, (uint8_t **)&out->server_ca_pem, &len, eb);
    if (rc) return rc; /* other entries: archive_read_next_header skips their data */
  }
}

int credzip_read(const char *path, credzip *out, otad_errbuf *eb) {
  memset(out, 0, sizeof(*out));
  int fd;
  struct archive *a;
  struct stat st;
  int rc = open_zip(path, &fd, &a, &st, eb);
  if (rc) return rc;
  rc = read_entries(a, path, out, eb);
  archive_read_free(a);
  close(fd);
  if (!rc && out->url) trim(out->url);
  if (!rc && !out->url)
    rc = otad_fail(eb, OTAD_EZIP, "%s: no %s entry", path, ENTRY_URL);
  else if (!rc && !*out->url)
    rc = otad_fail(eb, OTAD_EZIP, "%s: %s is empty", path, ENTRY_URL);
  else if (!rc && !out->p12)
    rc = otad_fail(eb, OTAD_EZIP, "%s: no %s entry", path, ENTRY_P12);
  if (rc) credzip_free(out);
  return rc;
}

void credzip_free(credzip *z) {
  if (!z) return;
  if (z->p12) explicit_bzero(z->p12, z->p12_len);
  free(z->p12);
  free(z->url);
  free(z->server_ca_pem);
  memset(z, 0, sizeof(*z));
}

/* ---- stripping the fleet key ------------------------------------------------------ */

/* The rewritten zip, built in memory by libarchive's writer. */
typedef struct membuf {
  uint8_t *data; /* heap, owned by whoever declared the membuf */
  size_t len, cap;
} membuf;

static la_ssize_t membuf_write(struct archive *a, void *ctx, const void *buf, size_t n) {
  membuf *m = ctx;
  if (n > REWRITE_MAX - m->len) {
    archive_set_error(a, EFBIG, "rewritten archive larger than 16 MiB");
    return -1;
  }
  if (m->len + n > m->cap) {
    size_t ncap = m->cap ? m->cap * 2 : 65536;
    while (ncap < m->len + n)
      ncap *= 2;
    uint8_t *d = realloc(m->data, ncap);
    if (!d) {
      archive_set_error(a, ENOMEM, "out of memory");
      return -1;
    }
    m->data = d;
    m->cap = ncap;
  }
  memcpy(m->data + m->len, buf, n);
  m->len += n;
  return (la_ssize_t)n;
}

/* Copies the current entry (header and data) from in to w. */
static int copy_entry(struct archive *in, struct archive *w, struct archive_entry *e,
                      const char *path, otad_errbuf *eb) {
  const char *name = archive_entry_pathname(e);
  if (archive_write_header(w, e) < ARCHIVE_WARN)
    return otad_fail(eb, OTAD_EIO, "rewriting %s: %s", path, arch_err(w));
  char buf[16384];
  int rc = 0;
  for (;;) {
    la_ssize_t n = archive_read_data(in, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      rc = otad_fail(eb, OTAD_EZIP, "%s: cannot read entry %s (%s)", path, name, arch_err(in));
      break;
    }
    if (archive_write_data(w, buf, (size_t)n) != n) {
      rc = otad_fail(eb, OTAD_EIO, "rewriting %s: %s", path, arch_err(w));
      break;
    }
  }
  explicit_bzero(buf, sizeof(buf));
  if (!rc && archive_write_finish_entry(w) < ARCHIVE_WARN)
    rc = otad_fail(eb, OTAD_EIO, "rewriting %s: %s", path, arch_err(w));
  return rc;
}

static bool printable_name(const char *name) {
  if (!name || !*name) return false;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    if (*p < 0x20 || *p > 0x7e) return false;
  return true;
}

/* Copies every entry but the fleet key and treehub.json; *had_p12 says if the key was
 * there (if not, the caller leaves the file alone). */
static int copy_entries(struct archive *in, struct archive *w, const char *path, bool *had_p12,
                        otad_errbuf *eb) {
  struct archive_entry *e;
  for (int n = 0;; n++) {
    int r = archive_read_next_header(in, &e);
    if (r == ARCHIVE_EOF) return 0;
    if (r < ARCHIVE_WARN) return header_error(in, path, n, eb);
    const char *name = archive_entry_pathname(e);
    if (name && strcmp(name, ENTRY_P12) == 0) {
      *had_p12 = true;
      continue;
    }
    if (name && strcmp(name, ENTRY_TREEHUB) == 0) continue;
    /* A name that is not printable ASCII is no entry of a real credentials.zip, and
     * libarchive's zip writer (built without iconv) crashes on some (found by
     * fuzz_credzip): such entries are left out of the rewritten copy. */
    if (!printable_name(name)) continue;
    int rc = copy_entry(in, w, e, path, eb);
    if (rc) return rc;
  }
}

/* A zip writer into m, without padding the last block. */
static struct archive *zip_writer(membuf *m) {
  struct archive *w = archive_write_new();
  if (!w) return NULL;
  if (archive_write_set_format_zip(w) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(w, 1) != ARCHIVE_OK ||
      archive_write_open2(w, m, NULL, membuf_write, NULL, NULL) != ARCHIVE_OK) {
    archive_write_free(w);
    return NULL;
  }
  return w;
}

int credzip_strip_fleet_key(const char *path, otad_errbuf *eb) {
  int fd;
  struct archive *in;
  struct stat st;
  int rc = open_zip(path, &fd, &in, &st, eb);
  if (rc) return rc;
  membuf out = {0};
  bool had_p12 = false;
  struct archive *w = zip_writer(&out);
  if (!w)
    rc = otad_fail(eb, OTAD_ENOMEM, "rewriting %s: cannot start a zip writer", path);
  else
    rc = copy_entries(in, w, path, &had_p12, eb);
  /* Close even after an error: libarchive 3.7's archive_write_free() skips the close of a
   * writer in the FATAL state and so leaks its client buffers (found by fuzz_credzip). */
  if (w && archive_write_close(w) != ARCHIVE_OK && !rc)
    rc = otad_fail(eb, OTAD_EIO, "rewriting %s: %s", path, arch_err(w));
  if (w) archive_write_free(w);
  archive_read_free(in);
  close(fd);
  if (!rc && had_p12) rc = atomic_write_file(path, out.data, out.len, st.st_mode & 07777, eb);
  free(out.data);
  return rc;
}
