/* The emitted header and object link into a user's own C program with the runtime library
 * and nothing else from aotgrad, and its forward pass gives the interpreter's logits; so do
 * those of a graph without training (forward alone), its parameters placed by the header. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "interp.h"
#include "load.h"
#include "lower.h"
#include "passes.h"

static const char *const program =
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include \"mlp.h\"\n"
    "/* params.bin x.bin y.bin batch out.bin: the forward pass's predictions to out.bin */\n"
    "static void *slurp(const char *path, size_t size) {\n"
    "    void *p = aligned_alloc(64, (size + 63) / 64 * 64);\n"
    "    FILE *f = fopen(path, \"rb\");\n"
    "    if (!p || !f || fread(p, 1, size, f) != size) exit(2);\n"
    "    fclose(f);\n"
    "    return p;\n"
    "}\n"
    "int main(int argc, char **argv) {\n"
    "    if (argc != 6) return 2;\n"
    "    int64_t n = atoll(argv[4]);\n"
    "    char *params = slurp(argv[1], MLP_PARAM_BYTES);\n"
    "    void *inputs[] = {slurp(argv[2], (size_t)n * 784), slurp(argv[3], (size_t)n * 4)};\n"
    "    char *arena = aligned_alloc(64, (size_t)mlp_arena_bytes(n));\n"
    "    ag_args a = {arena, params, inputs, NULL, n, 1, 0, NULL};\n"
    "    mlp_forward(&a);\n"
    "    FILE *f = fopen(argv[5], \"wb\");\n"
    "    fwrite(arena + MLP_FORWARD_PREDICT_OFFSET(n), sizeof(float), (size_t)n * 10, f);\n"
    "    int bad = fclose(f) != 0;\n"
    "    free(arena), free(inputs[0]), free(inputs[1]), free(params);\n"
    "    return bad;\n"
    "}\n";

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, size, f), size);
    cr_assert_eq(fclose(f), 0);
}

Test(link, a_c_program_runs_the_emitted_forward_pass)
{
    const char *bin = getenv("AOTGRAD_BIN"), *runtime = getenv("AOTGRAD_RUNTIME_LIB");
    cr_assert(bin && runtime, "run through ctest (AOTGRAD_BIN, AOTGRAD_RUNTIME_LIB)");
    char dir[] = "/tmp/aotgrad-link-XXXXXX", cmd[4096], path[512];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "cd %s && %s build models/mlp.c -o %s/mlp --emit obj,h", AG_SOURCE_DIR, bin, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/main.c", dir);
    write_file(path, program, strlen(program));
    const char *flags = getenv("AOTGRAD_LINK_FLAGS");
    snprintf(cmd, sizeof cmd, "cc -std=c17 -O1 %s -o %s/prog %s/main.c %s/mlp.o %s -lopenblas -lz -lm -lpthread",
             flags ? flags : "", dir, dir, dir, runtime);
    cr_assert_eq(system(cmd), 0, "does not link: %s", cmd);

    /* the same parameters and batch through the interpreter */
    char err[1024];
    ir_graph *m = fe_load(AG_SOURCE_DIR "/models/mlp.c", getenv("AOTGRAD_INCLUDE"), NULL);
    ir_graph *step = pass_run(m, true, NULL, NULL, NULL, err, sizeof err);
    ir_graph *eval = pass_run(m, false, NULL, NULL, NULL, err, sizeof err);
    cr_assert(step && eval, "%s", err);
    cg_program *p = cg_lower(step, true, err, sizeof err); /* the header's parameter layout */
    cr_assert_not_null(p, "%s", err);
    const int64_t batch = 5;
    ir_tensor **bound = fe_bind_random(eval, batch, 3, false);
    char *params = calloc(1, (size_t)p->param_bytes);
    for (int k = 0; k < p->nparams; k++)
        memcpy(params + p->params[k].offset, bound[ir_find_source(eval, IR_param, p->params[k].name)]->data,
               (size_t)p->params[k].bytes);
    const char *names[] = {"params.bin", "x.bin", "y.bin"};
    const void *data[] = {params, bound[ir_find_source(eval, IR_input, "x")]->data,
                          bound[ir_find_source(eval, IR_input, "y")]->data};
    const size_t sizes[] = {(size_t)p->param_bytes, (size_t)batch * 784, (size_t)batch * 4};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        write_file(path, data[k], sizes[k]);
    }
    snprintf(cmd, sizeof cmd, "cd %s && ./prog params.bin x.bin y.bin %lld out.bin", dir, (long long)batch);
    cr_assert_eq(system(cmd), 0, "%s", cmd);

    ir_tensor outs[8];
    ir_run run = {.f64 = false, .batch = batch, .seed = 1, .step = 0, .training = false};
    cr_assert(ir_interp(eval, &run, (const ir_tensor *const *)bound, outs, err, sizeof err), "%s", err);
    int po = ir_find_output(eval, "predict");
    float got[50];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    FILE *f = fopen(path, "rb");
    cr_assert(f && fread(got, sizeof(float), 50, f) == 50);
    fclose(f);
    double d = 0, s = 0;
    for (int i = 0; i < 50; i++) {
        double x = ir_tensor_get(&outs[po], i);
        d += (x - got[i]) * (x - got[i]);
        s += x * x;
    }
    cr_expect(sqrt(d) <= 1e-5 * sqrt(s), "the program's logits differ from the interpreter's by %g", sqrt(d / s));
    for (int k = 0; k < eval->nout; k++)
        ir_tensor_free(&outs[k]);
    free(params);
    fe_bind_free(eval, bound);
    cg_program_free(p);
    ir_graph_free(step);
    ir_graph_free(eval);
    ir_graph_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* chain.c: x -> tanh(x W + b) -> softmax, no training; outputs h and p */
static const char *const chain_program =
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include \"chain.h\"\n"
    "/* W.bin b.bin x.bin batch out.bin: h then p to out.bin, the parameters placed by the header */\n"
    "static void slurp(const char *path, void *p, size_t size) {\n"
    "    FILE *f = fopen(path, \"rb\");\n"
    "    if (!f || fread(p, 1, size, f) != size) exit(2);\n"
    "    fclose(f);\n"
    "}\n"
    "int main(int argc, char **argv) {\n"
    "    if (argc != 6) return 2;\n"
    "    int64_t n = atoll(argv[4]);\n"
    "    if (n > CHAIN_MAX_BATCH) return 3;\n"
    "    char *params = aligned_alloc(64, (CHAIN_PARAM_BYTES + 63) / 64 * 64);\n"
    "    char *arena = aligned_alloc(64, (size_t)chain_arena_bytes(n));\n"
    "    float *x = aligned_alloc(64, (size_t)(n * 16 + 63) / 64 * 64);\n"
    "    slurp(argv[1], params + CHAIN_PARAM_W_OFFSET, 4 * 3 * sizeof(float));\n"
    "    slurp(argv[2], params + CHAIN_PARAM_B_OFFSET, 3 * sizeof(float));\n"
    "    slurp(argv[3], x, (size_t)n * 4 * sizeof(float));\n"
    "    void *inputs[] = {x};\n"
    "    ag_args a = {arena, params, inputs, NULL, n, 1, 0, NULL, NULL};\n"
    "    chain_forward(&a);\n"
    "    FILE *f = fopen(argv[5], \"wb\");\n"
    "    fwrite(arena + CHAIN_FORWARD_H_OFFSET(n), sizeof(float), (size_t)n * 3, f);\n"
    "    fwrite(arena + CHAIN_FORWARD_P_OFFSET(n), sizeof(float), (size_t)n * 3, f);\n"
    "    int bad = fclose(f) != 0;\n"
    "    free(arena), free(x), free(params);\n"
    "    return bad;\n"
    "}\n";

Test(link, a_c_program_runs_the_forward_pass_of_a_graph_without_training)
{
    const char *bin = getenv("AOTGRAD_BIN"), *runtime = getenv("AOTGRAD_RUNTIME_LIB");
    cr_assert(bin && runtime, "run through ctest (AOTGRAD_BIN, AOTGRAD_RUNTIME_LIB)");
    char dir[] = "/tmp/aotgrad-link-XXXXXX", cmd[4096], path[512];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "cd %s && %s build tests/data/models/chain.c -o %s/chain --emit obj,h --batch 8",
             AG_SOURCE_DIR, bin, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/main.c", dir);
    write_file(path, chain_program, strlen(chain_program));
    const char *flags = getenv("AOTGRAD_LINK_FLAGS");
    snprintf(cmd, sizeof cmd, "cc -std=c17 -O1 %s -o %s/prog %s/main.c %s/chain.o %s -lopenblas -lz -lm -lpthread",
             flags ? flags : "", dir, dir, dir, runtime);
    cr_assert_eq(system(cmd), 0, "does not link: %s", cmd);

    /* the same parameters and inputs through the interpreter, at batches below and past the
     * plan's 8: one plan serves any batch, the arena sized by chain_arena_bytes(n) */
    char err[1024];
    ir_graph *m = fe_load(AG_SOURCE_DIR "/tests/data/models/chain.c", getenv("AOTGRAD_INCLUDE"), NULL);
    cr_assert_not_null(m);
    static const int64_t batches[] = {1, 5, 9, 40};
    for (int b = 0; b < 4; b++) {
        const int64_t batch = batches[b];
        ir_tensor **bound = fe_bind_random(m, batch, 7, false);
        const char *names[] = {"W.bin", "b.bin", "x.bin"}, *src[] = {"W", "b", "x"};
        const ir_op ops[] = {IR_param, IR_param, IR_input};
        for (int k = 0; k < 3; k++) {
            const ir_tensor *v = bound[ir_find_source(m, ops[k], src[k])];
            snprintf(path, sizeof path, "%s/%s", dir, names[k]);
            write_file(path, v->data, (size_t)ir_tensor_numel(v) * sizeof(float));
        }
        snprintf(cmd, sizeof cmd, "cd %s && ./prog W.bin b.bin x.bin %lld out.bin", dir, (long long)batch);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
        ir_tensor outs[2];
        ir_run run = {.f64 = false, .batch = batch, .seed = 1, .step = 0, .training = false};
        cr_assert(ir_interp(m, &run, (const ir_tensor *const *)bound, outs, err, sizeof err), "%s", err);
        float got[2 * 40 * 3];
        snprintf(path, sizeof path, "%s/out.bin", dir);
        FILE *f = fopen(path, "rb");
        cr_assert(f && fread(got, sizeof(float), (size_t)(6 * batch), f) == (size_t)(6 * batch));
        fclose(f);
        for (int o = 0; o < 2; o++) {
            double d = 0, s = 0;
            for (int64_t i = 0; i < 3 * batch; i++) {
                double x = ir_tensor_get(&outs[ir_find_output(m, o ? "p" : "h")], i), y = got[o * 3 * batch + i];
                d += (x - y) * (x - y);
                s += x * x;
            }
            cr_expect(sqrt(d) <= 1e-5 * sqrt(s), "batch %lld: output %s differs from the interpreter's by %g",
                      (long long)batch, o ? "p" : "h", sqrt(d / s));
        }
        ir_tensor_free(&outs[0]);
        ir_tensor_free(&outs[1]);
        fe_bind_free(m, bound);
    }
    ir_graph_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
