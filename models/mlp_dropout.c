#include <aotgrad.h>

/* d2l 5.6: an MLP with dropout, 784-256-256-10, dropping 0.2 after the first hidden layer
 * and 0.5 after the second. */
void mlp_dropout(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_U8, AG_N, 784);
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val W1 = ag_param(g, "W1", ag_normal(0, 0.01), 784, 256);
    ag_val b1 = ag_param(g, "b1", ag_zeros(), 256);
    ag_val W2 = ag_param(g, "W2", ag_normal(0, 0.01), 256, 256);
    ag_val b2 = ag_param(g, "b2", ag_zeros(), 256);
    ag_val W3 = ag_param(g, "W3", ag_normal(0, 0.01), 256, 10);
    ag_val b3 = ag_param(g, "b3", ag_zeros(), 10);

    ag_val X = ag_scale(ag_cast(x, AG_F32), 1.0 / 255);
    ag_val H1 = ag_dropout(ag_relu(ag_add(ag_matmul(X, W1), b1)), 0.2);
    ag_val H2 = ag_dropout(ag_relu(ag_add(ag_matmul(H1, W2), b2)), 0.5);
    ag_val logits = ag_add(ag_matmul(H2, W3), b3);

    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), ag_sgd(.lr = 0.5),
                .metric = ag_correct(logits, y), .predict = logits,
                .data = "fashion-mnist", .batch = 256, .epochs = 10);
}
