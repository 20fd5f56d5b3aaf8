/* Sample graphs for every op (tests/common/op_samples.c). */
#ifndef AG_TESTS_OP_SAMPLES_H
#define AG_TESTS_OP_SAMPLES_H

#include <stdbool.h>
#include <stddef.h>

#include "ir.h"

/* The canonical text of op's sample graph, named after the op; false if it has none. */
bool op_sample(ir_op op, char *text, size_t len);

#endif
