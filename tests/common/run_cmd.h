/* Running a shell command from a test. */
#ifndef AG_TESTS_RUN_CMD_H
#define AG_TESTS_RUN_CMD_H

/* Runs cmd with popen and returns all it printed on stdout (malloc'd, NUL-terminated);
 * *status gets pclose's status. */
char *run_cmd(const char *cmd, int *status);

#endif
