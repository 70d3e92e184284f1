"""Location-wide task search (apps/locations.json `task-search`; catalog-map §3.1).

* POST /locations/{locationId}/tasks/search, scope locations/tasks.readonly, location token of that location
  (another location: 403).  Body TaskSearchParamsDto, every member optional: `contactId` and `assignedTo`
  (arrays of ids: a task matches one of them), `completed` (true: completed tasks only, false: pending only;
  absent: both), `query` (case-insensitive substring of the title or body), `businessId` (the tasks of the
  contacts of that business), `skip` (default 0) and `limit` (default 25 as the spec says; maximum 100,
  ASSUMPTION: the spec documents none).  Numbers, not strings; unknown members give 422.
* 200 `{tasks}`: the same TaskSchema records as GET /contacts/{contactId}/tasks (the spec types the items
  as untyped arrays; ASSUMPTION that live items are task objects), no total (a short page is the end).
  Ordered by creation across the location, so paging is stable while tasks are added; the tasks of
  deleted contacts are not listed.
"""

from .api import Route, body_object, check_unknown, int_param
from .resources import location_for
from .util import ApiError

READ = "locations/tasks.readonly"
MAX_LIMIT = 100
DEFAULT_LIMIT = 25
BODY = {"contactId", "completed", "assignedTo", "query", "limit", "skip", "businessId"}


def id_list(body, name):
    """An optional array of strings as a set (None when absent)."""
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, list) or any(not isinstance(x, str) for x in v):
        raise ApiError(422, ["%s must be an array of strings" % name, "each value in %s must be a string" % name])
    return frozenset(v)


def optional(body, name, kind, what):
    v = body.get(name)
    if v is not None and (not isinstance(v, kind) or (kind is not bool and isinstance(v, bool))):
        raise ApiError(422, ["%s must be %s" % (name, what)])
    return v


class Filter:
    """The body's filters; `key` names them for the listing cache."""

    def __init__(self, body):
        self.contacts = id_list(body, "contactId")
        self.assigned = id_list(body, "assignedTo")
        self.completed = optional(body, "completed", bool, "a boolean value")
        query = optional(body, "query", str, "a string")
        self.query = query.lower() if query else None
        self.business = optional(body, "businessId", str, "a string")
        self.key = (self.contacts, self.assigned, self.completed, self.query, self.business)

    def matches(self, contact, task):
        if self.contacts is not None and task["contactId"] not in self.contacts:
            return False
        if self.assigned is not None and task.get("assignedTo") not in self.assigned:
            return False
        if self.completed is not None and task["completed"] != self.completed:
            return False
        if self.business is not None and contact.rec.get("businessId") != self.business:
            return False
        if self.query is not None:
            text = (task.get("title") or "") + "\n" + (task.get("body") or "")
            return self.query in text.lower()
        return True


def matching(store, loc, flt):
    """The matching tasks in creation order. Cached per location and filter until the location changes:
    every task write bumps its contact, hence loc.version; seeding adds to task_owner."""
    stamp = (loc.version, id(store.task_owner), len(store.task_owner))
    cache = getattr(store, "_task_search_cache", None)
    if cache is None or cache[0] != stamp:
        cache = (stamp, {})
        store._task_search_cache = cache
    hit = cache[1].get((loc.id, flt.key))
    if hit is not None:
        return hit
    out = []
    for tid, (lid, cid) in store.task_owner.items():
        if lid != loc.id:
            continue
        contact = loc.contacts.get(cid)
        if contact is None or contact.deleted:
            continue
        task = contact.tasks.get(tid)
        if task is not None and flt.matches(contact, task):
            out.append(task)
    cache[1][(loc.id, flt.key)] = out
    return out


def first_page(ctx):
    b = ctx.body if isinstance(ctx.body, dict) else {}
    return b.get("skip") in (None, 0)


def search_tasks(ctx):
    loc = location_for(ctx, ctx.params["locationId"])
    body = body_object(ctx)
    check_unknown(ctx, body, BODY)
    for k in ("skip", "limit"):
        if isinstance(body.get(k), (str, bool)):
            raise ApiError(422, ["%s must be a number conforming to the specified constraints" % k])
    skip = int_param(body.get("skip"), "skip", 0, 0)
    limit = int_param(body.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    tasks = matching(ctx.app.store, loc, Filter(body))
    return 200, {"tasks": [dict(t) for t in tasks[skip:skip + limit]]}


ROUTES = [
    Route("POST", "/locations/{locationId}/tasks/search", "task-search", search_tasks, scope=READ,
          list_key="tasks", first_page=first_page),
]
