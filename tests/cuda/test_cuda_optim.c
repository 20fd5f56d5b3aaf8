/* The CUDA C of the train step against torch.optim itself, through the host shim: as
 * tests/codegen/test_optim_torch.c does for the CPU code (all seven configurations there),
 * models/mlp.c's network, 20 steps of 64 Fashion-MNIST images, every parameter and state
 * tensor within 1e-5 norm-wise of torch's float64 (tests/data/optim/reference.txt),
 * RMSProp's within 1e-4 (torch's own float32 run ends 4.0e-5 from its float64 one). Here
 * the two adaptive forms (Adam's moments and bias corrections; RMSProp's root of a square
 * average), each a test of its own so criterion's two workers share them: 20 steps through
 * the shim take about 20 s of CPU a configuration, more under ASan (all seven passed once:
 * worst 1.6e-5, RMSProp; SGD's and momentum's linear updates are held to the interpreter
 * by the random-model tester's cuda oracle). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_host.h"
#include "cuda_source.h"
#include "lower.h"
#include "optim_ref.h"
#include "passes.h"

static void check(int c)
{
    optim_ref ref;
    optim_ref_load(&ref);
    char err[4096];
    {
        ag_optimizer o;
        const char *name = optim_ref_config(c, &o);
        ag_graph *m = ag_graph_new("mlp");
        optim_ref_net(m, o);
        cr_assert_eq(ag_graph_finish(m), 0);
        ir_graph *g = pass_run(m, true, NULL, NULL, NULL, err, sizeof err);
        cr_assert_not_null(g, "%s: %s", name, err);
        cg_program *p = cg_lower(g, true, err, sizeof err);
        cr_assert_not_null(p, "%s: %s", name, err);
        cg_cuda_plan plan;
        char *src = cuda_source(p, &plan, err, sizeof err);
        cr_assert_not_null(src, "%s: %s", name, err);
        size_t abytes = (size_t)rt_arena_bytes(p->arena, p->narena, OPTIM_REF_BATCH), pbytes = (size_t)p->param_bytes;
        char *arena = calloc(1, abytes + 64), *params = calloc(1, pbytes + 64);
        optim_ref_start_params(p, g, params);
        float *x = malloc(sizeof *x * OPTIM_REF_BATCH * 784), lr = (float)o.lr, wd = (float)o.wd;
        int32_t *y = malloc(sizeof *y * OPTIM_REF_BATCH);
        cuda_host_region in[8];
        for (int k = 0; k < p->ninputs; k++) {
            ag_role r = g->node[p->input_node[k]].attr.role;
            in[k] = r == AG_ROLE_DATA     ? (cuda_host_region){x, sizeof *x * OPTIM_REF_BATCH * 784}
                    : r == AG_ROLE_LABELS ? (cuda_host_region){y, sizeof *y * OPTIM_REF_BATCH}
                                          : (cuda_host_region){r == AG_ROLE_LR ? &lr : &wd, 4};
        }
        for (int s = 0; s < OPTIM_REF_STEPS; s++) {
            optim_ref_batch(&ref, s, x, y);
            cr_assert(cuda_host_run(src, &plan, OPTIM_REF_BATCH, 1, (uint64_t)s, (cuda_host_region){arena, abytes},
                                    (cuda_host_region){params, pbytes}, in, p->ninputs, NULL, 0, 4, err, sizeof err),
                      "%s, step %d: %s", name, s, err);
            optim_ref_take_updates(p, g, arena, params);
        }
        double worst = optim_ref_check(&ref, name, p, params, strcmp(name, "rmsprop") ? 1e-5 : 1e-4);
        cr_log_info("%s: the CUDA step ends %.3g from torch.optim's float64 (norm-wise, worst tensor)", name, worst);
        free(x);
        free(y);
        free(arena);
        free(params);
        free(src);
        cg_cuda_plan_free(&plan);
        cg_program_free(p);
        ir_graph_free(g);
        ag_graph_free(m);
    }
    optim_ref_free(&ref);
}

Test(cuda_optim, adam_matches_torch_optim) { check(3); }
Test(cuda_optim, rmsprop_matches_torch_optim) { check(5); }
