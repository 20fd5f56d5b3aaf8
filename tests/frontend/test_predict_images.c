/* A binary's predict on images, as a user hands it a picture: PNG (libpng, loaded with
 * dlopen) and PGM read as the IDX images the model trained on, at its size or resized; other
 * files refused by their content; a missing libpng said in one line. */
#include <criterion/criterion.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data.h"
#include "run_cmd.h"
#include "subset.h"

static char dir[] = "/tmp/aotgrad-images-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(getenv("AOTGRAD_BIN"), "AOTGRAD_BIN is not set (run through ctest)");
    cr_assert_not_null(mkdtemp(dir));
    write_subset_dir(dir, 1000);
    int st;
    char *out = run_fmt(&st,
                        "cd %s && %s build models/mlp.c -o %s/mlp && cd %s && ./mlp train --data data --epochs 1 "
                        "--save w.st",
                        AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), dir, dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
}

static void teardown(void)
{
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_expect_eq(system(rm), 0);
}

TestSuite(predict_images, .init = setup, .fini = teardown);

/* dir/name */
static const char *at(const char *name)
{
    static char bufs[4][256];
    static int k;
    char *p = bufs[k++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static void write_png(const char *path, const unsigned char *px, int w, int h, png_uint_32 format)
{
    png_image img = {.version = PNG_IMAGE_VERSION, .width = (png_uint_32)w, .height = (png_uint_32)h, .format = format};
    cr_assert(png_image_write_to_file(&img, path, 0, px, 0, NULL), "%s: %s", path, img.message);
}

/* The top-3 line predict prints for the file */
static char *predict(const char *file, int *st)
{
    return run_fmt(st, "cd %s && ./mlp predict --weights w.st --top 3 %s 2>&1", dir, file);
}

Test(predict_images, png_and_pgm_predict_as_the_idx_image_does)
{
    rt_dataset d;
    char err[512];
    cr_assert(rt_load_mnist_dir(at("data"), false, 10, &d, err, sizeof err), "%s", err);
    /* the first 3 test images as an IDX file of their own: what predict says of each */
    FILE *f = fopen(at("three.idx"), "wb");
    cr_assert_not_null(f);
    const unsigned char header[16] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 28, 0, 0, 0, 28};
    fwrite(header, 1, 16, f);
    fwrite(d.x, 1, 3 * 784, f);
    fclose(f);
    int st;
    char *want = predict(at("three.idx"), &st);
    cr_assert_eq(st, 0, "%s", want);
    char *line = strtok(want, "\n");
    for (int k = 0; k < 3; k++, line = strtok(NULL, "\n")) {
        cr_assert_not_null(line);
        const unsigned char *img = (const unsigned char *)d.x + k * 784;
        /* grey PNG at 28 x 28; RGB with R = G = B (luminance weights sum to 1); a PGM at twice
         * the size, each pixel 2 x 2, which the bilinear resize takes back exactly */
        unsigned char rgb[784 * 3], big[56 * 56];
        for (int i = 0; i < 784; i++)
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = img[i];
        for (int y = 0; y < 56; y++)
            for (int x = 0; x < 56; x++)
                big[y * 56 + x] = img[(y / 2) * 28 + x / 2];
        write_png(at("grey.png"), img, 28, 28, PNG_FORMAT_GRAY);
        write_png(at("rgb.png"), rgb, 28, 28, PNG_FORMAT_RGB);
        f = fopen(at("big.pgm"), "wb");
        cr_assert_not_null(f);
        fprintf(f, "P5\n# twice the size\n56 56\n255\n");
        fwrite(big, 1, sizeof big, f);
        fclose(f);
        const char *files[] = {"grey.png", "rgb.png", "big.pgm"};
        for (int j = 0; j < 3; j++) {
            char *got = predict(at(files[j]), &st);
            cr_expect_eq(st, 0, "%s: %s", files[j], got);
            cr_expect(strncmp(got, line, strlen(line)) == 0 && got[strlen(line)] == '\n' && !got[strlen(line) + 1],
                      "image %d as %s: '%s', as IDX: '%s'", k, files[j], got, line);
            free(got);
        }
    }
    free(want);
    rt_dataset_free(&d);
}

Test(predict_images, other_files_are_refused_by_their_content)
{
    static const struct {
        const char *name;
        const char *bytes;
        size_t n;
        const char *says;
    } cases[] = {
        {"photo.png", "\xff\xd8\xff\xe0\x00\x10JFIF", 10,
         "photo.png: a JPEG image; predict reads PNG and PGM images, IDX files and CSV (convert it to PNG)"},
        {"anim.csv", "GIF89a\x01\x00", 8, "anim.csv: a GIF image;"},
        {"colour.pgm", "P6\n2 2\n255\n", 11, "colour.pgm: a colour PPM image;"},
        {"blob", "a,b\x01\x02", 5, "blob: offset 3: byte 0x01: binary data, not a PNG or PGM image"},
        {"cut.png", "\x89PNG\r\n\x1a\n\x00\x00", 10, "cut.png: libpng cannot read it"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        FILE *f = fopen(at(cases[k].name), "wb");
        cr_assert_not_null(f);
        fwrite(cases[k].bytes, 1, cases[k].n, f);
        fclose(f);
        int st;
        char *out = predict(at(cases[k].name), &st);
        cr_expect_eq(WEXITSTATUS(st), 1, "%s: %s", cases[k].name, out);
        cr_expect(strstr(out, cases[k].says) && !strchr(strchr(out, '\n') + 1, '\n'), "%s: %s", cases[k].name, out);
        free(out);
    }
    /* an image for a model whose input is no square of grey pixels */
    int st;
    char *out =
        run_fmt(&st, "cd %s && %s build models/linreg.c -o %s/linreg 2>&1", AG_SOURCE_DIR, getenv("AOTGRAD_BIN"), dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    unsigned char px[4] = {0, 50, 100, 150};
    write_png(at("small.png"), px, 2, 2, PNG_FORMAT_GRAY);
    out = run_fmt(&st,
                  "cd %s && ./linreg train --epochs 1 --save l.st >/dev/null && ./linreg predict --weights l.st "
                  "small.png 2>&1",
                  dir);
    cr_expect(WEXITSTATUS(st) == 1 && strstr(out, "small.png: an image, but the model takes 2 values a sample, not a "
                                                  "square of grey pixels"),
              "%s", out);
    free(out);
}

/* Without libpng a PNG is refused in one line that says so; the binary needs it only then */
Test(predict_images, a_missing_libpng_is_said_in_one_line)
{
    unsigned char px[784] = {0};
    write_png(at("zero.png"), px, 28, 28, PNG_FORMAT_GRAY);
    int st;
    char *out =
        run_fmt(&st, "cd %s && AOTGRAD_LIBPNG=/nonexistent/libpng.so ./mlp predict --weights w.st zero.png 2>&1", dir);
    cr_expect_eq(WEXITSTATUS(st), 1, "%s", out);
    cr_expect_str_eq(out,
                     "mlp: error: zero.png: a PNG image, but libpng cannot be loaded (/nonexistent/libpng.so: cannot "
                     "open shared object file: No such file or directory); install libpng16-16, or give a PGM or "
                     "CSV\n");
    free(out);
    out = run_fmt(&st, "readelf -d %s/mlp | grep -c png", dir);
    cr_expect_str_eq(out, "0\n", "the binary links libpng");
    free(out);
}
