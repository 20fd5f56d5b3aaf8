/* Reverse-mode autodiff: the gradient of a loss as ordinary graph nodes.
 *
 * The input graph is copied, then walked from the loss back to the sources; each node's
 * gradient rule (the op table's grad column, in passes/grad.c) builds the gradient of its
 * operands from the gradient of its value, with the same DSL builders a model uses. Only
 * nodes that both depend on a parameter (or an input marked grad) and reach the loss get a
 * gradient; integer and bool values never carry one. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "passes.h"

struct ad_ctx {
    const ir_graph *g; /* the graph differentiated */
    ir_graph *h;       /* its copy, being extended */
    int32_t *map;      /* g's ids -> h's ids */
    ag_loc at;         /* the node being differentiated, in h's arena */
};

ag_val ad_operand(ad_ctx *c, const ir_node *n, int k) { return (ag_val){c->h, c->map[n->in[k]], 0}; }
ag_val ad_self(ad_ctx *c, const ir_node *n) { return (ag_val){c->h, c->map[n - c->g->node], 0}; }
ag_loc ad_at(ad_ctx *c) { return c->at; }
ir_graph *ad_graph(ad_ctx *c) { return c->h; }

static size_t append(char *err, size_t len, size_t used, const char *fmt, ...)
{
    if (used >= len)
        return used;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(err + used, len - used, fmt, ap);
    va_end(ap);
    return k < 0 ? used : used + (size_t)k;
}

static ag_dims dims_of(const ir_shape *s)
{
    ag_dims d = {s->rank, {0}};
    for (int i = 0; i < s->rank; i++)
        d.d[i] = s->dim[i];
    return d;
}

/* Sum a gradient computed in a broadcast shape back to the operand's shape. */
static ag_val unbroadcast(ad_ctx *c, ag_val dx, const ir_shape *to)
{
    const ir_shape sv = c->h->node[dx.id].shape, *s = &sv; /* a copy: adding nodes moves them */
    if (ir_shape_eq(s, to))
        return dx;
    int lead = s->rank - to->rank;
    ag_dims axes = {0, {0}};
    for (int i = 0; i < s->rank; i++)
        if (i < lead || (to->dim[i - lead] == 1 && s->dim[i] != 1))
            axes.d[axes.n++] = i;
    if (axes.n)
        dx = ag_reduce_at(c->at, IR_sum, dx, axes, true);
    return ag_reshape_at(c->at, dx, dims_of(to));
}

static ag_val zeros(ir_graph *h, ag_loc at, const ir_shape *s)
{
    return ag_broadcast_to_at(at, ag_const_at(at, h, AG_F32, 0), dims_of(s));
}

static bool wants_gradient(const ir_node *n)
{
    return n->dtype == AG_F32 && (n->op == IR_param || (n->op == IR_input && n->attr.grad));
}

ir_graph *pass_autodiff_with(const ir_graph *g, const char *loss, ad_rule *const *rules, char *err, size_t len)
{
    int li = ir_find_output(g, loss);
    if (li < 0) {
        rt_fail(err, len, "autodiff: no output named %s to differentiate", loss);
        return NULL;
    }
    int32_t L = g->out[li].id;
    if (g->node[L].dtype != AG_F32) {
        rt_fail(err, len, "autodiff: the loss %s is %s, not f32", loss, ir_dtype_name(g->node[L].dtype));
        return NULL;
    }
    size_t n = (size_t)(g->n ? g->n : 1);
    int32_t *map = ir_xmalloc(sizeof *map * n);
    bool *dep = ir_xcalloc(n, sizeof *dep), *need = ir_xcalloc(n, sizeof *need);
    ag_val *grad = ir_xmalloc(sizeof *grad * n);
    ir_graph *h = ir_graph_new(g->name);
    for (int32_t i = 0; i < g->n; i++)
        map[i] = ir_copy_node(h, g, i, map);
    for (int i = 0; i < g->nout; i++)
        ir_add_output(h, g->out[i].name, map[g->out[i].id]);
    h->next_site = g->next_site;
    ir_copy_train(h, g);
    if (h->train)
        h->train->stage = IR_STAGE_GRADIENTS;

    /* dep: depends on a source that wants a gradient; need: and reaches the loss */
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *x = &g->node[i];
        dep[i] = wants_gradient(x);
        if (x->dtype == AG_F32 && rules[x->op] != no_grad)
            for (int k = 0; k < x->nin; k++)
                dep[i] |= dep[x->in[k]];
        grad[i] = (ag_val){h, AG_POISON, 0};
    }
    need[L] = dep[L];
    for (int32_t i = L; i >= 0; i--)
        if (need[i] && rules[g->node[i].op] != no_grad)
            for (int k = 0; k < g->node[i].nin; k++)
                need[g->node[i].in[k]] |= dep[g->node[i].in[k]];

    ad_ctx c = {g, h, map, {NULL, 0}};
    const ir_node *l = &g->node[L];
    c.at = h->node[map[L]].loc;
    /* the gradient of the loss's sum: ones */
    grad[L] = ag_const_at(c.at, h, AG_F32, 1);
    if (l->shape.rank)
        grad[L] = ag_broadcast_to_at(c.at, grad[L], dims_of(&l->shape));

    /* reached: a gradient flows into the node; past a node whose rule is missing it still
     * counts as flowing, so every missing rule on the way is found in one run */
    bool *reached = ir_xcalloc(n, sizeof *reached), *missing = ir_xcalloc(n, sizeof *missing);
    reached[L] = true;
    bool any_missing = false;
    for (int32_t i = L; i >= 0; i--) {
        const ir_node *x = &g->node[i];
        if (!need[i] || !reached[i] || ir_ops[x->op].kind == IR_K_SOURCE)
            continue;
        c.at = h->node[map[i]].loc;
        if (!rules[x->op] || any_missing || grad[i].id < 0) {
            missing[i] = !rules[x->op];
            any_missing |= missing[i];
            for (int k = 0; k < x->nin; k++)
                reached[x->in[k]] |= need[x->in[k]];
            continue;
        }
        for (int k = 0; k < x->nin; k++) {
            int32_t in = x->in[k];
            if (!need[in])
                continue;
            ag_val dx = rules[x->op](&c, x, k, grad[i]);
            if (dx.id < 0)
                continue;
            dx = unbroadcast(&c, dx, &g->node[in].shape);
            grad[in] = grad[in].id < 0 ? dx : ag_ew_at(c.at, IR_add, 2, (ag_val[]){grad[in], dx});
            reached[in] = true;
        }
    }
    size_t used = 0;
    for (int32_t i = 0; i < g->n; i++) /* in source order */
        if (missing[i]) {
            ag_loc at = h->node[map[i]].loc;
            used = append(err, len, used, "%s%s:%d: error: autodiff: %s has no gradient rule", used ? "\n" : "",
                          at.file ? at.file : g->name, at.line, ir_ops[g->node[i].op].name);
        }
    free(reached);
    free(missing);
    if (!used && h->nerrors)
        used = append(err, len, used, "autodiff: internal error: %s", h->errors[0]);
    if (!used)
        for (int32_t i = 0; i < g->n; i++) {
            const ir_node *x = &g->node[i];
            if (!wants_gradient(x))
                continue;
            char name[256];
            snprintf(name, sizeof name, "%s.grad", x->attr.name);
            ag_val v = grad[i].id >= 0 ? grad[i] : zeros(h, h->node[map[i]].loc, &x->shape);
            ir_add_output(h, name, v.id);
        }
    free(map);
    free(dep);
    free(need);
    free(grad);
    if (used) {
        ir_graph_free(h);
        return NULL;
    }
    return h;
}

ir_graph *pass_autodiff(const ir_graph *g, const char *loss, char *err, size_t len)
{
    return pass_autodiff_with(g, loss, ad_rules, err, len);
}
