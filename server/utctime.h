/* utctime.h - the clock as the server logs and stores it: ISO 8601 UTC strings. */
#ifndef OTA_SERVER_UTCTIME_H
#define OTA_SERVER_UTCTIME_H

#include <stdint.h>
#include <time.h>

#define UTC_ISO_LEN 32

/* Milliseconds of the monotonic clock, for durations. */
uint64_t utc_monotonic_ms(void);

/* Now as "YYYY-MM-DDTHH:MM:SS.mmmZ". */
void utc_now_iso_ms(char out[UTC_ISO_LEN]);

/* t as "YYYY-MM-DDTHH:MM:SSZ". */
void utc_iso(time_t t, char out[UTC_ISO_LEN]);

#endif
