/* Simplify: golden text-IR files, one per rule family, and every model's train step.
 *
 * A golden case is tests/data/passes/simplify/NAME.ir (the input) and NAME.expected.ir (the
 * canonical print after the pass). The pass's result must verify, print as expected byte
 * for byte, be a fixed point of the pass, have no more nodes, and compute the same outputs
 * as the input graph in the interpreter, at batch 1 and 7, in f64 and in f32 mode: bit for
 * bit, except where the case says why not. Sources are bound by name, since ids differ. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "interp.h"
#include "ir.h"
#include "load.h"
#include "passes.h"

#define DATA AG_SOURCE_DIR "/tests/data/passes/simplify/"

/* ---- comparing two graphs in the interpreter ---- */

/* For h, the tensors bound to g's sources of the same kind and name. */
static const ir_tensor **bind_by_name(const ir_graph *g, ir_tensor *const *bg, const ir_graph *h)
{
    const ir_tensor **b = calloc((size_t)(h->n ? h->n : 1), sizeof *b);
    cr_assert_not_null(b);
    for (int32_t i = 0; i < h->n; i++) {
        const ir_node *n = &h->node[i];
        if (n->op != IR_input && n->op != IR_param)
            continue;
        int32_t j = ir_find_source(g, n->op, n->attr.name);
        cr_assert_geq(j, 0, "%s %s is not in the input graph", ir_ops[n->op].name, n->attr.name);
        b[i] = bg[j];
    }
    return b;
}

static bool same_element(const ir_tensor *a, const ir_tensor *b, int64_t i)
{
    size_t esz = ir_dtype_size(a->dtype);
    double x = ir_tensor_get(a, i), y = ir_tensor_get(b, i);
    return memcmp((const char *)a->data + i * (int64_t)esz, (const char *)b->data + i * (int64_t)esz, esz) == 0 ||
           (isnan(x) && isnan(y));
}

/* ||a - b|| / ||a|| (2-norms), or / max(||a||, 1) with at_least_1; 0 where they agree exactly,
 * infinite where a non-finite element differs. */
static double rel_error(const ir_tensor *a, const ir_tensor *b, bool at_least_1)
{
    double d = 0, s = 0;
    for (int64_t i = 0, n = ir_tensor_numel(a); i < n; i++) {
        double x = ir_tensor_get(a, i), y = ir_tensor_get(b, i);
        if (same_element(a, b, i))
            ; /* equal, infinities and NaNs included */
        else if (!isfinite(x) || !isfinite(y))
            return INFINITY;
        else
            d += (x - y) * (x - y);
        s += isfinite(x) ? x * x : 0;
    }
    double norm = at_least_1 ? fmax(sqrt(s), 1) : sqrt(s);
    return d == 0 ? 0 : norm == 0 ? INFINITY : sqrt(d) / norm;
}

typedef struct cmp {
    int64_t batch;
    bool f64;
    double tol; /* 0: bit for bit (NaN equal to NaN) */
    bool abs;   /* the error is ||a - b|| / max(||a||, 1), not / ||a|| */
} cmp;

/* Runs g and h on the same random sources and compares every output. */
static void compare(const ir_graph *g, const ir_graph *h, cmp c, const char *what)
{
    ir_tensor **bg = fe_bind_random(g, c.batch, 1234, c.f64);
    cr_assert_not_null(bg);
    const ir_tensor **bh = bind_by_name(g, bg, h);
    ir_run run = {.f64 = c.f64, .batch = c.batch, .seed = 99, .step = 3, .training = true};
    ir_tensor *og = calloc((size_t)g->nout + 1, sizeof *og), *oh = calloc((size_t)h->nout + 1, sizeof *oh);
    char err[512];
    cr_assert(ir_interp(g, &run, (const ir_tensor *const *)bg, og, err, sizeof err), "%s: input: %s", what, err);
    cr_assert(ir_interp(h, &run, bh, oh, err, sizeof err), "%s: simplified: %s", what, err);
    cr_assert_eq(g->nout, h->nout, "%s: outputs differ in number", what);
    const char *mode = c.f64 ? "f64" : "f32";
    for (int k = 0; k < g->nout; k++) {
        cr_assert_str_eq(g->out[k].name, h->out[k].name, "%s: output %d renamed", what, k);
        const ir_tensor *a = &og[k], *b = &oh[k];
        cr_assert(a->dtype == b->dtype && ir_shape_eq(&a->shape, &b->shape), "%s: output %s changed type", what,
                  g->out[k].name);
        if (c.tol == 0) {
            for (int64_t i = 0, n = ir_tensor_numel(a); i < n; i++)
                cr_assert(same_element(a, b, i), "%s (%s, batch %lld): output %s[%lld]: %.17g became %.17g", what, mode,
                          (long long)c.batch, g->out[k].name, (long long)i, ir_tensor_get(a, i), ir_tensor_get(b, i));
            continue;
        }
        double e = rel_error(a, b, c.abs);
        cr_assert_leq(e, c.tol, "%s (%s, batch %lld): output %s: relative error %g > %g", what, mode,
                      (long long)c.batch, g->out[k].name, e, c.tol);
    }
    for (int k = 0; k < g->nout; k++)
        ir_tensor_free(&og[k]);
    for (int k = 0; k < h->nout; k++)
        ir_tensor_free(&oh[k]);
    free(og);
    free(oh);
    free(bh);
    fe_bind_free(g, bg);
}

/* ---- golden files ---- */

static ir_graph *parse_file(const char *path)
{
    size_t len;
    char *text = fe_read_file(path, &len);
    cr_assert_not_null(text, "cannot read %s", path);
    char err[512];
    ir_graph *g = ir_parse(text, len, path, err, sizeof err);
    free(text);
    cr_assert_not_null(g, "%s", err);
    cr_assert(ir_verify(g, err, sizeof err), "%s: %s", path, err);
    return g;
}

static ir_graph *simplify(const ir_graph *g, const char *what)
{
    char err[512];
    ir_graph *h = pass_simplify(g, err, sizeof err);
    cr_assert_not_null(h, "%s: %s", what, err);
    cr_assert(ir_verify(h, err, sizeof err), "%s: the result does not verify: %s", what, err);
    cr_assert_leq(h->n, g->n, "%s: %d nodes became %d", what, g->n, h->n);
    cr_assert_eq(h->next_site, g->next_site, "%s: next_site changed", what);
    return h;
}

/* tol_f64, tol_f32: 0 for bit for bit */
static void golden(const char *name, double tol_f64, double tol_f32)
{
    char in[512], want[512];
    snprintf(in, sizeof in, DATA "%s.ir", name);
    snprintf(want, sizeof want, DATA "%s.expected.ir", name);
    ir_graph *g = parse_file(in);
    ir_graph *h = simplify(g, in);
    char *got = ir_print_str(h);
    size_t len;
    char *text = fe_read_file(want, &len);
    cr_assert_not_null(text, "cannot read %s", want);
    char *expected = calloc(len + 1, 1); /* the file, NUL-terminated */
    cr_assert_not_null(expected);
    memcpy(expected, text, len);
    free(text);
    cr_assert_str_eq(got, expected, "%s: simplified, it prints\n%s\nnot as %s:\n%s", in, got, want, expected);

    ir_graph *again = simplify(h, in);
    char *twice = ir_print_str(again);
    cr_assert_str_eq(twice, got, "%s: simplifying again changes it:\n%s", in, twice);

    for (int f64 = 0; f64 < 2; f64++)
        for (int64_t batch = 1; batch <= 7; batch += 6) {
            double tol = f64 ? tol_f64 : tol_f32;
            compare(g, h, (cmp){batch, f64, tol, tol != 0}, in);
        }
    free(got);
    free(twice);
    free(expected);
    ir_graph_free(again);
    ir_graph_free(h);
    ir_graph_free(g);
}

/* Scalar constants fold as the interpreter computes: floats exactly where the values are
 * exact, inf, -inf and NaN as they come; integers saturate; compares give bool. */
Test(simplify, fold) { golden("fold", 0, 0); }

/* f32 results round to float at every step, as compiled code does (1/3, e, 2^24 + 1), so
 * f32 mode agrees bit for bit; f64 mode computed them unrounded in the input graph. */
Test(simplify, fold_rounds_to_f32) { golden("fold_rounding", 1e-7, 0); }

/* x*1, 1*x, x/1; x+0, 0+x, x-0 for i32 and their exact IEEE forms for f32; neg(neg(x)) for
 * f32 only; a splat of 1 counts. Kept: x*0, x-x, f32 x+0.0 and x-(-0.0), i32 neg(neg(x)), and
 * wherever broadcasting grows the result. */
Test(simplify, arithmetic_identities) { golden("arith", 0, 0); }

/* cast to its own dtype; reshape, broadcast_to, transpose that change nothing; chains of
 * reshapes, of transposes (composed), of broadcasts and of unit-padding reshapes; the
 * rewritten node keeps the location of the node it replaces. */
Test(simplify, cast_and_layout) { golden("layout", 0, 0); }

/* where(c, x, x) and a constant condition; kept where broadcasting grows the result. */
Test(simplify, where) { golden("where", 0, 0); }

/* log(softmax(x)) -> log_softmax(x), with the log's location; the rewrite then merges with
 * an existing log_softmax. Not bit for bit: log_softmax is the better-conditioned form. */
Test(simplify, log_softmax) { golden("log_softmax", 1e-12, 1e-6); }

/* Nodes that become identical once their operands are rewritten merge. */
Test(simplify, cse) { golden("cse", 0, 0); }

/* Nodes no output reads go, a dead dropout among them; unread inputs and params, the
 * locations, the declarations and next_site stay. */
Test(simplify, dce) { golden("dce", 0, 0); }

/* NaN folds too (its sign is the host's, so it is not in a golden file). */
Test(simplify, fold_nan)
{
    const char *text = "graph @nan {\n  %x: f32[N] = input\n  %0: f32[] = div 0.0, 0.0\n"
                       "  %1: f32[N] = add %x, %0\n  return a: %0, b: %1\n}\n";
    char err[512];
    ir_graph *g = ir_parse(text, strlen(text), "nan.ir", err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    ir_graph *h = simplify(g, "nan.ir");
    const ir_node *a = &h->node[h->out[0].id];
    cr_assert(a->op == IR_const && a->dtype == AG_F32 && isnan(a->attr.value), "0/0 does not fold to NaN");
    cr_assert_eq(h->n, 3, "x, the NaN and the add: %d nodes", h->n);
    for (int f64 = 0; f64 < 2; f64++)
        compare(g, h, (cmp){7, f64, 0, false}, "nan.ir");
    ir_graph_free(h);
    ir_graph_free(g);
}

Test(simplify, rejects_a_broken_graph)
{
    ir_graph *g = ir_graph_new("broken");
    ir_node x = ir_node_make(IR_input, 0, NULL);
    x.dtype = AG_F32;
    x.attr.name = "x";
    int32_t a = ir_intern(g, &x);
    ir_node m = ir_node_make(IR_exp, 1, &a);
    m.dtype = AG_I32; /* exp gives f32 */
    ir_add_output(g, "y", ir_intern(g, &m));
    char err[512] = "";
    cr_assert_null(pass_simplify(g, err, sizeof err));
    cr_assert(strncmp(err, "simplify: verify: node %1 (exp)", 31) == 0, "message: %s", err);
    ir_graph_free(g);
}

/* ---- every model's train step ---- */

static void model_step(const char *path, const char *setting)
{
    const char *settings[] = {setting, NULL};
    ir_graph *m = fe_load(path, getenv("AOTGRAD_INCLUDE"), setting ? settings : NULL);
    cr_assert_not_null(m, "%s does not build", path);
    char err[512], what[1200];
    snprintf(what, sizeof what, "%s%s%s", path, setting ? " --set " : "", setting ? setting : "");
    ir_graph *g = pass_train_step(m, err, sizeof err);
    cr_assert_not_null(g, "%s: %s", what, err);
    ir_graph *h = simplify(g, what);
    cr_log_info("simplify: %s: train step %d nodes -> %d", what, g->n, h->n);
    /* N stays symbolic through simplify: 64 checks what 256 did (LeNet's variants at 256 in
     * the f64 interpreter were most of the suite's time) */
    int64_t batches[] = {1, 7, 64};
    for (int b = 0; b < 3; b++)
        compare(g, h, (cmp){batches[b], true, 1e-10, false}, what);

    /* and every other choice of each option the model declares (--set act=tanh) */
    for (int i = 0; !setting && m->train && i < m->train->noptions; i++) {
        const ir_option *o = &m->train->options[i];
        for (const char *c = o->choices, *e; *c; c = *e ? e + 1 : e) {
            e = strchr(c, '|');
            e = e ? e : c + strlen(c);
            char set[256];
            snprintf(set, sizeof set, "%s=%.*s", o->name, (int)(e - c), c);
            if (strcmp(set + strlen(o->name) + 1, o->value) != 0)
                model_step(path, set);
        }
    }
    ir_graph_free(h);
    ir_graph_free(g);
    ir_graph_free(m);
}

Test(simplify, every_model_train_step)
{
    DIR *d = opendir(AG_SOURCE_DIR "/models");
    cr_assert_not_null(d);
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 3 || strcmp(e->d_name + n - 2, ".c") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, AG_SOURCE_DIR "/models/%s", e->d_name);
        model_step(path, NULL);
        count++;
    }
    closedir(d);
    cr_assert_geq(count, 4, "only %d models found", count);
}
