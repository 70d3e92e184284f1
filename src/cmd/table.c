/*
 * table: see table.h.
 */
#include "table.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void table_row(struct table *t, ...)
{
    t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*t->cells));
    va_list ap;
    va_start(ap, t);
    for (size_t c = 0; c < t->ncols; c++) {
        const char *cell = va_arg(ap, const char *);
        t->cells[t->nrows * t->ncols + c] = xstrdup(cell != NULL ? cell : "-");
    }
    va_end(ap);
    t->nrows++;
}

void table_print(struct table *t, int indent, FILE *out)
{
    size_t width[TABLE_MAX_COLS] = {0};
    for (size_t i = 0; i < t->nrows * t->ncols; i++) {
        size_t len = strlen(t->cells[i]);
        if (len > width[i % t->ncols]) {
            width[i % t->ncols] = len;
        }
    }
    for (size_t r = 0; r < t->nrows; r++) {
        fprintf(out, "%*s", indent, "");
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            if (c + 1 < t->ncols) {
                fprintf(out, "%-*s  ", (int)width[c], cell);
            } else {
                fprintf(out, "%s\n", cell);
            }
        }
    }
    table_free(t);
}

void table_free(struct table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    *t = (struct table){.ncols = t->ncols};
}
