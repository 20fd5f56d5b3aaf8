/* The CUDA driver API behind rt_cuda (see cuda.h), through the driver's table
 * (cuda_driver.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "cuda.h"
#include "cuda_driver.h"
#include "dist.h"
#include "fail.h"
#include "nccl.h"

/* every driver call's result, named (cuda_driver.h) */
static bool ck(CUresult r, const char *what, const char *kernel, char *err, size_t len)
{
    return rt_cu_check(r, what, kernel, err, len);
}

/* ---- the device's mirrors of the generated source's structs (codegen/cuda/render.c) ---- */

typedef ag_dev_args_host dev_args; /* runtime/args.h: the kernels' ag_dev_args */
_Static_assert(sizeof(CUdeviceptr) == sizeof(uint64_t), "device pointers are held as 64-bit integers");

typedef struct dev_state {
    unsigned long long step;
    long long first, bad_step, steps;
    double loss_sum;
    double metric_sum[8];
} dev_state;

typedef struct step_outs {
    CUdeviceptr loss;
    CUdeviceptr metric[8];
    int metric_i32[8];
    int nmetrics;
    long long rows, advance; /* counted in the sums (0: an idle rank); the global batch's */
} step_outs;

/* with ranks, the host runs at most this many steps ahead of the GPU ($AOTGRAD_GPU_PACE
 * overrides): a dead rank's sums are noticed within --timeout of the steps before, and a full
 * launch queue never blocks the host */
enum { PACE = 32 };

struct rt_cuda {
    const rt_compiled *m;
    int64_t rows; /* the most rows a call takes: the arenas are sized for them */
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUstream stream;
    CUevent polled;
    char name[256];
    CUfunction *train, *forward, gather, step_end, copy, step_lr;
    CUdeviceptr params, train_arena, fwd_arena, x, y, lr, wd, state;
    CUdeviceptr scratch;               /* the split-K matmuls' (zeroed once: the kernels leave the counters 0) */
    CUdeviceptr data_x, data_y, order; /* the training set and an epoch's order */
    int64_t data_n, x_row, y_row;      /* samples, bytes per sample */
    dev_state *host_state;             /* pinned: read while the device runs */
    int *host_order;                   /* pinned */
    CUdeviceptr lr_table;              /* --lr-schedule: each step's lr of an epoch, uploaded once an epoch */
    float *host_lr;                    /* pinned; both data_n long, made at the first scheduled epoch */
    CUgraphExec graph;
    int64_t graph_batch; /* the batch the graph was captured for, 0: none */
    bool graph_lr;       /* whether it reads the step's lr from lr_table first */
    /* data-parallel training (rt_cuda_join): the buckets summed by NCCL over the job's ranks */
    rt_dist *dist;
    ncclComm_t comm;
    CUstream comm_stream;    /* the sums' own stream, ordered against the kernels' with events */
    int nbuckets;            /* of the train plan */
    CUevent *ready, *summed; /* per bucket: its gradients computed; its sum done */
    CUevent paced;           /* with ranks, every `pace` steps: the host waits for the mark before */
    int64_t pace;
    CUdeviceptr share; /* rank_share: [0] at a full batch, [1] at the epoch's last */
    float host_share[2];
};

const char *rt_cuda_device_name(const rt_cuda *c) { return c->name; }
int rt_cuda_ranks(const rt_cuda *c) { return c->comm ? c->dist->size : 0; }

static int64_t elem_size(ag_dtype t) { return t == AG_F32 || t == AG_I32 ? 4 : t == AG_F64 ? 8 : 1; }

static bool dalloc(CUdeviceptr *p, size_t bytes, const char *what, char *err, size_t len)
{
    return ck(rt_cu.cuMemAlloc(p, bytes ? bytes : 256), "cuMemAlloc", what, err, len);
}

/* Host memory to the device, in order on the stream the kernels run on, waited for. A plain
 * cuMemcpyHtoD from pageable memory may return before its DMA lands, and the kernels'
 * non-blocking stream does not wait for the default stream it uses. */
static bool upload(rt_cuda *c, CUdeviceptr dst, const void *src, size_t bytes, const char *what, char *err, size_t len)
{
    return ck(rt_cu.cuMemcpyHtoDAsync(dst, src, bytes, c->stream), "cuMemcpyHtoDAsync", what, err, len) &&
           ck(rt_cu.cuStreamSynchronize(c->stream), "cuStreamSynchronize", what, err, len);
}

bool rt_cuda_open(const rt_compiled *m, int64_t rows, int device, rt_cuda **out, char *err, size_t len)
{
    *out = NULL;
    int64_t train_bytes = rt_arena_bytes(m->train.arena, m->train.narena, rows),
            fwd_bytes = rt_arena_bytes(m->forward.arena, m->forward.narena, rows);
    if (train_bytes < 0 || fwd_bytes < 0)
        return rt_fail(err, len, "a batch of %lld rows needs more than 2^62 bytes", (long long)rows);
    if (!m->cuda)
        return rt_fail(err, len, "%s was built for the CPU only (aotgrad build --target cpu,cuda adds the GPU)",
                       m->name);
    if (!rt_cu_load(err, len))
        return false;
    int count = 0;
    CUresult r = rt_cu.cuInit(0);
    if (r == 0)
        r = rt_cu.cuDeviceGetCount(&count);
    if (r != 0 || count == 0)
        return r != 0 ? ck(r, "cuInit", NULL, err, len) : rt_fail(err, len, "no CUDA GPU");
    rt_cuda *c = calloc(1, sizeof *c);
    if (!c)
        return rt_fail(err, len, "out of memory");
    c->m = m;
    c->rows = rows;
    c->train = calloc((size_t)m->cuda->ntrain + 1, sizeof *c->train);
    c->forward = calloc((size_t)m->cuda->nforward + 1, sizeof *c->forward);
    bool ok = c->train && c->forward;
    ok = ok && (device < count ||
                rt_fail(err, len, "GPU %d of a machine with %d: a rank on each GPU, more ranks than GPUs here", device,
                        count));
    ok = ok && ck(rt_cu.cuDeviceGet(&c->dev, device > 0 ? device : 0), "cuDeviceGet", NULL, err, len) &&
         ck(rt_cu.cuDeviceGetName(c->name, sizeof c->name - 1, c->dev), "cuDeviceGetName", NULL, err, len) &&
         ck(rt_cu.cuDevicePrimaryCtxRetain(&c->ctx, c->dev), "cuDevicePrimaryCtxRetain", NULL, err, len) &&
         ck(rt_cu.cuCtxSetCurrent(c->ctx), "cuCtxSetCurrent", NULL, err, len);
    const char *image_path = getenv("AOTGRAD_CUDA_IMAGE");
    if (ok && image_path && *image_path) { /* the user's build of the binary's own --emit cu source */
        char why[1024];
        size_t bytes;
        char *image = rt_read_file(image_path, &bytes, why, sizeof why); /* NUL-terminated: PTX is text */
        ok = image ? ck(rt_cu.cuModuleLoadDataEx(&c->mod, image, 0, NULL, NULL), "cuModuleLoadDataEx", image_path, err,
                        len)
                   : rt_fail(err, len, "AOTGRAD_CUDA_IMAGE=%s", why);
        free(image);
    } else if (ok) { /* the cubin where it is for this GPU, else the PTX */
        r = rt_cu.cuModuleLoadDataEx(&c->mod, m->cuda->cubin, 0, NULL, NULL);
        if (r != 0)
            r = rt_cu.cuModuleLoadDataEx(&c->mod, m->cuda->ptx, 0, NULL, NULL);
        ok = ck(r, "cuModuleLoadDataEx", m->cuda->arch, err, len);
    }
    for (int k = 0; ok && k < m->cuda->ntrain; k++)
        ok = m->cuda->train[k].collective || ck(rt_cu.cuModuleGetFunction(&c->train[k], c->mod, m->cuda->train[k].name),
                                                "cuModuleGetFunction", m->cuda->train[k].name, err, len);
    for (int k = 0; ok && k < m->cuda->nforward; k++)
        ok = ck(rt_cu.cuModuleGetFunction(&c->forward[k], c->mod, m->cuda->forward[k].name), "cuModuleGetFunction",
                m->cuda->forward[k].name, err, len);
    ok = ok &&
         ck(rt_cu.cuModuleGetFunction(&c->gather, c->mod, "ag_gather"), "cuModuleGetFunction", "ag_gather", err, len) &&
         ck(rt_cu.cuModuleGetFunction(&c->copy, c->mod, "ag_copy"), "cuModuleGetFunction", "ag_copy", err, len) &&
         ck(rt_cu.cuModuleGetFunction(&c->step_end, c->mod, "ag_step_end"), "cuModuleGetFunction", "ag_step_end", err,
            len) &&
         ck(rt_cu.cuModuleGetFunction(&c->step_lr, c->mod, "ag_step_lr"), "cuModuleGetFunction", "ag_step_lr", err,
            len) &&
         ck(rt_cu.cuStreamCreate(&c->stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate", NULL, err, len) &&
         ck(rt_cu.cuEventCreate(&c->polled, CU_EVENT_DISABLE_TIMING), "cuEventCreate", NULL, err, len);
    c->x_row = m->features * elem_size(m->train.x_dtype);
    c->y_row = m->targets * elem_size(m->train.y_dtype);
    ok = ok && dalloc(&c->params, (size_t)m->param_bytes, "parameters", err, len) &&
         dalloc(&c->train_arena, (size_t)train_bytes, "train arena", err, len) &&
         dalloc(&c->fwd_arena, (size_t)fwd_bytes, "forward arena", err, len) &&
         dalloc(&c->x, rt_array_bytes(rows, c->x_row, 1), "batch features", err, len) &&
         dalloc(&c->y, rt_array_bytes(rows, c->y_row, 1), "batch targets", err, len) &&
         dalloc(&c->lr, 4, "lr", err, len) && dalloc(&c->wd, 4, "wd", err, len) &&
         dalloc(&c->share, 8, "rank share", err, len) && dalloc(&c->state, sizeof(dev_state), "step state", err, len) &&
         ck(rt_cu.cuMemAllocHost((void **)&c->host_state, sizeof(dev_state)), "cuMemAllocHost", NULL, err, len) &&
         dalloc(&c->scratch, m->cuda->scratch_bytes, "scratch", err, len);
    c->host_share[0] = c->host_share[1] = 1; /* one process's, until an epoch sets a rank's */
    ok = ok && upload(c, c->share, c->host_share, sizeof c->host_share, "rank share", err, len);
    if (ok && m->cuda->scratch_bytes > 0) {
        void *zeros = calloc(1, m->cuda->scratch_bytes);
        ok = zeros ? upload(c, c->scratch, zeros, m->cuda->scratch_bytes, "scratch", err, len)
                   : rt_fail(err, len, "out of memory");
        free(zeros);
    }
    if (!ok) {
        rt_cuda_close(c);
        return false;
    }
    *out = c;
    return true;
}

void rt_cuda_close(rt_cuda *c)
{
    if (!c)
        return;
    if (c->ctx) {
        if (c->comm) /* an error may have left sums in flight: abort them first, rather than wait */
            rt_nccl.ncclCommAbort(c->comm);
        if (c->graph)
            rt_cu.cuGraphExecDestroy(c->graph);
        if (c->paced)
            rt_cu.cuEventDestroy(c->paced);
        for (int k = 0; k < c->nbuckets; k++) {
            if (c->ready && c->ready[k])
                rt_cu.cuEventDestroy(c->ready[k]);
            if (c->summed && c->summed[k])
                rt_cu.cuEventDestroy(c->summed[k]);
        }
        if (c->comm_stream)
            rt_cu.cuStreamDestroy(c->comm_stream);
        CUdeviceptr bufs[] = {c->params, c->train_arena, c->fwd_arena, c->x,     c->y,       c->lr,       c->wd,
                              c->state,  c->data_x,      c->data_y,    c->order, c->scratch, c->lr_table, c->share};
        for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++)
            if (bufs[k])
                rt_cu.cuMemFree(bufs[k]);
        if (c->host_state)
            rt_cu.cuMemFreeHost(c->host_state);
        if (c->host_order)
            rt_cu.cuMemFreeHost(c->host_order);
        if (c->host_lr)
            rt_cu.cuMemFreeHost(c->host_lr);
        if (c->polled)
            rt_cu.cuEventDestroy(c->polled);
        if (c->stream)
            rt_cu.cuStreamDestroy(c->stream);
        if (c->mod)
            rt_cu.cuModuleUnload(c->mod);
        rt_cu.cuDevicePrimaryCtxRelease(c->dev);
    }
    free(c->ready);
    free(c->summed);
    free(c->train);
    free(c->forward);
    free(c);
}

bool rt_cuda_put_params(rt_cuda *c, const void *params, char *err, size_t len)
{
    return upload(c, c->params, params, (size_t)c->m->param_bytes, "parameters", err, len);
}

bool rt_cuda_get_params(rt_cuda *c, void *params, char *err, size_t len)
{
    return ck(rt_cu.cuStreamSynchronize(c->stream), "cuStreamSynchronize", NULL, err, len) &&
           ck(rt_cu.cuMemcpyDtoH(params, c->params, (size_t)c->m->param_bytes), "cuMemcpyDtoH", "parameters", err, len);
}

bool rt_cuda_put_dataset(rt_cuda *c, const rt_dataset *d, char *err, size_t len)
{
    if (d->x_dtype != c->m->train.x_dtype || d->y_dtype != c->m->train.y_dtype)
        return rt_fail(err, len, "the dataset's dtypes are not the model's inputs'");
    if (c->data_x)
        rt_cu.cuMemFree(c->data_x), c->data_x = 0;
    if (c->data_y)
        rt_cu.cuMemFree(c->data_y), c->data_y = 0;
    if (c->order)
        rt_cu.cuMemFree(c->order), c->order = 0;
    if (c->host_order)
        rt_cu.cuMemFreeHost(c->host_order), c->host_order = NULL;
    if (c->lr_table)
        rt_cu.cuMemFree(c->lr_table), c->lr_table = 0;
    if (c->host_lr)
        rt_cu.cuMemFreeHost(c->host_lr), c->host_lr = NULL;
    c->data_n = d->n;
    return dalloc(&c->data_x, (size_t)(d->n * c->x_row), "training features", err, len) &&
           dalloc(&c->data_y, (size_t)(d->n * c->y_row), "training targets", err, len) &&
           dalloc(&c->order, (size_t)d->n * sizeof(int), "epoch order", err, len) &&
           ck(rt_cu.cuMemAllocHost((void **)&c->host_order, (size_t)(d->n ? d->n : 1) * sizeof(int)), "cuMemAllocHost",
              "epoch order", err, len) &&
           upload(c, c->data_x, d->x, (size_t)(d->n * c->x_row), "training features", err, len) &&
           upload(c, c->data_y, d->y, (size_t)(d->n * c->y_row), "training targets", err, len);
}

static int64_t blocks(const rt_cuda_launch *l, int64_t N)
{
    double n = (double)N, u = l->units[0] + l->units[1] * n + l->units[2] * n * n;
    double b = ceil(u / (l->per_block > 0 ? l->per_block : 1));
    return b < 1 ? 1 : b > 65535 * 16.0 ? 65535 * 16 : (int64_t)b;
}

static bool launch(rt_cuda *c, CUfunction f, const char *name, int64_t grid, void **params, char *err, size_t len)
{
    return ck(rt_cu.cuLaunchKernel(f, (unsigned)grid, 1, 1, 256, 1, 1, 0, c->stream, params, NULL), "cuLaunchKernel",
              name, err, len);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A bucket's sum over the ranks: started on the sums' stream once the kernels' stream has
 * computed its gradients (an event), or the kernels' stream made to wait for it (another).
 * In a captured graph these are its fork and join; one process has nothing to sum. */
static bool collective(rt_cuda *c, const rt_cuda_launch *l, const dev_args *a, char *err, size_t len)
{
    if (!c->comm)
        return true;
    if (l->bucket < 0 || l->bucket >= c->nbuckets)
        return rt_fail(err, len, "%s: no such bucket (the plan has %d)", l->name, c->nbuckets);
    CUevent ready = c->ready[l->bucket], summed = c->summed[l->bucket];
    if (l->collective == 2)
        return ck(rt_cu.cuStreamWaitEvent(c->stream, summed, 0), "cuStreamWaitEvent", l->name, err, len);
    void *p = (void *)(uintptr_t)(a->arena + (uint64_t)(l->offset[0] + l->offset[1] * a->N));
    size_t count = (size_t)(l->count[0] + l->count[1] * a->N);
    return ck(rt_cu.cuEventRecord(ready, c->stream), "cuEventRecord", l->name, err, len) &&
           ck(rt_cu.cuStreamWaitEvent(c->comm_stream, ready, 0), "cuStreamWaitEvent", l->name, err, len) &&
           rt_nccl_check(rt_nccl.ncclAllReduce(p, p, count, NCCL_FLOAT32, NCCL_SUM, c->comm, c->comm_stream),
                         "ncclAllReduce", err, len) &&
           ck(rt_cu.cuEventRecord(summed, c->comm_stream), "cuEventRecord", l->name, err, len);
}

/* one entry point's kernels (and a distributed train step's sums) in order */
static bool run_entry(rt_cuda *c, bool training, const dev_args *a, char *err, size_t len)
{
    const rt_cuda_image *im = c->m->cuda;
    int n = training ? im->ntrain : im->nforward;
    const rt_cuda_launch *plan = training ? im->train : im->forward;
    CUfunction *fn = training ? c->train : c->forward;
    void *params[] = {(void *)a};
    for (int k = 0; k < n; k++)
        if (!(plan[k].collective ? collective(c, &plan[k], a, err, len)
                                 : launch(c, fn[k], plan[k].name, blocks(&plan[k], a->N), params, err, len)))
            return false;
    return true;
}

bool rt_cuda_join(rt_cuda *c, rt_dist *d, char *err, size_t len)
{
    char why[512] = "";
    if (!d || (d->size < 2 && !rt_nccl_load(why, sizeof why)))
        return true; /* one process: its sums are its own (with NCCL, the path of many ranks) */
    const rt_cuda_image *im = c->m->cuda;
    for (int k = 0; k < im->ntrain; k++)
        if (im->train[k].collective && im->train[k].bucket >= c->nbuckets)
            c->nbuckets = im->train[k].bucket + 1;
    if (c->nbuckets == 0)
        return rt_fail(err, len, "%s's GPU kernels sum no gradients over ranks (built without --distributed nccl)",
                       c->m->name);
    ncclUniqueId id = {{0}};
    bool ok = rt_nccl_load(why, sizeof why) &&
              (d->rank > 0 || rt_nccl_check(rt_nccl.ncclGetUniqueId(&id), "ncclGetUniqueId", why, sizeof why));
    if (!ok) /* the others wait for rank 0's id, or for this rank in NCCL: they end with the job */
        return rt_fail(err, len, "rank %d of %d: %s", d->rank, d->size, why);
    d->ops->bcast(d, &id, sizeof id);
    c->ready = calloc((size_t)c->nbuckets, sizeof *c->ready);
    c->summed = calloc((size_t)c->nbuckets, sizeof *c->summed);
    ok = (c->ready && c->summed) || rt_fail(why, sizeof why, "out of memory");
    for (int k = 0; ok && k < c->nbuckets; k++)
        ok = ck(rt_cu.cuEventCreate(&c->ready[k], CU_EVENT_DISABLE_TIMING), "cuEventCreate", NULL, why, sizeof why) &&
             ck(rt_cu.cuEventCreate(&c->summed[k], CU_EVENT_DISABLE_TIMING), "cuEventCreate", NULL, why, sizeof why);
    ok = ok && ck(rt_cu.cuEventCreate(&c->paced, CU_EVENT_DISABLE_TIMING), "cuEventCreate", NULL, why, sizeof why) &&
         ck(rt_cu.cuStreamCreate(&c->comm_stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate", NULL, why, sizeof why) &&
         rt_nccl_check(rt_nccl.ncclCommInitRank(&c->comm, d->size, id, d->rank), "ncclCommInitRank", why, sizeof why);
    c->dist = ok ? d : NULL;
    const char *pace = getenv("AOTGRAD_GPU_PACE");
    c->pace = pace && atoi(pace) > 0 ? atoi(pace) : PACE;
    /* NCCL sets up its connections at a communicator's first sums: those of the largest
     * bucket, here, rather than inside the captured step (where PyTorch warns against it) */
    int64_t most = 0;
    for (int k = 0; k < im->ntrain; k++)
        if (im->train[k].collective && im->train[k].count[0] + im->train[k].count[1] * c->rows > most)
            most = im->train[k].count[0] + im->train[k].count[1] * c->rows;
    CUdeviceptr warm = 0;
    ok = ok && dalloc(&warm, (size_t)most * 4, "NCCL's first sums", why, sizeof why) &&
         rt_nccl_check(rt_nccl.ncclAllReduce((void *)(uintptr_t)warm, (void *)(uintptr_t)warm, (size_t)most,
                                             NCCL_FLOAT32, NCCL_SUM, c->comm, c->comm_stream),
                       "ncclAllReduce", why, sizeof why) &&
         ck(rt_cu.cuEventRecord(c->paced, c->comm_stream), "cuEventRecord", NULL, why, sizeof why) &&
         rt_nccl_wait(c->paced, c->comm, d->timeout, why, sizeof why);
    if (warm)
        rt_cu.cuMemFree(warm);
    return ok || rt_fail(err, len, "rank %d of %d: %s", d->rank, d->size, why);
}

/* Until event e has happened. With ranks, a sum may wait on a rank that died or hangs: the
 * wait polls, and gives up after the job's --timeout, or when NCCL reports an error, with a
 * message naming this rank. */
static bool finish_event(rt_cuda *c, CUevent e, const char *what, char *err, size_t len)
{
    char why[512];
    return rt_nccl_wait(e, c->comm, c->dist->timeout, why, sizeof why) ||
           rt_fail(err, len, "rank %d of %d: %s %s", c->dist->rank, c->dist->size, what, why);
}

/* Until the stream has run everything queued so far (finish_event with ranks). */
static bool finish(rt_cuda *c, const char *what, char *err, size_t len)
{
    if (!c->comm || c->dist->size < 2)
        return ck(rt_cu.cuStreamSynchronize(c->stream), "cuStreamSynchronize", what, err, len);
    return ck(rt_cu.cuEventRecord(c->polled, c->stream), "cuEventRecord", what, err, len) &&
           finish_event(c, c->polled, what, err, len);
}

static dev_args entry_args(rt_cuda *c, const rt_compiled_entry *e, CUdeviceptr arena, int64_t rows, uint32_t seed,
                           uint64_t step, bool device_step)
{
    dev_args a = {.arena = arena, .params = c->params, .N = rows, .seed = seed, .step = step, .scratch = c->scratch};
    for (int k = 0; k < e->ninputs && k < 8; k++)
        a.inputs[k] = e->inputs[k] == AG_ROLE_DATA     ? c->x
                      : e->inputs[k] == AG_ROLE_LABELS ? c->y
                      : e->inputs[k] == AG_ROLE_LR     ? c->lr
                      : e->inputs[k] == AG_ROLE_SHARE  ? c->share
                                                       : c->wd;
    if (device_step)
        a.pstep = c->state; /* ag_dev_state's first field is the step */
    return a;
}

static CUdeviceptr value_at(rt_cuda *c, CUdeviceptr arena, const rt_compiled_value *v, int64_t rows)
{
    return (v->in_params ? c->params : arena) + (CUdeviceptr)rt_value_offset(v, rows);
}

/* A rank's part of a global batch of `global` rows (all of it on one process): the rows it
 * runs, the first of them in the global batch, the rows its figures count (0: an idle rank,
 * which runs one row weighted 0), and which of c->share holds its rank_share. */
typedef struct part {
    int64_t rows, row0, counted, global;
    int share;
} part;

static part part_of(const rt_cuda *c, int64_t global, int share)
{
    part p = {global, 0, global, global, share};
    if (c->dist) {
        rt_dist_share(global, c->dist->rank, c->dist->size, &p.row0, &p.rows);
        p.counted = p.rows;
        if (p.rows == 0)
            p.rows = 1, p.row0 = 0;
    }
    return p;
}

/* a train step on the device: gather the batch, the step's kernels, the bookkeeping */
static bool device_step(rt_cuda *c, part b, uint32_t seed, bool scheduled, char *err, size_t len)
{
    int64_t rows = b.rows;
    const rt_compiled *m = c->m;
    if (scheduled) { /* the step's lr: lr_table[steps of the epoch so far] */
        void *p[] = {&c->lr_table, &c->state, &c->lr};
        if (!launch(c, c->step_lr, "ag_step_lr", 1, p, err, len))
            return false;
    }
    CUdeviceptr src[2] = {c->data_x, c->data_y}, dst[2] = {c->x, c->y};
    long long row[2] = {(long long)c->x_row, (long long)c->y_row}, nrows = rows, row0 = b.row0;
    for (int k = 0; k < 2; k++) {
        void *p[] = {&src[k], &dst[k], &c->order, &c->state, &nrows, &row[k], &row0};
        int64_t g = (rows * row[k] + 255) / 256;
        if (!launch(c, c->gather, "ag_gather", g < 1 ? 1 : g > 4096 ? 4096 : g, p, err, len))
            return false;
    }
    dev_args a = entry_args(c, &m->train, c->train_arena, rows, seed, 0, true);
    a.row0 = b.row0;
    for (int k = 0; k < m->train.ninputs && k < 8; k++)
        if (m->train.inputs[k] == AG_ROLE_SHARE)
            a.inputs[k] = c->share + (CUdeviceptr)(4 * b.share);
    if (!run_entry(c, true, &a, err, len))
        return false;
    for (int k = 0; k < m->nparams; k++) { /* the updates that are not in place, over their parameters */
        const rt_compiled_param *p = &m->params[k];
        if (p->next_offset < 0)
            continue;
        CUdeviceptr dst = c->params + (CUdeviceptr)p->offset,
                    src = c->train_arena + (CUdeviceptr)(p->next_offset + p->next_offset_n * rows);
        long long bytes = 4 * (long long)rt_param_numel(p);
        void *cp[] = {&dst, &src, &bytes};
        int64_t g = (bytes + 255) / 256;
        if (!launch(c, c->copy, "ag_copy", g > 4096 ? 4096 : g, cp, err, len))
            return false;
    }
    step_outs o = {.loss = value_at(c, c->train_arena, &m->train.loss, rows),
                   .nmetrics = m->train.nmetrics,
                   .rows = b.counted,
                   .advance = b.global};
    for (int k = 0; k < m->train.nmetrics && k < 8; k++) {
        o.metric[k] = value_at(c, c->train_arena, &m->train.metrics[k], rows);
        o.metric_i32[k] = m->train.metrics[k].dtype == AG_I32;
    }
    void *p[] = {&c->state, &o};
    return launch(c, c->step_end, "ag_step_end", 1, p, err, len);
}

bool rt_cuda_train_epoch(rt_cuda *c, const int64_t *perm, int64_t n, const rt_fit *f, int64_t epoch,
                         uint64_t first_step, double *loss_sum, double *metric_sum, int64_t *bad_step, char *err,
                         size_t len)
{
    if (n != c->data_n)
        return rt_fail(err, len, "the epoch's order has %lld samples, the uploaded set %lld", (long long)n,
                       (long long)c->data_n);
    if (f->batch > c->rows)
        return rt_fail(err, len, "batches of %lld rows, where the arenas hold %lld", (long long)f->batch,
                       (long long)c->rows);
    FILE *progress = c->dist && c->dist->rank > 0 ? NULL : f->progress; /* rank 0 alone prints */
    if (f->dist && f->dist->size > 1 && f->dist != c->dist)
        return rt_fail(err, len, "%d ranks, but the GPU has not joined them (rt_cuda_join)", f->dist->size);
    int64_t full = n / f->batch, rest = n % f->batch;
    part whole = part_of(c, f->batch, 0), last = part_of(c, rest, 1);
    c->host_share[0] = (float)((double)whole.counted / (double)whole.global); /* rt_batch_share's */
    c->host_share[1] = rest ? (float)((double)last.counted / (double)last.global) : 0;
    for (int64_t i = 0; i < n; i++)
        c->host_order[i] = (int)perm[i];
    float lr = (float)f->lr, wd = (float)f->wd;
    bool scheduled = !rt_schedule_is_constant(&f->schedule);
    int64_t steps = (n + f->batch - 1) / f->batch;
    if (scheduled && !c->lr_table &&
        !(dalloc(&c->lr_table, (size_t)(n ? n : 1) * sizeof(float), "lr table", err, len) &&
          ck(rt_cu.cuMemAllocHost((void **)&c->host_lr, (size_t)(n ? n : 1) * sizeof(float)), "cuMemAllocHost",
             "lr table", err, len)))
        return false;
    for (int64_t s = 0; scheduled && s < steps; s++) /* the schedule is the host's: rt_lr_at */
        c->host_lr[s] = (float)rt_lr_at(&f->schedule, f->lr, first_step + (uint64_t)s, epoch,
                                        (uint64_t)f->epochs * (uint64_t)steps);
    *c->host_state = (dev_state){.step = first_step, .bad_step = -1};
    bool ok =
        ck(rt_cu.cuMemcpyHtoDAsync(c->order, c->host_order, (size_t)n * sizeof(int), c->stream), "cuMemcpyHtoDAsync",
           "epoch order", err, len) &&
        ck(rt_cu.cuMemcpyHtoDAsync(c->state, c->host_state, sizeof(dev_state), c->stream), "cuMemcpyHtoDAsync",
           "step state", err, len) &&
        ck(rt_cu.cuMemcpyHtoDAsync(c->lr, &lr, 4, c->stream), "cuMemcpyHtoDAsync", "lr", err, len) &&
        ck(rt_cu.cuMemcpyHtoDAsync(c->wd, &wd, 4, c->stream), "cuMemcpyHtoDAsync", "wd", err, len) &&
        ck(rt_cu.cuMemcpyHtoDAsync(c->share, c->host_share, 8, c->stream), "cuMemcpyHtoDAsync", "rank share", err,
           len) &&
        (!scheduled || ck(rt_cu.cuMemcpyHtoDAsync(c->lr_table, c->host_lr, (size_t)steps * sizeof(float), c->stream),
                          "cuMemcpyHtoDAsync", "lr table", err, len)) &&
        /* lr, wd: on the stack */
        ck(rt_cu.cuStreamSynchronize(c->stream), "cuStreamSynchronize", NULL, err, len);
    /* full batches: one graph of a whole step, captured once per batch size and replayed */
    if (ok && full > 0 && (c->graph_batch != f->batch || c->graph_lr != scheduled)) {
        if (c->graph)
            rt_cu.cuGraphExecDestroy(c->graph), c->graph = NULL;
        CUgraph g = NULL;
        ok = ck(rt_cu.cuStreamBeginCapture(c->stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture",
                NULL, err, len);
        bool captured = ok && device_step(c, whole, f->seed, scheduled, err, len);
        CUresult r = ok ? rt_cu.cuStreamEndCapture(c->stream, &g) : 0;
        ok = captured && ck(r, "cuStreamEndCapture", NULL, err, len) &&
             ck(rt_cu.cuGraphInstantiate(&c->graph, g, 0), "cuGraphInstantiate", NULL, err, len);
        if (g)
            rt_cu.cuGraphDestroy(g);
        c->graph_batch = ok ? f->batch : 0;
        c->graph_lr = scheduled;
    }
    double t0 = now(), shown = t0;
    bool polling = false;
    for (int64_t s = 0; ok && s < full; s++) {
        ok = ck(rt_cu.cuGraphLaunch(c->graph, c->stream), "cuGraphLaunch", "train step", err, len);
        if (ok && c->comm && c->dist->size > 1 && (s + 1) % c->pace == 0) /* with ranks: 2 paces ahead at most */
            ok = (s + 1 == c->pace || finish_event(c, c->paced, "a train step", err, len)) &&
                 ck(rt_cu.cuEventRecord(c->paced, c->stream), "cuEventRecord", NULL, err, len);
        if (ok && progress && now() - shown >= 0.25) { /* the sums so far, read without waiting */
            if (polling && rt_cu.cuEventQuery(c->polled) == 0) {
                const dev_state *h = c->host_state;
                fprintf(progress, "\r\033[Kepoch %lld/%lld  step %lld/%lld  loss %.4f", (long long)epoch,
                        (long long)f->epochs, h->steps, (long long)(full + (rest > 0)),
                        h->steps ? h->loss_sum / (double)(h->steps * (whole.counted ? whole.counted : 1)) : 0.0);
                fflush(progress);
                polling = false;
            }
            if (!polling)
                ok = ck(rt_cu.cuMemcpyDtoHAsync(c->host_state, c->state, sizeof(dev_state), c->stream),
                        "cuMemcpyDtoHAsync", "step state", err, len) &&
                     ck(rt_cu.cuEventRecord(c->polled, c->stream), "cuEventRecord", NULL, err, len);
            polling = ok;
            shown = now();
        }
    }
    if (ok && rest > 0)
        ok = device_step(c, last, f->seed, scheduled, err, len);
    ok = ok &&
         ck(rt_cu.cuMemcpyDtoHAsync(c->host_state, c->state, sizeof(dev_state), c->stream), "cuMemcpyDtoHAsync",
            "step state", err, len) &&
         finish(c, "the epoch's train steps", err, len);
    if (progress && shown > t0)
        fprintf(progress, "\r\033[K");
    if (!ok)
        return false;
    *loss_sum = c->host_state->loss_sum;
    for (int k = 0; k < c->m->train.nmetrics && k < 8; k++)
        metric_sum[k] = c->host_state->metric_sum[k];
    *bad_step = c->host_state->bad_step;
    return true;
}

bool rt_cuda_forward(rt_cuda *c, rt_batch *b, void *predict, char *err, size_t len)
{
    const rt_compiled *m = c->m;
    const rt_compiled_entry *e = &m->forward;
    if (b->n > c->rows)
        return rt_fail(err, len, "a batch of %lld rows, where the arenas hold %lld", (long long)b->n,
                       (long long)c->rows);
    dev_args a = entry_args(c, e, c->fwd_arena, b->n, b->seed, b->step, false);
    float loss = 0;
    char metric[8][4];
    bool ok = ck(rt_cu.cuMemcpyHtoDAsync(c->x, b->x, (size_t)(b->n * c->x_row), c->stream), "cuMemcpyHtoDAsync",
                 "batch features", err, len) &&
              ck(rt_cu.cuMemcpyHtoDAsync(c->y, b->y, (size_t)(b->n * c->y_row), c->stream), "cuMemcpyHtoDAsync",
                 "batch targets", err, len) &&
              run_entry(c, false, &a, err, len) &&
              ck(rt_cu.cuMemcpyDtoHAsync(&loss, value_at(c, c->fwd_arena, &e->loss, b->n), 4, c->stream),
                 "cuMemcpyDtoHAsync", "loss", err, len);
    for (int k = 0; ok && k < e->nmetrics && k < 8; k++)
        ok = ck(rt_cu.cuMemcpyDtoHAsync(metric[k], value_at(c, c->fwd_arena, &e->metrics[k], b->n), 4, c->stream),
                "cuMemcpyDtoHAsync", "metric", err, len);
    if (ok && predict && e->predict.name)
        ok = ck(rt_cu.cuMemcpyDtoHAsync(predict, value_at(c, c->fwd_arena, &e->predict, b->n),
                                        (size_t)(b->n * e->predict.numel * elem_size(e->predict.dtype)), c->stream),
                "cuMemcpyDtoHAsync", "predictions", err, len);
    ok = ok && ck(rt_cu.cuStreamSynchronize(c->stream), "cuStreamSynchronize", "forward", err, len);
    if (!ok)
        return false;
    b->loss = loss;
    for (int k = 0; k < e->nmetrics && k < RT_MAX_METRICS; k++) {
        float fv;
        int32_t iv;
        memcpy(&fv, metric[k], 4);
        memcpy(&iv, metric[k], 4);
        b->metric[k] = e->metrics[k].dtype == AG_I32 ? (double)iv : (double)fv;
    }
    return true;
}

bool rt_cuda_time_kernels(rt_cuda *c, int64_t rows, int64_t reps, double *seconds, char *err, size_t len)
{
    const rt_cuda_image *im = c->m->cuda;
    int n = im->ntrain;
    CUevent *ev = calloc((size_t)n + 1, sizeof *ev);
    bool ok = ev || rt_fail(err, len, "out of memory");
    for (int k = 0; ok && k <= n; k++)
        ok = ck(rt_cu.cuEventCreate(&ev[k], 0), "cuEventCreate", NULL, err, len);
    dev_args a = entry_args(c, &c->m->train, c->train_arena, rows, 1, 0, false);
    void *params[] = {&a};
    for (int k = 0; k < n; k++)
        seconds[k] = 0;
    for (int64_t r = 0; ok && r < reps; r++) {
        for (int k = 0; ok && k < n; k++)
            ok = ck(rt_cu.cuEventRecord(ev[k], c->stream), "cuEventRecord", im->train[k].name, err, len) &&
                 (im->train[k].collective || /* one process: nothing to sum */
                  launch(c, c->train[k], im->train[k].name, blocks(&im->train[k], rows), params, err, len));
        ok = ok && ck(rt_cu.cuEventRecord(ev[n], c->stream), "cuEventRecord", NULL, err, len) &&
             ck(rt_cu.cuStreamSynchronize(c->stream), "cuStreamSynchronize", "timed kernels", err, len);
        for (int k = 0; ok && k < n; k++) {
            float ms = 0;
            ok = ck(rt_cu.cuEventElapsedTime(&ms, ev[k], ev[k + 1]), "cuEventElapsedTime", im->train[k].name, err, len);
            seconds[k] += ms / 1e3;
        }
    }
    for (int k = 0; ev && k <= n; k++)
        if (ev[k])
            rt_cu.cuEventDestroy(ev[k]);
    free(ev);
    return ok;
}
