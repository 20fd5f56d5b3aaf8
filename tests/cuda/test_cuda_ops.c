/* The CUDA backend's kernels run on the CPU (tests/cuda/host_shim.h) against the reference
 * interpreter, as the LLVM backend's tests do: every op's sample program at batches 1, 7,
 * 256 and 1001 within 1e-5 norm-wise (dropout's masks bit for bit), and one train step of
 * every model (loss, metrics, every updated parameter) within 1e-5. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "cuda_host.h"
#include "interp.h"
#include "load.h"
#include "lower.h"
#include "op_samples.h"
#include "passes.h"

/* norm-wise relative error; NaN (or the same infinity) on both sides agree */
static double rel_error(const ir_tensor *a, const char *b, ag_dtype t, bool *bitwise)
{
    double d = 0, s = 0;
    *bitwise = true;
    for (int64_t i = 0, n = ir_tensor_numel(a); i < n; i++) {
        double x = ir_tensor_get(a, i);
        double y = t == AG_F32 ? ((const float *)b)[i] : t == AG_I32 ? ((const int32_t *)b)[i] : ((const uint8_t *)b)[i];
        if (t == AG_F32 && memcmp((const float *)a->data + i, (const float *)b + i, 4) != 0)
            *bitwise = false;
        else if (t != AG_F32 && x != y)
            *bitwise = false;
        if ((isnan(x) && isnan(y)) || (isinf(x) && x == y))
            continue;
        d += (x - y) * (x - y);
        s += isfinite(x) ? x * x : 0;
    }
    return d == 0 ? 0 : sqrt(d) / fmax(sqrt(s), 1e-30);
}

static char *render(const cg_program *p, cg_cuda_plan *plan)
{
    char *text = NULL, err[1024];
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    cr_assert_not_null(f);
    bool ok = cg_cuda_render(f, p, plan, err, sizeof err);
    fclose(f);
    cr_assert(ok, "%s", err);
    return text;
}

/* runs g's program p on the host at batch, from the values bound; checks every output of g */
static void run_and_compare(const char *what, ir_graph *g, const cg_program *p, const char *src,
                            const cg_cuda_plan *plan, int64_t batch, bool training, bool bitwise_dropout)
{
    char err[4096];
    ir_tensor **bound = fe_bind_random(g, batch, 11, false);
    for (int32_t i = 0; i < g->n; i++) /* lr and wd: small, as training uses them */
        if (bound[i] && g->node[i].op == IR_input && g->node[i].shape.rank == 0 && g->node[i].dtype == AG_F32)
            ir_tensor_set(bound[i], 0, strcmp(g->node[i].attr.name, "lr") == 0 ? 0.1 : 0.01);
    size_t arena_bytes = (size_t)(p->arena_bytes.k + p->arena_bytes.n * batch);
    char *arena = calloc(1, arena_bytes + 64), *params = calloc(1, (size_t)p->param_bytes + 64);
    cr_assert(arena && params);
    for (int k = 0; k < p->nparams; k++)
        memcpy(params + p->params[k].offset, bound[p->params[k].node]->data, (size_t)p->params[k].bytes);
    cuda_host_region in[CG_CUDA_MAX_TENSORS];
    cr_assert_leq(p->ninputs, CG_CUDA_MAX_TENSORS);
    for (int k = 0; k < p->ninputs; k++) {
        ir_tensor *t = bound[p->input_node[k]];
        in[k] = (cuda_host_region){t->data, (size_t)ir_tensor_numel(t) * ir_dtype_size(t->dtype)};
    }
    cuda_host_region ar = {arena, arena_bytes}, pr = {params, (size_t)p->param_bytes};
    cr_assert(cuda_host_run(src, plan, batch, 11, 3, ar, pr, in, p->ninputs, NULL, 0, 4, err, sizeof err), "%s: %s",
              what, err);
    ir_tensor outs[64];
    cr_assert_leq(g->nout, 64);
    ir_run run = {.f64 = false, .batch = batch, .seed = 11, .step = 3, .training = training};
    cr_assert(ir_interp(g, &run, (const ir_tensor *const *)bound, outs, err, sizeof err), "%s", err);
    for (int k = 0; k < g->nout; k++) {
        const cg_buffer *b = &p->buffers[p->output_buffer[k]];
        const char *base = b->region == CG_ARENA ? arena : b->region == CG_PARAMS ? params
                                                                                   : (const char *)in[b->index].data;
        bool bitwise;
        double e = rel_error(&outs[k], base + b->offset.k + b->offset.n * batch, b->dtype, &bitwise);
        cr_expect(e <= 1e-5, "%s at batch %lld: output %s differs by %g", what, (long long)batch, g->out[k].name, e);
        if (bitwise_dropout)
            cr_expect(bitwise, "%s at batch %lld: output %s is not the same bits", what, (long long)batch,
                      g->out[k].name);
        ir_tensor_free(&outs[k]);
    }
    free(arena);
    free(params);
    fe_bind_free(g, bound);
}

static void check_op(ir_op op)
{
    char text[8192], err[1024];
    cr_assert(op_sample(op, text, sizeof text), "op %s has no sample in tests/common/op_samples.c", ir_ops[op].name);
    ir_graph *m = ir_parse(text, strlen(text), "sample.ir", err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    ir_graph *g = pass_run(m, false, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s: %s", ir_ops[op].name, err);
    plan_memory(g, 1001);
    cg_program *p = cg_lower(g, true, err, sizeof err);
    cr_assert_not_null(p, "%s: %s", ir_ops[op].name, err);
    cg_cuda_plan plan;
    char *src = render(p, &plan);
    const int64_t batches[] = {1, 7, 256, 1001};
    for (int b = 0; b < 4; b++)
        run_and_compare(ir_ops[op].name, g, p, src, &plan, batches[b], true, op == IR_dropout);
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
    cr_assert_leq(batch, p->max_batch);
    cg_cuda_plan plan;
    char *src = render(p, &plan);
    char what[128];
    snprintf(what, sizeof what, "%s%s%s train step", name, settings ? " " : "", settings ? settings[0] : "");
    /* the classifiers' cross-entropy and its gradient: one pass over each row (pair_ce) */
    if (g->train && g->train->nclasses > 0)
        cr_expect(strstr(src, "softmax_ce with its gradient") && strstr(src, "the gradient of softmax_ce step"),
                  "%s: the cross-entropy and its gradient are not paired", what);
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
    char *src = render(p, &plan);
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
