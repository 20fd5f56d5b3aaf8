#include "bug.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *stage;
static const ir_graph *graph;
static int32_t node = -1;

void ir_bug_enter(const char *s, const ir_graph *g)
{
    stage = s;
    graph = g;
    node = -1;
}

void ir_bug_leave(void) { ir_bug_enter(NULL, NULL); }

const char *ir_signal_what(int sig)
{
    return sig == SIGSEGV   ? "SIGSEGV, a bad memory access"
           : sig == SIGBUS  ? "SIGBUS, a bad memory access"
           : sig == SIGILL  ? "SIGILL, an illegal instruction or a trap"
           : sig == SIGFPE  ? "SIGFPE, an arithmetic fault"
           : sig == SIGABRT ? "SIGABRT, abort()"
                            : NULL;
}

void ir_bug_node(int32_t n) { node = n; }

const char *ir_bug_where(char *buf, size_t len)
{
    int k = snprintf(buf, len, "in %s", stage ? stage : "aotgrad");
    if (graph && node >= 0 && node < graph->n && k >= 0 && (size_t)k < len) {
        const ir_node *n = &graph->node[node];
        if (n->loc.file)
            snprintf(buf + k, len - (size_t)k, " at %%%d (%s, %s:%d)", node, ir_ops[n->op].name, n->loc.file,
                     n->loc.line);
        else
            snprintf(buf + k, len - (size_t)k, " at %%%d (%s)", node, ir_ops[n->op].name);
    }
    return buf;
}

_Noreturn void ir_bug(const char *fmt, ...)
{
    char where[512], what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "aotgrad: internal error %s: %s (a bug of aotgrad: please report it with the model)\n",
            ir_bug_where(where, sizeof where), what);
    fflush(NULL);
    _exit(IR_EXIT_INTERNAL); /* the state is broken: no exit handlers (nor a leak report) */
}

static void crashed(int sig)
{
    /* the process is broken already: this formats as ir_bug does (snprintf, which is not
     * async-signal-safe, but nothing here returns to the broken code) and leaves at once */
    char where[512], line[800];
    const char *what = ir_signal_what(sig);
    int n = snprintf(line, sizeof line,
                     "aotgrad: internal error %s: %s (a bug of aotgrad: please report it with the model)\n",
                     ir_bug_where(where, sizeof where), what);
    if (n > 0)
        (void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    _exit(IR_EXIT_INTERNAL);
}

void ir_bug_on_crash(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    static char alt[1 << 16]; /* a stack of its own: a stack overflow is caught too */
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
    sigaltstack(&ss, NULL);
    struct sigaction on = {.sa_handler = crashed, .sa_flags = SA_ONSTACK | SA_RESETHAND}, before;
    sigemptyset(&on.sa_mask);
    for (size_t k = 0; k < sizeof sigs / sizeof *sigs; k++)
        if (sigaction(sigs[k], NULL, &before) == 0 && before.sa_handler == SIG_DFL && !(before.sa_flags & SA_SIGINFO))
            sigaction(sigs[k], &on, NULL);
}
