"""Businesses (apps/businesses.json; catalog-map §1.5, §2.5, §4.5).

* Ids are 24-hex ObjectIds (a malformed one gives 400).  The location's meta.businesses ids are real
  records, so the `businessId` of seeded contacts and GET /contacts/business/{id} resolve to one.
* GET /businesses/: `skip`/`limit` number strings (defaults 0 / 100), ordered by (createdAt, id), and
  no total: a short page is the end.  POST answers 201 {success, buiseness} (sic), PUT 200
  {success, buiseness}, GET {business}, DELETE {success}.  `createdAt`/`updatedAt` are ISO date-times;
  every write bumps `updatedAt` strictly, a no-op write leaves it.
* Deletes are hard; the contacts that point to a deleted business keep their `businessId` (the live
  effect is unknown, catalog-map BA3).
"""

from . import resources, util
from .api import Route, body_object, check_unknown, not_found
from .resources import Entry, bump, business_record, changed_fields, log, string_number
from .util import ApiError, now_ms

READ, WRITE = "businesses.readonly", "businesses.write"
KIND = "business"
FIELDS = ("name", "phone", "email", "website", "address", "city", "postalCode", "state", "country", "description")


def table(store, loc):
    return resources.ext(store, loc)["businesses"]


def business_patch(body, required):
    errors = ["%s should not be empty" % k for k in required if body.get(k) in (None, "")]
    errors += ["%s must be a string" % k for k in FIELDS if k in body and not isinstance(body[k], str)]
    if errors:
        raise ApiError(422, errors)
    return {k: body[k] for k in FIELDS if k in body}


def create(store, loc, f, source, rng=None):
    t = now_ms()
    while True:
        bid = util.new_object_id(rng or store.rng)
        if bid not in store.all_ids:
            store.all_ids.add(bid)
            break
    rec = business_record(bid, loc.id, f, t, t)
    table(store, loc)[bid] = Entry(rec, t)
    return rec, log(store, loc, KIND, "created", bid, sorted(rec), rec, source, t)


def update(store, loc, entry, patch, source):
    old = entry.rec
    f = {k: old.get(k) for k in FIELDS}
    f.update(patch)
    same = business_record(old["id"], loc.id, f, entry.created_ms, entry.updated_ms)
    if same == old:
        return []
    t = bump(entry)
    new = business_record(old["id"], loc.id, f, entry.created_ms, t)
    entry.rec, entry.updated_ms = new, t
    return log(store, loc, KIND, "updated", old["id"], changed_fields(old, new), new, source, t)


def delete(store, loc, entry, source):
    del table(store, loc)[entry.rec["id"]]
    entry.deleted = True
    return log(store, loc, KIND, "deleted", entry.rec["id"], [], entry.rec, source)


def business_entry(ctx):
    bid = ctx.params["businessId"]
    if not util.is_object_id(bid):
        raise ApiError(400, "Invalid businessId: must be a 24-character hex id")
    store = ctx.app.store
    loc = store.ensure_location(ctx.token.location_id)
    entry = table(store, loc).get(bid)
    if entry is None:
        for other in list(store.locations.values()):
            if other is not loc and bid in table(store, other):
                raise ApiError(403, "The token does not have access to this location")
        raise not_found(ctx, "Business")
    return loc, entry


def list_first_page(ctx):
    return ctx.query.get("skip") in (None, "", "0")


def list_businesses(ctx):
    q = ctx.query
    loc = resources.location_for(ctx, q.get("locationId"))
    skip = string_number(q.get("skip"), "skip", 0)
    limit = string_number(q.get("limit"), "limit", 100, 1)
    entries = sorted(table(ctx.app.store, loc).values(), key=lambda e: (e.created_ms, e.rec["id"]))
    return 200, {"businesses": [e.rec for e in entries[skip:skip + limit]]}


def get_business(ctx):
    _, entry = business_entry(ctx)
    return 200, {"business": entry.rec}


def create_business(ctx):
    body = body_object(ctx)
    check_unknown(ctx, body, set(FIELDS) | {"locationId"})
    patch = business_patch(body, ("name", "locationId"))
    loc = resources.location_for(ctx, body["locationId"])
    rec, _ = create(ctx.app.store, loc, patch, ctx.source)
    return 201, {"success": True, "buiseness": rec}


def update_business(ctx):
    loc, entry = business_entry(ctx)
    body = body_object(ctx)
    check_unknown(ctx, body, set(FIELDS))
    update(ctx.app.store, loc, entry, business_patch(body, ()), ctx.source)
    return 200, {"success": True, "buiseness": entry.rec}


def delete_business(ctx):
    loc, entry = business_entry(ctx)
    delete(ctx.app.store, loc, entry, ctx.source)
    return 200, {"success": True}


def mutate(store, loc, op, rng, source="control"):
    """Control ops on kind business: create, update (fields), delete."""
    verb, fields = op.get("op"), op.get("fields") or {}
    t = table(store, loc)
    if verb == "create":
        f = {"name": "Business %d" % (len(t) + 1)}
        f.update(business_patch(fields, ()))
        return create(store, loc, f, source, rng)[1]
    bid = op.get("id") or (sorted(t)[0] if t else None)
    entry = t.get(bid)
    if entry is None:
        raise ApiError(404, "no business %s in %s" % (bid, loc.id))
    if verb == "delete":
        return delete(store, loc, entry, source)
    if verb == "update":
        patch = business_patch(fields, ()) if fields else {"phone": "+1512555%04d" % rng.randint(0, 9999)}
        return update(store, loc, entry, patch, source)
    raise ApiError(400, "business ops: create, update, delete")


ROUTES = [
    Route("GET", "/businesses/", "get-businesses-by-location", list_businesses, scope=READ, list_key="businesses",
          first_page=list_first_page),
    Route("POST", "/businesses/", "create-business", create_business, scope=WRITE),
    Route("GET", "/businesses/{businessId}", "get-business", get_business, scope=READ),
    Route("PUT", "/businesses/{businessId}", "update-business", update_business, scope=WRITE),
    Route("DELETE", "/businesses/{businessId}", "delete-Business", delete_business, scope=WRITE),
]
