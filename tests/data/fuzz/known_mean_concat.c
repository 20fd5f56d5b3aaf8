#include <aotgrad.h>

/* issue 8, known failure 4: `aotgrad build` said "load 0: buffer -1 does not exist" */
void known_mean_concat(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 10);
    ag_val y = ag_input(g, "y", AG_F32, AG_N);
    ag_val b1 = ag_param(g, "b1", ag_normal(0, 0.5), 10);
    ag_val W2 = ag_param(g, "W2", ag_normal(0, 0.5), 1, 9);
    ag_val t0 = ag_sigmoid(x);
    ag_val t1 = ag_add(t0, b1);
    ag_val t2 = ag_mean_keepdims(t1, 1);
    ag_val t3 = ag_matmul(t2, W2);
    ag_val t4 = ag_tanh(t3);
    ag_val t5 = ag_concat(1, t0, t3);
    ag_val t9 = ag_scale(t4, 0.568);
    ag_val t10 = ag_mean_keepdims(t5, 1);
    ag_val t12 = ag_concat(1, t9, t10);
    ag_minimize(g, ag_mse(ag_sum(t12, 1), y), ag_sgd(.lr = 0.01), .batch = 64, .epochs = 1);
}
