/* Graphviz DOT for a graph: sources as ellipses, constants as small plain nodes, ops as boxes
 * named as the text IR names their values (%3 = add) with the model line they came from, and
 * each fused kernel as one box (@k3) listing the ops of its body and every value it gives,
 * however many nodes of the graph pick its outputs. Edges carry the value's type. */
#include <stdio.h>
#include <string.h>

#include "ir.h"

/* s with what DOT's quoted strings need escaped */
static void quoted(FILE *f, const char *s)
{
    for (; s && *s; s++)
        fprintf(f, *s == '"' || *s == '\\' ? "\\%c" : "%c", *s);
}

static void line_of(FILE *f, const ir_node *n)
{
    if (n->loc.file && n->loc.line > 0) {
        const char *base = strrchr(n->loc.file, '/');
        fprintf(f, "\\n");
        quoted(f, base ? base + 1 : n->loc.file);
        fprintf(f, ":%d", n->loc.line);
    }
}

/* the DOT node a value comes from: its kernel's box for a kernel's output */
static void from(FILE *f, const ir_graph *g, int32_t id)
{
    if (g->node[id].op == IR_kernel)
        fprintf(f, "k%d", (int)g->node[id].attr.kernel);
    else
        fprintf(f, "n%d", (int)id);
}

static void kernel_box(FILE *f, const ir_graph *g, int32_t first)
{
    int32_t k = g->node[first].attr.kernel;
    const ir_graph *b = g->kernels[k];
    char v[32];
    fprintf(f, "  k%d [shape=box, style=filled, fillcolor=\"#e8f0fe\", label=\"@k%d ->", (int)k, (int)k);
    for (int32_t j = first; j < g->n; j++) /* every value it gives */
        if (g->node[j].op == IR_kernel && g->node[j].attr.kernel == k)
            fprintf(f, " %s", ir_value_name(g, j, v, sizeof v));
    int shown = 0;
    for (int32_t i = 0; i < b->n; i++)
        if (ir_ops[b->node[i].op].kind != IR_K_SOURCE)
            fprintf(f, "%s%s", shown++ % 4 ? ", " : "\\n", ir_ops[b->node[i].op].name);
    line_of(f, &g->node[first]);
    fprintf(f, "\"];\n");
}

void ir_print_dot(FILE *f, const ir_graph *g)
{
    fprintf(f, "digraph \"");
    quoted(f, g->name);
    fprintf(f, "\" {\n  rankdir=TB;\n  node [fontname=\"monospace\", fontsize=10];\n");
    char v[32], type[96];
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        bool first = true; /* a kernel's box once, at its first node */
        for (int32_t j = 0; n->op == IR_kernel && j < i && first; j++)
            first = !(g->node[j].op == IR_kernel && g->node[j].attr.kernel == n->attr.kernel);
        if (n->op == IR_kernel && first)
            kernel_box(f, g, i);
        else if (n->op == IR_const) {
            fprintf(f, "  n%d [shape=plaintext, fontsize=9, label=\"%.9g\"];\n", (int)i, n->attr.value);
        } else if (n->op != IR_kernel) {
            fprintf(f, "  n%d [shape=%s, label=\"%s = %s", (int)i,
                    ir_ops[n->op].kind == IR_K_SOURCE ? "ellipse" : "box", ir_value_name(g, i, v, sizeof v),
                    ir_ops[n->op].name);
            if (n->op == IR_input || n->op == IR_param)
                fprintf(f, "\\n%s", ir_type_str(n->dtype, &n->shape, type, sizeof type));
            line_of(f, n);
            fprintf(f, "\"];\n");
        }
        if (n->op == IR_kernel && !first)
            continue; /* its operands are the first node's */
        for (int k = 0; k < n->nin; k++) {
            const ir_node *p = &g->node[n->in[k]];
            fprintf(f, "  ");
            from(f, g, n->in[k]);
            fprintf(f, " -> ");
            from(f, g, i);
            fprintf(f, " [label=\"%s%s%s\", fontsize=8];\n",
                    p->op == IR_kernel ? ir_value_name(g, n->in[k], v, sizeof v) : "", p->op == IR_kernel ? " " : "",
                    ir_type_str(p->dtype, &p->shape, type, sizeof type));
        }
    }
    for (int i = 0; i < g->nout; i++) {
        fprintf(f, "  out%d [shape=plaintext, label=\"", i);
        quoted(f, g->out[i].name);
        fprintf(f, "\"];\n  ");
        from(f, g, g->out[i].id);
        fprintf(f, " -> out%d [label=\"%s\", fontsize=8];\n", i, ir_value_name(g, g->out[i].id, v, sizeof v));
    }
    fprintf(f, "}\n");
}
