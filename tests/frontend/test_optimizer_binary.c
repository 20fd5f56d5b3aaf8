/* The optimizers in standalone binaries: each trains; its state is in the checkpoint under
 * PyTorch's state_dict names; --resume continues bit for bit; a checkpoint of parameters
 * alone starts the state at zero and says so in one line. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "run_cmd.h"
#include "subset.h"

static char dir[] = "/tmp/aotgrad-optim-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(getenv("AOTGRAD_BIN"), "AOTGRAD_BIN is not set (run through ctest)");
    cr_assert_not_null(mkdtemp(dir));
    write_subset_dir(dir, 2000);
}

static void teardown(void)
{
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_expect_eq(system(rm), 0);
}

TestSuite(optimizer_binary, .init = setup, .fini = teardown);

/* tests/data/models/optimizers.c built with --set opt=KIND into dir/KIND */
static void build(const char *kind)
{
    int st;
    char *out = run_fmt(&st, "cd %s && %s build tests/data/models/optimizers.c --set opt=%s -o %s/%s 2>&1",
                        AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), kind, dir, kind);
    cr_assert_eq(st, 0, "%s: %s", kind, out);
    free(out);
}

Test(optimizer_binary, each_trains_and_resumes_bit_for_bit)
{
    static const struct {
        const char *kind, *state[3];
    } kinds[] = {
        {"momentum", {"momentum_buffer"}},
        {"nesterov", {"momentum_buffer"}},
        {"adam", {"step", "exp_avg", "exp_avg_sq"}},
        {"adamw", {"step", "exp_avg", "exp_avg_sq"}},
        {"rmsprop", {"square_avg"}},
        {"adagrad", {"sum"}},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        const char *kd = kinds[k].kind;
        build(kd);
        int st;
        char *out = run_fmt(&st,
                            "cd %s && ./%s train --data data --epochs 2 --save %s.2.st && ./%s train --data data "
                            "--epochs 1 --save %s.1.st && ./%s train --data data --epochs 2 --resume %s.1.st --save "
                            "%s.r.st 2>&1",
                            dir, kd, kd, kd, kd, kd, kd, kd);
        cr_assert_eq(st, 0, "%s: %s", kd, out);
        double acc = last_value(out, "test_acc ");
        cr_expect_gt(acc, 0.6, "%s: test accuracy %g after 2 epochs on 2000 images", kd, acc);
        free(out);
        char a[300], b[300];
        snprintf(a, sizeof a, "%s/%s.2.st", dir, kd);
        snprintf(b, sizeof b, "%s/%s.r.st", dir, kd);
        expect_same_tensors(a, b);
        rt_ckpt c;
        char err[512];
        cr_assert(rt_ckpt_load(a, &c, err, sizeof err), "%s", err);
        cr_expect_eq(c.n, 2 * (1 + (kinds[k].state[1] ? 3 : 1)), "%s: %d tensors", kd, c.n);
        for (int s = 0; s < 3 && kinds[k].state[s]; s++)
            for (int p = 0; p < 2; p++) {
                char name[64];
                snprintf(name, sizeof name, "%s.%s", p ? "b" : "W", kinds[k].state[s]);
                cr_expect_not_null(rt_ckpt_find(&c, name), "%s: no %s in the checkpoint", kd, name);
            }
        rt_ckpt_free(&c);
    }
}

Test(optimizer_binary, parameters_alone_start_the_state_at_zero)
{
    build("adam");
    int st;
    char *out = run_fmt(&st, "cd %s && ./adam train --data data --epochs 1 --save full.st 2>&1", dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    /* the same checkpoint without the state tensors, as the safetensors library would write
     * the parameters alone */
    rt_ckpt c;
    char err[512], path[300];
    snprintf(path, sizeof path, "%s/full.st", dir);
    cr_assert(rt_ckpt_load(path, &c, err, sizeof err), "%s", err);
    rt_ckpt_tensor t[2];
    int n = 0;
    for (int i = 0; i < c.n; i++)
        if (!strchr(c.t[i].name, '.'))
            t[n++] = c.t[i];
    cr_assert_eq(n, 2);
    snprintf(path, sizeof path, "%s/params.st", dir);
    cr_assert(rt_ckpt_save(path, t, n, c.meta, c.nmeta, err, sizeof err), "%s", err);
    rt_ckpt_free(&c);
    out = run_fmt(&st, "cd %s && ./adam train --data data --epochs 2 --resume params.st 2>&1", dir);
    cr_expect_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "optimizers: params.st holds no optimizer state (W.step and the rest): it starts at zero\n"),
              "%s", out);
    free(out);
    /* eval and predict need the parameters alone, and say nothing of the state */
    out = run_fmt(&st, "cd %s && ./adam eval --data data --weights params.st 2>&1", dir);
    cr_expect(st == 0 && strstr(out, "test_acc") && !strstr(out, "optimizer state"), "%s", out);
    free(out);
}

/* The lr schedule is the run's: the checkpoint records it, --resume without schedule
 * options continues it bit for bit (step decay: a function of the step and the epoch), and
 * other schedule options are refused */
Test(optimizer_binary, resume_continues_the_checkpoint_s_schedule)
{
    build("momentum");
    int st;
    const char *sched = "--lr-schedule step --lr-gamma 0.5 --warmup-steps 5";
    char *out =
        run_fmt(&st,
                "cd %s && ./momentum train --data data --epochs 3 %s --save a.st && ./momentum train --data "
                "data --epochs 1 %s --save b.st && ./momentum train --data data --epochs 3 --resume b.st --save "
                "b.st 2>&1",
                dir, sched, sched);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/a.st", dir);
    snprintf(b, sizeof b, "%s/b.st", dir);
    expect_same_tensors(a, b);
    rt_ckpt c;
    char err[512];
    cr_assert(rt_ckpt_load(b, &c, err, sizeof err), "%s", err);
    const char *m = rt_ckpt_meta_get(&c, "lr_schedule");
    cr_expect(m && !strcmp(m, "step warmup=5 step_epochs=1 gamma=0.5 lr_min=0"), "%s", m ? m : "(none)");
    rt_ckpt_free(&c);
    out = run_fmt(&st, "cd %s && ./momentum train --data data --epochs 4 --resume b.st --lr-schedule cosine 2>&1", dir);
    cr_expect(WEXITSTATUS(st) == 1 && strstr(out, "--lr-schedule cosine warmup=0 step_epochs=1 gamma=0.1 lr_min=0, "
                                                  "but b.st continues a run of --lr-schedule step warmup=5"),
              "%s", out);
    free(out);
}
