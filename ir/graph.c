/* Graph storage: the op table as data, dtypes, shapes, the arena, and appending nodes with
 * hash-consing. */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

const ir_opinfo ir_ops[IR_OP_COUNT] = {
#define INFO_EW(name, arity, scalar, types, grad, doc) \
    [IR_##name] = {#name, IR_K_ELEMENTWISE, arity, 0, types, doc},
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

const char *ir_dtype_name(ag_dtype t)
{
    return (unsigned)t < AG_DTYPE_COUNT ? dtype_names[t] : "?";
}

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
        n *= s->dim[i] == AG_N ? batch : s->dim[i];
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
        c = calloc(1, sizeof *c + cap);
        if (!c) {
            fprintf(stderr, "aotgrad: out of memory\n");
            exit(1);
        }
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

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size);
    if (!p) {
        fprintf(stderr, "aotgrad: out of memory\n");
        exit(1);
    }
    return p;
}

ir_graph *ir_graph_new(const char *name)
{
    ir_graph *g = calloc(1, sizeof *g);
    if (!g) {
        fprintf(stderr, "aotgrad: out of memory\n");
        exit(1);
    }
    g->name = ir_strdup(g, name ? name : "graph");
    g->next_site = 1;
    return g;
}

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
    for (int i = 0; i < g->nerrors; i++)
        free(g->errors[i]);
    free(g->errors);
    free(g->node);
    free(g->out);
    free(g->hash);
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
 * dropout its own stream); everything else is a pure function of its operands and attrs. */
static bool mergeable(const ir_node *n)
{
    return n->op == IR_const || (ir_ops[n->op].kind != IR_K_SOURCE && ir_ops[n->op].kind != IR_K_RANDOM);
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
    return memcmp(&x->value, &y->value, sizeof x->value) == 0 && x->axes == y->axes &&
           x->keepdims == y->keepdims && x->axis == y->axis && memcmp(x->perm, y->perm, sizeof x->perm) == 0 &&
           x->ta == y->ta && x->tb == y->tb && x->site == y->site && x->classes == y->classes &&
           x->start == y->start && x->grad == y->grad && x->kernel == y->kernel && x->output == y->output;
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
    g->hash = xrealloc(NULL, sizeof *g->hash * (size_t)g->hashcap);
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
        g->node = xrealloc(g->node, sizeof *g->node * (size_t)g->cap);
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
        g->out = xrealloc(g->out, sizeof *g->out * (size_t)g->outcap);
    }
    g->out[g->nout++] = (ir_output){ir_strdup(g, name), id};
}

int32_t ir_find_source(const ir_graph *g, ir_op op, const char *name)
{
    for (int32_t i = 0; i < g->n; i++)
        if (g->node[i].op == op && g->node[i].attr.name && strcmp(g->node[i].attr.name, name) == 0)
            return i;
    return -1;
}

int ir_find_output(const ir_graph *g, const char *name)
{
    for (int i = 0; i < g->nout; i++)
        if (strcmp(g->out[i].name, name) == 0)
            return i;
    return -1;
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
        g->kernels = xrealloc(g->kernels, sizeof *g->kernels * (size_t)g->kernelcap);
        g->kernel_src = xrealloc(g->kernel_src, sizeof *g->kernel_src * (size_t)g->kernelcap);
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
    bool *live = calloc((size_t)(g->n ? g->n : 1), sizeof *live);
    int32_t *map = malloc(sizeof *map * (size_t)(g->n ? g->n : 1));
    if (!live || !map) {
        fprintf(stderr, "aotgrad: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < g->nout; i++)
        for (int k = 0; k < nkeep; k++)
            if (strcmp(g->out[i].name, keep[k]) == 0)
                live[g->out[i].id] = true;
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
    for (int i = 0; i < g->nout; i++)
        for (int k = 0; k < nkeep; k++)
            if (strcmp(g->out[i].name, keep[k]) == 0)
                ir_add_output(h, g->out[i].name, map[g->out[i].id]);
    h->next_site = g->next_site;
    ir_copy_train(h, g);
    free(live);
    free(map);
    return h;
}

ir_graph *ir_clone_live(const ir_graph *g)
{
    const char **names = malloc(sizeof *names * (size_t)(g->nout + 1));
    if (!names) {
        fprintf(stderr, "aotgrad: out of memory\n");
        exit(1);
    }
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
