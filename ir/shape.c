/* Shape and dtype rules, one per row of the op table (its rule column; elementwise ops
 * share rule_ew). Used by the DSL builders, the parser and the verifier alike, so all three
 * agree on what a well-typed node is. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "fail.h"
#include "ir.h"

typedef bool rule_fn(const ir_graph *g, ir_node *n, char *err, size_t len);

static const ir_node *operand(const ir_graph *g, const ir_node *n, int i) { return &g->node[n->in[i]]; }
static const char *opname(const ir_node *n) { return ir_ops[n->op].name; }

/* Dims and their products stay far from int64 overflow whatever a parsed file claims. */
#define IR_MAX_ELEMENTS ((int64_t)1 << 40)

#define SHAPE(s) ir_shape_str(s, (char[64]){0}, 64)
#define TYPE(n) ir_type_str((n)->dtype, &(n)->shape, (char[80]){0}, 80)
#define DT(t) ir_dtype_name(t)

static bool valid_dims(const ir_node *n, const ir_shape *s, char *err, size_t len)
{
    if (s->rank < 0 || s->rank > IR_MAX_RANK)
        return rt_fail(err, len, "%s: rank %d; at most %d dims", opname(n), s->rank, IR_MAX_RANK);
    for (int i = 0; i < s->rank; i++)
        if ((s->dim[i] < 1 && s->dim[i] != AG_N) || s->dim[i] > IR_MAX_ELEMENTS)
            return rt_fail(err, len, "%s: dim %d of %s is %lld; dims are positive or N", opname(n), i, SHAPE(s),
                           (long long)s->dim[i]);
    int64_t elements = 1;
    for (int i = 0; i < s->rank; i++)
        if (s->dim[i] != AG_N && (elements > IR_MAX_ELEMENTS / s->dim[i] || (elements *= s->dim[i]) > IR_MAX_ELEMENTS))
            return rt_fail(err, len, "%s: %s has more than 2^40 elements per batch item", opname(n), SHAPE(s));
    return true;
}

static bool numeric(ag_dtype t) { return t == AG_F32 || t == AG_I32; }

/* NumPy broadcasting of a and b into out. N broadcasts like any other extent: against
 * itself or 1 only. */
static bool broadcast(const ir_node *n, const ir_shape *a, const ir_shape *b, ir_shape *out, char *err, size_t len)
{
    ir_shape r = {a->rank > b->rank ? a->rank : b->rank, {0}};
    for (int i = 0; i < r.rank; i++) {
        int ia = i - (r.rank - a->rank), ib = i - (r.rank - b->rank);
        int64_t da = ia >= 0 ? a->dim[ia] : 1, db = ib >= 0 ? b->dim[ib] : 1;
        if (da == db || db == 1)
            r.dim[i] = da;
        else if (da == 1)
            r.dim[i] = db;
        else
            return rt_fail(err, len, "%s: cannot broadcast %s and %s", opname(n), SHAPE(a), SHAPE(b));
    }
    *out = r;
    return true;
}

static bool check_arity(const ir_node *n, char *err, size_t len)
{
    int arity = ir_ops[n->op].arity;
    if (arity >= 0 && n->nin != arity)
        return rt_fail(err, len, "%s: takes %d operand%s, got %d", opname(n), arity, arity == 1 ? "" : "s", n->nin);
    if (arity < 0 && n->nin < 1)
        return rt_fail(err, len, "%s: takes one or more operands, got none", opname(n));
    return true;
}

static bool rule_ew(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    ir_shape s = a->shape;
    for (int i = 1; i < n->nin; i++)
        if (!broadcast(n, &s, &operand(g, n, i)->shape, &s, err, len))
            return false;
    switch (ir_ops[n->op].types) {
    case T_FLOAT:
        for (int i = 0; i < n->nin; i++)
            if (operand(g, n, i)->dtype != AG_F32)
                return rt_fail(err, len, "%s: needs f32 operands, got %s (cast it first)", opname(n),
                               DT(operand(g, n, i)->dtype));
        n->dtype = AG_F32;
        break;
    case T_NUM:
    case T_CMP:
        for (int i = 0; i < n->nin; i++) {
            ag_dtype t = operand(g, n, i)->dtype;
            if (t != a->dtype)
                return rt_fail(err, len, "%s: dtypes differ: %s and %s", opname(n), DT(a->dtype), DT(t));
        }
        if (ir_ops[n->op].types == T_NUM && !numeric(a->dtype))
            return rt_fail(err, len, "%s: needs f32 or i32 operands, got %s (cast it first)", opname(n), DT(a->dtype));
        if (ir_ops[n->op].types == T_CMP && !numeric(a->dtype) && a->dtype != AG_U8)
            return rt_fail(err, len, "%s: needs f32, i32 or u8 operands, got %s", opname(n), DT(a->dtype));
        n->dtype = ir_ops[n->op].types == T_CMP ? AG_BOOL : a->dtype;
        break;
    case T_WHERE:
        if (a->dtype != AG_BOOL)
            return rt_fail(err, len, "%s: the condition must be bool, got %s", opname(n), DT(a->dtype));
        if (operand(g, n, 1)->dtype != operand(g, n, 2)->dtype)
            return rt_fail(err, len, "%s: dtypes differ: %s and %s", opname(n), DT(operand(g, n, 1)->dtype),
                           DT(operand(g, n, 2)->dtype));
        n->dtype = operand(g, n, 1)->dtype;
        break;
    case T_CAST:
        if (n->dtype == AG_F64 || (unsigned)n->dtype >= AG_DTYPE_COUNT)
            return rt_fail(err, len, "%s: cannot cast to %s", opname(n), DT(n->dtype));
        break;
    case T_SAME: n->dtype = a->dtype; break;
    }
    n->shape = s;
    return true;
}

static bool rule_source(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    (void)g;
    if (n->dtype == AG_F64 || (unsigned)n->dtype >= AG_DTYPE_COUNT)
        return rt_fail(err, len, "%s: dtype %s is not allowed in a graph", opname(n), DT(n->dtype));
    if (!valid_dims(n, &n->shape, err, len))
        return false;
    if ((ir_ops[n->op].attrs & A_NAME) && (!n->attr.name || !n->attr.name[0]))
        return rt_fail(err, len, "%s: needs a name", opname(n));
    if (n->op == IR_param) {
        if (n->dtype != AG_F32)
            return rt_fail(err, len, "param %s: parameters are f32, not %s", n->attr.name, DT(n->dtype));
        if (ir_has_batch(&n->shape))
            return rt_fail(err, len, "param %s: the batch dim N cannot be in a parameter's shape %s", n->attr.name,
                           SHAPE(&n->shape));
        if (n->attr.init.kind > AG_INIT_XAVIER)
            return rt_fail(err, len, "param %s: unknown initializer", n->attr.name);
        /* finite and f32-sized, else every value starts as nan or inf */
        if (!(fabs(n->attr.init.a) <= FLT_MAX && fabs(n->attr.init.b) <= FLT_MAX))
            return rt_fail(err, len, "param %s: initializer arguments %g, %g: must be finite f32 numbers", n->attr.name,
                           n->attr.init.a, n->attr.init.b);
        if (n->attr.init.kind == AG_INIT_NORMAL && !(n->attr.init.b >= 0))
            return rt_fail(err, len, "param %s: normal(%g, %g): the standard deviation must be >= 0", n->attr.name,
                           n->attr.init.a, n->attr.init.b);
        if (n->attr.init.kind == AG_INIT_UNIFORM && !(n->attr.init.a < n->attr.init.b))
            return rt_fail(err, len, "param %s: uniform(%g, %g): needs low < high", n->attr.name, n->attr.init.a,
                           n->attr.init.b);
    }
    if (n->op == IR_const && n->shape.rank != 0)
        return rt_fail(err, len, "const: constants are scalars, got %s", SHAPE(&n->shape));
    return true;
}

static bool axis_ok(const ir_node *n, int axis, int rank, char *err, size_t len)
{
    if (axis < 0 || axis >= rank)
        return rt_fail(err, len, "%s: axis %d out of range for rank %d", opname(n), axis, rank);
    return true;
}

static bool rule_reduce(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    if (n->attr.axes >> a->shape.rank)
        return rt_fail(err, len, "%s: axes out of range for %s", opname(n), SHAPE(&a->shape));
    if (n->op == IR_mean ? a->dtype != AG_F32 : !numeric(a->dtype))
        return rt_fail(err, len, "%s: needs %s, got %s", opname(n), n->op == IR_mean ? "f32" : "f32 or i32",
                       DT(a->dtype));
    ir_shape s = {0, {0}};
    for (int i = 0; i < a->shape.rank; i++) {
        bool reduced = n->attr.axes >> i & 1;
        if (!reduced || n->attr.keepdims)
            s.dim[s.rank++] = reduced ? 1 : a->shape.dim[i];
    }
    n->dtype = a->dtype;
    n->shape = s;
    return true;
}

static bool rule_argmax(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    if (!axis_ok(n, n->attr.axis, a->shape.rank, err, len))
        return false;
    if (!numeric(a->dtype))
        return rt_fail(err, len, "%s: needs f32 or i32, got %s", opname(n), DT(a->dtype));
    ir_shape s = {0, {0}};
    for (int i = 0; i < a->shape.rank; i++)
        if (i != n->attr.axis)
            s.dim[s.rank++] = a->shape.dim[i];
    n->dtype = AG_I32;
    n->shape = s;
    return true;
}

static bool rule_cumsum(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    if (!axis_ok(n, n->attr.axis, a->shape.rank, err, len))
        return false;
    if (!numeric(a->dtype))
        return rt_fail(err, len, "%s: needs f32 or i32, got %s", opname(n), DT(a->dtype));
    n->dtype = a->dtype;
    n->shape = a->shape;
    return true;
}

static bool rule_matmul(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0), *b = operand(g, n, 1);
    if (a->dtype != AG_F32 || b->dtype != AG_F32)
        return rt_fail(err, len, "%s: needs f32 operands, got %s and %s", opname(n), DT(a->dtype), DT(b->dtype));
    int ra = a->shape.rank, rb = b->shape.rank;
    if (ra < 1 || ra > 2 || rb < 1 || rb > 2)
        return rt_fail(err, len, "%s: operands must be vectors or matrices, got %s x %s", opname(n), SHAPE(&a->shape),
                       SHAPE(&b->shape));
    if ((n->attr.ta && ra != 2) || (n->attr.tb && rb != 2))
        return rt_fail(err, len, "%s: only a matrix can be read transposed", opname(n));
    const int64_t *da = a->shape.dim, *db = b->shape.dim;
    int64_t m = ra == 2 ? da[n->attr.ta ? 1 : 0] : 0, ka = ra == 2 ? da[n->attr.ta ? 0 : 1] : da[0];
    int64_t kb = rb == 2 ? db[n->attr.tb ? 1 : 0] : db[0], nn = rb == 2 ? db[n->attr.tb ? 0 : 1] : 0;
    if (ka != kb)
        return rt_fail(err, len, "%s: inner dimensions differ: %s%s x %s%s", opname(n), SHAPE(&a->shape),
                       n->attr.ta ? "^T" : "", SHAPE(&b->shape), n->attr.tb ? "^T" : "");
    ir_shape s = {0, {0}};
    if (ra == 2)
        s.dim[s.rank++] = m;
    if (rb == 2)
        s.dim[s.rank++] = nn;
    n->dtype = AG_F32;
    n->shape = s;
    return true;
}

static bool rule_transpose(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    unsigned seen = 0;
    ir_shape s = {a->shape.rank, {0}};
    for (int k = 0; k < s.rank; k++) {
        int p = n->attr.perm[k];
        if (p < 0 || p >= s.rank || (seen >> p & 1))
            return rt_fail(err, len, "%s: not a permutation of the %d axes of %s", opname(n), s.rank, SHAPE(&a->shape));
        seen |= 1u << p;
        s.dim[k] = a->shape.dim[p];
    }
    for (int k = s.rank; k < IR_MAX_RANK; k++)
        if (n->attr.perm[k] != 0)
            return rt_fail(err, len, "%s: not a permutation of the %d axes of %s", opname(n), s.rank, SHAPE(&a->shape));
    n->dtype = a->dtype;
    n->shape = s;
    return true;
}

static bool rule_reshape(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    if (!valid_dims(n, &n->shape, err, len))
        return false;
    bool na = ir_has_batch(&a->shape), nb = ir_has_batch(&n->shape);
    int64_t ea = ir_numel(&a->shape, 1), eb = ir_numel(&n->shape, 1);
    if (na != nb || ea != eb)
        return rt_fail(err, len, "%s: cannot reshape %s to %s: %lld%s elements vs %lld%s", opname(n), SHAPE(&a->shape),
                       SHAPE(&n->shape), (long long)ea, na ? " x N" : "", (long long)eb, nb ? " x N" : "");
    n->dtype = a->dtype;
    return true;
}

static bool rule_concat(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    int ax = n->attr.axis;
    if (!axis_ok(n, ax, a->shape.rank, err, len))
        return false;
    ir_shape s = a->shape;
    for (int i = 1; i < n->nin; i++) {
        const ir_node *b = operand(g, n, i);
        if (b->dtype != a->dtype)
            return rt_fail(err, len, "%s: dtypes differ: %s and %s", opname(n), DT(a->dtype), DT(b->dtype));
        bool same = b->shape.rank == a->shape.rank;
        for (int k = 0; same && k < s.rank; k++)
            same = k == ax || b->shape.dim[k] == a->shape.dim[k];
        if (!same)
            return rt_fail(err, len, "%s: shapes %s and %s differ off axis %d", opname(n), SHAPE(&a->shape),
                           SHAPE(&b->shape), ax);
        if (s.dim[ax] == AG_N || b->shape.dim[ax] == AG_N)
            return rt_fail(err, len, "%s: cannot join along the batch axis N", opname(n));
        s.dim[ax] += b->shape.dim[ax];
    }
    n->dtype = a->dtype;
    n->shape = s;
    return true;
}

static bool rule_broadcast_to(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    if (!valid_dims(n, &n->shape, err, len))
        return false;
    const ir_shape *s = &n->shape;
    bool ok = a->shape.rank <= s->rank;
    for (int i = 0; ok && i < a->shape.rank; i++) {
        int64_t d = a->shape.dim[i], t = s->dim[i + s->rank - a->shape.rank];
        ok = d == t || d == 1;
    }
    if (!ok)
        return rt_fail(err, len, "%s: cannot broadcast %s to %s", opname(n), SHAPE(&a->shape), SHAPE(s));
    n->dtype = a->dtype;
    return true;
}

/* The requested extent along axis (n's shape on entry), from attr.start; other axes kept. */
static bool rule_slice(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    int ax = n->attr.axis;
    if (!axis_ok(n, ax, a->shape.rank, err, len))
        return false;
    if (n->shape.rank != a->shape.rank)
        return rt_fail(err, len, "%s: result rank %d differs from the operand's %s", opname(n), n->shape.rank,
                       SHAPE(&a->shape));
    for (int i = 0; i < a->shape.rank; i++)
        if (i != ax && n->shape.dim[i] != a->shape.dim[i])
            return rt_fail(err, len, "%s: result %s differs from %s off axis %d", opname(n), SHAPE(&n->shape),
                           SHAPE(&a->shape), ax);
    int64_t from = n->attr.start, extent = n->shape.dim[ax], whole = a->shape.dim[ax];
    if (whole == AG_N || extent == AG_N)
        return rt_fail(err, len, "%s: cannot slice along the batch axis N", opname(n));
    if (from < 0 || extent < 1 || from > whole - extent)
        return rt_fail(err, len, "%s: %lld elements from %lld are not within the %lld of axis %d", opname(n),
                       (long long)extent, (long long)from, (long long)whole, ax);
    n->dtype = a->dtype;
    return true;
}

static bool rule_row(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    if (!axis_ok(n, n->attr.axis, a->shape.rank, err, len))
        return false;
    if (a->dtype != AG_F32)
        return rt_fail(err, len, "%s: needs f32, got %s", opname(n), DT(a->dtype));
    n->dtype = AG_F32;
    n->shape = a->shape;
    return true;
}

/* logits [rows, classes] f32 and labels [rows] i32; softmax_ce_grad also d [rows] f32 */
static bool rule_softmax_ce(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0), *y = operand(g, n, 1);
    if (a->dtype != AG_F32 || a->shape.rank != 2)
        return rt_fail(err, len, "%s: logits must be f32 [rows, classes], got %s", opname(n), TYPE(a));
    if (y->dtype != AG_I32 || y->shape.rank != 1 || y->shape.dim[0] != a->shape.dim[0])
        return rt_fail(err, len, "%s: labels must be i32 with one per row of %s, got %s", opname(n), SHAPE(&a->shape),
                       TYPE(y));
    if (n->op == IR_softmax_ce_grad) {
        const ir_node *d = operand(g, n, 2);
        if (d->dtype != AG_F32 || !ir_shape_eq(&d->shape, &y->shape))
            return rt_fail(err, len, "%s: the row gradient must be f32 %s, got %s", opname(n), SHAPE(&y->shape),
                           TYPE(d));
        n->shape = a->shape;
    } else
        n->shape = y->shape;
    n->dtype = AG_F32;
    return true;
}

#define rule_softmax_ce_grad rule_softmax_ce

static bool rule_one_hot(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    if (a->dtype != AG_I32)
        return rt_fail(err, len, "%s: labels must be i32, got %s", opname(n), DT(a->dtype));
    if (n->attr.classes < 1)
        return rt_fail(err, len, "%s: needs at least 1 class, got %d", opname(n), n->attr.classes);
    if (a->shape.rank >= IR_MAX_RANK)
        return rt_fail(err, len, "%s: labels %s leave no room for a class axis", opname(n), SHAPE(&a->shape));
    n->shape = a->shape;
    n->shape.dim[n->shape.rank++] = n->attr.classes;
    n->dtype = AG_F32;
    return true;
}

static bool rule_dropout(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    if (a->dtype != AG_F32)
        return rt_fail(err, len, "%s: needs f32, got %s", opname(n), DT(a->dtype));
    if (!(n->attr.value >= 0 && n->attr.value <= 1))
        return rt_fail(err, len, "%s: p = %g is not a probability in [0, 1]", opname(n), n->attr.value);
    if (n->attr.site < 1)
        return rt_fail(err, len, "%s: site %d; sites are numbered from 1", opname(n), n->attr.site);
    n->dtype = AG_F32;
    n->shape = a->shape;
    return true;
}

static bool rule_allreduce(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *a = operand(g, n, 0);
    if (a->dtype != AG_F32)
        return rt_fail(err, len, "%s: needs f32, got %s", opname(n), DT(a->dtype));
    if (n->attr.bucket < 0)
        return rt_fail(err, len, "%s: bucket %d; buckets are numbered from 0", opname(n), n->attr.bucket);
    n->dtype = AG_F32;
    n->shape = a->shape;
    return true;
}

/* ---- sliding windows: [B,C,H,W] values, B the batch (N or a number), the rest fixed ---- */

int64_t ir_window_extent(int64_t in, const ir_window *w, int axis)
{
    int64_t span = (int64_t)w->dilation[axis] * (w->kernel[axis] - 1) + 1, e = in + 2 * (int64_t)w->pad[axis] - span;
    return e < 0 ? 0 : e / w->stride[axis] + 1;
}

/* The attributes in range: positive kernel, stride and dilation, pad from 0, at most 2^16 taps
 * a window (every reference path visits each); pooling's pad at most half its kernel
 * (PyTorch's bound: with dilation a window may still lie wholly in the padding, and give
 * -inf), groups 1 but for conv2d, avg_pool2d undilated. */
static bool window_ok(const ir_node *n, char *err, size_t len)
{
    const ir_window *w = &n->attr.win;
    bool pool = n->op != IR_conv2d && n->op != IR_conv2d_input_grad && n->op != IR_conv2d_weight_grad;
    bool avg = n->op == IR_avg_pool2d || n->op == IR_avg_pool2d_grad;
    for (int i = 0; i < 2; i++) {
        const int32_t lim = 1 << 20;
        if (w->kernel[i] < 1 || w->stride[i] < 1 || w->dilation[i] < 1 || w->pad[i] < 0 || w->kernel[i] > lim ||
            w->stride[i] > lim || w->dilation[i] > lim || w->pad[i] > lim)
            return rt_fail(err, len,
                           "%s: kernel [%d,%d], stride [%d,%d] and dilation [%d,%d] must be from 1 to 2^20, pad "
                           "[%d,%d] from 0",
                           opname(n), w->kernel[0], w->kernel[1], w->stride[0], w->stride[1], w->dilation[0],
                           w->dilation[1], w->pad[0], w->pad[1]);
        if (pool && w->pad[i] > w->kernel[i] / 2)
            return rt_fail(err, len, "%s: pad %d is more than half the kernel's %d", opname(n), w->pad[i],
                           w->kernel[i]);
    }
    if ((int64_t)w->kernel[0] * w->kernel[1] > 65536)
        return rt_fail(err, len, "%s: a %dx%d window has more than 2^16 taps", opname(n), w->kernel[0], w->kernel[1]);
    if (w->groups < 1 || (pool && w->groups != 1))
        return rt_fail(err, len, "%s: groups=%d (%s)", opname(n), w->groups, pool ? "pooling takes 1" : "at least 1");
    if (avg && (w->dilation[0] != 1 || w->dilation[1] != 1))
        return rt_fail(err, len, "%s: dilation [%d,%d]; average pooling takes none ([1,1])", opname(n), w->dilation[0],
                       w->dilation[1]);
    return true;
}

/* s is an f32 [B,C,H,W], only B the batch. */
static bool nchw(const ir_node *n, const char *what, ag_dtype t, const ir_shape *s, char *err, size_t len)
{
    if (t != AG_F32 || s->rank != 4 || s->dim[1] == AG_N || s->dim[2] == AG_N || s->dim[3] == AG_N)
        return rt_fail(err, len, "%s: %s is %s; it takes f32[B,C,H,W] (N, if anywhere, first)", opname(n), what,
                       ir_type_str(t, s, (char[80]){0}, 80));
    return true;
}

/* The shape a window op makes of input shape in ([B,C,H,W]): [B,channels,OH,OW]; false if the
 * window does not fit. */
static bool window_out(const ir_node *n, const ir_shape *in, int64_t channels, ir_shape *out, char *err, size_t len)
{
    const ir_window *w = &n->attr.win;
    *out =
        (ir_shape){4, {in->dim[0], channels, ir_window_extent(in->dim[2], w, 0), ir_window_extent(in->dim[3], w, 1)}};
    if (out->dim[2] < 1 || out->dim[3] < 1)
        return rt_fail(err, len, "%s: a %dx%d window (dilation [%d,%d]) does not fit %s padded by [%d,%d]", opname(n),
                       w->kernel[0], w->kernel[1], w->dilation[0], w->dilation[1], SHAPE(in), w->pad[0], w->pad[1]);
    return true;
}

/* Weights w ([O,C/groups,KH,KW]) fit n's window over x's channels. */
static bool conv_weights(const ir_node *n, const ir_shape *x, const ir_shape *w, char *err, size_t len)
{
    const ir_window *win = &n->attr.win;
    for (int i = 0; i < 4; i++)
        if (w->rank != 4 || w->dim[i] == AG_N)
            return rt_fail(err, len, "%s: the weights are %s; they take [O,C/groups,KH,KW]", opname(n), SHAPE(w));
    if (x->dim[1] % win->groups || w->dim[0] % win->groups)
        return rt_fail(err, len, "%s: groups=%d does not divide the %lld input and %lld output channels", opname(n),
                       win->groups, (long long)x->dim[1], (long long)w->dim[0]);
    if (w->dim[1] * win->groups != x->dim[1])
        return rt_fail(err, len,
                       "%s: the weights %s take %lld input channels a group; the input %s gives each of its %d "
                       "group%s %lld",
                       opname(n), SHAPE(w), (long long)w->dim[1], SHAPE(x), win->groups, win->groups == 1 ? "" : "s",
                       (long long)(x->dim[1] / win->groups));
    if (w->dim[2] != win->kernel[0] || w->dim[3] != win->kernel[1])
        return rt_fail(err, len, "%s: kernel=[%d,%d] but the weights are %s", opname(n), win->kernel[0], win->kernel[1],
                       SHAPE(w));
    return true;
}

/* A convolution's products fit sgemm's int dimensions: one sample's unfolded input [C*KH*KW,
 * OH*OW] and output [O, OH*OW] (runtime/conv.c multiplies them a sample at a time). */
static bool conv_fits(const ir_node *n, const ir_shape *in, int64_t out_channels, char *err, size_t len)
{
    const ir_window *w = &n->attr.win;
    int64_t pixels = ir_window_extent(in->dim[2], w, 0) * ir_window_extent(in->dim[3], w, 1);
    int64_t taps = in->dim[1] * w->kernel[0] * w->kernel[1];
    if (taps > INT32_MAX / (pixels > 0 ? pixels : 1) || out_channels > INT32_MAX / (pixels > 0 ? pixels : 1))
        return rt_fail(err, len, "%s: one sample's unfolded input (%lld x %lld) or output is past 2^31 elements",
                       opname(n), (long long)taps, (long long)pixels);
    return true;
}

/* A gradient's operand dy is the shape the forward op makes of in. */
static bool window_grad_of(const ir_node *n, const ir_shape *in, int64_t channels, const ir_node *dy, char *err,
                           size_t len)
{
    ir_shape want;
    if (!window_out(n, in, channels, &want, err, len))
        return false;
    if (dy->dtype != AG_F32 || !ir_shape_eq(&dy->shape, &want))
        return rt_fail(err, len, "%s: the result's gradient is %s; the window makes f32%s of %s", opname(n), TYPE(dy),
                       SHAPE(&want), SHAPE(in));
    return true;
}

static bool rule_conv2d(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *x = operand(g, n, 0), *w = operand(g, n, 1);
    if (!window_ok(n, err, len) || !nchw(n, "the input", x->dtype, &x->shape, err, len) ||
        !nchw(n, "the weights", w->dtype, &w->shape, err, len) || !conv_weights(n, &x->shape, &w->shape, err, len) ||
        !conv_fits(n, &x->shape, w->shape.dim[0], err, len))
        return false;
    n->dtype = AG_F32;
    return window_out(n, &x->shape, w->shape.dim[0], &n->shape, err, len);
}

static bool rule_conv2d_input_grad(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *dy = operand(g, n, 0), *w = operand(g, n, 1);
    if (!window_ok(n, err, len) || !valid_dims(n, &n->shape, err, len) ||
        !nchw(n, "the result", AG_F32, &n->shape, err, len) || !nchw(n, "the weights", w->dtype, &w->shape, err, len) ||
        !conv_weights(n, &n->shape, &w->shape, err, len) || !conv_fits(n, &n->shape, w->shape.dim[0], err, len))
        return false;
    n->dtype = AG_F32;
    return window_grad_of(n, &n->shape, w->shape.dim[0], dy, err, len);
}

static bool rule_conv2d_weight_grad(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *x = operand(g, n, 0), *dy = operand(g, n, 1);
    if (!window_ok(n, err, len) || !valid_dims(n, &n->shape, err, len) ||
        !nchw(n, "the input", x->dtype, &x->shape, err, len) || !nchw(n, "the result", AG_F32, &n->shape, err, len) ||
        !conv_weights(n, &x->shape, &n->shape, err, len) || !conv_fits(n, &x->shape, n->shape.dim[0], err, len))
        return false;
    n->dtype = AG_F32;
    return window_grad_of(n, &x->shape, n->shape.dim[0], dy, err, len);
}

static bool rule_pool2d(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *x = operand(g, n, 0);
    if (!window_ok(n, err, len) || !nchw(n, "the input", x->dtype, &x->shape, err, len))
        return false;
    n->dtype = AG_F32;
    return window_out(n, &x->shape, x->shape.dim[1], &n->shape, err, len);
}

static bool rule_max_pool2d_grad(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *x = operand(g, n, 0), *dy = operand(g, n, 1);
    if (!window_ok(n, err, len) || !nchw(n, "the input", x->dtype, &x->shape, err, len) ||
        !window_grad_of(n, &x->shape, x->shape.dim[1], dy, err, len))
        return false;
    n->dtype = AG_F32;
    n->shape = x->shape;
    return true;
}

static bool rule_avg_pool2d_grad(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    const ir_node *dy = operand(g, n, 0);
    if (!window_ok(n, err, len) || !valid_dims(n, &n->shape, err, len) ||
        !nchw(n, "the result", AG_F32, &n->shape, err, len) ||
        !window_grad_of(n, &n->shape, n->shape.dim[1], dy, err, len))
        return false;
    n->dtype = AG_F32;
    return true;
}

/* The operands match the body's inputs one for one; the result is the chosen output. */
static bool rule_kernel(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    if (n->attr.kernel < 0 || n->attr.kernel >= g->nkernels || !g->kernels[n->attr.kernel])
        return rt_fail(err, len, "%s: no body %d", opname(n), n->attr.kernel);
    const ir_graph *b = g->kernels[n->attr.kernel];
    int inputs = 0, k = 0;
    for (int32_t i = 0; i < b->n; i++)
        inputs += b->node[i].op == IR_input;
    if (inputs != n->nin)
        return rt_fail(err, len, "%s: body @k%d takes %d operands, got %d", opname(n), n->attr.kernel, inputs, n->nin);
    for (int32_t i = 0; i < b->n; i++) {
        const ir_node *p = &b->node[i];
        if (p->op != IR_input)
            continue;
        const ir_node *a = operand(g, n, k++);
        if (a->dtype != p->dtype || !ir_shape_eq(&a->shape, &p->shape))
            return rt_fail(err, len, "%s: operand %d is %s; body @k%d's input %s is %s", opname(n), k - 1, TYPE(a),
                           n->attr.kernel, p->attr.name, TYPE(p));
    }
    if (n->attr.output < 0 || n->attr.output >= b->nout)
        return rt_fail(err, len, "%s: body @k%d has no output %d", opname(n), n->attr.kernel, n->attr.output);
    const ir_node *o = &b->node[b->out[n->attr.output].id];
    n->dtype = o->dtype;
    n->shape = o->shape;
    return true;
}

static rule_fn *const rules[IR_OP_COUNT] = {
#define RULE_EW(name, ...) [IR_##name] = rule_ew,
#define RULE_OP(name, kind, arity, attrs, rule, grad, doc) [IR_##name] = rule,
    IR_OPS(RULE_EW, RULE_OP)
#undef RULE_EW
#undef RULE_OP
};

bool ir_infer(const ir_graph *g, ir_node *n, char *err, size_t len)
{
    if ((unsigned)n->op >= IR_OP_COUNT)
        return rt_fail(err, len, "unknown op %d", (int)n->op);
    if (!check_arity(n, err, len))
        return false;
    for (int i = 0; i < n->nin; i++)
        if (n->in[i] < 0 || n->in[i] >= g->n)
            return rt_fail(err, len, "%s: operand %d is not a node of the graph", opname(n), i);
    if (!rules[n->op](g, n, err, len))
        return false;
    int batch = 0;
    int64_t elements = 1;
    for (int i = 0; i < n->shape.rank; i++) {
        batch += n->shape.dim[i] == AG_N;
        if (n->shape.dim[i] != AG_N && (elements *= n->shape.dim[i]) > IR_MAX_ELEMENTS)
            return rt_fail(err, len, "%s: %s has more than 2^40 elements per batch item", opname(n), SHAPE(&n->shape));
    }
    if (batch > 1)
        return rt_fail(err, len, "%s: the batch dim N would appear %d times in %s", opname(n), batch, SHAPE(&n->shape));
    return true;
}
