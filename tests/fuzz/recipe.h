/* A random model as the fuzzer holds it: the DSL calls a model file would make, one step a
 * line, so that the same model is built in this process (through the DSL builders, each node
 * stamped with the line of the C file that would build it) and written out as that C file.
 * The generator (generate.c) makes recipes, the shrinker (shrink.c) edits them, and the
 * oracles (oracles.c) judge the graphs they build. */
#ifndef AG_FUZZ_RECIPE_H
#define AG_FUZZ_RECIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "aotgrad.h"
#include "ir.h"

/* One DSL builder each (aotgrad.h); `form` picks among spellings of the same builder. */
typedef enum fz_kind {
    FZ_INPUT,         /* ag_input(g, name, dtype, dims) */
    FZ_PARAM,         /* ag_param(g, name, init, dims) */
    FZ_CONST,         /* ag_const / ag_const_i32 (dtype) */
    FZ_FULL,          /* ag_full(g, value, dims) */
    FZ_EW,            /* op's builder; form 1: ag_scale, ag_detach */
    FZ_CAST,          /* ag_cast(a, dtype) */
    FZ_REDUCE,        /* ag_sum/mean/max[_keepdims](a, axes...) */
    FZ_ARGMAX,        /* ag_argmax(a, axis) */
    FZ_CUMSUM,        /* ag_cumsum(a, axis) */
    FZ_MATMUL,        /* form: 0 ag_matmul, 1 ag_mm, 2 ag_mv, 3 ag_dot */
    FZ_TRANSPOSE,     /* ag_transpose(a[, perm]) */
    FZ_RESHAPE,       /* ag_reshape(a, dims) */
    FZ_FLATTEN,       /* ag_flatten(a) */
    FZ_BROADCAST,     /* ag_broadcast_to(a, dims) */
    FZ_SLICE,         /* ag_slice(a, axis, start, extent) */
    FZ_CONCAT,        /* ag_concat(axis, parts...) */
    FZ_SOFTMAX,       /* ag_softmax / ag_log_softmax (op), axis given or not */
    FZ_ONE_HOT,       /* ag_one_hot(a, classes) */
    FZ_CROSS_ENTROPY, /* ag_cross_entropy(logits, labels) */
    FZ_SQUARED_LOSS,  /* ag_squared_loss(pred, target) */
    FZ_MSE,           /* ag_mse(pred, target) */
    FZ_DROPOUT,       /* ag_dropout(a, p) */
    FZ_NORM,          /* form: 0 ag_norm_l1, 1 ag_norm_l2, 2 ag_norm_fro, 3 ag_norm */
    FZ_REQUIRES_GRAD, /* ag_requires_grad(a) */
    FZ_CORRECT,       /* ag_correct(logits, labels) */
    FZ_CONV2D,        /* ag_conv2d(a, w, .stride_h = .., ..., .groups = .., .bias = arg 2 if given) */
    FZ_POOL2D,        /* ag_max_pool2d / ag_avg_pool2d (op)(a, kernel, .stride_h = .., ...) */
    FZ_KIND_COUNT
} fz_kind;

#define FZ_MAX_ARGS 8
#define FZ_MAX_STEPS 160
#define FZ_MAX_OUTPUTS 8
#define FZ_MAX_GROUPS 3

/* An operand: an earlier step's value, or a plain number (step -1). */
typedef struct fz_arg {
    int step;
    double imm;
} fz_arg;

typedef struct fz_step {
    fz_kind kind;
    ir_op op; /* FZ_EW, FZ_REDUCE, FZ_SOFTMAX */
    int form;
    int nargs;
    fz_arg arg[FZ_MAX_ARGS];
    ag_dtype dtype; /* input, const, cast */
    ag_dims dims;   /* shapes (input, param, full, reshape, broadcast), axes (reduce), perm (transpose) */
    bool keepdims;
    int axis; /* argmax, cumsum, slice, concat, softmax (when axis_given) */
    bool axis_given;
    int64_t start, extent;                      /* slice */
    int classes;                                /* one_hot */
    double value;                               /* const, full; dropout's p */
    ag_init init;                               /* param */
    char name[16];                              /* input, param */
    int kernel;                                 /* pool2d: the window, square */
    int stride[2], pad[2], dilation[2], groups; /* conv2d, pool2d: per axis, h then w */
} fz_step;

typedef struct fz_output {
    char name[16];
    int step;
} fz_output;

typedef struct fz_group {
    char name[16];
    double wd_scale, lr_scale;
    int n;
    int param[FZ_MAX_ARGS]; /* steps */
} fz_group;

typedef struct fz_model {
    char name[32];
    uint64_t seed; /* what made it (written into the C file's comment) */
    int n;
    fz_step step[FZ_MAX_STEPS];
    int nout;
    fz_output out[FZ_MAX_OUTPUTS];
    int loss;             /* step of ag_minimize's loss; -1: none, a forward computation */
    int metric;           /* step, or -1 */
    char metric_name[16]; /* empty: ag_correct's unnamed count */
    int predict;          /* step, or -1 */
    ag_optimizer opt;     /* kind, lr, wd and the kind's others (PyTorch's defaults, some drawn) */
    int64_t batch;
    int ngroups;
    fz_group group[FZ_MAX_GROUPS];
    bool option; /* declares ag_option(g, "variant", "a", "a|b") */
} fz_model;

/* splitmix64: the next of a stream of 64-bit values from *state (the generator's randomness,
 * the oracles' directions, the cases' shares). */
static inline uint64_t fz_mix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Building a model step by step (the generator reads each value's type as it goes). */
typedef struct fz_builder {
    ag_graph *g;
    const char *file;
    ag_val v[FZ_MAX_STEPS];
} fz_builder;
/* Builds step k of m (its operands built already) into b; the value, poisoned when the DSL
 * refused it (the message is then the graph's last error). */
ag_val fz_build_step(fz_builder *b, const fz_model *m, int k);

/* The line of the C file (fz_write_c) on which step k is built. */
int fz_step_line(int k);

/* Builds m through the DSL builders, each node at its line of NAME.c (file: m->name + ".c"
 * unless file is given). NULL with the DSL's errors (one a line) in err when it refuses. */
ir_graph *fz_build(const fz_model *m, const char *file, char *err, size_t len);

/* Writes m as a model file, `void NAME(ag_graph *g)`, which builds the same graph. */
void fz_write_c(const fz_model *m, FILE *f);

/* Whether step k's value is read by a later step or a declaration. */
bool fz_used(const fz_model *m, int k);
/* Drops the steps nothing reads but inputs and params (the model's interface, which the
 * graph keeps unread too), renumbering the rest. */
void fz_prune(fz_model *m);
/* Drops step k, a source nothing reads. */
void fz_drop_source(fz_model *m, int k);

/* ---- the generator (generate.c) ---- */

typedef struct fz_gen_opts {
    /* a model the standalone binary can train: its inputs are the features x f32|u8[N,...]
     * and the targets y (i32[N] class labels or f32[N] / f32[N,T] values), nothing else */
    bool data_shaped;
    bool forward_only; /* no ag_minimize: outputs alone, a forward computation (not data_shaped) */
    int max_nodes;     /* the graph's size at most, roughly (1..40 by default) */
} fz_gen_opts;

/* A random valid model from seed (the same seed, the same model). false with a message when
 * the DSL refused a step the generator took for valid (a bug of one of the two). */
bool fz_generate(uint64_t seed, const fz_gen_opts *o, fz_model *m, char *err, size_t len);

/* ---- the shrinker (shrink.c) ---- */

/* Whether a candidate still fails as the original did. */
typedef bool fz_still_fails(void *ctx, const fz_model *candidate);

/* Shrinks m in place, greedily, to a model that still fails: declarations dropped, steps
 * bypassed (their uses read an operand of the same type) or replaced by an input or a
 * parameter of their type, concat parts dropped, source axes shrunk; what the DSL refuses
 * is not tried. new_inputs false: no mutation adds an input (a data-shaped model stays
 * one). Stops after `budget` candidates tried; returns how many were. */
int fz_shrink(fz_model *m, fz_still_fails *fails, void *ctx, bool new_inputs, int budget);

#endif
