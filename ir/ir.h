/* The graph IR: one graph type, nodes in an array named by integer ids.
 *
 * Builders only append, and every operand id is smaller than its user's id, so array order
 * is an evaluation order. Identical pure nodes are merged as they are appended (hash-consing).
 * A graph owns an arena; everything a graph points to lives there and is freed at once.
 * A pass builds a new graph through an old-id -> new-id map rather than editing in place.
 */
#ifndef AG_IR_H
#define AG_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops.h"
#include "types.h"

#define IR_MAX_RANK AG_MAX_RANK
/* The most a batch or an epoch count may be: in the DSL, the text IR and on the command line. */
#define IR_MAX_COUNT ((int64_t)1 << 30)
/* The most bytes one value, or all of a graph's values together, may take at its batch:
 * past any machine, yet 8x below int64's limit, so that sums of checked sizes (parameters,
 * the arena, a planner's offsets) never overflow. */
#define IR_MAX_BYTES ((int64_t)1 << 60)
#define IR_MAX_BYTES_LOG2 60

/* A shape. A dim of AG_N is the symbolic batch; it appears at most once. */
typedef struct ir_shape {
    int rank;
    int64_t dim[IR_MAX_RANK];
} ir_shape;

typedef enum ir_kind {
    IR_K_SOURCE,      /* input, param, const */
    IR_K_ELEMENTWISE, /* one output element from the same element of each (broadcast) operand */
    IR_K_REDUCE,      /* fewer elements: along axes */
    IR_K_SCAN,        /* same shape, running along an axis */
    IR_K_MATMUL,
    IR_K_LAYOUT,     /* moves elements without arithmetic */
    IR_K_ROW,        /* a function of a whole row along an axis (a runtime routine) */
    IR_K_WINDOW,     /* sliding windows over the last two axes: convolutions and pooling */
    IR_K_INDEX,      /* integer labels to values */
    IR_K_RANDOM,     /* reads the step's random stream */
    IR_K_FUSED,      /* one output of a fused group, computed by its body graph */
    IR_K_COLLECTIVE, /* a sum over the ranks of a distributed run, in its operand's buffer */
} ir_kind;

/* Which attributes an op carries (the attrs column of the op table). */
enum {
    A_NAME = 1 << 0,    /* input, param: its name */
    A_INIT = 1 << 1,    /* param: its initializer */
    A_VALUE = 1 << 2,   /* const: its value */
    A_AXES = 1 << 3,    /* reduce: axes bitmask and keepdims */
    A_AXIS = 1 << 4,    /* one axis */
    A_PERM = 1 << 5,    /* transpose: the permutation */
    A_TRANS = 1 << 6,   /* matmul: ta, tb */
    A_P = 1 << 7,       /* dropout: drop probability, in value */
    A_SITE = 1 << 8,    /* dropout: the site number that keys its random stream */
    A_CLASSES = 1 << 9, /* one_hot: the number of classes */
    A_START = 1 << 10,  /* slice: the first index along axis */
    A_GRAD = 1 << 11,   /* input: a gradient is wanted for it (flag `grad`) */
    A_KERNEL = 1 << 12, /* kernel: which body (g->kernels) and which of its outputs */
    A_ROLE = 1 << 13,   /* input: what it is for (role=data, labels, lr, wd) */
    A_WINDOW = 1 << 14, /* conv2d, pooling: kernel, stride, pad, dilation, groups */
    A_BUCKET = 1 << 15, /* allreduce: the bucket (one contiguous range, reduced as one) */
};

/* The dtype rule of an elementwise op (the types column). */
typedef enum ir_types {
    T_FLOAT, /* f32 operands, f32 result */
    T_NUM,   /* operands of one dtype, f32 or i32; the result has it */
    T_CMP,   /* operands of one dtype, f32, i32 or u8; bool result */
    T_WHERE, /* bool, then two operands of one dtype; the result has it */
    T_CAST,  /* any dtype to the result's dtype */
    T_SAME,  /* any dtype, unchanged */
} ir_types;

/* A 2-D window op's geometry, [height, width] each: PyTorch's conv2d and pooling arguments.
 * The output extent along each is (in + 2*pad - dilation*(kernel-1) - 1)/stride + 1. */
typedef struct ir_window {
    int32_t kernel[2], stride[2], pad[2], dilation[2];
    int32_t groups; /* conv2d: channel groups; 1 for pooling */
} ir_window;

typedef struct ir_attrs {
    uint8_t axes;             /* reduce: bit k set = axis k is reduced */
    bool keepdims;            /* reduce: reduced axes stay, with extent 1 */
    int8_t axis;              /* argmax, cumsum, concat, softmax, log_softmax (never negative here) */
    int8_t perm[IR_MAX_RANK]; /* transpose: result axis k is operand axis perm[k] */
    bool ta, tb;              /* matmul: operand a / b is read transposed */
    double value;             /* const: the value (rounded to its dtype); dropout: p */
    int32_t site;             /* dropout */
    int32_t classes;          /* one_hot */
    int32_t bucket;           /* allreduce: its bucket, numbered from 0 in the order they complete */
    int64_t start;            /* slice */
    bool grad;                /* input: wants a gradient */
    ag_role role;             /* input: what training binds to it */
    int32_t kernel, output;   /* kernel: index into the graph's kernels, and of the body's output */
    ag_init init;             /* param */
    ir_window win;            /* conv2d, pooling and their gradients */
    const char *name;         /* input, param (in the graph's arena) */
} ir_attrs;

typedef struct ir_node {
    ir_op op;
    ag_dtype dtype;
    ir_shape shape;
    int32_t nin;
    const int32_t *in; /* operand ids, in the graph's arena */
    ir_attrs attr;
    ag_loc loc; /* where it was built; file in the arena, or NULL */
} ir_node;

typedef struct ir_output {
    const char *name;
    int32_t id;
} ir_output;

/* ---- what a model declares about its training (printed after `return`) ---- */

/* How far down the pipeline a graph is: a model (forward: loss, metrics, predictions),
 * with gradients (outputs NAME.grad), or a whole train step (outputs NAME.next, the updated
 * parameters, and the runtime scalar inputs lr and wd). */
typedef enum ir_stage { IR_STAGE_MODEL, IR_STAGE_GRADIENTS, IR_STAGE_STEP } ir_stage;

/* Parameters updated alike: lr * lr_scale and wd * wd_scale, lr and wd the runtime scalars. */
typedef struct ir_group {
    const char *name;
    double wd_scale, lr_scale;
    int nparams;
    const char **params; /* parameter names (names survive passes; ids do not) */
} ir_group;

/* A named option the command line sets (--set act=tanh), with the value the graph was
 * built with and the values it accepts ("relu|sigmoid|tanh"). */
typedef struct ir_option {
    const char *name, *value, *choices;
} ir_option;

/* The optimizers' hyperparameters beyond lr and wd, as their text keys name them */
enum { IR_HP_MOMENTUM, IR_HP_NESTEROV, IR_HP_BETA1, IR_HP_BETA2, IR_HP_EPS, IR_HP_ALPHA, IR_HP_COUNT };
extern const char *const ir_hp_names[IR_HP_COUNT];

/* The optimizers (ir/optimizers.c), one entry a kind, ended by a NULL name: PyTorch's
 * torch.optim formulas and defaults; the state kept per parameter P, as parameters of
 * role=state named P.STATE (PyTorch's state_dict names), zero at the start. */
typedef struct ir_optimizer_kind {
    const char *name, *doc;
    unsigned keys;     /* bit h: takes ir_hp h (its text line names it) */
    unsigned optional; /* of keys, those the line leaves out at 0 (sgd's momentum) */
    double defaults[IR_HP_COUNT];
    const char *state[4]; /* NULL-ended; sgd's momentum_buffer only with momentum */
} ir_optimizer_kind;
extern const ir_optimizer_kind ir_optimizer_kinds[];
const ir_optimizer_kind *ir_optimizer_find(const char *name); /* or NULL */
const char *ir_optimizer_names(void);                         /* "sgd, adam, ..." for messages */

#define IR_MAX_METRICS 8
#define IR_MAX_CLASSES 256

typedef struct ir_train {
    ir_stage stage;
    const char *loss;                    /* the output minimized, a scalar */
    int nmetrics;                        /* outputs summed over an epoch and divided by */
    const char *metrics[IR_MAX_METRICS]; /* its samples, e.g. correct -> accuracy */
    const char *predict;                 /* the output predictions read, or NULL */
    const char *optimizer;               /* a kind of ir_optimizer_kinds: "sgd", "adam", ... */
    double lr, wd;                       /* defaults of the runtime scalars */
    double hp[IR_HP_COUNT];              /* the kind's other hyperparameters (0 where it takes none) */
    int64_t batch, epochs;               /* defaults */
    int64_t bucket_bytes; /* a distributed build's gradient buckets (passes/distribute.c); 0: one process */
    const char *data;     /* dataset: a name, a path, or a synthetic spec */
    int nclasses;
    const char **classes; /* class names, where the dataset has them */
    int ngroups;
    ir_group *groups;
    int noptions;
    ir_option *options;
} ir_train;

/* Where every value lives while a graph runs, at any batch N (passes/plan_memory.c):
 * parameters in their own region, everything computed in one arena, reused once dead. A
 * value's offset is affine in N, offset + offset_n * N bytes, and values alive together
 * share no byte at any N >= 1; the arena is the largest end at N. */
typedef struct ir_plan {
    int64_t batch;       /* the N it was laid out for (sizes compared there); it holds for any N */
    int64_t arena;       /* bytes at that batch */
    int64_t *offset;     /* per node: its value's offset in the arena, the part fixed in N; -1:
                          none (sources, values inside kernels, in-place updates) */
    int64_t *offset_n;   /* per node: the bytes its offset grows by per row of the batch */
    int32_t *inplace;    /* per node: the parameter whose buffer it overwrites, or -1 */
    const char *file;    /* the text IR it was read from (for errors), or NULL: planned here */
    int32_t *line;       /* with file: per node, the line of its buffer or inplace line, or 0 */
    int32_t memory_line; /* with file: the memory line's */
} ir_plan;

/* Names to ids, by open addressing: the graph's lookups of outputs and sources by name.
 * Each slot keeps the name it was entered with, so that a lookup that meets a slot whose
 * name was since changed in place (as the verifier's tests do) notices and rebuilds the
 * table (a renamed entry off the lookup's probe chain is not noticed: rename through a
 * fresh table); `count` is how many of the
 * graph's outputs (nodes) it has seen, so appends are entered as lookups catch up. */
typedef struct ir_name_slot {
    const char *name; /* NULL: empty */
    int32_t id;
} ir_name_slot;

typedef struct ir_names {
    ir_name_slot *slot;
    int32_t cap, used, count;
} ir_names;

struct ag_graph {
    const char *name;
    ir_node *node;
    int32_t n, cap;
    ir_output *out;
    int32_t nout, outcap;
    int32_t next_site; /* the next dropout site number */
    ir_train *train;   /* what the model declares about its training, or NULL */
    ir_plan *plan;     /* the memory plan, once plan_memory ran (printed after the declarations) */
    /* Fused groups' bodies: graphs whose inputs (in order) take a kernel node's operands
     * and whose outputs the kernel nodes pick from. A body has no params and no kernels. */
    struct ag_graph **kernels;
    const void **kernel_src; /* while copying: the body each one was copied from */
    int32_t nkernels, kernelcap;
    const char *const *settings; /* while building: "name=value" option settings, NULL-ended */
    char **errors;               /* DSL errors, "file:line: error: message" */
    char **notes;                /* per error: the notes explaining it, a line each, or NULL */
    int nerrors, errcap;
    const char *file_src, *file_copy; /* the last source file name interned, and its copy */
    int32_t labels_reported;          /* builders: 1 + the labels value an error named, so that its
                                         other uses (ag_correct beside ag_cross_entropy) stay quiet */
    int32_t *hash;                    /* open addressing over node ids, -1 empty; hashcap a power of 2 */
    int32_t hashcap;
    ir_names out_names;    /* output name -> index into out (ir_find_output) */
    ir_names source_names; /* input and param name -> node id (ir_find_source) */
    struct ir_chunk *arena;
};
typedef struct ag_graph ir_graph;

/* ---- the op table, as data ---- */
typedef struct ir_opinfo {
    const char *name;
    ir_kind kind;
    int arity; /* -1: one or more */
    unsigned attrs;
    ir_types types; /* elementwise only */
    const char *doc;
} ir_opinfo;
extern const ir_opinfo ir_ops[IR_OP_COUNT];
bool ir_op_by_name(const char *name, size_t len, ir_op *op);

/* ---- dtypes and shapes ---- */
const char *ir_dtype_name(ag_dtype t);
bool ir_dtype_by_name(const char *name, size_t len, ag_dtype *t);
size_t ir_dtype_size(ag_dtype t);
bool ir_is_float(ag_dtype t);                                            /* f32 or f64 */
char *ir_shape_str(const ir_shape *s, char *buf, size_t len);            /* "[N,784]" */
char *ir_type_str(ag_dtype t, const ir_shape *s, char *buf, size_t len); /* "f32[N,784]" */
bool ir_shape_eq(const ir_shape *a, const ir_shape *b);
/* Elements with AG_N bound to batch; INT64_MAX if that overflows (a checked graph never does). */
int64_t ir_numel(const ir_shape *s, int64_t batch);
bool ir_has_batch(const ir_shape *s);
/* Checked size arithmetic: *r = a * b (a + b), false instead when int64 would overflow. */
static inline bool ir_mul_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline bool ir_add_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_add_overflow(a, b, r); }
/* The bytes of a t[s] value with AG_N bound to batch, or -1 if more than IR_MAX_BYTES. */
int64_t ir_bytes(ag_dtype t, const ir_shape *s, int64_t batch);

/* A size or offset at any batch: k + n*N bytes (N appears at most once in a shape). */
typedef struct ir_affine {
    int64_t k, n;
} ir_affine;
/* The bytes of a t[s] value as k + n*N (-1 in k or n: more than IR_MAX_BYTES at N = 1). */
ir_affine ir_bytes_affine(ag_dtype t, const ir_shape *s);
/* a(N) <= b(N) for every N >= 1: at N = 1 and as N grows */
static inline bool ir_affine_le(ir_affine a, ir_affine b) { return a.n <= b.n && a.k + a.n <= b.k + b.n; }
static inline ir_affine ir_affine_add(ir_affine a, ir_affine b) { return (ir_affine){a.k + b.k, a.n + b.n}; }
static inline int64_t ir_affine_at(ir_affine a, int64_t batch) { return a.k + a.n * batch; }

/* The arena a plan needs at batch N: its largest end, rounded up to 64 bytes. */
int64_t ir_plan_arena(const ir_graph *g, const ir_plan *p, int64_t batch);
/* The arena as a function of N: the bytes at N are the largest of the pieces k + n*N
 * (rounded up to 64), at most IR_ARENA_PIECES of them (where more ends would matter, one
 * piece above them all stands in for the rest); returns how many. */
#define IR_ARENA_PIECES 8
int ir_plan_arena_pieces(const ir_graph *g, const ir_plan *p, ir_affine *piece);

/* The output extent of a window op along axis (0: height, 1: width) of an input extent in;
 * 0 where the window does not fit. */
int64_t ir_window_extent(int64_t in, const ir_window *w, int axis);

/* ---- building ---- */
ir_graph *ir_graph_new(const char *name);
void ir_graph_free(ir_graph *g);
void *ir_alloc(ir_graph *g, size_t size); /* zeroed, lives as long as g */
const char *ir_strdup(ir_graph *g, const char *s);
const char *ir_strndup(ir_graph *g, const char *s, size_t len);

/* Compute n's dtype and shape from its op, operands and attrs (ir/shape.c). For cast,
 * reshape and broadcast_to, n's dtype or shape on entry is the requested result, checked.
 * On failure returns false with a message such as "matmul: inner dimensions differ:
 * [N,784] x [128,10]" (no location: the caller knows where). */
bool ir_infer(const ir_graph *g, ir_node *n, char *err, size_t len);

/* Append n (already inferred) and return its id; an identical pure node already in the
 * graph is returned instead. n->in is copied into the arena. */
int32_t ir_intern(ir_graph *g, const ir_node *n);
/* ir_infer then ir_intern; -1 with the message on failure. */
int32_t ir_add(ir_graph *g, ir_node *n, char *err, size_t len);
void ir_add_output(ir_graph *g, const char *name, int32_t id);
int32_t ir_find_source(const ir_graph *g, ir_op op, const char *name); /* -1 if none */
int ir_find_output(const ir_graph *g, const char *name);               /* index, -1 if none */

/* A copy of g's declarations into dst's arena (dst->train replaced). */
void ir_copy_train(ir_graph *dst, const ir_graph *g);
/* Copy node `id` of src into dst with its operands renamed through map (old id -> new id),
 * strings moved to dst's arena; returns its id in dst (hash-consed). */
int32_t ir_copy_node(ir_graph *dst, const ir_graph *src, int32_t id, const int32_t *map);
/* The graph keeping only the outputs named in keep (all that exist of them) and the nodes
 * they read, with g's declarations. */
ir_graph *ir_prune(const ir_graph *g, const char *const *keep, int nkeep);
/* A copy of g without the nodes no output reads (dead code). */
ir_graph *ir_clone_live(const ir_graph *g);
/* Adopt body as a kernel of g (g frees it); returns its index. */
int32_t ir_add_kernel(ir_graph *g, ir_graph *body);

/* When each value is alive as the graph runs in node order: from birth[i], the node that
 * computes it (for an output of a fused kernel, the kernel's first node: the body runs once,
 * there, for all its outputs), to last[i], its last reader (g->n for a graph output). The
 * memory planner and the verifier both read lives from here. */
void ir_lifetimes(const ir_graph *g, int32_t *birth, int32_t *last);
/* The first node at or after `from` that reads v, other than the nodes of kernel call `self`
 * (a node's index; -1: none), whose body reads it once with the rest; else g->n if v is a
 * graph output (read after the last node), else -1. */
int32_t ir_read_after(const ir_graph *g, int32_t v, int32_t from, int32_t self);

/* A node with its op and operands set and everything else zero. */
ir_node ir_node_make(ir_op op, int32_t nin, const int32_t *in);

/* ---- text IR (ir/print.c, ir/parse.c) ---- */
#include <stdio.h>
void ir_print(FILE *f, const ir_graph *g);
char *ir_print_str(const ir_graph *g); /* malloc'd */
/* A value as the text IR names it: %name for an input or param, else its printed number
 * (the printer numbers every node but those and the inline f32 and i32 constants). */
const char *ir_value_name(const ir_graph *g, int32_t id, char *buf, size_t len);
/* Parse one graph. On error returns NULL and writes "file:line:col: error: message". */
ir_graph *ir_parse(const char *text, size_t len, const char *filename, char *err, size_t errlen);

/* Graphviz DOT: fused kernels as boxes holding their ops (ir/dot.c). */
void ir_print_dot(FILE *f, const ir_graph *g);

/* The graph declares training (ag_minimize, or a train line with a loss): it has a train
 * step. A graph without is a forward computation; its pipeline is the eval one. */
static inline bool ir_trains(const ir_graph *g) { return g->train && g->train->loss; }

/* The model's options as built (--set): NAME=VALUE, comma-separated, "" for none (t NULL
 * included), as checkpoints record them; returns buf. */
const char *ir_options_text(const ir_train *t, char *buf, size_t len);

/* The train's optimizer: a known kind, lr and wd finite f32s >= 0, each hyperparameter one
 * the kind takes and in its range (betas in [0, 1), nesterov 0 or 1 and only with momentum). */
bool ir_optimizer_check(const ir_train *t, char *err, size_t len);

/* ---- what inputs are for (ir/inputs.c) ---- */

/* "data", "labels", "lr", "wd", "state", ... ("" for none); and back (false: no such role). */
const char *ir_role_name(ag_role r);
/* A param's roles (the optimizer's state, a gradient accumulator); the rest are inputs'. */
static inline bool ir_role_of_param(ag_role r) { return r == AG_ROLE_STATE || r == AG_ROLE_ACCUM; }
/* The roles of runtime f32 scalars (lr, wd, and the split step's). */
static inline bool ir_role_is_scalar(ag_role r)
{
    return r == AG_ROLE_LR || r == AG_ROLE_WD || r == AG_ROLE_GRAD_WEIGHT || r == AG_ROLE_GRAD_SCALE ||
           r == AG_ROLE_CLIP_NORM || r == AG_ROLE_SHARE;
}
bool ir_role_by_name(const char *name, size_t len, ag_role *r);
/* The input with role r, or -1. */
int32_t ir_find_role(const ir_graph *g, ag_role r);

/* The data inputs: the features (role data) and the targets (role labels) of a batch; false
 * with a message when the graph has not both. */
bool ir_data_inputs(const ir_graph *g, int32_t *x, int32_t *y, char *err, size_t len);
/* Features and targets per sample, and the class count (0: real-valued targets) of the
 * data inputs: the labels' readers say it (a one_hot's classes, the logits' last axis of a
 * cross-entropy or an accuracy), the largest where they differ; else the dataset's class
 * names; else any label below 2^24. */
bool ir_data_shape(const ir_graph *g, int64_t *features, int64_t *targets, int *classes, char *err, size_t len);

/* ---- verifier (ir/verify.c) ---- */
/* Checks ids, order, arity, attributes, dtypes and shapes (by re-inferring every node),
 * names and outputs. Returns false with "verify: ..." naming the node and its location. */
bool ir_verify(const ir_graph *g, char *err, size_t len);

/* ---- sizes (ir/graph.c) ---- */
/* The batch g's training declares (1 to IR_MAX_COUNT), else 1: the batch its sizes are
 * checked at. */
int64_t ir_declared_batch(const ir_graph *g);
/* Node id's value at batch is at most IR_MAX_BYTES, else false with "input x: f32[N,..] at
 * batch B is more than 2^60 bytes". */
bool ir_check_value_size(const ir_graph *g, int32_t id, int64_t batch, char *err, size_t len);
/* Every value of g at batch fits, and so do all of them together (64-byte aligned, as the
 * memory planner places them); else false, *bad the first node that does not fit (the one
 * whose value takes the sum past the bound) and its message. Bodies are checked apart. */
bool ir_check_sizes(const ir_graph *g, int64_t batch, int32_t *bad, char *err, size_t len);

#endif
