/* Data-parallel training on GPUs (issue 20), without a GPU: a binary built with
 * --target cpu,cuda --distributed nccl runs --device cuda under mpirun against the fake
 * driver (tests/cuda/fake_libcuda.cpp: its generated CUDA C run on the CPU) and the fake
 * NCCL (tests/cuda/fake_libnccl.c: its sums over MPI, in the stream's order, replayed with
 * the captured step). That tests what the runtime does: NCCL's id from rank 0, each rank's
 * share of every global batch gathered on the device (uneven shares, the epoch's last batch,
 * an idle rank), the buckets' sums forked and joined in the captured graph, dropout's masks
 * of a rank's own rows, the epoch's figures summed over the ranks; and its errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fake_cuda.h"
#include "run_cmd.h"
#include "subset.h"

static char dir[] = "/tmp/aotgrad-nccl-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(getenv("AOTGRAD_BIN"), "AOTGRAD_BIN is not set (run through ctest)");
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1); /* as test_mpi.c */
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    char asan[512];
    snprintf(asan, sizeof asan, "%s:detect_leaks=0", getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "");
    setenv("ASAN_OPTIONS", asan, 1);
    fake_cuda_dir(dir);
    int st;
    const char *src = getenv("AOTGRAD_SOURCE_DIR");
    char *out = run_fmt(&st, "mpicc -shared -fPIC -O1 %s -o %s/libnccl_fake.so %s/tests/cuda/fake_libnccl.c",
                        getenv("AOTGRAD_LINK_FLAGS") ? getenv("AOTGRAD_LINK_FLAGS") : "", dir,
                        src && *src ? src : AG_SOURCE_DIR);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
}

static void teardown(void) { fake_cuda_dir_remove(dir); }

TestSuite(nccl, .init = setup, .fini = teardown, .timeout = 600);

/* models/NAME.c into dir/OUT with its CUDA C, and with its kernels for the fake driver */
static void build(const char *name, const char *out, const char *more, bool kernels)
{
    int st;
    char *text = run_fmt(&st, "cd %s && %s build models/%s.c --target cpu,cuda --emit exe,cu %s -o %s/%s 2>&1",
                         AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), name, more, dir, out);
    if (st != 0 && strstr(text, "NVRTC"))
        cr_skip_test("NVRTC not available: %s", text);
    cr_assert_eq(st, 0, "%s: %s", name, text);
    free(text);
    char cu[4200], so[4200];
    snprintf(cu, sizeof cu, "%s/%s.cu", dir, out);
    snprintf(so, sizeof so, "%s/%s_kernels.so", dir, out);
    if (kernels)
        fake_cuda_kernels(cu, so);
}

/* `mpirun -np RANKS ./NAME ARGS` (RANKS 0: one process, no mpirun) on the fake GPU (the
 * kernels of mlp_dropout's CUDA C: every binary here is of that model) and NCCL, with `env`
 * besides (after the fakes': it may replace them) */
static char *ranks(int *st, int np, const char *env, const char *name, const char *args)
{
    char launcher[64] = "";
    if (np > 0)
        snprintf(launcher, sizeof launcher, "mpirun -np %d", np);
    return run_fmt(st,
                   "cd %s && AOTGRAD_LIBCUDA=%s/libcuda_fake.so AOTGRAD_FAKE_KERNELS=%s/mlp_dropout_kernels.so "
                   "AOTGRAD_LIBNCCL=%s/libnccl_fake.so AOTGRAD_FAKE_GPUS=4 AOTGRAD_GPU_PACE=1 %s %s ./%s %s 2>&1",
                   dir, dir, dir, dir, env, launcher, name, args);
}

static double apart(const char *a, const char *b)
{
    char x[300], y[300];
    snprintf(x, sizeof x, "%s/%s", dir, a);
    snprintf(y, sizeof y, "%s/%s", dir, b);
    return tensors_apart(x, y);
}

/* --distributed mpi,nccl (MPI starts the job): one process on the CPU against 3 GPU ranks,
 * 40 samples at batch 16 (16, 16, 8: the shares 6/5/5 and 3/3/2), dropout's masks those of
 * each rank's rows, gradients in several buckets; and 4 steps at batch 1 on 2 ranks, where
 * rank 1 has no row of any batch and runs one weighted 0. AOTGRAD_GPU_PACE=1: the host waits
 * for each step before the next (every 32 by default), crossing that path at every step.
 * Then the failures with the same binary, and the build without MPI (one test: the builds
 * are most of its time). */
Test(nccl, gpu_ranks_end_where_one_process_does_and_fail_with_their_reasons)
{
    build("mlp_dropout", "mlp_dropout", "--distributed mpi,nccl --bucket-mib 0.01", true);
    write_subset(dir, 40);
    int st;
    char *out = ranks(&st, 0, "", "mlp_dropout", "train --device cpu --data . --epochs 1 --batch 16 --save one.st");
    cr_assert_eq(st, 0, "%s", out);
    double loss = last_value(out, "train_loss "), acc = last_value(out, "test_acc ");
    free(out);
    out = ranks(&st, 3, "", "mlp_dropout",
                "train --device cuda --data . --epochs 1 --batch 16 --check-ranks --save gpu3.st");
    cr_assert_eq(st, 0, "3 ranks: %s", out);
    cr_expect(strstr(out, "3 ranks on GPUs (NCCL): rank 0 on aotgrad fake GPU (host)"), "%s", out);
    const char *line = strstr(out, "epoch 1/1 ");
    cr_expect(line && !strstr(line + 1, "epoch 1/1 "), "rank 0 alone prints:\n%s", out);
    double d = apart("one.st", "gpu3.st");
    cr_expect(d <= 1e-5, "3 GPU ranks end 3 steps %.3g from one process (relative, norm-wise)\n%s", d, out);
    free(out);
    write_subset(dir, 4);
    out =
        ranks(&st, 0, "", "mlp_dropout", "train --device cpu --data . --epochs 1 --batch 1 --lr 0.05 --save idle1.st");
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    out =
        ranks(&st, 2, "", "mlp_dropout", "train --device cuda --data . --epochs 1 --batch 1 --lr 0.05 --save idle2.st");
    cr_assert_eq(st, 0, "%s", out);
    d = apart("idle1.st", "idle2.st");
    cr_expect(d <= 1e-5, "2 GPU ranks at batch 1 end %.3g from one process\n%s", d, out);
    free(out);
    /* NCCL that fails, or is not there, or a rank without a GPU: every rank ends with the
     * reason, none hangs */
    write_subset(dir, 40);
    out = ranks(&st, 2, "AOTGRAD_FAKE_NCCL_FAIL=init", "mlp_dropout", "train --device cuda --data . --epochs 1");
    cr_expect_neq(st, 0, "%s", out);
    cr_expect(strstr(out, "ncclCommInitRank: NCCL error 3: internal error (the fake's)"), "%s", out);
    free(out);
    out = ranks(&st, 2, "AOTGRAD_LIBNCCL=/nonexistent/libnccl.so.2", "mlp_dropout",
                "train --device cuda --data . --epochs 1");
    cr_expect_neq(st, 0, "%s", out);
    cr_expect(strstr(out, "rank 0 of 2: no NCCL (/nonexistent/libnccl.so.2"), "%s", out);
    free(out);
    /* a rank without a GPU (no driver) where the others have theirs: all on one device */
    out = run_fmt(&st,
                  "cd %s && AOTGRAD_LIBCUDA=%s/libcuda_fake.so AOTGRAD_FAKE_KERNELS=%s/mlp_dropout_kernels.so "
                  "AOTGRAD_LIBNCCL=%s/libnccl_fake.so AOTGRAD_FAKE_GPUS=4 mpirun -np 1 env "
                  "AOTGRAD_LIBCUDA=/nonexistent/libcuda.so.1 "
                  "./mlp_dropout train --data . --epochs 1 : -np 1 ./mlp_dropout train --data . --epochs 1 2>&1",
                  dir, dir, dir, dir);
    cr_expect_neq(st, 0, "%s", out);
    /* (whichever rank ends first, mpirun ends the other: one of the two lines at least) */
    cr_expect(strstr(out, "rank 0 of 2: the ranks did not all open a GPU (rank 1 differs from rank 0): no CUDA "
                          "driver (/nonexistent/libcuda.so.1") ||
                  strstr(out, "rank 1 of 2: the ranks did not all open a GPU (rank 1 differs from rank 0): give "
                              "--device cpu or fix the others"),
              "%s", out);
    free(out);
    /* --distributed nccl: no MPI linked, the ranks' places from mpirun's variables, NCCL's
     * id through --nccl-id FILE (removed after the run), the host's sums NCCL's too: 2 GPU
     * ranks end where one process does; one rank needs no file; the CPU, a missing or a stale
     * file, more ranks than GPUs are refused with their reasons */
    build("mlp_dropout", "alone", "--distributed nccl --bucket-mib 0.01", false);
    out = run_fmt(&st, "cd %s && cmp mlp_dropout.cu alone.cu && ldd alone | grep -c libmpi", dir);
    cr_expect_str_eq(out, "0\n", "the same CUDA C, and no MPI linked: %s", out);
    free(out);
    write_subset(dir, 40);
    out = ranks(&st, 2, "", "alone",
                "train --device cuda --data . --epochs 1 --batch 16 --check-ranks --nccl-id id --save two.st");
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "2 ranks on GPUs (NCCL): rank 0 on aotgrad fake GPU (host)"), "%s", out);
    /* the epoch's figures summed over the ranks through NCCL (the test set shared) */
    cr_expect(fabs(last_value(out, "train_loss ") - loss) <= 1e-3 && fabs(last_value(out, "test_acc ") - acc) <= 1e-3,
              "the figures of one process: train_loss %.4f, test_acc %.4f\n%s", loss, acc, out);
    d = apart("one.st", "two.st");
    cr_expect(d <= 1e-5, "2 GPU ranks without MPI end 3 steps %.3g from one process\n%s", d, out);
    free(out);
    char id[300];
    snprintf(id, sizeof id, "%s/id", dir);
    cr_expect_neq(access(id, F_OK), 0, "rank 0 removes the id file after the run");
    out = ranks(&st, 0, "", "alone", "train --device cuda --data . --epochs 1 --batch 16 --save alone.st");
    cr_assert_eq(st, 0, "one rank, no file: %s", out);
    cr_expect(strstr(out, "1 rank on GPUs (NCCL)"), "one rank takes NCCL's path: %s", out);
    d = apart("one.st", "alone.st");
    cr_expect(d <= 1e-5, "one rank through NCCL ends %.3g from the CPU\n%s", d, out);
    free(out);
    out = ranks(&st, 2, "", "alone", "train --device cuda --data . --epochs 1");
    cr_expect_neq(st, 0, "%s", out);
    cr_expect(strstr(out, "rank 0 of 2: ranks without MPI meet through a file: give --nccl-id FILE"), "%s", out);
    free(out);
    out = ranks(&st, 2, "", "alone", "train --device cpu --data . --epochs 1 --nccl-id id");
    cr_expect_neq(st, 0, "%s", out);
    cr_expect(strstr(out, "a --distributed nccl build trains its ranks on GPUs (on the CPU too: build with "
                          "--distributed mpi,nccl"),
              "%s", out);
    free(out);
    out = ranks(&st, 3, "AOTGRAD_FAKE_GPUS=2", "alone", "train --device cuda --data . --epochs 1 --nccl-id id3");
    cr_expect_neq(st, 0, "%s", out);
    cr_expect(strstr(out, "rank 2 of 3: GPU 2 of a machine with 2: a rank on each GPU, more ranks than GPUs here"),
              "%s", out);
    free(out);
    out = run_fmt(&st, "cd %s && touch stale", dir);
    free(out);
    out = ranks(&st, 2, "", "alone", "train --device cuda --data . --epochs 1 --nccl-id stale --timeout 5");
    cr_expect_neq(st, 0, "%s", out);
    cr_expect(strstr(out, "rank 0 of 2: --nccl-id stale exists (a run's before? remove it"), "%s", out);
    free(out);
}

/* The build says which engine sums which device's gradients */
Test(nccl, the_build_pairs_nccl_with_the_gpu)
{
    int st;
    char *out = run_fmt(&st, "cd %s && %s build models/mlp.c --distributed nccl -o %s/x 2>&1", AG_SOURCE_DIR,
                        getenv("AOTGRAD_BIN"), dir);
    cr_expect_neq(st, 0, "%s", out);
    cr_expect(strstr(out, "--distributed nccl: NCCL sums the GPU's gradients: add --target cpu,cuda"), "%s", out);
    free(out);
    out = run_fmt(&st, "cd %s && %s build models/mlp.c --distributed mpi --target cpu,cuda -o %s/x 2>&1", AG_SOURCE_DIR,
                  getenv("AOTGRAD_BIN"), dir);
    cr_expect_neq(st, 0, "%s", out);
    cr_expect(strstr(out, "--distributed mpi: MPI sums the CPU's gradients: for the GPU's, --distributed nccl"), "%s",
              out);
    free(out);
}
