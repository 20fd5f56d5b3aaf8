/* The text IR refused: a table of malformed inputs, each with its exact message and
 * line:col; garbage and random edits of a good text, which must fail with a located message
 * or parse into a graph that verifies; the .ir files of tests/data, canonical. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "text_check.h"

#ifndef AG_SOURCE_DIR
#define AG_SOURCE_DIR "."
#endif
/* ---- malformed IR: each with its exact message ---- */

#define BAD(text, msg) {text, sizeof(text) - 1, msg}
/* body @k0 (lines 1-6): y = p0 + p1, both f32[2]; then a graph with a: f32[2], b: f32[3] */
#define KBODY                                                                                   \
    "kernel @k0 {\n  %p0: f32[2] = input\n  %p1: f32[2] = input\n  %0: f32[2] = add %p0, %p1\n" \
    "  return y: %0\n}\n\n"
#define KHEAD KBODY "graph @x {\n  %a: f32[2] = input\n  %b: f32[3] = input\n"
/* outputs v (not a scalar), l (a scalar f32), k (a scalar i32); a param w, an input a */
#define DECL_HEAD                                                                               \
    "graph @x {\n  %a: f32[2] = input\n  %w: f32[2] = param zeros\n  %u: f32[] = param zeros\n" \
    "  return v: %a, l: %u, k: 1\n"
#define DECL_TRAIN "  train model loss=l\n"
#define DECL_OPT "  optimizer sgd lr=0.1 wd=0 batch=1 epochs=1\n"
/* a graph (lines 1-6) with an input x, a param w and two computed values; line 7 is free */
#define PLAN_HEAD                                                                                   \
    "graph @p {\n  %x: f32[N,4] = input\n  %w: f32[4] = param zeros\n  %0: f32[N,4] = mul %x, %w\n" \
    "  %1: f32[4] = sub %w, %w\n  return y: %0, w.next: %1\n"
#define PLAN_MEM "  memory batch=1 arena=64\n"
static const struct {
    const char *text;
    size_t len;
    const char *msg;
} bad[] = {
    BAD("", "t.ir:1:1: error: unexpected end of file"),
    BAD("graph @x(", "t.ir:1:9: error: expected '{', got '('"),
    BAD("graph @x {\n  %0: f32[2] = nosuchop %1\n  return r: %0\n}\n", "t.ir:2:16: error: unknown op 'nosuchop'"),
    BAD("\x00\xff garbage", "t.ir:1:1: error: unexpected character '\\x00'"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %b: f32[2] = relu %a \xff\n  return r: %a\n}\n",
        "t.ir:3:24: error: unexpected character '\\xff'"),
    BAD("graph @x {\n  %0: f32[2,3] = add %0, %0\n}\n", "t.ir:2:22: error: undefined value %0"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = relu %1\n  return r: %0\n}\n",
        "t.ir:3:21: error: undefined value %1"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = relu %a\n  %0: f32[2] = exp %a\n  return r: %0\n}\n",
        "t.ir:4:3: error: redefinition of %0 (first defined on line 3)"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %a: f32[3] = input\n  return r: %a\n}\n",
        "t.ir:3:3: error: redefinition of %a (first defined on line 2)"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %a: f32[2] = param zeros\n  return r: %a\n}\n",
        "t.ir:3:3: error: redefinition of %a (first defined on line 2)"),
    BAD("graph @x {\n  %a: f33[2] = input\n  return r: %a\n}\n", "t.ir:2:7: error: unknown dtype 'f33'"),
    BAD("graph @x {\n  %a: f64[2] = input\n  return r: %a\n}\n",
        "t.ir:2:7: error: dtype f64 is not allowed in a graph"),
    BAD("graph @x {\n  %a: f32[2,0] = input\n  return r: %a\n}\n",
        "t.ir:2:13: error: bad dim '0': dims are positive integers or N"),
    BAD("graph @x {\n  %a: f32[2,-1] = input\n  return r: %a\n}\n",
        "t.ir:2:13: error: bad dim '-1': dims are positive integers or N"),
    BAD("graph @x {\n  %a: f32[1,2,3,4,5] = input\n  return r: %a\n}\n", "t.ir:2:19: error: more than 4 dims"),
    BAD("graph @x {\n  %a: f32[N,N] = input\n  return r: %a\n}\n", "t.ir:2:13: error: the batch dim N appears twice"),
    BAD("graph @x {\n  %a: f32[99999999999999999999] = input\n  return r: %a\n}\n",
        "t.ir:2:11: error: integer overflow in dim '99999999999999999999'"),
    BAD("graph @x {\n  %a: f32[4294967296,4294967296] = input\n  return r: %a\n}\n",
        "t.ir:2:22: error: integer overflow in dims: the shape has too many elements"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2] = sum %a axes=[1] axis=0\n  return r: %0\n}\n",
        "t.ir:3:32: error: unknown attribute 'axis' for sum"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2] = sum %a axes=[1] axes=[1]\n  return r: %0\n}\n",
        "t.ir:3:32: error: duplicate attribute 'axes'"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2] = sum %a\n  return r: %0\n}\n",
        "t.ir:3:16: error: sum: missing attribute 'axes'"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2] = sum %a axes=[1,1]\n  return r: %0\n}\n",
        "t.ir:3:31: error: duplicate axis 1 in axes"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2] = sum %a axes=[9]\n  return r: %0\n}\n",
        "t.ir:3:29: error: axis 9 out of range"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[3,2] = transpose %a perm=[1,0,0]\n  return r: %0\n}\n",
        "t.ir:3:31: error: transpose: perm has 3 entries for rank 2"),
    BAD("graph @x {\n  %a: f32[2] = input\n}\n", "t.ir:3:1: error: missing 'return' before '}'"),
    BAD("graph @x {\n  %a: f32[2] = input\n", "t.ir:3:1: error: unexpected end of file"),
    BAD("graph @x {\n  %a: f32[2] = input\n  return r: %a\n", "t.ir:4:1: error: missing '}' at end of file"),
    BAD("graph @x {\n  %a: f32[2] = input\n  return r: %a", "t.ir:3:15: error: missing '}' at end of file"),
    BAD("graph @x {\n  %a: f32[2", "t.ir:2:12: error: unexpected end of file"),
    BAD("graph @x {\n  %a: f32[2] = input\n  return r: %a\n}\n}\n", "t.ir:5:1: error: unexpected '}' after '}'"),
    BAD("graph @x {\n  %a: f32[2] = input\n  return r: %a, r: %a\n}\n", "t.ir:3:17: error: duplicate output name 'r'"),
    BAD("graph @x {\n  %a: f32[2] = input\n  return %a\n}\n", "t.ir:3:10: error: expected an output name, got '%a'"),
    BAD("graph @x {\n  %a: f32[2] = input\n  return r: %\n}\n", "t.ir:3:13: error: expected a name after '%'"),
    BAD("graph @ {\n", "t.ir:1:7: error: expected a name after '@'"),
    BAD("graph @x {\n  %a: f32[2,4] = input\n  %0: f32[2,3] = add %a, %a\n  return r: %0\n}\n",
        "t.ir:3:7: error: declared f32[2,3] but add gives f32[2,4]"),
    BAD("graph @x {\n  %a: f32[2,4] = input\n  %0: f32[2,3] = matmul %a, %a\n  return r: %0\n}\n",
        "t.ir:3:18: error: matmul: inner dimensions differ: [2,4] x [2,4]"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = relu %a, %a\n  return r: %0\n}\n",
        "t.ir:3:16: error: relu: takes 1 operand, got 2"),
    BAD("graph @x {\n  %a: f32[2] = input ; nowhere\n  return r: %a\n}\n",
        "t.ir:2:24: error: bad location 'nowhere'; expected FILE:LINE"),
    BAD("graph @x {\n  %a: f32[2] = param gaussian(0, 1)\n  return r: %a\n}\n",
        "t.ir:2:22: error: unknown initializer 'gaussian'"),
    BAD("graph @x {\n  %a: f32[2] = param normal(0, -1)\n  return r: %a\n}\n",
        "t.ir:2:16: error: param a: normal(0, -1): the standard deviation must be >= 0"),
    BAD("graph @x {\n  %a: i32[2] = param zeros\n  return r: %a\n}\n",
        "t.ir:2:16: error: param a: parameters are f32, not i32"),
    BAD("graph @x {\n  %0: f32[2] = input\n  return r: %0\n}\n", "t.ir:2:3: error: input name %0 is not an identifier"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = dropout %a p=0.5 site=2\n"
        "  %1: f32[2] = dropout %0 site=2 p=0.25\n  return r: %1\n}\n",
        "t.ir:4:32: error: dropout site 2 has p=0.25 here but p=0.5 on line 3"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = dropout %a p=1.5 site=1\n  return r: %0\n}\n",
        "t.ir:3:16: error: dropout: p = 1.5 is not a probability in [0, 1]"),
    BAD("graph @x {\n  %a: i32[2] = input\n  %0: i32[2] = add %a, 3000000000\n  return r: %0\n}\n",
        "t.ir:3:24: error: i32 literal 3000000000 out of range"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = mul %a, 1e999\n  return r: %0\n}\n",
        "t.ir:3:24: error: number '1e999' out of range for f32"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = mul %a 2\n  return r: %0\n}\n",
        "t.ir:3:23: error: expected an attribute or end of line, got '2'"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: u8[] = const 256\n  return r: %a\n}\n",
        "t.ir:3:20: error: u8 constant 256 out of range"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = mul %a, 1.5.5\n  return r: %0\n}\n",
        "t.ir:3:24: error: bad number '1.5.5'"),
    BAD("graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = mul %a, %a, \n  return r: %0\n}\n",
        "t.ir:3:28: error: expected an operand, got end of line"),
    BAD("graph x {\n", "t.ir:1:7: error: expected a graph name '@name', got 'x'"),
    /* input grad and slice */
    BAD("graph @x {\n  %a: u8[2] = input grad\n  return r: %a\n}\n",
        "t.ir:2:21: error: input a: a gradient needs f32, not u8"),
    BAD("graph @x {\n  %a: f32[2] = param zeros grad\n  return r: %a\n}\n",
        "t.ir:2:28: error: expected end of line, got 'grad'"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2,3] = slice %a axis=1 start=2\n  return r: %0\n}\n",
        "t.ir:3:18: error: slice: 3 elements from 2 are not within the 3 of axis 1"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2,1] = slice %a axis=1 start=-1\n  return r: %0\n}\n",
        "t.ir:3:18: error: slice: 1 elements from -1 are not within the 3 of axis 1"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2,2] = slice %a axis=1\n  return r: %0\n}\n",
        "t.ir:3:18: error: slice: missing attribute 'start'"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2,2] = slice %a axis=2 start=0\n  return r: %0\n}\n",
        "t.ir:3:18: error: slice: axis 2 out of range for rank 2"),
    BAD("graph @x {\n  %a: f32[N,3] = input\n  %0: f32[2,3] = slice %a axis=0 start=0\n  return r: %0\n}\n",
        "t.ir:3:18: error: slice: cannot slice along the batch axis N"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[1,2] = slice %a axis=1 start=0\n  return r: %0\n}\n",
        "t.ir:3:18: error: slice: result [1,2] differs from [2,3] off axis 1"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2,2] = slice %a axis=1 start=9223372036854775807\n"
        "  return r: %0\n}\n",
        "t.ir:3:18: error: slice: start 9223372036854775807 is out of range"),
    BAD("graph @x {\n  %a: f32[2,3] = input\n  %0: f32[2,3] = relu %a start=1\n  return r: %0\n}\n",
        "t.ir:3:26: error: unknown attribute 'start' for relu"),
/* the window ops */
#define WIN_HEAD "graph @x {\n  %a: f32[N,2,6,6] = input\n  %w: f32[4,2,3,3] = param zeros\n"
    BAD(WIN_HEAD "  %0: f32[N,2,3,3] = max_pool2d %a kernel=[0,0] stride=[2,2] pad=[0,0] dilation=[1,1] groups=1\n"
                 "  return r: %0\n}\n",
        "t.ir:4:22: error: max_pool2d: kernel [0,0], stride [2,2] and dilation [1,1] must be from 1 to 2^20, pad [0,0] "
        "from 0"),
    BAD(WIN_HEAD "  %0: f32[N,4,4,4] = conv2d %a, %w kernel=[3,3] stride=[1,1] pad=[0,0] dilation=[1,1] groups=0\n"
                 "  return r: %0\n}\n",
        "t.ir:4:22: error: conv2d: groups=0 (at least 1)"),
    BAD(WIN_HEAD "  %0: f32[N,2,3,3] = avg_pool2d %a kernel=[2,2] stride=[2,2] pad=[0,0] groups=1\n"
                 "  return r: %0\n}\n",
        "t.ir:4:22: error: avg_pool2d: missing attribute 'dilation'"),
    BAD(WIN_HEAD "  %0: f32[N,2,5,5] = max_pool2d %a kernel=[2,2] stride=[2,2] pad=[2,2] dilation=[1,1] groups=1\n"
                 "  return r: %0\n}\n",
        "t.ir:4:22: error: max_pool2d: pad 2 is more than half the kernel's 2"),
    BAD(WIN_HEAD "  %0: f32[N,4,4,4] = conv2d %a, %w kernel=[3,3] stride=[1,1] pad=[0,0] dilation=[1,1] groups=2\n"
                 "  return r: %0\n}\n",
        "t.ir:4:22: error: conv2d: the weights [4,2,3,3] take 2 input channels a group; the input [N,2,6,6] gives each "
        "of its 2 groups 1"),
    BAD(WIN_HEAD "  %0: f32[N,4,1,1] = conv2d %a, %w kernel=[3,3] stride=[1,1] pad=[0,0] dilation=[4,4] groups=1\n"
                 "  return r: %0\n}\n",
        "t.ir:4:22: error: conv2d: a 3x3 window (dilation [4,4]) does not fit [N,2,6,6] padded by [0,0]"),
    BAD("graph @x {\n  %a: f32[N,1,70000,70000] = input\n  %w: f32[1,1,1,1] = param zeros\n"
        "  %0: f32[N,1,70000,70000] = conv2d %a, %w kernel=[1,1] stride=[1,1] pad=[0,0] dilation=[1,1] groups=1\n"
        "  return r: %0\n}\n",
        "t.ir:4:30: error: conv2d: one sample's unfolded input (1 x 4900000000) or output is past 2^31 elements"),
    BAD(WIN_HEAD "  %0: f32[N,2,1,1] = max_pool2d %a kernel=[300,300] stride=[1,1] pad=[150,150] dilation=[1,1] "
                 "groups=1\n  return r: %0\n}\n",
        "t.ir:4:22: error: max_pool2d: a 300x300 window has more than 2^16 taps"),
    BAD("graph @x {\n  %a: f32[N,36] = input\n"
        "  %0: f32[N,2,3,3] = avg_pool2d %a kernel=[2,2] stride=[2,2] pad=[0,0] dilation=[1,1] groups=1\n"
        "  return r: %0\n}\n",
        "t.ir:3:22: error: avg_pool2d: the input is f32[N,36]; it takes f32[B,C,H,W] (N, if anywhere, first)"),
    /* declarations */
    BAD(DECL_HEAD "  trian model loss=l\n}\n", "t.ir:6:3: error: unknown declaration 'trian'"),
    BAD(DECL_HEAD "  3\n}\n", "t.ir:6:3: error: expected a declaration or '}', got '3'"),
    BAD(DECL_HEAD "  train model loss=l\n}\n", "t.ir:7:1: error: missing 'optimizer' line before '}'"),
    BAD(DECL_HEAD DECL_OPT "}\n", "t.ir:7:1: error: missing 'train' line before '}'"),
    BAD(DECL_HEAD "  data \"d\"\n}\n", "t.ir:7:1: error: missing 'train' line before '}'"),
    BAD(DECL_HEAD "  group g wd_scale=1 lr_scale=1 params=[w]\n}\n",
        "t.ir:7:1: error: missing 'train' line before '}'"),
    BAD(DECL_HEAD DECL_OPT DECL_TRAIN DECL_OPT "}\n", "t.ir:8:3: error: duplicate 'optimizer' line (first on line 6)"),
    BAD(DECL_HEAD DECL_TRAIN DECL_OPT "\n  train model loss=l\n}\n",
        "t.ir:9:3: error: duplicate 'train' line (first on line 6)"),
    BAD(DECL_HEAD DECL_TRAIN DECL_OPT "  data \"a\"\n  data \"a\"\n}\n",
        "t.ir:9:3: error: duplicate 'data' line (first on line 8)"),
    BAD(DECL_HEAD "  train modle loss=l\n",
        "t.ir:6:9: error: unknown stage 'modle'; expected model, gradients or step"),
    BAD(DECL_HEAD "  train\n", "t.ir:6:8: error: expected a stage, got end of line"),
    BAD(DECL_HEAD "  train model loss=nope\n", "t.ir:6:20: error: loss 'nope' is not an output"),
    BAD(DECL_HEAD "  train model loss=v\n", "t.ir:6:20: error: loss 'v' is f32[2], not a scalar f32"),
    BAD(DECL_HEAD "  train model loss=k\n", "t.ir:6:20: error: loss 'k' is i32[], not a scalar f32"),
    BAD(DECL_HEAD "  train model loss=l metrics=[k, acc]\n", "t.ir:6:34: error: metric 'acc' is not an output"),
    BAD(DECL_HEAD "  train model loss=l metrics=[v]\n", "t.ir:6:31: error: metric 'v' is f32[2], not a scalar"),
    BAD(DECL_HEAD "  train model loss=l metrics=[k, l, k]\n", "t.ir:6:37: error: duplicate metric 'k'"),
    BAD(DECL_HEAD "  train model loss=l metrics=[k l]\n", "t.ir:6:33: error: expected ',', got 'l'"),
    BAD(DECL_HEAD "  train model loss=l predict=w\n", "t.ir:6:30: error: predict 'w' is not an output"),
    BAD(DECL_HEAD "  train model loss=l lost=l\n", "t.ir:6:22: error: unknown key 'lost' in a train line"),
    BAD(DECL_HEAD "  train model loss=l loss=l\n", "t.ir:6:22: error: duplicate key 'loss'"),
    BAD(DECL_HEAD "  train model loss l\n", "t.ir:6:20: error: expected '=', got 'l'"),
    BAD(DECL_HEAD "  train model metrics=[k]\n" DECL_OPT "}\n", "t.ir:6:3: error: train: missing loss="),
    BAD(DECL_HEAD "  train model loss=l 3\n", "t.ir:6:22: error: expected a key or end of line, got '3'"),
    BAD(DECL_HEAD "  optimizer 3\n", "t.ir:6:13: error: expected an optimizer name, got '3'"),
    BAD(DECL_HEAD "  optimizer sgd lr=0.1 wd=0 batch=1\n", "t.ir:6:3: error: optimizer: missing epochs="),
    BAD(DECL_HEAD "  optimizer sgd shrink=0.9\n", "t.ir:6:17: error: unknown key 'shrink' in an optimizer line"),
    BAD(DECL_HEAD "  optimizer sgd lr=0.1 wd=0 beta1=0.9\n", "t.ir:6:29: error: optimizer sgd takes no beta1"),
    BAD(DECL_HEAD "  optimizer adam lr=0.1 wd=0 beta1=0.9 eps=1e-8 batch=1 epochs=1\n",
        "t.ir:6:3: error: optimizer: missing beta2="),
    BAD(DECL_HEAD "  optimizer sgd lr=inf\n", "t.ir:6:20: error: lr must be finite, got 'inf'"),
    BAD(DECL_HEAD "  optimizer sgd wd=-nan\n", "t.ir:6:20: error: wd must be finite, got '-nan'"),
    BAD(DECL_HEAD "  optimizer sgd batch=0\n", "t.ir:6:23: error: batch 0 out of range"),
    BAD(DECL_HEAD "  optimizer sgd batch=1073741825\n", "t.ir:6:23: error: batch 1073741825 out of range"),
    BAD(DECL_HEAD "  optimizer lion lr=0.1\n",
        "t.ir:6:13: error: unknown optimizer 'lion' (aotgrad has sgd, adam, adamw, rmsprop, adagrad)"),
    BAD(DECL_HEAD "  optimizer sgd lr=-1\n", "t.ir:6:20: error: lr must be >= 0 and fit an f32, got '-1'"),
    BAD(DECL_HEAD "  optimizer sgd wd=1e39\n", "t.ir:6:20: error: wd must be >= 0 and fit an f32, got '1e39'"),
    BAD(DECL_HEAD "  optimizer sgd epochs=1.5\n", "t.ir:6:24: error: expected an integer, got '1.5'"),
    BAD(DECL_HEAD "  group g wd_scale=1 lr_scale=1 params=[a]\n", "t.ir:6:41: error: 'a' is not a param"),
    BAD(DECL_HEAD "  group g wd_scale=1 lr_scale=1 params=[w, zz]\n", "t.ir:6:44: error: 'zz' is not a param"),
    BAD(DECL_HEAD "  group g wd_scale=1 lr_scale=1 params=[w]\n  group h wd_scale=1 lr_scale=1 params=[u, w]\n",
        "t.ir:7:44: error: param 'w' is already in group 'g'"),
    BAD(DECL_HEAD "  group g wd_scale=1 lr_scale=1 params=[w, w]\n",
        "t.ir:6:44: error: param 'w' is already in group 'g'"),
    BAD(DECL_HEAD "  group g wd_scale=1 lr_scale=1 params=[w]\n  group g wd_scale=1 lr_scale=1 params=[u]\n",
        "t.ir:7:9: error: duplicate group 'g' (first on line 6)"),
    BAD(DECL_HEAD "  group g wd_scale=1 params=[w]\n", "t.ir:6:3: error: group: missing lr_scale="),
    BAD(DECL_HEAD "  group g wd_scale=1e999\n", "t.ir:6:20: error: number '1e999' out of range for f64"),
    BAD(DECL_HEAD "  group g lr_scale=nan\n", "t.ir:6:20: error: lr_scale must be finite, got 'nan'"),
    BAD(DECL_HEAD "  group \"g\"\n", "t.ir:6:9: error: expected a group name, got '\"g\"'"),
    BAD(DECL_HEAD "  data d\n", "t.ir:6:8: error: expected a string, got 'd'"),
    BAD(DECL_HEAD "  data \"a\" classes=[\"x\", y]\n", "t.ir:6:26: error: expected a string, got 'y'"),
    BAD(DECL_HEAD "  data \"a\\qb\"\n", "t.ir:6:10: error: bad escape '\\q' in string"),
    BAD(DECL_HEAD "  data \"ab\\x4\"\n", "t.ir:6:11: error: bad escape '\\x' in string: expected two hex digits"),
    BAD(DECL_HEAD "  data \"ab\\x4", "t.ir:6:11: error: bad escape '\\x' in string: expected two hex digits"),
    BAD(DECL_HEAD "  data \"\\\x01\"\n", "t.ir:6:9: error: bad escape in string: '\\' before '\\x01'"),
    BAD(DECL_HEAD "  data \"\\x00\"\n", "t.ir:6:9: error: a string cannot hold a NUL byte"),
    BAD(DECL_HEAD "  data \"a\0b\"\n", "t.ir:6:10: error: a string cannot hold a NUL byte"),
    BAD(DECL_HEAD "  data \"abc\n}\n", "t.ir:6:8: error: unterminated string"),
    BAD(DECL_HEAD "  data \"abc\\\n}\n", "t.ir:6:8: error: unterminated string"),
    BAD(DECL_HEAD "  data \"abc", "t.ir:6:8: error: unterminated string"),
    BAD(DECL_HEAD "  data \"abc\\", "t.ir:6:8: error: unterminated string"),
    BAD(DECL_HEAD "  option act=\"relu\"\n", "t.ir:6:3: error: option: missing choices="),
    BAD(DECL_HEAD "  option act \"relu\"\n", "t.ir:6:14: error: expected '=', got '\"relu\"'"),
    BAD(DECL_HEAD "  option act=relu\n", "t.ir:6:14: error: expected a string, got 'relu'"),
    BAD(DECL_HEAD "  option a=\"\" choices=\"\"\n  option a=\"\" choices=\"\"\n",
        "t.ir:7:10: error: duplicate option 'a' (first on line 6)"),
    BAD(DECL_HEAD "  %1: f32[] = input\n", "t.ir:6:3: error: expected a declaration or '}', got '%1'"),
    BAD(DECL_HEAD DECL_TRAIN DECL_OPT "}\n  train model loss=l\n", "t.ir:9:3: error: unexpected 'train' after '}'"),
    BAD("grape @x {\n", "t.ir:1:1: error: expected 'graph', got 'grape'"),
    /* kernel bodies and the nodes that use them */
    BAD("kernel @k1 {\n", "t.ir:1:8: error: expected body @k0, got '@k1' (bodies are numbered from 0 in order)"),
    BAD(KBODY "kernel @k0 {\n", "t.ir:8:8: error: expected body @k1, got '@k0' (bodies are numbered from 0 in order)"),
    BAD("kernel k0 {\n", "t.ir:1:8: error: expected a body name '@kK', got 'k0'"),
    BAD(KBODY "grape @x {\n", "t.ir:8:1: error: expected 'kernel' or 'graph', got 'grape'"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %b body=@k0 out=y\n  return r: %0\n}\n",
        "t.ir:11:16: error: kernel: operand 1 is f32[3]; body @k0's input p1 is f32[2]"),
    BAD(KHEAD "  %0: f32[2] = kernel %a body=@k0 out=y\n  return r: %0\n}\n",
        "t.ir:11:16: error: kernel: body @k0 takes 2 operands, got 1"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a, %a body=@k0 out=y\n  return r: %0\n}\n",
        "t.ir:11:16: error: kernel: body @k0 takes 2 operands, got 3"),
    BAD(KHEAD "  %0: f32[3] = kernel %a, %a body=@k0 out=y\n  return r: %0\n}\n",
        "t.ir:11:7: error: declared f32[3] but kernel gives f32[2]"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a body=@k1 out=y\n  return r: %0\n}\n",
        "t.ir:11:35: error: unknown body '@k1'"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a body=@k00 out=y\n  return r: %0\n}\n",
        "t.ir:11:35: error: unknown body '@k00'"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a body=k0 out=y\n  return r: %0\n}\n",
        "t.ir:11:35: error: expected a body '@kK', got 'k0'"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a body=@k0 out=z\n  return r: %0\n}\n",
        "t.ir:11:43: error: body @k0 has no output 'z'"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a out=y\n  return r: %0\n}\n",
        "t.ir:11:16: error: kernel: missing attribute 'body'"),
    BAD(KHEAD "  %0: f32[2] = kernel %a, %a body=@k0\n  return r: %0\n}\n",
        "t.ir:11:16: error: kernel: missing attribute 'out'"),
    BAD(KHEAD "  %0: f32[2] = kernel body=@k0 out=y\n  return r: %0\n}\n",
        "t.ir:11:16: error: kernel: takes one or more operands, got none"),
    BAD(KHEAD "  %0: f32[2] = add %a, %a out=y\n  return r: %0\n}\n",
        "t.ir:11:27: error: unknown attribute 'out' for add"),
    BAD(KHEAD "  %0: f32[2] = relu %p0\n  return r: %0\n}\n", "t.ir:11:21: error: undefined value %p0"),
    BAD("kernel @k0 {\n  %p0: f32[2] = input\n  %w: f32[2] = param zeros\n",
        "t.ir:3:16: error: a kernel body has no param nodes"),
    BAD(KBODY "kernel @k1 {\n  %p0: f32[2] = input\n  %0: f32[2] = kernel %p0, %p0 body=@k0 out=y\n",
        "t.ir:10:16: error: a kernel body has no kernel nodes"),
    BAD("kernel @k0 {\n  %p0: f32[] = input\n  return y: %p0\n  train model loss=y\n}\n",
        "t.ir:4:3: error: a kernel body has no declarations, got 'train'"),
    BAD("kernel @k0 {\n  %p0: f32[2] = input\n}\n", "t.ir:3:1: error: missing 'return' before '}'"),
    BAD("kernel @k0 {\n  %p0: f32[2] = input\n  return y: %p0\n", "t.ir:4:1: error: missing '}' at end of file"),
    BAD("kernel @k0 {\n  %p0: f32[2] = input\n  return y: %p0\n}\n", "t.ir:5:1: error: unexpected end of file"),
    BAD("kernel @k0 {\n  %p0: f32[2] = input\n  %0: f32[2] = dropout %p0 p=0.5 site=1\n  return y: %0\n}\n"
        "graph @x {\n  %a: f32[2] = input\n  %0: f32[2] = dropout %a p=0.25 site=1\n  return r: %0\n}\n",
        "t.ir:8:39: error: dropout site 1 has p=0.25 here but p=0.5 on line 3"),
    /* the memory plan */
    BAD(PLAN_HEAD "  buffer %0 offset=0\n}\n", "t.ir:7:3: error: a 'buffer' line before the 'memory' line"),
    BAD(PLAN_HEAD "  inplace %1 into=%w\n" PLAN_MEM "}\n",
        "t.ir:7:3: error: an 'inplace' line before the 'memory' line"),
    BAD(PLAN_HEAD PLAN_MEM PLAN_MEM "}\n", "t.ir:8:3: error: duplicate 'memory' line (first on line 7)"),
    BAD(PLAN_HEAD "  memory batch=1\n}\n", "t.ir:7:3: error: memory: missing arena="),
    BAD(PLAN_HEAD "  memory batch=0 arena=64\n}\n", "t.ir:7:16: error: batch 0 out of range"),
    BAD(PLAN_HEAD "  memory batch=1 arena=-1\n}\n", "t.ir:7:24: error: arena -1 out of range"),
    BAD(PLAN_HEAD "  memory batch=1 arena=64 align=64\n}\n", "t.ir:7:27: error: unknown key 'align' in a memory line"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %9 offset=0\n}\n", "t.ir:8:10: error: undefined value %9"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer 1.0 offset=0\n}\n", "t.ir:8:10: error: expected a value, got '1.0'"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %x offset=0\n}\n",
        "t.ir:8:10: error: '%x' is an input, not a computed value: it has no place in the plan"),
    BAD(PLAN_HEAD PLAN_MEM "  inplace %w into=%w\n}\n",
        "t.ir:8:11: error: '%w' is a param, not a computed value: it has no place in the plan"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %0 offset=0\n  buffer %0 offset=64\n}\n",
        "t.ir:9:10: error: duplicate plan for '%0' (first on line 8)"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %1 offset=0\n  inplace %1 into=%w\n}\n",
        "t.ir:9:11: error: duplicate plan for '%1' (first on line 8)"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %0 offset=-64\n}\n", "t.ir:8:20: error: offset -64 out of range"),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %0\n}\n", "t.ir:8:3: error: buffer: missing offset="),
    BAD(PLAN_HEAD PLAN_MEM "  buffer %0 offset=0 offset=64\n}\n", "t.ir:8:22: error: duplicate key 'offset'"),
    BAD(PLAN_HEAD PLAN_MEM "  inplace %1 into=%x\n}\n", "t.ir:8:19: error: into='%x': not a param"),
    BAD(PLAN_HEAD PLAN_MEM "  inplace %1 into=%0\n}\n", "t.ir:8:19: error: into='%0': not a param"),
    BAD(PLAN_HEAD PLAN_MEM "  inplace %1 into=%q\n}\n", "t.ir:8:19: error: undefined value %q"),
    BAD(PLAN_HEAD PLAN_MEM "  inplace %1 onto=%w\n}\n", "t.ir:8:14: error: unknown key 'onto' in an inplace line"),
    BAD("kernel @k0 {\n  %p0: f32[2] = input\n  return y: %p0\n  memory batch=1 arena=0\n}\n",
        "t.ir:4:3: error: a kernel body has no declarations, got 'memory'"),
};

Test(text, malformed)
{
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[256] = "";
        ir_graph *g = ir_parse(bad[i].text, bad[i].len, "t.ir", err, sizeof err);
        cr_expect_null(g, "case %zu parsed", i);
        ir_graph_free(g);
        cr_expect_str_eq(err, bad[i].msg, "case %zu:\n  got  %s\n  want %s", i, err, bad[i].msg);
    }
}

/* The message is cut to fit the buffer, never overrun; a NULL buffer is fine too. */
Test(text, small_error_buffer)
{
    const char *t = "graph @x {\n  %0: f32[2] = nosuchop %1\n";
    char err[8];
    memset(err, 'z', sizeof err);
    cr_assert_null(ir_parse(t, strlen(t), "t.ir", err, 6));
    cr_assert_str_eq(err, "t.ir:");
    cr_assert_eq(err[6], 'z');
    cr_assert_null(ir_parse(t, strlen(t), NULL, NULL, 0));
}

/* The parser stops at len: the bytes after it are never read. */
Test(text, stops_at_len)
{
    const char *t = "graph @x {\n  %a: f32[2] = input\n  return r: %a\n}\nGARBAGE";
    char err[256] = "";
    ir_graph *g = ir_parse(t, strlen(t) - strlen("GARBAGE"), "t.ir", err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    ir_graph_free(g);
    char *copy = malloc(5); /* exactly "graph", no NUL: ASan catches a read past it */
    memcpy(copy, "graph", 5);
    cr_assert_null(ir_parse(copy, 5, "t.ir", err, sizeof err));
    cr_assert_str_eq(err, "t.ir:1:6: error: unexpected end of file");
    free(copy);
}

/* Nonsense, a million levels deep, huge numbers: a message each time, never a crash. */
Test(text, garbage_never_crashes)
{
    size_t n = 1000000;
    char *t = malloc(n + 32);
    char err[256];
    const char *heads[] = {"graph @x {\n  %a: f32", "graph @x {\n  %a: f32[2] = param normal(", "", "graph @x {\n  %"};
    const char fill[] = {'[', '(', '{', '%', '1', '9', '-', ',', '\0', '\xff', ';', '\n'};
    for (size_t h = 0; h < sizeof heads / sizeof *heads; h++)
        for (size_t f = 0; f < sizeof fill; f++) {
            size_t k = strlen(heads[h]);
            memcpy(t, heads[h], k);
            memset(t + k, fill[f], n - k);
            err[0] = 0;
            cr_assert_null(ir_parse(t, n, "g.ir", err, sizeof err));
            cr_assert(strncmp(err, "g.ir:", 5) == 0 && strstr(err, ": error: "), "%s", err);
        }
    free(t);
}

/* Mutations of a good text: each one either fails with a located message or parses into a
 * graph that verifies and whose print is a fixed point of parse-then-print. */
Test(text, mutations)
{
    static const char pool[] = "%@:=[],(){};\n -.0123456789eENnaxp_\x00\xff\"\\";
    size_t len = strlen(text_all_ops);
    char *t = malloc(len + 16);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int parsed = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(t, text_all_ops, len);
        size_t n = len;
        int edits = 1 + (int)(text_rng_next(&seed) % 3);
        for (int e = 0; e < edits; e++)
            text_mutate(t, &n, text_rng_next(&seed) % n, pool, sizeof pool - 1, &seed);
        char err[512] = "";
        ir_graph *g = ir_parse(t, n, "m.ir", err, sizeof err);
        if (!g) {
            cr_assert(strncmp(err, "m.ir:", 5) == 0 && strstr(err, ": error: "), "%s", err);
            continue;
        }
        parsed++;
        cr_assert(ir_verify(g, err, sizeof err), "%s\nfrom:\n%.*s", err, (int)n, t);
        assert_print_fixed_point(g);
        ir_graph_free(g);
    }
    free(t);
    cr_assert(parsed > 100, "only %d mutations parsed: the test is not exercising the printer", parsed);
}

/* Every .ir file under tests/data/ir is canonical. */
Test(text, data_files)
{
    static const char *files[] = {"mlp.ir",    "softmax_regression.ir", "dropout_mlp.ir",
                                  "layout.ir", "mlp_train.ir",          "mlp_fused.ir"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/tests/data/ir/%s", AG_SOURCE_DIR, files[i]);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "cannot open %s", path);
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        int c;
        while ((c = fgetc(f)) != EOF)
            fputc(c, m);
        fclose(m);
        fclose(f);
        assert_canonical(text);
        free(text);
    }
}
