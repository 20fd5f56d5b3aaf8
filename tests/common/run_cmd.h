/* Running a shell command from a test. */
#ifndef AG_TESTS_RUN_CMD_H
#define AG_TESTS_RUN_CMD_H

/* Runs cmd with popen and returns all it printed on stdout (malloc'd, NUL-terminated);
 * *status gets pclose's status. */
char *run_cmd(const char *cmd, int *status);

/* The same for a printf-formatted command, its stderr merged into what comes back. */
char *run_fmt(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The number after `key` on the last line of out that has it; NaN when none. */
double last_value(const char *out, const char *key);

/* Every tensor of the safetensors files a and b holds the same bytes (expects, per tensor). */
void expect_same_tensors(const char *a, const char *b);

/* The largest over the tensors of two safetensors files of ||a - b|| / ||a|| (norm-wise; 1
 * for a zero tensor of a); asserts both load and hold the same tensors. */
double tensors_apart(const char *a, const char *b);

#endif
