/* The data loaders on the real Fashion-MNIST, on small files written here, and on every kind
 * of malformed file, each with its exact message; then synthetic data, shuffle and gather. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"
#include "rng.h"

/* ---- a temporary directory per test, removed even when an assertion fails ---- */

static char dir[64];
static char err[512];

static void setup(void)
{
    strcpy(dir, "/tmp/ag_data_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    err[0] = 0;
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[sizeof dir + sizeof e->d_name + 1];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name), unlink(p);
    if (d)
        closedir(d);
    rmdir(dir);
}

TestSuite(data, .init = setup, .fini = teardown);

/* dir/name, in a rotating set of buffers so that a test can hold a few at once */
static const char *at(const char *name)
{
    static char bufs[4][256];
    static int k;
    char *p = bufs[k++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

/* Write n bytes to dir/name, gzipped when the name ends in .gz; returns the path. */
static const char *put(const char *name, const void *bytes, size_t n)
{
    const char *path = at(name);
    size_t l = strlen(name);
    if (l > 3 && strcmp(name + l - 3, ".gz") == 0) {
        gzFile g = gzopen(path, "wb");
        cr_assert_not_null(g);
        cr_assert_eq(gzwrite(g, bytes, (unsigned)n), (int)n);
        cr_assert_eq(gzclose(g), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(bytes, 1, n, f), n);
        fclose(f);
    }
    return path;
}

static const char *put_str(const char *name, const char *text) { return put(name, text, strlen(text)); }

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* An IDX image: magic, n, rows, cols, then `have` pixel bytes (pixel i is i*7+1 mod 256). */
static size_t idx_images(uint8_t *buf, uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols, size_t have)
{
    be32(buf, magic), be32(buf + 4, n), be32(buf + 8, rows), be32(buf + 12, cols);
    for (size_t i = 0; i < have; i++)
        buf[16 + i] = (uint8_t)(i * 7 + 1);
    return 16 + have;
}

/* An IDX label file: magic, n, then n labels (label i is i % 10). */
static size_t idx_labels(uint8_t *buf, uint32_t n)
{
    be32(buf, 0x801), be32(buf + 4, n);
    for (uint32_t i = 0; i < n; i++)
        buf[8 + i] = (uint8_t)(i % 10);
    return 8 + n;
}

static uint8_t img[1 << 20], lab[4096];

/* ---- the real Fashion-MNIST ---- */

static void check_fashion(bool train, int64_t n, int first_label, uint64_t first_sum, uint64_t all_sum)
{
    rt_dataset d;
    cr_assert(rt_load_mnist_dir(RT_FASHION_MNIST_DIR, train, 10, &d, err, sizeof err), "%s", err);
    cr_assert_eq(d.n, n);
    cr_assert_eq(d.features, 784);
    cr_assert_eq(d.x_dtype, AG_U8);
    cr_assert_eq(d.targets, 1);
    cr_assert_eq(d.y_dtype, AG_I32);
    cr_assert_eq(d.classes, 10);
    const uint8_t *x = d.x;
    const int32_t *y = d.y;
    uint64_t s = 0, t = 0;
    for (int i = 0; i < 784; i++)
        s += x[i];
    for (int64_t i = 0; i < n * 784; i++)
        t += x[i];
    cr_assert_eq(y[0], first_label);
    cr_assert_eq(s, first_sum); /* computed once with Python's gzip module */
    cr_assert_eq(t, all_sum);
    int count[10] = {0};
    for (int64_t i = 0; i < n; i++)
        count[y[i]]++;
    for (int c = 0; c < 10; c++) /* Fashion-MNIST is balanced */
        cr_assert_eq(count[c], n / 10);
    rt_dataset_free(&d);
    cr_assert_null(d.x);
}

Test(data, fashion_mnist_train) { check_fashion(true, 60000, 9, 76247, 3431114169u); }
Test(data, fashion_mnist_test) { check_fashion(false, 10000, 9, 33456, 573469082u); }

/* ---- IDX round trips ---- */

static void check_small(const rt_dataset *d)
{
    cr_assert_eq(d->n, 5);
    cr_assert_eq(d->features, 6);
    cr_assert_eq(d->classes, 10);
    for (int i = 0; i < 30; i++)
        cr_assert_eq(((const uint8_t *)d->x)[i], (uint8_t)(i * 7 + 1));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(((const int32_t *)d->y)[i], i);
}

Test(data, idx_round_trip_gz_and_plain)
{
    rt_dataset d;
    size_t ni = idx_images(img, 0x803, 5, 3, 2, 30), nl = idx_labels(lab, 5);
    const char *i = put("i.gz", img, ni), *l = put("l.gz", lab, nl);
    cr_assert(rt_load_idx(i, l, 0, 10, &d, err, sizeof err), "%s", err);
    check_small(&d);
    rt_dataset_free(&d);
    i = put("i", img, ni), l = put("l", lab, nl);
    cr_assert(rt_load_idx(i, l, 0, 10, &d, err, sizeof err), "%s", err);
    check_small(&d);
    rt_dataset_free(&d);
}

Test(data, mnist_dir_takes_gz_or_plain)
{
    rt_dataset d;
    size_t ni = idx_images(img, 0x803, 5, 3, 2, 30), nl = idx_labels(lab, 5);
    put("train-images-idx3-ubyte", img, ni), put("train-labels-idx1-ubyte.gz", lab, nl);
    cr_assert(rt_load_mnist_dir(dir, true, 10, &d, err, sizeof err), "%s", err);
    check_small(&d);
    rt_dataset_free(&d);
    cr_assert_not(rt_load_mnist_dir(dir, false, 10, &d, err, sizeof err));
    char want[300];
    snprintf(want, sizeof want, "%s/t10k-images-idx3-ubyte: cannot open: No such file or directory", dir);
    cr_assert_str_eq(err, want);
}

/* ---- malformed IDX: each message exactly ---- */

/* want = fmt with $I and $L replaced by the paths i and l */
static void subst(char *want, size_t size, const char *fmt, const char *i, const char *l)
{
    size_t n = 0;
    for (const char *p = fmt; *p && n + 1 < size; p++) {
        if (p[0] == '$' && (p[1] == 'I' || p[1] == 'L')) {
            n += (size_t)snprintf(want + n, size - n, "%s", *++p == 'I' ? i : l);
            n = n < size ? n : size - 1;
        } else {
            want[n++] = *p;
        }
    }
    want[n] = 0;
}

/* Load images i and labels l (file names in dir) and expect failure with message fmt, whose
 * $I is i's path and $L is l's. */
static void expect_idx(const char *i, const char *l, int classes, const char *fmt)
{
    rt_dataset d;
    char ip[256], lp[256], want[600];
    snprintf(ip, sizeof ip, "%s", at(i)), snprintf(lp, sizeof lp, "%s", at(l));
    cr_assert_not(rt_load_idx(ip, lp, 0, classes, &d, err, sizeof err), "loaded %s", i);
    cr_assert_null(d.x);
    cr_assert_null(d.y);
    subst(want, sizeof want, fmt, ip, lp);
    cr_assert_str_eq(err, want);
}

Test(data, idx_wrong_magic)
{
    put("i.gz", img, idx_images(img, 0x802, 5, 3, 2, 30)), put("l.gz", lab, idx_labels(lab, 5));
    expect_idx("i.gz", "l.gz", 10, "$I: offset 0: bad magic 0x00000802, expected 0x00000803 (IDX images, u8, 3 dims)");
    put("i.gz", img, idx_images(img, 0x803, 5, 3, 2, 30));
    expect_idx("l.gz", "i.gz", 10, "$I: offset 0: bad magic 0x00000801, expected 0x00000803 (IDX images, u8, 3 dims)");
    put("l2.gz", img, idx_images(img, 0x803, 5, 3, 2, 30)); /* images where labels belong */
    expect_idx("i.gz", "l2.gz", 10, "$L: offset 0: bad magic 0x00000803, expected 0x00000801 (IDX labels, u8, 1 dim)");
}

Test(data, idx_truncated_images)
{
    put("l.gz", lab, idx_labels(lab, 5));
    put("i.gz", img, idx_images(img, 0x803, 5, 3, 2, 10));
    expect_idx("i.gz", "l.gz", 10, "$I: offset 16: truncated: expected 30 bytes of image data (5 x 3 x 2), found 10");
    put("i", img, idx_images(img, 0x803, 5, 3, 2, 0));
    expect_idx("i", "l.gz", 10, "$I: offset 16: truncated: expected 30 bytes of image data (5 x 3 x 2), found 0");
}

Test(data, idx_cut_gzip_stream)
{
    /* 100 noisy 28x28 images compress poorly: cutting the .gz in half cuts the image data */
    size_t n = idx_images(img, 0x803, 100, 28, 28, 78400);
    for (size_t i = 16; i < n; i++)
        img[i] = (uint8_t)(rt_random_u32(1, 2, i) >> 24);
    const char *i = put("i.gz", img, n);
    put("l.gz", lab, idx_labels(lab, 100));
    FILE *f = fopen(i, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    cr_assert_eq(truncate(i, size / 2), 0);
    rt_dataset d;
    cr_assert_not(rt_load_idx(i, at("l.gz"), 0, 10, &d, err, sizeof err));
    char want[300];
    snprintf(want, sizeof want, "%s: offset 16: truncated: expected 78400 bytes of image data (100 x 28 x 28), found ",
             i);
    cr_assert_eq(strncmp(err, want, strlen(want)), 0, "%s", err);
    const char *tail = " (truncated gzip stream)";
    cr_assert_str_eq(err + strlen(err) - strlen(tail), tail, "%s", err);
}

Test(data, idx_truncated_header)
{
    put("l.gz", lab, idx_labels(lab, 5));
    idx_images(img, 0x803, 5, 3, 2, 0);
    put("i.gz", img, 7); /* magic and half the count */
    expect_idx("i.gz", "l.gz", 10, "$I: offset 0: truncated: expected 16 bytes of header (magic + 3 dims), found 7");
    put("e", img, 0);
    expect_idx("e", "l.gz", 10, "$I: offset 0: truncated: expected 16 bytes of header (magic + 3 dims), found 0");
    put("i.gz", img, idx_images(img, 0x803, 5, 3, 2, 30));
    put("l", lab, 6);
    expect_idx("i.gz", "l", 10, "$L: offset 0: truncated: expected 8 bytes of header (magic + 1 dim), found 6");
}

Test(data, idx_trailing_bytes)
{
    put("l.gz", lab, idx_labels(lab, 5));
    put("i.gz", img, idx_images(img, 0x803, 5, 3, 2, 35));
    expect_idx("i.gz", "l.gz", 10, "$I: offset 46: 5 trailing bytes after the 5 images, expected end of file");
    put("i.gz", img, idx_images(img, 0x803, 5, 3, 2, 30));
    put("l", lab, idx_labels(lab, 5) + 1);
    expect_idx("i.gz", "l", 10, "$L: offset 13: 1 trailing bytes after the 5 labels, expected end of file");
}

Test(data, idx_count_mismatch)
{
    put("i.gz", img, idx_images(img, 0x803, 5, 3, 2, 30));
    put("l.gz", lab, idx_labels(lab, 4));
    expect_idx("i.gz", "l.gz", 10, "$L: offset 4: 4 labels, expected 5 (the image count of $I)");
}

Test(data, idx_label_out_of_range)
{
    put("i.gz", img, idx_images(img, 0x803, 5, 3, 2, 30));
    size_t nl = idx_labels(lab, 5);
    lab[8 + 3] = 12;
    put("l.gz", lab, nl);
    expect_idx("i.gz", "l.gz", 10, "$L: offset 11 (label 3): label 12 out of range 0..9");
    expect_idx("i.gz", "l.gz", 0, "$L: 0 classes, expected at least 1 (IDX labels are bytes)");
}

Test(data, idx_bad_dims)
{
    put("l.gz", lab, idx_labels(lab, 5));
    put("i.gz", img, idx_images(img, 0x803, 5, 0, 2, 0));
    expect_idx("i.gz", "l.gz", 10, "$I: offset 8: 0 rows, expected at least 1");
    put("i.gz", img, idx_images(img, 0x803, 0, 3, 2, 0));
    expect_idx("i.gz", "l.gz", 10, "$I: offset 4: 0 images, expected at least 1");
    /* absurd sizes are refused before any allocation; the product overflows 64 bits here */
    put("i.gz", img, idx_images(img, 0x803, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 30));
    expect_idx("i.gz", "l.gz", 10,
               "$I: offset 4: 4294967295 x 4294967295 x 4294967295 images are over the 2147483648-byte limit");
    put("i.gz", img, idx_images(img, 0x803, 2739138, 28, 28, 30));
    expect_idx("i.gz", "l.gz", 10, "$I: offset 4: 2739138 x 28 x 28 images are over the 2147483648-byte limit");
    /* just under the limit, with labels to match: a truncation, found without a 2 GB buffer */
    put("i.gz", img, idx_images(img, 0x803, 2739000, 28, 28, 30));
    be32(lab + 4, 2739000);
    put("l.gz", lab, 13);
    expect_idx("i.gz", "l.gz", 10,
               "$I: offset 16: truncated: expected 2147376000 bytes of image data (2739000 x 28 x 28), found 30");
}

Test(data, idx_missing_or_unreadable)
{
    put("l.gz", lab, idx_labels(lab, 5));
    expect_idx("nope.gz", "l.gz", 10, "$I: cannot open: No such file or directory");
    put("i.gz", img, idx_images(img, 0x803, 5, 3, 2, 30));
    expect_idx("i.gz", "nope", 10, "$L: cannot open: No such file or directory");
    expect_idx("i.gz", ".", 10, "$L: offset 0: cannot read: Is a directory");
    put("junk", "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage!garbage!", 26); /* gzip magic, bad deflate */
    expect_idx("junk", "l.gz", 10, "$I: offset 0: gzip: invalid block type (the file is corrupt)");
}

/* ---- CSV ---- */

Test(data, csv_header_crlf_blank_lines)
{
    rt_dataset d;
    const char *p = put_str("a.csv", "x1, x2 ,y\r\n1,2,0.5\r\n\r\n  -3.25 ,4e2,7\r\n5,6,-1");
    cr_assert(rt_load_csv(p, 2, 1, 0, NULL, &d, err, sizeof err), "%s", err);
    cr_assert_eq(d.n, 3);
    cr_assert_eq(d.features, 2);
    cr_assert_eq(d.x_dtype, AG_F32);
    cr_assert_eq(d.y_dtype, AG_F32);
    cr_assert_eq(d.classes, 0);
    const float *x = d.x, *y = d.y;
    float wx[] = {1, 2, -3.25f, 400, 5, 6}, wy[] = {0.5f, 7, -1};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(x[i], wx[i]);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(y[i], wy[i]);
    rt_dataset_free(&d);

    p = put_str("b.csv", "0.5,1,2,3\n1.5,2,3,9\n"); /* no header, class labels */
    cr_assert(rt_load_csv(p, 3, 1, 10, NULL, &d, err, sizeof err), "%s", err);
    cr_assert_eq(d.n, 2);
    cr_assert_eq(d.y_dtype, AG_I32);
    cr_assert_eq(d.classes, 10);
    cr_assert_eq(((int32_t *)d.y)[0], 3);
    cr_assert_eq(((int32_t *)d.y)[1], 9);
    cr_assert_eq(((float *)d.x)[3], 1.5f);
    rt_dataset_free(&d);
}

/* A gzipped training CSV reads as the plain one; a cut one is refused as the IDX files are. */
Test(data, csv_gzipped)
{
    static const char text[] = "x1,x2,y\n1,2,3\n4,5,6\n";
    rt_dataset d;
    cr_assert(rt_load_csv(put_str("g.csv.gz", text), 2, 1, 10, NULL, &d, err, sizeof err), "%s", err);
    cr_assert_eq(d.n, 2);
    cr_assert_eq(((float *)d.x)[2], 4.0f);
    cr_assert_eq(((int32_t *)d.y)[1], 6);
    rt_dataset_free(&d);

    /* the same file less its last 4 bytes (the length in the gzip trailer) */
    char path[600], cut[610];
    snprintf(path, sizeof path, "%s", put_str("c.csv.gz", text));
    snprintf(cut, sizeof cut, "%s.cut", path);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    unsigned char buf[256];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert_gt(n, 8);
    f = fopen(cut, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(buf, 1, n - 4, f), n - 4);
    fclose(f);
    cr_assert_not(rt_load_csv(cut, 2, 1, 10, NULL, &d, err, sizeof err));
    cr_expect(strstr(err, "truncated gzip stream"), "%s", err);
}

static void expect_csv(const char *name, const char *text, int64_t features, int classes, const char *fmt)
{
    rt_dataset d;
    char want[600];
    const char *p = text ? put_str(name, text) : at(name);
    cr_assert_not(rt_load_csv(p, features, 1, classes, NULL, &d, err, sizeof err), "loaded %s", name);
    cr_assert_null(d.x);
    snprintf(want, sizeof want, fmt, p);
    cr_assert_str_eq(err, want);
}

Test(data, csv_malformed)
{
    expect_csv("a.csv", "a,b,c,d,y\n1,2,3,4,5\n1,abc,3,4,5\n", 4, 0, "%s:3:2: expected a number, found 'abc'");
    expect_csv("a.csv", "1,2,3,4,5\n1,2,3,4,5\n1,2,3,4,5\n1,2,3\n", 4, 0,
               "%s:4: 3 fields, expected 5 (4 features + 1 target)");
    expect_csv("a.csv", "1,2,3,4,5,6\n", 4, 0, "%s:1: 6 fields, expected 5 (4 features + 1 target)");
    expect_csv("a.csv", "", 4, 0, "%s: empty file, expected rows of 5 numbers (4 features + 1 target)");
    expect_csv("a.csv", "\n  \r\n", 1, 0, "%s: empty file, expected rows of 2 numbers (1 feature + 1 target)");
    expect_csv("a.csv", "a,b,c,d,y\n", 4, 0,
               "%s: only a header line, expected rows of 5 numbers (4 features + 1 target)");
    expect_csv("a.csv", "1,2,3,4,5\n1,2,3,4,2.5\n", 4, 10,
               "%s:2:5: expected an integer class label in 0..9, found '2.5'");
    expect_csv("a.csv", "1,2,3,4,10\n", 4, 10, "%s:1:5: expected an integer class label in 0..9, found '10'");
    expect_csv("a.csv", "1,2,3,4,-1\n", 4, 10, "%s:1:5: expected an integer class label in 0..9, found '-1'");
    expect_csv("a.csv", "1,2\n1,,\n", 1, 0, "%s:2: 3 fields, expected 2 (1 feature + 1 target)");
    expect_csv("a.csv", "1,2\n,2\n", 1, 0, "%s:2:1: expected a number, found ''");
    expect_csv("a.csv", "1,2\n1e39,2\n", 1, 0, "%s:2:1: expected a number within f32 range, found '1e39'");
    expect_csv("a.csv", "1,2\nnan,2\n", 1, 0, "%s:2:1: expected a number, found 'nan'");
    expect_csv("a.csv", "1,2\n1,0123456789012345678901234567890123456789xyz\n", 1, 0,
               "%s:2:2: expected a number, found '0123456789012345678901234567890123456789...'");
    expect_csv("nope.csv", NULL, 4, 0, "%s: cannot open: No such file or directory");
    expect_csv(".", NULL, 4, 0, "%s: offset 0: cannot read: Is a directory");
}

/* The first line is a header only when none of its fields is a number; else it is a row like
 * any other, held to the same checks. */
Test(data, csv_first_line_rule)
{
    expect_csv("a.csv", "1,2,3x\n4,5,6\n", 2, 0, "%s:1:3: expected a number, found '3x'");
    expect_csv("a.csv", "1,2,3,\n4,5,6\n", 2, 0, "%s:1: 4 fields, expected 3 (2 features + 1 target)");
    expect_csv("a.csv", "x1,x2,3x\n", 2, 0, "%s:1:1: expected a number, found 'x1'");
    expect_csv("a.csv", "x1,x2,y\n", 2, 0,
               "%s: only a header line, expected rows of 3 numbers (2 features + 1 target)");
    expect_csv("a.csv", "1e39,b,c\n1,2,3\n", 2, 0, "%s:1:1: expected a number within f32 range, found '1e39'");
    /* a header has a row's fields; one field where several are due is most likely another separator */
    expect_csv("a.csv", "a,b\n1,2,3\n", 2, 0, "%s:1: a header of 2 fields, expected 3 (2 features + 1 target)");
    expect_csv("a.csv", "1;2;3\n", 2, 0,
               "%s:1: 1 field, expected 3 (2 features + 1 target) (fields are separated by commas, not ';')");
    expect_csv("a.csv", "1\t2\t3\n", 2, 0,
               "%s:1: 1 field, expected 3 (2 features + 1 target) (fields are separated by commas, not tabs)");
    expect_csv("a.csv", "a;b;c\n", 2, 0,
               "%s:1: a header of 1 field, expected 3 (2 features + 1 target) (fields are separated by commas, "
               "not ';')");
    expect_csv("a.csv", "a,b,c\n1;2;3\n", 2, 0,
               "%s:2: 1 field, expected 3 (2 features + 1 target) (fields are separated by commas, not ';')");

    /* integer column names and a named label (pandas' to_csv of a numpy array): a header */
    rt_dataset h;
    cr_assert(rt_load_csv(put_str("p.csv", "0,1,label\n1,2,3\n"), 2, 1, 0, NULL, &h, err, sizeof err), "%s", err);
    cr_expect_eq(h.n, 1);
    rt_dataset_free(&h);

    /* --label-column: the label in another column, by its number (from 1) or its header name;
     * the other columns are the features, in order */
    for (int k = 0; k < 2; k++) {
        const char *label = k ? "species" : "1";
        cr_assert(
            rt_load_csv(put_str("s.csv", "species,a,b\n2,0.5,0.25\n0,1.5,-1\n"), 2, 1, 3, label, &h, err, sizeof err),
            "%s", err);
        cr_expect_eq(h.n, 2);
        cr_expect(((float *)h.x)[0] == 0.5f && ((float *)h.x)[1] == 0.25f && ((float *)h.x)[3] == -1.0f);
        cr_expect(((int32_t *)h.y)[0] == 2 && ((int32_t *)h.y)[1] == 0);
        rt_dataset_free(&h);
    }
    cr_assert_not(rt_load_csv(put_str("s.csv", "species,a,b\n2,0.5,0.25\n"), 2, 1, 3, "kind", &h, err, sizeof err));
    cr_expect(strstr(err, "s.csv: --label-column kind: no such column in the header line 'species,a,b'"), "%s", err);
    cr_assert_not(rt_load_csv(put_str("s.csv", "2,0.5,0.25\n"), 2, 1, 3, "4", &h, err, sizeof err));
    cr_expect(strstr(err, "s.csv: --label-column 4: fields are numbered from 1 to 3"), "%s", err);

    /* no length limit on a field: a long header name, a long number */
    char text[1024], name[300];
    memset(name, 'h', sizeof name - 1), name[sizeof name - 1] = 0;
    snprintf(text, sizeof text, "%s,y\n0.5%0150d,2\n", name, 0);
    rt_dataset d;
    cr_assert(rt_load_csv(put_str("l.csv", text), 1, 1, 0, NULL, &d, err, sizeof err), "%s", err);
    cr_assert_eq(d.n, 1);
    cr_assert_eq(((float *)d.x)[0], 0.5f);
    cr_assert_eq(((float *)d.y)[0], 2.0f);
    rt_dataset_free(&d);
    snprintf(text, sizeof text, "%0120d5,2\n", 0); /* one line, long: a row, not "only a header line" */
    cr_assert(rt_load_csv(put_str("l.csv", text), 1, 1, 0, NULL, &d, err, sizeof err), "%s", err);
    cr_assert_eq(d.n, 1);
    cr_assert_eq(((float *)d.x)[0], 5.0f);
    rt_dataset_free(&d);
}

/* strtod reads hex (0x10 is 16) and skips \v and \f: a CSV field is decimal, all of it. */
Test(data, csv_decimal_only)
{
    expect_csv("a.csv", "1,2\n0x10,2\n", 1, 0, "%s:2:1: expected a number, found '0x10'");
    expect_csv("a.csv", "1,2\n1,-0X1p3\n", 1, 0, "%s:2:2: expected a number, found '-0X1p3'");
    expect_csv("a.csv", "0x10,2\n", 1, 0, "%s:1:1: expected a number, found '0x10'");
    expect_csv("a.csv", "1,2\n\v5,2\n", 1, 0, "%s:2:1: expected a number, found '\v5'");
    expect_csv("a.csv", "1,2\n1,0x1\n", 1, 10, "%s:2:2: expected an integer class label in 0..9, found '0x1'");
}

/* ---- inputs to predict on ---- */

/* A loaded set of inputs: n samples of `features` values, no labels. */
static void check_inputs(const rt_dataset *d, int64_t n, int64_t features, ag_dtype dtype)
{
    cr_assert_eq(d->n, n);
    cr_assert_eq(d->features, features);
    cr_assert_eq(d->x_dtype, dtype);
    cr_assert_not_null(d->x);
    cr_assert_eq(d->targets, 0);
    cr_assert_null(d->y);
    cr_assert_eq(d->classes, 0);
}

Test(data, inputs_idx_plain_and_gz)
{
    rt_dataset d;
    size_t ni = idx_images(img, 0x803, 5, 3, 2, 30);
    /* the kind comes from the content: an IDX file named .csv is still IDX */
    const char *names[] = {"i", "i.gz", "i.csv"};
    for (int k = 0; k < 3; k++) {
        const char *p = put(names[k], img, ni);
        cr_assert(rt_load_inputs(p, 6, &d, err, sizeof err), "%s: %s", names[k], err);
        check_inputs(&d, 5, 6, AG_U8);
        for (int i = 0; i < 30; i++)
            cr_assert_eq(((const uint8_t *)d.x)[i], (uint8_t)(i * 7 + 1), "%s: pixel %d", names[k], i);
        int64_t idx[2] = {4, 1};
        uint8_t x[12];
        rt_gather(&d, idx, 2, x, NULL); /* no y to gather */
        for (int j = 0; j < 6; j++) {
            cr_assert_eq(x[j], (uint8_t)((24 + j) * 7 + 1));
            cr_assert_eq(x[6 + j], (uint8_t)((6 + j) * 7 + 1));
        }
        rt_dataset_free(&d);
        cr_assert_null(d.x);
        cr_assert_eq(d.n, 0);
    }
}

/* Load dir/name as inputs of `features` and expect failure with message fmt, $I its path. */
static void expect_inputs(const char *name, int64_t features, const char *fmt)
{
    rt_dataset d;
    char p[256], want[600];
    snprintf(p, sizeof p, "%s", at(name));
    cr_assert_not(rt_load_inputs(p, features, &d, err, sizeof err), "loaded %s", name);
    cr_assert_null(d.x);
    cr_assert_null(d.y);
    cr_assert_eq(d.n, 0);
    subst(want, sizeof want, fmt, p, p);
    cr_assert_str_eq(err, want);
}

Test(data, inputs_idx_wrong_features)
{
    put("i.gz", img, idx_images(img, 0x803, 5, 3, 2, 30));
    expect_inputs("i.gz", 784, "$I: offset 8: 3 x 2 images are 6 values a sample, expected 784 (the model's features)");
    put("i", img, idx_images(img, 0x803, 5, 28, 28, 0)); /* refused before any pixel is read */
    expect_inputs("i", 5, "$I: offset 8: 28 x 28 images are 784 values a sample, expected 5 (the model's features)");
    expect_inputs("i", 0, "$I: 0 features, expected 1..2^30");
}

Test(data, inputs_idx_truncated)
{
    put("i.gz", img, idx_images(img, 0x803, 5, 3, 2, 10));
    expect_inputs("i.gz", 6, "$I: offset 16: truncated: expected 30 bytes of image data (5 x 3 x 2), found 10");
    put("i", img, idx_images(img, 0x803, 5, 3, 2, 29));
    expect_inputs("i", 6, "$I: offset 16: truncated: expected 30 bytes of image data (5 x 3 x 2), found 29");
    put("i", img, 7); /* magic and half the count */
    expect_inputs("i", 6, "$I: offset 0: truncated: expected 16 bytes of header (magic + 3 dims), found 7");
    put("i.gz", img, 2); /* two 0 bytes: the start of an IDX magic, not of a CSV */
    expect_inputs("i.gz", 6, "$I: offset 0: truncated: expected 16 bytes of header (magic + 3 dims), found 2");
    put("i", img, idx_images(img, 0x803, 5, 3, 2, 33));
    expect_inputs("i", 6, "$I: offset 46: 3 trailing bytes after the 5 images, expected end of file");
    put("i", img, idx_images(img, 0x803, 2739138, 28, 28, 30));
    expect_inputs("i", 784, "$I: offset 4: 2739138 x 28 x 28 images are over the 2147483648-byte limit");
    put("i", img, idx_images(img, 0x803, 5, 0, 2, 0));
    expect_inputs("i", 6, "$I: offset 8: 0 rows, expected at least 1");
}

Test(data, inputs_idx_labels_or_other_magic)
{
    put("l", lab, idx_labels(lab, 5));
    expect_inputs("l", 6,
                  "$I: offset 0: magic 0x00000801 is an IDX labels file, expected the inputs to predict on: "
                  "IDX images (magic 0x00000803) or a CSV");
    put("l.gz", lab, idx_labels(lab, 5));
    expect_inputs("l.gz", 1,
                  "$I: offset 0: magic 0x00000801 is an IDX labels file, expected the inputs to predict "
                  "on: IDX images (magic 0x00000803) or a CSV");
    put("f", img, idx_images(img, 0xD03, 5, 3, 2, 30)); /* f32 images */
    expect_inputs("f", 6, "$I: offset 0: bad magic 0x00000d03, expected 0x00000803 (IDX images, u8, 3 dims)");
}

Test(data, inputs_csv_with_and_without_header)
{
    rt_dataset d;
    const char *texts[] = {"a, b ,c\r\n1,2,3\r\n\r\n -4.5 ,5e1,6\r\n", "1,2,3\n-4.5,50,6",
                           "\xEF\xBB\xBF"
                           "1,2,3\n-4.5,50,6\n"};
    const char *names[] = {"h.csv", "n.csv", "bom"};
    float want[6] = {1, 2, 3, -4.5f, 50, 6};
    for (int k = 0; k < 3; k++) {
        const char *p = put_str(names[k], texts[k]);
        cr_assert(rt_load_inputs(p, 3, &d, err, sizeof err), "%s: %s", names[k], err);
        check_inputs(&d, 2, 3, AG_F32);
        for (int i = 0; i < 6; i++)
            cr_assert_eq(((const float *)d.x)[i], want[i], "%s: value %d", names[k], i);
        rt_dataset_free(&d);
        cr_assert_null(d.x);
    }
    /* one column, gzipped: still read as a CSV, the content decides */
    const char *p = put_str("x.gz", "x\n0.25\n7\n");
    cr_assert(rt_load_inputs(p, 1, &d, err, sizeof err), "%s", err);
    check_inputs(&d, 2, 1, AG_F32);
    cr_assert_eq(((const float *)d.x)[0], 0.25f);
    cr_assert_eq(((const float *)d.x)[1], 7.0f);
    rt_dataset_free(&d);
}

Test(data, inputs_csv_malformed)
{
    put_str("a.csv", "a,b,c\n1,2,3\n4,5\n");
    expect_inputs("a.csv", 3, "$I:3: 2 fields, expected 3 (3 features)");
    put_str("a.csv", "1,2,3,0\n"); /* a labeled row: one column too many */
    expect_inputs("a.csv", 3, "$I:1: 4 fields, expected 3 (3 features)");
    put_str("a.csv", "1,2\n3,x\n");
    expect_inputs("a.csv", 2, "$I:2:2: expected a number, found 'x'");
    put_str("a.csv.gz", "1,2\n\n3,1e39\n");
    expect_inputs("a.csv.gz", 2, "$I:3:2: expected a number within f32 range, found '1e39'");
    put_str("a.csv", "a,b\n");
    expect_inputs("a.csv", 2, "$I: only a header line, expected rows of 2 numbers (2 features)");
    put_str("a.csv", " \n\r\n");
    expect_inputs("a.csv", 1, "$I: empty file, expected rows of 1 numbers (1 feature)");
}

Test(data, inputs_empty_missing_unreadable)
{
    put("e", img, 0);
    expect_inputs("e", 784, "$I: empty file, expected IDX images (magic 0x00000803) or a CSV of 784 features a row");
    put("e.gz", img, 0); /* a gzip stream of nothing */
    expect_inputs("e.gz", 1, "$I: empty file, expected IDX images (magic 0x00000803) or a CSV of 1 feature a row");
    expect_inputs("nope", 784, "$I: cannot open: No such file or directory");
    expect_inputs(".", 784, "$I: offset 0: cannot read: Is a directory");
    put("junk", "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage!garbage!", 26); /* gzip magic, bad deflate */
    expect_inputs("junk", 784, "$I: offset 0: gzip: invalid block type (the file is corrupt)");
}

/* ---- gzip streams: whole, with nothing after them ---- */

/* bytes[0, n) as one gzip member in out; its size. */
static size_t gzip_member(const void *bytes, size_t n, uint8_t *out, size_t cap)
{
    z_stream z = {0};
    cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)bytes, z.avail_in = (uInt)n, z.next_out = out, z.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t size = z.total_out;
    deflateEnd(&z);
    return size;
}

static uint8_t gz[1 << 20];

/* The tests below write their gzip bytes as they are: named .gzip, not .gz, which put() would
 * compress again. The loaders go by the content, not the name. */

Test(data, gzip_cut_trailer)
{
    /* 1000 28x28 images: zlib's gzread inflated the bulk of these straight into our buffer,
     * stopped where the data did, and then never looked for the trailer */
    put("l", lab, idx_labels(lab, 1000));
    size_t n = gzip_member(img, idx_images(img, 0x803, 1000, 28, 28, 784000), gz, sizeof gz);
    for (size_t cut = 1; cut <= 8; cut += 7) { /* the length's last byte, and the whole 8-byte trailer */
        put("i.gzip", gz, n - cut);
        expect_idx("i.gzip", "l", 10,
                   "$I: offset 784016: truncated gzip stream after the 1000 images (the file "
                   "ends inside it)");
        expect_inputs("i.gzip", 784,
                      "$I: offset 784016: truncated gzip stream after the 1000 images (the file "
                      "ends inside it)");
    }
    /* a small labels file, and a gzipped CSV, cut the same way */
    put("i", img, idx_images(img, 0x803, 5, 3, 2, 30));
    put("l.gzip", gz, gzip_member(lab, idx_labels(lab, 5), gz, sizeof gz) - 4);
    expect_idx("i", "l.gzip", 10, "$L: offset 13: truncated gzip stream after the 5 labels (the file ends inside it)");
    const char *csv = "1,2\n3,4\n";
    put("c.gzip", gz, gzip_member(csv, strlen(csv), gz, sizeof gz) - 8);
    expect_inputs("c.gzip", 2, "$I: offset 8: truncated gzip stream (the file ends inside it)");
}

Test(data, gzip_bytes_after_the_stream)
{
    put("l", lab, idx_labels(lab, 5));
    size_t n = gzip_member(img, idx_images(img, 0x803, 5, 3, 2, 30), gz, sizeof gz);
    memcpy(gz + n, "garbage", 7);
    put("i.gzip", gz, n + 7);
    char fmt[200];
    snprintf(fmt, sizeof fmt,
             "$I: offset 46: 7 bytes after the gzip stream (at byte %zu of the file), expected end "
             "of file",
             n);
    expect_idx("i.gzip", "l", 10, fmt);
    expect_inputs("i.gzip", 6, fmt);
    /* data cut short, then bytes that are not gzip */
    n = gzip_member(img, idx_images(img, 0x803, 5, 3, 2, 20), gz, sizeof gz);
    memcpy(gz + n, "junk", 4);
    put("i.gzip", gz, n + 4);
    expect_idx("i.gzip", "l", 10,
               "$I: offset 16: truncated: expected 30 bytes of image data (5 x 3 x 2), found 20 (the "
               "gzip stream ends there; 4 bytes that are not gzip follow it)");
    /* zeros after the stream are padding, as gzip -t takes them */
    n = gzip_member(img, idx_images(img, 0x803, 5, 3, 2, 30), gz, sizeof gz);
    memset(gz + n, 0, 512);
    put("i.gzip", gz, n + 512);
    rt_dataset z;
    cr_assert(rt_load_idx(at("i.gzip"), at("l"), 6, 10, &z, err, sizeof err), "%s", err);
    check_small(&z);
    rt_dataset_free(&z);
    /* a second gzip member is more of the same file, as gunzip reads it */
    idx_images(img, 0x803, 5, 3, 2, 30);
    n = gzip_member(img, 20, gz, sizeof gz);
    n += gzip_member(img + 20, 26, gz + n, sizeof gz - n);
    put("i.gzip", gz, n);
    rt_dataset d;
    cr_assert(rt_load_idx(at("i.gzip"), at("l"), 6, 10, &d, err, sizeof err), "%s", err);
    check_small(&d);
    rt_dataset_free(&d);
    /* ... but one whose header is broken is corrupt */
    n = gzip_member(img, 46, gz, sizeof gz);
    memcpy(gz + n, "\x1f\x8bzz", 4);
    put("i.gzip", gz, n + 4);
    expect_idx("i.gzip", "l", 10, "$I: offset 46: gzip: unknown compression method (the file is corrupt)");
}

Test(data, gzip_corrupt_where_the_data_stopped)
{
    put("l", lab, idx_labels(lab, 5));
    size_t n = gzip_member(img, idx_images(img, 0x803, 5, 3, 2, 30), gz, sizeof gz);
    gz[n - 6] ^= 1; /* the CRC: found once all 46 bytes are out, so that is where it is said */
    put("i.gzip", gz, n);
    expect_idx("i.gzip", "l", 10, "$I: offset 46: gzip: incorrect data check (the file is corrupt)");
    expect_inputs("i.gzip", 6, "$I: offset 46: gzip: incorrect data check (the file is corrupt)");
    gz[n - 6] ^= 1, gz[n - 2] ^= 1; /* the length */
    put("i.gzip", gz, n);
    expect_idx("i.gzip", "l", 10, "$I: offset 46: gzip: incorrect length check (the file is corrupt)");
}

/* ---- synthetic data ---- */

/* Least squares for y = X w + b through the 3x3 normal equations, Cramer's rule. */
static void fit(const rt_dataset *d, double out[3])
{
    double A[3][3] = {{0}}, r[3] = {0};
    const float *x = d->x, *y = d->y;
    for (int64_t i = 0; i < d->n; i++) {
        double v[3] = {x[2 * i], x[2 * i + 1], 1};
        for (int a = 0; a < 3; a++) {
            r[a] += v[a] * y[i];
            for (int b = 0; b < 3; b++)
                A[a][b] += v[a] * v[b];
        }
    }
#define DET(M)                                                                                               \
    (M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) - M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) + \
     M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]))
    double det = DET(A);
    for (int c = 0; c < 3; c++) {
        double B[3][3];
        memcpy(B, A, sizeof B);
        for (int a = 0; a < 3; a++)
            B[a][c] = r[a];
        out[c] = DET(B) / det;
    }
}

Test(data, synthetic_linear)
{
    double w[2] = {2, -3.4}, est[3];
    rt_dataset d, e, f;
    cr_assert(rt_synthetic_linear(w, 2, 4.2, 1000, 0.01, 7, 1, &d, err, sizeof err), "%s", err);
    cr_assert_eq(d.n, 1000);
    cr_assert_eq(d.features, 2);
    cr_assert_eq(d.targets, 1);
    cr_assert_eq(d.x_dtype, AG_F32);
    cr_assert_eq(d.y_dtype, AG_F32);
    cr_assert_eq(d.classes, 0);
    fit(&d, est);
    cr_assert(fabs(est[0] - 2) < 0.01 && fabs(est[1] + 3.4) < 0.01 && fabs(est[2] - 4.2) < 0.01, "fit %g %g %g", est[0],
              est[1], est[2]);
    double m = 0, v = 0; /* X ~ N(0, 1) */
    for (int i = 0; i < 2000; i++)
        m += ((float *)d.x)[i], v += (double)((float *)d.x)[i] * ((float *)d.x)[i];
    cr_assert(fabs(m / 2000) < 0.1 && fabs(v / 2000 - 1) < 0.1, "mean %g, E[x^2] %g", m / 2000, v / 2000);

    cr_assert(rt_synthetic_linear(w, 2, 4.2, 1000, 0.01, 7, 1, &e, err, sizeof err));
    cr_assert(rt_synthetic_linear(w, 2, 4.2, 1000, 0.01, 7, 2, &f, err, sizeof err));
    cr_assert_eq(memcmp(d.x, e.x, 2000 * sizeof(float)), 0);
    cr_assert_eq(memcmp(d.y, e.y, 1000 * sizeof(float)), 0);
    cr_assert_neq(memcmp(d.x, f.x, 2000 * sizeof(float)), 0);
    rt_dataset_free(&d), rt_dataset_free(&e), rt_dataset_free(&f);

    cr_assert_not(rt_synthetic_linear(w, 2, 4.2, 0, 0.01, 7, 1, &d, err, sizeof err));
    cr_assert_str_eq(err, "synthetic data: 0 samples of 2 features, expected at least 1 of each");
}

/* ---- shuffle and gather ---- */

Test(data, shuffle)
{
    enum { N = 1000 };
    static int64_t p[N], q[N], r[N];
    int seen[N] = {0};
    rt_shuffle(p, N, 42, 0);
    for (int i = 0; i < N; i++)
        cr_assert(p[i] >= 0 && p[i] < N && !seen[p[i]]++, "not a permutation at %d", i);
    rt_shuffle(q, N, 42, 0);
    cr_assert_eq(memcmp(p, q, sizeof p), 0);
    rt_shuffle(r, N, 42, 1);
    cr_assert_neq(memcmp(p, r, sizeof p), 0);
    rt_shuffle(r, N, 43, 0);
    cr_assert_neq(memcmp(p, r, sizeof p), 0);
    rt_shuffle(r, 1, 42, 0);
    cr_assert_eq(r[0], 0);
    rt_shuffle(r, 0, 42, 0);

    /* unbiased: each of the 6 orders of 3 comes up about 1/6 of the epochs */
    int count[3][3][3] = {{{0}}};
    for (uint64_t ep = 0; ep < 60000; ep++) {
        rt_shuffle(r, 3, 9, ep);
        count[r[0]][r[1]][r[2]]++;
    }
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            if (a != b)
                cr_assert(abs(count[a][b][3 - a - b] - 10000) < 400, "order %d%d: %d", a, b, count[a][b][3 - a - b]);
}

Test(data, gather_both_dtypes)
{
    int64_t idx[3] = {4, 0, 4};
    rt_dataset d;
    put("i", img, idx_images(img, 0x803, 5, 3, 2, 30)), put("l", lab, idx_labels(lab, 5));
    cr_assert(rt_load_idx(at("i"), at("l"), 0, 10, &d, err, sizeof err), "%s", err);
    uint8_t x[18];
    int32_t y[3];
    rt_gather(&d, idx, 3, x, y);
    for (int k = 0; k < 3; k++) {
        for (int j = 0; j < 6; j++)
            cr_assert_eq(x[k * 6 + j], (uint8_t)((idx[k] * 6 + j) * 7 + 1));
        cr_assert_eq(y[k], idx[k]);
    }
    rt_dataset_free(&d);

    const char *p = put_str("a.csv", "0,1,2,3\n10,11,12,13\n20,21,22,23\n30,31,32,33\n40,41,42,43\n");
    cr_assert(rt_load_csv(p, 2, 2, 0, NULL, &d, err, sizeof err), "%s", err);
    float fx[6], fy[6];
    rt_gather(&d, idx, 3, fx, fy);
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 2; j++) {
            cr_assert_eq(fx[k * 2 + j], (float)(idx[k] * 10 + j));
            cr_assert_eq(fy[k * 2 + j], (float)(idx[k] * 10 + 2 + j));
        }
    rt_gather(&d, idx + 1, 1, NULL, fy); /* y alone */
    cr_assert_eq(fy[0], 2.0f);
    rt_dataset_free(&d);
}

/* Numbers going into an integer input must be whole and in range: rounding or saturating
 * them would train on other data than the file's. */
Test(data, features_must_fit_an_integer_input)
{
    float x[6] = {0, 255, 17, 1, 0, 1};
    rt_dataset d = {.n = 2, .features = 3, .x_dtype = AG_F32, .x = x};
    char err[256];
    cr_expect(rt_dataset_x_fits(&d, AG_U8, "data t.csv", err, sizeof err), "%s", err);
    cr_expect(rt_dataset_x_fits(&d, AG_F32, "data t.csv", err, sizeof err), "%s", err);
    x[4] = 300;
    cr_expect_not(rt_dataset_x_fits(&d, AG_U8, "data t.csv", err, sizeof err));
    cr_expect_str_eq(err, "data t.csv: sample 2, feature 2: 300 is not a u8 (a whole number 0..255)");
    x[4] = 0.5f;
    cr_expect_not(rt_dataset_x_fits(&d, AG_I32, "data t.csv", err, sizeof err));
    cr_expect_str_eq(err,
                     "data t.csv: sample 2, feature 2: 0.5 is not an i32 (a whole number -2147483648..2147483647)");
    x[4] = -5;
    cr_expect(rt_dataset_x_fits(&d, AG_I32, "data t.csv", err, sizeof err), "%s", err);
    cr_expect_not(rt_dataset_x_fits(&d, AG_BOOL, "data t.csv", err, sizeof err));
    cr_expect_str_eq(err, "data t.csv: sample 1, feature 2: 255 is not a bool (a whole number 0..1)");
}
