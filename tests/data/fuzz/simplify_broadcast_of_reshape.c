#include <aotgrad.h>

/* fuzz_models: seed 776330848493, shrunk */
void simplify_broadcast_of_reshape(ag_graph *g)
{
    ag_val v0 = ag_param(g, "P6", ag_normal(0, 1), 3);
    ag_val v1 = ag_mean_keepdims(v0);
    ag_val v2 = ag_reshape(v1, 1, 1);
    ag_val v3 = ag_input(g, "x0", AG_I32, 1);
    ag_val v4 = ag_cross_entropy(v2, v3);
    ag_val v5 = ag_mean(v4);
    ag_minimize(g, v5, ag_sgd(.lr = 0.1, .wd = 0.09375), .batch = 64, .epochs = 1);
}
