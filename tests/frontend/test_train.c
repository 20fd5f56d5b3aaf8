/* Training through the interpreter, as a user runs it: `aotgrad run` on the d2l models,
 * on the book's synthetic data and on small subsets of Fashion-MNIST. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "run_cmd.h"
#include "subset.h"
#include "data.h"

static char *aotgrad(const char *args, int *status)
{
    const char *bin = getenv("AOTGRAD_BIN");
    cr_assert_not_null(bin, "AOTGRAD_BIN is not set (run through ctest)");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>&1", AG_SOURCE_DIR, bin, args);
    return run_cmd(cmd, status);
}

Test(train, linreg_recovers_the_true_parameters)
{
    int st;
    char *out = aotgrad("run models/linreg.c", &st);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "epoch 3/3  train_loss "), "%s", out);
    double w = last_value(out, "\nw "), werr = 0, berr = 0;
    (void)w;
    const char *wl = strstr(out, "\nw "), *bl = strstr(out, "\nb ");
    cr_assert(wl && bl, "%s", out);
    cr_assert_eq(sscanf(strstr(wl, "max error"), "max error %lf", &werr), 1);
    cr_assert_eq(sscanf(strstr(bl, "max error"), "max error %lf", &berr), 1);
    cr_expect_lt(werr, 0.01, "|w - [2, -3.4]| = %g\n%s", werr, out);
    cr_expect_lt(berr, 0.01, "|b - 4.2| = %g\n%s", berr, out);
    free(out);
}

/* d2l 3.7: without decay the 20-sample fit overfits; with wd = 3 the test loss is lower. */
/* aotgrad run writes --metrics and --plot as a binary's train does, checks their paths
 * before training, and takes --threads. */
Test(train, run_writes_metrics_and_a_plot)
{
    int st;
    char *out = aotgrad("run models/linreg.c --epochs 2 --threads 1 --metrics /tmp/aotgrad-run-m.csv --plot "
                        "/tmp/aotgrad-run-p.svg",
                        &st);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    out = aotgrad("run models/linreg.c --epochs 1 --metrics /nonexistent-aotgrad/m.csv", &st);
    cr_expect(WEXITSTATUS(st) == 1 && strstr(out, "--metrics /nonexistent-aotgrad/m.csv: cannot write") &&
                  !strstr(out, "epoch 1/1"),
              "%s", out);
    free(out);
    out = run_cmd("cat /tmp/aotgrad-run-m.csv; head -c 4 /tmp/aotgrad-run-p.svg; rm -f /tmp/aotgrad-run-m.csv "
                  "/tmp/aotgrad-run-p.svg",
                  &st);
    cr_expect(strncmp(out, "epoch,train_loss,train_acc,test_loss,test_acc,seconds,samples_per_s\n1,", 70) == 0 &&
                  strstr(out, "\n2,") && strstr(out, "<svg"),
              "%s", out);
    free(out);
}

Test(train, weight_decay_fights_overfitting)
{
    int st;
    char *plain = aotgrad("run models/weight_decay.c --wd 0", &st);
    cr_assert_eq(st, 0, "%s", plain);
    char *decayed = aotgrad("run models/weight_decay.c --wd 3", &st);
    cr_assert_eq(st, 0, "%s", decayed);
    double train0 = last_value(plain, "train_loss "), test0 = last_value(plain, "test_loss ");
    double test3 = last_value(decayed, "test_loss ");
    cr_expect(train0 * 100 < test0, "wd 0: train loss %g is not far below test loss %g", train0, test0);
    cr_expect(test3 < test0, "wd 3: test loss %g is not below wd 0's %g", test3, test0);
    free(plain);
    free(decayed);
}

/* Each classifier learns on 4000 images in a few epochs, and the same seed gives the same
 * parameters, bit for bit. */
Test(train, classifiers_learn_on_a_subset_and_repeat_exactly)
{
    char dir[] = "/tmp/aotgrad-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    write_subset(dir, 4000);
    const char *models[] = {"softmax", "mlp", "mlp_dropout"};
    const double bar[] = {0.6, 0.6, 0.4}; /* chance is 0.1; dropout at lr 0.5 starts slower */
    for (int i = 0; i < 3; i++) {
        char args[1024], a[600], b[600];
        snprintf(a, sizeof a, "%s/%s.1.safetensors", dir, models[i]);
        snprintf(b, sizeof b, "%s/%s.2.safetensors", dir, models[i]);
        int st;
        snprintf(args, sizeof args, "run models/%s.c --data %s --epochs 5 --seed 2 --save %s", models[i], dir, a);
        char *out = aotgrad(args, &st);
        cr_assert_eq(st, 0, "%s", out);
        double acc = last_value(out, "test_acc ");
        cr_expect_gt(acc, bar[i], "%s: test accuracy %g after 5 epochs on 4000 images\n%s", models[i], acc, out);
        double first = strtod(strstr(out, "train_loss ") + 11, NULL), last = last_value(out, "train_loss ");
        cr_expect_lt(last, first, "%s: the loss did not fall\n%s", models[i], out);
        free(out);
        snprintf(args, sizeof args, "run models/%s.c --data %s --epochs 5 --seed 2 --save %s", models[i], dir, b);
        out = aotgrad(args, &st);
        cr_assert_eq(st, 0, "%s", out);
        free(out);
        expect_same_tensors(a, b); /* the history differs: its seconds */
        unlink(a);
        unlink(b);
    }
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_assert_eq(system(rm), 0);
}

/* LeNet's modern variant (convolutions, max pooling) learns on 4000 images as a standalone
 * binary, and the same seed gives the same parameters, bit for bit (the classic sigmoid one
 * needs more: d2l's first epochs stay at chance). */
Test(train, lenet_binary_learns_on_a_subset_and_repeats_exactly)
{
    char dir[] = "/tmp/aotgrad-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    write_subset(dir, 4000);
    char args[1024], saved[2][600];
    int st;
    snprintf(args, sizeof args, "build models/lenet.c --set act=relu -o %s/lenet", dir);
    char *out = aotgrad(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    for (int run = 0; run < 2; run++) {
        snprintf(saved[run], sizeof saved[run], "%s/lenet.%d.safetensors", dir, run);
        out = run_fmt(&st, "%s/lenet train --data %s --epochs 3 --seed 2 --threads 2 --save %s 2>&1", dir, dir,
                      saved[run]);
        cr_assert_eq(st, 0, "%s", out);
        double acc = last_value(out, "test_acc ");
        /* 3 epochs of 16 steps swing (0.47-0.57): bars far from chance and from the swing */
        cr_expect_gt(acc, 0.3, "lenet: test accuracy %g after 3 epochs on 4000 images\n%s", acc, out);
        double first = strtod(strstr(out, "train_loss ") + 11, NULL), last = last_value(out, "train_loss ");
        cr_expect_lt(last, 0.8 * first, "lenet: the loss did not fall by a fifth\n%s", out);
        free(out);
    }
    expect_same_tensors(saved[0], saved[1]);
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_assert_eq(system(rm), 0);
}

/* The losses and accuracies of an epoch line, without its seconds */
static void epoch_figures(const char *out, int epoch, char *fig, size_t len)
{
    char key[32];
    snprintf(key, sizeof key, "epoch %d/", epoch);
    const char *at = strstr(out, key), *end = at ? strstr(at, "test_acc ") : NULL;
    cr_assert(at && end, "no epoch %d in\n%s", epoch, out);
    snprintf(fig, len, "%.*s", (int)(end + 15 - at), at);
}

/* The same images as IDX bytes or as CSV numbers train the u8-input model the same: the
 * interpreter converts the file's dtype to the model's, as the binaries do. */
Test(train, csv_numbers_and_idx_bytes_train_the_same)
{
    char dir[] = "/tmp/aotgrad-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    write_subset(dir, 600);
    rt_dataset d;
    char err[512], csv[600];
    cr_assert(rt_load_mnist_dir(dir, true, 10, &d, err, sizeof err), "%s", err);
    snprintf(csv, sizeof csv, "%s/train.csv", dir);
    FILE *f = fopen(csv, "w");
    cr_assert_not_null(f);
    for (int64_t i = 0; i < d.n; i++) {
        for (int64_t j = 0; j < d.features; j++)
            fprintf(f, "%d,", ((const uint8_t *)d.x)[i * d.features + j]);
        fprintf(f, "%d\n", (int)((const int32_t *)d.y)[i]);
    }
    cr_assert_eq(fclose(f), 0);
    rt_dataset_free(&d);
    char args[1400], a[256], b[256];
    int st;
    snprintf(args, sizeof args, "run models/softmax.c --data %s --epochs 2", dir);
    char *idx = aotgrad(args, &st);
    cr_assert_eq(st, 0, "%s", idx);
    snprintf(args, sizeof args, "run models/softmax.c --data %s,%s --epochs 2", csv, csv);
    char *fromcsv = aotgrad(args, &st);
    cr_assert_eq(st, 0, "%s", fromcsv);
    for (int e = 1; e <= 2; e++) {
        epoch_figures(idx, e, a, sizeof a);
        epoch_figures(fromcsv, e, b, sizeof b);
        cr_expect_str_eq(a, b, "IDX:\n%s\nCSV:\n%s", idx, fromcsv);
    }
    cr_expect_gt(last_value(fromcsv, "test_acc "), 0.3, "%s", fromcsv);
    free(idx);
    free(fromcsv);
    /* a number that is no pixel is refused, not saturated */
    snprintf(args, sizeof args, "sed -i '3s/^[0-9]*,/300,/' %s", csv);
    cr_assert_eq(system(args), 0);
    snprintf(args, sizeof args, "run models/softmax.c --data %s --epochs 1", csv);
    char *bad = aotgrad(args, &st);
    cr_expect_neq(st, 0, "%s", bad);
    cr_expect(strstr(bad, "train.csv: sample 3, feature 1: 300 is not a u8 (a whole number 0..255)"), "%s", bad);
    free(bad);
    snprintf(args, sizeof args, "rm -rf %s", dir);
    cr_assert_eq(system(args), 0);
}

/* The activation is an option the command line sets, and the IR carries the choice. */
Test(train, options_reach_the_model)
{
    int st;
    char *out = aotgrad("ir models/mlp.c --set act=tanh", &st);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "= tanh %"), "%s", out);
    cr_expect(strstr(out, "option act=\"tanh\" choices=\"relu|sigmoid|tanh\""), "%s", out);
    free(out);
    out = aotgrad("ir models/mlp.c --set act=gelu", &st);
    cr_expect_eq(WEXITSTATUS(st), 1);
    cr_expect(strstr(out, "models/mlp.c:8:23: error: option act: 'gelu' is not one of relu|sigmoid|tanh"), "%s", out);
    free(out);
    out = aotgrad("ir models/mlp.c --set width=3", &st);
    cr_expect_eq(WEXITSTATUS(st), 1);
    cr_expect(strstr(out, "models/mlp.c: error: --set width=3: the model has no such option (its options: act)"), "%s",
              out);
    free(out);
}

/* A dumped train-step .ir trains exactly as the model file does. */
Test(train, a_dumped_train_step_trains_the_same)
{
    char path[] = "/tmp/aotgrad-step-XXXXXX.ir";
    int fd = mkstemps(path, 3);
    cr_assert(fd >= 0);
    close(fd);
    int st;
    char args[512];
    snprintf(args, sizeof args, "ir models/linreg.c --train > %s", path);
    free(aotgrad(args, &st));
    cr_assert_eq(st, 0);
    char *a = aotgrad("run models/linreg.c", &st);
    cr_assert_eq(st, 0, "%s", a);
    snprintf(args, sizeof args, "run %s", path);
    char *b = aotgrad(args, &st);
    cr_assert_eq(st, 0, "%s", b);
    /* the same lines but the first (the seconds aside) */
    const char *wa = strstr(a, "\nw "), *wb = strstr(b, "\nw ");
    cr_assert(wa && wb);
    cr_expect_str_eq(wa, wb);
    unlink(path);
    free(a);
    free(b);
}

/* Inputs are bound by their role, never by name or place: a dumped train step with its
 * features and targets declared the other way round and the learning rate and weight decay
 * renamed trains exactly as the model does. */
Test(train, inputs_are_bound_by_role_not_name_or_place)
{
    char path[] = "/tmp/aotgrad-roles-XXXXXX.ir";
    int fd = mkstemps(path, 3);
    cr_assert(fd >= 0);
    close(fd);
    int st;
    char args[1024];
    snprintf(args, sizeof args,
             "ir models/linreg.c --train | awk '/= input role=data/ { x = $0; next } "
             "/= input role=labels/ { print; print x; next } { print }' | sed 's/%%lr\\b/%%rate/g; "
             "s/%%wd\\b/%%decay/g' > %s",
             path);
    free(aotgrad(args, &st));
    cr_assert_eq(st, 0);
    char *a = aotgrad("run models/linreg.c", &st);
    cr_assert_eq(st, 0, "%s", a);
    snprintf(args, sizeof args, "check %s --print", path);
    char *text = aotgrad(args, &st);
    cr_assert_eq(st, 0, "%s", text);
    cr_expect(strstr(text, "%y: f32[N,1] = input role=labels") < strstr(text, "%X: f32[N,2] = input role=data") &&
                  strstr(text, "%rate: f32[] = input role=lr") && strstr(text, "%decay: f32[] = input role=wd"),
              "%s", text);
    snprintf(args, sizeof args, "run %s", path);
    char *b = aotgrad(args, &st);
    cr_assert_eq(st, 0, "%s", b);
    const char *wa = strstr(a, "\nw "), *wb = strstr(b, "\nw ");
    cr_assert(wa && wb, "%s\n%s", a, b);
    cr_expect_str_eq(wa, wb);
    unlink(path);
    free(a);
    free(b);
    free(text);
}

/* aotgrad run --save writes the training state after every epoch, and --resume continues
 * it bit for bit as the binaries' train does: the same epoch lines and the same parameters
 * as the run never stopped (dropout's masks follow the step, the shuffles the epoch). */
Test(train, run_resumes_the_uninterrupted_run_bit_for_bit)
{
    char dir[] = "/tmp/aotgrad-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    write_subset(dir, 1000);
    char args[1024], whole[64], half[64];
    snprintf(whole, sizeof whole, "%s/whole.st", dir);
    snprintf(half, sizeof half, "%s/half.st", dir);
    int st;
    snprintf(args, sizeof args, "run models/mlp_dropout.c --data %s --epochs 4 --save %s", dir, whole);
    char *all = aotgrad(args, &st);
    cr_assert_eq(st, 0, "%s", all);
    snprintf(args, sizeof args, "run models/mlp_dropout.c --data %s --epochs 2 --save %s", dir, half);
    char *out = aotgrad(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    snprintf(args, sizeof args, "run models/mlp_dropout.c --data %s --epochs=4 --resume %s --save %s", dir, half, half);
    out = aotgrad(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "resuming") && strstr(out, "at epoch 3 (step 8)") && !strstr(out, "epoch 2/4"), "%s", out);
    for (int e = 3; e <= 4; e++) {
        char a[200], b[200];
        epoch_figures(all, e, a, sizeof a);
        epoch_figures(out, e, b, sizeof b);
        cr_expect_str_eq(a, b, "epoch %d", e);
    }
    free(out);
    free(all);
    expect_same_tensors(whole, half);
    /* a run of another seed, or another model, is not this one */
    snprintf(args, sizeof args, "run models/mlp_dropout.c --data %s --epochs 5 --resume %s --seed 9", dir, half);
    out = aotgrad(args, &st);
    cr_expect(WEXITSTATUS(st) == 1 && strstr(out, "--seed 9, but ") && strstr(out, "continues a run of seed 1"), "%s",
              out);
    free(out);
    snprintf(args, sizeof args, "run models/mlp.c --data %s --epochs 5 --resume %s", dir, half);
    out = aotgrad(args, &st);
    cr_expect(WEXITSTATUS(st) == 1 && strstr(out, "a checkpoint of model mlp_dropout, not mlp"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "rm -rf %s", dir);
    cr_assert_eq(system(args), 0);
}
