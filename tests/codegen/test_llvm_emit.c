/* The LLVM emitter (codegen/llvm/emit.h) on cg_programs built by hand, JIT'd and run on
 * random data at batch 1, 7, 256 and 1001 against the interpreter (f32 mode) on the
 * equivalent graph, written as text IR. One loop per elementwise op of the table (so a new
 * op cannot skip it), casts with NaN and huge values, a comparison with where, reductions,
 * one_hot through CG_E_INDEX, gemm with transposes and the SGD form of alpha and beta,
 * runtime calls; the struct layout of cg_args; vector registers in the assembly. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>

#include "compiled.h"
#include "profile.h"
#include "emit.h"
#include "interp.h"
#include "ir.h"
#include "kernel.h"
#include "rt_ops.h"
#include "target.h"

/* JIT'd code calls the runtime's routines from this process: referenced here, they are
 * linked in (and exported, ENABLE_EXPORTS). */
void *const test_llvm_emit_rt_refs[] = {
#define ROUTINE(op, f32, i32, sig, n) (void *)f32, (void *)i32,
    RT_ROUTINES(ROUTINE) /* runtime/rt_ops.h's table */
#undef ROUTINE
    (void *) rt_profile_mark,
};

static const int64_t batches[] = {1, 7, 256, 1001};

/* ---- building programs by hand ---- */

typedef struct prog {
    cg_program p;
    cg_buffer buf[16];
    cg_step step[8];
} prog;

#define D(k) ((cg_dim){(k), 0})
#define DN ((cg_dim){0, 1})

static prog *prog_new(const char *name, int ninputs, int noutputs)
{
    prog *P = calloc(1, sizeof *P);
    cr_assert_not_null(P);
    P->p.name = name;
    P->p.buffers = P->buf;
    P->p.steps = P->step;
    P->p.ninputs = ninputs, P->p.noutputs = noutputs;
    return P;
}

static int32_t buffer(prog *P, cg_region r, int index, ag_dtype t)
{
    P->buf[P->p.nbuffers] = (cg_buffer){r, index, {0, 0}, t};
    return P->p.nbuffers++;
}
#define IN(P, i, t) buffer(P, CG_INPUT, i, t)
#define OUT(P, i, t) buffer(P, CG_OUTPUT, i, t)

static cg_step *step(prog *P, cg_step_kind kind)
{
    cg_step *s = &P->step[P->p.nsteps++];
    s->kind = kind;
    return s;
}

/* a loop over extents e[0..rank) */
static cg_loop *loop(prog *P, int rank, const cg_dim *e)
{
    cg_loop *l = &step(P, CG_LOOP)->loop;
    l->rank = rank;
    if (rank)
        memcpy(l->extent, e, sizeof *e * (size_t)rank);
    return l;
}

static cg_access mk_access(int32_t buffer, int rank, const cg_dim *stride)
{
    cg_access a = {.buffer = buffer};
    if (rank)
        memcpy(a.stride, stride, sizeof *stride * (size_t)rank);
    return a;
}

static int ld(cg_loop *l, int32_t buffer, const cg_dim *stride)
{
    l->load[l->nloads] = mk_access(buffer, l->rank, stride);
    return l->nloads++;
}

static int ex(cg_expr *expr, int *n, cg_expr e)
{
    expr[*n] = e;
    return (*n)++;
}
#define E_LOAD(l, k, t) ex((l)->expr, &(l)->nexprs, (cg_expr){.kind = CG_E_LOAD, .dtype = t, .load = k})
#define E_CONST(l, v, t) ex((l)->expr, &(l)->nexprs, (cg_expr){.kind = CG_E_CONST, .dtype = t, .value = v})
#define E_INDEX(l, ax, t) ex((l)->expr, &(l)->nexprs, (cg_expr){.kind = CG_E_INDEX, .dtype = t, .axis = ax})
#define E_OP(l, o, t, x, y, z) \
    ex((l)->expr, &(l)->nexprs, (cg_expr){.kind = CG_E_OP, .dtype = t, .op = o, .a = x, .b = y, .c = z})

static void st(cg_loop *l, int expr, int32_t buffer, const cg_dim *stride)
{
    l->store[l->nstores++] = (cg_store){expr, mk_access(buffer, l->rank, stride)};
}

/* Strides of a row-major shape (dims, AG_N the batch) read as if broadcast to out's rank and
 * dims: right-aligned, 0 where it has extent 1 or no dim. */
static void bstrides(const ir_shape *a, int out_rank, cg_dim *s)
{
    cg_dim acc = {1, 0};
    for (int d = out_rank - 1; d >= 0; d--) {
        int k = d - (out_rank - a->rank);
        if (k < 0 || a->dim[k] == 1) {
            s[d] = (cg_dim){0, 0};
            continue;
        }
        s[d] = acc;
        acc = a->dim[k] == AG_N ? (cg_dim){0, acc.k} : (cg_dim){acc.k * a->dim[k], acc.n * a->dim[k]};
    }
}

/* ---- running both ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t next64(void)
{
    uint64_t *s = &rng_state;
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}
static double uniform(double lo, double hi) { return lo + (hi - lo) * (double)(next64() >> 11) * 0x1p-53; }

/* fill input k (node name in the graph) of tensor t */
typedef void fill_fn(const char *name, ir_tensor *t);

static void fill_default(const char *name, ir_tensor *t)
{
    (void)name;
    int64_t n = ir_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        switch (t->dtype) {
        case AG_F32: ir_tensor_set(t, i, uniform(-3, 3)); break;
        case AG_I32: ir_tensor_set(t, i, floor(uniform(-2, 12))); break;
        case AG_U8: ir_tensor_set(t, i, floor(uniform(0, 256))); break;
        default: ir_tensor_set(t, i, next64() >> 63); break;
        }
}

/* f32 values with the special ones mixed in: NaN, infinities, zeros of both signs */
static void fill_special(const char *name, ir_tensor *t)
{
    fill_default(name, t);
    static const float sp[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1.0f, -1.0f, 0.5f};
    if (t->dtype == AG_F32)
        for (int64_t i = 0, n = ir_tensor_numel(t); i < n; i++)
            if (next64() % 16 == 0)
                ((float *)t->data)[i] = sp[next64() % 8];
}

typedef struct setup {
    const char *what;
    const char *text; /* the equivalent graph; its inputs are CG_INPUT 0.., its outputs CG_OUTPUT 0.. */
    fill_fn *fill;    /* NULL: fill_default */
    bool bitwise;     /* else within 1e-5 norm-wise relative error */
    int param_in;     /* 1 + the input living in the parameters (at offset 0), 0: none */
    int param_out;    /* 1 + the output read back from the parameters */
} setup;

/* Compares n elements of the interpreter's ref and the JIT's got; returns false with a
 * message. NaN positions must agree, infinities exactly. */
static bool same(const ir_tensor *ref, const void *got, bool bitwise, char *msg, size_t len)
{
    int64_t n = ir_tensor_numel(ref);
    if (ref->dtype != AG_F32) {
        size_t esz = ir_dtype_size(ref->dtype);
        for (int64_t i = 0; i < n; i++)
            if (memcmp((const char *)ref->data + i * (int64_t)esz, (const char *)got + i * (int64_t)esz, esz)) {
                snprintf(msg, len, "element %lld: interpreter %g, JIT %g", (long long)i, ir_tensor_get(ref, i),
                         ir_tensor_get(&(ir_tensor){ref->dtype, ref->shape, (void *)got}, i));
                return false;
            }
        return true;
    }
    const float *r = ref->data, *g = got;
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        bool rn = r[i] != r[i], gn = g[i] != g[i];
        if (rn || gn || isinf(r[i]) || isinf(g[i]) || bitwise) {
            if (rn && gn)
                continue;
            if (memcmp(&r[i], &g[i], 4)) {
                snprintf(msg, len, "element %lld: interpreter %.9g, JIT %.9g", (long long)i, r[i], g[i]);
                return false;
            }
            continue;
        }
        num += ((double)g[i] - r[i]) * ((double)g[i] - r[i]);
        den += (double)r[i] * r[i];
    }
    if (sqrt(num) > 1e-5 * sqrt(den)) {
        snprintf(msg, len, "norm-wise relative error %.3g", sqrt(num / den));
        return false;
    }
    return true;
}

static void check_program(const setup *s, const cg_program *p)
{
    char err[1024];
    ir_graph *g = ir_parse(s->text, strlen(s->text), s->what, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cg_target *t = cg_target_host(err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    cg_jit *j = cg_jit_new(err, sizeof err);
    cr_assert_not_null(j, "%s", err);
    LLVMModuleRef m = cg_emit_module(p, cg_jit_context(j), t, err, sizeof err);
    cr_assert_not_null(m, "%s: %s", s->what, err);
    cr_assert(cg_optimize(t, m, err, sizeof err), "%s: %s", s->what, err);
    if (getenv("AG_EMIT_DUMP")) { /* a directory: each program's optimized IR and assembly */
        char path[512];
        snprintf(path, sizeof path, "%s/%s.ll", getenv("AG_EMIT_DUMP"), p->name);
        cr_expect(cg_emit_ir(m, path, err, sizeof err), "%s", err);
        snprintf(path, sizeof path, "%s/%s.s", getenv("AG_EMIT_DUMP"), p->name);
        cr_expect(cg_emit_assembly(t, m, path, err, sizeof err), "%s", err);
    }
    cr_assert(cg_jit_add(j, m, err, sizeof err), "%s: %s", s->what, err);
    void (*f)(const cg_args *) = (void (*)(const cg_args *))cg_jit_lookup(j, p->name, err, sizeof err);
    cr_assert_not_null(f, "%s: %s", s->what, err);

    int32_t in_id[16];
    int nin = 0;
    for (int32_t i = 0; i < g->n; i++)
        if (g->node[i].op == IR_input)
            in_id[nin++] = i;
    cr_assert_eq(nin, p->ninputs, "%s: the graph has %d inputs, the program %d", s->what, nin, p->ninputs);
    cr_assert_eq(g->nout, p->noutputs, "%s: outputs", s->what);

    for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
        int64_t N = batches[bi];
        ir_tensor in[16], out[16];
        const ir_tensor **bound = calloc((size_t)g->n, sizeof *bound);
        void *inptr[16], *outptr[16];
        for (int k = 0; k < nin; k++) {
            const ir_node *n = &g->node[in_id[k]];
            ir_shape sh = ir_bind_shape(&n->shape, N);
            in[k] = ir_tensor_new(n->dtype, &sh);
            cr_assert_not_null(in[k].data);
            (s->fill ? s->fill : fill_default)(n->attr.name, &in[k]);
            bound[in_id[k]] = &in[k];
            inptr[k] = in[k].data;
        }
        ir_run run = {.f64 = false, .batch = N, .seed = 7, .step = 3, .training = true};
        cr_assert(ir_interp(g, &run, bound, out, err, sizeof err), "%s: %s", s->what, err);

        for (int k = 0; k < g->nout; k++) {
            size_t bytes = (size_t)ir_tensor_numel(&out[k]) * ir_dtype_size(out[k].dtype);
            outptr[k] = malloc(bytes);
            memset(outptr[k], 0x41, bytes); /* finite garbage: every element must be written */
        }
        size_t arena_bytes = (size_t)rt_arena_bytes(p->arena, p->narena, N);
        char *arena = malloc(arena_bytes + 1), *params = NULL;
        memset(arena, 0xff, arena_bytes); /* NaN garbage */
        if (s->param_in) {
            ir_tensor *w = &in[s->param_in - 1];
            size_t bytes = (size_t)ir_tensor_numel(w) * ir_dtype_size(w->dtype);
            params = malloc(bytes);
            memcpy(params, w->data, bytes);
        }
        cg_args a = {arena, params, inptr, outptr, N, 7, 3, NULL, NULL, 0, NULL};
        f(&a);

        for (int k = 0; k < g->nout; k++) {
            const void *got = s->param_out == k + 1 ? params : outptr[k];
            char msg[256];
            bool ok = same(&out[k], got, s->bitwise, msg, sizeof msg);
            cr_expect(ok, "%s: output %s at batch %lld: %s", s->what, g->out[k].name, (long long)N, msg);
            free(outptr[k]);
            ir_tensor_free(&out[k]);
        }
        for (int k = 0; k < nin; k++)
            ir_tensor_free(&in[k]);
        free(bound);
        free(arena);
        free(params);
    }
    cg_jit_free(j);
    cg_target_free(t);
    ir_graph_free(g);
}

/* ---- every elementwise op of the table ---- */

typedef struct ew_row {
    ir_op op;
    const char *name;
    int arity;
    ir_types types;
    const char *scalar; /* the scalar form, as written in the table */
} ew_row;
#define EW_ROW(name, arity, scalar, types, ...) {IR_##name, #name, arity, types, #scalar},
#define NOT_EW(...)
static const ew_row ew_rows[] = {IR_OPS(EW_ROW, NOT_EW)};

static void fill_int(const char *name, ir_tensor *t)
{
    fill_special(name, t);
    static const double sp[] = {INT32_MAX, INT32_MIN, 1 << 30, -(1 << 30), 46341, -46341, 0, 1, -1};
    if (t->dtype == AG_I32)
        for (int64_t i = 0, n = ir_tensor_numel(t); i < n; i++)
            if (next64() % 8 == 0)
                ir_tensor_set(t, i, sp[next64() % 9]);
}

/* Every S_ macro of an op's scalar form (ir/scalar.h) is one the generated code computes
 * exactly as the C reference does: IEEE arithmetic, or the same libm call (powf). */
static bool exact_formula(const char *scalar)
{
    static const char *const exact[] = {"S_K(",   "S_ADD(", "S_SUB(",  "S_MUL(", "S_DIV(", "S_POW(",
                                        "S_NEG(", "S_ABS(", "S_SQRT(", "S_LT(",  "S_LE(",  "S_GT(",
                                        "S_GE(",  "S_EQ(",  "S_NE(",   "S_SEL("};
    for (const char *s = strstr(scalar, "S_"); s; s = strstr(s + 2, "S_")) {
        bool known = false;
        for (size_t k = 0; k < sizeof exact / sizeof *exact && !known; k++)
            known = strncmp(s, exact[k], strlen(exact[k])) == 0;
        if (!known)
            return false;
    }
    return true;
}

/* One loop per elementwise op of the table, its operands of dtype `in` where the op takes
 * it (T_FLOAT ops only take f32): operand k is [N,6], [6] (broadcast along rows) or [N,1]
 * (along columns), where's condition bool. The result is [N,6]: bool for comparisons, i32
 * for a cast of f32 and f32 for a cast of i32. Returns the number of ops run. */
static int every_op(ag_dtype in)
{
    int count = 0;
    for (size_t r = 0; r < sizeof ew_rows / sizeof *ew_rows; r++) {
        const ew_row *w = &ew_rows[r];
        if (in != AG_F32 && w->types == T_FLOAT)
            continue;
        static const char *shapes[] = {"[N,6]", "[6]", "[N,1]"};
        static const ir_shape dims[] = {{2, {AG_N, 6}}, {1, {6}}, {2, {AG_N, 1}}};
        ag_dtype odt = w->types == T_CMP ? AG_BOOL : w->types == T_CAST ? (in == AG_F32 ? AG_I32 : AG_F32) : in;
        char text[1024];
        int n = snprintf(text, sizeof text, "graph @t {\n");
        for (int k = 0; k < w->arity; k++)
            n += snprintf(text + n, sizeof text - (size_t)n, "  %%%c: %s%s = input\n", 'a' + k,
                          ir_dtype_name(w->types == T_WHERE && k == 0 ? AG_BOOL : in), shapes[k]);
        n += snprintf(text + n, sizeof text - (size_t)n, "  %%0: %s[N,6] = %s", ir_dtype_name(odt), w->name);
        for (int k = 0; k < w->arity; k++)
            n += snprintf(text + n, sizeof text - (size_t)n, "%s %%%c", k ? "," : "", 'a' + k);
        snprintf(text + n, sizeof text - (size_t)n, "\n  return y: %%0\n}\n");

        char name[64];
        snprintf(name, sizeof name, "ew_%s_%s", w->name, ir_dtype_name(in));
        prog *P = prog_new(name, w->arity, 1);
        cg_loop *l = loop(P, 2, (cg_dim[]){DN, D(6)});
        int e[3] = {0, 0, 0};
        for (int k = 0; k < w->arity; k++) {
            ag_dtype t = w->types == T_WHERE && k == 0 ? AG_BOOL : in;
            cg_dim s[IR_MAX_RANK];
            bstrides(&dims[k], 2, s);
            e[k] = E_LOAD(l, ld(l, IN(P, k, t), s), t);
        }
        int y = E_OP(l, w->op, odt, e[0], e[1], e[2]);
        st(l, y, OUT(P, 0, odt), (cg_dim[]){D(6), D(1)});
        /* bit for bit where the formula has only correctly rounded forms; exp, log, tanh and
         * any macro added later: the generated code computes them with its own polynomials
         * (vectorized), libm differently: within 1e-5 there */
        bool bitwise = exact_formula(w->scalar);
        setup s = {name, text, fill_int, bitwise, 0, 0};
        check_program(&s, &P->p);
        free(P);
        count++;
    }
    return count;
}

Test(llvm_emit, every_elementwise_op)
{
    int count = every_op(AG_F32);
    cr_expect_eq(count, (int)(sizeof ew_rows / sizeof *ew_rows));
    cr_expect_geq(count, 20, "the table's elementwise rows: %d", count);
}

/* i32 arithmetic is computed in double and saturated on each result, as the interpreter */
Test(llvm_emit, every_integer_op)
{
    int count = every_op(AG_I32);
    cr_expect_geq(count, 15, "%d", count);
}

/* ---- casts, comparisons, where ---- */

static void fill_huge(const char *name, ir_tensor *t)
{
    (void)name;
    static const float sp[] = {NAN,   INFINITY, -INFINITY, 1e10f, -1e10f, 300.0f,        255.5f,        254.9f,
                               -0.5f, 2.7f,     -2.7f,     0.0f,  -0.0f,  2147483520.0f, -2147483648.0f};
    float *x = t->data;
    for (int64_t i = 0, n = ir_tensor_numel(t); i < n; i++)
        x[i] = i < 15 ? sp[i] : next64() % 4 == 0 ? sp[next64() % 15] : (float)uniform(-400, 400);
}

Test(llvm_emit, casts_saturate)
{
    setup s = {"casts",
               "graph @casts {\n  %x: f32[N,15] = input\n"
               "  %0: i32[N,15] = cast %x\n  %1: u8[N,15] = cast %x\n  %2: u8[N,15] = cast %0\n"
               "  %3: bool[N,15] = cast %x\n  return i: %0, u: %1, iu: %2, b: %3\n}\n",
               fill_huge,
               true,
               0,
               0};
    prog *P = prog_new("casts", 1, 4);
    cg_loop *l = loop(P, 2, (cg_dim[]){DN, D(15)});
    const cg_dim c[] = {D(15), D(1)};
    int x = ld(l, IN(P, 0, AG_F32), c);
    int i = E_LOAD(l, x, AG_I32); /* converted as it is loaded */
    int f = E_LOAD(l, x, AG_F32);
    int u = E_OP(l, IR_cast, AG_U8, f, 0, 0);
    int iu = E_OP(l, IR_cast, AG_U8, i, 0, 0);
    int b = E_OP(l, IR_cast, AG_BOOL, f, 0, 0);
    st(l, i, OUT(P, 0, AG_I32), c);
    st(l, u, OUT(P, 1, AG_U8), c);
    st(l, iu, OUT(P, 2, AG_U8), c);
    st(l, b, OUT(P, 3, AG_BOOL), c);
    check_program(&s, &P->p);
    free(P);
}

Test(llvm_emit, compare_and_where)
{
    setup s = {"where",
               "graph @where {\n  %x: f32[N,6] = input\n  %y: f32[6] = input\n"
               "  %0: bool[N,6] = lt %x, %y\n  %1: f32[N,6] = where %0, %x, -1.5\n"
               "  %2: i32[N,6] = cast %x\n  %3: bool[N,6] = ge %2, 1\n"
               "  return c: %0, w: %1, ic: %3\n}\n",
               fill_special,
               true,
               0,
               0};
    prog *P = prog_new("where", 2, 3);
    cg_loop *l = loop(P, 2, (cg_dim[]){DN, D(6)});
    const cg_dim c[] = {D(6), D(1)};
    int x = E_LOAD(l, ld(l, IN(P, 0, AG_F32), c), AG_F32);
    int y = E_LOAD(l, ld(l, IN(P, 1, AG_F32), (cg_dim[]){D(0), D(1)}), AG_F32);
    int lt = E_OP(l, IR_lt, AG_BOOL, x, y, 0);
    int w = E_OP(l, IR_where, AG_F32, lt, x, E_CONST(l, -1.5, AG_F32));
    int xi = E_OP(l, IR_cast, AG_I32, x, 0, 0);
    int ge = E_OP(l, IR_ge, AG_BOOL, xi, E_CONST(l, 1, AG_I32), 0);
    st(l, lt, OUT(P, 0, AG_BOOL), c);
    st(l, w, OUT(P, 1, AG_F32), c);
    st(l, ge, OUT(P, 2, AG_BOOL), c);
    check_program(&s, &P->p);
    free(P);
}

/* ---- reductions ---- */

Test(llvm_emit, sum_over_each_axis)
{
    setup s = {"sums",
               "graph @sums {\n  %x: f32[N,6] = input\n"
               "  %0: f32[6] = sum %x axes=[0]\n  %1: f32[N] = sum %x axes=[1]\n"
               "  %2: f32[N,6] = square %x\n  %3: f32[N] = sum %2 axes=[1]\n"
               "  %4: f32[] = sum %x axes=[0,1]\n"
               "  return s0: %0, s1: %1, se: %3, all: %4\n}\n",
               NULL,
               true,
               0,
               0};
    prog *P = prog_new("sums", 1, 4);
    const cg_dim c[] = {D(6), D(1)}, ext[] = {DN, D(6)};
    int32_t x = IN(P, 0, AG_F32), t = buffer(P, CG_ARENA, 0, AG_F32);
    P->buf[t].offset = D(64);
    P->p.narena = 1, P->p.arena[0] = (rt_arena_piece){64, 24};
    cg_loop *l = loop(P, 2, ext); /* over axis 0: the inner loop runs along the output */
    l->reduce = 1, l->combine = IR_sum;
    st(l, E_LOAD(l, ld(l, x, c), AG_F32), OUT(P, 0, AG_F32), (cg_dim[]){D(0), D(1)});
    l = loop(P, 2, ext); /* over axis 1: along each row */
    l->reduce = 2, l->combine = IR_sum;
    st(l, E_LOAD(l, ld(l, x, c), AG_F32), OUT(P, 1, AG_F32), (cg_dim[]){D(1), D(0)});
    l = loop(P, 2, ext); /* squares into the arena, then their row sums */
    st(l, E_OP(l, IR_square, AG_F32, E_LOAD(l, ld(l, x, c), AG_F32), 0, 0), t, c);
    l = loop(P, 2, ext);
    l->reduce = 2, l->combine = IR_sum;
    st(l, E_LOAD(l, ld(l, t, c), AG_F32), OUT(P, 2, AG_F32), (cg_dim[]){D(1), D(0)});
    l = loop(P, 2, ext); /* everything into one element */
    l->reduce = 3, l->combine = IR_sum;
    st(l, E_LOAD(l, ld(l, x, c), AG_F32), OUT(P, 3, AG_F32), (cg_dim[]){D(0), D(0)});
    check_program(&s, &P->p);
    free(P);
}

Test(llvm_emit, max_lets_nan_win)
{
    setup s = {"maxes",
               "graph @maxes {\n  %x: f32[N,6] = input\n  %i: i32[N,6] = input\n"
               "  %0: f32[6] = max %x axes=[0]\n  %1: f32[N] = max %x axes=[1]\n"
               "  %2: i32[N] = max %i axes=[1]\n  %3: i32[N] = sum %i axes=[1]\n"
               "  return m0: %0, m1: %1, mi: %2, si: %3\n}\n",
               fill_special,
               true,
               0,
               0};
    prog *P = prog_new("maxes", 2, 4);
    const cg_dim c[] = {D(6), D(1)}, ext[] = {DN, D(6)};
    int32_t x = IN(P, 0, AG_F32), xi = IN(P, 1, AG_I32);
    cg_loop *l = loop(P, 2, ext);
    l->reduce = 1, l->combine = IR_max;
    st(l, E_LOAD(l, ld(l, x, c), AG_F32), OUT(P, 0, AG_F32), (cg_dim[]){D(0), D(1)});
    l = loop(P, 2, ext);
    l->reduce = 2, l->combine = IR_max;
    st(l, E_LOAD(l, ld(l, x, c), AG_F32), OUT(P, 1, AG_F32), (cg_dim[]){D(1), D(0)});
    l = loop(P, 2, ext);
    l->reduce = 2, l->combine = IR_max;
    st(l, E_LOAD(l, ld(l, xi, c), AG_I32), OUT(P, 2, AG_I32), (cg_dim[]){D(1), D(0)});
    l = loop(P, 2, ext);
    l->reduce = 2, l->combine = IR_sum;
    st(l, E_LOAD(l, ld(l, xi, c), AG_I32), OUT(P, 3, AG_I32), (cg_dim[]){D(1), D(0)});
    check_program(&s, &P->p);
    free(P);
}

/* ---- one_hot: the label compared with the loop index ---- */

Test(llvm_emit, one_hot_by_index)
{
    setup s = {"one_hot",
               "graph @one_hot {\n  %y: i32[N] = input\n  %0: f32[N,10] = one_hot %y classes=10\n"
               "  return h: %0\n}\n",
               NULL,
               true,
               0,
               0};
    prog *P = prog_new("one_hot", 1, 1);
    cg_loop *l = loop(P, 2, (cg_dim[]){DN, D(10)});
    int y = E_LOAD(l, ld(l, IN(P, 0, AG_I32), (cg_dim[]){D(1), D(0)}), AG_I32);
    int eq = E_OP(l, IR_eq, AG_BOOL, y, E_INDEX(l, 1, AG_I32), 0);
    st(l, E_OP(l, IR_cast, AG_F32, eq, 0, 0), OUT(P, 0, AG_F32), (cg_dim[]){D(10), D(1)});
    check_program(&s, &P->p);
    free(P);
}

/* ---- gemm ---- */

static void fill_sgd(const char *name, ir_tensor *t)
{
    fill_default(name, t);
    if (!strcmp(name, "lr"))
        ir_tensor_set(t, 0, uniform(0.01, 0.5));
    if (!strcmp(name, "wd"))
        ir_tensor_set(t, 0, uniform(0, 0.1));
}

/* W -= lr * (X^T G + wd W) as one sgemm on W in the parameters: alpha = -lr,
 * beta = 1 - lr*wd; and H = X V^T into an output (alpha 1, beta 0). */
Test(llvm_emit, gemm_transposed_and_sgd)
{
    setup s = {"sgd",
               "graph @sgd {\n  %X: f32[N,8] = input\n  %G: f32[N,5] = input\n  %W: f32[8,5] = input\n"
               "  %lr: f32[] = input\n  %wd: f32[] = input\n  %V: f32[5,8] = input\n"
               "  %0: f32[8,5] = matmul %X, %G ta\n  %1: f32[] = mul %lr, %wd\n  %2: f32[] = sub 1.0, %1\n"
               "  %3: f32[8,5] = mul %W, %2\n  %4: f32[8,5] = mul %0, %lr\n  %5: f32[8,5] = sub %3, %4\n"
               "  %6: f32[N,5] = matmul %X, %V tb\n"
               "  return next: %5, h: %6\n}\n",
               fill_sgd,
               false,
               3,
               1};
    prog *P = prog_new("sgd", 6, 2);
    int32_t X = IN(P, 0, AG_F32), G = IN(P, 1, AG_F32), lr = IN(P, 3, AG_F32), wd = IN(P, 4, AG_F32);
    int32_t V = IN(P, 5, AG_F32), W = buffer(P, CG_PARAMS, 0, AG_F32), H = OUT(P, 1, AG_F32);
    (void)IN(P, 2, AG_F32); /* W's initial value comes through the parameters */
    cg_gemm *g = &step(P, CG_GEMM)->gemm;
    g->ta = true, g->m = D(8), g->n = D(5), g->k = DN;
    g->a.buffer = X, g->b.buffer = G, g->c.buffer = W;
    g->load[g->nloads++] = (cg_access){.buffer = lr};
    g->load[g->nloads++] = (cg_access){.buffer = wd};
    int e_lr = ex(g->expr, &g->nexprs, (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 0});
    int e_wd = ex(g->expr, &g->nexprs, (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 1});
    g->alpha = ex(g->expr, &g->nexprs, (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_neg, .a = e_lr});
    int lw = ex(g->expr, &g->nexprs, (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_mul, .a = e_lr, .b = e_wd});
    int one = ex(g->expr, &g->nexprs, (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 1});
    g->beta = ex(g->expr, &g->nexprs, (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_sub, .a = one, .b = lw});

    g = &step(P, CG_GEMM)->gemm;
    g->tb = true, g->m = DN, g->n = D(5), g->k = D(8);
    g->a.buffer = X, g->b.buffer = V, g->c.buffer = H;
    g->alpha = ex(g->expr, &g->nexprs, (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 1});
    g->beta = ex(g->expr, &g->nexprs, (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 0});
    check_program(&s, &P->p);
    free(P);
}

/* ---- runtime calls ---- */

Test(llvm_emit, call_softmax_ce)
{
    setup s = {"ce",
               "graph @ce {\n  %x: f32[N,10] = input\n  %y: i32[N] = input\n"
               "  %0: f32[N] = softmax_ce %x, %y\n  %1: f32[N,10] = log_softmax %x axis=1\n"
               "  %2: f32[N,10] = softmax %x axis=0\n"
               "  return loss: %0, ls: %1, sm0: %2\n}\n",
               NULL,
               true,
               0,
               0};
    prog *P = prog_new("ce", 2, 3);
    int32_t x = IN(P, 0, AG_F32), y = IN(P, 1, AG_I32);
    cg_call *c = &step(P, CG_CALL)->call;
    c->op = IR_softmax_ce, c->nargs = 3, c->rows = DN, c->len = D(10), c->inner = D(1);
    c->arg[0].buffer = x, c->arg[1].buffer = y, c->arg[2].buffer = OUT(P, 0, AG_F32);
    c = &step(P, CG_CALL)->call;
    c->op = IR_log_softmax, c->nargs = 2, c->rows = DN, c->len = D(10), c->inner = D(1);
    c->arg[0].buffer = x, c->arg[1].buffer = OUT(P, 1, AG_F32);
    c = &step(P, CG_CALL)->call;
    c->op = IR_softmax, c->nargs = 2, c->rows = D(1), c->len = DN, c->inner = D(10);
    c->arg[0].buffer = x, c->arg[1].buffer = OUT(P, 2, AG_F32);
    check_program(&s, &P->p);
    free(P);
}

/* ---- the entry point's argument struct ---- */

Test(llvm_emit, args_layout_matches_c)
{
    char err[512];
    cg_target *t = cg_target_host(err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    LLVMContextRef c = LLVMContextCreate();
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(cg_target_machine(t));
    LLVMTypeRef ty = cg_args_type(c);
    const size_t off[] = {offsetof(cg_args, arena),   offsetof(cg_args, params), offsetof(cg_args, inputs),
                          offsetof(cg_args, outputs), offsetof(cg_args, batch),  offsetof(cg_args, seed),
                          offsetof(cg_args, step),    offsetof(cg_args, pool),   offsetof(cg_args, profile)};
    /* and the binaries' copy of the struct (runtime/compiled.h) */
    const size_t bin[] = {offsetof(ag_args, arena),   offsetof(ag_args, params), offsetof(ag_args, inputs),
                          offsetof(ag_args, outputs), offsetof(ag_args, batch),  offsetof(ag_args, seed),
                          offsetof(ag_args, step),    offsetof(ag_args, pool),   offsetof(ag_args, profile)};
    for (unsigned k = 0; k < 9; k++) {
        cr_expect_eq(LLVMOffsetOfElement(td, ty, k), off[k], "field %u", k);
        cr_expect_eq(bin[k], off[k], "runtime/compiled.h: ag_args field %u", k);
    }
    cr_expect_eq(LLVMABISizeOfType(td, ty), sizeof(cg_args));
    cr_expect_eq(sizeof(ag_args), sizeof(cg_args));
    LLVMDisposeTargetData(td);
    LLVMContextDispose(c);
    cg_target_free(t);
}

/* ---- errors ---- */

Test(llvm_emit, errors_name_the_step)
{
    char err[512];
    LLVMContextRef c = LLVMContextCreate();
    prog *P = prog_new("bad", 1, 1);
    cg_loop *l = loop(P, 1, (cg_dim[]){DN});
    int x = E_LOAD(l, ld(l, IN(P, 0, AG_F32), (cg_dim[]){D(1)}), AG_F32);
    st(l, E_OP(l, IR_matmul, AG_F32, x, x, 0), OUT(P, 0, AG_F32), (cg_dim[]){D(1)});
    cr_expect_null(cg_emit_module(&P->p, c, NULL, err, sizeof err));
    cr_expect(strstr(err, "matmul is not an elementwise op") != NULL, "%s", err);
    free(P);

    P = prog_new("bad", 1, 1);
    cg_call *k = &step(P, CG_CALL)->call;
    k->op = IR_max, k->nargs = 2;
    k->arg[0].buffer = IN(P, 0, AG_F32), k->arg[1].buffer = OUT(P, 0, AG_F32);
    cr_expect_null(cg_emit_module(&P->p, c, NULL, err, sizeof err));
    cr_expect_str_eq(err, "step 0: no runtime routine for max");
    free(P);
    LLVMContextDispose(c);
}

/* ---- the assembly: a 1M-element loop vectorizes ---- */

Test(llvm_emit, elementwise_loop_uses_ymm)
{
    char err[512], path[64];
    cg_target *t = cg_target_host(err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    prog *P = prog_new("big", 2, 1);
    cg_loop *l = loop(P, 1, (cg_dim[]){D(1 << 20)});
    int x = E_LOAD(l, ld(l, IN(P, 0, AG_F32), (cg_dim[]){D(1)}), AG_F32);
    int y = E_LOAD(l, ld(l, IN(P, 1, AG_F32), (cg_dim[]){D(1)}), AG_F32);
    int s = E_OP(l, IR_add, AG_F32, E_OP(l, IR_mul, AG_F32, x, E_CONST(l, 2, AG_F32), 0), y, 0);
    st(l, E_OP(l, IR_relu, AG_F32, s, 0, 0), OUT(P, 0, AG_F32), (cg_dim[]){D(1)});
    LLVMContextRef c = LLVMContextCreate();
    LLVMModuleRef m = cg_emit_module(&P->p, c, t, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    cr_assert(cg_optimize(t, m, err, sizeof err), "%s", err);
    strcpy(path, "/tmp/aotgrad-emit-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert(cg_emit_assembly(t, m, path, err, sizeof err), "%s", err);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    unlink(path);
    if (cg_target_has(t, "avx2"))
        cr_expect(strstr(text, "%ymm") != NULL, "no ymm register in:\n%.4000s", text);
    else
        cr_log_warn("the host lacks avx2: ymm not checked");
    cr_expect(strstr(text, "xmm") || strstr(text, "ymm"), "no vector registers at all");
    LLVMDisposeModule(m);
    LLVMContextDispose(c);
    free(P);
    cg_target_free(t);
}

/* ---- in place: W -= lr * g, W read and written in the parameters ---- */

Test(llvm_emit, update_in_place)
{
    setup s = {"update",
               "graph @update {\n  %W: f32[N,5] = input\n  %g: f32[N,5] = input\n  %lr: f32[] = input\n"
               "  %0: f32[N,5] = mul %g, %lr\n  %1: f32[N,5] = sub %W, %0\n  %2: f32[] = mul %lr, 0.5\n"
               "  return next: %1, half: %2\n}\n",
               fill_sgd,
               true,
               1,
               1};
    prog *P = prog_new("update", 3, 2);
    (void)IN(P, 0, AG_F32);
    int32_t W = buffer(P, CG_PARAMS, 0, AG_F32), g = IN(P, 1, AG_F32), lr = IN(P, 2, AG_F32);
    const cg_dim c[] = {D(5), D(1)};
    cg_loop *l = loop(P, 2, (cg_dim[]){DN, D(5)});
    int w = E_LOAD(l, ld(l, W, c), AG_F32);
    int d = E_OP(l, IR_mul, AG_F32, E_LOAD(l, ld(l, g, c), AG_F32),
                 E_LOAD(l, ld(l, lr, (cg_dim[]){D(0), D(0)}), AG_F32), 0);
    st(l, E_OP(l, IR_sub, AG_F32, w, d, 0), W, c);
    const cg_dim none[] = {D(0)}; /* rank 0: nothing is read from it */
    l = loop(P, 0, none);         /* a scalar: no loops at all */
    st(l, E_OP(l, IR_mul, AG_F32, E_LOAD(l, ld(l, lr, none), AG_F32), E_CONST(l, 0.5, AG_F32), 0), OUT(P, 1, AG_F32),
       none);
    check_program(&s, &P->p);
    free(P);
}

/* ---- noalias only where the bytes provably miss ---- */

static bool has_noalias(LLVMModuleRef m, const char *fn, unsigned param)
{
    LLVMValueRef f = LLVMGetNamedFunction(m, fn);
    cr_assert_not_null(f, "%s", fn);
    unsigned kind = LLVMGetEnumAttributeKindForName("noalias", 7);
    return LLVMGetEnumAttributeAtIndex(f, param + 1, kind) != NULL;
}

Test(llvm_emit, noalias_where_disjoint)
{
    char err[512];
    LLVMContextRef c = LLVMContextCreate();
    /* a: f32[N,6] at 0 in the arena, b right after it at 24N bytes, z at 64 bytes (inside a
     * once N >= 3); x an input; y a parameter read and written in place */
    prog *P = prog_new("alias", 1, 0);
    int32_t a = buffer(P, CG_ARENA, 0, AG_F32), b = buffer(P, CG_ARENA, 0, AG_F32);
    int32_t z = buffer(P, CG_ARENA, 0, AG_F32), x = IN(P, 0, AG_F32), y = buffer(P, CG_PARAMS, 0, AG_F32);
    P->buf[b].offset = (cg_dim){0, 24};
    P->buf[z].offset = D(64);
    const cg_dim cs[] = {D(6), D(1)}, ext[] = {DN, D(6)};
    cg_loop *l = loop(P, 2, ext); /* b = a + x: all apart */
    st(l, E_OP(l, IR_add, AG_F32, E_LOAD(l, ld(l, a, cs), AG_F32), E_LOAD(l, ld(l, x, cs), AG_F32), 0), b, cs);
    l = loop(P, 2, ext); /* z = exp(a): they overlap */
    st(l, E_OP(l, IR_exp, AG_F32, E_LOAD(l, ld(l, a, cs), AG_F32), 0, 0), z, cs);
    l = loop(P, 2, ext); /* y = y * b: in place, b elsewhere */
    st(l, E_OP(l, IR_mul, AG_F32, E_LOAD(l, ld(l, y, cs), AG_F32), E_LOAD(l, ld(l, b, cs), AG_F32), 0), y, cs);
    /* b = a + z[i,0], z two elements into a: a and z overlap, but neither is written; the
     * last byte z reads is 24N - 12, before b */
    int32_t z2 = buffer(P, CG_ARENA, 0, AG_F32);
    P->buf[z2].offset = D(8);
    l = loop(P, 2, ext);
    int e = E_LOAD(l, ld(l, a, cs), AG_F32), f = E_LOAD(l, ld(l, z2, (cg_dim[]){D(6), D(0)}), AG_F32);
    st(l, E_OP(l, IR_add, AG_F32, e, f, 0), b, cs);
    l = loop(P, 2, ext); /* the same, z3 a row further on: the last element it reads is b's first */
    P->buf[buffer(P, CG_ARENA, 0, AG_F32)].offset = D(24);
    e = E_LOAD(l, ld(l, a, cs), AG_F32), f = E_LOAD(l, ld(l, P->p.nbuffers - 1, (cg_dim[]){D(6), D(0)}), AG_F32);
    st(l, E_OP(l, IR_add, AG_F32, e, f, 0), b, cs);
    LLVMModuleRef m = cg_emit_module(&P->p, c, NULL, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    /* parameters in order of first use: loads, then stores */
    cr_expect(has_noalias(m, "alias.s0", 0) && has_noalias(m, "alias.s0", 1) && has_noalias(m, "alias.s0", 2));
    cr_expect(!has_noalias(m, "alias.s1", 0) && !has_noalias(m, "alias.s1", 1));
    cr_expect(has_noalias(m, "alias.s2", 0) && has_noalias(m, "alias.s2", 1));
    cr_expect(has_noalias(m, "alias.s3", 0) && has_noalias(m, "alias.s3", 1) && has_noalias(m, "alias.s3", 2));
    cr_expect(has_noalias(m, "alias.s4", 0) && !has_noalias(m, "alias.s4", 1) && !has_noalias(m, "alias.s4", 2));
    LLVMDisposeModule(m);
    free(P);
    LLVMContextDispose(c);
}

/* ---- the other runtime calls ---- */

Test(llvm_emit, call_argmax_cumsum_dropout_ce_grad)
{
    setup s = {"calls",
               "graph @calls {\n  %x: f32[N,10] = input\n  %y: i32[N] = input\n  %d: f32[N] = input\n"
               "  %0: i32[N] = argmax %x axis=1\n  %1: f32[N,10] = cumsum %x axis=0\n"
               "  %2: f32[N,10] = dropout %x p=0.25 site=3\n  %3: f32[N,10] = softmax_ce_grad %x, %y, %d\n"
               "  return am: %0, cs: %1, dr: %2, g: %3\n}\n",
               fill_special,
               true,
               0,
               0};
    prog *P = prog_new("calls", 3, 4);
    int32_t x = IN(P, 0, AG_F32), y = IN(P, 1, AG_I32), d = IN(P, 2, AG_F32);
    cg_call *c = &step(P, CG_CALL)->call;
    c->op = IR_argmax, c->nargs = 2, c->rows = DN, c->len = D(10), c->inner = D(1);
    c->arg[0].buffer = x, c->arg[1].buffer = OUT(P, 0, AG_I32);
    c = &step(P, CG_CALL)->call;
    c->op = IR_cumsum, c->nargs = 2, c->rows = D(1), c->len = DN, c->inner = D(10);
    c->arg[0].buffer = x, c->arg[1].buffer = OUT(P, 1, AG_F32);
    c = &step(P, CG_CALL)->call;
    c->op = IR_dropout, c->nargs = 2, c->rows = DN, c->len = D(10), c->inner = D(1), c->p = 0.25, c->site = 3;
    c->arg[0].buffer = x, c->arg[1].buffer = OUT(P, 2, AG_F32);
    c = &step(P, CG_CALL)->call;
    c->op = IR_softmax_ce_grad, c->nargs = 4, c->rows = DN, c->len = D(10), c->inner = D(1);
    c->arg[0].buffer = x, c->arg[1].buffer = y, c->arg[2].buffer = d, c->arg[3].buffer = OUT(P, 3, AG_F32);
    check_program(&s, &P->p);
    free(P);
}
