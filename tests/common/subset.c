#include <criterion/criterion.h>
#include <stdio.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data.h"
#include "subset.h"

/* Writes the first n samples of Fashion-MNIST's training set as IDX files (gzipped) under
 * dir, as both its training and its test set. */
void write_subset(const char *dir, int64_t n)
{
    rt_dataset d;
    char err[512];
    cr_assert(rt_load_mnist_dir(RT_FASHION_MNIST_DIR, true, 10, &d, err, sizeof err), "%s", err);
    const char *sets[] = {"train", "t10k"};
    for (int s = 0; s < 2; s++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, sets[s]);
        gzFile f = gzopen(path, "wb");
        unsigned char head[16] = {0, 0,  8, 3, 0, 0, (unsigned char)(n >> 8), (unsigned char)n, 0, 0,
                                  0, 28, 0, 0, 0, 28};
        gzwrite(f, head, 16);
        gzwrite(f, d.x, (unsigned)(n * 784));
        gzclose(f);
        snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, sets[s]);
        f = gzopen(path, "wb");
        unsigned char lhead[8] = {0, 0, 8, 1, 0, 0, (unsigned char)(n >> 8), (unsigned char)n};
        gzwrite(f, lhead, 8);
        for (int64_t i = 0; i < n; i++) {
            unsigned char label = (unsigned char)((const int32_t *)d.y)[i];
            gzwrite(f, &label, 1);
        }
        gzclose(f);
    }
    rt_dataset_free(&d);
}

void write_subset_dir(const char *parent, int64_t n)
{
    char data[4200];
    snprintf(data, sizeof data, "%s/data", parent);
    cr_assert_eq(mkdir(data, 0700), 0, "cannot make %s", data);
    write_subset(data, n);
}
