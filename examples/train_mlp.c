/* Trains models/mlp.c for one epoch on Fashion-MNIST from a program of its own: the model's
 * object and header (aotgrad_add_model in CMakeLists.txt) and the runtime's public calls.
 *
 *     train_mlp [FASHION_MNIST_DIR]      (default /usr/share/datasets/fashion-mnist)
 *
 * prints the mean loss of each tenth of the epoch, then the test set's accuracy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include <aotgrad/aotgrad_runtime.h> /* ag_blas_pick_kernels, ag_blas_kernels */
#include <aotgrad/pool.h>            /* rt_pool: threads for ag_args.pool */

#include "mlp.h" /* mlp_train_step, mlp_forward, mlp_init, the sizes and offsets */

/* The bytes of a gzipped IDX file after its header: *count samples of `per` bytes each. */
static unsigned char *read_idx(const char *dir, const char *file, int64_t per, int64_t *count)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    gzFile f = gzopen(path, "rb");
    unsigned char head[16];
    int dims = per == 1 ? 1 : 3; /* labels: n; images: n x 28 x 28 */
    unsigned char *data = NULL;
    if (f && gzread(f, head, 4 + 4 * dims) == 4 + 4 * dims && head[3] == dims) {
        *count = (int64_t)head[4] << 24 | head[5] << 16 | head[6] << 8 | head[7];
        data = malloc((size_t)(*count * per));
        if (data && gzread(f, data, (unsigned)(*count * per)) != (int)(*count * per))
            free(data), data = NULL;
    }
    if (!data)
        fprintf(stderr, "train_mlp: %s: not a readable IDX file of %lld bytes a sample\n", path, (long long)per);
    if (f)
        gzclose(f);
    return data;
}

/* Images and their labels: one set of Fashion-MNIST. */
static int load(const char *dir, const char *set, unsigned char **x, int32_t **y, int64_t *n)
{
    char images[64], labels[64];
    snprintf(images, sizeof images, "%s-images-idx3-ubyte.gz", set);
    snprintf(labels, sizeof labels, "%s-labels-idx1-ubyte.gz", set);
    int64_t nx = 0, ny = 0;
    *x = read_idx(dir, images, 784, &nx);
    unsigned char *l = read_idx(dir, labels, 1, &ny);
    *y = l ? malloc((size_t)ny * sizeof **y) : NULL;
    for (int64_t i = 0; *y && i < ny; i++)
        (*y)[i] = l[i]; /* the model's labels are i32 */
    free(l);
    *n = nx < ny ? nx : ny;
    return *x && *y;
}

int main(int argc, char **argv)
{
    ag_blas_pick_kernels(argv); /* first: may run the program again with OpenBLAS's best kernels */
    printf("OpenBLAS kernels: %s\n", ag_blas_kernels() ? ag_blas_kernels() : "none");
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    unsigned char *x, *test_x;
    int32_t *y, *test_y;
    int64_t n, test_n;
    if (!load(dir, "train", &x, &y, &n) || !load(dir, "t10k", &test_x, &test_y, &test_n))
        return 1;

    /* the caller owns every byte: parameters, and an arena for batches of up to MLP_BATCH rows */
    const int64_t batch = MLP_BATCH;
    char *params = aligned_alloc(64, (MLP_PARAM_BYTES + 63) / 64 * 64);
    char *arena = aligned_alloc(64, (size_t)mlp_arena_bytes(batch));
    rt_pool *pool = rt_pool_new(0); /* a thread a core */
    rt_pool_bind_blas(pool);
    mlp_init(params, 1); /* what `mlp train --seed 1` starts from */

    /* mlp_train_step's inputs, in mlp.h's order: x u8[N,784], y i32[N], lr f32[], wd f32[] */
    float lr = 0.1f, wd = 0;
    void *in[4] = {NULL, NULL, &lr, &wd};
    ag_args a = {.arena = arena, .params = params, .inputs = in, .seed = 1, .pool = pool};
    int64_t steps = (n + batch - 1) / batch, tenth = (steps + 9) / 10, first = 0;
    double sum = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int64_t s = 0; s < steps; s++) {
        a.batch = n - s * batch < batch ? n - s * batch : batch; /* the last batch is smaller */
        in[0] = x + s * batch * 784, in[1] = y + s * batch;
        a.step = (uint64_t)s;
        mlp_train_step(&a); /* updates the parameters in place (mlp.h: W1.next ... in params) */
        sum += *(float *)(arena + MLP_TRAIN_STEP_LOSS_OFFSET(a.batch));
        if ((s + 1) % tenth == 0 || s + 1 == steps) {
            printf("steps %3lld-%3lld: loss %.4f\n", (long long)first + 1, (long long)s + 1,
                   sum / (double)(s + 1 - first));
            sum = 0, first = s + 1;
        }
    }

    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("epoch: %.3fs, %.0f samples/s\n", secs, (double)n / secs); /* as `mlp train` prints it */

    /* mlp_forward on the test set: its inputs x, y; its output `correct` counts a batch's hits */
    double correct = 0;
    for (int64_t at = 0; at < test_n; at += batch) {
        a.batch = test_n - at < batch ? test_n - at : batch;
        in[0] = test_x + at * 784, in[1] = test_y + at;
        mlp_forward(&a);
        correct += *(float *)(arena + MLP_FORWARD_CORRECT_OFFSET(a.batch));
    }
    printf("test accuracy %.4f\n", correct / (double)test_n);

    rt_pool_free(pool);
    free(arena), free(params), free(x), free(y), free(test_x), free(test_y);
    return 0;
}
