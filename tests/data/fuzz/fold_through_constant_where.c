#include <aotgrad.h>

/* fuzz_models: seed 500092, shrunk */
void fold_through_constant_where(ag_graph *g)
{
    ag_val v0 = ag_const(g, -0.015625);
    ag_val v1 = ag_input(g, "s15", AG_F32);
    ag_val v2 = ag_le(v0, 0.46875);
    ag_val v3 = ag_where(v2, v0, v1);
    ag_val v4 = ag_sigmoid(v3);
    ag_val v5 = ag_param(g, "L2", ag_normal(0, 1), 1);
    ag_val v6 = ag_mean(v5);
    ag_output(g, "o1", v4);
    ag_minimize(g, v6, ag_sgd(.lr = 0.1, .wd = 0.0625), .batch = 64, .epochs = 1);
}
