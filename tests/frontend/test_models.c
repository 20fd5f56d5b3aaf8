/* Every model in models/ and every .ir file under tests/: builds, verifies, and prints as
 * text that parses back to the same text; the command line on the MLP. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    cr_assert(strstr(ir, "= relu %3                      ; models/mlp.c:18\n"), "no source line on the hidden layer:\n%s", ir);
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
