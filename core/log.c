/* log.c - stderr logging with a process-wide threshold (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static int log_threshold = LOG_INFO;

void log_set_level(int level) {
  log_threshold = level;
}

int log_get_level(void) {
  return log_threshold;
}

void log_msg(int level, const char *who, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_msgv(level, who, false, fmt, ap);
  va_end(ap);
}

void log_msgv(int level, const char *who, bool quiet, const char *fmt, va_list ap) {
  static const char *names[] = {"trace", "debug", "info", "warning", "error", "fatal"};
  if (level < log_threshold || (quiet && level < LOG_WARN)) return;
  if (level < LOG_TRACE) level = LOG_TRACE;
  if (level > LOG_FATAL) level = LOG_FATAL;

  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char line[1536];
  int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-7s %s%s",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   (int)(tv.tv_usec / 1000), names[level], who ? who : "", who ? ": " : "");
  if (n < 0 || n >= (int)sizeof(line)) n = 0;
  vsnprintf(line + n, sizeof(line) - n, fmt, ap);
  /* One fputs of a whole line keeps lines from different threads whole. */
  fprintf(stderr, "%s\n", line);
}
