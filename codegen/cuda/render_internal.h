/* What the files of the CUDA renderer share (render.h is the outside's view):
 *   render.c       failures and strings, types, literals, the op table's printers, buffers,
 *                  and the program: its steps, the merged one-block kernels, the plan;
 *   render_loop.c  CG_LOOP steps (elementwise, 4 a thread, reductions);
 *   render_gemm.c  CG_GEMM steps: tiled matmuls, split K, and the next step as an epilogue;
 *   render_call.c  CG_CALL steps (runtime routines), softmax_ce with its gradient in one
 *                  pass, and the device runtime's own kernels;
 *   render_conv.c  conv2d's call as an implicit GEMM.
 * Names here carry rd_: they link into aotgrad beside the LLVM backend's. */
#ifndef AG_CODEGEN_CUDA_RENDER_INTERNAL_H
#define AG_CODEGEN_CUDA_RENDER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fail.h"
#include "render.h"

typedef struct rd {
    FILE *f;
    const cg_program *p;
    char *err;
    size_t len;
    bool failed;
    bool single;  /* the compute type of the op being printed: float, else double */
    char **texts; /* every string printed into, freed at the end */
    int ntexts, captexts;
    int *ce_pair;          /* per step: a softmax_ce and the softmax_ce_grad computed with it, -1 (pair_ce) */
    int64_t scratch_bytes; /* of ag_dev_args.scratch, the most a kernel uses (split-K matmuls) */
    int step;              /* the step being rendered */
    int *merge_run;        /* per step: the merged kernel (1, 2, ...) it is a device function of, 0: none */
    int64_t *shared;       /* per step: the static shared memory its function declares, bytes */
} rd;

/* ---- render.c: strings, types, the op table, buffers ---- */

/* the first failure's message into R->err (rt_fail); later ones are dropped */
#define rd_fail(R, ...) ((void)((R)->failed || ((R)->failed = true, rt_fail((R)->err, (R)->len, __VA_ARGS__))))
/* a string that lives until the end of the rendering */
const char *rd_tx(rd *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *rd_ctype(ag_dtype t);
int64_t rd_esize(ag_dtype t);
const char *rd_real_lit(rd *R, double v, bool single);
const char *rd_lit(rd *R, double v, ag_dtype t);
const char *rd_cvt(rd *R, const char *x, ag_dtype from, ag_dtype to);

/* an elementwise op's scalar form as CUDA C over operands a, b, c (IR_OPS's EW rows) */
typedef const char *rd_ew_printer(rd *R, const char *a, const char *b, const char *c);
typedef struct rd_ew {
    rd_ew_printer *print; /* NULL: not elementwise */
    int arity;
} rd_ew;
extern const rd_ew rd_ew_table[IR_OP_COUNT];

void rd_kernel_head(rd *R, const char *name);
const char *rd_dim(rd *R, cg_dim d);
void rd_declare_buffers(rd *R, const bool *used);
bool rd_check_buffer(rd *R, int32_t b, const char *what, int k);
const char *rd_at(rd *R, const cg_access *a, int rank, const char *const *idx);

/* ---- render_loop.c ---- */

void rd_print_loads(rd *R, const cg_loop *l, const char *const *idx, const char *ind, const char *const *given);
void rd_print_exprs(rd *R, const cg_loop *l, const char *const *idx, const char *ind, int lane);
void rd_print_stores(rd *R, const cg_loop *l, const char *const *idx, const char *ind);
bool rd_loop_valid(rd *R, const cg_loop *l, bool *used);
void rd_render_loop(rd *R, const cg_loop *l, const char *name, cg_cuda_launch *launch);

/* ---- render_gemm.c ---- */

void rd_render_gemm(rd *R, const cg_gemm *g, const cg_loop *epi, const bool *is_c, bool write_c, const char *name,
                    cg_cuda_launch *launch);
bool rd_epilogue_fits(const rd *R, const cg_step *mm, const cg_step *next, bool *is_c, bool *write_c);

/* ---- render_call.c ---- */

void rd_render_call(rd *R, const cg_call *c, const char *name, cg_cuda_launch *launch, int step);
void rd_pair_ce(rd *R);
/* A window call's geometry as constants of its kernel: C, H, W, OH, OW, KH, KW, SH, SW, PH,
 * PW, DH, DW, O, G (groups), CG, OG (channels a group) and L (pixels of an output plane) */
void rd_window_constants(rd *R, const rt_window *w);

/* ---- render_conv.c ---- */

/* conv2d's call, after the kernel's head (buffers, outer, len, inner): an implicit GEMM */
void rd_render_conv(rd *R, const cg_call *c, cg_cuda_launch *launch);

/* The bytes a step touches in a region, affine in N, at N = 1 and N = CG_MAX_N (softmax_ce
 * pairs and matmul epilogues check with these that steps miss each other). */
typedef struct span {
    int64_t region;
    double lo[2], hi[2]; /* bytes at N = 1 and N = CG_MAX_N */
    bool known;
} span;

int64_t rd_region_of(const cg_buffer *b);
bool rd_overlap(span a, span b);
int rd_step_spans(const rd *R, const cg_step *st, span *out, bool *written, int cap);

#endif
