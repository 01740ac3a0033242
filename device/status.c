/* status.c - what `otad status` shows of a download, read from the store and the images
 * directory only (status.h). */
#include "status.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../storage/fsutil.h"
#include "update.h"

/* A string member of a stored target (STORE_INSTALLED_TARGET form), "" when absent. */
static const char *str_of(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

bool device_download_progress(const otad_config *cfg, store *st, download_progress *out) {
  memset(out, 0, sizeof(*out));
  char *js = store_read_string(st, STORE_DIRECTOR_TARGETS);
  char *serial = store_read_string(st, STORE_ECU_SERIAL);
  cJSON *doc = js ? cJSON_Parse(js) : NULL;
  free(js);
  const cJSON *targets =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "signed"), "targets");
  const cJSON *dt = uptane_target_for_ecu(targets, serial);
  free(serial);
  update_target t = {0};
  if (dt && dt->string) {
    const cJSON *hashes = cJSON_GetObjectItemCaseSensitive(dt, "hashes");
    const cJSON *len = cJSON_GetObjectItemCaseSensitive(dt, "length");
    snprintf(t.name, sizeof(t.name), "%s", dt->string);
    snprintf(t.sha256, sizeof(t.sha256), "%s", str_of(hashes, "sha256"));
    snprintf(t.sha512, sizeof(t.sha512), "%s", str_of(hashes, "sha512"));
    t.length = cJSON_IsNumber(len) && len->valuedouble > 0 ? (uint64_t)len->valuedouble : 0;
  }
  cJSON_Delete(doc);
  if (!t.name[0] || (!t.sha256[0] && !t.sha512[0]) ||
      device_stored_target_is(st, STORE_INSTALLED_TARGET, t.name, t.sha256) ||
      device_stored_target_is(st, STORE_PENDING_TARGET, t.name, t.sha256))
    return false;
  snprintf(out->name, sizeof(out->name), "%s", t.name);
  out->total = t.length;
  char *dir = storage_images_dir(cfg), base[140], *path = NULL;
  storage_image_base(t.name, t.sha256, t.sha512, base, sizeof(base));
  struct stat sb;
  if (dir && asprintf(&path, "%s/%s", dir, base) >= 0) {
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == t.length) {
      out->complete = true;
      out->received = t.length;
    } else {
      free(path);
      path = NULL;
      if (asprintf(&path, "%s/%s.part", dir, base) < 0) path = NULL;
      if (path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) out->received = (uint64_t)sb.st_size;
    }
  }
  free(path);
  free(dir);
  return true;
}
