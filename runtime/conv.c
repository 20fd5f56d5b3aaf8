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
    float *db; /* dw's companion: the bias gradient, or NULL */
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

/* The workspace: the columns (a chunk's each, or one), then each chunk's part of dw and of
 * db. */
static int64_t slots(const rt_window *g) { return on_the_pool(g) ? RT_CONV_CHUNKS : 1; }

int64_t rt_conv2d_workspace(const rt_window *g)
{
    int64_t kg = g->c / (g->groups > 0 ? g->groups : 1) * g->kh * g->kw;
    return slots(g) * columns(g) + RT_CONV_CHUNKS * g->o * (kg + 1);
}

/* The sum of a plane in a fixed order that vectorizes: 16 running sums over the elements
 * by their index mod 16, then those in a tree (one running sum was a chain of dependent adds,
 * 1 ms of LeNet's step for the first convolution's bias gradient) */
static float plane_sum(const float *d, int64_t n)
{
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++)
            acc[k] += d[i + k];
    for (int k = 0; i < n; i++, k++)
        acc[k] += d[i];
    for (int w = 8; w >= 1; w /= 2)
        for (int k = 0; k < w; k++)
            acc[k] += acc[k + w];
    return acc[0];
}

/* Chunk c's samples in order, its columns one sample's at a time (rt_im2col of batch 1) */
static void chunk(void *ctx, int64_t c, int64_t end)
{
    const conv_job *j = ctx;
    const rt_window *g = j->g;
    int64_t G = g->groups, L = g->oh * g->ow, plane = g->c * g->h * g->w, og = g->o / G, kg = g->c / G * g->kh * g->kw;
    for (; c < end; c++) {
        float *parts = j->ws + slots(g) * columns(g);
        float *cols = j->ws + (c % slots(g)) * columns(g), *part = parts + c * g->o * kg;
        float *dbpart = parts + RT_CONV_CHUNKS * g->o * kg + c * g->o;
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
            if (j->op == 2 && j->db) /* db's part += the sample's plane sums */
                for (int64_t o = 0; o < g->o; o++) {
                    float s = plane_sum(j->b + (n * g->o + o) * L, L);
                    dbpart[o] = n > n0 ? dbpart[o] + s : s;
                }
        }
    }
}

/* out[e] = the sum of the chunks' parts[c*n + e] in chunk order (0 without a chunk) */
static void sum_parts(float *out, const float *parts, int64_t n, int64_t nchunks)
{
    if (nchunks == 0)
        memset(out, 0, sizeof *out * (size_t)n);
    else
        memcpy(out, parts, sizeof *out * (size_t)n);
    for (int64_t c = 1; c < nchunks; c++)
        for (int64_t e = 0; e < n; e++)
            out[e] += parts[c * n + e];
}

static void run(conv_job *j, rt_pool *pool)
{
    const rt_window *g = j->g;
    j->nchunks = j->batch < RT_CONV_CHUNKS ? j->batch : RT_CONV_CHUNKS;
    if (j->nchunks > 0)
        rt_parallel_for(on_the_pool(g) ? pool : NULL, j->nchunks, 1, chunk, j);
    if (j->op != 2)
        return;
    /* dw and db: the chunks' parts in order */
    int64_t kg = g->c / g->groups * g->kh * g->kw;
    const float *parts = j->ws + slots(g) * columns(g);
    sum_parts(j->out, parts, g->o * kg, j->nchunks);
    if (j->db)
        sum_parts(j->db, parts + RT_CONV_CHUNKS * g->o * kg, g->o, j->nchunks);
}

void rt_conv2d(const float *x, const float *w, float *y, int64_t batch, const rt_window *g, float *ws, rt_pool *pool)
{
    run(&(conv_job){g, x, w, y, ws, NULL, batch, 0, 0}, pool);
}

void rt_conv2d_input_grad(const float *dy, const float *w, float *dx, int64_t batch, const rt_window *g, float *ws,
                          rt_pool *pool)
{
    run(&(conv_job){g, dy, w, dx, ws, NULL, batch, 0, 1}, pool);
}

void rt_conv2d_weight_grad(const float *x, const float *dy, float *dw, float *db, int64_t batch, const rt_window *g,
                           float *ws, rt_pool *pool)
{
    run(&(conv_job){g, x, dy, dw, ws, db, batch, 0, 2}, pool);
}
