#include "cuda_host.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run_cmd.h"

#define CUDA_HOST_OUTPUT 2000 /* characters of a compiler's or program's output kept in err */

int64_t cuda_host_blocks(const cg_cuda_launch *l, int64_t N)
{
    double n = (double)N, units = l->units[0] + l->units[1] * n + l->units[2] * n * n;
    double blocks = l->units_per_block > 0 ? ceil(units / l->units_per_block) : 1;
    if (!(blocks >= 1)) /* NaN too */
        return 1;
    return blocks < 9e18 ? (int64_t)blocks : INT64_MAX;
}

static bool fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t len, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* out cut to CUDA_HOST_OUTPUT characters */
static void tidy_output(char *out)
{
    if (strlen(out) > CUDA_HOST_OUTPUT)
        strcpy(out + CUDA_HOST_OUTPUT - 4, "...");
}

/* g++ as the shim's programs are built: flags are the test build's sanitizers */
#define SHIM_GXX "g++ -O1 -std=c++17 -ffp-contract=off -Wno-unknown-pragmas -fno-sanitize-recover=undefined %s "

/* Runs a g++ command; false with what it printed in err. */
static bool gxx(const char *cmd, const char *what, char *err, size_t len)
{
    int status;
    char *out = run_cmd(cmd, &status);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) {
        tidy_output(out);
        fail(err, len, "cuda_host: g++ failed%s:\n%s", what, out);
    }
    free(out);
    return ok;
}

static bool is_identifier(const char *s)
{
    if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return false;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

static bool write_file(const char *path, const void *data, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = bytes == 0 || fwrite(data, 1, bytes, f) == bytes;
    return fclose(f) == 0 && ok;
}

static bool read_file(const char *path, void *data, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    bool ok = bytes == 0 || fread(data, 1, bytes, f) == bytes;
    ok = ok && fgetc(f) == EOF; /* the program kept the size */
    fclose(f);
    return ok;
}

/* dir/name into path (size bytes); false if it does not fit */
static bool join(char *path, size_t size, const char *dir, const char *name)
{
    return (size_t)snprintf(path, size, "%s/%s", dir, name) < size;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        char path[4096];
        for (struct dirent *e; (e = readdir(d));)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                if (join(path, sizeof path, dir, e->d_name))
                    unlink(path);
            }
        closedir(d);
    }
    rmdir(dir);
}

/* The harness's folder: $AOTGRAD_SOURCE_DIR/tests/cuda, else AG_SOURCE_DIR's. */
static bool shim_dir(char *dir, size_t size)
{
    const char *src = getenv("AOTGRAD_SOURCE_DIR");
#ifdef AG_SOURCE_DIR
    if (!src || !*src)
        src = AG_SOURCE_DIR;
#endif
    if (!src || !*src)
        return false;
    return (size_t)snprintf(dir, size, "%s/tests/cuda", src) < size;
}

/* The generated main: the source, then a table of the plan's steps. */
static bool write_main(const char *path, const cg_cuda_plan *plan, int64_t batch, unsigned max_blocks)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    fprintf(f, "#include \"host_shim.h\"\n#include \"program.cu\"\n#include \"host_main.h\"\n\n");
    fprintf(f, "static const ag_host_step ag_host_steps[] = {\n");
    int n = 0;
    for (int i = 0; i < plan->nsteps; i++) {
        const cg_cuda_launch *l = &plan->step[i];
        if (l->collective) /* a bucket's sum over one rank (NCCL's in a binary): nothing to run */
            continue;
        n++;
        int64_t blocks = cuda_host_blocks(l, batch);
        if (max_blocks && blocks > (int64_t)max_blocks)
            blocks = max_blocks;
        if (blocks > 0x7fffffff)
            blocks = 0x7fffffff;
        fprintf(f, "    {\"%s\", %s, %lldu, %du},\n", l->name, l->name, (long long)blocks, CG_CUDA_BLOCK);
    }
    fprintf(f, "    {nullptr, nullptr, 0, 0},\n};\n\n");
    fprintf(f, "int main(int argc, char **argv) { return ag_host_main(argc, argv, ag_host_steps, %d, %lldu); }\n", n,
            (long long)plan->scratch_bytes);
    return fclose(f) == 0;
}

/* ---- the compiled programs of this process, by the text of their sources ----
 * A program runs at several batches; its kernels take N at run time and any grid computes
 * all of it, so one compilation serves every run of the same source and plan. */

static char cache_root[4096];

static void remove_cache(void)
{
    DIR *d = opendir(cache_root);
    if (!d)
        return;
    char sub[4200];
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.' && join(sub, sizeof sub, cache_root, e->d_name))
            remove_dir(sub);
    closedir(d);
    rmdir(cache_root);
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}

bool cuda_host_run(const char *source, const cg_cuda_plan *plan, int64_t batch, uint32_t seed, uint64_t step,
                   cuda_host_region arena, cuda_host_region params, const cuda_host_region *inputs, int ninputs,
                   const cuda_host_region *outputs, int noutputs, unsigned max_blocks, char *err, size_t len)
{
    if (ninputs < 0 || ninputs > CG_CUDA_MAX_TENSORS || noutputs < 0 || noutputs > CG_CUDA_MAX_TENSORS)
        return fail(err, len, "cuda_host: %d inputs and %d outputs, at most %d each", ninputs, noutputs,
                    CG_CUDA_MAX_TENSORS);
    for (int i = 0; i < plan->nsteps; i++)
        if (!plan->step[i].collective && !is_identifier(plan->step[i].name))
            return fail(err, len, "cuda_host: step %d: kernel name '%s' is not an identifier", i, plan->step[i].name);
    char shim[4096];
    if (!shim_dir(shim, sizeof shim) || strchr(shim, '\''))
        return fail(err, len, "cuda_host: no usable tests/cuda folder (set AOTGRAD_SOURCE_DIR)");
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ag_cuda_XXXXXX", tmp && *tmp && !strchr(tmp, '\'') ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return fail(err, len, "cuda_host: cannot make a folder %s", dir);

    enum { nregions_max = 2 + 2 * CG_CUDA_MAX_TENSORS };
    cuda_host_region regions[nregions_max];
    char names[nregions_max][24]; /* "out%d.bin" for any int, as -Wformat-truncation counts */
    int nregions = 0;
    regions[nregions] = arena;
    strcpy(names[nregions++], "arena.bin");
    regions[nregions] = params;
    strcpy(names[nregions++], "params.bin");
    for (int i = 0; i < ninputs; i++) {
        regions[nregions] = inputs[i];
        snprintf(names[nregions++], sizeof names[0], "in%d.bin", i);
    }
    for (int i = 0; i < noutputs; i++) {
        regions[nregions] = outputs[i];
        snprintf(names[nregions++], sizeof names[0], "out%d.bin", i);
    }

    bool ok = false;
    char path[4608], *cmd = NULL, *out = NULL; /* dir and a region's name */
    /* the program's folder in this process's cache: compiled once */
    if (!cache_root[0]) {
        snprintf(cache_root, sizeof cache_root, "%s/ag_cuda_cache_XXXXXX",
                 tmp && *tmp && !strchr(tmp, '\'') ? tmp : "/tmp");
        if (!mkdtemp(cache_root)) {
            cache_root[0] = 0;
            fail(err, len, "cuda_host: cannot make a cache folder");
            goto done;
        }
        atexit(remove_cache);
    }
    uint64_t key = fnv1a(0xcbf29ce484222325u, source);
    for (int i = 0; i < plan->nsteps; i++)
        key = fnv1a(key, plan->step[i].name);
    char scratch[32]; /* the main's (one source can have several largest batches) */
    snprintf(scratch, sizeof scratch, "/%lld", (long long)plan->scratch_bytes);
    key = fnv1a(key, scratch);
    char pdir[4200], mark[4700];
    snprintf(pdir, sizeof pdir, "%s/%016llx-%u", cache_root, (unsigned long long)key, max_blocks);
    snprintf(mark, sizeof mark, "%s/prog", pdir);
    bool compiled = access(mark, X_OK) == 0;
    if (!compiled) {
        mkdir(pdir, 0700);
        join(path, sizeof path, pdir, "program.cu");
        if (!write_file(path, source, strlen(source))) {
            fail(err, len, "cuda_host: cannot write %s", path);
            goto done;
        }
        join(path, sizeof path, pdir, "main.cpp");
        if (!write_main(path, plan, batch, max_blocks)) {
            fail(err, len, "cuda_host: cannot write %s", path);
            goto done;
        }
    }
    for (int i = 0; i < nregions; i++) {
        join(path, sizeof path, dir, names[i]);
        if (!write_file(path, regions[i].data, regions[i].bytes)) {
            fail(err, len, "cuda_host: cannot write %s", path);
            goto done;
        }
    }

    const char *flags = getenv("AOTGRAD_LINK_FLAGS");
    if (!flags)
        flags = "";
    size_t cap = strlen(flags) + 3 * sizeof pdir + 2 * sizeof shim + 512;
    cmd = malloc(cap);
    if (!cmd) {
        fail(err, len, "cuda_host: out of memory");
        goto done;
    }
    /* the launches' code, compiled once a process (a fifth of a small program's build) */
    char shim_obj[4200];
    snprintf(shim_obj, sizeof shim_obj, "%s/shim/host_run.o", cache_root);
    if (!compiled && access(shim_obj, R_OK) != 0) {
        join(path, sizeof path, cache_root, "shim");
        mkdir(path, 0700);
        snprintf(cmd, cap, SHIM_GXX "-c -o '%s' '%s/host_run.cpp' 2>&1", flags, shim_obj, shim);
        if (!gxx(cmd, " on host_run.cpp", err, len))
            goto done;
    }
    snprintf(cmd, cap, SHIM_GXX "-I'%s' -o '%s/prog' '%s/main.cpp' '%s' 2>&1", flags, shim, pdir, pdir, shim_obj);
    if (!compiled && !gxx(cmd, "", err, len))
        goto done;
    int status;
    snprintf(cmd, cap, "'%s/prog' '%s' %lld %u %llu %d %d 2>&1", pdir, dir, (long long)batch, seed,
             (unsigned long long)step, ninputs, noutputs);
    out = run_cmd(cmd, &status);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        tidy_output(out);
        if (WIFEXITED(status))
            fail(err, len, "cuda_host: the program exited with %d:\n%s", WEXITSTATUS(status), out);
        else
            fail(err, len, "cuda_host: the program was killed (status %d):\n%s", status, out);
        goto done;
    }
    for (int i = 0; i < nregions; i++) {
        join(path, sizeof path, dir, names[i]);
        if (!read_file(path, regions[i].data, regions[i].bytes)) {
            fail(err, len, "cuda_host: cannot read back %s (%zu bytes)", path, regions[i].bytes);
            goto done;
        }
    }
    ok = true;
done:
    free(out);
    free(cmd);
    remove_dir(dir);
    return ok;
}
