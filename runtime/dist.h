/* Data-parallel training's communication, behind one table of functions: a binary built
 * without --distributed has none (one process, and no MPI linked); `aotgrad build
 * --distributed mpi` (or mpi,nccl) links libaotgrad_mpi.a, whose rt_dist_mpi
 * (runtime/dist_mpi.c) is the table on MPI; `--distributed nccl` links no MPI, and its table
 * is rt_dist_nccl (runtime/dist_nccl.c: ranks from the launcher's variables, meeting through
 * a file, their sums NCCL's on the GPU). Generated code reaches it through ag_args.dist
 * (rt_allreduce, rt_ops.h); the training loop through rt_fit.dist, for its sums of the
 * epoch's figures. */
#ifndef AG_RUNTIME_DIST_H
#define AG_RUNTIME_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_dist rt_dist;

typedef struct rt_dist_ops {
    const char *name; /* "mpi" */
    /* joins the job (MPI_Init): NULL with a message. timeout: the seconds a sum may take
     * before the job is ended (a rank died or hangs); id_file: where ranks without MPI meet
     * (rt_dist_nccl; NULL: $AOTGRAD_NCCL_ID) */
    rt_dist *(*open)(int *argc, char ***argv, double timeout, const char *id_file, char *err, size_t len);
    void (*close)(rt_dist *d);
    /* a bucket's sum in place over the ranks, non-blocking; then waiting for it (the CPU's
     * train step; NULL where the table has none: rt_dist_nccl's sums are the GPU's) */
    void (*start)(rt_dist *d, int32_t bucket, float *data, int64_t count);
    void (*wait)(rt_dist *d, int32_t bucket);
    /* v[0..n) summed over the ranks in place, in the same order on every rank (blocking) */
    void (*sum)(rt_dist *d, double *v, int n);
    /* the same for floats (the split step's accumulators) */
    void (*sum_floats)(rt_dist *d, float *v, int64_t n);
    /* rank 0's n bytes at p into every rank's p (NCCL's id) */
    void (*bcast)(rt_dist *d, void *p, size_t n);
    /* whether every rank has the same value; else the first rank whose differs from rank 0's */
    bool (*same)(rt_dist *d, uint64_t v, int *differs);
    /* ends every rank of the job with this exit status (after an error printed) */
    void (*abort)(rt_dist *d, int status);
    /* the seconds one step's bucket sums take when waited on as each starts (no overlap),
     * measured now on every rank (a collective): the median of a few, rank 0's */
    double (*probe)(rt_dist *d);
} rt_dist_ops;

/* What every implementation's context starts with. */
struct rt_dist {
    const rt_dist_ops *ops;
    int rank, size;
    int local;           /* the ranks on this rank's machine (sharing its memory), this one included */
    int local_rank;      /* this rank's place among them, from 0 (its GPU's, one a rank) */
    double timeout;      /* the seconds a sum may take before the job is ended (--timeout) */
    double wait_seconds; /* spent in wait, where the overlap did not hide the sums */
};

/* FNV-1a over n bytes, from h (RT_HASH_START): what ranks compare (the binary and options at
 * start-up, the parameters with --check-ranks) */
#define RT_HASH_START 1469598103934665603ull
static inline uint64_t rt_hash_bytes(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
    return h;
}

/* A rank's share of a global batch of n rows: rows [*first, *first + *rows), as even as it
 * can be (the first n % size ranks take one more). */
static inline void rt_dist_share(int64_t n, int rank, int size, int64_t *first, int64_t *rows)
{
    int64_t q = n / size, r = n % size;
    *rows = q + (rank < r);
    *first = rank * q + (rank < r ? rank : r);
}

#endif
