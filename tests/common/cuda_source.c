#include "cuda_source.h"

#include <stdio.h>
#include <stdlib.h>

char *cuda_source(const cg_program *p, cg_cuda_plan *plan, char *err, size_t len)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) {
        snprintf(err, len, "out of memory");
        return NULL;
    }
    bool ok = cg_cuda_render(f, p, plan, err, len);
    if (fclose(f) != 0 && ok) {
        snprintf(err, len, "out of memory");
        cg_cuda_plan_free(plan);
        ok = false;
    }
    if (!ok) {
        free(text);
        return NULL;
    }
    return text;
}
