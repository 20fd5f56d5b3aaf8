/* A compiled model on a GPU: the CUDA driver API, loaded with dlopen (a binary runs where
 * there is no driver), the module of the binary's CUDA image (its cubin, else its PTX; or
 * the file $AOTGRAD_CUDA_IMAGE names: a cubin, fatbin or PTX of the binary's own `--emit cu`
 * source built on the GPU's machine, for a driver older than the toolkit that built the
 * binary), and the model's memory on the device: parameters, arenas, a batch's inputs, the
 * training set.
 *
 * Training runs a whole epoch without waiting on the host: each step gathers its batch on
 * the device from the epoch's order, runs the train step's kernels, and adds its loss and
 * metrics to sums kept on the device with the first step whose loss was not finite (the
 * kernels of codegen/cuda/render.c's support source). Full batches replay one captured CUDA
 * graph. The host reads the sums a few times a second at most (for the progress bar) and at
 * the end of the epoch.
 *
 * Every driver call's result is checked; a failure says which call, on which kernel, and the
 * driver's name and description of the error. */
#ifndef AG_RUNTIME_CUDA_H
#define AG_RUNTIME_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "compiled.h"
#include "data.h"
#include "dist.h"
#include "train.h"

typedef struct rt_cuda rt_cuda;

/* GPU number `device` (modulo the GPUs there: a rank's place on its machine), with m's CUDA
 * image loaded and its memory allocated; false with one line (no driver, no GPU, an image
 * this GPU cannot run, out of device memory). */
bool rt_cuda_open(const rt_compiled *m, int64_t rows, int device, rt_cuda **out, char *err, size_t len);

/* Data-parallel training (docs/distributed.md): the train step's buckets of gradients are
 * summed over d's ranks by NCCL (loaded with dlopen: nccl.h), on a stream of their own,
 * forked from and joined to the kernels' stream with events inside the captured step; rank
 * 0 makes NCCL's id and d broadcasts it. Each rank then trains on its share of every global
 * batch (rt_dist_share), and a sum that waits on a dead rank ends the epoch with an error
 * after d's timeout. One process (d of one rank) takes the same path where NCCL loads, and
 * none where it does not; without d, a no-op. */
bool rt_cuda_join(rt_cuda *c, rt_dist *d, char *err, size_t len);
/* The ranks whose sums NCCL makes since rt_cuda_join (0: none, one process without NCCL). */
int rt_cuda_ranks(const rt_cuda *c);
void rt_cuda_close(rt_cuda *c);
const char *rt_cuda_device_name(const rt_cuda *c);

/* The parameter region (m->param_bytes, laid out as on the CPU) to and from the device. */
bool rt_cuda_put_params(rt_cuda *c, const void *params, char *err, size_t len);
bool rt_cuda_get_params(rt_cuda *c, void *params, char *err, size_t len);

/* The training set, uploaded once, with its features in the model's dtype. */
bool rt_cuda_put_dataset(rt_cuda *c, const rt_dataset *d, char *err, size_t len);

/* One epoch over the uploaded set in order perm[0..n) (batches of f->batch, the last one
 * partial), steps first_step on: the sums of loss * rows and of each metric, and the first
 * step whose loss was not finite (-1: none). progress: a terminal for the progress bar, or
 * NULL. */
bool rt_cuda_train_epoch(rt_cuda *c, const int64_t *perm, int64_t n, const rt_fit *f, int64_t epoch,
                         uint64_t first_step, double *loss_sum, double *metric_sum, int64_t *bad_step, char *err,
                         size_t len);

/* The forward pass on one batch from host memory (features already in the model's dtype):
 * loss and metrics into b; with predict non-NULL, the predictions (rows * numel values of
 * the model's predict output) copied there. */
bool rt_cuda_forward(rt_cuda *c, rt_batch *b, void *predict, char *err, size_t len);

/* The train step's kernels at batch rows, launched one by one reps times with an event
 * before and after each (not the replayed graph: its steps are timed by training): seconds[k]
 * is launch k's total, for m->cuda->ntrain launches. For `bench --device cuda`. */
bool rt_cuda_time_kernels(rt_cuda *c, int64_t rows, int64_t reps, double *seconds, char *err, size_t len);

#endif
