/* The image reader (runtime/image.h): sniffing; PGM P5 (8- and 16-bit) and P2 read exactly;
 * the bilinear resize against values worked by hand and against its formula; PNGs written
 * here with libpng, grey by luminance; and every kind of malformed file, each with its exact
 * message, libpng missing included. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"

/* ---- a temporary directory per test, removed even when an assertion fails ---- */

static char dir[64];
static char err[1024], want[1024];

static void setup(void)
{
    strcpy(dir, "/tmp/ag_image_XXXXXX");
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

TestSuite(image, .init = setup, .fini = teardown);

/* dir/name, in a rotating set of buffers so that a test can hold a few at once */
static const char *at(const char *name)
{
    static char bufs[4][256];
    static int k;
    char *p = bufs[k++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static const char *put(const char *name, const void *bytes, size_t n)
{
    const char *path = at(name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
    return path;
}

/* a text, or bytes given as a string literal (its NUL not written) */
#define PUT(name, lit) put(name, lit, sizeof lit - 1)

/* A PNG of w x h pixels in libpng's simplified format (8-bit), written by libpng itself */
static const char *put_png(const char *name, png_uint_32 format, png_uint_32 w, png_uint_32 h, const uint8_t *px)
{
    const char *path = at(name);
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = w, im.height = h, im.format = format;
    cr_assert(png_image_write_to_file(&im, path, 0, px, 0, NULL), "%s", im.message);
    return path;
}

/* Loads path at h x w, asserting success, and compares it with expect */
static void check_load(const char *path, int64_t h, int64_t w, const uint8_t *expect)
{
    uint8_t out[256];
    cr_assert_leq(h * w, (int64_t)sizeof out);
    memset(out, 0xAB, sizeof out);
    cr_assert(rt_load_image(path, h, w, out, err, sizeof err), "%s", err);
    for (int64_t i = 0; i < h * w; i++)
        cr_assert_eq(out[i], expect[i], "pixel %lld (row %lld, column %lld): %d, expected %d", (long long)i,
                     (long long)(i / w), (long long)(i % w), out[i], expect[i]);
    cr_assert_eq(out[h * w], 0xAB, "wrote past height * width");
}

/* Loads path at h x w, asserting the failure and its message, "PATH: " then tail */
static void check_fails(const char *path, int64_t h, int64_t w, const char *tail)
{
    uint8_t out[256];
    cr_assert_not(rt_load_image(path, h, w, out, err, sizeof err), "%s loaded", path);
    snprintf(want, sizeof want, "%s%s", path, tail);
    cr_assert_str_eq(err, want);
}

/* ---- sniffing ---- */

Test(image, sniff)
{
    static const unsigned char sig[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0};
    cr_assert_eq(rt_image_sniff(sig, 8), RT_IMAGE_PNG);
    cr_assert_eq(rt_image_sniff(sig, 9), RT_IMAGE_PNG);
    cr_assert_eq(rt_image_sniff(sig, 7), RT_IMAGE_NONE); /* a cut signature is not one */
    unsigned char bad[8];
    memcpy(bad, sig, 8), bad[7] = '\r';
    cr_assert_eq(rt_image_sniff(bad, 8), RT_IMAGE_NONE);
    cr_assert_eq(rt_image_sniff((const unsigned char *)"P5\n28", 5), RT_IMAGE_PGM);
    cr_assert_eq(rt_image_sniff((const unsigned char *)"P2 28", 5), RT_IMAGE_PGM);
    cr_assert_eq(rt_image_sniff((const unsigned char *)"P5\t", 3), RT_IMAGE_PGM);
    cr_assert_eq(rt_image_sniff((const unsigned char *)"P5\r\n", 4), RT_IMAGE_PGM);
    cr_assert_eq(rt_image_sniff((const unsigned char *)"P5", 2), RT_IMAGE_NONE);
    cr_assert_eq(rt_image_sniff((const unsigned char *)"P5x", 3), RT_IMAGE_NONE);
    cr_assert_eq(rt_image_sniff((const unsigned char *)"P6\n", 3), RT_IMAGE_NONE);
    cr_assert_eq(rt_image_sniff((const unsigned char *)"p5\n", 3), RT_IMAGE_NONE);
    cr_assert_eq(rt_image_sniff((const unsigned char *)"1,2,3\n", 6), RT_IMAGE_NONE);
    cr_assert_eq(rt_image_sniff((const unsigned char *)"\0\0\x08\x03", 4), RT_IMAGE_NONE); /* IDX */
    cr_assert_eq(rt_image_sniff((const unsigned char *)"", 0), RT_IMAGE_NONE);
}

/* ---- PGM read at its own size ---- */

Test(image, p5_8bit_exact)
{
    static const uint8_t px[] = {0, 1, 127, 128, 254, 255};
    uint8_t file[64];
    int h = snprintf((char *)file, sizeof file, "P5\n3 2\n255\n");
    memcpy(file + h, px, sizeof px);
    check_load(put("a.pgm", file, h + sizeof px), 2, 3, px);
}

Test(image, p5_8bit_scaled_by_maxval)
{
    /* v * 255 / 100: 2.55, 5.1, 127.5 (a half: up), 252.45, 255 */
    static const uint8_t px[] = {0, 1, 2, 50, 99, 100}, expect[] = {0, 3, 5, 128, 252, 255};
    uint8_t file[64];
    int h = snprintf((char *)file, sizeof file, "P5 3 2 100\n");
    memcpy(file + h, px, sizeof px);
    check_load(put("a.pgm", file, h + sizeof px), 2, 3, expect);
}

Test(image, p5_16bit_big_endian)
{
    /* maxval 65535: v * 255 / 65535 = v / 257 */
    static const uint8_t file[] = "P5\n4 1\n65535\n"
                                  "\x00\x00"  /* 0 */
                                  "\x01\x01"  /* 257: 1 */
                                  "\x80\x80"  /* 32896: 128 */
                                  "\xff\xff"; /* 255 */
    static const uint8_t expect[] = {0, 1, 128, 255};
    check_load(put("a.pgm", file, sizeof file - 1), 1, 4, expect);
    /* maxval 1000 (two bytes a sample from 256 on): 500 -> 127.5 -> 128, 3 -> 0.765 -> 1, 998 -> 254.49 -> 254 */
    static const uint8_t f2[] = "P5\n3 1\n1000\n\x01\xf4\x00\x03\x03\xe6";
    static const uint8_t e2[] = {128, 1, 254};
    check_load(put("b.pgm", f2, sizeof f2 - 1), 1, 3, e2);
}

Test(image, p2_with_comments)
{
    const char *path = PUT("a.pgm", "P2\n# made by hand\n3 # width\n2 # height\n# the maxval next\n15\n"
                                    "0 1 2 # the first row\n"
                                    "  15\t14\r\n13\n\n");
    static const uint8_t expect[] = {0, 17, 34, 255, 238, 221}; /* v * 17 */
    check_load(path, 2, 3, expect);
}

Test(image, pgm_comment_after_maxval_and_crlf)
{
    /* the comment that ends the header is the delimiter, up to and with its newline; the
     * byte after it is a pixel even when it looks like whitespace */
    static const uint8_t file[] = "P5\r\n2 1\r\n255# a comment\n\n\x07";
    static const uint8_t expect[] = {'\n', 7};
    check_load(put("a.pgm", file, sizeof file - 1), 1, 2, expect);
}

/* ---- the resize ---- */

Test(image, resize_2x2_to_4x4_by_hand)
{
    /* [0 100; 200 40]: the source columns of 4 outputs are 0, 0.25, 0.75, 1 (-0.25 and 1.25
     * clamped); so the rows are r0 = 0 25 75 100 and r1 = 200 160 80 40, and the outputs r0,
     * 0.75 r0 + 0.25 r1, 0.25 r0 + 0.75 r1, r1 */
    static const uint8_t file[] = "P5\n2 2\n255\n\x00\x64\xc8\x28";
    static const uint8_t expect[] = {0,   25,  75, 100, /* */
                                     50,  59,  76, 85,  /* 50 58.75 76.25 85 */
                                     150, 126, 79, 55,  /* 150 126.25 78.75 55 */
                                     200, 160, 80, 40};
    check_load(put("a.pgm", file, sizeof file - 1), 4, 4, expect);
}

Test(image, resize_4x4_to_2x2_by_hand)
{
    /* 0..15 row-major: each output's source is (0.5 or 2.5, 0.5 or 2.5), the mean of a 2x2
     * block: 2.5, 4.5, 10.5, 12.5, each a half, rounded up */
    static const uint8_t file[] = "P2 4 4 255\n0 1 2 3\n4 5 6 7\n8 9 10 11\n12 13 14 15\n";
    static const uint8_t expect[] = {3, 5, 11, 13};
    check_load(put("a.pgm", file, sizeof file - 1), 2, 2, expect);
}

Test(image, resize_1x1_and_to_1x1)
{
    /* one pixel fills any size; one output pixel of 3x3 is the centre */
    check_load(PUT("one.pgm", "P2 1 1 255 77\n"), 2, 3, (const uint8_t[]){77, 77, 77, 77, 77, 77});
    check_load(PUT("nine.pgm", "P2 3 3 255 1 2 3 4 50 6 7 8 9\n"), 1, 1, (const uint8_t[]){50});
}

/* The formula of image.h, written out again here, for any size to any size */
static void reference(const double *in, int ih, int iw, int oh, int ow, uint8_t *out)
{
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            double sy = fmin(fmax((y + 0.5) * ih / oh - 0.5, 0), ih - 1);
            double sx = fmin(fmax((x + 0.5) * iw / ow - 0.5, 0), iw - 1);
            int y0 = (int)sy, x0 = (int)sx, y1 = y0 + 1 < ih ? y0 + 1 : y0, x1 = x0 + 1 < iw ? x0 + 1 : x0;
            double fy = sy - y0, fx = sx - x0;
            double v = (1 - fy) * ((1 - fx) * in[y0 * iw + x0] + fx * in[y0 * iw + x1]) +
                       fy * ((1 - fx) * in[y1 * iw + x0] + fx * in[y1 * iw + x1]);
            out[y * ow + x] = (uint8_t)floor(v + 0.5);
        }
}

Test(image, resize_matches_the_formula)
{
    /* a 7 (wide) x 5 (high) 16-bit P5 of maxval 1000, to shrunk, grown and mixed sizes */
    uint8_t file[128];
    double grey[35];
    int n = snprintf((char *)file, sizeof file, "P5\n7 5\n1000\n");
    for (int i = 0; i < 35; i++) {
        int v = (i * 379 + 11) % 1001;
        file[n++] = (uint8_t)(v >> 8), file[n++] = (uint8_t)v;
        grey[i] = v * 255.0 / 1000;
    }
    const char *path = put("a.pgm", file, (size_t)n);
    static const int sizes[][2] = {{5, 7}, {3, 4}, {12, 4}, {1, 13}, {9, 15}, {2, 2}};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        uint8_t expect[256];
        reference(grey, 5, 7, sizes[k][0], sizes[k][1], expect);
        check_load(path, sizes[k][0], sizes[k][1], expect);
    }
}

/* ---- PNG ---- */

Test(image, png_rgb_luminance)
{
    /* 0.299 R + 0.587 G + 0.114 B: 76.245, 149.685, 29.07, 255, 0, 18.15 */
    static const uint8_t px[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 10, 20, 30};
    static const uint8_t expect[] = {76, 150, 29, 255, 0, 18};
    check_load(put_png("a.png", PNG_FORMAT_RGB, 3, 2, px), 2, 3, expect);
}

Test(image, png_rgba_over_black)
{
    /* Y * alpha / 255: 255 * 128/255, 76.245 (opaque), 149.685 * 128/255 = 75.14, 0, 0, 100 * 0.2 */
    static const uint8_t px[] = {255, 255, 255, 128, 255, 0,   0,   255, 0,   255, 0,   128,
                                 0,   0,   0,   0,   255, 255, 255, 0,   100, 100, 100, 51};
    static const uint8_t expect[] = {128, 76, 75, 0, 0, 20};
    check_load(put_png("a.png", PNG_FORMAT_RGBA, 3, 2, px), 2, 3, expect);
}

Test(image, png_grey_and_resized)
{
    static const uint8_t px[] = {0, 100, 200, 40};
    check_load(put_png("a.png", PNG_FORMAT_GRAY, 2, 2, px), 2, 2, px);
    /* the middle row of a 2x2 made 3x1: the mean of all four */
    check_load(at("a.png"), 3, 1, (const uint8_t[]){50, 85, 120});
}

/* ---- malformed files, each with its message ---- */

Test(image, pgm_truncated)
{
    check_fails(PUT("a.pgm", "P5\n2 2\n255\n\x01\x02\x03"), 2, 2,
                ": offset 11: truncated: expected 4 bytes of pixels (width 2 x height 2, 1 byte a sample), found 3");
    check_fails(PUT("b.pgm", "P5\n2 1\n300\n\x01\x02\x03"), 1, 2,
                ": offset 11: truncated: expected 4 bytes of pixels (width 2 x height 1, 2 bytes a sample), found 3");
    check_fails(PUT("c.pgm", "P5\n2 1\n255"), 1, 2,
                ": offset 10: truncated: expected 2 bytes of pixels (width 2 x height 1, 1 byte a sample), found 0");
    check_fails(PUT("d.pgm", "P2\n2 2\n15\n1 2\n3\n"), 2, 2,
                ":6: truncated: the file ends after 3 of the 4 samples (width 2 x height 2)");
    check_fails(PUT("e.pgm", "P2\n2 2\n15 # no samples"), 2, 2,
                ":3: truncated: the file ends after 0 of the 4 samples (width 2 x height 2)");
}

Test(image, pgm_trailing)
{
    check_fails(PUT("a.pgm", "P5\n2 1\n255\n\x01\x02\n"), 1, 2,
                ": offset 13: 1 trailing bytes after the pixels, expected the end of the file");
    check_fails(PUT("b.pgm", "P2\n2 1\n15\n1 2\n3 # one too many\n"), 1, 2,
                ":5: '3' after the 2 samples, expected the end of the file");
}

Test(image, pgm_over_maxval)
{
    check_fails(PUT("a.pgm", "P5\n2 1\n200\n\x05\xc9"), 1, 2,
                ": offset 12 (row 1, column 2): sample 201 is over the maxval 200");
    check_fails(PUT("b.pgm", "P5\n1 2\n1000\n\x03\xe8\x03\xe9"), 1, 1,
                ": offset 14 (row 2, column 1): sample 1001 is over the maxval 1000");
    check_fails(PUT("c.pgm", "P2\n2 2\n15\n1 2\n3 16\n"), 2, 2,
                ":5: sample 4 (row 2, column 2): '16' is over the maxval 15");
    check_fails(PUT("d.pgm", "P2\n1 1\n65535\n123456789012345678901234567890\n"), 1, 1,
                ":4: sample 1 (row 1, column 1): '12345678901234567890...' is over the maxval 65535");
    check_fails(PUT("e.pgm", "P2\n2 1\n15\n1 -2\n"), 1, 2,
                ":4: sample 2 (row 1, column 2): '-2' is not a whole number 0..15");
}

Test(image, pgm_bad_header)
{
    check_fails(PUT("a.pgm", "P5\n28x 28\n255\n"), 28, 28,
                ":2: expected the width (a whole number 1..268435456), found '28x'");
    check_fails(PUT("b.pgm", "P5\n0 28\n255\n"), 28, 28,
                ":2: expected the width (a whole number 1..268435456), found '0'");
    check_fails(PUT("c.pgm", "P2\n# only a width\n28\n"), 28, 28,
                ":4: expected the height (a whole number 1..268435456), found the end of the file");
    check_fails(PUT("d.pgm", "P5 1 1 0\n\x00"), 1, 1, ":1: expected the maxval (a whole number 1..65535), found '0'");
    check_fails(PUT("e.pgm", "P5 1 1 65536\n\x00"), 1, 1,
                ":1: expected the maxval (a whole number 1..65535), found '65536'");
    check_fails(PUT("f.pgm", "P5 1 1 +255\n\x00"), 1, 1,
                ":1: expected the maxval (a whole number 1..65535), found '+255'");
    check_fails(PUT("g.pgm", "P5\n65536 65536\n255\n"), 28, 28,
                ":2: width 65536 x height 65536 is over the limit of 268435456 pixels");
    check_fails(PUT("h.pgm", "P5\n99999999999999999999 1\n"), 28, 28,
                ":2: expected the width (a whole number 1..268435456), found '99999999999999999999'");
}

Test(image, pgm_huge_but_short)
{
    /* at the limit of pixels, but far too short a file: refused as truncated, without a
     * buffer for 2^28 samples */
    check_fails(PUT("a.pgm", "P2 16384 16384 255 1 2 3\n"), 28, 28,
                ":2: truncated: the file ends after 3 of the 268435456 samples (width 16384 x height 16384)");
    check_fails(PUT("b.pgm", "P5 16384 16384 65535\n\x01\x02"), 28, 28,
                ": offset 21: truncated: expected 536870912 bytes of pixels (width 16384 x height 16384, 2 bytes a "
                "sample), found 2");
}

Test(image, not_an_image)
{
    check_fails(PUT("a.ppm", "P6\n1 1\n255\n\x01\x02\x03"), 1, 1,
                ": a Netpbm PPM image (P6), expected a PNG or a grey PGM (P2 or P5)");
    check_fails(PUT("b.pgm", "P5x1 1 255\n\x01"), 1, 1,
                ": not a PNG or PGM image: it starts with 'P5x1 1 2', expected PNG's signature "
                "'\\x89PNG\\r\\n\\x1a\\n' or PGM's 'P5' or 'P2' then whitespace");
    check_fails(PUT("c.idx", "\x00\x00\x08\x03\x00"), 1, 1,
                ": not a PNG or PGM image: it starts with '\\x00\\x00\\x08\\x03\\x00', expected PNG's signature "
                "'\\x89PNG\\r\\n\\x1a\\n' or PGM's 'P5' or 'P2' then whitespace");
    check_fails(PUT("d.png", ""), 1, 1, ": empty file, expected a PNG or PGM image");
    check_fails(PUT("e.csv", "0,0,1\r\n"), 1, 1,
                ": not a PNG or PGM image: it starts with '0,0,1\\r\\n', expected PNG's signature "
                "'\\x89PNG\\r\\n\\x1a\\n' or PGM's 'P5' or 'P2' then whitespace");
    check_fails(at("missing.png"), 1, 1, ": cannot open: No such file or directory");
}

Test(image, bad_output_size)
{
    const char *path = PUT("a.pgm", "P2 1 1 255 7\n");
    check_fails(path, 0, 28, ": cannot make a 0 x 28 image (height x width) of it: expected 1..268435456 pixels");
    check_fails(path, 28, -1, ": cannot make a 28 x -1 image (height x width) of it: expected 1..268435456 pixels");
    check_fails(path, 1 << 15, 1 << 14,
                ": cannot make a 32768 x 16384 image (height x width) of it: expected 1..268435456 pixels");
}

/* a 4x4 RGB PNG's bytes, written by libpng, into buf; its size */
static size_t png_bytes(uint8_t *buf, size_t cap)
{
    uint8_t px[4 * 4 * 3];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(i * 37);
    FILE *f = fopen(put_png("whole.png", PNG_FORMAT_RGB, 4, 4, px), "rb");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    cr_assert(n > 60 && n < cap);
    return n;
}

Test(image, png_truncated_and_corrupt)
{
    uint8_t buf[4096];
    size_t n = png_bytes(buf, sizeof buf);
    check_fails(put("cut.png", buf, n - 20), 4, 4, ": libpng cannot read it: read beyond end of data");
    check_fails(put("head.png", buf, 20), 4, 4, ": libpng cannot read it: read beyond end of data");
    buf[n - 20] ^= 1; /* in the zlib stream of IDAT, whose Adler-32 then fails */
    check_fails(put("adler.png", buf, n), 4, 4, ": libpng cannot read it: IDAT: incorrect data check");
    buf[12] = 'X'; /* the IHDR chunk's type */
    check_fails(put("type.png", buf, n), 4, 4, ": libpng cannot read it: XHDR: CRC error");
}

Test(image, libpng_missing)
{
    static const uint8_t px[] = {255, 255, 255};
    const char *png = put_png("a.png", PNG_FORMAT_RGB, 1, 1, px);
    const char *pgm = PUT("a.pgm", "P2 1 1 255 9\n");
    cr_assert_eq(setenv("AOTGRAD_LIBPNG", "/nonexistent", 1), 0);
    check_fails(png, 1, 1,
                ": a PNG image, but libpng cannot be loaded (/nonexistent: cannot open shared object file: No such "
                "file or directory); install libpng16-16, or give a PGM or CSV");
    check_load(pgm, 1, 1, (const uint8_t[]){9}); /* a PGM needs no libpng */
    /* a library, but not libpng */
    cr_assert_eq(setenv("AOTGRAD_LIBPNG", "libz.so.1", 1), 0);
    check_fails(png, 1, 1,
                ": a PNG image, but libpng cannot be loaded (libz.so.1 has no png_image_begin_read_from_memory (not "
                "libpng 1.6?)); install libpng16-16, or give a PGM or CSV");
    /* tried again once the variable changes: the default, then the variable naming it */
    cr_assert_eq(unsetenv("AOTGRAD_LIBPNG"), 0);
    check_load(png, 1, 1, (const uint8_t[]){255});
    cr_assert_eq(setenv("AOTGRAD_LIBPNG", "libpng16.so.16", 1), 0);
    check_load(png, 1, 1, (const uint8_t[]){255});
}
