/*
 * test_poller: the page cap of one enumeration (poller__page_cap). Twice the
 * pages the API's own count needs plus 10, at most POLLER_MAX_PAGES; no cap
 * from a missing count or from one below the records already listed (a
 * per-page count, not a total).
 */
#include <stdio.h>

#include "poll_int.h"
#include "util.h"
#include "testlib.h"

static void test_page_cap(void)
{
    static const struct {
        double total;
        size_t listed;
        unsigned page_size;
        unsigned want;
    } cases[] = {
        {100, 0, 10, 30},     /* 10 pages needed: 2*10 + 10 */
        {101, 50, 10, 32},    /* a partial last page counts: ceil(10.1) = 11 */
        {100, 100, 100, 12},  /* the count reached exactly: still a total */
        {0, 0, 100, 10},      /* an empty listing: only the slack */
        {5, 40, 100, POLLER_MAX_PAGES},  /* below what was listed: not a total */
        {-1, 0, 100, POLLER_MAX_PAGES},  /* no count in the responses */
        {1e12, 0, 1, POLLER_MAX_PAGES},  /* huge: clamped */
        {49995, 0, 1, POLLER_MAX_PAGES}, /* 2*49995 + 10 is the limit itself */
        {49994, 0, 1, 99998},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        unsigned got = poller__page_cap(cases[i].total, cases[i].listed, cases[i].page_size);
        if (got != cases[i].want) {
            fprintf(stderr, "case %zu: total %.0f listed %zu page_size %u\n", i, cases[i].total,
                    cases[i].listed, cases[i].page_size);
        }
        CHECK_INT((int)got, (int)cases[i].want);
    }
}

int main(void)
{
    test_page_cap();
    return test_done("poller");
}
