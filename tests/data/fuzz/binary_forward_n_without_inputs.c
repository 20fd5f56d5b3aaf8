#include <aotgrad.h>

/* fuzz_models: seed 403165, shrunk */
void binary_forward_n_without_inputs(ag_graph *g)
{
    ag_val v0 = ag_full(g, -1.8125, AG_N);
    ag_val v1 = ag_sum_keepdims(v0, AG_N);
    ag_output(g, "o2", v1);
}
