/* The pipeline on every model: each pass's result computes what the unoptimized graph
 * computes (f64, 1e-10 per tensor, batches 1, 7 and 256), each stage's dump parses back and
 * computes the same, bit for bit, and the MLP reaches codegen as a handful of kernels. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aotgrad.h"
#include "bind.h"
#include "interp.h"
#include "ir.h"
#include "load.h"
#include "passes.h"

typedef struct stages {
    int n;
    char names[16][32];
    ir_graph *g[16];
} stages;

static void keep_stage(void *ctx, const char *pass, const ir_graph *g)
{
    stages *s = ctx;
    cr_assert_lt(s->n, 16);
    snprintf(s->names[s->n], sizeof s->names[s->n], "%s", pass);
    s->g[s->n++] = ir_clone_live(g);
}

/* Runs g on the tensors bound to ref's sources of the same name (ref's own binding). */
static ir_tensor *run_like(const ir_graph *ref, ir_tensor **bref, const ir_graph *g, int64_t batch)
{
    const ir_tensor **b = calloc((size_t)g->n, sizeof *b);
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if (n->op != IR_input && n->op != IR_param)
            continue;
        int32_t j = ir_find_source(ref, n->op, n->attr.name);
        cr_assert_geq(j, 0, "%s is not a source of the reference graph", n->attr.name);
        b[i] = bref[j];
    }
    ir_tensor *outs = calloc((size_t)g->nout, sizeof *outs);
    ir_run run = {.f64 = true, .batch = batch, .seed = 5, .step = 3, .training = true};
    char err[512];
    cr_assert(ir_interp(g, &run, b, outs, err, sizeof err), "%s", err);
    free(b);
    return outs;
}

static double rel_error(const ir_tensor *a, const ir_tensor *b)
{
    double d = 0, s = 0;
    for (int64_t i = 0, n = ir_tensor_numel(a); i < n; i++) {
        double x = ir_tensor_get(a, i), y = ir_tensor_get(b, i);
        d += (x - y) * (x - y);
        s += x * x;
    }
    return d == 0 ? 0 : sqrt(d) / fmax(sqrt(s), 1e-300);
}

/* Every output of g that ref has by name matches it; returns how many were compared. */
static int compare(const ir_graph *ref, const ir_graph *g, int64_t batch, const char *what, double tol)
{
    ir_tensor **bref = fe_bind_random(ref, batch, 77, true);
    /* the step's runtime scalars: a real learning rate and decay, so the update shows */
    for (int32_t i = 0; i < ref->n; i++)
        if (ref->node[i].op == IR_input && bref[i] && ref->node[i].shape.rank == 0)
            ir_tensor_set(bref[i], 0, strcmp(ref->node[i].attr.name, "lr") == 0 ? 0.1 : 0.01);
    ir_tensor *a = run_like(ref, bref, ref, batch), *b = run_like(ref, bref, g, batch);
    int compared = 0;
    for (int k = 0; k < g->nout; k++) {
        int j = ir_find_output(ref, g->out[k].name);
        if (j < 0)
            continue;
        double e = rel_error(&a[j], &b[k]);
        cr_expect(tol ? e <= tol : e == 0, "%s: output %s at batch %lld differs by %g", what, g->out[k].name,
                  (long long)batch, e);
        compared++;
    }
    for (int k = 0; k < ref->nout; k++)
        ir_tensor_free(&a[k]);
    for (int k = 0; k < g->nout; k++)
        ir_tensor_free(&b[k]);
    free(a);
    free(b);
    fe_bind_free(ref, bref);
    return compared;
}

/* print(parse(print(g))) == print(g), and the parsed graph computes the same, bit for bit. */
static void dump_runs(const ir_graph *g, const char *what)
{
    char *text = ir_print_str(g), err[512];
    ir_graph *h = ir_parse(text, strlen(text), what, err, sizeof err);
    cr_assert_not_null(h, "%s: the dump does not parse: %s", what, err);
    cr_assert(ir_verify(h, err, sizeof err), "%s: %s", what, err);
    char *again = ir_print_str(h);
    cr_expect_str_eq(again, text, "%s: the dump does not print back the same", what);
    compare(g, h, 7, what, 0);
    free(text);
    free(again);
    ir_graph_free(h);
}

static void check_model(const char *path, const char *const *settings)
{
    ir_graph *m = fe_load(path, getenv("AOTGRAD_INCLUDE"), settings);
    cr_assert_not_null(m, "%s does not build", path);
    char err[1024];
    /* the unoptimized references: autodiff and the optimizer alone */
    ir_graph *grads = pass_autodiff(m, m->train->loss, err, sizeof err);
    cr_assert_not_null(grads, "%s", err);
    ir_graph *step = pass_optimizer(grads, err, sizeof err);
    cr_assert_not_null(step, "%s", err);
    ir_graph *eval = pass_eval(m);
    for (int train = 0; train < 2; train++) {
        stages s = {0};
        ir_graph *last = pass_run(m, train, NULL, keep_stage, &s, err, sizeof err);
        cr_assert_not_null(last, "%s: %s", path, err);
        ir_graph_free(last);
        for (int k = 0; k < s.n; k++) {
            const char *name = s.names[k];
            const ir_graph *ref = !strcmp(name, "canonicalize") ? m
                                  : !strcmp(name, "autodiff")   ? grads
                                  : train                       ? step
                                                                : eval;
            char what[1024];
            snprintf(what, sizeof what, "%s%s, %s after %s", path, settings && *settings ? " (option)" : "",
                     train ? "train step" : "eval graph", name);
            for (int64_t batch = 1; batch <= 256; batch = batch == 1 ? 7 : batch == 7 ? 256 : 512) {
#ifdef __SANITIZE_ADDRESS__
                /* the f64 interpreter at 256 rows is slow under ASan: the Release run covers
                 * every stage there; the sanitizers see batch 256 at the last stage only */
                if (batch == 256 && k + 1 < s.n)
                    continue;
#endif
                cr_assert_gt(compare(ref, s.g[k], batch, what, 1e-10), 0, "%s: no output to compare", what);
            }
            dump_runs(s.g[k], what);
            ir_graph_free(s.g[k]);
        }
    }
    ir_graph_free(eval);
    ir_graph_free(step);
    ir_graph_free(grads);
    ir_graph_free(m);
}

Test(pipeline, every_pass_keeps_every_model_s_results)
{
    const char *models[] = {"linreg", "softmax", "mlp", "mlp_dropout", "weight_decay"};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        char path[512];
        snprintf(path, sizeof path, AG_SOURCE_DIR "/models/%s.c", models[i]);
        check_model(path, NULL);
    }
    check_model(AG_SOURCE_DIR "/models/mlp.c", (const char *const[]){"act=tanh", NULL});
    /* sixteen chained matmuls: autodiff adds nodes while a rule still reads shapes (the
     * graph's node array moves as it grows; ASan caught a rule holding a pointer into it) */
    check_model(AG_SOURCE_DIR "/tests/data/models/matmul_chain.c", NULL);
}

/* Counts the top-level nodes that compute (kernels, and plain ops), and those that hold a
 * matmul. */
static void count_kernels(const ir_graph *g, int *matmuls, int *others)
{
    *matmuls = *others = 0;
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if (ir_ops[n->op].kind == IR_K_SOURCE)
            continue;
        bool mm = n->op == IR_matmul;
        if (n->op == IR_kernel) {
            /* siblings of a body count once, at its first output */
            bool first = true;
            for (int32_t j = 0; j < i; j++)
                first &= !(g->node[j].op == IR_kernel && g->node[j].attr.kernel == n->attr.kernel);
            if (!first)
                continue;
            const ir_graph *b = g->kernels[n->attr.kernel];
            for (int32_t j = 0; j < b->n; j++)
                mm |= b->node[j].op == IR_matmul;
        }
        ++*(mm ? matmuls : others);
    }
}

Test(pipeline, the_mlp_step_is_five_matmuls_and_few_kernels)
{
    ir_graph *m = fe_load(AG_SOURCE_DIR "/models/mlp.c", getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(m);
    char err[1024];
    ir_graph *g = pass_run(m, true, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    int matmuls, others;
    count_kernels(g, &matmuls, &others);
    cr_expect_leq(matmuls, 5, "%d matmul kernels", matmuls);
    cr_expect_leq(others, 5, "%d other kernels", others);
    char *text = ir_print_str(g);
    cr_expect(strstr(text, "softmax_ce %p0, %p1"), "no fused softmax + cross-entropy:\n%s", text);
    cr_expect(strstr(text, "softmax_ce_grad %p0, %p1"), "no fused backward:\n%s", text);
    cr_expect(!strstr(text, "log_softmax") && !strstr(text, "one_hot"), "unfused cross-entropy left:\n%s", text);
    /* the hidden layer's bias and ReLU ride on its matmul, and W1's update on its gradient's */
    const char *mm = strstr(text, "%0: f32[N,256] = matmul %p0, %p1 "), *end = mm ? strstr(mm, "return") : NULL;
    const char *bias = mm ? strstr(mm, "%1: f32[N,256] = add %0, %p2 ") : NULL;
    const char *act = mm ? strstr(mm, "%2: f32[N,256] = relu %1 ") : NULL;
    cr_expect(mm && bias && act && bias < end && act < end, "no bias + relu epilogue:\n%s", text);
    cr_expect(strstr(text, "%0: f32[784,256] = matmul %p0, %p1 ta"), "no weight-gradient matmul kernel:\n%s", text);
    free(text);
    ir_graph_free(g);
    ir_graph_free(m);
}

/* The hand-written loss: form 0, -mean(sum(one_hot(y) * log_softmax(o))); form 1 with the log
 * of softmax instead, and the minus inside the mean. */
static void hand_loss(ag_graph *g, int form)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 6);
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val W = ag_param(g, "W", ag_normal(0, 0.1), 6, 4);
    ag_val o = ag_matmul(x, W);
    ag_val logp = form == 0 ? ag_log_softmax(o) : ag_log(ag_softmax(o));
    ag_val picked = ag_sum(ag_mul(ag_one_hot(y, 4), logp), 1);
    ag_val loss = form == 0 ? ag_neg(ag_mean(picked)) : ag_mean(ag_neg(picked));
    ag_minimize(g, loss, ag_sgd(.lr = 0.1), .metric = ag_correct(o, y));
}

Test(pipeline, fuse_softmax_ce_fires_on_hand_written_losses)
{
    for (int form = 0; form < 2; form++) {
        ag_graph *g = ag_graph_new("hand");
        hand_loss(g, form);
        cr_assert_eq(ag_graph_finish(g), 0);
        char err[1024];
        ir_graph *s = pass_run(g, true, "fuse_softmax_ce", NULL, NULL, err, sizeof err);
        cr_assert_not_null(s, "%s", err);
        char *text = ir_print_str(s);
        cr_expect(strstr(text, "= softmax_ce ") && strstr(text, "= softmax_ce_grad "), "form %d:\n%s", form, text);
        cr_expect(!strstr(text, "softmax %") && !strstr(text, "one_hot"), "form %d left pieces:\n%s", form, text);
        free(text);
        ir_graph *grads = pass_autodiff(g, "loss", err, sizeof err);
        cr_assert_not_null(grads, "%s", err);
        ir_graph *step = pass_optimizer(grads, err, sizeof err);
        cr_assert_not_null(step, "%s", err);
        ir_graph_free(grads);
        for (int64_t batch = 1; batch <= 7; batch += 6)
            compare(step, s, batch, "hand-written loss", 1e-10);
        ir_graph_free(step);
        ir_graph_free(s);
        ag_graph_free(g);
    }
}

/* fuse_softmax_ce adds its nodes to the graph it is building; one of those adds may move the
 * node array. Softmax regressions with 0..80 extra steps before the loss put that growth at
 * every point of the rewrite once (under ASan a pointer kept into the old array fails). */
Test(pipeline, fuse_softmax_ce_survives_the_graph_growing)
{
    for (int extra = 0; extra <= 80; extra++) {
        ag_graph *g = ag_graph_new("grow");
        ag_val x = ag_input(g, "x", AG_F32, AG_N, 4), y = ag_input(g, "y", AG_I32, AG_N);
        ag_val w = ag_param(g, "w", ag_normal(0, 0.1), 4, 3);
        for (int k = 0; k < extra; k++)
            x = ag_tanh(x);
        ag_val logits = ag_matmul(x, w);
        ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), ag_sgd(.lr = 0.1), .metric = ag_correct(logits, y));
        cr_assert_eq(ag_graph_finish(g), 0);
        char err[1024];
        ir_graph *s = pass_run(g, true, NULL, NULL, NULL, err, sizeof err);
        cr_assert_not_null(s, "extra %d: %s", extra, err);
        ir_graph_free(s);
        ag_graph_free(g);
    }
}

/* The MLP's planned peak stays within 1.25x of the lower bound the report prints beside it,
 * and within 1.1x of the plan of one batch alone (2,363,568 B at 256, before plans held for
 * any batch); inference needs less than training. */
Test(pipeline, the_mlp_memory_plan_is_near_its_lower_bound)
{
    ir_graph *m = fe_load(AG_SOURCE_DIR "/models/mlp.c", getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(m);
    char *text = NULL, err[512];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert(pass_memory_report(m, 0, f, err, sizeof err), "%s", err);
    fclose(f);
    double ratio = 0;
    long long train_peak = 0, infer_peak = 0;
    const char *r = strstr(text, "peak / lower bound");
    cr_assert(r && sscanf(r, "peak / lower bound %lf", &ratio) == 1, "%s", text);
    const char *p1 = strstr(text, "\n  peak    "), *p2 = p1 ? strstr(p1 + 1, "\n  peak    ") : NULL;
    cr_assert(p1 && p2, "%s", text);
    cr_assert_eq(sscanf(p1, " peak %lld B", &train_peak), 1);
    cr_assert_eq(sscanf(p2, " peak %lld B", &infer_peak), 1);
    cr_expect(ratio <= 1.25, "peak is %.3fx the lower bound\n%s", ratio, text);
    cr_expect(ratio >= 1.0, "a lower bound the peak is below (%.3fx) is none\n%s", ratio, text);
    cr_expect(train_peak <= 2363568 * 11 / 10, "peak %lld B\n%s", train_peak, text);
    cr_expect(infer_peak < train_peak, "inference %lld B, training %lld B", infer_peak, train_peak);
    cr_expect(strstr(text, "saved for backward: f32[256,784], f32[256,256], f32[256,10]"), "%s", text);
    cr_expect(strstr(text, "  gradients                     0 B"), "%s", text);
    free(text);
    ir_graph_free(m);
}

/* LeNet's report names the convolutions' workspace, the direct path's (runtime/conv.c): the
 * taps' offsets and packed weights, 8 chunks' padded planes and wide outputs, 8 chunks'
 * weight-gradient parts, in f32. In training conv2's input and weight gradients' (one
 * kernel): 2 x (400 + 3200 + 8 x (5204 + 2304) + 8 x 16 x 151) floats; in inference
 * conv1's: 150 + 600 + 8 x (6164 + 7168) + 8 x 6 x 26. The MLP has none. */
Test(pipeline, the_memory_report_counts_the_convolutions_workspace)
{
    const char *models[] = {"lenet", "mlp"};
    for (int k = 0; k < 2; k++) {
        char path[256], *text = NULL, err[512];
        snprintf(path, sizeof path, AG_SOURCE_DIR "/models/%s.c", models[k]);
        ir_graph *m = fe_load(path, getenv("AOTGRAD_INCLUDE"), NULL);
        cr_assert_not_null(m);
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        cr_assert(pass_memory_report(m, 0, f, err, sizeof err), "%s", err);
        fclose(f);
        const char *a = strstr(text, "\n  conv workspace           663936 B"),
                   *b = a ? strstr(a + 1, "conv work") : NULL;
        if (k == 0)
            cr_expect(a && b && strstr(b, "434616 B"), "%s", text);
        else
            cr_expect(!strstr(text, "conv workspace"), "%s", text);
        free(text);
        ir_graph_free(m);
    }
}

/* The verifier knows a kernel's outputs are written together, at its first node: a later
 * sibling placed over a value read between the two is refused. */
Test(pipeline, the_verifier_sees_a_kernel_s_outputs_born_together)
{
    ir_graph *m = fe_load(AG_SOURCE_DIR "/tests/data/models/linreg_metric.c", getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(m);
    char err[512];
    ir_graph *g = pass_run(m, true, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    int32_t a = -1, b = -1; /* siblings a < b, a's value read by a node between them */
    for (int32_t i = 0; i < g->n && b < 0; i++)
        for (int32_t j = i + 1; j < g->n && b < 0; j++)
            if (g->node[i].op == IR_kernel && g->node[j].op == IR_kernel &&
                g->node[i].attr.kernel == g->node[j].attr.kernel && g->plan->offset[i] >= 0 && g->plan->offset[j] >= 0)
                for (int32_t r = i + 1; r < j && b < 0; r++)
                    for (int k = 0; k < g->node[r].nin; k++)
                        if (g->node[r].in[k] == i)
                            a = i, b = j;
    cr_assert(b >= 0, "linreg_metric's train step has no such siblings");
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    g->plan->offset[b] = g->plan->offset[a], g->plan->offset_n[b] = g->plan->offset_n[a];
    cr_assert_not(ir_verify(g, err, sizeof err));
    cr_expect(strstr(err, "are alive together and overlap"), "%s", err);
    ir_graph_free(g);
    ir_graph_free(m);
}

/* Adversarial dumps: a cycle, and a shape that lies about what its op computes. */
Test(pipeline, adversarial_dumps_are_rejected)
{
    const struct {
        const char *text, *message;
    } bad[] = {
        {"graph @c {\n  %x: f32[3] = input\n  %0: f32[3] = add %x, %1\n  %1: f32[3] = neg %0\n  return o: %1\n}\n",
         "c.ir:3:24: error: undefined value %1"},
        {"graph @c {\n  %x: f32[N,4] = input\n  %w: f32[4,2] = param zeros\n  %0: f32[N,3] = matmul %x, %w\n"
         "  return o: %0\n}\n",
         "c.ir:4:7: error: declared f32[N,3] but matmul gives f32[N,2]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[512];
        ir_graph *g = ir_parse(bad[i].text, strlen(bad[i].text), "c.ir", err, sizeof err);
        cr_expect_null(g);
        cr_expect_str_eq(err, bad[i].message);
        ir_graph_free(g);
    }
}
