/* The reference interpreter: the oracle the code generators are tested against.
 *
 * It runs a graph node by node in array order, one buffer per node, in the simplest code
 * that is exact to the op table: no fusion, fixed summation orders, deterministic dropout.
 * Compute types: in f32 mode an op whose values are all f32 rounds every step to float, as
 * compiled code would; in f64 mode the graph's f32 values are held and computed in double
 * (for gradient checks), except the constants simplify folds (elementwise ops of constants,
 * through layout ops): they are the f32 program's compile-time constants,
 * computed in f32 as simplify folds them, so folding changes no f64 value. An op touching i32, u8 or bool values computes in double, which
 * holds every i32 exactly, and stores with the conversion rules of ir_tensor_set.
 */
#ifndef AG_IR_INTERP_H
#define AG_IR_INTERP_H

#include "ir.h"
#include "window.h" /* rt_window */

typedef struct ir_tensor {
    ag_dtype dtype; /* storage dtype: f32 values are stored as AG_F64 (double) in f64 mode */
    ir_shape shape; /* concrete, no AG_N */
    void *data;     /* row-major */
} ir_tensor;

typedef struct ir_run {
    bool f64;      /* compute the graph's f32 values in double (for gradient checks) */
    int64_t batch; /* the value bound to N */
    uint32_t seed; /* dropout: Philox key word 0 */
    uint64_t step; /* dropout: the training step */
    bool training; /* dropout active; identity otherwise */
} ir_run;

ag_dtype ir_storage_dtype(ag_dtype t, bool f64);          /* AG_F32 -> AG_F64 in f64 mode */
ir_shape ir_bind_shape(const ir_shape *s, int64_t batch); /* AG_N -> batch */
/* Zeroed, malloc'd; data is NULL when out of memory or the shape is not concrete. */
ir_tensor ir_tensor_new(ag_dtype dtype, const ir_shape *concrete);
void ir_tensor_free(ir_tensor *t);
int64_t ir_tensor_numel(const ir_tensor *t);
double ir_tensor_get(const ir_tensor *t, int64_t i);
/* Stores v converted to t's dtype: floats round; i32 and u8 truncate toward zero and
 * saturate, NaN giving 0; bool is v != 0. */
void ir_tensor_set(ir_tensor *t, int64_t i, double v);

/* Run g. bound[i] is the tensor for node i when node i is an input or param (NULL otherwise);
 * each must have the storage dtype and the bound shape, else an error like
 * "input x: expected u8[7,784], got u8[7,783]". outs[k] receives output k (g->out[k]),
 * newly allocated; the caller frees them (on failure they are empty). Returns false with a
 * message on error. */
bool ir_interp(const ir_graph *g, const ir_run *run, const ir_tensor *const *bound, ir_tensor *outs, char *err,
               size_t len);

/* The window ops (ir/interp_window.c): node n into out from its operands' values v, in the
 * interpreter's two modes; false when out of memory. */
bool ir_eval_window(const ir_node *n, const ir_tensor *v, ir_tensor *out);
/* Window op n's geometry for the runtime (runtime/window.h), from its operands' shapes a and
 * b (b NULL for a one-operand op): the forward op's input is a, or n's own result for the
 * gradients whose shape only the result tells (conv2d_input_grad, avg_pool2d_grad); a
 * convolution's output channels are its weights' or dy's dim 0. Dim 0, the batch, is not
 * read, so a shape with N serves as well as a bound one. */
rt_window ir_window_of(const ir_node *n, const ir_shape *a, const ir_shape *b);
/* Whether op is a convolution or one of its gradients */
static inline bool ir_op_is_conv(ir_op op)
{
    return op == IR_conv2d || op == IR_conv2d_input_grad || op == IR_conv2d_weight_grad;
}
/* The bytes of node id's workspace if it is a convolution (rt_conv2d_workspace), else 0. */
int64_t ir_conv_workspace_bytes(const ir_graph *g, int32_t id);

#endif
