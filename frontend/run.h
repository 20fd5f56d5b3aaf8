/* `aotgrad run`: training a model through the reference interpreter. */
#ifndef AG_FRONTEND_RUN_H
#define AG_FRONTEND_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir.h"
#include "train.h"

typedef struct fe_run_opts {
    int64_t epochs, batch; /* 0: the model's default */
    double lr, wd;         /* < 0: the model's default */
    uint32_t seed;
    bool has_seed;              /* --seed was given: a resumed run's must be the same */
    const char *data;           /* NULL: the model's dataset */
    const char *label;          /* --label-column: a CSV's label column (from 1, or a header name); NULL: the last */
    const char *save;           /* a checkpoint after every epoch (safetensors: parameters, training state), or NULL */
    const char *resume;         /* a checkpoint of --save to continue from, bit for bit, or NULL */
    const char *metrics, *plot; /* the per-epoch figures as CSV and as an SVG chart, or NULL */
    int threads;                /* OpenBLAS's threads for the interpreter's matmuls; 0: its default */
    rt_schedule schedule;       /* --lr-schedule ...; RT_SCHEDULE_DEFAULT: constant */
    bool has_schedule;          /* any of its options given: a resumed run's must be the same */
    int64_t accumulate;         /* --accumulate K (0: not given) */
    double clip_norm;           /* --clip-norm X (0: not given) */
    const char *where;          /* the model's file, which messages start with; NULL: the graph's name */
} fe_run_opts;

/* Trains g (any stage) with the runtime's loop; prints the epoch lines and the small
 * parameters; returns the exit status. */
int fe_run(const ir_graph *g, const fe_run_opts *o);

#endif
