/* A stand-in for NCCL (libnccl.so.2) for the tests' fake GPUs (tests/cuda/fake_libcuda.cpp,
 * whose device memory is host memory): a binary built with --distributed nccl is pointed at
 * it with AOTGRAD_LIBNCCL and run under mpirun. ncclAllReduce sums the floats over the job's
 * ranks with MPI_Allreduce (the binary has joined MPI), in the stream's order: the fake
 * driver's fake_host_call runs it now, or at each replay of the graph being captured, as
 * NCCL's kernels would be. Only the calls runtime/cuda.c makes are here, each checking what
 * it can: in place, f32, sum, a communicator of the job's size. AOTGRAD_FAKE_NCCL_FAIL=init
 * makes ncclCommInitRank fail (the tests of the error's path). */
#include <dlfcn.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define API __attribute__((visibility("default"))) int

enum { OK = 0, INTERNAL = 3, INVALID_ARGUMENT = 4, INVALID_USAGE = 5 };

typedef struct {
    char internal[128];
} ncclUniqueId;

struct ncclComm {
    int rank, size;
};

typedef struct sum_args {
    float *data;
    size_t count;
} sum_args;

static void sum_now(void *p)
{
    const sum_args *a = p;
    MPI_Allreduce(MPI_IN_PLACE, a->data, (int)a->count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

API ncclGetVersion(int *v) { return *v = 22800, OK; }

API ncclGetUniqueId(ncclUniqueId *id)
{
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "fake nccl id of process %d", (int)getpid());
    return OK;
}

API ncclCommInitRank(struct ncclComm **comm, int nranks, ncclUniqueId id, int rank)
{
    const char *fail = getenv("AOTGRAD_FAKE_NCCL_FAIL");
    int up = 0, size = 0;
    MPI_Initialized(&up);
    if (fail && strcmp(fail, "init") == 0)
        return INTERNAL;
    if (!up || strncmp(id.internal, "fake nccl id", 12) != 0)
        return INVALID_USAGE;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != nranks || rank < 0 || rank >= nranks || !(*comm = malloc(sizeof **comm)))
        return INVALID_ARGUMENT;
    (*comm)->rank = rank, (*comm)->size = nranks;
    return OK;
}

API ncclAllReduce(const void *send, void *recv, size_t count, int dtype, int op, struct ncclComm *comm, void *stream)
{
    static int (*host_call)(void (*)(void *), const void *, size_t);
    if (!host_call) { /* the fake driver the binary loaded */
        const char *path = getenv("AOTGRAD_LIBCUDA");
        void *h = path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
        *(void **)&host_call = h ? dlsym(h, "fake_host_call") : NULL;
        if (!host_call)
            return INTERNAL;
    }
    if (send != recv || dtype != 7 || op != 0 || !comm || !stream || count > 2147483647u)
        return INVALID_ARGUMENT;
    sum_args a = {recv, count};
    return host_call(sum_now, &a, sizeof a) == 0 ? OK : INTERNAL;
}

API ncclCommDestroy(struct ncclComm *comm) { return free(comm), OK; }
API ncclCommAbort(struct ncclComm *comm) { return free(comm), OK; }
API ncclCommGetAsyncError(struct ncclComm *comm, int *error) { return *error = OK, comm ? OK : INVALID_ARGUMENT; }

__attribute__((visibility("default"))) const char *ncclGetErrorString(int r)
{
    return r == OK         ? "no error"
           : r == INTERNAL ? "internal error (the fake's)"
                           : "invalid argument or usage (the fake's)";
}
