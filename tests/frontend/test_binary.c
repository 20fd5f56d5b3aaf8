/* Standalone binaries (`aotgrad build MODEL.c -o OUT`, runtime/binary.c), as a user runs
 * them: what they link, their commands and --help, checkpoints that resume bit for bit and
 * are refused when they do not fit, the NaN stop, eval and predict against each other, the
 * same training as the interpreter's, and the binary of a graph without training. Data:
 * small subsets of Fashion-MNIST. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bind.h"
#include "passes.h"
#include "checkpoint.h"
#include "data.h"
#include "interp.h"
#include "load.h"
#include "run_cmd.h"
#include "subset.h"

static char dir[] = "/tmp/aotgrad-binary-XXXXXX";

/* builds models/NAME.c into dir/NAME, with its .ll, .s and .cu (once per process) */
static void build(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, X_OK) == 0)
        return;
    int st;
    char *out = run_fmt(&st, "cd %s && %s build models/%s.c -o %s --emit exe,ll,s,cu", AG_SOURCE_DIR,
                        getenv("AOTGRAD_BIN"), name, path);
    cr_assert_eq(st, 0, "build of %s failed:\n%s", name, out);
    free(out);
}

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

TestSuite(binary, .init = setup, .fini = teardown);

Test(binary, every_model_builds_and_links_only_system_libraries)
{
    const char *models[] = {"linreg", "softmax", "mlp", "mlp_dropout", "weight_decay"};
    const char *flags = getenv("AOTGRAD_LINK_FLAGS");
    bool sanitized = flags && strstr(flags, "sanitize");
    for (size_t m = 0; m < sizeof models / sizeof *models; m++) {
        build(models[m]);
        int st;
        char *out = run_fmt(&st, "readelf -d %s/%s | grep NEEDED", dir, models[m]);
        cr_assert_eq(st, 0, "%s", out);
        int needed = 0;
        for (char *p = strstr(out, "Shared library: ["); p; p = strstr(p + 1, "Shared library: [")) {
            char lib[128] = "";
            sscanf(p, "Shared library: [%127[^]]", lib);
            bool ok = !strcmp(lib, "libc.so.6") || !strcmp(lib, "libm.so.6") || !strcmp(lib, "libz.so.1") ||
                      !strcmp(lib, "libopenblas.so.0") ||
                      (sanitized && (!strncmp(lib, "libasan", 7) || !strncmp(lib, "libubsan", 8)));
            cr_expect(ok, "%s needs %s (only libc, libm, zlib and OpenBLAS may be)", models[m], lib);
            needed++;
        }
        cr_expect_gt(needed, 0, "%s", out);
        free(out);
        /* each command's --help, and a usage error */
        const char *cmds[] = {"train", "eval", "predict", "bench"};
        for (int c = 0; c < 4; c++) {
            out = run_fmt(&st, "%s/%s %s --help", dir, models[m], cmds[c]);
            cr_expect_eq(st, 0, "%s %s --help: %s", models[m], cmds[c], out);
            char want[128];
            snprintf(want, sizeof want, "usage: %s %s", models[m], cmds[c]);
            cr_expect(strstr(out, want), "%s", out);
            free(out);
        }
        out = run_fmt(&st, "%s/%s frobnicate", dir, models[m]);
        cr_expect_eq(WEXITSTATUS(st), 2, "%s", out);
        cr_expect(strstr(out, "unknown command 'frobnicate'"), "%s", out);
        free(out);
    }
    int st;
    char *out = run_fmt(&st, "%s/mlp train --batch 100000000", dir);
    cr_expect_eq(WEXITSTATUS(st), 2, "%s", out);
    cr_expect(strstr(out, "mlp train: --batch takes a batch size from 1 to 16777216, not '100000000'"), "%s", out);
    free(out);
    /* options as getopt_long takes them: --flag value, --flag=value, an unambiguous
     * abbreviation, -- before operands; one dash is no long option, and a typo, an ambiguous
     * abbreviation, a missing value or a value to a flag are each said in one line */
    static const struct {
        const char *args, *says;
    } wrong[] = {
        {"train -epochs 1", "mlp train: unknown option '-epochs'; did you mean '--epochs'?\nTry 'mlp train --help'.\n"},
        {"train -lr 1", "mlp train: unknown option '-lr'; did you mean '--lr'?\n"},
        {"train --epcohs 1", "mlp train: unknown option '--epcohs'; did you mean '--epochs'?\n"},
        {"train --d x", "mlp train: option '--d' is ambiguous: it may be --data, --device\n"},
        {"train --lr", "mlp train: --lr needs a value\nTry 'mlp train --help'.\n"},
        {"train --help=yes", "mlp train: --help takes no value\n"},
        {"train --ep=0", "mlp train: --epochs takes a positive whole number, not '0'\n"},
        {"predict --weights w.st -- -x.csv y.csv", "mlp predict: takes one INPUT file\n"},
        {"eval stray --weights w.st", "mlp eval: unexpected argument 'stray'\n"},
    };
    for (size_t k = 0; k < sizeof wrong / sizeof *wrong; k++) {
        out = run_fmt(&st, "%s/mlp %s 2>&1", dir, wrong[k].args);
        cr_expect_eq(WEXITSTATUS(st), 2, "%s: %s", wrong[k].args, out);
        cr_expect(strncmp(out, wrong[k].says, strlen(wrong[k].says)) == 0, "%s: %s", wrong[k].args, out);
        free(out);
    }
    /* the same options, written the other ways, are taken: --ep=1 --dat=/nonexistent reaches
     * the data */
    out = run_fmt(&st, "%s/mlp train --ep=1 --dat=/nonexistent-aotgrad 2>&1", dir);
    cr_expect(WEXITSTATUS(st) == 1 && strstr(out, "mlp: error: /nonexistent-aotgrad/train-images"), "%s", out);
    free(out);
    out = run_fmt(&st, "%s/mlp trian", dir);
    cr_expect(WEXITSTATUS(st) == 2 && strstr(out, "mlp: unknown command 'trian'; did you mean 'train'?"), "%s", out);
    free(out);
    out = run_fmt(&st, "%s/mlp --version", dir);
    cr_expect(st == 0 && strstr(out, "mlp: compiled by aotgrad ") && strstr(out, " from models/mlp.c"), "%s", out);
    free(out);
    out = run_fmt(&st, "%s/mlp --help", dir);
    cr_expect(strstr(out, "--version"), "%s", out);
    free(out);
}

/* whether text has word as a whole word (not followed by a digit or letter: k1 is not k12) */
static bool has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *at = strstr(text, word); at; at = strstr(at + 1, word))
        if ((at == text || !isalnum((unsigned char)at[-1]) || at[-1] == '_' || at[-1] == '.') &&
            !isalnum((unsigned char)at[n]))
            return true;
    return false;
}

/* One name per kernel, from model to machine code: each kernel @kN of the fused train step
 * names the function computing it in the .ll and the .s (NAME_train_step.kN, or a comment
 * "# kN: sgemm" at the call it is), a __global__ or __device__ function of the .cu, and a row
 * of bench's table; the code carries the model's lines (objdump -dl). */
Test(binary, every_kernel_has_one_name_from_the_fused_ir_to_machine_code)
{
    const char *models[] = {"linreg", "softmax", "mlp", "mlp_dropout", "weight_decay"};
    for (size_t m = 0; m < sizeof models / sizeof *models; m++) {
        build(models[m]);
        char path[700], err[1024];
        snprintf(path, sizeof path, "%s/models/%s.c", AG_SOURCE_DIR, models[m]);
        ir_graph *g = fe_load(path, getenv("AOTGRAD_INCLUDE"), NULL);
        cr_assert_not_null(g);
        ir_graph *fused = pass_run(g, true, "fuse", NULL, NULL, err, sizeof err);
        cr_assert_not_null(fused, "%s", err);
        cr_assert_gt(fused->nkernels, 0, "%s", models[m]);
        char *text[3];
        const char *ext[3] = {"ll", "s", "cu"};
        for (int e = 0; e < 3; e++) {
            snprintf(path, sizeof path, "%s/%s.%s", dir, models[m], ext[e]);
            size_t len;
            text[e] = fe_read_file(path, &len);
            cr_assert_not_null(text[e], "%s", path);
        }
        int st;
        char *bench = run_fmt(&st, "%s/%s bench --steps 1 --threads 1", dir, models[m]);
        cr_assert_eq(st, 0, "%s", bench);
        for (int32_t k = 0; k < fused->nkernels; k++) {
            char fn[64], comment[32], name[16], cu[64], row[32];
            snprintf(name, sizeof name, "k%d", (int)k);
            snprintf(fn, sizeof fn, "%s_train_step.k%d", models[m], (int)k);
            snprintf(comment, sizeof comment, "# k%d: ", (int)k);
            snprintf(cu, sizeof cu, "%s_train_step_k%d", models[m], (int)k);
            snprintf(row, sizeof row, "  k%d ", (int)k);
            for (int e = 0; e < 2; e++)
                cr_expect(has_word(text[e], fn) || strstr(text[e], comment), "%s.%s names no kernel %s", models[m],
                          ext[e], name);
            bool in_cu = false;
            for (const char *line = text[2]; line && *line && !in_cu;
                 line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                size_t n = strcspn(line, "\n");
                char buf[512];
                snprintf(buf, sizeof buf, "%.*s", (int)(n < sizeof buf ? n : sizeof buf - 1), line);
                in_cu = (strstr(buf, "__global__") || strstr(buf, "__device__")) && has_word(buf, cu);
            }
            cr_expect(in_cu, "%s.cu has no __global__ or __device__ function for kernel %s", models[m], name);
            cr_expect(strstr(bench, row), "%s bench has no row for kernel %s:\n%s", models[m], name, bench);
        }
        free(bench);
        for (int e = 0; e < 3; e++)
            free(text[e]);
        ir_graph_free(fused);
        ir_graph_free(g);
    }
    int st;
    char *out = run_fmt(&st, "objdump -dl %s/mlp | grep -c 'mlp\\.c:[0-9]'", dir);
    cr_expect(st == 0 && atoi(out) > 10, "objdump -dl shows %s model lines", out);
    free(out);
}

/* Training 2 epochs equals training 1, saving, and resuming for 1, bit for bit (dropout's
 * masks included); the epoch lines agree too. */
Test(binary, resume_is_the_uninterrupted_run_bit_for_bit)
{
    build("mlp_dropout");
    int st;
    char *whole = run_fmt(&st, "cd %s && ./mlp_dropout train --data data --epochs 2 --seed 5 --save whole.st", dir);
    cr_assert_eq(st, 0, "%s", whole);
    char *first = run_fmt(&st, "cd %s && ./mlp_dropout train --data data --epochs 1 --seed 5 --save half.st", dir);
    cr_assert_eq(st, 0, "%s", first);
    char *rest =
        run_fmt(&st, "cd %s && ./mlp_dropout train --data data --resume half.st --epochs 2 --save resumed.st", dir);
    cr_assert_eq(st, 0, "%s", rest);
    cr_expect(strstr(rest, "resuming half.st at epoch 2 (step 8)"), "%s", rest);
    /* the metadata's numbers as written in the model: lr 0.5, not 0.50000000000000000 */
    char *meta = run_fmt(&st, "tail -c +9 %s/half.st | head -c 2000 | tr -d '\\000'", dir);
    cr_expect(strstr(meta, "\"lr\":\"0.5\"") && strstr(meta, "\"wd\":\"0\""), "%s", meta);
    free(meta);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/whole.st", dir);
    snprintf(b, sizeof b, "%s/resumed.st", dir);
    expect_same_tensors(a, b);
    const char *w2 = strstr(whole, "epoch 2/2"), *r2 = strstr(rest, "epoch 2/2");
    cr_assert(w2 && r2, "%s\n%s", whole, rest);
    cr_expect_eq(strncmp(w2, r2, (size_t)(strstr(w2, "test_acc") - w2)), 0, "%s\n%s", whole, rest);
    /* a seed that is not the checkpoint's is refused */
    char *bad = run_fmt(&st, "cd %s && ./mlp_dropout train --data data --resume half.st --epochs 3 --seed 6", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", bad);
    cr_expect(strstr(bad, "--seed 6, but half.st continues a run of seed 5"), "%s", bad);
    free(whole);
    free(first);
    free(rest);
    free(bad);
}

Test(binary, checkpoints_that_do_not_fit_are_refused_naming_the_tensor)
{
    build("mlp");
    build("softmax");
    int st;
    char *out = run_fmt(&st, "cd %s && ./softmax train --data data --epochs 1 --save soft.st", dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    out = run_fmt(&st, "cd %s && ./mlp eval --data data --weights soft.st", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "soft.st: a checkpoint of model softmax, not mlp"), "%s", out);
    free(out);

    /* shapes and names, without the model's name in the metadata */
    static float w1[784 * 128], b1[256], w2[2560];
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/shape.st", dir);
    rt_ckpt_tensor t[] = {{"W1", AG_F32, 2, {784, 128}, w1},
                          {"b1", AG_F32, 1, {256}, b1},
                          {"W2", AG_F32, 2, {256, 10}, w2},
                          {"b2", AG_F32, 1, {10}, b1}};
    cr_assert(rt_ckpt_save(path, t, 4, NULL, 0, err, sizeof err), "%s", err);
    out = run_fmt(&st, "cd %s && ./mlp eval --data data --weights shape.st", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "shape.st: tensor W1 has shape [784,128], expected [784,256]"), "%s", out);
    free(out);
    snprintf(path, sizeof path, "%s/missing.st", dir);
    t[0].dims[1] = 256;
    static float w1full[784 * 256];
    t[0].data = w1full;
    cr_assert(rt_ckpt_save(path, t, 3, NULL, 0, err, sizeof err), "%s", err);
    out = run_fmt(&st, "cd %s && ./mlp predict --weights missing.st data/t10k-images-idx3-ubyte.gz", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "missing.st: no tensor b2"), "%s", out);
    free(out);
    /* a truncated file, and parameters without training state for --resume */
    out = run_fmt(&st, "cd %s && head -c 100 soft.st > cut.st && ./softmax eval --data data --weights cut.st", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "cut.st"), "%s", out);
    free(out);
    out = run_fmt(&st, "cd %s && ./mlp train --data data --resume shape.st", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "shape.st: tensor W1 has shape [784,128], expected [784,256]"), "%s", out);
    free(out);
    out = run_fmt(&st, "cd %s && ./mlp train --data data --resume missing.st", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "missing.st: no tensor b2"), "%s", out);
    free(out);
}

/* A loss that overflows stops training naming its step; --save's file keeps the last good
 * epoch's parameters. */
Test(binary, a_nan_loss_stops_and_keeps_the_last_good_checkpoint)
{
    build("mlp");
    int st;
    char *out = run_fmt(&st, "cd %s && ./mlp train --data data --epochs 1 --save good.st && cp good.st copy.st", dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    out = run_fmt(&st, "cd %s && ./mlp train --data data --resume good.st --epochs 3 --lr 1e30 --save good.st", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "mlp: error: step "), "%s", out);
    cr_expect(strstr(out, "(epoch 2): the loss is "), "%s", out);
    cr_expect(strstr(out, "the last good checkpoint is good.st (epoch 1)"), "%s", out);
    free(out);
    out = run_fmt(&st, "cd %s && cmp good.st copy.st", dir);
    cr_expect_eq(st, 0, "the checkpoint changed: %s", out);
    free(out);
}

/* dir/to: dir/from with metadata key set to value (NULL: without the key) */
static void edit_metadata(const char *from, const char *to, const char *key, const char *value)
{
    char a[600], b[600], err[512];
    snprintf(a, sizeof a, "%s/%s", dir, from);
    snprintf(b, sizeof b, "%s/%s", dir, to);
    rt_ckpt c;
    cr_assert(rt_ckpt_load(a, &c, err, sizeof err), "%s", err);
    rt_ckpt_meta meta[16];
    int n = 0;
    for (int i = 0; i < c.nmeta && n < 16; i++)
        if (strcmp(c.meta[i].key, key) != 0)
            meta[n++] = c.meta[i];
        else if (value)
            meta[n++] = (rt_ckpt_meta){key, value};
    cr_assert(rt_ckpt_save(b, c.t, c.n, meta, n, err, sizeof err), "%s", err);
    rt_ckpt_free(&c);
}

/* A checkpoint's training state is read as strictly as it is written: whole numbers in
 * digits, a step per epoch at least, one history entry per epoch with values in range. Each
 * is refused naming the file, before training and before any output file is written. */
Test(binary, resume_refuses_metadata_the_writer_never_writes)
{
    build("softmax");
    int st;
    char *out = run_fmt(&st, "cd %s && ./softmax train --data data --epochs 2 --save ck.st", dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    static char many[30000];
    for (int k = 0; k < 2000; k++)
        strcat(many, k % 2 ? "2,1,1,1,1,1,1;" : "1,1,1,1,1,1,1;");
    const struct {
        const char *key, *value, *msg;
    } cases[] = {
        {"history", "garbage", "bad.st: metadata history entry 1: 'garbage' has 1 field, expected 7"},
        {"history", "1,nan,0.3,1,0.5,0.1,1;2,inf,1,-inf,1,1,1;",
         "bad.st: metadata history entry 1: train_loss is 'nan', expected a finite number within f32's range"},
        {"history", "5,1,1,1,1,1,1;",
         "bad.st: metadata history entry 1: epoch '5', expected a number from 1 to "
         "the checkpoint's 2"},
        {"step", "99999999999999999999", "bad.st: metadata step is '99999999999999999999', expected a whole number"},
        {"history", "1,1,1,1,1,1e300,1;2,1,1,1,1,1,1;",
         "bad.st: metadata history entry 1: seconds is '1e300', expected a number from 0 to 1e9"},
        {"history", many, "bad.st: metadata history entry 3: one more than the checkpoint's 2 epochs"},
        {"history", "1,1,1,1,1,1,1;", "bad.st: metadata history entry 2: missing"},
        {"epoch", "2.5", "bad.st: metadata epoch is '2.5', expected a whole number from 1 to 1000000000"},
        {"epoch", "0x2", "bad.st: metadata epoch is '0x2', expected a whole number from 1 to 1000000000"},
        {"epoch", " 2", "bad.st: metadata epoch is ' 2', expected a whole number from 1 to 1000000000"},
        {"epoch", "0", "bad.st: metadata epoch is '0', expected a whole number from 1 to 1000000000"},
        {"seed", "+1", "bad.st: metadata seed is '+1', expected a whole number from 0 to 4294967295"},
        {"batch", "256.0", "bad.st: metadata batch is '256.0', expected a whole number from 1 to 16777216"},
        {"step", "0", "bad.st: metadata step is 0 at epoch 2, expected at least one step per epoch"},
        {"step", "1", "bad.st: metadata step is 1 at epoch 2, expected at least one step per epoch"},
        {"lr", "1e39", "bad.st: metadata lr is '1e39', expected a number in [0, 3.40282e+38]"},
        {"wd", "inf", "bad.st: metadata wd is 'inf', expected a number in [0, 3.40282e+38]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        edit_metadata("ck.st", "bad.st", cases[i].key, cases[i].value);
        out = run_fmt(&st,
                      "cd %s && ./softmax train --data data --resume bad.st --epochs 3 --metrics bad.csv "
                      "--plot bad.svg 2>&1; rc=$?; test -e bad.csv || test -e bad.svg && echo written; exit $rc",
                      dir);
        cr_expect_eq(WEXITSTATUS(st), 1, "%s=%.40s: %s", cases[i].key, cases[i].value, out);
        cr_expect(strstr(out, "softmax: error: ") && strstr(out, cases[i].msg), "%s=%.40s: %s", cases[i].key,
                  cases[i].value, out);
        cr_expect_null(strstr(out, "epoch 3/3"), "%s", out);
        cr_expect_null(strstr(out, "written"), "%s", out);
        free(out);
    }
    /* the writer's own: epochs 1 and 2 from the checkpoint, then 3, in order; without a
     * history (another tool's edit), the resumed epochs only */
    out = run_fmt(&st,
                  "cd %s && ./softmax train --data data --resume ck.st --epochs 3 --metrics ok.csv && "
                  "cut -d, -f1 ok.csv | tr '\n' ' '",
                  dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "epoch 1 2 3 "), "%s", out);
    free(out);
    edit_metadata("ck.st", "nohist.st", "history", NULL);
    out = run_fmt(&st,
                  "cd %s && ./softmax train --data data --resume nohist.st --epochs 3 --metrics nh.csv "
                  "--save resumed.st && cut -d, -f1 nh.csv | tr '\n' ' '",
                  dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "epoch 3 "), "%s", out);
    free(out);
    /* and what that run saved (a history from epoch 3) resumes in turn */
    out = run_fmt(&st,
                  "cd %s && ./softmax train --data data --resume resumed.st --epochs 4 --metrics r4.csv && "
                  "cut -d, -f1 r4.csv | tr '\n' ' '",
                  dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "epoch 3 4 "), "%s", out);
    free(out);
}

/* --save, --metrics and --plot are checked before training: a FIFO or a symlink is not
 * replaced by a regular file, and a missing folder is not found after the first epoch. */
Test(binary, output_paths_are_checked_before_training)
{
    build("softmax");
    int st;
    char *out = run_fmt(&st, "cd %s && mkfifo fifo && echo old > target && ln -s target link && mkdir folder", dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    const struct {
        const char *opts, *msg;
    } cases[] = {
        {"--save fifo", "softmax: error: --save fifo: exists and is not a regular file\n"},
        {"--save link", "softmax: error: --save link: exists and is not a regular file\n"},
        {"--save folder", "softmax: error: --save folder: cannot write: Is a directory\n"},
        {"--metrics fifo", "softmax: error: --metrics fifo: exists and is not a regular file\n"},
        {"--plot link", "softmax: error: --plot link: exists and is not a regular file\n"},
        {"--metrics missing/m.csv", "softmax: error: --metrics missing/m.csv: cannot write: No such file or "
                                    "directory\n"},
        {"--save ok.st --plot missing/p.svg", "softmax: error: --plot missing/p.svg: cannot write: No such file or "
                                              "directory\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        out = run_fmt(&st, "cd %s && ./softmax train --data data --epochs 1 %s", dir, cases[i].opts);
        cr_expect_eq(WEXITSTATUS(st), 1, "%s: %s", cases[i].opts, out);
        cr_expect_str_eq(out, cases[i].msg, "%s", cases[i].opts);
        free(out);
    }
    out = run_fmt(&st, "cd %s && test -p fifo && test -L link && cat target && test ! -e ok.st && ls", dir);
    cr_expect_eq(st, 0, "%s", out);
    cr_expect(strncmp(out, "old\n", 4) == 0 && !strstr(out, ".tmp."), "%s", out);
    free(out);
}

/* A save that fails after an epoch finished says so, with its cause (here the file size
 * limit: the check before training creates an empty file, the checkpoint is 31 kB). */
Test(binary, a_failed_save_says_why_no_checkpoint_was_written)
{
    build("softmax");
    int st;
    char *out = run_fmt(&st,
                        "cd %s && (trap '' XFSZ; ulimit -f 8; exec ./softmax train --data data --epochs 1 "
                        "--save big.st)",
                        dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "epoch 1/1"), "%s", out);
    cr_expect(strstr(out, "softmax: error: no checkpoint was written: big.st: cannot write: File too large\n"), "%s",
              out);
    cr_expect_null(strstr(out, "no epoch finished"), "%s", out);
    free(out);
}

/* --lr and --wd reach the kernels as f32: a value past FLT_MAX is refused, not made infinite */
Test(binary, lr_and_wd_must_fit_a_float)
{
    build("softmax");
    const char *opts[] = {"--lr 1e39", "--wd 1e39", "--lr inf", "--wd -1"};
    for (int k = 0; k < 4; k++) {
        int st;
        char *out = run_fmt(&st, "%s/softmax train %s --data /nonexistent", dir, opts[k]);
        cr_expect_eq(WEXITSTATUS(st), 2, "%s: %s", opts[k], out);
        char want[200];
        snprintf(want, sizeof want, "softmax train: %.4s takes a number from 0 to 3.40282e+38 (a finite f32), not '%s'",
                 opts[k], opts[k] + 5);
        cr_expect(strstr(out, want), "%s: %s", opts[k], out);
        free(out);
    }
    int st; /* the largest float is still a learning rate: the error is the data's */
    char *out = run_fmt(&st, "%s/softmax train --lr 3.4e38 --data /nonexistent", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    free(out);
}

/* eval's accuracy is the last epoch's test accuracy, and predict's class names agree with
 * the labels as often; metrics and plot files are written. */
Test(binary, eval_predict_metrics_and_plot_agree)
{
    build("mlp");
    int st;
    char *train =
        run_fmt(&st, "cd %s && ./mlp train --data data --epochs 2 --save w.st --metrics m.csv --plot p.svg", dir);
    cr_assert_eq(st, 0, "%s", train);
    double acc = last_value(train, "test_acc ");
    cr_expect(strstr(train, "mlp: test accuracy "), "%s", train);
    char *eval = run_fmt(&st, "cd %s && ./mlp eval --data data --weights w.st", dir);
    cr_assert_eq(st, 0, "%s", eval);
    cr_expect_float_eq(last_value(eval, "test_acc "), acc, 1e-9, "%s\n%s", train, eval);
    /* in batches of any size: the same count of right answers, the same loss to rounding */
    for (int b = 0; b < 2; b++) {
        char *other = run_fmt(&st, "cd %s && ./mlp eval --data data --weights w.st --batch %d", dir, b ? 1500 : 7);
        cr_assert_eq(st, 0, "%s", other);
        cr_expect_float_eq(last_value(other, "test_acc "), acc, 1e-9, "%s", other);
        cr_expect(fabs(last_value(other, "test_loss ") - last_value(eval, "test_loss ")) <= 1e-4, "%s\n%s", other,
                  eval);
        free(other);
    }

    char *pred = run_fmt(&st, "cd %s && ./mlp predict --weights w.st data/t10k-images-idx3-ubyte.gz", dir);
    cr_assert_eq(st, 0, "%s", pred);
    char *pred_big =
        run_fmt(&st, "cd %s && ./mlp predict --weights w.st data/t10k-images-idx3-ubyte.gz --batch 5000", dir);
    cr_expect_str_eq(pred_big, pred, "predict in one call of 5000 rows");
    free(pred_big);
    static const char *names[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    rt_dataset d;
    char err[512], path[600];
    snprintf(path, sizeof path, "%s/data", dir);
    cr_assert(rt_load_mnist_dir(path, false, 10, &d, err, sizeof err), "%s", err);
    int64_t lines = 0, right = 0;
    for (char *line = strtok(pred, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        int k = 0;
        while (k < 10 && strcmp(line, names[k]) != 0)
            k++;
        cr_assert_lt(k, 10, "line %lld is not a class name: '%s'", (long long)lines + 1, line);
        right += lines < d.n && ((const int32_t *)d.y)[lines] == k;
    }
    cr_expect_eq(lines, d.n);
    cr_expect_float_eq((double)right / (double)d.n, acc, 1e-9, "predict's accuracy against eval's");

    /* one CSV given to eval is the test set (feature rows, the label last, a header) */
    snprintf(path, sizeof path, "%s/one.csv", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int j = 0; j < 784; j++)
        fprintf(f, "p%d,", j);
    fprintf(f, "label\n");
    for (int64_t i = 0; i < 40; i++) {
        for (int j = 0; j < 784; j++)
            fprintf(f, "%d,", ((const uint8_t *)d.x)[i * 784 + j]);
        fprintf(f, "%d\n", ((const int32_t *)d.y)[i]);
    }
    fclose(f);
    rt_dataset_free(&d);
    char *one = run_fmt(&st, "cd %s && ./mlp eval --weights w.st --data one.csv", dir);
    cr_expect(st == 0 && strstr(one, "test set of one.csv (40 samples): test_loss") && strstr(one, "test_acc") &&
                  !strstr(one, "train_"),
              "%s", one);
    free(one);

    /* --top 3: the three likeliest classes with their probabilities, the first the class predict
     * names */
    char *top =
        run_fmt(&st, "cd %s && ./mlp predict --weights w.st --top 3 data/t10k-images-idx3-ubyte.gz | head -1", dir);
    char *first = run_fmt(&st, "cd %s && ./mlp predict --weights w.st data/t10k-images-idx3-ubyte.gz | head -1", dir);
    first[strcspn(first, "\n")] = 0;
    double p[3] = {0};
    const char *at = top;
    for (int k = 0; k < 3; k++) {
        at = strstr(at, " 0.");
        cr_assert_not_null(at, "%s", top);
        p[k] = strtod(at + 1, NULL);
        at += 3;
    }
    cr_expect(strncmp(top, first, strlen(first)) == 0 && top[strlen(first)] == ' ', "%s | %s", top, first);
    cr_expect(p[0] >= p[1] && p[1] >= p[2] && p[0] + p[1] + p[2] <= 1.001, "%s", top);
    free(top);
    free(first);

    char *csv = run_fmt(&st, "cd %s && cat m.csv && head -c 4 p.svg", dir);
    cr_expect(strstr(csv, "epoch,train_loss,train_acc,test_loss,test_acc,seconds,samples_per_s\n1,"), "%s", csv);
    cr_expect(strstr(csv, "\n2,"), "%s", csv);
    cr_expect(strstr(csv, "<svg"), "%s", csv);
    free(csv);
    free(train);
    free(eval);
    free(pred);
}

/* A checkpoint records the model's options, and a binary built with others refuses it: the
 * relu MLP took a tanh checkpoint without a word and reported test_acc 0.7681. */
Test(binary, a_checkpoint_of_other_options_is_refused)
{
    build("mlp");
    int st;
    char *out = run_fmt(&st,
                        "cd %s && %s build models/mlp.c -o %s/mlp_tanh --set act=tanh && cd %s && ./mlp_tanh train "
                        "--data data --epochs 1 --save tanh.st && ./mlp_tanh eval --data data --weights tanh.st",
                        AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), dir, dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    out = run_fmt(&st, "cd %s && ./mlp eval --data data --weights tanh.st 2>&1", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "mlp: error: tanh.st: a checkpoint of mlp built with options act=tanh, not act=relu"), "%s",
              out);
    free(out);
}

/* The binary trains as the interpreter does: the same losses and accuracies per epoch, at
 * the compiled batch (256) and past it (1000: the plan holds for any batch). */
Test(binary, trains_as_the_interpreter_does)
{
    build("softmax");
    static const char *const batch[] = {"", " --batch 1000"};
    for (int b = 0; b < 2; b++) {
        int st;
        char *bin = run_fmt(&st, "cd %s && ./softmax train --data data --epochs 2 --seed 3%s", dir, batch[b]);
        cr_assert_eq(st, 0, "%s", bin);
        char *ref = run_fmt(&st, "cd %s && %s run models/softmax.c --data %s/data --epochs 2 --seed 3%s", AG_SOURCE_DIR,
                            getenv("AOTGRAD_BIN"), dir, batch[b]);
        cr_assert_eq(st, 0, "%s", ref);
        const char *keys[] = {"train_loss ", "train_acc ", "test_acc "};
        for (int k = 0; k < 3; k++) {
            double x = last_value(bin, keys[k]), y = last_value(ref, keys[k]);
            cr_expect(fabs(x - y) <= 1e-4, "%s%s: binary %g, interpreter %g\n%s\n%s", keys[k], batch[b], x, y, bin,
                      ref);
        }
        free(bin);
        free(ref);
    }
}

Test(binary, bench_prints_each_kernel)
{
    build("mlp");
    int st;
    char *out = run_fmt(&st, "%s/mlp bench --steps 3", dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "mlp bench: train step at batch 256"), "%s", out);
    cr_expect(strstr(out, "ms/step"), "%s", out);
    cr_expect(strstr(out, "GFLOP/s") && strstr(out, "% sgemm"), "%s", out);
    /* the loops' data fit in L2 at batch 256: measured against a copy within L2, not memory */
    cr_expect(strstr(out, "GB/s") && strstr(out, "% L2 copy") && strstr(out, "within L2"), "%s", out);
    char *big = run_fmt(&st, "%s/mlp bench --steps 2 --batch 4096 --threads 1", dir); /* 16 MB for the first loop */
    cr_expect(st == 0 && strstr(big, "train step at batch 4096") && strstr(big, "% memcpy"), "%s", big);
    free(big);
    int gemms = 0;
    for (const char *p = strstr(out, " gemm "); p; p = strstr(p + 1, " gemm "))
        gemms++;
    cr_expect_eq(gemms, 5, "the MLP step has 5 matmuls:\n%s", out);
    free(out);
    /* OpenBLAS's kernels: the CPU's best where OpenBLAS would pick older ones, the user's
     * choice where OPENBLAS_CORETYPE is set */
    char *flags = run_fmt(&st, "grep -m1 '^flags' /proc/cpuinfo");
    bool avx512 = strstr(flags, " avx512f") && strstr(flags, " avx512bw") && strstr(flags, " avx512vl") &&
                  strstr(flags, " avx512dq");
    bool avx2 = strstr(flags, " avx2") && strstr(flags, " fma");
    free(flags);
    out = run_fmt(&st, "%s/mlp bench --steps 1", dir);
    cr_assert_eq(st, 0, "%s", out);
    if (avx512)
        cr_expect(strstr(out, "SkylakeX kernels") || strstr(out, "SapphireRapids kernels") ||
                      strstr(out, "Cooperlake kernels"),
                  "an AVX-512 CPU, but:\n%s", out);
    else if (avx2)
        cr_expect(!strstr(out, "Prescott kernels"), "an AVX2 CPU, but:\n%s", out);
    free(out);
    out = run_fmt(&st, "OPENBLAS_CORETYPE=Haswell %s/mlp bench --steps 1", dir);
    cr_assert_eq(st, 0, "%s", out);
    if (avx2)
        cr_expect(strstr(out, "Haswell kernels"), "OPENBLAS_CORETYPE=Haswell, but:\n%s", out);
    free(out);
    /* run again for the better kernels, the process keeps its name (ps, pgrep: not "exe") */
    out = run_fmt(&st,
                  "env -u OPENBLAS_CORETYPE %s/mlp bench --steps 1000 >/dev/null & p=$!; sleep 0.2; "
                  "cat /proc/$p/comm; wait $p",
                  dir);
    cr_expect_str_eq(out, "mlp\n", "the binary's process name: %s", out);
    free(out);
}

/* --target cpu,cuda: the binary carries the CUDA kernels (NVRTC at build time), still needs
 * only the system libraries, trains on the CPU as the CPU-only binary does, and says in one
 * line why --device cuda cannot run where there is no driver. */
Test(binary, cuda_target_runs_on_the_cpu_and_refuses_a_missing_gpu)
{
    int st;
    char *probe = run_fmt(&st, "%s build models/softmax.c --emit ptx -o %s/probe", getenv("AOTGRAD_BIN"), dir);
    if (st != 0 && strstr(probe, "NVRTC"))
        cr_skip_test("NVRTC not available: %s", probe);
    free(probe);
    build("softmax");
    char *out = run_fmt(&st, "cd %s && %s build models/softmax.c --target cpu,cuda -o %s/softmax_gpu", AG_SOURCE_DIR,
                        getenv("AOTGRAD_BIN"), dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    out = run_fmt(
        &st,
        "readelf -d %s/softmax_gpu | grep NEEDED | grep -cvE 'libc.so|libm.so|libz.so|libopenblas|libasan|libubsan'",
        dir);
    cr_expect_eq(atoi(out), 0, "unexpected NEEDED libraries: %s", out);
    free(out);
    out = run_fmt(
        &st, "cd %s && AOTGRAD_LIBCUDA=/nonexistent/libcuda.so.1 ./softmax_gpu train --data data --device cuda", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect_str_eq(out,
                     "softmax: error: --device cuda: no CUDA driver (/nonexistent/libcuda.so.1: cannot open shared "
                     "object file: No such file or directory)\n");
    free(out);
    /* the CPU: the same training as the CPU-only binary, with and without --device cpu */
    char *gpu_bin = run_fmt(
        &st, "cd %s && AOTGRAD_LIBCUDA=/nonexistent ./softmax_gpu train --data data --epochs 2 --device cpu", dir);
    cr_assert_eq(st, 0, "%s", gpu_bin);
    char *fallback =
        run_fmt(&st, "cd %s && AOTGRAD_LIBCUDA=/nonexistent ./softmax_gpu train --data data --epochs 2", dir);
    cr_assert_eq(st, 0, "%s", fallback);
    char *cpu_bin = run_fmt(&st, "cd %s && ./softmax train --data data --epochs 2", dir);
    cr_assert_eq(st, 0, "%s", cpu_bin);
    const char *keys[] = {"train_loss ", "train_acc ", "test_acc "};
    for (int k = 0; k < 3; k++) {
        cr_expect_float_eq(last_value(gpu_bin, keys[k]), last_value(cpu_bin, keys[k]), 0, "%s\n%s", gpu_bin, cpu_bin);
        cr_expect_float_eq(last_value(fallback, keys[k]), last_value(cpu_bin, keys[k]), 0, "%s\n%s", fallback, cpu_bin);
    }
    free(gpu_bin);
    free(fallback);
    free(cpu_bin);
    out = run_fmt(&st, "cd %s && ./softmax train --data data --device cuda", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect(strstr(out, "softmax was built for the CPU only (aotgrad build --target cpu,cuda adds the GPU)"), "%s",
              out);
    free(out);
}

/* --emit adds files beside the binary, unless it asks for the object or header alone */
Test(binary, emit_lists_add_to_the_binary_or_replace_it)
{
    int st;
    char *out = run_fmt(&st, "cd %s && %s build models/softmax.c --emit cu,ll -o %s/withcu && ls %s | grep withcu",
                        AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), dir, dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "withcu\n") && strstr(out, "withcu.cu\n") && strstr(out, "withcu.ll\n"), "%s", out);
    free(out);
    out = run_fmt(&st, "cd %s && %s build models/softmax.c --emit obj,h -o %s/objonly && ls %s | grep objonly",
                  AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), dir, dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect_str_eq(out, "objonly.h\nobjonly.o\n");
    free(out);
    out = run_fmt(&st, "cd %s && %s build models/softmax.c --emit obj,exe -o %s/both && ls %s | grep both",
                  AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), dir, dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect_str_eq(out, "both\nboth.o\n");
    free(out);
}

/* A text IR whose predictions are an input: the program copies the input into the arena
 * first (every output lies in the arena or the parameters), so the binary predicts it back
 * (it was refused before: "output predict is the input %X"). */
Test(binary, an_output_that_is_an_input_is_copied)
{
    int st;
    char *out = run_fmt(&st,
                        "cd %s && %s ir models/linreg.c | sed 's/predict: %%[0-9]*/predict: %%X/' > %s/in.ir && "
                        "%s build %s/in.ir -o %s/in 2>&1 && cd %s && ./in train --epochs 1 --save in.st >/dev/null && "
                        "printf 'a,b\\n0.5,0.25\\n-1,2\\n' > in.csv && ./in predict --weights in.st in.csv",
                        AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), dir, getenv("AOTGRAD_BIN"), dir, dir, dir);
    cr_expect_eq(st, 0, "%s", out);
    cr_expect_str_eq(out, "0.5 0.25\n-1 2\n");
    free(out);
}

/* A graph without training (tests/data/models/chain.c) makes a binary of predict and bench:
 * predict prints every output of each sample of a CSV, in batches of the compiled maximum,
 * as the interpreter computes them with the parameters of a checkpoint; --random N runs on
 * seeded inputs; train is no command of it; bench times the forward pass. */
Test(binary, a_forward_computation_predicts_and_benches)
{
    char bin[600], path[700];
    snprintf(bin, sizeof bin, "%s/chain", dir);
    int st;
    char *out = run_fmt(&st, "cd %s && %s build tests/data/models/chain.c -o %s --batch 4 2>&1", AG_SOURCE_DIR,
                        getenv("AOTGRAD_BIN"), bin);
    cr_assert_eq(st, 0, "%s", out);
    free(out);

    /* six samples and the parameters, written as a CSV and a checkpoint */
    char err[1024];
    ir_graph *m = fe_load(AG_SOURCE_DIR "/tests/data/models/chain.c", getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(m);
    const int64_t n = 6;
    ir_tensor **bound = fe_bind_random(m, n, 5, false);
    const ir_tensor *x = bound[ir_find_source(m, IR_input, "x")], *W = bound[ir_find_source(m, IR_param, "W")],
                    *b = bound[ir_find_source(m, IR_param, "b")];
    rt_ckpt_tensor t[] = {{"W", AG_F32, 2, {4, 3}, W->data}, {"b", AG_F32, 1, {3}, b->data}};
    snprintf(path, sizeof path, "%s/chain.safetensors", dir);
    cr_assert(rt_ckpt_save(path, t, 2, NULL, 0, err, sizeof err), "%s", err);
    snprintf(path, sizeof path, "%s/x.csv", dir);
    FILE *f = fopen(path, "w");
    for (int64_t i = 0; i < n * 4; i++)
        fprintf(f, "%.9g%s", ir_tensor_get(x, i), i % 4 == 3 ? "\n" : ",");
    fclose(f);
    out = run_fmt(&st, "cd %s && %s predict x.csv --weights chain.safetensors --threads 1 2>&1", dir, bin);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strncmp(out, "# h[3] | p[3]\n", 14) == 0, "%s", out);

    ir_tensor outs[2];
    ir_run run = {.f64 = false, .batch = n, .seed = 1, .step = 0, .training = false};
    cr_assert(ir_interp(m, &run, (const ir_tensor *const *)bound, outs, err, sizeof err), "%s", err);
    const char *at = out + 14;
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++)
        for (int o = 0; o < 2; o++)
            for (int j = 0; j < 3; j++) {
                char *end;
                double got = strtod(at, &end), want = ir_tensor_get(&outs[o], i * 3 + j);
                cr_assert(end != at, "sample %lld: not a number at '%.20s'", (long long)i, at);
                d += (got - want) * (got - want), s += want * want;
                at = end;
                while (*at == ' ' || *at == '|' || *at == '\n')
                    at++;
            }
    cr_expect(*at == 0, "more than %lld lines:\n%s", (long long)n, out);
    cr_expect(sqrt(d) <= 1e-5 * sqrt(s), "the binary's outputs differ from the interpreter's by %g\n%s", sqrt(d / s),
              out);
    free(out);
    ir_tensor_free(&outs[0]);
    ir_tensor_free(&outs[1]);
    fe_bind_free(m, bound);
    ir_graph_free(m);

    out = run_fmt(&st, "%s predict --random 5 --seed 3", bin);
    cr_expect_eq(st, 0, "%s", out);
    int lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')); p++)
        lines++;
    cr_expect_eq(lines, 6, "a header and 5 samples:\n%s", out);
    free(out);
    /* one plan (laid out at batch 4) for any batch: calls of 1, 7 or 1000 rows print the same */
    char *by[3];
    static const int per_call[3] = {1, 7, 1000};
    for (int k = 0; k < 3; k++) {
        by[k] = run_fmt(&st, "%s predict --random 30 --seed 3 --threads 1 --batch %d", bin, per_call[k]);
        cr_expect_eq(st, 0, "--batch %d: %s", per_call[k], by[k]);
    }
    cr_expect_gt(strlen(by[0]), 300, "%s", by[0]);
    cr_expect_str_eq(by[1], by[0]);
    cr_expect_str_eq(by[2], by[0]);
    for (int k = 0; k < 3; k++)
        free(by[k]);
    static const struct {
        const char *args, *says;
        int status;
    } refused[] = {
        {"predict", "chain predict: takes INPUT files or --random N\nTry 'chain predict --help'.\n", 2},
        {"predict x.csv x.csv", "chain: error: 2 input files for 1 input (x, in order), or --random N\n", 1},
        {"train",
         "chain: unknown command 'train' (commands: predict, bench: a forward computation, with no training "
         "to train or evaluate; see chain --help)\n",
         2},
    };
    for (size_t k = 0; k < sizeof refused / sizeof *refused; k++) {
        out = run_fmt(&st, "cd %s && %s %s 2>&1", dir, bin, refused[k].args);
        cr_expect_eq(WEXITSTATUS(st), refused[k].status, "%s: exit %d", refused[k].args, WEXITSTATUS(st));
        cr_expect_str_eq(out, refused[k].says, "%s", refused[k].args);
        free(out);
    }
    out = run_fmt(&st, "%s bench --steps 3 --batch 64", bin);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "chain bench: forward pass at batch 64"), "%s", out);
    free(out);
    out = run_fmt(&st, "%s bench --steps 3", bin);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "chain bench: forward pass at batch 4") && strstr(out, " gemm ") && strstr(out, " softmax "),
              "%s", out);
    free(out);
}
