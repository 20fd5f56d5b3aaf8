/* gpu_diff: the CUDA backend's differential test on a real GPU. tests/cuda/test_cuda_ops.c
 * runs the rendered kernels on the CPU through a host shim; this runs the same cases, the
 * kernels compiled by NVRTC, on the device through the driver, against the interpreter.
 *
 * The GPU machine has the driver but no NVRTC (needed: none), LLVM, OpenBLAS or Criterion,
 * so the work is split: `write` (where NVRTC is) renders and compiles every case into a
 * folder, `run` (on the GPU) rebuilds each case from its IR in the folder, checks that the
 * source it renders is the one compiled, and compares. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cuda/nvrtc.h"
#include "cuda_device.h"
#include "cuda_source.h"
#include "diff_run.h"
#include "load.h"
#include "lower.h"
#include "op_samples.h"
#include "passes.h"

#define ARCH "sm_90"   /* the cubin's; the PTX (compute_90) serves newer GPUs */
#define TOLERANCE 1e-5 /* norm-wise relative error, as test_cuda_ops.c */
#define OP_MAX_BATCH 1001
static const int64_t op_batches[4] = {1, 7, 256, OP_MAX_BATCH};

static const char usage[] = "usage: gpu_diff write DIR [--only CASE]... [MODEL.ir ...]\n"
                            "       gpu_diff run DIR [--only CASE]... [--batch N]\n"
                            "\n"
                            "The CUDA kernels on a GPU against the interpreter (tests/cuda/gpu_diff.c).\n"
                            "write  (needs NVRTC) every op's sample graph (cases op_NAME), the 4-at-a-time graph\n"
                            "       (vec4) and each model's IR (`aotgrad ir models/M.c > M.ir`; the case is the\n"
                            "       file's name): DIR/CASE.ir, the CUDA C DIR/CASE.cu, and NVRTC's DIR/CASE.cubin\n"
                            "       (" ARCH ") and DIR/CASE.ptx\n"
                            "run    (needs a GPU) each case of DIR: renders it again (it must equal CASE.cu: else\n"
                            "       the kernels are stale), binds random inputs (seed 11; lr 0.1, wd 0.01), runs the\n"
                            "       kernels (the cubin, else the PTX) and the interpreter, and compares every output\n"
                            "       within 1e-5 norm-wise (dropout's op bit for bit). Op samples at batches 1, 7,\n"
                            "       256, 1001, models' train step at 7 and min(256, its batch); --batch N: N only.\n"
                            "       One line a case, then `gpu_diff: N cases on GPU, M failed`; exit 0 when none\n"
                            "       failed, 1 otherwise (no driver or GPU: one line).\n"
                            "--only CASE: that case only (repeatable).\n";

/* the 4-at-a-time accesses of test_cuda_ops.c's vector_accesses_4_at_a_time */
static const char vec4_ir[] =
    "graph @vec4 {\n"
    "  %x: f32[N,8] = input\n  %u: u8[N,8] = input\n  %c: f32[N,1] = input\n  %b: f32[8] = input\n"
    "  %0: f32[N,8] = mul %x, %c\n  %1: f32[N,8] = add %0, %b\n  %2: f32[N,8] = cast %u\n"
    "  %3: f32[N,8] = add %1, %2\n  %4: bool[N,8] = gt %3, %x\n"
    "  return y: %3, m: %4\n}\n";

/* One case: its IR and what the pipeline makes of it. */
typedef struct gd_case {
    ir_graph *m, *g;
    cg_program *p;
    cg_cuda_plan plan;
    char *src;  /* the rendered CUDA C */
    bool model; /* a model's train step (its IR declares training), else an op's graph */
} gd_case;

static void case_free(gd_case *c)
{
    free(c->src);
    cg_cuda_plan_free(&c->plan);
    cg_program_free(c->p);
    ir_graph_free(c->g);
    ir_graph_free(c->m);
    *c = (gd_case){0};
}

/* as test_cuda_ops.c builds them: a model's train step, an op's graph planned for 1001 */
static bool case_build(gd_case *c, const char *name, const char *ir, char *err, size_t len)
{
    *c = (gd_case){0};
    if (!(c->m = ir_parse(ir, strlen(ir), name, err, len)))
        return false;
    c->model = c->m->train != NULL;
    if (!(c->g = pass_run(c->m, c->model, NULL, NULL, NULL, err, len)))
        return false;
    if (!c->model)
        plan_memory(c->g, OP_MAX_BATCH);
    if (!(c->p = cg_lower(c->g, true, err, len)))
        return false;
    return (c->src = cuda_source(c->p, &c->plan, err, len)) != NULL;
}

/* ---- the cases chosen with --only (none: all) ---- */

#define MAX_ONLY 16
static const char *only[MAX_ONLY];
static int nonly;
static bool matched[MAX_ONLY];

static bool selected(const char *name)
{
    bool any = false;
    for (int k = 0; k < nonly; k++)
        if (strcmp(only[k], name) == 0)
            matched[k] = any = true;
    return nonly == 0 || any;
}

/* the --only names that matched no case, one line each; how many */
static int unmatched(const char *dir)
{
    int n = 0;
    for (int k = 0; k < nonly; k++)
        if (!matched[k])
            printf("gpu_diff: no case %s (in %s)\n", only[k], dir), n++;
    return n;
}

/* ---- files ---- */

static bool write_all(const char *path, const void *data, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(data, 1, bytes, f) == bytes;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "gpu_diff: cannot write %s: %s\n", path, strerror(errno));
    return ok;
}

static void case_path(char *path, size_t size, const char *dir, const char *name, const char *ext)
{
    snprintf(path, size, "%s/%s.%s", dir, name, ext);
}

/* ---- write ---- */

/* DIR/NAME.{ir,cu,cubin,ptx} of one case; false with a message on stderr */
static bool write_case(const char *dir, const char *name, const char *ir)
{
    char err[4096], path[4096];
    gd_case c;
    cg_nvrtc_out out = {0};
    bool ok = case_build(&c, name, ir, err, sizeof err) &&
              cg_nvrtc_compile(c.src, name, ARCH, true, true, NULL, &out, err, sizeof err);
    if (!ok)
        fprintf(stderr, "gpu_diff: %s: %s\n", name, err);
    case_path(path, sizeof path, dir, name, "ir");
    ok = ok && write_all(path, ir, strlen(ir));
    case_path(path, sizeof path, dir, name, "cu");
    ok = ok && write_all(path, c.src, strlen(c.src));
    case_path(path, sizeof path, dir, name, "cubin");
    ok = ok && write_all(path, out.cubin, out.cubin_len);
    case_path(path, sizeof path, dir, name, "ptx");
    ok = ok && write_all(path, out.ptx, out.ptx_len);
    cg_nvrtc_out_free(&out);
    case_free(&c);
    return ok;
}

static int write_cases(const char *dir, char **models, int nmodels)
{
    char why[512], text[8192], name[256];
    if (!cg_nvrtc_available(why, sizeof why)) {
        fprintf(stderr, "gpu_diff: write needs NVRTC: %s\n", why);
        return 1;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "gpu_diff: cannot make %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int n = 0, failed = 0;
    for (int op = 0; op < IR_OP_COUNT; op++)
        if (op_sample((ir_op)op, text, sizeof text)) { /* (allreduce: one rank's sum, skipped) */
            snprintf(name, sizeof name, "op_%s", ir_ops[op].name);
            if (selected(name))
                failed += !write_case(dir, name, text), n++;
        }
    if (selected("vec4"))
        failed += !write_case(dir, "vec4", vec4_ir), n++;
    for (int k = 0; k < nmodels; k++) {
        const char *base = strrchr(models[k], '/') ? strrchr(models[k], '/') + 1 : models[k];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(base, "."), base);
        if (!selected(name))
            continue;
        size_t size;
        char *ir = fe_read_file(models[k], &size);
        if (!ir)
            fprintf(stderr, "gpu_diff: cannot read %s: %s\n", models[k], strerror(errno));
        failed += !ir || !write_case(dir, name, ir), n++;
        free(ir);
    }
    failed += unmatched(dir);
    printf("gpu_diff: wrote %d cases to %s, %d failed\n", n, dir, failed);
    return failed ? 1 : 0;
}

/* ---- run ---- */

static bool has_dropout(const ir_graph *g)
{
    for (int32_t i = 0; i < g->n; i++)
        if (g->node[i].op == IR_dropout)
            return true;
    return false;
}

/* One case on the device: prints its line; false when it failed. */
static bool run_case(cuda_device *dev, const char *dir, const char *name, int64_t only_batch)
{
    char err[4096], path[4096], why[4352] = "";
    gd_case c = {0};
    char *ir = NULL, *cu = NULL, *cubin = NULL, *ptx = NULL;
    size_t cubin_len = 0, size;
    double worst = 0;
    bool ok = false;
    case_path(path, sizeof path, dir, name, "ir");
    if (!(ir = fe_read_file(path, &size))) {
        snprintf(why, sizeof why, "cannot read %s", path);
        goto done;
    }
    if (!case_build(&c, name, ir, err, sizeof err)) {
        snprintf(why, sizeof why, "%s", err);
        goto done;
    }
    case_path(path, sizeof path, dir, name, "cu");
    if (!(cu = fe_read_file(path, &size)) || strcmp(cu, c.src) != 0) {
        snprintf(why, sizeof why,
                 "%s %s: the kernels were compiled from another source (stale: run gpu_diff write "
                 "again)",
                 path, cu ? "differs from what this gpu_diff renders" : "is missing");
        goto done;
    }
    case_path(path, sizeof path, dir, name, "cubin");
    cubin = fe_read_file(path, &cubin_len);
    case_path(path, sizeof path, dir, name, "ptx");
    ptx = fe_read_file(path, &size);
    if (!cubin && !ptx) {
        snprintf(why, sizeof why, "no %s.cubin or %s.ptx in %s", name, name, dir);
        goto done;
    }
    if (!cuda_device_load(dev, cubin, cubin_len, ptx, &c.plan, err, sizeof err)) {
        snprintf(why, sizeof why, "%s", err);
        goto done;
    }
    /* the batches: an op's as test_cuda_ops.c's, a model's train step small and full */
    int64_t max = c.p->batch, full = max < 256 ? max : 256, batches[4];
    int nb = 0;
    if (only_batch > 0)
        batches[nb++] = only_batch;
    else if (c.model) {
        if (full > 7)
            batches[nb++] = 7;
        batches[nb++] = full;
    } else
        for (int k = 0; k < 4; k++)
            if (op_batches[k] <= max)
                batches[nb++] = op_batches[k];
    bool bitwise_required = !c.model && has_dropout(c.g);
    ok = true;
    for (int b = 0; b < nb && ok; b++) {
        if (batches[b] > max) {
            snprintf(why, sizeof why, "batch %lld is over the plan's %lld", (long long)batches[b], (long long)max);
            ok = false;
            break;
        }
        diff_run r;
        ir_tensor want[64];
        int nwant = 0;
        ok = c.g->nout <= 64 && diff_run_init(&r, c.g, c.p, batches[b], err, sizeof err) &&
             cuda_device_run(dev, batches[b], DIFF_SEED, DIFF_STEP, r.arena, r.params, r.inputs, r.ninputs, NULL, 0,
                             err, sizeof err) &&
             diff_interp(&r, true, want, err, sizeof err);
        if (!ok)
            snprintf(why, sizeof why, "batch %lld: %s", (long long)batches[b],
                     c.g->nout > 64 ? "more than 64 outputs" : err);
        nwant = ok ? c.g->nout : 0;
        for (int k = 0; k < nwant; k++) {
            bool bitwise;
            double e = diff_output_error(&r, k, &want[k], &bitwise);
            if (!(e <= worst)) /* NaN stays */
                worst = e;
            if (ok && (!(e <= TOLERANCE) || (bitwise_required && !bitwise))) {
                snprintf(why, sizeof why, "output %s at batch %lld: %s %.3g", c.g->out[k].name, (long long)batches[b],
                         e <= TOLERANCE ? "not the same bits, error" : "error", e);
                ok = false;
            }
            ir_tensor_free(&want[k]);
        }
        diff_run_free(&r);
    }
done:
    if (ok)
        printf("%-28s worst %-10.3g ok\n", name, worst);
    else
        printf("%-28s worst %-10.3g FAIL: %s\n", name, worst, why);
    fflush(stdout);
    free(ir), free(cu), free(cubin), free(ptx);
    case_free(&c);
    return ok;
}

static int is_ir(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 3 && strcmp(e->d_name + n - 3, ".ir") == 0;
}

static int run_cases(const char *dir, int64_t only_batch)
{
    char err[1024];
    struct dirent **list = NULL;
    int n = scandir(dir, &list, is_ir, alphasort);
    if (n < 0) {
        fprintf(stderr, "gpu_diff: cannot read %s: %s\n", dir, strerror(errno));
        return 1;
    }
    cuda_device *dev;
    if (!cuda_device_open(&dev, err, sizeof err)) {
        printf("gpu_diff: %s\n", err);
        for (int k = 0; k < n; k++)
            free(list[k]);
        free(list);
        return 1;
    }
    int cases = 0, failed = 0;
    for (int k = 0; k < n; k++) {
        list[k]->d_name[strlen(list[k]->d_name) - 3] = 0; /* the case's name */
        if (selected(list[k]->d_name))
            failed += !run_case(dev, dir, list[k]->d_name, only_batch), cases++;
        free(list[k]);
    }
    free(list);
    failed += unmatched(dir);
    printf("gpu_diff: %d cases on %s, %d failed\n", cases, cuda_device_name(dev), failed);
    cuda_device_close(dev);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    bool write = argc >= 3 && strcmp(argv[1], "write") == 0, run = argc >= 3 && strcmp(argv[1], "run") == 0;
    if (!write && !run) {
        fputs(usage, stderr);
        return 2;
    }
    int64_t batch = 0;
    char *models[256];
    int nmodels = 0;
    for (int k = 3; k < argc; k++) {
        if (strcmp(argv[k], "--only") == 0 && k + 1 < argc && nonly < MAX_ONLY)
            only[nonly++] = argv[++k];
        else if (run && strcmp(argv[k], "--batch") == 0 && k + 1 < argc && (batch = strtoll(argv[++k], NULL, 10)) > 0)
            continue;
        else if (write && argv[k][0] != '-' && nmodels < 256)
            models[nmodels++] = argv[k];
        else {
            fprintf(stderr, "gpu_diff: bad argument %s (or too many)\n%s", argv[k], usage);
            return 2;
        }
    }
    return write ? write_cases(argv[2], models, nmodels) : run_cases(argv[2], batch);
}
