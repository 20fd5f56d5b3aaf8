/* Lowering the window ops (conv2d, pooling and their gradients): a runtime call each
 * (runtime/window.h), on contiguous NCHW values; a convolution's call unfolds one sample at a
 * time and multiplies it by sgemm, its chunks' columns in the group's scratch. */
#include "interp.h" /* ir_window_of */
#include "lower_internal.h"

/* A window op's batch: N or a number */
static cg_dim batch_of(const ir_shape *s) { return s->dim[0] == AG_N ? (cg_dim){0, 1} : (cg_dim){s->dim[0], 0}; }

static void window_call(lowering *L, group *G, ir_op op, const rt_window *w, cg_dim batch, int nargs, const view *arg)
{
    cg_call *c = &lo_add_step(L, CG_CALL, G->node)->call;
    c->op = op;
    c->win = *w;
    c->rows = batch, c->len = c->inner = (cg_dim){1, 0};
    for (int k = 0; k < nargs; k++)
        c->arg[c->nargs++] = lo_access_of(&arg[k]);
}

void lo_window(lowering *L, group *G, int32_t b)
{
    const ir_node *n = &G->body->node[b];
    /* the first operand is batched in every window op */
    const ir_shape *in = &G->body->node[n->in[0]].shape, *in2 = n->nin > 1 ? &G->body->node[n->in[1]].shape : NULL;
    rt_window w = ir_window_of(n, in, in2);
    bool conv = ir_op_is_conv(n->op);
    view arg[4];
    for (int k = 0; k < n->nin; k++)
        arg[k] = lo_contiguous_view(L, G, n->in[k]);
    lo_close_loop(L, G);
    arg[n->nin] = G->val[b] = lo_home_of(L, G, b);
    if (conv) { /* the chunks' columns (and weight gradients' parts) */
        ir_shape ws = {1, {rt_conv2d_workspace(&w)}};
        arg[n->nin + 1] = lo_contiguous(lo_scratch_buffer(L, &ws, AG_F32), &ws);
    }
    window_call(L, G, n->op, &w, batch_of(in), n->nin + 1 + conv, arg);
}
