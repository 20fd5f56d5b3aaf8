#include <stdlib.h>

#include "alloc.h"
#include "bind.h"
#include "init.h"
#include "rng.h"

/* The class count of an i32 input that feeds a one_hot, so random labels are valid ones. */
static int64_t label_range(const ir_graph *g, int32_t id)
{
    for (int32_t i = id + 1; i < g->n; i++)
        if (g->node[i].op == IR_one_hot && g->node[i].in[0] == id)
            return g->node[i].attr.classes;
    return 10;
}

/* False when out of memory: the values are drawn as f64, a buffer of the batch's size. */
static bool fill_input(const ir_graph *g, int32_t id, ir_tensor *t, uint32_t seed, uint32_t stream)
{
    int64_t n = ir_numel(&t->shape, 1);
    ag_dtype dtype = g->node[id].dtype;
    if (dtype == AG_F32) {
        double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
        if (!v)
            return false;
        rt_fill_normal_f64(v, n, 0, 1, seed, stream);
        for (int64_t i = 0; i < n; i++)
            ir_tensor_set(t, i, (double)(float)v[i]);
        free(v);
        return true;
    }
    int64_t range = dtype == AG_U8 ? 256 : dtype == AG_BOOL ? 2 : label_range(g, id);
    for (int64_t i = 0; i < n; i++)
        ir_tensor_set(t, i, (double)(rt_random_u32(seed, stream, (uint64_t)i) % (uint64_t)range));
    return true;
}

void fe_init_param(const ir_node *p, ir_tensor *t, uint32_t seed, uint32_t stream)
{
    int64_t n = ir_numel(&t->shape, 1);
    int64_t fan_in, fan_out;
    rt_fans(p->shape.rank, p->shape.dim, &fan_in, &fan_out);
    double *v = ir_xmalloc(sizeof *v * (size_t)n);
    rt_init_values(v, n, p->attr.init, fan_in, fan_out, seed, stream);
    for (int64_t i = 0; i < n; i++)
        ir_tensor_set(t, i, v[i]);
    free(v);
}

ir_tensor **fe_bind_random(const ir_graph *g, int64_t batch, uint32_t seed, bool f64)
{
    ir_tensor **bound = ir_xcalloc((size_t)g->n, sizeof *bound);
    uint32_t params = 0, inputs = 0;
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if (n->op != IR_input && n->op != IR_param)
            continue;
        ir_shape s = ir_bind_shape(&n->shape, batch);
        bound[i] = ir_xmalloc(sizeof **bound);
        *bound[i] = ir_tensor_new(ir_storage_dtype(n->dtype, f64), &s);
        bool filled = bound[i]->data != NULL; /* too large for this machine: say out of memory, not a missing tensor */
        if (filled && n->op == IR_param)
            fe_init_param(n, bound[i], seed, ++params);
        else if (filled)
            filled = fill_input(g, i, bound[i], seed, 0x10000 + ++inputs);
        if (!filled) {
            fe_bind_free(g, bound);
            return NULL;
        }
    }
    return bound;
}

void fe_bind_free(const ir_graph *g, ir_tensor **bound)
{
    if (!bound)
        return;
    for (int32_t i = 0; i < g->n; i++)
        if (bound[i]) {
            ir_tensor_free(bound[i]);
            free(bound[i]);
        }
    free(bound);
}
