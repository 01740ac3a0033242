/* uptane_tool.c - the command line of `ota-server uptane ACTION DIR [OPTIONS]`: several keys
 * and thresholds per role, delegated targets roles, and metadata a correct client must
 * refuse (the attacks client tests need). The work is done by uptane_cli.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "uptane_cli.h"

enum { EXIT_USAGE = 2 };

static const char USAGE[] =
    "Usage: ota-server uptane ACTION DIR [OPTIONS]\n"
    "\n"
    "Uptane repository operations beyond the everyday commands, mostly for client tests:\n"
    "several keys and a threshold per role, delegated targets roles, and metadata that a\n"
    "correct client must refuse.\n"
    "\n"
    "Actions:\n"
    "  set-keys DIR --repo director|image --role ROLE --keys K --threshold T\n"
    "        K new keys (1-8) for ROLE, T of them required: root version N+1 lists them,\n"
    "        signed by every key of root N (and by the new ones for --role root); what\n"
    "        ROLE signs is signed again with them (director targets: every device's)\n"
    "      --key-type ed25519|rsa   (default: the type of the role's current key)\n"
    "  delegate DIR --name ROLE [--paths GLOB]... [--terminating] [--parent ROLE]\n"
    "        add (or update) a delegated targets role of the image repository: its own\n"
    "        keys, listed in the delegations of the targets (or of --parent), its\n"
    "        delegations/ROLE.json recorded by the snapshot. --paths: the target names\n"
    "        it may sign (fnmatch patterns, `*` matches `/` too; default \"*\");\n"
    "        --terminating: clients searching a name it matches look no further\n"
    "      --keys K --threshold T   new keys for it (a new role: 1 key, threshold 1)\n"
    "      --key-type ed25519|rsa   (default ed25519)\n"
    "  add-target DIR FILE --delegation ROLE --name N --version V --hwid H...\n"
    "        as `ota-server add-target`, into the delegated role ROLE (N must match its\n"
    "        paths); --format and --uri as there. `assign` finds such targets\n"
    "  resign DIR --repo director|image --role ROLE [--device ID | --all] [--version N]\n"
    "        as `ota-server resign`; with --repo image, ROLE may name a delegated role.\n"
    "        These change how the role's own document is signed (its parents are\n"
    "        signed normally); `resign` without them repairs it:\n"
    "      --sign-with N            only the first N of the role's keys sign (0: none):\n"
    "                               below the threshold, clients must refuse it\n"
    "      --duplicate-signatures   the first signer's signature twice (one key ID\n"
    "                               twice, which must not count toward a threshold)\n"
    "      --wrong-key              a new key that no root lists signs instead\n"
    "  rotate-root DIR --repo director|image --bad-chain\n"
    "        root version N+1 listing a new root key and signed by it alone, not by the\n"
    "        keys of root N: a broken chain. The repository's keys do not change;\n"
    "        `ota-server resign DIR --repo R --role root --version N+1` repairs it\n"
    "\n"
    "Options of every action: --expires WHEN (what it signs: YYYY-MM-DDTHH:MM:SSZ or\n"
    "+N/-N with s, m, h, d or w); -h, --help.\n";

static int usage_error(const char *fmt, const char *arg) {
  fputs("ota-server uptane: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\nTry 'ota-server uptane --help'.\n", stderr);
  return EXIT_USAGE;
}

static int parse_count(const char *s, long min, long max, long *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max) return -1;
  *out = v;
  return 0;
}

enum {
  OPT_HELP = 256,
  OPT_REPO,
  OPT_ROLE,
  OPT_KEYS,
  OPT_THRESHOLD,
  OPT_KEY_TYPE,
  OPT_EXPIRES,
  OPT_NAME,
  OPT_PATHS,
  OPT_TERMINATING,
  OPT_PARENT,
  OPT_DELEGATION,
  OPT_VERSION,
  OPT_HWID,
  OPT_FORMAT,
  OPT_URI,
  OPT_DEVICE,
  OPT_ALL,
  OPT_SIGN_WITH,
  OPT_DUPLICATE,
  OPT_WRONG_KEY,
  OPT_BAD_CHAIN
};

static const struct option OPTIONS[] = {
    {"help", no_argument, NULL, OPT_HELP},
    {"repo", required_argument, NULL, OPT_REPO},
    {"role", required_argument, NULL, OPT_ROLE},
    {"keys", required_argument, NULL, OPT_KEYS},
    {"threshold", required_argument, NULL, OPT_THRESHOLD},
    {"key-type", required_argument, NULL, OPT_KEY_TYPE},
    {"expires", required_argument, NULL, OPT_EXPIRES},
    {"name", required_argument, NULL, OPT_NAME},
    {"paths", required_argument, NULL, OPT_PATHS},
    {"terminating", no_argument, NULL, OPT_TERMINATING},
    {"parent", required_argument, NULL, OPT_PARENT},
    {"delegation", required_argument, NULL, OPT_DELEGATION},
    {"version", required_argument, NULL, OPT_VERSION},
    {"hwid", required_argument, NULL, OPT_HWID},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"uri", required_argument, NULL, OPT_URI},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"all", no_argument, NULL, OPT_ALL},
    {"sign-with", required_argument, NULL, OPT_SIGN_WITH},
    {"duplicate-signatures", no_argument, NULL, OPT_DUPLICATE},
    {"wrong-key", no_argument, NULL, OPT_WRONG_KEY},
    {"bad-chain", no_argument, NULL, OPT_BAD_CHAIN},
    {NULL, 0, NULL, 0},
};

static const char *const ACTIONS[] = {"set-keys", "delegate", "add-target", "resign",
                                      "rotate-root"};

/* Which options each action takes. */
static bool allowed(const char *action, int opt) {
  if (opt == OPT_HELP || opt == OPT_EXPIRES) return true;
  if (strcmp(action, "set-keys") == 0)
    return opt == OPT_REPO || opt == OPT_ROLE || opt == OPT_KEYS || opt == OPT_THRESHOLD ||
           opt == OPT_KEY_TYPE;
  if (strcmp(action, "delegate") == 0)
    return opt == OPT_NAME || opt == OPT_PATHS || opt == OPT_TERMINATING || opt == OPT_PARENT ||
           opt == OPT_KEYS || opt == OPT_THRESHOLD || opt == OPT_KEY_TYPE;
  if (strcmp(action, "add-target") == 0)
    return opt == OPT_DELEGATION || opt == OPT_NAME || opt == OPT_VERSION || opt == OPT_HWID ||
           opt == OPT_FORMAT || opt == OPT_URI;
  if (strcmp(action, "resign") == 0)
    return opt == OPT_REPO || opt == OPT_ROLE || opt == OPT_DEVICE || opt == OPT_ALL ||
           opt == OPT_VERSION || opt == OPT_SIGN_WITH || opt == OPT_DUPLICATE ||
           opt == OPT_WRONG_KEY;
  return opt == OPT_REPO || opt == OPT_BAD_CHAIN; /* rotate-root */
}

/* Checks what an action needs once every option is read; a usage exit code or 0. */
static int check(const char *action, uptane_cli_options *u, bool repo_set, const char *role,
                 bool keys_set, bool threshold_set) {
  if (strcmp(action, "set-keys") == 0 || strcmp(action, "resign") == 0) {
    if (!repo_set || !role) return usage_error("%s: --repo and --role are required", action);
    if (repo_role_parse(role, &u->role) != 0) {
      if (strcmp(action, "set-keys") == 0 || u->repo != REPO_IMAGE)
        return usage_error("--role '%s': expected root, targets, snapshot or timestamp (a "
                           "delegated role only with resign --repo image)",
                           role);
      if (!repo_delegation_name_valid(role))
        return usage_error("--role '%s': no top-level role, and not a delegated role name", role);
      u->delegation = role;
      u->role = REPO_ROLE_TARGETS;
    }
    if (u->repo == REPO_DIRECTOR && u->role != REPO_ROLE_ROOT && u->role != REPO_ROLE_TARGETS)
      return usage_error("%s: the director has root and targets only", action);
  }
  if (strcmp(action, "set-keys") == 0) {
    if (!keys_set || !threshold_set)
      return usage_error("%s: --keys K and --threshold T are required", action);
    if ((long)u->threshold > (long)u->nkeys)
      return usage_error("%s: --threshold cannot be more than --keys", action);
  } else if (strcmp(action, "delegate") == 0) {
    if (!u->role_name) return usage_error("%s: --name ROLE is required", action);
    if (!repo_delegation_name_valid(u->role_name))
      return usage_error("--name '%s': expected 1 to 64 of A-Z a-z 0-9 _ -, starting with a "
                         "letter or digit, not root, targets, snapshot or timestamp",
                         u->role_name);
    if (u->parent && !repo_delegation_name_valid(u->parent))
      return usage_error("--parent '%s': not a delegated role name", u->parent);
    if (threshold_set && keys_set && (long)u->threshold > (long)u->nkeys)
      return usage_error("%s: --threshold cannot be more than --keys", action);
  } else if (strcmp(action, "add-target") == 0) {
    if (!u->delegation)
      return usage_error("%s: --delegation ROLE is required (without it: ota-server add-target)",
                         action);
    if (!repo_delegation_name_valid(u->delegation))
      return usage_error("--delegation '%s': not a delegated role name", u->delegation);
    if (!u->name || !u->version || u->nhwids == 0)
      return usage_error("%s: --name, --version and --hwid are required", action);
  } else if (strcmp(action, "resign") == 0) {
    bool director_targets = u->repo == REPO_DIRECTOR && u->role == REPO_ROLE_TARGETS;
    if (director_targets && !u->device == !u->all)
      return usage_error("%s: director targets are per device: give --device ID or --all", action);
    if (!director_targets && (u->device || u->all))
      return usage_error("%s: --device and --all apply to director targets only", action);
  } else { /* rotate-root */
    if (!repo_set) return usage_error("%s: --repo director|image is required", action);
    if (!u->bad_chain)
      return usage_error("%s: --bad-chain is required (a valid rotation: ota-server rotate-root)",
                         action);
  }
  return 0;
}

int uptane_tool_main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "help") == 0) {
    fputs(USAGE, argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : 0;
  }
  const char *action = argv[1];
  bool known = false;
  for (size_t i = 0; i < sizeof ACTIONS / sizeof ACTIONS[0]; i++)
    known |= strcmp(action, ACTIONS[i]) == 0;
  if (!known)
    return usage_error("unknown action '%s' (set-keys, delegate, add-target, resign, rotate-root)",
                       action);

  uptane_cli_options up = {0};
  repo_attack attack = {.sign_with = -1};
  bool repo_set = false, keys_set = false, threshold_set = false, attack_set = false;
  const char *role = NULL;
  long n = 0;
  int opt;
  optind = 2;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "h", OPTIONS, NULL)) != -1) {
    if (opt == 'h') opt = OPT_HELP;
    if (opt == '?') return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
    if (!allowed(action, opt))
      return usage_error("option '%s' does not apply to this action", argv[optind - 1]);
    switch (opt) {
    case OPT_HELP: fputs(USAGE, stdout); return 0;
    case OPT_REPO:
      if (repo_kind_parse(optarg, &up.repo) != 0)
        return usage_error("--repo '%s': expected director or image", optarg);
      repo_set = true;
      break;
    case OPT_ROLE: role = optarg; break;
    case OPT_KEYS:
      if (parse_count(optarg, 1, REPO_KEYS_MAX, &n) != 0)
        return usage_error("--keys '%s': expected 1 to 8", optarg);
      up.nkeys = (size_t)n;
      keys_set = true;
      break;
    case OPT_THRESHOLD:
      if (parse_count(optarg, 1, REPO_KEYS_MAX, &n) != 0)
        return usage_error("--threshold '%s': expected 1 to 8", optarg);
      up.threshold = (int)n;
      threshold_set = true;
      break;
    case OPT_KEY_TYPE:
      if (tuf_key_type_parse(optarg, &up.key_type) != 0)
        return usage_error("--key-type '%s': expected ed25519 or rsa", optarg);
      up.key_type_set = true;
      break;
    case OPT_EXPIRES:
      if (repo_expiry_parse(optarg, &up.expires) != 0)
        return usage_error("--expires '%s': expected YYYY-MM-DDTHH:MM:SSZ or +N/-N with s, m, "
                           "h, d or w",
                           optarg);
      break;
    case OPT_NAME:
      if (strcmp(action, "add-target") == 0) {
        if (!repo_target_name_valid(optarg))
          return usage_error("--name '%s': expected 1 to 255 bytes, no control characters or "
                             "backslashes, no empty, . or .. parts between slashes",
                             optarg);
        up.name = optarg;
      } else {
        up.role_name = optarg;
      }
      break;
    case OPT_PATHS:
      if (!*optarg) return usage_error("%s", "--paths: expected a pattern");
      if (up.npaths == CLI_HWIDS_MAX) return usage_error("%s", "--paths: too many");
      up.paths[up.npaths++] = optarg;
      break;
    case OPT_TERMINATING: up.terminating = true; break;
    case OPT_PARENT: up.parent = optarg; break;
    case OPT_DELEGATION: up.delegation = optarg; break;
    case OPT_VERSION:
      if (strcmp(action, "resign") == 0) {
        if (parse_count(optarg, 1, 2000000000, &n) != 0)
          return usage_error("--version '%s': expected a metadata version of 1 or more", optarg);
        up.meta_version = n;
      } else {
        if (!*optarg) return usage_error("%s", "--version: expected a version");
        up.version = optarg;
      }
      break;
    case OPT_HWID:
      if (!*optarg) return usage_error("%s", "--hwid: expected a hardware ID");
      if (up.nhwids == CLI_HWIDS_MAX) return usage_error("%s", "--hwid: too many");
      up.hwids[up.nhwids++] = optarg;
      break;
    case OPT_FORMAT:
      if (strcmp(optarg, "BINARY") != 0 && strcmp(optarg, "OSTREE") != 0)
        return usage_error("--format '%s': expected BINARY or OSTREE", optarg);
      up.format = optarg;
      break;
    case OPT_URI: up.uri = optarg; break;
    case OPT_DEVICE: up.device = optarg; break;
    case OPT_ALL: up.all = true; break;
    case OPT_SIGN_WITH:
      if (parse_count(optarg, 0, REPO_KEYS_MAX, &n) != 0)
        return usage_error("--sign-with '%s': expected 0 to 8 keys", optarg);
      attack.sign_with = (int)n;
      attack_set = true;
      break;
    case OPT_DUPLICATE:
      attack.duplicate_signatures = true;
      attack_set = true;
      break;
    case OPT_WRONG_KEY:
      attack.wrong_key = true;
      attack_set = true;
      break;
    case OPT_BAD_CHAIN: up.bad_chain = true; break;
    }
  }
  if (attack.wrong_key && attack.sign_with >= 0)
    return usage_error("%s", "--wrong-key and --sign-with: choose one");
  if (attack.duplicate_signatures && attack.sign_with == 0)
    return usage_error("%s", "--duplicate-signatures needs a signer: --sign-with 1 or more");
  bool add_target = strcmp(action, "add-target") == 0;
  int operands = add_target ? 2 : 1;
  if (optind >= argc) return usage_error("%s: the fleet directory DIR is required", action);
  if (optind + 1 >= argc && operands == 2)
    return usage_error("%s", "add-target: the target FILE is required");
  if (optind + operands < argc)
    return usage_error("unexpected argument '%s'", argv[optind + operands]);
  int bad = check(action, &up, repo_set, role, keys_set, threshold_set);
  if (bad) return bad;
  up.dir = argv[optind];
  up.file = add_target ? argv[optind + 1] : NULL;
  up.attack = attack_set ? &attack : NULL;

  if (gnutls_global_init() < 0) {
    fprintf(stderr, "ota-server: cannot initialise GnuTLS\n");
    return 1;
  }
  int status;
  if (strcmp(action, "set-keys") == 0)
    status = cli_set_keys(&up);
  else if (strcmp(action, "delegate") == 0)
    status = cli_delegate(&up);
  else if (add_target)
    status = cli_add_target(&up);
  else if (strcmp(action, "resign") == 0)
    status = cli_resign(&up);
  else
    status = cli_rotate_root(&up);
  gnutls_global_deinit();
  return status;
}
