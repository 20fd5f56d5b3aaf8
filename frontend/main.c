/* The aotgrad command line. */
#include <errno.h>
#include <float.h>
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
#include "options.h"
#include "pool.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *usage;
} command;

static const command commands[];

/* ---- option parsing shared by the subcommands (runtime/options.h: getopt_long) ---- */

static const char *prog_cmd = "aotgrad";

/* every option of every command, by its getopt val */
enum {
    O_COLOR = 256,
    O_SET,
    O_MODEL_TIMEOUT,
    O_TRAIN,
    O_EVAL,
    O_ACCUMULATE,
    O_APPLY,
    O_DOT,
    O_MEMORY,
    O_BATCH,
    O_AFTER,
    O_PRINT,
    O_SEED,
    O_F64,
    O_EPOCHS,
    O_LR,
    O_WD,
    O_DATA,
    O_SAVE,
    O_RESUME,
    O_METRICS,
    O_PLOT,
    O_THREADS,
    O_LABEL,
    O_TIME,
    O_EMIT,
    O_TARGET,
    O_CUDA_ARCH,
    O_DUMP_DIR,
    O_VERSION,
    O_CLIP_NORM,
    O_DISTRIBUTED,
    O_BUCKET_MIB,
    O_SCHEDULE /* .. O_SCHEDULE + 4: RT_SCHEDULE_OPTIONS */
};
/* what every command takes, and what every command that loads a model takes */
#define COMMON_OPTIONS \
    {"help", no_argument, NULL, 'h'}, { "color", required_argument, NULL, O_COLOR }
#define MODEL_OPTIONS \
    {"set", required_argument, NULL, O_SET}, {"model-timeout", required_argument, NULL, O_MODEL_TIMEOUT}, COMMON_OPTIONS

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

/* "unknown WHAT 'word'", the likeliest of cands where word looks like a typo of it, and
 * where to see them all (hint, or "") */
static int unknown(rt_cli *cli, const char *what, const char *word, const char *const *cands, int n, const char *hint)
{
    const char *near = rt_closest(word, cands, n);
    return rt_cli_error(cli, "unknown %s '%.200s'%s%.200s%s%s", what, word, near ? "; did you mean '" : "",
                        near ? near : "", near ? "'?" : "", hint);
}

/* What the model commands share: the model's path and its --set options. */
typedef struct model_arg {
    const char *path;
    const char *settings[64]; /* NULL-ended */
    int nset;
} model_arg;

static int print_help(const char *name);

/* The command's next option, as rt_cli_next, after taking here the options every command
 * takes (--help, --color) and those of the commands that load a model (--set,
 * --model-timeout; m NULL for the others). */
static int next_option(rt_cli *c, model_arg *m)
{
    for (int v;;) {
        switch (v = rt_cli_next(c)) {
        case 'h': c->status = print_help(prog_cmd); return RT_CLI_STOP;
        case O_COLOR:
            if (fe_diag_color_option(c->value))
                continue;
            rt_cli_error(c, "--color takes auto, always or never, not '%s'", c->value);
            return RT_CLI_STOP;
        case O_SET:
            if (!strchr(c->value, '=') || m->nset == 63) {
                rt_cli_error(c, "--set takes NAME=VALUE, not '%s'", c->value);
                return RT_CLI_STOP;
            }
            m->settings[m->nset++] = c->value;
            m->settings[m->nset] = NULL;
            continue;
        case O_MODEL_TIMEOUT: {
            char *end;
            double s = strtod(c->value, &end);
            if (end == c->value || *end || !(s > 0 && s <= 1e6)) {
                rt_cli_error(c, "--model-timeout takes seconds, more than 0 and at most 1000000, not '%s'", c->value);
                return RT_CLI_STOP;
            }
            fe_set_model_timeout(s);
            continue;
        }
        default: return v;
        }
    }
}

/* The one operand of a model command, its model (MODEL.c or FILE.ir): 0 when it is there,
 * else the exit status after saying so; usage is the command's usage line. */
static int model_operand(rt_cli *c, model_arg *m, const char *usage)
{
    if (c->operands == c->argc)
        return rt_cli_error(c, "which model? %s", usage);
    if (c->argc - c->operands > 1)
        return rt_cli_error(c, "one model at a time; extra argument '%s'", c->argv[c->operands + 1]);
    m->path = c->argv[c->operands];
    return 0;
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

/* --distributed mpi|nccl|mpi,nccl (which: the engines into *mpi and *nccl) or --bucket-mib
 * M, for ir and build; false with the message */
static bool distributed_option(rt_cli *cli, bool which, double *bucket_mib, bool *mpi, bool *nccl)
{
    const char *s = cli->value;
    char *end;
    if (which) {
        bool both = strcmp(s, "mpi,nccl") == 0 || strcmp(s, "nccl,mpi") == 0;
        *nccl = both || strcmp(s, "nccl") == 0;
        *mpi = both || strcmp(s, "mpi") == 0;
        if (!*nccl && !*mpi)
            return rt_cli_error(cli, "--distributed takes mpi (the CPU), nccl (GPUs) or mpi,nccl (both), not '%s'", s),
                   false;
        return true;
    }
    *bucket_mib = strtod(s, &end);
    if (end == s || *end || !(*bucket_mib >= 1.0 / 1024 && *bucket_mib <= 1024))
        return rt_cli_error(cli, "--bucket-mib takes a size in MiB from 0.001 to 1024, not '%s'", s), false;
    return true;
}

static int cmd_ir(int argc, char **argv)
{
    static const struct option longs[] = {{"train", no_argument, NULL, O_TRAIN},
                                          {"eval", no_argument, NULL, O_EVAL},
                                          {"accumulate", no_argument, NULL, O_ACCUMULATE},
                                          {"apply", no_argument, NULL, O_APPLY},
                                          {"dot", no_argument, NULL, O_DOT},
                                          {"memory", no_argument, NULL, O_MEMORY},
                                          {"batch", required_argument, NULL, O_BATCH},
                                          {"after", required_argument, NULL, O_AFTER},
                                          {"distributed", required_argument, NULL, O_DISTRIBUTED},
                                          {"bucket-mib", required_argument, NULL, O_BUCKET_MIB},
                                          MODEL_OPTIONS,
                                          {0}};
    const char *after = NULL;
    int64_t bucket_bytes = 0; /* --distributed mpi */
    double bucket_mib = 4;
    int pipeline = -1; /* --train, --eval, --accumulate, --apply: the pass_pipeline asked for */
    bool memory = false;
    int64_t at_batch = 0; /* --memory --batch N */
    dump_opts d = {false, false};
    model_arg m = {0};
    rt_cli cli;
    rt_cli_start(&cli, "aotgrad ir", "h", longs, argc, argv);
    for (int v; (v = next_option(&cli, &m)) != -1;) {
        if (v == RT_CLI_STOP)
            return cli.status;
        if (v == O_TRAIN || v == O_EVAL || v == O_ACCUMULATE || v == O_APPLY) {
            int want = v == O_TRAIN        ? PASS_TRAIN
                       : v == O_EVAL       ? PASS_EVAL
                       : v == O_ACCUMULATE ? PASS_ACCUMULATE
                                           : PASS_APPLY;
            if (pipeline >= 0 && pipeline != want)
                return rt_cli_error(&cli, "one of --train, --eval, --accumulate and --apply, not two");
            pipeline = want;
        } else if (v == O_DOT)
            d.dot = true;
        else if (v == O_MEMORY)
            memory = true;
        else if (v == O_BATCH) {
            if (!parse_i64(cli.value, 1, (int64_t)1 << 24, &at_batch))
                return rt_cli_error(&cli, "--batch takes a count from 1 to 16777216, not '%s'", cli.value);
        } else if (v == O_DISTRIBUTED || v == O_BUCKET_MIB) {
            bool mpi, nccl;
            if (!distributed_option(&cli, v == O_DISTRIBUTED, &bucket_mib, &mpi, &nccl))
                return cli.status;
            bucket_bytes = v == O_DISTRIBUTED || bucket_bytes ? 1 : 0;
        } else {
            after = cli.value;
            if (strcmp(after, "all") != 0 && !pass_find(after)) {
                const char *names[16] = {"all"};
                int n = 1;
                for (const pass_info *p = pass_list; p->name && n < 16; p++)
                    names[n++] = p->name;
                return unknown(&cli, "pass", after, names, n, " (aotgrad passes lists them)");
            }
        }
    }
    if (model_operand(&cli, &m, "aotgrad ir MODEL.c|FILE.ir"))
        return cli.status;
    const char *path = m.path;
    bool chosen = pipeline >= 0;
    if (memory && (chosen || d.dot || after))
        return rt_cli_error(&cli, "--memory reports both pipelines' plans as text; it takes no --train, --eval, "
                                  "--after or --dot (aotgrad ir --after plan_memory shows a plan's graph)");
    if (at_batch && !memory)
        return rt_cli_error(&cli, "--batch N goes with --memory (the plan's figures at N)");
    const pass_info *stop = after ? pass_find(after) : NULL;
    ir_graph *g = fe_load(path, NULL, m.settings);
    if (!g)
        return 1;
    char err[4096];
    int rc = 0;
    if (bucket_bytes && ir_trains(g)) /* the train step of a distributed build */
        g->train->bucket_bytes = (int64_t)(bucket_mib * (1 << 20));
    if (!ir_trains(g)) { /* a forward computation: its pipeline is the eval one */
        if ((chosen && pipeline != PASS_EVAL) || (stop && !(stop->pipelines & PASS_IN(PASS_EVAL)))) {
            snprintf(err, sizeof err, "%s declares no training (ag_minimize), so it has no %s step%s%s%s", g->name,
                     chosen ? pass_pipeline_names[pipeline] : "train", chosen ? "" : " (pass ", chosen ? "" : after,
                     chosen ? "" : " runs only there)");
            fe_report(path, err);
            ir_graph_free(g);
            return 1;
        }
        if (after)
            pipeline = PASS_EVAL;
    } else if (stop && !chosen && !(stop->pipelines & PASS_IN(PASS_TRAIN))) {
        int only = 0; /* the pipeline it runs in (each pass outside train's runs in one) */
        while (only < PASS_PIPELINES - 1 && !(stop->pipelines & PASS_IN(only)))
            only++;
        ir_graph_free(g);
        return rt_cli_error(&cli, "pass %s runs only in the %s pipeline (add --%s)", after, pass_pipeline_names[only],
                            pass_pipeline_names[only]);
    } else if (after && !chosen)
        pipeline = PASS_TRAIN;
    if (stop && !(stop->pipelines & PASS_IN(pipeline))) {
        ir_graph_free(g);
        return rt_cli_error(&cli, "pass %s does not run in the %s pipeline (aotgrad passes lists where each runs)",
                            after, pass_pipeline_names[pipeline]);
    }
    if (memory) {
        if (!pass_memory_report(g, at_batch, stdout, err, sizeof err)) {
            fe_report(path, err);
            rc = 1;
        }
    } else if (pipeline < 0) {
        print_graph(g, d.dot);
    } else {
        d.all = after && strcmp(after, "all") == 0;
        const char *upto = d.all ? NULL : after;
        ir_graph *out = pass_run_pipeline(g, (pass_pipeline)pipeline, upto, dump_stage, &d, err, sizeof err);
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
    static const struct option longs[] = {COMMON_OPTIONS, {0}};
    rt_cli cli;
    rt_cli_start(&cli, "aotgrad passes", "h", longs, argc, argv);
    for (int v; (v = next_option(&cli, NULL)) != -1;)
        if (v == RT_CLI_STOP)
            return cli.status;
    if (cli.operands < argc)
        return rt_cli_error(&cli, "takes no arguments");
    for (const pass_info *p = pass_list; p->name; p++) {
        char in[64] = "";
        for (int k = 0; k < PASS_PIPELINES; k++)
            if (p->pipelines & PASS_IN(k))
                snprintf(in + strlen(in), sizeof in - strlen(in), "%s%s", in[0] ? "," : "", pass_pipeline_names[k]);
        printf("%-16s %-26s %s\n", p->name, p->pipelines == PASS_ALL ? "all" : in, p->doc);
    }
    return 0;
}

/* ---- aotgrad check ---- */

static int cmd_check(int argc, char **argv)
{
    static const struct option longs[] = {{"print", no_argument, NULL, O_PRINT}, COMMON_OPTIONS, {0}};
    bool print = false;
    rt_cli cli;
    rt_cli_start(&cli, "aotgrad check", "h", longs, argc, argv);
    for (int v; (v = next_option(&cli, NULL)) != -1;) {
        if (v == RT_CLI_STOP)
            return cli.status;
        print = true;
    }
    if (cli.operands == argc)
        return rt_cli_error(&cli, "which file? aotgrad check FILE.ir");
    if (argc - cli.operands > 1)
        return rt_cli_error(&cli, "one file at a time; extra argument '%s'", argv[cli.operands + 1]);
    const char *path = argv[cli.operands];
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
    static const struct option longs[] = {{"batch", required_argument, NULL, O_BATCH},
                                          {"seed", required_argument, NULL, O_SEED},
                                          {"f64", no_argument, NULL, O_F64},
                                          {"train", no_argument, NULL, O_TRAIN},
                                          MODEL_OPTIONS,
                                          {0}};
    model_arg m = {0};
    int64_t batch = 4, seed = 1;
    bool f64 = false, training = false;
    rt_cli cli;
    rt_cli_start(&cli, "aotgrad forward", "h", longs, argc, argv);
    for (int v; (v = next_option(&cli, &m)) != -1;) {
        if (v == RT_CLI_STOP)
            return cli.status;
        if (v == O_BATCH && !parse_i64(cli.value, 1, (int64_t)1 << 24, &batch))
            return rt_cli_error(&cli, "--batch takes a count from 1 to 16777216, not '%s'", cli.value);
        if (v == O_SEED && !parse_i64(cli.value, 0, UINT32_MAX, &seed))
            return rt_cli_error(&cli, "--seed takes a number from 0 to 4294967295, not '%s'", cli.value);
        f64 |= v == O_F64;
        training |= v == O_TRAIN;
    }
    if (model_operand(&cli, &m, "aotgrad forward MODEL.c|FILE.ir"))
        return cli.status;
    const char *path = m.path;
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

/* aotgrad run's option v into o: 0, or the exit status after saying what was wrong */
static int run_option(rt_cli *cli, int v, fe_run_opts *o)
{
    const char *s = cli->value;
    int64_t n;
    char why[300];
    if (v >= O_SCHEDULE) {
        o->has_schedule = true;
        return rt_schedule_take(&o->schedule, v - O_SCHEDULE, s, why, sizeof why) ? 0 : rt_cli_error(cli, "%s", why);
    }
    switch (v) {
    case O_EPOCHS:
    case O_BATCH:
        if (!parse_i64(s, 1, IR_MAX_COUNT, v == O_EPOCHS ? &o->epochs : &o->batch))
            return rt_cli_error(cli, "%s takes a count from 1 to 2^30, not '%s'", cli->name, s);
        return 0;
    case O_SEED:
        if (!parse_i64(s, 0, UINT32_MAX, &n))
            return rt_cli_error(cli, "--seed takes a number from 0 to 4294967295, not '%s'", s);
        o->seed = (uint32_t)n, o->has_seed = true;
        return 0;
    case O_LR:
    case O_WD:
        if (!parse_real(s, v == O_LR ? &o->lr : &o->wd))
            return rt_cli_error(cli, "%s takes a number >= 0, not '%s'", cli->name, s);
        return 0;
    case O_THREADS:
        if (!parse_i64(s, 1, 1024, &n))
            return rt_cli_error(cli, "--threads takes a count from 1 to 1024, not '%s'", s);
        o->threads = (int)n;
        return 0;
    case O_ACCUMULATE:
        if (!parse_i64(s, 1, 1000000, &o->accumulate))
            return rt_cli_error(cli, "--accumulate takes a count of batches from 1 to 1000000, not '%s'", s);
        return 0;
    case O_CLIP_NORM:
        if (!parse_real(s, &o->clip_norm) || !(o->clip_norm > 0 && o->clip_norm <= FLT_MAX))
            return rt_cli_error(cli, "--clip-norm takes a number above 0, up to 3.40282e+38 (a finite f32), not '%s'",
                                s);
        return 0;
    case O_DATA: o->data = s; return 0;
    case O_SAVE: o->save = s; return 0;
    case O_RESUME: o->resume = s; return 0;
    case O_METRICS: o->metrics = s; return 0;
    case O_PLOT: o->plot = s; return 0;
    default: o->label = s; return 0; /* O_LABEL */
    }
}

static int cmd_run(int argc, char **argv)
{
    static const struct option longs[] = {{"epochs", required_argument, NULL, O_EPOCHS},
                                          {"batch", required_argument, NULL, O_BATCH},
                                          {"seed", required_argument, NULL, O_SEED},
                                          {"lr", required_argument, NULL, O_LR},
                                          {"wd", required_argument, NULL, O_WD},
                                          {"data", required_argument, NULL, O_DATA},
                                          {"save", required_argument, NULL, O_SAVE},
                                          {"resume", required_argument, NULL, O_RESUME},
                                          {"metrics", required_argument, NULL, O_METRICS},
                                          {"plot", required_argument, NULL, O_PLOT},
                                          {"threads", required_argument, NULL, O_THREADS},
                                          {"label-column", required_argument, NULL, O_LABEL},
                                          {"accumulate", required_argument, NULL, O_ACCUMULATE},
                                          {"clip-norm", required_argument, NULL, O_CLIP_NORM},
                                          RT_SCHEDULE_OPTIONS(O_SCHEDULE),
                                          MODEL_OPTIONS,
                                          {0}};
    model_arg m = {0};
    fe_run_opts o = {.lr = -1, .wd = -1, .seed = 1, .schedule = RT_SCHEDULE_DEFAULT};
    rt_cli cli;
    rt_cli_start(&cli, "aotgrad run", "h", longs, argc, argv);
    for (int v; (v = next_option(&cli, &m)) != -1;) {
        if (v == RT_CLI_STOP)
            return cli.status;
        int rc = run_option(&cli, v, &o);
        if (rc)
            return rc;
    }
    if (model_operand(&cli, &m, "aotgrad run MODEL.c|FILE.ir"))
        return cli.status;
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
    static const struct option longs[] = {{"time", no_argument, NULL, O_TIME},
                                          {"emit", required_argument, NULL, O_EMIT},
                                          {"target", required_argument, NULL, O_TARGET},
                                          {"cuda-arch", required_argument, NULL, O_CUDA_ARCH},
                                          {"batch", required_argument, NULL, O_BATCH},
                                          {"dump-dir", required_argument, NULL, O_DUMP_DIR},
                                          {"distributed", required_argument, NULL, O_DISTRIBUTED},
                                          {"bucket-mib", required_argument, NULL, O_BUCKET_MIB},
                                          MODEL_OPTIONS,
                                          {0}};
    model_arg m = {0};
    fe_build_opts o = {.emit = FE_EMIT_EXE, .settings = m.settings};
    bool distributed = false;
    double bucket_mib = 4;
    rt_cli cli;
    rt_cli_start(&cli, "aotgrad build", "ho:", longs, argc, argv);
    for (int v; (v = next_option(&cli, &m)) != -1;) {
        if (v == RT_CLI_STOP)
            return cli.status;
        const char *s = cli.value;
        if (v == O_TIME)
            o.time = true;
        else if (v == 'o')
            o.out = s;
        else if (v == O_DUMP_DIR)
            o.dump_dir = s;
        else if (v == O_CUDA_ARCH)
            o.cuda_arch = s;
        else if (v == O_DISTRIBUTED || v == O_BUCKET_MIB) {
            if (!distributed_option(&cli, v == O_DISTRIBUTED, &bucket_mib, &o.mpi, &o.nccl))
                return cli.status;
            distributed |= v == O_DISTRIBUTED;
        } else if (v == O_BATCH) {
            if (!parse_i64(s, 1, (int64_t)1 << 24, &o.batch))
                return rt_cli_error(&cli, "--batch takes a count from 1 to 16777216, not '%s'", s);
        } else if (v == O_TARGET) {
            if (strcmp(s, "cpu") != 0 && strcmp(s, "cpu,cuda") != 0 && strcmp(s, "cuda,cpu") != 0)
                return rt_cli_error(&cli, "--target takes cpu or cpu,cuda, not '%s'", s);
            o.cuda = strcmp(s, "cpu") != 0;
        } else if (!parse_emit(s, &o.emit))
            return rt_cli_error(&cli, "--emit takes a list of exe, obj, h, ll, s, ir, cu, ptx, not '%s'", s);
    }
    /* --emit adds files beside the binary; asking for the object or the header (a C caller's
     * own program links them) leaves the binary out unless exe is named too */
    if (!(o.emit & (FE_EMIT_OBJ | FE_EMIT_H)))
        o.emit |= FE_EMIT_EXE;
    if (model_operand(&cli, &m, "aotgrad build MODEL.c|FILE.ir -o OUT"))
        return cli.status;
    if (!o.out)
        return rt_cli_error(&cli, "where to? -o OUT (the binary OUT, or OUT.o, OUT.h, ... with --emit)");
    if (distributed)
        o.bucket_bytes = (int64_t)(bucket_mib * (1 << 20));
    return fe_build(m.path, &o);
}

/* ---- aotgrad ops ---- */

static int cmd_ops(int argc, char **argv)
{
    static const struct option longs[] = {COMMON_OPTIONS, {0}};
    rt_cli cli;
    rt_cli_start(&cli, "aotgrad ops", "h", longs, argc, argv);
    for (int v; (v = next_option(&cli, NULL)) != -1;)
        if (v == RT_CLI_STOP)
            return cli.status;
    if (cli.operands < argc)
        return rt_cli_error(&cli, "takes no arguments");
    static const char *const kinds[] = {[IR_K_SOURCE] = "source", [IR_K_ELEMENTWISE] = "elementwise",
                                        [IR_K_REDUCE] = "reduce", [IR_K_SCAN] = "scan",
                                        [IR_K_MATMUL] = "matmul", [IR_K_LAYOUT] = "layout",
                                        [IR_K_ROW] = "row",       [IR_K_INDEX] = "index",
                                        [IR_K_RANDOM] = "random", [IR_K_WINDOW] = "window",
                                        [IR_K_FUSED] = "fused",   [IR_K_COLLECTIVE] = "collective"};
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
     "usage: aotgrad ir MODEL.c|FILE.ir [--train | --eval | --accumulate | --apply] [--after PASS|all] [--dot]\n"
     "                 [--memory [--batch N]] [--distributed E [--bucket-mib M]] [--set NAME=VALUE]...\n\n"
     "Builds the model (a C file, compiled with cc against aotgrad.h, whose function is named\n"
     "after the file) or reads a text IR file, and prints its graph as text IR on stdout.\n"
     "Errors in the model are reported as FILE:LINE: error: MESSAGE, all of them, and exit 1.\n"
     "Every graph printed parses back (aotgrad check) and runs (aotgrad run).\n\n"
     "  --train           the train step after the whole pipeline (forward, backward, update)\n"
     "  --eval            the eval graph after the whole pipeline (loss, metrics, predictions)\n"
     "  --accumulate, --apply  the two halves of the split train step the binaries run for\n"
     "                    --accumulate K and --clip-norm X: gradients summed into accumulators,\n"
     "                    and the update from them, scaled and clipped\n"
     "  --after PASS      the train step (or the pipeline chosen above; for a graph without\n"
     "                    training: the eval graph) after PASS; all: after every pass in turn,\n"
     "                    each under a header naming it (aotgrad passes)\n"
     "  --dot             Graphviz DOT instead of text IR: values named as the text names them,\n"
     "                    with their model line; a kernel as one box of its ops and values\n"
     "  --memory          the memory plan of the train step and of inference (inference only\n"
     "                    for a graph without training)\n"
     "  --batch N         with --memory: its figures at batch N (one plan serves every batch)\n"
     "  --distributed E   the train step of a distributed build (aotgrad build --distributed E):\n"
     "                    each gradient summed over the ranks (allreduce) in buckets of\n"
     "                    --bucket-mib M (default 4) before its update\n"
     "  --set NAME=VALUE  set a model option (ag_option), e.g. --set act=tanh\n"
     "  --model-timeout S  seconds the model's code may take to build the graph (default 60)\n"},
    {"build", cmd_build, "compile a model with the LLVM backend: a standalone binary, or object and header",
     "usage: aotgrad build MODEL.c|FILE.ir -o OUT [--emit LIST] [--target cpu|cpu,cuda] [--cuda-arch A]\n"
     "                    [--batch N] [--dump-dir DIR] [--time] [--distributed E [--bucket-mib M]]\n"
     "                    [--set NAME=VALUE]...\n\n"
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
     "                the graph after each pass of every pipeline (.ir, which parses back, and\n"
     "                .dot), the memory plan, the kernel IR, the LLVM IR before and after\n"
     "                optimization, the assembly, the CUDA C and its PTX\n"
     "  --time        print where the build's time went\n"
     "  --distributed mpi  data-parallel training: `mpirun -np R OUT train` trains one model on R\n"
     "                ranks, each the gradients of its share of every global batch, summed over\n"
     "                MPI in buckets that overlap the backward pass (docs/distributed.md). The\n"
     "                binary links Open MPI; without this option it does not\n"
     "  --distributed nccl  the same on GPUs (--target cpu,cuda), one a rank: the buckets summed\n"
     "                by NCCL (loaded at run time), no MPI linked: the ranks come from the\n"
     "                launcher's variables and meet through OUT train --nccl-id FILE\n"
     "  --distributed mpi,nccl  both: NCCL on the GPU, MPI on the CPU, and MPI starts the job\n"
     "  --bucket-mib M  the gradient buckets' size with --distributed (default 4)\n"
     "  --set NAME=VALUE  a model option\n"
     "  --model-timeout S  seconds the model's code may take to build the graph (default 60)\n"},
    {"passes", cmd_passes, "list the passes of the pipeline, in order",
     "usage: aotgrad passes\n\n"
     "Lists the pipeline's passes in the order they run, and which pipelines run each: the\n"
     "train step's (train), the eval graph's (eval), the split step's halves (accumulate,\n"
     "apply), or all. Each name works with aotgrad ir --after.\n"},
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
     "                  [--data PATH] [--set NAME=VALUE]... [--save FILE] [--resume FILE]\n"
     "                  [--metrics FILE.csv] [--plot FILE.svg] [--threads N] [--label-column C]\n"
     "                  [--lr-schedule S] [--warmup-steps W] [--lr-step-epochs K] [--lr-gamma G] [--lr-min M]\n"
     "                  [--accumulate K] [--clip-norm X]\n\n"
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
     "  --save FILE       write the parameters and training state after every epoch (safetensors;\n"
     "                    the binaries' eval and predict --weights read it)\n"
     "  --resume FILE     continue from a checkpoint written by --save: the same run, bit for bit\n"
     "  --metrics FILE    write the per-epoch figures as CSV, as a binary's train does\n"
     "  --plot FILE       draw loss and accuracies per epoch as an SVG chart\n"
     "  --threads N       OpenBLAS's threads for the interpreter's matmuls (default: its own)\n"
     "  --label-column C  a CSV's label in column C (a number from 1, or a header name) in place\n"
     "                    of the last\n" RT_SCHEDULE_HELP RT_SPLIT_HELP},
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
               "  AOTGRAD_LIBPNG       the libpng a binary's predict loads for a PNG (default libpng16.so.16)\n"
               "  OPENBLAS_CORETYPE    OpenBLAS's kernels (aotgrad and the binaries set it when unset)\n"
               "  TMPDIR               where temporary files go (default /tmp)\n"
               "  NO_COLOR             set: no colour with --color=auto\n");
}

int main(int argc, char **argv)
{
    ag_blas_pick_kernels(argv); /* the interpreter's sgemm: OpenBLAS's best kernels here */
    ir_bug_on_crash();          /* a crash of the compiler is a bug: said so, exit status 70 */
    fe_diag_color_option("auto");
    /* aotgrad's own options, up to the command ("+": the command's are its own) */
    static const struct option longs[] = {{"version", no_argument, NULL, O_VERSION}, COMMON_OPTIONS, {0}};
    rt_cli cli;
    rt_cli_start(&cli, "aotgrad", "+h", longs, argc, argv);
    for (int v; (v = rt_cli_next(&cli)) != -1;) {
        if (v == RT_CLI_STOP)
            return cli.status;
        if (v == 'h') {
            usage(stdout);
            return 0;
        }
        if (v == O_VERSION) {
            printf("aotgrad %s\n", AG_VERSION);
            return 0;
        }
        if (!fe_diag_color_option(cli.value))
            return rt_cli_error(&cli, "--color takes auto, always or never, not '%s'", cli.value);
    }
    if (cli.operands == argc) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[cli.operands];
    if (strcmp(name, "help") == 0) {
        if (cli.operands + 1 < argc && print_help(argv[cli.operands + 1]) == 0)
            return 0;
        usage(stdout);
        return 0;
    }
    for (const command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0) {
            prog_cmd = c->name;
            return c->run(argc - cli.operands, argv + cli.operands);
        }
    const char *names[32];
    int n = 0;
    for (const command *c = commands; c->name && n < 32; c++)
        names[n++] = c->name;
    return unknown(&cli, "command", name, names, n, "");
}
