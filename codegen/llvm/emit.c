/* The LLVM backend's code for a cg_program (see emit.h).
 *
 * Elementwise ops are built from the op table: the S_ macros of ir/scalar.h are defined here
 * as builder calls over a compute type (float or double), and IR_OPS's EW rows expand into
 * one builder function per op (ew_NAME), so a new elementwise row needs no change here.
 */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Core.h>

#include "emit.h"

/* ---- the emitter's state ---- */

typedef struct em {
    LLVMContextRef c;
    LLVMModuleRef m;
    LLVMBuilderRef b;
    LLVMTypeRef f32, f64, i1, i8, i32, i64, ptr, vd;
    LLVMTypeRef T; /* the compute type of the op being built: f32 or f64 (vectors of them when W > 1) */
    unsigned W;    /* values are vectors of W lanes (the streaming loops' body) or scalars (1) */
    const cg_program *p;
    char *err;
    size_t len;
    bool failed;
} em;

static void fail(em *E, const char *fmt, ...)
{
    if (E->failed)
        return;
    E->failed = true;
    va_list ap;
    va_start(ap, fmt);
    if (E->err && E->len)
        vsnprintf(E->err, E->len, fmt, ap);
    va_end(ap);
}

static const char *op_name(ir_op op)
{
    static const char *const names[] = {
#define NAME_EW(name, ...) #name,
#define NAME_OP(name, ...) #name,
        IR_OPS(NAME_EW, NAME_OP)
#undef NAME_EW
#undef NAME_OP
    };
    return (unsigned)op < IR_OP_COUNT ? names[op] : "?";
}

/* ---- types and conversions, as ir_tensor_get / ir_tensor_set ---- */

/* the type of one element of dtype t in registers: bool is i1 */
static LLVMTypeRef scalar_type(em *E, ag_dtype t)
{
    switch (t) {
    case AG_F32: return E->f32;
    case AG_F64: return E->f64;
    case AG_I32: return E->i32;
    case AG_U8: return E->i8;
    case AG_BOOL: return E->i1;
    default: return NULL;
    }
}

/* t, or a vector of W of them */
static LLVMTypeRef lanes(em *E, LLVMTypeRef t) { return t && E->W > 1 ? LLVMVectorType(t, E->W) : t; }
/* the type of a value of dtype t in registers */
static LLVMTypeRef val_type(em *E, ag_dtype t) { return lanes(E, scalar_type(E, t)); }
/* the type of an element in memory (addresses count in these): bool is one byte */
static LLVMTypeRef mem_type(em *E, ag_dtype t) { return t == AG_BOOL ? E->i8 : scalar_type(E, t); }
/* a scalar constant in every lane */
static LLVMValueRef splat(em *E, LLVMValueRef c)
{
    if (E->W <= 1)
        return c;
    LLVMValueRef v[16];
    assert(E->W <= 16);
    for (unsigned k = 0; k < E->W; k++)
        v[k] = c;
    return LLVMConstVector(v, E->W);
}
static int64_t mem_size(ag_dtype t) { return t == AG_F64 ? 8 : t == AG_F32 || t == AG_I32 ? 4 : 1; }
static bool is_fp(ag_dtype t) { return t == AG_F32 || t == AG_F64; }

static LLVMValueRef intrinsic(em *E, const char *name, LLVMTypeRef *over, int nover, LLVMValueRef *args, int nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    assert(id && "intrinsic missing from LLVM");
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(E->m, id, over, (size_t)nover);
    LLVMTypeRef ty = LLVMIntrinsicGetType(E->c, id, over, (size_t)nover);
    return LLVMBuildCall2(E->b, ty, fn, args, (unsigned)nargs, "");
}

/* v, a value of dtype from, as dtype to (F64 standing for the compute type double) */
static LLVMValueRef convert(em *E, LLVMValueRef v, ag_dtype from, ag_dtype to)
{
    if (from == to)
        return v;
    /* a double that was widened from f32, i32, u8 or bool holds that value exactly: convert
     * from the narrow one (fptosi.sat(fpext x) is fptosi.sat(x), and vectors stay twice as
     * wide) */
    if (from == AG_F64 && to != AG_F32 && LLVMIsAInstruction(v)) {
        LLVMOpcode o = LLVMGetInstructionOpcode(v);
        LLVMValueRef x = LLVMGetOperand(v, 0);
        LLVMTypeRef xt = LLVMTypeOf(x);
        if (o == LLVMFPExt && xt == val_type(E, AG_F32))
            return convert(E, x, AG_F32, to);
        if (o == LLVMSIToFP && xt == val_type(E, AG_I32))
            return convert(E, x, AG_I32, to);
        if (o == LLVMUIToFP && (xt == val_type(E, AG_U8) || xt == val_type(E, AG_BOOL)))
            return convert(E, x, xt == val_type(E, AG_U8) ? AG_U8 : AG_BOOL, to);
    }
    LLVMTypeRef T = val_type(E, to);
    if (is_fp(to)) {
        if (is_fp(from))
            return to == AG_F64 ? LLVMBuildFPExt(E->b, v, T, "") : LLVMBuildFPTrunc(E->b, v, T, "");
        return from == AG_I32 ? LLVMBuildSIToFP(E->b, v, T, "") : LLVMBuildUIToFP(E->b, v, T, "");
    }
    if (to == AG_BOOL)
        return is_fp(from) ? LLVMBuildFCmp(E->b, LLVMRealUNE, v, LLVMConstNull(LLVMTypeOf(v)), "")
                           : LLVMBuildICmp(E->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
    if (is_fp(from)) { /* NaN -> 0, truncate toward zero, saturate: the .sat conversions */
        LLVMTypeRef over[] = {T, LLVMTypeOf(v)};
        return intrinsic(E, to == AG_I32 ? "llvm.fptosi.sat" : "llvm.fptoui.sat", over, 2, &v, 1);
    }
    if (from == AG_BOOL || (from == AG_U8 && to == AG_I32))
        return LLVMBuildZExt(E->b, v, T, "");
    if (from == AG_I32 && to == AG_U8) { /* clamp to [0, 255] */
        LLVMValueRef zero = splat(E, LLVMConstInt(E->i32, 0, 0)), top = splat(E, LLVMConstInt(E->i32, 255, 0));
        LLVMValueRef lo = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, v, zero, ""), zero, v, "");
        LLVMValueRef hi = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSGT, lo, top, ""), top, lo, "");
        return LLVMBuildTrunc(E->b, hi, val_type(E, AG_U8), "");
    }
    fail(E, "no conversion from %s to %s", ir_dtype_name(from), ir_dtype_name(to));
    return LLVMGetUndef(T);
}

/* a constant of dtype t holding v as ir_tensor_set stores it */
static LLVMValueRef scalar_constant(em *E, double v, ag_dtype t)
{
    if (is_fp(t))
        return LLVMConstReal(scalar_type(E, t), t == AG_F32 ? (double)(float)v : v);
    switch (t) {
    case AG_I32:
        return LLVMConstInt(E->i32, (unsigned long long)(int64_t)(v != v ? 0 : v <= -2147483648.0 ? INT32_MIN
                                                                     : v >= 2147483647.0         ? INT32_MAX
                                                                                                 : (int32_t)v),
                            1);
    case AG_U8: return LLVMConstInt(E->i8, v != v || v <= 0 ? 0 : v >= 255 ? 255 : (unsigned)v, 0);
    case AG_BOOL: return LLVMConstInt(E->i1, v != 0, 0);
    default: fail(E, "constant of dtype %d", (int)t); return LLVMConstInt(E->i32, 0, 0);
    }
}
static LLVMValueRef constant(em *E, double v, ag_dtype t) { return splat(E, scalar_constant(E, v, t)); }

/* ---- the op table's scalar forms as builder calls ---- */

static LLVMValueRef s_k(em *E, double v) { return constant(E, v, E->T == val_type(E, AG_F32) ? AG_F32 : AG_F64); }
static LLVMValueRef s_un(em *E, const char *intr, LLVMValueRef x)
{
    return intrinsic(E, intr, &E->T, 1, &x, 1);
}
static LLVMValueRef s_pow(em *E, LLVMValueRef x, LLVMValueRef y)
{
    LLVMValueRef args[] = {x, y};
    return intrinsic(E, "llvm.pow", &E->T, 1, args, 2);
}
/* comparisons give 1 or 0 in the compute type, as (S_T)(x < y) */
static LLVMValueRef s_cmp(em *E, LLVMRealPredicate pr, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildUIToFP(E->b, LLVMBuildFCmp(E->b, pr, x, y, ""), E->T, "");
}
/* (c) != 0 ? x : y; NaN != 0 holds, as in C */
static LLVMValueRef s_sel(em *E, LLVMValueRef c, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildSelect(E->b, LLVMBuildFCmp(E->b, LLVMRealUNE, c, LLVMConstNull(E->T), ""), x, y, "");
}

/* ---- exp, log and tanh in float as arithmetic ----
 *
 * As llvm.exp etc., they become a libm call per element, even inside vectorized loops
 * (sigmoid and tanh layers would call expf 256 times a row). Built from arithmetic, they
 * vectorize with the rest of the loop. Cephes' single-precision methods (Moshier): range
 * reduction to a small interval, a minimax polynomial there, and the exponent put back by
 * integer arithmetic; within about 2 ulp of libm's, so within the tests' 1e-5 of the
 * interpreter, with NaN, infinities and zeros as libm gives them. Double compute types keep
 * the intrinsics. */

static LLVMValueRef fk(em *E, double v) { return constant(E, v, AG_F32); }
static LLVMValueRef ik(em *E, int32_t v) { return splat(E, LLVMConstInt(E->i32, (unsigned long long)(int64_t)v, 1)); }
static LLVMValueRef fsel(em *E, LLVMRealPredicate pr, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t, LLVMValueRef f)
{
    return LLVMBuildSelect(E->b, LLVMBuildFCmp(E->b, pr, a, b, ""), t, f, "");
}
/* c[0] x^(n-1) + ... + c[n-1], by Horner's rule; each step may fuse into an fma (these
 * functions are compared with libm within ulps, not bit for bit) */
static LLVMValueRef horner(em *E, LLVMValueRef x, const double *c, int n)
{
    LLVMValueRef y = fk(E, c[0]);
    for (int k = 1; k < n; k++) {
        LLVMValueRef args[] = {y, x, fk(E, c[k])};
        y = intrinsic(E, "llvm.fmuladd", &E->T, 1, args, 3);
    }
    return y;
}

static bool is_f32(em *E) { return E->T == val_type(E, AG_F32); }

static LLVMValueRef f32_exp(em *E, LLVMValueRef x)
{
    LLVMTypeRef I = val_type(E, AG_I32), F = E->T;
    /* past [-104, 89] the result is 0 or infinity anyway; NaN computes as 0 (so that n
     * converts to an integer: a plain fptosi vectorizes, the saturating one does not) and
     * is put back at the end */
    LLVMValueRef c = fsel(E, LLVMRealOGT, x, fk(E, 89), fk(E, 89), x);
    c = fsel(E, LLVMRealOLT, c, fk(E, -104), fk(E, -104), c);
    c = fsel(E, LLVMRealUNO, c, c, fk(E, 0), c);
    LLVMValueRef n = LLVMBuildFMul(E->b, c, fk(E, 1.44269504088896341), "");
    n = intrinsic(E, "llvm.rint", &F, 1, &n, 1);
    /* r = c - n ln2, with ln2 in two parts so that n * 0.693359375 is exact */
    LLVMValueRef r = LLVMBuildFSub(E->b, c, LLVMBuildFMul(E->b, n, fk(E, 0.693359375), ""), "");
    r = LLVMBuildFSub(E->b, r, LLVMBuildFMul(E->b, n, fk(E, -2.12194440e-4), ""), "");
    static const double p[] = {1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                               4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1};
    LLVMValueRef y = LLVMBuildFMul(E->b, horner(E, r, p, 6), LLVMBuildFMul(E->b, r, r, ""), "");
    y = LLVMBuildFAdd(E->b, LLVMBuildFAdd(E->b, y, r, ""), fk(E, 1), "");
    /* times 2^n as two factors 2^(n/2), each a normal float for n in [-150, 128] */
    LLVMValueRef ni = LLVMBuildFPToSI(E->b, n, I, "");
    LLVMValueRef n1 = LLVMBuildAShr(E->b, ni, ik(E, 1), ""), n2 = LLVMBuildSub(E->b, ni, n1, "");
    for (int k = 0; k < 2; k++) {
        LLVMValueRef e = LLVMBuildShl(E->b, LLVMBuildAdd(E->b, k ? n2 : n1, ik(E, 127), ""), ik(E, 23), "");
        y = LLVMBuildFMul(E->b, y, LLVMBuildBitCast(E->b, e, F, ""), "");
    }
    return fsel(E, LLVMRealUNO, x, x, x, y);
}

static LLVMValueRef f32_log(em *E, LLVMValueRef x)
{
    LLVMTypeRef I = val_type(E, AG_I32), F = E->T;
    /* subnormals: scaled by 2^23 first */
    LLVMValueRef tiny = LLVMBuildFCmp(E->b, LLVMRealOLT, x, fk(E, 1.17549435e-38), "");
    LLVMValueRef xs = LLVMBuildSelect(E->b, tiny, LLVMBuildFMul(E->b, x, fk(E, 8388608.0), ""), x, "");
    LLVMValueRef bits = LLVMBuildBitCast(E->b, xs, I, "");
    /* x = m 2^e, m in [0.5, 1) */
    LLVMValueRef e = LLVMBuildSub(E->b, LLVMBuildAnd(E->b, LLVMBuildLShr(E->b, bits, ik(E, 23), ""), ik(E, 0xff), ""),
                                  LLVMBuildSelect(E->b, tiny, ik(E, 126 + 23), ik(E, 126), ""), "");
    LLVMValueRef m = LLVMBuildBitCast(
        E->b, LLVMBuildOr(E->b, LLVMBuildAnd(E->b, bits, ik(E, (int32_t)0x807fffff), ""), ik(E, 0x3f000000), ""), F, "");
    /* m below sqrt(1/2): 2m - 1 and e - 1, else m - 1 */
    LLVMValueRef lo = LLVMBuildFCmp(E->b, LLVMRealOLT, m, fk(E, 0.707106781186547524), "");
    e = LLVMBuildSub(E->b, e, LLVMBuildZExt(E->b, lo, I, ""), "");
    m = LLVMBuildFSub(E->b, LLVMBuildSelect(E->b, lo, LLVMBuildFAdd(E->b, m, m, ""), m, ""), fk(E, 1), "");
    LLVMValueRef z = LLVMBuildFMul(E->b, m, m, "");
    static const double p[] = {7.0376836292e-2,  -1.1514610310e-1, 1.1676998740e-1,
                               -1.2420140846e-1, 1.4249322787e-1,  -1.6668057665e-1,
                               2.0000714765e-1,  -2.4999993993e-1, 3.3333331174e-1};
    LLVMValueRef y = LLVMBuildFMul(E->b, LLVMBuildFMul(E->b, horner(E, m, p, 9), m, ""), z, "");
    LLVMValueRef fe = LLVMBuildSIToFP(E->b, e, F, "");
    y = LLVMBuildFAdd(E->b, y, LLVMBuildFMul(E->b, fe, fk(E, -2.12194440e-4), ""), "");
    y = LLVMBuildFSub(E->b, y, LLVMBuildFMul(E->b, z, fk(E, 0.5), ""), "");
    LLVMValueRef r = LLVMBuildFAdd(E->b, m, y, "");
    r = LLVMBuildFAdd(E->b, r, LLVMBuildFMul(E->b, fe, fk(E, 0.693359375), ""), "");
    r = fsel(E, LLVMRealOEQ, x, fk(E, INFINITY), x, r);
    r = fsel(E, LLVMRealOEQ, x, fk(E, 0), fk(E, -INFINITY), r);
    return fsel(E, LLVMRealULT, x, fk(E, 0), fk(E, NAN), r); /* below 0, or NaN */
}

static LLVMValueRef f32_tanh(em *E, LLVMValueRef x)
{
    LLVMTypeRef F = E->T;
    LLVMValueRef ax = intrinsic(E, "llvm.fabs", &F, 1, &x, 1);
    /* |x| < 0.625: an odd polynomial; beyond: 1 - 2 / (e^2|x| + 1) with x's sign */
    static const double p[] = {-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
                               -3.33332819422e-1};
    LLVMValueRef z = LLVMBuildFMul(E->b, x, x, "");
    LLVMValueRef small = LLVMBuildFMul(E->b, LLVMBuildFMul(E->b, horner(E, z, p, 5), z, ""), x, "");
    small = LLVMBuildFAdd(E->b, small, x, "");
    LLVMValueRef big = f32_exp(E, LLVMBuildFAdd(E->b, ax, ax, ""));
    big = LLVMBuildFSub(E->b, fk(E, 1), LLVMBuildFDiv(E->b, fk(E, 2), LLVMBuildFAdd(E->b, big, fk(E, 1), ""), ""), "");
    LLVMValueRef sign[] = {big, x};
    big = intrinsic(E, "llvm.copysign", &F, 1, sign, 2);
    return fsel(E, LLVMRealOLT, ax, fk(E, 0.625), small, big);
}

static LLVMValueRef s_exp(em *E, LLVMValueRef x) { return is_f32(E) ? f32_exp(E, x) : s_un(E, "llvm.exp", x); }
static LLVMValueRef s_log(em *E, LLVMValueRef x) { return is_f32(E) ? f32_log(E, x) : s_un(E, "llvm.log", x); }
static LLVMValueRef s_tanh(em *E, LLVMValueRef x) { return is_f32(E) ? f32_tanh(E, x) : s_un(E, "llvm.tanh", x); }

#define S_K(v) s_k(E, (double)(v))
#define S_ADD(x, y) LLVMBuildFAdd(E->b, x, y, "")
#define S_SUB(x, y) LLVMBuildFSub(E->b, x, y, "")
#define S_MUL(x, y) LLVMBuildFMul(E->b, x, y, "")
#define S_DIV(x, y) LLVMBuildFDiv(E->b, x, y, "")
#define S_POW(x, y) s_pow(E, x, y)
#define S_NEG(x) LLVMBuildFNeg(E->b, x, "")
#define S_EXP(x) s_exp(E, x)
#define S_LOG(x) s_log(E, x)
#define S_ABS(x) s_un(E, "llvm.fabs", x)
#define S_SQRT(x) s_un(E, "llvm.sqrt", x)
#define S_TANH(x) s_tanh(E, x)
#define S_LT(x, y) s_cmp(E, LLVMRealOLT, x, y)
#define S_LE(x, y) s_cmp(E, LLVMRealOLE, x, y)
#define S_GT(x, y) s_cmp(E, LLVMRealOGT, x, y)
#define S_GE(x, y) s_cmp(E, LLVMRealOGE, x, y)
#define S_EQ(x, y) s_cmp(E, LLVMRealOEQ, x, y)
#define S_NE(x, y) s_cmp(E, LLVMRealUNE, x, y)
#define S_SEL(c, x, y) s_sel(E, c, x, y)

typedef LLVMValueRef ew_builder(em *E, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c);
#define EW_BUILD(name, arity, scalar, ...)                                                     \
    static LLVMValueRef ew_##name(em *E, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)       \
    {                                                                                          \
        (void)E, (void)a, (void)b, (void)c;                                                    \
        return scalar;                                                                         \
    }
#define EW_SKIP(...)
IR_OPS(EW_BUILD, EW_SKIP)
#define EW_ENTRY(name, arity, ...) [IR_##name] = {ew_##name, arity},
static const struct {
    ew_builder *build;
    int arity;
} ew_table[IR_OP_COUNT] = {IR_OPS(EW_ENTRY, EW_SKIP)};

/* ---- expressions ---- */

/* Where an expression's inputs come from: loads (built by the caller) and loop indices. */
typedef struct body {
    const cg_expr *expr;
    int nexprs;
    LLVMValueRef *val;  /* per expression */
    LLVMValueRef *load; /* per load: the loaded element, in its buffer's dtype */
    ag_dtype *load_dtype;
    LLVMValueRef *index; /* per axis, i64; NULL where none */
    int rank;
} body;

static bool eval_exprs(em *E, body *B)
{
    for (int e = 0; e < B->nexprs && !E->failed; e++) {
        const cg_expr *x = &B->expr[e];
        LLVMValueRef v = NULL;
        if (!val_type(E, x->dtype) || x->dtype == AG_F64) {
            fail(E, "expression %d: bad dtype %d", e, (int)x->dtype);
            break;
        }
        switch (x->kind) {
        case CG_E_LOAD:
            if (!B->load || x->load < 0 || !B->load[x->load]) {
                fail(E, "expression %d: load %d does not exist", e, (int)x->load);
                break;
            }
            v = convert(E, B->load[x->load], B->load_dtype[x->load], x->dtype);
            break;
        case CG_E_CONST: v = constant(E, x->value, x->dtype); break;
        case CG_E_INDEX: {
            if (!B->index || x->axis < 0 || x->axis >= B->rank) {
                fail(E, "expression %d: index of axis %d outside the loop", e, (int)x->axis);
                break;
            }
            LLVMValueRef i = B->index[x->axis];
            if (x->dtype == AG_F32)
                v = LLVMBuildSIToFP(E->b, i, E->f32, "");
            else if (x->dtype == AG_BOOL)
                v = LLVMBuildICmp(E->b, LLVMIntNE, i, LLVMConstInt(E->i64, 0, 0), "");
            else
                v = LLVMBuildTrunc(E->b, i, val_type(E, x->dtype), "");
            break;
        }
        case CG_E_OP: {
            if ((unsigned)x->op >= IR_OP_COUNT || !ew_table[x->op].build) {
                fail(E, "expression %d: %s is not an elementwise op", e, op_name(x->op));
                break;
            }
            int n = ew_table[x->op].arity;
            const int32_t ops[3] = {x->a, x->b, x->c};
            /* the interpreter's compute type: float when every value is f32, else double */
            bool single = x->dtype == AG_F32;
            for (int k = 0; k < n; k++) {
                if (ops[k] < 0 || ops[k] >= e) {
                    fail(E, "expression %d (%s): operand %d is not an earlier expression", e, op_name(x->op), k);
                    return false;
                }
                single &= B->expr[ops[k]].dtype == AG_F32;
            }
            ag_dtype ct = single ? AG_F32 : AG_F64;
            E->T = val_type(E, ct);
            LLVMValueRef in[3] = {NULL, NULL, NULL};
            for (int k = 0; k < n; k++)
                in[k] = convert(E, B->val[ops[k]], B->expr[ops[k]].dtype, ct);
            v = convert(E, ew_table[x->op].build(E, in[0], in[1], in[2]), ct, x->dtype);
            break;
        }
        default: fail(E, "expression %d: unknown kind %d", e, (int)x->kind);
        }
        B->val[e] = v;
    }
    return !E->failed;
}

/* ---- affine values ---- */

static LLVMValueRef affine(em *E, cg_dim d, LLVMValueRef N)
{
    LLVMValueRef k = LLVMConstInt(E->i64, (unsigned long long)d.k, 1);
    if (d.n == 0)
        return k;
    LLVMValueRef v = d.n == 1 ? N : LLVMBuildNSWMul(E->b, N, LLVMConstInt(E->i64, (unsigned long long)d.n, 1), "");
    return d.k ? LLVMBuildNSWAdd(E->b, v, k, "") : v;
}

static LLVMValueRef gep(em *E, LLVMTypeRef t, LLVMValueRef base, LLVMValueRef off)
{
    return LLVMBuildInBoundsGEP2(E->b, t, base, &off, 1, "");
}

/* ---- proving that buffers miss each other ---- */

/* c0 + c1 N + c2 N^2 */
typedef struct poly {
    double c[3];
} poly;

static poly p_aff(cg_dim d) { return (poly){{(double)d.k, (double)d.n, 0}}; }
static poly p_add(poly a, poly b) { return (poly){{a.c[0] + b.c[0], a.c[1] + b.c[1], a.c[2] + b.c[2]}}; }
static poly p_scale(poly a, double s) { return (poly){{a.c[0] * s, a.c[1] * s, a.c[2] * s}}; }
/* (affine) * (affine); false when the product would pass degree 2 */
static bool p_mul(poly a, poly b, poly *r)
{
    if ((a.c[2] != 0 && (b.c[1] != 0 || b.c[2] != 0)) || (b.c[2] != 0 && a.c[1] != 0))
        return false;
    *r = (poly){{a.c[0] * b.c[0], a.c[0] * b.c[1] + a.c[1] * b.c[0], a.c[0] * b.c[2] + a.c[1] * b.c[1] + a.c[2] * b.c[0]}};
    return true;
}
/* p(N) >= 0 for every N >= 1: with M = N - 1 >= 0, every coefficient of p(M + 1) is >= 0 */
static bool p_nonneg(poly p)
{
    return p.c[0] + p.c[1] + p.c[2] >= 0 && p.c[1] + 2 * p.c[2] >= 0 && p.c[2] >= 0;
}

/* p(N) >= 0 for every N in [1, B], the batches the memory plan fits (B < 1: every N >= 1):
 * a quadratic's minimum over an interval is at an end or at its vertex */
static bool p_nonneg_upto(poly p, int64_t B)
{
    if (B < 1)
        return p_nonneg(p);
    double b = (double)B, at1 = p.c[0] + p.c[1] + p.c[2], atb = p.c[0] + p.c[1] * b + p.c[2] * b * b;
    if (at1 < 0 || atb < 0)
        return false;
    if (p.c[2] > 0) {
        double v = -p.c[1] / (2 * p.c[2]);
        if (v > 1 && v < b) {
            /* integer N only: the nearest integers to the vertex */
            for (double n = floor(v); n <= ceil(v); n++)
                if (p.c[0] + p.c[1] * n + p.c[2] * n * n < 0)
                    return false;
        }
    }
    return true;
}

/* The bytes [lo, hi) an access of a loop touches, relative to its region's base; false if
 * unknown (a stride that may be negative, or past degree 2). */
static bool touched(const cg_program *p, const cg_loop *l, const cg_access *a, poly *lo, poly *hi)
{
    const cg_buffer *b = &p->buffers[a->buffer];
    double esz = (double)mem_size(b->dtype);
    poly first = p_add(p_aff(b->offset), p_scale(p_aff(a->offset), esz)), last = first;
    for (int k = 0; k < l->rank; k++) {
        poly span, st = p_aff(a->stride[k]), ext = p_aff(l->extent[k]);
        ext.c[0] -= 1;
        if (!p_nonneg(st) || !p_nonneg(ext) || !p_mul(ext, st, &span))
            return false;
        last = p_add(last, p_scale(span, esz));
    }
    *lo = first;
    *hi = p_add(last, (poly){{esz, 0, 0}});
    return true;
}

/* ---- loops ---- */

/* One CG_LOOP step as an internal function of its buffers and N. */
typedef struct lp {
    em *E;
    const cg_loop *l;
    int nbuf;
    int32_t buf[CG_MAX_LOADS + CG_MAX_STORES]; /* program buffer of each parameter */
    LLVMValueRef arg[CG_MAX_LOADS + CG_MAX_STORES];
    LLVMValueRef N;
    LLVMValueRef extent[IR_MAX_RANK], index[IR_MAX_RANK];
    bool fill;            /* building the fill nest of a reduction */
    LLVMValueRef flat;    /* streaming loops: the flat element index every access is at (lp_stream) */
    bool stream_store;    /* streaming loops: stores are whole aligned vectors that bypass the cache */
    int split;            /* the axis that runs over [begin, end) only, -1: none */
    LLVMValueRef begin, end;
} lp;

static int lp_param(lp *L, int32_t buffer)
{
    for (int k = 0; k < L->nbuf; k++)
        if (L->buf[k] == buffer)
            return k;
    L->buf[L->nbuf] = buffer;
    return L->nbuf++;
}

/* the address of an access at the current indices */
static LLVMValueRef lp_addr(lp *L, const cg_access *a)
{
    em *E = L->E;
    const cg_buffer *b = &E->p->buffers[a->buffer];
    LLVMValueRef off = affine(E, a->offset, L->N);
    for (int k = 0; k < L->l->rank && L->flat; k++)
        if (a->stride[k].k || a->stride[k].n) { /* contiguous (lp_streamable): offset + flat */
            off = LLVMBuildNSWAdd(E->b, off, L->flat, "");
            break;
        }
    for (int k = 0; k < L->l->rank && !L->flat; k++) {
        cg_dim s = a->stride[k];
        if (s.k == 0 && s.n == 0)
            continue;
        LLVMValueRef t = s.k == 1 && s.n == 0 ? L->index[k] : LLVMBuildNSWMul(E->b, L->index[k], affine(E, s, L->N), "");
        off = LLVMBuildNSWAdd(E->b, off, t, "");
    }
    return gep(E, mem_type(E, b->dtype), L->arg[lp_param(L, a->buffer)], off);
}

/* W elements from addr on, aligned to one element */
static LLVMValueRef load_elem(em *E, ag_dtype t, LLVMValueRef addr)
{
    LLVMValueRef v = LLVMBuildLoad2(E->b, lanes(E, mem_type(E, t)), addr, "");
    LLVMSetAlignment(v, (unsigned)mem_size(t));
    return t == AG_BOOL ? LLVMBuildICmp(E->b, LLVMIntNE, v, LLVMConstNull(lanes(E, E->i8)), "") : v;
}

static LLVMValueRef store_elem(em *E, ag_dtype t, LLVMValueRef v, LLVMValueRef addr)
{
    if (t == AG_BOOL)
        v = LLVMBuildZExt(E->b, v, lanes(E, E->i8), "");
    LLVMValueRef st = LLVMBuildStore(E->b, v, addr);
    LLVMSetAlignment(st, (unsigned)mem_size(t));
    return st;
}

static bool is_broadcast(const cg_loop *l, const cg_access *a)
{
    for (int k = 0; k < l->rank; k++)
        if (a->stride[k].k || a->stride[k].n)
            return false;
    return true;
}

/* the loads of the body at the current indices; in vector code a broadcast element is
 * loaded once and copied to every lane */
static void lp_loads(lp *L, LLVMValueRef *load)
{
    em *E = L->E;
    const cg_loop *l = L->l;
    for (int k = 0; k < l->nloads; k++) {
        ag_dtype t = E->p->buffers[l->load[k].buffer].dtype;
        if (E->W > 1 && is_broadcast(l, &l->load[k])) {
            unsigned w = E->W;
            E->W = 1;
            LLVMValueRef one = load_elem(E, t, lp_addr(L, &l->load[k]));
            E->W = w;
            LLVMValueRef v = LLVMBuildInsertElement(E->b, LLVMGetUndef(LLVMVectorType(LLVMTypeOf(one), w)), one,
                                                    LLVMConstInt(E->i32, 0, 0), "");
            load[k] = LLVMBuildShuffleVector(E->b, v, LLVMGetUndef(LLVMTypeOf(v)),
                                             LLVMConstNull(LLVMVectorType(E->i32, w)), "");
        }
        else
            load[k] = load_elem(E, t, lp_addr(L, &l->load[k]));
    }
}

static void lp_finish(lp *L, LLVMValueRef *load);

/* the innermost body: loads, expressions, stores (or the fill of a reduction) */
static void lp_body(lp *L)
{
    em *E = L->E;
    const cg_loop *l = L->l;
    const cg_program *p = E->p;
    if (L->fill) {
        for (int s = 0; s < l->nstores; s++) {
            ag_dtype t = p->buffers[l->store[s].at.buffer].dtype;
            store_elem(E, t, constant(E, l->combine == IR_max ? -INFINITY : 0, t), lp_addr(L, &l->store[s].at));
        }
        return;
    }
    LLVMValueRef load[CG_MAX_LOADS];
    lp_loads(L, load);
    lp_finish(L, load);
}

/* the expressions over the loaded values, and the stores */
static void lp_finish(lp *L, LLVMValueRef *load)
{
    em *E = L->E;
    const cg_loop *l = L->l;
    const cg_program *p = E->p;
    LLVMValueRef val[CG_MAX_EXPRS];
    ag_dtype ldt[CG_MAX_LOADS];
    for (int k = 0; k < l->nloads; k++)
        ldt[k] = p->buffers[l->load[k].buffer].dtype;
    body B = {l->expr, l->nexprs, val, load, ldt, L->index, l->rank};
    if (!eval_exprs(E, &B))
        return;
    for (int s = 0; s < l->nstores; s++) {
        const cg_store *st = &l->store[s];
        if (st->expr < 0 || st->expr >= l->nexprs) {
            fail(E, "store %d: expression %d does not exist", s, (int)st->expr);
            return;
        }
        ag_dtype t = p->buffers[st->at.buffer].dtype;
        LLVMValueRef v = convert(E, val[st->expr], l->expr[st->expr].dtype, t), at = lp_addr(L, &st->at);
        if (l->reduce) {
            LLVMValueRef old = load_elem(E, t, at);
            if (l->combine == IR_sum && is_fp(t))
                v = LLVMBuildFAdd(E->b, old, v, "");
            else if (l->combine == IR_sum && t == AG_BOOL)
                v = LLVMBuildOr(E->b, old, v, "");
            else if (l->combine == IR_sum) { /* each step saturated, as codegen/exec.c stores it */
                LLVMTypeRef ty = LLVMTypeOf(v);
                LLVMValueRef two[] = {old, v};
                v = intrinsic(E, t == AG_I32 ? "llvm.sadd.sat" : "llvm.uadd.sat", &ty, 1, two, 2);
            }
            else if (is_fp(t)) /* v > acc || v != v: NaN wins */
                v = LLVMBuildSelect(E->b,
                                    LLVMBuildOr(E->b, LLVMBuildFCmp(E->b, LLVMRealOGT, v, old, ""),
                                                LLVMBuildFCmp(E->b, LLVMRealUNO, v, v, ""), ""),
                                    v, old, "");
            else
                v = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, t == AG_I32 ? LLVMIntSGT : LLVMIntUGT, v, old, ""), v,
                                    old, "");
        }
        LLVMValueRef stored = store_elem(E, t, v, at);
        if (L->stream_store) {
            LLVMSetAlignment(stored, (unsigned)mem_size(t) * E->W);
            LLVMMetadataRef one = LLVMValueAsMetadata(LLVMConstInt(E->i32, 1, 0));
            LLVMSetMetadata(stored, LLVMGetMDKindIDInContext(E->c, "nontemporal", 11),
                            LLVMMetadataAsValue(E->c, LLVMMDNodeInContext2(E->c, &one, 1)));
        }
    }
}

/* loops k..rank-1 around the body; in the fill nest reduced axes are left out (index 0) */
static void lp_nest(lp *L, int k)
{
    em *E = L->E;
    if (E->failed)
        return;
    if (k == L->l->rank) {
        lp_body(L);
        return;
    }
    if (L->fill && (L->l->reduce >> k & 1)) {
        L->index[k] = LLVMConstInt(E->i64, 0, 0);
        lp_nest(L, k + 1);
        return;
    }
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(E->b));
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(E->b);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(E->c, fn, "loop");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(E->c, fn, "done");
    LLVMValueRef zero = LLVMConstInt(E->i64, 0, 0), ext = L->extent[k];
    if (k == L->split)
        zero = L->begin, ext = L->end;
    LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntSGT, ext, zero, ""), head, done);
    LLVMPositionBuilderAtEnd(E->b, head);
    LLVMValueRef i = LLVMBuildPhi(E->b, E->i64, "i");
    L->index[k] = i;
    lp_nest(L, k + 1);
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(E->b);
    LLVMValueRef next = LLVMBuildNSWAdd(E->b, i, LLVMConstInt(E->i64, 1, 0), "");
    LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, next, ext, ""), head, done);
    LLVMValueRef in[] = {zero, next};
    LLVMBasicBlockRef from[] = {pre, latch};
    LLVMAddIncoming(i, in, from, 2);
    LLVMPositionBuilderAtEnd(E->b, done);
}

static bool check_access(em *E, const cg_access *a, const char *what, int k)
{
    if (a->buffer < 0 || a->buffer >= E->p->nbuffers) {
        fail(E, "%s %d: buffer %d does not exist", what, k, (int)a->buffer);
        return false;
    }
    if (!mem_type(E, E->p->buffers[a->buffer].dtype)) {
        fail(E, "%s %d: buffer %d has no storage dtype", what, k, (int)a->buffer);
        return false;
    }
    return true;
}

/* The region a buffer lives in: the arena, the parameters, or one caller tensor. */
static int64_t region_of(const cg_buffer *b)
{
    return b->region == CG_INPUT ? 2 + 2 * (int64_t)b->index : b->region == CG_OUTPUT ? 3 + 2 * (int64_t)b->index
                                                                                       : (int64_t)b->region;
}

/* Buffer parameter k of the loop is noalias when every other buffer it shares a region
 * with provably misses it, unless neither is written. */
static bool lp_noalias(lp *L, int k, const bool *written)
{
    const cg_program *p = L->E->p;
    const cg_loop *l = L->l;
    int nacc = l->nloads + l->nstores;
    for (int j = 0; j < L->nbuf; j++) {
        if (j == k || (!written[j] && !written[k]))
            continue;
        if (region_of(&p->buffers[L->buf[j]]) != region_of(&p->buffers[L->buf[k]]))
            continue;
        /* every access of j against every access of k */
        for (int x = 0; x < nacc; x++) {
            const cg_access *ax = x < l->nloads ? &l->load[x] : &l->store[x - l->nloads].at;
            if (ax->buffer != L->buf[k])
                continue;
            for (int y = 0; y < nacc; y++) {
                const cg_access *ay = y < l->nloads ? &l->load[y] : &l->store[y - l->nloads].at;
                if (ay->buffer != L->buf[j])
                    continue;
                poly lx, hx, ly, hy;
                if (!touched(p, l, ax, &lx, &hx) || !touched(p, l, ay, &ly, &hy))
                    return false;
                if (!p_nonneg(p_add(ly, p_scale(hx, -1))) && !p_nonneg(p_add(lx, p_scale(hy, -1))))
                    return false;
            }
        }
    }
    return true;
}

static LLVMValueRef declare(em *E, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n, LLVMTypeRef *ft);

/* Whether the loop may run as chunks of axis 0 on several threads, each chunk a slice of
 * rows computed as the single-threaded loop computes it: axis 0 is not reduced, every store
 * moves with axis 0 by at least the elements one row spans (so rows write disjoint elements),
 * and every other access in the store's region either touches the same bytes at the same
 * indices (an in-place update) or provably misses the bytes the store touches. */
static bool lp_splittable(lp *L)
{
    const cg_program *p = L->E->p;
    const cg_loop *l = L->l;
    if (l->rank < 1 || (l->reduce & 1))
        return false;
    int nacc = l->nloads + l->nstores;
    for (int s = 0; s < l->nstores; s++) {
        const cg_access *st = &l->store[s].at;
        const cg_buffer *sb = &p->buffers[st->buffer];
        /* rows apart: axis 0's stride at least the elements one row spans */
        poly gap = p_aff(st->stride[0]);
        gap.c[0] -= 1;
        for (int k = 1; k < l->rank; k++) {
            poly span, ext = p_aff(l->extent[k]), stk = p_aff(st->stride[k]);
            ext.c[0] -= 1;
            if (!p_nonneg(stk) || !p_mul(ext, stk, &span))
                return false;
            gap = p_add(gap, p_scale(span, -1));
        }
        if (!p_nonneg_upto(gap, p->max_batch))
            return false;
        int64_t esz = mem_size(sb->dtype);
        poly sbase = p_add(p_aff(sb->offset), p_scale(p_aff(st->offset), (double)esz));
        for (int x = 0; x < nacc; x++) {
            const cg_access *ax = x < l->nloads ? &l->load[x] : &l->store[x - l->nloads].at;
            const cg_buffer *xb = &p->buffers[ax->buffer];
            if (ax == st || region_of(xb) != region_of(sb))
                continue;
            /* the same bytes at the same indices (an in-place update, maybe through another
             * buffer at the same place), or bytes that provably miss the store's */
            int64_t xsz = mem_size(xb->dtype);
            poly xbase = p_add(p_aff(xb->offset), p_scale(p_aff(ax->offset), (double)xsz));
            bool same = xsz == esz && xbase.c[0] == sbase.c[0] && xbase.c[1] == sbase.c[1] && xbase.c[2] == sbase.c[2];
            for (int k = 0; k < l->rank && same; k++)
                same = memcmp(&ax->stride[k], &st->stride[k], sizeof st->stride[k]) == 0;
            if (same)
                continue;
            poly lx, hx, ls, hs;
            if (!touched(p, l, ax, &lx, &hx) || !touched(p, l, st, &ls, &hs))
                return false;
            if (!p_nonneg_upto(p_add(ls, p_scale(hx, -1)), p->max_batch) &&
                !p_nonneg_upto(p_add(lx, p_scale(hs, -1)), p->max_batch))
                return false;
        }
    }
    return true;
}

/* ---- streaming loops ----
 *
 * An elementwise loop over arrays much larger than the caches is bound by memory bandwidth.
 * Ordinary stores first read each output line they write (read-for-ownership: a third
 * stream), and one sequential stream per array leaves the core's line-fill buffers idle.
 * So such a loop runs as glibc's large memcpy does: its stores are aligned 32-byte vectors
 * that bypass the cache (!nontemporal), and it walks STREAM_PAGES pages of each array at
 * once, loading a few vectors from each page before computing and storing them. With a
 * 64 MiB relu chain this took the loop from about 60% of memcpy's bandwidth to past it
 * (bench/README.md). The results are the same bits: only the order of memory traffic
 * changes. */
#define STREAM_MIN_BYTES ((int64_t)16 << 20) /* output bytes; well past L2, most of a core's LLC share */
#define STREAM_LANES 8                       /* 4-byte elements per 32-byte vector */
#define STREAM_PAGE 1024                     /* 4-byte elements per 4 KiB page */
#define STREAM_PAGES 4
#define STREAM_VECTORS 16                    /* vectors in flight per step, loads of all inputs */

/* access a walks the loop's index space in row-major order: element f of the flattened
 * space is at offset + f */
static bool is_contiguous(const cg_loop *l, const cg_access *a)
{
    poly want = {{1, 0, 0}};
    for (int k = l->rank - 1; k >= 0; k--) {
        poly st = p_aff(a->stride[k]);
        if (st.c[0] != want.c[0] || st.c[1] != want.c[1] || st.c[2] != want.c[2])
            return false;
        if (k > 0 && !p_mul(want, p_aff(l->extent[k]), &want))
            return false;
    }
    return true;
}

/* Whether the loop can take the streaming path: elementwise (no reduction, no index values),
 * one 4-byte output walked contiguously, every load contiguous or one broadcast element, and
 * the output missing every other buffer or read in place at exactly the stored elements. */
static bool lp_streamable(lp *L, const bool *written)
{
    const cg_loop *l = L->l;
    const cg_program *p = L->E->p;
    if (l->reduce || l->rank < 1 || l->nstores != 1)
        return false;
    const cg_access *st = &l->store[0].at;
    if (mem_size(p->buffers[st->buffer].dtype) != 4 || !is_contiguous(l, st))
        return false;
    for (int e = 0; e < l->nexprs; e++)
        if (l->expr[e].kind == CG_E_INDEX)
            return false;
    for (int k = 0; k < l->nloads; k++) {
        const cg_access *a = &l->load[k];
        if (!is_contiguous(l, a) && !is_broadcast(l, a))
            return false;
        if (a->buffer == st->buffer && (memcmp(&a->offset, &st->offset, sizeof a->offset) != 0 || !is_contiguous(l, a)))
            return false;
    }
    return lp_noalias(L, lp_param(L, st->buffer), written);
}

typedef void flat_body(lp *L, LLVMValueRef i, void *ctx);

/* for (i = from; to - i >= step; i += step) body(i); the value of i after the loop */
static LLVMValueRef counted(lp *L, LLVMValueRef from, LLVMValueRef to, int64_t step, flat_body *body, void *ctx)
{
    em *E = L->E;
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(E->b)), k = LLVMConstInt(E->i64, (unsigned long long)step, 0);
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(E->b);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(E->c, fn, "stream");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(E->c, fn, "stream.done");
    LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntSGE, LLVMBuildNSWSub(E->b, to, from, ""), k, ""), head, done);
    LLVMPositionBuilderAtEnd(E->b, head);
    LLVMValueRef i = LLVMBuildPhi(E->b, E->i64, "f");
    body(L, i, ctx);
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(E->b);
    LLVMValueRef next = LLVMBuildNSWAdd(E->b, i, k, "");
    LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntSGE, LLVMBuildNSWSub(E->b, to, next, ""), k, ""), head, done);
    LLVMValueRef in[] = {from, next};
    LLVMBasicBlockRef bb[] = {pre, latch};
    LLVMAddIncoming(i, in, bb, 2);
    LLVMPositionBuilderAtEnd(E->b, done);
    LLVMValueRef after = LLVMBuildPhi(E->b, E->i64, "");
    LLVMAddIncoming(after, in, bb, 2);
    return after;
}

/* one element (W = 1) or one aligned vector (W = STREAM_LANES) at flat index i */
static void stream_one(lp *L, LLVMValueRef i, void *vector)
{
    em *E = L->E;
    E->W = vector ? STREAM_LANES : 1;
    L->stream_store = vector != NULL;
    L->flat = i;
    lp_body(L);
    E->W = 1;
    L->stream_store = false;
}

/* one step of a block: `per` vectors from each of the STREAM_PAGES pages at block + j */
typedef struct stream_block {
    LLVMValueRef block;
    int per;
} stream_block;

static void stream_step(lp *L, LLVMValueRef j, void *ctx)
{
    em *E = L->E;
    const stream_block *sb = ctx;
    enum { MAXV = STREAM_PAGES * STREAM_VECTORS };
    LLVMValueRef at[MAXV], load[MAXV][CG_MAX_LOADS];
    int n = STREAM_PAGES * sb->per;
    E->W = STREAM_LANES;
    for (int v = 0; v < n; v++) {
        int64_t off = (int64_t)(v / sb->per) * STREAM_PAGE + (int64_t)(v % sb->per) * STREAM_LANES;
        at[v] = LLVMBuildNSWAdd(E->b, LLVMBuildNSWAdd(E->b, sb->block, j, ""), LLVMConstInt(E->i64, (unsigned long long)off, 0), "");
        L->flat = at[v];
        lp_loads(L, load[v]);
    }
    L->stream_store = true;
    for (int v = 0; v < n; v++) {
        L->flat = at[v];
        lp_finish(L, load[v]);
    }
    L->stream_store = false;
    E->W = 1;
}

static void stream_block_body(lp *L, LLVMValueRef block, void *per)
{
    stream_block sb = {block, *(int *)per};
    counted(L, LLVMConstInt(L->E->i64, 0, 0), LLVMConstInt(L->E->i64, STREAM_PAGE, 0), (int64_t)sb.per * STREAM_LANES,
            stream_step, &sb);
}

/* flat elements [lo, hi): single elements up to the first 32-byte boundary of the output,
 * blocks of STREAM_PAGES pages, single vectors, single elements; then a fence, as the
 * streamed stores are not ordered with the ones that publish the work as done */
static void lp_stream(lp *L, LLVMValueRef lo, LLVMValueRef hi)
{
    em *E = L->E;
    L->flat = lo;
    LLVMValueRef a = LLVMBuildPtrToInt(E->b, lp_addr(L, &L->l->store[0].at), E->i64, "");
    LLVMValueRef head = LLVMBuildLShr(
        E->b, LLVMBuildAnd(E->b, LLVMBuildNeg(E->b, a, ""), LLVMConstInt(E->i64, 4 * STREAM_LANES - 1, 0), ""),
        LLVMConstInt(E->i64, 2, 0), "");
    LLVMValueRef n = LLVMBuildNSWSub(E->b, hi, lo, "");
    head = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, head, n, ""), head, n, "");
    counted(L, lo, LLVMBuildNSWAdd(E->b, lo, head, ""), 1, stream_one, NULL);
    int loads = 0;
    for (int k = 0; k < L->l->nloads; k++)
        loads += !is_broadcast(L->l, &L->l->load[k]);
    int per = STREAM_VECTORS / STREAM_PAGES / (loads > 0 ? loads : 1);
    per = per < 1 ? 1 : per;
    LLVMValueRef i = counted(L, LLVMBuildNSWAdd(E->b, lo, head, ""), hi, STREAM_PAGES * STREAM_PAGE, stream_block_body, &per);
    i = counted(L, i, hi, STREAM_LANES, stream_one, L);
    counted(L, i, hi, 1, stream_one, NULL);
    L->flat = NULL;
    LLVMBuildFence(E->b, LLVMAtomicOrderingSequentiallyConsistent, 0, "");
}

/* Threaded loops: a loop of fewer elements than this runs inline; a chunk holds at least
 * CHUNK_ELEMS elements (about 32 KiB of f32), whole rows of axis 0. Both depend on N only,
 * never on the thread count, so the chunks (and the bits) are the same for every pool. */
#define PAR_MIN_ELEMS 16384
#define CHUNK_ELEMS 8192

static LLVMValueRef emit_loop(em *E, const cg_loop *l, int step, LLVMValueRef (*addr)(em *, int32_t, void *),
                              void *actx, LLVMValueRef N, LLVMValueRef pool)
{
    if (l->rank < 0 || l->rank > IR_MAX_RANK || l->nloads < 0 || l->nloads > CG_MAX_LOADS || l->nexprs < 0 ||
        l->nexprs > CG_MAX_EXPRS || l->nstores < 0 || l->nstores > CG_MAX_STORES) {
        fail(E, "step %d: loop counts out of range", step);
        return NULL;
    }
    if (l->reduce && l->combine != IR_sum && l->combine != IR_max) {
        fail(E, "step %d: reduction by %s (sum or max expected)", step, op_name(l->combine));
        return NULL;
    }
    lp L = {.E = E, .l = l, .split = -1};
    bool written[CG_MAX_LOADS + CG_MAX_STORES] = {false};
    for (int k = 0; k < l->nloads; k++)
        if (!check_access(E, &l->load[k], "load", k))
            return NULL;
        else
            lp_param(&L, l->load[k].buffer);
    for (int k = 0; k < l->nstores; k++)
        if (!check_access(E, &l->store[k].at, "store", k))
            return NULL;
        else
            written[lp_param(&L, l->store[k].at.buffer)] = true;
    bool split = pool && lp_splittable(&L);
    unsigned nparams = (unsigned)L.nbuf + 1 + (split ? 2 : 0);

    LLVMTypeRef params[CG_MAX_LOADS + CG_MAX_STORES + 3];
    for (int k = 0; k < L.nbuf; k++)
        params[k] = E->ptr;
    params[L.nbuf] = E->i64;
    params[L.nbuf + 1] = params[L.nbuf + 2] = E->i64;
    char name[256];
    snprintf(name, sizeof name, "%s.loop%d", E->p->name, step);
    LLVMTypeRef fn_t = LLVMFunctionType(E->vd, params, nparams, 0);
    LLVMValueRef fn = LLVMAddFunction(E->m, name, fn_t);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(E->c, nounwind, 0));
    for (int k = 0; k < L.nbuf; k++) {
        L.arg[k] = LLVMGetParam(fn, (unsigned)k);
        if (lp_noalias(&L, k, written))
            LLVMAddAttributeAtIndex(fn, (unsigned)k + 1, LLVMCreateEnumAttribute(E->c, noalias, 0));
    }
    L.N = LLVMGetParam(fn, (unsigned)L.nbuf);
    if (split) {
        L.split = 0;
        L.begin = LLVMGetParam(fn, (unsigned)L.nbuf + 1);
        L.end = LLVMGetParam(fn, (unsigned)L.nbuf + 2);
    }

    /* the call, from the entry */
    LLVMValueRef args[CG_MAX_LOADS + CG_MAX_STORES + 3];
    for (int k = 0; k < L.nbuf; k++)
        args[k] = addr(E, L.buf[k], actx);
    args[L.nbuf] = N;
    LLVMBasicBlockRef back = LLVMGetInsertBlock(E->b);
    if (!split)
        LLVMBuildCall2(E->b, fn_t, fn, args, nparams, "");
    else {
        /* rows = extent 0, inner = the other extents' product; the pool when it has enough work */
        LLVMValueRef rows = affine(E, l->extent[0], N), inner = LLVMConstInt(E->i64, 1, 0);
        for (int k = 1; k < l->rank; k++)
            inner = LLVMBuildNSWMul(E->b, inner, affine(E, l->extent[k], N), "");
        LLVMValueRef total = LLVMBuildNSWMul(E->b, rows, inner, "");
        LLVMValueRef big = LLVMBuildAnd(
            E->b, LLVMBuildICmp(E->b, LLVMIntNE, pool, LLVMConstNull(E->ptr), ""),
            LLVMBuildICmp(E->b, LLVMIntSGE, total, LLVMConstInt(E->i64, PAR_MIN_ELEMS, 0), ""), "");
        LLVMValueRef entry_fn = LLVMGetBasicBlockParent(back);
        LLVMBasicBlockRef par = LLVMAppendBasicBlockInContext(E->c, entry_fn, "par");
        LLVMBasicBlockRef ser = LLVMAppendBasicBlockInContext(E->c, entry_fn, "ser");
        LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(E->c, entry_fn, "par.done");
        LLVMBuildCondBr(E->b, big, par, ser);

        LLVMPositionBuilderAtEnd(E->b, ser);
        args[L.nbuf + 1] = LLVMConstInt(E->i64, 0, 0);
        args[L.nbuf + 2] = rows;
        LLVMBuildCall2(E->b, fn_t, fn, args, nparams, "");
        LLVMBuildBr(E->b, done);

        /* the context: { ptr buffers..., i64 N }, in the entry block's frame */
        LLVMTypeRef ctx_f[CG_MAX_LOADS + CG_MAX_STORES + 1];
        for (int k = 0; k < L.nbuf; k++)
            ctx_f[k] = E->ptr;
        ctx_f[L.nbuf] = E->i64;
        LLVMTypeRef ctx_t = LLVMStructTypeInContext(E->c, ctx_f, (unsigned)L.nbuf + 1, 0);
        LLVMBasicBlockRef first = LLVMGetEntryBasicBlock(entry_fn);
        LLVMValueRef at = LLVMGetFirstInstruction(first);
        LLVMBuilderRef fb = LLVMCreateBuilderInContext(E->c);
        if (at)
            LLVMPositionBuilderBefore(fb, at);
        else
            LLVMPositionBuilderAtEnd(fb, first);
        LLVMValueRef ctx = LLVMBuildAlloca(fb, ctx_t, "loop.ctx");
        LLVMDisposeBuilder(fb);

        LLVMPositionBuilderAtEnd(E->b, par);
        for (int k = 0; k <= L.nbuf; k++)
            LLVMBuildStore(E->b, args[k], LLVMBuildStructGEP2(E->b, ctx_t, ctx, (unsigned)k, ""));
        /* grain: ceil(CHUNK_ELEMS / inner) rows, at least 1 (inner >= 1 here: total > 0) */
        LLVMValueRef grain = LLVMBuildSDiv(
            E->b, LLVMBuildNSWAdd(E->b, inner, LLVMConstInt(E->i64, CHUNK_ELEMS - 1, 0), ""), inner, "");

        /* the trampoline: void NAME.loopK.chunk(void *ctx, int64_t begin, int64_t end) */
        LLVMTypeRef cp[] = {E->ptr, E->i64, E->i64};
        LLVMTypeRef chunk_t = LLVMFunctionType(E->vd, cp, 3, 0);
        snprintf(name, sizeof name, "%s.loop%d.chunk", E->p->name, step);
        LLVMValueRef chunk = LLVMAddFunction(E->m, name, chunk_t);
        LLVMSetLinkage(chunk, LLVMInternalLinkage);
        LLVMAddAttributeAtIndex(chunk, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(E->c, nounwind, 0));

        LLVMTypeRef pf[] = {E->ptr, E->i64, E->i64, E->ptr, E->ptr};
        LLVMTypeRef pf_t;
        LLVMValueRef pfor = declare(E, "rt_parallel_for", E->vd, pf, 5, &pf_t);
        LLVMValueRef pa[] = {pool, rows, grain, chunk, ctx};
        LLVMBuildCall2(E->b, pf_t, pfor, pa, 5, "");
        LLVMBuildBr(E->b, done);
        back = done;

        LLVMPositionBuilderAtEnd(E->b, LLVMAppendBasicBlockInContext(E->c, chunk, "entry"));
        LLVMValueRef cctx = LLVMGetParam(chunk, 0), cargs[CG_MAX_LOADS + CG_MAX_STORES + 3];
        for (int k = 0; k <= L.nbuf; k++)
            cargs[k] = LLVMBuildLoad2(E->b, ctx_f[k], LLVMBuildStructGEP2(E->b, ctx_t, cctx, (unsigned)k, ""), "");
        cargs[L.nbuf + 1] = LLVMGetParam(chunk, 1);
        cargs[L.nbuf + 2] = LLVMGetParam(chunk, 2);
        LLVMBuildCall2(E->b, fn_t, fn, cargs, nparams, "");
        LLVMBuildRetVoid(E->b);
    }

    LLVMPositionBuilderAtEnd(E->b, LLVMAppendBasicBlockInContext(E->c, fn, "entry"));
    for (int k = 0; k < l->rank; k++)
        L.extent[k] = affine(E, l->extent[k], L.N);
    if (l->reduce) {
        L.fill = true;
        lp_nest(&L, 0);
        L.fill = false;
    }
    if (lp_streamable(&L, written)) {
        /* flat [lo, hi): the rows [begin, end) of a chunk, or all; streamed when the whole
         * output is large (so every chunk of a loop takes the same path) */
        LLVMValueRef inner = LLVMConstInt(E->i64, 1, 0);
        for (int k = 1; k < l->rank; k++)
            inner = LLVMBuildNSWMul(E->b, inner, L.extent[k], "");
        LLVMValueRef total = LLVMBuildNSWMul(E->b, L.extent[0], inner, "");
        LLVMValueRef lo = split ? LLVMBuildNSWMul(E->b, L.begin, inner, "") : LLVMConstInt(E->i64, 0, 0);
        LLVMValueRef hi = split ? LLVMBuildNSWMul(E->b, L.end, inner, "") : total;
        LLVMBasicBlockRef big = LLVMAppendBasicBlockInContext(E->c, fn, "streamed");
        LLVMBasicBlockRef small = LLVMAppendBasicBlockInContext(E->c, fn, "cached");
        LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntSGE, total, LLVMConstInt(E->i64, STREAM_MIN_BYTES / 4, 0), ""),
                        big, small);
        LLVMPositionBuilderAtEnd(E->b, big);
        lp_stream(&L, lo, hi);
        LLVMBuildRetVoid(E->b);
        LLVMPositionBuilderAtEnd(E->b, small);
    }
    lp_nest(&L, 0);
    LLVMBuildRetVoid(E->b);
    LLVMPositionBuilderAtEnd(E->b, back);
    return fn;
}

/* ---- the entry point ---- */

LLVMTypeRef cg_args_type(LLVMContextRef c)
{
    LLVMTypeRef ptr = LLVMPointerTypeInContext(c, 0), i64 = LLVMInt64TypeInContext(c);
    LLVMTypeRef f[] = {ptr, ptr, ptr, ptr, i64, LLVMInt32TypeInContext(c), i64, ptr, ptr};
    return LLVMStructTypeInContext(c, f, 9, 0);
}

typedef struct entry {
    LLVMTypeRef args_t;
    LLVMValueRef a, N, arena, params, inputs, outputs, pool, profile;
    LLVMValueRef *addr; /* per buffer, built on first use */
} entry;

static LLVMValueRef field(em *E, entry *X, unsigned k, LLVMTypeRef t)
{
    LLVMValueRef p = LLVMBuildStructGEP2(E->b, X->args_t, X->a, k, "");
    return LLVMBuildLoad2(E->b, t, p, "");
}

/* a buffer's address: its region's base plus its byte offset */
static LLVMValueRef buffer_addr(em *E, int32_t i, void *ctx)
{
    entry *X = ctx;
    if (X->addr[i])
        return X->addr[i];
    const cg_buffer *b = &E->p->buffers[i];
    LLVMValueRef base;
    switch (b->region) {
    case CG_ARENA: base = X->arena; break;
    case CG_PARAMS: base = X->params; break;
    case CG_INPUT:
    case CG_OUTPUT: {
        if (b->index < 0 || b->index >= (b->region == CG_INPUT ? E->p->ninputs : E->p->noutputs)) {
            fail(E, "buffer %d: %s %d does not exist", (int)i, b->region == CG_INPUT ? "input" : "output",
                 (int)b->index);
            return LLVMConstNull(E->ptr);
        }
        LLVMValueRef slot =
            gep(E, E->ptr, b->region == CG_INPUT ? X->inputs : X->outputs, LLVMConstInt(E->i64, (unsigned)b->index, 0));
        base = LLVMBuildLoad2(E->b, E->ptr, slot, "");
        break;
    }
    default: fail(E, "buffer %d: unknown region %d", (int)i, (int)b->region); return LLVMConstNull(E->ptr);
    }
    if (b->offset.k || b->offset.n)
        base = gep(E, E->i8, base, affine(E, b->offset, X->N));
    return X->addr[i] = base;
}

/* the address of an access's offset (elements of its buffer's dtype) */
static LLVMValueRef access_addr(em *E, entry *X, const cg_access *a)
{
    if (!check_access(E, a, "access", 0))
        return LLVMConstNull(E->ptr);
    LLVMValueRef base = buffer_addr(E, a->buffer, X);
    if (!a->offset.k && !a->offset.n)
        return base;
    return gep(E, mem_type(E, E->p->buffers[a->buffer].dtype), base, affine(E, a->offset, X->N));
}

static LLVMValueRef declare(em *E, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n, LLVMTypeRef *ft)
{
    *ft = LLVMFunctionType(ret, params, (unsigned)n, 0);
    LLVMValueRef f = LLVMGetNamedFunction(E->m, name);
    return f ? f : LLVMAddFunction(E->m, name, *ft);
}

static void emit_gemm(em *E, entry *X, const cg_gemm *g, int step)
{
    if (g->nexprs < 0 || g->nexprs > 16 || g->nloads < 0 || g->nloads > 4 || g->alpha < 0 || g->alpha >= g->nexprs ||
        g->beta < 0 || g->beta >= g->nexprs) {
        fail(E, "step %d (gemm): bad scalar expressions", step);
        return;
    }
    LLVMValueRef load[4], val[16];
    ag_dtype ldt[4];
    for (int k = 0; k < g->nloads; k++) {
        if (!check_access(E, &g->load[k], "gemm load", k))
            return;
        ldt[k] = E->p->buffers[g->load[k].buffer].dtype;
        load[k] = load_elem(E, ldt[k], access_addr(E, X, &g->load[k]));
    }
    body B = {g->expr, g->nexprs, val, load, ldt, NULL, 0};
    if (!eval_exprs(E, &B))
        return;
    LLVMValueRef alpha = convert(E, val[g->alpha], g->expr[g->alpha].dtype, AG_F32);
    LLVMValueRef beta = convert(E, val[g->beta], g->expr[g->beta].dtype, AG_F32);
    LLVMValueRef M = affine(E, g->m, X->N), N = affine(E, g->n, X->N), K = affine(E, g->k, X->N);
    LLVMValueRef A = access_addr(E, X, &g->a), Bp = access_addr(E, X, &g->b), C = access_addr(E, X, &g->c);
    /* blasint is int (OpenBLAS without INTERFACE64) */
    LLVMValueRef m32 = LLVMBuildTrunc(E->b, M, E->i32, ""), n32 = LLVMBuildTrunc(E->b, N, E->i32, "");
    LLVMValueRef k32 = LLVMBuildTrunc(E->b, K, E->i32, "");
    LLVMValueRef i32k[3] = {LLVMConstInt(E->i32, 101, 0), LLVMConstInt(E->i32, g->ta ? 112 : 111, 0),
                            LLVMConstInt(E->i32, g->tb ? 112 : 111, 0)};
    LLVMTypeRef pt[] = {E->i32, E->i32, E->i32, E->i32, E->i32, E->i32, E->f32, E->ptr,
                        E->i32, E->ptr, E->i32, E->f32, E->ptr, E->i32};
    LLVMTypeRef ft;
    LLVMValueRef fn = declare(E, "cblas_sgemm", E->vd, pt, 14, &ft);
    LLVMValueRef args[] = {i32k[0], i32k[1], i32k[2], m32, n32, k32, alpha, A,
                           g->ta ? m32 : k32, Bp, g->tb ? k32 : n32, beta, C, n32};
    /* skipped when the product is empty: lda etc. would be 0, which sgemm rejects */
    LLVMValueRef zero = LLVMConstInt(E->i64, 0, 0);
    LLVMValueRef any = LLVMBuildAnd(E->b, LLVMBuildICmp(E->b, LLVMIntSGT, M, zero, ""),
                                    LLVMBuildAnd(E->b, LLVMBuildICmp(E->b, LLVMIntSGT, N, zero, ""),
                                                 LLVMBuildICmp(E->b, LLVMIntSGT, K, zero, ""), ""),
                                    "");
    LLVMValueRef fnv = LLVMGetBasicBlockParent(LLVMGetInsertBlock(E->b));
    LLVMBasicBlockRef call = LLVMAppendBasicBlockInContext(E->c, fnv, "gemm");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(E->c, fnv, "gemm.done");
    LLVMBuildCondBr(E->b, any, call, done);
    LLVMPositionBuilderAtEnd(E->b, call);
    LLVMBuildCall2(E->b, ft, fn, args, 14, "");
    LLVMBuildBr(E->b, done);
    LLVMPositionBuilderAtEnd(E->b, done);
}

static void emit_call(em *E, entry *X, const cg_call *c, int step)
{
    if (c->nargs < 0 || c->nargs > 4) {
        fail(E, "step %d (%s): %d arguments", step, op_name(c->op), (int)c->nargs);
        return;
    }
    LLVMValueRef arg[4];
    ag_dtype dt[4] = {AG_F32, AG_F32, AG_F32, AG_F32};
    for (int k = 0; k < c->nargs; k++) {
        if (!check_access(E, &c->arg[k], "call argument", k))
            return;
        arg[k] = access_addr(E, X, &c->arg[k]);
        dt[k] = E->p->buffers[c->arg[k].buffer].dtype;
    }
    LLVMValueRef rows = affine(E, c->rows, X->N), len = affine(E, c->len, X->N), inner = affine(E, c->inner, X->N);
    LLVMTypeRef P = E->ptr, I = E->i64, ft;
    const char *name = NULL;
    int want = 0;
    LLVMValueRef fn = NULL;
    switch (c->op) {
    case IR_softmax:
    case IR_log_softmax:
    case IR_argmax:
    case IR_cumsum: {
        want = 2;
        name = c->op == IR_softmax       ? "rt_softmax"
               : c->op == IR_log_softmax ? "rt_log_softmax"
               : c->op == IR_argmax      ? (dt[0] == AG_I32 ? "rt_argmax_i32" : "rt_argmax")
                                         : (dt[0] == AG_I32 ? "rt_cumsum_i32" : "rt_cumsum_f32");
        if (c->nargs != want)
            break;
        LLVMTypeRef pt[] = {P, P, I, I, I};
        fn = declare(E, name, E->vd, pt, 5, &ft);
        LLVMValueRef a[] = {arg[0], arg[1], rows, len, inner};
        LLVMBuildCall2(E->b, ft, fn, a, 5, "");
        return;
    }
    case IR_softmax_ce: {
        want = 3;
        if (c->nargs != want)
            break;
        LLVMTypeRef pt[] = {P, P, P, I, I};
        fn = declare(E, "rt_softmax_ce", E->vd, pt, 5, &ft);
        LLVMValueRef a[] = {arg[0], arg[1], arg[2], rows, len};
        LLVMBuildCall2(E->b, ft, fn, a, 5, "");
        return;
    }
    case IR_softmax_ce_grad: {
        want = 4;
        if (c->nargs != want)
            break;
        LLVMTypeRef pt[] = {P, P, P, P, I, I};
        fn = declare(E, "rt_softmax_ce_grad", E->vd, pt, 6, &ft);
        LLVMValueRef a[] = {arg[0], arg[1], arg[2], arg[3], rows, len};
        LLVMBuildCall2(E->b, ft, fn, a, 6, "");
        return;
    }
    case IR_dropout: {
        want = 2;
        if (c->nargs != want)
            break;
        LLVMTypeRef pt[] = {P, P, I, E->f64, E->i32, E->i32, I, I};
        fn = declare(E, "rt_dropout", E->vd, pt, 8, &ft);
        LLVMValueRef n = LLVMBuildNSWMul(E->b, LLVMBuildNSWMul(E->b, rows, len, ""), inner, "");
        LLVMValueRef seed = field(E, X, 5, E->i32), stp = field(E, X, 6, E->i64);
        LLVMValueRef a[] = {arg[0], arg[1], n, LLVMConstReal(E->f64, c->p), seed,
                            LLVMConstInt(E->i32, (unsigned)c->site, 0), stp, LLVMConstInt(E->i64, 0, 0)};
        LLVMBuildCall2(E->b, ft, fn, a, 8, "");
        return;
    }
    default: fail(E, "step %d: no runtime routine for %s", step, op_name(c->op)); return;
    }
    fail(E, "step %d (%s): %d arguments, %d expected", step, op_name(c->op), (int)c->nargs, want);
}

/* if (a->profile) rt_profile_mark(a->profile, step): bench's per-step times */
static void profile_mark(em *E, entry *X, int32_t step)
{
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(E->b));
    LLVMBasicBlockRef call = LLVMAppendBasicBlockInContext(E->c, fn, "profile");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(E->c, fn, "profile.done");
    LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntNE, X->profile, LLVMConstNull(E->ptr), ""), call, done);
    LLVMPositionBuilderAtEnd(E->b, call);
    LLVMTypeRef pt[] = {E->ptr, E->i32}, ft;
    LLVMValueRef mark = declare(E, "rt_profile_mark", E->vd, pt, 2, &ft);
    LLVMValueRef args[] = {X->profile, LLVMConstInt(E->i32, (unsigned long long)(int64_t)step, 1)};
    LLVMBuildCall2(E->b, ft, mark, args, 2, "");
    LLVMBuildBr(E->b, done);
    LLVMPositionBuilderAtEnd(E->b, done);
}

LLVMModuleRef cg_emit_module(const cg_program *p, LLVMContextRef ctx, cg_target *t, char *err, size_t len)
{
    em E = {.c = ctx, .p = p, .err = err, .len = len};
    if (err && len)
        err[0] = 0;
    if (!p || !p->name || !*p->name || p->nsteps < 0 || p->nbuffers < 0) {
        fail(&E, "cg_emit_module: no program");
        return NULL;
    }
    E.m = LLVMModuleCreateWithNameInContext(p->name, ctx);
    if (t)
        cg_target_prepare(t, E.m);
    E.b = LLVMCreateBuilderInContext(ctx);
    E.f32 = LLVMFloatTypeInContext(ctx), E.f64 = LLVMDoubleTypeInContext(ctx);
    E.i1 = LLVMInt1TypeInContext(ctx), E.i8 = LLVMInt8TypeInContext(ctx);
    E.i32 = LLVMInt32TypeInContext(ctx), E.i64 = LLVMInt64TypeInContext(ctx);
    E.ptr = LLVMPointerTypeInContext(ctx, 0), E.vd = LLVMVoidTypeInContext(ctx);

    entry X = {.args_t = cg_args_type(ctx)};
    X.addr = calloc((size_t)p->nbuffers + 1, sizeof *X.addr);
    LLVMValueRef fn = LLVMAddFunction(E.m, p->name, LLVMFunctionType(E.vd, &E.ptr, 1, 0));
    LLVMPositionBuilderAtEnd(E.b, LLVMAppendBasicBlockInContext(ctx, fn, "entry"));
    X.a = LLVMGetParam(fn, 0);
    X.arena = field(&E, &X, 0, E.ptr);
    X.params = field(&E, &X, 1, E.ptr);
    X.inputs = field(&E, &X, 2, E.ptr);
    X.outputs = field(&E, &X, 3, E.ptr);
    X.N = field(&E, &X, 4, E.i64);
    X.pool = field(&E, &X, 7, E.ptr);
    X.profile = field(&E, &X, 8, E.ptr);
    if (!X.addr)
        fail(&E, "out of memory");
    profile_mark(&E, &X, -1);
    for (int s = 0; s < p->nsteps && !E.failed; s++) {
        const cg_step *st = &p->steps[s];
        switch (st->kind) {
        case CG_LOOP: emit_loop(&E, &st->loop, s, buffer_addr, &X, X.N, X.pool); break;
        case CG_GEMM: emit_gemm(&E, &X, &st->gemm, s); break;
        case CG_CALL: emit_call(&E, &X, &st->call, s); break;
        default: fail(&E, "step %d: unknown kind %d", s, (int)st->kind);
        }
        profile_mark(&E, &X, s);
    }
    LLVMBuildRetVoid(E.b);
    LLVMDisposeBuilder(E.b);
    free(X.addr);
    if (E.failed) {
        LLVMDisposeModule(E.m);
        return NULL;
    }
    return E.m;
}
