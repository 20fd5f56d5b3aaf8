#include <aotgrad.h>

/* A LeNet-like model's mistakes, each at its line: weights for 3 input channels on 1, a
 * bias of the wrong length, pooling padded past half its window. */
void bad_conv(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 1, 28, 28);
    ag_val C1 = ag_param(g, "C1", ag_xavier(), 6, 3, 5, 5);
    ag_val C2 = ag_param(g, "C2", ag_xavier(), 6, 1, 5, 5);
    ag_val c2 = ag_param(g, "c2", ag_zeros(), 5);
    ag_output(g, "a", ag_conv2d(x, C1, .pad = 2));
    ag_output(g, "b", ag_conv2d(x, C2, .bias = c2));
    ag_output(g, "c", ag_max_pool2d(x, 2, .pad = 2));
}
