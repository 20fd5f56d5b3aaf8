/* A training run in a checkpoint: the parameters, and in the metadata what continues the
 * run bit for bit. The binaries' train and `aotgrad run` both write one after every epoch
 * (--save) and continue one (--resume); eval and predict read the parameters (--weights).
 *
 * The metadata: format "aotgrad", model, options (the model's --set options as built:
 * "act=relu", comma-separated), epoch (finished), step (the next), seed, lr, wd, batch,
 * lr_schedule ("constant", or "cosine warmup=50 step_epochs=1 gamma=0.1 lr_min=0"), and
 * accumulate and clip_norm (--accumulate, --clip-norm; 1 and 0 when absent), and history
 * (one row per finished epoch, for --metrics and --plot). The RNG state is (seed,
 * epoch, step): the shuffles are a function of (seed, epoch), dropout's masks of (seed,
 * step). */
#ifndef AG_RUNTIME_RUN_STATE_H
#define AG_RUNTIME_RUN_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "checkpoint.h"
#include "history.h"
#include "train.h"

typedef struct rt_run_state {
    int64_t epoch; /* epochs finished */
    uint64_t step; /* the next step */
    uint32_t seed;
    double lr, wd;
    int64_t batch;
    rt_schedule schedule; /* --lr-schedule ...: constant in a checkpoint without one */
    int64_t accumulate;   /* --accumulate K: 1 in a checkpoint without it */
    double clip_norm;     /* --clip-norm X: 0 (none) in a checkpoint without it */
    rt_history_row *rows; /* the history so far (read: malloc'd, the caller frees it) */
    int nrows;
} rt_run_state;

/* After epoch e of m's run: its row joins s's history (accuracy from ag_correct's metric,
 * "correct", samples/s from `samples` trained), and s is at its epoch and step. False past
 * RT_HISTORY_MAX epochs or out of memory. */
bool rt_run_record(rt_run_state *s, const rt_model *m, const rt_epoch *e, int64_t samples, char *err, size_t len);

/* Writes m's parameters and s to path, atomically. */
bool rt_run_save(const char *path, const rt_model *m, const char *options, const rt_run_state *s, char *err,
                 size_t len);

/* Reads the parameters of c (loaded from path) into m's: every tensor by name, dtype and
 * shape, and no tensor m lacks. A checkpoint of another model, or of the same model built
 * with other options (act=tanh computes something else with the same shapes), is refused.
 * The optimizer's state (rt_param.state) may be missing (a checkpoint of parameters alone,
 * or of another optimizer): it is zeroed, and *nmissing counts it, *first_missing the first
 * (either may be NULL). */
bool rt_run_read_params(const rt_ckpt *c, const char *path, const rt_model *m, const char *options, int *nmissing,
                        const char **first_missing, char *err, size_t len);

/* The line that says a resumed run's optimizer state starts at zero (nmissing of them) */
void rt_run_say_fresh_state(FILE *f, const char *who, const char *path, int nmissing, const char *first);

/* The training state in c's metadata, checked strictly (a checkpoint without it says that
 * its parameters still work with --weights). */
bool rt_run_read_state(const rt_ckpt *c, const char *path, rt_run_state *s, char *err, size_t len);

/* What the command line gave, which a resumed run takes in place of the checkpoint's */
typedef struct rt_run_given {
    bool seed, lr, wd, batch, schedule, accumulate, clip_norm;
} rt_run_given;

/* Sets fit to continue s (read from path): from the epoch after s's and its step, with its
 * seed and its lr schedule (either given must be the same: the run's shuffles, masks and
 * learning rates follow from them) and its lr, wd, batch, accumulate and clip_norm unless
 * given. */
bool rt_run_continue(const rt_run_state *s, const char *path, rt_run_given given, rt_fit *fit, char *err, size_t len);

#endif
