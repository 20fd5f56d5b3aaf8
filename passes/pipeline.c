/* The pipelines: the passes, in order, in one place. The train step runs all but the eval
 * graph's and the split step's; the eval graph takes the forward half (eval) in place of
 * autodiff and the optimizer; the split step's halves (--accumulate, --clip-norm) take
 * accumulate or apply in place of the optimizer. The
 * verifier runs after every pass, so a pass that breaks an invariant is named at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bug.h"
#include "fail.h"
#include "passes.h"

static ir_graph *run_autodiff(const ir_graph *g, char *err, size_t len)
{
    if (!g->train || !g->train->loss) {
        rt_fail(err, len, "%s declares no training (ag_minimize)", g->name);
        return NULL;
    }
    for (int32_t i = 0; i < g->n; i++)
        if (g->node[i].op == IR_kernel) { /* only an eval graph reaches autodiff after fusion */
            rt_fail(err, len,
                    "%s is an eval graph after fusion, which cannot be trained: train the model, or a dump of its "
                    "train step (aotgrad ir MODEL --train)",
                    g->name);
            return NULL;
        }
    return pass_autodiff(g, g->train->loss, err, len);
}

static ir_graph *run_eval(const ir_graph *g, char *err, size_t len)
{
    (void)err, (void)len;
    return pass_eval(g);
}

#define TRAINS (PASS_IN(PASS_TRAIN) | PASS_IN(PASS_ACCUMULATE) | PASS_IN(PASS_APPLY)) /* through autodiff */

const char *const pass_pipeline_names[PASS_PIPELINES] = {"train", "eval", "accumulate", "apply"};

const pass_info pass_list[] = {
    {"canonicalize", pass_simplify, PASS_ALL, "simplify before autodiff: log(softmax) becomes log_softmax, and so on"},
    {"autodiff", run_autodiff, TRAINS, "the gradient of the loss for every parameter, as ordinary nodes"},
    {"distribute", pass_distribute, PASS_IN(PASS_TRAIN),
     "a distributed build's: each gradient summed over the ranks (allreduce), in buckets, before its update"},
    {"optimizer", pass_optimizer, PASS_IN(PASS_TRAIN),
     "the optimizer's update of every parameter: P.next (and its state's STATE.next), lr and wd as inputs"},
    {"accumulate", pass_accumulate, PASS_IN(PASS_ACCUMULATE),
     "--accumulate's first half: P.grad_acc.next = P.grad_acc + grad_weight * P.grad"},
    {"apply", pass_apply, PASS_IN(PASS_APPLY),
     "--accumulate's second half: the updates from the accumulators, scaled and clipped (--clip-norm)"},
    {"eval", run_eval, PASS_IN(PASS_EVAL), "the forward half only: loss, metrics and predictions"},
    {"fuse_softmax_ce", pass_fuse_softmax_ce, PASS_ALL,
     "cross-entropy over log_softmax and its backward as softmax_ce and softmax_ce_grad"},
    {"simplify", pass_simplify, PASS_ALL, "constant folding, algebraic identities, CSE, DCE"},
    {"fuse", pass_fuse, PASS_ALL, "kernels: matmul epilogues, elementwise and reduction loops, sibling outputs"},
    {"plan_memory", pass_plan_memory, PASS_ALL, "liveness, buffer reuse in one arena, in-place parameter updates"},
    {NULL, NULL, 0, NULL},
};

const pass_info *pass_find(const char *name)
{
    for (const pass_info *p = pass_list; p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

/* Where a graph already is in the pipeline: a step or a gradients graph has been through
 * autodiff (and the optimizer); everything else starts at the beginning. */
static bool done_already(const ir_graph *g, const pass_info *p)
{
    ir_stage stage = g->train ? g->train->stage : IR_STAGE_MODEL;
    if (strcmp(p->name, "autodiff") == 0)
        return stage != IR_STAGE_MODEL;
    if (strcmp(p->name, "optimizer") == 0 || strcmp(p->name, "accumulate") == 0 || strcmp(p->name, "distribute") == 0)
        return stage == IR_STAGE_STEP;
    return false;
}

ir_graph *pass_run(const ir_graph *g, bool train, const char *upto, pass_dump *dump, void *ctx, char *err, size_t len)
{
    return pass_run_pipeline(g, train ? PASS_TRAIN : PASS_EVAL, upto, dump, ctx, err, len);
}

ir_graph *pass_run_pipeline(const ir_graph *g, pass_pipeline which, const char *upto, pass_dump *dump, void *ctx,
                            char *err, size_t len)
{
    ir_graph *cur = ir_clone_live(g); /* a copy the loop may free */
    for (const pass_info *p = pass_list; p->name; p++) {
        if (!(p->pipelines & PASS_IN(which)))
            continue;
        if (!done_already(cur, p)) {
            ir_bug_enter(p->name, cur);
            ir_graph *next = p->run(cur, err, len);
            ir_bug_enter(p->name, NULL); /* cur goes */
            ir_graph_free(cur);
            if (!next) {
                ir_bug_leave();
                return NULL;
            }
            cur = next;
            char verr[512];
            if (!ir_verify(cur, verr, sizeof verr)) /* the pass broke an invariant: the verifier names the node */
                ir_bug("the graph after %s does not verify: %s", p->name, verr);
            ir_bug_leave();
        }
        if (dump)
            dump(ctx, p->name, cur);
        if (upto && strcmp(upto, p->name) == 0)
            break;
    }
    return cur;
}

ir_graph *pass_train_step(const ir_graph *g, char *err, size_t len)
{
    if (!g->train || !g->train->loss) {
        rt_fail(err, len, "%s declares no training (ag_minimize)", g->name);
        return NULL;
    }
    return pass_run(g, true, NULL, NULL, NULL, err, len);
}

ir_graph *pass_eval(const ir_graph *g)
{
    const ir_train *t = g->train;
    if (!t || !t->loss)
        return ir_clone_live(g);
    const char *keep[IR_MAX_METRICS + 2];
    int n = 0;
    keep[n++] = t->loss;
    for (int i = 0; i < t->nmetrics; i++)
        keep[n++] = t->metrics[i];
    if (t->predict)
        keep[n++] = t->predict;
    ir_graph *e = ir_prune(g, keep, n);
    if (e->train)
        e->train->stage = IR_STAGE_MODEL;
    return e;
}
