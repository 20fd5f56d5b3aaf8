/* The standalone binary's train command: the training loop (runtime/train.c) over the model,
 * from its initial parameters or from a checkpoint's training state (--resume: the same run,
 * bit for bit), with a checkpoint, the metrics and the plot written after every epoch. */
#define _GNU_SOURCE
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
#include "run_state.h"

typedef struct run_state {
    bin *b;
    const char *save, *metrics, *plot;
    rt_run_state at;  /* the run after its last finished epoch: what --save writes */
    const char *good; /* the last good checkpoint: the last one written, or the one resumed */
    int64_t good_epoch;
    int64_t samples;  /* training samples per epoch */
    int64_t finished; /* epochs finished in this run */
    bool save_failed; /* the last epoch finished, but writing its checkpoint did not */
} run_state;

/* ---- the command ---- */

static bool on_epoch(void *ctx, const rt_epoch *e, char *err, size_t len)
{
    run_state *s = ctx;
    const rt_model rm = rt_bin_as_model(s->b);
    s->finished++;
    if (s->b->dist && s->b->dist->rank > 0)
        return true; /* rank 0 alone writes */
    if (!rt_run_record(&s->at, &rm, e, s->samples, err, len))
        return false;
    if (s->b->gpu && !rt_cuda_get_params(s->b->gpu, s->b->params, err, len))
        return false;
    if (s->save) {
        if (!rt_run_save(s->save, &rm, s->b->m->options, &s->at, err, len))
            return s->save_failed = true, false;
        s->good = s->save, s->good_epoch = e->epoch;
    }
    if (s->metrics && !rt_write_metrics_csv(s->metrics, s->at.rows, s->at.nrows, err, len))
        return false;
    if (s->plot && !rt_write_plot_svg(s->plot, s->b->m->name, s->at.rows, s->at.nrows, err, len))
        return false;
    return true;
}

static const char *device_name(const bin *b) { return b->gpu ? rt_cuda_device_name(b->gpu) : "cpu"; }

/* What every rank of a distributed run must share: the model as compiled and the options that
 * shape the run (not --threads, nor where rank 0 writes; --check-ranks adds collectives) */
static uint64_t run_hash(const rt_compiled *m, const opts *o, const rt_fit *fit, const char *spec)
{
    uint64_t h = RT_HASH_START;
    const char *texts[] = {AG_VERSION,
                           m->name,
                           m->source,
                           m->options,
                           spec ? spec : "",
                           o->resume ? o->resume : "",
                           o->label ? o->label : ""};
    for (size_t k = 0; k < sizeof texts / sizeof *texts; k++)
        h = rt_hash_bytes(h, texts[k], strlen(texts[k]) + 1);
    for (int k = 0; k < m->nparams; k++) {
        h = rt_hash_bytes(h, m->params[k].name, strlen(m->params[k].name) + 1);
        h = rt_hash_bytes(h, m->params[k].dims, sizeof m->params[k].dims);
    }
    for (int k = 0; k < m->train.nsteps; k++)
        h = rt_hash_bytes(h, m->train.steps[k].what, strlen(m->train.steps[k].what) + 1);
    double numbers[] = {(double)fit->epochs,
                        (double)fit->batch,
                        fit->lr,
                        fit->wd,
                        (double)fit->seed,
                        (double)fit->accumulate,
                        fit->clip_norm,
                        (double)fit->schedule.kind,
                        (double)fit->schedule.warmup,
                        (double)fit->schedule.step_epochs,
                        fit->schedule.gamma,
                        fit->schedule.lr_min,
                        (double)m->param_bytes,
                        (double)o->check_ranks,
                        o->timeout};
    return rt_hash_bytes(h, numbers, sizeof numbers);
}

/* A distributed build under mpirun: joins the job; the other ranks print nothing (their
 * errors aside) and every rank checks that all run the same binary with the same options */
static bool join(bin *b, const rt_compiled *m, const opts *o, const rt_fit *fit, char *err, size_t len)
{
    if (!m->dist)
        return true;
    if (!(b->dist = m->dist->open(NULL, NULL, o->timeout, o->nccl_id, err, len)))
        return false;
    b->check_ranks = o->check_ranks;
    /* the cores this rank may run on (mpirun binds a rank to one), and at most its share of the
     * machine's */
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN) / (b->dist->local > 1 ? b->dist->local : 1);
    threads = threads < rt_cpu_count() ? threads : rt_cpu_count();
    threads = threads > 1 ? threads : 1;
    if (!o->has_threads && threads != rt_pool_threads(b->pool)) { /* the machine's cores shared by its ranks */
        rt_pool_free(b->pool);
        if (threads > 1 && !(b->pool = rt_pool_new(threads)))
            return rt_fail(err, len, "cannot start %d threads", threads);
        if (threads == 1)
            b->pool = NULL;
        rt_pool_bind_blas(b->pool);
    }
    if (b->dist->rank > 0 && !freopen("/dev/null", "w", stdout))
        return rt_fail(err, len, "rank %d: cannot silence its output", b->dist->rank);
    int differs = -1;
    if (!b->dist->ops->same(b->dist, run_hash(m, o, fit, o->data ? o->data : m->data), &differs) && b->dist->rank > 0)
        return b->refused = true, err[0] = 0, false; /* rank 0 says it, once */
    b->refused = differs >= 0;                       /* every rank knows: each ends by itself, none aborts the others */
    if (differs >= 0)
        return rt_fail(err, len,
                       "rank %d of %d runs another binary or other options than rank 0: every rank must run the "
                       "same binary with the same train options (--threads aside)",
                       differs, b->dist->size);
    return true;
}

/* After a distributed run: what the sums cost a step, and what the overlap hid (a collective) */
static void say_sums(const rt_compiled *m, bin *b, uint64_t steps)
{
    if (!b->dist || b->dist->size < 2 || !steps || b->gpu) /* the GPU's sums are NCCL's, not timed here */
        return;
    double waited = b->dist->wait_seconds / (double)steps, alone = b->dist->ops->probe(b->dist),
           hid = alone > 0 ? 1 - waited / alone : 0;
    printf("%s: allreduce: %.3f ms a step waited on; a step's sums alone take %.3f ms: the overlap hid %.0f%%\n",
           m->name, 1e3 * waited, 1e3 * alone, 100 * (hid < 0 ? 0 : hid));
}

/* The output paths before any work: a missing folder, a FIFO or a device at one of them
 * would otherwise end the run after its first epoch, or be replaced by a regular file */
static bool outputs_ok(const opts *o, char *err, size_t len)
{
    const char *outputs[][2] = {{"--save", o->save}, {"--metrics", o->metrics}, {"--plot", o->plot}};
    for (int k = 0; k < 3; k++) {
        char why[2000];
        if (outputs[k][1] && !rt_check_output_path(outputs[k][1], true, why, sizeof why))
            return rt_fail(err, len, "%s %s", outputs[k][0], why);
    }
    return true;
}

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
                  .schedule = o->schedule,
                  .accumulate = o->accumulate,
                  .clip_norm = o->clip_norm,
                  .log = stdout,
                  .progress = isatty(STDERR_FILENO) ? stderr : NULL,
                  .on_epoch = on_epoch,
                  .ctx = &s};
    if (!join(&b, m, o, &fit, err, sizeof err))
        goto out;
    fit.dist = b.dist;
    if ((!b.dist || b.dist->rank == 0) && !outputs_ok(o, err, sizeof err)) /* rank 0 alone writes */
        goto out;
    if (o->resume) {
        rt_run_given given = {o->has_seed,     o->has_lr,         o->has_wd,       o->has_batch,
                              o->has_schedule, o->has_accumulate, o->has_clip_norm};
        int fresh = 0;
        const char *first = NULL;
        if (!rt_bin_load_checkpoint(&b, o->resume, &c, &fresh, &first, err, sizeof err) ||
            !rt_run_read_state(&c, o->resume, &s.at, err, sizeof err) ||
            !rt_run_continue(&s.at, o->resume, given, &fit, err, sizeof err))
            goto out;
        s.good = o->resume, s.good_epoch = s.at.epoch;
        if (fit.first_epoch > fit.epochs) {
            printf("%s: %s is at epoch %lld already; nothing to train (give --epochs above it)\n", m->name, o->resume,
                   (long long)s.at.epoch);
            rc = 0;
            goto out;
        }
        printf("%s: resuming %s at epoch %lld (step %llu)\n", m->name, o->resume, (long long)fit.first_epoch,
               (unsigned long long)fit.first_step);
        rt_run_say_fresh_state(stdout, m->name, o->resume, fresh, first);
    } else if (!rt_bin_init_params(&b, fit.seed, err, sizeof err))
        goto out;
    /* arenas for the batch in use (a resumed run's may differ), then the device */
    fit.eval_batch = fit.batch;
    if ((fit.batch != b.rows && !rt_bin_set_rows(&b, fit.batch, err, sizeof err)) ||
        !rt_bin_choose_device(&b, o, err, sizeof err))
        goto out;
    s.at.seed = fit.seed, s.at.batch = fit.batch, s.at.lr = fit.lr, s.at.wd = fit.wd, s.at.schedule = fit.schedule;
    s.at.accumulate = fit.accumulate, s.at.clip_norm = fit.clip_norm;
    bool split = fit.accumulate > 1 || fit.clip_norm > 0;
    if (split && (b.gpu || !m->accumulate.fn)) {
        snprintf(err, sizeof err, "--accumulate and --clip-norm run the split train step, which %s%.1500s",
                 b.gpu ? "runs on the CPU only: add --device cpu" : "this binary lacks: ", b.gpu ? "" : m->no_split);
        goto out;
    }
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
    if (b.gpu && rt_cuda_ranks(b.gpu) > 0)
        snprintf(where, sizeof where, "%d rank%s on GPUs (NCCL): rank 0 on %s", rt_cuda_ranks(b.gpu),
                 rt_cuda_ranks(b.gpu) > 1 ? "s" : "", device_name(&b));
    else if (b.gpu)
        snprintf(where, sizeof where, "on %s", device_name(&b));
    else if (b.dist && b.dist->size > 1)
        snprintf(where, sizeof where, "%d ranks of %d thread%s (MPI)", b.dist->size, threads, threads > 1 ? "s" : "");
    else
        snprintf(where, sizeof where, "%d thread%s", threads, threads > 1 ? "s" : "");
    char more[120] = ""; /* the split step's, where it runs */
    if (fit.accumulate > 1)
        snprintf(more, sizeof more, " (accumulated over %lld: %lld a step)", (long long)fit.accumulate,
                 (long long)(fit.accumulate * fit.batch));
    if (fit.clip_norm > 0)
        snprintf(more + strlen(more), sizeof more - strlen(more), ", clip-norm %g", fit.clip_norm);
    printf("%s: training on %s: %lld samples, %lld test; batch %lld%s, lr %g, wd %g, %lld epoch%s, seed %u, %s\n",
           m->name, spec, (long long)train.n, (long long)test.n, (long long)fit.batch, more, fit.lr, fit.wd,
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
    say_sums(m, &b, last.step - fit.first_step);
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
    free(s.at.rows);
    rt_ckpt_free(&c);
    rt_dataset_free(&train);
    rt_dataset_free(&test);
    rt_dist *dist = b.dist;
    bool refused = b.refused;
    rt_bin_close(&b);
    if (dist && rc && dist->size > 1 && !refused) /* the others may wait for this rank's sums: end them too */
        dist->ops->abort(dist, rc);
    if (dist)
        dist->ops->close(dist);
    return rc;
}
