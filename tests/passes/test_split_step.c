/* The split train step of --accumulate and --clip-norm (passes/accumulate.c, apply.c),
 * in the interpreter's f64 mode against the train step itself and against
 * torch.nn.utils.clip_grad_norm_'s formula: accumulating micro-batches of unequal rows then
 * applying once is the train step on their union (a mean loss), for an optimizer with state,
 * weight decay and a group's scales; the clipped update is the unclipped one scaled by
 * min(1, X/(||g|| + 1e-6)). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aotgrad.h"
#include "interp.h"
#include "ir.h"
#include "passes.h"

enum { ROWS = 12, F = 5, H = 4, C = 3 };

static void net(ag_graph *g, ag_optimizer o)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, F);
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val W1 = ag_param(g, "W1", ag_zeros(), F, H);
    ag_val b1 = ag_param(g, "b1", ag_zeros(), H);
    ag_val W2 = ag_param(g, "W2", ag_zeros(), H, C);
    ag_group(g, "bias", 0.0, 0.5, b1);
    ag_val logits = ag_matmul(ag_tanh(ag_add(ag_matmul(x, W1), b1)), W2);
    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), o, .metric = ag_correct(logits, y), .batch = ROWS);
}

/* The values every graph's sources take, by name: parameters and state (shared tensors), the
 * accumulators, and the runtime scalars by role */
typedef struct world {
    int n;
    char *name[64];
    ir_tensor *t[64];
    double scalar[AG_ROLE_COUNT];
} world;

static double start(const char *name, int64_t e) { return 0.3 * sin(1.7 * (double)e + (double)strlen(name)); }

static ir_tensor *tensor_of(world *w, const ir_node *n)
{
    for (int k = 0; k < w->n; k++)
        if (!strcmp(w->name[k], n->attr.name))
            return w->t[k];
    cr_assert_lt(w->n, 64);
    ir_tensor *t = malloc(sizeof *t);
    *t = ir_tensor_new(AG_F64, &n->shape);
    for (int64_t e = 0; n->attr.role == AG_ROLE_NONE && e < ir_tensor_numel(t); e++)
        ir_tensor_set(t, e, start(n->attr.name, e));
    w->name[w->n] = strdup(n->attr.name);
    w->t[w->n++] = t;
    return t;
}

static void world_free(world *w)
{
    for (int k = 0; k < w->n; k++) {
        ir_tensor_free(w->t[k]);
        free(w->t[k]);
        free(w->name[k]);
    }
}

/* Runs g on rows first .. first + n - 1 of the fixed batch; every NAME.next output is
 * written over NAME's tensor after the run. */
static void run(const ir_graph *g, world *w, int first, int n)
{
    ir_tensor **bound = calloc((size_t)g->n, sizeof *bound), scalars[AG_ROLE_COUNT] = {0}, x = {0}, y = {0};
    ir_shape xs = {2, {n, F}}, ys = {1, {n}}, none = {0, {0}};
    x = ir_tensor_new(AG_F64, &xs), y = ir_tensor_new(AG_I32, &ys);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < F; j++)
            ir_tensor_set(&x, i * F + j, cos(0.9 * (first + i) + 0.4 * j));
        ir_tensor_set(&y, i, (first + i) % C);
    }
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *nd = &g->node[i];
        ag_role r = nd->attr.role;
        if (nd->op == IR_param)
            bound[i] = tensor_of(w, nd);
        else if (nd->op == IR_input && (r == AG_ROLE_DATA || r == AG_ROLE_LABELS))
            bound[i] = r == AG_ROLE_DATA ? &x : &y;
        else if (nd->op == IR_input) {
            cr_assert(ir_role_is_scalar(r), "input %s has no runtime role", nd->attr.name);
            scalars[r] = ir_tensor_new(AG_F64, &none);
            ir_tensor_set(&scalars[r], 0, w->scalar[r]);
            bound[i] = &scalars[r];
        }
    }
    ir_tensor *outs = calloc((size_t)g->nout, sizeof *outs);
    char err[1024];
    ir_run rr = {.f64 = true, .batch = n, .seed = 1, .step = 0, .training = true};
    cr_assert(ir_interp(g, &rr, (const ir_tensor *const *)bound, outs, err, sizeof err), "%s", err);
    for (int k = 0; k < g->nout; k++) {
        const char *o = g->out[k].name;
        size_t len = strlen(o);
        if (len > 5 && !strcmp(o + len - 5, ".next")) {
            char param[300];
            snprintf(param, sizeof param, "%.*s", (int)(len - 5), o);
            int32_t p = ir_find_source(g, IR_param, param);
            cr_assert_geq(p, 0, "%s updates no param", o);
            memcpy(bound[p]->data, outs[k].data, sizeof(double) * (size_t)ir_tensor_numel(bound[p]));
        }
        ir_tensor_free(&outs[k]);
    }
    for (int r = 0; r < AG_ROLE_COUNT; r++)
        ir_tensor_free(&scalars[r]);
    ir_tensor_free(&x);
    ir_tensor_free(&y);
    free(outs);
    free(bound);
}

static ir_graph *pipeline(ag_graph *m, pass_pipeline which)
{
    char err[1024];
    ir_graph *g = pass_run_pipeline(m, which, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s: %s", pass_pipeline_names[which], err);
    return g;
}

static double max_rel(world *a, world *b, const char *skip_suffix)
{
    double most = 0;
    for (int k = 0; k < a->n; k++) {
        if (skip_suffix && strstr(a->name[k], skip_suffix))
            continue;
        int j = 0;
        while (j < b->n && strcmp(b->name[j], a->name[k]))
            j++;
        cr_assert_lt(j, b->n, "%s is missing", a->name[k]);
        double d = 0, s = 0;
        for (int64_t e = 0; e < ir_tensor_numel(a->t[k]); e++) {
            double u = ir_tensor_get(a->t[k], e), v = ir_tensor_get(b->t[j], e);
            d += (u - v) * (u - v), s += v * v;
        }
        most = fmax(most, sqrt(d) / fmax(sqrt(s), 1e-300));
    }
    return most;
}

/* Micro-batches of 5 and 7 rows, accumulated and applied twice, against two train steps of
 * the 12 rows: every parameter and Adam's state alike, to f64 rounding. */
Test(split_step, accumulating_micro_batches_is_the_step_of_their_union)
{
    ag_graph *m = ag_graph_new("net");
    net(m, ag_adam(.lr = 0.01, .wd = 0.02));
    cr_assert_eq(ag_graph_finish(m), 0);
    ir_graph *step = pipeline(m, PASS_TRAIN), *acc = pipeline(m, PASS_ACCUMULATE), *apply = pipeline(m, PASS_APPLY);
    world whole = {.scalar = {[AG_ROLE_LR] = 0.01, [AG_ROLE_WD] = 0.02}}, split = whole;
    for (int s = 0; s < 2; s++) {
        run(step, &whole, 0, ROWS);
        split.scalar[AG_ROLE_GRAD_WEIGHT] = 5;
        run(acc, &split, 0, 5);
        split.scalar[AG_ROLE_GRAD_WEIGHT] = 7;
        run(acc, &split, 5, 7);
        split.scalar[AG_ROLE_GRAD_SCALE] = 1.0 / ROWS;
        split.scalar[AG_ROLE_CLIP_NORM] = INFINITY;
        run(apply, &split, 0, 1);
        for (int k = 0; k < split.n; k++) /* as the runtime does after an update */
            if (strstr(split.name[k], ".grad_acc"))
                memset(split.t[k]->data, 0, sizeof(double) * (size_t)ir_tensor_numel(split.t[k]));
    }
    cr_expect_eq(split.n, whole.n + 3, "the accumulators: one a parameter");
    double e = max_rel(&whole, &split, NULL);
    cr_expect_leq(e, 1e-13, "the split step is off the train step by %g", e);
    world_free(&whole);
    world_free(&split);
    ir_graph_free(step);
    ir_graph_free(acc);
    ir_graph_free(apply);
    ag_graph_free(m);
}

/* The global norm of the gradients, clipped as torch.nn.utils.clip_grad_norm_: with SGD
 * (lr 1; b1's group halves it), P - P.next is the gradient; clipping at half its norm halves it (less the 1e-6),
 * at twice its norm leaves it. */
Test(split_step, clip_norm_scales_as_clip_grad_norm)
{
    ag_graph *m = ag_graph_new("net");
    net(m, ag_sgd(.lr = 1));
    cr_assert_eq(ag_graph_finish(m), 0);
    ir_graph *acc = pipeline(m, PASS_ACCUMULATE), *apply = pipeline(m, PASS_APPLY);
    double norm = 0, grads[3][64] = {{0}};
    static const char *const params[] = {"W1", "b1", "W2"};
    for (int c = 0; c < 3; c++) { /* unclipped, then at norm / 2 and at 2 norm */
        world w = {.scalar = {[AG_ROLE_LR] = 1, [AG_ROLE_GRAD_WEIGHT] = ROWS, [AG_ROLE_GRAD_SCALE] = 1.0 / ROWS}};
        w.scalar[AG_ROLE_CLIP_NORM] = c == 0 ? INFINITY : c == 1 ? norm / 2 : 2 * norm;
        run(acc, &w, 0, ROWS);
        double before[3][64];
        for (int p = 0; p < 3; p++)
            for (int k = 0; k < w.n; k++)
                if (!strcmp(w.name[k], params[p]))
                    for (int64_t e = 0; e < ir_tensor_numel(w.t[k]); e++)
                        before[p][e] = ir_tensor_get(w.t[k], e);
        run(apply, &w, 0, 1);
        double coef = c == 0 ? 1 : c == 1 ? (norm / 2) / (norm + 1e-6) : 1, off = 0;
        for (int p = 0; p < 3; p++)
            for (int k = 0; k < w.n; k++)
                if (!strcmp(w.name[k], params[p]))
                    for (int64_t e = 0; e < ir_tensor_numel(w.t[k]); e++) {
                        double g = (before[p][e] - ir_tensor_get(w.t[k], e)) / (p == 1 ? 0.5 : 1); /* b1's group */
                        if (c == 0) {
                            grads[p][e] = g;
                            norm += g * g;
                        } else
                            off = fmax(off, fabs(g - coef * grads[p][e]));
                    }
        if (c == 0) {
            norm = sqrt(norm);
            cr_assert_gt(norm, 1e-3, "the gradient is too small to clip: %g", norm);
        } else
            cr_expect_leq(off, 1e-15, "clip at %g (norm %g): the update is off coef %g x the gradient by %g",
                          w.scalar[AG_ROLE_CLIP_NORM], norm, coef, off);
        world_free(&w);
    }
    ir_graph_free(acc);
    ir_graph_free(apply);
    ag_graph_free(m);
}

/* Both halves print as text IR that parses back and verifies; the apply graph keeps no model:
 * its only inputs are the runtime scalars */
Test(split_step, the_halves_parse_back)
{
    ag_graph *m = ag_graph_new("net");
    net(m, ag_sgd(.lr = 0.1, .momentum = 0.9));
    cr_assert_eq(ag_graph_finish(m), 0);
    for (int w = PASS_ACCUMULATE; w <= PASS_APPLY; w++) {
        ir_graph *g = pipeline(m, (pass_pipeline)w);
        char *text = ir_print_str(g), err[1024];
        ir_graph *back = ir_parse(text, strlen(text), "split.ir", err, sizeof err);
        cr_assert_not_null(back, "%s\n%s", err, text);
        cr_expect(ir_verify(back, err, sizeof err), "%s", err);
        cr_expect(strstr(text, w == PASS_ACCUMULATE ? "role=grad_weight" : "role=clip_norm"), "%s", text);
        cr_expect(strstr(text, "%W1.grad_acc: f32[5,4] = param zeros role=accum"), "%s", text);
        if (w == PASS_APPLY)
            cr_expect(!strstr(text, "role=data") && strstr(text, "W1.momentum_buffer.next"), "%s", text);
        free(text);
        ir_graph_free(back);
        ir_graph_free(g);
    }
    ag_graph_free(m);
}

/* The names the split step gives are refused in a model, with a message, as the optimizer's */
Test(split_step, its_names_are_refused_in_a_model)
{
    static const char *const says[] = {"parameter W.grad_acc has the name of W's gradient accumulator; rename it",
                                       "the name clip_norm is the split train step's (--accumulate, --clip-norm); "
                                       "rename the model's clip_norm"};
    for (int c = 0; c < 2; c++) {
        ag_graph *g = ag_graph_new("m");
        ag_val x = ag_input(g, c ? "clip_norm" : "x", AG_F32, AG_N, 2);
        ag_val y = ag_input(g, "y", AG_F32, AG_N);
        ag_val W = ag_param(g, "W", ag_zeros(), 2);
        ag_val V = ag_param(g, c ? "V" : "W.grad_acc", ag_zeros(), 2);
        ag_minimize(g, ag_mean(ag_squared_loss(ag_add(ag_matmul(x, W), ag_sum(V)), y)), ag_sgd(.lr = 0.1));
        cr_assert_eq(ag_graph_finish(g), 0);
        char err[1024];
        ir_graph *h = pass_run_pipeline(g, PASS_ACCUMULATE, NULL, NULL, NULL, err, sizeof err);
        cr_expect_null(h);
        cr_expect(strstr(err, says[c]), "%s", err);
        ir_graph_free(h);
        ag_graph_free(g);
    }
}
