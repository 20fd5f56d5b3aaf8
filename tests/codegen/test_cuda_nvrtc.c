/* NVRTC through codegen/cuda/nvrtc.h, no GPU needed: a saxpy kernel compiles to PTX and a
 * cubin with ptxas' report in the log; a kernel past its register budget spills and the
 * report says so; a syntax error names the source and line; a missing library is reported
 * by path. Where NVRTC cannot be loaded, each test that needs it is skipped with the reason. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nvrtc.h"

static void need_nvrtc(void)
{
    char why[1024];
    if (!cg_nvrtc_available(why, sizeof why))
        cr_skip_test("skipped: %s", why);
}

static const char *saxpy_src = "extern \"C\" __global__ void saxpy(float a, const float *x, "
                               "float *y, long long n)\n"
                               "{\n"
                               "    long long i = blockIdx.x * (long long)blockDim.x + "
                               "threadIdx.x;\n"
                               "    if (i < n)\n"
                               "        y[i] = a * x[i] + y[i];\n"
                               "}\n";

Test(cuda_nvrtc, version)
{
    need_nvrtc();
    int major = 0, minor = -1;
    cr_assert(cg_nvrtc_version(&major, &minor));
    cr_assert_geq(major, 11);
    cr_assert_geq(minor, 0);
    cr_log_info("NVRTC %d.%d", major, minor);
}

Test(cuda_nvrtc, saxpy_ptx_and_cubin)
{
    need_nvrtc();
    cg_nvrtc_out out;
    char err[1024] = "";
    bool ok = cg_nvrtc_compile(saxpy_src, "saxpy.cu", "sm_90", true, true, NULL, &out, err, sizeof err);
    cr_assert(ok, "%s", err);
    cr_assert_not_null(out.ptx);
    cr_assert_eq(out.ptx_len, strlen(out.ptx));
    cr_assert_not_null(strstr(out.ptx, ".entry saxpy"), "%s", out.ptx);
    cr_assert(strstr(out.ptx, ".target sm_90") || strstr(out.ptx, ".target compute_90"), "%s", out.ptx);
    cr_assert_gt(out.cubin_len, 4);
    cr_assert_eq(memcmp(out.cubin, "\177ELF", 4), 0);
    cr_assert_not_null(out.log);
    cg_ptxas_report r = cg_ptxas_parse(out.log);
    cr_assert_geq(r.functions, 1, "%s", out.log);
    cr_assert_eq(r.spill_stores, 0, "%s", out.log);
    cr_assert_eq(r.spill_loads, 0, "%s", out.log);
    cr_assert_gt(r.max_registers, 0, "%s", out.log);
    cg_nvrtc_out_free(&out);
    cr_assert_null(out.log);
}

/* PTX alone: the virtual arch, no ptxas, so no report in the log */
Test(cuda_nvrtc, ptx_only)
{
    need_nvrtc();
    cg_nvrtc_out out;
    char err[1024] = "";
    cr_assert(cg_nvrtc_compile(saxpy_src, "saxpy.cu", "sm_90", true, false, NULL, &out, err, sizeof err), "%s", err);
    cr_assert_not_null(strstr(out.ptx, ".entry saxpy"));
    cr_assert_null(out.cubin);
    cr_assert_eq(out.cubin_len, 0);
    cr_assert_not_null(out.log);
    cg_ptxas_report r = cg_ptxas_parse(out.log);
    cr_assert_eq(r.functions, 0);
    cr_assert_eq(r.spill_stores, -1);
    cg_nvrtc_out_free(&out);

    /* a virtual arch cannot make a cubin */
    cr_assert_not(cg_nvrtc_compile(saxpy_src, "saxpy.cu", "compute_90", false, true, NULL, &out, err, sizeof err));
    cr_assert_not_null(strstr(err, "compute_90"), "%s", err);
    cg_nvrtc_out_free(&out);
    cr_assert_not(cg_nvrtc_compile(saxpy_src, "saxpy.cu", "x86", true, false, NULL, &out, err, sizeof err));
    cr_assert_not_null(strstr(err, "x86"), "%s", err);
    cg_nvrtc_out_free(&out);
}

/* 96 accumulators live across a loop, each reading its neighbour, under a 64-register cap
 * (1024 threads per block, 1 block per SM): ptxas spills (CUDA 13.0: 488 bytes each way). */
static const char *pressure_src = "extern \"C\" __global__ void __launch_bounds__(1024, 1)\n"
                                  "pressure(const float *x, float *y, int n)\n"
                                  "{\n"
                                  "    float acc[96];\n"
                                  "#pragma unroll\n"
                                  "    for (int j = 0; j < 96; j++) acc[j] = x[j * 1024 + threadIdx.x];\n"
                                  "    for (int k = 0; k < n; k++) {\n"
                                  "        float v = x[k];\n"
                                  "#pragma unroll\n"
                                  "        for (int j = 0; j < 96; j++) acc[j] = acc[j] * v + acc[(j + 1) % 96];\n"
                                  "    }\n"
                                  "    float s = 0;\n"
                                  "#pragma unroll\n"
                                  "    for (int j = 0; j < 96; j++) s += acc[j] * (float)(j + 1);\n"
                                  "    y[threadIdx.x] = s;\n"
                                  "}\n";

Test(cuda_nvrtc, spills_reported)
{
    need_nvrtc();
    cg_nvrtc_out out;
    char err[1024] = "";
    cr_assert(cg_nvrtc_compile(pressure_src, "pressure.cu", "sm_90", false, true, NULL, &out, err, sizeof err), "%s",
              err);
    cr_assert_null(out.ptx);
    cg_ptxas_report r = cg_ptxas_parse(out.log);
    cr_log_info("pressure: %d functions, %lld bytes spill stores, %lld loads, %lld registers", r.functions,
                (long long)r.spill_stores, (long long)r.spill_loads, (long long)r.max_registers);
    cr_assert_eq(r.functions, 1, "%s", out.log);
    cr_assert_gt(r.spill_stores, 0, "%s", out.log);
    cr_assert_gt(r.spill_loads, 0, "%s", out.log);
    cr_assert_leq(r.max_registers, 64, "%s", out.log);
    cg_nvrtc_out_free(&out);
}

/* extra options reach NVRTC, and one it rejects is reported */
Test(cuda_nvrtc, extra_options)
{
    need_nvrtc();
    cg_nvrtc_out out;
    char err[1024] = "";
    const char *const define[] = {"-DSCALE=3.0f", NULL};
    const char *src = "extern \"C\" __global__ void k(float *y) { y[0] = SCALE; }\n";
    cr_assert(cg_nvrtc_compile(src, "k.cu", "sm_90", true, false, define, &out, err, sizeof err), "%s", err);
    cg_nvrtc_out_free(&out);
    const char *const bogus[] = {"--no-such-option", NULL};
    cr_assert_not(cg_nvrtc_compile(src, "k.cu", "sm_90", true, false, bogus, &out, err, sizeof err));
    cr_assert_not_null(strstr(err, "k.cu: "), "%s", err);
    cr_assert_not_null(strstr(err, "--no-such-option"), "%s", err);
    cg_nvrtc_out_free(&out);
}

Test(cuda_nvrtc, syntax_error)
{
    need_nvrtc();
    const char *src = "extern \"C\" __global__ void k(float *y)\n"
                      "{\n"
                      "    y[0] = 1.0f\n"
                      "    y[1] = 2.0f;\n"
                      "}\n";
    cg_nvrtc_out out;
    char err[1024] = "";
    cr_assert_not(cg_nvrtc_compile(src, "broken.cu", "sm_90", true, true, NULL, &out, err, sizeof err));
    cr_log_info("%s", err);
    cr_assert_eq(strncmp(err, "broken.cu: ", 11), 0, "%s", err);
    cr_assert_not_null(strstr(err, "broken.cu(4): error"), "%s", err);
    cr_assert_not_null(out.log);
    cr_assert_not_null(strstr(out.log, "broken.cu(4): error"), "%s", out.log);
    cr_assert_null(out.ptx);
    cr_assert_null(out.cubin);
    cg_nvrtc_out_free(&out);
}

/* ptxas refusing a kernel (here: more static shared memory than a kernel may have) while
 * the verbose report is on: NVRTC's log then holds no error line, only warnings; the
 * message must still say what ptxas said, not repeat a warning. */
Test(cuda_nvrtc, ptxas_error_is_named)
{
    need_nvrtc();
    const char *src = "extern \"C\" __global__ void k(float *y)\n"
                      "{\n"
                      "    int unused;\n"
                      "    __shared__ float big[16384];\n"
                      "    big[threadIdx.x] = y[threadIdx.x];\n"
                      "    __syncthreads();\n"
                      "    y[threadIdx.x] = big[16383 - threadIdx.x];\n"
                      "}\n";
    cg_nvrtc_out out;
    char err[1024] = "";
    cr_assert_not(cg_nvrtc_compile(src, "big.cu", "sm_90", true, true, NULL, &out, err, sizeof err));
    cr_log_info("%s", err);
    cr_expect(strncmp(err, "big.cu: ", 8) == 0, "%s", err);
    cr_expect(strstr(err, "too much shared data"), "%s", err);
    cr_expect_null(strstr(err, "warning"), "%s", err);
    cg_nvrtc_out_free(&out);
}

Test(cuda_nvrtc, missing_library)
{
    setenv("AOTGRAD_NVRTC", "/nonexistent/libnvrtc.so", 1);
    char why[1024] = "";
    cr_assert_not(cg_nvrtc_available(why, sizeof why));
    cr_log_info("%s", why);
    cr_assert_not_null(strstr(why, "/nonexistent/libnvrtc.so"), "%s", why);
    cr_assert_null(strchr(why, '\n'), "%s", why);
    int major = -1;
    cr_assert_not(cg_nvrtc_version(&major, NULL));
    cg_nvrtc_out out;
    char err[1024] = "";
    cr_assert_not(cg_nvrtc_compile(saxpy_src, "saxpy.cu", "sm_90", true, true, NULL, &out, err, sizeof err));
    cr_assert_not_null(strstr(err, "/nonexistent/libnvrtc.so"), "%s", err);
    cr_assert_null(out.log);
    cg_nvrtc_out_free(&out);
}

Test(cuda_nvrtc, parse_empty)
{
    cg_ptxas_report r = cg_ptxas_parse("");
    cr_assert_eq(r.functions, 0);
    cr_assert_eq(r.spill_stores, -1);
    cr_assert_eq(r.spill_loads, -1);
    cr_assert_eq(r.max_registers, -1);
    r = cg_ptxas_parse(NULL);
    cr_assert_eq(r.functions, 0);
    cr_assert_eq(r.spill_stores, -1);
}

/* ptxas' report as NVRTC 13.0 writes it (two entries and a device function), and the older
 * form whose property lines carry no "ptxas" prefix */
Test(cuda_nvrtc, parse_captured)
{
    const char *log13 = "ptxas info    : 0 bytes gmem\n"
                        "ptxas info    : Compiling entry function 'pressure' for 'sm_90'\n"
                        "ptxas info    : Function properties for pressure\n"
                        "ptxas         .     272 bytes stack frame, 488 bytes spill stores, 480 bytes spill "
                        "loads\n"
                        "ptxas info    : Used 64 registers, used 0 barriers, 272 bytes cumulative stack size\n"
                        "ptxas info    : Compile time = 38.832 ms\n"
                        "ptxas info    : Function properties for _Z1ff\n"
                        "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
                        "ptxas info    : Compiling entry function 'saxpy' for 'sm_90'\n"
                        "ptxas info    : Function properties for saxpy\n"
                        "ptxas         .     0 bytes stack frame, 12 bytes spill stores, 500 bytes spill loads\n"
                        "ptxas info    : Used 10 registers, used 0 barriers\n"
                        "ptxas info    : Compile time = 3.334 ms\n";
    cg_ptxas_report r = cg_ptxas_parse(log13);
    cr_assert_eq(r.functions, 3);
    cr_assert_eq(r.spill_stores, 488);
    cr_assert_eq(r.spill_loads, 500);
    cr_assert_eq(r.max_registers, 64);

    const char *log12 = "ptxas info    : 0 bytes gmem\n"
                        "ptxas info    : Compiling entry function 'k' for 'sm_80'\n"
                        "ptxas info    : Function properties for k\n"
                        "    8 bytes stack frame, 4 bytes spill stores, 8 bytes spill loads\n"
                        "ptxas info    : Used 255 registers, 356 bytes cmem[0]\n";
    r = cg_ptxas_parse(log12);
    cr_assert_eq(r.functions, 1);
    cr_assert_eq(r.spill_stores, 4);
    cr_assert_eq(r.spill_loads, 8);
    cr_assert_eq(r.max_registers, 255);

    /* a log without ptxas (warnings only) has no report */
    r = cg_ptxas_parse("k.cu(3): warning #177-D: variable \"x\" was declared but never "
                       "referenced\n");
    cr_assert_eq(r.functions, 0);
    cr_assert_eq(r.spill_stores, -1);
}
