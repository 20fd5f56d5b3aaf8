#include <aotgrad.h>

/* fuzz_models: seed 20403, shrunk */
void constant_gradient_in_f64(ag_graph *g)
{
    ag_val v0 = ag_full(g, -1.828125, 16, 7);
    ag_val v1 = ag_param(g, "W0", ag_normal(0, 1));
    ag_val v2 = ag_mul(v0, v1);
    ag_val v3 = ag_mean(v2);
    ag_minimize(g, v3, ag_sgd(.lr = 0.1, .wd = 0.140625), .batch = 64, .epochs = 1);
}
