#include <aotgrad.h>

/* issue 8, known failure 1: concat(1, x, ag_scale(x, 0.5), matmul(x, W)) */
void known_concat_three(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 6);
    ag_val y = ag_input(g, "y", AG_F32, AG_N);
    ag_val W = ag_param(g, "W", ag_normal(0, 0.5), 6, 2);
    ag_val V = ag_param(g, "V", ag_normal(0, 0.5), 14);
    ag_val c = ag_concat(1, x, ag_scale(x, 0.5), ag_matmul(x, W));
    ag_minimize(g, ag_mse(ag_mv(c, V), y), ag_sgd(.lr = 0.05), .batch = 64, .epochs = 1);
}
