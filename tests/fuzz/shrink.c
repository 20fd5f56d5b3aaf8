/* The shrinker: a failing model reduced, one mutation at a time, while it still fails. */
#include <stdlib.h>
#include <string.h>

#include "recipe.h"

typedef struct shrinker {
    fz_model *m;
    fz_still_fails *fails;
    void *ctx;
    bool new_inputs;
    int tried, budget;
    ag_dtype dtype[FZ_MAX_STEPS];
    ir_shape shape[FZ_MAX_STEPS];
} shrinker;

/* Each step's dtype and shape; false when the DSL refuses m. */
static bool types_of(const fz_model *m, ag_dtype *dtype, ir_shape *shape)
{
    char err[4096];
    ir_graph *g = fz_build(m, NULL, err, sizeof err);
    if (!g)
        return false;
    ir_graph_free(g);
    fz_builder b = {ag_graph_new(m->name), "shrink.c", {{0}}};
    bool ok = true;
    for (int k = 0; k < m->n && ok; k++) {
        ag_val v = fz_build_step(&b, m, k);
        ok = v.id >= 0;
        if (ok) {
            dtype[k] = b.g->node[v.id].dtype;
            shape[k] = b.g->node[v.id].shape;
        }
    }
    ag_graph_free(b.g);
    return ok;
}

/* Tries candidate c: kept (into s->m) when the DSL takes it and it still fails. */
static bool try(shrinker *s, fz_model *c)
{
    if (s->tried >= s->budget)
        return false;
    fz_prune(c);
    ag_dtype dt[FZ_MAX_STEPS];
    ir_shape sh[FZ_MAX_STEPS];
    if (!types_of(c, dt, sh))
        return false;
    s->tried++;
    if (!s->fails(s->ctx, c))
        return false;
    *s->m = *c;
    memcpy(s->dtype, dt, sizeof dt);
    memcpy(s->shape, sh, sizeof sh);
    return true;
}

static void replace_uses(fz_model *c, int k, int by)
{
    for (int j = k + 1; j < c->n; j++)
        for (int i = 0; i < c->step[j].nargs; i++)
            if (c->step[j].arg[i].step == k)
                c->step[j].arg[i].step = by;
    for (int i = 0; i < c->nout; i++)
        if (c->out[i].step == k)
            c->out[i].step = by;
    if (c->loss == k)
        c->loss = by;
    if (c->metric == k)
        c->metric = by;
    if (c->predict == k)
        c->predict = by;
}

static bool drop_declarations(shrinker *s)
{
    bool any = false;
    fz_model *c = malloc(sizeof *c);
    for (int i = s->m->nout - 1; i >= 0; i--) {
        *c = *s->m;
        memmove(&c->out[i], &c->out[i + 1], sizeof c->out[0] * (size_t)(c->nout - i - 1));
        c->nout--;
        any |= try(s, c);
    }
    *c = *s->m;
    c->metric = -1;
    c->metric_name[0] = 0;
    if (s->m->metric >= 0)
        any |= try(s, c);
    *c = *s->m;
    c->predict = -1;
    if (s->m->predict >= 0)
        any |= try(s, c);
    *c = *s->m;
    c->ngroups = 0;
    if (s->m->ngroups)
        any |= try(s, c);
    *c = *s->m;
    c->option = false;
    if (s->m->option)
        any |= try(s, c);
    free(c);
    return any;
}

/* Step k replaced by a source of its type: an input, or (f32, no N) a parameter. */
static bool to_source(shrinker *s, int k, fz_kind kind)
{
    fz_step *st = &s->m->step[k];
    if (st->kind == FZ_INPUT || st->kind == FZ_PARAM || k == s->m->loss)
        return false;
    const ir_shape *sh = &s->shape[k];
    bool has_n = false;
    for (int i = 0; i < sh->rank; i++)
        has_n |= sh->dim[i] == AG_N;
    if (kind == FZ_PARAM && (s->dtype[k] != AG_F32 || has_n))
        return false;
    fz_model *c = malloc(sizeof *c);
    *c = *s->m;
    fz_step src;
    memset(&src, 0, sizeof src);
    src.kind = kind;
    src.dtype = s->dtype[k];
    src.dims.n = sh->rank;
    for (int i = 0; i < sh->rank; i++)
        src.dims.d[i] = sh->dim[i];
    src.init = ag_normal(0, 1);
    snprintf(src.name, sizeof src.name, "%s%d", kind == FZ_INPUT ? "s" : "P", s->tried); /* unique */
    c->step[k] = src;
    bool ok = try(s, c);
    free(c);
    return ok;
}

static bool bypass(shrinker *s, int k)
{
    const fz_step *st = &s->m->step[k];
    for (int i = 0; i < st->nargs; i++) {
        int a = st->arg[i].step;
        if (a < 0 || s->dtype[a] != s->dtype[k] || !ir_shape_eq(&s->shape[a], &s->shape[k]))
            continue;
        fz_model *c = malloc(sizeof *c);
        *c = *s->m;
        replace_uses(c, k, a);
        bool ok = try(s, c);
        free(c);
        if (ok)
            return true;
    }
    return false;
}

static bool drop_part(shrinker *s, int k)
{
    const fz_step *st = &s->m->step[k];
    if (st->kind != FZ_CONCAT || st->nargs < 3)
        return false;
    for (int i = st->nargs - 1; i >= 0; i--) {
        fz_model *c = malloc(sizeof *c);
        *c = *s->m;
        fz_step *cs = &c->step[k];
        memmove(&cs->arg[i], &cs->arg[i + 1], sizeof cs->arg[0] * (size_t)(cs->nargs - i - 1));
        cs->nargs--;
        bool ok = try(s, c);
        free(c);
        if (ok)
            return true;
    }
    return false;
}

/* The loss replaced by the mean of a fresh parameter: what fails may lie elsewhere. */
static bool simple_loss(shrinker *s)
{
    if (s->m->loss < 0) /* a forward computation */
        return false;
    const fz_step *l = &s->m->step[s->m->loss];
    if (s->m->n + 2 > FZ_MAX_STEPS ||
        (l->kind == FZ_REDUCE && l->arg[0].step >= 0 && s->m->step[l->arg[0].step].kind == FZ_PARAM))
        return false;
    fz_model *c = malloc(sizeof *c);
    *c = *s->m;
    fz_step *p = &c->step[c->n], *mean = &c->step[c->n + 1];
    memset(p, 0, sizeof *p * 2);
    p->kind = FZ_PARAM;
    p->init = ag_normal(0, 1);
    p->dims = (ag_dims){1, {1}};
    snprintf(p->name, sizeof p->name, "L%d", s->tried);
    mean->kind = FZ_REDUCE;
    mean->op = IR_mean;
    mean->nargs = 1;
    mean->arg[0] = (fz_arg){c->n, 0};
    c->loss = c->n + 1;
    c->n += 2;
    bool ok = try(s, c);
    free(c);
    return ok;
}

/* An input or parameter nothing reads, dropped. */
static bool drop_unread(shrinker *s, int k)
{
    const fz_step *st = &s->m->step[k];
    if ((st->kind != FZ_INPUT && st->kind != FZ_PARAM) || fz_used(s->m, k))
        return false;
    for (int j = k + 1; j < s->m->n; j++) /* ag_requires_grad of it, itself unread */
        for (int i = 0; i < s->m->step[j].nargs; i++)
            if (s->m->step[j].arg[i].step == k)
                return false;
    fz_model *c = malloc(sizeof *c);
    *c = *s->m;
    fz_drop_source(c, k);
    bool ok = try(s, c);
    free(c);
    return ok;
}

static bool shrink_axes(shrinker *s, int k)
{
    const fz_step *st = &s->m->step[k];
    if (st->kind != FZ_INPUT && st->kind != FZ_PARAM && st->kind != FZ_FULL)
        return false;
    for (int i = 0; i < st->dims.n; i++) {
        int64_t d = st->dims.d[i];
        if (d <= 1)
            continue;
        int64_t smaller[2] = {1, d / 2};
        for (int t = 0; t < 2; t++) {
            if (t == 1 && (smaller[1] <= 1 || smaller[1] == d))
                continue;
            fz_model *c = malloc(sizeof *c);
            *c = *s->m;
            c->step[k].dims.d[i] = smaller[t];
            bool ok = try(s, c);
            free(c);
            if (ok)
                return true;
        }
    }
    return false;
}

int fz_shrink(fz_model *m, fz_still_fails *fails, void *ctx, bool new_inputs, int budget)
{
    shrinker *s = calloc(1, sizeof *s);
    *s = (shrinker){.m = m, .fails = fails, .ctx = ctx, .new_inputs = new_inputs, .budget = budget};
    if (!types_of(m, s->dtype, s->shape)) {
        free(s);
        return 0;
    }
    for (bool changed = true; changed && s->tried < s->budget;) {
        changed = drop_declarations(s);
        changed |= simple_loss(s);
        for (int k = m->n - 1; k >= 0 && s->tried < s->budget; k--) {
            if (k >= m->n)
                continue; /* the model shrank under us */
            bool c = drop_unread(s, k) || bypass(s, k) || (new_inputs && to_source(s, k, FZ_INPUT)) ||
                     to_source(s, k, FZ_PARAM) || drop_part(s, k);
            changed |= c;
        }
        for (int k = m->n - 1; k >= 0 && s->tried < s->budget; k--)
            if (k < m->n)
                changed |= shrink_axes(s, k);
    }
    int tried = s->tried;
    free(s);
    return tried;
}
