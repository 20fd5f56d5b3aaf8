/* The kernel IR as CUDA C (see render.h): the renderer's state and strings, types and
 * literals, the op table's printers, buffers, and the program (its steps in order, the
 * merged one-block kernels, the launch plan). The steps' kernels are in render_loop.c,
 * render_gemm.c and render_call.c (render_internal.h lists what each holds).
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
 *     (one kernel for the two steps: "matmul epilogues" in render_gemm.c);
 *   CG_CALL: one thread per row (or column of rows), in the runtime routine's order of
 *     operations (runtime/ops.c); dropout draws the same Philox words as the CPU.
 * Elementwise ops come from the op table: the S_ macros of ir/scalar.h are defined here to
 * print CUDA C, and IR_OPS's EW rows expand into one printer per op. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "render_internal.h"

/* ---- failures and the rendering's strings ---- */

/* a string that lives until the end of the rendering */
const char *rd_tx(rd *R, const char *fmt, ...)
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
            rd_fail(R, "out of memory");
            return "0";
        }
        R->texts = t, R->captexts = cap;
    }
    if (!s) {
        rd_fail(R, "out of memory");
        return "0";
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    R->texts[R->ntexts++] = s;
    return s;
}

/* ---- types, literals, conversions ---- */

const char *rd_ctype(ag_dtype t)
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
static const char *mtype(ag_dtype t) { return t == AG_BOOL ? "unsigned char" : rd_ctype(t); }
/* the bytes of an element in memory */
int64_t rd_esize(ag_dtype t) { return t == AG_F32 || t == AG_I32 ? 4 : t == AG_F64 ? 8 : 1; }

const char *rd_real_lit(rd *R, double v, bool single)
{
    if (v != v)
        return single ? "__uint_as_float(0x7fc00000u)" : "(double)__uint_as_float(0x7fc00000u)";
    if (isinf(v))
        return rd_tx(R, "%s__uint_as_float(0x%08xu)", single ? "" : "(double)", v > 0 ? 0x7f800000u : 0xff800000u);
    return single ? rd_tx(R, "%af", (double)(float)v) : rd_tx(R, "%a", v);
}

/* a constant of dtype t holding v as ir_tensor_set stores it */
const char *rd_lit(rd *R, double v, ag_dtype t)
{
    switch (t) {
    case AG_F32: return rd_real_lit(R, v, true);
    case AG_I32:
        return rd_tx(R, "%d", v != v ? 0 : v <= -2147483648.0 ? INT32_MIN : v >= 2147483647.0 ? INT32_MAX : (int32_t)v);
    case AG_U8: return rd_tx(R, "%u", v != v || v <= 0 ? 0u : v >= 255 ? 255u : (unsigned)v);
    case AG_BOOL: return v != 0 ? "true" : "false";
    default: return rd_real_lit(R, v, false);
    }
}

/* x, a value of dtype from, as dtype to (AG_F64 standing for the compute type double) */
const char *rd_cvt(rd *R, const char *x, ag_dtype from, ag_dtype to)
{
    if (from == to)
        return x;
    switch (to) {
    case AG_F32: return rd_tx(R, "(float)%s", x);
    case AG_F64: return rd_tx(R, "(double)%s", x);
    case AG_BOOL: return rd_tx(R, "(%s != 0)", x);
    case AG_I32: return from == AG_U8 || from == AG_BOOL ? rd_tx(R, "(int)%s", x) : rd_tx(R, "ag_i32((double)%s)", x);
    case AG_U8: return from == AG_BOOL ? rd_tx(R, "(unsigned char)%s", x) : rd_tx(R, "ag_u8((double)%s)", x);
    default: rd_fail(R, "no conversion to dtype %d", (int)to); return x;
    }
}

/* ---- the op table's scalar forms as CUDA C ---- */

static const char *s_k(rd *R, double v) { return rd_real_lit(R, v, R->single); }
static const char *fn(rd *R, const char *f) { return R->single ? rd_tx(R, "%sf", f) : f; }

#define S_K(v) s_k(R, (double)(v))
#define S_ADD(x, y) rd_tx(R, "(%s + %s)", x, y)
#define S_SUB(x, y) rd_tx(R, "(%s - %s)", x, y)
#define S_MUL(x, y) rd_tx(R, "(%s * %s)", x, y)
#define S_DIV(x, y) rd_tx(R, "(%s / %s)", x, y)
#define S_POW(x, y) rd_tx(R, "%s(%s, %s)", fn(R, "pow"), x, y)
#define S_NEG(x) rd_tx(R, "(-%s)", x)
#define S_EXP(x) rd_tx(R, "%s(%s)", fn(R, "exp"), x)
#define S_LOG(x) rd_tx(R, "%s(%s)", fn(R, "log"), x)
#define S_ABS(x) rd_tx(R, "%s(%s)", fn(R, "fabs"), x)
#define S_SQRT(x) rd_tx(R, "%s(%s)", fn(R, "sqrt"), x)
#define S_TANH(x) rd_tx(R, "%s(%s)", fn(R, "tanh"), x)
#define S_CMP(x, op, y) rd_tx(R, "(%s)(%s %s %s)", R->single ? "float" : "double", x, op, y)
#define S_LT(x, y) S_CMP(x, "<", y)
#define S_LE(x, y) S_CMP(x, "<=", y)
#define S_GT(x, y) S_CMP(x, ">", y)
#define S_GE(x, y) S_CMP(x, ">=", y)
#define S_EQ(x, y) S_CMP(x, "==", y)
#define S_NE(x, y) S_CMP(x, "!=", y)
#define S_SEL(c, x, y) rd_tx(R, "(%s != 0 ? %s : %s)", c, x, y)

#define EW_PRINT(name, arity, scalar, ...)                                           \
    static const char *cu_##name(rd *R, const char *a, const char *b, const char *c) \
    {                                                                                \
        (void)R, (void)a, (void)b, (void)c;                                          \
        return scalar;                                                               \
    }
#define EW_SKIP(...)
IR_OPS(EW_PRINT, EW_SKIP)
#define EW_ENTRY(name, arity, ...) [IR_##name] = {cu_##name, arity},
const rd_ew rd_ew_table[IR_OP_COUNT] = {IR_OPS(EW_ENTRY, EW_SKIP)};

/* A step's function: a kernel of its own, or, where it runs in one block with its
 * neighbours (mark_merges), a device function the merged kernel calls. */
void rd_kernel_head(rd *R, const char *name)
{
    const cg_step *st = &R->p->steps[R->step]; /* its kernel and the model lines it came from */
    char sn[32];
    fprintf(R->f, "/* %s", cg_step_name(R->p, R->step, sn, sizeof sn));
    for (int k = 0; k < st->nlines; k++) {
        if (k == 0)
            fprintf(R->f, ": %s%s%d", R->p->file ? R->p->file : "", R->p->file ? ":" : "line ", (int)st->lines[k]);
        else
            fprintf(R->f, ",%d", (int)st->lines[k]);
    }
    fprintf(R->f, " */\n");
    if (R->merge_run && R->merge_run[R->step] > 0)
        fprintf(R->f, "__device__ __forceinline__ void %s(ag_dev_args a)\n{\n", name);
    else
        fprintf(R->f, "extern \"C\" __global__ void __launch_bounds__(%d) %s(ag_dev_args a)\n{\n", CG_CUDA_BLOCK, name);
}

/* ---- the source's prelude ---- */

static const char prelude_head[] =
    "/* Generated by aotgrad: CUDA C for the steps of one program (codegen/cuda/render.c). */\n"
    "#ifndef AG_DEV_PRELUDE /* once, where several programs share a file */\n"
    "#define AG_DEV_PRELUDE\n";

/* The kernels' argument struct, from the list of runtime/args.h (the host fills the same). */
static void print_dev_args(FILE *f)
{
    fputs("typedef struct ag_dev_args {\n", f);
#define PRINT_FIELD(dtype, htype, name, dims, what) \
    fprintf(f, "    %s%s%s%s; /* %s */\n", #dtype, #dtype[sizeof #dtype - 2] == '*' ? "" : " ", #name, #dims, what);
    AG_DEV_ARGS_FIELDS(PRINT_FIELD)
#undef PRINT_FIELD
    fputs("} ag_dev_args;\n\n", f);
}

static const char prelude[] =
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
    "__device__ __forceinline__ float ag_maxf(float acc, float v) { return acc != acc || !(v > acc || v != v) ? acc : "
    "v; }\n\n"
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

const char *rd_dim(rd *R, cg_dim d)
{
    if (d.n == 0)
        return rd_tx(R, "%lldLL", (long long)d.k);
    return rd_tx(R, "(%lldLL + %lldLL * N)", (long long)d.k, (long long)d.n);
}

/* declares `T *bK` for every buffer a kernel uses: its region's base plus its offset */
void rd_declare_buffers(rd *R, const bool *used)
{
    for (int b = 0; b < R->p->nbuffers; b++) {
        if (!used[b])
            continue;
        const cg_buffer *x = &R->p->buffers[b];
        const char *base = x->region == CG_ARENA    ? "a.arena"
                           : x->region == CG_PARAMS ? "a.params"
                           : x->region == CG_INPUT  ? rd_tx(R, "a.inputs[%d]", (int)x->index)
                                                    : rd_tx(R, "a.outputs[%d]", (int)x->index);
        if ((x->region == CG_INPUT || x->region == CG_OUTPUT) && x->index >= CG_CUDA_MAX_TENSORS)
            rd_fail(R, "buffer %d: caller tensor %d (a launch carries %d)", b, (int)x->index, CG_CUDA_MAX_TENSORS);
        fprintf(R->f, "    %s *const b%d = (%s *)(%s + %s);\n", mtype(x->dtype), b, mtype(x->dtype), base,
                rd_dim(R, x->offset));
    }
}

bool rd_check_buffer(rd *R, int32_t b, const char *what, int k)
{
    if (b < 0 || b >= R->p->nbuffers) {
        rd_fail(R, "%s %d: buffer %d does not exist", what, k, (int)b);
        return false;
    }
    return true;
}

/* the element offset of an access at the indices i0.. (named idx[k]) */
const char *rd_at(rd *R, const cg_access *a, int rank, const char *const *idx)
{
    const char *s = rd_dim(R, a->offset);
    for (int k = 0; k < rank; k++)
        if (a->stride[k].k || a->stride[k].n)
            s = rd_tx(R, "%s + %s * %s", s, idx[k], rd_dim(R, a->stride[k]));
    return s;
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
        char sn[32];
        snprintf(l->name, sizeof l->name, "%s_%s", p->name, cg_step_name(p, s, sn, sizeof sn)); /* k3 for @k3 */
        l->first_step = s, l->steps = 1;
        R->step = s;
        bool is_c[CG_MAX_LOADS], write_c;
        switch (st->kind) {
        case CG_LOOP: rd_render_loop(R, &st->loop, l->name, l); break;
        case CG_GEMM:
            if (s + 1 < p->nsteps && rd_epilogue_fits(R, st, &p->steps[s + 1], is_c, &write_c)) {
                rd_render_gemm(R, &st->gemm, &p->steps[s + 1].loop, is_c, write_c, l->name, l);
                l->steps = 2;
                s++;
            } else
                rd_render_gemm(R, &st->gemm, NULL, NULL, true, l->name, l);
            break;
        case CG_CALL: rd_render_call(R, &st->call, l->name, l, s); break;
        default: rd_fail(R, "unknown kind %d", (int)st->kind);
        }
        if (R->failed && R->err && R->len) { /* name the step */
            snprintf(msg, sizeof msg, "%s", R->err);
            rt_fail(R->err, R->len, "%s: step %d: %s", p->name, s, msg);
        }
    }
}

/* Launches that need one block at the largest batch (the loss's and metrics' scalars, a
 * batch's rows at 256), or are loops over at most MERGE_ELEMENTS elements there (the
 * updates of small parameters and their moments, a small bias's gradient): a run of them
 * becomes one kernel of one block calling each step's function in order, with a barrier
 * between them, which orders the block's memory as separate launches would; every loop is
 * grid-stride, so one block computes all of it in a few passes. Each launch costs the GPU a
 * few microseconds even in a CUDA graph, more than a block's pass over 4096 elements; the
 * MLP's step has ten one-block launches in a row, and with Adam the updates of b1, W2 and b2
 * seven more. Each function keeps its own shared arrays (ptxas adds them up), so a run ends
 * before their sum passes MERGE_SHARED, well under the 48 KiB of static shared memory a
 * kernel may have. Numbers the runs in R->merge_run. */
enum { MERGE_SHARED = 24 * 1024, MERGE_ELEMENTS = 4096 };

/* the elements a loop visits at batch B (its outputs times the elements each reduces) */
static double loop_elements(const cg_loop *l, int64_t B)
{
    double n = 1;
    for (int k = 0; k < l->rank; k++)
        n *= (double)l->extent[k].k + (double)l->extent[k].n * (double)B;
    return n;
}

static bool small(const rd *R, const cg_cuda_launch *l, int64_t B)
{
    if (l->collective)
        return false;
    const cg_step *st = &R->p->steps[l->first_step];
    return cg_cuda_blocks(l, B) == 1 ||
           (l->steps == 1 && st->kind == CG_LOOP && loop_elements(&st->loop, B) <= MERGE_ELEMENTS);
}

static void mark_merges(rd *R, const cg_cuda_plan *plan)
{
    int64_t B = R->p->batch > 0 ? R->p->batch : 1; /* a choice for the batch the plan was laid out for */
    int runs = 0;
    for (int a = 0, b; a<plan->nsteps; a = b> a ? b : a + 1) {
        int64_t bytes = 0;
        for (b = a; b < plan->nsteps && small(R, &plan->step[b], B) &&
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
            char s0[32], s1[32];
            snprintf(merged.name, sizeof merged.name, "%s_%s_to_%s", R->p->name,
                     cg_step_name(R->p, plan->step[a].first_step, s0, sizeof s0),
                     cg_step_name(R->p, last->first_step + last->steps - 1, s1, sizeof s1));
            merged.units[0] = 1, merged.units[1] = merged.units[2] = 0, merged.units_per_block = 1;
            merged.steps = last->first_step + last->steps - merged.first_step;
            merged.merged = true;
            fprintf(R->f, "/* steps %d to %d in one block, a barrier between them (each needs one block, or is small):",
                    merged.first_step, merged.first_step + merged.steps - 1);
            for (int k = a; k < b; k++)
                fprintf(R->f, "%s %s", k > a ? "," : "", cg_step_name(R->p, plan->step[k].first_step, s0, sizeof s0));
            fprintf(R->f, " */\n");
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
        rd_fail(&R, "cg_cuda_render: no program");
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
        rd_fail(&R, "out of memory");
    if (!R.failed) { /* first into nothing, for the launches' sizes; then for real */
        rd_pair_ce(&R);
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
        fputs(prelude_head, f), print_dev_args(f), fputs(prelude, f);
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
        rd_fail(&R, "cannot write the CUDA source");
    plan->scratch_bytes = R.scratch_bytes;
    if (R.failed)
        cg_cuda_plan_free(plan);
    return !R.failed;
}
