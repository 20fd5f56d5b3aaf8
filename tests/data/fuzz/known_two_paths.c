#include <aotgrad.h>

/* issue 8, known failure 2 (an abort in fuse): the sum of two matmuls' results as logits */
void known_two_paths(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 6);
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val W2 = ag_param(g, "W2", ag_normal(0, 0.3), 6, 3);
    ag_val b2 = ag_param(g, "b2", ag_zeros(), 3);
    ag_val W3 = ag_param(g, "W3", ag_normal(0, 0.3), 6, 3);
    ag_val logits = ag_add(ag_add(ag_matmul(x, W2), b2), ag_tanh(ag_matmul(x, W3)));
    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), ag_sgd(.lr = 0.1),
                .metric = ag_correct(logits, y), .predict = logits, .batch = 64, .epochs = 1);
}
