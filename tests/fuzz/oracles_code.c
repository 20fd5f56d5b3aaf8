/* The oracles on the generated code (see oracles.h): the LLVM code through the JIT at 1 and
 * 2 threads, the CUDA C through the host shim, and a standalone binary's training step, each
 * against the interpreter. */
#include "oracles_common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bind.h"
#include "checkpoint.h"
#include "cuda_host.h"
#include "cuda_source.h"
#include "diff_run.h"
#include "emit.h"
#include "fail.h"
#include "interp.h"
#include "lower.h"
#include "pool.h"
#include "profile.h"
#include "rt_ops.h"
#include "target.h"

/* ---- the LLVM code ---- */

/* What generated code calls (codegen/llvm/emit.c): linked in, for the JIT to find. */
__attribute__((used)) static void (*const runtime_routines[])(void) = {
#define ROUTINE(op, f32, i32, sig, n) (void (*)(void)) f32, (void (*)(void))i32,
    RT_ROUTINES(ROUTINE) /* runtime/rt_ops.h's table */
#undef ROUTINE
    (void (*)(void)) rt_profile_mark,
    (void (*)(void))rt_parallel_for,
};

typedef struct jitted {
    cg_jit *j;
    void (*entry)(const cg_args *);
} jitted;

static bool jit(const cg_program *p, jitted *out, char *err, size_t len)
{
    static cg_target *t;
    if (!t && !(t = cg_target_host(err, len)))
        return false;
    out->j = cg_jit_new(err, len);
    if (!out->j)
        return false;
    LLVMModuleRef m = cg_emit_module(p, cg_jit_context(out->j), t, err, len);
    if (!m || !cg_optimize(t, m, err, len) || !cg_jit_add(out->j, m, err, len))
        return false;
    *(void **)&out->entry = cg_jit_lookup(out->j, p->name, err, len);
    return out->entry != NULL;
}

/* Where graph output k of p lies after a run. */
static const void *output_at(const cg_program *p, int k, char *arena, char *params, void *const *inputs, int64_t batch)
{
    const cg_buffer *b = &p->buffers[p->output_buffer[k]];
    const char *base = b->region == CG_ARENA ? arena : b->region == CG_PARAMS ? params : (const char *)inputs[b->index];
    return base + b->offset.k + b->offset.n * batch;
}

typedef struct raw {
    const void *p;
    ag_dtype t;
} raw;
static double raw_at(const void *r, int64_t i)
{
    const raw *x = r;
    switch (x->t) {
    case AG_F32: return ((const float *)x->p)[i];
    case AG_I32: return ((const int32_t *)x->p)[i];
    default: return ((const uint8_t *)x->p)[i];
    }
}

/* The f64 interpreter on the values given (f32, widened), for how far the f32 interpreter
 * itself is from exact: outs gets g's outputs. */
static bool interp_f64(const ir_graph *g, ir_tensor *const *given, int64_t batch, uint32_t seed, uint64_t step,
                       bool training, ir_tensor *outs, char *err, size_t len)
{
    ir_tensor *wide = calloc((size_t)(g->n ? g->n : 1), sizeof *wide);
    ir_tensor **bound = calloc((size_t)(g->n ? g->n : 1), sizeof *bound);
    bool ok = wide && bound;
    for (int32_t i = 0; ok && i < g->n; i++) {
        const ir_tensor *t = given[i];
        if (!t)
            continue;
        wide[i] = ir_tensor_new(ir_storage_dtype(t->dtype, true), &t->shape);
        ok = wide[i].data != NULL;
        for (int64_t j = 0, n = ir_tensor_numel(t); ok && j < n; j++)
            ir_tensor_set(&wide[i], j, ir_tensor_get(t, j));
        bound[i] = &wide[i];
    }
    ir_run run = {.f64 = true, .batch = batch, .seed = seed, .step = step, .training = training};
    ok = ok ? ir_interp(g, &run, (const ir_tensor *const *)bound, outs, err, len) : rt_fail(err, len, "out of memory");
    for (int32_t i = 0; wide && i < g->n; i++)
        ir_tensor_free(&wide[i]);
    free(wide);
    free(bound);
    return ok;
}

void oracle_check_llvm(const ir_graph *model, const ir_graph *g, const char *which, bool training, fz_result *r)
{
    static rt_pool *pool;
    if (!pool)
        pool = rt_pool_new(2);
    char err[2048];
    cg_program *p = cg_lower(g, training, err, sizeof err);
    if (!p)
        return oracle_say(r, FZ_FAIL, "llvm", "the %s cannot be lowered: %s", which, err);
    jitted J = {0};
    if (!jit(p, &J, err, sizeof err)) {
        oracle_say(r, FZ_FAIL, "llvm", "the %s's LLVM code: %s", which, err);
        goto out;
    }
    if (g->nout > 64)
        oracle_say(r, FZ_FAIL, "llvm", "the %s has %d outputs; the oracle follows 64", which, g->nout);
    for (int b = 0; b < NB && !done(r); b++) {
        int64_t batch = batches[b];
        binding bd;
        outputs want = {0}, exact = {0}; /* exact: the f64 interpreter's, run where needed */
        ir_tensor **bound = NULL;
        if (!oracle_bind_model(&bd, model, batch, false) ||
            !(bound = oracle_bind_graph(&bd, g, NULL, err, sizeof err)) ||
            !oracle_run_interp(g, bound, batch, false, training, &want, err, sizeof err)) {
            oracle_say(r, FZ_FAIL, "llvm", "the %s's f32 interpreter at batch %lld: %s", which, (long long)batch, err);
            free(bound);
            oracle_free_outputs(&want);
            oracle_unbind_model(&bd);
            break;
        }
        size_t abytes = (size_t)rt_arena_bytes(p->arena, p->narena, batch), pbytes = (size_t)p->param_bytes;
        void **inputs = calloc((size_t)p->ninputs + 1, sizeof *inputs);
        for (int k = 0; k < p->ninputs; k++)
            inputs[k] = bound[p->input_node[k]]->data;
        char *first[64] = {0};
        for (int threads = 1; threads <= 2 && !done(r); threads++) {
            char *arena = calloc(1, abytes + 64), *params = calloc(1, pbytes + 64);
            for (int k = 0; k < p->nparams; k++)
                memcpy(params + p->params[k].offset, bound[p->params[k].node]->data, (size_t)p->params[k].bytes);
            cg_args args = {arena, params, inputs, NULL, batch, SEED, STEP, threads == 2 ? pool : NULL, NULL, 0, NULL};
            J.entry(&args);
            for (int k = 0; k < g->nout && k < 64 && !done(r); k++) {
                const cg_buffer *buf = &p->buffers[p->output_buffer[k]];
                const void *at = output_at(p, k, arena, params, inputs, batch);
                size_t bytes = (size_t)ir_tensor_numel(&want.t[k]) * ir_dtype_size(buf->dtype);
                if (threads == 1) {
                    raw x = {at, buf->dtype};
                    double e = oracle_err_of(raw_at, &x, &want.t[k], ir_tensor_numel(&want.t[k])), own = 0;
                    /* the code sums in another order than the interpreter (a convolution's bias
                     * gradient sample by sample, say): the two differ by up to the f32
                     * interpreter's own rounding error, which a long sum with cancellation makes
                     * larger than 1e-5 (tests/data/fuzz/llvm_long_sum_order); measured against
                     * the f64 interpreter where the plain bar fails */
                    if (!(e <= 1e-5) && !exact.t && (exact.t = calloc((size_t)g->nout + 1, sizeof *exact.t)) &&
                        interp_f64(g, bound, batch, SEED, STEP, training, exact.t, err, sizeof err))
                        exact.n = g->nout; /* (once: a failed run leaves n 0, and the bar as it is) */
                    if (!(e <= 1e-5) && exact.n) {
                        own = fz_norm_err(&want.t[k], &exact.t[k]);
                        own = own < 1e-3 ? own : 0; /* NaN, or f32 far from exact: the bar stays */
                    }
                    if (!(e <= 1e-5 + 2 * own))
                        oracle_say(
                            r, FZ_FAIL, "llvm",
                            "the %s at batch %lld: output %s differs from the f32 interpreter by %.3g norm-wise, "
                            "more than 1e-5 + twice its own error %.3g (first values %.9g vs %.9g)",
                            which, (long long)batch, g->out[k].name, e, own, raw_at(&x, 0), get(&want.t[k], 0));
                    first[k] = malloc(bytes + 1);
                    memcpy(first[k], at, bytes);
                } else if (memcmp(first[k], at, bytes) != 0)
                    oracle_say(r, FZ_FAIL, "threads", "the %s at batch %lld: output %s differs between 1 and 2 threads",
                               which, (long long)batch, g->out[k].name);
            }
            free(arena);
            free(params);
        }
        for (int k = 0; k < 64; k++)
            free(first[k]);
        free(inputs);
        free(bound);
        oracle_free_outputs(&want);
        oracle_free_outputs(&exact);
        oracle_unbind_model(&bd);
    }
out:
    if (J.j)
        cg_jit_free(J.j);
    cg_program_free(p);
}

/* ---- the CUDA C, on the host ---- */

void oracle_check_cuda(const ir_graph *g, bool training, fz_result *r)
{
    char err[4096];
    const char *which = training ? "train step" : "eval graph";
    cg_program *p = cg_lower(g, training, err, sizeof err);
    if (!p)
        return oracle_say(r, FZ_FAIL, "cuda", "the %s cannot be lowered: %s", which, err);
    cg_cuda_plan plan;
    char *src = cuda_source(p, &plan, err, sizeof err);
    if (!src) {
        oracle_say(r, FZ_FAIL, "cuda", "the %s's CUDA C: %s", which, err);
        cg_program_free(p);
        return;
    }
    for (int b = 0; b < NB && !done(r); b++) {
        int64_t batch = batches[b];
        diff_run run;
        outputs want = {0}, exact = {0};
        if (!diff_run_init(&run, g, p, batch, err, sizeof err)) {
            oracle_say(r, FZ_FAIL, "cuda", "%s", err);
            diff_run_free(&run);
            break;
        }
        want.t = calloc((size_t)g->nout + 1, sizeof *want.t);
        exact.t = calloc((size_t)g->nout + 1, sizeof *exact.t);
        if (!cuda_host_run(src, &plan, batch, DIFF_SEED, DIFF_STEP, run.arena, run.params, run.inputs, run.ninputs,
                           NULL, 0, 4, err, sizeof err))
            oracle_say(r, FZ_FAIL, "cuda", "the %s on the host shim at batch %lld: %s", which, (long long)batch, err);
        else if (!diff_interp(&run, training, want.t, err, sizeof err))
            oracle_say(r, FZ_FAIL, "cuda", "the f32 interpreter: %s", err);
        else if (!interp_f64(run.g, run.bound, run.batch, DIFF_SEED, DIFF_STEP, training, exact.t, err, sizeof err))
            oracle_say(r, FZ_FAIL, "cuda", "the f64 interpreter: %s", err);
        else
            want.n = exact.n = g->nout;
        for (int k = 0; k < want.n && !done(r); k++) {
            const cg_buffer *buf = &p->buffers[p->output_buffer[k]];
            const char *base = buf->region == CG_ARENA    ? run.arena.data
                               : buf->region == CG_PARAMS ? run.params.data
                                                          : run.inputs[buf->index].data;
            raw x = {base + buf->offset.k + buf->offset.n * batch, buf->dtype};
            /* the CUDA code sums in another order than the interpreter (a block's tree): the
             * two differ by up to the f32 interpreter's own rounding error, which a long sum
             * with cancellation makes larger than 1e-5 */
            double own = fz_norm_err(&want.t[k], &exact.t[k]);
            own = own < 1e-3 ? own : 0; /* NaN, or f32 far from exact (an overflow): the f32 bits must agree */
            double tol = 1e-5 + 2 * own;
            double e = oracle_err_of(raw_at, &x, &want.t[k], ir_tensor_numel(&want.t[k]));
            if (!(e <= tol))
                oracle_say(r, FZ_FAIL, "cuda",
                           "the %s at batch %lld: output %s differs from the f32 interpreter by %.3g (more "
                           "than 1e-5 + twice the f32 interpreter's own error, %.3g)",
                           which, (long long)batch, g->out[k].name, e, own);
        }
        oracle_free_outputs(&exact);
        oracle_free_outputs(&want);
        diff_run_free(&run);
    }
    free(src);
    cg_cuda_plan_free(&plan);
    cg_program_free(p);
}

/* ---- the standalone binary ---- */

/* Runs a command line through the shell; its output in out (up to len), its exit status. */
static int shell(const char *cmd, char *out, size_t len)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    size_t n = fread(out, 1, len - 1, f);
    out[n] = 0;
    while (fgetc(f) != EOF) {
    }
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static double train_loss(const char *out)
{
    const char *at = strstr(out, "train_loss ");
    return at ? strtod(at + 11, NULL) : NAN;
}

/* The batch axis is the first of every input and output, or absent: what a forward
 * computation's binary takes (codegen/model_source.c refuses the rest, saying so). */
static bool rows_are_samples(const ir_graph *g)
{
    for (int32_t i = 0; i < g->n; i++) {
        bool io = g->node[i].op == IR_input;
        for (int k = 0; k < g->nout && !io; k++)
            io = g->out[k].id == i;
        for (int d = 1; io && d < g->node[i].shape.rank; d++)
            if (g->node[i].shape.dim[d] == AG_N)
                return false;
    }
    return true;
}

void oracle_check_forward_binary(const ir_graph *model, const fz_check_opts *o, fz_result *r)
{
    if (!rows_are_samples(model))
        return;
    /* 7 samples; 1 where no input has the batch axis: the binary's files then hold one
     * sample, and N (which a constant's shape may hold) is 1 */
    bool batched_input = false;
    for (int32_t i = 0; i < model->n; i++)
        batched_input |=
            model->node[i].op == IR_input && model->node[i].shape.rank > 0 && model->node[i].shape.dim[0] == AG_N;
    const int64_t ROWS = batched_input ? 7 : 1;
    char dir[1024], path[1200], cmd[8192], err[1024];
    snprintf(dir, sizeof dir, "%s/%s", o->workdir, model->name);
    mkdir(o->workdir, 0777);
    mkdir(dir, 0777);
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    ir_tensor **bound = fe_bind_random(model, ROWS, SEED, false);
    ir_tensor *want = calloc((size_t)model->nout + 1, sizeof *want);
    rt_ckpt_tensor *params = calloc((size_t)model->n + 1, sizeof *params);
    int np = 0, at = 0;
    ir_run run = {.f64 = false, .batch = ROWS, .seed = SEED, .step = STEP, .training = false};
    if (!out || !bound || !want || !params ||
        !ir_interp(model, &run, (const ir_tensor *const *)bound, want, err, sizeof err)) {
        oracle_say(r, FZ_FAIL, "binary", "the f32 interpreter: %s", out && bound ? err : "out of memory");
        goto out;
    }
    /* the model as .ir, its parameters as a checkpoint, each input as a CSV of rows */
    snprintf(path, sizeof path, "%s/%s.ir", dir, model->name);
    FILE *f = fopen(path, "w");
    if (!f) {
        oracle_say(r, FZ_FAIL, "binary", "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    ir_print(f, model);
    fclose(f);
    at = snprintf(cmd, sizeof cmd, "cd '%s' && ./case predict --threads 1 --weights p.safetensors", dir);
    for (int32_t i = 0; i < model->n; i++) {
        const ir_node *n = &model->node[i];
        if (n->op == IR_param) {
            rt_ckpt_tensor *p = &params[np++];
            *p = (rt_ckpt_tensor){n->attr.name, AG_F32, n->shape.rank, {0}, bound[i]->data};
            for (int k = 0; k < n->shape.rank; k++)
                p->dims[k] = n->shape.dim[k];
        }
        if (n->op != IR_input)
            continue;
        snprintf(path, sizeof path, "%s/%s.csv", dir, n->attr.name);
        f = fopen(path, "w");
        int64_t per = ir_numel(&n->shape, 1), total = ir_tensor_numel(bound[i]);
        for (int64_t k = 0; f && k < total; k++)
            fprintf(f, "%.9g%s", ir_tensor_get(bound[i], k), (k + 1) % per ? "," : "\n");
        if (f)
            fclose(f);
        at += snprintf(cmd + at, sizeof cmd - (size_t)at, " %s.csv", n->attr.name);
    }
    snprintf(path, sizeof path, "%s/p.safetensors", dir);
    if (!rt_ckpt_save(path, params, np, NULL, 0, err, sizeof err)) {
        oracle_say(r, FZ_FAIL, "binary", "the parameters' checkpoint: %s", err);
        goto out;
    }
    char bcmd[2048];
    snprintf(bcmd, sizeof bcmd, "cd '%s' && '%s' build %s.ir -o case --batch 64 2>&1", dir, o->aotgrad, model->name);
    if (shell(bcmd, out, cap) != 0) {
        oracle_say(r, FZ_FAIL, "binary", "aotgrad build %s.ir (a forward computation): %.3000s", model->name, out);
        goto out;
    }
    strcat(cmd, " 2>&1");
    if (shell(cmd, out, cap) != 0) {
        oracle_say(r, FZ_FAIL, "binary", "the binary's predict: %.3000s", out);
        goto out;
    }
    /* "# NAME = values" for outputs without N; a "# ..." line; a line a sample, " | " between outputs */
    const char *p = out;
    bool batched_any = false;
    for (int k = 0; k < model->nout; k++) {
        const ir_shape *s = &model->node[model->out[k].id].shape;
        batched_any |= s->rank > 0 && s->dim[0] == AG_N;
    }
    for (int pass = 0; pass < 2 && !done(r); pass++) {                /* unbatched outputs, then the rows */
        while (pass == 1 && batched_any && (*p == '\n' || *p == '#')) /* the rest of the header */
            p = *p == '\n' ? p + 1 : strchr(p, '\n') ? strchr(p, '\n') : p + strlen(p);
        for (int64_t row = 0; row < (pass ? ROWS : 1) && !done(r); row++)
            for (int k = 0; k < model->nout && !done(r); k++) {
                const ir_shape *s = &model->node[model->out[k].id].shape;
                bool batched = s->rank > 0 && s->dim[0] == AG_N;
                if (batched != (pass == 1))
                    continue;
                if (!batched) {
                    p = strstr(p, " = ");
                    p = p ? p + 3 : "";
                }
                int64_t per = ir_numel(s, 1);
                double d = 0, s2 = 0;
                for (int64_t j = 0; j < per; j++) {
                    char *end;
                    while (*p == ' ' || *p == '|' || *p == '\n')
                        p++;
                    double got = strtod(p, &end), x = ir_tensor_get(&want[k], row * per + j);
                    if (end == p) {
                        oracle_say(r, FZ_FAIL, "binary", "predict printed no value %lld of output %s:\n%.2000s",
                                   (long long)(row * per + j), model->out[k].name, out);
                        break;
                    }
                    p = end;
                    if ((isnan(x) && isnan(got)) || (isinf(x) && x == got))
                        continue;
                    d += (got - x) * (got - x), s2 += isfinite(x) ? x * x : 0;
                }
                if (!done(r) && !(sqrt(d) <= 1e-5 * fmax(sqrt(s2), 1)))
                    oracle_say(r, FZ_FAIL, "binary",
                               "predict's output %s (sample %lld) differs from the f32 interpreter by %.3g",
                               model->out[k].name, (long long)row, sqrt(d) / fmax(sqrt(s2), 1));
            }
    }
out:
    for (int k = 0; want && k < model->nout; k++)
        ir_tensor_free(&want[k]);
    free(want);
    free(params);
    if (bound)
        fe_bind_free(model, bound);
    free(out);
    fz_remove_tree(dir);
}

void oracle_check_binary(const ir_graph *model, const fz_check_opts *o, fz_result *r)
{
    int32_t x = ir_find_role(model, AG_ROLE_DATA), y = ir_find_role(model, AG_ROLE_LABELS); /* what the binary binds */
    if (x < 0 || y < 0)
        return;
    const ir_node *xn = &model->node[x], *yn = &model->node[y];
    char dir[1024], path[1200], cmd[4096], out[8192];
    snprintf(dir, sizeof dir, "%s/%s", o->workdir, model->name);
    mkdir(o->workdir, 0777);
    mkdir(dir, 0777);
    /* the model as .ir, and one batch of data as CSV: features then targets */
    snprintf(path, sizeof path, "%s/%s.ir", dir, model->name);
    FILE *f = fopen(path, "w");
    if (!f)
        return oracle_say(r, FZ_FAIL, "binary", "cannot write %s: %s", path, strerror(errno));
    ir_print(f, model);
    fclose(f);
    int64_t features = ir_numel(&xn->shape, 1), targets = ir_numel(&yn->shape, 1), rows = model->train->batch;
    int classes = 0; /* labels every reader of y takes: below the least class count */
    for (int32_t i = 0; i < model->n; i++) {
        const ir_node *n = &model->node[i];
        int c = 0;
        if (n->op == IR_one_hot && n->in[0] == y)
            c = n->attr.classes;
        if ((n->op == IR_eq || n->op == IR_ne) && (n->in[0] == y || n->in[1] == y)) {
            const ir_node *a = &model->node[n->in[n->in[0] == y]];
            if (a->op == IR_argmax)
                c = (int)model->node[a->in[0]].shape.dim[a->attr.axis];
        }
        if (c > 0 && (classes == 0 || c < classes))
            classes = c;
    }
    snprintf(path, sizeof path, "%s/data.csv", dir);
    f = fopen(path, "w");
    uint64_t s = 0;
    for (const char *c = model->name; *c; c++)
        s = s * 131 + (unsigned char)*c;
    for (int64_t i = 0; i < features + targets; i++)
        fprintf(f, "%sc%lld", i ? "," : "", (long long)i);
    fputc('\n', f);
    for (int64_t row = 0; row < rows; row++) {
        for (int64_t i = 0; i < features; i++) {
            double u = (double)(fz_mix64(&s) >> 11) * 0x1p-53;
            if (xn->dtype == AG_U8)
                fprintf(f, "%d,", (int)(u * 256));
            else
                fprintf(f, "%.6f,", 4 * u - 2);
        }
        for (int64_t i = 0; i < targets; i++) {
            double u = (double)(fz_mix64(&s) >> 11) * 0x1p-53;
            if (yn->dtype == AG_I32)
                fprintf(f, "%d%s", (int)(u * (classes ? classes : 1)), i + 1 < targets ? "," : "\n");
            else
                fprintf(f, "%.6f%s", 4 * u - 2, i + 1 < targets ? "," : "\n");
        }
    }
    fclose(f);
    /* half the models (by name) train through the split step: two micro-batches, clipped */
    char common[200];
    bool split = rows >= 2 && (model->name[strlen(model->name) - 1] & 1);
    snprintf(common, sizeof common, "--data data.csv --epochs 1 --seed 1 --batch %lld%s",
             (long long)(split ? (rows + 1) / 2 : rows), split ? " --accumulate 2 --clip-norm 0.5" : "");
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' build %s.ir -o case 2>&1", dir, o->aotgrad, model->name);
    if (shell(cmd, out, sizeof out) != 0) {
        oracle_say(r, FZ_FAIL, "binary", "aotgrad build %s.ir: %s", model->name, out);
        goto out;
    }
    snprintf(cmd, sizeof cmd, "cd '%s' && ./case train %s --threads 1 --save b.safetensors 2>&1", dir, common);
    char bout[8192];
    if (shell(cmd, bout, sizeof bout) != 0) {
        oracle_say(r, FZ_FAIL, "binary", "the binary's train: %s", bout);
        goto out;
    }
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' run %s.ir %s --save i.safetensors 2>&1", dir, o->aotgrad, model->name,
             common);
    if (shell(cmd, out, sizeof out) != 0) {
        oracle_say(r, FZ_FAIL, "binary", "aotgrad run (the interpreter) fails where the binary trains: %s", out);
        goto out;
    }
    double lb = train_loss(bout), li = train_loss(out);
    if (!isfinite(lb) || !isfinite(li)) {
        oracle_say(r, FZ_FAIL, "binary",
                   "no finite train_loss in the binary's (%g) or the interpreter's (%g) epoch line:\n%s\n%s", lb, li,
                   bout, out);
        goto out;
    }
    if (!(fabs(lb - li) <= 2e-4 * fmax(1, fabs(li)))) {
        oracle_say(r, FZ_FAIL, "binary", "the binary's train loss %g against the interpreter's %g", lb, li);
        goto out;
    }
    rt_ckpt cb = {0}, ci = {0};
    char pb[1300], pi[1300], err[1024];
    snprintf(pb, sizeof pb, "%s/b.safetensors", dir);
    snprintf(pi, sizeof pi, "%s/i.safetensors", dir);
    if (!rt_ckpt_load(pb, &cb, err, sizeof err) || !rt_ckpt_load(pi, &ci, err, sizeof err))
        oracle_say(r, FZ_FAIL, "binary", "reading a checkpoint: %s", err);
    for (int i = 0; i < ci.n && !done(r); i++) {
        const rt_ckpt_tensor *a = &ci.t[i], *b = rt_ckpt_find(&cb, a->name);
        if (!b || b->dtype != a->dtype || a->dtype != AG_F32) {
            oracle_say(r, FZ_FAIL, "binary", "the binary's checkpoint has no f32 tensor %s", a->name);
            break;
        }
        int64_t n = 1;
        for (int k = 0; k < a->rank; k++)
            n *= a->dims[k];
        float *va = malloc(sizeof *va * (size_t)(n ? n : 1)), *vb = malloc(sizeof *vb * (size_t)(n ? n : 1));
        memcpy(va, a->data, sizeof *va * (size_t)n);
        memcpy(vb, b->data, sizeof *vb * (size_t)n);
        double d = 0, s2 = 0;
        for (int64_t k = 0; k < n; k++)
            d += ((double)va[k] - vb[k]) * ((double)va[k] - vb[k]), s2 += (double)va[k] * va[k];
        if (!(sqrt(d) <= 1e-5 * fmax(sqrt(s2), 1)))
            oracle_say(r, FZ_FAIL, "binary",
                       "after one step, %s differs between the binary and the interpreter by %.3g", a->name,
                       sqrt(d) / fmax(sqrt(s2), 1));
        free(va);
        free(vb);
    }
    rt_ckpt_free(&cb);
    rt_ckpt_free(&ci);
out:
    fz_remove_tree(dir); /* what failed is in the report */
}
