#include <aotgrad.h>

/* A parameter named as another's optimizer state (Adam's W.step): refused at the optimizer
 * pass with a message, not an internal error (found reviewing the optimizers). */
void state_name_taken(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 3);
    ag_val y = ag_input(g, "y", AG_F32, AG_N);
    ag_val W = ag_param(g, "W", ag_zeros(), 3);
    ag_val S = ag_param(g, "W.step", ag_zeros(), 1);
    ag_minimize(g, ag_mean(ag_squared_loss(ag_add(ag_matmul(x, W), S), y)), ag_adam(), .batch = 4);
}
