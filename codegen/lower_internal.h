/* Lowering's parts shared by its files (codegen/lower.c and the window ops' lower_window.c):
 * the state of one lowering and of the group being lowered, and the helpers that make views,
 * steps and scratch buffers. Not part of the lowering's interface (lower.h). */
#ifndef AG_CODEGEN_LOWER_INTERNAL_H
#define AG_CODEGEN_LOWER_INTERNAL_H

#include "lower.h"

typedef struct view {
    int32_t buffer;              /* -1: not materialized */
    int64_t offset, noffset;     /* elements: offset + noffset * N (a slice of an axis before N's) */
    int64_t stride[IR_MAX_RANK]; /* elements, as k + n*N */
    int64_t nstride[IR_MAX_RANK];
    ir_shape shape;
} view;

typedef struct lo_collectives lo_collectives; /* lower_collective.c's */

typedef struct lowering {
    const ir_graph *g;
    const ir_plan *plan;
    cg_program *p;
    int cap_steps, cap_buffers;
    ir_affine fixed;                /* bytes at the arena's start for constant outputs */
    ir_affine scratch, scratch_max; /* bytes after those, reused by every group */
    int32_t plan_first, plan_end;   /* the buffers of the plan's values: above those, once
                                       the scratch's largest size is known */
    int32_t *outer;                 /* per node of g: its buffer (its value's home) */
    bool training;                  /* dropout on; off, it is the identity */
    char *err;
    size_t len;
    bool failed;
    lo_collectives *coll; /* a distributed build's buckets, or NULL */
} lowering;

typedef struct group {
    const ir_graph *body;
    view *val;     /* per body node: its materialized view */
    int32_t *expr; /* per body node: its expression in the open loop, -1 */
    bool *is_output;
    int32_t *users_left; /* readers not yet lowered */
    int32_t *home;       /* per body node: the outer buffer it must end in, -1 */
    int32_t *bias_sum;   /* per body node: the bias gradient a conv2d_weight_grad computes
                            beside it (a sum node lo_bias_sum took), -1 */
    cg_step *loop;       /* the open loop, or NULL */
    ir_shape space;
    int32_t node; /* the top-level node, for the steps */
} group;

cg_step *lo_add_step(lowering *L, cg_step_kind kind, int32_t node);
/* A contiguous view of a buffer holding a value of shape s. */
view lo_contiguous(int32_t buffer, const ir_shape *s);
/* Bytes of the group's scratch (after the plan's arena) for a t[s] value. */
int32_t lo_scratch_buffer(lowering *L, const ir_shape *s, ag_dtype t);
cg_access lo_access_of(const view *v);
/* Close the open loop: values still needed store to where they live. */
void lo_close_loop(lowering *L, group *G);
/* Body value b's view, materialized (the open loop closed first where it holds b). */
const view *lo_need_view(lowering *L, group *G, int32_t b);
/* b's value contiguous: its view, or a copy into scratch. */
view lo_contiguous_view(lowering *L, group *G, int32_t b);
/* The buffer body value b ends in: its outer home, or scratch. */
view lo_home_of(lowering *L, group *G, int32_t b);
/* A loop copying from into to, over shape. */
void lo_copy_into(lowering *L, group *G, const view *from, view *to, const ir_shape *shape, ag_dtype t);

/* The window ops (lower_window.c): a runtime call each. */
void lo_window(lowering *L, group *G, int32_t b);
/* Whether sum node b is a convolution's bias gradient, dy summed over all but its channels,
 * that a later conv2d_weight_grad of the group over the same dy computes beside dw (then b
 * is lowered: its home is where that call puts it). */
bool lo_bias_sum(lowering *L, group *G, int32_t b);

/* A distributed build's allreduce nodes (lower_collective.c): begin finds the buckets (false
 * with the message where the plan does not lay one out as a range); before a node is
 * lowered, the waits of the buckets it reads; after, the start of each bucket it completes;
 * at the end, the waits left. */
bool lo_collectives_begin(lowering *L);
void lo_collectives_before(lowering *L, int32_t i);
void lo_collectives_after(lowering *L, int32_t i);
void lo_collectives_end(lowering *L);

#endif
