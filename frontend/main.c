/* The aotgrad command line. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aotgrad_runtime.h"
#include "diag.h"
#include "alloc.h"
#include "fail.h"
#include "bind.h"
#include "bug.h"
#include "build.h"
#include "interp.h"
#include "ir.h"
#include "load.h"
#include "passes.h"
#include "run.h"
#include "pool.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *usage;
} command;

static const command commands[];

/* ---- option parsing shared by the subcommands ---- */

static const char *prog_cmd = "aotgrad";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "aotgrad %s: ", prog_cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'aotgrad %s --help'.\n", prog_cmd);
    return 2;
}

/* "unknown WHAT 'word'", the likeliest of cands where word looks like a typo of it, and
 * where to see them all (hint, or "") */
static int unknown(const char *what, const char *word, const char *const *cands, int n, const char *hint)
{
    const char *near = rt_closest(word, cands, n);
    char msg[700];
    snprintf(msg, sizeof msg, "unknown %s '%.200s'%s%.200s%s%s", what, word, near ? "; did you mean '" : "",
             near ? near : "", near ? "'?" : "", hint);
    return usage_error("%s", msg);
}

/* An option the current command does not take: the nearest of those its usage lists. */
static int unknown_option(const char *a)
{
    const char *cands[64];
    char words[64][40];
    int n = 0;
    for (const command *c = commands; c->name; c++) {
        if (strcmp(c->name, prog_cmd) != 0)
            continue;
        for (const char *p = strstr(c->usage, "--"); p && n < 64; p = strstr(p + 2, "--")) {
            size_t k = 2;
            while (p[k] == '-' || (p[k] >= 'a' && p[k] <= 'z') || (p[k] >= '0' && p[k] <= '9'))
                k++;
            if (k > 2 && k < sizeof words[0]) {
                snprintf(words[n], sizeof words[n], "%.*s", (int)k, p);
                cands[n] = words[n];
                n++;
            }
        }
    }
    return unknown("option", a, cands, n, "");
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

/* What the model commands share: the model's path and its --set options. */
typedef struct model_arg {
    const char *path;
    const char *settings[64]; /* NULL-ended */
    int nset;
} model_arg;

/* Takes argv[*i] if it is the model's path, --set NAME=VALUE or --model-timeout SECONDS: 1
 * if taken, 0 if it is not one of these, 2 (the exit status) after printing a usage error. */
static int take_model_arg(model_arg *m, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strcmp(a, "--model-timeout") == 0) {
        char *end;
        double s = *i + 1 < argc ? strtod(argv[*i + 1], &end) : 0;
        if (*i + 1 == argc || end == argv[*i + 1] || *end || !(s > 0 && s <= 1e6))
            return usage_error("--model-timeout takes seconds, more than 0 and at most 1000000, not '%s'",
                               *i + 1 < argc ? argv[*i + 1] : "");
        fe_set_model_timeout(s);
        ++*i;
        return 1;
    }
    if (strcmp(a, "--set") == 0) {
        if (*i + 1 == argc || !strchr(argv[*i + 1], '=') || m->nset == 63)
            return usage_error("--set takes NAME=VALUE, not '%s'", *i + 1 < argc ? argv[*i + 1] : "");
        m->settings[m->nset++] = argv[++*i];
        m->settings[m->nset] = NULL;
        return 1;
    }
    if (a[0] == '-')
        return 0;
    if (m->path)
        return usage_error("one model at a time; extra argument '%s'", a);
    m->path = a;
    return 1;
}

static int print_help(const char *name)
{
    for (const command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0) {
            printf("%s", c->usage);
            return 0;
        }
    return 2;
}

/* ---- aotgrad ir ---- */

typedef struct dump_opts {
    bool all, dot;
} dump_opts;

static void print_graph(const ir_graph *g, bool dot)
{
    if (dot)
        ir_print_dot(stdout, g);
    else
        ir_print(stdout, g);
}

static void dump_stage(void *ctx, const char *pass, const ir_graph *g)
{
    const dump_opts *d = ctx;
    if (!d->all)
        return;
    printf("%s ---- after %s ----\n", d->dot ? "//" : ";", pass);
    print_graph(g, d->dot);
    printf("\n");
}

static int cmd_ir(int argc, char **argv)
{
    const char *after = NULL;
    bool train = false, eval = false, memory = false;
    int64_t at_batch = 0; /* --memory --batch N */
    dump_opts d = {false, false};
    model_arg m = {0};
    for (int i = 1; i < argc; i++) {
        int taken = take_model_arg(&m, argc, argv, &i);
        if (taken == 2)
            return 2;
        if (taken)
            continue;
        if (strcmp(argv[i], "--train") == 0)
            train = true;
        else if (strcmp(argv[i], "--eval") == 0)
            eval = true;
        else if (strcmp(argv[i], "--dot") == 0)
            d.dot = true;
        else if (strcmp(argv[i], "--memory") == 0)
            memory = true;
        else if (strcmp(argv[i], "--batch") == 0) {
            if (i + 1 == argc || !parse_i64(argv[i + 1], 1, (int64_t)1 << 24, &at_batch))
                return usage_error("--batch takes a count from 1 to 16777216, not '%s'",
                                   i + 1 == argc ? "" : argv[i + 1]);
            i++;
        } else if (strcmp(argv[i], "--after") == 0) {
            if (i + 1 == argc)
                return usage_error("%s", "--after takes a pass name or all (see aotgrad passes)");
            after = argv[++i];
            if (strcmp(after, "all") != 0 && !pass_find(after)) {
                const char *names[16] = {"all"};
                int n = 1;
                for (const pass_info *p = pass_list; p->name && n < 16; p++)
                    names[n++] = p->name;
                return unknown("pass", after, names, n, " (aotgrad passes lists them)");
            }
        } else
            return unknown_option(argv[i]);
    }
    const char *path = m.path;
    if (!path)
        return usage_error("%s", "which model? aotgrad ir MODEL.c|FILE.ir");
    if (train && eval)
        return usage_error("%s", "--train or --eval, not both");
    if (memory && (train || eval || d.dot || after))
        return usage_error("%s", "--memory reports both pipelines' plans as text; it takes no --train, --eval, "
                                 "--after or --dot (aotgrad ir --after plan_memory shows a plan's graph)");
    if (at_batch && !memory)
        return usage_error("%s", "--batch N goes with --memory (the plan's figures at N)");
    const pass_info *stop = after ? pass_find(after) : NULL;
    if (stop && stop->which == PASS_TRAIN && eval)
        return usage_error("pass %s runs only in the train step's pipeline (drop --eval)", after);
    ir_graph *g = fe_load(path, NULL, m.settings);
    if (!g)
        return 1;
    char err[4096];
    int rc = 0;
    if (!ir_trains(g)) { /* a forward computation: its pipeline is the eval one */
        if (train || (stop && stop->which == PASS_TRAIN)) {
            snprintf(err, sizeof err, "%s declares no training (ag_minimize), so it has no train step%s%s%s", g->name,
                     train ? "" : " (pass ", train ? "" : after, train ? "" : " runs only there)");
            fe_report(path, err);
            ir_graph_free(g);
            return 1;
        }
        eval = eval || after;
    } else if (stop && stop->which == PASS_EVAL && !eval) {
        ir_graph_free(g);
        return usage_error("pass %s runs only in the eval graph's pipeline (add --eval)", after);
    }
    if (memory) {
        if (!pass_memory_report(g, at_batch, stdout, err, sizeof err)) {
            fe_report(path, err);
            rc = 1;
        }
    } else if (!train && !eval && !after) {
        print_graph(g, d.dot);
    } else {
        d.all = after && strcmp(after, "all") == 0;
        const char *upto = d.all ? NULL : after;
        ir_graph *out = pass_run(g, !eval, upto, dump_stage, &d, err, sizeof err);
        if (!out) {
            fe_report(path, err);
            rc = 1;
        } else if (!d.all)
            print_graph(out, d.dot);
        ir_graph_free(out);
    }
    ir_graph_free(g);
    return rc;
}

/* ---- aotgrad passes ---- */

static int cmd_passes(int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return usage_error("%s", "takes no arguments");
    for (const pass_info *p = pass_list; p->name; p++)
        printf("%-16s %-6s %s\n", p->name,
               p->which == PASS_TRAIN  ? "train"
               : p->which == PASS_EVAL ? "eval"
                                       : "both",
               p->doc);
    return 0;
}

/* ---- aotgrad check ---- */

static int cmd_check(int argc, char **argv)
{
    const char *path = NULL;
    bool print = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--print") == 0)
            print = true;
        else if (argv[i][0] == '-')
            return unknown_option(argv[i]);
        else if (path)
            return usage_error("one file at a time; extra argument '%s'", argv[i]);
        else
            path = argv[i];
    }
    if (!path)
        return usage_error("%s", "which file? aotgrad check FILE.ir");
    size_t len;
    char *text = fe_read_file(path, &len);
    if (!text) {
        fprintf(stderr, "%s: error: cannot read: %s\n", path, strerror(errno));
        return 1;
    }
    char err[512];
    ir_graph *g = ir_parse(text, len, path, err, sizeof err);
    free(text);
    if (!g) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (!ir_verify(g, err, sizeof err)) {
        fe_report(path, err);
        ir_graph_free(g);
        return 1;
    }
    if (print)
        ir_print(stdout, g);
    ir_graph_free(g);
    return 0;
}

/* ---- aotgrad forward ---- */

/* A batch from the command line is checked as a declared one is: every value of the graph
 * fits at it, and all of them together; else the message at the value's line. */
static bool batch_fits(const char *path, const ir_graph *g, int64_t batch)
{
    int32_t bad;
    char msg[512];
    if (ir_check_sizes(g, batch, &bad, msg, sizeof msg))
        return true;
    const ag_loc *at = &g->node[bad].loc;
    if (at->file && at->line > 0)
        fprintf(stderr, "%s:%d: error: --batch %" PRId64 ": %s\n", at->file, at->line, batch, msg);
    else
        fprintf(stderr, "%s: error: --batch %" PRId64 ": %s\n", path, batch, msg);
    return false;
}

static void print_values(const ir_output *o, const ir_tensor *t)
{
    char type[96];
    int64_t count = ir_numel(&t->shape, 1);
    /* the type computed: f64 under --f64 (an f32 value of the graph held in double) */
    printf("%-10s %-18s [", o->name, ir_type_str(t->dtype, &t->shape, type, sizeof type));
    int64_t shown = count < 8 ? count : 8;
    for (int64_t i = 0; i < shown; i++) {
        double v = ir_tensor_get(t, i);
        if (ir_is_float(t->dtype))
            printf(t->dtype == AG_F64 ? "%s%.10g" : "%s%.6g", i ? ", " : "", v);
        else
            printf("%s%.0f", i ? ", " : "", v);
    }
    printf("%s]", count > shown ? ", ..." : "");
    if (count > shown)
        printf("  (first %" PRId64 " of %" PRId64 ")", shown, count);
    printf("\n");
}

static int cmd_forward(int argc, char **argv)
{
    model_arg m = {0};
    int64_t batch = 4, seed = 1;
    bool f64 = false, training = false;
    for (int i = 1; i < argc; i++) {
        int taken = take_model_arg(&m, argc, argv, &i);
        if (taken == 2)
            return 2;
        if (taken)
            continue;
        const char *a = argv[i];
        if (strcmp(a, "--batch") == 0 || strcmp(a, "--seed") == 0) {
            if (i + 1 == argc)
                return usage_error("%s needs a value", a);
            bool is_batch = a[2] == 'b';
            if (!parse_i64(argv[++i], is_batch ? 1 : 0, is_batch ? (int64_t)1 << 24 : UINT32_MAX,
                           is_batch ? &batch : &seed))
                return usage_error(is_batch ? "--batch takes a count from 1 to 16777216, not '%s'"
                                            : "--seed takes a number from 0 to 4294967295, not '%s'",
                                   argv[i]);
        } else if (strcmp(a, "--f64") == 0)
            f64 = true;
        else if (strcmp(a, "--train") == 0)
            training = true;
        else
            return unknown_option(a);
    }
    const char *path = m.path;
    if (!path)
        return usage_error("%s", "which model? aotgrad forward MODEL.c|FILE.ir");
    ir_graph *g = fe_load(path, NULL, m.settings);
    if (!g)
        return 1;
    if (!batch_fits(path, g, batch)) {
        ir_graph_free(g);
        return 1;
    }
    ir_tensor **bound = fe_bind_random(g, batch, (uint32_t)seed, f64);
    ir_tensor *outs = ir_xcalloc((size_t)g->nout, sizeof *outs);
    ir_run run = {.f64 = f64, .batch = batch, .seed = (uint32_t)seed, .step = 0, .training = training};
    char err[512];
    int rc = 0;
    if (!bound || !ir_interp(g, &run, (const ir_tensor *const *)bound, outs, err, sizeof err)) {
        fe_report(path, bound ? err : "out of memory for the inputs and parameters at this batch");
        rc = 1;
    } else {
        printf("%s: forward through the interpreter (%s), batch %" PRId64 ", seed %" PRId64 "%s\n", g->name,
               f64 ? "f64" : "f32", batch, seed, training ? ", dropout on" : "");
        for (int k = 0; k < g->nout; k++) {
            print_values(&g->out[k], &outs[k]);
            ir_tensor_free(&outs[k]);
        }
    }
    free(outs);
    fe_bind_free(g, bound);
    ir_graph_free(g);
    return rc;
}

/* ---- aotgrad run ---- */

static bool parse_real(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 1e30)
        return false;
    *out = v;
    return true;
}

static int cmd_run(int argc, char **argv)
{
    model_arg m = {0};
    fe_run_opts o = {.lr = -1, .wd = -1, .seed = 1};
    for (int i = 1; i < argc; i++) {
        int taken = take_model_arg(&m, argc, argv, &i);
        if (taken == 2)
            return 2;
        if (taken)
            continue;
        const char *a = argv[i];
        static const char *const valued[] = {"--epochs", "--batch",   "--seed", "--lr",      "--wd",          "--data",
                                             "--save",   "--metrics", "--plot", "--threads", "--label-column"};
        bool known = false;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; k++)
            known |= strcmp(a, valued[k]) == 0;
        if (!known)
            return unknown_option(a);
        if (i + 1 == argc)
            return usage_error("%s needs a value", a);
        int64_t v;
        char msg[96];
        if (strcmp(a, "--epochs") == 0 || strcmp(a, "--batch") == 0) {
            snprintf(msg, sizeof msg, "%s takes a count from 1 to 2^30, not '%%s'", a);
            if (!parse_i64(argv[++i], 1, IR_MAX_COUNT, &v))
                return usage_error(msg, argv[i]);
            *(a[2] == 'e' ? &o.epochs : &o.batch) = v;
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_i64(argv[++i], 0, UINT32_MAX, &v))
                return usage_error("--seed takes a number from 0 to 4294967295, not '%s'", argv[i]);
            o.seed = (uint32_t)v;
        } else if (strcmp(a, "--lr") == 0 || strcmp(a, "--wd") == 0) {
            snprintf(msg, sizeof msg, "%s takes a number >= 0, not '%%s'", a);
            if (!parse_real(argv[++i], a[2] == 'l' ? &o.lr : &o.wd))
                return usage_error(msg, argv[i]);
        } else if (strcmp(a, "--threads") == 0) {
            if (!parse_i64(argv[++i], 1, 1024, &v))
                return usage_error("--threads takes a count from 1 to 1024, not '%s'", argv[i]);
            o.threads = (int)v;
        } else if (strcmp(a, "--data") == 0)
            o.data = argv[++i];
        else if (strcmp(a, "--metrics") == 0)
            o.metrics = argv[++i];
        else if (strcmp(a, "--label-column") == 0)
            o.label = argv[++i];
        else if (strcmp(a, "--plot") == 0)
            o.plot = argv[++i];
        else
            o.save = argv[++i];
    }
    if (!m.path)
        return usage_error("%s", "which model? aotgrad run MODEL.c|FILE.ir");
    ir_graph *g = fe_load(m.path, NULL, m.settings);
    if (!g)
        return 1;
    if (o.batch && !batch_fits(m.path, g, o.batch)) {
        ir_graph_free(g);
        return 1;
    }
    o.where = m.path;
    int rc = fe_run(g, &o);
    ir_graph_free(g);
    return rc;
}

/* ---- aotgrad build ---- */

static bool parse_emit(const char *list, unsigned *emit)
{
    static const struct {
        const char *name;
        unsigned flag;
    } kinds[] = {{"obj", FE_EMIT_OBJ}, {"h", FE_EMIT_H},     {"ll", FE_EMIT_LL}, {"s", FE_EMIT_S},
                 {"ir", FE_EMIT_IR},   {"exe", FE_EMIT_EXE}, {"cu", FE_EMIT_CU}, {"ptx", FE_EMIT_PTX}};
    *emit = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        size_t k = 0;
        while (k < sizeof kinds / sizeof *kinds && !(strlen(kinds[k].name) == n && !strncmp(kinds[k].name, p, n)))
            k++;
        if (k == sizeof kinds / sizeof *kinds)
            return false;
        *emit |= kinds[k].flag;
        p += n + (p[n] == ',');
    }
    return *emit != 0;
}

static int cmd_build(int argc, char **argv)
{
    model_arg m = {0};
    fe_build_opts o = {.emit = FE_EMIT_EXE, .settings = m.settings};
    for (int i = 1; i < argc; i++) {
        int taken = take_model_arg(&m, argc, argv, &i);
        if (taken == 2)
            return 2;
        if (taken)
            continue;
        const char *a = argv[i];
        if (strcmp(a, "--time") == 0)
            o.time = true;
        else if ((strcmp(a, "-o") == 0 || strcmp(a, "--emit") == 0 || strcmp(a, "--cuda-arch") == 0 ||
                  strcmp(a, "--target") == 0 || strcmp(a, "--dump-dir") == 0) &&
                 i + 1 == argc)
            return usage_error("%s needs a value", a);
        else if (strcmp(a, "-o") == 0)
            o.out = argv[++i];
        else if (strcmp(a, "--dump-dir") == 0)
            o.dump_dir = argv[++i];
        else if (strcmp(a, "--cuda-arch") == 0)
            o.cuda_arch = argv[++i];
        else if (strcmp(a, "--batch") == 0) {
            if (i + 1 == argc || !parse_i64(argv[i + 1], 1, (int64_t)1 << 24, &o.batch))
                return usage_error("--batch takes a count from 1 to 16777216, not '%s'",
                                   i + 1 == argc ? "" : argv[i + 1]);
            i++;
        } else if (strcmp(a, "--target") == 0) {
            const char *t = argv[++i];
            if (strcmp(t, "cpu") == 0)
                o.cuda = false;
            else if (strcmp(t, "cpu,cuda") == 0 || strcmp(t, "cuda,cpu") == 0)
                o.cuda = true;
            else
                return usage_error("--target takes cpu or cpu,cuda, not '%s'", t);
        } else if (strcmp(a, "--emit") == 0) {
            if (!parse_emit(argv[++i], &o.emit))
                return usage_error("--emit takes a list of exe, obj, h, ll, s, ir, cu, ptx, not '%s'", argv[i]);
        } else
            return unknown_option(a);
    }
    /* --emit adds files beside the binary; asking for the object or the header (a C caller's
     * own program links them) leaves the binary out unless exe is named too */
    if (!(o.emit & (FE_EMIT_OBJ | FE_EMIT_H)))
        o.emit |= FE_EMIT_EXE;
    if (!m.path)
        return usage_error("%s", "which model? aotgrad build MODEL.c|FILE.ir -o OUT");
    if (!o.out)
        return usage_error("%s", "where to? -o OUT (the binary OUT, or OUT.o, OUT.h, ... with --emit)");
    return fe_build(m.path, &o);
}

/* ---- aotgrad ops ---- */

static int cmd_ops(int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return usage_error("%s", "takes no arguments");
    static const char *const kinds[] = {[IR_K_SOURCE] = "source", [IR_K_ELEMENTWISE] = "elementwise",
                                        [IR_K_REDUCE] = "reduce", [IR_K_SCAN] = "scan",
                                        [IR_K_MATMUL] = "matmul", [IR_K_LAYOUT] = "layout",
                                        [IR_K_ROW] = "row",       [IR_K_INDEX] = "index",
                                        [IR_K_RANDOM] = "random", [IR_K_FUSED] = "fused"};
    int width = 0;
    for (int i = 0; i < IR_OP_COUNT; i++)
        width = strlen(ir_ops[i].name) > (size_t)width ? (int)strlen(ir_ops[i].name) : width;
    for (int i = 0; i < IR_OP_COUNT; i++) {
        char arity[16];
        unsigned k = ir_ops[i].kind;
        snprintf(arity, sizeof arity, ir_ops[i].arity < 0 ? "1+" : "%d", ir_ops[i].arity);
        printf("%-*s %-12s %-3s %s\n", width, ir_ops[i].name,
               k < sizeof kinds / sizeof *kinds && kinds[k] ? kinds[k] : "?", arity, ir_ops[i].doc);
    }
    return 0;
}

/* ---- the table of commands ---- */

static const command commands[] = {
    {"ir", cmd_ir, "print a model's graph as text IR",
     "usage: aotgrad ir MODEL.c|FILE.ir [--train | --eval] [--after PASS|all] [--dot]\n"
     "                 [--memory [--batch N]] [--set NAME=VALUE]...\n\n"
     "Builds the model (a C file, compiled with cc against aotgrad.h, whose function is named\n"
     "after the file) or reads a text IR file, and prints its graph as text IR on stdout.\n"
     "Errors in the model are reported as FILE:LINE: error: MESSAGE, all of them, and exit 1.\n"
     "Every graph printed parses back (aotgrad check) and runs (aotgrad run).\n\n"
     "  --train           the train step after the whole pipeline (forward, backward, update)\n"
     "  --eval            the eval graph after the whole pipeline (loss, metrics, predictions)\n"
     "  --after PASS      the train step (with --eval, or for a graph without training: the eval\n"
     "                    graph) after PASS; all: after every pass in turn, each under a header\n"
     "                    naming it (aotgrad passes)\n"
     "  --dot             Graphviz DOT instead of text IR: values named as the text names them,\n"
     "                    with their model line; a kernel as one box of its ops and values\n"
     "  --memory          the memory plan of the train step and of inference (inference only\n"
     "                    for a graph without training)\n"
     "  --batch N         with --memory: its figures at batch N (one plan serves every batch)\n"
     "  --set NAME=VALUE  set a model option (ag_option), e.g. --set act=tanh\n"
     "  --model-timeout S  seconds the model's code may take to build the graph (default 60)\n"},
    {"build", cmd_build, "compile a model with the LLVM backend: a standalone binary, or object and header",
     "usage: aotgrad build MODEL.c|FILE.ir -o OUT [--emit LIST] [--target cpu|cpu,cuda] [--cuda-arch A]\n"
     "                    [--batch N] [--dump-dir DIR] [--time] [--set NAME=VALUE]...\n\n"
     "Takes the model (or a dumped .ir of any stage) through the pipeline, lowers its train step\n"
     "and forward pass to loops, sgemm calls and runtime routines, and compiles them with LLVM\n"
     "for this machine's CPU into MODEL_train_step and MODEL_forward entry points. By default\n"
     "OUT is a standalone executable (OUT train|eval|predict|bench, each with --help) that\n"
     "needs only libc, libm, zlib and OpenBLAS at run time; it is linked with cc. A graph\n"
     "without training (no ag_minimize) compiles to MODEL_forward alone; its binary has\n"
     "predict and bench (OUT --help).\n\n"
     "  -o OUT        the output: the binary, or the path without extension for --emit's files\n"
     "  --emit LIST   comma-separated, of: exe (OUT), obj (OUT.o), h (OUT.h, for a C caller:\n"
     "                sizes, parameter layout, entry points), ll (LLVM IR), s (assembly), ir (the\n"
     "                final text IR), cu (CUDA C of both entry points), ptx (that source compiled\n"
     "                by NVRTC for --cuda-arch). The binary OUT is built too unless the list has\n"
     "                obj or h without exe\n"
     "  --target T    cpu (the default), or cpu,cuda: the binary also carries the CUDA kernels\n"
     "                (cubin for --cuda-arch and PTX for newer GPUs, compiled by NVRTC) and runs\n"
     "                on a GPU with --device cuda\n"
     "  --cuda-arch A the GPU architecture for ptx and --target cuda, e.g. sm_90 (the default)\n"
     "  --batch N     the batch the memory plan is laid out for and the code tuned for; it\n"
     "                runs at any batch (default: the model's declared batch; 1 for a graph\n"
     "                without training, whose binary then predicts N samples a call)\n"
     "  --dump-dir DIR  every stage as a file of its own in DIR, listed in order in DIR/index.txt:\n"
     "                the graph after each pass of both pipelines (.ir, which parses back, and\n"
     "                .dot), the memory plan, the kernel IR, the LLVM IR before and after\n"
     "                optimization, the assembly, the CUDA C and its PTX\n"
     "  --time        print where the build's time went\n"
     "  --set NAME=VALUE  a model option\n"
     "  --model-timeout S  seconds the model's code may take to build the graph (default 60)\n"},
    {"passes", cmd_passes, "list the passes of the pipeline, in order",
     "usage: aotgrad passes\n\n"
     "Lists the pipeline's passes in the order they run, and which pipeline runs each: the\n"
     "train step's (train), the eval graph's (eval), or both. Each name works with\n"
     "aotgrad ir --after.\n"},
    {"forward", cmd_forward, "run a model's graph through the reference interpreter",
     "usage: aotgrad forward MODEL.c|FILE.ir [--batch N] [--seed S] [--f64] [--train]\n"
     "                      [--set NAME=VALUE]...\n\n"
     "Runs the graph through the reference interpreter on seeded random inputs (f32: N(0,1);\n"
     "u8: 0..255; i32: 0..classes-1 where the input feeds one_hot, else 0..9) and parameters\n"
     "from their initializers, and prints each output's type and first values.\n\n"
     "  --batch N   the value of the batch dim N (default 4)\n"
     "  --seed S    seed of the inputs, the parameters and dropout (default 1)\n"
     "  --f64       compute in double instead of float\n"
     "  --train     dropout active (default: off, as in evaluation)\n"
     "  --set NAME=VALUE  a model option, e.g. --set act=tanh\n"
     "  --model-timeout S  seconds the model's code may take to build the graph (default 60)\n"},
    {"check", cmd_check, "parse and verify a text IR file",
     "usage: aotgrad check FILE.ir [--print]\n\n"
     "Parses and verifies FILE.ir: exit 0 when it is well formed, else the first error as\n"
     "FILE:LINE:COL: error: MESSAGE and exit 1.\n\n"
     "  --print     print the graph in canonical form\n"},
    {"run", cmd_run, "train a model through the reference interpreter",
     "usage: aotgrad run MODEL.c|FILE.ir [--epochs N] [--batch N] [--lr X] [--wd X] [--seed S]\n"
     "                  [--data PATH] [--set NAME=VALUE]... [--save FILE] [--metrics FILE.csv]\n"
     "                  [--plot FILE.svg] [--threads N] [--label-column C]\n\n"
     "Trains the model with the training it declares (ag_minimize) through the reference\n"
     "interpreter, printing one line per epoch (train loss, train accuracy or metric, test\n"
     "accuracy or test loss, seconds), then every parameter of at most 8 elements (beside its\n"
     "true value for synthetic data). A .ir file of any stage trains the same way.\n\n"
     "  --epochs N, --batch N, --lr X, --wd X   override the model's defaults\n"
     "  --seed S          seed of the initial parameters, the shuffles and dropout (default 1)\n"
     "  --data PATH       fashion-mnist, a folder of IDX files, TRAIN.csv[,TEST.csv], or\n"
     "                    \"synthetic-linear w=2,-3.4 b=4.2 train=1000 [test=N] [noise=S]\"\n"
     "  --set NAME=VALUE  a model option, e.g. --set act=tanh\n"
     "  --model-timeout S  seconds the model's code may take to build the graph (default 60)\n"
     "  --save FILE       write the trained parameters as safetensors\n"
     "  --metrics FILE    write the per-epoch figures as CSV, as a binary's train does\n"
     "  --plot FILE       draw loss and accuracies per epoch as an SVG chart\n"
     "  --threads N       OpenBLAS's threads for the interpreter's matmuls (default: its own)\n"
     "  --label-column C  a CSV's label in column C (a number from 1, or a header name) in place\n"
     "                    of the last\n"},
    {"ops", cmd_ops, "list the ops of the IR",
     "usage: aotgrad ops\n\nLists every op of the op table: name, kind, operand count, meaning.\n"},
    {NULL, NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f, "aotgrad: a deep-learning graph compiler\n\nusage: aotgrad COMMAND [ARGS]\n\ncommands:\n");
    for (const command *c = commands; c->name; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\n'aotgrad COMMAND --help' tells more about each; 'aotgrad --version' the version.\n");
    fprintf(f, "Any command takes --color=auto|always|never: the model's errors coloured as GCC colours\n"
               "them (auto, the default: on a terminal, unless NO_COLOR is set).\n\n"
               "environment:\n"
               "  AOTGRAD_INCLUDE      the folder of aotgrad.h (default: include/ beside aotgrad, or\n"
               "                       ../include/aotgrad after cmake --install)\n"
               "  AOTGRAD_RUNTIME_LIB  the runtime library binaries link (default: beside aotgrad)\n"
               "  CC                   the C compiler of model files and binaries (default cc)\n"
               "  AOTGRAD_CC_VERBOSE   set: all of the C compiler's messages, not its first error\n"
               "  AOTGRAD_NVRTC        libnvrtc to load (default: CUDA_HOME, CUDA_PATH, /usr/local/cuda)\n"
               "  AOTGRAD_LIBCUDA      the CUDA driver a binary loads with --device cuda (default\n"
               "                       libcuda.so.1)\n"
               "  AOTGRAD_CUDA_IMAGE   a cubin or PTX a binary loads in place of its own (for testing)\n"
               "  OPENBLAS_CORETYPE    OpenBLAS's kernels (aotgrad and the binaries set it when unset)\n"
               "  TMPDIR               where temporary files go (default /tmp)\n"
               "  NO_COLOR             set: no colour with --color=auto\n");
}

int main(int argc, char **argv)
{
    ag_blas_pick_kernels(argv); /* the interpreter's sgemm: OpenBLAS's best kernels here */
    ir_bug_on_crash();          /* a crash of the compiler is a bug: said so, exit status 70 */
    /* --color=WHEN anywhere, for the diagnostics of any command: taken out of argv */
    fe_diag_color_option("auto");
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--color=", 8) == 0 || strcmp(argv[i], "--color") == 0) {
            const char *when = argv[i][7] == '=' ? argv[i] + 8 : i + 1 < argc ? argv[i + 1] : "";
            if (!fe_diag_color_option(when)) {
                fprintf(stderr, "aotgrad: --color takes auto, always or never, not '%s'\n", when);
                return 2;
            }
            int taken = argv[i][7] == '=' ? 1 : 2;
            for (int k = i; k + taken <= argc; k++)
                argv[k] = argv[k + taken];
            argc -= taken, i--;
        }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        if (argc > 2 && strcmp(argv[1], "help") == 0 && print_help(argv[2]) == 0)
            return 0;
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("aotgrad %s\n", AG_VERSION);
        return 0;
    }
    for (const command *c = commands; c->name; c++)
        if (strcmp(c->name, argv[1]) == 0) {
            prog_cmd = c->name;
            if (wants_help(argc - 1, argv + 1))
                return print_help(c->name);
            return c->run(argc - 1, argv + 1);
        }
    const char *names[32];
    int n = 0;
    for (const command *c = commands; c->name && n < 32; c++)
        names[n++] = c->name;
    const char *near = rt_closest(argv[1], names, n);
    fprintf(stderr, "aotgrad: unknown command '%s'%s%s%s\nTry 'aotgrad --help'.\n", argv[1],
            near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
    return 2;
}
