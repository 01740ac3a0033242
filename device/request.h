/* request.h - how a device sends a request and classifies a failed one (request.c). */
#ifndef OTAD_DEVICE_REQUEST_H
#define OTAD_DEVICE_REQUEST_H

#include <cjson/cJSON.h>

#include "device.h"

/* Starts method on url (heap, consumed) with body (heap, consumed; NULL for GET) of
 * content_type, identity id, response cap (0 = 64 KiB) and [network] timeout_sec.
 * Returns 0 (done() will be called) or an OTAD_E* code (it will not). */
int device_request(device *d, const char *method, char *url, char *body, const char *content_type,
                   size_t max_response, const tls_creds *id, http_done_fn done);

/* Sends method to url (heap, consumed) with body (JSON text, heap, consumed; NULL for GET)
 * and identity id; the response is capped at max_response bytes (0 = 64 KiB); what
 * ("PUT /director/manifest") names the call in errors. A failure to start raises
 * transient_error; otherwise done() gets the outcome. */
void device_send(device *d, const char *method, const char *what, char *url, char *body,
                 size_t max_response, const tls_creds *id, http_done_fn done);

/* POSTs body (consumed) as JSON to url (heap, consumed) with identity id; what
 * ("POST /devices") names the call in errors. done() gets the outcome. */
void device_post_json(device *d, const char *what, char *url, cJSON *body, const tls_creds *id,
                      http_done_fn done);

/* Turns a failed request into the right event: network trouble, 5xx, 408 and 429 raise
 * transient_error (retried with backoff); any other 4xx or an untrusted server raises
 * rejected. what names the call in the message. */
void device_request_failed(device *d, http_request *r, const char *what);

/* Reads {"code":..,"description":..} from an error reply into code and desc ("" when
 * the reply has none). */
void device_error_reply(const http_request *r, char *code, size_t cl, char *desc, size_t dl);

#endif
