#include <aotgrad.h>

/* fuzz_models: seed 875346355809, shrunk */
void fold_through_a_kernel_s_constant_where(ag_graph *g)
{
    ag_val v0 = ag_full(g, 0.609375, 1, 1);
    ag_val v1 = ag_lt(v0, 0.015625);
    ag_val v2 = ag_input(g, "s20", AG_F32, 1);
    ag_val v3 = ag_where(v1, v2, v0);
    ag_val v4 = ag_tanh(v3);
    ag_val v5 = ag_concat(1, v4, v4);
    ag_val v6 = ag_param(g, "L35", ag_normal(0, 1), 1);
    ag_val v7 = ag_mean(v6);
    ag_output(g, "o0", v5);
    ag_output(g, "o2", v3);
    ag_minimize(g, v7, ag_sgd(.lr = 0.1, .wd = 0.15625), .batch = 64, .epochs = 1);
}
