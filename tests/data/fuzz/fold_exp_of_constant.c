#include <aotgrad.h>

/* fuzz_models: seed 111, shrunk */
void fold_exp_of_constant(ag_graph *g)
{
    ag_val v0 = ag_const(g, -0.640625);
    ag_val v1 = ag_exp(v0);
    ag_val v2 = ag_param(g, "W1", ag_uniform(-0.90625, 0.75), 1);
    ag_val v3 = ag_div(v2, v1);
    ag_val v4 = ag_mean(v3);
    ag_minimize(g, v4, ag_sgd(.lr = 0.1, .wd = 0.21875), .batch = 64, .epochs = 1);
}
