/* Diagnostics as GCC and Clang print them: FILE:LINE:COL: error: MESSAGE, then the source
 * line and a caret under the call it is about. */
#ifndef AG_FRONTEND_DIAG_H
#define AG_FRONTEND_DIAG_H

#include <stdio.h>

/* One recorded diagnostic, "FILE:LINE: error: MESSAGE" or "... note: ...", written to f with
 * its column, the source line and a caret under the DSL call it names (the first "ag_NAME"
 * in the message, else ag_ and the message's first word, found on that line; the first
 * occurrence where it appears twice: C has no column of a call). A line without a file and
 * line, or whose file cannot be read, is written as it is. */
void fe_diag_print(FILE *f, const char *diagnostic);

#endif
