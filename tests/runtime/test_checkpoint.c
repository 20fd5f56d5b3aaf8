/* Checkpoints: round trips, the exact bytes of a small file, every kind of corrupt file with
 * its exact message, random corruption, read_into's messages, the atomic save, and (where
 * Python's safetensors is installed) the reference reader on our files. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fail.h"

/* ---- a temporary directory per test, removed even when an assertion fails ---- */

static char dir[64], path[128], err[1024], want[1024];

static void rm_tree(const char *p)
{
    DIR *d = opendir(p);
    struct dirent *e;
    char q[512];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(q, sizeof q, "%s/%s", p, e->d_name);
            if (unlink(q) != 0)
                rm_tree(q);
        }
    if (d)
        closedir(d);
    rmdir(p);
}

static void setup(void)
{
    strcpy(dir, "/tmp/ag_ckpt_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    err[0] = 0;
}

static void teardown(void) { rm_tree(dir); }

TestSuite(checkpoint, .init = setup, .fini = teardown);

static void write_file(const char *p, const void *data, size_t n)
{
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static size_t read_file(const char *p, unsigned char *buf, size_t cap)
{
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f, "%s: %s", p, strerror(errno));
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* A file made by hand: the header as given (length prefix added), then the buffer. */
static void write_raw(const char *header, const void *buf, size_t nbuf)
{
    size_t n = strlen(header);
    unsigned char *b = malloc(8 + n + nbuf + 1);
    for (int k = 0; k < 8; k++)
        b[k] = (unsigned char)((uint64_t)n >> 8 * k);
    memcpy(b + 8, header, n);
    if (nbuf)
        memcpy(b + 8 + n, buf, nbuf);
    write_file(path, b, 8 + n + nbuf);
    free(b);
}

/* Loading path fails with "PATH: " + the formatted rest. */
#define expect_load_error(...)                                                                 \
    do {                                                                                       \
        rt_ckpt c_;                                                                            \
        int k_ = snprintf(want, sizeof want, "%s: ", path);                                    \
        snprintf(want + k_, sizeof want - k_, __VA_ARGS__);                                    \
        cr_assert_not(rt_ckpt_load(path, &c_, err, sizeof err), "loaded, expected: %s", want); \
        cr_assert_str_eq(err, want);                                                           \
        cr_assert_eq(c_.n, 0);                                                                 \
        cr_assert_null(c_.blob);                                                               \
    } while (0)

/* Offset in the file of the first `what` in the header. */
static int at(const char *header, const char *what)
{
    const char *s = strstr(header, what);
    cr_assert_not_null(s, "%s not in %s", what, header);
    return 8 + (int)(s - header);
}

static bool no_tmp_left(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool none = true;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp."))
            none = false;
    closedir(d);
    return none;
}

/* ---- round trips ---- */

static float w1[3][4], w2[5];
static int32_t labels[6] = {0, -1, 7, INT32_MAX, INT32_MIN, 42};
static int32_t counts[2][2][2] = {{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}};
static uint8_t pixels[2][3] = {{0, 128, 255}, {1, 2, 3}};
static uint8_t bytes1[1] = {9};
static bool mask[4] = {true, false, false, true};
static bool flag = true;
static double d1[2] = {0.1, -1e300}, d2[1][1][1][2] = {{{{3.5, 1.0 / 3}}}};

static const rt_ckpt_tensor all[] = {
    {"W1", AG_F32, 2, {3, 4}, w1},        {"b1", AG_F32, 1, {5}, w2},
    {"scalar", AG_F32, 0, {0}, w2},       {"empty", AG_F32, 2, {0, 7}, NULL},
    {"labels", AG_I32, 1, {6}, labels},   {"counts", AG_I32, 3, {2, 2, 2}, counts},
    {"pixels", AG_U8, 2, {2, 3}, pixels}, {"one byte", AG_U8, 1, {1}, bytes1},
    {"mask", AG_BOOL, 1, {4}, mask},      {"flag", AG_BOOL, 0, {0}, &flag},
    {"d1", AG_F64, 1, {2}, d1},           {"d2 \"quoted\" \\ é 😀", AG_F64, 4, {1, 1, 1, 2}, d2},
};
static const int nall = sizeof all / sizeof *all;
static const rt_ckpt_meta metas[] = {
    {"format", "aotgrad"},
    {"epoch", "3"},
    {"escapes", "quote \" backslash \\ slash / newline \n tab \t cr \r bell \a unit \x1f del \x7f"},
    {"utf-8", "é ü 中 😀"},
    {"", "empty key"},
    {"empty value", ""},
};
static const int nmetas = sizeof metas / sizeof *metas;

static size_t nbytes(const rt_ckpt_tensor *t)
{
    static const size_t size[] = {[AG_F32] = 4, [AG_I32] = 4, [AG_U8] = 1, [AG_BOOL] = 1, [AG_F64] = 8};
    size_t n = size[t->dtype];
    for (int i = 0; i < t->rank; i++)
        n *= (size_t)t->dims[i];
    return n;
}

Test(checkpoint, round_trip_every_dtype_and_metadata)
{
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            w1[i][j] = (float)(i * 4 + j) * 0.25f - 1.0f;
    for (int i = 0; i < 5; i++)
        w2[i] = 1.0f / (float)(i + 1);

    cr_assert(rt_ckpt_save(path, all, nall, metas, nmetas, err, sizeof err), "%s", err);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(no_tmp_left());

    rt_ckpt c;
    cr_assert(rt_ckpt_load(path, &c, err, sizeof err), "%s", err);
    cr_assert_eq(c.n, nall);
    int64_t off = 0;
    for (int i = 0; i < nall; i++) {
        const rt_ckpt_tensor *a = &all[i], *b = &c.t[i]; /* in the order written */
        cr_assert_str_eq(b->name, a->name);
        cr_assert_eq(b->dtype, a->dtype, "%s", a->name);
        cr_assert_eq(b->rank, a->rank, "%s", a->name);
        for (int j = 0; j < a->rank; j++)
            cr_assert_eq(b->dims[j], a->dims[j]);
        size_t n = nbytes(a);
        if (n)
            cr_assert_eq(memcmp(a->data, b->data, n), 0, "%s", a->name);
        /* tightly packed, in order */
        cr_assert_eq((const char *)b->data - (const char *)c.t[0].data, off, "%s", a->name);
        off += (int64_t)n;
        cr_assert_eq(rt_ckpt_find(&c, a->name), b);
    }
    unsigned char n8[8];
    cr_assert_eq(read_file(path, n8, 8), 8);
    cr_assert_eq(n8[0] % 8, 0); /* the header is padded: the buffer begins 8-aligned */
    cr_assert_null(rt_ckpt_find(&c, "W3"));

    cr_assert_eq(c.nmeta, nmetas);
    for (int i = 0; i < nmetas; i++) {
        cr_assert_str_eq(c.meta[i].key, metas[i].key);
        cr_assert_str_eq(c.meta[i].value, metas[i].value);
        cr_assert_str_eq(rt_ckpt_meta_get(&c, metas[i].key), metas[i].value);
    }
    cr_assert_null(rt_ckpt_meta_get(&c, "missing"));

    float got[3][4];
    cr_assert(rt_ckpt_read_into(&c, path, "W1", AG_F32, 2, (int64_t[]){3, 4}, got, err, sizeof err), "%s", err);
    cr_assert_eq(memcmp(got, w1, sizeof w1), 0);
    double gd[2];
    cr_assert(rt_ckpt_read_into(&c, path, "d1", AG_F64, 1, (int64_t[]){2}, gd, err, sizeof err), "%s", err);
    cr_assert(gd[0] == 0.1 && gd[1] == -1e300);
    bool gb;
    cr_assert(rt_ckpt_read_into(&c, path, "flag", AG_BOOL, 0, NULL, &gb, err, sizeof err), "%s", err);
    cr_assert(gb);
    cr_assert(rt_ckpt_read_into(&c, path, "empty", AG_F32, 2, (int64_t[]){0, 7}, NULL, err, sizeof err), "%s", err);

    rt_ckpt_free(&c);
    cr_assert_eq(c.n, 0);
    cr_assert_null(c.t);
    rt_ckpt_free(&c); /* a zeroed one is fine */
}

Test(checkpoint, no_tensors_no_metadata)
{
    cr_assert(rt_ckpt_save(path, NULL, 0, NULL, 0, err, sizeof err), "%s", err);
    unsigned char b[64];
    cr_assert_eq(read_file(path, b, sizeof b), 16);
    cr_assert_eq(memcmp(b, "\x08\0\0\0\0\0\0\0{}      ", 16), 0);
    rt_ckpt c;
    cr_assert(rt_ckpt_load(path, &c, err, sizeof err), "%s", err);
    cr_assert_eq(c.n, 0);
    cr_assert_eq(c.nmeta, 0);
    cr_assert_not(rt_ckpt_read_into(&c, path, "W1", AG_F32, 0, NULL, NULL, err, sizeof err));
    snprintf(want, sizeof want, "%s: no tensor W1 (the checkpoint has no tensors)", path);
    cr_assert_str_eq(err, want);
    rt_ckpt_free(&c);
}

Test(checkpoint, save_over_an_existing_file)
{
    float a = 1, b[2] = {2, 3};
    cr_assert(rt_ckpt_save(path, &(rt_ckpt_tensor){"a", AG_F32, 0, {0}, &a}, 1, NULL, 0, err, sizeof err), "%s", err);
    cr_assert(rt_ckpt_save(path, &(rt_ckpt_tensor){"b", AG_F32, 1, {2}, b}, 1, NULL, 0, err, sizeof err), "%s", err);
    rt_ckpt c;
    cr_assert(rt_ckpt_load(path, &c, err, sizeof err), "%s", err);
    cr_assert_eq(c.n, 1);
    cr_assert_str_eq(c.t[0].name, "b");
    rt_ckpt_free(&c);
    cr_assert(no_tmp_left());
}

/* The exact bytes: what the format asks, compact like the Python library writes. */
Test(checkpoint, golden_bytes)
{
    float a[2] = {1.0f, -2.0f};
    bool m = true;
    rt_ckpt_tensor t[] = {{"a", AG_F32, 1, {2}, a}, {"m", AG_BOOL, 0, {0}, &m}};
    cr_assert(rt_ckpt_save(path, t, 2, &(rt_ckpt_meta){"k", "v"}, 1, err, sizeof err), "%s", err);
    static const char golden[] = "\x88\0\0\0\0\0\0\0" /* 136: 132 bytes of JSON, padded to a multiple of 8 */
                                 "{\"__metadata__\":{\"k\":\"v\"},"
                                 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                 "\"m\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[8,9]}}    "
                                 "\x00\x00\x80\x3f"
                                 "\x00\x00\x00\xc0" /* 1.0f, -2.0f little-endian */
                                 "\x01";
    unsigned char b[512];
    size_t n = read_file(path, b, sizeof b);
    cr_assert_eq(n, sizeof golden - 1);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(b[i], (unsigned char)golden[i], "byte %zu: %02x, expected %02x", i, b[i],
                     (unsigned char)golden[i]);
}

/* Files written by others: any JSON spacing, any key order, every escape, null metadata. */
Test(checkpoint, reads_standard_json)
{
    static const char h[] =
        "{ \"__metadata__\" : { \"s\" : \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\u4E2D \\ud83d\\ude00 "
        "\\u001f\" } ,\n"
        "\t\"b\\u00e9\" : { \"data_offsets\" : [ 4 , 8 ] , \"shape\" : [ 1 ] , \"dtype\" : \"I32\" } ,\r\n"
        "  \"a\":{\"shape\":[1],\"dtype\":\"I32\",\"data_offsets\":[0,4]}}  ";
    int32_t v[2] = {5, 6};
    write_raw(h, v, sizeof v);
    rt_ckpt c;
    cr_assert(rt_ckpt_load(path, &c, err, sizeof err), "%s", err);
    cr_assert_str_eq(rt_ckpt_meta_get(&c, "s"), "\" \\ / \b \f \n \r \t é 中 😀 \x1f");
    int32_t x;
    cr_assert(rt_ckpt_read_into(&c, path, "bé", AG_I32, 1, (int64_t[]){1}, &x, err, sizeof err), "%s", err);
    cr_assert_eq(x, 6);
    cr_assert(rt_ckpt_read_into(&c, path, "a", AG_I32, 1, (int64_t[]){1}, &x, err, sizeof err), "%s", err);
    cr_assert_eq(x, 5);
    rt_ckpt_free(&c);

    write_raw("{\"__metadata__\":null,\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", NULL, 0);
    cr_assert(rt_ckpt_load(path, &c, err, sizeof err), "%s", err);
    cr_assert_eq(c.nmeta, 0);
    cr_assert_eq(c.n, 1);
    rt_ckpt_free(&c);
}

/* ---- corrupt files, each with its message ---- */

Test(checkpoint, missing_file)
{
    rt_ckpt c;
    cr_assert_not(rt_ckpt_load(path, &c, err, sizeof err));
    snprintf(want, sizeof want, "%s: cannot read: %s", path, strerror(ENOENT));
    cr_assert_str_eq(err, want);
    cr_assert_not(rt_ckpt_load(dir, &c, err, sizeof err));
    snprintf(want, sizeof want, "%s: cannot read: %s", dir, strerror(EISDIR));
    cr_assert_str_eq(err, want);
}

Test(checkpoint, shorter_than_8_bytes)
{
    write_file(path, "\x10\0\0\0\0", 5);
    expect_load_error("offset 0: the file has 5 bytes, expected at least 8 (the header length)");
    write_file(path, "", 0);
    expect_load_error("offset 0: the file has 0 bytes, expected at least 8 (the header length)");
}

Test(checkpoint, shorter_than_its_header)
{
    float a[2] = {1, 2};
    cr_assert(rt_ckpt_save(path, &(rt_ckpt_tensor){"a", AG_F32, 1, {2}, a}, 1, NULL, 0, err, sizeof err), "%s", err);
    unsigned char b[256];
    size_t n = read_file(path, b, sizeof b);
    cr_assert_eq(n, 8 + 56 + 8);
    write_file(path, b, 30);
    expect_load_error("offset 30: the file ends inside the header (56 bytes from offset 8), truncated?");
    /* cut in the buffer instead: the header is whole, the tensor is not */
    write_file(path, b, n - 1);
    expect_load_error("offset %d: tensor a has data_offsets [0, 8] past the end of the buffer (7 bytes)",
                      (int)(strstr((char *)b + 8, "[0,8]") - (char *)b));
}

Test(checkpoint, header_length_beyond_the_file)
{
    write_file(path, "\xe8\x03\0\0\0\0\0\0{}", 10); /* 1000 */
    expect_load_error("offset 10: the file ends inside the header (1000 bytes from offset 8), truncated?");
    write_file(path, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
    expect_load_error("offset 0: header length 18446744073709551615 is over the limit of 100000000 bytes "
                      "(not a safetensors file?)");
}

Test(checkpoint, bad_json_at_its_offset)
{
    static const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]};";
    write_raw(h, "12345678", 8);
    expect_load_error("offset %d: expected ',' or '}' in the header", at(h, ";"));

    struct {
        const char *header, *culprit, *msg;
    } cases[] = {
        {" {}", " {", "expected '{' at the start of the header"},
        {"[]", "[]", "expected '{' at the start of the header"},
        {"", NULL, "expected '{' at the start of the header"}, /* NULL: at the header's end */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},7}", "7}",
         "expected a string (a tensor name or \"__metadata__\")"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", "x",
         "expected only spaces after the header's closing '}'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}\n", "\n",
         "expected only spaces after the header's closing '}'"},
        {"{\"a\" {}}", "{}}", "expected ':'"},
        {"{\"a\":{\"dtype\":\"F32\" \"shape\":[2],\"data_offsets\":[0,8]}}", "\"shape",
         "expected ',' or '}' in tensor a"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2 2],\"data_offsets\":[0,8]}}", "2]",
         "expected ',' or ']' in the shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", "-8", "expected a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", "2.0",
         "expected a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e3],\"data_offsets\":[0,8]}}", "1e3",
         "expected a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", "02",
         "expected a non-negative integer without leading zeros"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,8]}}", "9223",
         "number too large, expected at most 9223372036854775807"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", NULL, "expected ',' or '}' in the header"},
        {"{\"a\":{\"dtype\":F32,\"shape\":[2],\"data_offsets\":[0,8]}}", "F32,", "expected a string (the dtype)"},
        {"{\"a\":[],\"b\":1}", "[]", "expected '{' (the entry of a tensor)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", "\"extra",
         "unknown key \"extra\" in tensor a, expected \"dtype\", \"shape\" or \"data_offsets\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", "\"a", "tensor a has no \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"shape\":[2],\"data_offsets\":[0,8]}}", "\"shape\":[2],\"data",
         "tensor a has \"shape\" twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", "[0,8,9]",
         "tensor a has 3 data_offsets, expected 2 ([begin, end])"},
        {"{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "1}",
         "expected a string (metadata values are strings)"},
        {"{\"__metadata__\":{\"k\":\"v\" \"x\":\"y\"}}", "\"x", "expected ',' or '}' in __metadata__"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", "\"__metadata__\":{}}", "\"__metadata__\" appears twice"},
        {"{\"__metadata__\":[]}", "[]", "expected '{' or null (the value of __metadata__)"},
        {"{\"a\\x\":{}}", "\\x", "expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u after '\\'"},
        {"{\"a\\u12g4\":{}}", "\\u", "expected 4 hex digits after \\u"},
        {"{\"a\\ud83d\":{}}", "\\u", "unpaired surrogate \\uD83D in a string"},
        {"{\"a\\ude00\":{}}", "\\u", "unpaired surrogate \\uDE00 in a string"},
        {"{\"a\\u0000\":{}}", "\\u", "\\u0000 in a string: names and values cannot hold a NUL byte"},
        {"{\"a\tb\":{}}", "\t", "control character 0x09 in a string, expected it escaped"},
        {"{\"a\xc3(\":{}}", "\xc3", "invalid UTF-8 in a string"},
        {"{\"a\xc0\xaf\":{}}", "\xc0", "invalid UTF-8 in a string"},     /* overlong '/' */
        {"{\"a\xed\xa0\x80\":{}}", "\xed", "invalid UTF-8 in a string"}, /* a surrogate */
        {"{\"abc", "\"abc", "string not closed before the end of the header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_raw(cases[i].header, "12345678", 8);
        const char *h = cases[i].header;
        expect_load_error("offset %d: %s", cases[i].culprit ? at(h, cases[i].culprit) : 8 + (int)strlen(h),
                          cases[i].msg);
    }
}

Test(checkpoint, unknown_dtype)
{
    static const char *h = "{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}";
    write_raw(h, "12345678", 8);
    expect_load_error("offset %d: tensor a has dtype \"F16\", expected F32, I32, U8, BOOL or F64", at(h, "\"F16"));
}

Test(checkpoint, shape_and_size_disagree)
{
    static const char *h = "{\"W1\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}";
    write_raw(h, "12345678901234567890", 20);
    expect_load_error("offset %d: tensor W1 of F32 [2,3] needs 24 bytes, its data_offsets [0, 20] hold 20",
                      at(h, "[0,20]"));
    static const char *big = "{\"W1\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}";
    write_raw(big, "12345678", 8);
    expect_load_error("offset %d: tensor W1 of F64 [4294967296,4294967296] needs more than 9223372036854775807 bytes, "
                      "its data_offsets [0, 8] hold 8",
                      at(big, "[0,8]"));
    static const char *back = "{\"W1\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,0]}}";
    write_raw(back, "12345678", 8);
    expect_load_error("offset %d: tensor W1 has data_offsets [8, 0], expected begin <= end", at(back, "[8,0]"));
}

Test(checkpoint, overlapping_offsets)
{
    static const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    write_raw(h, "123456789012", 12);
    expect_load_error("offset %d: tensors a and b overlap: a ends at buffer byte 8, b begins at 4", at(h, "[4,12]"));
}

Test(checkpoint, gaps)
{
    static const char *end = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    write_raw(end, "123456789012", 12);
    expect_load_error("offset %d: 4 bytes after the last tensor belong to no tensor (the buffer has 12 bytes, "
                      "the tensors end at 8)",
                      8 + (int)strlen(end) + 8);
    static const char *mid = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    write_raw(mid, "123456789012", 12);
    expect_load_error("offset %d: tensors a and b leave a gap: buffer bytes 4 to 7 belong to no tensor",
                      at(mid, "[8,12]"));
    static const char *start = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    write_raw(start, "12345678", 8);
    expect_load_error("offset %d: tensor a begins at buffer byte 4: bytes 0 to 3 belong to no tensor",
                      at(start, "[4,8]"));
    write_raw("{}", "1", 1);
    expect_load_error("offset 10: 1 bytes after the last tensor belong to no tensor (the buffer has 1 bytes, "
                      "the tensors end at 0)");
}

Test(checkpoint, duplicate_names)
{
    static const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                           "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    write_raw(h, "12345678", 8);
    expect_load_error("offset %d: tensor a appears twice (first at offset 9)",
                      8 + (int)(strstr(h + 1, "},\"a") - h) + 2);
    static const char *m = "{\"__metadata__\":{\"k\":\"1\",\"j\":\"2\",\"k\":\"3\"}}";
    write_raw(m, NULL, 0);
    expect_load_error("offset %d: metadata key k appears twice (first at offset %d)", at(m, "\"k\":\"3"),
                      at(m, "\"k\""));
}

Test(checkpoint, rank_5)
{
    static const char *h = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}";
    write_raw(h, "1", 1);
    expect_load_error("offset %d: tensor a has rank 5, at most 4 is supported", at(h, "[1,1"));
}

Test(checkpoint, bool_bytes_are_0_or_1)
{
    static const char *h = "{\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]}}";
    write_raw(h, "\1\0\2", 3);
    expect_load_error("offset %d: tensor m holds 2 at element 2, expected 0 or 1 (BOOL)", 8 + (int)strlen(h) + 2);
}

static size_t next(uint64_t *r) /* a 64-bit LCG: the same corruptions every run */
{
    *r = *r * 6364136223846793005u + 1442695040888963407u;
    return (size_t)(*r >> 33);
}
#define NEXT() next(&r)

/* Any bytes: flipped, cut or extended, the loader answers without crashing (ASan watches). */
Test(checkpoint, random_corruption_never_crashes)
{
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            w1[i][j] = (float)(i + j);
    cr_assert(rt_ckpt_save(path, all, nall, metas, nmetas, err, sizeof err), "%s", err);
    static unsigned char orig[4096], b[4096 + 64];
    size_t n = read_file(path, orig, sizeof orig);
    cr_assert_lt(n, sizeof orig);
    uint64_t r = 12345;
    int loaded = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(b, orig, n);
        size_t m = n;
        int kind = (int)(NEXT() % 4);
        if (kind == 0) { /* flip a few bytes, half the time in the first 400 of the header */
            for (int k = 0, nk = 1 + (int)(NEXT() % 3); k < nk; k++) {
                size_t span = NEXT() % 2 ? n : 8 + 400;
                size_t where = NEXT() % span;
                b[where] ^= (unsigned char)(1 + NEXT() % 255);
            }
        } else if (kind == 1) { /* cut */
            m = NEXT() % n;
        } else if (kind == 2) { /* a header byte becomes a JSON-ish character */
            size_t where = 8 + NEXT() % 400;
            b[where] = (unsigned char)"{}[]\",:0123456789\\u -eE."[NEXT() % 25];
        } else { /* extend */
            m = n + 1 + NEXT() % 64;
        }
        write_file(path, b, m);
        rt_ckpt c;
        err[0] = 0;
        if (rt_ckpt_load(path, &c, err, sizeof err)) {
            loaded++;
            rt_ckpt_free(&c);
        } else
            cr_assert_eq(strncmp(err, path, strlen(path)), 0, "%s", err);
    }
    cr_assert_lt(loaded, 3000);
}

/* ---- read_into ---- */

Test(checkpoint, read_into_messages)
{
    float W1[784 * 128] = {0}, b1[128] = {0}, W2[128 * 10] = {0};
    rt_ckpt_tensor t[] = {
        {"W1", AG_F32, 2, {784, 128}, W1},
        {"b1", AG_F32, 1, {128}, b1},
        {"W2", AG_F32, 2, {128, 10}, W2},
    };
    cr_assert(rt_ckpt_save(path, t, 3, NULL, 0, err, sizeof err), "%s", err);
    rt_ckpt c;
    cr_assert(rt_ckpt_load(path, &c, err, sizeof err), "%s", err);
    static float dst[784 * 256];

    cr_assert_not(rt_ckpt_read_into(&c, path, "W1", AG_F32, 2, (int64_t[]){784, 256}, dst, err, sizeof err));
    snprintf(want, sizeof want, "%s: tensor W1 has shape [784,128], expected [784,256]", path);
    cr_assert_str_eq(err, want);

    cr_assert_not(rt_ckpt_read_into(&c, path, "b1", AG_F32, 2, (int64_t[]){1, 128}, dst, err, sizeof err));
    snprintf(want, sizeof want, "%s: tensor b1 has shape [128], expected [1,128]", path);
    cr_assert_str_eq(err, want);

    cr_assert_not(rt_ckpt_read_into(&c, path, "b2", AG_F32, 1, (int64_t[]){10}, dst, err, sizeof err));
    snprintf(want, sizeof want, "%s: no tensor b2 (the checkpoint has W1, b1, W2)", path);
    cr_assert_str_eq(err, want);

    cr_assert_not(rt_ckpt_read_into(&c, path, "b1", AG_I32, 1, (int64_t[]){128}, dst, err, sizeof err));
    snprintf(want, sizeof want, "%s: tensor b1 has dtype F32, expected I32", path);
    cr_assert_str_eq(err, want);

    char small[40]; /* a short buffer gets a cut message, never an overflow */
    cr_assert_not(rt_ckpt_read_into(&c, path, "b2", AG_F32, 1, (int64_t[]){10}, dst, small, sizeof small));
    cr_assert_eq(strlen(small), sizeof small - 1);
    rt_ckpt_free(&c);
}

/* ---- the save's own checks, and its atomicity ---- */

Test(checkpoint, save_refuses_bad_tensors)
{
    float x[1] = {0};
    struct {
        rt_ckpt_tensor t[2];
        int n;
        const char *msg;
    } cases[] = {
        {{{"a", AG_F32, 5, {1, 1, 1, 1}, x}}, 1, "tensor a has rank 5, expected 0 to 4"},
        {{{"a", AG_F32, 1, {-1}, x}}, 1, "tensor a has dimension -1, expected >= 0"},
        {{{"a", AG_F32, 1, {1}, x}, {"a", AG_F32, 1, {1}, x}}, 2, "tensor a appears twice (tensors 0 and 1)"},
        {{{"__metadata__", AG_F32, 1, {1}, x}}, 1, "the tensor name __metadata__ is reserved by the format"},
        {{{NULL, AG_F32, 1, {1}, x}}, 1, "tensor 0 has no name"},
        {{{"a\xff", AG_F32, 1, {1}, x}}, 1, "tensor name 0 is not valid UTF-8"},
        {{{"a", AG_DTYPE_COUNT, 1, {1}, x}}, 1, "tensor a has an unknown dtype 5"},
        {{{"a", AG_F32, 1, {1}, NULL}}, 1, "tensor a has no data"},
        {{{"a", AG_F64, 2, {INT64_MAX / 2, 3}, x}}, 1, "tensor a is too large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cr_assert_not(rt_ckpt_save(path, cases[i].t, cases[i].n, NULL, 0, err, sizeof err));
        snprintf(want, sizeof want, "%s: %s", path, cases[i].msg);
        cr_assert_str_eq(err, want);
    }
    rt_ckpt_meta m[2] = {{"k", "1"}, {"k", "2"}};
    cr_assert_not(rt_ckpt_save(path, NULL, 0, m, 2, err, sizeof err));
    snprintf(want, sizeof want, "%s: metadata key k appears twice", path);
    cr_assert_str_eq(err, want);
    struct stat st;
    cr_assert_neq(stat(path, &st), 0); /* nothing was written */
    cr_assert(no_tmp_left());
}

Test(checkpoint, save_into_a_missing_folder)
{
    char p[192];
    snprintf(p, sizeof p, "%s/no/such/ck.safetensors", dir);
    float a = 1;
    cr_assert_not(rt_ckpt_save(p, &(rt_ckpt_tensor){"a", AG_F32, 0, {0}, &a}, 1, NULL, 0, err, sizeof err));
    snprintf(want, sizeof want, "%s: cannot write: %s", p, strerror(ENOENT));
    cr_assert_str_eq(err, want);
    cr_assert(no_tmp_left());
}

/* PATH is a folder with a file inside: the rename fails, and both stay as they were. */
Test(checkpoint, save_over_a_folder_leaves_it_alone)
{
    cr_assert_eq(mkdir(path, 0777), 0);
    char old[192];
    snprintf(old, sizeof old, "%s/old", path);
    write_file(old, "old contents", 12);
    float a = 1;
    cr_assert_not(rt_ckpt_save(path, &(rt_ckpt_tensor){"a", AG_F32, 0, {0}, &a}, 1, NULL, 0, err, sizeof err));
    snprintf(want, sizeof want, "%s: cannot write: %s", path, strerror(EISDIR));
    cr_assert_str_eq(err, want);
    unsigned char b[64];
    cr_assert_eq(read_file(old, b, sizeof b), 12);
    cr_assert_eq(memcmp(b, "old contents", 12), 0);
    cr_assert(no_tmp_left());
}

/* A FIFO, a symlink (to a file or nowhere) or a device at PATH: the rename would replace it
 * with a regular file (as root, /dev/null too), so the save refuses and leaves it alone. */
Test(checkpoint, save_leaves_special_files_alone)
{
    float a = 1;
    const rt_ckpt_tensor t = {"a", AG_F32, 0, {0}, &a};
    struct stat st;
    cr_assert_eq(mkfifo(path, 0666), 0);
    snprintf(want, sizeof want, "%s: exists and is not a regular file", path);
    cr_assert_not(rt_ckpt_save(path, &t, 1, NULL, 0, err, sizeof err));
    cr_assert_str_eq(err, want);
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert(S_ISFIFO(st.st_mode));
    cr_assert_eq(unlink(path), 0);

    char target[192];
    snprintf(target, sizeof target, "%s/target", dir);
    write_file(target, "old contents", 12);
    cr_assert_eq(symlink(target, path), 0);
    err[0] = 0;
    cr_assert_not(rt_ckpt_save(path, &t, 1, NULL, 0, err, sizeof err));
    cr_assert_str_eq(err, want);
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert(S_ISLNK(st.st_mode));
    unsigned char b[64];
    cr_assert_eq(read_file(target, b, sizeof b), 12);
    cr_assert(no_tmp_left());

    /* /dev/null itself is only looked at: the check refuses it before any write */
    cr_assert_not(rt_check_output_path("/dev/null", false, err, sizeof err)); /* no probe: no write */
    cr_assert_str_eq(err, "/dev/null: exists and is not a regular file");
    cr_assert_eq(stat("/dev/null", &st), 0);
    cr_assert(S_ISCHR(st.st_mode));
}

/* The check before training: a missing folder is found without writing anything, and an
 * existing checkpoint is not touched. */
Test(checkpoint, check_output_path_probes_the_folder)
{
    char p[192];
    snprintf(p, sizeof p, "%s/no/such/ck.safetensors", dir);
    cr_assert_not(rt_check_output_path(p, true, err, sizeof err));
    snprintf(want, sizeof want, "%s: cannot write: %s", p, strerror(ENOENT));
    cr_assert_str_eq(err, want);
    cr_assert(rt_check_output_path(p, false, err, sizeof err), "%s", err); /* the save says it */

    cr_assert(rt_check_output_path(path, true, err, sizeof err), "%s", err);
    struct stat st;
    cr_assert_neq(stat(path, &st), 0); /* nothing was created */
    write_file(path, "old", 3);
    cr_assert(rt_check_output_path(path, true, err, sizeof err), "%s", err);
    unsigned char b[8];
    cr_assert_eq(read_file(path, b, sizeof b), 3);
    cr_assert(no_tmp_left());
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(mkdir(path, 0777), 0);
    cr_assert_not(rt_check_output_path(path, true, err, sizeof err));
    snprintf(want, sizeof want, "%s: cannot write: %s", path, strerror(EISDIR));
    cr_assert_str_eq(err, want);
}

/* The write itself fails part way (the file size limit): the old checkpoint is untouched. */
Test(checkpoint, failed_write_keeps_the_old_file)
{
    float a = 7;
    cr_assert(rt_ckpt_save(path, &(rt_ckpt_tensor){"a", AG_F32, 0, {0}, &a}, 1, NULL, 0, err, sizeof err), "%s", err);
    unsigned char before[256], after[256];
    size_t n = read_file(path, before, sizeof before);

    static float big[100000];
    struct rlimit old, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    signal(SIGXFSZ, SIG_IGN); /* so that write fails with EFBIG instead of killing us */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    bool ok = rt_ckpt_save(path, &(rt_ckpt_tensor){"big", AG_F32, 1, {100000}, big}, 1, NULL, 0, err, sizeof err);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_not(ok);
    snprintf(want, sizeof want, "%s: cannot write: %s", path, strerror(EFBIG));
    cr_assert_str_eq(err, want);

    cr_assert_eq(read_file(path, after, sizeof after), n);
    cr_assert_eq(memcmp(before, after, n), 0);
    cr_assert(no_tmp_left());
    rt_ckpt c;
    cr_assert(rt_ckpt_load(path, &c, err, sizeof err), "%s", err);
    cr_assert_eq(*(const float *)c.t[0].data, 7);
    rt_ckpt_free(&c);
}

/* ---- the reference reader ---- */

Test(checkpoint, python_safetensors_reads_our_files)
{
    if (system("python3 -c 'import safetensors.numpy, numpy' >/dev/null 2>&1") != 0)
        cr_skip_test("skipped: python safetensors not installed");
    float W[2][3] = {{0.5f, -1, 2}, {3.25f, 0, 1024}};
    double d[1] = {0.1};
    int32_t i[2] = {-1, 7};
    uint8_t u[2] = {0, 255};
    bool m[2] = {true, false};
    rt_ckpt_tensor t[] = {
        {"W", AG_F32, 2, {2, 3}, W}, {"d", AG_F64, 1, {1}, d},  {"i", AG_I32, 1, {2}, i},
        {"u", AG_U8, 1, {2}, u},     {"m", AG_BOOL, 1, {2}, m},
    };
    rt_ckpt_meta meta[] = {{"epoch", "3"}, {"note", "a \"q\"\n\xc3\xa9"}};
    cr_assert(rt_ckpt_save(path, t, 5, meta, 2, err, sizeof err), "%s", err);

    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sys, json\n"
             "from safetensors.numpy import load_file\n"
             "from safetensors import safe_open\n"
             "d = load_file(sys.argv[1])\n"
             "for k in sorted(d): print(k, d[k].dtype, list(d[k].shape), d[k].ravel().tolist())\n"
             "with safe_open(sys.argv[1], framework=\"np\") as f: print(json.dumps(f.metadata(), "
             "sort_keys=True))\n"
             "' %s 2>&1",
             path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[2048];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    cr_assert_eq(pclose(p), 0, "%s", out);
    cr_assert_str_eq(out, "W float32 [2, 3] [0.5, -1.0, 2.0, 3.25, 0.0, 1024.0]\n"
                          "d float64 [1] [0.1]\n"
                          "i int32 [2] [-1, 7]\n"
                          "m bool [2] [True, False]\n"
                          "u uint8 [2] [0, 255]\n"
                          "{\"epoch\": \"3\", \"note\": \"a \\\"q\\\"\\n\\u00e9\"}\n");
}

/* Numbers in metadata (and text IR, messages): the shortest text that reads back exactly. */
Test(checkpoint, numbers_are_written_shortest_and_exact)
{
    char buf[32];
    cr_expect_str_eq(rt_fmt_double(buf, sizeof buf, 0.1), "0.1");
    cr_expect_str_eq(rt_fmt_double(buf, sizeof buf, 0.5), "0.5");
    cr_expect_str_eq(rt_fmt_double(buf, sizeof buf, 0), "0");
    cr_expect_str_eq(rt_fmt_double(buf, sizeof buf, 1.0 / 3), "0.3333333333333333");
    cr_expect_str_eq(rt_fmt_double(buf, sizeof buf, 3e-5), "3e-05");
    cr_expect_str_eq(rt_fmt_double(buf, sizeof buf, NAN), "nan");
    cr_expect(strtod(rt_fmt_double(buf, sizeof buf, 0.1 + 0.2), NULL) == 0.1 + 0.2, "%s", buf);
}

/* Whole numbers in metadata: digits only, bounded, no overflow on any length. */
Test(checkpoint, whole_numbers_are_digits_only_and_bounded)
{
    int64_t v = -1;
    cr_expect(rt_parse_whole("42", 2, 100, &v) && v == 42);
    cr_expect(rt_parse_whole("100", 3, 100, &v) && v == 100);
    cr_expect_not(rt_parse_whole("101", 3, 100, &v));
    cr_expect_not(rt_parse_whole("5", 1, 2, &v));
    cr_expect_not(rt_parse_whole("", 0, 100, &v));
    cr_expect_not(rt_parse_whole("+1", 2, 100, &v));
    cr_expect_not(rt_parse_whole(" 1", 2, 100, &v));
    cr_expect_not(rt_parse_whole("0x1", 3, 100, &v));
    cr_expect(rt_parse_whole("9223372036854775807", 19, INT64_MAX, &v) && v == INT64_MAX);
    cr_expect_not(rt_parse_whole("9223372036854775808", 19, INT64_MAX, &v));
    cr_expect_not(rt_parse_whole("99999999999999999999999", 23, INT64_MAX, &v));
}
