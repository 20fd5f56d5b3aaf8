/* Philox4x32-10 and what the runtime draws from it. See rng.h for the counter layout. */
#include "rng.h"

#include <math.h>

#define TWO_PI 6.28318530717958647692 /* M_PI is not C17 */

void rt_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];

    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        c0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        c1 = (uint32_t)p1;
        c2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c3 = (uint32_t)p0;
        k0 += 0x9E3779B9u; /* Weyl key schedule; the bump after the last round is unused */
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static void dropout_block(uint32_t seed, uint32_t site, uint64_t step, uint64_t b, uint32_t out[4])
{
    uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)step, (uint32_t)(step >> 32)};
    uint32_t key[2] = {seed, site};
    rt_philox4x32_10(ctr, key, out);
}

static void init_block(uint32_t seed, uint32_t stream, uint64_t b, uint32_t out[4])
{
    uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), 0, RT_RNG_INIT_TAG};
    uint32_t key[2] = {seed, stream};
    rt_philox4x32_10(ctr, key, out);
}

uint64_t rt_dropout_threshold(double p)
{
    if (!(p > 0)) /* NaN keeps too: dropout off rather than everything dropped */
        return (uint64_t)1 << 32;
    if (p >= 1)
        return 0;
    return (uint64_t)floor((1 - p) * 4294967296.0);
}

int rt_dropout_keep(uint32_t seed, uint32_t site, uint64_t step, uint64_t i, uint64_t threshold)
{
    uint32_t out[4];
    dropout_block(seed, site, step, i / 4, out);
    return out[i % 4] < threshold;
}

void rt_dropout_mask(uint32_t seed, uint32_t site, uint64_t step, uint64_t first, uint64_t n, uint64_t threshold,
                     uint8_t *keep)
{
    uint32_t out[4];
    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = first + k;
        if (k == 0 || i % 4 == 0)
            dropout_block(seed, site, step, i / 4, out);
        keep[k] = out[i % 4] < threshold;
    }
}

uint32_t rt_random_u32(uint32_t seed, uint32_t stream, uint64_t i)
{
    uint32_t out[4];
    init_block(seed, stream, i / 4, out);
    return out[i % 4];
}

/* In (0, 1), never 0, so Box-Muller's log is finite. Exact in double. */
static double u01(uint32_t w) { return ((w >> 8) + 0.5) * 0x1p-24; }

/* lo + (hi - lo) u, held below the largest float under hi: the float variant rounds this
 * value, and without the clamp a draw within half a float ulp of hi would round up to hi. */
static double uniform_at(uint32_t w, double lo, double hi)
{
    double v = lo + (hi - lo) * u01(w);
    float top = (float)hi;
    if (top >= hi)
        top = nextafterf(top, -INFINITY);
    return (float)v > top ? top : v;
}

/* Element j of a 4-word block: words j&~1 and j|1 are its Box-Muller pair. */
static double normal_at(const uint32_t w[4], int j, double mean, double std)
{
    double r = sqrt(-2 * log(u01(w[j & ~1]))), t = TWO_PI * u01(w[j | 1]);
    return mean + std * r * (j & 1 ? sin(t) : cos(t));
}

/* The four fills share this loop; exactly one of f, d is non-null. */
static void fill(float *f, double *d, int64_t n, int normal, double a, double b, uint32_t seed, uint32_t stream)
{
    uint32_t w[4];
    for (int64_t i = 0; i < n; i += 4) {
        init_block(seed, stream, (uint64_t)i / 4, w);
        for (int j = 0; j < 4 && i + j < n; j++) {
            double v = normal ? normal_at(w, j, a, b) : uniform_at(w[j], a, b);
            if (f)
                f[i + j] = (float)v;
            else
                d[i + j] = v;
        }
    }
}

void rt_fill_uniform(float *dst, int64_t n, double lo, double hi, uint32_t seed, uint32_t stream)
{
    fill(dst, 0, n, 0, lo, hi, seed, stream);
}

void rt_fill_normal(float *dst, int64_t n, double mean, double std, uint32_t seed, uint32_t stream)
{
    fill(dst, 0, n, 1, mean, std, seed, stream);
}

void rt_fill_uniform_f64(double *dst, int64_t n, double lo, double hi, uint32_t seed, uint32_t stream)
{
    fill(0, dst, n, 0, lo, hi, seed, stream);
}

void rt_fill_normal_f64(double *dst, int64_t n, double mean, double std, uint32_t seed, uint32_t stream)
{
    fill(0, dst, n, 1, mean, std, seed, stream);
}
