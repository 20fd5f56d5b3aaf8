/* The verifier on graphs broken by hand: operands, shapes, dtypes, arities, names, outputs,
 * attributes, slices, and training declarations built by code; every one rejected with a
 * message that names what is wrong. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "text_check.h"

/* ---- the verifier, on hand-broken graphs ---- */

/* x: f32[N,4] input (t.c:1), relu x (t.c:2), sum axes=[1]; outputs r, s. */
static ir_graph *small_graph(void)
{
    ir_graph *g = ir_graph_new("g");
    const char *file = ir_strdup(g, "t.c");
    char err[256];
    ir_node x = ir_node_make(IR_input, 0, NULL);
    x.dtype = AG_F32, x.shape = (ir_shape){2, {AG_N, 4}}, x.attr.name = "x", x.loc = (ag_loc){file, 1};
    int32_t ix = ir_add(g, &x, err, sizeof err);
    ir_node r = ir_node_make(IR_relu, 1, &ix);
    r.loc = (ag_loc){file, 2};
    int32_t ir = ir_add(g, &r, err, sizeof err);
    ir_node s = ir_node_make(IR_sum, 1, &ir);
    s.attr.axes = 2;
    int32_t is = ir_add(g, &s, err, sizeof err);
    cr_assert(ix == 0 && ir == 1 && is == 2, "%s", err);
    ir_add_output(g, "r", ir);
    ir_add_output(g, "s", is);
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    return g;
}

Test(text, verify_operand_not_earlier)
{
    ir_graph *g = small_graph();
    set_inputs(g, 1, 1, (int32_t[]){1});
    expect_verify(g, "verify: node %1 (relu at t.c:2): operand 0 is %1, not an earlier node");
    g = small_graph();
    set_inputs(g, 1, 1, (int32_t[]){2});
    expect_verify(g, "verify: node %1 (relu at t.c:2): operand 0 is %2, not an earlier node");
    g = small_graph();
    set_inputs(g, 2, 1, (int32_t[]){-5});
    expect_verify(g, "verify: node %2 (sum): operand 0 is %-5, not an earlier node");
}

Test(text, verify_wrong_shape_and_dtype)
{
    ir_graph *g = small_graph();
    g->node[1].shape.dim[1] = 5;
    expect_verify(g, "verify: node %1 (relu at t.c:2): declared f32[N,5] but relu gives f32[N,4]");
    g = small_graph();
    g->node[2].dtype = AG_I32;
    expect_verify(g, "verify: node %2 (sum): declared i32[N] but sum gives f32[N]");
    g = small_graph();
    g->node[2].shape.rank = 7;
    expect_verify(g, "verify: node %2 (sum): rank 7; at most 4 dims");
    g = small_graph();
    g->node[0].shape.dim[1] = 0;
    expect_verify(g, "verify: node %0 (input at t.c:1): dim 1 is 0; dims are positive or N");
    g = small_graph();
    g->node[0].dtype = (ag_dtype)77;
    expect_verify(g, "verify: node %0 (input at t.c:1): dtype ? (77) is not allowed in a graph");
    g = small_graph();
    g->node[2].attr.axes = 8; /* axis 3 of a rank 2 operand */
    expect_verify(g, "verify: node %2 (sum): sum: axes out of range for [N,4]");
}

Test(text, verify_bad_op_and_arity)
{
    ir_graph *g = small_graph();
    g->node[1].op = (ir_op)999;
    expect_verify(g, "verify: node %1 (op 999 at t.c:2): unknown op code 999");
    g = small_graph();
    g->node[1].nin = -3;
    expect_verify(g, "verify: node %1 (relu at t.c:2): relu takes 1 operand, has -3");
    g = small_graph();
    set_inputs(g, 1, 2, (int32_t[]){0, 0});
    expect_verify(g, "verify: node %1 (relu at t.c:2): relu takes 1 operand, has 2");
    g = small_graph();
    g->node[1].in = NULL;
    expect_verify(g, "verify: node %1 (relu at t.c:2): operand list is NULL");
}

Test(text, verify_names)
{
    ir_graph *g = small_graph();
    char err[256];
    ir_node y = ir_node_make(IR_input, 0, NULL);
    y.dtype = AG_F32, y.attr.name = "x";
    cr_assert_eq(ir_add(g, &y, err, sizeof err), 3);
    expect_verify(g, "verify: node %3 (input): the name x is already used by node %0");
    g = small_graph();
    g->node[0].attr.name = "not an identifier";
    expect_verify(g, "verify: node %0 (input at t.c:1): input name \"not an identifier\" is not an identifier");
    g = small_graph();
    g->node[0].attr.name = NULL;
    expect_verify(g, "verify: node %0 (input at t.c:1): input name \"(null)\" is not an identifier");
}

Test(text, verify_outputs)
{
    ir_graph *g = small_graph();
    g->nout = 0;
    expect_verify(g, "verify: graph @g has no outputs");
    g = small_graph();
    g->out[1].name = "r";
    expect_verify(g, "verify: output r: the name is used twice");
    g = small_graph();
    g->out[1].id = 3;
    expect_verify(g, "verify: output s: %3 is not a node");
    g = small_graph();
    g->out[0].name = "";
    expect_verify(g, "verify: output 0 has no name");
}

Test(text, verify_attributes)
{
    ir_graph *g = small_graph();
    g->node[1].attr.axis = 1;
    expect_verify(g, "verify: node %1 (relu at t.c:2): attribute axis is set, but relu has none");
    g = small_graph();
    g->node[0].attr.value = 2;
    expect_verify(g, "verify: node %0 (input at t.c:1): attribute value is set, but input has none");

    g = small_graph();
    char err[256];
    ir_node k = ir_node_make(IR_const, 0, NULL);
    k.dtype = AG_I32, k.attr.value = 2.5;
    cr_assert_eq(ir_add(g, &k, err, sizeof err), 3);
    expect_verify(g, "verify: node %3 (const): const: the value 2.5 is not a i32");

    g = small_graph();
    int32_t r = 1;
    ir_node d = ir_node_make(IR_dropout, 1, &r);
    d.attr.value = 0.5, d.attr.site = 1;
    cr_assert_eq(ir_add(g, &d, err, sizeof err), 3);
    cr_assert_eq(ir_add(g, &d, err, sizeof err), 4, "dropouts are never merged");
    cr_assert(ir_verify(g, err, sizeof err), "a site used again with the same p: %s", err);
    d.attr.value = 0.25;
    cr_assert_eq(ir_add(g, &d, err, sizeof err), 5);
    expect_verify(g, "verify: node %5 (dropout): dropout site 1 has p=0.25, but node %4 has p=0.5");

    g = small_graph();
    g->node[1].attr.start = 3;
    expect_verify(g, "verify: node %1 (relu at t.c:2): attribute start is set, but relu has none");
    g = small_graph();
    g->node[2].attr.grad = true;
    expect_verify(g, "verify: node %2 (sum): attribute grad is set, but sum has none");
    g = small_graph();
    g->node[0].attr.grad = true;
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    g->node[0].dtype = AG_I32;
    g->node[1].dtype = AG_I32;
    g->node[2].dtype = AG_I32;
    expect_verify(g, "verify: node %0 (input at t.c:1): input x: a gradient needs f32, not i32");
}

Test(text, verify_slice)
{
    ir_graph *g = small_graph();
    char err[256];
    int32_t x = 0;
    ir_node sl = ir_node_make(IR_slice, 1, &x);
    sl.shape = (ir_shape){2, {AG_N, 2}}, sl.attr.axis = 1, sl.attr.start = 2;
    cr_assert_eq(ir_add(g, &sl, err, sizeof err), 3, "%s", err);
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    g->node[3].attr.start = 3;
    expect_verify(g, "verify: node %3 (slice): slice: 2 elements from 3 are not within the 4 of axis 1");
    g = small_graph();
    cr_assert_eq(ir_add(g, &sl, err, sizeof err), 3, "%s", err);
    g->node[3].attr.start = INT64_MAX;
    expect_verify(g, "verify: node %3 (slice): slice: start 9223372036854775807 is out of range");
}

/* ---- the verifier, on broken declarations built by code ---- */

static const char *train_params[] = {"W", "V"};
static const char *train_classes[] = {"cat", "dog"};

/* small_graph, with params W f32[4] and V f32[4,4], outputs loss (f32[]) and count (i32[]),
 * and declarations naming them (in the graph's arena, so a test may change them). */
static ir_graph *train_graph(void)
{
    ir_graph *g = small_graph();
    char err[256];
    ir_node w = ir_node_make(IR_param, 0, NULL);
    w.dtype = AG_F32, w.shape = (ir_shape){1, {4}}, w.attr.name = "W";
    cr_assert_eq(ir_add(g, &w, err, sizeof err), 3, "%s", err);
    w.shape = (ir_shape){2, {4, 4}}, w.attr.name = "V";
    cr_assert_eq(ir_add(g, &w, err, sizeof err), 4, "%s", err);
    int32_t r = 1;
    ir_node s = ir_node_make(IR_sum, 1, &r);
    s.attr.axes = 3;
    cr_assert_eq(ir_add(g, &s, err, sizeof err), 5, "%s", err);
    ir_node k = ir_node_make(IR_const, 0, NULL);
    k.dtype = AG_I32, k.attr.value = 7;
    cr_assert_eq(ir_add(g, &k, err, sizeof err), 6, "%s", err);
    ir_add_output(g, "loss", 5);
    ir_add_output(g, "count", 6);
    ir_train *t = ir_alloc(g, sizeof *t);
    t->stage = IR_STAGE_GRADIENTS;
    t->loss = "loss";
    t->nmetrics = 2;
    t->metrics[0] = "count";
    t->metrics[1] = "loss";
    t->predict = "r";
    t->optimizer = "sgd";
    t->lr = 0.1, t->batch = 32, t->epochs = 1;
    t->data = "pets";
    t->nclasses = 2;
    t->classes = ir_alloc(g, sizeof train_classes);
    memcpy(t->classes, train_classes, sizeof train_classes);
    t->ngroups = 2;
    t->groups = ir_alloc(g, 2 * sizeof *t->groups);
    const char **p = ir_alloc(g, sizeof train_params);
    memcpy(p, train_params, sizeof train_params);
    t->groups[0] = (ir_group){"weights", 1, 1, 1, p};
    t->groups[1] = (ir_group){"more", 0, 2, 1, p + 1};
    t->noptions = 1;
    t->options = ir_alloc(g, sizeof *t->options);
    t->options[0] = (ir_option){"act", "relu", "relu|tanh"};
    g->train = t;
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
    return g;
}

Test(text, verify_train_round_trips)
{
    ir_graph *g = train_graph();
    char *s = ir_print_str(g);
    cr_assert(strstr(s, "  return r: %0, s: %1, loss: %2, count: 7\n"
                        "  train gradients loss=loss metrics=[count, loss] predict=r\n"
                        "  optimizer sgd lr=0.1 wd=0 batch=32 epochs=1\n"
                        "  group weights wd_scale=1 lr_scale=1 params=[W]\n"
                        "  group more wd_scale=0 lr_scale=2 params=[V]\n"
                        "  data \"pets\" classes=[\"cat\", \"dog\"]\n"
                        "  option act=\"relu\" choices=\"relu|tanh\"\n"
                        "}\n"),
              "%s", s);
    assert_canonical(s);
    free(s);
    ir_graph_free(g);
}

Test(text, verify_train)
{
    ir_graph *g = train_graph();
    g->train->loss = NULL;
    expect_verify(g, "verify: train: the loss is not set");
    g = train_graph();
    g->train->loss = "nope";
    expect_verify(g, "verify: train: loss 'nope' is not an output");
    g = train_graph();
    g->train->loss = "r";
    expect_verify(g, "verify: train: loss 'r' is f32[N,4], not a scalar f32");
    g = train_graph();
    g->train->loss = "count";
    expect_verify(g, "verify: train: loss 'count' is i32[], not a scalar f32");
    g = train_graph();
    g->train->metrics[1] = "s";
    expect_verify(g, "verify: train: metric 's' is f32[N], not a scalar");
    g = train_graph();
    g->train->metrics[1] = "acc";
    expect_verify(g, "verify: train: metric 'acc' is not an output");
    g = train_graph();
    g->train->metrics[1] = "count";
    expect_verify(g, "verify: train: metric 'count' is listed twice");
    g = train_graph();
    g->train->nmetrics = IR_MAX_METRICS + 1;
    expect_verify(g, "verify: train: 9 metrics; at most 8");
    g = train_graph();
    g->train->predict = "logits";
    expect_verify(g, "verify: train: predict 'logits' is not an output");
    g = train_graph();
    g->train->stage = (ir_stage)7;
    expect_verify(g, "verify: train: unknown stage 7");
    g = train_graph();
    g->train->optimizer = NULL;
    expect_verify(g, "verify: train: optimizer name \"(null)\" is not an identifier");
    g = train_graph();
    g->train->optimizer = "s g d";
    expect_verify(g, "verify: train: optimizer name \"s g d\" is not an identifier");
    g = train_graph();
    g->train->lr = NAN;
    expect_verify(g, "verify: train: lr nan and wd 0 must be finite, >= 0 and fit an f32");
    g = train_graph();
    g->train->wd = -INFINITY;
    expect_verify(g, "verify: train: lr 0.1 and wd -inf must be finite, >= 0 and fit an f32");
    g = train_graph();
    g->train->batch = 0;
    expect_verify(g, "verify: train: batch 0 and epochs 1 must be from 1 to 2^30");
    g = train_graph();
    g->train->epochs = -1;
    expect_verify(g, "verify: train: batch 32 and epochs -1 must be from 1 to 2^30");
    g = train_graph();
    g->train->batch = IR_MAX_COUNT + 1;
    expect_verify(g, "verify: train: batch 1073741825 and epochs 1 must be from 1 to 2^30");
    g = train_graph();
    g->train->optimizer = "lion";
    expect_verify(g, "verify: train: unknown optimizer 'lion' (aotgrad has sgd, adam, adamw, rmsprop, adagrad)");
    g = train_graph();
    g->train->lr = -1;
    expect_verify(g, "verify: train: lr -1 and wd 0 must be finite, >= 0 and fit an f32");
    /* each optimizer's hyperparameters: only those it takes, each in its range */
    g = train_graph();
    g->train->hp[IR_HP_BETA1] = 0.9;
    expect_verify(g, "verify: train: sgd takes no beta1 (it takes lr, wd, momentum, nesterov)");
    g = train_graph();
    g->train->hp[IR_HP_NESTEROV] = 1;
    expect_verify(g, "verify: train: sgd: nesterov needs a momentum above 0");
    g = train_graph();
    g->train->optimizer = "adam";
    g->train->hp[IR_HP_BETA2] = 1;
    expect_verify(g, "verify: train: adam: beta2 is 1; expected a number in [0, 1)");
    g = train_graph();
    g->train->optimizer = "rmsprop";
    g->train->hp[IR_HP_EPS] = -1e-8;
    expect_verify(g, "verify: train: rmsprop: eps is -1e-08; expected a finite number >= 0");
    /* role=state is a param's, and the only role a param has */
    g = train_graph();
    g->node[3].attr.role = AG_ROLE_LR;
    expect_verify(g, "verify: node %3 (param): param W: role=lr is an input's; a param's role is state or accum");
    g = train_graph();
    g->train->nclasses = IR_MAX_CLASSES + 1;
    expect_verify(g, "verify: train: 257 classes; at most 256");
    g = train_graph();
    g->train->data = NULL;
    expect_verify(g, "verify: train: classes without data");
    g = train_graph();
    g->train->classes[1] = NULL;
    expect_verify(g, "verify: train: class 1 is not set");
}

Test(text, verify_train_groups_and_options)
{
    ir_graph *g = train_graph();
    g->train->groups[1].params[0] = "x";
    expect_verify(g, "verify: train: group more: 'x' is not a param");
    g = train_graph();
    g->train->groups[1].params[0] = "W";
    expect_verify(g, "verify: train: param W is in group weights and in group more");
    g = train_graph();
    g->train->groups[0].nparams = 2;
    g->train->groups[0].params = ir_alloc(g, 2 * sizeof(char *));
    g->train->groups[0].params[0] = g->train->groups[0].params[1] = "W";
    expect_verify(g, "verify: train: group weights lists param W twice");
    g = train_graph();
    g->train->groups[1].params = NULL;
    expect_verify(g, "verify: train: group more: broken param array");
    g = train_graph();
    g->train->groups[1].name = "weights";
    expect_verify(g, "verify: train: group weights is declared twice");
    g = train_graph();
    g->train->groups[0].name = "";
    expect_verify(g, "verify: train: group 0: name \"\" is not an identifier");
    g = train_graph();
    g->train->groups[0].lr_scale = INFINITY;
    expect_verify(g, "verify: train: group weights: wd_scale 1 and lr_scale inf must be finite, >= 0 and fit an f32");
    g = train_graph();
    g->train->groups = NULL;
    expect_verify(g, "verify: train: broken group array");
    g = train_graph();
    g->train->options[0].choices = NULL;
    expect_verify(g, "verify: train: option act: its value or choices are not set");
    g = train_graph();
    g->train->options[0].name = "1x";
    expect_verify(g, "verify: train: option 0: name \"1x\" is not an identifier");
    g = train_graph();
    g->train->noptions = -1;
    expect_verify(g, "verify: train: broken option array");
}

/* The limits on metrics and classes, at the parser. */
Test(text, declaration_limits)
{
    char *t = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&t, &len);
    fprintf(f, "graph @x {\n  return l: 1.0");
    for (int i = 0; i < 9; i++)
        fprintf(f, ", m%d: %d", i, i);
    fprintf(f, "\n  train model loss=l metrics=[m0");
    for (int i = 1; i < 9; i++)
        fprintf(f, ", m%d", i);
    fprintf(f, "]\n");
    fclose(f);
    char err[256] = "";
    cr_assert_null(ir_parse(t, len, "t.ir", err, sizeof err));
    cr_assert_str_eq(err, "t.ir:3:63: error: more than 8 metrics");
    free(t);

    f = open_memstream(&t, &len);
    fprintf(f, "graph @x {\n  return l: 1.0\n  train model loss=l\n  optimizer sgd lr=0 wd=0 batch=1 epochs=1\n"
               "  data \"d\" classes=[\"c0\"");
    for (int i = 1; i < IR_MAX_CLASSES; i++)
        fprintf(f, ", \"c%d\"", i);
    fprintf(f, "]\n}\n");
    fflush(f);
    ir_graph *g = ir_parse(t, len, "t.ir", err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cr_assert_eq(g->train->nclasses, IR_MAX_CLASSES);
    cr_assert_str_eq(g->train->classes[255], "c255");
    ir_graph_free(g);
    fseek(f, -(long)strlen("]\n}\n"), SEEK_CUR);
    fprintf(f, ", \"too many\"]\n}\n");
    fclose(f);
    cr_assert_null(ir_parse(t, len, "t.ir", err, sizeof err));
    cr_assert(strstr(err, "t.ir:5:") && strstr(err, ": error: more than 256 classes"), "%s", err);
    free(t);
}

Test(text, verify_garbage_graphs)
{
    char err[256];
    cr_assert_not(ir_verify(NULL, err, sizeof err));
    cr_assert_str_eq(err, "verify: no graph");
    ir_graph *g = small_graph();
    g->n = -1;
    cr_assert_not(ir_verify(g, err, sizeof err));
    cr_assert_str_eq(err, "verify: graph @g: broken node or output arrays");
    g->n = 3;
    ir_graph_free(g);
}

/* ---- inputs' roles: what training binds to them ---- */

Test(text, verify_roles)
{
    ir_graph *g = small_graph();
    g->node[0].attr.role = AG_ROLE_LR; /* a batch is no learning rate */
    expect_verify(g, "verify: node %0 (input at t.c:1): input x: role=lr is an f32 scalar, not f32[N,4]");
    g = small_graph();
    g->node[0].attr.role = (ag_role)42;
    expect_verify(g, "verify: node %0 (input at t.c:1): input x: unknown role 42");
    g = small_graph();
    g->node[0].attr.role = AG_ROLE_DATA;
    g->node[1].attr.role = AG_ROLE_DATA; /* relu has no role attribute */
    expect_verify(g, "verify: node %1 (relu at t.c:2): attribute role is set, but relu has none");
}

/* A role prints and parses back; two inputs of one role are refused at the second's line. */
Test(text, roles_print_parse_and_are_unique)
{
    const char *text = "graph @r {\n  %y: i32[N] = input role=labels\n  %x: f32[N,3] = input role=data grad\n"
                       "  %rate: f32[] = input role=lr\n  return o: %x\n}\n";
    char err[512];
    ir_graph *g = ir_parse(text, strlen(text), "r.ir", err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cr_expect(ir_verify(g, err, sizeof err), "%s", err);
    cr_expect_eq(ir_find_role(g, AG_ROLE_DATA), 1);
    cr_expect_eq(ir_find_role(g, AG_ROLE_LABELS), 0);
    cr_expect_eq(ir_find_role(g, AG_ROLE_LR), 2);
    cr_expect_eq(ir_find_role(g, AG_ROLE_WD), -1);
    char *back = ir_print_str(g);
    cr_expect_str_eq(back, text);
    free(back);
    ir_graph_free(g);
    const char *twice = "graph @r {\n  %x: f32[N,3] = input role=data\n  %z: f32[N,3] = input role=data\n"
                        "  return o: %x\n}\n";
    g = ir_parse(twice, strlen(twice), "r.ir", err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cr_expect(!ir_verify(g, err, sizeof err));
    cr_expect(strstr(err, "input z: role=data is x's already"), "%s", err);
    ir_graph_free(g);
    const char *bad = "graph @r {\n  %x: f32[N,3] = input role=feature\n  return o: %x\n}\n";
    cr_expect_null(ir_parse(bad, strlen(bad), "r.ir", err, sizeof err));
    cr_expect(strstr(err, "r.ir:2:29: error:") &&
                  strstr(err, "a role: data, labels, lr, wd, grad_weight, grad_scale, clip_norm or share"),
              "%s", err);
    /* role=state is a param's, the optimizer's; no other role is */
    const char *state = "graph @r {\n  %w.exp_avg: f32[3] = param zeros role=state\n  return o: %w.exp_avg\n}\n";
    g = ir_parse(state, strlen(state), "r.ir", err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cr_expect(ir_verify(g, err, sizeof err), "%s", err);
    back = ir_print_str(g);
    cr_expect_str_eq(back, state);
    free(back);
    ir_graph_free(g);
    const char *wrong[][2] = {
        {"graph @r {\n  %w: f32[3] = param zeros role=lr\n  return o: %w\n}\n",
         "r.ir:2:33: error: role=lr is an input's; a param's role is state or accum"},
        {"graph @r {\n  %x: f32[] = input role=state\n  return o: %x\n}\n",
         "r.ir:2:26: error: role=state is a param's"},
    };
    for (int k = 0; k < 2; k++) {
        cr_expect_null(ir_parse(wrong[k][0], strlen(wrong[k][0]), "r.ir", err, sizeof err));
        cr_expect(strstr(err, wrong[k][1]), "%s", err);
    }
}
