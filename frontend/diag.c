/* Source lines and carets under the DSL call a diagnostic is about. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "diag.h"
#include "load.h"

bool fe_diag_color;

bool fe_diag_color_option(const char *when)
{
    if (strcmp(when, "always") == 0)
        fe_diag_color = true;
    else if (strcmp(when, "never") == 0)
        fe_diag_color = false;
    else if (strcmp(when, "auto") == 0)
        fe_diag_color = isatty(STDERR_FILENO) && !(getenv("NO_COLOR") && *getenv("NO_COLOR")) &&
                        !(getenv("TERM") && strcmp(getenv("TERM"), "dumb") == 0);
    else
        return false;
    return true;
}

#define BOLD (fe_diag_color ? "\033[1m" : "")
#define RED (fe_diag_color ? "\033[1;31m" : "")
#define CYAN (fe_diag_color ? "\033[1;36m" : "")
#define GREEN (fe_diag_color ? "\033[1;32m" : "")
#define RESET (fe_diag_color ? "\033[0m" : "")

/* The DSL names a message may be about: ag_ and its first word (an error's "matmul: ..."),
 * then the first ag_NAME in it (a note's "... ag_param W2") */
static void calls_of(const char *msg, char name[2][64])
{
    size_t n = 0;
    while (isalnum((unsigned char)msg[n]) || msg[n] == '_')
        n++;
    snprintf(name[0], sizeof name[0], "ag_%.*s", (int)(n < 56 ? n : 56), msg);
    const char *at = strstr(msg, "ag_");
    for (n = 0; at && (isalnum((unsigned char)at[n]) || at[n] == '_');)
        n++;
    snprintf(name[1], sizeof name[1], "%.*s", at ? (int)(n < 60 ? n : 60) : 0, at ? at : "");
}

/* The first occurrence of name on line as a whole word, a call (name followed by '(') first */
static const char *find_call(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    const char *fallback = NULL;
    for (const char *p = line; p + n <= line + len; p++) {
        if (strncmp(p, name, n) != 0 || (p > line && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) ||
            (p + n < line + len && (isalnum((unsigned char)p[n]) || p[n] == '_')))
            continue;
        const char *q = p + n;
        while (q < line + len && (*q == ' ' || *q == '\t'))
            q++;
        if (q < line + len && *q == '(')
            return p;
        if (!fallback)
            fallback = p;
    }
    return fallback;
}

void fe_diag_print(FILE *f, const char *diagnostic)
{
    /* FILE:LINE: KIND: MESSAGE */
    const char *kind = strstr(diagnostic, ": error: ");
    if (!kind)
        kind = strstr(diagnostic, ": note: ");
    const char *colon = kind ? kind - 1 : NULL;
    while (colon && colon > diagnostic && isdigit((unsigned char)*colon))
        colon--;
    int line = colon && *colon == ':' && colon + 1 < kind ? atoi(colon + 1) : 0;
    size_t size = 0;
    char path[4096];
    snprintf(path, sizeof path, "%.*s", line > 0 ? (int)(colon - diagnostic) : 0, diagnostic);
    char *text = line > 0 ? fe_read_file(path, &size) : NULL;
    const char *start = text;
    for (int k = 1; start && k < line; k++) {
        start = memchr(start, '\n', size - (size_t)(start - text));
        start = start ? start + 1 : NULL;
    }
    if (!start || start >= text + size) {
        fprintf(f, "%s\n", diagnostic);
        free(text);
        return;
    }
    const char *end = memchr(start, '\n', size - (size_t)(start - text));
    size_t len = end ? (size_t)(end - start) : size - (size_t)(start - text);
    const char *msg = strchr(kind + 2, ':') + 2;
    char name[2][64];
    calls_of(msg, name);
    const char *at = NULL;
    size_t width = 1;
    for (int k = 0; k < 2 && !at; k++)
        if (name[k][0] && (at = find_call(start, len, name[k])))
            width = strlen(name[k]);
    if (!at) /* not found: under the line's first character */
        for (at = start; at < start + len && (*at == ' ' || *at == '\t'); at++)
            ;
    int col = (int)(at - start) + 1;
    bool error = strncmp(kind, ": error: ", 9) == 0;
    fprintf(f, "%s%.*s:%d:%d:%s %s%s:%s %s\n", BOLD, (int)(colon - diagnostic), diagnostic, line, col, RESET,
            error ? RED : CYAN, error ? "error" : "note", RESET, msg);
    fprintf(f, "%5d | %.*s\n      | ", line, (int)len, start);
    for (const char *p = start; p < at; p++) /* tabs kept, so the caret lines up */
        fputc(*p == '\t' ? '\t' : ' ', f);
    fprintf(f, "%s^", GREEN);
    for (size_t k = 1; k < width; k++)
        fputc('~', f);
    fprintf(f, "%s\n", RESET);
    free(text);
}
