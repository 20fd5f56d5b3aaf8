/* accumulate: the first half of the split train step that --accumulate K and --clip-norm
 * run (the plain train step stays as it is, the optimizer riding on the weight gradients'
 * sgemm). Each micro-batch adds its gradients, weighted by its rows, into accumulators;
 * apply (apply.c) then updates once from their sum. With a loss that is a mean over the
 * batch, K micro-batches of B rows give the gradient of one batch of K*B rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "passes.h"

bool pass_split_names_free(const ir_graph *g, char *err, size_t len)
{
    for (const char *const *s = (const char *const[]){"grad_weight", "grad_scale", "clip_norm", NULL}; *s; s++)
        if (ir_find_source(g, IR_input, *s) >= 0 || ir_find_source(g, IR_param, *s) >= 0)
            return rt_fail(err, len,
                           "the name %s is the split train step's (--accumulate, --clip-norm); rename the "
                           "model's %s",
                           *s, *s);
    for (int32_t i = 0; i < g->n; i++) {
        char name[300];
        if (g->node[i].op != IR_param)
            continue;
        snprintf(name, sizeof name, "%s.grad_acc", g->node[i].attr.name);
        if (ir_find_source(g, IR_param, name) >= 0)
            return rt_fail(err, len, "parameter %s has the name of %s's gradient accumulator; rename it", name,
                           g->node[i].attr.name);
    }
    return true;
}

ir_graph *pass_accumulate(const ir_graph *g, char *err, size_t len)
{
    if (!g->train || g->train->stage != IR_STAGE_GRADIENTS) {
        rt_fail(err, len, "accumulate: needs a graph with gradients, got stage %s",
                !g->train || g->train->stage == IR_STAGE_MODEL ? "model" : "step");
        return NULL;
    }
    if (!pass_split_names_free(g, err, len))
        return NULL;
    int32_t *map = ir_xmalloc(sizeof *map * (size_t)(g->n ? g->n : 1));
    ir_graph *h = ir_graph_new(g->name);
    for (int32_t i = 0; i < g->n; i++)
        map[i] = ir_copy_node(h, g, i, map);
    ag_val w = pass_scalar_input(h, "grad_weight", AG_ROLE_GRAD_WEIGHT);
    const char **keep = ir_xmalloc(sizeof *keep * (size_t)(g->nout + 1));
    int nkeep = 0;
    for (int k = 0; k < g->nout; k++) {
        int32_t p = pass_grad_param(h, g->out[k].name);
        if (p < 0) { /* loss, metrics, predictions, an input's gradient: kept as they are */
            ir_add_output(h, g->out[k].name, map[g->out[k].id]);
            keep[nkeep++] = g->out[k].name;
            continue;
        }
        ag_loc at = h->node[p].loc;
        ag_val acc = pass_param_beside(h, p, "grad_acc", AG_ROLE_ACCUM, false);
        ag_val grad = {h, map[g->out[k].id], 0};
        ag_val next = ag_ew_at(at, IR_add, 2, (ag_val[]){acc, ag_ew_at(at, IR_mul, 2, (ag_val[]){w, grad})});
        char out[300];
        snprintf(out, sizeof out, "%s.grad_acc.next", h->node[p].attr.name);
        ir_add_output(h, out, next.id);
        keep[nkeep++] = h->out[h->nout - 1].name;
    }
    h->next_site = g->next_site;
    ir_copy_train(h, g);
    h->train->stage = IR_STAGE_STEP;
    ir_graph *r = NULL;
    if (h->nerrors)
        rt_fail(err, len, "accumulate: internal error: %s", h->errors[0]);
    else
        r = ir_prune(h, keep, nkeep);
    free(keep);
    free(map);
    ir_graph_free(h);
    return r;
}
