/* The op table: every op of the graph IR, listed once.
 *
 * Each consumer (enum, names, shape rules, printer, parser, verifier, interpreter, and the
 * passes and both backends) expands IR_OPS with its own EW and OP macros, so an op added
 * here reaches all of them, and tests/ir/test_ops.c fails until it has a test row.
 *
 *   EW(name, arity, scalar, types, grad, doc)   elementwise, with NumPy broadcasting
 *       scalar: the value of one element, written in the scalar macros of ir/scalar.h over
 *               the operands a, b, c (each backend defines those macros its own way)
 *       types:  dtype rule, one of the T_ values in ir/ir.h
 *   OP(name, kind, arity, attrs, rule, grad, doc)
 *       kind:   IR_K_ family, what passes and backends dispatch on
 *       arity:  operand count, -1 for one or more
 *       attrs:  the A_ attributes it carries, printed after its operands
 *       rule:   its shape and dtype rule, a function in ir/shape.c
 *   grad: its gradient rule, a function in passes/grad.c written with the DSL builders;
 *         no_grad where no gradient flows through it (sources, integer or bool results,
 *         stop_gradient); 0 for ops only passes after autodiff make (never differentiated)
 */
#ifndef AG_IR_OPS_H
#define AG_IR_OPS_H

/* one row an op, its columns aligned by hand */
/* clang-format off */
#define IR_OPS(EW, OP)                                                                            \
    /* sources */                                                                                 \
    OP(input,         SOURCE,   0, A_NAME | A_GRAD | A_ROLE, rule_source, no_grad,         "a tensor the caller binds at run time") \
    OP(param,         SOURCE,   0, A_NAME | A_INIT | A_ROLE, rule_source, no_grad,        "a trained parameter with its initializer, or the optimizer's state (role=state)") \
    OP(const,         SOURCE,   0, A_VALUE,           rule_source,       no_grad,           "a scalar constant") \
    /* elementwise, unary */                                                                      \
    EW(neg,           1, S_NEG(a),                                       T_NUM,   grad_neg,          "-a") \
    EW(exp,           1, S_EXP(a),                                       T_FLOAT, grad_exp,          "e^a") \
    EW(log,           1, S_LOG(a),                                       T_FLOAT, grad_log,          "natural log") \
    EW(abs,           1, S_ABS(a),                                       T_NUM,   grad_abs,          "|a|") \
    EW(sqrt,          1, S_SQRT(a),                                      T_FLOAT, grad_sqrt,         "square root") \
    EW(square,        1, S_MUL(a, a),                                    T_NUM,   grad_square,       "a * a") \
    EW(relu,          1, S_SEL(S_GT(a, S_K(0)), a, S_K(0)),              T_NUM,   grad_relu,         "max(a, 0)") \
    EW(sigmoid,       1, S_DIV(S_K(1), S_ADD(S_K(1), S_EXP(S_NEG(a)))),  T_FLOAT, grad_sigmoid,      "1 / (1 + e^-a)") \
    EW(tanh,          1, S_TANH(a),                                      T_FLOAT, grad_tanh,         "hyperbolic tangent") \
    EW(cast,          1, a,                                              T_CAST,  grad_cast,         "convert to the result dtype (float to int truncates and saturates)") \
    EW(stop_gradient, 1, a,                                              T_SAME,  no_grad,           "a, with no gradient flowing back (detach)") \
    /* elementwise, binary */                                                                     \
    EW(add,           2, S_ADD(a, b),                                    T_NUM,   grad_add,          "a + b") \
    EW(sub,           2, S_SUB(a, b),                                    T_NUM,   grad_sub,          "a - b") \
    EW(mul,           2, S_MUL(a, b),                                    T_NUM,   grad_mul,          "a * b") \
    EW(div,           2, S_DIV(a, b),                                    T_FLOAT, grad_div,          "a / b") \
    EW(pow,           2, S_POW(a, b),                                    T_FLOAT, grad_pow,          "a ^ b") \
    EW(maximum,       2, S_SEL(S_GE(a, b), a, b),                        T_NUM,   grad_maximum,      "a >= b ? a : b") \
    EW(minimum,       2, S_SEL(S_LE(a, b), a, b),                        T_NUM,   grad_minimum,      "a <= b ? a : b") \
    EW(lt,            2, S_LT(a, b),                                     T_CMP,   no_grad,           "a < b") \
    EW(le,            2, S_LE(a, b),                                     T_CMP,   no_grad,           "a <= b") \
    EW(gt,            2, S_GT(a, b),                                     T_CMP,   no_grad,           "a > b") \
    EW(ge,            2, S_GE(a, b),                                     T_CMP,   no_grad,           "a >= b") \
    EW(eq,            2, S_EQ(a, b),                                     T_CMP,   no_grad,           "a == b") \
    EW(ne,            2, S_NE(a, b),                                     T_CMP,   no_grad,           "a != b") \
    /* elementwise, ternary */                                                                    \
    EW(where,         3, S_SEL(a, b, c),                                 T_WHERE, grad_where,        "a ? b : c, a bool") \
    /* reductions and scans */                                                                    \
    OP(sum,           REDUCE,   1, A_AXES,            rule_reduce,       grad_sum,          "sum over axes") \
    OP(mean,          REDUCE,   1, A_AXES,            rule_reduce,       grad_mean,         "mean over axes") \
    OP(max,           REDUCE,   1, A_AXES,            rule_reduce,       grad_max,          "maximum over axes") \
    OP(argmax,        ROW,      1, A_AXIS,            rule_argmax,       no_grad,           "index of the first maximum along an axis, i32 (a row op)") \
    OP(cumsum,        SCAN,     1, A_AXIS,            rule_cumsum,       grad_cumsum,       "running sum along an axis") \
    /* linear algebra */                                                                          \
    OP(matmul,        MATMUL,   2, A_TRANS,           rule_matmul,       grad_matmul,       "matrix product; rank 1 operands are vectors (dot, mv)") \
    /* layout */                                                                                  \
    OP(transpose,     LAYOUT,   1, A_PERM,            rule_transpose,    grad_transpose,    "permute axes") \
    OP(reshape,       LAYOUT,   1, 0,                 rule_reshape,      grad_reshape,      "same elements, the result's shape") \
    OP(concat,        LAYOUT,  -1, A_AXIS,            rule_concat,       grad_concat,       "join along an axis") \
    OP(broadcast_to,  LAYOUT,   1, 0,                 rule_broadcast_to, grad_broadcast_to, "broadcast to the result's shape") \
    OP(slice,         LAYOUT,   1, A_AXIS | A_START,  rule_slice,        grad_slice,        "the result's extent of elements along an axis, from start") \
    /* sliding windows over the last two axes of NCHW values (PyTorch's conventions) */         \
    OP(conv2d,        WINDOW,   2, A_WINDOW,          rule_conv2d,       grad_conv2d,       "convolution of a [B,C,H,W] with weights [O,C/groups,KH,KW]: [B,O,OH,OW]") \
    OP(conv2d_input_grad, WINDOW, 2, A_WINDOW,        rule_conv2d_input_grad, 0,            "conv2d's gradient for its input, from the result's gradient a and the weights b; the result's shape is the input's") \
    OP(conv2d_weight_grad, WINDOW, 2, A_WINDOW,       rule_conv2d_weight_grad, 0,           "conv2d's gradient for its weights, from the input a and the result's gradient b; the result's shape is the weights'") \
    OP(max_pool2d,    WINDOW,   1, A_WINDOW,          rule_pool2d,       grad_max_pool2d,   "maximum over each window (padding as -inf); NaN propagates") \
    OP(max_pool2d_grad, WINDOW, 2, A_WINDOW,          rule_max_pool2d_grad, 0,              "max_pool2d's gradient for its input a, from the result's gradient b: to the first maximum of each window (the last NaN)") \
    OP(avg_pool2d,    WINDOW,   1, A_WINDOW,          rule_pool2d,       grad_avg_pool2d,   "mean over each window, padding counted as zeros (divisor KH*KW)") \
    OP(avg_pool2d_grad, WINDOW, 1, A_WINDOW,          rule_avg_pool2d_grad, 0,              "avg_pool2d's gradient for its input, from the result's gradient a; the result's shape is the input's") \
    /* rows */                                                                                    \
    OP(softmax,       ROW,      1, A_AXIS,            rule_row,          grad_softmax,      "e^a / sum e^a along an axis, max-subtracted") \
    OP(log_softmax,   ROW,      1, A_AXIS,            rule_row,          grad_log_softmax,  "a - log sum e^a along an axis, max-subtracted") \
    OP(softmax_ce,    ROW,      2, 0,                 rule_softmax_ce,   grad_softmax_ce,   "per row of logits a with label b: log sum e^a - a[b], 0 for a label out of range (fused)") \
    OP(softmax_ce_grad, ROW,    3, 0,                 rule_softmax_ce_grad, 0,              "per row: (softmax(a) - one_hot(b)) * c[row], 0 for a label out of range (fused)") \
    OP(one_hot,       INDEX,    1, A_CLASSES,         rule_one_hot,      no_grad,           "i32 labels to f32 rows of 0 and 1; out of range: a zero row") \
    /* random */                                                                                  \
    OP(dropout,       RANDOM,   1, A_P | A_SITE,      rule_dropout,      grad_dropout,      "inverted dropout; identity when not training") \
    /* distributed training (passes/distribute.c) */                                              \
    OP(allreduce,     COLLECTIVE, 1, A_BUCKET,        rule_allreduce,    0,                 "the sum of a over the ranks of a distributed run, in a's buffer (the identity on one rank)") \
    /* fused */                                                                                   \
    OP(kernel,        FUSED,   -1, A_KERNEL,          rule_kernel,       0,                 "output `out` of the fused group `body`, a graph of its own run on the operands")
/* clang-format on */

/* The op codes: IR_add, IR_matmul, ... */
typedef enum ir_op {
#define IR_OP_ENUM_EW(name, ...) IR_##name,
#define IR_OP_ENUM_OP(name, ...) IR_##name,
    IR_OPS(IR_OP_ENUM_EW, IR_OP_ENUM_OP)
#undef IR_OP_ENUM_EW
#undef IR_OP_ENUM_OP
    /* clang-format off */
    IR_OP_COUNT /* (clang-format would indent it as the expansion's continuation) */
    /* clang-format on */
} ir_op;

#endif
