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
#include "load.h"
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

/* Whether step s stores into parameter q's bytes (a loop's store, q's buffer or a view). */
static bool stores_into(const cg_program *p, int s, const cg_param *q)
{
    const cg_step *st = &p->steps[s];
    if (st->kind != CG_LOOP)
        return false;
    for (int k = 0; k < st->loop.nstores; k++) {
        const cg_buffer *b = &p->buffers[st->loop.store[k].at.buffer];
        if (b->region == CG_PARAMS && b->offset.k >= q->offset && b->offset.k < q->offset + q->bytes)
            return true;
    }
    return false;
}

/* On the GPU the updates of all small parameters are one launch: models/mlp_adam.c's b1, W2
 * and b2 (their moments, step counts and values, and b2's gradient sum) run in one merged
 * block, W1's (200704 elements) in launches of their own. Before, seven launches. */
Test(cuda_optim, small_updates_are_one_launch)
{
    ir_graph *m = fe_load(AG_SOURCE_DIR "/models/mlp_adam.c", getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(m);
    char err[1024];
    ir_graph *g = pass_run(m, true, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cg_program *p = cg_lower(g, true, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    cg_cuda_plan plan;
    char *src = cuda_source(p, &plan, err, sizeof err);
    cr_assert_not_null(src, "%s", err);
    /* two passes: the small parameters' launch, then W1's elsewhere */
    int shared = -1, small = 0, large = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < p->nparams; i++) {
            const cg_param *q = &p->params[i];
            size_t stem = strcspn(q->name, "."); /* its parameter (W1.exp_avg's is W1) */
            int64_t bytes = 0;
            for (int j = 0; j < p->nparams; j++)
                if (strlen(p->params[j].name) == stem && strncmp(p->params[j].name, q->name, stem) == 0)
                    bytes = p->params[j].bytes;
            cr_assert(bytes > 0, "no parameter of %s", q->name);
            for (int l = 0; l < plan.nsteps; l++)
                for (int s = plan.step[l].first_step; s < plan.step[l].first_step + plan.step[l].steps; s++) {
                    if (!stores_into(p, s, q) || (bytes > 4096 * 4) != (pass == 1))
                        continue;
                    if (pass == 1) { /* W1's */
                        large++;
                        cr_expect_neq(l, shared, "%s is updated in the small ones' launch", q->name);
                        continue;
                    }
                    small++;
                    if (shared < 0)
                        shared = l;
                    cr_expect_eq(l, shared, "%s is updated in launch %s, not with the others in %s", q->name,
                                 plan.step[l].name, plan.step[shared].name);
                }
        }
    cr_expect_eq(p->nparams, 16, "%d parameters and state tensors (4 each: value, 2 moments, step)", p->nparams);
    cr_expect(small >= 12 && large >= 3, "%d small and %d large updates found", small, large);
    cr_expect(shared >= 0 && plan.step[shared].merged, "the small updates' launch is a merged one");
    free(src);
    cg_cuda_plan_free(&plan);
    cg_program_free(p);
    ir_graph_free(g);
    ir_graph_free(m);
}
