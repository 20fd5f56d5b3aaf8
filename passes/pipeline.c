/* The pipeline: which passes make the train step and the eval graph, in order. */
#include <stdio.h>
#include <stdlib.h>

#include "passes.h"

ir_graph *pass_train_step(const ir_graph *g, char *err, size_t len)
{
    if (!g->train || !g->train->loss) {
        snprintf(err, len, "%s declares no training (ag_minimize)", g->name);
        return NULL;
    }
    switch (g->train->stage) {
    case IR_STAGE_MODEL: {
        ir_graph *d = pass_autodiff(g, g->train->loss, err, len);
        if (!d)
            return NULL;
        ir_graph *s = pass_optimizer(d, err, len);
        ir_graph_free(d);
        return s;
    }
    case IR_STAGE_GRADIENTS:
        return pass_optimizer(g, err, len);
    case IR_STAGE_STEP:
        break;
    }
    const char **names = malloc(sizeof *names * (size_t)(g->nout + 1));
    for (int i = 0; i < g->nout; i++)
        names[i] = g->out[i].name;
    ir_graph *s = ir_prune(g, names, g->nout);
    free(names);
    return s;
}

ir_graph *pass_eval(const ir_graph *g)
{
    const char *keep[IR_MAX_METRICS + 2];
    int n = 0;
    const ir_train *t = g->train;
    if (t && t->loss)
        keep[n++] = t->loss;
    for (int i = 0; t && i < t->nmetrics; i++)
        keep[n++] = t->metrics[i];
    if (t && t->predict)
        keep[n++] = t->predict;
    ir_graph *e = ir_prune(g, keep, n);
    if (e->train)
        e->train->stage = IR_STAGE_MODEL;
    return e;
}
