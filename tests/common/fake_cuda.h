/* Building tests/cuda/fake_libcuda.cpp, the stand-in for the CUDA driver that runs generated
 * CUDA C on the CPU, and its "modules" (Criterion tests: failures are assertions). Both are
 * compiled by g++ with $AOTGRAD_LINK_FLAGS, the sanitizers of the test build. */
#ifndef AG_TESTS_FAKE_CUDA_H
#define AG_TESTS_FAKE_CUDA_H

/* The fake driver as so_path (point AOTGRAD_LIBCUDA there). */
void fake_cuda_driver(const char *so_path);

/* A test's folder: mkdtemp(dir_template) with the fake driver in it as libcuda_fake.so; and
 * its removal (a suite's .init and .fini). */
void fake_cuda_dir(char *dir_template);
void fake_cuda_dir_remove(const char *dir);

/* The fake's module for the CUDA source at cu_path (point AOTGRAD_FAKE_KERNELS there): the
 * source compiled with the host shim into so_path, exporting fake_kernel and fake_pack
 * with a launcher for every ag_dev_args kernel of the source and, when the source has them
 * (cg_cuda_render_support), the runtime's ag_gather and ag_step_end. The launchers' C++ is
 * written beside it, as so_path + ".cpp". */
void fake_cuda_kernels(const char *cu_path, const char *so_path);

#endif
