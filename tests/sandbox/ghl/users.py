"""Users (apps/users.json; catalog-map §1.3, §2.3, §4.3).  Users belong to a company: each location's
meta.users are users of its company with roles.locationIds = [location].

* GET /users/search: `companyId` is required even with a location token (422 without); `locationId`
  filters on roles.locationIds; `skip`/`limit` are number strings (defaults 0 / 25); `{users, count}`
  sorted by first name then id (`sort`/`sortDirection` accepted: firstName, lastName, email, name).
* GET /users/{userId}, PUT, POST /users/ answer the bare UserSchema object (no wrapper).  `email` is
  unique in the company (create: 400); PUT with `email` is 422 ("not supported", ASSUMPTION).  The
  password is checked and dropped: it is never part of a record, the change log or a response.
* DELETE /users/{userId} is asynchronous: 200 {succeded, message:"Queued deleting user ..."}; after
  `user_delete_delay_ms` (default 3000) the user shows `deleted:true` in lists and GET by id answers
  --deleted-status; `user_deleted_visible_ms` (default 3000) later it is gone from every list.
* POST /users/search/filter-by-email: agency token only; `emails` one comma-separated string;
  body `skip`/`limit` number strings; `projection` defaults to id + email, "all" returns every field,
  or a comma list of fields; `deleted` (default false) selects deleted-flagged users instead.
"""

from . import resources, util
from .api import Route, body_object, check_unknown
from .resources import Entry, bump, changed_fields, company, company_of_token, log, string_number, user_record
from .util import ApiError, is_id, now_ms

READ, WRITE = "users.readonly", "users.write"
KIND = "user"
LANGUAGES = ("en_US", "es", "fr_CA", "fr_FR", "nl", "de", "pt_PT", "pt_BR", "it", "sv", "da", "fi", "no")
CREATE_FIELDS = {"companyId", "firstName", "lastName", "email", "password", "phone", "type", "role", "locationIds",
                 "permissions", "scopes", "scopesAssignedToOnly", "profilePhoto", "twilioPhone", "platformLanguage"}
UPDATE_FIELDS = CREATE_FIELDS


# --- the asynchronous delete ------------------------------------------------------------------------

def _loc_of(store, entry):
    ids = entry.rec["roles"]["locationIds"]
    loc = store.locations.get(ids[0]) if ids else None
    return loc or next(iter(store.locations.values()))


def settle(store):
    """Store ticker: queued deletes become deleted:true, then vanish, when their time comes."""
    t = now_ms()
    for c in store.companies.values():
        for uid, e in list(c["users"].items()):
            if e.due is None:
                continue
            flag_ms, gone_ms, source = e.due
            if not e.deleted and t >= flag_ms:
                old = e.rec
                e.rec = dict(old, deleted=True)
                e.deleted = True
                e.updated_ms = flag_ms
                log(store, _loc_of(store, e), KIND, "updated", uid, ["deleted"], e.rec, source, flag_ms)
            if e.deleted and t >= gone_ms:
                del c["users"][uid]
                log(store, _loc_of(store, e), KIND, "deleted", uid, [], e.rec, source, gone_ms)


def queue_delete(store, entry, source):
    """Schedule the two phases of an asynchronous delete (a second delete keeps the first schedule)."""
    if entry.due is None:
        cfg = store.config
        flag = now_ms() + int(cfg.get("user_delete_delay_ms", 3000))
        entry.due = (flag, flag + int(cfg.get("user_deleted_visible_ms", 3000)), source)


# --- validation and writes ----------------------------------------------------------------------------

def user_fields(body, required):
    errors = ["%s should not be empty" % k for k in required if body.get(k) in (None, "", [])]
    for k in ("firstName", "lastName", "email", "password", "phone", "type", "role", "profilePhoto", "companyId"):
        if k in body and not isinstance(body[k], str):
            errors.append("%s must be a string" % k)
    if isinstance(body.get("email"), str) and body["email"] and not util.is_email(body["email"]):
        errors.append("email must be an email")
    for k in ("locationIds", "scopes", "scopesAssignedToOnly"):
        if k in body and (not isinstance(body[k], list) or any(not isinstance(x, str) for x in body[k])):
            errors.append("%s must be an array of strings" % k)
    if "permissions" in body and not isinstance(body["permissions"], dict):
        errors.append("permissions must be an object")
    if "platformLanguage" in body and body["platformLanguage"] not in LANGUAGES:
        errors.append("platformLanguage must be one of the following values: %s" % ", ".join(LANGUAGES))
    if errors:
        raise ApiError(422, errors)
    return {k: v for k, v in body.items() if k not in ("password", "companyId", "scopesAssignedToOnly",
                                                       "twilioPhone", "profilePhoto")}


def _check_locations(ctx, comp_id, location_ids):
    tok = ctx.token
    store = ctx.app.store
    for lid in location_ids:
        loc = store.locations.get(lid)
        if loc is None or loc.company_id != comp_id or (tok.user_type == "Location" and lid != tok.location_id):
            raise ApiError(403, "The token does not have access to location %s" % lid)


def _email_taken(users, email, self_id=None):
    email = (email or "").lower()
    return any(e.rec["email"].lower() == email and uid != self_id for uid, e in users.items())


def create(store, comp_id, f, source, rng=None):
    users = company(store, comp_id)["users"]
    if _email_taken(users, f.get("email")):
        raise ApiError(400, "User with the same email already exists")
    uid = store._new_id(rng)
    t = now_ms()
    rec = user_record(uid, f)
    users[uid] = Entry(rec, t)
    loc = _loc_of(store, users[uid])
    return rec, log(store, loc, KIND, "created", uid, sorted(rec), rec, source, t)


def update(store, comp_id, entry, f, source):
    old = entry.rec
    merged = {"firstName": old["firstName"], "lastName": old["lastName"], "email": old["email"],
              "phone": old["phone"], "extension": old["extension"], "permissions": old["permissions"],
              "scopes": old["scopes"], "type": old["roles"]["type"], "role": old["roles"]["role"],
              "locationIds": old["roles"]["locationIds"], "platformLanguage": old["platformLanguage"]}
    merged.update(f)
    if "permissions" in f:
        merged["permissions"] = dict(old["permissions"], **f["permissions"])
    new = user_record(old["id"], merged, old["deleted"])
    fields = changed_fields(old, new)
    if not fields:
        return []
    entry.rec = new
    entry.updated_ms = bump(entry)
    return log(store, _loc_of(store, entry), KIND, "updated", old["id"], fields, new, source, entry.updated_ms)


def user_entry(ctx):
    """The user of the path in the token's company: 400 malformed, --deleted-status unknown/deleted."""
    uid = ctx.params["userId"]
    if not is_id(uid):
        raise ApiError(400, "Invalid userId: must be a 20-character id")
    tok = ctx.token
    store = ctx.app.store
    comp_id = tok.company_id if tok.user_type == "Company" else store.ensure_location(tok.location_id).company_id
    c = company(store, comp_id)
    if tok.user_type == "Location":
        resources.ext(store, store.ensure_location(tok.location_id))
    entry = c["users"].get(uid)
    if entry is None or entry.deleted:
        status = int(ctx.app.config.get("deleted_status", 404))
        raise ApiError(status, "User not found")
    return comp_id, entry


# --- handlers ---------------------------------------------------------------------------------------------

def search_first_page(ctx):
    return ctx.query.get("skip") in (None, "", "0")


SORTABLE = ("firstName", "lastName", "email", "name", "dateAdded")


def _sorted(entries, sort, direction):
    if sort not in SORTABLE:
        raise ApiError(422, ["sort must be one of the following values: %s" % ", ".join(SORTABLE)])
    if direction not in ("asc", "desc"):
        raise ApiError(422, ["sortDirection must be one of the following values: asc, desc"])
    if sort == "dateAdded":
        key = lambda e: (e.created_ms, e.rec["id"])   # noqa: E731
    else:
        key = lambda e: (e.rec.get(sort, "").lower(), e.rec["id"])   # noqa: E731
    return sorted(entries, key=key, reverse=direction == "desc")


def search_users(ctx):
    q = ctx.query
    c = company_of_token(ctx, q.get("companyId"))
    entries = list(c["users"].values())
    if q.get("locationId"):
        loc = resources.location_for(ctx, q["locationId"])
        resources.ext(ctx.app.store, loc)
        entries = [e for e in entries if loc.id in e.rec["roles"]["locationIds"]]
    elif ctx.token.user_type == "Location":
        resources.ext(ctx.app.store, ctx.app.store.ensure_location(ctx.token.location_id))
    if q.get("query"):
        needle = q["query"].lower()
        entries = [e for e in entries if any(needle in (e.rec.get(k) or "").lower() for k in ("name", "email", "phone"))]
    if q.get("type"):
        entries = [e for e in entries if e.rec["roles"]["type"] == q["type"]]
    if q.get("role"):
        entries = [e for e in entries if e.rec["roles"]["role"] == q["role"]]
    if q.get("ids"):
        wanted = set(q["ids"].split(","))
        entries = [e for e in entries if e.rec["id"] in wanted]
    skip = string_number(q.get("skip"), "skip", 0)
    limit = string_number(q.get("limit"), "limit", 25, 1)
    entries = _sorted(entries, q.get("sort") or "firstName", (q.get("sortDirection") or "asc").lower())
    return 200, {"users": [e.rec for e in entries[skip:skip + limit]], "count": len(entries)}


def list_by_location(ctx):
    loc = resources.location_for(ctx, ctx.query.get("locationId"))
    resources.ext(ctx.app.store, loc)
    users = company(ctx.app.store, loc.company_id)["users"].values()
    return 200, {"users": [e.rec for e in _sorted([e for e in users if loc.id in e.rec["roles"]["locationIds"]],
                                                  "firstName", "asc")]}


def get_user(ctx):
    _, entry = user_entry(ctx)
    return 200, dict(entry.rec)


def create_user(ctx):
    body = body_object(ctx)
    check_unknown(ctx, body, CREATE_FIELDS)
    f = user_fields(body, ("companyId", "firstName", "lastName", "email", "password", "type", "role",
                           "locationIds"))
    company_of_token(ctx, body["companyId"])
    _check_locations(ctx, body["companyId"], f["locationIds"])
    rec, _ = create(ctx.app.store, body["companyId"], f, ctx.source)
    return 201, dict(rec)


def update_user(ctx):
    comp_id, entry = user_entry(ctx)
    body = body_object(ctx)
    check_unknown(ctx, body, UPDATE_FIELDS)
    if "email" in body:
        raise ApiError(422, ["email update is not supported"])
    f = user_fields(body, ())
    if "locationIds" in f:
        _check_locations(ctx, comp_id, f["locationIds"])
    update(ctx.app.store, comp_id, entry, f, ctx.source)
    return 200, dict(entry.rec)


def delete_user(ctx):
    _, entry = user_entry(ctx)
    queue_delete(ctx.app.store, entry, ctx.source)
    return 200, {"succeded": True, "message": "Queued deleting user with e-mail %s and name %s. "
                                               "Will take effect in a few minutes." % (entry.rec["email"],
                                                                                      entry.rec["name"])}


def filter_first_page(ctx):
    b = ctx.body if isinstance(ctx.body, dict) else {}
    return b.get("skip") in (None, "", "0")


def filter_by_email(ctx):
    body = body_object(ctx)
    check_unknown(ctx, body, {"companyId", "emails", "deleted", "skip", "limit", "projection"})
    errors = ["%s should not be empty" % k for k in ("companyId", "emails") if body.get(k) in (None, "")]
    for k in ("emails", "skip", "limit", "projection", "companyId"):
        if k in body and not isinstance(body[k], str):
            errors.append("%s must be a string" % k)
    if "deleted" in body and not isinstance(body["deleted"], bool):
        errors.append("deleted must be a boolean value")
    if errors:
        raise ApiError(422, errors)
    c = company_of_token(ctx, body["companyId"])
    skip = string_number(body.get("skip"), "skip", 0)
    limit = string_number(body.get("limit"), "limit", 25, 1)
    emails = {e.strip().lower() for e in body["emails"].split(",") if e.strip()}
    want_deleted = body.get("deleted", False)
    entries = [e for e in _sorted(c["users"].values(), "email", "asc")
               if e.rec["email"].lower() in emails and e.rec["deleted"] == want_deleted]
    projection = body.get("projection") or "id,email"
    if projection == "all":
        users = [dict(e.rec) for e in entries]
    else:
        keep = [p.strip() for p in projection.split(",") if p.strip()]
        users = [{k: e.rec[k] for k in ["id"] + keep if k in e.rec} for e in entries]
    return 200, {"users": users[skip:skip + limit], "count": len(entries)}


# --- control ----------------------------------------------------------------------------------------------

def mutate(store, loc, op, rng, source="control"):
    """Control ops on kind user: create, update (fields), delete (asynchronous, like the API)."""
    verb, fields = op.get("op"), op.get("fields") or {}
    resources.ext(store, loc)
    users = company(store, loc.company_id)["users"]
    if verb == "create":
        n = len(users) + 1
        f = {"firstName": "User%d" % n, "lastName": "Sandbox", "email": "user%d.%s@example.com" % (n, loc.id.lower()),
             "type": "account", "role": "user", "locationIds": [loc.id]}
        f.update(user_fields(fields, ()))
        return create(store, loc.company_id, f, source, rng)[1]
    uid = op.get("id") or next((u for u in sorted(users) if not users[u].deleted and users[u].due is None), None)
    entry = users.get(uid)
    if entry is None:
        raise ApiError(404, "no user %s in company %s" % (uid, loc.company_id))
    if verb == "delete":
        queue_delete(store, entry, source)
        return []
    if verb == "update":
        return update(store, loc.company_id, entry, user_fields(fields, ()) if fields else
                      {"phone": "+1512555%04d" % rng.randint(0, 9999)}, source)
    raise ApiError(400, "user ops: create, update, delete")


# --- the table --------------------------------------------------------------------------------------------

ROUTES = [
    Route("GET", "/users/search", "search-users", search_users, auth="any", scope=READ, list_key="users",
          first_page=search_first_page, empty={"users": [], "count": 0}),
    Route("POST", "/users/search/filter-by-email", "filter-users-by-email", filter_by_email, auth="agency",
          scope=READ, list_key="users", first_page=filter_first_page, empty={"users": [], "count": 0}),
    Route("GET", "/users/", "get-user-by-location", list_by_location, scope=READ, list_key="users"),
    Route("POST", "/users/", "create-user", create_user, auth="any", scope=WRITE, bare=True),
    Route("GET", "/users/{userId}", "get-user", get_user, auth="any", scope=READ, bare=True),
    Route("PUT", "/users/{userId}", "update-user", update_user, auth="any", scope=WRITE, bare=True),
    Route("DELETE", "/users/{userId}", "delete-user", delete_user, auth="any", scope=WRITE),
]
