/* fuse: nodes into kernels, so that codegen sees few, large loops.
 *
 * Three steps over the graph:
 *  1. matmul epilogues: the chain of same-shape elementwise nodes (dropout included) that is a
 *     matmul's or a conv2d's only user (bias, activation, the activation's gradient, the SGD update that
 *     makes P.next from the weight gradient) joins the matmul, with the single-use
 *     elementwise values that feed the chain from the side (H > 0, wd * W); the chain stops
 *     before a node whose users are all same-shape elementwise (Adam's d = g + wd*W), which
 *     their loop computes instead of reading it back;
 *  2. loops: from each remaining node, backwards, its producers join it when all their users
 *     are in the group (a graph output too, elementwise into a user of its shape: an
 *     optimizer's moments and the update that reads them are one loop): elementwise chains,
 *     at most one reduction (which absorbs its producers and consumers: bias gradients, the
 *     mean of the loss), row ops, reshapes and broadcasts. A matmul never joins another
 *     group: sgemm reads and writes buffers;
 *  3. siblings: loop groups that read a common value and need nothing computed after the
 *     first of them become one group with several outputs (the loss, the accuracy count and
 *     the logits' gradient all read each row of logits once).
 *
 * Each group becomes a body graph and one kernel node per output. Nothing is computed
 * twice: a value with users in two groups is an output of its own group. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bug.h"
#include "passes.h"

typedef struct fuser {
    const ir_graph *g;
    int32_t *group;  /* node -> group, -1: none (sources, or not fused) */
    int32_t **users; /* node -> its users (ids, ascending), NULL-free arrays */
    int32_t *nusers;
    int32_t ngroups;
    bool *has_reduce, *has_matmul;
} fuser;

static const ir_node *node(const fuser *f, int32_t id) { return &f->g->node[id]; }

static bool is_source(const ir_node *n) { return ir_ops[n->op].kind == IR_K_SOURCE; }

static int32_t new_group(fuser *f, int32_t id)
{
    f->group[id] = f->ngroups;
    f->has_reduce[f->ngroups] = ir_ops[node(f, id)->op].kind == IR_K_REDUCE;
    f->has_matmul[f->ngroups] = node(f, id)->op == IR_matmul || node(f, id)->op == IR_conv2d;
    return f->ngroups++;
}

static bool users_all_in(const fuser *f, int32_t id, int32_t grp)
{
    for (int32_t k = 0; k < f->nusers[id]; k++)
        if (f->group[f->users[id][k]] != grp)
            return false;
    return f->nusers[id] > 0;
}

static bool is_output(const ir_graph *g, int32_t id)
{
    for (int i = 0; i < g->nout; i++)
        if (g->out[i].id == id)
            return true;
    return false;
}

/* ---- 1. matmul and conv2d epilogues ---- */

/* Side values of an epilogue node: single-use, same-shape elementwise producers. */
static void absorb_side(fuser *f, int32_t id, int32_t grp, const ir_shape *shape)
{
    const ir_node *n = node(f, id);
    for (int k = 0; k < n->nin; k++) {
        int32_t p = n->in[k];
        const ir_node *q = node(f, p);
        if (f->group[p] >= 0 || is_source(q) || ir_ops[q->op].kind != IR_K_ELEMENTWISE || f->nusers[p] != 1 ||
            !ir_shape_eq(&q->shape, shape) || is_output(f->g, p))
            continue;
        f->group[p] = grp;
        absorb_side(f, p, grp, shape);
    }
}

/* Whether every user of id is a same-shape elementwise node: the loop they form computes id
 * as well, where an epilogue would write it out for them to read back (Adam's d = g + wd*P,
 * read by both moments) */
static bool only_elementwise_users(const fuser *f, int32_t id)
{
    if (f->nusers[id] < 2)
        return false;
    for (int32_t k = 0; k < f->nusers[id]; k++) {
        const ir_node *u = node(f, f->users[id][k]);
        if (ir_ops[u->op].kind != IR_K_ELEMENTWISE || !ir_shape_eq(&u->shape, &node(f, id)->shape))
            return false;
    }
    return true;
}

static void epilogues(fuser *f)
{
    for (int32_t m = 0; m < f->g->n; m++) {
        if ((node(f, m)->op != IR_matmul && node(f, m)->op != IR_conv2d) || f->group[m] >= 0)
            continue;
        int32_t grp = new_group(f, m), tail = m;
        const ir_shape *shape = &node(f, m)->shape;
        while (f->nusers[tail] == 1 && !is_output(f->g, tail)) {
            int32_t u = f->users[tail][0];
            const ir_node *un = node(f, u);
            ir_kind kind = ir_ops[un->op].kind;
            if (f->group[u] >= 0 || (kind != IR_K_ELEMENTWISE && kind != IR_K_RANDOM) ||
                !ir_shape_eq(&un->shape, shape) || (!is_output(f->g, u) && only_elementwise_users(f, u)))
                break;
            f->group[u] = grp;
            absorb_side(f, u, grp, shape);
            tail = u;
        }
    }
}

/* ---- 2. loops ---- */

/* Whether producer p joins group grp, which its user `by` is in. An output joins only a user
 * of its own shape (an optimizer's moment and the update that reads it: one loop, the
 * moment one of its outputs); a smaller one would be recomputed on every iteration, and it
 * may be updated in place (P.step). */
static bool joins_loop(const fuser *f, int32_t p, int32_t by, int32_t grp)
{
    const ir_node *q = node(f, p);
    if (f->group[p] >= 0 || is_source(q) || !users_all_in(f, p, grp))
        return false;
    if (is_output(f->g, p) && (ir_ops[q->op].kind != IR_K_ELEMENTWISE || !ir_shape_eq(&q->shape, &node(f, by)->shape)))
        return false;
    switch (ir_ops[q->op].kind) {
    case IR_K_ELEMENTWISE:
    case IR_K_ROW:
    case IR_K_INDEX:
    case IR_K_RANDOM:
    case IR_K_SCAN: return true;
    case IR_K_REDUCE: return !f->has_reduce[grp];
    case IR_K_LAYOUT: return q->op == IR_reshape || q->op == IR_broadcast_to;
    default: return false;
    }
}

static void absorb_producers(fuser *f, int32_t id, int32_t grp)
{
    const ir_node *n = node(f, id);
    for (int k = 0; k < n->nin; k++) {
        int32_t p = n->in[k];
        if (!joins_loop(f, p, id, grp))
            continue;
        f->group[p] = grp;
        if (ir_ops[node(f, p)->op].kind == IR_K_REDUCE)
            f->has_reduce[grp] = true;
        absorb_producers(f, p, grp);
    }
}

static void loops(fuser *f)
{
    for (int32_t i = f->g->n - 1; i >= 0; i--) {
        const ir_node *n = node(f, i);
        /* a kernel is fused already; a collective is a call of its own, in its operand's buffer */
        if (f->group[i] >= 0 || is_source(n) || n->op == IR_kernel || ir_ops[n->op].kind == IR_K_COLLECTIVE)
            continue;
        int32_t grp = new_group(f, i);
        absorb_producers(f, i, grp);
    }
}

/* ---- 3. siblings ---- */

/* The latest value group grp reads from outside, and its first member. */
static void extent(const fuser *f, int32_t grp, int32_t *last_input, int32_t *first_member)
{
    *last_input = -1;
    *first_member = f->g->n;
    for (int32_t i = 0; i < f->g->n; i++) {
        if (f->group[i] != grp)
            continue;
        if (i < *first_member)
            *first_member = i;
        const ir_node *n = node(f, i);
        for (int k = 0; k < n->nin; k++)
            if (f->group[n->in[k]] != grp && !is_source(node(f, n->in[k])) && n->in[k] > *last_input)
                *last_input = n->in[k];
    }
}

static bool reads_common(const fuser *f, int32_t a, int32_t b)
{
    for (int32_t i = 0; i < f->g->n; i++) {
        if (f->group[i] != a)
            continue;
        const ir_node *n = node(f, i);
        for (int k = 0; k < n->nin; k++) {
            int32_t v = n->in[k];
            if (f->group[v] == a || is_source(node(f, v)))
                continue;
            for (int32_t u = 0; u < f->nusers[v]; u++)
                if (f->group[f->users[v][u]] == b)
                    return true;
        }
    }
    return false;
}

/* Two groups merge when everything either reads from outside is computed before the first
 * member of either: then neither needs the other, and the merged group can run there. */
static void siblings(fuser *f)
{
    for (int32_t a = 0; a < f->ngroups; a++)
        for (int32_t b = a + 1; b < f->ngroups; b++) {
            if (f->has_matmul[a] || f->has_matmul[b] || !reads_common(f, a, b))
                continue;
            int32_t la, fa, lb, fb;
            extent(f, a, &la, &fa);
            extent(f, b, &lb, &fb);
            if (fa == f->g->n || fb == f->g->n)
                continue; /* merged away already */
            int32_t first = fa < fb ? fa : fb;
            if (la >= first || lb >= first)
                continue;
            for (int32_t i = 0; i < f->g->n; i++)
                if (f->group[i] == b)
                    f->group[i] = a;
            f->has_reduce[a] |= f->has_reduce[b];
        }
}

/* ---- building the graph ---- */

typedef struct body_map {
    int32_t *inner;  /* outer id -> body id, -1 */
    int32_t *output; /* outer id -> index among the body's outputs, -1 */
} body_map;

/* Whether a member's value leaves the group. */
static bool leaves(const fuser *f, int32_t id)
{
    if (is_output(f->g, id))
        return true;
    for (int32_t k = 0; k < f->nusers[id]; k++)
        if (f->group[f->users[id][k]] != f->group[id])
            return true;
    return false;
}

/* The body of group grp: its outside operands as inputs (in id order), its members, and an
 * output for each member whose value leaves it. */
static ir_graph *make_body(const fuser *f, int32_t grp, body_map *bm, int32_t *inputs, int *ninputs)
{
    const ir_graph *g = f->g;
    ir_graph *b = ir_graph_new("kernel");
    *ninputs = 0;
    for (int32_t i = 0; i < g->n; i++)
        bm->inner[i] = -1; /* ids are per body */
    for (int32_t i = 0; i < g->n; i++) {
        if (f->group[i] != grp)
            continue;
        const ir_node *n = node(f, i);
        for (int k = 0; k < n->nin; k++) {
            int32_t v = n->in[k];
            if (bm->inner[v] >= 0 || f->group[v] == grp)
                continue;
            if (node(f, v)->op == IR_const) { /* constants are copied in, not passed */
                bm->inner[v] = ir_copy_node(b, g, v, bm->inner);
                continue;
            }
            ir_node in = ir_node_make(IR_input, 0, NULL);
            in.dtype = node(f, v)->dtype;
            in.shape = node(f, v)->shape;
            char name[16];
            snprintf(name, sizeof name, "p%d", *ninputs);
            in.attr.name = ir_strdup(b, name);
            bm->inner[v] = ir_intern(b, &in);
            inputs[(*ninputs)++] = v;
        }
    }
    int outs = 0;
    for (int32_t i = 0; i < g->n; i++)
        if (f->group[i] == grp) {
            bm->inner[i] = ir_copy_node(b, g, i, bm->inner);
            if (leaves(f, i)) {
                char name[16];
                snprintf(name, sizeof name, "o%d", outs);
                ir_add_output(b, name, bm->inner[i]);
                bm->output[i] = outs++;
            }
        }
    return b;
}

/* Kernels numbered in the order their first node comes, as every later copy of the graph
 * numbers them (ir_copy_node): @k3 of the fused IR stays @k3 through the last pass, in the
 * generated code's names and in bench's table. */
static void number_kernels_in_order(ir_graph *h)
{
    int32_t *new_of = ir_xmalloc(sizeof *new_of * (size_t)(h->nkernels ? h->nkernels : 1)), next = 0;
    for (int32_t k = 0; k < h->nkernels; k++)
        new_of[k] = -1;
    for (int32_t i = 0; i < h->n; i++)
        if (h->node[i].op == IR_kernel && new_of[h->node[i].attr.kernel] < 0)
            new_of[h->node[i].attr.kernel] = next++;
    for (int32_t k = 0; k < h->nkernels; k++) /* bodies no node picks from (none today) go last */
        if (new_of[k] < 0)
            new_of[k] = next++;
    ir_graph **bodies = ir_xmalloc(sizeof *bodies * (size_t)(h->nkernels ? h->nkernels : 1));
    for (int32_t k = 0; k < h->nkernels; k++)
        bodies[new_of[k]] = h->kernels[k];
    for (int32_t k = 0; k < h->nkernels; k++)
        h->kernels[k] = bodies[k], h->kernel_src[k] = NULL;
    for (int32_t i = 0; i < h->n; i++)
        if (h->node[i].op == IR_kernel)
            h->node[i].attr.kernel = new_of[h->node[i].attr.kernel];
    free(bodies);
    free(new_of);
}

/* A member that leaves its group only as a graph output: its users are all in the group (an
 * optimizer's moment). It comes out when the group's next output does (the group runs
 * there, after every value it reads), not at its own place, which may come before them. */
static bool only_an_output(const fuser *f, int32_t id)
{
    return is_output(f->g, id) && users_all_in(f, id, f->group[id]);
}

/* The kernel node of member i: output `out` of kernel `kernel`, reading the group's inputs */
static void emit_output(ir_graph *h, const ir_graph *g, int32_t i, int32_t kernel, int32_t out, const int32_t *gin,
                        int nin, int32_t *map)
{
    int32_t *ops = ir_xmalloc(sizeof *ops * (size_t)(nin ? nin : 1));
    for (int k = 0; k < nin; k++) {
        int32_t v = gin[k];
        /* the group runs at its first output; a source it reads may come later in g (the
         * optimizer's lr and wd, which siblings() counts as available from the start):
         * a source reads nothing, so it moves up here */
        if (map[v] < 0 && is_source(&g->node[v]))
            map[v] = ir_copy_node(h, g, v, map);
        ops[k] = map[v];
    }
    ir_node k = ir_node_make(IR_kernel, nin, ops);
    k.attr.kernel = kernel;
    k.attr.output = out;
    k.loc = g->node[i].loc;
    char msg[256];
    map[i] = ir_add(h, &k, msg, sizeof msg);
    free(ops);
    if (map[i] < 0) { /* the bodies are built from nodes that type-checked */
        ir_bug_node(i);
        ir_bug("a kernel of the fused group does not type-check: %s", msg);
    }
    if (k.loc.file) /* ir_add keeps the pointer: move the file name into h */
        h->node[map[i]].loc.file = ir_strdup(h, k.loc.file);
}

ir_graph *pass_fuse(const ir_graph *g, char *err, size_t len)
{
    (void)err, (void)len;
    size_t n = (size_t)(g->n ? g->n : 1);
    fuser f = {g, ir_xmalloc(sizeof(int32_t) * n), ir_xcalloc(n, sizeof(int32_t *)), ir_xcalloc(n, sizeof(int32_t)),
               0, ir_xcalloc(n, sizeof(bool)),     ir_xcalloc(n, sizeof(bool))};
    int32_t *map = ir_xmalloc(sizeof *map * n), *kernel_of = ir_xmalloc(sizeof *kernel_of * n);
    int32_t *inner = ir_xmalloc(sizeof *inner * n), *output = ir_xmalloc(sizeof *output * n);
    int32_t *inputs = ir_xmalloc(sizeof *inputs * n);
    int32_t *size = ir_xcalloc(n, sizeof *size);
    for (int32_t i = 0; i < g->n; i++) {
        f.group[i] = -1;
        for (int k = 0; k < g->node[i].nin; k++)
            f.nusers[g->node[i].in[k]]++;
    }
    for (int32_t i = 0; i < g->n; i++) {
        f.users[i] = ir_xmalloc(sizeof(int32_t) * (size_t)(f.nusers[i] ? f.nusers[i] : 1));
        f.nusers[i] = 0;
    }
    for (int32_t i = 0; i < g->n; i++)
        for (int k = 0; k < g->node[i].nin; k++) {
            int32_t p = g->node[i].in[k];
            if (f.nusers[p] == 0 || f.users[p][f.nusers[p] - 1] != i) /* a user once, however many operands */
                f.users[p][f.nusers[p]++] = i;
        }

    epilogues(&f);
    loops(&f);
    siblings(&f);

    /* a group worth a kernel: more than one node, and an operand to run on (one that reads
     * only constants, such as the batch size as a sum of ones, stays plain nodes) */
    bool *fed = ir_xcalloc(n, sizeof *fed);
    int32_t *pending = ir_xcalloc(n, sizeof *pending); /* per group: its members only_an_output */
    for (int32_t i = 0; i < g->n; i++)
        if (f.group[i] >= 0 && only_an_output(&f, i))
            pending[f.group[i]]++;
    for (int32_t i = 0; i < g->n; i++)
        if (f.group[i] >= 0) {
            size[f.group[i]]++;
            for (int k = 0; k < g->node[i].nin; k++) {
                int32_t v = g->node[i].in[k];
                fed[f.group[i]] |= f.group[v] != f.group[i] && g->node[v].op != IR_const;
            }
        }
    ir_graph *h = ir_graph_new(g->name);
    for (int32_t i = 0; i < (int32_t)n; i++)
        kernel_of[i] = -1, inner[i] = -1, output[i] = -1;
    int32_t *group_n = ir_xcalloc(n, sizeof *group_n);
    int32_t **gin = ir_xcalloc(n, sizeof *gin);
    for (int32_t i = 0; i < g->n; i++)
        map[i] = -1;
    for (int32_t i = 0; i < g->n; i++) {
        int32_t grp = f.group[i];
        if (map[i] >= 0)
            continue;                                 /* a source a kernel read early */
        if (grp < 0 || size[grp] == 1 || !fed[grp]) { /* sources, and groups of one, stay plain nodes */
            map[i] = ir_copy_node(h, g, i, map);
            continue;
        }
        if (kernel_of[grp] < 0) {
            int nin;
            body_map bm = {inner, output};
            ir_graph *body = make_body(&f, grp, &bm, inputs, &nin);
            kernel_of[grp] = ir_add_kernel(h, body);
            gin[grp] = ir_xmalloc(sizeof(int32_t) * (size_t)(nin ? nin : 1));
            memcpy(gin[grp], inputs, sizeof(int32_t) * (size_t)nin);
            group_n[grp] = nin;
        }
        map[i] = -1;
        if (output[i] < 0 || only_an_output(&f, i))
            continue; /* stays inside its kernel, or comes out with the group's next output */
        emit_output(h, g, i, kernel_of[grp], output[i], gin[grp], group_n[grp], map);
        for (int32_t j = 0; pending[grp] && j < g->n; j++) /* a graph output that joined its users */
            if (f.group[j] == grp && map[j] < 0 && output[j] >= 0 && only_an_output(&f, j)) {
                emit_output(h, g, j, kernel_of[grp], output[j], gin[grp], group_n[grp], map);
                pending[grp]--;
            }
    }
    for (int i = 0; i < g->nout; i++)
        ir_add_output(h, g->out[i].name, map[g->out[i].id]);
    h->next_site = g->next_site;
    ir_copy_train(h, g);
    number_kernels_in_order(h);
    for (int32_t i = 0; i < g->n; i++) {
        free(f.users[i]);
        free(gin[i]);
    }
    free(gin);
    free(fed);
    free(pending);
    free(group_n);
    free(f.group);
    free(f.users);
    free(f.nusers);
    free(f.has_reduce);
    free(f.has_matmul);
    free(map);
    free(kernel_of);
    free(inner);
    free(output);
    free(inputs);
    free(size);
    return h;
}
