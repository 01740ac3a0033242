/* fuzz_credzip.c - libFuzzer target: credentials.zip ingestion (libarchive) and the
 * rewrite that strips the fleet key. */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "storage/credzip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[64];
  snprintf(path, sizeof(path), "/dev/shm/otad-fuzz-zip-%d.zip", (int)getpid());
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  credzip z = {0};
  otad_errbuf eb;
  if (credzip_read(path, &z, &eb) == 0) {
    credzip_free(&z);
    credzip_strip_fleet_key(path, &eb);
  }
  unlink(path);
  return 0;
}
