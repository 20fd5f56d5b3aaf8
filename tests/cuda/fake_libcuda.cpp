/* A stand-in for the CUDA driver (libcuda.so.1) that runs on the CPU, so the device runtime
 * (runtime/cuda.c) is tested where there is no GPU: a binary is pointed at this library with
 * AOTGRAD_LIBCUDA, and its "module" is AOTGRAD_FAKE_KERNELS, a shared object of the same
 * generated CUDA C compiled with tests/cuda/host_shim.h (tests/cuda/test_device_runtime.c
 * builds both). That object exports
 *     int fake_kernel(const char *name, unsigned grid, void **params)   run a kernel now
 *     void **fake_pack(const char *name, void **params)                 copy its arguments
 * Device memory is host memory; a stream runs everything at once, in order; a captured graph
 * is the list of launches with copies of their arguments, replayed by cuGraphLaunch. Only
 * the calls runtime/cuda.c makes are here, each checking what it can. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <string>
#include <vector>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
enum { OK = 0, INVALID_VALUE = 1, INVALID_IMAGE = 200, NOT_FOUND = 500, INVALID_HANDLE = 400, NOT_SUPPORTED = 801 };

namespace
{
int (*run_kernel)(const char *, unsigned, void **);
void **(*pack)(const char *, void **);
struct launch {
    std::string name;
    unsigned grid;
    void **params;
    void (*host)(void *); /* a host call in the stream (fake_host_call): params is its argument */
};
struct graph {
    std::vector<launch> launches;
};
bool capturing;
graph *captured;

void *alloc(size_t n)
{
    void *p = nullptr;
    return posix_memalign(&p, 256, n ? (n + 255) / 256 * 256 : 256) == 0 ? p : nullptr;
}
} // namespace

#define API extern "C" __attribute__((visibility("default"))) CUresult

API cuInit(unsigned) { return OK; }
/* one GPU, or $AOTGRAD_FAKE_GPUS (the tests of several ranks, one a GPU) */
static int gpus()
{
    const char *n = getenv("AOTGRAD_FAKE_GPUS");
    return n && atoi(n) > 0 ? atoi(n) : 1;
}
API cuDeviceGetCount(int *n) { return *n = gpus(), OK; }
API cuDeviceGet(int *d, int i) { return i >= 0 && i < gpus() ? (*d = i, OK) : INVALID_VALUE; }
API cuDeviceGetName(char *name, int len, int) { return snprintf(name, (size_t)len, "aotgrad fake GPU (host)"), OK; }
API cuDevicePrimaryCtxRetain(void **ctx, int) { return *ctx = (void *)1, OK; }
API cuDevicePrimaryCtxRelease_v2(int) { return OK; }
API cuCtxSetCurrent(void *) { return OK; }

API cuModuleLoadDataEx(void **mod, const void *image, unsigned, int *, void **)
{
    /* what the driver would take: a cubin (ELF) or PTX text (NVRTC's starts with comments) */
    const char *im = (const char *)image;
    if (!im || (memcmp(im, "\177ELF", 4) != 0 && strncmp(im, "//", 2) != 0 && strncmp(im, ".version", 8) != 0))
        return INVALID_IMAGE;
    const char *path = getenv("AOTGRAD_FAKE_KERNELS");
    void *h = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : nullptr;
    if (!h) {
        fprintf(stderr, "fake libcuda: cannot load AOTGRAD_FAKE_KERNELS=%s: %s\n", path ? path : "(unset)", dlerror());
        return NOT_FOUND;
    }
    *(void **)&run_kernel = dlsym(h, "fake_kernel");
    *(void **)&pack = dlsym(h, "fake_pack");
    *mod = h;
    return run_kernel && pack ? OK : NOT_FOUND;
}
API cuModuleUnload(void *) { return OK; }
API cuModuleGetFunction(void **f, void *, const char *name)
{
    /* a kernel the module does not have is refused here, as the driver would */
    if (!run_kernel(name, 0, nullptr))
        return NOT_FOUND;
    static std::vector<std::string> all; /* the functions' handles, until exit */
    all.reserve(4096);                   /* c_str pointers stay put while it does not grow past this */
    if (all.size() == all.capacity())
        return 2;
    all.push_back(name);
    *f = (void *)all.back().c_str();
    return OK;
}

API cuMemAlloc_v2(CUdeviceptr *p, size_t n) { return (*p = (CUdeviceptr)alloc(n)) ? OK : 2; }
API cuMemFree_v2(CUdeviceptr p) { return free((void *)p), OK; }
API cuMemAllocHost_v2(void **p, size_t n) { return (*p = alloc(n)) ? OK : 2; }
API cuMemFreeHost(void *p) { return free(p), OK; }
API cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n) { return memcpy(d, (const void *)s, n), OK; }
API cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *s, size_t n, void *)
{
    return capturing ? NOT_SUPPORTED : (memcpy((void *)d, s, n), OK);
}
API cuMemcpyDtoHAsync_v2(void *d, CUdeviceptr s, size_t n, void *)
{
    return capturing ? NOT_SUPPORTED : (memcpy(d, (const void *)s, n), OK);
}

API cuStreamCreate(void **s, unsigned) { return *s = (void *)2, OK; }
API cuStreamDestroy_v2(void *) { return OK; }
API cuStreamSynchronize(void *) { return capturing ? NOT_SUPPORTED : OK; }
/* an event: when it was recorded (the stream has run everything by then) */
API cuEventCreate(void **e, unsigned) { return (*e = calloc(1, sizeof(timespec))) ? OK : 2; }
API cuEventDestroy_v2(void *e) { return free(e), OK; }
API cuEventRecord(void *e, void *) { return clock_gettime(CLOCK_MONOTONIC, (timespec *)e), OK; }
API cuEventQuery(void *) { return OK; }
API cuEventElapsedTime(float *ms, void *a, void *b)
{
    const timespec *x = (const timespec *)a, *y = (const timespec *)b;
    *ms = (float)((double)(y->tv_sec - x->tv_sec) * 1e3 + (double)(y->tv_nsec - x->tv_nsec) / 1e6);
    return OK;
}

API cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shm,
                   void *, void **params, void **extra)
{
    if (!f || gx == 0 || gy != 1 || gz != 1 || bx != 256 || by != 1 || bz != 1 || shm || extra || !params)
        return INVALID_VALUE;
    const char *name = (const char *)f;
    unsigned grid = 1; /* any grid computes it all (grid stride): the fewest fibers */
    if (capturing) {
        captured->launches.push_back({name, grid, pack(name, params), nullptr});
        return OK;
    }
    return run_kernel(name, grid, params) ? OK : INVALID_HANDLE;
}

/* streams run everything at once, in order: every event has happened */
API cuStreamWaitEvent(void *, void *e, unsigned flags) { return e && flags == 0 ? OK : INVALID_VALUE; }

/* For the tests' fake NCCL (tests/cuda/fake_libnccl.c): fn(a copy of the `bytes` at arg) in
 * the stream's order, now, or at each replay of the graph being captured. */
extern "C" __attribute__((visibility("default"))) int fake_host_call(void (*fn)(void *), const void *arg, size_t bytes)
{
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy)
        return 2;
    memcpy(copy, arg, bytes);
    if (capturing) {
        captured->launches.push_back({"host call", 0, (void **)copy, fn});
        return OK;
    }
    fn(copy);
    free(copy);
    return OK;
}

API cuStreamBeginCapture_v2(void *, int)
{
    if (capturing)
        return INVALID_VALUE;
    capturing = true;
    captured = new graph;
    return OK;
}
API cuStreamEndCapture(void *, void **g)
{
    if (!capturing)
        return INVALID_VALUE;
    capturing = false;
    *g = captured;
    captured = nullptr;
    return OK;
}
API cuGraphInstantiateWithFlags(void **exec, void *g, unsigned long long)
{
    graph *e = new graph(*(graph *)g);
    for (launch &l : ((graph *)g)->launches) /* the executable graph owns the arguments now */
        l.params = nullptr;
    *exec = e;
    return OK;
}
API cuGraphLaunch(void *exec, void *)
{
    for (const launch &l : ((graph *)exec)->launches)
        if (l.host)
            l.host(l.params);
        else if (!run_kernel(l.name.c_str(), l.grid, l.params))
            return INVALID_HANDLE;
    return OK;
}
API cuGraphExecDestroy(void *exec)
{
    for (launch &l : ((graph *)exec)->launches)
        free(l.params);
    return delete (graph *)exec, OK;
}
API cuGraphDestroy(void *g)
{
    for (launch &l : ((graph *)g)->launches)
        free(l.params);
    return delete (graph *)g, OK;
}

API cuGetErrorName(CUresult r, const char **s)
{
    *s = r == OK              ? "CUDA_SUCCESS"
         : r == NOT_SUPPORTED ? "CUDA_ERROR_NOT_SUPPORTED"
         : r == INVALID_IMAGE ? "CUDA_ERROR_INVALID_IMAGE"
                              : "CUDA_ERROR_FAKE";
    return OK;
}
API cuGetErrorString(CUresult r, const char **s)
{
    *s = r == OK ? "no error" : "the fake driver refused the call";
    return OK;
}
