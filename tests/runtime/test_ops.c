/* The runtime's ops (runtime/rt_ops.h) against the reference interpreter in f32 mode: each
 * routine on random inputs at several shapes and axes, compared with a one-node graph of the
 * op run by ir_interp on the same values. They follow the interpreter's order of operations,
 * so every comparison asks for the same bits (NaN matching NaN), and also reports the
 * norm-wise relative error, held to 1e-6. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "interp.h"
#include "ir.h"
#include "rt_ops.h"
#include "rng.h"

/* ---- running one graph in the interpreter ---- */

typedef struct bound_in {
    const char *name;
    const ir_tensor *t;
} bound_in;

static void interp(const char *text, const bound_in *in, int nin, ir_tensor *outs, const ir_run *run)
{
    char err[256];
    ir_graph *g = ir_parse(text, strlen(text), "test.ir", err, sizeof err);
    cr_assert_not_null(g, "%s\n%s", err, text);
    const ir_tensor **bound = calloc((size_t)g->n, sizeof *bound);
    cr_assert_not_null(bound);
    for (int k = 0; k < nin; k++) {
        int32_t id = ir_find_source(g, IR_input, in[k].name);
        cr_assert(id >= 0, "no input %s", in[k].name);
        bound[id] = in[k].t;
    }
    cr_assert(ir_interp(g, run, (const ir_tensor *const *)bound, outs, err, sizeof err), "%s\n%s", err, text);
    free(bound);
    ir_graph_free(g);
}

static const ir_run f32_run = {.batch = 1};

static ir_shape shape_of(int rank, const int64_t *dim)
{
    ir_shape s = {rank, {0}};
    for (int d = 0; d < rank; d++)
        s.dim[d] = dim[d];
    return s;
}

static char *dims_str(const ir_shape *s, char *buf, size_t len)
{
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < s->rank; d++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", d ? "," : "", (long long)s->dim[d]);
    snprintf(buf + at, len - at, "]");
    return buf;
}

/* The shape without one axis (argmax's result). */
static ir_shape drop_axis(const ir_shape *s, int axis)
{
    ir_shape r = {0, {0}};
    for (int d = 0; d < s->rank; d++)
        if (d != axis)
            r.dim[r.rank++] = s->dim[d];
    return r;
}

static void around(const ir_shape *s, int axis, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = *inner = 1;
    for (int d = 0; d < axis; d++)
        *outer *= s->dim[d];
    *len = s->dim[axis];
    for (int d = axis + 1; d < s->rank; d++)
        *inner *= s->dim[d];
}

/* ---- comparing ---- */

static double worst_rel; /* the largest norm-wise relative error seen, for the log */

/* Same bits everywhere (any NaN matching any NaN), and ||got - want|| / ||want|| <= 1e-6
 * over the elements that are not NaN. */
static void expect_same_f32(const char *what, const float *got, const float *want, int64_t n)
{
    int64_t differ = 0, nan_differ = 0, first = -1;
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        bool gn = got[i] != got[i], wn = want[i] != want[i];
        if (gn || wn) {
            nan_differ += gn != wn;
            if (gn != wn && first < 0)
                first = i;
            continue;
        }
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            differ++;
            if (first < 0)
                first = i;
        }
        if (isfinite(want[i]) && isfinite(got[i])) {
            double e = (double)got[i] - want[i];
            num += e * e, den += (double)want[i] * want[i];
        } else if (got[i] != want[i])
            num = INFINITY;
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    if (rel > worst_rel)
        worst_rel = rel;
    cr_expect(nan_differ == 0, "%s: %lld elements NaN in one and not the other (first %lld)", what,
              (long long)nan_differ, (long long)first);
    cr_expect(rel <= 1e-6, "%s: relative error %.3g", what, rel);
    cr_expect(differ == 0,
              "%s: %lld of %lld elements differ in their bits (first %lld: %.9g, want %.9g), "
              "relative error %.3g",
              what, (long long)differ, (long long)n, (long long)first, first >= 0 ? (double)got[first] : 0.0,
              first >= 0 ? (double)want[first] : 0.0, rel);
}

static void expect_same_i32(const char *what, const int32_t *got, const int32_t *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            cr_expect_eq(got[i], want[i], "%s: element %lld: %d, want %d", what, (long long)i, got[i], want[i]);
            return;
        }
}

/* ---- inputs ---- */

/* normal(0, std) values, with some exact ties when `ties` (rounded to halves) */
static void fill_f32(float *x, int64_t n, double std, uint32_t seed, bool ties)
{
    rt_fill_normal(x, n, 0, std, seed, 7);
    if (ties)
        for (int64_t i = 0; i < n; i++)
            x[i] = roundf(x[i] * 2) / 2;
}

static void fill_i32(int32_t *x, int64_t n, int32_t lo, int32_t hi, uint32_t seed)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (int32_t)(lo + (int64_t)(rt_random_u32(seed, 9, (uint64_t)i) % (uint64_t)((int64_t)hi - lo)));
}

/* ---- the shapes ---- */

typedef struct axis_case {
    int rank;
    int64_t dim[4];
    int axis;
} axis_case;

static const axis_case axis_cases[] = {
    {2, {1, 10}, 1},      {2, {7, 10}, 1}, {2, {256, 10}, 1}, {2, {1000, 10}, 1}, {2, {7, 10}, 0}, /* inner 10 */
    {3, {4, 5, 3}, 1},                                                                             /* inner 3 */
    {3, {2, 7, 3}, 2},                                                                             /* inner 1, rank 3 */
    {2, {3, 1000}, 1},                                                                             /* long rows */
    {1, {1000}, 0},                                                                                /* one row */
    {3, {5, 3, 130}, 1},  /* inner wider than the routines' blocks */
    {4, {2, 3, 4, 5}, 2}, /* inner 5, outer 6 */
    {2, {6, 1}, 1},       /* rows of one */
    {2, {1, 3}, 0},       /* len 1, inner 3 */
};
#define NCASES (int)(sizeof axis_cases / sizeof axis_cases[0])

/* ---- softmax, log_softmax ---- */

static void check_row_op(const char *op, const ir_shape *s, int axis, const float *x, const char *label)
{
    char dims[64], text[512], what[160];
    dims_str(s, dims, sizeof dims);
    snprintf(text, sizeof text, "graph @t {\n  %%x: f32%s = input\n  %%0: f32%s = %s %%x axis=%d\n  return o: %%0\n}\n",
             dims, dims, op, axis);
    ir_tensor in = ir_tensor_new(AG_F32, s), want;
    int64_t n = ir_tensor_numel(&in);
    memcpy(in.data, x, sizeof(float) * (size_t)n);
    interp(text, &(bound_in){"x", &in}, 1, &want, &f32_run);

    int64_t outer, len, inner;
    around(s, axis, &outer, &len, &inner);
    float *got = malloc(sizeof *got * (size_t)n), *inplace = malloc(sizeof *inplace * (size_t)n);
    memcpy(inplace, x, sizeof(float) * (size_t)n);
    bool log = strcmp(op, "log_softmax") == 0;
    (log ? rt_log_softmax : rt_softmax)(x, got, outer, len, inner);
    (log ? rt_log_softmax : rt_softmax)(inplace, inplace, outer, len, inner);
    snprintf(what, sizeof what, "%s %s axis=%d %s", op, dims, axis, label);
    expect_same_f32(what, got, want.data, n);
    snprintf(what, sizeof what, "%s %s axis=%d %s, in place", op, dims, axis, label);
    expect_same_f32(what, inplace, want.data, n);
    free(got);
    free(inplace);
    ir_tensor_free(&in);
    ir_tensor_free(&want);
}

Test(ops, softmax_and_log_softmax)
{
    for (int c = 0; c < NCASES; c++) {
        ir_shape s = shape_of(axis_cases[c].rank, axis_cases[c].dim);
        int64_t n = ir_numel(&s, 1);
        float *x = malloc(sizeof *x * (size_t)n);
        for (int std = 1; std <= 10; std += 9) {
            fill_f32(x, n, std, 100 + (uint32_t)c, false);
            check_row_op("softmax", &s, axis_cases[c].axis, x, std == 1 ? "std 1" : "std 10");
            check_row_op("log_softmax", &s, axis_cases[c].axis, x, std == 1 ? "std 1" : "std 10");
        }
        free(x);
    }
    cr_log_info("ops: softmax, log_softmax: largest relative error %.3g", worst_rel);
}

/* NaN, infinities, huge values and ties, in contiguous rows and across an inner axis. */
Test(ops, softmax_special_values)
{
    static const float rows[][5] = {
        {1, 2, NAN, 4, 5},        {NAN, 0, 0, 0, 0},
        {0, 0, 0, 0, NAN},        {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY},
        {INFINITY, 1, 2, 3, 4},   {-INFINITY, 1, 2, 3, 4},
        {3e38f, -3e38f, 0, 1, 2}, {-200, -100, 0, -1e-30f, 1e-30f},
        {7, 7, 7, 7, 7},          {-0.0f, 0.0f, -0.0f, -100, -200},
    };
    enum { R = sizeof rows / sizeof rows[0] };
    float x[R * 5], xt[5 * R];
    memcpy(x, rows, sizeof x);
    for (int r = 0; r < R; r++) /* the same rows as columns: axis 0 of [5, R] */
        for (int j = 0; j < 5; j++)
            xt[j * R + r] = rows[r][j];
    ir_shape s = {2, {R, 5}}, st = {2, {5, R}};
    for (int log = 0; log < 2; log++) {
        check_row_op(log ? "log_softmax" : "softmax", &s, 1, x, "special values");
        check_row_op(log ? "log_softmax" : "softmax", &st, 0, xt, "special values as columns");
    }
}

/* ---- cross-entropy ---- */

typedef struct ce_data {
    int64_t rows, classes;
    float *x, *d;
    int32_t *y;
} ce_data;

static ce_data ce_make(int64_t rows, int64_t classes, uint32_t seed)
{
    ce_data c = {rows, classes, malloc(sizeof(float) * (size_t)(rows * classes)), malloc(sizeof(float) * (size_t)rows),
                 malloc(sizeof(int32_t) * (size_t)rows)};
    fill_f32(c.x, rows * classes, 3, seed, false);
    rt_fill_normal(c.d, rows, 0, 1, seed, 8);
    /* labels in [-2, classes + 2): some out of range; and the extremes */
    fill_i32(c.y, rows, -2, (int32_t)classes + 2, seed);
    if (rows > 3)
        c.y[1] = INT32_MIN, c.y[2] = INT32_MAX;
    return c;
}

static void ce_free(ce_data *c) { free(c->x), free(c->d), free(c->y); }

/* The interpreter's softmax_ce and softmax_ce_grad for c, with d as the row gradient. */
static void ce_reference(const ce_data *c, const float *d, ir_tensor outs[2])
{
    char text[512];
    long long r = c->rows, k = c->classes;
    snprintf(text, sizeof text,
             "graph @t {\n  %%x: f32[%lld,%lld] = input\n  %%y: i32[%lld] = input\n  %%d: f32[%lld] = input\n"
             "  %%0: f32[%lld] = softmax_ce %%x, %%y\n  %%1: f32[%lld,%lld] = softmax_ce_grad %%x, %%y, %%d\n"
             "  return loss: %%0, grad: %%1\n}\n",
             r, k, r, r, r, r, k);
    ir_shape sx = {2, {c->rows, c->classes}}, sr = {1, {c->rows}};
    ir_tensor x = ir_tensor_new(AG_F32, &sx), y = ir_tensor_new(AG_I32, &sr), dd = ir_tensor_new(AG_F32, &sr);
    memcpy(x.data, c->x, sizeof(float) * (size_t)(r * k));
    memcpy(y.data, c->y, sizeof(int32_t) * (size_t)r);
    memcpy(dd.data, d, sizeof(float) * (size_t)r);
    bound_in in[] = {{"x", &x}, {"y", &y}, {"d", &dd}};
    interp(text, in, 3, outs, &f32_run);
    ir_tensor_free(&x);
    ir_tensor_free(&y);
    ir_tensor_free(&dd);
}

/* Rows with a label out of range: loss +0 and a row of +0, exactly. */
static void expect_bad_rows_zero(const char *what, const ce_data *c, const float *loss, const float *grad)
{
    for (int64_t r = 0; r < c->rows; r++) {
        if (c->y[r] >= 0 && c->y[r] < c->classes)
            continue;
        uint32_t bits = 0;
        for (int64_t j = 0; loss && j < 1; j++)
            bits |= ((const uint32_t *)loss)[r];
        for (int64_t j = 0; grad && j < c->classes; j++)
            bits |= ((const uint32_t *)grad)[r * c->classes + j];
        cr_expect(bits == 0, "%s: row %lld (label %d) is not all +0", what, (long long)r, c->y[r]);
    }
}

Test(ops, softmax_ce)
{
    static const int64_t shapes[][2] = {{1, 10}, {7, 10}, {256, 10}, {1000, 10}, {7, 1}, {7, 3}, {5, 1000}};
    worst_rel = 0;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int64_t rows = shapes[t][0], classes = shapes[t][1], n = rows * classes;
        ce_data c = ce_make(rows, classes, 200 + (uint32_t)t);
        if (rows == 1)
            c.y[0] = 3 % (int32_t)classes;
        char what[128];
        float *loss = malloc(sizeof *loss * (size_t)rows), *grad = malloc(sizeof *grad * (size_t)n);
        ir_tensor want[2];

        /* separate routines, a row gradient per row */
        ce_reference(&c, c.d, want);
        rt_softmax_ce(c.x, c.y, loss, rows, classes);
        rt_softmax_ce_grad(c.x, c.y, c.d, grad, rows, classes);
        snprintf(what, sizeof what, "softmax_ce [%lld,%lld]", (long long)rows, (long long)classes);
        expect_same_f32(what, loss, want[0].data, rows);
        expect_bad_rows_zero(what, &c, loss, NULL);
        snprintf(what, sizeof what, "softmax_ce_grad [%lld,%lld]", (long long)rows, (long long)classes);
        expect_same_f32(what, grad, want[1].data, n);
        expect_bad_rows_zero(what, &c, NULL, grad);
        ir_tensor_free(&want[0]);
        ir_tensor_free(&want[1]);

        /* fused, with the mean's row gradient 1/N for every row */
        float scale = 1.0f / (float)rows;
        for (int64_t r = 0; r < rows; r++)
            c.d[r] = scale;
        ce_reference(&c, c.d, want);
        memset(loss, 0xff, sizeof *loss * (size_t)rows); /* NaN: every element must be written */
        memset(grad, 0xff, sizeof *grad * (size_t)n);
        rt_softmax_ce_both(c.x, c.y, scale, loss, grad, rows, classes);
        snprintf(what, sizeof what, "softmax_ce_both [%lld,%lld] loss", (long long)rows, (long long)classes);
        expect_same_f32(what, loss, want[0].data, rows);
        expect_bad_rows_zero(what, &c, loss, grad);
        snprintf(what, sizeof what, "softmax_ce_both [%lld,%lld] grad", (long long)rows, (long long)classes);
        expect_same_f32(what, grad, want[1].data, n);
        /* either half alone */
        memset(loss, 0xff, sizeof *loss * (size_t)rows);
        rt_softmax_ce_both(c.x, c.y, scale, loss, NULL, rows, classes);
        snprintf(what, sizeof what, "softmax_ce_both [%lld,%lld] loss only", (long long)rows, (long long)classes);
        expect_same_f32(what, loss, want[0].data, rows);
        memset(grad, 0xff, sizeof *grad * (size_t)n);
        rt_softmax_ce_both(c.x, c.y, scale, NULL, grad, rows, classes);
        snprintf(what, sizeof what, "softmax_ce_both [%lld,%lld] grad only", (long long)rows, (long long)classes);
        expect_same_f32(what, grad, want[1].data, n);
        ir_tensor_free(&want[0]);
        ir_tensor_free(&want[1]);

        free(loss);
        free(grad);
        ce_free(&c);
    }
    cr_log_info("ops: softmax_ce, softmax_ce_grad, softmax_ce_both: largest relative error %.3g", worst_rel);
}

/* A NaN or an infinity in a row makes its loss and gradient NaN, as in the interpreter. */
Test(ops, softmax_ce_special_values)
{
    ce_data c = ce_make(6, 4, 300);
    const float special[] = {NAN, INFINITY, -INFINITY, 3e38f};
    for (int r = 0; r < 4; r++)
        c.x[r * 4 + r] = special[r], c.y[r] = (r + 1) % 4;
    c.y[4] = 2, c.y[5] = -1;
    c.x[5 * 4] = NAN; /* a bad label still gives 0 */
    ir_tensor want[2];
    ce_reference(&c, c.d, want);
    float loss[6], grad[24];
    rt_softmax_ce(c.x, c.y, loss, 6, 4);
    rt_softmax_ce_grad(c.x, c.y, c.d, grad, 6, 4);
    expect_same_f32("softmax_ce special values", loss, want[0].data, 6);
    expect_same_f32("softmax_ce_grad special values", grad, want[1].data, 24);
    cr_expect(loss[5] == 0 && grad[20] == 0);
    ir_tensor_free(&want[0]);
    ir_tensor_free(&want[1]);
    ce_free(&c);
}

/* ---- argmax, cumsum ---- */

static void check_scan(const char *op, ag_dtype dt, const axis_case *ac, uint32_t seed)
{
    ir_shape s = shape_of(ac->rank, ac->dim), so = strcmp(op, "argmax") == 0 ? drop_axis(&s, ac->axis) : s;
    ag_dtype odt = strcmp(op, "argmax") == 0 ? AG_I32 : dt;
    char dims[64], odims[64], text[512], what[160];
    dims_str(&s, dims, sizeof dims);
    dims_str(&so, odims, sizeof odims);
    const char *tn = dt == AG_F32 ? "f32" : "i32", *otn = odt == AG_F32 ? "f32" : "i32";
    snprintf(text, sizeof text, "graph @t {\n  %%x: %s%s = input\n  %%0: %s%s = %s %%x axis=%d\n  return o: %%0\n}\n",
             tn, dims, otn, odims, op, ac->axis);
    ir_tensor in = ir_tensor_new(dt, &s), want;
    int64_t n = ir_tensor_numel(&in), nout = ir_numel(&so, 1), outer, len, inner;
    around(&s, ac->axis, &outer, &len, &inner);
    bool argmax = strcmp(op, "argmax") == 0;
    if (dt == AG_F32) {
        float *x = in.data;
        fill_f32(x, n, 2, seed, argmax); /* ties for argmax */
        if (argmax)                      /* NaN in some rows, not at their start */
            for (int64_t i = 5; i < n; i += 17)
                x[i] = NAN;
    } else if (argmax)
        fill_i32(in.data, n, -3, 4, seed); /* ties */
    else {
        fill_i32(in.data, n, -2000000000, 2000000000, seed); /* sums that saturate */
        if (n > 3)
            ((int32_t *)in.data)[0] = INT32_MIN, ((int32_t *)in.data)[1] = INT32_MIN;
    }
    interp(text, &(bound_in){"x", &in}, 1, &want, &f32_run);
    void *got = malloc(4 * (size_t)(n > nout ? n : nout));
    snprintf(what, sizeof what, "%s %s%s axis=%d", op, tn, dims, ac->axis);
    if (argmax) {
        if (dt == AG_F32)
            rt_argmax(in.data, got, outer, len, inner);
        else
            rt_argmax_i32(in.data, got, outer, len, inner);
        expect_same_i32(what, got, want.data, nout);
    } else if (dt == AG_F32) {
        rt_cumsum_f32(in.data, got, outer, len, inner);
        expect_same_f32(what, got, want.data, n);
        rt_cumsum_f32(in.data, in.data, outer, len, inner); /* in place */
        expect_same_f32(what, in.data, want.data, n);
    } else {
        rt_cumsum_i32(in.data, got, outer, len, inner);
        expect_same_i32(what, got, want.data, n);
        rt_cumsum_i32(in.data, in.data, outer, len, inner);
        expect_same_i32(what, in.data, want.data, n);
    }
    free(got);
    ir_tensor_free(&in);
    ir_tensor_free(&want);
}

Test(ops, argmax)
{
    for (int c = 0; c < NCASES; c++) {
        check_scan("argmax", AG_F32, &axis_cases[c], 400 + (uint32_t)c);
        check_scan("argmax", AG_I32, &axis_cases[c], 400 + (uint32_t)c);
    }
}

Test(ops, argmax_special_values)
{
    /* rows: NaN first, NaN after the maximum, -inf everywhere, ties, +inf then NaN */
    static const float x[][4] = {
        {NAN, 9, 9, 1}, {1, 9, NAN, 9},        {-INFINITY, -INFINITY, -INFINITY, -INFINITY},
        {2, 5, 5, 5},   {INFINITY, 1, NAN, 1}, {-0.0f, 0.0f, -0.0f, 0.0f},
    };
    enum { R = sizeof x / sizeof x[0] };
    static const int32_t want[R] = {0, 2, 0, 1, 2, 0};
    int32_t got[R], gotc[R];
    float xt[4 * R];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < 4; j++)
            xt[j * R + r] = x[r][j];
    rt_argmax(&x[0][0], got, R, 4, 1);
    rt_argmax(xt, gotc, 1, 4, R);
    expect_same_i32("argmax special values", got, want, R);
    expect_same_i32("argmax special values as columns", gotc, want, R);
    /* and the interpreter agrees */
    ir_shape s = {2, {R, 4}};
    ir_tensor in = ir_tensor_new(AG_F32, &s), ref;
    memcpy(in.data, x, sizeof x);
    interp("graph @t {\n  %x: f32[6,4] = input\n  %0: i32[6] = argmax %x axis=1\n  return o: %0\n}\n",
           &(bound_in){"x", &in}, 1, &ref, &f32_run);
    expect_same_i32("argmax special values, interpreter", ref.data, want, R);
    ir_tensor_free(&in);
    ir_tensor_free(&ref);
}

Test(ops, cumsum)
{
    worst_rel = 0;
    for (int c = 0; c < NCASES; c++) {
        check_scan("cumsum", AG_F32, &axis_cases[c], 500 + (uint32_t)c);
        check_scan("cumsum", AG_I32, &axis_cases[c], 500 + (uint32_t)c);
    }
    cr_log_info("ops: cumsum: largest relative error %.3g", worst_rel);
}

/* ---- dropout ---- */

Test(ops, dropout)
{
    static const double ps[] = {0, 0.1, 0.5, 1.0 / 3, 0.9, 1};
    static const int64_t dims[][2] = {{1, 10}, {7, 10}, {256, 10}, {1000, 10}, {3, 5001}};
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++)
        for (size_t q = 0; q < sizeof ps / sizeof ps[0]; q++) {
            ir_shape s = {2, {dims[t][0], dims[t][1]}};
            char sd[64], text[512], what[160];
            dims_str(&s, sd, sizeof sd);
            uint32_t site = 1 + (uint32_t)q;
            snprintf(text, sizeof text,
                     "graph @t {\n  %%x: f32%s = input\n  %%0: f32%s = dropout %%x p=%.17g site=%u\n"
                     "  return o: %%0\n}\n",
                     sd, sd, ps[q], site);
            ir_tensor in = ir_tensor_new(AG_F32, &s), want;
            int64_t n = ir_tensor_numel(&in);
            fill_f32(in.data, n, 1, 600 + (uint32_t)t, false);
            ((float *)in.data)[n / 2] = NAN; /* dropped or kept, the mask decides */
            ir_run run = {
                .batch = 1, .seed = 1234 + (uint32_t)t, .step = 77 + (uint64_t)q * 0x100000000ull, .training = true};
            interp(text, &(bound_in){"x", &in}, 1, &want, &run);
            float *got = malloc(sizeof *got * (size_t)n);
            rt_dropout(in.data, got, n, ps[q], run.seed, site, run.step, 0);
            snprintf(what, sizeof what, "dropout %s p=%g", sd, ps[q]);
            expect_same_f32(what, got, want.data, n);
            /* in pieces that start anywhere in a Philox block, one of them in place */
            memset(got, 0xff, sizeof *got * (size_t)n);
            for (int64_t first = 0, piece = 1; first < n; first += piece, piece = piece * 3 + 2) {
                int64_t m = n - first < piece ? n - first : piece;
                memcpy(got + first, (float *)in.data + first, sizeof *got * (size_t)m);
                rt_dropout(got + first, got + first, m, ps[q], run.seed, site, run.step, first);
            }
            snprintf(what, sizeof what, "dropout %s p=%g in pieces", sd, ps[q]);
            expect_same_f32(what, got, want.data, n);
            free(got);
            ir_tensor_free(&in);
            ir_tensor_free(&want);
        }
}

/* ---- timing ---- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

Test(ops, softmax_ce_both_timing)
{
    static const int64_t rows_list[] = {256, 1000};
    for (size_t t = 0; t < 2; t++) {
        int64_t rows = rows_list[t], classes = 10;
        ce_data c = ce_make(rows, classes, 700);
        float *loss = malloc(sizeof *loss * (size_t)rows), *grad = malloc(sizeof *grad * (size_t)(rows * classes));
        float scale = 1.0f / (float)rows;
        for (int64_t r = 0; r < rows; r++)
            c.d[r] = scale;
        double best_both = INFINITY, best_sep = INFINITY;
        for (int rep = 0; rep < 5; rep++) {
            int iters = (int)(200000 / rows);
            double t0 = now();
            for (int i = 0; i < iters; i++)
                rt_softmax_ce_both(c.x, c.y, scale, loss, grad, rows, classes);
            double t1 = now();
            for (int i = 0; i < iters; i++) {
                rt_softmax_ce(c.x, c.y, loss, rows, classes);
                rt_softmax_ce_grad(c.x, c.y, c.d, grad, rows, classes);
            }
            double t2 = now();
            best_both = fmin(best_both, (t1 - t0) / iters);
            best_sep = fmin(best_sep, (t2 - t1) / iters);
        }
        cr_log_info("ops: softmax_ce_both %lldx%lld: %.2f us a call (%.1f ns a row); softmax_ce + "
                    "softmax_ce_grad: %.2f us",
                    (long long)rows, (long long)classes, best_both * 1e6, best_both * 1e9 / rows, best_sep * 1e6);
        cr_expect(isfinite(loss[0]) || c.y[0] < 0 || c.y[0] >= classes);
        free(loss);
        free(grad);
        ce_free(&c);
    }
}
