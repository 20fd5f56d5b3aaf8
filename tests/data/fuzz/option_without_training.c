#include <aotgrad.h>

/* fuzz_models: seed 510276701810, shrunk */
void option_without_training(ag_graph *g)
{
    ag_val v0 = ag_input(g, "s6", AG_F32, 1, 1);
    ag_output(g, "o0", v0);
    (void)ag_option(g, "variant", "a", "a|b");
}
