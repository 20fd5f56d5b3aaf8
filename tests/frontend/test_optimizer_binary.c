/* The optimizers in standalone binaries: each trains; its state is in the checkpoint under
 * PyTorch's state_dict names; --resume continues bit for bit; a checkpoint of parameters
 * alone starts the state at zero and says so in one line. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* ---- the split train step: --accumulate and --clip-norm ---- */

/* The largest difference between the tensors of two checkpoints, each relative to b's norm;
 * with base (a third checkpoint), the steps from it: (a - base) * scale against b - base */
static double ckpt_off(const char *a, const char *b, const char *base, double scale)
{
    rt_ckpt x, y, z;
    char err[512];
    cr_assert(rt_ckpt_load(a, &x, err, sizeof err), "%s", err);
    cr_assert(rt_ckpt_load(b, &y, err, sizeof err), "%s", err);
    cr_assert(!base || rt_ckpt_load(base, &z, err, sizeof err), "%s", err);
    double most = 0;
    for (int i = 0; i < x.n; i++) {
        const rt_ckpt_tensor *t = rt_ckpt_find(&y, x.t[i].name), *u = base ? rt_ckpt_find(&z, x.t[i].name) : NULL;
        cr_assert(t && (!base || u), "no tensor %s", x.t[i].name);
        int64_t n = 1;
        for (int k = 0; k < t->rank; k++)
            n *= t->dims[k];
        double d = 0, s = 0;
        for (int64_t e = 0; e < n; e++) {
            double va = ((const float *)x.t[i].data)[e], vb = ((const float *)t->data)[e];
            if (base) { /* the steps from base */
                double v0 = ((const float *)u->data)[e];
                va = (va - v0) * scale, vb -= v0;
            }
            d += (va - vb) * (va - vb), s += vb * vb;
        }
        most = fmax(most, s > 0 ? sqrt(d / s) : sqrt(d));
    }
    rt_ckpt_free(&x);
    rt_ckpt_free(&y);
    if (base)
        rt_ckpt_free(&z);
    return most;
}

/* models/mlp.c built into dir/mlp, and the first 256 images in dir/SUB/data: an epoch of
 * batch 256 is one step */
static void mlp_and_256_images(const char *sub)
{
    char one[300];
    snprintf(one, sizeof one, "%s/%s", dir, sub);
    cr_assert_eq(mkdir(one, 0700), 0);
    write_subset_dir(one, 256);
    int st;
    char *out =
        run_fmt(&st, "cd %s && %s build models/mlp.c -o %s/mlp 2>&1", AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
}

/* One step: --accumulate 4 of batches of 64 is the step of a batch of 256, for models/mlp.c
 * and for Adam with its state */
Test(optimizer_binary, accumulate_four_of_64_is_a_step_of_256)
{
    mlp_and_256_images("one");
    build("adam");
    int st;
    char *out;
    static const char *const bins[] = {"mlp", "adam"};
    for (int k = 0; k < 2; k++) {
        out = run_fmt(&st,
                      "cd %s && ./%s train --data one/data --epochs 1 --batch 256 --save %s.256.st >/dev/null && "
                      "./%s train --data one/data --epochs 1 --batch 64 --accumulate 4 --save %s.64x4.st 2>&1",
                      dir, bins[k], bins[k], bins[k], bins[k]);
        cr_assert_eq(st, 0, "%s", out);
        cr_expect(strstr(out, "batch 64 (accumulated over 4: 256 a step)"), "%s", out);
        free(out);
        char a[300], b[300];
        snprintf(a, sizeof a, "%s/%s.64x4.st", dir, bins[k]);
        snprintf(b, sizeof b, "%s/%s.256.st", dir, bins[k]);
        double e = ckpt_off(a, b, NULL, 1);
        cr_expect_leq(e, 1e-5, "%s: --accumulate 4 of 64 is off a batch of 256 by %g", bins[k], e);
        cr_expect_gt(e, 0, "%s: bit for bit: the sums' order is another, so equality says nothing ran", bins[k]);
    }
}

/* --clip-norm X: the step of plain SGD scaled by min(1, X/(||g|| + 1e-6)), as
 * torch.nn.utils.clip_grad_norm_, with ||g|| the global norm of the unclipped step / lr */
Test(optimizer_binary, clip_norm_scales_the_step_by_the_global_norm)
{
    mlp_and_256_images("clip");
    int st;
    char *out;
    /* the start (lr 0 keeps it), and the unclipped step */
    out = run_fmt(&st,
                  "cd %s && ./mlp train --data clip/data --epochs 1 --lr 0 --save p0.st >/dev/null && ./mlp train "
                  "--data clip/data --epochs 1 --save p1.st 2>&1",
                  dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    rt_ckpt a, b;
    char err[512], p0[300], p1[300], p2[300];
    snprintf(p0, sizeof p0, "%s/p0.st", dir);
    snprintf(p1, sizeof p1, "%s/p1.st", dir);
    snprintf(p2, sizeof p2, "%s/p2.st", dir);
    cr_assert(rt_ckpt_load(p0, &a, err, sizeof err) && rt_ckpt_load(p1, &b, err, sizeof err), "%s", err);
    double norm = 0; /* of g = (p0 - p1) / lr, lr 0.1 */
    for (int i = 0; i < a.n; i++) {
        const rt_ckpt_tensor *t = rt_ckpt_find(&b, a.t[i].name);
        int64_t n = 1;
        for (int k = 0; k < t->rank; k++)
            n *= t->dims[k];
        for (int64_t e = 0; e < n; e++) {
            double g = (((const float *)a.t[i].data)[e] - ((const float *)t->data)[e]) / 0.1;
            norm += g * g;
        }
    }
    norm = sqrt(norm);
    rt_ckpt_free(&a);
    rt_ckpt_free(&b);
    double clips[] = {norm / 3, 3 * norm};
    for (int c = 0; c < 2; c++) {
        out = run_fmt(&st, "cd %s && ./mlp train --data clip/data --epochs 1 --clip-norm %.9g --save p2.st 2>&1", dir,
                      clips[c]);
        cr_assert_eq(st, 0, "%s", out);
        free(out);
        double coef = fmin(1, clips[c] / (norm + 1e-6));
        double e = ckpt_off(p1, p2, p0, coef);
        cr_expect_leq(e, 1e-4, "--clip-norm %g (norm %g): the step is off %g x the unclipped one by %g", clips[c], norm,
                      coef, e);
    }
}

/* --accumulate 3 over 16 batches an epoch (a short group last): the checkpoint records it,
 * and --resume continues it bit for bit without the option */
Test(optimizer_binary, resume_continues_the_accumulation)
{
    build("momentum");
    int st;
    char *out = run_fmt(&st,
                        "cd %s && ./momentum train --data data --epochs 2 --accumulate 3 --save a.st && ./momentum "
                        "train --data data --epochs 1 --accumulate 3 --save b.st && ./momentum train --data data "
                        "--epochs 2 --resume b.st --save b.st 2>&1",
                        dir);
    cr_assert_eq(st, 0, "%s", out);
    double acc = last_value(out, "test_acc ");
    cr_expect_gt(acc, 0.6, "test accuracy %g after 2 epochs of 2000 images", acc);
    free(out);
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/a.st", dir);
    snprintf(b, sizeof b, "%s/b.st", dir);
    expect_same_tensors(a, b);
    rt_ckpt c;
    char err[512];
    cr_assert(rt_ckpt_load(b, &c, err, sizeof err), "%s", err);
    const char *m = rt_ckpt_meta_get(&c, "accumulate");
    cr_expect(m && !strcmp(m, "3"), "%s", m ? m : "(none)");
    cr_expect_null(rt_ckpt_find(&c, "W.grad_acc"), "the accumulators are no state to keep");
    rt_ckpt_free(&c);
}

/* The options' values are checked before any work, as the others' */
Test(optimizer_binary, the_split_step_s_options_are_checked)
{
    build("momentum");
    static const char *const cases[][2] = {
        {"--accumulate 0", "optimizers train: --accumulate takes a count of batches from 1 to 1000000, not '0'\n"},
        {"--clip-norm -1", "optimizers train: --clip-norm takes a number above 0, up to 3.40282e+38 (a finite f32), "
                           "not '-1'\n"},
        {"--clip-norm nan", "optimizers train: --clip-norm takes a number above 0"},
    };
    for (int k = 0; k < 3; k++) {
        int st;
        char *out = run_fmt(&st, "cd %s && ./momentum train --data data %s 2>&1", dir, cases[k][0]);
        cr_expect(WEXITSTATUS(st) == 2 && !strncmp(out, cases[k][1], strlen(cases[k][1])), "%s: exit %d\n%s",
                  cases[k][0], WEXITSTATUS(st), out);
        free(out);
    }
}

/* A binary built from a dumped train step has no split step: the options say why */
Test(optimizer_binary, a_dumped_train_step_has_no_split_step)
{
    int st;
    char *out = run_fmt(&st,
                        "cd %s && %s ir tests/data/models/optimizers.c --train > %s/step.ir && %s build %s/step.ir -o "
                        "%s/step 2>&1 && cd %s && ./step train --data data --epochs 1 --clip-norm 1 2>&1",
                        AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), dir, getenv("AOTGRAD_BIN"), dir, dir, dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "--accumulate and --clip-norm run the split train step, which this binary lacks: it was "
                          "built from a dumped train step, which has no gradients apart; build the model itself"),
              "%s", out);
    free(out);
}

/* A model with a name the split step gives (an input named clip_norm) builds and trains; only
 * the split step's options are refused, naming the name */
Test(optimizer_binary, a_model_with_the_split_step_s_names_trains_without_it)
{
    int st;
    char *out = run_fmt(&st,
                        "cd %s && %s build tests/data/models/clip_norm_input.c -o %s/named 2>&1 && cd %s && ./named "
                        "train --data data --epochs 1 2>&1 && ./named train --data data --epochs 1 --accumulate 2 2>&1",
                        AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), dir, dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "test_acc"), "the plain step trains: %s", out);
    cr_expect(strstr(out, "which this binary lacks: the name clip_norm is the split train step's (--accumulate, "
                          "--clip-norm); rename the model's clip_norm"),
              "%s", out);
    free(out);
}
