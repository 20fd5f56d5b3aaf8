/* The compiled train step against torch.optim itself (tests/data/optim/reference.txt, float64,
 * bench/optim_reference.py): models/mlp.c's network, 20 steps of 64 Fashion-MNIST images with
 * each optimizer, through the LLVM code aotgrad build makes (f32, 2 threads), every parameter
 * and state tensor within 1e-5 norm-wise of torch's, except RMSProp's: torch's own float32
 * run ends 4.0e-5 from its float64 one (bench/optim_reference.py --f32-drift; the others
 * 1.3e-7 to 2.9e-6), so f32 code is held to 1e-4 there. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdlib.h>
#include <string.h>

#include "jit.h"
#include "lower.h"
#include "optim_ref.h"
#include "passes.h"
#include "pool.h"

Test(optim_torch, the_compiled_step_matches_torch_optim)
{
    optim_ref ref;
    optim_ref_load(&ref);
    rt_pool *pool = rt_pool_new(2);
    char err[1024];
    for (int c = 0; c < OPTIM_REF_CONFIGS; c++) {
        ag_optimizer o;
        const char *name = optim_ref_config(c, &o);
        ag_graph *m = ag_graph_new("mlp");
        optim_ref_net(m, o);
        cr_assert_eq(ag_graph_finish(m), 0);
        ir_graph *g = pass_run(m, true, NULL, NULL, NULL, err, sizeof err);
        cr_assert_not_null(g, "%s: %s", name, err);
        cg_program *p = cg_lower(g, true, err, sizeof err);
        cr_assert_not_null(p, "%s: %s", name, err);
        jit_entry *j = jit_compile(p);
        char *arena = calloc(1, (size_t)rt_arena_bytes(p->arena, p->narena, OPTIM_REF_BATCH) + 64),
             *params = calloc(1, (size_t)p->param_bytes + 64);
        optim_ref_start_params(p, g, params);
        float *x = malloc(sizeof *x * OPTIM_REF_BATCH * 784), lr = (float)o.lr, wd = (float)o.wd;
        int32_t *y = malloc(sizeof *y * OPTIM_REF_BATCH);
        void *inputs[8];
        for (int k = 0; k < p->ninputs; k++) {
            ag_role r = g->node[p->input_node[k]].attr.role;
            inputs[k] = r == AG_ROLE_DATA ? (void *)x : r == AG_ROLE_LABELS ? (void *)y : r == AG_ROLE_LR ? &lr : &wd;
        }
        for (int s = 0; s < OPTIM_REF_STEPS; s++) {
            optim_ref_batch(&ref, s, x, y);
            cg_args args = {arena, params, inputs, NULL, OPTIM_REF_BATCH, 1, (uint64_t)s, pool, NULL, 0, NULL};
            jit_call(j, &args);
            optim_ref_take_updates(p, g, arena, params);
        }
        double worst = optim_ref_check(&ref, name, p, params, strcmp(name, "rmsprop") ? 1e-5 : 1e-4);
        cr_log_info("%s: the compiled f32 step ends %.3g from torch.optim's float64 (norm-wise, worst tensor)", name,
                    worst);
        free(x);
        free(y);
        free(arena);
        free(params);
        jit_free(j);
        cg_program_free(p);
        ir_graph_free(g);
        ag_graph_free(m);
    }
    rt_pool_free(pool);
    optim_ref_free(&ref);
}
