/* A model whose code never returns (tests/frontend/test_model_process.c). */
#include <aotgrad.h>

void loops(ag_graph *g)
{
    for (volatile int i = 0;; i++)
        ;
    ag_output(g, "o", ag_input(g, "x", AG_F32, AG_N, 4));
}
