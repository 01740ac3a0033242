/* db.c - the server's SQLite database (devices, ecus, fleet_cas, requests).
 *
 * Statements the request path uses are prepared once at open; a mutex guards the one
 * connection, so a check-then-insert (a deviceId, a set of ECUs, an implicit device) is
 * atomic between threads. Databases made before implicit provisioning lack two columns of
 * `devices` and the `fleet_cas` table: a read-write open adds them, and a read-only open
 * (the listings) reads such a database as it is.
 */
#include "db.h"

#include <pthread.h>
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
    " not_after TEXT NOT NULL, added TEXT NOT NULL);";

/* What a database made before implicit provisioning lacks in `devices`. */
static const char MIGRATE_IMPLICIT[] =
    "ALTER TABLE devices ADD COLUMN provisioning TEXT NOT NULL DEFAULT 'shared';"
    "ALTER TABLE devices ADD COLUMN fleet_ca TEXT;";

struct db {
  sqlite3 *conn;
  sqlite3_stmt *stmt[ST_COUNT];
  pthread_mutex_t lock;
  bool implicit_columns; /* devices has provisioning and fleet_ca */
  bool fleet_cas_table;
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
  if (pthread_mutex_init(&d->lock, NULL) != 0) {
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
  if (implicit < 0 || fleet_cas < 0) {
    fail(d, "reading the schema");
    db_close(d);
    return -1;
  }
  d->implicit_columns = implicit == 1;
  d->fleet_cas_table = fleet_cas == 1;
  *out = d;
  return 0;
}

void db_close(db *d) {
  if (!d) return;
  for (int i = 0; i < ST_COUNT; i++)
    sqlite3_finalize(d->stmt[i]);
  sqlite3_close(d->conn);
  pthread_mutex_destroy(&d->lock);
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

int db_device_known(db *d, const char *uuid) {
  pthread_mutex_lock(&d->lock);
  int rc = exists_locked(d, ST_DEVICE_KNOWN, uuid);
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

int db_request_add(db *d, const char *ts, const char *cn, const char *method, const char *path,
                   int status) {
  const char *v[] = {ts, cn, method, path};
  pthread_mutex_lock(&d->lock);
  int rc = -1;
  sqlite3_stmt *s = bind_text(d, ST_REQUEST_ADD, 4, v);
  if (s && sqlite3_bind_int(s, 5, status) == SQLITE_OK && sqlite3_step(s) == SQLITE_DONE)
    rc = 0;
  else
    fail(d, "insert request");
  if (s) sqlite3_reset(s);
  pthread_mutex_unlock(&d->lock);
  return rc;
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
    int stop = fn(&dev, arg);
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
