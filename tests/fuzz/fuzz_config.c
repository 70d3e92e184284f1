/*
 * fuzz_config: libFuzzer harness for the INI configuration loader (and, with
 * the shipped catalog, config_resolve). The input is written to a private
 * temporary file because the loader reads files (it needs the line reader
 * that feeds inih). Every input must be either loaded or rejected with
 * messages; nothing may crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "catalog.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "registry.h"

static struct catalog *catalog;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    struct ini_errors errs = {0};
    catalog_load(SOURCE_ROOT, &config_reserved_keys, &catalog, &errs);
    ini_errors_free(&errs);
    snprintf(path, sizeof(path), "/tmp/pollen-fuzz-config-%d.ini", (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        return 0;
    }
    fwrite(data, 1, size, f);
    fclose(f);
    struct config *cfg = NULL;
    struct ini_errors errs = {0};
    if (config_load(path, CONFIG_SKIP_SECRETS, sink_rule_kinds(), &cfg, &errs) == 0 &&
        catalog != NULL) {
        config_resolve(cfg, catalog, &errs);
    }
    config_free(cfg);
    ini_errors_free(&errs);
    log_clear_secrets();
    json_scratch_release();
    return 0;
}
