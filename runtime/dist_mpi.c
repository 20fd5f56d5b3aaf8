/* rt_dist on MPI (Open MPI): libaotgrad_mpi.a, linked only into binaries built with
 * `aotgrad build --distributed mpi`. A bucket is summed with MPI_Iallreduce in place, started
 * as soon as the backward pass has computed it; waiting tests the request (which also lets
 * MPI progress the others) until it is done or the timeout passes, when the job is ended
 * with an error naming the rank that gave up and what it waited for: a rank that died or
 * hangs ends the job instead of hanging it. */
#define _GNU_SOURCE
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "fail.h"

typedef struct mpi_dist {
    rt_dist base;
    double timeout;
    int nreq;
    MPI_Request *req; /* per bucket: its sum in flight, or MPI_REQUEST_NULL */
    int64_t *count;   /* per bucket: its floats (for probe) */
} mpi_dist;

static void end_job(mpi_dist *m, const char *what)
{
    fprintf(stderr,
            "rank %d of %d: error: %s did not finish within %g s (--timeout): another rank died or hangs; ending the "
            "job\n",
            m->base.rank, m->base.size, what, m->timeout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1); /* MPI_Abort does not return */
}

/* until r is done, or the timeout */
static void finish(mpi_dist *m, MPI_Request *r, const char *what)
{
    double t0 = MPI_Wtime();
    for (long tries = 0;; tries++) {
        int done = 0;
        MPI_Test(r, &done, MPI_STATUS_IGNORE);
        if (done)
            return;
        if (tries > 64) /* oversubscribed ranks share cores: let the others run */
            sched_yield();
        if ((tries & 1023) == 0 && MPI_Wtime() - t0 > m->timeout)
            end_job(m, what);
    }
}

static rt_dist *mpi_open(int *argc, char ***argv, double timeout, const char *id_file, char *err, size_t len)
{
    (void)id_file; /* MPI carries NCCL's id */
    int up = 0;
    MPI_Initialized(&up);
    int given; /* the kernels' threads never call MPI: the calling thread alone does */
    if (!up && MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &given) != MPI_SUCCESS) {
        rt_fail(err, len, "MPI_Init_thread failed");
        return NULL;
    }
    mpi_dist *m = calloc(1, sizeof *m);
    if (!m) {
        rt_fail(err, len, "out of memory");
        return NULL;
    }
    extern const rt_dist_ops rt_dist_mpi;
    m->base.ops = &rt_dist_mpi;
    MPI_Comm_rank(MPI_COMM_WORLD, &m->base.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m->base.size);
    MPI_Comm here; /* the ranks sharing this machine, whatever launched them (mpirun, srun) */
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &here);
    MPI_Comm_size(here, &m->base.local);
    MPI_Comm_rank(here, &m->base.local_rank);
    MPI_Comm_free(&here);
    m->timeout = m->base.timeout = timeout;
    return &m->base;
}

static void mpi_close(rt_dist *d)
{
    mpi_dist *m = (mpi_dist *)d;
    if (!m)
        return;
    for (int k = 0; k < m->nreq; k++)
        if (m->req[k] != MPI_REQUEST_NULL)
            finish(m, &m->req[k], "a gradient bucket's sum");
    free(m->req);
    free(m->count);
    free(m);
    MPI_Finalize();
}

static void mpi_start(rt_dist *d, int32_t bucket, float *data, int64_t count)
{
    mpi_dist *m = (mpi_dist *)d;
    if (count > INT_MAX) { /* MPI counts are ints: --bucket-mib caps a bucket, not one gradient */
        fprintf(stderr, "rank %d: error: gradient bucket %d holds %lld floats, more than MPI's 2^31 - 1\n", d->rank,
                (int)bucket, (long long)count);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (bucket >= m->nreq) {
        int n = bucket + 16;
        MPI_Request *r = realloc(m->req, sizeof *r * (size_t)n);
        int64_t *c = r ? realloc(m->count, sizeof *c * (size_t)n) : NULL;
        if (!r || !c) {
            fprintf(stderr, "rank %d: error: out of memory\n", d->rank);
            MPI_Abort(MPI_COMM_WORLD, 1);
            return;
        }
        for (int k = m->nreq; k < n; k++)
            r[k] = MPI_REQUEST_NULL, c[k] = 0;
        m->req = r, m->count = c, m->nreq = n;
    }
    MPI_Iallreduce(MPI_IN_PLACE, data, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &m->req[bucket]);
    m->count[bucket] = count;
    for (int k = 0; k < m->nreq; k++) { /* a nudge to the sums in flight: Open MPI progresses them in calls */
        int done;
        if (m->req[k] != MPI_REQUEST_NULL)
            MPI_Test(&m->req[k], &done, MPI_STATUS_IGNORE);
    }
}

static void mpi_wait(rt_dist *d, int32_t bucket)
{
    mpi_dist *m = (mpi_dist *)d;
    if (bucket >= m->nreq || m->req[bucket] == MPI_REQUEST_NULL)
        return; /* done already */
    double t0 = MPI_Wtime();
    char what[64];
    snprintf(what, sizeof what, "gradient bucket %d's sum", (int)bucket);
    finish(m, &m->req[bucket], what);
    d->wait_seconds += MPI_Wtime() - t0;
}

static void mpi_sum(rt_dist *d, double *v, int n)
{
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &r);
    finish((mpi_dist *)d, &r, "the epoch's sums");
}

static void mpi_sum_floats(rt_dist *d, float *v, int64_t n)
{
    for (int64_t at = 0; at < n; at += INT_MAX) { /* MPI counts are ints */
        MPI_Request r;
        MPI_Iallreduce(MPI_IN_PLACE, v + at, (int)(n - at < INT_MAX ? n - at : INT_MAX), MPI_FLOAT, MPI_SUM,
                       MPI_COMM_WORLD, &r);
        finish((mpi_dist *)d, &r, "the gradient accumulators' sum");
    }
}

static void mpi_bcast(rt_dist *d, void *p, size_t n)
{
    MPI_Request r;
    MPI_Ibcast(p, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD, &r);
    finish((mpi_dist *)d, &r, "rank 0's broadcast");
}

static bool mpi_same(rt_dist *d, uint64_t v, int *differs)
{
    unsigned long long *all = malloc(sizeof *all * (size_t)d->size), mine = v;
    if (!all) {
        fprintf(stderr, "rank %d: error: out of memory\n", d->rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
        return false;
    }
    MPI_Request r;
    MPI_Iallgather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD, &r);
    finish((mpi_dist *)d, &r, "the ranks' comparison");
    *differs = -1;
    for (int k = 1; k < d->size && *differs < 0; k++)
        if (all[k] != all[0])
            *differs = k;
    free(all);
    return *differs < 0;
}

static void mpi_abort(rt_dist *d, int status)
{
    (void)d;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double mpi_probe(rt_dist *d)
{
    mpi_dist *m = (mpi_dist *)d;
    int64_t most = 0;
    for (int k = 0; k < m->nreq; k++)
        most = m->count[k] > most ? m->count[k] : most;
    float *buf = calloc((size_t)(most ? most : 1), sizeof *buf);
    if (!buf) {
        fprintf(stderr, "rank %d: error: out of memory\n", d->rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
        return 0;
    }
    enum { REPS = 9 };
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
        MPI_Request q;
        MPI_Ibarrier(MPI_COMM_WORLD, &q);
        finish(m, &q, "the ranks' barrier");
        double t0 = MPI_Wtime();
        for (int k = 0; k < m->nreq; k++) /* each bucket, waited on as it starts */
            if (m->count[k]) {
                MPI_Request q;
                MPI_Iallreduce(MPI_IN_PLACE, buf, (int)m->count[k], MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &q);
                finish(m, &q, "a bucket's sum, timed");
            }
        t[r] = MPI_Wtime() - t0;
    }
    free(buf);
    qsort(t, REPS, sizeof *t, by_value);
    MPI_Request q;
    MPI_Ibcast(&t[REPS / 2], 1, MPI_DOUBLE, 0, MPI_COMM_WORLD, &q);
    finish(m, &q, "rank 0's timing");
    return t[REPS / 2];
}

const rt_dist_ops rt_dist_mpi = {"mpi",          mpi_open,  mpi_close, mpi_start, mpi_wait, mpi_sum,
                                 mpi_sum_floats, mpi_bcast, mpi_same,  mpi_abort, mpi_probe};
