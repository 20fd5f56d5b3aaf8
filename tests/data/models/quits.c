/* A model whose code calls exit(0) while it builds the graph (tests/frontend/test_model_process.c). */
#include <aotgrad.h>
#include <stdlib.h>

void quits(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 4);
    (void)x;
    exit(0);
}
