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
#include "run_cmd.h"
#include "subset.h"

static char dir[] = "/tmp/aotgrad-device-XXXXXX";


static const char *shim(void)
{
    static char d[4096];
    const char *src = getenv("AOTGRAD_SOURCE_DIR");
    snprintf(d, sizeof d, "%s/tests/cuda", src && *src ? src : AG_SOURCE_DIR);
    return d;
}

static const char *flags(void)
{
    const char *f = getenv("AOTGRAD_LINK_FLAGS");
    return f ? f : "";
}

/* dir/NAME (the binary), dir/NAME_kernels.so (its CUDA C on the host), and the fake driver */
static void build(const char *name)
{
    int st;
    char *out = run_fmt(&st, "cd %s && %s build models/%s.c --target cpu,cuda --emit exe,cu -o %s/%s", AG_SOURCE_DIR,
                   getenv("AOTGRAD_BIN"), name, dir, name);
    if (st != 0 && strstr(out, "NVRTC"))
        cr_skip_test("NVRTC not available: %s", out);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    /* the launchers: every ag_dev_args kernel of the source by name, and the runtime's two */
    char path[4200], cu[4200];
    snprintf(cu, sizeof cu, "%s/%s.cu", dir, name);
    FILE *in = fopen(cu, "r");
    cr_assert_not_null(in);
    snprintf(path, sizeof path, "%s/%s_kernels.cpp", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "#include \"host_shim.h\"\n#include \"%s.cu\"\n#include <string.h>\n#include <stdlib.h>\n\n", name);
    fprintf(f, "struct gather_args { const unsigned char *src; unsigned char *dst; const int *order;\n"
               "                     const ag_dev_state *s; long long rows, row_bytes; };\n"
               "struct end_args { ag_dev_state *s; ag_step_outs o; };\n\n"
               "extern \"C\" int fake_kernel(const char *name, unsigned grid, void **p)\n{\n");
    char line[4096];
    int kernels = 0;
    while (fgets(line, sizeof line, in)) {
        char *k = strstr(line, "__launch_bounds__(256) "), *e = k ? strstr(k, "(ag_dev_args a)") : NULL;
        if (!k || !e)
            continue;
        k += strlen("__launch_bounds__(256) ");
        *e = 0;
        fprintf(f, "    if (!strcmp(name, \"%s\")) {\n        if (p) ag_host_launch(name, %s, grid, 256u, *(ag_dev_args *)p[0]);\n"
                   "        return 1;\n    }\n", k, k);
        kernels++;
    }
    fclose(in);
    cr_assert_gt(kernels, 5, "no kernels found in %s", cu);
    fprintf(f, "    if (!strcmp(name, \"ag_gather\")) {\n        if (!p) return 1;\n        static gather_args g;\n"
               "        g = {*(const unsigned char **)p[0], *(unsigned char **)p[1], *(const int **)p[2],\n"
               "             *(const ag_dev_state **)p[3], *(long long *)p[4], *(long long *)p[5]};\n"
               "        ag_host_launch_raw(name, [](void *q) { gather_args *g = (gather_args *)q;\n"
               "            ag_gather(g->src, g->dst, g->order, g->s, g->rows, g->row_bytes); }, &g, grid, 256u);\n"
               "        return 1;\n    }\n"
               "    if (!strcmp(name, \"ag_step_end\")) {\n        if (!p) return 1;\n        static end_args a;\n"
               "        a = {*(ag_dev_state **)p[0], *(ag_step_outs *)p[1]};\n"
               "        ag_host_launch_raw(name, [](void *q) { end_args *a = (end_args *)q; ag_step_end(a->s, a->o); },\n"
               "                           &a, grid, 256u);\n        return 1;\n    }\n    return 0;\n}\n\n");
    fprintf(f, "/* the arguments' values, copied (a captured launch keeps them) */\n"
               "extern \"C\" void **fake_pack(const char *name, void **p)\n{\n"
               "    size_t sizes[6] = {sizeof(ag_dev_args)};\n    int n = 1;\n"
               "    if (!strcmp(name, \"ag_gather\")) { n = 6; for (int i = 0; i < 6; i++) sizes[i] = 8; }\n"
               "    else if (!strcmp(name, \"ag_step_end\")) { n = 2; sizes[0] = 8; sizes[1] = sizeof(ag_step_outs); }\n"
               "    void **out = (void **)malloc(6 * sizeof(void *) + 6 * 128);\n"
               "    char *blob = (char *)(out + 6);\n"
               "    for (int i = 0; i < n; i++) { memcpy(blob + 128 * i, p[i], sizes[i]); out[i] = blob + 128 * i; }\n"
               "    return out;\n}\n");
    fclose(f);
    out = run_fmt(&st,
             "g++ -shared -fPIC -O1 -std=c++17 -ffp-contract=off -Wno-unknown-pragmas %s -I'%s' -I'%s' -o '%s/%s_kernels.so' "
             "'%s' '%s/host_run.cpp'",
             flags(), shim(), dir, dir, name, path, shim());
    cr_assert_eq(st, 0, "%s", out);
    free(out);
}

static void setup(void)
{
    cr_assert_not_null(getenv("AOTGRAD_BIN"), "AOTGRAD_BIN is not set (run through ctest)");
    cr_assert_not_null(mkdtemp(dir));
    write_subset_dir(dir, 64);
    int st;
    char *out = run_fmt(&st, "g++ -shared -fPIC -O1 -std=c++17 %s -o '%s/libcuda_fake.so' '%s/fake_libcuda.cpp'", flags(), dir,
                   shim());
    cr_assert_eq(st, 0, "%s", out);
    free(out);
}

static void teardown(void)
{
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_expect_eq(system(rm), 0);
}

TestSuite(device, .init = setup, .fini = teardown);

/* the model's binary with the fake driver and its kernels (batches of 16 in the tests: the
 * host runs a block's 256 threads as fibers, and a matmul's barriers cost per thread) */
static char *gpu(int *st, const char *name, const char *args)
{
    return run_fmt(st, "cd %s && AOTGRAD_LIBCUDA=%s/libcuda_fake.so AOTGRAD_FAKE_KERNELS=%s/%s_kernels.so ./%s %s", dir, dir,
              dir, name, name, args);
}



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

Test(device, a_nan_loss_stops_naming_its_step)
{
    build("mlp");
    int st;
    char *out = gpu(&st, "mlp", "train --device cuda --data data --epochs 2 --batch 16 --lr 1e30 --save nan.st");
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "mlp: error: step ") && strstr(out, "(epoch 1): the loss is not finite; stopping"), "%s", out);
    cr_expect(strstr(out, "mlp: no checkpoint was written (no epoch finished)"), "%s", out);
    free(out);
}
