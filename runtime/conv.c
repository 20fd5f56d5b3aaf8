/* A convolution's products, sample by sample (window.h): each sample's columns are made in
 * the chunk's own part of the workspace and multiplied while they are in the cache. Against
 * one sgemm over the whole batch's columns (15 MB for LeNet's second convolution at batch
 * 256) this measured 3-10x faster for LeNet's shapes on 2 cores: the columns never reach
 * memory, and the small products stay in OpenBLAS's single-threaded path, so the chunks may
 * run on the pool's threads at once. Products of 2-4 samples' columns (400 wide for conv2)
 * were measured too: LeNet's step took 20.7-21.7 ms with them on the pool, 29.6 with
 * OpenBLAS threading each, against 17.5-19.6 ms one sample a product. */
#include <cblas.h>
#include <stdbool.h>
#include <string.h>

#include "window.h"

/* OpenBLAS 0.3's threshold under which it computes a product on the calling thread (65536 *
 * GEMM_MULTITHREAD_THRESHOLD 4): a larger one threads itself, so its chunks run in turn. */
#define SINGLE_THREADED_MNK 262144

typedef struct conv_job {
    const rt_window *g;
    const float *a, *b; /* x and w; dy and w; x and dy */
    float *out, *ws;
    int64_t batch, nchunks;
    int op; /* 0: y, 1: dx, 2: dw */
} conv_job;

static int64_t columns(const rt_window *g) { return g->c * g->kh * g->kw * g->oh * g->ow; }

/* Whether a sample's products stay on OpenBLAS's single thread: then the chunks run on the
 * pool, each with columns of its own; else in turn, sharing one. */
static bool on_the_pool(const rt_window *g)
{
    int64_t G = g->groups > 0 ? g->groups : 1;
    return g->o / G * (g->c / G * g->kh * g->kw) * g->oh * g->ow <= SINGLE_THREADED_MNK;
}

int64_t rt_conv2d_workspace(const rt_window *g)
{
    int64_t kg = g->c / (g->groups > 0 ? g->groups : 1) * g->kh * g->kw;
    return (on_the_pool(g) ? RT_CONV_CHUNKS : 1) * columns(g) + RT_CONV_CHUNKS * g->o * kg;
}

/* Chunk c's samples in order, its columns one sample's at a time (rt_im2col of batch 1) */
static void chunk(void *ctx, int64_t c, int64_t end)
{
    const conv_job *j = ctx;
    const rt_window *g = j->g;
    int64_t G = g->groups, L = g->oh * g->ow, plane = g->c * g->h * g->w, og = g->o / G, kg = g->c / G * g->kh * g->kw;
    for (; c < end; c++) {
        int64_t slots = on_the_pool(g) ? RT_CONV_CHUNKS : 1;
        float *cols = j->ws + (c % slots) * columns(g), *part = j->ws + slots * columns(g) + c * g->o * kg;
        int64_t n0 = c * j->batch / j->nchunks, n1 = (c + 1) * j->batch / j->nchunks;
        for (int64_t n = n0; n < n1; n++) {
            if (j->op != 1)
                rt_im2col(j->a + n * plane, cols, 1, g, NULL);
            for (int64_t k = 0; k < G; k++) {
                const float *wk = j->b + k * og * kg;
                float *ck = cols + k * kg * L;
                if (j->op == 0) /* y[n] = W cols */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)og, (int)L, (int)kg, 1, wk, (int)kg, ck,
                                (int)L, 0, j->out + (n * g->o + k * og) * L, (int)L);
                else if (j->op == 1) /* cols = W^T dy[n] */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kg, (int)L, (int)og, 1, wk, (int)kg,
                                j->a + (n * g->o + k * og) * L, (int)L, 0, ck, (int)L);
                else /* part += dy[n] cols^T */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)og, (int)kg, (int)L, 1,
                                j->b + (n * g->o + k * og) * L, (int)L, ck, (int)L, n > n0 ? 1 : 0, part + k * og * kg,
                                (int)kg);
            }
            if (j->op == 1)
                rt_col2im(cols, j->out + n * plane, 1, g, NULL);
        }
    }
}

static void run(int op, const float *a, const float *b, float *out, int64_t batch, const rt_window *g, float *ws,
                rt_pool *pool)
{
    int64_t G = g->groups, kg = g->c / G * g->kh * g->kw;
    conv_job j = {g, a, b, out, ws, batch, batch < RT_CONV_CHUNKS ? batch : RT_CONV_CHUNKS, op};
    if (j.nchunks > 0)
        rt_parallel_for(on_the_pool(g) ? pool : NULL, j.nchunks, 1, chunk, &j);
    if (op != 2)
        return;
    /* dw: the chunks' parts in order (no sample: zeros) */
    const float *parts = ws + (on_the_pool(g) ? RT_CONV_CHUNKS : 1) * columns(g);
    int64_t n = g->o * kg;
    if (j.nchunks == 0)
        memset(out, 0, sizeof *out * (size_t)n);
    else
        memcpy(out, parts, sizeof *out * (size_t)n);
    for (int64_t c = 1; c < j.nchunks; c++)
        for (int64_t e = 0; e < n; e++)
            out[e] += parts[c * n + e];
}

void rt_conv2d(const float *x, const float *w, float *y, int64_t batch, const rt_window *g, float *ws, rt_pool *pool)
{
    run(0, x, w, y, batch, g, ws, pool);
}

void rt_conv2d_input_grad(const float *dy, const float *w, float *dx, int64_t batch, const rt_window *g, float *ws,
                          rt_pool *pool)
{
    run(1, dy, w, dx, batch, g, ws, pool);
}

void rt_conv2d_weight_grad(const float *x, const float *dy, float *dw, int64_t batch, const rt_window *g, float *ws,
                           rt_pool *pool)
{
    run(2, x, dy, dw, batch, g, ws, pool);
}
