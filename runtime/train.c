#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fail.h"
#include "checkpoint.h"
#include "train.h"

#define SYNTHETIC_SEED 0x5EEDu /* the data stays put whatever --seed the run takes */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- datasets ---- */

/* "2,-3.4" or "0.01x200" into w; false on a malformed list. */
static bool parse_weights(const char *s, const char *end, rt_truth *t)
{
    t->nw = 0;
    while (s < end) {
        char *e;
        double v = strtod(s, &e);
        if (e == s)
            return false;
        long count = 1;
        if (e < end && *e == 'x') {
            char *f;
            count = strtol(e + 1, &f, 10);
            if (f == e + 1 || count < 1)
                return false;
            e = f;
        }
        if (t->nw + count > (int64_t)(sizeof t->w / sizeof *t->w))
            return false;
        while (count--)
            t->w[t->nw++] = v;
        if (e < end && *e != ',')
            return false;
        s = e < end ? e + 1 : e;
    }
    return t->nw > 0;
}

static bool load_synthetic(const char *spec, rt_dataset *train, rt_dataset *test, rt_truth *truth, char *err,
                           size_t len)
{
    static const char *const keys[] = {"w", "b", "train", "test", "noise"};
    enum { W, B, TRAIN, TEST, NOISE, NKEYS };
    int64_t ntrain = 0, ntest = 0;
    double noise = 0.01;
    bool seen[NKEYS] = {false};
    memset(truth, 0, sizeof *truth);
    for (const char *p = spec + strlen("synthetic-linear"); *p;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, ' ');
        if (!end)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        int key = NKEYS;
        for (int k = 0; eq && k < NKEYS; k++)
            if ((size_t)(eq - p) == strlen(keys[k]) && !strncmp(p, keys[k], (size_t)(eq - p)))
                key = k;
        if (key < NKEYS && seen[key]) /* a second one would silently win */
            return rt_fail(err, len, "data \"%s\": %s= given twice", spec, keys[key]);
        char *e = NULL;
        bool ok = key < NKEYS, finite = true;
        if (key == W) {
            ok = parse_weights(eq + 1, end, truth);
            for (int64_t j = 0; ok && j < truth->nw; j++)
                finite &= isfinite(truth->w[j]) != 0;
        } else if (key == B) {
            truth->b = strtod(eq + 1, &e), ok = e == end, finite = isfinite(truth->b);
        } else if (key == TRAIN) {
            ntrain = strtoll(eq + 1, &e, 10), ok = e == end && ntrain > 0;
        } else if (key == TEST) {
            ntest = strtoll(eq + 1, &e, 10), ok = e == end && ntest >= 0;
        } else if (key == NOISE) {
            noise = strtod(eq + 1, &e), ok = e == end && !(noise < 0), finite = isfinite(noise);
        }
        if (!ok)
            return rt_fail(err, len,
                           "data \"%s\": cannot read '%.*s' (expected w=LIST b=NUMBER train=COUNT [test=COUNT] "
                           "[noise=STD])",
                           spec, (int)(end - p), p);
        if (!finite) /* nan or inf data trains to nan */
            return rt_fail(err, len, "data \"%s\": '%.*s': %s= takes finite numbers", spec, (int)(end - p), p,
                           keys[key]);
        seen[key] = true;
        p = end;
    }
    if (!seen[W] || !seen[B] || !ntrain)
        return rt_fail(err, len, "data \"%s\": needs w=, b= and train=", spec);
    truth->known = true;
    if (!rt_synthetic_linear(truth->w, truth->nw, truth->b, ntrain, noise, SYNTHETIC_SEED, 1, train, err, len))
        return false;
    if (ntest && !rt_synthetic_linear(truth->w, truth->nw, truth->b, ntest, noise, SYNTHETIC_SEED, 2, test, err, len)) {
        rt_dataset_free(train);
        return false;
    }
    return true;
}

/* A loaded set, training or test, against what the model takes. One check for both sets, so
 * that a test set cannot slip past one the training set gets (the loaders check what they
 * can first, with the file and place: an IDX set's image size, a CSV's columns). */
static bool set_fits(const char *spec, const char *set, const rt_dataset *d, int64_t features, int64_t targets,
                     int classes, char *err, size_t len)
{
    if (d->n == 0) /* no test set */
        return true;
    if (d->features != features)
        return rt_fail(err, len, "data %s: the %s set has %lld values a sample, but the model's input takes %lld", spec,
                       set, (long long)d->features, (long long)features);
    if (d->targets != targets)
        return rt_fail(err, len, "data %s: the %s set has %lld targets a sample, but the model takes %lld", spec, set,
                       (long long)d->targets, (long long)targets);
    if ((d->classes > 0) != (classes > 0))
        return rt_fail(err, len, "data %s: the %s set has %s, but the model's target is %s", spec, set,
                       d->classes ? "class labels" : "real-valued targets", classes ? "a class" : "real-valued");
    if (d->classes != classes)
        return rt_fail(err, len, "data %s: the %s set's labels are in 0..%d, but the model's classes 0..%d", spec, set,
                       d->classes - 1, classes - 1);
    return true;
}

bool rt_load_data(const char *spec, const char *label, int64_t features, int64_t targets, int classes,
                  rt_dataset *train, rt_dataset *test, rt_truth *truth, char *err, size_t len)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    memset(truth, 0, sizeof *truth);
    if (!spec)
        return rt_fail(err, len, "no dataset: the model declares none, so give --data");
    if (!*spec)
        return rt_fail(err, len,
                       "empty --data: expected fashion-mnist, a directory of IDX files, TRAIN.csv[,TEST.csv] "
                       "or synthetic-linear ...");
    size_t n = strlen(spec);
    bool ok;
    if (strncmp(spec, "synthetic-linear", 16) == 0 && (spec[16] == ' ' || !spec[16]))
        ok = load_synthetic(spec, train, test, truth, err, len);
    else if (n > 4 && (strstr(spec, ".csv") || strstr(spec, ".CSV"))) {
        char first[4096];
        const char *comma = strchr(spec, ',');
        size_t k = comma ? (size_t)(comma - spec) : n;
        if (k >= sizeof first)
            return rt_fail(err, len, "data: path too long");
        if (k == 0 || (comma && !comma[1])) /* else ": cannot open", naming no file */
            return rt_fail(err, len, "data %s: the %s file's name is empty, expected TRAIN.csv[,TEST.csv]", spec,
                           k == 0 ? "training" : "test");
        memcpy(first, spec, k);
        first[k] = 0;
        ok = rt_load_csv(first, features, targets, classes, label, train, err, len) &&
             (!comma || rt_load_csv(comma + 1, features, targets, classes, label, test, err, len));
    } else if (label) {
        return rt_fail(err, len, "data %s: --label-column %s applies to CSV files", spec, label);
    } else {
        const char *dir = strcmp(spec, "fashion-mnist") == 0 ? RT_FASHION_MNIST_DIR : spec;
        if (classes < 1)
            return rt_fail(err, len, "data %s: IDX files hold class labels, but the model's targets are not classes",
                           spec);
        /* both sets the same way: the image size is checked from each header, before a pixel is read */
        ok = rt_load_mnist_set(dir, true, features, classes, train, err, len) &&
             rt_load_mnist_set(dir, false, features, classes, test, err, len);
    }
    ok = ok && set_fits(spec, "training", train, features, targets, classes, err, len) &&
         set_fits(spec, "test", test, features, targets, classes, err, len);
    if (!ok) {
        rt_dataset_free(train);
        rt_dataset_free(test);
    }
    return ok;
}

/* ---- the loop ---- */

static void gather_rows(const rt_dataset *d, int64_t first, int64_t rows, const int64_t *perm, void *x, void *y)
{
    int64_t idx[1024];
    for (int64_t done = 0; done < rows;) {
        int64_t k = rows - done < 1024 ? rows - done : 1024;
        for (int64_t i = 0; i < k; i++)
            idx[i] = perm ? perm[first + done + i] : first + done + i;
        size_t xs = (size_t)(d->features * (int64_t)(d->x_dtype == AG_U8 ? 1 : 4));
        size_t ys = (size_t)(d->targets * 4);
        rt_gather(d, idx, k, (char *)x + (size_t)done * xs, (char *)y + (size_t)done * ys);
        done += k;
    }
}

size_t rt_array_bytes(int64_t rows, int64_t cols, int64_t esz)
{
    int64_t n;
    if (rows < 0 || cols < 0 || esz < 0 || __builtin_mul_overflow(rows, cols, &n) ||
        __builtin_mul_overflow(n, esz, &n) || (uint64_t)n > SIZE_MAX)
        return SIZE_MAX;
    return (size_t)n;
}

static bool batch_buffers(const rt_dataset *d, int64_t batch, void **x, void **y)
{
    *x = malloc(rt_array_bytes(batch, d->features, d->x_dtype == AG_U8 ? 1 : 4));
    *y = malloc(rt_array_bytes(batch, d->targets, 4));
    return *x && *y;
}

/* The mean loss and per-sample metrics over rows [from, to) of d; with dist, each rank
 * evaluates its share of them and the sums are the ranks' */
static bool evaluate_rows(const rt_model *m, const rt_dataset *d, int64_t from, int64_t to, int64_t batch,
                          rt_dist *dist, double *loss, double *metric, char *err, size_t len)
{
    void *x = NULL, *y = NULL;
    bool ok = batch_buffers(d, batch, &x, &y) || rt_fail(err, len, "out of memory");
    double sums[RT_MAX_METRICS + 1] = {0}; /* loss * rows, then the metrics */
    int64_t all = to - from;
    if (dist && dist->size > 1) {
        int64_t first, rows;
        rt_dist_share(all, dist->rank, dist->size, &first, &rows);
        from += first, to = from + rows;
    }
    for (int64_t first = from; ok && first < to; first += batch) {
        rt_batch b = {.n = to - first < batch ? to - first : batch, .x = x, .y = y};
        gather_rows(d, first, b.n, NULL, x, y);
        ok = m->evaluate(m->ctx, &b, err, len);
        sums[0] += b.loss * (double)b.n;
        for (int k = 0; k < m->nmetrics; k++)
            sums[1 + k] += b.metric[k];
    }
    if (ok && dist && dist->size > 1) /* (a rank that failed exits, ending the job) */
        dist->ops->sum(dist, sums, 1 + m->nmetrics);
    *loss = sums[0] / (double)all;
    for (int k = 0; k < m->nmetrics; k++)
        metric[k] = sums[1 + k] / (double)all;
    free(x);
    free(y);
    return ok;
}

bool rt_evaluate(const rt_model *m, const rt_dataset *d, int64_t batch, double *loss, double *metric, char *err,
                 size_t len)
{
    return evaluate_rows(m, d, 0, d->n, batch, NULL, loss, metric, err, len);
}

/* \r epoch 3/10 [=========>          ] 45%  loss 0.5123  41234 samples/s */
static void progress_bar(FILE *f, int64_t epoch, int64_t epochs, int64_t done, int64_t n, double loss, double rate)
{
    enum { WIDTH = 30 };
    int fill = (int)((double)WIDTH * (double)done / (double)n);
    char bar[WIDTH + 1];
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[WIDTH] = 0;
    fprintf(f, "\r\033[Kepoch %lld/%lld [%s] %3d%%  loss %.4f  %.0f samples/s", (long long)epoch, (long long)epochs,
            bar, (int)(100 * done / n), loss, rate);
    fflush(f);
}

/* "correct" per sample is accuracy, shown as acc */
static const char *shown(const char *metric) { return strcmp(metric, "correct") == 0 ? "acc" : metric; }

static const char *const schedule_kinds[] = {"constant", "step", "cosine"};

const char *rt_schedule_text(const rt_schedule *s, char *buf, size_t len)
{
    if (rt_schedule_is_constant(s)) {
        snprintf(buf, len, "constant");
        return buf;
    }
    char g[40], m[40];
    snprintf(buf, len, "%s warmup=%lld step_epochs=%lld gamma=%s lr_min=%s", schedule_kinds[s->kind],
             (long long)s->warmup, (long long)s->step_epochs, rt_fmt_double(g, sizeof g, s->gamma),
             rt_fmt_double(m, sizeof m, s->lr_min));
    return buf;
}

bool rt_schedule_parse(const char *text, rt_schedule *s)
{
    *s = RT_SCHEDULE_DEFAULT;
    if (strcmp(text, "constant") == 0)
        return true;
    char kind[16], w[32], k[32], g[40], m[40], err[160], back[200];
    int end = -1;
    if (sscanf(text, "%15s warmup=%31[0-9] step_epochs=%31[0-9] gamma=%39s lr_min=%39s%n", kind, w, k, g, m, &end) !=
            5 ||
        end < 0 || text[end])
        return false;
    const char *values[] = {kind, w, k, g, m};
    for (int i = 0; i < 5; i++)
        if (!rt_schedule_take(s, i, values[i], err, sizeof err))
            return false;
    return strcmp(rt_schedule_text(s, back, sizeof back), text) == 0; /* exactly what it writes */
}

double rt_lr_at(const rt_schedule *s, double lr, uint64_t t, int64_t epoch, uint64_t total)
{
    uint64_t w = s->warmup > 0 ? (uint64_t)s->warmup : 0;
    if (t < w)
        return lr * (double)(t + 1) / (double)w;
    if (s->kind == RT_LR_STEP)
        return lr * pow(s->gamma, floor((double)(epoch - 1) / (double)(s->step_epochs > 0 ? s->step_epochs : 1)));
    if (s->kind == RT_LR_COSINE && total > w) {
        double x = (double)(t - w) / (double)(total - w);
        return s->lr_min + (lr - s->lr_min) * (1 + cos(3.14159265358979323846 * (x < 1 ? x : 1))) / 2;
    }
    return lr;
}

bool rt_schedule_take(rt_schedule *s, int k, const char *v, char *err, size_t len)
{
    if (k == 0) {
        for (int i = 0; i < 3; i++)
            if (strcmp(v, schedule_kinds[i]) == 0) {
                s->kind = (rt_lr_kind)i;
                return true;
            }
        const char *near = rt_closest(v, schedule_kinds, 3);
        return rt_fail(err, len, "--lr-schedule takes constant, step or cosine, not '%s'%s%s%s", v,
                       near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
    }
    if (k == 1 || k == 2) {
        int64_t n;
        if (!rt_parse_whole(v, strlen(v), 1000000000, &n) || n < (k == 1 ? 0 : 1))
            return rt_fail(err, len, "%s takes a whole number from %d to 1000000000, not '%s'",
                           k == 1 ? "--warmup-steps" : "--lr-step-epochs", k == 1 ? 0 : 1, v);
        *(k == 1 ? &s->warmup : &s->step_epochs) = n;
        return true;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !(x >= 0 && x <= FLT_MAX))
        return rt_fail(err, len, "%s takes a number from 0 to 3.40282e+38, not '%s'",
                       k == 3 ? "--lr-gamma" : "--lr-min", v);
    *(k == 3 ? &s->gamma : &s->lr_min) = x;
    return true;
}

bool rt_fit_model(const rt_model *m, const rt_dataset *train, const rt_dataset *test, const rt_fit *f, rt_epoch *last,
                  char *err, size_t len)
{
    int64_t *perm = malloc(sizeof *perm * (size_t)train->n);
    void *x = NULL, *y = NULL;
    bool ok = (perm && batch_buffers(train, f->batch, &x, &y)) || rt_fail(err, len, "out of memory");
    uint64_t step = f->first_step;
    int64_t eval_batch = f->eval_batch > 0 ? f->eval_batch : f->batch > 1000 ? f->batch : 1000;
    bool split = f->accumulate > 1 || f->clip_norm > 0;
    int64_t group = f->accumulate > 1 ? f->accumulate : 1, batches = (train->n + f->batch - 1) / f->batch;
    uint64_t updates = (uint64_t)((batches + group - 1) / group); /* an epoch's */
    uint64_t total = (uint64_t)f->epochs * updates;               /* the schedule's T */
    if (ok && split && (!m->apply || m->train_epoch))
        ok = rt_fail(err, len, "--accumulate and --clip-norm need the split train step, which %s",
                     m->train_epoch ? "runs on the CPU only (--device cpu)" : "this model lacks");
    rt_dist *dist = f->dist && f->dist->size > 1 ? f->dist : NULL;
    int64_t rows = 0; /* the split step's, accumulated since its last update */
    for (int64_t epoch = f->first_epoch > 1 ? f->first_epoch : 1; ok && epoch <= f->epochs; epoch++) {
        rt_epoch e = {.epoch = epoch, .test_loss = NAN};
        double t0 = now(), lsum = 0, msum[RT_MAX_METRICS] = {0}, shown_at = t0;
        int64_t mine = 0; /* rows this rank trained on in the epoch (all of them on one process) */
        rt_shuffle(perm, train->n, f->seed, (uint64_t)epoch - 1);
        if (m->train_epoch) { /* the whole epoch at once */
            int64_t bad = -1;
            ok = m->train_epoch(m->ctx, perm, train->n, f, epoch, step, &lsum, msum, &bad, err, len);
            if (ok && bad >= 0)
                ok = rt_fail(err, len, "step %lld (epoch %lld): the loss is not finite; stopping", (long long)bad,
                             (long long)epoch);
            step += (uint64_t)((train->n + f->batch - 1) / f->batch);
        }
        for (int64_t first = 0; ok && !m->train_epoch && first < train->n; first += f->batch, step++) {
            if (f->progress && (!dist || dist->rank == 0) && now() - shown_at >= 0.25) { /* a few times a second */
                shown_at = now();
                progress_bar(f->progress, epoch, f->epochs, first, train->n, lsum / (double)(mine ? mine : 1),
                             (double)first / (shown_at - t0));
            }
            rt_batch b = {.n = train->n - first < f->batch ? train->n - first : f->batch,
                          .x = x,
                          .y = y,
                          .lr = rt_lr_at(&f->schedule, f->lr, step, epoch, total),
                          .wd = f->wd,
                          .seed = f->seed,
                          .step = step};
            if (dist) { /* the rank's share of the global batch: its rows' gradient, weighted by their count */
                b.global_n = b.n;
                rt_dist_share(b.global_n, dist->rank, dist->size, &b.row0, &b.n);
                b.idle = b.n == 0;
                b.n = b.idle ? 1 : b.n;
            }
            gather_rows(train, first + (b.idle ? 0 : b.row0), b.n, perm, x, y); /* idle: any row of the batch */
            int64_t i = first / f->batch;                                       /* the batch's index in the epoch */
            if (!split)
                ok = m->train_step(m->ctx, &b, err, len);
            else if ((ok = m->accumulate(m->ctx, &b, err, len))) {
                rows += dist ? b.global_n : b.n; /* the accumulators are summed over the ranks before apply */
                if ((i + 1) % group == 0 || i + 1 == batches) { /* a group's last batch, or the epoch's */
                    uint64_t t = (uint64_t)(epoch - 1) * updates + (uint64_t)(i / group);
                    rt_apply u = {rows, rt_lr_at(&f->schedule, f->lr, t, epoch, total), f->wd,
                                  f->clip_norm > 0 ? f->clip_norm : INFINITY};
                    ok = m->apply(m->ctx, &u, err, len);
                    rows = 0;
                }
            }
            if (ok && !isfinite(b.loss))
                ok = rt_fail(err, len, "step %llu (epoch %lld): the loss is %s; stopping", (unsigned long long)step,
                             (long long)epoch,
                             isnan(b.loss) ? "nan"
                             : b.loss > 0  ? "inf"
                                           : "-inf"); /* not "-nan" */
            if (b.idle)
                continue;
            mine += b.n;
            lsum += b.loss * (double)b.n;
            for (int k = 0; k < m->nmetrics; k++)
                msum[k] += b.metric[k];
        }
        if (dist && ok) { /* the epoch's figures over every rank's rows (a rank that failed exits, ending the job) */
            double sums[RT_MAX_METRICS + 1] = {lsum};
            memcpy(sums + 1, msum, sizeof *msum * (size_t)m->nmetrics);
            dist->ops->sum(dist, sums, 1 + m->nmetrics);
            lsum = sums[0];
            memcpy(msum, sums + 1, sizeof *msum * (size_t)m->nmetrics);
        }
        if (f->progress && shown_at > t0)
            fprintf(f->progress, "\r\033[K"); /* the bar gives way to the epoch's line */
        if (!ok)
            break;
        e.seconds = now() - t0;
        e.step = step;
        e.train_loss = lsum / (double)train->n;
        for (int k = 0; k < m->nmetrics; k++)
            e.train_metric[k] = msum[k] / (double)train->n, e.test_metric[k] = NAN;
        if (test && test->n > 0)
            ok = evaluate_rows(m, test, 0, test->n, eval_batch, dist, &e.test_loss, e.test_metric, err, len);
        if (!ok)
            break;
        fprintf(f->log, "epoch %lld/%lld  train_loss %.4f", (long long)epoch, (long long)f->epochs, e.train_loss);
        for (int k = 0; k < m->nmetrics; k++)
            fprintf(f->log, "  train_%s %.4f", shown(m->metrics[k]), e.train_metric[k]);
        if (test && test->n > 0) {
            if (m->nmetrics == 0)
                fprintf(f->log, "  test_loss %.4f", e.test_loss);
            for (int k = 0; k < m->nmetrics; k++)
                fprintf(f->log, "  test_%s %.4f", shown(m->metrics[k]), e.test_metric[k]);
        }
        fprintf(f->log, "  %.3fs  %.0f samples/s\n", e.seconds,
                (double)train->n / e.seconds); /* to the ms: epochs can be 0.1 s */
        fflush(f->log);
        *last = e;
        if (f->on_epoch)
            ok = f->on_epoch(f->ctx, &e, err, len);
    }
    free(perm);
    free(x);
    free(y);
    return ok;
}

/* ---- parameters ---- */

void rt_print_small_params(const rt_model *m, const rt_truth *truth, FILE *f)
{
    for (int i = 0; i < m->nparams; i++) {
        const rt_param *p = &m->params[i];
        int64_t n = rt_param_count(p);
        if (n > 8 || p->state) /* the optimizer's state is no result */
            continue;
        fprintf(f, "%-8s [", p->name);
        for (int64_t k = 0; k < n; k++)
            fprintf(f, "%s%.6g", k ? ", " : "", p->data[k]);
        fprintf(f, "]");
        bool is_w = strcmp(p->name, "w") == 0 && truth->nw == n, is_b = strcmp(p->name, "b") == 0 && n == 1;
        if (truth->known && (is_w || is_b)) {
            fprintf(f, "  true [");
            for (int64_t k = 0; k < n; k++)
                fprintf(f, "%s%.6g", k ? ", " : "", is_w ? truth->w[k] : truth->b);
            double err = 0;
            for (int64_t k = 0; k < n; k++)
                err = fmax(err, fabs(p->data[k] - (is_w ? truth->w[k] : truth->b)));
            fprintf(f, "]  max error %.6f", err);
        }
        fprintf(f, "\n");
    }
}
