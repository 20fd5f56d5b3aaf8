/* Images to predict on: PNG (through libpng, loaded with dlopen as the CUDA driver is, so a
 * binary needs libpng only when it reads a PNG) and PGM (P2 and P5, read here). Each is made
 * one grey u8 image of the model's height x width, the way PIL's convert("L") and then a
 * bilinear resize (PyTorch's interpolate, align_corners=False, no antialias) would make it.
 * No inversion: Fashion-MNIST is light on dark, and so must the image be.
 *
 * PNG: libpng16.so.16, or the library named by the environment variable AOTGRAD_LIBPNG, is
 * opened at the first PNG (and again when AOTGRAD_LIBPNG changes); without it a PNG is refused
 * with "PATH: a PNG image, but libpng cannot be loaded (why); install libpng16-16, or give a
 * PGM or CSV". The image is read through libpng's simplified API as 8-bit RGBA (so palette,
 * grey, 16-bit and interlaced PNGs all read; libpng applies the file's gamma to sRGB), and
 * libpng's own complaint goes into the message: "PATH: libpng cannot read it: read beyond end
 * of data".
 *
 * PGM (Netpbm): "P5" (binary) or "P2" (ASCII), whitespace, then width, height and maxval as
 * decimal numbers separated by whitespace, '#' comments (to the end of the line) allowed
 * between them, then one whitespace character and the pixels, row by row. maxval is 1..65535;
 * a P5 sample is one byte when maxval < 256, else two, big-endian. A sample v reads as
 * v * 255 / maxval. The file must hold exactly width * height samples, each at most maxval
 * (P2: whole numbers separated by whitespace and comments); anything else after them is an
 * error. Errors in the text (the header, P2's samples) say "PATH:LINE: ..."; in P5's pixels
 * "PATH: offset N: ..."; a bad sample's row and column are counted from 1.
 *
 * Grey by luminance Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, as PIL's convert("L")), an
 * alpha composited over black (Y * alpha / 255). The resize takes, for output column x, the
 * source column sx = (x + 0.5) * in_w / out_w - 0.5 clamped to [0, in_w - 1] (half-pixel
 * centres, as OpenCV's INTER_LINEAR and PyTorch's bilinear with align_corners=False), the
 * same for rows, and interpolates linearly between the two source pixels around it in each
 * direction. All of this is in double on the grey values; only the result is rounded (to
 * nearest, halves up) and clamped to 0..255, so an image of the model's size reads as exactly
 * round(Y) or round(v * 255 / maxval).
 *
 * No file makes these crash or allocate without bound: the file is read whole up to
 * RT_DATA_MAX_BYTES (data.h), and an image (the file's, or the size asked for) may have at
 * most RT_IMAGE_MAX_PIXELS pixels. The libpng cache is per process and not thread-safe: load
 * images from one thread.
 */
#ifndef AG_RUNTIME_IMAGE_H
#define AG_RUNTIME_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data.h"

#define RT_IMAGE_MAX_PIXELS ((int64_t)1 << 28) /* width * height; a larger image is refused */

typedef enum rt_image_kind { RT_IMAGE_NONE, RT_IMAGE_PNG, RT_IMAGE_PGM } rt_image_kind;

/* What the first n bytes of a file say it is, by content (PNG's 8-byte signature; "P2"/"P5" then whitespace for PGM); RT_IMAGE_NONE otherwise. */
rt_image_kind rt_image_sniff(const unsigned char *head, size_t n);

/* Reads the image file at path (kind from rt_image_sniff of its first bytes) into out, height*width
 * bytes row-major: grey by luminance, resized to height x width bilinearly, as u8 0..255 (see
 * above). height and width are at least 1, their product at most RT_IMAGE_MAX_PIXELS. True on
 * success; else returns false with one message in err naming the file (out is then
 * unspecified). */
bool rt_load_image(const char *path, int64_t height, int64_t width, unsigned char *out, char *err, size_t len);

/* What predict reads from a file: an image (PNG or PGM, by content) as one sample of a model
 * whose input is a square of grey pixels (features = side x side: 784 is 28 x 28), read as
 * rt_load_image reads it at side x side, u8 as the IDX images the model trained on; else IDX
 * or CSV, as rt_load_inputs (data.h) reads them. Other images (JPEG, GIF, BMP, TIFF, WebP,
 * colour Netpbm) and binary data are refused by their content, saying what they are. */
bool rt_load_predict_input(const char *path, int64_t features, rt_dataset *out, char *err, size_t len);

#endif
