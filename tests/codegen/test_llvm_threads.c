/* Threaded generated loops (codegen/llvm/emit_loop.c with cg_args.pool): a model's whole train
 * step, and a large elementwise loop, give the same bits with no pool and with pools of 1 to
 * 4 threads (the chunks depend on N only), and the model's step still matches the
 * interpreter within 1e-5. Logs the large loop's time on 1 and 2 threads. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bind.h"
#include "diff_run.h"
#include "emit.h"
#include "interp.h"
#include "load.h"
#include "lower.h"
#include "passes.h"
#include "rt_ops.h"
#include "target.h"
#include "pool.h"

/* JIT'd code calls these from this process: referenced here, they are linked in. */
void *const test_llvm_threads_rt_refs[] = {(void *)rt_parallel_for, (void *)rt_softmax_ce, (void *)rt_dropout};

typedef void entry_fn(const cg_args *);

typedef struct jitted {
    cg_target *t;
    cg_jit *j;
    entry_fn *entry;
} jitted;

static jitted jit_compile(const cg_program *p)
{
    char err[1024];
    jitted J;
    J.t = cg_target_host(err, sizeof err);
    cr_assert_not_null(J.t, "%s", err);
    J.j = cg_jit_new(err, sizeof err);
    cr_assert_not_null(J.j, "%s", err);
    LLVMModuleRef m = cg_emit_module(p, cg_jit_context(J.j), J.t, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    cr_assert(cg_optimize(J.t, m, err, sizeof err), "%s", err);
    cr_assert(cg_jit_add(J.j, m, err, sizeof err), "%s", err);
    *(void **)&J.entry = cg_jit_lookup(J.j, p->name, err, sizeof err);
    cr_assert_not_null(J.entry, "%s", err);
    return J;
}

static void jit_done(jitted *J)
{
    cg_jit_free(J->j);
    cg_target_free(J->t);
}

/* pools: NULL, then 1..4 threads */
#define NRUNS 5

static void model_step(const char *model, int64_t batch)
{
    char path[512], err[1024];
    snprintf(path, sizeof path, AG_SOURCE_DIR "/models/%s.c", model);
    ir_graph *m = fe_load(path, getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(m);
    ir_graph *g = pass_run(m, true, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cg_program *p = cg_lower(g, true, err, sizeof err);
    cr_assert_not_null(p, "%s: %s", model, err);

    ir_tensor **bound = fe_bind_random(g, batch, 9, false);
    for (int32_t i = 0; i < g->n; i++)
        if (bound[i] && g->node[i].op == IR_input && g->node[i].shape.rank == 0)
            ir_tensor_set(bound[i], 0, strcmp(g->node[i].attr.name, "lr") == 0 ? 0.1 : 0.01);
    void *inputs[16];
    for (int k = 0; k < p->ninputs; k++)
        inputs[k] = bound[p->input_node[k]]->data;
    ir_tensor outs[32];
    ir_run run = {.f64 = false, .batch = batch, .seed = 4, .step = 2, .training = true};
    cr_assert(ir_interp(g, &run, (const ir_tensor *const *)bound, outs, err, sizeof err), "%s", err);

    jitted J = jit_compile(p);
    size_t arena = (size_t)rt_arena_bytes(p->arena, p->narena, batch), pbytes = (size_t)p->param_bytes;
    char *mem[NRUNS], *params[NRUNS];
    for (int r = 0; r < NRUNS; r++) {
        mem[r] = calloc(1, arena + 64), params[r] = calloc(1, pbytes + 64);
        cr_assert(mem[r] && params[r]);
        for (int k = 0; k < p->nparams; k++)
            memcpy(params[r] + p->params[k].offset, bound[p->params[k].node]->data, (size_t)p->params[k].bytes);
        rt_pool *pool = r ? rt_pool_new(r) : NULL;
        cr_assert(!r || pool);
        cg_args args = {mem[r], params[r], inputs, NULL, batch, 4, 2, pool, NULL, 0, NULL};
        J.entry(&args);
        rt_pool_free(pool);
        if (r) {
            cr_expect(memcmp(mem[r], mem[0], arena) == 0, "%s batch %lld: arena differs with %d threads", model,
                      (long long)batch, r);
            cr_expect(memcmp(params[r], params[0], pbytes) == 0, "%s batch %lld: parameters differ with %d threads",
                      model, (long long)batch, r);
        }
    }
    /* the 4-thread run against the interpreter */
    char *mine = mem[NRUNS - 1], *mparams = params[NRUNS - 1];
    for (int k = 0; k < g->nout; k++) {
        const cg_buffer *b = &p->buffers[p->output_buffer[k]];
        cr_assert(b->region == CG_ARENA || b->region == CG_PARAMS);
        const char *base = b->region == CG_ARENA ? mine : mparams;
        double e = diff_rel_error(&outs[k], base + b->offset.k + b->offset.n * batch, b->dtype, NULL);
        cr_expect(e <= 1e-5, "%s batch %lld, 4 threads: output %s differs by %g", model, (long long)batch,
                  g->out[k].name, e);
        ir_tensor_free(&outs[k]);
    }
    for (int r = 0; r < NRUNS; r++)
        free(mem[r]), free(params[r]);
    jit_done(&J);
    fe_bind_free(g, bound);
    cg_program_free(p);
    ir_graph_free(g);
    ir_graph_free(m);
}

Test(llvm_threads, mlp_step_is_the_same_bits_for_every_thread_count)
{
    model_step("mlp", 256);
    model_step("mlp", 7);
}

Test(llvm_threads, mlp_dropout_step_is_the_same_bits_for_every_thread_count)
{
    model_step("mlp_dropout", 256);
    model_step("mlp_dropout", 1);
}

/* ---- a large elementwise loop: out = exp(a) * b + a, 2048 x 4096 f32 ---- */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

Test(llvm_threads, large_elementwise_loop_same_bits_and_timing)
{
    enum { R = 2048, C = 4096 };
    const int64_t n = (int64_t)R * C, bytes = n * 4;
    cg_buffer buf[3] = {
        {CG_ARENA, 0, {0, 0}, AG_F32}, {CG_ARENA, 0, {bytes, 0}, AG_F32}, {CG_ARENA, 0, {2 * bytes, 0}, AG_F32}};
    cg_step st;
    memset(&st, 0, sizeof st);
    st.kind = CG_LOOP;
    cg_loop *l = &st.loop;
    l->rank = 2;
    l->extent[0] = (cg_dim){R, 0}, l->extent[1] = (cg_dim){C, 0};
    l->nloads = 2;
    for (int k = 0; k < 2; k++) {
        l->load[k].buffer = k;
        l->load[k].stride[0] = (cg_dim){C, 0}, l->load[k].stride[1] = (cg_dim){1, 0};
    }
    l->nexprs = 5;
    l->expr[0] = (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 0};
    l->expr[1] = (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 1};
    l->expr[2] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_exp, .a = 0};
    l->expr[3] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_mul, .a = 2, .b = 1};
    l->expr[4] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_add, .a = 3, .b = 0};
    l->nstores = 1;
    l->store[0] = (cg_store){.expr = 4, .at = {.buffer = 2, .stride = {{C, 0}, {1, 0}}}};
    cg_program p = {.name = "big", .nbuffers = 3, .buffers = buf, .nsteps = 1, .steps = &st};

    jitted J = jit_compile(&p);
    char *mem = malloc((size_t)bytes * 3);
    float *ref = malloc((size_t)bytes);
    cr_assert(mem && ref);
    float *a = (float *)mem, *b = (float *)(mem + bytes), *out = (float *)(mem + 2 * bytes);
    uint32_t s = 12345;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        a[i] = (float)((double)(s >> 8) / (1 << 24) * 8 - 4);
        s = s * 1664525u + 1013904223u;
        b[i] = (float)((double)(s >> 8) / (1 << 24) * 2 - 1);
    }
    double best[3] = {INFINITY, INFINITY, INFINITY}; /* no pool, 1 thread, 2 threads */
    for (int r = 0; r < 3; r++) {
        rt_pool *pool = r ? rt_pool_new(r) : NULL;
        cr_assert(!r || pool);
        cg_args args = {mem, NULL, NULL, NULL, 1, 0, 0, pool, NULL, 0, NULL};
        for (int rep = 0; rep < 5; rep++) {
            memset(out, 0xff, (size_t)bytes);
            double t0 = now_s();
            J.entry(&args);
            double t = now_s() - t0;
            best[r] = t < best[r] ? t : best[r];
            if (r == 0 && rep == 0)
                memcpy(ref, out, (size_t)bytes);
            else
                cr_assert(memcmp(ref, out, (size_t)bytes) == 0, "run %d with pool %d: different bits", rep, r);
        }
        rt_pool_free(pool);
    }
    /* and the values are the sum's (single-threaded reference in float) */
    for (int64_t i = 0; i < n; i += 4099) {
        float want = expf(a[i]) * b[i] + a[i];
        cr_assert(fabsf(ref[i] - want) <= 1e-5f * fmaxf(1, fabsf(want)), "element %lld: %g, want %g", (long long)i,
                  ref[i], want);
    }
    double gb = 3.0 * (double)bytes / 1e9;
    cr_log_info("8M-element loop (exp*mul+add, 96 MiB touched): no pool %.2f ms, 1 thread %.2f ms, 2 threads %.2f ms "
                "(%.1f / %.1f GB/s; %.2fx)",
                best[0] * 1e3, best[1] * 1e3, best[2] * 1e3, gb / best[1], gb / best[2], best[1] / best[2]);
    free(mem);
    free(ref);
    jit_done(&J);
}

/* ---- the streaming path (codegen/llvm/emit_loop.c, lp_stream): outputs of 16 MiB and more ----
 * An odd shape, an output that starts 4 bytes past a 32-byte boundary (so the path peels
 * single elements first and ends with single vectors and elements), a broadcast scalar and
 * an in-place update: every element equals C's arithmetic bit for bit, with no pool and on
 * 1 and 2 threads, and the bytes around the output are untouched. */

static char *emitted_ir(const cg_program *p)
{
    char err[1024];
    cg_target *t = cg_target_host(err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    LLVMContextRef c = LLVMContextCreate();
    LLVMModuleRef m = cg_emit_module(p, c, t, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    char *text = LLVMPrintModuleToString(m);
    LLVMDisposeModule(m);
    LLVMContextDispose(c);
    cg_target_free(t);
    return text;
}

Test(llvm_threads, streaming_loop_is_exact_at_every_edge)
{
    enum { R = 4099, C = 1027 };
    const int64_t n = (int64_t)R * C, bytes = n * 4, pad = 64;
    /* buffers: x at 0, the scalar s after it, out 4 bytes past the next 64-byte boundary */
    const int64_t s_off = bytes + pad, out_off = (s_off + 2 * pad) / 64 * 64 + 4, total = out_off + bytes + pad;
    cg_buffer buf[3] = {
        {CG_ARENA, 0, {0, 0}, AG_F32}, {CG_ARENA, 0, {s_off, 0}, AG_F32}, {CG_ARENA, 0, {out_off, 0}, AG_F32}};
    cg_step st[2];
    memset(st, 0, sizeof st);
    /* step 0: out = x * 0.5 + s;  step 1: out = out * out - s (in place) */
    for (int k = 0; k < 2; k++) {
        st[k].kind = CG_LOOP;
        cg_loop *l = &st[k].loop;
        l->rank = 2;
        l->extent[0] = (cg_dim){R, 0}, l->extent[1] = (cg_dim){C, 0};
        l->nloads = 2;
        l->load[0] = (cg_access){.buffer = k == 0 ? 0 : 2, .stride = {{C, 0}, {1, 0}}};
        l->load[1] = (cg_access){.buffer = 1};
        l->expr[0] = (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 0};
        l->expr[1] = (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 1};
        if (k == 0) {
            l->expr[2] = (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 0.5};
            l->expr[3] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_mul, .a = 0, .b = 2};
            l->expr[4] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_add, .a = 3, .b = 1};
        } else {
            l->expr[2] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_mul, .a = 0, .b = 0};
            l->expr[3] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_sub, .a = 2, .b = 1};
            l->expr[4] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_relu, .a = 3};
        }
        l->nexprs = 5;
        l->nstores = 1;
        l->store[0] = (cg_store){.expr = 4, .at = {.buffer = 2, .stride = {{C, 0}, {1, 0}}}};
    }
    cg_program p = {.name = "stream", .nbuffers = 3, .buffers = buf, .nsteps = 2, .steps = st};

    char *ir = emitted_ir(&p);
    cr_expect(strstr(ir, "!nontemporal") != NULL, "the loops have no streaming stores");
    LLVMDisposeMessage(ir);

    jitted J = jit_compile(&p);
    char *mem = NULL;
    cr_assert(posix_memalign((void **)&mem, 64, (size_t)total) == 0);
    float *x = (float *)mem, *s = (float *)(mem + s_off), *out = (float *)(mem + out_off);
    cr_assert((uintptr_t)out % 32 == 4, "the output should start 4 bytes past a 32-byte boundary");
    uint32_t r = 777;
    for (int64_t i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (float)((double)(r >> 8) / (1 << 24) * 6 - 3);
    }
    *s = 0.75f;
    for (int run = 0; run < 3; run++) {
        rt_pool *pool = run ? rt_pool_new(run) : NULL;
        cr_assert(!run || pool);
        memset(out - pad / 4, 0xab, (size_t)(bytes + 2 * pad));
        cg_args args = {mem, NULL, NULL, NULL, 1, 0, 0, pool, NULL, 0, NULL};
        J.entry(&args);
        rt_pool_free(pool);
        int64_t bad = 0, first = -1;
        for (int64_t i = 0; i < n; i++) {
            volatile float y = x[i] * 0.5f; /* volatile: no contraction into an fma */
            volatile float z = y + *s;
            volatile float w = z * z;
            float want = w - *s;
            want = want > 0 ? want : 0;
            if (memcmp(&want, &out[i], 4) != 0 && bad++ == 0)
                first = i;
        }
        cr_expect(bad == 0, "pool %d: %lld elements differ, the first at %lld", run, (long long)bad, (long long)first);
        for (int64_t k = 0; k < pad; k++) {
            cr_expect(((unsigned char *)out)[-1 - k] == 0xab, "pool %d: byte %lld before the output written", run,
                      (long long)k + 1);
            cr_expect(((unsigned char *)out)[bytes + k] == 0xab, "pool %d: byte %lld after the output written", run,
                      (long long)k);
        }
    }
    free(mem);
    jit_done(&J);
}
