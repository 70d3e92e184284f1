/*
 * fuzz_records: libFuzzer harness for the response-to-records path: the
 * exact-length JSON parse of an API body (no NUL terminator: the buffer is
 * exactly the input), the records lookup, and for every record the canonical
 * hash and the field-level diff against the previous record, plus the
 * snapshot value codec. This is what the engine does with bytes from the
 * network.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "diff.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_record(const cJSON *prev, const cJSON *rec)
{
    static char *const ignore[] = {"searchAfter", "dateUpdated", NULL};
    static char *const fields[] = {"email", "tags", "firstName", NULL};
    struct hash128 h;
    diff_record_hash(rec, NULL, NULL, &h);
    diff_record_hash(rec, fields, ignore, &h);
    if (prev != NULL) {
        cJSON *changes = diff_changes(prev, rec, NULL, ignore);
        cJSON_Delete(changes);
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
    if (cJSON_IsString(id)) {
        diff_valid_record_id(id->valuestring);
    }
    char *json = cJSON_PrintUnformatted(rec);
    if (json != NULL) {
        struct snap_entry e = {.hash = h, .version = 1, .json = json, .json_len = strlen(json)};
        struct buf b;
        buf_init(&b, 1u << 26);
        if (diff_snap_encode(&e, &b) == 0) {
            struct snap_entry back;
            diff_snap_decode(b.data, b.len, &back);
        }
        buf_finish(&b);
        free(json);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: the parser must not read past it. */
    char *copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(copy, data, size);
    }
    cJSON *root = NULL;
    if (json_parse(copy, size, &root, NULL) == 0) {
        static const char *const paths[] = {"contacts", "tasks", "notes", "events", "contact", ""};
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
            const cJSON *records = json_get_path(root, paths[i]);
            const cJSON *prev = NULL;
            const cJSON *rec;
            if (cJSON_IsArray(records)) {
                cJSON_ArrayForEach(rec, records)
                {
                    one_record(prev, rec);
                    prev = rec;
                }
            } else if (cJSON_IsObject(records)) {
                one_record(NULL, records);
            }
        }
        char *canon = json_print_canonical(root);
        free(canon);
        cJSON_Delete(root);
    }
    free(copy);
    json_scratch_release();
    return 0;
}
