/* The kernel IR run with plain C loops: what each step means, element by element, as the
 * reference interpreter computes it in f32 mode. Slow and simple; the generated backends
 * are tested against it and against the interpreter. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bug.h"
#include "lower.h"
#include "rt_ops.h"

static int64_t at_n(cg_dim d, int64_t n) { return d.k + d.n * n; }

static char *address(const cg_program *p, const cg_args *a, int32_t buf)
{
    const cg_buffer *b = &p->buffers[buf];
    int64_t off = at_n(b->offset, a->batch);
    switch (b->region) {
    case CG_ARENA: return a->arena + off;
    case CG_PARAMS: return a->params + off;
    case CG_INPUT: return (char *)a->inputs[b->index] + off;
    case CG_OUTPUT: return (char *)a->outputs[b->index] + off;
    }
    ir_bug("exec: a step the kernel IR does not have");
}

static double load(ag_dtype t, const char *at)
{
    switch (t) {
    case AG_F32: return *(const float *)at;
    case AG_I32: return *(const int32_t *)at;
    case AG_U8: return *(const uint8_t *)at;
    case AG_BOOL: return *(const uint8_t *)at != 0;
    default: ir_bug("exec: a step the kernel IR does not have");
    }
}

/* the interpreter's conversions: NaN to 0, truncation, saturation */
static void store(ag_dtype t, char *at, double v)
{
    switch (t) {
    case AG_F32: *(float *)at = (float)v; return;
    case AG_I32:
        *(int32_t *)at = v != v ? 0 : v <= -2147483648.0 ? INT32_MIN : v >= 2147483647.0 ? INT32_MAX : (int32_t)v;
        return;
    case AG_U8: *(uint8_t *)at = v != v || v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v; return;
    case AG_BOOL: *(uint8_t *)at = v != 0; return;
    default: ir_bug("exec: a step the kernel IR does not have");
    }
}

/* One elementwise op of the table on scalars, in float or in double as the interpreter. */
#define S_T float
#include "scalar.h"
static float op_float(ir_op op, float a, float b, float c)
{
    (void)a, (void)b, (void)c;
    switch (op) {
#define EW_F(name, arity, scalar, ...) \
    case IR_##name: return (float)(scalar);
#define SKIP(...)
        IR_OPS(EW_F, SKIP)
    default: ir_bug("exec: a step the kernel IR does not have");
    }
}
#undef S_T
#define S_T double
static double op_double(ir_op op, double a, double b, double c)
{
    (void)a, (void)b, (void)c;
    switch (op) {
#define EW_D(name, arity, scalar, ...) \
    case IR_##name: return (double)(scalar);
        IR_OPS(EW_D, SKIP)
    default: ir_bug("exec: a step the kernel IR does not have");
    }
}
#undef S_T

static double convert(ag_dtype t, double v)
{
    char tmp[8];
    store(t, tmp, v);
    return load(t, tmp);
}

static int64_t offset_of(const cg_access *x, int rank, const int64_t *idx, int64_t n)
{
    int64_t off = at_n(x->offset, n);
    for (int i = 0; i < rank; i++)
        off += idx[i] * at_n(x->stride[i], n);
    return off;
}

static void run_loop(const cg_program *p, const cg_args *a, const cg_loop *l)
{
    int64_t n = a->batch, ext[IR_MAX_RANK], idx[IR_MAX_RANK] = {0}, total = 1;
    for (int i = 0; i < l->rank; i++)
        total *= ext[i] = at_n(l->extent[i], n);
    double v[CG_MAX_EXPRS];
    if (l->reduce) /* the reduced targets start at the identity */
        for (int64_t e = 0; e < total; e++) {
            for (int k = 0; k < l->nstores; k++) {
                const cg_store *s = &l->store[k];
                ag_dtype t = p->buffers[s->at.buffer].dtype;
                store(t, address(p, a, s->at.buffer) + offset_of(&s->at, l->rank, idx, n) * (int64_t)ir_dtype_size(t),
                      l->combine == IR_max ? -INFINITY : 0);
            }
            for (int i = l->rank - 1; i >= 0 && ++idx[i] == ext[i]; i--)
                idx[i] = 0;
        }
    for (int64_t e = 0; e < total; e++) {
        for (int k = 0; k < l->nexprs; k++) {
            const cg_expr *x = &l->expr[k];
            switch (x->kind) {
            case CG_E_LOAD: {
                const cg_access *ac = &l->load[x->load];
                ag_dtype t = p->buffers[ac->buffer].dtype;
                v[k] = convert(x->dtype, load(t, address(p, a, ac->buffer) +
                                                     offset_of(ac, l->rank, idx, n) * (int64_t)ir_dtype_size(t)));
                break;
            }
            case CG_E_CONST: v[k] = x->value; break;
            case CG_E_INDEX: v[k] = (double)idx[x->axis]; break;
            case CG_E_OP: {
                bool single = x->dtype == AG_F32;
                const int32_t args[3] = {x->a, x->b, x->c};
                for (int j = 0; j < 3; j++)
                    single &= args[j] < 0 || l->expr[args[j]].dtype == AG_F32;
                double A = x->a >= 0 ? v[x->a] : 0, B = x->b >= 0 ? v[x->b] : 0, C = x->c >= 0 ? v[x->c] : 0;
                v[k] = single ? op_float(x->op, (float)A, (float)B, (float)C)
                              : convert(x->dtype, op_double(x->op, A, B, C));
                break;
            }
            }
        }
        for (int k = 0; k < l->nstores; k++) {
            const cg_store *s = &l->store[k];
            ag_dtype t = p->buffers[s->at.buffer].dtype;
            char *to = address(p, a, s->at.buffer) + offset_of(&s->at, l->rank, idx, n) * (int64_t)ir_dtype_size(t);
            double x = v[s->expr];
            if (l->reduce && l->combine == IR_sum)
                x = t == AG_F32 ? (double)(float)(load(t, to) + x) : load(t, to) + x;
            else if (l->reduce) {
                double cur = load(t, to);
                x = cur != cur || !(x > cur || x != x) ? cur : x;
            }
            store(t, to, x);
        }
        for (int i = l->rank - 1; i >= 0 && ++idx[i] == ext[i]; i--)
            idx[i] = 0;
    }
}

static float scalar(const cg_program *p, const cg_args *a, const cg_gemm *g, int32_t e)
{
    const cg_expr *x = &g->expr[e];
    switch (x->kind) {
    case CG_E_CONST: return (float)x->value;
    case CG_E_LOAD:
        return *(const float *)(address(p, a, g->load[x->load].buffer) + at_n(g->load[x->load].offset, a->batch) * 4);
    case CG_E_OP:
        return op_float(x->op, x->a >= 0 ? scalar(p, a, g, x->a) : 0, x->b >= 0 ? scalar(p, a, g, x->b) : 0, 0);
    default: ir_bug("exec: a step the kernel IR does not have");
    }
}

static void run_gemm(const cg_program *p, const cg_args *a, const cg_gemm *g)
{
    int64_t n = a->batch, M = at_n(g->m, n), N = at_n(g->n, n), K = at_n(g->k, n);
    float *A = (float *)(address(p, a, g->a.buffer)) + at_n(g->a.offset, n);
    float *B = (float *)(address(p, a, g->b.buffer)) + at_n(g->b.offset, n);
    float *C = (float *)(address(p, a, g->c.buffer)) + at_n(g->c.offset, n);
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                (int)K, scalar(p, a, g, g->alpha), A, g->ta ? (int)M : (int)K, B, g->tb ? (int)K : (int)N,
                scalar(p, a, g, g->beta), C, (int)N);
}

/* the window routines, by their operand count: (in, out) or (in, dy, out) */
typedef void window2_fn(const float *, float *, int64_t, const rt_window *, rt_pool *);
typedef void window3_fn(const float *, const float *, float *, int64_t, const rt_window *, rt_pool *);
static void call_window2(window2_fn *f, void **x, int64_t batch, const rt_window *w) { f(x[0], x[1], batch, w, NULL); }
static void call_window3(window3_fn *f, void **x, int64_t batch, const rt_window *w)
{
    f(x[0], x[1], x[2], batch, w, NULL);
}

/* a rank's first element of a dropout's tensor: its share's first row (ag_args.row0) times
 * the elements of a row, where the tensor has the batch's rows */
static int64_t dropout_first(const cg_call *c, const cg_args *a, int64_t count)
{
    bool batched = c->rows.n || c->len.n || c->inner.n;
    return batched && a->batch > 0 ? a->row0 * (count / a->batch) : 0;
}

static void run_call(const cg_program *p, const cg_args *a, const cg_call *c)
{
    int64_t n = a->batch, rows = at_n(c->rows, n), len = at_n(c->len, n), inner = at_n(c->inner, n);
    void *x[5];
    for (int k = 0; k < c->nargs; k++)
        x[k] = address(p, a, c->arg[k].buffer) +
               at_n(c->arg[k].offset, n) * (int64_t)ir_dtype_size(p->buffers[c->arg[k].buffer].dtype);
    bool i32 = p->buffers[c->arg[0].buffer].dtype == AG_I32;
    /* each signature of runtime/rt_ops.h's table, as a call */
#define CALL_ROWS(f) f(x[0], x[1], rows, len, inner)
#define CALL_CE(f) f(x[0], x[1], x[2], rows, len)
#define CALL_CE_GRAD(f) f(x[0], x[1], x[2], x[3], rows, len)
#define CALL_DROPOUT(f) \
    f(x[0], x[1], rows *len *inner, c->p, a->seed, (uint32_t)c->site, a->step, dropout_first(c, a, rows *len *inner))
#define CALL_WINDOW(f) _Generic((f), window2_fn *: call_window2, window3_fn *: call_window3)(f, x, rows, &c->win)
#define CALL_CONV(f) f(x[0], x[1], x[2], rows, &c->win, x[3], NULL)
#define CALL_CONV_DW(f) f(x[0], x[1], x[2], x[4], rows, &c->win, x[3], NULL)
#define CALL_COLLECTIVE(f) f(x[0], rows, c->bucket, c->wait, a->dist)
#define RUN(op, f32, i32fn, sig, n) \
    case IR_##op:                   \
        if (i32)                    \
            CALL_##sig(i32fn);      \
        else                        \
            CALL_##sig(f32);        \
        return;
    switch (c->op) {
        RT_ROUTINES(RUN)
    default: ir_bug("exec: no runtime routine for %s", ir_ops[c->op].name);
    }
#undef RUN
}

void cg_exec(const cg_program *p, const cg_args *a)
{
    for (int i = 0; i < p->nsteps; i++) {
        const cg_step *s = &p->steps[i];
        switch (s->kind) {
        case CG_LOOP: run_loop(p, a, &s->loop); break;
        case CG_GEMM: run_gemm(p, a, &s->gemm); break;
        case CG_CALL: run_call(p, a, &s->call); break;
        }
    }
}
