#include <aotgrad.h>

/* Softmax regression whose weights are also an output of the train step: the step must keep
 * the old W readable after it, so W's update is not in place; the binary copies it over W
 * after each step (runtime/binary.c, runtime/cuda.c). */
void param_output(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_U8, AG_N, 784);
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val W = ag_param(g, "W", ag_normal(0, 0.01), 784, 10);
    ag_val b = ag_param(g, "b", ag_zeros(), 10);
    ag_val logits = ag_add(ag_matmul(ag_scale(ag_cast(x, AG_F32), 1.0 / 255), W), b);
    ag_output(g, "weights", W);
    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), ag_sgd(.lr = 0.1), .metric = ag_correct(logits, y),
                .predict = logits, .data = "fashion-mnist", .batch = 256, .epochs = 2);
}
