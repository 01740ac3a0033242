/* journal.h - every state transition as one JSON line, and the replay that checks them.
 *
 * A line: {"t":"2026-11-23T07:30:00.123Z","device":"LABEL","id":"DEVICE-ID","from":"registering",
 * "event":"id_taken","to":"registering","action":"new_id","detail":"..."}. LABEL is stable
 * for the life of a device (the device ID may change when the server says it is taken).
 * Each run of a device begins with event "start" from "unprovisioned". Lines are appended
 * with one write() each, so a crash can at worst leave a torn last line, which replay
 * reports and ignores.
 */
#ifndef OTAD_JOURNAL_H
#define OTAD_JOURNAL_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"
#include "machine.h"

typedef struct journal journal;

/* Opens path for appending (created 0640) and reserves 32 KiB past its end, so rows keep
 * being written when the disk fills up. Returns NULL with eb filled on failure. */
journal *journal_open(const char *path, otad_errbuf *eb);

/* Appends one transition as one whole line (a line the disk could only take part of is cut
 * off again). label, id and detail may be NULL. Returns 0, OTAD_ENOSPC or OTAD_EIO. */
int journal_record(journal *j, const char *label, const char *id, const transition *t,
                   const char *detail);

/* Closes and frees j (NULL is fine). */
void journal_close(journal *j);

/* What a replay found. */
typedef struct replay_result {
  size_t lines;                   /* lines read (blank lines not counted) */
  size_t transitions;             /* lines that matched the table */
  size_t devices;                 /* distinct labels */
  size_t runs;                    /* "start" events */
  size_t final_counts[ST__COUNT]; /* devices per last state */
  int diverged;                   /* 1 when a line does not follow from the table */
  size_t line;                    /* the first divergent or malformed line (1-based) */
  int torn_tail;                  /* 1 when the last line was cut short (a crash) and ignored */
  char why[512];                  /* what diverged, in words */
  size_t diverged_devices;        /* journal_replay_each: devices with a divergence (plus one for
                                     any malformed lines) */
} replay_result;

/* Re-runs every line of in through machine_step() and checks continuity per device.
 * Returns 0 when the journal replays cleanly, OTAD_EJOURNAL on the first divergence or
 * malformed line (details in res), OTAD_EIO on a read error. */
int journal_replay(FILE *in, replay_result *res);

/* Told about each divergence journal_replay_each() finds: the line (1-based), the device's
 * label ("" for a line without one) and what diverged, in words ("line N: device L: ..."). */
typedef void (*journal_divergence_fn)(void *ctx, size_t line, const char *label, const char *why);

/* journal_replay() for journals of many devices (otad-fleet's): each device's transitions
 * are checked on their own, so a device that diverges is reported through cb (may be NULL)
 * and skipped from then on while the others replay to the end; a malformed line is
 * reported and skipped. res describes the first divergence and counts the devices that
 * diverged; final_counts leaves diverged devices out. Returns 0 when nothing diverged,
 * OTAD_EJOURNAL when something did, OTAD_EIO on a read error. */
int journal_replay_each(FILE *in, replay_result *res, journal_divergence_fn cb, void *ctx);

/* Formats "YYYY-MM-DDTHH:MM:SS.mmmZ" for now into buf (at least 32 bytes). */
void journal_timestamp(char *buf, size_t len);

#endif
