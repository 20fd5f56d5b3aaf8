/* CG_CALL steps as CUDA C: one thread a row (or a column of rows) in the runtime routine's
 * order of operations (runtime/ops.c), dropout one an element with the CPU's Philox words;
 * softmax_ce paired with its gradient (one pass over the row's exponentials) where the
 * bytes allow, found with the spans the steps touch; and the device runtime's own kernels. */
#include <math.h>

#include "render_internal.h"
#include "rt_ops.h"

/* ---- runtime routines ---- */

static const char *arg_ptr(rd *R, const cg_call *c, int k)
{
    return rd_tx(R, "(b%d + %s)", (int)c->arg[k].buffer, rd_dim(R, c->arg[k].offset));
}

/* dropout: one thread an element, kept where its Philox word is below the threshold */
static void render_dropout(rd *R, const cg_call *c, cg_cuda_launch *launch)
{
    double l0 = (double)c->len.k, l1 = (double)c->len.n, u0 = launch->units[0], u1 = launch->units[1];
    launch->units[0] = u0 * l0, launch->units[1] = u0 * l1 + u1 * l0, launch->units[2] = u1 * l1;
    /* p >= 1: the threshold is 0, nothing is kept (the scale is never used) */
    uint64_t threshold = !(c->p > 0) ? (uint64_t)1 << 32 : c->p >= 1 ? 0 : (uint64_t)floor((1 - c->p) * 4294967296.0);
    /* a rank's share starts at row0 of the global batch: its masks are those rows' (exec.c) */
    bool batched = c->rows.n || c->len.n || c->inner.n;
    fprintf(R->f,
            "    const float *x = %s;\n    float *out = %s;\n"
            "    const long long n = outer * len * inner, first = %s;\n"
            "    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;\n"
            "         e += (long long)gridDim.x * blockDim.x) {\n"
            "        const unsigned long long g = (unsigned long long)(first + e), b = g / 4,\n"
            "                                 st = a.pstep ? *a.pstep : a.step;\n"
            "        unsigned w[4] = {(unsigned)b, (unsigned)(b >> 32), (unsigned)st, (unsigned)(st >> 32)};\n"
            "        ag_philox(w, a.seed, %uu);\n"
            "        const bool keep = (unsigned long long)w[g %% 4] < %lluULL;\n"
            "        out[e] = keep ? x[e] * %s : 0.0f;\n"
            "    }\n}\n\n",
            arg_ptr(R, c, 0), arg_ptr(R, c, 1), batched ? "N > 0 ? a.row0 * (n / N) : 0LL" : "0LL", (unsigned)c->site,
            (unsigned long long)threshold, rd_real_lit(R, (double)(float)(1 / (1 - c->p)), true));
}

void rd_window_constants(rd *R, const rt_window *w)
{
    fprintf(R->f,
            "    const long long C = %lldLL, H = %lldLL, W = %lldLL, OH = %lldLL, OW = %lldLL, KH = %lldLL, KW = "
            "%lldLL;\n"
            "    const long long SH = %lldLL, SW = %lldLL, PH = %lldLL, PW = %lldLL, DH = %lldLL, DW = %lldLL;\n"
            "    const long long O = %lldLL, G = %lldLL, CG = C / G, OG = O / G, L = OH * OW;\n"
            "    (void)CG, (void)OG, (void)L, (void)OH;\n",
            (long long)w->c, (long long)w->h, (long long)w->w, (long long)w->oh, (long long)w->ow, (long long)w->kh,
            (long long)w->kw, (long long)w->sh, (long long)w->sw, (long long)w->ph, (long long)w->pw, (long long)w->dh,
            (long long)w->dw, (long long)w->o, (long long)(w->groups > 0 ? w->groups : 1));
}

/* The window ops (runtime/window.h) but conv2d (render_conv.c), one thread an element of
 * what they write: pooling an output; the pooling gradients an input element, gathering
 * from the outputs whose windows hold it in the order the CPU adds them (ascending
 * outputs); a convolution's gradients directly, an input element (the outputs and taps that
 * read it) or a weight (every sample's pixels; past the weights, a channel's bias gradient).
 * The geometry is in constants; outer is the batch. */
static void render_window(rd *R, const cg_call *c, cg_cuda_launch *launch)
{
    const rt_window *w = &c->win;
    bool gather = c->op == IR_conv2d_input_grad || c->op == IR_max_pool2d_grad || c->op == IR_avg_pool2d_grad;
    bool dw = c->op == IR_conv2d_weight_grad;
    double per = gather ? (double)(w->c * w->h * w->w) : dw ? 0 : (double)(w->c * w->oh * w->ow);
    launch->units[0] = (double)c->rows.k * per, launch->units[1] = (double)c->rows.n * per, launch->units[2] = 0;
    if (dw) /* the weights, then the bias gradient's: a fixed count */
        launch->units[0] = (double)(w->o * (w->c / w->groups) * w->kh * w->kw + w->o), launch->units[1] = 0;
    rd_window_constants(R, w);
    fprintf(R->f,
            "    const long long n_ = %s;\n"
            "    (void)len, (void)inner;\n"
            "    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n_;\n"
            "         e += (long long)gridDim.x * blockDim.x) {\n",
            dw       ? "O * CG * KH * KW + O"
            : gather ? "outer * C * H * W"
                     : "outer * C * L");
    /* max pooling's choice in the window of output (y, xo) of plane q: PyTorch's rule */
    const char *argmax =
        "            long long best = -1;\n            float m = -__uint_as_float(0x7f800000u);\n"
        "            for (long long i = 0; i < KH; i++)\n                for (long long j = 0; j < KW; j++) {\n"
        "                    const long long h = y * SH + i * DH - PH, x_ = xo * SW + j * DW - PW;\n"
        "                    if (h < 0 || h >= H || x_ < 0 || x_ >= W) continue;\n"
        "                    const float v = xp[h * W + x_];\n"
        "                    if (best < 0) best = h * W + x_;\n"
        "                    if (v > m || v != v) m = v, best = h * W + x_;\n                }\n";
    switch (c->op) {
    case IR_conv2d_weight_grad: /* a weight, or past them the bias gradient of a channel */
        fprintf(R->f,
                "        if (e >= O * CG * KH * KW) {\n            const long long o = e - O * CG * KH * KW;\n"
                "            float s = 0;\n"
                "            for (long long n = 0; n < outer; n++) {\n                float t = 0;\n"
                "                for (long long p = 0; p < L; p++) t += %s[(n * O + o) * L + p];\n"
                "                s += t;\n            }\n            %s[o] = s;\n            continue;\n        }\n",
                arg_ptr(R, c, 1), arg_ptr(R, c, 4));
        fprintf(
            R->f,
            "        const long long o = e / (CG * KH * KW), ci = e / (KH * KW) %% CG, i = e / KW %% KH, j = e %% KW;\n"
            "        const long long c_ = o / OG * CG + ci;\n        float s = 0;\n"
            "        for (long long n = 0; n < outer; n++)\n"
            "            for (long long p = 0; p < L; p++) {\n"
            "                const long long h = p / OW * SH + i * DH - PH, x_ = p %% OW * SW + j * DW - PW;\n"
            "                if (h < 0 || h >= H || x_ < 0 || x_ >= W) continue;\n"
            "                s += %s[((n * C + c_) * H + h) * W + x_] * %s[(n * O + o) * L + p];\n"
            "            }\n        %s[e] = s;\n",
            arg_ptr(R, c, 0), arg_ptr(R, c, 1), arg_ptr(R, c, 2));
        break;
    case IR_conv2d_input_grad:
    case IR_max_pool2d_grad:
    case IR_avg_pool2d_grad: {
        /* outputs (y, xo) over i, j descending: ascending outputs, as the CPU adds them */
        bool conv = c->op == IR_conv2d_input_grad, mx = c->op == IR_max_pool2d_grad;
        fprintf(R->f, "        const long long q = e / (H * W), h0 = e / W %% H, w0 = e %% W, n = q / C, ci = q %% C;\n"
                      "        float s = 0;\n        (void)n, (void)ci;\n"
                      "        for (long long i = KH - 1; i >= 0; i--) {\n"
                      "            const long long hy = h0 + PH - i * DH;\n"
                      "            if (hy < 0 || hy %% SH || hy / SH >= OH) continue;\n"
                      "            const long long y = hy / SH;\n"
                      "            for (long long j = KW - 1; j >= 0; j--) {\n"
                      "                const long long wx = w0 + PW - j * DW;\n"
                      "                if (wx < 0 || wx %% SW || wx / SW >= OW) continue;\n"
                      "                const long long xo = wx / SW;\n");
        if (conv)
            fprintf(R->f,
                    "                for (long long o = ci / CG * OG; o < (ci / CG + 1) * OG; o++)\n"
                    "                    s += %s[((n * O + o) * OH + y) * OW + xo] * %s[((o * CG + ci %% CG) * KH + i) "
                    "* KW + j];\n",
                    arg_ptr(R, c, 0), arg_ptr(R, c, 1));
        else if (mx)
            fprintf(R->f,
                    "                const float *xp = %s + q * H * W;\n%s"
                    "                if (best == h0 * W + w0) s += %s[q * L + y * OW + xo];\n",
                    arg_ptr(R, c, 0), argmax, arg_ptr(R, c, 1));
        else
            fprintf(R->f, "                s += %s[q * L + y * OW + xo] / (float)(KH * KW);\n", arg_ptr(R, c, 0));
        fprintf(R->f, "            }\n        }\n        %s[e] = s;\n", arg_ptr(R, c, mx ? 2 : conv ? 2 : 1));
        break;
    }
    default: /* pooling: an output */
        fprintf(R->f,
                "        const long long q = e / L, y = e %% L / OW, xo = e %% OW;\n"
                "        const float *xp = %s + q * H * W;\n",
                arg_ptr(R, c, 0));
        if (c->op == IR_max_pool2d)
            fprintf(R->f, "        {\n%s            %s[e] = m;\n        }\n", argmax, arg_ptr(R, c, 1));
        else
            fprintf(R->f,
                    "        float s = 0;\n"
                    "        for (long long i = 0; i < KH; i++)\n            for (long long j = 0; j < KW; j++) {\n"
                    "                const long long h = y * SH + i * DH - PH, x_ = xo * SW + j * DW - PW;\n"
                    "                if (h >= 0 && h < H && x_ >= 0 && x_ < W) s += xp[h * W + x_];\n"
                    "            }\n        %s[e] = s / (float)(KH * KW);\n",
                    arg_ptr(R, c, 1));
    }
    fprintf(R->f, "    }\n}\n\n");
}

/* softmax_ce or its gradient, a row a thread; with its pair (pair_ce) the loss leaves
 * e / s (minus 1 at the label) in the gradient's output, and the gradient scales that */
static void print_softmax_ce(rd *R, const cg_call *c, const cg_call *with, int step)
{
    bool scale_only = c->op == IR_softmax_ce_grad && R->ce_pair[step] >= 0;
    bool grad = c->op == IR_softmax_ce_grad;
    if (with) { /* the loss, and e / s (minus 1 at the label) where the gradient goes */
        fprintf(R->f,
                "        /* softmax_ce with its gradient (step %d): one pass over the row's e^(x - m) */\n"
                "        const float *x = %s + o * len;\n        const int k = %s[o];\n"
                "        float *g = %s + o * len;\n"
                "        if (k < 0 || k >= len) {\n            %s[o] = 0;\n            continue;\n        }\n"
                "        float m = -__uint_as_float(0x7f800000u), s = 0;\n"
                "        for (long long j = 0; j < len; j++) m = x[j] > m ? x[j] : m;\n"
                "        for (long long j = 0; j < len; j++) {\n"
                "            const float e = expf(x[j] - m);\n            g[j] = e;\n            s += e;\n        }\n"
                "        %s[o] = logf(s) - (x[k] - m);\n"
                "        const float ek = g[k];\n"
                "        for (long long j = 0; j < len; j++) g[j] = g[j] / s;\n"
                "        g[k] = ek / s - 1.0f;\n",
                R->ce_pair[step], arg_ptr(R, c, 0), arg_ptr(R, c, 1),
                rd_tx(R, "(b%d + %s)", (int)with->arg[3].buffer, rd_dim(R, with->arg[3].offset)), arg_ptr(R, c, 2),
                arg_ptr(R, c, 2));
        return;
    }
    if (scale_only) { /* step %d left e / s - (j == k) here: times the row's d */
        fprintf(R->f,
                "        /* the gradient of softmax_ce step %d, which left e / s - (j == label) here */\n"
                "        const int k = %s[o];\n        const float d = %s[o];\n        float *g = %s + o * len;\n"
                "        const bool valid = k >= 0 && k < len;\n"
                "        for (long long j = 0; j < len; j++) g[j] = valid ? g[j] * d : 0.0f;\n",
                R->ce_pair[step], arg_ptr(R, c, 1), arg_ptr(R, c, 2), arg_ptr(R, c, 3));
        return;
    }
    fprintf(R->f, "        const float *x = %s + o * len;\n        const int k = %s[o];\n", arg_ptr(R, c, 0),
            arg_ptr(R, c, 1));
    if (grad)
        fprintf(R->f, "        const float d = %s[o];\n        float *g = %s + o * len;\n", arg_ptr(R, c, 2),
                arg_ptr(R, c, 3));
    fprintf(R->f,
            "        if (k < 0 || k >= len) {\n%s"
            "            continue;\n        }\n"
            "        float m = -__uint_as_float(0x7f800000u), s = 0;\n"
            "        for (long long j = 0; j < len; j++) m = x[j] > m ? x[j] : m;\n",
            grad ? "            for (long long j = 0; j < len; j++) g[j] = 0;\n"
                 : rd_tx(R, "            %s[o] = 0;\n", arg_ptr(R, c, 2)));
    if (grad)
        fprintf(R->f, "        for (long long j = 0; j < len; j++) g[j] = x[j] - m;\n"
                      "        for (long long j = 0; j < len; j++) {\n"
                      "            const float e = expf(g[j]);\n            g[j] = e;\n            s += e;\n        }\n"
                      "        const float ek = g[k];\n"
                      "        for (long long j = 0; j < len; j++) g[j] = g[j] / s * d;\n"
                      "        g[k] = (ek / s - 1.0f) * d;\n");
    else
        fprintf(R->f,
                "        for (long long j = 0; j < len; j++) s += expf(x[j] - m);\n"
                "        %s[o] = logf(s) - (x[k] - m);\n",
                arg_ptr(R, c, 2));
}

void rd_render_call(rd *R, const cg_call *c, const char *name, cg_cuda_launch *launch, int step)
{
    /* with its gradient (pair_ce): the gradient's call, whose output this kernel fills */
    const cg_call *with = c->op == IR_softmax_ce && R->ce_pair[step] >= 0 ? &R->p->steps[R->ce_pair[step]].call : NULL;
    static const int nargs[IR_OP_COUNT] = {/* runtime/rt_ops.h's table: the ops with a routine */
#define NARGS(op, f32, i32, sig, n) [IR_##op] = n,
                                           RT_ROUTINES(NARGS)
#undef NARGS
    };
    if ((unsigned)c->op >= IR_OP_COUNT || !nargs[c->op] || c->nargs != nargs[c->op]) {
        rd_fail(R, "no CUDA routine for op %d with %d operands", (int)c->op, (int)c->nargs);
        return;
    }
    if (c->op == IR_allreduce) { /* no kernel: the runtime's NCCL call (cg_cuda_launch) */
        const cg_buffer *b =
            rd_check_buffer(R, c->arg[0].buffer, "operand", 0) ? &R->p->buffers[c->arg[0].buffer] : NULL;
        if (b && (b->region != CG_ARENA || b->dtype != AG_F32))
            rd_fail(R, "allreduce: its bucket is not f32 in the arena");
        if (!b || R->failed)
            return;
        launch->collective = c->wait ? 2 : 1;
        launch->bucket = c->bucket;
        launch->offset = (cg_dim){b->offset.k + 4 * c->arg[0].offset.k, b->offset.n + 4 * c->arg[0].offset.n};
        launch->count = c->rows;
        snprintf(launch->name, sizeof launch->name, "allreduce_bucket%d_%s", (int)c->bucket,
                 c->wait ? "wait" : "start");
        fprintf(R->f, "/* step %d, %s: bucket %d's sum over the ranks %s (NCCL, the runtime's) */\n\n", R->step,
                launch->name, (int)c->bucket, c->wait ? "waited for" : "started");
        return;
    }
    bool used[4096] = {false};
    if (R->p->nbuffers > 4096) {
        rd_fail(R, "%d buffers", R->p->nbuffers);
        return;
    }
    for (int k = 0; k < c->nargs; k++)
        if (rd_check_buffer(R, c->arg[k].buffer, "operand", k))
            used[c->arg[k].buffer] = true;
    if (with)
        used[with->arg[3].buffer] = true;
    if (R->failed)
        return;
    ag_dtype t0 = R->p->buffers[c->arg[0].buffer].dtype;
    rd_kernel_head(R, name);
    fprintf(R->f, "    const long long N = a.N;\n    (void)N;\n");
    rd_declare_buffers(R, used);
    fprintf(R->f, "    const long long outer = %s, len = %s, inner = %s;\n", rd_dim(R, c->rows), rd_dim(R, c->len),
            rd_dim(R, c->inner));
    launch->units_per_block = CG_CUDA_BLOCK;
    /* units: rows x inner columns (dropout: elements) */
    double r0 = (double)c->rows.k, r1 = (double)c->rows.n, i0 = (double)c->inner.k, i1 = (double)c->inner.n;
    launch->units[0] = r0 * i0, launch->units[1] = r0 * i1 + r1 * i0, launch->units[2] = r1 * i1;
    if (c->op == IR_dropout) {
        render_dropout(R, c, launch);
        return;
    }
    if (c->op == IR_conv2d) {
        rd_render_conv(R, c, launch);
        return;
    }
    if (ir_ops[c->op].kind == IR_K_WINDOW) {
        render_window(R, c, launch);
        return;
    }
    /* one thread per (o, i): element j of it at (o len + j) inner + i */
    fprintf(R->f, "    for (long long c_ = blockIdx.x * (long long)blockDim.x + threadIdx.x; c_ < outer * inner;\n"
                  "         c_ += (long long)gridDim.x * blockDim.x) {\n"
                  "        const long long o = c_ / inner, i = c_ %% inner, at = o * len * inner + i;\n"
                  "        (void)at;\n");
    switch (c->op) {
    case IR_softmax:
    case IR_log_softmax: {
        bool lg = c->op == IR_log_softmax;
        fprintf(R->f,
                "        const float *x = %s + at;\n        float *y = %s + at;\n"
                "        float m = -__uint_as_float(0x7f800000u), s = 0;\n"
                "        for (long long j = 0; j < len; j++) m = x[j * inner] > m ? x[j * inner] : m;\n"
                "        for (long long j = 0; j < len; j++) y[j * inner] = x[j * inner] - m;\n"
                "        for (long long j = 0; j < len; j++) {\n"
                "            const float e = expf(y[j * inner]);\n%s"
                "            s += e;\n        }\n%s"
                "        for (long long j = 0; j < len; j++) y[j * inner] = %s;\n",
                arg_ptr(R, c, 0), arg_ptr(R, c, 1), lg ? "" : "            y[j * inner] = e;\n",
                lg ? "        s = logf(s);\n" : "", lg ? "y[j * inner] - s" : "y[j * inner] / s");
        break;
    }
    case IR_softmax_ce:
    case IR_softmax_ce_grad: print_softmax_ce(R, c, with, step); break;
    case IR_argmax:
        if (t0 == AG_F32)
            fprintf(R->f,
                    "        const float *x = %s + at;\n        int *y = %s + o * inner + i;\n"
                    "        float best = x[0];\n        int k = 0;\n"
                    "        for (long long j = 1; j < len && best == best; j++) {\n"
                    "            const float v = x[j * inner];\n"
                    "            if (v > best || v != v) best = v, k = (int)j;\n"
                    "        }\n        *y = k;\n",
                    arg_ptr(R, c, 0), arg_ptr(R, c, 1));
        else
            fprintf(R->f,
                    "        const int *x = %s + at;\n        int *y = %s + o * inner + i;\n"
                    "        int best = x[0], k = 0;\n"
                    "        for (long long j = 1; j < len; j++)\n"
                    "            if (x[j * inner] > best) best = x[j * inner], k = (int)j;\n"
                    "        *y = k;\n",
                    arg_ptr(R, c, 0), arg_ptr(R, c, 1));
        break;
    case IR_cumsum:
        if (t0 == AG_F32)
            fprintf(R->f,
                    "        const float *x = %s + at;\n        float *y = %s + at;\n        float s = 0;\n"
                    "        for (long long j = 0; j < len; j++) y[j * inner] = s = s + x[j * inner];\n",
                    arg_ptr(R, c, 0), arg_ptr(R, c, 1));
        else
            fprintf(R->f,
                    "        const int *x = %s + at;\n        int *y = %s + at;\n        long long s = 0;\n"
                    "        for (long long j = 0; j < len; j++) {\n"
                    "            s += x[j * inner];\n"
                    "            y[j * inner] = s < -2147483647LL - 1 ? -2147483647 - 1 : s > 2147483647LL ? "
                    "2147483647 : (int)s;\n"
                    "        }\n",
                    arg_ptr(R, c, 0), arg_ptr(R, c, 1));
        break;
    default: break;
    }
    fprintf(R->f, "    }\n}\n\n");
}

/* ---- softmax + cross-entropy with its gradient in one pass ----
 * A softmax_ce step and a later softmax_ce_grad of the same logits and labels: the first
 * kernel also leaves e^(x - m) / s (minus 1 at the label) in the gradient's output, and the
 * second only scales it by the row's d, the CPU routine's arithmetic in the same order. Only
 * where nothing between the two writes the logits or the labels or touches that output, and
 * the output misses what the first step reads and writes: byte ranges, affine in N, checked
 * at both ends of [1, CG_MAX_N] (degree 1 only; anything else is taken to overlap). */

/* the region a buffer lives in: the arena, the parameters, or one caller tensor */
int64_t rd_region_of(const cg_buffer *b)
{
    return b->region == CG_INPUT    ? 2 + 2 * (int64_t)b->index
           : b->region == CG_OUTPUT ? 3 + 2 * (int64_t)b->index
                                    : (int64_t)b->region;
}

/* elements offset + [0, count) of buffer b; count = c0 + c1 N */
static span span_of(const rd *R, int32_t buf, cg_dim offset, double c0, double c1, bool linear)
{
    const cg_buffer *b = &R->p->buffers[buf];
    double es = (double)rd_esize(b->dtype), n[2] = {1, (double)CG_MAX_N};
    span s = {rd_region_of(b), {0, 0}, {0, 0}, linear};
    for (int k = 0; k < 2; k++) {
        s.lo[k] = (double)(b->offset.k + b->offset.n * n[k]) + es * (double)(offset.k + offset.n * n[k]);
        s.hi[k] = s.lo[k] + es * (c0 + c1 * n[k]);
    }
    return s;
}

bool rd_overlap(span a, span b)
{
    if (a.region != b.region)
        return false;
    if (!a.known || !b.known)
        return true;
    bool below = a.hi[0] <= b.lo[0] && a.hi[1] <= b.lo[1], above = b.hi[0] <= a.lo[0] && b.hi[1] <= a.lo[1];
    return !below && !above;
}

/* (k0 + k1 N)(j0 + j1 N) as c0 + c1 N; false past degree 1 */
static bool lin_mul(double k0, double k1, double j0, double j1, double *c0, double *c1)
{
    *c0 = *c1 = 0;
    if (k1 != 0 && j1 != 0)
        return false;
    *c0 = k0 * j0, *c1 = k0 * j1 + k1 * j0;
    return true;
}

/* the spans a step touches; written ones flagged */
int rd_step_spans(const rd *R, const cg_step *st, span *out, bool *written, int cap)
{
    int n = 0;
    if (st->kind == CG_LOOP) {
        const cg_loop *l = &st->loop;
        for (int x = 0; x < l->nloads + l->nstores && n < cap; x++) {
            const cg_access *a = x < l->nloads ? &l->load[x] : &l->store[x - l->nloads].at;
            double c0 = 1, c1 = 0; /* 1 + sum (extent - 1) stride */
            bool lin = true;
            for (int k = 0; k < l->rank && lin; k++) {
                double e0 = 0, e1 = 0;
                lin = a->stride[k].k >= 0 && a->stride[k].n >= 0 &&
                      lin_mul((double)l->extent[k].k - 1, (double)l->extent[k].n, (double)a->stride[k].k,
                              (double)a->stride[k].n, &e0, &e1);
                c0 += e0, c1 += e1;
            }
            written[n] = x >= l->nloads;
            out[n++] = span_of(R, a->buffer, a->offset, c0, c1, lin);
        }
    } else if (st->kind == CG_GEMM) {
        const cg_gemm *g = &st->gemm;
        const cg_access *acc[3] = {&g->a, &g->b, &g->c};
        const cg_dim dims[3][2] = {{g->m, g->k}, {g->k, g->n}, {g->m, g->n}};
        for (int x = 0; x < 3 && n < cap; x++) {
            double c0, c1;
            bool lin = lin_mul((double)dims[x][0].k, (double)dims[x][0].n, (double)dims[x][1].k, (double)dims[x][1].n,
                               &c0, &c1);
            written[n] = x == 2;
            out[n++] = span_of(R, acc[x]->buffer, acc[x]->offset, c0, c1, lin);
        }
        for (int x = 0; x < g->nloads && n < cap; x++)
            written[n] = false, out[n++] = span_of(R, g->load[x].buffer, g->load[x].offset, 1, 0, true);
    } else {
        const cg_call *c = &st->call;
        double r0, r1, c0, c1;
        bool lin = lin_mul((double)c->rows.k, (double)c->rows.n, (double)c->len.k, (double)c->len.n, &r0, &r1) &&
                   c->inner.n == 0;
        c0 = r0 * (double)c->inner.k, c1 = r1 * (double)c->inner.k;
        for (int x = 0; x < c->nargs && n < cap; x++) /* whole tensors: a bound for every operand */
            written[n] = x == c->nargs - 1, out[n++] = span_of(R, c->arg[x].buffer, c->arg[x].offset, c0, c1, lin);
    }
    return n;
}

static bool same_access(const cg_access *a, const cg_access *b)
{
    return a->buffer == b->buffer && a->offset.k == b->offset.k && a->offset.n == b->offset.n;
}

void rd_pair_ce(rd *R)
{
    const cg_program *p = R->p;
    for (int s = 0; s < p->nsteps; s++)
        R->ce_pair[s] = -1;
    for (int g = 0; g < p->nsteps; g++) {
        const cg_step *sg = &p->steps[g];
        if (sg->kind != CG_CALL || sg->call.op != IR_softmax_ce_grad || sg->call.nargs != 4)
            continue;
        const cg_call *cg = &sg->call;
        span out[1];
        bool w[1];
        cg_step only_out = *sg;
        only_out.call.nargs = 1, only_out.call.arg[0] = cg->arg[3];
        rd_step_spans(R, &only_out, out, w, 1);
        for (int f = g - 1; f >= 0; f--) {
            const cg_step *sf = &p->steps[f];
            span sp[CG_MAX_LOADS + CG_MAX_STORES + 8];
            bool wr[CG_MAX_LOADS + CG_MAX_STORES + 8];
            int n = rd_step_spans(R, sf, sp, wr, (int)(sizeof sp / sizeof *sp));
            bool match = sf->kind == CG_CALL && sf->call.op == IR_softmax_ce && sf->call.nargs == 3 &&
                         R->ce_pair[f] < 0 && same_access(&sf->call.arg[0], &cg->arg[0]) &&
                         same_access(&sf->call.arg[1], &cg->arg[1]) && sf->call.rows.k == cg->rows.k &&
                         sf->call.rows.n == cg->rows.n && sf->call.len.k == cg->len.k && sf->call.len.n == cg->len.n;
            if (match) {
                bool clear = true; /* the gradient's output misses the logits, labels and losses */
                for (int k = 0; k < n; k++)
                    clear &= !rd_overlap(sp[k], out[0]);
                if (clear)
                    R->ce_pair[f] = g, R->ce_pair[g] = f;
                break;
            }
            /* between the two: the output untouched, the logits and labels not written */
            span ly[2];
            bool lw[2];
            cg_step lab = *sg;
            lab.call.nargs = 2;
            rd_step_spans(R, &lab, ly, lw, 2);
            bool clear = true;
            for (int k = 0; k < n; k++)
                clear &=
                    !rd_overlap(sp[k], out[0]) && !(wr[k] && (rd_overlap(sp[k], ly[0]) || rd_overlap(sp[k], ly[1])));
            if (!clear)
                break;
        }
    }
}

/* ---- the device runtime's own kernels ---- */

static const char support[] =
    "/* The device runtime's kernels (runtime/cuda.c): batches gathered on the device, and the\n"
    " * step's bookkeeping, so that a train step never waits on the host. */\n"
    "#ifndef AG_DEV_SUPPORT\n"
    "#define AG_DEV_SUPPORT\n"
    "typedef struct ag_dev_state {\n"
    "    unsigned long long step; /* the global step: dropout's counter */\n"
    "    long long first;         /* the next batch's first position in the epoch's order */\n"
    "    long long bad_step;      /* the first step whose loss was not finite, -1: none */\n"
    "    long long steps;         /* steps of this epoch so far */\n"
    "    double loss_sum;         /* sum of loss * rows over the epoch's batches */\n"
    "    double metric_sum[8];\n"
    "} ag_dev_state;\n\n"
    "typedef struct ag_step_outs {\n"
    "    const float *loss;\n"
    "    const void *metric[8];\n"
    "    int metric_i32[8];\n"
    "    int nmetrics;\n"
    "    long long rows;    /* the rows the loss and metrics count (a rank's share; 0: an idle rank's) */\n"
    "    long long advance; /* the global batch's rows: the next batch's first position */\n"
    "} ag_step_outs;\n\n"
    "/* dst row r = src row order[first + row0 + r], rows of row_bytes bytes (row0: a rank's share) */\n"
    "extern \"C\" __global__ void __launch_bounds__(256) ag_gather(const unsigned char *src, unsigned char *dst,\n"
    "    const int *order, const ag_dev_state *s, long long rows, long long row_bytes, long long row0)\n"
    "{\n"
    "    const long long n = rows * row_bytes;\n"
    "    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * "
    "blockDim.x) {\n"
    "        const long long r = e / row_bytes, b = e % row_bytes;\n"
    "        dst[e] = src[(long long)order[s->first + row0 + r] * row_bytes + b];\n"
    "    }\n"
    "}\n\n"
    "/* bytes copied: an update that is not in place, over its parameter */\n"
    "extern \"C\" __global__ void __launch_bounds__(256) ag_copy(unsigned char *dst, const unsigned char *src, long "
    "long bytes)\n"
    "{\n"
    "    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < bytes; e += (long long)gridDim.x * "
    "blockDim.x)\n"
    "        dst[e] = src[e];\n"
    "}\n\n"
    "/* before a step (--lr-schedule): its lr, the epoch's table at the steps taken so far */\n"
    "extern \"C\" __global__ void ag_step_lr(const float *table, const ag_dev_state *s, float *lr)\n"
    "{\n"
    "    if (blockIdx.x == 0 && threadIdx.x == 0)\n"
    "        *lr = table[s->steps];\n"
    "}\n\n"
    "/* after a step: its loss and metrics into the sums, the first non-finite loss, the next step */\n"
    "extern \"C\" __global__ void ag_step_end(ag_dev_state *s, ag_step_outs o)\n"
    "{\n"
    "    if (blockIdx.x != 0 || threadIdx.x != 0)\n"
    "        return;\n"
    "    const float l = *o.loss;\n"
    "    if (!(l - l == 0.0f) && s->bad_step < 0) /* NaN or infinite */\n"
    "        s->bad_step = (long long)s->step;\n"
    "    s->loss_sum += (double)l * (double)o.rows;\n"
    "    for (int k = 0; k < o.nmetrics && k < 8 && o.rows > 0; k++)\n"
    "        s->metric_sum[k] += o.metric_i32[k] ? (double)*(const int *)o.metric[k] : (double)*(const float "
    "*)o.metric[k];\n"
    "    s->step += 1;\n"
    "    s->first += o.advance;\n"
    "    s->steps += 1;\n"
    "}\n"
    "#endif\n\n";

bool cg_cuda_render_support(FILE *f)
{
    fputs(support, f);
    return !ferror(f);
}
