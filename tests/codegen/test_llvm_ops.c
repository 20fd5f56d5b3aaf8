/* The op table walk through the LLVM backend: every op's sample graph (the same ones the
 * IR's walk uses) goes through the pipeline, is lowered and compiled, and its outputs from
 * the generated code match the interpreter's f32 mode within 1e-5 norm-wise, on random data
 * at batches 1, 7, 256 and 1001. A new op without a sample, or one the backend cannot
 * compile, fails here. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "diff_run.h"
#include "interp.h"
#include "jit.h"
#include "lower.h"
#include "op_samples.h"
#include "passes.h"

#define MAX_BATCH 1001

static void check_op(ir_op op)
{
    char text[8192], err[1024];
    cr_assert(op_sample(op, text, sizeof text), "op %s has no sample in tests/common/op_samples.c", ir_ops[op].name);
    ir_graph *m = ir_parse(text, strlen(text), "sample.ir", err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    ir_graph *g = pass_run(m, false, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s: %s", ir_ops[op].name, err);
    plan_memory(g, MAX_BATCH); /* the samples declare no batch: plan for the largest run */
    cg_program *p = cg_lower(g, true, err, sizeof err);
    cr_assert_not_null(p, "%s cannot be lowered: %s", ir_ops[op].name, err);
    for (int64_t batch = 1; batch <= MAX_BATCH; batch = batch == 1     ? 7
                                                        : batch == 7   ? 256
                                                        : batch == 256 ? MAX_BATCH
                                                                       : 2 * MAX_BATCH) {
        ir_tensor **bound = fe_bind_random(g, batch, 11, false);
        char *arena = calloc(1, (size_t)rt_arena_bytes(p->arena, p->narena, batch) + 64);
        char *params = calloc(1, (size_t)p->param_bytes + 64);
        for (int k = 0; k < p->nparams; k++)
            memcpy(params + p->params[k].offset, bound[p->params[k].node]->data, (size_t)p->params[k].bytes);
        void *inputs[16];
        for (int k = 0; k < p->ninputs; k++)
            inputs[k] = bound[p->input_node[k]]->data;
        cg_args args = {arena, params, inputs, NULL, batch, 11, 3, NULL, NULL, 0, NULL};
        jit_run(p, &args);
        ir_tensor outs[16];
        ir_run run = {.f64 = false, .batch = batch, .seed = 11, .step = 3, .training = true};
        cr_assert(ir_interp(g, &run, (const ir_tensor *const *)bound, outs, err, sizeof err), "%s", err);
        for (int k = 0; k < g->nout; k++) {
            const cg_buffer *b = &p->buffers[p->output_buffer[k]];
            const char *base = b->region == CG_ARENA    ? arena
                               : b->region == CG_PARAMS ? params
                                                        : (const char *)inputs[b->index];
            double e = diff_rel_error(&outs[k], base + b->offset.k + b->offset.n * batch, b->dtype, NULL);
            cr_expect(e <= 1e-5, "%s at batch %lld: output %s differs by %g", ir_ops[op].name, (long long)batch,
                      g->out[k].name, e);
            ir_tensor_free(&outs[k]);
        }
        free(arena);
        free(params);
        fe_bind_free(g, bound);
    }
    cg_program_free(p);
    ir_graph_free(g);
    ir_graph_free(m);
}

Test(llvm_ops, every_op_through_generated_code)
{
    for (int op = 0; op < IR_OP_COUNT; op++)
        check_op((ir_op)op);
}
