/* Lowering the window ops (conv2d, pooling and their gradients): a runtime call each
 * (runtime/window.h), on contiguous NCHW values; a convolution's call unfolds one sample at a
 * time and multiplies it by sgemm, its chunks' columns in the group's scratch. The weight
 * gradient's call sums the bias gradient too, where the group sums the same dy over all but
 * its channels (the sample's dy is in the cache then). */
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
    view arg[5];
    for (int k = 0; k < n->nin; k++)
        arg[k] = lo_contiguous_view(L, G, n->in[k]);
    lo_close_loop(L, G);
    arg[n->nin] = G->val[b] = lo_home_of(L, G, b);
    if (conv) { /* the chunks' columns (and weight gradients' parts) */
        ir_shape ws = {1, {rt_conv2d_workspace(&w)}};
        arg[n->nin + 1] = lo_contiguous(lo_scratch_buffer(L, &ws, AG_F32), &ws);
    }
    bool dw = n->op == IR_conv2d_weight_grad;
    if (dw) { /* the bias gradient: the group's sum node's home, or scratch nobody reads */
        ir_shape o = {1, {w.o}};
        int32_t s = G->bias_sum[b];
        arg[n->nin + 2] = s >= 0 ? G->val[s] : lo_contiguous(lo_scratch_buffer(L, &o, AG_F32), &o);
    }
    window_call(L, G, n->op, &w, batch_of(in), n->nin + 1 + conv + dw, arg);
}

/* Whether every reader of v between it and node c is a reshape (a view of v's contiguous
 * home) whose readers are after c too: then no step before c's call reads v. */
static bool read_after(const ir_graph *body, int32_t v, int32_t c)
{
    for (int32_t u = v + 1; u < c; u++) {
        const ir_node *n = &body->node[u];
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] == v && (n->op != IR_reshape || !read_after(body, u, c)))
                return false;
    }
    return true;
}

bool lo_bias_sum(lowering *L, group *G, int32_t b)
{
    const ir_graph *body = G->body;
    const ir_node *n = &body->node[b];
    int32_t dy = n->in[0];
    const ir_node *d = &body->node[dy];
    /* f32 [n, o, h, w] summed over n, h and w: axes 0, 2, 3 */
    if (n->op != IR_sum || n->dtype != AG_F32 || d->dtype != AG_F32 || d->shape.rank != 4 || n->attr.axes != 0xd)
        return false;
    for (int32_t c = b + 1; c < body->n; c++) {
        const ir_node *w = &body->node[c];
        if (w->op == IR_conv2d_weight_grad && w->in[1] == dy && G->bias_sum[c] < 0 && read_after(body, b, c)) {
            G->bias_sum[c] = b;
            G->val[b] = lo_home_of(L, G, b);
            return true;
        }
    }
    return false;
}
