/* The main of a rendered program run on the CPU (tests/common/cuda_host.c writes the rest):
 * include after host_shim.h and the generated source (it needs ag_dev_args), then
 *
 *     static const ag_host_step steps[] = {{"name", name, blocks, threads}, ...};
 *     int main(int argc, char **argv) { return ag_host_main(argc, argv, steps, nsteps, scratch_bytes); }
 *
 * Usage: prog DIR N SEED STEP NINPUTS NOUTPUTS. The memory is in DIR: arena.bin, params.bin,
 * in0.bin.., out0.bin..; each is read into its own allocation of the file's size (none for
 * an empty one), the steps are launched in order, and every file is written back. */
#ifndef AG_TESTS_CUDA_HOST_MAIN_H
#define AG_TESTS_CUDA_HOST_MAIN_H

struct ag_host_step {
    const char *name;
    void (*kernel)(ag_dev_args);
    unsigned blocks, threads;
};

struct ag_host_region {
    char path[4096];
    char *data;
    size_t bytes;
};

static bool ag_host_load(ag_host_region *r, const char *dir, const char *name)
{
    snprintf(r->path, sizeof r->path, "%s/%s", dir, name);
    FILE *f = fopen(r->path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0) {
        fprintf(stderr, "host_main: cannot read %s\n", r->path);
        return false;
    }
    long n = ftell(f);
    rewind(f);
    r->bytes = n > 0 ? (size_t)n : 0;
    r->data = nullptr;
    /* CUDA's allocations are 256-byte aligned; ASan still knows the exact size */
    if (r->bytes &&
        (posix_memalign((void **)&r->data, 256, r->bytes) != 0 || fread(r->data, 1, r->bytes, f) != r->bytes)) {
        fprintf(stderr, "host_main: cannot read %s\n", r->path);
        fclose(f);
        return false;
    }
    fclose(f);
    return true;
}

static bool ag_host_store(const ag_host_region *r)
{
    FILE *f = fopen(r->path, "wb");
    bool ok = f && (r->bytes == 0 || fwrite(r->data, 1, r->bytes, f) == r->bytes);
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "host_main: cannot write %s\n", r->path);
    return ok;
}

static int ag_host_main(int argc, char **argv, const ag_host_step *steps, int nsteps, size_t scratch_bytes)
{
    enum { max_tensors = (int)(sizeof(((ag_dev_args *)0)->inputs) / sizeof(char *)) };
    if (argc != 7) {
        fprintf(stderr, "usage: %s DIR N SEED STEP NINPUTS NOUTPUTS\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int nin = atoi(argv[5]), nout = atoi(argv[6]);
    if (nin < 0 || nin > max_tensors || nout < 0 || nout > max_tensors) {
        fprintf(stderr, "host_main: %d inputs and %d outputs, at most %d each\n", nin, nout, (int)max_tensors);
        return 2;
    }
    static ag_host_region r[2 + 2 * max_tensors];
    int nr = 0;
    char name[64];
    bool ok = ag_host_load(&r[nr++], dir, "arena.bin") && ag_host_load(&r[nr++], dir, "params.bin");
    for (int i = 0; ok && i < nin; i++) {
        snprintf(name, sizeof name, "in%d.bin", i);
        ok = ag_host_load(&r[nr++], dir, name);
    }
    for (int i = 0; ok && i < nout; i++) {
        snprintf(name, sizeof name, "out%d.bin", i);
        ok = ag_host_load(&r[nr++], dir, name);
    }
    if (!ok)
        return 2;
    ag_dev_args a;
    memset((void *)&a, 0, sizeof a);
    a.arena = r[0].data;
    a.params = r[1].data;
    for (int i = 0; i < nin; i++)
        a.inputs[i] = r[2 + i].data;
    for (int i = 0; i < nout; i++)
        a.outputs[i] = r[2 + nin + i].data;
    a.N = strtoll(argv[2], nullptr, 10);
    a.seed = (unsigned int)strtoul(argv[3], nullptr, 10);
    a.step = strtoull(argv[4], nullptr, 10);
    if (scratch_bytes) { /* split-K matmuls' partials and counters, zero as the runtime's */
        if (posix_memalign((void **)&a.scratch, 256, scratch_bytes) != 0) {
            fprintf(stderr, "host_main: out of memory for %zu bytes of scratch\n", scratch_bytes);
            return 2;
        }
        memset(a.scratch, 0, scratch_bytes);
    }
    for (int s = 0; s < nsteps; s++)
        ag_host_launch(steps[s].name, steps[s].kernel, steps[s].blocks, steps[s].threads, a);
    free(a.scratch);
    for (int i = 0; i < nr; i++) {
        ok = ag_host_store(&r[i]) && ok;
        free(r[i].data);
    }
    ag_host_release();
    return ok ? 0 : 2;
}

#endif
