#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void ir_out_of_memory(void)
{
    fprintf(stderr, "aotgrad: out of memory\n");
    exit(1);
}

void *ir_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        ir_out_of_memory();
    return p;
}

void *ir_xcalloc(size_t count, size_t size)
{
    void *p = count && size ? calloc(count, size) : calloc(1, 1);
    if (!p)
        ir_out_of_memory();
    return p;
}

void *ir_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        ir_out_of_memory();
    return q;
}

char *ir_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(ir_xmalloc(n), s, n);
}
