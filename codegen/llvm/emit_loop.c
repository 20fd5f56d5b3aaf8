/* CG_LOOP steps as LLVM IR (see emit.h): each an internal function NAME.loopK of its
 * buffers and N, a nest of counted loops around the body; noalias where the buffers provably
 * miss each other, rows split over the pool's threads where that gives the same bits, and
 * large elementwise loops streamed past the cache. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <llvm-c/Core.h>

#include "emit_internal.h"

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
    *r = (poly){
        {a.c[0] * b.c[0], a.c[0] * b.c[1] + a.c[1] * b.c[0], a.c[0] * b.c[2] + a.c[1] * b.c[1] + a.c[2] * b.c[0]}};
    return true;
}
/* p(N) >= 0 for every N >= 1: with M = N - 1 >= 0, every coefficient of p(M + 1) is >= 0 */
static bool p_nonneg(poly p) { return p.c[0] + p.c[1] + p.c[2] >= 0 && p.c[1] + 2 * p.c[2] >= 0 && p.c[2] >= 0; }

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
    double esz = (double)em_mem_size(b->dtype);
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
    bool fill;         /* building the fill nest of a reduction */
    LLVMValueRef flat; /* streaming loops: the flat element index every access is at (lp_stream) */
    bool stream_store; /* streaming loops: stores are whole aligned vectors that bypass the cache */
    int split;         /* the axis that runs over [begin, end) only, -1: none */
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
    LLVMValueRef off = em_affine(E, a->offset, L->N);
    for (int k = 0; k < L->l->rank && L->flat; k++)
        if (a->stride[k].k || a->stride[k].n) { /* contiguous (lp_streamable): offset + flat */
            off = LLVMBuildNSWAdd(E->b, off, L->flat, "");
            break;
        }
    for (int k = 0; k < L->l->rank && !L->flat; k++) {
        cg_dim s = a->stride[k];
        if (s.k == 0 && s.n == 0)
            continue;
        LLVMValueRef t =
            s.k == 1 && s.n == 0 ? L->index[k] : LLVMBuildNSWMul(E->b, L->index[k], em_affine(E, s, L->N), "");
        off = LLVMBuildNSWAdd(E->b, off, t, "");
    }
    return em_gep(E, em_mem_type(E, b->dtype), L->arg[lp_param(L, a->buffer)], off);
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
            LLVMValueRef one = em_load_elem(E, t, lp_addr(L, &l->load[k]));
            E->W = w;
            LLVMValueRef v = LLVMBuildInsertElement(E->b, LLVMGetUndef(LLVMVectorType(LLVMTypeOf(one), w)), one,
                                                    LLVMConstInt(E->i32, 0, 0), "");
            load[k] = LLVMBuildShuffleVector(E->b, v, LLVMGetUndef(LLVMTypeOf(v)),
                                             LLVMConstNull(LLVMVectorType(E->i32, w)), "");
        } else
            load[k] = em_load_elem(E, t, lp_addr(L, &l->load[k]));
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
            em_store_elem(E, t, em_constant(E, l->combine == IR_max ? -INFINITY : 0, t), lp_addr(L, &l->store[s].at));
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
    if (!em_eval_exprs(E, &B))
        return;
    for (int s = 0; s < l->nstores; s++) {
        const cg_store *st = &l->store[s];
        if (st->expr < 0 || st->expr >= l->nexprs) {
            em_fail(E, "store %d: expression %d does not exist", s, (int)st->expr);
            return;
        }
        ag_dtype t = p->buffers[st->at.buffer].dtype;
        LLVMValueRef v = em_convert(E, val[st->expr], l->expr[st->expr].dtype, t), at = lp_addr(L, &st->at);
        if (l->reduce) {
            LLVMValueRef old = em_load_elem(E, t, at);
            if (l->combine == IR_sum && em_is_fp(t))
                v = LLVMBuildFAdd(E->b, old, v, "");
            else if (l->combine == IR_sum && t == AG_BOOL)
                v = LLVMBuildOr(E->b, old, v, "");
            else if (l->combine == IR_sum) { /* each step saturated, as codegen/exec.c stores it */
                LLVMTypeRef ty = LLVMTypeOf(v);
                LLVMValueRef two[] = {old, v};
                v = em_intrinsic(E, t == AG_I32 ? "llvm.sadd.sat" : "llvm.uadd.sat", &ty, 1, two, 2);
            } else if (em_is_fp(t)) /* v > acc || v != v: NaN wins */
                v = LLVMBuildSelect(E->b,
                                    LLVMBuildOr(E->b, LLVMBuildFCmp(E->b, LLVMRealOGT, v, old, ""),
                                                LLVMBuildFCmp(E->b, LLVMRealUNO, v, v, ""), ""),
                                    v, old, "");
            else
                v = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, t == AG_I32 ? LLVMIntSGT : LLVMIntUGT, v, old, ""), v,
                                    old, "");
        }
        LLVMValueRef stored = em_store_elem(E, t, v, at);
        if (L->stream_store) {
            LLVMSetAlignment(stored, (unsigned)em_mem_size(t) * E->W);
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

/* The region a buffer lives in: the arena, the parameters, or one caller tensor. */
static int64_t region_of(const cg_buffer *b)
{
    return b->region == CG_INPUT    ? 2 + 2 * (int64_t)b->index
           : b->region == CG_OUTPUT ? 3 + 2 * (int64_t)b->index
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
        if (!p_nonneg_upto(gap, CG_MAX_N))
            return false;
        int64_t esz = em_mem_size(sb->dtype);
        poly sbase = p_add(p_aff(sb->offset), p_scale(p_aff(st->offset), (double)esz));
        for (int x = 0; x < nacc; x++) {
            const cg_access *ax = x < l->nloads ? &l->load[x] : &l->store[x - l->nloads].at;
            const cg_buffer *xb = &p->buffers[ax->buffer];
            if (ax == st || region_of(xb) != region_of(sb))
                continue;
            /* the same bytes at the same indices (an in-place update, maybe through another
             * buffer at the same place), or bytes that provably miss the store's */
            int64_t xsz = em_mem_size(xb->dtype);
            poly xbase = p_add(p_aff(xb->offset), p_scale(p_aff(ax->offset), (double)xsz));
            bool same = xsz == esz && xbase.c[0] == sbase.c[0] && xbase.c[1] == sbase.c[1] && xbase.c[2] == sbase.c[2];
            for (int k = 0; k < l->rank && same; k++)
                same = memcmp(&ax->stride[k], &st->stride[k], sizeof st->stride[k]) == 0;
            if (same)
                continue;
            poly lx, hx, ls, hs;
            if (!touched(p, l, ax, &lx, &hx) || !touched(p, l, st, &ls, &hs))
                return false;
            if (!p_nonneg_upto(p_add(ls, p_scale(hx, -1)), CG_MAX_N) &&
                !p_nonneg_upto(p_add(lx, p_scale(hs, -1)), CG_MAX_N))
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
#define STREAM_VECTORS 16 /* vectors in flight per step, loads of all inputs */

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
    if (em_mem_size(p->buffers[st->buffer].dtype) != 4 || !is_contiguous(l, st))
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
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(E->b)),
                 k = LLVMConstInt(E->i64, (unsigned long long)step, 0);
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
        at[v] = LLVMBuildNSWAdd(E->b, LLVMBuildNSWAdd(E->b, sb->block, j, ""),
                                LLVMConstInt(E->i64, (unsigned long long)off, 0), "");
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
    LLVMValueRef i =
        counted(L, LLVMBuildNSWAdd(E->b, lo, head, ""), hi, STREAM_PAGES * STREAM_PAGE, stream_block_body, &per);
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

/* The call of a split loop from the entry: over all rows itself (no pool, or fewer than
 * PAR_MIN_ELEMS elements), else rt_parallel_for over chunks of rows through the trampoline
 * NAME.loopK.chunk, the loop's buffers and N in a context in the entry's frame. Returns the
 * block where the entry goes on. */
static LLVMBasicBlockRef lp_call_split(lp *L, int step, LLVMValueRef fn, LLVMTypeRef fn_t, LLVMValueRef *args,
                                       unsigned nparams, LLVMValueRef N, LLVMValueRef pool)
{
    em *E = L->E;
    const cg_loop *l = L->l;
    unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
    char name[256];
    /* rows = extent 0, inner = the other extents' product; the pool when it has enough work */
    LLVMValueRef rows = em_affine(E, l->extent[0], N), inner = LLVMConstInt(E->i64, 1, 0);
    for (int k = 1; k < l->rank; k++)
        inner = LLVMBuildNSWMul(E->b, inner, em_affine(E, l->extent[k], N), "");
    LLVMValueRef total = LLVMBuildNSWMul(E->b, rows, inner, "");
    LLVMValueRef big =
        LLVMBuildAnd(E->b, LLVMBuildICmp(E->b, LLVMIntNE, pool, LLVMConstNull(E->ptr), ""),
                     LLVMBuildICmp(E->b, LLVMIntSGE, total, LLVMConstInt(E->i64, PAR_MIN_ELEMS, 0), ""), "");
    LLVMValueRef entry_fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(E->b));
    LLVMBasicBlockRef par = LLVMAppendBasicBlockInContext(E->c, entry_fn, "par");
    LLVMBasicBlockRef ser = LLVMAppendBasicBlockInContext(E->c, entry_fn, "ser");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(E->c, entry_fn, "par.done");
    LLVMBuildCondBr(E->b, big, par, ser);

    LLVMPositionBuilderAtEnd(E->b, ser);
    args[L->nbuf + 1] = LLVMConstInt(E->i64, 0, 0);
    args[L->nbuf + 2] = rows;
    LLVMBuildCall2(E->b, fn_t, fn, args, nparams, "");
    LLVMBuildBr(E->b, done);

    /* the context: { ptr buffers..., i64 N }, in the entry block's frame */
    LLVMTypeRef ctx_f[CG_MAX_LOADS + CG_MAX_STORES + 1];
    for (int k = 0; k < L->nbuf; k++)
        ctx_f[k] = E->ptr;
    ctx_f[L->nbuf] = E->i64;
    LLVMTypeRef ctx_t = LLVMStructTypeInContext(E->c, ctx_f, (unsigned)L->nbuf + 1, 0);
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
    for (int k = 0; k <= L->nbuf; k++)
        LLVMBuildStore(E->b, args[k], LLVMBuildStructGEP2(E->b, ctx_t, ctx, (unsigned)k, ""));
    /* grain: ceil(CHUNK_ELEMS / inner) rows, at least 1 (inner >= 1 here: total > 0) */
    LLVMValueRef grain =
        LLVMBuildSDiv(E->b, LLVMBuildNSWAdd(E->b, inner, LLVMConstInt(E->i64, CHUNK_ELEMS - 1, 0), ""), inner, "");

    /* the trampoline: void NAME.loopK.chunk(void *ctx, int64_t begin, int64_t end) */
    LLVMTypeRef cp[] = {E->ptr, E->i64, E->i64};
    LLVMTypeRef chunk_t = LLVMFunctionType(E->vd, cp, 3, 0);
    char sn[32];
    snprintf(name, sizeof name, "%s.%s.chunk", E->p->name, cg_step_name(E->p, step, sn, sizeof sn));
    LLVMValueRef chunk = LLVMAddFunction(E->m, name, chunk_t);
    LLVMSetLinkage(chunk, LLVMInternalLinkage);
    LLVMAddAttributeAtIndex(chunk, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(E->c, nounwind, 0));

    LLVMTypeRef pf[] = {E->ptr, E->i64, E->i64, E->ptr, E->ptr};
    LLVMTypeRef pf_t;
    LLVMValueRef pfor = em_declare(E, "rt_parallel_for", E->vd, pf, 5, &pf_t);
    LLVMValueRef pa[] = {pool, rows, grain, chunk, ctx};
    LLVMBuildCall2(E->b, pf_t, pfor, pa, 5, "");
    LLVMBuildBr(E->b, done);

    em_debug_at(E, NULL, 0); /* the trampoline has no subprogram: its lines are the loop's */
    LLVMPositionBuilderAtEnd(E->b, LLVMAppendBasicBlockInContext(E->c, chunk, "entry"));
    LLVMValueRef cctx = LLVMGetParam(chunk, 0), cargs[CG_MAX_LOADS + CG_MAX_STORES + 3];
    for (int k = 0; k <= L->nbuf; k++)
        cargs[k] = LLVMBuildLoad2(E->b, ctx_f[k], LLVMBuildStructGEP2(E->b, ctx_t, cctx, (unsigned)k, ""), "");
    cargs[L->nbuf + 1] = LLVMGetParam(chunk, 1);
    cargs[L->nbuf + 2] = LLVMGetParam(chunk, 2);
    LLVMBuildCall2(E->b, fn_t, fn, cargs, nparams, "");
    LLVMBuildRetVoid(E->b);
    return done;
}

LLVMValueRef em_emit_loop(em *E, const cg_loop *l, int step, LLVMValueRef (*addr)(em *, int32_t, void *), void *actx,
                          LLVMValueRef N, LLVMValueRef pool)
{
    if (l->rank < 0 || l->rank > IR_MAX_RANK || l->nloads < 0 || l->nloads > CG_MAX_LOADS || l->nexprs < 0 ||
        l->nexprs > CG_MAX_EXPRS || l->nstores < 0 || l->nstores > CG_MAX_STORES) {
        em_fail(E, "step %d: loop counts out of range", step);
        return NULL;
    }
    if (l->reduce && l->combine != IR_sum && l->combine != IR_max) {
        em_fail(E, "step %d: reduction by %s (sum or max expected)", step, em_op_name(l->combine));
        return NULL;
    }
    lp L = {.E = E, .l = l, .split = -1};
    bool written[CG_MAX_LOADS + CG_MAX_STORES] = {false};
    for (int k = 0; k < l->nloads; k++)
        if (!em_check_access(E, &l->load[k], "load", k))
            return NULL;
        else
            lp_param(&L, l->load[k].buffer);
    for (int k = 0; k < l->nstores; k++)
        if (!em_check_access(E, &l->store[k].at, "store", k))
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
    /* named after its kernel (mlp_train_step.k3), and kept out of line: the name is in the
     * .ll, the .s and a profiler's report */
    const cg_step *st = &E->p->steps[step];
    char sn[32];
    snprintf(name, sizeof name, "%s.%s", E->p->name, cg_step_name(E->p, step, sn, sizeof sn));
    LLVMTypeRef fn_t = LLVMFunctionType(E->vd, params, nparams, 0);
    LLVMValueRef fn = LLVMAddFunction(E->m, name, fn_t);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
    unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(E->c, nounwind, 0));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(E->c, noinline, 0));
    LLVMMetadataRef scope = em_debug_function(E, fn, st->nlines ? st->lines[0] : st->line);
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
    else
        back = lp_call_split(&L, step, fn, fn_t, args, nparams, N, pool);

    em_debug_at(E, scope, st->line);
    LLVMPositionBuilderAtEnd(E->b, LLVMAppendBasicBlockInContext(E->c, fn, "entry"));
    for (int k = 0; k < l->rank; k++)
        L.extent[k] = em_affine(E, l->extent[k], L.N);
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
    em_debug_at(E, E->entry_scope, st->line);
    LLVMPositionBuilderAtEnd(E->b, back);
    return fn;
}
