/* The training history: the exact CSV, the SVG chart's series and where its points land (by
 * the mapping history.h documents), an empty history, an unwritable path, and (where Python
 * is installed) the SVG's well-formedness by a real XML parser. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "history.h"

/* ---- a temporary directory per test, removed even when an assertion fails ---- */

static char dir[64], path[128], err[1024], want[1024], text[65536];

static void setup(void)
{
    strcpy(dir, "/tmp/ag_hist_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/out", dir);
    err[0] = 0;
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char q[512];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(q, sizeof q, "%s/%s", dir, e->d_name);
            unlink(q);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

TestSuite(history, .init = setup, .fini = teardown);

/* The folder holds exactly `want` entries, none of them a temporary file. */
static void assert_entries(int want_n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            cr_expect_null(strstr(e->d_name, ".tmp."), "left behind: %s", e->d_name);
            n++;
        }
    closedir(d);
    cr_assert_eq(n, want_n);
}

static const char *slurp(const char *p)
{
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "%s: %s", p, strerror(errno));
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    return text;
}

/* Three epochs of a classifier with a test set; epoch 2's test figures are missing. */
static const rt_history_row rows[3] = {
    {1, 0.75, 0.5, 0.625, 0.25, 1.5, 40000},
    {2, 0.5, 0.625, NAN, NAN, 1.25, 48000.5},
    {3, 0.25, 0.875, 0.375, 0.75, 1.0 / 3, 60000},
};

Test(history, csv_exact)
{
    cr_assert(rt_write_metrics_csv(path, rows, 3, err, sizeof err), "%s", err);
    cr_assert_str_eq(slurp(path), "epoch,train_loss,train_acc,test_loss,test_acc,seconds,samples_per_s\n"
                                  "1,0.75,0.5,0.625,0.25,1.5000,40000\n"
                                  "2,0.5,0.625,,,1.2500,48000.5\n"
                                  "3,0.25,0.875,0.375,0.75,0.3333,60000\n");
    assert_entries(1);
}

/* The series id's polyline points, as (x, y) pairs; returns how many. */
static int points(const char *svg, const char *id, double xy[][2], int cap)
{
    char key[64];
    snprintf(key, sizeof key, "<g id=\"%s\">\n<polyline points=\"", id);
    const char *s = strstr(svg, key);
    if (!s)
        return -1;
    s += strlen(key);
    int n = 0, used;
    while (*s != '"' && n < cap && sscanf(s, " %lf,%lf%n", &xy[n][0], &xy[n][1], &used) == 2)
        s += used, n++;
    cr_assert_eq(*s, '"', "points of %s end at: %.20s", id, s);
    return n;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (; (s = strstr(s, what)); s += strlen(what))
        n++;
    return n;
}

/* All values within 0..1, so the y axis is 0..1; epochs 1..3, so x(e) = 55 + (e - 1) * 205. */
static double x_of(double epoch) { return 55 + (epoch - 1) * 410 / 2; }
static double y_of(double v) { return 245 - v * 210; }

Test(history, svg_series_and_points)
{
    cr_assert(rt_write_plot_svg(path, "mlp <lr=0.1> & \"wd\" 'x'", rows, 3, err, sizeof err), "%s", err);
    const char *svg = slurp(path);
    cr_assert_eq(strncmp(svg, "<svg", 4), 0);
    size_t n = strlen(svg);
    cr_assert(n > 7 && !strcmp(svg + n - 7, "</svg>\n"));
    cr_assert_not_null(strstr(svg, ">mlp &lt;lr=0.1&gt; &amp; &quot;wd&quot; &apos;x&apos;</text>"));

    /* train loss, train acc, test acc; test loss only stands in for a missing test acc */
    cr_assert_eq(count(svg, "<polyline"), 3);
    cr_assert_eq(points(svg, "test_loss", NULL, 0), -1);
    double xy[8][2];
    cr_assert_eq(points(svg, "train_acc", xy, 8), 3);
    cr_assert_eq(points(svg, "test_acc", xy, 8), 2); /* epoch 2's NaN skipped */
    cr_assert_float_eq(xy[0][0], x_of(1), 0.051);
    cr_assert_float_eq(xy[0][1], y_of(0.25), 0.051);
    cr_assert_float_eq(xy[1][0], x_of(3), 0.051);
    cr_assert_float_eq(xy[1][1], y_of(0.75), 0.051);
    cr_assert_eq(points(svg, "train_loss", xy, 8), 3);
    cr_assert_float_eq(xy[1][0], x_of(2), 0.051);
    cr_assert_float_eq(xy[1][1], y_of(0.5), 0.051);
    for (const char *label = "train loss\0train acc\0test acc\0"; *label; label += strlen(label) + 1)
        cr_assert_eq(count(svg, label), 1, "legend entry %s", label);
    cr_assert_not_null(strstr(svg, ">epoch</text>"));
    assert_entries(1);
}

/* Regression: no accuracy anywhere, so test loss is drawn; a loss above 1 stretches the y
 * axis to the next tick (step 0.5 for 0..2.2, so 0..2.5). */
Test(history, svg_regression_draws_test_loss)
{
    rt_history_row r[2] = {{1, 2.2, NAN, 1.0, NAN, 1, 1}, {2, 0.5, NAN, 0.4, NAN, 1, 1}};
    cr_assert(rt_write_plot_svg(path, NULL, r, 2, err, sizeof err), "%s", err);
    const char *svg = slurp(path);
    double xy[4][2];
    cr_assert_eq(count(svg, "<polyline"), 2);
    cr_assert_eq(points(svg, "train_acc", xy, 4), -1);
    cr_assert_eq(points(svg, "test_acc", xy, 4), -1);
    cr_assert_eq(points(svg, "train_loss", xy, 4), 2);
    cr_assert_float_eq(xy[0][0], 55, 0.051);
    cr_assert_float_eq(xy[0][1], 245 - 2.2 * 210 / 2.5, 0.051);
    cr_assert_float_eq(xy[1][0], 465, 0.051);
    cr_assert_eq(points(svg, "test_loss", xy, 4), 2);
    cr_assert_float_eq(xy[1][1], 245 - 0.4 * 210 / 2.5, 0.051);
    cr_assert_not_null(strstr(svg, ">2.5</text>"));
}

/* Curves two decades apart or more (weight decay's train loss near 0, test loss near 100)
 * are drawn on a log scale, each power of ten a tick, as d2l draws them; the y axis says what
 * it shows. */
Test(history, svg_log_scale_where_the_curves_span_decades)
{
    rt_history_row r[2] = {{1, 0.01, NAN, 100, NAN, 1, 1}, {2, 0.002, NAN, 90, NAN, 1, 1}};
    cr_assert(rt_write_plot_svg(path, NULL, r, 2, err, sizeof err), "%s", err);
    const char *svg = slurp(path);
    cr_assert_not_null(strstr(svg, ">loss (log scale)</text>"), "%s", svg);
    cr_assert(strstr(svg, ">0.001</text>") && strstr(svg, ">100</text>"), "%s", svg);
    double xy[4][2];
    cr_assert_eq(points(svg, "test_loss", xy, 4), 2);
    cr_assert_float_eq(xy[0][1], 35, 0.051); /* 100 at the top: 10^-3 .. 10^2 over 210 */
    cr_assert_eq(points(svg, "train_loss", xy, 4), 2);
    cr_assert_float_eq(xy[0][1], 245 - (log10(0.01) + 3) * 210 / 5, 0.051);

    /* within a decade or two: linear, with the axis named */
    rt_history_row lin[2] = {{1, 2.2, 0.5, 1.0, 0.6, 1, 1}, {2, 0.5, 0.7, 0.4, 0.8, 1, 1}};
    cr_assert(rt_write_plot_svg(path, NULL, lin, 2, err, sizeof err), "%s", err);
    svg = slurp(path);
    cr_assert(strstr(svg, ">loss, accuracy</text>") && !strstr(svg, "log scale"), "%s", svg);
}

Test(history, empty_history)
{
    cr_assert(rt_write_metrics_csv(path, NULL, 0, err, sizeof err), "%s", err);
    cr_assert_str_eq(slurp(path), "epoch,train_loss,train_acc,test_loss,test_acc,seconds,samples_per_s\n");
    cr_assert(rt_write_plot_svg(path, "nothing yet", NULL, 0, err, sizeof err), "%s", err);
    const char *svg = slurp(path);
    cr_assert_eq(strncmp(svg, "<svg", 4), 0);
    cr_assert_eq(count(svg, "<polyline"), 0);
    cr_assert_not_null(strstr(svg, ">nothing yet</text>"));
    cr_assert_not_null(strstr(svg, "</svg>\n"));
    assert_entries(1);
}

Test(history, unwritable_path)
{
    char p[192];
    snprintf(p, sizeof p, "%s/no/such/metrics.csv", dir);
    snprintf(want, sizeof want, "%s: cannot write: %s", p, strerror(ENOENT));
    cr_assert_not(rt_write_metrics_csv(p, rows, 3, err, sizeof err));
    cr_assert_str_eq(err, want);
    err[0] = 0;
    cr_assert_not(rt_write_plot_svg(p, "t", rows, 3, err, sizeof err));
    cr_assert_str_eq(err, want);
    assert_entries(0);
}

/* A FIFO or a symlink at PATH is left as it is: the rename would replace it with a file. */
Test(history, special_files_are_not_replaced)
{
    cr_assert_eq(mkfifo(path, 0666), 0);
    snprintf(want, sizeof want, "%s: exists and is not a regular file", path);
    cr_assert_not(rt_write_metrics_csv(path, rows, 3, err, sizeof err));
    cr_assert_str_eq(err, want);
    err[0] = 0;
    cr_assert_not(rt_write_plot_svg(path, "t", rows, 3, err, sizeof err));
    cr_assert_str_eq(err, want);
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert(S_ISFIFO(st.st_mode));
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(symlink("elsewhere", path), 0);
    cr_assert_not(rt_write_metrics_csv(path, rows, 3, err, sizeof err));
    cr_assert_str_eq(err, want);
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert(S_ISLNK(st.st_mode));
    assert_entries(1);
}

/* ---- the history in a checkpoint's metadata ---- */

/* The writer's text reads back to the same text, with every value the writer can write:
 * NaN accuracies and test figures, FLT_MAX and infinite losses, zero seconds. */
Test(history, metadata_text_round_trip)
{
    const rt_history_row r[4] = {
        {1, 0.75, 0.5, 0.625, 0.25, 1.5, 40000},
        {2, 3.4028234663852886e38, NAN, NAN, NAN, 0, NAN},
        {3, -2.5, 1, INFINITY, 0, 1e9, 0},
        {4, 0, 0.875, -INFINITY, 1, 1.0 / 3, 1e300},
    };
    char *a = rt_history_text(r, 4);
    cr_assert_not_null(a);
    cr_assert_str_eq(a, "1,0.75,0.5,0.625,0.25,1.5,40000;2,3.40282347e+38,nan,nan,nan,0,nan;"
                        "3,-2.5,1,inf,0,1e+09,0;4,0,0.875,-inf,1,0.333333,1e+300;");
    rt_history_row *back;
    int n;
    cr_assert(rt_history_parse(a, "ck.st", 4, &back, &n, err, sizeof err), "%s", err);
    cr_assert_eq(n, 4);
    char *b = rt_history_text(back, n);
    cr_assert_str_eq(b, a);
    cr_assert(isnan(back[1].train_acc) && isinf(back[2].test_loss) && back[3].epoch == 4);
    free(a), free(b), free(back);
    /* none: epoch 0 (or a checkpoint without epochs) */
    cr_assert(rt_history_parse("", "ck.st", 0, &back, &n, err, sizeof err), "%s", err);
    cr_assert_eq(n, 0);
    cr_assert_null(back);
}

/* Every way a history can disagree with its checkpoint, with its message. */
Test(history, metadata_refused_with_its_entry)
{
    static char many[20000];
    for (int k = 0; k < 1000; k++)
        strcat(many, k % 2 ? "2,1,1,1,1,1,1;" : "1,1,1,1,1,1,1;");
    const struct {
        const char *text;
        int64_t epochs;
        const char *msg;
    } cases[] = {
        {"garbage", 2,
         "history entry 1: 'garbage' has 1 field, expected 7: epoch,train_loss,train_acc,test_loss,test_acc,seconds,"
         "samples_per_s"},
        {"1,2;", 2,
         "history entry 1: '1,2' has 2 fields, expected 7: epoch,train_loss,train_acc,test_loss,test_acc,"
         "seconds,samples_per_s"},
        {"1,1,1,1,1,1,1", 1, "history entry 1: '1,1,1,1,1,1,1' does not end with ';'"},
        {"5,1,1,1,1,1,1;", 2, "history entry 1: epoch '5', expected a number from 1 to the checkpoint's 2"},
        {"1,1,1,1,1,1,1;3,1,1,1,1,1,1;", 3, "history entry 2: epoch '3', expected 2 (one entry per epoch, in order)"},
        {"99999999999999999999,1,1,1,1,1,1;", 2,
         "history entry 1: epoch '99999999999999999999', expected a number from 1 to the checkpoint's 2"},
        {"1,1,1,1,1,1,1;1,1,1,1,1,1,1;", 2, "history entry 2: epoch '1', expected 2 (one entry per epoch, in order)"},
        {" 1,1,1,1,1,1,1;", 1, "history entry 1: epoch ' 1', expected a number from 1 to the checkpoint's 1"},
        {"0x1,1,1,1,1,1,1;", 1, "history entry 1: epoch '0x1', expected a number from 1 to the checkpoint's 1"},
        {many, 2, "history entry 3: one more than the checkpoint's 2 epochs (one entry per epoch)"},
        {"1,1,1,1,1,1,1;", 2, "history entry 2: missing (the checkpoint is at epoch 2: one entry per epoch)"},
        {"1,nan,1,1,1,1,1;", 1, "history entry 1: train_loss is 'nan', expected a finite number within f32's range"},
        {"1,1e300,1,1,1,1,1;", 1,
         "history entry 1: train_loss is '1e300', expected a finite number within f32's range"},
        {"1,1,1e300,1,1,1,1;", 1, "history entry 1: train_acc is '1e300', expected nan or a number within f32's range"},
        {"1,1,1,-1e300,1,1,1;", 1,
         "history entry 1: test_loss is '-1e300', expected nan, inf or a number within f32's range"},
        {"1,1,1,1e999,1,1,1;", 1,
         "history entry 1: test_loss is '1e999', expected nan, inf or a number within f32's range"},
        {"1,1,1,1,-1e300,1,1;", 1,
         "history entry 1: test_acc is '-1e300', expected nan or a number within f32's range"},
        {"1,1,1,1,1,1e300,1;", 1, "history entry 1: seconds is '1e300', expected a number from 0 to 1e9"},
        {"1,1,1,1,1,nan,1;", 1, "history entry 1: seconds is 'nan', expected a number from 0 to 1e9"},
        {"1,1,1,1,1,1,inf;", 1, "history entry 1: samples_per_s is 'inf', expected nan or a finite number >= 0"},
        {"1,1,1,1,1, 1,1;", 1, "history entry 1: seconds is ' 1', expected a number from 0 to 1e9"},
        {"1,1,,1,1,1,1;", 1, "history entry 1: train_acc is '', expected nan or a number within f32's range"},
        {"1,1,1x,1,1,1,1;", 1, "history entry 1: train_acc is '1x', expected nan or a number within f32's range"},
        {"1,1,1,1,1,1,1;", 200000,
         "history: the checkpoint is at epoch 200000, but a history holds at most 100000 "
         "epochs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rt_history_row stale, *r = &stale; /* reset to NULL on failure */
        int n = -1;
        cr_assert_not(rt_history_parse(cases[i].text, "ck.st", cases[i].epochs, &r, &n, err, sizeof err),
                      "case %zu: accepted", i);
        snprintf(want, sizeof want, "ck.st: metadata %s", cases[i].msg);
        cr_expect_str_eq(err, want, "case %zu: %s", i, err);
        cr_expect_null(r, "case %zu", i);
        cr_expect_eq(n, 0, "case %zu", i);
    }
    /* a long entry is shown cut, control characters as '?' */
    cr_assert_not(rt_history_parse("1,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,1,1,1,1,1;", "ck.st",
                                   1, &(rt_history_row *){0}, &(int){0}, err, sizeof err));
    cr_assert_str_eq(err, "ck.st: metadata history entry 1: train_loss is "
                          "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...', expected a finite number within f32's "
                          "range");
    cr_assert_not(rt_history_parse("1,1,1,1,1,1,1\n;", "ck.st", 1, &(rt_history_row *){0}, &(int){0}, err, sizeof err));
    cr_assert_str_eq(err, "ck.st: metadata history entry 1: samples_per_s is '1?', expected nan or a finite number "
                          ">= 0");
}

/* What the writer writes is read back: from epoch 1, or from where a run resumed from a
 * checkpoint without a history; a metric that is no accuracy (an unnamed one) holds any f32. */
Test(history, metadata_the_writer_writes_is_accepted)
{
    char err[256];
    rt_history_row *r = NULL;
    int n = -1;
    cr_assert(rt_history_parse("3,1,-0.13,1,2.5,1,1;4,1,0.5,1,0.5,1,1;", "ck.st", 4, &r, &n, err, sizeof err), "%s",
              err);
    cr_expect_eq(n, 2);
    cr_expect_eq(r[0].epoch, 3);
    cr_expect_eq(r[1].epoch, 4);
    cr_expect_eq(r[0].train_acc, -0.13);
    free(r);
    cr_assert(rt_history_parse("", "ck.st", 1, &r, &n, err, sizeof err), "%s", err);
    cr_expect_eq(n, 0);
    cr_expect_null(r);
}

/* Overwriting keeps one file, with the new content. */
Test(history, rewrite_replaces)
{
    cr_assert(rt_write_metrics_csv(path, rows, 3, err, sizeof err), "%s", err);
    cr_assert(rt_write_metrics_csv(path, rows, 1, err, sizeof err), "%s", err);
    cr_assert_eq(count(slurp(path), "\n"), 2);
    assert_entries(1);
}

/* A real XML parser reads the chart, with every awkward title character in it. */
Test(history, svg_is_well_formed_xml)
{
    if (system("python3 -c 'import xml.dom.minidom' >/dev/null 2>&1") != 0) {
        cr_log_warn("python3 with xml.dom.minidom not found: well-formedness not checked");
        return;
    }
    rt_history_row many[25];
    for (int i = 0; i < 25; i++)
        many[i] = (rt_history_row){i + 1, 2.0 / (i + 1), i % 5 ? 0.5 + i / 60.0 : NAN, NAN, 0.4 + i / 50.0, 1, 1};
    cr_assert(rt_write_plot_svg(path, "a&b <c> \"d\" 'e'\x01", many, 25, err, sizeof err), "%s", err);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sys, xml.dom.minidom as m\n"
             "d = m.parse(sys.argv[1]).documentElement\n"
             "print(d.tagName, len(d.getElementsByTagName(\"polyline\")), d.getElementsByTagName(\"text\")[0]"
             ".firstChild.data)' %s 2>&1",
             path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[1024];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    cr_assert_eq(pclose(p), 0, "%s", out);
    cr_assert_str_eq(out, "svg 3 a&b <c> \"d\" 'e'\n");
}
