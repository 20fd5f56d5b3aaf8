/* Sizes: every value fits IR_MAX_BYTES at the graph's declared batch, and all of them
 * together; what does not is refused at its own line by the parser and named by the
 * verifier, and no size computed on the way overflows int64. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "passes.h"
#include "text_check.h"

/* The graph: a 2^40-wide input at batch 2^24 is 2^66 bytes (line 2); W alone, 4 TiB,
 * fits. */
#define HUGE_NODES                               \
    "graph @huge {\n"                            \
    "  %x: f32[N,1099511627776] = input\n"       \
    "  %y: i32[N] = input\n"                     \
    "  %W: f32[1099511627776,1] = param zeros\n" \
    "  %0: f32[N,1] = matmul %x, %W\n"           \
    "  %1: f32[N,1] = one_hot %y classes=1\n"    \
    "  %2: f32[N,1] = log_softmax %0 axis=1\n"   \
    "  %3: f32[N,1] = mul %1, %2\n"              \
    "  %4: f32[N] = sum %3 axes=[1]\n"           \
    "  %5: f32[] = mean %4 axes=[0]\n"           \
    "  return loss: %5, predict: %0\n"           \
    "  train model loss=loss metrics=[] predict=predict\n"
#define HUGE_TEXT HUGE_NODES "  optimizer sgd lr=0.1 wd=0 batch=16777216 epochs=10\n}\n"
#define HUGE_AT_1 HUGE_NODES "  optimizer sgd lr=0.1 wd=0 batch=1 epochs=10\n}\n"

static void expect_parse_error(const char *text, const char *want)
{
    char err[512] = "";
    ir_graph *g = ir_parse(text, strlen(text), "t.ir", err, sizeof err);
    cr_expect_null(g, "parsed:\n%s", text);
    ir_graph_free(g);
    cr_expect_str_eq(err, want);
}

Test(sizes, parser_refuses_at_the_line)
{
    expect_parse_error(HUGE_TEXT,
                       "t.ir:2:7: error: input x: f32[N,1099511627776] at batch 16777216 is more than 2^60 bytes");

    /* a computed value too large is refused at its own line, not at its operands' */
    expect_parse_error("graph @outer {\n"
                       "  %x: f32[N,1] = input\n"
                       "  %w: f32[1,1099511627776] = param zeros\n"
                       "  %0: f32[N,1099511627776] = matmul %x, %w\n"
                       "  %1: f32[] = sum %0 axes=[0,1]\n"
                       "  return loss: %1\n"
                       "  train model loss=loss\n"
                       "  optimizer sgd lr=0.1 wd=0 batch=16777216 epochs=1\n"
                       "}\n",
                       "t.ir:4:7: error: matmul: f32[N,1099511627776] at batch 16777216 is more than 2^60 bytes");

    /* each value fits (x is 2^60 bytes exactly), together they do not: at the one past it */
    expect_parse_error("graph @sum {\n"
                       "  %x: f32[N,268435456] = input\n"
                       "  %0: f32[N,268435456] = neg %x\n"
                       "  %1: f32[] = sum %0 axes=[0,1]\n"
                       "  %w: f32[] = param zeros\n"
                       "  %2: f32[] = mul %1, %w\n"
                       "  return loss: %2\n"
                       "  train model loss=loss\n"
                       "  optimizer sgd lr=0.1 wd=0 batch=1073741824 epochs=1\n"
                       "}\n",
                       "t.ir:3:7: error: neg: with the values before it, the graph's values take more than 2^60 "
                       "bytes at batch 1073741824");

    /* a kernel body's value, at the batch of the graph that declares it */
    expect_parse_error("kernel @k0 {\n"
                       "  %p0: f32[N,1] = input\n"
                       "  %p1: f32[1099511627776] = input\n"
                       "  %0: f32[N,1099511627776] = mul %p0, %p1\n"
                       "  %1: f32[N] = sum %0 axes=[1]\n"
                       "  return s: %1\n"
                       "}\n"
                       "\n"
                       "graph @body {\n"
                       "  %x: f32[N,1] = input\n"
                       "  %w: f32[1099511627776] = param zeros\n"
                       "  %0: f32[N] = kernel %x, %w body=@k0 out=s\n"
                       "  %1: f32[] = mean %0 axes=[0]\n"
                       "  return loss: %1\n"
                       "  train model loss=loss\n"
                       "  optimizer sgd lr=0.1 wd=0 batch=16777216 epochs=1\n"
                       "}\n",
                       "t.ir:4:7: error: mul: f32[N,1099511627776] at batch 16777216 is more than 2^60 bytes");

    /* the same graphs at batch 1 are fine: 4 TiB values are not refused */
    ir_graph *g = parse_ok(HUGE_AT_1);
    ir_graph_free(g);
}

Test(sizes, verifier_names_the_node)
{
    ir_graph *g = parse_ok(HUGE_AT_1);
    g->train->batch = 16777216;
    expect_verify(g, "verify: node %0 (input): input x: f32[N,1099511627776] at batch 16777216 is more than 2^60 "
                     "bytes");

    /* a plan's arena past the bound is refused before any value is placed in it */
    g = parse_ok("graph @p {\n  %x: f32[N,4] = input\n  %0: f32[N,4] = neg %x\n  return y: %0\n"
                 "  memory batch=2 arena=64\n  buffer %0 offset=0\n}\n");
    g->plan->arena = IR_MAX_BYTES + 64;
    expect_verify(g, "verify: memory: the arena's size 1152921504606847040 is more than 2^60 bytes");
}

Test(sizes, products_never_overflow)
{
    ir_shape s = {2, {AG_N, (int64_t)1 << 40}};
    cr_expect_eq(ir_numel(&s, 1 << 20), (int64_t)1 << 60);
    cr_expect_eq(ir_numel(&s, 1 << 24), INT64_MAX, "2^64 elements: saturates instead of wrapping to 0");
    cr_expect_eq(ir_bytes(AG_F32, &s, 1 << 18), (int64_t)1 << 60);
    cr_expect_eq(ir_bytes(AG_F32, &s, (1 << 18) + 1), -1);
    cr_expect_eq(ir_bytes(AG_U8, &s, (int64_t)1 << 30), -1);

    /* the planner refuses a batch the values do not fit at, rather than wrap its offsets */
    ir_graph *g = parse_ok(HUGE_AT_1);
    cr_expect_not_null(plan_memory(g, 1));
    ir_graph_free(g);
    g = parse_ok(HUGE_AT_1);
    cr_expect_null(plan_memory(g, 16777216));
    cr_expect_null(g->plan);
    ir_graph_free(g);
}
