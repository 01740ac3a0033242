/* actions.c - the action table: which function of which state each action of the
 * transition table (core/machine.c) runs. The runtime gets it through device_opts.actions
 * and never names a state itself. Backoff and wait_cycle are the runtime's own (device/). */
#include "states.h"

const device_actions states_actions = {{
    [ACT_NONE] = NULL,
    [ACT_INSPECT] = unprovisioned_inspect,
    [ACT_REGISTER] = registering_register,
    [ACT_NEW_ID] = registering_new_id,
    [ACT_BACKOFF] = device_backoff,
    [ACT_WAIT_CYCLE] = device_wait_cycle,
    [ACT_PREPARE_KEY] = ecu_registering_prepare_key,
    [ACT_REGISTER_ECUS] = ecu_registering_register,
    [ACT_FINISH] = provisioned_finish,
    [ACT_POLL] = polling_poll,
    [ACT_IDLE] = polling_idle,
    [ACT_DOWNLOAD] = downloading_start,
    [ACT_INSTALL] = installing_start,
    [ACT_COMPLETE] = installing_complete,
    [ACT_REPORT] = polling_report,
    [ACT_FAIL] = failed_finish,
    [ACT_WALK] = polling_walk,
    [ACT_END] = polling_end,
}};
