/* The LLVM backend's code: a cg_program (codegen/kernel.h) as LLVM IR, built with the C API.
 *
 * cg_emit_module builds one module holding the program's entry point
 *     void NAME(const cg_args *a)      (external, C ABI; NAME is p->name)
 * which runs p's steps in order, splitting loops over a->pool's threads when it is not NULL:
 *   CG_LOOP  an internal function NAME.loopK(buffers..., N) called from the entry: a nest of
 *            counted loops over the extents, inbounds GEPs, the scalar body built from the op
 *            table's scalar forms (ir/ops.h, the S_ macros defined as builder calls), stores
 *            converting to the buffer's dtype. A reduction first fills its targets with 0 or
 *            -inf, then accumulates in index order (sum: out += v; max: NaN wins).
 *            The only calls in a loop body are math intrinsics (llvm.exp, llvm.log, ...).
 *            Threads: a loop whose axis 0 is not reduced, whose stores move with axis 0 and
 *            whose other accesses in a store's region either touch the same bytes at the same
 *            indices (in place) or miss the store's bytes for every N up to CG_MAX_N,
 *            becomes NAME.loopK(buffers..., N, begin, end) over rows [begin, end) of axis 0,
 *            with a trampoline NAME.loopK.chunk(ctx, begin, end) (an rt_range_fn; ctx holds
 *            the buffer pointers and N). With a pool and at least 16384 elements the entry
 *            calls rt_parallel_for(pool, rows, grain, chunk, ctx), grain = ceil(8192 / the
 *            other extents' product) rows; otherwise (no pool, or a small loop) it calls
 *            NAME.loopK(..., 0, rows) itself. The chunks depend on N alone and every element
 *            is computed by one thread in the single-threaded order, so the results are the
 *            same bits for every thread count. Loops reducing axis 0 stay single-threaded.
 *   CG_GEMM  cblas_sgemm(101, ta ? 112 : 111, tb ? 112 : 111, M, N, K, alpha, A, lda, B,
 *            ldb, beta, C, ldc), lda = ta ? M : K, ldb = tb ? K : N, ldc = N, skipped when
 *            M, N or K is 0; alpha and beta from the step's scalar expressions.
 *   CG_CALL  the runtime routine of runtime/rt_ops.h for call.op.
 * sgemm and the runtime routines run on the calling thread, between parallel loops (OpenBLAS
 * threads itself; the pool's workers sleep between jobs, see runtime/pool.h).
 *
 * Values follow the interpreter (ir/interp.c) in f32 mode: an op whose operands and result
 * are all f32 computes in float, any other in double, and each result is converted to its
 * dtype as ir_tensor_set does (float to integer truncates and saturates, NaN gives 0; bool is
 * v != 0). So elementwise code gives the interpreter's bits.
 *
 * Aliasing: buffers in different regions (the arena, the parameters, each caller tensor) are
 * taken to be separate memory, as the memory plan and the generated header lay them out.
 * Inside one region, a loop's buffer pointer is noalias when the bytes it touches provably
 * (for every N >= 1) miss those of every other buffer of the loop that either one writes.
 * A buffer read and written at the same index (an in-place update) needs nothing.
 *
 * The module gets t's triple and data layout (cg_target_prepare); the caller optimizes it
 * (cg_optimize) and emits or JITs it. On error returns NULL with a message in err. */
#ifndef AG_CODEGEN_LLVM_EMIT_H
#define AG_CODEGEN_LLVM_EMIT_H

#include <stddef.h>

#include <llvm-c/Core.h>

#include "kernel.h"
#include "target.h"

LLVMModuleRef cg_emit_module(const cg_program *p, LLVMContextRef ctx, cg_target *t, char *err, size_t len);

/* The LLVM struct type of cg_args in ctx: { ptr, ptr, ptr, ptr, i64, i32, i64, ptr }, laid
 * out as C lays out cg_args on x86-64 (tests compare the offsets). */
LLVMTypeRef cg_args_type(LLVMContextRef ctx);

#endif
