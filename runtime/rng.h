/* The runtime's random numbers: Philox4x32-10, counter based, no state.
 *
 * Every draw is a pure function of (key, counter), so any backend, any thread and any
 * starting element reproduce the same bits without replaying a sequence. Two uses, kept
 * apart by the counter's last word:
 *
 *   dropout  key (seed, site)    counter (i/4 lo, i/4 hi, step lo, step hi), word i%4
 *   init     key (seed, stream)  counter (j/4 lo, j/4 hi, 0, RT_RNG_INIT_TAG), word j%4
 *
 * so a fill meets a dropout mask only at step 0x494E4954_00000000, which no run reaches.
 */
#ifndef RT_RNG_H
#define RT_RNG_H

#include <stdint.h>

#define RT_RNG_INIT_TAG 0x494E4954u /* "INIT" */

/* Philox4x32-10 (Salmon et al., SC'11): counter ctr[4], key key[2] -> out[4]. */
void rt_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The dropout mask bit, specified so every backend reproduces it bit for bit: element i
 * (row-major logical index) at training step `step` of dropout site `site` uses Philox4x32-10
 * with key (seed, site) and counter (i/4 low 32 bits, i/4 high 32 bits, step low 32 bits,
 * step high 32 bits), takes output word i%4, and is kept when that word is below
 * floor((1-p) * 2^32) (p = 0 keeps everything, p = 1 drops everything). */
uint64_t rt_dropout_threshold(double p); /* floor((1-p)*2^32); uint64 so that p = 0 gives 2^32 */
int rt_dropout_keep(uint32_t seed, uint32_t site, uint64_t step, uint64_t i, uint64_t threshold);
/* keep[0..n) = 1 kept, 0 dropped, for elements [first, first+n); one Philox block per 4. */
void rt_dropout_mask(uint32_t seed, uint32_t site, uint64_t step, uint64_t first, uint64_t n, uint64_t threshold,
                     uint8_t *keep);

/* Deterministic fills for parameter initialization and random test inputs. Element j of a
 * stream reads word j (uniform) or words 2*(j/2), 2*(j/2)+1 (normal: Box-Muller, cos for the
 * even element, sin for the odd). A word w becomes u = ((w >> 8) + 0.5) * 2^-24 in (0, 1).
 * The values are computed in double; the _f64 variants store them, the float ones store their
 * rounding, so a double reference sees exactly the draws a float kernel sees. Uniform values
 * lie in [lo, hi) in both variants when lo and hi are floats. */
void rt_fill_uniform(float *dst, int64_t n, double lo, double hi, uint32_t seed, uint32_t stream);
void rt_fill_normal(float *dst, int64_t n, double mean, double std, uint32_t seed, uint32_t stream);
void rt_fill_uniform_f64(double *dst, int64_t n, double lo, double hi, uint32_t seed, uint32_t stream);
void rt_fill_normal_f64(double *dst, int64_t n, double mean, double std, uint32_t seed, uint32_t stream);
uint32_t rt_random_u32(uint32_t seed, uint32_t stream, uint64_t i); /* word i of the stream */

#endif
