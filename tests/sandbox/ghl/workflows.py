"""Workflows, campaigns and snapshots (apps/workflows.json, campaigns.json, snapshots.json;
catalog-map §1.6, §4.6).  Unpaginated lists.

* GET /workflows/?locationId: {workflows:[{id (UUID), name, status draft|published, version, createdAt,
  updatedAt, locationId}]}; the location's meta.workflows UUIDs are these records.  A rename or a
  publish bumps `version` and `updatedAt`.
* GET /campaigns/?locationId[&status]: {campaigns:[{id, name, status, locationId}]}; meta.campaigns.
* GET /snapshots/?companyId: agency token only (Agency-Access); {snapshots:[{id, name, type own|imported}]}.
* The enrolment routes (POST/DELETE /contacts/{id}/workflow/{workflowId}, campaigns) stay in api.py.
"""

from . import resources, util
from .api import Route
from .resources import Entry, bump, changed_fields, company_of_token, log
from .util import ApiError, iso, now_ms


def list_workflows(ctx):
    loc = resources.location_for(ctx, ctx.query.get("locationId"))
    entries = sorted(resources.ext(ctx.app.store, loc)["workflows"].values(),
                     key=lambda e: (e.created_ms, e.rec["id"]))
    return 200, {"workflows": [e.rec for e in entries]}


def list_campaigns(ctx):
    q = ctx.query
    loc = resources.location_for(ctx, q.get("locationId"))
    entries = sorted(resources.ext(ctx.app.store, loc)["campaigns"].values(),
                     key=lambda e: (e.created_ms, e.rec["id"]))
    if q.get("status"):
        entries = [e for e in entries if e.rec["status"] == q["status"]]
    return 200, {"campaigns": [e.rec for e in entries]}


def list_snapshots(ctx):
    c = company_of_token(ctx, ctx.query.get("companyId"))
    return 200, {"snapshots": list(c["snapshots"])}


# --- control ----------------------------------------------------------------------------------------

def _target(store, loc, table, kind, op, source):
    """(entry, None) for the record an op names (the first one when no id), or (None, changes) once a
    delete op has removed it."""
    rid = op.get("id") or (sorted(table)[0] if table else None)
    entry = table.get(rid)
    if entry is None:
        raise ApiError(404, "no %s %s in %s" % (kind, rid, loc.id))
    if op.get("op") != "delete":
        return entry, None
    del table[rid]
    return None, log(store, loc, kind, "deleted", rid, [], entry.rec, source)


def mutate_workflow(store, loc, op, rng, source="control"):
    """Control ops on kind workflow: create, rename (fields.name), publish, unpublish (draft), delete.
    rename and publish bump version and updatedAt."""
    table = resources.ext(store, loc)["workflows"]
    verb, fields = op.get("op"), op.get("fields") or {}
    if verb == "create":
        t = now_ms()
        wid = util.new_uuid(rng)
        rec = {"id": wid, "name": fields.get("name", "Workflow %d" % (len(table) + 1)), "status": "draft",
               "version": 1, "createdAt": iso(t), "updatedAt": iso(t), "locationId": loc.id}
        table[wid] = Entry(rec, t)
        return log(store, loc, "workflow", "created", wid, sorted(rec), rec, source, t)
    entry, deleted = _target(store, loc, table, "workflow", op, source)
    if entry is None:
        return deleted
    old = entry.rec
    if verb == "rename":
        new = dict(old, name=fields.get("name", old["name"] + " v%d" % (old["version"] + 1)))
    elif verb in ("publish", "unpublish"):
        new = dict(old, status="published" if verb == "publish" else "draft")
    else:
        raise ApiError(400, "workflow ops: create, rename, publish, unpublish, delete")
    if verb != "unpublish":
        new["version"] = old["version"] + 1
    t = bump(entry)
    new["updatedAt"] = iso(t)
    entry.rec, entry.updated_ms = new, t
    return log(store, loc, "workflow", "updated", old["id"], changed_fields(old, new), new, source, t)


def mutate_campaign(store, loc, op, rng, source="control"):
    """Control ops on kind campaign: create, status (fields.status), rename, delete."""
    table = resources.ext(store, loc)["campaigns"]
    verb, fields = op.get("op"), op.get("fields") or {}
    if verb == "create":
        cid = store._new_id(rng)
        rec = {"id": cid, "name": fields.get("name", "Campaign %d" % (len(table) + 1)),
               "status": fields.get("status", "draft"), "locationId": loc.id}
        table[cid] = Entry(rec, now_ms())
        return log(store, loc, "campaign", "created", cid, sorted(rec), rec, source)
    entry, deleted = _target(store, loc, table, "campaign", op, source)
    if entry is None:
        return deleted
    old = entry.rec
    if verb == "status":
        new = dict(old, status=fields.get("status") or ("draft" if old["status"] == "published" else "published"))
    elif verb == "rename":
        new = dict(old, name=fields.get("name", old["name"] + " (renamed)"))
    else:
        raise ApiError(400, "campaign ops: create, status, rename, delete")
    fields_changed = changed_fields(old, new)
    if not fields_changed:
        return []
    entry.rec = new
    return log(store, loc, "campaign", "updated", old["id"], fields_changed, new, source)


ROUTES = [
    Route("GET", "/workflows/", "get-workflow", list_workflows, scope="workflows.readonly", list_key="workflows"),
    Route("GET", "/campaigns/", "get-campaigns", list_campaigns, scope="campaigns.readonly", list_key="campaigns"),
    Route("GET", "/snapshots/", "get-custom-snapshots", list_snapshots, auth="agency", scope="snapshots.readonly",
          list_key="snapshots"),
]
