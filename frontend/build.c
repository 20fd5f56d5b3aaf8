/* `aotgrad build`: a model (or a dumped stage) through the pipeline, lowering and the LLVM
 * backend, into an object file with a header for a C caller, and on request the LLVM IR,
 * the assembly and the final text IR. */
#include <errno.h>
#include <pthread.h>
#include <llvm-c/Core.h>
#include <llvm-c/Linker.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build.h"
#include "dump.h"
#include "fail.h"
#include "bug.h"
#include "emit.h"
#include "header.h"
#include "load.h"
#include "lower.h"
#include "model_source.h"
#include "nvrtc.h"
#include "render.h"
#include "passes.h"
#include "target.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* OUT.EXT, or OUT itself where it ends in .EXT already (-o sm.o --emit obj writes sm.o) */
static bool path_with(char *buf, size_t len, const char *out, const char *ext)
{
    size_t n = strlen(out), e = strlen(ext);
    if (n > e + 1 && out[n - e - 1] == '.' && strcmp(out + n - e, ext) == 0)
        return (size_t)snprintf(buf, len, "%s", out) < len;
    return (size_t)snprintf(buf, len, "%s.%s", out, ext) < len;
}

#ifdef AG_MPI_LIBS
#define AG_MPI_LIBS_OR_NONE AG_MPI_LIBS /* MPI's libraries, as CMake found them */
#else
#define AG_MPI_LIBS_OR_NONE ""
#endif

#ifndef AG_LINK_FLAGS
#define AG_LINK_FLAGS "" /* the sanitizers' flags when the runtime library is instrumented */
#endif

/* --distributed: the binary's rt_dist table (runtime/dist.h), or NULL: one process */
static const char *dist_table(const fe_build_opts *o)
{
    return o->bucket_bytes <= 0 ? NULL : o->mpi ? "rt_dist_mpi" : "rt_dist_nccl";
}

/* The executable OUT: the object files (NULL-ended: the programs' entry points), the tables
 * and main of model_source.c compiled with cc, the runtime library, OpenBLAS, zlib and libm. tmp: a folder for the pieces. */
static bool link_binary(const char *out, const char *const *objects, const char *source, const cg_program *ps,
                        const ir_graph *step, const cg_program *pe, const ir_graph *eval, const cg_split *split,
                        const cg_cuda_build *cuda, const char *dist, const char *tmp, char *err, size_t len)
{
    const char *include = fe_include_dir(), *runtime = fe_runtime_lib();
    if (!include || !runtime) {
        snprintf(err, len, "cannot find the aotgrad %s beside the aotgrad binary (set %s)",
                 include ? "runtime library" : "headers", include ? "AOTGRAD_RUNTIME_LIB" : "AOTGRAD_INCLUDE");
        return false;
    }
    char main_c[4200], main_o[4200], inc[4200];
    snprintf(main_c, sizeof main_c, "%s/main.c", tmp);
    snprintf(main_o, sizeof main_o, "%s/main.o", tmp);
    snprintf(inc, sizeof inc, "-I%s", include);
    FILE *f = fopen(main_c, "w");
    if (!f) {
        snprintf(err, len, "%.3000s: cannot write: %s", main_c, strerror(errno));
        return false;
    }
    bool ok = cg_write_model_source(f, source, ps, step, pe, eval, split, cuda, dist, err, len);
    if (fclose(f) != 0 && ok) {
        snprintf(err, len, "%.3000s: cannot write", main_c);
        ok = false;
    }
    if (!ok)
        return false;
    const char *cc = getenv("CC");
    cc = cc && *cc ? cc : "cc";
    char *compile[] = {(char *)cc, "-std=gnu17", "-O1", "-c", inc, "-o", main_o, main_c, NULL};
    int rc = fe_run_program(compile);
    if (rc != 0) {
        snprintf(err, len, "the binary's tables did not compile (%s exited with %d)", cc, rc);
        return false;
    }
    /* --as-needed: only the libraries the binary calls become NEEDED */
    char *link[40] = {(char *)cc, "-o", (char *)out, "-Wl,--as-needed"};
    int n = 4;
    for (int k = 0; objects[k]; k++)
        link[n++] = (char *)objects[k];
    /* a distributed build: libaotgrad_mpi.a, beside the runtime library, and MPI */
    char mpi_lib[4200], mpi_libs[] = AG_MPI_LIBS_OR_NONE;
    snprintf(mpi_lib, sizeof mpi_lib, "%.*s/libaotgrad_mpi.a",
             (int)(strrchr(runtime, '/') ? strrchr(runtime, '/') - runtime : 1), strrchr(runtime, '/') ? runtime : ".");
    bool mpi = dist && strcmp(dist, "rt_dist_mpi") == 0;
    if (mpi)
        link[n++] = main_o, link[n++] = mpi_lib;
    const char *rest[] = {main_o, runtime, "-lopenblas", "-lz", "-lm", "-pthread"};
    for (int k = mpi ? 1 : 0; k < 6; k++)
        link[n++] = (char *)rest[k];
    for (char *tok = mpi ? strtok(mpi_libs, " ") : NULL; tok && n < 30; tok = strtok(NULL, " "))
        link[n++] = tok;
    char flags[] = AG_LINK_FLAGS;
    for (char *tok = strtok(flags, " "); tok && n < 39; tok = strtok(NULL, " "))
        link[n++] = tok;
    link[n] = NULL;
    rc = fe_run_program(link);
    if (rc != 0) {
        snprintf(err, len, "the binary did not link (%s exited with %d)", cc, rc);
        return false;
    }
    return true;
}

/* The CUDA C of both programs (the forward one alone for a graph without training) and the
 * device runtime's kernels; with `compile`, NVRTC's cubin for the arch and PTX too. Writes
 * OUT.cu and OUT.ptx where --emit asks. */
typedef struct cuda_parts {
    char *src;
    cg_cuda_plan train, forward;
    cg_nvrtc_out out;
} cuda_parts;

static void cuda_parts_free(cuda_parts *c)
{
    free(c->src);
    cg_cuda_plan_free(&c->train);
    cg_cuda_plan_free(&c->forward);
    cg_nvrtc_out_free(&c->out);
}

static bool emit_cuda(const fe_build_opts *o, const cg_program *ps, const cg_program *pe, bool compile, cuda_parts *c,
                      char *err, size_t len)
{
    char file[4200];
    size_t size = 0;
    memset(c, 0, sizeof *c);
    FILE *mem = open_memstream(&c->src, &size);
    if (!mem) {
        snprintf(err, len, "out of memory");
        return false;
    }
    bool ok = (!ps || cg_cuda_render(mem, ps, &c->train, err, len)) && cg_cuda_render(mem, pe, &c->forward, err, len) &&
              cg_cuda_render_support(mem);
    fclose(mem);
    if (ok && (o->emit & FE_EMIT_CU)) {
        FILE *f = path_with(file, sizeof file, o->out, "cu") ? fopen(file, "w") : NULL;
        if (f)
            fwrite(c->src, 1, size, f);
        if (!f || fclose(f) != 0) {
            snprintf(err, len, "%.3000s: cannot write the CUDA source", file);
            ok = false;
        }
    }
    if (ok && ((o->emit & FE_EMIT_PTX) || compile)) {
        char name[300];
        snprintf(name, sizeof name, "%s.cu", (ps ? ps : pe)->name);
        ok = cg_nvrtc_compile(c->src, name, o->cuda_arch ? o->cuda_arch : "sm_90", true, compile, NULL, &c->out, err,
                              len);
        FILE *f =
            ok && (o->emit & FE_EMIT_PTX) && path_with(file, sizeof file, o->out, "ptx") ? fopen(file, "w") : NULL;
        if (f)
            fwrite(c->out.ptx, 1, c->out.ptx_len, f);
        if (ok && (o->emit & FE_EMIT_PTX) && (!f || fclose(f) != 0)) {
            snprintf(err, len, "%.3000s: cannot write the PTX", file);
            ok = false;
        }
    }
    return ok;
}

/* --dump-dir: what the passes cannot write themselves (their graphs come through pass_run's
 * callback): the memory plan's figures, the kernel IR, the CUDA C and PTX. */
static void dump_after_lowering(fe_dump *d, const fe_build_opts *o, const ir_graph *g, const cg_program *ps,
                                const cg_program *pe)
{
    char err[2048];
    FILE *f = fe_dump_begin(d, "memory.txt", "the memory plan's figures (aotgrad ir --memory)");
    if (f && !pass_memory_report(g, o->batch, f, err, sizeof err))
        fprintf(f, "%s\n", err);
    fe_dump_end(d, f);
    for (int k = 0; k < 2; k++) {
        const cg_program *p = k ? pe : ps;
        char file[300];
        if (!p)
            continue;
        snprintf(file, sizeof file, "%s.kernels.txt", p->name);
        f = fe_dump_begin(d, file, "the kernel IR: lowered steps, buffers, affine in N (codegen/kernel.h)");
        if (f)
            cg_print_program(f, p);
        fe_dump_end(d, f);
    }
    /* the CUDA C and, where NVRTC loads, its PTX (the GPU is not needed) */
    fe_build_opts co = *o;
    char base[4200], cu[300], ptx[300];
    snprintf(base, sizeof base, "%.2000s/%.200s", o->dump_dir, g->name);
    snprintf(cu, sizeof cu, "%s.cu", g->name);
    snprintf(ptx, sizeof ptx, "%s.ptx", g->name);
    co.out = base, co.emit = FE_EMIT_CU | FE_EMIT_PTX;
    cuda_parts c;
    bool ok = emit_cuda(&co, ps, pe, false, &c, err, sizeof err);
    bool have_ptx = ok && c.out.ptx;
    if (c.src)
        fe_dump_path(d, cu, "the CUDA C of both entry points (codegen/cuda)");
    if (have_ptx)
        fe_dump_path(d, ptx, "that source as PTX, through NVRTC");
    else
        fe_dump_note(d, c.src ? ptx : cu, err);
    cuda_parts_free(&c);
}

/* OUT.h and OUT.ir where --emit asks for them */
static bool write_header_and_ir(const fe_build_opts *o, const char *path, const cg_program *ps, const ir_graph *step,
                                const cg_program *pe, const ir_graph *eval, char *err, size_t len)
{
    char file[4096];
    if (o->emit & FE_EMIT_H) {
        FILE *f = path_with(file, sizeof file, o->out, "h") ? fopen(file, "w") : NULL;
        bool ok = f && cg_write_header(f, path, ps, step, pe, eval);
        if (f && fclose(f) != 0)
            ok = false;
        if (!ok)
            return rt_fail(err, len, "%.3000s: cannot write the header", file);
    }
    if (o->emit & FE_EMIT_IR) {
        FILE *f = path_with(file, sizeof file, o->out, "ir") ? fopen(file, "w") : NULL;
        if (f)
            ir_print(f, step ? step : eval);
        if (!f || fclose(f) != 0)
            return rt_fail(err, len, "%.3000s: cannot write the text IR", file);
    }
    return true;
}

/* A model's programs: the train step, the split step's halves that --accumulate and
 * --clip-norm run (passes/accumulate.c, apply.c), and the forward pass; each a pipeline's
 * graph lowered into the entry point NAME_ENTRY, in this order, each with the parameters
 * where an earlier one has them. */
enum { PROG_TRAIN, PROG_APPLY, PROG_ACCUMULATE, PROG_FORWARD, NPROGS };
static const struct program_kind {
    const char *entry;
    pass_pipeline pipeline;
    int layout; /* the program whose parameter layout it takes, where built (-1: its own) */
} program_kinds[NPROGS] = {{"train_step", PASS_TRAIN, -1},
                           {"apply", PASS_APPLY, PROG_TRAIN},
                           {"accumulate", PASS_ACCUMULATE, PROG_APPLY},
                           {"forward", PASS_EVAL, PROG_TRAIN}};

typedef struct programs {
    ir_graph *g[NPROGS]; /* NULL: not built (no training; no split step for a dumped train step) */
    cg_program *p[NPROGS];
    char name[NPROGS][256];
    char no_split[512]; /* why a model that trains has no split step, which its binary says */
} programs;

static void programs_free(programs *ps)
{
    for (int k = 0; k < NPROGS; k++) {
        cg_program_free(ps->p[k]);
        ir_graph_free(ps->g[k]);
    }
}

/* Each program's graph through its pipeline (with --dump-dir, every stage), planned again at
 * --batch where given. */
static bool run_pipelines(const ir_graph *g, const fe_build_opts *o, fe_dump *d, programs *ps, char *err, size_t len)
{
    bool trains = ir_trains(g);
    if (trains && g->train->stage == IR_STAGE_STEP)
        snprintf(ps->no_split, sizeof ps->no_split,
                 "it was built from a dumped train step, which has no gradients apart; build the model itself");
    for (int k = 0; k < NPROGS; k++) {
        bool split = k == PROG_APPLY || k == PROG_ACCUMULATE;
        if ((k != PROG_FORWARD && !trains) || (split && ps->no_split[0]))
            continue;
        const char *pipeline = pass_pipeline_names[program_kinds[k].pipeline];
        if (d)
            fe_dump_pipeline(d, pipeline);
        if (!(ps->g[k] =
                  pass_run_pipeline(g, program_kinds[k].pipeline, NULL, d ? fe_dump_stage : NULL, d, err, len))) {
            if (!split)
                return false;
            /* a model with a name the split step gives (an input named clip_norm) builds without it */
            snprintf(ps->no_split, sizeof ps->no_split, "%.500s", err);
            ir_graph_free(ps->g[PROG_APPLY]);
            ps->g[PROG_APPLY] = NULL;
            continue;
        }
        if (o->batch) {
            ir_graph *h = pass_plan_memory_at(ps->g[k], o->batch, err, len);
            ir_graph_free(ps->g[k]);
            if (!(ps->g[k] = h))
                return false;
            char file[64], what[96];
            snprintf(file, sizeof file, "%s.plan_memory_at_batch", pipeline);
            snprintf(what, sizeof what, "the %s graph planned at --batch", pipeline);
            if (d)
                fe_dump_graph(d, file, what, h);
        }
    }
    return true;
}

/* What the passes made must lower: a failure here is a bug. */
static void lower_programs(programs *ps)
{
    char err[4096];
    for (int k = 0; k < NPROGS; k++) {
        if (!ps->g[k])
            continue;
        int l = program_kinds[k].layout;
        const cg_program *layout = l >= 0 ? ps->p[l] : NULL;
        if (!(ps->p[k] = cg_lower_like(ps->g[k], k != PROG_FORWARD, layout, err, sizeof err)))
            ir_bug("%s", err);
        snprintf(ps->name[k], sizeof ps->name[k], "%s_%s", ps->g[k]->name, program_kinds[k].entry);
        ps->p[k]->name = ps->name[k];
    }
}

/* The programs in one LLVM module, those of mask (1 << PROG_...) that were built, in ctx;
 * NULL with a message (a bug: what lowered must emit). */
#define MAIN_PROGRAMS (1u << PROG_TRAIN | 1u << PROG_FORWARD)
#define SPLIT_PROGRAMS (1u << PROG_APPLY | 1u << PROG_ACCUMULATE)
static LLVMModuleRef emit_programs(const programs *ps, unsigned mask, LLVMContextRef ctx, cg_target *t, char *err,
                                   size_t len)
{
    LLVMModuleRef m = NULL;
    for (int k = 0; k < NPROGS; k++) {
        if (!ps->p[k] || !(mask >> k & 1))
            continue;
        LLVMModuleRef one = cg_emit_module(ps->p[k], ctx, t, err, len);
        if (!one) {
            if (m)
                LLVMDisposeModule(m);
            return NULL;
        }
        if (!m)
            m = one;
        else if (LLVMLinkModules2(m, one)) { /* takes one */
            snprintf(err, len, "cannot link %s into the module", ps->name[k]);
            LLVMDisposeModule(m);
            return NULL;
        }
    }
    return m;
}

/* The split step's entry points, compiled into an object of their own on a second thread
 * while the first compiles the train step and the forward pass (LLVM takes a context and a
 * target machine per thread): a binary takes them in little more time on two cores. Only a
 * binary has them; --emit obj, ll and s hold the train step and the forward pass. */
typedef struct split_object {
    const programs *ps;
    char file[4200], err[4096];
    bool ok;
} split_object;

static void *compile_split(void *arg)
{
    split_object *s = arg;
    cg_target *t = cg_target_host(s->err, sizeof s->err);
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef m = t ? emit_programs(s->ps, SPLIT_PROGRAMS, ctx, t, s->err, sizeof s->err) : NULL;
    s->ok = m && cg_optimize(t, m, s->err, sizeof s->err) && cg_emit_object(t, m, s->file, s->err, sizeof s->err);
    if (m)
        LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    cg_target_free(t);
    return NULL;
}

/* OUT's folder first: a build that cannot write its result says so before working. Errors
 * about OUT name OUT, not the model: nothing is wrong with it. */
static bool output_writable(const char *out)
{
    char folder[4096] = ".";
    const char *slash = strrchr(out, '/');
    if (slash) /* "/x" is in "/" */
        snprintf(folder, sizeof folder, "%.*s", slash == out ? 1 : (int)(slash - out), out);
    struct stat st;
    if (access(folder, W_OK | X_OK) != 0) {
        fprintf(stderr, "aotgrad build: error: -o %s: %s %s\n", out, folder,
                errno == ENOENT ? "does not exist (make the folder first)" : strerror(errno));
        return false;
    }
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "aotgrad build: error: -o %s is a folder; name the output in it (-o %s/NAME)\n", out, out);
        return false;
    }
    return true;
}

/* --time: where the build's time went; at: the moments each stage ended, from the start */
static void print_times(const char *path, const fe_build_opts *o, const double at[10])
{
    static const char *const stage[] = {"graph building", "passes",       "lowering",
                                        "CUDA C, NVRTC",  "LLVM IR",      "LLVM optimization",
                                        "machine code",   "tables, link", "header, text IR"};
    fprintf(stderr, "build of %s: %.1f ms\n", path, 1e3 * (at[9] - at[0]));
    for (int k = 0; k < 9; k++) {
        if ((k == 3 && !(o->emit & (FE_EMIT_CU | FE_EMIT_PTX)) && !o->cuda) || (k == 7 && !(o->emit & FE_EMIT_EXE)))
            continue; /* stages this build has not */
        fprintf(stderr, "  %-17s %6.1f ms\n", stage[k], 1e3 * (at[k + 1] - at[k]));
    }
}

/* The pieces of the binary in its temporary folder, and the folder. */
static void remove_pieces(const char *tmp, const char *name)
{
    const char *pieces[] = {"main.c", "main.o", "split.o", NULL};
    char piece[4300];
    for (int k = 0; pieces[k]; k++) {
        snprintf(piece, sizeof piece, "%s/%s", tmp, pieces[k]);
        unlink(piece);
    }
    snprintf(piece, sizeof piece, "%s/%s.o", tmp, name);
    unlink(piece);
    rmdir(tmp);
}

/* --distributed mpi|nccl|mpi,nccl: the train step sums its gradients over the ranks
 * (passes/distribute.c) */
static bool distribute(ir_graph *g, const fe_build_opts *o, char *err, size_t len)
{
    if (o->bucket_bytes <= 0)
        return true;
    const char *why = !g->train || !g->train->loss ? "the model declares no training (ag_minimize)"
                      : o->cuda && !o->nccl        ? "MPI sums the CPU's gradients: for the GPU's, --distributed nccl"
                      : !o->cuda && o->nccl        ? "NCCL sums the GPU's gradients: add --target cpu,cuda"
                                                   : NULL;
#ifndef AG_MPI_LIBS
    if (o->mpi)
        why = why ? why : "this aotgrad was built without MPI (install libopenmpi-dev and rebuild it)";
#endif
    if (why)
        return rt_fail(err, len, "--distributed %s: %s", o->nccl ? o->mpi ? "mpi,nccl" : "nccl" : "mpi", why);
    g->train->bucket_bytes = o->bucket_bytes;
    return true;
}

int fe_build(const char *path, const fe_build_opts *o)
{
    char err[4096], file[4096], tmp[4096] = "";
    cuda_parts cuda = {0};
    cg_cuda_build cuda_build = {0};
    double t0 = now();
    if (!output_writable(o->out))
        return 1;
    ir_graph *g = fe_load(path, NULL, o->settings);
    if (!g)
        return 1;
    if (!distribute(g, o, err, sizeof err)) {
        fe_report(path, err);
        ir_graph_free(g);
        return 1;
    }
    fe_dump *d = NULL;
    if (o->dump_dir && !(d = fe_dump_open(o->dump_dir, err, sizeof err))) {
        fe_report(path, err);
        ir_graph_free(g);
        return 1;
    }
    if (d)
        fe_dump_graph(d, "model", "the model's graph as built, before any pass", g);
    double t_graph = now();
    programs ps = {0};
    split_object split = {&ps, "", "", false};
    pthread_t split_thread;
    bool split_started = false;
    cg_target *t = NULL;
    LLVMContextRef ctx = NULL;
    LLVMModuleRef m = NULL;
    int rc = 1;
    double t_passes = 0, t_lower = 0, t_cuda = 0, t_llvm_ir = 0, t_opt = 0, t_mc = 0;
    if (!run_pipelines(g, o, d, &ps, err, sizeof err))
        goto fail;
    t_passes = now();
    lower_programs(&ps);
    const cg_program *train = ps.p[PROG_TRAIN], *fwd = ps.p[PROG_FORWARD];
    const ir_graph *step = ps.g[PROG_TRAIN], *eval = ps.g[PROG_FORWARD];
    t_lower = now();
    if (d)
        dump_after_lowering(d, o, g, train, fwd);
    bool with_cuda = o->cuda && (o->emit & FE_EMIT_EXE);
    if ((o->emit & (FE_EMIT_CU | FE_EMIT_PTX)) || with_cuda) {
        if (!emit_cuda(o, train, fwd, with_cuda, &cuda, err, sizeof err))
            goto fail;
        cuda_build = (cg_cuda_build){o->cuda_arch ? o->cuda_arch : "sm_90",
                                     (const unsigned char *)cuda.out.cubin,
                                     cuda.out.cubin_len,
                                     cuda.out.ptx,
                                     &cuda.train,
                                     &cuda.forward};
    }
    t_cuda = now();
    if (!(t = cg_target_host(err, sizeof err)))
        goto fail;
    if (o->emit & FE_EMIT_EXE) { /* the binary's pieces go in a temporary folder */
        snprintf(tmp, sizeof tmp, "%s/aotgrad-build-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmp)) {
            snprintf(err, sizeof err, "cannot make a temporary folder: %s", strerror(errno));
            tmp[0] = 0;
            goto fail;
        }
    }
    if ((o->emit & FE_EMIT_EXE) && ps.p[PROG_ACCUMULATE]) {
        snprintf(split.file, sizeof split.file, "%.3800s/split.o", tmp);
        if (pthread_create(&split_thread, NULL, compile_split, &split) != 0) {
            snprintf(err, sizeof err, "cannot start a thread: %s", strerror(errno));
            goto fail;
        }
        split_started = true;
    }
    ctx = LLVMContextCreate();
    ir_bug_enter("LLVM code generation", NULL);
    if (!(m = emit_programs(&ps, MAIN_PROGRAMS, ctx, t, err, sizeof err)))
        ir_bug("%s", err);
    t_llvm_ir = now();
    if (d) {
        snprintf(file, sizeof file, "%s.unoptimized.ll", g->name);
        if (!cg_emit_ir(m, fe_dump_path(d, file, "the LLVM IR as emitted, before optimization"), err, sizeof err))
            goto fail;
    }
    if (!cg_optimize(t, m, err, sizeof err))
        ir_bug("%s", err);
    t_opt = now();
    if (d) {
        snprintf(file, sizeof file, "%s.ll", g->name);
        if (!cg_emit_ir(m, fe_dump_path(d, file, "the LLVM IR after the O3 pipeline"), err, sizeof err))
            goto fail;
        snprintf(file, sizeof file, "%s.s", g->name);
        if (!cg_emit_assembly(t, m, fe_dump_path(d, file, "the assembly, with the model's lines"), err, sizeof err))
            goto fail;
    }
    if (o->emit & FE_EMIT_LL)
        if (!path_with(file, sizeof file, o->out, "ll") || !cg_emit_ir(m, file, err, sizeof err))
            goto fail;
    if (o->emit & FE_EMIT_S)
        if (!path_with(file, sizeof file, o->out, "s") || !cg_emit_assembly(t, m, file, err, sizeof err))
            goto fail;
    if (o->emit & (FE_EMIT_OBJ | FE_EMIT_EXE)) {
        /* the binary links OUT.o when it is asked for, else an object in the temporary folder */
        if (o->emit & FE_EMIT_OBJ) {
            if (!path_with(file, sizeof file, o->out, "o"))
                goto fail;
        } else
            snprintf(file, sizeof file, "%.3800s/%.200s.o", tmp, g->name);
        if (!cg_emit_object(t, m, file, err, sizeof err))
            goto fail;
        t_mc = now();
        if (split_started) {
            pthread_join(split_thread, NULL);
            split_started = false;
            if (!split.ok)
                ir_bug("the split train step: %s", split.err);
        }
        cg_split tables = {ps.p[PROG_ACCUMULATE], ps.g[PROG_ACCUMULATE], ps.p[PROG_APPLY], ps.g[PROG_APPLY],
                           ps.no_split};
        const char *objects[] = {file, split.file[0] ? split.file : NULL, NULL};
        if ((o->emit & FE_EMIT_EXE) &&
            !link_binary(o->out, objects, path, train, step, fwd, eval, &tables, with_cuda ? &cuda_build : NULL,
                         dist_table(o), tmp, err, sizeof err))
            goto fail;
    }
    double t_link = now();
    t_mc = o->emit & (FE_EMIT_OBJ | FE_EMIT_EXE) ? t_mc : t_link; /* no machine code: none of its time */
    if (!write_header_and_ir(o, path, train, step, fwd, eval, err, sizeof err))
        goto fail;
    if (o->time) {
        const double at[] = {t0, t_graph, t_passes, t_lower, t_cuda, t_llvm_ir, t_opt, t_mc, t_link, now()};
        print_times(path, o, at);
    }
    rc = 0;
fail:
    if (split_started)
        pthread_join(split_thread, NULL);
    if (d && !fe_dump_close(d, rc ? NULL : err, rc ? 0 : sizeof err))
        rc = 1;
    if (rc)
        fe_report(path, err);
    if (tmp[0])
        remove_pieces(tmp, g->name);
    cuda_parts_free(&cuda);
    if (m)
        LLVMDisposeModule(m);
    if (ctx)
        LLVMContextDispose(ctx);
    cg_target_free(t);
    programs_free(&ps);
    ir_graph_free(g);
    return rc;
}
