#include <aotgrad.h>

/* Gradients the distribute pass must not sum twice or at all: the biases a and b take the
 * same gradient (one value, hash-consed), and p's comes from a penalty alone, the same on
 * every rank. */
void shared_grads(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 4);
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val W = ag_param(g, "W", ag_normal(0, 0.1), 4, 3);
    ag_val a = ag_param(g, "a", ag_zeros(), 3);
    ag_val b = ag_param(g, "b", ag_zeros(), 3);
    ag_val p = ag_param(g, "p", ag_normal(1, 0.1), 3);
    ag_val logits = ag_add(ag_add(ag_matmul(x, W), a), b);
    ag_val loss = ag_add(ag_mean(ag_cross_entropy(logits, y)), ag_sum(ag_mul(p, p)));
    ag_minimize(g, loss, ag_sgd(.lr = 0.1), .batch = 8, .epochs = 1);
}
