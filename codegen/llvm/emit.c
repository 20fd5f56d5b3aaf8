/* The LLVM backend's code for a cg_program (see emit.h): the emitter's types and
 * conversions, expressions over the op table, affine values and elements in memory; the
 * loops are in emit_loop.c, the entry point and its calls in emit_entry.c.
 *
 * Elementwise ops are built from the op table: the S_ macros of ir/scalar.h are defined here
 * as builder calls over a compute type (float or double), and IR_OPS's EW rows expand into
 * one builder function per op (ew_NAME), so a new elementwise row needs no change here.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <llvm-c/Core.h>

#include "emit_internal.h"

/* ---- names ---- */

const char *em_op_name(ir_op op)
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
LLVMTypeRef em_mem_type(em *E, ag_dtype t) { return t == AG_BOOL ? E->i8 : scalar_type(E, t); }
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
int64_t em_mem_size(ag_dtype t) { return t == AG_F64 ? 8 : t == AG_F32 || t == AG_I32 ? 4 : 1; }
bool em_is_fp(ag_dtype t) { return t == AG_F32 || t == AG_F64; }

LLVMValueRef em_intrinsic(em *E, const char *name, LLVMTypeRef *over, int nover, LLVMValueRef *args, int nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    assert(id && "intrinsic missing from LLVM");
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(E->m, id, over, (size_t)nover);
    LLVMTypeRef ty = LLVMIntrinsicGetType(E->c, id, over, (size_t)nover);
    return LLVMBuildCall2(E->b, ty, fn, args, (unsigned)nargs, "");
}

/* v, a value of dtype from, as dtype to (F64 standing for the compute type double) */
LLVMValueRef em_convert(em *E, LLVMValueRef v, ag_dtype from, ag_dtype to)
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
            return em_convert(E, x, AG_F32, to);
        if (o == LLVMSIToFP && xt == val_type(E, AG_I32))
            return em_convert(E, x, AG_I32, to);
        if (o == LLVMUIToFP && (xt == val_type(E, AG_U8) || xt == val_type(E, AG_BOOL)))
            return em_convert(E, x, xt == val_type(E, AG_U8) ? AG_U8 : AG_BOOL, to);
    }
    LLVMTypeRef T = val_type(E, to);
    if (em_is_fp(to)) {
        if (em_is_fp(from))
            return to == AG_F64 ? LLVMBuildFPExt(E->b, v, T, "") : LLVMBuildFPTrunc(E->b, v, T, "");
        return from == AG_I32 ? LLVMBuildSIToFP(E->b, v, T, "") : LLVMBuildUIToFP(E->b, v, T, "");
    }
    if (to == AG_BOOL)
        return em_is_fp(from) ? LLVMBuildFCmp(E->b, LLVMRealUNE, v, LLVMConstNull(LLVMTypeOf(v)), "")
                              : LLVMBuildICmp(E->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
    if (em_is_fp(from)) { /* NaN -> 0, truncate toward zero, saturate: the .sat conversions */
        LLVMTypeRef over[] = {T, LLVMTypeOf(v)};
        return em_intrinsic(E, to == AG_I32 ? "llvm.fptosi.sat" : "llvm.fptoui.sat", over, 2, &v, 1);
    }
    if (from == AG_BOOL || (from == AG_U8 && to == AG_I32))
        return LLVMBuildZExt(E->b, v, T, "");
    if (from == AG_I32 && to == AG_U8) { /* clamp to [0, 255] */
        LLVMValueRef zero = splat(E, LLVMConstInt(E->i32, 0, 0)), top = splat(E, LLVMConstInt(E->i32, 255, 0));
        LLVMValueRef lo = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, v, zero, ""), zero, v, "");
        LLVMValueRef hi = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSGT, lo, top, ""), top, lo, "");
        return LLVMBuildTrunc(E->b, hi, val_type(E, AG_U8), "");
    }
    em_fail(E, "no conversion from %s to %s", ir_dtype_name(from), ir_dtype_name(to));
    return LLVMGetUndef(T);
}

/* a constant of dtype t holding v as ir_tensor_set stores it */
static LLVMValueRef scalar_constant(em *E, double v, ag_dtype t)
{
    if (em_is_fp(t))
        return LLVMConstReal(scalar_type(E, t), t == AG_F32 ? (double)(float)v : v);
    switch (t) {
    case AG_I32:
        return LLVMConstInt(E->i32,
                            (unsigned long long)(int64_t)(v != v               ? 0
                                                          : v <= -2147483648.0 ? INT32_MIN
                                                          : v >= 2147483647.0  ? INT32_MAX
                                                                               : (int32_t)v),
                            1);
    case AG_U8: return LLVMConstInt(E->i8, v != v || v <= 0 ? 0 : v >= 255 ? 255 : (unsigned)v, 0);
    case AG_BOOL: return LLVMConstInt(E->i1, v != 0, 0);
    default: em_fail(E, "constant of dtype %d", (int)t); return LLVMConstInt(E->i32, 0, 0);
    }
}
LLVMValueRef em_constant(em *E, double v, ag_dtype t) { return splat(E, scalar_constant(E, v, t)); }

/* ---- the op table's scalar forms as builder calls ---- */

static LLVMValueRef s_k(em *E, double v) { return em_constant(E, v, E->T == val_type(E, AG_F32) ? AG_F32 : AG_F64); }
static LLVMValueRef s_un(em *E, const char *intr, LLVMValueRef x) { return em_intrinsic(E, intr, &E->T, 1, &x, 1); }
static LLVMValueRef s_pow(em *E, LLVMValueRef x, LLVMValueRef y)
{
    LLVMValueRef args[] = {x, y};
    return em_intrinsic(E, "llvm.pow", &E->T, 1, args, 2);
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

static LLVMValueRef fk(em *E, double v) { return em_constant(E, v, AG_F32); }
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
        y = em_intrinsic(E, "llvm.fmuladd", &E->T, 1, args, 3);
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
    n = em_intrinsic(E, "llvm.rint", &F, 1, &n, 1);
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
        E->b, LLVMBuildOr(E->b, LLVMBuildAnd(E->b, bits, ik(E, (int32_t)0x807fffff), ""), ik(E, 0x3f000000), ""), F,
        "");
    /* m below sqrt(1/2): 2m - 1 and e - 1, else m - 1 */
    LLVMValueRef lo = LLVMBuildFCmp(E->b, LLVMRealOLT, m, fk(E, 0.707106781186547524), "");
    e = LLVMBuildSub(E->b, e, LLVMBuildZExt(E->b, lo, I, ""), "");
    m = LLVMBuildFSub(E->b, LLVMBuildSelect(E->b, lo, LLVMBuildFAdd(E->b, m, m, ""), m, ""), fk(E, 1), "");
    LLVMValueRef z = LLVMBuildFMul(E->b, m, m, "");
    static const double p[] = {7.0376836292e-2,  -1.1514610310e-1, 1.1676998740e-1,  -1.2420140846e-1, 1.4249322787e-1,
                               -1.6668057665e-1, 2.0000714765e-1,  -2.4999993993e-1, 3.3333331174e-1};
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
    LLVMValueRef ax = em_intrinsic(E, "llvm.fabs", &F, 1, &x, 1);
    /* |x| < 0.625: an odd polynomial; beyond: 1 - 2 / (e^2|x| + 1) with x's sign */
    static const double p[] = {-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
                               -3.33332819422e-1};
    LLVMValueRef z = LLVMBuildFMul(E->b, x, x, "");
    LLVMValueRef small = LLVMBuildFMul(E->b, LLVMBuildFMul(E->b, horner(E, z, p, 5), z, ""), x, "");
    small = LLVMBuildFAdd(E->b, small, x, "");
    LLVMValueRef big = f32_exp(E, LLVMBuildFAdd(E->b, ax, ax, ""));
    big = LLVMBuildFSub(E->b, fk(E, 1), LLVMBuildFDiv(E->b, fk(E, 2), LLVMBuildFAdd(E->b, big, fk(E, 1), ""), ""), "");
    LLVMValueRef sign[] = {big, x};
    big = em_intrinsic(E, "llvm.copysign", &F, 1, sign, 2);
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
#define EW_BUILD(name, arity, scalar, ...)                                               \
    static LLVMValueRef ew_##name(em *E, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) \
    {                                                                                    \
        (void)E, (void)a, (void)b, (void)c;                                              \
        return scalar;                                                                   \
    }
#define EW_SKIP(...)
IR_OPS(EW_BUILD, EW_SKIP)
#define EW_ENTRY(name, arity, ...) [IR_##name] = {ew_##name, arity},
static const struct {
    ew_builder *build;
    int arity;
} ew_table[IR_OP_COUNT] = {IR_OPS(EW_ENTRY, EW_SKIP)};

/* ---- expressions ---- */

bool em_eval_exprs(em *E, body *B)
{
    for (int e = 0; e < B->nexprs && !E->failed; e++) {
        const cg_expr *x = &B->expr[e];
        LLVMValueRef v = NULL;
        if (!val_type(E, x->dtype) || x->dtype == AG_F64) {
            em_fail(E, "expression %d: bad dtype %d", e, (int)x->dtype);
            break;
        }
        switch (x->kind) {
        case CG_E_LOAD:
            if (!B->load || x->load < 0 || !B->load[x->load]) {
                em_fail(E, "expression %d: load %d does not exist", e, (int)x->load);
                break;
            }
            v = em_convert(E, B->load[x->load], B->load_dtype[x->load], x->dtype);
            break;
        case CG_E_CONST: v = em_constant(E, x->value, x->dtype); break;
        case CG_E_INDEX: {
            if (!B->index || x->axis < 0 || x->axis >= B->rank) {
                em_fail(E, "expression %d: index of axis %d outside the loop", e, (int)x->axis);
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
                em_fail(E, "expression %d: %s is not an elementwise op", e, em_op_name(x->op));
                break;
            }
            int n = ew_table[x->op].arity;
            const int32_t ops[3] = {x->a, x->b, x->c};
            /* the interpreter's compute type: float when every value is f32, else double */
            bool single = x->dtype == AG_F32;
            for (int k = 0; k < n; k++) {
                if (ops[k] < 0 || ops[k] >= e) {
                    em_fail(E, "expression %d (%s): operand %d is not an earlier expression", e, em_op_name(x->op), k);
                    return false;
                }
                single &= B->expr[ops[k]].dtype == AG_F32;
            }
            ag_dtype ct = single ? AG_F32 : AG_F64;
            E->T = val_type(E, ct);
            LLVMValueRef in[3] = {NULL, NULL, NULL};
            for (int k = 0; k < n; k++)
                in[k] = em_convert(E, B->val[ops[k]], B->expr[ops[k]].dtype, ct);
            v = em_convert(E, ew_table[x->op].build(E, in[0], in[1], in[2]), ct, x->dtype);
            break;
        }
        default: em_fail(E, "expression %d: unknown kind %d", e, (int)x->kind);
        }
        B->val[e] = v;
    }
    return !E->failed;
}

/* ---- affine values ---- */

LLVMValueRef em_affine(em *E, cg_dim d, LLVMValueRef N)
{
    LLVMValueRef k = LLVMConstInt(E->i64, (unsigned long long)d.k, 1);
    if (d.n == 0)
        return k;
    LLVMValueRef v = d.n == 1 ? N : LLVMBuildNSWMul(E->b, N, LLVMConstInt(E->i64, (unsigned long long)d.n, 1), "");
    return d.k ? LLVMBuildNSWAdd(E->b, v, k, "") : v;
}

LLVMValueRef em_gep(em *E, LLVMTypeRef t, LLVMValueRef base, LLVMValueRef off)
{
    return LLVMBuildInBoundsGEP2(E->b, t, base, &off, 1, "");
}

/* ---- elements in memory ---- */

/* W elements from addr on, aligned to one element */
LLVMValueRef em_load_elem(em *E, ag_dtype t, LLVMValueRef addr)
{
    LLVMValueRef v = LLVMBuildLoad2(E->b, lanes(E, em_mem_type(E, t)), addr, "");
    LLVMSetAlignment(v, (unsigned)em_mem_size(t));
    return t == AG_BOOL ? LLVMBuildICmp(E->b, LLVMIntNE, v, LLVMConstNull(lanes(E, E->i8)), "") : v;
}

LLVMValueRef em_store_elem(em *E, ag_dtype t, LLVMValueRef v, LLVMValueRef addr)
{
    if (t == AG_BOOL)
        v = LLVMBuildZExt(E->b, v, lanes(E, E->i8), "");
    LLVMValueRef st = LLVMBuildStore(E->b, v, addr);
    LLVMSetAlignment(st, (unsigned)em_mem_size(t));
    return st;
}

bool em_check_access(em *E, const cg_access *a, const char *what, int k)
{
    if (a->buffer < 0 || a->buffer >= E->p->nbuffers) {
        em_fail(E, "%s %d: buffer %d does not exist", what, k, (int)a->buffer);
        return false;
    }
    if (!em_mem_type(E, E->p->buffers[a->buffer].dtype)) {
        em_fail(E, "%s %d: buffer %d has no storage dtype", what, k, (int)a->buffer);
        return false;
    }
    return true;
}

/* the module's function `name`, declared with type *ft where it is not yet */
LLVMValueRef em_declare(em *E, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n, LLVMTypeRef *ft)
{
    *ft = LLVMFunctionType(ret, params, (unsigned)n, 0);
    LLVMValueRef f = LLVMGetNamedFunction(E->m, name);
    return f ? f : LLVMAddFunction(E->m, name, *ft);
}
