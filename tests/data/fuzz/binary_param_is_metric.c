#include <aotgrad.h>

/* fuzz_models: seed 1448, shrunk */
void binary_param_is_metric(ag_graph *g)
{
    ag_val v0 = ag_input(g, "x", AG_U8, AG_N, 7);
    ag_val v1 = ag_input(g, "y", AG_F32, AG_N);
    ag_val v2 = ag_cast(v0, AG_F32);
    ag_val v3 = ag_param(g, "W0", ag_normal(0.15625, 0.453125), 7, 1);
    ag_val v4 = ag_mm(v2, v3);
    ag_val v5 = ag_param(g, "W1", ag_constant(0.203125));
    ag_val v6 = ag_mse(v1, v1);
    ag_minimize(g, v6, ag_sgd(.lr = 0.1, .wd = 0.140625), .metric = v5, .metric_name = "m", .predict = v4, .batch = 64, .epochs = 1);
}
