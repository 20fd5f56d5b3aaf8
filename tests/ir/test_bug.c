/* Internal failures (ir/bug.h): one line naming the stage, the node and the model line it
 * came from, exit status 70, for a broken invariant (ir_bug) and for a crash alike. Out of
 * memory (ir/alloc.h): one line, exit status 1. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "bug.h"
#include "ir.h"

/* Runs fn in a child; its exit status (or 128 + the signal) and what it wrote to stderr. */
static int in_child(void (*fn)(void), char *out, size_t len)
{
    int p[2];
    cr_assert(pipe(p) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        fn();
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    for (ssize_t k; n + 1 < len && (k = read(p[0], out + n, len - 1 - n)) > 0;)
        n += (size_t)k;
    out[n] = 0;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static ir_graph *graph(void)
{
    char err[256];
    const char *text = "graph @g {\n  %x: f32[N,3] = input  ; model.c:4\n  %0: f32[N,3] = tanh %x  ; model.c:7\n"
                       "  return y: %0\n}\n";
    ir_graph *g = ir_parse(text, strlen(text), "g.ir", err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    return g;
}

static void broken_invariant(void)
{
    ir_graph *g = graph();
    ir_bug_enter("fuse", g);
    ir_bug_node(1);
    ir_bug("a kernel of %d nodes does not type-check", 2);
}

Test(bug, a_broken_invariant_names_the_stage_node_and_line_and_exits_70)
{
    char out[2048];
    int rc = in_child(broken_invariant, out, sizeof out);
    cr_expect_eq(rc, IR_EXIT_INTERNAL, "exit status %d: %s", rc, out);
    cr_expect_str_eq(out, "aotgrad: internal error in fuse at %1 (tanh, model.c:7): a kernel of 2 nodes does not "
                          "type-check (a bug of aotgrad: please report it with the model)\n");
}

static void crash(void)
{
    ir_graph *g = graph();
    signal(SIGSEGV, SIG_DFL); /* a sanitizer's handler would keep the signal (ir_bug_on_crash leaves it) */
    ir_bug_on_crash();
    ir_bug_enter("lower", g);
    ir_bug_node(1);
    raise(SIGSEGV);
}

static void abort_in_a_stage(void)
{
    signal(SIGABRT, SIG_DFL);
    ir_bug_on_crash();
    ir_bug_enter("simplify", NULL);
    abort();
}

Test(bug, a_crash_says_where_and_exits_70_not_a_signal)
{
    char out[2048];
    int rc = in_child(crash, out, sizeof out);
    cr_expect_eq(rc, IR_EXIT_INTERNAL, "exit status %d: %s", rc, out);
    cr_expect_str_eq(out, "aotgrad: internal error in lower at %1 (tanh, model.c:7): SIGSEGV, a bad memory access (a "
                          "bug of aotgrad: please report it with the model)\n");
    rc = in_child(abort_in_a_stage, out, sizeof out);
    cr_expect_eq(rc, IR_EXIT_INTERNAL, "exit status %d: %s", rc, out);
    cr_expect(strstr(out, "aotgrad: internal error in simplify: SIGABRT, abort()"), "%s", out);
}

/* ---- allocations ---- */

Test(alloc, zero_sizes_give_distinct_pointers)
{
    void *a = ir_xmalloc(0), *b = ir_xcalloc(0, 8), *c = ir_xrealloc(NULL, 0);
    cr_assert(a && b && c && a != b && b != c);
    char *s = ir_xstrdup("relu");
    cr_assert_str_eq(s, "relu");
    free(a), free(b), free(c), free(s);
}

static void huge_malloc(void) { (void)ir_xmalloc(SIZE_MAX - 4096); }
static void huge_calloc(void) { (void)ir_xcalloc(SIZE_MAX / 2, 4); } /* the product overflows */
static void *volatile kept; /* reachable from a global (volatile: kept in memory), so exit(1) is no leak */
static void huge_realloc(void)
{
    kept = ir_xmalloc(8);
    kept = ir_xrealloc(kept, SIZE_MAX - 4096);
    free(kept);
}

/* (ASan returns NULL too: AG_TEST_ENV sets allocator_may_return_null) */
Test(alloc, out_of_memory_is_one_line_and_status_1)
{
    void (*const fns[])(void) = {huge_malloc, huge_calloc, huge_realloc};
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
        char out[512];
        int st = in_child(fns[i], out, sizeof out);
        cr_expect_eq(st, 1, "case %zu: status %d: %s", i, st, out);
        /* one line, the sanitizers' own ("==PID==...") aside */
        int lines = 0, ours = 0;
        for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n"))
            if (strncmp(l, "==", 2) != 0)
                lines++, ours += strcmp(l, "aotgrad: out of memory") == 0;
        cr_expect(lines == 1 && ours == 1, "case %zu: %d lines, %d of them the message", i, lines, ours);
    }
}
