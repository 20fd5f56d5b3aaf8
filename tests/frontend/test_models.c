/* Every model in models/ and every .ir file under tests/: builds, verifies, and prints as
 * text that parses back to the same text; the command line on the MLP. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_cmd.h"
#include "bind.h"
#include "interp.h"
#include "ir.h"
#include "load.h"

static void round_trip(const ir_graph *g, const char *what)
{
    char err[512];
    cr_assert(ir_verify(g, err, sizeof err), "%s: %s", what, err);
    char *a = ir_print_str(g);
    ir_graph *h = ir_parse(a, strlen(a), what, err, sizeof err);
    cr_assert_not_null(h, "%s does not parse back: %s\n%s", what, err, a);
    cr_assert(ir_verify(h, err, sizeof err), "%s parsed: %s", what, err);
    char *b = ir_print_str(h);
    cr_assert_str_eq(b, a, "%s: print(parse(print(g))) differs from print(g)", what);
    free(a);
    free(b);
    ir_graph_free(h);
}

/* Calls fn on each file under dir (recursively) whose name ends with suffix; returns the count. */
static int each_file(const char *dir, const char *suffix, void (*fn)(const char *path))
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s", dir);
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t n = strlen(e->d_name), k = strlen(suffix);
        if (e->d_type == DT_DIR)
            count += each_file(path, suffix, fn);
        else if (n > k && strcmp(e->d_name + n - k, suffix) == 0) {
            fn(path);
            count++;
        }
    }
    closedir(d);
    return count;
}

static void model_round_trip(const char *path)
{
    ir_graph *g = fe_load(path, getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(g, "%s does not build", path);
    round_trip(g, path);
    ir_graph_free(g);
}

Test(models, every_model_round_trips)
{
    int n = each_file(AG_SOURCE_DIR "/models", ".c", model_round_trip);
    cr_assert_geq(n, 4, "only %d models found", n);
}

static void ir_file_round_trip(const char *path)
{
    size_t len;
    char *text = fe_read_file(path, &len);
    cr_assert_not_null(text, "cannot read %s", path);
    char err[512];
    ir_graph *g = ir_parse(text, len, path, err, sizeof err);
    free(text);
    cr_assert_not_null(g, "%s", err);
    round_trip(g, path);
    ir_graph_free(g);
}

Test(models, every_ir_file_in_tests_round_trips)
{
    int n = each_file(AG_SOURCE_DIR "/tests", ".ir", ir_file_round_trip);
    cr_assert_geq(n, 3, "only %d .ir files found under tests/", n);
}

/* The MLP's forward pass at initialization: logits near 0, so the loss is near ln 10. */
Test(models, mlp_forward_at_init)
{
    ir_graph *g = fe_load(AG_SOURCE_DIR "/models/mlp.c", getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(g);
    double loss[2];
    for (int f64 = 0; f64 < 2; f64++) {
        ir_tensor **bound = fe_bind_random(g, 7, 1, f64);
        ir_tensor outs[3];
        ir_run run = {.f64 = f64, .batch = 7, .seed = 1};
        char err[256];
        cr_assert_eq(g->nout, 3);
        int lo = ir_find_output(g, "loss"), co = ir_find_output(g, "correct"), po = ir_find_output(g, "predict");
        cr_assert(lo >= 0 && co >= 0 && po >= 0);
        cr_assert(ir_interp(g, &run, (const ir_tensor *const *)bound, outs, err, sizeof err), "%s", err);
        cr_assert_eq(outs[po].shape.rank, 2);
        cr_assert_eq(outs[po].shape.dim[0], 7);
        cr_assert_eq(outs[po].shape.dim[1], 10);
        loss[f64] = ir_tensor_get(&outs[lo], 0);
        double correct = ir_tensor_get(&outs[co], 0);
        cr_assert(correct >= 0 && correct <= 7 && correct == floor(correct), "correct = %g", correct);
        for (int k = 0; k < 3; k++)
            ir_tensor_free(&outs[k]);
        fe_bind_free(g, bound);
    }
    cr_assert(fabs(loss[1] - log(10.0)) < 0.05, "f64 loss %g, want about ln 10", loss[1]);
    cr_assert(fabs(loss[0] - loss[1]) < 1e-5, "f32 loss %.9g vs f64 %.9g", loss[0], loss[1]);
    ir_graph_free(g);
}

/* The command line, as a user runs it. */
Test(cli, ir_forward_and_check)
{
    const char *bin = getenv("AOTGRAD_BIN");
    cr_assert_not_null(bin, "AOTGRAD_BIN is not set (run through ctest)");
    char cmd[2048];
    int st;
    snprintf(cmd, sizeof cmd, "cd %s && %s ir models/mlp.c", AG_SOURCE_DIR, bin);
    char *ir = run_cmd(cmd, &st);
    cr_assert_eq(st, 0);
    cr_assert(strstr(ir, "graph @mlp {\n"), "%s", ir);
    cr_assert(strstr(ir, "= matmul %"), "%s", ir);
    cr_assert(strstr(ir, "= relu %3                      ; models/mlp.c:18\n"),
              "no source line on the hidden layer:\n%s", ir);
    /* docs/text-ir.md shows this very output */
    size_t len;
    char *readme = fe_read_file(AG_SOURCE_DIR "/docs/text-ir.md", &len);
    cr_assert_not_null(readme);
    char *shown = strstr(readme, "```\ngraph @mlp {\n"), *end = shown ? strstr(shown, "\n}\n```") : NULL;
    cr_assert(shown && end, "docs/text-ir.md has no graph @mlp block");
    shown += 4, end[3] = 0;
    cr_expect_str_eq(shown, ir, "docs/text-ir.md's text IR is not what aotgrad ir models/mlp.c prints");
    free(readme);
    free(ir);

    snprintf(cmd, sizeof cmd, "cd %s && %s forward models/mlp.c --batch 7 --seed 3", AG_SOURCE_DIR, bin);
    char *out = run_cmd(cmd, &st);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "mlp: forward through the interpreter (f32), batch 7, seed 3\n"), "%s", out);
    cr_assert(strstr(out, "predict    f32[7,10]"), "%s", out);
    cr_assert(strstr(out, "(first 8 of 70)"), "%s", out);
    free(out);

    snprintf(cmd, sizeof cmd, "%s forward --help", bin);
    out = run_cmd(cmd, &st);
    cr_assert_eq(st, 0);
    cr_assert(strstr(out, "usage: aotgrad forward MODEL.c"), "%s", out);
    free(out);

    snprintf(cmd, sizeof cmd, "%s forward %s/models/mlp.c --batch 0 2>&1", bin, AG_SOURCE_DIR);
    out = run_cmd(cmd, &st);
    cr_assert_eq(WEXITSTATUS(st), 2);
    cr_assert(strstr(out, "--batch takes a count from 1 to 16777216, not '0'"), "%s", out);
    free(out);
}

/* build --dump-dir writes every stage as a file of its own, each listed in index.txt in
 * order: the graph after each pass of both pipelines (.ir that parses back and verifies, and
 * .dot), the memory plan, the kernel IR, the LLVM IR before and after optimization, the
 * assembly, the CUDA C; with --batch, the graphs planned there too. */
Test(cli, build_dump_dir_writes_every_stage)
{
    const char *bin = getenv("AOTGRAD_BIN");
    cr_assert_not_null(bin, "AOTGRAD_BIN is not set (run through ctest)");
    char dir[] = "/tmp/aotgrad-dump-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    int st;
    char *out = run_fmt(&st, "cd %s && %s build models/mlp.c -o %s/mlp --emit obj --batch 64 --dump-dir %s/d 2>&1",
                        AG_SOURCE_DIR, bin, dir, dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    char path[600];
    snprintf(path, sizeof path, "%s/d/index.txt", dir);
    size_t len;
    char *index = fe_read_file(path, &len);
    cr_assert_not_null(index);
    int irs = 0, files = 0;
    for (char *line = strchr(index, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        char file[256];
        if (sscanf(line + 1, "%255s", file) != 1 || strstr(line + 1, "(not written"))
            continue;
        snprintf(path, sizeof path, "%s/d/%s", dir, file);
        cr_expect_eq(access(path, R_OK), 0, "%s is listed but not there", file);
        files++;
        size_t n = strlen(file);
        if (n > 3 && strcmp(file + n - 3, ".ir") == 0) {
            size_t tl;
            char *text = fe_read_file(path, &tl), err[1024];
            ir_graph *g = text ? ir_parse(text, tl, file, err, sizeof err) : NULL;
            cr_expect(g && ir_verify(g, err, sizeof err), "%s: %s", file, err);
            ir_graph_free(g);
            free(text);
            irs++;
        }
    }
    /* the model, 8 passes of the train step, 6 of the eval graph, 7 of each half of the
     * split step, each planned at 64 */
    cr_expect_eq(irs, 33, "%d .ir files\n%s", irs, index);
    static const char *const want[] = {"train.07.fuse.ir",
                                       "accumulate.03.accumulate.ir",
                                       "apply.07.plan_memory.dot",
                                       "apply.plan_memory_at_batch.ir",
                                       "eval.06.plan_memory.dot",
                                       "memory.txt",
                                       "mlp_train_step.kernels.txt",
                                       "mlp_forward.kernels.txt",
                                       "mlp.cu",
                                       "mlp.unoptimized.ll",
                                       "mlp.ll",
                                       "mlp.s",
                                       "train.plan_memory_at_batch.ir"};
    for (size_t k = 0; k < sizeof want / sizeof *want; k++)
        cr_expect(strstr(index, want[k]), "%s is not listed:\n%s", want[k], index);
    cr_expect_gt(files, 35, "%s", index);
    free(index);
    out = run_fmt(&st, "%s build %s/nonexistent.c -o %s/x --dump-dir /nonexistent/d 2>&1", bin, dir, dir);
    cr_expect_neq(st, 0, "%s", out);
    free(out);
    out =
        run_fmt(&st, "cd %s && %s build models/mlp.c -o %s/x --dump-dir /nonexistent/d 2>&1", AG_SOURCE_DIR, bin, dir);
    cr_expect_str_eq(out, "models/mlp.c: error: --dump-dir /nonexistent/d: No such file or directory\n");
    free(out);
    out = run_fmt(&st, "rm -rf %s", dir);
    free(out);
}

/* A graph without training (tests/data/models/chain.c) is a forward computation: its
 * pipeline is the eval one, without --eval; --train and the train step's passes say why not;
 * --memory reports inference; build gives obj and h, and a CPU binary (test_binary.c). */
Test(cli, a_graph_without_training_goes_through_the_eval_pipeline)
{
    const char *bin = getenv("AOTGRAD_BIN");
    cr_assert_not_null(bin, "AOTGRAD_BIN is not set (run through ctest)");
    int st;
    char *out = run_fmt(&st, "cd %s && %s ir tests/data/models/chain.c --after fuse 2>&1", AG_SOURCE_DIR, bin);
    cr_expect_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "= kernel %x, %W, %b body=@k0 out=o0") && strstr(out, "return h: %0, p: %1"), "%s", out);
    free(out);
    static const struct {
        const char *args, *says;
    } refused[] = {
        {"ir tests/data/models/chain.c --train",
         "tests/data/models/chain.c: error: chain declares no training (ag_minimize), so it has no train step\n"},
        {"ir tests/data/models/chain.c --after optimizer",
         "tests/data/models/chain.c: error: chain declares no training (ag_minimize), so it has no train step "
         "(pass optimizer runs only there)\n"},
        {"build tests/data/models/chain.c -o /tmp/aotgrad-chain-$$ --target cpu,cuda",
         "tests/data/models/chain.c: error: chain: --target cpu,cuda: the CUDA runtime runs models that train; a graph "
         "without training builds for the CPU (--emit cu,ptx gives its CUDA C)\n"},
    };
    for (size_t k = 0; k < sizeof refused / sizeof *refused; k++) {
        out = run_fmt(&st, "cd %s && %s %s 2>&1", AG_SOURCE_DIR, bin, refused[k].args);
        cr_expect_eq(WEXITSTATUS(st), 1, "%s: exit %d", refused[k].args, WEXITSTATUS(st));
        cr_expect_str_eq(out, refused[k].says, "%s", refused[k].args);
        free(out);
    }
    out = run_fmt(&st, "cd %s && %s ir tests/data/models/chain.c --memory 2>&1", AG_SOURCE_DIR, bin);
    cr_expect_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "inference (the eval graph; the model declares no training):\n") &&
                  !strstr(out, "train step"),
              "%s", out);
    free(out);
    /* a model that trains is planned at --batch too, not below the batch its training uses */
    out =
        run_fmt(&st,
                "cd %s && %s build models/mlp.c -o /tmp/aotgrad-mlp-$$ --emit h --batch 8 && grep \"define MLP_BATCH\" "
                "/tmp/aotgrad-mlp-$$.h; rm -f /tmp/aotgrad-mlp-$$.h",
                AG_SOURCE_DIR, bin);
    cr_expect_str_eq(out, "#define MLP_BATCH 8LL /* the batch the memory plan was laid out for */\n");
    free(out);
    out = run_fmt(&st,
                  "cd %s && %s build tests/data/models/chain.c -o /tmp/aotgrad-chain-$$ --emit h,ir --batch 16 && "
                  "cat /tmp/aotgrad-chain-$$.h /tmp/aotgrad-chain-$$.ir; rm -f /tmp/aotgrad-chain-$$.h "
                  "/tmp/aotgrad-chain-$$.ir",
                  AG_SOURCE_DIR, bin);
    cr_expect(strstr(out, "#define CHAIN_BATCH 16LL") &&
                  strstr(out, "static inline int64_t chain_arena_bytes(int64_t n)") &&
                  strstr(out, "void chain_forward(const ag_args *a);") && !strstr(out, "train_step") &&
                  strstr(out, "memory batch=16"),
              "%s", out);
    free(out);
    /* a forward-only .ir builds to obj and h as well, and to a binary that predicts */
    out = run_fmt(&st,
                  "cd %s && %s build tests/data/fuzz/binary_forward_n_without_inputs.ir -o /tmp/aotgrad-fwd-$$ --emit "
                  "obj,h,exe && ls /tmp/aotgrad-fwd-$$.o && grep -c _forward /tmp/aotgrad-fwd-$$.h && "
                  "/tmp/aotgrad-fwd-$$ predict --batch 3 --random 3; rm -f /tmp/aotgrad-fwd-$$ /tmp/aotgrad-fwd-$$.o "
                  "/tmp/aotgrad-fwd-$$.h",
                  AG_SOURCE_DIR, bin);
    cr_expect(st == 0 && strstr(out, ".o\n") && strstr(out, "# o2 = -5.4375"), "%s", out);
    free(out);
}

/* Misuse of the command line gets one line naming what was wrong, and exit 2; errors keep
 * one "error:" each. */
Test(cli, usage_errors_name_what_was_wrong)
{
    const char *bin = getenv("AOTGRAD_BIN");
    cr_assert_not_null(bin, "AOTGRAD_BIN is not set (run through ctest)");
    static const struct {
        const char *args, *says;
    } cases[] = {
        {"run models/mlp.c --epochs abc", "aotgrad run: --epochs takes a count from 1 to 2^30, not 'abc'\n"},
        {"run models/mlp.c --lr -1", "aotgrad run: --lr takes a number >= 0, not '-1'\n"},
        {"run models/mlp.c --bogus", "aotgrad run: unknown option '--bogus'\n"},
        {"run models/mlp.c --epochs", "aotgrad run: --epochs needs a value\n"},
        {"ir models/mlp.c --after eval", "aotgrad ir: pass eval runs only in the eval pipeline (add --eval)\n"},
        {"ir models/mlp.c --eval --after autodiff",
         "aotgrad ir: pass autodiff does not run in the eval pipeline (aotgrad passes lists where each runs)\n"},
        {"ir models/mlp.c --accumulate --eval",
         "aotgrad ir: one of --train, --eval, --accumulate and --apply, not two\n"},
        {"ir models/mlp.c --apply --after optimizer",
         "aotgrad ir: pass optimizer does not run in the apply pipeline (aotgrad passes lists where each runs)\n"},
        {"ir models/mlp.c --after accumulate",
         "aotgrad ir: pass accumulate runs only in the accumulate pipeline (add --accumulate)\n"},
        {"run models/mlp.c --accumulate 0",
         "aotgrad run: --accumulate takes a count of batches from 1 to 1000000, not '0'\n"},
        {"run models/mlp.c --clip-norm 0",
         "aotgrad run: --clip-norm takes a number above 0, up to 3.40282e+38 (a finite f32), not '0'\n"},
        {"build models/mlp.c -o /tmp/x --batch 0",
         "aotgrad build: --batch takes a count from 1 to 16777216, not '0'\n"},
        {"frobnicate", "aotgrad: unknown command 'frobnicate'\nTry 'aotgrad --help'.\n"},
        /* did you mean: a likely typo of a name the command knows */
        {"buidl", "aotgrad: unknown command 'buidl'; did you mean 'build'?\nTry 'aotgrad --help'.\n"},
        {"ir models/mlp.c --train --after fusee",
         "aotgrad ir: unknown pass 'fusee'; did you mean 'fuse'? (aotgrad passes lists them)\n"},
        {"ir models/mlp.c --trian", "aotgrad ir: unknown option '--trian'; did you mean '--train'?\n"},
        {"run models/mlp.c --epcohs 2", "aotgrad run: unknown option '--epcohs'; did you mean '--epochs'?\n"},
        /* getopt_long's forms: --flag=value, abbreviations, -- before operands, all said alike */
        {"run models/mlp.c --ep=0", "aotgrad run: --epochs takes a count from 1 to 2^30, not '0'\n"},
        {"ir --m models/mlp.c", "aotgrad ir: option '--m' is ambiguous: it may be --memory, --model-timeout\n"},
        {"ir --tr=1 models/mlp.c", "aotgrad ir: --train takes no value\nTry 'aotgrad ir --help'.\n"},
        {"ir -- models/mlp.c --train", "aotgrad ir: one model at a time; extra argument '--train'\n"},
        {"build models/mlp.c -o", "aotgrad build: -o needs a value\n"},
        {"--colour=never ir models/mlp.c", "aotgrad: unknown option '--colour'; did you mean '--color'?\n"},
        {"ir models/mlp.c --color=sometimes", "aotgrad ir: --color takes auto, always or never, not 'sometimes'\n"},
        /* --memory is a report of its own: nothing it would silently ignore */
        {"ir models/mlp.c --memory --dot", "aotgrad ir: --memory reports both pipelines' plans as text; it takes no "
                                           "--train, --eval, --after or --dot"},
        {"ir models/mlp.c --memory --eval", "aotgrad ir: --memory reports both pipelines' plans as text"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int st;
        char *out = run_fmt(&st, "cd %s && %s %s 2>&1", AG_SOURCE_DIR, bin, cases[k].args);
        cr_expect_eq(WEXITSTATUS(st), 2, "%s: exit %d\n%s", cases[k].args, WEXITSTATUS(st), out);
        cr_expect(strncmp(out, cases[k].says, strlen(cases[k].says)) == 0, "%s:\n%s", cases[k].args, out);
        free(out);
    }

    /* diagnostics in colour when asked (GCC's colours); none when piped (auto) or never */
    int st;
    char *coloured =
        run_fmt(&st, "cd %s && %s ir tests/data/models/bad_shapes.c --color=always 2>&1", AG_SOURCE_DIR, bin);
    cr_expect(strstr(coloured, "\033[1;31merror:\033[0m matmul") && strstr(coloured, "\033[1;36mnote:\033[0m"), "%s",
              coloured);
    free(coloured);
    for (int k = 0; k < 2; k++) {
        char *plain = run_fmt(&st, "cd %s && %s ir tests/data/models/bad_shapes.c%s 2>&1", AG_SOURCE_DIR, bin,
                              k ? " --color never" : "");
        cr_expect(strstr(plain, "bad_shapes.c:10:16: error:") && !strchr(plain, '\033'), "%s", plain);
        free(plain);
    }

    /* --time gives the CUDA C and NVRTC a line of their own, not LLVM IR's */
    char *timed = run_fmt(&st,
                          "cd %s && %s build models/softmax.c -o /tmp/aotgrad-t-$$ --emit cu --time 2>&1; rm -f "
                          "/tmp/aotgrad-t-$$.cu",
                          AG_SOURCE_DIR, bin);
    cr_expect(strstr(timed, "\n  CUDA C, NVRTC ") && strstr(timed, "\n  LLVM IR "), "%s", timed);
    free(timed);

    /* forward takes --set: tanh changes the predictions */
    char *relu = run_fmt(&st, "cd %s && %s forward models/mlp.c --batch 2", AG_SOURCE_DIR, bin);
    cr_assert_eq(st, 0, "%s", relu);
    char *tanh_ = run_fmt(&st, "cd %s && %s forward models/mlp.c --batch 2 --set act=tanh", AG_SOURCE_DIR, bin);
    cr_assert_eq(st, 0, "%s", tanh_);
    cr_expect(strstr(tanh_, "predict    f32[2,10]") && strcmp(relu, tanh_) != 0, "%s\n%s", relu, tanh_);
    /* --f64 prints the types it computes in */
    char *wide = run_fmt(&st, "cd %s && %s forward models/mlp.c --batch 2 --f64", AG_SOURCE_DIR, bin);
    cr_expect(strstr(wide, "predict    f64[2,10]") && strstr(wide, "loss       f64[]"), "%s", wide);
    free(wide);
    free(relu);
    free(tanh_);

    /* ops names every op's kind */
    char *ops = run_fmt(&st, "%s ops", bin);
    cr_assert_eq(st, 0, "%s", ops);
    cr_expect(strstr(ops, "\nkernel             fused ") && strstr(ops, "\nconv2d             window "), "%s", ops);
    cr_expect(!strstr(ops, "(null)"), "%s", ops);
    free(ops);

    /* an eval graph after fusion cannot train: said once, with one "error:", at the .ir's file
     * (not the graph's name) */
    char *out = run_fmt(&st,
                        "cd %s && %s ir models/softmax.c --eval > /tmp/aotgrad-cli-eval-$$.ir && "
                        "%s run /tmp/aotgrad-cli-eval-$$.ir 2>&1; rm -f /tmp/aotgrad-cli-eval-$$.ir",
                        AG_SOURCE_DIR, bin, bin);
    cr_expect(!strncmp(out, "/tmp/aotgrad-cli-eval-", 22) &&
                  strstr(out, ".ir: error: softmax is an eval graph after fusion, which cannot be trained"),
              "%s", out);
    const char *first = strstr(out, "error:");
    cr_expect(first && !strstr(first + 1, "error:"), "%s", out);
    free(out);

    /* predictions naming the loss: `check` refuses what a binary could only lie about (the
     * loss needs labels `predict` does not have), saying what to write instead */
    out = run_fmt(&st,
                  "cd %s && %s ir models/linreg.c | sed 's/predict=predict/predict=loss/' > /tmp/aotgrad-pl-$$.ir && "
                  "%s check /tmp/aotgrad-pl-$$.ir 2>&1; echo rc=$?; rm -f /tmp/aotgrad-pl-$$.ir",
                  AG_SOURCE_DIR, bin, bin);
    cr_expect(strstr(out, ".ir: error: verify: train: predict=loss names the loss; predictions are an output of their "
                          "own") &&
                  strstr(out, "rc=1"),
              "%s", out);
    free(out);

    /* inputs too large for any machine (4 PiB, past the address space): out of memory, said as such */
    out = run_fmt(
        &st,
        "printf 'graph @big {\\n  %%%%x: f32[N,1099511627776] = input\\n  %%%%0: f32[N,1099511627776] = neg "
        "%%%%x\\n  return o: %%%%0\\n}\\n' > /tmp/aotgrad-big-$$.ir && ASAN_OPTIONS=allocator_may_return_null=1 "
        "%s forward /tmp/aotgrad-big-$$.ir --batch 1000 2>&1; rm -f /tmp/aotgrad-big-$$.ir",
        bin);
    cr_expect(strstr(out, ".ir: error: out of memory for the inputs and parameters at this batch\n"), "%s", out);
    free(out);

    /* a build that cannot write its output says so before it works, naming the output (not
     * the model, which is fine); -o a folder likewise; -o sm.o --emit obj writes sm.o */
    out = run_fmt(&st, "cd %s && %s build models/softmax.c -o /nonexistent-aotgrad/x 2>&1", AG_SOURCE_DIR, bin);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect_str_eq(out, "aotgrad build: error: -o /nonexistent-aotgrad/x: /nonexistent-aotgrad does not exist (make "
                          "the folder first)\n");
    free(out);
    out = run_fmt(&st, "cd %s && %s build models/softmax.c -o /tmp 2>&1", AG_SOURCE_DIR, bin);
    cr_expect_str_eq(out, "aotgrad build: error: -o /tmp is a folder; name the output in it (-o /tmp/NAME)\n");
    free(out);
    out = run_fmt(&st,
                  "cd %s && %s build models/softmax.c -o /tmp/aotgrad-sm-$$.o --emit obj && ls /tmp/aotgrad-sm-$$.o* | "
                  "wc -l && rm -f /tmp/aotgrad-sm-$$.o*",
                  AG_SOURCE_DIR, bin);
    cr_expect_str_eq(out, "1\n");
    free(out);
}

/* The split step's halves print (aotgrad ir --accumulate, --apply), and aotgrad passes says
 * which pipelines run each pass */
Test(cli, the_split_step_s_pipelines_print)
{
    const char *bin = getenv("AOTGRAD_BIN");
    cr_assert_not_null(bin, "AOTGRAD_BIN is not set (run through ctest)");
    static const struct {
        const char *args, *has;
    } cases[] = {
        {"ir models/mlp.c --accumulate", "%W1.grad_acc: f32[784,256] = param zeros role=accum"},
        {"ir models/mlp.c --apply", "%clip_norm: f32[] = input role=clip_norm"},
        {"ir models/mlp.c --apply --after apply", "return W1.next:"},
        {"passes", "apply            apply"},
        {"passes", "autodiff         train,accumulate,apply"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int st;
        char *out = run_fmt(&st, "cd %s && %s %s 2>&1", AG_SOURCE_DIR, bin, cases[k].args);
        cr_expect(st == 0 && strstr(out, cases[k].has), "%s: exit %d\n%s", cases[k].args, WEXITSTATUS(st), out);
        free(out);
    }
}
