#include <aotgrad.h>

/* fuzz_models: seed 841393 (model 806776068076), shrunk: the conv bias's gradient, a sum of 3072 equal terms, cancels in its update */
void llvm_long_sum_order(ag_graph *g)
{
    ag_val v0 = ag_input(g, "s11", AG_F32, AG_N, 1, 4, 6);
    ag_val v1 = ag_param(g, "W0", ag_normal(-0.0, 0.953125), 1, 1, 1, 1);
    ag_val v2 = ag_param(g, "W1", ag_normal(0.140625, 1), 1);
    ag_val v3 = ag_conv2d(v0, v1, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1, .dilation_h = 1, .dilation_w = 1, .groups = 1, .bias = v2);
    ag_val v4 = ag_mean(v3, 0, 1, -2);
    ag_val v5 = ag_sum(v4);
    ag_minimize(g, v5, ag_sgd(.lr = 0.1, .wd = 0), .batch = 64, .epochs = 1);
}
