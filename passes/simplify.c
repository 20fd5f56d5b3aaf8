/* Simplify: constant folding, algebraic identities, CSE and DCE.
 *
 * One forward pass builds the new graph through the map (old id -> new id). Each node is
 * looked at with its operands already mapped, so a rule sees rewritten operands and one
 * pass reaches the fixed point: no rule depends on a node's users, and DCE, which runs
 * last (ir_prune), enables none. CSE is ir_intern's hash-consing: nodes that become
 * identical once their operands are rewritten merge as they are appended.
 *
 * Every rule keeps the value bit for bit in the interpreter (the log of a softmax
 * excepted, which becomes the better-conditioned log_softmax), and an identity applies only
 * where the result has exactly its operand's dtype and shape, never where broadcasting
 * grows it:
 *
 *   fold       elementwise op of scalar consts  -> const, computed by the interpreter in
 *                                                  f32 mode (the compiled semantics: f32
 *                                                  rounds every step, integers saturate)
 *   arith      x*1, 1*x, x/1 -> x;  x+0, 0+x, x-0 -> x for i32;  for f32 only the exact
 *              IEEE forms x+(-0.0), (-0.0)+x, x-(+0.0) (since -0.0 + +0.0 is +0.0)
 *   neg        neg(neg(x)) -> x for f32 (for i32, -INT32_MIN saturates)
 *   cast       cast of x to the dtype x has -> x
 *   layout     reshape, broadcast_to or transpose to x's own shape/order -> x;
 *              reshape(reshape(x)) -> reshape(x);  transpose(transpose(x)) -> one transpose;
 *              broadcast_to(broadcast_to(x)) and broadcast_to(reshape(x)) -> broadcast_to(x)
 *              where the reshape only added or dropped leading 1s
 *   where      where(c, x, x) -> x;  where(k, x, y) with k a constant -> x or y
 *   log        log(softmax(x, axis)) -> log_softmax(x, axis)
 *
 * A constant seen through reshape or broadcast_to (a splat) counts as that constant for
 * the identities. Not folded, on purpose: x*0 and x-x (NaN, inf), x+(+0.0) for f32 (-0.0),
 * stop_gradient (autodiff may still run on the result), random ops. */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "interp.h"
#include "passes.h"

typedef struct simp {
    const ir_graph *g; /* the input */
    ir_graph *h;       /* the graph being built */
    int32_t *map;      /* g id -> h id */
} simp;

static const ir_node *at(const simp *s, int32_t id) { return &s->h->node[id]; }

/* Append n (operands in h, location from g) to h: inferred, its location's file moved into
 * h as ir_copy_node does, hash-consed. A rule builds only well-typed nodes. */
static int32_t emit(simp *s, ir_node *n)
{
    ir_graph *h = s->h;
    if (n->loc.file) {
        if (n->loc.file != h->file_src) {
            h->file_src = n->loc.file;
            h->file_copy = ir_strdup(h, n->loc.file);
        }
        n->loc.file = h->file_copy;
    }
    char err[256];
    bool ok = ir_infer(h, n, err, sizeof err);
    if (!ok)
        fprintf(stderr, "simplify: internal error: %s\n", err);
    assert(ok);
    return ir_intern(h, n);
}

/* The value of a constant, seen through reshapes and broadcasts of it. */
static bool const_value(const simp *s, int32_t id, double *v)
{
    const ir_node *n = at(s, id);
    while (n->op == IR_reshape || n->op == IR_broadcast_to)
        n = at(s, n->in[0]);
    if (n->op != IR_const)
        return false;
    *v = n->attr.value;
    return true;
}

static bool is_one(const simp *s, int32_t id)
{
    double v;
    return const_value(s, id, &v) && v == 1;
}

/* x + k == x for every x: k is 0 for integers and -0.0 for floats. */
static bool is_add_zero(const simp *s, int32_t id)
{
    double v;
    return const_value(s, id, &v) && v == 0 && (at(s, id)->dtype != AG_F32 || signbit(v));
}

/* x - k == x for every x: k is 0 for integers and +0.0 for floats. */
static bool is_sub_zero(const simp *s, int32_t id)
{
    double v;
    return const_value(s, id, &v) && v == 0 && (at(s, id)->dtype != AG_F32 || !signbit(v));
}

/* Node id of h may stand for node n of g: the same dtype and shape. */
static bool fits(const simp *s, int32_t id, const ir_node *n)
{
    return at(s, id)->dtype == n->dtype && ir_shape_eq(&at(s, id)->shape, &n->shape);
}

/* Elementwise node n of scalar constants (operands in h), evaluated by the interpreter in
 * f32 mode on a graph of its own: the value a compiled program computes. */
static double fold(const simp *s, const ir_node *n)
{
    ir_graph *t = ir_graph_new("fold");
    int32_t in[3];
    for (int k = 0; k < n->nin; k++) {
        ir_node c = ir_node_make(IR_const, 0, NULL);
        c.dtype = at(s, n->in[k])->dtype;
        c.attr.value = at(s, n->in[k])->attr.value;
        in[k] = ir_intern(t, &c);
    }
    ir_node m = *n;
    m.in = in;
    m.loc = (ag_loc){NULL, 0};
    char err[256];
    int32_t id = ir_add(t, &m, err, sizeof err);
    assert(id >= 0);
    ir_add_output(t, "v", id);
    ir_run run = {.f64 = false, .batch = 1};
    ir_tensor out;
    bool ok = ir_interp(t, &run, NULL, &out, err, sizeof err);
    if (!ok) {
        fprintf(stderr, "aotgrad: simplify: %s\n", err); /* a scalar: only out of memory */
        exit(1);
    }
    double v = ir_tensor_get(&out, 0);
    ir_tensor_free(&out);
    ir_graph_free(t);
    return v;
}

/* Does reshape r (in h) only add or drop leading 1s of its operand's shape? Then
 * broadcasting r is broadcasting its operand. */
static bool unit_padding(const simp *s, const ir_node *r)
{
    const ir_shape *a = &at(s, r->in[0])->shape, *b = &r->shape;
    int i = 0, j = 0;
    while (i < a->rank && a->dim[i] == 1)
        i++;
    while (j < b->rank && b->dim[j] == 1)
        j++;
    if (a->rank - i != b->rank - j)
        return false;
    for (; i < a->rank; i++, j++)
        if (a->dim[i] != b->dim[j])
            return false;
    return true;
}

/* The node of h that node i of g becomes, by a rule; -1 when none applies. n is node i
 * with its operands mapped into h. */
static int32_t rewrite(simp *s, const ir_node *o, ir_node *n)
{
    const int32_t *in = n->in;
    double v;
    if (ir_ops[o->op].kind == IR_K_ELEMENTWISE) {
        bool consts = true;
        for (int k = 0; k < n->nin; k++)
            consts &= at(s, in[k])->op == IR_const;
        if (consts) {
            ir_node c = ir_node_make(IR_const, 0, NULL);
            c.dtype = o->dtype;
            c.attr.value = fold(s, n);
            c.loc = o->loc;
            return emit(s, &c);
        }
    }
    switch (o->op) {
    case IR_mul:
        if (is_one(s, in[1]) && fits(s, in[0], o))
            return in[0];
        if (is_one(s, in[0]) && fits(s, in[1], o))
            return in[1];
        break;
    case IR_div:
        if (is_one(s, in[1]) && fits(s, in[0], o))
            return in[0];
        break;
    case IR_add:
        if (is_add_zero(s, in[1]) && fits(s, in[0], o))
            return in[0];
        if (is_add_zero(s, in[0]) && fits(s, in[1], o))
            return in[1];
        break;
    case IR_sub:
        if (is_sub_zero(s, in[1]) && fits(s, in[0], o))
            return in[0];
        break;
    case IR_neg:
        if (at(s, in[0])->op == IR_neg && o->dtype == AG_F32)
            return at(s, in[0])->in[0];
        break;
    case IR_cast:
        if (at(s, in[0])->dtype == o->dtype)
            return in[0];
        break;
    case IR_where:
        if (in[1] == in[2] && fits(s, in[1], o))
            return in[1];
        if (const_value(s, in[0], &v) && fits(s, in[v != 0 ? 1 : 2], o))
            return in[v != 0 ? 1 : 2];
        break;
    case IR_reshape: {
        int32_t x = in[0];
        if (at(s, x)->op == IR_reshape)
            x = at(s, x)->in[0];
        if (fits(s, x, o))
            return x;
        if (x != in[0]) {
            ir_node m = *n;
            m.in = &x;
            return emit(s, &m);
        }
        break;
    }
    case IR_broadcast_to: {
        int32_t x = in[0];
        for (;;) {
            const ir_node *a = at(s, x);
            /* a reshape that dropped leading 1s may leave more axes than the result has */
            if (a->op == IR_broadcast_to ||
                (a->op == IR_reshape && unit_padding(s, a) && at(s, a->in[0])->shape.rank <= o->shape.rank))
                x = a->in[0];
            else
                break;
        }
        if (fits(s, x, o))
            return x;
        if (x != in[0]) {
            ir_node m = *n;
            m.in = &x;
            return emit(s, &m);
        }
        break;
    }
    case IR_transpose: {
        /* result axis k is operand axis perm[k]; through two: inner perm[outer perm[k]] */
        ir_node m = *n;
        int32_t x = in[0];
        const ir_node *a = at(s, x);
        if (a->op == IR_transpose) {
            x = a->in[0];
            for (int k = 0; k < o->shape.rank; k++)
                m.attr.perm[k] = a->attr.perm[o->attr.perm[k]];
        }
        bool identity = true;
        for (int k = 0; k < o->shape.rank; k++)
            identity &= m.attr.perm[k] == k;
        if (identity)
            return x;
        if (x != in[0]) {
            m.in = &x;
            return emit(s, &m);
        }
        break;
    }
    case IR_log:
        if (at(s, in[0])->op == IR_softmax) {
            ir_node m = ir_node_make(IR_log_softmax, 1, &at(s, in[0])->in[0]);
            m.attr.axis = at(s, in[0])->attr.axis;
            m.loc = o->loc;
            return emit(s, &m);
        }
        break;
    default: break;
    }
    return -1;
}

ir_graph *pass_simplify(const ir_graph *g, char *err, size_t len)
{
    char msg[512];
    if (!ir_verify(g, msg, sizeof msg)) {
        rt_fail(err, len, "simplify: %s", msg);
        return NULL;
    }
    simp s = {g, ir_graph_new(g->name), ir_xmalloc(sizeof *s.map * (size_t)(g->n ? g->n : 1))};
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *o = &g->node[i];
        int32_t in[8], *inp = o->nin <= 8 ? in : ir_xmalloc(sizeof *inp * (size_t)o->nin);
        for (int k = 0; k < o->nin; k++)
            inp[k] = s.map[o->in[k]];
        ir_node n = *o;
        n.in = inp;
        int32_t id = rewrite(&s, o, &n);
        s.map[i] = id >= 0 ? id : ir_copy_node(s.h, g, i, s.map);
        assert(fits(&s, s.map[i], o)); /* a rule never changes a value's type */
        if (inp != in)
            free(inp);
    }
    for (int k = 0; k < g->nout; k++)
        ir_add_output(s.h, g->out[k].name, s.map[g->out[k].id]);
    s.h->next_site = g->next_site;
    ir_copy_train(s.h, g);

    /* DCE: what the outputs read, and every input and param */
    const char **names = ir_xmalloc(sizeof *names * (size_t)(g->nout + 1));
    for (int k = 0; k < g->nout; k++)
        names[k] = g->out[k].name;
    ir_graph *r = ir_prune(s.h, names, g->nout);
    free(names);
    free(s.map);
    ir_graph_free(s.h);
    return r;
}
