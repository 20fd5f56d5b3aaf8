#include <aotgrad.h>
#include <string.h>

/* d2l 5.1-5.2: a multilayer perceptron on Fashion-MNIST, 784-256-10; the activation is
 * an option (--set act=tanh). */
void mlp(ag_graph *g)
{
    const char *act = ag_option(g, "act", "relu", "relu|sigmoid|tanh");
    ag_val x = ag_input(g, "x", AG_U8, AG_N, 784); /* a batch of N images, raw pixels */
    ag_val y = ag_input(g, "y", AG_I32, AG_N);     /* their labels, 0..9 */
    ag_val W1 = ag_param(g, "W1", ag_normal(0, 0.01), 784, 256);
    ag_val b1 = ag_param(g, "b1", ag_zeros(), 256);
    ag_val W2 = ag_param(g, "W2", ag_normal(0, 0.01), 256, 10);
    ag_val b2 = ag_param(g, "b2", ag_zeros(), 10);

    ag_val X = ag_scale(ag_cast(x, AG_F32), 1.0 / 255);
    ag_val Z = ag_add(ag_matmul(X, W1), b1);
    ag_val H = strcmp(act, "tanh") == 0 ? ag_tanh(Z) : strcmp(act, "sigmoid") == 0 ? ag_sigmoid(Z) : ag_relu(Z);
    ag_val logits = ag_add(ag_matmul(H, W2), b2);

    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), ag_sgd(.lr = 0.1),
                .metric = ag_correct(logits, y), .predict = logits,
                .data = "fashion-mnist", .batch = 256, .epochs = 10);
}
