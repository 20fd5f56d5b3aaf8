/* A matmul's epilogue inside the matmul kernel (codegen/cuda/render_gemm.c, "matmul epilogues"):
 * on hand-made programs, the loop after a matmul is computed in the matmul's kernel where
 * that is the same computation, and the result matches the kernel IR's reference run
 * (codegen/exec.c) through the host shim; where it is not the same computation (a store
 * over the matmul's operands, C read at another index, beta not 0, a reduction) the loop
 * stays a kernel of its own. The models' epilogues are checked in test_cuda_ops.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_host.h"
#include "cuda_source.h"
#include "lower.h"

/* C[N,7] = A[N,9] B[9,7] in the arena and parameters; the loop after it is D = tanh(C + bias)
 * (or C += bias in place). Arena: A at 0, C at 36N, D at 64N bytes; parameters: B at 0,
 * bias at 252, a scalar 1.0 at 280. */
enum { NB = 6, NCOL = 7, KDIM = 9, MAX_BATCH = 64 };

typedef struct sample {
    cg_buffer buf[NB];
    cg_step step[2];
    cg_program p;
} sample;

static cg_access rows_of(int32_t buffer, int64_t cols) /* element (i, j) of a [N, cols] matrix */
{
    return (cg_access){.buffer = buffer, .stride = {{cols, 0}, {1, 0}}};
}

static void make(sample *s)
{
    memset(s, 0, sizeof *s);
    const cg_buffer buf[NB] = {
        {CG_ARENA, 0, {0, 0}, AG_F32},    /* 0: A */
        {CG_PARAMS, 0, {0, 0}, AG_F32},   /* 1: B */
        {CG_ARENA, 0, {0, 36}, AG_F32},   /* 2: C */
        {CG_PARAMS, 0, {252, 0}, AG_F32}, /* 3: bias */
        {CG_ARENA, 0, {0, 64}, AG_F32},   /* 4: D */
        {CG_PARAMS, 0, {280, 0}, AG_F32}, /* 5: a scalar */
    };
    memcpy(s->buf, buf, sizeof buf);
    cg_gemm *g = &s->step[0].gemm;
    s->step[0].kind = CG_GEMM;
    g->m = (cg_dim){0, 1}, g->n = (cg_dim){NCOL, 0}, g->k = (cg_dim){KDIM, 0};
    g->a.buffer = 0, g->b.buffer = 1, g->c.buffer = 2;
    g->nexprs = 2;
    g->expr[0] = (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 1};
    g->expr[1] = (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 0};
    g->alpha = 0, g->beta = 1;
    cg_loop *l = &s->step[1].loop;
    s->step[1].kind = CG_LOOP;
    s->step[1].node = 1;
    l->rank = 2;
    l->extent[0] = (cg_dim){0, 1}, l->extent[1] = (cg_dim){NCOL, 0};
    l->nloads = 2;
    l->load[0] = rows_of(2, NCOL);
    l->load[1] = (cg_access){.buffer = 3, .stride = {{0, 0}, {1, 0}}};
    l->nexprs = 4;
    l->expr[0] = (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 0};
    l->expr[1] = (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 1};
    l->expr[2] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_add, .a = 0, .b = 1, .c = -1};
    l->expr[3] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_tanh, .a = 2, .b = -1, .c = -1};
    l->nstores = 1;
    l->store[0] = (cg_store){.expr = 3, .at = rows_of(4, NCOL)};
    s->p = (cg_program){.name = "epi",
                        .nbuffers = NB,
                        .buffers = s->buf,
                        .nsteps = 2,
                        .steps = s->step,
                        .narena = 1,
                        .arena = {{0, 92}},
                        .param_bytes = 284,
                        .batch = MAX_BATCH};
}

/* whether the two steps became one launch */
static bool fused(const sample *s)
{
    cg_cuda_plan plan;
    char err[1024], *src = cuda_source(&s->p, &plan, err, sizeof err);
    cr_assert_not_null(src, "%s", err);
    bool one = plan.nsteps == 1;
    cr_expect_eq(plan.nsteps == 1, strstr(src, "then the next step's loop") != NULL,
                 "the plan and the source disagree");
    free(src);
    cg_cuda_plan_free(&plan);
    return one;
}

/* the sample through the host shim and through cg_exec from the same memory: the same C and D */
static void same_as_reference(const sample *s, const char *what)
{
    cg_cuda_plan plan;
    char err[4096], *src = cuda_source(&s->p, &plan, err, sizeof err);
    cr_assert_not_null(src, "%s: %s", what, err);
    const int64_t batches[] = {1, 7, 33};
    for (int b = 0; b < 3; b++) {
        int64_t n = batches[b];
        size_t ab = (size_t)(92 * n), pb = 284;
        float *arena = calloc(1, ab), *params = calloc(1, pb), *want = calloc(1, ab), *wparams = calloc(1, pb);
        cr_assert(arena && params && want && wparams);
        srand(5);
        for (size_t k = 0; k < ab / 4; k++)
            arena[k] = (float)(rand() % 2001 - 1000) / 1000.0f;
        for (size_t k = 0; k < pb / 4; k++)
            params[k] = (float)(rand() % 2001 - 1000) / 1000.0f;
        memcpy(want, arena, ab);
        memcpy(wparams, params, pb);
        cg_args a = {.arena = (char *)want, .params = (char *)wparams, .batch = n};
        cg_exec(&s->p, &a);
        cuda_host_region ar = {arena, ab}, pr = {params, pb};
        cr_assert(cuda_host_run(src, &plan, n, 1, 0, ar, pr, NULL, 0, NULL, 0, 2, err, sizeof err), "%s: %s", what,
                  err);
        for (size_t k = 0; k < ab / 4; k++)
            cr_assert(fabsf(arena[k] - want[k]) <= 1e-6f * fmaxf(1, fabsf(want[k])),
                      "%s at batch %lld: arena float %zu is %.9g, the reference %.9g", what, (long long)n, k, arena[k],
                      want[k]);
        free(arena), free(params), free(want), free(wparams);
    }
    free(src);
    cg_cuda_plan_free(&plan);
}

Test(cuda_epilogue, bias_and_activation_in_the_matmul_kernel)
{
    sample s;
    make(&s);
    cr_assert(fused(&s));
    same_as_reference(&s, "D = tanh(C + bias)");
}

Test(cuda_epilogue, in_place_over_c)
{
    sample s;
    make(&s);
    s.step[1].loop.store[0].at = rows_of(2, NCOL);
    cg_cuda_plan plan;
    char err[1024], *src = cuda_source(&s.p, &plan, err, sizeof err);
    cr_assert_not_null(src, "%s", err);
    cr_expect_eq(plan.nsteps, 1);
    cr_expect_null(strstr(src, "C[i * NC + j] = c_;"), "C is stored besides the epilogue's store in its place");
    free(src);
    cg_cuda_plan_free(&plan);
    same_as_reference(&s, "C = tanh(C + bias)");
}

Test(cuda_epilogue, refused_where_not_the_same_computation)
{
    sample s;
    make(&s);
    s.step[1].loop.store[0].at = rows_of(0, KDIM); /* over A, which other tiles still read */
    cr_expect_not(fused(&s), "a store over A");
    make(&s);
    s.step[1].loop.store[0].at = (cg_access){.buffer = 1}; /* over B */
    cr_expect_not(fused(&s), "a store over B");
    make(&s);
    s.step[1].loop.load[0].offset = (cg_dim){1, 0}; /* C one element on */
    cr_expect_not(fused(&s), "C read at another index");
    make(&s);
    s.step[1].loop.load[1] = rows_of(2, NCOL);
    s.step[1].loop.load[1].offset = (cg_dim){-1, 0}; /* a second load of C, one element back */
    cr_expect_not(fused(&s), "a load overlapping C");
    make(&s);
    s.step[0].gemm.expr[1].value = 1; /* beta 1: C is read */
    cr_expect_not(fused(&s), "beta 1");
    make(&s);
    s.step[1].loop.reduce = 2, s.step[1].loop.combine = IR_sum; /* row sums */
    s.step[1].loop.store[0].at.stride[1] = (cg_dim){0, 0};
    s.step[1].loop.store[0].at.stride[0] = (cg_dim){1, 0};
    cr_expect_not(fused(&s), "a reduction");
    make(&s);
    s.step[1].loop.extent[1] = (cg_dim){NCOL - 1, 0}; /* not all of C */
    cr_expect_not(fused(&s), "a loop over part of C");
    make(&s);
    s.step[0].gemm.expr[0].value = 2; /* alpha 2 fuses: the loop sees 2 A B */
    cr_expect(fused(&s), "alpha 2");
    same_as_reference(&s, "alpha 2");
}
