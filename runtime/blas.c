/* OpenBLAS's kernels (pool.h: rt_blas_pick_kernels). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "pool.h"

/* ---- OpenBLAS's kernels ----
 * OpenBLAS picks its kernels by the CPU's model number at load time, and one it does not know
 * (Debian's 0.3.21 on Sapphire Rapids) gets its oldest x86-64 kernels: measured here, sgemm at
 * a third of what its SkylakeX kernels do on the same cores, and the MLP's epoch 3.7x slower.
 * The choice can only be made before the library loads (OPENBLAS_CORETYPE), so where the
 * CPU has AVX-512 (or AVX2 and FMA) and OpenBLAS chose an older core, the binary runs itself
 * again with that variable set; one that the user set is left alone. */
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

void rt_blas_pick_kernels(char **argv)
{
    const char *best = best_blas_core(), *chosen = openblas_get_corename ? openblas_get_corename() : NULL;
    if (!best || getenv("OPENBLAS_CORETYPE") || !chosen)
        return;
    /* newer cores than these two are fine as they are */
    static const char *const older[] = {"Prescott",  "Core2",       "Penryn",      "Dunnington",
                                        "Nehalem",   "Sandybridge", "Atom",        "Barcelona",
                                        "Bulldozer", "Piledriver",  "Steamroller", "Excavator"};
    bool old = strcmp(best, "SkylakeX") == 0 && (strcasecmp(chosen, "Haswell") == 0 || strcasecmp(chosen, "Zen") == 0);
    for (size_t k = 0; k < sizeof older / sizeof *older && !old; k++)
        old = strcasecmp(chosen, older[k]) == 0;
    if (!old || setenv("OPENBLAS_CORETYPE", best, 1) != 0)
        return;
    execv("/proc/self/exe", argv); /* returns only on failure: go on with the kernels there are */
    unsetenv("OPENBLAS_CORETYPE");
}
