#include <aotgrad.h>

/* fuzz_models: seed 1328, shrunk */
void fold_constant_into_kernel(ag_graph *g)
{
    ag_val v0 = ag_input(g, "s6", AG_F32, AG_N);
    ag_val v1 = ag_param(g, "W0", ag_normal(-0.15625, 0.875), 1);
    ag_val v2 = ag_mul(v0, v1);
    ag_val v3 = ag_mse(v2, v0);
    ag_minimize(g, v3, ag_sgd(.lr = 0.1, .wd = 0.09375), .batch = 64, .epochs = 1);
}
