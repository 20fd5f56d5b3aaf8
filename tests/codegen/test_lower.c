/* Lowering and the LLVM backend: every model's train step and eval graph, lowered to the
 * kernel IR and run with the C executor, and compiled by LLVM and run through the JIT, give
 * the interpreter's outputs (f32 mode) within 1e-5 norm-wise: loss, metrics, predictions and
 * every updated parameter; the dropout model's masks are the same bits, or its parameters
 * would not agree. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "diff_run.h"
#include "interp.h"
#include "jit.h"
#include "load.h"
#include "lower.h"
#include "passes.h"

typedef enum runner { C_EXEC, LLVM_JIT } runner;

static void check(const char *model, bool train, int64_t batch, runner r)
{
    char path[512], err[1024];
    snprintf(path, sizeof path, AG_SOURCE_DIR "/%s%s.c", strchr(model, '/') ? "" : "models/", model);
    ir_graph *m = fe_load(path, getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(m);
    ir_graph *g = pass_run(m, train, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cg_program *p = cg_lower(g, train, err, sizeof err);
    cr_assert_not_null(p, "%s: %s", model, err);

    ir_tensor **bound = fe_bind_random(g, batch, 9, false);
    for (int32_t i = 0; i < g->n; i++)
        if (bound[i] && g->node[i].op == IR_input && g->node[i].shape.rank == 0)
            ir_tensor_set(bound[i], 0, strcmp(g->node[i].attr.name, "lr") == 0 ? 0.1 : 0.01);
    /* the program's memory, parameters copied in, inputs pointed at */
    int64_t arena = rt_arena_bytes(p->arena, p->narena, batch);
    char *mem = calloc(1, (size_t)arena + 64), *params = calloc(1, (size_t)p->param_bytes + 64);
    for (int k = 0; k < p->nparams; k++)
        memcpy(params + p->params[k].offset, bound[p->params[k].node]->data, (size_t)p->params[k].bytes);
    void *inputs[16];
    for (int k = 0; k < p->ninputs; k++)
        inputs[k] = bound[p->input_node[k]]->data;
    ir_tensor outs[32];
    ir_run run = {.f64 = false, .batch = batch, .seed = 4, .step = 2, .training = train};
    cr_assert(ir_interp(g, &run, (const ir_tensor *const *)bound, outs, err, sizeof err), "%s", err);
    cg_args args = {mem, params, inputs, NULL, batch, 4, 2, NULL, NULL, 0, NULL};
    if (!train) { /* the eval graph runs with dropout off: the program has no dropout step then */
        for (int i = 0; i < p->nsteps; i++)
            cr_assert(p->steps[i].kind != CG_CALL || p->steps[i].call.op != IR_dropout);
    }
    if (r == C_EXEC)
        cg_exec(p, &args);
    else
        jit_run(p, &args);
    for (int k = 0; k < g->nout; k++) {
        const cg_buffer *b = &p->buffers[p->output_buffer[k]];
        cr_assert(b->region == CG_ARENA || b->region == CG_PARAMS, "output %s is not in the arena", g->out[k].name);
        const char *base = b->region == CG_ARENA ? mem : params;
        double e = diff_rel_error(&outs[k], base + b->offset.k + b->offset.n * batch, b->dtype, NULL);
        cr_expect(e <= 1e-5, "%s %s %s, batch %lld: output %s differs by %g", r == C_EXEC ? "C" : "LLVM", model,
                  train ? "train" : "eval", (long long)batch, g->out[k].name, e);
        ir_tensor_free(&outs[k]);
    }
    free(mem);
    free(params);
    fe_bind_free(g, bound);
    cg_program_free(p);
    ir_graph_free(g);
    ir_graph_free(m);
}

/* Every model's step and eval graph at batches 1, 7, 256 and (through LLVM) 4096: one memory
 * plan, laid out at the declared batch (10 for linreg, 5 for weight_decay, 256 for the
 * others), serves batches below and past it. */
static void every_model(runner r)
{
    const char *models[] = {"linreg", "softmax", "mlp", "mlp_dropout", "weight_decay", "mlp_adam", "lenet"};
    static const int64_t batches[] = {1, 7, 256, 4096};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++)
        for (int train = 1; train >= 0; train--)
            /* LeNet's convolutions at batches 1, 7 and 11 (chunks of 1 and 2 samples): its
             * larger batches cost the suite a minute under ASan and test nothing more */
            for (int b = 0; b < (i == 6 ? 3 : r == LLVM_JIT ? 4 : 3); b++)
                check(models[i], train, i == 6 && b == 2 ? 11 : batches[b], r);
}

Test(lower, every_model_runs_as_the_interpreter) { every_model(C_EXEC); }

/* A kernel's outputs are all written where its body runs, at its first node: a value read
 * after that must not share bytes with a later sibling (the plan put a gradient over the
 * squared errors the loss and metric still had to read: the binary printed a loss of
 * -0.13 for 2.81). */
Test(lower, a_kernel_s_outputs_live_from_its_first_node)
{
    for (int64_t batch = 1; batch <= 10; batch += 9) {
        check("tests/data/models/linreg_metric", true, batch, C_EXEC);
        check("tests/data/models/linreg_metric", true, batch, LLVM_JIT);
    }
}

Test(llvm, every_model_s_step_through_generated_code) { every_model(LLVM_JIT); }

/* A model's train step, lowered: the program, with its graphs to free (lowered_free) */
typedef struct lowered {
    ir_graph *m, *g;
    cg_program *p;
} lowered;

static lowered lower_model(const char *model)
{
    char path[512], err[1024];
    snprintf(path, sizeof path, AG_SOURCE_DIR "/models/%s.c", model);
    lowered w = {fe_load(path, getenv("AOTGRAD_INCLUDE"), NULL), NULL, NULL};
    cr_assert_not_null(w.m);
    w.g = pass_run(w.m, true, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(w.g, "%s", err);
    w.p = cg_lower(w.g, true, err, sizeof err);
    cr_assert_not_null(w.p, "%s", err);
    return w;
}

static void lowered_free(lowered *w)
{
    cg_program_free(w->p);
    ir_graph_free(w->g);
    ir_graph_free(w->m);
}

/* The MLP step's weight updates are sgemm's alpha and beta over W itself. */
Test(lower, sgd_rides_on_the_weight_gradient)
{
    lowered w = lower_model("mlp");
    const cg_program *p = w.p;
    int gemms = 0, into_params = 0, loops = 0, calls = 0;
    for (int i = 0; i < p->nsteps; i++) {
        const cg_step *s = &p->steps[i];
        gemms += s->kind == CG_GEMM;
        into_params += s->kind == CG_GEMM && p->buffers[s->gemm.c.buffer].region == CG_PARAMS;
        loops += s->kind == CG_LOOP;
        calls += s->kind == CG_CALL;
    }
    cr_log_info("mlp train step: %d gemms (%d in place into parameters), %d loops, %d calls", gemms, into_params, loops,
                calls);
    cr_expect_eq(gemms, 5);
    cr_expect_eq(into_params, 2, "W1 and W2 updated by sgemm in place");
    lowered_free(&w);
}

/* Adam's update of each parameter is one loop over it (moments, bias corrections read as
 * scalars computed before it, the parameter): the bias corrections, once built after L2's
 * d = g + wd*P (wd a runtime scalar: always built), split W1's update into a loop storing d
 * and a second one reading it (88 + 144 us a step of mlp_adam bench; one loop: 50 us). */
Test(lower, adam_updates_each_parameter_in_one_loop)
{
    lowered w = lower_model("mlp_adam");
    const cg_program *p = w.p;
    static const int64_t shapes[][2] = {{784, 256}, {256, 0}, {256, 10}, {10, 0}};
    for (int k = 0; k < 4; k++) {
        int loops = 0;
        for (int i = 0; i < p->nsteps; i++) {
            const cg_loop *l = &p->steps[i].loop;
            int rank = shapes[k][1] ? 2 : 1;
            if (p->steps[i].kind != CG_LOOP || l->rank != rank || l->reduce)
                continue;
            bool same = true;
            for (int d = 0; d < rank; d++)
                same &= l->extent[d].n == 0 && l->extent[d].k == shapes[k][d];
            loops += same;
        }
        cr_expect_eq(loops, 1, "%lld x %lld: %d loops", (long long)shapes[k][0], (long long)shapes[k][1], loops);
    }
    lowered_free(&w);
}

/* LeNet's weight gradients' calls write the bias gradients that the updates after them
 * read: the sum over [N,6,28,28] of the first convolution's dy had been a single-threaded
 * loop of 0.93 ms a step (single-threaded LeNet step 21.7 -> 20.8 ms with it in the call). */
Test(lower, lenet_s_weight_gradients_bring_the_bias_gradients)
{
    lowered w = lower_model("lenet");
    const cg_program *p = w.p;
    int dws = 0, db_read = 0, batch_sums = 0;
    for (int i = 0; i < p->nsteps; i++) {
        const cg_loop *l = &p->steps[i].loop;
        /* a loop summing over the batch and a plane: a convolution's bias gradient */
        batch_sums += p->steps[i].kind == CG_LOOP && (l->reduce & 1) && l->rank >= 3;
        const cg_call *c = &p->steps[i].call;
        if (p->steps[i].kind != CG_CALL || c->op != IR_conv2d_weight_grad)
            continue;
        dws++;
        cr_assert_eq(c->nargs, 5);
        bool read = false;
        for (int j = i + 1; j < p->nsteps; j++)
            for (int k = 0; p->steps[j].kind == CG_LOOP && k < p->steps[j].loop.nloads; k++)
                read |= p->steps[j].loop.load[k].buffer == c->arg[4].buffer;
        db_read += read;
    }
    cr_expect_eq(dws, 2);
    cr_expect_eq(db_read, 2, "%d of the 2 weight gradients' bias gradients are read", db_read);
    cr_expect_eq(batch_sums, 0, "%d loops still sum a convolution's dy", batch_sums);
    lowered_free(&w);
}

/* A loop walks the axes after the first that every access walks as one as a single axis:
 * LeNet's sigmoid after the first convolution runs over [N,6,784] (the bias broadcast along
 * the 6), not [N,6,28,28], whose inner 28 LLVM vectorized 4 wide (1.6 ms of the
 * single-threaded step; 0.6 over 784), and its gradient's loop over [N,4704]. */
Test(lower, loops_walk_contiguous_axes_as_one)
{
    lowered w = lower_model("lenet");
    const cg_program *p = w.p;
    int plane = 0, rows = 0, short_inner = 0;
    for (int i = 0; i < p->nsteps; i++) {
        const cg_loop *l = &p->steps[i].loop;
        if (p->steps[i].kind != CG_LOOP || l->rank < 2 || l->extent[0].n != 1)
            continue;
        cg_dim in = l->extent[l->rank - 1];
        plane += l->rank == 3 && l->extent[1].k == 6 && in.k == 784;
        rows += l->rank == 2 && in.k == 6 * 784;
        short_inner += l->rank >= 3 && in.n == 0 && (in.k == 28 || in.k == 14 || in.k == 10 || in.k == 5);
    }
    cr_expect_geq(plane, 1, "no loop over [N,6,784]");
    cr_expect_geq(rows, 1, "no loop over [N,4704]");
    cr_expect_eq(short_inner, 0, "%d loops over the batch walk a row of an image as their inner axis", short_inner);
    lowered_free(&w);
}

/* A distributed build's MLP with small buckets (b2, W2 and b1; then W1): bucket 0's sum starts
 * right after b1's gradient, before W1's gradient sgemm, and is waited on only by the first
 * update reading it; bucket 1 starts after W1's gradient. Each covers its gradients as one
 * range: 11328 bytes (b2 padded to 64, W2, b1), and W1's 802816. No update rides on sgemm;
 * the gradients' product with rank_share does, as alpha. */
Test(lower, bucket_sums_start_when_complete_and_wait_for_their_readers)
{
    char path[512], err[1024];
    snprintf(path, sizeof path, AG_SOURCE_DIR "/models/mlp.c");
    ir_graph *m = fe_load(path, getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(m);
    m->train->bucket_bytes = 10485;
    ir_graph *g = pass_run(m, true, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cg_program *p = cg_lower(g, true, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    int start[2] = {-1, -1}, wait[2] = {-1, -1}, w1_grad = -1, last_gemm = -1;
    for (int i = 0; i < p->nsteps; i++) {
        const cg_step *s = &p->steps[i];
        if (s->kind == CG_GEMM) {
            cr_expect_neq(p->buffers[s->gemm.c.buffer].region, CG_PARAMS, "step %d: an update rides on sgemm", i);
            last_gemm = i;
            if (s->gemm.m.k == 784 && s->gemm.n.k == 256)
                w1_grad = i;
        }
        if (s->kind != CG_CALL || s->call.op != IR_allreduce)
            continue;
        int b = s->call.bucket;
        cr_assert(b == 0 || b == 1, "bucket %d", b);
        cr_expect_eq(s->call.rows.k, b ? 200704 : 2832, "bucket %d sums %lld floats", b, (long long)s->call.rows.k);
        *(s->call.wait ? &wait[b] : &start[b]) = i;
    }
    cr_assert(start[0] >= 0 && start[1] >= 0 && wait[0] >= 0 && wait[1] >= 0);
    cr_expect_eq(w1_grad, last_gemm, "W1's gradient is the last sgemm");
    /* its product with rank_share is sgemm's alpha, not a loop over the gradient after it */
    cr_expect_eq(p->steps[w1_grad].gemm.nloads, 1, "alpha loads rank_share");
    cr_expect(p->steps[w1_grad + 1].kind != CG_LOOP || p->steps[w1_grad + 1].node != p->steps[w1_grad].node,
              "a loop over W1's gradient follows its sgemm");
    cr_expect(start[0] < w1_grad && w1_grad < start[1] && start[1] < wait[1],
              "bucket 0 starts at %d, W1's gradient at %d, bucket 1 starts at %d and is waited on at %d", start[0],
              w1_grad, start[1], wait[1]);
    cr_expect(wait[0] > w1_grad, "bucket 0 is waited on at %d, before W1's gradient (%d): no overlap", wait[0],
              w1_grad);
    cg_program_free(p);
    ir_graph_free(g);
    ir_graph_free(m);
}
