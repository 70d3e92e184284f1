/*
 * render: template services for sinks; see sink.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "json.h"
#include "sink.h"
#include "template.h"
#include "util.h"

typedef int (*render_fn)(const struct template *t, const cJSON *event, uint64_t now_wall_ms,
                         cJSON **out, char *err, size_t errlen);

static cJSON *render_with(struct sink_render *r, const struct config_rule_param *p, render_fn fn)
{
    cJSON *out = NULL;
    char err[200];
    if (fn(p->tmpl, r->event, r->now, &out, err, sizeof(err)) != 0) {
        snprintf(r->err, sizeof(r->err), "%s: %s", p->name, err);
        return NULL;
    }
    return out;
}

cJSON *sink_render_param(struct sink_render *r, const struct config_rule_param *p)
{
    return render_with(r, p, template_render);
}

cJSON *sink_render_list_param(struct sink_render *r, const struct config_rule_param *p)
{
    return render_with(r, p, template_render_list);
}

char *sink_value_text(const cJSON *v)
{
    if (cJSON_IsString(v)) {
        return xstrdup(v->valuestring);
    }
    if (cJSON_IsNull(v) || v == NULL) {
        return xstrdup("");
    }
    if (cJSON_IsBool(v)) {
        return xstrdup(cJSON_IsTrue(v) ? "true" : "false");
    }
    return json_print_canonical(v);
}
