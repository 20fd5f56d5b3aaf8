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

#include "generate.h"

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
    case IR_neg: return (range){-a.hi, -a.lo};
    case IR_exp: return (range){exp(a.lo), exp(a.hi)};
    case IR_log: return (range){log(a.lo), log(a.hi)};
    case IR_abs:
    case IR_square: {
        range m = a.lo >= 0 ? a : a.hi <= 0 ? (range){-a.hi, -a.lo} : (range){0, maxabs(a)};
        return op == IR_abs ? m : (range){m.lo * m.lo, m.hi * m.hi};
    }
    case IR_sqrt: return (range){sqrt(a.lo), sqrt(a.hi)};
    case IR_relu: return (range){fmax(a.lo, 0), fmax(a.hi, 0)};
    case IR_sigmoid: return (range){sigm(a.lo), sigm(a.hi)};
    case IR_tanh: return (range){tanh(a.lo), tanh(a.hi)};
    case IR_cast:
        if (t == AG_BOOL)
            return (range){0, 1};
        if (t == AG_U8)
            return (range){fmin(fmax(trunc(a.lo), 0), 255), fmin(fmax(trunc(a.hi), 0), 255)};
        if (t == AG_I32)
            return (range){trunc(a.lo), trunc(a.hi)};
        return a;
    case IR_stop_gradient: return a;
    case IR_add: return (range){a.lo + b.lo, a.hi + b.hi};
    case IR_sub: return (range){a.lo - b.hi, a.hi - b.lo};
    case IR_mul: return prod(a, b);
    case IR_div: return prod(a, (range){1 / b.hi, 1 / b.lo});
    case IR_pow: {
        double p[4] = {pow(a.lo, b.lo), pow(a.lo, b.hi), pow(a.hi, b.lo), pow(a.hi, b.hi)};
        range r = {p[0], p[0]};
        for (int i = 1; i < 4; i++)
            r.lo = fmin(r.lo, p[i]), r.hi = fmax(r.hi, p[i]);
        return r;
    }
    case IR_maximum: return (range){fmax(a.lo, b.lo), fmax(a.hi, b.hi)};
    case IR_minimum: return (range){fmin(a.lo, b.lo), fmin(a.hi, b.hi)};
    case IR_where: return hull(b, c);
    default: /* comparisons */ return (range){0, 1};
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
        r = s->dtype == AG_F32    ? (range){-7, 7}
            : s->dtype == AG_U8   ? (range){0, 255}
            : s->dtype == AG_BOOL ? (range){0, 1}
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
            double fi = n->shape.rank ? (double)n->shape.dim[0] : 1,
                   fo = n->shape.rank > 1 ? (double)n->shape.dim[1] : fi;
            double lim = sqrt(6 / (fi + fo));
            r = (range){-lim, lim};
        }
        grad = true;
        break;
    }
    case FZ_CONST:
    case FZ_FULL: r = (range){s->value, s->value}; break;
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
    case FZ_ARGMAX: r = (range){0, (double)extent(as->dim[(s->axis + as->rank) % as->rank]) - 1}; break;
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
    case FZ_REQUIRES_GRAD: grad = ga || (s->kind == FZ_REQUIRES_GRAD); break;
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
    case FZ_ONE_HOT: r = (range){0, 1}; break;
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
    case FZ_CORRECT: r = (range){0, (double)numel(as)}; break;
    case FZ_CONV2D: { /* a sum of C/groups * KH * KW products, and the bias */
        ir_shape ws = shape(G, s->arg[1].step);
        double m = maxabs(a) * maxabs(b) * (double)(ws.dim[1] * ws.dim[2] * ws.dim[3]);
        if (s->nargs > 2)
            m += maxabs(arg_range(G, s->arg[2]));
        r = (range){-m, m};
        grad = ga || gb || (s->nargs > 2 && arg_grad(G, s->arg[2]));
        break;
    }
    case FZ_POOL2D: /* average pooling counts the padding's zeros */
        r = s->op == IR_max_pool2d ? a : hull(a, (range){0, 0});
        grad = ga;
        break;
    case FZ_KIND_COUNT: break;
    }
    if (s->kind == FZ_INPUT || s->kind == FZ_REQUIRES_GRAD)
        grad = s->kind == FZ_REQUIRES_GRAD;
    G->r[k] = r;
    G->grad[k] = grad && f32;
}

/* Appends s; its index, or -1 (the generation failed, or the model is full). */
int gen_add(gen *G, fz_step s)
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
int gen_pick(gen *G, const want *w)
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

/* ---- making values ---- */

static ag_init random_init(gen *G)
{
    switch (rnd(G, 10)) {
    case 0: return ag_uniform(pick_number(G, -1, 0), pick_number(G, 0.25, 1));
    case 1: return ag_xavier();
    case 2: return ag_constant(pick_number(G, -1, 1));
    case 3: return chance(G, 0.3) ? ag_zeros() : ag_normal(0, 1);
    default: return ag_normal(pick_number(G, -0.25, 0.25), pick_number(G, 0.125, 1));
    }
}

int gen_new_param(gen *G, ag_dims dims)
{
    /* 8 for the random actions; the loss may need its own (a class matrix, a bias of y's
     * shape) where they took all 8 (seed 601383) */
    if (G->nparams >= (G->with_loss ? 10 : 8))
        return -1;
    fz_step s = step_of(FZ_PARAM);
    snprintf(s.name, sizeof s.name, "W%d", G->nparams++);
    s.init = random_init(G);
    s.dims = dims;
    return gen_add(G, s);
}

int gen_new_input(gen *G, ag_dtype t, ag_dims dims)
{
    if (G->o->data_shaped || G->ninputs >= 5)
        return -1;
    fz_step s = step_of(FZ_INPUT);
    snprintf(s.name, sizeof s.name, "x%d", G->ninputs++);
    s.dtype = t;
    s.dims = dims;
    int k = gen_add(G, s);
    if (k >= 0 && t == AG_F32 && chance(G, 0.15)) {
        fz_step r = step_of(FZ_REQUIRES_GRAD);
        r.nargs = 1;
        r.arg[0] = A(k);
        return gen_add(G, r);
    }
    return k;
}

int64_t gen_small_dim(gen *G)
{
    int r = rnd(G, 40);
    return r == 0 ? 256 : r < 6 ? 1 : between(G, 2, 8);
}

ag_dims gen_dims_of(const ir_shape *s)
{
    ag_dims d = {s->rank, {0}};
    for (int i = 0; i < s->rank; i++)
        d.d[i] = s->dim[i];
    return d;
}

/* A parameter's dims that broadcast into shape s: leading axes dropped, N and some others 1. */
ag_dims gen_param_dims_for(gen *G, const ir_shape *s)
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
int gen_unary(gen *G, ir_op op, int k)
{
    fz_step s = step_of(FZ_EW);
    s.op = op;
    s.nargs = 1;
    s.arg[0] = A(k);
    return gen_add(G, s);
}

int gen_binary(gen *G, ir_op op, fz_arg a, fz_arg b)
{
    fz_step s = step_of(FZ_EW);
    s.op = op;
    s.nargs = 2;
    s.arg[0] = a;
    s.arg[1] = b;
    s.form = op == IR_mul && b.step < 0 && chance(G, 0.5); /* ag_scale */
    return gen_add(G, s);
}

/* k (f32) brought within [-limit, limit]: itself, or squashed by tanh and scaled. */
int gen_bounded(gen *G, int k, double limit)
{
    if (k < 0 || maxabs(G->r[k]) <= limit)
        return k;
    int t = gen_unary(G, IR_tanh, k);
    return t < 0 || limit < 2 || chance(G, 0.5) ? t
                                                : gen_binary(G, IR_mul, A(t), IMM(pick_number(G, 1, fmin(limit, 4))));
}

/* k (f32) made positive, within [0.05, 1e3]. */
int gen_positive(gen *G, int k)
{
    if (k < 0 || (G->r[k].lo >= 0.05 && G->r[k].hi <= 1e3))
        return k;
    switch (rnd(G, 3)) {
    case 0: {
        int b = gen_bounded(G, k, 4);
        return gen_binary(G, IR_add, A(gen_unary(G, IR_square, b)), IMM(pick_number(G, 0.125, 1)));
    }
    case 1: return gen_unary(G, IR_exp, gen_bounded(G, k, 4));
    default:
        return gen_binary(G, IR_add, A(gen_unary(G, IR_sigmoid, gen_bounded(G, k, 8))), IMM(pick_number(G, 0.125, 1)));
    }
}

/* An f32 value fitting w, made from the pool if none fits as it is. */
int gen_f32_value(gen *G, want w)
{
    w.dtypes = F32;
    int k = gen_pick(G, &w);
    if (k >= 0)
        return k;
    want loose = w;
    loose.positive = loose.nonzero = false;
    loose.max_abs = 1e30;
    k = gen_pick(G, &loose);
    if (k < 0) {
        ag_dims d = {0, {0}};
        if (w.bcast)
            d = gen_param_dims_for(G, w.bcast);
        else
            for (int i = 0, r = between(G, w.min_rank > 1 ? w.min_rank : 1, w.max_rank < 2 ? w.max_rank : 2); i < r;
                 i++)
                d.d[d.n++] = gen_small_dim(G);
        if (d.n < w.min_rank || d.n > w.max_rank)
            return -1;
        k = gen_new_param(G, d);
    }
    if (k < 0)
        return -1;
    if (w.positive)
        return gen_positive(G, k);
    if (w.nonzero)
        return chance(G, 0.5) ? gen_positive(G, k) : gen_unary(G, IR_neg, gen_positive(G, k));
    return gen_bounded(G, k, w.max_abs ? w.max_abs : 100);
}

/* A second operand for an elementwise op with first operand k: dtype t, broadcasting into
 * k's shape; a number sometimes. */
fz_arg gen_second(gen *G, int k, ag_dtype t, want w)
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
    int b = gen_pick(G, &w);
    if (b >= 0 && b != k)
        return A(b);
    if (t == AG_F32)
        return A(gen_f32_value(G, w));
    if (chance(G, 0.5) && !G->o->data_shaped)
        return A(gen_new_input(G, t, gen_dims_of(&s)));
    return IMM((double)between(G, 0, t == AG_U8 ? 255 : 9));
}

/* ---- the model ---- */

/* The loss: an f32 scalar through which the gradient reaches parameters. */
static int make_loss(gen *G)
{
    int choice = rnd(G, 4);
    if (G->o->data_shaped) { /* what the targets y ask for */
        if (dtype(G, G->y) == AG_I32) {
            int k = gen_logits(G);
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
                    if ((v = gen_add(G, fl)) < 0)
                        return -1;
                }
                int64_t classes = s.dim[0] == 1 ? s.dim[1] : between(G, 2, 6);
                int p = gen_new_param(G, (ag_dims){2, {shape(G, v).dim[1], classes}});
                fz_step mm = step_of(FZ_MATMUL);
                mm.nargs = 2;
                mm.arg[0] = A(v);
                mm.arg[1] = A(p);
                int l = p >= 0 ? gen_add(G, mm) : -1;
                k = l >= 0 && s.dim[0] == 1 ? gen_binary(G, IR_add, A(l), A(k)) : l;
                if (k < 0)
                    return -1;
            }
            fz_step ce = step_of(FZ_CROSS_ENTROPY);
            ce.nargs = 2;
            ce.arg[0] = A(k);
            ce.arg[1] = A(G->y);
            int c = gen_add(G, ce);
            fz_step mean = step_of(FZ_REDUCE);
            mean.op = IR_mean;
            mean.nargs = 1;
            mean.arg[0] = A(c);
            int l = gen_add(G, mean);
            if (l >= 0 && chance(G, 0.6)) {
                G->m->metric = gen_add(G, (fz_step){.kind = FZ_CORRECT, .nargs = 2, .arg = {A(k), A(G->y)}});
                G->m->predict = k;
            }
            return l;
        }
        want w = of_types(F32);
        w.grad = true;
        w.max_abs = 100;
        ir_shape ys = shape(G, G->y);
        w.bcast = &ys;
        int k = gen_pick(G, &w);
        if (k < 0) { /* a prediction of y's shape: a value plus a parameter */
            want any = of_types(F32);
            any.max_abs = 100;
            any.bcast = &ys;
            int v = gen_pick(G, &any), p = gen_new_param(G, gen_param_dims_for(G, &ys));
            k = v >= 0 && p >= 0 ? gen_binary(G, IR_add, A(v), A(p)) : p;
            if (k < 0)
                return -1;
        }
        fz_step mse = step_of(FZ_MSE);
        mse.nargs = 2;
        mse.arg[0] = A(k);
        mse.arg[1] = A(G->y);
        if (chance(G, 0.4))
            G->m->predict = k;
        return gen_add(G, mse);
    }
    if (choice == 0 && G->nparams && gen_act_cross_entropy(G)) {
        int ce = G->m->n - 1;
        fz_step mean = step_of(FZ_REDUCE);
        mean.op = IR_mean;
        mean.nargs = 1;
        mean.arg[0] = A(ce);
        int l = gen_add(G, mean);
        if (l >= 0 && chance(G, 0.5)) {
            const fz_step *c = &G->m->step[ce];
            G->m->metric = gen_add(G, (fz_step){.kind = FZ_CORRECT, .nargs = 2, .arg = {c->arg[0], c->arg[1]}});
        }
        return l;
    }
    want w = of_types(F32);
    w.grad = true;
    w.max_abs = 1e30;
    int k = G->nparams ? gen_pick(G, &w) : -1;
    if (k < 0) { /* nothing carries a gradient: a parameter joins a value */
        want any = of_types(F32);
        any.max_abs = 1e30;
        int v = gen_pick(G, &any);
        if (v < 0)
            v = gen_new_input(G, AG_F32, (ag_dims){2, {AG_N, 3}});
        v = gen_bounded(G, v, 100);
        if (v < 0)
            return -1;
        ir_shape s = shape(G, v);
        int p = gen_new_param(G, gen_param_dims_for(G, &s));
        if (p < 0)
            return -1;
        k = gen_binary(G, chance(G, 0.5) ? IR_mul : IR_add, A(v), A(p));
    }
    k = gen_bounded(G, k, 1e3);
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
        m.arg[1] = gen_second(G, k, AG_F32, wt);
        return G->failed ? -1 : gen_add(G, m);
    }
    case 2: s.op = IR_sum; return gen_add(G, s);
    default: s.op = IR_mean; return gen_add(G, s);
    }
}

/* The optimizer: plain sgd as often as not, else each other kind alike, its hyperparameters
 * PyTorch's defaults or a few others, so that every update formula meets random models */
static void pick_optimizer(gen *G, ag_optimizer *o)
{
    static const char *const kinds[] = {"sgd", "adam", "adamw", "rmsprop", "adagrad"};
    if (chance(G, 0.5))
        return;
    const ir_optimizer_kind *k = ir_optimizer_find(kinds[rnd(G, 5)]);
    ag_optimizer p = {.kind = k->name, .lr = o->lr, .wd = o->wd};
    if (strcmp(k->name, "sgd") == 0) { /* with momentum */
        p.momentum = chance(G, 0.5) ? 0.9 : 0.5;
        p.nesterov = chance(G, 0.5);
    } else {
        p.beta1 = k->defaults[IR_HP_BETA1], p.beta2 = k->defaults[IR_HP_BETA2];
        p.eps = chance(G, 0.7) ? k->defaults[IR_HP_EPS] : 0.1; /* a large eps: the division's other side */
        p.alpha = k->defaults[IR_HP_ALPHA];
        if (k->keys >> IR_HP_BETA1 & 1 && chance(G, 0.2))
            p.beta1 = 0; /* no first moment: bias correction 1 */
    }
    *o = p;
}

bool fz_generate(uint64_t seed, const fz_gen_opts *o, fz_model *m, char *err, size_t len)
{
    static const fz_gen_opts defaults = {0};
    gen G;
    memset(&G, 0, sizeof G);
    G.o = o ? o : &defaults;
    /* the stream starts at a hash of the seed: splitmix64 started at seed * gamma would give
     * seed + 1 the stream of seed shifted by one draw (seeds 3 and 4 drew one model) */
    uint64_t s = seed ^ 0x632be59bd9b4e019ull;
    G.rng = fz_mix64(&s);
    G.m = m;
    G.err = err;
    G.len = len;
    G.x = G.y = -1;
    memset(m, 0, sizeof *m);
    m->seed = seed;
    snprintf(m->name, sizeof m->name, "fuzz_%llu", (unsigned long long)seed);
    m->metric = m->predict = -1;
    m->opt = (ag_optimizer){.kind = "sgd", .lr = 0.1, .wd = chance(&G, 0.5) ? 0 : pick_number(&G, 0, 0.25)};
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
        x.dims = chance(&G, 0.7) ? (ag_dims){2, {AG_N, between(&G, 1, 8)}}
                                 : (ag_dims){3, {AG_N, between(&G, 1, 3), between(&G, 1, 4)}};
        y.dtype = chance(&G, 0.5) ? AG_I32 : AG_F32;
        y.dims = y.dtype == AG_I32 || chance(&G, 0.5) ? (ag_dims){1, {AG_N}} : (ag_dims){2, {AG_N, between(&G, 1, 3)}};
        G.x = gen_add(&G, x);
        G.y = gen_add(&G, y);
        G.ninputs = 2;
        if (x.dtype == AG_U8) { /* pixels as the models read them */
            fz_step c = step_of(FZ_CAST);
            c.nargs = 1;
            c.arg[0] = A(G.x);
            c.dtype = AG_F32;
            gen_binary(&G, IR_mul, A(gen_add(&G, c)), IMM(1.0 / 256));
        }
    } else
        gen_act_source(&G);
    for (int tries = 0; G.b.g->n < target && tries < 200 && !G.failed; tries++)
        gen_random_action(&G);
    bool forward = G.o->forward_only && !G.o->data_shaped; /* no loss: outputs alone */
    G.with_loss = true;
    if (!G.failed)
        m->loss = forward ? -1 : make_loss(&G);
    G.with_loss = false;
    if (!G.failed && m->loss < 0 && !forward)
        snprintf(err, len, "the generator could not make a loss");
    if (!G.failed && (m->loss >= 0 || forward)) {
        /* outputs (one at least without a loss), metric, predictions, groups */
        for (int i = 0, nout = rnd(&G, 4) + forward; i < nout; i++) {
            fz_output *o = &m->out[m->nout];
            snprintf(o->name, sizeof o->name, "o%d", m->nout);
            o->step = rnd(&G, m->n);
            m->nout++;
        }
        if (!forward && m->metric < 0 && chance(&G, 0.3)) {
            want w = of_types(F32);
            w.max_rank = 0;
            int k = gen_pick(&G, &w);
            if (k >= 0 && k != m->loss) {
                m->metric = k;
                snprintf(m->metric_name, sizeof m->metric_name, "m");
            }
        }
        if (!forward && m->predict < 0 && chance(&G, 0.4))
            m->predict = rnd(&G, m->n);
        if (!forward && chance(&G, 0.15) && G.nparams > 0) {
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
        pick_optimizer(&G, &m->opt); /* drawn last: what a seed drew before stays as it was */
    }
    bool ok = !G.failed && (m->loss >= 0 || forward);
    ag_graph_free(G.b.g);
    if (ok) { /* the whole model, declarations included, must build */
        ir_graph *g = fz_build(m, NULL, err, len);
        ok = g != NULL;
        ir_graph_free(g);
    }
    return ok;
}
