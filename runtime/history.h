/* Per-epoch training figures, written as CSV (--metrics) and drawn as an SVG chart (--plot),
 * as the d2l book's Animator draws loss and accuracies per epoch.
 *
 * The CSV has the header epoch,train_loss,train_acc,test_loss,test_acc,seconds,samples_per_s
 * and one line per row: numbers as %.6g (seconds as %.4f), NaN as an empty field.
 *
 * The SVG is 480x320 px. Its plot area spans x 55..465 and y 35..245 (top to bottom), so
 *     epoch e  sits at x = 55 + (e - 1) * 410 / (last - 1)      last = max(2, largest epoch)
 *     value v  sits at y = 245 - (v - lo) * 210 / (hi - lo)
 * where lo..hi is min(0, smallest value)..max(1, largest value) over the series drawn, each
 * end widened to a multiple of the tick step (1, 2 or 5 times a power of ten, about 5
 * ticks); so values within 0..1 give lo = 0, hi = 1. Series drawn, each with at least one
 * finite value: "train loss" (solid blue), "train acc" (dashed magenta), "test acc" (dash-dot
 * green) and, only when test acc has none, "test loss" (dotted red). Each is a
 * <g id="train_loss"> (train_acc, test_acc, test_loss) holding one polyline through its
 * finite points, in row order, and a circle per point; non-finite points are skipped.
 *
 * Both write PATH.tmp.<pid> and rename it over PATH, so a reader sees the old file or the
 * new one. On failure they return false with "PATH: cannot write: <reason>" in err and leave
 * no temporary file. Something at PATH other than a regular file (a device, a FIFO, a
 * symlink) is left alone: "PATH: exists and is not a regular file" (rt_check_output_path).
 */
#ifndef AG_RUNTIME_HISTORY_H
#define AG_RUNTIME_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_history_row {
    int64_t epoch;                 /* 1-based */
    double train_loss, train_acc;  /* train_acc NaN when the model has no accuracy metric */
    double test_loss, test_acc;    /* NaN without a test set (or without accuracy) */
    double seconds, samples_per_s; /* training time of the epoch */
} rt_history_row;

#define RT_HISTORY_MAX 100000 /* rows a history holds (a checkpoint's metadata text stays < 20 MB) */

/* Appends r to *rows (malloc'd, *n of them); false past RT_HISTORY_MAX or out of memory. */
bool rt_history_append(rt_history_row **rows, int *n, rt_history_row r);
/* An epoch's row: accuracy from metric `acc` (-1: none, NaN), samples/s from `samples`
 * trained. */
struct rt_epoch;
rt_history_row rt_history_row_of(const struct rt_epoch *e, int acc, int64_t samples);

bool rt_write_metrics_csv(const char *path, const rt_history_row *rows, int n, char *err, size_t len);
/* title: any text (escaped here); NULL for none. */
bool rt_write_plot_svg(const char *path, const char *title, const rt_history_row *rows, int n, char *err, size_t len);

/* The history in a checkpoint's metadata ("history"): one row per finished epoch, as
 * "epoch,train_loss,train_acc,test_loss,test_acc,seconds,samples_per_s;" (numbers as %.9g,
 * seconds and samples/s as %.6g, NaN as nan). Returns a malloc'd string, NULL when out of
 * memory. */
char *rt_history_text(const rt_history_row *rows, int n);

/* Reads rt_history_text's text back for a checkpoint at epoch `epochs`, as strictly as the
 * writer writes it: exactly one entry per epoch 1..epochs, in order (the writer saves after
 * adding the epoch's row); the epoch in decimal digits; losses within f32's range (train_loss
 * finite; test_loss NaN or infinite as well, since evaluation does not stop on those);
 * accuracies NaN or 0..1; seconds 0..1e9; samples/s NaN or finite >= 0. On success *rows
 * (malloc'd, NULL for none) holds *n == epochs rows. On failure nothing is allocated and err
 * says "PATH: metadata history entry N: ...", N counted from 1. */
bool rt_history_parse(const char *text, const char *path, int64_t epochs, rt_history_row **rows, int *n, char *err,
                      size_t len);

#endif
