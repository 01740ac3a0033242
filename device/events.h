/* events.h - what happened to an update, told to the server: the durable event queue.
 *
 * The steps of an update are events (docs/protocol.md, section 5): queued in the store when
 * they happen, sent later by events_flush() to POST {server}/events. Sending never holds
 * the state machine up: a flush that fails keeps the events for the next cycle.
 */
#ifndef OTAD_EVENTS_H
#define OTAD_EVENTS_H

#include "device.h"

/* Store name of the queue: a JSON array of events as they are sent, oldest first. */
#define STORE_EVENTS "events.json"

/* The most events kept; queuing one more drops the oldest (with a warning). */
#define EVENTS_MAX_QUEUED 100

/* Event types (eventType.id). */
#define EVENT_DOWNLOAD_STARTED "EcuDownloadStarted"
#define EVENT_DOWNLOAD_COMPLETED "EcuDownloadCompleted" /* with success */
#define EVENT_INSTALLATION_STARTED "EcuInstallationStarted"
#define EVENT_INSTALLATION_APPLIED "EcuInstallationApplied"     /* a reboot completes it */
#define EVENT_INSTALLATION_COMPLETED "EcuInstallationCompleted" /* with success */

/* "success" of an event: absent, false, true. */
enum event_success { EVENT_NO_SUCCESS = -1, EVENT_FAILED = 0, EVENT_SUCCEEDED = 1 };

/* Appends an event of type for the primary ECU to the queue in d's store:
 * {"id":"<uuid4>","deviceTime":"YYYY-MM-DDTHH:MM:SSZ","eventType":{"id":type,"version":0},
 *  "event":{"ecu":SERIAL,"correlationId":correlation_id,"success":bool (unless absent)}}.
 * A store that cannot be written loses the event (a warning), nothing else. */
void events_queue(device *d, const char *type, const char *correlation_id,
                  enum event_success success);

/* Sends the queue to {server}/events in batches over d->req, then calls then(d) (at once
 * when the queue is empty or no server URL is known). Answers: 2xx removes the sent
 * events and sends the next batch; 404 drops the whole queue (a server without events);
 * 413 halves the batch and tries again (a single event refused so is dropped); anything
 * else keeps the events for the next flush. then() runs in every case but a cancel
 * (device_close). Needs d->upd. */
void events_flush(device *d, void (*then)(device *d));

/* Makes a random (version 4) UUID, lower-case: out holds 37 bytes. */
void events_uuid4(device *d, char out[37]);

#endif
