/* The runtime's ops (rt_ops.h): softmax rows, cross-entropy, argmax, cumsum, dropout.
 *
 * Bit for bit the interpreter's f32 mode (ir/interp.c: eval_row, eval_softmax_ce,
 * eval_argmax, eval_cumsum, eval_dropout): every value a float, every step rounded, sums in
 * order of j, expf and logf from libm. Where the order does not matter (x - m, e / s,
 * (p - 0) * d, the mask select) the loops are separate passes over contiguous memory that
 * the compiler vectorizes; the sums and the expf calls stay scalar, in order.
 *
 * A row's maximum is taken ignoring NaN (a select the compiler makes maxss), where the
 * interpreter lets a NaN win: the results are the same, since a NaN in a row makes its sum
 * of e^(x - m) NaN and with it every output of the row, whatever m is. Nor does the sign of
 * a zero maximum show: x - (+0) and x - (-0) differ only for x = -0, whose e^ is 1 either
 * way, and a log_softmax row with two zeros has log sum > 0. */
#include "rt_ops.h"

#include <math.h>
#include <string.h>

#include "rng.h"

/* inner > 1: this many inner elements side by side, so every pass along j reads
 * contiguous runs and keeps per-column state in small arrays. */
#define IB 64

static inline float row_max(const float *x, int64_t len)
{
    float m = -INFINITY;
    for (int64_t j = 0; j < len; j++) {
        float v = x[j];
        m = v > m ? v : m;
    }
    return m;
}

/* ---- softmax, log_softmax ---- */

/* One contiguous row: out = x - m, then e^ in place with the sum, then the last pass. */
static void softmax_row(const float *x, float *out, int64_t len, int log)
{
    float m = row_max(x, len), s = 0;
    for (int64_t j = 0; j < len; j++)
        out[j] = x[j] - m;
    if (log) {
        for (int64_t j = 0; j < len; j++)
            s += expf(out[j]);
        float ls = logf(s);
        for (int64_t j = 0; j < len; j++)
            out[j] = out[j] - ls;
        return;
    }
    for (int64_t j = 0; j < len; j++) {
        float e = expf(out[j]);
        out[j] = e;
        s += e;
    }
    for (int64_t j = 0; j < len; j++)
        out[j] = out[j] / s;
}

/* Columns [i0, i0+w) of one outer slab [len, inner]. */
static void softmax_cols(const float *x, float *out, int64_t len, int64_t inner, int64_t w, int log)
{
    float m[IB], s[IB];
    for (int64_t i = 0; i < w; i++)
        m[i] = -INFINITY, s[i] = 0;
    for (int64_t j = 0; j < len; j++) {
        const float *xj = x + j * inner;
        for (int64_t i = 0; i < w; i++) {
            float v = xj[i];
            m[i] = v > m[i] ? v : m[i];
        }
    }
    for (int64_t j = 0; j < len; j++) {
        const float *xj = x + j * inner;
        float *oj = out + j * inner;
        for (int64_t i = 0; i < w; i++)
            oj[i] = xj[i] - m[i];
    }
    for (int64_t j = 0; j < len; j++) {
        float *oj = out + j * inner;
        for (int64_t i = 0; i < w; i++) {
            float e = expf(oj[i]);
            if (!log)
                oj[i] = e;
            s[i] += e;
        }
    }
    if (log)
        for (int64_t i = 0; i < w; i++)
            s[i] = logf(s[i]);
    for (int64_t j = 0; j < len; j++) {
        float *oj = out + j * inner;
        if (log)
            for (int64_t i = 0; i < w; i++)
                oj[i] = oj[i] - s[i];
        else
            for (int64_t i = 0; i < w; i++)
                oj[i] = oj[i] / s[i];
    }
}

static void softmax_any(const float *x, float *out, int64_t outer, int64_t len, int64_t inner, int log)
{
    if (len <= 0 || inner <= 0)
        return;
    if (inner == 1) {
        for (int64_t o = 0; o < outer; o++)
            softmax_row(x + o * len, out + o * len, len, log);
        return;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i0 = 0; i0 < inner; i0 += IB) {
            int64_t at = o * len * inner + i0, w = inner - i0 < IB ? inner - i0 : IB;
            softmax_cols(x + at, out + at, len, inner, w, log);
        }
}

void rt_softmax(const float *x, float *out, int64_t outer, int64_t len, int64_t inner)
{
    softmax_any(x, out, outer, len, inner, 0);
}

void rt_log_softmax(const float *x, float *out, int64_t outer, int64_t len, int64_t inner)
{
    softmax_any(x, out, outer, len, inner, 1);
}

/* ---- cross-entropy ---- */

static inline int label_ok(int32_t label, int64_t classes) { return label >= 0 && (int64_t)label < classes; }

/* The row's maximum and sum of e^(x - m); e^(x - m) also into e when e is not NULL. */
static inline float ce_sum(const float *x, int64_t len, float *e, float *max)
{
    float m = row_max(x, len), s = 0;
    *max = m;
    if (e) {
        for (int64_t j = 0; j < len; j++)
            e[j] = x[j] - m;
        for (int64_t j = 0; j < len; j++) {
            float v = expf(e[j]);
            e[j] = v;
            s += v;
        }
    } else
        for (int64_t j = 0; j < len; j++)
            s += expf(x[j] - m);
    return s;
}

/* g holds e^(x - m); into it (e / s - (j == k)) * d. (p - 0) * d is p * d. */
static inline void ce_grad_row(float *g, int64_t len, int64_t k, float s, float d)
{
    float ek = g[k];
    for (int64_t j = 0; j < len; j++)
        g[j] = g[j] / s * d;
    g[k] = (ek / s - 1.0f) * d;
}

void rt_softmax_ce(const float *logits, const int32_t *labels, float *loss, int64_t rows, int64_t classes)
{
    rt_softmax_ce_both(logits, labels, 0, loss, NULL, rows, classes);
}

void rt_softmax_ce_grad(const float *logits, const int32_t *labels, const float *d, float *out, int64_t rows,
                        int64_t classes)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *x = logits + r * classes;
        float *g = out + r * classes, m;
        if (!label_ok(labels[r], classes)) {
            memset(g, 0, sizeof *g * (size_t)classes);
            continue;
        }
        float s = ce_sum(x, classes, g, &m);
        ce_grad_row(g, classes, labels[r], s, d[r]);
    }
}

void rt_softmax_ce_both(const float *logits, const int32_t *labels, float d_scale, float *loss, float *grad,
                        int64_t rows, int64_t classes)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *x = logits + r * classes;
        float *g = grad ? grad + r * classes : NULL, m;
        int32_t k = labels[r];
        if (!label_ok(k, classes)) {
            if (loss)
                loss[r] = 0;
            if (g)
                memset(g, 0, sizeof *g * (size_t)classes);
            continue;
        }
        float s = ce_sum(x, classes, g, &m);
        if (loss)
            loss[r] = logf(s) - (x[k] - m);
        if (g)
            ce_grad_row(g, classes, k, s, d_scale);
    }
}

/* ---- argmax ---- */

/* The first maximum; a NaN, once met, is the answer (NaN never compares greater). */
static int32_t argmax_row(const float *x, int64_t len)
{
    float best = x[0];
    int32_t k = 0;
    if (best != best)
        return 0;
    for (int64_t j = 1; j < len; j++) {
        float v = x[j];
        if (v != v)
            return (int32_t)j;
        if (v > best)
            best = v, k = (int32_t)j;
    }
    return k;
}

void rt_argmax(const float *x, int32_t *out, int64_t outer, int64_t len, int64_t inner)
{
    if (len <= 0)
        return;
    if (inner == 1) {
        for (int64_t o = 0; o < outer; o++)
            out[o] = argmax_row(x + o * len, len);
        return;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i0 = 0; i0 < inner; i0 += IB) {
            int64_t w = inner - i0 < IB ? inner - i0 : IB;
            const float *xs = x + o * len * inner + i0;
            int32_t *os = out + o * inner + i0;
            float best[IB];
            for (int64_t i = 0; i < w; i++)
                best[i] = xs[i], os[i] = 0;
            for (int64_t j = 1; j < len; j++) {
                const float *xj = xs + j * inner;
                for (int64_t i = 0; i < w; i++) {
                    float v = xj[i], b = best[i];
                    /* b == b: a column whose answer is a NaN is settled */
                    if (b == b && (v > b || v != v))
                        best[i] = v, os[i] = (int32_t)j;
                }
            }
        }
}

void rt_argmax_i32(const int32_t *x, int32_t *out, int64_t outer, int64_t len, int64_t inner)
{
    if (len <= 0)
        return;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i0 = 0; i0 < inner; i0 += IB) {
            int64_t w = inner - i0 < IB ? inner - i0 : IB;
            const int32_t *xs = x + o * len * inner + i0;
            int32_t *os = out + o * inner + i0;
            int32_t best[IB];
            for (int64_t i = 0; i < w; i++)
                best[i] = xs[i], os[i] = 0;
            for (int64_t j = 1; j < len; j++) {
                const int32_t *xj = xs + j * inner;
                for (int64_t i = 0; i < w; i++)
                    if (xj[i] > best[i])
                        best[i] = xj[i], os[i] = (int32_t)j;
            }
        }
}

/* ---- cumsum ---- */

void rt_cumsum_f32(const float *x, float *out, int64_t outer, int64_t len, int64_t inner)
{
    if (inner == 1) {
        for (int64_t o = 0; o < outer; o++) {
            float acc = 0;
            for (int64_t j = o * len; j < (o + 1) * len; j++)
                out[j] = acc += x[j];
        }
        return;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i0 = 0; i0 < inner; i0 += IB) {
            int64_t w = inner - i0 < IB ? inner - i0 : IB;
            float acc[IB] = {0};
            for (int64_t j = 0; j < len; j++) {
                int64_t at = (o * len + j) * inner + i0;
                for (int64_t i = 0; i < w; i++)
                    out[at + i] = acc[i] += x[at + i];
            }
        }
}

static inline int32_t sat32(int64_t v) { return v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : (int32_t)v; }

void rt_cumsum_i32(const int32_t *x, int32_t *out, int64_t outer, int64_t len, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i0 = 0; i0 < inner; i0 += IB) {
            int64_t w = inner - i0 < IB ? inner - i0 : IB;
            int64_t acc[IB] = {0};
            for (int64_t j = 0; j < len; j++) {
                int64_t at = (o * len + j) * inner + i0;
                for (int64_t i = 0; i < w; i++)
                    out[at + i] = sat32(acc[i] += x[at + i]);
            }
        }
}

/* ---- dropout ---- */

void rt_dropout(const float *x, float *out, int64_t n, double p, uint32_t seed, uint32_t site, uint64_t step,
                int64_t first)
{
    if (n <= 0)
        return;
    if (p >= 1) {
        memset(out, 0, sizeof *out * (size_t)n);
        return;
    }
    uint64_t threshold = rt_dropout_threshold(p);
    float scale = (float)(1 / (1 - p)); /* the interpreter's rnd(single, 1 / (1 - p)) */
    uint8_t keep[4096];
    for (int64_t k0 = 0; k0 < n; k0 += (int64_t)sizeof keep) {
        int64_t m = n - k0 < (int64_t)sizeof keep ? n - k0 : (int64_t)sizeof keep;
        rt_dropout_mask(seed, site, step, (uint64_t)(first + k0), (uint64_t)m, threshold, keep);
        const float *xs = x + k0;
        float *os = out + k0;
        /* keep ? v : +0 as a bit mask, which vectorizes where the select does not */
        for (int64_t k = 0; k < m; k++) {
            float v = xs[k] * scale;
            uint32_t bits;
            memcpy(&bits, &v, sizeof bits);
            bits &= -(uint32_t)keep[k];
            memcpy(&os[k], &bits, sizeof bits);
        }
    }
}
