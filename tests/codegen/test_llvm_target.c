/* The LLVM plumbing of codegen/llvm/target.h: a saxpy loop built with the C API is optimized
 * for the host (it must vectorize), emitted as .s/.o/.ll, and run through the JIT against a
 * C loop; JIT'd code calls cblas_sgemm from the process; errors come back as text. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/IRReader.h>

#include "target.h"

/* void saxpy(float *y, const float *x, float a, int64_t n): y[i] = a*x[i] + y[i], a plain
 * counted loop. With contract, the fmul and fadd may fuse into an FMA. */
static void build_saxpy(LLVMModuleRef m, bool contract)
{
    LLVMContextRef c = LLVMGetModuleContext(m);
    LLVMTypeRef f32 = LLVMFloatTypeInContext(c), i64 = LLVMInt64TypeInContext(c);
    LLVMTypeRef ptr = LLVMPointerTypeInContext(c, 0);
    LLVMTypeRef params[] = {ptr, ptr, f32, i64};
    LLVMValueRef fn = LLVMAddFunction(m, "saxpy", LLVMFunctionType(LLVMVoidTypeInContext(c), params, 4, 0));
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    LLVMAddAttributeAtIndex(fn, 1, LLVMCreateEnumAttribute(c, noalias, 0));
    LLVMAddAttributeAtIndex(fn, 2, LLVMCreateEnumAttribute(c, noalias, 0));
    LLVMValueRef y = LLVMGetParam(fn, 0), x = LLVMGetParam(fn, 1);
    LLVMValueRef a = LLVMGetParam(fn, 2), n = LLVMGetParam(fn, 3);

    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c, fn, "entry");
    LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(c, fn, "loop");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c, fn, "done");
    LLVMBuilderRef b = LLVMCreateBuilderInContext(c);

    LLVMPositionBuilderAtEnd(b, entry);
    LLVMValueRef zero = LLVMConstInt(i64, 0, 0);
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSGT, n, zero, "any"), loop, done);

    LLVMPositionBuilderAtEnd(b, loop);
    LLVMValueRef i = LLVMBuildPhi(b, i64, "i");
    LLVMValueRef px = LLVMBuildGEP2(b, f32, x, &i, 1, "px");
    LLVMValueRef py = LLVMBuildGEP2(b, f32, y, &i, 1, "py");
    LLVMValueRef xv = LLVMBuildLoad2(b, f32, px, "xv");
    LLVMValueRef yv = LLVMBuildLoad2(b, f32, py, "yv");
    LLVMValueRef p = LLVMBuildFMul(b, a, xv, "p");
    LLVMValueRef s = LLVMBuildFAdd(b, p, yv, "s");
    if (contract) {
        LLVMSetFastMathFlags(p, LLVMFastMathAllowContract);
        LLVMSetFastMathFlags(s, LLVMFastMathAllowContract);
    }
    LLVMBuildStore(b, s, py);
    LLVMValueRef next = LLVMBuildNSWAdd(b, i, LLVMConstInt(i64, 1, 0), "next");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntEQ, next, n, "end"), done, loop);
    LLVMValueRef in[] = {zero, next};
    LLVMBasicBlockRef from[] = {entry, loop};
    LLVMAddIncoming(i, in, from, 2);

    LLVMPositionBuilderAtEnd(b, done);
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
}

/* A fresh temporary directory and paths in it, removed by tmp_clean. */
typedef struct {
    char dir[64], s[96], o[96], ll[96];
} tmp_paths;

static void tmp_make(tmp_paths *t)
{
    strcpy(t->dir, "/tmp/aotgrad-llvm-XXXXXX");
    cr_assert_not_null(mkdtemp(t->dir));
    snprintf(t->s, sizeof t->s, "%s/saxpy.s", t->dir);
    snprintf(t->o, sizeof t->o, "%s/saxpy.o", t->dir);
    snprintf(t->ll, sizeof t->ll, "%s/saxpy.ll", t->dir);
}

static void tmp_clean(tmp_paths *t)
{
    unlink(t->s), unlink(t->o), unlink(t->ll);
    rmdir(t->dir);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* xorshift64, only to pick test inputs: uniform in [-1, 1) */
static float uniform(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((*s >> 40) * 0x1p-23 - 1.0);
}

enum { N = 1003 }; /* not a multiple of any vector width: the scalar tail runs too */

/* Runs the JIT'd saxpy on N elements; returns the largest difference from the C loop,
 * relative to |a*x| + |y| (the scale of the rounding error of either form, where a*x + y
 * itself may cancel to almost nothing); 0 when bit for bit. */
static double run_saxpy(void (*saxpy)(float *, const float *, float, int64_t))
{
    static float x[N], y0[N], y[N], ref[N];
    uint64_t seed = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < N; i++)
        x[i] = uniform(&seed), y0[i] = y[i] = ref[i] = uniform(&seed);
    const float a = 1.7f;
    for (int i = 0; i < N; i++)
        ref[i] = a * x[i] + ref[i]; /* two roundings: this file is built with -ffp-contract=off */
    saxpy(y, x, a, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double scale = fabs((double)a * x[i]) + fabs((double)y0[i]);
        double d = fabs((double)y[i] - ref[i]) / fmax(scale, 1e-30);
        worst = fmax(worst, d);
    }
    memcpy(ref, y, sizeof y);
    saxpy(y, x, a, 0);
    cr_expect(!memcmp(ref, y, sizeof y), "saxpy with n = 0 wrote to y");
    return worst;
}

Test(llvm_target, host)
{
    char err[512];
    cg_target *t = cg_target_host(err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    cr_log_info("host: %s, cpu %s", cg_target_triple(t), cg_target_cpu(t));
    cr_expect(strstr(cg_target_triple(t), "x86_64") != NULL, "%s", cg_target_triple(t));
    cr_expect(strcmp(cg_target_cpu(t), "generic") != 0, "host CPU not detected");
    cr_expect(cg_target_has(t, "sse2"), "%s", cg_target_features(t));
    cr_expect(!cg_target_has(t, "avx51"), "a prefix of a feature is not a feature");
    cr_expect(!cg_target_has(t, "no-such-feature"));
    cr_expect_not_null(cg_target_machine(t));

    LLVMContextRef c = LLVMContextCreate();
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("m", c);
    cg_target_prepare(t, m);
    cr_expect_str_eq(LLVMGetTarget(m), cg_target_triple(t));
    cr_expect(strstr(LLVMGetDataLayoutStr(m), "e-m:e") == LLVMGetDataLayoutStr(m), "%s", LLVMGetDataLayoutStr(m));
    LLVMDisposeModule(m);
    LLVMContextDispose(c);
    cg_target_free(t);
}

/* The whole path on the saxpy module; also times it, against the 1 s budget for a build. */
Test(llvm_target, saxpy_optimize_emit_jit)
{
    char err[512];
    tmp_paths p;
    tmp_make(&p);

    double t0 = now(); /* the first call in this process: it initializes LLVM's target */
    cg_target *t = cg_target_host(err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    double host = now() - t0;

    cg_jit *j = cg_jit_new(err, sizeof err); /* the module is built in the JIT's context */
    cr_assert_not_null(j, "%s", err);
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("saxpy", cg_jit_context(j));
    build_saxpy(m, false);

    t0 = now();
    cg_target_prepare(t, m);
    cr_assert(cg_optimize(t, m, err, sizeof err), "%s", err);
    double opt = now() - t0;
    t0 = now();
    cr_assert(cg_emit_object(t, m, p.o, err, sizeof err), "%s", err);
    double obj = now() - t0;
    t0 = now();
    cr_assert(cg_emit_assembly(t, m, p.s, err, sizeof err), "%s", err);
    cr_assert(cg_emit_ir(m, p.ll, err, sizeof err), "%s", err);
    double text = now() - t0;
    double total = host + opt + obj + text;
    cr_log_info("saxpy: host target %.1f ms, O3 %.1f ms, object %.1f ms, asm+ll %.1f ms, "
                "total %.1f ms",
                host * 1e3, opt * 1e3, obj * 1e3, text * 1e3, total * 1e3);
    cr_expect_lt(total, 1.0, "a whole build must take under 1 s; this one module took %.3f s", total);

    /* the loop vectorized, 256 bits wide, and nothing contracted fmul+fadd */
    char *s = slurp(p.s, NULL);
    if (cg_target_has(t, "avx2"))
        cr_expect(strstr(s, "%ymm") != NULL, "no 256-bit vectors in:\n%s", s);
    else
        cr_log_warn("host lacks +avx2 (%s): not checking for %%ymm", cg_target_cpu(t));
    cr_expect(strstr(s, "vmulps") != NULL || strstr(s, "mulps") != NULL, "no packed mul");
    cr_expect(strstr(s, "vfmadd") == NULL, "fmul+fadd contracted without a contract flag");
    free(s);

    size_t olen;
    char *o = slurp(p.o, &olen);
    cr_expect(olen > 4 && !memcmp(o, "\177ELF", 4), "not an ELF object");
    free(o);

    /* the .ll parses back, in a context of its own, and still defines saxpy */
    LLVMContextRef c2 = LLVMContextCreate();
    LLVMMemoryBufferRef buf;
    char *msg = NULL;
    cr_assert(!LLVMCreateMemoryBufferWithContentsOfFile(p.ll, &buf, &msg), "%s", msg);
    LLVMModuleRef back;
    cr_assert(!LLVMParseIRInContext(c2, buf, &back, &msg), "%s", msg); /* takes buf */
    LLVMValueRef f = LLVMGetNamedFunction(back, "saxpy");
    cr_expect(f && LLVMCountBasicBlocks(f) > 2, "saxpy lost in the round trip");
    cr_expect(!LLVMVerifyModule(back, LLVMReturnStatusAction, &msg), "%s", msg);
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(back);
    LLVMContextDispose(c2);

    /* emitting left m intact: the JIT takes the same module and matches C bit for bit */
    cr_assert(cg_jit_add(j, m, err, sizeof err), "%s", err);
    void *fp = cg_jit_lookup(j, "saxpy", err, sizeof err);
    cr_assert_not_null(fp, "%s", err);
    double worst = run_saxpy((void (*)(float *, const float *, float, int64_t))fp);
    cr_expect_eq(worst, 0.0, "JIT saxpy differs from C: %g relative", worst);

    cg_jit_free(j);
    cg_target_free(t);
    tmp_clean(&p);
}

/* With the contract flag, the host's FMA is used, and the result stays within 1e-6. */
Test(llvm_target, saxpy_contract_uses_fma)
{
    char err[512];
    tmp_paths p;
    tmp_make(&p);
    cg_target *t = cg_target_host(err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    cg_jit *j = cg_jit_new(err, sizeof err);
    cr_assert_not_null(j, "%s", err);
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("saxpy", cg_jit_context(j));
    build_saxpy(m, true);
    cg_target_prepare(t, m);
    cr_assert(cg_optimize(t, m, err, sizeof err), "%s", err);
    cr_assert(cg_emit_assembly(t, m, p.s, err, sizeof err), "%s", err);
    char *s = slurp(p.s, NULL);
    if (cg_target_has(t, "fma"))
        cr_expect(strstr(s, "vfmadd") != NULL && strstr(s, "%ymm") != NULL, "no 256-bit FMA in:\n%s", s);
    else
        cr_log_warn("host lacks +fma (%s): not checking for vfmadd", cg_target_cpu(t));
    free(s);

    cr_assert(cg_jit_add(j, m, err, sizeof err), "%s", err);
    void *fp = cg_jit_lookup(j, "saxpy", err, sizeof err);
    cr_assert_not_null(fp, "%s", err);
    double worst = run_saxpy((void (*)(float *, const float *, float, int64_t))fp);
    cr_expect_leq(worst, 1e-6, "contracted saxpy off by %g relative", worst);
    cg_jit_free(j);
    cg_target_free(t);
    tmp_clean(&p);
}

/* JIT'd code calls cblas_sgemm from the process, with and without a transpose flag.
 * void mm(const float *A, const float *B, float *C, int32_t transB, int32_t ldb) computes
 * C[3x2] = A[3x4] * op(B), row major. */
Test(llvm_target, jit_calls_cblas_sgemm)
{
    char err[512];
    cg_jit *j = cg_jit_new(err, sizeof err);
    cr_assert_not_null(j, "%s", err);
    cg_target *t = cg_target_host(err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    LLVMContextRef c = cg_jit_context(j);
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("mm", c);
    cg_target_prepare(t, m);

    LLVMTypeRef i32 = LLVMInt32TypeInContext(c), f32 = LLVMFloatTypeInContext(c);
    LLVMTypeRef ptr = LLVMPointerTypeInContext(c, 0), vd = LLVMVoidTypeInContext(c);
    /* cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) */
    LLVMTypeRef gp[] = {i32, i32, i32, i32, i32, i32, f32, ptr, i32, ptr, i32, f32, ptr, i32};
    LLVMTypeRef gty = LLVMFunctionType(vd, gp, 14, 0);
    LLVMValueRef gemm = LLVMAddFunction(m, "cblas_sgemm", gty); /* external declaration */
    LLVMTypeRef mp[] = {ptr, ptr, ptr, i32, i32};
    LLVMValueRef mm = LLVMAddFunction(m, "mm", LLVMFunctionType(vd, mp, 5, 0));
    LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, mm, "entry"));
#define I(v) LLVMConstInt(i32, (v), 0)
    LLVMValueRef args[] = {I(101) /* CblasRowMajor */,
                           I(111) /* CblasNoTrans */,
                           LLVMGetParam(mm, 3),
                           I(3),
                           I(2),
                           I(4),
                           LLVMConstReal(f32, 1),
                           LLVMGetParam(mm, 0),
                           I(4),
                           LLVMGetParam(mm, 1),
                           LLVMGetParam(mm, 4),
                           LLVMConstReal(f32, 0),
                           LLVMGetParam(mm, 2),
                           I(2)};
#undef I
    LLVMBuildCall2(b, gty, gemm, args, 14, "");
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
    cr_assert(cg_optimize(t, m, err, sizeof err), "%s", err);
    cr_assert(cg_jit_add(j, m, err, sizeof err), "%s", err);
    void (*f)(const float *, const float *, float *, int32_t, int32_t) =
        (void (*)(const float *, const float *, float *, int32_t, int32_t))cg_jit_lookup(j, "mm", err, sizeof err);
    cr_assert_not_null(f, "%s", err);

    const float A[3 * 4] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const float B[4 * 2] = {1, -1, 2, 0, 0, 3, -2, 1};  /* 4x2 */
    const float Bt[2 * 4] = {1, 2, 0, -2, -1, 0, 3, 1}; /* the same, stored 2x4 */
    const float want[3 * 2] = {-3, 12, 1, 24, 5, 36};   /* by hand */
    float C[3 * 2];
    memset(C, 0xff, sizeof C);
    f(A, B, C, 111 /* CblasNoTrans */, 2);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(C[i], want[i], "C[%d] = %g, want %g", i, C[i], want[i]);
    memset(C, 0xff, sizeof C);
    f(A, Bt, C, 112 /* CblasTrans */, 4);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(C[i], want[i], "transposed: C[%d] = %g, want %g", i, C[i], want[i]);

    cg_jit_free(j);
    cg_target_free(t);
}

/* A function of this executable (exported, as every suite is linked with ENABLE_EXPORTS, like
 * the runtime's functions in aotgrad) and one of libm, both called from JIT'd code:
 * float f(float v) = expf(v) + codegen_test_twice(v). */
float codegen_test_twice(float v);
float codegen_test_twice(float v) { return 2 * v; }

Test(llvm_target, jit_calls_process_functions)
{
    char err[512];
    cg_jit *j = cg_jit_new(err, sizeof err);
    cr_assert_not_null(j, "%s", err);
    LLVMContextRef c = cg_jit_context(j);
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("calls", c);
    LLVMTypeRef f32 = LLVMFloatTypeInContext(c);
    LLVMTypeRef ft = LLVMFunctionType(f32, &f32, 1, 0);
    LLVMValueRef ex = LLVMAddFunction(m, "expf", ft);
    LLVMValueRef tw = LLVMAddFunction(m, "codegen_test_twice", ft);
    LLVMValueRef f = LLVMAddFunction(m, "f", ft);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, f, "entry"));
    LLVMValueRef v = LLVMGetParam(f, 0);
    LLVMValueRef e = LLVMBuildCall2(b, ft, ex, &v, 1, "e");
    LLVMValueRef t = LLVMBuildCall2(b, ft, tw, &v, 1, "t");
    LLVMBuildRet(b, LLVMBuildFAdd(b, e, t, "r"));
    LLVMDisposeBuilder(b);
    cr_assert(cg_jit_add(j, m, err, sizeof err), "%s", err);
    float (*fp)(float) = (float (*)(float))cg_jit_lookup(j, "f", err, sizeof err);
    cr_assert_not_null(fp, "%s", err);
    cr_expect_eq(fp(0.5f), expf(0.5f) + 1.0f);
    cr_expect_eq(fp(-3.0f), expf(-3.0f) - 6.0f);
    cg_jit_free(j);
}

/* Every failure comes back as LLVM's own text, and nothing leaks on the way. */
Test(llvm_target, errors_are_text)
{
    char err[512];
    cg_target *t = cg_target_host(err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    cg_jit *j = cg_jit_new(err, sizeof err);
    cr_assert_not_null(j, "%s", err);

    /* a block without a terminator: the verifier's message, from optimize and from add */
    LLVMContextRef c = cg_jit_context(j);
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("bad", c);
    LLVMValueRef fn = LLVMAddFunction(m, "broken", LLVMFunctionType(LLVMVoidTypeInContext(c), NULL, 0, 0));
    LLVMAppendBasicBlockInContext(c, fn, "entry");
    err[0] = 0;
    cr_expect(!cg_optimize(t, m, err, sizeof err));
    cr_expect(strstr(err, "verifier") && strstr(err, "terminator"), "%s", err);
    err[0] = 0;
    cr_expect(!cg_jit_add(j, m, err, sizeof err)); /* and m is gone */
    cr_expect(strstr(err, "terminator") != NULL, "%s", err);

    /* a symbol nobody defines */
    err[0] = 0;
    cr_expect_null(cg_jit_lookup(j, "ag_no_such_symbol", err, sizeof err));
    cr_expect(strstr(err, "ag_no_such_symbol") != NULL, "%s", err);

    /* a path that cannot be written */
    LLVMModuleRef ok = LLVMModuleCreateWithNameInContext("ok", c);
    cg_target_prepare(t, ok);
    err[0] = 0;
    cr_expect(!cg_emit_object(t, ok, "/nonexistent-dir/x.o", err, sizeof err));
    cr_expect(strstr(err, "/nonexistent-dir/x.o") != NULL, "%s", err);
    err[0] = 0;
    cr_expect(!cg_emit_ir(ok, "/nonexistent-dir/x.ll", err, sizeof err));
    cr_expect(strstr(err, "/nonexistent-dir/x.ll") != NULL, "%s", err);

    /* a short buffer is truncated, not overrun */
    char tiny[8];
    cr_expect_null(cg_jit_lookup(j, "ag_no_such_symbol", tiny, sizeof tiny));
    cr_expect_eq(strlen(tiny), sizeof tiny - 1);

    LLVMDisposeModule(ok);
    cg_jit_free(j);
    cg_target_free(t);
}
