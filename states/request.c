/* request.c - the one way a state sends a request: body and URL are handed over to the
 * device (which owns them until the next request), the identity is given as PEM blobs and
 * the whole request is bounded by [network] timeout_sec. states_send turns a failure to
 * start into a transient error like any other; states_request leaves that to its caller
 * (events and device data only log it). */
#include <stdlib.h>
#include <string.h>

#include "states.h"

int states_request(device *d, const char *method, char *url, char *body,
                   const char *content_type, size_t max_response, const tls_creds *id,
                   http_done_fn done) {
  free(d->req_url);
  free(d->req_body);
  d->req_url = url;
  d->req_body = body;
  if (!d->req_url || (strcmp(method, "GET") != 0 && !d->req_body)) return OTAD_ENOMEM;
  http_request *r = &d->req;
  r->method = method;
  r->url = d->req_url;
  r->content_type = body ? content_type : NULL;
  r->body = d->req_body;
  r->body_len = body ? strlen(body) : 0;
  r->cert_pem = id->cert_pem;
  r->key_pem = id->key_pem;
  r->ca_pem = id->ca_pem;
  r->max_response = max_response ? max_response : HTTP_DEFAULT_MAX_RESPONSE;
  /* Bounded: a server that stalls or trickles must not hold the device forever. */
  int limit_s = d->o.cfg && d->o.cfg->network_timeout_sec > 0 ? d->o.cfg->network_timeout_sec : 60;
  r->timeout_ms = (long)limit_s * 1000;
  r->connect_timeout_ms = r->timeout_ms;
  r->done = done;
  return http_start(d->o.http, r);
}

void states_send(device *d, const char *method, const char *what, char *url, char *body,
                 size_t max_response, const tls_creds *id, http_done_fn done) {
  int rc = states_request(d, method, url, body, "application/json", max_response, id, done);
  if (rc)
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "cannot start %s: %s", what, otad_strerror(rc));
}

void states_post_json(device *d, const char *what, char *url, cJSON *body, const tls_creds *id,
                      http_done_fn done) {
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  cJSON_Delete(body);
  states_send(d, "POST", what, url, text, 0, id, done);
}
