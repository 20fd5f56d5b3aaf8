/* The 2-D window routines (window.h): im2col, col2im, max and average pooling and their
 * gradients.
 *
 * Each call is a loop over the planes (n, ci), each plane written by one thread: im2col's
 * plane is its own block of columns in each of the plane's kh*kw rows, and every other
 * routine's plane is its own slice of the output. So a split over threads changes no sum's
 * order, and the chunking (rt_parallel_for's grain) depends on the geometry alone.
 *
 * Padding is never tested per element: along each axis the outputs whose window lies wholly
 * inside the input are one run (`axis.full`), where every tap is in bounds, and elsewhere
 * the taps in bounds are one run too (`taps`), found by two divisions. */
#include "window.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* About this many steps of work a chunk of planes, so that small calls run inline and the
 * chunks of big ones are worth a thread's wake-up. */
#define CHUNK_WORK 32768

typedef struct span {
    int64_t lo, hi; /* [lo, hi), lo == hi when empty */
} span;

/* The o in [0, n) with o*step + off in [0, len): one run, since step >= 1. */
static span in_bounds(int64_t n, int64_t off, int64_t step, int64_t len)
{
    int64_t lo = off >= 0 ? 0 : (-off + step - 1) / step;
    int64_t hi = len - 1 - off < 0 ? 0 : (len - 1 - off) / step + 1;
    if (hi > n)
        hi = n;
    if (lo > hi)
        lo = hi;
    return (span){lo, hi};
}

/* One axis of the geometry: output o's tap t reads input o*stride - pad + t*dil. */
typedef struct axis {
    int64_t k, stride, pad, dil, len;
    span full; /* the outputs whose k taps are all in bounds */
} axis;

static axis axis_of(int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t len, int64_t out)
{
    axis a = {k, stride, pad, dil, len, {0, 0}};
    a.full = in_bounds(out, -pad, stride, len - (k - 1) * dil);
    return a;
}

/* The taps of output o that are in bounds. */
static inline span taps(const axis *a, int64_t o)
{
    if (o >= a->full.lo && o < a->full.hi)
        return (span){0, a->k};
    return in_bounds(a->k, o * a->stride - a->pad, a->dil, a->len);
}

/* ---- the planes, split over the pool ---- */

typedef struct job job;
typedef void plane_fn(const job *jb, int64_t n, int64_t ci);

struct job {
    plane_fn *plane;
    const rt_window *g;
    axis ay, ax;
    const float *in, *dy; /* in: x, or cols for col2im, NULL for avg_pool2d_grad; dy: NULL but for the gradients */
    float *out;
    int64_t batch;
};

static void run_planes(void *ctx, int64_t begin, int64_t end)
{
    const job *jb = ctx;
    for (int64_t p = begin; p < end; p++)
        jb->plane(jb, p / jb->g->c, p % jb->g->c);
}

/* Runs plane(n, ci) for every plane; `work`: a plane's steps, for the grain. */
static void run(plane_fn *plane, const rt_window *g, const float *in, const float *dy, float *out, int64_t batch,
                int64_t work, rt_pool *pool)
{
    if (batch <= 0 || g->c <= 0)
        return;
    job jb = {plane,
              g,
              axis_of(g->kh, g->sh, g->ph, g->dh, g->h, g->oh),
              axis_of(g->kw, g->sw, g->pw, g->dw, g->w, g->ow),
              in,
              dy,
              out,
              batch};
    int64_t grain = work >= CHUNK_WORK ? 1 : CHUNK_WORK / (work > 0 ? work : 1);
    rt_parallel_for(pool, batch * g->c, grain, run_planes, &jb);
}

/* ---- im2col, col2im ---- */

/* Rows (ci, i, j) of cols, the columns of sample n. The rows are short (LeNet's conv2: 10
 * floats), so plain loops, which the compiler unrolls and vectorizes, not memcpy and memset
 * calls: conv2's 256 samples, one at a time, took 3.9 ms with them, 1.5 without. */
static void im2col_plane(const job *jb, int64_t n, int64_t ci)
{
    const rt_window *g = jb->g;
    const float *restrict xp = jb->in + (n * g->c + ci) * g->h * g->w;
    int64_t ncols = jb->batch * g->oh * g->ow, ow = g->ow, sw = g->sw;
    for (int64_t i = 0; i < g->kh; i++) {
        span ys = in_bounds(g->oh, i * g->dh - g->ph, g->sh, g->h);
        for (int64_t j = 0; j < g->kw; j++) {
            int64_t off = j * g->dw - g->pw; /* input column of output column 0 */
            span xs = in_bounds(ow, off, sw, g->w);
            float *restrict row = jb->out + ((ci * g->kh + i) * g->kw + j) * ncols + n * g->oh * ow;
            for (int64_t e = 0; e < ys.lo * ow; e++)
                row[e] = 0;
            for (int64_t y = ys.lo; y < ys.hi; y++) {
                int64_t at = (y * g->sh + i * g->dh - g->ph) * g->w + off; /* + xo*sw: x's index */
                float *restrict dst = row + y * ow;
                for (int64_t xo = 0; xo < xs.lo; xo++)
                    dst[xo] = 0;
                if (sw == 1)
                    for (int64_t xo = xs.lo; xo < xs.hi; xo++)
                        dst[xo] = xp[at + xo];
                else
                    for (int64_t xo = xs.lo; xo < xs.hi; xo++)
                        dst[xo] = xp[at + xo * sw];
                for (int64_t xo = xs.hi; xo < ow; xo++)
                    dst[xo] = 0;
            }
            for (int64_t e = ys.hi * ow; e < g->oh * ow; e++)
                row[e] = 0;
        }
    }
}

static void col2im_plane(const job *jb, int64_t n, int64_t ci)
{
    const rt_window *g = jb->g;
    float *xp = jb->out + (n * g->c + ci) * g->h * g->w;
    int64_t ncols = jb->batch * g->oh * g->ow, ow = g->ow;
    memset(xp, 0, sizeof *xp * (size_t)(g->h * g->w));
    for (int64_t i = 0; i < g->kh; i++) {
        span ys = in_bounds(g->oh, i * g->dh - g->ph, g->sh, g->h);
        for (int64_t j = 0; j < g->kw; j++) {
            int64_t off = j * g->dw - g->pw;
            span xs = in_bounds(ow, off, g->sw, g->w);
            if (xs.lo == xs.hi)
                continue; /* (and dst below would point outside x) */
            const float *row = jb->in + ((ci * g->kh + i) * g->kw + j) * ncols + n * g->oh * ow;
            int64_t sw = g->sw, len = xs.hi - xs.lo;
            for (int64_t y = ys.lo; y < ys.hi; y++) {
                /* x and cols never overlap: restrict lets the short rows vectorize */
                float *restrict dst = xp + (y * g->sh + i * g->dh - g->ph) * g->w + off + xs.lo * sw;
                const float *restrict src = row + y * ow + xs.lo;
                if (sw == 1)
                    for (int64_t t = 0; t < len; t++)
                        dst[t] += src[t];
                else
                    for (int64_t t = 0; t < len; t++)
                        dst[t * sw] += src[t];
            }
        }
    }
}

void rt_im2col(const float *x, float *cols, int64_t batch, const rt_window *g, rt_pool *pool)
{
    run(im2col_plane, g, x, NULL, cols, batch, g->kh * g->kw * g->oh * g->ow, pool);
}

void rt_col2im(const float *cols, float *x, int64_t batch, const rt_window *g, rt_pool *pool)
{
    run(col2im_plane, g, cols, NULL, x, batch, g->kh * g->kw * g->oh * g->ow + g->h * g->w, pool);
}

/* ---- max pooling ---- */

/* The 2x2 undilated windows wholly inside the input (LeNet's pooling): their four taps read
 * in the order i, j, as the general loops read them, without finding the bounds; 2x the rate
 * of the general loops. */
static bool small_window(const rt_window *g) { return g->kh == 2 && g->kw == 2 && g->dh == 1 && g->dw == 1; }

/* The outputs [lo, hi) of row y whose 2x2 windows lie inside the input: the fast span
 * (average pooling runs it as a loop of its own, without a test) */
static void fast_span(const job *jb, int64_t y, int64_t *lo, int64_t *hi)
{
    const rt_window *g = jb->g;
    bool fast = small_window(g) && y >= jb->ay.full.lo && y < jb->ay.full.hi;
    *lo = fast ? jb->ax.full.lo : 0;
    *hi = fast ? jb->ax.full.hi : 0;
    *hi = *hi > *lo ? *hi : *lo;
}

/* window_argmax of such a window, its tap (0, 0) at offset at. Without branches: a
 * maximum's comparisons follow the data, which mispredicted every few windows (the pooling
 * routines ran at 2.5-4.9 GB/s on LeNet's ReLU network). The first tap always replaces the
 * starting -inf (when it is -inf, so is the maximum, at the same place). */
static inline int64_t argmax_2x2(const float *xp, int64_t w, int64_t at, float *max)
{
    const int64_t pos[4] = {at, at + 1, at + w, at + w + 1};
    float m = xp[at];
    int64_t best = at;
    for (int t = 1; t < 4; t++) { /* by masks: GCC made branches of the ?: forms */
        float v = xp[pos[t]];
        uint32_t take = (uint32_t)((v > m) | (v != v)), mb, vb;
        memcpy(&mb, &m, sizeof mb), memcpy(&vb, &v, sizeof vb);
        mb = (mb & (take - 1)) | (vb & -take);
        memcpy(&m, &mb, sizeof m);
        best = (best & ((int64_t)take - 1)) | (pos[t] & -(int64_t)take);
    }
    *max = m;
    return best;
}

/* The offset in its plane of the window's maximum by PyTorch's rule (window.h), -1 when the
 * window is wholly padding; its value in *max. (y0, x0): the input position of tap (0, 0). */
static inline int64_t window_argmax(const float *xp, int64_t w, int64_t y0, int64_t x0, int64_t dh, int64_t dw, span is,
                                    span js, float *max)
{
    float m = -INFINITY;
    int64_t at = -1;
    if (is.lo < is.hi && js.lo < js.hi)
        at = (y0 + is.lo * dh) * w + x0 + js.lo * dw;
    for (int64_t i = is.lo; i < is.hi; i++) {
        int64_t r = (y0 + i * dh) * w + x0;
        for (int64_t j = js.lo; j < js.hi; j++) {
            float v = xp[r + j * dw];
            if (v > m || isnan(v)) {
                m = v;
                at = r + j * dw;
            }
        }
    }
    *max = m;
    return at;
}

static void max_pool_plane(const job *jb, int64_t n, int64_t ci)
{
    const rt_window *g = jb->g;
    int64_t p = n * g->c + ci;
    const float *xp = jb->in + p * g->h * g->w;
    float *op = jb->out + p * g->oh * g->ow;
    for (int64_t y = 0; y < g->oh; y++) {
        span is = taps(&jb->ay, y);
        int64_t lo, hi;
        fast_span(jb, y, &lo, &hi);
        int64_t y0 = y * g->sh - g->ph;
        for (int64_t xo = 0; xo < g->ow; xo++) {
            if (xo == lo) /* the fast span, as a loop of its own */
                for (; xo < hi; xo++)
                    argmax_2x2(xp, g->w, y0 * g->w + xo * g->sw - g->pw, &op[y * g->ow + xo]);
            if (xo < g->ow)
                window_argmax(xp, g->w, y0, xo * g->sw - g->pw, g->dh, g->dw, is, taps(&jb->ax, xo),
                              &op[y * g->ow + xo]);
        }
    }
}

static void max_pool_grad_plane(const job *jb, int64_t n, int64_t ci)
{
    const rt_window *g = jb->g;
    int64_t p = n * g->c + ci;
    const float *xp = jb->in + p * g->h * g->w, *dyp = jb->dy + p * g->oh * g->ow;
    float *dxp = jb->out + p * g->h * g->w;
    memset(dxp, 0, sizeof *dxp * (size_t)(g->h * g->w));
    for (int64_t y = 0; y < g->oh; y++) {
        span is = taps(&jb->ay, y);
        int64_t lo, hi;
        fast_span(jb, y, &lo, &hi);
        int64_t y0 = y * g->sh - g->ph;
        for (int64_t xo = 0; xo < g->ow; xo++) {
            float m;
            if (xo == lo) /* the fast span, as a loop of its own */
                for (; xo < hi; xo++)
                    dxp[argmax_2x2(xp, g->w, y0 * g->w + xo * g->sw - g->pw, &m)] += dyp[y * g->ow + xo];
            if (xo >= g->ow)
                break;
            int64_t at = window_argmax(xp, g->w, y0, xo * g->sw - g->pw, g->dh, g->dw, is, taps(&jb->ax, xo), &m);
            if (at >= 0)
                dxp[at] += dyp[y * g->ow + xo];
        }
    }
}

void rt_max_pool2d(const float *x, float *out, int64_t batch, const rt_window *g, rt_pool *pool)
{
    run(max_pool_plane, g, x, NULL, out, batch, g->kh * g->kw * g->oh * g->ow, pool);
}

void rt_max_pool2d_grad(const float *x, const float *dy, float *dx, int64_t batch, const rt_window *g, rt_pool *pool)
{
    run(max_pool_grad_plane, g, x, dy, dx, batch, g->kh * g->kw * g->oh * g->ow + g->h * g->w, pool);
}

/* ---- average pooling ---- */

/* The divisor of a window's sum: a multiplication by 1/k where k is a power of two (x / k
 * and x * (1/k) are then the same correctly rounded value, bit for bit), else the division;
 * a division per output had been most of the pooling's time. */
typedef struct divisor {
    float k, inv;
    bool exact;
} divisor;

static divisor divisor_of(int64_t k) { return (divisor){(float)k, 1.0f / (float)k, k > 0 && (k & (k - 1)) == 0}; }

static inline float divide(float s, divisor d) { return d.exact ? s * d.inv : s / d.k; }

/* Output xo of row y (its window's rows is, tap (0, 0) at row y0), any window */
static inline float avg_out(const job *jb, const float *xp, int64_t y0, span is, int64_t xo, divisor d)
{
    const rt_window *g = jb->g;
    int64_t x0 = xo * g->sw - g->pw;
    span js = taps(&jb->ax, xo);
    float s = 0.0f;
    for (int64_t i = is.lo; i < is.hi; i++) {
        int64_t r = (y0 + i * g->dh) * g->w + x0;
        for (int64_t j = js.lo; j < js.hi; j++)
            s += xp[r + j * g->dw];
    }
    return divide(s, d);
}

static void avg_pool_plane(const job *jb, int64_t n, int64_t ci)
{
    const rt_window *g = jb->g;
    int64_t p = n * g->c + ci;
    const float *xp = jb->in + p * g->h * g->w;
    float *op = jb->out + p * g->oh * g->ow;
    divisor d = divisor_of(g->kh * g->kw);
    for (int64_t y = 0; y < g->oh; y++) {
        span is = taps(&jb->ay, y);
        int64_t y0 = y * g->sh - g->ph, lo, hi;
        fast_span(jb, y, &lo, &hi);
        for (int64_t xo = 0; xo < lo; xo++)
            op[y * g->ow + xo] = avg_out(jb, xp, y0, is, xo, d);
        for (int64_t xo = lo; xo < hi; xo++) {
            const float *r = xp + y0 * g->w + xo * g->sw - g->pw;
            op[y * g->ow + xo] = divide((((0.0f + r[0]) + r[1]) + r[g->w]) + r[g->w + 1], d);
        }
        for (int64_t xo = hi; xo < g->ow; xo++)
            op[y * g->ow + xo] = avg_out(jb, xp, y0, is, xo, d);
    }
}

/* dx += output xo's share q over its window (rows is, tap (0, 0) at row y0), any window */
static inline void avg_share(const job *jb, float *dxp, int64_t y0, span is, int64_t xo, float q)
{
    const rt_window *g = jb->g;
    int64_t x0 = xo * g->sw - g->pw;
    span js = taps(&jb->ax, xo);
    for (int64_t i = is.lo; i < is.hi; i++) {
        int64_t r = (y0 + i * g->dh) * g->w + x0;
        for (int64_t j = js.lo; j < js.hi; j++)
            dxp[r + j * g->dw] += q;
    }
}

/* The outputs in ascending order, as the CUDA kernel gathers them: windows that overlap add
 * into an element in that order */
static void avg_pool_grad_plane(const job *jb, int64_t n, int64_t ci)
{
    const rt_window *g = jb->g;
    int64_t p = n * g->c + ci;
    const float *dyp = jb->dy + p * g->oh * g->ow;
    float *dxp = jb->out + p * g->h * g->w;
    divisor d = divisor_of(g->kh * g->kw);
    memset(dxp, 0, sizeof *dxp * (size_t)(g->h * g->w));
    for (int64_t y = 0; y < g->oh; y++) {
        span is = taps(&jb->ay, y);
        int64_t y0 = y * g->sh - g->ph, lo, hi;
        fast_span(jb, y, &lo, &hi);
        for (int64_t xo = 0; xo < lo; xo++)
            avg_share(jb, dxp, y0, is, xo, divide(dyp[y * g->ow + xo], d));
        for (int64_t xo = lo; xo < hi; xo++) {
            float q = divide(dyp[y * g->ow + xo], d), *r = dxp + y0 * g->w + xo * g->sw - g->pw;
            r[0] += q, r[1] += q, r[g->w] += q, r[g->w + 1] += q;
        }
        for (int64_t xo = hi; xo < g->ow; xo++)
            avg_share(jb, dxp, y0, is, xo, divide(dyp[y * g->ow + xo], d));
    }
}

void rt_avg_pool2d(const float *x, float *out, int64_t batch, const rt_window *g, rt_pool *pool)
{
    run(avg_pool_plane, g, x, NULL, out, batch, g->kh * g->kw * g->oh * g->ow, pool);
}

void rt_avg_pool2d_grad(const float *dy, float *dx, int64_t batch, const rt_window *g, rt_pool *pool)
{
    run(avg_pool_grad_plane, g, NULL, dy, dx, batch, g->kh * g->kw * g->oh * g->ow + g->h * g->w, pool);
}
