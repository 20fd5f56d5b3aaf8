#include <aotgrad.h>

/* fuzz_models: seed 502500, shrunk */
void fold_through_where_of_one_constant(ag_graph *g)
{
    ag_val v0 = ag_input(g, "s24", AG_BOOL);
    ag_val v1 = ag_const(g, 0.6875);
    ag_val v2 = ag_where(v0, v1, v1);
    ag_val v3 = ag_pow(v2, v1);
    ag_val v4 = ag_param(g, "L5", ag_normal(0, 1), 1);
    ag_val v5 = ag_mean(v4);
    ag_minimize(g, v5, ag_sgd(.lr = 0.1, .wd = 0), .metric = v3, .metric_name = "m", .batch = 64, .epochs = 1);
}
