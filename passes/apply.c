/* apply: the second half of the split train step (accumulate.c has the first). From the
 * accumulators alone: the gradient each parameter's update takes, scaled to the mean and
 * clipped by the global norm as torch.nn.utils.clip_grad_norm_ does, then the optimizer's
 * updates, built by the optimizer pass itself so both steps update alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "passes.h"

static ag_val ew2(ag_loc at, ir_op op, ag_val a, ag_val b) { return ag_ew_at(at, op, 2, (ag_val[]){a, b}); }

/* The parameters g has gradients of, as node ids of g (the order of g's outputs) */
static int grad_params(const ir_graph *g, int32_t *params)
{
    int n = 0;
    for (int k = 0; k < g->nout; k++) {
        int32_t p = pass_grad_param(g, g->out[k].name);
        if (p >= 0)
            params[n++] = p;
    }
    return n;
}

ir_graph *pass_apply(const ir_graph *g, char *err, size_t len)
{
    if (!g->train || g->train->stage != IR_STAGE_GRADIENTS) {
        rt_fail(err, len, "apply: needs a graph with gradients, got stage %s",
                !g->train || g->train->stage == IR_STAGE_MODEL ? "model" : "step");
        return NULL;
    }
    if (!pass_split_names_free(g, err, len))
        return NULL;
    int32_t *params = ir_xmalloc(sizeof *params * (size_t)(g->nout + 1)),
            *map = ir_xmalloc(sizeof *map * (size_t)(g->n ? g->n : 1));
    int n = grad_params(g, params);
    /* a gradients-stage graph of its own for the optimizer: P, P.grad_acc and the scalars in,
     * P.grad = the scaled, clipped accumulator out */
    ir_graph *h = ir_graph_new(g->name);
    ag_val scale = pass_scalar_input(h, "grad_scale", AG_ROLE_GRAD_SCALE),
           clip = pass_scalar_input(h, "clip_norm", AG_ROLE_CLIP_NORM);
    /* g = acc * (grad_scale * coef): the accumulators are read as they are, by the norm's sums
     * and by the updates, and the scalars multiply once */
    ag_val *acc = ir_xmalloc(sizeof *acc * (size_t)(n + 1)), total = ag_imm_of(0);
    ag_loc at = {NULL, 0};
    for (int k = 0; k < n; k++) {
        int32_t p = ir_copy_node(h, g, params[k], map);
        at = h->node[p].loc;
        acc[k] = pass_param_beside(h, p, "grad_acc", AG_ROLE_ACCUM, false);
        ag_val squares = ag_reduce_at(at, IR_sum, ag_ew_at(at, IR_square, 1, &acc[k]), (ag_dims){0, {0}}, false);
        total = k ? ew2(at, IR_add, total, squares) : squares;
    }
    /* norm = ||acc||_2 * grad_scale; coef = min(1, clip_norm / (norm + 1e-6)), 1 where
     * clip_norm is +inf */
    ag_val factor = scale;
    if (n > 0) {
        ag_val norm = ew2(at, IR_mul, ag_ew_at(at, IR_sqrt, 1, &total), scale);
        ag_val coef = ew2(at, IR_minimum, ag_imm_of(1), ew2(at, IR_div, clip, ew2(at, IR_add, norm, ag_imm_of(1e-6))));
        factor = ew2(at, IR_mul, scale, coef);
    }
    for (int k = 0; k < n; k++) {
        char out[300];
        snprintf(out, sizeof out, "%s.grad", g->node[params[k]].attr.name);
        ir_add_output(h, out, ew2(at, IR_mul, acc[k], factor).id);
    }
    h->next_site = g->next_site;
    ir_copy_train(h, g);
    ir_graph *r = NULL;
    if (h->nerrors)
        rt_fail(err, len, "apply: internal error: %s", h->errors[0]);
    else if ((r = pass_optimizer(h, err, len)))
        r->train = NULL; /* updates alone: no loss, metrics or declarations of its own */
    free(acc);
    free(map);
    free(params);
    ir_graph_free(h);
    return r;
}
