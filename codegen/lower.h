/* Lowering a planned, fused graph to the kernel IR, and running the kernel IR with plain C
 * loops (the reference the generated backends are compared with). */
#ifndef AG_CODEGEN_LOWER_H
#define AG_CODEGEN_LOWER_H

#include <stddef.h>

#include "kernel.h"

/* g after the whole pipeline (it needs g->plan); training: dropout on (the train step),
 * else dropout is the identity (evaluation). NULL with a message on failure. */
cg_program *cg_lower(const ir_graph *g, bool training, char *err, size_t len);
/* The same with the parameters where `layout` (another program of the same model, e.g. the
 * train step for the forward pass) puts them, so that both share one parameter region
 * whichever parameters each reads and in whatever order its graph has them. Gradient
 * accumulators (role=accum) the layout lacks go after its parameters, so the split step's
 * programs (accumulate, apply) extend the train step's region with them. */
cg_program *cg_lower_like(const ir_graph *g, bool training, const cg_program *layout, char *err, size_t len);
void cg_program_free(cg_program *p);
/* The program as a listing: its buffers, then each step (codegen/kernel_print.c). */
void cg_print_program(FILE *f, const cg_program *p);

/* Runs p with plain C loops (codegen/exec.c): the kernel IR's meaning, step by step. */
void cg_exec(const cg_program *p, const cg_args *a);

#endif
