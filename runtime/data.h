/* Training data: loaders for IDX (MNIST / Fashion-MNIST) and numeric CSV files, for unlabeled
 * inputs to predict on in either, the book's synthetic linear data, and the per-epoch shuffle
 * and batch gather.
 *
 * Loaders fill an rt_dataset and return true, or return false with a message in err that
 * names the file, where in it (IDX: the byte offset in the decompressed stream; CSV:
 * line:field) and what was expected against what was found. On failure *out is left zeroed,
 * with nothing to free. No input makes them crash or allocate more than RT_DATA_MAX_BYTES.
 */
#ifndef AG_RUNTIME_DATA_H
#define AG_RUNTIME_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

#define RT_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define RT_DATA_MAX_BYTES ((int64_t)1 << 31) /* a header asking for more is refused */

typedef struct rt_dataset {
    int64_t n;        /* samples */
    int64_t features; /* values per sample: 784 for 28x28 images, the feature columns of a CSV */
    ag_dtype x_dtype; /* AG_U8 for IDX images, AG_F32 otherwise */
    void *x;          /* n * features, row-major */
    int64_t targets;  /* values per sample of y: 1; 0 for inputs to predict on (y NULL) */
    ag_dtype y_dtype; /* AG_I32 class labels, or AG_F32 regression targets */
    void *y;          /* n * targets */
    int classes;      /* labels lie in 0..classes-1; 0 for regression */
} rt_dataset;

/* IDX files, gzipped or not (a file that starts with the gzip magic is inflated): images idx3
 * (magic 0x00000803, u8, n x rows x cols) and labels idx1 (magic 0x00000801, u8, n). Checks
 * the magic numbers, the dims, that rows * cols is `features` (0: any), the sizes (truncated
 * data and trailing bytes are errors; a gzip stream must be whole, CRC and length checked,
 * with nothing after it but more gzip members), that both files hold the same count, and that
 * every label lies in 0..classes-1 (classes in 1..256). */
bool rt_load_idx(const char *images, const char *labels, int64_t features, int classes, rt_dataset *out, char *err,
                 size_t len);
/* dir/{train,t10k}-{images-idx3,labels-idx1}-ubyte, with .gz if that file exists, through
 * rt_load_idx: images of `features` values a sample (0: any). */
bool rt_load_mnist_set(const char *dir, bool train, int64_t features, int classes, rt_dataset *out, char *err,
                       size_t len);
/* rt_load_mnist_set for images of any size. */
bool rt_load_mnist_dir(const char *dir, bool train, int classes, rt_dataset *out, char *err, size_t len);

/* Numeric CSV: each row `features` numbers then `targets` numbers, comma separated. The
 * first line is a header, and skipped, when a field of it is a name (not a number) and none
 * looks like a mistyped number (empty, starting with a digit like "3x", or out of f32's
 * range): "0,1,label" is a header, "1,2,3x" a row with a typo. A header has as many fields
 * as a row. Blank lines are skipped. classes > 0: each target is an integer class label in
 * 0..classes-1, stored as i32; classes == 0: f32 targets. Numbers are decimal (no hex),
 * finite, and fit in f32. The file may be gzipped (read as rt_load_idx reads). label, for one
 * target: the label's column in place of the last, a 1-based number or a header name; NULL:
 * the last. */
bool rt_load_csv(const char *path, int64_t features, int64_t targets, int classes, const char *label, rt_dataset *out,
                 char *err, size_t len);

/* Inputs to predict on, without labels: an IDX image file (idx3, u8, magic 0x00000803) or a
 * numeric CSV of `features` columns per row (a header line as rt_load_csv's), either gzipped
 * or not, as rt_load_idx reads them. The result has targets = 0, y = NULL; x_dtype AG_U8 for
 * IDX, AG_F32 for CSV. features: what the model takes per sample; an IDX file's rows*cols
 * must equal it. The kind is chosen by the file's
 * content (the IDX magic, after gunzip), not its name: a first byte 0 is IDX, anything else
 * CSV. An IDX labels file (idx1) is refused as such. Errors name the file and where (byte
 * offset / line:field). */
bool rt_load_inputs(const char *path, int64_t features, rt_dataset *out, char *err, size_t len);

/* The book's synthetic_data: X ~ N(0, 1) of n x nw, y = X w + b + N(0, noise^2), both f32.
 * Element j < n*nw of Philox stream (seed, stream) is X's, element n*nw + i the noise of
 * sample i, so the data is a function of (seed, stream). False only when out of memory or
 * for n < 1, nw < 1. */
bool rt_synthetic_linear(const double *w, int64_t nw, double b, int64_t n, double noise, uint32_t seed, uint32_t stream,
                         rt_dataset *out, char *err, size_t len);

/* The whole file (or pipe), NUL-terminated, its bytes in *size; NULL with "PATH: why" past
 * RT_DATA_MAX_BYTES or when it cannot be opened or read. */
char *rt_read_file(const char *path, size_t *size, char *err, size_t len);

void rt_dataset_free(rt_dataset *d); /* frees x and y and zeroes *d; a zeroed one is fine */

/* Element i of an array of dtype t (f32, i32, u8, bool or f64), and its setter: a double
 * stored as an integer dtype is rounded and saturated (nan as 0). */
int64_t rt_elem_size(ag_dtype t);
double rt_elem_get(const void *p, ag_dtype t, int64_t i);
void rt_elem_set(void *p, ag_dtype t, int64_t i, double v);

/* Whether every feature of d is a value of dtype want: where the file's numbers go into an
 * integer input (CSV into u8 pixels), each must be a whole number in its range, since
 * rt_elem_set would round and saturate it silently. what names the data in the message:
 * "WHAT: sample S, feature F: 300 is not a u8 (a whole number 0..255)". */
bool rt_dataset_x_fits(const rt_dataset *d, ag_dtype want, const char *what, char *err, size_t len);

/* d's features converted to dtype want, in place (rt_elem_set's rounding): for a model whose
 * input is another dtype than the file's (CSV numbers into a u8 input, IDX bytes into an f32
 * one). False only when out of memory. */
bool rt_dataset_x_as(rt_dataset *d, ag_dtype want, char *err, size_t len);

/* perm = a permutation of 0..n-1 for an epoch: Fisher-Yates with unbiased draws (64-bit words,
 * rejection), a function of (seed, epoch). Philox key (seed, RT_RNG_SHUFFLE_KEY), counter
 * (k lo, k hi, epoch lo, epoch hi) for block k, apart from init (word 3 is its tag) and
 * from dropout (whose key's second word is a site number, never this). */
#define RT_RNG_SHUFFLE_KEY 0x53485546u /* "SHUF" */
void rt_shuffle(int64_t *perm, int64_t n, uint32_t seed, uint64_t epoch);

/* Copy the samples idx[0..count) of d into contiguous x (count * features) and y
 * (count * targets), in the dataset's dtypes; x or y may be null to skip it. Every idx lies
 * in 0..n-1. */
void rt_gather(const rt_dataset *d, const int64_t *idx, int64_t count, void *x, void *y);

#endif
