/* Sixteen 16x16 parameters multiplied in a chain before the input: matmuls that need one
 * block at any batch, so the CUDA backend merges a long row of them into one kernel, whose
 * steps' shared tiles must stay within what a kernel may declare
 * (tests/codegen/test_cuda_render.c). */
#include <aotgrad.h>
#include <stdio.h>

void matmul_chain(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 16);
    ag_val y = ag_input(g, "y", AG_F32, AG_N, 16);
    ag_val w = ag_param(g, "W0", ag_normal(0, 0.1), 16, 16);
    for (int i = 1; i < 16; i++) {
        char name[16];
        snprintf(name, sizeof name, "W%d", i);
        w = ag_matmul(w, ag_param(g, name, ag_normal(0, 0.1), 16, 16));
    }
    ag_val d = ag_sub(ag_matmul(x, w), y);
    ag_minimize(g, ag_mean(ag_mul(d, d)), ag_sgd(.lr = 0.1), .predict = d, .batch = 16, .epochs = 1);
}
