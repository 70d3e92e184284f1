/*
 * main: process entry. Everything else lives in cli.c.
 */
#include "cli.h"

#include <stdlib.h> /* any libc header: it defines __GLIBC__ under glibc */

#if defined(__GLIBC__)
#include <malloc.h>
#endif

int main(int argc, char **argv)
{
#if defined(__GLIBC__)
    /* Pin glibc's mmap threshold at its documented default (128 KiB). Left
     * dynamic, freeing the first large mmapped block (a response body grown
     * to the 16 MiB cap) raises the threshold to that block's size and the
     * trim threshold to twice it, so every later body up to 16 MiB is carved
     * from the heap and stays resident after free: a long-running engine
     * kept +16 MiB RSS for good after two oversized responses (issue #6,
     * tests/integration/test_faults.py test_memory_*). Setting the value
     * disables that adjustment (mallopt(3)): blocks of 128 KiB and more are
     * mmapped, grow by mremap without copying, and go back to the kernel on
     * free. Pages of a poll do not pay that mmap/munmap each: the HTTP
     * client reuses their buffer (http.c, BODY_KEEP). A failure (another allocator, e.g. a sanitizer's,
     * which ignores it) only leaves the default behaviour. */
    (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
    return cli_main(argc, argv);
}
