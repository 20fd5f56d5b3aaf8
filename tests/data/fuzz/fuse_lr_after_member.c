#include <aotgrad.h>

/* fuzz_models: seed 38 */
void fuse_lr_after_member(ag_graph *g)
{
    ag_val v0 = ag_param(g, "W0", ag_xavier(), 1, 1);
    ag_val v1 = ag_mse(v0, 1.265625);
    ag_minimize(g, v1, ag_sgd(.lr = 0.1, .wd = 0.171875), .batch = 64, .epochs = 1);
}
