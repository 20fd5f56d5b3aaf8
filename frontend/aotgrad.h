/* aotgrad: the C DSL in which a model is declared.
 *
 * A model is a C file with one function named after the file, which builds the graph:
 *
 *     void mlp(ag_graph *g)
 *     {
 *         ag_val x  = ag_input(g, "x", AG_U8, AG_N, 784);   // AG_N: the batch, bound at run time
 *         ag_val W1 = ag_param(g, "W1", ag_normal(0, 0.01), 784, 256);
 *         ...
 *         ag_output(g, "logits", logits);
 *     }
 *
 * Every builder is a macro that records its caller's file:line. A shape or dtype mistake
 * never aborts: the first error on a value is kept with its location, later builders on
 * that value do nothing, and the driver reports every error when the model is finished.
 * Operands may be plain numbers where a value is expected (ag_mul(x, 1.0 / 255)); a number
 * takes the dtype of the tensor beside it.
 */
#ifndef AOTGRAD_H
#define AOTGRAD_H

#include "builder.h" /* the calls the macros make, the values and the vocabulary types */

/* ---- initializers ---- */
static inline ag_init ag_zeros(void) { return (ag_init){AG_INIT_ZEROS, 0, 0}; }
static inline ag_init ag_constant(double v) { return (ag_init){AG_INIT_CONSTANT, v, 0}; }
static inline ag_init ag_normal(double mean, double std) { return (ag_init){AG_INIT_NORMAL, mean, std}; }
static inline ag_init ag_uniform(double lo, double hi) { return (ag_init){AG_INIT_UNIFORM, lo, hi}; }
static inline ag_init ag_xavier(void) { return (ag_init){AG_INIT_XAVIER, 0, 0}; }

/* ---- sources ---- */
#define ag_input(g, name, dtype, ...) ag_input_at(AG_HERE, g, name, dtype, AG_DIMS(__VA_ARGS__))
#define ag_param(g, name, init, ...) ag_param_at(AG_HERE, g, name, init, AG_DIMS(__VA_ARGS__))
#define ag_const(g, v) ag_const_at(AG_HERE, g, AG_F32, v)               /* f32 scalar */
#define ag_const_i32(g, v) ag_const_at(AG_HERE, g, AG_I32, v)           /* i32 scalar */
#define ag_full(g, v, ...) ag_broadcast_to(ag_const(g, v), __VA_ARGS__) /* f32 filled */
#define ag_output(g, name, v) ag_output_at(AG_HERE, g, name, AG_V(v))   /* a named result */

/* ---- elementwise (NumPy broadcasting) ---- */
#define ag_neg(x) AG_EW1(neg, x)
#define ag_exp(x) AG_EW1(exp, x)
#define ag_log(x) AG_EW1(log, x)
#define ag_abs(x) AG_EW1(abs, x)
#define ag_sqrt(x) AG_EW1(sqrt, x)
#define ag_square(x) AG_EW1(square, x)
#define ag_relu(x) AG_EW1(relu, x)
#define ag_sigmoid(x) AG_EW1(sigmoid, x)
#define ag_tanh(x) AG_EW1(tanh, x)
#define ag_stop_gradient(x) AG_EW1(stop_gradient, x)
#define ag_detach(x) AG_EW1(stop_gradient, x)
#define ag_cast(x, dtype) ag_cast_at(AG_HERE, AG_V(x), dtype)
#define ag_add(a, b) AG_EW2(add, a, b)
#define ag_sub(a, b) AG_EW2(sub, a, b)
#define ag_mul(a, b) AG_EW2(mul, a, b)
#define ag_div(a, b) AG_EW2(div, a, b)
#define ag_pow(a, b) AG_EW2(pow, a, b)
#define ag_maximum(a, b) AG_EW2(maximum, a, b)
#define ag_minimum(a, b) AG_EW2(minimum, a, b)
#define ag_lt(a, b) AG_EW2(lt, a, b)
#define ag_le(a, b) AG_EW2(le, a, b)
#define ag_gt(a, b) AG_EW2(gt, a, b)
#define ag_ge(a, b) AG_EW2(ge, a, b)
#define ag_eq(a, b) AG_EW2(eq, a, b)
#define ag_ne(a, b) AG_EW2(ne, a, b)
#define ag_where(c, a, b) ag_ew_at(AG_HERE, IR_where, 3, (ag_val[]){AG_V(c), AG_V(a), AG_V(b)})
#define ag_scale(x, s) AG_EW2(mul, x, s)

/* ---- reductions: no axes means all of them; negative axes count from the end ---- */
#define ag_sum(x, ...) ag_reduce_at(AG_HERE, IR_sum, AG_V(x), AG_DIMS(__VA_ARGS__), false)
#define ag_mean(x, ...) ag_reduce_at(AG_HERE, IR_mean, AG_V(x), AG_DIMS(__VA_ARGS__), false)
#define ag_max(x, ...) ag_reduce_at(AG_HERE, IR_max, AG_V(x), AG_DIMS(__VA_ARGS__), false)
#define ag_sum_keepdims(x, ...) ag_reduce_at(AG_HERE, IR_sum, AG_V(x), AG_DIMS(__VA_ARGS__), true)
#define ag_mean_keepdims(x, ...) ag_reduce_at(AG_HERE, IR_mean, AG_V(x), AG_DIMS(__VA_ARGS__), true)
#define ag_max_keepdims(x, ...) ag_reduce_at(AG_HERE, IR_max, AG_V(x), AG_DIMS(__VA_ARGS__), true)
#define ag_argmax(x, axis) ag_axis_at(AG_HERE, IR_argmax, AG_V(x), axis)
#define ag_cumsum(x, axis) ag_axis_at(AG_HERE, IR_cumsum, AG_V(x), axis)

/* ---- linear algebra ---- */
#define ag_matmul(a, b) ag_matmul_at(AG_HERE, "matmul", AG_V(a), AG_V(b))
#define ag_mm(a, b) ag_matmul_at(AG_HERE, "mm", AG_V(a), AG_V(b))   /* both rank 2 */
#define ag_mv(a, b) ag_matmul_at(AG_HERE, "mv", AG_V(a), AG_V(b))   /* rank 2 by rank 1 */
#define ag_dot(a, b) ag_matmul_at(AG_HERE, "dot", AG_V(a), AG_V(b)) /* rank 1 by rank 1 */

/* ---- layout ---- */
#define ag_transpose(x, ...) ag_transpose_at(AG_HERE, AG_V(x), AG_DIMS(__VA_ARGS__)) /* no perm: reverse */
#define ag_reshape(x, ...) ag_reshape_at(AG_HERE, AG_V(x), AG_DIMS(__VA_ARGS__))
#define ag_flatten(x) ag_flatten_at(AG_HERE, AG_V(x)) /* keep the first axis, join the rest */
#define ag_broadcast_to(x, ...) ag_broadcast_to_at(AG_HERE, AG_V(x), AG_DIMS(__VA_ARGS__))
#define ag_slice(x, axis, start, extent) ag_slice_at(AG_HERE, AG_V(x), axis, start, extent)
#define ag_concat(axis, ...) ag_concat_at(AG_HERE, axis, AG_NARGS(__VA_ARGS__), (ag_val[]){AG_MAP_V(__VA_ARGS__)})

/* ---- convolutions and pooling: NCHW values [B,C,H,W], PyTorch's conventions ----
 * Options by name: .stride, .pad, .dilation (both axes; .stride_h, .pad_w, ... for one),
 * .groups, and conv2d's .bias ([O], one per output channel):
 *     ag_conv2d(x, W, .pad = 2, .bias = b)       W [O, C/groups, KH, KW]; stride 1
 *     ag_max_pool2d(x, 2)                        a 2x2 window, stride 2 (the window's)
 *     ag_avg_pool2d(x, 3, .stride = 1, .pad = 1) padding counts in the divisor */
#define ag_conv2d(x, w, ...) ag_conv2d_at(AG_HERE, AG_V(x), AG_V(w), AG_WINDOW_OPTS(.stride = 1, __VA_ARGS__))
#define ag_max_pool2d(x, kernel, ...) \
    ag_pool2d_at(AG_HERE, IR_max_pool2d, AG_V(x), kernel, kernel, AG_WINDOW_OPTS(__VA_ARGS__))
#define ag_avg_pool2d(x, kernel, ...) \
    ag_pool2d_at(AG_HERE, IR_avg_pool2d, AG_V(x), kernel, kernel, AG_WINDOW_OPTS(__VA_ARGS__))

/* ---- models ---- */
#define ag_softmax(x, ...) ag_row_at(AG_HERE, IR_softmax, AG_V(x), AG_DIMS(__VA_ARGS__)) /* default: last axis */
#define ag_log_softmax(x, ...) ag_row_at(AG_HERE, IR_log_softmax, AG_V(x), AG_DIMS(__VA_ARGS__))
#define ag_one_hot(labels, classes) ag_one_hot_at(AG_HERE, AG_V(labels), classes)
#define ag_cross_entropy(logits, labels) ag_cross_entropy_at(AG_HERE, AG_V(logits), AG_V(labels)) /* per row */
#define ag_squared_loss(pred, target) ag_squared_loss_at(AG_HERE, AG_V(pred), AG_V(target))       /* (p - t)^2 / 2 */
#define ag_mse(pred, target) ag_mean(ag_square(ag_sub(pred, target)))
#define ag_dropout(x, p) ag_dropout_at(AG_HERE, AG_V(x), p)
#define ag_norm_l1(x) ag_sum(ag_abs(x))
#define ag_norm_l2(x) ag_sqrt(ag_sum(ag_square(x)))
#define ag_norm_fro(x) ag_sqrt(ag_sum(ag_square(x)))
#define ag_norm(x) ag_norm_l2(x)

/* ---- training: what the model declares, so that one file (or its .ir dump) trains ---- */

/* The optimizers, with PyTorch's torch.optim formulas and defaults; a field given overrides
 * its default: ag_adam(.lr = 0.01). The state they keep (momentum buffers, moments, the step
 * count) is part of the train step, saved in checkpoints as P.exp_avg etc.
 *   ag_sgd(.lr, .wd, .momentum, .nesterov)    lr has no default
 *   ag_adam(.lr = 0.001, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .wd = 0)   L2 decay
 *   ag_adamw(... the same, .wd = 0.01)        decoupled weight decay
 *   ag_rmsprop(.lr = 0.01, .alpha = 0.99, .eps = 1e-8, .wd = 0)
 *   ag_adagrad(.lr = 0.01, .eps = 1e-10, .wd = 0) */
#define ag_sgd(...) AG_OPTIMIZER("sgd", __VA_ARGS__)
#define ag_adam(...) AG_OPTIMIZER("adam", .lr = 0.001, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, __VA_ARGS__)
#define ag_adamw(...) \
    AG_OPTIMIZER("adamw", .lr = 0.001, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .wd = 0.01, __VA_ARGS__)
#define ag_rmsprop(...) AG_OPTIMIZER("rmsprop", .lr = 0.01, .alpha = 0.99, .eps = 1e-8, __VA_ARGS__)
#define ag_adagrad(...) AG_OPTIMIZER("adagrad", .lr = 0.01, .eps = 1e-10, __VA_ARGS__)

/* Declares the scalar loss to minimize with the optimizer, and the training defaults.
 * Adds the outputs loss, the metric and predict. */
#define ag_minimize(g, loss, opt, ...) ag_minimize_at(AG_HERE, g, AG_V(loss), opt, (ag_fit){._ = 0, __VA_ARGS__})
/* A parameter group: its weight decay is wd * wd_scale and its learning rate lr * lr_scale.
 * Parameters in no group are updated with the plain lr and wd. */
#define ag_group(g, name, wd_scale, lr_scale, ...) \
    ag_group_at(AG_HERE, g, name, wd_scale, lr_scale, AG_NARGS(__VA_ARGS__), (ag_val[]){__VA_ARGS__})
/* A named option the command line sets with --set NAME=VALUE; VALUE one of choices
 * ("relu|sigmoid|tanh"). Returns the value in force. */
#define ag_option(g, name, default_value, choices) ag_option_at(AG_HERE, g, name, default_value, choices)
/* Asks for the gradient of an input as well (parameters always get one). */
#define ag_requires_grad(x) ag_requires_grad_at(AG_HERE, AG_V(x))
/* The number of rows whose largest logit is at the label: d2l's accuracy numerator. */
#define ag_correct(logits, labels) ag_correct_at(AG_HERE, AG_V(logits), AG_V(labels))

/* ---- what the macros call ---- */
/* The defaults, then the caller's fields over them: a field given twice is the point here, so
 * GCC's and Clang's warning about it is off for this initializer alone */
#define AG_OPTIMIZER(kind_, ...)                                                             \
    __extension__({                                                                          \
        _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Woverride-init\"") \
            ag_optimizer ag_optimizer_ = {.kind = kind_, __VA_ARGS__};                       \
        _Pragma("GCC diagnostic pop") ag_optimizer_;                                         \
    })
#define AG_WINDOW_OPTS(...)                                                                  \
    __extension__({                                                                          \
        _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Woverride-init\"") \
            ag_window_opts ag_window_opts_ = {._ = 0,                                        \
                                              .dilation = 1,                                 \
                                              .groups = 1,                                   \
                                              .stride_h = -1,                                \
                                              .stride_w = -1,                                \
                                              .pad_h = -1,                                   \
                                              .pad_w = -1,                                   \
                                              .dilation_h = -1,                              \
                                              .dilation_w = -1,                              \
                                              __VA_ARGS__};                                  \
        _Pragma("GCC diagnostic pop") ag_window_opts_;                                       \
    })
#define AG_HERE ((ag_loc){__FILE__, __LINE__})
#define AG_NARGS(...) AG_NARGS_(0, ##__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define AG_NARGS_(_0, _1, _2, _3, _4, _5, _6, _7, _8, n, ...) n
#define AG_DIMS(...) ((ag_dims){AG_NARGS(__VA_ARGS__), {__VA_ARGS__}})
#define AG_V(x) _Generic((x), ag_val: ag_val_of, default: ag_imm_of)(x)
#define AG_EW1(op, x) ag_ew_at(AG_HERE, IR_##op, 1, (ag_val[]){AG_V(x)})
#define AG_EW2(op, a, b) ag_ew_at(AG_HERE, IR_##op, 2, (ag_val[]){AG_V(a), AG_V(b)})
#define AG_MAP_V(...) AG_MAP_V_(AG_NARGS(__VA_ARGS__), __VA_ARGS__)
#define AG_MAP_V_(n, ...) AG_CAT(AG_MAP_V, n)(__VA_ARGS__)
#define AG_CAT(a, b) AG_CAT_(a, b)
#define AG_CAT_(a, b) a##b
#define AG_MAP_V1(a) AG_V(a)
#define AG_MAP_V2(a, ...) AG_V(a), AG_MAP_V1(__VA_ARGS__)
#define AG_MAP_V3(a, ...) AG_V(a), AG_MAP_V2(__VA_ARGS__)
#define AG_MAP_V4(a, ...) AG_V(a), AG_MAP_V3(__VA_ARGS__)
#define AG_MAP_V5(a, ...) AG_V(a), AG_MAP_V4(__VA_ARGS__)
#define AG_MAP_V6(a, ...) AG_V(a), AG_MAP_V5(__VA_ARGS__)
#define AG_MAP_V7(a, ...) AG_V(a), AG_MAP_V6(__VA_ARGS__)
#define AG_MAP_V8(a, ...) AG_V(a), AG_MAP_V7(__VA_ARGS__)

#endif
