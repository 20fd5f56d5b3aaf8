/* fuse_softmax_ce: cross-entropy over a log_softmax, and its backward, as two fused ops.
 *
 * Forward, the book's loss picks each row's log-probability at its label:
 *
 *     S = sum(mul(one_hot(y), log_softmax(o, axis=1)), axes=[1])     (= -cross-entropy)
 *  -> S = neg(softmax_ce(o, y))
 *
 * however the loss is written around it (ag_cross_entropy, the same by hand, or log of
 * softmax, which simplify turns into log_softmax). Backward, autodiff's rules make, for the
 * row gradient dS of S,
 *
 *     D = sub(U, mul(exp(log_softmax(o)), sum(U, axes=[1], keepdims)))
 *     U = mul(broadcast_to(Q), one_hot(y))        with Q = dS as [rows, 1]
 *  -> D = softmax_ce_grad(o, y, -dS)
 *
 * Both read only the logits and the labels, so neither the log-probabilities nor a one-hot
 * matrix is kept for the backward pass; DCE drops them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bug.h"
#include "passes.h"

typedef struct match {
    int32_t logits, labels, row; /* row: Q, the [rows, 1] row gradient, for a backward match */
    bool backward;
} match;

static const ir_node *at(const ir_graph *g, int32_t id) { return &g->node[id]; }

static bool is_log_softmax(const ir_graph *g, int32_t id)
{
    const ir_node *n = at(g, id);
    return n->op == IR_log_softmax && n->shape.rank == 2 && n->attr.axis == 1;
}

/* mul(one_hot(y), x) or mul(x, one_hot(y)) with equal shapes: x and y out. */
static bool picks_label(const ir_graph *g, int32_t id, int32_t *x, int32_t *labels)
{
    const ir_node *m = at(g, id);
    if (m->op != IR_mul || m->shape.rank != 2)
        return false;
    for (int k = 0; k < 2; k++) {
        const ir_node *oh = at(g, m->in[k]), *other = at(g, m->in[1 - k]);
        if (oh->op == IR_one_hot && ir_shape_eq(&oh->shape, &m->shape) && ir_shape_eq(&other->shape, &m->shape)) {
            *x = m->in[1 - k];
            *labels = oh->in[0];
            return true;
        }
    }
    return false;
}

static bool match_forward(const ir_graph *g, int32_t id, match *mt)
{
    const ir_node *s = at(g, id);
    int32_t ls;
    if (s->op != IR_sum || s->attr.axes != 2 || s->attr.keepdims || !picks_label(g, s->in[0], &ls, &mt->labels) ||
        !is_log_softmax(g, ls))
        return false;
    mt->logits = at(g, ls)->in[0];
    mt->backward = false;
    return true;
}

static bool match_backward(const ir_graph *g, int32_t id, match *mt)
{
    const ir_node *d = at(g, id);
    if (d->op != IR_sub || d->shape.rank != 2)
        return false;
    int32_t u = d->in[0], v;
    const ir_node *w = at(g, d->in[1]);
    if (w->op != IR_mul)
        return false;
    for (int k = 0; k < 2; k++) {
        const ir_node *e = at(g, w->in[k]), *sum = at(g, w->in[1 - k]);
        if (e->op != IR_exp || !is_log_softmax(g, e->in[0]) || sum->op != IR_sum || sum->in[0] != u ||
            sum->attr.axes != 2 || !sum->attr.keepdims || !picks_label(g, u, &v, &mt->labels))
            continue;
        const ir_node *b = at(g, v);
        if (b->op != IR_broadcast_to || at(g, b->in[0])->shape.rank != 2 || at(g, b->in[0])->shape.dim[1] != 1)
            continue;
        mt->logits = at(g, e->in[0])->in[0];
        mt->row = b->in[0];
        mt->backward = true;
        return true;
    }
    return false;
}

/* at: a location copied out of h, since adding nodes moves them */
static ag_val add(ir_graph *h, ag_loc at, ir_op op, int n, const int32_t *in)
{
    ir_node m = ir_node_make(op, n, in);
    m.loc = at;
    char err[256];
    int32_t id = ir_add(h, &m, err, sizeof err);
    if (id < 0) /* every operand was checked by the match */
        ir_bug("a node it adds does not type-check: %s", err);
    return (ag_val){h, id, 0};
}

ir_graph *pass_fuse_softmax_ce(const ir_graph *g, char *err, size_t len)
{
    (void)err, (void)len;
    int32_t *map = ir_xmalloc(sizeof *map * (size_t)(g->n ? g->n : 1));
    ir_graph *h = ir_graph_new(g->name);
    for (int32_t i = 0; i < g->n; i++) {
        match mt;
        if (!match_forward(g, i, &mt) && !match_backward(g, i, &mt)) {
            map[i] = ir_copy_node(h, g, i, map);
            continue;
        }
        map[i] = ir_copy_node(h, g, i, map); /* keeps its loc for the new nodes */
        const ag_loc like = h->node[map[i]].loc;
        int32_t o = map[mt.logits], y = map[mt.labels];
        if (!mt.backward) {
            ag_val ce = add(h, like, IR_softmax_ce, 2, (int32_t[]){o, y});
            map[i] = add(h, like, IR_neg, 1, &ce.id).id;
            continue;
        }
        /* -dS as a row: Q is [rows, 1], mostly a reshape of the row itself, and the row
         * mostly a negation (autodiff's rule for the neg of the loss) */
        const ir_shape *rows = &at(g, mt.labels)->shape;
        const ir_node *q = &h->node[map[mt.row]];
        int32_t row = map[mt.row];
        if (q->op == IR_reshape && ir_shape_eq(&h->node[q->in[0]].shape, rows))
            row = q->in[0];
        else {
            ir_node m = ir_node_make(IR_reshape, 1, &row);
            m.shape = *rows;
            m.loc = like;
            row = ir_add(h, &m, err, len);
        }
        int32_t dce = h->node[row].op == IR_neg ? h->node[row].in[0] : add(h, like, IR_neg, 1, &row).id;
        map[i] = add(h, like, IR_softmax_ce_grad, 3, (int32_t[]){o, y, dce}).id;
    }
    for (int i = 0; i < g->nout; i++)
        ir_add_output(h, g->out[i].name, map[g->out[i].id]);
    h->next_site = g->next_site;
    ir_copy_train(h, g);
    ir_graph *r = ir_clone_live(h); /* drops the log-probabilities and one-hots */
    free(map);
    ir_graph_free(h);
    return r;
}
