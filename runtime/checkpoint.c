/* Checkpoints in safetensors: an atomic writer (through temp.c's temporary files) and a
 * strict reader with its own small JSON parser for the one shape of header the format has.
 * See checkpoint.h. */
#define _POSIX_C_SOURCE 200809L /* fsync, fileno, strndup, O_DIRECTORY */
#include "fail.h"
#include "checkpoint.h"
#include "temp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const dtype_names[AG_DTYPE_COUNT] = {
    [AG_F32] = "F32", [AG_I32] = "I32", [AG_U8] = "U8", [AG_BOOL] = "BOOL", [AG_F64] = "F64",
};
static const int dtype_sizes[AG_DTYPE_COUNT] = {
    [AG_F32] = 4, [AG_I32] = 4, [AG_U8] = 1, [AG_BOOL] = 1, [AG_F64] = 8,
};

static bool dtype_ok(ag_dtype d) { return (unsigned)d < AG_DTYPE_COUNT; }
static const char *dtype_name(ag_dtype d) { return dtype_ok(d) ? dtype_names[d] : "?"; }

/* The bytes of a tensor; dims are >= 0. -1 when that overflows int64. */
static int64_t tensor_bytes(ag_dtype d, int rank, const int64_t *dims)
{
    int64_t n = dtype_sizes[d];
    for (int i = 0; i < rank; i++)
        if (dims[i] == 0)
            return 0; /* before the overflow check: [huge, huge, 0] is empty, not too big */
    for (int i = 0; i < rank; i++) {
        if (dims[i] > INT64_MAX / n)
            return -1;
        n *= dims[i];
    }
    return n;
}

/* "[784,256]", as the messages show shapes. */
static const char *fmt_shape(char *buf, size_t size, int rank, const int64_t *dims)
{
    size_t k = 0;
    buf[k++] = '[';
    for (int i = 0; i < rank && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (k + 2 <= size)
        buf[k++] = ']', buf[k] = 0;
    else
        buf[size - 1] = 0;
    return buf;
}

/* Length of the valid UTF-8 sequence at s (overlongs, surrogates and > U+10FFFF refused),
 * or 0. */
static int utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], cp, min;
    int k;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        k = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        k = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if ((size_t)k > n)
        return 0;
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k;
}

static bool utf8_ok(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        int k = utf8_seq((const unsigned char *)s + i, n - i);
        if (!k)
            return false;
        i += (size_t)k;
    }
    return true;
}

static int utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80)
        return o[0] = (char)cp, 1;
    if (cp < 0x800)
        return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 0x3F)),
               o[2] = (char)(0x80 | (cp & 0x3F)), 3;
    return o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 0x3F)),
           o[2] = (char)(0x80 | (cp >> 6 & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F)), 4;
}

/* ---- duplicate names, by sorting rather than comparing every pair ---- */

typedef struct named {
    const char *s;
    int i;
} named;

static int cmp_named(const void *a, const void *b)
{
    const named *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* Index of the earliest name that repeats one before it (its first use in *first), -1 when
 * all differ, -2 when out of memory. get(arr, i) is the i-th name. */
static int find_duplicate(const void *arr, int n, const char *(*get)(const void *, int), int *first)
{
    if (n < 2)
        return -1;
    named *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return -2;
    for (int i = 0; i < n; i++)
        v[i] = (named){get(arr, i), i};
    qsort(v, (size_t)n, sizeof *v, cmp_named);
    int dup = -1;
    for (int k = 1, j = 0; k < n; k++) { /* a run of equal names begins with the first use */
        if (strcmp(v[k - 1].s, v[k].s))
            j = k;
        else if (dup < 0 || v[k].i < dup)
            dup = v[k].i, *first = v[j].i;
    }
    free(v);
    return dup;
}

static const char *tensor_name(const void *arr, int i) { return ((const rt_ckpt_tensor *)arr)[i].name; }
static const char *meta_key(const void *arr, int i) { return ((const rt_ckpt_meta *)arr)[i].key; }

/* ---- writing ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static void put_int(sbuf *b, int64_t v)
{
    char s[24];
    put(b, s, (size_t)snprintf(s, sizeof s, "%lld", (long long)v));
}

static void put_string(sbuf *b, const char *s)
{
    put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        const char *e = NULL;
        char u[8];
        switch (*c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default:
            if (*c < 0x20)
                snprintf(u, sizeof u, "\\u%04x", *c), e = u;
        }
        if (e)
            puts_(b, e);
        else
            put(b, (const char *)c, 1);
    }
    put(b, "\"", 1);
}

/* fsync the folder that holds path, so that the rename itself survives a crash. */
static int sync_folder(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = !slash ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (!dir)
        return ENOMEM;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    free(dir);
    if (fd < 0)
        return errno;
    int r = fsync(fd) ? errno : 0;
    close(fd);
    return r == EINVAL ? 0 : r; /* a file system that cannot sync folders */
}

bool rt_ckpt_save(const char *path, const rt_ckpt_tensor *t, int nt, const rt_ckpt_meta *meta, int nmeta, char *err,
                  size_t len)
{
    if (nt < 0 || nmeta < 0 || (nt && !t) || (nmeta && !meta))
        return rt_fail(err, len, "%s: cannot write: bad arguments (%d tensors, %d metadata entries)", path, nt, nmeta);

    /* Refuse what would make a file that we (or the format) would not read back. */
    int64_t total = 0;
    for (int i = 0; i < nt; i++) {
        const rt_ckpt_tensor *x = &t[i];
        if (!x->name)
            return rt_fail(err, len, "%s: tensor %d has no name", path, i);
        if (!utf8_ok(x->name))
            return rt_fail(err, len, "%s: tensor name %d is not valid UTF-8", path, i);
        if (!strcmp(x->name, "__metadata__"))
            return rt_fail(err, len, "%s: the tensor name __metadata__ is reserved by the format", path);
        if (!dtype_ok(x->dtype))
            return rt_fail(err, len, "%s: tensor %s has an unknown dtype %d", path, x->name, (int)x->dtype);
        if (x->rank < 0 || x->rank > 4)
            return rt_fail(err, len, "%s: tensor %s has rank %d, expected 0 to 4", path, x->name, x->rank);
        for (int j = 0; j < x->rank; j++)
            if (x->dims[j] < 0)
                return rt_fail(err, len, "%s: tensor %s has dimension %lld, expected >= 0", path, x->name,
                               (long long)x->dims[j]);
        int64_t bytes = tensor_bytes(x->dtype, x->rank, x->dims);
        if (bytes < 0 || bytes > INT64_MAX - total)
            return rt_fail(err, len, "%s: tensor %s is too large", path, x->name);
        if (bytes && !x->data)
            return rt_fail(err, len, "%s: tensor %s has no data", path, x->name);
        total += bytes;
    }
    for (int i = 0; i < nmeta; i++) {
        if (!meta[i].key || !meta[i].value)
            return rt_fail(err, len, "%s: metadata entry %d has no %s", path, i, meta[i].key ? "value" : "key");
        if (!utf8_ok(meta[i].key) || !utf8_ok(meta[i].value))
            return rt_fail(err, len, "%s: metadata entry %s is not valid UTF-8", path, meta[i].key);
    }
    int first = 0, dup = find_duplicate(t, nt, tensor_name, &first);
    if (dup >= 0)
        return rt_fail(err, len, "%s: tensor %s appears twice (tensors %d and %d)", path, t[dup].name, first, dup);
    if (dup == -1 && (dup = find_duplicate(meta, nmeta, meta_key, &first)) >= 0)
        return rt_fail(err, len, "%s: metadata key %s appears twice", path, meta[dup].key);
    if (dup == -2)
        return rt_fail(err, len, "%s: cannot write: %s", path, strerror(ENOMEM));

    /* The header, compact like the safetensors library's own. */
    sbuf h = {0};
    put(&h, "{", 1);
    if (nmeta) {
        puts_(&h, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i)
                put(&h, ",", 1);
            put_string(&h, meta[i].key);
            put(&h, ":", 1);
            put_string(&h, meta[i].value);
        }
        put(&h, "}", 1);
    }
    int64_t off = 0;
    for (int i = 0; i < nt; i++) {
        if (i || nmeta)
            put(&h, ",", 1);
        put_string(&h, t[i].name);
        puts_(&h, ":{\"dtype\":\"");
        puts_(&h, dtype_names[t[i].dtype]);
        puts_(&h, "\",\"shape\":[");
        for (int j = 0; j < t[i].rank; j++) {
            if (j)
                put(&h, ",", 1);
            put_int(&h, t[i].dims[j]);
        }
        puts_(&h, "],\"data_offsets\":[");
        put_int(&h, off);
        put(&h, ",", 1);
        off += tensor_bytes(t[i].dtype, t[i].rank, t[i].dims);
        put_int(&h, off);
        puts_(&h, "]}");
    }
    put(&h, "}", 1);
    while (h.n % 8) /* so that the buffer starts 8-aligned in the file */
        put(&h, " ", 1);
    char *tmp = rt_temp_name(path);
    if (h.oom || !tmp) {
        free(h.p), rt_temp_done(tmp);
        return rt_fail(err, len, "%s: cannot write: %s", path, strerror(ENOMEM));
    }
    /* again at each save: a FIFO or device may have appeared since training began (a race
     * with the rename remains, as with any check before a rename) */
    if (!rt_check_output_path(path, false, err, len)) {
        free(h.p), rt_temp_done(tmp);
        return false;
    }

    int e = 0;
    errno = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        e = errno;
        goto out;
    }
    unsigned char n8[8];
    for (int k = 0; k < 8; k++)
        n8[k] = (unsigned char)((uint64_t)h.n >> 8 * k);
    bool ok = fwrite(n8, 1, 8, f) == 8 && fwrite(h.p, 1, h.n, f) == h.n;
    for (int i = 0; ok && i < nt; i++) {
        size_t bytes = (size_t)tensor_bytes(t[i].dtype, t[i].rank, t[i].dims);
        ok = !bytes || fwrite(t[i].data, 1, bytes, f) == bytes;
    }
    if (!ok || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        e = errno ? errno : EIO;
        fclose(f);
        remove(tmp);
        goto out;
    }
    if (fclose(f) != 0) {
        e = errno ? errno : EIO;
        remove(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        remove(tmp);
        goto out;
    }
    e = sync_folder(path);
out:
    free(h.p);
    rt_temp_done(tmp);
    if (e)
        return rt_fail(err, len, "%s: cannot write: %s", path, strerror(e));
    return true;
}

/* ---- reading: a strict parser for {"__metadata__": {...}, "NAME": {...}, ...} ---- */

typedef struct tinfo {
    size_t at_name, at_offsets; /* header positions, for messages */
    int64_t begin, end;
} tinfo;

typedef struct P {
    const char *path;
    const unsigned char *s; /* the header */
    size_t n, i;
    char *arena; /* decoded strings: never longer than their quoted forms, so n bytes suffice */
    size_t used;
    char *err;
    size_t len;
    rt_ckpt_tensor *t;
    tinfo *ti;
    int nt, tcap;
    rt_ckpt_meta *meta;
    size_t *at_meta;
    int nmeta, mcap;
    bool have_meta;
} P;

/* "PATH: offset N: ..." with N the byte offset in the file. */
static bool verr(P *p, size_t at, const char *fmt, va_list ap)
{
    if (p->err && p->len) {
        int k = snprintf(p->err, p->len, "%s: offset %zu: ", p->path, at);
        if (k >= 0 && (size_t)k < p->len)
            vsnprintf(p->err + k, p->len - (size_t)k, fmt, ap);
    }
    return false;
}

static bool ferr(P *p, size_t at, const char *fmt, ...) /* at: in the file */
{
    va_list ap;
    va_start(ap, fmt);
    verr(p, at, fmt, ap);
    va_end(ap);
    return false;
}

static bool herr(P *p, size_t at, const char *fmt, ...) /* at: in the header */
{
    va_list ap;
    va_start(ap, fmt);
    verr(p, at + 8, fmt, ap);
    va_end(ap);
    return false;
}

static int peek(P *p) { return p->i < p->n ? p->s[p->i] : -1; }

static void ws(P *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static bool expect(P *p, int c, const char *what)
{
    if (peek(p) != c)
        return herr(p, p->i, "expected %s", what);
    p->i++;
    return true;
}

static bool hex4(P *p, size_t at, uint32_t *v)
{
    if (at + 4 > p->n)
        return false;
    *v = 0;
    for (int k = 0; k < 4; k++) {
        int c = p->s[at + (size_t)k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return false;
        *v = *v << 4 | (uint32_t)d;
    }
    return true;
}

static bool str(P *p, const char **out, const char *what)
{
    if (peek(p) != '"')
        return herr(p, p->i, "expected %s", what);
    size_t start = p->i++;
    char *o = p->arena + p->used;
    size_t k = 0;
    for (;;) {
        if (p->i >= p->n)
            return herr(p, start, "string not closed before the end of the header");
        unsigned c = p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20)
            return herr(p, p->i, "control character 0x%02x in a string, expected it escaped", c);
        if (c != '\\') {
            int m = utf8_seq(p->s + p->i, p->n - p->i);
            if (!m)
                return herr(p, p->i, "invalid UTF-8 in a string");
            memcpy(o + k, p->s + p->i, (size_t)m);
            k += (size_t)m, p->i += (size_t)m;
            continue;
        }
        size_t at = p->i;
        int e = p->i + 1 < p->n ? p->s[p->i + 1] : -1;
        static const char esc[] = "\"\\/bfnrt", unesc[] = "\"\\/\b\f\n\r\t";
        const char *simple = e > 0 ? strchr(esc, e) : NULL; /* NUL would match the terminator */
        if (simple) {
            o[k++] = unesc[simple - esc];
            p->i += 2;
            continue;
        }
        uint32_t cp, lo;
        if (e != 'u')
            return herr(p, at, "expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u after '\\'");
        if (!hex4(p, at + 2, &cp))
            return herr(p, at, "expected 4 hex digits after \\u");
        p->i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate: its low half must follow */
            if (!(p->i + 1 < p->n && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u' && hex4(p, p->i + 2, &lo) &&
                  lo >= 0xDC00 && lo <= 0xDFFF))
                return herr(p, at, "unpaired surrogate \\u%04X in a string", (unsigned)cp);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p->i += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF)
            return herr(p, at, "unpaired surrogate \\u%04X in a string", (unsigned)cp);
        if (cp == 0)
            return herr(p, at, "\\u0000 in a string: names and values cannot hold a NUL byte");
        k += (size_t)utf8_put(o + k, cp);
    }
    o[k] = 0;
    p->used += k + 1;
    *out = o;
    return true;
}

static bool num(P *p, int64_t *v)
{
    size_t at = p->i;
    int c = peek(p);
    if (c < '0' || c > '9')
        return herr(p, at, "expected a non-negative integer");
    if (c == '0' && p->i + 1 < p->n && p->s[p->i + 1] >= '0' && p->s[p->i + 1] <= '9')
        return herr(p, at, "expected a non-negative integer without leading zeros");
    int64_t x = 0;
    while ((c = peek(p)) >= '0' && c <= '9') {
        if (x > (INT64_MAX - (c - '0')) / 10)
            return herr(p, at, "number too large, expected at most %lld", (long long)INT64_MAX);
        x = x * 10 + (c - '0');
        p->i++;
    }
    if (c == '.' || c == 'e' || c == 'E')
        return herr(p, at, "expected a non-negative integer");
    *v = x;
    return true;
}

/* [n, n, ...]: the first max into v, all of them counted in *count. */
static bool nums(P *p, int64_t *v, int max, int *count, const char *where)
{
    if (!expect(p, '[', "'['"))
        return false;
    ws(p);
    *count = 0;
    if (peek(p) == ']') {
        p->i++;
        return true;
    }
    for (;;) {
        int64_t x = 0;
        ws(p);
        if (!num(p, &x))
            return false;
        if (*count < max)
            v[*count] = x;
        ++*count;
        ws(p);
        if (peek(p) == ']') {
            p->i++;
            return true;
        }
        if (peek(p) != ',')
            return herr(p, p->i, "expected ',' or ']' in %s", where);
        p->i++;
    }
}

/* Doubles two parallel arrays (first to `first` items); on failure both stay valid. */
static bool grow2(void **a, size_t asize, void **b, size_t bsize, int *cap, int first)
{
    int n = *cap ? 2 * *cap : first;
    void *na = realloc(*a, (size_t)n * asize);
    if (na)
        *a = na;
    void *nb = realloc(*b, (size_t)n * bsize);
    if (nb)
        *b = nb;
    if (!na || !nb)
        return false;
    *cap = n;
    return true;
}
static bool tensor(P *p, const char *name, size_t at_name)
{
    rt_ckpt_tensor t = {.name = name, .dtype = AG_DTYPE_COUNT, .rank = -1};
    tinfo ti = {.at_name = at_name, .begin = -1};
    if (!expect(p, '{', "'{' (the entry of a tensor)"))
        return false;
    ws(p);
    if (peek(p) == '}')
        p->i++;
    else
        for (;;) {
            size_t at = p->i;
            const char *key, *d;
            int64_t off[2];
            int cnt;
            if (!str(p, &key, "a string (\"dtype\", \"shape\" or \"data_offsets\")"))
                return false;
            ws(p);
            if (!expect(p, ':', "':'"))
                return false;
            ws(p);
            size_t av = p->i;
            if (!strcmp(key, "dtype")) {
                if (t.dtype != AG_DTYPE_COUNT)
                    return herr(p, at, "tensor %s has \"dtype\" twice", name);
                if (!str(p, &d, "a string (the dtype)"))
                    return false;
                for (int k = 0; k < AG_DTYPE_COUNT; k++)
                    if (!strcmp(d, dtype_names[k]))
                        t.dtype = (ag_dtype)k;
                if (t.dtype == AG_DTYPE_COUNT)
                    return herr(p, av, "tensor %s has dtype \"%s\", expected F32, I32, U8, BOOL or F64", name, d);
            } else if (!strcmp(key, "shape")) {
                if (t.rank >= 0)
                    return herr(p, at, "tensor %s has \"shape\" twice", name);
                if (!nums(p, t.dims, 4, &t.rank, "the shape"))
                    return false;
                if (t.rank > 4)
                    return herr(p, av, "tensor %s has rank %d, at most 4 is supported", name, t.rank);
            } else if (!strcmp(key, "data_offsets")) {
                if (ti.begin >= 0)
                    return herr(p, at, "tensor %s has \"data_offsets\" twice", name);
                if (!nums(p, off, 2, &cnt, "data_offsets"))
                    return false;
                if (cnt != 2)
                    return herr(p, av, "tensor %s has %d data_offsets, expected 2 ([begin, end])", name, cnt);
                ti.at_offsets = av, ti.begin = off[0], ti.end = off[1];
            } else
                return herr(p, at, "unknown key \"%s\" in tensor %s, expected \"dtype\", \"shape\" or \"data_offsets\"",
                            key, name);
            ws(p);
            if (peek(p) == '}') {
                p->i++;
                break;
            }
            if (peek(p) != ',')
                return herr(p, p->i, "expected ',' or '}' in tensor %s", name);
            p->i++;
            ws(p);
        }
    const char *missing = t.dtype == AG_DTYPE_COUNT ? "dtype"
                          : t.rank < 0              ? "shape"
                          : ti.begin < 0            ? "data_offsets"
                                                    : NULL;
    if (missing)
        return herr(p, at_name, "tensor %s has no \"%s\"", name, missing);
    if (p->nt == p->tcap && !grow2((void **)&p->t, sizeof *p->t, (void **)&p->ti, sizeof *p->ti, &p->tcap, 16))
        return herr(p, at_name, "out of memory");
    p->t[p->nt] = t;
    p->ti[p->nt++] = ti;
    return true;
}

static bool metadata(P *p, size_t at_key)
{
    if (p->have_meta)
        return herr(p, at_key, "\"__metadata__\" appears twice");
    p->have_meta = true;
    if (p->i + 4 <= p->n && !memcmp(p->s + p->i, "null", 4)) { /* what the library writes for none */
        p->i += 4;
        return true;
    }
    if (!expect(p, '{', "'{' or null (the value of __metadata__)"))
        return false;
    ws(p);
    if (peek(p) == '}') {
        p->i++;
        return true;
    }
    for (;;) {
        size_t at = p->i;
        const char *key, *value;
        if (!str(p, &key, "a string (a metadata key)"))
            return false;
        ws(p);
        if (!expect(p, ':', "':'"))
            return false;
        ws(p);
        if (!str(p, &value, "a string (metadata values are strings)"))
            return false;
        if (p->nmeta == p->mcap &&
            !grow2((void **)&p->meta, sizeof *p->meta, (void **)&p->at_meta, sizeof *p->at_meta, &p->mcap, 8))
            return herr(p, at, "out of memory");
        p->at_meta[p->nmeta] = at;
        p->meta[p->nmeta++] = (rt_ckpt_meta){key, value};
        ws(p);
        if (peek(p) == '}') {
            p->i++;
            return true;
        }
        if (peek(p) != ',')
            return herr(p, p->i, "expected ',' or '}' in __metadata__");
        p->i++;
        ws(p);
    }
}

static bool header(P *p)
{
    if (peek(p) != '{') /* the format: the header begins with '{', no leading space */
        return herr(p, 0, "expected '{' at the start of the header");
    p->i++;
    ws(p);
    if (peek(p) == '}')
        p->i++;
    else
        for (;;) {
            size_t at = p->i;
            const char *key;
            if (!str(p, &key, "a string (a tensor name or \"__metadata__\")"))
                return false;
            ws(p);
            if (!expect(p, ':', "':'"))
                return false;
            ws(p);
            if (!(strcmp(key, "__metadata__") ? tensor(p, key, at) : metadata(p, at)))
                return false;
            ws(p);
            if (peek(p) == '}') {
                p->i++;
                break;
            }
            if (peek(p) != ',')
                return herr(p, p->i, "expected ',' or '}' in the header");
            p->i++;
            ws(p);
        }
    while (p->i < p->n && p->s[p->i] == ' ') /* the format pads with spaces only */
        p->i++;
    if (p->i < p->n)
        return herr(p, p->i, "expected only spaces after the header's closing '}'");
    return true;
}

typedef struct span {
    int64_t begin, end;
    int i;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) /* an empty tensor before the one that begins where it lies */
        return x->end < y->end ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Offsets in range, sizes that match the shapes, the buffer covered exactly, unique names. */
static bool check_layout(P *p, int64_t bufsize)
{
    char s[128];
    for (int i = 0; i < p->nt; i++) {
        const rt_ckpt_tensor *t = &p->t[i];
        const tinfo *ti = &p->ti[i];
        if (ti->begin > ti->end)
            return herr(p, ti->at_offsets, "tensor %s has data_offsets [%lld, %lld], expected begin <= end", t->name,
                        (long long)ti->begin, (long long)ti->end);
        if (ti->end > bufsize)
            return herr(p, ti->at_offsets,
                        "tensor %s has data_offsets [%lld, %lld] past the end of the buffer (%lld bytes)", t->name,
                        (long long)ti->begin, (long long)ti->end, (long long)bufsize);
        int64_t bytes = tensor_bytes(t->dtype, t->rank, t->dims);
        if (bytes != ti->end - ti->begin)
            return herr(p, ti->at_offsets,
                        "tensor %s of %s %s needs %s%lld bytes, its data_offsets [%lld, %lld] hold %lld", t->name,
                        dtype_names[t->dtype], fmt_shape(s, sizeof s, t->rank, t->dims), bytes < 0 ? "more than " : "",
                        (long long)(bytes < 0 ? INT64_MAX : bytes), (long long)ti->begin, (long long)ti->end,
                        (long long)(ti->end - ti->begin));
    }
    int first = 0, dup = find_duplicate(p->t, p->nt, tensor_name, &first);
    if (dup >= 0)
        return herr(p, p->ti[dup].at_name, "tensor %s appears twice (first at offset %zu)", p->t[dup].name,
                    p->ti[first].at_name + 8);
    if (dup == -1 && (dup = find_duplicate(p->meta, p->nmeta, meta_key, &first)) >= 0)
        return herr(p, p->at_meta[dup], "metadata key %s appears twice (first at offset %zu)", p->meta[dup].key,
                    p->at_meta[first] + 8);
    if (dup == -2)
        return herr(p, 0, "out of memory");

    span *sp = malloc((size_t)(p->nt ? p->nt : 1) * sizeof *sp);
    if (!sp)
        return herr(p, 0, "out of memory");
    for (int i = 0; i < p->nt; i++)
        sp[i] = (span){p->ti[i].begin, p->ti[i].end, i};
    qsort(sp, (size_t)p->nt, sizeof *sp, cmp_span);
    int64_t pos = 0;
    int prev = -1;
    bool ok = true;
    for (int k = 0; ok && k < p->nt; k++) {
        const tinfo *ti = &p->ti[sp[k].i];
        const char *name = p->t[sp[k].i].name;
        if (ti->begin > pos && prev < 0)
            ok = herr(p, ti->at_offsets, "tensor %s begins at buffer byte %lld: bytes 0 to %lld belong to no tensor",
                      name, (long long)ti->begin, (long long)ti->begin - 1);
        else if (ti->begin > pos)
            ok = herr(p, ti->at_offsets, "tensors %s and %s leave a gap: buffer bytes %lld to %lld belong to no tensor",
                      p->t[prev].name, name, (long long)pos, (long long)ti->begin - 1);
        else if (ti->begin < pos)
            ok = herr(p, ti->at_offsets, "tensors %s and %s overlap: %s ends at buffer byte %lld, %s begins at %lld",
                      p->t[prev].name, name, p->t[prev].name, (long long)pos, name, (long long)ti->begin);
        pos = ti->end, prev = sp[k].i;
    }
    free(sp);
    if (ok && pos < bufsize)
        return ferr(p, 8 + p->n + (size_t)pos,
                    "%lld bytes after the last tensor belong to no tensor (the buffer has %lld bytes, the "
                    "tensors end at %lld)",
                    (long long)(bufsize - pos), (long long)bufsize, (long long)pos);
    return ok;
}

bool rt_ckpt_load(const char *path, rt_ckpt *out, char *err, size_t len)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return rt_fail(err, len, "%s: cannot read: %s", path, strerror(errno));
    struct stat st;
    unsigned char n8[8];
    int e = fstat(fileno(f), &st) ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (e || !S_ISREG(st.st_mode)) {
        fclose(f);
        return rt_fail(err, len, "%s: cannot read: %s", path, e ? strerror(e) : "not a regular file");
    }
    int64_t size = st.st_size;
    if (size < 8) {
        fclose(f);
        return rt_fail(err, len, "%s: offset 0: the file has %lld bytes, expected at least 8 (the header length)", path,
                       (long long)size);
    }
    if (fread(n8, 1, 8, f) != 8) {
        fclose(f);
        return rt_fail(err, len, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
    }
    uint64_t n = 0;
    for (int k = 0; k < 8; k++)
        n |= (uint64_t)n8[k] << 8 * k;
    if (n > RT_CKPT_MAX_HEADER) {
        fclose(f);
        return rt_fail(err, len,
                       "%s: offset 0: header length %llu is over the limit of %d bytes (not a safetensors file?)", path,
                       (unsigned long long)n, RT_CKPT_MAX_HEADER);
    }
    if (n > (uint64_t)size - 8) {
        fclose(f);
        return rt_fail(err, len,
                       "%s: offset %lld: the file ends inside the header (%llu bytes from offset 8), truncated?", path,
                       (long long)size, (unsigned long long)n);
    }
    int64_t bufsize = size - 8 - (int64_t)n;
    /* One block: the buffer, then the decoded strings (at most n bytes, see str). */
    P p = {.path = path, .n = n, .err = err, .len = len};
    unsigned char *hdr = malloc(n + 1);
    char *blob = (uint64_t)bufsize <= SIZE_MAX - n - 1 ? malloc((size_t)bufsize + n + 1) : NULL;
    bool ok = hdr && blob;
    if (!ok)
        rt_fail(err, len, "%s: cannot read: %s", path, strerror(ENOMEM));
    else { /* the header first: a bad one is reported without reading the buffer */
        bool io = fread(hdr, 1, n, f) != n;
        if (!io) {
            p.s = hdr, p.arena = blob + bufsize;
            ok = header(&p) && check_layout(&p, bufsize);
            io = ok && fread(blob, 1, (size_t)bufsize, f) != (size_t)bufsize;
        }
        if (io)
            ok = rt_fail(err, len, "%s: cannot read: %s", path,
                         ferror(f) ? strerror(errno ? errno : EIO) : "the file shrank while being read");
    }
    fclose(f);
    for (int i = 0; ok && i < p.nt; i++) {
        rt_ckpt_tensor *t = &p.t[i];
        t->data = blob + p.ti[i].begin;
        if (t->dtype == AG_BOOL) /* the runtime relies on bools being 0 or 1 */
            for (int64_t j = 0; ok && j < p.ti[i].end - p.ti[i].begin; j++)
                if (((const unsigned char *)t->data)[j] > 1)
                    ok = ferr(&p, 8 + n + (size_t)(p.ti[i].begin + j),
                              "tensor %s holds %u at element %lld, expected 0 or 1 (BOOL)", t->name,
                              ((const unsigned char *)t->data)[j], (long long)j);
    }
    free(hdr);
    free(p.ti);
    free(p.at_meta);
    if (!ok) {
        free(p.t), free(p.meta), free(blob);
        return false;
    }
    *out = (rt_ckpt){p.nt, p.t, p.nmeta, p.meta, blob};
    return true;
}

void rt_ckpt_free(rt_ckpt *c)
{
    free(c->t);
    free(c->meta);
    free(c->blob);
    memset(c, 0, sizeof *c);
}

const rt_ckpt_tensor *rt_ckpt_find(const rt_ckpt *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->t[i].name, name))
            return &c->t[i];
    return NULL;
}

const char *rt_ckpt_meta_get(const rt_ckpt *c, const char *key)
{
    for (int i = 0; i < c->nmeta; i++)
        if (!strcmp(c->meta[i].key, key))
            return c->meta[i].value;
    return NULL;
}

bool rt_ckpt_read_into(const rt_ckpt *c, const char *path, const char *name, ag_dtype dtype, int rank,
                       const int64_t *dims, void *dst, char *err, size_t len)
{
    const rt_ckpt_tensor *t = rt_ckpt_find(c, name);
    if (!t) {
        if (!err || !len)
            return false;
        size_t k =
            (size_t)snprintf(err, len, "%s: no tensor %s (the checkpoint has %s", path, name, c->n ? "" : "no tensors");
        for (int i = 0; i < c->n && k < len; i++) /* snprintf cuts a long list at len */
            k += (size_t)snprintf(err + k, len - k, "%s%s", i ? ", " : "", c->t[i].name);
        if (k < len)
            snprintf(err + k, len - k, ")");
        return false;
    }
    if (t->dtype != dtype)
        return rt_fail(err, len, "%s: tensor %s has dtype %s, expected %s", path, name, dtype_name(t->dtype),
                       dtype_name(dtype));
    bool same = t->rank == rank;
    for (int i = 0; same && i < rank; i++)
        same = t->dims[i] == dims[i];
    if (!same) {
        char a[128], b[128];
        return rt_fail(err, len, "%s: tensor %s has shape %s, expected %s", path, name,
                       fmt_shape(a, sizeof a, t->rank, t->dims), fmt_shape(b, sizeof b, rank < 0 ? 0 : rank, dims));
    }
    size_t bytes = (size_t)tensor_bytes(t->dtype, t->rank, t->dims);
    if (bytes)
        memcpy(dst, t->data, bytes);
    return true;
}
