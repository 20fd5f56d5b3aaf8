/* The CUDA backend's kernels run on the CPU (tests/cuda/host_shim.h) against the reference
 * interpreter, as the LLVM backend's tests do: every op's sample program at batches 1, 7,
 * 256 and 1001 within 1e-5 norm-wise (dropout's masks bit for bit), and one train step of
 * every model (loss, metrics, every updated parameter) within 1e-5, its matmul epilogues
 * inside the matmul kernels. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_host.h"
#include "cuda_source.h"
#include "diff_run.h"
#include "interp.h"
#include "load.h"
#include "lower.h"
#include "op_samples.h"
#include "passes.h"

/* runs g's program p on the host at batch, from the values bound; checks every output of g */
static void run_and_compare(const char *what, ir_graph *g, const cg_program *p, const char *src,
                            const cg_cuda_plan *plan, int64_t batch, bool training, bool bitwise_dropout)
{
    char err[4096];
    diff_run r;
    cr_assert(diff_run_init(&r, g, p, batch, err, sizeof err), "%s: %s", what, err);
    cr_assert(cuda_host_run(src, plan, batch, DIFF_SEED, DIFF_STEP, r.arena, r.params, r.inputs, r.ninputs, NULL, 0, 4,
                            err, sizeof err),
              "%s: %s", what, err);
    ir_tensor outs[64];
    cr_assert_leq(g->nout, 64);
    cr_assert(diff_interp(&r, training, outs, err, sizeof err), "%s", err);
    for (int k = 0; k < g->nout; k++) {
        bool bitwise;
        double e = diff_output_error(&r, k, &outs[k], &bitwise);
        cr_expect(e <= 1e-5, "%s at batch %lld: output %s differs by %g", what, (long long)batch, g->out[k].name, e);
        if (bitwise_dropout)
            cr_expect(bitwise, "%s at batch %lld: output %s is not the same bits", what, (long long)batch,
                      g->out[k].name);
        ir_tensor_free(&outs[k]);
    }
    diff_run_free(&r);
}

/* the graph of text through the host shim at each of the batches */
static void check_text(const char *what, const char *text, const int64_t *batches, int nbatches, bool bitwise)
{
    char err[1024];
    ir_graph *m = ir_parse(text, strlen(text), "sample.ir", err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    ir_graph *g = pass_run(m, false, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s: %s", what, err);
    plan_memory(g, 1001);
    cg_program *p = cg_lower(g, true, err, sizeof err);
    cr_assert_not_null(p, "%s: %s", what, err);
    cg_cuda_plan plan;
    char *src = cuda_source(p, &plan, err, sizeof err);
    cr_assert_not_null(src, "%s", err);
    for (int b = 0; b < nbatches; b++)
        run_and_compare(what, g, p, src, &plan, batches[b], true, bitwise);
    free(src);
    cg_cuda_plan_free(&plan);
    cg_program_free(p);
    ir_graph_free(g);
    ir_graph_free(m);
}

static void check_op(ir_op op)
{
    char text[8192];
    cr_assert(op_sample(op, text, sizeof text), "op %s has no sample in tests/common/op_samples.c", ir_ops[op].name);
    const int64_t batches[] = {1, 7, 256, 1001};
    check_text(ir_ops[op].name, text, batches, 4, op == IR_dropout);
}

/* conv2d's implicit GEMM in its other tilings (the op sample has 3 channels a group and 12
 * taps: 16-channel tiles, one step of K): 40 channels (64-channel tiles) over 27 taps, and
 * 24 a group of 2 (32-channel tiles) over 18 taps at stride 2, with padding */
Test(cuda_ops, conv2d_in_every_tiling)
{
    static const char *texts[] = {
        "graph @t {\n  %a: f32[N,3,9,8] = input\n  %w: f32[40,3,3,3] = param normal(0, 1)\n"
        "  %0: f32[N,40,9,8] = conv2d %a, %w kernel=[3,3] stride=[1,1] pad=[1,1] dilation=[1,1] groups=1\n"
        "  return o: %0\n}\n",
        "graph @t {\n  %a: f32[N,4,6,6] = input\n  %w: f32[48,2,3,3] = param normal(0, 1)\n"
        "  %0: f32[N,48,3,3] = conv2d %a, %w kernel=[3,3] stride=[2,2] pad=[1,1] dilation=[1,1] groups=2\n"
        "  return o: %0\n}\n",
    };
    const int64_t batches[] = {1, 7, 33};
    for (int k = 0; k < 2; k++)
        check_text(k ? "conv2d, 2 groups of 24" : "conv2d, 40 channels", texts[k], batches, 3, false);
}

/* The collective is no kernel: two entries of the launch plan, the bucket's sum started and
 * waited for, with where the bucket is and its floats, for the runtime's NCCL (issue 20) */
Test(cuda_ops, allreduce_is_the_plans_start_and_wait_of_its_bucket)
{
    char text[8192], err[1024];
    cr_assert(op_sample(IR_allreduce, text, sizeof text));
    ir_graph *m = ir_parse(text, strlen(text), "sample.ir", err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    ir_graph *g = pass_run(m, false, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cg_program *p = cg_lower(g, true, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    cg_cuda_plan plan;
    char *src = cuda_source(p, &plan, err, sizeof err);
    cr_assert_not_null(src, "%s", err);
    int starts = 0, waits = 0, start = -1, wait = -1;
    for (int k = 0; k < plan.nsteps; k++) {
        const cg_cuda_launch *l = &plan.step[k];
        if (!l->collective)
            continue;
        cr_expect_eq(l->bucket, 0, "%s: the program's first bucket", l->name);
        cr_expect(l->count.k == 6 && l->count.n == 0, "%s: %lld floats", l->name, (long long)l->count.k);
        char kernel[200];
        snprintf(kernel, sizeof kernel, "%s(ag_dev_args", l->name);
        cr_expect(!l->merged && !strstr(src, kernel), "%s is not a kernel", l->name);
        if (l->collective == 1)
            starts++, start = k;
        else
            waits++, wait = k;
    }
    cr_expect(starts == 1 && waits == 1 && start < wait, "%d starts, %d waits", starts, waits);
    cr_expect(start >= 0 && wait >= 0 && plan.step[start].offset.k == plan.step[wait].offset.k);
    cr_expect(strstr(src, "allreduce_bucket0_start: bucket 0's sum over the ranks started (NCCL, the runtime's)"), "%s",
              src);
    free(src);
    cg_cuda_plan_free(&plan);
    cg_program_free(p);
    ir_graph_free(g);
    ir_graph_free(m);
}

/* The ops in two halves, so the suite's two jobs share the work. */
Test(cuda_ops, first_half_of_the_ops)
{
    for (int op = 0; op < IR_OP_COUNT / 2; op++)
        check_op((ir_op)op);
}

Test(cuda_ops, second_half_of_the_ops)
{
    for (int op = IR_OP_COUNT / 2; op < IR_OP_COUNT; op++)
        check_op((ir_op)op);
}

static void model_step(const char *name, const char *const *settings, int64_t batch)
{
    char path[512], err[1024];
    snprintf(path, sizeof path, AG_SOURCE_DIR "/models/%s.c", name);
    ir_graph *m = fe_load(path, getenv("AOTGRAD_INCLUDE"), settings);
    cr_assert_not_null(m);
    ir_graph *g = pass_run(m, true, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cg_program *p = cg_lower(g, true, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    cg_cuda_plan plan;
    char *src = cuda_source(p, &plan, err, sizeof err);
    cr_assert_not_null(src, "%s", err);
    char what[128];
    snprintf(what, sizeof what, "%s%s%s train step", name, settings ? " " : "", settings ? settings[0] : "");
    /* the classifiers' cross-entropy and its gradient: one pass over each row (pair_ce) */
    if (g->train && g->train->nclasses > 0)
        cr_expect(strstr(src, "softmax_ce with its gradient") && strstr(src, "the gradient of softmax_ce step"),
                  "%s: the cross-entropy and its gradient are not paired", what);
    /* every model's first layer adds a bias to a matmul: one kernel (render_gemm.c, "matmul epilogues") */
    cr_expect(strstr(src, "then the next step's loop on each element"), "%s: no matmul epilogue in the matmul kernel",
              what);
    run_and_compare(what, g, p, src, &plan, batch, true, false);
    free(src);
    cg_cuda_plan_free(&plan);
    cg_program_free(p);
    ir_graph_free(g);
    ir_graph_free(m);
}

Test(cuda_ops, every_model_train_step)
{
    const char *tanh_[] = {"act=tanh", NULL};
    model_step("mlp", NULL, 256);
    model_step("mlp", tanh_, 7);
    model_step("softmax", NULL, 256);
    model_step("mlp_dropout", NULL, 256);
    model_step("linreg", NULL, 10);
    model_step("weight_decay", NULL, 5);
    model_step("mlp_adam", NULL, 256); /* the optimizer's state and its one-loop update */
    model_step("lenet", NULL, 3);      /* convolutions, their epilogues, pooling (max pooling: the op samples) */
}

/* 4 elements a thread (16-byte accesses): contiguous f32, u8 and bool operands, a column
 * broadcast along the last axis, a row broadcast, and two outputs, at batches 1, 7, 256. */
Test(cuda_ops, vector_accesses_4_at_a_time)
{
    const char *text = "graph @vec4 {\n"
                       "  %x: f32[N,8] = input\n  %u: u8[N,8] = input\n  %c: f32[N,1] = input\n  %b: f32[8] = input\n"
                       "  %0: f32[N,8] = mul %x, %c\n  %1: f32[N,8] = add %0, %b\n  %2: f32[N,8] = cast %u\n"
                       "  %3: f32[N,8] = add %1, %2\n  %4: bool[N,8] = gt %3, %x\n"
                       "  return y: %3, m: %4\n}\n";
    char err[1024];
    ir_graph *m = ir_parse(text, strlen(text), "vec4.ir", err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    ir_graph *g = pass_run(m, false, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    plan_memory(g, 256);
    cg_program *p = cg_lower(g, true, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    cg_cuda_plan plan;
    char *src = cuda_source(p, &plan, err, sizeof err);
    cr_assert_not_null(src, "%s", err);
    cr_expect(strstr(src, "const ag_v4f w") && strstr(src, "const ag_v4b w") && strstr(src, "*(ag_v4b *)"),
              "the loop does not move 4 elements at a time:\n%s", src);
    const int64_t batches[] = {1, 7, 256};
    for (int k = 0; k < 3; k++)
        run_and_compare("vec4", g, p, src, &plan, batches[k], false, true);
    free(src);
    cg_cuda_plan_free(&plan);
    cg_program_free(p);
    ir_graph_free(g);
    ir_graph_free(m);
}
