/* Checkpoints in the safetensors format (github.com/huggingface/safetensors), so that the
 * Python tools read what a generated binary trains, and the other way round:
 *
 *     u64 N (little-endian) | N bytes of JSON header | the byte buffer
 *
 * The header is {"__metadata__": {string: string, ...}, "W1": {"dtype": "F32",
 * "shape": [784, 256], "data_offsets": [begin, end]}, ...}, offsets relative to the buffer,
 * padded with spaces to a multiple of 8 bytes. We write tensors tightly packed in the order
 * given; we read any valid file holding our dtypes (F32, I32, U8, BOOL, F64). Values are
 * copied in the host's byte order, which the format requires to be little-endian.
 *
 * Every function that can fail returns false with a message in err that names the file and,
 * for a malformed file, the byte offset in it and what was expected there.
 */
#ifndef AG_RUNTIME_CHECKPOINT_H
#define AG_RUNTIME_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "temp.h" /* the temporaries of atomic writes, and the check of their PATH */
#include "types.h"

#define RT_CKPT_MAX_HEADER 100000000 /* the safetensors library's own limit */

typedef struct rt_ckpt_tensor {
    const char *name;
    ag_dtype dtype; /* F32, I32, U8, BOOL ("F32", "I32", "U8", "BOOL"), F64 ("F64") */
    int rank;       /* 0..4; rank 0 is a scalar */
    int64_t dims[4];
    const void *data; /* saving: the row-major values; loading: inside the checkpoint's blob,
                         aligned only as the file's offsets are, so copy it out (read_into) */
} rt_ckpt_tensor;

typedef struct rt_ckpt_meta {
    const char *key, *value;
} rt_ckpt_meta;

/* Write atomically: PATH.tmp.<pid>, fwrite, fflush, fsync, rename over PATH, fsync the folder.
 * On a failure before the rename the temporary file is removed, PATH is left as it was, and
 * the message is "PATH: cannot write: <strerror>". Bad arguments (rank over 4, a negative dim,
 * a duplicate or missing name, a name that is not UTF-8) are refused before anything is
 * written, and so is a PATH that is not a regular file (rt_check_output_path). Should only
 * the folder's fsync fail, the new file is already in place. */
bool rt_ckpt_save(const char *path, const rt_ckpt_tensor *t, int nt, const rt_ckpt_meta *meta, int nmeta, char *err,
                  size_t len);

/* A loaded checkpoint; it owns everything its pointers reach. */
typedef struct rt_ckpt {
    int n; /* tensors, in the header's order */
    rt_ckpt_tensor *t;
    int nmeta; /* metadata entries, in the header's order */
    rt_ckpt_meta *meta;
    void *blob; /* the byte buffer and the names */
} rt_ckpt;

/* Strict: the header length against the file size, the JSON syntax, dtypes, ranks (<= 4),
 * that dims multiply to the byte size of data_offsets, that the offsets are in range and
 * cover the buffer exactly without overlap, unique names, BOOL bytes 0 or 1, UTF-8. No input
 * makes it crash or allocate more than the file's size (plus small per-tensor arrays). On
 * failure *out is zeroed, with nothing to free. */
bool rt_ckpt_load(const char *path, rt_ckpt *out, char *err, size_t len);
void rt_ckpt_free(rt_ckpt *c); /* zeroes *c; a zeroed one is fine */

const rt_ckpt_tensor *rt_ckpt_find(const rt_ckpt *c, const char *name); /* or NULL */
const char *rt_ckpt_meta_get(const rt_ckpt *c, const char *key);        /* or NULL */

/* Copy tensor `name` into dst after checking that it exists with this dtype and shape;
 * path only names the file in messages: "PATH: no tensor b2 (the checkpoint has W1, b1, W2)",
 * "PATH: tensor W1 has dtype I32, expected F32",
 * "PATH: tensor W1 has shape [784,128], expected [784,256]". */
bool rt_ckpt_read_into(const rt_ckpt *c, const char *path, const char *name, ag_dtype dtype, int rank,
                       const int64_t *dims, void *dst, char *err, size_t len);

#endif
