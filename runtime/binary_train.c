/* The standalone binary's train command: the training loop (runtime/train.c) over the model,
 * from its initial parameters or from a checkpoint's training state (--resume: the same run,
 * bit for bit), with a checkpoint, the metrics and the plot written after every epoch. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binary_internal.h"
#include "checkpoint.h"
#include "cuda.h"
#include "fail.h"
#include "history.h"

/* ---- checkpoints ---- */

typedef struct history {
    int n;
    rt_history_row *rows;
} history;

typedef struct run_state {
    bin *b;
    const char *save, *metrics, *plot;
    uint32_t seed;
    int64_t batch;
    double lr, wd;
    history h;
    const char *good; /* the last good checkpoint: the last one written, or the one resumed */
    int64_t good_epoch;
    int64_t samples;  /* training samples per epoch */
    int64_t finished; /* epochs finished in this run */
    bool save_failed; /* the last epoch finished, but writing its checkpoint did not */
} run_state;

static bool save_checkpoint(run_state *s, int64_t epoch, uint64_t step, char *err, size_t len)
{
    const rt_compiled *m = s->b->m;
    rt_ckpt_tensor *t = calloc((size_t)(m->nparams ? m->nparams : 1), sizeof *t);
    char *hist = rt_history_text(s->h.rows, s->h.n);
    char ep[32], st[32], sd[32], lr[40], wd[40], bt[32];
    snprintf(ep, sizeof ep, "%lld", (long long)epoch);
    snprintf(st, sizeof st, "%llu", (unsigned long long)step);
    snprintf(sd, sizeof sd, "%u", s->seed);
    rt_fmt_double(lr, sizeof lr, s->lr);
    rt_fmt_double(wd, sizeof wd, s->wd);
    snprintf(bt, sizeof bt, "%lld", (long long)s->batch);
    bool ok = t && hist;
    if (ok) {
        for (int k = 0; k < m->nparams; k++) {
            t[k] = (rt_ckpt_tensor){m->params[k].name, AG_F32, m->params[k].rank, {0}, s->b->rp[k].data};
            memcpy(t[k].dims, m->params[k].dims, sizeof t[k].dims);
        }
        /* the RNG state is (seed, epoch, step): the shuffles are a function of (seed, epoch),
         * dropout's masks of (seed, step) */
        rt_ckpt_meta meta[] = {{"format", "aotgrad"},
                               {"model", m->name},
                               {"epoch", ep},
                               {"step", st},
                               {"seed", sd},
                               {"lr", lr},
                               {"wd", wd},
                               {"batch", bt},
                               {"history", hist},
                               {"options", m->options}};
        ok = rt_ckpt_save(s->save, t, m->nparams, meta, 10, err, len);
    } else
        rt_fail(err, len, "out of memory");
    free(t);
    free(hist);
    return ok;
}

/* ---- resuming: the training state in a checkpoint's metadata ---- */

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

/* ---- the command ---- */

static bool on_epoch(void *ctx, const rt_epoch *e, char *err, size_t len)
{
    run_state *s = ctx;
    const rt_model rm = rt_bin_as_model(s->b);
    int acc = -1;
    for (int k = 0; k < rm.nmetrics; k++)
        if (strcmp(rm.metrics[k], "correct") == 0)
            acc = k;
    rt_history_row r = rt_history_row_of(e, acc, s->samples);
    s->finished++;
    if (s->h.n >= RT_HISTORY_MAX)
        return rt_fail(err, len, "epoch %lld: the history holds at most %d epochs", (long long)e->epoch,
                       RT_HISTORY_MAX);
    if (!rt_history_append(&s->h.rows, &s->h.n, r))
        return rt_fail(err, len, "out of memory");
    if (s->b->gpu && !rt_cuda_get_params(s->b->gpu, s->b->params, err, len))
        return false;
    if (s->save) {
        if (!save_checkpoint(s, e->epoch, e->step, err, len))
            return s->save_failed = true, false;
        s->good = s->save, s->good_epoch = e->epoch;
    }
    if (s->metrics && !rt_write_metrics_csv(s->metrics, s->h.rows, s->h.n, err, len))
        return false;
    if (s->plot && !rt_write_plot_svg(s->plot, s->b->m->name, s->h.rows, s->h.n, err, len))
        return false;
    return true;
}

static const char *device_name(const bin *b) { return b->gpu ? rt_cuda_device_name(b->gpu) : "cpu"; }

int rt_bin_train(const rt_compiled *m, const opts *o)
{
    char err[2048];
    bin b;
    rt_dataset train = {0}, test = {0};
    rt_ckpt c = {0};
    run_state s = {.b = &b, .save = o->save, .metrics = o->metrics, .plot = o->plot};
    int rc = 1;
    if (!rt_bin_open(&b, m, o->threads, o->has_batch ? o->batch : m->batch, err, sizeof err))
        goto out;
    rt_fit fit = {.epochs = o->epochs ? o->epochs : m->epochs,
                  .batch = o->has_batch ? o->batch : m->batch,
                  .lr = o->has_lr ? o->lr : m->lr,
                  .wd = o->has_wd ? o->wd : m->wd,
                  .seed = o->seed,
                  .log = stdout,
                  .progress = isatty(STDERR_FILENO) ? stderr : NULL,
                  .on_epoch = on_epoch,
                  .ctx = &s};
    /* the output paths before any work: a missing folder, a FIFO or a device at one of them
     * would otherwise end the run after its first epoch, or be replaced by a regular file */
    const char *outputs[][2] = {{"--save", o->save}, {"--metrics", o->metrics}, {"--plot", o->plot}};
    for (int k = 0; k < 3; k++) {
        char why[sizeof err - 16];
        if (outputs[k][1] && !rt_check_output_path(outputs[k][1], true, why, sizeof why)) {
            snprintf(err, sizeof err, "%s %s", outputs[k][0], why);
            goto out;
        }
    }
    if (o->resume) {
        int64_t ep, st, sd, bt;
        double lr, wd;
        if (!rt_bin_load_checkpoint(&b, o->resume, &c, err, sizeof err) ||
            !meta_whole(&c, o->resume, "epoch", 1, 1000000000, &ep, err, sizeof err) ||
            !meta_whole(&c, o->resume, "step", 0, 1000000000000000000, &st, err, sizeof err) ||
            !meta_whole(&c, o->resume, "seed", 0, UINT32_MAX, &sd, err, sizeof err) ||
            !meta_number(&c, o->resume, "lr", 0, FLT_MAX, &lr, err, sizeof err) ||
            !meta_number(&c, o->resume, "wd", 0, FLT_MAX, &wd, err, sizeof err) ||
            !meta_whole(&c, o->resume, "batch", 1, AG_MAX_BATCH, &bt, err, sizeof err))
            goto out;
        if (st < ep) { /* the step after epoch E: every epoch takes a step at least */
            snprintf(err, sizeof err, "%s: metadata step is %lld at epoch %lld, expected at least one step per epoch",
                     o->resume, (long long)st, (long long)ep);
            goto out;
        }
        /* the history is for the CSV and the plot; a checkpoint without one resumes without */
        const char *hist = rt_ckpt_meta_get(&c, "history");
        if (hist && !rt_history_parse(hist, o->resume, ep, &s.h.rows, &s.h.n, err, sizeof err))
            goto out;
        if (o->has_seed && (uint32_t)sd != o->seed) {
            snprintf(err, sizeof err, "--seed %u, but %s continues a run of seed %u", o->seed, o->resume, (uint32_t)sd);
            goto out;
        }
        fit.seed = (uint32_t)sd;
        fit.lr = o->has_lr ? o->lr : lr;
        fit.wd = o->has_wd ? o->wd : wd;
        fit.batch = o->has_batch ? o->batch : bt;
        fit.first_epoch = ep + 1;
        fit.first_step = (uint64_t)st;
        s.good = o->resume, s.good_epoch = ep;
        if (fit.first_epoch > fit.epochs) {
            printf("%s: %s is at epoch %lld already; nothing to train (give --epochs above it)\n", m->name, o->resume,
                   (long long)ep);
            rc = 0;
            goto out;
        }
        printf("%s: resuming %s at epoch %lld (step %llu)\n", m->name, o->resume, (long long)fit.first_epoch,
               (unsigned long long)fit.first_step);
    } else if (!rt_bin_init_params(&b, fit.seed, err, sizeof err))
        goto out;
    /* arenas for the batch in use (a resumed run's may differ), then the device */
    fit.eval_batch = fit.batch;
    if ((fit.batch != b.rows && !rt_bin_set_rows(&b, fit.batch, err, sizeof err)) ||
        !rt_bin_choose_device(&b, o, err, sizeof err))
        goto out;
    s.seed = fit.seed, s.batch = fit.batch, s.lr = fit.lr, s.wd = fit.wd;
    const char *spec = o->data ? o->data : m->data;
    if (!rt_bin_load_data(&b, spec, o->label, &train, &test, err, sizeof err))
        goto out;
    if (b.gpu &&
        (!rt_dataset_x_as(&train, m->train.x_dtype, err, sizeof err) ||
         !rt_dataset_x_as(&test, m->train.x_dtype, err, sizeof err) ||
         !rt_cuda_put_dataset(b.gpu, &train, err, sizeof err) || !rt_cuda_put_params(b.gpu, b.params, err, sizeof err)))
        goto out;
    if (b.gpu)
        b.data_x = train.x_dtype;
    char where[300];
    int threads = rt_pool_threads(b.pool);
    if (b.gpu)
        snprintf(where, sizeof where, "on %s", device_name(&b));
    else
        snprintf(where, sizeof where, "%d thread%s", threads, threads > 1 ? "s" : "");
    printf("%s: training on %s: %lld samples, %lld test; batch %lld, lr %g, wd %g, %lld epoch%s, seed %u, %s\n",
           m->name, spec, (long long)train.n, (long long)test.n, (long long)fit.batch, fit.lr, fit.wd,
           (long long)fit.epochs, fit.epochs == 1 ? "" : "s", fit.seed, where);
    fflush(stdout);
    s.samples = train.n;
    rt_model rm = rt_bin_as_model(&b);
    rt_epoch last = {0};
    if (!rt_fit_model(&rm, &train, &test, &fit, &last, err, sizeof err)) {
        if (!s.good && s.save_failed) /* the epoch finished: its save is what failed */
            fprintf(stderr, "%s: error: no checkpoint was written: %s\n", m->name, err);
        else
            fprintf(stderr, "%s: error: %s\n", m->name, err);
        if (s.good)
            fprintf(stderr, "%s: the last good checkpoint is %s (epoch %lld)\n", m->name, s.good,
                    (long long)s.good_epoch);
        else if (o->save && !s.finished)
            fprintf(stderr, "%s: no checkpoint was written (no epoch finished)\n", m->name);
        else if (o->save && !s.save_failed)
            fprintf(stderr, "%s: no checkpoint was written (epoch %lld finished, but not its save)\n", m->name,
                    (long long)last.epoch);
        err[0] = 0;
        goto out;
    }
    int acc = -1;
    for (int k = 0; k < rm.nmetrics; k++)
        if (strcmp(rm.metrics[k], "correct") == 0)
            acc = k;
    if (test.n > 0 && acc >= 0)
        printf("%s: test accuracy %.4f after %lld epoch%s\n", m->name, last.test_metric[acc], (long long)last.epoch,
               last.epoch == 1 ? "" : "s");
    else if (test.n > 0)
        printf("%s: test loss %.6g after %lld epoch%s\n", m->name, last.test_loss, (long long)last.epoch,
               last.epoch == 1 ? "" : "s");
    rt_truth none = {0};
    rt_print_small_params(&rm, &none, stdout);
    if (o->save)
        printf("checkpoint: %s\n", o->save);
    if (o->metrics)
        printf("metrics: %s\n", o->metrics);
    if (o->plot)
        printf("plot: %s\n", o->plot);
    rc = 0;
out:
    if (rc && err[0])
        rt_bin_fail(m, err);
    free(s.h.rows);
    rt_ckpt_free(&c);
    rt_dataset_free(&train);
    rt_dataset_free(&test);
    rt_bin_close(&b);
    return rc;
}
