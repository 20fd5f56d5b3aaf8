/* The command line, parsed by getopt_long (options.h). getopt's own messages are off
 * (opterr = 0): the option that went wrong is looked at again here, to say what was wrong in
 * the house's words, with a did-you-mean. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fail.h"
#include "options.h"

void rt_cli_start(rt_cli *c, const char *who, const char *shorts, const struct option *longs, int argc, char **argv)
{
    *c = (rt_cli){.who = who, .shorts = shorts, .longs = longs, .argc = argc, .argv = argv};
    optind = 0; /* glibc: start afresh, whatever an earlier parse left */
    opterr = 0;
}

int rt_cli_error(rt_cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", c->who);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '%s --help'.\n", c->who);
    va_end(ap);
    c->status = 2;
    return 2;
}

/* arg, as typed, is no option of ours: the likeliest of ours where it looks like a typo */
static void unknown_option(rt_cli *c, const char *arg)
{
    const char *cands[64];
    char words[64][48];
    int k = 0;
    for (const struct option *o = c->longs; o->name && k < 64; o++, k++) {
        snprintf(words[k], sizeof words[k], "--%s", o->name);
        cands[k] = words[k];
    }
    const char *near = rt_closest(arg, cands, k);
    rt_cli_error(c, "unknown option '%.100s'%s%s%s", arg, near ? "; did you mean '" : "", near ? near : "",
                 near ? "'?" : "");
}

/* What was wrong with the long option at arg ("--name" or "--name=value"), as getopt_long
 * saw it: a value given to a flag, an abbreviation of several, or no option at all. */
static void long_option_error(rt_cli *c, const char *arg)
{
    const char *name = arg + 2;
    size_t n = strcspn(name, "=");
    const struct option *exact = NULL, *first = NULL;
    char several[400] = "";
    int matches = 0;
    for (const struct option *o = c->longs; o->name; o++) {
        if (strncmp(o->name, name, n) != 0)
            continue;
        if (strlen(o->name) == n)
            exact = o;
        if (!first)
            first = o, matches = 1;
        else if (o->has_arg != first->has_arg || o->val != first->val)
            matches++;
        size_t at = strlen(several);
        snprintf(several + at, sizeof several - at, "%s--%s", at ? ", " : "", o->name);
    }
    const struct option *found = exact ? exact : matches == 1 ? first : NULL;
    if (found && name[n] == '=' && found->has_arg == no_argument)
        rt_cli_error(c, "--%s takes no value", found->name);
    else if (matches > 1)
        rt_cli_error(c, "option '%.*s' is ambiguous: it may be %s", (int)(n + 2), arg, several);
    else {
        char typed[128];
        snprintf(typed, sizeof typed, "%.*s", (int)(n + 2 < sizeof typed ? n + 2 : sizeof typed - 1), arg);
        unknown_option(c, typed);
    }
}

/* The option whose val is v, by its whole name */
static void name_of(const rt_cli *c, int v, char *out, size_t len)
{
    for (const struct option *o = c->longs; o->name; o++)
        if (o->val == v) {
            snprintf(out, len, "--%s", o->name);
            return;
        }
    snprintf(out, len, "-%c", v);
}

int rt_cli_next(rt_cli *c)
{
    /* ':' after getopt's '+' (stop at the first operand), if any: a missing value is told
     * from an unknown option */
    char shorts[64];
    bool stop = c->shorts[0] == '+';
    snprintf(shorts, sizeof shorts, "%s:%s", stop ? "+" : "", c->shorts + stop);
    int index = -1;
    int v = getopt_long(c->argc, c->argv, shorts, c->longs, &index);
    c->value = optarg;
    if (v == -1) {
        c->operands = optind;
        return -1;
    }
    const char *arg = optind > 0 && optind <= c->argc ? c->argv[optind - 1] : "";
    if (v == ':') {
        name_of(c, optopt, c->name, sizeof c->name);
        rt_cli_error(c, "%s needs a value", c->name);
        return RT_CLI_STOP;
    }
    if (v == '?') {
        if (strncmp(arg, "--", 2) == 0) {
            long_option_error(c, arg);
            return RT_CLI_STOP;
        }
        /* a short option we do not have: "-x", or "-epochs" where --epochs was meant; getopt
         * stays on an element whose letters are not all read, and moves past one that is */
        const char *at = arg;
        if (!(arg[0] == '-' && arg[1] == optopt && !arg[2]) && optind < c->argc && c->argv[optind][0] == '-' &&
            c->argv[optind][1] == optopt)
            at = c->argv[optind];
        unknown_option(c, at);
        return RT_CLI_STOP;
    }
    if (index >= 0)
        snprintf(c->name, sizeof c->name, "--%s", c->longs[index].name);
    else
        name_of(c, v, c->name, sizeof c->name);
    return v;
}
