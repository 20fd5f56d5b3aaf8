/* The thread pool: every index once, chunk bounds independent of the thread count, reductions
 * bit-identical across thread counts, nested and concurrent calls, create/free churn, and the
 * cost of an empty dispatch (logged, not asserted: this machine is shared with other tests). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

Test(threads, cpu_count)
{
    int n = rt_cpu_count();
    cr_assert_geq(n, 1);
    rt_pool *p = rt_pool_new(0); /* < 1: one per core */
    cr_assert_eq(rt_pool_threads(p), n);
    rt_pool_free(p);
    rt_pool_free(NULL);
}

Test(threads, chunks)
{
    cr_assert_eq(rt_chunks(0, 64), 0);
    cr_assert_eq(rt_chunks(-5, 64), 0);
    cr_assert_eq(rt_chunks(1, 64), 1);
    cr_assert_eq(rt_chunks(64, 64), 1);
    cr_assert_eq(rt_chunks(65, 64), 2);
    cr_assert_eq(rt_chunks(7, 0), 7); /* grain < 1 counts as 1 */
    cr_assert_eq(rt_chunks(INT64_MAX, 1), INT64_MAX);
    cr_assert_eq(rt_chunks(INT64_MAX, INT64_MAX), 1);
}

/* visit: counts each index, checks each chunk's bounds against (n, grain) alone */
struct visit {
    _Atomic unsigned char *seen;
    int64_t n, grain;
    _Atomic int64_t calls, bad_bounds;
};

static void visit_fn(void *ctx, int64_t begin, int64_t end)
{
    struct visit *v = ctx;
    int64_t want_end = begin + v->grain < v->n ? begin + v->grain : v->n;
    if (begin < 0 || begin % v->grain != 0 || end != want_end)
        atomic_fetch_add(&v->bad_bounds, 1);
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add_explicit(&v->seen[i], 1, memory_order_relaxed);
    atomic_fetch_add(&v->calls, 1);
}

Test(threads, every_index_once)
{
    static const int64_t ns[] = {0, 1, 7, 1000, 1 << 20};
    static const int64_t grains[] = {1, 64, 4096};
    static const int threads[] = {1, 2, 4};
    _Atomic unsigned char *seen = malloc(1 << 20);
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        rt_pool *p = rt_pool_new(threads[t]);
        cr_assert_eq(rt_pool_threads(p), threads[t]);
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof grains / sizeof *grains; b++) {
                int64_t n = ns[a], grain = grains[b];
                for (int64_t i = 0; i < n; i++)
                    atomic_init(&seen[i], 0);
                struct visit v = {seen, n, grain, 0, 0};
                rt_parallel_for(p, n, grain, visit_fn, &v);
                cr_assert_eq(v.calls, rt_chunks(n, grain), "threads %d n %lld grain %lld", threads[t], (long long)n,
                             (long long)grain);
                cr_assert_eq(v.bad_bounds, 0, "threads %d n %lld grain %lld", threads[t], (long long)n,
                             (long long)grain);
                for (int64_t i = 0; i < n; i++)
                    cr_assert_eq(seen[i], 1, "threads %d n %lld grain %lld: index %lld seen %d", threads[t],
                                 (long long)n, (long long)grain, (long long)i, (int)seen[i]);
            }
        rt_pool_free(p);
    }
    free(seen);
}

/* A chunked float sum: chunk c sums into partial[c], the caller adds partials in order. */
struct sum {
    const float *x;
    float *partial;
    int64_t grain;
};

static void sum_fn(void *ctx, int64_t begin, int64_t end)
{
    struct sum *s = ctx;
    float acc = 0;
    for (int64_t i = begin; i < end; i++)
        acc += s->x[i];
    s->partial[begin / s->grain] = acc;
}

static float chunked_sum(rt_pool *p, const float *x, int64_t n, int64_t grain)
{
    int64_t nc = rt_chunks(n, grain);
    float *partial = malloc((size_t)nc * sizeof *partial);
    rt_parallel_for(p, n, grain, sum_fn, &(struct sum){x, partial, grain});
    float total = 0;
    for (int64_t c = 0; c < nc; c++)
        total += partial[c];
    free(partial);
    return total;
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* values over many magnitudes, so that float addition order shows in the last bits */
static float *sum_input(int64_t n)
{
    float *x = malloc((size_t)n * sizeof *x);
    uint64_t s = 0x9E3779B97F4A7C15u;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float u = (float)(s >> 40) / (float)(1 << 24); /* [0, 1) */
        x[i] = (u - 0.3f) * (float)(1 << (s >> 60));   /* scaled by 2^0..2^15 */
    }
    return x;
}

Test(threads, reduction_is_bit_identical_across_thread_counts)
{
    const int64_t n = 1 << 20, grain = 4096;
    float *x = sum_input(n);
    float sums[5];
    for (int t = 1; t <= 4; t++) {
        rt_pool *p = rt_pool_new(t);
        for (int rep = 0; rep < 5; rep++) { /* chunks land on different threads each time */
            float s = chunked_sum(p, x, n, grain);
            if (rep == 0)
                sums[t] = s;
            cr_assert_eq(bits(s), bits(sums[t]), "threads %d rep %d: %.9g vs %.9g", t, rep, (double)s, (double)sums[t]);
        }
        rt_pool_free(p);
        cr_assert_eq(bits(sums[t]), bits(sums[1]), "threads %d: %.9g, threads 1: %.9g", t, (double)sums[t],
                     (double)sums[1]);
    }

    /* The check above can fail: a kernel that sizes its chunks by the thread count (n / T,
     * the usual static split) adds in a T-dependent order and gets other bits here. */
    int differ = 0;
    rt_pool *p = rt_pool_new(4);
    for (int t = 2; t <= 4; t++) {
        float naive = chunked_sum(p, x, n, rt_chunks(n, t));
        cr_log_info("threads: chunked sum %.9g; split by %d threads %.9g", (double)sums[1], t, (double)naive);
        differ += bits(naive) != bits(sums[1]);
    }
    rt_pool_free(p);
    cr_assert_gt(differ, 0, "the input does not expose a change of summation order");
    free(x);
}

/* A call made while the pool is busy (inside a kernel, or from another thread) runs inline. */
struct nested {
    rt_pool *pool;
    _Atomic unsigned char *seen;
};

static void inner_fn(void *ctx, int64_t begin, int64_t end)
{
    struct nested *v = ctx;
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add_explicit(&v->seen[i], 1, memory_order_relaxed);
}

static void outer_fn(void *ctx, int64_t begin, int64_t end)
{
    struct nested *v = ctx;
    for (int64_t r = begin; r < end; r++) { /* row r: 100 entries */
        struct nested row = {v->pool, v->seen + r * 100};
        rt_parallel_for(v->pool, 100, 7, inner_fn, &row);
    }
}

Test(threads, nested_call_runs_inline)
{
    rt_pool *p = rt_pool_new(3);
    _Atomic unsigned char *seen = calloc(64 * 100, 1);
    struct nested v = {p, seen};
    rt_parallel_for(p, 64, 1, outer_fn, &v);
    for (int i = 0; i < 64 * 100; i++)
        cr_assert_eq(seen[i], 1, "index %d seen %d", i, (int)seen[i]);
    rt_pool_free(p);
    free(seen);
}

struct caller {
    rt_pool *pool;
    _Atomic unsigned char *seen;
    int64_t n;
};

static void *caller_main(void *arg)
{
    struct caller *c = arg;
    for (int rep = 0; rep < 200; rep++) {
        struct nested v = {c->pool, c->seen};
        rt_parallel_for(c->pool, c->n, 16, inner_fn, &v);
    }
    return NULL;
}

Test(threads, concurrent_callers)
{
    rt_pool *p = rt_pool_new(4);
    enum { N = 1000, CALLERS = 3 };
    _Atomic unsigned char *seen = calloc(CALLERS * N, 1);
    pthread_t tid[CALLERS];
    struct caller c[CALLERS];
    for (int k = 0; k < CALLERS; k++) {
        c[k] = (struct caller){p, seen + k * N, N};
        pthread_create(&tid[k], NULL, caller_main, &c[k]);
    }
    for (int k = 0; k < CALLERS; k++)
        pthread_join(tid[k], NULL);
    for (int i = 0; i < CALLERS * N; i++)
        cr_assert_eq(seen[i], 200, "index %d seen %d", i, (int)seen[i]);
    rt_pool_free(p);
    free(seen);
}

static void nop_fn(void *ctx, int64_t begin, int64_t end) { (void)ctx, (void)begin, (void)end; }

Test(threads, create_free_churn)
{
    _Atomic unsigned char *seen = malloc(1000);
    for (int rep = 0; rep < 300; rep++) {
        rt_pool *p = rt_pool_new(1 + rep % 4);
        cr_assert_not_null(p);
        if (rep % 3 == 0) /* freed before its workers ever ran a job */
            goto done;
        for (int i = 0; i < 1000; i++)
            atomic_init(&seen[i], 0);
        struct nested v = {p, seen};
        rt_parallel_for(p, 1000, 1 + rep % 50, inner_fn, &v);
        for (int i = 0; i < 1000; i++)
            cr_assert_eq(seen[i], 1);
        if (rep % 3 == 2) { /* let the workers fall asleep before the free */
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
    done:
        rt_pool_free(p);
    }
    free(seen);
}

/* OpenBLAS is linked into this test: the weak symbol resolves and the count takes. */
int openblas_get_num_threads(void);

Test(threads, bind_blas)
{
    rt_pool *p = rt_pool_new(3);
    rt_pool_bind_blas(p);
    cr_assert_eq(openblas_get_num_threads(), 3);
    rt_pool_free(p);
}

Test(threads, dispatch_overhead)
{
    rt_pool *p = rt_pool_new(2);
    enum { WARM = 2000, REPS = 50000, SLEEPY = 200 };
    for (int i = 0; i < WARM; i++)
        rt_parallel_for(p, 2, 1, nop_fn, NULL);
    double t0 = now_s();
    for (int i = 0; i < REPS; i++)
        rt_parallel_for(p, 2, 1, nop_fn, NULL); /* two chunks: the worker takes part */
    double hot = (now_s() - t0) / REPS;

    /* after a pause the worker sleeps: the cost of waking it */
    double cold = 0;
    for (int i = 0; i < SLEEPY; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
        double t = now_s();
        rt_parallel_for(p, 2, 1, nop_fn, NULL);
        cold += now_s() - t;
    }
    cold /= SLEEPY;
    cr_log_info("threads: empty rt_parallel_for, 2 threads: %.2f us back to back, %.2f us "
                "waking a sleeping worker",
                hot * 1e6, cold * 1e6);
    rt_pool_free(p);
}
