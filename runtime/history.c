#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fail.h"
#include "history.h"
#include "train.h"

typedef struct history {
    const char *title;
    const rt_history_row *rows;
    int n;
} history;

typedef void emit_fn(FILE *f, const history *h);

/* rt_ckpt_save's pattern: PATH.tmp.<pid>, flushed and synced, renamed over PATH (the folder
 * is not synced: a history lost to a crash is rewritten by the next epoch). */
static bool write_atomic(const char *path, emit_fn *emit, const history *h, char *err, size_t len)
{
    if (h->n < 0 || (h->n && !h->rows))
        return rt_fail(err, len, "%s: cannot write: bad arguments (%d rows)", path, h->n);
    if (!rt_check_output_path(path, false, err, len)) /* the rename would replace a device or FIFO */
        return false;
    char *tmp = rt_temp_name(path);
    if (!tmp)
        return rt_fail(err, len, "%s: cannot write: %s", path, strerror(ENOMEM));

    int e = 0;
    errno = 0;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        e = errno;
        goto out;
    }
    emit(f, h);
    bool ok = !ferror(f) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (!ok)
        e = errno ? errno : EIO;
    if (fclose(f) != 0 && ok)
        e = errno ? errno : EIO;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e)
        remove(tmp);
out:
    rt_temp_done(tmp);
    if (e)
        return rt_fail(err, len, "%s: cannot write: %s", path, strerror(e));
    return true;
}

/* ---- CSV ---- */

static void put_number(FILE *f, const char *fmt, double v)
{
    fputc(',', f);
    if (!isnan(v))
        fprintf(f, fmt, v);
}

static void emit_csv(FILE *f, const history *h)
{
    fputs("epoch,train_loss,train_acc,test_loss,test_acc,seconds,samples_per_s\n", f);
    for (int i = 0; i < h->n; i++) {
        const rt_history_row *r = &h->rows[i];
        fprintf(f, "%" PRId64, r->epoch);
        put_number(f, "%.6g", r->train_loss);
        put_number(f, "%.6g", r->train_acc);
        put_number(f, "%.6g", r->test_loss);
        put_number(f, "%.6g", r->test_acc);
        put_number(f, "%.4f", r->seconds);
        put_number(f, "%.6g", r->samples_per_s);
        fputc('\n', f);
    }
}

bool rt_write_metrics_csv(const char *path, const rt_history_row *rows, int n, char *err, size_t len)
{
    return write_atomic(path, emit_csv, &(history){NULL, rows, n}, err, len);
}

/* ---- SVG ---- */

enum { SVG_W = 480, SVG_H = 320, LEFT = 55, RIGHT = 465, TOP = 35, BOTTOM = 245 };

typedef struct series {
    const char *label, *id, *colour, *dash; /* dash: a stroke-dasharray, NULL for solid */
    size_t field;                           /* offset of the value in rt_history_row */
} series;

/* d2l's Animator formats: '-' (blue), 'm--', 'g-.', 'r:'. */
static const series all_series[] = {
    {"train loss", "train_loss", "#1f77b4", NULL, offsetof(rt_history_row, train_loss)},
    {"train acc", "train_acc", "#bf00bf", "6,4", offsetof(rt_history_row, train_acc)},
    {"test acc", "test_acc", "#008000", "6,3,1.5,3", offsetof(rt_history_row, test_acc)},
    {"test loss", "test_loss", "#ff0000", "2,3", offsetof(rt_history_row, test_loss)},
};
enum { NSERIES = sizeof all_series / sizeof *all_series, TEST_ACC = 2, TEST_LOSS = 3 };

static double value(const rt_history_row *r, const series *s) { return *(const double *)((const char *)r + s->field); }

static bool any_finite(const history *h, const series *s)
{
    for (int i = 0; i < h->n; i++)
        if (isfinite(value(&h->rows[i], s)))
            return true;
    return false;
}

static void put_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++)
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t') /* other controls are not XML */
                fputc(*s, f);
        }
}

static void put_stroke(FILE *f, const series *s)
{
    fprintf(f, " fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"", s->colour);
    if (s->dash)
        fprintf(f, " stroke-dasharray=\"%s\"", s->dash);
}

/* 1, 2 or 5 times a power of ten, giving about five steps over span. */
static double nice_step(double span)
{
    double raw = span / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10) * mag;
}

static void emit_svg(FILE *f, const history *h)
{
    bool drawn[NSERIES];
    int ndrawn = 0;
    double lo = 0, hi = 1;
    int64_t top = 0; /* the largest epoch */
    for (int k = 0; k < NSERIES; k++) {
        drawn[k] = any_finite(h, &all_series[k]) && (k != TEST_LOSS || !drawn[TEST_ACC]);
        ndrawn += drawn[k];
        for (int i = 0; drawn[k] && i < h->n; i++) {
            double v = value(&h->rows[i], &all_series[k]);
            if (isfinite(v))
                lo = fmin(lo, v), hi = fmax(hi, v);
        }
    }
    for (int i = 0; i < h->n; i++)
        top = h->rows[i].epoch > top ? h->rows[i].epoch : top;
    int64_t last = top > 2 ? top : 2; /* one epoch still needs an axis of nonzero length */
    /* a log scale where every value is positive and they span two decades or more, as d2l
     * draws weight decay's losses (train near 0, test near 100 are flat lines in a linear one) */
    double least = INFINITY, most = 0;
    bool positive = true;
    for (int k = 0; k < NSERIES; k++)
        for (int i = 0; drawn[k] && i < h->n; i++) {
            double v = value(&h->rows[i], &all_series[k]);
            if (isfinite(v))
                positive &= v > 0, least = fmin(least, v), most = fmax(most, v);
        }
    bool log_scale = positive && most > 0 && least < INFINITY && most / least >= 100;
    double step = 1;
    if (log_scale) { /* lo and hi in log10 */
        lo = floor(log10(least) + 1e-9), hi = ceil(log10(most) - 1e-9);
        hi = hi > lo ? hi : lo + 1;
    } else {
        step = nice_step(hi - lo);
        lo = floor(lo / step + 1e-9) * step;
        hi = ceil(hi / step - 1e-9) * step;
    }
#define X(e) (LEFT + (double)((e) - 1) * (RIGHT - LEFT) / (double)(last - 1))
#define Y(v) (BOTTOM - ((log_scale ? log10(v) : (v)) - lo) * (BOTTOM - TOP) / (hi - lo))

    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"sans-serif\" font-size=\"11\">\n"
            "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">",
            SVG_W, SVG_H, SVG_W, SVG_H, SVG_W, SVG_H, SVG_W / 2);
    put_escaped(f, h->title);
    fputs("</text>\n", f);

    /* Grid and ticks (each power of ten on a log scale); epoch labels thinned to multiples of
     * 1, 2, 5, 10, ... past ten epochs. */
    for (int k = 0; lo + k * step <= hi + step * 1e-9; k++) {
        double v = log_scale ? pow(10, lo + k) : lo + k * step;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", LEFT, Y(v), RIGHT, Y(v));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", LEFT - 6, Y(v) + 4, v);
    }
    /* the y axis's label: what the curves are, and the scale when it is not linear */
    fprintf(f, "<text x=\"14\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">%s%s</text>\n",
            (TOP + BOTTOM) / 2, (TOP + BOTTOM) / 2,
            drawn[0] && (drawn[1] || drawn[TEST_ACC]) ? "loss, accuracy"
            : drawn[0] || drawn[TEST_LOSS]            ? "loss"
                                                      : "accuracy",
            log_scale ? " (log scale)" : "");
    int64_t every = 1;
    for (int64_t p = 1; top / every > 10; p *= 10)
        every = top / p <= 10 ? p : top / (2 * p) <= 10 ? 2 * p : 5 * p;
    for (int64_t e = every; e <= top; e += every) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", X(e), TOP, X(e), BOTTOM);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%" PRId64 "</text>\n", X(e), BOTTOM + 15, e);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n", LEFT, TOP,
            RIGHT - LEFT, BOTTOM - TOP);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">epoch</text>\n", (LEFT + RIGHT) / 2, BOTTOM + 32);

    /* The series, then the legend: a row of entries centred under the axis label. */
    for (int k = 0; k < NSERIES; k++) {
        if (!drawn[k])
            continue;
        const series *s = &all_series[k];
        fprintf(f, "<g id=\"%s\">\n<polyline points=\"", s->id);
        const char *sep = "";
        for (int i = 0; i < h->n; i++) {
            double v = value(&h->rows[i], s);
            if (isfinite(v))
                fprintf(f, "%s%.1f,%.1f", sep, X(h->rows[i].epoch), Y(v)), sep = " ";
        }
        fputc('"', f);
        put_stroke(f, s);
        fputs("/>\n", f);
        for (int i = 0; i < h->n; i++) {
            double v = value(&h->rows[i], s);
            if (isfinite(v))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", X(h->rows[i].epoch), Y(v),
                        s->colour);
        }
        fputs("</g>\n", f);
    }
    int x = (SVG_W - 110 * ndrawn) / 2, y = SVG_H - 14;
    for (int k = 0; k < NSERIES; k++) {
        if (!drawn[k])
            continue;
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"", x, y, x + 24, y);
        put_stroke(f, &all_series[k]);
        fprintf(f, "/>\n<circle cx=\"%d\" cy=\"%d\" r=\"2.5\" fill=\"%s\"/>\n", x + 12, y, all_series[k].colour);
        fprintf(f, "<text x=\"%d\" y=\"%d\">%s</text>\n", x + 30, y + 4, all_series[k].label);
        x += 110;
    }
    fputs("</svg>\n", f);
#undef X
#undef Y
}

bool rt_write_plot_svg(const char *path, const char *title, const rt_history_row *rows, int n, char *err, size_t len)
{
    return write_atomic(path, emit_svg, &(history){title, rows, n}, err, len);
}

/* ---- the history in a checkpoint's metadata ---- */

char *rt_history_text(const rt_history_row *rows, int n)
{
    enum { ROW = 200 }; /* a row is at most about 120 bytes: 20 for the epoch, 16 a number */
    if (n < 0 || n > RT_HISTORY_MAX)
        return NULL;
    size_t cap = ROW * (size_t)n + 1, used = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[0] = 0;
    for (int i = 0; i < n; i++) {
        const rt_history_row *r = &rows[i];
        used += (size_t)snprintf(s + used, cap - used, "%" PRId64 ",%.9g,%.9g,%.9g,%.9g,%.6g,%.6g;", r->epoch,
                                 r->train_loss, r->train_acc, r->test_loss, r->test_acc, r->seconds, r->samples_per_s);
    }
    return s;
}

#define F32_BOUND 3.4028236e38 /* FLT_MAX, a little over: %.9g writes it as 3.40282347e+38 */

/* What a field may hold: a loss of f32 values, a metric (an accuracy, or whatever an
 * unnamed metric sums: any f32, or nan where there is none), a duration, a rate. */
typedef enum { LOSS, ANY_LOSS, METRIC, SECONDS, RATE } field_kind;

static bool value_ok(field_kind k, double v)
{
    switch (k) {
    case LOSS: return fabs(v) <= F32_BOUND;
    case ANY_LOSS: return isnan(v) || isinf(v) || fabs(v) <= F32_BOUND;
    case METRIC: return isnan(v) || fabs(v) <= F32_BOUND;
    case SECONDS: return v >= 0 && v <= 1e9;
    default: return isnan(v) || (v >= 0 && isfinite(v));
    }
}

static const char *const expected[] = {
    [LOSS] = "a finite number within f32's range",   [ANY_LOSS] = "nan, inf or a number within f32's range",
    [METRIC] = "nan or a number within f32's range", [SECONDS] = "a number from 0 to 1e9",
    [RATE] = "nan or a finite number >= 0",
};

/* The entry's text for a message, shortened: a corrupt history can be megabytes. */
static const char *snippet(char *buf, size_t size, const char *s, size_t n)
{
    size_t keep = n < size - 4 ? n : size - 4;
    memcpy(buf, s, keep);
    strcpy(buf + keep, keep < n ? "..." : "");
    for (char *c = buf; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = '?'; /* the metadata may hold any text: keep the message one line */
    return buf;
}

bool rt_history_parse(const char *text, const char *path, int64_t epochs, rt_history_row **rows, int *n, char *err,
                      size_t len)
{
    static const char *const names[] = {"train_loss", "train_acc", "test_loss", "test_acc", "seconds", "samples_per_s"};
    static const field_kind kinds[] = {LOSS, METRIC, ANY_LOSS, METRIC, SECONDS, RATE};
    *rows = NULL, *n = 0;
    if (epochs < 0 || epochs > RT_HISTORY_MAX)
        return rt_fail(err, len,
                       "%s: metadata history: the checkpoint is at epoch %" PRId64 ", but a history "
                       "holds at most %d epochs",
                       path, epochs, RT_HISTORY_MAX);
    rt_history_row *r = malloc(sizeof *r * (size_t)(epochs ? epochs : 1));
    if (!r)
        return rt_fail(err, len, "%s: metadata history: %s", path, strerror(ENOMEM));
    char shown[48];
    const char *s = text;
    int k = 0;
    for (; *s; k++) {
        const char *end = strchr(s, ';');
        size_t elen = end ? (size_t)(end - s) : strlen(s);
        int nfields = 1;
        for (size_t i = 0; i < elen; i++)
            nfields += s[i] == ',';
        if (k >= epochs) {
            rt_fail(err, len,
                    "%s: metadata history entry %d: one more than the checkpoint's %" PRId64
                    " epoch%s (one entry per epoch)",
                    path, k + 1, epochs, epochs == 1 ? "" : "s");
            goto fail;
        }
        if (nfields != 7) {
            rt_fail(err, len,
                    "%s: metadata history entry %d: '%s' has %d field%s, expected 7: epoch,train_loss,"
                    "train_acc,test_loss,test_acc,seconds,samples_per_s",
                    path, k + 1, snippet(shown, sizeof shown, s, elen), nfields, nfields == 1 ? "" : "s");
            goto fail;
        }
        if (!end) {
            rt_fail(err, len, "%s: metadata history entry %d: '%s' does not end with ';'", path, k + 1,
                    snippet(shown, sizeof shown, s, elen));
            goto fail;
        }
        /* consecutive epochs, from 1 or from where a run without a history resumed */
        size_t digits = strspn(s, "0123456789");
        int64_t epoch = 0;
        bool number = rt_parse_whole(s, digits, epochs, &epoch) && s[digits] == ',' && epoch >= 1;
        if (!number || (k && epoch != r[k - 1].epoch + 1)) {
            const char *comma = memchr(s, ',', elen);
            snippet(shown, sizeof shown, s, comma ? (size_t)(comma - s) : elen);
            if (k)
                rt_fail(err, len,
                        "%s: metadata history entry %d: epoch '%s', expected %" PRId64
                        " (one entry per epoch, in order)",
                        path, k + 1, shown, r[k - 1].epoch + 1);
            else
                rt_fail(err, len,
                        "%s: metadata history entry 1: epoch '%s', expected a number from 1 to the "
                        "checkpoint's %" PRId64,
                        path, shown, epochs);
            goto fail;
        }
        r[k].epoch = epoch;
        double *field[] = {&r[k].train_loss, &r[k].train_acc, &r[k].test_loss,
                           &r[k].test_acc,   &r[k].seconds,   &r[k].samples_per_s};
        const char *f = s + digits + 1;
        for (int j = 0; j < 6; j++) {
            size_t flen = strcspn(f, ",;");
            char *e;
            errno = 0;
            double v = strtod(f, &e);
            bool parsed = flen && !isspace((unsigned char)*f) && e == f + flen && !(errno == ERANGE && isinf(v));
            if (!parsed || !value_ok(kinds[j], v)) {
                rt_fail(err, len, "%s: metadata history entry %d: %s is '%s', expected %s", path, k + 1, names[j],
                        snippet(shown, sizeof shown, f, flen), expected[kinds[j]]);
                goto fail;
            }
            *field[j] = v;
            f += flen + 1;
        }
        s = end + 1;
    }
    if (k && r[k - 1].epoch != epochs) {
        rt_fail(err, len,
                "%s: metadata history entry %d: missing (the checkpoint is at epoch %" PRId64 ": one entry per epoch)",
                path, k + 1, epochs);
        goto fail;
    }
    if (!k)
        free(r), r = NULL;
    *rows = r, *n = k;
    return true;
fail:
    free(r);
    return false;
}

bool rt_history_append(rt_history_row **rows, int *n, rt_history_row r)
{
    if (*n >= RT_HISTORY_MAX)
        return false;
    rt_history_row *grown = realloc(*rows, sizeof *grown * (size_t)(*n + 1));
    if (!grown)
        return false;
    *rows = grown;
    (*rows)[(*n)++] = r;
    return true;
}

rt_history_row rt_history_row_of(const rt_epoch *e, int acc, int64_t samples)
{
    return (rt_history_row){e->epoch,
                            e->train_loss,
                            acc >= 0 ? e->train_metric[acc] : NAN,
                            e->test_loss,
                            acc >= 0 ? e->test_metric[acc] : NAN,
                            e->seconds,
                            e->seconds > 0 ? (double)samples / e->seconds : NAN};
}
