/* Running a rendered CUDA program (codegen/cuda/render.h) on a GPU, for the differential
 * tests on a real device (tests/cuda/gpu_diff.c): the host harness of cuda_host.h, but
 * through the CUDA driver (runtime/cuda_driver.h), with the kernels NVRTC compiled. Every
 * driver call is checked; a failure names the call and the kernel. */
#ifndef AG_TESTS_CUDA_DEVICE_H
#define AG_TESTS_CUDA_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda_host.h"

typedef struct cuda_device cuda_device;

/* The driver, the first GPU, its primary context and a stream; false with one line (no
 * driver, no GPU). */
bool cuda_device_open(cuda_device **out, char *err, size_t len);
void cuda_device_close(cuda_device *d);
const char *cuda_device_name(const cuda_device *d);

/* Loads one program's image, replacing the last one: the cubin (cubin_len bytes), else,
 * when the driver refuses it (another GPU architecture), the PTX text (NUL-terminated, may
 * be NULL); then looks up every kernel of plan (which must outlive the runs). */
bool cuda_device_load(cuda_device *d, const void *cubin, size_t cubin_len, const char *ptx, const cg_cuda_plan *plan,
                      char *err, size_t len);

/* cuda_host_run on the device with the loaded program: each region is copied into a device
 * allocation of its own size, the plan's steps are launched in order, step i with
 * cg_cuda_blocks(step i, batch) blocks (at most 2^20, as the runtime caps them) of
 * CG_CUDA_BLOCK threads and ag_dev_args {arena, params, inputs, outputs, N = batch, seed,
 * step, pstep = device memory holding step, as a training step reads it, scratch = the
 * plan's scratch_bytes, zeroed}; the stream is
 * synchronized after each launch (a fault names its kernel), and every region is copied
 * back. */
bool cuda_device_run(cuda_device *d, int64_t batch, uint32_t seed, uint64_t step, cuda_host_region arena,
                     cuda_host_region params, const cuda_host_region *inputs, int ninputs,
                     const cuda_host_region *outputs, int noutputs, char *err, size_t len);

#endif
