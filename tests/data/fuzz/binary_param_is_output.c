#include <aotgrad.h>

/* fuzz_models: seed 1042, shrunk */
void binary_param_is_output(ag_graph *g)
{
    ag_val v0 = ag_input(g, "x", AG_F32, AG_N, 2, 3);
    ag_val v1 = ag_input(g, "y", AG_I32, AG_N);
    ag_val v2 = ag_param(g, "W0", ag_uniform(-0.65625, 0.921875), 1, 1);
    ag_val v3 = ag_flatten(v0);
    ag_val v4 = ag_param(g, "W1", ag_xavier(), 6, 1);
    ag_val v5 = ag_matmul(v3, v4);
    ag_val v6 = ag_cross_entropy(v5, v1);
    ag_val v7 = ag_mean(v6);
    ag_output(g, "o1", v2);
    ag_minimize(g, v7, ag_sgd(.lr = 0.1, .wd = 0.171875), .batch = 64, .epochs = 1);
}
