/* reboot.c - an installation that a reboot completes (reboot.h): the sentinel file that
 * tells a reboot from a restart of otad, and the reboot command. */
#include "reboot.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/log.h"
#include "../storage/fsutil.h"

void device_reboot_sentinel_write(device *d) {
  const char *dir = d->o.cfg->reboot_sentinel_dir;
  if (!dir || !dir[0]) return;
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/need_reboot", dir);
  otad_errbuf eb = {{0}};
  if (fs_mkdir_p(dir, 0755, NULL) != 0 || atomic_write_file(path, "", 0, 0644, &eb) != 0)
    device_log(d, LOG_WARN, "cannot write the reboot sentinel %s: %s", path,
               eb.msg[0] ? eb.msg : strerror(errno));
}

bool device_reboot_completed(device *d, char *name, size_t n) {
  char *js = store_read_string(d->o.st, STORE_PENDING_TARGET);
  cJSON *o = js ? cJSON_Parse(js) : NULL;
  free(js);
  const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
  snprintf(name, n, "%s", cJSON_IsString(nm) ? nm->valuestring : "");
  bool pending = o != NULL;
  bool done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "installed"));
  cJSON_Delete(o);
  if (!pending) return false;
  if (done) {
    device_log(d, LOG_INFO, "%s was installed, but a restart interrupted recording it", name);
    return true;
  }
  const char *dir = d->o.cfg->reboot_sentinel_dir;
  char path[PATH_MAX];
  if (dir && dir[0] && snprintf(path, sizeof(path), "%s/need_reboot", dir) < (int)sizeof(path) &&
      access(path, F_OK) == 0) {
    device_log(d, LOG_INFO, "%s is installed and waits for a reboot (%s exists)", name, path);
    return false;
  }
  return true;
}

typedef struct reboot_job {
  uv_process_t proc;
  char label[40];
} reboot_job;

static void free_reboot_job(uv_handle_t *h) {
  free(h->data);
}

static void reboot_exited(uv_process_t *p, int64_t status, int signal) {
  reboot_job *j = p->data;
  if (status || signal)
    log_msg(LOG_WARN, j->label, "the reboot command ended with %s %d",
            signal ? "signal" : "exit code", signal ? signal : (int)status);
  uv_close((uv_handle_t *)p, free_reboot_job);
}

void device_reboot(device *d) {
  const char *cmd = d->o.cfg->reboot_command;
  if (!cmd || !cmd[0]) {
    device_log(d, LOG_INFO,
               "a reboot completes the installation (no [bootloader] "
               "reboot_command: waiting for one)");
    return;
  }
  reboot_job *j = calloc(1, sizeof(*j));
  if (!j) {
    device_log(d, LOG_ERROR, "cannot run the reboot command: out of memory");
    return;
  }
  snprintf(j->label, sizeof(j->label), "%s", d->label);
  j->proc.data = j;
  char *args[] = {"/bin/sh", "-c", (char *)cmd, NULL};
  uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                   {.flags = UV_INHERIT_FD, .data.fd = 1},
                                   {.flags = UV_INHERIT_FD, .data.fd = 2}};
  uv_process_options_t opts = {
      .exit_cb = reboot_exited, .file = args[0], .args = args, .stdio_count = 3, .stdio = stdio};
  device_log(d, LOG_INFO, "rebooting to complete the installation: %s", cmd);
  int rc = uv_spawn(d->o.loop, &j->proc, &opts);
  if (rc) {
    device_log(d, LOG_ERROR, "cannot run the reboot command %s: %s", cmd, uv_strerror(rc));
    uv_close((uv_handle_t *)&j->proc, free_reboot_job);
  }
}
