#include <aotgrad.h>

/* d2l 3.7: weight decay on a high-dimensional linear regression that overfits: 200
 * features, 20 training and 100 test samples, true w = 0.01 everywhere and b = 0.05. The
 * weights are in a group decayed by --wd; the bias is not decayed. */
void weight_decay(ag_graph *g)
{
    ag_val X = ag_input(g, "X", AG_F32, AG_N, 200);
    ag_val y = ag_input(g, "y", AG_F32, AG_N, 1);
    ag_val w = ag_param(g, "w", ag_normal(0, 1), 200, 1);
    ag_val b = ag_param(g, "b", ag_zeros(), 1);

    ag_group(g, "weights", 1.0, 1.0, w); /* wd * 1 */
    ag_group(g, "bias", 0.0, 1.0, b);    /* never decayed */

    ag_val y_hat = ag_add(ag_matmul(X, w), b);
    ag_minimize(g, ag_mean(ag_squared_loss(y_hat, y)), ag_sgd(.lr = 0.003, .wd = 0), .predict = y_hat,
                .data = "synthetic-linear w=0.01x200 b=0.05 train=20 test=100 noise=0.01", .batch = 5,
                .epochs = 100);
}
