/* The CUDA backend's source (codegen/cuda/render.c) through NVRTC: every op's sample
 * program and every model's train step and forward pass render, compile to cubin for
 * sm_90 with ptxas reporting no local-memory spills, and bad programs are refused naming
 * the step. Skipped, visibly, where NVRTC is absent. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "lower.h"
#include "nvrtc.h"
#include "cuda_source.h"
#include "op_samples.h"
#include "passes.h"
#include "render.h"

static void need_nvrtc(void)
{
    char why[1024];
    if (!cg_nvrtc_available(why, sizeof why))
        cr_skip_test("NVRTC not available: %s", why);
}

/* compiles p's source for sm_90; checks the plan and ptxas' report */
static void compiles_without_spills(const cg_program *p, const char *what)
{
    cg_cuda_plan plan;
    char err[4096], *src = cuda_source(p, &plan, err, sizeof err);
    cr_assert_not_null(src, "%s: %s", what, err);
    int covered = 0; /* every step in one launch, in order; several only in one block */
    for (int s = 0; s < plan.nsteps; s++) {
        cr_expect_eq(plan.step[s].first_step, covered, "%s: launch %d", what, s);
        cr_expect_geq(plan.step[s].steps, 1, "%s: launch %d", what, s);
        if (plan.step[s].steps > 2)
            cr_expect_eq(cg_cuda_blocks(&plan.step[s], 1 << 20), 1, "%s: launch %d", what, s);
        covered += plan.step[s].steps;
    }
    cr_expect_eq(covered, p->nsteps, "%s", what);
    for (int s = 0; s < plan.nsteps; s++) {
        cr_expect(strstr(src, plan.step[s].name), "%s: kernel %s missing from the source", what, plan.step[s].name);
        cr_expect_geq(cg_cuda_blocks(&plan.step[s], 1), 1);
    }
    cg_nvrtc_out out;
    bool ok = cg_nvrtc_compile(src, what, "sm_90", true, true, NULL, &out, err, sizeof err);
    cr_assert(ok, "%s does not compile: %s\n--- source ---\n%.6000s", what, err, src);
    cr_expect(out.cubin_len > 4 && memcmp(out.cubin, "\177ELF", 4) == 0, "%s: no cubin", what);
    cr_expect(!p->nsteps || (out.ptx && strstr(out.ptx, ".entry")), "%s: no kernel in the PTX", what);
    cg_ptxas_report r = cg_ptxas_parse(out.log);
    int kernels = 0; /* a collective is the runtime's NCCL call */
    for (int s = 0; s < plan.nsteps; s++)
        kernels += !plan.step[s].collective;
    cr_expect_geq(r.functions, kernels, "%s: ptxas reported %d functions for %d kernels:\n%s", what, r.functions,
                  kernels, out.log);
    cr_expect(r.spill_stores == 0 && r.spill_loads == 0, "%s: spills (%lld stores, %lld loads):\n%s", what,
              (long long)r.spill_stores, (long long)r.spill_loads, out.log);
    cg_nvrtc_out_free(&out);
    cg_cuda_plan_free(&plan);
    free(src);
}

Test(cuda_render, every_op_compiles_with_nvrtc_without_spills)
{
    need_nvrtc();
    int done = 0;
    for (int op = 0; op < IR_OP_COUNT; op++) {
        char text[8192], err[1024];
        cr_assert(op_sample((ir_op)op, text, sizeof text), "op %s has no sample", ir_ops[op].name);
        ir_graph *m = ir_parse(text, strlen(text), "sample.ir", err, sizeof err);
        cr_assert_not_null(m, "%s", err);
        ir_graph *g = pass_run(m, false, NULL, NULL, NULL, err, sizeof err);
        cr_assert_not_null(g, "%s: %s", ir_ops[op].name, err);
        plan_memory(g, 1001); /* the samples declare no batch */
        cg_program *p = cg_lower(g, true, err, sizeof err);
        cr_assert_not_null(p, "%s: %s", ir_ops[op].name, err);
        compiles_without_spills(p, ir_ops[op].name);
        cg_program_free(p);
        ir_graph_free(g);
        ir_graph_free(m);
        done++;
    }
    cr_expect_eq(done, IR_OP_COUNT);
}

static void model(const char *name, const char *const *settings)
{
    char path[512], err[1024], what[128];
    snprintf(path, sizeof path, AG_SOURCE_DIR "/%s%s.c", strchr(name, '/') ? "" : "models/", name);
    ir_graph *m = fe_load(path, getenv("AOTGRAD_INCLUDE"), settings);
    cr_assert_not_null(m);
    for (int train = 0; train < 2; train++) {
        ir_graph *g = pass_run(m, train, NULL, NULL, NULL, err, sizeof err);
        cr_assert_not_null(g, "%s", err);
        cg_program *p = cg_lower(g, train, err, sizeof err);
        cr_assert_not_null(p, "%s", err);
        snprintf(what, sizeof what, "%s%s%s %s", name, settings ? " " : "", settings ? settings[0] : "",
                 train ? "train step" : "forward");
        compiles_without_spills(p, what);
        cg_program_free(p);
        ir_graph_free(g);
    }
    ir_graph_free(m);
}

Test(cuda_render, every_model_compiles_with_nvrtc_without_spills)
{
    need_nvrtc();
    const char *sigmoid[] = {"act=sigmoid", NULL}, *tanh_[] = {"act=tanh", NULL};
    model("mlp", NULL);
    model("mlp", sigmoid);
    model("mlp", tanh_);
    model("softmax", NULL);
    model("mlp_dropout", NULL);
    model("linreg", NULL);
    model("weight_decay", NULL);
    /* a row of one-block matmuls: merged kernels keep their shared tiles under 48 KiB */
    model("tests/data/models/matmul_chain", NULL);
}

/* models/mlp.c's train step, optimized, lowered and rendered */
typedef struct mlp_render {
    ir_graph *m, *g;
    cg_program *p;
    cg_cuda_plan plan;
    char *src;
} mlp_render;

static mlp_render render_mlp(void)
{
    char path[512], err[1024];
    mlp_render r;
    snprintf(path, sizeof path, AG_SOURCE_DIR "/models/mlp.c");
    r.m = fe_load(path, getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(r.m);
    r.g = pass_run(r.m, true, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(r.g, "%s", err);
    r.p = cg_lower(r.g, true, err, sizeof err);
    cr_assert_not_null(r.p, "%s", err);
    r.src = cuda_source(r.p, &r.plan, err, sizeof err);
    cr_assert_not_null(r.src, "%s", err);
    return r;
}

static void mlp_render_free(mlp_render *r)
{
    free(r->src);
    cg_cuda_plan_free(&r->plan);
    cg_program_free(r->p);
    ir_graph_free(r->g);
    ir_graph_free(r->m);
}

/* In every matmul kernel's tile loads, the index that runs along an operand's rows (the one
 * added last in its address) comes from q % ...: neighbouring threads read neighbouring
 * floats, so a warp's loads coalesce, whichever operands are transposed. */
Test(cuda_render, matmul_tile_loads_coalesce)
{
    mlp_render r = render_mlp();
    char *src = r.src;
    int loads = 0, transposed = 0;
    for (char *at = strstr(src, "const int kk = "); at; at = strstr(at + 1, "const int kk = ")) {
        char kk[32], mm[32], line[256];
        cr_assert_eq(sscanf(at, "const int kk = %31[^,], mm = %31[^;];", kk, mm), 2, "%.80s", at);
        const char *store = strstr(at, "[l] = "); /* pa or pb: the next tile's registers */
        cr_assert_not_null(store);
        sscanf(store - 2, "%255[^\n]", line);
        const char *fast = strstr(line, "+ (k)]") ? kk : mm; /* the address's last index */
        cr_expect(strncmp(fast, "q % ", 4) == 0, "%s loads along %s, from kk = %s, mm = %s", line,
                  fast == kk ? "k" : "the tile's side", kk, mm);
        transposed += strstr(line, "(k) * M") || strstr(line, "(j) * K");
        loads++;
    }
    cr_expect_eq(loads, 2 * 2 * 5,
                 "the train step's 5 matmuls (2 forward, 2 weight gradients, 1 input gradient), "
                 "2 operands each, loaded before the first step and during each");
    cr_expect_geq(transposed, 3, "the backward's matmuls read transposed operands");
    mlp_render_free(&r);
}

/* The MLP's matmuls at batch 256 have 8 to 200 tiles of C, too few for a GPU's 132
 * multiprocessors: K is split over blocks (two units a multiprocessor, at least 2 steps of
 * K a split). How many splits depends on N, so each kernel works it out for the N in use;
 * its grid has room for the tiles and the splits at any N, and the scratch for the partials
 * of any N. The input gradient's K is 10: never split. */
Test(cuda_render, matmul_splits_k_for_the_batch_in_use)
{
    mlp_render r = render_mlp();
    cr_assert_eq(r.p->batch, 256);
    const cg_cuda_plan plan = r.plan;
    char *src = r.src;
    static const bool want_split[] = {true, true, false, true, true}; /* forward x2; dH; dW1, dW2 */
    int gemms = 0;
    for (int k = 0; k < plan.nsteps; k++) {
        char head[256];
        snprintf(head, sizeof head, " %s(ag_dev_args a)", plan.step[k].name);
        char *body = strstr(src, head);
        cr_assert_not_null(body, "%s", plan.step[k].name);
        char *end = strstr(body + 1, "extern \"C\"");
        if (end)
            *end = 0;
        if (strstr(body, "__shared__ float As")) {
            bool split = strstr(body, "long long S = tiles < 264 ? (264 + tiles - 1) / tiles : 1;") != NULL;
            cr_assert_lt(gemms, 5);
            cr_expect_eq(split, want_split[gemms], "matmul %d (%s)", gemms, plan.step[k].name);
            cr_expect_eq(split, strstr(body, "atomicAdd(&count[t], 1u)") != NULL);
            /* blocks: the tiles at N, and with splits up to 264 more (S tiles < tiles + 264) */
            int64_t at1 = cg_cuda_blocks(&plan.step[k], 1), at4096 = cg_cuda_blocks(&plan.step[k], 4096);
            cr_expect(at4096 >= at1, "matmul %d: %lld blocks at N = 1, %lld at 4096", gemms, (long long)at1,
                      (long long)at4096);
            if (split)
                cr_expect_geq(at1, 264, "matmul %d: %lld blocks at N = 1", gemms, (long long)at1);
            gemms++;
        }
        if (end)
            *end = 'e';
    }
    cr_expect_eq(gemms, 5);
    /* the counters, then the partials of fewer than 2 x 264 tiles of 32 x 32 floats */
    cr_expect_eq(plan.scratch_bytes, CG_CUDA_COUNTERS * 4 + 2 * 264 * 32 * 32 * 4);
    mlp_render_free(&r);
}

Test(cuda_render, errors_name_the_step)
{
    cg_buffer buf[1] = {{CG_ARENA, 0, {0, 0}, AG_F32}};
    cg_step st[2];
    memset(st, 0, sizeof st);
    st[0].kind = CG_LOOP;
    st[0].loop.rank = 1;
    st[0].loop.extent[0] = (cg_dim){4, 0};
    st[0].loop.nloads = 1;
    st[0].loop.load[0].buffer = 0;
    st[0].loop.nexprs = 1;
    st[0].loop.expr[0] = (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 0};
    st[0].loop.nstores = 1;
    st[0].loop.store[0] = (cg_store){.expr = 0, .at = {.buffer = 0}};
    st[1] = st[0];
    st[1].loop.load[0].buffer = 99;
    cg_program p = {.name = "bad", .nbuffers = 1, .buffers = buf, .nsteps = 2, .steps = st};
    char *text = NULL, err[512];
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    cg_cuda_plan plan;
    cr_expect_not(cg_cuda_render(f, &p, &plan, err, sizeof err));
    fclose(f);
    free(text);
    cr_expect_str_eq(err, "bad: step 1: load 0: buffer 99 does not exist");
    cr_expect_null(plan.step);
    /* a store of an expression the step does not have, checked before anything is printed */
    st[1] = st[0];
    st[1].loop.store[0].expr = 7;
    f = open_memstream(&text, &size);
    cr_expect_not(cg_cuda_render(f, &p, &plan, err, sizeof err));
    fclose(f);
    free(text);
    cr_expect_str_eq(err, "bad: step 1: store 0: expression 7 does not exist");
}
