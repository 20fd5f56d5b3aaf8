#include <aotgrad.h>
/* A missing semicolon: the C compiler's first error, not its 50 lines of macro expansions. */
void missing_semicolon(ag_graph *g)
{
    ag_val x = ag_input(g, "x", AG_F32, AG_N, 4)
    ag_val y = ag_relu(x);
    ag_output(g, "y", y);
}
