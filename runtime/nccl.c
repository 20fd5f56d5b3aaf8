/* NCCL's table (nccl.h). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

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
    return state == 1 || rt_fail(err, len, "%s", why);
}

bool rt_nccl_check(ncclResult_t r, const char *what, char *err, size_t len)
{
    if (r == 0)
        return true;
    const char *desc = rt_nccl.ncclGetErrorString ? rt_nccl.ncclGetErrorString(r) : NULL;
    return rt_fail(err, len, "%s: NCCL error %d: %s", what, r, desc ? desc : "?");
}
