/* machine.c - the transition table and the pure step function (see machine.h).
 *
 * Each row reads as a sentence: in STATE, on EVENT, go to NEXT and do ACTION. A pair that
 * is not listed is a bug in the caller, and machine_step() says so by returning false.
 */
#include "machine.h"

#include <string.h>

static const transition table[] = {
    /* from               event                  to                  action */
    {ST_UNPROVISIONED, EV_START, ST_UNPROVISIONED, ACT_INSPECT},
    {ST_UNPROVISIONED, EV_STORED_PROVISIONED, ST_PROVISIONED, ACT_FINISH},
    {ST_UNPROVISIONED, EV_STORED_CREDENTIALS, ST_ECU_REGISTERING, ACT_PREPARE_KEY},
    {ST_UNPROVISIONED, EV_ZIP_LOADED, ST_REGISTERING, ACT_REGISTER},
    {ST_UNPROVISIONED, EV_CREDENTIALS_IMPORTED, ST_ECU_REGISTERING, ACT_PREPARE_KEY},
    {ST_UNPROVISIONED, EV_IMPORT_FAILED, ST_UNPROVISIONED, ACT_WAIT_CYCLE},
    {ST_UNPROVISIONED, EV_CONFIG_ERROR, ST_FAILED, ACT_FAIL},
    {ST_UNPROVISIONED, EV_TRANSIENT_ERROR, ST_UNPROVISIONED, ACT_BACKOFF},
    {ST_UNPROVISIONED, EV_RETRY, ST_UNPROVISIONED, ACT_INSPECT},
    {ST_UNPROVISIONED, EV_GIVE_UP, ST_FAILED, ACT_FAIL},

    {ST_REGISTERING, EV_REGISTERED, ST_ECU_REGISTERING, ACT_PREPARE_KEY},
    {ST_REGISTERING, EV_ID_TAKEN, ST_REGISTERING, ACT_NEW_ID},
    {ST_REGISTERING, EV_TRANSIENT_ERROR, ST_REGISTERING, ACT_BACKOFF},
    {ST_REGISTERING, EV_RETRY, ST_REGISTERING, ACT_REGISTER},
    {ST_REGISTERING, EV_REJECTED, ST_FAILED, ACT_FAIL},
    {ST_REGISTERING, EV_GIVE_UP, ST_FAILED, ACT_FAIL},
    {ST_REGISTERING, EV_CONFIG_ERROR, ST_FAILED, ACT_FAIL},

    {ST_ECU_REGISTERING, EV_KEY_READY, ST_ECU_REGISTERING, ACT_REGISTER_ECUS},
    {ST_ECU_REGISTERING, EV_ECUS_REGISTERED, ST_PROVISIONED, ACT_FINISH},
    {ST_ECU_REGISTERING, EV_TRANSIENT_ERROR, ST_ECU_REGISTERING, ACT_BACKOFF},
    {ST_ECU_REGISTERING, EV_RETRY, ST_ECU_REGISTERING, ACT_PREPARE_KEY},
    {ST_ECU_REGISTERING, EV_REJECTED, ST_FAILED, ACT_FAIL},
    {ST_ECU_REGISTERING, EV_GIVE_UP, ST_FAILED, ACT_FAIL},
    {ST_ECU_REGISTERING, EV_CONFIG_ERROR, ST_FAILED, ACT_FAIL},

    {ST_PROVISIONED, EV_CREDENTIALS_CHANGED, ST_UNPROVISIONED, ACT_INSPECT},
    {ST_PROVISIONED, EV_POLL, ST_POLLING, ACT_POLL},

    {ST_POLLING, EV_NO_UPDATE, ST_POLLING, ACT_IDLE},
    {ST_POLLING, EV_POLL, ST_POLLING, ACT_POLL},
    {ST_POLLING, EV_UPDATE_AVAILABLE, ST_DOWNLOADING, ACT_DOWNLOAD},
    {ST_POLLING, EV_VERIFICATION_FAILED, ST_POLLING, ACT_REPORT},
    {ST_POLLING, EV_REPORTED, ST_POLLING, ACT_IDLE},
    {ST_POLLING, EV_TRANSIENT_ERROR, ST_POLLING, ACT_BACKOFF},
    {ST_POLLING, EV_RETRY, ST_POLLING, ACT_POLL},
    {ST_POLLING, EV_GIVE_UP, ST_FAILED, ACT_FAIL},
    {ST_POLLING, EV_REJECTED, ST_POLLING, ACT_WAIT_CYCLE},
    {ST_POLLING, EV_CONFIG_ERROR, ST_FAILED, ACT_FAIL},
    {ST_POLLING, EV_CREDENTIALS_CHANGED, ST_UNPROVISIONED, ACT_INSPECT},
    {ST_POLLING, EV_REBOOTED, ST_INSTALLING, ACT_COMPLETE},
    {ST_POLLING, EV_METADATA, ST_POLLING, ACT_WALK},
    {ST_POLLING, EV_RUN_OVER, ST_POLLING, ACT_END},

    {ST_DOWNLOADING, EV_DOWNLOADED, ST_INSTALLING, ACT_INSTALL},
    {ST_DOWNLOADING, EV_DOWNLOAD_FAILED, ST_POLLING, ACT_REPORT},
    {ST_DOWNLOADING, EV_TRANSIENT_ERROR, ST_DOWNLOADING, ACT_BACKOFF},
    {ST_DOWNLOADING, EV_RETRY, ST_DOWNLOADING, ACT_DOWNLOAD},
    {ST_DOWNLOADING, EV_GIVE_UP, ST_POLLING, ACT_REPORT},

    {ST_INSTALLING, EV_INSTALLED, ST_POLLING, ACT_REPORT},
    {ST_INSTALLING, EV_INSTALL_FAILED, ST_POLLING, ACT_REPORT},
    {ST_INSTALLING, EV_NEED_REBOOT, ST_POLLING, ACT_REPORT},
};

bool machine_step(enum dev_state state, enum dev_event event, transition *out) {
  for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
    if (table[i].from == state && table[i].event == event) {
      *out = table[i];
      return true;
    }
  }
  return false;
}

#define X_NAME(e, n) n,
static const char *const state_names[] = {DEVICE_STATES(X_NAME)};
static const char *const event_names[] = {DEVICE_EVENTS(X_NAME)};
static const char *const action_names[] = {DEVICE_ACTIONS(X_NAME)};
#undef X_NAME

const char *machine_state_name(enum dev_state s) {
  return (unsigned)s < ST__COUNT ? state_names[s] : "?";
}

const char *machine_event_name(enum dev_event e) {
  return (unsigned)e < EV__COUNT ? event_names[e] : "?";
}

const char *machine_action_name(enum dev_action a) {
  return (unsigned)a < ACT__COUNT ? action_names[a] : "?";
}

static int lookup(const char *const *names, int n, const char *name) {
  for (int i = 0; name && i < n; i++)
    if (strcmp(names[i], name) == 0) return i;
  return -1;
}

int machine_state_from_name(const char *name) {
  return lookup(state_names, ST__COUNT, name);
}
int machine_event_from_name(const char *name) {
  return lookup(event_names, EV__COUNT, name);
}
int machine_action_from_name(const char *name) {
  return lookup(action_names, ACT__COUNT, name);
}
