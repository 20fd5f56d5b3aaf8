#include <aotgrad.h>

/* fuzz_models: seed 10815, shrunk */
void slice_along_axis_before_n(ag_graph *g)
{
    ag_val v0 = ag_input(g, "x0", AG_F32, 4, AG_N);
    ag_val v1 = ag_slice(v0, 0, 1, 2);
    ag_val v2 = ag_param(g, "W0", ag_xavier(), 1, 1);
    ag_val v3 = ag_mean(v1);
    ag_minimize(g, v3, ag_sgd(.lr = 0.1, .wd = 0.046875), .batch = 64, .epochs = 1);
}
