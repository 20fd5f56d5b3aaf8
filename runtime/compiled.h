/* A compiled model as a standalone binary sees it: the generated entry points and the
 * tables `aotgrad build` writes beside them (codegen/model_source.c), read by the binary's
 * commands (runtime/binary.c). Self-contained: the generated source includes only this. */
#ifndef AG_RUNTIME_COMPILED_H
#define AG_RUNTIME_COMPILED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "args.h"  /* ag_args: what the entry points take */
#include "types.h" /* ag_dtype, ag_init, ag_role */

/* The CUDA side of a binary built with --target cpu,cuda (codegen/cuda/render.c's kernels,
 * compiled by NVRTC at build time): the kernels of each entry point in order, each launched
 * with ceil(units(N) / per_block) blocks of 256 threads, units(N) = units[0] + units[1] N +
 * units[2] N^2, computing the entry's steps first_step .. first_step + steps - 1 (a matmul
 * and its epilogue loop are one kernel, and so is a row of one-block steps: merged). */
typedef struct rt_cuda_launch {
    const char *name;
    double units[3], per_block;
    int first_step, steps;
    bool merged; /* steps that each need one block, run in one (else one step, or a matmul and its epilogue) */
    /* not a kernel: a bucket's sum over the ranks (NCCL) started (1) or waited for (2); 0: a
     * kernel. The bucket is count[0] + count[1] N floats at byte offset[0] + offset[1] N of
     * the arena (codegen/cuda/render.h) */
    int collective, bucket;
    int64_t offset[2], count[2];
} rt_cuda_launch;

typedef struct rt_cuda_image {
    const char *arch;           /* the cubin's, e.g. sm_90 */
    const unsigned char *cubin; /* for arch */
    size_t cubin_len;
    const char *ptx; /* for newer GPUs: the driver compiles it */
    int ntrain, nforward;
    const rt_cuda_launch *train, *forward;
    size_t scratch_bytes; /* the kernels' scratch (split-K matmuls), the larger entry's */
} rt_cuda_image;

typedef void rt_entry_fn(const ag_args *a);

typedef struct rt_compiled_param {
    const char *name;
    int rank;
    int64_t dims[4];
    int64_t offset; /* bytes into the parameter region */
    ag_init init;
    /* -1: the train step updates it in place; else bytes into the train arena where its
     * update lies at batch N, next_offset + next_offset_n * N (the old value is read after
     * the update, e.g. as an output), copied over the parameter after each step */
    int64_t next_offset, next_offset_n;
    bool state; /* the optimizer's state (role=state: P.exp_avg, ...), not a trained parameter */
} rt_compiled_param;

static inline int64_t rt_param_numel(const rt_compiled_param *p)
{
    int64_t n = 1;
    for (int k = 0; k < p->rank; k++)
        n *= p->dims[k];
    return n;
}

/* An input of an entry point: what the binary binds to it. */

typedef struct rt_compiled_value {
    const char *name;
    ag_dtype dtype;
    int64_t offset;   /* bytes into the arena (or the parameters, in_params) at batch N: */
    int64_t offset_n; /* offset + offset_n * N */
    bool in_params;
    int64_t numel; /* elements per sample for batched values (rank >= 1), else all */
    bool batched;
} rt_compiled_value;

/* One step of an entry point, for `bench`'s table: what it is and the work it does at
 * batch N, bytes + bytes_n * N (read + written) and flops + flops_n * N (matmuls; 0
 * otherwise). */
typedef struct rt_compiled_step {
    const char *name; /* the kernel's name in the fused IR and the generated code: k3, k3_2 */
    const char *kind; /* "loop", "gemm", or the runtime routine's op ("softmax_ce", ...) */
    const char *what; /* the graph node it computes, as text */
    double bytes, bytes_n, flops, flops_n;
} rt_compiled_step;

/* The arena of an entry point at batch N: the largest of k + n * N over its pieces, rounded
 * up to 64 bytes. */
typedef struct rt_arena_piece {
    int64_t k, n;
} rt_arena_piece;

/* After a call: an update the entry point left in the arena, copied over its parameter
 * (bytes at from + from_n * N in the arena to `to` in the parameter region). */
typedef struct rt_compiled_copy {
    int64_t to, from, from_n, bytes;
} rt_compiled_copy;

typedef struct rt_compiled_entry {
    rt_entry_fn *fn;
    int narena;
    rt_arena_piece arena[8];
    int ninputs;
    ag_role inputs[8]; /* what each input is (types.h): the binary binds it by that */
    ag_dtype x_dtype, y_dtype;
    rt_compiled_value loss, predict; /* predict.name NULL when none */
    int nmetrics;
    rt_compiled_value metrics[8];
    int nsteps;
    const rt_compiled_step *steps;
    rt_compiled_value in[8]; /* each input: name, dtype, elements per sample (batched: [N, ...]) */
    int nouts;               /* a forward computation's: every output, in order (else 0) */
    const rt_compiled_value *outs;
    int ncopies; /* the split step's: its updates not in place (the train step's are in params) */
    const rt_compiled_copy *copies;
} rt_compiled_entry;

typedef struct rt_compiled {
    const char *name, *source;
    int64_t plan_batch, param_bytes; /* the batch the memory plan was laid out for (it holds for any);
                                      * the parameter region's bytes, accumulators included */
    int nparams;
    const rt_compiled_param *params;
    rt_compiled_entry train, forward;
    /* the model's declared defaults */
    int64_t batch, epochs;
    double lr, wd;
    const char *data;
    int64_t features, targets; /* per sample */
    int classes;               /* 0: regression */
    int nclass_names;
    const char *const *class_names;
    const rt_cuda_image *cuda; /* NULL: built for the CPU only */
    bool trains;               /* false: a forward computation (no ag_minimize): train is empty, and so are the
                  * training defaults; its commands are predict and bench */
    const char *options;       /* the model's options as built (--set): "act=relu", comma-separated; "" none */
    /* The split train step of --accumulate and --clip-norm (fn NULL: none, as for a dumped
     * train step): accumulate adds a micro-batch's gradients into the accumulators, apply
     * updates from them; the accumulators lie at accum_offset, accum_bytes of the parameter
     * region (param_bytes counts them), which the binary zeroes after each apply. */
    rt_compiled_entry accumulate, apply;
    int64_t accum_offset, accum_bytes;
    const char *no_split; /* why the binary has no split step ("" where it has it) */
    /* data-parallel training (aotgrad build --distributed mpi: runtime/dist.h's table, in
     * libaotgrad_mpi.a), or NULL: one process */
    const struct rt_dist_ops *dist;
} rt_compiled;

/* An arena at batch n from its pieces (an entry point's, or the compiler's program's); -1
 * past 2^62 bytes. */
static inline int64_t rt_arena_bytes(const rt_arena_piece *piece, int npieces, int64_t n)
{
    int64_t most = 0;
    for (int k = 0; k < npieces; k++) {
        int64_t at;
        if (__builtin_mul_overflow(piece[k].n, n, &at) || __builtin_add_overflow(at, piece[k].k, &at) ||
            at > ((int64_t)1 << 62))
            return -1;
        most = at > most ? at : most;
    }
    return (most + 63) / 64 * 64;
}

/* Where a value lies at batch n, in bytes from its region's start. */
static inline int64_t rt_value_offset(const rt_compiled_value *v, int64_t n) { return v->offset + v->offset_n * n; }

/* The binary's main: `NAME train|eval|predict|bench ...`. */
int rt_binary_main(const rt_compiled *m, int argc, char **argv);

/* Called by generated code after each step when ag_args.profile is set (step -1: the entry
 * point starts). */
void rt_profile_mark(void *profile, int32_t step);

#endif
