/* A model whose own code crashes while it builds the graph (tests/frontend/test_dsl.c). */
#include <aotgrad.h>
#include <stddef.h>

void crashes(ag_graph *g)
{
    volatile int *nowhere = NULL;
    ag_output(g, "o", ag_input(g, "x", AG_F32, *nowhere));
}
