/* Graphviz DOT for a graph: sources as ellipses, ops as boxes, each fused kernel as one box
 * listing the ops of its body, edges labelled with the value's type. */
#include <stdio.h>

#include "ir.h"

static void label_of(FILE *f, const ir_graph *g, int32_t id)
{
    const ir_node *n = &g->node[id];
    if (n->op == IR_const) {
        fprintf(f, "%.9g", n->attr.value);
        return;
    }
    if (n->attr.name) {
        fprintf(f, "%s", n->attr.name);
        return;
    }
    if (n->op != IR_kernel) {
        fprintf(f, "%s", ir_ops[n->op].name);
        return;
    }
    const ir_graph *b = g->kernels[n->attr.kernel];
    fprintf(f, "kernel @k%d  %s\\n", n->attr.kernel, b->out[n->attr.output].name);
    int shown = 0;
    for (int32_t i = 0; i < b->n; i++)
        if (ir_ops[b->node[i].op].kind != IR_K_SOURCE)
            fprintf(f, "%s%s", shown++ % 4 ? ", " : "\\n", ir_ops[b->node[i].op].name);
}

void ir_print_dot(FILE *f, const ir_graph *g)
{
    fprintf(f, "digraph \"%s\" {\n  rankdir=TB;\n  node [fontname=\"monospace\", fontsize=10];\n", g->name);
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if (n->op == IR_const)
            continue; /* drawn into their users' edges */
        const char *shape = ir_ops[n->op].kind == IR_K_SOURCE ? "ellipse" : "box";
        const char *style = n->op == IR_kernel ? ", style=filled, fillcolor=\"#e8f0fe\"" : "";
        fprintf(f, "  n%d [shape=%s%s, label=\"", (int)i, shape, style);
        label_of(f, g, i);
        fprintf(f, "\"];\n");
        for (int k = 0; k < n->nin; k++) {
            const ir_node *p = &g->node[n->in[k]];
            if (p->op == IR_const)
                continue;
            char type[96];
            fprintf(f, "  n%d -> n%d [label=\"%s\", fontsize=8];\n", (int)n->in[k], (int)i,
                    ir_type_str(p->dtype, &p->shape, type, sizeof type));
        }
    }
    for (int i = 0; i < g->nout; i++)
        fprintf(f, "  out%d [shape=plaintext, label=\"%s\"];\n  n%d -> out%d;\n", i, g->out[i].name, (int)g->out[i].id,
                i);
    fprintf(f, "}\n");
}
