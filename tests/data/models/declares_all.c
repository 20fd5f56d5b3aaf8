/* A model declaring all a graph carries besides its nodes: the training with class names,
 * groups, options (one with a value to escape), dropout sites (one dead), a u8 constant.
 * tests/frontend/test_model_process.c builds it in process and through fe_load and compares
 * the two. */
#include <aotgrad.h>
#include <string.h>

const char *declares_all_file = __FILE__;

void declares_all(ag_graph *g)
{
    const char *act = ag_option(g, "act", "relu", "relu|tanh");
    ag_option(g, "note", "a \"quoted\"\tvalue \xc3\xa9", "a \"quoted\"\tvalue \xc3\xa9|plain");
    ag_val x = ag_input(g, "x", AG_U8, AG_N, 16);
    ag_val y = ag_input(g, "y", AG_I32, AG_N);
    ag_val W1 = ag_param(g, "W1", ag_normal(0, 0.01), 16, 8);
    ag_val b1 = ag_param(g, "b1", ag_zeros(), 8);
    ag_val W2 = ag_param(g, "W2", ag_uniform(-0.5, 0.5), 8, 10);
    ag_val b2 = ag_param(g, "b2", ag_constant(0.25), 10);
    ag_group(g, "bias", 0.0, 2.0, b1, b2);

    ag_val X = ag_where(ag_gt(x, 200), 1, ag_scale(ag_cast(x, AG_F32), 1.0 / 255));
    ag_val Z = ag_add(ag_matmul(X, W1), b1);
    ag_val H = ag_dropout(strcmp(act, "tanh") == 0 ? ag_tanh(Z) : ag_relu(Z), 0.3);
    ag_dropout(H, 0.1); /* unused, yet a site */
    ag_val logits = ag_add(ag_matmul(H, W2), b2);
    ag_output(g, "positive", ag_where(ag_gt(logits, 0), logits, 0));

    ag_minimize(g, ag_mean(ag_cross_entropy(logits, y)), ag_sgd(.lr = 0.05, .wd = 1e-4),
                .metric = ag_correct(logits, y), .predict = logits,
                .data = "fashion-mnist", .batch = 32, .epochs = 3);
}
