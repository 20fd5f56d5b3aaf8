#include <aotgrad.h>

/* fuzz_models: seed 113439, shrunk */
void cuda_long_sum_order(ag_graph *g)
{
    ag_val v0 = ag_param(g, "P49", ag_normal(0, 1), 512, 7);
    ag_val v1 = ag_sum(v0, 0, AG_N);
    ag_val v2 = ag_param(g, "L2", ag_normal(0, 1), 1);
    ag_val v3 = ag_mean(v2);
    ag_minimize(g, v3, ag_sgd(.lr = 0.1, .wd = 0.15625), .predict = v1, .batch = 64, .epochs = 1);
}
