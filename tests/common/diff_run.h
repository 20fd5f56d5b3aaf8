/* One differential run of a lowered program against the reference interpreter, the memory
 * both sides share: how the CUDA tests bind inputs and parameters, lay out the program's
 * regions, and compare every graph output (tests/cuda/test_cuda_ops.c on the host shim,
 * tests/cuda/gpu_diff.c on a GPU); the comparison also serves the LLVM backend's tests. */
#ifndef AG_TESTS_DIFF_RUN_H
#define AG_TESTS_DIFF_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda_host.h"
#include "interp.h"
#include "kernel.h"

#define DIFF_SEED 11 /* the inputs', parameters' and dropout's seed */
#define DIFF_STEP 3  /* dropout's step */

typedef struct diff_run {
    const ir_graph *g;
    const cg_program *p;
    int64_t batch;
    ir_tensor **bound;                            /* per node: the input and parameter values (fe_bind_random) */
    cuda_host_region arena, params;               /* the arena zeroed, the parameters from bound */
    cuda_host_region inputs[CG_CUDA_MAX_TENSORS]; /* bound's input tensors themselves */
    int ninputs;
} diff_run;

/* Random inputs and parameters for g at batch (fe_bind_random, DIFF_SEED; the scalar f32
 * inputs lr 0.1 and wd 0.01, as training uses them), the parameter region filled from them,
 * a zeroed arena of p's size at batch. false with a message (too many inputs, out of
 * memory); free with diff_run_free either way. */
bool diff_run_init(diff_run *r, const ir_graph *g, const cg_program *p, int64_t batch, char *err, size_t len);
void diff_run_free(diff_run *r);

/* The interpreter's outputs for the bound values (f32, DIFF_SEED, DIFF_STEP, training as
 * given) into outs[0..g->nout); free each with ir_tensor_free. */
bool diff_interp(const diff_run *r, bool training, ir_tensor *outs, char *err, size_t len);

/* Graph output k after the program ran on r's regions against the interpreter's `want`:
 * the norm-wise relative error (NaN, or the same infinity, on both sides agree), and in
 * *bitwise whether every element has the same bits. */
double diff_output_error(const diff_run *r, int k, const ir_tensor *want, bool *bitwise);

/* The same comparison of `want` with the values at got (its numel of dtype t: f32, i32 or
 * u8), for tests that lay out their own memory; bitwise may be NULL. */
double diff_rel_error(const ir_tensor *want, const void *got, ag_dtype t, bool *bitwise);

#endif
