#include "fake_cuda.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_cmd.h"

static const char *shim(void)
{
    static char d[4096];
    const char *src = getenv("AOTGRAD_SOURCE_DIR");
    snprintf(d, sizeof d, "%s/tests/cuda", src && *src ? src : AG_SOURCE_DIR);
    return d;
}

static const char *flags(void)
{
    const char *f = getenv("AOTGRAD_LINK_FLAGS");
    return f ? f : "";
}

void fake_cuda_driver(const char *so_path)
{
    int st;
    char *out =
        run_fmt(&st, "g++ -shared -fPIC -O1 -std=c++17 %s -o '%s' '%s/fake_libcuda.cpp'", flags(), so_path, shim());
    cr_assert_eq(st, 0, "%s", out);
    free(out);
}

void fake_cuda_dir(char *dir_template)
{
    cr_assert_not_null(mkdtemp(dir_template));
    char so[PATH_MAX];
    snprintf(so, sizeof so, "%s/libcuda_fake.so", dir_template);
    fake_cuda_driver(so);
}

void fake_cuda_dir_remove(const char *dir)
{
    char rm[PATH_MAX + 16];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    cr_expect_eq(system(rm), 0);
}

void fake_cuda_kernels(const char *cu_path, const char *so_path)
{
    char cu[PATH_MAX], path[4200];
    cr_assert_not_null(realpath(cu_path, cu), "no %s", cu_path);
    FILE *in = fopen(cu, "r");
    cr_assert_not_null(in);
    snprintf(path, sizeof path, "%s.cpp", so_path);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    /* the launchers: every ag_dev_args kernel of the source by name, and the runtime's two
     * where the source has them (AG_DEV_SUPPORT: cg_cuda_render_support's) */
    fprintf(f, "#include \"host_shim.h\"\n#include \"%s\"\n#include <string.h>\n#include <stdlib.h>\n\n", cu);
    fprintf(f, "#ifdef AG_DEV_SUPPORT\n"
               "struct gather_args { const unsigned char *src; unsigned char *dst; const int *order;\n"
               "                     const ag_dev_state *s; long long rows, row_bytes, row0; };\n"
               "struct end_args { ag_dev_state *s; ag_step_outs o; };\n"
               "struct copy_args { unsigned char *dst; const unsigned char *src; long long bytes; };\n"
               "struct lr_args { const float *table; const ag_dev_state *s; float *lr; };\n#endif\n\n"
               "extern \"C\" int fake_kernel(const char *name, unsigned grid, void **p)\n{\n");
    char line[4096];
    int kernels = 0;
    while (fgets(line, sizeof line, in)) {
        char *k = strstr(line, "__launch_bounds__(256) "), *e = k ? strstr(k, "(ag_dev_args a)") : NULL;
        if (!k || !e)
            continue;
        k += strlen("__launch_bounds__(256) ");
        *e = 0;
        fprintf(f,
                "    if (!strcmp(name, \"%s\")) {\n        if (p) ag_host_launch(name, %s, grid, 256u, *(ag_dev_args "
                "*)p[0]);\n"
                "        return 1;\n    }\n",
                k, k);
        kernels++;
    }
    fclose(in);
    cr_assert_gt(kernels, 0, "no kernels found in %s", cu);
    fprintf(
        f,
        "#ifdef AG_DEV_SUPPORT\n"
        "    if (!strcmp(name, \"ag_gather\")) {\n        if (!p) return 1;\n        static gather_args g;\n"
        "        g = {*(const unsigned char **)p[0], *(unsigned char **)p[1], *(const int **)p[2],\n"
        "             *(const ag_dev_state **)p[3], *(long long *)p[4], *(long long *)p[5], *(long long *)p[6]};\n"
        "        ag_host_launch_raw(name, [](void *q) { gather_args *g = (gather_args *)q;\n"
        "            ag_gather(g->src, g->dst, g->order, g->s, g->rows, g->row_bytes, g->row0); }, &g, grid, 256u);\n"
        "        return 1;\n    }\n"
        "    if (!strcmp(name, \"ag_step_end\")) {\n        if (!p) return 1;\n        static end_args a;\n"
        "        a = {*(ag_dev_state **)p[0], *(ag_step_outs *)p[1]};\n"
        "        ag_host_launch_raw(name, [](void *q) { end_args *a = (end_args *)q; ag_step_end(a->s, a->o); },\n"
        "                           &a, grid, 256u);\n        return 1;\n    }\n"
        "    if (!strcmp(name, \"ag_step_lr\")) {\n        if (!p) return 1;\n        static lr_args l;\n"
        "        l = {*(const float **)p[0], *(const ag_dev_state **)p[1], *(float **)p[2]};\n"
        "        ag_host_launch_raw(name, [](void *q) { lr_args *l = (lr_args *)q; ag_step_lr(l->table, l->s, "
        "l->lr); },\n"
        "                           &l, grid, 256u);\n        return 1;\n    }\n"
        "    if (!strcmp(name, \"ag_copy\")) {\n        if (!p) return 1;\n        static copy_args c;\n"
        "        c = {*(unsigned char **)p[0], *(const unsigned char **)p[1], *(long long *)p[2]};\n"
        "        ag_host_launch_raw(name, [](void *q) { copy_args *c = (copy_args *)q; ag_copy(c->dst, c->src, "
        "c->bytes); },\n"
        "                           &c, grid, 256u);\n        return 1;\n    }\n#endif\n    return 0;\n}\n\n");
    fprintf(f,
            "/* the arguments' values, copied (a captured launch keeps them) */\n"
            "extern \"C\" void **fake_pack(const char *name, void **p)\n{\n"
            "    size_t sizes[8] = {sizeof(ag_dev_args)};\n    int n = 1;\n"
            "#ifdef AG_DEV_SUPPORT\n"
            "    if (!strcmp(name, \"ag_gather\")) { n = 7; for (int i = 0; i < 7; i++) sizes[i] = 8; }\n"
            "    else if (!strcmp(name, \"ag_step_end\")) { n = 2; sizes[0] = 8; sizes[1] = sizeof(ag_step_outs); }\n"
            "    else if (!strcmp(name, \"ag_copy\")) { n = 3; for (int i = 0; i < 3; i++) sizes[i] = 8; }\n"
            "    else if (!strcmp(name, \"ag_step_lr\")) { n = 3; for (int i = 0; i < 3; i++) sizes[i] = 8; }\n"
            "#endif\n"
            "    void **out = (void **)malloc(8 * sizeof(void *) + 8 * 256);\n"
            "    char *blob = (char *)(out + 8);\n"
            "    for (int i = 0; i < n; i++) { memcpy(blob + 256 * i, p[i], sizes[i]); out[i] = blob + 256 * i; }\n"
            "    return out;\n}\n");
    fclose(f);
    int st;
    char *out =
        run_fmt(&st,
                "g++ -shared -fPIC -O1 -std=c++17 -ffp-contract=off -Wno-unknown-pragmas %s -I'%s' -o '%s' '%s' "
                "'%s/host_run.cpp'",
                flags(), shim(), so_path, path, shim());
    cr_assert_eq(st, 0, "%s", out);
    free(out);
}
