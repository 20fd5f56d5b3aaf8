#include <aotgrad.h>

/* fuzz_models: seed 407511, shrunk */
void autodiff_fd_roundoff_of_a_large_sum(ag_graph *g)
{
    ag_val v0 = ag_param(g, "W0", ag_zeros(), 8, 256);
    ag_val v1 = ag_exp(v0);
    ag_val v2 = ag_sum(v1);
    ag_minimize(g, v2, ag_sgd(.lr = 0.1, .wd = 0), .batch = 64, .epochs = 1);
}
