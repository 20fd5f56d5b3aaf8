/* The reference interpreter against values checked by hand, one row per case, each run in
 * f32 and f64 mode. Many rows are the examples of d2l chapter 2 (preliminaries). The last
 * tests cover what a row cannot say: every op of the table appears in some row, f32 mode
 * rounds like float code, dropout masks, and the errors for badly bound inputs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "aotgrad.h"
#include "bind.h"
#include "interp.h"
#include "ir.h"
#include "rng.h"

typedef struct vals {
    const char *shape; /* expected shape as printed, or NULL: not checked */
    int n;
    double v[32];
} vals;
#define COUNT(...) ((int)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)))
/* initializers, not blocks */
/* clang-format off */
#define V(...) {NULL, COUNT(__VA_ARGS__), {__VA_ARGS__}}
#define VS(shape, ...) {shape, COUNT(__VA_ARGS__), {__VA_ARGS__}}
/* clang-format on */

typedef struct bind {
    const char *name; /* an input or param */
    vals v;
} bind;

typedef struct tcase {
    const char *what;
    void (*build)(ag_graph *g); /* adds the outputs in the order of out[] */
    bind in[6];
    vals out[6];
    int64_t batch; /* 0: 1 */
    bool training;
} tcase;

/* An op the DSL does not expose (matmul reading transposed operands), through the IR API. */
static ag_val matmul_t(ag_val a, ag_val b, bool ta, bool tb)
{
    ir_node n = ir_node_make(IR_matmul, 2, (int32_t[]){a.id, b.id});
    n.attr.ta = ta, n.attr.tb = tb;
    char err[256];
    int32_t id = ir_add(a.g, &n, err, sizeof err);
    cr_assert(id >= 0, "%s", err);
    return (ag_val){a.g, id, 0};
}

#define F32(name, ...) ag_input(g, name, AG_F32, __VA_ARGS__)

/* ---- the graphs ---- */

static void g_unary(ag_graph *g)
{
    ag_val x = F32("x", 4);
    ag_output(g, "neg", ag_neg(x));
    ag_output(g, "abs", ag_abs(x));
    ag_output(g, "square", ag_square(x));
}

static void g_transcendental(ag_graph *g)
{
    ag_val x = F32("x", 4);
    ag_output(g, "exp", ag_exp(x));
    ag_output(g, "log", ag_log(x));
    ag_output(g, "sqrt", ag_sqrt(x));
}

static void g_activations(ag_graph *g)
{
    ag_val x = F32("x", 3);
    ag_output(g, "relu", ag_relu(x));
    ag_output(g, "sigmoid", ag_sigmoid(x));
    ag_output(g, "tanh", ag_tanh(x));
}

/* d2l 2.1.2: x + y, x - y, x * y, x / y, x ** y */
static void g_arith(ag_graph *g)
{
    ag_val x = F32("x", 4), y = F32("y", 4);
    ag_output(g, "add", ag_add(x, y));
    ag_output(g, "sub", ag_sub(x, y));
    ag_output(g, "mul", ag_mul(x, y));
    ag_output(g, "div", ag_div(x, y));
    ag_output(g, "pow", ag_pow(x, y));
}

static void g_minmax(ag_graph *g)
{
    ag_val x = F32("x", 4);
    ag_output(g, "maximum", ag_maximum(x, 2.0));
    ag_output(g, "minimum", ag_minimum(x, 2.0));
}

/* d2l 2.1.2: X == Y, elementwise, and the other comparisons */
static void g_compare(ag_graph *g)
{
    ag_val x = F32("x", 3), y = F32("y", 3);
    ag_output(g, "lt", ag_lt(x, y));
    ag_output(g, "le", ag_le(x, y));
    ag_output(g, "gt", ag_gt(x, y));
    ag_output(g, "ge", ag_ge(x, y));
    ag_output(g, "eq", ag_eq(x, y));
    ag_output(g, "ne", ag_ne(x, y));
}

static void g_compare_int(ag_graph *g)
{
    ag_val a = ag_input(g, "a", AG_U8, 3), b = ag_input(g, "b", AG_U8, 3);
    ag_val i = ag_input(g, "i", AG_I32, 2), j = ag_input(g, "j", AG_I32, 2);
    ag_output(g, "lt_u8", ag_lt(a, b));
    ag_output(g, "eq_u8", ag_eq(a, b));
    ag_output(g, "ge_i32", ag_ge(i, j));
}

static void g_where(ag_graph *g)
{
    ag_val c = F32("c", 2, 1), x = F32("x", 3);
    ag_output(g, "where", ag_where(ag_gt(c, 0.0), x, -1.0));
}

static void g_cast(ag_graph *g)
{
    ag_val x = F32("x", 9);
    ag_output(g, "i32", ag_cast(x, AG_I32));
    ag_output(g, "u8", ag_cast(x, AG_U8));
    ag_output(g, "bool", ag_cast(x, AG_BOOL));
}

static void g_cast_to_float(ag_graph *g)
{
    ag_val i = ag_input(g, "i", AG_I32, 2), u = ag_input(g, "u", AG_U8, 2), x = F32("x", 2);
    ag_output(g, "from_i32", ag_cast(i, AG_F32));
    ag_output(g, "from_u8", ag_cast(u, AG_F32));
    ag_output(g, "from_bool", ag_cast(ag_gt(x, 0.0), AG_F32));
    ag_output(g, "u8_to_i32", ag_cast(u, AG_I32));
}

static void g_int_arith(ag_graph *g)
{
    ag_val i = ag_input(g, "i", AG_I32, 3), j = ag_input(g, "j", AG_I32, 3);
    ag_output(g, "add", ag_add(i, j));
    ag_output(g, "neg", ag_neg(i));
    ag_output(g, "abs", ag_abs(i));
    ag_output(g, "sum", ag_sum(i));
    ag_output(g, "max", ag_max(j));
    ag_output(g, "cumsum", ag_cumsum(j, 0));
}

static void g_stop_gradient(ag_graph *g)
{
    ag_val x = F32("x", 2);
    ag_output(g, "detached", ag_stop_gradient(x));
    ag_output(g, "x", x); /* an input returned as is: copied out */
}

/* d2l 2.3.6: A = arange(6).reshape(2, 3); A.sum(axis=0), A.sum(axis=1), A.sum(), mean */
static void g_reduce(ag_graph *g)
{
    ag_val a = F32("A", 2, 3);
    ag_output(g, "sum0", ag_sum(a, 0));
    ag_output(g, "sum1", ag_sum(a, 1));
    ag_output(g, "sum", ag_sum(a));
    ag_output(g, "mean", ag_mean(a));
    ag_output(g, "mean0", ag_mean(a, 0));
    ag_output(g, "sum01", ag_sum(a, 0, 1));
}

/* d2l 2.3.6.1: sum_A = A.sum(axis=1, keepdims=True); A / sum_A */
static void g_keepdims(ag_graph *g)
{
    ag_val a = F32("A", 2, 3);
    ag_val s = ag_sum_keepdims(a, 1);
    ag_output(g, "sum_A", s);
    ag_output(g, "ratio", ag_div(a, s));
    ag_output(g, "max_keep", ag_max_keepdims(a, 0));
    ag_output(g, "mean_keep", ag_mean_keepdims(a, 1));
}

static void g_max(ag_graph *g)
{
    ag_val x = F32("x", 3, 3);
    ag_output(g, "max1", ag_max(x, 1));
    ag_output(g, "argmax1", ag_argmax(x, 1));
    ag_output(g, "max0", ag_max(x, 0));
    ag_output(g, "argmax0", ag_argmax(x, 0));
}

/* d2l 2.3.6.1: A.cumsum(axis=0) */
static void g_cumsum(ag_graph *g)
{
    ag_val a = F32("A", 2, 3);
    ag_output(g, "cumsum0", ag_cumsum(a, 0));
    ag_output(g, "cumsum1", ag_cumsum(a, 1));
}

/* d2l 2.3.7-2.3.9: torch.dot(x, y), torch.mv(A, x), torch.mm(A, B) */
static void g_matmul(ag_graph *g)
{
    ag_val x = F32("x", 4), y = F32("y", 4), a = F32("A", 2, 3), v = F32("v", 3), b = F32("B", 3, 4);
    ag_val r = F32("r", 2);
    ag_output(g, "dot", ag_dot(x, y));
    ag_output(g, "mv", ag_mv(a, v));
    ag_output(g, "mm", ag_mm(a, b));
    ag_output(g, "vm", ag_matmul(r, a));
}

static void g_matmul_t(ag_graph *g)
{
    ag_val at = F32("At", 3, 2), bt = F32("Bt", 4, 3), a = F32("A", 2, 3), ones = F32("ones", 3, 1);
    ag_output(g, "ta_tb", matmul_t(at, bt, true, true));
    ag_output(g, "ta", matmul_t(at, ones, true, false));
    ag_output(g, "tb", matmul_t(a, bt, false, true));
}

/* d2l 2.3.3: A.T, and a rank-3 permutation */
static void g_transpose(ag_graph *g)
{
    ag_val a = F32("A", 2, 3), x = F32("x", 2, 3, 2);
    ag_output(g, "AT", ag_transpose(a));
    ag_output(g, "perm", ag_transpose(x, 2, 0, 1));
}

/* d2l 2.1.1: x = arange(12); X = x.reshape(3, 4) */
static void g_reshape(ag_graph *g)
{
    ag_val x = F32("x", 12);
    ag_val X = ag_reshape(x, 3, 4);
    ag_output(g, "X", X);
    ag_output(g, "X43", ag_reshape(X, 4, 3));
}

/* d2l 2.1.2: torch.cat((X, Y), dim=0) and dim=1 */
static void g_concat(ag_graph *g)
{
    ag_val X = F32("X", 3, 4), Y = F32("Y", 3, 4);
    ag_output(g, "dim0", ag_concat(0, X, Y));
    ag_output(g, "dim1", ag_concat(1, X, Y));
}

/* X[:, 1:3] and X[1:2, :], the book's slicing */
static void g_slice(ag_graph *g)
{
    ag_val X = F32("X", 3, 4);
    ag_output(g, "cols", ag_slice(X, 1, 1, 2));
    ag_output(g, "row", ag_slice(X, 0, 1, 1));
}

/* A window gradient op the DSL leaves to autodiff, through the IR API; result: its shape
 * where the op cannot tell it. */
static ag_val window_op(ir_op op, ag_val a, ag_val b, ir_window w, ag_dims result)
{
    ir_node n = ir_node_make(op, b.g ? 2 : 1, (int32_t[]){a.id, b.id});
    n.attr.win = w;
    n.shape.rank = result.n;
    for (int i = 0; i < result.n; i++)
        n.shape.dim[i] = result.d[i];
    char err[256];
    int32_t id = ir_add(a.g, &n, err, sizeof err);
    cr_assert(id >= 0, "%s", err);
    return (ag_val){a.g, id, 0};
}

/* torch.nn.functional.conv2d(arange(9).reshape(1,1,3,3), ones(1,1,2,2)): the book's 7.2
 * cross-correlation; with padding 1 and stride 2; groups 2 with 1x1 kernels; the gradients
 * of the first for dy = ones */
static void g_conv(ag_graph *g)
{
    ag_val x = F32("x", 1, 1, 3, 3), k = F32("k", 1, 1, 2, 2), x2 = F32("x2", 1, 2, 1, 2), k2 = F32("k2", 2, 1, 1, 1);
    ag_output(g, "corr2d", ag_conv2d(x, k));
    ag_output(g, "padded", ag_conv2d(x, k, .pad = 1, .stride = 2));
    ag_output(g, "groups", ag_conv2d(x2, k2, .groups = 2));
    ir_window w = {{2, 2}, {1, 1}, {0, 0}, {1, 1}, 1};
    ag_val dy = ag_full(g, 1, 1, 1, 2, 2);
    ag_output(g, "dx", window_op(IR_conv2d_input_grad, dy, k, w, (ag_dims){4, {1, 1, 3, 3}}));
    ag_output(g, "dk", window_op(IR_conv2d_weight_grad, x, dy, w, (ag_dims){4, {1, 1, 2, 2}}));
}

/* max and average pooling, d2l 7.5, and their gradients: a tie routes to the first maximum;
 * average pooling counts the padding in its divisor */
static void g_pool(ag_graph *g)
{
    ag_val x = F32("x", 1, 1, 4, 4), t = F32("t", 1, 1, 2, 2);
    ag_output(g, "max", ag_max_pool2d(x, 2));
    ag_output(g, "avg_pad", ag_avg_pool2d(t, 3, .stride = 1, .pad = 1));
    ir_window w2 = {{2, 2}, {2, 2}, {0, 0}, {1, 1}, 1}, w3 = {{3, 3}, {1, 1}, {1, 1}, {1, 1}, 1};
    ag_output(g, "max_tie", window_op(IR_max_pool2d_grad, t, ag_full(g, 5, 1, 1, 1, 1), w2, (ag_dims){0}));
    ag_output(g, "avg_grad",
              window_op(IR_avg_pool2d_grad, ag_full(g, 1, 1, 1, 2, 2), (ag_val){0}, w3, (ag_dims){4, {1, 1, 2, 2}}));
}

/* d2l 2.1.3: a = arange(3).reshape(3, 1); b = arange(2).reshape(1, 2); a + b */
static void g_broadcast(ag_graph *g)
{
    ag_val a = F32("a", 3, 1), b = F32("b", 1, 2);
    ag_output(g, "a_plus_b", ag_add(a, b));
    ag_output(g, "b_to_3x2", ag_broadcast_to(b, 3, 2));
    ag_output(g, "full", ag_full(g, 7, 2));
    ag_output(g, "scalar_plus", ag_add(b, ag_sum(a)));
}

static void g_softmax(ag_graph *g)
{
    ag_val x = F32("X", 2, 3), y = F32("Y", 2, 3);
    ag_val p = ag_softmax(x);
    ag_output(g, "softmax", p);
    ag_output(g, "row_sums", ag_sum(p, 1));
    ag_output(g, "log_softmax", ag_log_softmax(x));
    ag_output(g, "softmax0", ag_softmax(y, 0));
    ag_output(g, "log_softmax0", ag_log_softmax(y, 0));
}

static void g_one_hot(ag_graph *g)
{
    ag_val y = ag_input(g, "y", AG_I32, 4);
    ag_output(g, "one_hot", ag_one_hot(y, 3));
}

static void g_cross_entropy(ag_graph *g)
{
    ag_val logits = F32("logits", 2, 3), y = ag_input(g, "y", AG_I32, 2);
    ag_output(g, "loss", ag_cross_entropy(logits, y));
}

/* d2l 2.3.10: the L2 norm of u = [3, -4] is 5; its L1 norm is 7 */
static void g_norm(ag_graph *g)
{
    ag_val u = F32("u", 2);
    ag_output(g, "l2", ag_norm(u));
    ag_output(g, "l1", ag_norm_l1(u));
}

static void g_dropout0(ag_graph *g) { ag_output(g, "y", ag_dropout(F32("x", 4), 0.0)); }
static void g_dropout1(ag_graph *g) { ag_output(g, "y", ag_dropout(F32("x", 4), 1.0)); }
static void g_dropout5(ag_graph *g) { ag_output(g, "y", ag_dropout(F32("x", 4), 0.5)); }

/* A batch N bound at run time: an affine layer and a mean over the batch. */
static void g_batch(ag_graph *g)
{
    ag_val x = F32("x", AG_N, 2);
    ag_val W = ag_param(g, "W", ag_zeros(), 2, 2), b = ag_param(g, "b", ag_zeros(), 2);
    ag_output(g, "y", ag_add(ag_matmul(x, W), b));
    ag_output(g, "mean", ag_mean(x, 0));
    ag_output(g, "count", ag_sum(ag_cast(ag_gt(x, -1.0), AG_I32)));
}

/* The fused cross-entropy, which only passes make (fuse_softmax_ce). */
static void g_softmax_ce(ag_graph *g)
{
    ag_val a = F32("logits", 2, 3), y = ag_input(g, "y", AG_I32, 2), d = F32("d", 2);
    ir_node n = ir_node_make(IR_softmax_ce, 2, (int32_t[]){a.id, y.id});
    ir_node m = ir_node_make(IR_softmax_ce_grad, 3, (int32_t[]){a.id, y.id, d.id});
    char err[256];
    int32_t loss = ir_add(g, &n, err, sizeof err), grad = ir_add(g, &m, err, sizeof err);
    cr_assert(loss >= 0 && grad >= 0, "%s", err);
    ag_val vl = {g, loss, 0}, vg = {g, grad, 0};
    ag_output(g, "loss", vl);
    ag_output(g, "grad", vg);
}

/* The sum over the ranks, which only the distribute pass makes: the identity on one rank. */
static void g_allreduce(ag_graph *g)
{
    ag_val x = F32("x", 2, 2);
    ir_node n = ir_node_make(IR_allreduce, 1, &x.id);
    n.attr.bucket = 1;
    char err[256];
    int32_t id = ir_add(g, &n, err, sizeof err);
    cr_assert(id >= 0, "%s", err);
    ag_val y = {g, id, 0};
    ag_output(g, "y", y);
}

/* A kernel body from its text, adopted by g; returns its index. */
static int32_t add_body(ag_graph *g, const char *text)
{
    char err[256];
    ir_graph *b = ir_parse(text, strlen(text), "body.ir", err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    return ir_add_kernel(g, b);
}

/* A kernel node taking output `out` of body k. */
static ag_val kernel(ag_graph *g, int32_t k, const char *out, int32_t nin, const int32_t *in)
{
    ir_node n = ir_node_make(IR_kernel, nin, in);
    n.attr.kernel = k;
    n.attr.output = ir_find_output(g->kernels[k], out);
    char err[256];
    int32_t id = ir_add(g, &n, err, sizeof err);
    cr_assert(id >= 0, "%s", err);
    return (ag_val){g, id, 0};
}

/* relu(p0 + p1) as one kernel, p1 broadcast along the rows */
static void g_kernel(ag_graph *g)
{
    int32_t k = add_body(g, "graph @b {\n  %p0: f32[2,2] = input\n  %p1: f32[2] = input\n"
                            "  %0: f32[2,2] = add %p0, %p1\n  %1: f32[2,2] = relu %0\n  return y: %1\n}\n");
    ag_val x = F32("x", 2, 2), b = F32("b", 2);
    ag_output(g, "y", kernel(g, k, "y", 2, (int32_t[]){x.id, b.id}));
}

/* A multi-output group: sibling nodes take x + y, x * y and the dot product from one body,
 * in another order than the body lists them, and ordinary nodes read them. */
static void g_kernel_outputs(ag_graph *g)
{
    int32_t k = add_body(g, "graph @b {\n  %p0: f32[3] = input\n  %p1: f32[3] = input\n"
                            "  %0: f32[3] = add %p0, %p1\n  %1: f32[3] = mul %p0, %p1\n"
                            "  %2: f32[] = sum %1 axes=[0]\n  return sum: %0, prod: %1, dot: %2\n}\n");
    ag_val x = F32("x", 3), y = F32("y", 3);
    const int32_t in[2] = {x.id, y.id};
    ag_val dot = kernel(g, k, "dot", 2, in), prod = kernel(g, k, "prod", 2, in), sum = kernel(g, k, "sum", 2, in);
    ag_output(g, "prod", prod);
    ag_output(g, "sum", sum);
    ag_output(g, "dot", dot);
    ag_output(g, "both", ag_sub(sum, prod));
}

/* ---- the table ---- */

#define ARANGE6 V(0, 1, 2, 3, 4, 5)
#define ARANGE12 V(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
#define S1 0.7310585786300049  /* sigmoid(1) */
#define S2 0.8807970779778823  /* sigmoid(2) */
#define S3 0.9525741268224334  /* sigmoid(3) */
#define LSE 0.4076059644443804 /* log(e^0 + e^-1 + e^-2) */

/* a case a line or two, as a table reads */
/* clang-format off */
static const tcase cases[] = {
    {"neg, abs, square", g_unary, .in = {{"x", V(1, -2, 3, -4.5)}},
     {V(-1, 2, -3, 4.5), V(1, 2, 3, 4.5), V(1, 4, 9, 20.25)}},
    {"exp, log, sqrt, with log 0 and the roots of negatives", g_transcendental, .in = {{"x", V(0, 1, 4, -1)}},
     {V(1, 2.718281828459045, 54.598150033144236, 0.36787944117144233), V(-INFINITY, 0, 1.3862943611198906, NAN),
      V(0, 1, 2, NAN)}},
    {"relu, sigmoid, tanh", g_activations, .in = {{"x", V(-2, 0, 3)}},
     {V(0, 0, 3), V(1 - S2, 0.5, S3), V(-0.9640275800758169, 0, 0.9950547536867305)}},
    {"d2l 2.1.2: x + y, x - y, x * y, x / y, x ** y", g_arith, .in = {{"x", V(1, 2, 4, 8)}, {"y", V(2, 2, 2, 2)}},
     {V(3, 4, 6, 10), V(-1, 0, 2, 6), V(2, 4, 8, 16), V(0.5, 1, 2, 4), V(1, 4, 16, 64)}},
    {"maximum and minimum with a number", g_minmax, .in = {{"x", V(1, 5, -3, 2)}}, {V(2, 5, 2, 2), V(1, 2, -3, 2)}},
    {"d2l 2.1.2: comparisons give bool", g_compare, .in = {{"x", V(1, 2, 3)}, {"y", V(2, 2, 2)}},
     {V(1, 0, 0), V(1, 1, 0), V(0, 0, 1), V(0, 1, 1), V(0, 1, 0), V(1, 0, 1)}},
    {"comparisons of u8 and i32", g_compare_int,
     .in = {{"a", V(0, 255, 7)}, {"b", V(255, 255, 3)}, {"i", V(-2147483647 - 1., 5)}, {"j", V(2147483647, 5)}},
     {V(1, 0, 0), V(0, 1, 0), V(0, 1)}},
    {"where broadcasts condition [2,1], x [3] and a number", g_where, .in = {{"c", V(1, -1)}, {"x", V(1, 2, 3)}},
     {VS("[2,3]", 1, 2, 3, -1, -1, -1)}},
    {"cast to integers truncates, saturates, NaN gives 0; bool is x != 0", g_cast,
     .in = {{"x", V(-1.5, 2.7, 1e10, -1e10, NAN, INFINITY, -INFINITY, 300, 0)}},
     {V(-1, 2, 2147483647, -2147483648., 0, 2147483647, -2147483648., 300, 0), V(0, 2, 255, 0, 0, 255, 0, 255, 0),
      V(1, 1, 1, 1, 1, 1, 1, 1, 0)}},
    {"cast to f32 and between integers", g_cast_to_float, .in = {{"i", V(7, -3)}, {"u", V(0, 255)}, {"x", V(-1, 2)}},
     {V(7, -3), V(0, 255), V(0, 1), V(0, 255)}},
    {"i32 arithmetic is exact and saturates", g_int_arith,
     .in = {{"i", V(2147483647, -2147483648., -7)}, {"j", V(1, 3, 10)}},
     {V(2147483647, -2147483645., 3), V(-2147483647, 2147483647, 7), V(2147483647, 2147483647, 7), V(-8), V(10),
      V(1, 4, 14)}},
    {"stop_gradient is the identity", g_stop_gradient, .in = {{"x", V(1.5, -2)}}, {V(1.5, -2), V(1.5, -2)}},
    {"d2l 2.3.6: sum along an axis drops it; mean", g_reduce, .in = {{"A", ARANGE6}},
     {VS("[3]", 3, 5, 7), VS("[2]", 3, 12), VS("[]", 15), VS("[]", 2.5), VS("[3]", 1.5, 2.5, 3.5), VS("[]", 15)}},
    {"d2l 2.3.6.1: sum with keepdims, A / sum_A", g_keepdims, .in = {{"A", ARANGE6}},
     {VS("[2,1]", 3, 12), VS("[2,3]", 0, 1 / 3., 2 / 3., 0.25, 1 / 3., 5 / 12.), VS("[1,3]", 3, 4, 5),
      VS("[2,1]", 1, 4)}},
    {"max lets NaN win; argmax takes the first maximum, the first NaN", g_max,
     .in = {{"x", V(1, 5, 5, 7, 2, 7, 0, NAN, NAN)}},
     {VS("[3]", 5, 7, NAN), VS("[3]", 1, 0, 1), VS("[3]", 7, NAN, NAN), VS("[3]", 1, 2, 2)}},
    {"d2l 2.3.6.1: cumsum along axis 0 and 1", g_cumsum, .in = {{"A", ARANGE6}},
     {VS("[2,3]", 0, 1, 2, 3, 5, 7), VS("[2,3]", 0, 1, 3, 3, 7, 12)}},
    {"d2l 2.3.7-2.3.9: dot, mv, mm, vector times matrix", g_matmul,
     .in = {{"x", V(0, 1, 2, 3)}, {"y", V(1, 1, 1, 1)}, {"A", ARANGE6}, {"v", V(0, 1, 2)},
      {"B", V(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)}, {"r", V(1, 2)}},
     {VS("[]", 6), VS("[2]", 5, 14), VS("[2,4]", 3, 3, 3, 3, 12, 12, 12, 12), VS("[3]", 6, 9, 12)}},
    {"matmul reading operands transposed", g_matmul_t,
     .in = {{"At", ARANGE6}, {"Bt", ARANGE12}, {"A", ARANGE6}, {"ones", V(1, 1, 1)}},
     {VS("[2,4]", 10, 28, 46, 64, 13, 40, 67, 94), VS("[2,1]", 6, 9),
      VS("[2,4]", 5, 14, 23, 32, 14, 50, 86, 122)}},
    {"d2l 2.3.3: A.T, and a rank-3 permutation", g_transpose, .in = {{"A", ARANGE6}, {"x", ARANGE12}},
     {VS("[3,2]", 0, 3, 1, 4, 2, 5), VS("[2,2,3]", 0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11)}},
    {"d2l 2.1.1: reshape keeps row-major order", g_reshape, .in = {{"x", ARANGE12}},
     {VS("[3,4]", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), VS("[4,3]", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)}},
    {"d2l 2.1.2: torch.cat((X, Y), dim=0) and dim=1", g_concat,
     .in = {{"X", ARANGE12}, {"Y", V(2, 1, 4, 3, 1, 2, 3, 4, 4, 3, 2, 1)}},
     {VS("[6,4]", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 2, 1, 4, 3, 1, 2, 3, 4, 4, 3, 2, 1),
      VS("[3,8]", 0, 1, 2, 3, 2, 1, 4, 3, 4, 5, 6, 7, 1, 2, 3, 4, 8, 9, 10, 11, 4, 3, 2, 1)}},
    {"d2l 2.1.4: X[:, 1:3] and X[1:2, :]", g_slice, .in = {{"X", ARANGE12}},
     {VS("[3,2]", 1, 2, 5, 6, 9, 10), VS("[1,4]", 4, 5, 6, 7)}},
    {"d2l 2.1.3: (3,1) + (1,2) broadcasts to (3,2); broadcast_to; full", g_broadcast,
     .in = {{"a", V(0, 1, 2)}, {"b", V(0, 1)}},
     {VS("[3,2]", 0, 1, 1, 2, 2, 3), VS("[3,2]", 0, 1, 0, 1, 0, 1), VS("[2]", 7, 7), VS("[1,2]", 3, 4)}},
    {"softmax rows sum to 1, stable at 1000; log_softmax; along axis 0", g_softmax,
     .in = {{"X", V(1, 2, 3, 1000, 1001, 1002)}, {"Y", V(1, 2, 3, 1, 1, 1)}},
     {V(0.09003057317038046, 0.24472847105479764, 0.6652409557748218, 0.09003057317038046, 0.24472847105479764,
        0.6652409557748218),
      V(1, 1), V(-2 - LSE, -1 - LSE, -LSE, -2 - LSE, -1 - LSE, -LSE), V(0.5, S1, S2, 0.5, 1 - S1, 1 - S2),
      V(-0.6931471805599453, -0.3132616875182228, -0.12692801104297263, -0.6931471805599453, -1.3132616875182228,
        -2.1269280110429727)}},
    {"one_hot: out-of-range labels give a zero row", g_one_hot, .in = {{"y", V(0, 2, -1, 3)}},
     {VS("[4,3]", 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0)}},
    {"cross_entropy: -log softmax at the label", g_cross_entropy,
     .in = {{"logits", V(1, 2, 3, 1, 1, 1)}, {"y", V(2, 0)}}, {VS("[2]", LSE, 1.0986122886681098)}},
    {"softmax_ce and its gradient: softmax minus one_hot, times d", g_softmax_ce,
     .in = {{"logits", V(1, 2, 3, 1, 1, 1)}, {"y", V(2, 0)}, {"d", V(1, 2)}},
     {VS("[2]", LSE, 1.0986122886681098),
      VS("[2,3]", 0.09003057317038046, 0.24472847105479764, 0.6652409557748218 - 1, -4 / 3., 2 / 3., 2 / 3.)}},
    {"allreduce: on one rank, its operand", g_allreduce, .in = {{"x", V(1, -2, 0.5, 4)}},
     {VS("[2,2]", 1, -2, 0.5, 4)}},
    {"kernel: relu(x + b) by its body", g_kernel, .in = {{"x", V(1, -2, 3, -4)}, {"b", V(0.5, -4)}},
     {VS("[2,2]", 1.5, 0, 3.5, 0)}},
    {"kernel: sibling nodes take the outputs of one body", g_kernel_outputs,
     .in = {{"x", V(1, 2, 3)}, {"y", V(4, 5, -6)}},
     {VS("[3]", 4, 10, -18), VS("[3]", 5, 7, -3), VS("[]", -4), VS("[3]", 1, -3, 15)}},
    {"d2l 7.2: conv2d as cross-correlation; padding, stride, groups; its gradients", g_conv,
     .in = {{"x", V(0, 1, 2, 3, 4, 5, 6, 7, 8)}, {"k", V(1, 1, 1, 1)}, {"x2", V(1, 2, 3, 4)}, {"k2", V(2, 3)}},
     {VS("[1,1,2,2]", 8, 12, 20, 24), VS("[1,1,2,2]", 0, 3, 9, 24), VS("[1,2,1,2]", 2, 4, 9, 12),
      VS("[1,1,3,3]", 1, 2, 1, 2, 4, 2, 1, 2, 1), VS("[1,1,2,2]", 8, 12, 20, 24)}},
    {"d2l 7.5: max and average pooling; the first maximum takes a tie's gradient", g_pool,
     .in = {{"x", V(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)}, {"t", V(1, 1, 1, 1)}},
     {VS("[1,1,2,2]", 5, 7, 13, 15), VS("[1,1,2,2]", 4 / 9., 4 / 9., 4 / 9., 4 / 9.), VS("[1,1,2,2]", 5, 0, 0, 0),
      VS("[1,1,2,2]", 4 / 9., 4 / 9., 4 / 9., 4 / 9.)}},
    {"d2l 2.3.10: norm of [3, -4] is 5, L1 norm 7", g_norm, .in = {{"u", V(3, -4)}}, {VS("[]", 5), VS("[]", 7)}},
    {"dropout p = 0 while training is the identity", g_dropout0, .in = {{"x", V(1, -2, 3, 4)}}, {V(1, -2, 3, 4)},
     .training = true},
    {"dropout p = 1 while training gives zeros", g_dropout1, .in = {{"x", V(1, -2, 3, 4)}}, {V(0, 0, 0, 0)},
     .training = true},
    {"dropout when not training is the identity", g_dropout5, .in = {{"x", V(1, -2, 3, 4)}}, {V(1, -2, 3, 4)}},
    {"symbolic batch N = 1", g_batch, .in = {{"x", V(1, 2)}, {"W", V(1, 2, 3, 4)}, {"b", V(0.5, -0.5)}},
     {VS("[1,2]", 7.5, 9.5), VS("[2]", 1, 2), VS("[]", 2)}, .batch = 1},
    {"symbolic batch N = 7", g_batch,
     .in = {{"x", V(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)}, {"W", V(1, 2, 3, 4)}, {"b", V(0.5, -0.5)}},
     {VS("[7,2]", 3.5, 3.5, 11.5, 15.5, 19.5, 27.5, 27.5, 39.5, 35.5, 51.5, 43.5, 63.5, 51.5, 75.5), VS("[2]", 6, 7),
      VS("[]", 14)},
     .batch = 7},
};
/* clang-format on */
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* ---- running a row ---- */

static const ir_run run_defaults = {.batch = 1, .seed = 42, .step = 3};

static ag_graph *build(const tcase *c)
{
    ag_graph *g = ag_graph_new("test");
    c->build(g);
    int nerr = ag_graph_finish(g);
    cr_assert(nerr == 0, "%s: %s", c->what, nerr ? ag_graph_error(g, 0) : "");
    return g;
}

static bool close_to(double got, double want, bool exact, double tol)
{
    if (want != want)
        return got != got;
    if (exact || isinf(want))
        return got == want;
    return fabs(got - want) <= tol * fmax(1, fabs(want));
}

static void run_case(const tcase *c, bool f64)
{
    const char *mode = f64 ? "f64" : "f32";
    ag_graph *g = build(c);
    ir_run run = run_defaults;
    run.f64 = f64;
    run.batch = c->batch ? c->batch : 1;
    run.training = c->training;

    const ir_tensor **bound = calloc((size_t)g->n, sizeof *bound);
    ir_tensor *owned = calloc((size_t)g->n, sizeof *owned);
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if (n->op != IR_input && n->op != IR_param)
            continue;
        const vals *v = NULL;
        for (int k = 0; k < 6 && c->in[k].name; k++)
            if (strcmp(c->in[k].name, n->attr.name) == 0)
                v = &c->in[k].v;
        cr_assert(v, "%s: no values for %s", c->what, n->attr.name);
        ir_shape s = ir_bind_shape(&n->shape, run.batch);
        owned[i] = ir_tensor_new(ir_storage_dtype(n->dtype, f64), &s);
        cr_assert(owned[i].data);
        cr_assert_eq(ir_tensor_numel(&owned[i]), v->n, "%s: %s has %lld elements, the row gives %d", c->what,
                     n->attr.name, (long long)ir_tensor_numel(&owned[i]), v->n);
        for (int k = 0; k < v->n; k++)
            ir_tensor_set(&owned[i], k, v->v[k]);
        bound[i] = &owned[i];
    }

    ir_tensor outs[6];
    char err[256];
    cr_assert(g->nout <= 6);
    bool ok = ir_interp(g, &run, bound, outs, err, sizeof err);
    cr_assert(ok, "%s [%s]: %s", c->what, mode, err);
    for (int k = g->nout; k < 6; k++)
        cr_expect_eq(c->out[k].n, 0, "%s: the row lists %d outputs or more, the graph has %d", c->what, k + 1, g->nout);
    for (int k = 0; k < g->nout; k++) {
        const vals *want = &c->out[k];
        const ir_node *n = &g->node[g->out[k].id];
        const ir_tensor *t = &outs[k];
        const char *name = g->out[k].name;
        cr_expect_eq(t->dtype, ir_storage_dtype(n->dtype, f64), "%s [%s] %s: dtype %s", c->what, mode, name,
                     ir_dtype_name(t->dtype));
        if (want->shape) {
            char buf[64];
            cr_expect_str_eq(ir_shape_str(&t->shape, buf, sizeof buf), want->shape, "%s [%s] %s: shape", c->what, mode,
                             name);
        }
        int64_t count = ir_tensor_numel(t);
        cr_expect_eq(count, want->n, "%s [%s] %s: %lld elements, expected %d", c->what, mode, name, (long long)count,
                     want->n);
        for (int64_t i = 0; i < count && i < want->n; i++) {
            double got = ir_tensor_get(t, i);
            bool exact = !ir_is_float(t->dtype);
            cr_expect(close_to(got, want->v[i], exact, f64 ? 1e-12 : 1e-6), "%s [%s] %s[%lld]: got %.17g, want %.17g",
                      c->what, mode, name, (long long)i, got, want->v[i]);
        }
        ir_tensor_free(&outs[k]);
    }
    for (int32_t i = 0; i < g->n; i++)
        ir_tensor_free(&owned[i]);
    free(owned);
    free(bound);
    ag_graph_free(g);
}

Test(interp, table_f32)
{
    for (int i = 0; i < NCASES; i++)
        run_case(&cases[i], false);
}

Test(interp, table_f64)
{
    for (int i = 0; i < NCASES; i++)
        run_case(&cases[i], true);
}

/* Adding an op to the table without a row here fails this test. */
Test(interp, every_op_has_a_case)
{
    bool used[IR_OP_COUNT] = {0};
    for (int i = 0; i < NCASES; i++) {
        ag_graph *g = build(&cases[i]);
        for (int32_t k = 0; k < g->n; k++)
            used[g->node[k].op] = true;
        ag_graph_free(g);
    }
    for (int op = 0; op < IR_OP_COUNT; op++)
        cr_expect(used[op], "op %s appears in no interpreter case", ir_ops[op].name);
}

/* ---- what a row cannot say ---- */

/* One f32 input x, one output; run in the given mode. Returns the output (caller frees). */
static ir_tensor run1(ag_graph *g, const double *x, int64_t nx, ir_run run)
{
    int32_t id = ir_find_source(g, IR_input, "x");
    cr_assert(id >= 0 && g->nout == 1);
    ir_shape s = ir_bind_shape(&g->node[id].shape, run.batch);
    ir_tensor in = ir_tensor_new(ir_storage_dtype(AG_F32, run.f64), &s);
    cr_assert_eq(ir_tensor_numel(&in), nx);
    for (int64_t i = 0; i < nx; i++)
        ir_tensor_set(&in, i, x[i]);
    const ir_tensor **bound = calloc((size_t)g->n, sizeof *bound);
    bound[id] = &in;
    ir_tensor out;
    char err[256];
    cr_assert(ir_interp(g, &run, bound, &out, err, sizeof err), "%s", err);
    ir_tensor_free(&in);
    free(bound);
    return out;
}

/* 2^24 + 1 + 1: float rounds each sum back to 2^24 (ties to even); double keeps both ones. */
Test(interp, f32_mode_rounds_each_step_to_float)
{
    static const double x[3] = {16777216, 1, 1};
    static const double want32[4] = {16777216, 16777216, 50331648, 16777215};
    static const double want64[4] = {16777218, 16777218, 50331651, 16777216};
    for (int form = 0; form < 4; form++) {
        ag_graph *g = ag_graph_new("round");
        ag_val v = ag_input(g, "x", AG_F32, 3);
        if (form == 0)
            ag_output(g, "y", ag_sum(v));
        else if (form == 1)
            ag_output(g, "y", ag_dot(v, ag_full(g, 1, 3)));
        else if (form == 2)
            ag_output(g, "y", ag_sum(ag_cumsum(v, 0), 0)); /* 2^24, 2^24, 2^24 in float */
        else
            ag_output(g, "y", ag_add(ag_add(v, 1.0), -1.0)); /* float: 2^24 + 1 is 2^24 */
        ir_run run = run_defaults;
        ir_tensor r32 = run1(g, x, 3, run);
        run.f64 = true;
        ir_tensor r64 = run1(g, x, 3, run);
        cr_expect_eq(r32.dtype, AG_F32);
        cr_expect_eq(r64.dtype, AG_F64);
        cr_expect_eq(ir_tensor_get(&r32, 0), want32[form], "form %d f32: %.17g", form, ir_tensor_get(&r32, 0));
        cr_expect_eq(ir_tensor_get(&r64, 0), want64[form], "form %d f64: %.17g", form, ir_tensor_get(&r64, 0));
        ir_tensor_free(&r32);
        ir_tensor_free(&r64);
        ag_graph_free(g);
    }
}

/* Training dropout: each element kept exactly when rt_dropout_keep says so, scaled by
 * 1/(1-p); about 1-p of them kept; another step gives another mask, the same step the same. */
Test(interp, dropout_mask_matches_the_runtime)
{
    enum { n = 10000 };
    static double x[n];
    for (int i = 0; i < n; i++)
        x[i] = 1 + i % 7;
    const double p = 0.3;
    ag_graph *g = ag_graph_new("dropout");
    ag_val v = ag_input(g, "x", AG_F32, n);
    ag_dropout(v, 0.5); /* site 1, unused: the next one is site 2 */
    ag_output(g, "y", ag_dropout(v, p));
    int32_t site = g->node[g->out[0].id].attr.site;
    cr_assert_eq(site, 2);
    for (int mode = 0; mode < 2; mode++) {
        ir_run run = run_defaults;
        run.f64 = mode;
        run.training = true;
        ir_tensor y = run1(g, x, n, run);
        uint64_t threshold = rt_dropout_threshold(p);
        int kept = 0, mismatches = 0;
        double scale = mode ? 1 / (1 - p) : (float)(1 / (1 - p));
        for (int i = 0; i < n; i++) {
            bool keep = rt_dropout_keep(run.seed, (uint32_t)site, run.step, (uint64_t)i, threshold);
            double want = keep ? (mode ? x[i] * scale : (float)(x[i] * scale)) : 0;
            kept += keep;
            mismatches += ir_tensor_get(&y, i) != want;
        }
        cr_expect_eq(mismatches, 0, "mode %d: %d elements differ from rt_dropout_keep", mode, mismatches);
        /* binomial: mean 7000, sd 46 */
        cr_expect(kept > 6800 && kept < 7200, "mode %d: %d of %d kept at p = %g", mode, kept, n, p);

        ir_tensor again = run1(g, x, n, run);
        run.step++;
        ir_tensor other = run1(g, x, n, run);
        int same = 0, differ = 0;
        for (int i = 0; i < n; i++) {
            same += ir_tensor_get(&again, i) == ir_tensor_get(&y, i);
            differ += (ir_tensor_get(&other, i) == 0) != (ir_tensor_get(&y, i) == 0);
        }
        cr_expect_eq(same, n, "mode %d: the same step gave another mask", mode);
        cr_expect(differ > 3000, "mode %d: the next step's mask differs in only %d places", mode, differ);
        ir_tensor_free(&y);
        ir_tensor_free(&again);
        ir_tensor_free(&other);
    }
    ag_graph_free(g);
}

/* Each bad binding is refused with its message, and the outputs are left empty. */
Test(interp, wrongly_bound_inputs)
{
    ag_graph *g = ag_graph_new("bind");
    ag_val x = ag_input(g, "x", AG_U8, AG_N, 784);
    ag_val W = ag_param(g, "W", ag_zeros(), 784, 2);
    ag_output(g, "y", ag_matmul(ag_cast(x, AG_F32), W));
    cr_assert_eq(ag_graph_finish(g), 0);

    ir_shape s783 = {2, {7, 783}}, s784 = {2, {7, 784}}, sw = {2, {784, 2}};
    ir_tensor bad = ir_tensor_new(AG_U8, &s783), good = ir_tensor_new(AG_U8, &s784);
    ir_tensor bad_dtype = ir_tensor_new(AG_F32, &s784), w32 = ir_tensor_new(AG_F32, &sw);
    const ir_tensor *bound[16] = {0};
    cr_assert(g->n <= 16);
    ir_run run = run_defaults;
    run.batch = 7;
    ir_tensor out = {AG_F32, {0, {0}}, (void *)&run};
    char err[256];
    struct {
        const ir_tensor *x, *w;
        bool f64;
        int64_t batch;
        const char *msg;
    } rows[] = {
        {&bad, &w32, false, 7, "input x: expected u8[7,784], got u8[7,783]"},
        {&bad_dtype, &w32, false, 7, "input x: expected u8[7,784], got f32[7,784]"},
        {&good, &w32, false, 6, "input x: expected u8[6,784], got u8[7,784]"},
        {&good, &w32, true, 7, "param W: expected f64[784,2], got f32[784,2]"},
        {NULL, &w32, false, 7, "input x: not bound (expected u8[7,784])"},
        {&good, &w32, false, 0, "batch 0: must be at least 1"},
        {&good, &w32, false, INT64_MAX / 100, "node 0 (input): u8[N,784] is too large at batch 92233720368547758"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        bound[x.id] = rows[i].x;
        bound[W.id] = rows[i].w;
        run.f64 = rows[i].f64;
        run.batch = rows[i].batch;
        cr_expect(!ir_interp(g, &run, bound, &out, err, sizeof err), "row %zu ran", i);
        cr_expect_str_eq(err, rows[i].msg);
        cr_expect_null(out.data, "row %zu left an output", i);
    }
    bound[x.id] = &good;
    run.f64 = false;
    run.batch = 7;
    cr_expect(ir_interp(g, &run, bound, &out, err, sizeof err), "%s", err);
    cr_expect_eq(ir_tensor_numel(&out), 14);
    ir_tensor_free(&out);
    ir_tensor_free(&bad);
    ir_tensor_free(&good);
    ir_tensor_free(&bad_dtype);
    ir_tensor_free(&w32);
    ag_graph_free(g);
}

/* The conversions of ir_tensor_set, at the edges of each range (UBSan watches). */
Test(interp, tensor_set_conversions)
{
    static const struct {
        ag_dtype t;
        double v, want;
    } rows[] = {
        {AG_I32, 2147483646.9, 2147483646},
        {AG_I32, 2147483647.5, 2147483647},
        {AG_I32, -2147483648.9, -2147483648.},
        {AG_I32, 1e300, 2147483647},
        {AG_I32, -0.9, 0},
        {AG_I32, NAN, 0},
        {AG_U8, 254.99, 254},
        {AG_U8, 256, 255},
        {AG_U8, -0.5, 0},
        {AG_U8, -INFINITY, 0},
        {AG_U8, NAN, 0},
        {AG_BOOL, -0.0, 0},
        {AG_BOOL, 1e-300, 1},
        {AG_BOOL, NAN, 1},
        {AG_F32, 1e300, INFINITY},
        {AG_F32, 0.1, (float)0.1},
        {AG_F64, 0.1, 0.1},
    };
    ir_shape one = {1, {1}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ir_tensor t = ir_tensor_new(rows[i].t, &one);
        ir_tensor_set(&t, 0, rows[i].v);
        cr_expect_eq(ir_tensor_get(&t, 0), rows[i].want, "%s <- %g: got %.17g", ir_dtype_name(rows[i].t), rows[i].v,
                     ir_tensor_get(&t, 0));
        ir_tensor_free(&t);
    }
}

/* A kernel node gives the very bits of the nodes it replaces (the same ops in the same
 * order), dropout included, in f32 and f64 mode, at a batch bound at run time. */
Test(interp, kernel_matches_the_unfused_nodes)
{
    static const char unfused[] = "graph @u {\n"
                                  "  %x: f32[N,4] = input\n"
                                  "  %W: f32[4,3] = param normal(0, 1)\n"
                                  "  %b: f32[3] = param normal(0, 1)\n"
                                  "  %0: f32[N,3] = matmul %x, %W\n"
                                  "  %1: f32[N,3] = add %0, %b\n"
                                  "  %2: f32[N,3] = tanh %1\n"
                                  "  %3: f32[N,3] = dropout %2 p=0.5 site=1\n"
                                  "  %4: f32[N,3] = softmax %3 axis=1\n"
                                  "  %5: f32[N] = sum %1 axes=[1]\n"
                                  "  %6: f32[N,3] = mul %4, 3.0\n"
                                  "  return p: %6, s: %5, h: %2\n"
                                  "}\n";
    static const char fused[] = "kernel @k0 {\n"
                                "  %p0: f32[N,4] = input\n"
                                "  %p1: f32[4,3] = input\n"
                                "  %p2: f32[3] = input\n"
                                "  %0: f32[N,3] = matmul %p0, %p1\n"
                                "  %1: f32[N,3] = add %0, %p2\n"
                                "  %2: f32[N,3] = tanh %1\n"
                                "  %3: f32[N,3] = dropout %2 p=0.5 site=1\n"
                                "  %4: f32[N,3] = softmax %3 axis=1\n"
                                "  %5: f32[N] = sum %1 axes=[1]\n"
                                "  return p: %4, s: %5, h: %2\n"
                                "}\n"
                                "\n"
                                "graph @f {\n"
                                "  %x: f32[N,4] = input\n"
                                "  %W: f32[4,3] = param normal(0, 1)\n"
                                "  %b: f32[3] = param normal(0, 1)\n"
                                "  %0: f32[N,3] = kernel %x, %W, %b body=@k0 out=p\n"
                                "  %1: f32[N] = kernel %x, %W, %b body=@k0 out=s\n"
                                "  %2: f32[N,3] = kernel %x, %W, %b body=@k0 out=h\n"
                                "  %3: f32[N,3] = mul %0, 3.0\n"
                                "  return p: %3, s: %1, h: %2\n"
                                "}\n";
    char err[256];
    ir_graph *u = ir_parse(unfused, strlen(unfused), "u.ir", err, sizeof err);
    cr_assert_not_null(u, "%s", err);
    ir_graph *f = ir_parse(fused, strlen(fused), "f.ir", err, sizeof err);
    cr_assert_not_null(f, "%s", err);
    cr_assert(ir_verify(f, err, sizeof err), "%s", err);
    for (int f64 = 0; f64 < 2; f64++)
        for (int training = 0; training < 2; training++) {
            ir_run run = {.f64 = f64, .batch = 5, .seed = 11, .step = 4, .training = training};
            ir_tensor **bu = fe_bind_random(u, run.batch, 3, f64), **bf = fe_bind_random(f, run.batch, 3, f64);
            ir_tensor ou[3], of[3];
            cr_assert(ir_interp(u, &run, (const ir_tensor *const *)bu, ou, err, sizeof err), "%s", err);
            cr_assert(ir_interp(f, &run, (const ir_tensor *const *)bf, of, err, sizeof err), "%s", err);
            for (int k = 0; k < 3; k++) {
                cr_assert(of[k].dtype == ou[k].dtype && ir_shape_eq(&of[k].shape, &ou[k].shape));
                size_t bytes = (size_t)ir_tensor_numel(&ou[k]) * ir_dtype_size(ou[k].dtype);
                cr_expect(memcmp(of[k].data, ou[k].data, bytes) == 0, "output %s differs (f64 %d, training %d)",
                          u->out[k].name, f64, training);
                ir_tensor_free(&ou[k]);
                ir_tensor_free(&of[k]);
            }
            fe_bind_free(u, bu);
            fe_bind_free(f, bf);
        }
    ir_graph_free(u);
    ir_graph_free(f);
}

/* A body that cannot run (a param nobody binds: the verifier would refuse it) is named in
 * the message, and the outputs are left empty. */
Test(interp, kernel_body_error)
{
    ag_graph *g = ag_graph_new("k");
    int32_t k = add_body(g, "graph @b {\n  %p0: f32[2] = input\n  %w: f32[2] = param zeros\n"
                            "  %0: f32[2] = add %p0, %w\n  return y: %0\n}\n");
    ag_val x = F32("x", 2);
    ag_output(g, "y", ag_relu(kernel(g, k, "y", 1, &x.id)));
    ir_shape s = {1, {2}};
    ir_tensor in = ir_tensor_new(AG_F32, &s), out = {AG_F32, {0, {0}}, NULL};
    const ir_tensor *bound[3] = {&in, NULL, NULL};
    char err[256];
    cr_expect(!ir_interp(g, &run_defaults, bound, &out, err, sizeof err));
    cr_expect_str_eq(err, "node 1 (kernel): body @k0: param w: not bound (expected f32[2])");
    cr_expect_null(out.data);
    ir_tensor_free(&in);
    ag_graph_free(g);
}

/* A graph its rules disagree with is refused before anything runs. */
Test(interp, broken_graph)
{
    ag_graph *g = ag_graph_new("broken");
    ag_val x = ag_input(g, "x", AG_F32, 2);
    ag_val y = ag_add(x, x);
    ag_output(g, "y", y);
    g->node[y.id].shape.dim[0] = 3;
    ir_shape s = {1, {2}};
    ir_tensor in = ir_tensor_new(AG_F32, &s), out;
    const ir_tensor *bound[2] = {&in, NULL};
    char err[256];
    cr_expect(!ir_interp(g, &run_defaults, bound, &out, err, sizeof err));
    cr_expect_str_eq(err, "node 1 (add): typed f32[3], its rule gives f32[2]");
    ir_tensor_free(&in);
    ag_graph_free(g);
}
