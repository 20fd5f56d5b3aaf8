/* `aotgrad build --dump-dir DIR` (in the manner of XLA's --xla_dump_to): every stage of a
 * build as a file of its own in DIR, and index.txt listing them in order with what each is. */
#ifndef AG_FRONTEND_DUMP_H
#define AG_FRONTEND_DUMP_H

#include <stdbool.h>
#include <stdio.h>

#include "ir.h"

typedef struct fe_dump fe_dump;

/* DIR made where it is not (its parent must be); NULL with a message on failure. */
fe_dump *fe_dump_open(const char *dir, char *err, size_t len);
/* The prefix of the stages that follow: "train" or "eval". */
void fe_dump_pipeline(fe_dump *d, const char *pipeline);
/* A pass_dump callback (ctx: the fe_dump): the graph after `pass` as PIPELINE.NN.PASS.ir,
 * and as Graphviz in PIPELINE.NN.PASS.dot. */
void fe_dump_stage(void *ctx, const char *pass, const ir_graph *g);
/* A graph as NAME.ir and NAME.dot, said in the index to be `what`. */
void fe_dump_graph(fe_dump *d, const char *name, const char *what, const ir_graph *g);
/* DIR/FILE opened to write, said in the index to be `what`; NULL after a failure (which
 * fe_dump_close reports). Close with fe_dump_end. */
FILE *fe_dump_begin(fe_dump *d, const char *file, const char *what);
void fe_dump_end(fe_dump *d, FILE *f);
/* DIR/FILE for a writer that takes a path, said in the index to be `what` (the buffer is the
 * dump's, valid until the next call). */
const char *fe_dump_path(fe_dump *d, const char *file, const char *what);
/* A line of the index for a stage not written, and why. */
void fe_dump_note(fe_dump *d, const char *file, const char *why);
/* Writes index.txt and frees d; false with the first failure's message. */
bool fe_dump_close(fe_dump *d, char *err, size_t len);

#endif
