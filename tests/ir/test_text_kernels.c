/* The text IR of fused groups and the memory plan: kernels and plans print, parse back, and
 * are checked by the verifier however they were edited. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aotgrad.h"
#include "bind.h"
#include "interp.h"
#include "ir.h"
#include "passes.h"
#include "text_check.h"

#ifndef AG_SOURCE_DIR
#define AG_SOURCE_DIR "."
#endif
/* ---- kernels: fused groups' bodies ---- */

/* Two bodies: k0 (two outputs, taken by sibling nodes) and k1 (a dropout sharing site 2
 * with the graph's, a constant inline, locations); the graph: x, b, %2 r, %3 s, %4 y, %5. */
static const char kernel_text[] = "kernel @k0 {\n"
                                  "  %p0: f32[N,4] = input                         ; k.c:1\n"
                                  "  %p1: f32[4] = input\n"
                                  "  %0: f32[N,4] = add %p0, %p1                   ; k.c:2\n"
                                  "  %1: f32[N,4] = relu %0                        ; k.c:3\n"
                                  "  return r: %1, s: %0\n"
                                  "}\n"
                                  "\n"
                                  "kernel @k1 {\n"
                                  "  %p0: f32[N,4] = input\n"
                                  "  %0: f32[N,4] = dropout %p0 p=0.5 site=2\n"
                                  "  %1: f32[N,4] = mul %0, 2.0                    ; k.c:4\n"
                                  "  %2: f32[N,4] = add %1, %p0\n"
                                  "  return y: %2, half: 0.5\n"
                                  "}\n"
                                  "\n"
                                  "graph @g {\n"
                                  "  %x: f32[N,4] = input                          ; k.c:5\n"
                                  "  %b: f32[4] = param zeros\n"
                                  "  %0: f32[N,4] = kernel %x, %b body=@k0 out=r   ; k.c:3\n"
                                  "  %1: f32[N,4] = kernel %x, %b body=@k0 out=s\n"
                                  "  %2: f32[N,4] = kernel %1 body=@k1 out=y\n"
                                  "  %3: f32[N,4] = dropout %2 p=0.5 site=2\n"
                                  "  return r: %0, s: %1, y: %3\n"
                                  "}\n";

Test(text, kernels_round_trip)
{
    assert_canonical(kernel_text);
    ir_graph *g = parse_ok(kernel_text);
    cr_assert_eq(g->nkernels, 2);
    cr_assert_str_eq(g->kernels[0]->name, "k0");
    cr_assert_eq(g->kernels[0]->nout, 2);
    cr_assert_eq(g->kernels[1]->n, 6, "p0, dropout, 2.0, mul, add, 0.5");
    const ir_node *r = &g->node[2], *s = &g->node[3], *y = &g->node[4];
    cr_assert(r->op == IR_kernel && s->op == IR_kernel && y->op == IR_kernel);
    cr_expect(r->attr.kernel == 0 && r->attr.output == 0);
    cr_expect(s->attr.kernel == 0 && s->attr.output == 1);
    cr_expect(y->attr.kernel == 1 && y->attr.output == 0 && y->nin == 1 && y->in[0] == 3);
    cr_expect_str_eq(r->loc.file, "k.c");
    cr_expect_eq(r->loc.line, 3);
    cr_expect_str_eq(g->kernels[0]->node[0].loc.file, "k.c");
    cr_expect_eq(g->next_site, 3);
    /* a copy made by ir_clone_live (bodies copied by ir_copy_node) prints the same */
    ir_graph *c = ir_clone_live(g);
    char *a = ir_print_str(g), *b = ir_print_str(c);
    cr_expect_str_eq(b, a);
    free(a);
    free(b);
    ir_graph_free(c);
    ir_graph_free(g);

    /* an unused body, a body whose output is its input, comments and blank lines */
    assert_canonical("kernel @k0 {\n"
                     "  %p0: f32[2] = input\n"
                     "  return same: %p0\n"
                     "}\n"
                     "\n"
                     "kernel @k1 {\n"
                     "  %p0: i32[] = input\n"
                     "  %0: i32[] = add %p0, 1\n"
                     "  return unused: %0\n"
                     "}\n"
                     "\n"
                     "graph @u {\n"
                     "  %a: f32[2] = input\n"
                     "  %0: f32[2] = kernel %a body=@k0 out=same\n"
                     "  return r: %0\n"
                     "}\n");
    g = parse_ok("\n; bodies first\nkernel @k0 {   ; the body\n\n  %p0: f32[2] = input\n  return same: %p0\n}\n"
                 "graph @u {\n  %a: f32[2] = input\n  %0: f32[2] = kernel %a body=@k0 out=same\n  return r: %0\n}\n");
    char *p = ir_print_str(g);
    cr_expect_str_eq(p, "kernel @k0 {\n  %p0: f32[2] = input\n  return same: %p0\n}\n\n"
                        "graph @u {\n  %a: f32[2] = input\n  %0: f32[2] = kernel %a body=@k0 out=same\n"
                        "  return r: %0\n}\n");
    free(p);
    ir_graph_free(g);
}

/* A graph and its body built with the API, printed to the exact text. */
Test(text, kernels_golden_print)
{
    char err[256];
    ir_graph *b = ir_graph_new("fused");
    const char *bf = ir_strdup(b, "models/mlp.c");
    ir_node p0 = ir_node_make(IR_input, 0, NULL);
    p0.dtype = AG_F32, p0.shape = (ir_shape){2, {AG_N, 784}}, p0.attr.name = "p0", p0.loc = (ag_loc){bf, 16};
    ir_node p1 = ir_node_make(IR_input, 0, NULL);
    p1.dtype = AG_F32, p1.shape = (ir_shape){2, {784, 256}}, p1.attr.name = "p1";
    cr_assert_eq(ir_add(b, &p0, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ir_add(b, &p1, err, sizeof err), 1, "%s", err);
    ir_node mm = ir_node_make(IR_matmul, 2, (int32_t[]){0, 1});
    mm.loc = (ag_loc){bf, 17};
    cr_assert_eq(ir_add(b, &mm, err, sizeof err), 2, "%s", err);
    ir_node re = ir_node_make(IR_relu, 1, (int32_t[]){2});
    re.loc = (ag_loc){bf, 18};
    cr_assert_eq(ir_add(b, &re, err, sizeof err), 3, "%s", err);
    ir_add_output(b, "h", 3);

    ir_graph *g = ir_graph_new("mlp");
    const char *file = ir_strdup(g, "models/mlp.c");
    ir_node x = ir_node_make(IR_input, 0, NULL);
    x.dtype = AG_F32, x.shape = (ir_shape){2, {AG_N, 784}}, x.attr.name = "x";
    ir_node w = ir_node_make(IR_param, 0, NULL);
    w.dtype = AG_F32, w.shape = (ir_shape){2, {784, 256}}, w.attr.name = "W1", w.attr.init = ag_normal(0, 0.01);
    cr_assert_eq(ir_add(g, &x, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ir_add(g, &w, err, sizeof err), 1, "%s", err);
    ir_node k = ir_node_make(IR_kernel, 2, (int32_t[]){0, 1});
    k.attr.kernel = ir_add_kernel(g, b);
    k.attr.output = 0;
    k.loc = (ag_loc){file, 18};
    cr_assert_eq(ir_add(g, &k, err, sizeof err), 2, "%s", err);
    cr_assert_eq(ir_add(g, &k, err, sizeof err), 2, "the same kernel node is merged");
    ir_add_output(g, "h", 2);
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    char *got = ir_print_str(g);
    cr_assert_str_eq(got, "kernel @k0 {\n"
                          "  %p0: f32[N,784] = input                       ; models/mlp.c:16\n"
                          "  %p1: f32[784,256] = input\n"
                          "  %0: f32[N,256] = matmul %p0, %p1              ; models/mlp.c:17\n"
                          "  %1: f32[N,256] = relu %0                      ; models/mlp.c:18\n"
                          "  return h: %1\n"
                          "}\n"
                          "\n"
                          "graph @mlp {\n"
                          "  %x: f32[N,784] = input\n"
                          "  %W1: f32[784,256] = param normal(0, 0.01)\n"
                          "  %0: f32[N,256] = kernel %x, %W1 body=@k0 out=h ; models/mlp.c:18\n"
                          "  return h: %0\n"
                          "}\n");
    assert_canonical(got);
    free(got);
    ir_graph_free(g);
}

/* The bodies are verified as graphs of their own, and the kernel nodes against them. */
Test(text, verify_kernels)
{
    char err[256];
    ir_graph *g = parse_ok(kernel_text);
    g->kernels[1]->node[3].shape.dim[1] = 5;
    expect_verify(g, "verify: body @k1: node %3 (mul at k.c:4): declared f32[N,5] but mul gives f32[N,4]");

    g = parse_ok(kernel_text);
    g->node[2].attr.kernel = 7;
    expect_verify(g, "verify: node %2 (kernel at k.c:3): kernel: no body @k7 (the graph has 2)");
    g = parse_ok(kernel_text);
    g->node[3].attr.output = 2;
    expect_verify(g, "verify: node %3 (kernel): kernel: body @k0 has no output 2 (it has 2)");
    g = parse_ok(kernel_text);
    g->node[4].attr.kernel = 0;
    expect_verify(g, "verify: node %4 (kernel): kernel: body @k0 takes 2 operands, got 1");
    g = parse_ok(kernel_text);
    g->node[4].attr.output = 1;
    expect_verify(g, "verify: node %4 (kernel): declared f32[N,4] but kernel gives f32[]");
    g = parse_ok(kernel_text);
    g->node[5].attr.output = 1;
    expect_verify(g, "verify: node %5 (dropout): attribute kernel/output is set, but dropout has none");
    g = parse_ok(kernel_text);
    set_inputs(g, 2, 2, (int32_t[]){0, 0});
    expect_verify(g, "verify: node %2 (kernel at k.c:3): kernel: operand 1 is f32[N,4]; body @k0's input p1 is f32[4]");

    /* what a body must not have: params, kernels, declarations; and it must have outputs */
    g = parse_ok(kernel_text);
    ir_node w = ir_node_make(IR_param, 0, NULL);
    w.dtype = AG_F32, w.attr.name = "w";
    cr_assert_eq(ir_add(g->kernels[0], &w, err, sizeof err), 4, "%s", err);
    expect_verify(g, "verify: body @k0: node %4 (param): a body has no param nodes");
    g = parse_ok(kernel_text);
    g->kernels[1]->node[4] = g->node[4];
    expect_verify(g, "verify: body @k1: node %4 (kernel): a body has no kernel nodes");
    g = parse_ok(kernel_text);
    ir_add_kernel(g->kernels[1], ir_clone_live(g->kernels[0]));
    expect_verify(g, "verify: body @k1: a body has no kernels of its own, this one has 1");
    g = parse_ok(kernel_text);
    g->kernels[0]->train = ir_alloc(g->kernels[0], sizeof *g->kernels[0]->train);
    expect_verify(g, "verify: body @k0: a body has no training declarations");
    g = parse_ok(kernel_text);
    g->kernels[0]->nout = 0;
    expect_verify(g, "verify: body @k0: graph @k0 has no outputs");
    g = parse_ok(kernel_text);
    ir_graph_free(g->kernels[1]);
    g->kernels[1] = NULL;
    expect_verify(g, "verify: body @k1 is missing");

    /* a dropout site is one random stream in the graph and its bodies */
    g = parse_ok(kernel_text);
    g->node[5].attr.value = 0.25;
    expect_verify(g, "verify: dropout site 2 has p=0.5 at node %1 of body @k1, but p=0.25 at node %5 of the graph");
}

static char *read_data_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/data/ir/%s", AG_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    char *text = malloc(1 << 16);
    cr_assert_not_null(text);
    size_t len = fread(text, 1, (1 << 16) - 1, f);
    fclose(f);
    text[len] = 0;
    return text;
}

/* mlp_fused.ir is mlp.ir with its nodes grouped into two kernels (one with three sibling
 * nodes): the interpreter gives the same bits for both. */
Test(text, fused_data_file_runs_like_the_unfused_one)
{
    char *ft = read_data_file("mlp_fused.ir"), *ut = read_data_file("mlp.ir"), err[256];
    ir_graph *f = parse_ok(ft), *u = parse_ok(ut);
    cr_assert_eq(f->nkernels, 2);
    cr_assert_eq(f->nout, u->nout);
    for (int f64 = 0; f64 < 2; f64++) {
        ir_run run = {.f64 = f64, .batch = 3, .seed = 5};
        ir_tensor **bf = fe_bind_random(f, run.batch, 9, f64), **bu = fe_bind_random(u, run.batch, 9, f64);
        ir_tensor of[3], ou[3];
        cr_assert(ir_interp(f, &run, (const ir_tensor *const *)bf, of, err, sizeof err), "%s", err);
        cr_assert(ir_interp(u, &run, (const ir_tensor *const *)bu, ou, err, sizeof err), "%s", err);
        for (int k = 0; k < 3; k++) {
            cr_assert_str_eq(f->out[k].name, u->out[k].name);
            size_t bytes = (size_t)ir_tensor_numel(&ou[k]) * ir_dtype_size(ou[k].dtype);
            cr_assert(ir_shape_eq(&of[k].shape, &ou[k].shape) && of[k].dtype == ou[k].dtype);
            cr_expect(memcmp(of[k].data, ou[k].data, bytes) == 0, "%s differs (f64 %d)", f->out[k].name, f64);
            ir_tensor_free(&of[k]);
            ir_tensor_free(&ou[k]);
        }
        fe_bind_free(f, bf);
        fe_bind_free(u, bu);
    }
    ir_graph_free(f);
    ir_graph_free(u);
    free(ft);
    free(ut);
}

/* ---- the memory plan ---- */

/* Laid out at batch 2, for any N: %0 and %1 (16 N bytes each) live together, then %2 (the
 * loss, 4 bytes, to the end) and %3 (16 bytes, placed first: larger; a fixed size takes a
 * cache line, so it goes above %1 rather than below); %4 (w.next) overwrites w, which
 * nothing reads after it. */
#define PLAN_NODES                      \
    "graph @p {\n"                      \
    "  %x: f32[N,4] = input\n"          \
    "  %w: f32[4] = param zeros\n"      \
    "  %0: f32[N,4] = mul %x, %w\n"     \
    "  %1: f32[N,4] = exp %0\n"         \
    "  %2: f32[] = sum %1 axes=[0,1]\n" \
    "  %3: f32[4] = sum %1 axes=[0]\n"  \
    "  %4: f32[4] = sub %w, %3\n"       \
    "  return loss: %2, w.next: %4\n"   \
    "  train step loss=loss\n"          \
    "  optimizer sgd lr=0.1 wd=0 batch=2 epochs=1\n"
static const char plan_text[] = PLAN_NODES "  memory batch=2 arena=192\n"
                                           "  buffer %0 offset=0\n"
                                           "  buffer %1 offset=0 offset_n=16\n"
                                           "  buffer %2 offset=64 offset_n=32\n"
                                           "  buffer %3 offset=0 offset_n=32\n"
                                           "  inplace %4 into=%w\n"
                                           "}\n";

/* The plan prints after the declarations and parses back to the same plan; it is the one
 * plan_memory makes. */
Test(text, plan_round_trips)
{
    assert_canonical(plan_text);
    ir_graph *g = parse_ok(plan_text);
    const ir_plan *p = g->plan;
    cr_assert_not_null(p);
    cr_expect(p->batch == 2 && p->arena == 192);
    static const int64_t offset[] = {-1, -1, 0, 0, 64, 0, -1}, offset_n[] = {0, 0, 0, 16, 32, 32, 0};
    static const int32_t inplace[] = {-1, -1, -1, -1, -1, -1, 1};
    cr_assert_eq(g->n, 7);
    for (int32_t i = 0; i < g->n; i++)
        cr_expect(p->offset[i] == offset[i] && p->offset_n[i] == offset_n[i] && p->inplace[i] == inplace[i],
                  "node %d: offset %lld + %lld N, inplace %d", (int)i, (long long)p->offset[i],
                  (long long)p->offset_n[i], (int)p->inplace[i]);
    ir_graph_free(g);

    g = parse_ok(PLAN_NODES "}\n");
    cr_assert_null(g->plan);
    plan_memory(g, 2);
    char *s = ir_print_str(g);
    cr_expect_str_eq(s, plan_text);
    free(s);
    ir_graph_free(g);

    /* the lines may come in any order after the memory line, among the declarations */
    g = parse_ok("graph @p {\n  %x: f32[N,4] = input\n  %w: f32[4] = param zeros\n  %0: f32[N,4] = mul %x, %w\n"
                 "  %1: f32[N,4] = exp %0\n  %2: f32[] = sum %1 axes=[0,1]\n  %3: f32[4] = sum %1 axes=[0]\n"
                 "  %4: f32[4] = sub %w, %3\n  return loss: %2, w.next: %4\n  memory arena=192 batch=2\n"
                 "  inplace %4 into=%w\n  buffer %3 offset_n=32 offset=0\n  train step loss=loss\n"
                 "  buffer %2 offset=64 offset_n=32\n  buffer %1 offset_n=16 offset=0\n"
                 "  optimizer sgd lr=0.1 wd=0 batch=2 epochs=1\n  buffer %0 offset=0\n}\n");
    s = ir_print_str(g);
    cr_expect_str_eq(s, plan_text);
    free(s);
    ir_graph_free(g);

    /* a graph without nodes to plan: the memory line alone */
    assert_canonical("graph @e {\n  %x: f32[2] = input\n  return x: %x\n  memory batch=1 arena=0\n}\n");
}

/* plan_text with `from` replaced by `to`: it parses, and the verifier says want. */
static void expect_plan_rejected(const char *from, const char *to, const char *want)
{
    const char *at = strstr(plan_text, from);
    cr_assert_not_null(at, "%s is not in the plan text", from);
    char text[2048];
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - plan_text), plan_text, to, at + strlen(from));
    char err[256] = "";
    ir_graph *g = ir_parse(text, strlen(text), "t.ir", err, sizeof err);
    cr_assert_not_null(g, "%s\nin\n%s", err, text);
    expect_verify(g, want);
}

/* A hand-edited plan is rejected with the values named as the text names them, at the
 * line of the value's buffer or inplace line (the memory line where it has none). */
Test(text, verify_plan_edits)
{
    expect_plan_rejected("buffer %1 offset=0 offset_n=16", "buffer %1 offset=32 offset_n=16",
                         "t.ir:14: error: "
                         "verify: memory: %1: offset 32 is not a multiple of 64");
    expect_plan_rejected("buffer %1 offset=0 offset_n=16", "buffer %1 offset=0 offset_n=8",
                         "t.ir:14: error: "
                         "verify: memory: %1: offset_n 8 is not a multiple of 16");
    expect_plan_rejected("buffer %1 offset=0 offset_n=16", "buffer %1 offset=0",
                         "t.ir:14: error: "
                         "verify: memory: %0 and %1 are alive together and overlap at batch 2, at bytes 0..31");
    /* apart at batch 2 (%0 ends at 32, %1 starts at 64), not from batch 5 on */
    expect_plan_rejected("buffer %1 offset=0 offset_n=16", "buffer %1 offset=64",
                         "t.ir:14: error: "
                         "verify: memory: %0 and %1 are alive together and overlap at batch 5, at bytes 64..79");
    /* at batch 5 the loss ends past the arena */
    expect_plan_rejected("memory batch=2", "memory batch=5",
                         "t.ir:15: error: "
                         "verify: memory: %2 (f32[] at batch 5) at offset 64 + 32*N does not fit in the arena of "
                         "192 bytes");
    /* %3 is born as %1 dies (it reads it): alive together */
    expect_plan_rejected("buffer %3 offset=0 offset_n=32", "buffer %3 offset=0 offset_n=16",
                         "t.ir:16: error: "
                         "verify: memory: %1 and %3 are alive together and overlap at batch 2, at bytes 32..47");
    /* the loss is an output: alive to the end, so not where %3 goes either */
    expect_plan_rejected("buffer %3 offset=0 offset_n=32", "buffer %3 offset=64 offset_n=32",
                         "t.ir:16: error: "
                         "verify: memory: %2 and %3 are alive together and overlap at batch 2, at bytes 128..131");
    expect_plan_rejected("buffer %2 offset=64 offset_n=32", "buffer %2 offset=128 offset_n=32",
                         "t.ir:15: error: "
                         "verify: memory: %2 (f32[] at batch 2) at offset 128 + 32*N does not fit in the arena of "
                         "192 bytes");
    expect_plan_rejected("arena=192", "arena=130",
                         "t.ir:15: error: "
                         "verify: memory: %2 (f32[] at batch 2) at offset 64 + 32*N does not fit in the arena of "
                         "130 bytes");
    expect_plan_rejected("batch=2 arena", "batch=9223372036854775807 arena",
                         "t.ir:13: error: "
                         "verify: memory: %0 (f32[N,4] at batch 9223372036854775807) at offset 0 does not fit in "
                         "the arena of 192 bytes");
    expect_plan_rejected("  buffer %2 offset=64 offset_n=32\n", "",
                         "t.ir:12: error: "
                         "verify: memory: %2 has no buffer and overwrites no param");
    expect_plan_rejected("  inplace %4 into=%w\n", "",
                         "t.ir:12: error: "
                         "verify: memory: %4 has no buffer and overwrites no param");
    expect_plan_rejected("  buffer %2 offset=64 offset_n=32\n", "  inplace %2 into=%w\n",
                         "t.ir:15: error: "
                         "verify: memory: %2 is f32[] but overwrites %w, f32[4]");
    expect_plan_rejected("  buffer %3 offset=0 offset_n=32\n", "  inplace %3 into=%w\n",
                         "t.ir:16: error: "
                         "verify: memory: %3 overwrites %w, which %4 reads after it");
    expect_plan_rejected("return loss: %2, w.next: %4", "return loss: %2, w.next: %4, old: %w",
                         "t.ir:17: error: "
                         "verify: memory: %4 overwrites %w, an output (read after the last node)");
    expect_plan_rejected("  return loss", "  %5: f32[4] = mul %w, %4\n  return loss",
                         "t.ir:18: error: "
                         "verify: memory: %4 overwrites %w, which %5 reads after it");
}

/* What the text cannot say, set by hand: the verifier still names it (at the value's plan
 * line, the memory line for a source). */
Test(text, verify_plan_arrays)
{
    ir_graph *g = parse_ok(plan_text);
    g->plan->offset[0] = 0;
    expect_verify(g, "t.ir:12: error: "
                     "verify: memory: %x is an input, yet it has a buffer");
    g = parse_ok(plan_text);
    g->plan->inplace[1] = 1;
    expect_verify(g, "t.ir:12: error: "
                     "verify: memory: %w is a param, yet it has an in-place update");
    g = parse_ok(plan_text);
    g->plan->offset[6] = 128;
    expect_verify(g, "t.ir:17: error: "
                     "verify: memory: %4 has a buffer and overwrites a param too");
    g = parse_ok(plan_text);
    g->plan->inplace[6] = 0;
    expect_verify(g, "t.ir:17: error: "
                     "verify: memory: %4 overwrites %x, not a param");
    g = parse_ok(plan_text);
    g->plan->inplace[6] = 99;
    expect_verify(g, "t.ir:17: error: "
                     "verify: memory: %4 overwrites node 99, which does not exist");
    g = parse_ok(plan_text);
    g->plan->offset[3] = -64;
    expect_verify(g, "t.ir:14: error: "
                     "verify: memory: %1: offset -64 is negative");
    g = parse_ok(plan_text);
    g->plan->batch = 0;
    expect_verify(g, "verify: memory: batch 0; it must be at least 1");
    g = parse_ok(plan_text);
    g->plan->arena = -1;
    expect_verify(g, "verify: memory: the arena's size -1 is negative");
    g = parse_ok(plan_text);
    g->plan->inplace = NULL;
    expect_verify(g, "verify: memory: broken plan arrays");

    /* two values overwriting one param, neither reading it after the other */
    g = parse_ok(PLAN_NODES "}\n");
    plan_memory(g, 2);
    g->plan->offset[5] = -1, g->plan->inplace[5] = 1; /* %3, w's gradient, into w too */
    g->node[6].op = IR_neg;                           /* %4 = -%3: w is read by %0 only */
    g->node[6].in = &g->node[6].in[1];
    g->node[6].nin = 1;
    expect_verify(g, "verify: memory: %3 and %4 both overwrite %w");

    /* a body has no plan */
    g = parse_ok(kernel_text);
    ir_graph *b = g->kernels[0];
    b->plan = ir_alloc(b, sizeof *b->plan);
    expect_verify(g, "verify: body @k0: a body has no memory plan");
}

/* Mutations of a planned text: a located message, or a graph that prints as a fixed point;
 * a plan the verifier rejects never crashes it. */
Test(text, plan_mutations)
{
    static const char pool[] = "%@:=[],(){};\n -.0123456789eENnaxp_bufmory\x00\xff";
    size_t len = strlen(plan_text);
    char *t = malloc(len + 16);
    uint64_t seed = 0x2545f4914f6cdd1dull;
    int parsed = 0, verified = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(t, plan_text, len);
        size_t n = len;
        int edits = 1 + (int)(text_rng_next(&seed) % 2);
        for (int e = 0; e < edits; e++) /* mostly in the plan's half */
            text_mutate(t, &n, len / 2 + text_rng_next(&seed) % (n - len / 2), pool, sizeof pool - 1, &seed);
        char err[512] = "";
        ir_graph *g = ir_parse(t, n, "m.ir", err, sizeof err);
        if (!g) {
            cr_assert(strncmp(err, "m.ir:", 5) == 0 && strstr(err, ": error: "), "%s", err);
            continue;
        }
        parsed++;
        if (ir_verify(g, err, sizeof err)) {
            verified++;
            assert_print_fixed_point(g);
        } else {
            /* a plan's error at its line in the text (the verifier's others name a node) */
            cr_assert(strncmp(err, "verify: ", 8) == 0 ||
                          (strncmp(err, "m.ir:", 5) == 0 && strstr(err, ": error: verify: memory: ")),
                      "%s", err);
        }
        ir_graph_free(g);
    }
    free(t);
    cr_assert(parsed > 100 && verified > 50, "only %d mutations parsed, %d verified", parsed, verified);
}

/* --dot: a kernel whose outputs two nodes pick is one box naming both values; plain nodes
 * and sources are named as the text names them, with their model line; constants are drawn
 * and feed their users. */
Test(text, dot_draws_a_kernel_once_with_names_lines_and_constants)
{
    ir_graph *g = parse_ok("graph @d {\n"
                           "  %x: f32[N,4] = input                          ; d.c:5\n"
                           "  %0: f32[N,4] = mul %x, 2.0                    ; d.c:6\n"
                           "  %1: f32[N,4] = relu %0                        ; d.c:7\n"
                           "  return y: %1\n"
                           "}\n");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ir_print_dot(f, g);
    fclose(f);
    cr_expect(strstr(text, "label=\"%x = input\\nf32[N,4]\\nd.c:5\"") && strstr(text, "label=\"%0 = mul\\nd.c:6\""),
              "%s", text);
    cr_expect(strstr(text, "[shape=plaintext, fontsize=9, label=\"2\"]"), "%s", text);
    free(text);
    ir_graph_free(g);

    g = parse_ok(kernel_text);
    text = NULL, len = 0;
    f = open_memstream(&text, &len);
    ir_print_dot(f, g);
    fclose(f);
    int boxes = 0;
    for (const char *p = strstr(text, "  k0 ["); p; p = strstr(p + 1, "  k0 ["))
        boxes++;
    cr_expect_eq(boxes, 1, "%s", text);
    cr_expect(strstr(text, "label=\"@k0 -> %0 %1\\nadd, relu\\nk.c:3\""), "%s", text);
    cr_expect(strstr(text, "k0 -> k1 [label=\"%1 f32[N,4]\""), "%s", text);
    free(text);
    ir_graph_free(g);
}
