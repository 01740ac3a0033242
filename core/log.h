/* log.h - one-line log messages on stderr: time, level, who, what.
 *
 * The level threshold is process-wide (a process runs one configuration); everything a
 * device owns is passed in, so any number of devices can log through it.
 * Levels follow aktualizr's numbers: 0 trace, 1 debug, 2 info, 3 warning, 4 error, 5 fatal.
 */
#ifndef OTAD_LOG_H
#define OTAD_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_TRACE = 0, LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_FATAL };

/* Sets the lowest level that is printed. */
void log_set_level(int level);

/* The current threshold. */
int log_get_level(void);

/* Prints "TIME LEVEL who: message" when level passes the threshold; who may be NULL. */
void log_msg(int level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* log_msg() with a va_list; quiet: only warnings and worse (a fleet's many devices). */
void log_msgv(int level, const char *who, bool quiet, const char *fmt, va_list ap);

#endif
