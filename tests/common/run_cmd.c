#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

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

char *run_fmt(int *status, const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd - 8, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < sizeof cmd - 8, "command too long");
    strcat(cmd, " 2>&1");
    return run_cmd(cmd, status);
}

double last_value(const char *out, const char *key)
{
    double v = NAN;
    for (const char *p = strstr(out, key); p; p = strstr(p + 1, key))
        v = strtod(p + strlen(key), NULL);
    return v;
}

/* a checkpoint tensor's elements */
static int64_t numel(const rt_ckpt_tensor *t)
{
    int64_t n = 1;
    for (int k = 0; k < t->rank; k++)
        n *= t->dims[k];
    return n;
}

void expect_same_tensors(const char *a, const char *b)
{
    rt_ckpt x, y;
    char err[512];
    cr_assert(rt_ckpt_load(a, &x, err, sizeof err), "%s", err);
    cr_assert(rt_ckpt_load(b, &y, err, sizeof err), "%s", err);
    cr_expect_eq(x.n, y.n, "%s has %d tensors, %s %d", a, x.n, b, y.n);
    for (int i = 0; i < x.n; i++) {
        const rt_ckpt_tensor *t = rt_ckpt_find(&y, x.t[i].name);
        cr_assert_not_null(t, "%s: no tensor %s", b, x.t[i].name);
        int64_t n = numel(t);
        cr_expect(memcmp(x.t[i].data, t->data, (size_t)n * 4) == 0, "tensor %s differs between %s and %s", x.t[i].name,
                  a, b);
    }
    rt_ckpt_free(&x);
    rt_ckpt_free(&y);
}

double tensors_apart(const char *a, const char *b)
{
    rt_ckpt x, y;
    char err[512];
    cr_assert(rt_ckpt_load(a, &x, err, sizeof err), "%s", err);
    cr_assert(rt_ckpt_load(b, &y, err, sizeof err), "%s", err);
    cr_assert_eq(x.n, y.n);
    double worst = 0;
    for (int i = 0; i < x.n; i++) {
        const rt_ckpt_tensor *t = rt_ckpt_find(&y, x.t[i].name);
        cr_assert_not_null(t, "%s: no %s", b, x.t[i].name);
        int64_t n = numel(t);
        double d = 0, r = 0;
        for (int64_t k = 0; k < n; k++) {
            double u = ((const float *)x.t[i].data)[k], v = ((const float *)t->data)[k];
            d += (u - v) * (u - v), r += u * u;
        }
        worst = fmax(worst, sqrt(d) / (r > 0 ? sqrt(r) : 1));
    }
    rt_ckpt_free(&x);
    rt_ckpt_free(&y);
    return worst;
}
