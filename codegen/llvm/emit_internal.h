/* What the files of the LLVM emitter share (emit.h is the outside's view):
 *   emit.c        failures, types and conversions, the op table's builders (exp, log and
 *                 tanh in float as arithmetic), expressions, affine values, elements in
 *                 memory;
 *   emit_loop.c   CG_LOOP steps: loop nests, reductions, the proofs that buffers miss each
 *                 other (noalias, threads), streaming loops, chunks on the pool's threads;
 *   emit_entry.c  the entry point: buffer addresses, sgemm, the runtime routines, profile
 *                 marks, and cg_emit_module.
 * Names here carry em_: they link into aotgrad beside the CUDA backend's. */
#ifndef AG_CODEGEN_LLVM_EMIT_INTERNAL_H
#define AG_CODEGEN_LLVM_EMIT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llvm-c/Core.h>
#include <llvm-c/DebugInfo.h>

#include "emit.h"
#include "fail.h"

/* ---- the emitter's state ---- */

typedef struct em {
    LLVMContextRef c;
    LLVMModuleRef m;
    LLVMBuilderRef b;
    LLVMTypeRef f32, f64, i1, i8, i32, i64, ptr, vd;
    LLVMTypeRef T; /* the compute type of the op being built: f32 or f64 (vectors of them when W > 1) */
    unsigned W;    /* values are vectors of W lanes (the streaming loops' body) or scalars (1) */
    const cg_program *p;
    char *err;
    size_t len;
    bool failed;
    /* debug line information (emit_debug.c), where the program has a model file */
    LLVMDIBuilderRef di;
    LLVMMetadataRef difile, disig, entry_scope;
} em;

/* ---- emit_debug.c ---- */

/* A compile unit for p->file and the entry point's subprogram (nothing without a file). */
void em_debug_begin(em *E, LLVMValueRef entry_fn);
/* fn's subprogram at a model line; NULL without debug information */
LLVMMetadataRef em_debug_function(em *E, LLVMValueRef fn, int line);
/* the builder's instructions from here at line in scope (none when scope is NULL) */
void em_debug_at(em *E, LLVMMetadataRef scope, int line);
void em_debug_end(em *E);

/* ---- emit.c ---- */

/* the first failure's message into E->err (rt_fail); later ones are dropped */
#define em_fail(E, ...) ((void)((E)->failed || ((E)->failed = true, rt_fail((E)->err, (E)->len, __VA_ARGS__))))
const char *em_op_name(ir_op op);

LLVMTypeRef em_mem_type(em *E, ag_dtype t);
int64_t em_mem_size(ag_dtype t);
bool em_is_fp(ag_dtype t);
LLVMValueRef em_intrinsic(em *E, const char *name, LLVMTypeRef *over, int nover, LLVMValueRef *args, int nargs);
LLVMValueRef em_convert(em *E, LLVMValueRef v, ag_dtype from, ag_dtype to);
LLVMValueRef em_constant(em *E, double v, ag_dtype t);

/* Where an expression's inputs come from: loads (built by the caller) and loop indices. */
typedef struct body {
    const cg_expr *expr;
    int nexprs;
    LLVMValueRef *val;  /* per expression */
    LLVMValueRef *load; /* per load: the loaded element, in its buffer's dtype */
    ag_dtype *load_dtype;
    LLVMValueRef *index; /* per axis, i64; NULL where none */
    int rank;
} body;

bool em_eval_exprs(em *E, body *B);

LLVMValueRef em_affine(em *E, cg_dim d, LLVMValueRef N);
LLVMValueRef em_gep(em *E, LLVMTypeRef t, LLVMValueRef base, LLVMValueRef off);
LLVMValueRef em_load_elem(em *E, ag_dtype t, LLVMValueRef addr);
LLVMValueRef em_store_elem(em *E, ag_dtype t, LLVMValueRef v, LLVMValueRef addr);
bool em_check_access(em *E, const cg_access *a, const char *what, int k);
LLVMValueRef em_declare(em *E, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n, LLVMTypeRef *ft);

/* ---- emit_loop.c ---- */

/* Loop step `step` as its function NAME.loopK, called from the entry where the builder
 * stands: addr(E, buffer, actx) gives a buffer's address there; pool, when not null at run
 * time, runs a splittable loop in chunks. */
LLVMValueRef em_emit_loop(em *E, const cg_loop *l, int step, LLVMValueRef (*addr)(em *, int32_t, void *), void *actx,
                          LLVMValueRef N, LLVMValueRef pool);

#endif
