#include <aotgrad.h>

/* Softmax regression whose features are named clip_norm, a name the split train step gives
 * its scalar: the model builds and trains; --accumulate and --clip-norm are refused. */
void clip_norm_input(ag_graph *g)
{
    ag_val x = ag_input(g, "clip_norm", AG_U8, AG_N, 784);
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val W = ag_param(g, "W", ag_normal(0, 0.01), 784, 10);
    ag_val b = ag_param(g, "b", ag_zeros(), 10);
    ag_val logits = ag_add(ag_matmul(ag_scale(ag_cast(x, AG_F32), 1.0 / 255), W), b);
    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), ag_sgd(.lr = 0.1), .metric = ag_correct(logits, y),
                .data = "fashion-mnist", .batch = 128, .epochs = 1);
}
