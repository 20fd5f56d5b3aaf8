/* A convolution's products, sample by sample (window.h). Stride 1 with small planes: the
 * direct path below, no columns (rt_conv2d_direct). Otherwise each sample's columns are made in the chunk's own
 * part of the workspace and multiplied while they are in the cache. Against one sgemm over
 * the whole batch's columns (15 MB for LeNet's second convolution at batch 256) this
 * measured 3-10x faster for LeNet's shapes on 2 cores: the columns never reach memory, and
 * the small products stay in OpenBLAS's single-threaded path, so the chunks may run on the
 * pool's threads at once. Products of 2-4 samples' columns (400 wide for conv2) were
 * measured too: LeNet's step took 20.7-21.7 ms with them on the pool, 29.6 with OpenBLAS
 * threading each, against 17.5-19.6 ms one sample a product. */
#include <cblas.h>
#include <stdbool.h>
#include <string.h>

#include "window.h"

/* OpenBLAS 0.3's threshold under which it computes a product on the calling thread (65536 *
 * GEMM_MULTITHREAD_THRESHOLD 4): a larger one threads itself, so its chunks run in turn. */
#define SINGLE_THREADED_MNK 262144

typedef struct conv_job {
    const rt_window *g;
    const float *a, *b; /* x and w; dy and w; x and dy */
    float *out, *ws;
    float *db; /* dw's companion: the bias gradient, or NULL */
    int64_t batch, nchunks;
    int op; /* 0: y, 1: dx, 2: dw */
} conv_job;

static int64_t columns(const rt_window *g) { return g->c * g->kh * g->kw * g->oh * g->ow; }

/* Whether a sample's products stay on OpenBLAS's single thread: then the chunks run on the
 * pool, each with columns of its own; else in turn, sharing one. */
static bool on_the_pool(const rt_window *g)
{
    int64_t G = g->groups > 0 ? g->groups : 1;
    return g->o / G * (g->c / G * g->kh * g->kw) * g->oh * g->ow <= SINGLE_THREADED_MNK;
}

/* The sum of a plane in a fixed order that vectorizes: 16 running sums over the elements
 * by their index mod 16, then those in a tree (one running sum was a chain of dependent adds,
 * 1 ms of LeNet's step for the first convolution's bias gradient) */
static float plane_sum(const float *d, int64_t n)
{
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++)
            acc[k] += d[i + k];
    for (int k = 0; i < n; i++, k++)
        acc[k] += d[i];
    for (int w = 8; w >= 1; w /= 2)
        for (int k = 0; k < w; k++)
            acc[k] += acc[k + w];
    return acc[0];
}

/* ---- the direct path: stride 1, small planes ----
 * A stride-1 correlation needs no columns: each input plane is copied once into a padded
 * plane of wp columns, and output row y's pixel x is then the sum over taps (c, i, j) of
 * w * pad[c][(y + i*dh)*wp + x + j*dw]. Read over the whole padded width, each tap is one
 * contiguous run of oh*wp values: the output planes are computed that wide (the wp - ow
 * columns past each row are discarded) in strips of STRIP values, OB output channels at a
 * time, their OB x STRIP sums held in registers across all taps. The input gradient is the
 * same correlation of dy padded by the kernel's reach less the padding, with the weights
 * transposed and flipped; the weight gradient is a dot product per (output channel, tap) of
 * the wide dy (zeros past each row) with the padded input. No columns are written, and no
 * product is too small to pay for OpenBLAS's packing (LeNet's first: 6 x 784 x 25).
 * bench_conv_paths times both paths call by call on ten shapes (bench/README.md): y and dx
 * 1.4-3.4x faster by this path wherever it applies, up to the 128-channel 7x7 planes and
 * 64-channel 14x14 ones measured; dw 1.1-2.4x up to 400 taps (channels x kernel of a group),
 * even at 576 and 0.55x at 64 channels of 8x8 (its dots are then short and many), so past
 * DIRECT_TAPS the weight gradient keeps the columns. Planes past AG_CONV_DIRECT_FLOATS (x's
 * or dy's, padded: 256 KiB, half this machine's L2), unmeasured, keep them too, as do strides
 * and padding past the taps' reach. bench/conv_columns.c builds this file again with it 0. */
enum { OB = 4, STRIP = 16, DIRECT_TAPS = 400 };
#ifndef AG_CONV_DIRECT_FLOATS
#define AG_CONV_DIRECT_FLOATS 65536
#endif

typedef float v8 __attribute__((vector_size(32)));
/* v8 at any float's address (GCC's vector types alias their elements) */
typedef float v8u __attribute__((vector_size(32), aligned(4)));
#define LOAD8(p) (*(const v8u *)(p))
#define STORE8(p, v) (*(v8u *)(p) = (v))
/* On x86-64 the kernels are compiled twice, for AVX with FMA (chosen at load time where the
 * CPU has them) and for the baseline SSE2. ASan does not check their loads: every one lies in
 * the one workspace block, where a misread is no error ASan sees (test_window's definitions
 * catch it), and checking each doubled the ASan suite's LeNet tests. */
#if defined(__x86_64__)
#define FAST_CLONES __attribute__((target_clones("fma", "default"), no_sanitize_address))
#else
#define FAST_CLONES __attribute__((no_sanitize_address))
#endif

/* One use's planes: src planes (sh x sw) padded into ph x pw planes at (top, left). */
typedef struct direct_geom {
    int64_t planes, sh, sw, ph, pw, top, left;
    int64_t cin, cout; /* a group's input planes and outputs */
    int64_t kh, kw, dh, dw;
    int64_t oh, ow, len; /* the outputs, and the wide plane: oh*pw rounded up to STRIP */
    bool flip;           /* the input gradient: weights transposed and flipped */
} direct_geom;

static int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/* use 0 and 2 read x padded; use 1 reads dy padded by the kernel's reach less the padding */
static direct_geom direct_of(const rt_window *g, int use)
{
    int64_t G = g->groups, rh = (g->kh - 1) * g->dh, rw = (g->kw - 1) * g->dw;
    direct_geom d = {.kh = g->kh, .kw = g->kw, .dh = g->dh, .dw = g->dw};
    if (use == 1) {
        d.planes = g->o, d.sh = g->oh, d.sw = g->ow, d.ph = g->h + rh, d.pw = g->w + rw;
        d.top = rh - g->ph, d.left = rw - g->pw, d.cin = g->o / G, d.cout = g->c / G;
        d.oh = g->h, d.ow = g->w, d.flip = true;
    } else {
        d.planes = g->c, d.sh = g->h, d.sw = g->w, d.ph = g->h + 2 * g->ph, d.pw = g->w + 2 * g->pw;
        d.top = g->ph, d.left = g->pw, d.cin = g->c / G, d.cout = g->o / G;
        d.oh = g->oh, d.ow = g->ow;
    }
    d.len = round_up(d.oh * d.pw, STRIP);
    return d;
}

/* The padded planes' floats: the reads of the last tap run past the last plane by its
 * column offset and a strip. */
static int64_t padded_floats(const direct_geom *d) { return d->planes * d->ph * d->pw + (d->kw - 1) * d->dw + STRIP; }
static int64_t taps_of(const direct_geom *d) { return d->cin * d->kh * d->kw; }
static int64_t packed_floats(const rt_window *g, const direct_geom *d)
{
    return g->groups * round_up(d->cout, OB) * taps_of(d);
}

/* Whether routine use (0 y, 1 dx, 2 dw) takes the direct path (window.h) */
static bool direct(const rt_window *g, int use)
{
    if (g->sh != 1 || g->sw != 1 || g->ph > (g->kh - 1) * g->dh || g->pw > (g->kw - 1) * g->dw)
        return false;
    direct_geom x = direct_of(g, 0), dy = direct_of(g, 1);
    return padded_floats(&x) <= AG_CONV_DIRECT_FLOATS && padded_floats(&dy) <= AG_CONV_DIRECT_FLOATS &&
           (use != 2 || taps_of(&x) <= DIRECT_TAPS);
}

bool rt_conv2d_direct(const rt_window *g, int use) { return direct(g, use); }

/* A chunk's padded planes: room for x's or dy's, whichever is larger */
static int64_t pad_region(const rt_window *g)
{
    direct_geom x = direct_of(g, 0), dy = direct_of(g, 1);
    return padded_floats(&x) > padded_floats(&dy) ? padded_floats(&x) : padded_floats(&dy);
}

/* A chunk's floats: the padded planes, then the wide outputs (OB planes; the weight
 * gradient's wide dy, every channel rounded up to OB a group) */
static int64_t direct_chunk_floats(const rt_window *g)
{
    direct_geom x = direct_of(g, 0), dy = direct_of(g, 1);
    int64_t pad = pad_region(g);
    int64_t wide = OB * (x.len > dy.len ? x.len : dy.len);
    if (g->groups * round_up(x.cout, OB) * x.len > wide)
        wide = g->groups * round_up(x.cout, OB) * x.len;
    return pad + wide;
}

/* Shared by the chunks: the taps' offsets (int32) and the packed weights */
static int64_t direct_shared_floats(const rt_window *g)
{
    direct_geom x = direct_of(g, 0), dy = direct_of(g, 1);
    int64_t taps = taps_of(&x) > taps_of(&dy) ? taps_of(&x) : taps_of(&dy);
    int64_t pack = packed_floats(g, &x) > packed_floats(g, &dy) ? packed_floats(g, &x) : packed_floats(g, &dy);
    return taps + pack;
}

/* Tap t = (c, i, j)'s offset in a group's padded planes */
static void tap_offsets(const direct_geom *d, int32_t *off)
{
    int64_t t = 0;
    for (int64_t c = 0; c < d->cin; c++)
        for (int64_t i = 0; i < d->kh; i++)
            for (int64_t j = 0; j < d->kw; j++)
                off[t++] = (int32_t)(c * d->ph * d->pw + i * d->dh * d->pw + j * d->dw);
}

/* pack[(k*nb + b)*T*OB + t*OB + r]: the weight of group k's output b*OB + r at tap t (0
 * past the outputs) */
static void pack_weights(const rt_window *g, const direct_geom *d, const float *w, float *pack)
{
    int64_t T = taps_of(d), nb = round_up(d->cout, OB) / OB, khw = d->kh * d->kw, og = g->o / g->groups;
    for (int64_t k = 0; k < g->groups; k++)
        for (int64_t b = 0; b < nb; b++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t r = 0; r < OB; r++) {
                    int64_t out = b * OB + r, c = t / khw, i = t / d->kw % d->kh, j = t % d->kw;
                    float v = 0;
                    if (out < d->cout && !d->flip) /* w[k*og + out][c][i][j] */
                        v = w[((k * og + out) * d->cin + c) * khw + i * d->kw + j];
                    else if (out < d->cout) /* w[k*og + c][out][kh-1-i][kw-1-j] */
                        v = w[((k * og + c) * d->cout + out) * khw + (d->kh - 1 - i) * d->kw + (d->kw - 1 - j)];
                    pack[((k * nb + b) * T + t) * OB + r] = v;
                }
}

/* dst[k] = src[k], k < n: LeNet's rows are 5-28 floats, where a memcpy call costs more */
static inline void copy_row(float *restrict dst, const float *restrict src, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        dst[k] = src[k];
}

/* A sample's planes into the padded planes, zeros around them and after */
static void pad_planes(const direct_geom *d, const float *src, float *pad)
{
    memset(pad, 0, sizeof *pad * (size_t)padded_floats(d));
    for (int64_t p = 0; p < d->planes; p++)
        for (int64_t y = 0; y < d->sh; y++)
            copy_row(pad + (p * d->ph + d->top + y) * d->pw + d->left, src + (p * d->sh + y) * d->sw, d->sw);
}

/* Rows r < R of out (R <= OB, S <= 4 constants where inlined): out[r*len + e] = the sum over
 * taps t of pack[t*OB + r] * src[off[t] + e], for e from e0 in strips of S vectors whose
 * R x S sums stay in registers across the taps, while a whole strip fits in len; returns
 * where it stopped. R x S is 8 where it can be: FMA's latency needs 8 sums in flight. */
static inline __attribute__((always_inline, no_sanitize_address)) int64_t rows_of(const float *src, const int32_t *off,
                                                                                  int64_t T, const float *pack,
                                                                                  float *out, int64_t len, int64_t e,
                                                                                  const int R, const int S)
{
    for (; e + 8 * S <= len; e += 8 * S) {
        v8 a[OB][4] = {{{0}}};
        for (int64_t t = 0; t < T; t++) {
            v8 x[4];
            for (int v = 0; v < S; v++)
                x[v] = LOAD8(src + off[t] + e + 8 * v);
            for (int r = 0; r < R; r++)
                for (int v = 0; v < S; v++)
                    a[r][v] += pack[t * OB + r] * x[v];
        }
        for (int r = 0; r < R; r++)
            for (int v = 0; v < S; v++)
                STORE8(out + r * len + e + 8 * v, a[r][v]);
    }
    return e;
}

/* rows_of for nr rows: OB, or 2 or 1 for a group's last block (LeNet's 6 channels: 4 + 2),
 * in strips of 4 vectors then the last of 2 (len is a multiple of STRIP) */
FAST_CLONES static void direct_rows(const float *src, const int32_t *off, int64_t T, const float *pack, float *out,
                                    int64_t len, int64_t nr)
{
    if (nr > 2)
        rows_of(src, off, T, pack, out, len, 0, OB, 2);
    else if (nr == 2)
        rows_of(src, off, T, pack, out, len, rows_of(src, off, T, pack, out, len, 0, 2, 4), 2, 2);
    else
        rows_of(src, off, T, pack, out, len, rows_of(src, off, T, pack, out, len, 0, 1, 4), 1, 2);
}

typedef int32_t v8i __attribute__((vector_size(32)));
/* (a0+a1, b0+b1, a2+a3, b2+b3, ...): two vectors' neighbouring lanes summed, interleaved */
#define PAIR_SUMS(a, b)                                          \
    (__builtin_shuffle(a, b, (v8i){0, 8, 2, 10, 4, 12, 6, 14}) + \
     __builtin_shuffle(a, b, (v8i){1, 9, 3, 11, 5, 13, 7, 15}))

/* part[r*T + t] = (add ? part[r*T + t] : 0) + the sum over e < len of rows[r*len + e] *
 * src[off[t] + e], for r < nr <= OB and t < T: two taps at a time, their OB x 2 sums in
 * registers, then in one vector (each sum's lanes added in a fixed tree) */
FAST_CLONES static void direct_dots(const float *rows, int64_t len, const float *src, const int32_t *off, int64_t T,
                                    int64_t nr, float *part, bool add)
{
    for (int64_t t = 0; t < T; t += 2) {
        const float *x0 = src + off[t], *x1 = src + off[t + 1 < T ? t + 1 : t];
        v8 a[OB][2] = {{{0}}};
        for (int64_t e = 0; e < len; e += 8) {
            v8 u = LOAD8(x0 + e), v = LOAD8(x1 + e);
            for (int r = 0; r < OB; r++) {
                v8 y = LOAD8(rows + r * len + e);
                a[r][0] += y * u;
                a[r][1] += y * v;
            }
        }
        v8 p0 = PAIR_SUMS(a[0][0], a[0][1]), p1 = PAIR_SUMS(a[1][0], a[1][1]);
        v8 p2 = PAIR_SUMS(a[2][0], a[2][1]), p3 = PAIR_SUMS(a[3][0], a[3][1]);
        v8 q0 = __builtin_shuffle(p0, p1, (v8i){0, 1, 8, 9, 4, 5, 12, 13}) +
                __builtin_shuffle(p0, p1, (v8i){2, 3, 10, 11, 6, 7, 14, 15});
        v8 q1 = __builtin_shuffle(p2, p3, (v8i){0, 1, 8, 9, 4, 5, 12, 13}) +
                __builtin_shuffle(p2, p3, (v8i){2, 3, 10, 11, 6, 7, 14, 15});
        float sums[8]; /* sums[r*2 + q] */
        STORE8(sums, __builtin_shuffle(q0, q1, (v8i){0, 1, 2, 3, 8, 9, 10, 11}) +
                         __builtin_shuffle(q0, q1, (v8i){4, 5, 6, 7, 12, 13, 14, 15}));
        for (int64_t r = 0; r < nr; r++)
            for (int64_t q = 0; q < 2 && t + q < T; q++) {
                float *at = part + r * T + t + q;
                *at = add ? *at + sums[r * 2 + q] : sums[r * 2 + q];
            }
    }
}

/* The workspace: on the direct path the taps' offsets and packed weights, then each chunk's
 * padded planes and wide outputs; else the columns (a chunk's each, or one); then each
 * chunk's part of dw and of db. */
static int64_t slots(const rt_window *g) { return direct(g, 0) || on_the_pool(g) ? RT_CONV_CHUNKS : 1; }
static int64_t slot_floats(const rt_window *g) /* either path's, or the larger where dw takes the columns */
{
    int64_t d = direct(g, 0) ? direct_chunk_floats(g) : 0, c = direct(g, 2) ? 0 : columns(g);
    return d > c ? d : c;
}
static int64_t shared_floats(const rt_window *g) { return direct(g, 0) ? direct_shared_floats(g) : 0; }
static float *parts_of(const rt_window *g, float *ws) { return ws + shared_floats(g) + slots(g) * slot_floats(g); }

int64_t rt_conv2d_workspace(const rt_window *g)
{
    int64_t kg = g->c / (g->groups > 0 ? g->groups : 1) * g->kh * g->kw;
    return shared_floats(g) + slots(g) * slot_floats(g) + RT_CONV_CHUNKS * g->o * (kg + 1);
}

/* Sample n by its columns (rt_im2col of batch 1) and one sgemm a group; part: the chunk's
 * dw, which sample n0 starts */
static void sample_columns(const conv_job *j, int64_t n, int64_t n0, float *cols, float *part)
{
    const rt_window *g = j->g;
    int64_t G = g->groups, L = g->oh * g->ow, plane = g->c * g->h * g->w, og = g->o / G, kg = g->c / G * g->kh * g->kw;
    if (j->op != 1)
        rt_im2col(j->a + n * plane, cols, 1, g, NULL);
    for (int64_t k = 0; k < G; k++) {
        const float *wk = j->b + k * og * kg;
        float *ck = cols + k * kg * L;
        if (j->op == 0) /* y[n] = W cols */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)og, (int)L, (int)kg, 1, wk, (int)kg, ck, (int)L,
                        0, j->out + (n * g->o + k * og) * L, (int)L);
        else if (j->op == 1) /* cols = W^T dy[n] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kg, (int)L, (int)og, 1, wk, (int)kg,
                        j->a + (n * g->o + k * og) * L, (int)L, 0, ck, (int)L);
        else /* part += dy[n] cols^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)og, (int)kg, (int)L, 1,
                        j->b + (n * g->o + k * og) * L, (int)L, ck, (int)L, n > n0 ? 1 : 0, part + k * og * kg,
                        (int)kg);
    }
    if (j->op == 1)
        rt_col2im(cols, j->out + n * plane, 1, g, NULL);
}

/* Sample n on the direct path, in the chunk's padded planes and wide outputs (mine) */
static void sample_direct(const conv_job *j, int64_t n, int64_t n0, float *mine, float *part)
{
    const rt_window *g = j->g;
    direct_geom d = direct_of(g, j->op == 1);
    int64_t G = g->groups, T = taps_of(&d), nb = round_up(d.cout, OB) / OB, planes = d.ph * d.pw;
    const int32_t *off = (const int32_t *)j->ws;
    const float *pack = j->ws + T;
    float *pad = mine, *wide = mine + pad_region(g);
    pad_planes(&d, j->a + n * d.planes * d.sh * d.sw, pad);
    if (j->op != 2) { /* y[n] or dx[n]: OB outputs at a time, then their valid columns */
        for (int64_t k = 0; k < G; k++)
            for (int64_t b = 0; b < nb; b++) {
                direct_rows(pad + k * d.cin * planes, off, T, pack + (k * nb + b) * T * OB, wide, d.len,
                            d.cout - b * OB);
                for (int64_t r = 0; r < OB && b * OB + r < d.cout; r++)
                    for (int64_t y = 0; y < d.oh; y++)
                        copy_row(j->out + ((n * G * d.cout + k * d.cout + b * OB + r) * d.oh + y) * d.ow,
                                 wide + r * d.len + y * d.pw, d.ow);
            }
        return;
    }
    /* dw: dy[n] widened to the padded width, each group's channels rounded up to OB */
    int64_t og = d.cout, ogp = round_up(og, OB);
    memset(wide, 0, sizeof *wide * (size_t)(G * ogp * d.len));
    for (int64_t k = 0; k < G; k++)
        for (int64_t o = 0; o < og; o++)
            for (int64_t y = 0; y < d.oh; y++)
                copy_row(wide + (k * ogp + o) * d.len + y * d.pw, j->b + ((n * g->o + k * og + o) * d.oh + y) * d.ow,
                         d.ow);
    for (int64_t k = 0; k < G; k++)
        for (int64_t b = 0; b < nb; b++)
            direct_dots(wide + (k * ogp + b * OB) * d.len, d.len, pad + k * d.cin * planes, off, T,
                        og - b * OB < OB ? og - b * OB : OB, part + (k * og + b * OB) * T, n > n0);
}

/* Chunk c's samples in order; the weight gradient's sums into the chunk's parts */
static void chunk(void *ctx, int64_t c, int64_t end)
{
    const conv_job *j = ctx;
    const rt_window *g = j->g;
    int64_t L = g->oh * g->ow, kg = g->c / g->groups * g->kh * g->kw;
    for (; c < end; c++) {
        float *parts = parts_of(g, j->ws), *part = parts + c * g->o * kg;
        float *mine = j->ws + shared_floats(g) + (c % slots(g)) * slot_floats(g);
        float *dbpart = parts + RT_CONV_CHUNKS * g->o * kg + c * g->o;
        int64_t n0 = c * j->batch / j->nchunks, n1 = (c + 1) * j->batch / j->nchunks;
        for (int64_t n = n0; n < n1; n++) {
            if (direct(g, j->op))
                sample_direct(j, n, n0, mine, part);
            else
                sample_columns(j, n, n0, mine, part);
            if (j->op == 2 && j->db) /* db's part += the sample's plane sums */
                for (int64_t o = 0; o < g->o; o++) {
                    float s = plane_sum(j->b + (n * g->o + o) * L, L);
                    dbpart[o] = n > n0 ? dbpart[o] + s : s;
                }
        }
    }
}

/* out[e] = the sum of the chunks' parts[c*n + e] in chunk order (0 without a chunk) */
static void sum_parts(float *out, const float *parts, int64_t n, int64_t nchunks)
{
    if (nchunks == 0)
        memset(out, 0, sizeof *out * (size_t)n);
    else
        memcpy(out, parts, sizeof *out * (size_t)n);
    for (int64_t c = 1; c < nchunks; c++)
        for (int64_t e = 0; e < n; e++)
            out[e] += parts[c * n + e];
}

static void run(conv_job *j, rt_pool *pool)
{
    const rt_window *g = j->g;
    j->nchunks = j->batch < RT_CONV_CHUNKS ? j->batch : RT_CONV_CHUNKS;
    if (j->nchunks > 0 && direct(g, j->op)) { /* the taps and weights, once for the chunks */
        direct_geom d = direct_of(g, j->op == 1);
        tap_offsets(&d, (int32_t *)j->ws);
        if (j->op != 2)
            pack_weights(g, &d, j->b, j->ws + taps_of(&d));
    }
    if (j->nchunks > 0)
        rt_parallel_for(direct(g, j->op) || on_the_pool(g) ? pool : NULL, j->nchunks, 1, chunk, j);
    if (j->op != 2)
        return;
    /* dw and db: the chunks' parts in order */
    int64_t kg = g->c / g->groups * g->kh * g->kw;
    const float *parts = parts_of(g, j->ws);
    sum_parts(j->out, parts, g->o * kg, j->nchunks);
    if (j->db)
        sum_parts(j->db, parts + RT_CONV_CHUNKS * g->o * kg, g->o, j->nchunks);
}

void rt_conv2d(const float *x, const float *w, float *y, int64_t batch, const rt_window *g, float *ws, rt_pool *pool)
{
    run(&(conv_job){g, x, w, y, ws, NULL, batch, 0, 0}, pool);
}

void rt_conv2d_input_grad(const float *dy, const float *w, float *dx, int64_t batch, const rt_window *g, float *ws,
                          rt_pool *pool)
{
    run(&(conv_job){g, dy, w, dx, ws, NULL, batch, 0, 1}, pool);
}

void rt_conv2d_weight_grad(const float *x, const float *dy, float *dw, float *db, int64_t batch, const rt_window *g,
                           float *ws, rt_pool *pool)
{
    run(&(conv_job){g, x, dy, dw, ws, db, batch, 0, 2}, pool);
}
