/* The interpreter's window ops (conv2d, pooling and their gradients; see interp.h).
 *
 * f64 mode is the oracle: each op written from its definition in double, the convolutions'
 * gradients as the adjoint sums (every product added into the element it came from). f32
 * mode computes as compiled code does, with the runtime's routines (runtime/window.h), so
 * the CPU backend is checked against the same arithmetic. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "window.h"

rt_window ir_window_of(const ir_node *n, const ir_shape *a, const ir_shape *b)
{
    const ir_window *w = &n->attr.win;
    const ir_shape *in = n->op == IR_conv2d_input_grad || n->op == IR_avg_pool2d_grad ? &n->shape : a;
    int64_t oc = n->op == IR_conv2d_weight_grad ? n->shape.dim[0] : ir_op_is_conv(n->op) ? b->dim[0] : 0;
    return (rt_window){in->dim[1],
                       in->dim[2],
                       in->dim[3],
                       ir_window_extent(in->dim[2], w, 0),
                       ir_window_extent(in->dim[3], w, 1),
                       w->kernel[0],
                       w->kernel[1],
                       w->stride[0],
                       w->stride[1],
                       w->pad[0],
                       w->pad[1],
                       w->dilation[0],
                       w->dilation[1],
                       oc,
                       oc ? w->groups : 0};
}

/* The input position of window element (i, j) of output (y, x), or false where it is in the
 * padding. */
static bool at(const rt_window *g, int64_t y, int64_t x, int64_t i, int64_t j, int64_t *pos)
{
    int64_t h = y * g->sh + i * g->dh - g->ph, w = x * g->sw + j * g->dw - g->pw;
    *pos = h * g->w + w;
    return h >= 0 && h < g->h && w >= 0 && w < g->w;
}

/* ---- f64: the definitions ---- */

/* conv2d, or (adjoint) one of its gradients: every (sample, output channel, output pixel,
 * input channel of its group, window element) in the input meets once. */
typedef enum { CONV, CONV_DX, CONV_DW } conv_use;

static void conv_f64(const rt_window *g, int64_t batch, int64_t out_channels, int groups, conv_use use, const double *x,
                     const double *w, const double *y, double *r)
{
    int64_t cg = g->c / groups, og = out_channels / groups, plane = g->h * g->w, L = g->oh * g->ow;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t o = 0; o < out_channels; o++)
            for (int64_t p = 0; p < L; p++) {
                int64_t yo = (b * out_channels + o) * L + p;
                double acc = 0;
                for (int64_t ci = 0; ci < cg; ci++)
                    for (int64_t i = 0; i < g->kh; i++)
                        for (int64_t j = 0; j < g->kw; j++) {
                            int64_t pos;
                            if (!at(g, p / g->ow, p % g->ow, i, j, &pos))
                                continue;
                            int64_t xi = (b * g->c + o / og * cg + ci) * plane + pos;
                            int64_t wi = ((o * cg + ci) * g->kh + i) * g->kw + j;
                            if (use == CONV)
                                acc += x[xi] * w[wi];
                            else if (use == CONV_DX)
                                r[xi] += y[yo] * w[wi];
                            else
                                r[wi] += x[xi] * y[yo];
                        }
                if (use == CONV)
                    r[yo] = acc;
            }
}

/* Max pooling's choice in a window, PyTorch's rule: the first in-bounds element to start,
 * then any greater one or any NaN; -1 for a window wholly in the padding. */
static int64_t argmax_f64(const rt_window *g, const double *plane, int64_t y, int64_t x)
{
    int64_t best = -1, pos;
    double m = -INFINITY;
    for (int64_t i = 0; i < g->kh; i++)
        for (int64_t j = 0; j < g->kw; j++)
            if (at(g, y, x, i, j, &pos)) {
                if (best < 0)
                    best = pos;
                if (plane[pos] > m || plane[pos] != plane[pos])
                    m = plane[pos], best = pos;
            }
    return best;
}

/* Pooling, or its gradient (dx gets dy routed through each window): one (sample, channel)
 * plane at a time. */
static void pool_f64(ir_op op, const rt_window *g, int64_t batch, const double *x, const double *dy, double *r)
{
    int64_t plane = g->h * g->w, L = g->oh * g->ow;
    double area = (double)(g->kh * g->kw);
    for (int64_t q = 0; q < batch * g->c; q++)
        for (int64_t p = 0; p < L; p++) {
            int64_t y = p / g->ow, xo = p % g->ow, pos;
            if (op == IR_max_pool2d || op == IR_max_pool2d_grad) {
                int64_t k = argmax_f64(g, x + q * plane, y, xo);
                if (op == IR_max_pool2d)
                    r[q * L + p] = k < 0 ? -INFINITY : x[q * plane + k];
                else if (k >= 0)
                    r[q * plane + k] += dy[q * L + p];
                continue;
            }
            double acc = 0;
            for (int64_t i = 0; i < g->kh; i++)
                for (int64_t j = 0; j < g->kw; j++)
                    if (at(g, y, xo, i, j, &pos)) {
                        if (op == IR_avg_pool2d)
                            acc += x[q * plane + pos];
                        else
                            r[q * plane + pos] += dy[q * L + p] / area;
                    }
            if (op == IR_avg_pool2d)
                r[q * L + p] = acc / area;
        }
}

/* ---- f32: as compiled code ---- */

static bool conv_f32(const ir_node *n, const rt_window *g, int64_t batch, const float *a, const float *b, float *r)
{
    float *ws = malloc(sizeof *ws * (size_t)rt_conv2d_workspace(g));
    if (!ws)
        return false;
    if (n->op == IR_conv2d)
        rt_conv2d(a, b, r, batch, g, ws, NULL);
    else if (n->op == IR_conv2d_input_grad)
        rt_conv2d_input_grad(a, b, r, batch, g, ws, NULL);
    else
        rt_conv2d_weight_grad(a, b, r, NULL, batch, g, ws, NULL);
    free(ws);
    return true;
}

bool ir_eval_window(const ir_node *n, const ir_tensor *v, ir_tensor *out)
{
    const ir_tensor *a = &v[n->in[0]], *b = n->nin > 1 ? &v[n->in[1]] : NULL;
    rt_window g = ir_window_of(n, &a->shape, b ? &b->shape : NULL);
    int64_t oc = g.o, batch = a->shape.dim[0]; /* every window op's first operand is batched */
    if (out->dtype == AG_F64) {
        double *r = out->data;
        switch (n->op) {
        case IR_conv2d: conv_f64(&g, batch, oc, n->attr.win.groups, CONV, a->data, b->data, NULL, r); break;
        case IR_conv2d_input_grad:
            conv_f64(&g, batch, oc, n->attr.win.groups, CONV_DX, NULL, b->data, a->data, r);
            break;
        case IR_conv2d_weight_grad:
            conv_f64(&g, batch, oc, n->attr.win.groups, CONV_DW, a->data, NULL, b->data, r);
            break;
        case IR_max_pool2d_grad: pool_f64(n->op, &g, batch, a->data, b->data, r); break;
        case IR_avg_pool2d_grad: pool_f64(n->op, &g, batch, NULL, a->data, r); break;
        default: pool_f64(n->op, &g, batch, a->data, NULL, r); break;
        }
        return true;
    }
    float *r = out->data;
    switch (n->op) {
    case IR_conv2d:
    case IR_conv2d_input_grad:
    case IR_conv2d_weight_grad: return conv_f32(n, &g, batch, a->data, b->data, r);
    case IR_max_pool2d: rt_max_pool2d(a->data, r, batch, &g, NULL); return true;
    case IR_max_pool2d_grad: rt_max_pool2d_grad(a->data, b->data, r, batch, &g, NULL); return true;
    case IR_avg_pool2d: rt_avg_pool2d(a->data, r, batch, &g, NULL); return true;
    case IR_avg_pool2d_grad: rt_avg_pool2d_grad(a->data, r, batch, &g, NULL); return true;
    default: return false;
    }
}

int64_t ir_conv_workspace_bytes(const ir_graph *g, int32_t id)
{
    const ir_node *n = &g->node[id];
    if (!ir_op_is_conv(n->op))
        return 0;
    rt_window w = ir_window_of(n, &g->node[n->in[0]].shape, &g->node[n->in[1]].shape);
    return (int64_t)sizeof(float) * rt_conv2d_workspace(&w);
}
