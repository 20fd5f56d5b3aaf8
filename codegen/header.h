/* The C header generated beside an object file (aotgrad build --emit h). */
#ifndef AG_CODEGEN_HEADER_H
#define AG_CODEGEN_HEADER_H

#include <stdbool.h>
#include <stdio.h>

#include "kernel.h"

/* Writes the header for the programs of a model's train step and forward pass (both
 * lowered from the graphs given beside them), built from source; train and step NULL for a
 * graph without training (forward alone). */
bool cg_write_header(FILE *f, const char *source, const cg_program *train, const ir_graph *step,
                     const cg_program *forward, const ir_graph *eval);
/* s as a C string literal (NULL as NULL), for the generated sources */
void cg_c_literal(FILE *f, const char *s);

#endif
