/* The C source of a standalone binary's tables and main (aotgrad build without --emit). */
#ifndef AG_CODEGEN_MODEL_SOURCE_H
#define AG_CODEGEN_MODEL_SOURCE_H

#include <stdbool.h>
#include <stdio.h>

#include "kernel.h"
#include "render.h"

/* What --target cuda adds to a binary: the NVRTC output and the launch plans of both
 * programs. */
typedef struct cg_cuda_build {
    const char *arch;
    const unsigned char *cubin;
    size_t cubin_len;
    const char *ptx;
    const cg_cuda_plan *train, *forward;
} cg_cuda_build;

/* The split train step's programs (--accumulate, --clip-norm), lowered with the train
 * step's parameters and the accumulators after them, and their graphs. */
typedef struct cg_split {
    const cg_program *accumulate; /* NULL: none, for the reason below */
    const ir_graph *accumulate_g;
    const cg_program *apply;
    const ir_graph *apply_g;
    const char *none; /* why the model has none, which the binary says ("" where it has it) */
} cg_split;

/* Writes the source for the programs of a model's train step and forward pass, lowered
 * from the graphs beside them; false with a message when the model cannot make a binary
 * (updates not in place, more inputs than features and targets). train and step NULL: a
 * graph without training, the forward pass alone (its binary: predict and bench). split:
 * the split step, or NULL for a graph without training. cuda: NULL for a CPU-only binary.
 * dist: a distributed build's rt_dist table (runtime/dist.h: "rt_dist_mpi", "rt_dist_nccl"),
 * or NULL. */
bool cg_write_model_source(FILE *f, const char *source, const cg_program *train, const ir_graph *step,
                           const cg_program *forward, const ir_graph *eval, const cg_split *split,
                           const cg_cuda_build *cuda, const char *dist, char *err, size_t len);

#endif
