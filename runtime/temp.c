/* Temporary files, PATH.tmp.<pid>, where an atomic write goes first (checkpoints, the
 * history's CSV and SVG): removed on SIGINT and SIGTERM, and when found stale; and the check
 * that PATH may take the rename. See temp.h. */
#define _POSIX_C_SOURCE 200809L /* sigaction, kill, dirfd, strndup, fstatat, unlinkat */
#include "fail.h"
#include "temp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temporaries that exist now, for the signal handler to remove. A slot's name is only
 * written while the slot is FILLING, so the handler, which claims a LIVE slot (DYING) before
 * reading it, never reads a name being changed, from whichever thread it runs on; a DYING
 * slot is never reused (the process is dying). Lock-free atomics: async-signal-safe. */
enum { TEMP_SLOTS = 16, TEMP_NAME_MAX = PATH_MAX + 32 };
enum { SLOT_FREE, SLOT_FILLING, SLOT_LIVE, SLOT_DYING };
static struct {
    atomic_int state;
    char name[TEMP_NAME_MAX];
} temps[TEMP_SLOTS];

static const int temp_signals[] = {SIGINT, SIGTERM};

static void remove_temps_and_die(int sig)
{
    int saved = errno;
    for (int i = 0; i < TEMP_SLOTS; i++) {
        int live = SLOT_LIVE;
        if (atomic_compare_exchange_strong(&temps[i].state, &live, SLOT_DYING))
            unlink(temps[i].name);
    }
    errno = saved;
    raise(sig); /* SA_RESETHAND put the default action back: it ends the process once this returns */
}

/* Where SIGINT or SIGTERM would end the process (the default action), they remove the
 * temporaries first; an ignored signal, or one the program handles itself, is left as it is.
 * Checked at each temporary, since a caller may have put the default back since. */
static void catch_signals(void)
{
    for (size_t k = 0; k < sizeof temp_signals / sizeof *temp_signals; k++) {
        struct sigaction old;
        if (sigaction(temp_signals[k], NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
            continue;
        struct sigaction on = {.sa_handler = remove_temps_and_die, .sa_flags = SA_RESETHAND};
        sigemptyset(&on.sa_mask);
        for (size_t j = 0; j < sizeof temp_signals / sizeof *temp_signals; j++)
            sigaddset(&on.sa_mask, temp_signals[j]); /* one handler run at a time */
        sigaction(temp_signals[k], &on, NULL);
    }
}

static void temp_register(const char *name)
{
    if (strlen(name) >= TEMP_NAME_MAX)
        return; /* not removed on a signal; a later run finds it stale */
    for (int i = 0; i < TEMP_SLOTS; i++) {
        int free_ = SLOT_FREE;
        if (atomic_compare_exchange_strong(&temps[i].state, &free_, SLOT_FILLING)) {
            strcpy(temps[i].name, name);
            atomic_store(&temps[i].state, SLOT_LIVE);
            return;
        }
    }
}

static void temp_unregister(const char *name)
{
    for (int i = 0; i < TEMP_SLOTS; i++) {
        int live = SLOT_LIVE;
        if (atomic_load(&temps[i].state) == SLOT_LIVE && strcmp(temps[i].name, name) == 0 &&
            atomic_compare_exchange_strong(&temps[i].state, &live, SLOT_FREE))
            return;
    }
}

/* Removes PATH.tmp.<pid> files whose process is gone (killed by SIGKILL, or before it could
 * remove them): regular files only, and never one of a live process or of this one. */
static void remove_stale_temps(const char *path)
{
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    char *dir = !slash ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    DIR *d = dir ? opendir(dir) : NULL;
    free(dir);
    if (!d)
        return;
    size_t blen = strlen(base);
    for (struct dirent *e; (e = readdir(d));) {
        const char *n = e->d_name;
        if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp.", 5) != 0)
            continue;
        const char *digits = n + blen + 5;
        long pid = 0;
        size_t k = 0;
        for (; digits[k] >= '0' && digits[k] <= '9' && k < 10; k++)
            pid = pid * 10 + (digits[k] - '0');
        if (k == 0 || digits[k] || digits[0] == '0' || pid <= 0 || pid > INT_MAX || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* alive, or not ours to know (EPERM): left alone */
        struct stat st;
        if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            unlinkat(dirfd(d), n, 0);
    }
    closedir(d);
}

char *rt_temp_name(const char *path)
{
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp)
        return NULL;
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    remove_stale_temps(path);
    catch_signals();
    temp_register(tmp);
    return tmp;
}

void rt_temp_done(char *tmp)
{
    if (!tmp)
        return;
    temp_unregister(tmp);
    free(tmp);
}

bool rt_check_output_path(const char *path, bool probe, char *err, size_t len)
{
    struct stat st;
    bool exists = lstat(path, &st) == 0; /* lstat: a symlink is refused, not followed */
    if (exists && S_ISDIR(st.st_mode))
        return rt_fail(err, len, "%s: cannot write: %s", path, strerror(EISDIR));
    if (exists && !S_ISREG(st.st_mode))
        return rt_fail(err, len, "%s: exists and is not a regular file", path);
    if (!probe)
        return true;
    char *tmp = rt_temp_name(path);
    if (!tmp)
        return rt_fail(err, len, "%s: cannot write: %s", path, strerror(ENOMEM));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666); /* as the save's fopen(tmp, "wb") */
    int e = fd < 0 ? errno : 0;
    if (fd >= 0) {
        close(fd);
        remove(tmp);
    }
    rt_temp_done(tmp);
    if (e)
        return rt_fail(err, len, "%s: cannot write: %s", path, strerror(e));
    return true;
}
