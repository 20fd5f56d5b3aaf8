#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>

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
