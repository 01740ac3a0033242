/* db.h - the server's SQLite database: registered devices, their ECUs, the uploaded fleet CAs,
 * what devices report (manifests, installation reports, events, device data) and a log of
 * requests.
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

/* A device's last manifest (PUT /director/manifest). */
typedef struct db_manifest {
  const char *received;         /* ISO 8601 UTC */
  const char *primary_ecu;      /* signed.primary_ecu_serial, or NULL */
  const char *signature;        /* valid, invalid, unsigned, unknown_ecu or unsupported */
  const char *installed_target; /* the primary ECU's installed_image.filepath, or NULL */
  const char *raw;              /* the body as sent */
} db_manifest;

/* A device's last installation report (signed.installation_report of a manifest). */
typedef struct db_report {
  const char *received;
  const char *correlation_id;
  int success; /* 1, 0, or -1 when absent */
  const char *code;
  const char *description;
  const char *raw; /* the installation_report object */
} db_report;

/* One event of POST /events. */
typedef struct db_event {
  const char *event_id;    /* "id" */
  const char *type;        /* eventType.id */
  const char *device_time; /* deviceTime */
  const char *received;
  const char *ecu;            /* event.ecu, or NULL */
  const char *correlation_id; /* event.correlationId, or NULL */
  int success;                /* event.success: 1, 0, or -1 when absent */
  const char *raw;            /* the event object */
} db_event;

/* The last body of one kind of device data: "installed" (PUT /core/installed),
 * "system_info", "network" (PUT /system_info/network), "config" (POST /system_info/config). */
typedef struct db_data {
  const char *kind;
  const char *updated;
  const char *body;
} db_data;

#define DB_EVENTS_LISTED 5 /* the listings show a device's last few events */

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
  const db_manifest *manifest; /* NULL when it sent none */
  const db_report *report;     /* NULL when it sent none */
  const db_event *events;      /* its last DB_EVENTS_LISTED events, oldest first */
  size_t nevents;
  size_t events_total; /* how many it sent */
  const db_data *data; /* device data, by kind */
  size_t ndata;
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

/* 1 when a shared-credential device has this uuid, 0 when not, -1 on error. Remembers the
 * uuids it found (devices are never removed). */
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

/* The key an ECU of the device registered: 1 with malloc'd *key_type and *public_key, 0 when
 * the device has no such ECU, -1 on errors. */
int db_ecu_key(db *d, const char *uuid, const char *serial, char **key_type, char **public_key);

/* Replaces the device's last manifest. */
int db_manifest_set(db *d, const char *uuid, const db_manifest *m);

/* Replaces the device's last installation report. */
int db_report_set(db *d, const char *uuid, const db_report *r);

/* Stores events in one transaction; an event ID the device sent before is skipped (a
 * resent batch). Returns how many were new, or -1. */
int db_events_add(db *d, const char *uuid, const db_event *events, size_t n);

/* Replaces the device's data of one kind. */
int db_data_set(db *d, const char *uuid, const char *kind, const char *updated, const char *body);

/* Appends one line to the request log: queued (the strings are copied) for a thread that
 * writes queued lines in batches; db_close() writes what is still queued. 0 or -1. */
int db_request_add(db *d, const char *ts, const char *cn, const char *method, const char *path,
                   int status);

/* Calls fn for every device in order of registration; stops early when fn returns nonzero. */
int db_devices_foreach(db *d, int (*fn)(const db_device *dev, void *arg), void *arg);

/* Calls fn for every logged request in order; stops early when fn returns nonzero. */
int db_requests_foreach(db *d, int (*fn)(const db_request *req, void *arg), void *arg);

#endif
