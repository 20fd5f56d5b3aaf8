/* The graph-building API (ir/builder.h), which the DSL's macros and the passes call.
 *
 * Each builder checks what only it knows (names, axes as the user wrote them, the dot/mv/mm
 * forms), then hands the node to ir_add, whose shape rules are the ones the parser and the
 * verifier use. A failure records "file:line: error: message" in the graph and returns a
 * poisoned value; builders given a poisoned value return one without a word, so each mistake
 * is reported once, at its own line. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "builder.h"
#include "ir.h"

#define SHAPE(s) ir_shape_str(s, (char[64]){0}, 64)

static const char *intern_file(ir_graph *g, const char *file)
{
    if (!file)
        return NULL;
    /* model files are unloaded after building, so their __FILE__ strings are copied */
    if (file != g->file_src) {
        g->file_src = file;
        g->file_copy = ir_strdup(g, file);
    }
    return g->file_copy;
}

/* the graph a model file is building (ag_graph_building): where a mistake made with no
 * graph at hand is recorded */
static ir_graph *model_being_built;

void ag_graph_building(ag_graph *g) { model_being_built = g; }

/* An error (kind "error") or a note explaining the error before it ("note") at `at`. */
static void vrecord(ir_graph *g, ag_loc at, const char *kind, const char *fmt, va_list ap)
{
    if (!g)
        g = model_being_built;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char *line = ir_xmalloc(strlen(msg) + strlen(at.file ? at.file : "?") + 32);
    if (at.line > 0)
        sprintf(line, "%s:%d: %s: %s", at.file ? at.file : "?", at.line, kind, msg);
    else /* the whole file */
        sprintf(line, "%s: %s: %s", at.file ? at.file : "?", kind, msg);
    if (!g) { /* nothing to keep it in: no model being loaded, and no graph among the operands */
        fprintf(stderr, "%s\n", line);
        free(line);
        return;
    }
    if (strcmp(kind, "note") == 0) { /* explains the last error: kept with it */
        if (g->nerrors > 0) {
            char **notes = &g->notes[g->nerrors - 1];
            size_t had = *notes ? strlen(*notes) + 1 : 0;
            *notes = ir_xrealloc(*notes, had + strlen(line) + 1);
            if (had)
                (*notes)[had - 1] = '\n';
            strcpy(*notes + had, line);
        }
        free(line);
        return;
    }
    if (g->nerrors == g->errcap) {
        g->errcap = g->errcap ? 2 * g->errcap : 8;
        g->errors = ir_xrealloc(g->errors, sizeof *g->errors * (size_t)g->errcap);
        g->notes = ir_xrealloc(g->notes, sizeof *g->notes * (size_t)g->errcap);
    }
    g->notes[g->nerrors] = NULL;
    g->errors[g->nerrors++] = line;
}

static void record(ir_graph *g, ag_loc at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vrecord(g, at, "error", fmt, ap);
    va_end(ap);
}

static void note(ir_graph *g, ag_loc at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vrecord(g, at, "note", fmt, ap);
    va_end(ap);
}

static ag_val poison(ir_graph *g) { return (ag_val){g, AG_POISON, 0}; }
static ag_val val(ir_graph *g, int32_t id) { return (ag_val){g, id, 0}; }
static const ir_node *node(ag_val v) { return &v.g->node[v.id]; }

/* Append n, recording the rule's message at `at` if it is ill-typed; `who`, when given,
 * replaces the op's name in the message with the builder the user called (dot, mv). */
static ag_val build_as(ag_loc at, ir_graph *g, ir_node *n, const char *who)
{
    char msg[256];
    n->loc = (ag_loc){intern_file(g, at.file), at.line};
    int32_t id = ir_add(g, n, msg, sizeof msg);
    if (id < 0) {
        const char *rest = strchr(msg, ':');
        if (who && rest)
            record(g, at, "%s%s", who, rest);
        else
            record(g, at, "%s", msg);
        /* where the operands came from, where that is another line: the other side of a
         * mismatch is often made far from where it meets the first */
        for (int k = 0; k < n->nin && n->nin > 1 && n->in[k] >= 0 && n->in[k] < g->n; k++) {
            const ir_node *o = &g->node[n->in[k]];
            char type[96];
            if (o->loc.line > 0 && o->loc.line != at.line && o->op != IR_const)
                note(g, o->loc, "operand %d comes from here: ag_%s%s%s, %s", k + 1, ir_ops[o->op].name,
                     o->attr.name ? " " : "", o->attr.name ? o->attr.name : "",
                     ir_type_str(o->dtype, &o->shape, type, sizeof type));
        }
        return poison(g);
    }
    return val(g, id);
}

static ag_val build(ag_loc at, ir_graph *g, ir_node *n) { return build_as(at, g, n, NULL); }

static bool is_identifier(const char *s)
{
    if (!s || !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return false;
    for (; *s; s++)
        if (!(*s == '_' || *s == '.' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

/* A scalar constant of the given dtype, or a poisoned value if v does not fit it. */
static ag_val constant(ag_loc at, ir_graph *g, const char *who, ag_dtype dtype, double v)
{
    ir_node n = ir_node_make(IR_const, 0, NULL);
    n.dtype = dtype;
    switch (dtype) {
    case AG_F32: n.attr.value = (double)(float)v; break;
    case AG_I32:
    case AG_U8:
    case AG_BOOL: {
        double lo = dtype == AG_I32 ? -2147483648.0 : 0, hi = dtype == AG_I32 ? 2147483647.0 : dtype == AG_U8 ? 255 : 1;
        if (!(v == floor(v) && v >= lo && v <= hi)) {
            record(g, at, "%s: the number %g is not a%s %s", who, v, dtype == AG_I32 ? "n" : "", ir_dtype_name(dtype));
            return poison(g);
        }
        n.attr.value = v;
        break;
    }
    default: record(g, at, "%s: no %s constants", who, ir_dtype_name(dtype)); return poison(g);
    }
    return build(at, g, &n);
}

/* Resolve the operands of one builder call: find their graph, stop at poison, and turn
 * plain numbers into constants of the dtype of the value operand beside them (for where,
 * the condition is not such an operand). Returns false when the call must return poison. */
static bool resolve(ag_loc at, const char *who, int n, const ag_val *in, int first_value, ag_val *out, ir_graph **gp)
{
    ir_graph *g = NULL;
    bool poisoned = false, stray = false;
    for (int i = 0; i < n; i++) {
        if (in[i].id == AG_IMM)
            continue;
        if (!in[i].g)
            stray = true;
        else if (!g)
            g = in[i].g;
        else if (in[i].g != g) {
            record(g, at, "%s: operands come from different graphs", who);
            poisoned = true;
        }
        if (in[i].id == AG_POISON)
            poisoned = true;
        else if (in[i].g && (in[i].id < 0 || in[i].id >= in[i].g->n))
            stray = true;
    }
    *gp = g;
    if (stray) {
        record(g, at, "%s: an operand is not a value of any graph (uninitialized ag_val?)", who);
        return false;
    }
    if (!g) {
        record(NULL, at, "%s: no operand is a graph value (only plain numbers)", who);
        return false;
    }
    if (poisoned)
        return false;
    ag_dtype dtype = AG_F32;
    for (int i = first_value; i < n; i++)
        if (in[i].id != AG_IMM) {
            dtype = g->node[in[i].id].dtype;
            break;
        }
    for (int i = 0; i < n; i++) {
        out[i] = in[i];
        if (in[i].id == AG_IMM) {
            out[i] = constant(at, g, who, i < first_value ? AG_BOOL : dtype, in[i].imm);
            if (out[i].id < 0)
                return false;
        }
    }
    return true;
}

/* ---- graphs ---- */

ag_graph *ag_graph_new(const char *name) { return ir_graph_new(name); }
void ag_graph_free(ag_graph *g) { ir_graph_free(g); }
int ag_graph_error_count(const ag_graph *g) { return g->nerrors; }
const char *ag_graph_error(const ag_graph *g, int i) { return i >= 0 && i < g->nerrors ? g->errors[i] : NULL; }
const char *ag_graph_error_notes(const ag_graph *g, int i) { return i >= 0 && i < g->nerrors ? g->notes[i] : NULL; }

/* Every value fits at the declared batch (ag_minimize's, known only now), each refused at
 * its own line; a value computed from one refused is not refused again. Then all of them
 * together, at the value that takes the sum past the bound. */
static void check_sizes(ir_graph *g)
{
    int64_t batch = ir_declared_batch(g);
    bool *bad = ir_xcalloc((size_t)(g->n ? g->n : 1), sizeof *bad), any = false;
    char msg[512];
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        for (int k = 0; k < n->nin; k++)
            bad[i] |= bad[n->in[k]];
        if (!bad[i] && !ir_check_value_size(g, i, batch, msg, sizeof msg)) {
            record(g, n->loc, "%s", msg);
            bad[i] = true;
        }
        any |= bad[i];
    }
    int32_t at;
    if (!any && !ir_check_sizes(g, batch, &at, msg, sizeof msg))
        record(g, g->node[at].loc, "%s", msg);
    free(bad);
}

int ag_graph_finish(ag_graph *g)
{
    if (g->nout == 0 && g->nerrors == 0)
        record(g, (ag_loc){g->file_copy ? g->file_copy : g->name, 0}, "graph %s has no outputs (call ag_output)",
               g->name);
    check_sizes(g);
    return g->nerrors;
}

/* ---- sources ---- */

static bool source_ok(ag_loc at, ir_graph *g, const char *kind, const char *name, ag_dims dims)
{
    if (!g) {
        record(NULL, at, "%s: the graph is NULL", kind);
        return false;
    }
    if (!is_identifier(name)) {
        record(g, at, "%s: name \"%s\" is not an identifier", kind, name ? name : "(null)");
        return false;
    }
    int32_t prev = ir_find_source(g, IR_input, name);
    if (prev < 0)
        prev = ir_find_source(g, IR_param, name);
    if (prev >= 0) {
        const ir_node *p = &g->node[prev];
        record(g, at, "%s %s: the name is already used by the %s at %s:%d", kind, name, ir_ops[p->op].name,
               p->loc.file ? p->loc.file : "?", p->loc.line);
        return false;
    }
    if (dims.n > AG_MAX_RANK) {
        record(g, at, "%s %s: %d dims; at most %d", kind, name, dims.n, AG_MAX_RANK);
        return false;
    }
    return true;
}

static ir_shape shape_of(ag_dims dims)
{
    ir_shape s = {dims.n, {0}};
    for (int i = 0; i < dims.n && i < AG_MAX_RANK; i++)
        s.dim[i] = dims.d[i];
    return s;
}

ag_val ag_input_at(ag_loc at, ag_graph *g, const char *name, ag_dtype dtype, ag_dims dims)
{
    if (!source_ok(at, g, "input", name, dims))
        return poison(g);
    ir_node n = ir_node_make(IR_input, 0, NULL);
    n.dtype = dtype;
    n.shape = shape_of(dims);
    n.attr.name = ir_strdup(g, name);
    return build(at, g, &n);
}

ag_val ag_param_at(ag_loc at, ag_graph *g, const char *name, ag_init init, ag_dims dims)
{
    if (!source_ok(at, g, "param", name, dims))
        return poison(g);
    ir_node n = ir_node_make(IR_param, 0, NULL);
    n.dtype = AG_F32;
    n.shape = shape_of(dims);
    n.attr.name = ir_strdup(g, name);
    n.attr.init = init;
    return build(at, g, &n);
}

ag_val ag_const_at(ag_loc at, ag_graph *g, ag_dtype dtype, double v)
{
    if (!g) {
        record(NULL, at, "const: the graph is NULL");
        return poison(g);
    }
    return constant(at, g, "const", dtype, v);
}

void ag_output_at(ag_loc at, ag_graph *g, const char *name, ag_val v)
{
    if (!g) {
        record(NULL, at, "output: the graph is NULL");
        return;
    }
    if (!is_identifier(name)) {
        record(g, at, "output: name \"%s\" is not an identifier", name ? name : "(null)");
        return;
    }
    if (ir_find_output(g, name) >= 0) { /* by the graph's table of names: building stays linear */
        record(g, at, "output %s: the name is already used", name);
        return;
    }
    if (v.id == AG_IMM)
        v = constant(at, g, "output", AG_F32, v.imm);
    if (v.g && v.g != g) {
        record(g, at, "output %s: the value comes from another graph", name);
        return;
    }
    if (v.id == AG_POISON && g->nerrors > 0)
        return; /* its error is already reported */
    if (v.id < 0 || v.id >= g->n) {
        record(g, at, "output %s: not a value of this graph", name);
        return;
    }
    ir_add_output(g, name, v.id);
}

/* ---- elementwise ---- */

ag_val ag_ew_at(ag_loc at, ir_op op, int n, const ag_val *operands)
{
    ag_val v[3];
    ir_graph *g;
    if (!resolve(at, ir_ops[op].name, n, operands, op == IR_where ? 1 : 0, v, &g))
        return poison(g);
    ir_node m = ir_node_make(op, n, (int32_t[]){v[0].id, n > 1 ? v[1].id : 0, n > 2 ? v[2].id : 0});
    return build(at, g, &m);
}

ag_val ag_cast_at(ag_loc at, ag_val x, ag_dtype dtype)
{
    ir_graph *g;
    if (!resolve(at, "cast", 1, &x, 0, &x, &g))
        return poison(g);
    if (node(x)->dtype == dtype)
        return x;
    ir_node n = ir_node_make(IR_cast, 1, &x.id);
    n.dtype = dtype;
    return build(at, g, &n);
}

/* ---- axes ---- */

/* Axis `axis` of a rank-`rank` value, negative counting from the end; -1 if out of range. */
static int axis_of(ag_loc at, ir_graph *g, const char *who, const ir_node *x, int64_t axis)
{
    int rank = x->shape.rank;
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank) {
        record(g, at, "%s: axis %lld out of range for %s", who, (long long)axis, SHAPE(&x->shape));
        return -1;
    }
    return (int)a;
}

ag_val ag_reduce_at(ag_loc at, ir_op op, ag_val x, ag_dims axes, bool keepdims)
{
    ir_graph *g;
    const char *who = ir_ops[op].name;
    if (!resolve(at, who, 1, &x, 0, &x, &g))
        return poison(g);
    const ir_node *a = node(x);
    unsigned mask = axes.n == 0 ? (1u << a->shape.rank) - 1 : 0;
    if (axes.n > AG_MAX_RANK) {
        record(g, at, "%s: %d axes given; a value has at most %d", who, axes.n, AG_MAX_RANK);
        return poison(g);
    }
    for (int i = 0; i < axes.n; i++) {
        int k = axis_of(at, g, who, a, axes.d[i]);
        if (k < 0)
            return poison(g);
        if (mask >> k & 1) {
            record(g, at, "%s: axis %d given twice", who, k);
            return poison(g);
        }
        mask |= 1u << k;
    }
    ir_node n = ir_node_make(op, 1, &x.id);
    n.attr.axes = (uint8_t)mask;
    n.attr.keepdims = keepdims;
    return build(at, g, &n);
}

ag_val ag_axis_at(ag_loc at, ir_op op, ag_val x, int axis)
{
    ir_graph *g;
    if (!resolve(at, ir_ops[op].name, 1, &x, 0, &x, &g))
        return poison(g);
    int k = axis_of(at, g, ir_ops[op].name, node(x), axis);
    if (k < 0)
        return poison(g);
    ir_node n = ir_node_make(op, 1, &x.id);
    n.attr.axis = (int8_t)k;
    return build(at, g, &n);
}

ag_val ag_row_at(ag_loc at, ir_op op, ag_val x, ag_dims axis)
{
    ir_graph *g;
    if (!resolve(at, ir_ops[op].name, 1, &x, 0, &x, &g))
        return poison(g);
    if (axis.n > 1) {
        record(g, at, "%s: takes one axis, got %d", ir_ops[op].name, axis.n);
        return poison(g);
    }
    return ag_axis_at(at, op, x, axis.n ? (int)axis.d[0] : -1);
}

/* ---- linear algebra ---- */

ag_val ag_matmul_at(ag_loc at, const char *form, ag_val a, ag_val b)
{
    ag_val v[2];
    ir_graph *g;
    if (!resolve(at, form, 2, (ag_val[]){a, b}, 0, v, &g))
        return poison(g);
    int ra = node(v[0])->shape.rank, rb = node(v[1])->shape.rank;
    int want_a = form[0] == 'd' ? 1 : 2, want_b = form[0] == 'm' && form[1] == 'm' ? 2 : 1;
    if (strcmp(form, "matmul") != 0 && (ra != want_a || rb != want_b)) {
        record(g, at, "%s: needs a %s and a %s, got %s and %s", form, want_a == 1 ? "vector" : "matrix",
               want_b == 1 ? "vector" : "matrix", SHAPE(&node(v[0])->shape), SHAPE(&node(v[1])->shape));
        return poison(g);
    }
    ir_node n = ir_node_make(IR_matmul, 2, (int32_t[]){v[0].id, v[1].id});
    return build_as(at, g, &n, form);
}

/* ---- layout ---- */

ag_val ag_transpose_at(ag_loc at, ag_val x, ag_dims perm)
{
    ir_graph *g;
    if (!resolve(at, "transpose", 1, &x, 0, &x, &g))
        return poison(g);
    int rank = node(x)->shape.rank;
    if (perm.n != 0 && perm.n != rank) {
        record(g, at, "transpose: %d axes given for %s", perm.n, SHAPE(&node(x)->shape));
        return poison(g);
    }
    ir_node n = ir_node_make(IR_transpose, 1, &x.id);
    for (int k = 0; k < rank; k++) {
        int64_t p = perm.n ? perm.d[k] : rank - 1 - k;
        n.attr.perm[k] = (int8_t)(p >= -rank && p < 0 ? p + rank : p >= 0 && p < rank ? p : -1);
    }
    return build(at, g, &n);
}

static ag_val to_shape(ag_loc at, ir_op op, ag_val x, ag_dims dims)
{
    ir_graph *g;
    if (!resolve(at, ir_ops[op].name, 1, &x, 0, &x, &g))
        return poison(g);
    if (dims.n > AG_MAX_RANK) {
        record(g, at, "%s: %d dims; at most %d", ir_ops[op].name, dims.n, AG_MAX_RANK);
        return poison(g);
    }
    ir_node n = ir_node_make(op, 1, &x.id);
    n.shape = shape_of(dims);
    if (ir_shape_eq(&n.shape, &node(x)->shape))
        return x;
    return build(at, g, &n);
}

ag_val ag_reshape_at(ag_loc at, ag_val x, ag_dims dims) { return to_shape(at, IR_reshape, x, dims); }
ag_val ag_broadcast_to_at(ag_loc at, ag_val x, ag_dims dims) { return to_shape(at, IR_broadcast_to, x, dims); }

ag_val ag_flatten_at(ag_loc at, ag_val x)
{
    ir_graph *g;
    if (!resolve(at, "flatten", 1, &x, 0, &x, &g))
        return poison(g);
    const ir_shape *s = &node(x)->shape;
    if (s->rank < 2)
        return x;
    ag_dims d = {2, {s->dim[0], 1}};
    for (int i = 1; i < s->rank; i++) {
        if (s->dim[i] == AG_N) {
            record(g, at, "flatten: the batch dim N must come first, got %s", SHAPE(s));
            return poison(g);
        }
        d.d[1] *= s->dim[i];
    }
    return to_shape(at, IR_reshape, x, d);
}

ag_val ag_concat_at(ag_loc at, int axis, int n, const ag_val *parts)
{
    ag_val v[8];
    ir_graph *g;
    if (n < 1 || n > 8) {
        record(NULL, at, "concat: takes 1 to 8 values, got %d", n);
        return poison(NULL);
    }
    if (!resolve(at, "concat", n, parts, 0, v, &g))
        return poison(g);
    int k = axis_of(at, g, "concat", node(v[0]), axis);
    if (k < 0)
        return poison(g);
    if (n == 1)
        return v[0];
    int32_t ids[8];
    for (int i = 0; i < n; i++)
        ids[i] = v[i].id;
    ir_node m = ir_node_make(IR_concat, n, ids);
    m.attr.axis = (int8_t)k;
    return build(at, g, &m);
}

/* ---- models ---- */

ag_val ag_one_hot_at(ag_loc at, ag_val labels, int classes)
{
    ir_graph *g;
    if (!resolve(at, "one_hot", 1, &labels, 0, &labels, &g))
        return poison(g);
    ir_node n = ir_node_make(IR_one_hot, 1, &labels.id);
    n.attr.classes = classes;
    return build(at, g, &n);
}

/* Class labels for logits o: i32 (per_row: one per row of 2-d logits; else any shape eq takes).
 * A mistake in them is one error, however many builders read them (cross_entropy and
 * correct): later ones return poison quietly. */
static bool labels_ok(ag_loc at, ir_graph *g, const char *who, const ir_node *o, ag_val labels, bool per_row)
{
    const ir_node *y = node(labels);
    if (y->dtype == AG_I32 &&
        (!per_row || (y->shape.rank == 1 && o->shape.rank == 2 && y->shape.dim[0] == o->shape.dim[0])))
        return true;
    if (g->labels_reported != labels.id + 1) {
        if (per_row)
            record(g, at, "%s: labels must be i32, one per row of the logits %s; got %s%s", who, SHAPE(&o->shape),
                   ir_dtype_name(y->dtype), SHAPE(&y->shape));
        else
            record(g, at, "%s: labels must be i32, got %s%s", who, ir_dtype_name(y->dtype), SHAPE(&y->shape));
        if (y->loc.line > 0 && y->loc.line != at.line)
            note(g, y->loc, "the labels come from here: ag_%s%s%s", ir_ops[y->op].name, y->attr.name ? " " : "",
                 y->attr.name ? y->attr.name : "");
        g->labels_reported = labels.id + 1;
    }
    return false;
}

/* sum(eq(argmax(logits), labels)) as f32: how many rows the logits classify right. */
ag_val ag_correct_at(ag_loc at, ag_val logits, ag_val labels)
{
    ag_val v[2];
    ir_graph *g;
    if (!resolve(at, "correct", 2, (ag_val[]){logits, labels}, 0, v, &g))
        return poison(g);
    if (!labels_ok(at, g, "correct", node(v[0]), v[1], false))
        return poison(g);
    ag_val hit = ag_ew_at(at, IR_eq, 2, (ag_val[]){ag_axis_at(at, IR_argmax, v[0], -1), v[1]});
    return ag_reduce_at(at, IR_sum, ag_cast_at(at, hit, AG_F32), (ag_dims){0, {0}}, false);
}

/* -sum(one_hot(labels) * log_softmax(logits)) per row: the book's cross-entropy written
 * with primitives, which fuse_softmax_ce recognizes. */
ag_val ag_cross_entropy_at(ag_loc at, ag_val logits, ag_val labels)
{
    ag_val v[2];
    ir_graph *g;
    if (!resolve(at, "cross_entropy", 2, (ag_val[]){logits, labels}, 0, v, &g))
        return poison(g);
    const ir_node *o = node(v[0]);
    if (o->dtype != AG_F32 || o->shape.rank != 2) {
        record(g, at, "cross_entropy: logits must be f32 [rows, classes], got %s%s", ir_dtype_name(o->dtype),
               SHAPE(&o->shape));
        return poison(g);
    }
    if (!labels_ok(at, g, "cross_entropy", o, v[1], true))
        return poison(g);
    int classes = (int)o->shape.dim[1];
    ag_val picked =
        ag_ew_at(at, IR_mul, 2,
                 (ag_val[]){ag_one_hot_at(at, v[1], classes), ag_row_at(at, IR_log_softmax, v[0], (ag_dims){0, {0}})});
    return ag_ew_at(at, IR_neg, 1, (ag_val[]){ag_reduce_at(at, IR_sum, picked, (ag_dims){1, {1}}, false)});
}

/* The book's squared_loss: (pred - target reshaped like pred)^2 / 2, per element. */
ag_val ag_squared_loss_at(ag_loc at, ag_val pred, ag_val target)
{
    ag_val v[2];
    ir_graph *g;
    if (!resolve(at, "squared_loss", 2, (ag_val[]){pred, target}, 0, v, &g))
        return poison(g);
    const ir_shape *ps = &node(v[0])->shape;
    ag_dims d = {ps->rank, {0}};
    for (int i = 0; i < ps->rank; i++)
        d.d[i] = ps->dim[i];
    ag_val t = to_shape(at, IR_reshape, v[1], d);
    ag_val diff = ag_ew_at(at, IR_sub, 2, (ag_val[]){v[0], t});
    return ag_ew_at(at, IR_mul, 2, (ag_val[]){ag_ew_at(at, IR_square, 1, &diff), ag_imm_of(0.5)});
}

ag_val ag_dropout_at(ag_loc at, ag_val x, double p)
{
    ir_graph *g;
    if (!resolve(at, "dropout", 1, &x, 0, &x, &g))
        return poison(g);
    ir_node n = ir_node_make(IR_dropout, 1, &x.id);
    n.attr.value = p;
    n.attr.site = g->next_site;
    ag_val r = build(at, g, &n);
    if (r.id >= 0)
        g->next_site++;
    return r;
}

ag_val ag_slice_at(ag_loc at, ag_val x, int axis, int64_t start, int64_t extent)
{
    ir_graph *g;
    if (!resolve(at, "slice", 1, &x, 0, &x, &g))
        return poison(g);
    int k = axis_of(at, g, "slice", node(x), axis);
    if (k < 0)
        return poison(g);
    ir_node n = ir_node_make(IR_slice, 1, &x.id);
    n.shape = node(x)->shape;
    n.shape.dim[k] = extent;
    n.attr.axis = (int8_t)k;
    n.attr.start = start;
    if (start == 0 && extent == node(x)->shape.dim[k])
        return x;
    return build(at, g, &n);
}

/* ---- training declarations ---- */

static ir_train *train_of(ir_graph *g)
{
    if (!g->train)
        g->train = ir_alloc(g, sizeof *g->train);
    return g->train;
}

/* Grow an arena array of count items by one (arrays here hold a handful of items). */
static void *arena_push(ir_graph *g, void *items, int count, size_t size)
{
    void *bigger = ir_alloc(g, size * (size_t)(count + 1));
    if (count)
        memcpy(bigger, items, size * (size_t)count);
    return bigger;
}

static const char *const fashion_mnist_classes[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* The output for a declared value: its own node, a poisoned one quietly skipped. */
static bool declare_output(ag_loc at, ir_graph *g, const char *who, const char *name, ag_val v)
{
    if (v.id == AG_IMM)
        v = constant(at, g, who, AG_F32, v.imm);
    if (v.id == AG_POISON)
        return false;
    if (v.g != g || v.id < 0 || v.id >= g->n) {
        record(g, at, "%s: the %s is not a value of this graph", who, name);
        return false;
    }
    const ir_node *n = &g->node[v.id];
    if (strcmp(name, "predict") != 0 && (n->dtype != AG_F32 || n->shape.rank != 0)) {
        record(g, at, "%s: the %s must be an f32 scalar, got %s%s%s", who, name, ir_dtype_name(n->dtype),
               SHAPE(&n->shape), n->shape.rank ? "; take its mean (ag_mean) or sum (ag_sum)" : "");
        return false;
    }
    if (ir_find_output(g, name) >= 0) {
        record(g, at, "%s: an output named %s exists already", who, name);
        return false;
    }
    ir_add_output(g, name, v.id);
    return true;
}

/* Whether id is ag_correct's value: sum(cast(eq(argmax(...), labels))), in either order of
 * eq's operands. */
static bool is_correct_count(const ir_graph *g, int32_t id)
{
    if (id < 0 || id >= g->n || g->node[id].op != IR_sum)
        return false;
    const ir_node *cast = &g->node[g->node[id].in[0]];
    if (cast->op != IR_cast || g->node[cast->in[0]].op != IR_eq)
        return false;
    const ir_node *eq = &g->node[cast->in[0]];
    return g->node[eq->in[0]].op == IR_argmax || g->node[eq->in[1]].op == IR_argmax;
}

void ag_minimize_at(ag_loc at, ag_graph *g, ag_val loss, ag_optimizer opt, ag_fit fit)
{
    if (!g) {
        record(NULL, at, "minimize: the graph is NULL");
        return;
    }
    ir_train *t = train_of(g);
    if (t->loss) {
        record(g, at, "minimize: the loss is declared already");
        return;
    }
    ir_train want = {.optimizer = opt.kind,
                     .lr = opt.lr,
                     .wd = opt.wd,
                     .hp = {[IR_HP_MOMENTUM] = opt.momentum,
                            [IR_HP_NESTEROV] = opt.nesterov,
                            [IR_HP_BETA1] = opt.beta1,
                            [IR_HP_BETA2] = opt.beta2,
                            [IR_HP_EPS] = opt.eps,
                            [IR_HP_ALPHA] = opt.alpha}};
    char why[300];
    if (!ir_optimizer_check(&want, why, sizeof why)) {
        record(g, at, "minimize: %s", why);
        return;
    }
    if (!(opt.lr > 0)) {
        record(g, at, "minimize: %s needs lr > 0, got lr %g", opt.kind, opt.lr);
        return;
    }
    if (fit.batch < 0 || fit.epochs < 0 || fit.batch > IR_MAX_COUNT || fit.epochs > IR_MAX_COUNT) {
        record(g, at, "minimize: batch and epochs must be from 1 to 2^30, got %lld and %lld", (long long)fit.batch,
               (long long)fit.epochs);
        return;
    }
    bool any_param = false;
    for (int32_t i = 0; i < g->n && !any_param; i++)
        any_param = g->node[i].op == IR_param;
    if (!any_param) {
        if (g->nerrors == 0) /* else a parameter that failed is the likelier reason */
            record(g, at, "minimize: the graph has no parameter (ag_param) to train");
        return;
    }
    if (loss.id == AG_POISON || fit.metric.id == AG_POISON || fit.predict.id == AG_POISON)
        return; /* a value out of an earlier error: that error is the one to report */
    const char *metric = fit.metric_name ? fit.metric_name : "correct";
    if (fit.metric.g == g && !fit.metric_name && !is_correct_count(g, fit.metric.id)) {
        record(g, at,
               "minimize: name the metric (.metric_name = \"...\"): an unnamed one is taken for "
               "ag_correct's count and reported as an accuracy");
        return;
    }
    if (fit.metric.g && !is_identifier(metric)) {
        record(g, at, "minimize: metric name \"%s\" is not an identifier", metric);
        return;
    }
    if (!declare_output(at, g, "minimize", "loss", loss))
        return;
    /* the DSL's convention, said once here: the first two batch inputs ([N, ...]) declared
     * are the features and the targets; everything downstream finds them by their role */
    for (int32_t i = 0, k = 0; i < g->n && k < 2; i++) {
        ir_node *n = &g->node[i];
        if (n->op == IR_input && n->attr.role == AG_ROLE_NONE && n->shape.rank > 0 && n->shape.dim[0] == AG_N)
            n->attr.role = k++ ? AG_ROLE_LABELS : AG_ROLE_DATA;
    }
    t->stage = IR_STAGE_MODEL;
    t->loss = "loss";
    t->optimizer = ir_strdup(g, opt.kind);
    t->lr = opt.lr;
    t->wd = opt.wd;
    memcpy(t->hp, want.hp, sizeof t->hp);
    t->batch = fit.batch ? fit.batch : 256;
    t->epochs = fit.epochs ? fit.epochs : 10;
    if ((fit.metric.g || fit.metric.id == AG_IMM) && declare_output(at, g, "minimize", metric, fit.metric))
        t->metrics[t->nmetrics++] = ir_strdup(g, metric);
    if ((fit.predict.g || fit.predict.id == AG_IMM) && declare_output(at, g, "minimize", "predict", fit.predict))
        t->predict = "predict";
    if (fit.data) {
        t->data = ir_strdup(g, fit.data);
        if (strcmp(fit.data, "fashion-mnist") == 0) {
            t->nclasses = (int)(sizeof fashion_mnist_classes / sizeof *fashion_mnist_classes);
            t->classes = (const char **)fashion_mnist_classes; /* static: outlives the graph */
        }
    }
}

static const char *group_of(const ir_train *t, const char *param)
{
    for (int i = 0; i < t->ngroups; i++)
        for (int k = 0; k < t->groups[i].nparams; k++)
            if (strcmp(t->groups[i].params[k], param) == 0)
                return t->groups[i].name;
    return NULL;
}

void ag_group_at(ag_loc at, ag_graph *g, const char *name, double wd_scale, double lr_scale, int n,
                 const ag_val *params)
{
    if (!g) {
        record(NULL, at, "group: the graph is NULL");
        return;
    }
    ir_train *t = train_of(g);
    if (!is_identifier(name)) {
        record(g, at, "group: name \"%s\" is not an identifier", name ? name : "(null)");
        return;
    }
    for (int i = 0; i < t->ngroups; i++)
        if (strcmp(t->groups[i].name, name) == 0) {
            record(g, at, "group %s: declared already", name);
            return;
        }
    if (!(wd_scale >= 0 && wd_scale <= FLT_MAX) || !(lr_scale >= 0 && lr_scale <= FLT_MAX)) {
        record(g, at, "group %s: scales must be finite and >= 0, got wd_scale %g, lr_scale %g", name, wd_scale,
               lr_scale);
        return;
    }
    const char **names = ir_alloc(g, sizeof *names * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        if (params[i].id == AG_POISON)
            return;
        if (params[i].g != g || params[i].id < 0 || params[i].id >= g->n || g->node[params[i].id].op != IR_param) {
            record(g, at, "group %s: value %d is not a parameter", name, i + 1);
            return;
        }
        names[i] = g->node[params[i].id].attr.name;
        const char *other = group_of(t, names[i]);
        if (other) {
            record(g, at, "group %s: %s is in group %s already", name, names[i], other);
            return;
        }
    }
    t->groups = arena_push(g, t->groups, t->ngroups, sizeof *t->groups);
    t->groups[t->ngroups++] = (ir_group){ir_strdup(g, name), wd_scale, lr_scale, n, names};
}

/* Whether value is one of the '|'-separated choices. */
static bool among(const char *value, const char *choices)
{
    size_t n = strlen(value);
    for (const char *c = choices; c;) {
        const char *bar = strchr(c, '|');
        size_t k = bar ? (size_t)(bar - c) : strlen(c);
        if (k == n && memcmp(c, value, n) == 0)
            return true;
        c = bar ? bar + 1 : NULL;
    }
    return false;
}

const char *ag_option_at(ag_loc at, ag_graph *g, const char *name, const char *default_value, const char *choices)
{
    if (!g) {
        record(NULL, at, "option: the graph is NULL");
        return default_value;
    }
    ir_train *t = train_of(g);
    if (!is_identifier(name) || !default_value || !choices) {
        record(g, at, "option: needs an identifier, a default and the choices");
        return default_value;
    }
    for (int i = 0; i < t->noptions; i++)
        if (strcmp(t->options[i].name, name) == 0) {
            record(g, at, "option %s: declared already", name);
            return default_value;
        }
    if (!*choices || *choices == '|' || choices[strlen(choices) - 1] == '|' || strstr(choices, "||")) {
        record(g, at, "option %s: the choices \"%s\" have an empty one", name, choices);
        return default_value;
    }
    if (!among(default_value, choices)) {
        record(g, at, "option %s: the default '%s' is not one of %s", name, default_value, choices);
        return default_value;
    }
    const char *value = default_value;
    size_t n = strlen(name);
    for (const char *const *s = g->settings; s && *s; s++)
        if (strncmp(*s, name, n) == 0 && (*s)[n] == '=')
            value = *s + n + 1;
    if (!among(value, choices)) {
        record(g, at, "option %s: '%s' is not one of %s", name, value, choices);
        value = default_value;
    }
    t->options = arena_push(g, t->options, t->noptions, sizeof *t->options);
    t->options[t->noptions++] = (ir_option){ir_strdup(g, name), ir_strdup(g, value), ir_strdup(g, choices)};
    return t->options[t->noptions - 1].value;
}

ag_val ag_requires_grad_at(ag_loc at, ag_val x)
{
    ir_graph *g;
    if (!resolve(at, "requires_grad", 1, &x, 0, &x, &g))
        return poison(g);
    if (g->node[x.id].op != IR_input || g->node[x.id].dtype != AG_F32) {
        record(g, at, "requires_grad: only an f32 input can ask for a gradient");
        return poison(g);
    }
    g->node[x.id].attr.grad = true;
    return x;
}

/* ---- convolutions and pooling ---- */

/* One axis's value: the per-axis field where given (>= 0), else the both-axes one. */
static int32_t axis_value(int both, int one) { return one >= 0 ? one : both; }

static ir_window window_of(int kh, int kw, const ag_window_opts *o)
{
    ir_window w = {{kh, kw},
                   {axis_value(o->stride, o->stride_h), axis_value(o->stride, o->stride_w)},
                   {axis_value(o->pad, o->pad_h), axis_value(o->pad, o->pad_w)},
                   {axis_value(o->dilation, o->dilation_h), axis_value(o->dilation, o->dilation_w)},
                   o->groups};
    for (int i = 0; i < 2; i++)
        if (w.stride[i] == 0) /* pooling's default: windows side by side */
            w.stride[i] = w.kernel[i];
    return w;
}

ag_val ag_conv2d_at(ag_loc at, ag_val x, ag_val w, ag_window_opts o)
{
    ir_graph *g;
    ag_val in[3] = {x, w, o.bias}, v[3];
    int n = o.bias.g ? 3 : 2;
    if (!resolve(at, "conv2d", n, in, 0, v, &g))
        return poison(g);
    const ir_shape *ws = &node(v[1])->shape;
    int kh = ws->rank == 4 ? (int)ws->dim[2] : 1, kw = ws->rank == 4 ? (int)ws->dim[3] : 1;
    ir_node c = ir_node_make(IR_conv2d, 2, (int32_t[]){v[0].id, v[1].id});
    c.attr.win = window_of(kh, kw, &o);
    ag_val y = build(at, g, &c);
    if (n == 2 || y.id < 0)
        return y;
    const ir_node *b = node(v[2]), *yn = node(y);
    int64_t channels = yn->shape.dim[1];
    if (b->dtype != AG_F32 || b->shape.rank != 1 || b->shape.dim[0] != channels) {
        record(g, at, "conv2d: the bias is %s; it takes f32[%lld], one per output channel",
               ir_type_str(b->dtype, &b->shape, (char[80]){0}, 80), (long long)channels);
        return poison(g);
    }
    return ag_ew_at(at, IR_add, 2, (ag_val[]){y, to_shape(at, IR_reshape, v[2], (ag_dims){3, {channels, 1, 1}})});
}

ag_val ag_pool2d_at(ag_loc at, ir_op op, ag_val x, int kh, int kw, ag_window_opts o)
{
    ir_graph *g;
    if (!resolve(at, ir_ops[op].name, 1, &x, 0, &x, &g))
        return poison(g);
    ir_node n = ir_node_make(op, 1, &x.id);
    n.attr.win = window_of(kh, kw, &o);
    return build(at, g, &n);
}
