/* park.h - connections held open by the stall and trickle faults.
 *
 * A held connection is suspended (MHD_suspend_connection: it costs no thread and no polling)
 * and a small thread resumes it when it is due: a stalled request then closes, a trickle
 * sends its next bytes. libmicrohttpd forbids stopping a daemon with suspended connections,
 * so park_close() resumes them all first. The daemon needs MHD_ALLOW_SUSPEND_RESUME.
 */
#ifndef OTA_SERVER_PARK_H
#define OTA_SERVER_PARK_H

#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

typedef struct park park;

/* Starts the resuming thread. Returns 0, or -1 (out of memory, no thread). */
int park_create(park **out);

/* Suspends c until due_ms (utc_monotonic_ms() time). Call it from c's access handler or
 * content reader only. Returns -1, leaving c running, once park_close() was called. */
int park_hold(park *p, struct MHD_Connection *c, uint64_t due_ms);

/* True once park_close() was called: resumed connections should end. */
bool park_closing(park *p);

/* Resumes every held connection and refuses new ones; call before MHD_stop_daemon. */
void park_close(park *p);

/* Stops the thread and frees the park (NULL is fine); park_close() must have run. */
void park_free(park *p);

#endif
