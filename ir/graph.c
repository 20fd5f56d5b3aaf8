/* Graph storage: the op table as data, dtypes, shapes, the arena, and appending nodes with
 * hash-consing. */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "ir.h"

const ir_opinfo ir_ops[IR_OP_COUNT] = {
#define INFO_EW(name, arity, scalar, types, grad, doc) [IR_##name] = {#name, IR_K_ELEMENTWISE, arity, 0, types, doc},
#define INFO_OP(name, kind, arity, attrs, rule, grad, doc) \
    [IR_##name] = {#name, IR_K_##kind, arity, attrs, T_SAME, doc},
    IR_OPS(INFO_EW, INFO_OP)
#undef INFO_EW
#undef INFO_OP
};

bool ir_op_by_name(const char *name, size_t len, ir_op *op)
{
    for (int i = 0; i < IR_OP_COUNT; i++)
        if (strlen(ir_ops[i].name) == len && memcmp(ir_ops[i].name, name, len) == 0) {
            *op = (ir_op)i;
            return true;
        }
    return false;
}

static const char *const dtype_names[AG_DTYPE_COUNT] = {
    [AG_F32] = "f32", [AG_I32] = "i32", [AG_U8] = "u8", [AG_BOOL] = "bool", [AG_F64] = "f64",
};
static const size_t dtype_sizes[AG_DTYPE_COUNT] = {
    [AG_F32] = 4, [AG_I32] = 4, [AG_U8] = 1, [AG_BOOL] = 1, [AG_F64] = 8,
};

const char *ir_dtype_name(ag_dtype t) { return (unsigned)t < AG_DTYPE_COUNT ? dtype_names[t] : "?"; }

bool ir_dtype_by_name(const char *name, size_t len, ag_dtype *t)
{
    for (int i = 0; i < AG_DTYPE_COUNT; i++)
        if (strlen(dtype_names[i]) == len && memcmp(dtype_names[i], name, len) == 0) {
            *t = (ag_dtype)i;
            return true;
        }
    return false;
}

size_t ir_dtype_size(ag_dtype t)
{
    assert((unsigned)t < AG_DTYPE_COUNT);
    return dtype_sizes[t];
}

bool ir_is_float(ag_dtype t) { return t == AG_F32 || t == AG_F64; }

char *ir_shape_str(const ir_shape *s, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < s->rank && k < len; i++) {
        if (s->dim[i] == AG_N)
            k += (size_t)snprintf(buf + k, len - k, "%sN", i ? "," : "");
        else
            k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? "," : "", (long long)s->dim[i]);
    }
    if (k < len)
        snprintf(buf + k, len - k, "]");
    return buf;
}

char *ir_type_str(ag_dtype t, const ir_shape *s, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "%s", ir_dtype_name(t));
    if (k < len)
        ir_shape_str(s, buf + k, len - k);
    return buf;
}

bool ir_shape_eq(const ir_shape *a, const ir_shape *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i])
            return false;
    return true;
}

int64_t ir_numel(const ir_shape *s, int64_t batch)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        if (!ir_mul_ok(n, s->dim[i] == AG_N ? batch : s->dim[i], &n))
            return INT64_MAX;
    return n;
}

int64_t ir_bytes(ag_dtype t, const ir_shape *s, int64_t batch)
{
    int64_t n = (int64_t)ir_dtype_size(t);
    for (int i = 0; i < s->rank; i++)
        if (!ir_mul_ok(n, s->dim[i] == AG_N ? batch : s->dim[i], &n) || n > IR_MAX_BYTES)
            return -1;
    return n;
}

ir_affine ir_bytes_affine(ag_dtype t, const ir_shape *s)
{
    int64_t row = ir_bytes(t, s, 1);
    return ir_has_batch(s) ? (ir_affine){0, row} : (ir_affine){row, 0};
}

int64_t ir_plan_arena(const ir_graph *g, const ir_plan *p, int64_t batch)
{
    int64_t arena = 0;
    for (int32_t i = 0; i < g->n; i++)
        if (p->offset[i] >= 0) {
            int64_t end = p->offset[i] + p->offset_n[i] * batch + ir_bytes(g->node[i].dtype, &g->node[i].shape, batch);
            arena = end > arena ? end : arena;
        }
    return (arena + 63) / 64 * 64;
}

int ir_plan_arena_pieces(const ir_graph *g, const ir_plan *p, ir_affine *piece)
{
    int n = 0;
    ir_affine top = {0, 0};
    for (int32_t i = 0; i < g->n; i++) {
        if (p->offset[i] < 0)
            continue;
        ir_affine end = ir_affine_add((ir_affine){p->offset[i], p->offset_n[i]},
                                      ir_bytes_affine(g->node[i].dtype, &g->node[i].shape));
        top = (ir_affine){end.k > top.k ? end.k : top.k, end.n > top.n ? end.n : top.n};
        bool below = false; /* at or under a piece at every N: it never sets the arena */
        for (int k = 0; k < n && !below; k++)
            below = ir_affine_le(end, piece[k]);
        if (below)
            continue;
        int kept = 0;
        for (int k = 0; k < n; k++)
            if (!ir_affine_le(piece[k], end))
                piece[kept++] = piece[k];
        n = kept;
        if (n == IR_ARENA_PIECES) { /* too many: one piece above them all */
            piece[0] = top, n = 1;
            continue;
        }
        piece[n++] = end;
    }
    if (n == 0)
        piece[n++] = (ir_affine){0, 0};
    return n;
}

bool ir_has_batch(const ir_shape *s)
{
    for (int i = 0; i < s->rank; i++)
        if (s->dim[i] == AG_N)
            return true;
    return false;
}

/* ---- arena: a list of chunks, freed with the graph ---- */

struct ir_chunk {
    struct ir_chunk *next;
    size_t used, size;
    max_align_t data[];
};

void *ir_alloc(ir_graph *g, size_t size)
{
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct ir_chunk *c = g->arena;
    if (!c || c->size - c->used < size) {
        size_t cap = size > 65536 ? size : 65536;
        c = ir_xcalloc(1, sizeof *c + cap);
        c->size = cap;
        c->next = g->arena;
        g->arena = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    return p;
}

const char *ir_strndup(ir_graph *g, const char *s, size_t len)
{
    char *p = ir_alloc(g, len + 1);
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

const char *ir_strdup(ir_graph *g, const char *s) { return ir_strndup(g, s, strlen(s)); }

/* ---- graphs ---- */

ir_graph *ir_graph_new(const char *name)
{
    ir_graph *g = ir_xcalloc(1, sizeof *g);
    g->name = ir_strdup(g, name ? name : "graph");
    g->next_site = 1;
    return g;
}

static void names_clear(ir_names *t);

void ir_graph_free(ir_graph *g)
{
    if (!g)
        return;
    for (struct ir_chunk *c = g->arena, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    for (int i = 0; i < g->nkernels; i++)
        ir_graph_free(g->kernels[i]);
    free(g->kernels);
    free(g->kernel_src);
    for (int i = 0; i < g->nerrors; i++) {
        free(g->errors[i]);
        free(g->notes[i]);
    }
    free(g->errors);
    free(g->notes);
    free(g->node);
    free(g->out);
    free(g->hash);
    names_clear(&g->out_names);
    names_clear(&g->source_names);
    free(g);
}

ir_node ir_node_make(ir_op op, int32_t nin, const int32_t *in)
{
    ir_node n;
    memset(&n, 0, sizeof n);
    n.op = op;
    n.nin = nin;
    n.in = in;
    return n;
}

/* Sources stay distinct (each is its own input or parameter) and so do random ops (each
 * dropout its own stream) and collectives (each allreduce a call on every rank); everything else is a pure function of its operands and attrs. */
static bool mergeable(const ir_node *n)
{
    return n->op == IR_const || (ir_ops[n->op].kind != IR_K_SOURCE && ir_ops[n->op].kind != IR_K_RANDOM &&
                                 ir_ops[n->op].kind != IR_K_COLLECTIVE);
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static uint64_t node_hash(const ir_node *n)
{
    uint64_t h = mix((uint64_t)n->op, (uint64_t)n->dtype);
    for (int i = 0; i < n->shape.rank; i++)
        h = mix(h, (uint64_t)n->shape.dim[i]);
    for (int i = 0; i < n->nin; i++)
        h = mix(h, (uint64_t)n->in[i]);
    uint64_t bits;
    memcpy(&bits, &n->attr.value, sizeof bits);
    h = mix(h, bits);
    h = mix(h, ((uint64_t)n->attr.axes << 8) | (uint64_t)(uint8_t)n->attr.axis);
    return h;
}

static bool same_node(const ir_node *a, const ir_node *b)
{
    if (a->op != b->op || a->dtype != b->dtype || !ir_shape_eq(&a->shape, &b->shape) || a->nin != b->nin)
        return false;
    for (int i = 0; i < a->nin; i++)
        if (a->in[i] != b->in[i])
            return false;
    const ir_attrs *x = &a->attr, *y = &b->attr;
    /* values compare by bits, so 0.0 and -0.0 (and NaNs) stay apart */
    return memcmp(&x->value, &y->value, sizeof x->value) == 0 && x->axes == y->axes && x->keepdims == y->keepdims &&
           x->axis == y->axis && memcmp(x->perm, y->perm, sizeof x->perm) == 0 && x->ta == y->ta && x->tb == y->tb &&
           x->site == y->site && x->classes == y->classes && x->start == y->start && x->grad == y->grad &&
           x->kernel == y->kernel && x->output == y->output && memcmp(&x->win, &y->win, sizeof x->win) == 0;
}

static void hash_insert(ir_graph *g, int32_t id)
{
    uint64_t mask = (uint64_t)g->hashcap - 1;
    for (uint64_t k = node_hash(&g->node[id]) & mask;; k = (k + 1) & mask)
        if (g->hash[k] < 0) {
            g->hash[k] = id;
            return;
        }
}

static void hash_grow(ir_graph *g)
{
    free(g->hash);
    g->hashcap = g->hashcap ? g->hashcap * 2 : 256;
    g->hash = ir_xrealloc(NULL, sizeof *g->hash * (size_t)g->hashcap);
    for (int32_t i = 0; i < g->hashcap; i++)
        g->hash[i] = -1;
    for (int32_t i = 0; i < g->n; i++)
        if (mergeable(&g->node[i]))
            hash_insert(g, i);
}

int32_t ir_intern(ir_graph *g, const ir_node *n)
{
    bool merge = mergeable(n);
    if (merge && g->hashcap) {
        uint64_t mask = (uint64_t)g->hashcap - 1;
        for (uint64_t k = node_hash(n) & mask; g->hash[k] >= 0; k = (k + 1) & mask)
            if (same_node(&g->node[g->hash[k]], n))
                return g->hash[k];
    }
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->node = ir_xrealloc(g->node, sizeof *g->node * (size_t)g->cap);
    }
    int32_t id = g->n++;
    ir_node *m = &g->node[id];
    *m = *n;
    int32_t *in = ir_alloc(g, sizeof *in * (size_t)(n->nin ? n->nin : 1));
    if (n->nin)
        memcpy(in, n->in, sizeof *in * (size_t)n->nin);
    m->in = in;
    if (merge) {
        if (2 * (g->n + 1) > g->hashcap)
            hash_grow(g); /* rebuilds, this node included */
        else
            hash_insert(g, id);
    }
    return id;
}

int32_t ir_add(ir_graph *g, ir_node *n, char *err, size_t len)
{
    if (!ir_infer(g, n, err, len))
        return -1;
    return ir_intern(g, n);
}

void ir_add_output(ir_graph *g, const char *name, int32_t id)
{
    if (g->nout == g->outcap) {
        g->outcap = g->outcap ? g->outcap * 2 : 8;
        g->out = ir_xrealloc(g->out, sizeof *g->out * (size_t)g->outcap);
    }
    g->out[g->nout++] = (ir_output){ir_strdup(g, name), id};
}

/* ---- names: lookups by hash, so that building is linear in the names ---- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void names_clear(ir_names *t)
{
    free(t->slot);
    *t = (ir_names){0};
}

static void names_insert(ir_names *t, const char *name, int32_t id)
{
    if (2 * ((int64_t)t->used + 1) > t->cap) {
        ir_names old = *t;
        t->cap = old.cap ? old.cap * 2 : 64;
        t->slot = ir_xrealloc(NULL, sizeof *t->slot * (size_t)t->cap);
        for (int32_t k = 0; k < t->cap; k++)
            t->slot[k] = (ir_name_slot){NULL, -1};
        t->used = 0;
        for (int32_t k = 0; k < old.cap; k++)
            if (old.slot[k].name)
                names_insert(t, old.slot[k].name, old.slot[k].id);
        free(old.slot);
    }
    uint64_t mask = (uint64_t)t->cap - 1;
    uint64_t k = name_hash(name) & mask;
    while (t->slot[k].name)
        k = (k + 1) & mask;
    t->slot[k] = (ir_name_slot){name, id};
    t->used++;
}

/* The name entry k of a table stands for now: out[k]'s, or node k's if a source's. */
static const char *output_name(const ir_graph *g, int32_t k) { return k < g->nout ? g->out[k].name : NULL; }

static const char *source_name(const ir_graph *g, int32_t k)
{
    if (k >= g->n)
        return NULL;
    const ir_node *n = &g->node[k];
    return n->op == IR_input || n->op == IR_param ? n->attr.name : NULL;
}

/* The lowest id entered under name (a source's: of op), -1 if none; the table first caught
 * up with the graph, and rebuilt where a slot's name is no longer its entry's. The graph is
 * const to callers; its tables are a cache. */
static int32_t names_find(const ir_graph *cg, ir_names *t, const char *(*name_of)(const ir_graph *, int32_t),
                          int32_t total, const char *name, ir_op op)
{
    ir_graph *g = (ir_graph *)cg;
    for (;;) {
        if (t->count > total)
            names_clear(t);
        for (; t->count < total; t->count++) {
            const char *s = name_of(g, t->count);
            if (s)
                names_insert(t, s, t->count);
        }
        if (!t->cap)
            return -1;
        uint64_t mask = (uint64_t)t->cap - 1;
        int32_t found = -1;
        bool stale = false;
        for (uint64_t k = name_hash(name) & mask; t->slot[k].name && !stale; k = (k + 1) & mask) {
            const ir_name_slot *e = &t->slot[k];
            if (name_of(g, e->id) != e->name)
                stale = true;
            else if (strcmp(e->name, name) == 0 && (found < 0 || e->id < found) &&
                     (name_of != source_name || g->node[e->id].op == op))
                found = e->id;
        }
        if (!stale)
            return found;
        names_clear(t);
    }
}

int32_t ir_find_source(const ir_graph *g, ir_op op, const char *name)
{
    return names_find(g, &((ir_graph *)g)->source_names, source_name, g->n, name, op);
}

int ir_find_output(const ir_graph *g, const char *name)
{
    return names_find(g, &((ir_graph *)g)->out_names, output_name, g->nout, name, IR_input);
}

static const char *dup_or_null(ir_graph *g, const char *s) { return s ? ir_strdup(g, s) : NULL; }

void ir_copy_train(ir_graph *dst, const ir_graph *g)
{
    const ir_train *t = g->train;
    if (!t) {
        dst->train = NULL;
        return;
    }
    ir_train *u = ir_alloc(dst, sizeof *u);
    *u = *t;
    u->loss = dup_or_null(dst, t->loss);
    u->predict = dup_or_null(dst, t->predict);
    u->optimizer = dup_or_null(dst, t->optimizer);
    u->data = dup_or_null(dst, t->data);
    for (int i = 0; i < t->nmetrics; i++)
        u->metrics[i] = ir_strdup(dst, t->metrics[i]);
    u->classes = ir_alloc(dst, sizeof *u->classes * (size_t)(t->nclasses + 1));
    for (int i = 0; i < t->nclasses; i++)
        u->classes[i] = ir_strdup(dst, t->classes[i]);
    u->groups = ir_alloc(dst, sizeof *u->groups * (size_t)(t->ngroups + 1));
    for (int i = 0; i < t->ngroups; i++) {
        ir_group *gr = &u->groups[i];
        *gr = t->groups[i];
        gr->name = ir_strdup(dst, t->groups[i].name);
        gr->params = ir_alloc(dst, sizeof *gr->params * (size_t)(gr->nparams + 1));
        for (int k = 0; k < gr->nparams; k++)
            gr->params[k] = ir_strdup(dst, t->groups[i].params[k]);
    }
    u->options = ir_alloc(dst, sizeof *u->options * (size_t)(t->noptions + 1));
    for (int i = 0; i < t->noptions; i++)
        u->options[i] = (ir_option){ir_strdup(dst, t->options[i].name), ir_strdup(dst, t->options[i].value),
                                    ir_strdup(dst, t->options[i].choices)};
    dst->train = u;
}

int32_t ir_add_kernel(ir_graph *g, ir_graph *body)
{
    if (g->nkernels == g->kernelcap) {
        g->kernelcap = g->kernelcap ? 2 * g->kernelcap : 8;
        g->kernels = ir_xrealloc(g->kernels, sizeof *g->kernels * (size_t)g->kernelcap);
        g->kernel_src = ir_xrealloc(g->kernel_src, sizeof *g->kernel_src * (size_t)g->kernelcap);
    }
    g->kernels[g->nkernels] = body;
    g->kernel_src[g->nkernels] = NULL;
    return g->nkernels++;
}

/* dst's copy of src's body k: made once, then shared by every node that picks from it */
static int32_t copy_kernel(ir_graph *dst, const ir_graph *src, int32_t k)
{
    for (int32_t i = 0; i < dst->nkernels; i++)
        if (dst->kernel_src[i] == src->kernels[k])
            return i;
    int32_t i = ir_add_kernel(dst, ir_clone_live(src->kernels[k]));
    dst->kernel_src[i] = src->kernels[k];
    return i;
}

int32_t ir_copy_node(ir_graph *dst, const ir_graph *src, int32_t id, const int32_t *map)
{
    ir_node n = src->node[id];
    if (n.op == IR_kernel)
        n.attr.kernel = copy_kernel(dst, src, n.attr.kernel);
    int32_t *in = ir_alloc(dst, sizeof *in * (size_t)(n.nin ? n.nin : 1));
    for (int i = 0; i < n.nin; i++) {
        in[i] = map[n.in[i]];
        assert(in[i] >= 0 && in[i] < dst->n);
    }
    n.in = in;
    n.attr.name = dup_or_null(dst, n.attr.name);
    if (n.loc.file) {
        if (n.loc.file != dst->file_src) { /* consecutive nodes mostly share a file */
            dst->file_src = n.loc.file;
            dst->file_copy = ir_strdup(dst, n.loc.file);
        }
        n.loc.file = dst->file_copy;
    }
    return ir_intern(dst, &n);
}

ir_graph *ir_prune(const ir_graph *g, const char *const *keep, int nkeep)
{
    bool *live = ir_xcalloc((size_t)g->n, sizeof *live);
    int32_t *map = ir_xmalloc(sizeof *map * (size_t)g->n);
    /* the outputs kept, by a table of the names (a graph may have 100k outputs) */
    ir_names wanted = {0};
    for (int k = 0; k < nkeep; k++)
        names_insert(&wanted, keep[k], k);
    bool *kept = ir_xcalloc((size_t)g->nout, sizeof *kept);
    for (int i = 0; i < g->nout; i++) {
        uint64_t mask = (uint64_t)wanted.cap - 1;
        for (uint64_t k = name_hash(g->out[i].name) & mask; wanted.cap && wanted.slot[k].name && !kept[i];
             k = (k + 1) & mask)
            kept[i] = strcmp(wanted.slot[k].name, g->out[i].name) == 0;
        if (kept[i])
            live[g->out[i].id] = true;
    }
    names_clear(&wanted);
    for (int32_t i = g->n - 1; i >= 0; i--)
        if (live[i])
            for (int k = 0; k < g->node[i].nin; k++)
                live[g->node[i].in[k]] = true;
    ir_graph *h = ir_graph_new(g->name);
    for (int32_t i = 0; i < g->n; i++) {
        /* sources stay even when unread: they are the graph's interface */
        bool source = g->node[i].op == IR_input || g->node[i].op == IR_param;
        map[i] = live[i] || source ? ir_copy_node(h, g, i, map) : -1;
    }
    for (int i = 0; i < g->nout; i++) /* once each, whatever keep repeats */
        if (kept[i])
            ir_add_output(h, g->out[i].name, map[g->out[i].id]);
    h->next_site = g->next_site;
    ir_copy_train(h, g);
    free(kept);
    free(live);
    free(map);
    return h;
}

ir_graph *ir_clone_live(const ir_graph *g)
{
    const char **names = ir_xmalloc(sizeof *names * (size_t)(g->nout + 1));
    for (int i = 0; i < g->nout; i++)
        names[i] = g->out[i].name;
    ir_graph *h = ir_prune(g, names, g->nout);
    free(names);
    return h;
}

/* whether nodes a and b are outputs of one kernel call (lowering runs its body once) */
static bool same_call(const ir_graph *g, int32_t a, int32_t b)
{
    return a == b || (g->node[a].op == IR_kernel && g->node[b].op == IR_kernel &&
                      g->node[a].attr.kernel == g->node[b].attr.kernel);
}

void ir_lifetimes(const ir_graph *g, int32_t *birth, int32_t *last)
{
    for (int32_t i = 0; i < g->n; i++) {
        birth[i] = last[i] = i;
        for (int32_t j = 0; j < i && g->node[i].op == IR_kernel && birth[i] == i; j++)
            if (same_call(g, i, j))
                birth[i] = j;
    }
    for (int32_t i = 0; i < g->n; i++)
        for (int k = 0; k < g->node[i].nin; k++)
            last[g->node[i].in[k]] = i;
    for (int i = 0; i < g->nout; i++)
        last[g->out[i].id] = g->n;
}

int32_t ir_read_after(const ir_graph *g, int32_t v, int32_t from, int32_t self)
{
    for (int32_t r = from < 0 ? 0 : from; r < g->n; r++)
        for (int k = 0; k < g->node[r].nin; k++)
            if (g->node[r].in[k] == v && !(self >= 0 && same_call(g, r, self)))
                return r;
    for (int i = 0; i < g->nout; i++)
        if (g->out[i].id == v)
            return g->n;
    return -1;
}

/* ---- sizes ---- */

int64_t ir_declared_batch(const ir_graph *g)
{
    const ir_train *t = g->train;
    return t && t->batch >= 1 && t->batch <= IR_MAX_COUNT ? t->batch : 1;
}

bool ir_check_value_size(const ir_graph *g, int32_t id, int64_t batch, char *err, size_t len)
{
    const ir_node *n = &g->node[id];
    if (ir_bytes(n->dtype, &n->shape, batch) >= 0)
        return true;
    char who[300], type[96], at[48] = "";
    if ((n->op == IR_input || n->op == IR_param) && n->attr.name)
        snprintf(who, sizeof who, "%s %s", ir_ops[n->op].name, n->attr.name);
    else
        snprintf(who, sizeof who, "%s", ir_ops[n->op].name);
    if (ir_has_batch(&n->shape))
        snprintf(at, sizeof at, " at batch %lld", (long long)batch);
    return rt_fail(err, len, "%s: %s%s is more than 2^%d bytes", who,
                   ir_type_str(n->dtype, &n->shape, type, sizeof type), at, IR_MAX_BYTES_LOG2);
}

bool ir_check_sizes(const ir_graph *g, int64_t batch, int32_t *bad, char *err, size_t len)
{
    int64_t total = 0;
    for (int32_t i = 0; i < g->n; i++) {
        if (bad)
            *bad = i;
        if (!ir_check_value_size(g, i, batch, err, len))
            return false;
        /* each at most 2^60 rounded up to 64: the sum stays below 2^61 until it is refused */
        const ir_node *n = &g->node[i];
        total += (ir_bytes(n->dtype, &n->shape, batch) + 63) / 64 * 64;
        if (total > IR_MAX_BYTES)
            return rt_fail(err, len,
                           "%s: with the values before it, the graph's values take more than 2^%d bytes at "
                           "batch %lld",
                           ir_ops[n->op].name, IR_MAX_BYTES_LOG2, (long long)batch);
    }
    if (bad)
        *bad = -1;
    return true;
}

const char *ir_options_text(const ir_train *t, char *buf, size_t len)
{
    buf[0] = 0;
    for (int k = 0, at = 0; t && k < t->noptions && at >= 0 && (size_t)at < len; k++)
        at += snprintf(buf + at, len - (size_t)at, "%s%s=%s", k ? "," : "", t->options[k].name, t->options[k].value);
    return buf;
}
