#include <aotgrad.h>

/* fuzz_models: seed 1257, shrunk */
void binary_labels_unread(ag_graph *g)
{
    ag_val v0 = ag_input(g, "x", AG_F32, AG_N, 1);
    ag_val v1 = ag_input(g, "y", AG_I32, AG_N);
    ag_val v2 = ag_param(g, "L2", ag_normal(0, 1), 1);
    ag_val v3 = ag_mean(v2);
    ag_minimize(g, v3, ag_sgd(.lr = 0.1, .wd = 0), .batch = 64, .epochs = 1);
}
