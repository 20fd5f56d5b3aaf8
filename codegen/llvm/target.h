/* The LLVM backend's plumbing: a target machine for this host, the O3 pipeline, emission of
 * object/assembly/IR files, and an ORC LLJIT for tests. Everything above it (kernels, entry
 * points) builds an LLVMModuleRef and hands it here. LLVM 19, C API only.
 *
 * Errors: every function that can fail takes (err, len) and, on failure, writes LLVM's own
 * message there as text (truncated to len) and returns false or NULL; nothing aborts. */
#ifndef AG_CODEGEN_LLVM_TARGET_H
#define AG_CODEGEN_LLVM_TARGET_H

#include <stdbool.h>
#include <stddef.h>

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

/* A target machine for this host: its triple, CPU name and feature string, PIC, O3 codegen.
 * The native target is initialized on first use (once per process, thread-safe). */
typedef struct cg_target cg_target;
cg_target *cg_target_host(char *err, size_t len);
void cg_target_free(cg_target *t);

const char *cg_target_triple(const cg_target *t);   /* "x86_64-pc-linux-gnu" */
const char *cg_target_cpu(const cg_target *t);      /* "skylake-avx512" */
const char *cg_target_features(const cg_target *t); /* "+avx2,+fma,-avx512fp16,..." */
/* true when the feature string enables name, e.g. cg_target_has(t, "avx2") */
bool cg_target_has(const cg_target *t, const char *name);
LLVMTargetMachineRef cg_target_machine(const cg_target *t); /* owned by t */

/* Sets the module's triple and data layout for t. Do it before optimizing. */
void cg_target_prepare(cg_target *t, LLVMModuleRef m);

/* Verifies the module (LLVMVerifyModule), then runs the new pass manager's default<O3>
 * pipeline with t's target machine, loop and SLP vectorization on. Floating-point
 * contraction (fmul+fadd into FMA) happens only where an instruction carries the
 * `contract` fast-math flag: plain fmul/fadd round twice, as the interpreter does. */
bool cg_optimize(cg_target *t, LLVMModuleRef m, char *err, size_t len);

/* Write the module as an object file, assembly text (.s) or LLVM IR text (.ll). The object
 * and assembly are generated from a copy, so m is left as it was (LLVM's codegen passes
 * rewrite the IR they run on) and can be emitted again or handed to the JIT. */
bool cg_emit_object(cg_target *t, LLVMModuleRef m, const char *path, char *err, size_t len);
bool cg_emit_assembly(cg_target *t, LLVMModuleRef m, const char *path, char *err, size_t len);
bool cg_emit_ir(LLVMModuleRef m, const char *path, char *err, size_t len);

/* An ORC LLJIT for tests, compiling for the same host CPU, features and O3 as cg_target.
 * The process's own symbols resolve from JIT'd code (cblas_sgemm, libm, runtime functions
 * of an executable linked with ENABLE_EXPORTS).
 *
 * Modules for the JIT must be created in its context (one thread-safe context per JIT):
 *     LLVMModuleRef m = LLVMModuleCreateWithNameInContext("k", cg_jit_context(j));
 *     ... build, cg_target_prepare, cg_optimize ...
 *     cg_jit_add(j, m, err, len);          // m now belongs to the JIT, even on failure
 *     void (*f)(float *) = (void (*)(float *))cg_jit_lookup(j, "f", err, len);
 * The context lives as long as the JIT; do not dispose it. */
typedef struct cg_jit cg_jit;
cg_jit *cg_jit_new(char *err, size_t len);
LLVMContextRef cg_jit_context(cg_jit *j);
/* Verifies m and adds it to the JIT's main library; takes ownership of m either way. */
bool cg_jit_add(cg_jit *j, LLVMModuleRef m, char *err, size_t len);
/* The address of a defined or process symbol (compiling its module on first lookup);
 * NULL with the message when it is missing. */
void *cg_jit_lookup(cg_jit *j, const char *name, char *err, size_t len);
void cg_jit_free(cg_jit *j);

#endif
