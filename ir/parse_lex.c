/* The text IR parser's lexer (see ir/parse.c for the parser): tokens, numbers and names.
 *
 * A hand-written lexer over (text, len) that never reads past len; it reads one token at a
 * time into P->tok (parse_next), and its readers take the current token as an integer, a real
 * or a name, each checked as it is read. The parser's names (values, outputs, groups,
 * options) live in hash tables whose entries point into the text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "parse_internal.h"

/* ---- lexer ---- */

void *parse_xgrow(void *p, size_t *cap, size_t size)
{
    *cap = *cap ? *cap * 2 : 16;
    p = ir_xrealloc(p, *cap * size);
    return p;
}

static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
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
        P->sbuf = parse_xgrow(P->sbuf, &P->scap, 1);
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
        P->sbuf = parse_xgrow(P->sbuf, &P->scap, 1);
    P->sbuf[P->slen = 0] = 0;
    for (;;) {
        if (p == end || *p == '\n')
            parse_error_at(P, line, qcol, "unterminated string");
        char c = *p;
        int col = (int)(p - P->bol) + 1;
        if (c == '"')
            return p + 1;
        if (c == 0)
            parse_error_at(P, line, col, "a string cannot hold a NUL byte");
        if (c != '\\') {
            sbuf_push(P, c);
            p++;
            continue;
        }
        if (p + 1 == end || p[1] == '\n')
            parse_error_at(P, line, qcol, "unterminated string");
        char e = p[1];
        if (e == '"' || e == '\\') {
            c = e;
        } else if (e == 'n') {
            c = '\n';
        } else if (e == 't') {
            c = '\t';
        } else if (e == 'x') {
            if (end - p < 4 || !is_hex((unsigned char)p[2]) || !is_hex((unsigned char)p[3]))
                parse_error_at(P, line, col, "bad escape '\\x' in string: expected two hex digits");
            c = (char)(hex_value((unsigned char)p[2]) << 4 | hex_value((unsigned char)p[3]));
            if (c == 0)
                parse_error_at(P, line, col, "a string cannot hold a NUL byte");
            p += 2;
        } else if ((unsigned char)e > 0x20 && (unsigned char)e < 0x7f) {
            parse_error_at(P, line, col, "bad escape '\\%c' in string", e);
        } else {
            char buf[8];
            parse_error_at(P, line, col, "bad escape in string: '\\' before %s", quote_byte((unsigned char)e, buf));
        }
        sbuf_push(P, c);
        p += 2;
    }
}

void parse_next(parser *P)
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
            parse_error_at(P, t->line, t->col, "expected a name after '%c'", q[-1]);
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
        parse_error_at(P, t->line, t->col, "unexpected character %s", quote_byte((unsigned char)*p, buf));
    }
    P->p = p;
}

/* The token as a message shows it. */
const char *parse_describe(const token *t, char *buf, size_t len)
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

_Noreturn void parse_unexpected(parser *P, const char *what)
{
    char buf[64];
    if (P->tok.k == TK_EOF)
        ERROR_TOK(P, &P->tok, "unexpected end of file");
    ERROR_TOK(P, &P->tok, "expected %s, got %s", what, parse_describe(&P->tok, buf, sizeof buf));
}

void parse_expect_punct(parser *P, char c)
{
    if (!is_punct(P, c)) {
        char what[8];
        snprintf(what, sizeof what, "'%c'", c);
        parse_unexpected(P, what);
    }
    parse_next(P);
}

void parse_skip_blank_lines(parser *P)
{
    while (P->tok.k == TK_NL)
        parse_next(P);
}

/* ---- numbers ---- */

/* An optionally signed decimal integer; false on anything else or overflow. */
bool parse_tok_int(const token *t, int64_t *v, bool *overflow)
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

int64_t parse_read_int(parser *P, const char *what, int64_t lo, int64_t hi)
{
    const token *t = &P->tok;
    int64_t v;
    bool overflow;
    if (!parse_tok_int(t, &v, &overflow)) {
        if (overflow)
            ERROR_TOK(P, t, "%s %.*s out of range", what, (int)(t->len > 40 ? 40 : t->len), t->s);
        parse_unexpected(P, "an integer");
    }
    if (v < lo || v > hi)
        ERROR_TOK(P, t, "%s %.*s out of range", what, (int)(t->len > 40 ? 40 : t->len), t->s);
    parse_next(P);
    return v;
}

/* A literal that reads as f32: it has '.', an exponent, inf or nan. */
bool parse_float_syntax(const token *t)
{
    for (size_t i = 0; i < t->len; i++)
        if (t->s[i] == '.' || t->s[i] == 'e' || t->s[i] == 'E' || t->s[i] == 'n' || t->s[i] == 'N')
            return true;
    return false;
}

/* Reads the current literal with strtod (or strtof): it must use all of it and not
 * overflow to infinity. */
double parse_read_real(parser *P, bool f32)
{
    const token *t = &P->tok;
    char buf[128], d[64];
    if (!is_literal(t))
        parse_unexpected(P, "a number");
    if (t->len >= sizeof buf)
        ERROR_TOK(P, t, "number %s is too long", parse_describe(t, d, sizeof d));
    memcpy(buf, t->s, t->len);
    buf[t->len] = 0;
    char *end;
    double v = f32 ? (double)strtof(buf, &end) : strtod(buf, &end);
    if (end != buf + t->len)
        ERROR_TOK(P, t, "bad number %s", parse_describe(t, d, sizeof d));
    if (isinf(v) && !strpbrk(buf, "iI")) /* overflowed, rather than written as inf */
        ERROR_TOK(P, t, "number %s out of range for %s", parse_describe(t, d, sizeof d), f32 ? "f32" : "f64");
    parse_next(P);
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

name_ent *parse_name_find(name_tab *t, const char *s, size_t len)
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

void parse_name_add(name_tab *t, const char *s, size_t len, int32_t id, int line)
{
    if (2 * (t->n + 1) > t->cap) {
        name_tab old = *t;
        t->cap = old.cap ? old.cap * 2 : 64;
        t->e = ir_xcalloc(t->cap, sizeof *t->e);
        t->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.e[i].s)
                parse_name_add(t, old.e[i].s, old.e[i].len, old.e[i].id, old.e[i].line);
        free(old.e);
    }
    size_t k = hash_str(s, len) & (t->cap - 1);
    while (t->e[k].s)
        k = (k + 1) & (t->cap - 1);
    t->e[k] = (name_ent){s, len, id, line};
    t->n++;
}

bool parse_is_identifier(const char *s, size_t len)
{
    if (!len || !is_alpha((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!is_namech((unsigned char)s[i]))
            return false;
    return true;
}
