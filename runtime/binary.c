/* The standalone binary's commands: `aotgrad build MODEL.c -o OUT` links the generated entry
 * points and their tables (runtime/compiled.h) with this, and OUT train | eval | predict |
 * bench run the model with no aotgrad, LLVM or compiler around. The training loop, data
 * loaders and checkpoints are the runtime's, shared with `aotgrad run`. */
#define _GNU_SOURCE
#include <cblas.h>
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "compiled.h"
#include "cuda.h"
#include "data.h"
#include "fail.h"
#include "history.h"
#include "init.h"
#include "profile.h"
#include "pool.h"
#include "train.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *aligned(size_t bytes)
{
    void *p = NULL;
    if (bytes > SIZE_MAX - 63) /* rt_array_bytes' SIZE_MAX: too large, not rounded up to 0 */
        return NULL;
    return posix_memalign(&p, 64, bytes ? (bytes + 63) / 64 * 64 : 64) == 0 ? memset(p, 0, bytes ? bytes : 1) : NULL;
}

/* ---- the model in memory ---- */

typedef struct bin {
    const rt_compiled *m;
    char *params, *train_arena, *fwd_arena;
    rt_param *rp;
    rt_pool *pool;
    float lr, wd;
    ag_dtype data_x;  /* the dataset's feature dtype, converted to the model's where they differ */
    void *x_conv;     /* max_batch rows in the model's dtype */
    rt_profile *profile;
    rt_cuda *gpu;     /* training and evaluation on the GPU, or NULL: the CPU */
} bin;

static int64_t param_numel(const rt_compiled_param *p) { return rt_param_numel(p); }

static bool bin_open(bin *b, const rt_compiled *m, int threads, char *err, size_t len)
{
    memset(b, 0, sizeof *b);
    b->m = m;
    b->params = aligned((size_t)m->param_bytes);
    b->train_arena = aligned((size_t)m->train.arena_bytes);
    b->fwd_arena = aligned((size_t)m->forward.arena_bytes);
    b->rp = calloc((size_t)(m->nparams ? m->nparams : 1), sizeof *b->rp);
    b->x_conv = aligned(rt_array_bytes(m->max_batch, m->features, 4));
    if (!b->params || !b->train_arena || !b->fwd_arena || !b->rp || !b->x_conv)
        return rt_fail(err, len, "out of memory");
    for (int k = 0; k < m->nparams; k++) {
        const rt_compiled_param *p = &m->params[k];
        b->rp[k] = (rt_param){p->name, p->rank, {0}, (float *)(b->params + p->offset)};
        memcpy(b->rp[k].dims, p->dims, sizeof p->dims);
    }
    if (threads > 1 && !(b->pool = rt_pool_new(threads)))
        return rt_fail(err, len, "cannot start %d threads", threads);
    rt_pool_bind_blas(b->pool); /* OpenBLAS takes the same count: the two never compute at once */
    b->data_x = m->train.x_dtype;
    return true;
}

static void bin_close(bin *b)
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
static bool init_params(bin *b, uint32_t seed, char *err, size_t len)
{
    for (int k = 0; k < b->m->nparams; k++) {
        const rt_compiled_param *p = &b->m->params[k];
        int64_t n = param_numel(p);
        int64_t fan_in = p->rank ? p->dims[0] : 1, fan_out = p->rank > 1 ? p->dims[1] : fan_in;
        double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
        if (!v)
            return rt_fail(err, len, "out of memory");
        rt_init_values(v, n, p->init, fan_in, fan_out, seed, (uint32_t)k + 1);
        for (int64_t i = 0; i < n; i++)
            b->rp[k].data[i] = (float)v[i];
        free(v);
    }
    return true;
}

static double read_value(const bin *b, const char *arena, const rt_compiled_value *v)
{
    return rt_elem_get((v->in_params ? b->params : arena) + v->offset, v->dtype, 0);
}

/* One call of an entry point on a batch: loss and metrics into rb. */
static void run_entry(bin *b, const rt_compiled_entry *e, char *arena, rt_batch *rb, void *profile)
{
    const void *x = rb->x;
    if (b->data_x != e->x_dtype) {
        for (int64_t i = 0, n = rb->n * b->m->features; i < n; i++)
            rt_elem_set(b->x_conv, e->x_dtype, i, rt_elem_get(rb->x, b->data_x, i));
        x = b->x_conv;
    }
    void *in[8];
    for (int k = 0; k < e->ninputs; k++)
        in[k] = e->inputs[k] == RT_IN_X ? (void *)x : e->inputs[k] == RT_IN_Y ? (void *)rb->y
                : e->inputs[k] == RT_IN_LR ? (void *)&b->lr : (void *)&b->wd;
    ag_args a = {arena, b->params, in, NULL, rb->n, rb->seed, rb->step, b->pool, profile};
    e->fn(&a);
    rb->loss = read_value(b, arena, &e->loss);
    for (int k = 0; k < e->nmetrics && k < RT_MAX_METRICS; k++)
        rb->metric[k] = read_value(b, arena, &e->metrics[k]);
}

static bool train_step(void *ctx, rt_batch *rb, char *err, size_t len)
{
    (void)err, (void)len;
    bin *b = ctx;
    b->lr = (float)rb->lr, b->wd = (float)rb->wd;
    run_entry(b, &b->m->train, b->train_arena, rb, b->profile);
    for (int k = 0; k < b->m->nparams; k++) { /* the updates that are not in place */
        const rt_compiled_param *p = &b->m->params[k];
        if (p->next_offset >= 0)
            memcpy(b->params + p->offset, b->train_arena + p->next_offset, sizeof(float) * (size_t)param_numel(p));
    }
    return true;
}

static bool evaluate(void *ctx, rt_batch *rb, char *err, size_t len)
{
    (void)err, (void)len;
    bin *b = ctx;
    run_entry(b, &b->m->forward, b->fwd_arena, rb, NULL);
    return true;
}

/* the batch's features in the model's dtype */
static const void *model_x(bin *b, const rt_batch *rb, ag_dtype want)
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
    d.x = model_x(b, rb, b->m->forward.x_dtype);
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
    return rt_cuda_train_epoch(b->gpu, perm, n, f, epoch, first_step, loss_sum, metric_sum, bad_step, err, len);
}

static rt_model as_model(bin *b)
{
    rt_model rm = {.name = b->m->name, .ctx = b, .train_step = train_step, .evaluate = evaluate,
                   .nmetrics = b->m->train.nmetrics, .nparams = b->m->nparams, .params = b->rp};
    if (b->gpu)
        rm.evaluate = gpu_evaluate, rm.train_epoch = gpu_train_epoch;
    for (int k = 0; k < rm.nmetrics && k < RT_MAX_METRICS; k++)
        rm.metrics[k] = b->m->train.metrics[k].name;
    return rm;
}

/* ---- checkpoints ---- */

typedef struct history {
    int n;
    rt_history_row *rows;
} history;

static bool history_add(history *h, rt_history_row r)
{
    if (h->n >= RT_HISTORY_MAX)
        return false;
    rt_history_row *rows = realloc(h->rows, sizeof *rows * (size_t)(h->n + 1));
    if (!rows)
        return false;
    h->rows = rows;
    h->rows[h->n++] = r;
    return true;
}

typedef struct run_state {
    bin *b;
    const char *save, *metrics, *plot;
    uint32_t seed;
    int64_t batch;
    double lr, wd;
    history h;
    const char *good;    /* the last good checkpoint: the last one written, or the one resumed */
    int64_t good_epoch;
    int64_t samples;     /* training samples per epoch */
    int64_t finished;    /* epochs finished in this run */
    bool save_failed;    /* the last epoch finished, but writing its checkpoint did not */
} run_state;

static bool save_checkpoint(run_state *s, int64_t epoch, uint64_t step, char *err, size_t len)
{
    const rt_compiled *m = s->b->m;
    rt_ckpt_tensor *t = calloc((size_t)(m->nparams ? m->nparams : 1), sizeof *t);
    char *hist = rt_history_text(s->h.rows, s->h.n);
    char ep[32], st[32], sd[32], lr[40], wd[40], bt[32];
    snprintf(ep, sizeof ep, "%lld", (long long)epoch);
    snprintf(st, sizeof st, "%llu", (unsigned long long)step);
    snprintf(sd, sizeof sd, "%u", s->seed);
    rt_fmt_double(lr, sizeof lr, s->lr);
    rt_fmt_double(wd, sizeof wd, s->wd);
    snprintf(bt, sizeof bt, "%lld", (long long)s->batch);
    bool ok = t && hist;
    if (ok) {
        for (int k = 0; k < m->nparams; k++) {
            t[k] = (rt_ckpt_tensor){m->params[k].name, AG_F32, m->params[k].rank, {0}, s->b->rp[k].data};
            memcpy(t[k].dims, m->params[k].dims, sizeof t[k].dims);
        }
        /* the RNG state is (seed, epoch, step): the shuffles are a function of (seed, epoch),
         * dropout's masks of (seed, step) */
        rt_ckpt_meta meta[] = {{"format", "aotgrad"}, {"model", m->name}, {"epoch", ep}, {"step", st},
                               {"seed", sd},          {"lr", lr},         {"wd", wd},    {"batch", bt},
                               {"history", hist}};
        ok = rt_ckpt_save(s->save, t, m->nparams, meta, 9, err, len);
    } else
        rt_fail(err, len, "out of memory");
    free(t);
    free(hist);
    return ok;
}

/* Reads the parameters of FILE into the model: every tensor by name, dtype and shape, and
 * no tensor the model lacks; with state, also the training state of the metadata. */
static bool load_checkpoint(bin *b, const char *path, rt_ckpt *c, char *err, size_t len)
{
    const rt_compiled *m = b->m;
    if (!rt_ckpt_load(path, c, err, len))
        return false;
    const char *model = rt_ckpt_meta_get(c, "model");
    if (model && strcmp(model, m->name) != 0)
        return rt_fail(err, len, "%s: a checkpoint of model %s, not %s", path, model, m->name);
    for (int i = 0; i < c->n; i++) {
        bool known = false;
        for (int k = 0; k < m->nparams && !known; k++)
            known = strcmp(c->t[i].name, m->params[k].name) == 0;
        if (!known)
            return rt_fail(err, len, "%s: tensor %s is not a parameter of %s", path, c->t[i].name, m->name);
    }
    for (int k = 0; k < m->nparams; k++)
        if (!rt_ckpt_read_into(c, path, m->params[k].name, AG_F32, m->params[k].rank, m->params[k].dims,
                               b->rp[k].data, err, len))
            return false;
    return true;
}

static const char *meta_required(const rt_ckpt *c, const char *path, const char *key, char *err, size_t len)
{
    const char *s = rt_ckpt_meta_get(c, key);
    if (!s)
        rt_fail(err, len, "%s: no %s in the metadata, so no training state to resume (its parameters still work "
                          "with eval and predict --weights)", path, key);
    return s;
}

/* a real, as rt_fmt_double writes it: no leading space, finite, lo..hi */
static bool meta_number(const rt_ckpt *c, const char *path, const char *key, double lo, double hi, double *v,
                        char *err, size_t len)
{
    const char *s = meta_required(c, path, key, err, len);
    char *e;
    if (!s)
        return false;
    errno = 0;
    *v = strtod(s, &e);
    if (e == s || *e || errno || isspace((unsigned char)*s) || !(*v >= lo && *v <= hi))
        return rt_fail(err, len, "%s: metadata %s is '%s', expected a number in [%g, %g]", path, key, s, lo, hi);
    return true;
}

/* a whole number as the writer writes it: decimal digits only (no sign, space, point or 0x) */
static bool meta_whole(const rt_ckpt *c, const char *path, const char *key, int64_t lo, int64_t hi, int64_t *v,
                       char *err, size_t len)
{
    const char *s = meta_required(c, path, key, err, len);
    if (!s)
        return false;
    if (!rt_parse_whole(s, strlen(s), hi, v) || *v < lo)
        return rt_fail(err, len, "%s: metadata %s is '%s', expected a whole number from %lld to %lld", path, key, s,
                       (long long)lo, (long long)hi);
    return true;
}

static bool on_epoch(void *ctx, const rt_epoch *e, char *err, size_t len)
{
    run_state *s = ctx;
    const rt_model rm = as_model(s->b);
    int acc = -1;
    for (int k = 0; k < rm.nmetrics; k++)
        if (strcmp(rm.metrics[k], "correct") == 0)
            acc = k;
    rt_history_row r = {e->epoch, e->train_loss, acc >= 0 ? e->train_metric[acc] : NAN, e->test_loss,
                        acc >= 0 ? e->test_metric[acc] : NAN, e->seconds, 0};
    r.samples_per_s = e->seconds > 0 ? (double)s->samples / e->seconds : NAN;
    s->finished++;
    if (s->h.n >= RT_HISTORY_MAX)
        return rt_fail(err, len, "epoch %lld: the history holds at most %d epochs", (long long)e->epoch,
                       RT_HISTORY_MAX);
    if (!history_add(&s->h, r))
        return rt_fail(err, len, "out of memory");
    if (s->b->gpu && !rt_cuda_get_params(s->b->gpu, s->b->params, err, len))
        return false;
    if (s->save) {
        if (!save_checkpoint(s, e->epoch, e->step, err, len))
            return s->save_failed = true, false;
        s->good = s->save, s->good_epoch = e->epoch;
    }
    if (s->metrics && !rt_write_metrics_csv(s->metrics, s->h.rows, s->h.n, err, len))
        return false;
    if (s->plot && !rt_write_plot_svg(s->plot, s->b->m->name, s->h.rows, s->h.n, err, len))
        return false;
    return true;
}

/* ---- command lines ---- */

typedef struct opts {
    const char *data, *save, *resume, *metrics, *plot, *weights, *input, *device;
    int64_t epochs, batch, steps;
    double lr, wd;
    uint32_t seed;
    int threads;
    bool has_seed, has_lr, has_wd, has_batch;
} opts;

static const struct command {
    const char *name, *args, *what, *options;
} commands[] = {
    {"train", "[--data DIR|FILE] [--epochs N] [--batch N] [--lr X] [--wd X] [--seed S] [--threads N]\n"
              "        [--device cpu|cuda] [--save FILE] [--resume FILE] [--metrics FILE.csv] [--plot FILE.svg]",
     "Trains the model from its initial parameters (or a checkpoint), printing one line per epoch:\n"
     "train loss, train accuracy, test accuracy, seconds, samples/s.",
     "  --data SPEC      the dataset: a folder of IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]),\n"
     "                   TRAIN.csv[,TEST.csv], fashion-mnist, or a synthetic-linear spec (default: the model's)\n"
     "  --epochs N       train until epoch N (default: the model's)\n"
     "  --batch N        minibatch size, 1 to the compiled maximum (default: the model's)\n"
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
     "                   regular file, not a symlink, FIFO or device; they are checked before training)\n"},
    {"eval", "--weights FILE [--data DIR|FILE] [--threads N] [--device cpu|cuda]",
     "Loss and accuracy of the parameters in FILE on the test set (the training set where the data has no\n"
     "test set).",
     "  --weights FILE   a safetensors checkpoint holding every parameter of the model\n"
     "  --data SPEC      the dataset (default: the model's)\n"
     "  --threads N      threads (default: the core count)\n"
     "  --device D       cpu or cuda (default: cuda when the binary has it and a GPU is there)\n"},
    {"predict", "--weights FILE INPUT [--threads N] [--device cpu|cuda]",
     "One prediction a line for each sample of INPUT (an IDX image file, gzipped or not, or a CSV of\n"
     "feature rows): the class name where the dataset has names, else the class or the value.",
     "  --weights FILE   a safetensors checkpoint holding every parameter of the model\n"
     "  --threads N      threads (default: the core count)\n"
     "  --device D       cpu or cuda (default: cuda when the binary has it and a GPU is there)\n"},
    {"bench", "[--steps N] [--threads N] [--device cpu|cuda]",
     "Times the train step at the compiled batch on random data, and each of its kernels: time share,\n"
     "GB/s or GFLOP/s, and on the CPU the fraction of this machine's memcpy bandwidth or sgemm rate\n"
     "(measured first). On a GPU the step is the replayed CUDA graph that training runs (batch gathered\n"
     "on the device, kernels, sums), and the kernels are timed one by one with CUDA events.",
     "  --steps N        train steps timed (default 100)\n"
     "  --threads N      threads (default: the core count)\n"
     "  --device D       cpu or cuda (default: cuda when the binary has it and a GPU is there)\n"},
};

/* whether args lists the option a: "--name" starting the line or after "[", then a space,
 * so that "-epochs" or "--epoch" is not taken for "--epochs" */
static bool lists_option(const char *args, const char *a)
{
    size_t n = strlen(a);
    if (strncmp(a, "--", 2) != 0 || strchr(a, ' ')) /* "--epochs N]" is in the text, but no option */
        return false;
    for (const char *at = strstr(args, a); at; at = strstr(at + 1, a))
        if ((at == args || at[-1] == '[' || at[-1] == ' ') && at[n] == ' ')
            return true;
    return false;
}

static const struct command *find_command(const char *name)
{
    for (size_t k = 0; k < sizeof commands / sizeof *commands; k++)
        if (strcmp(commands[k].name, name) == 0)
            return &commands[k];
    return NULL;
}

static void command_help(const rt_compiled *m, const struct command *c, FILE *f)
{
    fprintf(f, "usage: %s %s %s\n\n%s\n\noptions:\n%s  --help           this text\n", m->name, c->name, c->args, c->what,
            c->options);
}

static void main_help(const rt_compiled *m, FILE *f)
{
    fprintf(f, "usage: %s COMMAND [OPTIONS]   (%s COMMAND --help for its options)\n\n", m->name, m->name);
    fprintf(f, "The model %s, compiled by aotgrad from %s.\n\ncommands:\n", m->name, m->source);
    fprintf(f, "  train     train it, printing one line per epoch; checkpoints, metrics and plots\n");
    fprintf(f, "  eval      loss and accuracy of saved parameters on the test set\n");
    fprintf(f, "  predict   predictions for the samples of a file\n");
    fprintf(f, "  bench     time the train step and each kernel against this machine's ceilings\n\n");
    fprintf(f, "defaults: data %s, batch %lld (compiled for at most %lld), lr %g, wd %g, %lld epochs\n",
            m->data ? m->data : "(none)", (long long)m->batch, (long long)m->max_batch, m->lr, m->wd,
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

static int usage_error(const rt_compiled *m, const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s %s: ", m->name, cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see %s %s --help)\n", m->name, cmd);
    return 2;
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

/* Parses argv[2..] for the command; returns -1 on success, else the exit status. */
static int parse(const rt_compiled *m, const struct command *c, int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->steps = 100;
    o->threads = rt_cpu_count();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            command_help(m, c, stdout);
            return 0;
        }
        if (a[0] != '-' && strcmp(c->name, "predict") == 0 && !o->input) {
            o->input = a;
            continue;
        }
        /* every option this command lists takes a value */
        if (a[0] != '-' || !lists_option(c->args, a))
            return usage_error(m, c->name, a[0] == '-' ? "unknown option %s" : "unexpected argument '%s'", a);
        if (!v)
            return usage_error(m, c->name, "%s needs a value", a);
        i++;
        int64_t n;
        bool ok = true;
        if (strcmp(a, "--data") == 0)
            o->data = v;
        else if (strcmp(a, "--save") == 0)
            o->save = v;
        else if (strcmp(a, "--resume") == 0)
            o->resume = v;
        else if (strcmp(a, "--metrics") == 0)
            o->metrics = v;
        else if (strcmp(a, "--plot") == 0)
            o->plot = v;
        else if (strcmp(a, "--weights") == 0)
            o->weights = v;
        else if (strcmp(a, "--device") == 0) {
            o->device = v;
            ok = strcmp(v, "cpu") == 0 || strcmp(v, "cuda") == 0;
        }
        else if (strcmp(a, "--epochs") == 0)
            ok = parse_int(v, 1, 1000000, &o->epochs);
        else if (strcmp(a, "--batch") == 0)
            ok = parse_int(v, 1, m->max_batch, &o->batch), o->has_batch = true;
        else if (strcmp(a, "--steps") == 0)
            ok = parse_int(v, 1, 100000000, &o->steps);
        else if (strcmp(a, "--threads") == 0)
            ok = parse_int(v, 1, 1024, &n), o->threads = (int)n;
        else if (strcmp(a, "--seed") == 0)
            ok = parse_int(v, 0, UINT32_MAX, &n), o->seed = (uint32_t)n, o->has_seed = true;
        else if (strcmp(a, "--lr") == 0)
            ok = parse_real(v, &o->lr), o->has_lr = true;
        else if (strcmp(a, "--wd") == 0)
            ok = parse_real(v, &o->wd), o->has_wd = true;
        if (!ok) {
            char msg[160], batch[80];
            snprintf(batch, sizeof batch, "a batch size from 1 to %lld (the compiled maximum)", (long long)m->max_batch);
            snprintf(msg, sizeof msg, "%s takes %s, not '%%s'", a,
                     strcmp(a, "--batch") == 0    ? batch
                     : strcmp(a, "--seed") == 0   ? "a number from 0 to 4294967295"
                     : strcmp(a, "--device") == 0 ? "cpu or cuda"
                     : strcmp(a, "--lr") == 0 || strcmp(a, "--wd") == 0
                         ? "a number from 0 to 3.40282e+38 (a finite f32)"
                         : "a positive whole number");
            return usage_error(m, c->name, msg, v);
        }
    }
    if ((strcmp(c->name, "eval") == 0 || strcmp(c->name, "predict") == 0) && !o->weights)
        return usage_error(m, c->name, "needs --weights FILE%s", "");
    if (strcmp(c->name, "predict") == 0 && !o->input)
        return usage_error(m, c->name, "needs an INPUT file%s", "");
    return -1;
}

static int fail(const rt_compiled *m, const char *err)
{
    fprintf(stderr, "%s: error: %s\n", m->name, err);
    return 1;
}

/* the datasets, with the features converted to the model's dtype batch by batch */
static bool load_data(bin *b, const char *spec, rt_dataset *train, rt_dataset *test, char *err, size_t len)
{
    const rt_compiled *m = b->m;
    rt_truth truth;
    if (!rt_load_data(spec, m->features, m->targets, m->classes, train, test, &truth, err, len))
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
static bool choose_device(bin *b, const opts *o, char *err, size_t len)
{
    if (o->device && strcmp(o->device, "cpu") == 0)
        return true;
    if (!o->device && !b->m->cuda)
        return true;
    char why[1024];
    if (rt_cuda_open(b->m, &b->gpu, why, sizeof why))
        return true;
    if (!o->device)
        return true; /* no GPU here: the CPU */
    return rt_fail(err, len, "--device cuda: %s", why);
}

static const char *device_name(const bin *b) { return b->gpu ? rt_cuda_device_name(b->gpu) : "cpu"; }

static int cmd_train(const rt_compiled *m, const opts *o)
{
    char err[2048];
    bin b;
    rt_dataset train = {0}, test = {0};
    rt_ckpt c = {0};
    run_state s = {.b = &b, .save = o->save, .metrics = o->metrics, .plot = o->plot};
    int rc = 1;
    if (!bin_open(&b, m, o->threads, err, sizeof err) || !choose_device(&b, o, err, sizeof err))
        goto out;
    rt_fit fit = {.epochs = o->epochs ? o->epochs : m->epochs, .batch = o->has_batch ? o->batch : m->batch,
                  .eval_batch = m->max_batch, .lr = o->has_lr ? o->lr : m->lr, .wd = o->has_wd ? o->wd : m->wd,
                  .seed = o->seed, .log = stdout, .progress = isatty(STDERR_FILENO) ? stderr : NULL,
                  .on_epoch = on_epoch, .ctx = &s};
    if (fit.batch > m->max_batch) {
        snprintf(err, sizeof err, "batch %lld: compiled for batches up to %lld", (long long)fit.batch,
                 (long long)m->max_batch);
        goto out;
    }
    /* the output paths before any work: a missing folder, a FIFO or a device at one of them
     * would otherwise end the run after its first epoch, or be replaced by a regular file */
    const char *outputs[][2] = {{"--save", o->save}, {"--metrics", o->metrics}, {"--plot", o->plot}};
    for (int k = 0; k < 3; k++) {
        char why[sizeof err - 16];
        if (outputs[k][1] && !rt_check_output_path(outputs[k][1], true, why, sizeof why)) {
            snprintf(err, sizeof err, "%s %s", outputs[k][0], why);
            goto out;
        }
    }
    if (o->resume) {
        int64_t ep, st, sd, bt;
        double lr, wd;
        if (!load_checkpoint(&b, o->resume, &c, err, sizeof err) ||
            !meta_whole(&c, o->resume, "epoch", 1, 1000000000, &ep, err, sizeof err) ||
            !meta_whole(&c, o->resume, "step", 0, 1000000000000000000, &st, err, sizeof err) ||
            !meta_whole(&c, o->resume, "seed", 0, UINT32_MAX, &sd, err, sizeof err) ||
            !meta_number(&c, o->resume, "lr", 0, FLT_MAX, &lr, err, sizeof err) ||
            !meta_number(&c, o->resume, "wd", 0, FLT_MAX, &wd, err, sizeof err) ||
            !meta_whole(&c, o->resume, "batch", 1, m->max_batch, &bt, err, sizeof err))
            goto out;
        if (st < ep) { /* the step after epoch E: every epoch takes a step at least */
            snprintf(err, sizeof err, "%s: metadata step is %lld at epoch %lld, expected at least one step per epoch",
                     o->resume, (long long)st, (long long)ep);
            goto out;
        }
        /* the history is for the CSV and the plot; a checkpoint without one resumes without */
        const char *hist = rt_ckpt_meta_get(&c, "history");
        if (hist && !rt_history_parse(hist, o->resume, ep, &s.h.rows, &s.h.n, err, sizeof err))
            goto out;
        if (o->has_seed && (uint32_t)sd != o->seed) {
            snprintf(err, sizeof err, "--seed %u, but %s continues a run of seed %u", o->seed, o->resume, (uint32_t)sd);
            goto out;
        }
        fit.seed = (uint32_t)sd;
        fit.lr = o->has_lr ? o->lr : lr;
        fit.wd = o->has_wd ? o->wd : wd;
        fit.batch = o->has_batch ? o->batch : bt;
        fit.first_epoch = ep + 1;
        fit.first_step = (uint64_t)st;
        s.good = o->resume, s.good_epoch = ep;
        if (fit.first_epoch > fit.epochs) {
            printf("%s: %s is at epoch %lld already; nothing to train (give --epochs above it)\n", m->name, o->resume,
                   (long long)ep);
            rc = 0;
            goto out;
        }
        printf("%s: resuming %s at epoch %lld (step %llu)\n", m->name, o->resume, (long long)fit.first_epoch,
               (unsigned long long)fit.first_step);
    } else if (!init_params(&b, fit.seed, err, sizeof err))
        goto out;
    s.seed = fit.seed, s.batch = fit.batch, s.lr = fit.lr, s.wd = fit.wd;
    const char *spec = o->data ? o->data : m->data;
    if (!load_data(&b, spec, &train, &test, err, sizeof err))
        goto out;
    if (b.gpu && (!rt_dataset_x_as(&train, m->train.x_dtype, err, sizeof err) ||
                  !rt_dataset_x_as(&test, m->train.x_dtype, err, sizeof err) ||
                  !rt_cuda_put_dataset(b.gpu, &train, err, sizeof err) || !rt_cuda_put_params(b.gpu, b.params, err, sizeof err)))
        goto out;
    if (b.gpu)
        b.data_x = train.x_dtype;
    char where[300];
    int threads = rt_pool_threads(b.pool);
    if (b.gpu)
        snprintf(where, sizeof where, "on %s", device_name(&b));
    else
        snprintf(where, sizeof where, "%d thread%s", threads, threads > 1 ? "s" : "");
    printf("%s: training on %s: %lld samples, %lld test; batch %lld, lr %g, wd %g, %lld epoch%s, seed %u, %s\n",
           m->name, spec, (long long)train.n, (long long)test.n, (long long)fit.batch, fit.lr, fit.wd,
           (long long)fit.epochs, fit.epochs == 1 ? "" : "s", fit.seed, where);
    fflush(stdout);
    s.samples = train.n;
    rt_model rm = as_model(&b);
    rt_epoch last = {0};
    if (!rt_fit_model(&rm, &train, &test, &fit, &last, err, sizeof err)) {
        if (!s.good && s.save_failed) /* the epoch finished: its save is what failed */
            fprintf(stderr, "%s: error: no checkpoint was written: %s\n", m->name, err);
        else
            fprintf(stderr, "%s: error: %s\n", m->name, err);
        if (s.good)
            fprintf(stderr, "%s: the last good checkpoint is %s (epoch %lld)\n", m->name, s.good,
                    (long long)s.good_epoch);
        else if (o->save && !s.finished)
            fprintf(stderr, "%s: no checkpoint was written (no epoch finished)\n", m->name);
        else if (o->save && !s.save_failed)
            fprintf(stderr, "%s: no checkpoint was written (epoch %lld finished, but not its save)\n", m->name,
                    (long long)last.epoch);
        err[0] = 0;
        goto out;
    }
    int acc = -1;
    for (int k = 0; k < rm.nmetrics; k++)
        if (strcmp(rm.metrics[k], "correct") == 0)
            acc = k;
    if (test.n > 0 && acc >= 0)
        printf("%s: test accuracy %.4f after %lld epoch%s\n", m->name, last.test_metric[acc], (long long)last.epoch,
               last.epoch == 1 ? "" : "s");
    else if (test.n > 0)
        printf("%s: test loss %.6g after %lld epoch%s\n", m->name, last.test_loss, (long long)last.epoch,
               last.epoch == 1 ? "" : "s");
    rt_truth none = {0};
    rt_print_small_params(&rm, &none, stdout);
    if (o->save)
        printf("checkpoint: %s\n", o->save);
    if (o->metrics)
        printf("metrics: %s\n", o->metrics);
    if (o->plot)
        printf("plot: %s\n", o->plot);
    rc = 0;
out:
    if (rc && err[0])
        fail(m, err);
    free(s.h.rows);
    rt_ckpt_free(&c);
    rt_dataset_free(&train);
    rt_dataset_free(&test);
    bin_close(&b);
    return rc;
}

static int cmd_eval(const rt_compiled *m, const opts *o)
{
    char err[2048];
    bin b;
    rt_dataset train = {0}, test = {0};
    rt_ckpt c = {0};
    int rc = 1;
    const char *spec = o->data ? o->data : m->data;
    if (bin_open(&b, m, o->threads, err, sizeof err) && choose_device(&b, o, err, sizeof err) &&
        load_checkpoint(&b, o->weights, &c, err, sizeof err) && load_data(&b, spec, &train, &test, err, sizeof err) &&
        (!b.gpu || rt_cuda_put_params(b.gpu, b.params, err, sizeof err))) {
        const rt_dataset *d = test.n > 0 ? &test : &train;
        rt_model rm = as_model(&b);
        double loss, metric[RT_MAX_METRICS];
        if (rt_evaluate(&rm, d, m->max_batch, &loss, metric, err, sizeof err)) {
            printf("%s: %s of %s (%lld samples): %s_loss %.4f", m->name, d == &test ? "test set" : "training set",
                   spec, (long long)d->n, d == &test ? "test" : "train", loss);
            for (int k = 0; k < rm.nmetrics; k++)
                printf("  %s_%s %.4f", d == &test ? "test" : "train",
                       strcmp(rm.metrics[k], "correct") == 0 ? "acc" : rm.metrics[k], metric[k]);
            printf("\n");
            rc = 0;
        }
    }
    if (rc)
        fail(m, err);
    rt_ckpt_free(&c);
    rt_dataset_free(&train);
    rt_dataset_free(&test);
    bin_close(&b);
    return rc;
}

static int cmd_predict(const rt_compiled *m, const opts *o)
{
    char err[2048];
    bin b;
    rt_dataset in = {0};
    rt_ckpt c = {0};
    int rc = 1;
    const rt_compiled_entry *e = &m->forward;
    void *y = aligned(rt_array_bytes(m->max_batch, m->targets > 0 ? m->targets : 1, 4));
    if (!e->predict.name)
        snprintf(err, sizeof err, "the model declares no predictions (ag_minimize's .predict)");
    else if (!y)
        snprintf(err, sizeof err, "out of memory");
    else if (bin_open(&b, m, o->threads, err, sizeof err) && choose_device(&b, o, err, sizeof err) &&
             load_checkpoint(&b, o->weights, &c, err, sizeof err) &&
             rt_load_inputs(o->input, m->features, &in, err, sizeof err) &&
             rt_dataset_x_fits(&in, e->x_dtype, o->input, err, sizeof err) &&
             (!b.gpu || rt_cuda_put_params(b.gpu, b.params, err, sizeof err))) {
        b.data_x = in.x_dtype;
        int64_t per = e->predict.numel, rowbytes = in.features * rt_elem_size(in.x_dtype);
        char *pred = b.gpu ? aligned(rt_array_bytes(m->max_batch, per, rt_elem_size(e->predict.dtype))) : NULL;
        bool ok = !b.gpu || pred;
        for (int64_t first = 0; ok && first < in.n; first += m->max_batch) {
            rt_batch rb = {.n = in.n - first < m->max_batch ? in.n - first : m->max_batch,
                           .x = (const char *)in.x + first * rowbytes, .y = y};
            if (b.gpu) {
                rb.x = model_x(&b, &rb, e->x_dtype);
                ok = rt_cuda_forward(b.gpu, &rb, pred, err, sizeof err);
                if (!ok)
                    break;
            } else
                run_entry(&b, e, b.fwd_arena, &rb, NULL);
            const char *base = b.gpu ? pred : (e->predict.in_params ? b.params : b.fwd_arena) + e->predict.offset;
            for (int64_t i = 0; i < rb.n; i++) {
                if (m->classes > 0 && (per == m->classes || per == 1)) {
                    int64_t best = 0;
                    if (per == 1)
                        best = (int64_t)rt_elem_get(base, e->predict.dtype, i);
                    else /* scores per class: the first largest */
                        for (int64_t k = 1; k < per; k++)
                            if (rt_elem_get(base, e->predict.dtype, i * per + k) >
                                rt_elem_get(base, e->predict.dtype, i * per + best))
                                best = k;
                    if (best >= 0 && best < m->nclass_names)
                        printf("%s\n", m->class_names[best]);
                    else
                        printf("%lld\n", (long long)best);
                } else {
                    for (int64_t k = 0; k < per; k++)
                        printf("%s%.6g", k ? " " : "", rt_elem_get(base, e->predict.dtype, i * per + k));
                    printf("\n");
                }
            }
        }
        if (!ok && b.gpu && !pred)
            snprintf(err, sizeof err, "out of memory");
        rc = ok && fflush(stdout) == 0 ? 0 : 1;
        if (rc && ok)
            snprintf(err, sizeof err, "cannot write the predictions: %s", strerror(errno));
        free(pred);
    }
    if (rc)
        fail(m, err);
    free(y);
    rt_ckpt_free(&c);
    rt_dataset_free(&in);
    if (e->predict.name && y)
        bin_close(&b);
    return rc;
}

/* ---- bench ---- */

/* bytes read + written per second by memcpy of 64 MiB, best of 5 */
static double memcpy_rate(void)
{
    size_t n = (size_t)64 << 20;
    char *a = aligned(n), *c = aligned(n);
    double best = INFINITY;
    for (int r = 0; a && c && r < 5; r++) {
        double t = now();
        memcpy(c, a, n);
        t = now() - t;
        best = t < best ? t : best;
    }
    free(a);
    free(c);
    return 2.0 * (double)n / best;
}

/* sgemm flops per second at 1024^3, best of 5, with OpenBLAS's current thread count */
static double sgemm_rate(void)
{
    int n = 1024;
    float *a = aligned(sizeof(float) * (size_t)n * n), *bb = aligned(sizeof(float) * (size_t)n * n),
          *c = aligned(sizeof(float) * (size_t)n * n);
    double best = INFINITY;
    for (int r = 0; a && bb && c && r < 5; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, bb, n, 0, c, n);
        t = now() - t;
        best = t < best ? t : best;
    }
    free(a);
    free(bb);
    free(c);
    return 2.0 * n * (double)n * n / best;
}

/* bench on the GPU: o->steps full batches of random rows as one epoch through the replayed
 * graph (the training path), then the kernels one by one with events */
static bool bench_gpu(bin *b, const void *x, const void *y, const opts *o, char *err, size_t len)
{
    const rt_compiled *m = b->m;
    const rt_compiled_entry *e = &m->train;
    const rt_cuda_image *im = m->cuda;
    int64_t N = m->max_batch, n = N * o->steps;
    size_t xr = (size_t)(m->features * rt_elem_size(e->x_dtype)), yr = (size_t)(m->targets * 4);
    rt_dataset d = {.n = n, .features = m->features, .x_dtype = e->x_dtype, .x = malloc((size_t)n * xr),
                    .targets = m->targets, .y_dtype = e->y_dtype, .y = malloc((size_t)n * yr), .classes = m->classes};
    int64_t *perm = malloc(sizeof *perm * (size_t)n);
    double *seconds = calloc((size_t)im->ntrain + 1, sizeof *seconds);
    bool ok = (d.x && d.y && perm && seconds) || rt_fail(err, len, "out of memory");
    for (int64_t i = 0; ok && i < n; i++) { /* the N random rows again and again */
        memcpy((char *)d.x + (size_t)i * xr, (const char *)x + (size_t)(i % N) * xr, xr);
        memcpy((char *)d.y + (size_t)i * yr, (const char *)y + (size_t)(i % N) * yr, yr);
        perm[i] = i;
    }
    rt_fit f = {.epochs = 2, .batch = N, .lr = 1e-6, .seed = 1};
    double loss, metrics[RT_MAX_METRICS], t = 0;
    int64_t bad;
    ok = ok && rt_cuda_put_dataset(b->gpu, &d, err, len) && rt_cuda_put_params(b->gpu, b->params, err, len) &&
         rt_cuda_train_epoch(b->gpu, perm, n, &f, 1, 0, &loss, metrics, &bad, err, len); /* warm: the capture */
    if (ok) {
        double t0 = now();
        ok = rt_cuda_train_epoch(b->gpu, perm, n, &f, 2, (uint64_t)o->steps, &loss, metrics, &bad, err, len);
        t = (now() - t0) / (double)o->steps;
    }
    int64_t reps = o->steps < 20 ? o->steps : 20;
    ok = ok && rt_cuda_time_kernels(b->gpu, N, reps, seconds, err, len);
    if (ok) {
        printf("%s bench: train step at batch %lld on %s, %lld steps: %.1f us/step (the replayed graph: batch "
               "gathered on the device, %d kernels, sums), %.0f samples/s\n",
               m->name, (long long)N, rt_cuda_device_name(b->gpu), (long long)o->steps, t * 1e6, im->ntrain,
               (double)N / t);
        double total = 0;
        for (int k = 0; k < im->ntrain; k++)
            total += seconds[k] / (double)reps;
        printf("%3s  %-15s %9s %7s %14s  %s\n", "#", "kernel", "us/step", "share", "rate", "computes");
        for (int k = 0; k < im->ntrain; k++) {
            const rt_cuda_launch *l = &im->train[k];
            double flops = 0, bytes = 0, tk = seconds[k] / (double)reps;
            for (int s = l->first_step; s < l->first_step + l->steps && s < e->nsteps; s++)
                flops += e->steps[s].flops, bytes += e->steps[s].bytes;
            const rt_compiled_step *st = &e->steps[l->first_step < e->nsteps ? l->first_step : 0];
            char rate[32], kind[32];
            if (flops > 0)
                snprintf(rate, sizeof rate, "%.1f GFLOP/s", flops / tk / 1e9);
            else
                snprintf(rate, sizeof rate, "%.2f GB/s", bytes / tk / 1e9);
            if (l->merged) /* small steps run in one block (codegen/cuda/render.c, mark_merges) */
                snprintf(kind, sizeof kind, "merged:%d", l->steps);
            else /* one step, or a matmul and its epilogue */
                snprintf(kind, sizeof kind, "%s%s", st->kind, l->steps > 1 ? "+loop" : "");
            printf("%3d  %-15s %9.1f %6.1f%% %14s  %.60s%s\n", k, kind, tk * 1e6, total > 0 ? 100 * tk / total : 0,
                   rate, st->what, strlen(st->what) > 60 ? "..." : "");
        }
        printf("(the kernels one by one: %.1f us a step; the replayed graph's step: %.1f us)\n", total * 1e6, t * 1e6);
    }
    free(d.x), free(d.y), free(perm), free(seconds);
    return ok;
}

static int cmd_bench(const rt_compiled *m, const opts *o)
{
    char err[2048];
    bin b;
    int rc = 1;
    const rt_compiled_entry *e = &m->train;
    int64_t N = m->max_batch;
    void *x = NULL, *y = NULL;
    if (!bin_open(&b, m, o->threads, err, sizeof err) || !init_params(&b, 1, err, sizeof err) ||
        !choose_device(&b, o, err, sizeof err))
        goto out;
    x = aligned((size_t)(N * m->features * rt_elem_size(e->x_dtype)));
    y = aligned((size_t)(N * m->targets * 4));
    b.profile = rt_profile_new(e->nsteps);
    if (!x || !y || !b.profile) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    /* random inputs: pixels or N(0,1)-ish features, labels in range */
    uint64_t r = 0x9e3779b97f4a7c15u;
    for (int64_t i = 0; i < N * m->features; i++) {
        r = r * 6364136223846793005u + 1442695040888963407u;
        rt_elem_set(x, e->x_dtype, i, e->x_dtype == AG_U8 ? (double)(r >> 56) : (double)(r >> 40) / (1 << 24) * 2 - 1);
    }
    for (int64_t i = 0; i < N * m->targets; i++) {
        r = r * 6364136223846793005u + 1442695040888963407u;
        rt_elem_set(y, e->y_dtype, i, m->classes ? (double)((r >> 33) % (uint64_t)m->classes) : (double)(r >> 40) / (1 << 24));
    }
    if (b.gpu) {
        rc = bench_gpu(&b, x, y, o, err, sizeof err) ? 0 : 1;
        goto out;
    }
    double bw = memcpy_rate(), flops = sgemm_rate();
    b.data_x = e->x_dtype;
    rt_batch rb = {.n = N, .x = x, .y = y, .lr = 1e-6, .wd = 0, .seed = 1};
    b.lr = 1e-6f; /* a tiny step: the parameters stay where they are over many steps */
    for (int k = 0; k < 5; k++, rb.step++)
        run_entry(&b, e, b.train_arena, &rb, NULL);
    double t0 = now();
    for (int64_t k = 0; k < o->steps; k++, rb.step++)
        run_entry(&b, e, b.train_arena, &rb, b.profile);
    double per = (now() - t0) / (double)o->steps;
    printf("%s bench: train step at batch %lld, %d thread%s, %lld steps: %.3f ms/step, %.0f samples/s\n", m->name,
           (long long)N, rt_pool_threads(b.pool), rt_pool_threads(b.pool) > 1 ? "s" : "", (long long)o->steps,
           per * 1e3, (double)N / per);
    printf("machine: memcpy %.1f GB/s (bytes read + written, 64 MiB), sgemm %.1f GFLOP/s (1024^3, OpenBLAS's %s "
           "kernels)\n",
           bw / 1e9, flops / 1e9, openblas_get_corename());
    double total = 0;
    for (int k = 0; k < e->nsteps; k++)
        total += b.profile->seconds[k];
    printf("%3s  %-15s %9s %7s %14s %13s  %s\n", "#", "kernel", "us/step", "share", "rate", "of peak", "computes");
    for (int k = 0; k < e->nsteps; k++) {
        const rt_compiled_step *st = &e->steps[k];
        double t = b.profile->seconds[k] / (double)o->steps;
        char rate[32], frac[32];
        if (st->flops > 0) {
            snprintf(rate, sizeof rate, "%.1f GFLOP/s", st->flops / t / 1e9);
            snprintf(frac, sizeof frac, "%.1f%% sgemm", 100 * st->flops / t / flops);
        } else {
            snprintf(rate, sizeof rate, "%.2f GB/s", st->bytes / t / 1e9);
            snprintf(frac, sizeof frac, "%.1f%% memcpy", 100 * st->bytes / t / bw);
        }
        printf("%3d  %-15s %9.1f %6.1f%% %14s %13s  %.60s%s\n", k, st->kind, t * 1e6,
               total > 0 ? 100 * b.profile->seconds[k] / total : 0, rate, frac, st->what,
               strlen(st->what) > 60 ? "..." : "");
    }
    printf("(the step's time outside its kernels: %.1f us, %.1f%%)\n", (per - total / (double)o->steps) * 1e6,
           100 * (per - total / (double)o->steps) / per);
    rc = 0;
out:
    if (rc)
        fail(m, err);
    free(x);
    free(y);
    bin_close(&b);
    return rc;
}

int rt_binary_main(const rt_compiled *m, int argc, char **argv)
{
    rt_blas_pick_kernels(argv);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        main_help(m, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const struct command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "%s: unknown command '%s' (commands: train, eval, predict, bench; see %s --help)\n", m->name,
                argv[1], m->name);
        return 2;
    }
    opts o;
    int rc = parse(m, c, argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (strcmp(c->name, "train") == 0)
        return cmd_train(m, &o);
    if (strcmp(c->name, "eval") == 0)
        return cmd_eval(m, &o);
    if (strcmp(c->name, "predict") == 0)
        return cmd_predict(m, &o);
    return cmd_bench(m, &o);
}
