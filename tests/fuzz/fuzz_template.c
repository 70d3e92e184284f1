/*
 * fuzz_template: libFuzzer harness for the rule template renderer (value,
 * text, URL and list forms) and the `when` condition parser. The input is
 * split at the first NUL byte: the part before is the template (and the
 * condition), the part after is an event JSON to render and evaluate against.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "condition.h"
#include "json.h"
#include "template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    char *text = malloc(tlen + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, tlen);
    text[tlen] = '\0';
    cJSON *event = NULL;
    if (nul != NULL) {
        json_parse((const char *)nul + 1, size - tlen - 1, &event, NULL);
    }
    char err[256];
    struct template *t = NULL;
    if (template_parse(text, &t, err, sizeof(err)) == 0) {
        cJSON *out = NULL;
        if (template_render(t, event, 1795723884562ULL, &out, err, sizeof(err)) == 0) {
            char *printed = cJSON_PrintUnformatted(out);
            free(printed);
            cJSON_Delete(out);
        }
        char *txt = NULL;
        if (template_render_text(t, event, 0, &txt, err, sizeof(err)) == 0) {
            free(txt);
        }
        if (template_render_url(t, event, 0, &txt, err, sizeof(err)) == 0) {
            free(txt);
        }
        if (template_render_list(t, event, 0, &out, err, sizeof(err)) == 0) {
            cJSON_Delete(out);
        }
        template_free(t);
    }
    struct condition *c = NULL;
    if (condition_parse(text, &c, err, sizeof(err)) == 0) {
        condition_eval(c, event);
        condition_free(c);
    }
    cJSON_Delete(event);
    free(text);
    json_scratch_release();
    return 0;
}
