/* One sample graph per op of the op table, in canonical text form: elementwise ops get one
 * built from their table row; every other op has one written here. The op-table walks of
 * the IR (tests/ir/test_ops.c) and of the LLVM backend (tests/codegen/test_llvm_ops.c) use
 * them, so a new op without a sample fails both. */
#include <stdio.h>
#include <string.h>

#include "op_samples.h"

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
    {IR_sum,
     "  %a: f32[N,3,2] = input\n  %0: f32[N,2] = sum %a axes=[1]\n  %1: f32[1,3,1] = sum %a axes=[0,2] keepdims\n"
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
    {IR_concat,
     "  %a: f32[N,3] = input\n  %b: f32[N,1] = input\n  %0: f32[N,7] = concat %a, %b, %a axis=1\n  return o: %0\n"},
    {IR_slice, "  %a: f32[N,5] = input\n  %0: f32[N,2] = slice %a axis=1 start=3\n  return o: %0\n"},
    {IR_broadcast_to, "  %a: f32[3] = input\n  %0: f32[N,3] = broadcast_to %a\n  return o: %0\n"},
    {IR_softmax, "  %a: f32[N,3] = input\n  %0: f32[N,3] = softmax %a axis=1\n  return o: %0\n"},
    {IR_log_softmax, "  %a: f32[N,3] = input\n  %0: f32[N,3] = log_softmax %a axis=0\n  return o: %0\n"},
    {IR_one_hot, "  %y: i32[N] = input\n  %0: f32[N,4] = one_hot %y classes=4\n  return o: %0\n"},
    {IR_dropout, "  %a: f32[N,3] = input\n  %0: f32[N,3] = dropout %a p=0.5 site=1\n  return o: %0\n"},
    {IR_allreduce, "  %a: f32[3,2] = input\n  %0: f32[3,2] = neg %a\n  %1: f32[3,2] = allreduce %0 bucket=2\n"
                   "  return o: %1\n"},
    {IR_softmax_ce,
     "  %a: f32[N,10] = input\n  %y: i32[N] = input\n  %0: f32[N] = softmax_ce %a, %y\n  return o: %0\n"},
    {IR_softmax_ce_grad, "  %a: f32[N,10] = input\n  %y: i32[N] = input\n  %d: f32[N] = input\n"
                         "  %0: f32[N,10] = softmax_ce_grad %a, %y, %d\n  return o: %0\n"},
    {IR_conv2d, "  %a: f32[N,4,7,6] = input\n  %w: f32[6,2,3,2] = param normal(0, 1)\n"
                "  %0: f32[N,6,3,5] = conv2d %a, %w kernel=[3,2] stride=[2,1] pad=[1,0] dilation=[2,1] groups=2\n"
                "  return o: %0\n"},
    {IR_conv2d_input_grad,
     "  %d: f32[N,6,3,5] = input\n  %w: f32[6,2,3,2] = param normal(0, 1)\n"
     "  %0: f32[N,4,7,6] = conv2d_input_grad %d, %w kernel=[3,2] stride=[2,1] pad=[1,0] dilation=[2,1] groups=2\n"
     "  return o: %0\n"},
    {IR_conv2d_weight_grad,
     "  %a: f32[N,4,7,6] = input\n  %d: f32[N,6,3,5] = input\n"
     "  %0: f32[6,2,3,2] = conv2d_weight_grad %a, %d kernel=[3,2] stride=[2,1] pad=[1,0] dilation=[2,1] groups=2\n"
     "  return o: %0\n"},
    {IR_max_pool2d, "  %a: f32[N,2,7,6] = input\n"
                    "  %0: f32[N,2,4,3] = max_pool2d %a kernel=[3,2] stride=[2,2] pad=[1,1] dilation=[1,2] groups=1\n"
                    "  return o: %0\n"},
    {IR_max_pool2d_grad,
     "  %a: f32[N,2,7,6] = input\n  %d: f32[N,2,4,3] = input\n"
     "  %0: f32[N,2,7,6] = max_pool2d_grad %a, %d kernel=[3,2] stride=[2,2] pad=[1,1] dilation=[1,2] groups=1\n"
     "  return o: %0\n"},
    {IR_avg_pool2d, "  %a: f32[N,2,7,6] = input\n"
                    "  %0: f32[N,2,4,6] = avg_pool2d %a kernel=[3,3] stride=[2,1] pad=[1,1] dilation=[1,1] groups=1\n"
                    "  return o: %0\n"},
    {IR_avg_pool2d_grad,
     "  %d: f32[N,2,4,6] = input\n"
     "  %0: f32[N,2,7,6] = avg_pool2d_grad %d kernel=[3,3] stride=[2,1] pad=[1,1] dilation=[1,1] groups=1\n"
     "  return o: %0\n"},
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

bool op_sample(ir_op op, char *text, size_t len)
{
    char body[2048];
    const char *kernels = "", *fixed = NULL;
    if (ir_ops[op].kind == IR_K_ELEMENTWISE) {
        ew_sample(op, body, sizeof body);
        fixed = body;
    }
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++)
        if (samples[i].op == op)
            fixed = samples[i].body;
    for (size_t i = 0; i < sizeof sample_kernels / sizeof *sample_kernels; i++)
        if (sample_kernels[i].op == op)
            kernels = sample_kernels[i].kernels;
    if (!fixed)
        return false;
    return (size_t)snprintf(text, len, "%sgraph @%s {\n%s}\n", kernels, ir_ops[op].name, fixed) < len;
}
