/* fuzz_models: the random-model differential tester.
 *
 *     fuzz_models --cases N --seed S [--jobs J] [--out DIR] ...
 *
 * Case i draws a model from seed S+i (tests/fuzz/generate.c) and judges it by every oracle
 * (tests/fuzz/oracles.h), each case in a child process of its own so that a crash, an abort,
 * a sanitizer's report or a hang is a finding like any other. A model the interpreter finds
 * near a discontinuity is drawn again (counted). Each failure is shrunk (tests/fuzz/shrink.c)
 * and written to DIR as a model file and its .ir; the last line is
 *     fuzz_models: N cases, M failed (...)
 * and the exit status 1 when M > 0. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "load.h"
#include "oracles.h"
#include "recipe.h"

#ifndef AG_AOTGRAD_BIN
#define AG_AOTGRAD_BIN "aotgrad"
#endif

enum { MAX_REDRAWS = 60, MAX_JOBS = 64 };

typedef struct options {
    long long cases, seed;
    int jobs;
    const char *out;
    double timeout;    /* seconds a case may take */
    int cuda_every;    /* one case in K goes through the host shim too; 0: none */
    int binary_every;  /* one case in K is data-shaped and built into a binary; 0: none */
    int forward_every; /* one case in K (of the others) declares no training: a forward computation */
    int shrink_budget; /* candidates tried per failure */
    int shrink_max;    /* failures shrunk */
    bool verbose;
    const char *aotgrad;
    char workdir[512];
} options;

/* What a case's child sends: the model before each check, then the verdict. */
typedef struct message {
    enum { MSG_MODEL, MSG_RESULT } type;
    int redraws;
    fz_result result;
    fz_model model;
} message;

typedef struct outcome {
    long long seed;
    bool verdict; /* the child sent one (else it crashed, hung or exited early) */
    bool failed, gave_up;
    int redraws;
    char oracle[32];
    char text[4200];
    fz_model *model; /* a failure's: the last model sent (malloc'd; NULL when none came) */
    bool data_shaped, cuda, binary;
} outcome;

static uint64_t hash64(uint64_t x) { return fz_mix64(&x); }

/* $TMPDIR, else /tmp */
static const char *tmp_dir(void) { return getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp"; }
static const char *aotgrad_bin(void)
{
    return getenv("AOTGRAD_BIN") && *getenv("AOTGRAD_BIN") ? getenv("AOTGRAD_BIN") : AG_AOTGRAD_BIN;
}

/* SIGINT or SIGTERM: the children are killed and the work folder removed before leaving */
static volatile sig_atomic_t stopping;
static void stop(int sig) { stopping = sig; }

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static bool write_all(int fd, const void *p, size_t n)
{
    for (const char *c = p; n;) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c += w, n -= (size_t)w;
    }
    return true;
}

static fz_check_opts check_opts(const options *o, bool cuda, bool binary)
{
    return (fz_check_opts){.jit = true, .cuda = cuda, .binary = binary, .workdir = o->workdir, .aotgrad = o->aotgrad};
}

/* ---- one case, in a child ---- */

static void run_case(const options *o, long long seed, bool data_shaped, bool forward, bool cuda, bool binary, int fd)
{
    const char *test = getenv("FUZZ_MODELS_TEST"); /* the harness's own tests: a case that hangs or crashes */
    if (test && !strcmp(test, "hang"))
        (void)!system("sleep 600"); /* a program it started hangs: the time limit kills both */
    if (test && !strcmp(test, "crash"))
        abort();
    message *msg = calloc(1, sizeof *msg);
    fz_gen_opts g = {.data_shaped = data_shaped, .forward_only = forward};
    fz_check_opts c = check_opts(o, cuda, binary);
    for (int attempt = 0; attempt <= MAX_REDRAWS; attempt++) {
        uint64_t mseed =
            attempt == 0 ? (uint64_t)seed : hash64((uint64_t)seed * 1000003u + (uint64_t)attempt) % 1000000000000ull;
        char err[1024];
        msg->redraws = attempt;
        if (!fz_generate(mseed, &g, &msg->model, err, sizeof err)) {
            msg->type = MSG_RESULT;
            msg->result = (fz_result){.outcome = FZ_FAIL};
            snprintf(msg->result.oracle, sizeof msg->result.oracle, "generator");
            snprintf(msg->result.message, sizeof msg->result.message, "%s", err);
            write_all(fd, msg, sizeof *msg);
            _exit(0);
        }
        msg->type = MSG_MODEL;
        write_all(fd, msg, sizeof *msg);
        fz_check(&msg->model, &c, &msg->result);
        if (msg->result.outcome != FZ_REDRAW || attempt == MAX_REDRAWS)
            break;
        if (o->verbose)
            fprintf(stderr, "  seed %lld: redraw (%s)\n", seed, msg->result.message);
    }
    msg->type = MSG_RESULT;
    write_all(fd, msg, sizeof *msg);
    _exit(0);
}

/* A running child: its pipe, its buffer, its deadline, the last model it sent. */
typedef struct running {
    pid_t pid; /* also its process group's: what it starts dies with it */
    int fd;    /* non-blocking */
    double deadline;
    message *msg;
    size_t got;
    fz_model *last;
    bool have_last;
    outcome *into;
    char errfile[600];
} running;

/* Starts fn(arg, fd) in a child, in a process group of its own (so that a timeout kills what
 * it started too), whose stdout and stderr go to a file (kept for the report). */
static bool spawn(running *r, const options *o, void (*fn)(const options *, void *, int), void *arg, outcome *into)
{
    int p[2];
    if (!r->msg && !(r->msg = malloc(sizeof *r->msg)))
        return false;
    if (!r->last && !(r->last = malloc(sizeof *r->last)))
        return false;
    if (pipe2(p, O_CLOEXEC) != 0) /* the programs a case runs do not hold the pipe open */
        return false;
    snprintf(r->errfile, sizeof r->errfile, "%s/stderr.%d.%p", o->workdir, (int)getpid(), (void *)r);
    fflush(NULL);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a killed fuzz_models takes its cases along */
        if (getppid() != parent)
            _exit(1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        close(p[0]);
        int e = open(r->errfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (e >= 0) {
            dup2(e, 1);
            dup2(e, 2);
        }
        fn(o, arg, p[1]);
        _exit(0);
    }
    setpgid(pid, pid); /* both sides, so that it holds before either goes on */
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    r->pid = pid;
    r->fd = p[0];
    r->deadline = now() + o->timeout;
    r->got = 0;
    r->have_last = false;
    r->into = into;
    return true;
}

/* The last lines a child printed (a sanitizer's report, an abort's message). */
static void tail_of(const char *path, char *out, size_t len)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    const char *at = n > 1500 ? buf + n - 1500 : buf;
    snprintf(out, len, "%.1500s", at);
}

/* Reads what the child sent; true when it is finished (its outcome filled in). late: past
 * its deadline, its process group is killed first. */
static bool collect(running *r, bool late)
{
    outcome *out = r->into;
    if (late)
        kill(-r->pid, SIGKILL);
    for (;;) {
        ssize_t n = read(r->fd, (char *)r->msg + r->got, sizeof *r->msg - r->got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !late)
            return false; /* more to come */
        if (n <= 0)       /* the end: the child exited (or was killed) */
            break;
        r->got += (size_t)n;
        if (r->got < sizeof *r->msg)
            continue;
        r->got = 0;
        *r->last = r->msg->model;
        r->have_last = true;
        out->redraws = r->msg->redraws;
        if (r->msg->type == MSG_RESULT) {
            fz_result *res = &r->msg->result;
            out->verdict = true;
            out->failed = res->outcome == FZ_FAIL;
            out->gave_up = res->outcome == FZ_REDRAW;
            snprintf(out->oracle, sizeof out->oracle, "%s", res->outcome == FZ_FAIL ? res->oracle : "");
            snprintf(out->text, sizeof out->text, "%s", res->message);
        }
    }
    close(r->fd);
    int st = 0;
    while (waitpid(r->pid, &st, 0) < 0 && errno == EINTR)
        ;
    kill(-r->pid, SIGKILL); /* whatever it left running */
    if (!out->verdict) {
        char tail[1600], head[96];
        tail_of(r->errfile, tail, sizeof tail);
        if (late)
            snprintf(head, sizeof head, "did not finish within the time limit (--timeout)");
        else if (WIFSIGNALED(st))
            snprintf(head, sizeof head, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
        else
            snprintf(head, sizeof head, "exited with status %d without a verdict", WEXITSTATUS(st));
        out->failed = true;
        snprintf(out->oracle, sizeof out->oracle, "%s", late ? "hang" : "crash");
        snprintf(out->text, sizeof out->text, "%s\n%s", head, tail);
    }
    if (out->failed && r->have_last && (out->model = malloc(sizeof *out->model)))
        *out->model = *r->last;
    unlink(r->errfile);
    r->pid = 0;
    return true;
}

typedef struct case_arg {
    long long seed;
    bool data_shaped, forward, cuda, binary;
} case_arg;

static void case_main(const options *o, void *arg, int fd)
{
    case_arg *a = arg;
    run_case(o, a->seed, a->data_shaped, a->forward, a->cuda, a->binary, fd);
}

/* Runs n jobs of fn over args, at most o->jobs at a time; false when interrupted (the
 * running ones killed). */
static bool run_all(const options *o, int n, void (*fn)(const options *, void *, int), void **args, outcome *outs,
                    void (*on_done)(const options *, outcome *, int done, int total))
{
    running slots[MAX_JOBS] = {0};
    int next = 0, finished = 0;
    while (finished < n && !stopping) {
        for (int s = 0; s < o->jobs && next < n; s++)
            if (!slots[s].pid) {
                if (!spawn(&slots[s], o, fn, args[next], &outs[next])) {
                    outs[next].failed = true;
                    snprintf(outs[next].oracle, sizeof outs[next].oracle, "crash");
                    snprintf(outs[next].text, sizeof outs[next].text, "cannot start a child: %s", strerror(errno));
                    finished++;
                }
                next++;
            }
        struct pollfd fds[MAX_JOBS];
        int which[MAX_JOBS], nf = 0;
        double soonest = now() + 1;
        for (int s = 0; s < o->jobs; s++)
            if (slots[s].pid) {
                fds[nf] = (struct pollfd){slots[s].fd, POLLIN, 0};
                which[nf++] = s;
                if (slots[s].deadline < soonest)
                    soonest = slots[s].deadline;
            }
        int wait_ms = (int)((soonest - now()) * 1000);
        poll(fds, (nfds_t)nf, wait_ms < 0 ? 0 : wait_ms + 1);
        for (int i = 0; i < nf; i++) {
            running *r = &slots[which[i]];
            bool late = now() > r->deadline;
            if (((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) || late) && collect(r, late)) {
                finished++;
                if (on_done)
                    on_done(o, r->into, finished, n);
            }
        }
    }
    for (int s = 0; s < MAX_JOBS; s++) {
        if (slots[s].pid) { /* interrupted */
            kill(-slots[s].pid, SIGKILL);
            close(slots[s].fd);
            waitpid(slots[s].pid, NULL, 0);
            unlink(slots[s].errfile);
        }
        free(slots[s].msg);
        free(slots[s].last);
    }
    return !stopping;
}

/* ---- shrinking a failure ---- */

typedef struct shrink_ctx {
    const options *o;
    const outcome *failure;
    fz_check_opts checks;
} shrink_ctx;

typedef struct check_arg {
    const fz_model *m;
    fz_check_opts checks;
} check_arg;

static void check_main(const options *o, void *arg, int fd)
{
    (void)o;
    check_arg *a = arg;
    message *msg = calloc(1, sizeof *msg);
    msg->model = *a->m;
    msg->type = MSG_MODEL;
    write_all(fd, msg, sizeof *msg);
    fz_check(a->m, &a->checks, &msg->result);
    msg->type = MSG_RESULT;
    write_all(fd, msg, sizeof *msg);
    _exit(0);
}

static bool still_fails(void *ctx, const fz_model *candidate)
{
    shrink_ctx *c = ctx;
    options one = *c->o;
    one.jobs = 1;
    check_arg a = {candidate, c->checks};
    void *args[1] = {&a};
    outcome *out = calloc(1, sizeof *out);
    if (!out)
        return false;
    run_all(&one, 1, check_main, args, out, NULL);
    bool same = out->failed && strcmp(out->oracle, c->failure->oracle) == 0;
    free(out->model);
    free(out);
    return same;
}

static void report(const options *o, outcome *f)
{
    printf("FAIL seed %lld", f->seed);
    if (f->model)
        printf(" (model %s%s%s, %d redraws)", f->model->name, f->data_shaped ? ", data-shaped" : "",
               f->model->loss < 0 ? ", forward-only" : "", f->redraws);
    printf(": %s: %s\n", f->oracle, f->text);
    fflush(stdout);
    (void)o;
}

static void write_case(const options *o, const outcome *f, const fz_model *m, const char *suffix)
{
    mkdir(o->out, 0777);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s%s.c", o->out, m->name, suffix);
    FILE *c = fopen(path, "w");
    if (c) {
        fz_write_c(m, c);
        fclose(c);
    }
    char err[4096], file[128];
    snprintf(file, sizeof file, "%s.c", m->name);
    ir_graph *g = fz_build(m, file, err, sizeof err);
    if (g) {
        snprintf(path, sizeof path, "%s/%s%s.ir", o->out, m->name, suffix);
        FILE *ir = fopen(path, "w");
        if (ir) {
            ir_print(ir, g);
            fclose(ir);
        }
        ir_graph_free(g);
    }
    snprintf(path, sizeof path, "%s/%s%s.txt", o->out, m->name, suffix);
    FILE *t = fopen(path, "w");
    if (t) {
        fprintf(t, "fuzz_models --cases 1 --seed %lld: %s: %s\n", f->seed, f->oracle, f->text);
        fclose(t);
    }
}

/* Shrinks failure f and writes it out, in a child process: building models runs the DSL,
 * which may be what is broken, and this process must live to print its summary. */
static void shrink_failure(const options *o, outcome *f)
{
    if (!f->model || strcmp(f->oracle, "generator") == 0)
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        write_case(o, f, f->model, ".orig");
        fz_model *m = malloc(sizeof *m);
        *m = *f->model;
        shrink_ctx ctx = {o, f, check_opts(o, f->cuda, f->binary)};
        int before = m->n;
        int tried = fz_shrink(m, still_fails, &ctx, !f->data_shaped, o->shrink_budget);
        write_case(o, f, m, "");
        printf("  shrunk from %d to %d steps (%d tries): %s/%s.c, %s/%s.ir\n", before, m->n, tried, o->out, m->name,
               o->out, m->name);
        fflush(stdout);
        _exit(0);
    }
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR && !stopping)
        ;
    if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        printf("  (shrinking it failed: %s)\n", pid < 0 ? strerror(errno) : "its process crashed");
}

/* ---- the command ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: fuzz_models --cases N --seed S [--jobs J] [--out DIR] [--timeout SECONDS]\n"
               "                   [--cuda-every K] [--binary-every K] [--forward-every K] [--shrink-budget B]\n"
               "                   [--shrink-max F] [--verbose]\n"
               "\n"
               "Draws N random models from seeds S, S+1, ... and checks each against the reference interpreter\n"
               "through every pass, autodiff (finite differences), the LLVM code (1 and 2 threads), and for one\n"
               "case in K the CUDA C on the host shim (default K 10) and a standalone binary (default K 20);\n"
               "one case in K of the others declares no training, a forward computation (default K 10).\n"
               "Each failure is printed with its seed, shrunk, and written to DIR (default fuzz_models.out) as\n"
               "NAME.c (a model file), NAME.ir and NAME.txt (what failed), beside NAME.orig.* as drawn.\n"
               "The last line: fuzz_models: N cases, M failed; exit status 1 when M > 0.\n"
               "  --jobs J           cases run at once (default: the number of CPUs)\n"
               "  --timeout SECONDS  a case that takes longer is a failure (hang); default 300\n"
               "  --shrink-budget B  candidates tried when shrinking a failure (default 400)\n"
               "  --shrink-max F     failures shrunk (default 5; the rest are printed with their seeds)\n"
               "fuzz_models --print MODEL_SEED [--data-shaped | --forward-only] writes the model a seed draws\n"
               "as a model file; fuzz_models --check MODEL_SEED [...] judges it in this process (for a debugger);\n"
               "fuzz_models --judge MODEL.c|MODEL.ir [--cuda] judges a model file (a shrunk case) so.\n");
}

static bool number(const char *s, long long lo, long long hi, long long *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi)
        return false;
    *v = x;
    return true;
}

static int print_done_every;
static void progress(const options *o, outcome *f, int done, int total)
{
    if (f->failed)
        report(o, f);
    if (isatty(2) && (done % print_done_every == 0 || done == total))
        fprintf(stderr, "\r[%d/%d]", done, total);
}

/* o->workdir made under TMPDIR and o->aotgrad found; false with a message. */
static bool make_workdir(options *o)
{
    o->aotgrad = aotgrad_bin();
    snprintf(o->workdir, sizeof o->workdir, "%s/fuzz_models-XXXXXX", tmp_dir());
    if (!mkdtemp(o->workdir)) {
        fprintf(stderr, "fuzz_models: cannot make a folder in %s: %s\n", tmp_dir(), strerror(errno));
        return false;
    }
    /* the children's temporary files too (the host shim's compiled programs): a case ends
     * with _exit, or killed, before its own clean-up; the folder goes at the end */
    setenv("TMPDIR", o->workdir, 1);
    return true;
}

/* --print: the model a seed draws, as a model file on stdout. */
static int print_seed(uint64_t seed, fz_gen_opts g)
{
    fz_model *m = malloc(sizeof *m);
    if (!m) {
        fprintf(stderr, "fuzz_models: out of memory\n");
        return 2;
    }
    char err[1024];
    bool ok = fz_generate(seed, &g, m, err, sizeof err);
    fz_write_c(m, stdout);
    if (!ok)
        fprintf(stderr, "fuzz_models: %s\n", err);
    free(m);
    return ok ? 0 : 1;
}

/* --check: every oracle on the model a seed draws, in this process (for a debugger). */
static int check_seed(options *o, uint64_t seed, fz_gen_opts g)
{
    fz_model *m = malloc(sizeof *m);
    char err[1024];
    if (!m || !fz_generate(seed, &g, m, err, sizeof err)) {
        fprintf(stderr, "fuzz_models: %s\n", m ? err : "out of memory");
        free(m);
        return 1;
    }
    if (!make_workdir(o)) {
        free(m);
        return 2;
    }
    fz_check_opts c = check_opts(o, true, g.data_shaped || g.forward_only);
    fz_result r;
    fz_check(m, &c, &r);
    fz_remove_tree(o->workdir);
    printf("%s%s%s\n",
           r.outcome == FZ_PASS     ? "pass"
           : r.outcome == FZ_REDRAW ? "redraw: "
                                    : r.oracle,
           r.outcome == FZ_FAIL ? ": " : "", r.message);
    free(m);
    return r.outcome == FZ_FAIL;
}

/* --judge: every oracle on a model file or .ir (a shrunk case), in this process. */
static int judge_file(options *o, const char *path, bool cuda)
{
    ir_graph *g = fe_load(path, NULL, NULL);
    if (!g)
        return 1;
    if (!make_workdir(o)) {
        ir_graph_free(g);
        return 2;
    }
    /* the binary oracle where the suite's judge runs it: data-shaped models and forward
     * computations (tests/fuzz/test_fuzz.c) */
    fz_check_opts c = check_opts(
        o, cuda, (ir_find_source(g, IR_input, "x") >= 0 && ir_find_source(g, IR_input, "y") >= 0) || !ir_trains(g));
    fz_result r;
    fz_check_graph(g, &c, &r);
    fz_remove_tree(o->workdir);
    printf("%s: %s%s%s\n", path,
           r.outcome == FZ_PASS     ? "pass"
           : r.outcome == FZ_REDRAW ? "near a discontinuity: "
                                    : r.oracle,
           r.outcome == FZ_FAIL ? ": " : "", r.message);
    ir_graph_free(g);
    return r.outcome == FZ_FAIL;
}

int main(int argc, char **argv)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    options o = {.cases = -1,
                 .seed = -1,
                 .jobs = cpus > 0 ? (int)cpus : 1,
                 .out = "fuzz_models.out",
                 .timeout = 300,
                 .cuda_every = 10,
                 .binary_every = 20,
                 .forward_every = 10,
                 .shrink_budget = 400,
                 .shrink_max = 5};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        fz_gen_opts g = {0}; /* --print and --check: the kind of model after the seed */
        for (int k = i + 2; k < argc && k < i + 4; k++) {
            g.data_shaped |= !strcmp(argv[k], "--data-shaped");
            g.forward_only |= !strcmp(argv[k], "--forward-only");
        }
        if (!strcmp(a, "--print") && v && number(v, 0, (long long)1 << 62, &x)) /* a model seed's model, as C */
            return print_seed((uint64_t)x, g);
        if (!strcmp(a, "--check") && v && number(v, 0, (long long)1 << 62, &x)) /* one model seed, in this process */
            return check_seed(&o, (uint64_t)x, g);
        if (!strcmp(a, "--judge") && v) /* a model file or .ir, by every oracle, in this process */
            return judge_file(&o, v, i + 2 < argc && !strcmp(argv[i + 2], "--cuda"));
        if (!strcmp(a, "--verbose")) {
            o.verbose = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "fuzz_models: %s needs a value (fuzz_models --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--cases") && number(v, 1, 100000000, &x))
            o.cases = x;
        else if (!strcmp(a, "--seed") && number(v, 0, (long long)1 << 62, &x))
            o.seed = x;
        else if (!strcmp(a, "--jobs") && number(v, 1, MAX_JOBS, &x))
            o.jobs = (int)x;
        else if (!strcmp(a, "--timeout") && number(v, 1, 86400, &x))
            o.timeout = (double)x;
        else if (!strcmp(a, "--cuda-every") && number(v, 0, 1000000, &x))
            o.cuda_every = (int)x;
        else if (!strcmp(a, "--binary-every") && number(v, 0, 1000000, &x))
            o.binary_every = (int)x;
        else if (!strcmp(a, "--forward-every") && number(v, 0, 1000000, &x))
            o.forward_every = (int)x;
        else if (!strcmp(a, "--shrink-budget") && number(v, 0, 1000000, &x))
            o.shrink_budget = (int)x;
        else if (!strcmp(a, "--shrink-max") && number(v, 0, 1000000, &x))
            o.shrink_max = (int)x;
        else if (!strcmp(a, "--out"))
            o.out = v;
        else {
            fprintf(stderr, "fuzz_models: bad option or value: %s %s (fuzz_models --help)\n", a, v);
            return 2;
        }
    }
    if (o.cases < 0 || o.seed < 0) {
        fprintf(stderr, "fuzz_models: --cases and --seed are needed (fuzz_models --help)\n");
        return 2;
    }
    if (!make_workdir(&o))
        return 2;
    struct sigaction on = {.sa_handler = stop}; /* no SA_RESTART: poll and waitpid return */
    sigemptyset(&on.sa_mask);
    sigaction(SIGINT, &on, NULL);
    sigaction(SIGTERM, &on, NULL);
    /* the children's sgemm on one thread: they fork from here, and OpenBLAS's threads do not
     * follow a fork (its fork handler stops them) */
    openblas_set_num_threads(1);
    double t0 = now();
    int n = (int)o.cases;
    outcome *outs = calloc((size_t)n, sizeof *outs);
    case_arg *cargs = calloc((size_t)n, sizeof *cargs);
    void **args = calloc((size_t)n, sizeof *args);
    if (!outs || !cargs || !args) {
        fprintf(stderr, "fuzz_models: out of memory for %d cases\n", n);
        fz_remove_tree(o.workdir);
        return 2;
    }
    for (int i = 0; i < n; i++) {
        long long seed = o.seed + i;
        uint64_t h = hash64((uint64_t)seed);
        bool data_shaped = o.binary_every && h % (uint64_t)o.binary_every == 0;
        bool forward = !data_shaped && o.forward_every && (h >> 40) % (uint64_t)o.forward_every == 0;
        /* a third of the forward computations is built into a binary too (its predict) */
        cargs[i] = (case_arg){seed, data_shaped, forward, o.cuda_every && (h >> 20) % (uint64_t)o.cuda_every == 0,
                              data_shaped || (forward && o.binary_every && (h >> 50) % 3 == 0)};
        outs[i].seed = seed;
        outs[i].data_shaped = cargs[i].data_shaped;
        outs[i].binary = cargs[i].binary;
        outs[i].cuda = cargs[i].cuda;
        args[i] = &cargs[i];
    }
    print_done_every = n > 100 ? n / 100 : 1;
    bool whole = run_all(&o, n, case_main, args, outs, progress);
    if (isatty(2))
        fputc('\n', stderr);
    int failed = 0, redraws = 0, gave_up = 0, shrunk = 0, cuda = 0, binary = 0, done = 0;
    for (int i = 0; i < n; i++) {
        done += outs[i].verdict || outs[i].failed;
        redraws += outs[i].redraws;
        gave_up += outs[i].gave_up;
        cuda += outs[i].cuda && outs[i].verdict;
        binary += outs[i].binary && outs[i].verdict;
        if (!outs[i].failed)
            continue;
        failed++;
        if (whole && shrunk++ < o.shrink_max && !stopping)
            shrink_failure(&o, &outs[i]);
    }
    fz_remove_tree(o.workdir);
    if (!whole || stopping) {
        printf("fuzz_models: interrupted after %d of %d cases, %d failed\n", done, n, failed);
        return 130;
    }
    printf("fuzz_models: %d cases, %d failed (seeds %lld..%lld; %d through the host shim, %d built into binaries; %d "
           "redraws, %d given up; %.1f s)\n",
           n, failed, o.seed, o.seed + n - 1, cuda, binary, redraws, gave_up, now() - t0);
    for (int i = 0; i < n; i++)
        free(outs[i].model);
    free(outs);
    free(cargs);
    free(args);
    return failed ? 1 : 0;
}
