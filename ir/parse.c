/* The text IR parser: the inverse of ir/print.c (see there for the form).
 *
 * A hand-written lexer over (text, len) that never reads past len, and a one-token-lookahead
 * parser that never recurses, so no input can crash it or exhaust the stack. Every node is
 * built with the same ir_infer as the DSL, then checked against its declared type. The first
 * error longjmps out with "file:line:col: error: message"; everything parsed so far lives in
 * the graph's arena or the parser's few buffers, all freed there.
 *
 * After `return` come the declarations (ir_train), one a line, in any order; the printer
 * writes them as train, optimizer, groups, data, options. Then may come the memory plan
 * (ir_plan): a `memory` line, then `buffer` and `inplace` lines naming values, at most one
 * for each value (the verifier checks the plan as a whole).
 *
 * Before the graph come the bodies of its kernels, `kernel @k0 {...}`, `kernel @k1 {...}`
 * and so on in index order: the same node lines and `return`, without params, kernel nodes
 * or declarations. Each is added to the graph (ir_add_kernel) as soon as it starts, so the
 * kernel nodes after it are checked against it by their rule. */
#define _POSIX_C_SOURCE 200809L /* strndup */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "ir.h"

/* ---- lexer ---- */

typedef enum {
    TK_EOF,
    TK_NL,    /* end of line; a trailing "; comment" rides on it */
    TK_IDENT, /* [A-Za-z_][A-Za-z0-9_.]* */
    TK_NUM,   /* digits, a sign, '.', letters of inf/nan and exponents: checked when read */
    TK_VAL,   /* %name */
    TK_GNAME, /* @name */
    TK_PUNCT, /* one of : = [ ] , ( ) { } */
    TK_STR,   /* "...": its text with the quotes; the decoded bytes in the parser's sbuf */
} tok_kind;

typedef struct token {
    tok_kind k;
    const char *s; /* its text (for %name and @name, without the sigil) */
    size_t len;
    int line, col;
    const char *cmt; /* TK_NL, TK_EOF: the comment before it, after the ';' */
    size_t cmtlen;
    int cmtcol;
} token;

typedef struct name_ent {
    const char *s; /* into the text */
    size_t len;
    int32_t id;
    int line;
} name_ent;

typedef struct name_tab {
    name_ent *e;
    size_t cap, n;
} name_tab;

typedef struct site_use {
    int32_t site;
    double p;
    int line, col;
} site_use;

/* Where a node's type was written: its size is checked there once the batch is known. */
typedef struct type_at {
    int line, col;
} type_at;

typedef struct parser {
    const char *p, *end, *bol; /* cursor, end of text, beginning of the cursor's line */
    int line;
    token tok;
    const char *file;
    char *err;
    size_t errlen;
    jmp_buf jmp;
    ir_graph *main; /* the graph being read: it owns the bodies */
    ir_graph *g;    /* the block being read: main or one of its bodies */
    bool in_body;
    name_tab vals, outs;
    int32_t *ins; /* operands of the node being read */
    size_t nins, inscap;
    site_use *sites; /* the dropout sites of every block */
    size_t nsites, sitecap;
    const char *lastfile; /* the last location's file, interned in g */
    char *sbuf;           /* the last string token, decoded (no NUL inside), NUL-ended */
    size_t slen, scap;
    int train_line, optimizer_line, data_line, memory_line; /* where each was declared, 0 if not yet */
    int *plan_line;           /* per node: the line of its buffer or inplace line, 0 if none */
    name_tab groups, options; /* names -> index in g->train's array */
    name_tab grouped;         /* param names -> the index of the group that has it */
    int groupcap, optioncap, classcap;
    type_at *types;     /* per node of every block, blocks in the order read */
    size_t ntypes, typecap;
    size_t *body_first; /* per body: the index in types of its node 0 */
    size_t bodycap, main_first, block_first;
} parser;

static _Noreturn void error_at(parser *P, int line, int col, const char *fmt, ...)
{
    if (P->err && P->errlen) {
        int k = snprintf(P->err, P->errlen, "%s:%d:%d: error: ", P->file, line, col);
        if (k >= 0 && (size_t)k < P->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(P->err + k, P->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    longjmp(P->jmp, 1);
}

#define ERROR_TOK(P, t, ...) error_at(P, (t)->line, (t)->col, __VA_ARGS__)

static void *xgrow(void *p, size_t *cap, size_t size)
{
    *cap = *cap ? *cap * 2 : 16;
    p = realloc(p, *cap * size);
    if (!p) {
        fprintf(stderr, "aotgrad: out of memory\n");
        exit(1);
    }
    return p;
}

static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_namech(int c) { return is_alpha(c) || is_digit(c) || c == '.'; }

/* A byte as it is quoted in a message: '$' or '\xff'. */
static const char *quote_byte(unsigned char c, char buf[8])
{
    if (c > 0x20 && c < 0x7f && c != '\'' && c != '\\')
        snprintf(buf, 8, "'%c'", c);
    else
        snprintf(buf, 8, "'\\x%02x'", c);
    return buf;
}

static bool is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int hex_value(int c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

static void sbuf_push(parser *P, char c)
{
    if (P->slen + 1 >= P->scap)
        P->sbuf = xgrow(P->sbuf, &P->scap, 1);
    P->sbuf[P->slen++] = c;
    P->sbuf[P->slen] = 0;
}

/* The string starting at the quote q, decoded into P->sbuf: escapes \" \\ \n \t \xHH, any
 * other byte but a newline as it is. Returns the position after the closing quote. */
static const char *lex_string(parser *P, const char *q)
{
    const char *p = q + 1, *end = P->end;
    int line = P->line, qcol = (int)(q - P->bol) + 1;
    if (!P->scap)
        P->sbuf = xgrow(P->sbuf, &P->scap, 1);
    P->sbuf[P->slen = 0] = 0;
    for (;;) {
        if (p == end || *p == '\n')
            error_at(P, line, qcol, "unterminated string");
        char c = *p;
        int col = (int)(p - P->bol) + 1;
        if (c == '"')
            return p + 1;
        if (c == 0)
            error_at(P, line, col, "a string cannot hold a NUL byte");
        if (c != '\\') {
            sbuf_push(P, c);
            p++;
            continue;
        }
        if (p + 1 == end || p[1] == '\n')
            error_at(P, line, qcol, "unterminated string");
        char e = p[1];
        if (e == '"' || e == '\\') {
            c = e;
        } else if (e == 'n') {
            c = '\n';
        } else if (e == 't') {
            c = '\t';
        } else if (e == 'x') {
            if (end - p < 4 || !is_hex((unsigned char)p[2]) || !is_hex((unsigned char)p[3]))
                error_at(P, line, col, "bad escape '\\x' in string: expected two hex digits");
            c = (char)(hex_value((unsigned char)p[2]) << 4 | hex_value((unsigned char)p[3]));
            if (c == 0)
                error_at(P, line, col, "a string cannot hold a NUL byte");
            p += 2;
        } else if ((unsigned char)e > 0x20 && (unsigned char)e < 0x7f) {
            error_at(P, line, col, "bad escape '\\%c' in string", e);
        } else {
            char buf[8];
            error_at(P, line, col, "bad escape in string: '\\' before %s", quote_byte((unsigned char)e, buf));
        }
        sbuf_push(P, c);
        p += 2;
    }
}

static void next(parser *P)
{
    token *t = &P->tok;
    const char *p = P->p, *end = P->end;
    t->cmt = NULL;
    t->cmtlen = 0;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    if (p < end && *p == ';') {
        t->cmt = ++p;
        t->cmtcol = (int)(p - P->bol) + 1;
        while (p < end && *p != '\n')
            p++;
        t->cmtlen = (size_t)(p - t->cmt);
    }
    t->s = p;
    t->len = 1;
    t->line = P->line;
    t->col = (int)(p - P->bol) + 1;
    if (p == end) {
        t->k = TK_EOF;
        t->len = 0;
    } else if (*p == '\n') {
        t->k = TK_NL;
        p++;
        P->line++;
        P->bol = p;
    } else if (is_alpha((unsigned char)*p)) {
        t->k = TK_IDENT;
        while (p < end && is_namech((unsigned char)*p))
            p++;
        t->len = (size_t)(p - t->s);
    } else if (is_digit((unsigned char)*p) || *p == '.' ||
               ((*p == '-' || *p == '+') && p + 1 < end && (is_namech((unsigned char)p[1])))) {
        t->k = TK_NUM;
        for (p++; p < end; p++) {
            bool sign = (*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E');
            if (!is_namech((unsigned char)*p) && !sign)
                break;
        }
        t->len = (size_t)(p - t->s);
    } else if (*p == '%' || *p == '@') {
        t->k = *p == '%' ? TK_VAL : TK_GNAME;
        const char *q = ++p;
        while (p < end && is_namech((unsigned char)*p))
            p++;
        if (p == q)
            error_at(P, t->line, t->col, "expected a name after '%c'", q[-1]);
        t->s = q;
        t->len = (size_t)(p - q);
    } else if (*p && strchr(":=[],(){}", *p)) {
        t->k = TK_PUNCT;
        p++;
    } else if (*p == '"') {
        t->k = TK_STR;
        p = lex_string(P, p);
        t->len = (size_t)(p - t->s);
    } else {
        char buf[8];
        error_at(P, t->line, t->col, "unexpected character %s", quote_byte((unsigned char)*p, buf));
    }
    P->p = p;
}

/* The token as a message shows it. */
static const char *describe(const token *t, char *buf, size_t len)
{
    if (t->k == TK_EOF)
        return "end of file";
    if (t->k == TK_NL)
        return "end of line";
    const char *sigil = t->k == TK_VAL ? "%" : t->k == TK_GNAME ? "@" : "";
    if (t->len > 40)
        snprintf(buf, len, "'%s%.40s...'", sigil, t->s);
    else
        snprintf(buf, len, "'%s%.*s'", sigil, (int)t->len, t->s);
    return buf;
}

static _Noreturn void unexpected(parser *P, const char *what)
{
    char buf[64];
    if (P->tok.k == TK_EOF)
        ERROR_TOK(P, &P->tok, "unexpected end of file");
    ERROR_TOK(P, &P->tok, "expected %s, got %s", what, describe(&P->tok, buf, sizeof buf));
}

static bool is_punct(const parser *P, char c) { return P->tok.k == TK_PUNCT && *P->tok.s == c; }
static bool is_word(const token *t, const char *w)
{
    return t->k == TK_IDENT && t->len == strlen(w) && memcmp(t->s, w, t->len) == 0;
}
static bool at_eol(const parser *P) { return P->tok.k == TK_NL || P->tok.k == TK_EOF; }

static void expect_punct(parser *P, char c)
{
    if (!is_punct(P, c)) {
        char what[8];
        snprintf(what, sizeof what, "'%c'", c);
        unexpected(P, what);
    }
    next(P);
}

static void skip_blank_lines(parser *P)
{
    while (P->tok.k == TK_NL)
        next(P);
}

/* ---- numbers ---- */

/* An optionally signed decimal integer; false on anything else or overflow. */
static bool tok_int(const token *t, int64_t *v, bool *overflow)
{
    const char *s = t->s, *e = t->s + t->len;
    bool neg = s < e && (*s == '-' || *s == '+') ? *s++ == '-' : false;
    *overflow = false;
    if (t->k != TK_NUM || s == e)
        return false;
    uint64_t x = 0;
    for (; s < e; s++) {
        if (!is_digit((unsigned char)*s))
            return false;
        if (x > (UINT64_MAX - 9) / 10)
            *overflow = true;
        else
            x = x * 10 + (uint64_t)(*s - '0');
    }
    if (x > (uint64_t)INT64_MAX)
        *overflow = true;
    if (*overflow)
        return false;
    *v = neg ? -(int64_t)x : (int64_t)x;
    return true;
}

static int64_t read_int(parser *P, const char *what, int64_t lo, int64_t hi)
{
    const token *t = &P->tok;
    int64_t v;
    bool overflow;
    if (!tok_int(t, &v, &overflow)) {
        if (overflow)
            ERROR_TOK(P, t, "%s %.*s out of range", what, (int)(t->len > 40 ? 40 : t->len), t->s);
        unexpected(P, "an integer");
    }
    if (v < lo || v > hi)
        ERROR_TOK(P, t, "%s %.*s out of range", what, (int)(t->len > 40 ? 40 : t->len), t->s);
    next(P);
    return v;
}

/* A literal that reads as f32: it has '.', an exponent, inf or nan. */
static bool float_syntax(const token *t)
{
    for (size_t i = 0; i < t->len; i++)
        if (t->s[i] == '.' || t->s[i] == 'e' || t->s[i] == 'E' || t->s[i] == 'n' || t->s[i] == 'N')
            return true;
    return false;
}

static bool is_literal(const token *t)
{
    return t->k == TK_NUM || is_word(t, "inf") || is_word(t, "nan");
}

/* Reads the current literal with strtod (or strtof): it must use all of it and not
 * overflow to infinity. */
static double read_real(parser *P, bool f32)
{
    const token *t = &P->tok;
    char buf[128], d[64];
    if (!is_literal(t))
        unexpected(P, "a number");
    if (t->len >= sizeof buf)
        ERROR_TOK(P, t, "number %s is too long", describe(t, d, sizeof d));
    memcpy(buf, t->s, t->len);
    buf[t->len] = 0;
    char *end;
    double v = f32 ? (double)strtof(buf, &end) : strtod(buf, &end);
    if (end != buf + t->len)
        ERROR_TOK(P, t, "bad number %s", describe(t, d, sizeof d));
    if (isinf(v) && !strpbrk(buf, "iI")) /* overflowed, rather than written as inf */
        ERROR_TOK(P, t, "number %s out of range for %s", describe(t, d, sizeof d), f32 ? "f32" : "f64");
    next(P);
    return v;
}

/* ---- names ---- */

static uint64_t hash_str(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static name_ent *name_find(name_tab *t, const char *s, size_t len)
{
    if (!t->cap)
        return NULL;
    for (size_t k = hash_str(s, len) & (t->cap - 1);; k = (k + 1) & (t->cap - 1)) {
        name_ent *e = &t->e[k];
        if (!e->s)
            return NULL;
        if (e->len == len && memcmp(e->s, s, len) == 0)
            return e;
    }
}

static void name_add(name_tab *t, const char *s, size_t len, int32_t id, int line)
{
    if (2 * (t->n + 1) > t->cap) {
        name_tab old = *t;
        t->cap = old.cap ? old.cap * 2 : 64;
        t->e = calloc(t->cap, sizeof *t->e);
        if (!t->e) {
            fprintf(stderr, "aotgrad: out of memory\n");
            exit(1);
        }
        t->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.e[i].s)
                name_add(t, old.e[i].s, old.e[i].len, old.e[i].id, old.e[i].line);
        free(old.e);
    }
    size_t k = hash_str(s, len) & (t->cap - 1);
    while (t->e[k].s)
        k = (k + 1) & (t->cap - 1);
    t->e[k] = (name_ent){s, len, id, line};
    t->n++;
}

static bool is_identifier(const char *s, size_t len)
{
    if (!len || !is_alpha((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!is_namech((unsigned char)s[i]))
            return false;
    return true;
}

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
        unexpected(P, "a type");
    if (!ir_dtype_by_name(t->s, t->len, &ty.dtype))
        ERROR_TOK(P, t, "unknown dtype %s", describe(t, d, sizeof d));
    if (ty.dtype == AG_F64)
        ERROR_TOK(P, t, "dtype f64 is not allowed in a graph");
    next(P);
    expect_punct(P, '[');
    int64_t numel = 1;
    bool batch = false;
    while (!is_punct(P, ']')) {
        if (ty.shape.rank > 0)
            expect_punct(P, ',');
        if (ty.shape.rank == IR_MAX_RANK)
            ERROR_TOK(P, t, "more than %d dims", IR_MAX_RANK);
        int64_t v;
        bool overflow;
        if (is_word(t, "N")) {
            if (batch)
                ERROR_TOK(P, t, "the batch dim N appears twice");
            batch = true;
            v = AG_N;
        } else if (tok_int(t, &v, &overflow) && v > 0 && is_digit((unsigned char)t->s[0])) {
            if (__builtin_mul_overflow(numel, v, &numel))
                ERROR_TOK(P, t, "integer overflow in dims: the shape has too many elements");
        } else if (overflow && is_digit((unsigned char)t->s[0])) {
            ERROR_TOK(P, t, "integer overflow in dim %s", describe(t, d, sizeof d));
        } else if (t->k == TK_NUM) {
            ERROR_TOK(P, t, "bad dim %s: dims are positive integers or N", describe(t, d, sizeof d));
        } else {
            unexpected(P, "a dim");
        }
        ty.shape.dim[ty.shape.rank++] = v;
        next(P);
    }
    next(P);
    return ty;
}

/* ---- nodes ---- */

/* An f32 or i32 scalar constant from its literal. */
static int32_t literal(parser *P)
{
    const token t = P->tok;
    ir_node n = ir_node_make(IR_const, 0, NULL);
    if (float_syntax(&t)) {
        n.dtype = AG_F32;
        n.attr.value = read_real(P, true);
    } else {
        n.dtype = AG_I32;
        n.attr.value = (double)read_int(P, "i32 literal", INT32_MIN, INT32_MAX);
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
        unexpected(P, "an operand");
    name_ent *e = name_find(&P->vals, t->s, t->len);
    if (!e)
        ERROR_TOK(P, t, "undefined value %%%.*s", (int)t->len, t->s);
    next(P);
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
        unexpected(P, "an initializer");
    for (size_t i = 0; i < sizeof inits / sizeof *inits; i++)
        if (is_word(t, inits[i].name)) {
            init->kind = inits[i].kind;
            next(P);
            if (inits[i].nargs) {
                expect_punct(P, '(');
                init->a = read_real(P, false);
                if (inits[i].nargs == 2) {
                    expect_punct(P, ',');
                    init->b = read_real(P, false);
                }
                expect_punct(P, ')');
            }
            return;
        }
    ERROR_TOK(P, t, "unknown initializer %s", describe(t, d, sizeof d));
}

/* The value of a const line, checked against its declared dtype. */
static double const_value(parser *P, ag_dtype dtype)
{
    if (dtype == AG_F32)
        return read_real(P, true);
    if (!is_literal(&P->tok))
        unexpected(P, "a number");
    if (float_syntax(&P->tok)) {
        char d[64];
        ERROR_TOK(P, &P->tok, "%s is not an integer, as a %s constant must be", describe(&P->tok, d, sizeof d),
                  ir_dtype_name(dtype));
    }
    int64_t lo = dtype == AG_I32 ? INT32_MIN : 0, hi = dtype == AG_I32 ? INT32_MAX : dtype == AG_U8 ? 255 : 1;
    char what[32];
    snprintf(what, sizeof what, "%s constant", ir_dtype_name(dtype));
    return (double)read_int(P, what, lo, hi);
}

/* body=@kK: a body already read, K its index as the printer writes it. */
static int32_t read_body_ref(parser *P)
{
    const token *t = &P->tok;
    char d[64];
    if (t->k != TK_GNAME)
        unexpected(P, "a body '@kK'");
    bool canonical = t->len >= 2 && t->len <= 11 && t->s[0] == 'k' && (t->s[1] != '0' || t->len == 2);
    int64_t k = 0;
    for (size_t i = 1; canonical && i < t->len; i++) {
        canonical = is_digit((unsigned char)t->s[i]);
        k = k * 10 + (t->s[i] - '0');
    }
    if (!canonical || k >= P->main->nkernels)
        ERROR_TOK(P, t, "unknown body %s", describe(t, d, sizeof d));
    next(P);
    return (int32_t)k;
}

static const struct {
    const char *name;
    unsigned flag;
} attr_names[] = {
    {"axes", A_AXES}, {"keepdims", A_AXES}, {"axis", A_AXIS}, {"perm", A_PERM}, {"ta", A_TRANS},
    {"tb", A_TRANS},  {"p", A_P},           {"site", A_SITE}, {"classes", A_CLASSES}, {"start", A_START},
    {"body", A_KERNEL}, {"out", A_KERNEL},
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
            ERROR_TOK(P, &t, "unknown attribute %s for %s", describe(&t, d, sizeof d), opname);
        if (seen[a])
            ERROR_TOK(P, &t, "duplicate attribute %s", describe(&t, d, sizeof d));
        seen[a] = true;
        next(P);
        const char *name = attr_names[a].name;
        if (!strcmp(name, "keepdims")) {
            n->attr.keepdims = true;
        } else if (!strcmp(name, "ta")) {
            n->attr.ta = true;
        } else if (!strcmp(name, "tb")) {
            n->attr.tb = true;
        } else if (!strcmp(name, "axes")) {
            expect_punct(P, '=');
            expect_punct(P, '[');
            for (int k = 0; !is_punct(P, ']'); k++) {
                if (k)
                    expect_punct(P, ',');
                token at = P->tok;
                int64_t ax = read_int(P, "axis", 0, 7);
                if (n->attr.axes >> ax & 1)
                    ERROR_TOK(P, &at, "duplicate axis %d in axes", (int)ax);
                n->attr.axes |= (uint8_t)(1u << ax);
            }
            next(P);
        } else if (!strcmp(name, "perm")) {
            *permline = t.line;
            *permcol = t.col;
            expect_punct(P, '=');
            expect_punct(P, '[');
            for (nperm = 0; !is_punct(P, ']'); nperm++) {
                if (nperm)
                    expect_punct(P, ',');
                if (nperm == IR_MAX_RANK)
                    ERROR_TOK(P, &P->tok, "perm has more than %d entries", IR_MAX_RANK);
                n->attr.perm[nperm] = (int8_t)read_int(P, "perm entry", INT8_MIN, INT8_MAX);
            }
            next(P);
        } else if (!strcmp(name, "body")) {
            expect_punct(P, '=');
            n->attr.kernel = read_body_ref(P);
        } else if (!strcmp(name, "out")) {
            expect_punct(P, '=');
            if (P->tok.k != TK_IDENT)
                unexpected(P, "an output name");
            outtok = P->tok;
            next(P);
        } else {
            expect_punct(P, '=');
            if (!strcmp(name, "axis"))
                n->attr.axis = (int8_t)read_int(P, "axis", INT8_MIN, INT8_MAX);
            else if (!strcmp(name, "p"))
                n->attr.value = read_real(P, false);
            else if (!strcmp(name, "classes"))
                n->attr.classes = (int32_t)read_int(P, "classes", INT32_MIN, INT32_MAX);
            else if (!strcmp(name, "start"))
                n->attr.start = read_int(P, "start", INT64_MIN, INT64_MAX);
            else { /* site */
                siteline = P->tok.line;
                sitecol = P->tok.col;
                n->attr.site = (int32_t)read_int(P, "site", INT32_MIN, INT32_MAX);
            }
        }
    }
    if (!at_eol(P))
        unexpected(P, "an attribute or end of line");
    /* the attributes without a default */
    static const struct {
        unsigned flag;
        const char *name;
    } required[] = {{A_AXES, "axes"}, {A_AXIS, "axis"},       {A_PERM, "perm"},  {A_P, "p"},
                    {A_SITE, "site"}, {A_CLASSES, "classes"}, {A_START, "start"}, {A_KERNEL, "body"},
                    {A_KERNEL, "out"}};
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
            P->sites = xgrow(P->sites, &P->sitecap, sizeof *P->sites);
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
        error_at(P, t->line, col, "bad location '%.*s'; expected FILE:LINE", (int)(e - s > 60 ? 60 : e - s), s);
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
    name_ent *prev = name_find(&P->vals, name.s, name.len);
    if (prev)
        ERROR_TOK(P, &name, "redefinition of %%%.*s (first defined on line %d)", (int)name.len, name.s, prev->line);
    next(P);
    expect_punct(P, ':');
    token tytok = P->tok;
    type ty = read_type(P);
    expect_punct(P, '=');
    token optok = P->tok;
    ir_op op;
    if (optok.k != TK_IDENT)
        unexpected(P, "an op");
    if (!ir_op_by_name(optok.s, optok.len, &op))
        ERROR_TOK(P, &optok, "unknown op %s", describe(&optok, d, sizeof d));
    if (P->in_body && (op == IR_param || op == IR_kernel))
        ERROR_TOK(P, &optok, "a kernel body has no %s nodes", ir_ops[op].name);
    next(P);

    ir_node n = ir_node_make(op, 0, NULL);
    n.dtype = ty.dtype;
    n.shape = ty.shape;
    int nperm = -1, permline = 0, permcol = 0;
    if (op == IR_input || op == IR_param) {
        if (!is_identifier(name.s, name.len))
            ERROR_TOK(P, &name, "%s name %%%.*s is not an identifier", ir_ops[op].name, (int)name.len, name.s);
        n.attr.name = ir_strndup(g, name.s, name.len);
        if (op == IR_param)
            read_init(P, &n.attr.init);
        if (op == IR_input && is_word(&P->tok, "grad")) {
            if (ty.dtype != AG_F32)
                ERROR_TOK(P, &P->tok, "input %s: a gradient needs f32, not %s", n.attr.name, ir_dtype_name(ty.dtype));
            n.attr.grad = true;
            next(P);
        }
    } else if (op == IR_const) {
        n.attr.value = const_value(P, ty.dtype);
    } else {
        P->nins = 0;
        if (P->tok.k == TK_VAL || is_literal(&P->tok))
            for (;;) {
                int32_t id = operand(P);
                if (P->nins == P->inscap)
                    P->ins = xgrow(P->ins, &P->inscap, sizeof *P->ins);
                P->ins[P->nins++] = id;
                if (!is_punct(P, ','))
                    break;
                next(P);
            }
        if (P->nins > INT32_MAX)
            ERROR_TOK(P, &optok, "too many operands");
        n.nin = (int32_t)P->nins;
        n.in = P->ins;
        nperm = read_attrs(P, &n, &optok, &permline, &permcol);
    }
    if (!at_eol(P))
        unexpected(P, "end of line");
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
        error_at(P, permline, permcol, "transpose: perm has %d entries for rank %d", nperm, n.shape.rank);
    int32_t id = ir_intern(g, &n);
    while (P->ntypes - P->block_first < (size_t)g->n) { /* this line's nodes: its own, its literals */
        if (P->ntypes == P->typecap)
            P->types = xgrow(P->types, &P->typecap, sizeof *P->types);
        P->types[P->ntypes++] = (type_at){tytok.line, tytok.col};
    }
    name_add(&P->vals, name.s, name.len, id, name.line);
    next(P);
}

static void read_return(parser *P)
{
    char d[64];
    do {
        next(P); /* 'return' or ',' */
        token name = P->tok;
        if (name.k != TK_IDENT)
            unexpected(P, "an output name");
        if (name_find(&P->outs, name.s, name.len))
            ERROR_TOK(P, &name, "duplicate output name %s", describe(&name, d, sizeof d));
        next(P);
        expect_punct(P, ':');
        int32_t id = operand(P);
        name_add(&P->outs, name.s, name.len, id, name.line);
        char *s = strndup(name.s, name.len);
        if (!s) {
            fprintf(stderr, "aotgrad: out of memory\n");
            exit(1);
        }
        ir_add_output(P->g, s, id);
        free(s);
    } while (is_punct(P, ','));
    if (!at_eol(P))
        unexpected(P, "',' or end of line");
}

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
        unexpected(P, "a string");
    const char *s = ir_strndup(P->g, P->sbuf, P->slen);
    next(P);
    return s;
}

static const char *read_name(parser *P, const char *what)
{
    if (P->tok.k != TK_IDENT)
        unexpected(P, what);
    const char *s = ir_strndup(P->g, P->tok.s, P->tok.len);
    next(P);
    return s;
}

/* lr, wd and the scales: finite, >= 0, and an f32 (the step takes them as f32 inputs), as
 * the DSL requires */
static double read_rate(parser *P, const char *what)
{
    token t = P->tok;
    char d[64];
    double v = read_real(P, false);
    if (!isfinite(v))
        ERROR_TOK(P, &t, "%s must be finite, got %s", what, describe(&t, d, sizeof d));
    if (v < 0 || v > FLT_MAX)
        ERROR_TOK(P, &t, "%s must be >= 0 and fit an f32, got %s", what, describe(&t, d, sizeof d));
    return v;
}

/* An output named in the train line; its node id in *id. */
static const char *read_output_name(parser *P, const char *what, int32_t *id)
{
    token t = P->tok;
    if (t.k != TK_IDENT)
        unexpected(P, "an output name");
    name_ent *e = name_find(&P->outs, t.s, t.len);
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
        ERROR_TOK(P, &t, "unknown key %s in a%s %s line", describe(&t, d, sizeof d),
                  strchr("aeiou", *line) ? "n" : "", line);
    if (*seen >> k & 1)
        ERROR_TOK(P, &t, "duplicate key %s", describe(&t, d, sizeof d));
    *seen |= 1u << k;
    next(P);
    expect_punct(P, '=');
    return k;
}

/* The end of a declaration line: every key of `required` was given. */
static void end_decl(parser *P, const char *const *keys, unsigned required, unsigned seen, const token *word)
{
    if (!at_eol(P))
        unexpected(P, "a key or end of line");
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
    next(P);
    if (P->tok.k != TK_IDENT)
        unexpected(P, "a stage");
    int st = 0;
    while (st < 3 && !is_word(&P->tok, stages[st]))
        st++;
    if (st == 3)
        ERROR_TOK(P, &P->tok, "unknown stage %s; expected model, gradients or step", describe(&P->tok, d, sizeof d));
    t->stage = (ir_stage)st;
    next(P);
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
            expect_punct(P, '[');
            while (!is_punct(P, ']')) {
                if (t->nmetrics)
                    expect_punct(P, ',');
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
            next(P);
            break;
        default:
            t->predict = read_output_name(P, "predict", &id);
            break;
        }
    }
    end_decl(P, keys, 1u, seen, word);
}

/* optimizer NAME lr=REAL wd=REAL batch=INT epochs=INT */
static void read_optimizer(parser *P, const token *word)
{
    static const char *const keys[] = {"lr", "wd", "batch", "epochs", NULL};
    ir_train *t = train_of(P);
    first_of_its_kind(P, word, &P->optimizer_line);
    next(P);
    token name = P->tok;
    t->optimizer = read_name(P, "an optimizer name");
    if (strcmp(t->optimizer, "sgd") != 0)
        ERROR_TOK(P, &name, "unknown optimizer '%s' (aotgrad has sgd)", t->optimizer);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        switch (read_key(P, keys, &seen, "optimizer")) {
        case 0: t->lr = read_rate(P, "lr"); break;
        case 1: t->wd = read_rate(P, "wd"); break;
        case 2: t->batch = read_int(P, "batch", 1, IR_MAX_COUNT); break;
        default: t->epochs = read_int(P, "epochs", 1, IR_MAX_COUNT); break;
        }
    }
    end_decl(P, keys, 0xfu, seen, word);
}

/* group NAME wd_scale=REAL lr_scale=REAL params=[NAME, ...] */
static void read_group(parser *P, const token *word)
{
    static const char *const keys[] = {"wd_scale", "lr_scale", "params", NULL};
    ir_train *t = train_of(P);
    next(P);
    token name = P->tok;
    if (name.k != TK_IDENT)
        unexpected(P, "a group name");
    name_ent *prev = name_find(&P->groups, name.s, name.len);
    if (prev)
        ERROR_TOK(P, &name, "duplicate group '%.*s' (first on line %d)", (int)name.len, name.s, prev->line);
    t->groups = arena_grow(P, t->groups, t->ngroups, &P->groupcap, sizeof *t->groups);
    int32_t index = t->ngroups++;
    ir_group *gr = &t->groups[index];
    gr->name = read_name(P, "a group name");
    name_add(&P->groups, name.s, name.len, index, name.line);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        switch (read_key(P, keys, &seen, "group")) {
        case 0: gr->wd_scale = read_rate(P, "wd_scale"); break;
        case 1: gr->lr_scale = read_rate(P, "lr_scale"); break;
        default: {
            int cap = 0;
            expect_punct(P, '[');
            while (!is_punct(P, ']')) {
                if (gr->nparams)
                    expect_punct(P, ',');
                token pt = P->tok;
                if (pt.k != TK_IDENT)
                    unexpected(P, "a param name");
                name_ent *v = name_find(&P->vals, pt.s, pt.len);
                if (!v || P->g->node[v->id].op != IR_param)
                    ERROR_TOK(P, &pt, "'%.*s' is not a param", (int)pt.len, pt.s);
                name_ent *in = name_find(&P->grouped, pt.s, pt.len);
                if (in)
                    ERROR_TOK(P, &pt, "param '%.*s' is already in group '%s'", (int)pt.len, pt.s,
                              t->groups[in->id].name);
                name_add(&P->grouped, pt.s, pt.len, index, pt.line);
                gr->params = arena_grow(P, gr->params, gr->nparams, &cap, sizeof *gr->params);
                gr->params[gr->nparams++] = read_name(P, "a param name");
            }
            next(P);
            break;
        }
        }
    }
    end_decl(P, keys, 0x7u, seen, word);
}

/* data "STRING" [classes=["STRING", ...]] */
static void read_data(parser *P, const token *word)
{
    static const char *const keys[] = {"classes", NULL};
    ir_train *t = train_of(P);
    first_of_its_kind(P, word, &P->data_line);
    next(P);
    t->data = read_string(P);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        read_key(P, keys, &seen, "data");
        expect_punct(P, '[');
        while (!is_punct(P, ']')) {
            if (t->nclasses)
                expect_punct(P, ',');
            if (t->nclasses == IR_MAX_CLASSES)
                ERROR_TOK(P, &P->tok, "more than %d classes", IR_MAX_CLASSES);
            t->classes = arena_grow(P, t->classes, t->nclasses, &P->classcap, sizeof *t->classes);
            t->classes[t->nclasses] = read_string(P);
            t->nclasses++;
        }
        next(P);
    }
    end_decl(P, keys, 0, seen, word);
}

/* option NAME="VALUE" choices="A|B|C" */
static void read_option(parser *P, const token *word)
{
    static const char *const keys[] = {"choices", NULL};
    ir_train *t = train_of(P);
    next(P);
    token name = P->tok;
    if (name.k != TK_IDENT)
        unexpected(P, "an option name");
    name_ent *prev = name_find(&P->options, name.s, name.len);
    if (prev)
        ERROR_TOK(P, &name, "duplicate option '%.*s' (first on line %d)", (int)name.len, name.s, prev->line);
    t->options = arena_grow(P, t->options, t->noptions, &P->optioncap, sizeof *t->options);
    name_add(&P->options, name.s, name.len, t->noptions, name.line);
    ir_option *o = &t->options[t->noptions++];
    o->name = read_name(P, "an option name");
    expect_punct(P, '=');
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
    next(P);
    size_t n = (size_t)(g->n > 0 ? g->n : 1);
    ir_plan *p = ir_alloc(g, sizeof *p);
    p->offset = ir_alloc(g, sizeof *p->offset * n);
    p->inplace = ir_alloc(g, sizeof *p->inplace * n);
    for (int32_t i = 0; i < g->n; i++)
        p->offset[i] = -1, p->inplace[i] = -1;
    p->file = ir_strndup(g, P->file, strlen(P->file));
    p->line = ir_alloc(g, sizeof *p->line * n); /* zeroed */
    p->memory_line = P->memory_line;
    P->plan_line = calloc(n, sizeof *P->plan_line);
    if (!P->plan_line) {
        fprintf(stderr, "aotgrad: out of memory\n");
        exit(1);
    }
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        if (read_key(P, keys, &seen, "memory") == 0)
            p->batch = read_int(P, "batch", 1, INT64_MAX);
        else
            p->arena = read_int(P, "arena", 0, INT64_MAX);
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
        unexpected(P, "a value");
    name_ent *e = name_find(&P->vals, t.s, t.len);
    if (!e)
        ERROR_TOK(P, &t, "undefined value %%%.*s", (int)t.len, t.s);
    const ir_node *n = &P->g->node[e->id];
    if (ir_ops[n->op].kind == IR_K_SOURCE)
        ERROR_TOK(P, &t, "%s is %s %s, not a computed value: it has no place in the plan", describe(&t, d, sizeof d),
                  n->op == IR_input ? "an" : "a", ir_ops[n->op].name);
    if (P->plan_line[e->id])
        ERROR_TOK(P, &t, "duplicate plan for %s (first on line %d)", describe(&t, d, sizeof d), P->plan_line[e->id]);
    P->plan_line[e->id] = t.line;
    P->g->plan->line[e->id] = t.line; /* the verifier's plan errors name it */
    next(P);
    return e->id;
}

/* buffer VALUE offset=INT */
static void read_buffer(parser *P, const token *word)
{
    static const char *const keys[] = {"offset", NULL};
    next(P);
    int32_t id = read_planned(P, word);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        read_key(P, keys, &seen, "buffer");
        P->g->plan->offset[id] = read_int(P, "offset", 0, INT64_MAX);
    }
    end_decl(P, keys, 0x1u, seen, word);
}

/* inplace VALUE into=PARAM */
static void read_inplace(parser *P, const token *word)
{
    static const char *const keys[] = {"into", NULL};
    next(P);
    int32_t id = read_planned(P, word);
    unsigned seen = 0;
    while (P->tok.k == TK_IDENT) {
        read_key(P, keys, &seen, "inplace");
        token t = P->tok;
        char d[64];
        if (t.k != TK_VAL)
            unexpected(P, "a param");
        name_ent *e = name_find(&P->vals, t.s, t.len);
        if (!e)
            ERROR_TOK(P, &t, "undefined value %%%.*s", (int)t.len, t.s);
        if (P->g->node[e->id].op != IR_param)
            ERROR_TOK(P, &t, "into=%s: not a param", describe(&t, d, sizeof d));
        P->g->plan->inplace[id] = e->id;
        next(P);
    }
    end_decl(P, keys, 0x1u, seen, word);
}

static void read_decl(parser *P)
{
    static const struct {
        const char *word;
        void (*read)(parser *, const token *);
    } decls[] = {{"train", read_train},
                 {"optimizer", read_optimizer},
                 {"group", read_group},
                 {"data", read_data},
                 {"option", read_option},
                 {"memory", read_memory},
                 {"buffer", read_buffer},
                 {"inplace", read_inplace}};
    token word = P->tok;
    char d[64];
    for (size_t i = 0; i < sizeof decls / sizeof *decls; i++)
        if (is_word(&word, decls[i].word)) {
            decls[i].read(P, &word);
            return;
        }
    ERROR_TOK(P, &word, "unknown declaration %s", describe(&word, d, sizeof d));
}

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
    expect_punct(P, '{');
    if (P->tok.k != TK_NL)
        unexpected(P, "end of line");
    for (;;) {
        skip_blank_lines(P);
        if (P->tok.k == TK_VAL)
            read_node(P);
        else if (is_word(&P->tok, "return"))
            break;
        else if (is_punct(P, '}'))
            ERROR_TOK(P, &P->tok, "missing 'return' before '}'");
        else
            unexpected(P, "a node or 'return'");
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
            P->body_first = xgrow(P->body_first, &P->bodycap, sizeof *P->body_first);
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
            error_at(P, u->line, u->col, "dropout site %d has p=%s here but p=%s on line %d", (int)u->site,
                     rt_fmt_double(a, sizeof a, u->p), rt_fmt_double(b, sizeof b, v->p), v->line);
    }
    int32_t last = P->sites[P->nsites - 1].site;
    P->main->next_site = last < INT32_MAX ? last + 1 : last;
}

/* kernel @kK { NODES return NAME: VALUE, ... } with K the next index */
static void read_body(parser *P)
{
    char d[64], name[16];
    next(P); /* 'kernel' */
    if (P->tok.k != TK_GNAME)
        unexpected(P, "a body name '@kK'");
    if (P->main->nkernels == INT32_MAX)
        ERROR_TOK(P, &P->tok, "too many kernel bodies");
    snprintf(name, sizeof name, "k%d", (int)P->main->nkernels);
    if (P->tok.len != strlen(name) || memcmp(P->tok.s, name, P->tok.len))
        ERROR_TOK(P, &P->tok, "expected body @%s, got %s (bodies are numbered from 0 in order)", name,
                  describe(&P->tok, d, sizeof d));
    next(P);
    ir_graph *b = ir_graph_new(name);
    ir_add_kernel(P->main, b); /* owned by main from now on, freed with it on an error */
    begin_block(P, b, true);
    read_nodes(P);
    skip_blank_lines(P);
    if (P->tok.k == TK_EOF)
        ERROR_TOK(P, &P->tok, "missing '}' at end of file");
    if (P->tok.k == TK_IDENT)
        ERROR_TOK(P, &P->tok, "a kernel body has no declarations, got %s", describe(&P->tok, d, sizeof d));
    if (!is_punct(P, '}'))
        unexpected(P, "'}'");
    next(P);
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
            error_at(P, P->types[at].line, P->types[at].col, "%s", msg);
        else
            error_at(P, 1, 1, "%s", msg);
    }
}

static void read_graph(parser *P)
{
    char d[64];
    next(P);
    skip_blank_lines(P);
    while (is_word(&P->tok, "kernel")) {
        read_body(P);
        skip_blank_lines(P);
    }
    if (!is_word(&P->tok, "graph"))
        unexpected(P, P->main->nkernels ? "'kernel' or 'graph'" : "'graph'");
    begin_block(P, P->main, false);
    next(P);
    if (P->tok.k != TK_GNAME)
        unexpected(P, "a graph name '@name'");
    if (!is_identifier(P->tok.s, P->tok.len))
        ERROR_TOK(P, &P->tok, "graph name %s is not an identifier", describe(&P->tok, d, sizeof d));
    P->g->name = ir_strndup(P->g, P->tok.s, P->tok.len);
    next(P);
    read_nodes(P);
    for (;;) {
        skip_blank_lines(P);
        if (P->tok.k == TK_EOF)
            ERROR_TOK(P, &P->tok, "missing '}' at end of file");
        if (is_punct(P, '}'))
            break;
        if (P->tok.k != TK_IDENT)
            unexpected(P, "a declaration or '}'");
        read_decl(P);
    }
    if (P->g->train && !P->train_line)
        ERROR_TOK(P, &P->tok, "missing 'train' line before '}'");
    if (P->g->train && !P->optimizer_line)
        ERROR_TOK(P, &P->tok, "missing 'optimizer' line before '}'");
    next(P);
    skip_blank_lines(P);
    if (P->tok.k != TK_EOF)
        ERROR_TOK(P, &P->tok, "unexpected %s after '}'", describe(&P->tok, d, sizeof d));
    check_sites(P);
    check_sizes(P);
}

ir_graph *ir_parse(const char *text, size_t len, const char *filename, char *err, size_t errlen)
{
    parser *P = calloc(1, sizeof *P); /* on the heap: it must survive longjmp intact */
    if (!P) {
        fprintf(stderr, "aotgrad: out of memory\n");
        exit(1);
    }
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
