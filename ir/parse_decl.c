/* The text IR parser's declarations (see ir/parse.c for the parser): the lines after a
 * graph's `return`, each read by parse_read_decl at its first word.
 *
 * The declarations (ir_train) come one a line, in any order; the printer writes them as
 * train, optimizer, groups, data, options. Then may come the memory plan (ir_plan): a
 * `memory` line, then `buffer` and `inplace` lines naming values, at most one for each value
 * (the verifier checks the plan as a whole). A line's keys come in any order, each at most
 * once; what it names (outputs, params, values) must be defined above it. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "parse_internal.h"

/* ---- declarations ---- */

static ir_train *train_of(parser *P)
{
    if (!P->g->train)
        P->g->train = ir_alloc(P->g, sizeof *P->g->train);
    return P->g->train;
}

/* Makes room for one more element in an array of the graph's arena; the old copy stays
 * there, unused, until the graph is freed. */
static void *arena_grow(parser *P, void *a, int n, int *cap, size_t size)
{
    if (n < *cap)
        return a;
    if (*cap > INT_MAX / 4)
        ERROR_TOK(P, &P->tok, "too many items in one declaration");
    *cap = *cap ? *cap * 2 : 4;
    void *b = ir_alloc(P->g, size * (size_t)*cap);
    if (n)
        memcpy(b, a, size * (size_t)n);
    return b;
}

/* The current string token, copied to the arena. */
static const char *read_string(parser *P)
{
    if (P->tok.k != TK_STR)
        parse_unexpected(P, "a string");
    const char *s = ir_strndup(P->g, P->sbuf, P->slen);
    parse_next(P);
    return s;
}

static const char *read_name(parser *P, const char *what)
{
    if (P->tok.k != TK_IDENT)
        parse_unexpected(P, what);
    const char *s = ir_strndup(P->g, P->tok.s, P->tok.len);
    parse_next(P);
    return s;
}

/* lr, wd and the scales: finite, >= 0, and an f32 (the step takes them as f32 inputs), as
 * the DSL requires */
static double read_rate(parser *P, const char *what)
{
    token t = P->tok;
    char d[64];
    double v = parse_read_real(P, false);
    if (!isfinite(v))
        ERROR_TOK(P, &t, "%s must be finite, got %s", what, parse_describe(&t, d, sizeof d));
    if (v < 0 || v > FLT_MAX)
        ERROR_TOK(P, &t, "%s must be >= 0 and fit an f32, got %s", what, parse_describe(&t, d, sizeof d));
    return v;
}

/* An output named in the train line; its node id in *id. */
static const char *read_output_name(parser *P, const char *what, int32_t *id)
{
    token t = P->tok;
    if (t.k != TK_IDENT)
        parse_unexpected(P, "an output name");
    name_ent *e = parse_name_find(&P->outs, t.s, t.len);
    if (!e)
        ERROR_TOK(P, &t, "%s '%.*s' is not an output", what, (int)t.len, t.s);
    *id = e->id;
    return read_name(P, "an output name");
}

/* "KEY=" of a declaration line, KEY one of keys (NULL-ended), each at most once. */
static int read_key(parser *P, const char *const *keys, unsigned *seen, const char *line)
{
    token t = P->tok;
    char d[64];
    int k = 0;
    while (keys[k] && !is_word(&t, keys[k]))
        k++;
    if (!keys[k])
        ERROR_TOK(P, &t, "unknown key %s in a%s %s line", parse_describe(&t, d, sizeof d),
                  strchr("aeiou", *line) ? "n" : "", line);
    if (*seen >> k & 1)
        ERROR_TOK(P, &t, "duplicate key %s", parse_describe(&t, d, sizeof d));
    *seen |= 1u << k;
    parse_next(P);
    parse_expect_punct(P, '=');
    return k;
}

/* The end of a declaration line: every key of `required` was given. */
static void end_decl(parser *P, const char *const *keys, unsigned required, unsigned seen, const token *word)
{
    if (!at_eol(P))
        parse_unexpected(P, "a key or end of line");
    for (int k = 0; keys[k]; k++)
        if ((required >> k & 1) && !(seen >> k & 1))
            ERROR_TOK(P, word, "%.*s: missing %s=", (int)word->len, word->s, keys[k]);
}

static void first_of_its_kind(parser *P, const token *word, int *line)
{
    if (*line)
        ERROR_TOK(P, word, "duplicate '%.*s' line (first on line %d)", (int)word->len, word->s, *line);
    *line = word->line;
}

/* train STAGE loss=NAME [metrics=[NAME, ...]] [predict=NAME] */
static void read_train(parser *P, const token *word)
{
    static const char *const stages[] = {"model", "gradients", "step"};
    static const char *const keys[] = {"loss", "metrics", "predict", NULL};
    ir_train *t = train_of(P);
    char d[64], ty[80];
    first_of_its_kind(P, word, &P->train_line);
    parse_next(P);
    if (P->tok.k != TK_IDENT)
        parse_unexpected(P, "a stage");
    int st = 0;
    while (st < 3 && !is_word(&P->tok, stages[st]))
        st++;
    if (st == 3)
        ERROR_TOK(P, &P->tok, "unknown stage %s; expected model, gradients or step",
                  parse_describe(&P->tok, d, sizeof d));
    t->stage = (ir_stage)st;
    parse_next(P);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        int32_t id;
        token at;
        switch (read_key(P, keys, &seen, "train")) {
        case 0: {
            at = P->tok;
            t->loss = read_output_name(P, "loss", &id);
            const ir_node *n = &P->g->node[id];
            if (n->dtype != AG_F32 || n->shape.rank != 0)
                ERROR_TOK(P, &at, "loss '%s' is %s, not a scalar f32", t->loss,
                          ir_type_str(n->dtype, &n->shape, ty, sizeof ty));
            break;
        }
        case 1:
            parse_expect_punct(P, '[');
            while (!is_punct(P, ']')) {
                if (t->nmetrics)
                    parse_expect_punct(P, ',');
                at = P->tok;
                if (t->nmetrics == IR_MAX_METRICS)
                    ERROR_TOK(P, &at, "more than %d metrics", IR_MAX_METRICS);
                const char *m = read_output_name(P, "metric", &id);
                const ir_node *n = &P->g->node[id];
                if (n->shape.rank != 0)
                    ERROR_TOK(P, &at, "metric '%s' is %s, not a scalar", m,
                              ir_type_str(n->dtype, &n->shape, ty, sizeof ty));
                for (int i = 0; i < t->nmetrics; i++)
                    if (!strcmp(t->metrics[i], m))
                        ERROR_TOK(P, &at, "duplicate metric '%s'", m);
                t->metrics[t->nmetrics++] = m;
            }
            parse_next(P);
            break;
        default: t->predict = read_output_name(P, "predict", &id); break;
        }
    }
    end_decl(P, keys, 1u, seen, word);
}

/* optimizer NAME lr=REAL wd=REAL [HYPERPARAMETER=REAL]... batch=INT epochs=INT: the keys
 * of the kind (ir_optimizer_kinds), each required but those it leaves out at 0 */
static void read_optimizer(parser *P, const token *word)
{
    const char *keys[4 + IR_HP_COUNT + 1] = {"lr", "wd", "batch", "epochs"}; /* then the hyperparameters */
    memcpy(keys + 4, ir_hp_names, sizeof ir_hp_names);
    ir_train *t = train_of(P);
    first_of_its_kind(P, word, &P->optimizer_line);
    parse_next(P);
    token name = P->tok;
    t->optimizer = read_name(P, "an optimizer name");
    const ir_optimizer_kind *k = ir_optimizer_find(t->optimizer);
    if (!k)
        ERROR_TOK(P, &name, "unknown optimizer '%s' (aotgrad has %s)", t->optimizer, ir_optimizer_names());
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        token at = P->tok;
        int key = read_key(P, keys, &seen, "optimizer");
        if (key >= 4 && !(k->keys >> (key - 4) & 1))
            ERROR_TOK(P, &at, "optimizer %s takes no %s", k->name, keys[key]);
        switch (key) {
        case 0: t->lr = read_rate(P, "lr"); break;
        case 1: t->wd = read_rate(P, "wd"); break;
        case 2: t->batch = parse_read_int(P, "batch", 1, IR_MAX_COUNT); break;
        case 3: t->epochs = parse_read_int(P, "epochs", 1, IR_MAX_COUNT); break;
        default: t->hp[key - 4] = read_rate(P, keys[key]); break;
        }
    }
    end_decl(P, keys, 0xfu | (k->keys & ~k->optional) << 4, seen, word);
}

/* group NAME wd_scale=REAL lr_scale=REAL params=[NAME, ...] */
static void read_group(parser *P, const token *word)
{
    static const char *const keys[] = {"wd_scale", "lr_scale", "params", NULL};
    ir_train *t = train_of(P);
    parse_next(P);
    token name = P->tok;
    if (name.k != TK_IDENT)
        parse_unexpected(P, "a group name");
    name_ent *prev = parse_name_find(&P->groups, name.s, name.len);
    if (prev)
        ERROR_TOK(P, &name, "duplicate group '%.*s' (first on line %d)", (int)name.len, name.s, prev->line);
    t->groups = arena_grow(P, t->groups, t->ngroups, &P->groupcap, sizeof *t->groups);
    int32_t index = t->ngroups++;
    ir_group *gr = &t->groups[index];
    gr->name = read_name(P, "a group name");
    parse_name_add(&P->groups, name.s, name.len, index, name.line);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        switch (read_key(P, keys, &seen, "group")) {
        case 0: gr->wd_scale = read_rate(P, "wd_scale"); break;
        case 1: gr->lr_scale = read_rate(P, "lr_scale"); break;
        default: {
            int cap = 0;
            parse_expect_punct(P, '[');
            while (!is_punct(P, ']')) {
                if (gr->nparams)
                    parse_expect_punct(P, ',');
                token pt = P->tok;
                if (pt.k != TK_IDENT)
                    parse_unexpected(P, "a param name");
                name_ent *v = parse_name_find(&P->vals, pt.s, pt.len);
                if (!v || P->g->node[v->id].op != IR_param)
                    ERROR_TOK(P, &pt, "'%.*s' is not a param", (int)pt.len, pt.s);
                name_ent *in = parse_name_find(&P->grouped, pt.s, pt.len);
                if (in)
                    ERROR_TOK(P, &pt, "param '%.*s' is already in group '%s'", (int)pt.len, pt.s,
                              t->groups[in->id].name);
                parse_name_add(&P->grouped, pt.s, pt.len, index, pt.line);
                gr->params = arena_grow(P, gr->params, gr->nparams, &cap, sizeof *gr->params);
                gr->params[gr->nparams++] = read_name(P, "a param name");
            }
            parse_next(P);
            break;
        }
        }
    }
    end_decl(P, keys, 0x7u, seen, word);
}

/* distributed bucket_bytes=INT: the train step of a distributed build */
static void read_distributed(parser *P, const token *word)
{
    static const char *const keys[] = {"bucket_bytes", NULL};
    ir_train *t = train_of(P);
    first_of_its_kind(P, word, &P->distributed_line);
    parse_next(P);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        read_key(P, keys, &seen, "distributed");
        t->bucket_bytes = parse_read_int(P, "bucket_bytes", 1, IR_MAX_BYTES);
    }
    end_decl(P, keys, 0x1u, seen, word);
}

/* data "STRING" [classes=["STRING", ...]] */
static void read_data(parser *P, const token *word)
{
    static const char *const keys[] = {"classes", NULL};
    ir_train *t = train_of(P);
    first_of_its_kind(P, word, &P->data_line);
    parse_next(P);
    t->data = read_string(P);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        read_key(P, keys, &seen, "data");
        parse_expect_punct(P, '[');
        while (!is_punct(P, ']')) {
            if (t->nclasses)
                parse_expect_punct(P, ',');
            if (t->nclasses == IR_MAX_CLASSES)
                ERROR_TOK(P, &P->tok, "more than %d classes", IR_MAX_CLASSES);
            t->classes = arena_grow(P, t->classes, t->nclasses, &P->classcap, sizeof *t->classes);
            t->classes[t->nclasses] = read_string(P);
            t->nclasses++;
        }
        parse_next(P);
    }
    end_decl(P, keys, 0, seen, word);
}

/* option NAME="VALUE" choices="A|B|C" */
static void read_option(parser *P, const token *word)
{
    static const char *const keys[] = {"choices", NULL};
    ir_train *t = train_of(P);
    parse_next(P);
    token name = P->tok;
    if (name.k != TK_IDENT)
        parse_unexpected(P, "an option name");
    name_ent *prev = parse_name_find(&P->options, name.s, name.len);
    if (prev)
        ERROR_TOK(P, &name, "duplicate option '%.*s' (first on line %d)", (int)name.len, name.s, prev->line);
    t->options = arena_grow(P, t->options, t->noptions, &P->optioncap, sizeof *t->options);
    parse_name_add(&P->options, name.s, name.len, t->noptions, name.line);
    ir_option *o = &t->options[t->noptions++];
    o->name = read_name(P, "an option name");
    parse_expect_punct(P, '=');
    o->value = read_string(P);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        read_key(P, keys, &seen, "option");
        o->choices = read_string(P);
    }
    end_decl(P, keys, 1u, seen, word);
}

/* ---- the memory plan ---- */

/* memory batch=INT arena=INT: the plan, every value without a place yet */
static void read_memory(parser *P, const token *word)
{
    static const char *const keys[] = {"batch", "arena", NULL};
    ir_graph *g = P->g;
    first_of_its_kind(P, word, &P->memory_line);
    parse_next(P);
    size_t n = (size_t)(g->n > 0 ? g->n : 1);
    ir_plan *p = ir_alloc(g, sizeof *p);
    p->offset = ir_alloc(g, sizeof *p->offset * n);
    p->offset_n = ir_alloc(g, sizeof *p->offset_n * n); /* zeroed */
    p->inplace = ir_alloc(g, sizeof *p->inplace * n);
    for (int32_t i = 0; i < g->n; i++)
        p->offset[i] = -1, p->inplace[i] = -1;
    p->file = ir_strndup(g, P->file, strlen(P->file));
    p->line = ir_alloc(g, sizeof *p->line * n); /* zeroed */
    p->memory_line = P->memory_line;
    P->plan_line = ir_xcalloc(n, sizeof *P->plan_line);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        if (read_key(P, keys, &seen, "memory") == 0)
            p->batch = parse_read_int(P, "batch", 1, INT64_MAX);
        else
            p->arena = parse_read_int(P, "arena", 0, INT64_MAX);
    }
    end_decl(P, keys, 0x3u, seen, word);
    g->plan = p;
}

/* The value a plan line names: a computed one, not named by an earlier plan line. */
static int32_t read_planned(parser *P, const token *word)
{
    token t = P->tok;
    char d[64];
    if (!P->memory_line)
        ERROR_TOK(P, word, "a%s '%.*s' line before the 'memory' line", *word->s == 'i' ? "n" : "", (int)word->len,
                  word->s);
    if (t.k != TK_VAL)
        parse_unexpected(P, "a value");
    name_ent *e = parse_name_find(&P->vals, t.s, t.len);
    if (!e)
        ERROR_TOK(P, &t, "undefined value %%%.*s", (int)t.len, t.s);
    const ir_node *n = &P->g->node[e->id];
    if (ir_ops[n->op].kind == IR_K_SOURCE)
        ERROR_TOK(P, &t, "%s is %s %s, not a computed value: it has no place in the plan",
                  parse_describe(&t, d, sizeof d), n->op == IR_input ? "an" : "a", ir_ops[n->op].name);
    if (P->plan_line[e->id])
        ERROR_TOK(P, &t, "duplicate plan for %s (first on line %d)", parse_describe(&t, d, sizeof d),
                  P->plan_line[e->id]);
    P->plan_line[e->id] = t.line;
    P->g->plan->line[e->id] = t.line; /* the verifier's plan errors name it */
    parse_next(P);
    return e->id;
}

/* buffer VALUE offset=INT [offset_n=INT]: at batch N, offset + offset_n * N bytes */
static void read_buffer(parser *P, const token *word)
{
    static const char *const keys[] = {"offset", "offset_n", NULL};
    parse_next(P);
    int32_t id = read_planned(P, word);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        if (read_key(P, keys, &seen, "buffer") == 0)
            P->g->plan->offset[id] = parse_read_int(P, "offset", 0, IR_MAX_BYTES);
        else
            P->g->plan->offset_n[id] = parse_read_int(P, "offset_n", 0, IR_MAX_BYTES);
    }
    end_decl(P, keys, 0x1u, seen, word);
}

/* inplace VALUE into=PARAM */
static void read_inplace(parser *P, const token *word)
{
    static const char *const keys[] = {"into", NULL};
    parse_next(P);
    int32_t id = read_planned(P, word);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        read_key(P, keys, &seen, "inplace");
        token t = P->tok;
        char d[64];
        if (t.k != TK_VAL)
            parse_unexpected(P, "a param");
        name_ent *e = parse_name_find(&P->vals, t.s, t.len);
        if (!e)
            ERROR_TOK(P, &t, "undefined value %%%.*s", (int)t.len, t.s);
        if (P->g->node[e->id].op != IR_param)
            ERROR_TOK(P, &t, "into=%s: not a param", parse_describe(&t, d, sizeof d));
        P->g->plan->inplace[id] = e->id;
        parse_next(P);
    }
    end_decl(P, keys, 0x1u, seen, word);
}

void parse_read_decl(parser *P)
{
    static const struct {
        const char *word;
        void (*read)(parser *, const token *);
    } decls[] = {{"train", read_train},   {"optimizer", read_optimizer}, {"group", read_group},
                 {"data", read_data},     {"option", read_option},       {"memory", read_memory},
                 {"buffer", read_buffer}, {"inplace", read_inplace},     {"distributed", read_distributed}};
    token word = P->tok;
    char d[64];
    for (size_t i = 0; i < sizeof decls / sizeof *decls; i++)
        if (is_word(&word, decls[i].word)) {
            decls[i].read(P, &word);
            return;
        }
    ERROR_TOK(P, &word, "unknown declaration %s", parse_describe(&word, d, sizeof d));
}
