/* The standalone binary's commands: `aotgrad build MODEL.c -o OUT` links the generated entry
 * points and their tables (runtime/compiled.h) with this, and OUT train | eval | predict |
 * bench run the model with no aotgrad, LLVM or compiler around. The training loop, data
 * loaders and checkpoints are the runtime's, shared with `aotgrad run`.
 *
 * This file: the model in memory, the command lines, main. The commands: binary_train.c
 * (train, with --resume), binary_eval.c (eval, predict), binary_bench.c (bench); what they
 * share is in binary_internal.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aotgrad_runtime.h"
#include "binary_internal.h"
#include "cuda.h"
#include "fail.h"
#include "init.h"
#include "options.h"
#include "run_state.h"

void *rt_bin_aligned(size_t bytes)
{
    void *p = NULL;
    if (bytes > SIZE_MAX - 63) /* rt_array_bytes' SIZE_MAX: too large, not rounded up to 0 */
        return NULL;
    return posix_memalign(&p, 64, bytes ? (bytes + 63) / 64 * 64 : 64) == 0 ? memset(p, 0, bytes ? bytes : 1) : NULL;
}

/* ---- the model in memory ---- */

static int64_t param_numel(const rt_compiled_param *p) { return rt_param_numel(p); }

bool rt_bin_set_rows(bin *b, int64_t rows, char *err, size_t len)
{
    const rt_compiled *m = b->m;
    free(b->train_arena);
    free(b->fwd_arena);
    free(b->x_conv);
    b->train_arena = b->fwd_arena = b->x_conv = NULL;
    b->rows = rows;
    /* the train arena serves the split step's entry points too */
    int64_t train_bytes = 0, fwd_bytes = rt_arena_bytes(m->forward.arena, m->forward.narena, rows);
    const rt_compiled_entry *const steps[] = {&m->train, &m->accumulate, &m->apply};
    for (int k = 0; m->trains && k < 3; k++) {
        int64_t at = steps[k]->fn ? rt_arena_bytes(steps[k]->arena, steps[k]->narena, rows) : 0;
        train_bytes = at < 0 || train_bytes < 0 ? -1 : at > train_bytes ? at : train_bytes;
    }
    if (train_bytes < 0 || fwd_bytes < 0 || (uint64_t)(train_bytes > fwd_bytes ? train_bytes : fwd_bytes) > SIZE_MAX)
        return rt_fail(err, len, "a batch of %lld rows needs more than 2^62 bytes", (long long)rows);
    b->train_arena = rt_bin_aligned((size_t)train_bytes);
    b->fwd_arena = rt_bin_aligned((size_t)fwd_bytes);
    b->x_conv = rt_bin_aligned(rt_array_bytes(rows, m->features, 4));
    if (!b->train_arena || !b->fwd_arena || !b->x_conv)
        return rt_fail(err, len, "out of memory for batches of %lld rows (arenas of %lld and %lld bytes)",
                       (long long)rows, (long long)train_bytes, (long long)fwd_bytes);
    return true;
}

bool rt_bin_open(bin *b, const rt_compiled *m, int threads, int64_t rows, char *err, size_t len)
{
    memset(b, 0, sizeof *b);
    b->m = m;
    b->params = rt_bin_aligned((size_t)m->param_bytes);
    b->rp = calloc((size_t)(m->nparams ? m->nparams : 1), sizeof *b->rp);
    if (!b->params || !b->rp)
        return rt_fail(err, len, "out of memory");
    if (!rt_bin_set_rows(b, rows, err, len))
        return false;
    for (int k = 0; k < m->nparams; k++) {
        const rt_compiled_param *p = &m->params[k];
        b->rp[k] = (rt_param){p->name, p->rank, {0}, (float *)(b->params + p->offset), p->state};
        memcpy(b->rp[k].dims, p->dims, sizeof p->dims);
    }
    if (threads > 1 && !(b->pool = rt_pool_new(threads)))
        return rt_fail(err, len, "cannot start %d threads", threads);
    rt_pool_bind_blas(b->pool); /* OpenBLAS takes the same count: the two never compute at once */
    b->data_x = m->train.x_dtype;
    b->scalar[AG_ROLE_SHARE] = 1; /* one process: its gradient is the whole batch's */
    return true;
}

void rt_bin_close(bin *b)
{
    free(b->params);
    free(b->train_arena);
    free(b->fwd_arena);
    free(b->rp);
    free(b->x_conv);
    rt_pool_free(b->pool);
    rt_profile_free(b->profile);
    rt_cuda_close(b->gpu);
}

/* the model's initial parameters for a seed: the interpreter's (aotgrad run) as well */
bool rt_bin_init_params(bin *b, uint32_t seed, char *err, size_t len)
{
    (void)err, (void)len;
    for (int k = 0; k < b->m->nparams; k++) { /* as NAME_init of a generated header does */
        const rt_compiled_param *p = &b->m->params[k];
        rt_init_param(b->rp[k].data, p->rank, p->dims, p->init, seed, (uint32_t)k + 1);
    }
    return true;
}

static double read_value(const bin *b, const char *arena, const rt_compiled_value *v, int64_t rows)
{
    return rt_elem_get((v->in_params ? b->params : arena) + rt_value_offset(v, rows), v->dtype, 0);
}

/* One call of an entry point on a batch: loss and metrics into rb. */
void rt_bin_run_entry(bin *b, const rt_compiled_entry *e, char *arena, rt_batch *rb, void *profile)
{
    const void *x = rb->x;
    if (x && b->data_x != e->x_dtype) { /* (apply takes no batch) */
        for (int64_t i = 0, n = rb->n * b->m->features; i < n; i++)
            rt_elem_set(b->x_conv, e->x_dtype, i, rt_elem_get(rb->x, b->data_x, i));
        x = b->x_conv;
    }
    void *in[8];
    for (int k = 0; k < e->ninputs; k++) /* the runtime scalars are in scalar[] by role */
        in[k] = e->inputs[k] == AG_ROLE_DATA     ? (void *)x
                : e->inputs[k] == AG_ROLE_LABELS ? (void *)rb->y
                                                 : (void *)&b->scalar[e->inputs[k]];
    ag_args a = {arena,
                 b->params,
                 in,
                 NULL,
                 rb->n,
                 rb->seed,
                 rb->step,
                 b->pool,
                 profile,
                 rb->row0,
                 b->dist && b->dist->size > 1 ? b->dist : NULL}; /* one rank: nothing to sum */
    e->fn(&a);
    for (int k = 0; k < e->ncopies; k++) { /* the updates that are not in place */
        const rt_compiled_copy *c = &e->copies[k];
        memcpy(b->params + c->to, arena + c->from + c->from_n * rb->n, (size_t)c->bytes);
    }
    if (!e->loss.name)
        return; /* apply: updates alone */
    rb->loss = read_value(b, arena, &e->loss, rb->n);
    for (int k = 0; k < e->nmetrics && k < RT_MAX_METRICS; k++)
        rb->metric[k] = read_value(b, arena, &e->metrics[k], rb->n);
}

/* --check-ranks: every rank's parameters the same as rank 0's after an update */
static bool same_params(bin *b, const char *after, uint64_t n, char *err, size_t len)
{
    int differs = -1;
    if (b->check_ranks && b->dist &&
        !b->dist->ops->same(b->dist, rt_hash_bytes(RT_HASH_START, b->params, (size_t)b->m->param_bytes), &differs))
        return rt_fail(err, len, "--check-ranks: after %s %llu the parameters of rank %d differ from rank 0's", after,
                       (unsigned long long)n, differs);
    return true;
}

static bool train_step(void *ctx, rt_batch *rb, char *err, size_t len)
{
    bin *b = ctx;
    b->scalar[AG_ROLE_LR] = (float)rb->lr, b->scalar[AG_ROLE_WD] = (float)rb->wd;
    b->scalar[AG_ROLE_SHARE] = (float)rt_batch_share(rb);
    rt_bin_run_entry(b, &b->m->train, b->train_arena, rb, b->profile);
    for (int k = 0; k < b->m->nparams; k++) { /* the updates that are not in place */
        const rt_compiled_param *p = &b->m->params[k];
        if (p->next_offset >= 0)
            memcpy(b->params + p->offset, b->train_arena + p->next_offset + p->next_offset_n * rb->n,
                   sizeof(float) * (size_t)param_numel(p));
    }
    return same_params(b, "step", rb->step, err, len);
}

/* The split step: a micro-batch's gradients into the accumulators, weighted by its rows */
static bool accumulate(void *ctx, rt_batch *rb, char *err, size_t len)
{
    (void)err, (void)len;
    bin *b = ctx;
    b->scalar[AG_ROLE_GRAD_WEIGHT] = rb->idle ? 0 : (float)rb->n; /* a rank with no row adds nothing */
    rt_bin_run_entry(b, &b->m->accumulate, b->train_arena, rb, b->profile);
    return true;
}

/* and the update from them, which then start again from zero */
static bool apply(void *ctx, const rt_apply *u, char *err, size_t len)
{
    bin *b = ctx;
    if (b->dist && b->dist->size > 1) /* every rank's accumulated gradients; u->rows are the global batches' */
        b->dist->ops->sum_floats(b->dist, (float *)(b->params + b->m->accum_offset), b->m->accum_bytes / 4);
    b->scalar[AG_ROLE_LR] = (float)u->lr, b->scalar[AG_ROLE_WD] = (float)u->wd;
    b->scalar[AG_ROLE_GRAD_SCALE] = (float)(1.0 / (double)u->rows);
    b->scalar[AG_ROLE_CLIP_NORM] = (float)u->clip_norm;
    rt_batch none = {.n = 1};
    rt_bin_run_entry(b, &b->m->apply, b->train_arena, &none, b->profile);
    memset(b->params + b->m->accum_offset, 0, (size_t)b->m->accum_bytes);
    return same_params(b, "update", ++b->updates, err, len);
}

static bool evaluate(void *ctx, rt_batch *rb, char *err, size_t len)
{
    (void)err, (void)len;
    bin *b = ctx;
    rt_bin_run_entry(b, &b->m->forward, b->fwd_arena, rb, NULL);
    return true;
}

/* the batch's features in the model's dtype */
const void *rt_bin_model_x(bin *b, const rt_batch *rb, ag_dtype want)
{
    if (b->data_x == want)
        return rb->x;
    for (int64_t i = 0, n = rb->n * b->m->features; i < n; i++)
        rt_elem_set(b->x_conv, want, i, rt_elem_get(rb->x, b->data_x, i));
    return b->x_conv;
}

static bool gpu_evaluate(void *ctx, rt_batch *rb, char *err, size_t len)
{
    bin *b = ctx;
    rt_batch d = *rb;
    d.x = rt_bin_model_x(b, rb, b->m->forward.x_dtype);
    if (!rt_cuda_forward(b->gpu, &d, NULL, err, len))
        return false;
    rb->loss = d.loss;
    memcpy(rb->metric, d.metric, sizeof rb->metric);
    return true;
}

static bool gpu_train_epoch(void *ctx, const int64_t *perm, int64_t n, const rt_fit *f, int64_t epoch,
                            uint64_t first_step, double *loss_sum, double *metric_sum, int64_t *bad_step, char *err,
                            size_t len)
{
    bin *b = ctx;
    return rt_cuda_train_epoch(b->gpu, perm, n, f, epoch, first_step, loss_sum, metric_sum, bad_step, err, len) &&
           (!b->check_ranks || !b->dist || rt_cuda_get_params(b->gpu, b->params, err, len)) &&
           same_params(b, "epoch", (uint64_t)epoch, err, len); /* the device's, once an epoch */
}

rt_model rt_bin_as_model(bin *b)
{
    rt_model rm = {.name = b->m->name,
                   .ctx = b,
                   .train_step = train_step,
                   .evaluate = evaluate,
                   .nmetrics = b->m->train.nmetrics,
                   .nparams = b->m->nparams,
                   .params = b->rp};
    if (b->m->accumulate.fn)
        rm.accumulate = accumulate, rm.apply = apply;
    if (b->gpu)
        rm.evaluate = gpu_evaluate, rm.train_epoch = gpu_train_epoch;
    for (int k = 0; k < rm.nmetrics && k < RT_MAX_METRICS; k++)
        rm.metrics[k] = b->m->train.metrics[k].name;
    return rm;
}

/* ---- parameters from a checkpoint: eval's, predict's and train --resume's ---- */

/* Loads FILE and reads its parameters into the model (rt_run_read_params: every tensor by
 * name, dtype and shape, no tensor the model lacks, the optimizer's state zeroed where it is
 * missing); the caller reads the training state from c where it resumes. */
bool rt_bin_load_checkpoint(bin *b, const char *path, rt_ckpt *c, int *nmissing, const char **first_missing, char *err,
                            size_t len)
{
    const rt_compiled *m = b->m;
    if (!rt_ckpt_load(path, c, err, len))
        return false;
    rt_model rm = rt_bin_as_model(b);
    return rt_run_read_params(c, path, &rm, m->options, nmissing, first_missing, err, len);
}

/* ---- command lines ---- */

static const struct command {
    const char *name, *args, *what, *options;
} commands[] = {
    {"train",
     "[--data DIR|FILE] [--label-column C] [--epochs N] [--batch N] [--lr X] [--wd X] [--seed S] [--threads N]\n"
     "        [--device cpu|cuda] [--save FILE] [--resume FILE] [--metrics FILE.csv] [--plot FILE.svg]\n"
     "        [--lr-schedule S] [--warmup-steps W] [--lr-step-epochs K] [--lr-gamma G] [--lr-min M]\n"
     "        [--accumulate K] [--clip-norm X] [--timeout S] [--check-ranks] [--nccl-id FILE]",
     "Trains the model from its initial parameters (or a checkpoint), printing one line per epoch:\n"
     "train loss, train accuracy, test accuracy, seconds, samples/s.",
     "  --data SPEC      the dataset: a folder of IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]),\n"
     "                   TRAIN.csv[,TEST.csv] (each row the features, then the label last; a header line\n"
     "                   allowed), fashion-mnist, or a synthetic-linear spec (default: the model's)\n"
     "  --label-column C a CSV's label in column C (a number from 1, or a name of its header line)\n"
     "                   in place of the last\n"
     "  --epochs N       train until epoch N (default: the model's)\n"
     "  --batch N        minibatch size, 1 to 16777216: the memory plan holds for any (default: the model's)\n"
     "  --lr X, --wd X   learning rate and weight decay (default: the model's)\n"
     "  --seed S         seed of the initial parameters, the shuffles and dropout (default 1)\n"
     "  --threads N      threads for the kernels and OpenBLAS (default: the core count)\n"
     "  --device D       cpu or cuda (a binary built with --target cpu,cuda; default: cuda when a GPU\n"
     "                   is there)\n"
     "  --save FILE      write the parameters and training state after every epoch (safetensors)\n"
     "  --resume FILE    continue from a checkpoint written by --save: the same run, bit for bit\n"
     "  --metrics FILE   write the per-epoch figures as CSV\n"
     "  --plot FILE      draw loss and accuracies per epoch as an SVG chart\n"
     "                   (--save, --metrics and --plot replace FILE atomically, so each must be new or a\n"
     "                   regular file, not a symlink, FIFO or device; they are checked before "
     "training)\n" RT_SCHEDULE_HELP RT_SPLIT_HELP
     "  --timeout S      a --distributed build on ranks: the seconds a rank waits for the others' sums\n"
     "                   (or rank 0's --nccl-id file) before it ends the job (a rank died or hangs;\n"
     "                   default 300)\n"
     "  --check-ranks    a --distributed build: compare the parameters of every rank after every step\n"
     "                   (on the GPU, every epoch; a debugging aid: they are the same by construction)\n"
     "  --nccl-id FILE   a --distributed nccl build on ranks: where rank 0 writes NCCL's id for the others\n"
     "                   (a new path every rank sees; default $AOTGRAD_NCCL_ID)\n"},
    {"eval", "--weights FILE [--data DIR|FILE] [--label-column C] [--batch N] [--threads N] [--device cpu|cuda]",
     "Loss and accuracy of the parameters in FILE on the test set: the dataset's, or the one file --data\n"
     "names (a CSV of feature rows, the label last); the training set where the data has no test set.",
     "  --weights FILE   a safetensors checkpoint holding every parameter of the model\n"
     "  --data SPEC      the dataset (default: the model's)\n"
     "  --label-column C a CSV's label in column C (from 1, or a header name) in place of the last\n"
     "  --batch N        samples a call, 1 to 16777216 (default: the model's batch)\n"
     "  --threads N      threads (default: the core count)\n"
     "  --device D       cpu or cuda (default: cuda when the binary has it and a GPU is there)\n"},
    {"predict", "--weights FILE INPUT [--top K] [--batch N] [--threads N] [--device cpu|cuda]",
     "One prediction a line for each sample of INPUT: an IDX image file (gzipped or not), a CSV of\n"
     "feature rows, or one PNG or PGM image (grey by luminance, resized bilinearly to the model's\n"
     "square input, e.g. 28 x 28, as pixels 0..255; not inverted: Fashion-MNIST is light on dark).\n"
     "It prints the class name where the dataset has names, else the class or the value.",
     "  --weights FILE   a safetensors checkpoint holding every parameter of the model\n"
     "  --top K          the K likeliest classes, each with its probability (the softmax of the\n"
     "                   model's scores): Ankle boot 0.912  Sandal 0.051  Sneaker 0.030\n"
     "  --batch N        samples a call, 1 to 16777216 (default: the model's batch)\n"
     "  --threads N      threads (default: the core count)\n"
     "  --device D       cpu or cuda (default: cuda when the binary has it and a GPU is there)\n"},
    {"bench", "[--steps N] [--batch N] [--threads N] [--device cpu|cuda]",
     "Times the train step at the model's batch (or --batch) on random data, and each of its kernels: time share,\n"
     "GB/s or GFLOP/s, and on the CPU the fraction of this machine's memcpy bandwidth or sgemm rate\n"
     "(measured first). On a GPU the step is the replayed CUDA graph that training runs (batch gathered\n"
     "on the device, kernels, sums), and the kernels are timed one by one with CUDA events.",
     "  --steps N        train steps timed (default 100)\n"
     "  --batch N        rows a step, 1 to 16777216 (default: the model's batch)\n"
     "  --threads N      threads (default: the core count)\n"
     "  --device D       cpu or cuda (default: cuda when the binary has it and a GPU is there)\n"},
};

/* The commands of a forward computation (a graph without training): no train step, so no
 * train or eval; predict prints every output; bench times the forward pass. */
static const struct command forward_commands[] = {
    {"predict", "[INPUT... | --random N] [--weights FILE] [--batch N] [--seed S] [--threads N]",
     "Every output of the graph for each sample of its inputs: one INPUT file an input, in the model's\n"
     "order (an IDX file, gzipped or not, or a CSV of rows of the input's elements per sample), or N\n"
     "samples of seeded random values (f32 in [-1, 1), i32 0..9, u8 0..255, bool 0 or 1). Outputs\n"
     "without the batch axis come first, as '# NAME = VALUES'; then a '# NAME[ELEMENTS] | ...' line and\n"
     "one line a sample, each output's values, outputs separated by ' | '.",
     "  --random N       N samples of random inputs instead of files\n"
     "  --weights FILE   a safetensors checkpoint holding every parameter (default: the initializers)\n"
     "  --batch N        samples a call, 1 to 16777216 (default: the model's batch)\n"
     "  --seed S         seed of the random inputs and of the initial parameters (default 1)\n"
     "  --threads N      threads (default: the core count)\n"},
    {"bench", "[--steps N] [--batch N] [--threads N]",
     "Times the forward pass at the model's batch (or --batch) on random inputs, and each of its kernels: time share,\n"
     "GB/s or GFLOP/s, and the fraction of this machine's memcpy bandwidth or sgemm rate (measured first).",
     "  --steps N        forward passes timed (default 100)\n"
     "  --batch N        rows a pass, 1 to 16777216 (default: the model's batch)\n"
     "  --threads N      threads (default: the core count)\n"},
};

/* Every option of the commands, all taking a value but --check-ranks; a command takes those
 * its args line lists ("--name" at its start or after "[" or a space, and before a space or
 * "]"). */
enum {
    O_DATA = 256,
    O_SAVE,
    O_RESUME,
    O_METRICS,
    O_PLOT,
    O_WEIGHTS,
    O_DEVICE,
    O_EPOCHS,
    O_BATCH,
    O_STEPS,
    O_LABEL,
    O_TOP,
    O_RANDOM,
    O_THREADS,
    O_SEED,
    O_LR,
    O_WD,
    O_ACCUMULATE,
    O_CLIP_NORM,
    O_TIMEOUT,
    O_CHECK_RANKS,
    O_NCCL_ID,
    O_SCHEDULE /* .. O_SCHEDULE + 4: RT_SCHEDULE_OPTIONS */
};
static const struct option options[] = {
    {"data", required_argument, NULL, O_DATA},
    {"save", required_argument, NULL, O_SAVE},
    {"resume", required_argument, NULL, O_RESUME},
    {"metrics", required_argument, NULL, O_METRICS},
    {"plot", required_argument, NULL, O_PLOT},
    {"weights", required_argument, NULL, O_WEIGHTS},
    {"device", required_argument, NULL, O_DEVICE},
    {"epochs", required_argument, NULL, O_EPOCHS},
    {"batch", required_argument, NULL, O_BATCH},
    {"steps", required_argument, NULL, O_STEPS},
    {"label-column", required_argument, NULL, O_LABEL},
    {"top", required_argument, NULL, O_TOP},
    {"random", required_argument, NULL, O_RANDOM},
    {"threads", required_argument, NULL, O_THREADS},
    {"seed", required_argument, NULL, O_SEED},
    {"lr", required_argument, NULL, O_LR},
    {"wd", required_argument, NULL, O_WD},
    {"accumulate", required_argument, NULL, O_ACCUMULATE},
    {"clip-norm", required_argument, NULL, O_CLIP_NORM},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"check-ranks", no_argument, NULL, O_CHECK_RANKS},
    {"nccl-id", required_argument, NULL, O_NCCL_ID},
    RT_SCHEDULE_OPTIONS(O_SCHEDULE),
};

static bool lists_option(const char *args, const char *name)
{
    char want[48];
    snprintf(want, sizeof want, "--%s", name);
    for (const char *at = strstr(args, want); at; at = strstr(at + 1, want))
        if ((at == args || at[-1] == '[' || at[-1] == ' ') && (at[strlen(want)] == ' ' || at[strlen(want)] == ']'))
            return true;
    return false;
}

static const struct command *find_command(const rt_compiled *m, const char *name)
{
    const struct command *c = m->trains ? commands : forward_commands;
    size_t n = m->trains ? sizeof commands / sizeof *commands : sizeof forward_commands / sizeof *forward_commands;
    for (size_t k = 0; k < n; k++)
        if (strcmp(c[k].name, name) == 0)
            return &c[k];
    return NULL;
}

static void command_help(const rt_compiled *m, const struct command *c, FILE *f)
{
    fprintf(f, "usage: %s %s %s\n\n%s\n\noptions:\n%s  --help           this text\n", m->name, c->name, c->args,
            c->what, c->options);
}

static void main_help(const rt_compiled *m, FILE *f)
{
    fprintf(f, "usage: %s COMMAND [OPTIONS]   (%s COMMAND --help for its options)\n", m->name, m->name);
    fprintf(f, "       %s --version       (the aotgrad that compiled it, and its source)\n\n", m->name);
    if (!m->trains) {
        fprintf(f, "The graph %s, compiled by aotgrad from %s.\n", m->name, m->source);
        fprintf(f, "A forward computation: it declares no training.\n\ncommands:\n");
        fprintf(f, "  predict   every output for the samples of input files, or of random inputs\n");
        fprintf(f, "  bench     time the forward pass and each kernel against this machine's ceilings\n\n");
        fprintf(f, "batch %lld a call by default (any from 1 to %lld)\ninputs:", (long long)m->batch,
                (long long)AG_MAX_BATCH);
        for (int k = 0; k < m->forward.ninputs; k++)
            fprintf(f, "%s %s (%lld element%s a sample%s)", k ? "," : "", m->forward.in[k].name,
                    (long long)m->forward.in[k].numel, m->forward.in[k].numel == 1 ? "" : "s",
                    m->forward.in[k].batched ? "" : ", no batch axis");
        fprintf(f, "\noutputs:");
        for (int k = 0; k < m->forward.nouts; k++)
            fprintf(f, "%s %s", k ? "," : "", m->forward.outs[k].name);
        fprintf(f, "\n");
        return;
    }
    fprintf(f, "The model %s, compiled by aotgrad from %s.\n\ncommands:\n", m->name, m->source);
    fprintf(f, "  train     train it, printing one line per epoch; checkpoints, metrics and plots\n");
    fprintf(f, "  eval      loss and accuracy of saved parameters on the test set\n");
    fprintf(f, "  predict   predictions for the samples of a file\n");
    fprintf(f, "  bench     time the train step and each kernel against this machine's ceilings\n\n");
    fprintf(f, "defaults: data %s, batch %lld (any from 1 to %lld), lr %g, wd %g, %lld epochs\n",
            m->data ? m->data : "(none)", (long long)m->batch, (long long)AG_MAX_BATCH, m->lr, m->wd,
            (long long)m->epochs);
    fprintf(f, "parameters:");
    for (int k = 0; k < m->nparams; k++) {
        fprintf(f, "%s %s[", k ? "," : "", m->params[k].name);
        for (int d = 0; d < m->params[k].rank; d++)
            fprintf(f, "%s%lld", d ? "," : "", (long long)m->params[k].dims[d]);
        fprintf(f, "]");
    }
    fprintf(f, "\n");
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *v)
{
    char *e;
    errno = 0;
    long long x = strtoll(s, &e, 10);
    if (e == s || *e || errno || x < lo || x > hi)
        return false;
    *v = x;
    return true;
}

/* lr and wd reach the kernels as f32: a value past FLT_MAX would be infinite there */
static bool parse_real(const char *s, double *v)
{
    char *e;
    errno = 0;
    *v = strtod(s, &e);
    return e != s && !*e && !errno && *v >= 0 && *v <= FLT_MAX;
}

/* The value of option v, into o; false when it is no value the option takes */
static bool take_value(const rt_compiled *m, int v, const char *s, opts *o)
{
    int64_t n;
    switch (v) {
    case O_DATA: o->data = s; return true;
    case O_SAVE: o->save = s; return true;
    case O_RESUME: o->resume = s; return true;
    case O_METRICS: o->metrics = s; return true;
    case O_PLOT: o->plot = s; return true;
    case O_WEIGHTS: o->weights = s; return true;
    case O_LABEL: o->label = s; return true;
    case O_DEVICE: o->device = s; return strcmp(s, "cpu") == 0 || strcmp(s, "cuda") == 0;
    case O_EPOCHS: return parse_int(s, 1, 1000000, &o->epochs);
    case O_BATCH: o->has_batch = true; return parse_int(s, 1, AG_MAX_BATCH, &o->batch);
    case O_STEPS: return parse_int(s, 1, 100000000, &o->steps);
    case O_TOP: return parse_int(s, 1, m->classes > 0 ? m->classes : 1, &o->top);
    case O_RANDOM: return parse_int(s, 1, 100000000, &o->random);
    case O_THREADS:
        if (!parse_int(s, 1, 1024, &n))
            return false;
        o->threads = (int)n, o->has_threads = true;
        return true;
    case O_SEED:
        o->has_seed = true;
        if (!parse_int(s, 0, UINT32_MAX, &n))
            return false;
        o->seed = (uint32_t)n;
        return true;
    case O_LR: o->has_lr = true; return parse_real(s, &o->lr);
    case O_ACCUMULATE: o->has_accumulate = true; return parse_int(s, 1, 1000000, &o->accumulate);
    case O_CLIP_NORM: o->has_clip_norm = true; return parse_real(s, &o->clip_norm) && o->clip_norm > 0;
    case O_TIMEOUT: return parse_real(s, &o->timeout) && o->timeout >= 0.1 && o->timeout <= 1e6;
    case O_CHECK_RANKS: o->check_ranks = true; return true;
    case O_NCCL_ID: o->nccl_id = s; return true;
    default: o->has_wd = true; return parse_real(s, &o->wd);
    }
}

/* What option v takes, for the message when its value is not that */
static const char *takes(const rt_compiled *m, int v, char *buf, size_t len)
{
    switch (v) {
    case O_BATCH: snprintf(buf, len, "a batch size from 1 to %lld", (long long)AG_MAX_BATCH); return buf;
    case O_TOP: snprintf(buf, len, "a count of classes from 1 to %d", m->classes > 0 ? m->classes : 1); return buf;
    case O_SEED: return "a number from 0 to 4294967295";
    case O_DEVICE: return "cpu or cuda";
    case O_LR:
    case O_WD: return "a number from 0 to 3.40282e+38 (a finite f32)";
    case O_CLIP_NORM: return "a number above 0, up to 3.40282e+38 (a finite f32)";
    case O_ACCUMULATE: return "a count of batches from 1 to 1000000";
    case O_TIMEOUT: return "seconds from 0.1 to 1000000";
    default: return "a positive whole number";
    }
}

/* Parses the command's options and operands (argv[0] is the command): -1 on success, else the exit status. */
static int parse(const rt_compiled *m, const struct command *c, int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->steps = 100;
    o->threads = rt_cpu_count();
    o->timeout = 300;
    /* ranks on this machine share its cores (a first guess from mpirun's variable; the train
     * command counts them once it has joined the job) */
    const char *local = m->dist ? getenv("OMPI_COMM_WORLD_LOCAL_SIZE") : NULL;
    if (local && atoi(local) > 1)
        o->threads = o->threads / atoi(local) > 1 ? o->threads / atoi(local) : 1;
    o->schedule = RT_SCHEDULE_DEFAULT;
    struct option mine[sizeof options / sizeof *options + 2];
    int n = 0;
    for (size_t k = 0; k < sizeof options / sizeof *options; k++)
        if (lists_option(c->args, options[k].name))
            mine[n++] = options[k];
    mine[n++] = (struct option){"help", no_argument, NULL, 'h'};
    mine[n] = (struct option){0};
    char who[160];
    snprintf(who, sizeof who, "%s %s", m->name, c->name);
    rt_cli cli;
    rt_cli_start(&cli, who, "h", mine, argc, argv);
    for (int v; (v = rt_cli_next(&cli)) != -1;) {
        if (v == RT_CLI_STOP)
            return cli.status;
        if (v == 'h') {
            command_help(m, c, stdout);
            return 0;
        }
        char buf[80], why[300];
        if (v >= O_SCHEDULE) { /* the schedule's own messages */
            o->has_schedule = true;
            if (!rt_schedule_take(&o->schedule, v - O_SCHEDULE, cli.value, why, sizeof why))
                return rt_cli_error(&cli, "%s", why);
        } else if (!take_value(m, v, cli.value, o))
            return rt_cli_error(&cli, "%s takes %s, not '%s'", cli.name, takes(m, v, buf, sizeof buf), cli.value);
    }
    bool predict = strcmp(c->name, "predict") == 0;
    for (int i = cli.operands; i < cli.argc; i++) {
        if (!predict || o->ninputs == 8)
            return rt_cli_error(&cli, "unexpected argument '%s'", cli.argv[i]);
        o->inputs[o->ninputs++] = cli.argv[i];
    }
    o->input = o->inputs[0];
    if (!m->trains) { /* a forward computation's predict: files or --random (none without inputs) */
        if (predict && o->ninputs && o->random)
            return rt_cli_error(&cli, "takes INPUT files or --random N, not both");
        if (predict && !o->ninputs && !o->random && m->forward.ninputs)
            return rt_cli_error(&cli, "takes INPUT files or --random N");
        return -1;
    }
    if ((strcmp(c->name, "eval") == 0 || predict) && !o->weights)
        return rt_cli_error(&cli, "needs --weights FILE");
    if (predict && o->ninputs != 1)
        return rt_cli_error(&cli, o->ninputs ? "takes one INPUT file" : "needs an INPUT file");
    return -1;
}

int rt_bin_fail(const rt_compiled *m, const char *err)
{
    fprintf(stderr, "%s: error: %s\n", m->name, err);
    return 1;
}

/* the datasets, with the features converted to the model's dtype batch by batch */
bool rt_bin_load_data(bin *b, const char *spec, const char *label, rt_dataset *train, rt_dataset *test, char *err,
                      size_t len)
{
    const rt_compiled *m = b->m;
    rt_truth truth;
    if (!rt_load_data(spec, label, m->features, m->targets, m->classes, train, test, &truth, err, len))
        return false;
    ag_dtype want_y = m->train.y_dtype;
    if (train->y_dtype != want_y) {
        rt_fail(err, len, "data %s: %s targets, but the model's take %s", spec,
                train->y_dtype == AG_I32 ? "class-label" : "real-valued", want_y == AG_I32 ? "class labels" : "reals");
        rt_dataset_free(train);
        rt_dataset_free(test);
        return false;
    }
    char what[600];
    snprintf(what, sizeof what, "data %s", spec);
    if (!rt_dataset_x_fits(train, m->train.x_dtype, what, err, len) ||
        !rt_dataset_x_fits(test, m->train.x_dtype, what, err, len)) {
        rt_dataset_free(train);
        rt_dataset_free(test);
        return false;
    }
    b->data_x = train->x_dtype;
    return true;
}

/* --device: cuda must open; by default the GPU where the binary has kernels for it and one
 * is there, else the CPU */
bool rt_bin_choose_device(bin *b, const opts *o, char *err, size_t len)
{
    /* rt_dist_nccl's ranks sum on GPUs alone (the CPU's train step needs MPI's start, wait) */
    bool gpus_only = b->dist && b->dist->size > 1 && !b->dist->ops->start;
    if (o->device && strcmp(o->device, "cpu") == 0)
        return !gpus_only || rt_fail(err, len,
                                     "rank %d of %d: a --distributed nccl build trains its ranks on GPUs (on the "
                                     "CPU too: build with --distributed mpi,nccl and run under mpirun)",
                                     b->dist->rank, b->dist->size);
    if (!o->device && !b->m->cuda)
        return true;
    char why[1024];
    bool opened = rt_cuda_open(b->m, b->rows, b->dist ? b->dist->local_rank : 0, &b->gpu, why, sizeof why);
    int differs = -1;
    if (b->dist && b->dist->size > 1 && !b->dist->ops->same(b->dist, opened, &differs)) /* one device for all */
        return rt_fail(err, len, "rank %d of %d: the ranks did not all open a GPU (rank %d differs from rank 0): %s",
                       b->dist->rank, b->dist->size, differs, opened ? "give --device cpu or fix the others" : why);
    if (!opened && gpus_only)
        return rt_fail(err, len, "rank %d of %d: a --distributed nccl build trains its ranks on GPUs: %s",
                       b->dist->rank, b->dist->size, why);
    if (opened)
        return rt_cuda_join(b->gpu, b->dist, err, len); /* with ranks: NCCL */
    if (!o->device)
        return true; /* no GPU here: the CPU */
    return rt_fail(err, len, "--device cuda: %s", why);
}

int rt_binary_main(const rt_compiled *m, int argc, char **argv)
{
    ag_blas_pick_kernels(argv);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        main_help(m, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s: compiled by aotgrad %s from %s\n", m->name, AG_VERSION, m->source);
        return 0;
    }
    const struct command *c = find_command(m, argv[1]);
    if (!c) {
        static const char *const names[] = {"train", "eval", "predict", "bench"};
        const char *near = rt_closest(argv[1], names, 4);
        if (near && !find_command(m, near))
            near = NULL; /* a forward computation has no train or eval */
        fprintf(stderr, "%s: unknown command '%s'%s%s%s (commands: %s; see %s --help)\n", m->name, argv[1],
                near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "",
                m->trains ? "train, eval, predict, bench"
                          : "predict, bench: a forward computation, with no training to train or evaluate",
                m->name);
        return 2;
    }
    opts o;
    int rc = parse(m, c, argc - 1, argv + 1, &o);
    if (rc >= 0)
        return rc;
    if (strcmp(c->name, "train") == 0)
        return rt_bin_train(m, &o);
    if (strcmp(c->name, "eval") == 0)
        return rt_bin_eval(m, &o);
    if (strcmp(c->name, "predict") == 0)
        return rt_bin_predict(m, &o);
    return rt_bin_bench(m, &o);
}
