/* The random-model generator: valid models from the op table's DSL, seeded.
 *
 * A model grows from a pool of values: each action picks operands from the pool (recent
 * ones more often, so chains grow deep) or makes what it needs (a parameter of a shape that
 * broadcasts, an input, a transform of a value), calls one DSL builder, and reads the new
 * value's dtype and shape back from the graph being built. Every value carries a range that
 * holds for any data the binder draws (inputs N(0,1) within 7 sigma, labels, bytes, the
 * parameters' initializers), so that an op with a domain (log, sqrt, div, pow, exp) gets an
 * operand inside it, made positive or bounded first where none is, and i32 arithmetic stays
 * exact. What ranges cannot see (a value near a kink or a tie) the oracles find on the data
 * and redraw. A step the DSL refuses is a bug of the generator or of the DSL: reported. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "recipe.h"

enum { BATCH = 64 }; /* the declared batch: the largest the oracles bind */

typedef struct range {
    double lo, hi;
} range;

typedef struct gen {
    uint64_t rng;
    const fz_gen_opts *o;
    fz_model *m;
    fz_builder b;
    range r[FZ_MAX_STEPS];
    bool grad[FZ_MAX_STEPS]; /* a gradient flows into it from a parameter or a grad input */
    int nparams, ninputs;
    int x, y;                /* data-shaped: the two inputs */
    bool failed;
    char *err;
    size_t len;
} gen;

/* ---- randomness (splitmix64) ---- */

static uint64_t next(gen *G) { return fz_mix64(&G->rng); }
static int rnd(gen *G, int n) { return n <= 1 ? 0 : (int)(next(G) % (uint64_t)n); }
static double uniform(gen *G) { return (double)(next(G) >> 11) * 0x1p-53; }
static bool chance(gen *G, double p) { return uniform(G) < p; }
static int between(gen *G, int lo, int hi) { return lo + rnd(G, hi - lo + 1); }
/* a short float that prints exactly */
static double pick_number(gen *G, double lo, double hi) { return round((lo + (hi - lo) * uniform(G)) * 64) / 64; }

/* ---- the values ---- */

static const ir_node *nd(const gen *G, int k) { return &G->b.g->node[G->b.v[k].id]; }
static ir_shape shape(const gen *G, int k) { return nd(G, k)->shape; }
static ag_dtype dtype(const gen *G, int k) { return nd(G, k)->dtype; }
static int rank(const gen *G, int k) { return nd(G, k)->shape.rank; }
static double maxabs(range r) { return fmax(fabs(r.lo), fabs(r.hi)); }
static bool has_n(const ir_shape *s)
{
    for (int i = 0; i < s->rank; i++)
        if (s->dim[i] == AG_N)
            return true;
    return false;
}
static int64_t extent(int64_t d) { return d == AG_N ? BATCH : d; }
static int64_t numel_item(const ir_shape *s) /* elements per batch item */
{
    int64_t e = 1;
    for (int i = 0; i < s->rank; i++)
        e *= s->dim[i] == AG_N ? 1 : s->dim[i];
    return e;
}
static int64_t numel(const ir_shape *s) { return numel_item(s) * (has_n(s) ? BATCH : 1); }

static fz_step step_of(fz_kind k)
{
    fz_step s;
    memset(&s, 0, sizeof s);
    s.kind = k;
    return s;
}
static fz_arg A(int k) { return (fz_arg){k, 0}; }
static fz_arg IMM(double x) { return (fz_arg){-1, x}; }
static range arg_range(const gen *G, fz_arg a) { return a.step < 0 ? (range){a.imm, a.imm} : G->r[a.step]; }
static bool arg_grad(const gen *G, fz_arg a) { return a.step >= 0 && G->grad[a.step]; }

static range hull(range a, range b) { return (range){fmin(a.lo, b.lo), fmax(a.hi, b.hi)}; }
static range prod(range a, range b)
{
    double p[4] = {a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi};
    range r = {p[0], p[0]};
    for (int i = 1; i < 4; i++)
        r.lo = fmin(r.lo, p[i]), r.hi = fmax(r.hi, p[i]);
    return r;
}
static double sigm(double x) { return 1 / (1 + exp(-x)); }

static range ew_range(ir_op op, range a, range b, range c, ag_dtype t)
{
    switch (op) {
    case IR_neg:
        return (range){-a.hi, -a.lo};
    case IR_exp:
        return (range){exp(a.lo), exp(a.hi)};
    case IR_log:
        return (range){log(a.lo), log(a.hi)};
    case IR_abs:
    case IR_square: {
        range m = a.lo >= 0 ? a : a.hi <= 0 ? (range){-a.hi, -a.lo} : (range){0, maxabs(a)};
        return op == IR_abs ? m : (range){m.lo * m.lo, m.hi * m.hi};
    }
    case IR_sqrt:
        return (range){sqrt(a.lo), sqrt(a.hi)};
    case IR_relu:
        return (range){fmax(a.lo, 0), fmax(a.hi, 0)};
    case IR_sigmoid:
        return (range){sigm(a.lo), sigm(a.hi)};
    case IR_tanh:
        return (range){tanh(a.lo), tanh(a.hi)};
    case IR_cast:
        if (t == AG_BOOL)
            return (range){0, 1};
        if (t == AG_U8)
            return (range){fmin(fmax(trunc(a.lo), 0), 255), fmin(fmax(trunc(a.hi), 0), 255)};
        if (t == AG_I32)
            return (range){trunc(a.lo), trunc(a.hi)};
        return a;
    case IR_stop_gradient:
        return a;
    case IR_add:
        return (range){a.lo + b.lo, a.hi + b.hi};
    case IR_sub:
        return (range){a.lo - b.hi, a.hi - b.lo};
    case IR_mul:
        return prod(a, b);
    case IR_div:
        return prod(a, (range){1 / b.hi, 1 / b.lo});
    case IR_pow: {
        double p[4] = {pow(a.lo, b.lo), pow(a.lo, b.hi), pow(a.hi, b.lo), pow(a.hi, b.hi)};
        range r = {p[0], p[0]};
        for (int i = 1; i < 4; i++)
            r.lo = fmin(r.lo, p[i]), r.hi = fmax(r.hi, p[i]);
        return r;
    }
    case IR_maximum:
        return (range){fmax(a.lo, b.lo), fmax(a.hi, b.hi)};
    case IR_minimum:
        return (range){fmin(a.lo, b.lo), fmin(a.hi, b.hi)};
    case IR_where:
        return hull(b, c);
    default: /* comparisons */
        return (range){0, 1};
    }
}

/* The range of step k's value and whether a gradient reaches it. */
static void derive(gen *G, int k)
{
    const fz_step *s = &G->m->step[k];
    const ir_node *n = nd(G, k);
    range a = s->nargs > 0 ? arg_range(G, s->arg[0]) : (range){0, 0};
    range b = s->nargs > 1 ? arg_range(G, s->arg[1]) : (range){0, 0};
    bool ga = s->nargs > 0 && arg_grad(G, s->arg[0]), gb = s->nargs > 1 && arg_grad(G, s->arg[1]);
    bool f32 = n->dtype == AG_F32;
    range r = a;
    bool grad = false;
    const ir_shape *as = s->nargs > 0 && s->arg[0].step >= 0 ? &nd(G, s->arg[0].step)->shape : NULL;
    switch (s->kind) {
    case FZ_INPUT:
        r = s->dtype == AG_F32 ? (range){-7, 7} : s->dtype == AG_U8 ? (range){0, 255} : s->dtype == AG_BOOL ? (range){0, 1}
                                                                                      : (range){0, 9};
        break;
    case FZ_PARAM: {
        ag_init in = s->init;
        if (in.kind == AG_INIT_ZEROS)
            r = (range){0, 0};
        else if (in.kind == AG_INIT_CONSTANT)
            r = (range){in.a, in.a};
        else if (in.kind == AG_INIT_NORMAL)
            r = (range){in.a - 7 * in.b, in.a + 7 * in.b};
        else if (in.kind == AG_INIT_UNIFORM)
            r = (range){in.a, in.b};
        else {
            double fi = n->shape.rank ? (double)n->shape.dim[0] : 1, fo = n->shape.rank > 1 ? (double)n->shape.dim[1] : fi;
            double lim = sqrt(6 / (fi + fo));
            r = (range){-lim, lim};
        }
        grad = true;
        break;
    }
    case FZ_CONST:
    case FZ_FULL:
        r = (range){s->value, s->value};
        break;
    case FZ_EW: {
        range c = s->nargs > 2 ? arg_range(G, s->arg[2]) : (range){0, 0};
        r = ew_range(s->op, a, b, c, n->dtype);
        bool gc = s->nargs > 2 && arg_grad(G, s->arg[2]);
        grad = f32 && s->op != IR_stop_gradient && (s->op == IR_where ? gb || gc : ga || gb || gc);
        break;
    }
    case FZ_CAST:
        r = ew_range(IR_cast, a, b, b, n->dtype);
        grad = f32 && ga && dtype(G, s->arg[0].step) == AG_F32;
        break;
    case FZ_REDUCE: {
        double count = 1;
        unsigned axes = 0;
        for (int i = 0; i < s->dims.n; i++)
            axes |= 1u << ((s->dims.d[i] + as->rank) % as->rank);
        if (s->dims.n == 0)
            axes = (1u << as->rank) - 1;
        for (int i = 0; i < as->rank; i++)
            if (axes >> i & 1)
                count *= (double)extent(as->dim[i]);
        if (s->op == IR_sum)
            r = (range){fmin(a.lo, a.lo * count), fmax(a.hi, a.hi * count)};
        grad = ga;
        break;
    }
    case FZ_ARGMAX:
        r = (range){0, (double)extent(as->dim[(s->axis + as->rank) % as->rank]) - 1};
        break;
    case FZ_CUMSUM: {
        double count = (double)extent(as->dim[(s->axis + as->rank) % as->rank]);
        r = (range){fmin(a.lo, a.lo * count), fmax(a.hi, a.hi * count)};
        grad = ga;
        break;
    }
    case FZ_MATMUL: {
        int64_t kk = extent(as->dim[as->rank - 1]);
        double m = maxabs(a) * maxabs(b) * (double)kk;
        r = a.lo >= 0 && b.lo >= 0 ? (range){0, m} : (range){-m, m};
        grad = ga || gb;
        break;
    }
    case FZ_TRANSPOSE:
    case FZ_RESHAPE:
    case FZ_FLATTEN:
    case FZ_BROADCAST:
    case FZ_SLICE:
    case FZ_REQUIRES_GRAD:
        grad = ga || (s->kind == FZ_REQUIRES_GRAD);
        break;
    case FZ_CONCAT:
        for (int i = 0; i < s->nargs; i++) {
            r = hull(r, arg_range(G, s->arg[i]));
            grad |= arg_grad(G, s->arg[i]);
        }
        break;
    case FZ_SOFTMAX: {
        double len = (double)extent(as->dim[s->axis_given ? (s->axis + as->rank) % as->rank : as->rank - 1]);
        r = s->op == IR_softmax ? (range){0, 1} : (range){-(a.hi - a.lo) - log(len) - 1, 0};
        grad = ga;
        break;
    }
    case FZ_ONE_HOT:
        r = (range){0, 1};
        break;
    case FZ_CROSS_ENTROPY:
        r = (range){0, (a.hi - a.lo) + log((double)extent(as->dim[1])) + 1};
        grad = ga;
        break;
    case FZ_SQUARED_LOSS:
    case FZ_MSE: {
        double d = fmax(fabs(a.hi - b.lo), fabs(b.hi - a.lo));
        r = (range){0, d * d};
        grad = ga || gb;
        break;
    }
    case FZ_DROPOUT: {
        double scale = s->value < 1 ? 1 / (1 - s->value) : 0;
        r = hull((range){0, 0}, (range){a.lo * scale, a.hi * scale});
        grad = ga;
        break;
    }
    case FZ_NORM: {
        double count = (double)numel(as);
        r = (range){0, s->form == 0 ? count * maxabs(a) : sqrt(count) * maxabs(a)};
        grad = ga;
        break;
    }
    case FZ_CORRECT:
        r = (range){0, (double)numel(as)};
        break;
    case FZ_KIND_COUNT:
        break;
    }
    if (s->kind == FZ_INPUT || s->kind == FZ_REQUIRES_GRAD)
        grad = s->kind == FZ_REQUIRES_GRAD;
    G->r[k] = r;
    G->grad[k] = grad && f32;
}

/* Appends s; its index, or -1 (the generation failed, or the model is full). */
static int add(gen *G, fz_step s)
{
    if (G->failed || G->m->n >= FZ_MAX_STEPS - 16)
        return -1;
    int k = G->m->n++;
    G->m->step[k] = s;
    ag_val v = fz_build_step(&G->b, G->m, k);
    if (v.id < 0) {
        int e = ag_graph_error_count(G->b.g);
        snprintf(G->err, G->len, "the DSL refused step %d of a generated model: %s", k,
                 e ? ag_graph_error(G->b.g, e - 1) : "(no message)");
        G->failed = true;
        G->m->n--;
        return -1;
    }
    derive(G, k);
    return k;
}

/* ---- choosing operands ---- */

typedef struct want {
    unsigned dtypes;      /* bit 1 << ag_dtype */
    int min_rank, max_rank;
    bool positive;        /* range within [0.05, 1e3] */
    bool nonzero;         /* range excludes [-0.05, 0.05] */
    double max_abs;       /* 0: 1e4 */
    bool grad;            /* carries a gradient */
    bool no_n;            /* no batch axis */
    const ir_shape *bcast; /* broadcasts with this shape, into it */
} want;

#define F32 (1u << AG_F32)
#define I32 (1u << AG_I32)
#define U8 (1u << AG_U8)
#define BOOL (1u << AG_BOOL)
#define NUM (F32 | I32)
#define ANY (F32 | I32 | U8 | BOOL)

/* b broadcasts into a's shape: every axis of b (aligned right) is 1 or a's extent. */
static bool bcast_into(const ir_shape *b, const ir_shape *a)
{
    if (b->rank > a->rank)
        return false;
    for (int i = 0; i < b->rank; i++) {
        int64_t db = b->dim[i], da = a->dim[i + a->rank - b->rank];
        if (db != da && db != 1)
            return false;
    }
    return true;
}

static bool fits(const gen *G, int k, const want *w)
{
    const ir_node *n = nd(G, k);
    range r = G->r[k];
    if (!(w->dtypes >> n->dtype & 1) || n->shape.rank < w->min_rank || n->shape.rank > w->max_rank)
        return false;
    if (w->positive && !(r.lo >= 0.05 && r.hi <= 1e3))
        return false;
    if (w->nonzero && !(r.lo >= 0.05 || r.hi <= -0.05))
        return false;
    if (maxabs(r) > (w->max_abs ? w->max_abs : 1e4))
        return false;
    if (w->grad && !G->grad[k])
        return false;
    if (w->no_n && has_n(&n->shape))
        return false;
    if (w->bcast && !bcast_into(&n->shape, w->bcast))
        return false;
    return true;
}

/* A value of the pool that fits w, recent ones likelier; -1 if none. */
static int pick(gen *G, const want *w)
{
    int cand[FZ_MAX_STEPS], n = 0;
    int64_t total = 0, weight[FZ_MAX_STEPS];
    for (int k = 0; k < G->m->n; k++)
        if (fits(G, k, w)) {
            cand[n] = k;
            weight[n] = k + 4;
            total += weight[n++];
        }
    if (!n)
        return -1;
    int64_t r = (int64_t)(next(G) % (uint64_t)total);
    for (int i = 0; i < n; i++)
        if ((r -= weight[i]) < 0)
            return cand[i];
    return cand[n - 1];
}

static want of_types(unsigned dtypes) { return (want){.dtypes = dtypes, .min_rank = 0, .max_rank = 4}; }

/* ---- making values ---- */

static ag_init random_init(gen *G)
{
    switch (rnd(G, 10)) {
    case 0:
        return ag_uniform(pick_number(G, -1, 0), pick_number(G, 0.25, 1));
    case 1:
        return ag_xavier();
    case 2:
        return ag_constant(pick_number(G, -1, 1));
    case 3:
        return chance(G, 0.3) ? ag_zeros() : ag_normal(0, 1);
    default:
        return ag_normal(pick_number(G, -0.25, 0.25), pick_number(G, 0.125, 1));
    }
}

static int new_param(gen *G, ag_dims dims)
{
    if (G->nparams >= 8)
        return -1;
    fz_step s = step_of(FZ_PARAM);
    snprintf(s.name, sizeof s.name, "W%d", G->nparams++);
    s.init = random_init(G);
    s.dims = dims;
    return add(G, s);
}

static int new_input(gen *G, ag_dtype t, ag_dims dims)
{
    if (G->o->data_shaped || G->ninputs >= 5)
        return -1;
    fz_step s = step_of(FZ_INPUT);
    snprintf(s.name, sizeof s.name, "x%d", G->ninputs++);
    s.dtype = t;
    s.dims = dims;
    int k = add(G, s);
    if (k >= 0 && t == AG_F32 && chance(G, 0.15)) {
        fz_step r = step_of(FZ_REQUIRES_GRAD);
        r.nargs = 1;
        r.arg[0] = A(k);
        return add(G, r);
    }
    return k;
}

static int64_t small_dim(gen *G)
{
    int r = rnd(G, 40);
    return r == 0 ? 256 : r < 6 ? 1 : between(G, 2, 8);
}

static ag_dims dims_of(const ir_shape *s)
{
    ag_dims d = {s->rank, {0}};
    for (int i = 0; i < s->rank; i++)
        d.d[i] = s->dim[i];
    return d;
}

/* A parameter's dims that broadcast into shape s: leading axes dropped, N and some others 1. */
static ag_dims param_dims_for(gen *G, const ir_shape *s)
{
    int drop = rnd(G, s->rank + 1);
    if (chance(G, 0.5))
        drop = 0;
    ag_dims d = {0, {0}};
    for (int i = drop; i < s->rank; i++)
        d.d[d.n++] = s->dim[i] == AG_N || chance(G, 0.2) ? 1 : s->dim[i];
    return d;
}

/* A unary op on k. */
static int unary(gen *G, ir_op op, int k)
{
    fz_step s = step_of(FZ_EW);
    s.op = op;
    s.nargs = 1;
    s.arg[0] = A(k);
    return add(G, s);
}

static int binary(gen *G, ir_op op, fz_arg a, fz_arg b)
{
    fz_step s = step_of(FZ_EW);
    s.op = op;
    s.nargs = 2;
    s.arg[0] = a;
    s.arg[1] = b;
    s.form = op == IR_mul && b.step < 0 && chance(G, 0.5); /* ag_scale */
    return add(G, s);
}

/* k (f32) brought within [-limit, limit]: itself, or squashed by tanh and scaled. */
static int bounded(gen *G, int k, double limit)
{
    if (k < 0 || maxabs(G->r[k]) <= limit)
        return k;
    int t = unary(G, IR_tanh, k);
    return t < 0 || limit < 2 || chance(G, 0.5) ? t : binary(G, IR_mul, A(t), IMM(pick_number(G, 1, fmin(limit, 4))));
}

/* k (f32) made positive, within [0.05, 1e3]. */
static int positive(gen *G, int k)
{
    if (k < 0 || (G->r[k].lo >= 0.05 && G->r[k].hi <= 1e3))
        return k;
    switch (rnd(G, 3)) {
    case 0: {
        int b = bounded(G, k, 4);
        return binary(G, IR_add, A(unary(G, IR_square, b)), IMM(pick_number(G, 0.125, 1)));
    }
    case 1:
        return unary(G, IR_exp, bounded(G, k, 4));
    default:
        return binary(G, IR_add, A(unary(G, IR_sigmoid, bounded(G, k, 8))), IMM(pick_number(G, 0.125, 1)));
    }
}

/* An f32 value fitting w, made from the pool if none fits as it is. */
static int f32_value(gen *G, want w)
{
    w.dtypes = F32;
    int k = pick(G, &w);
    if (k >= 0)
        return k;
    want loose = w;
    loose.positive = loose.nonzero = false;
    loose.max_abs = 1e30;
    k = pick(G, &loose);
    if (k < 0) {
        ag_dims d = {0, {0}};
        if (w.bcast)
            d = param_dims_for(G, w.bcast);
        else
            for (int i = 0, r = between(G, w.min_rank > 1 ? w.min_rank : 1, w.max_rank < 2 ? w.max_rank : 2); i < r; i++)
                d.d[d.n++] = small_dim(G);
        if (d.n < w.min_rank || d.n > w.max_rank)
            return -1;
        k = new_param(G, d);
    }
    if (k < 0)
        return -1;
    if (w.positive)
        return positive(G, k);
    if (w.nonzero)
        return chance(G, 0.5) ? positive(G, k) : unary(G, IR_neg, positive(G, k));
    return bounded(G, k, w.max_abs ? w.max_abs : 100);
}

/* A second operand for an elementwise op with first operand k: dtype t, broadcasting into
 * k's shape; a number sometimes. */
static fz_arg second(gen *G, int k, ag_dtype t, want w)
{
    ir_shape s = shape(G, k);
    if (chance(G, 0.2)) {
        if (w.positive)
            return IMM(pick_number(G, 0.25, 4));
        if (w.nonzero)
            return IMM(chance(G, 0.5) ? pick_number(G, 0.25, 4) : -pick_number(G, 0.25, 4));
        return IMM(t == AG_F32 ? pick_number(G, -3, 3) : (double)between(G, t == AG_U8 ? 0 : -3, t == AG_U8 ? 255 : 9));
    }
    w.dtypes = 1u << t;
    w.bcast = &s;
    w.min_rank = 0;
    w.max_rank = 4;
    int b = pick(G, &w);
    if (b >= 0 && b != k)
        return A(b);
    if (t == AG_F32)
        return A(f32_value(G, w));
    if (chance(G, 0.5) && !G->o->data_shaped)
        return A(new_input(G, t, dims_of(&s)));
    return IMM((double)between(G, 0, t == AG_U8 ? 255 : 9));
}

/* ---- actions: each adds one builder call (and what it needs); false if it could not ---- */

static bool act_unary_float(gen *G)
{
    static const ir_op ops[] = {IR_exp, IR_log, IR_sqrt, IR_sigmoid, IR_tanh};
    ir_op op = ops[rnd(G, 5)];
    want w = of_types(F32);
    w.positive = op == IR_log || op == IR_sqrt;
    w.max_abs = op == IR_exp ? 8 : 1e4;
    int k = f32_value(G, w);
    return k >= 0 && unary(G, op, k) >= 0;
}

static bool act_unary_num(gen *G)
{
    static const ir_op ops[] = {IR_neg, IR_abs, IR_square, IR_relu};
    ir_op op = ops[rnd(G, 4)];
    want w = of_types(chance(G, 0.75) ? F32 : I32);
    w.max_abs = op == IR_square ? 100 : 1e4;
    int k = pick(G, &w);
    if (k < 0 && w.dtypes == F32)
        k = f32_value(G, w);
    return k >= 0 && unary(G, op, k) >= 0;
}

static bool act_cast(gen *G)
{
    want w = of_types(ANY);
    w.max_abs = 1e6;
    int k = pick(G, &w);
    if (k < 0)
        return false;
    ag_dtype from = dtype(G, k), to;
    do
        to = (ag_dtype)rnd(G, 4);
    while (to == from);
    fz_step s = step_of(FZ_CAST);
    s.nargs = 1;
    s.arg[0] = A(k);
    s.dtype = to;
    return add(G, s) >= 0;
}

static bool act_stop_gradient(gen *G)
{
    want w = of_types(chance(G, 0.8) ? F32 : ANY);
    int k = pick(G, &w);
    if (k < 0)
        return false;
    fz_step s = step_of(FZ_EW);
    s.op = IR_stop_gradient;
    s.form = chance(G, 0.5); /* ag_detach */
    s.nargs = 1;
    s.arg[0] = A(k);
    return add(G, s) >= 0;
}

static bool act_binary(gen *G)
{
    static const ir_op ops[] = {IR_add, IR_sub, IR_mul, IR_maximum, IR_minimum, IR_div, IR_pow};
    ir_op op = ops[rnd(G, 7)];
    bool f = op == IR_div || op == IR_pow || chance(G, 0.8);
    want w = of_types(f ? F32 : I32);
    w.max_abs = op == IR_mul ? 100 : op == IR_pow ? 1e3 : 1e4;
    if (op == IR_pow)
        w.positive = true;
    int k = f ? f32_value(G, w) : pick(G, &w);
    if (k < 0)
        return false;
    want w2 = of_types(0);
    w2.max_abs = op == IR_mul ? 100 : 1e4;
    if (op == IR_div)
        w2.nonzero = true;
    if (op == IR_pow) { /* small exponents: a number, or a bounded value */
        if (chance(G, 0.6))
            return binary(G, op, A(k), IMM((double)between(G, -4, 6) / 2)) >= 0;
        w2.max_abs = 2;
    }
    fz_arg b = second(G, k, f ? AG_F32 : AG_I32, w2);
    if (b.step < 0 && b.imm == 0 && op == IR_div)
        b.imm = 2;
    if (b.step < 0 && G->failed)
        return false;
    /* the number may come first: 1 / x, 2 - x */
    if (b.step < 0 && op != IR_div && op != IR_pow && chance(G, 0.3))
        return binary(G, op, b, A(k)) >= 0;
    if (op == IR_div && chance(G, 0.2) && maxabs(G->r[k]) > 0) { /* a number over a value */
        int d = k;
        if (!(G->r[d].lo >= 0.05 || G->r[d].hi <= -0.05))
            d = positive(G, d);
        return d >= 0 && binary(G, op, IMM(pick_number(G, -2, 2)), A(d)) >= 0;
    }
    return binary(G, op, A(k), b) >= 0;
}

static bool act_compare(gen *G)
{
    static const ir_op ops[] = {IR_lt, IR_le, IR_gt, IR_ge, IR_eq, IR_ne};
    ir_op op = ops[rnd(G, 6)];
    unsigned t = chance(G, 0.6) ? F32 : chance(G, 0.5) ? I32 : U8;
    want w = of_types(t);
    int k = pick(G, &w);
    if (k < 0)
        return false;
    fz_arg b = second(G, k, dtype(G, k), of_types(0));
    if (b.step < 0 && G->failed)
        return false;
    return binary(G, op, A(k), b) >= 0;
}

static bool act_where(gen *G)
{
    want w = of_types(chance(G, 0.8) ? F32 : I32);
    w.max_abs = 1e4;
    int a = pick(G, &w);
    if (a < 0)
        return false;
    ir_shape sa = shape(G, a);
    want wc = of_types(BOOL);
    wc.bcast = &sa;
    int c = pick(G, &wc);
    if (c < 0) { /* a comparison of a with a number */
        fz_step cmp = step_of(FZ_EW);
        cmp.op = (ir_op)(IR_lt + rnd(G, 4));
        cmp.nargs = 2;
        cmp.arg[0] = A(a);
        cmp.arg[1] = IMM(dtype(G, a) == AG_F32 ? pick_number(G, -1, 1) : (double)between(G, 0, 5));
        c = add(G, cmp);
        if (c < 0)
            return false;
    }
    fz_arg b = second(G, a, dtype(G, a), w);
    if (b.step < 0 && G->failed)
        return false;
    fz_step s = step_of(FZ_EW);
    s.op = IR_where;
    s.nargs = 3;
    s.arg[0] = A(c);
    bool swap = chance(G, 0.5);
    s.arg[1] = swap ? b : A(a);
    s.arg[2] = swap ? A(a) : b;
    return add(G, s) >= 0;
}

static bool act_reduce(gen *G)
{
    static const ir_op ops[] = {IR_sum, IR_mean, IR_max};
    ir_op op = ops[rnd(G, 3)];
    want w = of_types(op == IR_mean || chance(G, 0.8) ? F32 : I32);
    w.min_rank = 1;
    int k = pick(G, &w);
    if (k < 0)
        return false;
    int r = rank(G, k);
    fz_step s = step_of(FZ_REDUCE);
    s.op = op;
    s.nargs = 1;
    s.arg[0] = A(k);
    s.keepdims = chance(G, 0.4);
    if (!chance(G, 0.2)) {
        unsigned mask = 0;
        while (!mask)
            mask = (unsigned)rnd(G, 1 << r);
        for (int i = 0; i < r; i++)
            if (mask >> i & 1)
                s.dims.d[s.dims.n++] = chance(G, 0.3) ? i - r : i;
    }
    return add(G, s) >= 0;
}

static bool act_axis_op(gen *G, fz_kind kind)
{
    want w = of_types(chance(G, 0.8) ? F32 : I32);
    w.min_rank = 1;
    int k = pick(G, &w);
    if (k < 0)
        return false;
    int r = rank(G, k);
    fz_step s = step_of(kind);
    s.nargs = 1;
    s.arg[0] = A(k);
    s.axis = rnd(G, r) - (chance(G, 0.3) ? r : 0);
    return add(G, s) >= 0;
}

static bool act_matmul(gen *G)
{
    want w = of_types(F32);
    w.min_rank = 1;
    w.max_rank = 2;
    w.max_abs = 100;
    int a = f32_value(G, w);
    if (a < 0 || rank(G, a) < 1)
        return false;
    ir_shape sa = shape(G, a);
    int64_t kdim = sa.dim[sa.rank - 1];
    bool b_matrix = chance(G, 0.7);
    /* b: [k, n] or [k] from the pool, else made */
    int b = -1;
    for (int tries = 0; tries < 8 && b < 0; tries++) {
        want wb = of_types(F32);
        wb.min_rank = wb.max_rank = b_matrix ? 2 : 1;
        wb.max_abs = 100;
        int c = pick(G, &wb);
        if (c >= 0 && shape(G, c).dim[0] == kdim)
            b = c;
    }
    if (b < 0) {
        int64_t n = small_dim(G);
        ag_dims d = b_matrix ? (ag_dims){2, {kdim, n}} : (ag_dims){1, {kdim}};
        if (kdim == AG_N)
            b = new_input(G, AG_F32, d);
        else
            b = new_param(G, d);
    }
    if (b < 0)
        return false;
    ir_shape sb = shape(G, b);
    if (sa.rank == 2 && sb.rank == 2 && sa.dim[0] == AG_N && sb.dim[1] == AG_N)
        return false; /* N twice */
    fz_step s = step_of(FZ_MATMUL);
    s.nargs = 2;
    s.arg[0] = A(a);
    s.arg[1] = A(b);
    if (chance(G, 0.5))
        s.form = sa.rank == 2 ? (sb.rank == 2 ? 1 : 2) : (sb.rank == 1 ? 3 : 0);
    return add(G, s) >= 0;
}

static bool act_transpose(gen *G)
{
    want w = of_types(chance(G, 0.8) ? F32 : ANY);
    w.min_rank = 1;
    int k = pick(G, &w);
    if (k < 0)
        return false;
    int r = rank(G, k);
    fz_step s = step_of(FZ_TRANSPOSE);
    s.nargs = 1;
    s.arg[0] = A(k);
    if (chance(G, 0.6)) {
        s.dims.n = r;
        for (int i = 0; i < r; i++)
            s.dims.d[i] = i;
        for (int i = r - 1; i > 0; i--) {
            int j = rnd(G, i + 1);
            int64_t t = s.dims.d[i];
            s.dims.d[i] = s.dims.d[j];
            s.dims.d[j] = t;
        }
        for (int i = 0; i < r; i++)
            if (chance(G, 0.2))
                s.dims.d[i] -= r;
    }
    return add(G, s) >= 0;
}

/* A factorization of e into 1..maxf factors, in random order. */
static int factors(gen *G, int64_t e, int64_t *out, int maxf)
{
    int n = 0;
    while (n < maxf - 1 && e > 1 && chance(G, 0.6)) {
        int64_t divs[64];
        int nd = 0;
        for (int64_t d = 2; d < e && nd < 64; d++)
            if (e % d == 0)
                divs[nd++] = d;
        if (!nd)
            break;
        int64_t d = divs[rnd(G, nd)];
        out[n++] = d;
        e /= d;
    }
    out[n++] = e;
    if (chance(G, 0.2) && n < maxf)
        out[n++] = 1;
    for (int i = n - 1; i > 0; i--) {
        int j = rnd(G, i + 1);
        int64_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
    return n;
}

static bool act_reshape(gen *G)
{
    want w = of_types(chance(G, 0.8) ? F32 : ANY);
    int k = pick(G, &w);
    if (k < 0)
        return false;
    ir_shape s = shape(G, k);
    bool n = has_n(&s);
    int64_t f[4];
    int nf = factors(G, numel_item(&s), f, n ? 3 : 4);
    fz_step st = step_of(FZ_RESHAPE);
    st.nargs = 1;
    st.arg[0] = A(k);
    int at = n ? (chance(G, 0.7) ? 0 : rnd(G, nf + 1)) : -1;
    for (int i = 0; i <= nf; i++) {
        if (i == at)
            st.dims.d[st.dims.n++] = AG_N;
        if (i < nf)
            st.dims.d[st.dims.n++] = f[i];
    }
    return add(G, st) >= 0;
}

static bool act_flatten(gen *G)
{
    want w = of_types(chance(G, 0.8) ? F32 : ANY);
    w.min_rank = 2;
    int k = pick(G, &w);
    if (k < 0)
        return false;
    ir_shape s = shape(G, k);
    for (int i = 1; i < s.rank; i++)
        if (s.dim[i] == AG_N)
            return false;
    fz_step st = step_of(FZ_FLATTEN);
    st.nargs = 1;
    st.arg[0] = A(k);
    return add(G, st) >= 0;
}

static bool act_broadcast(gen *G)
{
    want w = of_types(chance(G, 0.8) ? F32 : ANY);
    w.max_rank = 3;
    int k = pick(G, &w);
    if (k < 0)
        return false;
    ir_shape s = shape(G, k);
    bool n = has_n(&s);
    fz_step st = step_of(FZ_BROADCAST);
    st.nargs = 1;
    st.arg[0] = A(k);
    int lead = rnd(G, 4 - s.rank + 1 > 3 ? 3 : 4 - s.rank + 1);
    for (int i = 0; i < lead; i++) {
        bool make_n = !n && chance(G, 0.5);
        st.dims.d[st.dims.n++] = make_n ? AG_N : between(G, 1, 4);
        n |= make_n;
    }
    bool grew = lead > 0;
    for (int i = 0; i < s.rank; i++) {
        int64_t d = s.dim[i];
        if (d == 1 && chance(G, 0.6)) {
            d = !n && chance(G, 0.3) ? AG_N : between(G, 2, 5);
            n |= d == AG_N;
            grew = true;
        }
        st.dims.d[st.dims.n++] = d;
    }
    if (!grew)
        return false;
    return add(G, st) >= 0;
}

static bool act_slice(gen *G)
{
    want w = of_types(chance(G, 0.8) ? F32 : ANY);
    w.min_rank = 1;
    int k = pick(G, &w);
    if (k < 0)
        return false;
    ir_shape s = shape(G, k);
    int axes[4], na = 0;
    for (int i = 0; i < s.rank; i++)
        if (s.dim[i] != AG_N && s.dim[i] >= 2)
            axes[na++] = i;
    if (!na)
        return false;
    int ax = axes[rnd(G, na)];
    fz_step st = step_of(FZ_SLICE);
    st.nargs = 1;
    st.arg[0] = A(k);
    st.axis = chance(G, 0.3) ? ax - s.rank : ax;
    st.extent = between(G, 1, (int)s.dim[ax] - 1);
    st.start = rnd(G, (int)(s.dim[ax] - st.extent + 1));
    return add(G, st) >= 0;
}

/* A value with k's dtype and shape except along axis ax (any extent there). */
static int concat_part(gen *G, int k, int ax)
{
    ir_shape s = shape(G, k);
    ag_dtype t = dtype(G, k);
    switch (rnd(G, 5)) {
    case 0:
        return k;
    case 1: /* k transformed */
        if (t == AG_F32)
            return chance(G, 0.5) ? binary(G, IR_mul, A(k), IMM(pick_number(G, -2, 2))) : unary(G, IR_tanh, k);
        return t == AG_I32 ? unary(G, IR_neg, k) : k;
    case 2: { /* a slice of k, maybe transformed */
        if (s.dim[ax] < 2)
            return k;
        fz_step st = step_of(FZ_SLICE);
        st.nargs = 1;
        st.arg[0] = A(k);
        st.axis = ax;
        st.extent = between(G, 1, (int)s.dim[ax] - 1);
        st.start = rnd(G, (int)(s.dim[ax] - st.extent + 1));
        int c = add(G, st);
        return c >= 0 && t == AG_F32 && chance(G, 0.6) ? binary(G, IR_mul, A(c), IMM(pick_number(G, -2, 2))) : c;
    }
    case 3: { /* from the pool */
        for (int i = 0; i < G->m->n; i++) {
            int c = rnd(G, G->m->n);
            ir_shape cs = shape(G, c);
            bool same = dtype(G, c) == t && cs.rank == s.rank && maxabs(G->r[c]) <= 1e4;
            for (int a = 0; same && a < s.rank; a++)
                same = a == ax ? cs.dim[a] != AG_N : cs.dim[a] == s.dim[a];
            if (same)
                return c;
        }
        return k;
    }
    default: { /* made: a parameter (no N) or an input */
        ag_dims d = dims_of(&s);
        d.d[ax] = between(G, 1, 5);
        if (t == AG_F32 && !has_n(&s))
            return new_param(G, d);
        int c = new_input(G, t, d);
        return c >= 0 ? c : k;
    }
    }
}

static bool act_concat(gen *G)
{
    want w = of_types(chance(G, 0.85) ? F32 : ANY);
    w.min_rank = 1;
    w.max_abs = 1e4;
    int k = pick(G, &w);
    if (k < 0)
        return false;
    ir_shape s = shape(G, k);
    int axes[4], na = 0;
    for (int i = 0; i < s.rank; i++)
        if (s.dim[i] != AG_N)
            axes[na++] = i;
    if (!na)
        return false;
    int ax = axes[rnd(G, na)];
    fz_step st = step_of(FZ_CONCAT);
    st.axis = chance(G, 0.3) ? ax - s.rank : ax;
    st.nargs = between(G, 2, 4);
    int first = rnd(G, st.nargs);
    for (int i = 0; i < st.nargs; i++) {
        int c = i == first ? k : concat_part(G, k, ax);
        if (c < 0)
            return false;
        st.arg[i] = A(c);
    }
    return add(G, st) >= 0;
}

static bool act_softmax(gen *G)
{
    want w = of_types(F32);
    w.min_rank = 1;
    w.max_abs = 50;
    int k = f32_value(G, w);
    if (k < 0 || rank(G, k) < 1)
        return false;
    int r = rank(G, k);
    fz_step s = step_of(FZ_SOFTMAX);
    s.op = chance(G, 0.5) ? IR_softmax : IR_log_softmax;
    s.nargs = 1;
    s.arg[0] = A(k);
    s.axis_given = chance(G, 0.5);
    s.axis = rnd(G, r) - (chance(G, 0.3) ? r : 0);
    return add(G, s) >= 0;
}

/* i32 labels of the given shape: from the pool, else a new input. */
static int labels(gen *G, const ir_shape *s)
{
    for (int tries = 0; tries < 8; tries++) {
        want w = of_types(I32);
        w.min_rank = w.max_rank = s->rank;
        int c = pick(G, &w);
        if (c >= 0 && ir_shape_eq(&nd(G, c)->shape, s))
            return c;
    }
    if (G->o->data_shaped)
        return G->y >= 0 && dtype(G, G->y) == AG_I32 && ir_shape_eq(&nd(G, G->y)->shape, s) ? G->y : -1;
    return new_input(G, AG_I32, dims_of(s));
}

static bool act_one_hot(gen *G)
{
    want w = of_types(I32);
    w.max_rank = 3;
    int k = pick(G, &w);
    if (k < 0 && !G->o->data_shaped)
        k = new_input(G, AG_I32, chance(G, 0.7) ? (ag_dims){1, {AG_N}} : (ag_dims){2, {AG_N, between(G, 1, 3)}});
    if (k < 0)
        return false;
    fz_step s = step_of(FZ_ONE_HOT);
    s.nargs = 1;
    s.arg[0] = A(k);
    s.classes = between(G, 1, 10);
    return add(G, s) >= 0;
}

/* An f32 [rows, classes] value carrying a gradient, as logits. */
static int logits(gen *G)
{
    want w = of_types(F32);
    w.min_rank = w.max_rank = 2;
    w.max_abs = 50;
    w.grad = true;
    int k = pick(G, &w);
    if (k >= 0 && shape(G, k).dim[1] != AG_N)
        return k;
    w.min_rank = 0;
    w.max_rank = 4;
    w.max_abs = 1e30;
    k = pick(G, &w);
    if (k < 0)
        k = new_param(G, (ag_dims){2, {between(G, 1, 4), between(G, 2, 6)}});
    k = bounded(G, k, 20);
    if (k < 0)
        return -1;
    ir_shape s = shape(G, k);
    if (s.rank == 2 && s.dim[1] != AG_N)
        return k;
    fz_step st = step_of(FZ_RESHAPE);
    st.nargs = 1;
    st.arg[0] = A(k);
    if (s.rank == 0) {
        st.kind = FZ_BROADCAST;
        st.dims = (ag_dims){2, {AG_N, between(G, 2, 5)}};
    } else if (s.rank == 1)
        st.dims = (ag_dims){2, {s.dim[0] == AG_N ? AG_N : 1, s.dim[0] == AG_N ? 1 : s.dim[0]}};
    else if (s.dim[0] == AG_N || !has_n(&s)) {
        st.kind = FZ_FLATTEN;
    } else
        st.dims = (ag_dims){2, {AG_N, numel_item(&s)}};
    return add(G, st);
}

static bool act_cross_entropy(gen *G)
{
    int k = logits(G);
    if (k < 0)
        return false;
    ir_shape s = shape(G, k);
    ir_shape ls = {1, {s.dim[0]}};
    int y = labels(G, &ls);
    if (y < 0)
        return false;
    fz_step st = step_of(FZ_CROSS_ENTROPY);
    st.nargs = 2;
    st.arg[0] = A(k);
    st.arg[1] = A(y);
    return add(G, st) >= 0;
}

static bool act_correct(gen *G)
{
    want w = of_types(F32);
    w.min_rank = 1;
    w.max_rank = 3;
    int k = pick(G, &w);
    if (k < 0)
        return false;
    ir_shape s = shape(G, k);
    s.rank--;
    int y = labels(G, &s);
    if (y < 0)
        return false;
    fz_step st = step_of(FZ_CORRECT);
    st.nargs = 2;
    st.arg[0] = A(k);
    st.arg[1] = A(y);
    return add(G, st) >= 0;
}

static bool act_regression_loss(gen *G, fz_kind kind)
{
    want w = of_types(F32);
    w.max_abs = 1e3;
    int k = f32_value(G, w);
    if (k < 0)
        return false;
    ir_shape s = shape(G, k);
    fz_arg t;
    if (kind == FZ_SQUARED_LOSS) { /* a target of the same elements, any shape */
        ir_shape ts = s;
        if (chance(G, 0.5)) {
            int64_t f[4];
            int nf = factors(G, numel_item(&s), f, has_n(&s) ? 3 : 4);
            ts.rank = 0;
            if (has_n(&s))
                ts.dim[ts.rank++] = AG_N;
            for (int i = 0; i < nf; i++)
                ts.dim[ts.rank++] = f[i];
        }
        int c = -1;
        for (int tries = 0; tries < 8 && c < 0; tries++) {
            want wt = of_types(F32);
            wt.max_abs = 1e3;
            int d = pick(G, &wt);
            if (d >= 0 && d != k && numel_item(&nd(G, d)->shape) == numel_item(&s) && has_n(&nd(G, d)->shape) == has_n(&s))
                c = d;
        }
        if (c < 0)
            c = has_n(&s) ? new_input(G, AG_F32, dims_of(&ts)) : new_param(G, dims_of(&ts));
        if (c < 0)
            return false;
        t = A(c);
    } else {
        w.max_abs = 1e3;
        t = second(G, k, AG_F32, w);
        if (t.step < 0 && G->failed)
            return false;
    }
    fz_step st = step_of(kind);
    st.nargs = 2;
    st.arg[0] = A(k);
    st.arg[1] = t;
    return add(G, st) >= 0;
}

static bool act_dropout(gen *G)
{
    want w = of_types(F32);
    int k = f32_value(G, w);
    if (k < 0)
        return false;
    static const double ps[] = {0, 0.25, 0.5, 0.5, 0.75, 1};
    fz_step s = step_of(FZ_DROPOUT);
    s.nargs = 1;
    s.arg[0] = A(k);
    s.value = ps[rnd(G, 6)];
    return add(G, s) >= 0;
}

static bool act_norm(gen *G)
{
    want w = of_types(F32);
    w.max_abs = 100;
    int k = f32_value(G, w);
    if (k < 0)
        return false;
    fz_step s = step_of(FZ_NORM);
    s.nargs = 1;
    s.arg[0] = A(k);
    s.form = rnd(G, 4);
    return add(G, s) >= 0;
}

static bool act_source(gen *G)
{
    switch (rnd(G, 4)) {
    case 0: {
        fz_step s = step_of(FZ_CONST);
        s.dtype = chance(G, 0.7) ? AG_F32 : AG_I32;
        s.value = s.dtype == AG_F32 ? pick_number(G, -2, 2) : (double)between(G, -3, 9);
        return add(G, s) >= 0;
    }
    case 1: {
        fz_step s = step_of(FZ_FULL);
        s.value = pick_number(G, -2, 2);
        int r = between(G, 1, 2);
        for (int i = 0; i < r; i++)
            s.dims.d[s.dims.n++] = i == 0 && chance(G, 0.5) ? AG_N : small_dim(G);
        return add(G, s) >= 0;
    }
    case 2: {
        ag_dims d = {0, {0}};
        for (int i = 0, r = between(G, 0, 2); i < r; i++)
            d.d[d.n++] = small_dim(G);
        return new_param(G, d) >= 0;
    }
    default: {
        static const ag_dtype ts[] = {AG_F32, AG_F32, AG_F32, AG_I32, AG_U8, AG_BOOL};
        ag_dims d = {0, {0}};
        int r = between(G, 1, 3);
        int at = chance(G, 0.8) ? 0 : chance(G, 0.5) ? rnd(G, r) : -1;
        for (int i = 0; i < r; i++)
            d.d[d.n++] = i == at ? AG_N : small_dim(G);
        return new_input(G, ts[rnd(G, 6)], d) >= 0;
    }
    }
}

typedef bool action(gen *G);
static bool act_argmax(gen *G) { return act_axis_op(G, FZ_ARGMAX); }
static bool act_cumsum(gen *G) { return act_axis_op(G, FZ_CUMSUM); }
static bool act_squared_loss(gen *G) { return act_regression_loss(G, FZ_SQUARED_LOSS); }
static bool act_mse(gen *G) { return act_regression_loss(G, FZ_MSE); }

static const struct {
    action *run;
    int weight;
} actions[] = {
    {act_unary_float, 8}, {act_unary_num, 6}, {act_cast, 4},     {act_stop_gradient, 2}, {act_binary, 14},
    {act_compare, 3},     {act_where, 3},     {act_reduce, 6},   {act_argmax, 2},        {act_cumsum, 2},
    {act_matmul, 10},     {act_transpose, 3}, {act_reshape, 3},  {act_flatten, 2},       {act_broadcast, 2},
    {act_slice, 3},       {act_concat, 5},    {act_softmax, 3},  {act_one_hot, 2},       {act_cross_entropy, 2},
    {act_correct, 1},     {act_squared_loss, 1}, {act_mse, 1},   {act_dropout, 3},       {act_norm, 1},
    {act_source, 3},
};

/* ---- the model ---- */

/* The loss: an f32 scalar through which the gradient reaches parameters. */
static int make_loss(gen *G)
{
    int choice = rnd(G, 4);
    if (G->o->data_shaped) { /* what the targets y ask for */
        if (dtype(G, G->y) == AG_I32) {
            int k = logits(G);
            if (k < 0)
                return -1;
            ir_shape s = shape(G, k);
            if (s.dim[0] != AG_N) { /* logits per sample: features [N, K] times a parameter [K, C] */
                int cand[FZ_MAX_STEPS], nc = 0, v = -1;
                for (int c = 0; c < G->m->n; c++) {
                    ir_shape cs = shape(G, c);
                    bool n_first = cs.rank >= 1 && cs.dim[0] == AG_N;
                    for (int a = 1; a < cs.rank; a++)
                        n_first &= cs.dim[a] != AG_N;
                    if (n_first && dtype(G, c) == AG_F32 && maxabs(G->r[c]) <= 100)
                        cand[nc++] = c;
                }
                if (nc)
                    v = cand[rnd(G, nc)];
                if (v < 0)
                    return -1;
                if (rank(G, v) != 2) {
                    fz_step fl = step_of(rank(G, v) == 1 ? FZ_RESHAPE : FZ_FLATTEN);
                    fl.nargs = 1;
                    fl.arg[0] = A(v);
                    fl.dims = (ag_dims){2, {AG_N, 1}};
                    if ((v = add(G, fl)) < 0)
                        return -1;
                }
                int64_t classes = s.dim[0] == 1 ? s.dim[1] : between(G, 2, 6);
                int p = new_param(G, (ag_dims){2, {shape(G, v).dim[1], classes}});
                fz_step mm = step_of(FZ_MATMUL);
                mm.nargs = 2;
                mm.arg[0] = A(v);
                mm.arg[1] = A(p);
                int l = p >= 0 ? add(G, mm) : -1;
                k = l >= 0 && s.dim[0] == 1 ? binary(G, IR_add, A(l), A(k)) : l;
                if (k < 0)
                    return -1;
            }
            fz_step ce = step_of(FZ_CROSS_ENTROPY);
            ce.nargs = 2;
            ce.arg[0] = A(k);
            ce.arg[1] = A(G->y);
            int c = add(G, ce);
            fz_step mean = step_of(FZ_REDUCE);
            mean.op = IR_mean;
            mean.nargs = 1;
            mean.arg[0] = A(c);
            int l = add(G, mean);
            if (l >= 0 && chance(G, 0.6)) {
                G->m->metric = add(G, (fz_step){.kind = FZ_CORRECT, .nargs = 2, .arg = {A(k), A(G->y)}});
                G->m->predict = k;
            }
            return l;
        }
        want w = of_types(F32);
        w.grad = true;
        w.max_abs = 100;
        ir_shape ys = shape(G, G->y);
        w.bcast = &ys;
        int k = pick(G, &w);
        if (k < 0) { /* a prediction of y's shape: a value plus a parameter */
            want any = of_types(F32);
            any.max_abs = 100;
            any.bcast = &ys;
            int v = pick(G, &any), p = new_param(G, param_dims_for(G, &ys));
            k = v >= 0 && p >= 0 ? binary(G, IR_add, A(v), A(p)) : p;
            if (k < 0)
                return -1;
        }
        fz_step mse = step_of(FZ_MSE);
        mse.nargs = 2;
        mse.arg[0] = A(k);
        mse.arg[1] = A(G->y);
        if (chance(G, 0.4))
            G->m->predict = k;
        return add(G, mse);
    }
    if (choice == 0 && G->nparams && act_cross_entropy(G)) {
        int ce = G->m->n - 1;
        fz_step mean = step_of(FZ_REDUCE);
        mean.op = IR_mean;
        mean.nargs = 1;
        mean.arg[0] = A(ce);
        int l = add(G, mean);
        if (l >= 0 && chance(G, 0.5)) {
            const fz_step *c = &G->m->step[ce];
            G->m->metric = add(G, (fz_step){.kind = FZ_CORRECT, .nargs = 2, .arg = {c->arg[0], c->arg[1]}});
        }
        return l;
    }
    want w = of_types(F32);
    w.grad = true;
    w.max_abs = 1e30;
    int k = G->nparams ? pick(G, &w) : -1;
    if (k < 0) { /* nothing carries a gradient: a parameter joins a value */
        want any = of_types(F32);
        any.max_abs = 1e30;
        int v = pick(G, &any);
        if (v < 0)
            v = new_input(G, AG_F32, (ag_dims){2, {AG_N, 3}});
        v = bounded(G, v, 100);
        if (v < 0)
            return -1;
        ir_shape s = shape(G, v);
        int p = new_param(G, param_dims_for(G, &s));
        if (p < 0)
            return -1;
        k = binary(G, chance(G, 0.5) ? IR_mul : IR_add, A(v), A(p));
    }
    k = bounded(G, k, 1e3);
    if (k < 0)
        return -1;
    if (rank(G, k) == 0 && chance(G, 0.5))
        return k;
    fz_step s = step_of(FZ_REDUCE);
    s.nargs = 1;
    s.arg[0] = A(k);
    switch (choice) {
    case 1: {
        fz_step m = step_of(FZ_MSE);
        m.nargs = 2;
        m.arg[0] = A(k);
        want wt = of_types(F32);
        wt.max_abs = 1e3;
        m.arg[1] = second(G, k, AG_F32, wt);
        return G->failed ? -1 : add(G, m);
    }
    case 2:
        s.op = IR_sum;
        return add(G, s);
    default:
        s.op = IR_mean;
        return add(G, s);
    }
}

bool fz_generate(uint64_t seed, const fz_gen_opts *o, fz_model *m, char *err, size_t len)
{
    static const fz_gen_opts defaults = {0};
    gen G;
    memset(&G, 0, sizeof G);
    G.o = o ? o : &defaults;
    G.rng = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    G.m = m;
    G.err = err;
    G.len = len;
    G.x = G.y = -1;
    memset(m, 0, sizeof *m);
    m->seed = seed;
    snprintf(m->name, sizeof m->name, "fuzz_%llu", (unsigned long long)seed);
    m->metric = m->predict = -1;
    m->lr = 0.1;
    m->wd = chance(&G, 0.5) ? 0 : pick_number(&G, 0, 0.25);
    m->batch = BATCH;
    char file[64];
    snprintf(file, sizeof file, "%s.c", m->name);
    G.b.g = ag_graph_new(m->name);
    G.b.file = file;
    int max_nodes = G.o->max_nodes ? G.o->max_nodes : 40;
    int target = between(&G, 1, max_nodes);

    if (G.o->data_shaped) { /* the features and the targets, as a dataset holds them */
        fz_step x = step_of(FZ_INPUT), y = step_of(FZ_INPUT);
        snprintf(x.name, sizeof x.name, "x");
        snprintf(y.name, sizeof y.name, "y");
        x.dtype = chance(&G, 0.8) ? AG_F32 : AG_U8;
        x.dims = chance(&G, 0.7) ? (ag_dims){2, {AG_N, between(&G, 1, 8)}} : (ag_dims){3, {AG_N, between(&G, 1, 3), between(&G, 1, 4)}};
        y.dtype = chance(&G, 0.5) ? AG_I32 : AG_F32;
        y.dims = y.dtype == AG_I32 || chance(&G, 0.5) ? (ag_dims){1, {AG_N}} : (ag_dims){2, {AG_N, between(&G, 1, 3)}};
        G.x = add(&G, x);
        G.y = add(&G, y);
        G.ninputs = 2;
        if (x.dtype == AG_U8) { /* pixels as the models read them */
            fz_step c = step_of(FZ_CAST);
            c.nargs = 1;
            c.arg[0] = A(G.x);
            c.dtype = AG_F32;
            binary(&G, IR_mul, A(add(&G, c)), IMM(1.0 / 256));
        }
    } else
        act_source(&G);
    int total = 0;
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++)
        total += actions[i].weight;
    for (int tries = 0; G.b.g->n < target && tries < 200 && !G.failed; tries++) {
        int r = rnd(&G, total);
        size_t i = 0;
        while ((r -= actions[i].weight) >= 0)
            i++;
        actions[i].run(&G);
    }
    if (!G.failed)
        m->loss = make_loss(&G);
    if (!G.failed && m->loss < 0)
        snprintf(err, len, "the generator could not make a loss");
    if (!G.failed && m->loss >= 0) {
        /* outputs, metric, predictions, groups */
        for (int i = 0, nout = rnd(&G, 4); i < nout; i++) {
            fz_output *o = &m->out[m->nout];
            snprintf(o->name, sizeof o->name, "o%d", m->nout);
            o->step = rnd(&G, m->n);
            m->nout++;
        }
        if (m->metric < 0 && chance(&G, 0.3)) {
            want w = of_types(F32);
            w.max_rank = 0;
            int k = pick(&G, &w);
            if (k >= 0 && k != m->loss) {
                m->metric = k;
                snprintf(m->metric_name, sizeof m->metric_name, "m");
            }
        }
        if (m->predict < 0 && chance(&G, 0.4))
            m->predict = rnd(&G, m->n);
        if (chance(&G, 0.15) && G.nparams > 0) {
            fz_group *gr = &m->group[m->ngroups++];
            snprintf(gr->name, sizeof gr->name, "g0");
            static const double scales[] = {0, 0.5, 1, 2};
            gr->wd_scale = scales[rnd(&G, 4)];
            gr->lr_scale = scales[rnd(&G, 4)];
            for (int k = 0; k < m->n && gr->n < FZ_MAX_ARGS; k++)
                if (m->step[k].kind == FZ_PARAM && chance(&G, 0.5))
                    gr->param[gr->n++] = k;
            if (!gr->n)
                m->ngroups--;
        }
        m->option = chance(&G, 0.05);
    }
    bool ok = !G.failed && m->loss >= 0;
    ag_graph_free(G.b.g);
    if (ok) { /* the whole model, declarations included, must build */
        ir_graph *g = fz_build(m, NULL, err, len);
        ok = g != NULL;
        ir_graph_free(g);
    }
    return ok;
}
