/* The CUDA driver's table (cuda_driver.h). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda_driver.h"
#include "fail.h"

rt_cu_table rt_cu;

bool rt_cu_load(char *err, size_t len)
{
    static int state; /* 0: not tried, 1: loaded, -1: failed */
    static char why[512];
    if (state == 0) {
        const char *path = getenv("AOTGRAD_LIBCUDA");
        path = path && *path ? path : "libcuda.so.1";
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        state = h ? 1 : -1;
        if (!h)
            snprintf(why, sizeof why, "no CUDA driver (%s)", dlerror());
#define CU_LOOKUP(name, sym, type)                                                                \
    if (state == 1 && !(*(void **)&rt_cu.name = dlsym(h, sym))) {                                 \
        snprintf(why, sizeof why, "the CUDA driver %s has no %s (too old a driver?)", path, sym); \
        state = -1;                                                                               \
    }
        CU_FUNCTIONS(CU_LOOKUP)
#undef CU_LOOKUP
    }
    return state == 1 || rt_fail(err, len, "%s", why);
}

bool rt_cu_check(CUresult r, const char *what, const char *kernel, char *err, size_t len)
{
    if (r == 0)
        return true;
    const char *name = "?", *desc = "?";
    if (rt_cu.cuGetErrorName)
        rt_cu.cuGetErrorName(r, &name);
    if (rt_cu.cuGetErrorString)
        rt_cu.cuGetErrorString(r, &desc);
    return rt_fail(err, len, "%s%s%s%s: %s (%d): %s", what, kernel ? " (" : "", kernel ? kernel : "", kernel ? ")" : "",
                   name ? name : "?", r, desc ? desc : "?");
}
