/* The text IR printer. The form is canonical: ir_parse reads it back, and printing the
 * parsed graph gives the same bytes, so every pass can be dumped, diffed and reloaded.
 *
 *   %2: f32[N,256] = matmul %1, %W1 tb            ; models/mlp.c:12
 *
 * Inputs and params print as %name, f32 and i32 scalar constants inline as literals, and
 * every other node as %0, %1, ... in array order (ids are renumbered, never printed).
 * A graph's training declarations (g->train) follow the `return` line:
 *
 *   train model loss=loss metrics=[correct] predict=logits
 *   optimizer sgd lr=0.1 wd=0 batch=256 epochs=10    (adam: ... beta1=0.9 beta2=0.999 eps=1e-08 ...)
 *   distributed bucket_bytes=4194304                 (a distributed build's: passes/distribute.c)
 *   group weights wd_scale=1 lr_scale=1 params=[W1, W2]
 *   data "fashion-mnist" classes=["T-shirt/top", "Trouser"]
 *   option act="relu" choices="relu|sigmoid|tanh"
 *
 * and then, once plan_memory ran (g->plan), the memory plan: the batch it was laid out for
 * and the arena's size there, one line per value with a buffer in the arena (at batch N its
 * offset is offset + offset_n * N bytes; offset_n is left out when 0) and one per value that
 * overwrites a parameter's buffer, in node order:
 *
 *   memory batch=256 arena=1347712
 *   buffer %0 offset=0 offset_n=1024
 *   inplace %13 into=%W1
 *
 * The bodies of fused groups (g->kernels) come first, each a block of its own named by its
 * index, then a blank line; a kernel node names its body and the output it takes:
 *
 *   kernel @k0 {
 *     %p0: f32[N,256] = input
 *     %0: f32[N,256] = relu %p0
 *     return h: %0
 *   }
 *
 *   graph @mlp {
 *     ...
 *     %4: f32[N,256] = kernel %3 body=@k0 out=h  ; models/mlp.c:18 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "ir.h"

#define LOC_COLUMN 48 /* where the "; file:line" comments line up */

static bool inline_const(const ir_node *n) { return n->op == IR_const && (n->dtype == AG_F32 || n->dtype == AG_I32); }

const char *ir_value_name(const ir_graph *g, int32_t id, char *buf, size_t len)
{
    const ir_node *n = &g->node[id];
    if ((n->op == IR_input || n->op == IR_param) && n->attr.name) {
        snprintf(buf, len, "%%%s", n->attr.name);
        return buf;
    }
    int32_t num = 0;
    for (int32_t i = 0; i < id; i++) {
        const ir_node *m = &g->node[i];
        num += !((m->op == IR_input || m->op == IR_param) && m->attr.name) && !inline_const(m);
    }
    snprintf(buf, len, "%%%d", (int)num);
    return buf;
}

static bool same_float(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b) && !signbit(a) == !signbit(b);
    return a == b && !signbit(a) == !signbit(b);
}

/* The shortest "%.{6..9}g" that reads back as the same float, so 1/255 prints as
 * 0.00392156886 and 0.5 as 0.5; ".0" marks it as f32 where nothing else does. */
static void fmt_f32(char *buf, size_t len, float v)
{
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, len, "%.*g", prec, (double)v);
        if (same_float(strtof(buf, NULL), v))
            break;
    }
    if (!strpbrk(buf, ".en"))
        strncat(buf, ".0", len - strlen(buf) - 1);
}

static void fmt_const(char *buf, size_t len, const ir_node *n)
{
    double v = n->attr.value;
    if (n->dtype == AG_F32)
        fmt_f32(buf, len, (float)v);
    else if (v == floor(v) && fabs(v) < 9.2e18) /* i32, u8, bool: a plain integer */
        snprintf(buf, len, "%lld", (long long)v);
    else /* not a value of its dtype (the verifier says so); still print something exact */
        rt_fmt_double(buf, len, v);
}

static const char *op_name(const ir_node *n) { return (unsigned)n->op < IR_OP_COUNT ? ir_ops[n->op].name : "?"; }

/* The operand id as it is printed: a name, a number or a literal. Returns chars written. */
static int print_ref(FILE *f, const ir_graph *g, const int32_t *num, int32_t id)
{
    if (id < 0 || id >= g->n)
        return fprintf(f, "%%?%d", (int)id); /* a broken graph; ir_verify says why */
    const ir_node *n = &g->node[id];
    if ((n->op == IR_input || n->op == IR_param) && n->attr.name)
        return fprintf(f, "%%%s", n->attr.name);
    if (inline_const(n)) {
        char buf[64];
        fmt_const(buf, sizeof buf, n);
        return fprintf(f, "%s", buf);
    }
    return fprintf(f, "%%%d", (int)num[id]);
}

static int print_type(FILE *f, ag_dtype t, const ir_shape *s)
{
    int k = fprintf(f, "%s[", ir_dtype_name(t));
    for (int i = 0; i < s->rank && i < IR_MAX_RANK; i++) {
        if (s->dim[i] == AG_N)
            k += fprintf(f, "%sN", i ? "," : "");
        else
            k += fprintf(f, "%s%lld", i ? "," : "", (long long)s->dim[i]);
    }
    return k + fprintf(f, "]");
}

static int print_init(FILE *f, const ag_init *init)
{
    char a[32], b[32];
    rt_fmt_double(a, sizeof a, init->a);
    rt_fmt_double(b, sizeof b, init->b);
    switch (init->kind) {
    case AG_INIT_ZEROS: return fprintf(f, " zeros");
    case AG_INIT_CONSTANT: return fprintf(f, " constant(%s)", a);
    case AG_INIT_NORMAL: return fprintf(f, " normal(%s, %s)", a, b);
    case AG_INIT_UNIFORM: return fprintf(f, " uniform(%s, %s)", a, b);
    case AG_INIT_XAVIER: return fprintf(f, " xavier");
    }
    return fprintf(f, " ?init%d", (int)init->kind);
}

static const char *name_or(const char *s) { return s ? s : "?"; }

/* The attributes the op's attrs column names, in the table's order. */
static int print_attrs(FILE *f, const ir_graph *g, const ir_node *n)
{
    unsigned attrs = (unsigned)n->op < IR_OP_COUNT ? ir_ops[n->op].attrs : 0;
    const ir_attrs *a = &n->attr;
    int k = 0;
    if (attrs & A_AXES) {
        k += fprintf(f, " axes=[");
        for (int i = 0, first = 1; i < 8; i++)
            if (a->axes >> i & 1) {
                k += fprintf(f, "%s%d", first ? "" : ",", i);
                first = 0;
            }
        k += fprintf(f, "]%s", a->keepdims ? " keepdims" : "");
    }
    if (attrs & A_AXIS)
        k += fprintf(f, " axis=%d", a->axis);
    if (attrs & A_START)
        k += fprintf(f, " start=%lld", (long long)a->start);
    if (attrs & A_PERM) {
        k += fprintf(f, " perm=[");
        for (int i = 0; i < n->shape.rank && i < IR_MAX_RANK; i++)
            k += fprintf(f, "%s%d", i ? "," : "", a->perm[i]);
        k += fprintf(f, "]");
    }
    if ((attrs & A_TRANS) && a->ta)
        k += fprintf(f, " ta");
    if ((attrs & A_TRANS) && a->tb)
        k += fprintf(f, " tb");
    if (attrs & A_P) {
        char buf[32];
        rt_fmt_double(buf, sizeof buf, a->value);
        k += fprintf(f, " p=%s", buf);
    }
    if (attrs & A_SITE)
        k += fprintf(f, " site=%d", (int)a->site);
    if (attrs & A_CLASSES)
        k += fprintf(f, " classes=%d", (int)a->classes);
    if (attrs & A_BUCKET)
        k += fprintf(f, " bucket=%d", (int)a->bucket);
    if (attrs & A_WINDOW) {
        const ir_window *w = &a->win;
        k += fprintf(f, " kernel=[%d,%d] stride=[%d,%d] pad=[%d,%d] dilation=[%d,%d] groups=%d", w->kernel[0],
                     w->kernel[1], w->stride[0], w->stride[1], w->pad[0], w->pad[1], w->dilation[0], w->dilation[1],
                     w->groups);
    }
    if (attrs & A_KERNEL) {
        const ir_graph *b = a->kernel >= 0 && a->kernel < g->nkernels ? g->kernels[a->kernel] : NULL;
        const char *out = b && a->output >= 0 && a->output < b->nout ? b->out[a->output].name : NULL;
        k += fprintf(f, " body=@k%d out=%s", (int)a->kernel, name_or(out));
    }
    return k;
}

/* The length of the UTF-8 sequence at s (n bytes left) if it is well formed and encodes a
 * printable character (not C1 control, surrogate, overlong or past U+10FFFF); else 0. */
static int utf8_printable(const unsigned char *s, size_t n)
{
    int len = s[0] >= 0xf8 ? 0 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
    if (!len || (size_t)len > n)
        return 0;
    uint32_t c = s[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    static const uint32_t least[5] = {0, 0, 0xa0, 0x800, 0x10000}; /* below 0xa0: C1 controls */
    if (c < least[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

/* A string, double-quoted: \" \\ \n \t, \xHH for the other control bytes and for bytes that
 * are not printable UTF-8; printable UTF-8 as it is. */
static void print_string(FILE *f, const char *s)
{
    fputc('"', f);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);
    while (n) {
        int k = *p >= 0x80 ? utf8_printable(p, n) : 1;
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f || !k)
            fprintf(f, "\\x%02x", *p);
        else
            fwrite(p, 1, (size_t)k, f);
        k = k ? k : 1;
        p += k;
        n -= (size_t)k;
    }
    fputc('"', f);
}

static void print_names(FILE *f, const char *const *names, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? ", " : "", name_or(names ? names[i] : NULL));
    fputc(']', f);
}

/* The train and optimizer lines. */
static void print_training(FILE *f, const ir_train *t)
{
    static const char *const stages[] = {"model", "gradients", "step"};
    char a[32], b[32];
    fprintf(f, "  train %s loss=%s", (unsigned)t->stage < 3 ? stages[t->stage] : "?", name_or(t->loss));
    if (t->nmetrics > 0) {
        fprintf(f, " metrics=");
        print_names(f, t->metrics, t->nmetrics < IR_MAX_METRICS ? t->nmetrics : IR_MAX_METRICS);
    }
    if (t->predict)
        fprintf(f, " predict=%s", t->predict);
    rt_fmt_double(a, sizeof a, t->lr);
    rt_fmt_double(b, sizeof b, t->wd);
    fprintf(f, "\n  optimizer %s lr=%s wd=%s", name_or(t->optimizer), a, b);
    const ir_optimizer_kind *k = ir_optimizer_find(t->optimizer);
    for (int h = 0; k && h < IR_HP_COUNT; h++)
        if ((k->keys >> h & 1) && !((k->optional >> h & 1) && t->hp[h] == 0))
            fprintf(f, " %s=%s", ir_hp_names[h], rt_fmt_double(a, sizeof a, t->hp[h]));
    fprintf(f, " batch=%lld epochs=%lld\n", (long long)t->batch, (long long)t->epochs);
    if (t->bucket_bytes > 0)
        fprintf(f, "  distributed bucket_bytes=%lld\n", (long long)t->bucket_bytes);
}

/* The declarations, after `return`: train, optimizer (where training is declared: a graph
 * without has options alone), groups, data, options. */
static void print_train(FILE *f, const ir_train *t)
{
    char a[32], b[32];
    if (t->loss)
        print_training(f, t);
    for (int i = 0; i < t->ngroups && t->groups; i++) {
        const ir_group *gr = &t->groups[i];
        rt_fmt_double(a, sizeof a, gr->wd_scale);
        rt_fmt_double(b, sizeof b, gr->lr_scale);
        fprintf(f, "  group %s wd_scale=%s lr_scale=%s params=", name_or(gr->name), a, b);
        print_names(f, gr->params, gr->nparams);
        fputc('\n', f);
    }
    if (t->data) {
        fprintf(f, "  data ");
        print_string(f, t->data);
        if (t->nclasses > 0 && t->classes) {
            fprintf(f, " classes=[");
            for (int i = 0; i < t->nclasses; i++) {
                fprintf(f, i ? ", " : "");
                print_string(f, t->classes[i]);
            }
            fputc(']', f);
        }
        fputc('\n', f);
    }
    for (int i = 0; i < t->noptions && t->options; i++) {
        const ir_option *o = &t->options[i];
        fprintf(f, "  option %s=", name_or(o->name));
        print_string(f, o->value);
        fprintf(f, " choices=");
        print_string(f, o->choices);
        fputc('\n', f);
    }
}

/* The memory plan, after the declarations (a body has none). */
static void print_plan(FILE *f, const ir_graph *g, const int32_t *num)
{
    const ir_plan *p = g->plan;
    fprintf(f, "  memory batch=%lld arena=%lld\n", (long long)p->batch, (long long)p->arena);
    for (int32_t id = 0; id < g->n && p->offset && p->inplace; id++) {
        if (p->offset[id] >= 0) {
            fprintf(f, "  buffer ");
            print_ref(f, g, num, id);
            fprintf(f, " offset=%lld", (long long)p->offset[id]);
            if (p->offset_n && p->offset_n[id])
                fprintf(f, " offset_n=%lld", (long long)p->offset_n[id]);
            fputc('\n', f);
        }
        if (p->inplace[id] >= 0) {
            fprintf(f, "  inplace ");
            print_ref(f, g, num, id);
            fprintf(f, " into=");
            print_ref(f, g, num, p->inplace[id]);
            fputc('\n', f);
        }
    }
}

/* One block: "graph @NAME {" (or "kernel @kK {" for a body), its nodes, return, the
 * declarations and the memory plan. */
static void print_block(FILE *f, const ir_graph *g, const char *word, const char *name)
{
    fprintf(f, "%s @%s {\n", word, name);
    int32_t *num = ir_xcalloc((size_t)(g->n > 0 ? g->n : 1), sizeof *num);
    int32_t next = 0;
    for (int32_t id = 0; id < g->n; id++) {
        const ir_node *n = &g->node[id];
        bool named = (n->op == IR_input || n->op == IR_param) && n->attr.name;
        if (inline_const(n))
            continue;
        int k = 0;
        if (named)
            k += fprintf(f, "  %%%s: ", n->attr.name);
        else
            k += fprintf(f, "  %%%d: ", (int)(num[id] = next++));
        k += print_type(f, n->dtype, &n->shape);
        k += fprintf(f, " = %s", op_name(n));
        if (n->op == IR_param)
            k += print_init(f, &n->attr.init);
        if ((n->op == IR_input || n->op == IR_param) && n->attr.role != AG_ROLE_NONE)
            k += fprintf(f, " role=%s", ir_role_name(n->attr.role));
        if (n->op == IR_input && n->attr.grad)
            k += fprintf(f, " grad");
        if (n->op == IR_const) {
            char buf[64];
            fmt_const(buf, sizeof buf, n);
            k += fprintf(f, " %s", buf);
        }
        for (int i = 0; i < n->nin && n->in; i++) {
            k += fprintf(f, i ? ", " : " ");
            k += print_ref(f, g, num, n->in[i]);
        }
        k += print_attrs(f, g, n);
        if (n->loc.file)
            fprintf(f, "%*s; %s:%d", k < LOC_COLUMN ? LOC_COLUMN - k : 1, "", n->loc.file, n->loc.line);
        fputc('\n', f);
    }
    fprintf(f, "  return");
    for (int i = 0; i < g->nout; i++) {
        fprintf(f, "%s %s: ", i ? "," : "", g->out[i].name ? g->out[i].name : "?");
        print_ref(f, g, num, g->out[i].id);
    }
    fputc('\n', f);
    if (g->train)
        print_train(f, g->train);
    if (g->plan && !strcmp(word, "graph"))
        print_plan(f, g, num);
    fprintf(f, "}\n");
    free(num);
}

/* The bodies of g's kernels first, in index order, each followed by a blank line; then g. */
void ir_print(FILE *f, const ir_graph *g)
{
    for (int32_t k = 0; k < g->nkernels && g->kernels; k++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", (int)k);
        if (g->kernels[k])
            print_block(f, g->kernels[k], "kernel", name);
        else /* a broken graph; ir_verify says why */
            fprintf(f, "kernel @%s {\n  return\n}\n", name);
        fputc('\n', f);
    }
    print_block(f, g, "graph", g->name ? g->name : "graph");
}

char *ir_print_str(const ir_graph *g)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    if (!f)
        ir_out_of_memory();
    ir_print(f, g);
    fclose(f);
    return s;
}
