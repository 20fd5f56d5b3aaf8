/* The launches of host_shim.h: a block's threads as fibers (ucontext) on one OS thread,
 * scheduled round robin; blocks one after another. Errors (barrier divergence, deadlock,
 * a bad launch) are reported on stderr and exit with status 2.
 *
 * A fiber starts with setcontext; it yields and resumes with _setjmp/_longjmp, which
 * (unlike swapcontext) make no system call for the signal mask: with swapcontext the
 * switches at barriers were half the shim's time (12.7 s of system time in 25 s for 20
 * MLP steps). Under AddressSanitizer every switch is announced
 * (__sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber), so ASan checks each
 * fiber against its own stack. */
#include "host_shim.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define AG_HOST_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

ag_fiber *ag_host_current;
ag_dim3 ag_host_block_idx, ag_host_block_dim, ag_host_grid_dim;

namespace
{

const unsigned max_threads = 1024;
/* per thread; only the pages touched are ever backed (ASan's frames are larger) */
const size_t stack_size = 256 << 10;

struct scheduler {
    jmp_buf at;       /* the launching thread's, where it entered the running fiber */
    ag_fiber *fibers; /* fibers[0..nstacks): stacks allocated, reused by every launch */
    unsigned nstacks;
    const char *name; /* the kernel's */
    void (*entry)(void *);
    void *arg;
    unsigned block;          /* threads per block */
    const void *main_bottom; /* the launching thread's stack, for ASan */
    size_t main_size;
} S;

size_t page_size() { return (size_t)sysconf(_SC_PAGESIZE); }

[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "kernel %s: block %u: ", S.name, ag_host_block_idx.x);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

void grow(unsigned n)
{
    if (n <= S.nstacks)
        return;
    ag_fiber *f = (ag_fiber *)realloc((void *)S.fibers, n * sizeof *f);
    if (!f) {
        fprintf(stderr, "host_run: out of memory\n");
        exit(2);
    }
    S.fibers = f;
    size_t guard = page_size();
    for (unsigned i = S.nstacks; i < n; i++) {
        /* a guard page below each stack: an overflow faults instead of corrupting another */
        void *m = mmap(nullptr, guard + stack_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (m == MAP_FAILED || mprotect(m, guard, PROT_NONE) != 0) {
            fprintf(stderr, "host_run: cannot map a fiber stack\n");
            exit(2);
        }
        memset((void *)&f[i], 0, sizeof f[i]);
        f[i].stack = (char *)m + guard;
        f[i].stack_size = stack_size;
    }
    S.nstacks = n;
}

/* Jumps to `to` with libc's _longjmp. Under ASan neither through its interceptor nor
 * declared noreturn (the compiler calls __asan_handle_no_return before such a call): each
 * would unpoison the rest of the stack it leaves, a yielding fiber's frames and their
 * redzones, and ask the kernel for the signal stack (3.8M system calls in 20 MLP steps). */
void jump(jmp_buf to)
{
#ifdef AG_HOST_ASAN
    static void (*libc_longjmp)(jmp_buf, int);
    if (!libc_longjmp) {
        void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
        libc_longjmp = libc ? (void (*)(jmp_buf, int))dlsym(libc, "_longjmp") : nullptr;
        if (!libc_longjmp) {
            fprintf(stderr, "host_run: no _longjmp in libc.so.6\n");
            exit(2);
        }
    }
    libc_longjmp(to, 1);
#else
    _longjmp(to, 1);
#endif
}

/* The launching thread -> fiber f, until f yields. */
void enter(ag_fiber *f)
{
    ag_host_current = f;
#ifdef AG_HOST_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f->stack, f->stack_size);
#endif
    if (!_setjmp(S.at)) {
        if (f->started)
            jump(f->at);
        f->started = true;
        setcontext(&f->ctx);
    }
#ifdef AG_HOST_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    ag_host_current = nullptr;
}

/* Fiber f -> the launching thread; returns when f is resumed (never once it is done). */
void leave(ag_fiber *f)
{
#ifdef AG_HOST_ASAN
    void *fake = nullptr;
    /* a fiber that is done is never resumed: a null save lets ASan drop its fake stack */
    __sanitizer_start_switch_fiber(f->state == AG_FIBER_DONE ? nullptr : &fake, S.main_bottom, S.main_size);
#endif
    if (!_setjmp(f->at))
        jump(S.at);
#ifdef AG_HOST_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

void fiber_main()
{
#ifdef AG_HOST_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &S.main_bottom, &S.main_size);
#endif
    ag_fiber *f = ag_host_current;
    S.entry(S.arg);
    f = ag_host_current; /* the same fiber: only it runs here */
    f->state = AG_FIBER_DONE;
    leave(f);
    abort(); /* a finished fiber is never resumed */
}

void start(ag_fiber *f, unsigned t)
{
    f->state = AG_FIBER_RUN;
    f->thread = ag_dim3{t, 0, 0};
    f->started = false;
    if (getcontext(&f->ctx) != 0) {
        fprintf(stderr, "host_run: getcontext failed\n");
        exit(2);
    }
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = f->stack_size;
    f->ctx.uc_link = nullptr;
    makecontext(&f->ctx, fiber_main, 0);
#ifdef AG_HOST_ASAN
    /* the stack's previous fiber never returned from its frames: forget their redzones */
    __asan_unpoison_memory_region(f->stack, f->stack_size);
#endif
}

const char *wait_name(const ag_fiber *f)
{
    if (f->state == AG_FIBER_BARRIER)
        return "__syncthreads()";
    switch (f->op) {
    case AG_OP_SHFL: return "a warp shuffle";
    case AG_OP_VOTE: return "a warp vote";
    default: return "__syncwarp()";
    }
}

/* Completes the warp operations whose lanes are all there; true if any was. */
bool release_warps()
{
    ag_fiber *f = S.fibers;
    unsigned n = S.block;
    bool released = false;
    for (unsigned w = 0; w * 32 < n; w++) {
        unsigned lanes = n - w * 32 < 32 ? n - w * 32 : 32, waiting = 0;
        for (unsigned l = 0; l < lanes; l++)
            if (f[w * 32 + l].state == AG_FIBER_WARP)
                waiting |= 1u << l;
        if (!waiting)
            continue;
        bool ready = true;
        for (unsigned l = 0; l < lanes && ready; l++) {
            if (!(waiting >> l & 1))
                continue;
            unsigned need = f[w * 32 + l].mask & (lanes == 32 ? ~0u : (1u << lanes) - 1);
            for (unsigned k = 0; k < lanes; k++)
                if ((need >> k & 1) && !(waiting >> k & 1)) {
                    const ag_fiber *other = &f[w * 32 + k];
                    if (other->state == AG_FIBER_DONE)
                        fail("thread %u returned while thread %u waits for it at %s", w * 32 + k, w * 32 + l,
                             wait_name(&f[w * 32 + l]));
                    ready = false;
                    break;
                }
        }
        if (!ready)
            continue;
        unsigned ballot = 0;
        for (unsigned l = 0; l < lanes; l++)
            if ((waiting >> l & 1) && f[w * 32 + l].op == AG_OP_VOTE && f[w * 32 + l].pred)
                ballot |= 1u << l;
        for (unsigned l = 0; l < lanes; l++) {
            ag_fiber *t = &f[w * 32 + l];
            if (!(waiting >> l & 1))
                continue;
            if (t->op == AG_OP_SHFL) {
                unsigned s = (unsigned)t->src;
                t->result = s < lanes && (waiting >> s & 1) ? f[w * 32 + s].val : t->val;
            } else if (t->op == AG_OP_VOTE)
                t->result = ballot & t->mask;
            else
                t->result = 0;
        }
        for (unsigned l = 0; l < lanes; l++)
            if (waiting >> l & 1)
                f[w * 32 + l].state = AG_FIBER_RUN;
        released = true;
    }
    return released;
}

/* Nothing can run: completes a barrier, or reports why the block is stuck. false once every
 * thread is done. */
bool resolve()
{
    ag_fiber *f = S.fibers;
    unsigned n = S.block, done = 0, barrier = 0, first_done = 0, first_warp = n;
    for (unsigned t = 0; t < n; t++)
        if (f[t].state == AG_FIBER_DONE) {
            if (done++ == 0)
                first_done = t;
        } else if (f[t].state == AG_FIBER_BARRIER)
            barrier++;
        else if (f[t].state == AG_FIBER_WARP && first_warp == n)
            first_warp = t;
    if (done == n)
        return false;
    if (release_warps())
        return true;
    if (barrier + done == n) {
        if (done)
            fail("thread %u returned while others wait at __syncthreads()", first_done);
        unsigned count = 0;
        for (unsigned t = 0; t < n; t++)
            count += f[t].op == AG_OP_SYNC_COUNT && f[t].pred;
        for (unsigned t = 0; t < n; t++) {
            f[t].result = count;
            f[t].state = AG_FIBER_RUN;
        }
        return true;
    }
    /* some wait at a warp operation that cannot complete */
    const ag_fiber *w = &f[first_warp];
    for (unsigned t = 0; t < n; t++)
        if (t / 32 == first_warp / 32 && (w->mask >> (t % 32) & 1) && f[t].state != AG_FIBER_WARP)
            fail("deadlock: thread %u waits at %s while thread %u waits at %s", first_warp, wait_name(w), t,
                 wait_name(&f[t]));
    fail("deadlock: thread %u waits at %s while others wait at __syncthreads()", first_warp, wait_name(w));
}

} // namespace

uint64_t ag_host_wait(int state)
{
    ag_fiber *f = ag_host_current;
    f->state = state;
    leave(f);
    return f->result;
}

void ag_host_launch_raw(const char *name, void (*entry)(void *), void *arg, unsigned grid, unsigned block)
{
    S.name = name;
    ag_host_block_idx = ag_dim3{0, 0, 0};
    if (grid < 1 || block < 1 || block > max_threads)
        fail("bad launch: %u blocks of %u threads", grid, block);
    if (ag_host_current)
        fail("launch from inside a kernel");
    grow(block);
    S.entry = entry;
    S.arg = arg;
    S.block = block;
    ag_host_grid_dim = ag_dim3{grid, 1, 1};
    ag_host_block_dim = ag_dim3{block, 1, 1};
    for (unsigned b = 0; b < grid; b++) {
        ag_host_block_idx = ag_dim3{b, 0, 0};
        for (unsigned t = 0; t < block; t++)
            start(&S.fibers[t], t);
        do
            for (unsigned t = 0; t < block; t++)
                while (S.fibers[t].state == AG_FIBER_RUN)
                    enter(&S.fibers[t]);
        while (resolve());
    }
}

void ag_host_release(void)
{
    size_t guard = page_size();
    for (unsigned i = 0; i < S.nstacks; i++)
        munmap(S.fibers[i].stack - guard, guard + S.fibers[i].stack_size);
    free((void *)S.fibers);
    S.fibers = nullptr;
    S.nstacks = 0;
}
