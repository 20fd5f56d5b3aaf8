#include <aotgrad.h>

/* d2l 5.1-5.2's multilayer perceptron on Fashion-MNIST, 784-256-10, trained with Adam
 * (d2l 12.10) at lr 0.001 and PyTorch's other defaults: the optimizer's moments and step
 * count are part of the train step and of its checkpoints (W1.exp_avg, W1.exp_avg_sq,
 * W1.step, ...). */
void mlp_adam(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_U8, AG_N, 784); /* a batch of N images, raw pixels */
    ag_val y = ag_input(g, "y", AG_I32, AG_N);     /* their labels, 0..9 */
    ag_val W1 = ag_param(g, "W1", ag_normal(0, 0.01), 784, 256);
    ag_val b1 = ag_param(g, "b1", ag_zeros(), 256);
    ag_val W2 = ag_param(g, "W2", ag_normal(0, 0.01), 256, 10);
    ag_val b2 = ag_param(g, "b2", ag_zeros(), 10);

    ag_val X = ag_scale(ag_cast(x, AG_F32), 1.0 / 255);
    ag_val H = ag_relu(ag_add(ag_matmul(X, W1), b1));
    ag_val logits = ag_add(ag_matmul(H, W2), b2);

    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), ag_adam(.lr = 0.001),
                .metric = ag_correct(logits, y), .predict = logits,
                .data = "fashion-mnist", .batch = 256, .epochs = 10);
}
