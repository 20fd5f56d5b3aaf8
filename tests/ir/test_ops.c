/* The op table walk: every op is known to the parser, printer, verifier and interpreter.
 * Elementwise ops get a sample built from their table row; every other op needs a sample
 * here, and the test fails for an op that has none. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "interp.h"
#include "ir.h"

/* Samples in canonical text form (what the printer writes), one graph body per op. */
static const struct {
    ir_op op;
    const char *body;
} samples[] = {
    {IR_input, "  %a: f32[N,3] = input\n  return o: %a\n"},
    {IR_param, "  %w: f32[3,2] = param normal(0, 0.5)\n  %u: f32[2] = param uniform(-1, 1)\n"
               "  %v: f32[2] = param xavier\n  %c: f32[2] = param constant(0.25)\n  %z: f32[2] = param zeros\n"
               "  return w: %w, u: %u, v: %v, c: %c, z: %z\n"},
    {IR_const, "  %0: u8[] = const 7\n  return o: %0, f: 1.5, i: -3\n"},
    {IR_sum, "  %a: f32[N,3,2] = input\n  %0: f32[N,2] = sum %a axes=[1]\n  %1: f32[1,3,1] = sum %a axes=[0,2] keepdims\n"
             "  return o: %0, k: %1\n"},
    {IR_mean, "  %a: f32[N,3] = input\n  %0: f32[] = mean %a axes=[0,1]\n  return o: %0\n"},
    {IR_max, "  %a: i32[N,3] = input\n  %0: i32[N] = max %a axes=[1]\n  return o: %0\n"},
    {IR_argmax, "  %a: f32[N,3] = input\n  %0: i32[N] = argmax %a axis=1\n  return o: %0\n"},
    {IR_cumsum, "  %a: f32[N,3] = input\n  %0: f32[N,3] = cumsum %a axis=0\n  return o: %0\n"},
    {IR_matmul, "  %a: f32[N,3] = input\n  %w: f32[3,2] = param normal(0, 1)\n  %v: f32[3] = param normal(0, 1)\n"
                "  %0: f32[N,2] = matmul %a, %w\n  %1: f32[3,3] = matmul %a, %a ta\n  %2: f32[N] = matmul %a, %v\n"
                "  %3: f32[] = matmul %v, %v\n  %4: f32[2,N] = matmul %w, %a ta tb\n"
                "  return o: %0, t: %1, mv: %2, dot: %3, tt: %4\n"},
    {IR_transpose, "  %a: f32[N,3,2] = input\n  %0: f32[2,N,3] = transpose %a perm=[2,0,1]\n  return o: %0\n"},
    {IR_reshape, "  %a: f32[N,3,2] = input\n  %0: f32[N,6] = reshape %a\n  return o: %0\n"},
    {IR_concat, "  %a: f32[N,3] = input\n  %b: f32[N,1] = input\n  %0: f32[N,7] = concat %a, %b, %a axis=1\n  return o: %0\n"},
    {IR_slice, "  %a: f32[N,5] = input\n  %0: f32[N,2] = slice %a axis=1 start=3\n  return o: %0\n"},
    {IR_broadcast_to, "  %a: f32[3] = input\n  %0: f32[N,3] = broadcast_to %a\n  return o: %0\n"},
    {IR_softmax, "  %a: f32[N,3] = input\n  %0: f32[N,3] = softmax %a axis=1\n  return o: %0\n"},
    {IR_log_softmax, "  %a: f32[N,3] = input\n  %0: f32[N,3] = log_softmax %a axis=0\n  return o: %0\n"},
    {IR_one_hot, "  %y: i32[N] = input\n  %0: f32[N,4] = one_hot %y classes=4\n  return o: %0\n"},
    {IR_dropout, "  %a: f32[N,3] = input\n  %0: f32[N,3] = dropout %a p=0.5 site=1\n  return o: %0\n"},
    {IR_softmax_ce, "  %a: f32[N,10] = input\n  %y: i32[N] = input\n  %0: f32[N] = softmax_ce %a, %y\n  return o: %0\n"},
    {IR_softmax_ce_grad, "  %a: f32[N,10] = input\n  %y: i32[N] = input\n  %d: f32[N] = input\n"
                         "  %0: f32[N,10] = softmax_ce_grad %a, %y, %d\n  return o: %0\n"},
    /* one body, two sibling nodes taking its two outputs (a multi-output fused group) */
    {IR_kernel, "  %a: f32[N,3] = input\n  %b: f32[3] = param normal(0, 1)\n"
                "  %0: f32[N,3] = kernel %a, %b body=@k0 out=r\n  %1: f32[N] = kernel %a, %b body=@k0 out=s\n"
                "  return o: %0, s: %1\n"},
};

/* The kernel bodies a sample uses, printed before its graph. */
static const struct {
    ir_op op;
    const char *kernels;
} sample_kernels[] = {
    {IR_kernel, "kernel @k0 {\n  %p0: f32[N,3] = input\n  %p1: f32[3] = input\n  %0: f32[N,3] = add %p0, %p1\n"
     "  %1: f32[N,3] = relu %0\n  %2: f32[N] = sum %0 axes=[1]\n  return r: %1, s: %2\n}\n\n"},
};

/* An elementwise op's sample from its dtype rule. */
static void ew_sample(ir_op op, char *buf, size_t len)
{
    const char *in = "f32", *out = "f32";
    switch (ir_ops[op].types) {
    case T_CMP: out = "bool"; break;
    case T_CAST: out = "i32"; break;
    default: break;
    }
    const char *names[3] = {"%a", "%b", "%c"};
    size_t k = 0;
    for (int i = 0; i < ir_ops[op].arity; i++) {
        bool cond = ir_ops[op].types == T_WHERE && i == 0;
        /* operands broadcast: [N,3], [3], [N,1] */
        const char *shape = i == 0 ? "[N,3]" : i == 1 ? "[3]" : "[N,1]";
        k += (size_t)snprintf(buf + k, len - k, "  %s: %s%s = input\n", names[i], cond ? "bool" : in, shape);
    }
    k += (size_t)snprintf(buf + k, len - k, "  %%0: %s[N,3] = %s", out, ir_ops[op].name);
    for (int i = 0; i < ir_ops[op].arity; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s %s", i ? "," : "", names[i]);
    snprintf(buf + k, len - k, "\n  return o: %%0\n");
}

static double rel_diff(const ir_tensor *a, const ir_tensor *b)
{
    double num = 0, den = 0;
    int64_t n = ir_numel(&a->shape, 1);
    for (int64_t i = 0; i < n; i++) {
        double x = ir_tensor_get(a, i), y = ir_tensor_get(b, i);
        if ((isnan(x) && isnan(y)) || (isinf(x) && x == y))
            continue; /* log, sqrt and pow of negative samples */
        num += (x - y) * (x - y);
        den += y * y;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void check_sample(ir_op op, const char *body, const char *kernels)
{
    char text[4096], err[512];
    snprintf(text, sizeof text, "%sgraph @%s {\n%s}\n", kernels ? kernels : "", ir_ops[op].name, body);
    ir_graph *g = ir_parse(text, strlen(text), "sample.ir", err, sizeof err);
    cr_assert_not_null(g, "%s: the parser rejects its sample: %s\n%s", ir_ops[op].name, err, text);
    cr_assert(ir_verify(g, err, sizeof err), "%s: the verifier rejects its sample: %s", ir_ops[op].name, err);
    bool used = false;
    for (int32_t i = 0; i < g->n; i++)
        used |= g->node[i].op == op;
    cr_assert(used, "%s: the sample does not use it", ir_ops[op].name);
    char *printed = ir_print_str(g);
    cr_assert_str_eq(printed, text, "%s: the printer's form differs from the sample", ir_ops[op].name);
    free(printed);

    /* the interpreter runs it at two batch sizes, and f32 agrees with f64 */
    for (int64_t batch = 1; batch <= 5; batch += 4) {
        ir_tensor out[2][8];
        for (int f64 = 0; f64 < 2; f64++) {
            ir_tensor **bound = fe_bind_random(g, batch, 7, f64);
            ir_run run = {.f64 = f64, .batch = batch, .seed = 7, .step = 1, .training = true};
            cr_assert(ir_interp(g, &run, (const ir_tensor *const *)bound, out[f64], err, sizeof err),
                      "%s: the interpreter fails: %s", ir_ops[op].name, err);
            fe_bind_free(g, bound);
        }
        for (int k = 0; k < g->nout; k++) {
            cr_assert(ir_shape_eq(&out[0][k].shape, &out[1][k].shape));
            double d = rel_diff(&out[0][k], &out[1][k]);
            cr_expect(d < 1e-5, "%s: output %s: f32 and f64 differ by %g", ir_ops[op].name, g->out[k].name, d);
            ir_tensor_free(&out[0][k]);
            ir_tensor_free(&out[1][k]);
        }
    }
    ir_graph_free(g);
}

Test(ops, every_op_is_parsed_printed_verified_and_interpreted)
{
    for (int op = 0; op < IR_OP_COUNT; op++) {
        cr_assert(ir_ops[op].name && ir_ops[op].doc && ir_ops[op].doc[0], "op %d has no name or doc", op);
        ir_op back;
        cr_assert(ir_op_by_name(ir_ops[op].name, strlen(ir_ops[op].name), &back) && back == (ir_op)op);
        if (ir_ops[op].kind == IR_K_ELEMENTWISE) {
            char body[1024];
            ew_sample((ir_op)op, body, sizeof body);
            check_sample((ir_op)op, body, NULL);
            continue;
        }
        const char *body = NULL, *kernels = NULL;
        for (size_t i = 0; i < sizeof samples / sizeof *samples; i++)
            if (samples[i].op == (ir_op)op)
                body = samples[i].body;
        for (size_t i = 0; i < sizeof sample_kernels / sizeof *sample_kernels; i++)
            if (sample_kernels[i].op == (ir_op)op)
                kernels = sample_kernels[i].kernels;
        cr_assert_not_null(body, "op %s has no sample in tests/ir/test_ops.c", ir_ops[op].name);
        check_sample((ir_op)op, body, kernels);
    }
}
