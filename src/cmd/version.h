/*
 * version: what `pollen --version` prints: the version, the build's
 * features and the versions of the libraries it runs with.
 *
 * Owns: nothing.
 * Invariants: the first line stays `pollen VERSION` (scripts read it); each
 * later line is `NAME VALUE`, NAME one word, so a bug report can quote it
 * and a script can split it.
 * Thread context: any (reads constants and library version calls).
 */
#ifndef POLLEN_VERSION_H
#define POLLEN_VERSION_H

#include <stdio.h>

/* Writes the version report to out (the caller checks for write errors). */
void version_print(FILE *out);

#endif
