/* utctime.c - monotonic milliseconds and ISO 8601 UTC formatting. */
#include "utctime.h"

#include <stdio.h>

uint64_t utc_monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void utc_now_iso_ms(char out[UTC_ISO_LEN]) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(out, UTC_ISO_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

void utc_iso(time_t t, char out[UTC_ISO_LEN]) {
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(out, UTC_ISO_LEN, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
