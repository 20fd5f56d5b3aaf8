/* Tensors for running a graph without real data: seeded random inputs and parameters from
 * their initializers. */
#ifndef AG_FRONTEND_BIND_H
#define AG_FRONTEND_BIND_H

#include "interp.h"

/* One tensor per input and param node of g (NULL elsewhere), indexed by node id, at the
 * given batch, in the interpreter's storage for f64 or f32 mode. f32 inputs are N(0, 1);
 * u8 inputs 0..255; i32 inputs 0..classes-1 where they feed a one_hot, else 0..9; bool
 * inputs 0 or 1. Parameter k (counted from 1 in graph order) uses stream k of the seed;
 * input k stream 0x10000 + k. Free with fe_bind_free. NULL when out of memory. */
ir_tensor **fe_bind_random(const ir_graph *g, int64_t batch, uint32_t seed, bool f64);
void fe_bind_free(const ir_graph *g, ir_tensor **bound);

/* Fill t (param p's shape, any float storage) from p's initializer, Philox stream `stream`. */
void fe_init_param(const ir_node *p, ir_tensor *t, uint32_t seed, uint32_t stream);

#endif
