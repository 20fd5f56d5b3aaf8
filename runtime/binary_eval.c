/* The standalone binary's eval and predict commands: the parameters of a checkpoint
 * (--weights) on a dataset's test set, or on the samples of an input file. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "binary_internal.h"
#include "checkpoint.h"
#include "cuda.h"
#include "image.h"

int rt_bin_eval(const rt_compiled *m, const opts *o)
{
    char err[2048];
    bin b;
    rt_dataset train = {0}, test = {0};
    rt_ckpt c = {0};
    int rc = 1;
    const char *spec = o->data ? o->data : m->data;
    int64_t rows = o->has_batch ? o->batch : m->batch;
    if (rt_bin_open(&b, m, o->threads, rows, err, sizeof err) && rt_bin_choose_device(&b, o, err, sizeof err) &&
        rt_bin_load_checkpoint(&b, o->weights, &c, NULL, NULL, err, sizeof err) &&
        rt_bin_load_data(&b, spec, o->label, &train, &test, err, sizeof err) &&
        (!b.gpu || rt_cuda_put_params(b.gpu, b.params, err, sizeof err))) {
        const rt_dataset *d = test.n > 0 ? &test : &train;
        /* one file given (--data test.csv) is the set to evaluate: the test set; a dataset
         * without a test split (synthetic data) is evaluated on its training set, said so */
        struct stat st;
        bool one_file = test.n == 0 && !strchr(spec, ',') && stat(spec, &st) == 0 && S_ISREG(st.st_mode);
        bool is_test = d == &test || one_file;
        rt_model rm = rt_bin_as_model(&b);
        double loss, metric[RT_MAX_METRICS];
        if (rt_evaluate(&rm, d, rows, &loss, metric, err, sizeof err)) {
            printf("%s: %s of %s (%lld samples): %s_loss %.4f", m->name, is_test ? "test set" : "training set", spec,
                   (long long)d->n, is_test ? "test" : "train", loss);
            for (int k = 0; k < rm.nmetrics; k++)
                printf("  %s_%s %.4f", is_test ? "test" : "train",
                       strcmp(rm.metrics[k], "correct") == 0 ? "acc" : rm.metrics[k], metric[k]);
            printf("\n");
            rc = 0;
        }
    }
    if (rc)
        rt_bin_fail(m, err);
    rt_ckpt_free(&c);
    rt_dataset_free(&train);
    rt_dataset_free(&test);
    rt_bin_close(&b);
    return rc;
}

static void print_class(const rt_compiled *m, int64_t k)
{
    if (k >= 0 && k < m->nclass_names)
        printf("%s", m->class_names[k]);
    else
        printf("%lld", (long long)k);
}

/* Sample i's class: the index the model predicts (per 1), or the first largest of its scores
 * (per = classes); with top K, the K likeliest, each with its probability: the softmax of
 * the scores, or the scores themselves where they are one already (each in [0, 1], summing
 * to 1 within 1e-4). */
static void print_classes(const rt_compiled *m, const char *base, ag_dtype t, int64_t i, int64_t per, int64_t top)
{
    if (per == 1 || top == 0) {
        int64_t best = 0;
        if (per == 1)
            best = (int64_t)rt_elem_get(base, t, i);
        else
            for (int64_t k = 1; k < per; k++)
                if (rt_elem_get(base, t, i * per + k) > rt_elem_get(base, t, i * per + best))
                    best = k;
        print_class(m, best);
        printf(per == 1 && top ? " 1\n" : "\n"); /* a class index has no scores: certain */
        return;
    }
    double p[4096], most = -INFINITY, sum = 0, raw = 0;
    bool distribution = per <= 4096;
    for (int64_t k = 0; k < per && k < 4096; k++) {
        p[k] = rt_elem_get(base, t, i * per + k);
        most = p[k] > most ? p[k] : most;
        distribution &= p[k] >= 0 && p[k] <= 1;
        raw += p[k];
    }
    distribution &= fabs(raw - 1) <= 1e-4;
    for (int64_t k = 0; k < per && !distribution; k++)
        sum += p[k] = exp(p[k] - most);
    for (int64_t k = 0; k < per && !distribution; k++)
        p[k] /= sum;
    for (int64_t shown = 0; shown < top && shown < per; shown++) {
        int64_t best = -1;
        for (int64_t k = 0; k < per; k++)
            if (p[k] >= 0 && (best < 0 || p[k] > p[best]))
                best = k;
        printf("%s", shown ? "  " : "");
        print_class(m, best);
        printf(" %.3f", p[best]);
        p[best] = -1; /* taken */
    }
    printf("\n");
}

int rt_bin_predict(const rt_compiled *m, const opts *o)
{
    if (!m->trains)
        return rt_bin_predict_forward(m, o);
    char err[2048];
    bin b;
    rt_dataset in = {0};
    rt_ckpt c = {0};
    int rc = 1;
    const rt_compiled_entry *e = &m->forward;
    int64_t rows = o->has_batch ? o->batch : m->batch;
    void *y = rt_bin_aligned(rt_array_bytes(rows, m->targets > 0 ? m->targets : 1, 4));
    if (!e->predict.name)
        snprintf(err, sizeof err, "the model declares no predictions (ag_minimize's .predict)");
    else if (!y)
        snprintf(err, sizeof err, "out of memory");
    else if (rt_bin_open(&b, m, o->threads, rows, err, sizeof err) && rt_bin_choose_device(&b, o, err, sizeof err) &&
             rt_bin_load_checkpoint(&b, o->weights, &c, NULL, NULL, err, sizeof err) &&
             rt_load_predict_input(o->input, m->features, &in, err, sizeof err) &&
             rt_dataset_x_fits(&in, e->x_dtype, o->input, err, sizeof err) &&
             (!b.gpu || rt_cuda_put_params(b.gpu, b.params, err, sizeof err))) {
        b.data_x = in.x_dtype;
        int64_t per = e->predict.numel, rowbytes = in.features * rt_elem_size(in.x_dtype);
        char *pred = b.gpu ? rt_bin_aligned(rt_array_bytes(rows, per, rt_elem_size(e->predict.dtype))) : NULL;
        bool ok = !b.gpu || pred;
        for (int64_t first = 0; ok && first < in.n; first += rows) {
            rt_batch rb = {
                .n = in.n - first < rows ? in.n - first : rows, .x = (const char *)in.x + first * rowbytes, .y = y};
            if (b.gpu) {
                rb.x = rt_bin_model_x(&b, &rb, e->x_dtype);
                ok = rt_cuda_forward(b.gpu, &rb, pred, err, sizeof err);
                if (!ok)
                    break;
            } else
                rt_bin_run_entry(&b, e, b.fwd_arena, &rb, NULL);
            const char *base =
                b.gpu ? pred : (e->predict.in_params ? b.params : b.fwd_arena) + rt_value_offset(&e->predict, rb.n);
            for (int64_t i = 0; i < rb.n; i++) {
                if (m->classes > 0 && (per == m->classes || per == 1))
                    print_classes(m, base, e->predict.dtype, i, per, o->top);
                else {
                    for (int64_t k = 0; k < per; k++)
                        printf("%s%.6g", k ? " " : "", rt_elem_get(base, e->predict.dtype, i * per + k));
                    printf("\n");
                }
            }
        }
        if (!ok && b.gpu && !pred)
            snprintf(err, sizeof err, "out of memory");
        rc = ok && fflush(stdout) == 0 ? 0 : 1;
        if (rc && ok)
            snprintf(err, sizeof err, "cannot write the predictions: %s", strerror(errno));
        free(pred);
    }
    if (rc)
        rt_bin_fail(m, err);
    free(y);
    rt_ckpt_free(&c);
    rt_dataset_free(&in);
    if (e->predict.name && y)
        rt_bin_close(&b);
    return rc;
}
