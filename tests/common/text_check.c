#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "text_check.h"

/* Parses text (which must be good) and checks that the graph verifies. */
ir_graph *parse_ok(const char *text)
{
    char err[512] = "";
    ir_graph *g = ir_parse(text, strlen(text), "t.ir", err, sizeof err);
    cr_assert(g, "parse failed: %s", err);
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    return g;
}

/* print(parse(text)) must be text itself, and so must print of that. */
void assert_canonical(const char *text)
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

/* print(g) parses back and prints the same. */
void assert_print_fixed_point(const ir_graph *g)
{
    char err[512] = "";
    char *a = ir_print_str(g);
    ir_graph *h = ir_parse(a, strlen(a), "a.ir", err, sizeof err);
    cr_assert_not_null(h, "%s\nin:\n%s", err, a);
    char *b = ir_print_str(h);
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    ir_graph_free(h);
}

void expect_verify(ir_graph *g, const char *want)
{
    char err[256] = "";
    cr_expect_not(ir_verify(g, err, sizeof err), "verified, want %s", want);
    cr_expect_str_eq(err, want);
    ir_graph_free(g);
}

void set_inputs(ir_graph *g, int32_t id, int32_t nin, const int32_t *in)
{
    int32_t *p = ir_alloc(g, sizeof *p * (size_t)(nin > 0 ? nin : 1));
    if (nin > 0)
        memcpy(p, in, sizeof *p * (size_t)nin);
    g->node[id].in = p;
    g->node[id].nin = nin;
}

/* Every op of the table, in canonical form, with two kernel bodies (one unused). */
const char text_all_ops[] =
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
    "  %im: f32[N,2,5,5] = input\n"
    "  %k: f32[4,1,3,3] = param xavier\n"
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
    "  %52: f32[N,4,3,3] = conv2d %im, %k kernel=[3,3] stride=[2,2] pad=[1,1] dilation=[1,1] groups=2\n"
    "  %53: f32[N,2,5,5] = conv2d_input_grad %52, %k kernel=[3,3] stride=[2,2] pad=[1,1] dilation=[1,1] groups=2\n"
    "  %54: f32[4,1,3,3] = conv2d_weight_grad %im, %52 kernel=[3,3] stride=[2,2] pad=[1,1] dilation=[1,1] groups=2\n"
    "  %55: f32[N,2,2,2] = max_pool2d %im kernel=[2,2] stride=[2,2] pad=[0,0] dilation=[1,1] groups=1\n"
    "  %56: f32[N,2,5,5] = max_pool2d_grad %im, %55 kernel=[2,2] stride=[2,2] pad=[0,0] dilation=[1,1] groups=1\n"
    "  %57: f32[N,2,2,2] = avg_pool2d %im kernel=[2,2] stride=[2,2] pad=[0,0] dilation=[1,1] groups=1\n"
    "  %58: f32[N,2,5,5] = avg_pool2d_grad %57 kernel=[2,2] stride=[2,2] pad=[0,0] dilation=[1,1] groups=1\n"
    "  %59: f32[4,1,3,3] = allreduce %54 bucket=3\n"
    "  return logits: %41, loss: %28, scale: 0.5, n: 3\n"
    "  train model loss=loss metrics=[n, scale] predict=logits\n"
    "  optimizer sgd lr=0.1 wd=0.0001 batch=256 epochs=10\n"
    "  distributed bucket_bytes=4194304\n"
    "  group weights wd_scale=1 lr_scale=0.5 params=[W, u]\n"
    "  group biases wd_scale=0 lr_scale=1 params=[b, c]\n"
    "  data \"fashion\\\\mnist \\\"v2\\\"\\n\" classes=[\"T-shirt/top\", \"a\\tb\", \"Größe\", \"日本語\", "
    "\"\\x01\\x7f\\xff\\xc2\\x85\"]\n"
    "  option act=\"relu\" choices=\"relu|sigmoid|tanh\"\n"
    "  option width=\"\" choices=\"\"\n"
    "}\n";

uint64_t text_rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One random edit of t[0..*n) at `at`: a byte replaced, deleted, or inserted from pool. */
void text_mutate(char *t, size_t *n, size_t at, const char *pool, size_t npool, uint64_t *seed)
{
    char c = pool[text_rng_next(seed) % npool];
    switch (text_rng_next(seed) % 3) {
    case 0: t[at] = c; break;
    case 1: memmove(t + at, t + at + 1, *n - at - 1), (*n)--; break;
    default: memmove(t + at + 1, t + at, *n - at), t[at] = c, (*n)++; break;
    }
}
