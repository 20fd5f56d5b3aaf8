/* The training loop, shared by `aotgrad run` (the interpreter) and the binaries aotgrad
 * builds: datasets from a spec, epochs of shuffled minibatches (the last partial batch
 * kept), per-epoch lines, evaluation, checkpoints. What computes a step is the caller's: a
 * model is a pair of callbacks over its parameters. */
#ifndef AG_RUNTIME_TRAIN_H
#define AG_RUNTIME_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "data.h"
#include "dist.h"

#define RT_MAX_METRICS 8

/* The bytes of rows x cols elements of esz bytes, or SIZE_MAX (which no allocation gets)
 * when a count is negative or the product overflows: a buffer is never sized by a wrapped
 * product. */
size_t rt_array_bytes(int64_t rows, int64_t cols, int64_t esz);

/* The true parameters of synthetic data, printed beside the trained ones. */
typedef struct rt_truth {
    int64_t nw;
    double w[256];
    double b;
    bool known;
} rt_truth;

/* Loads the training and test sets a spec names:
 *   fashion-mnist                the Debian package's files (RT_FASHION_MNIST_DIR)
 *   DIR                          IDX files in DIR: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
 *   TRAIN.csv[,TEST.csv]         numeric CSV, each row the features then the targets (label:
 *                                another column as the one label, rt_load_csv; NULL: the last)
 *   synthetic-linear w=2,-3.4 b=4.2 train=1000 [test=100] [noise=0.01]
 *                                the book's synthetic_data (0.01x200: 0.01 repeated 200 times),
 *                                drawn with a fixed seed so every run sees the same data
 * features, targets: per sample, as the model's inputs take them; classes > 0 for class
 * labels. The test set may come back empty (n = 0). */
bool rt_load_data(const char *spec, const char *label, int64_t features, int64_t targets, int classes,
                  rt_dataset *train, rt_dataset *test, rt_truth *truth, char *err, size_t len);

typedef struct rt_param {
    const char *name;
    int rank;
    int64_t dims[4];
    float *data;
    bool state; /* the optimizer's state: a checkpoint without it starts it at zero */
} rt_param;

static inline int64_t rt_param_count(const rt_param *p) /* its elements */
{
    int64_t n = 1;
    for (int k = 0; k < p->rank; k++)
        n *= p->dims[k];
    return n;
}

/* One batch in and what the model says of it out. */
typedef struct rt_batch {
    int64_t n;         /* rows */
    const void *x, *y; /* the dataset's dtypes, n rows each */
    double lr, wd;     /* runtime scalars */
    uint32_t seed;     /* dropout's key */
    uint64_t step;     /* the global step: dropout's counter */
    /* data-parallel training (runtime/dist.h): the rank's rows are rows row0.. of a global
     * batch of global_n (0: n, one process); idle: the rank has none of them, and runs one row
     * whose gradient is weighted 0, for the sums' sake */
    int64_t row0, global_n;
    bool idle;
    double loss;                   /* out: the batch's mean loss */
    double metric[RT_MAX_METRICS]; /* out: the batch's metric sums (correct predictions) */
} rt_batch;

struct rt_fit;

/* One update of the split step from the accumulated gradients (rt_model.apply). */
typedef struct rt_apply {
    int64_t rows;     /* the rows the accumulated gradients came from: they are scaled by 1/rows */
    double lr, wd;    /* runtime scalars */
    double clip_norm; /* the largest global gradient norm; +inf: no clipping */
} rt_apply;

typedef struct rt_model {
    const char *name;
    void *ctx;
    bool (*train_step)(void *ctx, rt_batch *b, char *err, size_t len); /* updates the params */
    bool (*evaluate)(void *ctx, rt_batch *b, char *err, size_t len);   /* dropout off, no update */
    /* The split step of --accumulate and --clip-norm, NULL where the model has none:
     * accumulate adds the batch's gradients, weighted by its rows, into accumulators (loss and
     * metrics as train_step); apply updates from them and zeroes them (with several ranks,
     * from their sum over the ranks: rt_apply.rows counts the global batches' rows). */
    bool (*accumulate)(void *ctx, rt_batch *b, char *err, size_t len);
    bool (*apply)(void *ctx, const rt_apply *u, char *err, size_t len);
    int nmetrics;
    const char *metrics[RT_MAX_METRICS]; /* "correct" is reported as accuracy */
    int nparams;
    rt_param *params;
    /* Optional, for a device that must not wait on the host each step: the epoch's batches
     * in perm's order in one call, as train_step would take them one by one; the sums of
     * loss * rows and of each metric, and the first step whose loss was not finite (-1). */
    bool (*train_epoch)(void *ctx, const int64_t *perm, int64_t n, const struct rt_fit *f, int64_t epoch,
                        uint64_t first_step, double *loss_sum, double *metric_sum, int64_t *bad_step, char *err,
                        size_t len);
} rt_model;

/* What an epoch measured; the test fields are NaN without a test set. */
typedef struct rt_epoch {
    int64_t epoch; /* 1-based */
    uint64_t step; /* the global step after the epoch: the next epoch's first */
    double train_loss, test_loss, seconds;
    double train_metric[RT_MAX_METRICS], test_metric[RT_MAX_METRICS]; /* per sample */
} rt_epoch;

/* The learning rate over a run (--lr-schedule): at step t (from 0) of T in all, a warm-up of W
 * steps lr*(t+1)/W, then constant lr; step decay lr*gamma^floor((epoch-1)/K) (epoch from 1,
 * as torch.optim.lr_scheduler.StepLR); or cosine M + (lr - M)*(1 + cos(pi*(t-W)/(T-W)))/2. A
 * function of (t, epoch), so a resumed run follows it as the uninterrupted one did. */
typedef enum rt_lr_kind { RT_LR_CONSTANT, RT_LR_STEP, RT_LR_COSINE } rt_lr_kind;
typedef struct rt_schedule {
    rt_lr_kind kind;
    int64_t warmup;      /* W: steps */
    int64_t step_epochs; /* K (step); 0 is taken for 1 */
    double gamma;        /* step's factor */
    double lr_min;       /* M (cosine) */
} rt_schedule;

#define RT_SCHEDULE_DEFAULT ((rt_schedule){RT_LR_CONSTANT, 0, 1, 0.1, 0})
static inline bool rt_schedule_is_constant(const rt_schedule *s) { return s->kind == RT_LR_CONSTANT && s->warmup <= 0; }
double rt_lr_at(const rt_schedule *s, double lr, uint64_t t, int64_t epoch, uint64_t total);

/* The schedule's options, shared by the binaries' train and aotgrad run: getopt_long entries
 * with vals first .. first + 4 (options.h), and the value of option first + k into s. */
#define RT_SCHEDULE_OPTIONS(first)                                                                                    \
    {"lr-schedule", required_argument, NULL, (first)}, {"warmup-steps", required_argument, NULL, (first) + 1},        \
        {"lr-step-epochs", required_argument, NULL, (first) + 2}, {"lr-gamma", required_argument, NULL, (first) + 3}, \
        {"lr-min", required_argument, NULL, (first) + 4}
#define RT_SCHEDULE_HELP                                                                             \
    "  --lr-schedule S  constant (the default), step or cosine; --warmup-steps W ramps lr up over\n" \
    "                   the first W steps (lr*(t+1)/W), for any of them\n"                           \
    "  --lr-step-epochs K, --lr-gamma G   step: lr*G^floor((epoch-1)/K) (defaults 1 and 0.1)\n"      \
    "  --lr-min M       cosine: from lr down to M at the last step (default 0)\n"
bool rt_schedule_take(rt_schedule *s, int k, const char *value, char *err, size_t len);
/* The split step's options, as the binaries' train and aotgrad run document them */
#define RT_SPLIT_HELP                                                                                   \
    "  --accumulate K   sum the gradients of K batches, then update once: a batch of K times --batch\n" \
    "                   trained in the memory of one (the epoch's last group may be short)\n"           \
    "  --clip-norm X    scale the gradients by min(1, X/(norm + 1e-6)) of their global L2 norm\n"       \
    "                   before each update, as torch.nn.utils.clip_grad_norm_ (CPU only, as\n"          \
    "                   --accumulate: both run the split train step, docs/binary.md)\n"
/* The schedule as a checkpoint's metadata holds it: "constant" (no warm-up), else "KIND
 * warmup=W step_epochs=K gamma=G lr_min=M" (returns buf); and back, strictly. */
const char *rt_schedule_text(const rt_schedule *s, char *buf, size_t len);
bool rt_schedule_parse(const char *text, rt_schedule *s);

typedef struct rt_fit {
    int64_t epochs, batch;
    rt_schedule schedule;
    /* --accumulate K: one update from the gradients of K batches (the epoch's last group may
     * be short: it updates from the rows it has); --clip-norm X (0: none). Either runs the
     * model's split step; the schedule then counts updates, ceil(batches / K) an epoch. */
    int64_t accumulate;
    double clip_norm;
    int64_t eval_batch; /* 0: max(batch, 1000) */
    double lr, wd;
    uint32_t seed;
    FILE *log;      /* the epoch lines */
    FILE *progress; /* a progress bar within each epoch (a terminal), or NULL */
    /* resuming: epochs 1..first_epoch-1 are done and the next step is first_step (the
     * shuffle of an epoch and dropout's masks depend on (seed, epoch) and (seed, step) only,
     * so a resumed run computes what an uninterrupted one does) */
    int64_t first_epoch; /* 0 or 1: from the start */
    uint64_t first_step;
    /* after each epoch's line; false stops training with its message */
    bool (*on_epoch)(void *ctx, const rt_epoch *e, char *err, size_t len);
    void *ctx;
    /* data-parallel training, or NULL: every rank takes its share of each global batch (and
     * of the test set), and the epoch's figures are summed over the ranks */
    rt_dist *dist;
} rt_fit;

/* Train epochs first_epoch..f->epochs, one line per epoch:
 *   epoch 3/10  train_loss 0.4821  train_acc 0.8312  test_acc 0.8190  1.520s  39473 samples/s
 * A non-finite loss stops training with "step S (epoch E): the loss is nan; stopping" (the
 * parameters then hold that step's update: do not save them). last gets the final epoch's
 * figures. */
bool rt_fit_model(const rt_model *m, const rt_dataset *train, const rt_dataset *test, const rt_fit *f, rt_epoch *last,
                  char *err, size_t len);

/* The share of a batch's gradient a rank's sum weights (rank_share): its rows over the global
 * batch's; 1 on one process. */
static inline double rt_batch_share(const rt_batch *b)
{
    return b->idle ? 0 : b->global_n > 0 ? (double)b->n / (double)b->global_n : 1;
}

/* Mean loss and per-sample metrics of the model over a dataset, in batches. */
bool rt_evaluate(const rt_model *m, const rt_dataset *d, int64_t batch, double *loss, double *metric, char *err,
                 size_t len);

/* Prints each parameter of at most 8 elements, beside the truth where synthetic data has one. */
void rt_print_small_params(const rt_model *m, const rt_truth *truth, FILE *f);

#endif
