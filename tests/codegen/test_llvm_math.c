/* exp, log, tanh and sigmoid in generated loops (codegen/llvm/emit.c builds them from
 * arithmetic so that they vectorize): within a few ulp of libm over their whole range, the
 * special values as libm gives them, and no call per element left in any model's code. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Core.h>

#include "emit.h"
#include "jit.h"
#include "load.h"
#include "lower.h"
#include "passes.h"
#include "target.h"

/* out[i] = op(in[i]) for n elements, through the JIT */
static void run_op(ir_op op, const float *in, float *out, int64_t n)
{
    cg_buffer buf[2] = {{CG_INPUT, 0, {0, 0}, AG_F32}, {CG_INPUT, 1, {0, 0}, AG_F32}};
    cg_step st;
    memset(&st, 0, sizeof st);
    st.kind = CG_LOOP;
    st.node = -1;
    cg_loop *l = &st.loop;
    l->rank = 1;
    l->extent[0] = (cg_dim){0, 1}; /* N elements */
    l->nloads = 1;
    l->load[0] = (cg_access){.buffer = 0, .stride = {{1, 0}}};
    l->nexprs = 2;
    l->expr[0] = (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 0};
    l->expr[1] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = op, .a = 0};
    l->nstores = 1;
    l->store[0] = (cg_store){.expr = 1, .at = {.buffer = 1, .stride = {{1, 0}}}};
    cg_program p = {.name = "math", .nbuffers = 2, .buffers = buf, .nsteps = 1, .steps = &st, .ninputs = 2};
    void *inputs[2] = {(void *)in, out};
    cg_args a = {NULL, NULL, inputs, NULL, n, 0, 0, NULL, NULL, 0, NULL};
    jit_run(&p, &a);
}

/* distance in units in the last place between two finite floats of the same sign */
static double ulps(float a, float b)
{
    if (a == b)
        return 0;
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if ((ia < 0) != (ib < 0))
        return INFINITY;
    return fabs((double)ia - (double)ib);
}

static float ref(ir_op op, float x)
{
    switch (op) {
    case IR_exp: return expf(x);
    case IR_log: return logf(x);
    case IR_tanh: return tanhf(x);
    default: return 1.0f / (1.0f + expf(-x));
    }
}

/* every 97th float bit pattern (about 44 million inputs, both signs, subnormals to
 * infinities and NaNs): at most `max_ulp` from libm where libm's result is a normal float,
 * within 1e-38 of it where it is subnormal or zero, NaN and infinities exactly */
static void sweep(ir_op op, double max_ulp)
{
    const int64_t step = 97, n = ((int64_t)1 << 32) / step + 1;
    float *in = malloc(sizeof *in * (size_t)n), *out = malloc(sizeof *out * (size_t)n);
    cr_assert(in && out);
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)(i * step);
        memcpy(&in[i], &bits, 4);
    }
    run_op(op, in, out, n);
    double worst = 0;
    float worst_at = 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float want = ref(op, in[i]), got = out[i];
        if (isnan(want) || isnan(got) || isinf(want) || isinf(got)) {
            if (!(isnan(want) && isnan(got)) && want != got && bad++ < 5)
                cr_log_error("op %d: x = %a: libm %a, generated %a", (int)op, in[i], want, got);
            continue;
        }
        if (fabsf(want) < 1.17549435e-38f) {
            if (fabs((double)want - got) > 1e-38 && bad++ < 5)
                cr_log_error("op %d: x = %a: libm %a, generated %a", (int)op, in[i], want, got);
            continue;
        }
        double u = ulps(want, got);
        if (u > worst)
            worst = u, worst_at = in[i];
    }
    free(in);
    free(out);
    cr_expect_eq(bad, 0, "op %d: %lld special or tiny results differ", (int)op, (long long)bad);
    cr_expect_leq(worst, max_ulp, "op %d: %g ulp from libm at x = %a", (int)op, worst, worst_at);
    cr_log_info("op %d: at most %g ulp from libm over %lld inputs", (int)op, worst, (long long)n);
}

Test(llvm_math, exp_within_2_ulp_of_libm) { sweep(IR_exp, 2); }
Test(llvm_math, log_within_2_ulp_of_libm) { sweep(IR_log, 2); }
Test(llvm_math, tanh_within_3_ulp_of_libm) { sweep(IR_tanh, 3); }
Test(llvm_math, sigmoid_within_4_ulp_of_libm) { sweep(IR_sigmoid, 4); } /* 1 / (1 + expf(-x)): exp's ulp, amplified */

/* The optimized module of each model calls sgemm and the runtime's row routines, and
 * nothing per element: no libm, whatever the activation. */
static void calls_only_runtime(const char *model, const char *const *settings)
{
    char path[512], err[1024];
    snprintf(path, sizeof path, AG_SOURCE_DIR "/models/%s.c", model);
    ir_graph *m = fe_load(path, getenv("AOTGRAD_INCLUDE"), settings);
    cr_assert_not_null(m);
    for (int train = 0; train < 2; train++) {
        ir_graph *g = pass_run(m, train, NULL, NULL, NULL, err, sizeof err);
        cr_assert_not_null(g, "%s", err);
        cg_program *p = cg_lower(g, train, err, sizeof err);
        cr_assert_not_null(p, "%s", err);
        cg_target *t = cg_target_host(err, sizeof err);
        cr_assert_not_null(t, "%s", err);
        LLVMContextRef c = LLVMContextCreate();
        LLVMModuleRef mod = cg_emit_module(p, c, t, err, sizeof err);
        cr_assert_not_null(mod, "%s", err);
        cr_assert(cg_optimize(t, mod, err, sizeof err), "%s", err);
        for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f)) {
            size_t len;
            const char *name = LLVMGetValueName2(f, &len);
            if (!LLVMIsDeclaration(f) || LLVMGetFirstUse(f) == NULL || strncmp(name, "llvm.", 5) == 0)
                continue;
            cr_expect(strncmp(name, "rt_", 3) == 0 || strcmp(name, "cblas_sgemm") == 0,
                      "%s%s%s (%s): the generated code calls %s", model, settings ? " " : "",
                      settings ? settings[0] : "", train ? "train step" : "forward", name);
        }
        LLVMDisposeModule(mod);
        LLVMContextDispose(c);
        cg_target_free(t);
        cg_program_free(p);
        ir_graph_free(g);
    }
    ir_graph_free(m);
}

Test(llvm_math, no_model_calls_libm_per_element)
{
    const char *sigmoid[] = {"act=sigmoid", NULL}, *tanh_[] = {"act=tanh", NULL};
    calls_only_runtime("mlp", NULL);
    calls_only_runtime("mlp", sigmoid);
    calls_only_runtime("mlp", tanh_);
    calls_only_runtime("softmax", NULL);
    calls_only_runtime("mlp_dropout", NULL);
    calls_only_runtime("linreg", NULL);
    calls_only_runtime("weight_decay", NULL);
}
