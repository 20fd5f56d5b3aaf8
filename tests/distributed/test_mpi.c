/* Data-parallel training on Open MPI (issue 20): binaries built with --distributed mpi, run
 * under mpirun on 2 and 4 ranks (oversubscribed on a 2-core machine), against one process:
 * the same parameters after 3 steps (mlp, mlp_dropout, LeNet), the same bits run to run, the
 * parameters compared over the ranks after every step (--check-ranks), the split step,
 * accuracy over whole epochs, resuming; a rank killed or stopped mid-epoch ends the job, and
 * a rank with other options or another binary is refused at start-up. A default build links
 * no MPI. Under ASan, leaks go unchecked here (setup). */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "run_cmd.h"
#include "subset.h"

static char dir[] = "/tmp/aotgrad-mpi-XXXXXX";

/* every rank inherits mpirun's environment (setup's) */
#define MPIRUN "mpirun"

static void setup(void)
{
    cr_assert_not_null(getenv("AOTGRAD_BIN"), "AOTGRAD_BIN is not set (run through ctest)");
    /* mpirun as root, and more ranks than cores */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    /* an instrumented build: LeakSanitizer stays out of this suite's processes, whose Open MPI
     * keeps allocations until exit in components it has unloaded (frames LSan cannot name, so
     * no suppression holds them); every other suite checks the runtime's leaks */
    char asan[512];
    snprintf(asan, sizeof asan, "%s:detect_leaks=0", getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "");
    setenv("ASAN_OPTIONS", asan, 1);
    cr_assert_not_null(mkdtemp(dir));
    write_subset_dir(dir, 2000);
}

static void teardown(void)
{
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_expect_eq(system(rm), 0);
}

TestSuite(distributed, .init = setup, .fini = teardown, .timeout = 600);

/* models/NAME.c into dir/OUT, with more of aotgrad build's options */
static void build(const char *name, const char *out, const char *more)
{
    int st;
    char *text = run_fmt(&st, "cd %s && %s build models/%s.c %s -o %s/%s 2>&1", AG_SOURCE_DIR, getenv("AOTGRAD_BIN"),
                         name, more, dir, out);
    cr_assert_eq(st, 0, "%s: %s", name, text);
    free(text);
}

Test(distributed, ranks_end_three_steps_where_one_process_does)
{
    write_subset(dir, 768); /* dir's own files: 768 images, 3 steps at batch 256 */
    build("mlp", "mlp", "--distributed mpi --bucket-mib 0.01");
    build("mlp_dropout", "mlp_dropout", "--distributed mpi");
    build("lenet", "lenet", "--distributed mpi --bucket-mib 0.05 --set act=relu"); /* convolutions, max pooling */
    const char *bins[] = {"mlp", "mlp_dropout", "lenet"};
    for (int b = 0; b < 3; b++) {
        int st;
        char *out = run_fmt(&st, "cd %s && ./%s train --data . --epochs 1 --threads 1 --save %s.1.st 2>&1", dir,
                            bins[b], bins[b]);
        cr_assert_eq(st, 0, "%s, one process: %s", bins[b], out);
        free(out);
        for (int ranks = 2; ranks <= 4; ranks += 2) {
            out = run_fmt(&st,
                          "cd %s && " MPIRUN " -np %d ./%s train --data . --epochs 1 --threads 1 --check-ranks --save "
                          "%s.%d.st 2>&1",
                          dir, ranks, bins[b], bins[b], ranks);
            cr_assert_eq(st, 0, "%s on %d ranks: %s", bins[b], ranks, out);
            const char *line = strstr(out, "epoch 1/1 ");
            cr_expect(line && !strstr(line + 1, "epoch 1/1 "), "%s on %d ranks: rank 0 alone prints:\n%s", bins[b],
                      ranks, out);
            cr_expect(strstr(out, "ranks of 1 thread (MPI)"), "%s", out);
            free(out);
            char one[300], many[300];
            snprintf(one, sizeof one, "%s/%s.1.st", dir, bins[b]);
            snprintf(many, sizeof many, "%s/%s.%d.st", dir, bins[b], ranks);
            double d = tensors_apart(one, many);
            cr_expect(d <= 1e-5, "%s: %d ranks end 3 steps %.3g from one process (relative, norm-wise)", bins[b], ranks,
                      d);
        }
    }
}

/* A global batch smaller than the ranks: at batch 3 on 4 ranks, rank 3 has no row of any
 * batch and runs one row weighted 0 (the batch's first: the epoch's last batch has no row
 * past it); 256 steps end where one process does */
Test(distributed, a_rank_without_rows_adds_nothing)
{
    write_subset(dir, 768);
    build("mlp", "mlp", "--distributed mpi");
    int st;
    char *out = run_fmt(&st,
                        "cd %s && ./mlp train --data . --epochs 1 --batch 3 --threads 1 --save i1.st 2>&1 && " MPIRUN
                        " -np 4 ./mlp train --data . --epochs 1 --batch 3 --threads 1 --check-ranks --save i4.st 2>&1",
                        dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    char one[300], many[300];
    snprintf(one, sizeof one, "%s/i1.st", dir);
    snprintf(many, sizeof many, "%s/i4.st", dir);
    double d = tensors_apart(one, many);
    cr_expect(d <= 1e-5, "4 ranks at batch 3 end %.3g from one process", d);
}

/* The split step (--accumulate, --clip-norm) on 3 ranks: each accumulates its shares of the
 * micro-batches, the accumulators are summed over the ranks before each update, clipped by the
 * global norm: 3 updates of 2 micro-batches of 128 (the shares uneven: 43, 43, 42) end where
 * one process does */
Test(distributed, the_split_step_sums_the_ranks_accumulators)
{
    write_subset(dir, 768);
    build("mlp_dropout", "mlpd", "--distributed mpi");
    const char *flags[] = {"--accumulate 2", "--accumulate 2 --clip-norm 0.5"};
    for (int k = 0; k < 2; k++) {
        int st;
        char *out = run_fmt(&st,
                            "cd %s && ./mlpd train --data . --epochs 1 --batch 128 --threads 1 %s --save s1.st 2>&1 "
                            "&& " MPIRUN " -np 3 ./mlpd train --data . --epochs 1 --batch 128 --threads 1 %s "
                            "--check-ranks --save s3.st 2>&1",
                            dir, flags[k], flags[k]);
        cr_assert_eq(st, 0, "%s: %s", flags[k], out);
        free(out);
        char one[300], many[300];
        snprintf(one, sizeof one, "%s/s1.st", dir);
        snprintf(many, sizeof many, "%s/s3.st", dir);
        double d = tensors_apart(one, many);
        cr_expect(d <= 1e-5, "%s: 3 ranks end %.3g from one process", flags[k], d);
    }
}

Test(distributed, two_runs_give_the_same_bits_train_as_one_process_and_resume)
{
    build("mlp", "mlp", "--distributed mpi");
    int st, nproc = (int)sysconf(_SC_NPROCESSORS_ONLN);
    char *out = run_fmt(&st,
                        "cd %s && " MPIRUN " -np 2 ./mlp train --data data --epochs 10 --save a.st 2>&1 && " MPIRUN
                        " -np 2 ./mlp train --data data --epochs 10 --save b.st 2>&1 && ./mlp train --data data "
                        "--epochs 10 2>&1",
                        dir);
    cr_assert_eq(st, 0, "%s", out);
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/a.st", dir);
    snprintf(b, sizeof b, "%s/b.st", dir);
    expect_same_tensors(a, b);
    /* without --threads, at most each rank's share of the machine's cores */
    const char *ranks = strstr(out, "2 ranks of ");
    cr_assert_not_null(ranks, "%s", out);
    int threads = atoi(ranks + 11);
    cr_expect(threads >= 1 && (threads == 1 || 2 * threads <= nproc), "%d threads a rank on %d cores", threads, nproc);
    /* the two ranks' accuracy after 10 epochs, then the one process's: the last line has it */
    const char *second = strstr(out, "test accuracy");
    cr_assert_not_null(second);
    double two = strtod(strstr(second, "accuracy ") + 9, NULL), one = last_value(out, "test accuracy ");
    cr_expect(fabs(two - one) <= 0.02 && two > 0.6, "test accuracy after 10 epochs: %g on 2 ranks, %g on one", two,
              one);
    free(out);
    /* --resume on 2 ranks continues the run bit for bit; on 4, it goes on from the checkpoint */
    out = run_fmt(&st,
                  "cd %s && " MPIRUN " -np 2 ./mlp train --data data --epochs 2 --save c.st 2>&1 && " MPIRUN
                  " -np 2 ./mlp train --data data --epochs 1 --save d.st 2>&1 && " MPIRUN
                  " -np 2 ./mlp train --data data --epochs 2 --resume d.st --save e.st 2>&1 && " MPIRUN
                  " -np 4 ./mlp train --data data --epochs 2 --resume d.st --save f.st 2>&1",
                  dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "resuming"), "%s", out);
    free(out);
    snprintf(a, sizeof a, "%s/c.st", dir);
    snprintf(b, sizeof b, "%s/e.st", dir);
    expect_same_tensors(a, b);
    snprintf(b, sizeof b, "%s/f.st", dir);
    cr_expect_lt(tensors_apart(a, b), 1e-3, "resumed on 4 ranks, the second epoch ends far from 2 ranks'");
}

/* pids of the processes named name (the ranks: mpirun's own name is mpirun) */
static int ranks_named(const char *name, pid_t *pid, int most)
{
    int st, n = 0;
    char *out = run_fmt(&st, "pgrep -x %s", name);
    for (char *p = out; n < most && *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        pid[n++] = (pid_t)v;
        p = end;
    }
    free(out);
    return n;
}

/* mpirun -np 2 of a long training in the background, a signal to one rank once both train;
 * returns mpirun's output and its seconds after the signal */
static char *signal_a_rank(const char *bin, int sig, const char *more, int *status, double *seconds)
{
    char cmd[2048], log[400];
    snprintf(log, sizeof log, "%s/%s.log", dir, bin);
    snprintf(cmd, sizeof cmd, "cd %s && " MPIRUN " -np 2 ./%s train --data data --epochs 1000 --threads 1 %s >%s 2>&1",
             dir, bin, more, log);
    pid_t job = fork();
    cr_assert(job >= 0);
    if (job == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    pid_t pid[8];
    int n = 0;
    for (int tries = 0; tries < 600 && n < 2; tries++) { /* both ranks up and in the first epoch */
        usleep(50000);
        n = ranks_named(bin, pid, 8);
    }
    cr_assert_eq(n, 2, "the ranks of %s did not start", bin);
    sleep(2);
    kill(pid[1], sig);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st = 0;
    pid_t done = 0;
    for (int tries = 0; tries < 1200 && done == 0; tries++) { /* 60 s at most */
        done = waitpid(job, &st, WNOHANG);
        if (done == 0)
            usleep(50000);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (done == 0) { /* hung: end it, and fail */
        kill(pid[0], SIGKILL), kill(pid[1], SIGKILL), kill(job, SIGKILL);
        waitpid(job, &st, 0);
    }
    for (int k = 0; k < n; k++) /* a stopped rank left behind */
        kill(pid[k], SIGKILL);
    *status = done == 0 ? -1 : st;
    *seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    int s;
    char *out = run_fmt(&s, "cat %s", log);
    return out;
}

Test(distributed, a_killed_rank_ends_the_job)
{
    build("mlp", "mlpkill", "--distributed mpi");
    int st;
    double seconds;
    char *out = signal_a_rank("mlpkill", SIGKILL, "", &st, &seconds);
    cr_expect(st != -1 && st != 0, "mpirun exited %d after a rank was killed:\n%s", st, out);
    cr_expect(seconds < 30, "the job ended %.1f s after a rank was killed", seconds);
    cr_expect(strstr(out, "signal 9") || strstr(out, "Killed"), "no word of the killed rank:\n%s", out);
    free(out);
}

Test(distributed, a_stopped_rank_times_the_others_out)
{
    build("mlp", "mlpstop", "--distributed mpi");
    int st;
    double seconds;
    char *out = signal_a_rank("mlpstop", SIGSTOP, "--timeout 2", &st, &seconds);
    cr_expect(st != -1 && st != 0, "mpirun exited %d after a rank stopped:\n%s", st, out);
    cr_expect(seconds < 30, "the job ended %.1f s after a rank stopped (--timeout 2)", seconds);
    cr_expect(strstr(out, "rank 0 of 2: error:") && strstr(out, "did not finish within 2 s (--timeout)"),
              "no error naming the rank that timed out:\n%s", out);
    free(out);
}

Test(distributed, ranks_with_other_options_are_refused)
{
    build("mlp", "mlp", "--distributed mpi");
    int st;
    char *out = run_fmt(&st,
                        "cd %s && " MPIRUN " -np 1 ./mlp train --data data --epochs 1 --lr 0.1 : -np 1 ./mlp train "
                        "--data data --epochs 1 --lr 0.2 2>&1",
                        dir);
    cr_expect_neq(st, 0, "%s", out);
    cr_expect(strstr(out, "mlp: error: rank 1 of 2 runs another binary or other options than rank 0"), "%s", out);
    cr_expect(!strstr(out, "epoch 1/1"), "it trained:\n%s", out);
    free(out);
    build("mlp_dropout", "mlpd", "--distributed mpi");
    out = run_fmt(&st,
                  "cd %s && " MPIRUN " -np 1 ./mlp train --data data --epochs 1 : -np 1 ./mlpd train --data data "
                  "--epochs 1 2>&1",
                  dir);
    cr_expect_neq(st, 0, "%s", out);
    cr_expect(strstr(out, "rank 1 of 2 runs another binary"), "%s", out);
    free(out);
}

Test(distributed, only_a_distributed_build_links_mpi)
{
    build("mlp", "plain", "");
    build("mlp", "mlp", "--distributed mpi");
    int st;
    char *out = run_fmt(&st, "cd %s && ldd plain | grep -c libmpi; ldd mlp | grep -c libmpi", dir);
    cr_expect_str_eq(out, "0\n1\n", "libmpi in ldd of the plain and the distributed binary: %s", out);
    free(out);
}

/* A dump of a distributed train step trains in the interpreter as the model does: one rank,
 * whose sums are its own gradients */
Test(distributed, a_distributed_dump_trains_in_the_interpreter)
{
    int st;
    char *out =
        run_fmt(&st,
                "cd %s && %s ir models/softmax.c --train --distributed mpi --bucket-mib 0.01 > %s/d.ir && %s "
                "run %s/d.ir --data %s/data --epochs 2 2>&1 && %s run models/softmax.c --data %s/data --epochs "
                "2 2>&1",
                AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), dir, getenv("AOTGRAD_BIN"), dir, dir, getenv("AOTGRAD_BIN"), dir);
    cr_assert_eq(st, 0, "%s", out);
    const char *first = strstr(out, "epoch 2/2"), *second = first ? strstr(first + 1, "epoch 2/2") : NULL;
    cr_assert(first && second, "%s", out);
    double a = strtod(strstr(first, "train_loss ") + 11, NULL), b = strtod(strstr(second, "train_loss ") + 11, NULL);
    cr_expect(fabs(a - b) <= 1e-4 && a > 0, "the dump trains to loss %g, the model to %g:\n%s", a, b, out);
    free(out);
}
