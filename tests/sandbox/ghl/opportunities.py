"""Opportunities and pipelines (apps/opportunities.json; docs catalog-map §1.2, §2.2, §4.2).

* GET /opportunities/search: `location_id` (snake_case) is required; `limit` 1..100 (default 20); the
  cursor is exactly the one of GET /contacts/: records ordered by (createdAt, id), `startAfter` = the
  createdAt epoch ms of the last record and `startAfterId` its id, `nextPage`/`nextPageUrl` null on
  the last page.  Without `status` the search returns only the statuses of the config key
  `opportunities_default_status` (default "open", an ASSUMPTION: the live default is undocumented),
  which is what binding `status=all` protects a poller against.
* POST /opportunities/search: `limit` 1..500, `page` or a non-empty `searchAfter` (not both),
  `filters` [{field, operator eq|not_eq|range, value}] on status, pipeline_id, pipeline_stage_id,
  assigned_to, contact_id, date_added, date_updated; `sort` [{field, direction}] on date_added,
  date_updated, monetary_value (default date_added asc, id asc last); each item carries `searchAfter`.
* Writes bump `updatedAt` strictly; a status change sets `lastStatusChangeAt`, a stage change
  `lastStageChangeAt`.  Deletes are hard; GET by id then answers --deleted-status.
* One open opportunity per (contact, pipeline) unless `opportunities_allow_duplicates` is set: a
  create breaking it gives 400, and upsert without `id` updates that opportunity.
"""

from urllib.parse import quote, urlencode

from . import resources, util
from .api import (Route, body_object, check_unknown, cursor_meta, followers_added, followers_removed, int_param,
                  normalize_id_list, not_found, start_after_cursor)
from .resources import Entry, bump, changed_fields, log
from .util import ApiError, iso, is_id, now_ms

READ, WRITE = "opportunities.readonly", "opportunities.write"
STATUSES = ("open", "won", "lost", "abandoned")
STATUS_ENUM = STATUSES + ("all",)
KIND = "opportunity"
SOURCES = ["website", "referral", "facebook ads", "walk-in", "cold call"]
NAMES = ["Website redesign", "Annual plan", "Starter package", "Consultation", "Premium upgrade", "Renewal"]


# --- records ---------------------------------------------------------------------------------------

def state(ctx_or_store, loc):
    store = ctx_or_store.app.store if hasattr(ctx_or_store, "app") else ctx_or_store
    return resources.ext(store, loc)


def contact_summary(loc, contact_id):
    """The denormalised `contact` of an opportunity, as it was at the opportunity's last write."""
    entry = loc.contacts.get(contact_id)
    if entry is None:
        return {"id": contact_id}
    c = entry.rec
    out = {"id": contact_id}
    for k in ("name", "companyName", "email", "phone"):
        if c.get(k):
            out[k] = c[k]
    out["tags"] = list(c.get("tags", []))
    return out


def opportunity_record(loc, oid, f, created_ms, updated_ms, status_ms, stage_ms):
    rec = {"id": oid, "name": f.get("name", ""), "monetaryValue": f.get("monetaryValue", 0),
           "pipelineId": f["pipelineId"], "pipelineStageId": f["pipelineStageId"]}
    if f.get("assignedTo"):
        rec["assignedTo"] = f["assignedTo"]
    rec["status"] = f.get("status", "open")
    rec["source"] = f.get("source", "")
    rec["lastStatusChangeAt"] = iso(status_ms)
    rec["lastStageChangeAt"] = iso(stage_ms)
    rec["lastActionDate"] = iso(updated_ms)
    rec["createdAt"] = iso(created_ms)
    rec["updatedAt"] = iso(updated_ms)
    rec["contactId"] = f["contactId"]
    rec["locationId"] = loc.id
    rec["contact"] = contact_summary(loc, f["contactId"])
    if f.get("lostReasonId"):
        rec["lostReasonId"] = f["lostReasonId"]
    rec["customFields"] = list(f.get("customFields") or [])
    rec["followers"] = list(f.get("followers") or [])
    return rec


def first_stage(pipeline):
    return pipeline.rec["stages"][0]["id"]


def find_open_duplicate(store, loc, contact_id, pipeline_id, self_id=None):
    for oid, e in state(store, loc)["opportunities"].items():
        r = e.rec
        if oid != self_id and r["contactId"] == contact_id and r["pipelineId"] == pipeline_id and \
                r["status"] == "open":
            return e
    return None


def create(store, loc, f, source, check_dup=True, t=None):
    """Create from normalized fields (pipelineId, pipelineStageId, contactId, name, status, ...)."""
    st = state(store, loc)
    if check_dup and f.get("status", "open") == "open" and not store.config.get("opportunities_allow_duplicates"):
        dup = find_open_duplicate(store, loc, f["contactId"], f["pipelineId"])
        if dup is not None:
            raise ApiError(400, "Can not create duplicate opportunity for the contact.",
                           {"meta": {"opportunityId": dup.rec["id"]}})
    oid = store._new_id()
    t = now_ms() if t is None else t
    rec = opportunity_record(loc, oid, f, t, t, t, t)
    st["opportunities"][oid] = Entry(rec, t)
    return rec, log(store, loc, KIND, "created", oid, sorted(rec), rec, source, t)


def update(store, loc, entry, patch, source):
    """Apply a normalized patch; no-op writes change and log nothing.  Returns the changes."""
    old = entry.rec
    f = dict(old)
    f.update(patch)
    if patch.get("pipelineId") and patch["pipelineId"] != old["pipelineId"] and "pipelineStageId" not in patch:
        f["pipelineStageId"] = first_stage(state(store, loc)["pipelines"][patch["pipelineId"]])
    status_ms = util.parse_iso(old["lastStatusChangeAt"])
    stage_ms = util.parse_iso(old["lastStageChangeAt"])
    same = opportunity_record(loc, old["id"], f, entry.created_ms, entry.updated_ms, status_ms, stage_ms)
    same["contact"] = old["contact"]
    if same == old:
        return []
    t = bump(entry)
    if f["status"] != old["status"]:
        status_ms = t
    if f["pipelineStageId"] != old["pipelineStageId"]:
        stage_ms = t
    new = opportunity_record(loc, old["id"], f, entry.created_ms, t, status_ms, stage_ms)
    entry.rec, entry.updated_ms = new, t
    return log(store, loc, KIND, "updated", old["id"], changed_fields(old, new), new, source, t)


def delete(store, loc, entry, source):
    del state(store, loc)["opportunities"][entry.rec["id"]]
    entry.deleted = True
    return log(store, loc, KIND, "deleted", entry.rec["id"], [], entry.rec, source)


# --- validation ------------------------------------------------------------------------------------

def _pipeline(ctx, loc, pipeline_id):
    if not isinstance(pipeline_id, str) or not pipeline_id:
        raise ApiError(422, ["pipelineId must be a string"])
    p = state(ctx, loc)["pipelines"].get(pipeline_id)
    if p is None:
        raise ApiError(400, "Pipeline not found")
    return p


def _stage(pipeline, stage_id):
    if not any(s["id"] == stage_id for s in pipeline.rec["stages"]):
        raise ApiError(400, "Pipeline stage %s does not belong to pipeline %s" % (stage_id, pipeline.rec["id"]))
    return stage_id


def _status(value, allow_all=False):
    if value not in (STATUS_ENUM if allow_all else STATUSES):
        raise ApiError(422, ["status must be one of the following values: %s"
                             % ", ".join(STATUS_ENUM if allow_all else STATUSES)])
    return value


def _custom_fields(value):
    if not isinstance(value, list):
        raise ApiError(422, ["customFields must be an array"])
    out = []
    for i, cf in enumerate(value):
        if not isinstance(cf, dict) or not (cf.get("id") or cf.get("key")):
            raise ApiError(422, ["customFields.%d.id or key should not be empty" % i])
        out.append({"id": cf.get("id") or cf.get("key"), "fieldValue": cf.get("field_value", cf.get("value", ""))})
    return out


def opportunity_patch(ctx, loc, body, current=None):
    """Validate Create/Update/UpsertOpportunityDto fields -> normalized patch."""
    patch = {}
    errors = []
    for k in ("name", "assignedTo", "lostReasonId", "source"):
        if k in body:
            if not isinstance(body[k], str):
                errors.append("%s must be a string" % k)
            patch[k] = body[k]
    if "monetaryValue" in body:
        v = body["monetaryValue"]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            errors.append("monetaryValue must be a number conforming to the specified constraints")
        patch["monetaryValue"] = v
    if "status" in body:
        try:
            patch["status"] = _status(body["status"])
        except ApiError as e:
            errors.extend(e.message)
    if "customFields" in body:
        try:
            patch["customFields"] = _custom_fields(body["customFields"])
        except ApiError as e:
            errors.extend(e.message)
    if errors:
        raise ApiError(422, errors)
    pipeline_id = body.get("pipelineId") or (current or {}).get("pipelineId")
    if "pipelineId" in body or "pipelineStageId" in body:
        pipeline = _pipeline(ctx, loc, pipeline_id)
        patch["pipelineId"] = pipeline_id
        if body.get("pipelineStageId"):
            patch["pipelineStageId"] = _stage(pipeline, body["pipelineStageId"])
        elif current is None or current.get("pipelineId") != pipeline_id:
            patch["pipelineStageId"] = first_stage(pipeline)
    if "contactId" in body:
        cid = body["contactId"]
        if not is_id(cid) or loc.live(cid) is None:
            raise ApiError(400, "Contact not found")
        patch["contactId"] = cid
    if "customFields" in patch and current is not None:
        merged = {cf["id"]: cf for cf in current.get("customFields", [])}
        merged.update({cf["id"]: cf for cf in patch["customFields"]})
        patch["customFields"] = [cf for cf in merged.values() if cf["fieldValue"] not in (None, "")]
    return patch


def opp_entry(ctx):
    oid = ctx.params["id"]
    if not is_id(oid):
        raise ApiError(400, "Invalid opportunity id: must be a 20-character id")
    store = ctx.app.store
    loc = store.ensure_location(ctx.token.location_id)
    entry = state(ctx, loc)["opportunities"].get(oid)
    if entry is None:
        for other in list(store.locations.values()):
            if other is not loc and oid in resources.ext(store, other)["opportunities"]:
                raise ApiError(403, "The token does not have access to this location")
        raise not_found(ctx, "Opportunity")
    return loc, entry


def _location(ctx, location_id, where="locationId"):
    return resources.location_for(ctx, location_id, where)


# --- GET /opportunities/search ---------------------------------------------------------------------

def get_first_page(ctx):
    q = ctx.query
    return not (q.get("startAfter") or q.get("startAfterId")) and q.get("page") in (None, "", "1")


def _mmddyyyy(value, name):
    parts = value.split("-") if isinstance(value, str) else []
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        ms = util.parse_iso("%s-%s-%s" % (parts[2], parts[0].zfill(2), parts[1].zfill(2)))
        if ms is not None:
            return ms
    raise ApiError(422, ["%s must be a date formatted mm-dd-yyyy" % name])


def search_get(ctx):
    q = ctx.query
    if q.get("location_id") in (None, ""):
        msgs = ["location_id should not be empty", "location_id must be a string"]
        if q.get("locationId"):
            msgs.insert(0, "property locationId should not exist (use location_id)")
        raise ApiError(422, msgs)
    loc = _location(ctx, q["location_id"], "location_id")
    limit = int_param(q.get("limit"), "limit", 20, 1, 100)
    page = int_param(q.get("page"), "page", 1, 1)
    status = q.get("status") or ctx.app.config.get("opportunities_default_status", "open")
    _status(status, allow_all=True)
    order = q.get("order") or "added_asc"
    if order not in ("added_asc", "added_desc"):
        raise ApiError(422, ["order must be one of the following values: added_asc, added_desc"])
    desc = order == "added_desc"
    preds = []
    if status != "all":
        preds.append(lambda r: r["status"] == status)
    for param, field in (("pipeline_id", "pipelineId"), ("pipeline_stage_id", "pipelineStageId"),
                         ("contact_id", "contactId"), ("assigned_to", "assignedTo"), ("id", "id")):
        if q.get(param):
            preds.append(lambda r, f=field, v=q[param]: r.get(f) == v)
    if q.get("q"):
        needle = q["q"].lower()
        preds.append(lambda r: any(needle in str(x).lower() for x in (
            r.get("name"), r["contact"].get("name"), r["contact"].get("email"), r["contact"].get("phone")) if x))
    lo = _mmddyyyy(q["date"], "date") if q.get("date") else None
    hi = _mmddyyyy(q["endDate"], "endDate") + 86399999 if q.get("endDate") else None
    entries = [e for e in state(ctx, loc)["opportunities"].values()
               if all(p(e.rec) for p in preds) and (lo is None or e.created_ms >= lo)
               and (hi is None or e.created_ms <= hi)]
    keys = sorted(((e.created_ms, e.rec["id"]) for e in entries), reverse=desc)
    by_id = {e.rec["id"]: e for e in entries}
    opps = state(ctx, loc)["opportunities"]
    start_after, start_after_id = start_after_cursor(q, lambda i: opps[i].created_ms if i in opps else None)
    if start_after is not None:   # strictly after (startAfter, startAfterId) in the order asked for
        if desc:
            cursor = (start_after, start_after_id or "")
            pos = sum(1 for k in keys if k >= cursor)
        else:
            cursor = (start_after, start_after_id or "~")
            pos = sum(1 for k in keys if k <= cursor)
    else:
        pos = (page - 1) * limit
    chunk = keys[pos:pos + limit]
    has_more = pos + limit < len(keys)
    meta = cursor_meta(chunk, pos, limit, len(keys))
    if has_more:
        params = {k: v for k, v in q.items() if k not in ("startAfter", "startAfterId", "page")}
        params.update({"startAfter": chunk[-1][0], "startAfterId": chunk[-1][1]})
        meta["nextPageUrl"] = "%s/opportunities/search?%s" % (ctx.base_url, urlencode(params, quote_via=quote))
    return 200, {"opportunities": [by_id[i].rec for _, i in chunk], "meta": meta, "aggregations": {}}


# --- POST /opportunities/search --------------------------------------------------------------------

POST_FIELDS = {"status": "status", "pipeline_id": "pipelineId", "pipeline_stage_id": "pipelineStageId",
               "assigned_to": "assignedTo", "contact_id": "contactId", "id": "id"}
DATE_FIELDS = {"date_added": lambda e: e.created_ms, "date_updated": lambda e: e.updated_ms}
SORT_FIELDS = dict(DATE_FIELDS, monetary_value=lambda e: e.rec.get("monetaryValue") or 0)
MAX_POST_LIMIT, MAX_WINDOW = 500, 10000


def _filter(f):
    if not isinstance(f, dict):
        raise ApiError(422, ["each filter must be an object"])
    field, op, value = f.get("field"), f.get("operator", "eq"), f.get("value")
    if field in POST_FIELDS and op in ("eq", "not_eq"):
        wanted = set(value) if isinstance(value, list) else {value}
        get = POST_FIELDS[field]
        if op == "eq":
            return lambda e: e.rec.get(get) in wanted
        return lambda e: e.rec.get(get) not in wanted
    if field in DATE_FIELDS and op == "range":
        if not isinstance(value, dict) or not value or set(value) - {"gt", "gte", "lt", "lte"}:
            raise ApiError(422, ["value of a range filter must be an object with gt, gte, lt and/or lte"])
        bounds = []
        for k, x in value.items():
            ms = util.to_ms(x)
            if ms is None:
                raise ApiError(422, ["value of %s must be an ISO-8601 date or epoch milliseconds" % field])
            bounds.append((k, ms))
        get = DATE_FIELDS[field]
        return lambda e: all((k == "gt" and get(e) > b) or (k == "gte" and get(e) >= b) or
                             (k == "lt" and get(e) < b) or (k == "lte" and get(e) <= b) for k, b in bounds)
    raise ApiError(422, ["unsupported filter %s %s (fields: %s; eq/not_eq, or range on dates)"
                         % (field, op, ", ".join(list(POST_FIELDS) + list(DATE_FIELDS)))])


def post_first_page(ctx):
    b = ctx.body if isinstance(ctx.body, dict) else {}
    return not b.get("searchAfter") and b.get("page") in (None, 1, "1")


def search_post(ctx):
    body = body_object(ctx)
    check_unknown(ctx, body, {"locationId", "query", "limit", "page", "searchAfter", "additionalDetails",
                              "filters", "sort"})
    loc = _location(ctx, body.get("locationId"))
    limit = int_param(body.get("limit"), "limit", 20, 1, MAX_POST_LIMIT)
    after = body.get("searchAfter") or None
    if after is not None and body.get("page") is not None:
        raise ApiError(422, ["page and searchAfter cannot be used together"])
    page = int_param(body.get("page"), "page", 1, 1)
    if page * limit > MAX_WINDOW:
        raise ApiError(422, ["page * limit must not exceed %d; use searchAfter" % MAX_WINDOW])
    filters = body.get("filters") or []
    if not isinstance(filters, list):
        raise ApiError(422, ["filters must be an array"])
    preds = [_filter(f) for f in filters]
    query = body.get("query") or ""
    if not isinstance(query, str):
        raise ApiError(422, ["query must be a string"])
    if query:
        needle = query.lower()
        preds.append(lambda e: needle in e.rec.get("name", "").lower()
                     or needle in e.rec["contact"].get("name", "").lower())
    sort = body.get("sort") or [{"field": "date_added", "direction": "asc"}]
    if not isinstance(sort, list) or any(not isinstance(s, dict) or s.get("field") not in SORT_FIELDS
                                         or str(s.get("direction", "asc")).lower() not in ("asc", "desc")
                                         for s in sort):
        raise ApiError(422, ["sort must be [{field: %s, direction: asc|desc}]" % "|".join(SORT_FIELDS)])
    signs = [-1 if str(s.get("direction", "asc")).lower() == "desc" else 1 for s in sort]
    getters = [SORT_FIELDS[s["field"]] for s in sort]

    def key(e):
        return tuple(sg * g(e) for sg, g in zip(signs, getters)) + (e.rec["id"],)

    items = sorted((key(e), e) for e in state(ctx, loc)["opportunities"].values() if all(p(e) for p in preds))
    if after is not None:
        if not isinstance(after, list) or len(after) != len(sort) + 1:
            raise ApiError(422, ["searchAfter must be the searchAfter array of the last record of the previous "
                                 "page (%d sort values followed by the id)" % len(sort)])
        try:
            cursor = tuple(sg * float(x) for sg, x in zip(signs, after[:-1])) + (str(after[-1]),)
        except (TypeError, ValueError):
            raise ApiError(422, ["searchAfter sort values must be numbers"])
        pos = sum(1 for k, _ in items if k <= cursor)
    else:
        pos = (page - 1) * limit
    out = []
    for k, e in items[pos:pos + limit]:
        rec = dict(e.rec)
        rec["searchAfter"] = [sg * v for sg, v in zip(signs, k[:-1])] + [k[-1]]
        out.append(rec)
    return 200, {"opportunities": out, "total": len(items), "aggregations": {}}


# --- by id, writes ---------------------------------------------------------------------------------

def get_opportunity(ctx):
    _, entry = opp_entry(ctx)
    return 200, {"opportunity": entry.rec}


CREATE_FIELDS = {"pipelineId", "locationId", "name", "pipelineStageId", "status", "contactId", "monetaryValue",
                 "assignedTo", "customFields"}
UPDATE_FIELDS = CREATE_FIELDS - {"locationId", "contactId"}
UPSERT_FIELDS = {"id", "pipelineId", "locationId", "contactId", "followers", "isRemoveAllFollowers",
                 "followersActionType", "name", "status", "pipelineStageId", "monetaryValue", "assignedTo",
                 "lostReasonId"}


def create_opportunity(ctx):
    body = body_object(ctx)
    check_unknown(ctx, body, CREATE_FIELDS)
    missing = [k for k in ("pipelineId", "locationId", "name", "status", "contactId") if body.get(k) in (None, "")]
    if missing:
        raise ApiError(422, ["%s should not be empty" % k for k in missing])
    loc = _location(ctx, body["locationId"])
    patch = opportunity_patch(ctx, loc, body)
    rec, _ = create(ctx.app.store, loc, patch, ctx.source)
    return 201, {"opportunity": rec}


def update_opportunity(ctx):
    loc, entry = opp_entry(ctx)
    body = body_object(ctx)
    check_unknown(ctx, body, UPDATE_FIELDS)
    patch = opportunity_patch(ctx, loc, body, entry.rec)
    update(ctx.app.store, loc, entry, patch, ctx.source)
    return 200, {"opportunity": entry.rec}


def update_status(ctx):
    loc, entry = opp_entry(ctx)
    body = body_object(ctx)
    check_unknown(ctx, body, {"status", "lostReasonId"})
    if body.get("status") in (None, ""):
        raise ApiError(422, ["status should not be empty"])
    patch = {"status": _status(body["status"])}
    if body.get("lostReasonId"):
        patch["lostReasonId"] = body["lostReasonId"]
    update(ctx.app.store, loc, entry, patch, ctx.source)
    return 200, {"succeded": True}


def delete_opportunity(ctx):
    loc, entry = opp_entry(ctx)
    delete(ctx.app.store, loc, entry, ctx.source)
    return 200, {"succeded": True}


def _followers(current, body):
    """followersActionType add|remove, isRemoveAllFollowers (UpsertOpportunityDto)."""
    wanted = normalize_id_list(body.get("followers", []), "followers")
    if body.get("isRemoveAllFollowers") is True:
        return []
    if body.get("followersActionType", "add") == "remove":
        return [f for f in current if f not in wanted]
    return current + [f for f in wanted if f not in current]


def upsert_opportunity(ctx):
    """UpsertOpportunityDto.  Spec gaps (catalog-map OA5): `contactId` is accepted, and `followers`,
    `isRemoveAllFollowers`, `followersActionType` are optional (defaults [], false, add).  Match: `id`,
    else the open opportunity of (contactId, pipelineId)."""
    body = body_object(ctx)
    check_unknown(ctx, body, UPSERT_FIELDS)
    missing = [k for k in ("pipelineId", "locationId") if body.get(k) in (None, "")]
    if missing:
        raise ApiError(422, ["%s should not be empty" % k for k in missing])
    if body.get("followersActionType", "add") not in ("add", "remove"):
        raise ApiError(422, ["followersActionType must be one of the following values: add, remove"])
    loc = _location(ctx, body["locationId"])
    store = ctx.app.store
    entry = None
    if body.get("id"):
        entry = state(ctx, loc)["opportunities"].get(body["id"])
        if entry is None:
            raise ApiError(400, "Opportunity not found")
    elif body.get("contactId"):
        entry = find_open_duplicate(store, loc, body["contactId"], body["pipelineId"])
    fields = {k: v for k, v in body.items() if k not in ("id", "locationId", "followers", "isRemoveAllFollowers",
                                                         "followersActionType")}
    if entry is not None:
        fields.pop("contactId", None)
        patch = opportunity_patch(ctx, loc, fields, entry.rec)
        patch["followers"] = _followers(entry.rec.get("followers", []), body)
        update(store, loc, entry, patch, ctx.source)
        return 200, {"opportunity": entry.rec, "new": False}
    if not body.get("contactId"):
        raise ApiError(422, ["contactId should not be empty when no opportunity matches"])
    patch = opportunity_patch(ctx, loc, fields)
    patch.setdefault("status", "open")
    patch.setdefault("name", contact_summary(loc, patch["contactId"]).get("name", "Opportunity"))
    patch["followers"] = _followers([], body)
    rec, _ = create(store, loc, patch, ctx.source, check_dup=False)
    return 200, {"opportunity": rec, "new": True}


def add_followers(ctx):
    loc, entry = opp_entry(ctx)
    new, added = followers_added(ctx, entry.rec.get("followers", []))
    update(ctx.app.store, loc, entry, {"followers": new}, ctx.source)
    return 201, {"followers": entry.rec["followers"], "followersAdded": added}


def remove_followers(ctx):
    loc, entry = opp_entry(ctx)
    remove_all = ctx.query.get("isRemoveAllFollowers") == "true"
    new, removed = followers_removed(ctx, entry.rec.get("followers", []), remove_all)
    update(ctx.app.store, loc, entry, {"followers": new}, ctx.source)
    return 200, {"followers": entry.rec["followers"], "followersRemoved": removed}


def lost_reasons(ctx):
    """GET /opportunities/lost-reason: {lostReasons, total}; name/query filters, skip/limit numbers."""
    q = ctx.query
    loc = _location(ctx, q.get("locationId"))
    skip = int_param(q.get("skip"), "skip", 0, 0)
    limit = int_param(q.get("limit"), "limit", 100, 1)
    reasons = [e.rec for e in state(ctx, loc)["lostReasons"].values()]
    if q.get("name"):
        reasons = [r for r in reasons if r["name"] == q["name"]]
    if q.get("query"):
        reasons = [r for r in reasons if q["query"].lower() in r["name"].lower()]
    return 200, {"lostReasons": reasons[skip:skip + limit], "total": len(reasons)}


def pipelines(ctx):
    loc = _location(ctx, ctx.query.get("locationId"))
    return 200, {"pipelines": [e.rec for e in state(ctx, loc)["pipelines"].values()]}


# --- control: seeding and mutations ----------------------------------------------------------------

def seed(store, loc, n, rng, source, log_changes=True):
    """n opportunities over random live contacts and pipelines; timestamps in 2024-2025."""
    st = state(store, loc)
    pipes = list(st["pipelines"].values())
    live = [cid for _, cid in loc.index]
    if not live:
        raise ApiError(400, "seed contacts before opportunities")
    out, ids = [], []
    for _ in range(n):
        p = rng.choice(pipes)
        t = resources.seed_time(rng)
        f = {"pipelineId": p.rec["id"], "pipelineStageId": rng.choice(p.rec["stages"])["id"],
             "contactId": rng.choice(live), "name": rng.choice(NAMES),
             "status": rng.choices(STATUSES, weights=(70, 15, 10, 5))[0],
             "monetaryValue": rng.randint(1, 100) * 50, "source": rng.choice(SOURCES)}
        if rng.random() < 0.7:
            f["assignedTo"] = rng.choice(loc.meta["users"])
        oid = store._new_id(rng)
        rec = opportunity_record(loc, oid, f, t, t, t, t)
        st["opportunities"][oid] = Entry(rec, t)
        ids.append(oid)
        if log_changes:
            log(store, loc, KIND, "created", oid, sorted(rec), rec, source, out=out)
    return ids, out


def mutate(store, loc, op, rng, source="control"):
    """Control ops on kind opportunity: create, update (fields), delete, move (stage), win, lose, abandon,
    open, value, assign.  A missing id picks a random opportunity."""
    verb, fields = op.get("op"), op.get("fields") or {}
    st = state(store, loc)
    if verb == "create":
        p = st["pipelines"].get(fields.get("pipelineId")) or rng.choice(list(st["pipelines"].values()))
        live = [cid for _, cid in loc.index]
        if not live and "contactId" not in fields:
            raise ApiError(400, "the location has no live contact")
        f = {"pipelineId": p.rec["id"], "pipelineStageId": first_stage(p),
             "contactId": rng.choice(live) if live else None, "name": rng.choice(NAMES), "status": "open",
             "monetaryValue": rng.randint(1, 100) * 50, "source": rng.choice(SOURCES)}
        f.update(fields)
        return create(store, loc, f, source, check_dup=False)[1]
    oid = op.get("id")
    if oid is None:
        if not st["opportunities"]:
            raise ApiError(400, "the location has no opportunity")
        oid = rng.choice(sorted(st["opportunities"]))
    entry = st["opportunities"].get(oid)
    if entry is None:
        raise ApiError(404, "no opportunity %s in %s" % (oid, loc.id))
    rec = entry.rec
    if verb == "delete":
        return delete(store, loc, entry, source)
    if verb in ("win", "lose", "abandon", "open"):
        patch = {"status": {"win": "won", "lose": "lost", "abandon": "abandoned", "open": "open"}[verb]}
        if verb == "lose":
            patch["lostReasonId"] = fields.get("lostReasonId") or sorted(st["lostReasons"])[0]
    elif verb == "move":
        stages = st["pipelines"][rec["pipelineId"]].rec["stages"]
        if fields.get("pipelineStageId"):
            target = _stage(st["pipelines"][rec["pipelineId"]], fields["pipelineStageId"])
        else:
            i = next((j for j, s in enumerate(stages) if s["id"] == rec["pipelineStageId"]), -1)
            target = stages[(i + 1) % len(stages)]["id"]
        patch = {"pipelineStageId": target}
    elif verb == "value":
        patch = {"monetaryValue": fields.get("monetaryValue", (rec.get("monetaryValue") or 0) + 100)}
    elif verb == "assign":
        patch = {"assignedTo": fields.get("assignedTo") or rng.choice(loc.meta["users"])}
    elif verb == "update":
        patch = dict(fields) if fields else {"name": rng.choice(NAMES) + " (edited)"}
    else:
        raise ApiError(400, "opportunity ops: create, update, delete, move, win, lose, abandon, open, value, assign")
    return update(store, loc, entry, patch, source)


RANDOM_OPS = [("move", 10), ("value", 4), ("create", 4), ("win", 3), ("lose", 2), ("assign", 2), ("abandon", 1),
              ("delete", 1)]


def random_mutation(store, loc, rng, source="control"):
    """One weighted realistic opportunity change (stage moves dominate); a create when there is none."""
    verb, = rng.choices([v for v, _ in RANDOM_OPS], weights=[w for _, w in RANDOM_OPS])
    opps = state(store, loc)["opportunities"]
    if not opps:
        verb = "create"
    op = {"op": verb}
    if verb != "create":
        op["id"] = rng.choice(sorted(opps))
    return mutate(store, loc, op, rng, source)


def mutate_pipeline(store, loc, op, rng, source="control"):
    """Control ops on kind pipeline: create, rename (fields.name), delete."""
    st = state(store, loc)["pipelines"]
    verb, fields = op.get("op"), op.get("fields") or {}
    if verb == "create":
        pid = store._new_id()
        stages = [{"id": util.new_uuid(rng), "name": n, "position": j, "showInFunnel": True,
                   "showInPieChart": True} for j, n in enumerate(fields.get("stages") or resources.STAGE_NAMES[:3])]
        rec = {"id": pid, "name": fields.get("name", "Pipeline %d" % (len(st) + 1)), "stages": stages,
               "showInFunnel": True, "showInPieChart": True, "locationId": loc.id}
        st[pid] = Entry(rec, now_ms())
        return log(store, loc, "pipeline", "created", pid, sorted(rec), rec, source)
    entry = st.get(op.get("id")) if op.get("id") else (st[sorted(st)[0]] if st else None)
    if entry is None:
        raise ApiError(404, "no pipeline %s in %s" % (op.get("id"), loc.id))
    if verb == "delete":
        del st[entry.rec["id"]]
        return log(store, loc, "pipeline", "deleted", entry.rec["id"], [], entry.rec, source)
    if verb in ("rename", "update"):
        new = dict(entry.rec, name=fields.get("name", entry.rec["name"] + " (renamed)"))
        old, entry.rec = entry.rec, new
        return log(store, loc, "pipeline", "updated", new["id"], changed_fields(old, new), new, source)
    raise ApiError(400, "pipeline ops: create, rename, delete")


def mutate_lost_reason(store, loc, op, rng, source="control"):
    """Control ops on kind lost_reason: create, rename (fields.name; bumps updatedAt), delete (hard: the
    reason leaves GET /opportunities/lost-reason; opportunities keep their lostReasonId)."""
    st = state(store, loc)["lostReasons"]
    verb, fields = op.get("op"), op.get("fields") or {}
    if verb == "create":
        rid = store._new_id(rng)
        t = now_ms()
        rec = {"id": rid, "name": fields.get("name", "Lost reason %d" % (len(st) + 1)), "locationId": loc.id,
               "updatedAt": iso(t), "createdAt": iso(t)}
        st[rid] = Entry(rec, t)
        return log(store, loc, "lost_reason", "created", rid, sorted(rec), rec, source, t)
    entry = st.get(op.get("id")) if op.get("id") else (st[sorted(st)[0]] if st else None)
    if entry is None:
        raise ApiError(404, "no lost reason %s in %s" % (op.get("id"), loc.id))
    old = entry.rec
    if verb == "delete":
        del st[old["id"]]
        return log(store, loc, "lost_reason", "deleted", old["id"], [], old, source)
    if verb != "rename":
        raise ApiError(400, "lost_reason ops: create, rename, delete")
    t = bump(entry)
    new = dict(old, name=fields.get("name", old["name"] + " (renamed)"), updatedAt=iso(t))
    entry.rec, entry.updated_ms = new, t
    return log(store, loc, "lost_reason", "updated", old["id"], changed_fields(old, new), new, source, t)


# --- the table -------------------------------------------------------------------------------------

EMPTY_SEARCH = {"opportunities": [], "meta": {"total": 0, "nextPageUrl": None, "startAfterId": None,
                                              "startAfter": None, "currentPage": 1, "nextPage": None,
                                              "prevPage": None}, "aggregations": {}}

ROUTES = [
    Route("GET", "/opportunities/search", "search-opportunity", search_get, scope=READ, list_key="opportunities",
          first_page=get_first_page, empty=EMPTY_SEARCH),
    Route("POST", "/opportunities/search", "search-opportunities-advanced", search_post, scope=READ,
          list_key="opportunities", first_page=post_first_page,
          empty={"opportunities": [], "total": 0, "aggregations": {}}),
    Route("GET", "/opportunities/pipelines", "get-pipelines", pipelines, scope=READ, list_key="pipelines"),
    Route("GET", "/opportunities/lost-reason", "get-lost-reason", lost_reasons, scope=READ, list_key="lostReasons",
          first_page=lambda ctx: ctx.query.get("skip") in (None, "", "0"), empty={"lostReasons": [], "total": 0}),
    Route("POST", "/opportunities/upsert", "Upsert-opportunity", upsert_opportunity, scope=WRITE),
    Route("POST", "/opportunities/", "create-opportunity", create_opportunity, scope=WRITE),
    Route("GET", "/opportunities/{id}", "get-opportunity", get_opportunity, scope=READ),
    Route("PUT", "/opportunities/{id}", "update-opportunity", update_opportunity, scope=WRITE),
    Route("DELETE", "/opportunities/{id}", "delete-opportunity", delete_opportunity, scope=WRITE),
    Route("PUT", "/opportunities/{id}/status", "update-opportunity-status", update_status, scope=WRITE),
    Route("POST", "/opportunities/{id}/followers", "add-followers-opportunity", add_followers, scope=WRITE),
    Route("DELETE", "/opportunities/{id}/followers", "remove-followers-opportunity", remove_followers,
          scope=WRITE),
]
