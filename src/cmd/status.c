/*
 * status: see status.h.
 */
#include "status.h"

#include <stdlib.h>

#include "config.h"
#include "json.h"
#include "status_report.h"
#include "store.h"

int status_run(const struct config *cfg, bool json, FILE *out)
{
    struct store *s = NULL;
    if (store_exists(cfg->state_dir)) {
        struct store_options so = {.readonly = true, .max_size = cfg->max_db_size};
        int rc = store_open(cfg->state_dir, &so, &s);
        if (rc != 0) {
            fprintf(stderr, "pollen status: cannot open %s: %s\n", cfg->state_dir,
                    store_strerror(rc));
            return 1;
        }
    }
    struct status_report r;
    char started[48];
    long pid = status_engine_pid(cfg->state_dir, started, sizeof(started));
    int rc = status_collect(cfg, s, pid, &r);
    snprintf(r.engine_started, sizeof(r.engine_started), "%s", started);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "pollen status: cannot read %s: %s\n", cfg->state_dir, store_strerror(rc));
        status_report_free(&r);
        return 1;
    }
    if (json) {
        cJSON *o = status_to_json(&r);
        char *text = cJSON_PrintUnformatted(o);
        fprintf(out, "%s\n", text);
        free(text);
        cJSON_Delete(o);
    } else {
        status_print_text(&r, out);
    }
    int code = r.failing ? 1 : 0;
    status_report_free(&r);
    return code;
}
