/* Loading a model: a .c file is compiled with the system C compiler against aotgrad.h into
 * a shared object, whose function (named after the file) builds the graph in this process;
 * a .ir file is parsed and verified. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* The model's own code runs in this process: should it crash, the user reads which file
 * and why, rather than a bare "Segmentation fault". The handler only writes, removes the
 * temporary files and exits (async-signal-safe calls only). */
static char crash_file[PATH_MAX], crash_so[64], crash_dir[64];

static void say(const char *s) { (void)!write(2, s, strlen(s)); }

static void model_crashed(int sig)
{
    const char *name = sig == SIGSEGV ? "SIGSEGV, a bad memory access" : sig == SIGBUS ? "SIGBUS, a bad memory access"
                       : sig == SIGILL ? "SIGILL, an illegal instruction or a trap" : sig == SIGFPE ? "SIGFPE, an arithmetic fault"
                                       : "SIGABRT, abort()";
    say(crash_file);
    say(": error: the model's code crashed while building the graph (");
    say(name);
    say(")\n");
    unlink(crash_so);
    rmdir(crash_dir);
    _exit(1);
}

/* Runs build(g) with model_crashed on the fatal signals, restoring what was there after. */
static void build_guarded(void (*build)(ag_graph *), ir_graph *g, const char *path, const char *so, const char *dir)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    /* a stack of its own, so that endless recursion in the model is caught too */
    static char alt[1 << 16];
    stack_t mine = {.ss_sp = alt, .ss_size = sizeof alt}, theirs;
    bool stacked = sigaltstack(&mine, &theirs) == 0;
    struct sigaction on = {0}, before[5];
    on.sa_handler = model_crashed;
    on.sa_flags = SA_ONSTACK;
    sigemptyset(&on.sa_mask);
    snprintf(crash_file, sizeof crash_file, "%s", path);
    snprintf(crash_so, sizeof crash_so, "%s", so);
    snprintf(crash_dir, sizeof crash_dir, "%s", dir);
    for (int k = 0; k < 5; k++)
        sigaction(sigs[k], &on, &before[k]);
    build(g);
    for (int k = 0; k < 5; k++)
        sigaction(sigs[k], &before[k], NULL);
    if (stacked)
        sigaltstack(&theirs, NULL);
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
    char tmp[] = "/tmp/aotgrad-model-XXXXXX";
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "aotgrad: cannot make a temporary folder: %s\n", strerror(errno));
        return NULL;
    }
    char so[sizeof tmp + 16], inc[PATH_MAX + 2];
    snprintf(so, sizeof so, "%s/model.so", tmp);
    snprintf(inc, sizeof inc, "-I%s", include_dir);
    const char *cc = getenv("CC");
    char *argv[] = {(char *)(cc && *cc ? cc : "cc"), "-std=gnu17", "-shared", "-fPIC", "-O0",
                    "-Werror=implicit-function-declaration", inc, "-o", so, (char *)path, NULL};
    ir_graph *g = NULL;
    int rc = fe_run_program(argv);
    if (rc != 0) {
        fprintf(stderr, "%s: error: the model did not compile (%s exited with %d)\n", path, argv[0], rc);
        goto out;
    }
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "%s: error: cannot load the compiled model: %s\n", path, dlerror());
        goto out;
    }
    void (*build)(ag_graph *);
    *(void **)&build = dlsym(lib, name);
    if (!build) {
        fprintf(stderr, "%s: error: no function 'void %s(ag_graph *g)'; a model's function is named after its file\n",
                path, name);
        dlclose(lib);
        goto out;
    }
    g = ir_graph_new(name);
    g->settings = settings;
    fe_dsl_building(g);
    build_guarded(build, g, path, so, tmp);
    fe_dsl_building(NULL);
    g->settings = NULL;
    dlclose(lib); /* the graph keeps copies of every string it needs */
    for (const char *const *s = settings; s && *s; s++)
        if (!has_option(g, *s)) {
            fprintf(stderr, "%s: error: --set %s: the model has no such option%s", path, *s,
                    g->train && g->train->noptions ? " (its options:" : "\n");
            for (int i = 0; g->train && i < g->train->noptions; i++)
                fprintf(stderr, " %s%s", g->train->options[i].name, i + 1 < g->train->noptions ? "," : ")\n");
            ir_graph_free(g);
            g = NULL;
            goto out;
        }
    if (ag_graph_finish(g) > 0) {
        enum { SHOWN = 100 }; /* a mistake in a loop must not bury the terminal */
        for (int i = 0; i < ag_graph_error_count(g) && i < SHOWN; i++)
            fprintf(stderr, "%s\n", ag_graph_error(g, i));
        if (ag_graph_error_count(g) > SHOWN)
            fprintf(stderr, "%s: (%d more errors not shown)\n", path, ag_graph_error_count(g) - SHOWN);
        fprintf(stderr, "%s: %d error%s\n", path, ag_graph_error_count(g), ag_graph_error_count(g) == 1 ? "" : "s");
        ir_graph_free(g);
        g = NULL;
    }
out:
    unlink(so);
    rmdir(tmp);
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
