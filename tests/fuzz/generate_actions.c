/* The random-model generator's actions: each picks operands from the pool or makes what it
 * needs, adds one DSL builder call, and returns false where it could not (generate.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"

/* A value of rank lo..hi from the pool: f32 most often, any dtype sometimes; -1 if none. */
static int pick_mostly_f32(gen *G, int lo, int hi)
{
    want w = of_types(chance(G, 0.8) ? F32 : ANY);
    w.min_rank = lo;
    w.max_rank = hi;
    return gen_pick(G, &w);
}

static bool act_unary_float(gen *G)
{
    static const ir_op ops[] = {IR_exp, IR_log, IR_sqrt, IR_sigmoid, IR_tanh};
    ir_op op = ops[rnd(G, 5)];
    want w = of_types(F32);
    w.positive = op == IR_log || op == IR_sqrt;
    w.max_abs = op == IR_exp ? 8 : 1e4;
    int k = gen_f32_value(G, w);
    return k >= 0 && gen_unary(G, op, k) >= 0;
}

static bool act_unary_num(gen *G)
{
    static const ir_op ops[] = {IR_neg, IR_abs, IR_square, IR_relu};
    ir_op op = ops[rnd(G, 4)];
    want w = of_types(chance(G, 0.75) ? F32 : I32);
    w.max_abs = op == IR_square ? 100 : 1e4;
    int k = gen_pick(G, &w);
    if (k < 0 && w.dtypes == F32)
        k = gen_f32_value(G, w);
    return k >= 0 && gen_unary(G, op, k) >= 0;
}

static bool act_cast(gen *G)
{
    want w = of_types(ANY);
    w.max_abs = 1e6;
    int k = gen_pick(G, &w);
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
    return gen_add(G, s) >= 0;
}

static bool act_stop_gradient(gen *G)
{
    int k = pick_mostly_f32(G, 0, 4);
    if (k < 0)
        return false;
    fz_step s = step_of(FZ_EW);
    s.op = IR_stop_gradient;
    s.form = chance(G, 0.5); /* ag_detach */
    s.nargs = 1;
    s.arg[0] = A(k);
    return gen_add(G, s) >= 0;
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
    int k = f ? gen_f32_value(G, w) : gen_pick(G, &w);
    if (k < 0)
        return false;
    want w2 = of_types(0);
    w2.max_abs = op == IR_mul ? 100 : 1e4;
    if (op == IR_div)
        w2.nonzero = true;
    if (op == IR_pow) { /* small exponents: a number, or a bounded value */
        if (chance(G, 0.6))
            return gen_binary(G, op, A(k), IMM((double)between(G, -4, 6) / 2)) >= 0;
        w2.max_abs = 2;
    }
    fz_arg b = gen_second(G, k, f ? AG_F32 : AG_I32, w2);
    if (b.step < 0 && b.imm == 0 && op == IR_div)
        b.imm = 2;
    if (b.step < 0 && G->failed)
        return false;
    /* the number may come first: 1 / x, 2 - x */
    if (b.step < 0 && op != IR_div && op != IR_pow && chance(G, 0.3))
        return gen_binary(G, op, b, A(k)) >= 0;
    if (op == IR_div && chance(G, 0.2) && maxabs(G->r[k]) > 0) { /* a number over a value */
        int d = k;
        if (!(G->r[d].lo >= 0.05 || G->r[d].hi <= -0.05))
            d = gen_positive(G, d);
        return d >= 0 && gen_binary(G, op, IMM(pick_number(G, -2, 2)), A(d)) >= 0;
    }
    return gen_binary(G, op, A(k), b) >= 0;
}

static bool act_compare(gen *G)
{
    static const ir_op ops[] = {IR_lt, IR_le, IR_gt, IR_ge, IR_eq, IR_ne};
    ir_op op = ops[rnd(G, 6)];
    unsigned t = chance(G, 0.6) ? F32 : chance(G, 0.5) ? I32 : U8;
    want w = of_types(t);
    int k = gen_pick(G, &w);
    if (k < 0)
        return false;
    fz_arg b = gen_second(G, k, dtype(G, k), of_types(0));
    if (b.step < 0 && G->failed)
        return false;
    return gen_binary(G, op, A(k), b) >= 0;
}

static bool act_where(gen *G)
{
    want w = of_types(chance(G, 0.8) ? F32 : I32);
    w.max_abs = 1e4;
    int a = gen_pick(G, &w);
    if (a < 0)
        return false;
    ir_shape sa = shape(G, a);
    want wc = of_types(BOOL);
    wc.bcast = &sa;
    int c = gen_pick(G, &wc);
    if (c < 0) { /* a comparison of a with a number */
        fz_step cmp = step_of(FZ_EW);
        cmp.op = (ir_op)(IR_lt + rnd(G, 4));
        cmp.nargs = 2;
        cmp.arg[0] = A(a);
        cmp.arg[1] = IMM(dtype(G, a) == AG_F32 ? pick_number(G, -1, 1) : (double)between(G, 0, 5));
        c = gen_add(G, cmp);
        if (c < 0)
            return false;
    }
    fz_arg b = gen_second(G, a, dtype(G, a), w);
    if (b.step < 0 && G->failed)
        return false;
    fz_step s = step_of(FZ_EW);
    s.op = IR_where;
    s.nargs = 3;
    s.arg[0] = A(c);
    bool swap = chance(G, 0.5);
    s.arg[1] = swap ? b : A(a);
    s.arg[2] = swap ? A(a) : b;
    return gen_add(G, s) >= 0;
}

static bool act_reduce(gen *G)
{
    static const ir_op ops[] = {IR_sum, IR_mean, IR_max};
    ir_op op = ops[rnd(G, 3)];
    want w = of_types(op == IR_mean || chance(G, 0.8) ? F32 : I32);
    w.min_rank = 1;
    int k = gen_pick(G, &w);
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
    return gen_add(G, s) >= 0;
}

static bool act_axis_op(gen *G, fz_kind kind)
{
    want w = of_types(chance(G, 0.8) ? F32 : I32);
    w.min_rank = 1;
    int k = gen_pick(G, &w);
    if (k < 0)
        return false;
    int r = rank(G, k);
    fz_step s = step_of(kind);
    s.nargs = 1;
    s.arg[0] = A(k);
    s.axis = rnd(G, r) - (chance(G, 0.3) ? r : 0);
    return gen_add(G, s) >= 0;
}

static bool act_matmul(gen *G)
{
    want w = of_types(F32);
    w.min_rank = 1;
    w.max_rank = 2;
    w.max_abs = 100;
    int a = gen_f32_value(G, w);
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
        int c = gen_pick(G, &wb);
        if (c >= 0 && shape(G, c).dim[0] == kdim)
            b = c;
    }
    if (b < 0) {
        int64_t n = gen_small_dim(G);
        ag_dims d = b_matrix ? (ag_dims){2, {kdim, n}} : (ag_dims){1, {kdim}};
        if (kdim == AG_N)
            b = gen_new_input(G, AG_F32, d);
        else
            b = gen_new_param(G, d);
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
    return gen_add(G, s) >= 0;
}

static bool act_transpose(gen *G)
{
    int k = pick_mostly_f32(G, 1, 4);
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
    return gen_add(G, s) >= 0;
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
    int k = pick_mostly_f32(G, 0, 4);
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
    return gen_add(G, st) >= 0;
}

static bool act_flatten(gen *G)
{
    int k = pick_mostly_f32(G, 2, 4);
    if (k < 0)
        return false;
    ir_shape s = shape(G, k);
    for (int i = 1; i < s.rank; i++)
        if (s.dim[i] == AG_N)
            return false;
    fz_step st = step_of(FZ_FLATTEN);
    st.nargs = 1;
    st.arg[0] = A(k);
    return gen_add(G, st) >= 0;
}

static bool act_broadcast(gen *G)
{
    int k = pick_mostly_f32(G, 0, 3);
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
    return gen_add(G, st) >= 0;
}

static bool act_slice(gen *G)
{
    int k = pick_mostly_f32(G, 1, 4);
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
    return gen_add(G, st) >= 0;
}

/* A value with k's dtype and shape except along axis ax (any extent there). */
static int concat_part(gen *G, int k, int ax)
{
    ir_shape s = shape(G, k);
    ag_dtype t = dtype(G, k);
    switch (rnd(G, 5)) {
    case 0: return k;
    case 1: /* k transformed */
        if (t == AG_F32)
            return chance(G, 0.5) ? gen_binary(G, IR_mul, A(k), IMM(pick_number(G, -2, 2))) : gen_unary(G, IR_tanh, k);
        return t == AG_I32 ? gen_unary(G, IR_neg, k) : k;
    case 2: { /* a slice of k, maybe transformed */
        if (s.dim[ax] < 2)
            return k;
        fz_step st = step_of(FZ_SLICE);
        st.nargs = 1;
        st.arg[0] = A(k);
        st.axis = ax;
        st.extent = between(G, 1, (int)s.dim[ax] - 1);
        st.start = rnd(G, (int)(s.dim[ax] - st.extent + 1));
        int c = gen_add(G, st);
        return c >= 0 && t == AG_F32 && chance(G, 0.6) ? gen_binary(G, IR_mul, A(c), IMM(pick_number(G, -2, 2))) : c;
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
        ag_dims d = gen_dims_of(&s);
        d.d[ax] = between(G, 1, 5);
        if (t == AG_F32 && !has_n(&s))
            return gen_new_param(G, d);
        int c = gen_new_input(G, t, d);
        return c >= 0 ? c : k;
    }
    }
}

static bool act_concat(gen *G)
{
    want w = of_types(chance(G, 0.85) ? F32 : ANY);
    w.min_rank = 1;
    w.max_abs = 1e4;
    int k = gen_pick(G, &w);
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
    return gen_add(G, st) >= 0;
}

static bool act_softmax(gen *G)
{
    want w = of_types(F32);
    w.min_rank = 1;
    w.max_abs = 50;
    int k = gen_f32_value(G, w);
    if (k < 0 || rank(G, k) < 1)
        return false;
    int r = rank(G, k);
    fz_step s = step_of(FZ_SOFTMAX);
    s.op = chance(G, 0.5) ? IR_softmax : IR_log_softmax;
    s.nargs = 1;
    s.arg[0] = A(k);
    s.axis_given = chance(G, 0.5);
    s.axis = rnd(G, r) - (chance(G, 0.3) ? r : 0);
    return gen_add(G, s) >= 0;
}

/* i32 labels of the given shape: from the pool, else a new input. */
static int labels(gen *G, const ir_shape *s)
{
    for (int tries = 0; tries < 8; tries++) {
        want w = of_types(I32);
        w.min_rank = w.max_rank = s->rank;
        int c = gen_pick(G, &w);
        if (c >= 0 && ir_shape_eq(&nd(G, c)->shape, s))
            return c;
    }
    if (G->o->data_shaped)
        return G->y >= 0 && dtype(G, G->y) == AG_I32 && ir_shape_eq(&nd(G, G->y)->shape, s) ? G->y : -1;
    return gen_new_input(G, AG_I32, gen_dims_of(s));
}

static bool act_one_hot(gen *G)
{
    want w = of_types(I32);
    w.max_rank = 3;
    int k = gen_pick(G, &w);
    if (k < 0 && !G->o->data_shaped)
        k = gen_new_input(G, AG_I32, chance(G, 0.7) ? (ag_dims){1, {AG_N}} : (ag_dims){2, {AG_N, between(G, 1, 3)}});
    if (k < 0)
        return false;
    fz_step s = step_of(FZ_ONE_HOT);
    s.nargs = 1;
    s.arg[0] = A(k);
    s.classes = between(G, 1, 10);
    return gen_add(G, s) >= 0;
}

/* An f32 [rows, classes] value carrying a gradient, as logits. */
int gen_logits(gen *G)
{
    want w = of_types(F32);
    w.min_rank = w.max_rank = 2;
    w.max_abs = 50;
    w.grad = true;
    int k = gen_pick(G, &w);
    if (k >= 0 && shape(G, k).dim[1] != AG_N)
        return k;
    w.min_rank = 0;
    w.max_rank = 4;
    w.max_abs = 1e30;
    k = gen_pick(G, &w);
    if (k < 0)
        k = gen_new_param(G, (ag_dims){2, {between(G, 1, 4), between(G, 2, 6)}});
    k = gen_bounded(G, k, 20);
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
    return gen_add(G, st);
}

bool gen_act_cross_entropy(gen *G)
{
    int k = gen_logits(G);
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
    return gen_add(G, st) >= 0;
}

static bool act_correct(gen *G)
{
    want w = of_types(F32);
    w.min_rank = 1;
    w.max_rank = 3;
    int k = gen_pick(G, &w);
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
    return gen_add(G, st) >= 0;
}

static bool act_regression_loss(gen *G, fz_kind kind)
{
    want w = of_types(F32);
    w.max_abs = 1e3;
    int k = gen_f32_value(G, w);
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
            int d = gen_pick(G, &wt);
            if (d >= 0 && d != k && numel_item(&nd(G, d)->shape) == numel_item(&s) &&
                has_n(&nd(G, d)->shape) == has_n(&s))
                c = d;
        }
        if (c < 0)
            c = has_n(&s) ? gen_new_input(G, AG_F32, gen_dims_of(&ts)) : gen_new_param(G, gen_dims_of(&ts));
        if (c < 0)
            return false;
        t = A(c);
    } else {
        w.max_abs = 1e3;
        t = gen_second(G, k, AG_F32, w);
        if (t.step < 0 && G->failed)
            return false;
    }
    fz_step st = step_of(kind);
    st.nargs = 2;
    st.arg[0] = A(k);
    st.arg[1] = t;
    return gen_add(G, st) >= 0;
}

static bool act_dropout(gen *G)
{
    want w = of_types(F32);
    int k = gen_f32_value(G, w);
    if (k < 0)
        return false;
    static const double ps[] = {0, 0.25, 0.5, 0.5, 0.75, 1};
    fz_step s = step_of(FZ_DROPOUT);
    s.nargs = 1;
    s.arg[0] = A(k);
    s.value = ps[rnd(G, 6)];
    return gen_add(G, s) >= 0;
}

static bool act_norm(gen *G)
{
    want w = of_types(F32);
    w.max_abs = 100;
    int k = gen_f32_value(G, w);
    if (k < 0)
        return false;
    fz_step s = step_of(FZ_NORM);
    s.nargs = 1;
    s.arg[0] = A(k);
    s.form = rnd(G, 4);
    return gen_add(G, s) >= 0;
}

bool gen_act_source(gen *G)
{
    switch (rnd(G, 4)) {
    case 0: {
        fz_step s = step_of(FZ_CONST);
        s.dtype = chance(G, 0.7) ? AG_F32 : AG_I32;
        s.value = s.dtype == AG_F32 ? pick_number(G, -2, 2) : (double)between(G, -3, 9);
        return gen_add(G, s) >= 0;
    }
    case 1: {
        fz_step s = step_of(FZ_FULL);
        s.value = pick_number(G, -2, 2);
        int r = between(G, 1, 2);
        for (int i = 0; i < r; i++)
            s.dims.d[s.dims.n++] = i == 0 && chance(G, 0.5) ? AG_N : gen_small_dim(G);
        return gen_add(G, s) >= 0;
    }
    case 2: {
        ag_dims d = {0, {0}};
        for (int i = 0, r = between(G, 0, 2); i < r; i++)
            d.d[d.n++] = gen_small_dim(G);
        return gen_new_param(G, d) >= 0;
    }
    default: {
        static const ag_dtype ts[] = {AG_F32, AG_F32, AG_F32, AG_I32, AG_U8, AG_BOOL};
        ag_dims d = {0, {0}};
        int r = between(G, 1, 3);
        int at = chance(G, 0.8) ? 0 : chance(G, 0.5) ? rnd(G, r) : -1;
        for (int i = 0; i < r; i++)
            d.d[d.n++] = i == at ? AG_N : gen_small_dim(G);
        return gen_new_input(G, ts[rnd(G, 6)], d) >= 0;
    }
    }
}

/* ---- convolutions and pooling ---- */

/* An f32 [B,C,H,W] value (B N or a number, the rest small), from the pool as it is or through
 * a reshape of one; -1 if none. */
static int image_value(gen *G)
{
    want w = of_types(F32);
    w.max_abs = 100;
    int k = gen_f32_value(G, w);
    if (k < 0)
        return -1;
    ir_shape s = shape(G, k);
    bool n = has_n(&s);
    if (n && s.dim[0] != AG_N)
        return -1; /* N elsewhere than first: no image batch */
    int64_t e = numel_item(&s);
    if (s.rank == 4 && s.dim[1] <= 4 && s.dim[2] <= 12 && s.dim[3] <= 12 && chance(G, 0.8))
        return k;
    if (e > 4 * 12 * 12)
        return -1;
    int64_t c = e % 2 == 0 && chance(G, 0.5) ? 2 : e % 3 == 0 && chance(G, 0.3) ? 3 : 1, hw = e / c, h = 1;
    for (int64_t d = 1; d * d <= hw; d++) /* the squarest factors */
        if (hw % d == 0)
            h = d;
    if (chance(G, 0.3))
        h = hw / h;
    fz_step st = step_of(FZ_RESHAPE);
    st.nargs = 1;
    st.arg[0] = A(k);
    st.dims = (ag_dims){4, {n ? AG_N : 1, c, h, hw / h}};
    return gen_add(G, st);
}

/* A window's stride, pad and dilation drawn for each axis of extent in, with a window of
 * kernel (pooling: pad at most half the kernel); false if none fits. */
static bool draw_window(gen *G, fz_step *st, const ir_shape *s, int kh, int kw, bool pool, bool dilate)
{
    int k[2] = {kh, kw};
    for (int i = 0; i < 2; i++) {
        int64_t in = s->dim[2 + i];
        st->stride[i] = between(G, 1, 2);
        st->dilation[i] = dilate && chance(G, 0.3) ? 2 : 1;
        int span = st->dilation[i] * (k[i] - 1) + 1;
        st->pad[i] = between(G, 0, pool ? k[i] / 2 : 2);
        if (in + 2 * st->pad[i] < span)
            st->dilation[i] = 1, span = k[i];
        if (in + 2 * st->pad[i] < span)
            return false;
    }
    return true;
}

static bool act_conv2d(gen *G)
{
    int x = image_value(G);
    if (x < 0)
        return false;
    ir_shape s = shape(G, x);
    fz_step st = step_of(FZ_CONV2D);
    st.groups = s.dim[1] % 2 == 0 && chance(G, 0.3) ? 2 : 1;
    int kh = between(G, 1, 3), kw = between(G, 1, 3);
    if (!draw_window(G, &st, &s, kh, kw, false, true))
        return false;
    int64_t out = st.groups * between(G, 1, 3);
    int w = gen_new_param(G, (ag_dims){4, {out, s.dim[1] / st.groups, kh, kw}});
    if (w < 0)
        return false;
    st.nargs = 2;
    st.arg[0] = A(x);
    st.arg[1] = A(w);
    if (chance(G, 0.4)) {
        int b = gen_new_param(G, (ag_dims){1, {out}});
        if (b < 0)
            return false;
        st.arg[st.nargs++] = A(b);
    }
    return gen_add(G, st) >= 0;
}

static bool act_pool2d(gen *G)
{
    int x = image_value(G);
    if (x < 0)
        return false;
    ir_shape s = shape(G, x);
    fz_step st = step_of(FZ_POOL2D);
    st.op = chance(G, 0.5) ? IR_max_pool2d : IR_avg_pool2d;
    st.kernel = between(G, 1, 3);
    st.groups = 1;
    if (!draw_window(G, &st, &s, st.kernel, st.kernel, true, st.op == IR_max_pool2d))
        return false;
    st.nargs = 1;
    st.arg[0] = A(x);
    return gen_add(G, st) >= 0;
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
    {act_unary_float, 8}, {act_unary_num, 6},    {act_cast, 4},    {act_stop_gradient, 2}, {act_binary, 14},
    {act_compare, 3},     {act_where, 3},        {act_reduce, 6},  {act_argmax, 2},        {act_cumsum, 2},
    {act_matmul, 10},     {act_transpose, 3},    {act_reshape, 3}, {act_flatten, 2},       {act_broadcast, 2},
    {act_slice, 3},       {act_concat, 5},       {act_softmax, 3}, {act_one_hot, 2},       {gen_act_cross_entropy, 2},
    {act_correct, 1},     {act_squared_loss, 1}, {act_mse, 1},     {act_dropout, 3},       {act_norm, 1},
    {gen_act_source, 3},  {act_conv2d, 3},       {act_pool2d, 2},
};

/* One action, drawn by weight. */
void gen_random_action(gen *G)
{
    int total = 0;
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++)
        total += actions[i].weight;
    int r = rnd(G, total);
    size_t i = 0;
    while ((r -= actions[i].weight) >= 0)
        i++;
    actions[i].run(G);
}
