/* What a graph's inputs are for, as training binds them: the features and the targets of a
 * dataset (and what the targets take: the class count), and the runtime scalars. */
#include <stdio.h>
#include <string.h>

#include "fail.h"
#include "ir.h"

static const char *const role_names[AG_ROLE_COUNT] = {
    "", "data", "labels", "lr", "wd", "state", "accum", "grad_weight", "grad_scale", "clip_norm", "share"};

const char *ir_role_name(ag_role r) { return (unsigned)r < AG_ROLE_COUNT ? role_names[r] : "?"; }

bool ir_role_by_name(const char *name, size_t len, ag_role *r)
{
    for (int k = 1; k < AG_ROLE_COUNT; k++)
        if (strlen(role_names[k]) == len && memcmp(role_names[k], name, len) == 0) {
            *r = (ag_role)k;
            return true;
        }
    return false;
}

int32_t ir_find_role(const ir_graph *g, ag_role r)
{
    for (int32_t i = 0; i < g->n; i++)
        if (g->node[i].op == IR_input && g->node[i].attr.role == r)
            return i;
    return -1;
}

bool ir_data_inputs(const ir_graph *g, int32_t *x, int32_t *y, char *err, size_t len)
{
    *x = ir_find_role(g, AG_ROLE_DATA);
    *y = ir_find_role(g, AG_ROLE_LABELS);
    if (*x < 0 || *y < 0) {
        rt_fail(err, len,
                "%s: training binds the features (an input with role=data) and the targets (role=labels); "
                "the model has %s",
                g->name,
                *x < 0 && *y < 0 ? "neither"
                : *x < 0         ? "no role=data"
                                 : "no role=labels");
        return false;
    }
    for (int32_t i = 0; i < g->n; i++) /* what training would leave unbound */
        if (g->node[i].op == IR_input && g->node[i].attr.role == AG_ROLE_NONE) {
            rt_fail(err, len,
                    "%s: training binds only the data, the labels and the optimizer's scalars; input %s has "
                    "no role",
                    g->name, g->node[i].attr.name);
            return false;
        }
    return true;
}

/* The class count of labels `y` as the graph reads them: a one_hot's classes, or the last
 * axis of the logits a cross-entropy (softmax_ce after fusion) or an accuracy (argmax
 * compared with them) takes, inside fused kernels too; the largest where readers differ
 * (a label past a one_hot's classes is a zero row, not an error); 0 when nothing says. */
enum { MAX_CLASSES = 1 << 24 }; /* labels are i32; counts past this are no classifier's */

static int label_classes(const ir_graph *g, int32_t y)
{
    int most = 0;
    for (int32_t i = y + 1; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        for (int k = 0; k < n->nin; k++) {
            if (n->in[k] != y)
                continue;
            const ir_node *other = n->nin == 2 ? &g->node[n->in[1 - k]] : NULL;
            int64_t c = 0;
            if (n->op == IR_one_hot)
                c = n->attr.classes;
            if ((n->op == IR_softmax_ce || n->op == IR_softmax_ce_grad) && k == 1)
                c = g->node[n->in[0]].shape.dim[1];
            if ((n->op == IR_eq || n->op == IR_ne) && other->op == IR_argmax)
                c = g->node[other->in[0]].shape.dim[other->attr.axis];
            if (n->op == IR_kernel) /* the body input the labels bind */
                for (int32_t j = 0, seen = 0; j < g->kernels[n->attr.kernel]->n; j++)
                    if (g->kernels[n->attr.kernel]->node[j].op == IR_input && seen++ == k) {
                        c = label_classes(g->kernels[n->attr.kernel], j);
                        break;
                    }
            if (c > most && c <= MAX_CLASSES)
                most = (int)c;
        }
    }
    return most;
}

/* Features and targets per sample, and the class count, from the model's data inputs. */
bool ir_data_shape(const ir_graph *g, int64_t *features, int64_t *targets, int *classes, char *err, size_t len)
{
    int32_t x, y;
    if (!ir_data_inputs(g, &x, &y, err, len))
        return false;
    *features = ir_numel(&g->node[x].shape, 1);
    *targets = ir_numel(&g->node[y].shape, 1);
    *classes = 0;
    if (g->node[y].dtype == AG_I32) {
        *classes = label_classes(g, y);
        if (!*classes)
            *classes = g->train->nclasses;
        if (!*classes) /* integer targets no one_hot, cross-entropy or accuracy reads: any label */
            *classes = MAX_CLASSES;
    }
    return true;
}
