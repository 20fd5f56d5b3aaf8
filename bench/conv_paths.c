/* The convolution routines (runtime/conv.c) on a table of shapes, by both paths: rt_conv2d,
 * its input and its weight gradient as the runtime has them (the direct path where it
 * applies), and the same with the direct path off (conv_columns.c: im2col and sgemm),
 * alternating call by call so that both meet the same machine; the median of R calls of
 * each at batch B on a pool of T threads, and columns / direct (above 1: direct wins). The
 * figures behind conv.c's choice (bench/README.md).
 *
 *     bench_conv_paths [--threads T] [--batch B] [--rounds R] */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"
#include "window.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* conv_columns.c's */
void columns_conv2d(const float *x, const float *w, float *y, int64_t batch, const rt_window *g, float *ws,
                    rt_pool *pool);
void columns_conv2d_input_grad(const float *dy, const float *w, float *dx, int64_t batch, const rt_window *g, float *ws,
                               rt_pool *pool);
void columns_conv2d_weight_grad(const float *x, const float *dy, float *dw, float *db, int64_t batch,
                                const rt_window *g, float *ws, rt_pool *pool);
int64_t columns_conv2d_workspace(const rt_window *g);

/* one call of routine use (0 y, 1 dx, 2 dw) by path p (0 direct where it applies, 1 columns) */
static double timed(int p, int use, const rt_window *g, int batch, float *x, float *w, float *dy, float *out, float *dw,
                    float *db, float *ws, rt_pool *pool)
{
    double t0 = now();
    if (use == 0)
        (p ? columns_conv2d : rt_conv2d)(x, w, out, batch, g, ws, pool);
    else if (use == 1)
        (p ? columns_conv2d_input_grad : rt_conv2d_input_grad)(dy, w, out, batch, g, ws, pool);
    else
        (p ? columns_conv2d_weight_grad : rt_conv2d_weight_grad)(x, dy, dw, db, batch, g, ws, pool);
    return now() - t0;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *filled(int64_t n, uint32_t seed)
{
    float *p = malloc(sizeof *p * (size_t)(n > 0 ? n : 1));
    for (int64_t k = 0; k < n; k++) {
        seed = seed * 1664525u + 1013904223u;
        p[k] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

int main(int argc, char **argv)
{
    int threads = 2, batch = 256, rounds = 7;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--threads") && a + 1 < argc)
            threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--batch") && a + 1 < argc)
            batch = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--rounds") && a + 1 < argc)
            rounds = atoi(argv[++a]);
        else {
            bool help = !strcmp(argv[a], "--help");
            fprintf(help ? stdout : stderr, "usage: %s [--threads T] [--batch B] [--rounds R]\n", argv[0]);
            return help ? 0 : 2;
        }
    }
    static const int64_t shapes[][6] = {
        /* c, h (= w), o, k, stride, pad */
        {1, 28, 6, 5, 1, 2},   {6, 14, 16, 5, 1, 0},   {3, 32, 16, 3, 1, 1},  {16, 32, 32, 3, 1, 1},
        {32, 16, 64, 3, 1, 1}, {64, 8, 64, 3, 1, 1},   {16, 28, 16, 5, 1, 2}, {32, 24, 32, 3, 1, 1},
        {64, 14, 64, 3, 1, 1}, {128, 7, 128, 3, 1, 1},
    };
    rt_pool *pool = rt_pool_new(threads);
    printf("batch %d, %d threads, ms a call (median of %d each, the paths alternating)\n", batch, threads, rounds);
    printf("%-18s %-3s %9s %9s %7s  %s\n", "c h o k s p", "use", "direct", "columns", "ratio", "path taken");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t *v = shapes[s];
        int64_t oh = (v[1] + 2 * v[5] - v[3]) / v[4] + 1;
        rt_window g = {v[0], v[1], v[1], oh, oh, v[3], v[3], v[4], v[4], v[5], v[5], 1, 1, v[2], 1};
        int64_t nx = batch * g.c * g.h * g.w, ny = batch * g.o * oh * oh, nw = g.o * g.c * g.kh * g.kw;
        int64_t nws = rt_conv2d_workspace(&g) > columns_conv2d_workspace(&g) ? rt_conv2d_workspace(&g)
                                                                             : columns_conv2d_workspace(&g);
        float *x = filled(nx, 1), *w = filled(nw, 2), *dy = filled(ny, 3), *out = filled(nx > ny ? nx : ny, 4);
        float *ws = filled(nws, 5), *db = filled(g.o, 6), *dw = filled(nw, 7);
        for (int use = 0; use < 3; use++) {
            double *t[2] = {malloc(sizeof(double) * (size_t)rounds), malloc(sizeof(double) * (size_t)rounds)};
            for (int r = 0; r < rounds; r++)
                for (int p = 0; p < 2; p++)
                    t[p][r] = timed((r + p) % 2, use, &g, batch, x, w, dy, out, dw, db, ws, pool);
            for (int r = 0; r < rounds; r++) /* t[p] held path (r + p) % 2: sort them back */
                if (r % 2) {
                    double tmp = t[0][r];
                    t[0][r] = t[1][r], t[1][r] = tmp;
                }
            qsort(t[0], (size_t)rounds, sizeof(double), cmp);
            qsort(t[1], (size_t)rounds, sizeof(double), cmp);
            double d = 1e3 * t[0][rounds / 2], c = 1e3 * t[1][rounds / 2];
            printf("%3lld %3lld %3lld %lld %lld %lld   %-3s %9.3f %9.3f %7.2f  %s\n", (long long)v[0], (long long)v[1],
                   (long long)v[2], (long long)v[3], (long long)v[4], (long long)v[5],
                   use == 0   ? "y"
                   : use == 1 ? "dx"
                              : "dw",
                   d, c, c / d, rt_conv2d_direct(&g, use) ? "direct" : "columns");
            free(t[0]), free(t[1]);
        }
        free(x), free(w), free(dy), free(out), free(ws), free(db), free(dw);
    }
    rt_pool_free(pool);
    return 0;
}
