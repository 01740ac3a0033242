/* idgen.c - readable generated device IDs (see idgen.h). 64 x 64 x 10^6 = 4.1 billion names:
 * 100,000 devices choosing at random collide about once (41M names gave ~120 collisions, each
 * a 409 and a second registration). */
#include "idgen.h"

#include <stdio.h>
#include <string.h>

static const char *const adjectives[64] = {
    "amber",  "brave",  "bright", "calm",   "clever", "cosmic", "crisp",  "daring",
    "deep",   "eager",  "early",  "fancy",  "fast",   "fierce", "fluffy", "gentle",
    "giant",  "glad",   "golden", "grand",  "green",  "happy",  "hidden", "honest",
    "humble", "icy",    "jolly",  "keen",   "kind",   "lively", "lucky",  "mellow",
    "merry",  "mighty", "misty",  "modest", "noble",  "odd",    "plain",  "polite",
    "proud",  "quick",  "quiet",  "rapid",  "rare",   "red",    "rosy",   "royal",
    "rusty",  "shiny",  "silent", "silver", "smart",  "snowy",  "solid",  "steady",
    "sunny",  "swift",  "tidy",   "urban",  "vivid",  "warm",   "wise",   "young"};
static const char *const nouns[64] = {
    "badger",  "bear",    "beaver", "bison",  "cheetah", "condor", "crane",  "dingo",
    "dolphin", "eagle",   "falcon", "ferret", "finch",   "fox",    "gecko",  "gibbon",
    "heron",   "hippo",   "ibis",   "impala", "jackal",  "jaguar", "koala",  "lemur",
    "lion",    "llama",   "lynx",   "magpie", "marmot",  "mink",   "moose",  "newt",
    "ocelot",  "orca",    "osprey", "otter",  "owl",     "panda",  "parrot", "pelican",
    "puffin",  "quail",   "rabbit", "raven",  "robin",   "salmon", "seal",   "shark",
    "sloth",   "sparrow", "stork",  "swan",   "tapir",   "tiger",  "toucan", "trout",
    "turtle",  "viper",   "walrus", "weasel", "whale",   "wolf",   "wombat", "zebra"};

void idgen_readable(rng *r, char *out, size_t cap) {
  uint64_t x = rng_next(r);
  snprintf(out, cap, "%s-%s-%06u", adjectives[x & 63], nouns[(x >> 6) & 63],
           (unsigned)((x >> 12) % 1000000));
}

int idgen_valid(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return 0;
  }
  return 1;
}
