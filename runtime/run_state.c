/* Training runs in checkpoints (run_state.h). */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "fail.h"
#include "run_state.h"

bool rt_run_record(rt_run_state *s, const rt_model *m, const rt_epoch *e, int64_t samples, char *err, size_t len)
{
    int acc = -1;
    for (int k = 0; k < m->nmetrics; k++)
        if (strcmp(m->metrics[k], "correct") == 0)
            acc = k;
    if (s->nrows >= RT_HISTORY_MAX)
        return rt_fail(err, len, "epoch %lld: the history holds at most %d epochs", (long long)e->epoch,
                       RT_HISTORY_MAX);
    if (!rt_history_append(&s->rows, &s->nrows, rt_history_row_of(e, acc, samples)))
        return rt_fail(err, len, "out of memory for the history");
    s->epoch = e->epoch, s->step = e->step;
    return true;
}

bool rt_run_save(const char *path, const rt_model *m, const char *options, const rt_run_state *s, char *err, size_t len)
{
    rt_ckpt_tensor *t = calloc((size_t)(m->nparams ? m->nparams : 1), sizeof *t);
    char *hist = rt_history_text(s->rows, s->nrows);
    bool ok = t && hist;
    if (ok) {
        for (int k = 0; k < m->nparams; k++) {
            t[k] = (rt_ckpt_tensor){m->params[k].name, AG_F32, m->params[k].rank, {0}, m->params[k].data};
            memcpy(t[k].dims, m->params[k].dims, sizeof t[k].dims);
        }
        char ep[32], st[32], sd[32], lr[40], wd[40], bt[32], sched[200], ac[32], cn[40];
        snprintf(ac, sizeof ac, "%lld", (long long)(s->accumulate > 1 ? s->accumulate : 1));
        rt_fmt_double(cn, sizeof cn, s->clip_norm);
        rt_schedule_text(&s->schedule, sched, sizeof sched);
        snprintf(ep, sizeof ep, "%lld", (long long)s->epoch);
        snprintf(st, sizeof st, "%llu", (unsigned long long)s->step);
        snprintf(sd, sizeof sd, "%u", s->seed);
        rt_fmt_double(lr, sizeof lr, s->lr);
        rt_fmt_double(wd, sizeof wd, s->wd);
        snprintf(bt, sizeof bt, "%lld", (long long)s->batch);
        rt_ckpt_meta meta[] = {{"format", "aotgrad"},
                               {"model", m->name},
                               {"epoch", ep},
                               {"step", st},
                               {"seed", sd},
                               {"lr", lr},
                               {"wd", wd},
                               {"batch", bt},
                               {"history", hist},
                               {"options", options ? options : ""},
                               {"lr_schedule", sched},
                               {"accumulate", ac},
                               {"clip_norm", cn}};
        ok = rt_ckpt_save(path, t, m->nparams, meta, sizeof meta / sizeof *meta, err, len);
    } else
        rt_fail(err, len, "out of memory");
    free(t);
    free(hist);
    return ok;
}

bool rt_run_read_params(const rt_ckpt *c, const char *path, const rt_model *m, const char *options, int *nmissing,
                        const char **first_missing, char *err, size_t len)
{
    const char *model = rt_ckpt_meta_get(c, "model");
    if (model && strcmp(model, m->name) != 0)
        return rt_fail(err, len, "%s: a checkpoint of model %s, not %s", path, model, m->name);
    const char *made = rt_ckpt_meta_get(c, "options");
    options = options ? options : "";
    if (made && strcmp(made, options) != 0)
        return rt_fail(err, len,
                       "%s: a checkpoint of %s built with options %s, not %s (build the model with --set "
                       "NAME=VALUE to read it)",
                       path, m->name, *made ? made : "(none)", *options ? options : "(none)");
    for (int i = 0; i < c->n; i++) {
        bool known = false;
        for (int k = 0; k < m->nparams && !known; k++)
            known = strcmp(c->t[i].name, m->params[k].name) == 0;
        if (!known)
            return rt_fail(err, len, "%s: tensor %s is not a parameter of %s", path, c->t[i].name, m->name);
    }
    int missing = 0;
    for (int k = 0; k < m->nparams; k++) {
        const rt_param *p = &m->params[k];
        if (p->state && !rt_ckpt_find(c, p->name)) { /* parameters alone: the optimizer starts afresh */
            memset(p->data, 0, (size_t)rt_param_count(p) * sizeof *p->data);
            if (!missing++ && first_missing)
                *first_missing = p->name;
            continue;
        }
        if (!rt_ckpt_read_into(c, path, p->name, AG_F32, p->rank, p->dims, p->data, err, len))
            return false;
    }
    if (nmissing)
        *nmissing = missing;
    return true;
}

static const char *meta_required(const rt_ckpt *c, const char *path, const char *key, char *err, size_t len)
{
    const char *s = rt_ckpt_meta_get(c, key);
    if (!s)
        rt_fail(err, len,
                "%s: no %s in the metadata, so no training state to resume (its parameters still work "
                "with eval and predict --weights)",
                path, key);
    return s;
}

/* a real, as rt_fmt_double writes it: no leading space, finite, lo..hi */
static bool meta_number(const rt_ckpt *c, const char *path, const char *key, double lo, double hi, double *v, char *err,
                        size_t len)
{
    const char *s = meta_required(c, path, key, err, len);
    char *e;
    if (!s)
        return false;
    errno = 0;
    *v = strtod(s, &e);
    if (e == s || *e || errno || isspace((unsigned char)*s) || !(*v >= lo && *v <= hi))
        return rt_fail(err, len, "%s: metadata %s is '%s', expected a number in [%g, %g]", path, key, s, lo, hi);
    return true;
}

/* a whole number as the writer writes it: decimal digits only (no sign, space, point or 0x) */
static bool meta_whole(const rt_ckpt *c, const char *path, const char *key, int64_t lo, int64_t hi, int64_t *v,
                       char *err, size_t len)
{
    const char *s = meta_required(c, path, key, err, len);
    if (!s)
        return false;
    if (!rt_parse_whole(s, strlen(s), hi, v) || *v < lo)
        return rt_fail(err, len, "%s: metadata %s is '%s', expected a whole number from %lld to %lld", path, key, s,
                       (long long)lo, (long long)hi);
    return true;
}

bool rt_run_read_state(const rt_ckpt *c, const char *path, rt_run_state *s, char *err, size_t len)
{
    int64_t st, sd;
    *s = (rt_run_state){0};
    if (!meta_whole(c, path, "epoch", 1, 1000000000, &s->epoch, err, len) ||
        !meta_whole(c, path, "step", 0, 1000000000000000000, &st, err, len) ||
        !meta_whole(c, path, "seed", 0, UINT32_MAX, &sd, err, len) ||
        !meta_number(c, path, "lr", 0, FLT_MAX, &s->lr, err, len) ||
        !meta_number(c, path, "wd", 0, FLT_MAX, &s->wd, err, len) ||
        !meta_whole(c, path, "batch", 1, AG_MAX_BATCH, &s->batch, err, len))
        return false;
    if (st < s->epoch) /* the step after epoch E: every epoch takes a step at least */
        return rt_fail(err, len, "%s: metadata step is %lld at epoch %lld, expected at least one step per epoch", path,
                       (long long)st, (long long)s->epoch);
    s->step = (uint64_t)st, s->seed = (uint32_t)sd;
    const char *sched = rt_ckpt_meta_get(c, "lr_schedule");
    s->schedule = RT_SCHEDULE_DEFAULT;
    if (sched && !rt_schedule_parse(sched, &s->schedule))
        return rt_fail(err, len,
                       "%s: metadata lr_schedule is '%s', expected what --save writes (constant, or cosine "
                       "warmup=W step_epochs=K gamma=G lr_min=M)",
                       path, sched);
    /* the split step's: absent from the checkpoints written before it */
    s->accumulate = 1;
    if ((rt_ckpt_meta_get(c, "accumulate") &&
         !meta_whole(c, path, "accumulate", 1, 1000000, &s->accumulate, err, len)) ||
        (rt_ckpt_meta_get(c, "clip_norm") && !meta_number(c, path, "clip_norm", 0, FLT_MAX, &s->clip_norm, err, len)))
        return false;
    /* the history is for the CSV and the plot; a checkpoint without one resumes without */
    const char *hist = rt_ckpt_meta_get(c, "history");
    return !hist || rt_history_parse(hist, path, s->epoch, &s->rows, &s->nrows, err, len);
}

bool rt_run_continue(const rt_run_state *s, const char *path, rt_run_given given, rt_fit *fit, char *err, size_t len)
{
    if (given.seed && s->seed != fit->seed)
        return rt_fail(err, len, "--seed %u, but %s continues a run of seed %u", fit->seed, path, s->seed);
    char a[200], b[200];
    if (given.schedule &&
        strcmp(rt_schedule_text(&fit->schedule, a, sizeof a), rt_schedule_text(&s->schedule, b, sizeof b)) != 0)
        return rt_fail(err, len, "--lr-schedule %s, but %s continues a run of --lr-schedule %s", a, path, b);
    fit->schedule = s->schedule;
    fit->seed = s->seed;
    fit->lr = given.lr ? fit->lr : s->lr;
    fit->wd = given.wd ? fit->wd : s->wd;
    fit->batch = given.batch ? fit->batch : s->batch;
    fit->accumulate = given.accumulate ? fit->accumulate : s->accumulate;
    fit->clip_norm = given.clip_norm ? fit->clip_norm : s->clip_norm;
    fit->first_epoch = s->epoch + 1;
    fit->first_step = s->step;
    return true;
}

void rt_run_say_fresh_state(FILE *f, const char *who, const char *path, int nmissing, const char *first)
{
    if (nmissing > 0)
        fprintf(f, "%s: %s holds no optimizer state (%s%s): it starts at zero\n", who, path, first,
                nmissing > 1 ? " and the rest" : "");
}
