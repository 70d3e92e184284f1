"""The public API: route table and handlers.

Paths, operation ids, status codes and body shapes follow apps/contacts.json and apps/oauth.json
(with the live-API deviations documented in docs/ghl-api-notes.md §5 and §7).  Every handler runs
with the store lock held and returns (status, body); errors are raised as ApiError.
"""

import bisect
import re
from urllib.parse import quote, unquote, urlencode

from . import search, util
from .store import normalize_phone
from .util import ApiError, is_id

VERSION = "2021-07-28"
READ, WRITE = "contacts.readonly", "contacts.write"
DND_CHANNELS = ("Call", "Email", "SMS", "WhatsApp", "GMB", "FB")


class Route:
    def __init__(self, method, template, op, handler, version=VERSION, auth="location", scope=None,
                 list_key=None, first_page=None, empty=None, bare=False):
        self.method = method
        self.template = template
        self.op = op
        self.handler = handler
        self.version = version
        # "location": Location token only; "any": Location or Company token (Location-Access or
        # Agency-Access); "agency": Company token, PIT or OAuth (Agency-Access); "company": Company
        # OAuth token only (Agency-Access-Only); None: no token.
        self.auth = auth
        self.scope = scope
        self.list_key = list_key      # for the empty_list fault
        self.first_page = first_page  # ctx -> bool, for the drop_page fault (pageable routes only)
        self.empty = empty            # the empty_list fault body, when it is not {list_key: []}
        self.bare = bare              # the body is the record itself (GET /users/{id}): no traceId in it
        pattern = re.sub(r"\\\{(\w+)\\\}", lambda m: "(?P<%s>[^/]+)" % m.group(1), re.escape(template))
        self.regex = re.compile("^" + pattern + "$")

    def describe(self):
        out = {"method": self.method, "path": self.template, "operationId": self.op,
               "version": self.version, "auth": self.auth, "scope": self.scope}
        if self.bare:
            out["bare"] = True
        return out


class Router:
    def __init__(self, routes):
        self.routes = routes

    def match(self, method, path):
        for r in self.routes:
            if r.method != method:
                continue
            m = r.regex.match(path)
            if m:
                return r, {k: unquote(v) for k, v in m.groupdict().items()}
        return None, None


# --- request helpers -----------------------------------------------------------------------------

def body_object(ctx):
    """The JSON (or form) body as a dict; {} when there is none."""
    b = ctx.body
    if b is None:
        return {}
    if not isinstance(b, dict):
        raise ApiError(422, ["request body must be an object"])
    return b


def check_unknown(ctx, body, allowed):
    if ctx.app.config.get("strict_bodies", True):
        extra = [k for k in body if k not in allowed]
        if extra:
            raise ApiError(422, ["property %s should not exist" % k for k in extra])


def location_of(ctx, location_id, where="locationId"):
    """The token's Location; 422 when `location_id` is missing, 403 when it is another location."""
    if location_id is None or location_id == "":
        raise ApiError(422, ["%s should not be empty" % where, "%s must be a string" % where])
    if not isinstance(location_id, str):
        raise ApiError(422, ["%s must be a string" % where])
    if location_id != ctx.token.location_id:
        raise ApiError(403, "The token does not have access to this location")
    return ctx.app.store.ensure_location(location_id)


def token_location(ctx):
    return ctx.app.store.ensure_location(ctx.token.location_id)


def not_found(ctx, what):
    status = int(ctx.app.config.get("deleted_status", 404))
    return ApiError(status, "%s not found" % what)


def contact_entry(ctx, contact_id=None):
    """The live contact of the path, in the token's location (400 malformed id, 403 other location,
    --deleted-status for unknown or deleted)."""
    cid = contact_id if contact_id is not None else ctx.params["contactId"]
    if not is_id(cid):
        raise ApiError(400, "Invalid contactId: must be a 20-character id")
    loc = token_location(ctx)
    entry = loc.contacts.get(cid)
    if entry is None:
        for other in ctx.app.store.locations.values():
            if other is not loc and cid in other.contacts:
                raise ApiError(403, "The token does not have access to this location")
        raise not_found(ctx, "Contact")
    if entry.deleted:
        raise not_found(ctx, "Contact")
    return loc, entry


def int_param(value, name, default, lo=None, hi=None):
    if value is None or value == "":
        return default
    try:
        n = int(value) if not isinstance(value, float) or value.is_integer() else None
        if n is None:
            raise ValueError
    except (TypeError, ValueError):
        raise ApiError(422, ["%s must be a number conforming to the specified constraints" % name])
    if lo is not None and n < lo:
        raise ApiError(422, ["%s must not be less than %d" % (name, lo)])
    if hi is not None and n > hi:
        raise ApiError(422, ["%s must not be greater than %d" % (name, hi)])
    return n


# --- contact body validation ---------------------------------------------------------------------

_STR_NULL = {"firstName", "lastName", "name", "email", "phone", "address1", "city", "state", "website",
             "timezone", "companyName"}
_STR = {"postalCode", "source", "country", "assignedTo", "gender", "locationId"}
CREATE_FIELDS = {"firstName", "lastName", "name", "email", "locationId", "gender", "phone", "address1", "city",
                 "state", "postalCode", "website", "timezone", "dnd", "dndSettings", "inboundDndSettings", "tags",
                 "customFields", "source", "dateOfBirth", "country", "companyName", "assignedTo"}
UPDATE_FIELDS = CREATE_FIELDS - {"locationId", "gender", "companyName"}
UPSERT_FIELDS = CREATE_FIELDS | {"createNewIfDuplicateAllowed"}
UPDATE_NULLABLE = {"source", "assignedTo"}


def normalize_tags(tags, name="tags"):
    if not isinstance(tags, list):
        raise ApiError(422, ["%s must be an array" % name])
    out = []
    for t in tags:
        if not isinstance(t, str):
            raise ApiError(422, ["each value in %s must be a string" % name])
        t = t.strip().lower()
        if t and t not in out:
            out.append(t)
    return out


def normalize_id_list(values, name):
    if not isinstance(values, list) or any(not isinstance(v, str) for v in values):
        raise ApiError(422, ["%s must be an array of strings" % name])
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def contact_patch(body, allowed, nullable=frozenset()):
    """Validate a Create/Update/UpsertContactDto body -> normalized patch (None = remove)."""
    errors = []
    patch = {}
    for k, v in body.items():
        if k not in allowed or k in ("locationId", "createNewIfDuplicateAllowed"):
            continue
        if v is None:
            if k in _STR_NULL or k in nullable or k == "dateOfBirth":
                patch[k] = None
            else:
                errors.append("%s should not be null" % k)
            continue
        if k in _STR_NULL or k in _STR:
            if not isinstance(v, str):
                errors.append("%s must be a string" % k)
            elif k == "email":
                if v.strip() and not util.is_email(v.strip()):
                    errors.append("email must be an email")
                patch[k] = v.strip() or None
            elif k == "phone":
                patch[k] = normalize_phone(v) or None
            else:
                patch[k] = v
        elif k == "dnd":
            if not isinstance(v, bool):
                errors.append("dnd must be a boolean value")
            patch[k] = v
        elif k == "tags":
            try:
                patch[k] = normalize_tags(v)
            except ApiError as e:
                errors.extend(e.message)
        elif k == "dndSettings":
            if not isinstance(v, dict) or any(
                    ch not in DND_CHANNELS or not isinstance(s, dict)
                    or s.get("status") not in ("active", "inactive", "permanent") for ch, s in v.items()):
                errors.append("dndSettings must map %s to {status: active|inactive|permanent}" % "/".join(DND_CHANNELS))
            patch[k] = v
        elif k == "inboundDndSettings":
            inbound = v.get("all", {}) if isinstance(v, dict) else None
            if not isinstance(v, dict) or set(v) - {"all"} or not isinstance(inbound, dict) or (
                    "all" in v and inbound.get("status") not in ("active", "inactive")):
                errors.append("inboundDndSettings.all.status must be one of the following values: active, inactive")
            patch[k] = v
        elif k == "customFields":
            if not isinstance(v, list):
                errors.append("customFields must be an array")
                continue
            fields = []
            for i, cf in enumerate(v):
                if not isinstance(cf, dict) or not isinstance(cf.get("id"), str) or not cf.get("id"):
                    errors.append("customFields.%d.id should not be empty" % i)
                    continue
                value = cf.get("field_value", cf.get("value"))
                fields.append({"id": cf["id"], "value": value})
            patch[k] = fields
        elif k == "dateOfBirth":
            dob = util.parse_date_of_birth(v)
            if dob is None:
                errors.append("dateOfBirth must be a valid date (YYYY-MM-DD, MM/DD/YYYY, ...)")
            patch[k] = dob
    if errors:
        raise ApiError(422, errors)
    return patch


# --- projections ---------------------------------------------------------------------------------

LIST_FIELDS = ("id", "locationId", "contactName", "firstName", "lastName", "companyName", "email", "phone", "dnd",
               "dndSettings", "type", "source", "assignedTo", "city", "state", "postalCode", "address1", "dateAdded",
               "dateUpdated", "dateOfBirth", "tags", "country", "website", "timezone", "customFields",
               "additionalEmails", "businessId", "followers")


def list_item(rec):
    out = {}
    for k in LIST_FIELDS:
        if k == "contactName":
            v = rec.get("fullNameLowerCase")
        else:
            v = rec.get(k)
        if v is not None:
            out[k] = v
    out["attributions"] = [rec["attributionSource"]] if rec.get("attributionSource") else []
    return out


SEARCH_FIELDS = ("id", "locationId", "contactName", "firstName", "lastName", "firstNameLowerCase", "lastNameLowerCase",
                 "email", "phone", "companyName", "businessName", "address", "city", "state", "country", "postalCode",
                 "website", "timezone", "source", "type", "dnd", "dndSettings", "inboundDndSettings", "tags",
                 "customFields", "dateAdded", "dateUpdated", "dateOfBirth", "additionalEmails", "additionalPhones",
                 "assignedTo", "followers", "businessId", "attributionSource", "lastAttributionSource")


def search_item(rec, search_after):
    """The POST /contacts/search Contact shape (notes §5.3): `address` not `address1`, epoch-ms dateOfBirth."""
    out = {}
    for k in SEARCH_FIELDS:
        if k == "contactName":
            v = rec.get("fullNameLowerCase")
        elif k == "businessName":
            v = rec.get("companyName")
        elif k == "address":
            v = rec.get("address1")
        elif k == "dateOfBirth":
            v = util.parse_iso(rec.get("dateOfBirth"))
        elif k == "additionalPhones":
            v = rec.get(k, [])
        else:
            v = rec.get(k)
        if v is not None:
            out[k] = v
    out["validEmail"] = bool(rec.get("email"))
    out["opportunities"] = []
    out["searchAfter"] = search_after
    return out


def create_item(rec):
    out = dict(rec)
    out["deleted"] = False
    return out


# --- contacts ------------------------------------------------------------------------------------

def get_contact(ctx):
    _, entry = contact_entry(ctx)
    return 200, {"contact": entry.rec}


def update_contact(ctx):
    loc, entry = contact_entry(ctx)
    body = body_object(ctx)
    check_unknown(ctx, body, UPDATE_FIELDS)
    patch = contact_patch(body, UPDATE_FIELDS, UPDATE_NULLABLE)
    ctx.app.store.update_contact(loc, entry, patch, ctx.source)
    return 200, {"succeded": True, "contact": entry.rec}


def delete_contact(ctx):
    loc, entry = contact_entry(ctx)
    ctx.app.store.delete_contact(loc, entry, ctx.source)
    return 200, {"succeded": True}


def create_contact(ctx):
    body = body_object(ctx)
    check_unknown(ctx, body, CREATE_FIELDS)
    loc = location_of(ctx, body.get("locationId"))
    patch = contact_patch(body, CREATE_FIELDS)
    entry, _ = ctx.app.store.create_contact(loc, patch, ctx.source)
    return 201, {"contact": create_item(entry.rec)}


def upsert_contact(ctx):
    body = body_object(ctx)
    check_unknown(ctx, body, UPSERT_FIELDS)
    loc = location_of(ctx, body.get("locationId"))
    patch = contact_patch(body, UPSERT_FIELDS)
    store = ctx.app.store
    match, by = None, None
    if patch.get("email"):
        match, by = store.find_duplicate(loc, email=patch["email"]), "email"
    if match is None and patch.get("phone"):
        match, by = store.find_duplicate(loc, phone=patch["phone"]), "phone"
    if match is None or (body.get("createNewIfDuplicateAllowed") and ctx.app.config.get("allow_duplicates")):
        entry, _ = store.create_contact(loc, patch, ctx.source)
        return 200, {"new": True, "contact": entry.rec}
    if by == "email" and patch.get("phone"):
        # "update the contact that matches the first field ... and ignore the second field"
        other = loc.phone_idx.get(patch["phone"])
        if other and other != match.rec["id"]:
            del patch["phone"]
    store.update_contact(loc, match, patch, ctx.source)
    return 200, {"new": False, "contact": match.rec}


def list_first_page(ctx):
    return not (ctx.query.get("startAfter") or ctx.query.get("startAfterId"))


def start_after_cursor(q, created_ms_of):
    """The (startAfter ms, startAfterId) of a GET /contacts/-style cursor.  startAfterId alone takes
    that record's creation time (`created_ms_of(id)`, None for an unknown id: 400)."""
    start_after = q.get("startAfter")
    start_after_id = q.get("startAfterId") or None
    if start_after not in (None, ""):
        try:
            start_after = int(float(start_after))
        except ValueError:
            raise ApiError(422, ["startAfter must be a number conforming to the specified constraints"])
    else:
        start_after = None
    if start_after is None and start_after_id:
        start_after = created_ms_of(start_after_id)
        if start_after is None:
            raise ApiError(400, "Invalid startAfterId")
    return start_after, start_after_id


def cursor_meta(page, pos, limit, total):
    """The `meta` of a startAfter-paged list; `page` is [(created ms, id)].  nextPageUrl is the caller's."""
    current = pos // limit + 1
    has_more = pos + limit < total
    meta = {"total": total, "nextPageUrl": None, "startAfterId": None, "startAfter": None,
            "currentPage": current, "nextPage": current + 1 if has_more else None,
            "prevPage": current - 1 if current > 1 else None}
    if page:
        meta["startAfter"], meta["startAfterId"] = page[-1]
    return meta


def list_contacts(ctx):
    """GET /contacts/ (deprecated): ordered by (dateAdded, id); cursor = strictly after (startAfter, startAfterId)."""
    q = ctx.query
    loc = location_of(ctx, q.get("locationId"))
    limit = int_param(q.get("limit"), "limit", 20, 1, 100)
    start_after, start_after_id = start_after_cursor(
        q, lambda i: loc.contacts[i].added_ms if i in loc.contacts else None)
    index = loc.index
    pos = 0
    if start_after is not None:
        pos = bisect.bisect_right(index, (start_after, start_after_id or "~"))
    query = q.get("query")
    if query:
        match = search.query_matcher(query)
        matching = [k for k in index if match(loc.contacts[k[1]])]
        pos = bisect.bisect_left(matching, index[pos]) if pos < len(index) else len(matching)
        keys = matching
    else:
        keys = index
    page = keys[pos:pos + limit]
    has_more = pos + limit < len(keys)
    total = len(keys)
    meta = cursor_meta(page, pos, limit, total)
    if has_more:
        params = {"locationId": loc.id, "limit": limit, "startAfter": page[-1][0], "startAfterId": page[-1][1]}
        if query:
            params["query"] = query
        meta["nextPageUrl"] = "%s/contacts/?%s" % (ctx.base_url, urlencode(params, quote_via=quote))
    return 200, {"contacts": [list_item(loc.contacts[cid].rec) for _, cid in page], "count": total, "meta": meta}


def search_first_page(ctx):
    b = ctx.body if isinstance(ctx.body, dict) else {}
    return not b.get("searchAfter") and b.get("page") in (None, 1, "1")


def search_contacts(ctx):
    body = body_object(ctx)
    errors = []
    if body.get("locationId") in (None, ""):
        errors += ["locationId should not be empty", "locationId must be a string"]
    if body.get("pageLimit") is None:
        errors += ["pageLimit should not be empty",
                   "pageLimit must be a number conforming to the specified constraints"]
    if errors:
        raise ApiError(422, errors)
    loc = location_of(ctx, body.get("locationId"))
    page_limit = int_param(body.get("pageLimit"), "pageLimit", None, 1, search.MAX_PAGE_LIMIT)
    after = body.get("searchAfter")
    if after is not None and body.get("page") is not None:
        raise ApiError(422, ["page and searchAfter cannot be used together: "
                             "omit page when paginating with searchAfter"])
    page = int_param(body.get("page"), "page", 1, 1)
    if page * page_limit > search.MAX_PAGE_WINDOW:
        raise ApiError(422, ["page * pageLimit must not exceed %d; use searchAfter to paginate beyond %d records"
                             % (search.MAX_PAGE_WINDOW, search.MAX_PAGE_WINDOW)])
    query = body.get("query")
    if query is not None and (not isinstance(query, str) or len(query) > search.MAX_QUERY_LEN):
        raise ApiError(422, ["query must be a string shorter than or equal to %d characters" % search.MAX_QUERY_LEN])
    spec = search.Spec(body.get("filters"), body.get("sort"), query)
    items = search.run(ctx.app.store, loc, spec)
    if after is not None:
        pos = spec.position_after(items, spec.cursor(after))
    else:
        pos = (page - 1) * page_limit
    chunk = items[pos:pos + page_limit]
    return 200, {"contacts": [search_item(v.rec, spec.emit(k)) for k, v in chunk], "total": len(items)}


def duplicate_contact(ctx):
    q = ctx.query
    if not q.get("locationId"):
        raise ApiError(400, "locationId is required")
    loc = location_of(ctx, q.get("locationId"))
    email, number = q.get("email"), q.get("number")
    if not email and not number:
        raise ApiError(400, "email or number is required")
    entry = ctx.app.store.find_duplicate(loc, email=email, phone=number)
    return 200, {"contact": entry.rec if entry is not None else None}


def business_first_page(ctx):
    return ctx.query.get("skip") in (None, "", "0")


def business_contacts(ctx):
    q = ctx.query
    loc = location_of(ctx, q.get("locationId"))
    limit = int_param(q.get("limit"), "limit", 25, 1, 100)
    skip = int_param(q.get("skip"), "skip", 0, 0)
    ids = loc.business_idx.get(ctx.params["businessId"], ())
    entries = sorted((loc.contacts[i] for i in ids), key=lambda e: (e.added_ms, e.rec["id"]))
    query = q.get("query")
    if query:
        match = search.query_matcher(query)
        entries = [e for e in entries if match(e)]
    return 200, {"contacts": [list_item(e.rec) for e in entries[skip:skip + limit]], "count": len(entries)}


# --- tags / followers / bulk ---------------------------------------------------------------------

def add_tags(ctx):
    loc, entry = contact_entry(ctx)
    body = body_object(ctx)
    check_unknown(ctx, body, {"tags"})
    if "tags" not in body:
        raise ApiError(422, ["tags should not be empty", "tags must be an array"])
    new = normalize_tags(body["tags"])
    current = entry.rec.get("tags", [])
    ctx.app.store.update_contact(loc, entry, {"tags": current + [t for t in new if t not in current]}, ctx.source)
    return 201, {"tags": entry.rec.get("tags", [])}


def remove_tags(ctx):
    loc, entry = contact_entry(ctx)
    body = body_object(ctx)
    check_unknown(ctx, body, {"tags"})
    if "tags" not in body:
        raise ApiError(422, ["tags should not be empty", "tags must be an array"])
    gone = set(normalize_tags(body["tags"]))
    ctx.app.store.update_contact(loc, entry, {"tags": [t for t in entry.rec.get("tags", []) if t not in gone]},
                                 ctx.source)
    return 200, {"tags": entry.rec.get("tags", [])}


def followers_added(ctx, current):
    """FollowersDTO of an add (contacts, opportunities) -> (new follower list, the ones added)."""
    body = body_object(ctx)
    check_unknown(ctx, body, {"followers"})
    if "followers" not in body:
        raise ApiError(422, ["followers should not be empty", "followers must be an array"])
    added = [f for f in normalize_id_list(body["followers"], "followers") if f not in current]
    return current + added, added


def followers_removed(ctx, current, remove_all=False):
    """FollowersDTO of a removal (DELETE with a JSON body) -> (new follower list, the ones removed)."""
    body = body_object(ctx)
    check_unknown(ctx, body, {"followers"})
    if "followers" not in body and not remove_all:
        raise ApiError(422, ["followers should not be empty", "followers must be an array"])
    gone = normalize_id_list(body.get("followers", []), "followers")
    removed = list(current) if remove_all else [f for f in gone if f in current]
    return [f for f in current if f not in removed], removed


def add_followers(ctx):
    loc, entry = contact_entry(ctx)
    new, added = followers_added(ctx, entry.rec.get("followers", []))
    ctx.app.store.update_contact(loc, entry, {"followers": new}, ctx.source)
    return 201, {"followers": entry.rec.get("followers", []), "followersAdded": added}


def remove_followers(ctx):
    loc, entry = contact_entry(ctx)
    new, removed = followers_removed(ctx, entry.rec.get("followers", []))
    ctx.app.store.update_contact(loc, entry, {"followers": new}, ctx.source)
    return 200, {"followers": entry.rec.get("followers", []), "followersRemoved": removed}


def bulk_tags(ctx):
    kind = ctx.params["type"]
    if kind not in ("add", "remove"):
        raise ApiError(422, ["type must be one of the following values: add, remove"])
    body = body_object(ctx)
    check_unknown(ctx, body, {"contacts", "tags", "locationId", "removeAllTags"})
    errors = ["%s should not be empty" % k for k in ("contacts", "tags", "locationId") if k not in body]
    if errors:
        raise ApiError(422, errors)
    loc = location_of(ctx, body["locationId"])
    contacts = normalize_id_list(body["contacts"], "contacts") if isinstance(body["contacts"], list) else None
    if contacts is None:
        raise ApiError(422, ["contacts must be an array of strings"])
    tags = normalize_tags(body["tags"])
    remove_all = body.get("removeAllTags", False)
    if not isinstance(remove_all, bool):
        raise ApiError(422, ["removeAllTags must be a boolean value"])
    if remove_all and kind != "remove":
        raise ApiError(422, ["removeAllTags can only be used with the remove type"])
    store = ctx.app.store
    responses = []
    for cid in body["contacts"]:
        if not is_id(cid):
            responses.append({"contactId": cid, "message": "contact id is not a valid firebase id", "type": "error"})
            continue
        entry = loc.contacts.get(cid)
        if entry is None:
            owned = any(cid in other.contacts for other in store.locations.values())
            msg = "contact does not belong to location" if owned else "contact not found"
            responses.append({"contactId": cid, "message": msg, "type": "error"})
            continue
        if entry.deleted:
            responses.append({"contactId": cid, "message": "contact is deleted", "type": "error"})
            continue
        old = entry.rec.get("tags", [])
        if kind == "add":
            added = [t for t in tags if t not in old]
            new, removed = old + added, []
        else:
            removed = list(old) if remove_all else [t for t in old if t in tags]
            new, added = [t for t in old if t not in removed], []
        store.update_contact(loc, entry, {"tags": new}, ctx.source)
        responses.append({"contactId": cid, "message": "Tags updated", "type": "success", "oldTags": old,
                          "tagsAdded": added, "tagsRemoved": removed})
    errors = sum(1 for r in responses if r["type"] == "error")
    return 201, {"succeded": True, "errorCount": errors, "responses": responses}


def bulk_business(ctx):
    body = body_object(ctx)
    check_unknown(ctx, body, {"locationId", "ids", "businessId"})
    errors = ["%s should not be empty" % k for k in ("locationId", "ids") if not body.get(k)]
    if "businessId" not in body:
        errors.append("businessId must be a string or null")
    if errors:
        raise ApiError(422, errors)
    loc = location_of(ctx, body["locationId"])
    ids = body["ids"]
    if not isinstance(ids, list) or any(not isinstance(i, str) or len(i) > 50 for i in ids):
        raise ApiError(422, ["each value in ids must be shorter than or equal to 50 characters"])
    business = body["businessId"]
    if business is not None and not isinstance(business, str):
        raise ApiError(422, ["businessId must be a string"])
    done = []
    for cid in ids:
        entry = loc.live(cid)
        if entry is None:
            continue
        ctx.app.store.update_contact(loc, entry, {"businessId": business or None}, ctx.source)
        done.append(cid)
    return 200, {"success": True, "ids": done}


# --- tasks ---------------------------------------------------------------------------------------

def _task(ctx, entry):
    tid = ctx.params["taskId"]
    if not is_id(tid):
        raise ApiError(400, "Invalid taskId: must be a 20-character id")
    if tid not in entry.tasks:
        raise not_found(ctx, "Task")
    return tid


def task_patch(body, required):
    errors = []
    patch = {}
    for k in ("title", "body", "assignedTo"):
        if k in body:
            v = body[k]
            if not isinstance(v, str):
                errors.append("%s must be a string" % k)
            elif k == "title" and not v.strip():
                errors.append("title should not be empty")
            patch[k] = v
    if "dueDate" in body:
        ms = util.parse_iso(body["dueDate"]) if isinstance(body["dueDate"], str) else None
        if ms is None:
            errors.append("dueDate must be a valid ISO 8601 date string")
        else:
            patch["dueDate"] = util.iso(ms)
    if "completed" in body:
        if not isinstance(body["completed"], bool):
            errors.append("completed must be a boolean value")
        patch["completed"] = body["completed"]
    for k in required:
        if k not in body or body[k] is None:
            errors.append("%s should not be empty" % k)
    if errors:
        raise ApiError(422, errors)
    return patch


def list_tasks(ctx):
    _, entry = contact_entry(ctx)
    return 200, {"tasks": list(entry.tasks.values())}


def get_task(ctx):
    _, entry = contact_entry(ctx)
    return 200, {"task": entry.tasks[_task(ctx, entry)]}


def create_task(ctx):
    loc, entry = contact_entry(ctx)
    body = body_object(ctx)
    check_unknown(ctx, body, {"title", "body", "dueDate", "completed", "assignedTo"})
    task, _ = ctx.app.store.create_task(loc, entry, task_patch(body, ("title", "dueDate", "completed")), ctx.source)
    return 201, {"task": task}


def update_task(ctx):
    loc, entry = contact_entry(ctx)
    tid = _task(ctx, entry)
    body = body_object(ctx)
    check_unknown(ctx, body, {"title", "body", "dueDate", "completed", "assignedTo"})
    task, _ = ctx.app.store.update_task(loc, entry, tid, task_patch(body, ()), ctx.source)
    return 200, {"task": task}


def complete_task(ctx):
    loc, entry = contact_entry(ctx)
    tid = _task(ctx, entry)
    body = body_object(ctx)
    check_unknown(ctx, body, {"completed"})
    if not isinstance(body.get("completed"), bool):
        raise ApiError(422, ["completed must be a boolean value"])
    task, _ = ctx.app.store.update_task(loc, entry, tid, {"completed": body["completed"]}, ctx.source)
    return 200, {"task": task}


def delete_task(ctx):
    loc, entry = contact_entry(ctx)
    ctx.app.store.delete_task(loc, entry, _task(ctx, entry), ctx.source)
    return 200, {"succeded": True}


# --- notes ---------------------------------------------------------------------------------------

def _note(ctx, entry):
    nid = ctx.params["id"]
    if not is_id(nid):
        raise ApiError(400, "Invalid id: must be a 20-character id")
    if nid not in entry.notes:
        raise not_found(ctx, "Note")
    return nid


def note_patch(body, required_body):
    errors = []
    patch = {}
    for k in ("body", "userId", "title", "color"):
        if k in body:
            if not isinstance(body[k], str):
                errors.append("%s must be a string" % k)
            patch[k] = body[k]
    if "pinned" in body:
        if not isinstance(body["pinned"], bool):
            errors.append("pinned must be a boolean value")
        patch["pinned"] = body["pinned"]
    if required_body and not (isinstance(body.get("body"), str) and body["body"].strip()):
        errors.append("body should not be empty")
    if errors:
        raise ApiError(422, errors)
    return patch


def list_notes(ctx):
    _, entry = contact_entry(ctx)
    notes = sorted(entry.notes.values(), key=lambda n: n["dateAdded"], reverse=True)
    return 200, {"notes": notes}


def get_note(ctx):
    _, entry = contact_entry(ctx)
    return 200, {"note": entry.notes[_note(ctx, entry)]}


NOTE_FIELDS = {"body", "userId", "title", "color", "pinned"}


def create_note(ctx):
    loc, entry = contact_entry(ctx)
    body = body_object(ctx)
    check_unknown(ctx, body, NOTE_FIELDS)
    note, _ = ctx.app.store.create_note(loc, entry, note_patch(body, True), ctx.source)
    return 201, {"note": note}


def update_note(ctx):
    loc, entry = contact_entry(ctx)
    nid = _note(ctx, entry)
    body = body_object(ctx)
    check_unknown(ctx, body, NOTE_FIELDS)
    note, _ = ctx.app.store.update_note(loc, entry, nid, note_patch(body, False), ctx.source)
    return 200, {"note": note}


def delete_note(ctx):
    loc, entry = contact_entry(ctx)
    ctx.app.store.delete_note(loc, entry, _note(ctx, entry), ctx.source)
    return 200, {"succeded": True}


# --- appointments, campaigns, workflows ----------------------------------------------------------

def appointments(ctx):
    _, entry = contact_entry(ctx)
    return 200, {"events": entry.events}


def _campaign_id(ctx):
    cid = ctx.params["campaignId"]
    if not is_id(cid):
        raise ApiError(400, "Invalid campaignId: must be a 20-character id")
    return cid


def add_campaign(ctx):
    loc, entry = contact_entry(ctx)
    ctx.app.store.add_campaign(loc, entry, _campaign_id(ctx), ctx.source)
    return 201, {"succeded": True}


def remove_campaign(ctx):
    loc, entry = contact_entry(ctx)
    ctx.app.store.remove_campaign(loc, entry, _campaign_id(ctx), ctx.source)
    return 200, {"succeded": True}


def remove_all_campaigns(ctx):
    loc, entry = contact_entry(ctx)
    for cid in list(entry.campaigns):
        ctx.app.store.remove_campaign(loc, entry, cid, ctx.source)
    return 200, {"succeded": True}


def _workflow(ctx):
    wid = ctx.params["workflowId"]
    if not (util.is_uuid(wid) or is_id(wid)):
        raise ApiError(400, "Invalid workflowId")
    body = body_object(ctx)
    check_unknown(ctx, body, {"eventStartTime"})
    start = body.get("eventStartTime")
    if start is not None and (not isinstance(start, str) or util.parse_iso(start) is None):
        raise ApiError(422, ["eventStartTime must be a valid ISO 8601 date string"])
    return wid, start


def add_workflow(ctx):
    loc, entry = contact_entry(ctx)
    wid, start = _workflow(ctx)
    ctx.app.store.add_workflow(loc, entry, wid, start, ctx.source)
    return 200, {"succeded": True}


def remove_workflow(ctx):
    loc, entry = contact_entry(ctx)
    wid, _ = _workflow(ctx)
    ctx.app.store.remove_workflow(loc, entry, wid, ctx.source)
    return 200, {"succeded": True}


# --- OAuth ---------------------------------------------------------------------------------------

def _form(ctx, oauth_style):
    if ctx.body_kind != "form":
        msg = "Invalid request: content must be application/x-www-form-urlencoded"
        if oauth_style:
            raise ApiError(400, msg, body={"error": "invalid_request", "error_description": msg})
        raise ApiError(400, msg)
    return ctx.body or {}


def oauth_token(ctx):
    form = _form(ctx, True)
    return 200, ctx.app.auth.token_endpoint(form)


def location_token(ctx):
    form = _form(ctx, False)
    errors = ["%s should not be empty" % k for k in ("companyId", "locationId") if not form.get(k)]
    if errors:
        ctx.app.auth.stats["locationToken"] += 1
        ctx.app.auth.failures["locationToken"] += 1
        raise ApiError(422, errors)
    return 200, ctx.app.auth.location_token(ctx.token, form["companyId"], form["locationId"])


def installed_locations(ctx):
    q = ctx.query
    errors = ["%s should not be empty" % k for k in ("companyId", "appId") if not q.get(k)]
    if errors:
        raise ApiError(422, errors)
    if q["companyId"] != ctx.token.company_id:
        raise ApiError(400, "companyId does not match the token")
    approved, future = ctx.app.auth.installed_locations(ctx.token)
    skip = int_param(q.get("skip"), "skip", 0, 0)
    limit = int_param(q.get("limit"), "limit", 20, 1, 100)
    locs = []
    store = ctx.app.store
    for lid in approved:
        meta = store.ensure_location(lid).meta
        item = {"_id": lid, "name": meta["name"], "address": meta["address"], "isInstalled": True}
        if q.get("query") and q["query"].lower() not in item["name"].lower():
            continue
        if q.get("locationId") and q["locationId"] != lid:
            continue
        if q.get("isInstalled") == "false":
            continue
        locs.append(item)
    return 200, {"locations": locs[skip:skip + limit], "count": len(locs), "installToFutureLocations": future}


# --- the table -----------------------------------------------------------------------------------
# Literal segments come before parameters that could swallow them (e.g. campaigns/removeAll).

ROUTES = [
    Route("POST", "/oauth/token", "get-access-token", oauth_token, version=None, auth=None),
    Route("POST", "/oauth/locationToken", "get-location-access-token", location_token, auth="company",
          scope="oauth.write"),
    Route("GET", "/oauth/installedLocations", "get-installed-location", installed_locations, auth="company",
          scope="oauth.readonly", list_key="locations", first_page=business_first_page),
    Route("POST", "/contacts/search", "search-contacts-advanced", search_contacts, scope=READ,
          list_key="contacts", first_page=search_first_page),
    Route("GET", "/contacts/search/duplicate", "get-duplicate-contact", duplicate_contact, scope=READ),
    Route("POST", "/contacts/upsert", "upsert-contact", upsert_contact, scope=WRITE),
    Route("GET", "/contacts/business/{businessId}", "get-contacts-by-businessId", business_contacts, scope=READ,
          list_key="contacts", first_page=business_first_page),
    Route("POST", "/contacts/bulk/tags/update/{type}", "create-association", bulk_tags, scope=WRITE),
    Route("POST", "/contacts/bulk/business", "add-remove-contact-from-business", bulk_business, scope=WRITE),
    Route("GET", "/contacts/", "get-contacts", list_contacts, scope=READ, list_key="contacts",
          first_page=list_first_page),
    Route("POST", "/contacts/", "create-contact", create_contact, scope=WRITE),
    Route("GET", "/contacts/{contactId}", "get-contact", get_contact, scope=READ),
    Route("PUT", "/contacts/{contactId}", "update-contact", update_contact, scope=WRITE),
    Route("DELETE", "/contacts/{contactId}", "delete-contact", delete_contact, scope=WRITE),
    Route("GET", "/contacts/{contactId}/tasks", "get-all-tasks", list_tasks, scope=READ, list_key="tasks"),
    Route("POST", "/contacts/{contactId}/tasks", "create-task", create_task, scope=WRITE),
    Route("GET", "/contacts/{contactId}/tasks/{taskId}", "get-task", get_task, scope=READ),
    Route("PUT", "/contacts/{contactId}/tasks/{taskId}", "update-task", update_task, scope=WRITE),
    Route("DELETE", "/contacts/{contactId}/tasks/{taskId}", "delete-task", delete_task, scope=WRITE),
    Route("PUT", "/contacts/{contactId}/tasks/{taskId}/completed", "update-task-completed", complete_task,
          scope=WRITE),
    Route("GET", "/contacts/{contactId}/notes", "get-all-notes", list_notes, scope=READ, list_key="notes"),
    Route("POST", "/contacts/{contactId}/notes", "create-note", create_note, scope=WRITE),
    Route("GET", "/contacts/{contactId}/notes/{id}", "get-note", get_note, scope=READ),
    Route("PUT", "/contacts/{contactId}/notes/{id}", "update-note", update_note, scope=WRITE),
    Route("DELETE", "/contacts/{contactId}/notes/{id}", "delete-note", delete_note, scope=WRITE),
    Route("GET", "/contacts/{contactId}/appointments", "get-appointments-for-contact", appointments, scope=READ,
          list_key="events"),
    Route("POST", "/contacts/{contactId}/tags", "add-tags", add_tags, scope=WRITE),
    Route("DELETE", "/contacts/{contactId}/tags", "remove-tags", remove_tags, scope=WRITE),
    Route("POST", "/contacts/{contactId}/followers", "add-followers-contact", add_followers, scope=WRITE),
    Route("DELETE", "/contacts/{contactId}/followers", "remove-followers-contact", remove_followers, scope=WRITE),
    Route("DELETE", "/contacts/{contactId}/campaigns/removeAll", "remove-contact-from-every-campaign",
          remove_all_campaigns, scope=WRITE),
    Route("POST", "/contacts/{contactId}/campaigns/{campaignId}", "add-contact-to-campaign", add_campaign,
          scope=WRITE),
    Route("DELETE", "/contacts/{contactId}/campaigns/{campaignId}", "remove-contact-from-campaign", remove_campaign,
          scope=WRITE),
    Route("POST", "/contacts/{contactId}/workflow/{workflowId}", "add-contact-to-workflow", add_workflow,
          scope=WRITE),
    Route("DELETE", "/contacts/{contactId}/workflow/{workflowId}", "delete-contact-from-workflow", remove_workflow,
          scope=WRITE),
]


def empty_list_body(route):
    """The body of the empty_list fault for a list route."""
    if route.empty is not None:
        return dict(route.empty)
    if route.op == "get-contacts":
        return {"contacts": [], "count": 0, "meta": {"total": 0, "nextPageUrl": None, "startAfterId": None,
                                                      "startAfter": None, "currentPage": 1, "nextPage": None,
                                                      "prevPage": None}}
    if route.op == "search-contacts-advanced":
        return {"contacts": [], "total": 0}
    if route.list_key in ("contacts", "locations"):
        return {route.list_key: [], "count": 0}
    return {route.list_key: []}
