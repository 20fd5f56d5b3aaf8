#include <aotgrad.h>

/* d2l 3.2-3.3: linear regression on the book's synthetic data, y = Xw + b + noise, with the
 * true w = [2, -3.4] and b = 4.2. */
void linreg(ag_graph *g)
{
    ag_val X = ag_input(g, "X", AG_F32, AG_N, 2);
    ag_val y = ag_input(g, "y", AG_F32, AG_N, 1);
    ag_val w = ag_param(g, "w", ag_normal(0, 0.01), 2, 1);
    ag_val b = ag_param(g, "b", ag_zeros(), 1);

    ag_val y_hat = ag_add(ag_matmul(X, w), b);

    ag_minimize(g, ag_mean(ag_squared_loss(y_hat, y)), ag_sgd(.lr = 0.03), .predict = y_hat,
                .data = "synthetic-linear w=2,-3.4 b=4.2 train=1000 noise=0.01", .batch = 10, .epochs = 3);
}
