/* PNG and PGM images to predict on: libpng through dlopen, PGM read here, then grey and a
 * bilinear resize. See image.h. */
#include "image.h"

#include <dlfcn.h>
#include <math.h>
#include <png.h> /* for the types and constants only: libpng itself is opened with dlopen */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "fail.h"

/* ---- libpng, opened at the first PNG ------------------------------------------------- */

#define PNG_FUNCTIONS(X)                            \
    X(begin_read, png_image_begin_read_from_memory) \
    X(finish_read, png_image_finish_read)           \
    X(free_image, png_image_free)

/* png.h's own declarations give the pointers' types, so they cannot drift from libpng's */
static struct {
#define PNG_FIELD(name, sym) __typeof__(sym) *name;
    PNG_FUNCTIONS(PNG_FIELD)
#undef PNG_FIELD
} png;

/* Opens libpng once, as rt_cu_load opens the CUDA driver; again only when AOTGRAD_LIBPNG
 * names another library than the last try (so a test can try a missing one, then the real
 * one). False with the reason in why. */
static bool png_load(char *why, size_t n)
{
    static int state; /* 0: not tried, 1: loaded, -1: failed */
    static char tried[1024], reason[600];
    static void *handle;
    const char *path = getenv("AOTGRAD_LIBPNG");
    path = path && *path ? path : "libpng16.so.16";
    if (state == 0 || strcmp(path, tried) != 0) {
        if (handle)
            dlclose(handle);
        memset(&png, 0, sizeof png);
        snprintf(tried, sizeof tried, "%s", path);
        handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        state = handle ? 1 : -1;
        if (!handle)
            snprintf(reason, sizeof reason, "%s", dlerror());
#define PNG_LOOKUP(name, sym)                                                          \
    if (state == 1 && !(*(void **)&png.name = dlsym(handle, #sym))) {                  \
        snprintf(reason, sizeof reason, "%s has no %s (not libpng 1.6?)", path, #sym); \
        state = -1;                                                                    \
    }
        PNG_FUNCTIONS(PNG_LOOKUP)
#undef PNG_LOOKUP
    }
    if (state != 1)
        snprintf(why, n, "%s", reason);
    return state == 1;
}

/* ---- the decoded image, and its grey values ------------------------------------------- */

typedef enum { PX_RGBA8, PX_U8, PX_BE16, PX_U16 } px_kind;

typedef struct src_image {
    int64_t w, h;
    px_kind kind;
    const void *px; /* w * h pixels: RGBA bytes, u8 or big-endian u16 samples (P5), u16 (P2) */
    double maxval;  /* PGM's */
} src_image;

/* Pixel (x, y) as grey 0..255, unrounded */
static double grey_at(const src_image *s, int64_t x, int64_t y)
{
    int64_t i = y * s->w + x;
    switch (s->kind) {
    case PX_RGBA8: {
        const uint8_t *p = (const uint8_t *)s->px + 4 * i;
        double l = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        return l * (p[3] / 255.0); /* over black; an opaque pixel exactly l */
    }
    case PX_U8: return ((const uint8_t *)s->px)[i] * 255.0 / s->maxval;
    case PX_BE16: {
        const uint8_t *p = (const uint8_t *)s->px + 2 * i;
        return (p[0] << 8 | p[1]) * 255.0 / s->maxval;
    }
    default: return ((const uint16_t *)s->px)[i] * 255.0 / s->maxval;
    }
}

/* Output index o of n_out along an axis of n_in: the two source indices around its centre
 * and the weight of the second */
static void source_of(int64_t o, int64_t n_in, int64_t n_out, int64_t *i0, int64_t *i1, double *w)
{
    double s = (o + 0.5) * (double)n_in / (double)n_out - 0.5;
    s = s<0 ? 0 : s>(double)(n_in - 1) ? (double)(n_in - 1) : s;
    *i0 = (int64_t)s;
    *i1 = *i0 + 1 < n_in ? *i0 + 1 : *i0;
    *w = s - (double)*i0;
}

static void resize(const src_image *s, int64_t h, int64_t w, unsigned char *out)
{
    for (int64_t y = 0; y < h; y++) {
        int64_t y0, y1, x0, x1;
        double wy, wx;
        source_of(y, s->h, h, &y0, &y1, &wy);
        for (int64_t x = 0; x < w; x++) {
            source_of(x, s->w, w, &x0, &x1, &wx);
            double top = (1 - wx) * grey_at(s, x0, y0) + wx * grey_at(s, x1, y0);
            double bottom = (1 - wx) * grey_at(s, x0, y1) + wx * grey_at(s, x1, y1);
            double v = floor((1 - wy) * top + wy * bottom + 0.5);
            out[y * w + x] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

/* ---- what a file is ------------------------------------------------------------------ */

static const unsigned char png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static bool is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

rt_image_kind rt_image_sniff(const unsigned char *head, size_t n)
{
    if (n >= 8 && memcmp(head, png_signature, 8) == 0)
        return RT_IMAGE_PNG;
    if (n >= 3 && head[0] == 'P' && (head[1] == '2' || head[1] == '5') && is_space(head[2]))
        return RT_IMAGE_PGM;
    return RT_IMAGE_NONE;
}

/* The n bytes at b for a message, printable ASCII as it is, the rest as C escapes (\n, \xNN);
 * buf holds 4n+1 */
static const char *escaped(const uint8_t *b, size_t n, char *buf)
{
    char *p = buf;
    for (size_t i = 0; i < n; i++)
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\'' && b[i] != '\\')
            *p++ = (char)b[i];
        else if (b[i] == '\n' || b[i] == '\r' || b[i] == '\t')
            *p++ = '\\', *p++ = b[i] == '\n' ? 'n' : b[i] == '\r' ? 'r' : 't';
        else
            p += sprintf(p, "\\x%02x", b[i]);
    *p = 0;
    return buf;
}

/* The message for a file that is neither a PNG nor a PGM */
static bool not_an_image(const char *path, const uint8_t *b, size_t n, char *err, size_t len)
{
    static const char *const netpbm[] = {"PBM", "PGM", "PPM", "PBM", "PGM", "PPM", "PAM"};
    if (n == 0)
        return rt_fail(err, len, "%s: empty file, expected a PNG or PGM image", path);
    char head[8 * 4 + 1];
    escaped(b, n < 8 ? n : 8, head);
    if (n >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7' && b[1] != '2' && b[1] != '5')
        return rt_fail(err, len, "%s: a Netpbm %s image (P%c), expected a PNG or a grey PGM (P2 or P5)", path,
                       netpbm[b[1] - '1'], b[1]);
    return rt_fail(err, len,
                   "%s: not a PNG or PGM image: it starts with '%s', expected PNG's signature '\\x89PNG\\r\\n\\x1a\\n' "
                   "or PGM's 'P5' or 'P2' then whitespace",
                   path, head);
}

/* ---- PNG ----------------------------------------------------------------------------- */

/* The file's n bytes at b as RGBA, in *pixels (the caller frees it) */
static bool read_png(const char *path, const uint8_t *b, size_t n, src_image *s, void **pixels, char *err, size_t len)
{
    char why[700];
    if (!png_load(why, sizeof why))
        return rt_fail(err, len,
                       "%s: a PNG image, but libpng cannot be loaded (%s); install libpng16-16, or give a PGM or CSV",
                       path, why);
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png.begin_read(&im, b, n)) {
        png.free_image(&im);
        return rt_fail(err, len, "%s: libpng cannot read it: %s", path, im.message);
    }
    s->w = im.width, s->h = im.height, s->kind = PX_RGBA8;
    if (s->w * s->h > RT_IMAGE_MAX_PIXELS) {
        png.free_image(&im);
        return rt_fail(err, len, "%s: width %lld x height %lld is over the limit of %lld pixels", path, (long long)s->w,
                       (long long)s->h, (long long)RT_IMAGE_MAX_PIXELS);
    }
    im.format = PNG_FORMAT_RGBA; /* 8-bit, alpha not premultiplied */
    if (!(*pixels = malloc((size_t)(s->w * s->h * 4)))) {
        png.free_image(&im);
        return rt_fail(err, len, "%s: out of memory for width %lld x height %lld", path, (long long)s->w,
                       (long long)s->h);
    }
    bool ok = png.finish_read(&im, NULL, *pixels, 0, NULL);
    png.free_image(&im);
    s->px = *pixels;
    return ok || rt_fail(err, len, "%s: libpng cannot read it: %s", path, im.message);
}

/* ---- PGM ----------------------------------------------------------------------------- */

/* A PGM's text as it is read: where, and on which line */
typedef struct pgm_text {
    const char *path;
    const uint8_t *b;
    size_t n, i;
    long long line;
    char *err;
    size_t len;
} pgm_text;

/* Past whitespace and '#' comments, counting lines */
static void skip_blank(pgm_text *t)
{
    while (t->i < t->n) {
        uint8_t c = t->b[t->i];
        if (c == '#')
            while (t->i < t->n && t->b[t->i] != '\n' && t->b[t->i] != '\r')
                t->i++;
        else if (is_space(c))
            t->line += c == '\n', t->i++;
        else
            break;
    }
}

/* The word that starts at t->i (up to whitespace or a comment), quoted, for a message; at
 * most 20 bytes of it shown */
static const char *word_at(const pgm_text *t, size_t end, char *buf)
{
    if (t->i >= t->n)
        return "the end of the file";
    size_t k = end - t->i < 20 ? end - t->i : 20;
    buf[0] = '\'';
    escaped(t->b + t->i, k, buf + 1);
    strcat(buf, end - t->i > 20 ? "...'" : "'");
    return buf;
}

/* The next word, a whole number lo..hi, into *v; else "PATH:LINE: expected WHAT (a whole
 * number lo..hi), found ..." */
static bool next_number(pgm_text *t, const char *what, int64_t lo, int64_t hi, int64_t *v)
{
    skip_blank(t);
    size_t end = t->i;
    while (end < t->n && !is_space(t->b[end]) && t->b[end] != '#')
        end++;
    if (rt_parse_whole((const char *)t->b + t->i, end - t->i, hi, v) && *v >= lo) {
        t->i = end;
        return true;
    }
    char word[20 * 4 + 8];
    return rt_fail(t->err, t->len, "%s:%lld: expected %s (a whole number %lld..%lld), found %s", t->path, t->line, what,
                   (long long)lo, (long long)hi, word_at(t, end, word));
}

/* The header after the magic: width, height, maxval and the one whitespace character (or
 * comment) that ends it, which leaves t->i at the first pixel */
static bool pgm_header(pgm_text *t, int64_t *w, int64_t *h, int64_t *maxval)
{
    t->i = 2;
    if (!next_number(t, "the width", 1, RT_IMAGE_MAX_PIXELS, w) ||
        !next_number(t, "the height", 1, RT_IMAGE_MAX_PIXELS, h))
        return false;
    if (*w * *h > RT_IMAGE_MAX_PIXELS)
        return rt_fail(t->err, t->len, "%s:%lld: width %lld x height %lld is over the limit of %lld pixels", t->path,
                       t->line, (long long)*w, (long long)*h, (long long)RT_IMAGE_MAX_PIXELS);
    if (!next_number(t, "the maxval", 1, 65535, maxval))
        return false;
    if (t->i < t->n && t->b[t->i] == '#') { /* a comment ends where its line does, its newline the delimiter */
        while (t->i < t->n && t->b[t->i] != '\n' && t->b[t->i] != '\r')
            t->i++;
    }
    if (t->i < t->n)
        t->line += t->b[t->i] == '\n', t->i++;
    return true;
}

/* P5's pixels: exactly w * h samples of 1 or 2 bytes after the header, each at most maxval */
static bool p5_pixels(pgm_text *t, int64_t w, int64_t h, int64_t maxval, src_image *s)
{
    size_t bytes = maxval < 256 ? 1 : 2, need = (size_t)(w * h) * bytes, have = t->n - t->i;
    if (have < need)
        return rt_fail(t->err, t->len,
                       "%s: offset %zu: truncated: expected %zu bytes of pixels (width %lld x height %lld, %zu byte%s "
                       "a sample), found %zu",
                       t->path, t->i, need, (long long)w, (long long)h, bytes, bytes == 1 ? "" : "s", have);
    if (have > need)
        return rt_fail(t->err, t->len,
                       "%s: offset %zu: %zu trailing bytes after the pixels, expected the end of the file", t->path,
                       t->i + need, have - need);
    const uint8_t *p = t->b + t->i;
    for (int64_t k = 0; maxval != 255 && maxval != 65535 && k < w * h; k++) {
        int64_t v = bytes == 1 ? p[k] : p[2 * k] << 8 | p[2 * k + 1];
        if (v > maxval)
            return rt_fail(t->err, t->len,
                           "%s: offset %zu (row %lld, column %lld): sample %lld is over the maxval %lld", t->path,
                           t->i + (size_t)k * bytes, (long long)(k / w + 1), (long long)(k % w + 1), (long long)v,
                           (long long)maxval);
    }
    s->kind = bytes == 1 ? PX_U8 : PX_BE16;
    s->px = p;
    return true;
}

/* P2's samples: w * h whole numbers 0..maxval, into dst when it is not NULL */
static bool p2_samples(pgm_text *t, int64_t w, int64_t h, int64_t maxval, uint16_t *dst)
{
    char word[20 * 4 + 8];
    for (int64_t k = 0; k < w * h; k++) {
        skip_blank(t);
        if (t->i >= t->n)
            return rt_fail(
                t->err, t->len,
                "%s:%lld: truncated: the file ends after %lld of the %lld samples (width %lld x height %lld)", t->path,
                t->line, (long long)k, (long long)(w * h), (long long)w, (long long)h);
        size_t end = t->i;
        bool digits = true;
        for (; end < t->n && !is_space(t->b[end]) && t->b[end] != '#'; end++)
            digits &= t->b[end] >= '0' && t->b[end] <= '9';
        int64_t v;
        if (!rt_parse_whole((const char *)t->b + t->i, end - t->i, maxval, &v))
            return rt_fail(t->err, t->len, "%s:%lld: sample %lld (row %lld, column %lld): %s is %s%lld", t->path,
                           t->line, (long long)(k + 1), (long long)(k / w + 1), (long long)(k % w + 1),
                           word_at(t, end, word), digits ? "over the maxval " : "not a whole number 0..",
                           (long long)maxval);
        if (dst)
            dst[k] = (uint16_t)v;
        t->i = end;
    }
    skip_blank(t);
    if (t->i < t->n) {
        size_t end = t->i;
        while (end < t->n && !is_space(t->b[end]) && t->b[end] != '#')
            end++;
        return rt_fail(t->err, t->len, "%s:%lld: %s after the %lld samples, expected the end of the file", t->path,
                       t->line, word_at(t, end, word), (long long)(w * h));
    }
    return true;
}

static bool read_pgm(const char *path, const uint8_t *b, size_t n, src_image *s, void **pixels, char *err, size_t len)
{
    pgm_text t = {.path = path, .b = b, .n = n, .line = 1, .err = err, .len = len};
    int64_t w, h, maxval;
    if (!pgm_header(&t, &w, &h, &maxval))
        return false;
    s->w = w, s->h = h, s->maxval = (double)maxval;
    if (b[1] == '5')
        return p5_pixels(&t, w, h, maxval, s);
    /* every sample takes a digit and a separator: a file too short for them all is refused
     * by p2_samples without the memory for them */
    uint16_t *dst = NULL;
    if ((int64_t)(n - t.i) >= 2 * w * h - 1 && !(dst = malloc((size_t)(w * h) * sizeof *dst)))
        return rt_fail(err, len, "%s: out of memory for width %lld x height %lld", path, (long long)w, (long long)h);
    *pixels = dst;
    if (!p2_samples(&t, w, h, maxval, dst))
        return false;
    if (!dst) /* cannot be: every sample read needs the bytes counted above */
        return rt_fail(err, len, "%s: the samples do not fit the file's size", path);
    s->kind = PX_U16, s->px = dst;
    return true;
}

/* ---- the whole ----------------------------------------------------------------------- */

bool rt_load_image(const char *path, int64_t height, int64_t width, unsigned char *out, char *err, size_t len)
{
    if (height < 1 || width < 1 || height > RT_IMAGE_MAX_PIXELS / width)
        return rt_fail(err, len, "%s: cannot make a %lld x %lld image (height x width) of it: expected 1..%lld pixels",
                       path, (long long)height, (long long)width, (long long)RT_IMAGE_MAX_PIXELS);
    size_t n;
    char *file = rt_read_file(path, &n, err, len);
    if (!file)
        return false;
    const uint8_t *b = (const uint8_t *)file;
    src_image s = {0};
    void *pixels = NULL;
    bool ok;
    switch (rt_image_sniff(b, n)) {
    case RT_IMAGE_PNG: ok = read_png(path, b, n, &s, &pixels, err, len); break;
    case RT_IMAGE_PGM: ok = read_pgm(path, b, n, &s, &pixels, err, len); break;
    default: ok = not_an_image(path, b, n, err, len); break;
    }
    if (ok)
        resize(&s, height, width, out);
    free(pixels);
    free(file);
    return ok;
}

/* ---- what predict reads -------------------------------------------------------------- */

/* Formats a user may hand predict that it does not read, named by their first bytes */
static const char *other_format(const uint8_t *b, size_t n)
{
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        return "a JPEG image";
    if (n >= 4 && memcmp(b, "GIF8", 4) == 0)
        return "a GIF image";
    if (n >= 10 && b[0] == 'B' && b[1] == 'M' && !b[6] && !b[7] && !b[8] && !b[9]) /* reserved zeros */
        return "a BMP image";
    if (n >= 4 && (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0))
        return "a TIFF image";
    if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
        return "a WebP image";
    if (n >= 3 && b[0] == 'P' && strchr("134", b[1]) && is_space(b[2]))
        return "a Netpbm image other than a grey PGM";
    if (n >= 3 && b[0] == 'P' && b[1] == '6' && is_space(b[2]))
        return "a colour PPM image";
    return NULL;
}

bool rt_load_predict_input(const char *path, int64_t features, rt_dataset *out, char *err, size_t len)
{
    unsigned char head[512];
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
        n = fread(head, 1, sizeof head, f);
        fclose(f);
    }
    /* gzip (IDX or CSV inflated), IDX (a first byte 0), or what cannot be opened: the loader's */
    if (!f || (n >= 2 && head[0] == 0x1f && head[1] == 0x8b) || (n && head[0] == 0))
        return rt_load_inputs(path, features, out, err, len);
    const char *other = other_format(head, n);
    if (other)
        return rt_fail(err, len, "%s: %s; predict reads PNG and PGM images, IDX files and CSV (convert it to PNG)",
                       path, other);
    if (rt_image_sniff(head, n) == RT_IMAGE_NONE) {
        for (size_t i = 0; i < n; i++) /* text has no control characters but tabs and line ends */
            if (head[i] < 0x09 || (head[i] > 0x0d && head[i] < 0x20) || head[i] == 0x7f)
                return rt_fail(err, len,
                               "%s: offset %zu: byte 0x%02x: binary data, not a PNG or PGM image, an IDX file or a "
                               "CSV",
                               path, i, head[i]);
        return rt_load_inputs(path, features, out, err, len);
    }
    int64_t side = (int64_t)llround(sqrt((double)features));
    if (side * side != features)
        return rt_fail(err, len,
                       "%s: an image, but the model takes %lld values a sample, not a square of grey pixels (as "
                       "28 x 28 = 784)",
                       path, (long long)features);
    unsigned char *x = malloc((size_t)features);
    if (!x)
        return rt_fail(err, len, "%s: out of memory for a %lld x %lld image", path, (long long)side, (long long)side);
    if (!rt_load_image(path, side, side, x, err, len)) {
        free(x);
        return false;
    }
    memset(out, 0, sizeof *out);
    *out = (rt_dataset){.n = 1, .features = features, .x_dtype = AG_U8, .x = x};
    return true;
}
