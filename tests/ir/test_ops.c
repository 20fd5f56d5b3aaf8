/* The op table walk: every op is known to the parser, printer, verifier and interpreter,
 * on its sample graph (tests/common/op_samples.c); an op without one fails. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "interp.h"
#include "ir.h"
#include "op_samples.h"

static double rel_diff(const ir_tensor *a, const ir_tensor *b)
{
    double num = 0, den = 0;
    int64_t n = ir_numel(&a->shape, 1);
    for (int64_t i = 0; i < n; i++) {
        double x = ir_tensor_get(a, i), y = ir_tensor_get(b, i);
        if ((isnan(x) && isnan(y)) || (isinf(x) && x == y))
            continue; /* log, sqrt and pow of negative samples */
        num += (x - y) * (x - y);
        den += y * y;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void check_sample(ir_op op)
{
    char text[4096], err[512];
    cr_assert(op_sample(op, text, sizeof text), "op %s has no sample in tests/common/op_samples.c", ir_ops[op].name);
    ir_graph *g = ir_parse(text, strlen(text), "sample.ir", err, sizeof err);
    cr_assert_not_null(g, "%s: the parser rejects its sample: %s\n%s", ir_ops[op].name, err, text);
    cr_assert(ir_verify(g, err, sizeof err), "%s: the verifier rejects its sample: %s", ir_ops[op].name, err);
    bool used = false;
    for (int32_t i = 0; i < g->n; i++)
        used |= g->node[i].op == op;
    cr_assert(used, "%s: the sample does not use it", ir_ops[op].name);
    char *printed = ir_print_str(g);
    cr_assert_str_eq(printed, text, "%s: the printer's form differs from the sample", ir_ops[op].name);
    free(printed);

    /* the interpreter runs it at two batch sizes, and f32 agrees with f64 */
    for (int64_t batch = 1; batch <= 5; batch += 4) {
        ir_tensor out[2][8];
        for (int f64 = 0; f64 < 2; f64++) {
            ir_tensor **bound = fe_bind_random(g, batch, 7, f64);
            ir_run run = {.f64 = f64, .batch = batch, .seed = 7, .step = 1, .training = true};
            cr_assert(ir_interp(g, &run, (const ir_tensor *const *)bound, out[f64], err, sizeof err),
                      "%s: the interpreter fails: %s", ir_ops[op].name, err);
            fe_bind_free(g, bound);
        }
        for (int k = 0; k < g->nout; k++) {
            cr_assert(ir_shape_eq(&out[0][k].shape, &out[1][k].shape));
            double d = rel_diff(&out[0][k], &out[1][k]);
            cr_expect(d < 1e-5, "%s: output %s: f32 and f64 differ by %g", ir_ops[op].name, g->out[k].name, d);
            ir_tensor_free(&out[0][k]);
            ir_tensor_free(&out[1][k]);
        }
    }
    ir_graph_free(g);
}

Test(ops, every_op_is_parsed_printed_verified_and_interpreted)
{
    for (int op = 0; op < IR_OP_COUNT; op++) {
        cr_assert(ir_ops[op].name && ir_ops[op].doc && ir_ops[op].doc[0], "op %d has no name or doc", op);
        ir_op back;
        cr_assert(ir_op_by_name(ir_ops[op].name, strlen(ir_ops[op].name), &back) && back == (ir_op)op);
        check_sample((ir_op)op);
    }
}
