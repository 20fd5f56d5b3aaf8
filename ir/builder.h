/* The graph-building API: nodes appended to a graph with their shapes checked at once, each
 * stamped with the place that asked for it. The public DSL (frontend/aotgrad.h) is a layer of
 * macros over these calls that record the caller's file:line; the passes build the nodes they
 * add (gradients, updates) with the same calls.
 *
 * A failure never aborts: it records "file:line: error: message" in the graph and returns a
 * poisoned value; a call given a poisoned value returns one without a word, so each mistake is
 * reported once, at its own line (ag_graph_error). Operands may be plain numbers (ag_imm_of):
 * a number takes the dtype of the value beside it. */
#ifndef AG_IR_BUILDER_H
#define AG_IR_BUILDER_H

#include <stdbool.h>
#include <stdint.h>

#include "ops.h"
#include "types.h"

typedef struct ag_graph ag_graph;

/* A value of the graph being built. id >= 0: node id; AG_POISON: an earlier error;
 * AG_IMM: a plain number (imm) not yet placed in a graph. */
typedef struct ag_val {
    ag_graph *g;
    int32_t id;
    double imm;
} ag_val;
#define AG_POISON (-1)
#define AG_IMM (-2)

/* A dims list as written in a builder call; more than AG_MAX_RANK is reported, not cut. */
typedef struct ag_dims {
    int n;
    int64_t d[8];
} ag_dims;

/* ---- training: what a model declares (ag_minimize_at) ---- */

/* An optimizer of ir_optimizer_kinds (ir.h): its kind and hyperparameters, those it does not
 * take left 0. aotgrad.h's ag_sgd(), ag_adam(), ... fill in PyTorch's defaults. */
typedef struct ag_optimizer {
    const char *kind;         /* "sgd", "adam", "adamw", "rmsprop", "adagrad" */
    double lr, wd;            /* defaults; both are runtime scalars (--lr, --wd) */
    double momentum;          /* sgd */
    int nesterov;             /* sgd, with momentum */
    double beta1, beta2, eps; /* adam, adamw (eps: rmsprop and adagrad too) */
    double alpha;             /* rmsprop */
} ag_optimizer;

typedef struct ag_fit {
    int _;                   /* lets the list be empty */
    ag_val metric;           /* a scalar summed over an epoch, divided by its samples */
    const char *metric_name; /* its output's name; may be left out only for ag_correct's count
                                (then "correct", reported as an accuracy) */
    ag_val predict;          /* what predictions read (logits, y_hat); optional */
    const char *data;        /* "fashion-mnist", a path, or "synthetic-linear w=2,-3.4 b=4.2 train=1000" */
    int64_t batch, epochs;   /* defaults for the command line */
} ag_fit;

/* A window op's options (aotgrad.h's ag_conv2d, ag_max_pool2d and ag_avg_pool2d fill in the
 * defaults): stride, pad and dilation for both axes, or for one where its _h or _w field is
 * >= 0; stride 0 is the kernel's (pooling's default). */
typedef struct ag_window_opts {
    int _; /* lets the list be empty */
    int stride, pad, dilation, groups;
    int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
    ag_val bias; /* conv2d: f32[O], added to each output channel; none if left out */
} ag_window_opts;

/* ---- graphs (for drivers and tests; a model file does not need these) ---- */
ag_graph *ag_graph_new(const char *name);
void ag_graph_free(ag_graph *g);
int ag_graph_error_count(const ag_graph *g);
const char *ag_graph_error(const ag_graph *g, int i); /* "file:line: error: message" */
/* The notes explaining error i, "file:line: note: message" a line each, or NULL. */
const char *ag_graph_error_notes(const ag_graph *g, int i);
int ag_graph_finish(ag_graph *g); /* final checks; returns the error count */
/* The graph a model file is building, where a mistake made with no graph at hand (every
 * operand a plain number) is recorded; NULL: printed. */
void ag_graph_building(ag_graph *g);

static inline ag_val ag_val_of(ag_val v) { return v; }
static inline ag_val ag_imm_of(double x) { return (ag_val){0, AG_IMM, x}; }

ag_val ag_input_at(ag_loc at, ag_graph *g, const char *name, ag_dtype dtype, ag_dims dims);
ag_val ag_param_at(ag_loc at, ag_graph *g, const char *name, ag_init init, ag_dims dims);
ag_val ag_const_at(ag_loc at, ag_graph *g, ag_dtype dtype, double v);
void ag_output_at(ag_loc at, ag_graph *g, const char *name, ag_val v);
ag_val ag_ew_at(ag_loc at, ir_op op, int n, const ag_val *operands);
ag_val ag_cast_at(ag_loc at, ag_val x, ag_dtype dtype);
ag_val ag_reduce_at(ag_loc at, ir_op op, ag_val x, ag_dims axes, bool keepdims);
ag_val ag_axis_at(ag_loc at, ir_op op, ag_val x, int axis);
ag_val ag_matmul_at(ag_loc at, const char *form, ag_val a, ag_val b);
ag_val ag_transpose_at(ag_loc at, ag_val x, ag_dims perm);
ag_val ag_reshape_at(ag_loc at, ag_val x, ag_dims dims);
ag_val ag_flatten_at(ag_loc at, ag_val x);
ag_val ag_broadcast_to_at(ag_loc at, ag_val x, ag_dims dims);
ag_val ag_concat_at(ag_loc at, int axis, int n, const ag_val *parts);
ag_val ag_row_at(ag_loc at, ir_op op, ag_val x, ag_dims axis);
ag_val ag_one_hot_at(ag_loc at, ag_val labels, int classes);
ag_val ag_cross_entropy_at(ag_loc at, ag_val logits, ag_val labels);
ag_val ag_correct_at(ag_loc at, ag_val logits, ag_val labels);
ag_val ag_squared_loss_at(ag_loc at, ag_val pred, ag_val target);
ag_val ag_dropout_at(ag_loc at, ag_val x, double p);
void ag_minimize_at(ag_loc at, ag_graph *g, ag_val loss, ag_optimizer opt, ag_fit fit);
void ag_group_at(ag_loc at, ag_graph *g, const char *name, double wd_scale, double lr_scale, int n,
                 const ag_val *params);
const char *ag_option_at(ag_loc at, ag_graph *g, const char *name, const char *default_value, const char *choices);
ag_val ag_requires_grad_at(ag_loc at, ag_val x);
ag_val ag_slice_at(ag_loc at, ag_val x, int axis, int64_t start, int64_t extent);
ag_val ag_conv2d_at(ag_loc at, ag_val x, ag_val w, ag_window_opts o);
ag_val ag_pool2d_at(ag_loc at, ir_op op, ag_val x, int kh, int kw, ag_window_opts o);

#endif
