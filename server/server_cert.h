/* server_cert.h - `serve --server-cert wrong-host|expired`: a server certificate a device
 * must refuse, made when serve starts (signed by the fleet's server CA, which devices pin),
 * so client tests can check hostname and validity checking without touching the fleet. */
#ifndef OTA_SERVER_SERVER_CERT_H
#define OTA_SERVER_SERVER_CERT_H

enum server_cert_kind {
  SERVER_CERT_FLEET = 0,  /* DIR/server.pem as init made it */
  SERVER_CERT_WRONG_HOST, /* CN and subjectAltName wrong-host.invalid only */
  SERVER_CERT_EXPIRED     /* the usual names, valid from 30 days ago until yesterday */
};

/* Parses "fleet", "wrong-host" or "expired"; returns 0, or -1 for anything else. */
int server_cert_kind_parse(const char *name, enum server_cert_kind *out);

/* Makes a key and a certificate of kind, signed by DIR's server CA, and replaces *key_pem
 * and *crt_pem (heap strings, freed) with them as PEM. Prints what failed; returns 0 or -1. */
int server_cert_make(const char *dir, enum server_cert_kind kind, char **key_pem, char **crt_pem);

#endif
