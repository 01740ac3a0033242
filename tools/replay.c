/* replay.c - otad-replay: re-runs recorded journals through the state machine.
 *
 * No network, no disk besides the journal: every line is checked against the transition
 * table (machine_step) and against the state the device was left in by its previous line.
 * A journal may hold many devices' lines interleaved (otad-fleet writes one for the whole
 * fleet): each device's transitions are replayed on their own, so every device that
 * diverges is reported with its label and line while the others replay to the end. The
 * exit status says whether the journal replays cleanly.
 */
#include <stdio.h>
#include <string.h>

#include "core/journal.h"

static const char usage_text[] =
    "Usage: otad-replay [--quiet] JOURNAL...\n"
    "\n"
    "Replays journals written by otad or otad-fleet (one JSON object per line) through the\n"
    "state machine, each device's lines on their own, and reports every device that\n"
    "diverges (its label and the line). '-' reads standard input.\n"
    "\n"
    "Exit status: 0 every journal replays cleanly, 1 a journal diverges or is malformed,\n"
    "2 usage error or unreadable file.\n";

static void on_divergence(void *ctx, size_t line, const char *label, const char *why) {
  printf("%s: DIVERGED at %s\n", (const char *)ctx, why);
}

static int replay_one(const char *path, int quiet) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
  if (!f) {
    fprintf(stderr, "otad-replay: cannot open %s: %m\n", path);
    return 2;
  }
  replay_result r;
  int rc = journal_replay_each(f, &r, on_divergence, (void *)path);
  if (f != stdin) fclose(f);
  if (rc == OTAD_EIO) {
    fprintf(stderr, "otad-replay: %s: read error\n", path);
    return 2;
  }
  if (rc) {
    printf("%s: %zu of %zu devices diverged (the first at line %zu)", path, r.diverged_devices,
           r.devices, r.line);
    if (r.devices > r.diverged_devices)
      printf("; the other %zu replay cleanly", r.devices - r.diverged_devices);
    printf("\n");
    return 1;
  }
  if (!quiet) {
    printf("%s: OK: %zu transitions, %zu devices, %zu runs", path, r.transitions, r.devices,
           r.runs);
    for (int s = 0; s < ST__COUNT; s++)
      if (r.final_counts[s]) printf(", %zu %s", r.final_counts[s], machine_state_name(s));
    printf("\n");
  }
  if (r.torn_tail)
    printf("%s: note: the last line was cut short (a crash while writing) and was ignored\n", path);
  return 0;
}

int main(int argc, char **argv) {
  int quiet = 0, first = 1, worst = 0;
  for (; first < argc && argv[first][0] == '-' && argv[first][1]; first++) {
    if (strcmp(argv[first], "--quiet") == 0 || strcmp(argv[first], "-q") == 0)
      quiet = 1;
    else if (strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0) {
      fputs(usage_text, stdout);
      return 0;
    } else {
      fprintf(stderr, "otad-replay: unknown option %s\n\n%s", argv[first], usage_text);
      return 2;
    }
  }
  if (first >= argc) {
    fputs(usage_text, stderr);
    return 2;
  }
  for (int i = first; i < argc; i++) {
    int rc = replay_one(argv[i], quiet);
    if (rc > worst) worst = rc;
  }
  return worst;
}
