/* The one way failures are reported across aotgrad: a message in the caller's buffer; and
 * the one way the numbers in messages and text are written. */
#ifndef AG_RUNTIME_FAIL_H
#define AG_RUNTIME_FAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Formats the message into err (when err and len allow) and returns false, so that a check
 * reads `if (bad) return rt_fail(err, len, "...", ...);`. */
bool rt_fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* rt_fail without the newlines and spaces that end the message, as a library's own text
 * (LLVM's, dlerror's, NVRTC's) often does. */
bool rt_fail_trimmed(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* v as the shortest "%.{1..17}g" that reads back as exactly v (0.1 as 0.1, not
 * 0.10000000000000001), for messages, text IR and metadata; returns buf. */
const char *rt_fmt_double(char *buf, size_t len, double v);

/* Of the count words cands, the one closest to word by edit distance (insertions, deletions,
 * substitutions and swaps of neighbours), if it is close enough to be a likely typo (at most
 * 2 edits, and fewer than half of word's length); else NULL. For "did you mean". */
const char *rt_closest(const char *word, const char *const *cands, int count);

/* The n characters at s as a whole number: decimal digits only (no sign, space or 0x), at
 * least one, at most hi; false otherwise, overflow included. */
bool rt_parse_whole(const char *s, size_t n, int64_t hi, int64_t *v);

#endif
