/* Loading a model: a .c file is compiled with the system C compiler against aotgrad.h into
 * a shared object, whose function (named after the file) builds the graph in a child
 * process; a .ir file is parsed and verified. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bug.h"
#include "builder.h"
#include "diag.h"
#include "load.h"

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The first of the candidate folders (printf patterns of the aotgrad binary's folder) that
 * holds `file`, written into buf; NULL if none. */
static const char *beside_exe(char *buf, size_t len, const char *const *candidates, int n, const char *file)
{
    char exe[PATH_MAX];
    ssize_t got = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (got <= 0)
        return NULL;
    exe[got] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 64];
        snprintf(buf, len, candidates[i], exe);
        snprintf(path, sizeof path, "%s/%s", buf, file);
        if (file_exists(path))
            return buf;
    }
    return NULL;
}

const char *fe_include_dir(void)
{
    static char dir[PATH_MAX];
    const char *env = getenv("AOTGRAD_INCLUDE");
    if (env && *env)
        return env;
    /* the build tree keeps the headers in include/ beside the binary; an install in
     * ../include/aotgrad beside bin/ */
    const char *candidates[] = {"%s/include", "%s/../include/aotgrad"};
    return beside_exe(dir, sizeof dir, candidates, 2, "aotgrad.h");
}

const char *fe_runtime_lib(void)
{
    static char dir[PATH_MAX], lib[PATH_MAX + 32];
    const char *env = getenv("AOTGRAD_RUNTIME_LIB");
    if (env && *env)
        return env;
    const char *candidates[] = {"%s/lib", "%s/../lib/aotgrad"};
    if (!beside_exe(dir, sizeof dir, candidates, 2, "libaotgrad_runtime.a"))
        return NULL;
    snprintf(lib, sizeof lib, "%s/libaotgrad_runtime.a", dir);
    return lib;
}

/* The model's name: the file's base name without .c, which must be a C identifier. */
static bool model_name(const char *path, char *name, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 2 && strcmp(base + n - 2, ".c") == 0)
        n -= 2;
    if (n == 0 || n >= len)
        return false;
    memcpy(name, base, n);
    name[n] = 0;
    if (!(name[0] == '_' || (name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(name[i] == '_' || (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
              (name[i] >= '0' && name[i] <= '9')))
            return false;
    return true;
}

int fe_run_program(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        fprintf(stderr, "aotgrad: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Whether a "NAME=VALUE" setting names an option the model declared. */
static bool has_option(const ir_graph *g, const char *setting)
{
    const char *eq = strchr(setting, '=');
    size_t n = eq ? (size_t)(eq - setting) : strlen(setting);
    for (int i = 0; g->train && i < g->train->noptions; i++)
        if (strlen(g->train->options[i].name) == n && memcmp(g->train->options[i].name, setting, n) == 0)
            return eq != NULL;
    return false;
}

/* ---- the model's code runs in a process of its own ----
 *
 * A model is any C: it may crash, call exit, loop forever or print. So the compiled model
 * is loaded and run in a child process, which sends back one message over a pipe: the
 * graph as text IR (which parses back to the same graph, locations included) or the error
 * report to print. Whatever else becomes of the child (an exit, a signal, the time limit)
 * is one error naming the model file, and the temporary folder goes in every case, also
 * when aotgrad itself is interrupted while it waits. */

static double model_timeout = 60;

void fe_set_model_timeout(double seconds) { model_timeout = seconds; }

/* What an interrupt during a load undoes: the compiler or the model's process, whichever
 * runs (helper_pid, 0 if none), and the temporary files. */
static const int interrupts[] = {SIGINT, SIGTERM, SIGHUP};
enum { NINTERRUPTS = sizeof interrupts / sizeof *interrupts };
static struct sigaction interrupts_before[NINTERRUPTS];
static sigset_t interrupt_set, mask_before;
static char tmp_dir[PATH_MAX], tmp_so[PATH_MAX + 16], tmp_log[PATH_MAX + 16]; /* the folder and its files */
static volatile sig_atomic_t helper_pid, helper_is_model;

/* Async-signal-safe calls only. */
static void interrupted(int sig)
{
    pid_t pid = helper_pid;
    if (pid > 0) {
        /* the compiler gets the same signal, so that it removes its own temporaries */
        kill(pid, helper_is_model ? SIGKILL : sig);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    unlink(tmp_so);
    unlink(tmp_log);
    rmdir(tmp_dir);
    /* then die of the signal, as the shell expects */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    sigprocmask(SIG_UNBLOCK, &s, NULL);
    raise(sig);
    _exit(128 + sig);
}

/* Takes the interrupts (an ignored one stays ignored) and leaves them blocked until
 * guard_open, so that none lands between making the folder and recording it. */
static void guard_begin(void)
{
    sigemptyset(&interrupt_set);
    for (int k = 0; k < NINTERRUPTS; k++)
        sigaddset(&interrupt_set, interrupts[k]);
    sigprocmask(SIG_BLOCK, &interrupt_set, &mask_before);
    tmp_dir[0] = tmp_so[0] = tmp_log[0] = 0;
    struct sigaction on = {.sa_handler = interrupted, .sa_mask = interrupt_set}; /* one at a time */
    for (int k = 0; k < NINTERRUPTS; k++) {
        sigaction(interrupts[k], NULL, &interrupts_before[k]);
        if (interrupts_before[k].sa_handler != SIG_IGN)
            sigaction(interrupts[k], &on, NULL);
    }
}

static void guard_open(void) { sigprocmask(SIG_SETMASK, &mask_before, NULL); }

/* Removes the temporary files and gives the interrupts back. */
static void guard_end(void)
{
    sigprocmask(SIG_BLOCK, &interrupt_set, NULL);
    if (tmp_so[0])
        unlink(tmp_so);
    if (tmp_log[0])
        unlink(tmp_log);
    if (tmp_dir[0])
        rmdir(tmp_dir);
    tmp_dir[0] = tmp_so[0] = tmp_log[0] = 0;
    for (int k = 0; k < NINTERRUPTS; k++)
        sigaction(interrupts[k], &interrupts_before[k], NULL);
    sigprocmask(SIG_SETMASK, &mask_before, NULL);
}

/* fork, the child's pid recorded for `interrupted`; the child gets the interrupts'
 * dispositions from before the load. */
static pid_t spawn(bool model)
{
    sigset_t mask;
    sigprocmask(SIG_BLOCK, &interrupt_set, &mask);
    fflush(NULL); /* nothing buffered here is written again by the child */
    pid_t pid = fork();
    if (pid == 0) {
        for (int k = 0; k < NINTERRUPTS; k++)
            sigaction(interrupts[k], &interrupts_before[k], NULL);
    } else if (pid > 0) {
        helper_pid = pid;
        helper_is_model = model;
    }
    sigprocmask(SIG_SETMASK, &mask, NULL);
    return pid;
}

/* Whether the child has ended (it stays a zombie until reaped); waits for it when `block`. */
static bool ended(pid_t pid, bool block)
{
    siginfo_t info = {0};
    while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT | (block ? 0 : WNOHANG)) < 0)
        if (errno != EINTR)
            return true; /* not ours to wait for (SIGCHLD ignored): nothing to wait on */
    return info.si_pid == pid;
}

/* Reaps the child, which has ended or is being killed: its wait status, -1 if unknown.
 * The interrupts are blocked meanwhile, so that `interrupted` never signals a reaped pid. */
static int reap(pid_t pid)
{
    ended(pid, true);
    sigset_t mask;
    sigprocmask(SIG_BLOCK, &interrupt_set, &mask);
    int status;
    pid_t got;
    while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    helper_pid = 0;
    sigprocmask(SIG_SETMASK, &mask, NULL);
    return got == pid ? status : -1;
}

/* Runs the C compiler: its exit status, -1 when it did not run or was killed. */
/* cc's messages to `log` (a file), or to stderr where log is NULL */
static int compile(char *const argv[], const char *log)
{
    pid_t pid = spawn(false);
    if (pid == 0) {
        int fd = log ? open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
        if (fd >= 0)
            dup2(fd, 2);
        execvp(argv[0], argv);
        fprintf(stderr, "aotgrad: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (pid < 0)
        return -1;
    int status = reap(pid);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- in the child ---- */

static int message_fd = -1; /* the pipe to the parent */
static bool in_model;       /* the model's code runs: an exit() is the model's */

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* The child's one message: "aotgrad-model KIND LENGTH\n" and LENGTH bytes. KIND is G (the
 * graph as text IR), E (the error report to print) or X (the model called exit(BODY)). */
static void send_message(char kind, const char *body, size_t len)
{
    char head[64];
    int n = snprintf(head, sizeof head, "aotgrad-model %c %zu\n", kind, len);
    if (write_all(message_fd, head, (size_t)n))
        write_all(message_fd, body, len);
}

/* on_exit, registered before the model is loaded, so it runs after the exit handlers the
 * model itself registers (they run in reverse order) and first of aotgrad's: says the model
 * exited, then goes without
 * running aotgrad's atexit handlers and destructors, whose threads are not in this process. */
static void model_exited(int status, void *arg)
{
    (void)arg;
    fflush(stdout);
    if (in_model) {
        char s[16];
        int n = snprintf(s, sizeof s, "%d", status);
        send_message('X', s, (size_t)n);
    }
    _exit(status);
}

/* Loads the model, runs its function and sends the graph or the errors; never returns. */
static _Noreturn void build_child(int fd, pid_t parent, const char *path, const char *name, const char *so,
                                  const char *const *settings)
{
    message_fd = fd;
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a model looping on never outlives aotgrad */
    if (getppid() != parent)
        _exit(1);
    dup2(2, 1); /* what the model prints goes with the diagnostics, not into the IR on stdout */
    /* a crash ends the child (the parent names the signal; a sanitizer's handler would
     * exit(1) instead), leaving no core file */
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t k = 0; k < sizeof fatal / sizeof *fatal; k++)
        signal(fatal[k], SIG_DFL);
    setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
    char *report = NULL;
    size_t len = 0;
    FILE *r = open_memstream(&report, &len);
    if (!r)
        _exit(1);
    on_exit(model_exited, NULL);
    in_model = true; /* from dlopen on: the model's constructors run there */
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(r, "%s: error: cannot load the compiled model: %s\n", path, dlerror());
        goto fail;
    }
    void (*build)(ag_graph *);
    *(void **)&build = dlsym(lib, name);
    if (!build) {
        fprintf(r, "%s: error: no function 'void %s(ag_graph *g)'; a model's function is named after its file\n", path,
                name);
        goto fail;
    }
    ir_graph *g = ir_graph_new(name);
    g->settings = settings;
    ag_graph_building(g);
    build(g);
    ag_graph_building(NULL);
    in_model = false;
    fflush(stdout);
    g->settings = NULL;
    for (const char *const *s = settings; s && *s; s++)
        if (!has_option(g, *s)) {
            fprintf(r, "%s: error: --set %s: the model has no such option%s", path, *s,
                    g->train && g->train->noptions ? " (its options:" : "\n");
            for (int i = 0; g->train && i < g->train->noptions; i++)
                fprintf(r, " %s%s", g->train->options[i].name, i + 1 < g->train->noptions ? "," : ")\n");
            goto fail;
        }
    if (ag_graph_finish(g) > 0) {
        enum { SHOWN = 100 }; /* a mistake in a loop must not bury the terminal */
        int errors = ag_graph_error_count(g);
        for (int i = 0; i < errors && i < SHOWN; i++) {
            fe_diag_print(r, ag_graph_error(g, i));
            const char *notes = ag_graph_error_notes(g, i);
            for (const char *n = notes; n && *n;) { /* a line each */
                const char *eol = strchr(n, '\n');
                char line[2048];
                snprintf(line, sizeof line, "%.*s", eol ? (int)(eol - n) : (int)strlen(n), n);
                fe_diag_print(r, line);
                n = eol ? eol + 1 : n + strlen(n);
            }
        }
        if (errors > SHOWN)
            fprintf(r, "%s: (%d more errors not shown)\n", path, errors - SHOWN);
        fprintf(r, "%s: %d error%s\n", path, errors, errors == 1 ? "" : "s");
        goto fail;
    }
    char *text = ir_print_str(g);
    send_message('G', text, strlen(text));
    _exit(0);
fail:
    in_model = false;
    fflush(stdout);
    fclose(r);
    send_message('E', report ? report : "", report ? len : 0);
    _exit(1);
}

/* ---- in the parent ---- */

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The kind of the child's message in buf (NUL-ended), once it is whole, with its body; 0
 * until then. */
static char whole_message(const char *buf, size_t got, const char **body, size_t *len)
{
    static const char magic[] = "aotgrad-model ";
    const size_t m = sizeof magic - 1;
    const char *nl = memchr(buf, '\n', got);
    if (!nl || (size_t)(nl - buf) < m + 3 || memcmp(buf, magic, m) != 0 || buf[m + 1] != ' ')
        return 0;
    char *end;
    unsigned long long n = strtoull(buf + m + 2, &end, 10);
    size_t head = (size_t)(nl + 1 - buf);
    if (end != nl || got - head < n)
        return 0;
    *body = nl + 1;
    *len = (size_t)n;
    return buf[m];
}

/* Says how the child ended without its message. */
static void report_end(const char *path, int status, bool timed_out)
{
    if (timed_out) {
        fprintf(stderr, "%s: error: the model's code did not finish building the graph within %g s (--model-timeout)\n",
                path, model_timeout);
    } else if (status != -1 && WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *crash = ir_signal_what(sig);
        if (crash)
            fprintf(stderr, "%s: error: the model's code crashed while building the graph (%s)\n", path, crash);
        else
            fprintf(stderr, "%s: error: the model's process was killed by signal %d (%s) while building the graph\n",
                    path, sig, strsignal(sig));
    } else if (status != -1 && WIFEXITED(status)) {
        fprintf(stderr, "%s: error: the model's process exited with status %d before it finished building the graph\n",
                path, WEXITSTATUS(status));
    } else {
        fprintf(stderr, "%s: error: the model's process ended before it finished building the graph\n", path);
    }
}

/* Builds the graph in a child process (build_child) and reads it back, within model_timeout. */
static ir_graph *build_in_child(const char *path, const char *name, const char *so, const char *const *settings)
{
    int fds[2];
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap + 1);
    if (!buf || pipe(fds) != 0) {
        fprintf(stderr, "%s: error: cannot start a process to build the graph: %s\n", path, strerror(errno));
        free(buf);
        return NULL;
    }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    pid_t parent = getpid();
    double deadline = seconds_now() + model_timeout;
    pid_t pid = spawn(true);
    if (pid == 0) {
        close(fds[0]);
        build_child(fds[1], parent, path, name, so, settings);
    }
    close(fds[1]);
    if (pid < 0) {
        fprintf(stderr, "%s: error: cannot start a process to build the graph: %s\n", path, strerror(errno));
        close(fds[0]);
        free(buf);
        return NULL;
    }
    const char *body = NULL;
    size_t len = 0;
    char kind = 0;
    bool in_time = true, no_memory = false;
    while (!kind) {
        double left = deadline - seconds_now();
        if (left <= 0) {
            in_time = false;
            break;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int r = poll(&p, 1, left > 1e6 ? 1000000000 : (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        if (got == cap) {
            char *b = realloc(buf, (cap *= 2) + 1);
            if (!b) {
                fprintf(stderr, "%s: error: out of memory for the model's graph\n", path);
                no_memory = true;
                break;
            }
            buf = b;
        }
        ssize_t k = read(fds[0], buf + got, cap - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) /* the child is gone, or closed its end */
            break;
        got += (size_t)k;
        buf[got] = 0;
        kind = whole_message(buf, got, &body, &len);
    }
    close(fds[0]);
    /* the child ends right after its message; one that closed the pipe and went on has
     * until the deadline */
    while (in_time && !no_memory && !ended(pid, false)) {
        if (seconds_now() >= deadline) {
            in_time = false;
            break;
        }
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    if (!in_time || no_memory)
        kill(pid, SIGKILL);
    int status = reap(pid);
    ir_graph *g = NULL;
    if (kind == 'G') {
        char err[512];
        g = ir_parse(body, len, "text IR", err, sizeof err);
        if (!g)
            fprintf(stderr, "%s: error: the graph the model built does not read back (%s)\n", path, err);
    } else if (kind == 'E') {
        fwrite(body, 1, len, stderr);
    } else if (kind == 'X') {
        fprintf(stderr, "%s: error: the model's code called exit(%.*s) while building the graph\n", path, (int)len,
                body);
    } else if (!no_memory) {
        report_end(path, status, !in_time);
    }
    free(buf);
    return g;
}

static void copy_file_to_stderr(const char *path)
{
    size_t len = 0;
    char *text = fe_read_file(path, &len);
    if (text && len)
        fwrite(text, 1, len, stderr);
    free(text);
}

/* cc's first error and the lines it indents under it (the source line, the caret), not the
 * rest: a missing ';' in a model gives dozens of lines of macro expansions after it. */
static void first_compiler_error(const char *log, const char *inc, const char *path)
{
    size_t len = 0;
    char *text = fe_read_file(log, &len);
    const char *at = text ? strstr(text, ": error: ") : NULL;
    while (at && at > text && at[-1] != '\n')
        at--;
    if (!at) { /* no error line (a linker's, a missing cc): all of it */
        if (text && len)
            fwrite(text, 1, len, stderr);
        free(text);
        return;
    }
    const char *end = strchr(at, '\n');
    while (end && end[1] == ' ') /* the lines indented under it */
        end = strchr(end + 1, '\n');
    end = end ? end + 1 : text + len;
    fwrite(at, 1, (size_t)(end - at), stderr);
    int more = 0;
    for (const char *p = end; p < text + len; p++)
        more += *p == '\n';
    if (more)
        fprintf(stderr,
                "(%d more line%s from the compiler: cc -std=gnu17 -fsyntax-only %s %s shows them, or set "
                "AOTGRAD_CC_VERBOSE=1)\n",
                more, more == 1 ? "" : "s", inc, path);
    free(text);
}

static ir_graph *load_c(const char *path, const char *include_dir, const char *const *settings)
{
    char name[256];
    if (!model_name(path, name, sizeof name)) {
        fprintf(stderr, "%s: error: the model's name is its file's base name, which must be a C identifier\n", path);
        return NULL;
    }
    if (!include_dir)
        include_dir = fe_include_dir();
    if (!include_dir) {
        fprintf(stderr, "aotgrad: cannot find aotgrad.h beside the aotgrad binary (set AOTGRAD_INCLUDE)\n");
        return NULL;
    }
    const char *tmpdir = getenv("TMPDIR");
    if (!tmpdir || !*tmpdir)
        tmpdir = "/tmp";
    guard_begin();
    int n = snprintf(tmp_dir, sizeof tmp_dir, "%s/aotgrad-model-XXXXXX", tmpdir);
    if (n < 0 || (size_t)n >= sizeof tmp_dir || !mkdtemp(tmp_dir)) {
        fprintf(stderr, "aotgrad: cannot make a temporary folder in %s: %s\n", tmpdir,
                n < 0 || (size_t)n >= sizeof tmp_dir ? "the path is too long" : strerror(errno));
        tmp_dir[0] = 0;
        guard_open();
        guard_end();
        return NULL;
    }
    snprintf(tmp_so, sizeof tmp_so, "%s/model.so", tmp_dir);
    snprintf(tmp_log, sizeof tmp_log, "%s/cc.log", tmp_dir);
    guard_open();
    char inc[PATH_MAX + 2];
    snprintf(inc, sizeof inc, "-I%s", include_dir);
    const char *cc = getenv("CC");
    char *argv[] = {(char *)(cc && *cc ? cc : "cc"),
                    "-std=gnu17",
                    "-shared",
                    "-fPIC",
                    "-O0",
                    "-Werror=implicit-function-declaration",
                    inc,
                    "-o",
                    tmp_so,
                    (char *)path,
                    NULL};
    ir_graph *g = NULL;
    const char *log = tmp_log;
    bool verbose = getenv("AOTGRAD_CC_VERBOSE") && *getenv("AOTGRAD_CC_VERBOSE");
    int rc = compile(argv, verbose ? NULL : log);
    if (rc != 0 && !verbose)
        first_compiler_error(log, inc, path);
    else if (!verbose) /* warnings of a model that compiles: as cc wrote them */
        copy_file_to_stderr(log);
    unlink(log); /* before the model runs: an interrupt then removes the folder's other entries */
    if (rc != 0)
        fprintf(stderr, "%s: error: the model did not compile (%s exited with %d)\n", path, argv[0], rc);
    else
        g = build_in_child(path, name, tmp_so, settings);
    guard_end();
    return g;
}

char *fe_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) { /* room for a NUL */
        n += got;
        if (n == cap - 1) {
            char *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad || !buf) {
        free(buf);
        return NULL;
    }
    buf[n] = 0; /* a string too, for callers that want one */
    *len = n;
    return buf;
}

static ir_graph *load_ir(const char *path)
{
    size_t len;
    char *text = fe_read_file(path, &len);
    if (!text) {
        fprintf(stderr, "%s: error: cannot read: %s\n", path, strerror(errno));
        return NULL;
    }
    char err[512];
    ir_graph *g = ir_parse(text, len, path, err, sizeof err);
    free(text);
    if (!g) {
        fprintf(stderr, "%s\n", err); /* it names the file, line and column */
        return NULL;
    }
    if (!ir_verify(g, err, sizeof err)) {
        fe_report(path, err);
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

void fe_report(const char *where, const char *err)
{
    const char *located = strstr(err, ": error: "), *eol = strchr(err, '\n');
    if (located && (!eol || located < eol) && !memchr(err, ' ', (size_t)(located - err)))
        fprintf(stderr, "%s\n", err);
    else
        fprintf(stderr, "%s: error: %s\n", where, err);
}

ir_graph *fe_load(const char *path, const char *include_dir, const char *const *settings)
{
    size_t n = strlen(path);
    if (n > 3 && strcmp(path + n - 3, ".ir") == 0) {
        if (settings && *settings) {
            fprintf(stderr, "%s: error: --set applies to model files; a .ir file has its options built in\n", path);
            return NULL;
        }
        return load_ir(path);
    }
    if (!file_exists(path)) {
        fprintf(stderr, "%s: error: no such file\n", path);
        return NULL;
    }
    return load_c(path, include_dir, settings);
}
