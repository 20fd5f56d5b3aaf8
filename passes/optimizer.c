/* The optimizer: the updates of the kind the model declares (ir_optimizer_kinds, PyTorch's
 * torch.optim formulas) appended to a graph with gradients, making the train step. With
 * g = P.grad, r = lr*lr_scale and c = wd*wd_scale (d = g + c*P, where the kind adds L2 decay
 * to the gradient):
 *
 *     sgd      P.next = P - r*d; with momentum mu: b = mu*b + d, P.next = P - r*b
 *              (nesterov: P - r*(d + mu*b))
 *     adam     t = t + 1, m = m + (1 - b1)*(d - m), v = b2*v + (1 - b2)*d*d,
 *              P.next = P - (r/(1 - b1^t)) * (m / (sqrt(v)/sqrt(1 - b2^t) + eps))
 *     adamw    adam on g, from P*(1 - r*c) (decoupled decay)
 *     rmsprop  s = alpha*s + (1 - alpha)*d*d, P.next = P - r*d/(sqrt(s) + eps)
 *     adagrad  s = s + d*d, P.next = P - r*d/(sqrt(s) + eps)
 *
 * The state (b, t, m, v, s) is parameters of role=state named P.momentum_buffer, P.step,
 * P.exp_avg, P.exp_avg_sq, P.square_avg, P.sum, zero at the start, each with its update as
 * the output STATE.next, as a parameter's. lr and wd become scalar inputs, so changing them
 * needs no recompile; a group's scales and the other hyperparameters are constants. A
 * scale of 1 or a decay of 0 builds no node at all. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "passes.h"

static const ir_group *group_of(const ir_train *t, const char *param)
{
    for (int i = 0; t && i < t->ngroups; i++)
        for (int k = 0; k < t->groups[i].nparams; k++)
            if (strcmp(t->groups[i].params[k], param) == 0)
                return &t->groups[i];
    return NULL;
}

int32_t pass_grad_param(const ir_graph *g, const char *out)
{
    size_t n = strlen(out);
    char param[256];
    if (n <= 5 || n - 5 >= sizeof param || strcmp(out + n - 5, ".grad") != 0)
        return -1;
    memcpy(param, out, n - 5);
    param[n - 5] = 0;
    return ir_find_source(g, IR_param, param);
}

ag_val pass_scalar_input(ir_graph *h, const char *name, ag_role role)
{
    ir_node n = ir_node_make(IR_input, 0, NULL);
    n.dtype = AG_F32;
    n.attr.name = ir_strdup(h, name);
    n.attr.role = role;
    return (ag_val){h, ir_intern(h, &n), 0};
}

/* One parameter's update: what it is built from */
typedef struct update {
    ir_graph *h;
    ag_loc at;
    ag_val P, grad, lr, wd;
    double lr_scale, wd_scale;
    const ir_train *t;
} update;

static ag_val ew(const update *u, ir_op op, ag_val a, ag_val b) { return ag_ew_at(u->at, op, 2, (ag_val[]){a, b}); }
static ag_val num(double v) { return ag_imm_of(v); }

ag_val pass_param_beside(ir_graph *h, int32_t p, const char *suffix, ag_role role, bool scalar)
{
    char name[300];
    snprintf(name, sizeof name, "%s.%s", h->node[p].attr.name, suffix);
    ir_node n = ir_node_make(IR_param, 0, NULL);
    n.dtype = AG_F32;
    n.shape = scalar ? (ir_shape){0, {0}} : h->node[p].shape;
    n.attr.name = ir_strdup(h, name);
    n.attr.init = (ag_init){AG_INIT_ZEROS, 0, 0};
    n.attr.role = role;
    n.loc = h->node[p].loc;
    return (ag_val){h, ir_intern(h, &n), 0};
}

/* The state STATE of the parameter: a parameter of role=state, P.STATE, zero at the start */
static ag_val state_of(const update *u, const char *state, bool scalar)
{
    return pass_param_beside(u->h, u->P.id, state, AG_ROLE_STATE, scalar);
}

/* P.next = v (state NULL), or P.STATE.next = v, kept */
static void set_next(const update *u, const char *param, const char *state, ag_val v, const char **keep, int *nkeep)
{
    char out[320]; /* a param name of at most 255, a state name of at most 16 */
    snprintf(out, sizeof out, state ? "%s.%s.next" : "%s.next", param, state);
    ir_add_output(u->h, out, v.id);
    keep[(*nkeep)++] = u->h->out[u->h->nout - 1].name;
}

/* 1 - beta^t for the step t (an f32 scalar); 1 when beta is 0. In f32, 1 - exp(t ln beta)
 * cancels: beta2 = 0.999 gave 1 - beta2 = 0.001 to 3e-5, and the compiled Adam step ended
 * 3.5e-3 from torch.optim's after 20 steps (torch computes it in double; its own float32 run
 * ends 2.9e-6 away). So it is -expm1(x), x = t ln beta, by Kahan's formula from exp and log:
 * expm1(x) = (u - 1) x / log(u) with u = exp(x) (x itself where u rounds to 1), accurate to
 * a few ulp however near 0; x is held above -80, where u is still normal and 1 - beta^t is
 * 1 in f32. */
static ag_val bias_correction(const update *u, double beta, ag_val t)
{
    if (beta == 0)
        return num(1);
    ag_val x = ew(u, IR_maximum, ew(u, IR_mul, t, num(log(beta))), num(-80));
    ag_val e = ag_ew_at(u->at, IR_exp, 1, &x);
    ag_val em1 = ew(u, IR_div, ew(u, IR_mul, ew(u, IR_sub, e, num(1)), x), ag_ew_at(u->at, IR_log, 1, &e));
    ag_val exact = ag_ew_at(u->at, IR_where, 3, (ag_val[]){ew(u, IR_eq, e, num(1)), x, em1});
    return ag_ew_at(u->at, IR_neg, 1, &exact);
}

static void update_param(const update *u, const char *param, const char **keep, int *nkeep)
{
    const double *hp = u->t->hp;
    const char *kind = u->t->optimizer;
    bool adamw = strcmp(kind, "adamw") == 0, adam = adamw || strcmp(kind, "adam") == 0;
    /* the scalars first (the rate, the decay, Adam's step and bias corrections): the loop over
     * the tensor then reads them, and runs as one piece (a scalar built between its tensor
     * values would split it in two loops, the first storing d) */
    ag_val decay = u->wd;
    if (u->wd_scale != 0 && u->wd_scale != 1)
        decay = ew(u, IR_mul, u->wd, num(u->wd_scale));
    ag_val rate = u->lr_scale == 1 ? u->lr : ew(u, IR_mul, u->lr, num(u->lr_scale));
    ag_val kept = num(1); /* adamw's decoupled decay: P*(1 - r*c) */
    if (u->wd_scale != 0 && adamw)
        kept = ew(u, IR_sub, num(1), ew(u, IR_mul, rate, decay));
    double b1 = hp[IR_HP_BETA1], b2 = hp[IR_HP_BETA2];
    ag_val t = {0}, t2 = {0}, bc2 = {0};
    if (adam) { /* torch's step_size = lr / bias_correction1, and bias_correction2's root */
        t = state_of(u, "step", true);
        t2 = ew(u, IR_add, t, num(1));
        bc2 = ag_ew_at(u->at, IR_sqrt, 1, (ag_val[]){bias_correction(u, b2, t2)});
        rate = ew(u, IR_div, rate, bias_correction(u, b1, t2));
    }
    ag_val P = u->P, d = u->grad;
    if (u->wd_scale != 0 && !adamw) /* L2: d = g + c*P */
        d = ew(u, IR_add, d, ew(u, IR_mul, decay, P));
    if (u->wd_scale != 0 && adamw)
        P = ew(u, IR_mul, P, kept);
    ag_val step; /* what the rate multiplies */
    if (strcmp(kind, "sgd") == 0) {
        step = d;
        double mu = hp[IR_HP_MOMENTUM];
        if (mu > 0) {
            ag_val b = state_of(u, "momentum_buffer", false);
            ag_val bn = ew(u, IR_add, ew(u, IR_mul, b, num(mu)), d);
            set_next(u, param, "momentum_buffer", bn, keep, nkeep);
            step = hp[IR_HP_NESTEROV] != 0 ? ew(u, IR_add, d, ew(u, IR_mul, bn, num(mu))) : bn;
        }
    } else if (adam) {
        ag_val m = state_of(u, "exp_avg", false), v = state_of(u, "exp_avg_sq", false);
        ag_val m2 = ew(u, IR_add, m, ew(u, IR_mul, ew(u, IR_sub, d, m), num(1 - b1)));
        ag_val v2 = ew(u, IR_add, ew(u, IR_mul, v, num(b2)), ew(u, IR_mul, ew(u, IR_mul, d, d), num(1 - b2)));
        ag_val denom =
            ew(u, IR_add, ew(u, IR_div, ag_ew_at(u->at, IR_sqrt, 1, (ag_val[]){v2}), bc2), num(hp[IR_HP_EPS]));
        step = ew(u, IR_div, m2, denom);
        set_next(u, param, "step", t2, keep, nkeep);
        set_next(u, param, "exp_avg", m2, keep, nkeep);
        set_next(u, param, "exp_avg_sq", v2, keep, nkeep);
    } else { /* rmsprop, adagrad: a sum of squares s, decaying by alpha or not */
        bool rms = strcmp(kind, "rmsprop") == 0;
        double alpha = hp[IR_HP_ALPHA];
        const char *state = rms ? "square_avg" : "sum";
        ag_val s = state_of(u, state, false);
        ag_val s2 =
            rms ? ew(u, IR_add, ew(u, IR_mul, s, num(alpha)), ew(u, IR_mul, ew(u, IR_mul, d, d), num(1 - alpha)))
                : ew(u, IR_add, s, ew(u, IR_mul, d, d));
        set_next(u, param, state, s2, keep, nkeep);
        step = ew(u, IR_div, d, ew(u, IR_add, ag_ew_at(u->at, IR_sqrt, 1, (ag_val[]){s2}), num(hp[IR_HP_EPS])));
    }
    set_next(u, param, NULL, ew(u, IR_sub, P, ew(u, IR_mul, rate, step)), keep, nkeep);
}

/* No parameter of the model has the name the optimizer gives another's state (W.step) */
static bool state_names_free(const ir_graph *g, char *err, size_t len)
{
    const ir_optimizer_kind *k = g->train ? ir_optimizer_find(g->train->optimizer) : NULL;
    bool plain_sgd = k && strcmp(k->name, "sgd") == 0 && !(g->train->hp[IR_HP_MOMENTUM] > 0); /* keeps none */
    for (int32_t i = 0; k && !plain_sgd && i < g->n; i++) {
        if (g->node[i].op != IR_param)
            continue;
        for (int s = 0; k->state[s]; s++) {
            char name[300];
            snprintf(name, sizeof name, "%s.%s", g->node[i].attr.name, k->state[s]);
            if (ir_find_source(g, IR_param, name) >= 0)
                return rt_fail(err, len, "optimizer: parameter %s has the name %s gives %s's state; rename it", name,
                               k->name, g->node[i].attr.name);
        }
    }
    return true;
}

ir_graph *pass_optimizer(const ir_graph *g, char *err, size_t len)
{
    if (g->train && g->train->stage != IR_STAGE_GRADIENTS) {
        rt_fail(err, len, "optimizer: needs a graph with gradients, got stage %s",
                g->train->stage == IR_STAGE_MODEL ? "model" : "step");
        return NULL;
    }
    for (const char *const *s = (const char *const[]){"lr", "wd", NULL}; *s; s++) /* the names it shows */
        if (ir_find_source(g, IR_input, *s) >= 0 || ir_find_source(g, IR_param, *s) >= 0) {
            rt_fail(err, len, "optimizer: the name %s is the optimizer's; rename the model's %s", *s, *s);
            return NULL;
        }
    if (ir_find_role(g, AG_ROLE_LR) >= 0 || ir_find_role(g, AG_ROLE_WD) >= 0) {
        rt_fail(err, len, "optimizer: an input of the model has the optimizer's role=lr or role=wd");
        return NULL;
    }
    if (!state_names_free(g, err, len))
        return NULL;
    int32_t *map = ir_xmalloc(sizeof *map * (size_t)(g->n ? g->n : 1));
    ir_graph *h = ir_graph_new(g->name);
    for (int32_t i = 0; i < g->n; i++)
        map[i] = ir_copy_node(h, g, i, map);
    ag_val lr = pass_scalar_input(h, "lr", AG_ROLE_LR), wd = pass_scalar_input(h, "wd", AG_ROLE_WD);

    const char **keep = ir_xmalloc(sizeof *keep * (size_t)(4 * g->nout + 1)); /* a param's update and state */
    int nkeep = 0;
    for (int k = 0; k < g->nout; k++) {
        const char *name = g->out[k].name;
        int32_t p = pass_grad_param(h, name);
        if (p < 0) { /* loss, metrics, predictions, an input's gradient: kept as they are */
            ir_add_output(h, name, map[g->out[k].id]);
            keep[nkeep++] = name;
            continue;
        }
        const char *param = h->node[p].attr.name;
        const ir_group *grp = group_of(g->train, param);
        double lr_scale = grp ? grp->lr_scale : 1, wd_scale = grp ? grp->wd_scale : 1;
        update u = {h, h->node[p].loc, {h, p, 0}, {h, map[g->out[k].id], 0}, lr, wd, lr_scale, wd_scale, g->train};
        update_param(&u, param, keep, &nkeep);
    }
    h->next_site = g->next_site;
    ir_copy_train(h, g);
    if (h->train)
        h->train->stage = IR_STAGE_STEP;
    ir_graph *r = NULL;
    if (h->nerrors)
        rt_fail(err, len, "optimizer: internal error: %s", h->errors[0]);
    else
        r = ir_prune(h, keep, nkeep); /* the gradients now feed the updates; nothing else dangles */
    free(keep);
    free(map);
    ir_graph_free(h);
    return r;
}
