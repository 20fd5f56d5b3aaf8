/* Philox against Random123's own answers, then the dropout and fill contracts in rng.h. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include <Random123/philox.h> /* the reference implementation, header only */

#include "rng.h"

/* Random123's reference, in our calling convention. */
static void ref_philox(const uint32_t c[4], const uint32_t k[2], uint32_t out[4])
{
    philox4x32_ctr_t ctr = {{c[0], c[1], c[2], c[3]}};
    philox4x32_key_t key = {{k[0], k[1]}};
    philox4x32_ctr_t r = philox4x32_R(10, ctr, key);
    for (int j = 0; j < 4; j++)
        out[j] = r.v[j];
}

/* xorshift64, only to pick test inputs */
static uint32_t next(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (uint32_t)(*s >> 32);
}

/* Random123's kat_vectors lines for philox4x32 10 (the file is not packaged in Debian;
 * philox4x32_R reproduces these, see ref_matches_kat). */
static const struct {
    uint32_t ctr[4], key[2], out[4];
} kat[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

Test(philox, known_answers)
{
    for (size_t t = 0; t < sizeof kat / sizeof kat[0]; t++) {
        uint32_t out[4];
        rt_philox4x32_10(kat[t].ctr, kat[t].key, out);
        for (int j = 0; j < 4; j++)
            cr_expect_eq(out[j], kat[t].out[j], "kat %zu word %d: %08x != %08x", t, j, out[j], kat[t].out[j]);
    }
}

Test(philox, ref_matches_kat)
{
    for (size_t t = 0; t < sizeof kat / sizeof kat[0]; t++) {
        uint32_t out[4];
        ref_philox(kat[t].ctr, kat[t].key, out);
        for (int j = 0; j < 4; j++)
            cr_expect_eq(out[j], kat[t].out[j]);
    }
}

Test(philox, matches_random123)
{
    uint64_t s = 0x9E3779B97F4A7C15u;
    for (int t = 0; t < 1000; t++) {
        uint32_t c[4] = {next(&s), next(&s), next(&s), next(&s)}, k[2] = {next(&s), next(&s)};
        uint32_t a[4], b[4];
        rt_philox4x32_10(c, k, a);
        ref_philox(c, k, b);
        cr_assert_arr_eq(a, b, sizeof a, "ctr %08x %08x %08x %08x key %08x %08x", c[0], c[1], c[2], c[3], k[0], k[1]);
    }
}

Test(dropout, threshold)
{
    cr_expect_eq(rt_dropout_threshold(0), (uint64_t)1 << 32);
    cr_expect_eq(rt_dropout_threshold(0.5), (uint64_t)1 << 31);
    cr_expect_eq(rt_dropout_threshold(1), 0);
    cr_expect_eq(rt_dropout_threshold(0.2), 3435973836u); /* floor(0.8 * 2^32) */
}

/* The spec in rng.h, written out against the reference: key (seed, site), counter
 * (i/4 lo, i/4 hi, step lo, step hi), word i%4. Large i and step exercise the high words. */
Test(dropout, bit_matches_spec)
{
    uint64_t s = 12345;
    uint64_t th = rt_dropout_threshold(0.3);
    for (int t = 0; t < 1000; t++) {
        uint32_t seed = next(&s), site = next(&s);
        uint64_t step = (uint64_t)next(&s) << (t % 2 ? 32 : 0) | next(&s);
        uint64_t i = (uint64_t)next(&s) << (t % 3 ? 34 : 0) | next(&s);
        uint32_t c[4] = {(uint32_t)(i / 4), (uint32_t)(i / 4 >> 32), (uint32_t)step, (uint32_t)(step >> 32)},
                 k[2] = {seed, site}, out[4];
        ref_philox(c, k, out);
        cr_assert_eq(rt_dropout_keep(seed, site, step, i, th), out[i % 4] < th);
    }
}

static double keep_fraction(double p)
{
    enum { N = 1000000 };
    uint8_t *keep = malloc(N);
    cr_assert(keep);
    rt_dropout_mask(7, 3, 42, 0, N, rt_dropout_threshold(p), keep);
    long kept = 0;
    for (int i = 0; i < N; i++)
        kept += keep[i];
    free(keep);
    return (double)kept / N;
}

Test(dropout, keep_fraction)
{
    cr_expect_float_eq(keep_fraction(0.2), 0.8, 0.005);
    cr_expect_float_eq(keep_fraction(0.5), 0.5, 0.005);
    cr_expect_eq(keep_fraction(0), 1.0);
    cr_expect_eq(keep_fraction(1), 0.0);
}

Test(dropout, mask_matches_keep)
{
    enum { N = 1003 };
    uint8_t keep[N];
    uint64_t th = rt_dropout_threshold(0.4), step = ((uint64_t)5 << 32) | 9;
    uint64_t first = ((uint64_t)1 << 33) + 3; /* unaligned, with high counter bits */
    rt_dropout_mask(11, 2, step, first, N, th, keep);
    for (uint64_t k = 0; k < N; k++)
        cr_assert_eq(keep[k], rt_dropout_keep(11, 2, step, first + k, th), "element %lu", (unsigned long)k);
    for (uint64_t f = 0; f < 8; f++) /* every alignment of a short mask */
        for (uint64_t n = 0; n < 9; n++) {
            uint8_t m[9];
            rt_dropout_mask(11, 2, step, f, n, th, m);
            for (uint64_t k = 0; k < n; k++)
                cr_assert_eq(m[k], rt_dropout_keep(11, 2, step, f + k, th));
        }
}

Test(dropout, deterministic)
{
    enum { N = 4096 };
    uint8_t a[N], b[N], c[N];
    uint64_t th = rt_dropout_threshold(0.5);
    rt_dropout_mask(1, 0, 100, 0, N, th, a);
    rt_dropout_mask(1, 0, 100, 0, N, th, b);
    rt_dropout_mask(1, 0, 101, 0, N, th, c);
    cr_expect_arr_eq(a, b, N);
    cr_expect_arr_neq(a, c, N, "the next step should draw a new mask");
    rt_dropout_mask(1, 1, 100, 0, N, th, c);
    cr_expect_arr_neq(a, c, N, "another site should draw a new mask");
}

Test(fill, random_u32_matches_spec)
{
    for (uint64_t i = 0; i < 64; i++) {
        uint64_t j = i * 0x123456789u;
        uint32_t c[4] = {(uint32_t)(j / 4), (uint32_t)(j / 4 >> 32), 0, 0x494E4954}, k[2] = {5, 6};
        uint32_t out[4];
        ref_philox(c, k, out);
        cr_assert_eq(rt_random_u32(5, 6, j), out[j % 4]);
    }
}

Test(fill, normal_moments)
{
    enum { N = 1000000 };
    float *x = malloc(N * sizeof *x);
    cr_assert(x);
    const double mean[] = {0, 3}, std[] = {1, 0.5};
    for (int t = 0; t < 2; t++) {
        rt_fill_normal(x, N, mean[t], std[t], 1, (uint32_t)t);
        double s = 0, s2 = 0;
        for (int i = 0; i < N; i++)
            s += x[i];
        double m = s / N;
        for (int i = 0; i < N; i++)
            s2 += (x[i] - m) * (x[i] - m);
        double sd = sqrt(s2 / (N - 1));
        /* the standard errors are std/1000 and std/1414; allow about 5 of them */
        cr_expect_float_eq(m, mean[t], 0.005 * std[t], "mean %g", m);
        cr_expect_float_eq(sd, std[t], 0.004 * std[t], "std %g", sd);
    }
    free(x);
}

Test(fill, normal_pairs)
{
    /* element 2k is r cos t and 2k+1 is r sin t of one pair: their squares add to r^2 */
    double x[8];
    rt_fill_normal_f64(x, 8, 0, 1, 9, 9);
    for (int k = 0; k < 4; k++) {
        double u = ((rt_random_u32(9, 9, 2 * k) >> 8) + 0.5) * 0x1p-24;
        cr_expect_float_eq(x[2 * k] * x[2 * k] + x[2 * k + 1] * x[2 * k + 1], -2 * log(u), 1e-12);
    }
}

Test(fill, uniform_range)
{
    enum { N = 1000000 };
    float *x = malloc(N * sizeof *x);
    cr_assert(x);
    rt_fill_uniform(x, N, -0.25, 0.75, 3, 0);
    double s = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(x[i] >= -0.25f && x[i] < 0.75f, "x[%d] = %a", i, x[i]);
        s += x[i];
    }
    cr_expect_float_eq(s / N, 0.25, 0.002);
    free(x);
}

/* A range a few floats wide: most draws lie within half an ulp of hi, so plain rounding
 * would give hi; [lo, hi) must still hold, and the f64 values must still round to the floats. */
Test(fill, uniform_narrow_range)
{
    enum { N = 4096 };
    float f[N];
    double d[N];
    const double lo = 1, hi = 1 + 0x1p-20;
    rt_fill_uniform(f, N, lo, hi, 4, 4);
    rt_fill_uniform_f64(d, N, lo, hi, 4, 4);
    for (int i = 0; i < N; i++) {
        cr_assert(f[i] >= lo && f[i] < hi, "f[%d] = %a", i, f[i]);
        cr_assert(d[i] >= lo && d[i] < hi, "d[%d] = %a", i, d[i]);
        cr_assert_eq((float)d[i], f[i]);
    }
}

Test(fill, f64_rounds_to_f32)
{
    enum { N = 10007 }; /* not a multiple of 4 */
    static float f[N];
    static double d[N];
    rt_fill_uniform(f, N, -3, 5, 8, 1);
    rt_fill_uniform_f64(d, N, -3, 5, 8, 1);
    for (int i = 0; i < N; i++)
        cr_assert_eq((float)d[i], f[i], "uniform %d", i);
    rt_fill_normal(f, N, 0.5, 0.01, 8, 1);
    rt_fill_normal_f64(d, N, 0.5, 0.01, 8, 1);
    for (int i = 0; i < N; i++)
        cr_assert_eq((float)d[i], f[i], "normal %d", i);
}

Test(fill, streams_differ)
{
    enum { N = 1024 };
    float a[N], b[N], c[N], e[N];
    rt_fill_normal(a, N, 0, 1, 1, 0);
    rt_fill_normal(b, N, 0, 1, 1, 0);
    rt_fill_normal(c, N, 0, 1, 1, 1);
    rt_fill_normal(e, N, 0, 1, 2, 0);
    cr_expect_arr_eq(a, b, sizeof a);
    int same_stream = 0, same_seed = 0;
    for (int i = 0; i < N; i++)
        same_stream += a[i] == c[i], same_seed += a[i] == e[i];
    cr_expect_eq(same_stream, 0);
    cr_expect_eq(same_seed, 0);
    /* a prefix is a prefix: filling fewer elements draws the same values */
    rt_fill_normal(c, 7, 0, 1, 1, 0);
    cr_expect_arr_eq(a, c, 7 * sizeof *c);
}

/* Init streams and dropout masks read different counters even under equal keys. */
Test(fill, init_differs_from_dropout)
{
    int same = 0;
    for (uint64_t i = 0; i < 256; i++) {
        uint32_t c[4] = {(uint32_t)(i / 4), 0, 0, 0}, k[2] = {1, 0}, out[4];
        ref_philox(c, k, out); /* dropout step 0, site 0 */
        same += out[i % 4] == rt_random_u32(1, 0, i);
    }
    cr_expect_eq(same, 0);
}
