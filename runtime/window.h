/* The runtime's 2-D sliding windows: convolution's unfolding (im2col) and its adjoint
 * (col2im), max and average pooling and their gradients, over NCHW f32 tensors with
 * PyTorch's geometry (stride, padding, dilation).
 *
 * Window position (i, j) of output (y, xo) reads input (y*sh + i*dh - ph, xo*sw + j*dw - pw);
 * a position outside [0, h) x [0, w) is padding: 0 for im2col, skipped by pooling. Strides,
 * dilations and kernel sizes are >= 1, paddings >= 0; batch 0 does nothing.
 *
 * Every sum and every maximum runs in a fixed order, in float, so the results are one set
 * of bits: with a pool (NULL runs inline) the work is split over whole (n, c) planes, never
 * inside one output's sum, and is the same for every thread count. No routine allocates. */
#ifndef RT_WINDOW_H
#define RT_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "pool.h"

/* The geometry of a 2-D window op over NCHW tensors (PyTorch's conventions). */
typedef struct rt_window {
    int64_t c, h, w; /* input channels, height, width */
    int64_t oh, ow;  /* output height, width: (h + 2*ph - dh*(kh-1) - 1)/sh + 1 */
    int64_t kh, kw;  /* window */
    int64_t sh, sw;  /* stride */
    int64_t ph, pw;  /* padding */
    int64_t dh, dw;  /* dilation */
    int64_t o;       /* a convolution's output channels (pooling: 0) */
    int64_t groups;  /* a convolution's channel groups (pooling: 0) */
} rt_window;
_Static_assert(sizeof(rt_window) == 15 * sizeof(int64_t), "generated code passes it as an i64 array");

/* x [batch, c, h, w] -> cols, the matrix [c*kh*kw rows, batch*oh*ow columns], row-major:
 * row (ci*kh + i)*kw + j, column (n*oh + y)*ow + xo holds x's element under window position
 * (i, j) of output (y, xo) of plane (n, ci), or 0 for padding. Every element is written. */
void rt_im2col(const float *x, float *cols, int64_t batch, const rt_window *g, rt_pool *pool);
/* The adjoint of rt_im2col: x [batch, c, h, w] is zeroed, then each element of cols that is
 * not padding is added into the x element it came from, in the order i, j, y, xo for each
 * plane (n, ci). */
void rt_col2im(const float *cols, float *x, int64_t batch, const rt_window *g, rt_pool *pool);

/* out [batch, c, oh, ow] = each window's maximum, PyTorch's rule: positions visited i then j,
 * padding skipped; starting from -inf at the first position in bounds, a value replaces the
 * maximum when it is greater or NaN (so a NaN propagates and the last NaN is the argmax). A
 * window wholly in the padding gives -inf. */
void rt_max_pool2d(const float *x, float *out, int64_t batch, const rt_window *g, rt_pool *pool);
/* dx [batch, c, h, w] is zeroed, then each output's dy, in ascending order of (n, c, y, xo), is
 * added at the argmax rt_max_pool2d finds in x (nothing for a window wholly in the padding). */
void rt_max_pool2d_grad(const float *x, const float *dy, float *dx, int64_t batch, const rt_window *g, rt_pool *pool);

/* out = (the window's values in bounds, summed i then j from 0.0f) / (float)(kh*kw): the
 * padding counts in the divisor (PyTorch's count_include_pad=True). */
void rt_avg_pool2d(const float *x, float *out, int64_t batch, const rt_window *g, rt_pool *pool);
/* dx is zeroed, then for each output in ascending order, q = dy / (float)(kh*kw) is added at
 * each of its window's positions in bounds, i then j. */
void rt_avg_pool2d_grad(const float *dy, float *dx, int64_t batch, const rt_window *g, rt_pool *pool);

/* ---- convolutions (runtime/conv.c): the products of conv2d, sample by sample ----
 * x [batch, c, h, w], w [o, c/groups, kh, kw], y [batch, o, oh, ow]. At stride 1 with small
 * planes each sample's input is padded and correlated directly (conv.c); else it is
 * unfolded (rt_im2col of one sample: [c*kh*kw, oh*ow], in the cache) and multiplied by one
 * sgemm a group, so no batch-wide columns are ever written: the batch is cut into
 * RT_CONV_CHUNKS chunks (by the batch alone, whatever the threads), each with its own
 * columns in ws, run over the pool (where a sample's products are large enough for OpenBLAS
 * to thread them, the chunks run in turn and share one sample's columns). The weight gradient sums each chunk's samples into the
 * chunk's part, then the parts in chunk order: the same bits for every thread count. */
enum { RT_CONV_CHUNKS = 8 };
/* The floats of ws the three need. */
int64_t rt_conv2d_workspace(const rt_window *g);
/* Whether rt_conv2d (use 0), its input gradient (1) or its weight gradient (2) takes the
 * direct path for g (conv.c: stride 1, padding within the taps' reach, small planes, and for
 * the weight gradient at most 400 taps a group) rather than im2col and sgemm. */
bool rt_conv2d_direct(const rt_window *g, int use);
/* y[n] = W cols(x[n]) */
void rt_conv2d(const float *x, const float *w, float *y, int64_t batch, const rt_window *g, float *ws, rt_pool *pool);
/* dx[n] = col2im(W^T dy[n]) */
void rt_conv2d_input_grad(const float *dy, const float *w, float *dx, int64_t batch, const rt_window *g, float *ws,
                          rt_pool *pool);
/* dw = sum over n of dy[n] cols(x[n])^T; and where db is not NULL the bias gradient
 * db[o] = the sum of dy[n, o] over n and the plane (each sample's plane summed in order,
 * into the chunk's part) */
void rt_conv2d_weight_grad(const float *x, const float *dy, float *dw, float *db, int64_t batch, const rt_window *g,
                           float *ws, rt_pool *pool);

#endif
