#include "optim_ref.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void optim_ref_load(optim_ref *r)
{
    FILE *f = fopen(AG_SOURCE_DIR "/tests/data/optim/reference.txt", "r");
    cr_assert_not_null(f, "no tests/data/optim/reference.txt (bench/optim_reference.py writes it)");
    int cap = 1 << 16;
    r->v = malloc(sizeof *r->v * (size_t)cap);
    r->n = 0;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        cr_assert_lt(r->n, cap);
        optim_ref_value *v = &r->v[r->n++];
        long long k;
        cr_assert_eq(sscanf(line, "%15s %39s %lld %lf", v->config, v->tensor, &k, &v->value), 4, "%s", line);
        v->index = k;
    }
    fclose(f);
    char err[1024];
    cr_assert(rt_load_mnist_set(RT_FASHION_MNIST_DIR, true, 784, 10, &r->images, err, sizeof err), "%s", err);
}

void optim_ref_free(optim_ref *r)
{
    free(r->v);
    rt_dataset_free(&r->images);
}

const char *optim_ref_config(int k, ag_optimizer *o)
{
    switch (k) { /* the script's CONFIGS */
    case 0: *o = ag_sgd(.lr = 0.1, .wd = 0.001); return "sgd";
    case 1: *o = ag_sgd(.lr = 0.05, .momentum = 0.9, .wd = 0.001); return "momentum";
    case 2: *o = ag_sgd(.lr = 0.05, .momentum = 0.9, .nesterov = 1, .wd = 0.001); return "nesterov";
    case 3: *o = ag_adam(.lr = 0.001, .wd = 0.001); return "adam";
    case 4: *o = ag_adamw(.lr = 0.001, .wd = 0.01); return "adamw";
    case 5: *o = ag_rmsprop(.lr = 0.001, .wd = 0.001); return "rmsprop";
    default: *o = ag_adagrad(.lr = 0.01, .wd = 0.001); return "adagrad";
    }
}

void optim_ref_net(ag_graph *g, ag_optimizer o)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 784);
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val W1 = ag_param(g, "W1", ag_zeros(), 784, 256);
    ag_val b1 = ag_param(g, "b1", ag_zeros(), 256);
    ag_val W2 = ag_param(g, "W2", ag_zeros(), 256, 10);
    ag_val b2 = ag_param(g, "b2", ag_zeros(), 10);
    ag_val logits = ag_add(ag_matmul(ag_relu(ag_add(ag_matmul(x, W1), b1)), W2), b2);
    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), o, .batch = OPTIM_REF_BATCH);
}

double optim_ref_start(const char *name, int64_t e) /* bench/optim_reference.py: initial */
{
    if (!strcmp(name, "W1"))
        return 0.01 * sin(0.37 * (double)(e / 256) + 0.11 * (double)(e % 256) + 0.5);
    if (!strcmp(name, "b1"))
        return 0.001 * cos((double)e);
    if (!strcmp(name, "W2"))
        return 0.05 * sin(0.13 * (double)(e / 10) + 0.71 * (double)(e % 10));
    return 0;
}

double optim_ref_x(const optim_ref *r, int s, int64_t e) /* images s*64 .. s*64+63, in order */
{
    return ((const uint8_t *)r->images.x)[(int64_t)s * OPTIM_REF_BATCH * 784 + e] / 255.0;
}

int32_t optim_ref_y(const optim_ref *r, int s, int64_t e)
{
    return ((const int32_t *)r->images.y)[(int64_t)s * OPTIM_REF_BATCH + e];
}

void optim_ref_batch(const optim_ref *r, int s, float *x, int32_t *y)
{
    for (int64_t e = 0; e < OPTIM_REF_BATCH * 784; e++)
        x[e] = (float)optim_ref_x(r, s, e);
    for (int64_t e = 0; e < OPTIM_REF_BATCH; e++)
        y[e] = optim_ref_y(r, s, e);
}

double optim_ref_error(const optim_ref *r, const char *config, const char *tensor,
                       double (*at)(const void *data, int64_t i), const void *data, int *seen)
{
    double d = 0, s = 0;
    *seen = 0;
    for (int k = 0; k < r->n; k++)
        if (!strcmp(r->v[k].config, config) && !strcmp(r->v[k].tensor, tensor)) {
            double v = at(data, r->v[k].index), w = r->v[k].value;
            d += (v - w) * (v - w), s += w * w, ++*seen;
        }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

void optim_ref_start_params(const cg_program *p, const ir_graph *g, char *params)
{
    for (int k = 0; k < p->nparams; k++) {
        const ir_node *n = &g->node[p->params[k].node];
        float *at = (float *)(params + p->params[k].offset);
        for (int64_t e = 0; e < p->params[k].bytes / 4; e++)
            at[e] = n->attr.role == AG_ROLE_STATE ? 0 : (float)optim_ref_start(n->attr.name, e);
    }
}

void optim_ref_take_updates(const cg_program *p, const ir_graph *g, const char *arena, char *params)
{
    for (int k = 0; k < p->nparams; k++) {
        char next[300];
        snprintf(next, sizeof next, "%s.next", p->params[k].name);
        int out = ir_find_output(g, next);
        cr_assert_geq(out, 0, "no output %s", next);
        const cg_buffer *b = &p->buffers[p->output_buffer[out]];
        const char *at = (b->region == CG_PARAMS ? params : arena) + b->offset.k + b->offset.n * OPTIM_REF_BATCH;
        memmove(params + p->params[k].offset, at, (size_t)p->params[k].bytes);
    }
}

static double f32_at(const void *data, int64_t i) { return ((const float *)data)[i]; }

double optim_ref_check(const optim_ref *r, const char *config, const cg_program *p, const char *params, double bar)
{
    double worst = 0;
    for (int k = 0; k < p->nparams; k++) {
        int seen;
        double e = optim_ref_error(r, config, p->params[k].name, f32_at, params + p->params[k].offset, &seen);
        cr_expect_gt(seen, 0, "%s: torch.optim keeps no %s", config, p->params[k].name);
        cr_expect_leq(e, bar, "%s: %s off torch.optim's by %g (norm-wise) after 20 steps", config, p->params[k].name,
                      e);
        worst = e > worst ? e : worst;
    }
    return worst;
}
