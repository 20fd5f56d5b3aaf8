/* torch.optim's own numbers (tests/data/optim/reference.txt, written by
 * bench/optim_reference.py): 20 steps of models/mlp.c's network on the first 20 batches of 64
 * Fashion-MNIST images with each optimizer, float64, every parameter and state tensor (a
 * subset of each). What a test needs to run the same steps and compare. */
#ifndef AG_TESTS_OPTIM_REF_H
#define AG_TESTS_OPTIM_REF_H

#include <stdint.h>

#include "aotgrad.h"
#include "data.h"
#include "kernel.h"

enum { OPTIM_REF_STEPS = 20, OPTIM_REF_BATCH = 64, OPTIM_REF_CONFIGS = 7 };

typedef struct optim_ref_value {
    char config[16], tensor[40];
    int64_t index;
    double value;
} optim_ref_value;

typedef struct optim_ref {
    optim_ref_value *v;
    int n;
    rt_dataset images; /* Fashion-MNIST's training set */
} optim_ref;

/* The reference and the images (fails the test where either is missing); and free. */
void optim_ref_load(optim_ref *r);
void optim_ref_free(optim_ref *r);

/* Config k (0 .. OPTIM_REF_CONFIGS - 1): its name ("adam") and optimizer, as the script's */
const char *optim_ref_config(int k, ag_optimizer *o);
/* The network (x f32 [N,784] pixels / 255, y i32 [N]; W1, b1, W2, b2 zeros: start them with
 * optim_ref_start) with optimizer o */
void optim_ref_net(ag_graph *g, ag_optimizer o);
/* Element e of the parameter named name at the start */
double optim_ref_start(const char *name, int64_t e);
/* Step s's batch: pixel e (of 64 x 784) / 255 and label e (of 64); all of it, in f32 */
double optim_ref_x(const optim_ref *r, int s, int64_t e);
int32_t optim_ref_y(const optim_ref *r, int s, int64_t e);
void optim_ref_batch(const optim_ref *r, int s, float *x, int32_t *y);

/* How far tensor's values (at(data, i) for element i) are from the reference's for config,
 * norm-wise over the elements the reference keeps; *seen: how many (0: none kept) */
double optim_ref_error(const optim_ref *r, const char *config, const char *tensor,
                       double (*at)(const void *data, int64_t i), const void *data, int *seen);

/* For a lowered train step p of optim_ref_net's graph g: the parameters at the start into
 * params (the state at zero); after a call, the updates not in place copied over their
 * parameters; and the worst norm-wise error of every parameter and state tensor against the
 * reference for config, each expected within bar (who: what the messages call the code). */
void optim_ref_start_params(const cg_program *p, const ir_graph *g, char *params);
void optim_ref_take_updates(const cg_program *p, const ir_graph *g, const char *arena, char *params);
double optim_ref_check(const optim_ref *r, const char *config, const cg_program *p, const char *params, double bar);

#endif
