/* states.h - one file per state: the actions the state machine names, and the table that
 * hands them to the runtime.
 *
 * device/device.c runs these after machine_step() chose them, through states_actions
 * (actions.c); each one starts I/O (through device/, pacman/, storage/) and raises the next
 * event with device_fire() when it is done. States never call each other: only events move
 * a device on, and what two states share lives in device/.
 */
#ifndef OTAD_STATES_H
#define OTAD_STATES_H

#include <stdbool.h>
#include <stdint.h>

#include "../device/device.h"

/* The action table every device runs with (device_opts.actions). */
extern const device_actions states_actions;

/* unprovisioned.c: reads storage; finds the device finished, half done, or new (then reads
 * credentials.zip). */
void unprovisioned_inspect(device *d);

/* registering.c: POST /devices with the fleet key; stores the issued credentials. */
void registering_register(device *d);

/* registering.c: forgets the device ID the server called taken, makes a new one, registers. */
void registering_new_id(device *d);

/* ecu_registering.c: loads the stored Uptane key or generates one on the thread pool. */
void ecu_registering_prepare_key(device *d);

/* ecu_registering.c: POST /director/ecus with the primary ECU. */
void ecu_registering_register(device *d);

/* provisioned.c: logs what the device is and tells its owner (or starts polling). */
void provisioned_finish(device *d);

/* failed.c: logs why the device gave up and tells its owner. */
void failed_finish(device *d);

/* polling.c: one cycle: PUT the signed manifest (with a pending installation report),
 * then director and image-repository metadata, verified; raises no_update,
 * update_available (d->upd->target set) or verification_failed. */
void polling_poll(device *d);

/* polling.c: waits polling_sec (with jitter) before the next cycle; `once` ends here. */
void polling_idle(device *d);

/* polling.c: sends the manifest carrying d->upd->result; raises reported. */
void polling_report(device *d);

/* polling.c: the action walk: the next metadata document of the cycle (fetched, verified,
 * stored: raises metadata), or the cycle's verdict: no_update, update_available,
 * verification_failed (run_over in `otad check`). */
void polling_walk(device *d);

/* polling.c: the action end: tells the owner that a one-shot run is over. */
void polling_end(device *d);

/* downloading.c: streams d->upd->target to [pacman] images_path (resuming a .part file
 * with Range), hashing as it goes; raises downloaded (d->upd->image_path set),
 * download_failed (d->upd->result filled: hash or length mismatch, nothing kept) or
 * transient_error (network: retried, resumed). */
void downloading_start(device *d);

/* installing.c: installs d->upd->image_path with the [pacman] type's backend; raises
 * installed, need_reboot or install_failed with d->upd->result filled. */
void installing_start(device *d);

/* installing.c: the action complete: records the pending target as installed (its result
 * OK), queues EcuInstallationCompleted and raises installed (or install_failed when the
 * store cannot record it). Needs d->upd. */
void installing_complete(device *d);

#endif
