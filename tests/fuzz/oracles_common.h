/* What the oracles' two files share: oracles.c (the reference: binding by name, every pass,
 * autodiff) and oracles_code.c (the generated code: LLVM, CUDA C, the standalone binary).
 * Internal to tests/fuzz. */
#ifndef AG_FUZZ_ORACLES_COMMON_H
#define AG_FUZZ_ORACLES_COMMON_H

#include "oracles.h"

#define NB 3
static const int64_t batches[NB] = {1, 7, 64};
enum { SEED = 11, STEP = 3, FD_BATCH = 1 }; /* FD_BATCH: index into batches */
#define LR 0.1
#define WD 0.01

/* The first finding stands: later ones are dropped. */
void oracle_say(fz_result *r, fz_outcome what, const char *oracle, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline bool done(const fz_result *r) { return r->outcome != FZ_PASS; }
static inline double get(const ir_tensor *t, int64_t i) { return ir_tensor_get(t, i); }
/* ||a - b|| / max(||b||, 1) over n values, a read through a(pa, i); NaN where both are NaN
 * and equal infinities count as equal. */
double oracle_err_of(double (*a)(const void *, int64_t), const void *pa, const ir_tensor *b, int64_t n);

/* ---- binding by name ---- */

typedef struct binding {
    const ir_graph *model;
    ir_tensor **bound;               /* fe_bind_random of the model, by its node ids */
    ir_tensor scalar[AG_ROLE_COUNT]; /* the runtime scalars by role: lr, wd, and the split step's
                                      * grad_weight (the batch), grad_scale (1 / it), clip_norm */
    int nstate; /* the optimizer's state and the accumulators (params of role=state or accum, not in
                 * the model): zeros, and small values, by name */
    const char *state_name[64];
    ir_tensor state[64];
} binding;

bool oracle_bind_model(binding *b, const ir_graph *model, int64_t batch, bool f64);
void oracle_unbind_model(binding *b);
ir_tensor **oracle_bind_graph(binding *b, const ir_graph *g, ir_tensor *const *extra, char *err, size_t len);

typedef struct outputs {
    int n;
    ir_tensor *t;
} outputs;

void oracle_free_outputs(outputs *o);
bool oracle_run_interp(const ir_graph *g, ir_tensor **bound, int64_t batch, bool f64, bool training, outputs *o,
                       char *err, size_t len);

/* ---- oracles_code.c ---- */

void oracle_check_llvm(const ir_graph *model, const ir_graph *g, const char *which, bool training, fz_result *r);
void oracle_check_cuda(const ir_graph *g, bool training, fz_result *r);
void oracle_check_binary(const ir_graph *model, const fz_check_opts *o, fz_result *r);
/* A forward computation's binary: predict of each input's CSV rows against the interpreter. */
void oracle_check_forward_binary(const ir_graph *model, const fz_check_opts *o, fz_result *r);

#endif
