/* The kernel IR: what codegen/lower.c makes of a planned, fused graph, and what both
 * backends render (codegen/llvm/ as LLVM IR, codegen/cuda/ as CUDA C). It knows buffers,
 * index spaces and scalar expressions, not models.
 *
 * A program is the train step (or forward) as a list of steps in schedule order:
 *   CG_LOOP  a loop nest over an index space: loads with strides (0 where broadcast), a
 *            scalar body in the op table's elementwise ops, stores; optionally a reduction
 *            over some axes (the stored values are sums or maxima over them);
 *   CG_GEMM  a cblas_sgemm call with transpose flags, alpha and beta;
 *   CG_CALL  a runtime routine over whole tensors, for the ops that are not loops of
 *            independent elements (softmax and cross-entropy rows, argmax, cumsum, dropout,
 *            pooling, and a convolution's products, sample by sample).
 * Every extent, stride and offset is affine in the batch N: k + n*N. */
#ifndef AG_CODEGEN_KERNEL_H
#define AG_CODEGEN_KERNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "args.h"
#include "compiled.h" /* rt_arena_piece, rt_arena_bytes */
#include "ir.h"
#include "window.h" /* rt_window */

typedef struct cg_dim {
    int64_t k, n; /* the value k + n*N */
} cg_dim;

/* Where a buffer lives. Arena and parameter offsets come from the memory plan and the
 * parameter layout; scratch is the program's own workspace for values inside a kernel. */
typedef enum cg_region {
    CG_ARENA,  /* the activations arena: offset in bytes (affine in N) */
    CG_PARAMS, /* the parameters: offset in bytes */
    CG_INPUT,  /* the step's argument number `index` (x, y, lr, wd): caller-owned */
    CG_OUTPUT, /* the step's output number `index` (loss, metrics): caller-owned */
} cg_region;

typedef struct cg_buffer {
    cg_region region;
    int32_t index;  /* CG_INPUT / CG_OUTPUT: which one */
    cg_dim offset;  /* bytes */
    ag_dtype dtype; /* the element type stored */
} cg_buffer;

/* One array access of a loop: element (i0..i{rank-1}) is at offset + sum(i_k * stride_k),
 * in elements. */
typedef struct cg_access {
    int32_t buffer; /* index into the program's buffers */
    cg_dim offset;
    cg_dim stride[IR_MAX_RANK];
} cg_access;

typedef enum cg_expr_kind {
    CG_E_LOAD,  /* loads[load] at the current index, converted to the expression's dtype */
    CG_E_CONST, /* value */
    CG_E_INDEX, /* the loop index along axis, as a value (one_hot compares with it) */
    CG_E_OP,    /* an elementwise op of the op table over earlier expressions a, b, c */
} cg_expr_kind;

typedef struct cg_expr {
    cg_expr_kind kind;
    ag_dtype dtype; /* of the value: f32, i32, u8 or bool */
    ir_op op;       /* CG_E_OP: its scalar form is the op table's */
    int32_t a, b, c;
    int32_t load; /* CG_E_LOAD */
    int32_t axis; /* CG_E_INDEX */
    double value; /* CG_E_CONST */
} cg_expr;

#define CG_MAX_LOADS 16
#define CG_MAX_EXPRS 96
#define CG_MAX_STORES 8

typedef struct cg_store {
    int32_t expr; /* the value stored */
    cg_access at; /* with stride 0 on reduced axes */
} cg_store;

typedef struct cg_loop {
    int rank;
    cg_dim extent[IR_MAX_RANK];
    uint8_t reduce; /* bit k: axis k is reduced; the stores accumulate over it */
    ir_op combine;  /* IR_sum or IR_max when reduce != 0 */
    int nloads;
    cg_access load[CG_MAX_LOADS];
    int nexprs;
    cg_expr expr[CG_MAX_EXPRS];
    int nstores;
    cg_store store[CG_MAX_STORES];
} cg_loop;

/* C = alpha * op(A) op(B) + beta * C, row major; alpha and beta as expressions of scalars
 * read from buffers (the SGD update riding on a weight gradient: alpha = -lr,
 * beta = 1 - lr*wd). */
typedef struct cg_gemm {
    bool ta, tb;
    cg_dim m, n, k;
    cg_access a, b, c; /* only offsets are used; leading dimensions follow from m, n, k */
    int nexprs;        /* scalar expressions (loads at index 0) for alpha and beta */
    cg_expr expr[16];
    int nloads;
    cg_access load[4];
    int32_t alpha, beta; /* expression indices */
} cg_gemm;

/* A runtime routine (runtime/rt_ops.h) over whole tensors. */
typedef struct cg_call {
    ir_op op; /* softmax, log_softmax, softmax_ce, softmax_ce_grad, argmax, cumsum,
                          dropout, max (a row maximum), ...: the node it computes */
    int32_t nargs;
    cg_access arg[5]; /* operands then the result, contiguous row-major (a convolution's:
                         then its workspace; the weight gradient's: then the bias gradient) */
    cg_dim rows, len; /* the shape as rows of len along the op's axis (inner: after it) */
    cg_dim inner;
    double p;       /* dropout */
    int32_t site;   /* dropout */
    int32_t bucket; /* allreduce: the bucket's index in the program (rows: its floats) */
    bool wait;      /* allreduce: wait for the bucket's sum (else start it) */
    rt_window win;  /* the window ops: rows is the batch */
} cg_call;

typedef enum cg_step_kind { CG_LOOP, CG_GEMM, CG_CALL } cg_step_kind;

typedef struct cg_step {
    cg_step_kind kind;
    int32_t node;  /* the graph node it computes (for names, profiles and errors) */
    char name[32]; /* the kernel's name in the fused IR, k3 for @k3 (v12 for a plain node %12),
                      _2, _3 after it for its second and later steps: the name of the
                      step's function in the .ll, .s and .cu, and in bench's table */
    int32_t line;  /* the model line of its node (0: none), in program.file */
    int nlines;
    int32_t lines[4]; /* the model lines its ops came from, ascending (the first 4) */
    union {
        cg_loop loop;
        cg_gemm gemm;
        cg_call call;
    };
} cg_step;

/* What the generated entry point of a program takes: void NAME(const cg_args *a). A
 * buffer's address is its region's base plus offset.k + offset.n * batch bytes: the arena
 * and the parameters for CG_ARENA and CG_PARAMS, inputs[index] and outputs[index] for the
 * caller's tensors. */
typedef ag_args cg_args; /* runtime/args.h: the contract, defined once */

/* A parameter's place in the parameter region, as the generated header documents it. */
typedef struct cg_param {
    const char *name; /* the graph's (lives as long as the graph) */
    int32_t node;     /* its node in the graph */
    int64_t offset, bytes;
} cg_param;

typedef struct cg_program {
    const char *name; /* the graph's: entry points are NAME_train_step, NAME_forward */
    const char *file; /* the model file the steps' lines are in, or NULL (lives as long as the graph) */
    int nbuffers;
    cg_buffer *buffers;
    int nsteps;
    cg_step *steps;
    int narena;
    rt_arena_piece arena[IR_ARENA_PIECES]; /* the arena at N: rt_arena_bytes(arena, narena, N) */
    int64_t param_bytes;
    int ninputs, noutputs;
    int32_t *output_buffer; /* per graph output: the buffer holding it after a run */
    int nparams;
    cg_param *params;    /* in graph order */
    int32_t *input_node; /* per input argument: its node in the graph */
    int64_t batch;       /* the batch the memory plan was laid out for, and choices tuned for
                            (it holds for any N up to CG_MAX_N) */
} cg_program;

/* Step s's name (cg_step.name), or s<s> for a step made without one (a test's program). */
static inline const char *cg_step_name(const cg_program *p, int s, char *buf, size_t len)
{
    if (p->steps[s].name[0])
        return p->steps[s].name;
    snprintf(buf, len, "s%d", s);
    return buf;
}

/* The largest batch a program runs at: what the analyses that must hold at every N (an
 * access missing another's bytes) check up to, and what the binaries accept. */
#define CG_MAX_N AG_MAX_BATCH

#endif
