/* rt_dist on NCCL alone, for launchers without MPI (`aotgrad build --distributed nccl`): a
 * rank learns its place from the launcher's variables (Open MPI's mpirun, MPICH's, SLURM's
 * srun, torchrun's), rank 0 writes NCCL's id into a file the others read (--nccl-id FILE, or
 * $AOTGRAD_NCCL_ID; one rank needs none), and the host's few sums (the start-up hash, the
 * epoch's figures, the GPU's own communicator's id) go through NCCL on a small buffer of the
 * rank's GPU. The CPU's train step has no sums here (start and wait are NULL: the binary
 * refuses --device cpu on ranks). Everything it calls is loaded with dlopen, so it lives in
 * the runtime library and a binary built with it links nothing more. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cuda_driver.h"
#include "dist.h"
#include "fail.h"
#include "nccl.h"
#include "temp.h"

typedef struct nccl_dist {
    rt_dist base;
    char id_file[4096]; /* rank 0's, removed at close; "" none */
    CUdevice dev;
    CUcontext ctx;
    CUstream stream;
    CUevent done;
    ncclComm_t comm;
    CUdeviceptr buf; /* the host's sums on their way through the GPU */
    size_t cap;
} nccl_dist;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* a whole number from the first of the variables set, else fallback */
static int env_int(const char *const *names, int fallback)
{
    for (; *names; names++) {
        const char *v = getenv(*names);
        if (v && *v)
            return atoi(v);
    }
    return fallback;
}

/* a failure after the job started: the others wait on this rank's sums, and give up after
 * their --timeout; NCCL is aborted so that none of its work outlives the process */
static void end_job(nccl_dist *n, const char *what, const char *why)
{
    fprintf(stderr, "rank %d of %d: error: %s: %s; ending the job\n", n->base.rank, n->base.size, what, why);
    fflush(stderr);
    if (n->id_file[0])
        unlink(n->id_file);
    if (n->comm)
        rt_nccl.ncclCommAbort(n->comm);
    exit(1);
}

/* until the stream is done, polling: --timeout, and NCCL's own errors */
static void finish(nccl_dist *n, const char *what)
{
    char why[512];
    if (!rt_cu_check(rt_cu.cuEventRecord(n->done, n->stream), "cuEventRecord", NULL, why, sizeof why) ||
        !rt_nccl_wait(n->done, n->comm, n->base.timeout, why, sizeof why))
        end_job(n, what, why);
}

/* the device buffer at least bytes long */
static void reserve(nccl_dist *n, size_t bytes)
{
    char why[512];
    if (bytes <= n->cap)
        return;
    if (n->buf)
        rt_cu.cuMemFree(n->buf), n->buf = 0, n->cap = 0;
    if (!rt_cu_check(rt_cu.cuMemAlloc(&n->buf, bytes), "cuMemAlloc", "the ranks' sums", why, sizeof why))
        end_job(n, "the ranks' sums", why);
    n->cap = bytes;
}

/* v's bytes to the device, op there in place, the result back: count values (GATHER_U64:
 * count from each rank, v holding the ranks' in order, this rank's at its place) */
typedef enum { SUM_F64, SUM_F32, BROADCAST, GATHER_U64 } collective;

static void through_gpu(nccl_dist *n, collective op, void *v, size_t count, const char *what)
{
    size_t esize = op == SUM_F32     ? 4
                   : op == BROADCAST ? 1
                                     : 8,
           bytes = count * esize * (op == GATHER_U64 ? (size_t)n->base.size : 1);
    reserve(n, bytes);
    char why[512];
    ncclResult_t r;
    bool ok =
        rt_cu_check(rt_cu.cuMemcpyHtoDAsync(n->buf, v, bytes, n->stream), "cuMemcpyHtoDAsync", what, why, sizeof why);
    void *p = (void *)(uintptr_t)n->buf, *mine = (char *)p + (size_t)n->base.rank * count * esize;
    if (ok) {
        r = op == BROADCAST    ? rt_nccl.ncclBroadcast(p, p, count, 0 /* ncclInt8 */, 0, n->comm, n->stream)
            : op == GATHER_U64 ? rt_nccl.ncclAllGather(mine, p, count, NCCL_UINT64, n->comm, n->stream)
                               : rt_nccl.ncclAllReduce(p, p, count, op == SUM_F32 ? NCCL_FLOAT32 : NCCL_FLOAT64,
                                                       NCCL_SUM, n->comm, n->stream);
        ok = rt_nccl_check(r, what, why, sizeof why);
    }
    if (!ok)
        end_job(n, what, why);
    finish(n, what);
    if (!rt_cu_check(rt_cu.cuMemcpyDtoH(v, n->buf, bytes), "cuMemcpyDtoH", what, why, sizeof why))
        end_job(n, what, why);
}

/* rank 0's id into path, whole or not at all (a temporary file renamed); the others wait for
 * it. false with the reason. */
static bool meet(nccl_dist *n, const char *path, ncclUniqueId *id, char *err, size_t len)
{
    if (n->base.rank == 0) {
        if (access(path, F_OK) == 0)
            return rt_fail(err, len, "--nccl-id %s exists (a run's before? remove it, or give another path)", path);
        char *tmp = rt_temp_name(path); /* the atomic writes' temporaries (temp.h) */
        FILE *f = tmp ? fopen(tmp, "wb") : NULL;
        bool ok = f && fwrite(id, sizeof *id, 1, f) == 1;
        ok = (f && fclose(f) == 0) && ok && rename(tmp, path) == 0;
        int e = errno ? errno : EIO;
        if (!ok && tmp)
            unlink(tmp);
        rt_temp_done(tmp);
        if (!ok)
            return rt_fail(err, len, "--nccl-id %s: cannot write it: %s", path, strerror(e));
        snprintf(n->id_file, sizeof n->id_file, "%s", path);
        return true;
    }
    for (double t0 = now();;) { /* rank 0 renames it there whole */
        FILE *f = fopen(path, "rb");
        if (f) {
            bool ok = fread(id, sizeof *id, 1, f) == 1;
            fclose(f);
            return ok || rt_fail(err, len, "--nccl-id %s: shorter than NCCL's id", path);
        }
        if (now() - t0 > n->base.timeout)
            return rt_fail(err, len, "--nccl-id %s: rank 0 did not write it within %g s (--timeout)", path,
                           n->base.timeout);
        struct timespec ms = {0, 20000000};
        nanosleep(&ms, NULL);
    }
}

static void nccl_close(rt_dist *d);

static rt_dist *nccl_open(int *argc, char ***argv, double timeout, const char *id_file, char *err, size_t len)
{
    (void)argc, (void)argv;
    nccl_dist *n = calloc(1, sizeof *n);
    if (!n) {
        rt_fail(err, len, "out of memory");
        return NULL;
    }
    extern const rt_dist_ops rt_dist_nccl;
    /* torchrun's workers first: under srun, SLURM's variables are those of the node's task */
    bool torchrun = getenv("TORCHELASTIC_RUN_ID") != NULL;
    static const char *const rank[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID", "RANK", NULL};
    static const char *const size[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS", "WORLD_SIZE", NULL};
    static const char *const local_rank[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID",
                                             "LOCAL_RANK", NULL};
    static const char *const local[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "LOCAL_WORLD_SIZE", NULL};
    static const char *const t_rank[] = {"RANK", NULL}, *const t_size[] = {"WORLD_SIZE", NULL},
                             *const t_local_rank[] = {"LOCAL_RANK", NULL},
                             *const t_local[] = {"LOCAL_WORLD_SIZE", NULL};
    n->base = (rt_dist){.ops = &rt_dist_nccl,
                        .rank = env_int(torchrun ? t_rank : rank, 0),
                        .size = env_int(torchrun ? t_size : size, 1),
                        .local_rank = env_int(torchrun ? t_local_rank : local_rank, 0),
                        .local = env_int(torchrun ? t_local : local, 1),
                        .timeout = timeout};
    rt_dist *d = &n->base;
    const char *path = id_file && *id_file ? id_file : getenv("AOTGRAD_NCCL_ID");
    char why[1024] = "";
    int count = 0;
    ncclUniqueId id = {{0}};
    bool ok = (d->size >= 1 && d->rank >= 0 && d->rank < d->size && d->local >= 1) ||
              rt_fail(why, sizeof why, "the launcher's variables say rank %d of %d", d->rank, d->size);
    ok = ok && (d->size == 1 || (path && *path) ||
                rt_fail(why, sizeof why,
                        "ranks without MPI meet through a file: give --nccl-id FILE (or AOTGRAD_NCCL_ID), a path "
                        "every rank sees, or build with --distributed mpi,nccl"));
    ok = ok && rt_cu_load(why, sizeof why) && rt_nccl_load(why, sizeof why) &&
         rt_cu_check(rt_cu.cuInit(0), "cuInit", NULL, why, sizeof why) &&
         rt_cu_check(rt_cu.cuDeviceGetCount(&count), "cuDeviceGetCount", NULL, why, sizeof why) &&
         (count > 0 || rt_fail(why, sizeof why, "no CUDA GPU: --distributed nccl trains on GPUs, one a rank")) &&
         (d->local_rank < count ||
          rt_fail(why, sizeof why, "GPU %d of a machine with %d: a rank on each GPU, more ranks than GPUs here",
                  d->local_rank, count)) &&
         rt_cu_check(rt_cu.cuDeviceGet(&n->dev, d->local_rank), "cuDeviceGet", NULL, why, sizeof why) &&
         rt_cu_check(rt_cu.cuDevicePrimaryCtxRetain(&n->ctx, n->dev), "cuDevicePrimaryCtxRetain", NULL, why,
                     sizeof why) &&
         rt_cu_check(rt_cu.cuCtxSetCurrent(n->ctx), "cuCtxSetCurrent", NULL, why, sizeof why) &&
         rt_cu_check(rt_cu.cuStreamCreate(&n->stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate", NULL, why,
                     sizeof why) &&
         rt_cu_check(rt_cu.cuEventCreate(&n->done, CU_EVENT_DISABLE_TIMING), "cuEventCreate", NULL, why, sizeof why);
    ok = ok && (d->rank > 0 || rt_nccl_check(rt_nccl.ncclGetUniqueId(&id), "ncclGetUniqueId", why, sizeof why)) &&
         (d->size == 1 || meet(n, path, &id, why, sizeof why)) &&
         rt_nccl_check(rt_nccl.ncclCommInitRank(&n->comm, d->size, id, d->rank), "ncclCommInitRank", why, sizeof why);
    if (!ok) {
        rt_fail(err, len, "rank %d of %d: %s", d->rank, d->size, why);
        nccl_close(d);
        return NULL;
    }
    if (n->id_file[0]) /* every rank has read it: NCCL's start-up waited for them all */
        unlink(n->id_file), n->id_file[0] = 0;
    return d;
}

static void nccl_close(rt_dist *d)
{
    nccl_dist *n = (nccl_dist *)d;
    if (!n)
        return;
    if (n->comm)
        rt_nccl.ncclCommDestroy(n->comm);
    if (n->buf)
        rt_cu.cuMemFree(n->buf);
    if (n->done)
        rt_cu.cuEventDestroy(n->done);
    if (n->stream)
        rt_cu.cuStreamDestroy(n->stream);
    if (n->ctx)
        rt_cu.cuDevicePrimaryCtxRelease(n->dev);
    if (n->id_file[0]) /* a start that failed */
        unlink(n->id_file);
    free(n);
}

static void nccl_sum(rt_dist *d, double *v, int count)
{
    through_gpu((nccl_dist *)d, SUM_F64, v, (size_t)count, "the epoch's sums");
}

static void nccl_sum_floats(rt_dist *d, float *v, int64_t count)
{
    through_gpu((nccl_dist *)d, SUM_F32, v, (size_t)count, "the accumulators' sum");
}

static void nccl_bcast(rt_dist *d, void *p, size_t bytes)
{
    through_gpu((nccl_dist *)d, BROADCAST, p, bytes, "rank 0's broadcast");
}

static bool nccl_same(rt_dist *d, uint64_t v, int *differs)
{
    uint64_t *all = calloc((size_t)d->size, sizeof *all);
    if (!all)
        end_job((nccl_dist *)d, "the ranks' comparison", "out of memory");
    all[d->rank] = v;
    through_gpu((nccl_dist *)d, GATHER_U64, all, 1, "the ranks' comparison");
    *differs = -1;
    for (int k = 1; k < d->size && *differs < 0; k++)
        if (all[k] != all[0])
            *differs = k;
    free(all);
    return *differs < 0;
}

static void nccl_abort(rt_dist *d, int status)
{
    nccl_dist *n = (nccl_dist *)d;
    fflush(stdout);
    fflush(stderr);
    if (n->comm)
        rt_nccl.ncclCommAbort(n->comm);
    exit(status); /* the others end at their --timeout: no launcher here ends them */
}

static double nccl_probe(rt_dist *d)
{
    (void)d;
    return 0; /* the GPU's sums are not timed alone */
}

const rt_dist_ops rt_dist_nccl = {"nccl",          nccl_open,  nccl_close, NULL,       NULL,      nccl_sum,
                                  nccl_sum_floats, nccl_bcast, nccl_same,  nccl_abort, nccl_probe};
