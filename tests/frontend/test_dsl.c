/* DSL misuse: each mistake is reported once, at its own line, in the GCC form, and never
 * crashes; values built from a poisoned one stay quiet. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "aotgrad.h"
#include "ir.h"
#include "run_cmd.h"

/* Each case builds a graph with one mistake and sets *line to the line that makes it. */
typedef struct dsl_case {
    const char *name;
    void (*build)(ag_graph *g, int *line);
    const char *message; /* after "FILE:LINE: error: " */
} dsl_case;

#define MARK (*line = __LINE__ + 1) /* on the line before the call whose location is checked */

static void matmul_inner(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 784);
    ag_val w = ag_param(g, "w", ag_zeros(), 128, 10);
    MARK;
    ag_val o = ag_matmul(x, w);
    ag_output(g, "o", ag_relu(o)); /* o is poisoned: no second error */
}

static void broadcast(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 784);
    ag_val b = ag_param(g, "b", ag_zeros(), 10);
    MARK;
    ag_output(g, "o", ag_add(x, b));
}

static void dtype_mix(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 3);
    ag_val y = ag_input(g, "y", AG_I32, AG_N, 3);
    MARK;
    ag_output(g, "o", ag_mul(x, y));
}

static void exp_of_int(ag_graph *g, int *line)
{
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    MARK;
    ag_output(g, "o", ag_exp(y));
}

static void axis_range(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 10);
    MARK;
    ag_output(g, "o", ag_sum(x, 2));
}

static void axis_twice(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, 4, 10);
    MARK;
    ag_output(g, "o", ag_mean(x, 1, -1));
}

static void reshape_count(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 784);
    MARK;
    ag_output(g, "o", ag_reshape(x, AG_N, 100));
}

static void concat_off_axis(ag_graph *g, int *line)
{
    ag_val a = ag_input(g, "a", AG_F32, 3, 4);
    ag_val b = ag_input(g, "b", AG_F32, 3, 5);
    MARK;
    ag_output(g, "o", ag_concat(0, a, b));
}

static void dot_of_matrix(ag_graph *g, int *line)
{
    ag_val a = ag_input(g, "a", AG_F32, 3, 4);
    ag_val b = ag_input(g, "b", AG_F32, 4);
    MARK;
    ag_output(g, "o", ag_dot(a, b));
}

static void mv_inner(ag_graph *g, int *line)
{
    ag_val a = ag_input(g, "a", AG_F32, 3, 4);
    ag_val b = ag_input(g, "b", AG_F32, 5);
    MARK;
    ag_output(g, "o", ag_mv(a, b));
}

static void duplicate_name(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 2);
    MARK;
    ag_val w = ag_param(g, "x", ag_zeros(), 2, 1);
    ag_output(g, "o", ag_matmul(x, w));
}

static void batch_in_param(ag_graph *g, int *line)
{
    MARK;
    ag_val w = ag_param(g, "w", ag_zeros(), AG_N, 3);
    ag_output(g, "o", w);
}

static void too_many_dims(ag_graph *g, int *line)
{
    MARK;
    ag_val x = ag_input(g, "x", AG_F32, 1, 2, 3, 4, 5);
    ag_output(g, "o", x);
}

static void zero_dim(ag_graph *g, int *line)
{
    MARK;
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 0);
    ag_output(g, "o", x);
}

static void cross_entropy_labels(ag_graph *g, int *line)
{
    ag_val o = ag_input(g, "o", AG_F32, AG_N, 10);
    ag_val y = ag_input(g, "y", AG_F32, AG_N);
    MARK;
    ag_output(g, "l", ag_cross_entropy(o, y));
}

static void where_condition(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, 3);
    MARK;
    ag_output(g, "o", ag_where(x, x, 0));
}

static void not_an_int(ag_graph *g, int *line)
{
    ag_val y = ag_input(g, "y", AG_I32, 3);
    MARK;
    ag_output(g, "o", ag_add(y, 0.5));
}

static void dropout_p(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 8);
    MARK;
    ag_output(g, "o", ag_dropout(x, 1.5));
}

static void transpose_perm(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, 2, 3);
    MARK;
    ag_output(g, "o", ag_transpose(x, 0, 0));
}

static void one_hot_float(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N);
    MARK;
    ag_output(g, "o", ag_one_hot(x, 10));
}

static void broadcast_to_bad(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, 3);
    MARK;
    ag_output(g, "o", ag_broadcast_to(x, 2, 4));
}

static void output_twice(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, 3);
    ag_output(g, "o", x);
    MARK;
    ag_output(g, "o", ag_neg(x));
}

static void bad_name(ag_graph *g, int *line)
{
    MARK;
    ag_val x = ag_input(g, "2x", AG_F32, 3);
    ag_output(g, "o", x);
}

static void batch_twice(ag_graph *g, int *line)
{
    ag_val a = ag_input(g, "a", AG_F32, AG_N, 1);
    MARK;
    ag_output(g, "o", ag_add(a, ag_transpose(a)));
}

static void only_numbers(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, 3);
    MARK;
    ag_output(g, "o", ag_add(x, ag_mul(ag_val_of((ag_val){g, 7777, 0}), 2)));
}

static void too_many_elements(ag_graph *g, int *line)
{
    MARK;
    ag_val x = ag_input(g, "x", AG_F32, 4000000000LL, 4000000000LL); /* the product overflows int64 */
    ag_output(g, "o", x);
}

static void init_not_finite(ag_graph *g, int *line)
{
    MARK;
    ag_val w = ag_param(g, "w", ag_normal(0, INFINITY), 3);
    ag_output(g, "o", w);
}

static void minimize_nothing(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 6);
    MARK;
    ag_minimize(g, ag_mean(x), ag_sgd(.lr = 0.1));
}

static void empty_choice(ag_graph *g, int *line)
{
    MARK;
    ag_option(g, "act", "relu", "relu||tanh");
    ag_output(g, "o", ag_input(g, "x", AG_F32, 3));
}

static void unnamed_metric(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 2);
    ag_val w = ag_param(g, "w", ag_zeros(), 2);
    ag_val l = ag_square(ag_mv(x, w));
    MARK;
    ag_minimize(g, ag_mean(l), ag_sgd(.lr = 0.1), .metric = ag_sum(l));
}

/* No cascades: one mistake, one error, whatever is built on it afterwards. */
static void mismatch_then_metric(ag_graph *g, int *line) /* the shapes.c */
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 784);
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val w = ag_param(g, "w", ag_zeros(), 128, 10);
    MARK;
    ag_val logits = ag_matmul(x, w);
    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), ag_sgd(.lr = 0.1), .metric = ag_correct(logits, y),
                .predict = logits);
}

static void five_dims_then_minimize(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 4);
    MARK;
    ag_val w = ag_param(g, "w", ag_zeros(), 4, 1, 1, 1, 1);
    ag_minimize(g, ag_mean(ag_matmul(x, w)), ag_sgd(.lr = 0.1));
}

static void f32_labels_twice(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 4);
    ag_val y = ag_input(g, "y", AG_F32, AG_N);
    ag_val w = ag_param(g, "w", ag_zeros(), 4, 3);
    ag_val logits = ag_matmul(x, w);
    MARK;
    ag_val loss = ag_mean(ag_cross_entropy(logits, y));
    ag_minimize(g, loss, ag_sgd(.lr = 0.1), .metric = ag_correct(logits, y));
}

static void duplicate_then_use(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 3);
    ag_val w = ag_param(g, "w", ag_zeros(), 3, 3);
    MARK;
    ag_val v = ag_param(g, "w", ag_zeros(), 3, 3);
    ag_val y = ag_input(g, "y", AG_I32, AG_N), logits = ag_matmul(ag_matmul(x, w), v);
    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), ag_sgd(.lr = 0.1), .metric = ag_correct(logits, y));
}

/* 4 TiB per row is fine at batch 1; at ag_minimize's batch 2^24, 2^66 bytes are not */
static void huge_input(ag_graph *g, int *line)
{
    MARK;
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 1LL << 40);
    ag_val w = ag_param(g, "w", ag_zeros(), 1LL << 40);
    ag_minimize(g, ag_mean(ag_mv(x, w)), ag_sgd(.lr = 0.1), .batch = 1 << 24);
}

/* a computed value too large, refused at its own line; what is computed from it stays quiet */
static void huge_outer_product(ag_graph *g, int *line)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 1);
    ag_val w = ag_param(g, "w", ag_zeros(), 1, 1LL << 40);
    MARK;
    ag_val o = ag_matmul(x, w);
    ag_minimize(g, ag_mean(ag_relu(o)), ag_sgd(.lr = 0.1), .batch = 1 << 24);
}

static const dsl_case cases[] = {
    {"matmul_inner", matmul_inner, "matmul: inner dimensions differ: [N,784] x [128,10]"},
    {"broadcast", broadcast, "add: cannot broadcast [N,784] and [10]"},
    {"dtype_mix", dtype_mix, "mul: dtypes differ: f32 and i32"},
    {"exp_of_int", exp_of_int, "exp: needs f32 operands, got i32 (cast it first)"},
    {"axis_range", axis_range, "sum: axis 2 out of range for [N,10]"},
    {"axis_twice", axis_twice, "mean: axis 1 given twice"},
    {"reshape_count", reshape_count, "reshape: cannot reshape [N,784] to [N,100]: 784 x N elements vs 100 x N"},
    {"concat_off_axis", concat_off_axis, "concat: shapes [3,4] and [3,5] differ off axis 0"},
    {"dot_of_matrix", dot_of_matrix, "dot: needs a vector and a vector, got [3,4] and [4]"},
    {"mv_inner", mv_inner, "mv: inner dimensions differ: [3,4] x [5]"},
    {"duplicate_name", duplicate_name, "param x: the name is already used by the input at " __FILE__ ":%d"},
    {"batch_in_param", batch_in_param, "param w: the batch dim N cannot be in a parameter's shape [N,3]"},
    {"too_many_dims", too_many_dims, "input x: 5 dims; at most 4"},
    {"zero_dim", zero_dim, "input: dim 1 of [N,0] is 0; dims are positive or N"},
    {"cross_entropy_labels", cross_entropy_labels,
     "cross_entropy: labels must be i32, one per row of the logits [N,10]; got f32[N]"},
    {"where_condition", where_condition, "where: the condition must be bool, got f32"},
    {"not_an_int", not_an_int, "add: the number 0.5 is not an i32"},
    {"dropout_p", dropout_p, "dropout: p = 1.5 is not a probability in [0, 1]"},
    {"transpose_perm", transpose_perm, "transpose: not a permutation of the 2 axes of [2,3]"},
    {"one_hot_float", one_hot_float, "one_hot: labels must be i32, got f32"},
    {"broadcast_to_bad", broadcast_to_bad, "broadcast_to: cannot broadcast [3] to [2,4]"},
    {"output_twice", output_twice, "output o: the name is already used"},
    {"bad_name", bad_name, "input: name \"2x\" is not an identifier"},
    {"batch_twice", batch_twice, "add: the batch dim N would appear 2 times in [N,N]"},
    {"only_numbers", only_numbers, "mul: an operand is not a value of any graph (uninitialized ag_val?)"},
    {"too_many_elements", too_many_elements,
     "input: [4000000000,4000000000] has more than 2^40 elements per batch item"},
    {"unnamed_metric", unnamed_metric,
     "minimize: name the metric (.metric_name = \"...\"): an unnamed one is taken for ag_correct's count and "
     "reported as an accuracy"},
    {"minimize_nothing", minimize_nothing, "minimize: the graph has no parameter (ag_param) to train"},
    {"mismatch_then_metric", mismatch_then_metric, "matmul: inner dimensions differ: [N,784] x [128,10]"},
    {"five_dims_then_minimize", five_dims_then_minimize, "param w: 5 dims; at most 4"},
    {"f32_labels_twice", f32_labels_twice,
     "cross_entropy: labels must be i32, one per row of the logits [N,3]; got f32[N]"},
    {"duplicate_then_use", duplicate_then_use, "param w: the name is already used by the param at " __FILE__ ":%d"},
    {"empty_choice", empty_choice, "option act: the choices \"relu||tanh\" have an empty one"},
    {"init_not_finite", init_not_finite, "param w: initializer arguments 0, inf: must be finite f32 numbers"},
    {"huge_input", huge_input, "input x: f32[N,1099511627776] at batch 16777216 is more than 2^60 bytes"},
    {"huge_outer_product", huge_outer_product,
     "matmul: f32[N,1099511627776] at batch 16777216 is more than 2^60 bytes"},
};

Test(dsl, each_mistake_reported_once_at_its_line)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const dsl_case *c = &cases[i];
        ag_graph *g = ag_graph_new(c->name);
        int line = 0;
        c->build(g, &line);
        int errors = ag_graph_finish(g);
        char want[512], msg[400];
        /* duplicate_name's message names the earlier line, two above the mistake (MARK between) */
        snprintf(msg, sizeof msg, c->message, line - 2);
        snprintf(want, sizeof want, "%s:%d: error: %s", __FILE__, line, msg);
        cr_expect_eq(errors, 1, "%s: %d errors, first: %s", c->name, errors, errors ? ag_graph_error(g, 0) : "none");
        if (errors)
            cr_expect_str_eq(ag_graph_error(g, 0), want, "%s", c->name);
        ag_graph_free(g);
    }
}

/* Independent mistakes are all reported, in order, and a graph with errors has no outputs
 * from its poisoned values. */
Test(dsl, every_error_is_reported)
{
    ag_graph *g = ag_graph_new("two");
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 4);
    int l1 = __LINE__ + 1;
    ag_val a = ag_sum(x, 5);
    int l2 = __LINE__ + 1;
    ag_val b = ag_matmul(x, x);
    ag_output(g, "a", ag_exp(a));
    ag_output(g, "b", ag_exp(b));
    cr_assert_eq(ag_graph_finish(g), 2);
    char want[256];
    snprintf(want, sizeof want, "%s:%d: error: sum: axis 5 out of range for [N,4]", __FILE__, l1);
    cr_expect_str_eq(ag_graph_error(g, 0), want);
    snprintf(want, sizeof want, "%s:%d: error: matmul: inner dimensions differ: [N,4] x [N,4]", __FILE__, l2);
    cr_expect_str_eq(ag_graph_error(g, 1), want);
    cr_expect_eq(g->nout, 0);
    ag_graph_free(g);
}

Test(dsl, a_graph_without_outputs_is_an_error)
{
    ag_graph *g = ag_graph_new("empty");
    ag_input(g, "x", AG_F32, 3);
    cr_assert_eq(ag_graph_finish(g), 1);
    cr_expect_str_eq(ag_graph_error(g, 0), __FILE__ ": error: graph empty has no outputs (call ag_output)");
    ag_graph_free(g);
}

/* Builders merge identical nodes, numbers take their neighbour's dtype, and every node
 * keeps the line that built it. */
Test(dsl, hash_consing_and_numbers)
{
    ag_graph *g = ag_graph_new("cse");
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 4);
    ag_val k = ag_input(g, "k", AG_I32, 4);
    int line = __LINE__ + 1;
    ag_val a = ag_mul(ag_exp(x), 2);
    ag_val b = ag_mul(ag_exp(x), 2);
    cr_assert_eq(a.id, b.id, "identical nodes are merged");
    ag_val c = ag_add(k, 1);
    cr_assert_eq(g->node[g->node[c.id].in[1]].dtype, AG_I32);
    cr_assert_eq(g->node[a.id].loc.line, line);
    cr_assert_str_eq(g->node[a.id].loc.file, __FILE__);
    ag_output(g, "a", a);
    cr_assert_eq(ag_graph_finish(g), 0);
    ag_graph_free(g);
}

/* aotgrad ir on a model of tests/data/models, from the source folder: its exit status, and
 * stderr with stdout in out (the last lines only, where `tail` is set) */
static int ir_of(const char *model, const char *tail, char *out, size_t size)
{
    const char *bin = getenv("AOTGRAD_BIN");
    cr_assert_not_null(bin, "AOTGRAD_BIN is not set (run through ctest)");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && %s ir tests/data/models/%s 2>&1%s%s", AG_SOURCE_DIR, bin, model,
             tail ? " | tail -n " : "", tail ? tail : "");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = 0;
    return WEXITSTATUS(pclose(p));
}

/* A model file with mistakes, through the command line: every error in the GCC form with
 * the path as given (FILE:LINE:COL, the line, a caret under the call), notes where the
 * operands of a mismatch come from, exit 1. */
Test(dsl, model_file_errors_through_the_command_line)
{
    char out[4096];
    cr_assert_eq(ir_of("bad_shapes.c", NULL, out, sizeof out), 1, "%s", out);
    cr_assert_str_eq(out,
                     "tests/data/models/bad_shapes.c:10:16: error: matmul: inner dimensions differ: [N,784] x "
                     "[128,10]\n"
                     "   10 |     ag_val h = ag_matmul(x, W);\n"
                     "      |                ^~~~~~~~~\n"
                     "tests/data/models/bad_shapes.c:6:16: note: operand 1 comes from here: ag_input x, f32[N,784]\n"
                     "    6 |     ag_val x = ag_input(g, \"x\", AG_F32, AG_N, 784);\n"
                     "      |                ^~~~~~~~\n"
                     "tests/data/models/bad_shapes.c:7:16: note: operand 2 comes from here: ag_param W, f32[128,10]\n"
                     "    7 |     ag_val W = ag_param(g, \"W\", ag_normal(0, 0.01), 128, 10);\n"
                     "      |                ^~~~~~~~\n"
                     "tests/data/models/bad_shapes.c:12:23: error: sum: axis 3 out of range for [N,10]\n"
                     "   12 |     ag_output(g, \"s\", ag_sum(o, 3));\n"
                     "      |                       ^~~~~~\n"
                     "tests/data/models/bad_shapes.c: 2 errors\n");

    /* the window ops' mistakes, each at its line (tests/data/models/bad_conv.c) */
    cr_assert_eq(ir_of("bad_conv.c", NULL, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "tests/data/models/bad_conv.c:11:23: error: conv2d: the weights [6,3,5,5] take 3 input "
                          "channels a group; the input [N,1,28,28] gives each of its 1 group 1\n") &&
                  strstr(out, "tests/data/models/bad_conv.c:12:23: error: conv2d: the bias is f32[5]; it takes f32[6], "
                              "one per output channel\n") &&
                  strstr(out, "tests/data/models/bad_conv.c:13:23: error: max_pool2d: pad 2 is more than half the "
                              "kernel's 2\n") &&
                  strstr(out, "tests/data/models/bad_conv.c: 3 errors\n"),
              "%s", out);

    /* a model that does not compile: the compiler's first error and its lines, and how to see
     * the rest (a missing ';' gave some 50 lines of macro expansions) */
    cr_assert_eq(ir_of("missing_semicolon.c", NULL, out, sizeof out), 1, "%s", out);
    cr_expect(strncmp(out, "tests/data/models/missing_semicolon.c:6:5: error: expected ", 59) == 0, "%s", out);
    cr_expect(strstr(out, "more lines from the compiler: cc -std=gnu17 -fsyntax-only ") &&
                  strstr(out, "tests/data/models/missing_semicolon.c: error: the model did not compile"),
              "%s", out);
    int lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')); p++)
        lines++;
    cr_expect_leq(lines, 6, "%s", out);

    /* mistakes with no graph at hand (an uninitialized ag_val, a NULL graph) count too */
    cr_assert_eq(ir_of("bad_handles.c", NULL, out, sizeof out), 1, "%s", out);
    cr_assert_str_eq(out, "tests/data/models/bad_handles.c:10:23: error: add: an operand is not a value of any graph "
                          "(uninitialized ag_val?)\n"
                          "   10 |     ag_output(g, \"a\", ag_add(x, u));\n"
                          "      |                       ^~~~~~\n"
                          "tests/data/models/bad_handles.c:11:23: error: relu: an operand is not a value of any graph "
                          "(uninitialized ag_val?)\n"
                          "   11 |     ag_output(g, \"b\", ag_relu(u));\n"
                          "      |                       ^~~~~~~\n"
                          "tests/data/models/bad_handles.c:12:5: error: output: the graph is NULL\n"
                          "   12 |     ag_output(NULL, \"c\", x);\n"
                          "      |     ^~~~~~~~~\n"
                          "tests/data/models/bad_handles.c: 3 errors\n");

    /* the model's own code crashing is named as such, with its file; a stack overflow too
     * (the handler runs on a stack of its own) */
    cr_expect_eq(ir_of("crashes.c", NULL, out, sizeof out), 1, "%s", out);
    cr_expect_str_eq(out, "tests/data/models/crashes.c: error: the model's code crashed while building the graph "
                          "(SIGSEGV, a bad memory access)\n");
    cr_expect_eq(ir_of("recurses.c", NULL, out, sizeof out), 1, "%s", out);
    cr_expect_str_eq(out, "tests/data/models/recurses.c: error: the model's code crashed while building the graph "
                          "(SIGSEGV, a bad memory access)\n");

    /* a mistake repeated in a loop: 100 shown, then how many more */
    ir_of("many_errors.c", "5", out, sizeof out);
    cr_expect_str_eq(out, "tests/data/models/many_errors.c:9:27: error: sum: axis 7 out of range for [N,4]\n"
                          "    9 |         ag_output(g, \"o\", ag_sum(x, 7));\n"
                          "      |                           ^~~~~~\n"
                          "tests/data/models/many_errors.c: (50 more errors not shown)\n"
                          "tests/data/models/many_errors.c: 150 errors\n");
}

/* The huge.ir: an input of 2^40 floats a row at batch 2^24. check, ir --memory and
 * build each refuse it at the input's line, exit 1; so does a model file declaring the same,
 * at its line; and a --batch given on the command line is checked the same way. */
Test(dsl, sizes_that_do_not_fit_are_refused_at_their_line)
{
    const char *bin = getenv("AOTGRAD_BIN");
    cr_assert_not_null(bin, "AOTGRAD_BIN is not set (run through ctest)");
    char dir[] = "/tmp/aotgrad-huge-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    static const char nodes[] = "graph @huge {\n"
                                "  %x: f32[N,1099511627776] = input\n"
                                "  %y: i32[N] = input\n"
                                "  %W: f32[1099511627776,1] = param zeros\n"
                                "  %0: f32[N,1] = matmul %x, %W\n"
                                "  %1: f32[N,1] = one_hot %y classes=1\n"
                                "  %2: f32[N,1] = log_softmax %0 axis=1\n"
                                "  %3: f32[N,1] = mul %1, %2\n"
                                "  %4: f32[N] = sum %3 axes=[1]\n"
                                "  %5: f32[] = mean %4 axes=[0]\n"
                                "  return loss: %5, predict: %0\n"
                                "  train model loss=loss metrics=[] predict=predict\n"
                                "  optimizer sgd lr=0.1 wd=0 batch="; /* then the batch */
    static const char model[] = "#include <aotgrad.h>\n"
                                "\n"
                                "void hugem(ag_graph *g)\n"
                                "{\n"
                                "    ag_val x = ag_input(g, \"x\", AG_F32, AG_N, 1099511627776LL);\n"
                                "    ag_val y = ag_input(g, \"y\", AG_I32, AG_N);\n"
                                "    ag_val W = ag_param(g, \"W\", ag_zeros(), 1099511627776LL, 1);\n"
                                "    ag_val logits = ag_matmul(x, W);\n"
                                "    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), ag_sgd(.lr = 0.1),\n"
                                "                .predict = logits, .batch = 16777216);\n"
                                "}\n";
    char path[256];
    FILE *f;
    snprintf(path, sizeof path, "%s/huge.ir", dir);
    cr_assert_not_null(f = fopen(path, "w"));
    fprintf(f, "%s%d epochs=10\n}\n", nodes, 16777216);
    fclose(f);
    snprintf(path, sizeof path, "%s/one.ir", dir); /* the same at batch 1: it fits */
    cr_assert_not_null(f = fopen(path, "w"));
    fprintf(f, "%s%d epochs=10\n}\n", nodes, 1);
    fclose(f);
    snprintf(path, sizeof path, "%s/hugem.c", dir);
    cr_assert_not_null(f = fopen(path, "w"));
    fputs(model, f);
    fclose(f);

    static const char *const commands[] = {"check huge.ir", "ir --memory huge.ir", "build huge.ir -o OUT"};
    const char *want = "huge.ir:2:7: error: input x: f32[N,1099511627776] at batch 16777216 is more than 2^60 bytes\n";
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        int st;
        char *out = run_fmt(&st, "cd %s && %s %s 2>&1", dir, bin, commands[i]);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: status %d: %s", commands[i], st, out);
        cr_expect_str_eq(out, want, "%s", commands[i]);
        free(out);
    }
    static const char *const model_commands[] = {"ir --memory hugem.c", "build hugem.c -o OUT"};
    want = "hugem.c:5:16: error: input x: f32[N,1099511627776] at batch 16777216 is more than 2^60 bytes\n"
           "    5 |     ag_val x = ag_input(g, \"x\", AG_F32, AG_N, 1099511627776LL);\n"
           "      |                ^~~~~~~~\n"
           "hugem.c: 1 error\n";
    for (size_t i = 0; i < sizeof model_commands / sizeof *model_commands; i++) {
        int st;
        char *out = run_fmt(&st, "cd %s && %s %s 2>&1", dir, bin, model_commands[i]);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: status %d: %s", model_commands[i], st, out);
        cr_expect_str_eq(out, want, "%s", model_commands[i]);
        free(out);
    }
    static const struct {
        const char *command, *want;
    } batches[] = {
        {"forward one.ir --batch 16777216",
         "one.ir: error: --batch 16777216: input x: f32[N,1099511627776] at batch 16777216 is more than 2^60 bytes\n"},
        {"run one.ir --batch 16777216",
         "one.ir: error: --batch 16777216: input x: f32[N,1099511627776] at batch 16777216 is more than 2^60 bytes\n"},
    };
    for (size_t i = 0; i < sizeof batches / sizeof *batches; i++) {
        int st;
        char *out = run_fmt(&st, "cd %s && %s %s 2>&1", dir, bin, batches[i].command);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: status %d: %s", batches[i].command, st, out);
        cr_expect_str_eq(out, batches[i].want, "%s", batches[i].command);
        free(out);
    }
    free(run_fmt(&(int){0}, "rm -rf %s", dir));
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

/* Building is linear in the nodes: 100k inputs, params and outputs, each name checked
 * against every earlier one, in under 3 s (0.2 s here, 0.6 s under ASan; the quadratic
 * lookups took 3.6 s for 20k outputs alone, and over 2 minutes for this); then finished,
 * verified, printed, parsed back and copied, 400k nodes, in under 15 s (0.9 s, 3 s under
 * ASan). A repeated name is still refused, with the same message. */
Test(dsl, many_names_build_in_linear_time, .timeout = 120)
{
    enum { COUNT = 100000 };
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ag_graph *g = ag_graph_new("wide");
    char name[32];
    ag_val sum = ag_input(g, "x", AG_F32, AG_N, 4);
    for (int i = 0; i < COUNT; i++) {
        snprintf(name, sizeof name, "x%d", i);
        ag_val x = ag_input(g, name, AG_F32, 4);
        snprintf(name, sizeof name, "p%d", i);
        ag_val p = ag_param(g, name, ag_zeros(), 4);
        snprintf(name, sizeof name, "o%d", i);
        ag_output(g, name, ag_add(x, p));
        if (i % 1000 == 0)
            sum = ag_add(sum, p);
    }
    ag_output(g, "sum", sum);
    double built = seconds_since(&t0);
    cr_assert_eq(ag_graph_error_count(g), 0, "%s", ag_graph_error(g, 0));

    int line = __LINE__ + 1;
    ag_output(g, "o99999", sum);
    ag_input(g, "x500", AG_F32, 4);
    ag_param(g, "x", ag_zeros(), 4);
    cr_assert_eq(ag_graph_finish(g), 3);
    char want[512];
    snprintf(want, sizeof want, "%s:%d: error: output o99999: the name is already used", __FILE__, line);
    cr_expect_str_eq(ag_graph_error(g, 0), want);
    snprintf(want, sizeof want, "%s:%d: error: input x500: the name is already used by the input at %s:%d", __FILE__,
             line + 1, __FILE__, line - 13);
    cr_expect_str_eq(ag_graph_error(g, 1), want);
    snprintf(want, sizeof want, "%s:%d: error: param x: the name is already used by the input at %s:%d", __FILE__,
             line + 2, __FILE__, line - 16);
    cr_expect_str_eq(ag_graph_error(g, 2), want);
    cr_assert_eq(g->nout, COUNT + 1);

    char err[512];
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    char *text = ir_print_str(g);
    ir_graph *h = ir_parse(text, strlen(text), "wide.ir", err, sizeof err);
    cr_assert_not_null(h, "%s", err);
    cr_assert(ir_verify(h, err, sizeof err), "%s", err);
    ir_graph *c = ir_clone_live(h);
    cr_expect_eq(c->nout, COUNT + 1);
    cr_expect_eq(ir_find_output(c, "o12345"), 12345);
    cr_expect(ir_find_source(c, IR_param, "p777") >= 0);
    double total = seconds_since(&t0);
    ir_graph_free(c);
    ir_graph_free(h);
    free(text);
    ag_graph_free(g);
    cr_expect(built < 3.0, "%d inputs, params and outputs: built in %.2f s; the bound is 3 s", COUNT, built);
    cr_expect(total < 15.0, "%d inputs, params and outputs: %.2f s in all; the bound is 15 s", COUNT, total);
}
