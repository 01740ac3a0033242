/* store.h - where a device keeps what it must not lose: a small key/value interface.
 *
 * Two backends implement it: a directory (store_fs_open: one file per name, every write
 * atomic - temp file, fsync, rename, fsync of the directory; secrets 0600 in a 0700
 * directory) for the agent, and memory (store_mem_open) for large simulated fleets. States
 * reach storage only through this interface, so the same state code runs on both.
 * Names follow aktualizr's legacy layout where it has one (root.crt, client.pem, pkey.pem).
 */
#ifndef OTAD_STORE_H
#define OTAD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"

/* File names inside a store. */
#define STORE_ROOT_CRT "root.crt"      /* pinned CA bundle for every call */
#define STORE_CLIENT_PEM "client.pem"  /* device certificate + CA chain */
#define STORE_PKEY_PEM "pkey.pem"      /* device TLS private key (secret) */
#define STORE_DEVICE_ID "device_id"    /* the ID sent at registration */
#define STORE_SERVER_URL "gateway.url" /* server URL learned from credentials.zip */
#define STORE_ECU_KEY "ecukey.pem"     /* Uptane primary private key (secret) */
#define STORE_ECU_PUB "ecukey.pub"     /* its public value as sent to the director */
#define STORE_ECU_SERIAL "primary_ecu_serial"
#define STORE_ECU_HWID "primary_ecu_hardware_id"
#define STORE_ECU_REGISTERED "is_registered"      /* ECUs accepted by the director */
#define STORE_CREDS_PENDING "creds.pending"       /* credentials being stored (see device) */
#define STORE_INSTALLED_TARGET "installed_target" /* JSON: the target installed last */
#define STORE_INSTALL_REPORT "install_report"     /* JSON: a result not yet reported */
#define STORE_PENDING_TARGET                                                                       \
  "pending_target"                               /* JSON as installed_target: installed, a         \
                                                    reboot completes it (see pacman/) */
#define STORE_DIRECTOR_ROOT "director_root.json" /* latest trusted director root */
#define STORE_DIRECTOR_TARGETS "director_targets.json"
#define STORE_IMAGE_ROOT "image_root.json" /* latest trusted image repo root */
#define STORE_IMAGE_TIMESTAMP "image_timestamp.json"
#define STORE_IMAGE_SNAPSHOT "image_snapshot.json"
#define STORE_IMAGE_TARGETS "image_targets.json"
/* sha256 (hex) of the last body of each kind of device data the server accepted */
#define STORE_SENT_SYSTEM_INFO "sent_system_info" /* PUT /system_info */
#define STORE_SENT_INSTALLED "sent_installed"     /* PUT /core/installed */
#define STORE_SENT_NETWORK "sent_network"         /* PUT /system_info/network */
#define STORE_SENT_CONFIG "sent_config"           /* POST /system_info/config */

typedef struct store store;

typedef struct store_ops {
  int (*read)(store *s, const char *name, char **data, size_t *len, otad_errbuf *eb);
  int (*write)(store *s, const char *name, const void *data, size_t len, bool secret,
               otad_errbuf *eb);
  int (*remove)(store *s, const char *name, otad_errbuf *eb);
  void (*close)(store *s);
} store_ops;

struct store {
  const store_ops *ops;
};

/* The largest value a store holds (both backends): bigger writes are refused with
 * OTAD_EINVAL, bigger files found on disk are refused on read with OTAD_EIO. */
#define STORE_MAX_VALUE (1024 * 1024)

/* Receives a warning the fs backend found and fixed at open (a directory or secret file
 * open to group/other, a stale temp file removed). msg is valid during the call only. */
typedef void (*store_warn_fn)(void *ctx, const char *msg);

/* Opens the directory dir as a store, creating it (mode 0700; missing parents 0755).
 * At open it fixes what a crash or a careless install left: a dir with group/other bits
 * is chmod'ed to 0700, secret files (pkey.pem, ecukey.pem, creds.pending) with
 * group/other bits to 0600, stale temp files (`.NAME.tmp.PID`) are removed; each fix is
 * warned through warn(ctx, msg) (warn NULL: log_msg(LOG_WARN, "storage", ...)). A dir or
 * secret file owned by another user than the effective one is refused (OTAD_EIO).
 * Returns NULL with eb filled when dir cannot be created, opened, fixed or written.
 * The store keeps a descriptor of dir open until close. */
store *store_fs_open_warn(const char *dir, store_warn_fn warn, void *ctx, otad_errbuf *eb);

/* store_fs_open_warn(dir, NULL, NULL, eb): warnings go to the log. */
store *store_fs_open(const char *dir, otad_errbuf *eb);

/* A store that lives in memory only (fleet simulation): one small heap block per value
 * (header + name + data), nothing else. Same names, limits and errors as the fs backend;
 * secret values are zeroed when replaced, removed or closed. NULL when out of memory. */
store *store_mem_open(void);

/* Heap bytes a store from store_mem_open() holds (entries and their malloc overhead);
 * 0 for any other store. For the fleet's memory report. */
size_t store_mem_bytes(const store *s);

/* 0 if name can name a value in any store: a plain file name of 1..200 characters, no
 * '/', not starting with '.' (that covers "." and ".." and keeps names apart from the fs
 * backend's temp files). Otherwise OTAD_EINVAL with eb filled. Every op checks it. */
int store_check_name(const char *name, otad_errbuf *eb);

/* Reads name into a new NUL-terminated heap buffer (*len excludes the NUL).
 * Returns 0, OTAD_ENOENT when absent, or another error. */
static inline int store_read(store *s, const char *name, char **data, size_t *len,
                             otad_errbuf *eb) {
  return s->ops->read(s, name, data, len, eb);
}

/* Replaces name with data atomically; secret => mode 0600 (else 0644). */
static inline int store_write(store *s, const char *name, const void *data, size_t len, bool secret,
                              otad_errbuf *eb) {
  return s->ops->write(s, name, data, len, secret, eb);
}

/* Removes name (absent is not an error). */
static inline int store_remove(store *s, const char *name, otad_errbuf *eb) {
  return s->ops->remove(s, name, eb);
}

/* Closes the store and frees it. */
static inline void store_close(store *s) {
  if (s) s->ops->close(s);
}

/* Reads name as a string with surrounding whitespace trimmed, as a heap string the
 * caller frees. NULL when absent or unreadable (use store_read to tell which). */
char *store_read_string(store *s, const char *name);

/* Writes data to path atomically with exactly mode (umask does not apply): a temp file
 * `.BASE.tmp.PID` in the same directory created with O_EXCL and mode (so a secret never
 * exists with a wider mode), fsync, rename over path, fsync of the directory. On failure
 * the temp file is removed and path keeps its old content (the one exception: only the
 * final directory fsync failed - path has the new content, not yet known durable);
 * OTAD_ENOSPC when the disk is full, else OTAD_EIO; eb names the path and the cause.
 * After a success, temp files of the same name left by killed processes are removed.
 * The primitive behind the fs backend, also used for the credentials zip. */
int atomic_write_file(const char *path, const void *data, size_t len, int mode, otad_errbuf *eb);

/* Crash-test seam (see store_fs.c): with OTAD_TEST_KILL_AT_WRITE set, numbers the step
 * what among the store's writes and removes, and SIGKILLs the process if its number is
 * the one asked for. Without the variable it does nothing. */
void store_test_step(const char *what);

/* Crash-test seam for downloads: with OTAD_TEST_KILL_AT_BYTE=N set, when the chunk data
 * (len bytes) about to be appended at offset at of the open file fd reaches byte N, writes
 * its first N - at bytes and SIGKILLs the process. Without the variable it does nothing. */
void store_test_download(int fd, const void *data, size_t len, uint64_t at);

#endif
