/* `aotgrad run`: training through the reference interpreter. The train-step and eval graphs
 * come from the passes; the loop (data, batches, epochs, lines) is the runtime's, the same
 * one compiled binaries use. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bind.h"
#include "interp.h"
#include "load.h"
#include "passes.h"
#include "run.h"
#include "fail.h"
#include "history.h"
#include "run_state.h"
#include "pool.h"
#include "temp.h"
#include "train.h"

typedef struct graph_run {
    ir_graph *g;
    ir_tensor **bound; /* by node id: params (shared), inputs (views of the batch, the scalars) */
    int32_t x, y;      /* the data inputs, or -1 (apply takes none) */
    int loss, metric[RT_MAX_METRICS];
} graph_run;

/* The train step, the eval graph, and the split step's halves (--accumulate, --clip-norm;
 * NULL graphs for a dumped train step), sharing the parameters, the accumulators and the
 * runtime scalars by name and role */
typedef struct interp_model {
    graph_run step, eval, accumulate, apply;
    ir_tensor *params; /* f32, in the step graph's parameter order */
    rt_param *rp;
    int nparams;
    ir_tensor *accs; /* the accumulators, in the accumulate graph's order */
    const char **acc_names;
    int naccs;
    ir_tensor scalar[AG_ROLE_COUNT]; /* lr, wd, grad_weight, grad_scale, clip_norm, share: by role */
    char no_split[512];              /* why there is no split step, where there is none */
} interp_model;

/* The tensor of the param named name: a parameter's, or an accumulator's; NULL: neither */
static ir_tensor *param_tensor(interp_model *m, const char *name)
{
    for (int k = 0; k < m->nparams; k++)
        if (strcmp(m->rp[k].name, name) == 0)
            return &m->params[k];
    for (int k = 0; k < m->naccs; k++)
        if (strcmp(m->acc_names[k], name) == 0)
            return &m->accs[k];
    return NULL;
}

static bool setup(graph_run *r, ir_graph *g, interp_model *m, char *err, size_t len)
{
    r->g = g;
    r->bound = ir_xcalloc((size_t)g->n, sizeof *r->bound);
    r->x = ir_find_role(g, AG_ROLE_DATA), r->y = ir_find_role(g, AG_ROLE_LABELS);
    if (g->train && !ir_data_inputs(g, &r->x, &r->y, err, len))
        return false;
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if (n->op == IR_input && ir_role_is_scalar(n->attr.role))
            r->bound[i] = &m->scalar[n->attr.role];
        else if (n->op == IR_input && (i == r->x || i == r->y))
            r->bound[i] = ir_xmalloc(sizeof **r->bound);
        else if (n->op == IR_param && !(r->bound[i] = param_tensor(m, n->attr.name)))
            return rt_fail(err, len, "%s: param %s is not the train step's", g->name, n->attr.name);
    }
    const ir_train *t = g->train;
    r->loss = t && t->loss ? ir_find_output(g, t->loss) : -1;
    for (int k = 0; t && k < t->nmetrics; k++)
        r->metric[k] = ir_find_output(g, t->metrics[k]);
    return true;
}

/* Run one graph on a batch (apply: none); the updates (P.next, over P's tensor) taken,
 * loss and metrics into b. */
static bool run_graph(graph_run *r, rt_batch *b, bool training, char *err, size_t len)
{
    ir_tensor outs[256];
    if (r->g->nout > 256)
        return rt_fail(err, len, "%s: %d outputs; training handles 256", r->g->name, r->g->nout);
    if (r->x >= 0) {
        const ir_node *x = &r->g->node[r->x], *y = &r->g->node[r->y];
        *r->bound[r->x] = (ir_tensor){x->dtype, ir_bind_shape(&x->shape, b->n), (void *)b->x};
        *r->bound[r->y] = (ir_tensor){y->dtype, ir_bind_shape(&y->shape, b->n), (void *)b->y};
    }
    ir_run run = {.f64 = false, .batch = b->n, .seed = b->seed, .step = b->step, .training = training};
    if (!ir_interp(r->g, &run, (const ir_tensor *const *)r->bound, outs, err, len))
        return false;
    if (r->loss >= 0)
        b->loss = ir_tensor_get(&outs[r->loss], 0);
    for (int k = 0; r->g->train && k < RT_MAX_METRICS && k < r->g->train->nmetrics; k++)
        b->metric[k] = ir_tensor_get(&outs[r->metric[k]], 0);
    for (int k = 0; k < r->g->nout; k++) { /* after the run: an update reads the old values */
        const char *name = r->g->out[k].name;
        size_t n = strlen(name);
        char param[300];
        if (n > 5 && n - 5 < sizeof param && strcmp(name + n - 5, ".next") == 0) {
            memcpy(param, name, n - 5);
            param[n - 5] = 0;
            int32_t p = ir_find_source(r->g, IR_param, param);
            if (p >= 0)
                memcpy(r->bound[p]->data, outs[k].data, sizeof(float) * (size_t)ir_tensor_numel(r->bound[p]));
        }
    }
    for (int k = 0; k < r->g->nout; k++)
        ir_tensor_free(&outs[k]);
    return true;
}

static void set_scalar(interp_model *m, ag_role r, double v) { *(float *)m->scalar[r].data = (float)v; }

static bool train_step(void *ctx, rt_batch *b, char *err, size_t len)
{
    interp_model *m = ctx;
    set_scalar(m, AG_ROLE_LR, b->lr);
    set_scalar(m, AG_ROLE_WD, b->wd);
    return run_graph(&m->step, b, true, err, len);
}

static bool accumulate(void *ctx, rt_batch *b, char *err, size_t len)
{
    interp_model *m = ctx;
    set_scalar(m, AG_ROLE_GRAD_WEIGHT, (double)b->n);
    return run_graph(&m->accumulate, b, true, err, len);
}

static bool apply(void *ctx, const rt_apply *u, char *err, size_t len)
{
    interp_model *m = ctx;
    set_scalar(m, AG_ROLE_LR, u->lr);
    set_scalar(m, AG_ROLE_WD, u->wd);
    set_scalar(m, AG_ROLE_GRAD_SCALE, 1.0 / (double)u->rows);
    set_scalar(m, AG_ROLE_CLIP_NORM, u->clip_norm);
    rt_batch none = {.n = 1};
    if (!run_graph(&m->apply, &none, true, err, len))
        return false;
    for (int k = 0; k < m->naccs; k++) /* the next group starts from zero */
        memset(m->accs[k].data, 0, sizeof(float) * (size_t)ir_tensor_numel(&m->accs[k]));
    return true;
}

static bool evaluate(void *ctx, rt_batch *b, char *err, size_t len)
{
    interp_model *m = ctx;
    return run_graph(&m->eval, b, false, err, len);
}

static void free_run(graph_run *r)
{
    if (r->bound && r->x >= 0) {
        free(r->bound[r->x]);
        free(r->bound[r->y]);
    }
    free(r->bound);
    ir_graph_free(r->g);
}

static void free_model(interp_model *m)
{
    graph_run *runs[] = {&m->step, &m->eval, &m->accumulate, &m->apply};
    for (int k = 0; k < 4; k++)
        free_run(runs[k]);
    for (int k = 0; k < m->nparams; k++)
        ir_tensor_free(&m->params[k]);
    for (int k = 0; k < m->naccs; k++)
        ir_tensor_free(&m->accs[k]);
    free(m->params);
    free(m->accs);
    free(m->acc_names);
    free(m->rp);
    for (int r = 0; r < AG_ROLE_COUNT; r++)
        ir_tensor_free(&m->scalar[r]);
}

/* The accumulators of the accumulate graph, zero */
static void make_accumulators(interp_model *m)
{
    const ir_graph *a = m->accumulate.g;
    for (int32_t i = 0; i < a->n; i++)
        m->naccs += a->node[i].op == IR_param && a->node[i].attr.role == AG_ROLE_ACCUM;
    m->accs = ir_xcalloc((size_t)(m->naccs ? m->naccs : 1), sizeof *m->accs);
    m->acc_names = ir_xcalloc((size_t)(m->naccs ? m->naccs : 1), sizeof *m->acc_names);
    for (int32_t i = 0, k = 0; i < a->n; i++)
        if (a->node[i].op == IR_param && a->node[i].attr.role == AG_ROLE_ACCUM) {
            m->acc_names[k] = a->node[i].attr.name;
            m->accs[k++] = ir_tensor_new(AG_F32, &a->node[i].shape); /* zeroed */
        }
}

/* The graphs of g's pipelines, with parameters initialized from seed. */
static bool make_model(const ir_graph *g, uint32_t seed, interp_model *m, rt_model *rm, char *err, size_t len)
{
    memset(m, 0, sizeof *m);
    ir_graph *step = pass_train_step(g, err, len);
    if (!step)
        return false;
    m->step.g = step;
    m->eval.g = pass_run(g, false, NULL, NULL, NULL, err, len); /* the eval pipeline: no backward work */
    if (!m->eval.g)
        return false;
    /* the split step, where the model has one: not a dumped train step (no gradients apart),
     * nor a model with the names it gives (an input named clip_norm) */
    if (g->train->stage == IR_STAGE_STEP)
        snprintf(m->no_split, sizeof m->no_split, "a dumped train step has no gradients apart; train the model itself");
    else if (!(m->accumulate.g =
                   pass_run_pipeline(g, PASS_ACCUMULATE, NULL, NULL, NULL, m->no_split, sizeof m->no_split)) ||
             !(m->apply.g = pass_run_pipeline(g, PASS_APPLY, NULL, NULL, NULL, m->no_split, sizeof m->no_split))) {
        ir_graph_free(m->accumulate.g);
        m->accumulate.g = NULL;
    }
    bool split = m->apply.g != NULL;
    for (int32_t i = 0; i < step->n; i++)
        m->nparams += step->node[i].op == IR_param;
    size_t np = (size_t)(m->nparams ? m->nparams : 1);
    m->params = ir_xcalloc(np, sizeof *m->params);
    m->rp = ir_xcalloc(np, sizeof *m->rp);
    ir_shape scalar = {0, {0}};
    for (int r = 0; r < AG_ROLE_COUNT; r++)
        if (!(m->scalar[r] = ir_tensor_new(AG_F32, &scalar)).data) /* the interpreter's tensors say so by a NULL */
            return rt_fail(err, len, "out of memory");
    set_scalar(m, AG_ROLE_SHARE, 1); /* one process: a distributed step's sums are its own gradients */
    for (int32_t i = 0, k = 0; i < step->n; i++) {
        const ir_node *p = &step->node[i];
        if (p->op != IR_param)
            continue;
        m->params[k] = ir_tensor_new(AG_F32, &p->shape);
        fe_init_param(p, &m->params[k], seed, (uint32_t)k + 1); /* the streams fe_bind_random uses */
        char name[300];
        snprintf(name, sizeof name, "%s.next", p->attr.name);
        if (ir_find_output(step, name) < 0)
            return rt_fail(err, len, "%s: the train step has no output %s", g->name, name);
        m->rp[k] = (rt_param){p->attr.name, p->shape.rank, {0}, m->params[k].data, p->attr.role == AG_ROLE_STATE};
        memcpy(m->rp[k].dims, p->shape.dim, sizeof m->rp[k].dims);
        k++;
    }
    if (split)
        make_accumulators(m);
    m->accumulate.x = m->apply.x = -1; /* what free_run reads where a graph is not set up */
    if (!setup(&m->step, step, m, err, len) || !setup(&m->eval, m->eval.g, m, err, len) ||
        (split && (!setup(&m->accumulate, m->accumulate.g, m, err, len) || !setup(&m->apply, m->apply.g, m, err, len))))
        return false;
    *rm = (rt_model){.name = g->name,
                     .ctx = m,
                     .train_step = train_step,
                     .evaluate = evaluate,
                     .accumulate = split ? accumulate : NULL,
                     .apply = split ? apply : NULL,
                     .nmetrics = step->train->nmetrics,
                     .nparams = m->nparams,
                     .params = m->rp};
    for (int k = 0; k < rm->nmetrics; k++)
        rm->metrics[k] = step->train->metrics[k];
    return true;
}

/* After each epoch: the checkpoint (--save), the metrics (--metrics) and the plot (--plot)
 * of the run so far, rewritten as the binaries' train rewrites them */
typedef struct run_progress {
    const fe_run_opts *o;
    const rt_model *rm;
    const char *options; /* the model's, as the checkpoint records them */
    int64_t samples;
    rt_run_state at; /* the run after its last finished epoch */
} run_progress;

static bool on_epoch(void *ctx, const rt_epoch *e, char *err, size_t len)
{
    run_progress *p = ctx;
    return rt_run_record(&p->at, p->rm, e, p->samples, err, len) &&
           (!p->o->save || rt_run_save(p->o->save, p->rm, p->options, &p->at, err, len)) &&
           (!p->o->metrics || rt_write_metrics_csv(p->o->metrics, p->at.rows, p->at.nrows, err, len)) &&
           (!p->o->plot || rt_write_plot_svg(p->o->plot, p->rm->name, p->at.rows, p->at.nrows, err, len));
}

/* --resume: the parameters and the training state of the checkpoint, and fit set to go on */
static bool resume(const fe_run_opts *o, const rt_model *rm, const char *options, rt_fit *fit, rt_run_state *at,
                   char *err, size_t len)
{
    rt_ckpt c = {0};
    rt_run_given given = {o->has_seed,     o->lr >= 0,        o->wd >= 0,      o->batch > 0,
                          o->has_schedule, o->accumulate > 0, o->clip_norm > 0};
    int fresh = 0;
    const char *first = NULL;
    bool ok = rt_ckpt_load(o->resume, &c, err, len) &&
              rt_run_read_params(&c, o->resume, rm, options, &fresh, &first, err, len) &&
              rt_run_read_state(&c, o->resume, at, err, len) && rt_run_continue(at, o->resume, given, fit, err, len);
    if (ok)
        rt_run_say_fresh_state(stdout, rm->name, o->resume, fresh, first);
    rt_ckpt_free(&c);
    return ok;
}

int fe_run(const ir_graph *g, const fe_run_opts *o)
{
    const char *where = o->where ? o->where : g->name;
    char err[1024];
    if (!g->train || !g->train->loss) {
        fprintf(stderr, "%s: error: the model declares no training (ag_minimize)\n", where);
        return 1;
    }
    const ir_train *t = g->train;
    rt_fit fit = {.epochs = o->epochs ? o->epochs : t->epochs,
                  .batch = o->batch ? o->batch : t->batch,
                  .lr = o->lr >= 0 ? o->lr : t->lr,
                  .wd = o->wd >= 0 ? o->wd : t->wd,
                  .seed = o->seed,
                  .schedule = o->schedule,
                  .accumulate = o->accumulate,
                  .clip_norm = o->clip_norm,
                  .log = stdout};
    int64_t features, targets;
    int classes;
    rt_dataset train, test;
    rt_truth truth;
    int32_t x, y;
    if (!ir_data_shape(g, &features, &targets, &classes, err, sizeof err) ||
        !rt_load_data(o->data ? o->data : t->data, o->label, features, targets, classes, &train, &test, &truth, err,
                      sizeof err)) {
        fe_report(where, err);
        return 1;
    }
    /* the features as the model's input takes them (CSV numbers into u8 pixels, bytes into f32) */
    char what[600];
    snprintf(what, sizeof what, "data %s", o->data ? o->data : t->data);
    if (!ir_data_inputs(g, &x, &y, err, sizeof err) ||
        !rt_dataset_x_fits(&train, g->node[x].dtype, what, err, sizeof err) ||
        !rt_dataset_x_fits(&test, g->node[x].dtype, what, err, sizeof err) ||
        !rt_dataset_x_as(&train, g->node[x].dtype, err, sizeof err) ||
        !rt_dataset_x_as(&test, g->node[x].dtype, err, sizeof err)) {
        fe_report(where, err);
        rt_dataset_free(&train);
        rt_dataset_free(&test);
        return 1;
    }
    /* the output paths before any work, as the binaries check theirs */
    const char *outputs[][2] = {{"--save", o->save}, {"--metrics", o->metrics}, {"--plot", o->plot}};
    for (int k = 0; k < 3; k++) {
        char why[512];
        if (outputs[k][1] && !rt_check_output_path(outputs[k][1], true, why, sizeof why)) {
            snprintf(err, sizeof err, "%s %s", outputs[k][0], why);
            fe_report(where, err);
            rt_dataset_free(&train);
            rt_dataset_free(&test);
            return 1;
        }
    }
    interp_model m;
    rt_model rm;
    int rc = 0;
    char options[2048];
    run_progress p = {o, &rm, ir_options_text(g->train, options, sizeof options), train.n, {0}};
    if (!make_model(g, o->seed, &m, &rm, err, sizeof err)) {
        fe_report(where, err);
        rc = 1;
        goto out;
    }
    if ((o->accumulate > 1 || o->clip_norm > 0) && !rm.apply) {
        snprintf(err, sizeof err, "--accumulate and --clip-norm run the split train step, which this model lacks: %s",
                 m.no_split);
        fe_report(where, err);
        rc = 1;
        goto out;
    }
    if (o->resume) {
        if (!resume(o, &rm, options, &fit, &p.at, err, sizeof err)) {
            fe_report(where, err);
            rc = 1;
            goto out;
        }
        if (fit.first_epoch > fit.epochs) {
            printf("%s: %s is at epoch %" PRId64 " already; nothing to train (give --epochs above it)\n", g->name,
                   o->resume, p.at.epoch);
            goto out;
        }
        printf("%s: resuming %s at epoch %" PRId64 " (step %" PRIu64 ")\n", g->name, o->resume, fit.first_epoch,
               fit.first_step);
    }
    p.at.seed = fit.seed, p.at.batch = fit.batch, p.at.lr = fit.lr, p.at.wd = fit.wd, p.at.schedule = fit.schedule;
    p.at.accumulate = fit.accumulate, p.at.clip_norm = fit.clip_norm;
    printf("%s: training through the interpreter: %" PRId64 " samples, %" PRId64 " test, batch %" PRId64
           ", lr %g, wd %g, %" PRId64 " epoch%s, seed %u\n",
           g->name, train.n, test.n, fit.batch, fit.lr, fit.wd, fit.epochs, fit.epochs == 1 ? "" : "s", fit.seed);
    fit.on_epoch = on_epoch;
    fit.ctx = &p;
    rt_pool *pool = o->threads > 0 ? rt_pool_new(o->threads) : NULL;
    if (pool)
        rt_pool_bind_blas(pool);
    rt_epoch last;
    bool fitted = rt_fit_model(&rm, &train, &test, &fit, &last, err, sizeof err);
    rt_pool_free(pool);
    if (!fitted) {
        fe_report(where, err);
        rc = 1;
        goto out;
    }
    rt_print_small_params(&rm, &truth, stdout);
    if (o->save)
        printf("checkpoint: %s\n", o->save);
out:
    free(p.at.rows);
    free_model(&m);
    rt_dataset_free(&train);
    rt_dataset_free(&test);
    return rc;
}
