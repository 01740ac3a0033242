/* request.c - the one way a device sends a request: body and URL are handed over to the
 * device (which owns them until the next request), the identity is given as PEM blobs and
 * the whole request is bounded by [network] timeout_sec. device_send turns a failure to
 * start into a transient error like any other; device_request leaves that to its caller
 * (events and device data only log it). device_request_failed turns a failed reply into
 * the event the table expects (transient_error or rejected). */
#include "request.h"

#include <stdlib.h>
#include <string.h>

int device_request(device *d, const char *method, char *url, char *body, const char *content_type,
                   size_t max_response, const tls_creds *id, http_done_fn done) {
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

void device_send(device *d, const char *method, const char *what, char *url, char *body,
                 size_t max_response, const tls_creds *id, http_done_fn done) {
  int rc = device_request(d, method, url, body, "application/json", max_response, id, done);
  if (rc)
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "cannot start %s: %s", what, otad_strerror(rc));
}

void device_post_json(device *d, const char *what, char *url, cJSON *body, const tls_creds *id,
                      http_done_fn done) {
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  cJSON_Delete(body);
  device_send(d, "POST", what, url, text, 0, id, done);
}

/* Reads {"code":..,"description":..} from an error reply, when there is one. */
void device_error_reply(const http_request *r, char *code, size_t cl, char *desc, size_t dl) {
  code[0] = desc[0] = 0;
  if (!r->resp) return;
  cJSON *o = cJSON_ParseWithLength((const char *)r->resp, r->resp_len);
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "code"),
              *s = cJSON_GetObjectItemCaseSensitive(o, "description");
  if (cJSON_IsString(c)) snprintf(code, cl, "%s", c->valuestring);
  if (cJSON_IsString(s)) snprintf(desc, dl, "%s", s->valuestring);
  cJSON_Delete(o);
}

/* What is wrong with a server certificate the TLS library refused, from its words (they
 * differ between libraries, so anything unrecognised reads as the usual cause). */
static const char *peer_problem(const char *msg) {
  if (strstr(msg, "expired")) return "has expired";
  if (strstr(msg, "not yet valid") || strstr(msg, "not valid yet")) return "is not valid yet";
  if (strstr(msg, "match") && (strstr(msg, "name") || strstr(msg, "host")))
    return "is not issued for this server's name";
  return "is not signed by the pinned CA";
}

void device_request_failed(device *d, http_request *r, const char *what) {
  if (r->err == OTAD_EPEER) {
    const char *detail = r->errmsg;
    while (*detail == ' ')
      detail++;
    device_fail_with(d, EV_REJECTED, r->err,
                     "%s: the server's certificate %s (%s); nothing was sent", what,
                     peer_problem(detail), detail);
    return;
  }
  if (r->err) {
    device_fail_with(d, EV_TRANSIENT_ERROR, r->err, "%s: %s (%s)", what, otad_strerror(r->err),
                     r->errmsg);
    return;
  }
  char code[64], desc[256];
  device_error_reply(r, code, sizeof(code), desc, sizeof(desc));
  if (r->status >= 500 || r->status == 408 || r->status == 429) {
    device_fail_with(d, EV_TRANSIENT_ERROR, OTAD_EHTTP5XX, "%s: server answered HTTP %ld%s%s", what,
                     r->status, desc[0] ? ": " : "", desc);
    return;
  }
  device_fail_with(d, EV_REJECTED, OTAD_EHTTP4XX,
                   "%s: server rejected the request: HTTP %ld%s%s%s%s", what, r->status,
                   code[0] ? " " : "", code, desc[0] ? ": " : "", desc);
}
