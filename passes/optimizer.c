/* The optimizer: SGD updates appended to a graph with gradients, making the train step.
 *
 *     P.next = P - lr*lr_scale * (P.grad + wd*wd_scale * P)
 *
 * lr and wd become scalar inputs, so changing them needs no recompile; a group's scales are
 * constants. A scale of 1 or a decay of 0 builds no node at all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "passes.h"

static const ir_group *group_of(const ir_train *t, const char *param)
{
    for (int i = 0; t && i < t->ngroups; i++)
        for (int k = 0; k < t->groups[i].nparams; k++)
            if (strcmp(t->groups[i].params[k], param) == 0)
                return &t->groups[i];
    return NULL;
}

/* A runtime scalar of the step, found by its role; its name is what the text IR shows. */
static ag_val scalar_input(ir_graph *h, const char *name, ag_role role)
{
    ir_node n = ir_node_make(IR_input, 0, NULL);
    n.dtype = AG_F32;
    n.attr.name = ir_strdup(h, name);
    n.attr.role = role;
    return (ag_val){h, ir_intern(h, &n), 0};
}

ir_graph *pass_optimizer(const ir_graph *g, char *err, size_t len)
{
    if (g->train && g->train->stage != IR_STAGE_GRADIENTS) {
        rt_fail(err, len, "optimizer: needs a graph with gradients, got stage %s",
                g->train->stage == IR_STAGE_MODEL ? "model" : "step");
        return NULL;
    }
    for (const char *const *s = (const char *const[]){"lr", "wd", NULL}; *s; s++) /* the names it shows */
        if (ir_find_source(g, IR_input, *s) >= 0 || ir_find_source(g, IR_param, *s) >= 0) {
            rt_fail(err, len, "optimizer: the name %s is the optimizer's; rename the model's %s", *s, *s);
            return NULL;
        }
    if (ir_find_role(g, AG_ROLE_LR) >= 0 || ir_find_role(g, AG_ROLE_WD) >= 0) {
        rt_fail(err, len, "optimizer: an input of the model has the optimizer's role=lr or role=wd");
        return NULL;
    }
    int32_t *map = ir_xmalloc(sizeof *map * (size_t)(g->n ? g->n : 1));
    ir_graph *h = ir_graph_new(g->name);
    for (int32_t i = 0; i < g->n; i++)
        map[i] = ir_copy_node(h, g, i, map);
    ag_val lr = scalar_input(h, "lr", AG_ROLE_LR), wd = scalar_input(h, "wd", AG_ROLE_WD);

    const char **keep = ir_xmalloc(sizeof *keep * (size_t)(g->nout + 1));
    int nkeep = 0;
    for (int k = 0; k < g->nout; k++) {
        const char *name = g->out[k].name;
        size_t n = strlen(name);
        char param[256];
        int32_t p = -1;
        if (n > 5 && n - 5 < sizeof param && strcmp(name + n - 5, ".grad") == 0) {
            memcpy(param, name, n - 5);
            param[n - 5] = 0;
            p = ir_find_source(h, IR_param, param);
        }
        if (p < 0) { /* loss, metrics, predictions, an input's gradient: kept as they are */
            ir_add_output(h, name, map[g->out[k].id]);
            keep[nkeep++] = name;
            continue;
        }
        const ir_group *grp = group_of(g->train, param);
        double lr_scale = grp ? grp->lr_scale : 1, wd_scale = grp ? grp->wd_scale : 1;
        ag_loc at = h->node[p].loc;
        ag_val P = {h, p, 0}, step = {h, map[g->out[k].id], 0};
        if (wd_scale != 0) {
            ag_val decay = wd_scale == 1 ? wd : ag_ew_at(at, IR_mul, 2, (ag_val[]){wd, ag_imm_of(wd_scale)});
            step = ag_ew_at(at, IR_add, 2, (ag_val[]){step, ag_ew_at(at, IR_mul, 2, (ag_val[]){decay, P})});
        }
        ag_val rate = lr_scale == 1 ? lr : ag_ew_at(at, IR_mul, 2, (ag_val[]){lr, ag_imm_of(lr_scale)});
        ag_val next = ag_ew_at(at, IR_sub, 2, (ag_val[]){P, ag_ew_at(at, IR_mul, 2, (ag_val[]){rate, step})});
        char out[300];
        snprintf(out, sizeof out, "%s.next", param);
        ir_add_output(h, out, next.id);
        keep[nkeep++] = h->out[h->nout - 1].name;
    }
    h->next_site = g->next_site;
    ir_copy_train(h, g);
    if (h->train)
        h->train->stage = IR_STAGE_STEP;
    ir_graph *r = NULL;
    if (h->nerrors)
        rt_fail(err, len, "optimizer: internal error: %s", h->errors[0]);
    else
        r = ir_prune(h, keep, nkeep); /* the gradients now feed the updates; nothing else dangles */
    free(keep);
    free(map);
    ir_graph_free(h);
    return r;
}
