#include <aotgrad.h>

/* issue 8, known failure 1: H = relu(matmul(x, W) + b), concat(1, H, ag_scale(ag_slice(H, 1, 0, 4), 0.5)) */
void known_concat_slice_scale(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 6);
    ag_val y = ag_input(g, "y", AG_F32, AG_N);
    ag_val W = ag_param(g, "W", ag_normal(0, 0.5), 6, 8);
    ag_val b = ag_param(g, "b", ag_uniform(-0.1, 0.3), 8);
    ag_val V = ag_param(g, "V", ag_normal(0, 0.5), 12, 1);
    ag_val H = ag_relu(ag_add(ag_matmul(x, W), b));
    ag_val H2 = ag_concat(1, H, ag_scale(ag_slice(H, 1, 0, 4), 0.5));
    ag_val p = ag_sum(ag_matmul(H2, V), 1);
    ag_minimize(g, ag_mse(p, y), ag_sgd(.lr = 0.01), .batch = 64, .epochs = 1);
}
