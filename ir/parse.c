/* The text IR parser: the inverse of ir/print.c (see there for the form).
 *
 * A one-token-lookahead parser over the lexer of ir/parse_lex.c that never recurses, so no
 * input can crash it or exhaust the stack. Every node is built with the same ir_infer as the
 * DSL, then checked against its declared type. The first error longjmps out with
 * "file:line:col: error: message"; everything parsed so far lives in the graph's arena or the
 * parser's few buffers, all freed there.
 *
 * This file reads the types, the node and return lines, the blocks and the graph. After
 * `return` come the declarations and the memory plan, one a line, read by ir/parse_decl.c.
 * The three share the parser's state and the lexer's functions through ir/parse_internal.h.
 *
 * Before the graph come the bodies of its kernels, `kernel @k0 {...}`, `kernel @k1 {...}`
 * and so on in index order: the same node lines and `return`, without params, kernel nodes
 * or declarations. Each is added to the graph (ir_add_kernel) as soon as it starts, so the
 * kernel nodes after it are checked against it by their rule. */
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fail.h"
#include "parse_internal.h"

/* ---- types ---- */

typedef struct type {
    ag_dtype dtype;
    ir_shape shape;
} type;

static type read_type(parser *P)
{
    type ty = {0};
    const token *t = &P->tok;
    char d[64];
    if (t->k != TK_IDENT)
        parse_unexpected(P, "a type");
    if (!ir_dtype_by_name(t->s, t->len, &ty.dtype))
        ERROR_TOK(P, t, "unknown dtype %s", parse_describe(t, d, sizeof d));
    if (ty.dtype == AG_F64)
        ERROR_TOK(P, t, "dtype f64 is not allowed in a graph");
    parse_next(P);
    parse_expect_punct(P, '[');
    int64_t numel = 1;
    bool batch = false;
    while (!is_punct(P, ']')) {
        if (ty.shape.rank > 0)
            parse_expect_punct(P, ',');
        if (ty.shape.rank == IR_MAX_RANK)
            ERROR_TOK(P, t, "more than %d dims", IR_MAX_RANK);
        int64_t v;
        bool overflow;
        if (is_word(t, "N")) {
            if (batch)
                ERROR_TOK(P, t, "the batch dim N appears twice");
            batch = true;
            v = AG_N;
        } else if (parse_tok_int(t, &v, &overflow) && v > 0 && is_digit((unsigned char)t->s[0])) {
            if (__builtin_mul_overflow(numel, v, &numel))
                ERROR_TOK(P, t, "integer overflow in dims: the shape has too many elements");
        } else if (overflow && is_digit((unsigned char)t->s[0])) {
            ERROR_TOK(P, t, "integer overflow in dim %s", parse_describe(t, d, sizeof d));
        } else if (t->k == TK_NUM) {
            ERROR_TOK(P, t, "bad dim %s: dims are positive integers or N", parse_describe(t, d, sizeof d));
        } else {
            parse_unexpected(P, "a dim");
        }
        ty.shape.dim[ty.shape.rank++] = v;
        parse_next(P);
    }
    parse_next(P);
    return ty;
}

/* ---- nodes ---- */

/* An f32 or i32 scalar constant from its literal. */
static int32_t literal(parser *P)
{
    const token t = P->tok;
    ir_node n = ir_node_make(IR_const, 0, NULL);
    if (parse_float_syntax(&t)) {
        n.dtype = AG_F32;
        n.attr.value = parse_read_real(P, true);
    } else {
        n.dtype = AG_I32;
        n.attr.value = (double)parse_read_int(P, "i32 literal", INT32_MIN, INT32_MAX);
    }
    char msg[256];
    int32_t id = ir_add(P->g, &n, msg, sizeof msg);
    if (id < 0)
        ERROR_TOK(P, &t, "%s", msg);
    return id;
}

static int32_t operand(parser *P)
{
    const token *t = &P->tok;
    if (is_literal(t))
        return literal(P);
    if (t->k != TK_VAL)
        parse_unexpected(P, "an operand");
    name_ent *e = parse_name_find(&P->vals, t->s, t->len);
    if (!e)
        ERROR_TOK(P, t, "undefined value %%%.*s", (int)t->len, t->s);
    parse_next(P);
    return e->id;
}

static void read_init(parser *P, ag_init *init)
{
    static const struct {
        const char *name;
        ag_init_kind kind;
        int nargs;
    } inits[] = {
        {"zeros", AG_INIT_ZEROS, 0},     {"constant", AG_INIT_CONSTANT, 1}, {"normal", AG_INIT_NORMAL, 2},
        {"uniform", AG_INIT_UNIFORM, 2}, {"xavier", AG_INIT_XAVIER, 0},
    };
    const token *t = &P->tok;
    char d[64];
    if (t->k != TK_IDENT)
        parse_unexpected(P, "an initializer");
    for (size_t i = 0; i < sizeof inits / sizeof *inits; i++)
        if (is_word(t, inits[i].name)) {
            init->kind = inits[i].kind;
            parse_next(P);
            if (inits[i].nargs) {
                parse_expect_punct(P, '(');
                init->a = parse_read_real(P, false);
                if (inits[i].nargs == 2) {
                    parse_expect_punct(P, ',');
                    init->b = parse_read_real(P, false);
                }
                parse_expect_punct(P, ')');
            }
            return;
        }
    ERROR_TOK(P, t, "unknown initializer %s", parse_describe(t, d, sizeof d));
}

/* The value of a const line, checked against its declared dtype. */
static double const_value(parser *P, ag_dtype dtype)
{
    if (dtype == AG_F32)
        return parse_read_real(P, true);
    if (!is_literal(&P->tok))
        parse_unexpected(P, "a number");
    if (parse_float_syntax(&P->tok)) {
        char d[64];
        ERROR_TOK(P, &P->tok, "%s is not an integer, as a %s constant must be", parse_describe(&P->tok, d, sizeof d),
                  ir_dtype_name(dtype));
    }
    int64_t lo = dtype == AG_I32 ? INT32_MIN : 0, hi = dtype == AG_I32 ? INT32_MAX : dtype == AG_U8 ? 255 : 1;
    char what[32];
    snprintf(what, sizeof what, "%s constant", ir_dtype_name(dtype));
    return (double)parse_read_int(P, what, lo, hi);
}

/* body=@kK: a body already read, K its index as the printer writes it. */
static int32_t read_body_ref(parser *P)
{
    const token *t = &P->tok;
    char d[64];
    if (t->k != TK_GNAME)
        parse_unexpected(P, "a body '@kK'");
    bool canonical = t->len >= 2 && t->len <= 11 && t->s[0] == 'k' && (t->s[1] != '0' || t->len == 2);
    int64_t k = 0;
    for (size_t i = 1; canonical && i < t->len; i++) {
        canonical = is_digit((unsigned char)t->s[i]);
        k = k * 10 + (t->s[i] - '0');
    }
    if (!canonical || k >= P->main->nkernels)
        ERROR_TOK(P, t, "unknown body %s", parse_describe(t, d, sizeof d));
    parse_next(P);
    return (int32_t)k;
}

static const struct {
    const char *name;
    unsigned flag;
} attr_names[] = {
    {"axes", A_AXES},       {"keepdims", A_AXES}, {"axis", A_AXIS},     {"perm", A_PERM},       {"ta", A_TRANS},
    {"tb", A_TRANS},        {"p", A_P},           {"site", A_SITE},     {"classes", A_CLASSES}, {"start", A_START},
    {"body", A_KERNEL},     {"out", A_KERNEL},    {"kernel", A_WINDOW}, {"stride", A_WINDOW},   {"pad", A_WINDOW},
    {"dilation", A_WINDOW}, {"groups", A_WINDOW}, {"bucket", A_BUCKET},
};
enum { NATTR = sizeof attr_names / sizeof *attr_names };

/* The attributes after the operands, in any order; returns the count of perm entries. */
static int read_attrs(parser *P, ir_node *n, const token *optok, int *permline, int *permcol)
{
    const char *opname = ir_ops[n->op].name;
    bool seen[NATTR] = {0};
    int nperm = -1, siteline = 0, sitecol = 0;
    token outtok = {0};
    char d[64];
    while (P->tok.k == TK_IDENT) {
        token t = P->tok;
        int a = 0;
        while (a < NATTR && !is_word(&t, attr_names[a].name))
            a++;
        if (a == NATTR || !(ir_ops[n->op].attrs & attr_names[a].flag))
            ERROR_TOK(P, &t, "unknown attribute %s for %s", parse_describe(&t, d, sizeof d), opname);
        if (seen[a])
            ERROR_TOK(P, &t, "duplicate attribute %s", parse_describe(&t, d, sizeof d));
        seen[a] = true;
        parse_next(P);
        const char *name = attr_names[a].name;
        if (!strcmp(name, "keepdims")) {
            n->attr.keepdims = true;
        } else if (!strcmp(name, "ta")) {
            n->attr.ta = true;
        } else if (!strcmp(name, "tb")) {
            n->attr.tb = true;
        } else if (!strcmp(name, "axes")) {
            parse_expect_punct(P, '=');
            parse_expect_punct(P, '[');
            for (int k = 0; !is_punct(P, ']'); k++) {
                if (k)
                    parse_expect_punct(P, ',');
                token at = P->tok;
                int64_t ax = parse_read_int(P, "axis", 0, 7);
                if (n->attr.axes >> ax & 1)
                    ERROR_TOK(P, &at, "duplicate axis %d in axes", (int)ax);
                n->attr.axes |= (uint8_t)(1u << ax);
            }
            parse_next(P);
        } else if (!strcmp(name, "perm")) {
            *permline = t.line;
            *permcol = t.col;
            parse_expect_punct(P, '=');
            parse_expect_punct(P, '[');
            for (nperm = 0; !is_punct(P, ']'); nperm++) {
                if (nperm)
                    parse_expect_punct(P, ',');
                if (nperm == IR_MAX_RANK)
                    ERROR_TOK(P, &P->tok, "perm has more than %d entries", IR_MAX_RANK);
                n->attr.perm[nperm] = (int8_t)parse_read_int(P, "perm entry", INT8_MIN, INT8_MAX);
            }
            parse_next(P);
        } else if (!strcmp(name, "kernel") || !strcmp(name, "stride") || !strcmp(name, "pad") ||
                   !strcmp(name, "dilation")) {
            ir_window *w = &n->attr.win;
            int32_t *pair = name[0] == 'k'   ? w->kernel
                            : name[0] == 's' ? w->stride
                            : name[0] == 'p' ? w->pad
                                             : w->dilation;
            parse_expect_punct(P, '=');
            parse_expect_punct(P, '[');
            pair[0] = (int32_t)parse_read_int(P, name, INT32_MIN, INT32_MAX);
            parse_expect_punct(P, ',');
            pair[1] = (int32_t)parse_read_int(P, name, INT32_MIN, INT32_MAX);
            parse_expect_punct(P, ']');
        } else if (!strcmp(name, "body")) {
            parse_expect_punct(P, '=');
            n->attr.kernel = read_body_ref(P);
        } else if (!strcmp(name, "out")) {
            parse_expect_punct(P, '=');
            if (P->tok.k != TK_IDENT)
                parse_unexpected(P, "an output name");
            outtok = P->tok;
            parse_next(P);
        } else {
            parse_expect_punct(P, '=');
            if (!strcmp(name, "axis"))
                n->attr.axis = (int8_t)parse_read_int(P, "axis", INT8_MIN, INT8_MAX);
            else if (!strcmp(name, "p"))
                n->attr.value = parse_read_real(P, false);
            else if (!strcmp(name, "classes"))
                n->attr.classes = (int32_t)parse_read_int(P, "classes", INT32_MIN, INT32_MAX);
            else if (!strcmp(name, "start"))
                n->attr.start = parse_read_int(P, "start", INT64_MIN, INT64_MAX);
            else if (!strcmp(name, "bucket"))
                n->attr.bucket = (int32_t)parse_read_int(P, "bucket", INT32_MIN, INT32_MAX);
            else if (!strcmp(name, "groups"))
                n->attr.win.groups = (int32_t)parse_read_int(P, "groups", INT32_MIN, INT32_MAX);
            else { /* site */
                siteline = P->tok.line;
                sitecol = P->tok.col;
                n->attr.site = (int32_t)parse_read_int(P, "site", INT32_MIN, INT32_MAX);
            }
        }
    }
    if (!at_eol(P))
        parse_unexpected(P, "an attribute or end of line");
    /* the attributes without a default */
    static const struct {
        unsigned flag;
        const char *name;
    } required[] = {{A_AXES, "axes"},       {A_AXIS, "axis"},       {A_PERM, "perm"},     {A_P, "p"},
                    {A_SITE, "site"},       {A_CLASSES, "classes"}, {A_START, "start"},   {A_KERNEL, "body"},
                    {A_KERNEL, "out"},      {A_WINDOW, "kernel"},   {A_WINDOW, "stride"}, {A_WINDOW, "pad"},
                    {A_WINDOW, "dilation"}, {A_WINDOW, "groups"},   {A_BUCKET, "bucket"}};
    for (size_t r = 0; r < sizeof required / sizeof *required; r++) {
        if (!(ir_ops[n->op].attrs & required[r].flag))
            continue;
        int a = 0;
        while (strcmp(attr_names[a].name, required[r].name))
            a++;
        if (!seen[a])
            ERROR_TOK(P, optok, "%s: missing attribute '%s'", opname, required[r].name);
    }
    if (outtok.len) { /* the output, by name, of the body named (both are there by now) */
        const ir_graph *b = P->main->kernels[n->attr.kernel];
        n->attr.output = -1;
        for (int32_t i = 0; i < b->nout && n->attr.output < 0; i++)
            if (strlen(b->out[i].name) == outtok.len && !memcmp(b->out[i].name, outtok.s, outtok.len))
                n->attr.output = i;
        if (n->attr.output < 0)
            ERROR_TOK(P, &outtok, "body @k%d has no output '%.*s'", (int)n->attr.kernel, (int)outtok.len, outtok.s);
    }
    if (siteline) { /* checked against the other uses of the site once all are read */
        if (P->nsites == P->sitecap)
            P->sites = parse_xgrow(P->sites, &P->sitecap, sizeof *P->sites);
        P->sites[P->nsites++] = (site_use){n->attr.site, n->attr.value, siteline, sitecol};
    }
    return nperm;
}

/* The "; FILE:LINE" after a node, FILE up to the last ':'. */
static ag_loc read_loc(parser *P, const token *t)
{
    ag_loc loc = {NULL, 0};
    if (!t->cmt)
        return loc;
    const char *s = t->cmt, *e = t->cmt + t->cmtlen;
    int col = t->cmtcol;
    while (s < e && (*s == ' ' || *s == '\t'))
        s++, col++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    const char *colon = e;
    while (colon > s && colon[-1] != ':')
        colon--;
    bool ok = colon > s + 1 && colon < e;
    long line = 0;
    for (const char *q = colon; ok && q < e; q++) {
        ok = is_digit((unsigned char)*q) && line <= (INT_MAX - 9) / 10;
        line = line * 10 + (*q - '0');
    }
    for (const char *q = s; ok && q < colon; q++)
        ok = (unsigned char)*q >= 0x20 && *q != 0x7f;
    if (!ok)
        parse_error_at(P, t->line, col, "bad location '%.*s'; expected FILE:LINE", (int)(e - s > 60 ? 60 : e - s), s);
    size_t flen = (size_t)(colon - 1 - s);
    if (!P->lastfile || strlen(P->lastfile) != flen || memcmp(P->lastfile, s, flen) != 0)
        P->lastfile = ir_strndup(P->g, s, flen);
    loc.file = P->lastfile;
    loc.line = (int)line;
    return loc;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

static void read_node(parser *P)
{
    ir_graph *g = P->g;
    char d[64], msg[256];
    token name = P->tok;
    name_ent *prev = parse_name_find(&P->vals, name.s, name.len);
    if (prev)
        ERROR_TOK(P, &name, "redefinition of %%%.*s (first defined on line %d)", (int)name.len, name.s, prev->line);
    parse_next(P);
    parse_expect_punct(P, ':');
    token tytok = P->tok;
    type ty = read_type(P);
    parse_expect_punct(P, '=');
    token optok = P->tok;
    ir_op op;
    if (optok.k != TK_IDENT)
        parse_unexpected(P, "an op");
    if (!ir_op_by_name(optok.s, optok.len, &op))
        ERROR_TOK(P, &optok, "unknown op %s", parse_describe(&optok, d, sizeof d));
    if (P->in_body && (op == IR_param || op == IR_kernel))
        ERROR_TOK(P, &optok, "a kernel body has no %s nodes", ir_ops[op].name);
    parse_next(P);

    ir_node n = ir_node_make(op, 0, NULL);
    n.dtype = ty.dtype;
    n.shape = ty.shape;
    int nperm = -1, permline = 0, permcol = 0;
    if (op == IR_input || op == IR_param) {
        if (!parse_is_identifier(name.s, name.len))
            ERROR_TOK(P, &name, "%s name %%%.*s is not an identifier", ir_ops[op].name, (int)name.len, name.s);
        n.attr.name = ir_strndup(g, name.s, name.len);
        if (op == IR_param)
            read_init(P, &n.attr.init);
        if (is_word(&P->tok, "role")) { /* an input's: what training binds to it; a param's: state */
            parse_next(P);
            parse_expect_punct(P, '=');
            token r = P->tok;
            if (P->tok.k != TK_IDENT || !ir_role_by_name(P->tok.s, P->tok.len, &n.attr.role))
                parse_unexpected(P, op == IR_param
                                        ? "a param's role: state or accum"
                                        : "a role: data, labels, lr, wd, grad_weight, grad_scale, clip_norm or share");
            if ((op == IR_param) != ir_role_of_param(n.attr.role))
                ERROR_TOK(P, &r, "role=%s is %s", ir_role_name(n.attr.role),
                          op == IR_param ? "an input's; a param's role is state or accum" : "a param's");
            parse_next(P);
        }
        if (op == IR_input && is_word(&P->tok, "grad")) {
            if (ty.dtype != AG_F32)
                ERROR_TOK(P, &P->tok, "input %s: a gradient needs f32, not %s", n.attr.name, ir_dtype_name(ty.dtype));
            n.attr.grad = true;
            parse_next(P);
        }
    } else if (op == IR_const) {
        n.attr.value = const_value(P, ty.dtype);
    } else {
        P->nins = 0;
        if (P->tok.k == TK_VAL || is_literal(&P->tok))
            for (;;) {
                int32_t id = operand(P);
                if (P->nins == P->inscap)
                    P->ins = parse_xgrow(P->ins, &P->inscap, sizeof *P->ins);
                P->ins[P->nins++] = id;
                if (!is_punct(P, ','))
                    break;
                parse_next(P);
            }
        if (P->nins > INT32_MAX)
            ERROR_TOK(P, &optok, "too many operands");
        n.nin = (int32_t)P->nins;
        n.in = P->ins;
        nperm = read_attrs(P, &n, &optok, &permline, &permcol);
    }
    if (!at_eol(P))
        parse_unexpected(P, "end of line");
    n.loc = read_loc(P, &P->tok);

    /* concat adds extents: make sure that cannot overflow before the rule does it */
    if (op == IR_concat && n.attr.axis >= 0) {
        int64_t sum = 0;
        for (int32_t i = 0; i < n.nin; i++) {
            const ir_shape *s = &g->node[n.in[i]].shape;
            if (n.attr.axis < s->rank && s->dim[n.attr.axis] > 0)
                sum = add_sat(sum, s->dim[n.attr.axis]);
        }
        if (sum == INT64_MAX)
            ERROR_TOK(P, &optok, "integer overflow in dims: concat is too long");
    }
    /* slice's rule computes start + extent: make sure that cannot overflow */
    if (op == IR_slice && n.attr.axis >= 0 && n.attr.axis < n.shape.rank && n.shape.dim[n.attr.axis] > 0 &&
        n.attr.start > INT64_MAX - n.shape.dim[n.attr.axis] + 1)
        ERROR_TOK(P, &optok, "slice: start %lld is out of range", (long long)n.attr.start);
    if (!ir_infer(g, &n, msg, sizeof msg))
        ERROR_TOK(P, &optok, "%s", msg);
    if (n.dtype != ty.dtype || !ir_shape_eq(&n.shape, &ty.shape)) {
        char a[80], b[80];
        ERROR_TOK(P, &tytok, "declared %s but %s gives %s", ir_type_str(ty.dtype, &ty.shape, a, sizeof a),
                  ir_ops[op].name, ir_type_str(n.dtype, &n.shape, b, sizeof b));
    }
    if (nperm >= 0 && nperm != n.shape.rank)
        parse_error_at(P, permline, permcol, "transpose: perm has %d entries for rank %d", nperm, n.shape.rank);
    int32_t id = ir_intern(g, &n);
    while (P->ntypes - P->block_first < (size_t)g->n) { /* this line's nodes: its own, its literals */
        if (P->ntypes == P->typecap)
            P->types = parse_xgrow(P->types, &P->typecap, sizeof *P->types);
        P->types[P->ntypes++] = (type_at){tytok.line, tytok.col};
    }
    parse_name_add(&P->vals, name.s, name.len, id, name.line);
    parse_next(P);
}

static void read_return(parser *P)
{
    char d[64];
    do {
        parse_next(P); /* 'return' or ',' */
        token name = P->tok;
        if (name.k != TK_IDENT)
            parse_unexpected(P, "an output name");
        if (parse_name_find(&P->outs, name.s, name.len))
            ERROR_TOK(P, &name, "duplicate output name %s", parse_describe(&name, d, sizeof d));
        parse_next(P);
        parse_expect_punct(P, ':');
        int32_t id = operand(P);
        parse_name_add(&P->outs, name.s, name.len, id, name.line);
        char *s = ir_xmalloc(name.len + 1);
        memcpy(s, name.s, name.len);
        s[name.len] = 0;
        ir_add_output(P->g, s, id);
        free(s);
    } while (is_punct(P, ','));
    if (!at_eol(P))
        parse_unexpected(P, "',' or end of line");
}

/* ---- blocks and the graph ---- */

static int site_cmp(const void *a, const void *b)
{
    const site_use *x = a, *y = b;
    if (x->site != y->site)
        return x->site < y->site ? -1 : 1;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return (x->col > y->col) - (x->col < y->col);
}

/* The node lines of a block, up to its 'return'. */
static void read_nodes(parser *P)
{
    parse_expect_punct(P, '{');
    if (P->tok.k != TK_NL)
        parse_unexpected(P, "end of line");
    for (;;) {
        parse_skip_blank_lines(P);
        if (P->tok.k == TK_VAL)
            read_node(P);
        else if (is_word(&P->tok, "return"))
            break;
        else if (is_punct(P, '}'))
            ERROR_TOK(P, &P->tok, "missing 'return' before '}'");
        else
            parse_unexpected(P, "a node or 'return'");
    }
    read_return(P);
}

/* Starts reading the block of graph g (main or a body): its own names, outputs and files. */
static void begin_block(parser *P, ir_graph *g, bool body)
{
    P->g = g;
    P->in_body = body;
    free(P->vals.e);
    free(P->outs.e);
    P->vals = P->outs = (name_tab){0};
    P->lastfile = NULL;
    P->block_first = P->ntypes;
    if (!body)
        P->main_first = P->ntypes;
    else {
        size_t k = (size_t)P->main->nkernels - 1; /* added as it started */
        if (k >= P->bodycap)
            P->body_first = parse_xgrow(P->body_first, &P->bodycap, sizeof *P->body_first);
        P->body_first[k] = P->ntypes;
    }
}

/* Dropout sites key random streams, in the graph and its bodies alike: a site used again (a
 * dropout's backward pass reuses its mask) must drop with the same p. */
static void check_sites(parser *P)
{
    if (!P->nsites)
        return;
    qsort(P->sites, P->nsites, sizeof *P->sites, site_cmp);
    for (size_t i = 1; i < P->nsites; i++) {
        const site_use *u = &P->sites[i], *v = &P->sites[i - 1];
        char a[32], b[32];
        if (u->site == v->site && u->p != v->p)
            parse_error_at(P, u->line, u->col, "dropout site %d has p=%s here but p=%s on line %d", (int)u->site,
                           rt_fmt_double(a, sizeof a, u->p), rt_fmt_double(b, sizeof b, v->p), v->line);
    }
    int32_t last = P->sites[P->nsites - 1].site;
    P->main->next_site = last < INT32_MAX ? last + 1 : last;
}

/* kernel @kK { NODES return NAME: VALUE, ... } with K the next index */
static void read_body(parser *P)
{
    char d[64], name[16];
    parse_next(P); /* 'kernel' */
    if (P->tok.k != TK_GNAME)
        parse_unexpected(P, "a body name '@kK'");
    if (P->main->nkernels == INT32_MAX)
        ERROR_TOK(P, &P->tok, "too many kernel bodies");
    snprintf(name, sizeof name, "k%d", (int)P->main->nkernels);
    if (P->tok.len != strlen(name) || memcmp(P->tok.s, name, P->tok.len))
        ERROR_TOK(P, &P->tok, "expected body @%s, got %s (bodies are numbered from 0 in order)", name,
                  parse_describe(&P->tok, d, sizeof d));
    parse_next(P);
    ir_graph *b = ir_graph_new(name);
    ir_add_kernel(P->main, b); /* owned by main from now on, freed with it on an error */
    begin_block(P, b, true);
    read_nodes(P);
    parse_skip_blank_lines(P);
    if (P->tok.k == TK_EOF)
        ERROR_TOK(P, &P->tok, "missing '}' at end of file");
    if (P->tok.k == TK_IDENT)
        ERROR_TOK(P, &P->tok, "a kernel body has no declarations, got %s", parse_describe(&P->tok, d, sizeof d));
    if (!is_punct(P, '}'))
        parse_unexpected(P, "'}'");
    parse_next(P);
}

/* Every value fits at the declared batch, and all of a block's values together: refused at
 * the type of the first that does not (a body's before the graph's, as they are read). */
static void check_sizes(parser *P)
{
    int64_t batch = ir_declared_batch(P->main);
    char msg[512];
    int32_t bad;
    for (int32_t k = 0; k <= P->main->nkernels; k++) {
        const ir_graph *g = k < P->main->nkernels ? P->main->kernels[k] : P->main;
        size_t first = k < P->main->nkernels ? P->body_first[k] : P->main_first;
        if (ir_check_sizes(g, batch, &bad, msg, sizeof msg))
            continue;
        /* a literal of a return line has no type of its own: the block's last one stands in */
        size_t at = first + (size_t)(bad < 0 ? 0 : bad);
        if (at >= P->ntypes)
            at = P->ntypes ? P->ntypes - 1 : 0;
        if (P->ntypes)
            parse_error_at(P, P->types[at].line, P->types[at].col, "%s", msg);
        else
            parse_error_at(P, 1, 1, "%s", msg);
    }
}

static void read_graph(parser *P)
{
    char d[64];
    parse_next(P);
    parse_skip_blank_lines(P);
    while (is_word(&P->tok, "kernel")) {
        read_body(P);
        parse_skip_blank_lines(P);
    }
    if (!is_word(&P->tok, "graph"))
        parse_unexpected(P, P->main->nkernels ? "'kernel' or 'graph'" : "'graph'");
    begin_block(P, P->main, false);
    parse_next(P);
    if (P->tok.k != TK_GNAME)
        parse_unexpected(P, "a graph name '@name'");
    if (!parse_is_identifier(P->tok.s, P->tok.len))
        ERROR_TOK(P, &P->tok, "graph name %s is not an identifier", parse_describe(&P->tok, d, sizeof d));
    P->g->name = ir_strndup(P->g, P->tok.s, P->tok.len);
    parse_next(P);
    read_nodes(P);
    for (;;) {
        parse_skip_blank_lines(P);
        if (P->tok.k == TK_EOF)
            ERROR_TOK(P, &P->tok, "missing '}' at end of file");
        if (is_punct(P, '}'))
            break;
        if (P->tok.k != TK_IDENT)
            parse_unexpected(P, "a declaration or '}'");
        parse_read_decl(P);
    }
    /* options alone need no training (a forward computation has them too); the rest do */
    const ir_train *t = P->g->train;
    bool training = t && (P->train_line || P->optimizer_line || t->ngroups || t->data);
    if (training && !P->train_line)
        ERROR_TOK(P, &P->tok, "missing 'train' line before '}'");
    if (training && !P->optimizer_line)
        ERROR_TOK(P, &P->tok, "missing 'optimizer' line before '}'");
    parse_next(P);
    parse_skip_blank_lines(P);
    if (P->tok.k != TK_EOF)
        ERROR_TOK(P, &P->tok, "unexpected %s after '}'", parse_describe(&P->tok, d, sizeof d));
    check_sites(P);
    check_sizes(P);
}

ir_graph *ir_parse(const char *text, size_t len, const char *filename, char *err, size_t errlen)
{
    parser *P = ir_xcalloc(1, sizeof *P); /* on the heap: it must survive longjmp intact */
    P->p = P->bol = text ? text : "";
    P->end = P->p + (text ? len : 0);
    P->line = 1;
    P->file = filename ? filename : "<input>";
    P->err = err;
    P->errlen = errlen;
    P->g = P->main = ir_graph_new(NULL);
    ir_graph *g = NULL;
    if (setjmp(P->jmp) == 0) {
        read_graph(P);
        g = P->main;
    } else {
        ir_graph_free(P->main);
    }
    free(P->vals.e);
    free(P->outs.e);
    free(P->ins);
    free(P->sites);
    free(P->sbuf);
    free(P->groups.e);
    free(P->options.e);
    free(P->grouped.e);
    free(P->plan_line);
    free(P->types);
    free(P->body_first);
    free(P);
    return g;
}
