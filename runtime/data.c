/* Training data: IDX and CSV loaders, inputs to predict on, synthetic data, shuffle and gather.
 * See data.h. */
#include "fail.h"
#include "data.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "rng.h"

static size_t dtype_size(ag_dtype t)
{
    switch (t) {
    case AG_U8:
    case AG_BOOL: return 1;
    case AG_F64: return 8;
    default: return 4;
    }
}

void rt_dataset_free(rt_dataset *d)
{
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}

int64_t rt_elem_size(ag_dtype t) { return t == AG_F64 ? 8 : t == AG_F32 || t == AG_I32 ? 4 : 1; }

double rt_elem_get(const void *p, ag_dtype t, int64_t i)
{
    switch (t) {
    case AG_F32: return ((const float *)p)[i];
    case AG_I32: return ((const int32_t *)p)[i];
    case AG_F64: return ((const double *)p)[i];
    default: return ((const uint8_t *)p)[i];
    }
}

void rt_elem_set(void *p, ag_dtype t, int64_t i, double v)
{
    switch (t) {
    case AG_F32: ((float *)p)[i] = (float)v; break;
    case AG_I32:
        ((int32_t *)p)[i] = (int32_t)(v != v              ? 0
                                      : v < -2147483648.0 ? INT32_MIN
                                      : v > 2147483647.0  ? INT32_MAX
                                                          : lrint(v));
        break;
    case AG_F64: ((double *)p)[i] = v; break;
    default: ((uint8_t *)p)[i] = (uint8_t)(v != v || v < 0 ? 0 : v > 255 ? 255 : lrint(v)); break;
    }
}

bool rt_dataset_x_fits(const rt_dataset *d, ag_dtype want, const char *what, char *err, size_t len)
{
    if (d->x_dtype == want || want == AG_F32 || want == AG_F64)
        return true;
    double lo = want == AG_I32 ? -2147483648.0 : 0, hi = want == AG_I32 ? 2147483647.0 : want == AG_BOOL ? 1 : 255;
    for (int64_t i = 0; i < d->n * d->features; i++) {
        double v = rt_elem_get(d->x, d->x_dtype, i);
        if (!(v >= lo && v <= hi && v == floor(v)))
            return rt_fail(err, len, "%s: sample %lld, feature %lld: %g is not a%s %s (a whole number %.0f..%.0f)",
                           what, (long long)(i / d->features + 1), (long long)(i % d->features + 1), v,
                           want == AG_I32 ? "n" : "",
                           want == AG_I32    ? "i32"
                           : want == AG_BOOL ? "bool"
                                             : "u8",
                           lo, hi);
    }
    return true;
}

bool rt_dataset_x_as(rt_dataset *d, ag_dtype want, char *err, size_t len)
{
    if (d->x_dtype == want)
        return true;
    int64_t n = d->n * d->features;
    void *x = malloc((size_t)(n ? n : 1) * (size_t)rt_elem_size(want));
    if (!x)
        return rt_fail(err, len, "out of memory");
    for (int64_t i = 0; i < n; i++)
        rt_elem_set(x, want, i, rt_elem_get(d->x, d->x_dtype, i));
    free(d->x);
    d->x = x, d->x_dtype = want;
    return true;
}

/* ---- reading a file, gzipped or not ---------------------------------------------------- */

#define CHUNK (1 << 20)
#define IN_SIZE (1 << 16)

/* How a stream stands: SRC_OK while it may give more; otherwise why it gave no more. */
enum { SRC_OK, SRC_END, SRC_READ, SRC_CUT, SRC_CORRUPT, SRC_TRAILING, SRC_NOMEM };

/* A file read as it is, or through inflate when it starts with the gzip magic (1f 8b). Not
 * zlib's gzread: that ignores whatever follows the gzip stream, and misses a cut trailer
 * (CRC and length) when a read ends exactly where the data does. Here a gzip file must end
 * where its stream does (Z_STREAM_END: CRC and length checked). Further gzip members may
 * follow and are read on, as gunzip does (`cat a.gz b.gz` is a valid gzip file); anything
 * else after the stream is an error. */
typedef struct idx_file {
    const char *path;
    FILE *fp;
    bool gz;
    z_stream z; /* its input in in[]; for a plain file too, for the bytes the sniff read */
    uint8_t *in;
    int64_t read;     /* bytes of the file read so far: the next input byte is at read - z.avail_in */
    int state;        /* SRC_* */
    const char *why;  /* SRC_READ: strerror; SRC_CORRUPT: zlib's message */
    int64_t trailing; /* SRC_TRAILING: bytes after the stream (counting stops past CHUNK), and where */
    int64_t trailing_at;
    int64_t off; /* bytes of the decompressed stream consumed, for messages */
    char *err;
    size_t len;
} idx_file;

/* Moves the unread input to the front of in[] and reads more after it: the bytes read. */
static size_t refill(idx_file *f)
{
    if (f->state != SRC_OK)
        return 0;
    memmove(f->in, f->z.next_in, f->z.avail_in);
    f->z.next_in = f->in;
    errno = 0;
    size_t r = fread(f->in + f->z.avail_in, 1, IN_SIZE - f->z.avail_in, f->fp);
    if (r == 0 && ferror(f->fp))
        f->state = SRC_READ, f->why = strerror(errno ? errno : EIO);
    f->z.avail_in += (uInt)r;
    f->read += (int64_t)r;
    return r;
}

static void idx_close(idx_file *f)
{
    if (f->gz)
        inflateEnd(&f->z);
    if (f->fp)
        fclose(f->fp);
    free(f->in);
    f->fp = NULL, f->in = NULL, f->gz = false;
}

static bool idx_open(idx_file *f)
{
    errno = 0;
    f->fp = fopen(f->path, "rb");
    if (!f->fp)
        return rt_fail(f->err, f->len, "%s: cannot open: %s", f->path, strerror(errno ? errno : ENOMEM));
    if (!(f->in = malloc(IN_SIZE))) {
        fclose(f->fp), f->fp = NULL;
        return rt_fail(f->err, f->len, "%s: out of memory", f->path);
    }
    f->z.next_in = f->in;
    refill(f);
    if (f->z.avail_in == 1)
        refill(f); /* a pipe may hand over one byte at a time */
    bool gz = f->z.avail_in >= 2 && f->in[0] == 0x1f && f->in[1] == 0x8b;
    if (gz && inflateInit2(&f->z, 16 + MAX_WBITS) != Z_OK) { /* 16 +: a gzip wrapper, not zlib's */
        idx_close(f);
        return rt_fail(f->err, f->len, "%s: out of memory for gzip", f->path);
    }
    f->gz = gz;
    return true;
}

/* After a gzip member's end: another member goes on; the end of the file ends the stream;
 * anything else is counted, up to a megabyte, as trailing bytes. */
static void next_member(idx_file *f)
{
    if (f->z.avail_in < 2)
        refill(f);
    if (f->state != SRC_OK)
        return;
    if (f->z.avail_in == 0) {
        f->state = SRC_END;
    } else if (f->z.avail_in >= 2 && f->z.next_in[0] == 0x1f && f->z.next_in[1] == 0x8b) {
        inflateReset(&f->z);
    } else { /* zeros are padding (tape blocks, some tools): gzip -t accepts them, so do we */
        f->trailing_at = f->read - f->z.avail_in;
        f->trailing = 0;
        bool zeros = true;
        do {
            for (uInt i = 0; i < f->z.avail_in; i++)
                zeros &= f->z.next_in[i] == 0;
            f->trailing += f->z.avail_in;
            f->z.avail_in = 0;
        } while (f->trailing <= CHUNK && refill(f) > 0);
        if (f->state == SRC_OK)
            f->state = zeros && f->trailing <= CHUNK ? SRC_END : SRC_TRAILING;
    }
}

/* Up to want bytes of the decompressed stream into buf: the count; a short count means
 * f->state says why (SRC_END: the file ended where it may). */
static int64_t src_read(idx_file *f, uint8_t *buf, int64_t want)
{
    int64_t got = 0;
    while (got < want && f->state == SRC_OK) {
        if (!f->gz) {
            if (f->z.avail_in == 0 && refill(f) == 0) {
                if (f->state == SRC_OK)
                    f->state = SRC_END;
                break;
            }
            int64_t k = want - got < (int64_t)f->z.avail_in ? want - got : (int64_t)f->z.avail_in;
            memcpy(buf + got, f->z.next_in, (size_t)k);
            f->z.next_in += k, f->z.avail_in -= (uInt)k, got += k;
            continue;
        }
        if (f->z.avail_in == 0 && refill(f) == 0) {
            if (f->state == SRC_OK) /* the file ends inside the gzip stream */
                f->state = SRC_CUT;
            break;
        }
        uInt room = want - got < (1 << 30) ? (uInt)(want - got) : (1u << 30);
        f->z.next_out = buf + got, f->z.avail_out = room;
        int r = inflate(&f->z, Z_NO_FLUSH);
        got += room - f->z.avail_out;
        if (r == Z_STREAM_END)
            next_member(f);
        else if (r == Z_MEM_ERROR)
            f->state = SRC_NOMEM;
        else if (r != Z_OK && r != Z_BUF_ERROR) /* Z_BUF_ERROR: it wants more input, which the loop gives */
            f->state = SRC_CORRUPT, f->why = f->z.msg ? f->z.msg : "corrupt data";
    }
    return got;
}

/* The message for a stream that stopped at offset `at` of its decompressed data, for a state
 * other than SRC_OK and SRC_END. A corrupt stream is reported where its data stopped: zlib
 * finds a bad CRC only after it has handed over the data, so that is the end of the data. */
static bool src_fail(idx_file *f, int64_t at, const char *after)
{
    switch (f->state) {
    case SRC_READ: return rt_fail(f->err, f->len, "%s: offset %lld: cannot read: %s", f->path, (long long)at, f->why);
    case SRC_CUT:
        return rt_fail(f->err, f->len, "%s: offset %lld: truncated gzip stream%s%s (the file ends inside it)", f->path,
                       (long long)at, after ? " after " : "", after ? after : "");
    case SRC_CORRUPT:
        return rt_fail(f->err, f->len, "%s: offset %lld: gzip: %s (the file is corrupt)", f->path, (long long)at,
                       f->why);
    case SRC_TRAILING:
        return rt_fail(f->err, f->len,
                       "%s: offset %lld: %lld%s bytes after the gzip stream (at byte %lld of the "
                       "file), expected end of file",
                       f->path, (long long)at, (long long)f->trailing, f->trailing > CHUNK ? " or more" : "",
                       (long long)f->trailing_at);
    default: return rt_fail(f->err, f->len, "%s: offset %lld: out of memory for gzip", f->path, (long long)at);
    }
}

/* A read came back short: got of the want bytes of `what` that start at offset at. Data that
 * ends early is a truncation; a stream that failed says why. */
static bool short_read(idx_file *f, int64_t at, int64_t want, int64_t got, const char *what)
{
    char why[128] = "";
    if (f->state == SRC_CUT)
        snprintf(why, sizeof why, " (truncated gzip stream)");
    else if (f->state == SRC_TRAILING)
        snprintf(why, sizeof why, " (the gzip stream ends there; %lld%s bytes that are not gzip follow it)",
                 (long long)f->trailing, f->trailing > CHUNK ? " or more" : "");
    else if (f->state != SRC_END)
        return src_fail(f, at + got, NULL);
    return rt_fail(f->err, f->len, "%s: offset %lld: truncated: expected %lld bytes of %s, found %lld%s", f->path,
                   (long long)at, (long long)want, what, (long long)got, why);
}

/* Up to want bytes from the decompressed stream: the count read (see src_read). */
static int idx_read(idx_file *f, uint8_t *buf, int want) { return (int)src_read(f, buf, want); }

/* ---- IDX ------------------------------------------------------------------------------- */

#define IDX_IMAGES 0x00000803u /* u8 (0x08), 3 dims */
#define IDX_LABELS 0x00000801u /* u8, 1 dim */

/* Read the header: magic, then ndims big-endian u32 dims, of which the first got bytes (0..4,
 * 4 unless the stream ended or failed there) are in h already. The magic is checked as soon
 * as there are 4 bytes, so a wrong file is named as such even when it is short. */
static bool idx_header_from(idx_file *f, uint8_t h[16], int got, uint32_t magic, int ndims, const char *kind,
                            uint32_t *dims)
{
    int want = 4 + 4 * ndims;
    if (got == 4)
        got += idx_read(f, h + 4, want - 4);
    if (got >= 4) {
        uint32_t m = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        if (m != magic)
            return rt_fail(f->err, f->len, "%s: offset 0: bad magic 0x%08x, expected 0x%08x (%s)", f->path, m, magic,
                           kind);
    }
    if (got < want) {
        char what[64];
        snprintf(what, sizeof what, "header (magic + %d dim%s)", ndims, ndims > 1 ? "s" : "");
        return short_read(f, 0, want, got, what);
    }
    for (int i = 0; i < ndims; i++) {
        const uint8_t *p = h + 4 + 4 * i;
        dims[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    }
    f->off = want;
    return true;
}

static bool idx_header(idx_file *f, uint32_t magic, int ndims, const char *kind, uint32_t *dims)
{
    uint8_t h[16];
    return idx_header_from(f, h, idx_read(f, h, 4), magic, ndims, kind, dims);
}

/* Read want bytes into a buffer that grows as data arrives, so a header that lies about the
 * size costs no more memory than the file really holds. */
static bool idx_data(idx_file *f, int64_t want, const char *what, uint8_t **out)
{
    uint8_t *buf = NULL;
    int64_t got = 0, cap = 0;
    while (got < want) {
        if (got == cap) {
            int64_t ncap = cap ? 2 * cap : CHUNK;
            ncap = ncap < want ? ncap : want;
            uint8_t *nb = realloc(buf, (size_t)ncap);
            if (!nb) {
                free(buf);
                return rt_fail(f->err, f->len, "%s: offset %lld: out of memory for %lld bytes of %s", f->path,
                               (long long)f->off, (long long)want, what);
            }
            buf = nb, cap = ncap;
        }
        int64_t chunk = cap - got < CHUNK ? cap - got : CHUNK, r = src_read(f, buf + got, chunk);
        got += r;
        if (r < chunk)
            break;
    }
    if (got < want) {
        free(buf);
        return short_read(f, f->off, want, got, what);
    }
    f->off += want;
    *out = buf;
    return true;
}

/* The file must end after its data, and a gzip stream with it. Counting stops at a megabyte:
 * enough to say how much. */
static bool idx_end(idx_file *f, const char *after)
{
    uint8_t buf[4096];
    int64_t extra = 0, r;
    while (extra < CHUNK && (r = src_read(f, buf, sizeof buf)) > 0)
        extra += r;
    if (extra)
        return rt_fail(f->err, f->len, "%s: offset %lld: %lld%s trailing bytes after %s, expected end of file", f->path,
                       (long long)f->off, (long long)extra, extra >= CHUNK ? " or more" : "", after);
    return f->state == SRC_END || src_fail(f, f->off, after);
}

/* An images file's header, the first got bytes of it in h already (see idx_header_from): the
 * magic, n x rows x cols with none 0, and within RT_DATA_MAX_BYTES. */
static bool images_header(idx_file *f, uint8_t h[16], int got, uint32_t d[3])
{
    static const char *names[3] = {"images", "rows", "cols"};
    if (!idx_header_from(f, h, got, IDX_IMAGES, 3, "IDX images, u8, 3 dims", d))
        return false;
    for (int i = 0; i < 3; i++)
        if (d[i] == 0)
            return rt_fail(f->err, f->len, "%s: offset %d: 0 %s, expected at least 1", f->path, 4 + 4 * i, names[i]);
    uint64_t pixels = (uint64_t)d[1] * d[2]; /* < 2^64: both factors are below 2^32 */
    if (pixels > (uint64_t)RT_DATA_MAX_BYTES || d[0] > (uint64_t)RT_DATA_MAX_BYTES / pixels)
        return rt_fail(f->err, f->len, "%s: offset 4: %u x %u x %u images are over the %lld-byte limit", f->path, d[0],
                       d[1], d[2], (long long)RT_DATA_MAX_BYTES);
    return true;
}

/* The pixels after images_header, and then the end of the file. */
static bool images_data(idx_file *f, const uint32_t d[3], uint8_t **x)
{
    char what[96];
    snprintf(what, sizeof what, "image data (%u x %u x %u)", d[0], d[1], d[2]);
    if (!idx_data(f, (int64_t)d[0] * d[1] * d[2], what, x))
        return false;
    snprintf(what, sizeof what, "the %u images", d[0]);
    if (!idx_end(f, what)) {
        free(*x);
        *x = NULL;
        return false;
    }
    return true;
}

/* The images' rows * cols against the features the model takes (0: any), from the header,
 * before a pixel is read. */
static bool images_fit(idx_file *f, const uint32_t d[3], int64_t features)
{
    if (features && (int64_t)d[1] * d[2] != features)
        return rt_fail(f->err, f->len,
                       "%s: offset 8: %u x %u images are %lld values a sample, expected %lld (the "
                       "model's features)",
                       f->path, d[1], d[2], (long long)d[1] * d[2], (long long)features);
    return true;
}

bool rt_load_idx(const char *images, const char *labels, int64_t features, int classes, rt_dataset *out, char *err,
                 size_t len)
{
    memset(out, 0, sizeof *out);
    if (classes < 1) /* more than 256: every byte is a label */
        return rt_fail(err, len, "%s: %d classes, expected at least 1 (IDX labels are bytes)", labels, classes);
    if (features < 0 || features > (1 << 30))
        return rt_fail(err, len, "%s: %lld features, expected 1..2^30 (or 0: any)", images, (long long)features);

    idx_file fi = {.path = images, .err = err, .len = len}, fl = {.path = labels, .err = err, .len = len};
    uint32_t d[3], nl = 0;
    uint8_t *x = NULL, *lab = NULL, h[16];
    int32_t *y = NULL;
    char what[96];

    if (!idx_open(&fi) || !images_header(&fi, h, idx_read(&fi, h, 4), d) || !images_fit(&fi, d, features))
        goto bad;
    /* The labels' header before any image data: a mismatch costs no 47 MB read. */
    if (!idx_open(&fl) || !idx_header(&fl, IDX_LABELS, 1, "IDX labels, u8, 1 dim", &nl))
        goto bad;
    if (nl != d[0]) {
        rt_fail(err, len, "%s: offset 4: %u labels, expected %u (the image count of %s)", labels, nl, d[0], images);
        goto bad;
    }

    if (!images_data(&fi, d, &x))
        goto bad;
    snprintf(what, sizeof what, "label data (%u)", nl);
    if (!idx_data(&fl, nl, what, &lab))
        goto bad;
    snprintf(what, sizeof what, "the %u labels", nl);
    if (!idx_end(&fl, what))
        goto bad;
    for (uint32_t i = 0; i < nl; i++)
        if (lab[i] >= classes) {
            rt_fail(err, len, "%s: offset %lld (label %u): label %d out of range 0..%d", labels, 8 + (long long)i, i,
                    lab[i], classes - 1);
            goto bad;
        }
    if (!(y = malloc((size_t)nl * sizeof *y))) {
        rt_fail(err, len, "%s: out of memory for %u labels", labels, nl);
        goto bad;
    }
    for (uint32_t i = 0; i < nl; i++)
        y[i] = lab[i];

    free(lab);
    idx_close(&fi);
    idx_close(&fl);
    *out = (rt_dataset){.n = d[0],
                        .features = (int64_t)d[1] * d[2],
                        .x_dtype = AG_U8,
                        .x = x,
                        .targets = 1,
                        .y_dtype = AG_I32,
                        .y = y,
                        .classes = classes};
    return true;
bad:
    free(x);
    free(lab);
    free(y);
    idx_close(&fi);
    idx_close(&fl);
    return false;
}

/* dir/name.gz if it exists, else dir/name (left for the loader to report when missing too). */
static void pick(char *path, size_t size, const char *dir, const char *name)
{
    snprintf(path, size, "%s/%s.gz", dir, name);
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    else
        snprintf(path, size, "%s/%s", dir, name);
}

bool rt_load_mnist_dir(const char *dir, bool train, int classes, rt_dataset *out, char *err, size_t len)
{
    return rt_load_mnist_set(dir, train, 0, classes, out, err, len);
}

bool rt_load_mnist_set(const char *dir, bool train, int64_t features, int classes, rt_dataset *out, char *err,
                       size_t len)
{
    char images[4096], labels[4096];
    const char *set = train ? "train" : "t10k";
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", set);
    pick(images, sizeof images, dir, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", set);
    pick(labels, sizeof labels, dir, name);
    return rt_load_idx(images, labels, features, classes, out, err, len);
}

/* ---- CSV ------------------------------------------------------------------------------- */

char *rt_read_file(const char *path, size_t *size, char *err, size_t len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        rt_fail(err, len, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 2) {
            size_t ncap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                rt_fail(err, len, "%s: out of memory after %zu bytes", path, n);
                goto bad;
            }
            buf = nb, cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if ((int64_t)n > RT_DATA_MAX_BYTES) {
            rt_fail(err, len, "%s: over the %lld-byte limit", path, (long long)RT_DATA_MAX_BYTES);
            goto bad;
        }
        if (r == 0) {
            if (ferror(f)) {
                rt_fail(err, len, "%s: cannot read: %s", path, strerror(errno));
                goto bad;
            }
            break;
        }
    }
    fclose(f);
    buf[n] = 0;
    *size = n;
    return buf;
bad:
    free(buf);
    fclose(f);
    return NULL;
}

enum { NUM_OK, NUM_BAD, NUM_RANGE };

/* The number the field [s, e) holds, all of it: decimal (strtod would read 0x10 as 16), finite
 * and within f32. Read in place, with no length limit: a trimmed field is followed by a blank,
 * a comma, a line end or the text's closing NUL, none of which can go on a number, so strtod
 * stops at e at the latest. */
static int field_number(const char *s, const char *e, double *v)
{
    char *end;
    if (s == e || isspace((unsigned char)*s) || memchr(s, 'x', (size_t)(e - s)) || memchr(s, 'X', (size_t)(e - s)))
        return NUM_BAD; /* strtod skips leading spaces (\v, \f are not trimmed) and reads hex */
    *v = strtod(s, &end);
    if (end != e || isnan(*v))
        return NUM_BAD;
    return fabs(*v) <= FLT_MAX ? NUM_OK : NUM_RANGE;
}

static bool blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* The field that starts at p on the line [p, e), trimmed to [*a, *b); returns where the next
 * one starts (past the comma), or e + 1 after the last. */
static const char *field(const char *p, const char *e, const char **a, const char **b)
{
    const char *q = p;
    while (q < e && *q != ',')
        q++;
    *a = p, *b = q;
    while (*a < *b && blank(**a))
        (*a)++;
    while (*b > *a && blank((*b)[-1]))
        (*b)--;
    return q + 1;
}

/* The rows of text[0, size) (NUL-terminated; freed here either way): features numbers then
 * targets numbers each (targets 0: no y), the rest as rt_load_csv. shape names the columns
 * for messages. */
static bool csv_rows(const char *path, char *text, size_t size, int64_t features, int64_t targets, int classes,
                     int64_t lab, const char *shape, rt_dataset *out, char *err, size_t len)
{
    int64_t cols = features + targets; /* lab >= 0: the one target is field lab, the rest features */
    float *x = NULL, *yf = NULL;
    int32_t *yi = NULL;
    int64_t n = 0, cap = 0, line = 0;
    bool first = true, header = false;
    const char *s = text, *end = text + size, *a, *b;
    if (size >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) /* a UTF-8 BOM would make row 1 a "header" */
        s += 3;
    while (s < end) {
        const char *ls = s, *e = memchr(s, '\n', (size_t)(end - s));
        if (!e)
            e = end;
        s = e < end ? e + 1 : end;
        line++;
        const char *p = ls;
        while (p < e && blank(*p))
            p++;
        if (p == e) /* blank line */
            continue;

        int64_t k = 1;
        for (p = ls; p < e; p++)
            k += *p == ',';
        bool is_header = false;
        if (first) { /* a header has a field that is no number ("0,1,label", as pandas writes integer
                        column names), and none that starts like one: "1,2,3x" is a row with a typo */
            double v;
            bool named = false, typo = false;
            first = false;
            for (p = ls; p <= e;) {
                p = field(p, e, &a, &b);
                int kind = field_number(a, b, &v);
                typo |= kind == NUM_RANGE; /* a number, too large: a row */
                if (kind == NUM_BAD) {
                    const char *c = a + (a < b && (*a == '-' || *a == '+'));
                    c += c < b && *c == '.';
                    typo |= a == b || (c < b && isdigit((unsigned char)*c)); /* empty, or "3x" */
                    named = true;
                }
            }
            header = is_header = named && !typo;
        }
        if (k != cols) {
            /* one field where several were due: most likely another separator */
            bool semi = k == 1 && memchr(ls, ';', (size_t)(e - ls)), tab = k == 1 && memchr(ls, '\t', (size_t)(e - ls));
            const char *sep = semi  ? " (fields are separated by commas, not ';')"
                              : tab ? " (fields are separated by commas, not tabs)"
                                    : "";
            rt_fail(err, len, "%s:%lld: %s%lld field%s, expected %lld (%s)%s", path, (long long)line,
                    is_header ? "a header of " : "", (long long)k, k == 1 ? "" : "s", (long long)cols, shape, sep);
            goto bad;
        }
        if (is_header)
            continue;
        if (n == cap) { /* a row takes 2 bytes a field or more: the rest of the file bounds the rows */
            int64_t left = n + (int64_t)(end - ls) / (2 * cols) + 1, ncap = cap ? 2 * cap : 1024;
            ncap = ncap < left ? ncap : left;
            float *nx = realloc(x, (size_t)(ncap * features) * sizeof *x);
            if (nx)
                x = nx;
            void *ny = NULL;
            if (targets && classes && (ny = realloc(yi, (size_t)(ncap * targets) * sizeof *yi)))
                yi = ny;
            else if (targets && !classes && (ny = realloc(yf, (size_t)(ncap * targets) * sizeof *yf)))
                yf = ny;
            if (!nx || (targets && !ny)) {
                rt_fail(err, len, "%s:%lld: out of memory for %lld rows", path, (long long)line, (long long)ncap);
                goto bad;
            }
            cap = ncap;
        }
        p = ls;
        for (int64_t j = 0; j < cols; j++) {
            double v;
            p = field(p, e, &a, &b);
            int r = field_number(a, b, &v), w = (int)(b - a > 40 ? 40 : b - a);
            const char *dots = b - a > 40 ? "..." : "";
            bool target = lab >= 0 ? j == lab : j >= features;
            int64_t fj = lab >= 0 && j > lab ? j - 1 : j, tj = lab >= 0 ? 0 : j - features;
            if (target && classes) {
                if (r != NUM_OK || v != floor(v) || v < 0 || v >= classes) {
                    rt_fail(err, len, "%s:%lld:%lld: expected an integer class label in 0..%d, found '%.*s%s'", path,
                            (long long)line, (long long)j + 1, classes - 1, w, a, dots);
                    goto bad;
                }
                yi[n * targets + tj] = (int32_t)v;
            } else if (r != NUM_OK) {
                rt_fail(err, len, "%s:%lld:%lld: expected a number%s, found '%.*s%s'", path, (long long)line,
                        (long long)j + 1, r == NUM_RANGE ? " within f32 range" : "", w, a, dots);
                goto bad;
            } else if (!target) {
                x[n * features + fj] = (float)v;
            } else {
                yf[n * targets + tj] = (float)v;
            }
        }
        n++;
    }
    if (n == 0) {
        rt_fail(err, len, "%s: %s, expected rows of %lld numbers (%s)", path,
                header ? "only a header line" : "empty file", (long long)cols, shape);
        goto bad;
    }

    free(text);
    *out = (rt_dataset){.n = n,
                        .features = features,
                        .x_dtype = AG_F32,
                        .x = x,
                        .targets = targets,
                        .y_dtype = classes ? AG_I32 : AG_F32,
                        .y = !targets  ? NULL
                             : classes ? (void *)yi
                                       : (void *)yf,
                        .classes = classes};
    return true;
bad:
    free(text);
    free(x);
    free(yi);
    free(yf);
    return false;
}

/* ---- inputs to predict on ----------------------------------------------------------------- */

/* The rest of f's decompressed stream after the got bytes already read into head, NUL-terminated:
 * rt_read_file through src_read, so a gzipped CSV reads too. */
static char *slurp(idx_file *f, const uint8_t *head, int got, size_t *size)
{
    size_t n = (size_t)got, cap = 65536;
    char *buf = malloc(cap);
    if (!buf) {
        rt_fail(f->err, f->len, "%s: out of memory after %zu bytes", f->path, n);
        return NULL;
    }
    memcpy(buf, head, n);
    for (;;) {
        if (cap - n < 2) { /* never past the limit + 2: enough to see the file is over it */
            size_t ncap = 2 * cap < (size_t)RT_DATA_MAX_BYTES + 2 ? 2 * cap : (size_t)RT_DATA_MAX_BYTES + 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                rt_fail(f->err, f->len, "%s: out of memory after %zu bytes", f->path, n);
                goto bad;
            }
            buf = nb, cap = ncap;
        }
        size_t want = cap - n - 1 < CHUNK ? cap - n - 1 : CHUNK;
        size_t r = (size_t)src_read(f, (uint8_t *)buf + n, (int64_t)want);
        n += r;
        if ((int64_t)n > RT_DATA_MAX_BYTES) {
            rt_fail(f->err, f->len, "%s: over the %lld-byte limit", f->path, (long long)RT_DATA_MAX_BYTES);
            goto bad;
        }
        if (r < want)
            break;
    }
    if (f->state != SRC_END) {
        src_fail(f, (int64_t)n, NULL);
        goto bad;
    }
    buf[n] = 0;
    *size = n;
    return buf;
bad:
    free(buf);
    return NULL;
}

/* --label-column: a 1-based field number, or a name of the header line (the first line that
 * is not blank), as *lab (0-based); for a model with one target. */
static bool label_index(const char *path, const char *text, size_t size, const char *label, int64_t cols,
                        int64_t targets, int64_t *lab, char *err, size_t len)
{
    if (targets != 1)
        return rt_fail(err, len, "%s: --label-column %s: the model has %lld targets a row, not one label", path, label,
                       (long long)targets);
    int64_t k;
    if (strspn(label, "0123456789") == strlen(label) && *label) { /* a number */
        if (!rt_parse_whole(label, strlen(label), cols, &k) || k < 1)
            return rt_fail(err, len, "%s: --label-column %s: fields are numbered from 1 to %lld", path, label,
                           (long long)cols);
        *lab = k - 1;
        return true;
    }
    const char *s = text, *end = text + size, *e, *a, *b;
    while (s < end && (*s == '\n' || blank(*s)))
        s++;
    e = memchr(s, '\n', (size_t)(end - s));
    e = e ? e : end;
    k = 0;
    for (const char *p = s; p <= e; k++) {
        p = field(p, e, &a, &b);
        if ((size_t)(b - a) == strlen(label) && memcmp(a, label, (size_t)(b - a)) == 0) {
            *lab = k;
            return true;
        }
    }
    return rt_fail(err, len, "%s: --label-column %s: no such column in the header line '%.*s'", path, label,
                   (int)(e - s > 200 ? 200 : e - s), s);
}

bool rt_load_csv(const char *path, int64_t features, int64_t targets, int classes, const char *label, rt_dataset *out,
                 char *err, size_t len)
{
    memset(out, 0, sizeof *out);
    if (features < 1 || targets < 1 || features > (1 << 30) || targets > (1 << 30) || classes < 0)
        return rt_fail(err, len,
                       "%s: %lld features, %lld targets, %d classes: expected 1..2^30 features and "
                       "targets, classes >= 0",
                       path, (long long)features, (long long)targets, classes);
    char shape[96];
    snprintf(shape, sizeof shape, "%lld feature%s + %lld target%s", (long long)features, features > 1 ? "s" : "",
             (long long)targets, targets > 1 ? "s" : "");

    idx_file f = {.path = path, .err = err, .len = len}; /* gzipped or not, as the IDX files */
    if (!idx_open(&f))
        return false;
    size_t size;
    uint8_t none[1];
    char *text = slurp(&f, none, 0, &size);
    idx_close(&f);
    int64_t lab = -1;
    if (text && label && !label_index(path, text, size, label, features + targets, targets, &lab, err, len)) {
        free(text);
        return false;
    }
    return text && csv_rows(path, text, size, features, targets, classes, lab, shape, out, err, len);
}

bool rt_load_inputs(const char *path, int64_t features, rt_dataset *out, char *err, size_t len)
{
    memset(out, 0, sizeof *out);
    if (features < 1 || features > (1 << 30))
        return rt_fail(err, len, "%s: %lld features, expected 1..2^30", path, (long long)features);

    idx_file f = {.path = path, .err = err, .len = len};
    if (!idx_open(&f))
        return false;
    uint8_t h[16] = {0};
    int got = idx_read(&f, h, 4);
    bool ok = false;
    if (got > 0 && h[0] == 0) { /* an IDX magic starts with two 0 bytes; a CSV never starts with one */
        uint32_t d[3], m = (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        uint8_t *x = NULL;
        if (got == 4 && m == IDX_LABELS)
            rt_fail(err, len,
                    "%s: offset 0: magic 0x%08x is an IDX labels file, expected the inputs to predict "
                    "on: IDX images (magic 0x%08x) or a CSV",
                    path, IDX_LABELS, IDX_IMAGES);
        else if (images_header(&f, h, got, d) && images_fit(&f, d, features) && (ok = images_data(&f, d, &x)))
            *out = (rt_dataset){.n = d[0], .features = features, .x_dtype = AG_U8, .x = x};
    } else {
        size_t size;
        char *text = slurp(&f, h, got, &size);
        char shape[64];
        snprintf(shape, sizeof shape, "%lld feature%s", (long long)features, features > 1 ? "s" : "");
        if (text && size == 0) {
            free(text);
            rt_fail(err, len, "%s: empty file, expected IDX images (magic 0x%08x) or a CSV of %s a row", path,
                    IDX_IMAGES, shape);
        } else if (text) {
            ok = csv_rows(path, text, size, features, 0, 0, -1, shape, out, err, len);
        }
    }
    idx_close(&f);
    return ok;
}

/* ---- synthetic data ---------------------------------------------------------------------- */

bool rt_synthetic_linear(const double *w, int64_t nw, double b, int64_t n, double noise, uint32_t seed, uint32_t stream,
                         rt_dataset *out, char *err, size_t len)
{
    memset(out, 0, sizeof *out);
    if (n < 1 || nw < 1)
        return rt_fail(err, len, "synthetic data: %lld samples of %lld features, expected at least 1 of each",
                       (long long)n, (long long)nw);
    if (n > RT_DATA_MAX_BYTES / 8 / (nw + 1))
        return rt_fail(err, len, "synthetic data: %lld x %lld is over the %lld-byte limit", (long long)n, (long long)nw,
                       (long long)RT_DATA_MAX_BYTES);
    double *r = malloc((size_t)(n * (nw + 1)) * sizeof *r); /* X's draws, then the noise's */
    float *x = malloc((size_t)(n * nw) * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    if (!r || !x || !y) {
        free(r), free(x), free(y);
        return rt_fail(err, len, "synthetic data: out of memory for %lld x %lld", (long long)n, (long long)nw);
    }
    rt_fill_normal_f64(r, n * (nw + 1), 0, 1, seed, stream);
    for (int64_t i = 0; i < n; i++) {
        double acc = b;
        for (int64_t j = 0; j < nw; j++) {
            x[i * nw + j] = (float)r[i * nw + j];
            acc += (double)x[i * nw + j] * w[j]; /* from the stored X, so y fits the data seen */
        }
        y[i] = (float)(acc + noise * r[n * nw + i]);
    }
    free(r);
    *out = (rt_dataset){
        .n = n, .features = nw, .x_dtype = AG_F32, .x = x, .targets = 1, .y_dtype = AG_F32, .y = y, .classes = 0};
    return true;
}

/* ---- batching ---------------------------------------------------------------------------- */

typedef struct draws {
    uint32_t key[2];
    uint64_t epoch, block;
    uint32_t w[4];
    int used;
} draws;

static uint64_t next64(draws *d)
{
    if (d->used == 4) {
        uint32_t ctr[4] = {(uint32_t)d->block, (uint32_t)(d->block >> 32), (uint32_t)d->epoch,
                           (uint32_t)(d->epoch >> 32)};
        rt_philox4x32_10(ctr, d->key, d->w);
        d->block++, d->used = 0;
    }
    uint64_t v = (uint64_t)d->w[d->used] << 32 | d->w[d->used + 1];
    d->used += 2;
    return v;
}

/* Uniform in [0, bound): reject the 2^64 mod bound lowest words, then the rest split evenly. */
static uint64_t below(draws *d, uint64_t bound)
{
    uint64_t t = -bound % bound;
    for (;;) {
        uint64_t r = next64(d);
        if (r >= t)
            return r % bound;
    }
}

void rt_shuffle(int64_t *perm, int64_t n, uint32_t seed, uint64_t epoch)
{
    draws d = {{seed, RT_RNG_SHUFFLE_KEY}, epoch, 0, {0}, 4};
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)below(&d, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

void rt_gather(const rt_dataset *d, const int64_t *idx, int64_t count, void *x, void *y)
{
    size_t xs = dtype_size(d->x_dtype) * (size_t)d->features, ys = dtype_size(d->y_dtype) * (size_t)d->targets;
    for (int64_t k = 0; k < count; k++) {
        assert(idx[k] >= 0 && idx[k] < d->n);
        if (x)
            memcpy((char *)x + k * xs, (const char *)d->x + idx[k] * xs, xs);
        if (y)
            memcpy((char *)y + k * ys, (const char *)d->y + idx[k] * ys, ys);
    }
}
