/* A distributed build's allreduce nodes (passes/distribute.c) as runtime calls: each
 * bucket, one contiguous range of the arena in the memory plan, is started with one
 * non-blocking call as soon as the step that computes its last gradient is done, and waited
 * on just before the first step that reads one of its sums; the steps in between (the rest
 * of the backward pass) overlap the communication. The allreduce nodes themselves are no
 * step: each is its operand's buffer, summed in place. An allreduce of a value another one
 * sums already is that one's sum. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "lower_internal.h"

typedef struct bucket {
    int32_t key;              /* the allreduce nodes' bucket attribute */
    int members, done;        /* the values it sums, and those computed so far */
    int32_t lowest, last;     /* the member at the lowest offset; the last allreduce node */
    int64_t lo, hi, reserved; /* bytes: the range, and the members' sizes summed */
    bool started, waited;
} bucket;

struct lo_collectives {
    int nb;
    bucket *b;
    int32_t *of; /* per node: for an allreduce and for a value one sums, its bucket's index; -1 */
};

static void free_collectives(lo_collectives *c)
{
    if (c) {
        free(c->b);
        free(c->of);
        free(c);
    }
}

bool lo_collectives_begin(lowering *L)
{
    const ir_graph *g = L->g;
    const ir_plan *p = L->plan;
    int n = 0;
    for (int32_t i = 0; i < g->n; i++)
        n += g->node[i].op == IR_allreduce;
    if (!n)
        return true;
    lo_collectives *c = L->coll = ir_xcalloc(1, sizeof *c);
    c->b = ir_xcalloc((size_t)n, sizeof *c->b);
    c->of = ir_xmalloc(sizeof *c->of * (size_t)g->n);
    for (int32_t i = 0; i < g->n; i++)
        c->of[i] = -1;
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *a = &g->node[i];
        if (a->op != IR_allreduce)
            continue;
        int32_t v = a->in[0];
        if (c->of[v] >= 0) { /* summed already */
            c->of[i] = c->of[v];
            continue;
        }
        int k = 0;
        while (k < c->nb && c->b[k].key != a->attr.bucket)
            k++;
        bucket *b = &c->b[k];
        if (k == c->nb)
            *b = (bucket){a->attr.bucket, 0, 0, v, i, INT64_MAX, INT64_MIN, 0, false, false}, c->nb++;
        const ir_node *val = &g->node[v];
        ir_affine bytes = ir_bytes_affine(val->dtype, &val->shape);
        /* a bucket is one range at every batch: fixed sizes, offsets that move alike with N */
        if (p->offset[v] < 0 || bytes.n != 0 || ir_ops[val->op].kind == IR_K_SOURCE ||
            (b->members && p->offset_n[v] != p->offset_n[b->lowest]))
            return rt_fail(L->err, L->len, "lower: allreduce %%%d sums a value that %s", (int)i,
                           p->offset[v] < 0 ? "has no buffer of its own"
                           : bytes.n        ? "grows with the batch: a bucket is a fixed range"
                                            : "lies apart from its bucket's others at some batch");
        c->of[i] = c->of[v] = k;
        b->members++;
        b->last = i;
        if (p->offset[v] < b->lo)
            b->lo = p->offset[v], b->lowest = v;
        if (p->offset[v] + bytes.k > b->hi)
            b->hi = p->offset[v] + bytes.k;
        b->reserved += (bytes.k + 63) / 64 * 64; /* as plan_memory aligns each */
    }
    for (int k = 0; k < c->nb; k++) {
        bucket *b = &c->b[k];
        if (b->hi - b->lo > b->reserved || (b->hi - b->lo) % 4)
            return rt_fail(L->err, L->len,
                           "lower: bucket %d's values are not one contiguous range in the memory plan (%lld bytes "
                           "apart, %lld summed)",
                           (int)b->key, (long long)(b->hi - b->lo), (long long)b->reserved);
    }
    return true;
}

static void add_call(lowering *L, int k, bool wait)
{
    const bucket *b = &L->coll->b[k];
    cg_step *s = lo_add_step(L, CG_CALL, b->last);
    cg_call *c = &s->call;
    c->op = IR_allreduce;
    c->nargs = 1;
    c->arg[0] = (cg_access){L->outer[b->lowest], {0, 0}, {{0}}};
    c->rows = (cg_dim){(b->hi - b->lo) / 4, 0};
    c->len = c->inner = (cg_dim){1, 0};
    c->bucket = k;
    c->wait = wait;
}

void lo_collectives_before(lowering *L, int32_t i)
{
    lo_collectives *c = L->coll;
    const ir_node *n = &L->g->node[i];
    for (int k = 0; c && k < n->nin && !L->failed; k++) {
        int32_t o = n->in[k];
        if (L->g->node[o].op != IR_allreduce || c->b[c->of[o]].waited)
            continue;
        bucket *b = &c->b[c->of[o]];
        if (!b->started) { /* the schedule reads a sum before its bucket's last value is computed */
            L->failed = !rt_fail(L->err, L->len,
                                 "lower: %%%d reads bucket %d's sum before the bucket's last gradient is computed",
                                 (int)i, (int)b->key);
            return;
        }
        add_call(L, c->of[o], true);
        b->waited = true;
    }
}

void lo_collectives_after(lowering *L, int32_t i)
{
    lo_collectives *c = L->coll;
    const ir_graph *g = L->g;
    for (int32_t v = 0; c && v < g->n; v++) {
        /* v is computed by node i: it is i, or an output of the kernel i runs */
        bool here = v == i || (g->node[v].op == IR_kernel && g->node[i].op == IR_kernel &&
                               g->node[v].attr.kernel == g->node[i].attr.kernel);
        if (!here || c->of[v] < 0 || g->node[v].op == IR_allreduce)
            continue;
        bucket *b = &c->b[c->of[v]];
        if (++b->done == b->members) {
            add_call(L, c->of[v], false);
            b->started = true;
        }
    }
}

void lo_collectives_end(lowering *L)
{
    lo_collectives *c = L->coll;
    for (int k = 0; c && k < c->nb && !L->failed; k++)
        if (c->b[k].started && !c->b[k].waited) /* summed for no step's reading: done before the entry returns */
            add_call(L, k, true), c->b[k].waited = true;
    free_collectives(c);
    L->coll = NULL;
}
