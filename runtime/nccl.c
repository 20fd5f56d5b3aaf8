/* NCCL's table (nccl.h). */
#include <dlfcn.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fail.h"
#include "nccl.h"

rt_nccl_table rt_nccl;

bool rt_nccl_load(char *err, size_t len)
{
    static int state; /* 0: not tried, 1: loaded, -1: failed */
    static char why[512];
    if (state == 0) {
        const char *path = getenv("AOTGRAD_LIBNCCL");
        path = path && *path ? path : "libnccl.so.2";
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        state = h ? 1 : -1;
        if (!h)
            snprintf(why, sizeof why, "no NCCL (%s): install NCCL (libnccl2) for data-parallel training on GPUs",
                     dlerror());
#define NCCL_LOOKUP(name, type)                                                        \
    if (state == 1 && !(*(void **)&rt_nccl.name = dlsym(h, #name))) {                  \
        snprintf(why, sizeof why, "NCCL %s has no %s (too old a NCCL?)", path, #name); \
        state = -1;                                                                    \
    }
        NCCL_FUNCTIONS(NCCL_LOOKUP)
#undef NCCL_LOOKUP
    }
    int version = 0; /* NCCL_VERSION(2, 9, 0): the first to capture its sums in CUDA graphs */
    if (state == 1 && (rt_nccl.ncclGetVersion(&version) != 0 || version < 20900)) {
        snprintf(why, sizeof why, "NCCL %d.%d is older than 2.9, the first whose sums CUDA graphs capture",
                 version / 10000 ? version / 10000 : version / 1000,
                 version / 10000 ? version / 100 % 100 : version / 100 % 10);
        state = -1;
    }
    return state == 1 || rt_fail(err, len, "%s", why);
}

bool rt_nccl_check(ncclResult_t r, const char *what, char *err, size_t len)
{
    if (r == 0)
        return true;
    const char *desc = rt_nccl.ncclGetErrorString ? rt_nccl.ncclGetErrorString(r) : NULL;
    return rt_fail(err, len, "%s: NCCL error %d: %s", what, r, desc ? desc : "?");
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

bool rt_nccl_wait(CUevent e, ncclComm_t comm, double timeout, char *err, size_t len)
{
    for (double t0 = now();;) {
        double t = now();
        CUresult r = rt_cu.cuEventQuery(e);
        if (r == 0)
            return true;
        if (r != CUDA_ERROR_NOT_READY)
            return rt_cu_check(r, "cuEventQuery", NULL, err, len);
        ncclResult_t async = 0;
        if (rt_nccl.ncclCommGetAsyncError(comm, &async) == 0 && async != 0 && async != NCCL_IN_PROGRESS)
            return rt_nccl_check(async, "NCCL", err, len);
        if (t - t0 > timeout)
            return rt_fail(err, len, "did not finish within %g s (--timeout): another rank died or hangs", timeout);
        struct timespec ms = {0, 1000000};
        if (t - t0 < 0.005) /* the first few ms spinning: a step's work may be that near its end */
            sched_yield();
        else
            nanosleep(&ms, NULL);
    }
}
