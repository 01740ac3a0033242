/* db.h - the server's SQLite database: registered devices, their ECUs, and a log of requests.
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
  const char *created;     /* ISO 8601 UTC */
  const char *cert_expiry; /* ISO 8601 UTC */
  const char *primary_ecu; /* NULL until ECUs are registered */
  const db_ecu *ecus;
  size_t necus;
} db_device;

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
  DB_CONFLICT = 1,      /* device: the deviceId is taken */
  DB_ECUS_SAME = 2,     /* ECUs: this device registered exactly these before */
  DB_ECU_TAKEN = 3,     /* ECUs: a serial belongs to another device */
  DB_ECUS_DIFFERENT = 4 /* ECUs: this device registered other ECUs before */
};

/* Opens (creating tables if need be) path; read_only for the listing commands. */
int db_open(const char *path, bool read_only, db **out);

/* Closes the connection and frees the handle (NULL is fine). */
void db_close(db *d);

/* 1 when device_id is registered, 0 when not, -1 on error. */
int db_device_id_taken(db *d, const char *device_id);

/* 1 when a device has this uuid, 0 when not, -1 on error. */
int db_device_known(db *d, const char *uuid);

/* Records a new device: 0, DB_CONFLICT (device_id taken) or -1. Times are ISO 8601. */
int db_device_add(db *d, const char *uuid, const char *device_id, const char *created,
                  const char *cert_expiry);

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
