/* The scalar macros of the op table's elementwise rows, as C expressions.
 *
 * A row's scalar column (ir/ops.h) is written in these macros over its operands a, b, c.
 * Here they mean plain C over a compute type S_T, which the user declares in scope
 * (typedef float S_T;), with <tgmath.h> so exp, log, pow, sqrt, fabs and tanh take the
 * float or double variant from S_T. A backend that prints or builds code instead of
 * evaluating it defines the same names its own way.
 *
 * Comparisons yield S_T (1 or 0), so they nest inside S_SEL like any other value.
 */
#ifndef AG_IR_SCALAR_H
#define AG_IR_SCALAR_H

#include <tgmath.h>

#define S_K(v) ((S_T)(v)) /* a literal in the compute type */
#define S_ADD(x, y) ((x) + (y))
#define S_SUB(x, y) ((x) - (y))
#define S_MUL(x, y) ((x) * (y))
#define S_DIV(x, y) ((x) / (y))
#define S_POW(x, y) pow((S_T)(x), (S_T)(y))
#define S_NEG(x) (-(x))
#define S_EXP(x) exp((S_T)(x))
#define S_LOG(x) log((S_T)(x))
#define S_ABS(x) fabs((S_T)(x))
#define S_SQRT(x) sqrt((S_T)(x))
#define S_TANH(x) tanh((S_T)(x))
#define S_LT(x, y) ((S_T)((x) < (y)))
#define S_LE(x, y) ((S_T)((x) <= (y)))
#define S_GT(x, y) ((S_T)((x) > (y)))
#define S_GE(x, y) ((S_T)((x) >= (y)))
#define S_EQ(x, y) ((S_T)((x) == (y)))
#define S_NE(x, y) ((S_T)((x) != (y)))
#define S_SEL(c, x, y) ((c) != 0 ? (x) : (y)) /* c ? x : y */

#endif
