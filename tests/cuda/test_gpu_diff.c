/* gpu_diff (tests/cuda/gpu_diff.c) without a GPU: `write` a folder of cases, then `run` it
 * against tests/cuda/fake_libcuda.cpp, whose module is the case's CUDA C compiled with the
 * host shim. That tests the program's own part (the driver calls, ag_dev_args, the regions,
 * the comparison, the refusal of stale kernels); on a GPU it runs NVRTC's cubins instead. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "fake_cuda.h"
#include "run_cmd.h"

static char dir[] = "/tmp/aotgrad-gpu-diff-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(getenv("AOTGRAD_GPU_DIFF"), "AOTGRAD_GPU_DIFF is not set (run through ctest)");
    fake_cuda_dir(dir);
}

static void teardown(void) { fake_cuda_dir_remove(dir); }

TestSuite(gpu_diff, .init = setup, .fini = teardown);

/* `gpu_diff write dir/cases --only CASE [MODEL.ir]`; skips where NVRTC is absent */
static void write_case(const char *name, const char *model)
{
    int st;
    char *out;
    if (model) {
        out = run_fmt(&st, "cd %s && %s ir models/%s.c > %s/%s.ir", AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), model, dir,
                      model);
        cr_assert_eq(st, 0, "%s", out);
        free(out);
    }
    out = run_fmt(&st, "%s write %s/cases --only %s %s%s%s%s", getenv("AOTGRAD_GPU_DIFF"), dir, name, model ? dir : "",
                  model ? "/" : "", model ? model : "", model ? ".ir" : "");
    if (st != 0 && strstr(out, "needs NVRTC"))
        cr_skip_test("%s", out);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "gpu_diff: wrote 1 cases to"), "%s", out);
    free(out);
}

/* `gpu_diff run dir/cases --only CASE ARGS` on the fake driver with the kernels of `cu` */
static char *run_case(int *st, const char *name, const char *cu, const char *args)
{
    char so[600];
    snprintf(so, sizeof so, "%s/%s_kernels.so", dir, name);
    fake_cuda_kernels(cu, so);
    return run_fmt(st, "AOTGRAD_LIBCUDA=%s/libcuda_fake.so AOTGRAD_FAKE_KERNELS=%s %s run %s/cases --only %s %s", dir,
                   so, getenv("AOTGRAD_GPU_DIFF"), dir, name, args);
}

Test(gpu_diff, an_op_and_a_model_agree_with_the_interpreter)
{
    write_case("op_softmax", NULL);
    write_case("mlp", "mlp");
    char cu[600];
    snprintf(cu, sizeof cu, "%s/cases/op_softmax.cu", dir);
    int st;
    char *out = run_case(&st, "op_softmax", cu, "");
    cr_expect_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "gpu_diff: 1 cases on aotgrad fake GPU (host), 0 failed"), "%s", out);
    free(out);
    /* a small batch: the fake runs every launch as one block of fibers */
    snprintf(cu, sizeof cu, "%s/cases/mlp.cu", dir);
    out = run_case(&st, "mlp", cu, "--batch 16");
    cr_expect_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "\nmlp ") || strncmp(out, "mlp ", 4) == 0, "%s", out);
    cr_expect(strstr(out, "gpu_diff: 1 cases on aotgrad fake GPU (host), 0 failed"), "%s", out);
    free(out);
}

Test(gpu_diff, stale_kernels_are_refused)
{
    write_case("op_add", NULL);
    int st;
    char *out = run_fmt(&st, "echo '/* edited */' >> %s/cases/op_add.cu", dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    char cu[600];
    snprintf(cu, sizeof cu, "%s/cases/op_add.cu", dir);
    out = run_case(&st, "op_add", cu, "");
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", out);
    cr_expect(strstr(out, "op_add.cu differs from what this gpu_diff renders") && strstr(out, "stale"), "%s", out);
    cr_expect(strstr(out, ", 1 failed"), "%s", out);
    free(out);
}

/* kernels that compute the wrong thing (a + b as a - b) fail, naming the output */
Test(gpu_diff, a_wrong_kernel_fails)
{
    write_case("op_add", NULL);
    int st;
    char *out = run_fmt(&st,
                        "cd %s && sed 's/ = (v0 + v1);/ = (v0 - v1);/' cases/op_add.cu > wrong.cu && "
                        "! cmp -s wrong.cu cases/op_add.cu",
                        dir);
    cr_assert_eq(st, 0, "the sum to break is not in op_add.cu (has the rendering changed?)\n%s", out);
    free(out);
    char cu[600];
    snprintf(cu, sizeof cu, "%s/wrong.cu", dir);
    out = run_case(&st, "op_add", cu, "");
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", out);
    cr_expect(strstr(out, "FAIL: output o at batch 1: error"), "%s", out);
    cr_expect(strstr(out, ", 1 failed"), "%s", out);
    free(out);
}
