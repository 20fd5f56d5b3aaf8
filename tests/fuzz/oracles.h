/* The oracles the fuzzer judges a model by (tests/fuzz/oracles.c). Each names what it
 * compares; a model the interpreter finds near a discontinuity, or not finite, is not
 * judged (redraw): a tolerance failure is then a bug, never a tie. */
#ifndef AG_FUZZ_ORACLES_H
#define AG_FUZZ_ORACLES_H

#include <stdbool.h>
#include <stddef.h>

#include "interp.h"
#include "recipe.h"

typedef enum fz_outcome {
    FZ_PASS,
    FZ_FAIL,
    FZ_REDRAW, /* a value near a discontinuity of its consumer, or not finite */
} fz_outcome;

typedef struct fz_check_opts {
    bool jit;            /* the LLVM code through the JIT, at 1 and 2 threads */
    bool cuda;           /* the CUDA C through the host shim (a g++ build: seconds) */
    bool binary;         /* a standalone binary's one training step (data-shaped models) */
    const char *workdir; /* where the binary's files go (made, then emptied) */
    const char *aotgrad; /* the aotgrad program that builds it */
} fz_check_opts;

typedef struct fz_result {
    fz_outcome outcome;
    char oracle[24]; /* what failed: dsl, text, pass, interp, autodiff, llvm, threads, cuda, binary */
    char message[4096];
} fz_result;

/* Every oracle on m:
 *   dsl       the model builds;
 *   text      the model and every stage of both pipelines print, parse back, verify and
 *             print the same;
 *   pass      every pass succeeds and its output verifies;
 *   interp    the f64 interpreter gives each output's value (norm-wise 1e-10) on the model
 *             and after every pass, train step (P.grad, P.next) included, at batches 1, 7, 64;
 *   autodiff  every gradient agrees with central finite differences in f64 along a random
 *             direction: |fd - ad| <= 1e-6 * max(|fd|, |ad|, 1);
 *   llvm      the train step's and the eval graph's code through the JIT agree with the f32
 *             interpreter norm-wise within 1e-5 at batches 1, 7, 64, from one memory plan
 *             (laid out at 64; at 7 for half the train steps, at 1 for forward
 *             computations: past the plan's batch too); threads: the same bits
 *             at 1 and 2 threads;
 *   cuda      the train step's CUDA C through the host shim agrees within 1e-5 + 2e, e the
 *             f32 interpreter's own error against the f64 one (it sums in another order;
 *             e below 1e-3, else 0) (o->cuda);
 *   binary    `aotgrad build` of its .ir trains one step as `aotgrad run` does: the loss as
 *             printed within 2e-4 (it has 4 decimals) and the parameters norm-wise within
 *             1e-5 (o->binary, data-shaped models only); a forward computation's binary
 *             (built at --batch 64) predicts from CSV inputs what the f32 interpreter
 *             computes, norm-wise within 1e-5.
 * "norm-wise t": ||a - b|| <= t * max(||b||, 1) over each output. A model without training
 * (no ag_minimize: a forward computation) has no train step: its eval pipeline, its eval
 * graph's LLVM code, (o->cuda) CUDA C and (o->binary) its binary's predict are judged; no
 * autodiff. */
void fz_check(const fz_model *m, const fz_check_opts *o, fz_result *r);
/* The same on a model built otherwise (a model file, a .ir): the binary oracle binds its
 * inputs by role (data, labels). */
void fz_check_graph(const ir_graph *model, const fz_check_opts *o, fz_result *r);

/* Removes a folder and everything in it (nftw, not a shell: any name is fine). */
void fz_remove_tree(const char *path);

/* ||a - b|| / max(||b||, 1), NaNs and equal infinities agreeing, over n values. */
double fz_norm_err(const ir_tensor *a, const ir_tensor *b);

#endif
