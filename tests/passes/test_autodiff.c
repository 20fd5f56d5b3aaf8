/* Reverse-mode autodiff against central differences, in the interpreter's f64 mode.
 *
 * The op table walk: every op either has gradient cases here (a small graph through it, a
 * loss sum(out * R) with R a fixed random tensor, every gradient compared with central
 * differences of the forward graph) or a row saying why no gradient flows through it, and
 * then its rule must be no_grad (or 0, for an op only passes after autodiff make). An op
 * with neither fails the walk, so a new op cannot skip its gradient. Elementwise ops get
 * their graphs from their arity, with the value domains their row gives (log and sqrt of
 * positive values, and so on); every other op has a builder here. Then the semantics the issue asks for, the error for missing rules, and the
 * optimizer's update. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aotgrad.h"
#include "bind.h"
#include "interp.h"
#include "ir.h"
#include "passes.h"

#define BATCH 3 /* what N is bound to */
#define SEED 11
#define STEP 5
#define TOL 1e-6

/* ---- running graphs in f64 ---- */

static bool run_f64(const ir_graph *g, ir_tensor *const *bound, ir_tensor *outs, char *err, size_t len)
{
    ir_run r = {.f64 = true, .batch = BATCH, .seed = SEED, .step = STEP, .training = true};
    return ir_interp(g, &r, (const ir_tensor *const *)bound, outs, err, len);
}

static void free_outs(const ir_graph *g, ir_tensor *outs)
{
    for (int k = 0; k < g->nout; k++)
        ir_tensor_free(&outs[k]);
    free(outs);
}

/* All outputs of g, or NULL (the test failed) */
static ir_tensor *run_all(const ir_graph *g, ir_tensor *const *bound, const char *what)
{
    ir_tensor *outs = calloc((size_t)g->nout, sizeof *outs);
    char err[512];
    if (!run_f64(g, bound, outs, err, sizeof err)) {
        cr_expect_fail("%s: the interpreter fails: %s", what, err);
        free(outs);
        return NULL;
    }
    return outs;
}

static const ir_tensor *out_named(const ir_graph *g, ir_tensor *outs, const char *name)
{
    int k = ir_find_output(g, name);
    return k < 0 ? NULL : &outs[k];
}

static double loss_of(const ir_graph *g, ir_tensor *const *bound)
{
    ir_tensor *outs = calloc((size_t)g->nout, sizeof *outs);
    char err[512];
    cr_assert(run_f64(g, bound, outs, err, sizeof err), "the forward graph fails: %s", err);
    double v = ir_tensor_get(&outs[ir_find_output(g, "loss")], 0);
    free_outs(g, outs);
    return v;
}

static bool is_source(const ir_node *n) { return n->op == IR_input || n->op == IR_param; }
static bool wants_grad(const ir_node *n)
{
    return n->dtype == AG_F32 && (n->op == IR_param || (n->op == IR_input && n->attr.grad));
}

/* Random bindings for g (f64 storage), with the value domains named by prefix: pos_ values
 * are |v| + 0.5, nz_ values are v moved 0.5 away from 0. */
static ir_tensor **bind(const ir_graph *g)
{
    ir_tensor **b = fe_bind_random(g, BATCH, SEED, true);
    cr_assert_not_null(b);
    for (int32_t i = 0; i < g->n; i++) {
        const ir_node *n = &g->node[i];
        if (!is_source(n) || n->dtype != AG_F32)
            continue;
        bool pos = strncmp(n->attr.name, "pos_", 4) == 0, nz = strncmp(n->attr.name, "nz_", 3) == 0;
        for (int64_t e = 0; (pos || nz) && e < ir_tensor_numel(b[i]); e++) {
            double v = ir_tensor_get(b[i], e);
            ir_tensor_set(b[i], e, pos ? fabs(v) + 0.5 : v < 0 ? v - 0.5 : v + 0.5);
        }
    }
    return b;
}

/* h's sources bound to g's tensors of the same name (h derived from g); others NULL */
static ir_tensor **bind_like(const ir_graph *h, const ir_graph *g, ir_tensor **gb)
{
    ir_tensor **b = calloc((size_t)(h->n ? h->n : 1), sizeof *b);
    for (int32_t i = 0; i < h->n; i++)
        if (is_source(&h->node[i])) {
            int32_t j = ir_find_source(g, h->node[i].op, h->node[i].attr.name);
            b[i] = j >= 0 ? gb[j] : NULL;
        }
    return b;
}

static ir_tensor *source_named(const ir_graph *g, ir_tensor **b, const char *name)
{
    int32_t j = ir_find_source(g, IR_input, name);
    if (j < 0)
        j = ir_find_source(g, IR_param, name);
    cr_assert(j >= 0, "no source %s", name);
    return b[j];
}

static ag_dims dims_of(const ir_shape *s)
{
    ag_dims d = {s->rank, {0}};
    for (int i = 0; i < s->rank; i++)
        d.d[i] = s->dim[i];
    return d;
}

static const ir_shape *shape_of(ag_val v) { return &v.g->node[v.id].shape; }

/* ---- the gradient check ---- */

typedef enum { EXPECT_FD, EXPECT_ZERO } expect;

/* Finishes g with loss = sum(out * R), differentiates it, and compares every gradient with
 * central differences (EXPECT_FD) or with zero (EXPECT_ZERO). */
static void check_grad(ag_graph *g, ag_val out, ir_op op, const char *what, expect e)
{
    if (out.id >= 0 && g->node[out.id].dtype == AG_F32) {
        ag_val R = ag_input_at(AG_HERE, g, "R", AG_F32, dims_of(shape_of(out)));
        ag_output(g, "loss", ag_sum(ag_mul(out, R)));
    }
    if (ag_graph_finish(g)) {
        cr_expect_fail("%s: the graph has errors: %s", what, ag_graph_error(g, 0));
        return;
    }
    bool used = false;
    for (int32_t i = 0; i < g->n; i++)
        used |= g->node[i].op == op;
    cr_expect(used, "%s: the case does not use %s", what, ir_ops[op].name);

    char err[1024];
    ir_graph *h = pass_autodiff(g, "loss", err, sizeof err);
    if (!h) {
        cr_expect_fail("%s: autodiff fails: %s", what, err);
        return;
    }
    if (!ir_verify(h, err, sizeof err)) {
        cr_expect_fail("%s: the gradient graph does not verify: %s", what, err);
        ir_graph_free(h);
        return;
    }
    char *text = ir_print_str(h); /* the gradient graph's dump parses back */
    ir_graph *back = ir_parse(text, strlen(text), "grad.ir", err, sizeof err);
    cr_expect_not_null(back, "%s: the gradient graph's text does not parse back: %s\n%s", what, err, text);
    ir_graph_free(back);
    free(text);

    ir_tensor **gb = bind(g), **hb = bind_like(h, g, gb);
    ir_tensor *houts = run_all(h, hb, what);
    double base = houts ? ir_tensor_get(out_named(h, houts, "loss"), 0) : 0;
    cr_expect(!houts || fabs(base - loss_of(g, gb)) <= 1e-12 * fmax(1, fabs(base)),
              "%s: the gradient graph's loss differs from the forward graph's", what);

    for (int32_t j = 0; houts && j < g->n; j++) {
        const ir_node *src = &g->node[j];
        if (!wants_grad(src))
            continue;
        char name[256];
        snprintf(name, sizeof name, "%s.grad", src->attr.name);
        const ir_tensor *ad = out_named(h, houts, name);
        if (!ad) {
            cr_expect_fail("%s: no output %s", what, name);
            continue;
        }
        ir_tensor *x = gb[j];
        cr_expect(ir_shape_eq(&ad->shape, &x->shape), "%s: %s has the wrong shape", what, name);
        int64_t n = ir_tensor_numel(x);
        if (e == EXPECT_ZERO) {
            for (int64_t k = 0; k < n; k++)
                cr_expect_eq(ir_tensor_get(ad, k), 0.0, "%s: %s[%lld] = %g, not 0", what, name, (long long)k,
                             ir_tensor_get(ad, k));
            continue;
        }
        double num = 0, den = 0;
        for (int64_t k = 0; k < n; k++) {
            double x0 = ir_tensor_get(x, k), step = 1e-6 * fmax(1, fabs(x0));
            double xp = x0 + step, xm = x0 - step;
            ir_tensor_set(x, k, xp);
            double lp = loss_of(g, gb);
            ir_tensor_set(x, k, xm);
            double lm = loss_of(g, gb);
            ir_tensor_set(x, k, x0);
            double fd = (lp - lm) / (xp - xm), a = ir_tensor_get(ad, k);
            num += (a - fd) * (a - fd);
            den += fd * fd;
        }
        double rel = sqrt(num) / fmax(sqrt(den), 1e-8);
        cr_expect(rel < TOL, "%s: %s differs from central differences by %g (relative, norm-wise)", what, name, rel);
    }
    if (houts)
        free_outs(h, houts);
    free(hb);
    fe_bind_free(g, gb);
    ir_graph_free(h);
}

/* ---- the cases ---- */

/* A deterministic stream per case. */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

typedef enum { ANY, POS, NZ, BOOL } domain;
static const char *const prefix[] = {"x_", "pos_", "nz_", "c_"};

static ag_val source(ag_graph *g, domain d, int k, bool param, ag_dims dims)
{
    char name[32];
    snprintf(name, sizeof name, "%s%c", prefix[d], 'a' + k);
    if (d == BOOL)
        return ag_input_at(AG_HERE, g, name, AG_BOOL, dims);
    if (param)
        return ag_param_at(AG_HERE, g, name, ag_normal(0, 1), dims);
    return ag_requires_grad(ag_input_at(AG_HERE, g, name, AG_F32, dims));
}

/* A random shape of rank lo..3 (dims 1..4, N first in a third of them), and an operand's
 * shape broadcast-compatible with it: leading axes dropped, some extents made 1. */
static ag_dims random_shape(uint64_t *s, int lo)
{
    ag_dims d = {lo + (int)(mix(s) % (uint64_t)(4 - lo)), {0}};
    for (int i = 0; i < d.n; i++)
        d.d[i] = 1 + (int64_t)(mix(s) % 4);
    if (d.n && mix(s) % 3 == 0)
        d.d[0] = AG_N;
    return d;
}

static ag_dims operand_shape(uint64_t *s, ag_dims full)
{
    int drop = (int)(mix(s) % (uint64_t)(full.n + 1));
    ag_dims d = {full.n - drop, {0}};
    for (int i = 0; i < d.n; i++)
        d.d[i] = mix(s) % 3 == 0 ? 1 : full.d[i + drop];
    return d;
}

#define D(...) ((ag_dims){AG_NARGS(__VA_ARGS__), {__VA_ARGS__}})

typedef struct row row;
typedef ag_val build_fn(ag_graph *g, const row *r, int variant, uint64_t *rnd);
struct row {
    ir_op op;
    build_fn *build;
    int variants;
    domain dom[3];   /* elementwise: the operands' value domains */
    const char *why; /* no gradient flows through the op, because */
    bool later;      /* made only by passes after autodiff: its rule is 0, never looked up */
};

static ag_val ew(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    const domain *dom = r->dom;
    ag_val x[3];
    switch (ir_ops[r->op].arity) {
    case 1: {
        static const ag_dims fixed[] = {{2, {AG_N, 3}}, {2, {2, 3}}};
        ag_dims d = v < 2 ? fixed[v] : random_shape(rnd, 0);
        x[0] = source(g, dom[0], 0, v == 1, d);
        break;
    }
    case 2: {
        static const ag_dims fixed[][2] = {
            {{2, {3, 1}}, {2, {1, 4}}}, {{2, {2, 3}}, {1, {3}}}, {{2, {AG_N, 4}}, {1, {4}}},
            {{2, {AG_N, 3}}, {0, {0}}}, {{0, {0}}, {2, {2, 3}}},
        };
        if (v == 3 || v == 4) { /* with a plain number: x op 1.5, 1.5 op x */
            int k = v - 3;
            x[k] = source(g, dom[k], k, false, fixed[v][k]);
            x[!k] = ag_imm_of(1.5);
        } else {
            ag_dims full = random_shape(rnd, 1);
            for (int k = 0; k < 2; k++)
                x[k] = source(g, dom[k], k, v == 2 && k == 1, v < 5 ? fixed[v][k] : operand_shape(rnd, full));
        }
        break;
    }
    default: {
        static const ag_dims fixed[][3] = {
            {{2, {3, 1}}, {2, {1, 4}}, {2, {3, 4}}},
            {{2, {AG_N, 3}}, {1, {3}}, {2, {AG_N, 1}}},
        };
        ag_dims full = random_shape(rnd, 1);
        for (int k = 0; k < 3; k++)
            x[k] = source(g, dom[k], k, v == 1 && k == 1, v < 2 ? fixed[v][k] : operand_shape(rnd, full));
        break;
    }
    }
    /* cast: ir_node_make leaves the result dtype f32, so this is the f32 -> f32 cast */
    return ag_ew_at(AG_HERE, r->op, ir_ops[r->op].arity, x);
}

static ag_val grad_input(ag_graph *g, const char *name, ag_dims d)
{
    return ag_requires_grad(ag_input_at(AG_HERE, g, name, AG_F32, d));
}

static ag_val reduce(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)rnd;
    static const struct {
        ag_dims x, axes;
        bool keep;
    } c[] = {
        {{2, {3, 4}}, {1, {1}}, false},         /* one axis */
        {{3, {2, 3, 4}}, {2, {0, 2}}, false},   /* several */
        {{2, {2, 3}}, {0, {0}}, false},         /* all */
        {{3, {2, 3, 4}}, {1, {1}}, true},       /* keepdims */
        {{2, {AG_N, 4}}, {1, {0}}, false},      /* the batch axis */
        {{3, {AG_N, 2, 3}}, {2, {0, 2}}, true}, /* the batch axis and another, keepdims */
        {{2, {AG_N, 3}}, {1, {-1}}, false},     /* not the batch axis, of a batch */
        {{2, {AG_N, 3}}, {0, {0}}, false},      /* all, with the batch */
    };
    ag_val x = grad_input(g, "x", c[v].x);
    return ag_reduce_at(AG_HERE, r->op, x, c[v].axes, c[v].keep);
}

static ag_val cumsum(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)rnd;
    static const struct {
        ag_dims x;
        int axis;
    } c[] = {{{2, {3, 4}}, 0}, {{2, {3, 4}}, 1}, {{3, {2, 3, 4}}, 2}, {{2, {AG_N, 3}}, 0}, {{2, {AG_N, 3}}, 1}};
    return ag_cumsum(grad_input(g, "x", c[v].x), c[v].axis);
}

static ag_val mm(ag_val a, ag_val b, bool ta, bool tb)
{
    ir_node n = ir_node_make(IR_matmul, 2, (int32_t[]){a.id, b.id});
    n.attr.ta = ta;
    n.attr.tb = tb;
    n.loc = AG_HERE;
    char err[256];
    int32_t id = ir_add(a.g, &n, err, sizeof err);
    cr_assert(id >= 0, "matmul: %s", err);
    return (ag_val){a.g, id, 0};
}

static ag_val matmul(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)rnd;
    static const struct {
        ag_dims a, b;
        bool ta, tb, param_b;
    } c[] = {
        {{2, {3, 4}}, {2, {4, 2}}, false, false, false},
        {{2, {4, 3}}, {2, {4, 2}}, true, false, false},
        {{2, {3, 4}}, {2, {2, 4}}, false, true, false},
        {{2, {4, 3}}, {2, {2, 4}}, true, true, false},
        {{2, {AG_N, 4}}, {2, {4, 2}}, false, false, true},    /* a batch times a weight */
        {{2, {3, 4}}, {1, {4}}, false, false, false},         /* mv */
        {{1, {4}}, {1, {4}}, false, false, false},            /* dot */
        {{1, {4}}, {2, {4, 2}}, false, false, false},         /* vector times matrix */
        {{2, {4, 3}}, {1, {4}}, true, false, false},          /* mv, the matrix transposed */
        {{1, {4}}, {2, {2, 4}}, false, true, false},          /* vector times matrix^T */
        {{2, {AG_N, 4}}, {1, {4}}, false, false, true},       /* batch mv */
        {{2, {AG_N, 3}}, {2, {AG_N, 2}}, true, false, false}, /* a^T b over the batch */
    };
    if (v == 12) { /* x^T x: one value in both operands */
        ag_val x = grad_input(g, "x", D(3, 2));
        return mm(x, x, true, false);
    }
    ag_val a = grad_input(g, "a", c[v].a);
    ag_val b = c[v].param_b ? ag_param_at(AG_HERE, g, "b", ag_normal(0, 1), c[v].b) : grad_input(g, "b", c[v].b);
    return mm(a, b, c[v].ta, c[v].tb);
}

static ag_val transpose(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)rnd;
    static const struct {
        ag_dims x, perm;
    } c[] = {
        {{2, {3, 4}}, {0, {0}}},          {{3, {2, 3, 4}}, {3, {2, 0, 1}}},       {{3, {AG_N, 2, 3}}, {3, {1, 2, 0}}},
        {{3, {2, 3, 4}}, {3, {0, 2, 1}}}, {{4, {2, 1, 3, 2}}, {4, {3, 1, 0, 2}}},
    };
    return ag_transpose_at(AG_HERE, grad_input(g, "x", c[v].x), c[v].perm);
}

static ag_val reshape(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)rnd;
    static const struct {
        ag_dims x, to;
    } c[] = {
        {{3, {2, 3, 4}}, {2, {6, 4}}}, {{2, {AG_N, 6}}, {3, {AG_N, 2, 3}}},
        {{2, {2, 3}}, {1, {6}}},       {{1, {6}}, {3, {3, 1, 2}}},
        {{1, {1}}, {0, {0}}},
    };
    return ag_reshape_at(AG_HERE, grad_input(g, "x", c[v].x), c[v].to);
}

static ag_val concat(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)rnd;
    switch (v) {
    case 0: return ag_concat(0, grad_input(g, "a", D(2, 3)), grad_input(g, "b", D(1, 3)));
    case 1: { /* a twice: its gradient gathers both slices */
        ag_val a = grad_input(g, "a", D(2, 3));
        return ag_concat(1, a, grad_input(g, "b", D(2, 1)), a);
    }
    case 2: return ag_concat(2, grad_input(g, "a", D(2, 3, 1)), grad_input(g, "b", D(2, 3, 2)));
    case 3: return ag_concat(0, grad_input(g, "a", D(2, 3)), ag_param(g, "b", ag_normal(0, 1), 1, 3));
    case 4: return ag_concat(0, grad_input(g, "a", D(2)), grad_input(g, "b", D(3)), grad_input(g, "c", D(1)));
    default: return ag_concat(1, grad_input(g, "a", D(AG_N, 2)), grad_input(g, "b", D(AG_N, 3)));
    }
}

static ag_val broadcast_to(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)rnd;
    static const struct {
        ag_dims x, to;
    } c[] = {
        {{1, {3}}, {2, {2, 3}}}, {{2, {3, 1}}, {2, {3, 4}}},    {{1, {4}}, {2, {AG_N, 4}}},
        {{0, {0}}, {2, {2, 3}}}, {{2, {1, 3}}, {3, {2, 2, 3}}}, {{2, {AG_N, 1}}, {3, {2, AG_N, 3}}},
    };
    return ag_broadcast_to_at(AG_HERE, grad_input(g, "x", c[v].x), c[v].to);
}

static ag_val slice(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)rnd;
    static const struct {
        ag_dims x;
        int axis, start, extent;
    } c[] = {
        {{2, {4, 3}}, 0, 1, 2},    {{2, {3, 5}}, 1, 0, 2},    {{2, {3, 5}}, 1, 3, 2},
        {{2, {AG_N, 5}}, 1, 1, 3}, {{3, {2, 3, 4}}, 2, 1, 2},
    };
    return ag_slice(grad_input(g, "x", c[v].x), c[v].axis, c[v].start, c[v].extent);
}

static ag_val row_op(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)rnd;
    static const struct {
        ag_dims x;
        int axis;
    } c[] = {{{2, {3, 4}}, 0}, {{2, {3, 4}}, 1}, {{2, {AG_N, 4}}, 1}, {{2, {AG_N, 4}}, 0}, {{3, {2, 3, 4}}, 1}};
    return ag_row_at(AG_HERE, r->op, grad_input(g, "x", c[v].x), D(c[v].axis));
}

/* the fused cross-entropy (fuse_softmax_ce makes it): labels 0..9 from the binding, so with
 * 3 classes some rows are out of range and give 0 */
static ag_val softmax_ce(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)rnd;
    static const struct {
        int64_t rows, classes;
    } c[] = {{AG_N, 10}, {4, 10}, {6, 3}};
    ag_val a = grad_input(g, "a", D(c[v].rows, c[v].classes)), y = ag_input(g, "y", AG_I32, c[v].rows);
    ir_node n = ir_node_make(IR_softmax_ce, 2, (int32_t[]){a.id, y.id});
    n.loc = AG_HERE;
    char err[256];
    int32_t id = ir_add(g, &n, err, sizeof err);
    cr_assert(id >= 0, "softmax_ce: %s", err);
    return (ag_val){g, id, 0};
}

/* training on (every run here), a fixed seed and step: the same mask in every run */
static ag_val dropout(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)rnd;
    if (v == 0)
        return ag_dropout(grad_input(g, "x", D(AG_N, 4)), 0.5);
    ag_val w = ag_param(g, "w", ag_normal(0, 1), 3, 4);
    return ag_dropout(ag_dropout(w, 0.25), 0.5); /* two sites, two masks */
}

/* conv2d over stride 1 and 2, padding 0 and 2, dilation 1 and 2, groups 1 and 2 (variant bits
 * 0-3; odd-sized input, non-square kernel); then with a bias, and with a fixed batch */
static ag_val conv(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)rnd;
    int stride = v & 1 ? 2 : 1, pad = v & 2 ? 2 : 0, dil = v & 4 ? 2 : 1, groups = v & 8 ? 2 : 1;
    ag_val x = grad_input(g, "x", D(v == 17 ? 2 : AG_N, 4, 7, 6));
    ag_val w = ag_param(g, "w", ag_normal(0, 1), 6, 4 / groups, 3, 2);
    if (v == 16)
        return ag_conv2d(x, w, .stride = stride, .pad = pad, .dilation = dil, .groups = groups,
                         .bias = ag_param(g, "b", ag_normal(0, 1), 6));
    return ag_conv2d(x, w, .stride_h = stride, .stride_w = 1, .pad = pad, .dilation_h = 1, .dilation_w = dil,
                     .groups = groups);
}

/* pooling: windows 2 and 3 (non-square too), strides 1, 2, padding 0, 1, dilation 1, 2 (max) */
static ag_val pool(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)rnd;
    /* kh, kw, stride, pad, dilation */
    static const int c[][5] = {{2, 2, 0, 0, 1}, {3, 3, 1, 1, 1}, {3, 2, 2, 1, 1},
                               {2, 3, 1, 0, 1}, {3, 3, 2, 1, 2}, {2, 2, 1, 1, 2}};
    int dil = r->op == IR_avg_pool2d ? 1 : c[v][4];
    ag_val x = grad_input(g, "x", D(AG_N, 2, 7, 6));
    return ag_pool2d_at(AG_HERE, r->op, x, c[v][0], c[v][1],
                        AG_WINDOW_OPTS(.stride = c[v][2], .pad = c[v][3], .dilation = dil));
}

/* ---- what no gradient flows through, checked to give zeros ---- */

static ag_val stop(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)v, (void)rnd;
    return ag_stop_gradient(ag_exp(grad_input(g, "x", D(AG_N, 3))));
}

static ag_val compare(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)v, (void)rnd;
    ag_val a = grad_input(g, "a", D(3, 1)), b = ag_param(g, "b", ag_normal(0, 1), 1, 4);
    return ag_cast(ag_ew_at(AG_HERE, r->op, 2, (ag_val[]){a, b}), AG_F32);
}

static ag_val argmax(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)v, (void)rnd;
    return ag_cast(ag_argmax(grad_input(g, "x", D(AG_N, 4)), 1), AG_F32);
}

static ag_val one_hot(ag_graph *g, const row *r, int v, uint64_t *rnd)
{
    (void)r, (void)v, (void)rnd;
    ag_val x = ag_param(g, "w", ag_normal(0, 2), 5);
    return ag_one_hot(ag_cast(ag_add(x, 2.0), AG_I32), 4); /* through an integer */
}

#define EW1 4 /* variants of a unary op: [N,3], a [2,3] param, two random shapes */
#define EW2 7 /* binary: [3,1]+[1,4], [2,3]+[3], [N,4]+param [4], x op 1.5, 1.5 op x, 2 random */
#define EW3 4 /* ternary: two fixed, two random */
#define NOGRAD(name, builder, reason) {IR_##name, builder, 1, {ANY}, reason, false}
#define GRAD(name, builder, variants, ...) {IR_##name, builder, variants, {__VA_ARGS__}, NULL, false}
#define LATER(name, reason) {IR_##name, NULL, 0, {ANY}, reason, true}

static const row rows[] = {
    NOGRAD(input, NULL, "a source"),
    NOGRAD(param, NULL, "a source"),
    NOGRAD(const, NULL, "a source"),
    GRAD(neg, ew, EW1, ANY),
    GRAD(exp, ew, EW1, ANY),
    GRAD(log, ew, EW1, POS),
    GRAD(abs, ew, EW1, NZ),
    GRAD(sqrt, ew, EW1, POS),
    GRAD(square, ew, EW1, ANY),
    GRAD(relu, ew, EW1, NZ),
    GRAD(sigmoid, ew, EW1, ANY),
    GRAD(tanh, ew, EW1, ANY),
    GRAD(cast, ew, EW1, ANY),
    NOGRAD(stop_gradient, stop, "stop_gradient: the flow is cut there"),
    GRAD(add, ew, EW2, ANY, ANY),
    GRAD(sub, ew, EW2, ANY, ANY),
    GRAD(mul, ew, EW2, ANY, ANY),
    GRAD(div, ew, EW2, ANY, NZ),
    GRAD(pow, ew, EW2, POS, ANY),
    GRAD(maximum, ew, EW2, ANY, ANY), /* random normal values: no ties */
    GRAD(minimum, ew, EW2, ANY, ANY),
    NOGRAD(lt, compare, "a bool result"),
    NOGRAD(le, compare, "a bool result"),
    NOGRAD(gt, compare, "a bool result"),
    NOGRAD(ge, compare, "a bool result"),
    NOGRAD(eq, compare, "a bool result"),
    NOGRAD(ne, compare, "a bool result"),
    GRAD(where, ew, EW3, BOOL, ANY, ANY),
    GRAD(sum, reduce, 8, ANY),
    GRAD(mean, reduce, 8, ANY),
    GRAD(max, reduce, 8, ANY),
    NOGRAD(argmax, argmax, "an i32 result"),
    GRAD(cumsum, cumsum, 5, ANY),
    GRAD(matmul, matmul, 13, ANY),
    GRAD(transpose, transpose, 5, ANY),
    GRAD(reshape, reshape, 5, ANY),
    GRAD(concat, concat, 6, ANY),
    GRAD(broadcast_to, broadcast_to, 6, ANY),
    GRAD(slice, slice, 5, ANY),
    GRAD(softmax, row_op, 5, ANY),
    GRAD(log_softmax, row_op, 5, ANY),
    GRAD(softmax_ce, softmax_ce, 3, ANY),
    LATER(softmax_ce_grad, "softmax_ce's gradient, made by autodiff itself"),
    LATER(kernel, "fused groups, made by the fuse pass after autodiff"),
    LATER(allreduce, "the sum over the ranks, made by the distribute pass after autodiff"),
    NOGRAD(one_hot, one_hot, "its operand is i32 labels"),
    GRAD(dropout, dropout, 2, ANY),
    GRAD(conv2d, conv, 18, ANY),
    LATER(conv2d_input_grad, "conv2d's gradient, made by autodiff itself"),
    LATER(conv2d_weight_grad, "conv2d's gradient, made by autodiff itself"),
    GRAD(max_pool2d, pool, 6, ANY),
    LATER(max_pool2d_grad, "max_pool2d's gradient, made by autodiff itself"),
    GRAD(avg_pool2d, pool, 6, ANY),
    LATER(avg_pool2d_grad, "avg_pool2d's gradient, made by autodiff itself"),
};

Test(autodiff, every_op_has_gradient_cases_or_a_reason_it_has_none)
{
    for (int op = 0; op < IR_OP_COUNT; op++) {
        const row *r = NULL;
        for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
            if (rows[i].op == (ir_op)op) {
                cr_assert_null(r, "op %s has two rows in tests/passes/test_autodiff.c", ir_ops[op].name);
                r = &rows[i];
            }
        cr_assert_not_null(r,
                           "op %s has neither gradient cases nor a reason it has none in tests/passes/test_autodiff.c",
                           ir_ops[op].name);
        if (r->later) {
            cr_assert_null(ad_rules[op], "%s is made only after autodiff (%s), but has a rule", ir_ops[op].name,
                           r->why);
            continue;
        }
        cr_assert_not_null(ad_rules[op], "op %s has no gradient rule (the op table's grad column)", ir_ops[op].name);
        if (r->why)
            cr_assert_eq(ad_rules[op], no_grad, "%s carries no gradient (%s), but its rule is not no_grad",
                         ir_ops[op].name, r->why);
        else
            cr_assert_neq(ad_rules[op], no_grad, "%s has gradient cases, but its rule is no_grad", ir_ops[op].name);
        for (int v = 0; r->build && v < r->variants; v++) {
            char what[64];
            snprintf(what, sizeof what, "%s, case %d", ir_ops[op].name, v);
            uint64_t rnd = 0x5EED0000u + (uint64_t)op * 64 + (uint64_t)v;
            ag_graph *g = ag_graph_new(ir_ops[op].name);
            ag_val out = r->build(g, r, v, &rnd);
            check_grad(g, out, (ir_op)op, what, r->why ? EXPECT_ZERO : EXPECT_FD);
            ag_graph_free(g);
        }
    }
}

/* ---- semantics ---- */

/* Differentiates g (finished) and runs it on random bindings, with the values the caller
 * may set first through source_named; returns the outputs of the gradient graph. */
typedef struct diffed {
    ir_graph *h;
    ir_tensor **gb, **hb;
    ir_tensor *outs;
} diffed;

static diffed differentiate(ag_graph *g, void (*setup)(const ir_graph *, ir_tensor **))
{
    cr_assert_eq(ag_graph_finish(g), 0, "%s", ag_graph_error(g, 0));
    char err[1024];
    diffed d = {pass_autodiff(g, "loss", err, sizeof err), NULL, NULL, NULL};
    cr_assert_not_null(d.h, "autodiff fails: %s", err);
    cr_assert(ir_verify(d.h, err, sizeof err), "%s", err);
    d.gb = bind(g);
    if (setup)
        setup(g, d.gb);
    d.hb = bind_like(d.h, g, d.gb);
    d.outs = run_all(d.h, d.hb, g->name);
    cr_assert_not_null(d.outs);
    return d;
}

static void diffed_free(ag_graph *g, diffed *d)
{
    free_outs(d->h, d->outs);
    free(d->hb);
    fe_bind_free(g, d->gb);
    ir_graph_free(d->h);
}

static const ir_tensor *grad_of(diffed *d, const char *name)
{
    const ir_tensor *t = out_named(d->h, d->outs, name);
    cr_assert_not_null(t, "no output %s", name);
    return t;
}

static void expect_values(const ir_tensor *t, const double *want, int64_t n, const char *what)
{
    cr_assert_eq(ir_tensor_numel(t), n, "%s: %lld elements, not %lld", what, (long long)ir_tensor_numel(t),
                 (long long)n);
    for (int64_t i = 0; i < n; i++)
        cr_expect(fabs(ir_tensor_get(t, i) - want[i]) <= 1e-12 * fmax(1, fabs(want[i])), "%s[%lld] = %.17g, not %.17g",
                  what, (long long)i, ir_tensor_get(t, i), want[i]);
}

Test(autodiff, broadcasting_is_undone)
{
    ag_graph *g = ag_graph_new("bias");
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 4), b = ag_param(g, "b", ag_normal(0, 1), 4);
    ag_val R = ag_input(g, "R", AG_F32, AG_N, 4);
    ag_output(g, "loss", ag_sum(ag_mul(ag_add(x, b), R)));
    diffed d = differentiate(g, NULL);
    const ir_tensor *gb = grad_of(&d, "b.grad"), *r = source_named(g, d.gb, "R");
    cr_assert_eq(gb->shape.rank, 1);
    cr_assert_eq(gb->shape.dim[0], 4);
    cr_expect_eq(d.h->node[d.h->out[ir_find_output(d.h, "b.grad")].id].shape.rank, 1);
    cr_expect_lt(ir_find_output(d.h, "x.grad"), 0, "an input not marked grad gets no gradient");
    double cols[4] = {0};
    for (int i = 0; i < BATCH; i++)
        for (int j = 0; j < 4; j++)
            cols[j] += ir_tensor_get(r, i * 4 + j);
    expect_values(gb, cols, 4, "b.grad, the column sums of R");
    diffed_free(g, &d);
    ag_graph_free(g);
}

Test(autodiff, a_value_used_twice_accumulates)
{
    ag_graph *g = ag_graph_new("twice");
    ag_val x = ag_requires_grad(ag_input(g, "x", AG_F32, 5));
    ag_output(g, "loss", ag_sum(ag_add(ag_mul(x, x), x))); /* y = x*x + x: dy/dx = 2x + 1 */
    diffed d = differentiate(g, NULL);
    const ir_tensor *xv = source_named(g, d.gb, "x");
    double want[5];
    for (int i = 0; i < 5; i++)
        want[i] = 2 * ir_tensor_get(xv, i) + 1;
    expect_values(grad_of(&d, "x.grad"), want, 5, "x.grad");
    diffed_free(g, &d);
    ag_graph_free(g);
}

Test(autodiff, stop_gradient_cuts_the_flow)
{
    /* d2l 2.5.3: u = y.detach(); z = u * x; z.sum().backward(): x.grad == u */
    ag_graph *g = ag_graph_new("detach");
    ag_val x = ag_requires_grad(ag_input(g, "x", AG_F32, 4));
    ag_val w = ag_param(g, "w", ag_normal(0, 1), 4);
    ag_val u = ag_detach(ag_mul(x, x));
    ag_output(g, "loss", ag_add(ag_sum(ag_mul(u, x)), ag_sum(ag_stop_gradient(w))));
    diffed d = differentiate(g, NULL);
    const ir_tensor *xv = source_named(g, d.gb, "x");
    double want[4], zero[4] = {0};
    for (int i = 0; i < 4; i++)
        want[i] = ir_tensor_get(xv, i) * ir_tensor_get(xv, i);
    expect_values(grad_of(&d, "x.grad"), want, 4, "x.grad");
    expect_values(grad_of(&d, "w.grad"), zero, 4, "w.grad, only through stop_gradient");
    diffed_free(g, &d);
    ag_graph_free(g);
}

static void arange(const ir_graph *g, ir_tensor **b)
{
    ir_tensor *x = source_named(g, b, "x");
    for (int i = 0; i < 4; i++)
        ir_tensor_set(x, i, i);
}

Test(autodiff, d2l_dot)
{
    /* d2l 2.5.1: x = arange(4.); y = 2 * dot(x, x); y.backward(): x.grad == 4x */
    ag_graph *g = ag_graph_new("dot");
    ag_val x = ag_requires_grad(ag_input(g, "x", AG_F32, 4));
    ag_output(g, "loss", ag_mul(2.0, ag_dot(x, x)));
    diffed d = differentiate(g, arange);
    expect_values(grad_of(&d, "x.grad"), (double[]){0, 4, 8, 12}, 4, "x.grad");
    diffed_free(g, &d);
    ag_graph_free(g);
}

Test(autodiff, a_non_scalar_loss_gets_the_gradient_of_its_sum)
{
    /* d2l 2.5.2: y = x * x; y.sum().backward(): 2x; and y = x.sum(): ones */
    ag_graph *g = ag_graph_new("vector_loss");
    ag_val x = ag_requires_grad(ag_input(g, "x", AG_F32, 4));
    ag_output(g, "loss", ag_mul(x, x));
    diffed d = differentiate(g, arange);
    expect_values(grad_of(&d, "x.grad"), (double[]){0, 2, 4, 6}, 4, "x.grad of loss = x * x");
    diffed_free(g, &d);
    ag_graph_free(g);

    g = ag_graph_new("batch_loss"); /* [N, 2] loss */
    ag_val w = ag_param(g, "w", ag_normal(0, 1), 2);
    ag_output(g, "loss", ag_mul(ag_input(g, "x", AG_F32, AG_N, 2), w));
    d = differentiate(g, NULL);
    const ir_tensor *xv = source_named(g, d.gb, "x");
    double cols[2] = {0};
    for (int i = 0; i < BATCH * 2; i++)
        cols[i % 2] += ir_tensor_get(xv, i);
    expect_values(grad_of(&d, "w.grad"), cols, 2, "w.grad of loss = x * w, [N, 2]");
    diffed_free(g, &d);
    ag_graph_free(g);
}

Test(autodiff, integers_and_argmax_carry_no_gradient)
{
    ag_graph *g = ag_graph_new("ints");
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val w = ag_param(g, "w", ag_normal(0, 1), 4), v = ag_param(g, "v", ag_normal(0, 1), 4);
    ag_val logits = ag_mul(ag_input(g, "x", AG_F32, AG_N, 4), w);
    ag_val hit = ag_cast(ag_eq(ag_argmax(logits, 1), y), AG_F32); /* w reaches it only through argmax */
    ag_val onehot = ag_one_hot(y, 4);                             /* v meets only an integer input */
    ag_output(g, "loss", ag_add(ag_sum(hit), ag_sum(ag_mul(onehot, v))));
    diffed d = differentiate(g, NULL);
    expect_values(grad_of(&d, "w.grad"), (double[]){0, 0, 0, 0}, 4, "w.grad, only through argmax");
    /* v.grad: the column counts of the labels */
    const ir_tensor *yv = source_named(g, d.gb, "y");
    double counts[4] = {0};
    for (int i = 0; i < BATCH; i++) {
        double label = ir_tensor_get(yv, i);
        if (label >= 0 && label < 4)
            counts[(int)label] += 1;
    }
    expect_values(grad_of(&d, "v.grad"), counts, 4, "v.grad");
    cr_expect_lt(ir_find_output(d.h, "y.grad"), 0, "an integer input gets no gradient");
    diffed_free(g, &d);
    ag_graph_free(g);

    g = ag_graph_new("int_grad"); /* an integer input cannot ask for one */
    ag_requires_grad(ag_input(g, "y", AG_I32, 3));
    cr_assert_eq(ag_graph_error_count(g), 1);
    cr_expect(strstr(ag_graph_error(g, 0), "requires_grad: only an f32 input can ask for a gradient"), "%s",
              ag_graph_error(g, 0));
    ag_graph_free(g);
}

Test(autodiff, an_unused_param_gets_zeros)
{
    ag_graph *g = ag_graph_new("unused");
    ag_val w = ag_param(g, "w", ag_normal(0, 1), 3);
    ag_param(g, "unused", ag_normal(0, 1), 2, 3);
    ag_val x = ag_requires_grad(ag_input(g, "x", AG_F32, AG_N, 3));
    ag_output(g, "loss", ag_sum(w));
    ag_output(g, "other", ag_sum(x)); /* x reaches another output, not the loss */
    diffed d = differentiate(g, NULL);
    expect_values(grad_of(&d, "w.grad"), (double[]){1, 1, 1}, 3, "w.grad");
    const ir_tensor *u = grad_of(&d, "unused.grad"), *xg = grad_of(&d, "x.grad");
    cr_expect(u->shape.rank == 2 && u->shape.dim[0] == 2 && u->shape.dim[1] == 3);
    expect_values(u, (double[6]){0}, 6, "unused.grad");
    expect_values(xg, (double[BATCH * 3]){0}, BATCH * 3, "x.grad");
    diffed_free(g, &d);
    ag_graph_free(g);
}

Test(autodiff, what_cannot_be_differentiated_is_an_error)
{
    char err[512];
    ag_graph *g = ag_graph_new("bad");
    ag_val w = ag_param(g, "w", ag_normal(0, 1), 3);
    ag_output(g, "count", ag_argmax(w, 0));
    ag_output(g, "loss", ag_sum(w));
    cr_expect_null(pass_autodiff(g, "nope", err, sizeof err));
    cr_expect_str_eq(err, "autodiff: no output named nope to differentiate");
    cr_expect_null(pass_autodiff(g, "count", err, sizeof err));
    cr_expect_str_eq(err, "autodiff: the loss count is i32, not f32");
    ir_graph *h = pass_autodiff(g, "loss", err, sizeof err);
    cr_assert_not_null(h, "%s", err);
    cr_expect(h->train == NULL);
    cr_expect(ir_find_output(h, "loss") >= 0 && ir_find_output(h, "count") >= 0, "the outputs are kept");
    ir_graph_free(h);
    ag_graph_free(g);
}

/* ---- missing rules ---- */

Test(autodiff, every_missing_rule_is_reported_at_its_line)
{
    ad_rule *rules[IR_OP_COUNT];
    memcpy(rules, ad_rules, sizeof rules);
    rules[IR_exp] = NULL;
    rules[IR_tanh] = NULL;

    ag_graph *g = ag_graph_new("missing");
    ag_val w = ag_param(g, "w", ag_normal(0, 1), 3);
    ag_val x = ag_input(g, "x", AG_F32, 3);
    int l_exp = __LINE__ + 1;
    ag_val a = ag_exp(w);
    int l_tanh = __LINE__ + 1;
    ag_val b = ag_tanh(w);
    ag_val off_path = ag_exp(ag_tanh(x)); /* no gradient flows there: no error */
    ag_output(g, "loss", ag_sum(ag_add(ag_add(a, b), off_path)));
    cr_assert_eq(ag_graph_finish(g), 0);

    char err[1024], want[1024];
    cr_assert_null(pass_autodiff_with(g, "loss", rules, err, sizeof err));
    /* in source order */
    snprintf(want, sizeof want,
             "%s:%d: error: autodiff: exp has no gradient rule\n%s:%d: error: autodiff: tanh has no gradient rule",
             __FILE__, l_exp, __FILE__, l_tanh);
    cr_expect_str_eq(err, want);

    /* the complete table succeeds on the same graph */
    ir_graph *h = pass_autodiff_with(g, "loss", ad_rules, err, sizeof err);
    cr_expect_not_null(h, "%s", err);
    ir_graph_free(h);
    ag_graph_free(g);
}

/* exp(tanh(w)) with both rules missing: the walk carries on past exp, so both are reported. */
Test(autodiff, missing_rules_in_a_chain_are_all_reported)
{
    ad_rule *rules[IR_OP_COUNT];
    memcpy(rules, ad_rules, sizeof rules);
    rules[IR_exp] = NULL;
    rules[IR_tanh] = NULL;
    ag_graph *g = ag_graph_new("chain");
    ag_val w = ag_param(g, "w", ag_normal(0, 1), 3);
    int l_tanh = __LINE__ + 1;
    ag_val t = ag_tanh(w);
    int l_exp = __LINE__ + 1;
    ag_val e = ag_exp(t);
    ag_output(g, "loss", ag_sum(e));
    char err[1024], want[1024];
    cr_assert_null(pass_autodiff_with(g, "loss", rules, err, sizeof err));
    snprintf(want, sizeof want,
             "%s:%d: error: autodiff: tanh has no gradient rule\n%s:%d: error: autodiff: exp has no gradient rule",
             __FILE__, l_tanh, __FILE__, l_exp);
    cr_expect_str_eq(err, want);
    ag_graph_free(g);
}

/* ---- the optimizer ---- */

Test(autodiff, the_optimizer_steps_each_param_by_its_group)
{
    ag_graph *g = ag_graph_new("sgd");
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 3);
    ag_val W = ag_param(g, "W", ag_normal(0, 1), 3, 2), b = ag_param(g, "b", ag_normal(0, 1), 2);
    ag_val V = ag_param(g, "V", ag_normal(0, 1), 2);
    ag_val out = ag_mul(ag_add(ag_matmul(x, W), b), V);
    ag_minimize(g, ag_mean(ag_square(out)), ag_sgd(.lr = 0.5));
    ag_group(g, "bias", 0.0, 2.0, b);
    ag_group(g, "scaled", 3.0, 0.25, V);
    cr_assert_eq(ag_graph_finish(g), 0, "%s", ag_graph_error(g, 0));

    char err[1024];
    ir_graph *h = pass_autodiff(g, "loss", err, sizeof err);
    cr_assert_not_null(h, "%s", err);
    cr_assert_eq(h->train->stage, IR_STAGE_GRADIENTS);
    ir_graph *s = pass_optimizer(h, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(s->train->stage, IR_STAGE_STEP);
    cr_assert(ir_verify(s, err, sizeof err), "%s", err);
    cr_expect_lt(ir_find_output(s, "W.grad"), 0, "P.next replaces P.grad");

    ir_tensor **gb = bind(g), **hb = bind_like(h, g, gb), **sb = bind_like(s, g, gb);
    ir_tensor *hout = run_all(h, hb, "gradients");
    cr_assert_not_null(hout);
    const double lr = 0.1, wd = 0.03;
    ir_shape scalar = {0, {0}};
    ir_tensor lr_t = ir_tensor_new(AG_F64, &scalar), wd_t = ir_tensor_new(AG_F64, &scalar);
    ir_tensor_set(&lr_t, 0, lr);
    ir_tensor_set(&wd_t, 0, wd);
    int32_t il = ir_find_source(s, IR_input, "lr"), iw = ir_find_source(s, IR_input, "wd");
    cr_assert(il >= 0 && iw >= 0, "the step takes lr and wd");
    cr_expect_eq(s->node[il].shape.rank, 0);
    sb[il] = &lr_t;
    sb[iw] = &wd_t;
    ir_tensor *sout = run_all(s, sb, "step");
    cr_assert_not_null(sout);

    static const struct {
        const char *name;
        double lr_scale, wd_scale;
    } params[] = {{"W", 1, 1}, {"b", 2, 0}, {"V", 0.25, 3}};
    for (int k = 0; k < 3; k++) {
        char gname[32], nname[32];
        snprintf(gname, sizeof gname, "%s.grad", params[k].name);
        snprintf(nname, sizeof nname, "%s.next", params[k].name);
        const ir_tensor *P = source_named(g, gb, params[k].name), *G = out_named(h, hout, gname),
                        *next = out_named(s, sout, nname);
        cr_assert(G && next, "%s: no %s or %s", params[k].name, gname, nname);
        cr_assert_eq(ir_tensor_numel(next), ir_tensor_numel(P));
        for (int64_t i = 0; i < ir_tensor_numel(P); i++) {
            /* one rounding a step, as written: no contraction into fma */
            volatile double p = ir_tensor_get(P, i), decay = wd * params[k].wd_scale, rate = lr * params[k].lr_scale;
            volatile double dp = decay * p, step = ir_tensor_get(G, i) + dp, move = rate * step;
            double want = p - move;
            cr_expect_eq(ir_tensor_get(next, i), want, "%s[%lld] = %.17g, not %.17g", nname, (long long)i,
                         ir_tensor_get(next, i), want);
            cr_expect_neq(want, p, "%s[%lld] did not move", nname, (long long)i);
        }
    }
    /* the loss stays an output of the step */
    cr_expect(ir_find_output(s, "loss") >= 0);
    free_outs(s, sout);
    free_outs(h, hout);
    ir_tensor_free(&lr_t);
    ir_tensor_free(&wd_t);
    free(sb);
    free(hb);
    fe_bind_free(g, gb);
    ir_graph_free(s);
    ir_graph_free(h);
    ag_graph_free(g);
}
