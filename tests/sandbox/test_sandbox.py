#!/usr/bin/env python3
"""Behavioural tests of the sandbox itself (plain unittest, standard library only).

    python3 tests/sandbox/test_sandbox.py [-v] [TestClass.test_name]
"""

import gzip
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import unittest.mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from client import DEFAULT_LOCATION, SANDBOX, ControlError, Sandbox  # noqa: E402

LOC = DEFAULT_LOCATION
OTHER_TOKEN, OTHER_LOC = "pit-other-token", "otherLocation0000002"


class SandboxCase(unittest.TestCase):
    """One sandbox per test class; every test starts from a reset and a small seed."""

    start_opts = {}
    seed_contacts = 60

    @classmethod
    def setUpClass(cls):
        cls.sbx = Sandbox.start(seed=7, token=["pit-demo-token=" + LOC, "%s=%s" % (OTHER_TOKEN, OTHER_LOC)],
                                **cls.start_opts)

    @classmethod
    def tearDownClass(cls):
        cls.sbx.stop()

    def setUp(self):
        self.sbx.control("POST", "/_control/reset")
        self.ids = []
        if self.seed_contacts:
            out = self.sbx.control("POST", "/_control/seed", {"contacts": self.seed_contacts, "tasks_per_contact": 2,
                                                              "notes_per_contact": 2, "seed": 11, "log": False})
            self.ids = out["contact_ids"]
        self.seq0 = self.last_change()

    # --- helpers -----------------------------------------------------------------------------

    def api(self, method, path, body=None, **kw):
        return self.sbx.api(method, path, body, **kw)

    def ok(self, method, path, body=None, status=200, **kw):
        st, _, out = self.api(method, path, body, **kw)
        self.assertEqual(st, status, "%s %s -> %s %s" % (method, path, st, out))
        return out

    def last_change(self):
        return self.sbx.control("GET", "/_control/changes", query={"since": 10 ** 12})["last_seq"]

    def changes(self, since=None):
        return self.sbx.control("GET", "/_control/changes", query={"since": self.seq0 if since is None else since})[
            "changes"]

    def state(self, contact=None):
        q = {"location": LOC}
        if contact:
            q["contact"] = contact
        return self.sbx.control("GET", "/_control/state", query=q)

    def live_ids(self):
        return {c["id"] for c in self.state()["contacts"] if not c["deleted"]}

    def contact(self, cid):
        return self.ok("GET", "/contacts/%s" % cid)["contact"]


class Pagination(SandboxCase):
    seed_contacts = 237

    def list_all(self, limit):
        seen, pages, meta = [], 0, None
        query = {"locationId": LOC, "limit": limit}
        while True:
            out = self.ok("GET", "/contacts/", query=query)
            pages += 1
            seen += out["contacts"]
            meta = out["meta"]
            self.assertEqual(meta["total"], out["count"])
            if meta["nextPage"] is None:
                self.assertIsNone(meta["nextPageUrl"])
                break
            self.assertIsNotNone(meta["nextPageUrl"])
            query = {"locationId": LOC, "limit": limit, "startAfter": meta["startAfter"],
                     "startAfterId": meta["startAfterId"]}
        return seen, pages

    def test_list_reaches_every_record_in_order(self):
        items, pages = self.list_all(50)
        ids = [c["id"] for c in items]
        self.assertEqual(len(ids), len(set(ids)), "duplicates across pages")
        self.assertEqual(set(ids), self.live_ids())
        self.assertEqual(pages, 5)
        keys = [(c["dateAdded"], c["id"]) for c in items]
        self.assertEqual(keys, sorted(keys))
        self.assertTrue(any(a[0] == b[0] for a, b in zip(keys, keys[1:])), "seed should contain dateAdded ties")
        for c in items:
            self.assertIn("dateUpdated", c)
            self.assertIn("firstName", c)

    def test_list_next_page_url_and_page_numbers(self):
        out = self.ok("GET", "/contacts/", query={"locationId": LOC, "limit": 100})
        meta = out["meta"]
        self.assertEqual((meta["currentPage"], meta["nextPage"], meta["prevPage"]), (1, 2, None))
        path = meta["nextPageUrl"].split(str(self.sbx.port), 1)[1]
        out2 = self.ok("GET", path)
        self.assertEqual((out2["meta"]["currentPage"], out2["meta"]["prevPage"]), (2, 1))
        last, first = out["contacts"][-1], out2["contacts"][0]
        self.assertLess((last["dateAdded"], last["id"]), (first["dateAdded"], first["id"]))
        all_items, _ = self.list_all(100)
        self.assertEqual(all_items[100]["id"], first["id"])

    def test_list_with_deletes_between_pages(self):
        first = self.ok("GET", "/contacts/", query={"locationId": LOC, "limit": 10})
        second_expected = self.ok("GET", "/contacts/", query={"locationId": LOC, "limit": 20})["contacts"][10:]
        self.ok("DELETE", "/contacts/%s" % first["contacts"][-1]["id"])   # the cursor record itself
        self.ok("DELETE", "/contacts/%s" % second_expected[0]["id"])
        nxt = self.ok("GET", "/contacts/", query={"locationId": LOC, "limit": 10,
                                                  "startAfter": first["meta"]["startAfter"],
                                                  "startAfterId": first["meta"]["startAfterId"]})
        self.assertEqual([c["id"] for c in nxt["contacts"]], [c["id"] for c in second_expected[1:]] +
                         [self.ok("GET", "/contacts/", query={"locationId": LOC, "limit": 21})["contacts"][18]["id"]])

    def test_list_limits(self):
        self.assertEqual(len(self.ok("GET", "/contacts/", query={"locationId": LOC})["contacts"]), 20)
        st, _, out = self.api("GET", "/contacts/", query={"locationId": LOC, "limit": 101})
        self.assertEqual(st, 422)
        self.assertIsInstance(out["message"], list)
        st, _, out = self.api("GET", "/contacts/", query={"limit": 10})
        self.assertEqual(st, 422)

    def search_all(self, body, mode):
        seen, after, page = [], None, 1
        while True:
            b = dict(body, locationId=LOC, pageLimit=40)
            if mode == "page":
                b["page"] = page
            elif after is not None:
                b["searchAfter"] = after
            out = self.ok("POST", "/contacts/search", b)
            if not out["contacts"]:
                return seen, out["total"]
            seen += out["contacts"]
            after = out["contacts"][-1]["searchAfter"]
            page += 1

    def test_search_reaches_every_record_both_styles(self):
        live = self.live_ids()
        for mode in ("page", "searchAfter"):
            for sort in (None, [{"field": "dateUpdated", "direction": "desc"}],
                         [{"field": "lastName", "direction": "asc"}, {"field": "dateAdded", "direction": "desc"}]):
                body = {"sort": sort} if sort else {}
                items, total = self.search_all(body, mode)
                ids = [c["id"] for c in items]
                self.assertEqual(total, len(live))
                self.assertEqual(len(ids), len(set(ids)), (mode, sort))
                self.assertEqual(set(ids), live, (mode, sort))

    def test_search_sort_order_and_cursor_shape(self):
        items, _ = self.search_all({"sort": [{"field": "dateUpdated", "direction": "desc"}]}, "searchAfter")
        keys = [(-c["searchAfter"][0], c["id"]) for c in items]
        self.assertEqual(keys, sorted(keys))
        for c in items:
            self.assertEqual(c["searchAfter"][-1], c["id"])
            self.assertIsInstance(c["searchAfter"][0], int)
            self.assertIn("address", c)
            self.assertNotIn("address1", c)

    def test_search_limits(self):
        def status(body):
            return self.api("POST", "/contacts/search", body)[0]
        self.assertEqual(status({"locationId": LOC, "pageLimit": 500}), 200)
        self.assertEqual(status({"locationId": LOC, "pageLimit": 501}), 422)
        self.assertEqual(status({"locationId": LOC, "pageLimit": 0}), 422)
        self.assertEqual(status({"locationId": LOC, "pageLimit": 100, "page": 100}), 200)
        st, _, out = self.api("POST", "/contacts/search", {"locationId": LOC, "pageLimit": 100, "page": 101})
        self.assertEqual(st, 422)
        self.assertIn("searchAfter", out["message"][0])
        self.assertEqual(status({"pageLimit": 10}), 422)
        self.assertEqual(status({"locationId": LOC}), 422)
        self.assertEqual(status({"locationId": LOC, "pageLimit": 10, "page": 2, "searchAfter": [1, "x"]}), 422)
        self.assertEqual(status({"locationId": LOC, "pageLimit": 10, "query": "x" * 76}), 422)
        self.assertEqual(status({"locationId": LOC, "pageLimit": 10, "filters": [{"field": "nope", "operator": "eq",
                                                                                   "value": 1}]}), 422)
        self.assertEqual(status({"locationId": OTHER_LOC, "pageLimit": 10}), 403)

    def test_search_filters_match_a_reference_implementation(self):
        contacts = [c for c in self.state()["contacts"] if not c["deleted"]]
        mid = sorted(c["dateUpdated"] for c in contacts)[len(contacts) // 2]

        def ids(filters, query=None):
            body = {"locationId": LOC, "pageLimit": 500, "filters": filters}
            if query:
                body["query"] = query
            return {c["id"] for c in self.ok("POST", "/contacts/search", body)["contacts"]}

        def ref(pred):
            return {c["id"] for c in contacts if pred(c)}

        self.assertEqual(ids([{"field": "tags", "operator": "eq", "value": "vip"}]),
                         ref(lambda c: "vip" in c["tags"]))
        self.assertEqual(ids([{"field": "dateUpdated", "operator": "range", "value": {"gt": mid}}]),
                         ref(lambda c: c["dateUpdated"] > mid))
        self.assertEqual(ids([{"field": "dateUpdated", "operator": "range",
                               "value": {"gte": self._ms(mid)}}]), ref(lambda c: c["dateUpdated"] >= mid))
        lo = sorted(c["dateAdded"] for c in contacts)[len(contacts) // 3]
        hi = sorted(c["dateAdded"] for c in contacts)[2 * len(contacts) // 3]
        self.assertEqual(ids([{"field": "dateAdded", "operator": "range", "value": {"gte": lo, "lt": self._ms(hi)}},
                              {"field": "dateUpdated", "operator": "range", "value": {"lte": mid}}]),
                         ref(lambda c: lo <= c["dateAdded"] < hi and c["dateUpdated"] <= mid))
        self.assertEqual(ids([{"field": "dateAdded", "operator": "range", "value": {"gt": lo, "lte": hi}}]),
                         ref(lambda c: lo < c["dateAdded"] <= hi))
        self.assertEqual(ids([{"group": "OR", "filters": [{"field": "city", "operator": "eq", "value": "Austin"},
                                                           {"field": "city", "operator": "eq", "value": "denver"}]}]),
                         ref(lambda c: c["city"] in ("Austin", "Denver")))
        self.assertEqual(ids([{"field": "companyName", "operator": "exists"}]), ref(lambda c: c.get("companyName")))
        self.assertEqual(ids([{"field": "companyName", "operator": "not_exists"}]),
                         ref(lambda c: not c.get("companyName")))
        self.assertEqual(ids([{"field": "email", "operator": "contains", "value": "GMAIL"}]),
                         ref(lambda c: "gmail" in c["email"]))
        self.assertEqual(ids([{"field": "type", "operator": "not_eq", "value": "lead"}]),
                         ref(lambda c: c["type"] != "lead"))
        self.assertEqual(ids([{"field": "dnd", "operator": "eq", "value": False},
                              {"field": "tags", "operator": "not_contains", "value": "co"}]),
                         ref(lambda c: not c["dnd"] and not any("co" in t for t in c["tags"])))
        name = contacts[3]["firstName"]
        self.assertEqual(ids([], query=name.lower()),
                         ref(lambda c: name.lower() in c["name"].lower() or name.lower() in c["email"]
                             or name.lower() in c.get("companyName", "").lower()))

    @staticmethod
    def _ms(iso):
        import datetime
        return int(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)

    def test_business_list(self):
        biz = self.state()["meta"]["businesses"][0]
        expected = [c for c in self.state()["contacts"] if c.get("businessId") == biz and not c["deleted"]]
        out = self.ok("GET", "/contacts/business/%s" % biz, query={"locationId": LOC, "limit": "100"})
        self.assertEqual(out["count"], len(expected))
        self.assertEqual({c["id"] for c in out["contacts"]}, {c["id"] for c in expected})
        page2 = self.ok("GET", "/contacts/business/%s" % biz, query={"locationId": LOC, "limit": "5", "skip": "5"})
        self.assertEqual([c["id"] for c in page2["contacts"]], [c["id"] for c in out["contacts"][5:10]])


class DateUpdated(SandboxCase):
    seed_contacts = 5

    def test_contact_update_bumps_and_noop_does_not(self):
        cid = self.ids[0]
        before = self.contact(cid)
        out = self.ok("PUT", "/contacts/%s" % cid, {"firstName": "Zed", "city": before["city"]})
        self.assertTrue(out["succeded"])
        after = out["contact"]
        self.assertGreater(after["dateUpdated"], before["dateUpdated"])
        self.assertEqual(after["name"], "Zed " + before["lastName"])
        ch = self.changes()
        self.assertEqual(len(ch), 1)
        self.assertEqual((ch[0]["kind"], ch[0]["op"], ch[0]["id"], ch[0]["source"]), ("contact", "updated", cid, "api"))
        self.assertIn("firstName", ch[0]["fields"])
        self.assertIn("dateUpdated", ch[0]["fields"])
        self.assertNotIn("city", ch[0]["fields"])
        self.assertEqual(ch[0]["record"]["dateUpdated"], after["dateUpdated"])
        found = self.ok("POST", "/contacts/search", {"locationId": LOC, "pageLimit": 10, "filters": [
            {"field": "dateUpdated", "operator": "range", "value": {"gte": after["dateUpdated"]}}]})["contacts"]
        self.assertEqual([c["id"] for c in found], [cid], "search sees the new dateUpdated")
        # the same values again: nothing changes, nothing is logged
        again = self.ok("PUT", "/contacts/%s" % cid, {"firstName": "Zed", "city": before["city"]})["contact"]
        self.assertEqual(again["dateUpdated"], after["dateUpdated"])
        self.assertEqual(len(self.changes()), 1)

    def test_tags_followers(self):
        cid = self.ids[1]
        d0 = self.contact(cid)["dateUpdated"]
        tags = self.ok("POST", "/contacts/%s/tags" % cid, {"tags": ["Brand-New", "another"]}, status=201)["tags"]
        self.assertIn("brand-new", tags)
        d1 = self.contact(cid)["dateUpdated"]
        self.assertGreater(d1, d0)
        self.ok("POST", "/contacts/%s/tags" % cid, {"tags": ["brand-new"]}, status=201)
        self.assertEqual(self.contact(cid)["dateUpdated"], d1, "adding an existing tag is a no-op")
        out = self.ok("DELETE", "/contacts/%s/tags" % cid, {"tags": ["brand-new", "not-there"]})
        self.assertNotIn("brand-new", out["tags"])
        d2 = self.contact(cid)["dateUpdated"]
        self.assertGreater(d2, d1)
        self.ok("PUT", "/contacts/%s" % cid, {"tags": ["only"]})
        self.assertEqual(self.contact(cid)["tags"], ["only"])
        user = self.state()["meta"]["users"][2]
        out = self.ok("POST", "/contacts/%s/followers" % cid, {"followers": [user]}, status=201)
        self.assertEqual(out["followersAdded"], [user] if user not in self.contact(cid)["followers"][:-1] else [])
        d3 = self.contact(cid)["dateUpdated"]
        self.assertGreater(d3, d2)
        out = self.ok("POST", "/contacts/%s/followers" % cid, {"followers": [user]}, status=201)
        self.assertEqual(out["followersAdded"], [])
        self.assertEqual(self.contact(cid)["dateUpdated"], d3)
        out = self.ok("DELETE", "/contacts/%s/followers" % cid, {"followers": [user]})
        self.assertEqual(out["followersRemoved"], [user])
        self.assertGreater(self.contact(cid)["dateUpdated"], d3)

    def test_task_writes_bump_the_contact(self):
        cid = self.ids[2]
        d = [self.contact(cid)["dateUpdated"]]
        task = self.ok("POST", "/contacts/%s/tasks" % cid, {"title": "Call", "dueDate": "2026-01-02T10:00:00Z",
                                                            "completed": False}, status=201)["task"]
        self.assertEqual(task["dueDate"], "2026-01-02T10:00:00.000Z")
        self.assertEqual(set(task), {"id", "title", "dueDate", "completed", "contactId"})
        d.append(self.contact(cid)["dateUpdated"])
        self.ok("PUT", "/contacts/%s/tasks/%s" % (cid, task["id"]), {"title": "Call back"})
        d.append(self.contact(cid)["dateUpdated"])
        self.ok("PUT", "/contacts/%s/tasks/%s" % (cid, task["id"]), {"title": "Call back"})
        self.assertEqual(self.contact(cid)["dateUpdated"], d[-1], "no-op task update")
        out = self.ok("PUT", "/contacts/%s/tasks/%s/completed" % (cid, task["id"]), {"completed": True})
        self.assertTrue(out["task"]["completed"])
        d.append(self.contact(cid)["dateUpdated"])
        self.ok("PUT", "/contacts/%s/tasks/%s/completed" % (cid, task["id"]), {"completed": True})
        self.assertEqual(self.contact(cid)["dateUpdated"], d[-1], "completing twice is a no-op")
        self.assertTrue(self.ok("DELETE", "/contacts/%s/tasks/%s" % (cid, task["id"]))["succeded"])
        d.append(self.contact(cid)["dateUpdated"])
        self.assertEqual(d, sorted(set(d)), "strictly increasing")
        ch = [(c["kind"], c["op"], c["fields"] if c["kind"] == "contact" else None) for c in self.changes()
              if c.get("contactId", c["id"]) == cid]
        self.assertEqual(ch, [("task", "created", None), ("contact", "updated", ["dateUpdated"]),
                              ("task", "updated", None), ("contact", "updated", ["dateUpdated"]),
                              ("task", "updated", None), ("contact", "updated", ["dateUpdated"]),
                              ("task", "deleted", None), ("contact", "updated", ["dateUpdated"])])
        st, _, _ = self.api("GET", "/contacts/%s/tasks/%s" % (cid, task["id"]))
        self.assertEqual(st, 404)

    def test_note_writes_bump_the_contact(self):
        cid = self.ids[3]
        d = [self.contact(cid)["dateUpdated"]]
        note = self.ok("POST", "/contacts/%s/notes" % cid, {"body": "hello"}, status=201)["note"]
        d.append(self.contact(cid)["dateUpdated"])
        self.ok("PUT", "/contacts/%s/notes/%s" % (cid, note["id"]), {"body": "hello there", "pinned": True})
        d.append(self.contact(cid)["dateUpdated"])
        self.ok("PUT", "/contacts/%s/notes/%s" % (cid, note["id"]), {"body": "hello there"})
        self.assertEqual(self.contact(cid)["dateUpdated"], d[-1])
        self.ok("DELETE", "/contacts/%s/notes/%s" % (cid, note["id"]))
        d.append(self.contact(cid)["dateUpdated"])
        self.assertEqual(d, sorted(set(d)))
        kinds = [(c["kind"], c["op"]) for c in self.changes()]
        self.assertEqual(kinds, [("note", "created"), ("contact", "updated"), ("note", "updated"),
                                 ("contact", "updated"), ("note", "deleted"), ("contact", "updated")])

    def test_rapid_writes_strictly_increase(self):
        cid = self.ids[0]
        stamps = []
        for i in range(30):
            stamps.append(self.ok("PUT", "/contacts/%s" % cid, {"postalCode": "%05d" % i})["contact"]["dateUpdated"])
        self.assertEqual(stamps, sorted(set(stamps)))

    def test_delete_is_soft_and_hides_the_contact(self):
        cid = self.ids[0]
        self.assertEqual(self.ok("DELETE", "/contacts/%s" % cid)["succeded"], True)
        st, _, out = self.api("GET", "/contacts/%s" % cid)
        self.assertEqual((st, out["message"]), (404, "Contact not found"))
        self.assertNotIn(cid, {c["id"] for c in self.ok("GET", "/contacts/", query={"locationId": LOC})["contacts"]})
        self.assertNotIn(cid, {c["id"] for c in self.ok("POST", "/contacts/search", {
            "locationId": LOC, "pageLimit": 100})["contacts"]})
        self.assertTrue(self.state(contact=cid)["contacts"][0]["deleted"])
        self.assertEqual(self.api("DELETE", "/contacts/%s" % cid)[0], 404)
        self.sbx.control("POST", "/_control/config", {"deleted_status": 400})
        self.assertEqual(self.api("GET", "/contacts/%s" % cid)[0], 400)
        self.assertEqual(self.api("GET", "/contacts/%s" % ("x" * 20))[0], 400)
        self.assertEqual(self.api("GET", "/contacts/short")[0], 400)


class Contacts(SandboxCase):
    seed_contacts = 10

    def test_create_upsert_duplicates(self):
        out = self.ok("POST", "/contacts/", {"locationId": LOC, "firstName": "Ann", "lastName": "Lee",
                                             "email": "Ann.Lee@Example.com", "phone": "(512) 555-0199",
                                             "dateOfBirth": "1990/09/25", "customFields": [
                                                 {"id": "cf0000000000000000a1", "field_value": "x"}]}, status=201)
        c = out["contact"]
        self.assertEqual((c["phone"], c["emailLowerCase"], c["dateOfBirth"], c["deleted"]),
                         ("+15125550199", "ann.lee@example.com", "1990-09-25T00:00:00.000Z", False))
        self.assertEqual(c["customFields"], [{"id": "cf0000000000000000a1", "value": "x"}])
        st, _, dup = self.api("POST", "/contacts/", {"locationId": LOC, "email": "ann.lee@example.com"})
        self.assertEqual(st, 400)
        self.assertEqual(dup["meta"]["contactId"], c["id"])
        up = self.ok("POST", "/contacts/upsert", {"locationId": LOC, "email": "ann.lee@example.com", "city": "Austin"})
        self.assertEqual((up["new"], up["contact"]["id"], up["contact"]["city"]), (False, c["id"], "Austin"))
        self.assertIn("traceId", up)
        up = self.ok("POST", "/contacts/upsert", {"locationId": LOC, "phone": "+15125550199", "lastName": "Li"})
        self.assertEqual((up["new"], up["contact"]["id"]), (False, c["id"]))
        up = self.ok("POST", "/contacts/upsert", {"locationId": LOC, "email": "new.person@example.com"})
        self.assertTrue(up["new"])
        dup = self.ok("GET", "/contacts/search/duplicate", query={"locationId": LOC, "email": "ANN.LEE@example.com"})
        self.assertEqual(dup["contact"]["id"], c["id"])
        dup = self.ok("GET", "/contacts/search/duplicate", query={"locationId": LOC, "number": "+19999999999"})
        self.assertIsNone(dup["contact"])

    def test_validation(self):
        st, _, out = self.api("POST", "/contacts/", {"firstName": "x"})
        self.assertEqual((st, out["error"]), (422, "Unprocessable Entity"))
        self.assertIsInstance(out["message"], list)
        self.assertEqual(self.api("POST", "/contacts/", {"locationId": LOC, "email": "nope"})[0], 422)
        self.assertEqual(self.api("POST", "/contacts/", {"locationId": LOC, "bogus": 1})[0], 422)
        self.assertEqual(self.api("PUT", "/contacts/%s" % self.ids[0], {"locationId": LOC})[0], 422)
        self.assertEqual(self.api("POST", "/contacts/%s/tasks" % self.ids[0], {"title": "x"})[0], 422)
        self.assertEqual(self.api("POST", "/contacts/%s/notes" % self.ids[0], {"title": "x"})[0], 422)
        self.assertEqual(self.api("PUT", "/contacts/%s/tasks/%s/completed" % (self.ids[0], "a" * 20), {})[0], 404)
        self.sbx.control("POST", "/_control/config", {"strict_bodies": False})
        self.assertEqual(self.api("POST", "/contacts/", {"locationId": LOC, "bogus": 1})[0], 201)

    def test_errors_and_routing(self):
        st, h, out = self.api("POST", "/contacts/", b'{"locationId": ', headers={"Content-Type": "application/json"})
        self.assertEqual((st, out["statusCode"]), (400, 400))
        self.assertIsInstance(out["message"], str)
        self.assertIn("x-ratelimit-remaining", h)
        st, _, out = self.api("GET", "/nowhere")
        self.assertEqual(out, {"statusCode": 404, "message": "Cannot GET /nowhere", "traceId": out["traceId"]})
        st, _, out = self.api("PATCH", "/contacts/%s" % self.ids[0], {})
        self.assertEqual((st, out["message"]), (404, "Cannot PATCH /contacts/%s" % self.ids[0]))
        self.assertEqual(self.api("GET", "/contacts", query={"locationId": LOC})[0], 404, "trailing slash is exact")
        st, _, out = self.api("GET", "/contacts/%s" % self.ids[0], version=None)
        self.assertEqual((st, out["statusCode"]), (400, 400))
        self.assertEqual(self.api("GET", "/contacts/%s" % self.ids[0], version="2021-04-15")[0], 400)
        st, _, out = self.api("GET", "/contacts/%s" % self.ids[0], token="wrong")
        self.assertEqual(out["message"], "Invalid token: access token is invalid")
        self.assertEqual(self.api("GET", "/contacts/%s" % self.ids[0], token=False)[0], 401)
        st, _, out = self.api("GET", "/contacts/%s" % self.ids[0], token=OTHER_TOKEN)
        self.assertEqual((st, out["message"]), (403, "The token does not have access to this location"))
        self.assertEqual(self.api("GET", "/contacts/", query={"locationId": LOC}, token=OTHER_TOKEN)[0], 403)
        # the server survives garbage on the wire
        s = socket.create_connection(("127.0.0.1", self.sbx.port))
        s.sendall(b"\x00\x01garbage\r\n\r\n")
        s.recv(100)
        s.close()
        self.assertEqual(self.api("GET", "/contacts/%s" % self.ids[0])[0], 200)

    def test_garbage_never_gives_5xx(self):
        self.sbx.control("POST", "/_control/config", {"rate_limit": 0})
        routes = self.sbx.control("GET", "/_control/routes")["routes"]
        cid = self.ids[0]
        task = self.state(contact=cid)["tasks"][cid][0]["id"]
        note = self.state(contact=cid)["notes"][cid][0]["id"]
        params = {"contactId": cid, "taskId": task, "id": note, "businessId": "0" * 24, "type": "add",
                  "campaignId": "c" * 20, "workflowId": "w" * 20}
        bodies = [b"null", b"[]", b'"str"', b"123", b"{}", b'{"tags": {}, "followers": 5, "title": [], "body": 1,'
                  b' "completed": "x", "dueDate": 5, "locationId": 7, "pageLimit": "a", "filters": {}, "sort": 3,'
                  b' "searchAfter": {}, "contacts": "x", "ids": 1, "email": [], "customFields": [1],'
                  b' "dateOfBirth": {}, "dnd": "no", "page": -1}',
                  b'{"locationId": "%s", "pageLimit": 5, "filters": [{"field": "tags", "operator": "range",'
                  b' "value": 1}], "sort": [{"field": "tags"}]}' % LOC.encode(),
                  b'{"locationId": "%s", "pageLimit": 5, "searchAfter": [null, 5]}' % LOC.encode(),
                  b"[" * 5000 + b"]" * 5000, b"\xff\xfe", b'{"a":' + b"9" * 5000 + b"}"]
        for r in routes:
            path = r["path"]
            for k, v in params.items():
                path = path.replace("{%s}" % k, v)
            for body in bodies:
                for ctype in ("application/json", "application/x-www-form-urlencoded", "text/plain"):
                    st, _, out = self.api(r["method"], path, body, headers={"Content-Type": ctype},
                                          query={"locationId": LOC, "limit": "abc", "startAfter": "x"})
                    self.assertLess(st, 500, "%s %s %r %s -> %s %s" % (r["method"], path, body[:40], ctype, st, out))
        self.assertEqual(self.api("GET", "/contacts/", query={"locationId": LOC})[0], 200)

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.sbx.port)
        headers = {"Authorization": "Bearer pit-demo-token", "Version": "2021-07-28"}
        conn.request("GET", "/contacts/%s" % self.ids[0], headers=headers)
        r = conn.getresponse()
        r.read()
        sock = conn.sock
        for _ in range(5):
            conn.request("GET", "/contacts/%s" % self.ids[0], headers=headers)
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.getheader("Connection"), "keep-alive")
            r.read()
        self.assertIs(conn.sock, sock, "the connection was reused")
        conn.close()

    def test_bulk_and_enrolments(self):
        a, b = self.ids[0], self.ids[1]
        out = self.ok("POST", "/contacts/bulk/tags/update/add", {"locationId": LOC, "tags": ["Bulk"],
                                                                 "contacts": [a, b, "abcdef", "z" * 20]}, status=201)
        self.assertEqual(out["errorCount"], 2)
        self.assertEqual([r["type"] for r in out["responses"]], ["success", "success", "error", "error"])
        self.assertIn("bulk", self.contact(a)["tags"])
        out = self.ok("POST", "/contacts/bulk/tags/update/remove", {"locationId": LOC, "tags": [], "contacts": [a],
                                                                    "removeAllTags": True}, status=201)
        self.assertEqual(self.contact(a)["tags"], [])
        self.assertEqual(self.api("POST", "/contacts/bulk/tags/update/add", {"locationId": LOC, "tags": [],
                                                                            "contacts": [a], "removeAllTags": True})[0],
                         422)
        biz = "0123456789abcdef01234567"
        out = self.ok("POST", "/contacts/bulk/business", {"locationId": LOC, "ids": [a, b], "businessId": biz})
        self.assertEqual(out, {"success": True, "ids": [a, b], "traceId": out["traceId"]})
        self.assertEqual(self.contact(b)["businessId"], biz)
        self.ok("POST", "/contacts/bulk/business", {"locationId": LOC, "ids": [b], "businessId": None})
        self.assertNotIn("businessId", self.contact(b))
        meta = self.state()["meta"]
        camp, wf = meta["campaigns"][0], meta["workflows"][0]
        self.ok("POST", "/contacts/%s/campaigns/%s" % (a, camp), status=201)
        self.ok("POST", "/contacts/%s/workflow/%s" % (a, wf), {"eventStartTime": "2026-06-23T03:30:00+01:00"})
        st = self.state(contact=a)
        self.assertEqual([c["campaignId"] for c in st["campaigns"][a]], [camp])
        self.assertEqual(st["workflows"][a][0]["eventStartTime"], "2026-06-23T03:30:00+01:00")
        self.ok("DELETE", "/contacts/%s/campaigns/removeAll" % a)
        self.ok("DELETE", "/contacts/%s/workflow/%s" % (a, wf))
        st = self.state(contact=a)
        self.assertEqual((st["campaigns"], st["workflows"]), ({}, {}))
        kinds = [(c["kind"], c["op"]) for c in self.changes() if c["kind"] in ("campaign", "workflow")]
        self.assertEqual(kinds, [("campaign", "created"), ("workflow", "created"), ("campaign", "deleted"),
                                 ("workflow", "deleted")])

    def test_request_log(self):
        since = self.sbx.control("GET", "/_control/requests", query={"since": 10 ** 12})["last_seq"]
        self.api("PUT", "/contacts/%s" % self.ids[0], {"city": "Boston"}, headers={"Idempotency-Key": "k-1"})
        self.api("GET", "/contacts/%s" % self.ids[0], token="bad")
        reqs = self.sbx.control("GET", "/_control/requests", query={"since": since})["requests"]
        self.assertEqual(len(reqs), 2)
        r = reqs[0]
        self.assertEqual((r["method"], r["path"], r["status"], r["location"], r["operation"]),
                         ("PUT", "/contacts/%s" % self.ids[0], 200, LOC, "update-contact"))
        self.assertEqual(r["headers"]["Idempotency-Key"], "k-1")
        self.assertEqual(r["headers"]["Version"], "2021-07-28")
        self.assertIs(r["headers"]["Authorization"], True)
        self.assertEqual(r["body"], {"city": "Boston"})
        self.assertIsInstance(r["time"], float)
        self.assertEqual((reqs[1]["status"], reqs[1]["location"]), (401, None))

    def test_search_lag(self):
        self.sbx.control("POST", "/_control/config", {"search_lag_ms": 600})
        c = self.ok("POST", "/contacts/", {"locationId": LOC, "firstName": "Laggy"}, status=201)["contact"]
        body = {"locationId": LOC, "pageLimit": 100, "query": "laggy"}
        self.assertEqual(self.ok("POST", "/contacts/search", body)["total"], 0)
        self.assertEqual(self.contact(c["id"])["firstName"], "Laggy", "GET by id is consistent")
        time.sleep(0.7)
        self.assertEqual(self.ok("POST", "/contacts/search", body)["total"], 1)
        self.ok("DELETE", "/contacts/%s" % c["id"])
        self.assertEqual(self.ok("POST", "/contacts/search", body)["total"], 1, "still visible during the lag")
        time.sleep(0.7)
        self.assertEqual(self.ok("POST", "/contacts/search", body)["total"], 0)

    def test_appointments(self):
        st = self.sbx.control("POST", "/_control/seed", {"contacts": 40, "seed": 3, "log": False})
        found = 0
        for cid in st["contact_ids"]:
            events = self.ok("GET", "/contacts/%s/appointments" % cid)["events"]
            for e in events:
                found += 1
                self.assertEqual(e["contactId"], cid)
                self.assertRegex(e["startTime"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        self.assertGreater(found, 0)


class RateLimits(SandboxCase):
    seed_contacts = 3

    def test_100_per_10s_then_429(self):
        statuses, last_headers = [], None
        for i in range(101):
            st, h, out = self.api("GET", "/contacts/%s" % self.ids[0])
            statuses.append(st)
            if i == 0:
                self.assertEqual((h["x-ratelimit-max"], h["x-ratelimit-remaining"]), ("100", "99"))
                self.assertEqual((h["x-ratelimit-limit-daily"], h["x-ratelimit-daily-remaining"]), ("200000", "199999"))
                self.assertEqual(h["x-ratelimit-interval-milliseconds"], "10000")
            last_headers, last_body = h, out
        self.assertEqual(statuses, [200] * 100 + [429])
        self.assertEqual(last_body["statusCode"], 429)
        self.assertEqual(last_body["message"], "Too Many Requests")
        self.assertEqual(last_headers["x-ratelimit-remaining"], "0")
        self.assertNotIn("retry-after", last_headers)
        # another location has its own budget
        self.assertEqual(self.api("GET", "/contacts/", query={"locationId": OTHER_LOC}, token=OTHER_TOKEN)[0], 200)
        mw = self.sbx.control("GET", "/_control/max_window", query={"location": LOC, "window_ms": 10000})
        self.assertEqual(mw["max"], 101)
        mw = self.sbx.control("GET", "/_control/max_window", query={"location": LOC, "exclude_429": "1"})
        self.assertEqual(mw["max"], 100)
        reqs = self.sbx.control("GET", "/_control/requests", query={"location": LOC})["requests"]
        self.assertEqual(sum(1 for r in reqs if r["status"] == 429), 1)

    def test_window_slides_and_can_be_disabled(self):
        self.sbx.control("POST", "/_control/config", {"rate_limit": 5, "rate_window_ms": 400})
        st = [self.api("GET", "/contacts/%s" % self.ids[0])[0] for _ in range(6)]
        self.assertEqual(st, [200] * 5 + [429])
        time.sleep(0.45)
        self.assertEqual(self.api("GET", "/contacts/%s" % self.ids[0])[0], 200)
        self.sbx.control("POST", "/_control/config", {"rate_limit": 0})
        st = [self.api("GET", "/contacts/%s" % self.ids[0])[0] for _ in range(20)]
        self.assertEqual(set(st), {200})

    def test_daily_limit(self):
        self.sbx.control("POST", "/_control/config", {"daily_limit": 3})
        st = [self.api("GET", "/contacts/%s" % self.ids[0]) for _ in range(4)]
        self.assertEqual([s[0] for s in st], [200, 200, 200, 429])
        self.assertEqual(st[2][1]["x-ratelimit-daily-remaining"], "0")


class Faults(SandboxCase):
    seed_contacts = 30

    def fault(self, **spec):
        return self.sbx.control("POST", "/_control/faults", {"faults": [spec]})["ids"][0]

    def get(self, timeout=30):
        return self.sbx.raw("GET", "/contacts/%s" % self.ids[0], headers={
            "Authorization": "Bearer pit-demo-token", "Version": "2021-07-28"}, timeout=timeout)

    def tearDown(self):
        self.sbx.control("DELETE", "/_control/faults")
        self.assertEqual(self.get()[0], 200, "the server keeps serving after the fault")

    def test_status_count_and_after(self):
        self.fault(kind="status", status=503, count=2, after=1, path="^/contacts/")
        st = [self.get()[0] for _ in range(4)]
        self.assertEqual(st, [200, 503, 503, 200])
        self.fault(kind="status", status=500, method="POST")
        self.assertEqual(self.get()[0], 200, "method does not match")
        reqs = self.sbx.control("GET", "/_control/requests")["requests"]
        self.assertEqual([r.get("fault") for r in reqs[-5:-1]], [None, "status", "status", None])

    def test_status_bodies(self):
        for status in (400, 422, 500, 502):
            self.fault(kind="status", status=status)
            st, h, raw = self.get()
            body = json.loads(raw)
            self.assertEqual((st, body["statusCode"]), (status, status))
            self.assertIsInstance(body["message"], list if status == 422 else str)
            self.assertIn("x-ratelimit-max", h)

    def test_rate_limit_fault_with_retry_after(self):
        self.fault(kind="rate_limit", retry_after=7)
        st, h, raw = self.get()
        self.assertEqual((st, h["retry-after"], h["x-ratelimit-remaining"]), (429, "7", "0"))
        self.assertEqual(json.loads(raw)["message"], "Too Many Requests")

    def test_window(self):
        self.fault(kind="status", status=502, window_s=0.5)
        self.assertEqual([self.get()[0] for _ in range(3)], [502] * 3)
        time.sleep(0.6)
        self.assertEqual(self.get()[0], 200)

    def test_delay(self):
        self.fault(kind="delay", ms=400)
        t = time.monotonic()
        self.assertEqual(self.get()[0], 200)
        self.assertGreaterEqual(time.monotonic() - t, 0.39)

    def test_reset(self):
        self.fault(kind="reset")
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected, ConnectionAbortedError)):
            self.get()

    def test_reset_after_processing(self):
        self.fault(kind="reset", process=True, method="PUT")
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected)):
            self.api("PUT", "/contacts/%s" % self.ids[0], {"city": "Miami"})
        self.assertEqual(self.contact(self.ids[0])["city"], "Miami", "the write happened")

    def test_truncate(self):
        self.fault(kind="truncate")
        with self.assertRaises(http.client.IncompleteRead):
            self.get()

    def test_invalid_json(self):
        self.fault(kind="invalid_json")
        st, _, raw = self.get()
        self.assertEqual(st, 200)
        with self.assertRaises(ValueError):
            json.loads(raw)

    def test_empty_list(self):
        self.fault(kind="empty_list", path="^/contacts/$")
        self.assertEqual(self.get()[0], 200, "not a list route: not consumed")
        st, _, out = self.api("GET", "/contacts/", query={"locationId": LOC})
        self.assertEqual((out["contacts"], out["count"], out["meta"]["total"]), ([], 0, 0))
        self.fault(kind="empty_list")
        st, _, out = self.api("POST", "/contacts/search", {"locationId": LOC, "pageLimit": 10})
        self.assertEqual((out["contacts"], out["total"]), ([], 0))

    def test_drop_page(self):
        self.fault(kind="drop_page", after=1)   # "fail page 3": skip one non-first page, drop the next
        q = {"locationId": LOC, "limit": 5}
        out = self.ok("GET", "/contacts/", query=q)
        q = dict(q, startAfter=out["meta"]["startAfter"], startAfterId=out["meta"]["startAfterId"])
        out = self.ok("GET", "/contacts/", query=q)
        q = dict(q, startAfter=out["meta"]["startAfter"], startAfterId=out["meta"]["startAfterId"])
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected)):
            self.api("GET", "/contacts/", query=q)
        self.assertEqual(self.api("GET", "/contacts/", query=q)[0], 200, "count defaults to 1")
        self.fault(kind="drop_page", status=500)
        self.assertEqual(self.api("POST", "/contacts/search", {"locationId": LOC, "pageLimit": 5})[0], 200)
        self.assertEqual(self.api("POST", "/contacts/search", {"locationId": LOC, "pageLimit": 5, "page": 2})[0], 500)

    def test_redirect(self):
        self.fault(kind="redirect", location="file:///etc/passwd")
        st, h, _ = self.get()
        self.assertEqual((st, h["location"]), (302, "file:///etc/passwd"))

    def test_huge(self):
        self.fault(kind="huge", size=3 * 1024 * 1024)
        st, h, raw = self.get(timeout=60)
        self.assertEqual((st, h.get("transfer-encoding")), (200, "chunked"))
        self.assertGreater(len(raw), 3 * 1024 * 1024 - 300)
        self.assertLessEqual(len(raw), 3 * 1024 * 1024)
        json.loads(raw)

    def test_huge_client_disconnects(self):
        self.fault(kind="huge")   # 100 MiB
        s = socket.create_connection(("127.0.0.1", self.sbx.port))
        s.sendall(b"GET /contacts/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer pit-demo-token\r\n"
                  b"Version: 2021-07-28\r\n\r\n" % self.ids[0].encode())
        self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200"))
        s.close()

    def test_gzip_bomb(self):
        self.fault(kind="gzip_bomb", size=8 * 1024 * 1024)
        st, h, raw = self.get()
        self.assertEqual((st, h["content-encoding"]), (200, "gzip"))
        self.assertLess(len(raw), 64 * 1024)
        self.assertEqual(len(gzip.decompress(raw)), 8 * 1024 * 1024 + len('{"contacts":[],"pad":""}'))

    def test_deep_json(self):
        self.fault(kind="deep_json", depth=5000)
        st, _, raw = self.get()
        self.assertTrue(raw.startswith(b'{"contacts":[[[['))
        self.assertEqual(raw.count(b"["), 5000)

    def test_trickle(self):
        self.fault(kind="trickle", bytes_per_s=400)
        t = time.monotonic()
        st, _, raw = self.get()
        self.assertEqual(st, 200)
        self.assertGreater(time.monotonic() - t, len(raw) / 400.0 * 0.8)
        json.loads(raw)

    def test_location_filter(self):
        self.fault(kind="status", status=500, location=OTHER_LOC)
        self.assertEqual(self.get()[0], 200)
        self.assertEqual(self.api("GET", "/contacts/", query={"locationId": OTHER_LOC}, token=OTHER_TOKEN)[0], 500)

    def test_bad_fault_specs(self):
        for spec in ({"kind": "nope"}, {"kind": "status", "path": "("}):
            with self.assertRaises(ControlError):
                self.sbx.control("POST", "/_control/faults", {"faults": [spec]})


class OAuth(SandboxCase):
    seed_contacts = 3

    def setUp(self):
        super().setUp()
        self.sbx.control("POST", "/_control/oauth/clients", {"client_id": "app-1", "client_secret": "s3cret",
                                                             "scopes": ["contacts.readonly", "contacts.write",
                                                                        "oauth.write", "oauth.readonly"]})

    def token(self, **form):
        return self.api("POST", "/oauth/token", form=form, version=None, token=False)

    def code(self, **kw):
        body = {"client_id": "app-1", "user_type": "Location", "location_id": LOC}
        body.update(kw)
        return self.sbx.control("POST", "/_control/oauth/codes", body)["code"]

    def test_code_refresh_rotation(self):
        code = self.code()
        st, _, t1 = self.token(client_id="app-1", client_secret="s3cret", grant_type="authorization_code", code=code)
        self.assertEqual(st, 200, t1)
        self.assertEqual((t1["token_type"], t1["expires_in"], t1["userType"], t1["locationId"]),
                         ("Bearer", 86399, "Location", LOC))
        self.assertIn("refresh_token", t1)
        self.assertEqual(self.api("GET", "/contacts/%s" % self.ids[0], token=t1["access_token"])[0], 200)
        st, _, out = self.token(client_id="app-1", client_secret="s3cret", grant_type="authorization_code", code=code)
        self.assertEqual((st, out["error"]), (400, "invalid_grant"), "codes are single-use")
        st, _, t2 = self.token(client_id="app-1", client_secret="s3cret", grant_type="refresh_token",
                               refresh_token=t1["refresh_token"])
        self.assertEqual(st, 200)
        self.assertNotEqual(t2["refresh_token"], t1["refresh_token"])
        st, _, out = self.token(client_id="app-1", client_secret="s3cret", grant_type="refresh_token",
                                refresh_token=t1["refresh_token"])
        self.assertEqual((st, out["error"]), (400, "invalid_grant"), "a used refresh token is dead")
        self.assertIn("error_description", out)
        st, _, t3 = self.token(client_id="app-1", client_secret="s3cret", grant_type="refresh_token",
                               refresh_token=t2["refresh_token"])
        self.assertEqual(st, 200)
        stats = self.sbx.control("GET", "/_control/oauth/stats")
        self.assertEqual(stats["token_calls"], 5)
        self.assertEqual(stats["by_grant_type"], {"authorization_code": 2, "refresh_token": 3})
        self.assertEqual(stats["failures"], {"authorization_code": 1, "refresh_token": 1})
        reqs = self.sbx.control("GET", "/_control/requests", query={"operation": "get-access-token"})["requests"]
        self.assertEqual(len(reqs), 5)
        self.assertEqual(reqs[0]["headers"]["Content-Type"], "application/x-www-form-urlencoded")

    def test_errors(self):
        st, _, out = self.token(client_id="app-1", client_secret="wrong", grant_type="authorization_code",
                                code=self.code())
        self.assertEqual((st, out["error"]), (400, "invalid_client"))
        st, _, out = self.token(client_id="app-1", client_secret="s3cret", grant_type="client_credentials")
        self.assertEqual(out["error"], "unsupported_grant_type")
        st, _, out = self.token(client_id="app-1", client_secret="s3cret")
        self.assertEqual(out["error"], "invalid_request")
        st, _, out = self.api("POST", "/oauth/token", {"client_id": "app-1", "client_secret": "s3cret",
                                                       "grant_type": "authorization_code", "code": self.code()},
                              version=None, token=False)
        self.assertEqual((st, out["error"]), (400, "invalid_request"), "JSON bodies are refused")

    def test_expiry(self):
        self.sbx.control("POST", "/_control/oauth/config", {"access_token_lifetime_s": 1})
        st, _, t = self.token(client_id="app-1", client_secret="s3cret", grant_type="authorization_code",
                              code=self.code())
        self.assertEqual(t["expires_in"], 1)
        self.assertEqual(self.api("GET", "/contacts/%s" % self.ids[0], token=t["access_token"])[0], 200)
        time.sleep(1.05)
        st, _, out = self.api("GET", "/contacts/%s" % self.ids[0], token=t["access_token"])
        self.assertEqual((st, out["error"]), (401, "Unauthorized"))
        self.sbx.control("POST", "/_control/oauth/config", {"access_token_lifetime_s": 86399})
        st, _, t = self.token(client_id="app-1", client_secret="s3cret", grant_type="refresh_token",
                              refresh_token=t["refresh_token"])
        self.assertEqual(self.api("GET", "/contacts/%s" % self.ids[0], token=t["access_token"])[0], 200)
        self.assertGreaterEqual(self.sbx.control("POST", "/_control/oauth/expire_all")["expired"], 2)
        self.assertEqual(self.api("GET", "/contacts/%s" % self.ids[0], token=t["access_token"])[0], 401)
        self.assertEqual(self.api("GET", "/contacts/%s" % self.ids[0])[0], 200, "static tokens never expire")

    def test_scopes(self):
        code = self.code(scopes=["contacts.readonly"])
        _, _, t = self.token(client_id="app-1", client_secret="s3cret", grant_type="authorization_code", code=code)
        self.assertEqual(t["scope"], "contacts.readonly")
        self.assertEqual(self.api("GET", "/contacts/%s" % self.ids[0], token=t["access_token"])[0], 200)
        st, _, out = self.api("DELETE", "/contacts/%s" % self.ids[0], token=t["access_token"])
        self.assertEqual((st, out["message"]), (401, "The token is not authorized for this scope."))

    def test_agency_location_token(self):
        code = self.code(user_type="Company", location_id=None, company_id="agencyCompany0000001",
                         approved_locations=[LOC])
        st, _, t = self.token(client_id="app-1", client_secret="s3cret", grant_type="authorization_code", code=code)
        self.assertEqual((st, t["userType"], t["companyId"], t["approvedLocations"]),
                         (200, "Company", "agencyCompany0000001", [LOC]))
        agency = t["access_token"]
        self.assertEqual(self.api("GET", "/contacts/%s" % self.ids[0], token=agency)[0], 403)
        st, _, lt = self.api("POST", "/oauth/locationToken", form={"companyId": "agencyCompany0000001",
                                                                   "locationId": LOC}, token=agency)
        self.assertEqual(st, 200, lt)
        self.assertNotIn("refresh_token", lt)
        self.assertEqual(lt["locationId"], LOC)
        self.assertEqual(self.api("GET", "/contacts/%s" % self.ids[0], token=lt["access_token"])[0], 200)
        st, _, _ = self.api("POST", "/oauth/locationToken", form={"companyId": "agencyCompany0000001",
                                                                  "locationId": OTHER_LOC}, token=agency)
        self.assertEqual(st, 400, "not an approved location")
        self.assertEqual(self.api("POST", "/oauth/locationToken", form={"companyId": "x", "locationId": LOC},
                                  token=lt["access_token"])[0], 401, "needs an agency token")
        self.assertEqual(self.api("POST", "/oauth/locationToken", form={"companyId": "agencyCompany0000001",
                                                                        "locationId": LOC}, token=agency,
                                  version=None)[0], 400)
        st, _, out = self.api("GET", "/oauth/installedLocations", query={"companyId": "agencyCompany0000001",
                                                                         "appId": "x"}, token=agency)
        self.assertEqual((st, out["count"], out["locations"][0]["_id"]), (200, 1, LOC))
        # stats count the calls that reached the endpoint (the 401 and the missing Version did not)
        self.assertEqual(self.sbx.control("GET", "/_control/oauth/stats")["location_token_calls"], 2)


class ControlApi(SandboxCase):
    seed_contacts = 20

    def test_mutate_ops_are_logged_and_returned(self):
        cid = self.ids[0]
        out = self.sbx.control("POST", "/_control/mutate", {"ops": [
            {"op": "create", "kind": "contact", "fields": {"firstName": "Ctl", "tags": ["X"]}},
            {"op": "update", "kind": "contact", "id": cid, "fields": {"lastName": "Changed"}},
            {"op": "create", "kind": "task", "contactId": cid, "fields": {"title": "From control"}},
            {"op": "update", "kind": "task", "contactId": cid, "fields": {"completed": True}},
            {"op": "create", "kind": "note", "contactId": cid},
            {"op": "delete", "kind": "note", "contactId": cid},
            {"op": "delete", "kind": "contact", "id": self.ids[1]},
        ]})
        ch = out["changes"]
        self.assertEqual(ch, self.changes())
        self.assertEqual([(c["kind"], c["op"]) for c in ch], [
            ("contact", "created"), ("contact", "updated"), ("task", "created"), ("contact", "updated"),
            ("task", "updated"), ("contact", "updated"), ("note", "created"), ("contact", "updated"),
            ("note", "deleted"), ("contact", "updated"), ("contact", "deleted")])
        self.assertEqual(ch[0]["record"]["firstName"], "Ctl")
        self.assertEqual(ch[0]["record"]["tags"], ["x"])
        self.assertEqual(ch[1]["fields"], ["fullNameLowerCase", "lastName", "lastNameLowerCase", "name", "dateUpdated"])
        self.assertEqual(ch[3]["fields"], ["dateUpdated"])
        self.assertEqual(ch[4]["fields"], ["completed"])
        self.assertTrue(all(c["source"] == "control" for c in ch))
        seqs = [c["seq"] for c in ch]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        self.assertEqual(self.changes(since=seqs[-2]), [ch[-1]])
        with self.assertRaises(ControlError) as e:
            self.sbx.control("POST", "/_control/mutate", {"ops": [{"op": "update", "kind": "contact", "id": "nope"}]})
        self.assertEqual(e.exception.status, 400)

    def test_random_mutations_are_deterministic(self):
        runs = []
        for _ in range(2):
            self.setUp()
            out = self.sbx.control("POST", "/_control/mutate", {"random": 40, "seed": 5})
            runs.append([(c["kind"], c["op"], c["id"], c["fields"]) for c in out["changes"]])
            self.assertEqual(len(out["changes"]), len(self.changes()))
        self.assertEqual(runs[0], runs[1])
        kinds = {(k, op) for k, op, _, _ in runs[0]}
        self.assertIn(("contact", "updated"), kinds)
        only = self.sbx.control("POST", "/_control/mutate", {"random": 10, "kinds": ["note"]})["changes"]
        self.assertEqual({c["kind"] for c in only}, {"note", "contact"})
        self.assertEqual({c["fields"][0] for c in only if c["kind"] == "contact"}, {"dateUpdated"})

    def test_api_writes_are_logged(self):
        c = self.ok("POST", "/contacts/", {"locationId": LOC, "firstName": "Api"}, status=201)["contact"]
        ch = self.changes()
        self.assertEqual([(x["kind"], x["op"], x["id"], x["source"]) for x in ch],
                         [("contact", "created", c["id"], "api")])
        self.assertIn("firstName", ch[0]["fields"])

    def test_seed_and_state(self):
        out = self.sbx.control("POST", "/_control/seed", {"contacts": 5, "tasks_per_contact": 1,
                                                          "notes_per_contact": 3})
        self.assertEqual(len(out["contact_ids"]), 5)
        self.assertEqual(len(self.changes()), 5 * (1 + 1 + 3))
        st = self.state(contact=out["contact_ids"][0])
        self.assertEqual((len(st["contacts"]), len(st["tasks"][out["contact_ids"][0]]),
                          len(st["notes"][out["contact_ids"][0]])), (1, 1, 3))
        fresh = self.sbx.control("POST", "/_control/seed", {"contacts": 3, "now": True, "log": False})["contact_ids"]
        stamps = [self.contact(cid)["dateUpdated"] for cid in fresh]
        self.assertEqual(stamps, sorted(set(stamps)))
        self.assertGreater(stamps[0], "2025-12-31T00:00:00.000Z", "newer than any baseline seed")
        big = self.sbx.control("POST", "/_control/seed", {"contacts": 1500, "tasks_per_contact": 0,
                                                          "notes_per_contact": 0, "log": False})
        self.assertNotIn("contact_ids", big)
        self.assertEqual(big["count"], 1500)
        summary = self.sbx.control("GET", "/_control/state", query={"summary": "1"})
        self.assertEqual(summary["contacts"], 20 + 5 + 3 + 1500)

    def test_ids_sample_distinct_live_records(self):
        self.sbx.control("POST", "/_control/mutate", {"ops": [{"op": "delete", "kind": "contact", "id": self.ids[0]}]})
        ids = self.sbx.control("GET", "/_control/ids", query={"kind": "contact", "limit": "50", "seed": "a"})["ids"]
        self.assertEqual(sorted(ids), sorted(self.ids[1:]), "every live contact once, the deleted one never")
        again = self.sbx.control("GET", "/_control/ids", query={"kind": "contact", "limit": "5", "seed": "a"})["ids"]
        self.assertEqual(again, ids[:5], "deterministic for a seed")
        other = self.sbx.control("GET", "/_control/ids", query={"kind": "contact", "limit": "19", "seed": "b"})["ids"]
        self.assertNotEqual(other, ids)
        tasks = self.sbx.control("GET", "/_control/ids", query={"kind": "task", "limit": "7"})["ids"]
        self.assertEqual(len(tasks), 7)
        self.assertEqual(len({t["contactId"] for t in tasks}), 7, "one per contact")
        for t in tasks:
            self.assertIn(t["id"], {x["id"] for x in self.state(contact=t["contactId"])["tasks"][t["contactId"]]})
        notes = self.sbx.control("GET", "/_control/ids", query={"kind": "note", "limit": "3"})["ids"]
        self.assertEqual(len(notes), 3)
        with self.assertRaises(ControlError) as e:
            self.sbx.control("GET", "/_control/ids", query={"kind": "opportunity"})
        self.assertEqual(e.exception.status, 400)

    def test_routes_and_reset(self):
        routes = self.sbx.control("GET", "/_control/routes")["routes"]
        self.assertEqual(len({(r["method"], r["path"]) for r in routes}), len(routes))
        self.assertIn({"method": "DELETE", "path": "/contacts/{contactId}/campaigns/removeAll",
                       "operationId": "remove-contact-from-every-campaign", "version": "2021-07-28",
                       "auth": "location", "scope": "contacts.write"}, routes)
        self.sbx.control("POST", "/_control/reset")
        self.assertEqual(self.state()["contacts"], [])
        self.assertEqual(self.sbx.control("GET", "/_control/requests")["requests"], [])
        self.assertEqual(self.api("GET", "/contacts/", query={"locationId": LOC})[0], 200, "tokens survive")
        with self.assertRaises(ControlError) as e:
            self.sbx.control("GET", "/_control/nope")
        self.assertEqual(e.exception.status, 404)


# --- the other categories (opportunities, users, businesses, workflows, campaigns, snapshots) --------

def ms(iso_value):
    """'2026-01-02T03:04:05.678Z' -> epoch ms."""
    import calendar
    import datetime
    dt = datetime.datetime.strptime(iso_value, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(dt.timetuple()) * 1000 + dt.microsecond // 1000


class CategoryCase(SandboxCase):
    seed_contacts = 40
    opportunities = 0

    def setUp(self):
        super().setUp()
        if self.opportunities:
            self.sbx.control("POST", "/_control/seed", {"opportunities": self.opportunities, "seed": 4, "log": False})
        self.seq0 = self.last_change()
        self.records = self.state()["records"]
        self.company = self.state()["companyId"]

    def mutate(self, *ops):
        return self.sbx.control("POST", "/_control/mutate", {"ops": list(ops)})["changes"]

    def config(self, **kw):
        return self.sbx.control("POST", "/_control/config", kw)


class Opportunities(CategoryCase):
    opportunities = 57

    def search_all(self, limit, **extra):
        seen, query = [], dict({"location_id": LOC, "limit": limit}, **extra)
        while True:
            out = self.ok("GET", "/opportunities/search", query=query)
            seen += out["opportunities"]
            meta = out["meta"]
            if out["opportunities"]:
                last = out["opportunities"][-1]
                self.assertEqual((meta["startAfter"], meta["startAfterId"]), (ms(last["createdAt"]), last["id"]))
            if meta["nextPage"] is None:
                self.assertIsNone(meta["nextPageUrl"])
                return seen, meta
            self.assertIn("startAfterId=%s" % meta["startAfterId"], meta["nextPageUrl"])
            query = dict(query, startAfter=meta["startAfter"], startAfterId=meta["startAfterId"])

    def test_get_search_cursor_reaches_every_record_in_order(self):
        every = self.records["opportunities"]
        seen, meta = self.search_all(10, status="all")
        self.assertEqual([o["id"] for o in seen],
                         [o["id"] for o in sorted(every, key=lambda o: (ms(o["createdAt"]), o["id"]))])
        self.assertEqual(meta["total"], len(every))
        desc, _ = self.search_all(7, status="all", order="added_desc")
        self.assertEqual([o["id"] for o in desc], [o["id"] for o in reversed(seen)])

    def test_get_search_validation(self):
        for query, why in (({"locationId": LOC}, "locationId is not location_id"), ({}, "no location_id"),
                           ({"location_id": LOC, "limit": 0}, "limit 0"),
                           ({"location_id": LOC, "limit": 101}, "limit 101"),
                           ({"location_id": LOC, "status": "closed"}, "unknown status"),
                           ({"location_id": LOC, "order": "random"}, "unknown order")):
            st, _, out = self.api("GET", "/opportunities/search", query=query)
            self.assertEqual(st, 422, why)
            self.assertIsInstance(out["message"], list)
        st, _, out = self.api("GET", "/opportunities/search", query={"locationId": LOC})
        self.assertIn("location_id", " ".join(out["message"]))
        self.assertEqual(self.ok("GET", "/opportunities/search", query={"location_id": LOC, "limit": 100,
                                                                        "status": "all"})["meta"]["nextPage"], None)

    def test_default_status_hides_a_won_opportunity_and_status_all_does_not(self):
        opp = next(o for o in self.records["opportunities"] if o["status"] == "open")
        default_ids = {o["id"] for o in self.search_all(100)[0]}
        self.assertIn(opp["id"], default_ids)
        self.assertTrue(all(o["status"] == "open" for o in self.search_all(100)[0]), "default is open")
        change, = self.mutate({"kind": "opportunity", "op": "win", "id": opp["id"]})
        self.assertEqual((change["kind"], change["op"]), ("opportunity", "updated"))
        self.assertIn("lastStatusChangeAt", change["fields"])
        self.assertNotIn(opp["id"], {o["id"] for o in self.search_all(100)[0]},
                         "without status=all the won opportunity vanishes (looks deleted)")
        self.assertIn(opp["id"], {o["id"] for o in self.search_all(100, status="all")[0]})
        self.config(opportunities_default_status="all")
        self.assertIn(opp["id"], {o["id"] for o in self.search_all(100)[0]})

    def test_post_search_paging_filters_and_limits(self):
        body = {"locationId": LOC, "limit": 501}
        self.assertEqual(self.api("POST", "/opportunities/search", body)[0], 422)
        body = {"locationId": LOC, "limit": 5, "page": 2, "searchAfter": [1, "x"]}
        self.assertEqual(self.api("POST", "/opportunities/search", body)[0], 422, "page and searchAfter")
        self.assertEqual(self.api("POST", "/opportunities/search", {"locationId": LOC, "limit": 500, "page": 21})[0],
                         422, "beyond 10,000")
        every = self.records["opportunities"]
        cut = sorted(ms(o["updatedAt"]) for o in every)[len(every) // 3]
        flt = [{"field": "date_updated", "operator": "range", "value": {"gte": cut}},
               {"field": "status", "operator": "eq", "value": ["open", "won", "lost", "abandoned"]}]
        sort = [{"field": "date_updated", "direction": "asc"}]
        seen, after = [], None
        while True:
            b = {"locationId": LOC, "limit": 7, "filters": flt, "sort": sort}
            if after:
                b["searchAfter"] = after
            out = self.ok("POST", "/opportunities/search", b)
            if not out["opportunities"]:
                break
            seen += out["opportunities"]
            after = out["opportunities"][-1]["searchAfter"]
            self.assertEqual(after, [ms(out["opportunities"][-1]["updatedAt"]), out["opportunities"][-1]["id"]])
        want = sorted((ms(o["updatedAt"]), o["id"]) for o in every if ms(o["updatedAt"]) >= cut)
        self.assertEqual([(ms(o["updatedAt"]), o["id"]) for o in seen], want)
        self.assertEqual(out["total"], len(want))
        pipe = self.records["pipelines"][0]["id"]
        out = self.ok("POST", "/opportunities/search", {"locationId": LOC, "limit": 500, "filters": [
            {"field": "pipeline_id", "operator": "eq", "value": pipe}]})
        self.assertEqual(out["total"], sum(1 for o in every if o["pipelineId"] == pipe))

    def test_writes_codes_and_timestamps(self):
        pipe = self.records["pipelines"][0]
        stages = [s["id"] for s in pipe["stages"]]
        self.assertTrue(all(len(s) == 36 and s.count("-") == 4 for s in stages), "UUID stage ids")
        contact = self.ok("POST", "/contacts/", {"locationId": LOC, "firstName": "Opp"}, status=201)["contact"]["id"]
        body = {"pipelineId": pipe["id"], "locationId": LOC, "name": "Deal", "status": "open",
                "contactId": contact, "monetaryValue": 100}
        opp = self.ok("POST", "/opportunities/", body, status=201)["opportunity"]
        self.assertEqual(opp["pipelineStageId"], stages[0])
        st, _, out = self.api("POST", "/opportunities/", body)
        self.assertEqual(st, 400, "one open opportunity per contact and pipeline")
        path = "/opportunities/%s" % opp["id"]
        moved = self.ok("PUT", path, {"pipelineStageId": stages[2]})["opportunity"]
        self.assertGreater(ms(moved["updatedAt"]), ms(opp["updatedAt"]))
        self.assertGreater(ms(moved["lastStageChangeAt"]), ms(opp["lastStageChangeAt"]))
        self.assertEqual(moved["lastStageChangeAt"], moved["updatedAt"])
        self.assertEqual(moved["lastStatusChangeAt"], opp["lastStatusChangeAt"])
        seq = self.last_change()
        same = self.ok("PUT", path, {"pipelineStageId": stages[2], "monetaryValue": 100})["opportunity"]
        self.assertEqual(same["updatedAt"], moved["updatedAt"], "a no-op write leaves updatedAt")
        self.assertEqual(self.changes(seq), [])
        self.assertEqual(self.ok("PUT", path + "/status", {"status": "lost"}), {"succeded": True,
                                                                                 "traceId": unittest.mock.ANY})
        lost = self.ok("GET", path)["opportunity"]
        self.assertEqual(lost["status"], "lost")
        self.assertEqual(lost["lastStatusChangeAt"], lost["updatedAt"])
        self.assertGreater(ms(lost["updatedAt"]), ms(moved["updatedAt"]))
        users = self.state()["meta"]["users"]
        out = self.ok("POST", path + "/followers", {"followers": users[:2]}, status=201)
        self.assertEqual(out["followersAdded"], users[:2])
        out = self.ok("DELETE", path + "/followers", {"followers": users[:1]})
        self.assertEqual((out["followers"], out["followersRemoved"]), (users[1:2], users[:1]))
        up = self.ok("POST", "/opportunities/upsert", {"pipelineId": pipe["id"], "locationId": LOC,
                                                       "contactId": contact, "name": "Reopened"})
        self.assertTrue(up["new"], "the lost one is not open: a new opportunity")
        again = self.ok("POST", "/opportunities/upsert", {"pipelineId": pipe["id"], "locationId": LOC,
                                                          "contactId": contact, "monetaryValue": 9})
        self.assertEqual((again["new"], again["opportunity"]["id"]), (False, up["opportunity"]["id"]))
        self.assertEqual(self.ok("DELETE", path)["succeded"], True)
        self.assertEqual(self.api("GET", path)[0], 404)
        self.assertEqual(self.api("GET", "/opportunities/short")[0], 400)
        ops = [r["operation"] for r in self.sbx.control("GET", "/_control/requests")["requests"]]
        for op in ("create-opportunity", "update-opportunity", "update-opportunity-status", "Upsert-opportunity",
                   "add-followers-opportunity", "remove-followers-opportunity", "delete-opportunity"):
            self.assertIn(op, ops)
        kinds = {(c["kind"], c["op"]) for c in self.changes()}
        self.assertLessEqual({("opportunity", "created"), ("opportunity", "updated"), ("opportunity", "deleted")},
                             kinds)

    def test_control_ops(self):
        opp = self.records["opportunities"][0]
        pipe = next(p for p in self.records["pipelines"] if p["id"] == opp["pipelineId"])
        moved, = self.mutate({"kind": "opportunity", "op": "move", "id": opp["id"]})
        i = [s["id"] for s in pipe["stages"]].index(opp["pipelineStageId"])
        self.assertEqual(moved["record"]["pipelineStageId"], pipe["stages"][(i + 1) % len(pipe["stages"])]["id"])
        self.assertIn("lastStageChangeAt", moved["fields"])
        value, = self.mutate({"kind": "opportunity", "op": "value", "id": opp["id"], "fields": {"monetaryValue": 7}})
        self.assertEqual(value["record"]["monetaryValue"], 7)
        created, = self.mutate({"kind": "opportunity", "op": "create"})
        gone, = self.mutate({"kind": "opportunity", "op": "delete", "id": created["id"]})
        self.assertEqual(gone["op"], "deleted")
        lost, = self.mutate({"kind": "opportunity", "op": "lose", "id": opp["id"]})
        reasons = self.ok("GET", "/opportunities/lost-reason", query={"locationId": LOC})
        self.assertEqual(reasons["total"], len(reasons["lostReasons"]))
        self.assertIn(lost["record"]["lostReasonId"], [r["id"] for r in reasons["lostReasons"]])
        renamed, = self.mutate({"kind": "pipeline", "op": "rename", "id": pipe["id"], "fields": {"name": "P"}})
        self.assertEqual(renamed["fields"], ["name"])
        pipes = self.ok("GET", "/opportunities/pipelines", query={"locationId": LOC})["pipelines"]
        self.assertIn("P", [p["name"] for p in pipes])
        self.assertEqual(self.api("GET", "/opportunities/pipelines", query={"locationId": OTHER_LOC})[0], 403)

    def test_lost_reason_control_ops(self):
        path, q = "/opportunities/lost-reason", {"locationId": LOC}
        before = {r["id"]: r for r in self.ok("GET", path, query=q)["lostReasons"]}
        made, = self.mutate({"kind": "lost_reason", "op": "create", "fields": {"name": "Ghosted"}})
        self.assertEqual((made["kind"], made["op"], made["record"]["name"]), ("lost_reason", "created", "Ghosted"))
        rid = sorted(before)[0]
        renamed, = self.mutate({"kind": "lost_reason", "op": "rename", "id": rid, "fields": {"name": "Price"}})
        self.assertEqual(renamed["fields"], ["name", "updatedAt"])
        self.assertGreater(renamed["record"]["updatedAt"], before[rid]["updatedAt"])
        gone, = self.mutate({"kind": "lost_reason", "op": "delete", "id": sorted(before)[1]})
        self.assertEqual(gone["op"], "deleted")
        after = self.ok("GET", path, query=q)
        self.assertEqual(after["total"], len(before))
        names = {r["id"]: r["name"] for r in after["lostReasons"]}
        self.assertEqual((names.get(made["id"]), names[rid], sorted(before)[1] in names), ("Ghosted", "Price", False))
        page = self.ok("GET", path, query=dict(q, skip=1, limit=2))
        self.assertEqual(page["lostReasons"], after["lostReasons"][1:3])


    def test_random_mutations_and_paging_faults(self):
        changes = self.sbx.control("POST", "/_control/mutate", {"random": 30, "seed": 5,
                                                                "kinds": ["opportunity"]})["changes"]
        self.assertTrue(changes)
        self.assertEqual({c["kind"] for c in changes}, {"opportunity"})
        self.assertTrue(any("pipelineStageId" in c["fields"] for c in changes), "stage moves")
        mixed = self.sbx.control("POST", "/_control/mutate", {"random": 40, "seed": 6,
                                                              "kinds": ["opportunity", "contact"]})["changes"]
        self.assertEqual({c["kind"] for c in mixed}, {"opportunity", "contact"})
        self.sbx.control("POST", "/_control/faults", {"faults": [{"kind": "drop_page", "status": 503,
                                                                  "path": "^/opportunities/search$"}]})
        q = {"location_id": LOC, "status": "all", "limit": 5}
        first = self.ok("GET", "/opportunities/search", query=q)
        st, _, _ = self.api("GET", "/opportunities/search", query=dict(
            q, startAfter=first["meta"]["startAfter"], startAfterId=first["meta"]["startAfterId"]))
        self.assertEqual(st, 503, "the second page is dropped")
        self.sbx.control("POST", "/_control/faults", {"faults": [{"kind": "repeat_page", "window_s": 30,
                                                                  "path": "^/opportunities/search$"}]})
        again = self.ok("GET", "/opportunities/search", query=dict(
            q, startAfter=first["meta"]["startAfter"], startAfterId=first["meta"]["startAfterId"]))
        self.assertEqual(again["opportunities"], first["opportunities"])


class Users(CategoryCase):
    def test_search_needs_company_and_pages_with_strings(self):
        self.assertEqual(self.api("GET", "/users/search", query={"locationId": LOC})[0], 422)
        self.assertEqual(self.api("GET", "/users/search", query={"companyId": "otherCompany00000001"})[0], 403)
        self.assertEqual(self.api("GET", "/users/search", query={"companyId": self.company, "skip": "x"})[0], 422)
        mine = set(self.state()["meta"]["users"])
        out = self.ok("GET", "/users/search", query={"companyId": self.company, "locationId": LOC})
        self.assertEqual({u["id"] for u in out["users"]}, mine)
        self.assertEqual(out["count"], len(mine))
        seen, skip = [], 0
        while True:
            page = self.ok("GET", "/users/search", query={"companyId": self.company, "skip": str(skip),
                                                          "limit": "3"})
            seen += page["users"]
            skip += 3
            if len(page["users"]) < 3:
                break
        self.assertEqual(len(seen), page["count"])
        self.assertEqual(len({u["id"] for u in seen}), page["count"])
        listed = self.ok("GET", "/users/", query={"locationId": LOC})["users"]
        self.assertEqual({u["id"] for u in listed}, mine)

    def test_company_id_is_discoverable(self):
        tokens = self.sbx.control("GET", "/_control/tokens")["tokens"]
        self.assertEqual(tokens["pit-demo-token"]["companyId"], self.company)
        self.sbx.control("POST", "/_control/oauth/clients", {"client_id": "u", "client_secret": "s",
                                                             "scopes": "users.readonly"})
        code = self.sbx.control("POST", "/_control/oauth/codes", {"client_id": "u", "location_id": LOC})["code"]
        tok = self.ok("POST", "/oauth/token", token=False, version=None, form={
            "client_id": "u", "client_secret": "s", "grant_type": "authorization_code", "code": code})
        self.assertEqual(tok["companyId"], self.company)
        self.ok("GET", "/users/search", query={"companyId": tok["companyId"]}, token=tok["access_token"])

    def test_create_update_and_asynchronous_delete(self):
        self.config(user_delete_delay_ms=400, user_deleted_visible_ms=400)
        body = {"companyId": self.company, "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
                "password": "Secret-123", "type": "account", "role": "user", "locationIds": [LOC]}
        st, _, user = self.api("POST", "/users/", body)
        self.assertEqual(st, 201)
        self.assertEqual((user["name"], user["roles"]["locationIds"]), ("Ada Lovelace", [LOC]))
        self.assertNotIn("traceId", user, "a bare record has no traceId")
        self.assertNotIn("password", json.dumps(user) + json.dumps(self.changes()))
        self.assertEqual(self.api("POST", "/users/", dict(body, firstName="B"))[0], 400, "email is unique")
        self.assertEqual(self.api("POST", "/users/", {"companyId": self.company})[0], 422)
        path = "/users/%s" % user["id"]
        self.assertEqual(self.api("PUT", path, {"email": "new@example.com"})[0], 422)
        self.assertEqual(self.ok("PUT", path, {"phone": "+15125550100"})["phone"], "+15125550100")
        out = self.ok("DELETE", path)
        self.assertTrue(out["succeded"])
        self.assertTrue(out["message"].startswith("Queued deleting user"))
        self.assertFalse(self.ok("GET", path)["deleted"], "still there right after the delete")
        search = {"companyId": self.company, "query": "ada@"}
        self.assertFalse(self.ok("GET", "/users/search", query=search)["users"][0]["deleted"])
        time.sleep(0.5)
        self.assertTrue(self.ok("GET", "/users/search", query=search)["users"][0]["deleted"])
        self.assertEqual(self.api("GET", path)[0], 404)
        time.sleep(0.4)
        self.assertEqual(self.ok("GET", "/users/search", query=search)["users"], [])
        ops = [(c["op"], c["fields"]) for c in self.changes() if c["kind"] == "user" and c["id"] == user["id"]]
        self.assertEqual(ops[0][0], "created")
        self.assertEqual(ops[-2:], [("updated", ["deleted"]), ("deleted", [])])

    def test_filter_by_email_is_agency_only(self):
        self.sbx.control("POST", "/_control/tokens", {"token": "pit-agency", "company_id": self.company})
        user = self.records["users"][0]
        body = {"companyId": self.company, "emails": "%s,nobody@example.com" % user["email"]}
        self.assertEqual(self.api("POST", "/users/search/filter-by-email", body)[0], 401, "location token")
        out = self.ok("POST", "/users/search/filter-by-email", body, token="pit-agency")
        self.assertEqual(out["users"], [{"id": user["id"], "email": user["email"]}])
        self.assertEqual(out["count"], 1)
        full = self.ok("POST", "/users/search/filter-by-email", dict(body, projection="all"), token="pit-agency")
        self.assertEqual(full["users"][0]["roles"], user["roles"])
        for bad in ({"skip": 0}, {"limit": 10}, {"emails": [user["email"]]}):
            self.assertEqual(self.api("POST", "/users/search/filter-by-email", dict(body, **bad),
                                      token="pit-agency")[0], 422, bad)
        self.ok("GET", "/users/search", query={"companyId": self.company}, token="pit-agency")


class Businesses(CategoryCase):
    def test_meta_businesses_are_records_and_list_pages(self):
        meta = self.state()["meta"]["businesses"]
        listed = self.ok("GET", "/businesses/", query={"locationId": LOC})
        self.assertEqual(set(listed), {"businesses", "traceId"}, "no total")
        self.assertEqual({b["id"] for b in listed["businesses"]}, set(meta))
        linked = next(c for c in self.state()["contacts"] if c.get("businessId"))
        self.assertEqual(self.ok("GET", "/businesses/%s" % linked["businessId"])["business"]["id"],
                         linked["businessId"])
        for i in range(4):
            self.ok("POST", "/businesses/", {"name": "B%d" % i, "locationId": LOC}, status=201)
        first = self.ok("GET", "/businesses/", query={"locationId": LOC, "limit": "5"})["businesses"]
        rest = self.ok("GET", "/businesses/", query={"locationId": LOC, "limit": "5", "skip": "5"})["businesses"]
        self.assertEqual((len(first), len(rest)), (5, 2))
        self.assertEqual(self.api("GET", "/businesses/", query={"locationId": LOC, "limit": "many"})[0], 422)
        self.assertEqual(self.api("GET", "/businesses/%s" % ("A" * 20))[0], 400, "ids are 24-hex")

    def test_writes(self):
        out = self.ok("POST", "/businesses/", {"name": "Acme", "locationId": LOC, "city": "Austin"}, status=201)
        self.assertTrue(out["success"])
        biz = out["buiseness"]
        self.assertRegex(biz["id"], "^[0-9a-f]{24}$")
        path = "/businesses/%s" % biz["id"]
        out = self.ok("PUT", path, {"city": "Denver"})
        self.assertEqual((out["success"], out["buiseness"]["city"]), (True, "Denver"))
        self.assertGreater(ms(out["buiseness"]["updatedAt"]), ms(biz["updatedAt"]))
        again = self.ok("PUT", path, {"city": "Denver"})["buiseness"]
        self.assertEqual(again["updatedAt"], out["buiseness"]["updatedAt"], "no-op")
        self.assertEqual(self.api("POST", "/businesses/", {"locationId": LOC})[0], 422)
        self.assertEqual(self.ok("DELETE", path)["success"], True)
        self.assertEqual(self.api("GET", path)[0], 404)
        self.assertEqual([(c["kind"], c["op"]) for c in self.changes()],
                         [("business", "created"), ("business", "updated"), ("business", "deleted")])


class WorkflowsCampaigns(CategoryCase):
    def test_lists_and_control_ops(self):
        meta = self.state()["meta"]
        flows = self.ok("GET", "/workflows/", query={"locationId": LOC})["workflows"]
        self.assertEqual({w["id"] for w in flows}, set(meta["workflows"]))
        wf = flows[0]
        change, = self.mutate({"kind": "workflow", "op": "publish", "id": wf["id"]})
        self.assertEqual(change["record"]["version"], wf["version"] + 1)
        self.assertGreater(ms(change["record"]["updatedAt"]), ms(wf["updatedAt"]))
        self.mutate({"kind": "workflow", "op": "rename", "id": wf["id"], "fields": {"name": "Renamed"}})
        now = next(w for w in self.ok("GET", "/workflows/", query={"locationId": LOC})["workflows"]
                   if w["id"] == wf["id"])
        self.assertEqual((now["name"], now["version"]), ("Renamed", wf["version"] + 2))
        camps = self.ok("GET", "/campaigns/", query={"locationId": LOC})["campaigns"]
        self.assertEqual({c["id"] for c in camps}, set(meta["campaigns"]))
        published = {c["id"] for c in camps if c["status"] == "published"}
        self.assertEqual({c["id"] for c in self.ok("GET", "/campaigns/", query={
            "locationId": LOC, "status": "published"})["campaigns"]}, published)
        draft = next(c for c in camps if c["status"] == "draft")
        self.mutate({"kind": "campaign", "op": "status", "id": draft["id"], "fields": {"status": "published"}})
        self.assertIn(draft["id"], {c["id"] for c in self.ok("GET", "/campaigns/", query={
            "locationId": LOC, "status": "published"})["campaigns"]})
        kinds = [(c["kind"], c["op"], "contactId" in c) for c in self.changes()]
        self.assertEqual(kinds, [("workflow", "updated", False)] * 2 + [("campaign", "updated", False)])

    def test_snapshots_need_an_agency_token(self):
        self.sbx.control("POST", "/_control/tokens", {"token": "pit-agency", "company_id": self.company})
        self.assertEqual(self.api("GET", "/snapshots/", query={"companyId": self.company})[0], 401)
        snaps = self.ok("GET", "/snapshots/", query={"companyId": self.company}, token="pit-agency")["snapshots"]
        self.assertEqual({s["type"] for s in snaps}, {"own", "imported"})
        self.assertEqual(self.api("GET", "/snapshots/", query={"companyId": "x" * 20}, token="pit-agency")[0], 403)

    def test_snapshot_push_status_over_time(self):
        self.sbx.control("POST", "/_control/tokens", {"token": "pit-agency", "company_id": self.company})
        snap = self.records["snapshots"][0]["id"]
        one = "/snapshots/snapshot-status/%s/location/%s" % (snap, LOC)
        q = {"companyId": self.company}
        self.assertEqual(self.api("GET", one, query=q, token="pit-agency")[0], 400, "never pushed")
        self.assertEqual(self.api("GET", one, query=q)[0], 401, "a location token")
        push, = self.mutate({"kind": "snapshot_push", "op": "push", "fields": {"snapshotId": snap,
                                                                                "duration_ms": 700}})
        self.assertEqual((push["kind"], push["op"]), ("snapshot_push", "created"))
        first = self.ok("GET", one, query=q, token="pit-agency")["data"]
        self.assertEqual((first["id"], first["locationId"], first["status"]), (push["id"], LOC, "processing"))
        self.assertEqual(len(first["completed"]) + len(first["pending"]), 7)
        self.assertTrue(first["pending"])
        time.sleep(0.8)
        done = self.ok("GET", one, query=q, token="pit-agency")["data"]
        self.assertEqual((done["id"], done["status"], done["pending"]), (push["id"], "completed", []))
        again, = self.mutate({"kind": "snapshot_push", "op": "push", "fields": {"snapshotId": snap}})
        self.assertEqual(self.ok("GET", one, query=q, token="pit-agency")["data"]["id"], again["id"], "the latest")
        window = dict(q, **{"from": "01-01-2000 12:00 AM", "to": "12-31-2099 11:59 PM", "lastDoc": "", "limit": "1"})
        many = "/snapshots/snapshot-status/" + snap
        page = self.ok("GET", many, query=window, token="pit-agency")["data"]
        self.assertEqual([(r["id"], r["status"]) for r in page], [(push["id"], "completed")])
        page = self.ok("GET", many, query=dict(window, lastDoc=push["id"]), token="pit-agency")["data"]
        self.assertEqual([(r["id"], r["status"]) for r in page], [(again["id"], "processing")])
        self.assertEqual(self.ok("GET", many, query=dict(window, to="01-01-2001 12:00 AM"),
                                 token="pit-agency")["data"], [])
        st, _, _ = self.api("GET", many, query={k: v for k, v in window.items() if k != "from"}, token="pit-agency")
        self.assertEqual(st, 422)
        self.assertEqual(self.api("GET", many, query=dict(window, companyId="x" * 20), token="pit-agency")[0], 403)

    def test_snapshot_share_link(self):
        self.sbx.control("POST", "/_control/tokens", {"token": "pit-agency", "company_id": self.company})
        snap = self.records["snapshots"][1]["id"]
        path, q = "/snapshots/share/link", {"companyId": self.company}
        st, _, out = self.api("POST", path, {"snapshot_id": snap, "share_type": "agency_link",
                                             "relationship_number": "0-128-926"}, query=q, token="pit-agency")
        self.assertEqual(st, 201, out)
        self.assertEqual(out["shareLink"], "https://affiliates.gohighlevel.com/?share=" + out["id"])
        self.assertEqual(self.api("POST", path, {"snapshot_id": snap, "share_type": "agency_link"}, query=q,
                                  token="pit-agency")[0], 400)
        self.assertEqual(self.api("POST", path, {"snapshot_id": "nope", "share_type": "link"}, query=q,
                                  token="pit-agency")[0], 400)
        self.assertEqual(self.api("POST", path, {"share_type": "link"}, query=q, token="pit-agency")[0], 422)
        self.assertEqual(self.api("POST", path, {"snapshot_id": snap, "share_type": "link"}, query=q)[0], 401)

    def test_every_new_route_checks_version_and_token(self):
        routes = [r for r in self.sbx.control("GET", "/_control/routes")["routes"]
                  if r["path"].split("/")[1] in ("opportunities", "users", "businesses", "workflows", "campaigns",
                                                 "snapshots")]
        self.assertEqual(len(routes), 30)
        for r in routes:
            path = r["path"].replace("{id}", "A" * 20).replace("{userId}", "A" * 20).replace(
                "{businessId}", "a" * 24)
            self.assertEqual(r["version"], "2021-07-28")
            st, _, out = self.api(r["method"], path, {}, version="2021-04-15")
            self.assertEqual(st, 400, (r, out))
            self.assertIn("Version", out["message"])
            self.assertEqual(self.api(r["method"], path, {}, token=False)[0], 401, r)

    def test_empty_list_fault_on_new_list_routes(self):
        self.sbx.control("POST", "/_control/faults", {"faults": [{"kind": "empty_list", "path": "^/opportunities/",
                                                                  "count": 2}]})
        out = self.ok("GET", "/opportunities/search", query={"location_id": LOC})
        self.assertEqual((out["opportunities"], out["meta"]["total"]), ([], 0))
        self.assertEqual(self.ok("GET", "/opportunities/pipelines", query={"locationId": LOC})["pipelines"], [])


class Associations(CategoryCase):
    """apps/associations.json (catalog-map §2.7 XA3-XA7, §4.7)."""
    PAGE = {"locationId": LOC, "skip": "0", "limit": "50"}
    BODY = {"locationId": LOC, "key": "mentor_mentee", "firstObjectLabel": "mentor", "firstObjectKey": "contact",
            "secondObjectLabel": "mentee", "secondObjectKey": "contact"}

    def listed(self):
        return self.ok("GET", "/associations/", query=self.PAGE)["associations"]

    def relations_of(self, rid):
        return self.ok("GET", "/associations/relations/%s" % rid, query=self.PAGE)["relations"]

    def test_associations_lifecycle(self):
        system, = self.listed()
        self.assertEqual((system["associationType"], system["key"]), ("SYSTEM_DEFINED", "contact_opportunity"))
        self.assertEqual(self.state()["records"]["associations"], [system], "the state dump has them")
        made = self.ok("POST", "/associations/", self.BODY, status=201)
        self.assertEqual((made["associationType"], made["key"], made["locationId"]),
                         ("USER_DEFINED", "mentor_mentee", LOC))
        self.assertNotIn("traceId", made, "a bare record")
        st, _, out = self.api("POST", "/associations/", self.BODY)
        self.assertEqual(st, 400)
        self.assertIn("already exists", out["message"], "the answer conflict_ok recognises")
        self.assertEqual(self.api("POST", "/associations/", dict(self.BODY, key="k2", firstObjectKey="planet"))[0],
                         400)
        self.assertEqual(self.api("POST", "/associations/", dict(self.BODY, key="k3", locationId=OTHER_LOC))[0],
                         403)
        path = "/associations/%s" % made["id"]
        out = self.ok("PUT", path, {"firstObjectLabel": "coach", "secondObjectLabel": "coachee"})
        self.assertEqual((out["firstObjectLabel"], out["secondObjectLabel"], out["key"]),
                         ("coach", "coachee", "mentor_mentee"))
        self.assertEqual(self.ok("GET", path), out)
        self.assertEqual(self.api("PUT", path, {"firstObjectLabel": "x"})[0], 422, "both labels are required")
        self.assertEqual(self.api("PUT", "/associations/%s" % system["id"],
                                  {"firstObjectLabel": "a", "secondObjectLabel": "b"})[0], 400)
        self.assertEqual(self.api("DELETE", "/associations/%s" % system["id"])[0], 400, "SYSTEM_DEFINED")
        out = self.ok("DELETE", path)
        self.assertEqual((out["deleted"], out["id"]), (True, made["id"]))
        self.assertEqual(self.api("DELETE", path)[0], 404, "gone")
        self.assertEqual([x["id"] for x in self.listed()], [system["id"]])
        self.assertEqual(self.api("GET", "/associations/", query={"locationId": LOC})[0], 422, "skip/limit required")
        self.assertEqual([(c["kind"], c["op"]) for c in self.changes()],
                         [("association", "created"), ("association", "updated"), ("association", "deleted")])

    def test_relations_and_the_cascade(self):
        a, b, c = sorted(self.live_ids())[:3]
        assoc = self.ok("POST", "/associations/", self.BODY, status=201)
        body = {"locationId": LOC, "associationId": assoc["id"], "firstRecordId": a, "secondRecordId": b}
        rel = self.ok("POST", "/associations/relations", body, status=201)
        self.assertEqual({k: rel[k] for k in body}, body)
        self.assertEqual(self.api("POST", "/associations/relations", body)[0], 400, "duplicate")
        self.assertEqual(self.api("POST", "/associations/relations", dict(body, secondRecordId="Z" * 20))[0], 400,
                         "not a contact")
        self.assertEqual(self.api("POST", "/associations/relations", dict(body, associationId="Z" * 20))[0], 400)
        other = self.ok("POST", "/associations/relations", dict(body, secondRecordId=c), status=201)
        self.assertEqual(self.relations_of(a), [rel, other])
        self.assertEqual(self.relations_of(b), [rel], "either side")
        self.assertEqual(self.ok("GET", "/associations/relations/%s" % a,
                                 query=dict(self.PAGE, limit="1", skip="1"))["relations"], [other])
        self.assertEqual(self.ok("GET", "/associations/relations/%s" % a,
                                 query=dict(self.PAGE, associationIds="Z" * 20))["relations"], [])
        dpath = "/associations/relations/%s" % rel["id"]
        self.assertEqual(self.api("DELETE", dpath)[0], 422, "locationId is a required query parameter")
        self.assertEqual(self.api("DELETE", dpath, query={"locationId": OTHER_LOC})[0], 403)
        self.assertEqual(self.ok("DELETE", dpath, query={"locationId": LOC})["id"], rel["id"])
        self.assertEqual(self.api("DELETE", dpath, query={"locationId": LOC})[0], 404)
        self.assertEqual(self.relations_of(a), [other])
        self.ok("DELETE", "/associations/%s" % assoc["id"])
        self.assertEqual(self.relations_of(a), [], "deleting the association deletes its relations")
        self.assertEqual(self.state()["records"]["relations"], [])
        self.assertEqual([(ch["kind"], ch["op"]) for ch in self.changes()][-3:],
                         [("relation", "deleted"), ("relation", "deleted"), ("association", "deleted")])

    def test_control_seed_and_ops(self):
        out = self.sbx.control("POST", "/_control/seed", {"associations": 2, "seed": 1})
        self.assertEqual(len(out["association_ids"]), 2)
        aid = out["association_ids"][0]
        a, b = sorted(self.live_ids())[:2]
        rel, = self.mutate({"kind": "relation", "op": "create",
                            "fields": {"associationId": aid, "firstRecordId": a, "secondRecordId": b}})
        self.assertEqual(self.relations_of(a)[0]["id"], rel["id"])
        self.mutate({"kind": "association", "op": "update", "id": aid, "fields": {"secondObjectLabel": "peer"}})
        self.assertEqual(self.ok("GET", "/associations/%s" % aid)["secondObjectLabel"], "peer")
        self.mutate({"kind": "association", "op": "delete", "id": aid})
        self.assertEqual(self.relations_of(a), [])

    def test_routes_check_version_token_and_scope(self):
        routes = [r for r in self.sbx.control("GET", "/_control/routes")["routes"]
                  if r["path"].startswith("/associations/")]
        self.assertEqual(len(routes), 8)
        for r in routes:
            path = re.sub(r"\{\w+\}", "A" * 20, r["path"])
            self.assertEqual(r["version"], "2021-07-28")
            st, _, out = self.api(r["method"], path, {}, query=self.PAGE, version="2021-04-15")
            self.assertEqual(st, 400, (r, out))
            self.assertIn("Version", out["message"])
            self.assertEqual(self.api(r["method"], path, {}, query=self.PAGE, token=False)[0], 401, r)
            self.assertTrue(r["scope"].startswith("associations"), r)


class TaskSearch(CategoryCase):
    """POST /locations/{locationId}/tasks/search: one location-wide task listing (ghl/tasks.py)."""

    def search(self, status=200, token=None, location=LOC, **body):
        kw = {"token": token} if token else {}
        return self.ok("POST", "/locations/%s/tasks/search" % location, body, status=status, **kw)

    def all_tasks(self):
        return [t for cid in self.ids for t in self.ok("GET", "/contacts/%s/tasks" % cid)["tasks"]]

    def test_pages_every_task_with_skip_limit_and_no_total(self):
        out = self.search()
        self.assertEqual(set(out), {"tasks", "traceId"}, "no total")
        self.assertEqual(len(out["tasks"]), 25, "the spec's default limit")
        pages, skip = [], 0
        while True:
            page = self.search(skip=skip, limit=30)["tasks"]
            pages += page
            skip += 30
            if len(page) < 30:
                break
        self.assertEqual(sorted(pages, key=lambda t: t["id"]), sorted(self.all_tasks(), key=lambda t: t["id"]),
                         "the same TaskSchema records as the per-contact lists, each once")
        self.assertEqual(len(self.search(limit=100)["tasks"]), 80)
        for bad in ({"limit": 101}, {"limit": 0}, {"skip": -1}, {"limit": "10"}, {"contactId": "x"},
                    {"completed": "yes"}, {"assignedTo": [1]}, {"query": 5}, {"sort": "x"}):
            self.assertEqual(self.api("POST", "/locations/%s/tasks/search" % LOC, bad)[0], 422, bad)
        self.assertEqual(self.api("POST", "/locations/%s/tasks/search" % OTHER_LOC, {})[0], 403)
        self.assertEqual(self.api("POST", "/locations/%s/tasks/search" % LOC, {}, token=False)[0], 401)

    def test_new_tasks_go_last_and_writes_show(self):
        first = self.search(limit=100)["tasks"]
        cid = self.ids[5]
        made = self.ok("POST", "/contacts/%s/tasks" % cid, {"title": "Call", "dueDate": "2026-01-02T10:00:00Z",
                                                            "completed": False}, status=201)["task"]
        after = self.search(limit=100)["tasks"]
        self.assertEqual(after[:-1], first, "creation order: paging stays stable while tasks are added")
        self.assertEqual(after[-1], made)
        self.ok("PUT", "/contacts/%s/tasks/%s/completed" % (cid, made["id"]), {"completed": True})
        self.assertTrue(self.search(limit=100)["tasks"][-1]["completed"], "a completed task is still listed")
        self.ok("DELETE", "/contacts/%s/tasks/%s" % (cid, made["id"]))
        self.assertEqual(self.search(limit=100)["tasks"], first)
        self.ok("DELETE", "/contacts/%s" % cid)
        self.assertEqual(len(self.search(limit=100)["tasks"]), 78, "a deleted contact's tasks are not listed")

    def test_filters(self):
        tasks = self.all_tasks()
        some = [self.ids[0], self.ids[3]]
        got = self.search(limit=100, contactId=some)["tasks"]
        self.assertEqual(got, [t for t in tasks if t["contactId"] in some])
        done = [t for t in tasks if t["completed"]]
        self.assertTrue(done and len(done) < len(tasks), "the seed has both")
        self.assertEqual(self.search(limit=100, completed=True)["tasks"], [t for t in self.search(limit=100)["tasks"]
                                                                           if t["completed"]])
        self.assertEqual(len(self.search(limit=100, completed=False)["tasks"]), len(tasks) - len(done))
        user = next(t["assignedTo"] for t in tasks if t.get("assignedTo"))
        self.assertEqual({t["id"] for t in self.search(limit=100, assignedTo=[user])["tasks"]},
                         {t["id"] for t in tasks if t.get("assignedTo") == user})
        word = tasks[0]["title"].split()[0].upper()
        self.assertEqual({t["id"] for t in self.search(limit=100, query=word)["tasks"]},
                         {t["id"] for t in tasks if word.lower() in (t["title"] + "\n" + t.get("body", "")).lower()})
        linked = next(c for c in self.state()["contacts"] if c.get("businessId"))
        of_business = {c["id"] for c in self.state()["contacts"] if c.get("businessId") == linked["businessId"]}
        self.assertEqual({t["contactId"] for t in self.search(limit=100, businessId=linked["businessId"])["tasks"]},
                         of_business)


class Process(unittest.TestCase):
    def test_determinism_across_processes(self):
        dumps = []
        for _ in range(2):
            with Sandbox.start(seed=42, seed_contacts=30) as sbx:
                st = sbx.control("GET", "/_control/state")
                dumps.append(json.dumps(st, sort_keys=True))
        self.assertEqual(dumps[0], dumps[1])
        with Sandbox.start(seed=43, seed_contacts=30) as sbx:
            self.assertNotEqual(json.dumps(sbx.control("GET", "/_control/state"), sort_keys=True), dumps[0])

    def test_cli(self):
        r = subprocess.run([sys.executable, SANDBOX, "--host", "0.0.0.0"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"only listens on 127.0.0.1", r.stderr)
        sbx = Sandbox.start()
        self.assertEqual(sbx.stop(), 0, "SIGTERM exits cleanly")

    def test_listening_line_and_activity(self):
        tmp = tempfile.mkdtemp()
        try:
            pf = os.path.join(tmp, "port")
            p = subprocess.Popen([sys.executable, SANDBOX, "--port-file", pf, "--activity", "0.05",
                                  "--seed-contacts", "10", "--quiet"], stdout=subprocess.PIPE)
            line = p.stdout.readline().decode()
            p.stdout.close()
            with open(pf) as f:
                port = int(f.read())
            self.assertEqual(line.strip(), "sandbox listening on http://127.0.0.1:%d" % port)
            time.sleep(0.6)
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("GET", "/_control/changes?since=0")
            changes = json.loads(conn.getresponse().read())["changes"]
            conn.close()
            self.assertGreaterEqual(len(changes), 3)
            self.assertEqual({c["source"] for c in changes}, {"activity"})
            p.send_signal(2)
            self.assertEqual(p.wait(10), 0)
        finally:
            shutil.rmtree(tmp)

    def test_seed_100k(self):
        t = time.monotonic()
        with Sandbox.start(seed_contacts=100000, tasks_per_contact=0, notes_per_contact=0, rate_limit=0,
                           timeout=120) as sbx:
            started = time.monotonic() - t
            out = sbx.api("POST", "/contacts/search", {"locationId": sbx.location, "pageLimit": 500,
                                                       "sort": [{"field": "dateUpdated", "direction": "desc"}]})[2]
            self.assertEqual(out["total"], 100000)
            t2 = time.monotonic()
            after = out["contacts"][-1]["searchAfter"]
            for _ in range(5):
                out = sbx.api("POST", "/contacts/search", {"locationId": sbx.location, "pageLimit": 500,
                                                           "searchAfter": after,
                                                           "sort": [{"field": "dateUpdated", "direction": "desc"}]})[2]
                after = out["contacts"][-1]["searchAfter"]
            self.assertLess((time.monotonic() - t2) / 5, 1.0, "cached cursor pages are fast")
            page = sbx.api("GET", "/contacts/", query={"locationId": sbx.location, "limit": 100})[2]
            self.assertEqual(page["meta"]["total"], 100000)
        sys.stderr.write("[100k contacts: started in %.1fs] " % started)
        self.assertLess(started, 60)

    @unittest.skipUnless(shutil.which("openssl"), "openssl not installed")
    def test_tls(self):
        tmp = tempfile.mkdtemp()
        try:
            cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                            "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
            with Sandbox.start(tls_cert=cert, tls_key=key, seed_contacts=2) as sbx:
                self.assertTrue(sbx.url.startswith("https://"))
                st, _, out = sbx.api("GET", "/contacts/", query={"locationId": sbx.location})
                self.assertEqual((st, len(out["contacts"])), (200, 2))
                self.assertTrue(out["meta"]["nextPageUrl"] is None)
                s = socket.create_connection(("127.0.0.1", sbx.port))   # a client that never handshakes
                s.close()
                self.assertEqual(sbx.api("GET", "/contacts/", query={"locationId": sbx.location})[0], 200)
        finally:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main(verbosity=2)
