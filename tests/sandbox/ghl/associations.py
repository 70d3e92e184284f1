"""Associations and relations (apps/associations.json; catalog-map §1.7 X4-X8, §2.7 XA3-XA7, §4.7).

* An association is a link type between two kinds of object under a `key` unique in the location:
  {id, locationId, key, firstObjectLabel, firstObjectKey, secondObjectLabel, secondObjectKey,
  associationType}.  The spec types the labels and object keys as objects; they are strings (its
  examples, 3rd-party code).  Each location has one SYSTEM_DEFINED reference association
  (contact_opportunity, resources.ext); those cannot be changed or deleted (400, ASSUMPTION).
* A relation links two records through an association: {id, locationId, associationId, firstRecordId,
  secondRecordId}.  The same (associationId, firstRecordId, secondRecordId) twice is a 400; a contact
  record id must be a live contact of the location (400 otherwise).  Deleting an association deletes
  its relations (the cascade is logged, one entry per relation).
* POST /associations/ and PUT answer the bare association (201 / 200), GET /associations/{id} too;
  POST /associations/relations the bare relation (201, the spec reuses the association schema);
  DELETE /associations/{id} {deleted, id, message}, DELETE /associations/relations/{id} the same shape
  (ASSUMPTION; the spec reuses the association schema).  GET /associations/ and
  GET /associations/relations/{recordId} take required `skip`/`limit` (422 without) and answer
  {associations:[...]} / {relations:[...]} (list keys undocumented, catalog-map §7), no total.
* The operationId of POST /associations/ is create-association, which apps/contacts.json also uses
  (bulk tags): this module's route is "associations/create-association" in the request log.
"""

from . import resources, util
from .api import Route, body_object, check_unknown, not_found
from .resources import Entry, log, string_number
from .util import ApiError, now_ms

READ, WRITE = "associations.readonly", "associations.write"
REL_READ, REL_WRITE = "associations/relation.readonly", "associations/relation.write"
LABELS = ("firstObjectLabel", "secondObjectLabel")
CREATE = ("key", "firstObjectLabel", "firstObjectKey", "secondObjectLabel", "secondObjectKey")
RELATION = ("associationId", "firstRecordId", "secondRecordId")
OBJECT_KEYS = ("contact", "opportunity", "business")


def associations(store, loc):
    return resources.ext(store, loc)["associations"]


def relations(store, loc):
    return resources.ext(store, loc)["relations"]


def strings(body, names):
    """422 unless every name is a non-empty string."""
    errors = []
    for k in names:
        if body.get(k) in (None, ""):
            errors.append("%s should not be empty" % k)
        elif not isinstance(body[k], str):
            errors.append("%s must be a string" % k)
    if errors:
        raise ApiError(422, errors)


def new_id(store, rng=None):
    while True:
        rid = util.new_id(rng or store.rng)
        if rid not in store.all_ids:
            store.all_ids.add(rid)
            return rid


def create(store, loc, f, source, rng=None):
    for k in ("firstObjectKey", "secondObjectKey"):
        if f[k] not in OBJECT_KEYS and not f[k].startswith("custom_objects."):
            raise ApiError(400, "Invalid %s: %s" % (k, f[k]))
    if any(e.rec["key"] == f["key"] for e in associations(store, loc).values()):
        raise ApiError(400, "Association with key %s already exists" % f["key"])
    aid = new_id(store, rng)
    rec = dict({"id": aid, "locationId": loc.id, "associationType": "USER_DEFINED"}, **f)
    associations(store, loc)[aid] = Entry(rec, now_ms())
    return rec, log(store, loc, "association", "created", aid, sorted(rec), rec, source)


def update(store, loc, entry, labels, source):
    system(entry)
    old = entry.rec
    new = dict(old, **labels)
    if new == old:
        return []
    entry.rec = new
    return log(store, loc, "association", "updated", old["id"], resources.changed_fields(old, new), new, source)


def delete(store, loc, entry, source):
    system(entry)
    aid = entry.rec["id"]
    out = []
    for rel in [e for e in relations(store, loc).values() if e.rec["associationId"] == aid]:
        delete_relation(store, loc, rel, source, out)
    del associations(store, loc)[aid]
    entry.deleted = True
    return log(store, loc, "association", "deleted", aid, [], entry.rec, source, out=out)


def system(entry):
    if entry.rec["associationType"] != "USER_DEFINED":
        raise ApiError(400, "System defined associations cannot be changed or deleted")


def create_relation(store, loc, f, source, rng=None):
    assoc = associations(store, loc).get(f["associationId"])
    if assoc is None:
        raise ApiError(400, "Association %s not found" % f["associationId"])
    for side in ("first", "second"):
        rid = f[side + "RecordId"]
        if assoc.rec[side + "ObjectKey"] == "contact" and loc.live(rid) is None:
            raise ApiError(400, "%sRecordId %s is not a contact of the location" % (side, rid))
    if any(all(e.rec[k] == f[k] for k in RELATION) for e in relations(store, loc).values()):
        raise ApiError(400, "Relation already exists")
    rid = new_id(store, rng)
    rec = dict({"id": rid, "locationId": loc.id}, **{k: f[k] for k in RELATION})
    relations(store, loc)[rid] = Entry(rec, now_ms())
    return rec, log(store, loc, "relation", "created", rid, sorted(rec), rec, source)


def delete_relation(store, loc, entry, source, out=None):
    del relations(store, loc)[entry.rec["id"]]
    entry.deleted = True
    return log(store, loc, "relation", "deleted", entry.rec["id"], [], entry.rec, source, out=out)


def association_entry(ctx):
    aid = ctx.params["associationId"]
    loc = ctx.app.store.ensure_location(ctx.token.location_id)
    entry = associations(ctx.app.store, loc).get(aid)
    if entry is None:
        raise not_found(ctx, "Association")
    return loc, entry


def page(ctx):
    q = ctx.query
    missing = [k for k in ("skip", "limit") if q.get(k) in (None, "")]
    if missing:
        raise ApiError(422, ["%s must be a number string" % k for k in missing])
    skip = string_number(q["skip"], "skip", 0)
    return skip, skip + string_number(q["limit"], "limit", 100, 1, 500)


def ordered(table):
    return [e.rec for e in sorted(table.values(), key=lambda e: (e.created_ms, e.rec["id"]))]


def list_associations(ctx):
    loc = resources.location_for(ctx, ctx.query.get("locationId"))
    lo, hi = page(ctx)
    return 200, {"associations": ordered(associations(ctx.app.store, loc))[lo:hi]}


def get_association(ctx):
    return 200, association_entry(ctx)[1].rec


def create_from_body(ctx, names, make):
    """POST handlers: body = locationId + the string members `names` (all required) -> 201 record."""
    body = body_object(ctx)
    check_unknown(ctx, body, set(names) | {"locationId"})
    strings(body, names + ("locationId",))
    loc = resources.location_for(ctx, body["locationId"])
    return 201, make(ctx.app.store, loc, {k: body[k] for k in names}, ctx.source)[0]


def create_association(ctx):
    return create_from_body(ctx, CREATE, create)


def update_association(ctx):
    loc, entry = association_entry(ctx)
    body = body_object(ctx)
    check_unknown(ctx, body, set(LABELS))
    strings(body, LABELS)
    update(ctx.app.store, loc, entry, {k: body[k] for k in LABELS}, ctx.source)
    return 200, entry.rec


def delete_association(ctx):
    loc, entry = association_entry(ctx)
    delete(ctx.app.store, loc, entry, ctx.source)
    return 200, {"deleted": True, "id": entry.rec["id"], "message": "Association deleted successfully"}


def list_relations(ctx):
    q = ctx.query
    loc = resources.location_for(ctx, q.get("locationId"))
    lo, hi = page(ctx)
    rid = ctx.params["recordId"]
    wanted = set(filter(None, (q.get("associationIds") or "").split(",")))
    recs = [r for r in ordered(relations(ctx.app.store, loc)) if rid in (r["firstRecordId"], r["secondRecordId"])
            and (not wanted or r["associationId"] in wanted)]
    return 200, {"relations": recs[lo:hi]}


def create_relation_route(ctx):
    return create_from_body(ctx, RELATION, create_relation)


def delete_relation_route(ctx):
    loc = resources.location_for(ctx, ctx.query.get("locationId"))
    entry = relations(ctx.app.store, loc).get(ctx.params["relationId"])
    if entry is None:
        raise not_found(ctx, "Relation")
    delete_relation(ctx.app.store, loc, entry, ctx.source)
    return 200, {"deleted": True, "id": entry.rec["id"], "message": "Relation deleted successfully"}


def mutate(store, loc, op, rng, source="control"):
    """Control ops on kind association: create (fields), update (id, labels), delete (id)."""
    verb, fields = op.get("op"), op.get("fields") or {}
    table = associations(store, loc)
    if verb == "create":
        n = len(table) + 1
        f = {"key": "link_%d" % n, "firstObjectLabel": "first %d" % n, "firstObjectKey": "contact",
             "secondObjectLabel": "second %d" % n, "secondObjectKey": "contact"}
        f.update({k: v for k, v in fields.items() if k in CREATE})
        strings(f, CREATE)
        return create(store, loc, f, source, rng)[1]
    entry = table.get(op.get("id"))
    if entry is None:
        raise ApiError(404, "no association %s in %s" % (op.get("id"), loc.id))
    if verb == "delete":
        return delete(store, loc, entry, source)
    if verb == "update":
        labels = {k: v for k, v in fields.items() if k in LABELS} or {"firstObjectLabel": "relabelled"}
        return update(store, loc, entry, labels, source)
    raise ApiError(400, "association ops: create, update, delete")


def mutate_relation(store, loc, op, rng, source="control"):
    """Control ops on kind relation: create (fields associationId, firstRecordId, secondRecordId), delete (id)."""
    verb = op.get("op")
    if verb == "create":
        f = op.get("fields") or {}
        strings(f, RELATION)
        return create_relation(store, loc, f, source, rng)[1]
    entry = relations(store, loc).get(op.get("id"))
    if entry is None:
        raise ApiError(404, "no relation %s in %s" % (op.get("id"), loc.id))
    if verb == "delete":
        return delete_relation(store, loc, entry, source)
    raise ApiError(400, "relation ops: create, delete")


ROUTES = [
    Route("GET", "/associations/", "find-associations", list_associations, scope=READ, list_key="associations"),
    Route("POST", "/associations/", "associations/create-association", create_association, scope=WRITE,
          bare=True),
    Route("POST", "/associations/relations", "create-relation", create_relation_route, scope=REL_WRITE, bare=True),
    Route("GET", "/associations/relations/{recordId}", "get-relations-by-record-id", list_relations,
          scope=REL_READ, list_key="relations"),
    Route("DELETE", "/associations/relations/{relationId}", "delete-relation", delete_relation_route,
          scope=REL_WRITE),
    Route("GET", "/associations/{associationId}", "get-association-by-ID", get_association, scope=READ, bare=True),
    Route("PUT", "/associations/{associationId}", "update-association", update_association, scope=WRITE,
          bare=True),
    Route("DELETE", "/associations/{associationId}", "delete-association", delete_association, scope=WRITE),
]
