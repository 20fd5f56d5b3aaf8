/* The C source that makes a standalone binary of a compiled model: the tables of
 * runtime/compiled.h (parameters and their initializers, the entry points' inputs and
 * outputs, each step's work for `bench`, the model's training defaults) and a main that
 * hands them to the runtime's commands (runtime/binary.c). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "fail.h"
#include "header.h"
#include "model_source.h"

static const char *dtype_enum(ag_dtype t)
{
    switch (t) {
    case AG_F32: return "AG_F32";
    case AG_I32: return "AG_I32";
    case AG_U8: return "AG_U8";
    case AG_BOOL: return "AG_BOOL";
    default: return "AG_F64";
    }
}

static int64_t elem_size(ag_dtype t) { return t == AG_F64 ? 8 : t == AG_F32 || t == AG_I32 ? 4 : 1; }

/* An output of g by name, as rt_compiled_value; false if g has none so named. */
static bool value(FILE *f, const cg_program *p, const ir_graph *g, const char *name, char *err, size_t len)
{
    int k = name ? ir_find_output(g, name) : -1;
    if (k < 0) {
        fputs("{NULL, AG_F32, 0, 0, false, 0, false}", f);
        return !name || rt_fail(err, len, "%s: no output %s", g->name, name);
    }
    const cg_buffer *b = &p->buffers[p->output_buffer[k]];
    const ir_node *n = &g->node[g->out[k].id];
    if ((b->region != CG_ARENA && b->region != CG_PARAMS) || (b->region == CG_PARAMS && b->offset.n != 0))
        return rt_fail(err, len, "%s: output %s is neither in the arena nor in the parameters", g->name, name);
    bool batched = n->shape.rank > 0 && n->shape.dim[0] == AG_N;
    fputc('{', f);
    cg_c_literal(f, name);
    fprintf(f, ", %s, %lldLL, %lldLL, %s, %lldLL, %s}", dtype_enum(n->dtype), (long long)b->offset.k,
            (long long)b->offset.n, b->region == CG_PARAMS ? "true" : "false", (long long)ir_numel(&n->shape, 1),
            batched ? "true" : "false");
    return true;
}

/* Bytes one access of a loop touches at batch N: the extents it moves along. */
static double access_bytes(const cg_loop *l, const cg_access *a, ag_dtype t, int64_t N)
{
    double n = 1;
    for (int k = 0; k < l->rank; k++)
        if (a->stride[k].k || a->stride[k].n)
            n *= (double)(l->extent[k].k + l->extent[k].n * N);
    return n * (double)elem_size(t);
}

static double dim_at(cg_dim d, int64_t N) { return (double)(d.k + d.n * N); }

/* bytes and flops of a step at batch N, for bench's rates */
static void step_work(const cg_program *p, const cg_step *s, int64_t N, double *bytes, double *flops)
{
    *bytes = *flops = 0;
    if (s->kind == CG_LOOP) {
        const cg_loop *l = &s->loop;
        for (int k = 0; k < l->nloads; k++)
            *bytes += access_bytes(l, &l->load[k], p->buffers[l->load[k].buffer].dtype, N);
        for (int k = 0; k < l->nstores; k++)
            *bytes += access_bytes(l, &l->store[k].at, p->buffers[l->store[k].at.buffer].dtype, N);
    } else if (s->kind == CG_GEMM) {
        double m = dim_at(s->gemm.m, N), n = dim_at(s->gemm.n, N), k = dim_at(s->gemm.k, N);
        *flops = 2 * m * n * k;
        *bytes = 4 * (m * k + k * n + 2 * m * n);
    } else if (ir_ops[s->call.op].kind == IR_K_WINDOW) { /* each sample's input and output, once */
        const rt_window *w = &s->call.win;
        double b = dim_at(s->call.rows, N), in = (double)(w->c * w->h * w->w);
        double out = (double)((w->o ? w->o : w->c) * w->oh * w->ow);
        *bytes = 4 * b * (in + out + (s->call.op == IR_max_pool2d_grad ? in : 0));
        if (w->o) { /* a convolution: its weights, and a multiply-add per tap */
            double taps = (double)(w->c / w->groups * w->kh * w->kw);
            *bytes += 4 * (double)w->o * taps;
            *flops = 2 * b * out * taps;
        }
    } else if (s->call.op == IR_allreduce) { /* communication, not memory traffic (none on one process) */
        *bytes = 0;
    } else {
        const cg_call *c = &s->call;
        *bytes = (double)c->nargs * dim_at(c->rows, N) * dim_at(c->len, N) * dim_at(c->inner, N) * 4;
    }
}

static void steps(FILE *f, const char *var, const cg_program *p, const ir_graph *g)
{
    fprintf(f, "static const rt_compiled_step %s[] = {\n", var);
    for (int s = 0; s < p->nsteps; s++) {
        const cg_step *st = &p->steps[s];
        double bytes, flops, bytes1, flops1; /* at N = 0 and 1: the work is affine in N */
        step_work(p, st, 0, &bytes, &flops);
        step_work(p, st, 1, &bytes1, &flops1);
        const char *kind = st->kind == CG_LOOP ? "loop" : st->kind == CG_GEMM ? "gemm" : ir_ops[st->call.op].name;
        char what[160] = "?";
        if (st->node >= 0 && st->node < g->n) {
            const ir_node *n = &g->node[st->node];
            char type[96];
            ir_type_str(n->dtype, &n->shape, type, sizeof type);
            char v[32];
            int w = snprintf(what, sizeof what, "%s %s %s", ir_value_name(g, st->node, v, sizeof v), ir_ops[n->op].name,
                             type);
            if (n->op == IR_kernel && n->attr.kernel >= 0) { /* and the ops fused into it */
                const ir_graph *body = g->kernels[n->attr.kernel];
                for (int32_t i = 0, shown = 0; i < body->n && w > 0 && (size_t)w < sizeof what; i++)
                    if (ir_ops[body->node[i].op].kind != IR_K_SOURCE)
                        w += snprintf(what + w, sizeof what - (size_t)w, "%s%s", shown++ ? "," : " = ",
                                      ir_ops[body->node[i].op].name);
            }
        }
        fprintf(f, "    {\"%s\", \"%s\", ", st->name, kind);
        cg_c_literal(f, what);
        fprintf(f, ", %.17g, %.17g, %.17g, %.17g},\n", bytes, bytes1 - bytes, flops, flops1 - flops);
    }
    if (!p->nsteps)
        fprintf(f, "    {\"\", \"none\", \"\", 0, 0, 0, 0},\n");
    fprintf(f, "};\n");
}

/* an input of p as rt_compiled_value: name, dtype, elements per sample, batched */
static void input_value(FILE *f, const ir_graph *g, int32_t id)
{
    const ir_node *n = &g->node[id];
    fputc('{', f);
    cg_c_literal(f, n->attr.name);
    fprintf(f, ", %s, 0, 0, false, %lldLL, %s}", dtype_enum(n->dtype), (long long)ir_numel(&n->shape, 1),
            n->shape.rank > 0 && n->shape.dim[0] == AG_N ? "true" : "false");
}

/* The batch axis N of a value a forward computation's binary reads or prints is its first or
 * none: a sample is then a row. */
static bool n_leads(const ir_graph *g, int32_t id, const char *what, const char *name, char *err, size_t len)
{
    const ir_shape *s = &g->node[id].shape;
    for (int k = 1; k < s->rank; k++)
        if (s->dim[k] == AG_N) {
            char ty[96];
            ir_type_str(g->node[id].dtype, s, ty, sizeof ty);
            return rt_fail(err, len, "%s: %s %s is %s: a binary takes samples as rows, the batch axis N first", g->name,
                           what, name, ty);
        }
    return true;
}

/* every output of a forward computation, for predict: NAME[] */
static bool outputs(FILE *f, const char *var, const cg_program *p, const ir_graph *g, char *err, size_t len)
{
    for (int k = 0; k < p->ninputs; k++)
        if (!n_leads(g, p->input_node[k], "input", g->node[p->input_node[k]].attr.name, err, len))
            return false;
    for (int k = 0; k < g->nout; k++)
        if (!n_leads(g, g->out[k].id, "output", g->out[k].name, err, len))
            return false;
    fprintf(f, "static const rt_compiled_value %s[] = {\n", var);
    for (int k = 0; k < g->nout; k++) {
        fputs("    ", f);
        if (!value(f, p, g, g->out[k].name, err, len))
            return false;
        fputs(",\n", f);
    }
    fprintf(f, "};\n");
    return true;
}

/* the entry point's table: inputs by role (x and y: the first two data inputs, as the
 * runtime's training loop binds them; a forward computation's have none), loss, metrics,
 * predictions, steps, the inputs as values, the outputs (outs_var, or NULL) */
static bool entry(FILE *f, const char *fn, const char *steps_var, const char *outs_var, const cg_program *p,
                  const ir_graph *g, char *err, size_t len)
{
    const ir_train *t = g->train;
    bool trains = ir_trains(g);
    if (p->ninputs > 8)
        return rt_fail(err, len, "%s: %d inputs; a binary binds at most 8", g->name, p->ninputs);
    fprintf(f, "{%s, %d, {", fn, p->narena);
    for (int k = 0; k < p->narena; k++)
        fprintf(f, "%s{%lldLL, %lldLL}", k ? ", " : "", (long long)p->arena[k].k, (long long)p->arena[k].n);
    fprintf(f, "}, %d, {", p->ninputs);
    int data = 0;
    ag_dtype xt = AG_F32, yt = AG_F32;
    for (int k = 0; k < p->ninputs; k++) { /* each input by its role */
        const ir_node *n = &g->node[p->input_node[k]];
        static const char *const binds[AG_ROLE_COUNT] = {
            "AG_ROLE_NONE",       "AG_ROLE_DATA",      "AG_ROLE_LABELS", "AG_ROLE_LR",
            "AG_ROLE_WD",         "AG_ROLE_STATE",     "AG_ROLE_ACCUM",  "AG_ROLE_GRAD_WEIGHT",
            "AG_ROLE_GRAD_SCALE", "AG_ROLE_CLIP_NORM", "AG_ROLE_SHARE"};
        ag_role r = n->attr.role;
        if (trains && (r == AG_ROLE_NONE || (unsigned)r >= AG_ROLE_COUNT))
            return rt_fail(err, len,
                           "%s: input %s has no role: a binary binds the features, the targets, lr and wd only",
                           g->name, n->attr.name);
        if (r == AG_ROLE_DATA || r == AG_ROLE_LABELS) {
            *(r == AG_ROLE_LABELS ? &yt : &xt) = n->dtype;
            data++;
        }
        fprintf(f, "%s%s", k ? ", " : "", binds[(unsigned)r < AG_ROLE_COUNT ? r : AG_ROLE_NONE]);
    }
    if (trains && data != 2)
        return rt_fail(err, len, "%s: training binds two inputs, the features and the targets; the model has %d",
                       g->name, data);
    fprintf(f, "}, %s, %s,\n     ", dtype_enum(xt), dtype_enum(yt));
    if (!value(f, p, g, trains ? t->loss : NULL, err, len))
        return false;
    fputs(",\n     ", f);
    if (!value(f, p, g, trains ? t->predict : NULL, err, len))
        return false;
    int nmetrics = trains ? t->nmetrics : 0;
    fprintf(f, ",\n     %d, {", nmetrics);
    for (int k = 0; k < nmetrics && k < 8; k++) {
        if (k)
            fputs(", ", f);
        if (!value(f, p, g, t->metrics[k], err, len))
            return false;
    }
    fprintf(f, "}, %d, %s,\n     {", p->nsteps, steps_var);
    for (int k = 0; k < p->ninputs; k++) {
        fputs(k ? ", " : "", f);
        input_value(f, g, p->input_node[k]);
    }
    fprintf(f, "}, %d, %s", outs_var ? g->nout : 0, outs_var ? outs_var : "NULL");
    return true;
}

/* The updates of the parameters p writes that are not in place (NAME.next for a parameter of
 * p), as the table var of rt_compiled_copy; their count in *n. */
static bool copies(FILE *f, const char *var, const cg_program *p, const ir_graph *g, int *n, char *err, size_t len)
{
    *n = 0;
    fprintf(f, "static const rt_compiled_copy %s[] = {\n", var);
    for (int k = 0; k < p->nparams; k++) {
        char next[300];
        snprintf(next, sizeof next, "%s.next", p->params[k].name);
        int out = ir_find_output(g, next);
        if (out < 0)
            continue; /* read, not updated */
        const cg_buffer *b = &p->buffers[p->output_buffer[out]];
        if (b->region == CG_PARAMS && b->offset.k == p->params[k].offset && b->offset.n == 0)
            continue;
        if (b->region != CG_ARENA)
            return rt_fail(err, len, "%s: the update of %s is neither in place nor in the arena", g->name,
                           p->params[k].name);
        fprintf(f, "    {%lldLL, %lldLL, %lldLL, %lldLL},\n", (long long)p->params[k].offset, (long long)b->offset.k,
                (long long)b->offset.n, (long long)p->params[k].bytes);
        ++*n;
    }
    if (!*n)
        fprintf(f, "    {0, 0, 0, 0},\n");
    fprintf(f, "};\n");
    return true;
}

/* The split step's entry points and their tables: the accumulate and apply members of
 * rt_compiled; {0} where the binary has none. */
static bool split_tables(FILE *f, const char *name, const cg_split *s, int ncopies[2], char *err, size_t len)
{
    if (!s || !s->accumulate)
        return true;
    fprintf(f, "void %s_accumulate(const ag_args *a);\nvoid %s_apply(const ag_args *a);\n", name, name);
    steps(f, "accumulate_steps", s->accumulate, s->accumulate_g);
    steps(f, "apply_steps", s->apply, s->apply_g);
    return copies(f, "accumulate_copies", s->accumulate, s->accumulate_g, &ncopies[0], err, len) &&
           copies(f, "apply_copies", s->apply, s->apply_g, &ncopies[1], err, len);
}

static bool split_entries(FILE *f, const char *name, const cg_split *s, const int ncopies[2], int64_t train_param_bytes,
                          char *err, size_t len)
{
    char fn[300];
    if (!s || !s->accumulate) {
        fputs(",\n    {0}, {0}, 0, 0, ", f);
        cg_c_literal(f, s && s->none ? s->none : "");
        return true;
    }
    fputs(",\n    ", f);
    snprintf(fn, sizeof fn, "%s_accumulate", name);
    if (!entry(f, fn, "accumulate_steps", NULL, s->accumulate, s->accumulate_g, err, len))
        return false;
    fprintf(f, ", %d, accumulate_copies},\n    ", ncopies[0]);
    snprintf(fn, sizeof fn, "%s_apply", name);
    if (!entry(f, fn, "apply_steps", NULL, s->apply, s->apply_g, err, len))
        return false;
    fprintf(f, ", %d, apply_copies},\n    %lldLL, %lldLL, \"\"", ncopies[1], (long long)train_param_bytes,
            (long long)(s->accumulate->param_bytes - train_param_bytes));
    return true;
}

/* the CUDA image: cubin bytes, the PTX text, the launch plans */
static void cuda_tables(FILE *f, const cg_cuda_build *c)
{
    fprintf(f, "static const unsigned char cuda_cubin[] =\n");
    for (size_t i = 0; i < c->cubin_len; i += 32) {
        fputs("    \"", f);
        for (size_t j = i; j < i + 32 && j < c->cubin_len; j++)
            fprintf(f, "\\%03o", c->cubin[j]);
        fputs("\"\n", f);
    }
    if (!c->cubin_len)
        fputs("    \"\"\n", f);
    fprintf(f, ";\nstatic const char cuda_ptx[] =\n");
    for (const char *l = c->ptx; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l + 1) : strlen(l);
        char line[4096];
        if (n >= sizeof line)
            n = sizeof line - 1;
        memcpy(line, l, n);
        line[n] = 0;
        fputs("    ", f);
        cg_c_literal(f, line);
        fputc('\n', f);
        l += n;
    }
    fprintf(f, "    \"\";\n");
    const cg_cuda_plan *plans[2] = {c->train, c->forward};
    const char *names[2] = {"cuda_train", "cuda_forward"};
    for (int k = 0; k < 2; k++) {
        fprintf(f, "static const rt_cuda_launch %s[] = {\n", names[k]);
        for (int s = 0; s < plans[k]->nsteps; s++) {
            const cg_cuda_launch *l = &plans[k]->step[s];
            fprintf(f, "    {\"%s\", {%.17g, %.17g, %.17g}, %.17g, %d, %d, %s, %d, %d, {%lld, %lld}, {%lld, %lld}},\n",
                    l->name, l->units[0], l->units[1], l->units[2], l->units_per_block, l->first_step, l->steps,
                    l->merged ? "true" : "false", l->collective, (int)l->bucket, (long long)l->offset.k,
                    (long long)l->offset.n, (long long)l->count.k, (long long)l->count.n);
        }
        if (!plans[k]->nsteps)
            fprintf(f, "    {\"\", {0, 0, 0}, 1, 0, 0, false},\n");
        fprintf(f, "};\n");
    }
    fprintf(f, "static const rt_cuda_image cuda_image = {");
    cg_c_literal(f, c->arch);
    int64_t scratch =
        c->train->scratch_bytes > c->forward->scratch_bytes ? c->train->scratch_bytes : c->forward->scratch_bytes;
    fprintf(f, ", cuda_cubin, %zu, cuda_ptx, %d, %d, cuda_train, cuda_forward, %lld};\n\n", c->cubin_len,
            c->train->nsteps, c->forward->nsteps, (long long)scratch);
}

bool cg_write_model_source(FILE *f, const char *source, const cg_program *train, const ir_graph *step,
                           const cg_program *forward, const ir_graph *eval, const cg_split *split,
                           const cg_cuda_build *cuda, const char *dist, char *err, size_t len)
{
    /* without a train step (a graph without training): the forward pass alone, its outputs
     * listed for predict */
    const cg_program *layout = train ? train : forward; /* the parameters', which both share */
    const ir_graph *g = train ? step : eval;
    const ir_train *t = train ? step->train : NULL;
    if (train && (!t || !t->loss))
        return rt_fail(err, len, "%s: the train step has no loss", step->name);
    if (t && t->nmetrics > 8)
        return rt_fail(err, len, "%s: %d metrics; a binary reports at most 8", step->name, t->nmetrics);
    if (!train && cuda)
        return rt_fail(err, len,
                       "%s: --target cpu,cuda: the CUDA runtime runs models that train; a graph without training "
                       "builds for the CPU (--emit cu,ptx gives its CUDA C)",
                       eval->name);
    int64_t features = 0, targets = 0;
    int classes = 0;
    if (train && !ir_data_shape(step, &features, &targets, &classes, err, len))
        return false;
    const char *name = g->name;
    fprintf(f, "/* Generated by aotgrad from %s: the tables of the standalone binary %s. */\n", source, name);
    fprintf(f, "#include \"compiled.h\"\n\n");
    if (train)
        fprintf(f, "void %s_train_step(const ag_args *a);\n", name);
    fprintf(f, "void %s_forward(const ag_args *a);\n\n", name);

    /* parameters: the train step's layout, which the forward pass must share */
    fprintf(f, "static const rt_compiled_param params[] = {\n");
    for (int k = 0; k < layout->nparams; k++) {
        const cg_param *cp = &layout->params[k];
        const ir_node *n = &g->node[cp->node];
        bool shared = !train;
        for (int j = 0; train && j < forward->nparams; j++)
            if (strcmp(forward->params[j].name, cp->name) == 0)
                shared = forward->params[j].offset == cp->offset;
        if (!shared && ir_find_source(eval, IR_param, cp->name) >= 0)
            return rt_fail(err, len,
                           "%s: parameter %s lies at different offsets in the train step and the forward pass", name,
                           cp->name);
        /* its update in place, or at a fixed place in the arena, whence the binary copies it
         * over P; none without a train step */
        bool in_place = true;
        int64_t next_at = -1, next_at_n = 0;
        if (train) {
            char next[300];
            snprintf(next, sizeof next, "%s.next", cp->name);
            int out = ir_find_output(step, next);
            if (out < 0)
                return rt_fail(err, len, "%s: the train step has no output %s", name, next);
            const cg_buffer *nb = &train->buffers[train->output_buffer[out]];
            in_place = nb->region == CG_PARAMS && nb->offset.k == cp->offset && nb->offset.n == 0;
            if (!in_place && nb->region != CG_ARENA)
                return rt_fail(err, len, "%s: the update of %s is neither in place nor in the arena", name, cp->name);
            next_at = in_place ? -1 : nb->offset.k, next_at_n = in_place ? 0 : nb->offset.n;
        }
        fputs("    {", f);
        cg_c_literal(f, cp->name);
        fprintf(f, ", %d, {", n->shape.rank);
        for (int d = 0; d < 4; d++)
            fprintf(f, "%s%lldLL", d ? ", " : "", d < n->shape.rank ? (long long)n->shape.dim[d] : 0LL);
        fprintf(f, "}, %lldLL, {%d, %.17g, %.17g}, %lldLL, %lldLL, %s},\n", (long long)cp->offset,
                (int)n->attr.init.kind, n->attr.init.a, n->attr.init.b, (long long)next_at, (long long)next_at_n,
                n->attr.role == AG_ROLE_STATE ? "true" : "false");
    }
    if (!layout->nparams)
        fprintf(f, "    {\"\", 0, {0, 0, 0, 0}, 0, {0, 0, 0}, -1, 0, false},\n");
    fprintf(f, "};\n\n");
    if (train)
        steps(f, "train_steps", train, step);
    steps(f, "forward_steps", forward, eval);
    if (!train && !outputs(f, "forward_outs", forward, eval, err, len))
        return false;
    fprintf(f, "\nstatic const char *const class_names[] = {");
    for (int k = 0; t && k < t->nclasses && t->classes; k++) {
        fputs(k ? ", " : "", f);
        cg_c_literal(f, t->classes[k]);
    }
    fprintf(f, "%s};\n\n", t && t->nclasses && t->classes ? "" : "NULL");
    if (cuda)
        cuda_tables(f, cuda);
    int ncopies[2] = {0, 0};
    if (!split_tables(f, name, split, ncopies, err, len))
        return false;

    /* a distributed build's step sums its gradients over its table's ranks (MPI's:
     * libaotgrad_mpi.a; NCCL's: the runtime library's) */
    if (dist && !(step && step->train && step->train->bucket_bytes > 0))
        return rt_fail(err, len, "a %s table for a step that sums no gradients", dist);
    if (dist)
        fprintf(f, "extern const struct rt_dist_ops %s;\n\n", dist);
    char mname[300];
    fprintf(f, "static const rt_compiled model = {\n    ");
    cg_c_literal(f, name);
    fputs(", ", f);
    cg_c_literal(f, source);
    fprintf(f, ", %lldLL, %lldLL, %d, params,\n    ", (long long)layout->batch,
            (long long)(split && split->accumulate ? split->accumulate->param_bytes : layout->param_bytes),
            layout->nparams);
    snprintf(mname, sizeof mname, "%s_train_step", name);
    if (!train)
        fputs("{0}", f);
    else if (!entry(f, mname, "train_steps", NULL, train, step, err, len))
        return false;
    else
        fputs("}", f);
    snprintf(mname, sizeof mname, "%s_forward", name);
    fputs(",\n    ", f);
    if (!entry(f, mname, "forward_steps", train ? NULL : "forward_outs", forward, eval, err, len))
        return false;
    fputs("}", f);
    fprintf(f, ",\n    %lldLL, %lldLL, %.17g, %.17g, ", t ? (long long)t->batch : (long long)layout->batch,
            t ? (long long)t->epochs : 0LL, t ? t->lr : 0, t ? t->wd : 0);
    cg_c_literal(f, t ? t->data : NULL);
    fprintf(f, ",\n    %lldLL, %lldLL, %d, %d, class_names, %s, %s, ", (long long)features, (long long)targets, classes,
            t && t->classes ? t->nclasses : 0, cuda ? "&cuda_image" : "NULL", train ? "true" : "false");
    char options[2048]; /* the model's options as built (--set): checkpoints record them */
    cg_c_literal(f, ir_options_text(t, options, sizeof options));
    if (!split_entries(f, name, split, ncopies, layout->param_bytes, err, len))
        return false;
    fprintf(f, ",\n    %s%s};\n\n", dist ? "&" : "", dist ? dist : "NULL");
    fprintf(f, "int main(int argc, char **argv) { return rt_binary_main(&model, argc, argv); }\n");
    return !ferror(f) || rt_fail(err, len, "cannot write the model's source");
}
