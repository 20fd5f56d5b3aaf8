/* CG_GEMM steps as CUDA C: C in tiles in shared memory, K split over several blocks where
 * the tiles are too few to fill the GPU, alpha and beta as the step's scalar expressions;
 * and the matmul epilogues, the next step's elementwise loop computed on the results in
 * registers (one kernel for the two steps). */
#include "render_internal.h"

/* ---- matmuls ---- */

/* a scalar expression of a gemm (alpha, beta): loads at their offsets, in float */
static const char *gemm_scalar(rd *R, const cg_gemm *g, int32_t e, int depth)
{
    if (e < 0 || e >= g->nexprs || depth > 16) {
        rd_fail(R, "gemm: scalar expression %d does not exist", (int)e);
        return "0";
    }
    const cg_expr *x = &g->expr[e];
    switch (x->kind) {
    case CG_E_CONST: return rd_real_lit(R, x->value, true);
    case CG_E_LOAD:
        if (x->load < 0 || x->load >= g->nloads || !rd_check_buffer(R, g->load[x->load].buffer, "gemm load", x->load))
            return "0";
        return rd_tx(R, "(float)b%d[%s]", (int)g->load[x->load].buffer, rd_dim(R, g->load[x->load].offset));
    case CG_E_OP: {
        if ((unsigned)x->op >= IR_OP_COUNT || !rd_ew_table[x->op].print) {
            rd_fail(R, "gemm: expression %d is not elementwise", (int)e);
            return "0";
        }
        const char *a = x->a >= 0 ? gemm_scalar(R, g, x->a, depth + 1) : "0";
        const char *b = x->b >= 0 ? gemm_scalar(R, g, x->b, depth + 1) : "0";
        R->single = true;
        return rd_tx(R, "(float)%s", rd_ew_table[x->op].print(R, a, b, "0"));
    }
    default: rd_fail(R, "gemm: expression %d of kind %d", (int)e, (int)x->kind); return "0";
    }
}

/* C in tiles of 16 PER x 16 PER, K by 16, PER x PER results a thread (16 x 16 threads). PER 4
 * (64x64 tiles) where the output has enough tiles to fill a GPU, else PER 2 (32x32): four
 * times the blocks for the small matrices of a batch of 256. */
enum { TK = 16, FILL_TILES = 64 };
/* Split K into up to MAX_SPLITS parts where a batch's tiles number fewer than FILL_UNITS
 * (two blocks for each of an H100 SXM's or H200's 132 multiprocessors): the MLP's matmuls at
 * batch 256 have 8 to 200 tiles, and a block walking all of K alone waits on memory. */
enum { FILL_UNITS = 264, MAX_SPLITS = 32 };

/* A matmul's blocking: PER x PER results a thread, tiles of TILE = 16 PER, L floats of each
 * operand a thread per step of K (chosen at the batch the plan was laid out for); split: K
 * may be split, in a number of parts the kernel works out for the N in use (split_count). */
typedef struct tiling {
    int PER, TILE, L;
    bool split;
} tiling;

/* K's splits at batch N, as the kernel computes them (print_tiles): enough blocks to fill
 * the GPU, at least 2 steps of K a split, at most MAX_SPLITS, none past the counters */
static int64_t split_count(const cg_gemm *g, int TILE, int64_t N)
{
    int64_t tiles = ((g->m.k + g->m.n * N + TILE - 1) / TILE) * ((g->n.k + g->n.n * N + TILE - 1) / TILE),
            ksteps = (g->k.k + g->k.n * N + TK - 1) / TK;
    int64_t S = tiles > 0 && tiles < FILL_UNITS ? (FILL_UNITS + tiles - 1) / tiles : 1;
    S = S > ksteps / 2 ? ksteps / 2 : S;
    S = S > MAX_SPLITS ? MAX_SPLITS : S;
    return S < 1 || tiles > CG_CUDA_COUNTERS ? 1 : S;
}

static tiling gemm_tiling(const rd *R, const cg_gemm *g)
{
    int64_t B = R->p->batch > 0 ? R->p->batch : 1;
    int64_t big = ((g->m.k + g->m.n * B + 63) / 64) * ((g->n.k + g->n.n * B + 63) / 64);
    const int PER = big >= FILL_TILES ? 4 : 2, TILE = 16 * PER, L = TK * TILE / CG_CUDA_BLOCK;
    /* the code for splits where some N splits: the fewest tiles are at N = 1, the most steps
     * of K at the largest N */
    bool split = split_count(g, TILE, 1) > 1 || split_count(g, TILE, B) > 1 || split_count(g, TILE, CG_MAX_N) > 1;
    return (tiling){PER, TILE, L, split};
}

/* the shared tiles, the loop over C's tiles (and K's splits), and a tile's products over its
 * part of K into the registers r */
static void print_tiles(rd *R, const cg_gemm *g, const tiling *T)
{
    const int PER = T->PER, TILE = T->TILE, L = T->L;
    /* element (i, k) of op(A) and (k, j) of op(B); lda, ldb as cblas_sgemm's */
    const char *ael = g->ta ? "A[(k) * M + (i)]" : "A[(i) * K + (k)]";
    const char *bel = g->tb ? "B[(j) * K + (k)]" : "B[(k) * NC + (j)]";
    /* Neighbouring threads load neighbouring addresses of global memory: along k where the
     * operand's rows run along k, else along the tile's other side. The shared rows are
     * TILE + 2 floats (2 mod 32 banks), so that a warp storing down two columns (16 k by 2)
     * hits 32 distinct banks. */
    const char *along_k[2] = {rd_tx(R, "q %% %d", TK), rd_tx(R, "q / %d", TK)},
               *along_m[2] = {rd_tx(R, "q / %d", TILE), rd_tx(R, "q %% %d", TILE)};
    const char *a_kk = g->ta ? along_m[0] : along_k[0], *a_mm = g->ta ? along_m[1] : along_k[1];
    const char *b_kk = g->tb ? along_k[0] : along_m[0], *b_mm = g->tb ? along_k[1] : along_m[1];
    fprintf(R->f,
            "    __shared__ float As[%d][%d], Bs[%d][%d];\n"
            "    const long long tn = (NC + %d) / %d, tiles = ((M + %d) / %d) * tn;\n"
            "    const int tx = threadIdx.x %% 16, ty = threadIdx.x / 16;\n",
            TK, TILE + 2, TK, TILE + 2, TILE - 1, TILE, TILE - 1, TILE);
    R->shared[R->step] += 2 * TK * (TILE + 2) * 4 + (T->split ? 4 : 0); /* As, Bs, last */
    if (T->split)
        fprintf(
            R->f,
            "    /* K in S splits for this N, a block each (S = 1: none): enough blocks to fill the GPU, at\n"
            "     * least two steps of K a split, at most %d, none past the counters. Each block stores its\n"
            "     * partial tile in the scratch; the last of a tile's blocks to finish (a counter) sums them\n"
            "     * in split order */\n"
            "    const long long ksteps = (K + %d) / %d;\n"
            "    long long S = tiles < %d ? (%d + tiles - 1) / tiles : 1;\n"
            "    S = S > ksteps / 2 ? ksteps / 2 : S;\n"
            "    S = S > %d ? %d : S;\n"
            "    S = S < 1 || tiles > %d ? 1 : S;\n"
            "    const long long kc = ((K + S - 1) / S + %d) / %d * %d; /* K a split, in whole steps */\n"
            "    unsigned *const count = (unsigned *)a.scratch; /* a tile's finished splits; back to 0 at the end */\n"
            "    float *const part = (float *)(a.scratch + %d);\n"
            "    __shared__ int last;\n"
            "    for (long long w = blockIdx.x; w < tiles * S; w += gridDim.x) {\n"
            "        const long long t = w / S, kb = (w %% S) * kc, ke = kb + kc < K ? kb + kc : K;\n",
            MAX_SPLITS, TK - 1, TK, FILL_UNITS, FILL_UNITS, MAX_SPLITS, MAX_SPLITS, CG_CUDA_COUNTERS, TK - 1, TK, TK,
            CG_CUDA_COUNTERS * 4);
    else
        fprintf(R->f, "    for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {\n"
                      "        const long long kb = 0, ke = K;\n");
    fprintf(R->f,
            "        const long long i0 = (t / tn) * %d, j0 = (t %% tn) * %d;\n"
            "        float r[%d][%d];\n"
            "#pragma unroll\n"
            "        for (int u = 0; u < %d; u++)\n"
            "#pragma unroll\n"
            "            for (int v = 0; v < %d; v++)\n"
            "                r[u][v] = 0;\n"
            "        float pa[%d], pb[%d]; /* the next step's tiles, loaded while this one computes */\n"
            "#pragma unroll\n"
            "        for (int l = 0; l < %d; l++) {\n"
            "            const int q = threadIdx.x + l * %d;\n"
            "            {\n"
            "                const int kk = %s, mm = %s;\n"
            "                const long long i = i0 + mm, k = kb + kk;\n"
            "                pa[l] = i < M && k < ke ? %s : 0.0f;\n"
            "            }\n"
            "            {\n"
            "                const int kk = %s, mm = %s;\n"
            "                const long long j = j0 + mm, k = kb + kk;\n"
            "                pb[l] = j < NC && k < ke ? %s : 0.0f;\n"
            "            }\n"
            "        }\n"
            "        for (long long k0 = kb; k0 < ke; k0 += %d) {\n"
            "#pragma unroll\n"
            "            for (int l = 0; l < %d; l++) {\n"
            "                const int q = threadIdx.x + l * %d;\n"
            "                As[%s][%s] = pa[l];\n"
            "                Bs[%s][%s] = pb[l];\n"
            "            }\n"
            "            __syncthreads();\n"
            "            if (k0 + %d < ke) {\n"
            "#pragma unroll\n"
            "                for (int l = 0; l < %d; l++) {\n"
            "                    const int q = threadIdx.x + l * %d;\n"
            "                    {\n"
            "                        const int kk = %s, mm = %s;\n"
            "                        const long long i = i0 + mm, k = k0 + %d + kk;\n"
            "                        pa[l] = i < M && k < ke ? %s : 0.0f;\n"
            "                    }\n"
            "                    {\n"
            "                        const int kk = %s, mm = %s;\n"
            "                        const long long j = j0 + mm, k = k0 + %d + kk;\n"
            "                        pb[l] = j < NC && k < ke ? %s : 0.0f;\n"
            "                    }\n"
            "                }\n"
            "            }\n"
            "#pragma unroll\n"
            "            for (int kk = 0; kk < %d; kk++) {\n"
            "                float x[%d], y[%d];\n"
            "#pragma unroll\n"
            "                for (int u = 0; u < %d; u++)\n"
            "                    x[u] = As[kk][ty * %d + u], y[u] = Bs[kk][tx * %d + u];\n"
            "#pragma unroll\n"
            "                for (int u = 0; u < %d; u++)\n"
            "#pragma unroll\n"
            "                    for (int v = 0; v < %d; v++)\n"
            "                        r[u][v] += x[u] * y[v];\n"
            "            }\n"
            "            __syncthreads();\n"
            "        }\n",
            TILE, TILE, PER, PER, PER, PER, L, L, L, CG_CUDA_BLOCK, a_kk, a_mm, ael, b_kk, b_mm, bel, TK, L,
            CG_CUDA_BLOCK, a_kk, a_mm, b_kk, b_mm, TK, L, CG_CUDA_BLOCK, a_kk, a_mm, TK, ael, b_kk, b_mm, TK, bel, TK,
            PER, PER, PER, PER, PER, PER, PER);
}

/* the splits of a tile summed by its last block to finish, in split order */
static void print_split_sum(rd *R, const tiling *T)
{
    const int PER = T->PER;
    /* a thread's partials are its own slots: the last block's same thread reads them */
    fprintf(R->f,
            "        if (S > 1) {\n"
            "        {\n"
            "            float *const mine = part + (w * %d + threadIdx.x) * %d;\n"
            "#pragma unroll\n"
            "            for (int u = 0; u < %d; u++)\n"
            "#pragma unroll\n"
            "                for (int v = 0; v < %d; v++)\n"
            "                    mine[u * %d + v] = r[u][v];\n"
            "        }\n"
            "        __threadfence(); /* the partial is visible before the count says so */\n"
            "        __syncthreads();\n"
            "        if (threadIdx.x == 0)\n"
            "            last = atomicAdd(&count[t], 1u) == (unsigned)(S - 1);\n"
            "        __syncthreads();\n"
            "        if (!last)\n"
            "            continue;\n"
            "        __threadfence();\n"
            "#pragma unroll\n"
            "        for (int u = 0; u < %d; u++)\n"
            "#pragma unroll\n"
            "            for (int v = 0; v < %d; v++)\n"
            "                r[u][v] = 0;\n"
            "        for (long long s = 0; s < S; s++) { /* in split order, whichever finished last */\n"
            "            const float *const split = part + ((t * S + s) * %d + threadIdx.x) * %d;\n"
            "#pragma unroll\n"
            "            for (int u = 0; u < %d; u++)\n"
            "#pragma unroll\n"
            "                for (int v = 0; v < %d; v++)\n"
            "                    r[u][v] += __ldcg(split + u * %d + v); /* from L2: other SMs wrote it */\n"
            "        }\n"
            "        if (threadIdx.x == 0)\n"
            "            count[t] = 0;\n"
            "        }\n",
            CG_CUDA_BLOCK, PER * PER, PER, PER, PER, PER, PER, CG_CUDA_BLOCK, PER * PER, PER, PER, PER);
}

/* C = alpha r (+ beta C), or the epilogue's loop on alpha r */
static void print_results(rd *R, const cg_loop *epi, const bool *is_c, bool write_c, const tiling *T)
{
    const int PER = T->PER;
    fprintf(R->f,
            "#pragma unroll\n"
            "        for (int u = 0; u < %d; u++)\n"
            "#pragma unroll\n"
            "            for (int v = 0; v < %d; v++) {\n"
            "                const long long i = i0 + ty * %d + u, j = j0 + tx * %d + v;\n",
            PER, PER, PER, PER);
    if (!epi) {
        fprintf(R->f, "                if (i < M && j < NC) /* beta 0: C is not read (cblas_sgemm's rule) */\n"
                      "                    C[i * NC + j] = beta == 0.0f ? alpha * r[u][v] : alpha * r[u][v] + beta * "
                      "C[i * NC + j];\n");
    } else { /* beta is 0 (epilogue_fits): C is not read */
        const char *idx[2] = {epi->rank == 2 ? "i" : "j", "j"}, *given[CG_MAX_LOADS] = {NULL};
        for (int k = 0; k < epi->nloads; k++)
            given[k] = is_c[k] ? "c_" : NULL;
        fprintf(R->f, "                if (i < M && j < NC) {\n"
                      "                    const float c_ = alpha * r[u][v];\n");
        rd_print_loads(R, epi, idx, "                    ", given);
        rd_print_exprs(R, epi, idx, "                    ", -1);
        rd_print_stores(R, epi, idx, "                    ");
        if (write_c)
            fprintf(R->f, "                    C[i * NC + j] = c_;\n");
        fprintf(R->f, "                }\n");
    }
    fprintf(R->f, "            }\n    }\n}\n\n");
}

/* epi, when set, is the next step: an elementwise loop over C's elements (epilogue_fits),
 * computed here from each result in registers; its loads marked in is_c read that result,
 * and C itself is stored only if write_c (no store of epi takes its place). */
void rd_render_gemm(rd *R, const cg_gemm *g, const cg_loop *epi, const bool *is_c, bool write_c, const char *name,
                    cg_cuda_launch *launch)
{
    bool used[4096] = {false};
    if (R->p->nbuffers > 4096) {
        rd_fail(R, "%d buffers", R->p->nbuffers);
        return;
    }
    if (epi && !rd_loop_valid(R, epi, used))
        return;
    const cg_access *acc[3] = {&g->a, &g->b, &g->c};
    for (int k = 0; k < 3; k++)
        if (rd_check_buffer(R, acc[k]->buffer, "gemm operand", k))
            used[acc[k]->buffer] = true;
    for (int k = 0; k < g->nloads; k++)
        if (rd_check_buffer(R, g->load[k].buffer, "gemm load", k))
            used[g->load[k].buffer] = true;
    if (R->failed)
        return;
    fprintf(R->f, "/* C = alpha op(A) op(B) + beta C, row major%s%s%s */\n", g->ta ? ", A transposed" : "",
            g->tb ? ", B transposed" : "",
            epi ? rd_tx(R, ", then the next step's loop on each element (%d %s)", epi->nstores,
                        epi->nstores == 1 ? "store" : "stores")
                : "");
    rd_kernel_head(R, name);
    fprintf(R->f, "    const long long N = a.N;\n    (void)N;\n");
    rd_declare_buffers(R, used);
    fprintf(R->f, "    const long long M = %s, NC = %s, K = %s;\n", rd_dim(R, g->m), rd_dim(R, g->n), rd_dim(R, g->k));
    fprintf(R->f, "    const float *A = b%d + %s, *B = b%d + %s;\n    float *C = b%d + %s;\n", (int)g->a.buffer,
            rd_dim(R, g->a.offset), (int)g->b.buffer, rd_dim(R, g->b.offset), (int)g->c.buffer, rd_dim(R, g->c.offset));
    fprintf(R->f, "    const float alpha = %s, beta = %s;\n", gemm_scalar(R, g, g->alpha, 0),
            gemm_scalar(R, g, g->beta, 0));
    const tiling T = gemm_tiling(R, g);
    const int TILE = T.TILE;
    print_tiles(R, g, &T);
    if (T.split)
        print_split_sum(R, &T);
    print_results(R, epi, is_c, write_c, &T);
    /* tiles = ceil(m / TILE) ceil(n / TILE), a side that grows with N bounded by
     * (side + TILE - 1) / TILE (the units must be a polynomial in N), a fixed one exact */
    double m1 = (double)g->m.n / TILE, n1 = (double)g->n.n / TILE;
    double m0 = g->m.n ? (g->m.k + TILE - 1.0) / TILE : (double)((g->m.k + TILE - 1) / TILE),
           n0 = g->n.n ? (g->n.k + TILE - 1.0) / TILE : (double)((g->n.k + TILE - 1) / TILE);
    /* with splits, a block for each of the tiles' S parts: S tiles < tiles + FILL_UNITS */
    launch->units[0] = m0 * n0 + (T.split ? FILL_UNITS : 0), launch->units[1] = m0 * n1 + m1 * n0,
    launch->units[2] = m1 * n1;
    launch->units_per_block = 1;
    /* counters, and partials for S tiles < 2 FILL_UNITS tiles (S > 1 only below FILL_UNITS tiles) */
    int64_t scratch = CG_CUDA_COUNTERS * 4 + (int64_t)2 * FILL_UNITS * TILE * TILE * 4;
    if (T.split && R->scratch_bytes < scratch)
        R->scratch_bytes = scratch;
}

/* ---- matmul epilogues ----
 * The CPU runs a matmul's epilogue (bias, activation, activation gradient) as the loop after
 * the sgemm call; here the loop is computed inside the matmul kernel from each result in
 * registers, one launch and one pass over C fewer. Only where that is the same computation:
 * the loop is the next step, over C's elements ([m, n], or [n] when m is 1) without a
 * reduction; beta is 0 (C is not read); its loads of C are C's elements at the loop's index,
 * its other loads miss C; each store is in place over C (then C itself is not stored) or
 * misses C, A, B and the scalars alpha and beta are made of (the matmul reads those while
 * other tiles already store). */

static bool same_dim(cg_dim a, cg_dim b) { return a.k == b.k && a.n == b.n; }

/* whether a reads or writes exactly element (i, j) of the gemm's C at the loop's index */
static bool at_c(const rd *R, const cg_gemm *g, const cg_loop *l, const cg_access *a)
{
    const cg_buffer *ab = &R->p->buffers[a->buffer], *cb = &R->p->buffers[g->c.buffer];
    if (rd_region_of(ab) != rd_region_of(cb) || ab->dtype != AG_F32)
        return false;
    bool same = ab->offset.k + 4 * a->offset.k == cb->offset.k + 4 * g->c.offset.k &&
                ab->offset.n + 4 * a->offset.n == cb->offset.n + 4 * g->c.offset.n;
    const cg_dim one = {1, 0};
    if (l->rank == 1)
        return same && same_dim(a->stride[0], one);
    return same && same_dim(a->stride[1], one) && (same_dim(a->stride[0], g->n) || same_dim(g->m, one));
}

bool rd_epilogue_fits(const rd *R, const cg_step *mm, const cg_step *next, bool *is_c, bool *write_c)
{
    if (mm->kind != CG_GEMM || next->kind != CG_LOOP)
        return false;
    const cg_gemm *g = &mm->gemm;
    const cg_loop *l = &next->loop;
    const cg_dim one = {1, 0};
    if (l->reduce || l->nloads > CG_MAX_LOADS || l->nstores > CG_MAX_STORES || l->nloads < 0 || l->nstores < 0)
        return false;
    if (!(l->rank == 2 && same_dim(l->extent[0], g->m) && same_dim(l->extent[1], g->n)) &&
        !(l->rank == 1 && same_dim(g->m, one) && same_dim(l->extent[0], g->n)))
        return false;
    if (g->beta < 0 || g->beta >= g->nexprs || g->expr[g->beta].kind != CG_E_CONST || g->expr[g->beta].value != 0)
        return false;
    for (int k = 0; k < l->nloads; k++)
        if (l->load[k].buffer < 0 || l->load[k].buffer >= R->p->nbuffers)
            return false;
    for (int k = 0; k < l->nstores; k++)
        if (l->store[k].at.buffer < 0 || l->store[k].at.buffer >= R->p->nbuffers)
            return false;
    span gs[3 + 4], ls[CG_MAX_LOADS + CG_MAX_STORES];
    bool gw[3 + 4], lw[CG_MAX_LOADS + CG_MAX_STORES];
    int ng = rd_step_spans(R, mm, gs, gw, 3 + 4);
    rd_step_spans(R, next, ls, lw, CG_MAX_LOADS + CG_MAX_STORES);
    const span c = gs[2];
    bool reads_c = false;
    *write_c = true;
    for (int k = 0; k < l->nloads; k++) {
        is_c[k] = at_c(R, g, l, &l->load[k]);
        reads_c |= is_c[k];
        if (!is_c[k] && rd_overlap(ls[k], c))
            return false;
    }
    for (int k = 0; k < l->nstores; k++) {
        const span w = ls[l->nloads + k];
        if (at_c(R, g, l, &l->store[k].at)) {
            *write_c = false;
            continue;
        }
        for (int x = 0; x < ng; x++)
            if (rd_overlap(w, gs[x]))
                return false;
    }
    return reads_c;
}
