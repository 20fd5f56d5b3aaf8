#include "cuda_device.h"

#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cuda_driver.h"
#include "fail.h"

#define MAX_GRID (65535 * 16) /* runtime/cuda.c's cap on a launch's blocks */

/* the kernels' ag_dev_args as the host fills it (runtime/args.h: one definition, which the
 * generated source's prelude and runtime/cuda.c share) */
typedef ag_dev_args_host dev_args;

struct cuda_device {
    CUdevice dev;
    CUcontext ctx;
    CUstream stream;
    CUmodule mod;
    const cg_cuda_plan *plan;
    CUfunction *fn; /* per plan step */
    char name[256];
};

const char *cuda_device_name(const cuda_device *d) { return d->name; }

bool cuda_device_open(cuda_device **out, char *err, size_t len)
{
    *out = NULL;
    if (!rt_cu_load(err, len))
        return false;
    int count = 0;
    if (!rt_cu_check(rt_cu.cuInit(0), "cuInit", NULL, err, len) ||
        !rt_cu_check(rt_cu.cuDeviceGetCount(&count), "cuDeviceGetCount", NULL, err, len))
        return false;
    if (count == 0)
        return rt_fail(err, len, "no CUDA GPU");
    cuda_device *d = calloc(1, sizeof *d);
    if (!d)
        return rt_fail(err, len, "out of memory");
    bool ok =
        rt_cu_check(rt_cu.cuDeviceGet(&d->dev, 0), "cuDeviceGet", NULL, err, len) &&
        rt_cu_check(rt_cu.cuDeviceGetName(d->name, sizeof d->name - 1, d->dev), "cuDeviceGetName", NULL, err, len) &&
        rt_cu_check(rt_cu.cuDevicePrimaryCtxRetain(&d->ctx, d->dev), "cuDevicePrimaryCtxRetain", NULL, err, len) &&
        rt_cu_check(rt_cu.cuCtxSetCurrent(d->ctx), "cuCtxSetCurrent", NULL, err, len) &&
        rt_cu_check(rt_cu.cuStreamCreate(&d->stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate", NULL, err, len);
    if (!ok) {
        cuda_device_close(d);
        return false;
    }
    *out = d;
    return true;
}

static void unload(cuda_device *d)
{
    if (d->mod)
        rt_cu.cuModuleUnload(d->mod);
    d->mod = NULL;
    free(d->fn);
    d->fn = NULL;
    d->plan = NULL;
}

void cuda_device_close(cuda_device *d)
{
    if (!d)
        return;
    unload(d);
    if (d->stream)
        rt_cu.cuStreamDestroy(d->stream);
    if (d->ctx)
        rt_cu.cuDevicePrimaryCtxRelease(d->dev);
    free(d);
}

bool cuda_device_load(cuda_device *d, const void *cubin, size_t cubin_len, const char *ptx, const cg_cuda_plan *plan,
                      char *err, size_t len)
{
    unload(d);
    CUresult r = cubin && cubin_len ? rt_cu.cuModuleLoadDataEx(&d->mod, cubin, 0, NULL, NULL) : 1;
    if (r != 0 && ptx) /* the cubin is for sm_90; another GPU JITs the PTX */
        r = rt_cu.cuModuleLoadDataEx(&d->mod, ptx, 0, NULL, NULL);
    if (!rt_cu_check(r, "cuModuleLoadDataEx", ptx ? "the cubin, then the PTX" : "the cubin", err, len)) {
        d->mod = NULL;
        return false;
    }
    d->fn = calloc((size_t)plan->nsteps + 1, sizeof *d->fn);
    if (!d->fn)
        return rt_fail(err, len, "out of memory");
    d->plan = plan;
    for (int k = 0; k < plan->nsteps; k++)
        if (!plan->step[k].collective && !rt_cu_check(rt_cu.cuModuleGetFunction(&d->fn[k], d->mod, plan->step[k].name),
                                                      "cuModuleGetFunction", plan->step[k].name, err, len))
            return false;
    return true;
}

bool cuda_device_run(cuda_device *d, int64_t batch, uint32_t seed, uint64_t step, cuda_host_region arena,
                     cuda_host_region params, const cuda_host_region *inputs, int ninputs,
                     const cuda_host_region *outputs, int noutputs, char *err, size_t len)
{
    if (!d->plan)
        return rt_fail(err, len, "cuda_device: no program loaded");
    if (ninputs < 0 || ninputs > CG_CUDA_MAX_TENSORS || noutputs < 0 || noutputs > CG_CUDA_MAX_TENSORS)
        return rt_fail(err, len, "cuda_device: %d inputs and %d outputs, at most %d each", ninputs, noutputs,
                       CG_CUDA_MAX_TENSORS);
    /* the regions in the order of cuda_host_run, each in its own allocation; then the step */
    enum { nmax = 2 + 2 * CG_CUDA_MAX_TENSORS };
    cuda_host_region region[nmax + 2];
    char what[nmax + 2][24]; /* "output %d" for any int, as -Wformat-truncation counts */
    CUdeviceptr dptr[nmax + 2] = {0};
    int n = 0;
    region[n] = arena, strcpy(what[n++], "arena");
    region[n] = params, strcpy(what[n++], "parameters");
    for (int i = 0; i < ninputs; i++)
        region[n] = inputs[i], snprintf(what[n++], sizeof what[0], "input %d", i);
    for (int i = 0; i < noutputs; i++)
        region[n] = outputs[i], snprintf(what[n++], sizeof what[0], "output %d", i);
    unsigned long long step_value = step;
    region[n] = (cuda_host_region){&step_value, sizeof step_value}, strcpy(what[n++], "step");
    /* the split-K matmuls' scratch: its counters start at zero */
    void *zeros = calloc(1, d->plan->scratch_bytes > 0 ? (size_t)d->plan->scratch_bytes : 1);
    if (!zeros)
        return rt_fail(err, len, "out of memory");
    region[n] = (cuda_host_region){zeros, (size_t)d->plan->scratch_bytes}, strcpy(what[n++], "scratch");

    bool ok = true;
    for (int i = 0; ok && i < n; i++) /* 256 bytes for an empty region: the driver refuses 0 */
        ok = rt_cu_check(rt_cu.cuMemAlloc(&dptr[i], region[i].bytes ? region[i].bytes : 256), "cuMemAlloc", what[i],
                         err, len) &&
             (region[i].bytes == 0 ||
              rt_cu_check(rt_cu.cuMemcpyHtoDAsync(dptr[i], region[i].data, region[i].bytes, d->stream),
                          "cuMemcpyHtoDAsync", what[i], err, len));
    /* on the kernels' stream and waited for: a plain cuMemcpyHtoD from pageable memory may
     * return before its DMA lands, and the non-blocking stream does not wait for it */
    ok = ok && rt_cu_check(rt_cu.cuStreamSynchronize(d->stream), "cuStreamSynchronize", "the uploads", err, len);
    dev_args a = {.arena = dptr[0],
                  .params = dptr[1],
                  .N = batch,
                  .seed = seed,
                  .step = step,
                  .pstep = dptr[n - 2],
                  .scratch = dptr[n - 1]};
    for (int i = 0; i < ninputs; i++)
        a.inputs[i] = dptr[2 + i];
    for (int i = 0; i < noutputs; i++)
        a.outputs[i] = dptr[2 + ninputs + i];
    void *kernel_params[] = {&a};
    for (int k = 0; ok && k < d->plan->nsteps; k++) {
        const cg_cuda_launch *l = &d->plan->step[k];
        if (l->collective) /* a bucket's sum over one rank: nothing to do */
            continue;
        int64_t grid = cg_cuda_blocks(l, batch);
        grid = grid > MAX_GRID ? MAX_GRID : grid;
        ok = rt_cu_check(rt_cu.cuLaunchKernel(d->fn[k], (unsigned)grid, 1, 1, CG_CUDA_BLOCK, 1, 1, 0, d->stream,
                                              kernel_params, NULL),
                         "cuLaunchKernel", l->name, err, len) &&
             rt_cu_check(rt_cu.cuStreamSynchronize(d->stream), "cuStreamSynchronize", l->name, err, len);
    }
    for (int i = 0; ok && i < n - 2; i++) /* the step stays (the kernels only read it), the scratch too */
        ok = region[i].bytes == 0 || rt_cu_check(rt_cu.cuMemcpyDtoH(region[i].data, dptr[i], region[i].bytes),
                                                 "cuMemcpyDtoH", what[i], err, len);
    for (int i = 0; i < n; i++)
        if (dptr[i])
            rt_cu.cuMemFree(dptr[i]);
    free(zeros);
    return ok;
}
