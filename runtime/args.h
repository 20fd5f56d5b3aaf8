/* The contract between generated code and what calls it: the argument structs of every
 * entry point, defined once, here. Each is a list of fields (an X-macro), which makes the C
 * struct below, the struct the generated header (codegen/header.c) prints for a C caller,
 * and the device struct the CUDA source (codegen/cuda/render.c) declares; the LLVM backend
 * builds the same layout (codegen/llvm/emit.c, checked against these offsets by its tests).
 * The _Static_asserts pin the layout those copies rely on (x86-64 and the GPU alike: 8-byte
 * pointers and 64-bit integers aligned to 8). */
#ifndef AG_RUNTIME_ARGS_H
#define AG_RUNTIME_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* The largest batch N an entry point runs at: its code is correct for any N from 1 to this. */
#define AG_MAX_BATCH ((int64_t)1 << 24)

/* X(type, name, what) for each field of ag_args, in order */
#define AG_ARGS_FIELDS(X)                                                                           \
    X(char *, arena, "the arena, 64-byte aligned")                                                  \
    X(char *, params, "the parameters, at the offsets the program laid them out")                   \
    X(void *const *, inputs, "the entry point's inputs, in its order")                              \
    X(void *const *, outputs, "unused: outputs stay in the arena or the parameters")                \
    X(int64_t, batch, "N, the rows of this batch: 1 to AG_MAX_BATCH, the arena sized for it")       \
    X(uint32_t, seed, "dropout's seed")                                                             \
    X(uint64_t, step, "dropout's step counter")                                                     \
    X(void *, pool, "an rt_pool * to split loops over threads, or NULL: one thread")                \
    X(void *, profile, "an rt_profile * timed after each step (rt_profile_mark; bench), or NULL")   \
    X(int64_t, row0, "the batch's first row in the global batch (a rank's share): dropout's masks") \
    X(void *, dist, "an rt_dist * that sums gradients over the ranks (runtime/dist.h), or NULL: one process")

#define AG_FIELD_(type, name, what) type name;

#ifndef AG_ARGS_DEFINED /* the generated header defines it too, from this list */
#define AG_ARGS_DEFINED
/* The arguments of every entry point on the CPU: void NAME(const ag_args *a). */
typedef struct ag_args {
    AG_ARGS_FIELDS(AG_FIELD_)
} ag_args;
#endif

_Static_assert(offsetof(ag_args, batch) == 32 && offsetof(ag_args, seed) == 40 && offsetof(ag_args, step) == 48 &&
                   offsetof(ag_args, pool) == 56 && offsetof(ag_args, profile) == 64 && offsetof(ag_args, row0) == 72 &&
                   offsetof(ag_args, dist) == 80 && sizeof(ag_args) == 88,
               "ag_args: the layout the LLVM backend builds (cg_args_type) and the header prints");

/* The arguments of every CUDA kernel (by value): X(device type, host type, name, dims, what),
 * dims empty or [8]. The host holds device pointers as 64-bit integers. */
#define AG_DEV_ARGS_FIELDS(X)                                                                                   \
    X(char *, uint64_t, arena, , "the arena")                                                                   \
    X(char *, uint64_t, params, , "the parameters")                                                             \
    X(char *, uint64_t, inputs, [8], "the entry point's inputs, in its order")                                  \
    X(char *, uint64_t, outputs, [8], "unused: outputs stay in the arena or the parameters")                    \
    X(long long, int64_t, N, , "the rows of this batch")                                                        \
    X(unsigned int, uint32_t, seed, , "dropout's seed")                                                         \
    X(unsigned long long, uint64_t, step, , "dropout's step counter")                                           \
    X(const unsigned long long *, uint64_t, pstep, , "when set, the step is read here (a replayed CUDA graph)") \
    X(char *, uint64_t, scratch, , "the plan's scratch_bytes, its counters zero before a launch (and after)")   \
    X(long long, int64_t, row0, , "the batch's first row in the global batch (a rank's share): dropout's masks")

#define AG_DEV_FIELD_HOST_(dtype, htype, name, dims, what) htype name dims;

/* ag_dev_args as the host fills it (runtime/cuda.c) */
typedef struct ag_dev_args_host {
    AG_DEV_ARGS_FIELDS(AG_DEV_FIELD_HOST_)
} ag_dev_args_host;

_Static_assert(offsetof(ag_dev_args_host, N) == 144 && offsetof(ag_dev_args_host, seed) == 152 &&
                   offsetof(ag_dev_args_host, step) == 160 && offsetof(ag_dev_args_host, scratch) == 176 &&
                   offsetof(ag_dev_args_host, row0) == 184 && sizeof(ag_dev_args_host) == 192,
               "ag_dev_args: the layout the device struct has (the CUDA source's, from the same list)");

#endif
