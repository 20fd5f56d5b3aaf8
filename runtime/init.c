#include <math.h>

#include "aotgrad_runtime.h"
#include "init.h"
#include "rng.h"

/* The fill an initializer makes: a constant (*a), or Philox's normal (mean *a, std *b) or
 * uniform ([*a, *b)) draws. */
typedef enum fill_kind { FILL_CONSTANT, FILL_NORMAL, FILL_UNIFORM } fill_kind;

static fill_kind fill_of(ag_init init, int64_t fan_in, int64_t fan_out, double *a, double *b)
{
    switch (init.kind) {
    case AG_INIT_ZEROS: *a = 0; return FILL_CONSTANT;
    case AG_INIT_CONSTANT: *a = (double)(float)init.a; return FILL_CONSTANT;
    case AG_INIT_NORMAL: *a = init.a, *b = init.b; return FILL_NORMAL;
    case AG_INIT_UNIFORM: *a = init.a, *b = init.b; return FILL_UNIFORM;
    case AG_INIT_XAVIER: *b = sqrt(6.0 / (double)(fan_in + fan_out)), *a = -*b; return FILL_UNIFORM;
    }
    *a = 0;
    return FILL_CONSTANT;
}

void rt_init_values(double *dst, int64_t n, ag_init init, int64_t fan_in, int64_t fan_out, uint32_t seed,
                    uint32_t stream)
{
    double a = 0, b = 0;
    switch (fill_of(init, fan_in, fan_out, &a, &b)) {
    case FILL_CONSTANT:
        for (int64_t i = 0; i < n; i++)
            dst[i] = a;
        return;
    case FILL_NORMAL: rt_fill_normal_f64(dst, n, a, b, seed, stream); break;
    case FILL_UNIFORM: rt_fill_uniform_f64(dst, n, a, b, seed, stream); break;
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = (double)(float)dst[i];
}

void rt_fans(int rank, const int64_t *dims, int64_t *fan_in, int64_t *fan_out)
{
    *fan_in = rank ? dims[0] : 1, *fan_out = rank > 1 ? dims[1] : *fan_in;
    if (rank > 2) {
        int64_t field = 1;
        for (int k = 2; k < rank; k++)
            field *= dims[k];
        *fan_in = dims[1] * field, *fan_out = dims[0] * field;
    }
}

void rt_init_param(float *dst, int rank, const int64_t *dims, ag_init init, uint32_t seed, uint32_t stream)
{
    int64_t n = 1;
    for (int k = 0; k < rank; k++)
        n *= dims[k];
    int64_t fan_in, fan_out;
    rt_fans(rank, dims, &fan_in, &fan_out);
    double a = 0, b = 0;
    switch (fill_of(init, fan_in, fan_out, &a, &b)) { /* the float fills store rt_init_values' roundings */
    case FILL_CONSTANT:
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)a;
        break;
    case FILL_NORMAL: rt_fill_normal(dst, n, a, b, seed, stream); break;
    case FILL_UNIFORM: rt_fill_uniform(dst, n, a, b, seed, stream); break;
    }
}

void ag_init_params(char *params, const ag_param_info *p, int count, uint32_t seed)
{
    for (int k = 0; k < count; k++)
        rt_init_param((float *)(params + p[k].offset), p[k].rank, p[k].dims,
                      (ag_init){(ag_init_kind)p[k].init, p[k].a, p[k].b}, seed, (uint32_t)k + 1);
}
