/* Diagnostics as GCC and Clang print them: FILE:LINE:COL: error: MESSAGE, then the source
 * line and a caret under the call it is about. */
#ifndef AG_FRONTEND_DIAG_H
#define AG_FRONTEND_DIAG_H

#include <stdbool.h>
#include <stdio.h>

/* One recorded diagnostic, "FILE:LINE: error: MESSAGE" or "... note: ...", written to f with
 * its column, the source line and a caret under the DSL call it names (the first "ag_NAME"
 * in the message, else ag_ and the message's first word, found on that line; the first
 * occurrence where it appears twice: C has no column of a call). A line without a file and
 * line, or whose file cannot be read, is written as it is. */
void fe_diag_print(FILE *f, const char *diagnostic);

/* Whether diagnostics are coloured as GCC colours them (bold locations, red error:, cyan
 * note:, a green caret): --color=always, never, or auto (the default: when stderr is a
 * terminal and NO_COLOR is unset). false with a message for another WHEN. */
bool fe_diag_color_option(const char *when);
extern bool fe_diag_color;

#endif
