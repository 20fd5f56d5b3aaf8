/* The CPU harness for generated CUDA C (tests/cuda/host_shim.h, tests/common/cuda_host.c),
 * on hand-written kernels in the backend's style: grid-stride loops, block reductions
 * through __shared__ memory and __syncthreads, the intrinsics the renderer uses. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_host.h"

/* the top of every generated source */
#define ARGS                              \
    "typedef struct ag_dev_args {\n"      \
    "    char *arena, *params;\n"         \
    "    char *inputs[8], *outputs[8];\n" \
    "    long long N;\n"                  \
    "    unsigned int seed;\n"            \
    "    unsigned long long step;\n"      \
    "    char *scratch;\n"                \
    "} ag_dev_args;\n"

/* compound literals: by value, or & for an array of one (not blocks, as clang-format reads them) */
/* clang-format off */
#define NONE (cuda_host_region){NULL, 0}
#define REGION(p, n) (cuda_host_region){(p), (n) * sizeof *(p)}
/* clang-format on */

static cg_cuda_launch launch(const char *name, double u0, double u1, double per_block)
{
    cg_cuda_launch l = {.units = {u0, u1, 0}, .units_per_block = per_block};
    snprintf(l.name, sizeof l.name, "%s", name);
    return l;
}

/* grid-stride elementwise: y = 2 max(x, 0) + 1, and the grid it ran with */
static const char *const elementwise_source =
    ARGS "extern \"C\" __global__ void __launch_bounds__(256) ew_k0(ag_dev_args a) {\n"
         "    const float *x = (const float *)(a.inputs[0] + 0);\n"
         "    float *y = (float *)(a.outputs[0] + 0);\n"
         "    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < a.N;\n"
         "         i += (long long)blockDim.x * gridDim.x)\n"
         "        y[i] = fmaxf(x[i], 0.0f) * 2.0f + 1.0f;\n"
         "    if (blockIdx.x == 0 && threadIdx.x == 0)\n"
         "        ((unsigned *)a.outputs[1])[0] = gridDim.x * 1000u + blockDim.x;\n"
         "}\n";

Test(cuda_host, elementwise_any_grid)
{
    enum { n = 1000 };
    float x[n], y[n];
    for (int i = 0; i < n; i++)
        x[i] = (float)(i % 19) - 9.0f;
    cg_cuda_launch l = launch("ew_k0", 0, 1, 1); /* 1000 blocks at N = 1000: max_blocks decides */
    cg_cuda_plan plan = {.nsteps = 1, .step = &l};
    unsigned grids[] = {1, 3, 64};
    for (int g = 0; g < 3; g++) {
        memset(y, 0, sizeof y);
        unsigned shape = 0;
        cuda_host_region outs[] = {REGION(y, n), {&shape, sizeof shape}};
        char err[4096];
        bool ok = cuda_host_run(elementwise_source, &plan, n, 0, 0, NONE, NONE, &REGION(x, n), 1, outs, 2, grids[g],
                                err, sizeof err);
        cr_assert(ok, "grid %u: %s", grids[g], err);
        cr_assert_eq(shape, grids[g] * 1000 + CG_CUDA_BLOCK, "grid %u: ran as %u", grids[g], shape);
        for (int i = 0; i < n; i++)
            cr_assert_eq(y[i], fmaxf(x[i], 0) * 2 + 1, "grid %u: y[%d] = %g", grids[g], i, y[i]);
    }
}

/* one row per block (grid stride over rows), a tree over __shared__ memory */
static const char *const reduce_source = ARGS "#define COLS 777\n"
                                              "extern \"C\" __global__ void rowsum_k0(ag_dev_args a) {\n"
                                              "    __shared__ float part[256];\n"
                                              "    const float *x = (const float *)a.inputs[0];\n"
                                              "    float *y = (float *)a.outputs[0];\n"
                                              "    for (long long row = blockIdx.x; row < a.N; row += gridDim.x) {\n"
                                              "        float s = 0.0f;\n"
                                              "        for (long long j = threadIdx.x; j < COLS; j += blockDim.x)\n"
                                              "            s += x[row * COLS + j];\n"
                                              "        part[threadIdx.x] = s;\n"
                                              "        __syncthreads();\n"
                                              "        #pragma unroll\n"
                                              "        for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {\n"
                                              "            if (threadIdx.x < k)\n"
                                              "                part[threadIdx.x] += part[threadIdx.x + k];\n"
                                              "            __syncthreads();\n"
                                              "        }\n"
                                              "        if (threadIdx.x == 0)\n"
                                              "            y[row] = part[0];\n"
                                              "        __syncthreads(); /* part is written again by the next row */\n"
                                              "    }\n"
                                              "}\n";

Test(cuda_host, block_reduction)
{
    enum { rows = 5, cols = 777 };
    static float x[rows * cols];
    float want[rows];
    for (int r = 0; r < rows; r++) {
        want[r] = 0;
        for (int c = 0; c < cols; c++) {
            x[r * cols + c] = (float)((r * 31 + c * 7) % 13) - 6.0f + 0.25f * r; /* exact sums */
            want[r] += x[r * cols + c];
        }
    }
    cg_cuda_launch l = launch("rowsum_k0", 0, 2, 1); /* 10 blocks for 5 rows: 5 of them idle */
    cg_cuda_plan plan = {.nsteps = 1, .step = &l};
    unsigned caps[] = {1, 3, 0};
    for (int g = 0; g < 3; g++) {
        float y[rows] = {0};
        char err[4096];
        bool ok = cuda_host_run(reduce_source, &plan, rows, 0, 0, NONE, NONE, &REGION(x, rows * cols), 1,
                                &REGION(y, rows), 1, caps[g], err, sizeof err);
        cr_assert(ok, "max_blocks %u: %s", caps[g], err);
        for (int r = 0; r < rows; r++)
            cr_assert_eq(y[r], want[r], "max_blocks %u: row %d: %g, not %g", caps[g], r, y[r], want[r]);
    }
}

static const char *const divergent_source = ARGS "extern \"C\" __global__ void div_k2(ag_dev_args a) {\n"
                                                 "    if (threadIdx.x == 0)\n"
                                                 "        return;\n"
                                                 "    __syncthreads();\n"
                                                 "    a.outputs[0][threadIdx.x] = 1;\n"
                                                 "}\n";

Test(cuda_host, barrier_divergence)
{
    char out[256] = {0};
    cg_cuda_launch l = launch("div_k2", 1, 0, 1);
    cg_cuda_plan plan = {.nsteps = 1, .step = &l};
    char err[4096];
    bool ok =
        cuda_host_run(divergent_source, &plan, 1, 0, 0, NONE, NONE, NULL, 0, &REGION(out, 256), 1, 0, err, sizeof err);
    cr_assert_not(ok);
    cr_assert(strstr(err, "kernel div_k2: block 0: thread 0 returned while others wait at __syncthreads()"), "%s", err);
    cr_assert(strstr(err, "exited with 2"), "%s", err);
}

Test(cuda_host, compile_error)
{
    cg_cuda_launch l = launch("bad_k0", 1, 0, 1);
    cg_cuda_plan plan = {.nsteps = 1, .step = &l};
    char err[4096];
    bool ok = cuda_host_run(ARGS "extern \"C\" __global__ void bad_k0(ag_dev_args a) { int x = ; }\n", &plan, 1, 0, 0,
                            NONE, NONE, NULL, 0, NULL, 0, 0, err, sizeof err);
    cr_assert_not(ok);
    cr_assert(strstr(err, "g++ failed"), "%s", err);
    cr_assert(strstr(err, "program.cu"), "%s", err);
    cr_assert(strstr(err, "error:"), "%s", err);
}

/* two steps in order: the first fills the arena from the parameters, the second reads it */
static const char *const arena_source =
    ARGS "__device__ __forceinline__ float scaled(const float *p, long long i) { return p[i % 4] * (float)i; }\n"
         "extern \"C\" __global__ void fill_k0(ag_dev_args a) {\n"
         "    const float *p = (const float *)(a.params + 16);\n"
         "    float *ar = (float *)(a.arena + 8 * a.N);\n"
         "    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < 3 * a.N;\n"
         "         i += (long long)blockDim.x * gridDim.x)\n"
         "        ar[i] = scaled(p, i) + (float)a.seed + (float)a.step;\n"
         "}\n"
         "extern \"C\" __global__ void copy_k1(ag_dev_args a) {\n"
         "    const float *ar = (const float *)(a.arena + 8 * a.N);\n"
         "    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < a.N;\n"
         "         i += (long long)blockDim.x * gridDim.x)\n"
         "        ((float *)a.outputs[0])[i] = ar[3 * i + 2] - ar[3 * i];\n"
         "}\n";

Test(cuda_host, arena_and_params)
{
    enum { N = 300 };
    static float arena[2 * N + 3 * N], out[N];
    float params[8] = {-1, -1, -1, -1, 0.5f, 2, -3, 4};
    for (int i = 0; i < 2 * N; i++)
        arena[i] = -7;
    cg_cuda_launch steps[] = {launch("fill_k0", 0, 3, 256), launch("copy_k1", 0, 1, 256)};
    cg_cuda_plan plan = {.nsteps = 2, .step = steps};
    char err[4096];
    bool ok = cuda_host_run(arena_source, &plan, N, 5, 1000, REGION(arena, 5 * N), REGION(params, 8), NULL, 0,
                            &REGION(out, N), 1, 0, err, sizeof err);
    cr_assert(ok, "%s", err);
    for (int i = 0; i < 2 * N; i++)
        cr_assert_eq(arena[i], -7, "arena[%d] = %g", i, arena[i]);
    for (int i = 0; i < 3 * N; i++)
        cr_assert_eq(arena[2 * N + i], params[4 + i % 4] * (float)i + 1005.0f, "arena[%d] = %g", 2 * N + i,
                     arena[2 * N + i]);
    for (int i = 0; i < N; i++)
        cr_assert_eq(out[i], arena[2 * N + 3 * i + 2] - arena[2 * N + 3 * i], "out[%d] = %g", i, out[i]);
    cr_assert_eq(params[0], -1);
    cr_assert_eq(params[7], 4);
}

Test(cuda_host, empty_regions_and_plans)
{
    static const char *const source = ARGS "extern \"C\" __global__ void nop_k0(ag_dev_args a) {\n"
                                           "    if (a.arena || a.params || a.outputs[0]) __trap();\n"
                                           "}\n";
    cg_cuda_launch l = launch("nop_k0", 0, 1, 256);
    cg_cuda_plan plan = {.nsteps = 1, .step = &l}, none = {.nsteps = 0};
    char err[4096];
    cr_assert(cuda_host_run(source, &plan, 0, 0, 0, NONE, NONE, NULL, 0, &NONE, 1, 0, err, sizeof err), "%s", err);
    cr_assert(cuda_host_run(source, &none, 0, 0, 0, NONE, NONE, NULL, 0, NULL, 0, 0, err, sizeof err), "%s", err);
    cr_assert_eq(cuda_host_blocks(&l, 0), 1);
    cr_assert_eq(cuda_host_blocks(&l, 256), 1);
    cr_assert_eq(cuda_host_blocks(&l, 257), 2);
}

/* warp operations and atomics: a warp sum by xor shuffles, a block sum of the warp sums
 * by atomicAdd into shared memory, a ballot; blocks of 256 threads = 8 warps */
static const char *const warp_source =
    ARGS "extern \"C\" __global__ void warp_k0(ag_dev_args a) {\n"
         "    __shared__ float total;\n"
         "    const float *x = (const float *)a.inputs[0];\n"
         "    float *y = (float *)a.outputs[0];\n"
         "    unsigned *vote = (unsigned *)a.outputs[1];\n"
         "    for (long long b = blockIdx.x; b < a.N; b += gridDim.x) {\n"
         "        if (threadIdx.x == 0) total = 0.0f;\n"
         "        __syncthreads();\n"
         "        float v = x[b * blockDim.x + threadIdx.x];\n"
         "        #pragma unroll\n"
         "        for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);\n"
         "        float d = x[b * blockDim.x + threadIdx.x];\n"
         "        for (int m = 16; m > 0; m >>= 1) d += __shfl_down_sync(0xffffffffu, d, m);\n"
         "        unsigned ballot = __ballot_sync(0xffffffffu, x[b * blockDim.x + threadIdx.x] > 0.0f);\n"
         "        if (threadIdx.x % 32 == 0) {\n"
         "            atomicAdd(&total, v);\n"
         "            y[b * 16 + threadIdx.x / 32 * 2 + 1] = d;\n"
         "            vote[b * 8 + threadIdx.x / 32] = ballot;\n"
         "        }\n"
         "        if (v != __shfl_sync(0xffffffffu, v, 0)) __trap(); /* every lane has the warp's sum */\n"
         "        __syncthreads();\n"
         "        if (threadIdx.x == 0) y[b * 16] = total;\n"
         "        __syncthreads();\n"
         "    }\n"
         "}\n";

Test(cuda_host, warp_operations)
{
    enum { blocks = 3, n = blocks * 256 };
    float x[n], y[blocks * 16] = {0};
    unsigned vote[blocks * 8] = {0};
    for (int i = 0; i < n; i++)
        x[i] = (float)((i * 5) % 11) - 5.0f;
    cg_cuda_launch l = launch("warp_k0", 0, 1, 1);
    cg_cuda_plan plan = {.nsteps = 1, .step = &l};
    cuda_host_region outs[] = {REGION(y, blocks * 16), REGION(vote, blocks * 8)};
    char err[4096];
    bool ok =
        cuda_host_run(warp_source, &plan, blocks, 0, 0, NONE, NONE, &REGION(x, n), 1, outs, 2, 2, err, sizeof err);
    cr_assert(ok, "%s", err);
    for (int b = 0; b < blocks; b++) {
        float block = 0;
        for (int w = 0; w < 8; w++) {
            float warp = 0;
            unsigned ballot = 0;
            for (int l = 0; l < 32; l++) {
                warp += x[b * 256 + w * 32 + l];
                ballot |= (unsigned)(x[b * 256 + w * 32 + l] > 0) << l;
            }
            block += warp;
            cr_assert_eq(y[b * 16 + w * 2 + 1], warp, "block %d warp %d: %g, not %g", b, w, y[b * 16 + w * 2 + 1],
                         warp);
            cr_assert_eq(vote[b * 8 + w], ballot, "block %d warp %d: ballot %x, not %x", b, w, vote[b * 8 + w], ballot);
        }
        cr_assert_eq(y[b * 16], block, "block %d: %g, not %g", b, y[b * 16], block);
    }
}

/* the math and intrinsics the renderer uses, bit for bit against the host's libm */
static const char *const intrinsics_source =
    ARGS "extern \"C\" __global__ void math_k0(ag_dev_args a) {\n"
         "    if (blockIdx.x != 0 || threadIdx.x != 0) return;\n"
         "    const float *x = (const float *)a.inputs[0];\n"
         "    float *f = (float *)a.outputs[0];\n"
         "    unsigned *u = (unsigned *)a.outputs[1];\n"
         "    double *d = (double *)a.outputs[2];\n"
         "    f[0] = expf(x[0]); f[1] = logf(x[1]); f[2] = tanhf(x[0]); f[3] = sqrtf(x[1]);\n"
         "    f[4] = powf(x[1], x[0]); f[5] = fabsf(-x[0]); f[6] = fmaxf(x[0], x[1]); f[7] = floorf(-x[0]);\n"
         "    f[8] = rintf(2.5f); f[9] = rintf(x[0]); f[10] = exp(x[0]); f[11] = log(x[1]);\n"
         "    f[12] = tanh(x[0]); f[13] = sqrt(x[1]); f[14] = pow(x[1], 2.0f); f[15] = fabs(-x[1]);\n"
         "    f[16] = __uint_as_float(0x40490fdbu); f[17] = max(x[0], 0.0f); f[18] = min(x[0], 0.0f);\n"
         "    f[19] = fminf(x[0], x[1]);\n"
         "    u[0] = __umulhi(0xD2511F53u, 0x9E3779B9u + a.seed); u[1] = __float_as_uint(x[0]);\n"
         "    u[2] = (unsigned)min(3, -2); u[3] = max(2u, 5u); u[4] = (unsigned)(min(-1LL, 7LL) + 10);\n"
         "    u[5] = (unsigned)(long long)x[1]; u[6] = (unsigned)((unsigned long long)a.step >> 32);\n"
         "    u[7] = (unsigned)__float2int_rn(x[0]);\n"
         "    d[0] = exp((double)x[0]); d[1] = log((double)x[1]); d[2] = tanh((double)x[0]);\n"
         "    d[3] = sqrt((double)x[1]); d[4] = pow((double)x[1], 0.5);\n"
         "}\n";

Test(cuda_host, intrinsics)
{
    float x[2] = {1.75f, 6.5f}, f[20];
    unsigned u[8];
    double d[5];
    cg_cuda_launch l = launch("math_k0", 1, 0, 1);
    cg_cuda_plan plan = {.nsteps = 1, .step = &l};
    cuda_host_region outs[] = {REGION(f, 20), REGION(u, 8), REGION(d, 5)};
    char err[4096];
    bool ok = cuda_host_run(intrinsics_source, &plan, 1, 7, 0x500000000ull, NONE, NONE, &REGION(x, 2), 1, outs, 3, 0,
                            err, sizeof err);
    cr_assert(ok, "%s", err);
    float wf[20] = {
        expf(x[0]), logf(x[1]), tanhf(x[0]), sqrtf(x[1]), powf(x[1], x[0]), x[0], x[1],        -2.0f, 2.0f, 2.0f,
        expf(x[0]), logf(x[1]), tanhf(x[0]), sqrtf(x[1]), powf(x[1], 2),    x[1], 3.14159274f, x[0],  0.0f, x[0]};
    for (int i = 0; i < 20; i++)
        cr_assert_eq(f[i], wf[i], "f[%d] = %.9g, not %.9g", i, f[i], wf[i]);
    unsigned hi = (unsigned)(((unsigned long long)0xD2511F53u * (0x9E3779B9u + 7u)) >> 32), bits;
    memcpy(&bits, &x[0], sizeof bits);
    unsigned wu[8] = {hi, bits, (unsigned)-2, 5, 9, 6, 5, 2};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(u[i], wu[i], "u[%d] = %#x, not %#x", i, u[i], wu[i]);
    double wd[5] = {exp(x[0]), log(x[1]), tanh(x[0]), sqrt(x[1]), pow(x[1], 0.5)};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(d[i], wd[i], "d[%d] = %.17g, not %.17g", i, d[i], wd[i]);
}

/* Under the sanitizer build, kernel `name` of source (one block, outputs[0] 4 floats) fails
 * with the sanitizer's report naming `what`. */
static void expect_sanitizer(const char *source, const char *name, const char *what)
{
    const char *flags = getenv("AOTGRAD_LINK_FLAGS");
    if (!flags || !strstr(flags, "address"))
        cr_skip_test("not a sanitizer build");
    float y[4];
    cg_cuda_launch l = launch(name, 1, 0, 1);
    cg_cuda_plan plan = {.nsteps = 1, .step = &l};
    char err[4096];
    bool ok = cuda_host_run(source, &plan, 4, 0, 0, NONE, NONE, NULL, 0, &REGION(y, 4), 1, 0, err, sizeof err);
    cr_assert_not(ok);
    cr_assert(strstr(err, what), "%s", err);
}

/* The kernels are instrumented too: a write past an output is caught (each region is an
 * allocation of its own size)... */
Test(cuda_host, sanitizers_see_kernels)
{
    expect_sanitizer(ARGS "extern \"C\" __global__ void oob_k0(ag_dev_args a) {\n"
                          "    float *y = (float *)a.outputs[0];\n"
                          "    if (threadIdx.x == 0) y[a.N] = 1.0f;\n"
                          "}\n",
                     "oob_k0", "heap-buffer-overflow");
}

/* ... and so is a fiber's own stack after it yielded: a local array's redzones outlive the
 * switches at barriers (host_run.cpp switches without unpoisoning the frames it leaves). */
Test(cuda_host, sanitizers_see_stacks_across_barriers)
{
    expect_sanitizer(ARGS "extern \"C\" __global__ void stack_k0(ag_dev_args a) {\n"
                          "    float t[4], *volatile p = t; /* UBSan knows t's size, not p's */\n"
                          "    for (int i = 0; i < 4; i++) t[i] = threadIdx.x;\n"
                          "    __syncthreads();\n"
                          "    __syncthreads();\n"
                          "    if (threadIdx.x == 1) p[a.N] = 1.0f;\n"
                          "    if (threadIdx.x < 4) ((float *)a.outputs[0])[threadIdx.x] = t[0];\n"
                          "}\n",
                     "stack_k0", "stack-buffer-overflow");
}
