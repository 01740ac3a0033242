/* image.h - where a target's bytes go while it downloads: one sink interface, two backends.
 *
 *   file       <images dir>/<base>.part, appended to as bytes arrive and kept across
 *              retries and restarts (a download resumes where it stopped); once verified,
 *              fsync'ed and renamed to <images dir>/<base>, and the directory fsync'ed.
 *   hash-only  keeps nothing but a count (the fleet simulator: thousands of devices write
 *              no files); its image path is "mem:<base>", which only [pacman] type none
 *              accepts (it records, never reads).
 *
 * The download (states/downloading.c) hashes the bytes and decides; the sink only stores.
 * The calls marked blocking run on the thread pool. Every byte of an image that reaches the
 * disk goes through here, and so does the crash-test seam of downloads.
 */
#ifndef OTAD_STORAGE_IMAGE_H
#define OTAD_STORAGE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"
#include "../crypto/hash.h"

typedef struct image_sink image_sink;

/* What a sink holds of an image when a download (re)starts. */
typedef struct image_held {
  bool complete;  /* a finished image of the right size from an earlier run: hash it
                     (hash_complete) before trusting it */
  uint64_t bytes; /* else: bytes of it held already, from byte 0 */
  bool same;      /* the last open() was for this image too: the caller's running hash
                     of the held bytes may still be good */
} image_held;

typedef struct image_sink_ops {
  const char *name; /* "file", "hash-only" */
  /* Gets ready for the image base (storage_image_base()) of length bytes: the directory is
   * made, partial files of other images are removed, too long a partial file is emptied.
   * 0 with *held filled; OTAD_ENOSPC when the rest cannot fit (eb: how much is needed and
   * free: nothing will help but space); another error (eb says why) when a retry may. */
  int (*open)(image_sink *s, const char *base, uint64_t length, image_held *held, otad_errbuf *eb);
  /* Appends len bytes at offset at (what is held so far). OTAD_ENOSPC or OTAD_EIO. */
  int (*write)(image_sink *s, const uint8_t *data, size_t len, uint64_t at, otad_errbuf *eb);
  /* Drops what is held: the next write is at byte 0. */
  int (*restart)(image_sink *s, otad_errbuf *eb);
  /* Blocking. Feeds the first len held bytes to h. NULL: the sink cannot read back (the
   * download starts over instead of re-hashing). */
  int (*hash_held)(image_sink *s, hash_ctx *h, uint64_t len, otad_errbuf *eb);
  /* Blocking. Feeds the complete image open() found to h. */
  int (*hash_complete)(image_sink *s, hash_ctx *h, uint64_t len, otad_errbuf *eb);
  /* Blocking. Makes the held bytes the image, durably. NULL: nothing to do. */
  int (*commit)(image_sink *s, otad_errbuf *eb);
  /* Deletes what is held: the partial bytes, or (complete) the finished image. */
  int (*discard)(image_sink *s, bool complete, otad_errbuf *eb);
  /* Lets go of open files; what is held stays for a later open(). */
  void (*close)(image_sink *s);
  /* Closes and frees the sink. */
  void (*free)(image_sink *s);
} image_sink_ops;

struct image_sink {
  const image_sink_ops *ops;
  char *path;      /* read-only: the image (file) or "mem:<base>", once opened */
  char *part_path; /* read-only: the partial file, NULL for hash-only */
};

/* A file sink in dir (storage_images_dir()); label prefixes its log lines. NULL when out
 * of memory. */
image_sink *image_sink_file_new(const char *dir, const char *label);

/* A hash-only sink. NULL when out of memory. */
image_sink *image_sink_hash_only_new(void);

#endif
