#!/usr/bin/env python3
"""Conformance of the sandbox to the HighLevel OpenAPI specs (apps/contacts.json, apps/oauth.json).

Starts a sandbox, calls every public endpoint it routes on success and on error paths, and validates
each response body against the schema the spec declares for that operation and status code
($refs resolved across files, e.g. ../common/common-schemas.json#/...).  Where the spec declares no
schema, the shape documented in docs/ghl-api-notes.md is used instead, and the output says so.
Fails when an operation of GET /_control/routes was not exercised.

    python3 tests/sandbox/test_conformance.py        (spec: tests/sandbox/spec, or $GHL_OPENAPI_DIR)
"""

import copy
import json
import os
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from client import Sandbox  # noqa: E402

SPEC_DIR = os.environ.get("GHL_OPENAPI_DIR") or os.path.join(HERE, "spec")
SPEC_FILES = ("apps/contacts.json", "apps/oauth.json", "apps/opportunities.json", "apps/users.json",
              "apps/businesses.json", "apps/workflows.json", "apps/campaigns.json", "apps/snapshots.json",
              "apps/associations.json", "apps/locations.json")
RATE_HEADERS = ("x-ratelimit-limit-daily", "x-ratelimit-daily-remaining", "x-ratelimit-interval-milliseconds",
                "x-ratelimit-max", "x-ratelimit-remaining")
LOC = "demoLocation00000001"
OTHER_TOKEN, OTHER_LOC = "pit-other-token", "otherLocation0000002"
COMMON = "../common/common-schemas.json#/components/schemas/"


# --- a small JSON-Schema (OpenAPI 3.0 subset) validator ----------------------------------------------

class Validator:
    """type (incl. integer/number), properties, required, items, enum, nullable, allOf/anyOf/oneOf,
    additionalProperties, $ref across files.  Schemas travel with the path of their document."""

    def __init__(self, spec_dir):
        self.spec_dir = spec_dir
        self.docs = {}

    def doc(self, rel):
        path = os.path.normpath(os.path.join(self.spec_dir, rel))
        if path not in self.docs:
            with open(path) as f:
                self.docs[path] = json.load(f)
        return path, self.docs[path]

    def resolve(self, ref, base):
        file_part, _, pointer = ref.partition("#")
        if file_part:
            base = os.path.normpath(os.path.join(os.path.dirname(base), file_part))
        if base not in self.docs:
            with open(base) as f:
                self.docs[base] = json.load(f)
        node = self.docs[base]
        for part in pointer.strip("/").split("/") if pointer.strip("/") else []:
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, base

    def errors(self, value, schema, base, where="$"):
        if schema is None:
            return []
        if "$ref" in schema:
            target, tbase = self.resolve(schema["$ref"], base)
            if value is None and schema.get("nullable"):
                return []
            return self.errors(value, target, tbase, where)
        if value is None:
            if schema.get("nullable") or not schema:
                return []
            if "type" in schema or "properties" in schema or "items" in schema:
                return ["%s: null is not allowed (%s)" % (where, schema.get("type", "object"))]
        out = []
        t = schema.get("type")
        if t is not None and not self.type_ok(value, t):
            return ["%s: expected %s, got %s %s" % (where, t, type(value).__name__, json.dumps(value)[:60])]
        if "enum" in schema and value not in schema["enum"]:
            out.append("%s: %r not in enum %s" % (where, value, schema["enum"]))
        for sub in schema.get("allOf", []):
            out += self.errors(value, sub, base, where)
        if "anyOf" in schema:
            if all(self.errors(value, sub, base, where) for sub in schema["anyOf"]):
                out.append("%s: matches none of anyOf" % where)
        if "oneOf" in schema:
            n = sum(1 for sub in schema["oneOf"] if not self.errors(value, sub, base, where))
            if n != 1:
                out.append("%s: matches %d of oneOf (need exactly 1)" % (where, n))
        if isinstance(value, dict):
            props = schema.get("properties", {})
            for name in schema.get("required", []):
                if name not in value:
                    out.append("%s: missing required property %r" % (where, name))
            for name, v in value.items():
                if name in props:
                    out += self.errors(v, props[name], base, "%s.%s" % (where, name))
                else:
                    extra = schema.get("additionalProperties")
                    if extra is False:
                        out.append("%s: unexpected property %r" % (where, name))
                    elif isinstance(extra, dict):
                        out += self.errors(v, extra, base, "%s.%s" % (where, name))
        if isinstance(value, list) and "items" in schema:
            for i, v in enumerate(value):
                out += self.errors(v, schema["items"], base, "%s[%d]" % (where, i))
        return out

    @staticmethod
    def type_ok(value, t):
        if t == "string":
            return isinstance(value, str)
        if t == "integer":
            return isinstance(value, int) and not isinstance(value, bool) or (
                isinstance(value, float) and value.is_integer())
        if t == "number":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if t == "boolean":
            return isinstance(value, bool)
        if t == "array":
            return isinstance(value, list)
        if t == "object":
            return isinstance(value, dict)
        return True


# --- schemas the spec does not declare (docs/ghl-api-notes.md) ---------------------------------------

STR = {"type": "string"}
STRS = {"type": "array", "items": STR}
NOTES_SEARCH_CONTACT = {   # §5.3, SearchContactSuccessResponseDto@5f8673c + issues #289/#314
    "type": "object",
    "required": ["id", "locationId", "dateAdded", "dateUpdated", "searchAfter"],
    "properties": {
        "id": STR, "phoneLabel": STR, "country": STR, "address": STR, "source": STR, "type": STR, "locationId": STR,
        "dnd": {"type": "boolean"}, "state": STR, "businessName": STR,
        "customFields": {"type": "array", "items": {"type": "object", "required": ["id"],
                                                    "properties": {"id": STR}}},
        "tags": STRS, "dateAdded": STR, "additionalEmails": STRS, "phone": STR, "companyName": STR,
        "additionalPhones": STRS, "dateUpdated": STR, "city": STR,
        "dateOfBirth": {"type": "number", "nullable": True},
        "firstName": STR, "lastName": STR, "firstNameLowerCase": STR, "lastNameLowerCase": STR, "email": STR,
        "assignedTo": STR, "followers": STRS, "validEmail": {"type": "boolean"},
        "dndSettings": {"$ref": "#/components/schemas/DndSettingsSchema"},
        "opportunities": {"type": "array", "items": {"type": "object"}},
        "postalCode": STR, "businessId": STR, "website": STR, "contactName": STR,
        "attributionSource": {"$ref": "#/components/schemas/AttributionSource"},
        "lastAttributionSource": {"$ref": "#/components/schemas/AttributionSource"},
        "searchAfter": {"type": "array"},
    },
}
NOTES_SCHEMAS = {
    ("search-contacts-advanced", 200): ("docs/ghl-api-notes.md §5.3 {contacts, total, traceId}", {
        "type": "object", "required": ["contacts", "total", "traceId"],
        "properties": {"contacts": {"type": "array", "items": NOTES_SEARCH_CONTACT}, "total": {"type": "number"},
                       "traceId": STR}}),
    ("get-duplicate-contact", 200): ("docs/ghl-api-notes.md §5 / catalog: {contact: GetContectByIdSchema|null}", {
        "type": "object", "required": ["contact"],
        "properties": {"contact": {"nullable": True, "$ref": "#/components/schemas/GetContectByIdSchema"},
                       "traceId": STR}}),
}
# Error statuses an operation does not declare: the common shapes of docs/ghl-api-notes.md §4.
NOTES_ERRORS = {
    400: {"$ref": COMMON + "BadRequestDTO"},
    401: {"$ref": COMMON + "UnauthorizedDTO"},
    422: {"$ref": COMMON + "UnprocessableDTO"},
    403: {"type": "object", "required": ["statusCode", "message"],
          "properties": {"statusCode": {"type": "number", "enum": [403]}, "message": STR}},
    404: {"type": "object", "required": ["statusCode", "message"],
          "properties": {"statusCode": {"type": "number", "enum": [404]}, "message": STR}},
}
OAUTH_ERROR = {"type": "object", "required": ["error", "error_description"],
               "properties": {"error": {"enum": ["invalid_request", "invalid_client", "invalid_grant",
                                                 "unsupported_grant_type"]}, "error_description": STR}}
# Spec defects that must be corrected to validate what the live API (and the sandbox) returns.
BULK_TAGS_ITEM = {"type": "object", "required": ["contactId", "message", "type"],
                  "properties": {"contactId": STR, "message": STR, "type": {"enum": ["success", "error"]},
                                 "oldTags": STRS, "tagsAdded": STRS, "tagsRemoved": STRS}}


# Live shapes known to differ from the spec: the schema is corrected in the loaded document before any
# check, and every correction is printed.  (file, schema, property, replacement, why)
OBJ = {"type": "object"}
SPEC_EXCEPTIONS = [
    ("apps/opportunities.json", "PipelinesResponseSchema", "stages",
     {"type": "array", "items": {"type": "object", "required": ["id", "name"],
                                 "properties": {"id": STR, "name": STR, "position": {"type": "number"},
                                                "showInFunnel": {"type": "boolean"},
                                                "showInPieChart": {"type": "boolean"}}}},
     "PipelinesResponseSchema.stages declares items:array (untyped); live stages are objects with UUID ids "
     "(catalog-map §1.2 O3)"),
    ("apps/opportunities.json", "SearchMetaResponseSchema", None, None,
     "SearchMetaResponseSchema: nextPageUrl/nextPage/startAfter/startAfterId/prevPage are null on the last "
     "(or first) page, as in the contacts meta (notes §5.2)"),
    ("apps/users.json", "UserSchema", "scopes", STRS,
     "UserSchema.scopes declares one string enum while CreateUserDto/UpdateUserDto take an array: the sandbox "
     "answers the array (ASSUMPTION)"),
    ("apps/users.json", "UserSuccessfulResponseDto", "scopes", STRS,
     "UserSuccessfulResponseDto.scopes: same correction as UserSchema.scopes"),
] + [("apps/associations.json", "GetPostSuccessfulResponseDto", k, STR,
      "GetPostSuccessfulResponseDto.%s is typed object; its example (and the live API) is a string" % k)
     for k in ("firstObjectLabel", "firstObjectKey", "secondObjectLabel", "secondObjectKey")] + [
    ("apps/associations.json", "GetPostSuccessfulResponseDto", "associationType",
     {"enum": ["USER_DEFINED", "SYSTEM_DEFINED"]},
     "GetPostSuccessfulResponseDto.associationType is typed object; it is one of the two strings it describes"),
    ("apps/locations.json", "LocationTaskListSuccessfulResponseDto", "tasks",
     {"type": "array", "items": {"$ref": "contacts.json#/components/schemas/TaskSchema"}},
     "LocationTaskListSuccessfulResponseDto.tasks declares items:array (untyped); the sandbox answers the "
     "TaskSchema objects of GET /contacts/{contactId}/tasks (ASSUMPTION, catalog-map §3.1)"),
]
# Success bodies the spec gets wrong (apps/associations.json reuses the association schema for lists and
# relations): (operationId, status) -> (description, schema, document).  catalog-map §1.7 X4/X8, §4.7.
ASSOCIATION = {"$ref": "#/components/schemas/GetPostSuccessfulResponseDto"}
RELATION = {"type": "object", "required": ["id", "locationId", "associationId", "firstRecordId", "secondRecordId"],
            "properties": {k: STR for k in ("id", "locationId", "associationId", "firstRecordId", "secondRecordId")}}
DELETED = {"$ref": "#/components/schemas/DeleteAssociationsResponseDTO"}
CORRECTED = {
    ("find-associations", 200): ("catalog-map X4 {associations:[association]}", {
        "type": "object", "required": ["associations"],
        "properties": {"associations": {"type": "array", "items": ASSOCIATION}, "traceId": STR}}),
    ("get-relations-by-record-id", 200): ("catalog-map X8 {relations:[relation]}", {
        "type": "object", "required": ["relations"],
        "properties": {"relations": {"type": "array", "items": RELATION}, "traceId": STR}}),
    ("create-relation", 201): ("catalog-map XA6 bare relation", RELATION),
    ("delete-relation", 200): ("DeleteAssociationsResponseDTO (ASSUMPTION, catalog-map XA7)", DELETED),
}
NULLABLE_META = ("nextPageUrl", "nextPage", "startAfter", "startAfterId", "prevPage")


def apply_spec_exceptions(validator):
    for rel, schema, prop, replacement, why in SPEC_EXCEPTIONS:
        _, doc = validator.doc(rel)
        node = doc["components"]["schemas"][schema]
        if prop is None:
            for k in NULLABLE_META:
                node["properties"][k] = dict(node["properties"][k], nullable=True)
        else:
            node["properties"][prop] = replacement
    return [why for *_, why in SPEC_EXCEPTIONS]


class Conformance:
    def __init__(self, sbx, validator):
        self.sbx = sbx
        self.v = validator
        self.ops = {}            # operationId -> (method, path template, operation object, document path)
        for rel in SPEC_FILES:
            path, doc = validator.doc(rel)
            for template, item in doc["paths"].items():
                for method, op in item.items():
                    if isinstance(op, dict) and "operationId" in op:
                        key = op["operationId"]
                        if key in self.ops:   # create-association is in contacts.json and associations.json
                            key = os.path.basename(rel)[:-len(".json")] + "/" + key
                        self.ops[key] = (method.upper(), template, op, path)
        self.covered = defaultdict(set)
        self.failures = []
        self.checks = 0
        self.notes_used = set(apply_spec_exceptions(validator))
        self.bare = {r["operationId"] for r in sbx.control("GET", "/_control/routes")["routes"] if r.get("bare")}

    def schema_for(self, op_id, status):
        """(description, schema, base document) for the response of op_id with this status."""
        method, template, op, base = self.ops[op_id]
        contacts_doc = os.path.join(self.v.spec_dir, "apps/contacts.json")
        if op_id == "create-association" and status == 201:
            ref, rbase = self.v.resolve("#/components/schemas/UpdateTagsResponseDTO", base)
            fixed = copy.deepcopy(ref)
            fixed["properties"]["responses"]["items"] = BULK_TAGS_ITEM
            self.notes_used.add("UpdateTagsResponseDTO.responses declares items:string but its own example (and "
                                "notes §5.9) are objects: validated with object items")
            return "spec UpdateTagsResponseDTO (items corrected)", fixed, rbase
        if op_id == "get-access-token" and status == 400:
            self.notes_used.add("POST /oauth/token errors are the OAuth-standard {error, error_description}; "
                                "validated against BadRequestDTO and that shape")
            schema = {"allOf": [{"$ref": COMMON + "BadRequestDTO"}, OAUTH_ERROR]}
            return "spec BadRequestDTO + OAuth error", schema, base
        if (op_id, status) in CORRECTED:
            desc, schema = CORRECTED[(op_id, status)]
            self.notes_used.add("%s %d: the spec reuses the association schema -> %s" % (op_id, status, desc))
            return desc, schema, base
        resp = op.get("responses", {}).get(str(status))
        schema = resp and resp.get("content", {}).get("application/json", {}).get("schema")
        if schema is not None:
            name = schema.get("$ref", "inline").split("/")[-1]
            return "spec " + name, schema, base
        if (op_id, status) in NOTES_SCHEMAS:
            desc, schema = NOTES_SCHEMAS[(op_id, status)]
            self.notes_used.add("%s %d: spec declares no schema -> %s" % (op_id, status, desc))
            return desc + " (spec declares no schema)", schema, contacts_doc
        if status in NOTES_ERRORS:
            why = "declared without schema" if resp else "not declared by the spec"
            return "notes §4 error shape (%d %s)" % (status, why), NOTES_ERRORS[status], base
        return "no schema", None, base

    def check(self, op_id, expect, path, method=None, body=None, query=None, token=None, version="2021-07-28",
              form=None, raw=None, headers=None, label=""):
        spec_method, template, _, _ = self.ops[op_id]
        method = method or spec_method
        since = self.sbx.control("GET", "/_control/requests", query={"since": 10 ** 12})["last_seq"]
        if raw is not None:
            h = {"Content-Type": "application/json"}
            h.update(headers or {})
            status, rh, out = self.sbx.api(method, path, raw, query=query, token=token, version=version, headers=h)
        else:
            status, rh, out = self.sbx.api(method, path, body, query=query, token=token, version=version, form=form,
                                           headers=headers)
        problems = []
        if status != expect:
            problems.append("status %s, expected %s: %s" % (status, expect, json.dumps(out)[:300]))
        logged = self.sbx.control("GET", "/_control/requests", query={"since": since})["requests"]
        if not logged or logged[-1]["operation"] != op_id:
            problems.append("the sandbox routed this request to %r" % (logged[-1]["operation"] if logged else None))
        desc, schema, base = self.schema_for(op_id, status)
        if not isinstance(out, dict):
            problems.append("body is not a JSON object")
        else:
            problems += self.v.errors(out, schema, base)
            if "traceId" not in out and not (op_id in self.bare and 200 <= status < 300):
                problems.append("no traceId in the body")
        missing = [h for h in RATE_HEADERS if h not in rh]
        if missing:
            problems.append("missing headers: %s" % ", ".join(missing))
        if op_id == "search-contacts-advanced" and status == 200:
            problems += ["$.contacts[%d]: has address1 (live search returns address)" % i
                         for i, c in enumerate(out["contacts"]) if "address1" in c]
        if op_id == "search-opportunity" and status == 200:   # meta must be complete, like the contacts one
            problems += ["$.meta: missing %r" % k for k in ("total", "nextPageUrl", "startAfterId", "startAfter",
                                                            "currentPage", "nextPage", "prevPage")
                         if k not in out.get("meta", {})]
        if op_id == "get-contacts" and status == 200:
            meta = self.meta_schema()
            problems += self.v.errors(out.get("meta"), meta, os.path.join(self.v.spec_dir, "apps/contacts.json"),
                                      "$.meta")
        self.checks += 1
        ok = not problems and status == expect
        if ok:
            self.covered[op_id].add(status)
        line = "%s  %-36s %-6s %-48s %d  %s%s" % ("PASS" if ok else "FAIL", op_id, method, template, status, desc,
                                                  ("  [" + label + "]") if label else "")
        print(line)
        for p in problems[:8]:
            print("        " + p)
        if not ok:
            self.failures.append((op_id, status, problems))
        return out

    def meta_schema(self):
        """ContactsMetaSchema (defined, not wired in the spec); cursor fields are null on the last page."""
        meta, _ = self.v.resolve("#/components/schemas/ContactsMetaSchema",
                                 os.path.join(self.v.spec_dir, "apps/contacts.json"))
        meta = copy.deepcopy(meta)
        for k in ("nextPageUrl", "nextPage", "startAfter", "startAfterId"):
            meta["properties"][k]["nullable"] = True
        meta["required"] = list(meta["properties"])
        return meta


def run(c, sbx):
    ctl = sbx.control
    ctl("POST", "/_control/reset")
    seeded = ctl("POST", "/_control/seed", {"contacts": 60, "tasks_per_contact": 2, "notes_per_contact": 2,
                                            "seed": 5, "log": False})["contact_ids"]
    meta = ctl("GET", "/_control/state", query={"summary": "1"})["meta"]
    a, b, d = seeded[0], seeded[1], seeded[2]
    with_events = next(cid for cid in seeded if ctl("GET", "/_control/state", query={"contact": cid})["appointments"])
    users, camp, wf = meta["users"], meta["campaigns"][0], meta["workflows"][0]
    biz = next(x["businessId"] for x in ctl("GET", "/_control/state")["contacts"] if x.get("businessId"))
    bad_id, unknown = "not-an-id", "A" * 20

    # -- contacts: list / create / get / update / delete / upsert -------------------------------
    page = c.check("get-contacts", 200, "/contacts/", query={"locationId": LOC, "limit": 25})
    c.check("get-contacts", 200, "/contacts/", label="next page", query={
        "locationId": LOC, "limit": 50, "startAfter": page["meta"]["startAfter"],
        "startAfterId": page["meta"]["startAfterId"]})
    c.check("get-contacts", 200, "/contacts/", query={"locationId": LOC, "query": "gmail"}, label="query")
    c.check("get-contacts", 422, "/contacts/", query={"locationId": LOC, "limit": 101}, label="limit > 100")
    c.check("get-contacts", 422, "/contacts/", query={"limit": 10}, label="no locationId")
    c.check("get-contacts", 401, "/contacts/", query={"locationId": LOC}, token=False, label="no token")
    c.check("get-contacts", 400, "/contacts/", query={"locationId": LOC}, version=None, label="no Version")
    c.check("get-contacts", 403, "/contacts/", query={"locationId": OTHER_LOC}, label="other location")

    new = c.check("create-contact", 201, "/contacts/", body={
        "locationId": LOC, "firstName": "Conformance", "lastName": "Check", "email": "conf@example.com",
        "phone": "+15125550100", "tags": ["Conf"], "dateOfBirth": "1990-09-25", "dnd": False,
        "dndSettings": {"Email": {"status": "inactive"}}, "source": "api",
        "customFields": [{"id": meta["customFields"][0]["id"], "field_value": "7"}]})["contact"]
    c.check("create-contact", 422, "/contacts/", body={"firstName": "NoLocation"}, label="no locationId")
    c.check("create-contact", 400, "/contacts/", raw=b'{"locationId":', label="malformed JSON")
    c.check("create-contact", 400, "/contacts/", body={"locationId": LOC, "email": "CONF@example.com"},
            label="duplicate email")
    c.check("create-contact", 401, "/contacts/", body={"locationId": LOC}, token="nope", label="bad token")

    c.check("get-contact", 200, "/contacts/%s" % a)
    c.check("get-contact", 400, "/contacts/%s" % bad_id, label="malformed id")
    c.check("get-contact", 404, "/contacts/%s" % unknown, label="unknown id")
    c.check("get-contact", 401, "/contacts/%s" % a, token=False)

    c.check("update-contact", 200, "/contacts/%s" % new["id"], body={"city": "Austin", "tags": ["a", "b"]})
    c.check("update-contact", 422, "/contacts/%s" % a, body={"email": "not-an-email"}, label="bad email")
    c.check("update-contact", 400, "/contacts/%s" % bad_id, body={"city": "x"}, label="malformed id")
    c.check("update-contact", 401, "/contacts/%s" % a, body={"city": "x"}, token=False)

    c.check("upsert-contact", 200, "/contacts/upsert", body={"locationId": LOC, "email": "conf@example.com",
                                                             "city": "Denver"}, label="existing")
    c.check("upsert-contact", 200, "/contacts/upsert", body={"locationId": LOC, "email": "fresh@example.com"},
            label="new")
    c.check("upsert-contact", 422, "/contacts/upsert", body={"email": "x@example.com"}, label="no locationId")
    c.check("upsert-contact", 401, "/contacts/upsert", body={"locationId": LOC}, token=False)

    # -- search ---------------------------------------------------------------------------------
    res = c.check("search-contacts-advanced", 200, "/contacts/search", body={
        "locationId": LOC, "pageLimit": 20, "filters": [{"field": "dateUpdated", "operator": "range",
                                                         "value": {"gte": "2024-01-01T00:00:00.000Z"}}],
        "sort": [{"field": "dateUpdated", "direction": "desc"}]})
    c.check("search-contacts-advanced", 200, "/contacts/search", label="searchAfter", body={
        "locationId": LOC, "pageLimit": 20, "searchAfter": res["contacts"][-1]["searchAfter"],
        "sort": [{"field": "dateUpdated", "direction": "desc"}]})
    c.check("search-contacts-advanced", 200, "/contacts/search", label="page 2 + OR group", body={
        "locationId": LOC, "pageLimit": 10, "page": 2, "filters": [{"group": "OR", "filters": [
            {"field": "tags", "operator": "eq", "value": "vip"}, {"field": "dnd", "operator": "eq", "value": True}]}]})
    c.check("search-contacts-advanced", 422, "/contacts/search", body={"locationId": LOC}, label="no pageLimit")
    c.check("search-contacts-advanced", 422, "/contacts/search", body={"pageLimit": 10}, label="no locationId")
    c.check("search-contacts-advanced", 422, "/contacts/search", body={"locationId": LOC, "pageLimit": 500,
                                                                      "page": 21}, label="beyond 10k")
    c.check("search-contacts-advanced", 400, "/contacts/search", raw=b"{nope", label="malformed JSON")
    c.check("search-contacts-advanced", 401, "/contacts/search", body={"locationId": LOC, "pageLimit": 1},
            token=False)

    c.check("get-duplicate-contact", 200, "/contacts/search/duplicate",
            query={"locationId": LOC, "email": "conf@example.com"}, label="found")
    c.check("get-duplicate-contact", 200, "/contacts/search/duplicate",
            query={"locationId": LOC, "number": "+10000000000"}, label="not found")
    c.check("get-duplicate-contact", 400, "/contacts/search/duplicate", query={"email": "x@y.z"},
            label="no locationId")
    c.check("get-duplicate-contact", 401, "/contacts/search/duplicate", query={"locationId": LOC}, token=False)

    c.check("get-contacts-by-businessId", 200, "/contacts/business/%s" % biz,
            query={"locationId": LOC, "limit": "10", "skip": "0"})
    c.check("get-contacts-by-businessId", 422, "/contacts/business/%s" % biz, query={"limit": "10"},
            label="no locationId")
    c.check("get-contacts-by-businessId", 401, "/contacts/business/%s" % biz, query={"locationId": LOC},
            token=False)

    # -- tags, followers, bulk --------------------------------------------------------------------
    c.check("add-tags", 201, "/contacts/%s/tags" % a, body={"tags": ["conformance", "vip"]})
    c.check("add-tags", 422, "/contacts/%s/tags" % a, body={}, label="no tags")
    c.check("add-tags", 400, "/contacts/%s/tags" % bad_id, body={"tags": ["x"]}, label="malformed id")
    c.check("add-tags", 401, "/contacts/%s/tags" % a, body={"tags": ["x"]}, token=False)
    c.check("remove-tags", 200, "/contacts/%s/tags" % a, body={"tags": ["conformance"]})
    c.check("remove-tags", 422, "/contacts/%s/tags" % a, body={"tags": "vip"}, label="tags not an array")
    c.check("remove-tags", 401, "/contacts/%s/tags" % a, body={"tags": ["x"]}, token=False)

    c.check("add-followers-contact", 201, "/contacts/%s/followers" % a, body={"followers": users[:2]})
    c.check("add-followers-contact", 422, "/contacts/%s/followers" % a, body={}, label="no followers")
    c.check("add-followers-contact", 401, "/contacts/%s/followers" % a, body={"followers": users[:1]}, token=False)
    c.check("remove-followers-contact", 200, "/contacts/%s/followers" % a, body={"followers": users[:1]})
    c.check("remove-followers-contact", 422, "/contacts/%s/followers" % a, body={"followers": [1]},
            label="not strings")
    c.check("remove-followers-contact", 401, "/contacts/%s/followers" % a, body={"followers": users[:1]},
            token=False)

    c.check("create-association", 201, "/contacts/bulk/tags/update/add", label="add, with per-item errors",
            body={"locationId": LOC, "contacts": [a, b, "abcdef", unknown], "tags": ["bulk-tag"]})
    c.check("create-association", 201, "/contacts/bulk/tags/update/remove", label="removeAllTags",
            body={"locationId": LOC, "contacts": [b], "tags": [], "removeAllTags": True})
    c.check("create-association", 422, "/contacts/bulk/tags/update/add", body={"locationId": LOC},
            label="missing contacts/tags")
    c.check("create-association", 400, "/contacts/bulk/tags/update/add", raw=b"[1,", label="malformed JSON")
    c.check("create-association", 401, "/contacts/bulk/tags/update/add", token=False,
            body={"locationId": LOC, "contacts": [a], "tags": ["x"]})
    c.check("add-remove-contact-from-business", 200, "/contacts/bulk/business",
            body={"locationId": LOC, "ids": [a, b], "businessId": meta["businesses"][1]})
    c.check("add-remove-contact-from-business", 200, "/contacts/bulk/business", label="null removes",
            body={"locationId": LOC, "ids": [b], "businessId": None})
    c.check("add-remove-contact-from-business", 422, "/contacts/bulk/business", body={"locationId": LOC},
            label="missing ids/businessId")
    c.check("add-remove-contact-from-business", 401, "/contacts/bulk/business", token=False,
            body={"locationId": LOC, "ids": [a], "businessId": None})

    # -- tasks ------------------------------------------------------------------------------------
    c.check("get-all-tasks", 200, "/contacts/%s/tasks" % a)
    c.check("get-all-tasks", 400, "/contacts/%s/tasks" % bad_id, label="malformed id")
    c.check("get-all-tasks", 401, "/contacts/%s/tasks" % a, token=False)
    task = c.check("create-task", 201, "/contacts/%s/tasks" % a, body={
        "title": "Conformance", "body": "b", "dueDate": "2026-10-25T11:00:00Z", "completed": False,
        "assignedTo": users[0]})["task"]
    c.check("create-task", 422, "/contacts/%s/tasks" % a, body={"title": "no due date"}, label="missing fields")
    c.check("create-task", 400, "/contacts/%s/tasks" % bad_id, body={}, label="malformed id")
    c.check("create-task", 401, "/contacts/%s/tasks" % a, body={}, token=False)
    tpath = "/contacts/%s/tasks/%s" % (a, task["id"])
    c.check("get-task", 200, tpath)
    c.check("get-task", 400, "/contacts/%s/tasks/%s" % (a, bad_id), label="malformed task id")
    c.check("get-task", 401, tpath, token=False)
    c.check("update-task", 200, tpath, body={"title": "Conformance 2", "dueDate": "2026-11-01T09:00:00.000Z"})
    c.check("update-task", 422, tpath, body={"dueDate": "tomorrow"}, label="bad dueDate")
    c.check("update-task", 400, "/contacts/%s/tasks/%s" % (a, bad_id), body={}, label="malformed task id")
    c.check("update-task", 401, tpath, body={}, token=False)
    c.check("update-task-completed", 200, tpath + "/completed", body={"completed": True})
    c.check("update-task-completed", 422, tpath + "/completed", body={}, label="no completed")
    c.check("update-task-completed", 400, "/contacts/%s/tasks/%s/completed" % (a, bad_id), body={"completed": True},
            label="malformed task id")
    c.check("update-task-completed", 401, tpath + "/completed", body={"completed": True}, token=False)
    c.check("delete-task", 200, tpath)
    c.check("delete-task", 400, "/contacts/%s/tasks/%s" % (a, bad_id), label="malformed task id")
    c.check("delete-task", 401, tpath, token=False)

    # -- notes ------------------------------------------------------------------------------------
    c.check("get-all-notes", 200, "/contacts/%s/notes" % a)
    c.check("get-all-notes", 400, "/contacts/%s/notes" % bad_id, label="malformed id")
    c.check("get-all-notes", 401, "/contacts/%s/notes" % a, token=False)
    note = c.check("create-note", 201, "/contacts/%s/notes" % a, body={
        "body": "Conformance note", "userId": users[0], "title": "t", "color": "#FFAA00", "pinned": True})["note"]
    c.check("create-note", 422, "/contacts/%s/notes" % a, body={"title": "no body"}, label="no body")
    c.check("create-note", 401, "/contacts/%s/notes" % a, body={"body": "x"}, token=False)
    npath = "/contacts/%s/notes/%s" % (a, note["id"])
    c.check("get-note", 200, npath)
    c.check("get-note", 400, "/contacts/%s/notes/%s" % (a, bad_id), label="malformed note id")
    c.check("get-note", 401, npath, token=False)
    c.check("update-note", 200, npath, body={"body": "edited", "pinned": False})
    c.check("update-note", 422, npath, body={"pinned": "yes"}, label="pinned not boolean")
    c.check("update-note", 401, npath, body={"body": "x"}, token=False)
    c.check("delete-note", 200, npath)
    c.check("delete-note", 400, "/contacts/%s/notes/%s" % (a, bad_id), label="malformed note id")
    c.check("delete-note", 401, npath, token=False)

    # -- appointments, campaigns, workflows -------------------------------------------------------
    c.check("get-appointments-for-contact", 200, "/contacts/%s/appointments" % with_events)
    c.check("get-appointments-for-contact", 400, "/contacts/%s/appointments" % bad_id, label="malformed id")
    c.check("get-appointments-for-contact", 401, "/contacts/%s/appointments" % a, token=False)
    c.check("add-contact-to-campaign", 201, "/contacts/%s/campaigns/%s" % (a, camp))
    c.check("add-contact-to-campaign", 400, "/contacts/%s/campaigns/%s" % (a, bad_id), label="malformed campaignId")
    c.check("add-contact-to-campaign", 401, "/contacts/%s/campaigns/%s" % (a, camp), token=False)
    c.check("remove-contact-from-campaign", 200, "/contacts/%s/campaigns/%s" % (a, camp))
    c.check("remove-contact-from-campaign", 400, "/contacts/%s/campaigns/%s" % (bad_id, camp), label="malformed id")
    c.check("remove-contact-from-campaign", 401, "/contacts/%s/campaigns/%s" % (a, camp), token=False)
    c.check("add-contact-to-campaign", 201, "/contacts/%s/campaigns/%s" % (a, meta["campaigns"][1]), label="again")
    c.check("remove-contact-from-every-campaign", 200, "/contacts/%s/campaigns/removeAll" % a)
    c.check("remove-contact-from-every-campaign", 400, "/contacts/%s/campaigns/removeAll" % bad_id,
            label="malformed id")
    c.check("remove-contact-from-every-campaign", 401, "/contacts/%s/campaigns/removeAll" % a, token=False)
    c.check("add-contact-to-workflow", 200, "/contacts/%s/workflow/%s" % (a, wf),
            body={"eventStartTime": "2026-06-23T03:30:00+01:00"})
    c.check("add-contact-to-workflow", 422, "/contacts/%s/workflow/%s" % (a, wf), body={"eventStartTime": "soon"},
            label="bad eventStartTime")
    c.check("add-contact-to-workflow", 400, "/contacts/%s/workflow/%s" % (a, "x"), label="malformed workflowId")
    c.check("add-contact-to-workflow", 401, "/contacts/%s/workflow/%s" % (a, wf), token=False)
    c.check("delete-contact-from-workflow", 200, "/contacts/%s/workflow/%s" % (a, wf))
    c.check("delete-contact-from-workflow", 400, "/contacts/%s/workflow/%s" % (bad_id, wf), label="malformed id")
    c.check("delete-contact-from-workflow", 401, "/contacts/%s/workflow/%s" % (a, wf), token=False)

    c.check("delete-contact", 200, "/contacts/%s" % d)
    c.check("delete-contact", 400, "/contacts/%s" % bad_id, label="malformed id")
    c.check("delete-contact", 401, "/contacts/%s" % a, token=False)
    c.check("get-contact", 404, "/contacts/%s" % d, label="deleted")

    # -- OAuth ------------------------------------------------------------------------------------
    ctl("POST", "/_control/oauth/clients", {"client_id": "conf-app", "client_secret": "conf-secret",
                                            "scopes": "contacts.readonly contacts.write oauth.write oauth.readonly"})
    code = ctl("POST", "/_control/oauth/codes", {"client_id": "conf-app", "user_type": "Location",
                                                 "location_id": LOC})["code"]
    creds = {"client_id": "conf-app", "client_secret": "conf-secret"}
    tok = c.check("get-access-token", 200, "/oauth/token", version=None, token=False, label="authorization_code",
                  form=dict(creds, grant_type="authorization_code", code=code, user_type="Location"))
    tok2 = c.check("get-access-token", 200, "/oauth/token", version=None, token=False, label="refresh_token",
                   form=dict(creds, grant_type="refresh_token", refresh_token=tok["refresh_token"]))
    c.check("get-access-token", 400, "/oauth/token", version=None, token=False, label="reused refresh token",
            form=dict(creds, grant_type="refresh_token", refresh_token=tok["refresh_token"]))
    c.check("get-access-token", 400, "/oauth/token", version=None, token=False, label="bad client secret",
            form=dict(creds, client_secret="x", grant_type="refresh_token", refresh_token=tok2["refresh_token"]))
    c.check("get-access-token", 400, "/oauth/token", version=None, token=False, label="JSON body",
            body=dict(creds, grant_type="refresh_token", refresh_token=tok2["refresh_token"]))
    c.check("get-contact", 200, "/contacts/%s" % a, token=tok2["access_token"], label="OAuth location token")

    code = ctl("POST", "/_control/oauth/codes", {"client_id": "conf-app", "user_type": "Company",
                                                 "company_id": "confCompany000000001",
                                                 "approved_locations": [LOC]})["code"]
    agency = c.check("get-access-token", 200, "/oauth/token", version=None, token=False, label="Company code",
                     form=dict(creds, grant_type="authorization_code", code=code))["access_token"]
    lt = c.check("get-location-access-token", 200, "/oauth/locationToken", token=agency,
                 form={"companyId": "confCompany000000001", "locationId": LOC})
    c.check("get-location-access-token", 422, "/oauth/locationToken", token=agency,
            form={"companyId": "confCompany000000001"}, label="no locationId")
    c.check("get-location-access-token", 400, "/oauth/locationToken", token=agency, version=None,
            form={"companyId": "confCompany000000001", "locationId": LOC}, label="no Version")
    c.check("get-location-access-token", 401, "/oauth/locationToken", token=lt["access_token"],
            form={"companyId": "confCompany000000001", "locationId": LOC}, label="location token")
    c.check("get-installed-location", 200, "/oauth/installedLocations", token=agency,
            query={"companyId": "confCompany000000001", "appId": "conf-app"})
    c.check("get-installed-location", 422, "/oauth/installedLocations", token=agency,
            query={"companyId": "confCompany000000001"}, label="no appId")
    c.check("get-installed-location", 401, "/oauth/installedLocations", token=False,
            query={"companyId": "confCompany000000001", "appId": "x"})


def run_categories(c, sbx):
    """Opportunities, users, businesses, workflows, campaigns, snapshots (catalog-map §4.2-§4.6)."""
    ctl = sbx.control
    seeded = ctl("POST", "/_control/seed", {"contacts": 10, "opportunities": 30, "seed": 9, "log": False})
    state = ctl("GET", "/_control/state")
    company = state["companyId"]
    recs = state["records"]
    ctl("POST", "/_control/tokens", {"token": "pit-agency-conf", "company_id": company})
    agency = "pit-agency-conf"
    contact = seeded["contact_ids"][0]
    pipe = recs["pipelines"][0]
    stages = [st["id"] for st in pipe["stages"]]
    users = [u["id"] for u in recs["users"]]
    bad_id, unknown = "not-an-id", "B" * 20

    # -- opportunities --------------------------------------------------------------------------
    q = {"location_id": LOC, "limit": 10, "status": "all", "order": "added_asc"}
    page = c.check("search-opportunity", 200, "/opportunities/search", query=q)
    c.check("search-opportunity", 200, "/opportunities/search", label="last page", query=dict(
        q, limit=100, startAfter=page["meta"]["startAfter"], startAfterId=page["meta"]["startAfterId"]))
    c.check("search-opportunity", 422, "/opportunities/search", query={"locationId": LOC}, label="locationId")
    c.check("search-opportunity", 422, "/opportunities/search", query={"location_id": LOC, "limit": 101},
            label="limit > 100")
    c.check("search-opportunity", 401, "/opportunities/search", query=q, token=False)
    c.check("search-opportunity", 400, "/opportunities/search", query=q, version="2021-04-15", label="Version")
    c.check("search-opportunity", 403, "/opportunities/search", query=dict(q, location_id=OTHER_LOC))
    adv = c.check("search-opportunities-advanced", 200, "/opportunities/search", body={
        "locationId": LOC, "query": "", "limit": 5, "page": 1, "searchAfter": [],
        "additionalDetails": {"notes": False, "tasks": False, "calendarEvents": False, "unReadConversations": False},
        "filters": [{"field": "status", "operator": "eq", "value": ["open", "won"]}],
        "sort": [{"field": "date_updated", "direction": "asc"}]})
    c.check("search-opportunities-advanced", 200, "/opportunities/search", label="searchAfter", body={
        "locationId": LOC, "limit": 5, "searchAfter": adv["opportunities"][-1]["searchAfter"],
        "filters": [{"field": "status", "operator": "eq", "value": ["open", "won"]}],
        "sort": [{"field": "date_updated", "direction": "asc"}]})
    c.check("search-opportunities-advanced", 422, "/opportunities/search", label="page and searchAfter",
            body={"locationId": LOC, "limit": 5, "page": 2, "searchAfter": [1, "x"]})
    c.check("search-opportunities-advanced", 422, "/opportunities/search", label="limit > 500",
            body={"locationId": LOC, "limit": 501})
    c.check("search-opportunities-advanced", 401, "/opportunities/search", body={"locationId": LOC}, token=False)
    c.check("get-lost-reason", 200, "/opportunities/lost-reason", query={"locationId": LOC, "limit": 2})
    c.check("get-lost-reason", 422, "/opportunities/lost-reason", query={"locationId": LOC, "limit": "x"},
            label="limit not a number")
    c.check("get-lost-reason", 401, "/opportunities/lost-reason", query={"locationId": LOC}, token=False)
    c.check("get-pipelines", 200, "/opportunities/pipelines", query={"locationId": LOC})
    c.check("get-pipelines", 401, "/opportunities/pipelines", query={"locationId": LOC}, token=False)
    c.check("get-pipelines", 422, "/opportunities/pipelines", query={}, label="no locationId")
    body = {"pipelineId": pipe["id"], "locationId": LOC, "name": "Conformance deal", "status": "open",
            "contactId": contact, "pipelineStageId": stages[0], "monetaryValue": 1200, "assignedTo": users[0],
            "customFields": [{"id": "cfConformance0000001", "field_value": "x"}]}
    opp = c.check("create-opportunity", 201, "/opportunities/", body=body)["opportunity"]
    c.check("create-opportunity", 400, "/opportunities/", body=body, label="duplicate open opportunity")
    c.check("create-opportunity", 422, "/opportunities/", body={"locationId": LOC}, label="missing fields")
    c.check("create-opportunity", 401, "/opportunities/", body=body, token=False)
    opath = "/opportunities/%s" % opp["id"]
    c.check("get-opportunity", 200, opath)
    c.check("get-opportunity", 400, "/opportunities/%s" % bad_id, label="malformed id")
    c.check("get-opportunity", 401, opath, token=False)
    c.check("update-opportunity", 200, opath, body={"pipelineStageId": stages[1], "monetaryValue": 1500})
    c.check("update-opportunity", 422, opath, body={"status": "maybe"}, label="bad status")
    c.check("update-opportunity", 401, opath, body={}, token=False)
    c.check("update-opportunity-status", 200, opath + "/status", body={"status": "won"})
    c.check("update-opportunity-status", 422, opath + "/status", body={}, label="no status")
    c.check("update-opportunity-status", 401, opath + "/status", body={"status": "won"}, token=False)
    c.check("Upsert-opportunity", 200, "/opportunities/upsert", label="by id", body={
        "id": opp["id"], "pipelineId": pipe["id"], "locationId": LOC, "followers": users[:1],
        "isRemoveAllFollowers": False, "followersActionType": "add", "name": "Upserted"})
    c.check("Upsert-opportunity", 200, "/opportunities/upsert", label="new", body={
        "pipelineId": recs["pipelines"][1]["id"], "locationId": LOC, "contactId": contact, "name": "Fresh"})
    c.check("Upsert-opportunity", 422, "/opportunities/upsert", body={"locationId": LOC}, label="no pipelineId")
    c.check("Upsert-opportunity", 401, "/opportunities/upsert", body={"locationId": LOC}, token=False)
    c.check("add-followers-opportunity", 201, opath + "/followers", body={"followers": users[1:3]})
    c.check("add-followers-opportunity", 422, opath + "/followers", body={}, label="no followers")
    c.check("add-followers-opportunity", 401, opath + "/followers", body={"followers": []}, token=False)
    c.check("remove-followers-opportunity", 200, opath + "/followers", body={"followers": users[1:2]})
    c.check("remove-followers-opportunity", 422, opath + "/followers", body={"followers": [1]}, label="not strings")
    c.check("remove-followers-opportunity", 401, opath + "/followers", body={"followers": []}, token=False)
    c.check("delete-opportunity", 200, opath)
    c.check("delete-opportunity", 400, "/opportunities/%s" % bad_id, label="malformed id")
    c.check("delete-opportunity", 401, opath, token=False)
    c.check("get-opportunity", 404, opath, label="deleted")

    # -- users ----------------------------------------------------------------------------------
    uq = {"companyId": company, "locationId": LOC, "skip": "0", "limit": "3"}
    c.check("search-users", 200, "/users/search", query=uq)
    c.check("search-users", 200, "/users/search", query={"companyId": company, "query": "example"},
            token=agency, label="agency token")
    c.check("search-users", 422, "/users/search", query={"locationId": LOC}, label="no companyId")
    c.check("search-users", 422, "/users/search", query=dict(uq, limit="ten"), label="limit not a number")
    c.check("search-users", 401, "/users/search", query=uq, token=False)
    c.check("get-user-by-location", 200, "/users/", query={"locationId": LOC})
    c.check("get-user-by-location", 401, "/users/", query={"locationId": LOC}, token=False)
    c.check("get-user-by-location", 422, "/users/", query={}, label="no locationId")
    new = c.check("create-user", 201, "/users/", body={
        "companyId": company, "firstName": "Conf", "lastName": "User", "email": "conf.user@example.com",
        "password": "s3cret-Pass!", "type": "account", "role": "user", "locationIds": [LOC],
        "scopes": ["contacts.write"], "platformLanguage": "en_US"})
    c.check("create-user", 400, "/users/", label="duplicate email", body={
        "companyId": company, "firstName": "Conf", "lastName": "Again", "email": "conf.user@example.com",
        "password": "x", "type": "account", "role": "user", "locationIds": [LOC]})
    c.check("create-user", 422, "/users/", body={"companyId": company}, label="missing fields")
    c.check("create-user", 401, "/users/", body={}, token=False)
    upath = "/users/%s" % new["id"]
    c.check("get-user", 200, upath)
    c.check("get-user", 400, "/users/%s" % bad_id, label="malformed id")
    c.check("get-user", 401, upath, token=False)
    c.check("update-user", 200, upath, body={"phone": "+15125550123", "role": "admin"})
    c.check("update-user", 422, upath, body={"email": "new@example.com"}, label="email update")
    c.check("update-user", 401, upath, body={}, token=False)
    c.check("filter-users-by-email", 200, "/users/search/filter-by-email", token=agency, body={
        "companyId": company, "emails": "conf.user@example.com,nobody@example.com", "skip": "0", "limit": "10"})
    c.check("filter-users-by-email", 200, "/users/search/filter-by-email", token=agency, label="projection all",
            body={"companyId": company, "emails": "conf.user@example.com", "projection": "all"})
    c.check("filter-users-by-email", 422, "/users/search/filter-by-email", token=agency, label="emails array",
            body={"companyId": company, "emails": ["conf.user@example.com"]})
    c.check("filter-users-by-email", 401, "/users/search/filter-by-email", label="location token",
            body={"companyId": company, "emails": "conf.user@example.com"})
    c.check("delete-user", 200, upath)
    c.check("delete-user", 400, "/users/%s" % bad_id, label="malformed id")
    c.check("delete-user", 401, upath, token=False)

    # -- businesses -----------------------------------------------------------------------------
    c.check("get-businesses-by-location", 200, "/businesses/", query={"locationId": LOC, "limit": "2", "skip": "1"})
    c.check("get-businesses-by-location", 401, "/businesses/", query={"locationId": LOC}, token=False)
    c.check("get-businesses-by-location", 422, "/businesses/", query={"locationId": LOC, "skip": "-1"},
            label="skip not a number")
    biz = c.check("create-business", 201, "/businesses/", body={
        "name": "Conformance Inc", "locationId": LOC, "email": "hi@conf.example", "city": "Austin"})["buiseness"]
    c.check("create-business", 422, "/businesses/", body={"locationId": LOC}, label="no name")
    c.check("create-business", 401, "/businesses/", body={}, token=False)
    bpath = "/businesses/%s" % biz["id"]
    c.check("get-business", 200, bpath)
    c.check("get-business", 200, "/businesses/%s" % recs["businesses"][0]["id"], label="meta business")
    c.check("get-business", 400, "/businesses/%s" % unknown, label="not 24-hex")
    c.check("get-business", 401, bpath, token=False)
    c.check("update-business", 200, bpath, body={"description": "updated"})
    c.check("update-business", 422, bpath, body={"name": 7}, label="name not a string")
    c.check("update-business", 401, bpath, body={}, token=False)
    c.check("delete-Business", 200, bpath)
    c.check("delete-Business", 400, "/businesses/xyz", label="not 24-hex")
    c.check("delete-Business", 401, bpath, token=False)
    c.check("get-business", 404, bpath, label="deleted")

    # -- workflows, campaigns, snapshots ----------------------------------------------------------
    c.check("get-workflow", 200, "/workflows/", query={"locationId": LOC})
    c.check("get-workflow", 422, "/workflows/", query={}, label="no locationId")
    c.check("get-workflow", 401, "/workflows/", query={"locationId": LOC}, token=False)
    c.check("get-campaigns", 200, "/campaigns/", query={"locationId": LOC})
    c.check("get-campaigns", 200, "/campaigns/", query={"locationId": LOC, "status": "published"}, label="status")
    c.check("get-campaigns", 422, "/campaigns/", query={}, label="no locationId")
    c.check("get-campaigns", 401, "/campaigns/", query={"locationId": LOC}, token=False)
    c.check("get-custom-snapshots", 200, "/snapshots/", query={"companyId": company}, token=agency)
    c.check("get-custom-snapshots", 401, "/snapshots/", query={"companyId": company}, label="location token")
    c.check("get-custom-snapshots", 422, "/snapshots/", query={}, token=agency, label="no companyId")
    snap = c.sbx.control("GET", "/_control/state")["records"]["snapshots"][0]["id"]
    c.sbx.control("POST", "/_control/mutate", {"ops": [{"kind": "snapshot_push", "op": "push",
                                                          "fields": {"snapshotId": snap, "duration_ms": 0}}]})
    spath = "/snapshots/snapshot-status/" + snap
    window = {"companyId": company, "from": "01-01-2000 12:00 AM", "to": "12-31-2099 11:59 PM", "lastDoc": "",
              "limit": "10"}
    c.check("get-snapshot-push", 200, spath, query=window, token=agency)
    c.check("get-snapshot-push", 401, spath, query=window, label="location token")
    c.check("get-snapshot-push", 422, spath, query=dict(window, to="yesterday"), token=agency, label="bad to")
    c.check("get-snapshot-push", 400, "/snapshots/snapshot-status/nope", query=window, token=agency,
            label="unknown snapshot")
    lpath = spath + "/location/" + LOC
    c.check("get-latest-snapshot-push", 200, lpath, query={"companyId": company}, token=agency)
    c.check("get-latest-snapshot-push", 401, lpath, query={"companyId": company}, label="location token")
    c.check("get-latest-snapshot-push", 400, "/snapshots/snapshot-status/%s/location/%s" % (
        c.sbx.control("GET", "/_control/state")["records"]["snapshots"][1]["id"], LOC),
        query={"companyId": company}, token=agency, label="never pushed")
    share = {"snapshot_id": snap, "share_type": "permanent_link"}
    c.check("create-snapshot-share-link", 201, "/snapshots/share/link", body=share, query={"companyId": company},
            token=agency)
    c.check("create-snapshot-share-link", 201, "/snapshots/share/link", query={"companyId": company},
            body={"snapshot_id": snap, "share_type": "location_link", "share_location_id": LOC}, token=agency,
            label="location_link")
    c.check("create-snapshot-share-link", 401, "/snapshots/share/link", body=share, query={"companyId": company},
            label="location token")
    c.check("create-snapshot-share-link", 400, "/snapshots/share/link", query={"companyId": company},
            body={"snapshot_id": snap, "share_type": "agency_link"}, token=agency, label="no relationship_number")
    c.check("create-snapshot-share-link", 422, "/snapshots/share/link", query={"companyId": company},
            body={"snapshot_id": snap, "share_type": "forever"}, token=agency, label="bad share_type")
    run_associations(c, sbx)
    run_task_search(c, sbx, contact)


def run_task_search(c, sbx, contact):
    """The location-wide task search (catalog-map §3.1): pages, filters, errors."""
    path = "/locations/%s/tasks/search" % LOC
    listed = c.check("task-search", 200, path, body={"skip": 0, "limit": 10})["tasks"]
    if not listed:
        c.failures.append(("task-search", 200, ["the seeded location lists no tasks"]))
    c.check("task-search", 200, path, body={"contactId": [contact], "completed": True, "assignedTo": [],
                                            "query": "a", "skip": 0, "limit": 100}, label="filters")
    c.check("task-search", 422, path, body={"limit": 1000}, label="limit over 100")
    c.check("task-search", 403, "/locations/%s/tasks/search" % OTHER_LOC, body={}, label="other location")
    c.check("task-search", 401, path, body={}, token=False)


def run_associations(c, sbx):
    """Associations and relations (catalog-map §2.7, §4.7), between two new contacts."""
    made = sbx.control("POST", "/_control/mutate", {"ops": [{"kind": "contact", "op": "create"}] * 2})["changes"]
    first, second = made[0]["id"], made[1]["id"]
    page = {"locationId": LOC, "skip": "0", "limit": "10"}
    listed = c.check("find-associations", 200, "/associations/", query=page)["associations"]
    c.check("find-associations", 422, "/associations/", query={"locationId": LOC}, label="no skip/limit")
    c.check("find-associations", 401, "/associations/", query=page, token=False)
    system = next(x for x in listed if x["associationType"] == "SYSTEM_DEFINED")
    create = {"locationId": LOC, "key": "conf_mentor", "firstObjectLabel": "mentor", "firstObjectKey": "contact",
              "secondObjectLabel": "mentee", "secondObjectKey": "contact"}
    op = "associations/create-association"
    assoc = c.check(op, 201, "/associations/", body=create)
    c.check(op, 400, "/associations/", body=create, label="key taken")
    c.check(op, 422, "/associations/", body={"locationId": LOC, "key": "x"}, label="no labels")
    c.check(op, 401, "/associations/", body=create, token=False)
    apath = "/associations/%s" % assoc["id"]
    c.check("get-association-by-ID", 200, apath)
    c.check("get-association-by-ID", 404, "/associations/%s" % ("A" * 20), label="unknown")
    c.check("get-association-by-ID", 401, apath, token=False)
    labels = {"firstObjectLabel": "coach", "secondObjectLabel": "coachee"}
    c.check("update-association", 200, apath, body=labels)
    c.check("update-association", 422, apath, body={"key": "other"}, label="the key cannot change")
    c.check("update-association", 401, apath, body=labels, token=False)
    rel = c.check("create-relation", 201, "/associations/relations", body={
        "locationId": LOC, "associationId": assoc["id"], "firstRecordId": first, "secondRecordId": second})
    c.check("create-relation", 400, "/associations/relations", body={
        "locationId": LOC, "associationId": assoc["id"], "firstRecordId": first, "secondRecordId": second},
        label="duplicate")
    c.check("create-relation", 422, "/associations/relations", body={"locationId": LOC}, label="no ids")
    c.check("create-relation", 401, "/associations/relations", body={}, token=False)
    rpath = "/associations/relations/%s" % first
    c.check("get-relations-by-record-id", 200, rpath, query=page)
    c.check("get-relations-by-record-id", 422, rpath, query={"locationId": LOC}, label="no skip/limit")
    c.check("get-relations-by-record-id", 401, rpath, query=page, token=False)
    dpath = "/associations/relations/%s" % rel["id"]
    c.check("delete-relation", 422, dpath, label="no locationId")
    c.check("delete-relation", 401, dpath, query={"locationId": LOC}, token=False)
    c.check("delete-relation", 200, dpath, query={"locationId": LOC})
    c.check("delete-relation", 404, dpath, query={"locationId": LOC}, label="deleted")
    c.check("delete-association", 400, "/associations/%s" % system["id"], label="SYSTEM_DEFINED")
    c.check("delete-association", 401, apath, token=False)
    c.check("delete-association", 200, apath)
    c.check("delete-association", 404, apath, label="deleted")


def validator_self_test(v):
    """The validator must reject known-bad bodies, or every PASS above would be meaningless."""
    base, _ = v.doc("apps/contacts.json")
    oauth, _ = v.doc("apps/oauth.json")
    ref = lambda name: {"$ref": "#/components/schemas/" + name}  # noqa: E731
    bad = [
        ({"task": {"id": "x", "completed": "yes"}}, ref("TaskByIsSuccessfulResponseDto"), base),
        ({"contact": {"tags": "vip"}}, ref("ContactsByIdSuccessfulResponseDto"), base),
        ({"contact": {"dndSettings": {"SMS": {"status": "maybe"}}}}, ref("ContactsByIdSuccessfulResponseDto"), base),
        ({"contact": {"attributionSource": {"campaign": "x"}}}, ref("ContactsByIdSuccessfulResponseDto"), base),
        ({"statusCode": 422, "message": "not an array"}, {"$ref": COMMON + "UnprocessableDTO"}, base),
        ({"succeded": True, "errorCount": 0}, ref("UpdateTagsResponseDTO"), base),
        ({"access_token": "x"}, ref("GetAccessCodeSuccessfulResponseDto"), oauth),
        ({"contacts": [{"id": 1}], "count": 1}, ref("ContactsSearchSuccessfulResponseDto"), base),
        ({"contact": None}, ref("ContactsByIdSuccessfulResponseDto"), base),
        (1.5, {"type": "integer"}, base), (True, {"type": "number"}, base), ("7", {"type": "number"}, base),
        ({"a": 1}, {"type": "object", "additionalProperties": False}, base),
        ("x", {"anyOf": [{"type": "number"}, {"type": "boolean"}]}, base),
        (1, {"oneOf": [{"type": "number"}, {"type": "integer"}]}, base),
        ("c", {"enum": ["a", "b"]}, base),
    ]
    good = [({"contact": None, "traceId": "t"}, NOTES_SCHEMAS[("get-duplicate-contact", 200)][1], base),
            (7, {"type": "integer"}, base), (None, {"type": "string", "nullable": True}, base)]
    failures = []
    for value, schema, b in bad:
        if not v.errors(value, schema, b):
            failures.append("accepted a bad value: %s against %s" % (json.dumps(value), json.dumps(schema)))
    for value, schema, b in good:
        errs = v.errors(value, schema, b)
        if errs:
            failures.append("rejected a good value %s: %s" % (json.dumps(value), errs))
    print("%s  validator self-test (%d bad and %d good samples)" % ("FAIL" if failures else "PASS", len(bad),
                                                                    len(good)))
    for f in failures:
        print("        " + f)
    return not failures


def main():
    if not os.path.isdir(os.path.join(SPEC_DIR, "apps")):
        print("spec directory not found: %s (set GHL_OPENAPI_DIR)" % SPEC_DIR)
        return 2
    validator = Validator(SPEC_DIR)
    if not validator_self_test(validator):
        print("CONFORMANCE FAILED")
        return 1
    tokens = ["pit-demo-token=" + LOC, "%s=%s" % (OTHER_TOKEN, OTHER_LOC)]
    with Sandbox.start(seed=3, rate_limit=0, token=tokens) as sbx:
        c = Conformance(sbx, validator)
        run(c, sbx)
        run_categories(c, sbx)
        routes = sbx.control("GET", "/_control/routes")["routes"]
    print()
    routed = {r["operationId"]: r for r in routes}
    uncovered = sorted(op for op in routed if not any(200 <= s < 300 for s in c.covered.get(op, ())))
    no_error_path = sorted(op for op in routed if not any(s >= 400 for s in c.covered.get(op, ())))
    unknown = sorted(op for op in routed if op not in c.ops)
    mismatched = sorted(op for op, r in routed.items() if op in c.ops and
                        (c.ops[op][0], c.ops[op][1]) != (r["method"], r["path"]))
    print("Operations (sandbox route table vs. checks):")
    for op in sorted(routed):
        r = routed[op]
        print("  %-36s %-6s %-48s statuses %s" % (op, r["method"], r["path"], sorted(c.covered.get(op, ()))))
    if c.notes_used:
        print("\nSchemas taken from docs/ghl-api-notes.md or corrected spec defects:")
        for n in sorted(c.notes_used):
            print("  - " + n)
    print("\nSummary: %d checks, %d failed; %d routed operations, %d without a success check, "
          "%d without an error-path check." % (c.checks, len(c.failures), len(routed), len(uncovered),
                                               len(no_error_path)))
    bad = False
    for label, items in (("not covered (no passing 2xx check)", uncovered),
                         ("no passing error-path check", no_error_path),
                         ("routed but absent from the spec", unknown),
                         ("method/path differ from the spec", mismatched)):
        if items:
            bad = True
            print("FAIL: %s: %s" % (label, ", ".join(items)))
    if c.failures or bad:
        print("CONFORMANCE FAILED")
        return 1
    print("CONFORMANCE OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
