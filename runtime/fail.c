#include <stdarg.h>
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
