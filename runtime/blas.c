/* OpenBLAS's kernels: which it runs, whether they are the CPU's best, and running the program
 * again with the best (aotgrad_runtime.h: ag_blas_kernels, ag_blas_tuned, ag_blas_pick_kernels). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "aotgrad_runtime.h"
#include "pool.h"

/* ---- OpenBLAS's kernels ----
 * OpenBLAS picks its kernels by the CPU's model number at load time, and one it does not know
 * (Debian's 0.3.21 on Sapphire Rapids) gets its oldest x86-64 kernels: measured here, sgemm at
 * a third of what its SkylakeX kernels do on the same cores, and the MLP's epoch 3.7x slower.
 * The choice can only be made before the library loads (OPENBLAS_CORETYPE), so where the
 * CPU has AVX-512 (or AVX2 and FMA) and OpenBLAS chose an older core, the binary runs itself
 * again with that variable set; one that the user set is left alone. The standalone binaries
 * do this first thing (runtime/binary.c), and a C program linking a model's object can too. */
extern char *openblas_get_corename(void) __attribute__((weak));
#if defined(__x86_64__)
static const char *best_blas_core(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX) || !(c & bit_FMA))
        return NULL;
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6 || !__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & bit_AVX2))
        return NULL;
    bool avx512 =
        (lo & 0xe6) == 0xe6 && (b & bit_AVX512F) && (b & bit_AVX512BW) && (b & bit_AVX512VL) && (b & bit_AVX512DQ);
    return avx512 ? "SkylakeX" : "Haswell";
}
#else
static const char *best_blas_core(void) { return NULL; }
#endif

/* The kernels to ask for where OpenBLAS chose older ones than this CPU runs; NULL where its
 * choice is fine or nothing can be told. */
static const char *better_core(const char *chosen)
{
    const char *best = best_blas_core();
    if (!best || !chosen)
        return NULL;
    /* newer cores than these two are fine as they are */
    static const char *const older[] = {"Prescott",  "Core2",       "Penryn",      "Dunnington",
                                        "Nehalem",   "Sandybridge", "Atom",        "Barcelona",
                                        "Bulldozer", "Piledriver",  "Steamroller", "Excavator"};
    bool old = strcmp(best, "SkylakeX") == 0 && (strcasecmp(chosen, "Haswell") == 0 || strcasecmp(chosen, "Zen") == 0);
    for (size_t k = 0; k < sizeof older / sizeof *older && !old; k++)
        old = strcasecmp(chosen, older[k]) == 0;
    return old ? best : NULL;
}

const char *ag_blas_kernels(void) { return openblas_get_corename ? openblas_get_corename() : NULL; }

bool ag_blas_tuned(char *advice, size_t len)
{
    const char *chosen = ag_blas_kernels(), *want = better_core(chosen);
    if (advice && len)
        advice[0] = 0;
    if (!want)
        return true;
    if (advice && len)
        snprintf(advice, len,
                 "OpenBLAS runs its %s kernels where this CPU runs its %s kernels: set OPENBLAS_CORETYPE=%s before "
                 "the program starts, or call ag_blas_pick_kernels(argv) first in main",
                 chosen, want, want);
    return false;
}

void ag_blas_pick_kernels(char **argv)
{
    const char *want = getenv("OPENBLAS_CORETYPE") ? NULL : better_core(ag_blas_kernels());
    if (!want || setenv("OPENBLAS_CORETYPE", want, 1) != 0)
        return;
    /* by its own path, not /proc/self/exe: the process keeps its name (ps, pgrep, top) */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    execv(n > 0 ? self : "/proc/self/exe", argv); /* returns only on failure: go on with the kernels there are */
    unsetenv("OPENBLAS_CORETYPE");
}
