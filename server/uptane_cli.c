/* uptane_cli.c - add-target, assign, rotate-root, resign, set-keys and delegate: devices
 * from the database, metadata through uptane_repo.c. Every command first makes the
 * repositories of a fleet that has none yet (fleets made before Uptane), with --key-type
 * keys.
 */
#include "uptane_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "files.h"
#include "fleet.h"
#include "pki.h"

/* A device an assignment or a re-signing goes to. */
typedef struct device_ref {
  char *uuid, *device_id, *serial, *hwid; /* serial, hwid: the primary ECU, or NULL */
} device_ref;

typedef struct device_refs {
  device_ref *v;
  size_t n;
  const char *want; /* a device ID or uuid, or NULL for all */
  bool failed;
} device_refs;

static int collect(const db_device *dev, void *arg) {
  device_refs *refs = arg;
  if (refs->want && strcmp(refs->want, dev->uuid) != 0 && strcmp(refs->want, dev->device_id) != 0)
    return 0;
  device_ref *grown = realloc(refs->v, (refs->n + 1) * sizeof *grown);
  if (!grown) {
    refs->failed = true;
    return 1;
  }
  refs->v = grown;
  device_ref *d = &refs->v[refs->n++];
  *d = (device_ref){strdup(dev->uuid), strdup(dev->device_id), NULL, NULL};
  for (size_t i = 0; i < dev->necus; i++)
    if (dev->primary_ecu && strcmp(dev->ecus[i].serial, dev->primary_ecu) == 0) {
      d->serial = strdup(dev->ecus[i].serial);
      d->hwid = strdup(dev->ecus[i].hardware_id);
    }
  if (!d->uuid || !d->device_id || (dev->primary_ecu && (!d->serial || !d->hwid)))
    refs->failed = true;
  return refs->want ? 1 : 0;
}

static void refs_free(device_refs *refs) {
  for (size_t i = 0; i < refs->n; i++) {
    free(refs->v[i].uuid);
    free(refs->v[i].device_id);
    free(refs->v[i].serial);
    free(refs->v[i].hwid);
  }
  free(refs->v);
}

/* The devices `want` names (NULL: all of them). Returns 0, or -1 with a message. */
static int find_devices(const char *dir, const char *want, device_refs *out) {
  *out = (device_refs){.want = want};
  char *path = path_join(dir, FLEET_DB);
  db *d = NULL;
  int rc = path && db_open(path, true, &d) == 0 ? db_devices_foreach(d, collect, out) : -1;
  db_close(d);
  free(path);
  if (rc != 0 || out->failed) {
    fprintf(stderr, "ota-server: cannot read the devices of %s\n", dir);
    refs_free(out);
    return -1;
  }
  if (want && out->n == 0) {
    fprintf(stderr, "ota-server: no device with device ID or uuid '%s'\n", want);
    refs_free(out);
    return -1;
  }
  return 0;
}

/* Checks DIR and makes its repositories if need be. */
static int prepare(const uptane_cli_options *o) {
  if (!fleet_exists(o->dir)) {
    fprintf(stderr, "ota-server: %s is not a fleet directory (run `ota-server init %s`)\n", o->dir,
            o->dir);
    return -1;
  }
  return repo_ensure(o->dir, o->key_type_set ? o->key_type : TUF_KEY_ED25519, true);
}

int cli_add_target(const uptane_cli_options *o) {
  if (prepare(o) != 0) return 1;
  repo_target_spec t = {.file = o->file,
                        .name = o->name,
                        .version = o->version,
                        .hwids = o->hwids,
                        .nhwids = o->nhwids,
                        .format = o->format ? o->format : "BINARY",
                        .uri = o->uri,
                        .delegation = o->delegation};
  return repo_add_target(o->dir, &t, o->expires) == 0 ? 0 : 1;
}

int cli_assign(const uptane_cli_options *o) {
  if (prepare(o) != 0 || repo_has_target(o->dir, o->target) != 1) return 1;
  device_refs refs;
  if (find_devices(o->dir, o->all ? NULL : o->device, &refs) != 0) return 1;
  char generated[64];
  const char *cid = o->correlation_id;
  if (!cid) { /* one ID for all devices of this assignment, in OTA Connect's form */
    char uuid[37];
    if (pki_uuid4(uuid) < 0) {
      refs_free(&refs);
      return 1;
    }
    snprintf(generated, sizeof generated, "urn:here-ota:mtu:%s", uuid);
    cid = generated;
  }
  int status = 0;
  size_t assigned = 0;
  for (size_t i = 0; i < refs.n; i++) {
    const device_ref *d = &refs.v[i];
    if (!d->serial) {
      fprintf(stderr, "ota-server: %s device %s (%s): it has not registered its ECUs yet\n",
              o->all ? "skipped" : "cannot assign to", d->device_id, d->uuid);
      if (!o->all) status = 1;
      continue;
    }
    repo_assignment a = {d->uuid, d->serial, d->hwid, o->target, cid, o->force};
    int rc = repo_assign(o->dir, &a, o->expires);
    if (rc == REPO_HWID_MISMATCH) {
      fprintf(stderr,
              "ota-server: %s device %s (%s): target '%s' is not for its hardware '%s' "
              "(--force assigns it anyway)\n",
              o->all ? "skipped" : "cannot assign to", d->device_id, d->uuid, o->target, d->hwid);
      if (!o->all) status = 1;
    } else if (rc != 0) {
      status = 1;
      if (!o->all) break;
    } else {
      assigned++;
    }
  }
  if (o->all) printf("assigned '%s' to %zu of %zu devices\n", o->target, assigned, refs.n);
  refs_free(&refs);
  return status;
}

int cli_rotate_root(const uptane_cli_options *o) {
  if (prepare(o) != 0) return 1;
  if (o->bad_chain) return repo_rotate_root_bad_chain(o->dir, o->repo, o->expires) == 0 ? 0 : 1;
  return repo_rotate_root(o->dir, o->repo, o->key_type_set ? &o->key_type : NULL, o->expires) == 0
             ? 0
             : 1;
}

int cli_resign(const uptane_cli_options *o) {
  if (prepare(o) != 0) return 1;
  if (o->repo != REPO_DIRECTOR || o->role != REPO_ROLE_TARGETS)
    return repo_resign(o->dir, o->repo, o->role, o->delegation, NULL, o->expires, o->meta_version,
                       o->attack) == 0
               ? 0
               : 1;
  device_refs refs;
  if (find_devices(o->dir, o->all ? NULL : o->device, &refs) != 0) return 1;
  int status = 0;
  for (size_t i = 0; i < refs.n; i++)
    if (repo_resign(o->dir, REPO_DIRECTOR, REPO_ROLE_TARGETS, NULL, refs.v[i].uuid, o->expires,
                    o->meta_version, o->attack) != 0)
      status = 1;
  refs_free(&refs);
  return status;
}

int cli_set_keys(const uptane_cli_options *o) {
  if (prepare(o) != 0) return 1;
  return repo_set_keys(o->dir, o->repo, o->role, o->nkeys, o->threshold,
                       o->key_type_set ? &o->key_type : NULL, o->expires) == 0
             ? 0
             : 1;
}

int cli_delegate(const uptane_cli_options *o) {
  if (prepare(o) != 0) return 1;
  repo_delegation_spec d = {.name = o->role_name,
                            .parent = o->parent,
                            .paths = o->paths,
                            .npaths = o->npaths,
                            .terminating = o->terminating,
                            .nkeys = o->nkeys,
                            .threshold = o->threshold,
                            .type = o->key_type_set ? o->key_type : TUF_KEY_ED25519};
  return repo_delegate(o->dir, &d, o->expires) == 0 ? 0 : 1;
}
