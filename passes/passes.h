/* The passes. Each takes a graph and returns a new one (the input is left as it was), or
 * NULL with a message. */
#ifndef AG_PASSES_H
#define AG_PASSES_H

#include <stddef.h>
#include <stdio.h>

#include "builder.h"
#include "ir.h"

/* ---- autodiff (passes/autodiff.c, rules in passes/grad.c) ---- */

/* A gradient rule: the gradient of the loss with respect to operand i of node n, given dy,
 * the gradient with respect to n's value. Built with the graph-building API (ir/builder.h)
 * in the graph being extended (ad_operand and ad_self give n's values there). Elementwise
 * rules may return it in n's (broadcast) shape: autodiff sums it back to the operand's. */
typedef struct ad_ctx ad_ctx;
typedef ag_val ad_rule(ad_ctx *c, const ir_node *n, int i, ag_val dy);

/* The rule of each op, from the op table's grad column. no_grad: no gradient flows
 * through the op; NULL (only in tables a test makes): the rule is missing, an error. */
extern ad_rule *const ad_rules[IR_OP_COUNT];
ad_rule no_grad;
/* Operand k of n, and n itself, as values of the graph being extended. */
ag_val ad_operand(ad_ctx *c, const ir_node *n, int k);
ag_val ad_self(ad_ctx *c, const ir_node *n);
ag_loc ad_at(ad_ctx *c); /* the location of the node being differentiated */
ir_graph *ad_graph(ad_ctx *c);

/* A copy of g with, for every parameter and every input marked grad, an output NAME.grad:
 * the gradient of the sum of the output named loss with respect to it (zeros where the loss
 * does not depend on it). Stage becomes gradients. An op on a path from one of them to the
 * loss whose rule is missing (rules[op] == NULL while a gradient must flow through it) is an
 * error; all of them are listed, one line each, "FILE:LINE: error: autodiff: ...". */
ir_graph *pass_autodiff(const ir_graph *g, const char *loss, char *err, size_t len);
ir_graph *pass_autodiff_with(const ir_graph *g, const char *loss, ad_rule *const *rules, char *err, size_t len);

/* ---- distribute (passes/distribute.c) ---- */

/* For a distributed build (g->train->bucket_bytes > 0), on a gradients-stage graph: each
 * parameter's P.grad becomes allreduce(P.grad * rank_share) bucket=K, rank_share a runtime
 * scalar (the rank's rows over the global batch's), the buckets of about bucket_bytes in the
 * order the backward pass completes the gradients. Else a copy of g. */
ir_graph *pass_distribute(const ir_graph *g, char *err, size_t len);

/* ---- optimizer (passes/optimizer.c) ---- */

/* The train step from a gradients-stage graph: adds the runtime scalar inputs lr and wd and,
 * for each parameter P of group G, the output P.next = P - lr*G.lr_scale * (P.grad +
 * wd*G.wd_scale * P) in place of P.grad. Stage becomes step. */
ir_graph *pass_optimizer(const ir_graph *g, char *err, size_t len);
/* What the optimizer, accumulate and apply share: a runtime f32 scalar input found by its
 * role; the param P.SUFFIX of that role beside param p, zero at the start, of p's
 * shape (or a scalar). */
ag_val pass_scalar_input(ir_graph *h, const char *name, ag_role role);
/* The param of g an output named P.grad is the gradient of, or -1 (another output). */
int32_t pass_grad_param(const ir_graph *g, const char *out);
ag_val pass_param_beside(ir_graph *h, int32_t p, const char *suffix, ag_role role, bool scalar);

/* ---- the split train step of --accumulate and --clip-norm (passes/accumulate.c, apply.c) ---- */

/* The first half, from a gradients-stage graph: each parameter's P.grad becomes the update
 * P.grad_acc.next = P.grad_acc + grad_weight * P.grad of an accumulator (a param of
 * role=accum), grad_weight a runtime scalar (the runtime gives a micro-batch's rows); the
 * loss, metrics and predictions stay. Stage becomes step. */
ir_graph *pass_accumulate(const ir_graph *g, char *err, size_t len);
/* The second half, from the same gradients-stage graph: the optimizer's update of every
 * parameter from its accumulator, g = P.grad_acc * grad_scale (the runtime gives 1 / the
 * rows summed: the mean gradient where the loss is a mean over the batch), clipped as
 * torch.nn.utils.clip_grad_norm_ does: g * min(1, clip_norm / (||all g||_2 + 1e-6)). The
 * model's forward and backward are gone: a graph of updates alone, without declarations. */
ir_graph *pass_apply(const ir_graph *g, char *err, size_t len);
/* The names the split step gives its values are free in g: no model input or parameter is
 * named as its scalars, none as an accumulator (P.grad_acc); else false with a message. */
bool pass_split_names_free(const ir_graph *g, char *err, size_t len);

/* ---- fuse_softmax_ce (passes/fuse_softmax_ce.c) ---- */

/* Cross-entropy over log_softmax becomes softmax_ce (forward) and softmax_ce_grad (the
 * backward autodiff made), which read only the logits and the labels. */
ir_graph *pass_fuse_softmax_ce(const ir_graph *g, char *err, size_t len);

/* ---- simplify (passes/simplify.c) ---- */

/* A smaller graph equal in value to g: constant folding (as the interpreter computes in f32
 * mode), algebraic identities that keep every value bit for bit (x*1, x/1, neg(neg(x)),
 * a cast or layout op that changes nothing, where(c, x, x), ...) and log(softmax) ->
 * log_softmax, CSE (hash-consing) and DCE. Outputs, names, inputs and params (even unread),
 * next_site and the declarations are kept; node ids are not. NULL with a message when g does
 * not verify. */
ir_graph *pass_simplify(const ir_graph *g, char *err, size_t len);

/* ---- fuse (passes/fuse.c) ---- */

/* Groups nodes into kernels: matmul epilogues, elementwise and reduction loops, and loops
 * reading the same values as one kernel with several outputs. */
ir_graph *pass_fuse(const ir_graph *g, char *err, size_t len);

/* ---- plan_memory (passes/plan_memory.c) ---- */

/* Plans g's memory at a batch and attaches the plan to g (g->plan, in g's arena). */
ir_plan *plan_memory(ir_graph *g, int64_t batch);
/* The pass: a copy of g with its plan at the batch its training declares (1 for a graph
 * without training). */
ir_graph *pass_plan_memory(const ir_graph *g, char *err, size_t len);
/* The same at a batch of the caller's (aotgrad build --batch), in place of the declared one. */
ir_graph *pass_plan_memory_at(const ir_graph *g, int64_t batch, char *err, size_t len);
/* Runs both pipelines on a model and reports the train step's memory (parameters,
 * gradients, values saved for backward, workspace, peak, and the lower bound) and
 * inference's. */
bool pass_memory_report(const ir_graph *model, int64_t batch, FILE *f, char *err, size_t len);

/* ---- the pipeline (passes/pipeline.c) ---- */

/* The pipelines: the train step's, the eval graph's, and the split step's two halves. */
typedef enum pass_pipeline { PASS_TRAIN, PASS_EVAL, PASS_ACCUMULATE, PASS_APPLY, PASS_PIPELINES } pass_pipeline;
extern const char *const pass_pipeline_names[PASS_PIPELINES]; /* "train", "eval", "accumulate", "apply" */
#define PASS_IN(p) (1u << (p))
#define PASS_ALL (PASS_IN(PASS_PIPELINES) - 1)

typedef struct pass_info {
    const char *name;
    ir_graph *(*run)(const ir_graph *g, char *err, size_t len);
    unsigned pipelines; /* PASS_IN(each pipeline it runs in) */
    const char *doc;
} pass_info;

/* The pipeline, in order, NULL-ended. */
extern const pass_info pass_list[];
const pass_info *pass_find(const char *name);

/* Called with each pass's result, for dumps. */
typedef void pass_dump(void *ctx, const char *pass, const ir_graph *g);

/* Runs the pipeline of the train step (train) or the eval graph on g, from wherever g
 * already is (a dumped stage resumes), up to and including the pass named upto (NULL: all),
 * verifying after every pass and calling dump after each. */
ir_graph *pass_run(const ir_graph *g, bool train, const char *upto, pass_dump *dump, void *ctx, char *err, size_t len);
/* The same for any of the pipelines. */
ir_graph *pass_run_pipeline(const ir_graph *g, pass_pipeline which, const char *upto, pass_dump *dump, void *ctx,
                            char *err, size_t len);
/* The whole pipeline of the train step, or of the eval graph. */
ir_graph *pass_train_step(const ir_graph *g, char *err, size_t len);
/* The forward half: loss, metrics and predictions only (every output without declarations). */
ir_graph *pass_eval(const ir_graph *g);

#endif
