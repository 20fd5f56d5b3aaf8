/* distribute: data-parallel training's collective, for a distributed build (the train
 * declaration's bucket_bytes > 0; else the graph passes unchanged). Each rank computes the
 * gradients of its share of the global batch; between them and the optimizer's update (the
 * next pass) every parameter's gradient becomes
 *
 *     P.grad = allreduce(P.grad * rank_share) bucket=K
 *
 * rank_share being a runtime scalar input, the rank's rows over the global batch's (1 on one
 * process): with a loss that is a mean over the batch, as ag_mean makes it, the sum over the
 * ranks is then the gradient of the mean over the global batch, however unevenly the batch
 * was shared. The gradients are taken in the order the backward pass completes them (node
 * order) and grouped into buckets of about bucket_bytes: plan_memory lays each bucket out as
 * one contiguous range, and the backends reduce it with one non-blocking call started as its
 * last gradient is done and waited on before its first update reads it, so that the rest of
 * the backward pass overlaps the communication. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "passes.h"

ir_graph *pass_distribute(const ir_graph *g, char *err, size_t len)
{
    const ir_train *t = g->train;
    if (!t || t->bucket_bytes <= 0)
        return ir_clone_live(g);
    bool reduced = false;
    for (int32_t i = 0; i < g->n; i++)
        reduced |= g->node[i].op == IR_allreduce;
    if (t->stage == IR_STAGE_STEP) { /* a dumped train step: distributed already, or never */
        if (reduced)
            return ir_clone_live(g);
        rt_fail(err, len,
                "distribute: %s is a train step without allreduce (dumped from a build that was not "
                "distributed): distribute the model itself",
                g->name);
        return NULL;
    }
    if (t->stage != IR_STAGE_GRADIENTS) {
        rt_fail(err, len, "distribute: needs a graph with gradients, got stage model");
        return NULL;
    }
    if (ir_find_source(g, IR_input, "rank_share") >= 0 || ir_find_source(g, IR_param, "rank_share") >= 0) {
        rt_fail(err, len, "the name rank_share is a distributed build's; rename the model's rank_share");
        return NULL;
    }
    int32_t *map = ir_xmalloc(sizeof *map * (size_t)(g->n ? g->n : 1));
    int *order = ir_xmalloc(sizeof *order * (size_t)(g->nout ? g->nout : 1));
    ir_graph *h = ir_graph_new(g->name);
    for (int32_t i = 0; i < g->n; i++)
        map[i] = ir_copy_node(h, g, i, map);
    ag_val share = pass_scalar_input(h, "rank_share", AG_ROLE_SHARE);
    /* the parameters' gradients that depend on the batch (one that does not, a zero or a
     * penalty's, is the same on every rank: its sum weighted by the shares is itself), in the
     * order their values are: the backward pass's */
    bool *batch = ir_xcalloc((size_t)(g->n ? g->n : 1), sizeof *batch);
    for (int32_t i = 0; i < g->n; i++) {
        batch[i] = g->node[i].op == IR_input;
        for (int k = 0; k < g->node[i].nin; k++)
            batch[i] |= batch[g->node[i].in[k]];
    }
    int n = 0;
    for (int k = 0; k < g->nout; k++)
        if (pass_grad_param(g, g->out[k].name) >= 0 && batch[g->out[k].id])
            order[n++] = k;
    free(batch);
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && g->out[order[b]].id < g->out[order[b - 1]].id; b--) {
            int s = order[b];
            order[b] = order[b - 1];
            order[b - 1] = s;
        }
    int32_t *value = ir_xmalloc(sizeof *value * (size_t)(g->nout ? g->nout : 1));
    for (int k = 0; k < g->nout; k++)
        value[k] = map[g->out[k].id];
    int32_t bucket = 0;
    bool failed = false;
    int64_t filled = 0;
    for (int a = 0; a < n; a++) {
        int k = order[a], same = a;
        while (same > 0 && g->out[order[same - 1]].id != g->out[k].id)
            same--;
        if (same > 0) { /* a gradient another parameter has too (hash-consed): summed once */
            value[k] = value[order[same - 1]];
            continue;
        }
        const ir_node *grad = &h->node[value[k]];
        ag_loc at = h->node[pass_grad_param(h, g->out[k].name)].loc;
        ag_val scaled = ag_ew_at(at, IR_mul, 2, (ag_val[]){(ag_val){h, value[k], 0}, share});
        ir_node r = ir_node_make(IR_allreduce, 1, &scaled.id);
        r.attr.bucket = bucket;
        r.loc = at;
        char msg[256];
        value[k] = ir_add(h, &r, msg, sizeof msg);
        if (value[k] < 0) {
            failed = !rt_fail(err, len, "distribute: internal error: %s", msg);
            break;
        }
        filled += ir_bytes(grad->dtype, &grad->shape, 1);
        if (filled >= t->bucket_bytes) /* the bucket is full: the next gradient starts one */
            bucket++, filled = 0;
    }
    ir_graph *r = NULL;
    if (h->nerrors)
        rt_fail(err, len, "distribute: internal error: %s", h->errors[0]);
    else if (!failed) {
        for (int k = 0; k < g->nout; k++)
            ir_add_output(h, g->out[k].name, value[k]);
        h->next_site = g->next_site;
        ir_copy_train(h, g);
        r = ir_clone_live(h);
    }
    free(value);
    free(order);
    free(map);
    ir_graph_free(h);
    return r;
}
