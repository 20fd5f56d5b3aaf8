/* The one way failures are reported across aotgrad: a message in the caller's buffer. */
#ifndef AG_RUNTIME_FAIL_H
#define AG_RUNTIME_FAIL_H

#include <stdbool.h>
#include <stddef.h>

/* Formats the message into err (when err and len allow) and returns false, so that a check
 * reads `if (bad) return rt_fail(err, len, "...", ...);`. */
bool rt_fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
