#include <aotgrad.h>

/* issue 8, known failure 1: concat(1, t, ag_scale(t, 0.335)), t = matmul(x, W) */
void known_concat_scale(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 6);
    ag_val y = ag_input(g, "y", AG_F32, AG_N);
    ag_val W = ag_param(g, "W", ag_normal(0, 0.5), 6, 4);
    ag_val V = ag_param(g, "V", ag_normal(0, 0.5), 8);
    ag_val t = ag_matmul(x, W);
    ag_val c = ag_concat(1, t, ag_scale(t, 0.335));
    ag_minimize(g, ag_mse(ag_mv(c, V), y), ag_sgd(.lr = 0.05), .batch = 64, .epochs = 1);
}
