/* Temporary files for atomic writes (rt_ckpt_save's, and the history's CSV and SVG): a writer
 * writes PATH.tmp.<pid>, then renames it over PATH, so that a reader sees the old file or the
 * new one; the temporaries do not outlive their writer. */
#ifndef AG_RUNTIME_TEMP_H
#define AG_RUNTIME_TEMP_H

#include <stdbool.h>
#include <stddef.h>

/* Whether PATH may take an atomic write (rt_ckpt_save's, and the history's files): the rename
 * would replace whatever is at PATH, so a device, a FIFO or a symlink (not followed: its
 * target is not what gets replaced) is refused with "PATH: exists and is not a regular file",
 * a folder with "PATH: cannot write: Is a directory". With probe, PATH.tmp.<pid> is also
 * created and removed, so that a missing or read-only folder is found before any work:
 * "PATH: cannot write: <strerror>". A regular file at PATH is not touched. */
bool rt_check_output_path(const char *path, bool probe, char *err, size_t len);

/* PATH.tmp.<pid>, malloc'd (NULL when out of memory): where an atomic write goes first.
 * From here to rt_temp_done the name is registered: SIGINT and SIGTERM, where their action
 * is the default (the process ends), remove the file first (the handler unlinks, then the
 * signal is raised again with the default action). Stale PATH.tmp.<pid> files, whose process
 * is gone (SIGKILL, a crash), are removed here too: a later run writing PATH clears them. */
char *rt_temp_name(const char *path);
/* The temporary file is renamed or removed: its name is unregistered and freed. */
void rt_temp_done(char *tmp);

#endif
