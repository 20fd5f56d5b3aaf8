/* CG_LOOP steps as CUDA C: one thread an element (4 where the accesses allow 16-byte
 * moves), or, with a reduction, a block an output element summing in a fixed order. The
 * loads, expressions and stores of one element are also a matmul's epilogue (render_gemm.c). */
#include <math.h>
#include <string.h>

#include "render_internal.h"

/* ---- one element ---- */

/* the loop's loads at the current indices, as locals lK; given[k], when set, is the value
 * of load k already in hand (a matmul's result in its epilogue) */
void rd_print_loads(rd *R, const cg_loop *l, const char *const *idx, const char *ind, const char *const *given)
{
    for (int k = 0; k < l->nloads; k++) {
        const cg_access *a = &l->load[k];
        ag_dtype t = R->p->buffers[a->buffer].dtype;
        if (given && given[k])
            fprintf(R->f, "%sconst %s l%d = %s;\n", ind, rd_ctype(t), k, given[k]);
        else
            fprintf(R->f, "%sconst %s l%d = %sb%d[%s]%s;\n", ind, rd_ctype(t), k, t == AG_BOOL ? "(" : "",
                    (int)a->buffer, rd_at(R, a, l->rank, idx), t == AG_BOOL ? " != 0)" : "");
    }
}

/* the loop's expressions at the current indices, as locals vE */
/* lane < 0: one element, its loads (lK) printed by the caller; lane 0..3: lane of a 4-wide
 * step whose loads the caller printed as lK_LANE, values named vE_LANE */
void rd_print_exprs(rd *R, const cg_loop *l, const char *const *idx, const char *ind, int lane)
{
    const char *sfx = lane < 0 ? "" : rd_tx(R, "_%d", lane);
    for (int e = 0; e < l->nexprs && !R->failed; e++) {
        const cg_expr *x = &l->expr[e];
        const char *v = NULL;
        switch (x->kind) {
        case CG_E_LOAD:
            if (x->load < 0 || x->load >= l->nloads) {
                rd_fail(R, "expression %d: load %d does not exist", e, (int)x->load);
                return;
            }
            v = rd_cvt(R, rd_tx(R, "l%d%s", (int)x->load, sfx), R->p->buffers[l->load[x->load].buffer].dtype, x->dtype);
            break;
        case CG_E_CONST: v = rd_lit(R, x->value, x->dtype); break;
        case CG_E_INDEX:
            if (x->axis < 0 || x->axis >= l->rank) {
                rd_fail(R, "expression %d: index of axis %d outside the loop", e, (int)x->axis);
                return;
            }
            v = x->dtype == AG_BOOL ? rd_tx(R, "(%s != 0)", idx[x->axis])
                                    : rd_tx(R, "(%s)%s", rd_ctype(x->dtype), idx[x->axis]);
            break;
        case CG_E_OP: {
            if ((unsigned)x->op >= IR_OP_COUNT || !rd_ew_table[x->op].print) {
                rd_fail(R, "expression %d: op %d is not elementwise", e, (int)x->op);
                return;
            }
            const int32_t ops[3] = {x->a, x->b, x->c};
            int n = rd_ew_table[x->op].arity;
            bool single = x->dtype == AG_F32;
            for (int k = 0; k < n; k++) {
                if (ops[k] < 0 || ops[k] >= e) {
                    rd_fail(R, "expression %d: operand %d is not an earlier expression", e, k);
                    return;
                }
                single &= l->expr[ops[k]].dtype == AG_F32;
            }
            R->single = single;
            ag_dtype ct = single ? AG_F32 : AG_F64;
            const char *in[3] = {"0", "0", "0"};
            for (int k = 0; k < n; k++)
                in[k] = rd_cvt(R, rd_tx(R, "v%d%s", (int)ops[k], sfx), l->expr[ops[k]].dtype, ct);
            v = rd_cvt(R, rd_ew_table[x->op].print(R, in[0], in[1], in[2]), ct, x->dtype);
            break;
        }
        default: rd_fail(R, "expression %d: unknown kind %d", e, (int)x->kind); return;
        }
        fprintf(R->f, "%sconst %s v%d%s = %s;\n", ind, rd_ctype(x->dtype), e, sfx, v);
    }
}

/* the flat index `name` into indices i0.. over the axes whose bit is set in mask */
static void unflatten(rd *R, const cg_loop *l, unsigned mask, const char *name, const char *ind)
{
    fprintf(R->f, "%slong long r_ = %s;\n", ind, name);
    for (int k = l->rank - 1; k >= 0; k--)
        if (mask >> k & 1)
            fprintf(R->f, "%sconst long long i%d = r_ %% e%d; r_ /= e%d;\n", ind, k, k, k);
    fprintf(R->f, "%s(void)r_;\n", ind);
}

/* the loop's stores of one element (no reduction) */
void rd_print_stores(rd *R, const cg_loop *l, const char *const *idx, const char *ind)
{
    for (int s = 0; s < l->nstores && !R->failed; s++) {
        const cg_store *st = &l->store[s];
        ag_dtype t = R->p->buffers[st->at.buffer].dtype;
        const char *v = rd_cvt(R, rd_tx(R, "v%d", (int)st->expr), l->expr[st->expr].dtype, t);
        fprintf(R->f, "%sb%d[%s] = %s;\n", ind, (int)st->at.buffer, rd_at(R, &st->at, l->rank, idx), v);
    }
}

/* the loop's counts and buffers, before anything of it is printed */
bool rd_loop_valid(rd *R, const cg_loop *l, bool *used)
{
    if (l->rank < 0 || l->rank > IR_MAX_RANK || l->nloads < 0 || l->nloads > CG_MAX_LOADS || l->nexprs < 0 ||
        l->nexprs > CG_MAX_EXPRS || l->nstores < 0 || l->nstores > CG_MAX_STORES) {
        rd_fail(R, "loop counts out of range");
        return false;
    }
    if (l->reduce && l->combine != IR_sum && l->combine != IR_max) {
        rd_fail(R, "reduction by op %d (sum or max expected)", (int)l->combine);
        return false;
    }
    for (int k = 0; k < l->nloads; k++)
        if (rd_check_buffer(R, l->load[k].buffer, "load", k))
            used[l->load[k].buffer] = true;
    for (int k = 0; k < l->nstores; k++) {
        if (rd_check_buffer(R, l->store[k].at.buffer, "store", k))
            used[l->store[k].at.buffer] = true;
        if (l->store[k].expr < 0 || l->store[k].expr >= l->nexprs)
            rd_fail(R, "store %d: expression %d does not exist", k, (int)l->store[k].expr);
    }
    return !R->failed;
}

/* ---- 4 elements a thread: 16-byte accesses where the shape allows ---- */

static bool by4(cg_dim d) { return d.k % 4 == 0 && d.n % 4 == 0; }
static const char *v4type(ag_dtype t) { return t == AG_F32 ? "ag_v4f" : t == AG_I32 ? "ag_v4i" : "ag_v4b"; }

/* Whether every access moves along the last axis contiguously (a vector of 4, aligned to
 * its bytes for every N) or not at all (one element for the 4 lanes; loads only), and the
 * last extent is a multiple of 4 for every N. */
static bool vec4_ok(rd *R, const cg_loop *l)
{
    if (l->reduce || l->rank < 1 || !by4(l->extent[l->rank - 1]))
        return false;
    for (int x = 0; x < l->nloads + l->nstores; x++) {
        const cg_access *a = x < l->nloads ? &l->load[x] : &l->store[x - l->nloads].at;
        const cg_buffer *b = &R->p->buffers[a->buffer];
        cg_dim last = a->stride[l->rank - 1];
        bool contiguous = last.k == 1 && last.n == 0, still = last.k == 0 && last.n == 0;
        if (b->dtype == AG_F64 || (x >= l->nloads && !contiguous) || (!contiguous && !still))
            return false;
        int64_t vb = 4 * rd_esize(b->dtype);
        if (contiguous && (b->offset.k % vb || b->offset.n % vb || !by4(a->offset)))
            return false;
        for (int k = 0; contiguous && k < l->rank - 1; k++)
            if (!by4(a->stride[k]))
                return false;
    }
    return true;
}

static void render_vec4(rd *R, const cg_loop *l, const char *const *idx, cg_cuda_launch *launch)
{
    unsigned all = (1u << l->rank) - 1;
    int last = l->rank - 1;
    launch->units_per_block = 4 * CG_CUDA_BLOCK;
    fprintf(R->f, "    for (long long e_ = (blockIdx.x * (long long)blockDim.x + threadIdx.x) * 4; e_ < outs;\n"
                  "         e_ += (long long)gridDim.x * blockDim.x * 4) {\n");
    unflatten(R, l, all, "e_", "        ");
    for (int k = 0; k < l->nloads; k++) {
        const cg_access *a = &l->load[k];
        ag_dtype t = R->p->buffers[a->buffer].dtype;
        bool vec = a->stride[last].k == 1;
        if (vec)
            fprintf(R->f, "        const %s w%d = *(const %s *)(b%d + %s);\n", v4type(t), k, v4type(t), (int)a->buffer,
                    rd_at(R, a, l->rank, idx));
        for (int L = 0; L < 4; L++) {
            const char *src = vec ? rd_tx(R, "w%d.v[%d]", k, L)
                              : L ? rd_tx(R, "l%d_0", k)
                                  : rd_tx(R, "b%d[%s]", (int)a->buffer, rd_at(R, a, l->rank, idx));
            fprintf(R->f, "        const %s l%d_%d = %s%s%s;\n", rd_ctype(t), k, L,
                    t == AG_BOOL && (vec || !L) ? "(" : "", src, t == AG_BOOL && (vec || !L) ? " != 0)" : "");
        }
    }
    for (int L = 0; L < 4 && !R->failed; L++) {
        const char *lane[IR_MAX_RANK];
        memcpy(lane, idx, sizeof lane);
        lane[last] = rd_tx(R, "(%s + %d)", idx[last], L);
        rd_print_exprs(R, l, lane, "        ", L);
    }
    for (int s = 0; s < l->nstores && !R->failed; s++) {
        const cg_store *st = &l->store[s];
        ag_dtype t = R->p->buffers[st->at.buffer].dtype;
        fprintf(R->f, "        %s s%d;\n", v4type(t), s);
        for (int L = 0; L < 4; L++)
            fprintf(R->f, "        s%d.v[%d] = %s;\n", s, L,
                    rd_cvt(R, rd_tx(R, "v%d_%d", (int)st->expr, L), l->expr[st->expr].dtype, t));
        fprintf(R->f, "        *(%s *)(b%d + %s) = s%d;\n", v4type(t), (int)st->at.buffer,
                rd_at(R, &st->at, l->rank, idx), s);
    }
    fprintf(R->f, "    }\n}\n\n");
}

/* ---- the loop's kernel ---- */

/* acc combined with v in the stored dtype t, as the CPU's reduction stores it */
static const char *combine(rd *R, ir_op how, ag_dtype t, const char *acc, const char *v)
{
    if (how == IR_max)
        return t == AG_F32 ? rd_tx(R, "ag_maxf(%s, %s)", acc, v) : rd_tx(R, "(%s > %s ? %s : %s)", v, acc, v, acc);
    switch (t) {
    case AG_F32: return rd_tx(R, "%s + %s", acc, v);
    case AG_BOOL: return rd_tx(R, "(%s || %s)", acc, v);
    case AG_I32: return rd_tx(R, "ag_i32((double)%s + (double)%s)", acc, v);
    default: return rd_tx(R, "ag_u8((double)%s + (double)%s)", acc, v);
    }
}

void rd_render_loop(rd *R, const cg_loop *l, const char *name, cg_cuda_launch *launch)
{
    bool used[4096] = {false};
    if (R->p->nbuffers > 4096) {
        rd_fail(R, "%d buffers", R->p->nbuffers);
        return;
    }
    if (!rd_loop_valid(R, l, used))
        return;
    const char *idx[IR_MAX_RANK];
    for (int k = 0; k < l->rank; k++)
        idx[k] = rd_tx(R, "i%d", k);
    unsigned all = (1u << l->rank) - 1, kept = all & ~(unsigned)l->reduce;
    rd_kernel_head(R, name);
    fprintf(R->f, "    const long long N = a.N;\n    (void)N;\n");
    rd_declare_buffers(R, used);
    /* units: the elements (no reduction) or the output elements (a block each) */
    double units[3] = {1, 0, 0};
    for (int k = 0; k < l->rank; k++) {
        fprintf(R->f, "    const long long e%d = %s;\n", k, rd_dim(R, l->extent[k]));
        if (kept >> k & 1) { /* units *= k + n N, kept to degree 2 */
            double c0 = units[0], c1 = units[1], c2 = units[2], a0 = (double)l->extent[k].k,
                   a1 = (double)l->extent[k].n;
            units[0] = c0 * a0, units[1] = c0 * a1 + c1 * a0, units[2] = c1 * a1 + c2 * a0;
            /* past degree 2 (N^3 and up) is left out: the grid is smaller, the grid stride covers it */
        }
    }
    memcpy(launch->units, units, sizeof units);
    fprintf(R->f, "    const long long outs = 1");
    for (int k = 0; k < l->rank; k++)
        if (kept >> k & 1)
            fprintf(R->f, " * e%d", k);
    fprintf(R->f, ";\n");
    if (vec4_ok(R, l)) {
        render_vec4(R, l, idx, launch);
        return;
    }
    if (!l->reduce) {
        launch->units_per_block = CG_CUDA_BLOCK;
        fprintf(R->f, "    for (long long e_ = blockIdx.x * (long long)blockDim.x + threadIdx.x; e_ < outs;\n"
                      "         e_ += (long long)gridDim.x * blockDim.x) {\n");
        unflatten(R, l, all, "e_", "        ");
        rd_print_loads(R, l, idx, "        ", NULL);
        rd_print_exprs(R, l, idx, "        ", -1);
        rd_print_stores(R, l, idx, "        ");
        fprintf(R->f, "    }\n}\n\n");
        return;
    }
    /* a block per output element; the reduced elements in a fixed order */
    launch->units_per_block = 1;
    fprintf(R->f, "    const long long red = 1");
    for (int k = 0; k < l->rank; k++)
        if (l->reduce >> k & 1)
            fprintf(R->f, " * e%d", k);
    fprintf(R->f, ";\n");
    for (int s = 0; s < l->nstores; s++) {
        ag_dtype t = R->p->buffers[l->store[s].at.buffer].dtype;
        fprintf(R->f, "    __shared__ %s part%d[%d];\n", rd_ctype(t), s, CG_CUDA_BLOCK);
        R->shared[R->step] += CG_CUDA_BLOCK * (int64_t)ir_dtype_size(t);
    }
    fprintf(R->f, "    for (long long o_ = blockIdx.x; o_ < outs; o_ += gridDim.x) {\n");
    for (int s = 0; s < l->nstores; s++) {
        ag_dtype t = R->p->buffers[l->store[s].at.buffer].dtype;
        fprintf(R->f, "        %s acc%d = %s;\n", rd_ctype(t), s, rd_lit(R, l->combine == IR_max ? -INFINITY : 0, t));
    }
    fprintf(R->f, "        for (long long j_ = threadIdx.x; j_ < red; j_ += blockDim.x) {\n");
    unflatten(R, l, kept, "o_", "            ");
    fprintf(R->f, "            {\n");
    unflatten(R, l, l->reduce, "j_", "            ");
    rd_print_loads(R, l, idx, "            ", NULL);
    rd_print_exprs(R, l, idx, "            ", -1);
    for (int s = 0; s < l->nstores && !R->failed; s++) {
        const cg_store *st = &l->store[s];
        ag_dtype t = R->p->buffers[st->at.buffer].dtype;
        const char *v = rd_cvt(R, rd_tx(R, "v%d", (int)st->expr), l->expr[st->expr].dtype, t);
        fprintf(R->f, "            acc%d = %s;\n", s, combine(R, l->combine, t, rd_tx(R, "acc%d", s), v));
    }
    fprintf(R->f, "            }\n        }\n");
    for (int s = 0; s < l->nstores; s++)
        fprintf(R->f, "        part%d[threadIdx.x] = acc%d;\n", s, s);
    fprintf(R->f,
            "        __syncthreads();\n"
            "        for (int w_ = %d / 2; w_ > 0; w_ /= 2) {\n"
            "            if ((int)threadIdx.x < w_) {\n",
            CG_CUDA_BLOCK);
    for (int s = 0; s < l->nstores; s++) {
        ag_dtype t = R->p->buffers[l->store[s].at.buffer].dtype;
        fprintf(R->f, "                part%d[threadIdx.x] = %s;\n", s,
                combine(R, l->combine, t, rd_tx(R, "part%d[threadIdx.x]", s), rd_tx(R, "part%d[threadIdx.x + w_]", s)));
    }
    fprintf(R->f, "            }\n            __syncthreads();\n        }\n        if (threadIdx.x == 0) {\n");
    unflatten(R, l, kept, "o_", "            ");
    for (int k = 0; k < l->rank; k++)
        if (l->reduce >> k & 1)
            fprintf(R->f, "            const long long i%d = 0;\n", k);
    for (int s = 0; s < l->nstores; s++) {
        const cg_store *st = &l->store[s];
        ag_dtype t = R->p->buffers[st->at.buffer].dtype;
        fprintf(R->f, "            b%d[%s] = %spart%d[0];\n", (int)st->at.buffer, rd_at(R, &st->at, l->rank, idx),
                t == AG_BOOL ? "(unsigned char)" : "", s);
    }
    fprintf(R->f, "        }\n        __syncthreads();\n    }\n}\n\n");
}
