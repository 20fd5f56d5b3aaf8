/* The runtime's training loop with a model of callbacks: batches cover every sample once per
 * epoch with the last partial batch kept, steps count globally, a non-finite loss stops
 * training at its step, dataset specs are read as documented, and a test set is checked as
 * the training set is. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train.h"

typedef struct counter {
    int64_t rows[64];
    int batches;
    uint64_t steps[64];
    int64_t seen[1000]; /* times each sample (by its first feature) was trained on */
    uint64_t nan_at;    /* the step whose loss is NaN, or 0 */
    double lr[64];      /* the learning rate each step was given */
} counter;

static bool count_step(void *ctx, rt_batch *b, char *err, size_t len)
{
    (void)err, (void)len;
    counter *c = ctx;
    if (c->batches < 64) {
        c->rows[c->batches] = b->n;
        c->steps[c->batches] = b->step;
        c->lr[c->batches] = b->lr;
    }
    c->batches++;
    for (int64_t i = 0; i < b->n; i++)
        c->seen[(int64_t)((const float *)b->x)[i * 2]]++;
    b->loss = c->nan_at && b->step == c->nan_at ? NAN : 1.0;
    b->metric[0] = (double)b->n / 2;
    return true;
}

static bool count_eval(void *ctx, rt_batch *b, char *err, size_t len)
{
    (void)ctx, (void)err, (void)len;
    b->loss = 0.5;
    b->metric[0] = (double)b->n;
    return true;
}

/* 1000 samples whose first feature is their index */
static rt_dataset numbered(void)
{
    rt_dataset d;
    char err[256];
    double w[2] = {1, 1};
    cr_assert(rt_synthetic_linear(w, 2, 0, 1000, 0, 1, 1, &d, err, sizeof err), "%s", err);
    for (int64_t i = 0; i < d.n; i++)
        ((float *)d.x)[i * 2] = (float)i;
    return d;
}

Test(train_loop, every_sample_once_per_epoch_last_batch_kept)
{
    rt_dataset d = numbered();
    counter c = {0};
    rt_model m = {.name = "count",
                  .ctx = &c,
                  .train_step = count_step,
                  .evaluate = count_eval,
                  .nmetrics = 1,
                  .metrics = {"correct"}};
    FILE *log = tmpfile();
    rt_fit f = {.epochs = 2, .batch = 256, .lr = 0.1, .seed = 3, .log = log};
    rt_epoch last;
    char err[256];
    cr_assert(rt_fit_model(&m, &d, &d, &f, &last, err, sizeof err), "%s", err);
    cr_assert_eq(c.batches, 8);
    int64_t want[8] = {256, 256, 256, 232, 256, 256, 256, 232};
    for (int i = 0; i < 8; i++) {
        cr_expect_eq(c.rows[i], want[i], "batch %d has %lld rows", i, (long long)c.rows[i]);
        cr_expect_eq(c.steps[i], (uint64_t)i, "batch %d is step %llu", i, (unsigned long long)c.steps[i]);
    }
    for (int i = 0; i < 1000; i++)
        cr_expect_eq(c.seen[i], 2, "sample %d seen %lld times in 2 epochs", i, (long long)c.seen[i]);
    cr_expect_float_eq(last.train_loss, 1.0, 1e-12);
    cr_expect_float_eq(last.train_metric[0], 0.5, 1e-12);
    cr_expect_float_eq(last.test_loss, 0.5, 1e-12);
    cr_expect_float_eq(last.test_metric[0], 1.0, 1e-12);
    char line[512] = {0};
    rewind(log);
    cr_assert_not_null(fgets(line, sizeof line, log));
    cr_expect(strncmp(line, "epoch 1/2  train_loss 1.0000  train_acc 0.5000  test_acc 1.0000  ", 64) == 0, "%s", line);
    fclose(log);
    rt_dataset_free(&d);
}

/* --lr-schedule: each step's lr is the formula's, written out here; 1000 samples in batches
 * of 256 are 4 steps an epoch, 12 in 3 epochs */
Test(train_loop, each_step_takes_the_scheduled_lr)
{
    static const struct {
        rt_schedule s;
        double want[12];
    } cases[] = {
        {{RT_LR_CONSTANT, 0, 1, 0.1, 0}, {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}},
        /* warm-up of 4: lr*(t+1)/4 */
        {{RT_LR_CONSTANT, 4, 1, 0.1, 0}, {0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}},
        /* step: lr*0.5^floor((epoch-1)/1) */
        {{RT_LR_STEP, 0, 1, 0.5, 0}, {0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025}},
        /* step every 2 epochs by 0.1, after 2 steps of warm-up */
        {{RT_LR_STEP, 2, 2, 0.1, 0}, {0.05, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases + 2; k++) {
        rt_dataset d = numbered();
        counter c = {0};
        rt_model m = {.name = "count", .ctx = &c, .train_step = count_step, .evaluate = count_eval};
        FILE *log = tmpfile();
        rt_fit f = {.epochs = 3, .batch = 256, .lr = 0.1, .seed = 3, .log = log};
        double want[12];
        if (k < sizeof cases / sizeof *cases) {
            f.schedule = cases[k].s;
            memcpy(want, cases[k].want, sizeof want);
        } else { /* cosine from 0.1 to M = 0.01 over the 12 steps (k - 4 of warm-up: 0, then 3) */
            int w = k == 4 ? 0 : 3;
            f.schedule = (rt_schedule){RT_LR_COSINE, w, 1, 0.1, 0.01};
            for (int t = 0; t < 12; t++)
                want[t] = t < w ? 0.1 * (t + 1) / w : 0.01 + 0.09 * (1 + cos(M_PI * (t - w) / (12.0 - w))) / 2;
        }
        rt_epoch last;
        char err[256];
        cr_assert(rt_fit_model(&m, &d, NULL, &f, &last, err, sizeof err), "%s", err);
        cr_assert_eq(c.batches, 12);
        for (int t = 0; t < 12; t++)
            cr_expect(fabs(c.lr[t] - want[t]) <= 1e-15, "case %zu step %d: lr %.17g, want %.17g", k, t, c.lr[t],
                      want[t]);
        fclose(log);
        rt_dataset_free(&d);
    }
}

/* The split step: a model's accumulate and apply, recorded */
typedef struct split_log {
    int accumulated, applied;
    int64_t rows[16]; /* each apply's rows */
    double lr[16];    /* and its lr, clip */
    double clip[16];
    int at_batch[16]; /* the batches accumulated before it */
} split_log;

static bool log_accumulate(void *ctx, rt_batch *b, char *err, size_t len)
{
    (void)err, (void)len;
    split_log *l = ctx;
    l->accumulated++;
    b->loss = 1.0;
    return true;
}

static bool log_apply(void *ctx, const rt_apply *u, char *err, size_t len)
{
    (void)err, (void)len;
    split_log *l = ctx;
    if (l->applied < 16) {
        l->rows[l->applied] = u->rows, l->lr[l->applied] = u->lr, l->clip[l->applied] = u->clip_norm;
        l->at_batch[l->applied] = l->accumulated;
    }
    l->applied++;
    return true;
}

/* --accumulate 3 over 4 batches an epoch (1000 samples, batch 256): an update after batches
 * 3 and 4 of each epoch (a short group of 232 rows last, never across epochs), the schedule
 * counting updates (2 an epoch, 4 in all: cosine at t = 0..3 of 4); --clip-norm alone runs
 * the split step with groups of 1; without a split step the options are refused */
Test(train_loop, accumulate_updates_once_a_group)
{
    rt_dataset d = numbered();
    split_log l = {0};
    rt_model m = {.name = "split", .ctx = &l, .accumulate = log_accumulate, .apply = log_apply, .evaluate = count_eval};
    FILE *log = tmpfile();
    rt_fit f = {.epochs = 2, .batch = 256, .lr = 0.1, .seed = 3, .log = log, .accumulate = 3};
    f.schedule = (rt_schedule){RT_LR_COSINE, 0, 1, 0.1, 0};
    rt_epoch last;
    char err[256];
    cr_assert(rt_fit_model(&m, &d, NULL, &f, &last, err, sizeof err), "%s", err);
    cr_assert_eq(l.accumulated, 8);
    cr_assert_eq(l.applied, 4);
    static const int64_t rows[] = {768, 232, 768, 232};
    static const int at[] = {3, 4, 7, 8};
    for (int k = 0; k < 4; k++) {
        double lr = 0.1 * (1 + cos(M_PI * k / 4.0)) / 2;
        cr_expect(l.rows[k] == rows[k] && l.at_batch[k] == at[k] && fabs(l.lr[k] - lr) < 1e-15 && isinf(l.clip[k]),
                  "update %d: %lld rows after batch %d, lr %.17g (want %lld, %d, %.17g), clip %g", k,
                  (long long)l.rows[k], l.at_batch[k], l.lr[k], (long long)rows[k], at[k], lr, l.clip[k]);
    }
    memset(&l, 0, sizeof l);
    f = (rt_fit){.epochs = 1, .batch = 256, .lr = 0.1, .seed = 3, .log = log, .clip_norm = 2.5};
    cr_assert(rt_fit_model(&m, &d, NULL, &f, &last, err, sizeof err), "%s", err);
    cr_expect(l.applied == 4 && l.rows[0] == 256 && l.clip[3] == 2.5, "%d updates, %lld rows, clip %g", l.applied,
              (long long)l.rows[0], l.clip[3]);
    m.apply = NULL;
    cr_expect(!rt_fit_model(&m, &d, NULL, &f, &last, err, sizeof err) &&
                  strstr(err, "--accumulate and --clip-norm need the split train step, which this model lacks"),
              "%s", err);
    fclose(log);
    rt_dataset_free(&d);
}

/* The schedule's options say what they take */
Test(train_loop, schedule_options_are_checked)
{
    rt_schedule s = RT_SCHEDULE_DEFAULT;
    char err[300];
    cr_expect(rt_schedule_take(&s, 0, "cosine", err, sizeof err) && s.kind == RT_LR_COSINE);
    cr_expect_not(rt_schedule_take(&s, 0, "linear", err, sizeof err));
    cr_expect_str_eq(err, "--lr-schedule takes constant, step or cosine, not 'linear'");
    cr_expect_not(rt_schedule_take(&s, 2, "0", err, sizeof err));
    cr_expect_str_eq(err, "--lr-step-epochs takes a whole number from 1 to 1000000000, not '0'");
    cr_expect_not(rt_schedule_take(&s, 3, "-1", err, sizeof err));
    cr_expect_str_eq(err, "--lr-gamma takes a number from 0 to 3.40282e+38, not '-1'");
    cr_expect(rt_schedule_take(&s, 1, "50", err, sizeof err) && s.warmup == 50);
    /* as a checkpoint holds it, and back; anything else is refused */
    char text[200];
    cr_expect_str_eq(rt_schedule_text(&s, text, sizeof text), "cosine warmup=50 step_epochs=1 gamma=0.1 lr_min=0");
    rt_schedule back;
    cr_expect(rt_schedule_parse(text, &back) && back.kind == RT_LR_COSINE && back.warmup == 50 && back.gamma == 0.1);
    cr_expect(rt_schedule_parse("constant", &back) && rt_schedule_is_constant(&back));
    const char *bad[] = {"cosine",
                         "cosine warmup=50",
                         "linear warmup=0 step_epochs=1 gamma=0.1 lr_min=0",
                         "step warmup=-1 step_epochs=1 gamma=0.1 lr_min=0",
                         "step warmup=0 step_epochs=1 gamma=0.10 lr_min=0", /* not as written */
                         "step warmup=0 step_epochs=1 gamma=0.1 lr_min=0 extra"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        cr_expect_not(rt_schedule_parse(bad[k], &back), "%s", bad[k]);
}

Test(train_loop, a_nan_loss_stops_at_its_step)
{
    rt_dataset d = numbered();
    counter c = {.nan_at = 5};
    rt_model m = {.name = "count", .ctx = &c, .train_step = count_step, .evaluate = count_eval};
    FILE *log = tmpfile();
    rt_fit f = {.epochs = 3, .batch = 256, .lr = 0.1, .seed = 3, .log = log};
    rt_epoch last;
    char err[256];
    cr_assert_not(rt_fit_model(&m, &d, NULL, &f, &last, err, sizeof err));
    cr_expect_str_eq(err, "step 5 (epoch 2): the loss is nan; stopping");
    cr_expect_eq(c.batches, 6);
    fclose(log);
    rt_dataset_free(&d);
}

Test(train_loop, dataset_specs)
{
    rt_dataset tr, te;
    rt_truth t;
    char err[512];
    cr_assert(rt_load_data("synthetic-linear w=0.01x200 b=0.05 train=20 test=100 noise=0.01", NULL, 200, 1, 0, &tr, &te,
                           &t, err, sizeof err),
              "%s", err);
    cr_expect_eq(tr.n, 20);
    cr_expect_eq(te.n, 100);
    cr_expect_eq(t.nw, 200);
    cr_expect_float_eq(t.w[199], 0.01, 1e-15);
    cr_expect_float_eq(t.b, 0.05, 1e-15);
    rt_dataset_free(&tr);
    rt_dataset_free(&te);

    const struct {
        const char *spec;
        int64_t features;
        const char *message;
    } bad[] = {
        {"synthetic-linear w=2,-3.4 b=4.2", 2, "data \"synthetic-linear w=2,-3.4 b=4.2\": needs w=, b= and train="},
        {"synthetic-linear w=2,x b=1 train=5", 2,
         "data \"synthetic-linear w=2,x b=1 train=5\": cannot read 'w=2,x' (expected w=LIST b=NUMBER train=COUNT "
         "[test=COUNT] [noise=STD])"},
        {"synthetic-linear w=2,-3.4 b=4.2 train=10", 3,
         "data synthetic-linear w=2,-3.4 b=4.2 train=10: the training "
         "set has 2 values a sample, but the model's input takes 3"},
        {NULL, 2, "no dataset: the model declares none, so give --data"},
        {"", 2,
         "empty --data: expected fashion-mnist, a directory of IDX files, TRAIN.csv[,TEST.csv] or "
         "synthetic-linear ..."},
        {"x.csv,", 2, "data x.csv,: the test file's name is empty, expected TRAIN.csv[,TEST.csv]"},
        {",x.csv", 2, "data ,x.csv: the training file's name is empty, expected TRAIN.csv[,TEST.csv]"},
        /* non-finite numbers train to nan; a repeated key would silently win */
        {"synthetic-linear w=nan,inf b=1 train=5", 2,
         "data \"synthetic-linear w=nan,inf b=1 train=5\": 'w=nan,inf': w= takes finite numbers"},
        {"synthetic-linear w=2 b=inf train=5", 1,
         "data \"synthetic-linear w=2 b=inf train=5\": 'b=inf': b= takes finite numbers"},
        {"synthetic-linear w=2 b=1 train=5 noise=nan", 1,
         "data \"synthetic-linear w=2 b=1 train=5 noise=nan\": 'noise=nan': noise= takes finite numbers"},
        {"synthetic-linear w=2 b=1 train=5 train=7", 1,
         "data \"synthetic-linear w=2 b=1 train=5 train=7\": train= given twice"},
        {"synthetic-linear w=2 b=1 w=3 train=5", 1, "data \"synthetic-linear w=2 b=1 w=3 train=5\": w= given twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_not(rt_load_data(bad[i].spec, NULL, bad[i].features, 1, 0, &tr, &te, &t, err, sizeof err));
        cr_expect_str_eq(err, bad[i].message);
    }
}

/* ---- the test set is held to every check the training set is ---- */

static char dir[64];

static void put(const char *name, const uint8_t *bytes, size_t n)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* dir/SET-images-idx3-ubyte of n rows x cols images and dir/SET-labels-idx1-ubyte of m labels,
 * label i being i % 3, but label `odd` (when below m) being 7. */
static void idx_set(const char *set, uint32_t n, uint32_t rows, uint32_t cols, uint32_t m, uint32_t odd)
{
    static uint8_t buf[16 + 64 * 64];
    char name[64];
    be32(buf, 0x803), be32(buf + 4, n), be32(buf + 8, rows), be32(buf + 12, cols);
    for (uint32_t i = 0; i < n * rows * cols; i++)
        buf[16 + i] = (uint8_t)i;
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", set);
    put(name, buf, 16 + n * rows * cols);
    be32(buf, 0x801), be32(buf + 4, m);
    for (uint32_t i = 0; i < m; i++)
        buf[8 + i] = (uint8_t)(i == odd ? 7 : i % 3);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", set);
    put(name, buf, 8 + m);
}

static void make_dir(void)
{
    strcpy(dir, "/tmp/ag_train_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    const char *names[] = {"train-images-idx3-ubyte",
                           "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte",
                           "t10k-labels-idx1-ubyte",
                           "a.csv",
                           "b.csv"};
    char p[128];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        snprintf(p, sizeof p, "%s/%s", dir, names[i]), unlink(p);
    rmdir(dir);
}

/* Load dir as a model of `features` values and `classes` classes takes it; expect fmt, whose
 * %s is dir, or success for NULL. */
static void expect_dir(int64_t features, int classes, const char *fmt)
{
    rt_dataset tr, te;
    rt_truth t;
    char err[512], want[512];
    bool ok = rt_load_data(dir, NULL, features, 1, classes, &tr, &te, &t, err, sizeof err);
    if (!fmt) {
        cr_assert(ok, "%s", err);
        cr_assert_eq(tr.features, features);
        cr_assert_eq(te.features, features);
        rt_dataset_free(&tr), rt_dataset_free(&te);
        return;
    }
    cr_assert_not(ok, "loaded %s", fmt);
    cr_assert_null(tr.x);
    cr_assert_null(te.x);
    snprintf(want, sizeof want, fmt, dir, dir); /* fmt names dir once or twice */
    cr_assert_str_eq(err, want);
}

Test(train_loop, test_set_checked_as_the_training_set, .init = make_dir, .fini = remove_dir)
{
    idx_set("train", 5, 3, 2, 5, 99);
    idx_set("t10k", 4, 3, 2, 4, 99);
    expect_dir(6, 3, NULL);
    /* test images of another size: refused from the header, in predict's words (they used to
     * be read as the model's size: a heap overflow, or a wrong accuracy) */
    idx_set("t10k", 4, 5, 1, 4, 99);
    expect_dir(6, 3,
               "%s/t10k-images-idx3-ubyte: offset 8: 5 x 1 images are 5 values a sample, expected 6 (the "
               "model's features)");
    idx_set("t10k", 4, 3, 3, 4, 99);
    expect_dir(6, 3,
               "%s/t10k-images-idx3-ubyte: offset 8: 3 x 3 images are 9 values a sample, expected 6 (the "
               "model's features)");
    idx_set("t10k", 4, 3, 2, 3, 99);
    expect_dir(6, 3,
               "%s/t10k-labels-idx1-ubyte: offset 4: 3 labels, expected 4 (the image count of "
               "%s/t10k-images-idx3-ubyte)");
    idx_set("t10k", 4, 3, 2, 4, 2);
    expect_dir(6, 3, "%s/t10k-labels-idx1-ubyte: offset 10 (label 2): label 7 out of range 0..2");
    /* and the training set, the same way */
    idx_set("t10k", 4, 3, 2, 4, 99);
    idx_set("train", 5, 2, 2, 5, 99);
    expect_dir(6, 3,
               "%s/train-images-idx3-ubyte: offset 8: 2 x 2 images are 4 values a sample, expected 6 (the "
               "model's features)");

    /* a CSV test set with a column too many */
    char spec[300], a[128], b[128], err[512], want[512];
    snprintf(a, sizeof a, "%s/a.csv", dir), snprintf(b, sizeof b, "%s/b.csv", dir);
    put("a.csv", (const uint8_t *)"1,2,0\n3,4,1\n", 12);
    put("b.csv", (const uint8_t *)"1,2,9,0\n", 8);
    snprintf(spec, sizeof spec, "%s,%s", a, b);
    rt_dataset tr, te;
    rt_truth t;
    cr_assert_not(rt_load_data(spec, NULL, 2, 1, 2, &tr, &te, &t, err, sizeof err));
    snprintf(want, sizeof want, "%s:1: 4 fields, expected 3 (2 features + 1 target)", b);
    cr_assert_str_eq(err, want);
    put("b.csv", (const uint8_t *)"1,2,2\n", 6); /* a class past the model's */
    cr_assert_not(rt_load_data(spec, NULL, 2, 1, 2, &tr, &te, &t, err, sizeof err));
    snprintf(want, sizeof want, "%s:1:3: expected an integer class label in 0..1, found '2'", b);
    cr_assert_str_eq(err, want);
    cr_assert_null(tr.x);
}
