/* The CUDA driver API, loaded with dlopen: its types and entry points, declared here from the
 * driver's documented C API so that nothing of CUDA is needed to build, and one table of
 * function pointers shared by the runtime (runtime/cuda.c) and the tests' device runner
 * (tests/common/cuda_device.c). The driver is $AOTGRAD_LIBCUDA when set (the tests' fake,
 * tests/cuda/fake_libcuda.cpp), else libcuda.so.1. */
#ifndef AG_RUNTIME_CUDA_DRIVER_H
#define AG_RUNTIME_CUDA_DRIVER_H

#include <stdbool.h>
#include <stddef.h>

typedef int CUresult; /* 0: CUDA_SUCCESS */
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;

enum {
    CU_STREAM_NON_BLOCKING = 1,
    CU_EVENT_DISABLE_TIMING = 2,
    CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
    CUDA_ERROR_NOT_READY = 600, /* cuEventQuery: not yet */
};

/* the driver's functions, by their exported (versioned) names */
#define CU_FUNCTIONS(X)                                                                                            \
    X(cuInit, "cuInit", CUresult (*)(unsigned))                                                                    \
    X(cuDeviceGetCount, "cuDeviceGetCount", CUresult (*)(int *))                                                   \
    X(cuDeviceGet, "cuDeviceGet", CUresult (*)(CUdevice *, int))                                                   \
    X(cuDeviceGetName, "cuDeviceGetName", CUresult (*)(char *, int, CUdevice))                                     \
    X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", CUresult (*)(CUcontext *, CUdevice))                   \
    X(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", CUresult (*)(CUdevice))                           \
    X(cuCtxSetCurrent, "cuCtxSetCurrent", CUresult (*)(CUcontext))                                                 \
    X(cuModuleLoadDataEx, "cuModuleLoadDataEx", CUresult (*)(CUmodule *, const void *, unsigned, int *, void **))  \
    X(cuModuleUnload, "cuModuleUnload", CUresult (*)(CUmodule))                                                    \
    X(cuModuleGetFunction, "cuModuleGetFunction", CUresult (*)(CUfunction *, CUmodule, const char *))              \
    X(cuMemAlloc, "cuMemAlloc_v2", CUresult (*)(CUdeviceptr *, size_t))                                            \
    X(cuMemFree, "cuMemFree_v2", CUresult (*)(CUdeviceptr))                                                        \
    X(cuMemAllocHost, "cuMemAllocHost_v2", CUresult (*)(void **, size_t))                                          \
    X(cuMemFreeHost, "cuMemFreeHost", CUresult (*)(void *))                                                        \
    X(cuMemcpyDtoH, "cuMemcpyDtoH_v2", CUresult (*)(void *, CUdeviceptr, size_t))                                  \
    X(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", CUresult (*)(CUdeviceptr, const void *, size_t, CUstream))        \
    X(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", CUresult (*)(void *, CUdeviceptr, size_t, CUstream))              \
    X(cuStreamCreate, "cuStreamCreate", CUresult (*)(CUstream *, unsigned))                                        \
    X(cuStreamDestroy, "cuStreamDestroy_v2", CUresult (*)(CUstream))                                               \
    X(cuStreamSynchronize, "cuStreamSynchronize", CUresult (*)(CUstream))                                          \
    X(cuEventCreate, "cuEventCreate", CUresult (*)(CUevent *, unsigned))                                           \
    X(cuEventDestroy, "cuEventDestroy_v2", CUresult (*)(CUevent))                                                  \
    X(cuEventRecord, "cuEventRecord", CUresult (*)(CUevent, CUstream))                                             \
    X(cuEventQuery, "cuEventQuery", CUresult (*)(CUevent))                                                         \
    X(cuStreamWaitEvent, "cuStreamWaitEvent", CUresult (*)(CUstream, CUevent, unsigned))                           \
    X(cuEventElapsedTime, "cuEventElapsedTime", CUresult (*)(float *, CUevent, CUevent))                           \
    X(cuLaunchKernel, "cuLaunchKernel",                                                                            \
      CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,     \
                   void **, void **))                                                                              \
    X(cuStreamBeginCapture, "cuStreamBeginCapture_v2", CUresult (*)(CUstream, int))                                \
    X(cuStreamEndCapture, "cuStreamEndCapture", CUresult (*)(CUstream, CUgraph *))                                 \
    X(cuGraphInstantiate, "cuGraphInstantiateWithFlags", CUresult (*)(CUgraphExec *, CUgraph, unsigned long long)) \
    X(cuGraphLaunch, "cuGraphLaunch", CUresult (*)(CUgraphExec, CUstream))                                         \
    X(cuGraphExecDestroy, "cuGraphExecDestroy", CUresult (*)(CUgraphExec))                                         \
    X(cuGraphDestroy, "cuGraphDestroy", CUresult (*)(CUgraph))                                                     \
    X(cuGetErrorName, "cuGetErrorName", CUresult (*)(CUresult, const char **))                                     \
    X(cuGetErrorString, "cuGetErrorString", CUresult (*)(CUresult, const char **))

typedef struct rt_cu_table {
#define CU_FIELD(name, sym, type) __typeof__(type) name; /* the function pointer type, named */
    CU_FUNCTIONS(CU_FIELD)
#undef CU_FIELD
} rt_cu_table;

/* Filled by rt_cu_load; every pointer is set once it returns true. */
extern rt_cu_table rt_cu;

/* Loads the driver, once per process (later calls give the first call's answer); false
 * with the reason: no driver, or a driver without one of the functions (too old). */
bool rt_cu_load(char *err, size_t len);

/* true when r is CUDA_SUCCESS, else false with "WHAT (KERNEL): CUDA_ERROR_X (r): description"
 * (kernel may be NULL). */
bool rt_cu_check(CUresult r, const char *what, const char *kernel, char *err, size_t len);

#endif
