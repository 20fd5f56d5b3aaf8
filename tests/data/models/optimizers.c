#include <aotgrad.h>
#include <string.h>

/* Softmax regression on Fashion-MNIST with the optimizer an option chooses (--set opt=...):
 * each kind of ir_optimizer_kinds trains, checkpoints its state and resumes. */
void optimizers(ag_graph *g)
{
    const char *k = ag_option(g, "opt", "momentum", "momentum|nesterov|adam|adamw|rmsprop|adagrad");
    ag_val x = ag_input(g, "x", AG_U8, AG_N, 784);
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val W = ag_param(g, "W", ag_normal(0, 0.01), 784, 10);
    ag_val b = ag_param(g, "b", ag_zeros(), 10);
    ag_val logits = ag_add(ag_matmul(ag_scale(ag_cast(x, AG_F32), 1.0 / 255), W), b);
    ag_optimizer o = !strcmp(k, "momentum") ? ag_sgd(.lr = 0.1, .momentum = 0.9, .wd = 1e-4)
                     : !strcmp(k, "nesterov") ? ag_sgd(.lr = 0.1, .momentum = 0.9, .nesterov = 1)
                     : !strcmp(k, "adam")     ? ag_adam(.wd = 1e-4)
                     : !strcmp(k, "adamw")    ? ag_adamw()
                     : !strcmp(k, "rmsprop")  ? ag_rmsprop(.lr = 0.001)
                                              : ag_adagrad(.lr = 0.1);
    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), o, .metric = ag_correct(logits, y), .predict = logits,
                .data = "fashion-mnist", .batch = 128, .epochs = 2);
}
