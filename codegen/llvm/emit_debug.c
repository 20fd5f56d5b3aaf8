/* Debug line information (DIBuilder): a compile unit for the model file, a subprogram for
 * the entry point and for each step's function, and each step's instructions at its model
 * line, so that objdump -l, gdb and perf report show mlp.c:18 for the code of that line.
 * Line tables only: no variables or types. A program without a model file (a test's
 * hand-made one) gets none. */
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include <llvm-c/DebugInfo.h>

#include "emit_internal.h"

void em_debug_begin(em *E, LLVMValueRef entry_fn)
{
    if (!E->p->file || !*E->p->file)
        return;
    const char *file = E->p->file;
    char dir[PATH_MAX] = "/";
    if (file[0] != '/' && !getcwd(dir, sizeof dir)) /* relative to where aotgrad ran */
        strcpy(dir, ".");
    E->di = LLVMCreateDIBuilder(E->m);
    E->difile = LLVMDIBuilderCreateFile(E->di, file, strlen(file), dir, strlen(dir));
    LLVMDIBuilderCreateCompileUnit(E->di, LLVMDWARFSourceLanguageC, E->difile, "aotgrad", 7, 1, "", 0, 0, "", 0,
                                   LLVMDWARFEmissionLineTablesOnly, 0, 0, 0, "", 0, "", 0);
    E->disig = LLVMDIBuilderCreateSubroutineType(E->di, E->difile, NULL, 0, LLVMDIFlagZero);
    LLVMAddModuleFlag(E->m, LLVMModuleFlagBehaviorWarning, "Debug Info Version", 18,
                      LLVMValueAsMetadata(LLVMConstInt(E->i32, LLVMDebugMetadataVersion(), 0)));
    LLVMAddModuleFlag(E->m, LLVMModuleFlagBehaviorWarning, "Dwarf Version", 13,
                      LLVMValueAsMetadata(LLVMConstInt(E->i32, 4, 0)));
    E->entry_scope = em_debug_function(E, entry_fn, 1);
}

LLVMMetadataRef em_debug_function(em *E, LLVMValueRef fn, int line)
{
    if (!E->di)
        return NULL;
    size_t len;
    const char *name = LLVMGetValueName2(fn, &len);
    unsigned at = line > 0 ? (unsigned)line : 0;
    LLVMMetadataRef sp =
        LLVMDIBuilderCreateFunction(E->di, E->difile, name, len, name, len, E->difile, at, E->disig,
                                    LLVMGetLinkage(fn) == LLVMInternalLinkage, 1, at, LLVMDIFlagZero, 1);
    LLVMSetSubprogram(fn, sp);
    return sp;
}

void em_debug_at(em *E, LLVMMetadataRef scope, int line)
{
    if (!E->di)
        return;
    LLVMSetCurrentDebugLocation2(
        E->b, scope ? LLVMDIBuilderCreateDebugLocation(E->c, line > 0 ? (unsigned)line : 0, 0, scope, NULL) : NULL);
}

void em_debug_end(em *E)
{
    if (!E->di)
        return;
    LLVMSetCurrentDebugLocation2(E->b, NULL);
    LLVMDIBuilderFinalize(E->di);
    LLVMDisposeDIBuilder(E->di);
    E->di = NULL;
}
