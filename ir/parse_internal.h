/* What the text IR parser's files share: the parser's state, its tokens and name tables,
 * and the lexer's functions (ir/parse_lex.c), which read the tokens, numbers and names the
 * rest is made of. ir/parse.c reads the graph and its nodes, and hands each line after
 * `return` to parse_read_decl (ir/parse_decl.c). Only those three files include it.
 *
 * A function that takes the parser reports an error by longjmping out through P->jmp with
 * "file:line:col: error: message" (parse_error_at). The parse_ prefix keeps these names,
 * external now, apart from the rest of the library's. */
#ifndef AG_IR_PARSE_INTERNAL_H
#define AG_IR_PARSE_INTERNAL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fail.h"
#include "ir.h"

/* ---- tokens and the parser's state ---- */

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
    int train_line, optimizer_line, data_line, memory_line,
        distributed_line;     /* where each was declared, 0 if not yet */
    int *plan_line;           /* per node: the line of its buffer or inplace line, 0 if none */
    name_tab groups, options; /* names -> index in g->train's array */
    name_tab grouped;         /* param names -> the index of the group that has it */
    int groupcap, optioncap, classcap;
    type_at *types; /* per node of every block, blocks in the order read */
    size_t ntypes, typecap;
    size_t *body_first; /* per body: the index in types of its node 0 */
    size_t bodycap, main_first, block_first;
} parser;

/* ---- the lexer and its readers (ir/parse_lex.c) ---- */

/* "FILE:LINE:COL: error: MESSAGE" into P->err (rt_fail), then out through P->jmp; fmt is a
 * literal. */
#define parse_error_at(P, line, col, fmt, ...)                                                                   \
    (rt_fail((P)->err, (P)->errlen, "%s:%d:%d: error: " fmt, (P)->file, (int)(line), (int)(col), ##__VA_ARGS__), \
     longjmp((P)->jmp, 1))
#define ERROR_TOK(P, t, ...) parse_error_at(P, (t)->line, (t)->col, __VA_ARGS__)
/* Doubles *cap (16 at first) and reallocates p to it (ir_xrealloc: never NULL). */
void *parse_xgrow(void *p, size_t *cap, size_t size);

/* Reads the next token into P->tok. */
void parse_next(parser *P);
/* The token as a message shows it. */
const char *parse_describe(const token *t, char *buf, size_t len);
_Noreturn void parse_unexpected(parser *P, const char *what);
void parse_expect_punct(parser *P, char c);
void parse_skip_blank_lines(parser *P);

static inline bool is_digit(int c) { return c >= '0' && c <= '9'; }
static inline bool is_punct(const parser *P, char c) { return P->tok.k == TK_PUNCT && *P->tok.s == c; }
static inline bool is_word(const token *t, const char *w)
{
    return t->k == TK_IDENT && t->len == strlen(w) && memcmp(t->s, w, t->len) == 0;
}
static inline bool at_eol(const parser *P) { return P->tok.k == TK_NL || P->tok.k == TK_EOF; }
static inline bool is_literal(const token *t) { return t->k == TK_NUM || is_word(t, "inf") || is_word(t, "nan"); }

/* An optionally signed decimal integer; false on anything else or overflow. */
bool parse_tok_int(const token *t, int64_t *v, bool *overflow);
/* The current integer, in [lo, hi] ("WHAT N out of range" if not). */
int64_t parse_read_int(parser *P, const char *what, int64_t lo, int64_t hi);
/* A literal that reads as f32: it has '.', an exponent, inf or nan. */
bool parse_float_syntax(const token *t);
/* The current literal, read as an f32 or an f64. */
double parse_read_real(parser *P, bool f32);

name_ent *parse_name_find(name_tab *t, const char *s, size_t len);
void parse_name_add(name_tab *t, const char *s, size_t len, int32_t id, int line);
bool parse_is_identifier(const char *s, size_t len);

/* ---- declarations and the memory plan (ir/parse_decl.c) ---- */

/* One line after `return`, at its first word: train, optimizer, group, data, option,
 * memory, buffer or inplace. */
void parse_read_decl(parser *P);

#endif
