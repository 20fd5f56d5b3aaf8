/* The generated code's entry into data-parallel communication (rt_ops.h's rt_allreduce):
 * the table of the binary's rt_dist, or nothing on one process. */
#include "dist.h"
#include "rt_ops.h"

void rt_allreduce(float *data, int64_t count, int32_t bucket, int32_t wait, void *dist)
{
    rt_dist *d = dist;
    if (!d)
        return; /* one process: its gradients are the sums */
    if (wait)
        d->ops->wait(d, bucket);
    else
        d->ops->start(d, bucket, data, count);
}
