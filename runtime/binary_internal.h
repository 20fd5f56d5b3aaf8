/* What the standalone binary's files share (binary.c, binary_train.c, binary_eval.c,
 * binary_bench.c): the model in memory, the options of a command line, and the commands.
 * Internal to the runtime: the generated source sees only compiled.h's rt_binary_main. */
#ifndef AG_RUNTIME_BINARY_INTERNAL_H
#define AG_RUNTIME_BINARY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "compiled.h"
#include "cuda.h"
#include "data.h"
#include "pool.h"
#include "profile.h"
#include "train.h"

/* ---- the model in memory (binary.c) ---- */

typedef struct bin {
    const rt_compiled *m;
    char *params, *train_arena, *fwd_arena;
    rt_param *rp;
    rt_pool *pool;
    float scalar[AG_ROLE_COUNT]; /* the runtime scalars the entry points take, by role: lr, wd, ... */
    ag_dtype data_x;             /* the dataset's feature dtype, converted to the model's where they differ */
    int64_t rows;                /* the most rows a call takes: the arenas are sized for them */
    void *x_conv;                /* rows rows in the model's dtype */
    rt_profile *profile;
    rt_cuda *gpu;     /* training and evaluation on the GPU, or NULL: the CPU */
    rt_dist *dist;    /* data-parallel training (a --distributed build under mpirun), or NULL */
    bool check_ranks; /* train --check-ranks: the parameters compared over the ranks after every step */
    bool refused;     /* the ranks found at start-up that they differ: each ends by itself */
    uint64_t updates; /* the split step's updates so far (--check-ranks' messages) */
} bin;

/* bytes zeroed, 64-aligned (free with free), or NULL */
void *rt_bin_aligned(size_t bytes);
/* the model with arenas for calls of up to rows rows (any count: the plan holds for every N) */
bool rt_bin_open(bin *b, const rt_compiled *m, int threads, int64_t rows, char *err, size_t len);
/* the CPU arenas for calls of up to rows rows instead (before the GPU is chosen) */
bool rt_bin_set_rows(bin *b, int64_t rows, char *err, size_t len);
void rt_bin_close(bin *b);
/* the model's initial parameters for a seed: the interpreter's (aotgrad run) as well */
bool rt_bin_init_params(bin *b, uint32_t seed, char *err, size_t len);
/* One call of an entry point on a batch: loss and metrics into rb. */
void rt_bin_run_entry(bin *b, const rt_compiled_entry *e, char *arena, rt_batch *rb, void *profile);
/* the batch's features in the model's dtype */
const void *rt_bin_model_x(bin *b, const rt_batch *rb, ag_dtype want);
/* the model as the training loop calls it: on the GPU where b has one */
rt_model rt_bin_as_model(bin *b);
/* the parameters of a checkpoint, every one of them, into the model */
bool rt_bin_load_checkpoint(bin *b, const char *path, rt_ckpt *c, int *nmissing, const char **first_missing, char *err,
                            size_t len); /* the optimizer's state may be missing: zeroed, counted (run_state.h) */

/* ---- command lines (binary.c) ---- */

typedef struct opts {
    const char *data, *save, *resume, *metrics, *plot, *weights, *input, *device;
    const char *label;     /* --label-column: a CSV's label column (from 1, or a header name), or NULL: the last */
    const char *inputs[8]; /* predict's INPUT files, in order (input: the first) */
    int ninputs;
    int64_t epochs, batch, steps, random; /* random: predict --random N (a forward computation's) */
    int64_t top;                          /* predict --top K: the K likeliest classes (0: the class) */
    double lr, wd;
    uint32_t seed;
    int threads;
    bool has_seed, has_lr, has_wd, has_batch;
    rt_schedule schedule; /* --lr-schedule ... (train) */
    bool has_schedule;    /* any of its options given */
    int64_t accumulate;   /* --accumulate K (train; 0: not given) */
    double clip_norm;     /* --clip-norm X (train; 0: not given) */
    bool has_accumulate, has_clip_norm;
    double timeout;      /* train --timeout S: how long a rank waits for the others' sums (a --distributed build) */
    bool check_ranks;    /* train --check-ranks */
    const char *nccl_id; /* train --nccl-id FILE: where a --distributed nccl build's ranks meet */
    bool has_threads;    /* --threads given */
} opts;

/* "MODEL: error: ERR" on stderr; returns 1, the exit status */
int rt_bin_fail(const rt_compiled *m, const char *err);
/* the datasets, with the features converted to the model's dtype batch by batch */
bool rt_bin_load_data(bin *b, const char *spec, const char *label, rt_dataset *train, rt_dataset *test, char *err,
                      size_t len);
/* --device: the GPU or the CPU */
bool rt_bin_choose_device(bin *b, const opts *o, char *err, size_t len);

/* ---- the commands: each returns the exit status ---- */

int rt_bin_train(const rt_compiled *m, const opts *o);   /* binary_train.c */
int rt_bin_eval(const rt_compiled *m, const opts *o);    /* binary_eval.c */
int rt_bin_predict(const rt_compiled *m, const opts *o); /* binary_eval.c */
int rt_bin_bench(const rt_compiled *m, const opts *o);   /* binary_bench.c */

/* ---- a forward computation (binary_forward.c) ---- */

/* One call of entry e on inputs in (in e's order) at batch n. */
void rt_bin_call(bin *b, const rt_compiled_entry *e, char *arena, void *const *in, int64_t n, uint64_t step,
                 void *profile);
/* Seeded random values for each input of e at batch n, in[k] (free each): f32 in [-1, 1),
 * i32 0..9, u8 0..255, bool 0 or 1. */
bool rt_bin_random_inputs(const rt_compiled_entry *e, int64_t n, uint32_t seed, void **in, char *err, size_t len);
/* predict of a forward computation: every output of each sample of the inputs. */
int rt_bin_predict_forward(const rt_compiled *m, const opts *o);

#endif
