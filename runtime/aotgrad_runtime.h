/* The runtime's public calls for a C program that links a model's object and header (aotgrad
 * build MODEL.c -o OUT --emit obj,h): its parameters' initial values, and OpenBLAS's kernels.
 * Installed as <aotgrad/aotgrad_runtime.h>, with <aotgrad/pool.h> for threads (ag_args.pool);
 * the link line is `pkg-config --cflags --libs --static aotgrad`, or the CMake package's
 * aotgrad::runtime (docs/binary.md). */
#ifndef AOTGRAD_RUNTIME_H
#define AOTGRAD_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X(type, name, what) for each field of ag_param_info, in order: the generated header prints
 * the same struct from this list (codegen/header.c), a table of them and NAME_init. */
#define AG_PARAM_INFO_FIELDS(X)                                                                 \
    X(const char *, name, "the model's name for it")                                            \
    X(int64_t, offset, "bytes into the parameter region; f32, row major")                       \
    X(int, rank, "0 to 4")                                                                      \
    X(int64_t, dims[4], "its shape; fan in dims[0], fan out dims[1] (a vector: dims[0] twice)") \
    X(int, init, "0 zeros, 1 constant a, 2 normal (mean a, std b), 3 uniform [a, b), 4 xavier") \
    X(double, a, "the initializer's first number")                                              \
    X(double, b, "its second")                                                                  \
    X(int, state, "1: the optimizer's state (P.exp_avg, P.momentum_buffer, ...), zero at the start")

#define AG_PARAM_INFO_FIELD_(type, name, what) type name;

#ifndef AG_PARAM_INFO_DEFINED /* the generated header defines it too, from this list */
#define AG_PARAM_INFO_DEFINED
/* A parameter of a model: where it lies and how it starts (init: an ag_init_kind of types.h). */
typedef struct ag_param_info {
    AG_PARAM_INFO_FIELDS(AG_PARAM_INFO_FIELD_)
} ag_param_info;
#endif

/* Fills the count parameters of p in the region params with their initializers for a seed,
 * exactly as a standalone binary's --seed does (and aotgrad run's): parameter k draws Philox
 * stream (seed, k + 1). The generated header's NAME_init(params, seed) calls it with the
 * model's table. Allocates nothing. */
void ag_init_params(char *params, const ag_param_info *p, int count, uint32_t seed);

/* ---- OpenBLAS's kernels ----
 * OpenBLAS picks its kernels by the CPU's model number when it loads, and on a CPU it does not
 * know (Debian's 0.3.21 on Sapphire Rapids) takes its oldest x86-64 ones: sgemm at a third of
 * the speed. Only OPENBLAS_CORETYPE, set before the program starts, changes that. */

/* OpenBLAS's name for the kernels it runs ("SkylakeX", "Haswell", "Prescott", ...); NULL when
 * the program does not link OpenBLAS. */
const char *ag_blas_kernels(void);

/* Whether OpenBLAS runs the best kernels this CPU has. False where it chose older ones, with
 * what to do in advice (a line without a newline, cut to len): set OPENBLAS_CORETYPE to the
 * kernels named there before the program starts, or call ag_blas_pick_kernels first in main.
 * True otherwise (advice ""), also where it cannot tell (not x86-64, no OpenBLAS). */
bool ag_blas_tuned(char *advice, size_t len);

/* Call first thing in main, with main's argv: where ag_blas_tuned is false and
 * OPENBLAS_CORETYPE is unset, runs the program again (execv of its own path with argv, so
 * nothing done before survives) with OPENBLAS_CORETYPE set to SkylakeX (AVX-512) or Haswell
 * (AVX2, FMA); returns where there is nothing to do, the variable is set (by the user, or by
 * the first run), or the exec failed. The standalone binaries call it. */
void ag_blas_pick_kernels(char **argv);

#endif
