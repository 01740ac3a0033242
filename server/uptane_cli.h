/* uptane_cli.h - the commands that change a fleet's Uptane metadata: add-target, assign,
 * rotate-root and resign, and the actions of `ota-server uptane` (set-keys, delegate, and
 * the attack options; uptane_tool.c parses them). uptane_repo.h does the signing; this
 * finds devices and checks options. Each returns the process exit code: 0, or 1 with a
 * message on stderr.
 */
#ifndef OTA_SERVER_UPTANE_CLI_H
#define OTA_SERVER_UPTANE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "tuf_key.h"
#include "uptane_repo.h"

#define CLI_HWIDS_MAX 32

typedef struct uptane_cli_options {
  const char *dir;
  bool key_type_set;
  enum tuf_key_type key_type; /* keys made now (default ed25519; rotate-root: the old type) */
  time_t expires;             /* 0: the defaults */
  /* add-target */
  const char *file, *name, *version, *format, *uri;
  const char *hwids[CLI_HWIDS_MAX];
  size_t nhwids;
  /* assign, resign */
  const char *device; /* a device ID or uuid */
  bool all;           /* every device (assign: whose primary ECU's hardware fits) */
  const char *target, *correlation_id;
  bool force;
  /* rotate-root, resign */
  enum repo_kind repo;
  enum repo_role role;
  long meta_version; /* resign --version: 0 = next */
  /* ota-server uptane (all zero from the everyday commands) */
  const char *delegation;    /* add-target, resign: a delegated role of the image repository */
  const repo_attack *attack; /* resign: how the role's document is signed (NULL: normally) */
  bool bad_chain;            /* rotate-root --bad-chain */
  size_t nkeys;              /* set-keys, delegate: --keys */
  int threshold;             /* set-keys, delegate: --threshold */
  const char *role_name;     /* delegate: --name */
  const char *parent;        /* delegate: --parent */
  const char *paths[CLI_HWIDS_MAX];
  size_t npaths;
  bool terminating;
} uptane_cli_options;

int cli_add_target(const uptane_cli_options *o);
int cli_assign(const uptane_cli_options *o);
int cli_rotate_root(const uptane_cli_options *o);
int cli_resign(const uptane_cli_options *o);
int cli_set_keys(const uptane_cli_options *o);
int cli_delegate(const uptane_cli_options *o);

/* `ota-server uptane ACTION DIR [OPTIONS]`: argv[0] is "uptane". Parses the options, runs
 * the action, returns the exit code (0, 1 runtime error, 2 usage). */
int uptane_tool_main(int argc, char **argv);

#endif
