/* Host target machine, O3 pipeline, emission and an ORC LLJIT: see target.h. */
#include "target.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "fail.h"

struct cg_target {
    LLVMTargetMachineRef tm;
    char *triple, *cpu, *features; /* LLVM's strings: LLVMDisposeMessage */
};

struct cg_jit {
    LLVMOrcLLJITRef jit;
    LLVMOrcThreadSafeContextRef tsc; /* every module added lives in this context */
};

/* Writes e's message and disposes of it (consuming e). */
static void say_error(char *err, size_t len, const char *what, LLVMErrorRef e)
{
    char *m = LLVMGetErrorMessage(e);
    rt_fail_trimmed(err, len, "%s: %s", what, m);
    LLVMDisposeErrorMessage(m);
}

/* LLVM's target registry is process-wide: initialize the native target once. */
static once_flag native_once = ONCE_FLAG_INIT;
static bool native_failed;
static void native_init(void)
{
    native_failed = LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter() || LLVMInitializeNativeAsmParser();
}

static bool native_ready(char *err, size_t len)
{
    call_once(&native_once, native_init);
    if (native_failed)
        rt_fail_trimmed(err, len, "LLVM: cannot initialize the native target");
    return !native_failed;
}

/* A host target machine: triple, CPU and features of this machine, PIC, O3. */
static LLVMTargetMachineRef host_machine(char **triple, char **cpu, char **features, char *err, size_t len)
{
    char *def = LLVMGetDefaultTargetTriple();
    *triple = LLVMNormalizeTargetTriple(def);
    LLVMDisposeMessage(def);
    *cpu = LLVMGetHostCPUName();
    *features = LLVMGetHostCPUFeatures();

    LLVMTargetRef target;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(*triple, &target, &msg)) {
        rt_fail_trimmed(err, len, "LLVM: no target for %s: %s", *triple, msg ? msg : "");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, *triple, *cpu, *features, LLVMCodeGenLevelAggressive,
                                                      LLVMRelocPIC, LLVMCodeModelDefault);
    if (!tm)
        rt_fail_trimmed(err, len, "LLVM: cannot create a target machine for %s (%s)", *triple, *cpu);
    return tm;
}

cg_target *cg_target_host(char *err, size_t len)
{
    if (!native_ready(err, len))
        return NULL;
    cg_target *t = calloc(1, sizeof *t);
    if (!t) {
        rt_fail_trimmed(err, len, "out of memory");
        return NULL;
    }
    t->tm = host_machine(&t->triple, &t->cpu, &t->features, err, len);
    if (!t->tm) {
        cg_target_free(t);
        return NULL;
    }
    return t;
}

void cg_target_free(cg_target *t)
{
    if (!t)
        return;
    if (t->tm)
        LLVMDisposeTargetMachine(t->tm);
    LLVMDisposeMessage(t->triple);
    LLVMDisposeMessage(t->cpu);
    LLVMDisposeMessage(t->features);
    free(t);
}

const char *cg_target_triple(const cg_target *t) { return t->triple; }
const char *cg_target_cpu(const cg_target *t) { return t->cpu; }
const char *cg_target_features(const cg_target *t) { return t->features; }
LLVMTargetMachineRef cg_target_machine(const cg_target *t) { return t->tm; }

bool cg_target_has(const cg_target *t, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = t->features; p && *p;) {
        const char *end = strchr(p, ',');
        size_t k = end ? (size_t)(end - p) : strlen(p);
        if (k == n + 1 && p[0] == '+' && !memcmp(p + 1, name, n))
            return true;
        p = end ? end + 1 : p + k;
    }
    return false;
}

void cg_target_prepare(cg_target *t, LLVMModuleRef m)
{
    LLVMSetTarget(m, t->triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(t->tm);
    char *s = LLVMCopyStringRepOfTargetData(dl);
    LLVMSetDataLayout(m, s);
    LLVMDisposeMessage(s);
    LLVMDisposeTargetData(dl);
}

/* true when m is well formed; otherwise the verifier's report goes to err */
static bool verify(LLVMModuleRef m, char *err, size_t len)
{
    char *msg = NULL;
    bool broken = LLVMVerifyModule(m, LLVMReturnStatusAction, &msg);
    if (broken)
        rt_fail_trimmed(err, len, "LLVM verifier: %s", msg ? msg : "invalid module");
    LLVMDisposeMessage(msg);
    return !broken;
}

bool cg_optimize(cg_target *t, LLVMModuleRef m, char *err, size_t len)
{
    if (!verify(m, err, len))
        return false;
    LLVMPassBuilderOptionsRef o = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(o, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(o, 1);
    LLVMPassBuilderOptionsSetLoopInterleaving(o, 1);
    LLVMPassBuilderOptionsSetLoopUnrolling(o, 1);
    LLVMErrorRef e = LLVMRunPasses(m, "default<O3>", t->tm, o);
    LLVMDisposePassBuilderOptions(o);
    if (e) {
        say_error(err, len, "LLVM passes", e);
        return false;
    }
    return true;
}

/* Codegen runs IR passes (CodeGenPrepare and friends) that rewrite the module in place,
 * and running it twice on one module is not supported: work on a clone. */
static bool emit(cg_target *t, LLVMModuleRef m, const char *path, LLVMCodeGenFileType kind, char *err, size_t len)
{
    LLVMModuleRef copy = LLVMCloneModule(m);
    char *msg = NULL;
    bool bad = LLVMTargetMachineEmitToFile(t->tm, copy, path, kind, &msg);
    if (bad)
        rt_fail_trimmed(err, len, "%s: %s", path, msg ? msg : "cannot emit");
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(copy);
    return !bad;
}

bool cg_emit_object(cg_target *t, LLVMModuleRef m, const char *path, char *err, size_t len)
{
    return emit(t, m, path, LLVMObjectFile, err, len);
}

bool cg_emit_assembly(cg_target *t, LLVMModuleRef m, const char *path, char *err, size_t len)
{
    return emit(t, m, path, LLVMAssemblyFile, err, len);
}

bool cg_emit_ir(LLVMModuleRef m, const char *path, char *err, size_t len)
{
    char *msg = NULL;
    bool bad = LLVMPrintModuleToFile(m, path, &msg);
    if (bad)
        rt_fail_trimmed(err, len, "%s: %s", path, msg ? msg : "cannot write");
    LLVMDisposeMessage(msg);
    return !bad;
}

cg_jit *cg_jit_new(char *err, size_t len)
{
    if (!native_ready(err, len))
        return NULL;
    cg_jit *j = calloc(1, sizeof *j);
    if (!j) {
        rt_fail_trimmed(err, len, "out of memory");
        return NULL;
    }
    /* The JIT compiles for the same CPU, features and O3 as cg_target_host. */
    char *triple, *cpu, *features;
    LLVMTargetMachineRef tm = host_machine(&triple, &cpu, &features, err, len);
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    if (!tm) {
        free(j);
        return NULL;
    }
    LLVMOrcLLJITBuilderRef b = LLVMOrcCreateLLJITBuilder();
    /* both calls take ownership: of tm, then of the machine builder */
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(b, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->jit, b); /* takes b, even on failure */
    if (e) {
        say_error(err, len, "LLVM JIT", e);
        free(j);
        return NULL;
    }
    /* Unresolved names fall back to the process: cblas_sgemm, libm, exported functions.
     * (LLJIT links a process-symbols library by default too; this does not rely on it.) */
    LLVMOrcDefinitionGeneratorRef g;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&g, LLVMOrcLLJITGetGlobalPrefix(j->jit), NULL, NULL);
    if (e) {
        say_error(err, len, "LLVM JIT: process symbols", e);
        cg_jit_free(j);
        return NULL;
    }
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(j->jit), g); /* takes g */
    j->tsc = LLVMOrcCreateNewThreadSafeContext();
    return j;
}

LLVMContextRef cg_jit_context(cg_jit *j) { return LLVMOrcThreadSafeContextGetContext(j->tsc); }

bool cg_jit_add(cg_jit *j, LLVMModuleRef m, char *err, size_t len)
{
    if (!verify(m, err, len)) {
        LLVMDisposeModule(m);
        return false;
    }
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m, j->tsc);
    LLVMErrorRef e = LLVMOrcLLJITAddLLVMIRModule(j->jit, LLVMOrcLLJITGetMainJITDylib(j->jit), tsm);
    if (e) {
        say_error(err, len, "LLVM JIT", e);
        return false;
    }
    return true;
}

void *cg_jit_lookup(cg_jit *j, const char *name, char *err, size_t len)
{
    LLVMOrcExecutorAddress addr = 0;
    LLVMErrorRef e = LLVMOrcLLJITLookup(j->jit, &addr, name);
    if (e) {
        say_error(err, len, "LLVM JIT", e);
        return NULL;
    }
    return (void *)(uintptr_t)addr;
}

void cg_jit_free(cg_jit *j)
{
    if (!j)
        return;
    if (j->jit) {
        LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->jit);
        if (e)
            LLVMConsumeError(e);
    }
    if (j->tsc)
        LLVMOrcDisposeThreadSafeContext(j->tsc);
    free(j);
}
