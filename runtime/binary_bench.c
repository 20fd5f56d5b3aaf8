/* The standalone binary's bench command: the train step (a forward computation's forward
 * pass) timed on random data, kernel by kernel, against this machine's memcpy and sgemm
 * rates (the CPU) or as the replayed CUDA graph that training runs (a GPU). */
#define _GNU_SOURCE
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "binary_internal.h"
#include "cuda.h"
#include "fail.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* bytes read + written per second by memcpy of n bytes, repeated to take about a
 * millisecond at least, best of 5 */
static double memcpy_rate(size_t n)
{
    char *a = rt_bin_aligned(n), *c = rt_bin_aligned(n);
    int reps = n >= ((size_t)4 << 20) ? 1 : (int)(((size_t)4 << 20) / n);
    double best = INFINITY;
    for (int r = 0; a && c && r < 6; r++) {
        double t = now();
        for (int k = 0; k < reps; k++) {
            memcpy(c, a, n);
            __asm__ volatile("" : : "r"(c) : "memory"); /* every copy happens */
        }
        t = (now() - t) / reps;
        best = r > 0 && t < best ? t : best; /* the first warms the cache */
    }
    free(a);
    free(c);
    return 2.0 * (double)n / best;
}

/* A level of the data cache a step's bytes fit in: its size (sysconf, or 1 MiB where the
 * system does not say) */
static size_t l2_bytes(void)
{
    long n = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return n > 0 ? (size_t)n : (size_t)1 << 20;
}

/* sgemm flops per second at 1024^3, best of 5, with OpenBLAS's current thread count */
static double sgemm_rate(void)
{
    int n = 1024;
    float *a = rt_bin_aligned(sizeof(float) * (size_t)n * n), *bb = rt_bin_aligned(sizeof(float) * (size_t)n * n),
          *c = rt_bin_aligned(sizeof(float) * (size_t)n * n);
    double best = INFINITY;
    for (int r = 0; a && bb && c && r < 5; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, bb, n, 0, c, n);
        t = now() - t;
        best = t < best ? t : best;
    }
    free(a);
    free(bb);
    free(c);
    return 2.0 * n * (double)n * n / best;
}

/* a step's work at batch N */
static double step_bytes(const rt_compiled_step *s, int64_t N) { return s->bytes + s->bytes_n * (double)N; }
static double step_flops(const rt_compiled_step *s, int64_t N) { return s->flops + s->flops_n * (double)N; }

/* bench on the GPU: o->steps full batches of random rows as one epoch through the replayed
 * graph (the training path), then the kernels one by one with events */
static bool bench_gpu(bin *b, const void *x, const void *y, const opts *o, char *err, size_t len)
{
    const rt_compiled *m = b->m;
    const rt_compiled_entry *e = &m->train;
    const rt_cuda_image *im = m->cuda;
    int64_t N = b->rows, n = N * o->steps;
    size_t xr = (size_t)(m->features * rt_elem_size(e->x_dtype)), yr = (size_t)(m->targets * 4);
    rt_dataset d = {.n = n,
                    .features = m->features,
                    .x_dtype = e->x_dtype,
                    .x = malloc((size_t)n * xr),
                    .targets = m->targets,
                    .y_dtype = e->y_dtype,
                    .y = malloc((size_t)n * yr),
                    .classes = m->classes};
    int64_t *perm = malloc(sizeof *perm * (size_t)n);
    double *seconds = calloc((size_t)im->ntrain + 1, sizeof *seconds);
    bool ok = (d.x && d.y && perm && seconds) || rt_fail(err, len, "out of memory");
    for (int64_t i = 0; ok && i < n; i++) { /* the N random rows again and again */
        memcpy((char *)d.x + (size_t)i * xr, (const char *)x + (size_t)(i % N) * xr, xr);
        memcpy((char *)d.y + (size_t)i * yr, (const char *)y + (size_t)(i % N) * yr, yr);
        perm[i] = i;
    }
    rt_fit f = {.epochs = 2, .batch = N, .lr = 1e-6, .seed = 1};
    double loss, metrics[RT_MAX_METRICS], t = 0;
    int64_t bad;
    ok = ok && rt_cuda_put_dataset(b->gpu, &d, err, len) && rt_cuda_put_params(b->gpu, b->params, err, len) &&
         rt_cuda_train_epoch(b->gpu, perm, n, &f, 1, 0, &loss, metrics, &bad, err, len); /* warm: the capture */
    if (ok) {
        double t0 = now();
        ok = rt_cuda_train_epoch(b->gpu, perm, n, &f, 2, (uint64_t)o->steps, &loss, metrics, &bad, err, len);
        t = (now() - t0) / (double)o->steps;
    }
    int64_t reps = o->steps < 20 ? o->steps : 20;
    ok = ok && rt_cuda_time_kernels(b->gpu, N, reps, seconds, err, len);
    if (ok) {
        printf("%s bench: train step at batch %lld on %s, %lld steps: %.1f us/step (the replayed graph: batch "
               "gathered on the device, %d kernels, sums), %.0f samples/s\n",
               m->name, (long long)N, rt_cuda_device_name(b->gpu), (long long)o->steps, t * 1e6, im->ntrain,
               (double)N / t);
        double total = 0;
        for (int k = 0; k < im->ntrain; k++)
            total += seconds[k] / (double)reps;
        printf("%3s  %-13s %-11s %9s %7s %14s  %s\n", "#", "kernel", "kind", "us/step", "share", "rate", "computes");
        for (int k = 0; k < im->ntrain; k++) {
            const rt_cuda_launch *l = &im->train[k];
            if (l->collective) { /* not a kernel: a bucket's sum (NCCL), nothing to sum in one process */
                printf("%3d  %-13s %-11s %9s %7s %14s  %s\n", k, "-", "collective", "-", "-", "-", l->name);
                continue;
            }
            double flops = 0, bytes = 0, tk = seconds[k] / (double)reps;
            for (int s = l->first_step; s < l->first_step + l->steps && s < e->nsteps; s++)
                flops += step_flops(&e->steps[s], N), bytes += step_bytes(&e->steps[s], N);
            const rt_compiled_step *st = &e->steps[l->first_step < e->nsteps ? l->first_step : 0];
            char rate[32], kind[32], name[64];
            if (flops > 0)
                snprintf(rate, sizeof rate, "%.1f GFLOP/s", flops / tk / 1e9);
            else
                snprintf(rate, sizeof rate, "%.2f GB/s", bytes / tk / 1e9);
            const rt_compiled_step *end =
                &e->steps[l->first_step + l->steps - 1 < e->nsteps ? l->first_step + l->steps - 1
                          : l->first_step < e->nsteps              ? l->first_step
                                                                   : 0];
            snprintf(name, sizeof name, "%s%s%s", st->name, l->merged ? ".." : "", l->merged ? end->name : "");
            if (l->merged) /* small steps run in one block (codegen/cuda/render.c, mark_merges) */
                snprintf(kind, sizeof kind, "merged:%d", l->steps);
            else /* one step, or a matmul and its epilogue */
                snprintf(kind, sizeof kind, "%s%s", st->kind, l->steps > 1 ? "+loop" : "");
            printf("%3d  %-13s %-11s %9.1f %6.1f%% %14s  %.60s%s\n", k, name, kind, tk * 1e6,
                   total > 0 ? 100 * tk / total : 0, rate, st->what, strlen(st->what) > 60 ? "..." : "");
        }
        printf("(the kernels one by one: %.1f us a step; the replayed graph's step: %.1f us)\n", total * 1e6, t * 1e6);
    }
    free(d.x), free(d.y), free(perm), free(seconds);
    return ok;
}

int rt_bin_bench(const rt_compiled *m, const opts *o)
{
    char err[2048];
    bin b;
    int rc = 1;
    /* the train step; a forward computation's forward pass on random inputs */
    const rt_compiled_entry *e = m->trains ? &m->train : &m->forward;
    int64_t N = o->has_batch ? o->batch : m->batch;
    void *x = NULL, *y = NULL, *in[8] = {0};
    if (!rt_bin_open(&b, m, o->threads, N, err, sizeof err) || !rt_bin_init_params(&b, 1, err, sizeof err) ||
        !rt_bin_choose_device(&b, o, err, sizeof err) ||
        (!m->trains && !rt_bin_random_inputs(e, N, 1, in, err, sizeof err)))
        goto out;
    x = rt_bin_aligned((size_t)(N * m->features * rt_elem_size(e->x_dtype)));
    y = rt_bin_aligned((size_t)(N * m->targets * 4));
    b.profile = rt_profile_new(e->nsteps);
    if (!x || !y || !b.profile) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    char *arena = m->trains ? b.train_arena : b.fwd_arena;
    /* random inputs: pixels or N(0,1)-ish features, labels in range */
    uint64_t r = 0x9e3779b97f4a7c15u;
    for (int64_t i = 0; i < N * m->features; i++) {
        r = r * 6364136223846793005u + 1442695040888963407u;
        rt_elem_set(x, e->x_dtype, i, e->x_dtype == AG_U8 ? (double)(r >> 56) : (double)(r >> 40) / (1 << 24) * 2 - 1);
    }
    for (int64_t i = 0; i < N * m->targets; i++) {
        r = r * 6364136223846793005u + 1442695040888963407u;
        rt_elem_set(y, e->y_dtype, i,
                    m->classes ? (double)((r >> 33) % (uint64_t)m->classes) : (double)(r >> 40) / (1 << 24));
    }
    if (b.gpu) {
        rc = bench_gpu(&b, x, y, o, err, sizeof err) ? 0 : 1;
        goto out;
    }
    /* ceilings: memcpy from memory (64 MiB) and within L2 (a quarter of it a side), sgemm */
    size_t l2 = l2_bytes();
    double bw = memcpy_rate((size_t)64 << 20), l2bw = memcpy_rate(l2 / 4), flops = sgemm_rate();
    b.data_x = e->x_dtype;
    rt_batch rb = {.n = N, .x = x, .y = y, .lr = 1e-6, .wd = 0, .seed = 1};
    b.scalar[AG_ROLE_LR] = 1e-6f; /* a tiny step: the parameters stay where they are over many steps */
    double t0 = 0;
    for (int64_t k = 0; k < 5 + o->steps; k++, rb.step++) { /* 5 to warm up, then the timed ones */
        if (k == 5)
            t0 = now();
        void *profile = k < 5 ? NULL : b.profile;
        if (m->trains)
            rt_bin_run_entry(&b, e, arena, &rb, profile);
        else
            rt_bin_call(&b, e, arena, in, N, rb.step, profile);
    }
    double per = (now() - t0) / (double)o->steps;
    printf("%s bench: %s at batch %lld, %d thread%s, %lld steps: %.3f ms/step, %.0f samples/s\n", m->name,
           m->trains ? "train step" : "forward pass", (long long)N, rt_pool_threads(b.pool),
           rt_pool_threads(b.pool) > 1 ? "s" : "", (long long)o->steps, per * 1e3, (double)N / per);
    printf("machine: memcpy %.1f GB/s (bytes read + written, 64 MiB), %.1f GB/s within L2 (%zu KiB), sgemm %.1f "
           "GFLOP/s (1024^3, OpenBLAS's %s kernels)\n",
           bw / 1e9, l2bw / 1e9, l2 >> 10, flops / 1e9, openblas_get_corename());
    double total = 0;
    for (int k = 0; k < e->nsteps; k++)
        total += b.profile->seconds[k];
    printf("%3s  %-7s %-11s %9s %7s %10s %10s %14s %14s  %s\n", "#", "kernel", "kind", "us/step", "share", "MB",
           "MFLOP", "rate", "of ceiling", "computes");
    for (int k = 0; k < e->nsteps; k++) {
        const rt_compiled_step *st = &e->steps[k];
        double t = b.profile->seconds[k] / (double)o->steps;
        char rate[32], frac[32];
        double sf = step_flops(st, N), sb = step_bytes(st, N); /* bytes read + written; a matmul's flops */
        if (sf > 0) {
            snprintf(rate, sizeof rate, "%.1f GFLOP/s", sf / t / 1e9);
            snprintf(frac, sizeof frac, "%.1f%% sgemm", 100 * sf / t / flops);
        } else if (sb <= 0) { /* no bytes to rate (a distributed build's bucket sums: bench runs one process) */
            snprintf(rate, sizeof rate, "-");
            snprintf(frac, sizeof frac, "-");
        } else { /* data that fit in L2 stay there between steps: against the copy within L2 */
            bool cached = sb <= (double)l2;
            snprintf(rate, sizeof rate, "%.2f GB/s", sb / t / 1e9);
            snprintf(frac, sizeof frac, "%.1f%% %s", 100 * sb / t / (cached ? l2bw : bw),
                     cached ? "L2 copy" : "memcpy");
        }
        printf("%3d  %-7s %-11s %9.1f %6.1f%% %10.3f %10.1f %14s %14s  %.60s%s\n", k, st->name, st->kind, t * 1e6,
               total > 0 ? 100 * b.profile->seconds[k] / total : 0, sb / 1e6, sf / 1e6, rate, frac, st->what,
               strlen(st->what) > 60 ? "..." : "");
    }
    printf("(the step's time outside its kernels: %.1f us, %.1f%%)\n", (per - total / (double)o->steps) * 1e6,
           100 * (per - total / (double)o->steps) / per);
    rc = 0;
out:
    if (rc)
        rt_bin_fail(m, err);
    free(x);
    free(y);
    for (int k = 0; k < 8; k++)
        free(in[k]);
    rt_bin_close(&b);
    return rc;
}
