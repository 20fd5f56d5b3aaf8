#include <aotgrad.h>

/* d2l 3.2: linear regression, y = Xw + b, with the book's squared loss. */
void linreg(ag_graph *g)
{
    ag_val X = ag_input(g, "X", AG_F32, AG_N, 2);
    ag_val y = ag_input(g, "y", AG_F32, AG_N, 1);
    ag_val w = ag_param(g, "w", ag_normal(0, 0.01), 2, 1);
    ag_val b = ag_param(g, "b", ag_zeros(), 1);

    ag_val y_hat = ag_add(ag_matmul(X, w), b);

    ag_output(g, "y_hat", y_hat);
    ag_output(g, "loss", ag_mean(ag_squared_loss(y_hat, y)));
}
