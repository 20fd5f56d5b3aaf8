#include <aotgrad.h>

/* fuzz_models: seed 1257, shrunk by hand: predictions that simplify to the input x (an
 * identity transpose), which a binary refused ("output predict is the input %x") */
void binary_predict_is_input(ag_graph *g)
{
    ag_val v0 = ag_input(g, "x", AG_F32, AG_N, 2);
    ag_val v1 = ag_input(g, "y", AG_F32, AG_N);
    ag_val v2 = ag_param(g, "W", ag_normal(0, 1), 2);
    ag_val v3 = ag_transpose(v0, 0, 1);
    ag_minimize(g, ag_mse(ag_mv(v0, v2), v1), ag_sgd(.lr = 0.1), .predict = v3, .batch = 64, .epochs = 1);
}
