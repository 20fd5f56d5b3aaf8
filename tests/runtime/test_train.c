/* The runtime's training loop with a model of callbacks: batches cover every sample once per
 * epoch with the last partial batch kept, steps count globally, a non-finite loss stops
 * training at its step, and dataset specs are read as documented. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train.h"

typedef struct counter {
    int64_t rows[64];
    int batches;
    uint64_t steps[64];
    int64_t seen[1000]; /* times each sample (by its first feature) was trained on */
    uint64_t nan_at;    /* the step whose loss is NaN, or 0 */
} counter;

static bool count_step(void *ctx, rt_batch *b, char *err, size_t len)
{
    (void)err, (void)len;
    counter *c = ctx;
    if (c->batches < 64) {
        c->rows[c->batches] = b->n;
        c->steps[c->batches] = b->step;
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
    rt_model m = {.name = "count", .ctx = &c, .train_step = count_step, .evaluate = count_eval, .nmetrics = 1,
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
    cr_assert(rt_load_data("synthetic-linear w=0.01x200 b=0.05 train=20 test=100 noise=0.01", 200, 1, 0, &tr, &te,
                           &t, err, sizeof err), "%s", err);
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
        {"synthetic-linear w=2,-3.4 b=4.2 train=10", 3, "data synthetic-linear w=2,-3.4 b=4.2 train=10: 2 values per "
                                                        "sample, but the model's input takes 3"},
        {"", 2, "no dataset: the model declares none, so give --data"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_not(rt_load_data(bad[i].spec, bad[i].features, 1, 0, &tr, &te, &t, err, sizeof err));
        cr_expect_str_eq(err, bad[i].message);
    }
}
