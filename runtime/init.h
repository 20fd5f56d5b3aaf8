/* Parameter initialization, shared by the interpreter's drivers and generated binaries so a
 * seed gives the same starting weights everywhere. */
#ifndef AG_RUNTIME_INIT_H
#define AG_RUNTIME_INIT_H

#include <stdint.h>

#include "types.h"

/* Fill dst[0..n) per init, each value already rounded to float. A parameter of shape
 * [fan_in, fan_out] (a vector: [n, n]) draws from Philox stream (seed, stream); drivers use
 * the parameter's position among the graph's parameters, counted from 1, as its stream. */
void rt_init_values(double *dst, int64_t n, ag_init init, int64_t fan_in, int64_t fan_out, uint32_t seed,
                    uint32_t stream);

#endif
