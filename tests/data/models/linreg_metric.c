/* Linear regression whose metric sums the same squared errors the loss averages: the sum
 * and the mean fuse into one kernel, whose input shares a kernel with a gradient computed
 * later in node order. The memory plan must keep the squared errors alive from that
 * kernel's first node (tests/codegen/test_lower.c). */
#include <aotgrad.h>

void linreg_metric(ag_graph *g)
{
    ag_val X = ag_input(g, "X", AG_F32, AG_N, 2);
    ag_val y = ag_input(g, "y", AG_F32, AG_N, 1);
    ag_val w = ag_param(g, "w", ag_normal(0, 0.01), 2, 1);
    ag_val b = ag_param(g, "b", ag_zeros(), 1);
    ag_val l = ag_squared_loss(ag_add(ag_matmul(X, w), b), y);
    ag_minimize(g, ag_mean(l), ag_sgd(.lr = 0.03), .metric = ag_sum(l), .metric_name = "sse",
                .data = "synthetic-linear w=2,-3.4 b=4.2 train=1000", .batch = 10, .epochs = 3);
}
