/* machine.h - the device state machine as data.
 *
 * States and events are enums with name tables; a table maps (state, event) to
 * (next state, action). machine_step() is pure: it only reads the table, so a recorded
 * journal replays without network, disk or clock. The runtime (device/device.c) performs the
 * action that a step names; the actions live in states/, one file per state.
 *
 *   unprovisioned --zip_loaded--> registering --registered--> ecu_registering
 *        |  \--stored_credentials / credentials_imported -------^      |
 *        |   \--stored_provisioned--> provisioned <--ecus_registered-/
 *        \--config_error--> failed        (transient errors retry in place with backoff)
 *   provisioned --credentials_changed--> unprovisioned   ([import] files replaced)
 *
 * The update cycle (polling_sec apart in a daemon; `otad once` ends at idle):
 *   provisioned --poll--> polling --update_available--> downloading --downloaded-->
 *   installing --installed / install_failed / need_reboot--> polling (report) --reported-->
 *   polling (idle) --poll--> polling ...
 *   polling --rebooted--> installing (complete) --installed--> polling (report): the first
 *   poll after a reboot finishes an installation that needed one (need_reboot).
 * Inside a cycle every metadata document the walk (uptane/walk.h) verified is a row of its
 * own: polling --metadata--> polling (walk), so a replay sees where a cycle stopped. A
 * one-shot run (`otad once`, `otad check`) ends with polling --run_over--> polling (end).
 */
#ifndef OTAD_MACHINE_H
#define OTAD_MACHINE_H

#include <stdbool.h>

#define DEVICE_STATES(X)                                                                           \
  X(ST_UNPROVISIONED, "unprovisioned")     /* inspects storage and credentials.zip */              \
  X(ST_REGISTERING, "registering")         /* POST /devices with the fleet key */                  \
  X(ST_ECU_REGISTERING, "ecu_registering") /* Uptane key, POST /director/ecus */                   \
  X(ST_PROVISIONED, "provisioned")         /* device certificate and ECUs accepted */              \
  X(ST_POLLING, "polling")                 /* manifest, Uptane metadata, reports */                \
  X(ST_DOWNLOADING, "downloading")         /* the assigned target, to images_path */               \
  X(ST_INSTALLING, "installing")           /* by [pacman] type */                                  \
  X(ST_FAILED, "failed")                   /* needs a person: bad config or rejection */

#define DEVICE_EVENTS(X)                                                                           \
  X(EV_START, "start")                               /* the device begins (every run) */           \
  X(EV_STORED_PROVISIONED, "stored_provisioned")     /* storage holds a finished device */         \
  X(EV_STORED_CREDENTIALS, "stored_credentials")     /* TLS creds stored, ECUs not yet */          \
  X(EV_ZIP_LOADED, "zip_loaded")                     /* fleet key read from the zip */             \
  X(EV_CREDENTIALS_IMPORTED, "credentials_imported") /* [import] files checked, stored */          \
  X(EV_IMPORT_FAILED, "import_failed")               /* [import] files missing or invalid */       \
  X(EV_CREDENTIALS_CHANGED, "credentials_changed")   /* [import] files changed later */            \
  X(EV_CONFIG_ERROR, "config_error")                 /* unusable zip/p12/config/key: give up */    \
  X(EV_REGISTERED, "registered")                     /* device credentials received and stored */  \
  X(EV_ID_TAKEN, "id_taken")                         /* server: device_already_registered */       \
  X(EV_REJECTED, "rejected")                         /* 4xx or untrusted server: give up */        \
  X(EV_TRANSIENT_ERROR, "transient_error")           /* 5xx, network, bad reply, disk: retry */    \
  X(EV_RETRY, "retry")                               /* the backoff timer fired */                 \
  X(EV_GIVE_UP, "give_up")                           /* retry budget spent (otad once) */          \
  X(EV_KEY_READY, "key_ready")                       /* Uptane primary key loaded or generated */  \
  X(EV_ECUS_REGISTERED, "ecus_registered")           /* director accepted the ECUs */              \
  X(EV_POLL, "poll")                                 /* time for a cycle (timer, or at once) */    \
  X(EV_NO_UPDATE, "no_update")                       /* verified: nothing new for this device */   \
  X(EV_UPDATE_AVAILABLE, "update_available")         /* verified target for the primary ECU */     \
  X(EV_VERIFICATION_FAILED, "verification_failed")   /* metadata failed Uptane checks */           \
  X(EV_DOWNLOADED, "downloaded")           /* image complete, length and hash verified */          \
  X(EV_DOWNLOAD_FAILED, "download_failed") /* hash/length mismatch, or gave up */                  \
  X(EV_INSTALLED, "installed")             /* pacman succeeded */                                  \
  X(EV_INSTALL_FAILED, "install_failed")   /* pacman failed */                                     \
  X(EV_NEED_REBOOT, "need_reboot")         /* installed; a reboot completes it */                  \
  X(EV_REBOOTED, "rebooted") /* first poll since a reboot that need_reboot awaited */              \
  X(EV_REPORTED, "reported") /* the manifest with the report was accepted */                       \
  X(EV_METADATA, "metadata") /* a metadata document verified (or a root chain's end) */            \
  X(EV_RUN_OVER, "run_over") /* once/check: the run has what it came for */

#define DEVICE_ACTIONS(X)                                                                          \
  X(ACT_NONE, "none")                                                                              \
  X(ACT_INSPECT, "inspect")             /* look at storage, then the zip */                        \
  X(ACT_REGISTER, "register")           /* send POST /devices */                                   \
  X(ACT_NEW_ID, "new_id")               /* forget the ID, make a new one, register */              \
  X(ACT_BACKOFF, "backoff")             /* arm the retry timer */                                  \
  X(ACT_WAIT_CYCLE, "wait_cycle")       /* try again next cycle (once: give up) */                 \
  X(ACT_PREPARE_KEY, "prepare_key")     /* load or generate the Uptane key */                      \
  X(ACT_REGISTER_ECUS, "register_ecus") /* send POST /director/ecus */                             \
  X(ACT_FINISH, "finish")               /* provisioned: tell the owner */                          \
  X(ACT_POLL, "poll")                   /* manifest, then director + image metadata */             \
  X(ACT_IDLE, "idle")                   /* wait polling_sec (once: the run ends) */                \
  X(ACT_DOWNLOAD, "download")           /* stream the target to images_path */                     \
  X(ACT_INSTALL, "install")             /* hand the image to the package manager */                \
  X(ACT_COMPLETE, "complete")           /* the reboot happened: record it installed */             \
  X(ACT_REPORT, "report")               /* send the manifest with the report */                    \
  X(ACT_FAIL, "fail")                   /* failed: tell the owner */                               \
  X(ACT_WALK, "walk")                   /* fetch the next metadata document, or decide */          \
  X(ACT_END, "end")                     /* the run is over: tell the owner */

enum dev_state {
#define X_ENUM(e, n) e,
  DEVICE_STATES(X_ENUM) ST__COUNT
};
enum dev_event { DEVICE_EVENTS(X_ENUM) EV__COUNT };
enum dev_action { DEVICE_ACTIONS(X_ENUM) ACT__COUNT };
#undef X_ENUM

/* The outcome of one step. */
typedef struct transition {
  enum dev_state from;
  enum dev_event event;
  enum dev_state to;
  enum dev_action action;
} transition;

/* Applies event to state via the table. Returns true and fills out, or false when the
 * table has no entry (the event is not allowed in that state). Pure. */
bool machine_step(enum dev_state state, enum dev_event event, transition *out);

/* Names: "registering", "id_taken", "backoff"; "?" for out-of-range values. */
const char *machine_state_name(enum dev_state s);
const char *machine_event_name(enum dev_event e);
const char *machine_action_name(enum dev_action a);

/* Looks a name up; returns -1 when unknown. */
int machine_state_from_name(const char *name);
int machine_event_from_name(const char *name);
int machine_action_from_name(const char *name);

#endif
