#include <aotgrad.h>

/* fuzz_models: seed 1441, shrunk */
void fold_constant_through_transpose(ag_graph *g)
{
    ag_val v0 = ag_full(g, -0.40625, AG_N);
    ag_val v1 = ag_transpose(v0);
    ag_val v2 = ag_div(v1, -3);
    ag_val v3 = ag_param(g, "L1", ag_normal(0, 1), 1);
    ag_val v4 = ag_mean(v3);
    ag_output(g, "o0", v2);
    ag_minimize(g, v4, ag_sgd(.lr = 0.1, .wd = 0), .batch = 64, .epochs = 1);
}
