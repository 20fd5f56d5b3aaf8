/* The same mistake 150 times, in a loop: the first 100 are shown, then a count
 * (tests/frontend/test_dsl.c). */
#include <aotgrad.h>

void many_errors(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 4);
    for (int i = 0; i < 150; i++)
        ag_output(g, "o", ag_sum(x, 7));
}
