/* db.c - the server's SQLite database (devices, ecus, fleet_cas, requests, and what devices
 * report: manifests, installation_reports, events, device_data).
 *
 * Statements the request path uses are prepared once at open; a mutex guards the one
 * connection, so a check-then-insert (a deviceId, a set of ECUs, an implicit device) is
 * atomic between threads. Databases made before implicit provisioning lack two columns of
 * `devices` and the `fleet_cas` table: a read-write open adds them, and a read-only open
 * (the listings) reads such a database as it is. The tables of device reports are new tables,
 * made by any read-write open; a read-only open of a database without them lists no reports.
 *
 * Two things keep SQLite off the path of every request (each statement costs a handful of
 * file-lock and write system calls): the request log is queued and written by a thread of
 * its own, all rows queued meanwhile in one transaction (a group commit: under light load a
 * row is written as soon as it is queued, under heavy load batches grow); and the uuids of
 * registered shared-credential devices are remembered once looked up (devices are never
 * removed), so the per-request check reads memory.
 */
#include "db.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

enum stmt_id {
  ST_DEVICE_ID_TAKEN,
  ST_DEVICE_KNOWN,
  ST_DEVICE_ADD,
  ST_REQUEST_ADD,
  ST_ECU_OWNER,
  ST_ECUS_OF,
  ST_ECU_ADD,
  ST_PRIMARY_SET,
  ST_DEVICE_BY_ID,
  ST_IMPLICIT_ADD,
  ST_EXPIRY_SET,
  ST_FLEET_CA_ADD,
  ST_ECU_KEY,
  ST_MANIFEST_SET,
  ST_REPORT_SET,
  ST_EVENT_ADD,
  ST_DATA_SET,
  ST_COUNT
};

static const char *const STMT_SQL[ST_COUNT] = {
    [ST_DEVICE_ID_TAKEN] = "SELECT 1 FROM devices WHERE device_id = ?1",
    [ST_DEVICE_KNOWN] = "SELECT 1 FROM devices WHERE uuid = ?1 AND provisioning = 'shared'",
    [ST_DEVICE_ADD] = "INSERT INTO devices (uuid, device_id, created, cert_expiry) "
                      "VALUES (?1, ?2, ?3, ?4)",
    [ST_REQUEST_ADD] = "INSERT INTO requests (ts, cn, method, path, status) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_ECU_OWNER] = "SELECT device_uuid FROM ecus WHERE serial = ?1",
    [ST_ECUS_OF] = "SELECT serial, hardware_id, key_type, public_key FROM ecus "
                   "WHERE device_uuid = ?1 ORDER BY serial",
    [ST_ECU_ADD] = "INSERT INTO ecus (serial, device_uuid, hardware_id, key_type, public_key) "
                   "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_PRIMARY_SET] = "UPDATE devices SET primary_ecu = ?2 WHERE uuid = ?1",
    [ST_DEVICE_BY_ID] = "SELECT uuid, provisioning, fleet_ca, cert_expiry FROM devices "
                        "WHERE device_id = ?1",
    [ST_IMPLICIT_ADD] = "INSERT INTO devices "
                        "(uuid, device_id, created, cert_expiry, provisioning, fleet_ca) "
                        "VALUES (?1, ?2, ?3, ?4, 'implicit', ?5)",
    [ST_EXPIRY_SET] = "UPDATE devices SET cert_expiry = ?2 WHERE uuid = ?1",
    [ST_FLEET_CA_ADD] = "INSERT INTO fleet_cas (name, sha256, subject, not_after, added) "
                        "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_ECU_KEY] = "SELECT key_type, public_key FROM ecus WHERE device_uuid = ?1 AND serial = ?2",
    [ST_MANIFEST_SET] = "INSERT OR REPLACE INTO manifests "
                        "(device_uuid, received, primary_ecu, signature, installed_target, raw) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_REPORT_SET] = "INSERT OR REPLACE INTO installation_reports (device_uuid, received,"
                      " correlation_id, code, description, raw, success) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_EVENT_ADD] = "INSERT OR IGNORE INTO events (device_uuid, event_id, type, device_time,"
                     " received, ecu, correlation_id, raw, success) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_DATA_SET] = "INSERT OR REPLACE INTO device_data (device_uuid, kind, updated, body) "
                    "VALUES (?1, ?2, ?3, ?4)",
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS devices ("
    " uuid TEXT PRIMARY KEY, device_id TEXT NOT NULL UNIQUE, created TEXT NOT NULL,"
    " cert_expiry TEXT NOT NULL, primary_ecu TEXT,"
    " provisioning TEXT NOT NULL DEFAULT 'shared', fleet_ca TEXT);"
    "CREATE TABLE IF NOT EXISTS ecus ("
    " serial TEXT PRIMARY KEY, device_uuid TEXT NOT NULL REFERENCES devices(uuid),"
    " hardware_id TEXT NOT NULL, key_type TEXT NOT NULL, public_key TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS ecus_by_device ON ecus(device_uuid);"
    "CREATE TABLE IF NOT EXISTS requests ("
    " id INTEGER PRIMARY KEY, ts TEXT NOT NULL, cn TEXT NOT NULL, method TEXT NOT NULL,"
    " path TEXT NOT NULL, status INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS requests_by_cn ON requests(cn);"
    "CREATE TABLE IF NOT EXISTS fleet_cas ("
    " name TEXT PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, subject TEXT NOT NULL,"
    " not_after TEXT NOT NULL, added TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS manifests ("
    " device_uuid TEXT PRIMARY KEY, received TEXT NOT NULL, primary_ecu TEXT,"
    " signature TEXT NOT NULL, installed_target TEXT, raw TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS installation_reports ("
    " device_uuid TEXT PRIMARY KEY, received TEXT NOT NULL, correlation_id TEXT,"
    " success INTEGER, code TEXT, description TEXT, raw TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events ("
    " id INTEGER PRIMARY KEY, device_uuid TEXT NOT NULL, event_id TEXT NOT NULL, type TEXT,"
    " device_time TEXT, received TEXT NOT NULL, ecu TEXT, correlation_id TEXT, success INTEGER,"
    " raw TEXT NOT NULL, UNIQUE (device_uuid, event_id));"
    "CREATE TABLE IF NOT EXISTS device_data ("
    " device_uuid TEXT NOT NULL, kind TEXT NOT NULL, updated TEXT NOT NULL, body TEXT NOT NULL,"
    " PRIMARY KEY (device_uuid, kind));";

/* What a database made before implicit provisioning lacks in `devices`. */
static const char MIGRATE_IMPLICIT[] =
    "ALTER TABLE devices ADD COLUMN provisioning TEXT NOT NULL DEFAULT 'shared';"
    "ALTER TABLE devices ADD COLUMN fleet_ca TEXT;";

#define LOG_QUEUE_MAX 65536 /* queued request-log rows before db_request_add() waits */

/* One queued row of the request log; its strings follow the struct. */
typedef struct log_row {
  struct log_row *next;
  int status;
  const char *ts, *cn, *method, *path;
  char strings[];
} log_row;

struct db {
  sqlite3 *conn;
  sqlite3_stmt *stmt[ST_COUNT];
  pthread_mutex_t lock;
  bool implicit_columns; /* devices has provisioning and fleet_ca */
  bool fleet_cas_table;
  bool report_tables; /* manifests, installation_reports, events, device_data */
  /* uuids (16 bytes each, all-zero = empty slot) of shared-credential devices seen; under lock */
  unsigned char (*known)[16];
  size_t known_cap, known_n;
  /* the request log queue and its writer thread */
  pthread_mutex_t log_lock;
  pthread_cond_t log_queued, log_room;
  log_row *log_head, *log_tail;
  size_t log_n;
  bool log_started, log_closing;
  pthread_t log_thread;
};

static int fail(db *d, const char *what) {
  fprintf(stderr, "ota-server: database: %s: %s\n", what, sqlite3_errmsg(d->conn));
  return -1;
}

/* Resets a statement and binds text parameters 1..n (NULL binds SQL NULL). */
static sqlite3_stmt *bind_text(db *d, enum stmt_id id, int n, const char *const *values) {
  sqlite3_stmt *s = d->stmt[id];
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  for (int i = 0; i < n; i++)
    if (sqlite3_bind_text(s, i + 1, values[i], -1, SQLITE_TRANSIENT) != SQLITE_OK) return NULL;
  return s;
}

/* 1 when table has the column (0 also when there is no such table), -1 on errors. */
static int has_column(sqlite3 *conn, const char *table, const char *column) {
  sqlite3_stmt *s = NULL;
  int rc = -1;
  if (sqlite3_prepare_v2(conn, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &s,
                         NULL) == SQLITE_OK &&
      sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC) == SQLITE_OK &&
      sqlite3_bind_text(s, 2, column, -1, SQLITE_STATIC) == SQLITE_OK) {
    int step = sqlite3_step(s);
    rc = step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : -1;
  }
  sqlite3_finalize(s);
  return rc;
}

/* Brings an older database's `devices` up to date, once, even with two processes at it. */
static int migrate(db *d, const char *path) {
  char *err = NULL;
  if (sqlite3_exec(d->conn, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK) goto fail;
  int has = has_column(d->conn, "devices", "provisioning");
  if (has < 0 ||
      (has == 0 && sqlite3_exec(d->conn, MIGRATE_IMPLICIT, NULL, NULL, &err) != SQLITE_OK)) {
    sqlite3_exec(d->conn, "ROLLBACK", NULL, NULL, NULL);
    goto fail;
  }
  if (sqlite3_exec(d->conn, "COMMIT", NULL, NULL, &err) == SQLITE_OK) return 0;
  sqlite3_exec(d->conn, "ROLLBACK", NULL, NULL, NULL);
fail:
  fprintf(stderr, "ota-server: %s: adding implicit provisioning: %s\n", path,
          err ? err : sqlite3_errmsg(d->conn));
  sqlite3_free(err);
  return -1;
}

int db_open(const char *path, bool read_only, db **out) {
  db *d = calloc(1, sizeof *d);
  if (!d) return -1;
  int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (sqlite3_open_v2(path, &d->conn, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    fprintf(stderr, "ota-server: %s: %s\n", path, d->conn ? sqlite3_errmsg(d->conn) : "no memory");
    sqlite3_close(d->conn);
    free(d);
    return -1;
  }
  sqlite3_busy_timeout(d->conn, 5000);
  if (pthread_mutex_init(&d->lock, NULL) != 0 || pthread_mutex_init(&d->log_lock, NULL) != 0 ||
      pthread_cond_init(&d->log_queued, NULL) != 0 || pthread_cond_init(&d->log_room, NULL) != 0) {
    sqlite3_close(d->conn);
    free(d);
    return -1;
  }
  if (!read_only) {
    char *err = NULL;
    if (sqlite3_exec(d->conn, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     &err) != SQLITE_OK ||
        sqlite3_exec(d->conn, SCHEMA, NULL, NULL, &err) != SQLITE_OK) {
      fprintf(stderr, "ota-server: %s: %s\n", path, err ? err : "schema failed");
      sqlite3_free(err);
      db_close(d);
      return -1;
    }
    if (migrate(d, path) != 0) {
      db_close(d);
      return -1;
    }
    for (int i = 0; i < ST_COUNT; i++)
      if (sqlite3_prepare_v3(d->conn, STMT_SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &d->stmt[i],
                             NULL) != SQLITE_OK) {
        fail(d, STMT_SQL[i]);
        db_close(d);
        return -1;
      }
  }
  int implicit = has_column(d->conn, "devices", "provisioning");
  int fleet_cas = has_column(d->conn, "fleet_cas", "name");
  int reports = has_column(d->conn, "device_data", "body");
  if (implicit < 0 || fleet_cas < 0 || reports < 0) {
    fail(d, "reading the schema");
    db_close(d);
    return -1;
  }
  d->implicit_columns = implicit == 1;
  d->fleet_cas_table = fleet_cas == 1;
  d->report_tables = reports == 1;
  *out = d;
  return 0;
}

void db_close(db *d) {
  if (!d) return;
  pthread_mutex_lock(&d->log_lock);
  bool started = d->log_started;
  d->log_closing = true;
  pthread_cond_signal(&d->log_queued);
  pthread_mutex_unlock(&d->log_lock);
  if (started) pthread_join(d->log_thread, NULL); /* it writes what is queued, then ends */
  for (int i = 0; i < ST_COUNT; i++)
    sqlite3_finalize(d->stmt[i]);
  sqlite3_close(d->conn);
  pthread_mutex_destroy(&d->lock);
  pthread_mutex_destroy(&d->log_lock);
  pthread_cond_destroy(&d->log_queued);
  pthread_cond_destroy(&d->log_room);
  free(d->known);
  free(d);
}

/* Runs a one-row existence query: 1, 0 or -1. Caller holds the lock. */
static int exists_locked(db *d, enum stmt_id id, const char *value) {
  sqlite3_stmt *s = bind_text(d, id, 1, &value);
  if (!s) return fail(d, "bind");
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc == SQLITE_ROW) return 1;
  if (rc == SQLITE_DONE) return 0;
  return fail(d, "query");
}

/* Runs a statement that returns no rows: 0, DB_CONFLICT (a UNIQUE or PRIMARY KEY constraint)
 * or -1. Caller holds the lock. */
static int change_locked(db *d, enum stmt_id id, int n, const char *const *values,
                         const char *what) {
  sqlite3_stmt *s = bind_text(d, id, n, values);
  if (!s) return fail(d, "bind");
  int step = sqlite3_step(s), rc = 0;
  if (step != SQLITE_DONE) {
    int ext = sqlite3_extended_errcode(d->conn);
    rc = ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY ? DB_CONFLICT
                                                                                : fail(d, what);
  }
  sqlite3_reset(s);
  return rc;
}

int db_device_id_taken(db *d, const char *device_id) {
  pthread_mutex_lock(&d->lock);
  int rc = exists_locked(d, ST_DEVICE_ID_TAKEN, device_id);
  pthread_mutex_unlock(&d->lock);
  return rc;
}

/* The 16 bytes of a canonical uuid (8-4-4-4-12 hex digits, not all zero); -1 otherwise. */
static int uuid_bytes(const char *uuid, unsigned char out[16]) {
  static const int DASHES[] = {8, 13, 18, 23};
  size_t k = 0, o = 0;
  for (size_t i = 0; i < 36; i++) {
    if (k < 4 && (int)i == DASHES[k]) {
      if (uuid[i] != '-') return -1;
      k++;
      continue;
    }
    char c = uuid[i];
    if (!isxdigit((unsigned char)c)) return -1;
    int v = isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10;
    if (o % 2 == 0)
      out[o / 2] = (unsigned char)(v << 4);
    else
      out[o / 2] |= (unsigned char)v;
    o++;
  }
  if (uuid[36] != '\0') return -1;
  for (size_t i = 0; i < 16; i++)
    if (out[i]) return 0;
  return -1;
}

/* The slot of key in the open-addressing table (its own, or the empty one it would take). */
static size_t known_slot(const db *d, const unsigned char key[16]) {
  static const unsigned char EMPTY[16];
  uint64_t h;
  memcpy(&h, key, sizeof h);
  size_t mask = d->known_cap - 1, i = (size_t)(h * 0x9e3779b97f4a7c15ull) & mask;
  while (memcmp(d->known[i], EMPTY, 16) != 0 && memcmp(d->known[i], key, 16) != 0)
    i = (i + 1) & mask;
  return i;
}

/* Remembers a registered uuid (nothing when out of memory: the next check asks SQLite). */
static void known_add_locked(db *d, const unsigned char key[16]) {
  if (2 * (d->known_n + 1) > d->known_cap) { /* keep the table at most half full */
    size_t cap = d->known_cap ? 2 * d->known_cap : 1024;
    unsigned char(*old)[16] = d->known;
    size_t old_cap = d->known_cap;
    if (!(d->known = calloc(cap, 16))) {
      d->known = old;
      return;
    }
    d->known_cap = cap;
    static const unsigned char EMPTY[16];
    for (size_t i = 0; i < old_cap; i++)
      if (memcmp(old[i], EMPTY, 16) != 0) memcpy(d->known[known_slot(d, old[i])], old[i], 16);
    free(old);
  }
  size_t i = known_slot(d, key);
  if (memcmp(d->known[i], key, 16) != 0) {
    memcpy(d->known[i], key, 16);
    d->known_n++;
  }
}

int db_device_known(db *d, const char *uuid) {
  unsigned char key[16];
  bool canonical = uuid_bytes(uuid, key) == 0;
  pthread_mutex_lock(&d->lock);
  int rc;
  if (canonical && d->known_cap && memcmp(d->known[known_slot(d, key)], key, 16) == 0) {
    rc = 1;
  } else {
    rc = exists_locked(d, ST_DEVICE_KNOWN, uuid);
    if (rc == 1 && canonical) known_add_locked(d, key);
  }
  pthread_mutex_unlock(&d->lock);
  return rc;
}

int db_device_add(db *d, const char *uuid, const char *device_id, const char *created,
                  const char *cert_expiry) {
  const char *v[] = {uuid, device_id, created, cert_expiry};
  pthread_mutex_lock(&d->lock);
  int rc = change_locked(d, ST_DEVICE_ADD, 4, v, "insert device");
  pthread_mutex_unlock(&d->lock);
  return rc;
}

int db_implicit_device(db *d, const char *cn, const char *fleet_ca, const char *new_uuid,
                       const char *created, const char *cert_expiry, char uuid[37], char *owner,
                       size_t size) {
  pthread_mutex_lock(&d->lock);
  int rc = -1;
  sqlite3_stmt *s = bind_text(d, ST_DEVICE_BY_ID, 1, &cn);
  if (!s) {
    fail(d, "bind");
    goto out;
  }
  int step = sqlite3_step(s);
  if (step == SQLITE_DONE) {
    sqlite3_reset(s);
    const char *v[] = {new_uuid, cn, created, cert_expiry, fleet_ca};
    rc = change_locked(d, ST_IMPLICIT_ADD, 5, v, "insert device");
    if (rc == 0) {
      snprintf(uuid, 37, "%s", new_uuid);
      rc = DB_CREATED;
    } else if (rc == DB_CONFLICT) { /* only a uuid collision can get here: 2^-122 */
      rc = -1;
    }
    goto out;
  }
  if (step != SQLITE_ROW) {
    sqlite3_reset(s);
    fail(d, "query device");
    goto out;
  }
  const char *found = (const char *)sqlite3_column_text(s, 0);
  const char *provisioning = (const char *)sqlite3_column_text(s, 1);
  const char *ca = (const char *)sqlite3_column_text(s, 2);
  const char *expiry = (const char *)sqlite3_column_text(s, 3);
  bool same = found && provisioning && strcmp(provisioning, "implicit") == 0 && ca &&
              strcmp(ca, fleet_ca) == 0;
  if (!same) {
    snprintf(owner, size, "%s",
             provisioning && strcmp(provisioning, "implicit") == 0 && ca ? ca : "");
    sqlite3_reset(s);
    rc = DB_CONFLICT;
    goto out;
  }
  snprintf(uuid, 37, "%s", found);
  bool renewed = !expiry || strcmp(expiry, cert_expiry) != 0;
  sqlite3_reset(s);
  rc = 0;
  if (renewed) { /* the same device with another certificate (a renewal) */
    const char *v[] = {uuid, cert_expiry};
    if (change_locked(d, ST_EXPIRY_SET, 2, v, "update device") != 0) rc = -1;
  }
out:
  pthread_mutex_unlock(&d->lock);
  return rc;
}

int db_fleet_ca_add(db *d, const db_fleet_ca *ca) {
  const char *v[] = {ca->name, ca->sha256, ca->subject, ca->not_after, ca->added};
  pthread_mutex_lock(&d->lock);
  int rc = change_locked(d, ST_FLEET_CA_ADD, 5, v, "insert fleet CA");
  pthread_mutex_unlock(&d->lock);
  return rc;
}

/* Compares the ECUs stored for uuid with the request: 1 same, 0 different or none, -1 error.
 * *any is set when the device has ECUs at all. Caller holds the lock. */
static int ecus_same_locked(db *d, const char *uuid, const db_ecu *ecus, size_t necus, bool *any) {
  sqlite3_stmt *s = bind_text(d, ST_ECUS_OF, 1, &uuid);
  if (!s) return fail(d, "bind");
  size_t found = 0;
  bool same = true;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *serial = (const char *)sqlite3_column_text(s, 0);
    const char *hwid = (const char *)sqlite3_column_text(s, 1);
    const char *kt = (const char *)sqlite3_column_text(s, 2);
    const char *pub = (const char *)sqlite3_column_text(s, 3);
    found++;
    bool match = false;
    for (size_t i = 0; i < necus && !match; i++)
      match = serial && hwid && kt && pub && strcmp(serial, ecus[i].serial) == 0 &&
              strcmp(hwid, ecus[i].hardware_id) == 0 && strcmp(kt, ecus[i].key_type) == 0 &&
              strcmp(pub, ecus[i].public_key) == 0;
    if (!match) same = false;
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return fail(d, "query ecus");
  *any = found > 0;
  return same && found == necus ? 1 : 0;
}

int db_ecus_register(db *d, const char *uuid, const char *primary, const db_ecu *ecus, size_t necus,
                     char *taken, size_t size) {
  pthread_mutex_lock(&d->lock);
  int rc = -1;
  if (sqlite3_exec(d->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
    fail(d, "begin");
    goto out;
  }
  bool any = false;
  int same = ecus_same_locked(d, uuid, ecus, necus, &any);
  if (same < 0) goto rollback;
  if (same == 1) {
    rc = DB_ECUS_SAME;
    goto rollback;
  }
  for (size_t i = 0; i < necus; i++) { /* a serial of another device wins over "different" */
    sqlite3_stmt *s = bind_text(d, ST_ECU_OWNER, 1, &ecus[i].serial);
    if (!s) {
      fail(d, "bind");
      goto rollback;
    }
    int step = sqlite3_step(s);
    bool other = step == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(s, 0), uuid) != 0;
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
      fail(d, "query ecu");
      goto rollback;
    }
    if (other) {
      snprintf(taken, size, "%s", ecus[i].serial);
      rc = DB_ECU_TAKEN;
      goto rollback;
    }
  }
  if (any) {
    rc = DB_ECUS_DIFFERENT;
    goto rollback;
  }
  for (size_t i = 0; i < necus; i++) {
    const char *v[] = {ecus[i].serial, uuid, ecus[i].hardware_id, ecus[i].key_type,
                       ecus[i].public_key};
    sqlite3_stmt *s = bind_text(d, ST_ECU_ADD, 5, v);
    int step = s ? sqlite3_step(s) : SQLITE_ERROR;
    if (s) sqlite3_reset(s);
    if (step != SQLITE_DONE) {
      fail(d, "insert ecu");
      goto rollback;
    }
  }
  const char *v[] = {uuid, primary};
  sqlite3_stmt *s = bind_text(d, ST_PRIMARY_SET, 2, v);
  int step = s ? sqlite3_step(s) : SQLITE_ERROR;
  if (s) sqlite3_reset(s);
  if (step != SQLITE_DONE) {
    fail(d, "set primary");
    goto rollback;
  }
  if (sqlite3_exec(d->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    fail(d, "commit");
    goto rollback;
  }
  rc = 0;
  goto out;
rollback:
  sqlite3_exec(d->conn, "ROLLBACK", NULL, NULL, NULL);
out:
  pthread_mutex_unlock(&d->lock);
  return rc;
}

/* Binds an optional boolean (1, 0; -1 binds NULL) as parameter i. */
static int bind_tristate(sqlite3_stmt *s, int i, int v) {
  return v < 0 ? sqlite3_bind_null(s, i) : sqlite3_bind_int(s, i, v);
}

/* Steps a bound statement that returns no rows and resets it: 0 or -1. Caller holds the lock. */
static int run_locked(db *d, sqlite3_stmt *s, const char *what) {
  int step = s ? sqlite3_step(s) : SQLITE_ERROR;
  if (s) sqlite3_reset(s);
  return step == SQLITE_DONE ? 0 : fail(d, what);
}

int db_ecu_key(db *d, const char *uuid, const char *serial, char **key_type, char **public_key) {
  const char *v[] = {uuid, serial};
  pthread_mutex_lock(&d->lock);
  int rc = -1;
  sqlite3_stmt *s = bind_text(d, ST_ECU_KEY, 2, v);
  int step = s ? sqlite3_step(s) : SQLITE_ERROR;
  if (step == SQLITE_ROW) {
    const char *kt = (const char *)sqlite3_column_text(s, 0);
    const char *pub = (const char *)sqlite3_column_text(s, 1);
    *key_type = strdup(kt ? kt : "");
    *public_key = strdup(pub ? pub : "");
    rc = *key_type && *public_key ? 1 : -1;
    if (rc < 0) {
      free(*key_type);
      free(*public_key);
    }
  } else if (step == SQLITE_DONE) {
    rc = 0;
  } else {
    fail(d, "query ecu key");
  }
  if (s) sqlite3_reset(s);
  pthread_mutex_unlock(&d->lock);
  return rc;
}

int db_manifest_set(db *d, const char *uuid, const db_manifest *m) {
  const char *v[] = {uuid, m->received, m->primary_ecu, m->signature, m->installed_target, m->raw};
  pthread_mutex_lock(&d->lock);
  int rc = run_locked(d, bind_text(d, ST_MANIFEST_SET, 6, v), "store manifest");
  pthread_mutex_unlock(&d->lock);
  return rc;
}

int db_report_set(db *d, const char *uuid, const db_report *r) {
  const char *v[] = {uuid, r->received, r->correlation_id, r->code, r->description, r->raw};
  pthread_mutex_lock(&d->lock);
  sqlite3_stmt *s = bind_text(d, ST_REPORT_SET, 6, v);
  if (s && bind_tristate(s, 7, r->success) != SQLITE_OK) s = NULL;
  int rc = run_locked(d, s, "store installation report");
  pthread_mutex_unlock(&d->lock);
  return rc;
}

int db_events_add(db *d, const char *uuid, const db_event *events, size_t n) {
  pthread_mutex_lock(&d->lock);
  int added = 0;
  if (sqlite3_exec(d->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
    added = fail(d, "begin");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    const db_event *e = &events[i];
    const char *v[] = {uuid,        e->event_id, e->type,           e->device_time,
                       e->received, e->ecu,      e->correlation_id, e->raw};
    sqlite3_stmt *s = bind_text(d, ST_EVENT_ADD, 8, v);
    if (s && bind_tristate(s, 9, e->success) != SQLITE_OK) s = NULL;
    if (run_locked(d, s, "store event") != 0) {
      sqlite3_exec(d->conn, "ROLLBACK", NULL, NULL, NULL);
      added = -1;
      goto out;
    }
    added += sqlite3_changes(d->conn);
  }
  if (sqlite3_exec(d->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    added = fail(d, "commit");
    sqlite3_exec(d->conn, "ROLLBACK", NULL, NULL, NULL);
  }
out:
  pthread_mutex_unlock(&d->lock);
  return added;
}

int db_data_set(db *d, const char *uuid, const char *kind, const char *updated, const char *body) {
  const char *v[] = {uuid, kind, updated, body};
  pthread_mutex_lock(&d->lock);
  int rc = run_locked(d, bind_text(d, ST_DATA_SET, 4, v), "store device data");
  pthread_mutex_unlock(&d->lock);
  return rc;
}

/* Inserts one row of the request log: 0 or -1. Caller holds the lock. */
static int request_insert_locked(db *d, const char *ts, const char *cn, const char *method,
                                 const char *path, int status) {
  const char *v[] = {ts, cn, method, path};
  int rc = -1;
  sqlite3_stmt *s = bind_text(d, ST_REQUEST_ADD, 4, v);
  if (s && sqlite3_bind_int(s, 5, status) == SQLITE_OK && sqlite3_step(s) == SQLITE_DONE)
    rc = 0;
  else
    fail(d, "insert request");
  if (s) sqlite3_reset(s);
  return rc;
}

/* The request-log writer: takes every queued row, writes them in one transaction, repeats;
 * when the database closes, it writes what is left and ends. */
static void *log_writer(void *arg) {
  db *d = arg;
  pthread_mutex_lock(&d->log_lock);
  for (;;) {
    while (!d->log_head && !d->log_closing)
      pthread_cond_wait(&d->log_queued, &d->log_lock);
    if (!d->log_head) break; /* closing, and nothing left */
    log_row *rows = d->log_head;
    d->log_head = d->log_tail = NULL;
    d->log_n = 0;
    pthread_cond_broadcast(&d->log_room);
    pthread_mutex_unlock(&d->log_lock);

    pthread_mutex_lock(&d->lock);
    bool batch = rows->next && sqlite3_exec(d->conn, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    for (log_row *r = rows; r; r = r->next)
      request_insert_locked(d, r->ts, r->cn, r->method, r->path, r->status);
    if (batch && sqlite3_exec(d->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
      fail(d, "commit the request log");
      sqlite3_exec(d->conn, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&d->lock);
    while (rows) {
      log_row *next = rows->next;
      free(rows);
      rows = next;
    }
    pthread_mutex_lock(&d->log_lock);
  }
  pthread_mutex_unlock(&d->log_lock);
  return NULL;
}

/* The row as one allocation, its strings copied. */
static log_row *log_row_new(const char *ts, const char *cn, const char *method, const char *path,
                            int status) {
  size_t lt = strlen(ts) + 1, lc = strlen(cn) + 1, lm = strlen(method) + 1, lp = strlen(path) + 1;
  log_row *r = malloc(sizeof *r + lt + lc + lm + lp);
  if (!r) return NULL;
  char *p = r->strings;
  r->next = NULL;
  r->status = status;
  r->ts = memcpy(p, ts, lt);
  r->cn = memcpy(p += lt, cn, lc);
  r->method = memcpy(p += lc, method, lm);
  r->path = memcpy(p += lm, path, lp);
  return r;
}

int db_request_add(db *d, const char *ts, const char *cn, const char *method, const char *path,
                   int status) {
  log_row *r = log_row_new(ts, cn, method, path, status);
  pthread_mutex_lock(&d->log_lock);
  if (r && !d->log_started && !d->log_closing)
    d->log_started = pthread_create(&d->log_thread, NULL, log_writer, d) == 0;
  while (r && d->log_started && d->log_n >= LOG_QUEUE_MAX && !d->log_closing)
    pthread_cond_wait(&d->log_room, &d->log_lock); /* the writer is behind: wait for it */
  if (!r || !d->log_started || d->log_closing) {   /* no writer (or no memory): write it now */
    pthread_mutex_unlock(&d->log_lock);
    free(r);
    pthread_mutex_lock(&d->lock);
    int rc = request_insert_locked(d, ts, cn, method, path, status);
    pthread_mutex_unlock(&d->lock);
    return rc;
  }
  if (d->log_tail)
    d->log_tail->next = r;
  else
    d->log_head = r;
  d->log_tail = r;
  d->log_n++;
  pthread_cond_signal(&d->log_queued);
  pthread_mutex_unlock(&d->log_lock);
  return 0;
}

/* Loads one device's ECUs (owned by arrays the caller frees with ecus_free). */
static int ecus_load(db *d, const char *uuid, db_ecu **out, size_t *n) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(d->conn,
                         "SELECT serial, hardware_id, key_type, public_key FROM ecus "
                         "WHERE device_uuid = ?1 ORDER BY rowid",
                         -1, &s, NULL) != SQLITE_OK ||
      sqlite3_bind_text(s, 1, uuid, -1, SQLITE_STATIC) != SQLITE_OK) {
    sqlite3_finalize(s);
    return fail(d, "query ecus");
  }
  db_ecu *ecus = NULL;
  size_t count = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    db_ecu *grown = realloc(ecus, (count + 1) * sizeof *ecus);
    if (!grown) {
      rc = SQLITE_NOMEM;
      break;
    }
    ecus = grown;
    db_ecu *e = &ecus[count++];
    const char *col[4];
    for (int c = 0; c < 4; c++) {
      const char *t = (const char *)sqlite3_column_text(s, c);
      col[c] = strdup(t ? t : "");
    }
    *e = (db_ecu){col[0], col[1], col[2], col[3]};
    if (!col[0] || !col[1] || !col[2] || !col[3]) {
      rc = SQLITE_NOMEM;
      break;
    }
  }
  sqlite3_finalize(s);
  *out = ecus;
  *n = count;
  return rc == SQLITE_DONE ? 0 : fail(d, "read ecus");
}

static void ecus_free(db_ecu *ecus, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free((char *)ecus[i].serial);
    free((char *)ecus[i].hardware_id);
    free((char *)ecus[i].key_type);
    free((char *)ecus[i].public_key);
  }
  free(ecus);
}

#define STR_(x) #x
#define STR(x) STR_(x)
#define DATA_KINDS_MAX 16 /* kinds of device data listed per device (there are 4) */

/* Rows of a query about one device, every cell strdup'd (NULL for SQL NULL), row by row. */
typedef struct rows {
  char **cells;
  size_t n, ncols;
} rows;

static void rows_free(rows *r) {
  for (size_t i = 0; i < r->n * r->ncols; i++)
    free(r->cells[i]);
  free(r->cells);
  *r = (rows){0};
}

static const char *cell(const rows *r, size_t row, size_t col) {
  return r->cells[row * r->ncols + col];
}

static int tristate(const char *c) {
  return c ? atoi(c) != 0 : -1;
}

static int rows_load(db *d, const char *sql, const char *uuid, size_t ncols, rows *out) {
  sqlite3_stmt *s = NULL;
  *out = (rows){.ncols = ncols};
  if (sqlite3_prepare_v2(d->conn, sql, -1, &s, NULL) != SQLITE_OK ||
      sqlite3_bind_text(s, 1, uuid, -1, SQLITE_STATIC) != SQLITE_OK) {
    sqlite3_finalize(s);
    return fail(d, "query device reports");
  }
  int step;
  while ((step = sqlite3_step(s)) == SQLITE_ROW) {
    char **grown = realloc(out->cells, (out->n + 1) * ncols * sizeof *grown);
    if (!grown) {
      step = SQLITE_NOMEM;
      break;
    }
    out->cells = grown;
    for (size_t c = 0; c < ncols; c++) {
      const char *t = (const char *)sqlite3_column_text(s, (int)c);
      out->cells[out->n * ncols + c] = t ? strdup(t) : NULL;
    }
    out->n++;
  }
  sqlite3_finalize(s);
  return step == SQLITE_DONE ? 0 : fail(d, "read device reports");
}

/* What one device reported, for the listings. */
typedef struct reports {
  rows manifest, report, events, count, data;
  db_manifest m;
  db_report r;
  db_event ev[DB_EVENTS_LISTED];
  db_data dt[DATA_KINDS_MAX];
} reports;

static void reports_free(reports *r) {
  rows_free(&r->manifest);
  rows_free(&r->report);
  rows_free(&r->events);
  rows_free(&r->count);
  rows_free(&r->data);
}

/* Loads a device's reports into r and points dev at them. */
static int reports_load(db *d, db_device *dev, reports *r) {
  if (!d->report_tables) return 0;
  if (rows_load(d,
                "SELECT received, primary_ecu, signature, installed_target, raw FROM manifests "
                "WHERE device_uuid = ?1",
                dev->uuid, 5, &r->manifest) != 0 ||
      rows_load(d,
                "SELECT received, correlation_id, success, code, description, raw "
                "FROM installation_reports WHERE device_uuid = ?1",
                dev->uuid, 6, &r->report) != 0 ||
      rows_load(d,
                "SELECT event_id, type, device_time, received, ecu, correlation_id, success, raw "
                "FROM (SELECT * FROM events WHERE device_uuid = ?1 ORDER BY id DESC LIMIT " STR(
                    DB_EVENTS_LISTED) ") ORDER BY id",
                dev->uuid, 8, &r->events) != 0 ||
      rows_load(d, "SELECT count(*) FROM events WHERE device_uuid = ?1", dev->uuid, 1, &r->count) !=
          0 ||
      rows_load(d,
                "SELECT kind, updated, body FROM device_data WHERE device_uuid = ?1 "
                "ORDER BY kind LIMIT " STR(DATA_KINDS_MAX),
                dev->uuid, 3, &r->data) != 0)
    return -1;
  if (r->manifest.n) {
    const rows *m = &r->manifest;
    r->m = (db_manifest){cell(m, 0, 0), cell(m, 0, 1), cell(m, 0, 2), cell(m, 0, 3), cell(m, 0, 4)};
    dev->manifest = &r->m;
  }
  if (r->report.n) {
    const rows *p = &r->report;
    r->r = (db_report){cell(p, 0, 0), cell(p, 0, 1), tristate(cell(p, 0, 2)),
                       cell(p, 0, 3), cell(p, 0, 4), cell(p, 0, 5)};
    dev->report = &r->r;
  }
  for (size_t i = 0; i < r->events.n && i < DB_EVENTS_LISTED; i++) {
    const rows *e = &r->events;
    r->ev[i] = (db_event){cell(e, i, 0), cell(e, i, 1), cell(e, i, 2),           cell(e, i, 3),
                          cell(e, i, 4), cell(e, i, 5), tristate(cell(e, i, 6)), cell(e, i, 7)};
    dev->nevents = i + 1;
  }
  dev->events = r->ev;
  dev->events_total =
      r->count.n && cell(&r->count, 0, 0) ? strtoul(cell(&r->count, 0, 0), NULL, 10) : 0;
  for (size_t i = 0; i < r->data.n && i < DATA_KINDS_MAX; i++) {
    r->dt[i] = (db_data){cell(&r->data, i, 0), cell(&r->data, i, 1), cell(&r->data, i, 2)};
    dev->ndata = i + 1;
  }
  dev->data = r->dt;
  return 0;
}

int db_devices_foreach(db *d, int (*fn)(const db_device *dev, void *arg), void *arg) {
  sqlite3_stmt *s = NULL;
  pthread_mutex_lock(&d->lock);
  int rc = 0;
  const char *sql = d->implicit_columns
                        ? "SELECT uuid, device_id, created, cert_expiry, primary_ecu, provisioning,"
                          " fleet_ca FROM devices ORDER BY rowid"
                        : "SELECT uuid, device_id, created, cert_expiry, primary_ecu, 'shared',"
                          " NULL FROM devices ORDER BY rowid";
  if (sqlite3_prepare_v2(d->conn, sql, -1, &s, NULL) != SQLITE_OK) {
    rc = fail(d, "list devices");
    goto out;
  }
  int step;
  while ((step = sqlite3_step(s)) == SQLITE_ROW) {
    db_device dev = {
        .uuid = (const char *)sqlite3_column_text(s, 0),
        .device_id = (const char *)sqlite3_column_text(s, 1),
        .created = (const char *)sqlite3_column_text(s, 2),
        .cert_expiry = (const char *)sqlite3_column_text(s, 3),
        .primary_ecu = (const char *)sqlite3_column_text(s, 4),
        .provisioning = (const char *)sqlite3_column_text(s, 5),
        .fleet_ca = (const char *)sqlite3_column_text(s, 6),
    };
    db_ecu *ecus = NULL;
    size_t n = 0;
    if (ecus_load(d, dev.uuid, &ecus, &n) < 0) {
      ecus_free(ecus, n);
      rc = -1;
      break;
    }
    dev.ecus = ecus;
    dev.necus = n;
    reports rep = {0};
    if (reports_load(d, &dev, &rep) != 0) {
      reports_free(&rep);
      ecus_free(ecus, n);
      rc = -1;
      break;
    }
    int stop = fn(&dev, arg);
    reports_free(&rep);
    ecus_free(ecus, n);
    if (stop) break;
  }
  if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE) rc = fail(d, "list devices");
out:
  sqlite3_finalize(s);
  pthread_mutex_unlock(&d->lock);
  return rc;
}

int db_requests_foreach(db *d, int (*fn)(const db_request *req, void *arg), void *arg) {
  sqlite3_stmt *s = NULL;
  pthread_mutex_lock(&d->lock);
  int rc = 0;
  if (sqlite3_prepare_v2(d->conn, "SELECT ts, cn, method, path, status FROM requests ORDER BY id",
                         -1, &s, NULL) != SQLITE_OK) {
    rc = fail(d, "list requests");
    goto out;
  }
  int step;
  while ((step = sqlite3_step(s)) == SQLITE_ROW) {
    db_request req = {
        .ts = (const char *)sqlite3_column_text(s, 0),
        .cn = (const char *)sqlite3_column_text(s, 1),
        .method = (const char *)sqlite3_column_text(s, 2),
        .path = (const char *)sqlite3_column_text(s, 3),
        .status = sqlite3_column_int(s, 4),
    };
    if (fn(&req, arg)) break;
  }
  if (step != SQLITE_ROW && step != SQLITE_DONE) rc = fail(d, "list requests");
out:
  sqlite3_finalize(s);
  pthread_mutex_unlock(&d->lock);
  return rc;
}

int db_fleet_cas_foreach(db *d, int (*fn)(const db_fleet_ca *ca, void *arg), void *arg) {
  if (!d->fleet_cas_table) return 0;
  sqlite3_stmt *s = NULL;
  pthread_mutex_lock(&d->lock);
  int rc = 0;
  if (sqlite3_prepare_v2(d->conn,
                         "SELECT name, sha256, subject, not_after, added FROM fleet_cas "
                         "ORDER BY rowid",
                         -1, &s, NULL) != SQLITE_OK) {
    rc = fail(d, "list fleet CAs");
    goto out;
  }
  int step;
  while ((step = sqlite3_step(s)) == SQLITE_ROW) {
    db_fleet_ca ca = {
        .name = (const char *)sqlite3_column_text(s, 0),
        .sha256 = (const char *)sqlite3_column_text(s, 1),
        .subject = (const char *)sqlite3_column_text(s, 2),
        .not_after = (const char *)sqlite3_column_text(s, 3),
        .added = (const char *)sqlite3_column_text(s, 4),
    };
    if (!ca.name || !ca.sha256 || !ca.subject || !ca.not_after || !ca.added) {
      rc = fail(d, "read fleet CA");
      break;
    }
    if (fn(&ca, arg)) break;
  }
  if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE) rc = fail(d, "list fleet CAs");
out:
  sqlite3_finalize(s);
  pthread_mutex_unlock(&d->lock);
  return rc;
}
