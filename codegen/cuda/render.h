/* The CUDA backend's code for a cg_program: the same kernel IR the LLVM backend builds,
 * rendered as CUDA C (one `extern "C" __global__` kernel per step, but a matmul and its
 * epilogue loop share one, and so does a row of steps that each need one block), plus the launch plan
 * the host follows. NVRTC compiles the source (codegen/cuda/nvrtc.h); the tests also run it
 * on the CPU through a host shim (tests/cuda/).
 *
 * Every kernel takes one argument, ag_dev_args, by value (its definition is at the top of
 * the source): the device addresses of the arena, the parameters, the caller's tensors and
 * the split-K matmuls' scratch, the batch N, and dropout's seed and step. A kernel finds its buffers as codegen/exec.c
 * does (region base + offset affine in N). Each kernel loops over its work units with a
 * grid stride, so any grid of at least one block computes the whole step: the plan's grid
 * is a size for speed, not for correctness. Blocks have CG_CUDA_BLOCK threads. */
#ifndef AG_CODEGEN_CUDA_RENDER_H
#define AG_CODEGEN_CUDA_RENDER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kernel.h"

#define CG_CUDA_BLOCK 256     /* threads per block, every kernel */
#define CG_CUDA_MAX_TENSORS 8 /* caller tensors (inputs, outputs) an ag_dev_args holds */

/* One launch: kernel `name`, grid = ceil(units(N) / units_per_block) blocks (at least 1; a
 * host may cap it), units(N) = units[0] + units[1] N + units[2] N^2. It computes program
 * steps first_step .. first_step + steps - 1 (two: a matmul with its epilogue loop; more:
 * merged). */
typedef struct cg_cuda_launch {
    char name[128];
    double units[3];
    double units_per_block;
    int first_step, steps;
    bool merged; /* one block running steps that each need one or are small (render.c, mark_merges) */
    /* Not a kernel: a distributed build's bucket of gradients summed over the ranks by NCCL
     * (the runtime's, on a stream of its own), started (1) once the backward pass has
     * computed it, or waited for (2) before its first reader; 0: a kernel. The bucket is
     * `count` floats at byte `offset` of the arena (a one-process run skips both). */
    int collective;
    int32_t bucket;
    cg_dim offset, count;
} cg_cuda_launch;

/* A matmul with few tiles splits K over several blocks (render_gemm.c): they
 * meet in ag_dev_args.scratch, whose first CG_CUDA_COUNTERS unsigned ints are counters
 * that must be zero when the scratch is first used (the kernels leave them zero). */
#define CG_CUDA_COUNTERS 1024

typedef struct cg_cuda_plan {
    int nsteps;
    cg_cuda_launch *step;  /* the launches, in order: every program step in one of them */
    int64_t scratch_bytes; /* of ag_dev_args.scratch, the same at any batch; 0: none */
} cg_cuda_plan;

/* Writes the CUDA C source of p to f and fills plan (free with cg_cuda_plan_free); false
 * with a message naming the step when a step cannot be rendered. */
bool cg_cuda_render(FILE *f, const cg_program *p, cg_cuda_plan *plan, char *err, size_t len);
void cg_cuda_plan_free(cg_cuda_plan *plan);

/* The device runtime's own kernels (after a program's source, whose prelude they need):
 * ag_gather (a batch's rows from the dataset on the device, in an order), ag_step_lr (the
 * step's lr from the epoch's table, --lr-schedule) and ag_step_end (loss and metric sums,
 * the first non-finite step, the step counter), over the
 * ag_dev_state the runtime keeps on the device (runtime/cuda.c mirrors its layout). */
bool cg_cuda_render_support(FILE *f);

/* The blocks of a launch at batch N. */
int64_t cg_cuda_blocks(const cg_cuda_launch *l, int64_t N);

#endif
