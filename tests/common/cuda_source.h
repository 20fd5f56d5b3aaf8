/* A program's CUDA C as one string (codegen/cuda/render.h), for the tests and gpu_diff. */
#ifndef AG_TESTS_CUDA_SOURCE_H
#define AG_TESTS_CUDA_SOURCE_H

#include <stddef.h>

#include "cuda/render.h"

/* cg_cuda_render of p into a string (free it) and plan (free with cg_cuda_plan_free); NULL
 * with the renderer's message in err. */
char *cuda_source(const cg_program *p, cg_cuda_plan *plan, char *err, size_t len);

#endif
