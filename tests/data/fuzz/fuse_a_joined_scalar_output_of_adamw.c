#include <aotgrad.h>

/* fuzz_models: seed 125, shrunk */
void fuse_a_joined_scalar_output_of_adamw(ag_graph *g)
{
    ag_val v0 = ag_param(g, "W2", ag_normal(-0.171875, 0.75), 1, 8);
    ag_val v1 = ag_param(g, "W3", ag_normal(0.234375, 0.828125), 1, 8);
    ag_val v2 = ag_param(g, "L1", ag_normal(0, 1), 1);
    ag_val v3 = ag_mean(v2);
    ag_minimize(g, v3, ag_adamw(.lr = 0.1, .wd = 0, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-08), .batch = 64, .epochs = 1);
}
