#include <aotgrad.h>

/* fuzz_models: seed 286, shrunk */
void fuse_a_joined_output_before_its_inputs(ag_graph *g)
{
    ag_val v0 = ag_param(g, "W0", ag_uniform(-0.234375, 0.28125));
    ag_val v1 = ag_param(g, "W1", ag_normal(0.015625, 0.8125), 1, 1);
    ag_val v2 = ag_exp(v0);
    ag_minimize(g, v2, ag_adamw(.lr = 0.1, .wd = 0.0625, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-08), .batch = 64, .epochs = 1);
}
