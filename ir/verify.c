/* The verifier: checks a graph however it was built (DSL, parser, a pass), node by node in
 * array order, so each node's operands are known good before its own rule reads them.
 * It trusts nothing it has not checked, so a hand-broken graph gets a message, not a crash.
 * Shapes and dtypes are checked by re-running the same ir_infer the builders use. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

static bool failv(char *err, size_t len, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* "verify: node %ID (OP at FILE:LINE): MESSAGE" */
static bool fail(const ir_graph *g, int32_t id, char *err, size_t len, const char *fmt, ...)
{
    const ir_node *n = &g->node[id];
    char op[32], at[300] = "", msg[512];
    if ((unsigned)n->op < IR_OP_COUNT)
        snprintf(op, sizeof op, "%s", ir_ops[n->op].name);
    else
        snprintf(op, sizeof op, "op %d", (int)n->op);
    if (n->loc.file)
        snprintf(at, sizeof at, " at %s:%d", n->loc.file, n->loc.line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return failv(err, len, "verify: node %%%d (%s%s): %s", (int)id, op, at, msg);
}

static bool is_identifier(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '.'))
            return false;
    return true;
}

/* Before any rule reads a shape: a sane rank, dims positive or N, and an element count
 * that fits (the rules multiply extents). */
static const char *shape_problem(const ir_shape *s, char *buf, size_t len)
{
    if (s->rank < 0 || s->rank > IR_MAX_RANK)
        return snprintf(buf, len, "rank %d; at most %d dims", s->rank, IR_MAX_RANK), buf;
    int64_t numel = 1;
    int batch = 0;
    for (int i = 0; i < s->rank; i++) {
        if (s->dim[i] == AG_N)
            batch++;
        else if (s->dim[i] < 1)
            return snprintf(buf, len, "dim %d is %lld; dims are positive or N", i, (long long)s->dim[i]), buf;
        else if (__builtin_mul_overflow(numel, s->dim[i], &numel))
            return snprintf(buf, len, "the shape has too many elements"), buf;
    }
    if (batch > 1)
        return snprintf(buf, len, "the batch dim N appears %d times", batch), buf;
    return NULL;
}

/* An attribute the op's attrs column does not list must be left zero, or the printed form
 * (which omits it) would not be the graph. */
static const char *stray_attr(const ir_node *n)
{
    unsigned has = ir_ops[n->op].attrs;
    const ir_attrs *a = &n->attr;
    static const int8_t noperm[IR_MAX_RANK];
    static const ag_init noinit;
    if (!(has & A_AXES) && (a->axes || a->keepdims))
        return "axes";
    if (!(has & A_AXIS) && a->axis)
        return "axis";
    if (!(has & A_PERM) && memcmp(a->perm, noperm, sizeof noperm))
        return "perm";
    if (!(has & A_TRANS) && (a->ta || a->tb))
        return "ta/tb";
    if (!(has & (A_P | A_VALUE)) && (a->value != 0 || signbit(a->value)))
        return "value";
    if (!(has & A_SITE) && a->site)
        return "site";
    if (!(has & A_CLASSES) && a->classes)
        return "classes";
    if (!(has & A_INIT) && memcmp(&a->init, &noinit, sizeof noinit))
        return "init";
    if (!(has & A_NAME) && a->name)
        return "name";
    return NULL;
}

static bool check_node(const ir_graph *g, int32_t id, char *err, size_t len)
{
    const ir_node *n = &g->node[id];
    char buf[128];
    if ((unsigned)n->op >= IR_OP_COUNT)
        return fail(g, id, err, len, "unknown op code %d", (int)n->op);
    const char *name = ir_ops[n->op].name;
    int arity = ir_ops[n->op].arity;
    if (arity >= 0 && n->nin != arity)
        return fail(g, id, err, len, "%s takes %d operand%s, has %d", name, arity, arity == 1 ? "" : "s", (int)n->nin);
    if (arity < 0 && n->nin < 1)
        return fail(g, id, err, len, "%s takes one or more operands, has %d", name, (int)n->nin);
    if (n->nin > 0 && !n->in)
        return fail(g, id, err, len, "operand list is NULL");
    for (int i = 0; i < n->nin; i++)
        if (n->in[i] < 0 || n->in[i] >= id)
            return fail(g, id, err, len, "operand %d is %%%d, not an earlier node", i, (int)n->in[i]);
    if ((unsigned)n->dtype >= AG_DTYPE_COUNT || n->dtype == AG_F64)
        return fail(g, id, err, len, "dtype %s (%d) is not allowed in a graph", ir_dtype_name(n->dtype),
                    (int)n->dtype);
    if (shape_problem(&n->shape, buf, sizeof buf))
        return fail(g, id, err, len, "%s", buf);
    const char *stray = stray_attr(n);
    if (stray)
        return fail(g, id, err, len, "attribute %s is set, but %s has none", stray, name);

    switch (n->op) {
    case IR_input:
    case IR_param:
        if (!is_identifier(n->attr.name))
            return fail(g, id, err, len, "%s name \"%s\" is not an identifier", name,
                        n->attr.name ? n->attr.name : "(null)");
        if (n->op == IR_param) {
            const ag_init *in = &n->attr.init;
            bool unused_a = in->kind == AG_INIT_ZEROS || in->kind == AG_INIT_XAVIER;
            bool unused_b = unused_a || in->kind == AG_INIT_CONSTANT;
            if ((unused_a && (in->a != 0 || signbit(in->a))) || (unused_b && (in->b != 0 || signbit(in->b))))
                return fail(g, id, err, len, "param %s: its initializer has a stray argument", n->attr.name);
        }
        break;
    case IR_const: {
        double v = n->attr.value;
        bool ok = n->dtype == AG_F32   ? isnan(v) || v == (double)(float)v
                  : n->dtype == AG_I32 ? v == floor(v) && v >= -2147483648.0 && v <= 2147483647.0
                  : n->dtype == AG_U8  ? v == floor(v) && v >= 0 && v <= 255
                                       : v == 0 || v == 1;
        if (!ok)
            return fail(g, id, err, len, "const: the value %.17g is not a %s", v, ir_dtype_name(n->dtype));
        break;
    }
    case IR_concat: { /* the rule adds extents along the axis: they must not overflow */
        int64_t sum = 0;
        for (int i = 0; i < n->nin; i++) {
            const ir_shape *s = &g->node[n->in[i]].shape;
            if (n->attr.axis >= 0 && n->attr.axis < s->rank && s->dim[n->attr.axis] > 0 &&
                __builtin_add_overflow(sum, s->dim[n->attr.axis], &sum))
                return fail(g, id, err, len, "concat: the joined extent overflows");
        }
        break;
    }
    default:
        break;
    }

    ir_node copy = *n;
    char msg[256];
    if (!ir_infer(g, &copy, msg, sizeof msg))
        return fail(g, id, err, len, "%s", msg);
    if (copy.dtype != n->dtype || !ir_shape_eq(&copy.shape, &n->shape)) {
        char a[80], b[80];
        return fail(g, id, err, len, "declared %s but %s gives %s", ir_type_str(n->dtype, &n->shape, a, sizeof a),
                    name, ir_type_str(copy.dtype, &copy.shape, b, sizeof b));
    }
    return true;
}

/* (key, id) pairs sorted to find repeats: names of sources, dropout sites, output names. */
typedef struct keyed {
    const char *name;
    int32_t key, id;
} keyed;

static int by_name(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->id > y->id) - (x->id < y->id);
}

static int by_key(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static keyed *xmalloc_keys(int32_t n)
{
    keyed *k = malloc(sizeof *k * (size_t)(n > 0 ? n : 1));
    if (!k) {
        fprintf(stderr, "aotgrad: out of memory\n");
        exit(1);
    }
    return k;
}

static bool check_unique(const ir_graph *g, char *err, size_t len)
{
    keyed *names = xmalloc_keys(g->n), *sites = xmalloc_keys(g->n);
    int32_t nn = 0, ns = 0;
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if (n->op == IR_input || n->op == IR_param)
            names[nn++] = (keyed){n->attr.name, 0, i};
        if (n->op == IR_dropout)
            sites[ns++] = (keyed){NULL, n->attr.site, i};
    }
    qsort(names, (size_t)nn, sizeof *names, by_name);
    qsort(sites, (size_t)ns, sizeof *sites, by_key);
    bool ok = true;
    for (int32_t i = 1; ok && i < nn; i++)
        if (strcmp(names[i].name, names[i - 1].name) == 0)
            ok = fail(g, names[i].id, err, len, "the name %s is already used by node %%%d", names[i].name,
                      (int)names[i - 1].id);
    for (int32_t i = 1; ok && i < ns; i++)
        if (sites[i].key == sites[i - 1].key)
            ok = fail(g, sites[i].id, err, len, "dropout site %d is already used by node %%%d", (int)sites[i].key,
                      (int)sites[i - 1].id);
    free(names);
    free(sites);
    return ok;
}

static bool check_outputs(const ir_graph *g, char *err, size_t len)
{
    if (g->nout < 1 || !g->out)
        return failv(err, len, "verify: graph @%s has no outputs", g->name ? g->name : "?");
    for (int32_t i = 0; i < g->nout; i++) {
        const ir_output *o = &g->out[i];
        if (!o->name || !o->name[0])
            return failv(err, len, "verify: output %d has no name", (int)i);
        if (!is_identifier(o->name))
            return failv(err, len, "verify: output %d: name \"%s\" is not an identifier", (int)i, o->name);
        if (o->id < 0 || o->id >= g->n)
            return failv(err, len, "verify: output %s: %%%d is not a node", o->name, (int)o->id);
    }
    keyed *names = xmalloc_keys(g->nout);
    for (int32_t i = 0; i < g->nout; i++)
        names[i] = (keyed){g->out[i].name, 0, i};
    qsort(names, (size_t)g->nout, sizeof *names, by_name);
    bool ok = true;
    for (int32_t i = 1; ok && i < g->nout; i++)
        if (strcmp(names[i].name, names[i - 1].name) == 0)
            ok = failv(err, len, "verify: output %s: the name is used twice", names[i].name);
    free(names);
    return ok;
}

bool ir_verify(const ir_graph *g, char *err, size_t len)
{
    if (!g)
        return failv(err, len, "verify: no graph");
    if (g->n < 0 || (g->n > 0 && !g->node) || g->nout < 0)
        return failv(err, len, "verify: graph @%s: broken node or output arrays", g->name ? g->name : "?");
    for (int32_t id = 0; id < g->n; id++)
        if (!check_node(g, id, err, len))
            return false;
    return check_unique(g, err, len) && check_outputs(g, err, len);
}
