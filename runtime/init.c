#include <math.h>

#include "init.h"
#include "rng.h"

void rt_init_values(double *dst, int64_t n, ag_init init, int64_t fan_in, int64_t fan_out, uint32_t seed,
                    uint32_t stream)
{
    switch (init.kind) {
    case AG_INIT_ZEROS:
    case AG_INIT_CONSTANT:
        for (int64_t i = 0; i < n; i++)
            dst[i] = init.kind == AG_INIT_ZEROS ? 0 : (double)(float)init.a;
        return;
    case AG_INIT_NORMAL: rt_fill_normal_f64(dst, n, init.a, init.b, seed, stream); break;
    case AG_INIT_UNIFORM: rt_fill_uniform_f64(dst, n, init.a, init.b, seed, stream); break;
    case AG_INIT_XAVIER: {
        double a = sqrt(6.0 / (double)(fan_in + fan_out));
        rt_fill_uniform_f64(dst, n, -a, a, seed, stream);
        break;
    }
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = (double)(float)dst[i];
}
