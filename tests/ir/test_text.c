/* The text IR: print, parse and verify.
 *
 * print(parse(print(g))) == print(g) byte for byte, a golden print, f32 literals, a table
 * of malformed inputs each with its exact message and line:col, garbage that must be
 * rejected without a crash, and hand-broken graphs the verifier must name. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

#ifndef AG_SOURCE_DIR
#define AG_SOURCE_DIR "."
#endif

/* Parses text (which must be good) and checks that the graph verifies. */
static ir_graph *parse_ok(const char *text)
{
    char err[512] = "";
    ir_graph *g = ir_parse(text, strlen(text), "t.ir", err, sizeof err);
    cr_assert(g, "parse failed: %s", err);
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    return g;
}

/* print(parse(text)) must be text itself, and so must print of that. */
static void assert_canonical(const char *text)
{
    ir_graph *g = parse_ok(text);
    char *a = ir_print_str(g);
    cr_assert_str_eq(a, text);
    ir_graph *h = parse_ok(a);
    char *b = ir_print_str(h);
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    ir_graph_free(g);
    ir_graph_free(h);
}

/* Every op of the table, in canonical form. */
static const char all_ops[] =
    "graph @all_ops {\n"
    "  %x: f32[N,4] = input                          ; all.c:1\n"
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
    "  return logits: %41, loss: %28, scale: 0.5, n: 3\n"
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
        "  %1: f32[2] = dropout %0 p=0.5 site=2\n  return r: %1\n}\n",
        "t.ir:4:38: error: duplicate dropout site 2"),
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
    BAD("grape @x {\n", "t.ir:1:1: error: expected 'graph', got 'grape'"),
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

/* Mutations of a good text: each one either fails with a located message or parses into a
 * graph that verifies and whose print is a fixed point of parse-then-print. */
Test(text, mutations)
{
    static const char pool[] = "%@:=[],(){};\n -.0123456789eENnaxp_\x00\xff";
    size_t len = strlen(all_ops);
    char *t = malloc(len + 16);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int parsed = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(t, all_ops, len);
        size_t n = len;
        int edits = 1 + (int)(rng_next(&seed) % 3);
        for (int e = 0; e < edits; e++) {
            size_t at = rng_next(&seed) % n;
            char c = pool[rng_next(&seed) % (sizeof pool - 1)];
            switch (rng_next(&seed) % 3) {
            case 0: t[at] = c; break;
            case 1: memmove(t + at, t + at + 1, n - at - 1), n--; break;
            default: memmove(t + at + 1, t + at, n - at), t[at] = c, n++; break;
            }
        }
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
    static const char *files[] = {"mlp.ir", "softmax_regression.ir", "dropout_mlp.ir", "layout.ir"};
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

/* ---- the verifier, on hand-broken graphs ---- */

/* x: f32[N,4] input (t.c:1), relu x (t.c:2), sum axes=[1]; outputs r, s. */
static ir_graph *small_graph(void)
{
    ir_graph *g = ir_graph_new("g");
    const char *file = ir_strdup(g, "t.c");
    char err[256];
    ir_node x = ir_node_make(IR_input, 0, NULL);
    x.dtype = AG_F32, x.shape = (ir_shape){2, {AG_N, 4}}, x.attr.name = "x", x.loc = (ag_loc){file, 1};
    int32_t ix = ir_add(g, &x, err, sizeof err);
    ir_node r = ir_node_make(IR_relu, 1, &ix);
    r.loc = (ag_loc){file, 2};
    int32_t ir = ir_add(g, &r, err, sizeof err);
    ir_node s = ir_node_make(IR_sum, 1, &ir);
    s.attr.axes = 2;
    int32_t is = ir_add(g, &s, err, sizeof err);
    cr_assert(ix == 0 && ir == 1 && is == 2, "%s", err);
    ir_add_output(g, "r", ir);
    ir_add_output(g, "s", is);
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    return g;
}

static void expect_verify(ir_graph *g, const char *want)
{
    char err[256] = "";
    cr_expect_not(ir_verify(g, err, sizeof err), "verified, want %s", want);
    cr_expect_str_eq(err, want);
    ir_graph_free(g);
}

static void set_inputs(ir_graph *g, int32_t id, int32_t nin, const int32_t *in)
{
    int32_t *p = ir_alloc(g, sizeof *p * (size_t)(nin > 0 ? nin : 1));
    if (nin > 0)
        memcpy(p, in, sizeof *p * (size_t)nin);
    g->node[id].in = p;
    g->node[id].nin = nin;
}

Test(text, verify_operand_not_earlier)
{
    ir_graph *g = small_graph();
    set_inputs(g, 1, 1, (int32_t[]){1});
    expect_verify(g, "verify: node %1 (relu at t.c:2): operand 0 is %1, not an earlier node");
    g = small_graph();
    set_inputs(g, 1, 1, (int32_t[]){2});
    expect_verify(g, "verify: node %1 (relu at t.c:2): operand 0 is %2, not an earlier node");
    g = small_graph();
    set_inputs(g, 2, 1, (int32_t[]){-5});
    expect_verify(g, "verify: node %2 (sum): operand 0 is %-5, not an earlier node");
}

Test(text, verify_wrong_shape_and_dtype)
{
    ir_graph *g = small_graph();
    g->node[1].shape.dim[1] = 5;
    expect_verify(g, "verify: node %1 (relu at t.c:2): declared f32[N,5] but relu gives f32[N,4]");
    g = small_graph();
    g->node[2].dtype = AG_I32;
    expect_verify(g, "verify: node %2 (sum): declared i32[N] but sum gives f32[N]");
    g = small_graph();
    g->node[2].shape.rank = 7;
    expect_verify(g, "verify: node %2 (sum): rank 7; at most 4 dims");
    g = small_graph();
    g->node[0].shape.dim[1] = 0;
    expect_verify(g, "verify: node %0 (input at t.c:1): dim 1 is 0; dims are positive or N");
    g = small_graph();
    g->node[0].dtype = (ag_dtype)77;
    expect_verify(g, "verify: node %0 (input at t.c:1): dtype ? (77) is not allowed in a graph");
    g = small_graph();
    g->node[2].attr.axes = 8; /* axis 3 of a rank 2 operand */
    expect_verify(g, "verify: node %2 (sum): sum: axes out of range for [N,4]");
}

Test(text, verify_bad_op_and_arity)
{
    ir_graph *g = small_graph();
    g->node[1].op = (ir_op)999;
    expect_verify(g, "verify: node %1 (op 999 at t.c:2): unknown op code 999");
    g = small_graph();
    g->node[1].nin = -3;
    expect_verify(g, "verify: node %1 (relu at t.c:2): relu takes 1 operand, has -3");
    g = small_graph();
    set_inputs(g, 1, 2, (int32_t[]){0, 0});
    expect_verify(g, "verify: node %1 (relu at t.c:2): relu takes 1 operand, has 2");
    g = small_graph();
    g->node[1].in = NULL;
    expect_verify(g, "verify: node %1 (relu at t.c:2): operand list is NULL");
}

Test(text, verify_names)
{
    ir_graph *g = small_graph();
    char err[256];
    ir_node y = ir_node_make(IR_input, 0, NULL);
    y.dtype = AG_F32, y.attr.name = "x";
    cr_assert_eq(ir_add(g, &y, err, sizeof err), 3);
    expect_verify(g, "verify: node %3 (input): the name x is already used by node %0");
    g = small_graph();
    g->node[0].attr.name = "not an identifier";
    expect_verify(g, "verify: node %0 (input at t.c:1): input name \"not an identifier\" is not an identifier");
    g = small_graph();
    g->node[0].attr.name = NULL;
    expect_verify(g, "verify: node %0 (input at t.c:1): input name \"(null)\" is not an identifier");
}

Test(text, verify_outputs)
{
    ir_graph *g = small_graph();
    g->nout = 0;
    expect_verify(g, "verify: graph @g has no outputs");
    g = small_graph();
    g->out[1].name = "r";
    expect_verify(g, "verify: output r: the name is used twice");
    g = small_graph();
    g->out[1].id = 3;
    expect_verify(g, "verify: output s: %3 is not a node");
    g = small_graph();
    g->out[0].name = "";
    expect_verify(g, "verify: output 0 has no name");
}

Test(text, verify_attributes)
{
    ir_graph *g = small_graph();
    g->node[1].attr.axis = 1;
    expect_verify(g, "verify: node %1 (relu at t.c:2): attribute axis is set, but relu has none");
    g = small_graph();
    g->node[0].attr.value = 2;
    expect_verify(g, "verify: node %0 (input at t.c:1): attribute value is set, but input has none");

    g = small_graph();
    char err[256];
    ir_node k = ir_node_make(IR_const, 0, NULL);
    k.dtype = AG_I32, k.attr.value = 2.5;
    cr_assert_eq(ir_add(g, &k, err, sizeof err), 3);
    expect_verify(g, "verify: node %3 (const): const: the value 2.5 is not a i32");

    g = small_graph();
    int32_t r = 1;
    ir_node d = ir_node_make(IR_dropout, 1, &r);
    d.attr.value = 0.5, d.attr.site = 1;
    cr_assert_eq(ir_add(g, &d, err, sizeof err), 3);
    cr_assert_eq(ir_add(g, &d, err, sizeof err), 4, "dropouts are never merged");
    expect_verify(g, "verify: node %4 (dropout): dropout site 1 is already used by node %3");
}

Test(text, verify_garbage_graphs)
{
    char err[256];
    cr_assert_not(ir_verify(NULL, err, sizeof err));
    cr_assert_str_eq(err, "verify: no graph");
    ir_graph *g = small_graph();
    g->n = -1;
    cr_assert_not(ir_verify(g, err, sizeof err));
    cr_assert_str_eq(err, "verify: graph @g: broken node or output arrays");
    g->n = 3;
    ir_graph_free(g);
}
