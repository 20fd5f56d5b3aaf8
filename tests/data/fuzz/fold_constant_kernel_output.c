#include <aotgrad.h>

/* fuzz_models: seed 1555, shrunk */
void fold_constant_kernel_output(ag_graph *g)
{
    ag_val v0 = ag_full(g, -1.375, 1, 8);
    ag_val v1 = ag_input(g, "s15", AG_F32, 1);
    ag_val v2 = ag_slice(v0, 1, 4, 3);
    ag_val v3 = ag_sigmoid(v2);
    ag_val v4 = ag_param(g, "W0", ag_uniform(-0.28125, 0.640625), 1, 1);
    ag_val v5 = ag_add(v0, v4);
    ag_val v6 = ag_mse(v5, v1);
    ag_output(g, "o2", v3);
    ag_minimize(g, v6, ag_sgd(.lr = 0.1, .wd = 0), .batch = 64, .epochs = 1);
}
