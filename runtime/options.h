/* The command line of aotgrad and of the binaries it builds, parsed one way: glibc's
 * getopt_long, so that every command takes `--flag value` and `--flag=value`, unambiguous
 * abbreviations (--ep for --epochs), `--` to end the options and operands anywhere, and
 * reports a usage mistake the same way:
 *
 *   WHO: unknown option '--epcohs'; did you mean '--epochs'?
 *   Try 'WHO --help'.
 *
 * with exit status 2. WHO names the command: "aotgrad run", "mlp train". */
#ifndef AG_RUNTIME_OPTIONS_H
#define AG_RUNTIME_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>

#define RT_CLI_STOP (-2) /* rt_cli_next: stop; the exit status is in status */

typedef struct rt_cli {
    const char *who;    /* errors start with it */
    const char *shorts; /* getopt's short options, e.g. "ho:"; "+" first: the options end at the first operand */
    const struct option *longs; /* ended by a zero entry; flag NULL in each */
    int argc;
    char **argv;       /* argv[0] is the command; its options and operands follow */
    const char *value; /* the value of the option rt_cli_next returned; NULL for a flag */
    char name[48];     /* that option's whole name, "--batch" or "-o", for messages */
    int status;        /* after RT_CLI_STOP: 2 for a usage error, 0 when the command is done */
    int operands;      /* after the last option: where the operands start in argv */
} rt_cli;

void rt_cli_start(rt_cli *c, const char *who, const char *shorts, const struct option *longs, int argc, char **argv);

/* The next option's val, with value and name set; -1 after the last option (the operands
 * are then argv[operands .. argc), moved there from wherever they stood); RT_CLI_STOP after
 * printing a usage error (an unknown, ambiguous or incomplete option, or a value given to
 * a flag). */
int rt_cli_next(rt_cli *c);

/* Prints "WHO: MESSAGE" and the --help hint on stderr; sets status to 2 and returns it. */
int rt_cli_error(rt_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
