/* conv2d's CUDA kernel: the convolution as an implicit GEMM. A group's output channels (M =
 * O/groups) by the batch's output pixels (P = batch * OH * OW) over K = C/groups * KH * KW
 * taps, in tiles through shared memory as render_gemm.c's matmuls; the B tile's element
 * (k, p) is read from the input at tap k of pixel p as the tile is loaded (0 in the
 * padding), so the unfolded columns never exist in memory. Each output sums its taps in
 * order, as the direct kernel it replaced did. Its gradients stay kernels of their own
 * (render_call.c). */
#include "render_internal.h"

enum { TK = 16 };

static const char *conv_arg(rd *R, const cg_call *c, int k)
{
    return rd_tx(R, "(b%d + %s)", (int)c->arg[k].buffer, rd_dim(R, c->arg[k].offset));
}

void rd_render_conv(rd *R, const cg_call *c, cg_cuda_launch *launch)
{
    const rt_window *w = &c->win;
    int64_t G = w->groups > 0 ? w->groups : 1, OG = w->o / G, L = w->oh * w->ow;
    /* 16 x 16 threads, PM x PN outputs each: a tile of 16 PM channels by 16 PN pixels; a
     * group's few channels (LeNet's 6 and 16) take tall pixel tiles */
    const int PM = OG <= 16 ? 1 : OG <= 32 ? 2 : 4, PN = PM == 1 ? 8 : PM == 2 ? 4 : 4;
    const int TM = 16 * PM, TN = 16 * PN;
    int64_t tm = (OG + TM - 1) / TM;
    /* units: the tiles, (outer * L + TN - 1) / TN over tm channel tiles and the groups, as a
     * polynomial in N that is at least that; the kernel walks its tiles by blockIdx */
    launch->units_per_block = 1;
    launch->units[0] = (double)(G * tm) * ((double)(c->rows.k * L) / TN + 1);
    launch->units[1] = (double)(G * tm) * (double)(c->rows.n * L) / TN, launch->units[2] = 0;
    R->shared[R->step] += TK * (TM + 1) * 4 + TK * (TN + 1) * 4;
    rd_window_constants(R, w);
    fprintf(R->f,
            "    const long long K = CG * KH * KW;\n"
            "    const long long P = outer * L, tm = %lldLL, tn = (P + %d) / %d, tiles = G * tm * tn;\n"
            "    const float *X = %s, *Wt = %s;\n    float *Y = %s;\n"
            "    (void)len, (void)inner;\n"
            "    __shared__ float As[%d][%d], Bs[%d][%d];\n"
            "    const int tx = threadIdx.x %% 16, ty = threadIdx.x / 16;\n"
            "    for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {\n"
            "        const long long g = t / (tm * tn), m0 = t / tn %% tm * %d, p0 = t %% tn * %d;\n"
            "        float r[%d][%d];\n"
            "#pragma unroll\n        for (int u = 0; u < %d; u++)\n"
            "#pragma unroll\n            for (int v = 0; v < %d; v++)\n                r[u][v] = 0;\n"
            "        for (long long k0 = 0; k0 < K; k0 += %d) {\n"
            "            for (int q = threadIdx.x; q < %d; q += blockDim.x) { /* weights: along k */\n"
            "                const int kk = q %% %d, mm = q / %d;\n"
            "                const long long m = m0 + mm, k = k0 + kk;\n"
            "                As[kk][mm] = m < OG && k < K ? Wt[(g * OG + m) * K + k] : 0.0f;\n"
            "            }\n"
            "            for (int q = threadIdx.x; q < %d; q += blockDim.x) { /* taps: along pixels */\n"
            "                const int pp = q %% %d, kk = q / %d;\n"
            "                const long long p = p0 + pp, k = k0 + kk;\n"
            "                float v = 0.0f;\n"
            "                if (p < P && k < K) {\n"
            "                    const long long n = p / L, y = p %% L / OW, xo = p %% OW;\n"
            "                    const long long ci = k / (KH * KW), i = k / KW %% KH, j = k %% KW;\n"
            "                    const long long h = y * SH + i * DH - PH, x_ = xo * SW + j * DW - PW;\n"
            "                    if (h >= 0 && h < H && x_ >= 0 && x_ < W)\n"
            "                        v = X[((n * C + g * CG + ci) * H + h) * W + x_];\n"
            "                }\n"
            "                Bs[kk][pp] = v;\n"
            "            }\n"
            "            __syncthreads();\n"
            "#pragma unroll\n"
            "            for (int kk = 0; kk < %d; kk++) {\n"
            "                float a_[%d], b_[%d];\n"
            "#pragma unroll\n                for (int u = 0; u < %d; u++) a_[u] = As[kk][ty + 16 * u];\n"
            "#pragma unroll\n                for (int v = 0; v < %d; v++) b_[v] = Bs[kk][tx + 16 * v];\n"
            "#pragma unroll\n                for (int u = 0; u < %d; u++)\n"
            "#pragma unroll\n                    for (int v = 0; v < %d; v++) r[u][v] += a_[u] * b_[v];\n"
            "            }\n"
            "            __syncthreads();\n"
            "        }\n"
            "#pragma unroll\n        for (int u = 0; u < %d; u++)\n"
            "#pragma unroll\n            for (int v = 0; v < %d; v++) {\n"
            "                const long long m = m0 + ty + 16 * u, p = p0 + tx + 16 * v;\n"
            "                if (m < OG && p < P)\n"
            "                    Y[(p / L * O + g * OG + m) * L + p %% L] = r[u][v];\n"
            "            }\n"
            "    }\n}\n\n",
            (long long)tm, TN - 1, TN, conv_arg(R, c, 0), conv_arg(R, c, 1), conv_arg(R, c, 2), TK, TM + 1, TK, TN + 1,
            TM, TN, PM, PN, PM, PN, TK, TK * TM, TK, TK, TK * TN, TN, TN, TK, PM, PN, PM, PN, PM, PN, PM, PN);
}
