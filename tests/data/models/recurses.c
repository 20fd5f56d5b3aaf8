/* A model whose own code recurses until its stack runs out (tests/frontend/test_dsl.c). */
#include <aotgrad.h>

static int deeper(volatile int n)
{
    volatile char frame[256];
    frame[0] = (char)n;
    return deeper(n + 1) + frame[0];
}

void recurses(ag_graph *g)
{
    ag_output(g, "o", ag_input(g, "x", AG_F32, deeper(0)));
}
