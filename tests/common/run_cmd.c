#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "run_cmd.h"

char *run_cmd(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    for (size_t got; (got = fread(out + n, 1, cap - n - 1, p)) > 0;)
        if ((n += got) == cap - 1) {
            out = realloc(out, cap *= 2);
            cr_assert_not_null(out);
        }
    out[n] = 0;
    *status = pclose(p);
    return out;
}
