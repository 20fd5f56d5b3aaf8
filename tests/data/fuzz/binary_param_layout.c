#include <aotgrad.h>

/* fuzz_models: seed 798016703828, shrunk */
void binary_param_layout(ag_graph *g)
{
    ag_val v0 = ag_input(g, "x", AG_F32, AG_N, 1);
    ag_val v1 = ag_input(g, "y", AG_F32, AG_N, 1);
    ag_val v2 = ag_sigmoid(v1);
    ag_val v3 = ag_softmax(v2);
    ag_val v4 = ag_param(g, "W0", ag_normal(0.03125, 0.421875), 1, 1);
    ag_val v5 = ag_param(g, "W2", ag_normal(-0.1875, 0.515625), 1);
    ag_val v6 = ag_add(v2, v5);
    ag_val v7 = ag_mse(v6, v1);
    ag_output(g, "o0", v3);
    ag_minimize(g, v7, ag_sgd(.lr = 0.1, .wd = 0.171875), .batch = 64, .epochs = 1);
}
