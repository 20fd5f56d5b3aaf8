/* The text IR: print, parse and verify.
 *
 * print(parse(print(g))) == print(g) byte for byte, a golden print, f32 literals, the
 * declarations after return. Malformed text: test_text_errors.c; kernels and the memory
 * plan: test_text_kernels.c; hand-broken graphs: test_verify.c. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aotgrad.h"
#include "ir.h"
#include "text_check.h"

#ifndef AG_SOURCE_DIR
#define AG_SOURCE_DIR "."
#endif
Test(text, every_op_round_trips)
{
    assert_canonical(text_all_ops);
    ir_graph *g = parse_ok(text_all_ops);
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
    ir_graph *g = parse_ok(text_all_ops);
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

/* The declarations of text_all_ops, as the parser reads them: strings decoded, names kept. */
Test(text, declarations_are_read)
{
    ir_graph *g = parse_ok(text_all_ops);
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
    cr_expect_str_eq(t->classes[2], "Gr\xc3\xb6\xc3\x9f"
                                    "e");
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
    t->data =
        "\x01\x1f \x7f\"\\\n\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xc3|\xff";
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
#define ADD(n, line)                                    \
    do {                                                \
        (n).loc = (ag_loc){(line) ? file : NULL, line}; \
        id = ir_add(g, &(n), err, sizeof err);          \
        cr_assert(id >= 0, "%s", err);                  \
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

/* A graph without training (a forward computation) may declare options: they print alone,
 * without train and optimizer lines, and read back. */
Test(text, options_without_training)
{
    static const char text[] = "graph @g {\n"
                               "  %x: f32[N,2] = input\n"
                               "  %0: f32[N,2] = tanh %x\n"
                               "  return y: %0\n"
                               "  option act=\"tanh\" choices=\"relu|tanh\"\n"
                               "}\n";
    assert_canonical(text);
    ir_graph *g = parse_ok(text);
    cr_expect(!ir_trains(g) && g->train && g->train->noptions == 1);
    ir_graph_free(g);
}
