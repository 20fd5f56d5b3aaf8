/* Running a rendered CUDA program (codegen/cuda/render.h) on the CPU, for the tests of the
 * CUDA backend on machines without a GPU. The kernels run through tests/cuda/host_shim.h:
 * each block's threads as fibers, blocks one after another (see there what is supported). */
#ifndef AG_TESTS_CUDA_HOST_H
#define AG_TESTS_CUDA_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda/render.h"

/* Memory a kernel sees: `bytes` at `data` (NULL when bytes is 0). */
typedef struct cuda_host_region {
    void *data;
    size_t bytes;
} cuda_host_region;

/* Runs a rendered CUDA program on the CPU: writes `source` and a generated main (C++) into a
 * temporary folder, compiles them with g++ (-O1 -std=c++17 -ffp-contract=off, plus
 * $AOTGRAD_LINK_FLAGS, the sanitizers of the test build, so the kernels are checked by ASan
 * and UBSan too) against tests/cuda/ (found through $AOTGRAD_SOURCE_DIR, else AG_SOURCE_DIR),
 * and runs it on the memory given: each region is copied into an allocation of its own size,
 * the plan's steps are launched in order, step i with min(cuda_host_blocks(step i, batch),
 * max_blocks) blocks (max_blocks 0: no cap) of CG_CUDA_BLOCK threads and ag_dev_args
 * {arena, params, inputs, outputs, N = batch, seed, step}, and every region (inputs too) is
 * copied back. At most CG_CUDA_MAX_TENSORS inputs and outputs. Returns false with a message
 * and the compiler's or the program's output (its first ~2000 characters) in err; the
 * regions are then unchanged, or partly written back. The folder is removed. A process
 * compiles each source and plan once (its kernels take N at run time and any grid computes
 * all of it) and keeps the program in a cache folder removed at exit. */
bool cuda_host_run(const char *source, const cg_cuda_plan *plan, int64_t batch, uint32_t seed, uint64_t step,
                   cuda_host_region arena, cuda_host_region params, const cuda_host_region *inputs, int ninputs,
                   const cuda_host_region *outputs, int noutputs, unsigned max_blocks, char *err, size_t len);

/* The blocks of a launch at batch N: ceil(units(N) / units_per_block), at least 1 (the
 * formula of render.h, kept here so the harness needs no backend). */
int64_t cuda_host_blocks(const cg_cuda_launch *l, int64_t N);

#endif
