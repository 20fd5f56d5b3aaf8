/* runtime/conv.c once more, its direct path off and its routines renamed columns_*, so that
 * bench_conv_paths can time both paths in one process, call by call */
#define AG_CONV_DIRECT_FLOATS 0
#define rt_conv2d columns_conv2d
#define rt_conv2d_input_grad columns_conv2d_input_grad
#define rt_conv2d_weight_grad columns_conv2d_weight_grad
#define rt_conv2d_workspace columns_conv2d_workspace
#define rt_conv2d_direct columns_conv2d_direct
#include "../runtime/conv.c"
