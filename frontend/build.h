/* `aotgrad build`: a model to a standalone executable (the default), or to an object file,
 * a header, LLVM IR, assembly and the final text IR. */
#ifndef AG_FRONTEND_BUILD_H
#define AG_FRONTEND_BUILD_H

#include <stdbool.h>

enum {
    FE_EMIT_OBJ = 1 << 0, /* OUT.o */
    FE_EMIT_H = 1 << 1,   /* OUT.h */
    FE_EMIT_LL = 1 << 2,  /* OUT.ll */
    FE_EMIT_S = 1 << 3,   /* OUT.s */
    FE_EMIT_IR = 1 << 4,  /* OUT.ir: the train step after the pipeline (without training: the eval graph) */
    FE_EMIT_EXE = 1 << 5, /* OUT: the standalone binary (runtime/binary.c's commands) */
    FE_EMIT_CU = 1 << 6,  /* OUT.cu: the CUDA C of both entry points (codegen/cuda/render.c) */
    FE_EMIT_PTX = 1 << 7, /* OUT.ptx: that source through NVRTC, for --cuda-arch */
};

typedef struct fe_build_opts {
    const char *out;             /* the output path, without extension */
    unsigned emit;               /* FE_EMIT_ flags */
    bool time;                   /* print where the build's time went */
    const char *cuda_arch;       /* NULL: sm_90 */
    bool cuda;                   /* --target cpu,cuda: the binary carries CUDA kernels too */
    const char *const *settings; /* --set NAME=VALUE, NULL-ended */
    int64_t batch;               /* --batch: the plan's batch; 0: the declared one (1 without training) */
    const char *dump_dir;        /* --dump-dir: every stage as a file there (frontend/dump.c), or NULL */
    int64_t bucket_bytes; /* --distributed mpi: the gradient buckets' size (passes/distribute.c); 0: one process */
    bool nccl;            /* --distributed nccl or mpi,nccl: the GPU's buckets summed by NCCL (needs cuda) */
    bool mpi;             /* --distributed mpi or mpi,nccl: MPI linked (the CPU's sums; NCCL's id) */
} fe_build_opts;

/* Returns the exit status; errors go to stderr. */
int fe_build(const char *path, const fe_build_opts *o);

#endif
