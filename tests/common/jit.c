#include <criterion/criterion.h>

#include "emit.h"
#include "jit.h"
#include "target.h"

struct jit_entry {
    cg_target *t;
    cg_jit *j;
    void (*entry)(const cg_args *);
};

jit_entry *jit_compile(const cg_program *p)
{
    char err[1024];
    jit_entry *e = calloc(1, sizeof *e);
    e->t = cg_target_host(err, sizeof err);
    cr_assert_not_null(e->t, "%s", err);
    e->j = cg_jit_new(err, sizeof err);
    cr_assert_not_null(e->j, "%s", err);
    LLVMModuleRef m = cg_emit_module(p, cg_jit_context(e->j), e->t, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    cr_assert(cg_optimize(e->t, m, err, sizeof err), "%s", err);
    cr_assert(cg_jit_add(e->j, m, err, sizeof err), "%s", err);
    *(void **)&e->entry = cg_jit_lookup(e->j, p->name, err, sizeof err);
    cr_assert_not_null(e->entry, "%s", err);
    return e;
}

void jit_call(const jit_entry *j, const cg_args *args) { j->entry(args); }

void jit_free(jit_entry *j)
{
    cg_jit_free(j->j);
    cg_target_free(j->t);
    free(j);
}

void jit_run(const cg_program *p, const cg_args *args)
{
    jit_entry *j = jit_compile(p);
    jit_call(j, args);
    jit_free(j);
}
