/* The runtime's threads: one pool of workers, created once, that generated kernels and the
 * runtime split their loops over.
 *
 * A loop over [0, n) is cut into chunks of `grain` iterations; threads claim chunks from an
 * atomic counter, the calling thread included. Which thread runs a chunk changes from run to
 * run, but the chunks themselves depend only on (n, grain), so a kernel that writes each
 * chunk's result to its own place (an output slice, or partial[c] for a reduction combined
 * afterwards in chunk order) gives the same bits for every thread count.
 *
 *     float partial[rt_chunks(n, G)];           // G fixed by the kernel, not by the pool
 *     rt_parallel_for(pool, n, G, sum_chunk, &(ctx){x, partial, G});   // partial[begin / G]
 *     float s = 0; for (c = 0; c < rt_chunks(n, G); c++) s += partial[c];
 *
 * Workers sleep on a condition variable between jobs, after a short spin (a few
 * microseconds) that lets back-to-back kernels skip the wake-up.
 *
 * One job at a time per pool: a call made while the pool is busy (from inside a kernel, or
 * from a second thread) does not wait or deadlock; it runs its whole range in its own
 * thread, same chunks, same results.
 *
 * OpenBLAS shares the cores: sgemm is called from the thread that drives the pool, between
 * rt_parallel_for calls, so the two never compute at once (but for a convolution's small
 * products, which stay on OpenBLAS's single-threaded path and run on the pool's threads,
 * runtime/conv.c), and rt_pool_bind_blas gives
 * OpenBLAS the pool's thread count, so either set of threads fills the cores (but see the
 * caveat at rt_pool_bind_blas). */
#ifndef RT_POOL_H
#define RT_POOL_H

#include <stdint.h>

typedef struct rt_pool rt_pool;

/* threads >= 1 threads in all, the caller included: 1 starts no workers and runs everything
 * inline; threads < 1 means rt_cpu_count(). NULL when out of memory. If the system refuses
 * some threads the pool works with fewer (rt_pool_threads says how many). */
rt_pool *rt_pool_new(int threads);
void rt_pool_free(rt_pool *p); /* NULL is fine */
int rt_pool_threads(const rt_pool *p);

/* The cores this process may run on (sched_getaffinity), at least 1. */
int rt_cpu_count(void);

/* Runs fn(ctx, begin, end) over [0, n) in chunks [c*grain, min((c+1)*grain, n)), c in
 * [0, rt_chunks(n, grain)); returns when every chunk is done, with their writes visible.
 * grain < 1 counts as 1; n <= 0 calls nothing. A single chunk, or a pool of 1, runs inline. */
typedef void rt_range_fn(void *ctx, int64_t begin, int64_t end);
void rt_parallel_for(rt_pool *p, int64_t n, int64_t grain, rt_range_fn *fn, void *ctx);

/* The number of chunks rt_parallel_for makes of (n, grain): ceil(n / grain), 0 for n <= 0. */
int64_t rt_chunks(int64_t n, int64_t grain);

/* Sets OpenBLAS's thread count to the pool's (openblas_set_num_threads, looked up as a weak
 * symbol: without OpenBLAS linked in this does nothing). Caveat, measured on 16 cores and on
 * this 2-core machine: the pthreads OpenBLAS keeps its idle threads yielding in a loop for
 * about 2^28 cycles after each call (OPENBLAS_THREAD_TIMEOUT, read only at load), and they
 * slow the pool's loops that follow an sgemm 3-5x (the MLP's bias + ReLU: 13 us on one
 * thread, 61 us on two). Splitting the sgemm over the pool by rows instead, with OpenBLAS
 * on one thread, was tried: the loops ran fast, but the matmuls lost more (each thread packs
 * B again); the MLP's epoch was 10-30% slower, so OpenBLAS keeps its threads. */
void rt_pool_bind_blas(const rt_pool *p);

#endif
