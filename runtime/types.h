/* The vocabulary every layer shares, at the ground floor: what a value's elements are
 * (dtypes), the symbolic batch, how a parameter starts (initializers), where a node was built
 * (source locations). The runtime that generated binaries link, the IR and the public DSL
 * header (aotgrad.h) all build on it; it includes nothing of theirs. */
#ifndef AG_RUNTIME_TYPES_H
#define AG_RUNTIME_TYPES_H

typedef enum ag_dtype {
    AG_F32,  /* 32-bit float */
    AG_I32,  /* 32-bit signed integer (labels, indices) */
    AG_U8,   /* unsigned byte (raw image pixels) */
    AG_BOOL, /* comparison results, stored as one byte 0 or 1 */
    AG_F64,  /* the interpreter's f64 mode stores f32 values as this; never in a graph */
    AG_DTYPE_COUNT
} ag_dtype;

#define AG_N (-1) /* the symbolic batch dimension */
#define AG_MAX_RANK 4

typedef struct ag_loc {
    const char *file;
    int line;
} ag_loc;

typedef enum ag_init_kind {
    AG_INIT_ZEROS,
    AG_INIT_CONSTANT, /* a */
    AG_INIT_NORMAL,   /* mean a, standard deviation b */
    AG_INIT_UNIFORM,  /* in [a, b) */
    AG_INIT_XAVIER,   /* uniform in +-sqrt(6 / (fan_in + fan_out)) */
} ag_init_kind;

typedef struct ag_init {
    ag_init_kind kind;
    double a, b;
} ag_init;

/* What an input is for: what training binds to it (`role=data` in the text IR). Found by
 * its role, never by its name or place. */
typedef enum ag_role {
    AG_ROLE_NONE,   /* the caller binds it */
    AG_ROLE_DATA,   /* a batch of the dataset's features */
    AG_ROLE_LABELS, /* their targets: class labels or values */
    AG_ROLE_LR,     /* the learning rate, a runtime scalar */
    AG_ROLE_WD,     /* the weight decay, a runtime scalar */
    AG_ROLE_STATE,  /* a parameter: the optimizer's state (momentum, moments), not trained */
    /* the split train step of --accumulate and --clip-norm (passes/accumulate.c, apply.c) */
    AG_ROLE_ACCUM,       /* a parameter: a gradient accumulator, P.grad_acc, not checkpointed */
    AG_ROLE_GRAD_WEIGHT, /* what a micro-batch's gradient is weighted by (its rows), a runtime scalar */
    AG_ROLE_GRAD_SCALE,  /* what the accumulated gradient is scaled by (1 / the rows), a runtime scalar */
    AG_ROLE_CLIP_NORM,   /* the largest global gradient norm (+inf: no clipping), a runtime scalar */
    AG_ROLE_SHARE,       /* a rank's rows over the global batch's (1 on one process), a runtime scalar */
    AG_ROLE_COUNT
} ag_role;

#endif
