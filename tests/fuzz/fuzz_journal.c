/* fuzz_journal.c - libFuzzer target: journal replay (JSON lines through the table). */
#include <stdint.h>
#include <stdio.h>

#include "core/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  FILE *f = fmemopen((void *)data, size, "r");
  if (!f) return 0;
  replay_result r;
  journal_replay(f, &r);
  fclose(f);
  return 0;
}
