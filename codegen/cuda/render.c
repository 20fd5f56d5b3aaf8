/* The kernel IR as CUDA C (see render.h).
 *
 * Each step becomes one kernel, written the way codegen/exec.c computes the step:
 *   CG_LOOP without a reduction: one thread per element of the index space (grid stride);
 *   CG_LOOP with one: a block per output element, each thread summing a strided share of
 *     the reduced elements in order, then a tree over the block's shared memory in a fixed
 *     order, so the result never depends on timing;
 *   CG_GEMM: 64x64 tiles of C (32x32 where the output has few) in shared memory, 16 of K at a
 *     time, loaded with neighbouring threads on neighbouring floats (the next 16 into
 *     registers while the block computes on these), each thread holding 4x4 (2x2) results
 *     in registers; K split over several blocks where the tiles are too few to fill the
 *     GPU (summed in a fixed order); alpha and beta as the step's scalar expressions; the next step,
 *     when it is the matmul's elementwise epilogue, computed on the results in registers
 *     (one kernel for the two steps: "matmul epilogues" below);
 *   CG_CALL: one thread per row (or column of rows), in the runtime routine's order of
 *     operations (runtime/ops.c); dropout draws the same Philox words as the CPU.
 * Elementwise ops come from the op table: the S_ macros of ir/scalar.h are defined here to
 * print CUDA C, and IR_OPS's EW rows expand into one printer per op. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

typedef struct rd {
    FILE *f;
    const cg_program *p;
    char *err;
    size_t len;
    bool failed;
    bool single;   /* the compute type of the op being printed: float, else double */
    char **texts;  /* every string printed into, freed at the end */
    int ntexts, captexts;
    int *ce_pair;  /* per step: a softmax_ce and the softmax_ce_grad computed with it, -1 (pair_ce) */
    int64_t scratch_bytes; /* of ag_dev_args.scratch, the most a kernel uses (split-K matmuls) */
    int step;              /* the step being rendered */
    int *merge_run;        /* per step: the merged kernel (1, 2, ...) it is a device function of, 0: none */
    int64_t *shared;       /* per step: the static shared memory its function declares, bytes */
} rd;

static void fail(rd *R, const char *fmt, ...)
{
    if (R->failed)
        return;
    R->failed = true;
    va_list ap;
    va_start(ap, fmt);
    if (R->err && R->len)
        vsnprintf(R->err, R->len, fmt, ap);
    va_end(ap);
}

/* a string that lives until the end of the rendering */
static const char *tx(rd *R, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = malloc((size_t)n + 1);
    if (R->ntexts == R->captexts) {
        int cap = R->captexts ? 2 * R->captexts : 256;
        char **t = realloc(R->texts, sizeof *t * (size_t)cap);
        if (!t) {
            free(s);
            fail(R, "out of memory");
            return "0";
        }
        R->texts = t, R->captexts = cap;
    }
    if (!s) {
        fail(R, "out of memory");
        return "0";
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    R->texts[R->ntexts++] = s;
    return s;
}

/* ---- types, literals, conversions ---- */

static const char *ctype(ag_dtype t)
{
    switch (t) {
    case AG_F32: return "float";
    case AG_I32: return "int";
    case AG_U8: return "unsigned char";
    case AG_BOOL: return "bool";
    default: return "double";
    }
}

/* the type stored in memory: bool is a byte */
static const char *mtype(ag_dtype t) { return t == AG_BOOL ? "unsigned char" : ctype(t); }

static const char *real_lit(rd *R, double v, bool single)
{
    if (v != v)
        return single ? "__uint_as_float(0x7fc00000u)" : "(double)__uint_as_float(0x7fc00000u)";
    if (isinf(v))
        return tx(R, "%s__uint_as_float(0x%08xu)", single ? "" : "(double)", v > 0 ? 0x7f800000u : 0xff800000u);
    return single ? tx(R, "%af", (double)(float)v) : tx(R, "%a", v);
}

/* a constant of dtype t holding v as ir_tensor_set stores it */
static const char *lit(rd *R, double v, ag_dtype t)
{
    switch (t) {
    case AG_F32: return real_lit(R, v, true);
    case AG_I32:
        return tx(R, "%d", v != v ? 0 : v <= -2147483648.0 ? INT32_MIN : v >= 2147483647.0 ? INT32_MAX : (int32_t)v);
    case AG_U8: return tx(R, "%u", v != v || v <= 0 ? 0u : v >= 255 ? 255u : (unsigned)v);
    case AG_BOOL: return v != 0 ? "true" : "false";
    default: return real_lit(R, v, false);
    }
}

/* x, a value of dtype from, as dtype to (AG_F64 standing for the compute type double) */
static const char *cvt(rd *R, const char *x, ag_dtype from, ag_dtype to)
{
    if (from == to)
        return x;
    switch (to) {
    case AG_F32: return tx(R, "(float)%s", x);
    case AG_F64: return tx(R, "(double)%s", x);
    case AG_BOOL: return tx(R, "(%s != 0)", x);
    case AG_I32: return from == AG_U8 || from == AG_BOOL ? tx(R, "(int)%s", x) : tx(R, "ag_i32((double)%s)", x);
    case AG_U8: return from == AG_BOOL ? tx(R, "(unsigned char)%s", x) : tx(R, "ag_u8((double)%s)", x);
    default: fail(R, "no conversion to dtype %d", (int)to); return x;
    }
}

/* ---- the op table's scalar forms as CUDA C ---- */

static const char *s_k(rd *R, double v) { return real_lit(R, v, R->single); }
static const char *fn(rd *R, const char *f) { return R->single ? tx(R, "%sf", f) : f; }

#define S_K(v) s_k(R, (double)(v))
#define S_ADD(x, y) tx(R, "(%s + %s)", x, y)
#define S_SUB(x, y) tx(R, "(%s - %s)", x, y)
#define S_MUL(x, y) tx(R, "(%s * %s)", x, y)
#define S_DIV(x, y) tx(R, "(%s / %s)", x, y)
#define S_POW(x, y) tx(R, "%s(%s, %s)", fn(R, "pow"), x, y)
#define S_NEG(x) tx(R, "(-%s)", x)
#define S_EXP(x) tx(R, "%s(%s)", fn(R, "exp"), x)
#define S_LOG(x) tx(R, "%s(%s)", fn(R, "log"), x)
#define S_ABS(x) tx(R, "%s(%s)", fn(R, "fabs"), x)
#define S_SQRT(x) tx(R, "%s(%s)", fn(R, "sqrt"), x)
#define S_TANH(x) tx(R, "%s(%s)", fn(R, "tanh"), x)
#define S_CMP(x, op, y) tx(R, "(%s)(%s %s %s)", R->single ? "float" : "double", x, op, y)
#define S_LT(x, y) S_CMP(x, "<", y)
#define S_LE(x, y) S_CMP(x, "<=", y)
#define S_GT(x, y) S_CMP(x, ">", y)
#define S_GE(x, y) S_CMP(x, ">=", y)
#define S_EQ(x, y) S_CMP(x, "==", y)
#define S_NE(x, y) S_CMP(x, "!=", y)
#define S_SEL(c, x, y) tx(R, "(%s != 0 ? %s : %s)", c, x, y)

typedef const char *ew_printer(rd *R, const char *a, const char *b, const char *c);
#define EW_PRINT(name, arity, scalar, ...)                                           \
    static const char *cu_##name(rd *R, const char *a, const char *b, const char *c) \
    {                                                                                \
        (void)R, (void)a, (void)b, (void)c;                                          \
        return scalar;                                                               \
    }
#define EW_SKIP(...)
IR_OPS(EW_PRINT, EW_SKIP)
#define EW_ENTRY(name, arity, ...) [IR_##name] = {cu_##name, arity},
static const struct {
    ew_printer *print;
    int arity;
} ew_table[IR_OP_COUNT] = {IR_OPS(EW_ENTRY, EW_SKIP)};

/* A step's function: a kernel of its own, or, where it runs in one block with its
 * neighbours (mark_merges), a device function the merged kernel calls. */
static void kernel_head(rd *R, const char *name)
{
    if (R->merge_run && R->merge_run[R->step] > 0)
        fprintf(R->f, "__device__ __forceinline__ void %s(ag_dev_args a)\n{\n", name);
    else
        fprintf(R->f, "extern \"C\" __global__ void __launch_bounds__(%d) %s(ag_dev_args a)\n{\n", CG_CUDA_BLOCK,
                name);
}

/* ---- the source's prelude ---- */

static const char prelude[] =
    "/* Generated by aotgrad: CUDA C for the steps of one program (codegen/cuda/render.c). */\n"
    "#ifndef AG_DEV_PRELUDE /* once, where several programs share a file */\n"
    "#define AG_DEV_PRELUDE\n"
    "typedef struct ag_dev_args {\n"
    "    char *arena, *params;\n"
    "    char *inputs[8], *outputs[8];\n"
    "    long long N;\n"
    "    unsigned int seed;\n"
    "    unsigned long long step;\n"
    "    const unsigned long long *pstep; /* when set, the step is read here (a replayed CUDA graph) */\n"
    "    char *scratch; /* the plan's scratch_bytes, its counters zero before a launch (and after) */\n"
    "} ag_dev_args;\n\n"
    "/* the interpreter's conversions: NaN to 0, truncation toward zero, saturation */\n"
    "__device__ __forceinline__ int ag_i32(double v)\n"
    "{\n"
    "    return v != v ? 0 : v <= -2147483648.0 ? (-2147483647 - 1) : v >= 2147483647.0 ? 2147483647 : (int)v;\n"
    "}\n"
    "__device__ __forceinline__ unsigned char ag_u8(double v)\n"
    "{\n"
    "    return v != v || v <= 0 ? 0 : v >= 255 ? 255 : (unsigned char)v;\n"
    "}\n"
    "/* 4 elements moved as one access (16 bytes of floats or ints, 4 of bytes) */\n"
    "struct alignas(16) ag_v4f { float v[4]; };\n"
    "struct alignas(16) ag_v4i { int v[4]; };\n"
    "struct alignas(4) ag_v4b { unsigned char v[4]; };\n"
    "/* a maximum in which NaN wins */\n"
    "__device__ __forceinline__ float ag_maxf(float acc, float v) { return acc != acc || !(v > acc || v != v) ? acc : v; }\n\n"
    "/* Philox4x32-10 (runtime/rng.c): the same words as the CPU draws */\n"
    "__device__ __forceinline__ void ag_philox(unsigned c[4], unsigned k0, unsigned k1)\n"
    "{\n"
    "    for (int r = 0; r < 10; r++) {\n"
    "        unsigned h0 = __umulhi(0xD2511F53u, c[0]), l0 = 0xD2511F53u * c[0];\n"
    "        unsigned h1 = __umulhi(0xCD9E8D57u, c[2]), l1 = 0xCD9E8D57u * c[2];\n"
    "        unsigned n0 = h1 ^ c[1] ^ k0, n2 = h0 ^ c[3] ^ k1;\n"
    "        c[0] = n0, c[1] = l1, c[2] = n2, c[3] = l0;\n"
    "        k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;\n"
    "    }\n"
    "}\n"
    "#endif\n\n";

/* ---- buffers ---- */

static const char *dim(rd *R, cg_dim d)
{
    if (d.n == 0)
        return tx(R, "%lldLL", (long long)d.k);
    return tx(R, "(%lldLL + %lldLL * N)", (long long)d.k, (long long)d.n);
}

/* declares `T *bK` for every buffer a kernel uses: its region's base plus its offset */
static void declare_buffers(rd *R, const bool *used)
{
    for (int b = 0; b < R->p->nbuffers; b++) {
        if (!used[b])
            continue;
        const cg_buffer *x = &R->p->buffers[b];
        const char *base = x->region == CG_ARENA ? "a.arena" : x->region == CG_PARAMS ? "a.params"
                           : x->region == CG_INPUT ? tx(R, "a.inputs[%d]", (int)x->index)
                                                   : tx(R, "a.outputs[%d]", (int)x->index);
        if ((x->region == CG_INPUT || x->region == CG_OUTPUT) && x->index >= CG_CUDA_MAX_TENSORS)
            fail(R, "buffer %d: caller tensor %d (a launch carries %d)", b, (int)x->index, CG_CUDA_MAX_TENSORS);
        fprintf(R->f, "    %s *const b%d = (%s *)(%s + %s);\n", mtype(x->dtype), b, mtype(x->dtype), base,
                dim(R, x->offset));
    }
}

static bool check_buffer(rd *R, int32_t b, const char *what, int k)
{
    if (b < 0 || b >= R->p->nbuffers) {
        fail(R, "%s %d: buffer %d does not exist", what, k, (int)b);
        return false;
    }
    return true;
}

/* the element offset of an access at the indices i0.. (named idx[k]) */
static const char *at(rd *R, const cg_access *a, int rank, const char *const *idx)
{
    const char *s = dim(R, a->offset);
    for (int k = 0; k < rank; k++)
        if (a->stride[k].k || a->stride[k].n)
            s = tx(R, "%s + %s * %s", s, idx[k], dim(R, a->stride[k]));
    return s;
}

/* ---- loops ---- */

/* the loop's loads at the current indices, as locals lK; given[k], when set, is the value
 * of load k already in hand (a matmul's result in its epilogue) */
static void print_loads(rd *R, const cg_loop *l, const char *const *idx, const char *ind, const char *const *given)
{
    for (int k = 0; k < l->nloads; k++) {
        const cg_access *a = &l->load[k];
        ag_dtype t = R->p->buffers[a->buffer].dtype;
        if (given && given[k])
            fprintf(R->f, "%sconst %s l%d = %s;\n", ind, ctype(t), k, given[k]);
        else
            fprintf(R->f, "%sconst %s l%d = %sb%d[%s]%s;\n", ind, ctype(t), k, t == AG_BOOL ? "(" : "",
                    (int)a->buffer, at(R, a, l->rank, idx), t == AG_BOOL ? " != 0)" : "");
    }
}

/* the loop's expressions at the current indices, as locals vE */
/* lane < 0: one element, its loads (lK) printed by the caller; lane 0..3: lane of a 4-wide
 * step whose loads the caller printed as lK_LANE, values named vE_LANE */
static void print_exprs(rd *R, const cg_loop *l, const char *const *idx, const char *ind, int lane)
{
    const char *sfx = lane < 0 ? "" : tx(R, "_%d", lane);
    for (int e = 0; e < l->nexprs && !R->failed; e++) {
        const cg_expr *x = &l->expr[e];
        const char *v = NULL;
        switch (x->kind) {
        case CG_E_LOAD:
            if (x->load < 0 || x->load >= l->nloads) {
                fail(R, "expression %d: load %d does not exist", e, (int)x->load);
                return;
            }
            v = cvt(R, tx(R, "l%d%s", (int)x->load, sfx), R->p->buffers[l->load[x->load].buffer].dtype, x->dtype);
            break;
        case CG_E_CONST: v = lit(R, x->value, x->dtype); break;
        case CG_E_INDEX:
            if (x->axis < 0 || x->axis >= l->rank) {
                fail(R, "expression %d: index of axis %d outside the loop", e, (int)x->axis);
                return;
            }
            v = x->dtype == AG_BOOL ? tx(R, "(%s != 0)", idx[x->axis]) : tx(R, "(%s)%s", ctype(x->dtype), idx[x->axis]);
            break;
        case CG_E_OP: {
            if ((unsigned)x->op >= IR_OP_COUNT || !ew_table[x->op].print) {
                fail(R, "expression %d: op %d is not elementwise", e, (int)x->op);
                return;
            }
            const int32_t ops[3] = {x->a, x->b, x->c};
            int n = ew_table[x->op].arity;
            bool single = x->dtype == AG_F32;
            for (int k = 0; k < n; k++) {
                if (ops[k] < 0 || ops[k] >= e) {
                    fail(R, "expression %d: operand %d is not an earlier expression", e, k);
                    return;
                }
                single &= l->expr[ops[k]].dtype == AG_F32;
            }
            R->single = single;
            ag_dtype ct = single ? AG_F32 : AG_F64;
            const char *in[3] = {"0", "0", "0"};
            for (int k = 0; k < n; k++)
                in[k] = cvt(R, tx(R, "v%d%s", (int)ops[k], sfx), l->expr[ops[k]].dtype, ct);
            v = cvt(R, ew_table[x->op].print(R, in[0], in[1], in[2]), ct, x->dtype);
            break;
        }
        default: fail(R, "expression %d: unknown kind %d", e, (int)x->kind); return;
        }
        fprintf(R->f, "%sconst %s v%d%s = %s;\n", ind, ctype(x->dtype), e, sfx, v);
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

/* ---- 4 elements a thread: 16-byte accesses where the shape allows ---- */

static int64_t esize(ag_dtype t) { return t == AG_F32 || t == AG_I32 ? 4 : t == AG_F64 ? 8 : 1; }
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
        int64_t vb = 4 * esize(b->dtype);
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
                    at(R, a, l->rank, idx));
        for (int L = 0; L < 4; L++) {
            const char *src = vec ? tx(R, "w%d.v[%d]", k, L) : L ? tx(R, "l%d_0", k) : tx(R, "b%d[%s]", (int)a->buffer, at(R, a, l->rank, idx));
            fprintf(R->f, "        const %s l%d_%d = %s%s%s;\n", ctype(t), k, L, t == AG_BOOL && (vec || !L) ? "(" : "",
                    src, t == AG_BOOL && (vec || !L) ? " != 0)" : "");
        }
    }
    for (int L = 0; L < 4 && !R->failed; L++) {
        const char *lane[IR_MAX_RANK];
        memcpy(lane, idx, sizeof lane);
        lane[last] = tx(R, "(%s + %d)", idx[last], L);
        print_exprs(R, l, lane, "        ", L);
    }
    for (int s = 0; s < l->nstores && !R->failed; s++) {
        const cg_store *st = &l->store[s];
        ag_dtype t = R->p->buffers[st->at.buffer].dtype;
        fprintf(R->f, "        %s s%d;\n", v4type(t), s);
        for (int L = 0; L < 4; L++)
            fprintf(R->f, "        s%d.v[%d] = %s;\n", s, L,
                    cvt(R, tx(R, "v%d_%d", (int)st->expr, L), l->expr[st->expr].dtype, t));
        fprintf(R->f, "        *(%s *)(b%d + %s) = s%d;\n", v4type(t), (int)st->at.buffer, at(R, &st->at, l->rank, idx), s);
    }
    fprintf(R->f, "    }\n}\n\n");
}

/* acc combined with v in the stored dtype t, as the CPU's reduction stores it */
static const char *combine(rd *R, ir_op how, ag_dtype t, const char *acc, const char *v)
{
    if (how == IR_max)
        return t == AG_F32 ? tx(R, "ag_maxf(%s, %s)", acc, v) : tx(R, "(%s > %s ? %s : %s)", v, acc, v, acc);
    switch (t) {
    case AG_F32: return tx(R, "%s + %s", acc, v);
    case AG_BOOL: return tx(R, "(%s || %s)", acc, v);
    case AG_I32: return tx(R, "ag_i32((double)%s + (double)%s)", acc, v);
    default: return tx(R, "ag_u8((double)%s + (double)%s)", acc, v);
    }
}

/* the loop's stores of one element (no reduction) */
static void print_stores(rd *R, const cg_loop *l, const char *const *idx, const char *ind)
{
    for (int s = 0; s < l->nstores && !R->failed; s++) {
        const cg_store *st = &l->store[s];
        ag_dtype t = R->p->buffers[st->at.buffer].dtype;
        const char *v = cvt(R, tx(R, "v%d", (int)st->expr), l->expr[st->expr].dtype, t);
        fprintf(R->f, "%sb%d[%s] = %s;\n", ind, (int)st->at.buffer, at(R, &st->at, l->rank, idx), v);
    }
}

/* the loop's counts and buffers, before anything of it is printed */
static bool loop_valid(rd *R, const cg_loop *l, bool *used)
{
    if (l->rank < 0 || l->rank > IR_MAX_RANK || l->nloads < 0 || l->nloads > CG_MAX_LOADS || l->nexprs < 0 ||
        l->nexprs > CG_MAX_EXPRS || l->nstores < 0 || l->nstores > CG_MAX_STORES) {
        fail(R, "loop counts out of range");
        return false;
    }
    if (l->reduce && l->combine != IR_sum && l->combine != IR_max) {
        fail(R, "reduction by op %d (sum or max expected)", (int)l->combine);
        return false;
    }
    for (int k = 0; k < l->nloads; k++)
        if (check_buffer(R, l->load[k].buffer, "load", k))
            used[l->load[k].buffer] = true;
    for (int k = 0; k < l->nstores; k++) {
        if (check_buffer(R, l->store[k].at.buffer, "store", k))
            used[l->store[k].at.buffer] = true;
        if (l->store[k].expr < 0 || l->store[k].expr >= l->nexprs)
            fail(R, "store %d: expression %d does not exist", k, (int)l->store[k].expr);
    }
    return !R->failed;
}

static void render_loop(rd *R, const cg_loop *l, const char *name, cg_cuda_launch *launch)
{
    bool used[4096] = {false};
    if (R->p->nbuffers > 4096) {
        fail(R, "%d buffers", R->p->nbuffers);
        return;
    }
    if (!loop_valid(R, l, used))
        return;
    const char *idx[IR_MAX_RANK];
    for (int k = 0; k < l->rank; k++)
        idx[k] = tx(R, "i%d", k);
    unsigned all = (1u << l->rank) - 1, kept = all & ~(unsigned)l->reduce;
    kernel_head(R, name);
    fprintf(R->f, "    const long long N = a.N;\n    (void)N;\n");
    declare_buffers(R, used);
    /* units: the elements (no reduction) or the output elements (a block each) */
    double units[3] = {1, 0, 0};
    for (int k = 0; k < l->rank; k++) {
        fprintf(R->f, "    const long long e%d = %s;\n", k, dim(R, l->extent[k]));
        if (kept >> k & 1) { /* units *= k + n N, kept to degree 2 */
            double c0 = units[0], c1 = units[1], c2 = units[2], a0 = (double)l->extent[k].k, a1 = (double)l->extent[k].n;
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
        print_loads(R, l, idx, "        ", NULL);
        print_exprs(R, l, idx, "        ", -1);
        print_stores(R, l, idx, "        ");
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
        fprintf(R->f, "    __shared__ %s part%d[%d];\n", ctype(t), s, CG_CUDA_BLOCK);
        R->shared[R->step] += CG_CUDA_BLOCK * (int64_t)ir_dtype_size(t);
    }
    fprintf(R->f, "    for (long long o_ = blockIdx.x; o_ < outs; o_ += gridDim.x) {\n");
    for (int s = 0; s < l->nstores; s++) {
        ag_dtype t = R->p->buffers[l->store[s].at.buffer].dtype;
        fprintf(R->f, "        %s acc%d = %s;\n", ctype(t), s, lit(R, l->combine == IR_max ? -INFINITY : 0, t));
    }
    fprintf(R->f, "        for (long long j_ = threadIdx.x; j_ < red; j_ += blockDim.x) {\n");
    unflatten(R, l, kept, "o_", "            ");
    fprintf(R->f, "            {\n");
    unflatten(R, l, l->reduce, "j_", "            ");
    print_loads(R, l, idx, "            ", NULL);
    print_exprs(R, l, idx, "            ", -1);
    for (int s = 0; s < l->nstores && !R->failed; s++) {
        const cg_store *st = &l->store[s];
        ag_dtype t = R->p->buffers[st->at.buffer].dtype;
        const char *v = cvt(R, tx(R, "v%d", (int)st->expr), l->expr[st->expr].dtype, t);
        fprintf(R->f, "            acc%d = %s;\n", s, combine(R, l->combine, t, tx(R, "acc%d", s), v));
    }
    fprintf(R->f, "            }\n        }\n");
    for (int s = 0; s < l->nstores; s++)
        fprintf(R->f, "        part%d[threadIdx.x] = acc%d;\n", s, s);
    fprintf(R->f, "        __syncthreads();\n"
                  "        for (int w_ = %d / 2; w_ > 0; w_ /= 2) {\n"
                  "            if ((int)threadIdx.x < w_) {\n",
            CG_CUDA_BLOCK);
    for (int s = 0; s < l->nstores; s++) {
        ag_dtype t = R->p->buffers[l->store[s].at.buffer].dtype;
        fprintf(R->f, "                part%d[threadIdx.x] = %s;\n", s,
                combine(R, l->combine, t, tx(R, "part%d[threadIdx.x]", s), tx(R, "part%d[threadIdx.x + w_]", s)));
    }
    fprintf(R->f, "            }\n            __syncthreads();\n        }\n        if (threadIdx.x == 0) {\n");
    unflatten(R, l, kept, "o_", "            ");
    for (int k = 0; k < l->rank; k++)
        if (l->reduce >> k & 1)
            fprintf(R->f, "            const long long i%d = 0;\n", k);
    for (int s = 0; s < l->nstores; s++) {
        const cg_store *st = &l->store[s];
        ag_dtype t = R->p->buffers[st->at.buffer].dtype;
        fprintf(R->f, "            b%d[%s] = %spart%d[0];\n", (int)st->at.buffer, at(R, &st->at, l->rank, idx),
                t == AG_BOOL ? "(unsigned char)" : "", s);
    }
    fprintf(R->f, "        }\n        __syncthreads();\n    }\n}\n\n");
}
/* ---- matmuls ---- */

/* a scalar expression of a gemm (alpha, beta): loads at their offsets, in float */
static const char *gemm_scalar(rd *R, const cg_gemm *g, int32_t e, int depth)
{
    if (e < 0 || e >= g->nexprs || depth > 16) {
        fail(R, "gemm: scalar expression %d does not exist", (int)e);
        return "0";
    }
    const cg_expr *x = &g->expr[e];
    switch (x->kind) {
    case CG_E_CONST: return real_lit(R, x->value, true);
    case CG_E_LOAD:
        if (x->load < 0 || x->load >= g->nloads || !check_buffer(R, g->load[x->load].buffer, "gemm load", x->load))
            return "0";
        return tx(R, "(float)b%d[%s]", (int)g->load[x->load].buffer, dim(R, g->load[x->load].offset));
    case CG_E_OP: {
        if ((unsigned)x->op >= IR_OP_COUNT || !ew_table[x->op].print) {
            fail(R, "gemm: expression %d is not elementwise", (int)e);
            return "0";
        }
        const char *a = x->a >= 0 ? gemm_scalar(R, g, x->a, depth + 1) : "0";
        const char *b = x->b >= 0 ? gemm_scalar(R, g, x->b, depth + 1) : "0";
        R->single = true;
        return tx(R, "(float)%s", ew_table[x->op].print(R, a, b, "0"));
    }
    default: fail(R, "gemm: expression %d of kind %d", (int)e, (int)x->kind); return "0";
    }
}

/* C in tiles of 16 PER x 16 PER, K by 16, PER x PER results a thread (16 x 16 threads). PER 4
 * (64x64 tiles) where the output has enough tiles to fill a GPU, else PER 2 (32x32): four
 * times the blocks for the small matrices of a batch of 256. */
enum { TK = 16, FILL_TILES = 64 };
/* Split K into up to MAX_SPLITS parts where a batch's tiles number fewer than FILL_UNITS
 * (two blocks for each of an H100 SXM's or H200's 132 multiprocessors): the MLP's matmuls at
 * batch 256 have 8 to 200 tiles, and a block walking all of K alone waits on memory. */
enum { FILL_UNITS = 264, MAX_SPLITS = 32 };

/* epi, when set, is the next step: an elementwise loop over C's elements (epilogue_fits),
 * computed here from each result in registers; its loads marked in is_c read that result,
 * and C itself is stored only if write_c (no store of epi takes its place). */
static void render_gemm(rd *R, const cg_gemm *g, const cg_loop *epi, const bool *is_c, bool write_c,
                        const char *name, cg_cuda_launch *launch)
{
    bool used[4096] = {false};
    if (R->p->nbuffers > 4096) {
        fail(R, "%d buffers", R->p->nbuffers);
        return;
    }
    if (epi && !loop_valid(R, epi, used))
        return;
    const cg_access *acc[3] = {&g->a, &g->b, &g->c};
    for (int k = 0; k < 3; k++)
        if (check_buffer(R, acc[k]->buffer, "gemm operand", k))
            used[acc[k]->buffer] = true;
    for (int k = 0; k < g->nloads; k++)
        if (check_buffer(R, g->load[k].buffer, "gemm load", k))
            used[g->load[k].buffer] = true;
    if (R->failed)
        return;
    fprintf(R->f, "/* C = alpha op(A) op(B) + beta C, row major%s%s%s */\n", g->ta ? ", A transposed" : "",
            g->tb ? ", B transposed" : "", epi ? tx(R, ", then the next step's loop on each element (%d %s)",
                                                    epi->nstores, epi->nstores == 1 ? "store" : "stores")
                                              : "");
    kernel_head(R, name);
    fprintf(R->f, "    const long long N = a.N;\n    (void)N;\n");
    declare_buffers(R, used);
    fprintf(R->f, "    const long long M = %s, NC = %s, K = %s;\n", dim(R, g->m), dim(R, g->n), dim(R, g->k));
    fprintf(R->f, "    const float *A = b%d + %s, *B = b%d + %s;\n    float *C = b%d + %s;\n", (int)g->a.buffer,
            dim(R, g->a.offset), (int)g->b.buffer, dim(R, g->b.offset), (int)g->c.buffer, dim(R, g->c.offset));
    fprintf(R->f, "    const float alpha = %s, beta = %s;\n", gemm_scalar(R, g, g->alpha, 0),
            gemm_scalar(R, g, g->beta, 0));
    int64_t B = R->p->max_batch > 0 ? R->p->max_batch : 1;
    int64_t big = ((g->m.k + g->m.n * B + 63) / 64) * ((g->n.k + g->n.n * B + 63) / 64);
    const int PER = big >= FILL_TILES ? 4 : 2, TILE = 16 * PER, L = TK * TILE / CG_CUDA_BLOCK;
    /* split K where the tiles at the largest batch are too few to fill the GPU */
    int64_t tiles_max = ((g->m.k + g->m.n * B + TILE - 1) / TILE) * ((g->n.k + g->n.n * B + TILE - 1) / TILE),
            ksteps = (g->k.k + g->k.n * B + TK - 1) / TK;
    int64_t S = tiles_max > 0 ? (FILL_UNITS + tiles_max - 1) / tiles_max : 1;
    S = S > ksteps / 2 ? ksteps / 2 : S; /* at least 2 steps of K a split */
    S = S > MAX_SPLITS ? MAX_SPLITS : S < 1 ? 1 : S;
    /* the scratch is sized at the largest batch: unknown (0), C's tiles may outgrow it */
    if (tiles_max > CG_CUDA_COUNTERS || (R->p->max_batch <= 0 && (g->m.n || g->n.n)))
        S = 1;
    /* element (i, k) of op(A) and (k, j) of op(B); lda, ldb as cblas_sgemm's */
    const char *ael = g->ta ? "A[(k) * M + (i)]" : "A[(i) * K + (k)]";
    const char *bel = g->tb ? "B[(j) * K + (k)]" : "B[(k) * NC + (j)]";
    /* Neighbouring threads load neighbouring addresses of global memory: along k where the
     * operand's rows run along k, else along the tile's other side. The shared rows are
     * TILE + 2 floats (2 mod 32 banks), so that a warp storing down two columns (16 k by 2)
     * hits 32 distinct banks. */
    const char *along_k[2] = {tx(R, "q %% %d", TK), tx(R, "q / %d", TK)},
               *along_m[2] = {tx(R, "q / %d", TILE), tx(R, "q %% %d", TILE)};
    const char *a_kk = g->ta ? along_m[0] : along_k[0], *a_mm = g->ta ? along_m[1] : along_k[1];
    const char *b_kk = g->tb ? along_k[0] : along_m[0], *b_mm = g->tb ? along_k[1] : along_m[1];
    fprintf(R->f,
            "    __shared__ float As[%d][%d], Bs[%d][%d];\n"
            "    const long long tn = (NC + %d) / %d, tiles = ((M + %d) / %d) * tn;\n"
            "    const int tx = threadIdx.x %% 16, ty = threadIdx.x / 16;\n",
            TK, TILE + 2, TK, TILE + 2, TILE - 1, TILE, TILE - 1, TILE);
    R->shared[R->step] += 2 * TK * (TILE + 2) * 4 + (S > 1 ? 4 : 0); /* As, Bs, last */
    if (S > 1)
        fprintf(R->f,
                "    /* K in %d splits, a block each: each stores its partial tile in the scratch, and the\n"
                "     * last of a tile's blocks to finish (a counter) sums them in split order */\n"
                "    const long long S = %lld, kc = ((K + S - 1) / S + %d) / %d * %d; /* K a split, in whole steps */\n"
                "    unsigned *const count = (unsigned *)a.scratch; /* a tile's finished splits; back to 0 at the end */\n"
                "    float *const part = (float *)(a.scratch + %d);\n"
                "    __shared__ int last;\n"
                "    for (long long w = blockIdx.x; w < tiles * S; w += gridDim.x) {\n"
                "        const long long t = w / S, kb = (w %% S) * kc, ke = kb + kc < K ? kb + kc : K;\n",
                (int)S, (long long)S, TK - 1, TK, TK, CG_CUDA_COUNTERS * 4);
    else
        fprintf(R->f, "    for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {\n"
                      "        const long long kb = 0, ke = K;\n");
    fprintf(R->f,
            "        const long long i0 = (t / tn) * %d, j0 = (t %% tn) * %d;\n"
            "        float r[%d][%d];\n"
            "#pragma unroll\n"
            "        for (int u = 0; u < %d; u++)\n"
            "#pragma unroll\n"
            "            for (int v = 0; v < %d; v++)\n"
            "                r[u][v] = 0;\n"
            "        float pa[%d], pb[%d]; /* the next step's tiles, loaded while this one computes */\n"
            "#pragma unroll\n"
            "        for (int l = 0; l < %d; l++) {\n"
            "            const int q = threadIdx.x + l * %d;\n"
            "            {\n"
            "                const int kk = %s, mm = %s;\n"
            "                const long long i = i0 + mm, k = kb + kk;\n"
            "                pa[l] = i < M && k < ke ? %s : 0.0f;\n"
            "            }\n"
            "            {\n"
            "                const int kk = %s, mm = %s;\n"
            "                const long long j = j0 + mm, k = kb + kk;\n"
            "                pb[l] = j < NC && k < ke ? %s : 0.0f;\n"
            "            }\n"
            "        }\n"
            "        for (long long k0 = kb; k0 < ke; k0 += %d) {\n"
            "#pragma unroll\n"
            "            for (int l = 0; l < %d; l++) {\n"
            "                const int q = threadIdx.x + l * %d;\n"
            "                As[%s][%s] = pa[l];\n"
            "                Bs[%s][%s] = pb[l];\n"
            "            }\n"
            "            __syncthreads();\n"
            "            if (k0 + %d < ke) {\n"
            "#pragma unroll\n"
            "                for (int l = 0; l < %d; l++) {\n"
            "                    const int q = threadIdx.x + l * %d;\n"
            "                    {\n"
            "                        const int kk = %s, mm = %s;\n"
            "                        const long long i = i0 + mm, k = k0 + %d + kk;\n"
            "                        pa[l] = i < M && k < ke ? %s : 0.0f;\n"
            "                    }\n"
            "                    {\n"
            "                        const int kk = %s, mm = %s;\n"
            "                        const long long j = j0 + mm, k = k0 + %d + kk;\n"
            "                        pb[l] = j < NC && k < ke ? %s : 0.0f;\n"
            "                    }\n"
            "                }\n"
            "            }\n"
            "#pragma unroll\n"
            "            for (int kk = 0; kk < %d; kk++) {\n"
            "                float x[%d], y[%d];\n"
            "#pragma unroll\n"
            "                for (int u = 0; u < %d; u++)\n"
            "                    x[u] = As[kk][ty * %d + u], y[u] = Bs[kk][tx * %d + u];\n"
            "#pragma unroll\n"
            "                for (int u = 0; u < %d; u++)\n"
            "#pragma unroll\n"
            "                    for (int v = 0; v < %d; v++)\n"
            "                        r[u][v] += x[u] * y[v];\n"
            "            }\n"
            "            __syncthreads();\n"
            "        }\n",
            TILE, TILE, PER, PER, PER, PER, L, L, L, CG_CUDA_BLOCK, a_kk, a_mm, ael, b_kk, b_mm, bel, TK, L, CG_CUDA_BLOCK,
            a_kk, a_mm, b_kk, b_mm, TK, L, CG_CUDA_BLOCK, a_kk, a_mm, TK, ael, b_kk, b_mm, TK, bel, TK, PER, PER, PER,
            PER, PER, PER, PER);
    if (S > 1) /* a thread's partials are its own slots: the last block's same thread reads them */
        fprintf(R->f,
                "        {\n"
                "            float *const mine = part + (w * %d + threadIdx.x) * %d;\n"
                "#pragma unroll\n"
                "            for (int u = 0; u < %d; u++)\n"
                "#pragma unroll\n"
                "                for (int v = 0; v < %d; v++)\n"
                "                    mine[u * %d + v] = r[u][v];\n"
                "        }\n"
                "        __threadfence(); /* the partial is visible before the count says so */\n"
                "        __syncthreads();\n"
                "        if (threadIdx.x == 0)\n"
                "            last = atomicAdd(&count[t], 1u) == (unsigned)(S - 1);\n"
                "        __syncthreads();\n"
                "        if (!last)\n"
                "            continue;\n"
                "        __threadfence();\n"
                "#pragma unroll\n"
                "        for (int u = 0; u < %d; u++)\n"
                "#pragma unroll\n"
                "            for (int v = 0; v < %d; v++)\n"
                "                r[u][v] = 0;\n"
                "        for (long long s = 0; s < S; s++) { /* in split order, whichever finished last */\n"
                "            const float *const split = part + ((t * S + s) * %d + threadIdx.x) * %d;\n"
                "#pragma unroll\n"
                "            for (int u = 0; u < %d; u++)\n"
                "#pragma unroll\n"
                "                for (int v = 0; v < %d; v++)\n"
                "                    r[u][v] += __ldcg(split + u * %d + v); /* from L2: other SMs wrote it */\n"
                "        }\n"
                "        if (threadIdx.x == 0)\n"
                "            count[t] = 0;\n",
                CG_CUDA_BLOCK, PER * PER, PER, PER, PER, PER, PER, CG_CUDA_BLOCK, PER * PER, PER, PER, PER);
    fprintf(R->f,
            "#pragma unroll\n"
            "        for (int u = 0; u < %d; u++)\n"
            "#pragma unroll\n"
            "            for (int v = 0; v < %d; v++) {\n"
            "                const long long i = i0 + ty * %d + u, j = j0 + tx * %d + v;\n",
            PER, PER, PER, PER);
    if (!epi) {
        fprintf(R->f, "                if (i < M && j < NC) /* beta 0: C is not read (cblas_sgemm's rule) */\n"
                      "                    C[i * NC + j] = beta == 0.0f ? alpha * r[u][v] : alpha * r[u][v] + beta * C[i * NC + j];\n");
    } else { /* beta is 0 (epilogue_fits): C is not read */
        const char *idx[2] = {epi->rank == 2 ? "i" : "j", "j"}, *given[CG_MAX_LOADS] = {NULL};
        for (int k = 0; k < epi->nloads; k++)
            given[k] = is_c[k] ? "c_" : NULL;
        fprintf(R->f, "                if (i < M && j < NC) {\n"
                      "                    const float c_ = alpha * r[u][v];\n");
        print_loads(R, epi, idx, "                    ", given);
        print_exprs(R, epi, idx, "                    ", -1);
        print_stores(R, epi, idx, "                    ");
        if (write_c)
            fprintf(R->f, "                    C[i * NC + j] = c_;\n");
        fprintf(R->f, "                }\n");
    }
    fprintf(R->f, "            }\n    }\n}\n\n");
    /* tiles = ceil(m / TILE) ceil(n / TILE), a side that grows with N bounded by
     * (side + TILE - 1) / TILE (the units must be a polynomial in N), a fixed one exact */
    double m1 = (double)g->m.n / TILE, n1 = (double)g->n.n / TILE;
    double m0 = g->m.n ? (g->m.k + TILE - 1.0) / TILE : (double)((g->m.k + TILE - 1) / TILE),
           n0 = g->n.n ? (g->n.k + TILE - 1.0) / TILE : (double)((g->n.k + TILE - 1) / TILE);
    launch->units[0] = S * m0 * n0, launch->units[1] = S * (m0 * n1 + m1 * n0), launch->units[2] = S * m1 * n1;
    launch->units_per_block = 1;
    int64_t scratch = CG_CUDA_COUNTERS * 4 + S * tiles_max * TILE * TILE * 4; /* counters, partials */
    if (S > 1 && R->scratch_bytes < scratch)
        R->scratch_bytes = scratch;
}

/* ---- runtime routines ---- */

static const char *arg_ptr(rd *R, const cg_call *c, int k)
{
    return tx(R, "(b%d + %s)", (int)c->arg[k].buffer, dim(R, c->arg[k].offset));
}

static void render_call(rd *R, const cg_call *c, const char *name, cg_cuda_launch *launch, int step)
{
    /* with its gradient (pair_ce): the gradient's call, whose output this kernel fills */
    const cg_call *with = c->op == IR_softmax_ce && R->ce_pair[step] >= 0 ? &R->p->steps[R->ce_pair[step]].call : NULL;
    bool scale_only = c->op == IR_softmax_ce_grad && R->ce_pair[step] >= 0;
    static const int nargs[IR_OP_COUNT] = {[IR_softmax] = 2,    [IR_log_softmax] = 2, [IR_softmax_ce] = 3,
                                           [IR_softmax_ce_grad] = 4, [IR_argmax] = 2, [IR_cumsum] = 2,
                                           [IR_dropout] = 2};
    if ((unsigned)c->op >= IR_OP_COUNT || !nargs[c->op] || c->nargs != nargs[c->op])
        {
        fail(R, "no CUDA routine for op %d with %d operands", (int)c->op, (int)c->nargs);
        return;
    }
    bool used[4096] = {false};
    if (R->p->nbuffers > 4096)
        {
        fail(R, "%d buffers", R->p->nbuffers);
        return;
    }
    for (int k = 0; k < c->nargs; k++)
        if (check_buffer(R, c->arg[k].buffer, "operand", k))
            used[c->arg[k].buffer] = true;
    if (with)
        used[with->arg[3].buffer] = true;
    if (R->failed)
        return;
    ag_dtype t0 = R->p->buffers[c->arg[0].buffer].dtype;
    kernel_head(R, name);
    fprintf(R->f, "    const long long N = a.N;\n    (void)N;\n");
    declare_buffers(R, used);
    fprintf(R->f, "    const long long outer = %s, len = %s, inner = %s;\n", dim(R, c->rows), dim(R, c->len),
            dim(R, c->inner));
    launch->units_per_block = CG_CUDA_BLOCK;
    /* units: rows x inner columns (dropout: elements) */
    double r0 = (double)c->rows.k, r1 = (double)c->rows.n, i0 = (double)c->inner.k, i1 = (double)c->inner.n;
    launch->units[0] = r0 * i0, launch->units[1] = r0 * i1 + r1 * i0, launch->units[2] = r1 * i1;
    if (c->op == IR_dropout) {
        double l0 = (double)c->len.k, l1 = (double)c->len.n, u0 = launch->units[0], u1 = launch->units[1];
        launch->units[0] = u0 * l0, launch->units[1] = u0 * l1 + u1 * l0, launch->units[2] = u1 * l1;
        uint64_t threshold = !(c->p > 0) ? (uint64_t)1 << 32 : c->p >= 1 ? 0 : (uint64_t)floor((1 - c->p) * 4294967296.0);
        fprintf(R->f,
                "    const float *x = %s;\n    float *out = %s;\n"
                "    const long long n = outer * len * inner;\n"
                "    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;\n"
                "         e += (long long)gridDim.x * blockDim.x) {\n"
                "        const unsigned long long b = (unsigned long long)e / 4, st = a.pstep ? *a.pstep : a.step;\n"
                "        unsigned w[4] = {(unsigned)b, (unsigned)(b >> 32), (unsigned)st, (unsigned)(st >> 32)};\n"
                "        ag_philox(w, a.seed, %uu);\n"
                "        const bool keep = (unsigned long long)w[e %% 4] < %lluULL;\n"
                "        out[e] = keep ? x[e] * %s : 0.0f;\n"
                "    }\n}\n\n",
                arg_ptr(R, c, 0), arg_ptr(R, c, 1), (unsigned)c->site, (unsigned long long)threshold,
                real_lit(R, (double)(float)(1 / (1 - c->p)), true));
        return; /* p >= 1: the threshold is 0, nothing is kept (the scale is never used) */
    }
    /* one thread per (o, i): element j of it at (o len + j) inner + i */
    fprintf(R->f, "    for (long long c_ = blockIdx.x * (long long)blockDim.x + threadIdx.x; c_ < outer * inner;\n"
                  "         c_ += (long long)gridDim.x * blockDim.x) {\n"
                  "        const long long o = c_ / inner, i = c_ %% inner, at = o * len * inner + i;\n"
                  "        (void)at;\n");
    switch (c->op) {
    case IR_softmax:
    case IR_log_softmax: {
        bool lg = c->op == IR_log_softmax;
        fprintf(R->f,
                "        const float *x = %s + at;\n        float *y = %s + at;\n"
                "        float m = -__uint_as_float(0x7f800000u), s = 0;\n"
                "        for (long long j = 0; j < len; j++) m = x[j * inner] > m ? x[j * inner] : m;\n"
                "        for (long long j = 0; j < len; j++) y[j * inner] = x[j * inner] - m;\n"
                "        for (long long j = 0; j < len; j++) {\n"
                "            const float e = expf(y[j * inner]);\n%s"
                "            s += e;\n        }\n%s"
                "        for (long long j = 0; j < len; j++) y[j * inner] = %s;\n",
                arg_ptr(R, c, 0), arg_ptr(R, c, 1), lg ? "" : "            y[j * inner] = e;\n",
                lg ? "        s = logf(s);\n" : "", lg ? "y[j * inner] - s" : "y[j * inner] / s");
        break;
    }
    case IR_softmax_ce:
    case IR_softmax_ce_grad: {
        bool grad = c->op == IR_softmax_ce_grad;
        if (with) { /* the loss, and e / s (minus 1 at the label) where the gradient goes */
            fprintf(R->f,
                    "        /* softmax_ce with its gradient (step %d): one pass over the row's e^(x - m) */\n"
                    "        const float *x = %s + o * len;\n        const int k = %s[o];\n"
                    "        float *g = %s + o * len;\n"
                    "        if (k < 0 || k >= len) {\n            %s[o] = 0;\n            continue;\n        }\n"
                    "        float m = -__uint_as_float(0x7f800000u), s = 0;\n"
                    "        for (long long j = 0; j < len; j++) m = x[j] > m ? x[j] : m;\n"
                    "        for (long long j = 0; j < len; j++) {\n"
                    "            const float e = expf(x[j] - m);\n            g[j] = e;\n            s += e;\n        }\n"
                    "        %s[o] = logf(s) - (x[k] - m);\n"
                    "        const float ek = g[k];\n"
                    "        for (long long j = 0; j < len; j++) g[j] = g[j] / s;\n"
                    "        g[k] = ek / s - 1.0f;\n",
                    R->ce_pair[step], arg_ptr(R, c, 0), arg_ptr(R, c, 1), tx(R, "(b%d + %s)", (int)with->arg[3].buffer,
                    dim(R, with->arg[3].offset)), arg_ptr(R, c, 2), arg_ptr(R, c, 2));
            break;
        }
        if (scale_only) { /* step %d left e / s - (j == k) here: times the row's d */
            fprintf(R->f,
                    "        /* the gradient of softmax_ce step %d, which left e / s - (j == label) here */\n"
                    "        const int k = %s[o];\n        const float d = %s[o];\n        float *g = %s + o * len;\n"
                    "        const bool valid = k >= 0 && k < len;\n"
                    "        for (long long j = 0; j < len; j++) g[j] = valid ? g[j] * d : 0.0f;\n",
                    R->ce_pair[step], arg_ptr(R, c, 1), arg_ptr(R, c, 2), arg_ptr(R, c, 3));
            break;
        }
        fprintf(R->f,
                "        const float *x = %s + o * len;\n        const int k = %s[o];\n",
                arg_ptr(R, c, 0), arg_ptr(R, c, 1));
        if (grad)
            fprintf(R->f, "        const float d = %s[o];\n        float *g = %s + o * len;\n", arg_ptr(R, c, 2),
                    arg_ptr(R, c, 3));
        fprintf(R->f,
                "        if (k < 0 || k >= len) {\n%s"
                "            continue;\n        }\n"
                "        float m = -__uint_as_float(0x7f800000u), s = 0;\n"
                "        for (long long j = 0; j < len; j++) m = x[j] > m ? x[j] : m;\n",
                grad ? "            for (long long j = 0; j < len; j++) g[j] = 0;\n"
                     : tx(R, "            %s[o] = 0;\n", arg_ptr(R, c, 2)));
        if (grad)
            fprintf(R->f, "        for (long long j = 0; j < len; j++) g[j] = x[j] - m;\n"
                          "        for (long long j = 0; j < len; j++) {\n"
                          "            const float e = expf(g[j]);\n            g[j] = e;\n            s += e;\n        }\n"
                          "        const float ek = g[k];\n"
                          "        for (long long j = 0; j < len; j++) g[j] = g[j] / s * d;\n"
                          "        g[k] = (ek / s - 1.0f) * d;\n");
        else
            fprintf(R->f, "        for (long long j = 0; j < len; j++) s += expf(x[j] - m);\n"
                          "        %s[o] = logf(s) - (x[k] - m);\n",
                    arg_ptr(R, c, 2));
        break;
    }
    case IR_argmax:
        if (t0 == AG_F32)
            fprintf(R->f,
                    "        const float *x = %s + at;\n        int *y = %s + o * inner + i;\n"
                    "        float best = x[0];\n        int k = 0;\n"
                    "        for (long long j = 1; j < len && best == best; j++) {\n"
                    "            const float v = x[j * inner];\n"
                    "            if (v > best || v != v) best = v, k = (int)j;\n"
                    "        }\n        *y = k;\n",
                    arg_ptr(R, c, 0), arg_ptr(R, c, 1));
        else
            fprintf(R->f,
                    "        const int *x = %s + at;\n        int *y = %s + o * inner + i;\n"
                    "        int best = x[0], k = 0;\n"
                    "        for (long long j = 1; j < len; j++)\n"
                    "            if (x[j * inner] > best) best = x[j * inner], k = (int)j;\n"
                    "        *y = k;\n",
                    arg_ptr(R, c, 0), arg_ptr(R, c, 1));
        break;
    case IR_cumsum:
        if (t0 == AG_F32)
            fprintf(R->f,
                    "        const float *x = %s + at;\n        float *y = %s + at;\n        float s = 0;\n"
                    "        for (long long j = 0; j < len; j++) y[j * inner] = s = s + x[j * inner];\n",
                    arg_ptr(R, c, 0), arg_ptr(R, c, 1));
        else
            fprintf(R->f,
                    "        const int *x = %s + at;\n        int *y = %s + at;\n        long long s = 0;\n"
                    "        for (long long j = 0; j < len; j++) {\n"
                    "            s += x[j * inner];\n"
                    "            y[j * inner] = s < -2147483647LL - 1 ? -2147483647 - 1 : s > 2147483647LL ? 2147483647 : (int)s;\n"
                    "        }\n",
                    arg_ptr(R, c, 0), arg_ptr(R, c, 1));
        break;
    default: break;
    }
    fprintf(R->f, "    }\n}\n\n");
}

/* ---- softmax + cross-entropy with its gradient in one pass ----
 * A softmax_ce step and a later softmax_ce_grad of the same logits and labels: the first
 * kernel also leaves e^(x - m) / s (minus 1 at the label) in the gradient's output, and the
 * second only scales it by the row's d, the CPU routine's arithmetic in the same order. Only
 * where nothing between the two writes the logits or the labels or touches that output, and
 * the output misses what the first step reads and writes: byte ranges, affine in N, checked
 * at both ends of [1, max_batch] (degree 1 only; anything else is taken to overlap). */

typedef struct span {
    int64_t region;
    double lo[2], hi[2]; /* bytes at N = 1 and N = max_batch */
    bool known;
} span;

static int64_t region_of(const cg_buffer *b)
{
    return b->region == CG_INPUT ? 2 + 2 * (int64_t)b->index : b->region == CG_OUTPUT ? 3 + 2 * (int64_t)b->index
                                                                                       : (int64_t)b->region;
}

/* elements offset + [0, count) of buffer b; count = c0 + c1 N */
static span span_of(const rd *R, int32_t buf, cg_dim offset, double c0, double c1, bool linear)
{
    const cg_buffer *b = &R->p->buffers[buf];
    double es = (double)esize(b->dtype), B = (double)(R->p->max_batch > 0 ? R->p->max_batch : 1), n[2] = {1, B};
    span s = {region_of(b), {0, 0}, {0, 0}, linear};
    for (int k = 0; k < 2; k++) {
        s.lo[k] = (double)(b->offset.k + b->offset.n * n[k]) + es * (double)(offset.k + offset.n * n[k]);
        s.hi[k] = s.lo[k] + es * (c0 + c1 * n[k]);
    }
    return s;
}

static bool overlap(span a, span b)
{
    if (a.region != b.region)
        return false;
    if (!a.known || !b.known)
        return true;
    bool below = a.hi[0] <= b.lo[0] && a.hi[1] <= b.lo[1], above = b.hi[0] <= a.lo[0] && b.hi[1] <= a.lo[1];
    return !below && !above;
}

/* (k0 + k1 N)(j0 + j1 N) as c0 + c1 N; false past degree 1 */
static bool lin_mul(double k0, double k1, double j0, double j1, double *c0, double *c1)
{
    *c0 = *c1 = 0;
    if (k1 != 0 && j1 != 0)
        return false;
    *c0 = k0 * j0, *c1 = k0 * j1 + k1 * j0;
    return true;
}

/* the spans a step touches; written ones flagged */
static int step_spans(const rd *R, const cg_step *st, span *out, bool *written, int cap)
{
    int n = 0;
    if (st->kind == CG_LOOP) {
        const cg_loop *l = &st->loop;
        for (int x = 0; x < l->nloads + l->nstores && n < cap; x++) {
            const cg_access *a = x < l->nloads ? &l->load[x] : &l->store[x - l->nloads].at;
            double c0 = 1, c1 = 0; /* 1 + sum (extent - 1) stride */
            bool lin = true;
            for (int k = 0; k < l->rank && lin; k++) {
                double e0 = 0, e1 = 0;
                lin = a->stride[k].k >= 0 && a->stride[k].n >= 0 &&
                      lin_mul((double)l->extent[k].k - 1, (double)l->extent[k].n, (double)a->stride[k].k,
                              (double)a->stride[k].n, &e0, &e1);
                c0 += e0, c1 += e1;
            }
            written[n] = x >= l->nloads;
            out[n++] = span_of(R, a->buffer, a->offset, c0, c1, lin);
        }
    } else if (st->kind == CG_GEMM) {
        const cg_gemm *g = &st->gemm;
        const cg_access *acc[3] = {&g->a, &g->b, &g->c};
        const cg_dim dims[3][2] = {{g->m, g->k}, {g->k, g->n}, {g->m, g->n}};
        for (int x = 0; x < 3 && n < cap; x++) {
            double c0, c1;
            bool lin = lin_mul((double)dims[x][0].k, (double)dims[x][0].n, (double)dims[x][1].k, (double)dims[x][1].n,
                               &c0, &c1);
            written[n] = x == 2;
            out[n++] = span_of(R, acc[x]->buffer, acc[x]->offset, c0, c1, lin);
        }
        for (int x = 0; x < g->nloads && n < cap; x++)
            written[n] = false, out[n++] = span_of(R, g->load[x].buffer, g->load[x].offset, 1, 0, true);
    } else {
        const cg_call *c = &st->call;
        double r0, r1, c0, c1;
        bool lin = lin_mul((double)c->rows.k, (double)c->rows.n, (double)c->len.k, (double)c->len.n, &r0, &r1) &&
                   c->inner.n == 0;
        c0 = r0 * (double)c->inner.k, c1 = r1 * (double)c->inner.k;
        for (int x = 0; x < c->nargs && n < cap; x++) /* whole tensors: a bound for every operand */
            written[n] = x == c->nargs - 1, out[n++] = span_of(R, c->arg[x].buffer, c->arg[x].offset, c0, c1, lin);
    }
    return n;
}

static bool same_access(const cg_access *a, const cg_access *b)
{
    return a->buffer == b->buffer && a->offset.k == b->offset.k && a->offset.n == b->offset.n;
}

static void pair_ce(rd *R)
{
    const cg_program *p = R->p;
    for (int s = 0; s < p->nsteps; s++)
        R->ce_pair[s] = -1;
    for (int g = 0; g < p->nsteps; g++) {
        const cg_step *sg = &p->steps[g];
        if (sg->kind != CG_CALL || sg->call.op != IR_softmax_ce_grad || sg->call.nargs != 4)
            continue;
        const cg_call *cg = &sg->call;
        span out[1];
        bool w[1];
        cg_step only_out = *sg;
        only_out.call.nargs = 1, only_out.call.arg[0] = cg->arg[3];
        step_spans(R, &only_out, out, w, 1);
        for (int f = g - 1; f >= 0; f--) {
            const cg_step *sf = &p->steps[f];
            span sp[CG_MAX_LOADS + CG_MAX_STORES + 8];
            bool wr[CG_MAX_LOADS + CG_MAX_STORES + 8];
            int n = step_spans(R, sf, sp, wr, (int)(sizeof sp / sizeof *sp));
            bool match = sf->kind == CG_CALL && sf->call.op == IR_softmax_ce && sf->call.nargs == 3 &&
                         R->ce_pair[f] < 0 && same_access(&sf->call.arg[0], &cg->arg[0]) &&
                         same_access(&sf->call.arg[1], &cg->arg[1]) && sf->call.rows.k == cg->rows.k &&
                         sf->call.rows.n == cg->rows.n && sf->call.len.k == cg->len.k && sf->call.len.n == cg->len.n;
            if (match) {
                bool clear = true; /* the gradient's output misses the logits, labels and losses */
                for (int k = 0; k < n; k++)
                    clear &= !overlap(sp[k], out[0]);
                if (clear)
                    R->ce_pair[f] = g, R->ce_pair[g] = f;
                break;
            }
            /* between the two: the output untouched, the logits and labels not written */
            span ly[2];
            bool lw[2];
            cg_step lab = *sg;
            lab.call.nargs = 2;
            step_spans(R, &lab, ly, lw, 2);
            bool clear = true;
            for (int k = 0; k < n; k++)
                clear &= !overlap(sp[k], out[0]) && !(wr[k] && (overlap(sp[k], ly[0]) || overlap(sp[k], ly[1])));
            if (!clear)
                break;
        }
    }
}

/* ---- matmul epilogues ----
 * The CPU runs a matmul's epilogue (bias, activation, activation gradient) as the loop after
 * the sgemm call; here the loop is computed inside the matmul kernel from each result in
 * registers, one launch and one pass over C fewer. Only where that is the same computation:
 * the loop is the next step, over C's elements ([m, n], or [n] when m is 1) without a
 * reduction; beta is 0 (C is not read); its loads of C are C's elements at the loop's index,
 * its other loads miss C; each store is in place over C (then C itself is not stored) or
 * misses C, A, B and the scalars alpha and beta are made of (the matmul reads those while
 * other tiles already store). */

static bool same_dim(cg_dim a, cg_dim b) { return a.k == b.k && a.n == b.n; }

/* whether a reads or writes exactly element (i, j) of the gemm's C at the loop's index */
static bool at_c(const rd *R, const cg_gemm *g, const cg_loop *l, const cg_access *a)
{
    const cg_buffer *ab = &R->p->buffers[a->buffer], *cb = &R->p->buffers[g->c.buffer];
    if (region_of(ab) != region_of(cb) || ab->dtype != AG_F32)
        return false;
    bool same = ab->offset.k + 4 * a->offset.k == cb->offset.k + 4 * g->c.offset.k &&
                ab->offset.n + 4 * a->offset.n == cb->offset.n + 4 * g->c.offset.n;
    const cg_dim one = {1, 0};
    if (l->rank == 1)
        return same && same_dim(a->stride[0], one);
    return same && same_dim(a->stride[1], one) && (same_dim(a->stride[0], g->n) || same_dim(g->m, one));
}

static bool epilogue_fits(const rd *R, const cg_step *mm, const cg_step *next, bool *is_c, bool *write_c)
{
    if (mm->kind != CG_GEMM || next->kind != CG_LOOP)
        return false;
    const cg_gemm *g = &mm->gemm;
    const cg_loop *l = &next->loop;
    const cg_dim one = {1, 0};
    if (l->reduce || l->nloads > CG_MAX_LOADS || l->nstores > CG_MAX_STORES || l->nloads < 0 || l->nstores < 0)
        return false;
    if (!(l->rank == 2 && same_dim(l->extent[0], g->m) && same_dim(l->extent[1], g->n)) &&
        !(l->rank == 1 && same_dim(g->m, one) && same_dim(l->extent[0], g->n)))
        return false;
    if (g->beta < 0 || g->beta >= g->nexprs || g->expr[g->beta].kind != CG_E_CONST || g->expr[g->beta].value != 0)
        return false;
    for (int k = 0; k < l->nloads; k++)
        if (l->load[k].buffer < 0 || l->load[k].buffer >= R->p->nbuffers)
            return false;
    for (int k = 0; k < l->nstores; k++)
        if (l->store[k].at.buffer < 0 || l->store[k].at.buffer >= R->p->nbuffers)
            return false;
    span gs[3 + 4], ls[CG_MAX_LOADS + CG_MAX_STORES];
    bool gw[3 + 4], lw[CG_MAX_LOADS + CG_MAX_STORES];
    int ng = step_spans(R, mm, gs, gw, 3 + 4);
    step_spans(R, next, ls, lw, CG_MAX_LOADS + CG_MAX_STORES);
    const span c = gs[2];
    bool reads_c = false;
    *write_c = true;
    for (int k = 0; k < l->nloads; k++) {
        is_c[k] = at_c(R, g, l, &l->load[k]);
        reads_c |= is_c[k];
        if (!is_c[k] && overlap(ls[k], c))
            return false;
    }
    for (int k = 0; k < l->nstores; k++) {
        const span w = ls[l->nloads + k];
        if (at_c(R, g, l, &l->store[k].at)) {
            *write_c = false;
            continue;
        }
        for (int x = 0; x < ng; x++)
            if (overlap(w, gs[x]))
                return false;
    }
    return reads_c;
}

/* ---- programs ---- */

int64_t cg_cuda_blocks(const cg_cuda_launch *l, int64_t N)
{
    double n = (double)N, u = l->units[0] + l->units[1] * n + l->units[2] * n * n;
    double b = ceil(u / (l->units_per_block > 0 ? l->units_per_block : 1));
    return b < 1 ? 1 : b > 2147483647.0 ? 2147483647 : (int64_t)b;
}

void cg_cuda_plan_free(cg_cuda_plan *plan)
{
    free(plan->step);
    plan->step = NULL;
    plan->nsteps = 0;
    plan->scratch_bytes = 0;
}

/* Every step into R->f, and plan's launches: one a step, a matmul with its epilogue one. */
static void render_steps(rd *R, cg_cuda_plan *plan)
{
    const cg_program *p = R->p;
    char msg[512] = "";
    plan->nsteps = 0;
    for (int s = 0; s < p->nsteps && !R->failed; s++) {
        const cg_step *st = &p->steps[s];
        cg_cuda_launch *l = &plan->step[plan->nsteps++];
        memset(l, 0, sizeof *l);
        snprintf(l->name, sizeof l->name, "%s_k%d", p->name, s);
        l->first_step = s, l->steps = 1;
        R->step = s;
        bool is_c[CG_MAX_LOADS], write_c;
        switch (st->kind) {
        case CG_LOOP: render_loop(R, &st->loop, l->name, l); break;
        case CG_GEMM:
            if (s + 1 < p->nsteps && epilogue_fits(R, st, &p->steps[s + 1], is_c, &write_c)) {
                render_gemm(R, &st->gemm, &p->steps[s + 1].loop, is_c, write_c, l->name, l);
                l->steps = 2;
                s++;
            } else
                render_gemm(R, &st->gemm, NULL, NULL, true, l->name, l);
            break;
        case CG_CALL: render_call(R, &st->call, l->name, l, s); break;
        default: fail(R, "unknown kind %d", (int)st->kind);
        }
        if (R->failed && R->err && R->len) { /* name the step */
            snprintf(msg, sizeof msg, "%s", R->err);
            snprintf(R->err, R->len, "%s: step %d: %s", p->name, s, msg);
        }
    }
}

/* Launches that need one block at the largest batch (the loss's and metrics' scalars, a
 * batch's rows at 256): a run of them becomes one kernel of one block calling each step's
 * function in order, with a barrier between them, which orders the block's memory as
 * separate launches would. Each launch costs the GPU a few microseconds even in a CUDA
 * graph; the MLP's step has ten such in a row. Each function keeps its own shared arrays
 * (ptxas adds them up), so a run ends before their sum passes MERGE_SHARED, well under the
 * 48 KiB of static shared memory a kernel may have. Numbers the runs in R->merge_run. */
enum { MERGE_SHARED = 24 * 1024 };

static bool small(const cg_cuda_launch *l, int64_t B) { return cg_cuda_blocks(l, B) == 1; }

static void mark_merges(rd *R, const cg_cuda_plan *plan)
{
    int64_t B = R->p->max_batch > 0 ? R->p->max_batch : 1;
    int runs = 0;
    for (int a = 0, b; a < plan->nsteps; a = b > a ? b : a + 1) {
        int64_t bytes = 0;
        for (b = a; b < plan->nsteps && small(&plan->step[b], B) &&
                    bytes + R->shared[plan->step[b].first_step] <= MERGE_SHARED;
             b++)
            bytes += R->shared[plan->step[b].first_step];
        runs += b - a >= 2;
        for (int k = a; b - a >= 2 && k < b; k++)
            R->merge_run[plan->step[k].first_step] = runs;
    }
}

/* The merged kernels after the steps' functions, and plan's launches for them. */
static void write_merges(rd *R, cg_cuda_plan *plan)
{
    int n = 0;
    for (int a = 0, b; a < plan->nsteps; a = b) {
        int run = R->merge_run[plan->step[a].first_step];
        for (b = a + 1; b < plan->nsteps && run > 0 && R->merge_run[plan->step[b].first_step] == run; b++)
            ;
        cg_cuda_launch merged = plan->step[a];
        if (b - a >= 2) {
            const cg_cuda_launch *last = &plan->step[b - 1];
            snprintf(merged.name, sizeof merged.name, "%s_k%d_%d", R->p->name, plan->step[a].first_step,
                     last->first_step + last->steps - 1);
            merged.units[0] = 1, merged.units[1] = merged.units[2] = 0, merged.units_per_block = 1;
            merged.steps = last->first_step + last->steps - merged.first_step;
            merged.merged = true;
            fprintf(R->f, "/* steps %d to %d in one block, a barrier between them (each needs one block) */\n",
                    merged.first_step, merged.first_step + merged.steps - 1);
            fprintf(R->f, "extern \"C\" __global__ void __launch_bounds__(%d) %s(ag_dev_args a)\n{\n", CG_CUDA_BLOCK,
                    merged.name);
            for (int k = a; k < b; k++)
                fprintf(R->f, "%s    %s(a);\n", k > a ? "    __syncthreads();\n" : "", plan->step[k].name);
            fprintf(R->f, "}\n\n");
        }
        plan->step[n++] = merged;
    }
    plan->nsteps = n;
}

bool cg_cuda_render(FILE *f, const cg_program *p, cg_cuda_plan *plan, char *err, size_t len)
{
    rd R = {.f = f, .p = p, .err = err, .len = len};
    memset(plan, 0, sizeof *plan);
    if (!p || !p->name || p->nsteps < 0) {
        fail(&R, "cg_cuda_render: no program");
        return false;
    }
    size_t n = (size_t)(p->nsteps ? p->nsteps : 1);
    plan->step = calloc(n, sizeof *plan->step);
    R.ce_pair = calloc(n, sizeof *R.ce_pair);
    R.merge_run = calloc(n, sizeof *R.merge_run);
    R.shared = calloc(n, sizeof *R.shared);
    char *first = NULL;
    size_t first_len = 0;
    FILE *sink = open_memstream(&first, &first_len);
    if (!plan->step || !R.ce_pair || !R.merge_run || !R.shared || !sink)
        fail(&R, "out of memory");
    if (!R.failed) { /* first into nothing, for the launches' sizes; then for real */
        pair_ce(&R);
        R.f = sink;
        render_steps(&R, plan);
        mark_merges(&R, plan);
        R.f = f; /* the second pass counts these again */
        R.scratch_bytes = 0;
        memset(R.shared, 0, n * sizeof *R.shared);
    }
    if (sink)
        fclose(sink);
    free(first);
    if (!R.failed) {
        fputs(prelude, f);
        render_steps(&R, plan);
    }
    if (!R.failed)
        write_merges(&R, plan);
    for (int k = 0; k < R.ntexts; k++)
        free(R.texts[k]);
    free(R.texts);
    free(R.ce_pair);
    free(R.merge_run);
    free(R.shared);
    if (!R.failed && ferror(f))
        fail(&R, "cannot write the CUDA source");
    plan->scratch_bytes = R.scratch_bytes;
    if (R.failed)
        cg_cuda_plan_free(plan);
    return !R.failed;
}

/* ---- the device runtime's own kernels ---- */

static const char support[] =
    "/* The device runtime's kernels (runtime/cuda.c): batches gathered on the device, and the\n"
    " * step's bookkeeping, so that a train step never waits on the host. */\n"
    "#ifndef AG_DEV_SUPPORT\n"
    "#define AG_DEV_SUPPORT\n"
    "typedef struct ag_dev_state {\n"
    "    unsigned long long step; /* the global step: dropout's counter */\n"
    "    long long first;         /* the next batch's first position in the epoch's order */\n"
    "    long long bad_step;      /* the first step whose loss was not finite, -1: none */\n"
    "    long long steps;         /* steps of this epoch so far */\n"
    "    double loss_sum;         /* sum of loss * rows over the epoch's batches */\n"
    "    double metric_sum[8];\n"
    "} ag_dev_state;\n\n"
    "typedef struct ag_step_outs {\n"
    "    const float *loss;\n"
    "    const void *metric[8];\n"
    "    int metric_i32[8];\n"
    "    int nmetrics;\n"
    "    long long rows;\n"
    "} ag_step_outs;\n\n"
    "/* dst row r = src row order[first + r], rows of row_bytes bytes */\n"
    "extern \"C\" __global__ void __launch_bounds__(256) ag_gather(const unsigned char *src, unsigned char *dst,\n"
    "    const int *order, const ag_dev_state *s, long long rows, long long row_bytes)\n"
    "{\n"
    "    const long long n = rows * row_bytes;\n"
    "    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {\n"
    "        const long long r = e / row_bytes, b = e % row_bytes;\n"
    "        dst[e] = src[(long long)order[s->first + r] * row_bytes + b];\n"
    "    }\n"
    "}\n\n"
    "/* bytes copied: an update that is not in place, over its parameter */\n"
    "extern \"C\" __global__ void __launch_bounds__(256) ag_copy(unsigned char *dst, const unsigned char *src, long long bytes)\n"
    "{\n"
    "    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < bytes; e += (long long)gridDim.x * blockDim.x)\n"
    "        dst[e] = src[e];\n"
    "}\n\n"
    "/* after a step: its loss and metrics into the sums, the first non-finite loss, the next step */\n"
    "extern \"C\" __global__ void ag_step_end(ag_dev_state *s, ag_step_outs o)\n"
    "{\n"
    "    if (blockIdx.x != 0 || threadIdx.x != 0)\n"
    "        return;\n"
    "    const float l = *o.loss;\n"
    "    if (!(l - l == 0.0f) && s->bad_step < 0) /* NaN or infinite */\n"
    "        s->bad_step = (long long)s->step;\n"
    "    s->loss_sum += (double)l * (double)o.rows;\n"
    "    for (int k = 0; k < o.nmetrics && k < 8; k++)\n"
    "        s->metric_sum[k] += o.metric_i32[k] ? (double)*(const int *)o.metric[k] : (double)*(const float *)o.metric[k];\n"
    "    s->step += 1;\n"
    "    s->first += o.rows;\n"
    "    s->steps += 1;\n"
    "}\n"
    "#endif\n\n";

bool cg_cuda_render_support(FILE *f)
{
    fputs(support, f);
    return !ferror(f);
}
