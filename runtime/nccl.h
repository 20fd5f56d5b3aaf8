/* NCCL, loaded with dlopen like the CUDA driver (cuda_driver.h): the types and entry points a
 * data-parallel run on GPUs needs, declared from NCCL's documented C API so that nothing of
 * NCCL is needed to build, in one table of function pointers. The library is
 * $AOTGRAD_LIBNCCL when set (the tests' fake, tests/cuda/fake_libnccl.c), else
 * libnccl.so.2. */
#ifndef AG_RUNTIME_NCCL_H
#define AG_RUNTIME_NCCL_H

#include <stdbool.h>
#include <stddef.h>

#include "cuda_driver.h"

typedef int ncclResult_t; /* 0: ncclSuccess, 7: ncclInProgress */
typedef struct ncclComm *ncclComm_t;
typedef struct {
    char internal[128]; /* NCCL_UNIQUE_ID_BYTES */
} ncclUniqueId;

enum { NCCL_UINT64 = 5, NCCL_FLOAT32 = 7, NCCL_FLOAT64 = 8, NCCL_SUM = 0, NCCL_IN_PROGRESS = 7 };

#define NCCL_FUNCTIONS(X)                                                                            \
    X(ncclGetVersion, ncclResult_t (*)(int *))                                                       \
    X(ncclGetUniqueId, ncclResult_t (*)(ncclUniqueId *))                                             \
    X(ncclCommInitRank, ncclResult_t (*)(ncclComm_t *, int, ncclUniqueId, int))                      \
    X(ncclAllReduce, ncclResult_t (*)(const void *, void *, size_t, int, int, ncclComm_t, CUstream)) \
    X(ncclBroadcast, ncclResult_t (*)(const void *, void *, size_t, int, int, ncclComm_t, CUstream)) \
    X(ncclAllGather, ncclResult_t (*)(const void *, void *, size_t, int, ncclComm_t, CUstream))      \
    X(ncclCommDestroy, ncclResult_t (*)(ncclComm_t))                                                 \
    X(ncclCommAbort, ncclResult_t (*)(ncclComm_t))                                                   \
    X(ncclCommGetAsyncError, ncclResult_t (*)(ncclComm_t, ncclResult_t *))                           \
    X(ncclGetErrorString, const char *(*)(ncclResult_t))

typedef struct rt_nccl_table {
#define NCCL_FIELD(name, type) __typeof__(type) name;
    NCCL_FUNCTIONS(NCCL_FIELD)
#undef NCCL_FIELD
} rt_nccl_table;

/* Filled by rt_nccl_load; every pointer is set once it returns true. */
extern rt_nccl_table rt_nccl;

/* Loads NCCL, once per process (later calls give the first call's answer); false with the
 * reason: no NCCL, or one without a function (too old). */
bool rt_nccl_load(char *err, size_t len);

/* true when r is ncclSuccess, else false with "WHAT: NCCL error R: description" */
bool rt_nccl_check(ncclResult_t r, const char *what, char *err, size_t len);

/* Until event e (recorded after a sum) has happened, polling: false with the reason when NCCL
 * reports an error on comm, or after timeout seconds ("did not finish within S s (--timeout):
 * another rank died or hangs"), where a blocking wait would hang on a dead rank. */
bool rt_nccl_wait(CUevent e, ncclComm_t comm, double timeout, char *err, size_t len);

#endif
