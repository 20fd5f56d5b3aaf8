/* NVRTC, the CUDA runtime compiler, behind a small C API. The library is loaded with dlopen
 * on first use (once per process, thread-safe), so aotgrad builds and runs where CUDA is
 * absent: cg_nvrtc_available says whether it could be loaded and, if not, why. No GPU is
 * needed: NVRTC makes PTX and cubin on any machine.
 *
 * Errors: functions that can fail take (err, len), write a message there (truncated to len)
 * and return false; nothing aborts. The handle stays open for the life of the process. */
#ifndef AG_CODEGEN_CUDA_NVRTC_H
#define AG_CODEGEN_CUDA_NVRTC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* NVRTC, loaded on first use: $AOTGRAD_NVRTC if set (that path only), else libnvrtc.so,
 * libnvrtc.so.13, libnvrtc.so.12 (the dynamic loader's search), then the same names under
 * $CUDA_HOME/lib64, $CUDA_PATH/lib64 and /usr/local/cuda/lib64. The first that loads and
 * has every function used wins. */
typedef struct cg_nvrtc_out {
    char *ptx;
    size_t ptx_len; /* with want_ptx: NUL-terminated text, ptx_len = strlen */
    char *cubin;
    size_t cubin_len; /* with want_cubin: the ELF image, cubin_len bytes */
    char *log;        /* the compiler's log (ptxas' report included), "" when empty; always set on
                * return true, and on a compile error (the whole log) */
} cg_nvrtc_out;

/* false with a one-line reason (which library paths were tried) when NVRTC cannot be loaded */
bool cg_nvrtc_available(char *why, size_t len);
/* NVRTC's version, 13 and 0 for "13.0"; false when it cannot be loaded */
bool cg_nvrtc_version(int *major, int *minor);

/* Compiles CUDA C `source` (named `name` in messages) for `arch`: "sm_90" makes the cubin for
 * sm_90 and PTX for compute_90, the virtual arch of the same number (".target sm_90" in the
 * PTX), which newer GPUs JIT; "compute_90" makes PTX only. Suffixed archs (sm_90a) map the
 * same way (compute_90a). With want_cubin one compilation gives both (its PTX is the same
 * text a compute_XX compilation gives); with want_ptx alone ptxas does not run.
 *
 * Options: -arch, -std=c++17, -default-device, no --use_fast_math (IEEE division, square
 * root and denormals), --ptxas-options=--verbose when want_cubin (so the log carries ptxas'
 * "bytes spill stores" lines: see cg_ptxas_parse), then extra_opts (NULL-terminated, may be
 * NULL), which come last and so can override the rest.
 *
 * On a compile error: false, err = "NAME: " + the first error's lines of NVRTC's log
 * ("NAME(line): error: ..." and the source excerpt under it), out->log = the whole log.
 * Any other failure (NVRTC not loadable, a bad arch, an option NVRTC rejects) gives false
 * with the reason. out is overwritten (its old contents are not freed); call
 * cg_nvrtc_out_free afterwards whether or not the call succeeded. */
bool cg_nvrtc_compile(const char *source, const char *name, const char *arch, bool want_ptx, bool want_cubin,
                      const char *const *extra_opts, cg_nvrtc_out *out, char *err, size_t len);
/* Frees what o holds and zeroes it; safe on a zeroed or already-freed o. */
void cg_nvrtc_out_free(cg_nvrtc_out *o);

/* From ptxas' verbose report in a log (CUDA 13 form, earlier ones read the same):
 *     ptxas info    : Compiling entry function 'saxpy' for 'sm_90'
 *     ptxas info    : Function properties for saxpy
 *     ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
 *     ptxas info    : Used 10 registers, used 0 barriers
 * functions: how many "Function properties for" (entries and non-inlined device functions);
 * spill_stores / spill_loads: the largest "N bytes spill stores" / "N bytes spill loads" of
 * any function; max_registers: the largest "Used N registers". When the log has no ptxas line
 * at all (NULL, "", a PTX-only compilation): functions 0 and the other three -1. */
typedef struct cg_ptxas_report {
    int functions;
    int64_t spill_stores, spill_loads;
    int64_t max_registers;
} cg_ptxas_report;
cg_ptxas_report cg_ptxas_parse(const char *log);

#endif
