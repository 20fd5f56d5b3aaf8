/* Per-step times of a generated entry point: with ag_args.profile set, the entry point calls
 * rt_profile_mark(profile, -1) as it starts and rt_profile_mark(profile, k) after step k,
 * and each step's time accumulates here (the binary's `bench`). */
#ifndef AG_RUNTIME_PROFILE_H
#define AG_RUNTIME_PROFILE_H

#include <stdint.h>

typedef struct rt_profile {
    int nsteps;
    double *seconds; /* per step, summed over calls */
    int64_t calls;   /* entry point calls seen (marks of step -1) */
    double last;     /* the time of the last mark */
} rt_profile;

rt_profile *rt_profile_new(int nsteps); /* NULL when out of memory */
void rt_profile_free(rt_profile *p);
void rt_profile_mark(void *profile, int32_t step);

#endif
