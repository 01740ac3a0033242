/* command.c - `[pacman] type = "command"`: runs [pacman] install_command (uv_spawn, no
 * shell) with the image path and the target name as arguments: exit 0 = installed, 100 =
 * installed, a reboot completes it (NEED_COMPLETION), anything else = failed. It also gets
 * OTAD_TARGET_NAME, OTAD_TARGET_VERSION, OTAD_TARGET_SHA256 and OTAD_CORRELATION_ID in its
 * environment. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/log.h"
#include "pacman.h"

#define EXIT_NEED_COMPLETION 100

extern char **environ;

typedef struct command_job {
  uv_process_t proc;
  pacman_job *job;
} command_job;

static void free_proc(uv_handle_t *h) {
  free(h->data);
}

static void command_exited(uv_process_t *p, int64_t status, int signal) {
  command_job *j = p->data;
  pacman_job *job = j->job;
  uv_close((uv_handle_t *)p, free_proc);
  const char *name = job->target->name;
  char desc[400];
  enum pacman_outcome out = PACMAN_FAILED;
  if (signal) {
    snprintf(desc, sizeof(desc), "installing %s: the install command was killed by signal %d", name,
             signal);
  } else if (status == 0) {
    snprintf(desc, sizeof(desc), "installed %s: the install command succeeded", name);
    out = PACMAN_INSTALLED;
  } else if (status == EXIT_NEED_COMPLETION) {
    snprintf(desc, sizeof(desc), "installed %s: a reboot completes the installation", name);
    out = PACMAN_NEED_REBOOT;
  } else {
    snprintf(desc, sizeof(desc), "installing %s: the install command exited with code %" PRId64,
             name, status);
  }
  job->done(job, out, desc);
}

/* environ without our OTAD_TARGET_* names, plus ours; the array is heap, the strings it
 * adds are extra[]. */
static char **command_env(char *extra[], size_t n_extra) {
  size_t n = 0;
  while (environ && environ[n])
    n++;
  char **env = calloc(n + n_extra + 1, sizeof(char *));
  if (!env) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "OTAD_TARGET_", 12) != 0 &&
        strncmp(environ[i], "OTAD_CORRELATION_ID=", 20) != 0)
      env[k++] = environ[i];
  for (size_t i = 0; i < n_extra; i++)
    if (extra[i]) env[k++] = extra[i];
  return env;
}

static int command_check(const otad_config *cfg, otad_errbuf *eb) {
  const char *cmd = cfg->pacman_install_command;
  if (!cmd || !cmd[0])
    return otad_fail(eb, OTAD_ECONFIG,
                     "[pacman] type = \"command\" but no [pacman] "
                     "install_command is configured");
  return 0;
}

static int command_start(pacman_job *job, otad_errbuf *eb) {
  const update_target *t = job->target;
  const char *cmd = job->cfg->pacman_install_command;
  command_job *j = calloc(1, sizeof(*j));
  char *extra[4] = {NULL};
  if (asprintf(&extra[0], "OTAD_TARGET_NAME=%s", t->name) < 0) extra[0] = NULL;
  if (asprintf(&extra[1], "OTAD_TARGET_VERSION=%s", t->version) < 0) extra[1] = NULL;
  if (asprintf(&extra[2], "OTAD_TARGET_SHA256=%s", t->sha256) < 0) extra[2] = NULL;
  if (asprintf(&extra[3], "OTAD_CORRELATION_ID=%s", t->correlation_id) < 0) extra[3] = NULL;
  char **env = command_env(extra, 4);
  int rc = UV_ENOMEM;
  if (j && env) {
    j->job = job;
    j->proc.data = j;
    char *args[] = {(char *)cmd, (char *)job->image_path, (char *)t->name, NULL};
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = 1},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t opts = {.exit_cb = command_exited,
                                 .file = cmd,
                                 .args = args,
                                 .env = env,
                                 .stdio_count = 3,
                                 .stdio = stdio};
    pacman_log(job, LOG_INFO, "installing %s: running %s %s %s", t->name, cmd, job->image_path,
               t->name);
    rc = uv_spawn(job->loop, &j->proc, &opts);
    if (rc) uv_close((uv_handle_t *)&j->proc, free_proc); /* libuv: close even a failed spawn */
    j = NULL;
  }
  free(j);
  free(env);
  for (int i = 0; i < 4; i++)
    free(extra[i]);
  if (rc) return otad_fail(eb, OTAD_EIO, "cannot run %s: %s", cmd, uv_strerror(rc));
  return 0;
}

const pacman_backend pacman_command = {
    "command", PACMAN_NEEDS_FILE | PACMAN_MAY_REBOOT, command_check, command_start, NULL, NULL};
