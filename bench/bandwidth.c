/* bench_bandwidth: fused elementwise kernels against this machine's copy bandwidth.
 *
 *   bench_bandwidth [--threads T] [--mib M]      (T: default the core count; M >= 64, default 64)
 *
 * The method: count the bytes each kernel must move, measure a ceiling for moving bytes in
 * the same run, and report the kernel's rate as a fraction of it.
 *
 * Ceiling: the faster of glibc's memcpy and a copy split over T pthreads, both on 256 MiB,
 * best of 5, counting bytes read plus bytes written (2 x 256 MiB per copy).
 *
 * Kernels: two chains written as text IR, each over f32[N, 1024] with N rows making M MiB per
 * array, compiled through the pipeline (ir_parse -> pass_run (eval) -> plan_memory(N) ->
 * cg_lower -> cg_emit_module -> cg_optimize -> ORC JIT), checked to be one CG_LOOP step,
 * run once to warm up (page faults, JIT) and then best of 7. A kernel's bytes: each input
 * read once plus its output written once.
 *   unary:  y = relu(x * 0.5 + 1)   2 x M MiB per run
 *   binary: y = a * b + a           3 x M MiB per run
 * The results are checked against a plain C loop on a sample of elements.
 *
 * Threads: with T > 1 the entry point gets cg_args.pool = rt_pool_new(T). An emitter that does
 * not read a->pool yet runs the kernel on one thread; the program says which one it found
 * (whether the emitted module declares a runtime pool routine, rt_*parallel* or rt_*pool*). */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xmmintrin.h>

#include "emit.h"
#include "ir.h"
#include "lower.h"
#include "passes.h"
#include "profile.h"
#include "target.h"
#include "pool.h"

/* The JIT resolves the runtime routines generated code may call from this process:
 * referenced here, they are linked in. */
void *const bench_bandwidth_rt_refs[] = {(void *)rt_profile_mark};

#define MiB ((size_t)1 << 20)
#define COLS 1024
#define COPY_BYTES (256 * MiB)
#define COPY_REPS 5
#define KERNEL_REPS 7

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static _Noreturn void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_bandwidth: %s: %s\n", what, msg);
    exit(1);
}

static void *xalloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, bytes) != 0)
        die("out of memory", strerror(ENOMEM));
    memset(p, 0, bytes); /* touch every page before anything is timed */
    return p;
}

/* ---- the ceiling ---- */

typedef struct copy_part {
    char *dst;
    const char *src;
    size_t bytes;
} copy_part;

static void *copy_worker(void *arg)
{
    copy_part *c = arg;
    memcpy(c->dst, c->src, c->bytes);
    return NULL;
}

/* dst <- src split over t threads (t - 1 started, the caller does the last part); the time
 * includes starting and joining the threads (tens of microseconds against milliseconds). */
static double copy_split(char *dst, const char *src, size_t bytes, int t)
{
    pthread_t tid[256];
    copy_part part[256];
    size_t per = (bytes / (size_t)t) & ~(size_t)4095;
    double t0 = now();
    for (int i = 0; i < t; i++) {
        part[i].dst = dst + (size_t)i * per;
        part[i].src = src + (size_t)i * per;
        part[i].bytes = i == t - 1 ? bytes - (size_t)i * per : per;
    }
    for (int i = 0; i < t - 1; i++)
        if (pthread_create(&tid[i], NULL, copy_worker, &part[i]) != 0)
            die("pthread_create", strerror(errno));
    copy_worker(&part[t - 1]);
    for (int i = 0; i < t - 1; i++)
        pthread_join(tid[i], NULL);
    return now() - t0;
}

/* ---- diagnostics: the unary chain as plain C loops, split over T pthreads ----
 * Not part of the bar: they show what the store kind costs. A plain store first reads the
 * line it writes (read for ownership), so it moves 3 x M MiB for the 2 x M counted; glibc's
 * memcpy of 256 MiB uses non-temporal stores, which do not. */

typedef struct c_part {
    float *y;
    const float *x;
    size_t n;
    bool nt;
} c_part;

static void *c_unary_worker(void *arg)
{
    c_part *c = arg;
    float *y = c->y;
    const float *x = c->x;
    if (!c->nt) {
        for (size_t i = 0; i < c->n; i++) {
            float v = x[i] * 0.5f + 1.0f;
            y[i] = v > 0 ? v : 0;
        }
        return NULL;
    }
    const __m128 h = _mm_set1_ps(0.5f), o = _mm_set1_ps(1.0f), z = _mm_setzero_ps();
    for (size_t i = 0; i + 4 <= c->n; i += 4) /* n is a multiple of 1024 */
        _mm_stream_ps(y + i, _mm_max_ps(_mm_add_ps(_mm_mul_ps(_mm_load_ps(x + i), h), o), z));
    _mm_sfence();
    return NULL;
}

static double c_unary_split(float *y, const float *x, size_t n, int t, bool nt)
{
    pthread_t tid[256];
    c_part part[256];
    size_t per = (n / (size_t)t) & ~(size_t)1023;
    double t0 = now();
    for (int i = 0; i < t; i++)
        part[i] = (c_part){y + (size_t)i * per, x + (size_t)i * per, i == t - 1 ? n - (size_t)i * per : per, nt};
    for (int i = 0; i < t - 1; i++)
        if (pthread_create(&tid[i], NULL, c_unary_worker, &part[i]) != 0)
            die("pthread_create", strerror(errno));
    c_unary_worker(&part[t - 1]);
    for (int i = 0; i < t - 1; i++)
        pthread_join(tid[i], NULL);
    return now() - t0;
}

/* ---- the kernels ---- */

static const char *unary_ir = "graph @bw_unary {\n"
                              "  %x: f32[N,1024] = input\n"
                              "  %h: f32[] = const 0.5\n"
                              "  %o: f32[] = const 1\n"
                              "  %0: f32[N,1024] = mul %x, %h\n"
                              "  %1: f32[N,1024] = add %0, %o\n"
                              "  %2: f32[N,1024] = relu %1\n"
                              "  return y: %2\n"
                              "}\n";

static const char *binary_ir = "graph @bw_binary {\n"
                               "  %a: f32[N,1024] = input\n"
                               "  %b: f32[N,1024] = input\n"
                               "  %0: f32[N,1024] = mul %a, %b\n"
                               "  %1: f32[N,1024] = add %0, %a\n"
                               "  return y: %1\n"
                               "}\n";

typedef struct kernel {
    const char *name, *formula, *ir;
    int ninputs;
    ir_graph *model, *graph;
    cg_program *prog;
    cg_jit *jit;
    void (*entry)(const cg_args *);
    bool threaded;     /* the emitted module calls a runtime pool routine */
    char pool_fn[128]; /* which one */
    float *in[2];      /* the input arrays: x, or a and b */
    char *arena;
    void *inputs[2]; /* in the program's argument order */
    cg_args args;
    double best; /* seconds */
} kernel;

/* Whether the emitted (not yet optimized) module declares a runtime routine for splitting
 * loops over the pool: how the benchmark tells an emitter that reads a->pool from one that
 * does not, without naming its API. */
static bool module_uses_pool(LLVMModuleRef m, char *name, size_t len)
{
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
        size_t n;
        const char *s = LLVMGetValueName2(f, &n);
        if (!LLVMIsDeclaration(f) || strncmp(s, "rt_", 3) != 0)
            continue;
        if (strstr(s, "parallel") || strstr(s, "pool")) {
            snprintf(name, len, "%s", s);
            return true;
        }
    }
    return false;
}

static void compile(kernel *k, cg_target *t, int64_t rows)
{
    char err[2048];
    k->model = ir_parse(k->ir, strlen(k->ir), k->name, err, sizeof err);
    if (!k->model)
        die("ir_parse", err);
    k->graph = pass_run(k->model, false, NULL, NULL, NULL, err, sizeof err);
    if (!k->graph)
        die("pass_run", err);
    if (!plan_memory(k->graph, rows))
        die("plan_memory", "no plan");
    k->prog = cg_lower(k->graph, false, err, sizeof err);
    if (!k->prog)
        die("cg_lower", err);
    int loops = 0;
    for (int i = 0; i < k->prog->nsteps; i++)
        loops += k->prog->steps[i].kind == CG_LOOP;
    printf("  %-7s %-24s lowered: %d step(s), %d loop(s)%s\n", k->name, k->formula, k->prog->nsteps, loops,
           k->prog->nsteps == 1 && loops == 1 ? " (fused: one loop)" : "  ** NOT ONE LOOP **");
    if (k->prog->ninputs != k->ninputs || k->prog->noutputs < 1)
        die(k->name, "unexpected inputs/outputs in the lowered program");
    k->jit = cg_jit_new(err, sizeof err);
    if (!k->jit)
        die("cg_jit_new", err);
    LLVMModuleRef m = cg_emit_module(k->prog, cg_jit_context(k->jit), t, err, sizeof err);
    if (!m)
        die("cg_emit_module", err);
    k->threaded = module_uses_pool(m, k->pool_fn, sizeof k->pool_fn);
    if (!cg_optimize(t, m, err, sizeof err))
        die("cg_optimize", err);
    if (!cg_jit_add(k->jit, m, err, sizeof err))
        die("cg_jit_add", err);
    *(void **)&k->entry = cg_jit_lookup(k->jit, k->prog->name, err, sizeof err);
    if (!k->entry)
        die("cg_jit_lookup", err);
}

static float ref_unary(float x)
{
    volatile float m = x * 0.5f; /* rounded, as the interpreter and the generated code do */
    float v = m + 1.0f;
    return v > 0 ? v : 0;
}

static float ref_binary(float a, float b)
{
    volatile float m = a * b;
    return m + a;
}

/* Allocates k's arrays (touched, filled) and its arena, and points its args at them. */
static void kernel_setup(kernel *k, int64_t rows, rt_pool *pool)
{
    size_t n = (size_t)rows * COLS, bytes = n * sizeof(float);
    const cg_program *p = k->prog;
    for (int i = 0; i < k->ninputs; i++) {
        k->in[i] = xalloc(bytes);
        for (size_t e = 0; e < n; e++) /* values of both signs, so relu cuts some */
            k->in[i][e] = (float)((int64_t)((e * 2654435761u + 12345u * (unsigned)i) % 2001u) - 1000) * (1.0f / 256);
    }
    int64_t arena_bytes = rt_arena_bytes(p->arena, p->narena, rows);
    k->arena = xalloc((size_t)arena_bytes + 64);
    for (int i = 0; i < p->ninputs; i++) {
        /* the program's input arguments in its order: %b is the second array, %a and %x the first */
        const char *nm = k->graph->node[p->input_node[i]].attr.name;
        k->inputs[i] = k->in[nm && nm[0] == 'b' ? 1 : 0];
    }
    k->args = (cg_args){k->arena, NULL, k->inputs, NULL, rows, 0, 0, pool, NULL, 0, NULL};
    k->best = INFINITY;
}

static void kernel_time(kernel *k)
{
    double t0 = now();
    k->entry(&k->args);
    double dt = now() - t0;
    k->best = dt < k->best ? dt : k->best;
}

/* Checks the output against a plain C loop on runs of 4096 elements spread over the array,
 * and the last element; returns the number of mismatches. */
static int kernel_check(kernel *k, int64_t rows)
{
    size_t n = (size_t)rows * COLS;
    const cg_program *p = k->prog;
    const cg_buffer *ob = &p->buffers[p->output_buffer[0]];
    const char *base = ob->region == CG_ARENA   ? k->arena
                       : ob->region == CG_INPUT ? (const char *)k->inputs[ob->index]
                                                : NULL;
    if (!base || ob->dtype != AG_F32)
        die(k->name, "output is not an f32 buffer in the arena or an input");
    const float *y = (const float *)(base + ob->offset.k + ob->offset.n * rows), *a = k->in[0], *b = k->in[1];
    size_t checked = 0;
    int bad = 0;
    for (size_t e = 0; e < n; e = e % 4096 == 4095 ? e + 104729 : e + 1, checked++) {
        float want = k->ninputs == 1 ? ref_unary(a[e]) : ref_binary(a[e], b[e]);
        if (!(fabsf(y[e] - want) <= 1e-6f * fmaxf(1.0f, fabsf(want)))) {
            if (bad < 3)
                fprintf(stderr, "  %s: y[%zu] = %g, want %g\n", k->name, e, (double)y[e], (double)want);
            bad++;
        }
    }
    float want = k->ninputs == 1 ? ref_unary(a[n - 1]) : ref_binary(a[n - 1], b[n - 1]);
    bad += y[n - 1] != want;
    printf("  %-7s checked %zu sampled elements against a C loop: %s\n", k->name, checked + 1, bad ? "MISMATCH" : "ok");
    return bad;
}

static void kernel_free(kernel *k)
{
    for (int i = 0; i < k->ninputs; i++)
        free(k->in[i]);
    free(k->arena);
    cg_jit_free(k->jit);
    cg_program_free(k->prog);
    ir_graph_free(k->graph);
    ir_graph_free(k->model);
}

static const char usage_text[] =
    "usage: bench_bandwidth [--threads T] [--mib M]\n\n"
    "Times two fused elementwise kernels (compiled through the whole pipeline) against this\n"
    "machine's copy bandwidth, measured in the same run; prints GB/s and the fraction of it.\n\n"
    "  --threads T   threads, 1 to 256 (default: the core count)\n"
    "  --mib M       MiB per array, 64 to 65536 (default 64)\n";

/* what was wrong (printf-style, one %s), then where to read more; exit 2 */
static void usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "bench_bandwidth: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'bench_bandwidth --help'.\n");
    exit(2);
}

/* a whole number from lo to hi, else a usage error naming the option */
static long parse_count(const char *opt, const char *v, long lo, long hi)
{
    char *end, msg[96];
    errno = 0;
    long n = strtol(v, &end, 10);
    snprintf(msg, sizeof msg, "%s takes a whole number from %ld to %ld, not '%%s'", opt, lo, hi);
    if (errno || end == v || *end || n < lo || n > hi)
        usage_error(msg, v);
    return n;
}

int main(int argc, char **argv)
{
    int threads = rt_cpu_count();
    long mib = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(a, "--threads") != 0 && strcmp(a, "--mib") != 0)
            usage_error("unknown option '%s'", a);
        if (i + 1 == argc)
            usage_error("%s needs a value", a);
        if (strcmp(a, "--threads") == 0)
            threads = (int)parse_count(a, argv[++i], 1, 256);
        else
            mib = parse_count(a, argv[++i], 64, 65536);
    }
    int64_t rows = (int64_t)mib * (int64_t)MiB / (COLS * (int64_t)sizeof(float));

    char err[1024];
    cg_target *t = cg_target_host(err, sizeof err);
    if (!t)
        die("cg_target_host", err);
    rt_pool *pool = threads > 1 ? rt_pool_new(threads) : NULL;
    if (threads > 1 && !pool)
        die("rt_pool_new", "out of memory");
    printf("bench_bandwidth: threads %d (pool %s), %ld MiB per array (f32[%lld, %d]), cpu %s\n", threads,
           pool ? "yes" : "NULL", mib, (long long)rows, COLS, cg_target_cpu(t));

    /* Everything is allocated and touched first, then measured in interleaved rounds (each
     * round: the two copies, then each kernel once, then the diagnostic loops), so that the
     * best times of the ceiling and of the kernels come from the same stretch of time on a
     * shared machine. Copies: best of COPY_REPS rounds; the rest: best of KERNEL_REPS. */
    kernel ks[2] = {
        {.name = "unary", .formula = "y = relu(x * 0.5 + 1)", .ir = unary_ir, .ninputs = 1},
        {.name = "binary", .formula = "y = a * b + a", .ir = binary_ir, .ninputs = 2},
    };
    printf("kernels:\n");
    for (int i = 0; i < 2; i++)
        compile(&ks[i], t, rows);
    for (int i = 0; i < 2; i++)
        printf("  %-7s emitter threads: %s%s%s\n", ks[i].name,
               ks[i].threaded ? "yes, calls " : "no (a->pool not read: the kernel runs on one thread)",
               ks[i].threaded ? ks[i].pool_fn : "", ks[i].threaded && !pool ? " (pool NULL: runs inline)" : "");
    for (int i = 0; i < 2; i++)
        kernel_setup(&ks[i], rows, pool);
    char *src = xalloc(COPY_BYTES), *dst = xalloc(COPY_BYTES);
    memset(src, 1, COPY_BYTES);
    size_t n = (size_t)rows * COLS;
    float *cx = xalloc(n * sizeof(float)), *cy = xalloc(n * sizeof(float));
    for (size_t e = 0; e < n; e++)
        cx[e] = (float)((int64_t)(e % 2001u) - 1000) * (1.0f / 256);

    /* warm-up: JIT'd code, the pool's threads, every page written once */
    memcpy(dst, src, COPY_BYTES);
    copy_split(dst, src, COPY_BYTES, threads);
    for (int i = 0; i < 2; i++)
        ks[i].entry(&ks[i].args);
    c_unary_split(cy, cx, n, threads, false);
    c_unary_split(cy, cx, n, threads, true);

    double best_memcpy = INFINITY, best_split = INFINITY, best_c[2] = {INFINITY, INFINITY};
    for (int r = 0; r < KERNEL_REPS; r++) {
        if (r < COPY_REPS) {
            double t0 = now();
            memcpy(dst, src, COPY_BYTES);
            double dt = now() - t0;
            best_memcpy = dt < best_memcpy ? dt : best_memcpy;
            dt = copy_split(dst, src, COPY_BYTES, threads);
            best_split = dt < best_split ? dt : best_split;
        }
        for (int i = 0; i < 2; i++)
            kernel_time(&ks[i]);
        for (int nt = 0; nt < 2; nt++) {
            double dt = c_unary_split(cy, cx, n, threads, nt);
            best_c[nt] = dt < best_c[nt] ? dt : best_c[nt];
        }
    }
    int bad = 0;
    for (int i = 0; i < 2; i++)
        bad += kernel_check(&ks[i], rows);

    double gbs_memcpy = 2.0 * COPY_BYTES / best_memcpy / 1e9, gbs_split = 2.0 * COPY_BYTES / best_split / 1e9;
    double ceiling = gbs_memcpy > gbs_split ? gbs_memcpy : gbs_split;
    printf("ceiling: 256 MiB copies, best of %d, bytes read + written; kernels best of %d, rounds interleaved\n",
           COPY_REPS, KERNEL_REPS);
    printf("\n%-8s %-26s %9s %10s %8s %10s\n", "kernel", "what", "MiB moved", "best ms", "GB/s", "of ceiling");
    printf("%-8s %-26s %9s %10.2f %8.2f %9.1f%%\n", "memcpy", "glibc memcpy, 256 MiB", "512", best_memcpy * 1e3,
           gbs_memcpy, 100 * gbs_memcpy / ceiling);
    char what[64];
    snprintf(what, sizeof what, "copy on %d thread%s, 256 MiB", threads, threads > 1 ? "s" : "");
    printf("%-8s %-26s %9s %10.2f %8.2f %9.1f%%\n", "copy/T", what, "512", best_split * 1e3, gbs_split,
           100 * gbs_split / ceiling);
    bool pass = true;
    for (int i = 0; i < 2; i++) {
        double moved = (double)(ks[i].ninputs + 1) * (double)mib * (double)MiB;
        double gbs = moved / ks[i].best / 1e9, frac = gbs / ceiling;
        pass = pass && frac >= 0.8;
        printf("%-8s %-26s %9.0f %10.2f %8.2f %9.1f%%\n", ks[i].name, ks[i].formula, moved / (double)MiB,
               ks[i].best * 1e3, gbs, 100 * frac);
    }
    for (int nt = 0; nt < 2; nt++) {
        double moved = 2.0 * (double)mib * (double)MiB;
        printf("%-8s %-26s %9.0f %10.2f %8.2f %9.1f%%   (diagnostic, not the bar)\n", nt ? "C nt" : "C",
               nt ? "unary, streaming stores" : "unary, plain stores", moved / (double)MiB, best_c[nt] * 1e3,
               moved / best_c[nt] / 1e9, 100 * moved / best_c[nt] / 1e9 / ceiling);
    }
    printf("\nbar (both kernels >= 80%% of the ceiling at %d thread%s): %s\n", threads, threads > 1 ? "s" : "",
           pass ? "met" : "NOT met");

    free(src);
    free(dst);
    free(cx);
    free(cy);
    for (int i = 0; i < 2; i++)
        kernel_free(&ks[i]);
    rt_pool_free(pool);
    cg_target_free(t);
    return bad ? 1 : 0;
}
