"""POST /contacts/search semantics: filters, sort, query, page / searchAfter cursors.

Request shape (notes §5.3): locationId*, pageLimit* (1..500), page (1-based), searchAfter (cursor),
filters ([{field, operator, value}] or {group: AND|OR, filters: [...]}; top level is AND),
sort ([{field, direction}], default dateAdded asc; id asc is always the final tie-break), query.
"""

import bisect
import json

from .util import ApiError, now_ms, parse_iso, to_ms

STR, DATE, BOOL, LIST = "string", "date", "boolean", "array"

MAX_PAGE_LIMIT = 500
MAX_PAGE_WINDOW = 10000
MAX_QUERY_LEN = 75


def _rec(key):
    return lambda v: v.rec.get(key)


FIELDS = {
    "id": (STR, _rec("id")),
    "firstName": (STR, _rec("firstName")),
    "lastName": (STR, _rec("lastName")),
    "name": (STR, _rec("name")),
    "contactName": (STR, _rec("name")),
    "firstNameLowerCase": (STR, _rec("firstNameLowerCase")),
    "lastNameLowerCase": (STR, _rec("lastNameLowerCase")),
    "fullNameLowerCase": (STR, _rec("fullNameLowerCase")),
    "email": (STR, _rec("email")),
    "emailLowerCase": (STR, _rec("emailLowerCase")),
    "phone": (STR, _rec("phone")),
    "companyName": (STR, _rec("companyName")),
    "businessName": (STR, _rec("companyName")),
    "type": (STR, _rec("type")),
    "source": (STR, _rec("source")),
    "assignedTo": (STR, _rec("assignedTo")),
    "address": (STR, _rec("address1")),
    "address1": (STR, _rec("address1")),
    "city": (STR, _rec("city")),
    "state": (STR, _rec("state")),
    "country": (STR, _rec("country")),
    "postalCode": (STR, _rec("postalCode")),
    "website": (STR, _rec("website")),
    "timezone": (STR, _rec("timezone")),
    "businessId": (STR, _rec("businessId")),
    "dnd": (BOOL, lambda v: bool(v.rec.get("dnd", False))),
    "tags": (LIST, _rec("tags")),
    "followers": (LIST, _rec("followers")),
    "additionalEmails": (LIST, _rec("additionalEmails")),
    "dateAdded": (DATE, lambda v: v.added_ms),
    "dateUpdated": (DATE, lambda v: v.updated_ms),
    "dateOfBirth": (DATE, lambda v: parse_iso(v.rec.get("dateOfBirth"))),
}


def _custom_getter(field_id):
    def get(v):
        for cf in v.rec.get("customFields") or ():
            if cf.get("id") == field_id:
                return None if cf.get("value") is None else str(cf.get("value"))
        return None
    return get


def resolve_field(name):
    if not isinstance(name, str) or not name:
        raise ApiError(422, ["field must be a non-empty string"])
    if name in FIELDS:
        return FIELDS[name]
    for prefix in ("customFields.", "customField."):
        if name.startswith(prefix) and len(name) > len(prefix):
            return STR, _custom_getter(name[len(prefix):])
    raise ApiError(422, ["%s is not a supported search field" % name])


def _bool(value, field):
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ApiError(422, ["value of %s must be a boolean" % field])


def _date(value, field):
    ms = to_ms(value)
    if ms is None:
        raise ApiError(422, ["value of %s must be an ISO-8601 date or epoch milliseconds" % field])
    return ms


def _scalar_str(value, field):
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, bool):
        return str(value).lower()
    raise ApiError(422, ["value of %s must be a string" % field])


def _present(x):
    return x is not None and x != "" and x != []


def _eq(kind, get, value, field):
    if kind == BOOL:
        b = _bool(value, field)
        return lambda v: get(v) == b
    if kind == DATE:
        ms = _date(value, field)
        return lambda v: get(v) == ms
    wanted = {_scalar_str(x, field) for x in (value if isinstance(value, list) else [value])}
    if kind == LIST:
        return lambda v: any(str(e).lower() in wanted for e in (get(v) or ()))
    return lambda v: get(v) is not None and str(get(v)).lower() in wanted


def _contains(kind, get, value, field):
    if kind in (BOOL, DATE):
        raise ApiError(422, ["operator contains is not supported for field %s" % field])
    if not isinstance(value, str):
        raise ApiError(422, ["value of %s must be a string" % field])
    needle = value.lower()
    if kind == LIST:
        return lambda v: any(needle in str(e).lower() for e in (get(v) or ()))
    return lambda v: get(v) is not None and needle in str(get(v)).lower()


def _range(kind, get, value, field):
    if kind in (BOOL, LIST):
        raise ApiError(422, ["operator range is not supported for field %s" % field])
    if not isinstance(value, dict) or not value or set(value) - {"gt", "gte", "lt", "lte"}:
        raise ApiError(422, ["value of a range filter must be an object with gt, gte, lt and/or lte"])
    conv = (lambda x: _date(x, field)) if kind == DATE else (lambda x: _scalar_str(x, field))
    bounds = [(op, conv(x)) for op, x in value.items()]

    def pred(v):
        x = get(v)
        if x is None:
            return False
        if kind == STR:
            x = str(x).lower()
        for op, b in bounds:
            if (op == "gt" and not x > b) or (op == "gte" and not x >= b) or \
               (op == "lt" and not x < b) or (op == "lte" and not x <= b):
                return False
        return True
    return pred


def compile_filter(f):
    if not isinstance(f, dict):
        raise ApiError(422, ["each filter must be an object"])
    if "group" in f:
        group = str(f.get("group")).upper()
        if group not in ("AND", "OR"):
            raise ApiError(422, ["group must be one of the following values: AND, OR"])
        preds = compile_filters(f.get("filters"))
        if group == "AND":
            return lambda v: all(p(v) for p in preds)
        return lambda v: any(p(v) for p in preds)
    field, op, value = f.get("field"), f.get("operator"), f.get("value")
    kind, get = resolve_field(field)
    if op == "eq":
        return _eq(kind, get, value, field)
    if op == "not_eq":
        p = _eq(kind, get, value, field)
        return lambda v: not p(v)
    if op == "contains":
        return _contains(kind, get, value, field)
    if op == "not_contains":
        p = _contains(kind, get, value, field)
        return lambda v: not p(v)
    if op == "exists":
        return lambda v: _present(get(v))
    if op == "not_exists":
        return lambda v: not _present(get(v))
    if op == "range":
        return _range(kind, get, value, field)
    raise ApiError(422, ["operator must be one of the following values: eq, not_eq, contains, not_contains, "
                         "exists, not_exists, range"])


def compile_filters(filters):
    if not isinstance(filters, list):
        raise ApiError(422, ["filters must be an array"])
    return [compile_filter(f) for f in filters]


def query_matcher(q):
    q = q.strip().lower()
    digits = "".join(ch for ch in q if ch.isdigit())

    def pred(v):
        r = v.rec
        for k in ("name", "email", "companyName"):
            x = r.get(k)
            if x and q in x.lower():
                return True
        phone = r.get("phone")
        if phone and (q in phone or (len(digits) >= 3 and digits in phone)):
            return True
        return False
    return pred


def _narrowing(filters):
    """Top-level (AND) range filters on dateAdded / dateUpdated -> {field: (lo, lo_incl, hi, hi_incl)},
    so that run() can bisect the location's sorted indexes instead of scanning every contact."""
    out = {}
    for f in filters or ():
        if not (isinstance(f, dict) and f.get("operator") == "range" and f.get("field") in ("dateAdded", "dateUpdated")
                and isinstance(f.get("value"), dict)):
            continue
        lo, lo_incl, hi, hi_incl = out.get(f["field"], (None, True, None, True))
        for op, x in f["value"].items():
            ms = _date(x, f["field"])
            if op in ("gt", "gte") and (lo is None or ms >= lo):
                lo, lo_incl = ms, op == "gte"
            elif op in ("lt", "lte") and (hi is None or ms <= hi):
                hi, hi_incl = ms, op == "lte"
        out[f["field"]] = (lo, lo_incl, hi, hi_incl)
    return out


def _slice(index, bounds):
    """The part of a sorted [(ms, id)] index inside (lo, hi) bounds."""
    lo, lo_incl, hi, hi_incl = bounds
    start = 0 if lo is None else bisect.bisect_left(index, (lo, "") if lo_incl else (lo, "~"))
    end = len(index) if hi is None else bisect.bisect_left(index, (hi, "~") if hi_incl else (hi, ""))
    return index[start:end]


class Spec:
    """A validated search request (everything but the page position)."""

    def __init__(self, filters, sort, query):
        preds = compile_filters(filters if filters is not None else [])
        self.narrow = _narrowing(filters)
        if query:
            preds.append(query_matcher(query))
        self.preds = preds
        if sort is None:
            sort = []
        if not isinstance(sort, list):
            raise ApiError(422, ["sort must be an array"])
        self.sort = []
        for s in sort:
            if not isinstance(s, dict):
                raise ApiError(422, ["each sort must be an object"])
            kind, get = resolve_field(s.get("field"))
            if kind == LIST:
                raise ApiError(422, ["sort is not supported for field %s" % s.get("field")])
            direction = str(s.get("direction", "asc")).lower()
            if direction not in ("asc", "desc"):
                raise ApiError(422, ["direction must be one of the following values: asc, desc"])
            self.sort.append((s["field"], kind, get, direction == "desc"))
        if not self.sort:
            self.sort = [("dateAdded",) + FIELDS["dateAdded"] + (False,)]
        self.default_order = len(self.sort) == 1 and self.sort[0][0] == "dateAdded" and not self.sort[0][3]
        self.desc = [s[3] for s in self.sort]
        self.cache_key = json.dumps([filters, sort, query], sort_keys=True, default=str)

    def match(self, v):
        for p in self.preds:
            if not p(v):
                return False
        return True

    def keys(self, v):
        out = []
        for _, kind, get, _ in self.sort:
            x = get(v)
            if x is None:
                out.append((0, 0))
            elif kind == BOOL:
                out.append((1, int(x)))
            elif kind == STR:
                out.append((1, str(x)))
            else:
                out.append((1, x))
        out.append(v.rec["id"])
        return out

    def emit(self, keys):
        """The `searchAfter` value of a record: sort values (dates as epoch ms) then id."""
        out = []
        for (_, kind, _, _), k in zip(self.sort, keys):
            if k[0] == 0:
                out.append(None)
            elif kind == BOOL:
                out.append(bool(k[1]))
            else:
                out.append(k[1])
        out.append(keys[-1])
        return out

    def cursor(self, value):
        if not isinstance(value, list) or len(value) != len(self.sort) + 1 or not isinstance(value[-1], str):
            raise ApiError(422, ["searchAfter must be the searchAfter array of the last record of the previous "
                                 "page (%d sort values followed by the id)" % len(self.sort)])
        out = []
        for (field, kind, _, _), x in zip(self.sort, value[:-1]):
            if x is None:
                out.append((0, 0))
            elif kind == DATE:
                out.append((1, _date(x, field)))
            elif kind == BOOL:
                out.append((1, int(_bool(x, field))))
            elif isinstance(x, str):
                out.append((1, x))
            else:
                raise ApiError(422, ["searchAfter value for %s must be a string" % field])
        out.append(value[-1])
        return out

    def compare(self, a, b):
        for i, desc in enumerate(self.desc):
            if a[i] != b[i]:
                r = -1 if a[i] < b[i] else 1
                return -r if desc else r
        return (a[-1] > b[-1]) - (a[-1] < b[-1])

    def position_after(self, items, cursor):
        lo, hi = 0, len(items)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.compare(items[mid][0], cursor) <= 0:
                lo = mid + 1
            else:
                hi = mid
        return lo


def run(store, loc, spec):
    """All matching contacts in sort order as [(keys, view)].  Cached per location version,
    or evaluated against the lagged snapshot when search_lag_ms > 0."""
    lag = store.config.get("search_lag_ms", 0) or 0
    if lag <= 0:
        if loc.search_cache.get("_version") != loc.version:   # any contact write invalidates everything
            loc.search_cache = {"_version": loc.version}
        hit = loc.search_cache.get(spec.cache_key)
        if hit is not None:
            return hit
        if "dateUpdated" in spec.narrow:
            keys = _slice(loc.updated_index, spec.narrow["dateUpdated"])
            ordered = False
        else:
            keys = _slice(loc.index, spec.narrow.get("dateAdded", (None, True, None, True)))
            ordered = spec.default_order
        views = [loc.contacts[cid] for _, cid in keys]
    else:
        t = now_ms() - lag
        views = [v for v in (store.visible_at(e, t) for e in loc.contacts.values()) if v is not None]
        ordered = False
    items = [(spec.keys(v), v) for v in views if spec.match(v)]
    if not ordered:
        items.sort(key=lambda it: it[0][-1])
        for i in reversed(range(len(spec.sort))):
            items.sort(key=lambda it, i=i: it[0][i], reverse=spec.desc[i])
    if lag <= 0:
        if len(loc.search_cache) > 8:
            loc.search_cache = {"_version": loc.version}
        loc.search_cache[spec.cache_key] = items
    return items
