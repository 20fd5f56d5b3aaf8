/* Loading models for the command line and the tests. */
#ifndef AG_FRONTEND_LOAD_H
#define AG_FRONTEND_LOAD_H

#include <stddef.h>

#include "ir.h"

/* A model from a .c file (compiled with $CC or cc against aotgrad.h in include_dir, or the
 * one beside the aotgrad binary when include_dir is NULL, in a folder under $TMPDIR or
 * /tmp that goes again in every case) or from a text .ir file. settings: "NAME=VALUE"
 * option settings (--set), NULL-ended, or NULL; a .c model must declare each with
 * ag_option, and a .ir file was built with its options already. A .c model's code runs in
 * a child process within the time limit (fe_set_model_timeout), what it prints going to
 * stderr: its crash, exit or endless loop is an error naming the file. Every error goes to
 * stderr with its location; NULL on failure. */
ir_graph *fe_load(const char *path, const char *include_dir, const char *const *settings);

/* How long a .c model's code may take to build its graph, in seconds (--model-timeout);
 * 60 until set. */
void fe_set_model_timeout(double seconds);

/* The folder holding aotgrad.h: $AOTGRAD_INCLUDE, else include/ beside the binary (build
 * tree), else ../include/aotgrad beside it (installed); NULL if none. */
const char *fe_include_dir(void);

/* Runs argv (a program found on PATH) and waits: its exit status, -1 when it did not run
 * or was killed. */
int fe_run_program(char *const argv[]);

/* The runtime library generated binaries link: AOTGRAD_RUNTIME_LIB, or lib/ beside the
 * aotgrad binary (a build tree), or ../lib/aotgrad/ (an install); NULL if none. */
const char *fe_runtime_lib(void);

/* A whole file, malloc'd and NUL-terminated (len excludes the NUL); NULL with errno set on failure. */
char *fe_read_file(const char *path, size_t *len);

/* Prints err on stderr as "where: error: err", or as it is where err already names its
 * place ("FILE:LINE: error: ..."), so no message says error twice. */
void fe_report(const char *where, const char *err);

#endif
