/* A C caller of tests/data/models/chain.c's object and header, built with the link line
 * `pkg-config --cflags --libs --static aotgrad` gives (test_install.sh): the parameters from
 * chain_init for the seed argv[1], the forward pass on the rows of x below, and each row's
 * outputs as the binary's `chain predict --seed S x.csv` prints them: h's values | p's. On
 * stderr, OpenBLAS's kernels and ag_blas_tuned's verdict. */
#include <stdio.h>
#include <stdlib.h>

#include <aotgrad/aotgrad_runtime.h>

#include "chain.h"

static const float x[3][4] = {{0.5f, -1.25f, 2, 0}, {1, 1, 1, 1}, {-0.75f, 0.25f, -2, 3.5f}};

int main(int argc, char **argv)
{
    ag_blas_pick_kernels(argv);
    char advice[512];
    bool tuned = ag_blas_tuned(advice, sizeof advice);
    fprintf(stderr, "kernels %s, %s\n", ag_blas_kernels() ? ag_blas_kernels() : "none", tuned ? "tuned" : advice);
    if (argc != 2)
        return 2;
    const int64_t n = 3;
    char *params = aligned_alloc(64, (CHAIN_PARAM_BYTES + 63) / 64 * 64);
    char *arena = aligned_alloc(64, (size_t)chain_arena_bytes(n));
    if (!params || !arena)
        return 1;
    chain_init(params, (uint32_t)strtoul(argv[1], NULL, 10));
    void *inputs[] = {(void *)x};
    ag_args a = {.arena = arena, .params = params, .inputs = inputs, .batch = n, .seed = 1};
    chain_forward(&a);
    const float *h = (const float *)(arena + CHAIN_FORWARD_H_OFFSET(n)),
                *p = (const float *)(arena + CHAIN_FORWARD_P_OFFSET(n));
    for (int64_t i = 0; i < n; i++)
        printf("%.6g %.6g %.6g | %.6g %.6g %.6g\n", h[3 * i], h[3 * i + 1], h[3 * i + 2], p[3 * i], p[3 * i + 1],
               p[3 * i + 2]);
    free(arena), free(params);
    return 0;
}
