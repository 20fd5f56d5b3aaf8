/* The oracles: what a random model must satisfy (see oracles.h). The reference is the f64
 * interpreter on the model as the DSL built it; values are bound by name, so every stage of
 * the pipeline sees the same inputs and parameters whatever it did to the graph. */
#define _GNU_SOURCE /* nftw's FTW_PHYS */
#include "oracles_common.h"

#include <ftw.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bind.h"
#include "interp.h"
#include "passes.h"

void oracle_say(fz_result *r, fz_outcome what, const char *oracle, const char *fmt, ...)
{
    if (r->outcome != FZ_PASS)
        return; /* the first finding stands */
    r->outcome = what;
    snprintf(r->oracle, sizeof r->oracle, "%s", oracle);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)st, (void)type, (void)f;
    (void)remove(path); /* go on whatever one entry does */
    return 0;
}

void fz_remove_tree(const char *path) { nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS); }

/* ---- tensors ---- */

double oracle_err_of(double (*a)(const void *, int64_t), const void *pa, const ir_tensor *b, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = a(pa, i), y = get(b, i);
        if ((isnan(x) && isnan(y)) || (isinf(x) && x == y))
            continue;
        d += (x - y) * (x - y);
        s += isfinite(y) ? y * y : 0;
    }
    return isnan(d) ? INFINITY : sqrt(d) / fmax(sqrt(s), 1);
}

static double tensor_at(const void *t, int64_t i) { return get(t, i); }

double fz_norm_err(const ir_tensor *a, const ir_tensor *b)
{
    int64_t n = ir_tensor_numel(b);
    if (ir_tensor_numel(a) != n)
        return INFINITY;
    return oracle_err_of(tensor_at, a, b, n);
}

static ir_tensor copy_tensor(const ir_tensor *t)
{
    ir_tensor c = ir_tensor_new(t->dtype, &t->shape);
    if (c.data)
        memcpy(c.data, t->data, (size_t)ir_tensor_numel(t) * ir_dtype_size(t->dtype));
    return c;
}

static double rms(const ir_tensor *t)
{
    double s = 0;
    int64_t n = ir_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        s += get(t, i) * get(t, i);
    return n ? sqrt(s / (double)n) : 0;
}

/* ---- binding by name ---- */

bool oracle_bind_model(binding *b, const ir_graph *model, int64_t batch, bool f64)
{
    memset(b, 0, sizeof *b);
    b->model = model;
    b->bound = fe_bind_random(model, batch, SEED, f64);
    ir_shape scalar = {0, {0}};
    /* clip_norm 0.5: the clipped updates of most models, not all */
    const double value[AG_ROLE_COUNT] = {[AG_ROLE_LR] = LR,
                                         [AG_ROLE_WD] = WD,
                                         [AG_ROLE_GRAD_WEIGHT] = (double)batch,
                                         [AG_ROLE_GRAD_SCALE] = 1.0 / (double)batch,
                                         [AG_ROLE_CLIP_NORM] = 0.5,
                                         [AG_ROLE_SHARE] = 1}; /* one rank: its gradient is the batch's */
    for (int r = 0; r < AG_ROLE_COUNT; r++) {
        if (!ir_role_is_scalar((ag_role)r))
            continue;
        b->scalar[r] = ir_tensor_new(ir_storage_dtype(AG_F32, f64), &scalar);
        if (!b->scalar[r].data)
            return false;
        ir_tensor_set(&b->scalar[r], 0, value[r]);
    }
    return b->bound != NULL;
}

void oracle_unbind_model(binding *b)
{
    if (b->bound)
        fe_bind_free(b->model, b->bound);
    for (int r = 0; r < AG_ROLE_COUNT; r++)
        ir_tensor_free(&b->scalar[r]);
    for (int k = 0; k < b->nstate; k++) {
        ir_tensor_free(&b->state[k]);
        free((char *)b->state_name[k]);
    }
    memset(b, 0, sizeof *b);
}

/* g's sources bound to the model's values of the same name (lr and wd: the scalars), or to
 * extra[i] where given (NULL: none); NULL with a message naming a source neither has. */
/* The tensor of the optimizer's state param n (zero) or of an accumulator (small values, so
 * that what it adds to counts), the same one for every graph of b */
static ir_tensor *state_of(binding *b, const ir_node *n)
{
    for (int k = 0; k < b->nstate; k++)
        if (strcmp(b->state_name[k], n->attr.name) == 0)
            return &b->state[k];
    if (b->nstate == 64)
        return NULL;
    ir_tensor *t = &b->state[b->nstate];
    *t = ir_tensor_new(b->scalar[AG_ROLE_LR].dtype, &n->shape); /* zeroed; f64 where the binding is */
    if (!t->data)
        return NULL;
    for (int64_t i = 0; n->attr.role == AG_ROLE_ACCUM && i < ir_tensor_numel(t); i++)
        ir_tensor_set(t, i, 0.01 * sin(0.7 * (double)i + (double)strlen(n->attr.name)));
    b->state_name[b->nstate] = strdup(n->attr.name); /* the graph it came from may go first */
    return &b->state[b->nstate++];
}

ir_tensor **oracle_bind_graph(binding *b, const ir_graph *g, ir_tensor *const *extra, char *err, size_t len)
{
    ir_tensor **out = calloc((size_t)(g->n ? g->n : 1), sizeof *out);
    if (!out)
        return NULL;
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if (n->op != IR_input && n->op != IR_param)
            continue;
        int32_t m = ir_find_source(b->model, n->op, n->attr.name);
        if (extra && extra[i])
            out[i] = extra[i];
        else if (m >= 0)
            out[i] = b->bound[m];
        else if (n->op == IR_input && ir_role_is_scalar(n->attr.role))
            out[i] = &b->scalar[n->attr.role];
        else if (n->op == IR_param && ir_role_of_param(n->attr.role) && (out[i] = state_of(b, n)))
            continue;
        else {
            snprintf(err, len, "%s %s is not in the model", ir_ops[n->op].name, n->attr.name);
            free(out);
            return NULL;
        }
    }
    return out;
}

void oracle_free_outputs(outputs *o)
{
    for (int i = 0; i < o->n; i++)
        ir_tensor_free(&o->t[i]);
    free(o->t);
    o->t = NULL;
    o->n = 0;
}

bool oracle_run_interp(const ir_graph *g, ir_tensor **bound, int64_t batch, bool f64, bool training, outputs *o,
                       char *err, size_t len)
{
    o->n = 0;
    o->t = calloc((size_t)(g->nout ? g->nout : 1), sizeof *o->t);
    if (!o->t)
        return false;
    ir_run run = {.f64 = f64, .batch = batch, .seed = SEED, .step = STEP, .training = training};
    if (!ir_interp(g, &run, (const ir_tensor *const *)bound, o->t, err, len))
        return false;
    o->n = g->nout;
    return true;
}

/* ---- the model's values, every node's ---- */

/* A copy of g whose outputs are every node (named "vI") after its own. */
static ir_graph *every_value(const ir_graph *g)
{
    ir_graph *h = ir_graph_new(g->name);
    int32_t *map = malloc(sizeof *map * (size_t)(g->n ? g->n : 1));
    for (int32_t i = 0; i < g->n; i++)
        map[i] = ir_copy_node(h, g, i, map);
    for (int32_t i = 0; i < g->n; i++) {
        char name[24];
        snprintf(name, sizeof name, "v%d", i);
        ir_add_output(h, name, map[i]);
    }
    h->next_site = g->next_site;
    free(map);
    return h;
}

/* Flat index into an operand of shape os (aligned right, extents 1 broadcast) of element i of
 * shape s. */
static int64_t bcast_index(const ir_shape *s, const ir_shape *os, int64_t i)
{
    int64_t idx = 0, stride = 1;
    for (int k = s->rank - 1; k >= 0; k--) {
        int64_t c = i % s->dim[k];
        i /= s->dim[k];
        int ok = k - (s->rank - os->rank);
        if (ok >= 0) {
            if (os->dim[ok] != 1)
                idx += c * stride;
            stride *= os->dim[ok];
        }
    }
    return idx;
}

/* x within 1e-3 (relative to the larger of x, at and the operand's scale) of at. */
static bool near(double x, double at, double scale)
{
    return fabs(x - at) <= 1e-3 * fmax(fmax(fabs(x), fabs(at)), scale);
}

/* The first element of node n's operands near a discontinuity of n, described in why. */
static bool near_discontinuity(const ir_graph *g, int32_t id, const ir_tensor *v, const bool *cont, char *why,
                               size_t len)
{
    const ir_node *n = &g->node[id];
    const ir_tensor *out = &v[id];
    int64_t count = ir_tensor_numel(out);
    const ir_tensor *a = n->nin > 0 ? &v[n->in[0]] : NULL, *b = n->nin > 1 ? &v[n->in[1]] : NULL;
    bool ca = n->nin > 0 && cont[n->in[0]], cb = n->nin > 1 && cont[n->in[1]];
    double sa = a ? fmax(rms(a), 1e-3) : 0, sb = b ? fmax(rms(b), 1e-3) : 0;
    switch (n->op) {
    case IR_relu:
    case IR_abs:
    case IR_sqrt:
    case IR_log:
    case IR_pow:
    case IR_cast:
        if (!ca)
            return false;
        for (int64_t i = 0; i < count; i++) {
            double x = get(a, bcast_index(&out->shape, &a->shape, i));
            bool bad;
            if (n->op == IR_cast)
                bad = n->dtype == AG_BOOL  ? near(x, 0, sa)
                      : n->dtype == AG_F32 ? false
                                           : fabs(x - round(x)) <= 1e-3 * fmax(fabs(x), 1);
            else
                bad = near(x, 0, sa) || ((n->op == IR_sqrt || n->op == IR_log || n->op == IR_pow) && x < 0);
            if (bad) {
                snprintf(why, len, "%s's operand %g (element %lld) is at its discontinuity", ir_ops[n->op].name, x,
                         (long long)i);
                return true;
            }
        }
        return false;
    case IR_div:
        if (!cb)
            return false;
        for (int64_t i = 0; i < count; i++) {
            double y = get(b, bcast_index(&out->shape, &b->shape, i));
            if (near(y, 0, sb)) {
                snprintf(why, len, "div by %g (element %lld)", y, (long long)i);
                return true;
            }
        }
        return false;
    case IR_maximum:
    case IR_minimum:
    case IR_lt:
    case IR_le:
    case IR_gt:
    case IR_ge:
    case IR_eq:
    case IR_ne:
        if (!ca && !cb)
            return false;
        for (int64_t i = 0; i < count; i++) {
            double x = get(a, bcast_index(&out->shape, &a->shape, i)),
                   y = get(b, bcast_index(&out->shape, &b->shape, i));
            if (near(x, y, fmax(sa, sb))) {
                snprintf(why, len, "%s of %g and %g (element %lld)", ir_ops[n->op].name, x, y, (long long)i);
                return true;
            }
        }
        return false;
    case IR_max:
    case IR_argmax: {
        if (!ca)
            return false;
        /* the two largest of each reduced group */
        unsigned axes = n->op == IR_max ? n->attr.axes : 1u << n->attr.axis;
        int64_t groups = count ? count : 1;
        double *top = malloc(sizeof *top * (size_t)groups * 2);
        for (int64_t k = 0; k < 2 * groups; k++)
            top[k] = -INFINITY;
        int64_t total = ir_tensor_numel(a);
        for (int64_t i = 0; i < total; i++) {
            int64_t rest = i, gi = 0, gs = 1;
            for (int k = a->shape.rank - 1; k >= 0; k--) {
                int64_t c = rest % a->shape.dim[k];
                rest /= a->shape.dim[k];
                if (!(axes >> k & 1)) {
                    gi += c * gs;
                    gs *= a->shape.dim[k];
                }
            }
            double x = get(a, i);
            if (x > top[2 * gi])
                top[2 * gi + 1] = top[2 * gi], top[2 * gi] = x;
            else if (x > top[2 * gi + 1])
                top[2 * gi + 1] = x;
        }
        bool bad = false;
        for (int64_t k = 0; k < groups && !bad; k++)
            if (isfinite(top[2 * k + 1]) && near(top[2 * k], top[2 * k + 1], sa)) {
                snprintf(why, len, "%s: a tie of %g and %g (group %lld)", ir_ops[n->op].name, top[2 * k],
                         top[2 * k + 1], (long long)k);
                bad = true;
            }
        free(top);
        return bad;
    }
    case IR_max_pool2d: { /* the two largest of each window (padding is no element) */
        if (!ca)
            return false;
        const ir_window *w = &n->attr.win;
        const int64_t *d = a->shape.dim, *o = out->shape.dim;
        for (int64_t i = 0; i < count; i++) {
            int64_t ow = i % o[3], oh = i / o[3] % o[2], plane = i / (o[2] * o[3]); /* plane: sample, channel */
            double first = -INFINITY, second = -INFINITY;
            for (int64_t kh = 0; kh < w->kernel[0]; kh++)
                for (int64_t kw = 0; kw < w->kernel[1]; kw++) {
                    int64_t h = oh * w->stride[0] - w->pad[0] + kh * w->dilation[0],
                            x = ow * w->stride[1] - w->pad[1] + kw * w->dilation[1];
                    if (h < 0 || h >= d[2] || x < 0 || x >= d[3])
                        continue;
                    double v = get(a, (plane * d[2] + h) * d[3] + x);
                    if (v > first)
                        second = first, first = v;
                    else if (v > second)
                        second = v;
                }
            if (isfinite(second) && near(first, second, sa)) {
                snprintf(why, len, "max_pool2d: a tie of %g and %g (window %lld)", first, second, (long long)i);
                return true;
            }
        }
        return false;
    }
    default: return false;
    }
}

/* Whether the model's values at every batch, in training and not, are finite and clear of
 * every discontinuity; r says why not (redraw). */
static void check_smooth(const ir_graph *model, fz_result *r)
{
    ir_graph *all = every_value(model);
    bool *cont = calloc((size_t)model->n + 1, sizeof *cont);
    for (int32_t i = 0; i < model->n; i++) { /* perturbed by a parameter, or rounded differently */
        const ir_node *n = &model->node[i];
        if (n->dtype != AG_F32 || n->op == IR_const)
            continue;
        cont[i] = n->op == IR_param || n->op == IR_input;
        for (int k = 0; k < n->nin && !cont[i]; k++)
            cont[i] = cont[n->in[k]];
    }
    char err[1024];
    for (int b = 0; b < NB && !done(r); b++)
        for (int training = 0; training < 2 && !done(r); training++) {
            binding bd;
            outputs o = {0};
            if (!oracle_bind_model(&bd, model, batches[b], true)) {
                oracle_say(r, FZ_FAIL, "interp", "out of memory binding the model");
                oracle_unbind_model(&bd);
                break;
            }
            ir_tensor **bound = oracle_bind_graph(&bd, all, NULL, err, sizeof err);
            if (!bound || !oracle_run_interp(all, bound, batches[b], true, training, &o, err, sizeof err))
                oracle_say(r, FZ_FAIL, "interp", "the f64 interpreter on the model at batch %lld: %s",
                           (long long)batches[b], err);
            for (int32_t i = 0; i < model->n && !done(r) && o.n; i++) {
                const ir_node *n = &model->node[i];
                char why[512];
                if (n->dtype == AG_F32)
                    for (int64_t k = 0, c = ir_tensor_numel(&o.t[i]); k < c; k++) {
                        double x = get(&o.t[i], k);
                        if (!isfinite(x) || fabs(x) > 1e30) {
                            oracle_say(r, FZ_REDRAW, "", "%%%d (%s) is %g at batch %lld", i, ir_ops[n->op].name, x,
                                       (long long)batches[b]);
                            break;
                        }
                    }
                if (!done(r) && near_discontinuity(model, i, o.t, cont, why, sizeof why))
                    oracle_say(r, FZ_REDRAW, "", "%%%d at batch %lld%s: %s", i, (long long)batches[b],
                               training ? ", training" : "", why);
            }
            oracle_free_outputs(&o);
            free(bound);
            oracle_unbind_model(&bd);
        }
    free(cont);
    ir_graph_free(all);
}

/* ---- text ---- */

static void check_text(const ir_graph *g, const char *stage, fz_result *r)
{
    char *a = ir_print_str(g), err[1024];
    ir_graph *h = ir_parse(a, strlen(a), stage, err, sizeof err);
    if (!h)
        oracle_say(r, FZ_FAIL, "text", "%s: the dump does not parse back: %s", stage, err);
    else if (!ir_verify(h, err, sizeof err))
        oracle_say(r, FZ_FAIL, "text", "%s: the dump parsed back does not verify: %s", stage, err);
    else {
        char *b = ir_print_str(h);
        if (strcmp(a, b) != 0) {
            size_t i = 0;
            while (a[i] && a[i] == b[i])
                i++;
            size_t from = i > 60 ? i - 60 : 0;
            oracle_say(r, FZ_FAIL, "text",
                       "%s: print(parse(print(g))) differs from print(g) at character %zu: \"%.120s\" vs \"%.120s\"",
                       stage, i, a + from, b + from);
        }
        free(b);
    }
    ir_graph_free(h);
    free(a);
}

/* ---- the pipelines ---- */

#define MAX_REFS 96

/* Each output's first value in a pipeline, at each batch: what later stages must give. */
typedef struct refs {
    int n;
    const char *name[MAX_REFS];
    ir_tensor t[MAX_REFS][NB];
} refs;

static void free_refs(refs *f)
{
    for (int i = 0; i < f->n; i++) {
        free((char *)f->name[i]);
        for (int b = 0; b < NB; b++)
            ir_tensor_free(&f->t[i][b]);
    }
    f->n = 0;
}

typedef struct pipeline_ctx {
    const ir_graph *model;
    binding *bd; /* per batch, f64 */
    pass_pipeline which;
    bool training; /* dropout on: every pipeline but eval's */
    refs *refs;
    fz_result *r;
    ir_graph **gradients; /* the autodiff stage, kept */
} pipeline_ctx;

/* The stage's outputs against the references (new names become references). */
static void compare_stage(pipeline_ctx *c, const ir_graph *g, const char *stage)
{
    char err[1024];
    for (int b = 0; b < NB && !done(c->r); b++) {
        ir_tensor **bound = oracle_bind_graph(&c->bd[b], g, NULL, err, sizeof err);
        outputs o = {0};
        if (!bound) {
            oracle_say(c->r, FZ_FAIL, "pass", "%s: %s", stage, err);
            return;
        }
        if (!oracle_run_interp(g, bound, batches[b], true, c->training, &o, err, sizeof err)) {
            oracle_say(c->r, FZ_FAIL, "interp", "%s at batch %lld: the f64 interpreter fails: %s", stage,
                       (long long)batches[b], err);
            free(bound);
            oracle_free_outputs(&o);
            return;
        }
        for (int k = 0; k < g->nout && !done(c->r); k++) {
            int i = 0;
            while (i < c->refs->n && strcmp(c->refs->name[i], g->out[k].name) != 0)
                i++;
            if (i == c->refs->n) {
                if (i == MAX_REFS) {
                    oracle_say(c->r, FZ_FAIL, "interp", "%s: more than %d outputs to follow", stage, MAX_REFS);
                    break;
                }
                c->refs->name[c->refs->n++] = strdup(g->out[k].name);
            }
            if (!c->refs->t[i][b].data) {
                c->refs->t[i][b] = copy_tensor(&o.t[k]);
                continue;
            }
            double e = fz_norm_err(&o.t[k], &c->refs->t[i][b]);
            if (!(e <= 1e-10))
                oracle_say(
                    c->r, FZ_FAIL, "interp",
                    "%s (%s pipeline) at batch %lld: output %s differs from the model's by %.3g norm-wise (f64; first "
                    "values %.10g vs %.10g)",
                    stage, pass_pipeline_names[c->which], (long long)batches[b], g->out[k].name, e, get(&o.t[k], 0),
                    get(&c->refs->t[i][b], 0));
        }
        oracle_free_outputs(&o);
        free(bound);
    }
}

static void on_stage(void *ctx, const char *pass, const ir_graph *g)
{
    pipeline_ctx *c = ctx;
    if (done(c->r))
        return;
    char stage[64];
    snprintf(stage, sizeof stage, "after %s", pass);
    check_text(g, stage, c->r);
    compare_stage(c, g, stage);
    if (c->gradients && strcmp(pass, "autodiff") == 0) {
        ir_graph_free(*c->gradients);
        *c->gradients = ir_clone_live(g);
    }
}

/* Runs one pipeline with its checks; the final graph (and the gradients stage) for later
 * oracles. */
static ir_graph *pipeline(const ir_graph *model, binding *bd, pass_pipeline which, ir_graph **gradients, fz_result *r)
{
    refs *f = calloc(1, sizeof *f);
    pipeline_ctx c = {model, bd, which, which != PASS_EVAL, f, r, gradients};
    compare_stage(&c, model, "the model"); /* the references */
    char err[2048];
    ir_graph *g = done(r) ? NULL : pass_run_pipeline(model, which, NULL, on_stage, &c, err, sizeof err);
    if (!g && !done(r))
        oracle_say(r, FZ_FAIL, "pass", "the %s pipeline: %s", pass_pipeline_names[which], err);
    free_refs(f);
    free(f);
    if (done(r)) {
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

/* ---- autodiff against finite differences ---- */

/* The model with each stop_gradient an input bound to its value (what autodiff takes as a
 * constant), only the loss as output; its sources bound by name as the model's. */
static ir_graph *frozen_model(const ir_graph *g, const outputs *values, ir_tensor ***extra)
{
    ir_graph *h = ir_graph_new(g->name);
    int32_t *map = malloc(sizeof *map * (size_t)(g->n ? g->n : 1));
    *extra = calloc((size_t)g->n + 1, sizeof **extra);
    for (int32_t i = 0; i < g->n; i++) {
        if (g->node[i].op != IR_stop_gradient) {
            map[i] = ir_copy_node(h, g, i, map);
            continue;
        }
        ir_node in = ir_node_make(IR_input, 0, NULL);
        in.dtype = g->node[i].dtype;
        in.shape = g->node[i].shape;
        char name[32];
        snprintf(name, sizeof name, "frozen%d", i);
        in.attr.name = ir_strdup(h, name);
        map[i] = ir_intern(h, &in);
        (*extra)[map[i]] = (ir_tensor *)&values->t[i];
    }
    int loss = ir_find_output(g, g->train->loss);
    ir_add_output(h, "loss", map[g->out[loss].id]);
    h->next_site = g->next_site;
    free(map);
    return h;
}

static double loss_at(const ir_graph *h, ir_tensor **bound, int64_t batch, char *err, size_t len, bool *ok)
{
    outputs o = {0};
    *ok = oracle_run_interp(h, bound, batch, true, true, &o, err, len);
    double v = *ok ? get(&o.t[0], 0) : NAN;
    oracle_free_outputs(&o);
    return v;
}

static void check_gradients(const ir_graph *model, const ir_graph *gradients, fz_result *r)
{
    int64_t batch = batches[FD_BATCH];
    char err[1024];
    binding bd;
    if (!oracle_bind_model(&bd, model, batch, true)) {
        oracle_unbind_model(&bd);
        return oracle_say(r, FZ_FAIL, "autodiff", "out of memory");
    }
    /* the autodiff stage's gradients, and every value of the model (for the frozen ones) */
    outputs grads = {0}, values = {0};
    ir_graph *all = every_value(model);
    ir_tensor **gb = oracle_bind_graph(&bd, gradients, NULL, err, sizeof err),
              **ab = oracle_bind_graph(&bd, all, NULL, err, sizeof err);
    if (!gb || !ab || !oracle_run_interp(gradients, gb, batch, true, true, &grads, err, sizeof err) ||
        !oracle_run_interp(all, ab, batch, true, true, &values, err, sizeof err)) {
        oracle_say(r, FZ_FAIL, "autodiff", "the gradients at batch %lld: %s", (long long)batch, err);
        goto out;
    }
    ir_tensor **extra;
    ir_graph *h = frozen_model(model, &values, &extra);
    ir_tensor **hb = oracle_bind_graph(&bd, h, extra, err, sizeof err);
    if (!hb)
        oracle_say(r, FZ_FAIL, "autodiff", "the model with its stop_gradient values held: %s", err);
    uint64_t rng = 0x5eed;
    int64_t largest = 1; /* elements of the model's largest value */
    for (int32_t i = 0; i < model->n; i++)
        largest = ir_numel(&model->node[i].shape, batch) > largest ? ir_numel(&model->node[i].shape, batch) : largest;
    bool f0_ok = true;
    double f0 = hb ? loss_at(h, hb, batch, err, sizeof err, &f0_ok) : 0;
    f0 = f0_ok && isfinite(f0) ? f0 : 0; /* a failing loss fails below, where perturbed */
    for (int32_t p = 0; hb && p < model->n && !done(r); p++) {
        const ir_node *n = &model->node[p];
        if (!(n->op == IR_param || (n->op == IR_input && n->attr.grad)))
            continue;
        char gname[300];
        snprintf(gname, sizeof gname, "%s.grad", n->attr.name);
        int go = ir_find_output(gradients, gname);
        if (go < 0) {
            oracle_say(r, FZ_FAIL, "autodiff", "the gradients stage has no output %s", gname);
            break;
        }
        ir_tensor *theta = bd.bound[p];
        int64_t count = ir_tensor_numel(theta);
        double *d = malloc(sizeof *d * (size_t)(count ? count : 1)),
               *orig = malloc(sizeof *orig * (size_t)(count ? count : 1));
        double norm = 0, scale = 0;
        for (int64_t i = 0; i < count; i++) { /* a direction of norm 1 */
            double u1 = ((double)(fz_mix64(&rng) >> 11) + 0.5) * 0x1p-53, u2 = (double)(fz_mix64(&rng) >> 11) * 0x1p-53;
            d[i] = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
            norm += d[i] * d[i];
            orig[i] = get(theta, i);
            scale = fmax(scale, fabs(orig[i]));
        }
        norm = sqrt(norm);
        double ad = 0;
        for (int64_t i = 0; i < count; i++) {
            d[i] /= norm;
            ad += get(&grads.t[go], i) * d[i];
        }
        double h0 = 1e-5 * fmax(1, scale), D[2];
        bool ok = true;
        for (int s = 0; s < 2 && ok; s++) { /* central differences at h and h/2 */
            double step = s ? h0 / 2 : h0, f[2];
            for (int sign = 0; sign < 2 && ok; sign++) {
                for (int64_t i = 0; i < count; i++)
                    ir_tensor_set(theta, i, orig[i] + (sign ? -step : step) * d[i]);
                f[sign] = loss_at(h, hb, batch, err, sizeof err, &ok);
            }
            D[s] = (f[0] - f[1]) / (2 * step);
        }
        for (int64_t i = 0; i < count; i++)
            ir_tensor_set(theta, i, orig[i]);
        double fd = (4 * D[1] - D[0]) / 3; /* Richardson: the h^2 term cancels */
        /* the f64 loss's own rounding, over the step: a sum of M terms is off by about
         * eps |f| sqrt(M), which the differences divide by h (seed 407511: a sum of 2048
         * exps, 2048 for a slope of 0.58) */
        double noise = 4 * DBL_EPSILON * fabs(f0) * sqrt((double)largest) / (h0 / 2);
        if (!ok)
            oracle_say(r, FZ_FAIL, "autodiff", "the loss at a perturbed %s: %s", n->attr.name, err);
        else if (!(fabs(fd - ad) <= 1e-6 * fmax(fmax(fabs(fd), fabs(ad)), 1) + noise))
            oracle_say(r, FZ_FAIL, "autodiff",
                       "d loss / d %s along a random direction at batch %lld: autodiff %.12g, finite differences %.12g",
                       n->attr.name, (long long)batch, ad, fd);
        free(d);
        free(orig);
    }
    free(hb);
    free(extra);
    ir_graph_free(h);
out:
    free(gb);
    free(ab);
    oracle_free_outputs(&grads);
    oracle_free_outputs(&values);
    ir_graph_free(all);
    oracle_unbind_model(&bd);
}

/* ---- adaptive optimizers near their step ---- */

/* Adam, RMSProp and Adagrad (the kinds that take eps) divide by the root of the gradient's
 * squares: an element's first update, lr * g / (|g| + eps), is a step of width eps in its
 * gradient. A gradient 0 by symmetry but rounded to 2.2e-16 here and otherwise after another
 * pass moves the parameter by 1e-9 one way and 1e-10 the other (seed 500667). A gradient
 * within 1e-4 of 0, not 0 itself, is near that step: redraw. */
static void check_soft_steps(const ir_graph *model, fz_result *r)
{
    const ir_optimizer_kind *k = ir_optimizer_find(model->train->optimizer);
    if (!k || !(k->keys >> IR_HP_EPS & 1))
        return;
    char err[1024];
    ir_graph *grads = pass_run(model, true, "autodiff", NULL, NULL, err, sizeof err);
    for (int b = 0; grads && b < NB && !done(r); b++) { /* (a failing pipeline is the pass oracle's) */
        binding bd;
        outputs o = {0};
        ir_tensor **bound = NULL;
        if (oracle_bind_model(&bd, model, batches[b], true) &&
            (bound = oracle_bind_graph(&bd, grads, NULL, err, sizeof err)) &&
            oracle_run_interp(grads, bound, batches[b], true, true, &o, err, sizeof err))
            for (int i = 0; i < grads->nout && !done(r); i++) {
                const char *name = grads->out[i].name;
                size_t n = strlen(name);
                char param[300];
                snprintf(param, sizeof param, "%.*s", (int)(n > 5 ? n - 5 : 0), name);
                if (n < 6 || strcmp(name + n - 5, ".grad") != 0 || ir_find_source(grads, IR_param, param) < 0)
                    continue; /* an input's gradient updates nothing */
                for (int64_t e = 0, c = ir_tensor_numel(&o.t[i]); e < c; e++) {
                    double g = get(&o.t[i], e);
                    if (g != 0 && fabs(g) < 1e-4) {
                        oracle_say(r, FZ_REDRAW, "", "%s[%lld] is %g at batch %lld: %s's update is a step there", name,
                                   (long long)e, g, (long long)batches[b], k->name);
                        break;
                    }
                }
            }
        free(bound);
        oracle_free_outputs(&o);
        oracle_unbind_model(&bd);
    }
    ir_graph_free(grads);
}

/* ---- the split step against the train step ---- */

/* Accumulating the batch into zeroed accumulators and applying them unclipped is the train
 * step (f64, at batch 7: the rows weigh and scale): every update and state alike, up to the
 * f32 rounding of what simplify folded (a constant gradient is folded in one graph and
 * computed in the other: seed 41's Adam differs by 3.9e-10; a missing weight or scale
 * would be off by 7x). */
static void check_split(const ir_graph *model, const ir_graph *step, const ir_graph *acc, const ir_graph *apply,
                        fz_result *r)
{
    int64_t batch = batches[1];
    char err[1024];
    binding bd;
    outputs want = {0}, sums = {0}, got = {0};
    ir_tensor **sb = NULL, **ab = NULL, **pb = NULL, **zero = calloc((size_t)acc->n, sizeof *zero),
              **from = calloc((size_t)apply->n, sizeof *from), zeros[256] = {{0}};
    int nz = 0;
    if (!oracle_bind_model(&bd, model, batch, true)) {
        oracle_say(r, FZ_FAIL, "split", "out of memory");
        goto out;
    }
    ir_tensor_set(&bd.scalar[AG_ROLE_CLIP_NORM], 0, INFINITY);
    for (int32_t i = 0; i < acc->n && nz < 256; i++)
        if (acc->node[i].op == IR_param && acc->node[i].attr.role == AG_ROLE_ACCUM)
            zeros[nz] = ir_tensor_new(AG_F64, &acc->node[i].shape), zero[i] = &zeros[nz++];
    if (!(sb = oracle_bind_graph(&bd, step, NULL, err, sizeof err)) ||
        !oracle_run_interp(step, sb, batch, true, true, &want, err, sizeof err) ||
        !(ab = oracle_bind_graph(&bd, acc, zero, err, sizeof err)) ||
        !oracle_run_interp(acc, ab, batch, true, true, &sums, err, sizeof err)) {
        oracle_say(r, FZ_FAIL, "split", "the train step or the accumulate step at batch %lld: %s", (long long)batch,
                   err);
        goto out;
    }
    for (int k = 0; k < acc->nout; k++) { /* P.grad_acc.next feeds apply's P.grad_acc */
        char name[300];
        snprintf(name, sizeof name, "%.*s", (int)strlen(acc->out[k].name) - 5, acc->out[k].name);
        int32_t p = ir_find_source(apply, IR_param, name);
        if (p >= 0 && apply->node[p].attr.role == AG_ROLE_ACCUM)
            from[p] = &sums.t[k];
    }
    if (!(pb = oracle_bind_graph(&bd, apply, from, err, sizeof err)) ||
        !oracle_run_interp(apply, pb, 1, true, true, &got, err, sizeof err)) {
        oracle_say(r, FZ_FAIL, "split", "the apply step: %s", err);
        goto out;
    }
    for (int k = 0; k < apply->nout && !done(r); k++) {
        int w = ir_find_output(step, apply->out[k].name);
        if (w < 0) {
            oracle_say(r, FZ_FAIL, "split", "the apply step's %s is no output of the train step", apply->out[k].name);
            break;
        }
        double e = fz_norm_err(&got.t[k], &want.t[w]);
        if (!(e <= 1e-6))
            oracle_say(r, FZ_FAIL, "split",
                       "accumulate then apply at batch %lld: %s differs from the train step's by %.3g norm-wise (f64)",
                       (long long)batch, apply->out[k].name, e);
    }
out:
    for (int k = 0; k < nz; k++)
        ir_tensor_free(&zeros[k]);
    free(zero);
    free(from);
    free(sb);
    free(ab);
    free(pb);
    oracle_free_outputs(&want);
    oracle_free_outputs(&sums);
    oracle_free_outputs(&got);
    oracle_unbind_model(&bd);
}

/* ---- all of them ---- */

void fz_check_graph(const ir_graph *model, const fz_check_opts *o, fz_result *r)
{
    memset(r, 0, sizeof *r);
    bool trains = ir_trains(model); /* else a forward computation: the eval pipeline alone */
    check_smooth(model, r);
    if (!done(r))
        check_text(model, "the model", r);
    binding bd[NB] = {0};
    ir_graph *step = NULL, *eval = NULL, *gradients = NULL, *acc = NULL, *apply = NULL;
    for (int b = 0; b < NB && !done(r); b++)
        if (!oracle_bind_model(&bd[b], model, batches[b], true))
            oracle_say(r, FZ_FAIL, "interp", "out of memory");
    if (!done(r) && trains)
        check_soft_steps(model, r);
    /* half the train steps as a distributed build's (on one rank: the sums are the identity;
     * the host shim skips the CUDA plan's NCCL entries), with buckets of 256 to 2048 bytes, so
     * that most models have several */
    ir_graph *distributed = trains && model->n % 2 == 0 ? ir_clone_live(model) : NULL;
    if (distributed && distributed->train)
        distributed->train->bucket_bytes = (int64_t)256 << (model->n / 2 % 4);
    if (!done(r) && trains)
        step = pipeline(distributed ? distributed : model, bd, PASS_TRAIN, &gradients, r);
    ir_graph_free(distributed);
    if (!done(r))
        eval = pipeline(model, bd, PASS_EVAL, NULL, r);
    if (!done(r) && trains)
        acc = pipeline(model, bd, PASS_ACCUMULATE, NULL, r);
    if (!done(r) && trains)
        apply = pipeline(model, bd, PASS_APPLY, NULL, r);
    if (!done(r) && trains)
        check_split(model, step, acc, apply, r);
    /* One plan serves every batch: a forward computation's is laid out at batch 1 (it declares
     * none), and half the train steps' at 7 in place of the declared 64, so the code runs
     * at batches past the plan's as well as within it. */
    if (step && step->n % 2) {
        char err[1024];
        ir_graph *at = pass_plan_memory_at(step, batches[1], err, sizeof err);
        if (!at)
            oracle_say(r, FZ_FAIL, "pass", "plan_memory at batch %lld: %s", (long long)batches[1], err);
        ir_graph_free(step);
        step = at;
    }
    for (int b = 0; b < NB; b++)
        oracle_unbind_model(&bd[b]);
    if (!done(r) && trains && !gradients)
        oracle_say(r, FZ_FAIL, "autodiff", "the train pipeline has no autodiff stage");
    if (!done(r) && trains)
        check_gradients(model, gradients, r);
    if (!done(r) && o->jit) {
        if (trains)
            oracle_check_llvm(model, step, "train step", true, r);
        if (!done(r))
            oracle_check_llvm(model, eval, "eval graph", false, r);
        /* the split step's programs in a third of the cases: LLVM's time is the tester's */
        bool split_jit = trains && (step->n + eval->n) % 3 == 0;
        if (!done(r) && split_jit)
            oracle_check_llvm(model, acc, "accumulate step", true, r);
        if (!done(r) && split_jit)
            oracle_check_llvm(model, apply, "apply step", true, r);
    }
    if (!done(r) && o->cuda)
        oracle_check_cuda(trains ? step : eval, trains, r);
    if (!done(r) && o->binary)
        (trains ? oracle_check_binary : oracle_check_forward_binary)(model, o, r);
    ir_graph_free(step);
    ir_graph_free(eval);
    ir_graph_free(gradients);
    ir_graph_free(acc);
    ir_graph_free(apply);
}

void fz_check(const fz_model *m, const fz_check_opts *o, fz_result *r)
{
    char err[4096];
    ir_graph *model = fz_build(m, NULL, err, sizeof err);
    if (!model) {
        memset(r, 0, sizeof *r);
        return oracle_say(r, FZ_FAIL, "dsl", "the DSL refuses the model: %s", err);
    }
    fz_check_graph(model, o, r);
    ir_graph_free(model);
}
