/* The device runtime (runtime/cuda.c) without a GPU: a binary built with --target cpu,cuda
 * runs --device cuda against tests/cuda/fake_libcuda.cpp, a stand-in for the driver that
 * runs the binary's own generated CUDA C on the CPU (compiled with the host shim). That
 * tests what the runtime does with the driver: device memory, the dataset uploaded once,
 * batches gathered on the device, the captured step replayed as a graph, the sums and the
 * first non-finite step read back, resume, eval and predict. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "data.h"
#include "fake_cuda.h"
#include "run_cmd.h"
#include "subset.h"

static char dir[] = "/tmp/aotgrad-device-XXXXXX";

/* dir/NAME (the binary), dir/NAME.cu and .ptx, dir/NAME_kernels.so (its CUDA C on the host),
 * from FOLDER/NAME.c of the source tree */
static void build_from(const char *folder, const char *name)
{
    int st;
    char *out = run_fmt(&st, "cd %s && %s build %s/%s.c --target cpu,cuda --emit exe,cu,ptx -o %s/%s", AG_SOURCE_DIR,
                        getenv("AOTGRAD_BIN"), folder, name, dir, name);
    if (st != 0 && strstr(out, "NVRTC"))
        cr_skip_test("NVRTC not available: %s", out);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    char cu[4200], so[4200];
    snprintf(cu, sizeof cu, "%s/%s.cu", dir, name);
    snprintf(so, sizeof so, "%s/%s_kernels.so", dir, name);
    fake_cuda_kernels(cu, so);
}

static void build(const char *name) { build_from("models", name); }

static void setup(void)
{
    cr_assert_not_null(getenv("AOTGRAD_BIN"), "AOTGRAD_BIN is not set (run through ctest)");
    fake_cuda_dir(dir);
    write_subset_dir(dir, 64);
}

static void teardown(void) { fake_cuda_dir_remove(dir); }

TestSuite(device, .init = setup, .fini = teardown);

/* the model's binary with the fake driver and its kernels (batches of 16 in the tests: the
 * host runs a block's 256 threads as fibers, and a matmul's barriers cost per thread), and
 * the environment `env` besides */
static char *gpu_with(int *st, const char *env, const char *name, const char *args)
{
    return run_fmt(st, "cd %s && %s AOTGRAD_LIBCUDA=%s/libcuda_fake.so AOTGRAD_FAKE_KERNELS=%s/%s_kernels.so ./%s %s",
                   dir, env, dir, dir, name, name, args);
}

static char *gpu(int *st, const char *name, const char *args) { return gpu_with(st, "", name, args); }

/* The device's epochs against the CPU's: the same run up to summation order. */
Test(device, trains_as_the_cpu_does)
{
    build("mlp");
    int st;
    char *g = gpu(&st, "mlp", "train --device cuda --data data --epochs 2 --batch 16 --seed 3 --save g.st");
    cr_assert_eq(st, 0, "%s", g);
    cr_expect(strstr(g, "on aotgrad fake GPU (host)"), "%s", g);
    char *c = gpu(&st, "mlp", "train --device cpu --data data --epochs 2 --batch 16 --seed 3 --save c.st");
    cr_assert_eq(st, 0, "%s", c);
    const char *keys[] = {"train_loss ", "train_acc ", "test_acc "};
    for (int k = 0; k < 3; k++) {
        double a = last_value(g, keys[k]), b = last_value(c, keys[k]);
        cr_expect(fabs(a - b) <= 2e-3 * fmax(1, fabs(b)), "%s: device %g, cpu %g\n%s\n%s", keys[k], a, b, g, c);
    }
    /* eval and predict of the same weights on both devices */
    char *eg = gpu(&st, "mlp", "eval --device cuda --data data --weights c.st");
    cr_assert_eq(st, 0, "%s", eg);
    char *ec = gpu(&st, "mlp", "eval --device cpu --data data --weights c.st");
    cr_assert_eq(st, 0, "%s", ec);
    cr_expect(fabs(last_value(eg, "test_acc ") - last_value(ec, "test_acc ")) <= 0.002, "%s\n%s", eg, ec);
    /* predict on the device: a class name a line, agreeing with the labels as often as the
     * device's eval says (the same logits; a barely trained model's near-ties make a
     * line-by-line comparison with the CPU meaningless) */
    char *pg = gpu(&st, "mlp", "predict --device cuda --weights c.st data/t10k-images-idx3-ubyte.gz");
    cr_assert_eq(st, 0, "%s", pg);
    static const char *names[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    rt_dataset d;
    char err[512], path[600];
    snprintf(path, sizeof path, "%s/data", dir);
    cr_assert(rt_load_mnist_dir(path, false, 10, &d, err, sizeof err), "%s", err);
    int lines = 0, right = 0;
    for (char *line = strtok(pg, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '=' && line[1] == '=') /* a sanitizer's note on stderr */
            continue;
        int k = 0;
        while (k < 10 && strcmp(line, names[k]) != 0)
            k++;
        cr_assert_lt(k, 10, "not a class name: '%s'", line);
        right += lines < d.n && ((const int32_t *)d.y)[lines] == k;
        lines++;
    }
    cr_expect_eq(lines, d.n);
    cr_expect_float_eq((double)right / (double)d.n, last_value(eg, "test_acc "), 1e-3, "%d of %d right\n%s", right,
                       lines, eg);
    rt_dataset_free(&d);
    char *pc = NULL;
    free(g), free(c), free(eg), free(ec), free(pg), free(pc);
}

/* Resumed on the device, dropout's masks included: 2 epochs == 1 + save + 1, bit for bit;
 * the step the graph replays comes from the device. */
Test(device, resume_is_bit_exact_with_dropout)
{
    build("mlp_dropout");
    int st;
    char *a = gpu(&st, "mlp_dropout", "train --device cuda --data data --epochs 2 --batch 16 --seed 5 --save whole.st");
    cr_assert_eq(st, 0, "%s", a);
    char *b = gpu(&st, "mlp_dropout", "train --device cuda --data data --epochs 1 --batch 16 --seed 5 --save half.st");
    cr_assert_eq(st, 0, "%s", b);
    char *r = gpu(&st, "mlp_dropout", "train --device cuda --data data --resume half.st --epochs 2 --save resumed.st");
    cr_assert_eq(st, 0, "%s", r);
    char x[600], y[600];
    snprintf(x, sizeof x, "%s/whole.st", dir);
    snprintf(y, sizeof y, "%s/resumed.st", dir);
    expect_same_tensors(x, y);
    free(a), free(b), free(r);
}

/* A parameter the step must keep readable after its update (it is an output too): the update
 * lies in the arena and is copied over the parameter after each step, on the device as on
 * the CPU, inside the replayed graph. */
Test(device, an_update_not_in_place_is_copied_over_its_parameter)
{
    build_from("tests/data/models", "param_output");
    int st;
    char *g = gpu(&st, "param_output", "train --device cuda --data data --epochs 2 --batch 16 --seed 2 --save g.st");
    cr_assert_eq(st, 0, "%s", g);
    char *c = gpu(&st, "param_output", "train --device cpu --data data --epochs 2 --batch 16 --seed 2 --save c.st");
    cr_assert_eq(st, 0, "%s", c);
    char *i =
        run_fmt(&st, "cd %s && %s run %s/tests/data/models/param_output.c --data data --epochs 2 --batch 16 --seed 2",
                dir, getenv("AOTGRAD_BIN"), AG_SOURCE_DIR);
    cr_assert_eq(st, 0, "%s", i);
    double lg = last_value(g, "train_loss "), lc = last_value(c, "train_loss "), li = last_value(i, "train_loss ");
    cr_expect(fabs(lg - lc) <= 2e-3 * fmax(1, lc) && fabs(lc - li) <= 2e-4 * fmax(1, li),
              "epoch 2's train loss: device %g, cpu %g, interpreter %g", lg, lc, li);
    /* 2.3 at the start; the bias alone gets no further than the labels' entropy, about 2.2 */
    cr_expect(lc < 2.1, "the weights did not learn (epoch 2's train loss %g)", lc);
    free(g), free(c), free(i);
}

Test(device, a_nan_loss_stops_naming_its_step)
{
    build("mlp");
    int st;
    char *out = gpu(&st, "mlp", "train --device cuda --data data --epochs 2 --batch 16 --lr 1e30 --save nan.st");
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "mlp: error: step ") && strstr(out, "(epoch 1): the loss is not finite; stopping"), "%s",
              out);
    cr_expect(strstr(out, "mlp: no checkpoint was written (no epoch finished)"), "%s", out);
    free(out);
}

/* bench --device cuda: the replayed graph's step and a row per kernel (a matmul with its
 * epilogue is one, and so are the loss's ten one-block steps and b2's two small ones),
 * timed with events */
Test(device, bench_times_the_graph_and_each_kernel)
{
    build("mlp");
    int st;
    char *out = gpu(&st, "mlp", "bench --device cuda --steps 2");
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "mlp bench: train step at batch 256 on aotgrad fake GPU (host), 2 steps: "), "%s", out);
    cr_expect(strstr(out, "us/step (the replayed graph") && strstr(out, "(the kernels one by one: "), "%s", out);
    int rows = 0, fused = 0, merged = 0, small = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        int k;
        char kind[32];
        double us;
        char name[32];
        if (sscanf(line, "%d %31s %31s %lf", &k, name, kind, &us) == 4) {
            cr_expect_eq(k, rows, "row %d is numbered %d", rows, k);
            cr_expect(us > 0, "%s", line);
            rows++;
            fused += strcmp(kind, "gemm+loop") == 0;
            merged += strcmp(kind, "merged:10") == 0;
            small += strcmp(kind, "merged:2") == 0;
        }
    }
    cr_expect_eq(rows, 10, "%d kernels timed (the batch-256 train step has 10 launches)", rows);
    cr_expect_eq(small, 1, "b2's gradient (10 sums of 256) and update (10 elements) in one launch");
    cr_expect_eq(fused, 3, "%d matmuls with their epilogue (bias + relu, bias, relu's gradient)", fused);
    cr_expect_eq(merged, 1, "the loss's and accuracy's steps (argmax to softmax_ce_grad) in one launch");
    free(out);
}

/* AOTGRAD_CUDA_IMAGE: a module built elsewhere from the binary's own source replaces the
 * embedded one; its bytes reach the driver, and a bad one is refused naming the file */
Test(device, an_image_from_the_environment)
{
    build("mlp");
    int st;
    char *ok =
        gpu_with(&st, "AOTGRAD_CUDA_IMAGE=mlp.ptx", "mlp", "train --device cuda --data data --epochs 1 --batch 16");
    cr_expect_eq(st, 0, "%s", ok);
    char *text = gpu_with(&st, "AOTGRAD_CUDA_IMAGE=mlp.cu", "mlp", "train --device cuda --data data --epochs 1");
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", text);
    cr_expect(strstr(text, "cuModuleLoadDataEx (mlp.cu): CUDA_ERROR_INVALID_IMAGE"), "%s", text);
    char *none = gpu_with(&st, "AOTGRAD_CUDA_IMAGE=none.cubin", "mlp", "train --device cuda --data data --epochs 1");
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", none);
    cr_expect(strstr(none, "AOTGRAD_CUDA_IMAGE=none.cubin: cannot open: No such file or directory"), "%s", none);
    free(ok), free(text), free(none);
}

/* --lr-schedule on the device: the epoch's table of lrs uploaded once, each step's read by
 * the replayed graph (ag_step_lr), as the CPU sets them step by step: the same run up to
 * summation order, and not the unscheduled one */
Test(device, schedules_the_lr_as_the_cpu_does)
{
    build("softmax");
    int st;
    const char *args = "train --data data --epochs 2 --batch 16 --seed 3 --lr-schedule cosine --warmup-steps 3";
    char run[300];
    snprintf(run, sizeof run, "%s --device cuda", args);
    char *g = gpu(&st, "softmax", run);
    cr_assert_eq(st, 0, "%s", g);
    snprintf(run, sizeof run, "%s --device cpu", args);
    char *c = gpu(&st, "softmax", run);
    cr_assert_eq(st, 0, "%s", c);
    char *plain = gpu(&st, "softmax", "train --data data --epochs 2 --batch 16 --seed 3 --device cuda");
    cr_assert_eq(st, 0, "%s", plain);
    double a = last_value(g, "train_loss "), b = last_value(c, "train_loss "), p = last_value(plain, "train_loss ");
    cr_expect(fabs(a - b) <= 2e-4 * fmax(1, fabs(b)), "device %g, cpu %g\n%s\n%s", a, b, g, c);
    cr_expect(fabs(p - b) > 1e-3, "the schedule changed nothing: %g and %g", p, b);
    free(g), free(c), free(plain);
}
