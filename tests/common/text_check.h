/* Text IR checks shared by the IR suites. */
#ifndef AG_TESTS_TEXT_CHECK_H
#define AG_TESTS_TEXT_CHECK_H

#include "ir.h"

/* Parses text (which must be good) and checks that the graph verifies. */
ir_graph *parse_ok(const char *text);
/* print(parse(text)) must be text itself, and so must print of that. */
void assert_canonical(const char *text);
/* ir_verify rejects g with exactly want; frees g. */
void expect_verify(ir_graph *g, const char *want);
/* Node id gets operands in[0..nin), as a hand-broken graph needs. */
void set_inputs(ir_graph *g, int32_t id, int32_t nin, const int32_t *in);

#endif
