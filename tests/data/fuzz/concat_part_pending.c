#include <aotgrad.h>

/* fuzz_models: seed 3 */
void concat_part_pending(ag_graph *g)
{
    ag_val v0 = ag_param(g, "W0", ag_normal(-0.125, 0.796875), 1);
    ag_val v1 = ag_input(g, "s17", AG_F32, 1);
    ag_val v2 = ag_input(g, "s28", AG_BOOL, 1);
    ag_val v3 = ag_where(v2, v1, v0);
    ag_val v4 = ag_concat(-1, v1, v3);
    ag_val v5 = ag_mean(v4);
    ag_minimize(g, v5, ag_sgd(.lr = 0.1, .wd = 0.078125), .batch = 64, .epochs = 1);
}
