/* Lowering: a planned, fused graph to the kernel IR (codegen/kernel.h).
 *
 * Every top-level node is a fused group (a kernel node's body, or a plain node taken as a
 * body of one). Its nodes are visited in order; elementwise nodes over one index space
 * accumulate into the same loop as expressions, each operand either a value of that loop or
 * a load from a materialized value (with stride 0 where it is broadcast). A node that is not
 * elementwise, or is over another index space, closes the loop: the loop stores what later
 * nodes or the group's outputs still need. Reductions close their loop with accumulating
 * stores; matmuls become sgemm calls (the SGD update of a weight gradient as sgemm's alpha
 * and beta); row ops become runtime calls. Materialized values are views: a buffer, an
 * offset and strides, so reshape, transpose, slice and broadcast_to cost nothing.
 *
 * Values live where the memory plan put them; values inside a group that must be
 * materialized get scratch bytes after the plan's arena. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bug.h"
#include "fail.h"
#include "lower.h"

#include "lower_internal.h"

#define ALIGN 64

/* ---- buffers and steps ---- */

static int32_t add_buffer(lowering *L, cg_buffer b)
{
    if (L->p->nbuffers == L->cap_buffers) {
        L->cap_buffers = L->cap_buffers ? 2 * L->cap_buffers : 32;
        L->p->buffers = ir_xrealloc(L->p->buffers, sizeof *L->p->buffers * (size_t)L->cap_buffers);
    }
    L->p->buffers[L->p->nbuffers] = b;
    return L->p->nbuffers++;
}

cg_step *lo_add_step(lowering *L, cg_step_kind kind, int32_t node)
{
    if (L->p->nsteps == L->cap_steps) {
        L->cap_steps = L->cap_steps ? 2 * L->cap_steps : 32;
        L->p->steps = ir_xrealloc(L->p->steps, sizeof *L->p->steps * (size_t)L->cap_steps);
    }
    cg_step *s = &L->p->steps[L->p->nsteps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->node = node;
    /* the kernel's name in the fused IR (@k3: k3), or the plain node's (%12: v12); a
     * kernel's later steps add _2, _3 */
    const ir_node *n = &L->g->node[node];
    char base[24];
    if (n->op == IR_kernel)
        snprintf(base, sizeof base, "k%d", (int)n->attr.kernel);
    else {
        char v[24];
        snprintf(base, sizeof base, "v%s", ir_value_name(L->g, node, v, sizeof v) + 1);
    }
    int same = 0;
    for (int k = 0; k < L->p->nsteps - 1; k++)
        same += strncmp(L->p->steps[k].name, base, strlen(base)) == 0 &&
                (L->p->steps[k].name[strlen(base)] == 0 || L->p->steps[k].name[strlen(base)] == '_');
    if (same)
        snprintf(s->name, sizeof s->name, "%.14s_%d", base, same + 1);
    else
        snprintf(s->name, sizeof s->name, "%s", base);
    s->line = n->loc.line > 0 ? n->loc.line : 0;
    if (n->loc.file && !L->p->file)
        L->p->file = n->loc.file;
    const ir_graph *body = n->op == IR_kernel && n->attr.kernel >= 0 ? L->g->kernels[n->attr.kernel] : NULL;
    for (int32_t i = 0; i < (body ? body->n : 1); i++) { /* insert each line once, in order */
        int32_t line = body ? body->node[i].loc.line : s->line;
        int at = 0;
        while (at < s->nlines && s->lines[at] < line)
            at++;
        if (line <= 0 || (at < s->nlines && s->lines[at] == line) || at == 4)
            continue;
        for (int k = (s->nlines < 4 ? s->nlines : 3); k > at; k--)
            s->lines[k] = s->lines[k - 1];
        s->lines[at] = line;
        s->nlines += s->nlines < 4;
    }
    return s;
}

/* The bytes of a t[s] value at batch, 64-byte aligned. The verifier refuses a value past
 * IR_MAX_BYTES at the declared batch; a plan for a larger one fails here, not overflows. */
static int64_t aligned_bytes_at(lowering *L, const ir_shape *s, ag_dtype t, int64_t batch)
{
    int64_t bytes = ir_bytes(t, s, batch);
    if (bytes < 0) {
        if (!L->failed)
            L->failed =
                !rt_fail(L->err, L->len, "lower: a %s value of %s is more than 2^%d bytes at batch %lld",
                         ir_dtype_name(t), ir_shape_str(s, (char[64]){0}, 64), IR_MAX_BYTES_LOG2, (long long)batch);
        return 0;
    }
    return (bytes + ALIGN - 1) / ALIGN * ALIGN;
}

/* *total += bytes, failing the lowering past IR_MAX_BYTES (so sums of totals fit int64) */
static void add_bytes(lowering *L, int64_t *total, int64_t bytes)
{
    if ((!ir_add_ok(*total, bytes, total) || *total > IR_MAX_BYTES) && !L->failed)
        L->failed = !rt_fail(L->err, L->len, "lower: %s needs more than 2^%d bytes", L->g->name, IR_MAX_BYTES_LOG2);
}

/* A value's bytes in the arena as k + n*N, aligned as the memory plan aligns its buffers:
 * the fixed part to a cache line, the part per row to 16 bytes. */
static ir_affine aligned_affine(lowering *L, const ir_shape *s, ag_dtype t)
{
    ir_affine b = ir_bytes_affine(t, s);
    aligned_bytes_at(L, s, t, 1); /* fails on a value too large at N = 1 */
    return b.k < 0 || b.n < 0 ? (ir_affine){0, 0}
                              : (ir_affine){(b.k + ALIGN - 1) / ALIGN * ALIGN, (b.n + 15) / 16 * 16};
}

static void add_affine(lowering *L, ir_affine *total, ir_affine bytes)
{
    add_bytes(L, &total->k, bytes.k);
    add_bytes(L, &total->n, bytes.n);
}

/* A contiguous view of a buffer holding a value of shape s. */
view lo_contiguous(int32_t buffer, const ir_shape *s)
{
    view v = {buffer, 0, 0, {0}, {0}, *s};
    int64_t k = 1, n = 0; /* the running stride, k + n*N */
    for (int i = s->rank - 1; i >= 0; i--) {
        v.stride[i] = k, v.nstride[i] = n;
        if (s->dim[i] == AG_N) {
            if (n) /* N twice in one shape is ruled out by the shape rules */
                ir_bug("%s has the batch N twice", ir_shape_str(s, (char[64]){0}, 64));
            n = k, k = 0;
        } else
            k *= s->dim[i], n *= s->dim[i];
    }
    return v;
}

int32_t lo_scratch_buffer(lowering *L, const ir_shape *s, ag_dtype t)
{
    ir_affine at = ir_affine_add(L->fixed, L->scratch);
    int32_t b = add_buffer(L, (cg_buffer){CG_ARENA, 0, {at.k, at.n}, t});
    add_affine(L, &L->scratch, aligned_affine(L, s, t));
    L->scratch_max.k = L->scratch.k > L->scratch_max.k ? L->scratch.k : L->scratch_max.k;
    L->scratch_max.n = L->scratch.n > L->scratch_max.n ? L->scratch.n : L->scratch_max.n;
    return b;
}

/* ---- loops ---- */

static int32_t loop_load(group *G, const view *v)
{
    cg_loop *l = &G->loop->loop;
    int r = G->space.rank;
    cg_access a = {v->buffer, {v->offset, v->noffset}, {{0}}};
    for (int i = 0; i < r; i++) {
        int j = i - (r - v->shape.rank);
        if (j >= 0 && v->shape.dim[j] == G->space.dim[i])
            a.stride[i] = (cg_dim){v->stride[j], v->nstride[j]};
    }
    for (int k = 0; k < l->nloads; k++)
        if (memcmp(&l->load[k], &a, sizeof a) == 0)
            return k;
    if (l->nloads == CG_MAX_LOADS) /* loop_has_room keeps loops below */
        ir_bug("a loop with more than %d loads", CG_MAX_LOADS);
    l->load[l->nloads] = a;
    return l->nloads++;
}

static int32_t loop_expr(group *G, cg_expr e)
{
    cg_loop *l = &G->loop->loop;
    if (l->nexprs == CG_MAX_EXPRS)
        ir_bug("a loop with more than %d expressions", CG_MAX_EXPRS);
    l->expr[l->nexprs] = e;
    return l->nexprs++;
}

static void open_loop(lowering *L, group *G, const ir_shape *space)
{
    G->loop = lo_add_step(L, CG_LOOP, G->node);
    G->space = *space;
    cg_loop *l = &G->loop->loop;
    l->rank = space->rank;
    for (int i = 0; i < space->rank; i++)
        l->extent[i] = space->dim[i] == AG_N ? (cg_dim){0, 1} : (cg_dim){space->dim[i], 0};
}

/* Store expression e of the open loop into view v (which has the loop's shape, or the
 * reduced shape with reduced axes dropped or kept as 1). */
static void loop_store(group *G, int32_t e, const view *v, uint8_t reduce)
{
    cg_loop *l = &G->loop->loop;
    cg_store st = {e, {v->buffer, {v->offset, v->noffset}, {{0}}}};
    for (int i = 0, j = 0; i < G->space.rank; i++) {
        bool reduced = reduce >> i & 1;
        if (reduced && v->shape.rank < G->space.rank)
            continue; /* dropped: stride 0 */
        if (!reduced)
            st.at.stride[i] = (cg_dim){v->stride[j], v->nstride[j]};
        j++;
    }
    if (l->nstores == CG_MAX_STORES)
        ir_bug("a loop with more than %d stores", CG_MAX_STORES);
    l->store[l->nstores++] = st;
}

/* The buffer a body value ends in: its outer home, or scratch. */
view lo_home_of(lowering *L, group *G, int32_t b)
{
    const ir_node *n = &G->body->node[b];
    int32_t buf = G->home[b] >= 0 ? G->home[b] : lo_scratch_buffer(L, &n->shape, n->dtype);
    return lo_contiguous(buf, &n->shape);
}

/* Close the open loop: values still needed store to where they live. */
void lo_close_loop(lowering *L, group *G)
{
    if (!G->loop)
        return;
    for (int32_t b = 0; b < G->body->n; b++) {
        if (G->expr[b] < 0)
            continue;
        if (G->users_left[b] > 0 || G->is_output[b]) {
            G->val[b] = lo_home_of(L, G, b);
            loop_store(G, G->expr[b], &G->val[b], 0);
        }
        G->expr[b] = -1;
    }
    if (G->loop->loop.nstores == 0) /* nothing left to store: the loop is dead */
        L->p->nsteps--;
    G->loop = NULL;
}

/* An operand of a loop node as an expression. */
static int32_t operand_expr(group *G, int32_t b)
{
    const ir_node *n = &G->body->node[b];
    if (G->expr[b] >= 0)
        return G->expr[b];
    if (n->op == IR_const)
        return loop_expr(G, (cg_expr){.kind = CG_E_CONST, .dtype = n->dtype, .value = n->attr.value});
    return loop_expr(G, (cg_expr){.kind = CG_E_LOAD, .dtype = n->dtype, .load = loop_load(G, &G->val[b])});
}

/* Whether the open loop can take node n: its loads, a few expressions, and a store for every
 * value it may have to keep. Else the loop is closed first (what is pending is stored) and
 * n starts a loop of its own, so a long chain is several loops, not an overflowing one. */
static bool loop_has_room(const group *G, const ir_node *n)
{
    const cg_loop *l = &G->loop->loop;
    int pending = 0;
    for (int32_t v = 0; v < G->body->n; v++)
        pending += G->expr[v] >= 0 && (G->users_left[v] > 0 || G->is_output[v]);
    /* a node adds at most 4 expressions (one_hot: a load, an index, eq, cast) and one per
     * operand: 8 covers every op of the table */
    return l->nloads + n->nin + 1 <= CG_MAX_LOADS && l->nexprs + 8 <= CG_MAX_EXPRS && pending + 1 <= CG_MAX_STORES;
}

static void lower_elementwise(lowering *L, group *G, int32_t b)
{
    const ir_node *n = &G->body->node[b];
    view labels;
    if (n->op == IR_one_hot) { /* the labels, seen with a unit class axis: they index rows */
        labels = *lo_need_view(L, G, n->in[0]);
        labels.shape.dim[labels.shape.rank] = 1;
        labels.stride[labels.shape.rank] = labels.nstride[labels.shape.rank] = 0;
        labels.shape.rank++;
    }
    if (G->loop && (!ir_shape_eq(&G->space, &n->shape) || G->loop->loop.reduce || !loop_has_room(G, n)))
        lo_close_loop(L, G);
    if (!G->loop)
        open_loop(L, G, &n->shape);
    if (n->op == IR_one_hot) { /* label == the class index along the last axis */
        int32_t y = loop_expr(G, (cg_expr){.kind = CG_E_LOAD, .dtype = AG_I32, .load = loop_load(G, &labels)});
        int32_t idx = loop_expr(G, (cg_expr){.kind = CG_E_INDEX, .dtype = AG_I32, .axis = n->shape.rank - 1});
        int32_t eq = loop_expr(G, (cg_expr){.kind = CG_E_OP, .dtype = AG_BOOL, .op = IR_eq, .a = y, .b = idx, .c = -1});
        G->expr[b] =
            loop_expr(G, (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_cast, .a = eq, .b = -1, .c = -1});
        return;
    }
    cg_expr e = {.kind = CG_E_OP, .dtype = n->dtype, .op = n->op, .a = -1, .b = -1, .c = -1};
    int32_t *slot[3] = {&e.a, &e.b, &e.c};
    for (int k = 0; k < n->nin; k++)
        *slot[k] = operand_expr(G, n->in[k]);
    G->expr[b] = loop_expr(G, e);
}

/* Materialize body value b if it is pending in the open loop (its readers need a buffer). */
const view *lo_need_view(lowering *L, group *G, int32_t b)
{
    if (G->val[b].buffer < 0)
        lo_close_loop(L, G);
    if (G->val[b].buffer < 0) { /* a constant: fill a scratch scalar */
        const ir_node *n = &G->body->node[b];
        G->val[b] = lo_home_of(L, G, b);
        open_loop(L, G, &n->shape);
        int32_t e = loop_expr(G, (cg_expr){.kind = CG_E_CONST, .dtype = n->dtype, .value = n->attr.value});
        loop_store(G, e, &G->val[b], 0);
        G->loop = NULL;
    }
    return &G->val[b];
}

static void lower_reduce(lowering *L, group *G, int32_t b)
{
    if (lo_bias_sum(L, G, b))
        return;
    const ir_node *n = &G->body->node[b];
    int32_t x = n->in[0];
    const ir_shape *xs = &G->body->node[x].shape;
    /* a reducing loop holds only the reduction's stores: values of the loop that later
     * nodes need are stored by a loop of their own first */
    bool others = false;
    for (int32_t v = 0; v < G->body->n && G->loop; v++)
        others |= G->expr[v] >= 0 && (G->is_output[v] || G->users_left[v] > (v == x ? 1 : 0));
    if (others || G->expr[x] < 0 || !G->loop || !ir_shape_eq(&G->space, xs) || G->loop->loop.reduce) {
        const view *v = lo_need_view(L, G, x);
        view copy = *v;
        lo_close_loop(L, G);
        open_loop(L, G, xs);
        G->expr[x] = loop_expr(G, (cg_expr){.kind = CG_E_LOAD, .dtype = n->dtype, .load = loop_load(G, &copy)});
    }
    /* the loop's other pending values are stored by close_loop below; the sum stores now */
    G->val[b] = lo_home_of(L, G, b);
    G->loop->loop.reduce = n->attr.axes;
    G->loop->loop.combine = n->op == IR_max ? IR_max : IR_sum;
    loop_store(G, G->expr[x], &G->val[b], n->attr.axes);
    for (int32_t v = 0; v < G->body->n; v++) /* all consumed by the reduction */
        G->expr[v] = -1;
    G->loop = NULL;
    if (n->op != IR_mean)
        return;
    /* mean: the sum times 1/count, the batch's share of the count from a sum of ones */
    double count = 1;
    bool batch = false;
    for (int i = 0; i < xs->rank; i++)
        if (n->attr.axes >> i & 1) {
            if (xs->dim[i] == AG_N)
                batch = true;
            else
                count *= (double)xs->dim[i];
        }
    view sum = G->val[b];
    int32_t nbuf = -1;
    if (batch) { /* N as f32: a sum of ones over [N] */
        ir_shape one = {0, {0}}, ns = {1, {AG_N}};
        nbuf = lo_scratch_buffer(L, &one, AG_F32);
        open_loop(L, G, &ns);
        G->loop->loop.reduce = 1;
        G->loop->loop.combine = IR_sum;
        int32_t e = loop_expr(G, (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 1});
        view nv = lo_contiguous(nbuf, &one);
        loop_store(G, e, &nv, 1);
        G->loop = NULL;
    }
    open_loop(L, G, &n->shape);
    int32_t s = loop_expr(G, (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = loop_load(G, &sum)});
    int32_t c = loop_expr(G, (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = (double)(float)count});
    int32_t m = loop_expr(G, (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_div, .a = s, .b = c, .c = -1});
    if (batch) {
        view nv = lo_contiguous(nbuf, &(ir_shape){0, {0}});
        int32_t nl = loop_expr(G, (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = loop_load(G, &nv)});
        m = loop_expr(G, (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_div, .a = m, .b = nl, .c = -1});
    }
    loop_store(G, m, &G->val[b], 0);
    G->loop = NULL;
}

/* A layout op on a materialized value: a new view, no copy. */
static bool lower_view(lowering *L, group *G, int32_t b)
{
    const ir_node *n = &G->body->node[b];
    if (n->op == IR_concat)
        return false;
    view v = *lo_need_view(L, G, n->in[0]), r = v;
    r.shape = n->shape;
    switch (n->op) {
    case IR_reshape: {
        view c = lo_contiguous(v.buffer, &v.shape);
        if (memcmp(c.stride, v.stride, sizeof c.stride) || memcmp(c.nstride, v.nstride, sizeof c.nstride))
            return false; /* not contiguous: copy it */
        r = lo_contiguous(v.buffer, &n->shape);
        r.offset = v.offset, r.noffset = v.noffset;
        break;
    }
    case IR_transpose:
        for (int k = 0; k < n->shape.rank; k++)
            r.stride[k] = v.stride[n->attr.perm[k]], r.nstride[k] = v.nstride[n->attr.perm[k]];
        break;
    case IR_slice: /* the axis's stride may hold N ([4,N] sliced along 0): so may the offset */
        r.offset = v.offset + n->attr.start * v.stride[n->attr.axis];
        r.noffset = v.noffset + n->attr.start * v.nstride[n->attr.axis];
        break;
    case IR_broadcast_to: {
        int lead = n->shape.rank - v.shape.rank;
        for (int k = 0; k < n->shape.rank; k++) {
            int j = k - lead;
            bool kept = j >= 0 && v.shape.dim[j] == n->shape.dim[k];
            r.stride[k] = kept ? v.stride[j] : 0;
            r.nstride[k] = kept ? v.nstride[j] : 0;
        }
        break;
    }
    default: return false;
    }
    G->val[b] = r;
    return true;
}

/* Copy a view into the value's own buffer (a layout op that is not a view, or an output
 * that is one). */
void lo_copy_into(lowering *L, group *G, const view *from, view *to, const ir_shape *shape, ag_dtype t)
{
    lo_close_loop(L, G); /* what the open loop holds is stored first, not dropped */
    open_loop(L, G, shape);
    int32_t e = loop_expr(G, (cg_expr){.kind = CG_E_LOAD, .dtype = t, .load = loop_load(G, from)});
    loop_store(G, e, to, 0);
    G->loop = NULL;
}

static void lower_concat(lowering *L, group *G, int32_t b)
{
    const ir_node *n = &G->body->node[b];
    view out = lo_home_of(L, G, b);
    int64_t at = 0;
    for (int k = 0; k < n->nin; k++) {
        view part = *lo_need_view(L, G, n->in[k]);
        view dst = out;
        dst.offset += at * out.stride[n->attr.axis];
        dst.noffset += at * out.nstride[n->attr.axis];
        dst.shape = part.shape;
        lo_copy_into(L, G, &part, &dst, &part.shape, n->dtype);
        at += part.shape.dim[n->attr.axis];
    }
    G->val[b] = out;
}

cg_access lo_access_of(const view *v) { return (cg_access){v->buffer, {v->offset, v->noffset}, {{0}}}; }

static bool is_contiguous(const view *v)
{
    view c = lo_contiguous(v->buffer, &v->shape);
    return !memcmp(c.stride, v->stride, sizeof c.stride) && !memcmp(c.nstride, v->nstride, sizeof c.nstride);
}

view lo_contiguous_view(lowering *L, group *G, int32_t b)
{
    view v = *lo_need_view(L, G, b);
    if (is_contiguous(&v))
        return v;
    const ir_node *n = &G->body->node[b];
    view c = lo_contiguous(lo_scratch_buffer(L, &n->shape, n->dtype), &n->shape);
    lo_copy_into(L, G, &v, &c, &n->shape, n->dtype);
    return c;
}

/* rows, len, inner around an axis of a shape, affine in N */
static void around(const ir_shape *s, int axis, cg_dim *outer, cg_dim *len, cg_dim *inner)
{
    cg_dim d[3] = {{1, 0}, {1, 0}, {1, 0}};
    for (int i = 0; i < s->rank; i++) {
        cg_dim *x = &d[i < axis ? 0 : i == axis ? 1 : 2];
        if (s->dim[i] == AG_N)
            *x = (cg_dim){0, x->k};
        else
            *x = (cg_dim){x->k * s->dim[i], x->n * s->dim[i]};
    }
    *outer = d[0], *len = d[1], *inner = d[2];
}

static void lower_call(lowering *L, group *G, int32_t b)
{
    const ir_node *n = &G->body->node[b];
    view in[3];
    for (int k = 0; k < n->nin; k++)
        in[k] = lo_contiguous_view(L, G, n->in[k]);
    lo_close_loop(L, G);
    G->val[b] = lo_home_of(L, G, b);
    cg_step *s = lo_add_step(L, CG_CALL, G->node);
    cg_call *c = &s->call;
    c->op = n->op;
    for (int k = 0; k < n->nin; k++)
        c->arg[c->nargs++] = lo_access_of(&in[k]);
    c->arg[c->nargs++] = lo_access_of(&G->val[b]);
    const ir_shape *xs = &G->body->node[n->in[0]].shape;
    int axis = n->op == IR_softmax_ce || n->op == IR_softmax_ce_grad ? 1 : n->op == IR_dropout ? 0 : n->attr.axis;
    around(xs, n->op == IR_dropout ? xs->rank - 1 : axis, &c->rows, &c->len, &c->inner);
    if (n->op == IR_dropout) {
        c->p = n->attr.value;
        c->site = n->attr.site;
    }
}

/* The SGD update riding on a weight gradient's matmul: the group is
 *     sub(W, mul(lr, add(matmul, mul(wd, W))))   (or without the decay term)
 * and its value overwrites W: sgemm with C = W, alpha = -lr, beta = 1 - lr*wd. */
static bool sgd_epilogue(const ir_graph *body, int32_t mm, int32_t *w, int32_t *lr, int32_t *wd)
{
    const ir_node *o = &body->node[body->out[0].id];
    if (body->nout != 1 || o->op != IR_sub)
        return false;
    const ir_node *m = &body->node[o->in[1]];
    if (m->op != IR_mul)
        return false;
    *w = o->in[0];
    *lr = m->in[0];
    const ir_node *a = &body->node[m->in[1]];
    *wd = -1;
    if (m->in[1] == mm)
        return body->node[*lr].shape.rank == 0;
    if (a->op != IR_add || a->in[0] != mm)
        return false;
    const ir_node *d = &body->node[a->in[1]];
    if (d->op != IR_mul || d->in[1] != *w)
        return false;
    *wd = d->in[0];
    return body->node[*lr].shape.rank == 0 && body->node[*wd].shape.rank == 0;
}

/* A matmul whose one epilogue is the product with a distributed build's rank_share: the group
 * is mul(matmul, s), sgemm's alpha = s. (Only that input: BLAS may skip A B where alpha is 0,
 * which keeps an idle rank's gradient 0 however its row computes, but would turn another
 * model's NaN * 0 into 0.) */
static bool scaled_epilogue(const lowering *L, const group *G, int32_t mm, int32_t *scale)
{
    const ir_graph *body = G->body;
    const ir_node *o = &body->node[body->out[0].id];
    if (body->nout != 1 || o->op != IR_mul || !ir_shape_eq(&o->shape, &body->node[mm].shape))
        return false;
    for (int32_t i = 0; i < body->n; i++) /* the matmul and the product, nothing else computed */
        if (i != mm && i != body->out[0].id && body->node[i].op != IR_input && body->node[i].op != IR_const)
            return false;
    *scale = o->in[0] == mm ? o->in[1] : o->in[0];
    const ir_node *s = &body->node[*scale], *top = &L->g->node[G->node];
    if ((o->in[0] == mm) == (o->in[1] == mm) || s->op != IR_input || s->shape.rank != 0 || top->op != IR_kernel)
        return false;
    int k = 0; /* the body's inputs are the kernel's operands, in order */
    for (int32_t i = 0; i < *scale; i++)
        k += body->node[i].op == IR_input;
    const ir_node *outer = k < top->nin ? &L->g->node[top->in[k]] : NULL;
    return outer && outer->op == IR_input && outer->attr.role == AG_ROLE_SHARE;
}

static void lower_matmul(lowering *L, group *G, int32_t b, int32_t top)
{
    const ir_node *n = &G->body->node[b];
    view a = lo_contiguous_view(L, G, n->in[0]), bv = lo_contiguous_view(L, G, n->in[1]);
    lo_close_loop(L, G);
    const ir_shape *sa = &a.shape, *sb = &bv.shape;
    cg_dim dm = {1, 0}, dn = {1, 0}, dk;
    int64_t da0 = sa->dim[n->attr.ta ? 1 : 0], dk0 = sa->dim[sa->rank == 2 ? (n->attr.ta ? 0 : 1) : 0];
    int64_t dn0 = sb->rank == 2 ? sb->dim[n->attr.tb ? 0 : 1] : 1;
    if (sa->rank == 2)
        dm = da0 == AG_N ? (cg_dim){0, 1} : (cg_dim){da0, 0};
    dk = dk0 == AG_N ? (cg_dim){0, 1} : (cg_dim){dk0, 0};
    if (sb->rank == 2)
        dn = dn0 == AG_N ? (cg_dim){0, 1} : (cg_dim){dn0, 0};
    cg_step *s = lo_add_step(L, CG_GEMM, G->node);
    cg_gemm *gm = &s->gemm;
    gm->ta = n->attr.ta;
    gm->tb = n->attr.tb;
    gm->m = dm, gm->n = dn, gm->k = dk;
    gm->a = lo_access_of(&a);
    gm->b = lo_access_of(&bv);
    int32_t w, lr, wd;
    bool inplace = L->plan->inplace[top] >= 0 && G->body->nout == 1 && sgd_epilogue(G->body, b, &w, &lr, &wd);
    if (inplace) { /* C = W: its value is the update; alpha = -lr, beta = 1 - lr*wd */
        view wv = *lo_need_view(L, G, w), lrv = *lo_need_view(L, G, lr);
        gm->c = lo_access_of(&wv);
        gm->load[gm->nloads++] = lo_access_of(&lrv);
        int32_t l = gm->nexprs++;
        gm->expr[l] = (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 0};
        gm->alpha = gm->nexprs++;
        gm->expr[gm->alpha] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_neg, .a = l, .b = -1, .c = -1};
        int32_t one = gm->nexprs++;
        gm->expr[one] = (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 1};
        gm->beta = one;
        if (wd >= 0) {
            view wdv = *lo_need_view(L, G, wd);
            gm->load[gm->nloads++] = lo_access_of(&wdv);
            int32_t d = gm->nexprs++;
            gm->expr[d] = (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 1};
            int32_t p = gm->nexprs++;
            gm->expr[p] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_mul, .a = l, .b = d, .c = -1};
            gm->beta = gm->nexprs++;
            gm->expr[gm->beta] = (cg_expr){.kind = CG_E_OP, .dtype = AG_F32, .op = IR_sub, .a = one, .b = p, .c = -1};
        }
        /* every other node of the group is folded into alpha and beta */
        for (int32_t i = 0; i < G->body->n; i++)
            G->users_left[i] = 0;
        G->val[G->body->out[0].id] = wv;
        G->is_output[G->body->out[0].id] = false; /* in place already */
        return;
    }
    int32_t scale;
    if (scaled_epilogue(L, G, b, &scale)) { /* C = s * A B: alpha = s, beta = 0 */
        int32_t o = G->body->out[0].id;
        view sv = *lo_need_view(L, G, scale);
        G->val[o] = lo_home_of(L, G, o);
        gm->c = lo_access_of(&G->val[o]);
        gm->load[gm->nloads++] = lo_access_of(&sv);
        gm->alpha = gm->nexprs++;
        gm->expr[gm->alpha] = (cg_expr){.kind = CG_E_LOAD, .dtype = AG_F32, .load = 0};
        gm->beta = gm->nexprs++;
        gm->expr[gm->beta] = (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 0};
        for (int32_t i = 0; i < G->body->n; i++) /* the product is folded into alpha */
            G->users_left[i] = 0;
        G->is_output[o] = false; /* in its home already */
        return;
    }
    G->val[b] = lo_home_of(L, G, b);
    gm->c = lo_access_of(&G->val[b]);
    int32_t one = gm->nexprs++, zero = gm->nexprs++;
    gm->expr[one] = (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 1};
    gm->expr[zero] = (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 0};
    gm->alpha = one, gm->beta = zero;
}

static void done_with(group *G, int32_t b)
{
    const ir_node *n = &G->body->node[b];
    for (int k = 0; k < n->nin; k++)
        G->users_left[n->in[k]]--;
}

/* Lowers one fused group: body over the outer values `operands`; the body's output k ends
 * in outer buffer homes[k]. */
static void lower_group(lowering *L, int32_t top, const ir_graph *body, const int32_t *operands, const int32_t *homes)
{
    group G = {body,
               ir_xcalloc((size_t)body->n, sizeof(view)),
               ir_xmalloc(sizeof(int32_t) * (size_t)body->n),
               ir_xcalloc((size_t)body->n, sizeof(bool)),
               ir_xcalloc((size_t)body->n, sizeof(int32_t)),
               ir_xmalloc(sizeof(int32_t) * (size_t)body->n),
               ir_xmalloc(sizeof(int32_t) * (size_t)body->n),
               NULL,
               {0, {0}},
               top};
    for (int32_t i = 0, k = 0; i < body->n; i++) {
        G.expr[i] = -1;
        G.home[i] = -1;
        G.bias_sum[i] = -1;
        G.val[i].buffer = -1;
        for (int j = 0; j < body->node[i].nin; j++)
            G.users_left[body->node[i].in[j]]++;
        if (body->node[i].op == IR_input)
            G.val[i] = lo_contiguous(L->outer[operands[k++]], &body->node[i].shape);
    }
    for (int k = 0; k < body->nout; k++) {
        G.is_output[body->out[k].id] = true;
        G.home[body->out[k].id] = homes[k];
    }
    L->scratch = (ir_affine){0, 0};
    for (int32_t b = 0; b < body->n && !L->failed; b++) {
        const ir_node *n = &body->node[b];
        switch (ir_ops[n->op].kind) {
        case IR_K_SOURCE: break;
        case IR_K_ELEMENTWISE:
        case IR_K_INDEX: lower_elementwise(L, &G, b); break;
        case IR_K_REDUCE: lower_reduce(L, &G, b); break;
        case IR_K_MATMUL: lower_matmul(L, &G, b, top); break;
        case IR_K_LAYOUT:
            if (n->op == IR_concat)
                lower_concat(L, &G, b);
            else if (!lower_view(L, &G, b)) {
                view from = *lo_need_view(L, &G, n->in[0]);
                if (n->op == IR_reshape) {
                    view c = lo_contiguous_view(L, &G, n->in[0]);
                    G.val[b] = lo_contiguous(c.buffer, &n->shape);
                    G.val[b].offset = c.offset, G.val[b].noffset = c.noffset;
                } else {
                    G.val[b] = lo_home_of(L, &G, b);
                    lo_copy_into(L, &G, &from, &G.val[b], &n->shape, n->dtype);
                }
            }
            break;
        case IR_K_RANDOM:
            if (!L->training) { /* evaluation: dropout is the identity, a view of its operand */
                G.val[b] = *lo_need_view(L, &G, n->in[0]);
                break;
            }
            lower_call(L, &G, b);
            break;
        case IR_K_ROW:
        case IR_K_SCAN: lower_call(L, &G, b); break;
        case IR_K_WINDOW: lo_window(L, &G, b); break;
        default:
            L->failed = !rt_fail(L->err, L->len, "lower: %s cannot be lowered inside a kernel", ir_ops[n->op].name);
        }
        done_with(&G, b);
    }
    lo_close_loop(L, &G);
    /* outputs that are views of other buffers are copied home */
    for (int k = 0; k < body->nout && !L->failed; k++) {
        int32_t b = body->out[k].id;
        if (!G.is_output[b] || G.val[b].buffer == homes[k])
            continue;
        view to = lo_contiguous(homes[k], &body->node[b].shape);
        lo_copy_into(L, &G, &G.val[b], &to, &body->node[b].shape, body->node[b].dtype);
    }
    free(G.val);
    free(G.expr);
    free(G.is_output);
    free(G.users_left);
    free(G.home);
    free(G.bias_sum);
}

/* Outputs that are constants or inputs get a slot of their own in the arena, filled first:
 * every output then lies in the arena or the parameters, the caller's memory only read. */
static void output_slots(lowering *L)
{
    const ir_graph *g = L->g;
    cg_program *p = L->p;
    /* a constant returned as an output gets a slot of its own, filled first */
    for (int k = 0; k < g->nout && !L->failed; k++) {
        const ir_node *c = &g->node[g->out[k].id];
        if (c->op != IR_const || L->outer[g->out[k].id] >= 0)
            continue;
        int32_t b = add_buffer(L, (cg_buffer){CG_ARENA, 0, {L->fixed.k, L->fixed.n}, c->dtype});
        add_bytes(L, &L->fixed.k, ALIGN);
        L->outer[g->out[k].id] = b;
        cg_step *s = lo_add_step(L, CG_LOOP, g->out[k].id);
        s->loop.expr[s->loop.nexprs++] = (cg_expr){.kind = CG_E_CONST, .dtype = c->dtype, .value = c->attr.value};
        s->loop.store[s->loop.nstores++] = (cg_store){0, {b, {0, 0}, {{0}}}};
    }
    /* so does an input returned as an output, copied first: every output lies in the arena or
     * the parameters, the caller's memory only being read */
    for (int k = 0; k < g->nout && !L->failed; k++) {
        int32_t id = g->out[k].id;
        const ir_node *in = &g->node[id];
        if (in->op != IR_input || p->buffers[L->outer[id]].region != CG_INPUT)
            continue;
        int32_t b = add_buffer(L, (cg_buffer){CG_ARENA, 0, {L->fixed.k, L->fixed.n}, in->dtype});
        add_affine(L, &L->fixed, aligned_affine(L, &in->shape, in->dtype));
        view from = lo_contiguous(L->outer[id], &in->shape), to = lo_contiguous(b, &in->shape);
        cg_step *s = lo_add_step(L, CG_LOOP, id);
        cg_loop *l = &s->loop;
        l->rank = in->shape.rank;
        l->load[l->nloads++] = (cg_access){from.buffer, {0, 0}, {{0}}};
        l->store[l->nstores++] = (cg_store){0, {to.buffer, {0, 0}, {{0}}}};
        for (int d = 0; d < in->shape.rank; d++) {
            l->extent[d] = in->shape.dim[d] == AG_N ? (cg_dim){0, 1} : (cg_dim){in->shape.dim[d], 0};
            l->load[0].stride[d] = l->store[0].at.stride[d] = (cg_dim){from.stride[d], from.nstride[d]};
        }
        l->expr[l->nexprs++] = (cg_expr){.kind = CG_E_LOAD, .dtype = in->dtype, .load = 0};
        L->outer[id] = b; /* the output's buffer; the graph's readers of the input see the copy */
    }
}

/* Axes k and k + 1 (k >= 1: axis 0 stays, the one threads split) merge into one where every
 * access walks them as one, stride[k] = stride[k+1] * extent[k+1], and both are reduced or
 * neither: the same elements in the same order, with a longer inner loop. A loop over
 * [N,6,28,28] had an inner trip count of 28, which LLVM vectorized 4 wide (7 x 4); over
 * [N,6,784] it vectorizes 16 wide. A loop holding a loop index as a value keeps its axes. */
static void coalesce_axes(cg_loop *l)
{
    for (int e = 0; e < l->nexprs; e++)
        if (l->expr[e].kind == CG_E_INDEX)
            return;
    for (int k = l->rank - 2; k >= 1; k--) {
        const cg_dim in = l->extent[k + 1];
        bool same = in.n == 0 && ((l->reduce >> k) & 1) == ((l->reduce >> (k + 1)) & 1);
        for (int a = 0; a < l->nloads + l->nstores && same; a++) {
            const cg_access *x = a < l->nloads ? &l->load[a] : &l->store[a - l->nloads].at;
            same = x->stride[k].k == x->stride[k + 1].k * in.k && x->stride[k].n == x->stride[k + 1].n * in.k;
        }
        if (!same)
            continue;
        /* axis k takes k + 1's stride and both extents; the axes after it move down one */
        l->extent[k] = (cg_dim){l->extent[k].k * in.k, l->extent[k].n * in.k};
        for (int a = 0; a < l->nloads + l->nstores; a++) {
            cg_access *x = a < l->nloads ? &l->load[a] : &l->store[a - l->nloads].at;
            for (int d = k; d < l->rank - 1; d++)
                x->stride[d] = x->stride[d + 1];
            x->stride[l->rank - 1] = (cg_dim){0, 0};
        }
        for (int d = k + 1; d < l->rank - 1; d++)
            l->extent[d] = l->extent[d + 1];
        l->extent[l->rank - 1] = (cg_dim){0, 0};
        uint8_t low = l->reduce & (uint8_t)((1u << (k + 1)) - 1), high = (uint8_t)(l->reduce >> (k + 2));
        l->reduce = (uint8_t)(low | (high << (k + 1)));
        l->rank--;
    }
}

cg_program *cg_lower(const ir_graph *g, bool training, char *err, size_t len)
{
    return cg_lower_like(g, training, NULL, err, len);
}

cg_program *cg_lower_like(const ir_graph *g, bool training, const cg_program *layout, char *err, size_t len)
{
    if (!g->plan) {
        rt_fail(err, len, "lower: %s has no memory plan (run the pipeline through plan_memory)", g->name);
        return NULL;
    }
    cg_program *p = ir_xcalloc(1, sizeof *p);
    p->param_bytes = layout ? layout->param_bytes : 0; /* accumulators go after the layout's */
    lowering L = {
        g,        g->plan, p,   0,     0,   {0, 0}, {0, 0}, {0, 0}, 0, 0, ir_xmalloc(sizeof(int32_t) * (size_t)g->n),
        training, err,     len, false, NULL};
    p->name = g->name;
    p->params = ir_xcalloc((size_t)g->n + 1, sizeof *p->params);
    p->input_node = ir_xcalloc((size_t)g->n + 1, sizeof *p->input_node);
    int32_t inputs = 0;
    for (int32_t i = 0; i < g->n; i++) /* all of them: a failure below leaves the rest unset */
        L.outer[i] = -1;
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if (n->op == IR_param) {
            int64_t bytes = ir_bytes(n->dtype, &n->shape, 1), at = p->param_bytes;
            int k = 0;
            while (layout && k < layout->nparams && strcmp(layout->params[k].name, n->attr.name) != 0)
                k++;
            bool appended = !layout || (k == layout->nparams && n->attr.role == AG_ROLE_ACCUM);
            if (layout && !appended) { /* where the other program put it */
                if (k == layout->nparams || layout->params[k].bytes != bytes) {
                    L.failed = !rt_fail(err, len, "lower: parameter %s is not in %s's parameter layout", n->attr.name,
                                        layout->name);
                    break;
                }
                at = layout->params[k].offset;
            }
            p->params[p->nparams++] = (cg_param){n->attr.name, i, at, bytes};
            L.outer[i] = add_buffer(&L, (cg_buffer){CG_PARAMS, 0, {at, 0}, n->dtype});
            if (appended)
                add_bytes(&L, &p->param_bytes, aligned_bytes_at(&L, &n->shape, n->dtype, 1));
        } else if (n->op == IR_input) {
            p->input_node[inputs] = i;
            L.outer[i] = add_buffer(&L, (cg_buffer){CG_INPUT, inputs++, {0, 0}, n->dtype});
        }
    }
    p->ninputs = inputs;
    L.plan_first = p->nbuffers;
    for (int32_t i = 0; i < g->n && !L.failed; i++) {
        const ir_node *n = &g->node[i];
        if (ir_ops[n->op].kind == IR_K_SOURCE)
            continue;
        if (g->plan->inplace[i] >= 0)
            L.outer[i] = L.outer[g->plan->inplace[i]];
        else if (n->op == IR_allreduce) /* summed in its operand's buffer */
            L.outer[i] = L.outer[n->in[0]];
        else if (n->op == IR_const || g->plan->offset[i] < 0) {
            L.failed = !rt_fail(err, len, "lower: node %d (%s) has no place in the memory plan", i, ir_ops[n->op].name);
            break;
        } else
            L.outer[i] = add_buffer(&L, (cg_buffer){CG_ARENA, 0, {g->plan->offset[i], g->plan->offset_n[i]}, n->dtype});
    }
    L.plan_end = p->nbuffers;
    output_slots(&L);
    if (!L.failed)
        L.failed = !lo_collectives_begin(&L);
    ir_bug_enter("lower", g);
    for (int32_t i = 0; i < g->n && !L.failed; i++) {
        const ir_node *n = &g->node[i];
        if (ir_ops[n->op].kind == IR_K_SOURCE || n->op == IR_allreduce)
            continue;
        ir_bug_node(i);
        lo_collectives_before(&L, i);
        if (n->op != IR_kernel) { /* a plain node: a body of one, over its operands */
            ir_graph *b = ir_graph_new("node");
            int32_t *map = ir_xmalloc(sizeof *map * (size_t)g->n), ops[8];
            int nops = 0;
            for (int k = 0; k < n->nin; k++) {
                const ir_node *o = &g->node[n->in[k]];
                ir_node in = ir_node_make(o->op == IR_const ? IR_const : IR_input, 0, NULL);
                in.dtype = o->dtype;
                in.shape = o->shape;
                in.attr.value = o->attr.value;
                char name[16];
                snprintf(name, sizeof name, "p%d", k);
                in.attr.name = o->op == IR_const ? NULL : ir_strdup(b, name);
                map[n->in[k]] = ir_intern(b, &in);
                if (o->op != IR_const)
                    ops[nops++] = n->in[k];
            }
            int32_t id = ir_copy_node(b, g, i, map);
            ir_add_output(b, "o0", id);
            lower_group(&L, i, b, ops, &L.outer[i]);
            lo_collectives_after(&L, i);
            free(map);
            ir_graph_free(b);
            continue;
        }
        /* siblings: the body runs once, at its first node, for all its outputs */
        bool first = true;
        for (int32_t j = 0; j < i && first; j++)
            first = !(g->node[j].op == IR_kernel && g->node[j].attr.kernel == n->attr.kernel);
        if (!first)
            continue;
        const ir_graph *body = g->kernels[n->attr.kernel];
        int32_t *homes = ir_xmalloc(sizeof *homes * (size_t)body->nout);
        for (int k = 0; k < body->nout; k++) {
            homes[k] = -1;
            for (int32_t j = i; j < g->n; j++)
                if (g->node[j].op == IR_kernel && g->node[j].attr.kernel == n->attr.kernel &&
                    g->node[j].attr.output == k)
                    homes[k] = L.outer[j];
            if (homes[k] < 0) /* an output nobody reads: scratch */
                homes[k] = lo_scratch_buffer(&L, &body->node[body->out[k].id].shape, body->node[body->out[k].id].dtype);
        }
        lower_group(&L, i, body, n->in, homes);
        lo_collectives_after(&L, i);
        free(homes);
    }
    lo_collectives_end(&L);
    /* the arena: constant outputs and the scratch first, whose sizes are known only now, then
     * the plan's values above them; its size at N is the largest of the plan's pieces at N */
    ir_affine base = ir_affine_add(L.fixed, L.scratch_max);
    base.k = (base.k + ALIGN - 1) / ALIGN * ALIGN;
    for (int32_t b = L.plan_first; b < L.plan_end; b++)
        p->buffers[b].offset.k += base.k, p->buffers[b].offset.n += base.n;
    ir_affine piece[IR_ARENA_PIECES];
    p->narena = ir_plan_arena_pieces(g, g->plan, piece);
    for (int k = 0; k < p->narena; k++) {
        ir_affine a = ir_affine_add(base, piece[k]);
        p->arena[k] = (rt_arena_piece){a.k, a.n};
        if ((a.k > IR_MAX_BYTES || a.n > IR_MAX_BYTES) && !L.failed)
            L.failed = !rt_fail(err, len, "lower: %s needs more than 2^%d bytes", g->name, IR_MAX_BYTES_LOG2);
    }
    for (int k = 0; k < p->nsteps; k++)
        if (p->steps[k].kind == CG_LOOP)
            coalesce_axes(&p->steps[k].loop);
    p->batch = g->plan->batch;
    p->noutputs = g->nout;
    p->output_buffer = ir_xmalloc(sizeof *p->output_buffer * (size_t)(g->nout ? g->nout : 1));
    for (int k = 0; k < g->nout; k++)
        p->output_buffer[k] = L.outer[g->out[k].id];
    free(L.outer);
    ir_bug_leave();
    if (L.failed) {
        cg_program_free(p);
        return NULL;
    }
    return p;
}

void cg_program_free(cg_program *p)
{
    if (!p)
        return;
    free(p->buffers);
    free(p->steps);
    free(p->output_buffer);
    free(p->params);
    free(p->input_node);
    free(p);
}
