/* Internal failures: a broken invariant of the compiler is a bug of aotgrad, never a user's
 * mistake, and never an abort. ir_bug prints one line naming where the compiler was (the
 * pass or stage, the node and the model line it came from) and exits with status 70
 * (EX_SOFTWARE); with ir_bug_on_crash, a crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT)
 * says the same and exits so too:
 *
 *     aotgrad: internal error in fuse at %12 (add, models/mlp.c:17): <what broke>
 *
 * The stages keep "where" current: pass_run enters each pass (ir_bug_enter), a stage that
 * walks nodes names the one at hand (ir_bug_node). */
#ifndef AG_IR_BUG_H
#define AG_IR_BUG_H

#include <stdint.h>

#include "ir.h"

#define IR_EXIT_INTERNAL 70 /* EX_SOFTWARE of sysexits.h */

/* The stage now running on g (kept by pointer: g must outlive it, or be replaced first), and
 * its end (what ran before it is where a failure is then said to be). */
void ir_bug_enter(const char *stage, const ir_graph *g);
void ir_bug_leave(void);
/* The node of that graph now worked on, -1: none. */
void ir_bug_node(int32_t node);
/* "in STAGE at %NODE (OP, FILE:LINE)" for the stage and node now running, into buf. */
const char *ir_bug_where(char *buf, size_t len);

_Noreturn void ir_bug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Crashes report where they happened and exit with IR_EXIT_INTERNAL (for the aotgrad command;
 * a signal that has a handler already, a sanitizer's, keeps it). */
void ir_bug_on_crash(void);

/* "SIGSEGV, a bad memory access" for the crash signals, else NULL. */
const char *ir_signal_what(int sig);

#endif
