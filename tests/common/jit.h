/* Running a lowered program through the LLVM JIT, as aotgrad build compiles it. */
#ifndef AG_TESTS_JIT_H
#define AG_TESTS_JIT_H

#include "kernel.h"

/* Emits p for this CPU, optimizes it with O3, JITs it and calls its entry point on args;
 * fails the test on any error. */
void jit_run(const cg_program *p, const cg_args *args);

/* The same compiled once and called many times (a training loop), then freed */
typedef struct jit_entry jit_entry;
jit_entry *jit_compile(const cg_program *p);
void jit_call(const jit_entry *j, const cg_args *args);
void jit_free(jit_entry *j);

#endif
