/* The passes. Each takes a graph and returns a new one (the input is left as it was), or
 * NULL with a message. */
#ifndef AG_PASSES_H
#define AG_PASSES_H

#include <stddef.h>

#include "ir.h"

/* ---- autodiff (passes/autodiff.c, rules in passes/grad.c) ---- */

/* A gradient rule: the gradient of the loss with respect to operand i of node n, given dy,
 * the gradient with respect to n's value. Built with the DSL builders in the graph being
 * extended (ad_val gives the values there). Elementwise rules may return it in n's
 * (broadcast) shape: autodiff sums it back to the operand's. */
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

/* ---- optimizer (passes/optimizer.c) ---- */

/* The train step from a gradients-stage graph: adds the runtime scalar inputs lr and wd and,
 * for each parameter P of group G, the output P.next = P - lr*G.lr_scale * (P.grad +
 * wd*G.wd_scale * P) in place of P.grad. Stage becomes step. */
ir_graph *pass_optimizer(const ir_graph *g, char *err, size_t len);

/* ---- the pipeline (passes/pipeline.c) ---- */

/* The train-step graph of a model at any stage (a model, gradients, or already a step). */
ir_graph *pass_train_step(const ir_graph *g, char *err, size_t len);
/* The graph that evaluates: loss, metrics and predictions only, from any stage. */
ir_graph *pass_eval(const ir_graph *g);

#endif
