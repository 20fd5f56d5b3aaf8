/* --dump-dir: the stages of a build as files, and an index of them in order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "dump.h"
#include "fail.h"

struct fe_dump {
    char dir[2048], path[4096];
    const char *pipeline;
    int stage;   /* the pass's number in its pipeline */
    char *index; /* "FILE  WHAT\n" lines */
    size_t len, cap;
    char err[1024]; /* the first failure */
};

fe_dump *fe_dump_open(const char *dir, char *err, size_t len)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        rt_fail(err, len, "--dump-dir %s: %s", dir, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rt_fail(err, len, "--dump-dir %s: not a folder", dir);
        return NULL;
    }
    fe_dump *d = ir_xcalloc(1, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    d->pipeline = "train";
    return d;
}

static void add_line(fe_dump *d, const char *file, const char *what)
{
    size_t need = strlen(file) + strlen(what) + 8;
    if (d->len + need >= d->cap) {
        d->cap = (d->cap + need) * 2;
        d->index = ir_xrealloc(d->index, d->cap);
    }
    d->len += (size_t)snprintf(d->index + d->len, d->cap - d->len, "%-36s %s\n", file, what);
}

const char *fe_dump_path(fe_dump *d, const char *file, const char *what)
{
    add_line(d, file, what);
    snprintf(d->path, sizeof d->path, "%s/%s", d->dir, file);
    return d->path;
}

void fe_dump_note(fe_dump *d, const char *file, const char *why)
{
    char what[1200];
    snprintf(what, sizeof what, "(not written: %s)", why);
    add_line(d, file, what);
}

FILE *fe_dump_begin(fe_dump *d, const char *file, const char *what)
{
    const char *path = fe_dump_path(d, file, what);
    FILE *f = fopen(path, "w");
    if (!f && !d->err[0])
        snprintf(d->err, sizeof d->err, "--dump-dir: cannot write %.900s: %s", path, strerror(errno));
    return f;
}

void fe_dump_end(fe_dump *d, FILE *f)
{
    if (f && (ferror(f) | fclose(f)) && !d->err[0])
        snprintf(d->err, sizeof d->err, "--dump-dir: cannot write into %.900s", d->dir);
}

void fe_dump_pipeline(fe_dump *d, const char *pipeline)
{
    d->pipeline = pipeline;
    d->stage = 0;
}

void fe_dump_graph(fe_dump *d, const char *name, const char *what, const ir_graph *g)
{
    char file[300], dwhat[400];
    snprintf(file, sizeof file, "%s.ir", name);
    FILE *f = fe_dump_begin(d, file, what);
    if (f)
        ir_print(f, g);
    fe_dump_end(d, f);
    snprintf(file, sizeof file, "%s.dot", name);
    snprintf(dwhat, sizeof dwhat, "the same as Graphviz (dot -Tsvg)");
    f = fe_dump_begin(d, file, dwhat);
    if (f)
        ir_print_dot(f, g);
    fe_dump_end(d, f);
}

void fe_dump_stage(void *ctx, const char *pass, const ir_graph *g)
{
    fe_dump *d = ctx;
    char name[200], what[300];
    snprintf(name, sizeof name, "%s.%02d.%s", d->pipeline, ++d->stage, pass);
    snprintf(what, sizeof what, "the %s after pass %s", strcmp(d->pipeline, "train") == 0 ? "train step" : "eval graph",
             pass);
    fe_dump_graph(d, name, what, g);
}

bool fe_dump_close(fe_dump *d, char *err, size_t len)
{
    if (!d)
        return true;
    FILE *f = fe_dump_begin(d, "index.txt", "this list");
    if (f)
        fprintf(f, "# the stages of the build, in order: file, what it holds\n%s", d->index ? d->index : "");
    fe_dump_end(d, f);
    bool ok = !d->err[0] || rt_fail(err, len, "%s", d->err);
    free(d->index);
    free(d);
    return ok;
}
