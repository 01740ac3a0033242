/* update.h - what a device knows about an update while it handles one.
 *
 * Allocated when the device first polls (device.upd), so a device that never updates (or a
 * fleet device between cycles) pays nothing for it. The target is copied out of verified
 * director metadata; the result is the installation report the next manifest carries.
 */
#ifndef OTAD_UPDATE_H
#define OTAD_UPDATE_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/error.h"
#include "../storage/store.h"
#include "../uptane/target.h"
#include "../uptane/uptane.h"
#include "../uptane/walk.h"

/* Result codes of an installation report (docs/protocol.md, section 5). */
#define UPDATE_OK "OK"
#define UPDATE_ALREADY_PROCESSED "ALREADY_PROCESSED"
#define UPDATE_VERIFICATION_FAILED "VERIFICATION_FAILED"
#define UPDATE_INSTALL_FAILED "INSTALL_FAILED"
#define UPDATE_DOWNLOAD_FAILED "DOWNLOAD_FAILED"
#define UPDATE_INTERNAL_ERROR "INTERNAL_ERROR"
#define UPDATE_NEED_COMPLETION "NEED_COMPLETION"

/* The outcome of an attempt, waiting to be reported in the next manifest. */
typedef struct update_result {
  bool pending;
  bool success;
  char code[32]; /* UPDATE_OK, UPDATE_INSTALL_FAILED, ... */
  char description[256];
  char correlation_id[128];
  char target[256];
} update_result;

struct device;
#include <cjson/cJSON.h>

typedef struct device_update device_update;
struct device_update {
  uptane_director director; /* trusted director metadata */
  uptane_image image;       /* trusted image repository metadata */
  bool director_parsed;     /* director: restored from storage (once per run) */
  bool image_parsed;        /* image: restored, or fetched this cycle (dropped between cycles) */
  update_target target;     /* the update being handled */
  update_result result;
  int report_counter;
  /* polling.c's own state: the metadata walk of the cycle in progress (heap, only while
     a cycle runs) and the ECU it walks for */
  struct uptane_walk *walk;
  uptane_ecu primary;
  bool cycle_failed; /* this cycle's update failed (once: exit 1) */
  /* downloading.c's own state */
  uint64_t received; /* bytes of the target the image sink holds */
  void *download;    /* downloading.c's private state: running hashes, the image
                        sink (owns) */
  void (*download_release)(struct device_update *u); /* frees download and image_path; set
                                                        by the download that made them */
  char *image_path;                                  /* final path once downloaded and verified */
  /* which events of this attempt are queued (events.h); cleared for each new target */
  bool ev_download_started;
  bool ev_download_done;
  /* events.c's own state: a flush of the event queue in flight */
  void (*events_then)(struct device *d); /* the action's next step once the flush ends */
  int events_batch;                      /* events per POST (halved on HTTP 413) */
  int events_in_flight;                  /* the oldest queued events, sent in the POST in flight */
  char events_first_id[40];              /* the first of them: the queue must not have moved */
  /* device_data.c's own state: the device data being sent */
  void (*data_then)(struct device *d); /* the action's next step once the data is sent */
  int data_kind;                       /* enum device_data_kind being sent */
  char data_digest[65];                /* sha256 of its body: stored once the server accepts it */
  /* reboots and `otad check` */
  bool boot_checked;     /* this run looked for an installation a reboot completed */
  bool reboot_requested; /* this run installed with need_reboot: reboot_command next */
  bool check_available;  /* otad check: the verified target (in target) is available */
};

/* Allocates d->upd on first use and restores what earlier runs stored: the trusted
 * director metadata and a report a crash kept from being sent. 0 or OTAD_ENOMEM. */
int device_update_ensure(struct device *d);

/* Frees d->upd, the metadata it holds and the download's state (safe when NULL). */
void device_update_free(struct device *d);

/* Parses the stored image-repository metadata back into d->upd->image (a stored document
 * that no longer verifies is dropped with a warning, and fetched again). */
void device_update_restore_image(struct device *d);

/* Drops the parsed image metadata between cycles (the stored bytes stay trusted). */
void device_update_forget_image(struct device *d);

/* The Uptane key, ECU serial and hardware ID, from storage when this run did not make them.
 * 0, or an error with eb filled (no stored key, unreadable key). */
int device_ecu_identity(struct device *d, otad_errbuf *eb);

/* Records the outcome of an attempt (d->upd->target) for the next manifest, kept in the
 * store until a manifest carrying it is accepted. */
void device_set_result(struct device *d, bool success, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Forgets the result (memory and store): a manifest carrying it was accepted. */
void device_clear_result(struct device *d);

/* True when the target stored under key (STORE_INSTALLED_TARGET, STORE_PENDING_TARGET) is
 * name with that sha256. */
bool device_stored_target_is(store *st, const char *key, const char *name, const char *sha256);

#endif
