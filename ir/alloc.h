/* The compiler's allocations: ir_xmalloc and its kin never return NULL. When memory runs
 * out they print the one line
 *
 *     aotgrad: out of memory
 *
 * to stderr and exit with status 1. A zero size asks for one byte, so that NULL from the
 * allocator always means failure. For ir/, passes/, codegen/ and frontend/; the runtime
 * library (runtime/) reports its own failures, with rt_fail. */
#ifndef AG_IR_ALLOC_H
#define AG_IR_ALLOC_H

#include <stddef.h>

/* Prints that line and exits: for an allocation made some other way (open_memstream, a
 * library's own allocator) that has failed. */
_Noreturn void ir_out_of_memory(void);

void *ir_xmalloc(size_t n);
void *ir_xcalloc(size_t count, size_t size); /* zeroed */
void *ir_xrealloc(void *p, size_t n);
char *ir_xstrdup(const char *s);

#endif
