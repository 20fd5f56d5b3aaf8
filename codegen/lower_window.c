/* Lowering the window ops (conv2d, pooling and their gradients): pooling as runtime calls
 * (runtime/window.h); a convolution as sgemm calls, one a channel group, around its input's
 * unfolding (im2col) or its columns' folding (col2im), the unfolded columns in the group's
 * scratch. */
#include "interp.h" /* ir_window_geometry */
#include "lower_internal.h"

/* ---- sliding windows: runtime calls, and a convolution as sgemm calls over the unfolded
 * input, one a channel group ---- */

/* A window op's batch, times k: k*N or k*B */
static cg_dim batch_times(const ir_shape *s, int64_t k)
{
    return s->dim[0] == AG_N ? (cg_dim){0, k} : (cg_dim){s->dim[0] * k, 0};
}

/* v moved by d elements */
static view shifted(view v, cg_dim d)
{
    v.offset += d.k, v.noffset += d.n;
    return v;
}

/* A [B,O,OH,OW] value in the layout sgemm makes and reads: a matrix [O, B*OH*OW], each
 * channel's pixels of every sample in one row. */
static view channel_rows(int32_t buffer, const ir_shape *s)
{
    view v = {buffer, 0, 0, {0}, {0}, *s};
    int64_t pixels = s->dim[2] * s->dim[3];
    v.stride[0] = pixels, v.stride[2] = s->dim[3], v.stride[3] = 1;
    cg_dim rows = batch_times(s, pixels);
    v.stride[1] = rows.k, v.nstride[1] = rows.n;
    return v;
}

static void window_call(lowering *L, group *G, ir_op op, const rt_window *w, cg_dim batch, int nargs, const view *arg)
{
    cg_call *c = &lo_add_step(L, CG_CALL, G->node)->call;
    c->op = op;
    c->win = *w;
    c->rows = batch, c->len = c->inner = (cg_dim){1, 0};
    for (int k = 0; k < nargs; k++)
        c->arg[c->nargs++] = lo_access_of(&arg[k]);
}

/* K in parts where C is small and K long (rt_sgemm_split_k): a weight gradient's K is every
 * output pixel of the batch */
enum { SPLIT_C = 1024, SPLIT_K = 16384, KC = 4096 };

static void window_gemm(lowering *L, group *G, bool ta, bool tb, cg_dim m, cg_dim n, cg_dim k, const view *a,
                        const view *b, const view *c)
{
    cg_gemm *gm = &lo_add_step(L, CG_GEMM, G->node)->gemm;
    int64_t B = L->plan->batch > 0 ? L->plan->batch : 1;
    if ((m.k + m.n * B) * (n.k + n.n * B) <= SPLIT_C && k.k + k.n * B >= SPLIT_K)
        gm->kc = KC;
    gm->ta = ta, gm->tb = tb;
    gm->m = m, gm->n = n, gm->k = k;
    gm->a = lo_access_of(a), gm->b = lo_access_of(b), gm->c = lo_access_of(c);
    gm->expr[0] = (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 1};
    gm->expr[1] = (cg_expr){.kind = CG_E_CONST, .dtype = AG_F32, .value = 0};
    gm->nexprs = 2, gm->alpha = 0, gm->beta = 1;
}

/* conv2d: y = W cols, its value the product as it lies ([O, B*L], read through channel_rows'
 * strides by the epilogue or the copy home); conv2d_weight_grad: dW = dy cols^T;
 * conv2d_input_grad: cols = W^T dy, folded into dx. dy is first copied into channel rows. */
static void lower_conv(lowering *L, group *G, int32_t b, const ir_shape *in, const rt_window *w)
{
    const ir_node *n = &G->body->node[b];
    bool fwd = n->op == IR_conv2d, dw = n->op == IR_conv2d_weight_grad, dx = n->op == IR_conv2d_input_grad;
    view x = {.buffer = -1}, wv = {.buffer = -1}, dy = {.buffer = -1};
    if (!dx)
        x = lo_contiguous_view(L, G, n->in[0]);
    if (!dw)
        wv = lo_contiguous_view(L, G, n->in[1]);
    if (!fwd)
        dy = *lo_need_view(L, G, n->in[dx ? 0 : 1]);
    lo_close_loop(L, G);
    const ir_shape *ws = dw ? &n->shape : &wv.shape;
    int64_t groups = n->attr.win.groups, og = ws->dim[0] / groups, pixels = w->oh * w->ow;
    int64_t kg = w->c * w->kh * w->kw / groups;
    ir_shape ys = {4, {in->dim[0], ws->dim[0], w->oh, w->ow}}, cs = {3, {w->c * w->kh * w->kw, in->dim[0], pixels}};
    view cols = lo_contiguous(lo_scratch_buffer(L, &cs, AG_F32), &cs);
    view rows = channel_rows(lo_scratch_buffer(L, &ys, AG_F32), &ys);
    cg_dim bl = batch_times(in, pixels);
    if (!dx)
        window_call(L, G, n->op, w, batch_times(in, 1), 2, (view[]){x, cols});
    if (!fwd)
        lo_copy_into(L, G, &dy, &rows, &ys, AG_F32);
    G->val[b] = fwd ? rows : lo_home_of(L, G, b);
    for (int64_t k = 0; k < groups; k++) {
        view wk = shifted(dw ? G->val[b] : wv, (cg_dim){k * og * kg, 0});
        view ck = shifted(cols, (cg_dim){k * kg * bl.k, k * kg * bl.n});
        view rk = shifted(rows, (cg_dim){k * og * bl.k, k * og * bl.n});
        if (fwd)
            window_gemm(L, G, false, false, (cg_dim){og, 0}, bl, (cg_dim){kg, 0}, &wk, &ck, &rk);
        else if (dw)
            window_gemm(L, G, false, true, (cg_dim){og, 0}, (cg_dim){kg, 0}, bl, &rk, &ck, &wk);
        else
            window_gemm(L, G, true, false, (cg_dim){kg, 0}, bl, (cg_dim){og, 0}, &wk, &rk, &ck);
    }
    if (dx)
        window_call(L, G, n->op, w, batch_times(in, 1), 2, (view[]){cols, G->val[b]});
}

void lo_window(lowering *L, group *G, int32_t b)
{
    const ir_node *n = &G->body->node[b];
    /* the window's input: the first operand, or the gradient's own result */
    bool from_result = n->op == IR_conv2d_input_grad || n->op == IR_avg_pool2d_grad;
    const ir_shape in = from_result ? n->shape : G->body->node[n->in[0]].shape;
    rt_window w = ir_window_geometry(&n->attr.win, &in);
    if (n->op == IR_conv2d || n->op == IR_conv2d_input_grad || n->op == IR_conv2d_weight_grad) {
        lower_conv(L, G, b, &in, &w);
        return;
    }
    view arg[3];
    for (int k = 0; k < n->nin; k++)
        arg[k] = lo_contiguous_view(L, G, n->in[k]);
    lo_close_loop(L, G);
    arg[n->nin] = G->val[b] = lo_home_of(L, G, b);
    window_call(L, G, n->op, &w, batch_times(&in, 1), n->nin + 1, arg);
}
