#include "diff_run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "fail.h"

bool diff_run_init(diff_run *r, const ir_graph *g, const cg_program *p, int64_t batch, char *err, size_t len)
{
    *r = (diff_run){.g = g, .p = p, .batch = batch};
    if (p->ninputs > CG_CUDA_MAX_TENSORS)
        return rt_fail(err, len, "%d inputs, at most %d", p->ninputs, CG_CUDA_MAX_TENSORS);
    r->bound = fe_bind_random(g, batch, DIFF_SEED, false);
    if (!r->bound)
        return rt_fail(err, len, "out of memory binding the inputs at batch %lld", (long long)batch);
    for (int32_t i = 0; i < g->n; i++) /* lr and wd: small, as training uses them */
        if (r->bound[i] && g->node[i].op == IR_input && g->node[i].shape.rank == 0 && g->node[i].dtype == AG_F32)
            ir_tensor_set(r->bound[i], 0, g->node[i].attr.role == AG_ROLE_LR ? 0.1 : 0.01);
    r->arena.bytes = (size_t)rt_arena_bytes(p->arena, p->narena, batch);
    r->params.bytes = (size_t)p->param_bytes;
    /* a little slack past the end: a region may be empty, calloc(0) may give NULL */
    r->arena.data = calloc(1, r->arena.bytes + 64);
    r->params.data = calloc(1, r->params.bytes + 64);
    if (!r->arena.data || !r->params.data)
        return rt_fail(err, len, "out of memory for the arena (%zu bytes)", r->arena.bytes);
    for (int k = 0; k < p->nparams; k++)
        memcpy((char *)r->params.data + p->params[k].offset, r->bound[p->params[k].node]->data,
               (size_t)p->params[k].bytes);
    r->ninputs = p->ninputs;
    for (int k = 0; k < p->ninputs; k++) {
        ir_tensor *t = r->bound[p->input_node[k]];
        r->inputs[k] = (cuda_host_region){t->data, (size_t)ir_tensor_numel(t) * ir_dtype_size(t->dtype)};
    }
    return true;
}

void diff_run_free(diff_run *r)
{
    free(r->arena.data);
    free(r->params.data);
    if (r->bound)
        fe_bind_free(r->g, r->bound);
    *r = (diff_run){0};
}

bool diff_interp(const diff_run *r, bool training, ir_tensor *outs, char *err, size_t len)
{
    ir_run run = {.f64 = false, .batch = r->batch, .seed = DIFF_SEED, .step = DIFF_STEP, .training = training};
    return ir_interp(r->g, &run, (const ir_tensor *const *)r->bound, outs, err, len);
}

double diff_output_error(const diff_run *r, int k, const ir_tensor *want, bool *bitwise)
{
    const cg_buffer *b = &r->p->buffers[r->p->output_buffer[k]];
    const char *base = b->region == CG_ARENA    ? r->arena.data
                       : b->region == CG_PARAMS ? r->params.data
                                                : (const char *)r->inputs[b->index].data;
    return diff_rel_error(want, base + b->offset.k + b->offset.n * r->batch, b->dtype, bitwise);
}

double diff_rel_error(const ir_tensor *want, const void *got, ag_dtype t, bool *bitwise)
{
    double d = 0, s = 0;
    bool same = true;
    for (int64_t i = 0, n = ir_tensor_numel(want); i < n; i++) {
        double x = ir_tensor_get(want, i);
        double y = t == AG_F32   ? ((const float *)got)[i]
                   : t == AG_I32 ? ((const int32_t *)got)[i]
                                 : ((const uint8_t *)got)[i];
        if (t == AG_F32 && memcmp((const float *)want->data + i, (const float *)got + i, 4) != 0)
            same = false;
        else if (t != AG_F32 && x != y)
            same = false;
        if ((isnan(x) && isnan(y)) || (isinf(x) && x == y))
            continue;
        d += (x - y) * (x - y);
        s += isfinite(x) ? x * x : 0;
    }
    if (bitwise)
        *bitwise = same;
    return d == 0 ? 0 : sqrt(d) / fmax(sqrt(s), 1e-30);
}
