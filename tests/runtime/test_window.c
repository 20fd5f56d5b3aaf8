/* The 2-D window routines (runtime/window.h) against naive references written here from the
 * header's definitions, one loop per window position and a bounds test per element: over a
 * grid of geometries (kernels 1x1 to 5x5 and 2x3, strides, paddings, dilations, batch and
 * channels), inline and on a pool of 2 threads, every result asked for the same bits. Then
 * col2im as the adjoint of im2col, max pooling's NaN and -inf rules, and batch 0. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "window.h"

/* ---- geometry ---- */

/* false when the window does not fit (an output size below 1) */
static bool make_window(rt_window *g, int64_t c, int64_t h, int64_t w, const int64_t k[2], const int64_t s[2],
                        const int64_t p[2], const int64_t d[2])
{
    int64_t eh = h + 2 * p[0] - d[0] * (k[0] - 1) - 1, ew = w + 2 * p[1] - d[1] * (k[1] - 1) - 1;
    if (eh < 0 || ew < 0)
        return false;
    *g = (rt_window){c, h, w, eh / s[0] + 1, ew / s[1] + 1, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], 0, 0};
    return true;
}

static char *window_str(const rt_window *g, int64_t batch, char *buf, size_t len)
{
    snprintf(buf, len, "batch %lld c %lld %lldx%lld k %lldx%lld s %lld,%lld p %lld,%lld d %lld,%lld", (long long)batch,
             (long long)g->c, (long long)g->h, (long long)g->w, (long long)g->kh, (long long)g->kw, (long long)g->sh,
             (long long)g->sw, (long long)g->ph, (long long)g->pw, (long long)g->dh, (long long)g->dw);
    return buf;
}

/* ---- the references ---- */

/* The input position under window tap (i, j) of output (y, xo), and whether it is inside. */
static bool tap_at(const rt_window *g, int64_t y, int64_t xo, int64_t i, int64_t j, int64_t *iy, int64_t *ix)
{
    *iy = y * g->sh + i * g->dh - g->ph;
    *ix = xo * g->sw + j * g->dw - g->pw;
    return *iy >= 0 && *iy < g->h && *ix >= 0 && *ix < g->w;
}

static void ref_im2col(const float *x, float *cols, int64_t batch, const rt_window *g)
{
    int64_t ncols = batch * g->oh * g->ow;
    for (int64_t row = 0; row < g->c * g->kh * g->kw; row++)
        for (int64_t col = 0; col < ncols; col++) {
            int64_t ci = row / (g->kh * g->kw), i = row / g->kw % g->kh, j = row % g->kw;
            int64_t n = col / (g->oh * g->ow), y = col / g->ow % g->oh, xo = col % g->ow, iy, ix;
            cols[row * ncols + col] =
                tap_at(g, y, xo, i, j, &iy, &ix) ? x[((n * g->c + ci) * g->h + iy) * g->w + ix] : 0;
        }
}

static void ref_col2im(const float *cols, float *x, int64_t batch, const rt_window *g)
{
    int64_t ncols = batch * g->oh * g->ow;
    for (int64_t n = 0; n < batch; n++)
        for (int64_t ci = 0; ci < g->c; ci++) {
            float *xp = x + (n * g->c + ci) * g->h * g->w;
            for (int64_t e = 0; e < g->h * g->w; e++)
                xp[e] = 0;
            for (int64_t i = 0; i < g->kh; i++)
                for (int64_t j = 0; j < g->kw; j++)
                    for (int64_t y = 0; y < g->oh; y++)
                        for (int64_t xo = 0; xo < g->ow; xo++) {
                            int64_t iy, ix, row = (ci * g->kh + i) * g->kw + j, col = (n * g->oh + y) * g->ow + xo;
                            if (tap_at(g, y, xo, i, j, &iy, &ix))
                                xp[iy * g->w + ix] += cols[row * ncols + col];
                        }
        }
}

/* PyTorch's rule for output (y, xo) of plane xp: the index in the plane of the maximum, -1
 * for a window wholly in the padding, and the maximum. */
static int64_t ref_argmax(const float *xp, const rt_window *g, int64_t y, int64_t xo, float *max)
{
    float m = -INFINITY;
    int64_t at = -1;
    for (int64_t i = 0; i < g->kh; i++)
        for (int64_t j = 0; j < g->kw; j++) {
            int64_t iy, ix;
            if (!tap_at(g, y, xo, i, j, &iy, &ix))
                continue;
            float v = xp[iy * g->w + ix];
            if (at < 0)
                at = iy * g->w + ix;
            if (v > m || isnan(v))
                m = v, at = iy * g->w + ix;
        }
    *max = m;
    return at;
}

/* out = the pool (max or average), or dx = its gradient given dy (then out unused) */
static void ref_pool(bool max, bool grad, const float *x, const float *dy, float *res, int64_t batch,
                     const rt_window *g)
{
    float k = (float)(g->kh * g->kw);
    for (int64_t p = 0; p < batch * g->c; p++) {
        const float *xp = grad && !max ? NULL : x + p * g->h * g->w;
        if (grad)
            for (int64_t e = 0; e < g->h * g->w; e++)
                res[p * g->h * g->w + e] = 0;
        for (int64_t y = 0; y < g->oh; y++)
            for (int64_t xo = 0; xo < g->ow; xo++) {
                int64_t o = (p * g->oh + y) * g->ow + xo;
                if (max) {
                    float m;
                    int64_t at = ref_argmax(xp, g, y, xo, &m);
                    if (!grad)
                        res[o] = m;
                    else if (at >= 0)
                        res[p * g->h * g->w + at] += dy[o];
                    continue;
                }
                float s = 0.0f, q = grad ? dy[o] / k : 0;
                for (int64_t i = 0; i < g->kh; i++)
                    for (int64_t j = 0; j < g->kw; j++) {
                        int64_t iy, ix;
                        if (!tap_at(g, y, xo, i, j, &iy, &ix))
                            continue;
                        if (grad)
                            res[(p * g->h + iy) * g->w + ix] += q;
                        else
                            s += xp[iy * g->w + ix];
                    }
                if (!grad)
                    res[o] = s / k;
            }
    }
}

/* ---- comparing ---- */

static float *alloc_f32(int64_t n) { return malloc(sizeof(float) * (size_t)(n > 0 ? n : 1)); }

/* A NaN no routine computes: an element left unwritten shows. */
static void fill_sentinel(float *x, int64_t n)
{
    uint32_t bits = 0x7fbadbadu;
    for (int64_t i = 0; i < n; i++)
        memcpy(&x[i], &bits, sizeof bits);
}

static int64_t differences; /* in the current test, for its summary */

static void expect_bits(const char *what, const char *geometry, const float *got, const float *want, int64_t n)
{
    int64_t differ = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            differ++;
            if (first < 0)
                first = i;
        }
    differences += differ;
    cr_expect(differ == 0, "%s, %s: %lld of %lld elements differ (first %lld: %.9g, want %.9g)", what, geometry,
              (long long)differ, (long long)n, (long long)first, first >= 0 ? (double)got[first] : 0.0,
              first >= 0 ? (double)want[first] : 0.0);
}

/* normal(0, 1), every other value rounded to halves: ties for the maximum and zeros of both
 * signs, while the others keep the sums inexact, so that their order shows */
static void fill_input(float *x, int64_t n, uint32_t seed)
{
    rt_fill_normal(x, n, 0, 1, seed, 11);
    for (int64_t i = 0; i < n; i += 2)
        x[i] = roundf(x[i] * 2) / 2;
}

/* ---- every routine against its reference ---- */

/* Each of the six routines inline and on `pool`, against the reference. */
static void check_geometry(const rt_window *g, int64_t batch, rt_pool *pool, uint32_t seed)
{
    char geo[160];
    window_str(g, batch, geo, sizeof geo);
    int64_t nx = batch * g->c * g->h * g->w, ny = batch * g->c * g->oh * g->ow, ncols = g->kh * g->kw * ny;
    float *x = alloc_f32(nx), *dy = alloc_f32(ny), *r = alloc_f32(ncols);
    float *want = alloc_f32(ncols > nx ? ncols : nx), *got = alloc_f32(ncols > nx ? ncols : nx);
    fill_input(x, nx, seed);
    fill_input(dy, ny, seed + 1);
    fill_input(r, ncols, seed + 2);
    rt_pool *pools[2] = {NULL, pool};
    for (int t = 0; t < 2; t++) {
        char what[200];
        const char *how = t ? "pool of 2" : "inline";
        ref_im2col(x, want, batch, g);
        fill_sentinel(got, ncols);
        rt_im2col(x, got, batch, g, pools[t]);
        snprintf(what, sizeof what, "im2col %s", how);
        expect_bits(what, geo, got, want, ncols);

        ref_col2im(r, want, batch, g);
        fill_sentinel(got, nx);
        rt_col2im(r, got, batch, g, pools[t]);
        snprintf(what, sizeof what, "col2im %s", how);
        expect_bits(what, geo, got, want, nx);

        for (int max = 0; max < 2; max++) {
            ref_pool(max, false, x, NULL, want, batch, g);
            fill_sentinel(got, ny);
            (max ? rt_max_pool2d : rt_avg_pool2d)(x, got, batch, g, pools[t]);
            snprintf(what, sizeof what, "%s_pool2d %s", max ? "max" : "avg", how);
            expect_bits(what, geo, got, want, ny);

            ref_pool(max, true, x, dy, want, batch, g);
            fill_sentinel(got, nx);
            if (max)
                rt_max_pool2d_grad(x, dy, got, batch, g, pools[t]);
            else
                rt_avg_pool2d_grad(dy, got, batch, g, pools[t]);
            snprintf(what, sizeof what, "%s_pool2d_grad %s", max ? "max" : "avg", how);
            expect_bits(what, geo, got, want, nx);
        }
    }
    free(x), free(dy), free(r), free(want), free(got);
}

static const int64_t kernels[][2] = {{1, 1}, {2, 2}, {3, 3}, {5, 5}, {2, 3}};
static const int64_t steps[][2] = {{1, 1}, {2, 2}, {1, 2}, {2, 1}}; /* strides, dilations */
static const struct {
    int64_t batch, c, h, w;
} sizes[] = {{1, 1, 9, 11}, {1, 2, 7, 5}, {3, 1, 5, 7}, {3, 2, 11, 9}};

Test(window, matches_reference)
{
    rt_pool *pool = rt_pool_new(2);
    cr_assert_not_null(pool);
    int64_t geometries = 0;
    differences = 0;
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++)
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++)
            for (size_t d = 0; d < sizeof steps / sizeof steps[0]; d++)
                for (int64_t p = 0; p < 9; p++)
                    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
                        rt_window g;
                        int64_t pad[2] = {p / 3, p % 3}; /* 0, 1, 2 each way */
                        if (!make_window(&g, sizes[z].c, sizes[z].h, sizes[z].w, kernels[k], steps[s], pad, steps[d]))
                            continue;
                        check_geometry(&g, sizes[z].batch, pool, (uint32_t)geometries);
                        geometries++;
                    }
    cr_log_info("window: %lld geometries, every routine inline and on 2 threads: %lld elements differ",
                (long long)geometries, (long long)differences);
    cr_expect(geometries > 2000, "only %lld geometries fit", (long long)geometries);
    rt_pool_free(pool);
}

/* Big enough that the planes make several chunks (4 to 43: a plane is 1000 to 10000 steps, a
 * chunk about 32768), so that the pool really splits them. */
Test(window, matches_reference_split_over_threads)
{
    static const int64_t cases[][6] = {
        /* kh, kw, stride h, stride w, pad, dilation */
        {3, 3, 1, 1, 1, 1},
        {2, 2, 2, 2, 0, 1},
        {5, 5, 2, 2, 2, 2},
        {2, 3, 2, 1, 1, 1},
    };
    rt_pool *pool = rt_pool_new(2);
    cr_assert_not_null(pool);
    differences = 0;
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        rt_window g;
        const int64_t *c = cases[t];
        cr_assert(make_window(&g, 8, 33, 31, (int64_t[]){c[0], c[1]}, (int64_t[]){c[2], c[3]}, (int64_t[]){c[4], c[4]},
                              (int64_t[]){c[5], c[5]}));
        check_geometry(&g, 16, pool, 1000 + (uint32_t)t);
    }
    cr_log_info("window: 4 geometries of 128 planes of 33x31: %lld elements differ", (long long)differences);
    rt_pool_free(pool);
}

/* ---- col2im is im2col's adjoint ---- */

/* sum a*b, and sum |a*b| in *mag when mag is not NULL */
static double dot(const float *a, const float *b, int64_t n, double *mag)
{
    double s = 0, m = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * b[i], m += fabs((double)a[i] * b[i]);
    if (mag)
        *mag = m;
    return s;
}

Test(window, col2im_is_adjoint_of_im2col)
{
    double worst = 0;
    int64_t geometries = 0;
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++)
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++)
            for (size_t d = 0; d < sizeof steps / sizeof steps[0]; d++)
                for (int64_t p = 0; p < 3; p++) {
                    rt_window g;
                    int64_t batch = 3, pad[2] = {p, 2 - p};
                    if (!make_window(&g, 2, 9, 11, kernels[k], steps[s], pad, steps[d]))
                        continue;
                    int64_t nx = batch * g.c * g.h * g.w, ncols = g.c * g.kh * g.kw * batch * g.oh * g.ow;
                    float *x = alloc_f32(nx), *r = alloc_f32(ncols), *cols = alloc_f32(ncols), *back = alloc_f32(nx);
                    rt_fill_normal(x, nx, 0, 1, (uint32_t)geometries, 1);
                    rt_fill_normal(r, ncols, 0, 1, (uint32_t)geometries, 2);
                    rt_im2col(x, cols, batch, &g, NULL);
                    rt_col2im(r, back, batch, &g, NULL);
                    /* relative to the products' magnitudes, not to a sum that may cancel */
                    double mag, a = dot(cols, r, ncols, &mag), b = dot(x, back, nx, NULL);
                    double rel = fabs(a - b) / fmax(mag, 1e-30);
                    char geo[160];
                    cr_expect(rel <= 1e-4, "%s: <im2col(x), r> = %.9g, <x, col2im(r)> = %.9g",
                              window_str(&g, batch, geo, sizeof geo), a, b);
                    worst = fmax(worst, rel);
                    geometries++;
                    free(x), free(r), free(cols), free(back);
                }
    cr_log_info("window: adjoint over %lld geometries, largest relative difference %.3g", (long long)geometries, worst);
}

/* ---- max pooling's special values ---- */

static void expect_float(const char *what, float got, float want)
{
    cr_expect(memcmp(&got, &want, sizeof got) == 0 || (isnan(got) && isnan(want)), "%s: %.9g, want %.9g", what,
              (double)got, (double)want);
}

/* A NaN wins the maximum, a later value does not displace it, and the last NaN takes the
 * gradient. */
Test(window, max_pool_nan)
{
    static const float x[9] = {1, NAN, 5, 2, 7, NAN, 9, 3, 4};
    rt_window g;
    cr_assert(make_window(&g, 1, 3, 3, (int64_t[]){3, 3}, (int64_t[]){1, 1}, (int64_t[]){0, 0}, (int64_t[]){1, 1}));
    rt_pool *pool = rt_pool_new(2);
    rt_pool *pools[2] = {NULL, pool};
    for (int t = 0; t < 2; t++) {
        float out = 0, dx[9];
        rt_max_pool2d(x, &out, 1, &g, pools[t]);
        cr_expect(isnan(out), "the maximum of a window holding NaN: %g", (double)out);
        rt_max_pool2d_grad(x, &(float){2}, dx, 1, &g, pools[t]);
        for (int e = 0; e < 9; e++)
            cr_expect(dx[e] == (e == 5 ? 2 : 0), "dx[%d] = %g: the gradient goes to the last NaN, x[5]", e,
                      (double)dx[e]);
    }
    /* 2x2 windows, stride 1, over the same input: each window holding x[1] or x[5] is NaN */
    rt_window g2;
    cr_assert(make_window(&g2, 1, 3, 3, (int64_t[]){2, 2}, (int64_t[]){1, 1}, (int64_t[]){0, 0}, (int64_t[]){1, 1}));
    float out[4], dx[9];
    rt_max_pool2d(x, out, 1, &g2, NULL);
    rt_max_pool2d_grad(x, (float[]){1, 10, 100, 1000}, dx, 1, &g2, NULL);
    expect_float("window (0,0)", out[0], NAN); /* 1 NaN 2 7 */
    expect_float("window (0,1)", out[1], NAN); /* NaN 5 7 NaN: the last NaN, x[5] */
    expect_float("window (1,0)", out[2], 9);   /* 2 7 9 3 */
    expect_float("window (1,1)", out[3], NAN); /* 7 NaN 3 4 */
    static const float want_dx[9] = {0, 1, 0, 0, 0, 1010, 100, 0, 0};
    for (int e = 0; e < 9; e++)
        expect_float("dx", dx[e], want_dx[e]);
    rt_pool_free(pool);
}

/* Nothing exceeds -inf, so the first position in bounds keeps the index; a window wholly in
 * the padding is -inf and takes no gradient. */
Test(window, max_pool_minus_infinity)
{
    float x[9], out[16], dx[9];
    for (int e = 0; e < 9; e++)
        x[e] = -INFINITY;
    rt_window g; /* 2x2 windows from (-1, -1): output (y, xo)'s first position (max(y-1,0), max(xo-1,0)) */
    cr_assert(make_window(&g, 1, 3, 3, (int64_t[]){2, 2}, (int64_t[]){1, 1}, (int64_t[]){1, 1}, (int64_t[]){1, 1}));
    cr_assert_eq(g.oh, 4);
    float dy[16];
    for (int o = 0; o < 16; o++)
        dy[o] = (float)(1 << o);
    rt_max_pool2d(x, out, 1, &g, NULL);
    rt_max_pool2d_grad(x, dy, dx, 1, &g, NULL);
    float want_dx[9] = {0};
    for (int y = 0; y < 4; y++)
        for (int xo = 0; xo < 4; xo++) {
            expect_float("all -inf", out[y * 4 + xo], -INFINITY);
            want_dx[(y > 0 ? y - 1 : 0) * 3 + (xo > 0 ? xo - 1 : 0)] += dy[y * 4 + xo];
        }
    for (int e = 0; e < 9; e++)
        expect_float("dx of all -inf", dx[e], want_dx[e]);

    /* 1x1 windows with padding 1: the border outputs see only padding */
    static const float ones[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    cr_assert(make_window(&g, 1, 3, 3, (int64_t[]){1, 1}, (int64_t[]){1, 1}, (int64_t[]){1, 1}, (int64_t[]){1, 1}));
    cr_assert_eq(g.oh * g.ow, 25);
    float out25[25], dy25[25];
    for (int o = 0; o < 25; o++)
        dy25[o] = 1;
    rt_max_pool2d(ones, out25, 1, &g, NULL);
    rt_max_pool2d_grad(ones, dy25, dx, 1, &g, NULL);
    for (int y = 0; y < 5; y++)
        for (int xo = 0; xo < 5; xo++) {
            bool inside = y >= 1 && y <= 3 && xo >= 1 && xo <= 3;
            expect_float("1x1 over padding", out25[y * 5 + xo], inside ? ones[(y - 1) * 3 + xo - 1] : -INFINITY);
        }
    for (int e = 0; e < 9; e++)
        expect_float("dx of 1x1", dx[e], 1);
}

/* ---- batch 0 ---- */

Test(window, batch_zero_touches_nothing)
{
    rt_window g;
    cr_assert(make_window(&g, 2, 5, 5, (int64_t[]){3, 3}, (int64_t[]){1, 1}, (int64_t[]){1, 1}, (int64_t[]){1, 1}));
    enum { N = 256 };
    float in[N], dy[N], out[N], before[N];
    fill_input(in, N, 5);
    fill_input(dy, N, 6);
    fill_sentinel(out, N);
    memcpy(before, out, sizeof out);
    rt_pool *pool = rt_pool_new(2);
    rt_pool *pools[2] = {NULL, pool};
    for (int t = 0; t < 2; t++) {
        rt_im2col(in, out, 0, &g, pools[t]);
        rt_col2im(in, out, 0, &g, pools[t]);
        rt_max_pool2d(in, out, 0, &g, pools[t]);
        rt_max_pool2d_grad(in, dy, out, 0, &g, pools[t]);
        rt_avg_pool2d(in, out, 0, &g, pools[t]);
        rt_avg_pool2d_grad(dy, out, 0, &g, pools[t]);
    }
    cr_expect(memcmp(out, before, sizeof out) == 0, "a call with batch 0 wrote its output");
    rt_pool_free(pool);
}

/* ---- convolutions: rt_conv2d and its gradients against their definitions in double ---- */

/* y (or dx, dw, by use) from the definition: every (sample, output channel, pixel, input
 * channel of its group, tap) meets once */
static void ref_conv(int use, const rt_window *g, int64_t batch, const float *x, const float *w, const float *dy,
                     double *r)
{
    int64_t G = g->groups, cg = g->c / G, og = g->o / G, L = g->oh * g->ow;
    for (int64_t n = 0; n < batch; n++)
        for (int64_t o = 0; o < g->o; o++)
            for (int64_t p = 0; p < L; p++)
                for (int64_t ci = 0; ci < cg; ci++)
                    for (int64_t i = 0; i < g->kh; i++)
                        for (int64_t j = 0; j < g->kw; j++) {
                            int64_t iy, ix;
                            if (!tap_at(g, p / g->ow, p % g->ow, i, j, &iy, &ix))
                                continue;
                            int64_t xi = ((n * g->c + o / og * cg + ci) * g->h + iy) * g->w + ix;
                            int64_t wi = ((o * cg + ci) * g->kh + i) * g->kw + j, yi = (n * g->o + o) * L + p;
                            if (use == 0)
                                r[yi] += (double)x[xi] * w[wi];
                            else if (use == 1)
                                r[xi] += (double)dy[yi] * w[wi];
                            else
                                r[wi] += (double)x[xi] * dy[yi];
                        }
}

static double rel_err(const float *got, const double *want, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t k = 0; k < n; k++)
        num += (got[k] - want[k]) * (got[k] - want[k]), den += want[k] * want[k];
    return sqrt(num / (den > 0 ? den : 1));
}

/* batches 1, 3, 9 and 11 (fewer and more samples than chunks, unevenly cut), groups 1 and 2,
 * stride, padding and dilation, small and large products: within f32 rounding of the
 * definition, and the same bits on a pool of 2 threads as inline; dw brings db along. */
Test(window, convolutions_match_their_definitions_for_any_thread_count)
{
    static const int64_t shapes[][10] = {
        /* c, h, w, o, groups, k, stride, pad, dilation, batch */
        {1, 9, 8, 3, 1, 3, 1, 1, 1, 1},
        {4, 7, 9, 6, 2, 3, 2, 2, 1, 3},
        {2, 11, 10, 4, 1, 2, 1, 0, 2, 11},
        {6, 6, 6, 4, 2, 5, 1, 2, 1, 11},
        {3, 12, 12, 5, 1, 1, 2, 0, 1, 3},
        {8, 40, 40, 16, 1, 5, 1, 2, 1, 9},  /* the direct path, planes of 44 x 44 */
        {16, 40, 40, 32, 1, 5, 2, 2, 1, 3}, /* products OpenBLAS threads: the chunks in turn, one columns */
        /* stride 1, small planes: the direct path (conv.c), its output blocks of 4, 2 and 1 */
        {1, 28, 28, 6, 1, 5, 1, 2, 1, 5},  /* LeNet's first convolution */
        {6, 14, 14, 16, 1, 5, 1, 0, 1, 9}, /* LeNet's second: dx's 6 channels as 4 + 2 */
        {3, 10, 9, 3, 3, 3, 1, 2, 2, 3},   /* depthwise, dilated, padded as far as the taps reach */
        {4, 5, 7, 3, 1, 2, 1, 1, 1, 2},    /* 3 outputs in a block of 4, even kernel */
        {2, 6, 6, 3, 1, 1, 1, 1, 1, 2},    /* padding past the taps' reach: columns */
        {48, 40, 40, 8, 1, 3, 1, 1, 1, 2}, /* planes too large for the direct path: columns */
        {64, 6, 6, 4, 1, 3, 1, 1, 1, 3},   /* y and dx direct, dw (576 taps) by the columns */
    };
    rt_pool *pool = rt_pool_new(2);
    cr_assert_not_null(pool);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t *v = shapes[s];
        int64_t k[2] = {v[5], v[5]}, st[2] = {v[6], v[6]}, p[2] = {v[7], v[7]}, d[2] = {v[8], v[8]}, B = v[9];
        rt_window g;
        cr_assert(make_window(&g, v[0], v[1], v[2], k, st, p, d));
        g.o = v[3], g.groups = v[4];
        int64_t nx = B * g.c * g.h * g.w, ny = B * g.o * g.oh * g.ow, nw = g.o * g.c / g.groups * g.kh * g.kw;
        float *x = alloc_f32(nx), *w = alloc_f32(nw), *dy = alloc_f32(ny), *ws = alloc_f32(rt_conv2d_workspace(&g));
        fill_input(x, nx, 7 + (uint32_t)s), fill_input(w, nw, 11 + (uint32_t)s), fill_input(dy, ny, 13 + (uint32_t)s);
        int64_t n[3] = {ny, nx, nw};
        double *dbwant = calloc((size_t)g.o, sizeof *dbwant);
        for (int64_t e = 0; e < ny; e++) /* db: dy summed over the samples and the plane */
            dbwant[e / (g.oh * g.ow) % g.o] += dy[e];
        for (int use = 0; use < 3; use++) {
            float *got[2] = {alloc_f32(n[use]), alloc_f32(n[use])};
            float *db[2] = {alloc_f32(g.o), alloc_f32(g.o)};
            double *want = calloc((size_t)n[use], sizeof *want);
            ref_conv(use, &g, B, x, w, dy, want);
            for (int t = 0; t < 2; t++) {
                fill_sentinel(got[t], n[use]);
                if (use == 0)
                    rt_conv2d(x, w, got[t], B, &g, ws, t ? pool : NULL);
                else if (use == 1)
                    rt_conv2d_input_grad(dy, w, got[t], B, &g, ws, t ? pool : NULL);
                else
                    rt_conv2d_weight_grad(x, dy, got[t], db[t], B, &g, ws, t ? pool : NULL);
            }
            double e = rel_err(got[0], want, n[use]);
            cr_expect(e < 1e-5, "shape %zu, %s: %g from the definition", s, use == 0 ? "y" : use == 1 ? "dx" : "dw", e);
            cr_expect(memcmp(got[0], got[1], sizeof(float) * (size_t)n[use]) == 0, "shape %zu, use %d: threads differ",
                      s, use);
            if (use == 2) {
                double eb = rel_err(db[0], dbwant, g.o);
                cr_expect(eb < 1e-5, "shape %zu, db: %g from the definition", s, eb);
                cr_expect(memcmp(db[0], db[1], sizeof(float) * (size_t)g.o) == 0, "shape %zu, db: threads differ", s);
            }
            free(got[0]), free(got[1]), free(db[0]), free(db[1]), free(want);
        }
        free(x), free(w), free(dy), free(ws), free(dbwant);
    }
    rt_pool_free(pool);
}

/* Which path each routine takes (runtime/conv.c, bench_conv_paths' figures): LeNet's
 * convolutions wholly direct; dw by the columns past 400 taps; strides, padding past the
 * taps' reach and planes past 65536 floats by the columns. */
Test(window, convolutions_take_the_direct_path_where_it_measured_faster)
{
    static const struct {
        int64_t c, h, o, k, stride, pad;
        bool y, dx, dw;
    } cases[] = {
        {1, 28, 6, 5, 1, 2, true, true, true},      {6, 14, 16, 5, 1, 0, true, true, true},
        {64, 8, 64, 3, 1, 1, true, true, false},    {128, 7, 128, 3, 1, 1, true, true, false},
        {16, 32, 16, 3, 2, 1, false, false, false}, {6, 14, 16, 1, 1, 1, false, false, false},
        {64, 32, 8, 3, 1, 1, false, false, false},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int64_t ks[2] = {cases[k].k, cases[k].k}, st[2] = {cases[k].stride, cases[k].stride},
                p[2] = {cases[k].pad, cases[k].pad}, d[2] = {1, 1};
        rt_window g;
        cr_assert(make_window(&g, cases[k].c, cases[k].h, cases[k].h, ks, st, p, d));
        g.o = cases[k].o, g.groups = 1;
        bool want[3] = {cases[k].y, cases[k].dx, cases[k].dw};
        for (int use = 0; use < 3; use++)
            cr_expect_eq(rt_conv2d_direct(&g, use), want[use], "case %zu, use %d: direct %d", k, use, !want[use]);
    }
}
