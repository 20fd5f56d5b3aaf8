/* The standalone binary of a forward computation (a graph without training): its inputs by
 * name and dtype (entry.in), from files or seeded random values, and predict, which prints
 * every output of each sample. bench times it through rt_bin_call (binary_bench.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binary_internal.h"
#include "fail.h"
#include "image.h"

void rt_bin_call(bin *b, const rt_compiled_entry *e, char *arena, void *const *in, int64_t n, uint64_t step,
                 void *profile)
{
    ag_args a = {arena, b->params, in, NULL, n, 1, step, b->pool, profile, 0, NULL};
    e->fn(&a);
}

/* rows of input k: n samples when batched, else one */
static int64_t rows_of(const rt_compiled_value *v, int64_t n) { return v->batched ? n : 1; }

bool rt_bin_random_inputs(const rt_compiled_entry *e, int64_t n, uint32_t seed, void **in, char *err, size_t len)
{
    uint64_t r = 0x9e3779b97f4a7c15u ^ ((uint64_t)seed << 17);
    for (int k = 0; k < e->ninputs; k++) {
        const rt_compiled_value *v = &e->in[k];
        int64_t count = rows_of(v, n) * v->numel;
        in[k] = rt_bin_aligned(rt_array_bytes(rows_of(v, n), v->numel, rt_elem_size(v->dtype)));
        if (!in[k])
            return rt_fail(err, len, "out of memory for input %s", v->name);
        for (int64_t i = 0; i < count; i++) { /* f32 in [-1, 1), i32 0..9, u8 0..255, bool 0 or 1 */
            r = r * 6364136223846793005u + 1442695040888963407u;
            double u = (double)(r >> 40) / (double)(1 << 24);
            rt_elem_set(in[k], v->dtype, i,
                        v->dtype == AG_U8     ? (double)(r >> 56)
                        : v->dtype == AG_I32  ? (double)((r >> 33) % 10)
                        : v->dtype == AG_BOOL ? (double)(r >> 63)
                                              : 2 * u - 1);
        }
    }
    return true;
}

/* The inputs from one file each (IDX or CSV rows of the input's elements per sample): the
 * same number of samples in every file of a batched input, one in an unbatched input's. */
static bool file_inputs(const rt_compiled_entry *e, const opts *o, void **in, int64_t *n, char *err, size_t len)
{
    if (o->ninputs != e->ninputs) {
        char names[512] = "";
        for (int k = 0, at = 0; k < e->ninputs && at >= 0 && (size_t)at < sizeof names; k++)
            at += snprintf(names + at, sizeof names - (size_t)at, "%s%s", k ? ", " : "", e->in[k].name);
        return rt_fail(err, len, "%d input file%s for %d input%s (%s, in order), or --random N", o->ninputs,
                       o->ninputs == 1 ? "" : "s", e->ninputs, e->ninputs == 1 ? "" : "s", names);
    }
    *n = -1;
    for (int k = 0; k < e->ninputs; k++) {
        const rt_compiled_value *v = &e->in[k];
        rt_dataset d = {0};
        char what[600];
        snprintf(what, sizeof what, "%s (input %s)", o->inputs[k], v->name);
        if (!rt_load_predict_input(o->inputs[k], v->numel, &d, err, len) ||
            !rt_dataset_x_fits(&d, v->dtype, what, err, len)) {
            rt_dataset_free(&d);
            return false;
        }
        bool ok = true;
        if (!v->batched && d.n != 1)
            ok = rt_fail(err, len, "%s: %lld samples; input %s has no batch axis, so one", o->inputs[k], (long long)d.n,
                         v->name);
        else if (v->batched && *n >= 0 && d.n != *n)
            ok = rt_fail(err, len, "%s: %lld samples, where the inputs before have %lld", o->inputs[k], (long long)d.n,
                         (long long)*n);
        if (ok && v->batched)
            *n = d.n;
        in[k] = ok ? rt_bin_aligned(rt_array_bytes(d.n, v->numel, rt_elem_size(v->dtype))) : NULL;
        if (ok && !in[k])
            ok = rt_fail(err, len, "out of memory for input %s", v->name);
        for (int64_t i = 0; ok && i < d.n * v->numel; i++)
            rt_elem_set(in[k], v->dtype, i, rt_elem_get(d.x, d.x_dtype, i));
        rt_dataset_free(&d);
        if (!ok)
            return false;
    }
    if (*n < 0) /* no batched input: one sample */
        *n = 1;
    return true;
}

static void print_values(const char *base, const rt_compiled_value *v, int64_t first, int64_t count)
{
    for (int64_t j = 0; j < count; j++)
        printf("%s%.6g", j ? " " : "", rt_elem_get(base, v->dtype, first + j));
}

int rt_bin_predict_forward(const rt_compiled *m, const opts *o)
{
    char err[2048];
    bin b;
    rt_ckpt c = {0};
    const rt_compiled_entry *e = &m->forward;
    void *in[8] = {0}, *at[8];
    int64_t n = o->random;
    int rc = 1;
    int64_t per_call = o->has_batch ? o->batch : m->batch;
    bool ok = rt_bin_open(&b, m, o->threads, per_call, err, sizeof err) &&
              (o->weights ? rt_bin_load_checkpoint(&b, o->weights, &c, NULL, NULL, err, sizeof err)
                          : rt_bin_init_params(&b, o->seed, err, sizeof err)) &&
              (o->random ? rt_bin_random_inputs(e, n, o->seed, in, err, sizeof err)
                         : file_inputs(e, o, in, &n, err, sizeof err));
    /* a header: the outputs without the batch axis with their values, then the names of the
     * others, as each sample's line gives them */
    for (int64_t first = 0; ok && first < n; first += per_call) {
        int64_t rows = n - first < per_call ? n - first : per_call;
        for (int k = 0; k < e->ninputs; k++)
            at[k] = (char *)in[k] + (e->in[k].batched ? first * e->in[k].numel * rt_elem_size(e->in[k].dtype) : 0);
        rt_bin_call(&b, e, b.fwd_arena, at, rows, 0, NULL);
        for (int k = 0; first == 0 && k < e->nouts; k++) {
            const rt_compiled_value *v = &e->outs[k];
            const char *base = (v->in_params ? b.params : b.fwd_arena) + rt_value_offset(v, rows);
            if (!v->batched) {
                printf("# %s = ", v->name);
                print_values(base, v, 0, v->numel);
                printf("\n");
            }
        }
        for (int k = 0, shown = 0; first == 0 && k < e->nouts; k++)
            if (e->outs[k].batched)
                printf("%s%s[%lld]", shown++ ? " | " : "# ", e->outs[k].name, (long long)e->outs[k].numel);
        bool any = false;
        for (int k = 0; k < e->nouts; k++)
            any |= e->outs[k].batched;
        if (first == 0 && any)
            printf("\n");
        for (int64_t i = 0; any && i < rows; i++) {
            for (int k = 0, shown = 0; k < e->nouts; k++) {
                const rt_compiled_value *v = &e->outs[k];
                if (!v->batched)
                    continue;
                printf("%s", shown++ ? " | " : "");
                print_values((v->in_params ? b.params : b.fwd_arena) + rt_value_offset(v, rows), v, i * v->numel,
                             v->numel);
            }
            printf("\n");
        }
    }
    if (ok && fflush(stdout) == 0)
        rc = 0;
    else if (ok)
        snprintf(err, sizeof err, "cannot write the outputs: %s", strerror(errno));
    if (rc)
        rt_bin_fail(m, err);
    for (int k = 0; k < 8; k++)
        free(in[k]);
    rt_ckpt_free(&c);
    rt_bin_close(&b);
    return rc;
}
