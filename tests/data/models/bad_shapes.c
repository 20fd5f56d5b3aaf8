#include <aotgrad.h>

/* Two mistakes, each reported at its own line; the values built on them stay quiet. */
void bad_shapes(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 784);
    ag_val W = ag_param(g, "W", ag_normal(0, 0.01), 128, 10);
    ag_val o = ag_input(g, "o", AG_F32, AG_N, 10);

    ag_val h = ag_matmul(x, W);
    ag_output(g, "h", ag_relu(h));
    ag_output(g, "s", ag_sum(o, 3));
}
