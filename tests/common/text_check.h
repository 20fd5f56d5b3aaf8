/* Text IR checks shared by the IR suites. */
#ifndef AG_TESTS_TEXT_CHECK_H
#define AG_TESTS_TEXT_CHECK_H

#include "ir.h"

/* Parses text (which must be good) and checks that the graph verifies. */
ir_graph *parse_ok(const char *text);
/* print(parse(text)) must be text itself, and so must print of that. */
void assert_canonical(const char *text);
/* print(g) parses back and prints the same. */
void assert_print_fixed_point(const ir_graph *g);
/* ir_verify rejects g with exactly want; frees g. */
void expect_verify(ir_graph *g, const char *want);
/* Node id gets operands in[0..nin), as a hand-broken graph needs. */
void set_inputs(ir_graph *g, int32_t id, int32_t nin, const int32_t *in);

/* Every op of the table, in canonical form, with two kernel bodies (one unused). */
extern const char text_all_ops[];
/* xorshift64: the random edits' numbers. */
uint64_t text_rng_next(uint64_t *s);
/* One random edit of t[0..*n) at `at`: a byte replaced, deleted, or inserted from pool. */
void text_mutate(char *t, size_t *n, size_t at, const char *pool, size_t npool, uint64_t *seed);

#endif
