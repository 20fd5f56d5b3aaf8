/* NVRTC through dlopen, and ptxas' verbose report: see nvrtc.h. The few NVRTC types and
 * functions used are declared here from its documented C API (nvrtc.h of the toolkit is not
 * included, and nothing links libnvrtc). */
#include "nvrtc.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "fail.h"

/* nvrtcResult is a C enum (int); 0 is NVRTC_SUCCESS */
typedef int nvrtc_result;
enum { NVRTC_OK = 0, NVRTC_COMPILATION = 6 };
typedef struct nvrtc_program_s *nvrtc_program; /* nvrtcProgram */

/* The loaded library: filled once by load_once, read-only afterwards. */
static struct nvrtc_lib {
    void *handle; /* NULL when NVRTC could not be loaded */
    char path[512];
    char why[1536];
    const char *(*error_string)(nvrtc_result);
    nvrtc_result (*version)(int *, int *);
    nvrtc_result (*create)(nvrtc_program *, const char *, const char *, int, const char *const *, const char *const *);
    nvrtc_result (*compile)(nvrtc_program, int, const char *const *);
    nvrtc_result (*log_size)(nvrtc_program, size_t *);
    nvrtc_result (*log)(nvrtc_program, char *);
    nvrtc_result (*ptx_size)(nvrtc_program, size_t *);
    nvrtc_result (*ptx)(nvrtc_program, char *);
    nvrtc_result (*cubin_size)(nvrtc_program, size_t *);
    nvrtc_result (*cubin)(nvrtc_program, char *);
    nvrtc_result (*destroy)(nvrtc_program *);
} nv;

/* appends to a NUL-terminated buffer of size cap, truncating */
static void append(char *buf, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(buf);
    if (n + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

/* dlopen path and resolve every function; on failure, the reason in why (one line) */
static bool try_open(const char *path, char *why, size_t len)
{
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        rt_fail_trimmed(why, len, "%s", e ? e : "dlopen failed");
        return false;
    }
    static const struct {
        const char *name;
        size_t offset;
    } syms[] = {
#define SYM(field, name) {name, offsetof(struct nvrtc_lib, field)}
        SYM(error_string, "nvrtcGetErrorString"), SYM(version, "nvrtcVersion"),
        SYM(create, "nvrtcCreateProgram"),        SYM(compile, "nvrtcCompileProgram"),
        SYM(log_size, "nvrtcGetProgramLogSize"),  SYM(log, "nvrtcGetProgramLog"),
        SYM(ptx_size, "nvrtcGetPTXSize"),         SYM(ptx, "nvrtcGetPTX"),
        SYM(cubin_size, "nvrtcGetCUBINSize"),     SYM(cubin, "nvrtcGetCUBIN"),
        SYM(destroy, "nvrtcDestroyProgram"),
#undef SYM
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *f = dlsym(h, syms[i].name);
        if (!f) {
            rt_fail_trimmed(why, len, "%s: no %s", path, syms[i].name);
            dlclose(h);
            return false;
        }
        /* every slot is a function pointer, the size of a data pointer on POSIX */
        memcpy((char *)&nv + syms[i].offset, &f, sizeof f);
    }
    nv.handle = h;
    snprintf(nv.path, sizeof nv.path, "%s", path);
    return true;
}

static void load_once(void)
{
    static const char *const names[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"};
    char tried[1024] = "", reason[512] = "", e[512];

    const char *env = getenv("AOTGRAD_NVRTC");
    if (env && *env) {
        if (!try_open(env, e, sizeof e))
            rt_fail_trimmed(nv.why, sizeof nv.why, "NVRTC not loaded from $AOTGRAD_NVRTC=%s: %s", env, e);
        return;
    }

    const char *dirs[] = {NULL, getenv("CUDA_HOME"), getenv("CUDA_PATH"), "/usr/local/cuda"};
    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
        if (d > 0) {
            if (!dirs[d] || !*dirs[d])
                continue;
            bool seen = false; /* $CUDA_HOME is often /usr/local/cuda */
            for (size_t k = 1; k < d; k++)
                seen |= dirs[k] && strcmp(dirs[k], dirs[d]) == 0;
            if (seen)
                continue;
        }
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            char path[512];
            if (d == 0)
                snprintf(path, sizeof path, "%s", names[i]);
            else
                snprintf(path, sizeof path, "%s/lib64/%s", dirs[d], names[i]);
            if (try_open(path, e, sizeof e))
                return;
            append(tried, sizeof tried, "%s%s", *tried ? ", " : "", path);
            /* keep the first failure that is not a plain absence: it says more */
            if (!*reason || (strstr(reason, "No such file") && !strstr(e, "No such file")))
                snprintf(reason, sizeof reason, "%s", e);
        }
    }
    rt_fail_trimmed(nv.why, sizeof nv.why, "NVRTC not found: tried %s (%s)", tried, reason);
}

static once_flag load_flag = ONCE_FLAG_INIT;

static bool loaded(char *why, size_t len)
{
    call_once(&load_flag, load_once);
    if (!nv.handle)
        rt_fail_trimmed(why, len, "%s", nv.why);
    return nv.handle != NULL;
}

bool cg_nvrtc_available(char *why, size_t len) { return loaded(why, len); }

bool cg_nvrtc_version(int *major, int *minor)
{
    int a = 0, b = 0;
    if (!loaded(NULL, 0) || nv.version(&a, &b) != NVRTC_OK)
        return false;
    if (major)
        *major = a;
    if (minor)
        *minor = b;
    return true;
}

/* the first line of log that says "error", or NULL */
static const char *first_error(const char *log)
{
    for (const char *l = log; *l;) {
        const char *eol = strchr(l, '\n');
        size_t n = eol ? (size_t)(eol - l) : strlen(l);
        char line[256];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), l);
        if (strstr(line, "error"))
            return l;
        l += n + (eol != NULL);
    }
    return NULL;
}

/* err = "name: " + the first error of log (else its first line): that line and those under
 * it up to a blank line (the source excerpt and caret), at most 4 lines */
static void say_log_error(char *err, size_t len, const char *name, const char *what, const char *log)
{
    const char *start = first_error(log) ? first_error(log) : log;
    size_t end = 0;
    for (int lines = 0; start[end] && lines < 4; lines++) {
        const char *eol = strchr(start + end, '\n');
        size_t n = eol ? (size_t)(eol - (start + end)) : strlen(start + end);
        if (n == 0)
            break;
        end += n + (eol != NULL);
    }
    if (what)
        rt_fail_trimmed(err, len, "%s: %s%s%.*s", name, what, end ? ": " : "", (int)end, start);
    else
        rt_fail_trimmed(err, len, "%s: %.*s", name, (int)end, start);
}

/* a buffer of size+1 bytes, NUL-terminated, that get fills */
static char *fetch(nvrtc_program p, nvrtc_result (*size_of)(nvrtc_program, size_t *),
                   nvrtc_result (*get)(nvrtc_program, char *), size_t *size, const char *what, const char *name,
                   char *err, size_t len)
{
    nvrtc_result r = size_of(p, size);
    if (r != NVRTC_OK) {
        rt_fail_trimmed(err, len, "%s: %s size: %s", name, what, nv.error_string(r));
        return NULL;
    }
    char *buf = calloc(*size + 1, 1);
    if (!buf) {
        rt_fail_trimmed(err, len, "%s: %s: out of memory (%zu bytes)", name, what, *size);
        return NULL;
    }
    if (*size && (r = get(p, buf)) != NVRTC_OK) {
        rt_fail_trimmed(err, len, "%s: %s: %s", name, what, nv.error_string(r));
        free(buf);
        return NULL;
    }
    return buf;
}

bool cg_nvrtc_compile(const char *source, const char *name, const char *arch, bool want_ptx, bool want_cubin,
                      const char *const *extra_opts, cg_nvrtc_out *out, char *err, size_t len)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!name || !*name)
        name = "source.cu";
    if (!source || !out) {
        rt_fail_trimmed(err, len, "%s: no %s", name, source ? "output" : "source");
        return false;
    }
    if (!loaded(err, len))
        return false;

    /* -arch: the real arch when ptxas runs, else its virtual one */
    char opt_arch[64];
    if (arch && strncmp(arch, "sm_", 3) == 0 && isdigit((unsigned char)arch[3]) && strlen(arch) < 32) {
        if (want_cubin)
            snprintf(opt_arch, sizeof opt_arch, "-arch=%s", arch);
        else
            snprintf(opt_arch, sizeof opt_arch, "-arch=compute_%s", arch + 3);
    } else if (arch && strncmp(arch, "compute_", 8) == 0 && isdigit((unsigned char)arch[8]) && strlen(arch) < 32) {
        if (want_cubin) {
            rt_fail_trimmed(err, len, "%s: a cubin needs a real arch (sm_XX), not %s", name, arch);
            return false;
        }
        snprintf(opt_arch, sizeof opt_arch, "-arch=%s", arch);
    } else {
        rt_fail_trimmed(err, len, "%s: arch '%s' is not sm_XX or compute_XX", name, arch ? arch : "(null)");
        return false;
    }

    size_t nextra = 0;
    while (extra_opts && extra_opts[nextra])
        nextra++;
    const char **opts = malloc((4 + nextra) * sizeof *opts);
    if (!opts) {
        rt_fail_trimmed(err, len, "%s: out of memory", name);
        return false;
    }
    int nopts = 0;
    opts[nopts++] = opt_arch;
    opts[nopts++] = "-std=c++17";
    opts[nopts++] = "-default-device";
    for (size_t i = 0; i < nextra; i++)
        opts[nopts++] = extra_opts[i];
    if (want_cubin) /* last: the retry below leaves it out */
        opts[nopts++] = "--ptxas-options=--verbose";

    bool ok = false;
    nvrtc_program p = NULL;
    nvrtc_result r = nv.create(&p, source, name, 0, NULL, NULL);
    if (r != NVRTC_OK) {
        rt_fail_trimmed(err, len, "%s: nvrtcCreateProgram: %s", name, nv.error_string(r));
        free(opts);
        return false;
    }
    nvrtc_result rc = nv.compile(p, nopts, opts);
    size_t size = 0;
    out->log = fetch(p, nv.log_size, nv.log, &size, "log", name, err, len);
    if (!out->log)
        goto done;
    if (rc != NVRTC_OK && want_cubin && !first_error(out->log)) {
        /* ptxas refused the code (too much shared memory, say), but with its verbose report
         * on NVRTC's log keeps only the front end's warnings: compile again without it, for
         * ptxas' own error line */
        nvrtc_program q = NULL;
        if (nv.create(&q, source, name, 0, NULL, NULL) == NVRTC_OK) {
            if (nv.compile(q, nopts - 1, opts) != NVRTC_OK) {
                char *log = fetch(q, nv.log_size, nv.log, &size, "log", name, err, len);
                if (log) {
                    free(out->log);
                    out->log = log;
                }
            }
            nv.destroy(&q);
        }
    }
    if (rc != NVRTC_OK) {
        say_log_error(err, len, name, rc == NVRTC_COMPILATION ? NULL : nv.error_string(rc), out->log);
        goto done;
    }
    if (want_ptx) {
        out->ptx = fetch(p, nv.ptx_size, nv.ptx, &size, "PTX", name, err, len);
        if (!out->ptx)
            goto done;
        out->ptx_len = strlen(out->ptx);
    }
    if (want_cubin) {
        out->cubin = fetch(p, nv.cubin_size, nv.cubin, &size, "cubin", name, err, len);
        if (!out->cubin)
            goto done;
        out->cubin_len = size;
        if (size == 0) {
            rt_fail_trimmed(err, len, "%s: NVRTC made no cubin for %s", name, arch);
            goto done;
        }
    }
    ok = true;
done:
    nv.destroy(&p);
    free(opts);
    if (!ok) { /* keep the log of a failed compilation, nothing else */
        free(out->ptx);
        free(out->cubin);
        out->ptx = out->cubin = NULL;
        out->ptx_len = out->cubin_len = 0;
    }
    return ok;
}

void cg_nvrtc_out_free(cg_nvrtc_out *o)
{
    if (!o)
        return;
    free(o->ptx);
    free(o->cubin);
    free(o->log);
    memset(o, 0, sizeof *o);
}

/* the number written just before p (spaces between allowed), or -1 */
static int64_t number_before(const char *line, const char *p)
{
    while (p > line && p[-1] == ' ')
        p--;
    const char *end = p;
    while (p > line && isdigit((unsigned char)p[-1]))
        p--;
    return p == end ? -1 : strtoll(p, NULL, 10);
}

cg_ptxas_report cg_ptxas_parse(const char *log)
{
    cg_ptxas_report rep = {0, -1, -1, -1};
    bool seen = false;
    for (const char *l = log ? log : ""; *l;) {
        const char *eol = strchr(l, '\n');
        size_t n = eol ? (size_t)(eol - l) : strlen(l);
        char line[512]; /* the numbers come early in a line; a long name may be cut */
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), l);
        l += n + (eol != NULL);

        const char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        const char *p;
        int64_t v;
        if (strncmp(s, "ptxas", 5) == 0 && !seen) {
            seen = true;
            rep.spill_stores = rep.spill_loads = rep.max_registers = 0;
        }
        if (strstr(s, "Function properties for "))
            rep.functions++;
        if ((p = strstr(s, "bytes spill stores")) && (v = number_before(s, p)) >= 0) {
            if (!seen) { /* an older report's property line, without the prefix */
                seen = true;
                rep.spill_stores = rep.spill_loads = rep.max_registers = 0;
            }
            if (v > rep.spill_stores)
                rep.spill_stores = v;
        }
        if ((p = strstr(s, "bytes spill loads")) && (v = number_before(s, p)) >= 0 && seen && v > rep.spill_loads)
            rep.spill_loads = v;
        char *after;
        if (seen && (p = strstr(s, "Used ")) && isdigit((unsigned char)p[5]) &&
            (v = strtoll(p + 5, &after, 10)) > rep.max_registers && strncmp(after, " registers", 10) == 0)
            rep.max_registers = v;
    }
    return rep;
}
