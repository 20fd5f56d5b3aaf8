/* A model whose code calls exit(3) while it builds the graph (tests/frontend/test_model_process.c). */
#include <aotgrad.h>
#include <stdlib.h>

void exits(ag_graph *g)
{
    ag_output(g, "o", ag_input(g, "x", AG_F32, AG_N, 4));
    exit(3);
}
