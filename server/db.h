/* db.h - the server's SQLite database: registered devices, their ECUs, the uploaded fleet CAs
 * and a log of requests.
 *
 * One connection shared by every server thread behind a mutex: SQLite serialises writers
 * anyway, and in WAL mode with synchronous=NORMAL a prepared insert costs microseconds.
 * Every function logs its own SQLite errors to stderr and returns a negative number.
 */
#ifndef OTA_SERVER_DB_H
#define OTA_SERVER_DB_H

#include <stdbool.h>
#include <stddef.h>

typedef struct db db;

/* One ECU as the device registered it. */
typedef struct db_ecu {
  const char *serial;
  const char *hardware_id;
  const char *key_type;   /* "RSA" or "ED25519", as sent */
  const char *public_key; /* keyval.public, as sent */
} db_ecu;

/* One device as listed (strings valid during the callback only). */
typedef struct db_device {
  const char *uuid;
  const char *device_id;
  const char *created;      /* ISO 8601 UTC */
  const char *cert_expiry;  /* ISO 8601 UTC */
  const char *primary_ecu;  /* NULL until ECUs are registered */
  const char *provisioning; /* "shared" (POST /devices) or "implicit" (a fleet CA's certificate) */
  const char *fleet_ca;     /* implicit: the name of the fleet CA it chains to; else NULL */
  const db_ecu *ecus;
  size_t necus;
} db_device;

/* One uploaded fleet CA (strings valid during the callback only). */
typedef struct db_fleet_ca {
  const char *name;      /* also its file: fleet_cas/NAME.pem */
  const char *sha256;    /* lower-case hex SHA-256 of the DER certificate */
  const char *subject;   /* RFC 4514 distinguished name */
  const char *not_after; /* ISO 8601 UTC */
  const char *added;     /* ISO 8601 UTC */
} db_fleet_ca;

/* One logged request (strings valid during the callback only). */
typedef struct db_request {
  const char *ts; /* ISO 8601 UTC with milliseconds */
  const char *cn; /* client certificate CN, or "-" */
  const char *method;
  const char *path;
  int status; /* 0: the connection was closed without an answer */
} db_request;

/* Results of registrations, beside 0 (done) and -1 (database error). */
enum {
  DB_CONFLICT = 1,       /* device: the deviceId is taken */
  DB_ECUS_SAME = 2,      /* ECUs: this device registered exactly these before */
  DB_ECU_TAKEN = 3,      /* ECUs: a serial belongs to another device */
  DB_ECUS_DIFFERENT = 4, /* ECUs: this device registered other ECUs before */
  DB_CREATED = 5         /* implicit device: created on this first contact */
};

/* Opens (creating tables if need be) path; read_only for the listing commands. */
int db_open(const char *path, bool read_only, db **out);

/* Closes the connection and frees the handle (NULL is fine). */
void db_close(db *d);

/* 1 when device_id is registered, 0 when not, -1 on error. */
int db_device_id_taken(db *d, const char *device_id);

/* 1 when a shared-credential device has this uuid, 0 when not, -1 on error. */
int db_device_known(db *d, const char *uuid);

/* Records a new device: 0, DB_CONFLICT (device_id taken) or -1. Times are ISO 8601. */
int db_device_add(db *d, const char *uuid, const char *device_id, const char *created,
                  const char *cert_expiry);

/* The device a fleet CA's certificate names: the device whose device_id is cn, when it was
 * created by a certificate of the same fleet CA (0), or a new one with uuid new_uuid
 * (DB_CREATED); its uuid is copied to uuid[37]. DB_CONFLICT when cn is the device_id of a
 * shared-credential device or of another fleet CA's device: that CA's name, or "" for a
 * shared-credential device, is copied to owner[size]. A changed certificate expiry is
 * recorded. -1 on errors. */
int db_implicit_device(db *d, const char *cn, const char *fleet_ca, const char *new_uuid,
                       const char *created, const char *cert_expiry, char uuid[37], char *owner,
                       size_t size);

/* Records an uploaded fleet CA: 0, DB_CONFLICT (its name or its certificate is there
 * already) or -1. */
int db_fleet_ca_add(db *d, const db_fleet_ca *ca);

/* Calls fn for every fleet CA in order of upload; stops early when fn returns nonzero. A
 * database older than fleet CAs has none. */
int db_fleet_cas_foreach(db *d, int (*fn)(const db_fleet_ca *ca, void *arg), void *arg);

/* Records a device's ECUs in one transaction: 0, DB_ECUS_SAME, DB_ECU_TAKEN (the serial is
 * copied to taken[size]), DB_ECUS_DIFFERENT or -1. */
int db_ecus_register(db *d, const char *uuid, const char *primary, const db_ecu *ecus, size_t necus,
                     char *taken, size_t size);

/* Appends one line to the request log. */
int db_request_add(db *d, const char *ts, const char *cn, const char *method, const char *path,
                   int status);

/* Calls fn for every device in order of registration; stops early when fn returns nonzero. */
int db_devices_foreach(db *d, int (*fn)(const db_device *dev, void *arg), void *arg);

/* Calls fn for every logged request in order; stops early when fn returns nonzero. */
int db_requests_foreach(db *d, int (*fn)(const db_request *req, void *arg), void *arg);

#endif
