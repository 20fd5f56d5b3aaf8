/* The thread pool (pool.h): pthreads, one atomic chunk counter, workers that spin a few
 * microseconds and then sleep on a condition variable.
 *
 * A job is published as one atomic word, generation << 16 | helpers, after its fields are
 * written; worker i takes part when i < helpers, claims chunks until none are left, and
 * counts itself out of `pending`. The caller claims chunks too, then waits for pending to
 * reach 0: every worker's writes are then visible to it (the decrements are release RMWs, its
 * load an acquire), and nobody reads the job's fields again, so the next job may rewrite them.
 *
 * Sleeping without lost wake-ups: a worker about to sleep raises `sleepers` and then rereads
 * the job word, both under the mutex; the caller stores the job word and then reads
 * `sleepers` (all sequentially consistent), so either the worker sees the new job or the
 * caller sees the sleeper and broadcasts under the mutex. The caller's wait for `pending`
 * mirrors this with `caller_waiting`. */
#define _GNU_SOURCE
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* How long a waiting thread spins before it sleeps. Waking a sleeping worker costs tens of
 * microseconds; a spin this short catches back-to-back kernels and takes little from
 * OpenBLAS's threads when an sgemm follows. -DRT_POOL_SPIN_NS=0 to measure without it. */
#ifndef RT_POOL_SPIN_NS
#define RT_POOL_SPIN_NS 20000
#endif

#define MAX_THREADS 1024 /* the helpers count must fit the job word's 16 bits */

struct worker {
    struct rt_pool *pool;
    int id;
    pthread_t tid;
};

struct rt_pool {
    int threads; /* the caller included */
    int nworkers;
    struct worker *workers;

    pthread_mutex_t mu;
    pthread_cond_t wake;  /* a new job (or quit) for the workers */
    pthread_cond_t done;  /* pending reached 0, for the caller */
    _Atomic uint64_t job; /* generation << 16 | helpers */
    _Atomic int pending;  /* helpers not finished with the current job */
    _Atomic int sleepers; /* workers blocked on `wake` */
    _Atomic int caller_waiting;
    _Atomic int busy; /* a job is running: other calls run inline */
    _Atomic int quit;

    /* the current job, written before `job` is published */
    rt_range_fn *fn;
    void *ctx;
    int64_t n, grain, nchunks;
    _Atomic int64_t next; /* the next unclaimed chunk */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spins up to RT_POOL_SPIN_NS while *word != 0; returns the last value read. */
static int spin_until_zero(_Atomic int *word)
{
    int v = atomic_load_explicit(word, memory_order_acquire);
    if (v == 0 || RT_POOL_SPIN_NS <= 0)
        return v;
    int64_t deadline = now_ns() + RT_POOL_SPIN_NS;
    for (unsigned i = 1;; i++) {
        cpu_relax();
        if ((v = atomic_load_explicit(word, memory_order_acquire)) == 0)
            return v;
        if (i % 32 == 0 && now_ns() > deadline)
            return v;
    }
}

int64_t rt_chunks(int64_t n, int64_t grain)
{
    if (n <= 0)
        return 0;
    if (grain < 1)
        grain = 1;
    return n / grain + (n % grain != 0);
}

static void run_chunk(rt_range_fn *fn, void *ctx, int64_t n, int64_t grain, int64_t c)
{
    int64_t begin = c * grain;
    fn(ctx, begin, grain < n - begin ? begin + grain : n);
}

/* Claims and runs chunks of the current job until none are left. */
static void work(struct rt_pool *p)
{
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (c >= p->nchunks)
            return;
        run_chunk(p->fn, p->ctx, p->n, p->grain, c);
    }
}

/* Waits for a job word whose generation is not `seen`. */
static uint64_t wait_job(struct rt_pool *p, uint64_t seen)
{
    uint64_t j = atomic_load_explicit(&p->job, memory_order_acquire);
    if (j >> 16 != seen)
        return j;
    if (RT_POOL_SPIN_NS > 0) {
        int64_t deadline = now_ns() + RT_POOL_SPIN_NS;
        for (unsigned i = 1;; i++) {
            cpu_relax();
            if ((j = atomic_load_explicit(&p->job, memory_order_acquire)) >> 16 != seen)
                return j;
            if (i % 32 == 0 && now_ns() > deadline)
                break;
        }
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    while ((j = atomic_load(&p->job)) >> 16 == seen)
        pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return j;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct rt_pool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t j = wait_job(p, seen);
        if (atomic_load(&p->quit))
            return NULL;
        seen = j >> 16;
        if (w->id >= (int)(j & 0xffff))
            continue;
        work(p);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_waiting)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* Publishes the next generation with `helpers` taking part, waking sleepers if any. */
static void publish(struct rt_pool *p, int helpers)
{
    uint64_t gen = (atomic_load_explicit(&p->job, memory_order_relaxed) >> 16) + 1;
    atomic_store(&p->job, gen << 16 | (uint64_t)helpers);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

int rt_cpu_count(void)
{
    for (int ncpu = 1024; ncpu <= 1 << 16; ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (!set)
            break;
        size_t size = CPU_ALLOC_SIZE(ncpu);
        if (sched_getaffinity(0, size, set) == 0) {
            int count = CPU_COUNT_S(size, set);
            CPU_FREE(set);
            return count > 0 ? count : 1;
        }
        CPU_FREE(set);
        if (errno != EINVAL) /* EINVAL: the kernel's mask is larger than ours */
            break;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)(online < MAX_THREADS ? online : MAX_THREADS) : 1;
}

rt_pool *rt_pool_new(int threads)
{
    if (threads < 1)
        threads = rt_cpu_count();
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    struct rt_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->workers = calloc((size_t)threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < threads - 1; i++) {
        struct worker *w = &p->workers[i];
        w->pool = p, w->id = i;
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0)
            break; /* work with the threads we got */
        p->nworkers++;
    }
    p->threads = p->nworkers + 1;
    return p;
}

void rt_pool_free(rt_pool *p)
{
    if (!p)
        return;
    atomic_store(&p->quit, 1);
    publish(p, 0);
    for (int i = 0; i < p->nworkers; i++)
        pthread_join(p->workers[i].tid, NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int rt_pool_threads(const rt_pool *p) { return p ? p->threads : 1; }

void rt_parallel_for(rt_pool *p, int64_t n, int64_t grain, rt_range_fn *fn, void *ctx)
{
    if (grain < 1)
        grain = 1;
    int64_t nchunks = rt_chunks(n, grain);
    if (nchunks == 0)
        return;
    /* inline: no pool, one thread, one chunk, or the pool already busy with another job */
    if (!p || p->nworkers == 0 || nchunks == 1 || atomic_exchange_explicit(&p->busy, 1, memory_order_acquire)) {
        for (int64_t c = 0; c < nchunks; c++)
            run_chunk(fn, ctx, n, grain, c);
        return;
    }
    int helpers = nchunks - 1 < p->nworkers ? (int)(nchunks - 1) : p->nworkers;
    p->fn = fn, p->ctx = ctx, p->n = n, p->grain = grain, p->nchunks = nchunks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, helpers, memory_order_relaxed);
    publish(p, helpers);

    work(p);

    if (spin_until_zero(&p->pending) != 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_waiting, 1);
        while (atomic_load(&p->pending) != 0)
            pthread_cond_wait(&p->done, &p->mu);
        atomic_store(&p->caller_waiting, 0);
        pthread_mutex_unlock(&p->mu);
    }
    atomic_store_explicit(&p->busy, 0, memory_order_release);
}

/* Weak: resolves to OpenBLAS's when it is linked in, to NULL otherwise. */
extern void openblas_set_num_threads(int) __attribute__((weak));

void rt_pool_bind_blas(const rt_pool *p)
{
    if (openblas_set_num_threads)
        openblas_set_num_threads(rt_pool_threads(p));
}
