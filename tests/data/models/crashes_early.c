/* A model that crashes as it is loaded, in a constructor, before its function runs
 * (tests/frontend/test_model_process.c). */
#include <aotgrad.h>
#include <stddef.h>

__attribute__((constructor)) static void early(void)
{
    volatile int *nowhere = NULL;
    *nowhere = 1;
}

void crashes_early(ag_graph *g) { ag_output(g, "o", ag_input(g, "x", AG_F32, AG_N, 4)); }
