/* The runtime's ops: the routines generated code calls (codegen/kernel.h, CG_CALL) for the
 * ops that are not loops of independent elements: softmax and cross-entropy rows, argmax,
 * cumsum, dropout.
 *
 * Each matches the reference interpreter (ir/interp.c) in f32 mode bit for bit: the same
 * order of operations, every step rounded to float, expf and logf from libm. Tensors are
 * contiguous row-major and seen around the op's axis as [outer, len, inner] (the
 * interpreter's around()): element (o, j, i) is at (o*len + j)*inner + i. inner == 1, rows
 * contiguous, is the fast path; inner > 1 walks blocks of the inner elements side by side,
 * each (o, i) still reduced in order of j.
 *
 * Rows are independent, so a caller may split a call over threads by rows: call it on
 * x + o0*len*inner, out + o0*len*inner (and labels + o0, loss + o0, ...) with outer
 * o1 - o0. Dropout splits by elements with `first`. No routine allocates.
 *
 * (Named rt_ops.h, not ops.h: runtime/ comes first on the include path of the runtime's own
 * sources, and "ops.h" there must stay ir/ops.h, the op table that aotgrad.h includes.) */
#ifndef RT_OPS_H
#define RT_OPS_H

#include <stdint.h>

#include "window.h"

/* The routines, one row each: what generated code calls for an op it lowers to a call
 * (codegen/kernel.h, CG_CALL). The C reference (codegen/exec.c), the LLVM backend
 * (codegen/llvm/emit_entry.c) and the CUDA renderer (codegen/cuda/render_call.c, which
 * checks a call's operands by it and writes the row's computation in CUDA C) expand it.
 *
 *   R(op, f32 routine, i32 routine, signature, operands)
 *
 * op: the op table's name; the i32 routine serves an i32 first operand; operands: the
 * call's buffers, its inputs then its result. The signatures, the call's extents being
 * outer, len and inner around the op's axis:
 *   ROWS     f(x, out, outer, len, inner)
 *   CE       f(logits, labels, loss, rows = outer, classes = len)
 *   CE_GRAD  f(logits, labels, d, out, rows = outer, classes = len)
 *   DROPOUT  f(x, out, n = outer * len * inner, p, seed, site, step, first = 0)
 *   WINDOW   f(operand, [operand,] out, batch = outer, the call's rt_window, the pool)
 *   CONV     f(a, b, out, batch = outer, the call's rt_window, workspace, the pool): the
 *            convolution's products sample by sample (runtime/window.h), the workspace
 *            (rt_conv2d_workspace floats) its fourth buffer
 *   CONV_DW  f(x, dy, dw, db, batch = outer, the call's rt_window, workspace, the pool): the
 *            weight gradient, with the bias gradient db, the fifth buffer, beside it
 *   COLLECTIVE f(data, count = outer, bucket, wait, the dist context of ag_args): a
 *            bucket's sum over the ranks in place, started (wait 0) or waited on (1) */
#define RT_ROUTINES(R)                                                              \
    R(softmax, rt_softmax, rt_softmax, ROWS, 2)                                     \
    R(log_softmax, rt_log_softmax, rt_log_softmax, ROWS, 2)                         \
    R(softmax_ce, rt_softmax_ce, rt_softmax_ce, CE, 3)                              \
    R(softmax_ce_grad, rt_softmax_ce_grad, rt_softmax_ce_grad, CE_GRAD, 4)          \
    R(argmax, rt_argmax, rt_argmax_i32, ROWS, 2)                                    \
    R(cumsum, rt_cumsum_f32, rt_cumsum_i32, ROWS, 2)                                \
    R(dropout, rt_dropout, rt_dropout, DROPOUT, 2)                                  \
    R(conv2d, rt_conv2d, rt_conv2d, CONV, 4)                                        \
    R(conv2d_input_grad, rt_conv2d_input_grad, rt_conv2d_input_grad, CONV, 4)       \
    R(conv2d_weight_grad, rt_conv2d_weight_grad, rt_conv2d_weight_grad, CONV_DW, 5) \
    R(max_pool2d, rt_max_pool2d, rt_max_pool2d, WINDOW, 2)                          \
    R(max_pool2d_grad, rt_max_pool2d_grad, rt_max_pool2d_grad, WINDOW, 3)           \
    R(avg_pool2d, rt_avg_pool2d, rt_avg_pool2d, WINDOW, 2)                          \
    R(avg_pool2d_grad, rt_avg_pool2d_grad, rt_avg_pool2d_grad, WINDOW, 2)           \
    R(allreduce, rt_allreduce, rt_allreduce, COLLECTIVE, 1)

/* softmax along the axis: e^(x - m) / sum e^(x - m), m the row's maximum. A row holding a
 * NaN is all NaN; so is a row whose maximum is infinite (inf - inf). out may equal x. */
void rt_softmax(const float *x, float *out, int64_t outer, int64_t len, int64_t inner);
/* log_softmax along the axis: (x - m) - log sum e^(x - m). out may equal x. */
void rt_log_softmax(const float *x, float *out, int64_t outer, int64_t len, int64_t inner);

/* Cross-entropy of rows of logits [rows, classes] against labels [rows]:
 *   loss[r] = log sum_j e^(x[r,j] - m) - (x[r,label] - m),
 * and its gradient, for a row gradient d [rows]:
 *   out[r,j] = (e^(x[r,j] - m) / sum - (j == label)) * d[r].
 * A label outside [0, classes) gives loss 0 and a zero gradient row. */
void rt_softmax_ce(const float *logits, const int32_t *labels, float *loss, int64_t rows, int64_t classes);
void rt_softmax_ce_grad(const float *logits, const int32_t *labels, const float *d, float *out, int64_t rows,
                        int64_t classes);
/* Both in one pass over each row, with d[r] = d_scale for every row: the same bits as
 * rt_softmax_ce and rt_softmax_ce_grad. loss or grad may be NULL (not computed).
 *
 * The backend may use it for a softmax_ce node A and a softmax_ce_grad node B when B reads
 * A's logits and labels (the same buffers), both are computed in the same step with the
 * logits unchanged in between, and B's row gradient is uniform: a broadcast of one f32 value
 * (the mean's 1/N, times the loss seed, as fuse_softmax_ce leaves it) whose float the step
 * computes first and passes as d_scale. A row gradient that differs between rows needs
 * rt_softmax_ce_grad. */
void rt_softmax_ce_both(const float *logits, const int32_t *labels, float d_scale, float *loss, float *grad,
                        int64_t rows, int64_t classes);

/* Index along the axis of the first maximum, out [outer, inner]. The first NaN wins (its
 * index is the answer). */
void rt_argmax(const float *x, int32_t *out, int64_t outer, int64_t len, int64_t inner);
void rt_argmax_i32(const int32_t *x, int32_t *out, int64_t outer, int64_t len, int64_t inner);

/* Running sums along the axis. f32: each sum rounded to float, in order. i32: summed exactly
 * (64 bits) and stored saturated to the i32 range, as the interpreter stores its double sum.
 * out may equal x. */
void rt_cumsum_f32(const float *x, float *out, int64_t outer, int64_t len, int64_t inner);
void rt_cumsum_i32(const int32_t *x, int32_t *out, int64_t outer, int64_t len, int64_t inner);

/* Inverted dropout in training: out[k] = keep ? x[k] * (float)(1 / (1 - p)) : 0 for
 * elements first + k, k in [0, n), of the tensor (row-major logical index), with the mask of
 * rt_dropout_mask (runtime/rng.h): key (seed, site), counter from the element index and the
 * training step. p >= 1 drops everything. Outside training dropout is the identity and is not
 * called. out may equal x. */
void rt_dropout(const float *x, float *out, int64_t n, double p, uint32_t seed, uint32_t site, uint64_t step,
                int64_t first);

/* A distributed build's bucket of gradients (codegen/lower_collective.c): with wait 0, start
 * the sum over the ranks of data[0..count) in place (non-blocking); with wait 1, wait for it
 * to be done. dist: the ag_args' (runtime/dist.h), NULL on one process: nothing to do. */
void rt_allreduce(float *data, int64_t count, int32_t bucket, int32_t wait, void *dist);

#endif
