/* fuzz_config.c - libFuzzer target: the sota.toml parser and validator.
 * Each input is written to a file on tmpfs and loaded like a -c FILE. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/config.h"

static void ignore(void *ctx, const char *msg) {
  (void)ctx, (void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[64];
  snprintf(path, sizeof(path), "/dev/shm/otad-fuzz-config-%d.toml", (int)getpid());
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  otad_config cfg;
  otad_errbuf eb;
  config_init(&cfg);
  if (config_load_path(&cfg, path, ignore, NULL, &eb) == 0 && config_finish(&cfg, &eb) == 0) {
    char *dump = config_dump(&cfg);
    free(dump);
  }
  config_free(&cfg);
  unlink(path);
  return 0;
}
