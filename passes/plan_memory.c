/* plan_memory: where each value lives while the graph runs, at any batch N.
 *
 * Liveness is taken over the final schedule (node order, ir_lifetimes): a value lives from
 * the node that computes it (a fused kernel's outputs all from its first node, where its
 * body runs) to its last reader, or to the end when it is an output. Values are placed in
 * one arena, largest first at the batch the training declares, each at the lowest offset
 * free of every value whose life overlaps it, so dead values' bytes are reused. A parameter's
 * update (P.next) overwrites P in place when nothing reads P after it: no updated copy of any
 * weight is kept.
 *
 * Sizes and offsets are affine in N (k + n*N bytes: N appears at most once in a shape), and
 * a place is free only where it misses the overlapping values at every N >= 1, so one plan
 * serves every batch: the binaries train and predict at any N without recompiling, and the
 * arena at N is the largest end at N. Candidate places are 0 and the ends of the overlapping
 * values placed before, tried lowest first at the declared batch.
 *
 * The plan is attached to the graph (g->plan) and printed with it (`memory`, `buffer` and
 * `inplace` lines after the declarations); the verifier checks a plan however it was made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "interp.h"
#include "passes.h"

#define ALIGN 64     /* the fixed part of an offset: a cache line */
#define ALIGN_ROW 16 /* the per-row part: 16-byte vectors at any N, a cache line at N % 4 == 0 */

/* Checked by plan_memory before it plans: every value and their sum fit IR_MAX_BYTES, so no
 * offset, arena or tally below can overflow. */
static int64_t bytes_of(const ir_node *n, int64_t batch) { return ir_bytes(n->dtype, &n->shape, batch); }

/* the bytes a value's buffer takes, rounded up to keep every offset aligned */
static ir_affine reserved(const ir_node *n)
{
    ir_affine b = ir_bytes_affine(n->dtype, &n->shape);
    return (ir_affine){(b.k + ALIGN - 1) / ALIGN * ALIGN, (b.n + ALIGN_ROW - 1) / ALIGN_ROW * ALIGN_ROW};
}

static bool computed(const ir_node *n) { return ir_ops[n->op].kind != IR_K_SOURCE; }

/* The parameter an output named P.next updates, or -1. */
static int32_t updated_param(const ir_graph *g, const char *out)
{
    size_t n = strlen(out);
    if (n < 6 || strcmp(out + n - 5, ".next") != 0 || n - 5 >= 256)
        return -1;
    char name[256];
    memcpy(name, out, n - 5);
    name[n - 5] = 0;
    return ir_find_source(g, IR_param, name);
}

/* the buffers at `at` and `w` (sizes sa, sw) are apart at every N >= 1 */
static bool apart(ir_affine at, ir_affine sa, ir_affine w, ir_affine sw)
{
    return ir_affine_le(ir_affine_add(at, sa), w) || ir_affine_le(ir_affine_add(w, sw), at);
}

/* the lowest place for value v (order[a]) clear at every N of the values placed before it
 * whose lives overlap v's; size: the bytes each takes (a bucket's first value: the bucket's) */
static ir_affine place(const ir_plan *p, const int32_t *order, int a, const int32_t *birth, const int32_t *last,
                       const ir_affine *bytes, ir_affine *cand)
{
    int32_t v = order[a];
    ir_affine size = bytes[v], top = {0, 0};
    int nc = 0;
    cand[nc++] = (ir_affine){0, 0};
    for (int b = 0; b < a; b++) {
        int32_t w = order[b];
        if (birth[v] <= last[w] && birth[w] <= last[v]) {
            ir_affine end = ir_affine_add((ir_affine){p->offset[w], p->offset_n[w]}, bytes[w]);
            cand[nc++] = end;
            top = (ir_affine){end.k > top.k ? end.k : top.k, end.n > top.n ? end.n : top.n};
        }
    }
    ir_affine best = top; /* above every end at every N: always clear */
    int64_t best_at = ir_affine_at(top, p->batch);
    for (int c = 0; c < nc; c++) {
        int64_t at = ir_affine_at(cand[c], p->batch);
        if (at > best_at || (at == best_at && cand[c].n >= best.n))
            continue;
        bool clear = true;
        for (int b = 0; b < a && clear; b++) {
            int32_t w = order[b];
            clear = !(birth[v] <= last[w] && birth[w] <= last[v]) ||
                    apart(cand[c], size, (ir_affine){p->offset[w], p->offset_n[w]}, bytes[w]);
        }
        if (clear)
            best = cand[c], best_at = at;
    }
    return best;
}

/* A distributed build's buckets (passes/distribute.c): the values allreduce sums in place,
 * each bucket's laid out as one contiguous range in the order of its allreduce nodes, so
 * that one call reduces the bucket with no copy. first[v] is the bucket's first value for
 * each of its values (-1 for the rest); the first's bytes, birth and last become the
 * bucket's, and the others' offsets follow from its (lay_out_buckets). An allreduce of a
 * value another allreduce sums already is the same sum: it takes that one's buffer. Every
 * allreduce's operand lives as long as the sum is read. */
static void find_buckets(const ir_graph *g, const ir_plan *p, int32_t *first, int32_t *birth, int32_t *last,
                         ir_affine *bytes)
{
    int32_t *bucket_first = ir_xmalloc(sizeof *bucket_first * (size_t)(g->n ? g->n : 1)),
            *bucket_id = ir_xmalloc(sizeof *bucket_id * (size_t)(g->n ? g->n : 1));
    int nb = 0;
    for (int32_t i = g->n - 1; i >= 0; i--) /* last to first: a sum of a sum extends both */
        if (g->node[i].op == IR_allreduce && last[i] > last[g->node[i].in[0]])
            last[g->node[i].in[0]] = last[i];
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *a = &g->node[i];
        if (a->op != IR_allreduce)
            continue;
        int32_t v = a->in[0];
        if (!computed(&g->node[v]) || p->inplace[v] >= 0 || first[v] >= 0)
            continue;
        int b = 0;
        while (b < nb && bucket_id[b] != a->attr.bucket)
            b++;
        if (b == nb)
            bucket_id[nb] = a->attr.bucket, bucket_first[nb++] = v;
        int32_t f = bucket_first[b];
        first[v] = f;
        if (f != v) {
            bytes[f] = ir_affine_add(bytes[f], bytes[v]);
            birth[f] = birth[v] < birth[f] ? birth[v] : birth[f];
            last[f] = last[v] > last[f] ? last[v] : last[f];
        }
    }
    free(bucket_id);
    free(bucket_first);
}

/* each bucket's values after its first, in the order of their allreduce nodes; then every
 * allreduce in its operand's buffer */
static void lay_out_buckets(const ir_graph *g, ir_plan *p, const int32_t *first)
{
    ir_affine *end = ir_xcalloc((size_t)(g->n ? g->n : 1), sizeof *end); /* per first: where the next goes */
    bool *laid = ir_xcalloc((size_t)(g->n ? g->n : 1), sizeof *laid);
    for (int32_t i = 0; i < g->n; i++) {
        int32_t v = g->node[i].op == IR_allreduce ? g->node[i].in[0] : -1, f = v >= 0 ? first[v] : -1;
        if (f < 0 || laid[v])
            continue;
        if (v != f) /* the first comes first (it is its bucket's first allreduce's operand) */
            p->offset[v] = end[f].k, p->offset_n[v] = end[f].n;
        else
            end[f] = (ir_affine){p->offset[f], p->offset_n[f]};
        end[f] = ir_affine_add(end[f], reserved(&g->node[v]));
        laid[v] = true;
    }
    free(laid);
    for (int32_t i = 0; i < g->n; i++) /* in order: an allreduce of an allreduce takes its buffer too */
        if (g->node[i].op == IR_allreduce)
            p->offset[i] = p->offset[g->node[i].in[0]], p->offset_n[i] = p->offset_n[g->node[i].in[0]];
    free(end);
}

/* what the packing sorts by: a value's bytes, a bucket's all */
static int64_t sort_bytes(const ir_graph *g, int32_t v, const int32_t *first, const ir_affine *bytes, int64_t batch)
{
    return first[v] == v ? ir_affine_at(bytes[v], batch) : bytes_of(&g->node[v], batch);
}

ir_plan *plan_memory(ir_graph *g, int64_t batch)
{
    if (batch < 1 || !ir_check_sizes(g, batch, NULL, NULL, 0))
        return NULL;
    int32_t n = g->n;
    size_t cap = (size_t)(n ? n : 1);
    ir_plan *p = ir_alloc(g, sizeof *p);
    p->batch = batch;
    p->offset = ir_alloc(g, sizeof *p->offset * cap);
    p->offset_n = ir_alloc(g, sizeof *p->offset_n * cap);
    p->inplace = ir_alloc(g, sizeof *p->inplace * cap);
    int32_t *birth = ir_xmalloc(sizeof *birth * cap);
    int32_t *last = ir_xmalloc(sizeof *last * cap);
    int32_t *order = ir_xmalloc(sizeof *order * cap);
    ir_affine *cand = ir_xmalloc(sizeof *cand * (cap + 1)), *bytes = ir_xmalloc(sizeof *bytes * cap);
    int32_t *first = ir_xmalloc(sizeof *first * cap);
    ir_lifetimes(g, birth, last);
    for (int32_t i = 0; i < n; i++)
        p->offset[i] = -1, p->offset_n[i] = 0, p->inplace[i] = -1, bytes[i] = reserved(&g->node[i]), first[i] = -1;
    for (int i = 0; i < g->nout; i++) {
        int32_t u = g->out[i].id, param = updated_param(g, g->out[i].name);
        if (param < 0 || !computed(&g->node[u]) || ir_read_after(g, param, birth[u], u) >= 0)
            continue; /* P is read after its update is written: the update needs a buffer of its own */
        if (g->node[u].dtype != g->node[param].dtype || !ir_shape_eq(&g->node[u].shape, &g->node[param].shape))
            continue; /* not a value P's buffer holds */
        p->inplace[u] = param;
    }
    find_buckets(g, p, first, birth, last, bytes);
    int m = 0;
    for (int32_t i = 0; i < n; i++)
        if (computed(&g->node[i]) && p->inplace[i] < 0 && g->node[i].op != IR_allreduce &&
            (first[i] < 0 || first[i] == i))
            order[m++] = i;
    /* largest first at the declared batch, then in schedule order: a stable, deterministic packing */
    for (int a = 1; a < m; a++)
        for (int b = a; b > 0; b--) {
            int64_t sb = sort_bytes(g, order[b], first, bytes, batch),
                    sa = sort_bytes(g, order[b - 1], first, bytes, batch);
            if (sb < sa || (sb == sa && order[b] > order[b - 1]))
                break;
            int32_t t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    for (int a = 0; a < m; a++) {
        ir_affine at = place(p, order, a, birth, last, bytes, cand);
        p->offset[order[a]] = at.k, p->offset_n[order[a]] = at.n;
    }
    lay_out_buckets(g, p, first);
    p->arena = ir_plan_arena(g, p, batch);
    free(first);
    free(bytes);
    free(cand);
    free(order);
    free(last);
    free(birth);
    g->plan = p;
    return p;
}

ir_graph *pass_plan_memory(const ir_graph *g, char *err, size_t len)
{
    return pass_plan_memory_at(g, g->train && g->train->batch ? g->train->batch : 1, err, len);
}

ir_graph *pass_plan_memory_at(const ir_graph *g, int64_t batch, char *err, size_t len)
{
    ir_graph *h = ir_clone_live(g);
    int32_t bad = -1;
    char msg[512] = "the graph cannot be planned";
    if (!ir_check_sizes(h, batch, &bad, msg, sizeof msg) || !plan_memory(h, batch)) {
        const ag_loc *at = &h->node[bad < 0 ? 0 : bad].loc;
        if (at->file && at->line > 0)
            rt_fail(err, len, "%s:%d: error: plan_memory: %s", at->file, at->line, msg);
        else
            rt_fail(err, len, "plan_memory: %s", msg);
        ir_graph_free(h);
        return NULL;
    }
    return h;
}

/* ---- the report ---- */

typedef struct tally {
    int64_t params, state, accum, inputs, saved, largest_backward, gradients, workspace,
        peak;     /* state: the optimizer's; accum: the split step's gradient accumulators */
    int64_t live; /* the most bytes of computed values alive at one node: no plan needs less */
} tally;

/* Forward values: what the loss, metrics and predictions need. */
static bool *forward_values(const ir_graph *g)
{
    bool *fwd = ir_xcalloc((size_t)(g->n ? g->n : 1), sizeof *fwd);
    const ir_train *t = g->train;
    for (int i = 0; i < g->nout; i++) {
        const char *name = g->out[i].name;
        bool declared = !t || !t->loss || strcmp(name, t->loss) == 0 || (t->predict && strcmp(name, t->predict) == 0);
        for (int k = 0; t && k < t->nmetrics; k++)
            declared |= strcmp(name, t->metrics[k]) == 0;
        if (declared)
            fwd[g->out[i].id] = true;
    }
    for (int32_t i = g->n - 1; i >= 0; i--)
        if (fwd[i])
            for (int k = 0; k < g->node[i].nin; k++)
                fwd[g->node[i].in[k]] = true;
    return fwd;
}

static tally count(ir_graph *g, const ir_plan *p, int64_t batch, FILE *f)
{
    tally t = {0};
    bool *fwd = forward_values(g);
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        int64_t b = bytes_of(n, batch);
        if (n->op == IR_param)
            *(n->attr.role == AG_ROLE_STATE ? &t.state : n->attr.role == AG_ROLE_ACCUM ? &t.accum : &t.params) += b;
        else if (n->op == IR_input)
            t.inputs += b;
        if (!computed(n))
            continue;
        bool read_by_backward = false;
        for (int32_t j = i + 1; j < g->n && fwd[i]; j++)
            for (int k = 0; k < g->node[j].nin; k++)
                read_by_backward |= g->node[j].in[k] == i && !fwd[j];
        if (read_by_backward) {
            t.saved += b;
            if (f) {
                char type[96];
                ir_shape s = ir_bind_shape(&n->shape, batch);
                fprintf(f, "%s%s", t.saved == b ? "" : ", ", ir_type_str(n->dtype, &s, type, sizeof type));
            }
        } else if (!fwd[i]) {
            if (b > t.largest_backward)
                t.largest_backward = b;
            if (p->inplace[i] < 0)
                t.workspace += b;
        }
    }
    /* a weight gradient with a buffer of its own: a value of P's shape that P.next reads */
    for (int i = 0; i < g->nout; i++) {
        int32_t param = updated_param(g, g->out[i].name), u = g->out[i].id;
        if (param >= 0 && g->node[param].attr.role == AG_ROLE_STATE)
            continue; /* the optimizer's state reads the gradient too: counted at the parameter's update */
        for (int k = 0; param >= 0 && k < g->node[u].nin; k++) {
            const ir_node *v = &g->node[g->node[u].in[k]];
            if (computed(v) && !fwd[g->node[u].in[k]] && ir_shape_eq(&v->shape, &g->node[param].shape))
                t.gradients += bytes_of(v, batch);
        }
    }
    t.peak = t.params + t.state + t.accum + t.inputs + ir_plan_arena(g, p, batch);
    /* a true lower bound of the arena: at each node, what is alive then (values with a buffer,
     * as the plan has them; in-place updates take their parameter's bytes) */
    int32_t *birth = ir_xmalloc(sizeof *birth * (size_t)(g->n ? g->n : 1)),
            *last = ir_xmalloc(sizeof *last * (size_t)(g->n ? g->n : 1));
    ir_lifetimes(g, birth, last);
    for (int32_t at = 0; at < g->n; at++) {
        int64_t alive = 0;
        for (int32_t i = 0; i < g->n; i++)
            if (p->offset[i] >= 0 && birth[i] <= at && at <= last[i])
                alive += bytes_of(&g->node[i], batch);
        t.live = alive > t.live ? alive : t.live;
    }
    free(birth);
    free(last);
    free(fwd);
    return t;
}

static void print_mib(FILE *f, const char *what, int64_t bytes, const char *note)
{
    fprintf(f, "  %-20s %10lld B  %8.3f MiB%s%s\n", what, (long long)bytes, (double)bytes / (1 << 20),
            note ? "   " : "", note ? note : "");
}

/* The split step's figures (--accumulate, --clip-norm): its two halves share the arena as
 * the binary runs them, one at a time, and the parameters, the state and the accumulators
 * stay; false where the model has no split step (a dumped train step). */
static bool split_report(const ir_graph *model, int64_t batch, int64_t at, int64_t state, FILE *f)
{
    char err[512];
    ir_graph *acc = model->train->stage == IR_STAGE_STEP
                        ? NULL
                        : pass_run_pipeline(model, PASS_ACCUMULATE, NULL, NULL, NULL, err, sizeof err);
    ir_graph *apply = acc ? pass_run_pipeline(model, PASS_APPLY, NULL, NULL, NULL, err, sizeof err) : NULL;
    const ir_plan *pa = apply ? (acc->plan ? acc->plan : plan_memory(acc, batch)) : NULL,
                  *pp = apply ? (apply->plan ? apply->plan : plan_memory(apply, batch)) : NULL;
    if (pa && pp && ir_check_sizes(acc, at, NULL, NULL, 0)) {
        tally t = count(acc, pa, at, NULL);
        int64_t arena = ir_plan_arena(acc, pa, at), arena_apply = ir_plan_arena(apply, pp, at);
        arena = arena > arena_apply ? arena : arena_apply;
        fprintf(f, "split step (--accumulate, --clip-norm: aotgrad ir --accumulate, --apply):\n");
        print_mib(f, "gradient accumulators", t.accum, "(one a parameter, beside them)");
        print_mib(f, "input batch", t.inputs, NULL);
        print_mib(f, "arena", arena, "(the larger of its two halves', which run one at a time)");
        print_mib(f, "peak", t.params + state + t.accum + t.inputs + arena,
                  "= parameters + state + accumulators + input batch + arena");
    }
    ir_graph_free(acc);
    ir_graph_free(apply);
    return pa && pp;
}

/* The convolutions' workspace (runtime/conv.c's columns and weight-gradient parts), in the
 * kernels' scratch after the arena: the convolutions of one kernel (conv2's input and weight
 * gradients, siblings reading dy) each have their own, and kernels reuse it; so the
 * largest kernel's sum. 0 without a convolution. */
static int64_t conv_workspace(const ir_graph *g, bool body)
{
    int64_t most = 0, sum = 0;
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        int64_t k = n->op == IR_kernel && n->attr.output == 0 ? conv_workspace(g->kernels[n->attr.kernel], true)
                                                              : ir_conv_workspace_bytes(g, i);
        most = k > most ? k : most;
        sum += k;
    }
    return body ? sum : most;
}

bool pass_memory_report(const ir_graph *model, int64_t at, FILE *f, char *err, size_t len)
{
    int64_t batch = model->train && model->train->batch ? model->train->batch : 1;
    at = at > 0 ? at : batch;
    bool trains = ir_trains(model);
    ir_graph *step = trains ? pass_run(model, true, NULL, NULL, NULL, err, len) : NULL;
    ir_graph *eval = !trains || step ? pass_run(model, false, NULL, NULL, NULL, err, len) : NULL;
    const ir_plan *ps = step ? (step->plan ? step->plan : plan_memory(step, batch)) : NULL;
    const ir_plan *pe = eval ? (eval->plan ? eval->plan : plan_memory(eval, batch)) : NULL;
    bool ok = eval && pe && (!trains || ps) && ir_check_sizes(eval, at, NULL, NULL, 0) &&
              (!trains || ir_check_sizes(step, at, NULL, NULL, 0));
    if (eval && !ok)
        rt_fail(err, len, "memory: the values of %s do not fit at batch %lld (more than 2^%d bytes)", model->name,
                (long long)(pe && (!trains || ps) ? at : batch), IR_MAX_BYTES_LOG2);
    if (ok) {
        fprintf(f, "memory plan of %s at batch %lld", model->name, (long long)at);
        if (at != batch)
            fprintf(f, " (laid out at batch %lld; the plan holds for any)", (long long)batch);
        fprintf(f, " (aotgrad ir --after plan_memory shows the graph)\n");
        tally t = {0};
        if (trains) {
            fprintf(f, "train step:\n");
            fprintf(f, "  saved for backward: ");
            t = count(step, ps, at, f);
            fprintf(f, "%s\n", t.saved ? "" : "none");
            print_mib(f, "parameters", t.params, NULL);
            if (t.state)
                print_mib(f, "optimizer state", t.state, "(momentum buffers, moments, step counts)");
            print_mib(f, "input batch", t.inputs, NULL);
            print_mib(f, "gradients", t.gradients,
                      t.gradients ? NULL : "(each update rides on the kernel computing it)");
            print_mib(f, "saved for backward", t.saved, NULL);
            print_mib(f, "workspace", t.workspace, "(backward values not saved: dead after their kernels)");
            print_mib(f, "arena", ir_plan_arena(step, ps, at), "(all computed values, dead ones' bytes reused)");
            int64_t cols = conv_workspace(step, false);
            if (cols)
                print_mib(f, "conv workspace", cols,
                          "(the convolutions' planes or columns and parts, after the arena)");
            print_mib(f, "peak", t.peak,
                      t.state ? "= parameters + state + input batch + arena" : "= parameters + input batch + arena");
            int64_t bound = t.params + t.state + t.inputs + t.live;
            print_mib(f, "lower bound", bound,
                      t.state ? "= parameters + state + input + the most bytes alive at one node"
                              : "= parameters + input + the most bytes alive at one node");
            fprintf(f, "  peak / lower bound   %.3f\n", (double)t.peak / (double)bound);
            fprintf(f, "  (a generated header's sizes differ: it aligns each parameter to 64 bytes, and its arena\n"
                       "   holds the kernels' constants and scratch too: NAME_arena_bytes(n))\n");
        }
        fprintf(f, "inference (the eval graph%s):\n", trains ? "" : "; the model declares no training");
        tally e = count(eval, pe, at, NULL);
        print_mib(f, "parameters", e.params, NULL);
        print_mib(f, "input batch", e.inputs, NULL);
        print_mib(f, "arena", ir_plan_arena(eval, pe, at), NULL);
        if (conv_workspace(eval, false))
            print_mib(f, "conv workspace", conv_workspace(eval, false), "(after the arena)");
        print_mib(f, "peak", e.peak, NULL);
        if (trains)
            fprintf(f, "  training needs %.2fx the memory of inference\n", (double)t.peak / (double)e.peak);
        if (trains)
            split_report(model, batch, at, t.state, f);
    }
    ir_graph_free(step);
    ir_graph_free(eval);
    return ok;
}
