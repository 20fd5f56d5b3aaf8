#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "fail.h"

bool rt_fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && len)
        vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return false;
}

bool rt_fail_trimmed(char *err, size_t len, const char *fmt, ...)
{
    if (!err || !len)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = 0;
    return false;
}

const char *rt_fmt_double(char *buf, size_t len, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        double r = strtod(buf, NULL);
        if (r == v || (isnan(r) && isnan(v)))
            break;
    }
    return buf;
}

bool rt_parse_whole(const char *s, size_t n, int64_t hi, int64_t *v)
{
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        int d = s[i] - '0';
        if (d < 0 || d > 9 || d > hi || x > (hi - d) / 10) /* x * 10 + d <= hi */
            return false;
        x = x * 10 + d;
    }
    *v = x;
    return n > 0;
}

/* Damerau-Levenshtein (optimal string alignment) distance of a and b, capped at 9 */
static int edits(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 62 || m > 62)
        return 9;
    int d[64][64];
    for (size_t i = 0; i <= n; i++)
        for (size_t j = 0; j <= m; j++) {
            if (!i || !j) {
                d[i][j] = (int)(i + j);
                continue;
            }
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            best = d[i - 1][j] + 1 < best ? d[i - 1][j] + 1 : best;
            best = d[i][j - 1] + 1 < best ? d[i][j - 1] + 1 : best;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m] < 9 ? d[n][m] : 9;
}

const char *rt_closest(const char *word, const char *const *cands, int count)
{
    const char *best = NULL;
    int dist = 3; /* at most 2 edits */
    for (int k = 0; word && k < count; k++) {
        int e = cands[k] ? edits(word, cands[k]) : 9;
        if (e < dist && 2 * e < (int)strlen(word)) /* fewer than half the letters */
            best = cands[k], dist = e;
    }
    return best;
}
