#include "recipe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aotgrad.h"
#include "fail.h"

enum { HEADER_LINES = 5 }; /* fz_write_c's lines before the first step */

int fz_step_line(int k) { return HEADER_LINES + 1 + k; }

static ag_val arg(const ag_val *v, const fz_step *s, int i)
{
    return s->arg[i].step < 0 ? ag_imm_of(s->arg[i].imm) : v[s->arg[i].step];
}

static ag_dims no_dims(void) { return (ag_dims){0, {0}}; }

static ag_val build_step(ag_graph *g, const fz_step *s, const ag_val *v, ag_loc at)
{
    ag_val a = s->nargs > 0 ? arg(v, s, 0) : (ag_val){0}, b = s->nargs > 1 ? arg(v, s, 1) : (ag_val){0};
    switch (s->kind) {
    case FZ_INPUT: return ag_input_at(at, g, s->name, s->dtype, s->dims);
    case FZ_PARAM: return ag_param_at(at, g, s->name, s->init, s->dims);
    case FZ_CONST: return ag_const_at(at, g, s->dtype, s->value);
    case FZ_FULL: return ag_broadcast_to_at(at, ag_const_at(at, g, AG_F32, s->value), s->dims);
    case FZ_EW: {
        ag_val ops[3];
        for (int i = 0; i < s->nargs; i++)
            ops[i] = arg(v, s, i);
        return ag_ew_at(at, s->op, s->nargs, ops);
    }
    case FZ_CAST: return ag_cast_at(at, a, s->dtype);
    case FZ_REDUCE: return ag_reduce_at(at, s->op, a, s->dims, s->keepdims);
    case FZ_ARGMAX: return ag_axis_at(at, IR_argmax, a, s->axis);
    case FZ_CUMSUM: return ag_axis_at(at, IR_cumsum, a, s->axis);
    case FZ_MATMUL: {
        static const char *const forms[] = {"matmul", "mm", "mv", "dot"};
        return ag_matmul_at(at, forms[s->form], a, b);
    }
    case FZ_TRANSPOSE: return ag_transpose_at(at, a, s->dims);
    case FZ_RESHAPE: return ag_reshape_at(at, a, s->dims);
    case FZ_FLATTEN: return ag_flatten_at(at, a);
    case FZ_BROADCAST: return ag_broadcast_to_at(at, a, s->dims);
    case FZ_SLICE: return ag_slice_at(at, a, s->axis, s->start, s->extent);
    case FZ_CONCAT: {
        ag_val parts[FZ_MAX_ARGS];
        for (int i = 0; i < s->nargs; i++)
            parts[i] = arg(v, s, i);
        return ag_concat_at(at, s->axis, s->nargs, parts);
    }
    case FZ_SOFTMAX: return ag_row_at(at, s->op, a, s->axis_given ? (ag_dims){1, {s->axis}} : no_dims());
    case FZ_ONE_HOT: return ag_one_hot_at(at, a, s->classes);
    case FZ_CROSS_ENTROPY: return ag_cross_entropy_at(at, a, b);
    case FZ_SQUARED_LOSS: return ag_squared_loss_at(at, a, b);
    case FZ_MSE: /* the macro's expansion */
        return ag_reduce_at(at, IR_mean,
                            ag_ew_at(at, IR_square, 1, (ag_val[]){ag_ew_at(at, IR_sub, 2, (ag_val[]){a, b})}),
                            no_dims(), false);
    case FZ_DROPOUT: return ag_dropout_at(at, a, s->value);
    case FZ_NORM:
        if (s->form == 0)
            return ag_reduce_at(at, IR_sum, ag_ew_at(at, IR_abs, 1, &a), no_dims(), false);
        return ag_ew_at(at, IR_sqrt, 1,
                        (ag_val[]){ag_reduce_at(at, IR_sum, ag_ew_at(at, IR_square, 1, &a), no_dims(), false)});
    case FZ_REQUIRES_GRAD: return ag_requires_grad_at(at, a);
    case FZ_CORRECT: {
        ag_val eq = ag_ew_at(at, IR_eq, 2, (ag_val[]){ag_axis_at(at, IR_argmax, a, -1), b});
        return ag_reduce_at(at, IR_sum, ag_cast_at(at, eq, AG_F32), no_dims(), false);
    }
    case FZ_CONV2D:
    case FZ_POOL2D: {
        ag_window_opts o = {._ = 0,
                            .groups = s->groups,
                            .stride_h = s->stride[0],
                            .stride_w = s->stride[1],
                            .pad_h = s->pad[0],
                            .pad_w = s->pad[1],
                            .dilation_h = s->dilation[0],
                            .dilation_w = s->dilation[1]};
        if (s->kind == FZ_POOL2D)
            return ag_pool2d_at(at, s->op, a, s->kernel, s->kernel, o);
        if (s->nargs > 2)
            o.bias = arg(v, s, 2);
        return ag_conv2d_at(at, a, b, o);
    }
    case FZ_KIND_COUNT: break;
    }
    return (ag_val){g, AG_POISON, 0};
}

ag_val fz_build_step(fz_builder *b, const fz_model *m, int k)
{
    b->v[k] = build_step(b->g, &m->step[k], b->v, (ag_loc){b->file, fz_step_line(k)});
    return b->v[k];
}

ir_graph *fz_build(const fz_model *m, const char *file, char *err, size_t len)
{
    char fname[64];
    if (!file) {
        snprintf(fname, sizeof fname, "%s.c", m->name);
        file = fname;
    }
    ag_graph *g = ag_graph_new(m->name);
    ag_val *v = calloc((size_t)(m->n ? m->n : 1), sizeof *v);
    if (!g || !v) {
        free(v);
        ag_graph_free(g);
        rt_fail(err, len, "out of memory");
        return NULL;
    }
    for (int k = 0; k < m->n; k++)
        v[k] = build_step(g, &m->step[k], v, (ag_loc){file, fz_step_line(k)});
    int line = fz_step_line(m->n);
    for (int i = 0; i < m->nout; i++)
        ag_output_at((ag_loc){file, line++}, g, m->out[i].name, v[m->out[i].step]);
    for (int i = 0; i < m->ngroups; i++) {
        const fz_group *gr = &m->group[i];
        ag_val ps[FZ_MAX_ARGS];
        for (int k = 0; k < gr->n; k++)
            ps[k] = v[gr->param[k]];
        ag_group_at((ag_loc){file, line++}, g, gr->name, gr->wd_scale, gr->lr_scale, gr->n, ps);
    }
    if (m->option)
        ag_option_at((ag_loc){file, line++}, g, "variant", "a", "a|b");
    ag_fit fit = {.batch = m->batch, .epochs = 1};
    if (m->metric >= 0) {
        fit.metric = v[m->metric];
        fit.metric_name = m->metric_name[0] ? m->metric_name : NULL;
    }
    if (m->predict >= 0)
        fit.predict = v[m->predict];
    if (m->loss >= 0) /* else a forward computation */
        ag_minimize_at((ag_loc){file, line}, g, v[m->loss], m->opt, fit);
    free(v);
    if (ag_graph_finish(g) > 0) {
        size_t at = 0;
        err[0] = 0;
        for (int i = 0; i < ag_graph_error_count(g) && at + 1 < len; i++)
            at += (size_t)snprintf(err + at, len - at, "%s%s", i ? "\n" : "", ag_graph_error(g, i));
        ag_graph_free(g);
        return NULL;
    }
    return g;
}

/* ---- the C file ---- */

/* the shortest of %.15g..%.17g that reads back as x */
static void put_num(FILE *f, double x)
{
    if (x == 0 && signbit(x)) { /* "-0" would be C's integer 0, which converts to +0 */
        fputs("-0.0", f);
        return;
    }
    char buf[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    fputs(buf, f);
}

static void put_arg(FILE *f, const fz_step *s, int i)
{
    if (s->arg[i].step < 0)
        put_num(f, s->arg[i].imm);
    else
        fprintf(f, "v%d", s->arg[i].step);
}

static void put_args(FILE *f, const fz_step *s, int from)
{
    for (int i = from; i < s->nargs; i++) {
        fputs(i > from ? ", " : "", f);
        put_arg(f, s, i);
    }
}

static void put_dims(FILE *f, const ag_dims *d, bool leading_comma)
{
    for (int i = 0; i < d->n; i++) {
        fputs(i || leading_comma ? ", " : "", f);
        if (d->d[i] == AG_N)
            fputs("AG_N", f);
        else
            fprintf(f, "%lld", (long long)d->d[i]);
    }
}

static const char *dtype_macro(ag_dtype t)
{
    static const char *const names[] = {"AG_F32", "AG_I32", "AG_U8", "AG_BOOL"};
    return t < 4 ? names[t] : "AG_F32";
}

static void put_init(FILE *f, ag_init in)
{
    switch (in.kind) {
    case AG_INIT_ZEROS: fputs("ag_zeros()", f); break;
    case AG_INIT_CONSTANT: fputs("ag_constant(", f), put_num(f, in.a), fputs(")", f); break;
    case AG_INIT_NORMAL:
        fputs("ag_normal(", f), put_num(f, in.a), fputs(", ", f), put_num(f, in.b), fputs(")", f);
        break;
    case AG_INIT_UNIFORM:
        fputs("ag_uniform(", f), put_num(f, in.a), fputs(", ", f), put_num(f, in.b), fputs(")", f);
        break;
    case AG_INIT_XAVIER: fputs("ag_xavier()", f); break;
    }
}

static void put_step(FILE *f, const fz_step *s)
{
    switch (s->kind) {
    case FZ_INPUT:
        fprintf(f, "ag_input(g, \"%s\", %s", s->name, dtype_macro(s->dtype));
        put_dims(f, &s->dims, true);
        fputs(")", f);
        break;
    case FZ_PARAM:
        fprintf(f, "ag_param(g, \"%s\", ", s->name);
        put_init(f, s->init);
        put_dims(f, &s->dims, true);
        fputs(")", f);
        break;
    case FZ_CONST:
        fputs(s->dtype == AG_I32 ? "ag_const_i32(g, " : "ag_const(g, ", f), put_num(f, s->value), fputs(")", f);
        break;
    case FZ_FULL:
        fputs("ag_full(g, ", f), put_num(f, s->value);
        put_dims(f, &s->dims, true);
        fputs(")", f);
        break;
    case FZ_EW:
        if (s->op == IR_mul && s->form == 1)
            fputs("ag_scale(", f);
        else if (s->op == IR_stop_gradient && s->form == 1)
            fputs("ag_detach(", f);
        else
            fprintf(f, "ag_%s(", ir_ops[s->op].name);
        put_args(f, s, 0);
        fputs(")", f);
        break;
    case FZ_CAST: fputs("ag_cast(", f), put_arg(f, s, 0), fprintf(f, ", %s)", dtype_macro(s->dtype)); break;
    case FZ_REDUCE:
        fprintf(f, "ag_%s%s(", ir_ops[s->op].name, s->keepdims ? "_keepdims" : "");
        put_arg(f, s, 0);
        put_dims(f, &s->dims, true);
        fputs(")", f);
        break;
    case FZ_ARGMAX:
    case FZ_CUMSUM:
        fprintf(f, "ag_%s(", s->kind == FZ_ARGMAX ? "argmax" : "cumsum"), put_arg(f, s, 0),
            fprintf(f, ", %d)", s->axis);
        break;
    case FZ_MATMUL: {
        static const char *const forms[] = {"matmul", "mm", "mv", "dot"};
        fprintf(f, "ag_%s(", forms[s->form]), put_args(f, s, 0), fputs(")", f);
        break;
    }
    case FZ_TRANSPOSE: fputs("ag_transpose(", f), put_arg(f, s, 0), put_dims(f, &s->dims, true), fputs(")", f); break;
    case FZ_RESHAPE:
    case FZ_BROADCAST:
        fputs(s->kind == FZ_RESHAPE ? "ag_reshape(" : "ag_broadcast_to(", f), put_arg(f, s, 0);
        put_dims(f, &s->dims, true);
        fputs(")", f);
        break;
    case FZ_FLATTEN: fputs("ag_flatten(", f), put_arg(f, s, 0), fputs(")", f); break;
    case FZ_SLICE:
        fputs("ag_slice(", f), put_arg(f, s, 0);
        fprintf(f, ", %d, %lld, %lld)", s->axis, (long long)s->start, (long long)s->extent);
        break;
    case FZ_CONCAT: fprintf(f, "ag_concat(%d, ", s->axis), put_args(f, s, 0), fputs(")", f); break;
    case FZ_SOFTMAX:
        fprintf(f, "ag_%s(", ir_ops[s->op].name), put_arg(f, s, 0);
        if (s->axis_given)
            fprintf(f, ", %d", s->axis);
        fputs(")", f);
        break;
    case FZ_ONE_HOT: fputs("ag_one_hot(", f), put_arg(f, s, 0), fprintf(f, ", %d)", s->classes); break;
    case FZ_CROSS_ENTROPY:
    case FZ_SQUARED_LOSS:
    case FZ_MSE:
    case FZ_CORRECT: {
        const char *name = s->kind == FZ_CROSS_ENTROPY  ? "cross_entropy"
                           : s->kind == FZ_SQUARED_LOSS ? "squared_loss"
                           : s->kind == FZ_MSE          ? "mse"
                                                        : "correct";
        fprintf(f, "ag_%s(", name), put_args(f, s, 0), fputs(")", f);
        break;
    }
    case FZ_DROPOUT:
        fputs("ag_dropout(", f), put_arg(f, s, 0), fputs(", ", f), put_num(f, s->value), fputs(")", f);
        break;
    case FZ_NORM: {
        static const char *const forms[] = {"norm_l1", "norm_l2", "norm_fro", "norm"};
        fprintf(f, "ag_%s(", forms[s->form]), put_arg(f, s, 0), fputs(")", f);
        break;
    }
    case FZ_REQUIRES_GRAD: fputs("ag_requires_grad(", f), put_arg(f, s, 0), fputs(")", f); break;
    case FZ_CONV2D:
    case FZ_POOL2D:
        if (s->kind == FZ_CONV2D)
            fputs("ag_conv2d(", f), put_arg(f, s, 0), fputs(", ", f), put_arg(f, s, 1);
        else
            fprintf(f, "ag_%s(", ir_ops[s->op].name), put_arg(f, s, 0), fprintf(f, ", %d", s->kernel);
        fprintf(f, ", .stride_h = %d, .stride_w = %d, .pad_h = %d, .pad_w = %d, .dilation_h = %d, .dilation_w = %d",
                s->stride[0], s->stride[1], s->pad[0], s->pad[1], s->dilation[0], s->dilation[1]);
        if (s->kind == FZ_CONV2D)
            fprintf(f, ", .groups = %d", s->groups);
        if (s->nargs > 2)
            fputs(", .bias = ", f), put_arg(f, s, 2);
        fputs(")", f);
        break;
    case FZ_KIND_COUNT: break;
    }
}

void fz_write_c(const fz_model *m, FILE *f)
{
    /* HEADER_LINES lines, then one line per step */
    fprintf(f, "#include <aotgrad.h>\n\n/* fuzz_models: seed %llu */\nvoid %s(ag_graph *g)\n{\n",
            (unsigned long long)m->seed, m->name);
    for (int k = 0; k < m->n; k++) {
        fprintf(f, "    ag_val v%d = ", k);
        put_step(f, &m->step[k]);
        fputs(";\n", f);
    }
    for (int i = 0; i < m->nout; i++)
        fprintf(f, "    ag_output(g, \"%s\", v%d);\n", m->out[i].name, m->out[i].step);
    for (int i = 0; i < m->ngroups; i++) {
        const fz_group *gr = &m->group[i];
        fprintf(f, "    ag_group(g, \"%s\", ", gr->name);
        put_num(f, gr->wd_scale), fputs(", ", f), put_num(f, gr->lr_scale);
        for (int k = 0; k < gr->n; k++)
            fprintf(f, ", v%d", gr->param[k]);
        fputs(");\n", f);
    }
    if (m->option)
        fputs("    (void)ag_option(g, \"variant\", \"a\", \"a|b\");\n", f);
    if (m->loss < 0) { /* a forward computation */
        fputs("}\n", f);
        return;
    }
    fprintf(f, "    ag_minimize(g, v%d, ag_%s(.lr = ", m->loss, m->opt.kind);
    put_num(f, m->opt.lr), fputs(", .wd = ", f), put_num(f, m->opt.wd);
    const double hp[] = {m->opt.momentum, m->opt.nesterov, m->opt.beta1, m->opt.beta2, m->opt.eps, m->opt.alpha};
    for (int h = 0; h < IR_HP_COUNT; h++) /* the kind's others, as ag_minimize_at took them; sgd's 0s left out */
        if ((ir_optimizer_find(m->opt.kind)->keys >> h & 1) && !(strcmp(m->opt.kind, "sgd") == 0 && hp[h] == 0))
            fprintf(f, ", .%s = ", ir_hp_names[h]), put_num(f, hp[h]);
    fputs(")", f);
    if (m->metric >= 0) {
        fprintf(f, ", .metric = v%d", m->metric);
        if (m->metric_name[0])
            fprintf(f, ", .metric_name = \"%s\"", m->metric_name);
    }
    if (m->predict >= 0)
        fprintf(f, ", .predict = v%d", m->predict);
    fprintf(f, ", .batch = %lld, .epochs = 1);\n}\n", (long long)m->batch);
}

/* ---- editing ---- */

static void mark_used(const fz_model *m, bool *used)
{
    memset(used, 0, sizeof(bool) * (size_t)m->n);
    for (int i = 0; i < m->nout; i++)
        used[m->out[i].step] = true;
    for (int i = 0; i < m->ngroups; i++)
        for (int k = 0; k < m->group[i].n; k++)
            used[m->group[i].param[k]] = true;
    if (m->loss >= 0)
        used[m->loss] = true;
    if (m->metric >= 0)
        used[m->metric] = true;
    if (m->predict >= 0)
        used[m->predict] = true;
    for (int k = m->n - 1; k >= 0; k--)
        if (used[k])
            for (int i = 0; i < m->step[k].nargs; i++)
                if (m->step[k].arg[i].step >= 0)
                    used[m->step[k].arg[i].step] = true;
    /* requires_grad marks its input: it stays while the input does */
    for (int k = 0; k < m->n; k++)
        if (m->step[k].kind == FZ_REQUIRES_GRAD && used[m->step[k].arg[0].step])
            used[k] = true;
}

bool fz_used(const fz_model *m, int k)
{
    bool used[FZ_MAX_STEPS];
    mark_used(m, used);
    return used[k];
}

void fz_drop_source(fz_model *m, int k)
{
    for (int j = k; j + 1 < m->n; j++) {
        m->step[j] = m->step[j + 1];
        for (int i = 0; i < m->step[j].nargs; i++)
            if (m->step[j].arg[i].step > k)
                m->step[j].arg[i].step--;
    }
    m->n--;
    for (int i = 0; i < m->nout; i++)
        m->out[i].step -= m->out[i].step > k;
    for (int i = 0; i < m->ngroups; i++)
        for (int j = 0; j < m->group[i].n; j++)
            m->group[i].param[j] -= m->group[i].param[j] > k;
    m->loss -= m->loss > k;
    m->metric -= m->metric > k;
    m->predict -= m->predict > k;
}

void fz_prune(fz_model *m)
{
    bool used[FZ_MAX_STEPS];
    int map[FZ_MAX_STEPS], n = 0;
    mark_used(m, used);
    for (int k = 0; k < m->n; k++) /* a source stays unread: it is part of the model's interface */
        used[k] |= m->step[k].kind == FZ_INPUT || m->step[k].kind == FZ_PARAM;
    for (int k = 0; k < m->n; k++) {
        map[k] = used[k] ? n : -1;
        if (!used[k])
            continue;
        fz_step s = m->step[k];
        for (int i = 0; i < s.nargs; i++)
            if (s.arg[i].step >= 0)
                s.arg[i].step = map[s.arg[i].step];
        m->step[n++] = s;
    }
    m->n = n;
    for (int i = 0; i < m->nout; i++)
        m->out[i].step = map[m->out[i].step];
    for (int i = 0; i < m->ngroups; i++)
        for (int k = 0; k < m->group[i].n; k++)
            m->group[i].param[k] = map[m->group[i].param[k]];
    if (m->loss >= 0)
        m->loss = map[m->loss];
    if (m->metric >= 0)
        m->metric = map[m->metric];
    if (m->predict >= 0)
        m->predict = map[m->predict];
}
