#include <aotgrad.h>
#include <string.h>

/* d2l 7.6: LeNet on Fashion-MNIST, two convolutions with pooling, then three dense layers.
 * The classic network (sigmoid, average pooling, lr 0.9); --set act=relu is the modern one
 * (ReLU, max pooling, lr 0.1). Xavier initialization, as d2l's. */
void lenet(ag_graph *g)
{
    const char *act = ag_option(g, "act", "sigmoid", "sigmoid|relu");
    bool relu = strcmp(act, "relu") == 0;
    ag_val x = ag_input(g, "x", AG_U8, AG_N, 1, 28, 28); /* a batch of N grey images */
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val C1 = ag_param(g, "C1", ag_xavier(), 6, 1, 5, 5);
    ag_val c1 = ag_param(g, "c1", ag_zeros(), 6);
    ag_val C2 = ag_param(g, "C2", ag_xavier(), 16, 6, 5, 5);
    ag_val c2 = ag_param(g, "c2", ag_zeros(), 16);
    ag_val W1 = ag_param(g, "W1", ag_xavier(), 400, 120);
    ag_val b1 = ag_param(g, "b1", ag_zeros(), 120);
    ag_val W2 = ag_param(g, "W2", ag_xavier(), 120, 84);
    ag_val b2 = ag_param(g, "b2", ag_zeros(), 84);
    ag_val W3 = ag_param(g, "W3", ag_xavier(), 84, 10);
    ag_val b3 = ag_param(g, "b3", ag_zeros(), 10);

    ag_val X = ag_scale(ag_cast(x, AG_F32), 1.0 / 255);
    ag_val H = ag_conv2d(X, C1, .pad = 2, .bias = c1);                          /* [N,6,28,28] */
    H = relu ? ag_max_pool2d(ag_relu(H), 2) : ag_avg_pool2d(ag_sigmoid(H), 2); /* [N,6,14,14] */
    H = ag_conv2d(H, C2, .bias = c2);                                          /* [N,16,10,10] */
    H = relu ? ag_max_pool2d(ag_relu(H), 2) : ag_avg_pool2d(ag_sigmoid(H), 2); /* [N,16,5,5] */
    H = ag_add(ag_matmul(ag_flatten(H), W1), b1);
    H = relu ? ag_relu(H) : ag_sigmoid(H);
    H = ag_add(ag_matmul(H, W2), b2);
    H = relu ? ag_relu(H) : ag_sigmoid(H);
    ag_val logits = ag_add(ag_matmul(H, W3), b3);

    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), ag_sgd(.lr = relu ? 0.1 : 0.9),
                .metric = ag_correct(logits, y), .predict = logits,
                .data = "fashion-mnist", .batch = 256, .epochs = 10);
}
