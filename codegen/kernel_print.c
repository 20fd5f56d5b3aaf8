/* The kernel IR as text, for `aotgrad build --dump-dir`: one block a step, its kernel's name
 * and model lines, then what it reads and writes. Affine sizes print as k + nN. Not parsed
 * back: a listing to read, as LLVM's -print-after listings are. */
#include <stdio.h>

#include "kernel.h"

static void dim(FILE *f, cg_dim d)
{
    if (d.n == 0)
        fprintf(f, "%lld", (long long)d.k);
    else if (d.k == 0)
        fprintf(f, d.n == 1 ? "N" : "%lldN", (long long)d.n);
    else
        fprintf(f, "%lld%+lldN", (long long)d.k, (long long)d.n);
}

static void access(FILE *f, const cg_program *p, const cg_access *a, int rank)
{
    fprintf(f, "b%d[", (int)a->buffer);
    dim(f, a->offset);
    fprintf(f, "; strides");
    for (int k = 0; k < rank; k++) {
        fputc(' ', f);
        dim(f, a->stride[k]);
    }
    fprintf(f, "] %s", a->buffer >= 0 && a->buffer < p->nbuffers ? ir_dtype_name(p->buffers[a->buffer].dtype) : "?");
}

static void expr(FILE *f, const cg_expr *e, int k)
{
    fprintf(f, "    e%d = ", k);
    switch (e->kind) {
    case CG_E_LOAD: fprintf(f, "load l%d", (int)e->load); break;
    case CG_E_CONST: fprintf(f, "%.9g", e->value); break;
    case CG_E_INDEX: fprintf(f, "index %d", (int)e->axis); break;
    case CG_E_OP:
        fprintf(f, "%s e%d", (unsigned)e->op < IR_OP_COUNT ? ir_ops[e->op].name : "?", (int)e->a);
        if (e->b >= 0)
            fprintf(f, ", e%d", (int)e->b);
        if (e->c >= 0)
            fprintf(f, ", e%d", (int)e->c);
        break;
    }
    fprintf(f, " : %s\n", ir_dtype_name(e->dtype));
}

static void step(FILE *f, const cg_program *p, int s)
{
    const cg_step *st = &p->steps[s];
    char name[32];
    fprintf(f, "step %d %s: %s", s, cg_step_name(p, s, name, sizeof name),
            st->kind == CG_LOOP   ? "loop"
            : st->kind == CG_GEMM ? "gemm"
                                  : "call");
    for (int k = 0; k < st->nlines; k++) { /* ; file:line,line */
        if (k == 0)
            fprintf(f, "   ; %s%s%d", p->file ? p->file : "line ", p->file ? ":" : "", (int)st->lines[k]);
        else
            fprintf(f, ",%d", (int)st->lines[k]);
    }
    fputc('\n', f);
    if (st->kind == CG_LOOP) {
        const cg_loop *l = &st->loop;
        fprintf(f, "  over [");
        for (int k = 0; k < l->rank; k++) {
            fprintf(f, "%s", k ? ", " : "");
            dim(f, l->extent[k]);
            if (l->reduce & (1u << k))
                fprintf(f, " (%s)", l->combine == IR_max ? "max" : "sum");
        }
        fprintf(f, "]\n");
        for (int k = 0; k < l->nloads; k++) {
            fprintf(f, "    l%d = ", k);
            access(f, p, &l->load[k], l->rank);
            fputc('\n', f);
        }
        for (int k = 0; k < l->nexprs; k++)
            expr(f, &l->expr[k], k);
        for (int k = 0; k < l->nstores; k++) {
            fprintf(f, "    store e%d -> ", (int)l->store[k].expr);
            access(f, p, &l->store[k].at, l->rank);
            fputc('\n', f);
        }
    } else if (st->kind == CG_GEMM) {
        const cg_gemm *g = &st->gemm;
        fprintf(f, "  C[");
        dim(f, g->m);
        fprintf(f, " x ");
        dim(f, g->n);
        fprintf(f, "] = alpha e%d * A%s x B%s (K ", (int)g->alpha, g->ta ? "^T" : "", g->tb ? "^T" : "");
        dim(f, g->k);
        fprintf(f, ") + beta e%d * C\n    A = ", (int)g->beta);
        access(f, p, &g->a, 0);
        fprintf(f, "\n    B = ");
        access(f, p, &g->b, 0);
        fprintf(f, "\n    C = ");
        access(f, p, &g->c, 0);
        fputc('\n', f);
        for (int k = 0; k < g->nloads; k++) {
            fprintf(f, "    l%d = ", k);
            access(f, p, &g->load[k], 0);
            fputc('\n', f);
        }
        for (int k = 0; k < g->nexprs; k++)
            expr(f, &g->expr[k], k);
    } else {
        const cg_call *c = &st->call;
        fprintf(f, "  %s over ", (unsigned)c->op < IR_OP_COUNT ? ir_ops[c->op].name : "?");
        dim(f, c->rows);
        const rt_window *w = &c->win;
        if ((unsigned)c->op < IR_OP_COUNT && ir_ops[c->op].kind == IR_K_WINDOW)
            fprintf(f,
                    " samples of [%lld,%lld,%lld] to [%lld,%lld]: kernel [%lld,%lld] stride [%lld,%lld] pad "
                    "[%lld,%lld] dilation [%lld,%lld]\n",
                    (long long)w->c, (long long)w->h, (long long)w->w, (long long)w->oh, (long long)w->ow,
                    (long long)w->kh, (long long)w->kw, (long long)w->sh, (long long)w->sw, (long long)w->ph,
                    (long long)w->pw, (long long)w->dh, (long long)w->dw);
        else if (c->op == IR_allreduce) /* a bucket's sum over the ranks */
            fprintf(f, " floats: bucket %d, %s\n", (int)c->bucket, c->wait ? "wait for its sum" : "start its sum");
        else {
            fprintf(f, " rows of ");
            dim(f, c->len);
            fprintf(f, " (inner ");
            dim(f, c->inner);
            fprintf(f, ")\n");
        }
        for (int k = 0; k < c->nargs && k < 5; k++) {
            fprintf(f, "    arg%d = ", k);
            access(f, p, &c->arg[k], 0);
            fputc('\n', f);
        }
    }
}

void cg_print_program(FILE *f, const cg_program *p)
{
    static const char *const region[] = {"arena", "params", "input", "output"};
    fprintf(f, "program %s: %d steps, %d buffers, parameters %lld bytes, arena at N: max of", p->name, p->nsteps,
            p->nbuffers, (long long)p->param_bytes);
    for (int k = 0; k < p->narena; k++)
        fprintf(f, " %lld%+lldN", (long long)p->arena[k].k, (long long)p->arena[k].n);
    fprintf(f, "\n");
    for (int b = 0; b < p->nbuffers; b++) {
        const cg_buffer *x = &p->buffers[b];
        fprintf(f, "  b%d: %s", b, (unsigned)x->region < 4 ? region[x->region] : "?");
        if (x->region == CG_INPUT || x->region == CG_OUTPUT)
            fprintf(f, " %d", (int)x->index);
        fprintf(f, " + ");
        dim(f, x->offset);
        fprintf(f, " bytes, %s\n", ir_dtype_name(x->dtype));
    }
    for (int s = 0; s < p->nsteps; s++)
        step(f, p, s);
}
