/*
 * paths: where the files pollen ships with are, decided at run time.
 *
 * `meson install` puts the catalog (triggers/, actions/, resources/) in
 * DATADIR/pollen, and that absolute path is compiled in (POLLEN_CATALOG_DIR,
 * or meson's -Dcatalog_dir). A binary that was not installed there finds its
 * catalog without any flag, in this order:
 *   1. the build tree: the running executable sits in the meson build
 *      directory it was compiled in (POLLEN_BUILD_ROOT): the catalog is the
 *      source tree (POLLEN_SOURCE_ROOT). This covers meson test, the scripts
 *      and a hand-run build/pollen; an installed copy is never in that
 *      directory, so it never reads the source tree.
 *   2. a relocated install: EXEDIR/POLLEN_CATALOG_RELATIVE (../share/pollen
 *      for the default bindir and datadir) holds triggers/: the whole install
 *      tree was moved (a DESTDIR staging tree, an unpacked tarball).
 *   3. POLLEN_CATALOG_DIR.
 * [engine] catalog in the configuration, and `pollen catalog --catalog DIR`,
 * override all three.
 *
 * Owns: one static buffer with the answer, computed on the first call.
 * Invariants: the answer never changes during the process's life.
 * Thread context: first call on the main thread, before any other thread
 * starts (config loading does it); later calls from any thread.
 */
#ifndef POLLEN_PATHS_H
#define POLLEN_PATHS_H

/* Returns the default catalog directory (an absolute path; static storage,
 * never NULL). */
const char *paths_catalog_dir(void);

#endif
