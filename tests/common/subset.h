/* Small Fashion-MNIST datasets for tests. */
#ifndef AG_TESTS_SUBSET_H
#define AG_TESTS_SUBSET_H

#include <stdint.h>

/* Writes the first n samples of Fashion-MNIST's training set as IDX files (gzipped) under
 * dir, as both its training and its test set. */
void write_subset(const char *dir, int64_t n);

/* The same in a new folder parent/data. */
void write_subset_dir(const char *parent, int64_t n);

#endif
