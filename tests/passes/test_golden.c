/* Golden files for every pass of the pipeline, so that no pass changes its output unseen.
 *
 * For each pass P of pass_list (passes/passes.h) and each tests/data/passes/P/NAME.ir: parse
 * it, run P on it, verify the result, print it and compare the text byte for byte with
 * NAME.expected.ir, which must itself parse back, verify and print the same (a dump that
 * reloads). A pass with no case at all fails the test: a new pass cannot skip it.
 *
 * Regenerating, after a change meant to alter a pass's output:
 *
 *   AG_UPDATE_GOLDEN=1 build/tests/test_passes --filter golden/every_pass_has_cases_and_matches_them
 *
 * writes every NAME.expected.ir from the pass's current output instead of comparing (the
 * result must still verify). Read the diff (git diff tests/data/passes) before committing:
 * the new text must be what the pass should produce. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "load.h"
#include "passes.h"

#define DATA AG_SOURCE_DIR "/tests/data/passes/"

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The inputs of a pass's folder, NAME without ".ir", sorted; *n of them (0 if no folder). */
static char **list_cases(const char *dir, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **names = NULL;
    int cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, ".ir") || ends_with(e->d_name, ".expected.ir"))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            names = realloc(names, sizeof *names * (size_t)cap);
            cr_assert_not_null(names);
        }
        names[*n] = strndup(e->d_name, strlen(e->d_name) - 3);
        cr_assert_not_null(names[*n]);
        ++*n;
    }
    closedir(d);
    qsort(names, (size_t)*n, sizeof *names, by_name);
    return names;
}

/* The file as a NUL-terminated string, or NULL. */
static char *read_text(const char *path)
{
    size_t len;
    char *data = fe_read_file(path, &len);
    if (!data)
        return NULL;
    char *s = malloc(len + 1);
    cr_assert_not_null(s);
    memcpy(s, data, len);
    s[len] = 0;
    free(data);
    return s;
}

/* A parsed, verified graph, or NULL after saying why. */
static ir_graph *load(const char *text, const char *path)
{
    char err[1024];
    ir_graph *g = ir_parse(text, strlen(text), path, err, sizeof err);
    if (!g) {
        cr_log_error("%s", err);
        return NULL;
    }
    if (!ir_verify(g, err, sizeof err)) {
        cr_log_error("%s: %s", path, err);
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

/* One case of pass p: true when it passes (or its expected file was written). */
static bool golden_case(const pass_info *p, const char *name, bool update)
{
    char in[1024], want[1024], err[1024];
    snprintf(in, sizeof in, DATA "%s/%s.ir", p->name, name);
    snprintf(want, sizeof want, DATA "%s/%s.expected.ir", p->name, name);
    char *text = read_text(in);
    if (!text) {
        cr_log_error("cannot read %s", in);
        return false;
    }
    ir_graph *g = load(text, in);
    free(text);
    if (!g)
        return false;
    ir_graph *h = p->run(g, err, sizeof err);
    ir_graph_free(g);
    if (!h) {
        cr_log_error("%s: %s failed: %s", in, p->name, err);
        return false;
    }
    bool ok = ir_verify(h, err, sizeof err);
    if (!ok)
        cr_log_error("%s: after %s: %s", in, p->name, err);
    char *got = ir_print_str(h);
    ir_graph_free(h);
    if (ok && update) {
        FILE *f = fopen(want, "wb");
        ok = f && fputs(got, f) >= 0;
        ok = f && fclose(f) == 0 && ok;
        if (!ok)
            cr_log_error("cannot write %s", want);
        else
            cr_log_warn("wrote %s", want);
    } else if (ok) {
        char *expected = read_text(want);
        if (!expected) {
            ok = false;
            cr_log_error("cannot read %s (AG_UPDATE_GOLDEN=1 writes it)", want);
        } else if (strcmp(got, expected) != 0) {
            ok = false;
            cr_log_error("%s: after %s it prints\n%s\nnot as %s:\n%s", in, p->name, got, want, expected);
        } else { /* the expected text is a dump that reloads as itself */
            ir_graph *e = load(expected, want);
            char *again = e ? ir_print_str(e) : NULL;
            ok = again && strcmp(again, expected) == 0;
            if (e && !ok)
                cr_log_error("%s does not print back the same:\n%s", want, again);
            free(again);
            ir_graph_free(e);
        }
        free(expected);
    }
    free(got);
    return ok;
}

Test(golden, every_pass_has_cases_and_matches_them)
{
    const char *env = getenv("AG_UPDATE_GOLDEN");
    bool update = env && strcmp(env, "1") == 0;
    int npasses = 0, failed = 0;
    for (const pass_info *p = pass_list; p->name; p++, npasses++) {
        char dir[1024];
        snprintf(dir, sizeof dir, DATA "%s", p->name);
        int n;
        char **names = list_cases(dir, &n);
        cr_expect_gt(n, 0, "pass %s has no golden case: add %s/NAME.ir (see tests/passes/test_golden.c)", p->name, dir);
        for (int i = 0; i < n; i++) {
            bool ok = golden_case(p, names[i], update);
            cr_expect(ok, "pass %s, case %s", p->name, names[i]);
            failed += !ok;
            free(names[i]);
        }
        free(names);
    }
    cr_assert_gt(npasses, 0);
    cr_assert_eq(failed, 0, "%d golden case%s failed", failed, failed == 1 ? "" : "s");
}
