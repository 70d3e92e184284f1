/*
 * table: the aligned text tables of the CLI (`pollen catalog`, `dlq list`,
 * `outbox list`): rows of strings printed with each column as wide as its
 * widest cell, so values of any length stay aligned.
 *
 * Owns: its cells (copies), until table_print frees them.
 * Invariants: every row has ncols cells (at most TABLE_MAX_COLS); the last
 * column is never padded, so no line ends in spaces.
 * Thread context: the CLI's main thread.
 */
#ifndef POLLEN_TABLE_H
#define POLLEN_TABLE_H

#include <stddef.h>
#include <stdio.h>

enum { TABLE_MAX_COLS = 8 };

struct table {
    size_t ncols;
    char **cells; /* nrows * ncols, row after row; owned */
    size_t nrows;
};

/* Adds a row of t->ncols cells, each a const char * (copied; NULL prints as "-"). */
void table_row(struct table *t, ...);

/* Prints t with indent spaces before each row, then frees its cells (t can
 * take new rows). */
void table_print(struct table *t, int indent, FILE *out);

/* Frees t's cells without printing them. */
void table_free(struct table *t);

#endif
