"""State shared by the non-contact categories (opportunities, users, businesses, workflows, campaigns,
snapshots): the per-location and per-company record stores, their deterministic reference data, and
the write helpers every category uses (monotonic update stamps, diffing, change-log entries).

Layout of the state (built lazily, deterministic from the sandbox seed and the location id):

    loc.ext["pipelines"]    id -> Entry   pipelines with UUID stage ids
    loc.ext["lostReasons"]  id -> Entry
    loc.ext["opportunities"] id -> Entry
    loc.ext["businesses"]   id -> Entry   (the ids of meta.businesses, so contacts' businessId resolves)
    loc.ext["workflows"]    id -> Entry   (the UUIDs of meta.workflows)
    loc.ext["campaigns"]    id -> Entry   (the ids of meta.campaigns)
    loc.ext["associations"] id -> Entry   one SYSTEM_DEFINED reference association (associations.py)
    loc.ext["relations"]    id -> Entry   (none at first)
    store.companies[cid]["users"]     id -> Entry   users of the company (meta.users of each location)
    store.companies[cid]["snapshots"] [SnapshotsSchema]

Reference records are a baseline like seeded contacts: they are not written to the change log.
Every function here must be called with Store.lock held.
"""

import random

from . import fakedata, util
from .util import ApiError, iso, now_ms

LIST_ORDER = ("pipelines", "lostReasons", "opportunities", "businesses", "workflows", "campaigns", "associations",
              "relations")
STAGE_NAMES = ["New lead", "Contacted", "Qualified", "Proposal sent", "Negotiation", "Closed"]
PIPELINE_NAMES = ["Sales pipeline", "Renewals"]
WORKFLOW_NAMES = ["New lead nurture", "Appointment reminder", "Review request", "Win-back"]
CAMPAIGN_NAMES = ["Spring promo", "Newsletter drip", "Reactivation"]
SNAPSHOT_NAMES = ["Dental starter", "Realty funnel", "Fitness studio"]
LOST_REASONS = ["Price too high", "Chose a competitor", "No response", "Not a fit"]


class Entry:
    """One record: `rec` is immutable once swapped in (the change log keeps references)."""
    __slots__ = ("rec", "created_ms", "updated_ms", "deleted", "due")

    def __init__(self, rec, created_ms, updated_ms=None):
        self.rec = rec
        self.created_ms = created_ms
        self.updated_ms = created_ms if updated_ms is None else updated_ms
        self.deleted = False
        self.due = None        # users: (flag_ms, gone_ms) of a queued asynchronous delete


def seed_time(rng):
    return fakedata.SEED_START_MS + int(rng.random() * (fakedata.SEED_END_MS - fakedata.SEED_START_MS))


def ext(store, loc):
    """The location's category state, created with its reference records on first use."""
    if loc.ext:
        return loc.ext
    rng = random.Random("%s:%s:resources" % (store.seed, loc.id))
    meta = loc.meta
    e = {k: {} for k in LIST_ORDER}
    for i, name in enumerate(PIPELINE_NAMES):
        pid = util.new_id(rng)
        store.all_ids.add(pid)
        n = 5 if i == 0 else 3
        stages = [{"id": util.new_uuid(rng), "name": STAGE_NAMES[j], "position": j, "showInFunnel": True,
                   "showInPieChart": True} for j in range(n)]
        rec = {"id": pid, "name": name, "stages": stages, "showInFunnel": True, "showInPieChart": i == 0,
               "locationId": loc.id}
        e["pipelines"][pid] = Entry(rec, seed_time(rng))
    for name in LOST_REASONS:
        t = seed_time(rng)
        rid = util.new_id(rng)
        store.all_ids.add(rid)
        e["lostReasons"][rid] = Entry({"id": rid, "name": name, "locationId": loc.id, "updatedAt": iso(t),
                                       "createdAt": iso(t)}, t)
    for i, bid in enumerate(meta["businesses"]):
        t = seed_time(rng)
        name = fakedata.COMPANIES[(i * 5 + len(loc.id)) % len(fakedata.COMPANIES)]
        city = rng.choice(fakedata.CITIES)
        rec = business_record(bid, loc.id, {"name": name, "city": city[0], "state": city[1], "country": "US",
                                            "website": "https://www.%s.com" % name.lower().replace(" ", "")
                                            .replace("&", "")}, t, t)
        e["businesses"][bid] = Entry(rec, t)
    for i, wid in enumerate(meta["workflows"]):
        t = seed_time(rng)
        rec = {"id": wid, "name": WORKFLOW_NAMES[i % len(WORKFLOW_NAMES)],
               "status": "published" if i < 2 else "draft", "version": 1 + i, "createdAt": iso(t),
               "updatedAt": iso(t), "locationId": loc.id}
        e["workflows"][wid] = Entry(rec, t)
    for i, cid in enumerate(meta["campaigns"]):
        rec = {"id": cid, "name": CAMPAIGN_NAMES[i % len(CAMPAIGN_NAMES)],
               "status": "published" if i < 2 else "draft", "locationId": loc.id}
        e["campaigns"][cid] = Entry(rec, seed_time(rng))
    arng = random.Random("%s:%s:associations" % (store.seed, loc.id))   # its own rng: ids above unchanged
    aid = util.new_id(arng)
    store.all_ids.add(aid)
    e["associations"][aid] = Entry({"id": aid, "locationId": loc.id, "key": "contact_opportunity",
                                    "firstObjectLabel": "contact", "firstObjectKey": "contact",
                                    "secondObjectLabel": "opportunity", "secondObjectKey": "opportunity",
                                    "associationType": "SYSTEM_DEFINED"}, seed_time(arng))
    loc.ext.update(e)
    company(store, loc.company_id)
    return loc.ext


def _add_location_users(store, c, loc):
    """A location's meta.users become users of its company (roles.locationIds = [location])."""
    rng = random.Random("%s:%s:users" % (store.seed, loc.id))
    for i, uid in enumerate(loc.meta["users"]):
        if uid in c["users"]:
            continue
        first = fakedata.FIRST_NAMES[(i * 7 + len(loc.id)) % len(fakedata.FIRST_NAMES)]
        last = fakedata.LAST_NAMES[(i * 11 + len(loc.id)) % len(fakedata.LAST_NAMES)]
        c["users"][uid] = Entry(user_record(uid, {
            "firstName": first, "lastName": last,
            "email": "%s.%s.%s@example.com" % (first.lower(), last.lower(), uid[:6].lower()),
            "phone": fakedata.phone_for(rng, "512", 9000000 + i), "type": "account",
            "role": "admin" if i == 0 else "user", "locationIds": [loc.id]}), seed_time(rng))


def company(store, company_id):
    """Company-level state (users, snapshots), created on first use.  A location whose company is
    (or becomes, through an OAuth install) this one contributes its users on the next call."""
    c = store.companies.get(company_id)
    if c is None:
        rng = random.Random("%s:%s:company" % (store.seed, company_id))
        c = store.companies[company_id] = {
            "users": {}, "locations": set(),
            "snapshots": [{"id": util.new_id(rng), "name": n, "type": "own" if i < 2 else "imported"}
                          for i, n in enumerate(SNAPSHOT_NAMES)],
        }
    for loc in list(store.locations.values()):
        if loc.company_id == company_id and loc.id not in c["locations"]:
            c["locations"].add(loc.id)
            _add_location_users(store, c, loc)
    return c


def business_record(bid, location_id, f, created_ms, updated_ms):
    rec = {"id": bid, "name": f.get("name", "")}
    for k in ("phone", "email", "website", "address", "city", "description", "state", "postalCode", "country"):
        if f.get(k) is not None:
            rec[k] = f[k]
    rec["updatedBy"] = {}
    rec["locationId"] = location_id
    rec["createdBy"] = {}
    rec["createdAt"] = iso(created_ms)
    rec["updatedAt"] = iso(updated_ms)
    return rec


DEFAULT_PERMISSIONS = {"campaignsEnabled": True, "contactsEnabled": True, "workflowsEnabled": True,
                       "opportunitiesEnabled": True, "appointmentsEnabled": True, "conversationsEnabled": True,
                       "settingsEnabled": False, "assignedDataOnly": False}


def user_record(uid, f, deleted=False):
    """UserSchema.  `f` holds CreateUserDto-like fields; the password is never part of the record."""
    first, last = f.get("firstName", ""), f.get("lastName", "")
    rec = {"id": uid, "name": " ".join(x for x in (first, last) if x), "firstName": first, "lastName": last,
           "email": f.get("email", ""), "phone": f.get("phone", ""), "extension": f.get("extension", ""),
           "permissions": dict(DEFAULT_PERMISSIONS, **(f.get("permissions") or {})),
           "scopes": list(f.get("scopes") or []),
           "roles": {"type": f.get("type", "account"), "role": f.get("role", "user"),
                     "locationIds": list(f.get("locationIds") or []), "restrictSubAccount": False},
           "deleted": deleted, "lcPhone": {}, "platformLanguage": f.get("platformLanguage", "en_US")}
    return rec


def bump(entry):
    """A new update stamp: max(now, previous + 1 ms), strictly increasing per record."""
    t = now_ms()
    return t if t > entry.updated_ms else entry.updated_ms + 1


def changed_fields(old, new):
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def log(store, loc, kind, op, rid, fields, rec, source, t=None, out=None):
    """Append a change-log entry (kind opportunity|pipeline|user|business|workflow|campaign)."""
    out = [] if out is None else out
    store._log(out, loc, kind, op, rid, fields, rec, source, now_ms() if t is None else t)
    return out


def string_number(value, name, default, lo=None, hi=None):
    """skip/limit values the spec types as strings: digits only, else 422 like class-validator."""
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).isdigit():
        raise ApiError(422, ["%s must be a number string" % name])
    n = int(value)
    if lo is not None and n < lo:
        raise ApiError(422, ["%s must not be less than %d" % (name, lo)])
    if hi is not None and n > hi:
        raise ApiError(422, ["%s must not be greater than %d" % (name, hi)])
    return n


def company_of_token(ctx, company_id, where="companyId"):
    """The company a request may read: 422 when missing, 403 when the token belongs to another one.
    A location token reaches its location's company; an agency token its own company."""
    if not company_id or not isinstance(company_id, str):
        raise ApiError(422, ["%s should not be empty" % where, "%s must be a string" % where])
    tok = ctx.token
    store = ctx.app.store
    mine = tok.company_id if tok.user_type == "Company" else store.ensure_location(tok.location_id).company_id
    if company_id != mine:
        raise ApiError(403, "The token does not have access to this company")
    return company(store, company_id)


def location_for(ctx, location_id, where="locationId"):
    """A location the token may reach (its own; for agency tokens, one of its company's): 422 / 403."""
    if location_id is None or location_id == "":
        raise ApiError(422, ["%s should not be empty" % where, "%s must be a string" % where])
    if not isinstance(location_id, str):
        raise ApiError(422, ["%s must be a string" % where])
    tok = ctx.token
    store = ctx.app.store
    if tok.user_type == "Company":
        loc = store.locations.get(location_id)
        if loc is None or loc.company_id != tok.company_id:
            raise ApiError(403, "The token does not have access to this location")
        return loc
    if location_id != tok.location_id:
        raise ApiError(403, "The token does not have access to this location")
    return store.ensure_location(location_id)
