/* Mistakes made without a graph at hand, each reported, counted and in order
 * (tests/frontend/test_dsl.c). */
#include <aotgrad.h>
#include <stddef.h>

void bad_handles(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 6);
    ag_val u = {0}; /* never built */
    ag_output(g, "a", ag_add(x, u));
    ag_output(g, "b", ag_relu(u));
    ag_output(NULL, "c", x);
}
