/*
 * Unit tests for queues.c's cell text: an error becomes one line (every
 * whitespace run one space, none at the ends), and a long one is cut to
 * the cell with "..." at a UTF-8 character boundary, never inside one.
 */
#include <string.h>

#include "queues.h"
#include "testlib.h"

static const struct {
    const char *in;
    size_t cell; /* the buffer, with its NUL */
    const char *want;
} cases[] = {
    {"HTTP 400: bad", 20, "HTTP 400: bad"},
    {"  exit 3:\n  line one\r\n\tline two\n", 40, "exit 3: line one line two"},
    {"", 10, ""},
    {"   \n", 10, ""},
    {"0123456789", 11, "0123456789"},        /* fits exactly */
    {"0123456789A", 11, "0123456..."},        /* one byte too long */
    {"abc\xc3\xa9\xc3\xa9\xc3\xa9xyz", 10, "abc\xc3\xa9..."}, /* é is 2 bytes: no half */
    {"ab\xc3\xa9\xc3\xa9\xc3\xa9xyz", 10, "ab\xc3\xa9\xc3\xa9..."},
    {"a\xc3\xa9\xc3\xa9\xc3\xa9xyz", 10, "a\xc3\xa9\xc3\xa9..."}, /* cut inside the third é */
    {"a   b   c   d   e   f", 8, "a b ..."},
};

int main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[64];
        memset(out, 'Z', sizeof(out));
        CHECK(queues_shorten(cases[i].in, out, cases[i].cell) == out);
        CHECK_STR(out, cases[i].want);
        CHECK(strlen(out) < cases[i].cell);
    }
    char out[8];
    CHECK_STR(queues_shorten(NULL, out, sizeof(out)), "");
    return test_done("queues");
}
