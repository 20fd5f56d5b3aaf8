#include <aotgrad.h>

/* A forward computation, no training: x -> tanh(x W + b) -> softmax, two outputs. */
void chain(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 4);
    ag_val W = ag_param(g, "W", ag_normal(0, 0.5f), 4, 3);
    ag_val b = ag_param(g, "b", ag_uniform(-0.125f, 0.125f), 3);
    ag_val h = ag_tanh(ag_add(ag_matmul(x, W), b));
    ag_output(g, "h", h);
    ag_output(g, "p", ag_softmax(h));
}
