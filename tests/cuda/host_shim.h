/* Generated CUDA C on the CPU: the CUDA language and device API a rendered program uses
 * (codegen/cuda/render.h), for g++ -std=c++17. Include it before the generated source; the
 * launches run through ag_host_launch (tests/cuda/host_run.cpp: compile it beside).
 *
 * A launch runs its blocks one after another; a block's threads are fibers (ucontext) run
 * round robin on one OS thread, each until it reaches a barrier (__syncthreads, a warp
 * operation) or returns. So:
 *   - __shared__ is `static`: a kernel's shared arrays are the block's, blocks never overlap;
 *   - threadIdx is the current fiber's, blockIdx/blockDim/gridDim the launch's (.x only,
 *     .y and .z are 0 / 1);
 *   - __syncthreads() waits until every thread of the block is there; a thread that returns
 *     while others wait is reported (barrier divergence) and the program exits with 2;
 *   - warp operations (__shfl*_sync, __ballot_sync, __any_sync, __all_sync, __syncwarp) wait
 *     for the lanes of their mask (warps of 32 consecutive threads);
 *   - atomics are plain read-modify-writes (nothing runs in between).
 * Not supported: dynamic shared memory (extern __shared__), cooperative groups, textures,
 * 2-D/3-D indexing beyond .x. */
#ifndef AG_TESTS_CUDA_HOST_SHIM_H
#define AG_TESTS_CUDA_HOST_SHIM_H

#ifndef __cplusplus
#error "host_shim.h is C++ (g++ -std=c++17)"
#endif

#include <math.h> /* libstdc++'s: the float overloads (exp(float), ...) in the global namespace */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <ucontext.h>

#include <cmath>
#include <type_traits>

/* ---- the language ---- */
#define __global__
#define __device__
#define __host__
#define __constant__
#define __shared__ static
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

struct ag_dim3 {
    unsigned int x, y, z;
};
typedef ag_dim3 uint3;
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* One thread of the block being run. */
struct ag_fiber {
    ucontext_t ctx; /* its start (setcontext) */
    jmp_buf at;     /* where it yielded: _longjmp, unlike swapcontext, makes no system call */
    char *stack;    /* lowest usable address */
    size_t stack_size;
    ag_dim3 thread;
    bool started;    /* entered since its start (it resumes at `at`) */
    int state;       /* AG_FIBER_* */
    int op;          /* what it waits for: AG_OP_* */
    unsigned mask;   /* a warp operation's lanes */
    int src;         /* a shuffle's source lane */
    int pred;        /* a vote's or a counting barrier's predicate */
    uint64_t val;    /* a shuffle's value (its bytes) */
    uint64_t result; /* what the wait returns */
};
enum { AG_FIBER_RUN, AG_FIBER_BARRIER, AG_FIBER_WARP, AG_FIBER_DONE };
enum {
    AG_OP_SYNC,       /* __syncthreads */
    AG_OP_SYNC_COUNT, /* __syncthreads_count/_and/_or */
    AG_OP_SHFL,       /* a shuffle */
    AG_OP_VOTE,       /* __ballot_sync / __any_sync / __all_sync */
    AG_OP_SYNCWARP,   /* __syncwarp */
};

extern ag_fiber *ag_host_current;
extern ag_dim3 ag_host_block_idx, ag_host_block_dim, ag_host_grid_dim;

static inline ag_fiber *ag_fiber_self(void) { return ag_host_current; }
static inline const ag_dim3 &ag_host_thread_idx(void) { return ag_host_current->thread; }

#define threadIdx (ag_host_thread_idx())
#define blockIdx (static_cast<const ag_dim3 &>(ag_host_block_idx))
#define blockDim (static_cast<const ag_dim3 &>(ag_host_block_dim))
#define gridDim (static_cast<const ag_dim3 &>(ag_host_grid_dim))
static constexpr int warpSize = 32;

/* Suspends the current fiber until the barrier or warp operation it describes (in its
 * ag_fiber) completes; returns the fiber's result. */
uint64_t ag_host_wait(int state);

/* Runs entry(arg) as `block` threads in each of `grid` blocks. */
void ag_host_launch_raw(const char *name, void (*entry)(void *), void *arg, unsigned grid, unsigned block);
/* Frees the fiber stacks (the next launch makes new ones). */
void ag_host_release(void);

/* kernel<<<grid, block>>>(a), synchronously; name is for messages. */
template <class Args> void ag_host_launch(const char *name, void (*kernel)(Args), unsigned grid, unsigned block, Args a)
{
    struct call {
        void (*kernel)(Args);
        Args a;
    } c = {kernel, a};
    ag_host_launch_raw(
        name, [](void *p) { static_cast<call *>(p)->kernel(static_cast<call *>(p)->a); }, &c, grid, block);
}

/* ---- synchronisation ---- */
static inline void __syncthreads(void)
{
    ag_host_current->op = AG_OP_SYNC;
    ag_host_wait(AG_FIBER_BARRIER);
}
static inline int ag_host_sync_count(int pred)
{
    ag_host_current->op = AG_OP_SYNC_COUNT;
    ag_host_current->pred = pred != 0;
    return (int)ag_host_wait(AG_FIBER_BARRIER);
}
static inline int __syncthreads_count(int pred) { return ag_host_sync_count(pred); }
static inline int __syncthreads_and(int pred) { return ag_host_sync_count(pred) == (int)ag_host_block_dim.x; }
static inline int __syncthreads_or(int pred) { return ag_host_sync_count(pred) != 0; }
static inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    ag_host_current->op = AG_OP_SYNCWARP;
    ag_host_current->mask = mask;
    ag_host_wait(AG_FIBER_WARP);
}
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}
static inline void __threadfence_system(void) {}
/* a load that bypasses L1: here memory is one */
template <class T> static inline T __ldcg(const T *p) { return *p; }

/* ---- warp operations ---- */
template <class T> static inline T ag_host_shfl(unsigned mask, T v, int src)
{
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a value of at most 8 bytes");
    ag_fiber *f = ag_host_current;
    f->op = AG_OP_SHFL;
    f->mask = mask;
    f->src = src;
    f->val = 0;
    memcpy(&f->val, &v, sizeof v);
    uint64_t r = ag_host_wait(AG_FIBER_WARP);
    T out;
    memcpy(&out, &r, sizeof out);
    return out;
}
static inline int ag_host_lane(void) { return (int)(ag_host_current->thread.x % 32); }
template <class T> static inline T __shfl_sync(unsigned mask, T v, int srcLane, int width = warpSize)
{
    int lane = ag_host_lane();
    return ag_host_shfl(mask, v, lane / width * width + ((srcLane % width + width) % width));
}
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = warpSize)
{
    int lane = ag_host_lane(), src = lane ^ laneMask;
    return ag_host_shfl(mask, v, src >= (lane / width + 1) * width ? lane : src);
}
template <class T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize)
{
    int lane = ag_host_lane(), src = lane + (int)delta;
    return ag_host_shfl(mask, v, src >= (lane / width + 1) * width ? lane : src);
}
template <class T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize)
{
    int lane = ag_host_lane(), src = lane - (int)delta;
    return ag_host_shfl(mask, v, src < lane / width * width ? lane : src);
}
static inline unsigned __ballot_sync(unsigned mask, int pred)
{
    ag_fiber *f = ag_host_current;
    f->op = AG_OP_VOTE;
    f->mask = mask;
    f->pred = pred != 0;
    return (unsigned)ag_host_wait(AG_FIBER_WARP);
}
static inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
static inline int __all_sync(unsigned mask, int pred)
{
    unsigned b = __ballot_sync(mask, pred);
    unsigned lanes = mask; /* the participating lanes of the mask that exist */
    unsigned n = ag_host_block_dim.x - ag_host_current->thread.x / 32 * 32;
    if (n < 32)
        lanes &= (1u << n) - 1;
    return (b & lanes) == lanes;
}

/* ---- atomics (no other thread runs during one) ---- */
template <class T> static inline T atomicAdd(T *p, T v)
{
    T old = *p;
    *p = old + v;
    return old;
}
template <class T> static inline T atomicSub(T *p, T v)
{
    T old = *p;
    *p = old - v;
    return old;
}
template <class T> static inline T atomicExch(T *p, T v)
{
    T old = *p;
    *p = v;
    return old;
}
template <class T> static inline T atomicMax(T *p, T v)
{
    T old = *p;
    *p = old < v ? v : old;
    return old;
}
template <class T> static inline T atomicMin(T *p, T v)
{
    T old = *p;
    *p = v < old ? v : old;
    return old;
}
template <class T> static inline T atomicCAS(T *p, T cmp, T v)
{
    T old = *p;
    if (old == cmp)
        *p = v;
    return old;
}

/* ---- integer min/max (CUDA's overloads: the usual arithmetic conversions) ---- */
template <class A, class B,
          typename std::enable_if<std::is_integral<A>::value && std::is_integral<B>::value, int>::type = 0>
static inline typename std::common_type<A, B>::type min(A a, B b)
{
    typedef typename std::common_type<A, B>::type T;
    return (T)a < (T)b ? (T)a : (T)b;
}
template <class A, class B,
          typename std::enable_if<std::is_integral<A>::value && std::is_integral<B>::value, int>::type = 0>
static inline typename std::common_type<A, B>::type max(A a, B b)
{
    typedef typename std::common_type<A, B>::type T;
    return (T)a < (T)b ? (T)b : (T)a;
}
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
static inline unsigned umin(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned umax(unsigned a, unsigned b) { return a < b ? b : a; }
static inline long long llmin(long long a, long long b) { return a < b ? a : b; }
static inline long long llmax(long long a, long long b) { return a < b ? b : a; }
static inline unsigned long long ullmin(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
static inline unsigned long long ullmax(unsigned long long a, unsigned long long b) { return a < b ? b : a; }

/* ---- math beyond <math.h> ---- */
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float fdividef(float a, float b) { return a / b; }
static inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : x > 0.0f ? x : 0.0f; }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
/* glibc declares these names itself (its internal aliases, not linkable): macros, after it */
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __log10f(x) log10f(x)
#define __exp10f(x) powf(10.0f, (x))
#define __powf(x, y) powf((x), (y))
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
#define __tanhf(x) tanhf(x)

/* ---- conversions and bits ---- */
static inline unsigned int __float_as_uint(float x)
{
    unsigned int u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline float __uint_as_float(unsigned int u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
static inline int __float_as_int(float x) { return (int)__float_as_uint(x); }
static inline float __int_as_float(int i) { return __uint_as_float((unsigned int)i); }
static inline long long __double_as_longlong(double x)
{
    long long u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline double __longlong_as_double(long long u)
{
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}
static inline int __float2int_rn(float x) { return (int)rintf(x); }
static inline int __float2int_rz(float x) { return (int)x; }
static inline int __float2int_rd(float x) { return (int)floorf(x); }
static inline int __float2int_ru(float x) { return (int)ceilf(x); }
static inline unsigned __float2uint_rn(float x) { return (unsigned)rintf(x); }
static inline unsigned __float2uint_rz(float x) { return (unsigned)x; }
static inline long long __float2ll_rn(float x) { return (long long)rintf(x); }
static inline long long __float2ll_rz(float x) { return (long long)x; }
static inline float __int2float_rn(int i) { return (float)i; }
static inline float __uint2float_rn(unsigned u) { return (float)u; }
static inline float __ll2float_rn(long long i) { return (float)i; }
static inline float __double2float_rn(double x) { return (float)x; }
static inline int __double2int_rn(double x) { return (int)rint(x); }
static inline unsigned int __umulhi(unsigned int a, unsigned int b)
{
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}
static inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b)
{
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
static inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
static inline int __popc(unsigned int x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned int __brev(unsigned int x)
{
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
    return (x >> 16) | (x << 16);
}
template <class T> static inline T __ldg(const T *p) { return *p; }
static inline void __trap(void) { abort(); }

#endif
