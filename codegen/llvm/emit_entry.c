/* The entry point of a program as LLVM IR (see emit.h): void NAME(const cg_args *a), which
 * finds the buffers from a's regions and runs the steps in order: the loops' functions
 * (emit_loop.c), cblas_sgemm for matmuls, the runtime routines for calls, with a profile
 * mark after each; and cg_emit_module, which builds the module around it. */
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Core.h>

#include "emit_internal.h"
#include "rt_ops.h"

/* ---- the entry point ---- */

LLVMTypeRef cg_args_type(LLVMContextRef c)
{
    LLVMTypeRef ptr = LLVMPointerTypeInContext(c, 0), i64 = LLVMInt64TypeInContext(c);
    LLVMTypeRef f[] = {ptr, ptr, ptr, ptr, i64, LLVMInt32TypeInContext(c), i64, ptr, ptr, i64, ptr};
    return LLVMStructTypeInContext(c, f, 11, 0);
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
            em_fail(E, "buffer %d: %s %d does not exist", (int)i, b->region == CG_INPUT ? "input" : "output",
                    (int)b->index);
            return LLVMConstNull(E->ptr);
        }
        LLVMValueRef slot = em_gep(E, E->ptr, b->region == CG_INPUT ? X->inputs : X->outputs,
                                   LLVMConstInt(E->i64, (unsigned)b->index, 0));
        base = LLVMBuildLoad2(E->b, E->ptr, slot, "");
        break;
    }
    default: em_fail(E, "buffer %d: unknown region %d", (int)i, (int)b->region); return LLVMConstNull(E->ptr);
    }
    if (b->offset.k || b->offset.n)
        base = em_gep(E, E->i8, base, em_affine(E, b->offset, X->N));
    return X->addr[i] = base;
}

/* the address of an access's offset (elements of its buffer's dtype) */
static LLVMValueRef access_addr(em *E, entry *X, const cg_access *a)
{
    if (!em_check_access(E, a, "access", 0))
        return LLVMConstNull(E->ptr);
    LLVMValueRef base = buffer_addr(E, a->buffer, X);
    if (!a->offset.k && !a->offset.n)
        return base;
    return em_gep(E, em_mem_type(E, E->p->buffers[a->buffer].dtype), base, em_affine(E, a->offset, X->N));
}

static void emit_gemm(em *E, entry *X, const cg_gemm *g, int step)
{
    if (g->nexprs < 0 || g->nexprs > 16 || g->nloads < 0 || g->nloads > 4 || g->alpha < 0 || g->alpha >= g->nexprs ||
        g->beta < 0 || g->beta >= g->nexprs) {
        em_fail(E, "step %d (gemm): bad scalar expressions", step);
        return;
    }
    LLVMValueRef load[4], val[16];
    ag_dtype ldt[4];
    for (int k = 0; k < g->nloads; k++) {
        if (!em_check_access(E, &g->load[k], "gemm load", k))
            return;
        ldt[k] = E->p->buffers[g->load[k].buffer].dtype;
        load[k] = em_load_elem(E, ldt[k], access_addr(E, X, &g->load[k]));
    }
    body B = {g->expr, g->nexprs, val, load, ldt, NULL, 0};
    if (!em_eval_exprs(E, &B))
        return;
    LLVMValueRef alpha = em_convert(E, val[g->alpha], g->expr[g->alpha].dtype, AG_F32);
    LLVMValueRef beta = em_convert(E, val[g->beta], g->expr[g->beta].dtype, AG_F32);
    LLVMValueRef M = em_affine(E, g->m, X->N), N = em_affine(E, g->n, X->N), K = em_affine(E, g->k, X->N);
    LLVMValueRef A = access_addr(E, X, &g->a), Bp = access_addr(E, X, &g->b), C = access_addr(E, X, &g->c);
    /* blasint is int (OpenBLAS without INTERFACE64) */
    LLVMValueRef m32 = LLVMBuildTrunc(E->b, M, E->i32, ""), n32 = LLVMBuildTrunc(E->b, N, E->i32, "");
    LLVMValueRef k32 = LLVMBuildTrunc(E->b, K, E->i32, "");
    LLVMValueRef i32k[3] = {LLVMConstInt(E->i32, 101, 0), LLVMConstInt(E->i32, g->ta ? 112 : 111, 0),
                            LLVMConstInt(E->i32, g->tb ? 112 : 111, 0)};
    LLVMTypeRef pt[] = {E->i32, E->i32, E->i32, E->i32, E->i32, E->i32, E->f32,
                        E->ptr, E->i32, E->ptr, E->i32, E->f32, E->ptr, E->i32};
    LLVMTypeRef ft;
    LLVMValueRef fn = em_declare(E, "cblas_sgemm", E->vd, pt, 14, &ft);
    LLVMValueRef args[] = {i32k[0],           i32k[1], i32k[2],           m32,  n32, k32, alpha, A,
                           g->ta ? m32 : k32, Bp,      g->tb ? k32 : n32, beta, C,   n32};
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

/* runtime/rt_ops.h's table: each op's routines and how its call's arguments map to theirs */
typedef enum {
    SIG_ROWS,
    SIG_CE,
    SIG_CE_GRAD,
    SIG_DROPOUT,
    SIG_WINDOW,
    SIG_CONV,
    SIG_CONV_DW,
    SIG_COLLECTIVE
} signature;
static const struct routine {
    ir_op op;
    const char *f32, *i32;
    signature sig;
    int nargs;
} routines[] = {
#define ROUTINE(op, f32, i32, sig, n) {IR_##op, #f32, #i32, SIG_##sig, n},
    RT_ROUTINES(ROUTINE)
#undef ROUTINE
};

/* A window call's geometry, an rt_window, as a constant global */
static LLVMValueRef geometry(em *E, const rt_window *win)
{
    enum { WORDS = sizeof(rt_window) / sizeof(int64_t) };
    LLVMValueRef geo[WORDS];
    const int64_t *w = &win->c;
    for (int k = 0; k < WORDS; k++)
        geo[k] = LLVMConstInt(E->i64, (unsigned long long)w[k], 1);
    LLVMTypeRef gt = LLVMArrayType2(E->i64, WORDS);
    LLVMValueRef gv = LLVMAddGlobal(E->m, gt, "window");
    LLVMSetInitializer(gv, LLVMConstArray2(E->i64, geo, WORDS));
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
    return gv;
}

static const struct routine *routine_of(ir_op op)
{
    for (size_t k = 0; k < sizeof routines / sizeof *routines; k++)
        if (routines[k].op == op)
            return &routines[k];
    return NULL;
}

static void emit_call(em *E, entry *X, const cg_call *c, int step)
{
    const struct routine *r = routine_of(c->op);
    if (!r) {
        em_fail(E, "step %d: no runtime routine for %s", step, em_op_name(c->op));
        return;
    }
    if (c->nargs != r->nargs) {
        em_fail(E, "step %d (%s): %d arguments, %d expected", step, em_op_name(c->op), (int)c->nargs, r->nargs);
        return;
    }
    LLVMValueRef arg[5];
    for (int k = 0; k < c->nargs; k++) {
        if (!em_check_access(E, &c->arg[k], "call argument", k))
            return;
        arg[k] = access_addr(E, X, &c->arg[k]);
    }
    const char *name = E->p->buffers[c->arg[0].buffer].dtype == AG_I32 ? r->i32 : r->f32;
    LLVMValueRef rows = em_affine(E, c->rows, X->N), len = em_affine(E, c->len, X->N);
    LLVMValueRef inner = em_affine(E, c->inner, X->N);
    LLVMTypeRef P = E->ptr, I = E->i64, ft;
    LLVMTypeRef pt[10];
    LLVMValueRef a[10];
    int n = 0;
    switch (r->sig) { /* the signatures of the table, parameter by parameter */
    case SIG_ROWS:
        n = 5;
        memcpy(pt, (LLVMTypeRef[]){P, P, I, I, I}, sizeof *pt * 5);
        memcpy(a, (LLVMValueRef[]){arg[0], arg[1], rows, len, inner}, sizeof *a * 5);
        break;
    case SIG_CE:
        n = 5;
        memcpy(pt, (LLVMTypeRef[]){P, P, P, I, I}, sizeof *pt * 5);
        memcpy(a, (LLVMValueRef[]){arg[0], arg[1], arg[2], rows, len}, sizeof *a * 5);
        break;
    case SIG_CE_GRAD:
        n = 6;
        memcpy(pt, (LLVMTypeRef[]){P, P, P, P, I, I}, sizeof *pt * 6);
        memcpy(a, (LLVMValueRef[]){arg[0], arg[1], arg[2], arg[3], rows, len}, sizeof *a * 6);
        break;
    case SIG_DROPOUT: {
        n = 8;
        memcpy(pt, (LLVMTypeRef[]){P, P, I, E->f64, E->i32, E->i32, I, I}, sizeof *pt * 8);
        LLVMValueRef count = LLVMBuildNSWMul(E->b, LLVMBuildNSWMul(E->b, rows, len, ""), inner, "");
        LLVMValueRef seed = field(E, X, 5, E->i32), stp = field(E, X, 6, E->i64);
        /* a rank's share starts at row0 of the global batch: its masks are those rows' */
        LLVMValueRef first = LLVMConstInt(E->i64, 0, 0);
        if (c->rows.n || c->len.n || c->inner.n) {
            LLVMValueRef N1 = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSGT, X->N, first, ""), X->N,
                                              LLVMConstInt(E->i64, 1, 0), "");
            first = LLVMBuildNSWMul(E->b, field(E, X, 9, E->i64), LLVMBuildSDiv(E->b, count, N1, ""), "first");
        }
        memcpy(a,
               (LLVMValueRef[]){arg[0], arg[1], count, LLVMConstReal(E->f64, c->p), seed,
                                LLVMConstInt(E->i32, (unsigned)c->site, 0), stp, first},
               sizeof *a * 8);
        break;
    }
    case SIG_COLLECTIVE:
        n = 5;
        memcpy(pt, (LLVMTypeRef[]){P, I, E->i32, E->i32, P}, sizeof *pt * 5);
        memcpy(a,
               (LLVMValueRef[]){arg[0], rows, LLVMConstInt(E->i32, (unsigned)c->bucket, 0),
                                LLVMConstInt(E->i32, c->wait ? 1 : 0, 0), field(E, X, 10, E->ptr)},
               sizeof *a * 5);
        break;
    case SIG_WINDOW:
    case SIG_CONV:
    case SIG_CONV_DW: { /* operands and result [and db], the batch, the geometry (a
                           constant), [the workspace,] the pool */
        bool conv = r->sig != SIG_WINDOW;
        int nbuf = conv ? 3 : c->nargs;
        for (int k = 0; k < nbuf; k++)
            pt[n] = P, a[n++] = arg[k];
        if (r->sig == SIG_CONV_DW)
            pt[n] = P, a[n++] = arg[4];
        pt[n] = I, a[n++] = rows;
        pt[n] = P, a[n++] = geometry(E, &c->win);
        if (conv)
            pt[n] = P, a[n++] = arg[3];
        pt[n] = P, a[n++] = X->pool;
        break;
    }
    }
    LLVMValueRef fn = em_declare(E, name, E->vd, pt, n, &ft);
    LLVMBuildCall2(E->b, ft, fn, a, (unsigned)n, "");
}

/* "# k1: sgemm, models/mlp.c:17-18" as an empty inline asm statement before a step the entry
 * calls out for: a comment at that call in the .ll and the .s */
static void name_comment(em *E, const cg_step *st)
{
    char text[256];
    char sn[32];
    int at = snprintf(text, sizeof text, "# %s: %s", cg_step_name(E->p, (int)(st - E->p->steps), sn, sizeof sn),
                      st->kind == CG_GEMM ? "sgemm" : em_op_name(st->call.op));
    for (int k = 0; k < st->nlines && E->p->file && at > 0 && (size_t)at < sizeof text; k++) {
        if (k == 0)
            at += snprintf(text + at, sizeof text - (size_t)at, ", %s:%d", E->p->file, (int)st->lines[k]);
        else
            at += snprintf(text + at, sizeof text - (size_t)at, ",%d", (int)st->lines[k]);
    }
    for (char *c = text; *c; c++) /* '$' starts an operand in asm text */
        if (*c == '$')
            *c = '_';
    LLVMTypeRef ft = LLVMFunctionType(E->vd, NULL, 0, 0);
    LLVMValueRef asm_ = LLVMGetInlineAsm(ft, text, strlen(text), "", 0, 1, 0, LLVMInlineAsmDialectATT, 0);
    LLVMBuildCall2(E->b, ft, asm_, NULL, 0, "");
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
    LLVMValueRef mark = em_declare(E, "rt_profile_mark", E->vd, pt, 2, &ft);
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
        em_fail(&E, "cg_emit_module: no program");
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
    em_debug_begin(&E, fn);
    em_debug_at(&E, E.entry_scope, 0);
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
        em_fail(&E, "out of memory");
    profile_mark(&E, &X, -1);
    for (int s = 0; s < p->nsteps && !E.failed; s++) {
        const cg_step *st = &p->steps[s];
        em_debug_at(&E, E.entry_scope, st->line);
        if (st->kind != CG_LOOP) /* a loop is a function of its name; a call gets a comment */
            name_comment(&E, st);
        switch (st->kind) {
        case CG_LOOP: em_emit_loop(&E, &st->loop, s, buffer_addr, &X, X.N, X.pool); break;
        case CG_GEMM: emit_gemm(&E, &X, &st->gemm, s); break;
        case CG_CALL: emit_call(&E, &X, &st->call, s); break;
        default: em_fail(&E, "step %d: unknown kind %d", s, (int)st->kind);
        }
        profile_mark(&E, &X, s);
    }
    LLVMBuildRetVoid(E.b);
    em_debug_end(&E);
    LLVMDisposeBuilder(E.b);
    free(X.addr);
    if (E.failed) {
        LLVMDisposeModule(E.m);
        return NULL;
    }
    return E.m;
}
