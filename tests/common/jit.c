#include <criterion/criterion.h>

#include "emit.h"
#include "jit.h"
#include "target.h"

void jit_run(const cg_program *p, const cg_args *args)
{
    char err[1024];
    cg_target *t = cg_target_host(err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    cg_jit *j = cg_jit_new(err, sizeof err);
    cr_assert_not_null(j, "%s", err);
    LLVMModuleRef m = cg_emit_module(p, cg_jit_context(j), t, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    cr_assert(cg_optimize(t, m, err, sizeof err), "%s", err);
    cr_assert(cg_jit_add(j, m, err, sizeof err), "%s", err);
    void (*entry)(const cg_args *);
    *(void **)&entry = cg_jit_lookup(j, p->name, err, sizeof err);
    cr_assert_not_null(entry, "%s", err);
    entry(args);
    cg_jit_free(j);
    cg_target_free(t);
}
