#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "text_check.h"

/* Parses text (which must be good) and checks that the graph verifies. */
ir_graph *parse_ok(const char *text)
{
    char err[512] = "";
    ir_graph *g = ir_parse(text, strlen(text), "t.ir", err, sizeof err);
    cr_assert(g, "parse failed: %s", err);
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    return g;
}

/* print(parse(text)) must be text itself, and so must print of that. */
void assert_canonical(const char *text)
{
    ir_graph *g = parse_ok(text);
    char *a = ir_print_str(g);
    cr_assert_str_eq(a, text);
    ir_graph *h = parse_ok(a);
    char *b = ir_print_str(h);
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    ir_graph_free(g);
    ir_graph_free(h);
}

void expect_verify(ir_graph *g, const char *want)
{
    char err[256] = "";
    cr_expect_not(ir_verify(g, err, sizeof err), "verified, want %s", want);
    cr_expect_str_eq(err, want);
    ir_graph_free(g);
}

void set_inputs(ir_graph *g, int32_t id, int32_t nin, const int32_t *in)
{
    int32_t *p = ir_alloc(g, sizeof *p * (size_t)(nin > 0 ? nin : 1));
    if (nin > 0)
        memcpy(p, in, sizeof *p * (size_t)nin);
    g->node[id].in = p;
    g->node[id].nin = nin;
}
