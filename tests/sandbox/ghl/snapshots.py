"""Snapshot pushes and share links (apps/snapshots.json; catalog-map §1.6).  Agency token only
(Agency-Access), every route takes `companyId` (its own company, else 403; missing: 422).

* A push (control op `snapshot_push`/`push` on a location) is a document {id, snapshotId, locationId,
  started_ms, duration_ms}.  Its status is computed on read: `processing` while the assets are copied
  (`completed` grows and `pending` shrinks over `duration_ms`), then `completed`.  ASSUMPTION: the
  live status values beyond the spec's example `processing` are undocumented.
* GET /snapshots/snapshot-status/{snapshotId}?companyId&from&to&lastDoc&limit: the pushes of the
  snapshot started in [from, to] ("MM-DD-YYYY hh:mm AM", UTC), ordered by (start, id), after the
  document `lastDoc` (empty: from the start), at most `limit` (a number string): {data:[{id, locationId,
  status, dateAdded}]}.  All five parameters are required by the spec (lastDoc may be empty).
* GET /snapshots/snapshot-status/{snapshotId}/location/{locationId}?companyId: the location's latest
  push of the snapshot, {data:{id, locationId, status, completed, pending}}; none yet: 400
  (ASSUMPTION: the live answer is undocumented).
* POST /snapshots/share/link?companyId: body {snapshot_id, share_type (link | permanent_link |
  agency_link | location_link), relationship_number (agency_link), share_location_id (location_link)}
  -> 201 {id, shareLink}.  The links are kept in the company state (`shareLinks`).
"""

from datetime import datetime, timezone

from . import util
from .api import Route, body_object, check_unknown
from .resources import company, company_of_token, log, string_number
from .util import ApiError, iso, now_ms

ASSETS = ("custom_fields", "custom_values", "tags", "forms", "surveys", "funnels", "workflows")
SHARE_TYPES = ("link", "permanent_link", "agency_link", "location_link")
DEFAULT_PUSH_MS = 2000


def _snapshot(comp, snapshot_id):
    if not any(s["id"] == snapshot_id for s in comp["snapshots"]):
        raise ApiError(400, "Snapshot not found")
    return snapshot_id


def _pushes(comp):
    return comp.setdefault("pushes", [])


def push_status(push, now=None):
    """The push's (status, completed, pending) at `now`: assets complete one by one over its duration."""
    elapsed = (now_ms() if now is None else now) - push["started_ms"]
    if elapsed >= push["duration_ms"]:
        return "completed", list(ASSETS), []
    k = max(0, elapsed) * len(ASSETS) // max(1, push["duration_ms"])
    return "processing", list(ASSETS[:k]), list(ASSETS[k:])


def _when(value, name):
    """A "MM-DD-YYYY hh:mm AM" query value as epoch ms (UTC); 422 when missing or malformed."""
    if not value:
        raise ApiError(422, ["%s should not be empty" % name])
    try:
        dt = datetime.strptime(value, "%m-%d-%Y %I:%M %p").replace(tzinfo=timezone.utc)
    except ValueError:
        raise ApiError(422, ["%s must be a date as MM-DD-YYYY hh:mm AM" % name]) from None
    return int(dt.timestamp() * 1000)


def list_pushes(ctx):
    q = ctx.query
    comp = company_of_token(ctx, q.get("companyId"))
    sid = _snapshot(comp, ctx.params["snapshotId"])
    lo, hi = _when(q.get("from"), "from"), _when(q.get("to"), "to") + 59999
    if "limit" not in q or "lastDoc" not in q:
        raise ApiError(422, ["%s should not be empty" % n for n in ("lastDoc", "limit") if n not in q])
    limit = string_number(q.get("limit"), "limit", 10, 1)
    rows = sorted((p for p in _pushes(comp) if p["snapshotId"] == sid and lo <= p["started_ms"] <= hi),
                  key=lambda p: (p["started_ms"], p["id"]))
    if q["lastDoc"]:
        ids = [p["id"] for p in rows]
        if q["lastDoc"] not in ids:
            raise ApiError(400, "lastDoc not found")
        rows = rows[ids.index(q["lastDoc"]) + 1:]
    now = now_ms()
    return 200, {"data": [{"id": p["id"], "locationId": p["locationId"], "status": push_status(p, now)[0],
                           "dateAdded": iso(p["started_ms"])} for p in rows[:limit]]}


def latest_push(ctx):
    comp = company_of_token(ctx, ctx.query.get("companyId"))
    sid = _snapshot(comp, ctx.params["snapshotId"])
    loc_id = ctx.params["locationId"]
    if loc_id not in comp["locations"]:
        raise ApiError(400, "Location not found in this company")
    mine = [p for p in _pushes(comp) if p["snapshotId"] == sid and p["locationId"] == loc_id]
    if not mine:
        raise ApiError(400, "No snapshot push found for this location")
    p = max(mine, key=lambda p: (p["started_ms"], p["id"]))
    status, done, pending = push_status(p)
    return 200, {"data": {"id": p["id"], "locationId": loc_id, "status": status, "completed": done,
                          "pending": pending}}


def share_link(ctx):
    comp = company_of_token(ctx, ctx.query.get("companyId"))
    b = body_object(ctx)
    check_unknown(ctx, b, {"snapshot_id", "share_type", "relationship_number", "share_location_id"})
    errs = ["%s must be a string" % k for k in ("snapshot_id", "share_type", "relationship_number",
                                                 "share_location_id")
            if k in b and not isinstance(b[k], str)]
    if not b.get("snapshot_id"):
        errs.append("snapshot_id should not be empty")
    if b.get("share_type") not in SHARE_TYPES:
        errs.append("share_type must be one of the following values: " + ", ".join(SHARE_TYPES))
    if errs:
        raise ApiError(422, errs)
    _snapshot(comp, b["snapshot_id"])
    needs = {"agency_link": "relationship_number", "location_link": "share_location_id"}.get(b["share_type"])
    if needs and not b.get(needs):
        raise ApiError(400, "%s is required for share_type %s" % (needs, b["share_type"]))
    lid = ctx.app.store._new_id()
    comp.setdefault("shareLinks", []).append(dict(b, id=lid))
    return 201, {"id": lid, "shareLink": "https://affiliates.gohighlevel.com/?share=" + lid}


# --- control ----------------------------------------------------------------------------------------

def mutate_push(store, loc, op, rng, source="control"):
    """Control op on kind snapshot_push: push (fields.snapshotId, default the company's first snapshot;
    fields.duration_ms, default 2000) pushes a snapshot to the location; logged as `created`."""
    if op.get("op") != "push":
        raise ApiError(400, "snapshot_push ops: push")
    fields = op.get("fields") or {}
    comp = company(store, loc.company_id)
    sid = fields.get("snapshotId") or comp["snapshots"][0]["id"]
    _snapshot(comp, sid)
    duration = fields.get("duration_ms", DEFAULT_PUSH_MS)
    if not isinstance(duration, int) or isinstance(duration, bool) or duration < 0:
        raise ApiError(400, "duration_ms must be a whole number")
    t = now_ms()
    push = {"id": util.new_id(rng), "snapshotId": sid, "locationId": loc.id, "started_ms": t,
            "duration_ms": duration}
    _pushes(comp).append(push)
    return log(store, loc, "snapshot_push", "created", push["id"], sorted(push), dict(push), source, t)


ROUTES = [
    Route("GET", "/snapshots/snapshot-status/{snapshotId}", "get-snapshot-push", list_pushes, auth="agency",
          scope="snapshots.readonly", list_key="data"),
    Route("GET", "/snapshots/snapshot-status/{snapshotId}/location/{locationId}", "get-latest-snapshot-push",
          latest_push, auth="agency", scope="snapshots.readonly"),
    Route("POST", "/snapshots/share/link", "create-snapshot-share-link", share_link, auth="agency",
          scope="snapshots.write"),
]
