/* The verifier: checks a graph however it was built (DSL, parser, a pass), node by node in
 * array order, so each node's operands are known good before its own rule reads them.
 * It trusts nothing it has not checked, so a hand-broken graph gets a message, not a crash.
 * Shapes and dtypes are checked by re-running the same ir_infer the builders use, and the
 * training declarations (g->train) against the outputs and params they name.
 *
 * The bodies of kernels (g->kernels) are checked first, each as a graph of its own with the
 * checks of a body (no params, no kernels, no declarations, no plan), so that rule_kernel
 * can read them when it checks the kernel nodes that use them.
 *
 * A memory plan (g->plan), once nodes and outputs are good, is checked as a whole, since a
 * dump may have been edited by hand: every computed value has a place (an arena buffer, or a
 * parameter it overwrites), buffers are aligned and inside the arena, values alive together
 * never share a byte, and an update in place leaves nothing to read the old parameter. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "ir.h"

/* "%ID (OP at FILE:LINE)": node id of g as fail's messages name it, into buf */
static const char *node_label(const ir_graph *g, int32_t id, char *buf, size_t len)
{
    const ir_node *n = &g->node[id];
    char op[32], at[300] = "";
    if ((unsigned)n->op < IR_OP_COUNT)
        snprintf(op, sizeof op, "%s", ir_ops[n->op].name);
    else
        snprintf(op, sizeof op, "op %d", (int)n->op);
    if (n->loc.file)
        snprintf(at, sizeof at, " at %s:%d", n->loc.file, n->loc.line);
    snprintf(buf, len, "%%%d (%s%s)", (int)id, op, at);
    return buf;
}

/* "verify: node %ID (OP at FILE:LINE): MESSAGE" into (err, len); false. fmt is a literal. */
#define fail(g, id, err, len, fmt, ...) \
    rt_fail(err, len, "verify: node %s: " fmt, node_label(g, id, (char[352]){0}, 352), ##__VA_ARGS__)

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
    if (!(has & A_BUCKET) && a->bucket)
        return "bucket";
    if (!(has & A_START) && a->start)
        return "start";
    if (!(has & A_GRAD) && a->grad)
        return "grad";
    if (!(has & A_ROLE) && a->role != AG_ROLE_NONE)
        return "role";
    if (!(has & A_INIT) && memcmp(&a->init, &noinit, sizeof noinit))
        return "init";
    if (!(has & A_NAME) && a->name)
        return "name";
    if (!(has & A_KERNEL) && (a->kernel || a->output))
        return "kernel/output";
    static const ir_window nowin;
    if (!(has & A_WINDOW) && memcmp(&a->win, &nowin, sizeof nowin))
        return "window";
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
        return fail(g, id, err, len, "dtype %s (%d) is not allowed in a graph", ir_dtype_name(n->dtype), (int)n->dtype);
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
        if (n->op == IR_input && n->attr.grad && n->dtype != AG_F32)
            return fail(g, id, err, len, "input %s: a gradient needs f32, not %s", n->attr.name,
                        ir_dtype_name(n->dtype));
        if (n->op == IR_param && n->attr.role != AG_ROLE_NONE && !ir_role_of_param(n->attr.role))
            return fail(g, id, err, len, "param %s: role=%s is an input's; a param's role is state or accum",
                        n->attr.name, ir_role_name(n->attr.role));
        if (n->op == IR_input && n->attr.role != AG_ROLE_NONE) {
            ag_role r = n->attr.role;
            if ((unsigned)r >= AG_ROLE_COUNT)
                return fail(g, id, err, len, "input %s: unknown role %d", n->attr.name, (int)r);
            if (ir_role_of_param(r))
                return fail(g, id, err, len, "input %s: role=%s is a param's", n->attr.name, ir_role_name(r));
            if (ir_role_is_scalar(r) && (n->dtype != AG_F32 || n->shape.rank != 0))
                return fail(g, id, err, len, "input %s: role=%s is an f32 scalar, not %s", n->attr.name,
                            ir_role_name(r), ir_type_str(n->dtype, &n->shape, (char[80]){0}, 80));
            if ((r == AG_ROLE_DATA || r == AG_ROLE_LABELS) && (n->shape.rank == 0 || n->shape.dim[0] != AG_N))
                return fail(g, id, err, len, "input %s: role=%s holds a batch, [N, ...], not %s", n->attr.name,
                            ir_role_name(r), ir_shape_str(&n->shape, (char[64]){0}, 64));
            for (int32_t j = 0; j < id; j++)
                if (g->node[j].op == IR_input && g->node[j].attr.role == r)
                    return fail(g, id, err, len, "input %s: role=%s is %s's already", n->attr.name, ir_role_name(r),
                                g->node[j].attr.name);
        }
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
    case IR_kernel: { /* which body and output, before rule_kernel reads them */
        if (n->attr.kernel < 0 || n->attr.kernel >= g->nkernels)
            return fail(g, id, err, len, "kernel: no body @k%d (the graph has %d)", (int)n->attr.kernel,
                        (int)g->nkernels);
        const ir_graph *b = g->kernels[n->attr.kernel];
        if (n->attr.output < 0 || n->attr.output >= b->nout)
            return fail(g, id, err, len, "kernel: body @k%d has no output %d (it has %d)", (int)n->attr.kernel,
                        (int)n->attr.output, (int)b->nout);
        break;
    }
    case IR_slice: { /* the rule computes start + extent: it must not overflow */
        int ax = n->attr.axis;
        if (ax >= 0 && ax < n->shape.rank && n->shape.dim[ax] > 0 && n->attr.start > INT64_MAX - n->shape.dim[ax] + 1)
            return fail(g, id, err, len, "slice: start %lld is out of range", (long long)n->attr.start);
        break;
    }
    default: break;
    }

    ir_node copy = *n;
    char msg[256];
    if (!ir_infer(g, &copy, msg, sizeof msg))
        return fail(g, id, err, len, "%s", msg);
    if (copy.dtype != n->dtype || !ir_shape_eq(&copy.shape, &n->shape)) {
        char a[80], b[80];
        return fail(g, id, err, len, "declared %s but %s gives %s", ir_type_str(n->dtype, &n->shape, a, sizeof a), name,
                    ir_type_str(copy.dtype, &copy.shape, b, sizeof b));
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

static keyed *xmalloc_keys(int32_t n) { return ir_xmalloc(sizeof(keyed) * (size_t)(n > 0 ? n : 1)); }

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
    /* a site may repeat (a dropout's backward pass reuses its mask), with the same p */
    for (int32_t i = 1; ok && i < ns; i++) {
        double p = g->node[sites[i].id].attr.value, q = g->node[sites[i - 1].id].attr.value;
        char a[32], b[32];
        if (sites[i].key == sites[i - 1].key && p != q)
            ok = fail(g, sites[i].id, err, len, "dropout site %d has p=%s, but node %%%d has p=%s", (int)sites[i].key,
                      rt_fmt_double(a, sizeof a, p), (int)sites[i - 1].id, rt_fmt_double(b, sizeof b, q));
    }
    free(names);
    free(sites);
    return ok;
}

static bool check_outputs(const ir_graph *g, char *err, size_t len)
{
    if (g->nout < 1 || !g->out)
        return rt_fail(err, len, "verify: graph @%s has no outputs", g->name ? g->name : "?");
    for (int32_t i = 0; i < g->nout; i++) {
        const ir_output *o = &g->out[i];
        if (!o->name || !o->name[0])
            return rt_fail(err, len, "verify: output %d has no name", (int)i);
        if (!is_identifier(o->name))
            return rt_fail(err, len, "verify: output %d: name \"%s\" is not an identifier", (int)i, o->name);
        if (o->id < 0 || o->id >= g->n)
            return rt_fail(err, len, "verify: output %s: %%%d is not a node", o->name, (int)o->id);
    }
    keyed *names = xmalloc_keys(g->nout);
    for (int32_t i = 0; i < g->nout; i++)
        names[i] = (keyed){g->out[i].name, 0, i};
    qsort(names, (size_t)g->nout, sizeof *names, by_name);
    bool ok = true;
    for (int32_t i = 1; ok && i < g->nout; i++)
        if (strcmp(names[i].name, names[i - 1].name) == 0)
            ok = rt_fail(err, len, "verify: output %s: the name is used twice", names[i].name);
    free(names);
    return ok;
}

/* An output the declarations name: it exists; scalar when asked, f32 too when asked. */
static bool check_named_output(const ir_graph *g, const char *what, const char *name, int want, char *err, size_t len)
{
    if (!name)
        return rt_fail(err, len, "verify: train: the %s is not set", what);
    int o = -1; /* a scan, not the graph's table: the verifier trusts no cache of what it checks */
    for (int i = 0; i < g->nout && o < 0; i++)
        if (strcmp(g->out[i].name, name) == 0)
            o = i;
    if (o < 0)
        return rt_fail(err, len, "verify: train: %s '%s' is not an output", what, name);
    const ir_node *n = &g->node[g->out[o].id];
    char ty[80];
    if (want && (n->shape.rank != 0 || (want == 2 && n->dtype != AG_F32)))
        return rt_fail(err, len, "verify: train: %s '%s' is %s, not a scalar%s", what, name,
                       ir_type_str(n->dtype, &n->shape, ty, sizeof ty), want == 2 ? " f32" : "");
    return true;
}

static bool check_options(const ir_train *t, char *err, size_t len)
{
    if (t->noptions < 0 || (t->noptions > 0 && !t->options))
        return rt_fail(err, len, "verify: train: broken option array");
    for (int i = 0; i < t->noptions; i++) {
        const ir_option *o = &t->options[i];
        if (!is_identifier(o->name))
            return rt_fail(err, len, "verify: train: option %d: name \"%s\" is not an identifier", i,
                           o->name ? o->name : "(null)");
        for (int k = 0; k < i; k++)
            if (!strcmp(t->options[k].name, o->name))
                return rt_fail(err, len, "verify: train: option %s is declared twice", o->name);
        if (!o->value || !o->choices)
            return rt_fail(err, len, "verify: train: option %s: its value or choices are not set", o->name);
    }
    return true;
}

static bool check_train(const ir_graph *g, char *err, size_t len)
{
    const ir_train *t = g->train;
    if (!t)
        return true;
    if (!t->loss && !t->optimizer && !t->nmetrics && !t->predict && !t->ngroups && !t->data &&
        t->stage == IR_STAGE_MODEL) /* options alone: no training declared (a forward computation) */
        return check_options(t, err, len);
    if ((unsigned)t->stage > IR_STAGE_STEP)
        return rt_fail(err, len, "verify: train: unknown stage %d", (int)t->stage);
    if (!check_named_output(g, "loss", t->loss, 2, err, len))
        return false;
    if (t->nmetrics < 0 || t->nmetrics > IR_MAX_METRICS)
        return rt_fail(err, len, "verify: train: %d metrics; at most %d", t->nmetrics, IR_MAX_METRICS);
    for (int i = 0; i < t->nmetrics; i++) {
        if (!check_named_output(g, "metric", t->metrics[i], 1, err, len))
            return false;
        for (int k = 0; k < i; k++)
            if (!strcmp(t->metrics[k], t->metrics[i]))
                return rt_fail(err, len, "verify: train: metric '%s' is listed twice", t->metrics[i]);
    }
    if (t->predict && !check_named_output(g, "predict", t->predict, 0, err, len))
        return false;
    /* predictions are what `predict` prints for inputs alone: not the loss or a metric, which
     * need the labels (the eval graph keeps one output for each role) */
    for (int i = -1; t->predict && i < t->nmetrics; i++)
        if (!strcmp(t->predict, i < 0 ? t->loss : t->metrics[i]))
            return rt_fail(err, len,
                           "verify: train: predict=%s names the %s; predictions are an output of their own (the "
                           "logits or the regression's output: `return ..., predict: %%LOGITS` and predict=predict), "
                           "or drop predict=",
                           t->predict, i < 0 ? "loss" : "metric of that name");
    if (!is_identifier(t->optimizer))
        return rt_fail(err, len, "verify: train: optimizer name \"%s\" is not an identifier",
                       t->optimizer ? t->optimizer : "(null)");
    char why[300];
    if (!ir_optimizer_check(t, why, sizeof why))
        return rt_fail(err, len, "verify: train: %s", why);
    if (t->batch < 1 || t->epochs < 1 || t->batch > IR_MAX_COUNT || t->epochs > IR_MAX_COUNT)
        return rt_fail(err, len, "verify: train: batch %lld and epochs %lld must be from 1 to 2^30",
                       (long long)t->batch, (long long)t->epochs);
    if (t->nclasses < 0 || t->nclasses > IR_MAX_CLASSES)
        return rt_fail(err, len, "verify: train: %d classes; at most %d", t->nclasses, IR_MAX_CLASSES);
    if (t->nclasses > 0 && !t->data)
        return rt_fail(err, len, "verify: train: classes without data");
    for (int i = 0; i < t->nclasses; i++)
        if (!t->classes || !t->classes[i])
            return rt_fail(err, len, "verify: train: class %d is not set", i);

    if (t->ngroups < 0 || (t->ngroups > 0 && !t->groups))
        return rt_fail(err, len, "verify: train: broken group array");
    int64_t total = 0;
    for (int i = 0; i < t->ngroups; i++) {
        const ir_group *gr = &t->groups[i];
        if (!is_identifier(gr->name))
            return rt_fail(err, len, "verify: train: group %d: name \"%s\" is not an identifier", i,
                           gr->name ? gr->name : "(null)");
        for (int k = 0; k < i; k++)
            if (!strcmp(t->groups[k].name, gr->name))
                return rt_fail(err, len, "verify: train: group %s is declared twice", gr->name);
        if (!(gr->wd_scale >= 0 && gr->wd_scale <= FLT_MAX && gr->lr_scale >= 0 && gr->lr_scale <= FLT_MAX))
            return rt_fail(err, len,
                           "verify: train: group %s: wd_scale %g and lr_scale %g must be finite, >= 0 and fit an f32",
                           gr->name, gr->wd_scale, gr->lr_scale);
        if (gr->nparams < 0 || (gr->nparams > 0 && !gr->params))
            return rt_fail(err, len, "verify: train: group %s: broken param array", gr->name);
        for (int k = 0; k < gr->nparams; k++)
            if (!gr->params[k] || ir_find_source(g, IR_param, gr->params[k]) < 0)
                return rt_fail(err, len, "verify: train: group %s: '%s' is not a param", gr->name,
                               gr->params[k] ? gr->params[k] : "(null)");
        total += gr->nparams;
    }
    /* each param in one group at most: sort (name, group) pairs */
    keyed *ps = xmalloc_keys((int32_t)(total < INT32_MAX ? total : INT32_MAX));
    int32_t np = 0;
    for (int i = 0; i < t->ngroups; i++)
        for (int k = 0; k < t->groups[i].nparams && np < INT32_MAX; k++)
            ps[np++] = (keyed){t->groups[i].params[k], 0, i};
    qsort(ps, (size_t)np, sizeof *ps, by_name);
    bool ok = true;
    for (int32_t i = 1; ok && i < np; i++)
        if (!strcmp(ps[i].name, ps[i - 1].name))
            ok = ps[i].id == ps[i - 1].id ? rt_fail(err, len, "verify: train: group %s lists param %s twice",
                                                    t->groups[ps[i].id].name, ps[i].name)
                                          : rt_fail(err, len, "verify: train: param %s is in group %s and in group %s",
                                                    ps[i].name, t->groups[ps[i - 1].id].name, t->groups[ps[i].id].name);
    free(ps);
    return ok && check_options(t, err, len);
}

/* ---- the memory plan ---- */

#define PLAN_ALIGN 64     /* as passes/plan_memory.c aligns every buffer: its fixed part */
#define PLAN_ALIGN_ROW 16 /* and its part per row of the batch */

/* The bytes of n's value at the batch, false if that overflows. */
static bool value_bytes(const ir_node *n, int64_t batch, int64_t *bytes)
{
    int64_t b = (int64_t)ir_dtype_size(n->dtype);
    for (int i = 0; i < n->shape.rank; i++)
        if (__builtin_mul_overflow(b, n->shape.dim[i] == AG_N ? batch : n->shape.dim[i], &b))
            return false;
    *bytes = b;
    return true;
}

/* A plan read from the text IR: its error at the line of the value's buffer or inplace
 * line (the memory line for a value that has none), as the parser's errors are. */
static void locate_plan_error(const ir_plan *p, int32_t id, char *err, size_t len)
{
    if (!err || !len || id < 0 || !p->file || !p->line)
        return;
    int line = p->line[id] > 0 ? (int)p->line[id] : (int)p->memory_line;
    if (line <= 0)
        return;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", err);
    rt_fail(err, len, "%s:%d: error: %s", p->file, line, msg);
}

/* the value whose buffer v's is: an allreduce sums its operand in place */
static int32_t buffer_root(const ir_graph *g, int32_t v)
{
    while (g->node[v].op == IR_allreduce && g->node[v].nin == 1 && g->node[v].in[0] < v)
        v = g->node[v].in[0];
    return v;
}

static bool check_plan(const ir_graph *g, char *err, size_t len)
{
    const ir_plan *p = g->plan;
    char a[64], b[64], ty[80], tp[80];
    if (!p->offset || !p->offset_n || !p->inplace)
        return rt_fail(err, len, "verify: memory: broken plan arrays");
    if (p->batch < 1)
        return rt_fail(err, len, "verify: memory: batch %lld; it must be at least 1", (long long)p->batch);
    if (p->arena < 0)
        return rt_fail(err, len, "verify: memory: the arena's size %lld is negative", (long long)p->arena);
    if (p->arena > IR_MAX_BYTES) /* then every value that fits in it is a size that cannot overflow */
        return rt_fail(err, len, "verify: memory: the arena's size %lld is more than 2^%d bytes", (long long)p->arena,
                       IR_MAX_BYTES_LOG2);
    int32_t n = g->n;
    int64_t *bytes = ir_xcalloc((size_t)(n > 0 ? n : 1), sizeof *bytes);
    int32_t *last = ir_xmalloc(sizeof *last * (size_t)(n > 0 ? n : 1));
    int32_t *birth = ir_xmalloc(sizeof *birth * (size_t)(n > 0 ? n : 1));
    /* a value lives from the node computing it (a kernel's outputs from its first node) to its
     * last reader; an output, to the end */
    ir_lifetimes(g, birth, last);
    bool ok = true;
    int32_t bad = -1; /* the value an error is about */
    for (int32_t i = 0; ok && i < n; i++) {
        bad = i;
        const ir_node *v = &g->node[i];
        int64_t off = p->offset[i];
        int32_t into = p->inplace[i];
        ir_value_name(g, i, a, sizeof a);
        if (ir_ops[v->op].kind == IR_K_SOURCE) {
            if (off != -1 || into != -1)
                ok = rt_fail(err, len, "verify: memory: %s is %s %s, yet it has %s", a, v->op == IR_input ? "an" : "a",
                             ir_ops[v->op].name, off != -1 ? "a buffer" : "an in-place update");
            continue;
        }
        int32_t root = buffer_root(g, i);
        if (off == -1 && into == -1)
            ok = rt_fail(err, len, "verify: memory: %s has no buffer and overwrites no param", a);
        else if (root != i && (off != p->offset[root] || p->offset_n[i] != p->offset_n[root] || into != -1))
            ok = rt_fail(err, len, "verify: memory: %s is an allreduce, summed in the buffer of %s, but has %s", a,
                         ir_value_name(g, root, b, sizeof b), into != -1 ? "an in-place update" : "another offset");
        else if (off != -1 && into != -1)
            ok = rt_fail(err, len, "verify: memory: %s has a buffer and overwrites a param too", a);
        else if (into != -1) {
            if (into < 0 || into >= n) {
                ok = rt_fail(err, len, "verify: memory: %s overwrites node %d, which does not exist", a, (int)into);
                continue;
            }
            if (g->node[into].op != IR_param) {
                ok = rt_fail(err, len, "verify: memory: %s overwrites %s, not a param", a,
                             ir_value_name(g, into, b, sizeof b));
                continue;
            }
            const ir_node *w = &g->node[into];
            ir_value_name(g, into, b, sizeof b);
            if (v->dtype != w->dtype || !ir_shape_eq(&v->shape, &w->shape))
                ok = rt_fail(err, len, "verify: memory: %s is %s but overwrites %s, %s", a,
                             ir_type_str(v->dtype, &v->shape, ty, sizeof ty), b,
                             ir_type_str(w->dtype, &w->shape, tp, sizeof tp));
            else if (last[into] == n)
                ok = rt_fail(err, len, "verify: memory: %s overwrites %s, an output (read after the last node)", a, b);
            else if (ir_read_after(g, into, birth[i], i) >= 0) { /* written at its kernel's first node */
                char c[64];
                ok = rt_fail(err, len, "verify: memory: %s overwrites %s, which %s reads after it", a, b,
                             ir_value_name(g, ir_read_after(g, into, birth[i], i), c, sizeof c));
            }
            for (int32_t j = 0; ok && j < i; j++)
                if (p->inplace[j] == into) {
                    char c[64];
                    ok = rt_fail(err, len, "verify: memory: %s and %s both overwrite %s",
                                 ir_value_name(g, j, c, sizeof c), a, b);
                }
        } else if (off < 0 || p->offset_n[i] < 0)
            ok = rt_fail(err, len, "verify: memory: %s: offset%s %lld is negative", a, off < 0 ? "" : "_n",
                         (long long)(off < 0 ? off : p->offset_n[i]));
        else if (off > IR_MAX_BYTES || p->offset_n[i] > IR_MAX_BYTES)
            ok = rt_fail(err, len, "verify: memory: %s: offset%s %lld is more than 2^%d bytes", a,
                         off > IR_MAX_BYTES ? "" : "_n", (long long)(off > IR_MAX_BYTES ? off : p->offset_n[i]),
                         IR_MAX_BYTES_LOG2);
        else if (off % PLAN_ALIGN || p->offset_n[i] % PLAN_ALIGN_ROW)
            ok = rt_fail(err, len, "verify: memory: %s: offset%s %lld is not a multiple of %d", a,
                         off % PLAN_ALIGN ? "" : "_n", (long long)(off % PLAN_ALIGN ? off : p->offset_n[i]),
                         off % PLAN_ALIGN ? PLAN_ALIGN : PLAN_ALIGN_ROW);
        else if (!value_bytes(v, p->batch, &bytes[i]) || bytes[i] > p->arena ||
                 p->offset_n[i] > (p->arena - bytes[i]) / p->batch ||
                 off > p->arena - bytes[i] - p->offset_n[i] * p->batch) {
            char per[48] = "";
            if (p->offset_n[i])
                snprintf(per, sizeof per, " + %lld*N", (long long)p->offset_n[i]);
            ok = rt_fail(
                err, len,
                "verify: memory: %s (%s at batch %lld) at offset %lld%s does not fit in the arena of %lld bytes", a,
                ir_type_str(v->dtype, &v->shape, ty, sizeof ty), (long long)p->batch, (long long)off, per,
                (long long)p->arena);
        }
    }
    /* values alive together (each read at or after the other's birth) share no byte at any
     * batch N >= 1: one is below the other at N = 1 and as N grows */
    for (int32_t i = 0; ok && i < n; i++)
        for (int32_t j = i + 1; ok && j < n && p->offset[i] >= 0; j++) {
            if (p->offset[j] < 0 || birth[j] > last[i] || birth[i] > last[j] || buffer_root(g, i) == buffer_root(g, j))
                continue;
            ir_affine oi = {p->offset[i], p->offset_n[i]}, oj = {p->offset[j], p->offset_n[j]};
            ir_affine ei = ir_affine_add(oi, ir_bytes_affine(g->node[i].dtype, &g->node[i].shape));
            ir_affine ej = ir_affine_add(oj, ir_bytes_affine(g->node[j].dtype, &g->node[j].shape));
            if (ir_affine_le(ei, oj) || ir_affine_le(ej, oi))
                continue;
            /* a batch where they overlap: the plan's, 1, or where the lower one's end passes the
             * other's start */
            int64_t at = 1;
            for (int k = 0; k < 2; k++) {
                ir_affine e = k ? ej : ei, o = k ? oi : oj;
                if (ir_affine_at(e, 1) <= ir_affine_at(o, 1) && e.n > o.n)
                    at = (ir_affine_at(o, 1) - ir_affine_at(e, 1)) / (e.n - o.n) + 2;
            }
            if (p->offset[i] + p->offset_n[i] * p->batch < p->offset[j] + p->offset_n[j] * p->batch + bytes[j] &&
                p->offset[j] + p->offset_n[j] * p->batch < p->offset[i] + p->offset_n[i] * p->batch + bytes[i])
                at = p->batch; /* every term checked against the arena above: no overflow */
            /* in double: a text plan's offsets at a large batch may pass int64 */
            double N = (double)at, lo = fmax(oi.k + oi.n * N, oj.k + oj.n * N),
                   hi = fmin(ei.k + ei.n * N, ej.k + ej.n * N);
            ok = rt_fail(err, len,
                         "verify: memory: %s and %s are alive together and overlap at batch %lld, at bytes %.0f..%.0f",
                         ir_value_name(g, i, a, sizeof a), ir_value_name(g, j, b, sizeof b), (long long)at, lo, hi - 1);
            bad = j;
        }
    if (!ok)
        locate_plan_error(p, bad, err, len);
    free(last);
    free(birth);
    free(bytes);
    return ok;
}

static bool verify_graph(const ir_graph *g, bool body, int64_t batch, char *err, size_t len);

/* Every value fits at the batch, and all of them together: every size computed later is a
 * product of sizes checked here. */
static bool check_sizes(const ir_graph *g, int64_t batch, char *err, size_t len)
{
    int32_t bad;
    char msg[512];
    return ir_check_sizes(g, batch, &bad, msg, sizeof msg) || fail(g, bad, err, len, "%s", msg);
}

/* A dropout's place in a graph or one of its bodies. */
typedef struct site_at {
    int32_t site, graph, id; /* graph 0: the graph itself; k + 1: body k */
} site_at;

static int by_site(const void *a, const void *b)
{
    const site_at *x = a, *y = b;
    if (x->site != y->site)
        return x->site < y->site ? -1 : 1;
    if (x->graph != y->graph)
        return x->graph < y->graph ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static const ir_graph *graph_at(const ir_graph *g, int32_t graph) { return graph ? g->kernels[graph - 1] : g; }

static const char *graph_word(int32_t graph, char *buf, size_t len)
{
    if (graph)
        snprintf(buf, len, "body @k%d", (int)(graph - 1));
    else
        snprintf(buf, len, "the graph");
    return buf;
}

/* A dropout site keys the same random stream in the graph and in its bodies: wherever it is
 * used, it drops with the same p. (Within one graph, check_unique said so already.) */
static bool check_sites_across(const ir_graph *g, char *err, size_t len)
{
    size_t total = 0;
    for (int32_t k = 0; k <= g->nkernels; k++)
        for (int32_t i = 0; i < graph_at(g, k)->n; i++)
            total += graph_at(g, k)->node[i].op == IR_dropout;
    site_at *s = ir_xmalloc(sizeof *s * (total ? total : 1));
    size_t ns = 0;
    for (int32_t k = 0; k <= g->nkernels; k++)
        for (int32_t i = 0; i < graph_at(g, k)->n; i++)
            if (graph_at(g, k)->node[i].op == IR_dropout)
                s[ns++] = (site_at){graph_at(g, k)->node[i].attr.site, k, i};
    qsort(s, ns, sizeof *s, by_site);
    bool ok = true;
    for (size_t i = 1; ok && i < ns; i++) {
        double p = graph_at(g, s[i - 1].graph)->node[s[i - 1].id].attr.value;
        double q = graph_at(g, s[i].graph)->node[s[i].id].attr.value;
        char a[32], b[32], wa[32], wb[32];
        if (s[i].site == s[i - 1].site && p != q)
            ok = rt_fail(err, len, "verify: dropout site %d has p=%s at node %%%d of %s, but p=%s at node %%%d of %s",
                         (int)s[i].site, rt_fmt_double(b, sizeof b, q), (int)s[i].id,
                         graph_word(s[i].graph, wb, sizeof wb), rt_fmt_double(a, sizeof a, p), (int)s[i - 1].id,
                         graph_word(s[i - 1].graph, wa, sizeof wa));
    }
    free(s);
    return ok;
}

/* Body k of g, as a graph of its own; its messages say "verify: body @kK: ...". */
static bool check_body(const ir_graph *g, int32_t k, int64_t batch, char *err, size_t len)
{
    const ir_graph *b = g->kernels[k];
    if (!b)
        return rt_fail(err, len, "verify: body @k%d is missing", (int)k);
    char msg[1024];
    if (verify_graph(b, true, batch, msg, sizeof msg))
        return true;
    const char *m = strncmp(msg, "verify: ", 8) ? msg : msg + 8;
    return rt_fail(err, len, "verify: body @k%d: %s", (int)k, m);
}

/* batch: the graph's declared batch (a body's, its graph's) */
static bool verify_graph(const ir_graph *g, bool body, int64_t batch, char *err, size_t len)
{
    if (g->n < 0 || (g->n > 0 && !g->node) || g->nout < 0)
        return rt_fail(err, len, "verify: graph @%s: broken node or output arrays", g->name ? g->name : "?");
    if (g->nkernels < 0 || (g->nkernels > 0 && !g->kernels))
        return rt_fail(err, len, "verify: graph @%s: broken kernel array", g->name ? g->name : "?");
    if (body && g->nkernels > 0)
        return rt_fail(err, len, "verify: a body has no kernels of its own, this one has %d", (int)g->nkernels);
    if (body && g->train)
        return rt_fail(err, len, "verify: a body has no training declarations");
    if (body && g->plan)
        return rt_fail(err, len, "verify: a body has no memory plan");
    for (int32_t k = 0; k < g->nkernels; k++)
        if (!check_body(g, k, batch, err, len))
            return false;
    for (int32_t id = 0; id < g->n; id++) {
        ir_op op = g->node[id].op;
        if (body && (op == IR_param || op == IR_kernel))
            return fail(g, id, err, len, "a body has no %s nodes", ir_ops[op].name);
        if (!check_node(g, id, err, len))
            return false;
    }
    return check_unique(g, err, len) && check_outputs(g, err, len) && check_train(g, err, len) &&
           check_sizes(g, batch, err, len) && (body || check_sites_across(g, err, len)) &&
           (!g->plan || check_plan(g, err, len));
}

bool ir_verify(const ir_graph *g, char *err, size_t len)
{
    if (!g)
        return rt_fail(err, len, "verify: no graph");
    return verify_graph(g, false, ir_declared_batch(g), err, len);
}
