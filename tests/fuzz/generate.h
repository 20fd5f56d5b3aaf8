/* The random-model generator's state and what its two files share: generate.c draws the
 * values (their ranges, operands, new parameters and inputs) and the model; generate_actions.c
 * the actions, each one builder call. Internal to tests/fuzz. */
#ifndef AG_FUZZ_GENERATE_H
#define AG_FUZZ_GENERATE_H

#include <math.h>
#include <string.h>

#include "recipe.h"

enum { BATCH = 64 }; /* the declared batch: the largest the oracles bind */

typedef struct range {
    double lo, hi;
} range;

typedef struct gen {
    uint64_t rng;
    const fz_gen_opts *o;
    fz_model *m;
    fz_builder b;
    range r[FZ_MAX_STEPS];
    bool grad[FZ_MAX_STEPS]; /* a gradient flows into it from a parameter or a grad input */
    int nparams, ninputs;
    int x, y;       /* data-shaped: the two inputs */
    bool with_loss; /* making the loss: it may add parameters past the actions' 8 */
    bool failed;
    char *err;
    size_t len;
} gen;

typedef struct want {
    unsigned dtypes; /* bit 1 << ag_dtype */
    int min_rank, max_rank;
    bool positive;         /* range within [0.05, 1e3] */
    bool nonzero;          /* range excludes [-0.05, 0.05] */
    double max_abs;        /* 0: 1e4 */
    bool grad;             /* carries a gradient */
    bool no_n;             /* no batch axis */
    const ir_shape *bcast; /* broadcasts with this shape, into it */
} want;

#define F32 (1u << AG_F32)
#define I32 (1u << AG_I32)
#define U8 (1u << AG_U8)
#define BOOL (1u << AG_BOOL)
#define NUM (F32 | I32)
#define ANY (F32 | I32 | U8 | BOOL)

/* ---- randomness (splitmix64) ---- */

static inline uint64_t next(gen *G) { return fz_mix64(&G->rng); }
static inline int rnd(gen *G, int n) { return n <= 1 ? 0 : (int)(next(G) % (uint64_t)n); }
static inline double uniform(gen *G) { return (double)(next(G) >> 11) * 0x1p-53; }
static inline bool chance(gen *G, double p) { return uniform(G) < p; }
static inline int between(gen *G, int lo, int hi) { return lo + rnd(G, hi - lo + 1); }
/* a short float that prints exactly */
static inline double pick_number(gen *G, double lo, double hi)
{
    return round((lo + (hi - lo) * uniform(G)) * 64) / 64;
}

/* ---- the values ---- */

static inline const ir_node *nd(const gen *G, int k) { return &G->b.g->node[G->b.v[k].id]; }
static inline ir_shape shape(const gen *G, int k) { return nd(G, k)->shape; }
static inline ag_dtype dtype(const gen *G, int k) { return nd(G, k)->dtype; }
static inline int rank(const gen *G, int k) { return nd(G, k)->shape.rank; }
static inline double maxabs(range r) { return fmax(fabs(r.lo), fabs(r.hi)); }
static inline bool has_n(const ir_shape *s)
{
    for (int i = 0; i < s->rank; i++)
        if (s->dim[i] == AG_N)
            return true;
    return false;
}
static inline int64_t extent(int64_t d) { return d == AG_N ? BATCH : d; }
static inline int64_t numel_item(const ir_shape *s) /* elements per batch item */
{
    int64_t e = 1;
    for (int i = 0; i < s->rank; i++)
        e *= s->dim[i] == AG_N ? 1 : s->dim[i];
    return e;
}
static inline int64_t numel(const ir_shape *s) { return numel_item(s) * (has_n(s) ? BATCH : 1); }

static inline fz_step step_of(fz_kind k)
{
    fz_step s;
    memset(&s, 0, sizeof s);
    s.kind = k;
    return s;
}
static inline fz_arg A(int k) { return (fz_arg){k, 0}; }
static inline fz_arg IMM(double x) { return (fz_arg){-1, x}; }
static inline range arg_range(const gen *G, fz_arg a) { return a.step < 0 ? (range){a.imm, a.imm} : G->r[a.step]; }
static inline bool arg_grad(const gen *G, fz_arg a) { return a.step >= 0 && G->grad[a.step]; }

static inline want of_types(unsigned dtypes) { return (want){.dtypes = dtypes, .min_rank = 0, .max_rank = 4}; }

/* ---- generate.c: values ---- */

int gen_add(gen *G, fz_step s);
int gen_pick(gen *G, const want *w);
int gen_new_param(gen *G, ag_dims dims);
int gen_new_input(gen *G, ag_dtype t, ag_dims dims);
int64_t gen_small_dim(gen *G);
ag_dims gen_dims_of(const ir_shape *s);
ag_dims gen_param_dims_for(gen *G, const ir_shape *s);
int gen_unary(gen *G, ir_op op, int k);
int gen_binary(gen *G, ir_op op, fz_arg a, fz_arg b);
int gen_bounded(gen *G, int k, double limit);
int gen_positive(gen *G, int k);
int gen_f32_value(gen *G, want w);
fz_arg gen_second(gen *G, int k, ag_dtype t, want w);

/* ---- generate_actions.c: actions, each adding one builder call; false if it could not ---- */

void gen_random_action(gen *G);
int gen_logits(gen *G);
bool gen_act_cross_entropy(gen *G);
bool gen_act_source(gen *G);

#endif
