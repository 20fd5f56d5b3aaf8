/* A model's code runs in a process of its own (frontend/load.c): its exit, crash or endless
 * loop is one error naming the model file, with exit status 1; what it prints stays out of
 * the IR on stdout; the temporary folder goes under $TMPDIR and nothing is left there, also
 * when aotgrad is interrupted; and the graph comes back as text IR with all the DSL built. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aotgrad.h"
#include "ir.h"
#include "load.h"
#include "run_cmd.h"

#include "../data/models/declares_all.c"

static const char *aotgrad_bin(void)
{
    const char *bin = getenv("AOTGRAD_BIN");
    cr_assert_not_null(bin, "AOTGRAD_BIN is not set (run through ctest)");
    return bin;
}

/* A fresh, empty folder to be aotgrad's TMPDIR. */
static void fresh_folder(char *dir, size_t len)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, len, "%s/aotgrad-test-tmpdir-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(dir), "cannot make %s", dir);
}

/* The entries left in dir, which is removed after. */
static int left_in(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot read %s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
    return n;
}

/* aotgrad COMMAND on tests/data/models/MODEL from the source folder, with TMPDIR a fresh
 * folder: the exit status (-1 if it did not exit), stderr with stdout in *out (malloc'd),
 * and how many entries it left in that TMPDIR in *left. */
static int aotgrad_on(const char *command, const char *model, const char *opts, char **out, int *left)
{
    const char *bin = aotgrad_bin();
    char dir[512];
    fresh_folder(dir, sizeof dir);
    int status;
    *out = run_fmt(&status, "cd %s && TMPDIR=%s %s %s tests/data/models/%s %s", AG_SOURCE_DIR, dir, bin, command, model,
                   opts);
    *left = left_in(dir);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The model fails with exactly this one line on aotgrad ir, status 1, nothing left behind. */
static void fails_with(const char *model, const char *opts, const char *message)
{
    char *out, want[512];
    int left;
    int rc = aotgrad_on("ir", model, opts, &out, &left);
    snprintf(want, sizeof want, "tests/data/models/%s: error: %s\n", model, message);
    cr_expect_eq(rc, 1, "%s: exit status %d: %s", model, rc, out);
    cr_expect_str_eq(out, want, "%s", model);
    cr_expect_eq(left, 0, "%s: %d entries left in TMPDIR", model, left);
    free(out);
}

Test(model_process, exit_0_is_an_error)
{
    fails_with("quits.c", "", "the model's code called exit(0) while building the graph");
}

Test(model_process, exit_3_is_an_error)
{
    fails_with("exits.c", "", "the model's code called exit(3) while building the graph");
}

/* with every command that loads a model */
Test(model_process, an_endless_loop_meets_the_time_limit)
{
    fails_with("loops.c", "--model-timeout 1",
               "the model's code did not finish building the graph within 1 s (--model-timeout)");
    static const char *const commands[] = {"forward", "run", "build"};
    for (int i = 0; i < 3; i++) {
        char *out, opts[600];
        int left;
        char dir[512];
        fresh_folder(dir, sizeof dir); /* build's output */
        snprintf(opts, sizeof opts, "--model-timeout 0.5%s%s%s", i == 2 ? " -o " : "", i == 2 ? dir : "",
                 i == 2 ? "/out" : "");
        int rc = aotgrad_on(commands[i], "loops.c", opts, &out, &left);
        cr_expect_eq(rc, 1, "%s: exit status %d: %s", commands[i], rc, out);
        cr_expect_str_eq(out,
                         "tests/data/models/loops.c: error: the model's code did not finish building the graph "
                         "within 0.5 s (--model-timeout)\n",
                         "%s", commands[i]);
        cr_expect_eq(left, 0, "%s: %d entries left in TMPDIR", commands[i], left);
        cr_expect_eq(left_in(dir), 0, "%s wrote something", commands[i]);
        free(out);
    }
}

/* in the model's function, and in a constructor, before it runs */
Test(model_process, a_crash_is_an_error)
{
    const char *crashed = "the model's code crashed while building the graph (SIGSEGV, a bad memory access)";
    fails_with("crashes.c", "", crashed);
    fails_with("crashes_early.c", "", crashed);
}

/* What the model prints goes to stderr: stdout is the IR alone. */
Test(model_process, a_model_printing_leaves_the_ir_alone)
{
    const char *bin = aotgrad_bin();
    char dir[512];
    fresh_folder(dir, sizeof dir);
    int status;
    char *out = run_fmt(&status,
                        "cd %s && TMPDIR=%s %s ir tests/data/models/talks.c 2>%s/stderr >%s/stdout; s=$?; "
                        "cat %s/stdout; exit $s",
                        AG_SOURCE_DIR, dir, bin, dir, dir, dir);
    cr_expect_eq(status, 0, "%s", out);
    cr_expect(strncmp(out, "graph @talks {\n", 15) == 0, "stdout: %s", out);
    free(out);
    out = run_fmt(&status, "cat %s/stderr", dir);
    cr_expect(strstr(out, "talks on stdout\n") && strstr(out, "talks on stderr\n"), "stderr: %s", out);
    free(out);
    cr_expect_eq(left_in(dir), 2, "only stdout and stderr in the folder");
}

/* SIGTERM while the model's code runs: the model's process is killed, the folder (made under
 * $TMPDIR) removed, and aotgrad dies of the signal. */
Test(model_process, an_interrupt_leaves_nothing_behind)
{
    const char *bin = aotgrad_bin();
    char dir[512];
    fresh_folder(dir, sizeof dir);
    int status;
    char *out = run_fmt(&status,
                        "exec 2>/dev/null; cd %s && d=%s; TMPDIR=$d %s ir tests/data/models/loops.c & p=$!; "
                        "for i in $(seq 100); do ls $d/aotgrad-model-*/model.so >/dev/null 2>&1 && echo made && break; "
                        "sleep 0.1; done; sleep 0.5; c=$(pgrep -P $p); kill -TERM $p; wait $p; echo status $?; "
                        "sleep 0.2; [ -n \"$c\" ] && kill -0 $c 2>/dev/null && echo the model is still running; true",
                        AG_SOURCE_DIR, dir, bin);
    cr_expect_str_eq(out, "made\nstatus 143\n");
    cr_expect_eq(left_in(dir), 0, "entries left in TMPDIR");
    free(out);
}

/* The graph fe_load returns is the one the model's function builds, compared with the same
 * function run here: every node with its location, the declarations, the dropout sites. */
Test(model_process, the_graph_comes_back_whole)
{
    const char *settings[] = {"act=tanh", NULL};
    ag_graph *here = ag_graph_new("declares_all");
    here->settings = settings;
    declares_all(here);
    here->settings = NULL;
    cr_assert_eq(ag_graph_finish(here), 0, "%s", ag_graph_error(here, 0));
    ir_graph *back = fe_load(declares_all_file, getenv("AOTGRAD_INCLUDE"), settings);
    cr_assert_not_null(back);
    char *want = ir_print_str(here), *got = ir_print_str(back);
    cr_expect_str_eq(got, want);
    cr_expect_eq(back->next_site, here->next_site);
    cr_expect_eq(here->next_site, 3);
    /* the model has what this test is about */
    static const char *const parts[] = {"classes=[\"T-shirt/top\"",
                                        "group bias wd_scale=0 lr_scale=2",
                                        "option note=\"a \\\"quoted\\\"\\tvalue \xc3\xa9\"",
                                        "option act=\"tanh\"",
                                        "site=2",
                                        "= const 200",
                                        "declares_all.c:"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        cr_expect(strstr(want, parts[i]), "no %s in\n%s", parts[i], want);
    free(want);
    free(got);
    ag_graph_free(here);
    ir_graph_free(back);
}
