/* A stand-in for NCCL (libnccl.so.2) for the tests' fake GPUs (tests/cuda/fake_libcuda.cpp,
 * whose device memory is host memory): a binary built with --distributed nccl or mpi,nccl is
 * pointed at it with AOTGRAD_LIBNCCL and run under mpirun. Its collectives are MPI's over
 * the job's ranks (joining MPI itself where the binary has not: a --distributed nccl binary
 * links no MPI), in the stream's order: the fake driver's fake_host_call runs each now, or at
 * each replay of the graph being captured, as NCCL's kernels would be. Only the calls
 * runtime/cuda.c and runtime/dist_nccl.c make are here, each checking what it can: in place,
 * the types and ops they use, a communicator of the job's size. AOTGRAD_FAKE_NCCL_FAIL=init
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

typedef enum { SUM, BROADCAST, GATHER } kind;

typedef struct call_args {
    kind op;
    void *data;
    int count;
    MPI_Datatype type;
} call_args;

static void call_now(void *p)
{
    const call_args *a = p;
    if (a->op == SUM)
        MPI_Allreduce(MPI_IN_PLACE, a->data, a->count, a->type, MPI_SUM, MPI_COMM_WORLD);
    else if (a->op == BROADCAST)
        MPI_Bcast(a->data, a->count, a->type, 0, MPI_COMM_WORLD);
    else
        MPI_Allgather(MPI_IN_PLACE, a->count, a->type, a->data, a->count, a->type, MPI_COMM_WORLD);
}

/* a in the stream's order (the fake driver the binary loaded) */
static int enqueue(const call_args *a)
{
    static int (*host_call)(void (*)(void *), const void *, size_t);
    if (!host_call) {
        const char *path = getenv("AOTGRAD_LIBCUDA");
        void *h = path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
        *(void **)&host_call = h ? dlsym(h, "fake_host_call") : NULL;
        if (!host_call)
            return INTERNAL;
    }
    return host_call(call_now, a, sizeof *a) == 0 ? OK : INTERNAL;
}

/* NCCL's type codes: ncclInt8 0, ncclUint64 5, ncclFloat32 7, ncclFloat64 8 */
static MPI_Datatype type_of(int dtype)
{
    return dtype == 0 ? MPI_BYTE : dtype == 5 ? MPI_UINT64_T : dtype == 7 ? MPI_FLOAT : dtype == 8 ? MPI_DOUBLE : 0;
}

static void finalize(void) { MPI_Finalize(); }

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
    if (!up && (MPI_Init(NULL, NULL) != MPI_SUCCESS || atexit(finalize) != 0)) /* a binary without MPI */
        return INTERNAL;
    if (fail && strcmp(fail, "init") == 0)
        return INTERNAL;
    if (strncmp(id.internal, "fake nccl id", 12) != 0)
        return INVALID_USAGE;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != nranks || rank < 0 || rank >= nranks || !(*comm = malloc(sizeof **comm)))
        return INVALID_ARGUMENT;
    (*comm)->rank = rank, (*comm)->size = nranks;
    return OK;
}

API ncclAllReduce(const void *send, void *recv, size_t count, int dtype, int op, struct ncclComm *comm, void *stream)
{
    if (send != recv || !type_of(dtype) || op != 0 || !comm || !stream || count > 2147483647u)
        return INVALID_ARGUMENT;
    call_args a = {SUM, recv, (int)count, type_of(dtype)};
    return enqueue(&a);
}

API ncclBroadcast(const void *send, void *recv, size_t count, int dtype, int root, struct ncclComm *comm, void *stream)
{
    if (send != recv || !type_of(dtype) || root != 0 || !comm || !stream || count > 2147483647u)
        return INVALID_ARGUMENT;
    call_args a = {BROADCAST, recv, (int)count, type_of(dtype)};
    return enqueue(&a);
}

/* in place: send is this rank's place in recv */
API ncclAllGather(const void *send, void *recv, size_t count, int dtype, struct ncclComm *comm, void *stream)
{
    int size = 0;
    if (type_of(dtype))
        MPI_Type_size(type_of(dtype), &size);
    if (!size || !comm || !stream || count > 2147483647u ||
        (const char *)send != (char *)recv + (size_t)comm->rank * count * (size_t)size)
        return INVALID_ARGUMENT;
    call_args a = {GATHER, recv, (int)count, type_of(dtype)};
    return enqueue(&a);
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
