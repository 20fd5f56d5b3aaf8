#include <stdlib.h>
#include <time.h>

#include "profile.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

rt_profile *rt_profile_new(int nsteps)
{
    rt_profile *p = calloc(1, sizeof *p);
    if (p && !(p->seconds = calloc((size_t)(nsteps > 0 ? nsteps : 1), sizeof *p->seconds))) {
        free(p);
        return NULL;
    }
    if (p)
        p->nsteps = nsteps;
    return p;
}

void rt_profile_free(rt_profile *p)
{
    if (p)
        free(p->seconds);
    free(p);
}

void rt_profile_mark(void *profile, int32_t step)
{
    rt_profile *p = profile;
    double t = now();
    if (step < 0)
        p->calls++;
    else if (step < p->nsteps)
        p->seconds[step] += t - p->last;
    p->last = t;
}
