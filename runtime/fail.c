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
