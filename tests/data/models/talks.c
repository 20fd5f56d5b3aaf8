/* A model that prints while it builds the graph (tests/frontend/test_model_process.c). */
#include <aotgrad.h>
#include <stdio.h>

void talks(ag_graph *g)
{
    printf("talks on stdout\n");
    fprintf(stderr, "talks on stderr\n");
    ag_output(g, "o", ag_relu(ag_input(g, "x", AG_F32, AG_N, 4)));
}
