/* The optimizers against torch.optim's update formulas (the algorithms its documentation
 * gives, with its defaults), written out here in double: 20 steps of a linear model on fixed
 * batches, through the whole train-step pipeline in the interpreter (f32), every parameter
 * and every state tensor (by PyTorch's state_dict names) within 1e-5, norm-wise. The bias
 * sits in a group (lr x 0.5, no decay), so the scales are tested too. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aotgrad.h"
#include "interp.h"
#include "ir.h"
#include "data.h"
#include "load.h"
#include "optim_ref.h"
#include "passes.h"

enum { B = 8, F = 3, STEPS = 20, NP = 2 };

/* step s's batch: x[i][j], y[i] */
static double data_x(int s, int i, int j) { return sin(1.3 * s + 0.7 * i + 1.1 * j); }
static double data_y(int s, int i) { return 2 + cos(0.9 * s + 0.5 * i); } /* b's gradient keeps its sign */

/* The reference: the parameters W[3] and b[1], and up to 3 state tensors each */
typedef struct ref {
    double p[NP][F];
    double st[NP][3][F]; /* in the order of the kind's ir_optimizer_kinds state names */
    double step[NP];
} ref;

static const int sizes[NP] = {F, 1};
static const double lr_scale[NP] = {1, 0.5}, wd_scale[NP] = {1, 0};

/* torch.optim's step for one parameter, d the gradient (L2 decay added where the kind adds it) */
static void ref_step(const ag_optimizer *o, ref *r, int k, const double *g)
{
    double lr = o->lr * lr_scale[k], wd = o->wd * wd_scale[k];
    bool adamw = !strcmp(o->kind, "adamw");
    r->step[k] += 1;
    double t = r->step[k];
    for (int e = 0; e < sizes[k]; e++) {
        double *p = &r->p[k][e], d = g[e] + (adamw ? 0 : wd * *p);
        double *s0 = &r->st[k][0][e], *s1 = &r->st[k][1][e], *s2 = &r->st[k][2][e];
        if (!strcmp(o->kind, "sgd")) {
            if (o->momentum > 0) {
                *s0 = t == 1 ? d : o->momentum * *s0 + d; /* dampening 0 */
                d = o->nesterov ? d + o->momentum * *s0 : *s0;
            }
            *p -= lr * d;
        } else if (!strcmp(o->kind, "adam") || adamw) {
            if (adamw)
                *p *= 1 - lr * wd;
            *s0 = t;
            *s1 = *s1 + (d - *s1) * (1 - o->beta1); /* exp_avg.lerp_(grad, 1 - beta1) */
            *s2 = *s2 * o->beta2 + (1 - o->beta2) * d * d;
            double bc1 = 1 - pow(o->beta1, t), bc2 = 1 - pow(o->beta2, t);
            double denom = sqrt(*s2) / sqrt(bc2) + o->eps;
            *p -= lr / bc1 * *s1 / denom;
        } else if (!strcmp(o->kind, "rmsprop")) {
            *s0 = o->alpha * *s0 + (1 - o->alpha) * d * d;
            *p -= lr * d / (sqrt(*s0) + o->eps);
        } else { /* adagrad, lr_decay 0 */
            *s0 += d * d;
            *p -= lr * d / (sqrt(*s0) + o->eps);
        }
    }
}

static void model(ag_graph *g, ag_optimizer o)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, F);
    ag_val y = ag_input(g, "y", AG_F32, AG_N);
    ag_val W = ag_param(g, "W", ag_zeros(), F);
    ag_val b = ag_param(g, "b", ag_zeros(), 1);
    ag_group(g, "bias", 0.0, 0.5, b);
    ag_minimize(g, ag_mean(ag_squared_loss(ag_add(ag_matmul(x, W), b), y)), o, .batch = B);
}

/* a tensor of node i of g at batch B */
static ir_tensor *tensor_for(const ir_graph *g, int32_t i)
{
    ir_tensor *t = malloc(sizeof *t);
    ir_shape s = ir_bind_shape(&g->node[i].shape, B);
    *t = ir_tensor_new(AG_F32, &s);
    cr_assert_not_null(t->data);
    return t;
}

/* After a run: every parameter and state takes its .next (elem: 4 in f32, 8 in f64) */
static void take_next(const ir_graph *step, ir_tensor **bound, ir_tensor *outs, size_t elem)
{
    for (int32_t i = 0; i < step->n; i++) {
        if (step->node[i].op != IR_param)
            continue;
        char next[300];
        snprintf(next, sizeof next, "%s.next", step->node[i].attr.name);
        int out = ir_find_output(step, next);
        cr_assert_geq(out, 0, "no output %s", next);
        memcpy(bound[i]->data, outs[out].data, (size_t)ir_tensor_numel(bound[i]) * elem);
    }
    for (int k = 0; k < step->nout; k++)
        ir_tensor_free(&outs[k]);
}

/* the bound tensors, the graphs */
static void free_run(ir_tensor **bound, ir_tensor *outs, ir_graph *step, ag_graph *g)
{
    for (int32_t i = 0; i < step->n; i++)
        if (bound[i]) {
            ir_tensor_free(bound[i]);
            free(bound[i]);
        }
    free(bound);
    free(outs);
    ir_graph_free(step);
    ag_graph_free(g);
}

static double rel(const ir_tensor *t, const double *want, int n)
{
    double d = 0, s = 0;
    for (int e = 0; e < n; e++) {
        double v = ir_tensor_get(t, e);
        d += (v - want[e]) * (v - want[e]);
        s += want[e] * want[e];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

static void check(const char *what, ag_optimizer o)
{
    ag_graph *g = ag_graph_new("lin");
    model(g, o);
    cr_assert_eq(ag_graph_finish(g), 0, "%s", what);
    char err[1024];
    ir_graph *step = pass_run(g, true, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(step, "%s: %s", what, err);
    const ir_optimizer_kind *kind = ir_optimizer_find(o.kind);
    cr_assert_not_null(kind);
    ref r = {.p = {{0.1, -0.2, 0.3}, {0.05}}};
    ir_tensor **bound = calloc((size_t)step->n, sizeof *bound);
    int nstate = 0;
    for (int32_t i = 0; i < step->n; i++) {
        const ir_node *n = &step->node[i];
        if (n->op != IR_input && n->op != IR_param)
            continue;
        bound[i] = tensor_for(step, i);
        if (!strcmp(n->attr.name, "W") || !strcmp(n->attr.name, "b"))
            for (int e = 0; e < sizes[n->attr.name[0] == 'b']; e++)
                ir_tensor_set(bound[i], e, r.p[n->attr.name[0] == 'b'][e]);
        if (!strcmp(n->attr.name, "lr"))
            ir_tensor_set(bound[i], 0, o.lr);
        if (!strcmp(n->attr.name, "wd"))
            ir_tensor_set(bound[i], 0, o.wd);
        if (n->op == IR_param && n->attr.role == AG_ROLE_STATE) {
            nstate++;
            const char *dot = strchr(n->attr.name, '.');
            bool named = false;
            for (int k = 0; kind->state[k]; k++)
                named |= dot && !strcmp(dot + 1, kind->state[k]);
            cr_expect(named, "%s: state %s is none of torch.optim's", what, n->attr.name);
        }
    }
    int want_state = 0;
    for (int k = 0; kind->state[k]; k++)
        want_state += strcmp(kind->state[k], "momentum_buffer") != 0 || o.momentum > 0;
    cr_expect_eq(nstate, NP * want_state, "%s: %d state tensors", what, nstate);

    ir_tensor *outs = calloc((size_t)step->nout, sizeof *outs);
    for (int s = 0; s < STEPS; s++) {
        double gr[NP][F] = {{0}};
        for (int32_t i = 0; i < step->n; i++) { /* the batch; the reference's gradient */
            if (step->node[i].op == IR_input && !strcmp(step->node[i].attr.name, "x"))
                for (int a = 0; a < B; a++)
                    for (int j = 0; j < F; j++)
                        ir_tensor_set(bound[i], a * F + j, data_x(s, a, j));
            if (step->node[i].op == IR_input && !strcmp(step->node[i].attr.name, "y"))
                for (int a = 0; a < B; a++)
                    ir_tensor_set(bound[i], a, data_y(s, a));
        }
        for (int a = 0; a < B; a++) { /* the batch as the f32 model holds it */
            double xs[F], pred = r.p[1][0];
            for (int j = 0; j < F; j++)
                xs[j] = (float)data_x(s, a, j), pred += xs[j] * r.p[0][j];
            double res = (pred - (float)data_y(s, a)) / B;
            for (int j = 0; j < F; j++)
                gr[0][j] += res * xs[j];
            gr[1][0] += res;
        }
        for (int k = 0; k < NP; k++)
            ref_step(&o, &r, k, gr[k]);
        ir_run run = {.f64 = false, .batch = B, .seed = 1, .step = (uint64_t)s, .training = true};
        cr_assert(ir_interp(step, &run, (const ir_tensor *const *)bound, outs, err, sizeof err), "%s: %s", what, err);
        take_next(step, bound, outs, sizeof(float));
    }
    for (int32_t i = 0; i < step->n; i++) {
        const ir_node *n = &step->node[i];
        if (n->op != IR_param)
            continue;
        int k = n->attr.name[0] == 'b';
        const char *dot = strchr(n->attr.name, '.');
        int slot = -1;
        for (int j = 0; dot && kind->state[j]; j++)
            if (!strcmp(dot + 1, kind->state[j]))
                slot = j;
        if (!dot) {
            double e = rel(bound[i], r.p[k], sizes[k]);
            cr_expect_leq(e, 1e-5, "%s: %s off torch.optim's by %g after %d steps", what, n->attr.name, e, STEPS);
        } else if (!strcmp(dot + 1, "step")) {
            cr_expect_eq(ir_tensor_get(bound[i], 0), STEPS, "%s: %s", what, n->attr.name);
        } else {
            /* the reference keeps each state in the slot of its name in the kind's list */
            double e = rel(bound[i], r.st[k][slot], sizes[k]);
            cr_expect_leq(e, 1e-5, "%s: %s off torch.optim's by %g after %d steps", what, n->attr.name, e, STEPS);
        }
        ir_tensor_free(bound[i]);
        free(bound[i]);
        bound[i] = NULL;
    }
    free_run(bound, outs, step, g);
}

Test(optimizers, twenty_steps_match_torch_optim_formulas)
{
    check("sgd", ag_sgd(.lr = 0.1, .wd = 0.01));
    check("sgd momentum", ag_sgd(.lr = 0.05, .wd = 0.01, .momentum = 0.9));
    check("sgd nesterov", ag_sgd(.lr = 0.05, .wd = 0.01, .momentum = 0.9, .nesterov = 1));
    check("adam", ag_adam(.lr = 0.01, .wd = 0.01));
    check("adam defaults", ag_adam());
    check("adamw", ag_adamw(.lr = 0.01, .wd = 0.1));
    check("rmsprop", ag_rmsprop(.lr = 0.01, .wd = 0.01));
    check("adagrad", ag_adagrad(.lr = 0.1, .wd = 0.01));
}

/* PyTorch's defaults, through the DSL's macros; a field given overrides its default alone */
Test(optimizers, the_dsl_fills_in_pytorch_defaults)
{
    ag_optimizer a = ag_adam(.lr = 0.01);
    cr_expect(a.lr == 0.01 && a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8 && a.wd == 0);
    ag_optimizer w = ag_adamw();
    cr_expect(w.lr == 0.001 && w.wd == 0.01 && !strcmp(w.kind, "adamw"));
    ag_optimizer r = ag_rmsprop(.alpha = 0.9);
    cr_expect(r.lr == 0.01 && r.alpha == 0.9 && r.eps == 1e-8);
    ag_optimizer d = ag_adagrad();
    cr_expect(d.lr == 0.01 && d.eps == 1e-10);
    for (const ir_optimizer_kind *k = ir_optimizer_kinds; k->name; k++) /* the table says the same */
        if (strcmp(k->name, "sgd") != 0)
            cr_expect(k->defaults[IR_HP_EPS] == (strcmp(k->name, "adagrad") ? 1e-8 : 1e-10), "%s", k->name);
}

/* A model's mistakes in its optimizer, at its line, once */
Test(optimizers, bad_hyperparameters_are_refused_at_the_model_line)
{
    static const struct {
        ag_optimizer o;
        const char *says;
    } cases[] = {
        {{.kind = "lion", .lr = 0.1},
         "minimize: unknown optimizer 'lion' (aotgrad has sgd, adam, adamw, rmsprop, "
         "adagrad)"},
        {{.kind = "adam", .lr = 0.1, .beta1 = 1, .beta2 = 0.999},
         "minimize: adam: beta1 is 1; expected a number in "
         "[0, 1)"},
        {{.kind = "sgd", .lr = 0.1, .nesterov = 1}, "minimize: sgd: nesterov needs a momentum above 0"},
        {{.kind = "rmsprop", .lr = 0.1, .beta1 = 0.5},
         "minimize: rmsprop takes no beta1 (it takes lr, wd, eps, alpha)"},
        {{.kind = "adagrad", .lr = 0}, "minimize: adagrad needs lr > 0, got lr 0"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        ag_graph *g = ag_graph_new("lin");
        model(g, cases[k].o);
        cr_expect_eq(ag_graph_finish(g), 1, "case %zu", k);
        const char *e = ag_graph_error(g, 0);
        cr_expect(e && strstr(e, cases[k].says), "case %zu: %s", k, e ? e : "(no error)");
        ag_graph_free(g);
    }
}

/* Adam's whole update of a parameter (moments, bias corrections, the parameter) is one loop:
 * its four outputs come out of one kernel, which reads the gradient once (an output of
 * plain SGD's kind rides on the weight gradient's sgemm instead). */
Test(optimizers, adam_updates_each_parameter_in_one_loop)
{
    ir_graph *g = fe_load(AG_SOURCE_DIR "/models/mlp_adam.c", getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(g);
    char err[1024];
    ir_graph *step = pass_run(g, true, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(step, "%s", err);
    static const char *const params[] = {"W1", "b1", "W2", "b2"};
    static const char *const outs[] = {"%s.next", "%s.exp_avg.next", "%s.exp_avg_sq.next", "%s.step.next"};
    for (int p = 0; p < 4; p++) {
        int32_t kernel = -1;
        for (int o = 0; o < 4; o++) {
            char name[64];
            snprintf(name, sizeof name, outs[o], params[p]);
            int k = ir_find_output(step, name);
            cr_assert_geq(k, 0, "no output %s", name);
            const ir_node *n = &step->node[step->out[k].id];
            cr_assert_eq(n->op, IR_kernel, "%s is no kernel's", name);
            if (o == 0)
                kernel = n->attr.kernel;
            cr_expect_eq(n->attr.kernel, kernel, "%s: kernel @k%d, %s.next's is @k%d", name, n->attr.kernel, params[p],
                         kernel);
        }
        /* one kernel, one loop: its operands (the gradient among them) each read once */
        const ir_node *kn = &step->node[step->out[ir_find_output(step, "W1.next")].id];
        for (int i = 0; i < kn->nin; i++)
            for (int j = 0; j < i; j++)
                cr_expect_neq(kn->in[i], kn->in[j], "the update kernel takes an operand twice");
    }
    ir_graph_free(step);
    ir_graph_free(g);
}

/* ---- torch.optim itself: bench/optim_reference.py's float64 values ----
 *
 * models/mlp.c's network, 20 steps of 64 Fashion-MNIST images, each optimizer, every
 * parameter and state tensor within 1e-5 of torch's (seen: at most 2.2e-7, the f32 rounding
 * of lr, momentum and the betas in the graph). The train step runs in the interpreter's f64
 * mode, as the reference does; the compiled f32 code is held to the same reference in
 * tests/codegen/test_optim_torch.c (the CPU) and tests/cuda/test_cuda_epilogue.c (the host
 * shim). */

static double tensor_at(const void *t, int64_t i) { return ir_tensor_get(t, i); }

Test(optimizers, twenty_mlp_steps_match_torch_optim)
{
    optim_ref ref;
    optim_ref_load(&ref);
    char err[1024];
    for (int c = 0; c < OPTIM_REF_CONFIGS; c++) {
        ag_optimizer o;
        const char *name = optim_ref_config(c, &o);
        ag_graph *g = ag_graph_new("mlp");
        optim_ref_net(g, o);
        cr_assert_eq(ag_graph_finish(g), 0);
        ir_graph *step = pass_run(g, true, NULL, NULL, NULL, err, sizeof err);
        cr_assert_not_null(step, "%s: %s", name, err);
        ir_tensor **bound = calloc((size_t)step->n, sizeof *bound);
        for (int32_t i = 0; i < step->n; i++) {
            const ir_node *n = &step->node[i];
            if (n->op != IR_input && n->op != IR_param)
                continue;
            bound[i] = malloc(sizeof **bound);
            ir_shape s = ir_bind_shape(&n->shape, OPTIM_REF_BATCH);
            *bound[i] = ir_tensor_new(ir_storage_dtype(n->dtype, true), &s); /* f64, as the reference */
            if (n->op == IR_param && n->attr.role != AG_ROLE_STATE)
                for (int64_t e = 0; e < ir_tensor_numel(bound[i]); e++)
                    ir_tensor_set(bound[i], e, optim_ref_start(n->attr.name, e));
            if (n->attr.role == AG_ROLE_LR || n->attr.role == AG_ROLE_WD)
                ir_tensor_set(bound[i], 0, n->attr.role == AG_ROLE_LR ? o.lr : o.wd);
        }
        int32_t xi = ir_find_role(step, AG_ROLE_DATA), yi = ir_find_role(step, AG_ROLE_LABELS);
        cr_assert(xi >= 0 && yi >= 0);
        ir_tensor *outs = calloc((size_t)step->nout, sizeof *outs);
        for (int s = 0; s < OPTIM_REF_STEPS; s++) {
            for (int64_t e = 0; e < OPTIM_REF_BATCH * 784; e++)
                ir_tensor_set(bound[xi], e, optim_ref_x(&ref, s, e));
            for (int64_t e = 0; e < OPTIM_REF_BATCH; e++)
                ir_tensor_set(bound[yi], e, optim_ref_y(&ref, s, e));
            ir_run run = {.f64 = true, .batch = OPTIM_REF_BATCH, .seed = 1, .step = (uint64_t)s};
            cr_assert(ir_interp(step, &run, (const ir_tensor *const *)bound, outs, err, sizeof err), "%s", err);
            take_next(step, bound, outs, sizeof(double));
        }
        int compared = 0, params = 0;
        for (int32_t i = 0; i < step->n; i++) {
            const ir_node *n = &step->node[i];
            if (n->op != IR_param)
                continue;
            params++;
            int seen;
            double e = optim_ref_error(&ref, name, n->attr.name, tensor_at, bound[i], &seen);
            cr_expect_gt(seen, 0, "%s: torch.optim keeps no %s", name, n->attr.name);
            cr_expect_leq(e, 1e-5, "%s: %s off torch.optim's by %g (norm-wise, %d elements) after 20 steps", name,
                          n->attr.name, e, seen);
            compared += seen > 0;
        }
        cr_expect_eq(compared, params, "%s", name);
        free_run(bound, outs, step, g);
    }
    optim_ref_free(&ref);
}

/* aotgrad ir --memory names the optimizer's state apart from the parameters: Adam keeps two
 * moments of every parameter and a step count each, 2 x 814,120 + 4 x 4 bytes for the MLP,
 * and the peak counts them */
Test(optimizers, the_memory_report_names_the_state)
{
    ir_graph *m = fe_load(AG_SOURCE_DIR "/models/mlp_adam.c", getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(m);
    char *text = NULL, err[512];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert(pass_memory_report(m, 0, f, err, sizeof err), "%s", err);
    fclose(f);
    cr_expect(strstr(text, "  parameters               814120 B"), "%s", text);
    cr_expect(strstr(text, "  optimizer state         1628256 B"), "%s", text);
    long long params = 0, state = 0, input = 0, arena = 0, peak = 0;
    cr_assert_eq(sscanf(strstr(text, "  parameters"), " parameters %lld B", &params), 1);
    cr_assert_eq(sscanf(strstr(text, "  optimizer state"), " optimizer state %lld B", &state), 1);
    cr_assert_eq(sscanf(strstr(text, "  input batch"), " input batch %lld B", &input), 1);
    cr_assert_eq(sscanf(strstr(text, "  arena"), " arena %lld B", &arena), 1);
    cr_assert_eq(sscanf(strstr(text, "\n  peak") + 1, " peak %lld B", &peak), 1);
    cr_expect_eq(peak, params + state + input + arena, "%s", text);
    /* the split step's accumulators: one a parameter; its peak counts them with the rest */
    const char *split = strstr(text, "split step (--accumulate, --clip-norm");
    cr_assert_not_null(split, "%s", text);
    long long accum = 0, split_input = 0, split_arena = 0, split_peak = 0;
    cr_assert_eq(sscanf(strstr(split, "  gradient accumulators"), " gradient accumulators %lld B", &accum), 1);
    cr_assert_eq(sscanf(strstr(split, "  input batch"), " input batch %lld B", &split_input), 1);
    cr_assert_eq(sscanf(strstr(split, "  arena"), " arena %lld B", &split_arena), 1);
    cr_assert_eq(sscanf(strstr(split, "  peak"), " peak %lld B", &split_peak), 1);
    cr_expect_eq(accum, params, "%s", split);
    cr_expect_eq(split_peak, params + state + accum + split_input + split_arena, "%s", split);
    free(text);
    ir_graph_free(m);
}

/* A parameter that has the name of another's state is the model's mistake, said as such */
Test(optimizers, a_parameter_named_as_a_state_is_refused)
{
    ir_graph *m = fe_load(AG_SOURCE_DIR "/tests/data/models/state_name_taken.c", getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(m);
    char err[512] = "";
    ir_graph *step = pass_run(m, true, NULL, NULL, NULL, err, sizeof err);
    cr_expect_null(step);
    cr_expect_str_eq(err, "optimizer: parameter W.step has the name adam gives W's state; rename it");
    ir_graph_free(step);
    ir_graph_free(m);
}
