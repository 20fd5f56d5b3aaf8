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

/* A parameter's fans: a matrix [fan_in, fan_out] (the DSL's x W), a vector's both dims[0], a
 * scalar's 1; rank 3 and 4, as torch.nn.init computes them for a convolution's weights
 * [O, C, KH, KW] (PyTorch's layout): fan in C times the rest (C*KH*KW), out O times it. */
void rt_fans(int rank, const int64_t *dims, int64_t *fan_in, int64_t *fan_out);

/* A parameter of the given shape, rank 0 to 4, filled as rt_init_values fills it and rounded to
 * float (its fans from rt_fans), from
 * Philox stream (seed, stream); allocates nothing. ag_init_params (aotgrad_runtime.h) calls it
 * for each parameter of a model. */
void rt_init_param(float *dst, int rank, const int64_t *dims, ag_init init, uint32_t seed, uint32_t stream);

#endif
