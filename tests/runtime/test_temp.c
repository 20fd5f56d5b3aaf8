/* Temporary files (PATH.tmp.<pid>, where an atomic write goes first) do not outlive their
 * writer: SIGINT and SIGTERM remove them before the process dies of the signal, an ignored
 * signal stays ignored, and a later writer of PATH removes those of processes that are gone
 * (SIGKILL leaves them). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "history.h"

static char dir[64], path[128];

static void setup(void)
{
    strcpy(dir, "/tmp/ag_temp_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.csv", dir);
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    char q[512];
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(q, sizeof q, "%s/%s", dir, e->d_name);
            unlink(q);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

TestSuite(temp, .init = setup, .fini = teardown);

static bool exists(const char *p) { return access(p, F_OK) == 0; }

/* A child that names a temporary of PATH and writes part of it, as a save does, then waits
 * for a signal (ignoring `ignored`, if not 0); its temporary's name in tmp. */
static pid_t writer(int ignored, char *tmp, size_t len)
{
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        signal(SIGINT, SIG_DFL); /* a plain process's actions, whatever the test runner set */
        signal(SIGTERM, SIG_DFL);
        if (ignored)
            signal(ignored, SIG_IGN);
        char *name = rt_temp_name(path);
        FILE *f = name ? fopen(name, "w") : NULL;
        if (!f || fputs("epoch,train_loss\n1,0.5", f) < 0 || fflush(f) != 0)
            _exit(3);
        if (write(ready[1], "r", 1) != 1)
            _exit(4);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1, "the writer did not start");
    close(ready[0]);
    snprintf(tmp, len, "%s.tmp.%ld", path, (long)pid);
    return pid;
}

Test(temp, removed_on_sigterm_and_sigint)
{
    static const int sigs[] = {SIGTERM, SIGINT};
    for (size_t k = 0; k < sizeof sigs / sizeof *sigs; k++) {
        char tmp[256];
        pid_t pid = writer(0, tmp, sizeof tmp);
        cr_assert(exists(tmp), "the writer made no %s", tmp);
        cr_assert_eq(kill(pid, sigs[k]), 0);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == sigs[k], "%s: the writer must die of the signal (status %#x)",
                  strsignal(sigs[k]), st);
        cr_expect(!exists(tmp), "%s: %s is left behind", strsignal(sigs[k]), tmp);
    }
}

Test(temp, an_ignored_signal_stays_ignored)
{
    char tmp[256];
    pid_t pid = writer(SIGTERM, tmp, sizeof tmp);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
    int st;
    cr_expect_eq(waitpid(pid, &st, WNOHANG), 0, "the writer ignored SIGTERM, yet it ended (status %#x)", st);
    cr_expect(exists(tmp), "the writer lives on: its temporary stays");
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
}

static void touch(const char *p)
{
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fclose(f);
}

/* Killed with SIGKILL, a writer leaves its temporary: the next one to write PATH removes it,
 * and only it (not a live process's, another path's, or a name that is no pid). */
Test(temp, stale_ones_are_cleared_by_the_next_writer)
{
    pid_t gone = fork();
    cr_assert(gone >= 0);
    if (gone == 0)
        _exit(0);
    cr_assert_eq(waitpid(gone, NULL, 0), gone);
    char stale[256], alive[256], other[256], odd[256];
    snprintf(stale, sizeof stale, "%s.tmp.%ld", path, (long)gone);
    snprintf(alive, sizeof alive, "%s.tmp.%ld", path, (long)getppid()); /* the test runner */
    snprintf(other, sizeof other, "%s/p.svg.tmp.%ld", dir, (long)gone);
    snprintf(odd, sizeof odd, "%s.tmp.%ld.x", path, (long)gone);
    touch(stale), touch(alive), touch(other), touch(odd);

    char err[512];
    cr_assert(rt_check_output_path(path, true, err, sizeof err), "%s", err); /* what a binary does first */
    cr_expect(!exists(stale), "%s: the temporary of a process that is gone is left", stale);
    cr_expect(exists(alive) && exists(other) && exists(odd), "only the stale temporary of PATH goes");

    /* and a write itself (the metrics after an epoch) */
    touch(stale);
    rt_history_row row = {.epoch = 1,
                          .train_loss = 0.5,
                          .train_acc = NAN,
                          .test_loss = NAN,
                          .test_acc = NAN,
                          .seconds = 1,
                          .samples_per_s = 100};
    cr_assert(rt_write_metrics_csv(path, &row, 1, err, sizeof err), "%s", err);
    cr_expect(!exists(stale), "%s: a write of PATH leaves the stale temporary", stale);
    cr_expect(exists(path));

    /* a real SIGKILL, then the next writer */
    char tmp[256];
    pid_t pid = writer(0, tmp, sizeof tmp);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert(exists(tmp), "SIGKILL cannot be caught: %s stays", tmp);
    cr_assert(rt_write_metrics_csv(path, &row, 1, err, sizeof err), "%s", err);
    cr_expect(!exists(tmp), "%s: the killed writer's temporary is left", tmp);
}
