/* The gradient rules, one per op of the op table (its grad column), written with the DSL
 * builders so that autodiff produces ordinary nodes every later pass understands.
 *
 * A rule returns the gradient with respect to operand i given dy, the gradient with respect
 * to the node's value; an elementwise rule may return it in the node's broadcast shape, and
 * autodiff sums it back to the operand's. Plain numbers (0, 1, 2) become constants. */
#include <string.h>

#include "passes.h"

#define AT ad_at(c)
#define A ad_operand(c, n, 0)
#define B ad_operand(c, n, 1)
#define Y ad_self(c, n)
#define K(x) ag_imm_of(x)

static ag_val ew1(ad_ctx *c, ir_op op, ag_val a) { return ag_ew_at(AT, op, 1, &a); }
static ag_val ew2(ad_ctx *c, ir_op op, ag_val a, ag_val b) { return ag_ew_at(AT, op, 2, (ag_val[]){a, b}); }
static ag_val ew3(ad_ctx *c, ir_op op, ag_val a, ag_val b, ag_val d)
{
    return ag_ew_at(AT, op, 3, (ag_val[]){a, b, d});
}
#define ADD(a, b) ew2(c, IR_add, a, b)
#define SUB(a, b) ew2(c, IR_sub, a, b)
#define MUL(a, b) ew2(c, IR_mul, a, b)
#define DIV(a, b) ew2(c, IR_div, a, b)
#define NEG(a) ew1(c, IR_neg, a)
#define WHERE(k, a, b) ew3(c, IR_where, k, a, b)

/* A value's shape, copied: building a node may move the graph's nodes (ir_add grows the
 * array), so no pointer into them outlives the next builder call. */
static ir_shape shape(ad_ctx *c, ag_val v) { return ad_graph(c)->node[v.id].shape; }

static ag_dims dims_of(const ir_shape *s)
{
    ag_dims d = {s->rank, {0}};
    for (int i = 0; i < s->rank; i++)
        d.d[i] = s->dim[i];
    return d;
}

/* v (a reduction's result or its gradient) back in the reduced operand's shape: the reduced
 * axes restored with extent 1, then broadcast. */
static ag_val expand(ad_ctx *c, const ir_node *n, ag_val v)
{
    const ir_shape sv = shape(c, A), *s = &sv;
    ag_dims kept = dims_of(s);
    for (int i = 0; i < s->rank; i++)
        if (n->attr.axes >> i & 1)
            kept.d[i] = 1;
    return ag_broadcast_to_at(AT, ag_reshape_at(AT, v, kept), dims_of(s));
}

/* sum along one axis, keeping it */
static ag_val sum_keep(ad_ctx *c, ag_val v, int axis)
{
    return ag_reduce_at(AT, IR_sum, v, (ag_dims){1, {axis}}, true);
}

/* A node built directly, for what the builders do not offer (transposed matmuls, a
 * dropout with a given site). */
static ag_val node(ad_ctx *c, ir_node *m)
{
    char msg[256];
    m->loc = AT;
    int32_t id = ir_add(ad_graph(c), m, msg, sizeof msg);
    return (ag_val){ad_graph(c), id >= 0 ? id : AG_POISON, 0};
}

static ag_val matmul(ad_ctx *c, ag_val a, ag_val b, bool ta, bool tb)
{
    ir_node m = ir_node_make(IR_matmul, 2, (int32_t[]){a.id, b.id});
    m.attr.ta = ta;
    m.attr.tb = tb;
    return node(c, &m);
}

ag_val no_grad(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)c, (void)n, (void)i, (void)dy;
    return (ag_val){NULL, AG_POISON, 0};
}

/* ---- elementwise ---- */

static ag_val grad_neg(ad_ctx *c, const ir_node *n, int i, ag_val dy) { return (void)n, (void)i, NEG(dy); }
static ag_val grad_exp(ad_ctx *c, const ir_node *n, int i, ag_val dy) { return (void)i, MUL(dy, Y); }
static ag_val grad_log(ad_ctx *c, const ir_node *n, int i, ag_val dy) { return (void)i, DIV(dy, A); }
static ag_val grad_abs(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)i;
    return WHERE(ew2(c, IR_gt, A, K(0)), dy, WHERE(ew2(c, IR_lt, A, K(0)), NEG(dy), K(0)));
}
static ag_val grad_sqrt(ad_ctx *c, const ir_node *n, int i, ag_val dy) { return (void)i, DIV(dy, MUL(Y, K(2))); }
static ag_val grad_square(ad_ctx *c, const ir_node *n, int i, ag_val dy) { return (void)i, MUL(dy, MUL(A, K(2))); }
/* from the output (relu(a) > 0 exactly where a > 0), so the backward pass keeps only the
 * activation the next layer reads anyway, not the pre-activation too */
static ag_val grad_relu(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    return (void)i, WHERE(ew2(c, IR_gt, Y, K(0)), dy, K(0));
}
static ag_val grad_sigmoid(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    return (void)i, MUL(dy, MUL(Y, SUB(K(1), Y)));
}
static ag_val grad_tanh(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    return (void)i, MUL(dy, SUB(K(1), ew1(c, IR_square, Y)));
}
/* reached only from f32 to f32: an integer operand carries no gradient */
static ag_val grad_cast(ad_ctx *c, const ir_node *n, int i, ag_val dy) { return (void)c, (void)n, (void)i, dy; }
static ag_val grad_add(ad_ctx *c, const ir_node *n, int i, ag_val dy) { return (void)c, (void)n, (void)i, dy; }
static ag_val grad_sub(ad_ctx *c, const ir_node *n, int i, ag_val dy) { return (void)n, i ? NEG(dy) : dy; }
static ag_val grad_mul(ad_ctx *c, const ir_node *n, int i, ag_val dy) { return MUL(dy, i ? A : B); }
static ag_val grad_div(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    return i ? NEG(MUL(dy, DIV(Y, B))) : DIV(dy, B);
}
static ag_val grad_pow(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    if (i == 0)
        return MUL(dy, MUL(B, ew2(c, IR_pow, A, SUB(B, K(1)))));
    return MUL(dy, MUL(Y, ew1(c, IR_log, A)));
}
/* ties go to a, as the forward value does */
static ag_val grad_maximum(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    ag_val pick_a = ew2(c, IR_ge, A, B);
    return i ? WHERE(pick_a, K(0), dy) : WHERE(pick_a, dy, K(0));
}
static ag_val grad_minimum(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    ag_val pick_a = ew2(c, IR_le, A, B);
    return i ? WHERE(pick_a, K(0), dy) : WHERE(pick_a, dy, K(0));
}
static ag_val grad_where(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    return i == 1 ? WHERE(A, dy, K(0)) : WHERE(A, K(0), dy); /* i == 0, the condition, is bool */
}

/* ---- reductions and scans ---- */

static ag_val grad_sum(ad_ctx *c, const ir_node *n, int i, ag_val dy) { return (void)i, expand(c, n, dy); }

/* The count of reduced elements may involve the batch N, known only when the graph runs:
 * then it is computed in the graph, as the sum of ones over [N]. */
static ag_val grad_mean(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)i;
    const ir_shape sv = shape(c, A), *s = &sv;
    double count = 1;
    bool batch = false;
    for (int k = 0; k < s->rank; k++)
        if (n->attr.axes >> k & 1) {
            if (s->dim[k] == AG_N)
                batch = true;
            else
                count *= (double)s->dim[k];
        }
    ag_val g = DIV(expand(c, n, dy), K(count));
    if (batch) {
        ag_val ones = ag_broadcast_to_at(AT, ag_const_at(AT, ad_graph(c), AG_F32, 1), (ag_dims){1, {AG_N}});
        g = DIV(g, ag_reduce_at(AT, IR_sum, ones, (ag_dims){0, {0}}, false));
    }
    return g;
}

/* to every element equal to the maximum (each of tied ones gets all of dy) */
static ag_val grad_max(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)i;
    return WHERE(ew2(c, IR_eq, A, expand(c, n, Y)), expand(c, n, dy), K(0));
}

/* the reverse running sum: the total minus what came before */
static ag_val grad_cumsum(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)i;
    ag_val before = SUB(ag_axis_at(AT, IR_cumsum, dy, n->attr.axis), dy);
    return SUB(sum_keep(c, dy, n->attr.axis), before);
}

/* ---- matmul: vectors are promoted to matrices, the flags carry every transpose ---- */

static ag_val as_matrix(ad_ctx *c, ag_val v, bool row)
{
    const ir_shape sv = shape(c, v), *s = &sv;
    if (s->rank == 2)
        return v;
    return ag_reshape_at(AT, v, row ? (ag_dims){2, {1, s->dim[0]}} : (ag_dims){2, {s->dim[0], 1}});
}

static ag_val grad_matmul(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    bool ta = n->attr.ta, tb = n->attr.tb;
    ag_val a = as_matrix(c, A, true), b = as_matrix(c, B, false);
    const ir_shape sav = shape(c, A), sbv = shape(c, B), *sa = &sav, *sb = &sbv;
    /* dy as [m, n]: a vector a made m = 1, a vector b made n = 1 */
    int64_t m = sa->rank == 2 ? sa->dim[ta] : 1, nn = sb->rank == 2 ? sb->dim[!tb] : 1;
    ag_val d = ag_reshape_at(AT, dy, (ag_dims){2, {m, nn}});
    ag_val g;
    if (i == 0) /* dA = dC B^T, stored transposed when a is */
        g = ta ? matmul(c, b, d, tb, true) : matmul(c, d, b, false, !tb);
    else /* dB = A^T dC, stored transposed when b is */
        g = tb ? matmul(c, d, a, true, ta) : matmul(c, a, d, !ta, false);
    return ag_reshape_at(AT, g, dims_of(i ? sb : sa));
}

/* ---- layout ---- */

static ag_val grad_transpose(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)i;
    ag_dims inv = {n->shape.rank, {0}};
    for (int k = 0; k < n->shape.rank; k++)
        inv.d[n->attr.perm[k]] = k;
    return ag_transpose_at(AT, dy, inv);
}

static ag_val grad_reshape(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    const ir_shape s = shape(c, A);
    return (void)i, ag_reshape_at(AT, dy, dims_of(&s));
}

/* autodiff's sum back to the operand's shape is the whole rule */
static ag_val grad_broadcast_to(ad_ctx *c, const ir_node *n, int i, ag_val dy) { return (void)c, (void)n, (void)i, dy; }

static ag_val grad_concat(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    int64_t start = 0;
    for (int k = 0; k < i; k++)
        start += shape(c, ad_operand(c, n, k)).dim[n->attr.axis];
    return ag_slice_at(AT, dy, n->attr.axis, start, shape(c, ad_operand(c, n, i)).dim[n->attr.axis]);
}

/* dy placed at its slice, zeros around it */
static ag_val grad_slice(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)i;
    int ax = n->attr.axis;
    const ir_shape sv = shape(c, A), *s = &sv;
    int64_t before = n->attr.start, after = s->dim[ax] - n->attr.start - n->shape.dim[ax];
    ag_val parts[3];
    int k = 0;
    ag_val zero = ag_const_at(AT, ad_graph(c), AG_F32, 0);
    ag_dims d = dims_of(s);
    if (before) {
        d.d[ax] = before;
        parts[k++] = ag_broadcast_to_at(AT, zero, d);
    }
    parts[k++] = dy;
    if (after) {
        d.d[ax] = after;
        parts[k++] = ag_broadcast_to_at(AT, zero, d);
    }
    return ag_concat_at(AT, ax, k, parts);
}

/* ---- sliding windows: each gradient an op of its own, with the forward op's window ---- */

static ag_val window_grad(ad_ctx *c, const ir_node *n, ir_op op, int nin, const int32_t *in, const ir_shape *result)
{
    ir_node m = ir_node_make(op, nin, in);
    m.attr.win = n->attr.win;
    if (result)
        m.shape = *result; /* the gradients whose shape the window cannot tell are told it */
    return node(c, &m);
}

static ag_val grad_conv2d(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    const ir_shape s = shape(c, i ? B : A);
    if (i == 0)
        return window_grad(c, n, IR_conv2d_input_grad, 2, (int32_t[]){dy.id, B.id}, &s);
    return window_grad(c, n, IR_conv2d_weight_grad, 2, (int32_t[]){A.id, dy.id}, &s);
}

static ag_val grad_max_pool2d(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)i;
    return window_grad(c, n, IR_max_pool2d_grad, 2, (int32_t[]){A.id, dy.id}, NULL);
}

static ag_val grad_avg_pool2d(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)i;
    const ir_shape s = shape(c, A);
    return window_grad(c, n, IR_avg_pool2d_grad, 1, &dy.id, &s);
}

/* ---- rows ---- */

static ag_val grad_softmax(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)i;
    return MUL(Y, SUB(dy, sum_keep(c, MUL(dy, Y), n->attr.axis)));
}

static ag_val grad_log_softmax(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)i;
    return SUB(dy, MUL(ew1(c, IR_exp, Y), sum_keep(c, dy, n->attr.axis)));
}

/* (softmax - one_hot) * dy per row, from the logits: nothing else saved */
static ag_val grad_softmax_ce(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)i; /* operand 1, the labels, is i32 */
    ir_node m = ir_node_make(IR_softmax_ce_grad, 3, (int32_t[]){A.id, B.id, dy.id});
    return node(c, &m);
}

/* the same site and step give the same mask: dy through it */
static ag_val grad_dropout(ad_ctx *c, const ir_node *n, int i, ag_val dy)
{
    (void)i;
    ir_node m = ir_node_make(IR_dropout, 1, &dy.id);
    m.attr.value = n->attr.value;
    m.attr.site = n->attr.site;
    return node(c, &m);
}

ad_rule *const ad_rules[IR_OP_COUNT] = {
#define RULE_EW(name, arity, scalar, types, grad, doc) [IR_##name] = grad,
#define RULE_OP(name, kind, arity, attrs, rule, grad, doc) [IR_##name] = grad,
    IR_OPS(RULE_EW, RULE_OP)
#undef RULE_EW
#undef RULE_OP
};
