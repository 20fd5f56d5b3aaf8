/* The reference interpreter (see interp.h).
 *
 * Elementwise ops come from the op table: each EW row expands here into two loops of its
 * scalar expression, one in float (f32 mode, all values f32) and one in double (f64 mode, or
 * any i32, u8 or bool value), so a new row needs no change in this file. The other ops are
 * one function each, computing in double; in f32 mode they round each step to float with
 * rnd(), which gives float arithmetic exactly (double holds more than 2*24+2 bits, so the
 * double rounding of + - * / is innocuous) and cannot be fused into an FMA by the compiler.
 *
 * Build note: the float loops are plain C, so build this file with -ffp-contract=off where
 * the target has FMA, or gcc may fuse a*b+c in a future row.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "fail.h"
#include "interp.h"
#include "rng.h"
#include "scalar.h"

#define R IR_MAX_RANK

/* ---- tensors ---- */

ag_dtype ir_storage_dtype(ag_dtype t, bool f64) { return t == AG_F32 && f64 ? AG_F64 : t; }

ir_shape ir_bind_shape(const ir_shape *s, int64_t batch)
{
    ir_shape r = *s;
    for (int i = 0; i < r.rank && i < R; i++)
        if (r.dim[i] == AG_N)
            r.dim[i] = batch;
    return r;
}

/* Elements of a concrete shape, or -1 if a dim is not positive or the bytes would not fit
 * in a ptrdiff_t, so every offset computed later fits in int64_t. */
static int64_t numel_checked(const ir_shape *s, size_t esz)
{
    if (s->rank < 0 || s->rank > R)
        return -1;
    int64_t n = 1, cap = PTRDIFF_MAX / (int64_t)esz;
    for (int i = 0; i < s->rank; i++) {
        if (s->dim[i] < 1 || n > cap / s->dim[i])
            return -1;
        n *= s->dim[i];
    }
    return n;
}

ir_tensor ir_tensor_new(ag_dtype dtype, const ir_shape *concrete)
{
    ir_tensor t = {dtype, *concrete, NULL};
    if ((unsigned)dtype >= AG_DTYPE_COUNT)
        return t;
    int64_t n = numel_checked(concrete, ir_dtype_size(dtype));
    if (n >= 0)
        t.data = calloc((size_t)n, ir_dtype_size(dtype));
    return t;
}

void ir_tensor_free(ir_tensor *t)
{
    free(t->data);
    t->data = NULL;
}

int64_t ir_tensor_numel(const ir_tensor *t) { return ir_numel(&t->shape, 1); }

static inline double get(const ir_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case AG_F32: return ((const float *)t->data)[i];
    case AG_F64: return ((const double *)t->data)[i];
    case AG_I32: return ((const int32_t *)t->data)[i];
    case AG_U8: return ((const uint8_t *)t->data)[i];
    case AG_BOOL: return ((const uint8_t *)t->data)[i] != 0;
    case AG_DTYPE_COUNT: break;
    }
    assert(!"get: bad dtype");
    return 0;
}

/* The conversions are written out so that no NaN, infinity or huge value reaches a C
 * float-to-integer conversion, whose result would be undefined. */
static inline void put(ir_tensor *t, int64_t i, double v)
{
    switch (t->dtype) {
    case AG_F32: ((float *)t->data)[i] = (float)v; return;
    case AG_F64: ((double *)t->data)[i] = v; return;
    case AG_I32:
        ((int32_t *)t->data)[i] = v != v               ? 0
                                  : v <= -2147483648.0 ? INT32_MIN
                                  : v >= 2147483647.0  ? INT32_MAX
                                                       : (int32_t)v;
        return;
    case AG_U8: ((uint8_t *)t->data)[i] = v != v || v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v; return;
    case AG_BOOL: ((uint8_t *)t->data)[i] = v != 0; return;
    case AG_DTYPE_COUNT: break;
    }
    assert(!"put: bad dtype");
}

double ir_tensor_get(const ir_tensor *t, int64_t i) { return get(t, i); }
void ir_tensor_set(ir_tensor *t, int64_t i, double v) { put(t, i, v); }

/* One step of float arithmetic, given its exact or double result. */
static inline double rnd(bool single, double v) { return single ? (double)(float)v : v; }
static double xexp(bool single, double v) { return single ? (double)expf((float)v) : exp(v); }
static double xlog(bool single, double v) { return single ? (double)logf((float)v) : log(v); }

/* ---- walking a shape ---- */

static void strides(const ir_shape *s, int64_t *st)
{
    int64_t a = 1;
    for (int d = s->rank - 1; d >= 0; d--) {
        st[d] = a;
        a *= s->dim[d];
    }
}

/* Strides reading operand shape a as if broadcast to out: right-aligned, 0 where a has
 * extent 1 or no dim at all. */
static void bcast_strides(const ir_shape *a, const ir_shape *out, int64_t *st)
{
    int64_t c[R];
    strides(a, c);
    for (int d = 0; d < out->rank; d++) {
        int k = d - (out->rank - a->rank);
        st[d] = k < 0 || a->dim[k] == 1 ? 0 : c[k];
    }
}

/* Offsets of up to 4 operands walking a shape in row-major order: the caller runs the last
 * dim (inner elements, operand k stepping by ist[k]) and walk_next moves to the next row,
 * adding strides incrementally. */
typedef struct walk {
    int rank, nop;
    int64_t dim[R], idx[R], st[4][R];
    int64_t off[4], ist[4], inner, rows;
} walk;

static void walk_init(walk *w, const ir_shape *s, int nop, int64_t st[][R])
{
    memset(w, 0, sizeof *w);
    w->nop = nop;
    w->rank = s->rank ? s->rank : 1;
    w->dim[0] = w->inner = w->rows = 1;
    if (s->rank == 0)
        return; /* a scalar: one row of one element, strides 0 */
    memcpy(w->dim, s->dim, sizeof w->dim);
    for (int k = 0; k < nop; k++)
        memcpy(w->st[k], st[k], sizeof w->st[k]);
    w->inner = s->dim[s->rank - 1];
    for (int d = 0; d < s->rank - 1; d++)
        w->rows *= s->dim[d];
    for (int k = 0; k < nop; k++)
        w->ist[k] = st[k][s->rank - 1];
}

static void walk_next(walk *w)
{
    for (int d = w->rank - 2; d >= 0; d--) {
        for (int k = 0; k < w->nop; k++)
            w->off[k] += w->st[k][d];
        if (++w->idx[d] < w->dim[d])
            return;
        for (int k = 0; k < w->nop; k++)
            w->off[k] -= w->st[k][d] * w->dim[d];
        w->idx[d] = 0;
    }
}

/* ---- elementwise: one loop per op and compute type, generated from the op table ---- */

typedef struct ew_args {
    const ir_tensor *in[3]; /* unused operands repeat in[0]; their loads are never reached */
    ir_tensor *out;         /* contiguous, written in order */
    walk w;
} ew_args;
typedef void ew_fn(ew_args *e);

#define LD_F(k) ((const float *)e->in[k]->data)[p##k]
#define LD_D(k) get(e->in[k], p##k)
#define ST_F(v) ((float *)e->out->data)[q] = (v)
#define ST_D(v) put(e->out, q, (v))

#define EW_LOOP(arity, scalar, LD, ST)                                           \
    int64_t q = 0;                                                               \
    for (int64_t r = 0; r < e->w.rows; r++, walk_next(&e->w)) {                  \
        int64_t p0 = e->w.off[0], p1 = e->w.off[1], p2 = e->w.off[2];            \
        for (int64_t j = 0; j < e->w.inner; j++, q++) {                          \
            S_T a = LD(0), b = arity > 1 ? LD(1) : 0, c = arity > 2 ? LD(2) : 0; \
            (void)b, (void)c;                                                    \
            ST(scalar);                                                          \
            p0 += e->w.ist[0], p1 += e->w.ist[1], p2 += e->w.ist[2];             \
        }                                                                        \
    }

#define EW_FNS(name, arity, scalar, types, grad, doc) \
    static void ew_f_##name(ew_args *e)               \
    {                                                 \
        typedef float S_T;                            \
        EW_LOOP(arity, scalar, LD_F, ST_F)            \
    }                                                 \
    static void ew_d_##name(ew_args *e)               \
    {                                                 \
        typedef double S_T;                           \
        EW_LOOP(arity, scalar, LD_D, ST_D)            \
    }
#define SKIP_OP(...)
IR_OPS(EW_FNS, SKIP_OP)

#define EW_F_ENTRY(name, ...) [IR_##name] = ew_f_##name,
#define EW_D_ENTRY(name, ...) [IR_##name] = ew_d_##name,
static ew_fn *const ew_float[IR_OP_COUNT] = {IR_OPS(EW_F_ENTRY, SKIP_OP)};
static ew_fn *const ew_double[IR_OP_COUNT] = {IR_OPS(EW_D_ENTRY, SKIP_OP)};

static void eval_ew(const ir_node *n, const ir_tensor *v, ir_tensor *out)
{
    ew_args e = {{NULL}, out, {0}};
    int64_t st[4][R] = {{0}};
    bool single = out->dtype == AG_F32; /* storage f32: f32 mode */
    for (int k = 0; k < 3; k++) {
        e.in[k] = &v[n->in[k < n->nin ? k : 0]];
        single &= e.in[k]->dtype == AG_F32;
    }
    for (int k = 0; k < n->nin; k++)
        bcast_strides(&e.in[k]->shape, &out->shape, st[k]);
    walk_init(&e.w, &out->shape, n->nin, st);
    (single ? ew_float : ew_double)[n->op](&e);
}

/* ---- the other ops ---- */

/* A shape around one axis: outer rows before it, len along it, inner elements after it. */
static void around(const ir_shape *s, int axis, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = *inner = 1;
    for (int d = 0; d < axis; d++)
        *outer *= s->dim[d];
    *len = s->dim[axis];
    for (int d = axis + 1; d < s->rank; d++)
        *inner *= s->dim[d];
}

/* sum, mean, max: the operand walked in row-major order, each element folded into the
 * accumulator of its result element (stride 0 on the reduced axes). Max lets NaN win. */
static bool eval_reduce(const ir_node *n, const ir_tensor *x, ir_tensor *out)
{
    bool single = x->dtype == AG_F32 && out->dtype == AG_F32;
    int64_t nout = ir_tensor_numel(out), count = ir_tensor_numel(x) / nout;
    double *acc = malloc(sizeof *acc * (size_t)nout);
    if (!acc)
        return false;
    for (int64_t i = 0; i < nout; i++)
        acc[i] = n->op == IR_max ? -INFINITY : 0;
    int64_t st[4][R] = {{0}}, a = 1;
    for (int d = x->shape.rank - 1; d >= 0; d--) {
        st[1][d] = n->attr.axes >> d & 1 ? 0 : a;
        a *= n->attr.axes >> d & 1 ? 1 : x->shape.dim[d];
    }
    walk w;
    walk_init(&w, &x->shape, 2, st);
    int64_t p = 0;
    for (int64_t r = 0; r < w.rows; r++, walk_next(&w)) {
        int64_t q = w.off[1];
        if (n->op == IR_max)
            for (int64_t j = 0; j < w.inner; j++, p++, q += w.ist[1]) {
                double v = get(x, p);
                if (v > acc[q] || v != v)
                    acc[q] = v;
            }
        else
            for (int64_t j = 0; j < w.inner; j++, p++, q += w.ist[1])
                acc[q] = rnd(single, acc[q] + get(x, p));
    }
    double div = rnd(single, (double)count);
    for (int64_t i = 0; i < nout; i++)
        put(out, i, n->op == IR_mean ? rnd(single, acc[i] / div) : acc[i]);
    free(acc);
    return true;
}

static void eval_argmax(const ir_node *n, const ir_tensor *x, ir_tensor *out)
{
    int64_t outer, len, inner;
    around(&x->shape, n->attr.axis, &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i, k = 0;
            double best = get(x, base);
            for (int64_t j = 1; j < len && best == best; j++) {
                double v = get(x, base + j * inner);
                if (v > best || v != v) {
                    best = v;
                    k = j;
                }
            }
            put(out, o * inner + i, (double)k);
        }
}

static void eval_cumsum(const ir_node *n, const ir_tensor *x, ir_tensor *out)
{
    bool single = x->dtype == AG_F32;
    int64_t outer, len, inner;
    around(&x->shape, n->attr.axis, &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double acc = 0;
            for (int64_t j = 0, at = o * len * inner + i; j < len; j++, at += inner) {
                acc = rnd(single, acc + get(x, at));
                put(out, at, acc);
            }
        }
}

/* Ranks 1 or 2; a vector operand is a row (a) or a column (b). A transposed operand is read
 * through swapped strides, never copied. */
static bool eval_matmul(const ir_node *n, const ir_tensor *a, const ir_tensor *b, ir_tensor *out)
{
    const int64_t *da = a->shape.dim, *db = b->shape.dim;
    int ta = n->attr.ta, tb = n->attr.tb;
    int64_t M = 1, K = da[0], N = 1, sai = 0, sap = 1, sbp = 1, sbj = 0;
    if (a->shape.rank == 2) {
        M = da[ta], K = da[!ta];
        sai = ta ? 1 : K, sap = ta ? M : 1;
    }
    if (b->shape.rank == 2) {
        N = db[!tb];
        sbp = tb ? 1 : N, sbj = tb ? K : 1;
    }
    if (a->dtype == AG_F32) { /* f32 mode: sgemm, for speed; f64 mode is the exact oracle */
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                    (int)K, 1, a->data, ta ? (int)M : (int)K, b->data, tb ? (int)K : (int)N, 0, out->data, (int)N);
        return true;
    }
    /* C[i,j] = sum over p of A[i,p] B[p,j], p increasing; a row of accumulators so that
     * the rows of B are read in order */
    double *acc = malloc(sizeof *acc * (size_t)N);
    if (!acc)
        return false;
    const double *A = a->data, *B = b->data;
    double *C = out->data;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++)
            acc[j] = 0;
        for (int64_t p = 0; p < K; p++)
            for (int64_t j = 0; j < N; j++)
                acc[j] += A[i * sai + p * sap] * B[p * sbp + j * sbj];
        for (int64_t j = 0; j < N; j++)
            C[i * N + j] = acc[j];
    }
    free(acc);
    return true;
}

/* Copy the elements of shape dims from src (strides ss) to dst at element offset dof
 * (strides ds); elements of esz bytes. Transpose, broadcast_to and concat are this. */
static void copy_strided(ir_tensor *dst, const int64_t *ds, int64_t dof, const ir_tensor *src, const int64_t *ss,
                         const ir_shape *dims)
{
    size_t esz = ir_dtype_size(dst->dtype);
    int64_t st[4][R] = {{0}};
    memcpy(st[0], ss, sizeof st[0]);
    memcpy(st[1], ds, sizeof st[1]);
    walk w;
    walk_init(&w, dims, 2, st);
    for (int64_t r = 0; r < w.rows; r++, walk_next(&w)) {
        int64_t p = w.off[0], q = dof + w.off[1];
        for (int64_t j = 0; j < w.inner; j++, p += w.ist[0], q += w.ist[1])
            memcpy((char *)dst->data + q * (int64_t)esz, (const char *)src->data + p * (int64_t)esz, esz);
    }
}

static void eval_layout(const ir_node *n, const ir_tensor *v, ir_tensor *out)
{
    const ir_tensor *x = &v[n->in[0]];
    int64_t ss[R] = {0}, ds[R] = {0}, c[R] = {0};
    strides(&out->shape, ds);
    switch (n->op) {
    case IR_transpose:
        strides(&x->shape, c);
        for (int k = 0; k < out->shape.rank; k++)
            ss[k] = c[n->attr.perm[k]];
        copy_strided(out, ds, 0, x, ss, &out->shape);
        break;
    case IR_broadcast_to:
        bcast_strides(&x->shape, &out->shape, ss);
        copy_strided(out, ds, 0, x, ss, &out->shape);
        break;
    case IR_reshape: memcpy(out->data, x->data, (size_t)ir_tensor_numel(out) * ir_dtype_size(out->dtype)); break;
    case IR_slice: { /* the operand from element start along the axis, read in place */
        strides(&x->shape, c);
        ir_tensor from = *x;
        from.data = (char *)x->data + n->attr.start * c[n->attr.axis] * (int64_t)ir_dtype_size(x->dtype);
        copy_strided(out, ds, 0, &from, c, &out->shape);
        break;
    }
    case IR_concat: {
        int64_t at = 0;
        for (int k = 0; k < n->nin; k++) {
            const ir_tensor *part = &v[n->in[k]];
            strides(&part->shape, ss);
            copy_strided(out, ds, at * ds[n->attr.axis], part, ss, &part->shape);
            at += part->shape.dim[n->attr.axis];
        }
        break;
    }
    default: assert(!"eval_layout: not a layout op");
    }
}

/* softmax, log_softmax along an axis, each row shifted by its maximum (NaN wins). */
static void eval_row(const ir_node *n, const ir_tensor *x, ir_tensor *out)
{
    bool single = x->dtype == AG_F32;
    int64_t outer, len, inner;
    around(&x->shape, n->attr.axis, &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i;
            double m = -INFINITY, s = 0;
            for (int64_t j = 0; j < len; j++) {
                double v = get(x, base + j * inner);
                if (v > m || v != v)
                    m = v;
            }
            for (int64_t j = 0, at = base; j < len; j++, at += inner) {
                double e = xexp(single, rnd(single, get(x, at) - m));
                s = rnd(single, s + e);
                if (n->op == IR_softmax)
                    put(out, at, e);
            }
            double ls = n->op == IR_softmax ? 0 : xlog(single, s);
            for (int64_t j = 0, at = base; j < len; j++, at += inner)
                put(out, at,
                    n->op == IR_softmax ? rnd(single, get(out, at) / s)
                                        : rnd(single, rnd(single, get(x, at) - m) - ls));
        }
}

/* softmax_ce: per row, log sum e^(x - m) - (x[label] - m); softmax_ce_grad: per row,
 * (e^(x - m) / sum - one_hot) * d. Rows whose label is out of range give 0, as the
 * one_hot form they replace does. */
static void eval_softmax_ce(const ir_node *n, const ir_tensor *v, ir_tensor *out)
{
    const ir_tensor *x = &v[n->in[0]], *y = &v[n->in[1]];
    bool single = x->dtype == AG_F32;
    int64_t rows = x->shape.dim[0], len = x->shape.dim[1];
    for (int64_t r = 0; r < rows; r++) {
        double label = get(y, r), m = -INFINITY, s = 0;
        if (!(label >= 0 && label < (double)len))
            continue; /* out is zeroed */
        int64_t base = r * len, k = (int64_t)label;
        for (int64_t j = 0; j < len; j++) {
            double e = get(x, base + j);
            if (e > m || e != e)
                m = e;
        }
        for (int64_t j = 0; j < len; j++)
            s = rnd(single, s + xexp(single, rnd(single, get(x, base + j) - m)));
        if (n->op == IR_softmax_ce) {
            put(out, r, rnd(single, xlog(single, s) - rnd(single, get(x, base + k) - m)));
            continue;
        }
        double d = get(&v[n->in[2]], r);
        for (int64_t j = 0; j < len; j++) {
            double p = rnd(single, xexp(single, rnd(single, get(x, base + j) - m)) / s);
            put(out, base + j, rnd(single, rnd(single, p - (j == k)) * d));
        }
    }
}

static void eval_one_hot(const ir_node *n, const ir_tensor *x, ir_tensor *out)
{
    int64_t classes = n->attr.classes, rows = ir_tensor_numel(x);
    for (int64_t i = 0; i < rows; i++) {
        double label = get(x, i);
        if (label >= 0 && label < (double)classes)
            put(out, i * classes + (int64_t)label, 1);
    }
}

/* Inverted dropout: element i kept by the runtime's Philox mask and scaled by 1/(1-p). */
static void eval_dropout(const ir_node *n, const ir_tensor *x, ir_tensor *out, const ir_run *run)
{
    bool single = x->dtype == AG_F32;
    int64_t count = ir_tensor_numel(x);
    double p = n->attr.value;
    if (!run->training) {
        memcpy(out->data, x->data, (size_t)count * ir_dtype_size(x->dtype));
        return;
    }
    if (p >= 1)
        return; /* all dropped; out is zeroed */
    uint64_t threshold = rt_dropout_threshold(p);
    double scale = rnd(single, 1 / (1 - p));
    uint8_t keep[4096];
    for (int64_t first = 0; first < count; first += (int64_t)sizeof keep) {
        int64_t m = count - first < (int64_t)sizeof keep ? count - first : (int64_t)sizeof keep;
        rt_dropout_mask(run->seed, (uint32_t)n->attr.site, run->step, (uint64_t)first, (uint64_t)m, threshold, keep);
        for (int64_t k = 0; k < m; k++)
            if (keep[k])
                put(out, first + k, rnd(single, get(x, first + k) * scale));
    }
}

/* Compute node n into out (allocated, zeroed) from the values v of its operands. False
 * only when out of memory. */
static bool eval(const ir_node *n, const ir_tensor *v, ir_tensor *out, const ir_run *run)
{
    const ir_tensor *x = n->nin ? &v[n->in[0]] : NULL;
    switch (n->op) {
#define EW_CASE(name, ...) case IR_##name:
        IR_OPS(EW_CASE, SKIP_OP)
        eval_ew(n, v, out);
        return true;
    case IR_input:
    case IR_param: assert(!"eval: sources are bound, not computed"); return true;
    case IR_const:
        for (int64_t i = 0, count = ir_tensor_numel(out); i < count; i++)
            put(out, i, n->attr.value);
        return true;
    case IR_sum:
    case IR_mean:
    case IR_max: return eval_reduce(n, x, out);
    case IR_argmax: eval_argmax(n, x, out); return true;
    case IR_cumsum: eval_cumsum(n, x, out); return true;
    case IR_matmul: return eval_matmul(n, x, &v[n->in[1]], out);
    case IR_transpose:
    case IR_reshape:
    case IR_slice:
    case IR_concat:
    case IR_broadcast_to: eval_layout(n, v, out); return true;
    case IR_softmax:
    case IR_log_softmax: eval_row(n, x, out); return true;
    case IR_softmax_ce:
    case IR_softmax_ce_grad: eval_softmax_ce(n, v, out); return true;
    case IR_one_hot: eval_one_hot(n, x, out); return true;
    case IR_dropout: eval_dropout(n, x, out, run); return true;
    case IR_allreduce: /* one rank: the sum over the ranks is its own value */
        memcpy(out->data, x->data, (size_t)ir_tensor_numel(x) * ir_dtype_size(x->dtype));
        return true;
    case IR_conv2d:
    case IR_conv2d_input_grad:
    case IR_conv2d_weight_grad:
    case IR_max_pool2d:
    case IR_max_pool2d_grad:
    case IR_avg_pool2d:
    case IR_avg_pool2d_grad: return ir_eval_window(n, v, out);
    case IR_kernel: assert(!"eval: kernels run their bodies (run_kernel)"); return true;
    case IR_OP_COUNT: break;
    }
    assert(!"eval: unknown op");
    return false;
}

/* ---- running a graph ---- */

/* The outputs of the last body run, for the sibling nodes that pick the others: a group
 * with several outputs runs once, as compiled code runs it. */
typedef struct siblings {
    int32_t node; /* the kernel node that ran the body, -1: none */
    ir_tensor *outs;
    bool *constant; /* per output: computed from constants alone, as it turned out */
    int nout;
} siblings;

static void siblings_clear(siblings *s)
{
    for (int k = 0; k < s->nout; k++)
        ir_tensor_free(&s->outs[k]);
    free(s->outs);
    free(s->constant);
    *s = (siblings){-1, NULL, NULL, 0};
}

static bool same_operands(const ir_node *a, const ir_node *b)
{
    if (a->attr.kernel != b->attr.kernel || a->nin != b->nin)
        return false;
    for (int k = 0; k < a->nin; k++)
        if (a->in[k] != b->in[k])
            return false;
    return true;
}

/* Kernel node n of g: its body run with the same ir_run, its inputs (in node order) bound
 * to n's operands; out receives the output n takes, the others wait in sib for their
 * siblings. The body runs the same ops in the same order as the nodes it replaced, so the
 * values are the same bits. */
static bool interp(const ir_graph *g, const ir_run *run, const ir_tensor *const *bound, const bool *constant_in,
                   ir_tensor *outs, bool *out_constant, char *err, size_t len);

/* constant[i]: node i of g is computed from constants alone (eval_constant), through kernel
 * bodies too (an output of a body, from what its operands are); constant_in marks inputs
 * bound to such values (a body's), or is NULL. False when out of memory. */
static bool constant_nodes(const ir_graph *g, const bool *constant_in, bool *constant);

static bool constant_nodes_from(const ir_graph *g, const bool *constant_in, bool *constant, int32_t from)
{
    for (int32_t i = from; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if (n->op == IR_kernel) {
            const ir_graph *b = g->kernels[n->attr.kernel];
            bool *in = calloc((size_t)b->n + 1, sizeof *in), *inner = calloc((size_t)b->n + 1, sizeof *inner);
            bool ok = in && inner;
            for (int32_t j = 0, k = 0; ok && j < b->n; j++)
                if (b->node[j].op == IR_input)
                    in[j] = constant[n->in[k++]];
            ok = ok && constant_nodes(b, in, inner);
            constant[i] = ok && inner[b->out[n->attr.output].id];
            free(in);
            free(inner);
            if (!ok)
                return false;
            continue;
        }
        /* what simplify folds: elementwise ops of constants, seen through layout ops (which do
         * no arithmetic); a reduction of them stays an f64 sum */
        bool folds = ir_ops[n->op].kind == IR_K_ELEMENTWISE || ir_ops[n->op].kind == IR_K_LAYOUT;
        constant[i] = n->op == IR_const || (n->nin > 0 && folds) || (constant_in && constant_in[i]);
        for (int k = 0; k < n->nin; k++)
            constant[i] &= constant[n->in[k]];
    }
    return true;
}

static bool constant_nodes(const ir_graph *g, const bool *constant_in, bool *constant)
{
    return constant_nodes_from(g, constant_in, constant, 0);
}

/* where(k, x, y) with k a constant of one value throughout is x or y, and where(c, x, x) is
 * x, as simplify rewrites them: a constant when what it becomes is (seed 500092:
 * sigmoid(where(true, -0.015625, s)) folded in f32 after simplify, computed in f64 before;
 * seed 502500: pow(where(c, 0.6875, 0.6875), 0.6875)). That can only be told from values:
 * so after the where runs, and what reads it is looked at again. */
static bool constant_where(const ir_graph *g, int32_t i, const ir_tensor *val, const bool *constant_in, bool *constant)
{
    const ir_node *n = &g->node[i];
    if (n->op != IR_where || constant[i])
        return true;
    const ir_node *x = &g->node[n->in[1]], *y = &g->node[n->in[2]];
    /* where(c, x, x) -> x: x and y constants of the same values */
    bool same = constant[n->in[1]] && constant[n->in[2]] && ir_shape_eq(&x->shape, &n->shape) &&
                ir_shape_eq(&y->shape, &n->shape) && x->dtype == n->dtype && y->dtype == n->dtype;
    for (int64_t e = 0, c = same ? ir_tensor_numel(&val[n->in[1]]) : 0; e < c && same; e++)
        same = ir_tensor_get(&val[n->in[1]], e) == ir_tensor_get(&val[n->in[2]], e);
    /* where(k, x, y) -> x or y: k a constant of one value throughout */
    const ir_tensor *k = &val[n->in[0]];
    int64_t count = constant[n->in[0]] ? ir_tensor_numel(k) : 0;
    bool first = count > 0 && ir_tensor_get(k, 0) != 0, uniform = count > 0;
    for (int64_t e = 1; e < count && uniform; e++)
        uniform = (ir_tensor_get(k, e) != 0) == first;
    const ir_node *pick = first ? x : y;
    bool picked =
        uniform && constant[n->in[first ? 1 : 2]] && ir_shape_eq(&pick->shape, &n->shape) && pick->dtype == n->dtype;
    if (!same && !picked)
        return true;
    constant[i] = true;
    return constant_nodes_from(g, constant_in, constant, i + 1);
}

/* constant: per node of g, computed from constants alone (eval_constant); the body's
 * inputs inherit it from the operands they bind. */
/* Runs kernel node id; *out_constant: whether its value came from constants alone, as the
 * body's run found (a where that picks a constant counts: constant_where). */
static bool run_kernel(const ir_graph *g, int32_t id, const ir_tensor *v, const bool *constant, ir_tensor *out,
                       bool *out_constant, const ir_run *run, siblings *sib, char *err, size_t len)
{
    const ir_node *n = &g->node[id];
    if (sib->node >= 0 && same_operands(&g->node[sib->node], n) && sib->outs[n->attr.output].data) {
        *out = sib->outs[n->attr.output]; /* moved: identical kernel nodes are merged, so taken once */
        sib->outs[n->attr.output] = (ir_tensor){0};
        *out_constant = sib->constant[n->attr.output];
        return true;
    }
    siblings_clear(sib);
    const ir_graph *b = g->kernels[n->attr.kernel];
    const ir_tensor **bound = calloc((size_t)b->n + 1, sizeof *bound);
    ir_tensor *outs = calloc((size_t)b->nout + 1, sizeof *outs);
    bool *constant_in = calloc((size_t)b->n + 1, sizeof *constant_in);
    bool *outc = calloc((size_t)b->nout + 1, sizeof *outc);
    bool ok = bound && outs && constant_in && outc;
    if (!ok)
        rt_fail(err, len, "out of memory");
    for (int32_t i = 0, k = 0; ok && i < b->n; i++)
        if (b->node[i].op == IR_input) {
            constant_in[i] = constant[n->in[k]];
            bound[i] = &v[n->in[k++]];
        }
    char msg[256];
    if (ok && !interp(b, run, bound, constant_in, outs, outc, msg, sizeof msg))
        ok = rt_fail(err, len, "node %d (kernel): body @k%d: %s", (int)id, (int)n->attr.kernel, msg);
    free(bound);
    free(constant_in);
    if (!ok) {
        for (int32_t k = 0; outs && k < b->nout; k++)
            ir_tensor_free(&outs[k]);
        free(outs);
        free(outc);
        return false;
    }
    *out = outs[n->attr.output];
    outs[n->attr.output] = (ir_tensor){0};
    *out_constant = outc[n->attr.output];
    *sib = (siblings){id, outs, outc, b->nout};
    return true;
}

/* ir_type_str, safe on the shapes of broken graphs and tensors */
static char *type_str(ag_dtype t, const ir_shape *s, char *buf, size_t len)
{
    if (s->rank < 0 || s->rank > R)
        snprintf(buf, len, "%s[rank %d]", ir_dtype_name(t), s->rank);
    else
        ir_type_str(t, s, buf, len);
    return buf;
}

/* What rule_kernel reads of a body before its own run checks the rest: its nodes, ops and
 * outputs exist. */
static bool body_ok(const ir_graph *g, int32_t k)
{
    if (k < 0 || k >= g->nkernels || !g->kernels || !g->kernels[k])
        return true; /* rule_kernel says so */
    const ir_graph *b = g->kernels[k];
    if (b->n < 0 || (b->n > 0 && !b->node) || b->nout < 0 || (b->nout > 0 && !b->out))
        return false;
    for (int32_t i = 0; i < b->nout; i++)
        if (b->out[i].id < 0 || b->out[i].id >= b->n)
            return false;
    return true;
}

/* Everything the kernels take for granted: each node agrees with its rule (so the ops'
 * attributes and operand shapes are consistent), its operands come before it, its bound
 * size fits, and each source is bound to a tensor of its storage dtype and bound shape. */
static bool check(const ir_graph *g, const ir_run *run, const ir_tensor *const *bound, char *err, size_t len)
{
    char msg[256], want[96], got[96];
    if (run->batch < 1)
        return rt_fail(err, len, "batch %lld: must be at least 1", (long long)run->batch);
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if ((unsigned)n->op >= IR_OP_COUNT)
            return rt_fail(err, len, "node %d: unknown op %d", i, (int)n->op);
        const char *name = ir_ops[n->op].name;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] < 0 || n->in[k] >= i)
                return rt_fail(err, len, "node %d (%s): operand %d is not an earlier node", i, name, k);
        if (n->op == IR_kernel && !body_ok(g, n->attr.kernel))
            return rt_fail(err, len, "node %d (%s): body @k%d is missing or broken", i, name, (int)n->attr.kernel);
        ir_node m = *n;
        if (!ir_infer(g, &m, msg, sizeof msg))
            return rt_fail(err, len, "node %d (%s): %s", i, name, msg);
        if (m.dtype != n->dtype || !ir_shape_eq(&m.shape, &n->shape))
            return rt_fail(err, len, "node %d (%s): typed %s, its rule gives %s", i, name,
                           type_str(n->dtype, &n->shape, want, sizeof want),
                           type_str(m.dtype, &m.shape, got, sizeof got));
        ag_dtype dt = ir_storage_dtype(n->dtype, run->f64);
        ir_shape s = ir_bind_shape(&n->shape, run->batch);
        if (numel_checked(&s, ir_dtype_size(dt)) < 0)
            return rt_fail(err, len, "node %d (%s): %s is too large at batch %lld", i, name,
                           ir_type_str(n->dtype, &n->shape, want, sizeof want), (long long)run->batch);
        if (n->op != IR_input && n->op != IR_param)
            continue;
        const ir_tensor *t = bound ? bound[i] : NULL;
        ir_type_str(dt, &s, want, sizeof want);
        if (!t)
            return rt_fail(err, len, "%s %s: not bound (expected %s)", name, n->attr.name, want);
        if (t->dtype != dt || t->shape.rank != s.rank || !ir_shape_eq(&t->shape, &s))
            return rt_fail(err, len, "%s %s: expected %s, got %s", name, n->attr.name, want,
                           type_str(t->dtype, &t->shape, got, sizeof got));
        if (!t->data)
            return rt_fail(err, len, "%s %s: bound to a tensor without data", name, n->attr.name);
    }
    for (int k = 0; k < g->nout; k++)
        if (g->out[k].id < 0 || g->out[k].id >= g->n)
            return rt_fail(err, len, "output %s: not a node of the graph", g->out[k].name);
    return true;
}

/* Node i of an f64-mode run whose value is a constant simplify folds (an elementwise op of
 * constants, through layout ops): a compile-time constant of the f32 program,
 * so it is computed in f32 mode, as simplify folds it; then folding changes no value of the
 * f64 oracle. Its operands hold f32 values already (computed so). */
static bool eval_constant(const ir_graph *g, int32_t i, ir_tensor *val, const ir_run *run)
{
    const ir_node *n = &g->node[i];
    ir_run single = *run;
    single.f64 = false;
    ir_tensor saved[8]; /* the operands' f64 values, swapped for f32 copies during the call */
    int32_t swapped[8];
    int nswapped = 0;
    bool ok = n->nin <= 8;
    for (int k = 0; ok && k < n->nin; k++) {
        int32_t a = n->in[k];
        bool seen = false;
        for (int j = 0; j < nswapped; j++)
            seen |= swapped[j] == a;
        if (seen || val[a].dtype != AG_F64)
            continue; /* converted already, or not f32 */
        ir_tensor f = ir_tensor_new(AG_F32, &val[a].shape);
        ok = f.data != NULL;
        for (int64_t e = 0, c = ok ? ir_tensor_numel(&val[a]) : 0; e < c; e++)
            ir_tensor_set(&f, e, ir_tensor_get(&val[a], e));
        saved[nswapped] = val[a];
        swapped[nswapped++] = a;
        val[a] = f;
    }
    ir_shape s = ir_bind_shape(&n->shape, run->batch);
    ir_tensor out = ok ? ir_tensor_new(AG_F32, &s) : (ir_tensor){0};
    ok = ok && out.data && eval(n, val, &out, &single);
    for (int j = 0; j < nswapped; j++) { /* the operands back as they were */
        ir_tensor_free(&val[swapped[j]]);
        val[swapped[j]] = saved[j];
    }
    val[i] = ok ? ir_tensor_new(AG_F64, &s) : (ir_tensor){0};
    ok = ok && val[i].data;
    for (int64_t e = 0, c = ok ? ir_tensor_numel(&out) : 0; e < c; e++)
        ir_tensor_set(&val[i], e, ir_tensor_get(&out, e));
    ir_tensor_free(&out);
    return ok;
}

bool ir_interp(const ir_graph *g, const ir_run *run, const ir_tensor *const *bound, ir_tensor *outs, char *err,
               size_t len)
{
    return interp(g, run, bound, NULL, outs, NULL, err, len);
}

/* constant_in: per node, an input bound to a value computed from constants alone (a kernel
 * body's, from its operands), or NULL */
static bool interp(const ir_graph *g, const ir_run *run, const ir_tensor *const *bound, const bool *constant_in,
                   ir_tensor *outs, bool *out_constant, char *err, size_t len)
{
    for (int k = 0; k < g->nout; k++)
        outs[k] = (ir_tensor){0};
    if (!check(g, run, bound, err, len))
        return false;

    /* last[i]: the last node reading node i; outputs live to the end, unread nodes die
     * as soon as they are computed */
    int32_t *last = malloc(sizeof *last * (size_t)(g->n + 1));
    ir_tensor *val = calloc((size_t)g->n + 1, sizeof *val);
    bool *owned = calloc((size_t)g->n + 1, sizeof *owned), *constant = calloc((size_t)g->n + 1, sizeof *constant);
    bool ok = last && val && owned && constant, reported = false;
    if (ok)
        ok = constant_nodes(g, constant_in, constant);
    siblings sib = {-1, NULL, NULL, 0};
    for (int32_t i = 0; ok && i < g->n; i++) {
        last[i] = -1;
        for (int k = 0; k < g->node[i].nin; k++)
            last[g->node[i].in[k]] = i;
    }
    for (int k = 0; ok && k < g->nout; k++)
        last[g->out[k].id] = INT32_MAX;

    for (int32_t i = 0; ok && i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if (n->op == IR_input || n->op == IR_param) {
            val[i] = *bound[i]; /* borrowed */
            continue;
        }
        if (n->op == IR_kernel) {
            bool was = constant[i];
            owned[i] = ok = run_kernel(g, i, val, constant, &val[i], &constant[i], run, &sib, err, len);
            /* a body's where that picked a constant made its output one: what reads it, too */
            ok = ok && (!run->f64 || constant[i] == was || constant_nodes_from(g, constant_in, constant, i + 1));
            reported = !ok;
        } else if (run->f64 && constant[i] && n->dtype == AG_F32 && n->op != IR_const) {
            owned[i] = ok = eval_constant(g, i, val, run);
        } else {
            ir_shape s = ir_bind_shape(&n->shape, run->batch);
            val[i] = ir_tensor_new(ir_storage_dtype(n->dtype, run->f64), &s);
            owned[i] = ok = val[i].data != NULL;
            ok = ok && eval(n, val, &val[i], run);
        }
        ok = ok && (!run->f64 || constant_where(g, i, val, constant_in, constant));
        for (int k = 0; k < n->nin; k++) {
            int32_t a = n->in[k];
            if (last[a] == i && owned[a]) {
                ir_tensor_free(&val[a]);
                owned[a] = false;
            }
        }
        if (last[i] < 0 && owned[i]) {
            ir_tensor_free(&val[i]);
            owned[i] = false;
        }
    }

    /* hand the outputs over: moved when this run owns them, else copied (an input returned
     * as is, or a node named by two outputs) */
    for (int k = 0; ok && out_constant && k < g->nout; k++)
        out_constant[k] = constant[g->out[k].id];
    for (int k = 0; ok && k < g->nout; k++) {
        int32_t id = g->out[k].id;
        if (owned[id]) {
            outs[k] = val[id];
            owned[id] = false;
            continue;
        }
        outs[k] = ir_tensor_new(val[id].dtype, &val[id].shape);
        ok = outs[k].data != NULL;
        if (ok)
            memcpy(outs[k].data, val[id].data, (size_t)ir_tensor_numel(&val[id]) * ir_dtype_size(val[id].dtype));
    }

    for (int32_t i = 0; val && owned && i < g->n; i++)
        if (owned[i])
            ir_tensor_free(&val[i]);
    if (!ok) {
        for (int k = 0; k < g->nout; k++)
            ir_tensor_free(&outs[k]);
        if (!reported)
            rt_fail(err, len, "out of memory");
    }
    free(last);
    free(val);
    free(owned);
    free(constant);
    siblings_clear(&sib);
    return ok;
}
