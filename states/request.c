/* request.c - the one way a state sends a JSON request: body and URL are handed over to
 * the device (which owns them until the next request), the identity is given as PEM
 * blobs, and a failure to start becomes a transient error like any other. */
#include <stdlib.h>
#include <string.h>

#include "states.h"

void states_post_json(device *d, const char *what, char *url, cJSON *body, const tls_creds *id,
                      http_done_fn done) {
  free(d->req_url);
  free(d->req_body);
  d->req_url = url;
  d->req_body = body ? cJSON_PrintUnformatted(body) : NULL;
  cJSON_Delete(body);
  if (!d->req_body || !d->req_url) {
    device_fail_with(d, EV_TRANSIENT_ERROR, OTAD_ENOMEM, "%s: out of memory", what);
    return;
  }
  http_request *r = &d->req;
  r->method = "POST";
  r->url = d->req_url;
  r->content_type = "application/json";
  r->body = d->req_body;
  r->body_len = strlen(d->req_body);
  r->cert_pem = id->cert_pem;
  r->key_pem = id->key_pem;
  r->ca_pem = id->ca_pem;
  r->max_response = HTTP_DEFAULT_MAX_RESPONSE;
  r->done = done;
  int rc = http_start(d->o.http, r);
  if (rc)
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "cannot start %s: %s", what, otad_strerror(rc));
}
