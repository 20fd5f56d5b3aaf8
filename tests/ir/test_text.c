/* The text IR: print, parse and verify.
 *
 * print(parse(print(g))) == print(g) byte for byte, a golden print, f32 literals, a table
 * of malformed inputs each with its exact message and line:col, garbage that must be
 * rejected without a crash; kernels and the memory plan too (printed, parsed, and checked by
 * the verifier however they were edited). Hand-broken graphs: test_verify.c. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
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

/* Every op of the table, in canonical form, with two kernel bodies (one unused). */
static const char all_ops[] =
    "kernel @k0 {\n"
    "  %p0: f32[N,3] = input                         ; all.c:20\n"
    "  %p1: f32[3] = input\n"
    "  %0: f32[N,3] = add %p0, %p1                   ; all.c:21\n"
    "  %1: f32[N,3] = relu %0\n"
    "  %2: f32[N,3] = dropout %1 p=0.5 site=1\n"
    "  %3: f32[N,3] = mul %0, 0.5\n"
    "  return r: %2, h: %3, two: 2\n"
    "}\n"
    "\n"
    "kernel @k1 {\n"
    "  %p0: f32[N,4] = input\n"
    "  return same: %p0\n"
    "}\n"
    "\n"
    "graph @all_ops {\n"
    "  %x: f32[N,4] = input grad                     ; all.c:1\n"
    "  %y: i32[N] = input                            ; all.c:2\n"
    "  %img: u8[N,4] = input                         ; all.c:3\n"
    "  %W: f32[4,3] = param normal(0, 0.01)          ; all.c:4\n"
    "  %b: f32[3] = param zeros                      ; all.c:5\n"
    "  %c: f32[3] = param constant(0.5)\n"
    "  %u: f32[4,4] = param uniform(-1, 1)\n"
    "  %v: f32[4] = param xavier\n"
    "  %0: u8[] = const 7\n"
    "  %1: bool[N,4] = eq %img, %0\n"
    "  %2: f32[N,4] = neg %x                         ; all.c:10\n"
    "  %3: f32[N,4] = exp %2\n"
    "  %4: f32[N,4] = log %3\n"
    "  %5: f32[N,4] = abs %4\n"
    "  %6: f32[N,4] = sqrt %5\n"
    "  %7: f32[N,4] = square %6\n"
    "  %8: f32[N,4] = relu %7\n"
    "  %9: f32[N,4] = sigmoid %8\n"
    "  %10: f32[N,4] = tanh %9\n"
    "  %11: f32[N,4] = cast %img\n"
    "  %12: f32[N,4] = stop_gradient %11\n"
    "  %13: f32[N,4] = add %10, %12\n"
    "  %14: f32[N,4] = sub %13, 1.0\n"
    "  %15: f32[N,4] = mul %14, 0.003921569\n"
    "  %16: f32[N,4] = div %15, %v\n"
    "  %17: f32[N,4] = pow %16, 2.0\n"
    "  %18: f32[N,4] = maximum %17, 1e-30\n"
    "  %19: f32[N,4] = minimum %18, inf\n"
    "  %20: bool[N,4] = lt %19, %x\n"
    "  %21: bool[N,4] = le %19, %x\n"
    "  %22: bool[N,4] = gt %19, %x\n"
    "  %23: bool[N,4] = ge %19, %x\n"
    "  %24: bool[N] = ne %y, -3\n"
    "  %25: f32[N,4] = where %20, %19, -0.0\n"
    "  %26: f32[N] = sum %25 axes=[1]\n"
    "  %27: f32[1,4] = mean %25 axes=[0] keepdims\n"
    "  %28: f32[] = max %25 axes=[0,1]\n"
    "  %29: i32[N] = argmax %25 axis=1\n"
    "  %30: i32[N] = cumsum %29 axis=0\n"
    "  %31: f32[N,3] = matmul %25, %W                ; a very long file name/that/goes/on.c:123\n"
    "  %32: f32[4,N] = transpose %25 perm=[1,0]\n"
    "  %33: f32[N,4] = matmul %32, %u ta tb\n"
    "  %34: f32[N,2,2] = reshape %33\n"
    "  %35: f32[N,7] = concat %33, %31 axis=1\n"
    "  %36: f32[N,3] = broadcast_to %b\n"
    "  %37: f32[N,3] = softmax %31 axis=1\n"
    "  %38: f32[N,3] = log_softmax %31 axis=1\n"
    "  %39: f32[N,10] = one_hot %y classes=10\n"
    "  %40: f32[N,3] = dropout %37 p=0.5 site=1\n"
    "  %41: f32[N,3] = dropout %38 p=0.25 site=3\n"
    "  %42: f32[N,3] = add %40, %c\n"
    "  %43: f32[N,4] = where %20, %19, -3.4028235e+38 ; edge.c:1\n"
    "  %44: f32[N,4] = minimum %43, 1.1754944e-38    ; long.c:2\n"
    "  %45: f32[N,10] = dropout %39 p=0.3333333333333333 site=9 ; far.c:3\n"
    "  %46: f32[N,2] = slice %31 axis=1 start=1\n"
    "  %47: f32[N,10] = dropout %45 p=0.3333333333333333 site=9\n"
    "  %48: f32[N,3] = kernel %31, %b body=@k0 out=r ; all.c:22\n"
    "  %49: f32[N,3] = kernel %31, %b body=@k0 out=h\n"
    "  %50: f32[N] = softmax_ce %31, %y\n"
    "  %51: f32[N,3] = softmax_ce_grad %31, %y, %26\n"
    "  return logits: %41, loss: %28, scale: 0.5, n: 3\n"
    "  train model loss=loss metrics=[n, scale] predict=logits\n"
    "  optimizer sgd lr=0.1 wd=0.0001 batch=256 epochs=10\n"
    "  group weights wd_scale=1 lr_scale=0.5 params=[W, u]\n"
    "  group biases wd_scale=0 lr_scale=1 params=[b, c]\n"
    "  data \"fashion\\\\mnist \\\"v2\\\"\\n\" classes=[\"T-shirt/top\", \"a\\tb\", \"Größe\", \"日本語\", \"\\x01\\x7f\\xff\\xc2\\x85\"]\n"
    "  option act=\"relu\" choices=\"relu|sigmoid|tanh\"\n"
    "  option width=\"\" choices=\"\"\n"
    "}\n"
    ;

Test(text, every_op_round_trips)
{
    assert_canonical(all_ops);
    ir_graph *g = parse_ok(all_ops);
    bool seen[IR_OP_COUNT] = {0};
    for (int32_t i = 0; i < g->n; i++)
        seen[g->node[i].op] = true;
    for (int op = 0; op < IR_OP_COUNT; op++)
        cr_expect(seen[op], "op %s is missing from the round-trip text", ir_ops[op].name);
    cr_assert_eq(g->next_site, 10, "next_site %d: one past the largest site", g->next_site);
    cr_assert_eq(g->nout, 4);
    cr_assert_str_eq(g->out[2].name, "scale");
    cr_assert_eq(g->node[g->out[2].id].op, IR_const);
    cr_assert_eq(g->node[g->out[3].id].dtype, AG_I32);
    ir_graph_free(g);
}

Test(text, locations_are_interned)
{
    ir_graph *g = parse_ok(all_ops);
    int32_t x = ir_find_source(g, IR_input, "x"), y = ir_find_source(g, IR_input, "y");
    cr_assert(x >= 0 && y >= 0);
    cr_assert_str_eq(g->node[x].loc.file, "all.c");
    cr_assert_eq(g->node[x].loc.line, 1);
    cr_assert_eq(g->node[y].loc.line, 2);
    cr_assert_eq(g->node[x].loc.file, g->node[y].loc.file, "one copy of a repeated file name");
    int32_t w = ir_find_source(g, IR_param, "W");
    cr_assert_eq(g->node[w].attr.init.kind, AG_INIT_NORMAL);
    cr_assert_eq(g->node[w].attr.init.b, 0.01);
    ir_graph_free(g);
}

/* The declarations of all_ops, as the parser reads them: strings decoded, names kept. */
Test(text, declarations_are_read)
{
    ir_graph *g = parse_ok(all_ops);
    const ir_train *t = g->train;
    cr_assert_not_null(t);
    cr_expect_eq(t->stage, IR_STAGE_MODEL);
    cr_expect_str_eq(t->loss, "loss");
    cr_assert_eq(t->nmetrics, 2);
    cr_expect_str_eq(t->metrics[0], "n");
    cr_expect_str_eq(t->metrics[1], "scale");
    cr_expect_str_eq(t->predict, "logits");
    cr_expect_str_eq(t->optimizer, "sgd");
    cr_expect_eq(t->lr, 0.1);
    cr_expect_eq(t->wd, 0.0001);
    cr_expect_eq(t->batch, 256);
    cr_expect_eq(t->epochs, 10);
    cr_assert_eq(t->ngroups, 2);
    cr_expect_str_eq(t->groups[0].name, "weights");
    cr_expect_eq(t->groups[0].wd_scale, 1);
    cr_expect_eq(t->groups[0].lr_scale, 0.5);
    cr_assert_eq(t->groups[0].nparams, 2);
    cr_expect_str_eq(t->groups[0].params[0], "W");
    cr_expect_str_eq(t->groups[0].params[1], "u");
    cr_expect_str_eq(t->groups[1].name, "biases");
    cr_expect_eq(t->groups[1].wd_scale, 0);
    cr_assert_eq(t->groups[1].nparams, 2);
    cr_expect_str_eq(t->groups[1].params[1], "c");
    cr_expect_str_eq(t->data, "fashion\\mnist \"v2\"\n");
    cr_assert_eq(t->nclasses, 5);
    cr_expect_str_eq(t->classes[0], "T-shirt/top");
    cr_expect_str_eq(t->classes[1], "a\tb");
    cr_expect_str_eq(t->classes[2], "Gr\xc3\xb6\xc3\x9f" "e");
    cr_expect_str_eq(t->classes[3], "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
    cr_expect_str_eq(t->classes[4], "\x01\x7f\xff\xc2\x85");
    cr_assert_eq(t->noptions, 2);
    cr_expect_str_eq(t->options[0].name, "act");
    cr_expect_str_eq(t->options[0].value, "relu");
    cr_expect_str_eq(t->options[0].choices, "relu|sigmoid|tanh");
    cr_expect_str_eq(t->options[1].name, "width");
    cr_expect_str_eq(t->options[1].value, "");
    cr_expect_str_eq(t->options[1].choices, "");
    int32_t x = ir_find_source(g, IR_input, "x"), y = ir_find_source(g, IR_input, "y");
    cr_expect(g->node[x].attr.grad);
    cr_expect_not(g->node[y].attr.grad);
    ir_graph_free(g);
}

/* Declarations in any order, keys in any order, raw bytes and escapes in strings: printed
 * canonically. */
Test(text, declarations_canonical_order)
{
    static const char messy[] = "graph @m {\n"
                                "  %x: f32[N,3] = input\n"
                                "  %W: f32[3] = param zeros\n"
                                "  %0: f32[] = sum %x axes=[0,1]\n"
                                "  return loss: %0, out: %x\n"
                                "  option act = \"\x41\t\" choices=\"A\\x09\" ; a comment\n"
                                "\n"
                                "  data \"\\x7F\\x80\\xc3\\xA9\\\\\" classes=[]\n"
                                "  group g params=[W] lr_scale=2 wd_scale=0.5\n"
                                "  optimizer sgd epochs=3 batch=1e0 wd=0 lr=.5\n"
                                "  train gradients predict=out metrics=[] loss=loss\n"
                                "}\n";
    char err[256] = "";
    ir_graph *g = ir_parse(messy, sizeof messy - 1, "m.ir", err, sizeof err);
    cr_assert_null(g, "batch=1e0 is not an integer");
    cr_assert_str_eq(err, "m.ir:10:32: error: expected an integer, got '1e0'");
    char fixed[sizeof messy];
    memcpy(fixed, messy, sizeof messy);
    memcpy(strstr(fixed, "1e0"), "001", 3);
    g = ir_parse(fixed, sizeof fixed - 1, "m.ir", err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    char *s = ir_print_str(g);
    cr_assert_str_eq(s, "graph @m {\n"
                        "  %x: f32[N,3] = input\n"
                        "  %W: f32[3] = param zeros\n"
                        "  %0: f32[] = sum %x axes=[0,1]\n"
                        "  return loss: %0, out: %x\n"
                        "  train gradients loss=loss predict=out\n"
                        "  optimizer sgd lr=0.5 wd=0 batch=1 epochs=3\n"
                        "  group g wd_scale=0.5 lr_scale=2 params=[W]\n"
                        "  data \"\\x7f\\x80\xc3\xa9\\\\\"\n"
                        "  option act=\"A\\t\" choices=\"A\\t\"\n"
                        "}\n");
    free(s);
    ir_graph_free(g);

    /* the smallest declarations: train and optimizer only, every stage */
    assert_canonical("graph @s {\n"
                     "  %x: f32[] = input\n"
                     "  return loss: %x\n"
                     "  train step loss=loss\n"
                     "  optimizer sgd lr=1e-05 wd=1e+30 batch=1073741824 epochs=1\n"
                     "}\n");
    assert_canonical("graph @s {\n"
                     "  %x: f32[] = input\n"
                     "  return loss: %x\n"
                     "  train model loss=loss\n"
                     "  optimizer sgd lr=0.1 wd=0 batch=1 epochs=1\n"
                     "  group empty wd_scale=1 lr_scale=1 params=[]\n"
                     "  data \"\"\n"
                     "}\n");
}

/* Declarations built with the API, printed to the exact text: every control byte, a byte
 * that is not UTF-8, an overlong and a surrogate are escaped, printable UTF-8 is not. */
Test(text, declarations_golden_print)
{
    ir_graph *g = ir_graph_new("d");
    char err[256];
    ir_node w = ir_node_make(IR_param, 0, NULL);
    w.dtype = AG_F32, w.shape = (ir_shape){1, {3}}, w.attr.name = "W";
    int32_t iw = ir_add(g, &w, err, sizeof err);
    ir_node s = ir_node_make(IR_sum, 1, &iw);
    s.attr.axes = 1;
    int32_t is = ir_add(g, &s, err, sizeof err);
    cr_assert(is >= 0, "%s", err);
    ir_add_output(g, "loss", is);
    ir_train *t = ir_alloc(g, sizeof *t);
    t->stage = IR_STAGE_STEP;
    t->loss = "loss";
    t->optimizer = "sgd";
    t->lr = 1.0 / 3, t->wd = 5e-4, t->batch = 64, t->epochs = 2;
    t->data = "\x01\x1f \x7f\"\\\n\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xc3|\xff";
    static const char *classes[] = {"\xc2\x85", "\xc2\xa0"};
    t->classes = classes, t->nclasses = 2;
    static const char *params[] = {"W"};
    static ir_group groups[] = {{"all", 0.1, 1e10, 1, params}};
    t->groups = groups, t->ngroups = 1;
    static ir_option options[] = {{"mode", "a b", "a b|c"}};
    t->options = options, t->noptions = 1;
    g->train = t;
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    char *got = ir_print_str(g);
    cr_assert_str_eq(got, "graph @d {\n"
                          "  %W: f32[3] = param zeros\n"
                          "  %0: f32[] = sum %W axes=[0]\n"
                          "  return loss: %0\n"
                          "  train step loss=loss\n"
                          "  optimizer sgd lr=0.3333333333333333 wd=0.0005 batch=64 epochs=2\n"
                          "  group all wd_scale=0.1 lr_scale=1e+10 params=[W]\n"
                          "  data \"\\x01\\x1f \\x7f\\\"\\\\\\n\\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                          "|\\xc0\\xaf|\\xed\\xa0\\x80|\\xf4\\x90\\x80\\x80|\\xc3|\\xff\" "
                          "classes=[\"\\xc2\\x85\", \"\xc2\xa0\"]\n"
                          "  option mode=\"a b\" choices=\"a b|c\"\n"
                          "}\n");
    /* and it reads back to the same bytes */
    ir_graph *h = parse_ok(got);
    cr_assert_str_eq(h->train->data, t->data);
    cr_assert_str_eq(h->train->classes[0], classes[0]);
    char *again = ir_print_str(h);
    cr_assert_str_eq(again, got);
    free(again);
    free(got);
    ir_graph_free(h);
    ir_graph_free(g);
}

/* A graph without declarations prints none and reads back with g->train NULL. */
Test(text, no_declarations)
{
    ir_graph *g = parse_ok("graph @n {\n  %x: f32[2] = input\n  return r: %x\n}\n");
    cr_assert_null(g->train);
    ir_graph_free(g);
}

Test(text, input_grad_and_slice)
{
    static const char text[] = "graph @s {\n"
                               "  %x: f32[N,5,3] = input grad\n"
                               "  %y: f32[N,2] = input\n"
                               "  %0: f32[N,2,3] = slice %x axis=1 start=3\n"
                               "  %1: f32[N,5,1] = slice %x axis=2 start=0\n"
                               "  %2: f32[N,2] = slice %y axis=1 start=0\n"
                               "  return a: %0, b: %1, c: %2\n"
                               "}\n";
    assert_canonical(text);
    ir_graph *g = parse_ok(text);
    cr_expect(g->node[0].attr.grad);
    cr_expect_not(g->node[1].attr.grad);
    const ir_node *s = &g->node[g->out[0].id];
    cr_expect_eq(s->op, IR_slice);
    cr_expect_eq(s->attr.axis, 1);
    cr_expect_eq(s->attr.start, 3);
    ir_graph_free(g);
}

/* A graph built with the API, printed to the exact expected text. */
Test(text, golden_print)
{
    ir_graph *g = ir_graph_new("mlp");
    const char *file = ir_strdup(g, "models/mlp.c");
    char err[256];
    int32_t id;
#define ADD(n, line)                                  \
    do {                                              \
        (n).loc = (ag_loc){(line) ? file : NULL, line}; \
        id = ir_add(g, &(n), err, sizeof err);        \
        cr_assert(id >= 0, "%s", err);                \
    } while (0)
    ir_node x = ir_node_make(IR_input, 0, NULL);
    x.dtype = AG_U8, x.shape = (ir_shape){2, {AG_N, 784}}, x.attr.name = "x";
    ADD(x, 5);
    int32_t ix = id;
    ir_node y = ir_node_make(IR_input, 0, NULL);
    y.dtype = AG_I32, y.shape = (ir_shape){1, {AG_N}}, y.attr.name = "y";
    ADD(y, 6);
    int32_t iy = id;
    ir_node w = ir_node_make(IR_param, 0, NULL);
    w.dtype = AG_F32, w.shape = (ir_shape){2, {784, 256}}, w.attr.name = "W1", w.attr.init = ag_normal(0, 0.01);
    ADD(w, 7);
    int32_t iw = id;
    ir_node b = ir_node_make(IR_param, 0, NULL);
    b.dtype = AG_F32, b.shape = (ir_shape){1, {256}}, b.attr.name = "b1", b.attr.init = ag_zeros();
    ADD(b, 8);
    ir_node c = ir_node_make(IR_cast, 1, &ix);
    c.dtype = AG_F32;
    ADD(c, 11);
    ir_node k = ir_node_make(IR_const, 0, NULL);
    k.dtype = AG_F32, k.attr.value = (double)(1.0f / 255);
    ADD(k, 0);
    ir_node m = ir_node_make(IR_mul, 2, (int32_t[]){id - 1, id});
    ADD(m, 11);
    ir_node mm = ir_node_make(IR_matmul, 2, (int32_t[]){id, iw});
    ADD(mm, 12);
    int32_t h = id;
    ir_node s = ir_node_make(IR_sum, 1, &h);
    s.attr.axes = 2;
    ADD(s, 13);
    int32_t is = id;
    ir_node mx = ir_node_make(IR_max, 1, &h);
    mx.attr.axes = 2, mx.attr.keepdims = true;
    ADD(mx, 13);
    ir_node am = ir_node_make(IR_argmax, 1, &h);
    am.attr.axis = 1;
    ADD(am, 0);
    ir_node t = ir_node_make(IR_transpose, 1, &h);
    t.attr.perm[0] = 1;
    ADD(t, 0);
    ir_node ta = ir_node_make(IR_matmul, 2, (int32_t[]){h, h});
    ta.attr.ta = true;
    ADD(ta, 0);
    ir_node d = ir_node_make(IR_dropout, 1, &h);
    d.attr.value = 0.5, d.attr.site = 1;
    ADD(d, 0);
    ir_node oh = ir_node_make(IR_one_hot, 1, &iy);
    oh.attr.classes = 10;
    ADD(oh, 0);
    ir_node cc = ir_node_make(IR_concat, 2, (int32_t[]){h, h});
    cc.attr.axis = 1;
    ADD(cc, 0);
    ir_node u = ir_node_make(IR_const, 0, NULL);
    u.dtype = AG_U8, u.attr.value = 7;
    ADD(u, 0);
#undef ADD
    ir_add_output(g, "logits", h);
    ir_add_output(g, "loss", is);
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);

    const char *want = "graph @mlp {\n"
                       "  %x: u8[N,784] = input                         ; models/mlp.c:5\n"
                       "  %y: i32[N] = input                            ; models/mlp.c:6\n"
                       "  %W1: f32[784,256] = param normal(0, 0.01)     ; models/mlp.c:7\n"
                       "  %b1: f32[256] = param zeros                   ; models/mlp.c:8\n"
                       "  %0: f32[N,784] = cast %x                      ; models/mlp.c:11\n"
                       "  %1: f32[N,784] = mul %0, 0.003921569          ; models/mlp.c:11\n"
                       "  %2: f32[N,256] = matmul %1, %W1               ; models/mlp.c:12\n"
                       "  %3: f32[N] = sum %2 axes=[1]                  ; models/mlp.c:13\n"
                       "  %4: f32[N,1] = max %2 axes=[1] keepdims       ; models/mlp.c:13\n"
                       "  %5: i32[N] = argmax %2 axis=1\n"
                       "  %6: f32[256,N] = transpose %2 perm=[1,0]\n"
                       "  %7: f32[256,256] = matmul %2, %2 ta\n"
                       "  %8: f32[N,256] = dropout %2 p=0.5 site=1\n"
                       "  %9: f32[N,10] = one_hot %y classes=10\n"
                       "  %10: f32[N,512] = concat %2, %2 axis=1\n"
                       "  %11: u8[] = const 7\n"
                       "  return logits: %2, loss: %3\n"
                       "}\n";
    char *got = ir_print_str(g);
    cr_assert_str_eq(got, want);
    free(got);

    /* and through a FILE, as the driver prints it */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_print(f, g);
    fclose(f);
    cr_assert_str_eq(buf, want);
    free(buf);
    ir_graph_free(g);
}

/* The literal an f32 constant prints as, read from "return r: LITERAL". */
static char *print_f32(float v, double *back)
{
    ir_graph *g = ir_graph_new("k");
    ir_node k = ir_node_make(IR_const, 0, NULL);
    k.dtype = AG_F32;
    k.attr.value = v;
    char err[256];
    int32_t id = ir_add(g, &k, err, sizeof err);
    cr_assert(id >= 0, "%s", err);
    ir_add_output(g, "r", id);
    char *s = ir_print_str(g);
    const char *prefix = "graph @k {\n  return r: ";
    cr_assert(strncmp(s, prefix, strlen(prefix)) == 0, "%s", s);
    char *lit = strdup(s + strlen(prefix));
    *strchr(lit, '\n') = 0;
    ir_graph *h = parse_ok(s);
    cr_assert_eq(h->node[h->out[0].id].dtype, AG_F32);
    *back = h->node[h->out[0].id].attr.value;
    free(s);
    ir_graph_free(g);
    ir_graph_free(h);
    return lit;
}

Test(text, f32_literals)
{
    static const struct {
        float v;
        const char *want;
    } cases[] = {
        {1.0f, "1.0"},
        {1.0f / 255, "0.003921569"}, /* 7 digits read back: "0.00392156886" is longer than needed */
        {-0.0f, "-0.0"},
        {0.0f, "0.0"},
        {INFINITY, "inf"},
        {-INFINITY, "-inf"},
        {1e-30f, "1e-30"},
        {FLT_MAX, "3.4028235e+38"},
        {FLT_MIN, "1.1754944e-38"},
        {0.1f, "0.1"},
        {100.0f, "100.0"},
        {1e10f, "1e+10"},
        {16777216.0f, "16777216.0"},
        {-2.5f, "-2.5"},
        {1.0f / 3, "0.33333334"},
        {1e-45f, "1.4013e-45"}, /* the smallest subnormal */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double back;
        char *lit = print_f32(cases[i].v, &back);
        cr_expect_str_eq(lit, cases[i].want, "%.9g printed as %s, want %s", (double)cases[i].v, lit, cases[i].want);
        float b = (float)back;
        cr_expect(memcmp(&b, &cases[i].v, sizeof b) == 0, "%s read back as %.9g", lit, back);
        free(lit);
    }
    double back;
    char *lit = print_f32(NAN, &back);
    cr_expect_str_eq(lit, "nan");
    cr_expect(isnan(back));
    free(lit);

    /* the spec's long form of 1/255 reads as the same float, and prints short */
    ir_graph *g = parse_ok("graph @k {\n  return r: 0.00392156886\n}\n");
    cr_assert_eq((float)g->node[g->out[0].id].attr.value, 1.0f / 255);
    ir_graph_free(g);
}

Test(text, literal_kinds)
{
    ir_graph *g = parse_ok("graph @k {\n"
                           "  return a: 7, b: -7, c: 7.0, d: 7e0, e: nan, f: -inf, g: 2147483647, h: -2147483648\n"
                           "}\n");
    static const ag_dtype want[] = {AG_I32, AG_I32, AG_F32, AG_F32, AG_F32, AG_F32, AG_I32, AG_I32};
    cr_assert_eq(g->nout, 8);
    for (int i = 0; i < 8; i++)
        cr_expect_eq(g->node[g->out[i].id].dtype, want[i], "output %d", i);
    cr_expect_eq(g->out[2].id, g->out[3].id, "7.0 and 7e0 are one hash-consed const");
    char *s = ir_print_str(g);
    cr_expect_str_eq(s, "graph @k {\n"
                        "  return a: 7, b: -7, c: 7.0, d: 7.0, e: nan, f: -inf, g: 2147483647, h: -2147483648\n"
                        "}\n");
    free(s);
    ir_graph_free(g);
}

Test(text, params_and_double_printing)
{
    assert_canonical("graph @p {\n"
                     "  %a: f32[3] = param normal(0.5, 0.009999999776482582)\n"
                     "  %b: f32[3] = param uniform(-0.1, 1e-300)\n"
                     "  %c: f32[3] = param constant(-0)\n"
                     "  %d: f32[2,3] = param xavier\n"
                     "  %0: f32[3] = dropout %a p=0.1 site=4\n"
                     "  %1: bool[] = const 1\n"
                     "  %2: i32[3] = cast %b\n"
                     "  %3: i32[] = sum %2 axes=[0]\n"
                     "  return a: %0, b: %1, c: %3, d: %d\n"
                     "}\n");
}

Test(text, comments_blank_lines_and_spacing)
{
    const char *messy = "; leading comment\n\n"
                        "graph @m {   ; trailing comment\r\n"
                        "\n"
                        "  ; a comment line\n"
                        "\t%x:f32[N,3]=input;a.c:1\n"
                        "  %h :  f32[N,3] = relu   %x    ;   b:c.c:7   \n"
                        "  %s: f32[N,1] = sum %h keepdims axes=[1]\n"
                        "  return   out :%h , s:%s ; done\n"
                        "} ; end\n\n ; more\n";
    char err[256] = "";
    ir_graph *g = ir_parse(messy, strlen(messy), "m.ir", err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    char *s = ir_print_str(g);
    cr_assert_str_eq(s, "graph @m {\n"
                        "  %x: f32[N,3] = input                          ; a.c:1\n"
                        "  %0: f32[N,3] = relu %x                        ; b:c.c:7\n"
                        "  %1: f32[N,1] = sum %0 axes=[1] keepdims\n"
                        "  return out: %0, s: %1\n"
                        "}\n");
    free(s);
    ir_graph_free(g);
}

/* ---- malformed IR: each with its exact message ---- */

#define BAD(text, msg) {text, sizeof(text) - 1, msg}
/* body @k0 (lines 1-6): y = p0 + p1, both f32[2]; then a graph with a: f32[2], b: f32[3] */
#define KBODY                                                                                      \
    "kernel @k0 {\n  %p0: f32[2] = input\n  %p1: f32[2] = input\n  %0: f32[2] = add %p0, %p1\n" \
    "  return y: %0\n}\n\n"
#define KHEAD KBODY "graph @x {\n  %a: f32[2] = input\n  %b: f32[3] = input\n"
/* outputs v (not a scalar), l (a scalar f32), k (a scalar i32); a param w, an input a */
#define DECL_HEAD                                                                                  \
    "graph @x {\n  %a: f32[2] = input\n  %w: f32[2] = param zeros\n  %u: f32[] = param zeros\n" \
    "  return v: %a, l: %u, k: 1\n"
#define DECL_TRAIN "  train model loss=l\n"
#define DECL_OPT "  optimizer sgd lr=0.1 wd=0 batch=1 epochs=1\n"
/* a graph (lines 1-6) with an input x, a param w and two computed values; line 7 is free */
#define PLAN_HEAD                                                                              \
    "graph @p {\n  %x: f32[N,4] = input\n  %w: f32[4] = param zeros\n  %0: f32[N,4] = mul %x, %w\n" \
    "  %1: f32[4] = sub %w, %w\n  return y: %0, w.next: %1\n"
#define PLAN_MEM "  memory batch=1 arena=64\n"
static const struct {
    const char *text;
    size_t len;
    const char *msg;
} bad[] = {
    BAD("", "t.ir:1:1: error: unexpected end of file"),
    BAD("graph @x(", "t.ir:1:9: error: expected '{', got '('"),
    BAD("graph @x {\n  %0: f32[2] = nosuchop %1\n  return r: %0\n}\n", "t.ir:2:16: error: unknown op 'nosuchop'"),
    BAD("\x00\xff garbage", "t.ir:1:1: error: unexpected character '\\x00'"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %b: f32[2] = relu %a \xff\n  return r: %a\n}\n",
        "t.ir:3:24: error: unexpected character '\\xff'"),
    BAD("graph @x {\n  %0: f32[2,3] = add %0, %0\n}\n", "t.ir:2:22: error: undefined value %0"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = relu %1\n  return r: %0\n}\n",
        "t.ir:3:21: error: undefined value %1"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = relu %a\n  %0: f32[2] = exp %a\n  return r: %0\n}\n",
        "t.ir:4:3: error: redefinition of %0 (first defined on line 3)"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %a: f32[3] = input\n  return r: %a\n}\n",
        "t.ir:3:3: error: redefinition of %a (first defined on line 2)"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %a: f32[2] = param zeros\n  return r: %a\n}\n",
        "t.ir:3:3: error: redefinition of %a (first defined on line 2)"),
    BAD("graph @x {\n  %a: f33[2] = input\n  return r: %a\n}\n", "t.ir:2:7: error: unknown dtype 'f33'"),
    BAD("graph @x {\n  %a: f64[2] = input\n  return r: %a\n}\n", "t.ir:2:7: error: dtype f64 is not allowed in a graph"),
    BAD("graph @x {\n  %a: f32[2,0] = input\n  return r: %a\n}\n",
        "t.ir:2:13: error: bad dim '0': dims are positive integers or N"),
    BAD("graph @x {\n  %a: f32[2,-1] = input\n  return r: %a\n}\n",
        "t.ir:2:13: error: bad dim '-1': dims are positive integers or N"),
    BAD("graph @x {\n  %a: f32[1,2,3,4,5] = input\n  return r: %a\n}\n", "t.ir:2:19: error: more than 4 dims"),
    BAD("graph @x {\n  %a: f32[N,N] = input\n  return r: %a\n}\n", "t.ir:2:13: error: the batch dim N appears twice"),
    BAD("graph @x {\n  %a: f32[99999999999999999999] = input\n  return r: %a\n}\n",
        "t.ir:2:11: error: integer overflow in dim '99999999999999999999'"),
    BAD("graph @x {\n  %a: f32[4294967296,4294967296] = input\n  return r: %a\n}\n",
        "t.ir:2:22: error: integer overflow in dims: the shape has too many elements"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2] = sum %a axes=[1] axis=0\n  return r: %0\n}\n",
        "t.ir:3:32: error: unknown attribute 'axis' for sum"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2] = sum %a axes=[1] axes=[1]\n  return r: %0\n}\n",
        "t.ir:3:32: error: duplicate attribute 'axes'"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2] = sum %a\n  return r: %0\n}\n",
        "t.ir:3:16: error: sum: missing attribute 'axes'"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2] = sum %a axes=[1,1]\n  return r: %0\n}\n",
        "t.ir:3:31: error: duplicate axis 1 in axes"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2] = sum %a axes=[9]\n  return r: %0\n}\n",
        "t.ir:3:29: error: axis 9 out of range"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[3,2] = transpose %a perm=[1,0,0]\n  return r: %0\n}\n",
        "t.ir:3:31: error: transpose: perm has 3 entries for rank 2"),
    BAD("graph @x {\n  %a: f32[2] = input\n}\n", "t.ir:3:1: error: missing 'return' before '}'"),
    BAD("graph @x {\n  %a: f32[2] = input\n", "t.ir:3:1: error: unexpected end of file"),
    BAD("graph @x {\n  %a: f32[2] = input\n  return r: %a\n", "t.ir:4:1: error: missing '}' at end of file"),
    BAD("graph @x {\n  %a: f32[2] = input\n  return r: %a", "t.ir:3:15: error: missing '}' at end of file"),
    BAD("graph @x {\n  %a: f32[2", "t.ir:2:12: error: unexpected end of file"),
    BAD("graph @x {\n  %a: f32[2] = input\n  return r: %a\n}\n}\n", "t.ir:5:1: error: unexpected '}' after '}'"),
    BAD("graph @x {\n  %a: f32[2] = input\n  return r: %a, r: %a\n}\n", "t.ir:3:17: error: duplicate output name 'r'"),
    BAD("graph @x {\n  %a: f32[2] = input\n  return %a\n}\n", "t.ir:3:10: error: expected an output name, got '%a'"),
    BAD("graph @x {\n  %a: f32[2] = input\n  return r: %\n}\n", "t.ir:3:13: error: expected a name after '%'"),
    BAD("graph @ {\n", "t.ir:1:7: error: expected a name after '@'"),
    BAD("graph @x {\n  %a: f32[2,4] = input\n  %0: f32[2,3] = add %a, %a\n  return r: %0\n}\n",
        "t.ir:3:7: error: declared f32[2,3] but add gives f32[2,4]"),
    BAD("graph @x {\n  %a: f32[2,4] = input\n  %0: f32[2,3] = matmul %a, %a\n  return r: %0\n}\n",
        "t.ir:3:18: error: matmul: inner dimensions differ: [2,4] x [2,4]"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = relu %a, %a\n  return r: %0\n}\n",
        "t.ir:3:16: error: relu: takes 1 operand, got 2"),
    BAD("graph @x {\n  %a: f32[2] = input ; nowhere\n  return r: %a\n}\n",
        "t.ir:2:24: error: bad location 'nowhere'; expected FILE:LINE"),
    BAD("graph @x {\n  %a: f32[2] = param gaussian(0, 1)\n  return r: %a\n}\n",
        "t.ir:2:22: error: unknown initializer 'gaussian'"),
    BAD("graph @x {\n  %a: f32[2] = param normal(0, -1)\n  return r: %a\n}\n",
        "t.ir:2:16: error: param a: normal(0, -1): the standard deviation must be >= 0"),
    BAD("graph @x {\n  %a: i32[2] = param zeros\n  return r: %a\n}\n",
        "t.ir:2:16: error: param a: parameters are f32, not i32"),
    BAD("graph @x {\n  %0: f32[2] = input\n  return r: %0\n}\n", "t.ir:2:3: error: input name %0 is not an identifier"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = dropout %a p=0.5 site=2\n"
        "  %1: f32[2] = dropout %0 site=2 p=0.25\n  return r: %1\n}\n",
        "t.ir:4:32: error: dropout site 2 has p=0.25 here but p=0.5 on line 3"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = dropout %a p=1.5 site=1\n  return r: %0\n}\n",
        "t.ir:3:16: error: dropout: p = 1.5 is not a probability in [0, 1]"),
    BAD("graph @x {\n  %a: i32[2] = input\n  %0: i32[2] = add %a, 3000000000\n  return r: %0\n}\n",
        "t.ir:3:24: error: i32 literal 3000000000 out of range"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = mul %a, 1e999\n  return r: %0\n}\n",
        "t.ir:3:24: error: number '1e999' out of range for f32"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = mul %a 2\n  return r: %0\n}\n",
        "t.ir:3:23: error: expected an attribute or end of line, got '2'"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: u8[] = const 256\n  return r: %a\n}\n",
        "t.ir:3:20: error: u8 constant 256 out of range"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = mul %a, 1.5.5\n  return r: %0\n}\n",
        "t.ir:3:24: error: bad number '1.5.5'"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = mul %a, %a, \n  return r: %0\n}\n",
        "t.ir:3:28: error: expected an operand, got end of line"),
    BAD("graph x {\n", "t.ir:1:7: error: expected a graph name '@name', got 'x'"),
    /* input grad and slice */
    BAD("graph @x {\n  %a: u8[2] = input grad\n  return r: %a\n}\n",
        "t.ir:2:21: error: input a: a gradient needs f32, not u8"),
    BAD("graph @x {\n  %a: f32[2] = param zeros grad\n  return r: %a\n}\n",
        "t.ir:2:28: error: expected end of line, got 'grad'"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2,3] = slice %a axis=1 start=2\n  return r: %0\n}\n",
        "t.ir:3:18: error: slice: 3 elements from 2 are not within the 3 of axis 1"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2,1] = slice %a axis=1 start=-1\n  return r: %0\n}\n",
        "t.ir:3:18: error: slice: 1 elements from -1 are not within the 3 of axis 1"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2,2] = slice %a axis=1\n  return r: %0\n}\n",
        "t.ir:3:18: error: slice: missing attribute 'start'"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2,2] = slice %a axis=2 start=0\n  return r: %0\n}\n",
        "t.ir:3:18: error: slice: axis 2 out of range for rank 2"),
    BAD("graph @x {\n  %a: f32[N,3] = input\n  %0: f32[2,3] = slice %a axis=0 start=0\n  return r: %0\n}\n",
        "t.ir:3:18: error: slice: cannot slice along the batch axis N"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[1,2] = slice %a axis=1 start=0\n  return r: %0\n}\n",
        "t.ir:3:18: error: slice: result [1,2] differs from [2,3] off axis 1"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2,2] = slice %a axis=1 start=9223372036854775807\n"
        "  return r: %0\n}\n",
        "t.ir:3:18: error: slice: start 9223372036854775807 is out of range"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2,3] = relu %a start=1\n  return r: %0\n}\n",
        "t.ir:3:26: error: unknown attribute 'start' for relu"),
    /* declarations */
    BAD(DECL_HEAD "  trian model loss=l\n}\n", "t.ir:6:3: error: unknown declaration 'trian'"),
    BAD(DECL_HEAD "  3\n}\n", "t.ir:6:3: error: expected a declaration or '}', got '3'"),
    BAD(DECL_HEAD "  train model loss=l\n}\n", "t.ir:7:1: error: missing 'optimizer' line before '}'"),
    BAD(DECL_HEAD DECL_OPT "}\n", "t.ir:7:1: error: missing 'train' line before '}'"),
    BAD(DECL_HEAD "  data \"d\"\n}\n", "t.ir:7:1: error: missing 'train' line before '}'"),
    BAD(DECL_HEAD DECL_OPT DECL_TRAIN DECL_OPT "}\n", "t.ir:8:3: error: duplicate 'optimizer' line (first on line 6)"),
    BAD(DECL_HEAD DECL_TRAIN DECL_OPT "\n  train model loss=l\n}\n",
        "t.ir:9:3: error: duplicate 'train' line (first on line 6)"),
    BAD(DECL_HEAD DECL_TRAIN DECL_OPT "  data \"a\"\n  data \"a\"\n}\n",
        "t.ir:9:3: error: duplicate 'data' line (first on line 8)"),
    BAD(DECL_HEAD "  train modle loss=l\n", "t.ir:6:9: error: unknown stage 'modle'; expected model, gradients or step"),
    BAD(DECL_HEAD "  train\n", "t.ir:6:8: error: expected a stage, got end of line"),
    BAD(DECL_HEAD "  train model loss=nope\n", "t.ir:6:20: error: loss 'nope' is not an output"),
    BAD(DECL_HEAD "  train model loss=v\n", "t.ir:6:20: error: loss 'v' is f32[2], not a scalar f32"),
    BAD(DECL_HEAD "  train model loss=k\n", "t.ir:6:20: error: loss 'k' is i32[], not a scalar f32"),
    BAD(DECL_HEAD "  train model loss=l metrics=[k, acc]\n", "t.ir:6:34: error: metric 'acc' is not an output"),
    BAD(DECL_HEAD "  train model loss=l metrics=[v]\n", "t.ir:6:31: error: metric 'v' is f32[2], not a scalar"),
    BAD(DECL_HEAD "  train model loss=l metrics=[k, l, k]\n", "t.ir:6:37: error: duplicate metric 'k'"),
    BAD(DECL_HEAD "  train model loss=l metrics=[k l]\n", "t.ir:6:33: error: expected ',', got 'l'"),
    BAD(DECL_HEAD "  train model loss=l predict=w\n", "t.ir:6:30: error: predict 'w' is not an output"),
    BAD(DECL_HEAD "  train model loss=l lost=l\n", "t.ir:6:22: error: unknown key 'lost' in a train line"),
    BAD(DECL_HEAD "  train model loss=l loss=l\n", "t.ir:6:22: error: duplicate key 'loss'"),
    BAD(DECL_HEAD "  train model loss l\n", "t.ir:6:20: error: expected '=', got 'l'"),
    BAD(DECL_HEAD "  train model metrics=[k]\n" DECL_OPT "}\n", "t.ir:6:3: error: train: missing loss="),
    BAD(DECL_HEAD "  train model loss=l 3\n", "t.ir:6:22: error: expected a key or end of line, got '3'"),
    BAD(DECL_HEAD "  optimizer 3\n", "t.ir:6:13: error: expected an optimizer name, got '3'"),
    BAD(DECL_HEAD "  optimizer sgd lr=0.1 wd=0 batch=1\n", "t.ir:6:3: error: optimizer: missing epochs="),
    BAD(DECL_HEAD "  optimizer sgd momentum=0.9\n", "t.ir:6:17: error: unknown key 'momentum' in an optimizer line"),
    BAD(DECL_HEAD "  optimizer sgd lr=inf\n", "t.ir:6:20: error: lr must be finite, got 'inf'"),
    BAD(DECL_HEAD "  optimizer sgd wd=-nan\n", "t.ir:6:20: error: wd must be finite, got '-nan'"),
    BAD(DECL_HEAD "  optimizer sgd batch=0\n", "t.ir:6:23: error: batch 0 out of range"),
    BAD(DECL_HEAD "  optimizer sgd batch=1073741825\n", "t.ir:6:23: error: batch 1073741825 out of range"),
    BAD(DECL_HEAD "  optimizer adam lr=0.1\n", "t.ir:6:13: error: unknown optimizer 'adam' (aotgrad has sgd)"),
    BAD(DECL_HEAD "  optimizer sgd lr=-1\n", "t.ir:6:20: error: lr must be >= 0 and fit an f32, got '-1'"),
    BAD(DECL_HEAD "  optimizer sgd wd=1e39\n", "t.ir:6:20: error: wd must be >= 0 and fit an f32, got '1e39'"),
    BAD(DECL_HEAD "  optimizer sgd epochs=1.5\n", "t.ir:6:24: error: expected an integer, got '1.5'"),
    BAD(DECL_HEAD "  group g wd_scale=1 lr_scale=1 params=[a]\n", "t.ir:6:41: error: 'a' is not a param"),
    BAD(DECL_HEAD "  group g wd_scale=1 lr_scale=1 params=[w, zz]\n", "t.ir:6:44: error: 'zz' is not a param"),
    BAD(DECL_HEAD "  group g wd_scale=1 lr_scale=1 params=[w]\n  group h wd_scale=1 lr_scale=1 params=[u, w]\n",
        "t.ir:7:44: error: param 'w' is already in group 'g'"),
    BAD(DECL_HEAD "  group g wd_scale=1 lr_scale=1 params=[w, w]\n", "t.ir:6:44: error: param 'w' is already in group 'g'"),
    BAD(DECL_HEAD "  group g wd_scale=1 lr_scale=1 params=[w]\n  group g wd_scale=1 lr_scale=1 params=[u]\n",
        "t.ir:7:9: error: duplicate group 'g' (first on line 6)"),
    BAD(DECL_HEAD "  group g wd_scale=1 params=[w]\n", "t.ir:6:3: error: group: missing lr_scale="),
    BAD(DECL_HEAD "  group g wd_scale=1e999\n", "t.ir:6:20: error: number '1e999' out of range for f64"),
    BAD(DECL_HEAD "  group g lr_scale=nan\n", "t.ir:6:20: error: lr_scale must be finite, got 'nan'"),
    BAD(DECL_HEAD "  group \"g\"\n", "t.ir:6:9: error: expected a group name, got '\"g\"'"),
    BAD(DECL_HEAD "  data d\n", "t.ir:6:8: error: expected a string, got 'd'"),
    BAD(DECL_HEAD "  data \"a\" classes=[\"x\", y]\n", "t.ir:6:26: error: expected a string, got 'y'"),
    BAD(DECL_HEAD "  data \"a\\qb\"\n", "t.ir:6:10: error: bad escape '\\q' in string"),
    BAD(DECL_HEAD "  data \"ab\\x4\"\n", "t.ir:6:11: error: bad escape '\\x' in string: expected two hex digits"),
    BAD(DECL_HEAD "  data \"ab\\x4", "t.ir:6:11: error: bad escape '\\x' in string: expected two hex digits"),
    BAD(DECL_HEAD "  data \"\\\x01\"\n", "t.ir:6:9: error: bad escape in string: '\\' before '\\x01'"),
    BAD(DECL_HEAD "  data \"\\x00\"\n", "t.ir:6:9: error: a string cannot hold a NUL byte"),
    BAD(DECL_HEAD "  data \"a\0b\"\n", "t.ir:6:10: error: a string cannot hold a NUL byte"),
    BAD(DECL_HEAD "  data \"abc\n}\n", "t.ir:6:8: error: unterminated string"),
    BAD(DECL_HEAD "  data \"abc\\\n}\n", "t.ir:6:8: error: unterminated string"),
    BAD(DECL_HEAD "  data \"abc", "t.ir:6:8: error: unterminated string"),
    BAD(DECL_HEAD "  data \"abc\\", "t.ir:6:8: error: unterminated string"),
    BAD(DECL_HEAD "  option act=\"relu\"\n", "t.ir:6:3: error: option: missing choices="),
    BAD(DECL_HEAD "  option act \"relu\"\n", "t.ir:6:14: error: expected '=', got '\"relu\"'"),
    BAD(DECL_HEAD "  option act=relu\n", "t.ir:6:14: error: expected a string, got 'relu'"),
    BAD(DECL_HEAD "  option a=\"\" choices=\"\"\n  option a=\"\" choices=\"\"\n",
        "t.ir:7:10: error: duplicate option 'a' (first on line 6)"),
    BAD(DECL_HEAD "  %1: f32[] = input\n", "t.ir:6:3: error: expected a declaration or '}', got '%1'"),
    BAD(DECL_HEAD DECL_TRAIN DECL_OPT "}\n  train model loss=l\n", "t.ir:9:3: error: unexpected 'train' after '}'"),
    BAD("grape @x {\n", "t.ir:1:1: error: expected 'graph', got 'grape'"),
    /* kernel bodies and the nodes that use them */
    BAD("kernel @k1 {\n", "t.ir:1:8: error: expected body @k0, got '@k1' (bodies are numbered from 0 in order)"),
    BAD(KBODY "kernel @k0 {\n", "t.ir:8:8: error: expected body @k1, got '@k0' (bodies are numbered from 0 in order)"),
    BAD("kernel k0 {\n", "t.ir:1:8: error: expected a body name '@kK', got 'k0'"),
    BAD(KBODY "grape @x {\n", "t.ir:8:1: error: expected 'kernel' or 'graph', got 'grape'"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %b body=@k0 out=y\n  return r: %0\n}\n",
        "t.ir:11:16: error: kernel: operand 1 is f32[3]; body @k0's input p1 is f32[2]"),
    BAD(KHEAD "  %0: f32[2] = kernel %a body=@k0 out=y\n  return r: %0\n}\n",
        "t.ir:11:16: error: kernel: body @k0 takes 2 operands, got 1"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a, %a body=@k0 out=y\n  return r: %0\n}\n",
        "t.ir:11:16: error: kernel: body @k0 takes 2 operands, got 3"),
    BAD(KHEAD "  %0: f32[3] = kernel %a, %a body=@k0 out=y\n  return r: %0\n}\n",
        "t.ir:11:7: error: declared f32[3] but kernel gives f32[2]"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a body=@k1 out=y\n  return r: %0\n}\n",
        "t.ir:11:35: error: unknown body '@k1'"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a body=@k00 out=y\n  return r: %0\n}\n",
        "t.ir:11:35: error: unknown body '@k00'"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a body=k0 out=y\n  return r: %0\n}\n",
        "t.ir:11:35: error: expected a body '@kK', got 'k0'"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a body=@k0 out=z\n  return r: %0\n}\n",
        "t.ir:11:43: error: body @k0 has no output 'z'"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a out=y\n  return r: %0\n}\n",
        "t.ir:11:16: error: kernel: missing attribute 'body'"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a body=@k0\n  return r: %0\n}\n",
        "t.ir:11:16: error: kernel: missing attribute 'out'"),
    BAD(KHEAD "  %0: f32[2] = kernel body=@k0 out=y\n  return r: %0\n}\n",
        "t.ir:11:16: error: kernel: takes one or more operands, got none"),
    BAD(KHEAD "  %0: f32[2] = add %a, %a out=y\n  return r: %0\n}\n",
        "t.ir:11:27: error: unknown attribute 'out' for add"),
    BAD(KHEAD "  %0: f32[2] = relu %p0\n  return r: %0\n}\n", "t.ir:11:21: error: undefined value %p0"),
    BAD("kernel @k0 {\n  %p0: f32[2] = input\n  %w: f32[2] = param zeros\n",
        "t.ir:3:16: error: a kernel body has no param nodes"),
    BAD(KBODY "kernel @k1 {\n  %p0: f32[2] = input\n  %0: f32[2] = kernel %p0, %p0 body=@k0 out=y\n",
        "t.ir:10:16: error: a kernel body has no kernel nodes"),
    BAD("kernel @k0 {\n  %p0: f32[] = input\n  return y: %p0\n  train model loss=y\n}\n",
        "t.ir:4:3: error: a kernel body has no declarations, got 'train'"),
    BAD("kernel @k0 {\n  %p0: f32[2] = input\n}\n", "t.ir:3:1: error: missing 'return' before '}'"),
    BAD("kernel @k0 {\n  %p0: f32[2] = input\n  return y: %p0\n", "t.ir:4:1: error: missing '}' at end of file"),
    BAD("kernel @k0 {\n  %p0: f32[2] = input\n  return y: %p0\n}\n",
        "t.ir:5:1: error: unexpected end of file"),
    BAD("kernel @k0 {\n  %p0: f32[2] = input\n  %0: f32[2] = dropout %p0 p=0.5 site=1\n  return y: %0\n}\n"
        "graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = dropout %a p=0.25 site=1\n  return r: %0\n}\n",
        "t.ir:8:39: error: dropout site 1 has p=0.25 here but p=0.5 on line 3"),
    /* the memory plan */
    BAD(PLAN_HEAD "  buffer %0 offset=0\n}\n", "t.ir:7:3: error: a 'buffer' line before the 'memory' line"),
    BAD(PLAN_HEAD "  inplace %1 into=%w\n" PLAN_MEM "}\n",
        "t.ir:7:3: error: an 'inplace' line before the 'memory' line"),
    BAD(PLAN_HEAD PLAN_MEM PLAN_MEM "}\n", "t.ir:8:3: error: duplicate 'memory' line (first on line 7)"),
    BAD(PLAN_HEAD "  memory batch=1\n}\n", "t.ir:7:3: error: memory: missing arena="),
    BAD(PLAN_HEAD "  memory batch=0 arena=64\n}\n", "t.ir:7:16: error: batch 0 out of range"),
    BAD(PLAN_HEAD "  memory batch=1 arena=-1\n}\n", "t.ir:7:24: error: arena -1 out of range"),
    BAD(PLAN_HEAD "  memory batch=1 arena=64 align=64\n}\n",
        "t.ir:7:27: error: unknown key 'align' in a memory line"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %9 offset=0\n}\n", "t.ir:8:10: error: undefined value %9"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer 1.0 offset=0\n}\n", "t.ir:8:10: error: expected a value, got '1.0'"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %x offset=0\n}\n",
        "t.ir:8:10: error: '%x' is an input, not a computed value: it has no place in the plan"),
    BAD(PLAN_HEAD PLAN_MEM "  inplace %w into=%w\n}\n",
        "t.ir:8:11: error: '%w' is a param, not a computed value: it has no place in the plan"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %0 offset=0\n  buffer %0 offset=64\n}\n",
        "t.ir:9:10: error: duplicate plan for '%0' (first on line 8)"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %1 offset=0\n  inplace %1 into=%w\n}\n",
        "t.ir:9:11: error: duplicate plan for '%1' (first on line 8)"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %0 offset=-64\n}\n", "t.ir:8:20: error: offset -64 out of range"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %0\n}\n", "t.ir:8:3: error: buffer: missing offset="),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %0 offset=0 offset=64\n}\n", "t.ir:8:22: error: duplicate key 'offset'"),
    BAD(PLAN_HEAD PLAN_MEM "  inplace %1 into=%x\n}\n", "t.ir:8:19: error: into='%x': not a param"),
    BAD(PLAN_HEAD PLAN_MEM "  inplace %1 into=%0\n}\n", "t.ir:8:19: error: into='%0': not a param"),
    BAD(PLAN_HEAD PLAN_MEM "  inplace %1 into=%q\n}\n", "t.ir:8:19: error: undefined value %q"),
    BAD(PLAN_HEAD PLAN_MEM "  inplace %1 onto=%w\n}\n", "t.ir:8:14: error: unknown key 'onto' in an inplace line"),
    BAD("kernel @k0 {\n  %p0: f32[2] = input\n  return y: %p0\n  memory batch=1 arena=0\n}\n",
        "t.ir:4:3: error: a kernel body has no declarations, got 'memory'"),
};

Test(text, malformed)
{
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[256] = "";
        ir_graph *g = ir_parse(bad[i].text, bad[i].len, "t.ir", err, sizeof err);
        cr_expect_null(g, "case %zu parsed", i);
        ir_graph_free(g);
        cr_expect_str_eq(err, bad[i].msg, "case %zu:\n  got  %s\n  want %s", i, err, bad[i].msg);
    }
}

/* The message is cut to fit the buffer, never overrun; a NULL buffer is fine too. */
Test(text, small_error_buffer)
{
    const char *t = "graph @x {\n  %0: f32[2] = nosuchop %1\n";
    char err[8];
    memset(err, 'z', sizeof err);
    cr_assert_null(ir_parse(t, strlen(t), "t.ir", err, 6));
    cr_assert_str_eq(err, "t.ir:");
    cr_assert_eq(err[6], 'z');
    cr_assert_null(ir_parse(t, strlen(t), NULL, NULL, 0));
}

/* The parser stops at len: the bytes after it are never read. */
Test(text, stops_at_len)
{
    const char *t = "graph @x {\n  %a: f32[2] = input\n  return r: %a\n}\nGARBAGE";
    char err[256] = "";
    ir_graph *g = ir_parse(t, strlen(t) - strlen("GARBAGE"), "t.ir", err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    ir_graph_free(g);
    char *copy = malloc(5); /* exactly "graph", no NUL: ASan catches a read past it */
    memcpy(copy, "graph", 5);
    cr_assert_null(ir_parse(copy, 5, "t.ir", err, sizeof err));
    cr_assert_str_eq(err, "t.ir:1:6: error: unexpected end of file");
    free(copy);
}

/* Nonsense, a million levels deep, huge numbers: a message each time, never a crash. */
Test(text, garbage_never_crashes)
{
    size_t n = 1000000;
    char *t = malloc(n + 32);
    char err[256];
    const char *heads[] = {"graph @x {\n  %a: f32", "graph @x {\n  %a: f32[2] = param normal(", "", "graph @x {\n  %"};
    const char fill[] = {'[', '(', '{', '%', '1', '9', '-', ',', '\0', '\xff', ';', '\n'};
    for (size_t h = 0; h < sizeof heads / sizeof *heads; h++)
        for (size_t f = 0; f < sizeof fill; f++) {
            size_t k = strlen(heads[h]);
            memcpy(t, heads[h], k);
            memset(t + k, fill[f], n - k);
            err[0] = 0;
            cr_assert_null(ir_parse(t, n, "g.ir", err, sizeof err));
            cr_assert(strncmp(err, "g.ir:", 5) == 0 && strstr(err, ": error: "), "%s", err);
        }
    free(t);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One random edit of t[0..*n) at `at`: a byte replaced, deleted, or inserted from pool. */
static void mutate(char *t, size_t *n, size_t at, const char *pool, size_t npool, uint64_t *seed)
{
    char c = pool[rng_next(seed) % npool];
    switch (rng_next(seed) % 3) {
    case 0: t[at] = c; break;
    case 1: memmove(t + at, t + at + 1, *n - at - 1), (*n)--; break;
    default: memmove(t + at + 1, t + at, *n - at), t[at] = c, (*n)++; break;
    }
}

/* Mutations of a good text: each one either fails with a located message or parses into a
 * graph that verifies and whose print is a fixed point of parse-then-print. */
Test(text, mutations)
{
    static const char pool[] = "%@:=[],(){};\n -.0123456789eENnaxp_\x00\xff\"\\";
    size_t len = strlen(all_ops);
    char *t = malloc(len + 16);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int parsed = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(t, all_ops, len);
        size_t n = len;
        int edits = 1 + (int)(rng_next(&seed) % 3);
        for (int e = 0; e < edits; e++)
            mutate(t, &n, rng_next(&seed) % n, pool, sizeof pool - 1, &seed);
        char err[512] = "";
        ir_graph *g = ir_parse(t, n, "m.ir", err, sizeof err);
        if (!g) {
            cr_assert(strncmp(err, "m.ir:", 5) == 0 && strstr(err, ": error: "), "%s", err);
            continue;
        }
        parsed++;
        cr_assert(ir_verify(g, err, sizeof err), "%s\nfrom:\n%.*s", err, (int)n, t);
        char *a = ir_print_str(g);
        ir_graph *h = ir_parse(a, strlen(a), "a.ir", err, sizeof err);
        cr_assert_not_null(h, "%s\nin:\n%s", err, a);
        char *b = ir_print_str(h);
        cr_assert_str_eq(b, a);
        free(a);
        free(b);
        ir_graph_free(g);
        ir_graph_free(h);
    }
    free(t);
    cr_assert(parsed > 100, "only %d mutations parsed: the test is not exercising the printer", parsed);
}

/* Every .ir file under tests/data/ir is canonical. */
Test(text, data_files)
{
    static const char *files[] = {"mlp.ir", "softmax_regression.ir", "dropout_mlp.ir", "layout.ir", "mlp_train.ir",
                                  "mlp_fused.ir"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/tests/data/ir/%s", AG_SOURCE_DIR, files[i]);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "cannot open %s", path);
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        int c;
        while ((c = fgetc(f)) != EOF)
            fputc(c, m);
        fclose(m);
        fclose(f);
        assert_canonical(text);
        free(text);
    }
}

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

/* At batch 2: %0 and %1 (32 bytes each) live together, then %2 (the loss, 4 bytes, to the
 * end) and %3 (16 bytes, placed first: larger); %4 (w.next) overwrites w, which nothing
 * reads after it. */
#define PLAN_NODES                                                                             \
    "graph @p {\n"                                                                             \
    "  %x: f32[N,4] = input\n"                                                                 \
    "  %w: f32[4] = param zeros\n"                                                             \
    "  %0: f32[N,4] = mul %x, %w\n"                                                            \
    "  %1: f32[N,4] = exp %0\n"                                                                \
    "  %2: f32[] = sum %1 axes=[0,1]\n"                                                        \
    "  %3: f32[4] = sum %1 axes=[0]\n"                                                         \
    "  %4: f32[4] = sub %w, %3\n"                                                              \
    "  return loss: %2, w.next: %4\n"                                                          \
    "  train step loss=loss\n"                                                                 \
    "  optimizer sgd lr=0.1 wd=0 batch=2 epochs=1\n"
static const char plan_text[] = PLAN_NODES "  memory batch=2 arena=192\n"
                                           "  buffer %0 offset=0\n"
                                           "  buffer %1 offset=64\n"
                                           "  buffer %2 offset=128\n"
                                           "  buffer %3 offset=0\n"
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
    static const int64_t offset[] = {-1, -1, 0, 64, 128, 0, -1};
    static const int32_t inplace[] = {-1, -1, -1, -1, -1, -1, 1};
    cr_assert_eq(g->n, 7);
    for (int32_t i = 0; i < g->n; i++)
        cr_expect(p->offset[i] == offset[i] && p->inplace[i] == inplace[i], "node %d: offset %lld, inplace %d",
                  (int)i, (long long)p->offset[i], (int)p->inplace[i]);
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
                 "  inplace %4 into=%w\n  buffer %3 offset=0\n  train step loss=loss\n  buffer %2 offset=128\n"
                 "  buffer %1 offset=64\n  optimizer sgd lr=0.1 wd=0 batch=2 epochs=1\n  buffer %0 offset=0\n}\n");
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
    expect_plan_rejected("buffer %1 offset=64", "buffer %1 offset=32",
                         "t.ir:14: error: " "verify: memory: %1: offset 32 is not a multiple of 64");
    expect_plan_rejected("buffer %1 offset=64", "buffer %1 offset=0",
                         "t.ir:14: error: " "verify: memory: %0 and %1 are alive together and overlap at bytes 0..31");
    /* at batch 5 %0 takes 80 bytes: into %1's */
    expect_plan_rejected("memory batch=2", "memory batch=5",
                         "t.ir:14: error: " "verify: memory: %0 and %1 are alive together and overlap at bytes 64..79");
    /* %3 is born as %1 dies (it reads it): alive together */
    expect_plan_rejected("buffer %3 offset=0", "buffer %3 offset=64",
                         "t.ir:16: error: " "verify: memory: %1 and %3 are alive together and overlap at bytes 64..79");
    /* the loss is an output: alive to the end, so not where %3 goes either */
    expect_plan_rejected("buffer %3 offset=0", "buffer %3 offset=128",
                         "t.ir:16: error: " "verify: memory: %2 and %3 are alive together and overlap at bytes 128..131");
    expect_plan_rejected("buffer %2 offset=128", "buffer %2 offset=192",
                         "t.ir:15: error: " "verify: memory: %2 (f32[] at batch 2) at offset 192 does not fit in the arena of "
                         "192 bytes");
    expect_plan_rejected("arena=192", "arena=130",
                         "t.ir:15: error: " "verify: memory: %2 (f32[] at batch 2) at offset 128 does not fit in the arena of "
                         "130 bytes");
    expect_plan_rejected("batch=2 arena", "batch=9223372036854775807 arena",
                         "t.ir:13: error: " "verify: memory: %0 (f32[N,4] at batch 9223372036854775807) at offset 0 does not fit in "
                         "the arena of 192 bytes");
    expect_plan_rejected("  buffer %2 offset=128\n", "", "t.ir:12: error: " "verify: memory: %2 has no buffer and overwrites no param");
    expect_plan_rejected("  inplace %4 into=%w\n", "", "t.ir:12: error: " "verify: memory: %4 has no buffer and overwrites no param");
    expect_plan_rejected("  buffer %2 offset=128\n", "  inplace %2 into=%w\n",
                         "t.ir:15: error: " "verify: memory: %2 is f32[] but overwrites %w, f32[4]");
    expect_plan_rejected("  buffer %3 offset=0\n", "  inplace %3 into=%w\n",
                         "t.ir:16: error: " "verify: memory: %3 overwrites %w, which %4 reads after it");
    expect_plan_rejected("return loss: %2, w.next: %4", "return loss: %2, w.next: %4, old: %w",
                         "t.ir:17: error: " "verify: memory: %4 overwrites %w, an output (read after the last node)");
    expect_plan_rejected("  return loss", "  %5: f32[4] = mul %w, %4\n  return loss",
                         "t.ir:18: error: " "verify: memory: %4 overwrites %w, which %5 reads after it");
}

/* What the text cannot say, set by hand: the verifier still names it (at the value's plan
 * line, the memory line for a source). */
Test(text, verify_plan_arrays)
{
    ir_graph *g = parse_ok(plan_text);
    g->plan->offset[0] = 0;
    expect_verify(g, "t.ir:12: error: " "verify: memory: %x is an input, yet it has a buffer");
    g = parse_ok(plan_text);
    g->plan->inplace[1] = 1;
    expect_verify(g, "t.ir:12: error: " "verify: memory: %w is a param, yet it has an in-place update");
    g = parse_ok(plan_text);
    g->plan->offset[6] = 128;
    expect_verify(g, "t.ir:17: error: " "verify: memory: %4 has a buffer and overwrites a param too");
    g = parse_ok(plan_text);
    g->plan->inplace[6] = 0;
    expect_verify(g, "t.ir:17: error: " "verify: memory: %4 overwrites %x, not a param");
    g = parse_ok(plan_text);
    g->plan->inplace[6] = 99;
    expect_verify(g, "t.ir:17: error: " "verify: memory: %4 overwrites node 99, which does not exist");
    g = parse_ok(plan_text);
    g->plan->offset[3] = -64;
    expect_verify(g, "t.ir:14: error: " "verify: memory: %1: offset -64 is negative");
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
    g->node[6].op = IR_neg;                              /* %4 = -%3: w is read by %0 only */
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
        int edits = 1 + (int)(rng_next(&seed) % 2);
        for (int e = 0; e < edits; e++) /* mostly in the plan's half */
            mutate(t, &n, len / 2 + rng_next(&seed) % (n - len / 2), pool, sizeof pool - 1, &seed);
        char err[512] = "";
        ir_graph *g = ir_parse(t, n, "m.ir", err, sizeof err);
        if (!g) {
            cr_assert(strncmp(err, "m.ir:", 5) == 0 && strstr(err, ": error: "), "%s", err);
            continue;
        }
        parsed++;
        if (ir_verify(g, err, sizeof err)) {
            verified++;
            char *a = ir_print_str(g);
            ir_graph *h = ir_parse(a, strlen(a), "a.ir", err, sizeof err);
            cr_assert_not_null(h, "%s\nin:\n%s", err, a);
            char *b = ir_print_str(h);
            cr_assert_str_eq(b, a);
            free(a);
            free(b);
            ir_graph_free(h);
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
