"""Rules and the 23 contacts actions, end to end against the sandbox API.

1. Every contacts action (the 18 of actions/contacts.ini and the 5 contact
   routes of actions/workflows.ini), fired by a rule from a real
   trigger event (a contact, task or note created or updated in the sandbox):
   the request the sandbox logged has the exact method and path (ids
   substituted), `Version: 2021-07-28`, an Authorization header, and exactly
   the JSON body expected, with JSON types compared strictly (a boolean is
   never 0/1 or "true", tags are arrays, the catalog's fixed locationId is
   bound); the sandbox's state changed as the action says; the outcome is one
   `action.succeeded` event with the documented status whose `source` is the
   id of the event that fired the rule. Destructive actions need
   `confirm = yes`: `pollen check` rejects the rule without it (exit 2,
   FILE:LINE).
2. `when` conditions and changed(field): a table of rules against a batch of
   created and updated events; exactly the matching events fire.
3. No feedback loops: a rule that writes the contact its own trigger watches
   runs once per external change (--once cycles and a running engine); the
   echo is recorded with "origin":"pollen" and fires nothing.
4. --dry-run prints the would-be requests and sends and records nothing; a
   following real run still performs them.
5. The demo configuration's rule (conf/demo.ini) creates the follow-up task.
"""
import configparser
import datetime
import json
import os
import re
import time
import urllib.request

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
VERSION = "2021-07-28"
LOC = harness.LOCATION_ID
# reconcile = 0s: full enumerations every cycle, so a deletion is seen by the next run.
CONTACTS = "[trigger c]\nuse = contacts.search\nevery = 1s\nreconcile = 0s\n"
# One contact at a time: a full round through the task search lists every task right
# after the queued read whose rule fired, while that action's update may still be in
# flight, and an update is noted as pollen's own only once its response arrives (README,
# "No feedback loops"): these tests check the echo after the response.
TASKS = ("[trigger tasks]\nuse = contacts.tasks\nfor_each = c\nevery = 1s\nreconcile = 1s\n"
         "full_round = each\n")
NOTES = "[trigger notes]\nuse = contacts.notes\nfor_each = c\nevery = 1s\nreconcile = 1s\n"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
DETECTION = ("created", "updated", "deleted")


def same_json(a, b):
    """Equality of parsed JSON with strict types (True is not 1, 1 is not "1")."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return a == b


def is_poll(req):
    """A request of the triggers (reads), as opposed to one made by an action."""
    if req["method"] == "GET":
        return True
    body = req.get("body") or {}
    if req["operation"] == "task-search":
        return True  # contacts.tasks' batch read of changed contacts
    return (req["operation"] == "search-contacts-advanced"
            and ("page" in body or "searchAfter" in body))


def parse_iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class RulesTest(harness.PollenTest):
    """A sandbox with 3 contacts (1 task and 1 note each) and helpers."""

    sandbox_args = ("--rate-limit", "0")

    def setUp(self):
        super().setUp()
        self.ids = self.sandbox.seed(3, tasks=1, notes=1, seed=11)["contact_ids"]
        state = self.sandbox.state()
        self.meta = state["meta"]
        self.task_of = {cid: state["tasks"][cid][0]["id"] for cid in self.ids}
        self.note_of = {cid: state["notes"][cid][0]["id"] for cid in self.ids}

    # -- sandbox --------------------------------------------------------------

    def api(self, method, path, body=None):
        """A call to the sandbox's public API with the test token (test set-up)."""
        req = urllib.request.Request(
            self.sandbox.url + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": "Bearer " + harness.TOKEN, "Version": VERSION,
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def request_seq(self):
        return self.sandbox.control("GET", "/_control/requests?limit=1")["last_seq"]

    def writes(self, since=0):
        """The requests that did not come from polling, in arrival order."""
        return [r for r in self.sandbox.requests(since) if not is_poll(r)]

    def contact(self, cid):
        return self.sandbox.control("GET", "/_control/state?contact=" + cid)["contacts"][0]

    # -- engine ---------------------------------------------------------------

    def configure(self, rules, triggers=CONTACTS, name="pollen.ini", location=FAST):
        """Writes the configuration, checks it, and records the silent baseline."""
        mark = self.request_seq()
        cfg = self.write_config(triggers + "\n" + rules, location=location, name=name)
        proc = self.pollen("check", "-c", cfg, check=False)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [], "the baseline must be silent")
        self.assertEqual(self.writes(mark), [], "the baseline must not write")
        return cfg

    def fire(self, cfg, ops):
        """Applies the sandbox mutations, runs one cycle; returns (writes, events, seq mark)."""
        mark = self.request_seq()
        self.sandbox.mutate(ops)
        self.run_once(cfg)
        return self.writes(mark), self.events(cfg), mark

    # -- assertions -----------------------------------------------------------

    def assertJSON(self, actual, expected, what="body"):
        if not same_json(actual, expected):
            self.fail(f"{what} differs (types compared strictly):\n  sent     "
                      f"{json.dumps(actual, sort_keys=True)}\n  expected "
                      f"{json.dumps(expected, sort_keys=True)}")

    def assertRequest(self, req, method, path, body, status):
        self.assertEqual(req["method"], method, req)
        self.assertEqual(req["path"], path, req)
        self.assertEqual(req["query"], {}, req)
        self.assertEqual(req["headers"].get("Version"), VERSION, req)
        self.assertIs(req["headers"].get("Authorization"), True, req)
        if body is None:
            self.assertIsNone(req["body"], req)
        else:
            self.assertTrue(req["headers"].get("Content-Type", "").startswith("application/json"),
                            req)
            self.assertJSON(req["body"], body)
        self.assertEqual(req["status"], status, req)

    def assertSucceeded(self, events, rule, action, status, trigger, type_, record_id,
                        acted_on=None):
        """Exactly one action.succeeded for rule, from the detection event on record_id;
        with acted_on, the event's record_id (the record the action wrote)."""
        outcomes = [e for e in events if e["type"].startswith("action.") and e.get("rule") == rule]
        self.assertEqual([e["type"] for e in outcomes], ["action.succeeded"], outcomes)
        ev = outcomes[0]
        self.assertEqual(ev["action"], action)
        self.assertEqual(ev["status"], status)
        if acted_on is not None:
            self.assertEqual(ev.get("record_id"), acted_on, ev)
        self.assertIsInstance(ev["traceId"], str)
        self.assertTrue(ev["traceId"])
        by_id = {e["id"]: e for e in events}
        self.assertIn(ev["source"], by_id, "source must be the id of the firing event")
        src = by_id[ev["source"]]
        self.assertEqual((src["trigger"], src["type"], src["record_id"]),
                         (trigger, type_, record_id))
        self.assertNotIn("origin", src)
        self.assertLess(src["seq"], ev["seq"])
        self.assertEqual(len({e["id"] for e in events}), len(events), "event ids are unique")
        return ev

    def assertNeedsConfirm(self, rules, triggers=CONTACTS):
        """`check` rejects rules (which contain `confirm = yes`) without that line."""
        self.assertIn("confirm = yes\n", rules)
        cfg = self.write_config(triggers + "\n" + rules.replace("confirm = yes\n", ""),
                                location=FAST, name="noconfirm.ini")
        with open(cfg) as f:
            lines = f.read().splitlines()
        header = next(i for i, l in enumerate(lines, 1) if l.startswith("[rule "))
        do = next(i for i, l in enumerate(lines, 1) if i > header and l.startswith("do ="))
        proc = self.pollen("check", "-c", cfg, check=False)
        out = proc.stdout + proc.stderr
        self.assertEqual(proc.returncode, 2, out)
        self.assertRegex(out, re.escape(cfg) + f":({header}|{do}): .*confirm = yes")
        # The same rule with confirm = yes is accepted.
        ok = self.write_config(triggers + "\n" + rules, location=FAST, name="confirm.ini")
        proc = self.pollen("check", "-c", ok, check=False)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def assertQuiet(self, cfg, mark):
        """Another cycle performs no further action (the echo fires nothing)."""
        before = self.events(cfg)
        sent = self.writes(mark)
        self.run_once(cfg)
        self.run_once(cfg)
        self.assertEqual(self.writes(mark), sent, "a later cycle sent more")
        after = self.events(cfg)
        new = after[len(before):]
        self.assertEqual([e for e in new if e["type"].startswith("action.")], [], new)
        return new

    def echo(self, cfg, trigger, record_id):
        """The echo of pollen's own write: one event on record_id marked origin pollen."""
        events = self.events(cfg)
        own = [e for e in events if e.get("trigger") == trigger and e.get("record_id") == record_id
               and e.get("origin") == "pollen"]
        self.assertEqual(len(own), 1, [(e["type"], e.get("record_id"), e.get("origin"))
                                       for e in events])
        return own[0]


class ContactActionsTest(RulesTest):
    """One test per contacts action (actions/contacts.ini and the contact routes of
    actions/workflows.ini)."""

    def test_every_catalog_action_has_a_test(self):
        proc = self.pollen("catalog", "actions", "--catalog", harness.SOURCE_ROOT)
        names = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
        contacts = {n for n in names if n.startswith("contacts.")}
        self.assertEqual(len(contacts), 23, sorted(names))
        tested = {"contacts." + m[len("test_contacts_"):].replace("_", ".", 1)
                  for m in dir(self) if m.startswith("test_contacts_")}
        self.assertEqual(tested, contacts)

    # -- contacts ---------------------------------------------------------------

    def test_contacts_create(self):
        cfg = self.configure(
            "[rule copy]\non = c:updated\nwhen = changed(firstName)\ndo = contacts.create\n"
            "firstName = Copy of {{record.firstName}}\nlastName = {{record.lastName}}\n"
            "email = copy.{{record.id | lower}}@example.com\n"
            "tags = copied {{record.firstName | lower}}\ndnd = true\nsource = pollen\n")
        cid = self.ids[0]
        last = self.contact(cid)["lastName"]
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"firstName": "Zed"}}])
        self.assertEqual(len(writes), 1, writes)
        email = "copy.%s@example.com" % cid.lower()
        self.assertRequest(writes[0], "POST", "/contacts/", {
            "locationId": LOC, "firstName": "Copy of Zed", "lastName": last, "email": email,
            "tags": ["copied", "zed"], "dnd": True, "source": "pollen"}, 201)
        ev = self.assertSucceeded(events, "copy", "contacts.create", 201, "c", "updated", cid)
        made = [c for c in self.sandbox.state()["contacts"] if c.get("email") == email]
        self.assertEqual(len(made), 1)
        self.assertEqual(ev["record_id"], made[0]["id"], "the contact the action created")
        self.assertEqual((made[0]["firstName"], made[0]["tags"], made[0]["dnd"]),
                         ("Copy of Zed", ["copied", "zed"], True))
        # The new contact comes back as created, recognised as pollen's own.
        self.assertQuiet(cfg, mark)
        self.assertEqual(self.echo(cfg, "c", made[0]["id"])["type"], "created")
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_update(self):
        cf = self.meta["customFields"][0]["id"]
        cfg = self.configure(
            "[rule verify]\non = c:updated\nwhen = changed(email)\ndo = contacts.update\n"
            "contactId = {{record.id}}\nlastName = Verified\ncity = {{record.city | upper}}\n"
            "dnd = false\ntags = {{record.tags}}\nwebsite = https://example.com/{{record.id}}\n"
            'customFields = [{"id": "' + cf + '", "field_value": "gold"}]\n')
        cid = self.ids[1]
        city = self.contact(cid)["city"]
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid,
             "fields": {"email": "new.address@example.com", "tags": ["alpha", "beta"],
                        "dnd": True}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "PUT", "/contacts/" + cid, {
            "lastName": "Verified", "city": city.upper(), "dnd": False, "tags": ["alpha", "beta"],
            "website": "https://example.com/" + cid,
            "customFields": [{"id": cf, "field_value": "gold"}]}, 200)
        self.assertSucceeded(events, "verify", "contacts.update", 200, "c", "updated", cid,
                             acted_on=cid)
        rec = self.contact(cid)
        self.assertEqual((rec["lastName"], rec["city"], rec["dnd"], rec["website"]),
                         ("Verified", city.upper(), False, "https://example.com/" + cid))
        self.assertIn({"id": cf, "value": "gold"}, rec["customFields"])
        self.assertQuiet(cfg, mark)
        self.assertEqual(self.echo(cfg, "c", cid)["type"], "updated")
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_find(self):
        cfg = self.configure(
            "[rule lookup]\non = c:updated\nwhen = changed(email)\ndo = contacts.find\n"
            "query = {{changes.email.new}}\n"
            'filters = [{"field":"tags","operator":"contains","value":"vip"}]\n')
        cid = self.ids[2]
        changes_before = harness.change_log_seq(self.sandbox)
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"email": "find.me@example.com"}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "POST", "/contacts/search", {
            "locationId": LOC, "pageLimit": 10, "query": "find.me@example.com",
            "filters": [{"field": "tags", "operator": "contains", "value": "vip"}]}, 200)
        self.assertSucceeded(events, "lookup", "contacts.find", 200, "c", "updated", cid)
        # A find changes nothing: the only change is the external one.
        self.assertEqual(len(self.sandbox.changes(changes_before)), 1)
        self.assertQuiet(cfg, mark)

    def test_contacts_delete(self):
        rules = ("[rule purge]\non = c:updated\nwhen = record.tags contains \"spam\"\n"
                 "do = contacts.delete\nconfirm = yes\ncontactId = {{record.id}}\n")
        self.assertNeedsConfirm(rules)
        cfg = self.configure(rules)
        cid = self.ids[2]
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"tags": ["spam"]}},
            {"op": "update", "kind": "contact", "id": self.ids[0], "fields": {"tags": ["ham"]}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "DELETE", "/contacts/" + cid, None, 200)
        self.assertSucceeded(events, "purge", "contacts.delete", 200, "c", "updated", cid)
        self.assertIs(self.contact(cid)["deleted"], True)
        self.assertIs(self.contact(self.ids[0])["deleted"], False)
        self.assertQuiet(cfg, mark)
        self.assertEqual(self.echo(cfg, "c", cid)["type"], "deleted")

    def test_contacts_upsert(self):
        cfg = self.configure(
            "[rule mirror]\non = c:created\ndo = contacts.upsert\n"
            "email = mirror.{{record.email}}\nfirstName = {{record.firstName}}\n"
            "companyName = Mirror Inc\ntags = mirrored\ncreateNewIfDuplicateAllowed = false\n")
        writes, events, mark = self.fire(cfg, [
            {"op": "create", "kind": "contact",
             "fields": {"firstName": "Nina", "email": "nina@example.com"}}])
        nina = [e for e in events if e["type"] == "created"]
        self.assertEqual(len(nina), 1)
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "POST", "/contacts/upsert", {
            "locationId": LOC, "email": "mirror.nina@example.com", "firstName": "Nina",
            "companyName": "Mirror Inc", "tags": ["mirrored"],
            "createNewIfDuplicateAllowed": False}, 200)
        self.assertSucceeded(events, "mirror", "contacts.upsert", 200, "c", "created",
                             nina[0]["record_id"])
        made = [c for c in self.sandbox.state()["contacts"]
                if c.get("email") == "mirror.nina@example.com"]
        self.assertEqual(len(made), 1)
        self.assertEqual((made[0]["firstName"], made[0]["companyName"], made[0]["tags"]),
                         ("Nina", "Mirror Inc", ["mirrored"]))
        # The upserted contact is pollen's own: it does not fire the rule again.
        self.assertQuiet(cfg, mark)
        self.assertEqual(self.echo(cfg, "c", made[0]["id"])["type"], "created")
        self.assertEqual(len(self.writes(mark)), 1)

    # -- tags -----------------------------------------------------------------

    def test_contacts_tags_add(self):
        cfg = self.configure(
            "[rule flag]\non = c:updated\nwhen = changed(email)\ndo = contacts.tags.add\n"
            "contactId = {{record.id}}\ntags = email-changed needs-review\n")
        cid = self.ids[0]
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid,
             "fields": {"email": "tagged@example.com", "tags": ["keep"]}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "POST", "/contacts/%s/tags" % cid,
                           {"tags": ["email-changed", "needs-review"]}, 201)
        self.assertSucceeded(events, "flag", "contacts.tags.add", 201, "c", "updated", cid,
                             acted_on=cid)
        self.assertEqual(self.contact(cid)["tags"], ["keep", "email-changed", "needs-review"])
        self.assertQuiet(cfg, mark)
        self.assertEqual(self.echo(cfg, "c", cid)["type"], "updated")
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_tags_remove(self):
        rules = ("[rule unstale]\non = c:updated\nwhen = record.tags contains \"stale\"\n"
                 "do = contacts.tags.remove\nconfirm = yes\ncontactId = {{record.id}}\n"
                 "tags = stale obsolete\n")
        self.assertNeedsConfirm(rules)
        cfg = self.configure(rules)
        cid = self.ids[1]
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"tags": ["stale", "keep"]}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "DELETE", "/contacts/%s/tags" % cid,
                           {"tags": ["stale", "obsolete"]}, 200)
        self.assertSucceeded(events, "unstale", "contacts.tags.remove", 200, "c", "updated", cid)
        self.assertEqual(self.contact(cid)["tags"], ["keep"])
        self.assertQuiet(cfg, mark)
        self.assertEqual(self.echo(cfg, "c", cid)["type"], "updated")
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_tags_bulk(self):
        other = self.ids[1]
        rules = ("[rule bulk]\non = c:updated\nwhen = changed(firstName)\n"
                 "do = contacts.tags.bulk\nconfirm = yes\ntype = add\n"
                 "contacts = {{record.id}} " + other + "\ntags = bulk-a bulk-b\n"
                 "removeAllTags = false\n")
        self.assertNeedsConfirm(rules)
        cfg = self.configure(rules)
        cid = self.ids[0]
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": i, "fields": {"tags": ["x"]}}
                             for i in (cid, other)])
        self.run_once(cfg)
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"firstName": "Bulky"}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "POST", "/contacts/bulk/tags/update/add", {
            "locationId": LOC, "contacts": [cid, other], "tags": ["bulk-a", "bulk-b"],
            "removeAllTags": False}, 201)
        self.assertSucceeded(events, "bulk", "contacts.tags.bulk", 201, "c", "updated", cid)
        for i in (cid, other):
            self.assertEqual(self.contact(i)["tags"], ["x", "bulk-a", "bulk-b"])
        self.assertQuiet(cfg, mark)
        self.assertEqual(len(self.writes(mark)), 1)

    # -- tasks ----------------------------------------------------------------

    def test_contacts_tasks_create(self):
        cfg = self.configure(
            "[rule vip-followup]\non = c:created\nwhen = record.tags contains \"vip\"\n"
            "do = contacts.tasks.create\ncontactId = {{record.id}}\n"
            "title = Follow up with {{record.firstName | default \"them\"}}\n"
            "dueDate = {{now + 1d}}\ncompleted = false\n", triggers=CONTACTS + TASKS)
        t0 = time.time()
        writes, events, mark = self.fire(cfg, [
            {"op": "create", "kind": "contact", "fields": {"firstName": "Vera", "tags": ["vip"]}},
            {"op": "create", "kind": "contact", "fields": {"firstName": "Gus", "tags": ["gold"]}}])
        created = {e["record"]["firstName"]: e for e in events if e["type"] == "created"
                   and e["trigger"] == "c"}
        self.assertEqual(sorted(created), ["Gus", "Vera"])
        vera = created["Vera"]["record_id"]
        self.assertEqual(len(writes), 1, writes)
        body = writes[0]["body"]
        self.assertRegex(body.get("dueDate", ""), ISO_MS)
        self.assertAlmostEqual(parse_iso(body["dueDate"]), t0 + 86400, delta=600)
        self.assertRequest(writes[0], "POST", "/contacts/%s/tasks" % vera, {
            "title": "Follow up with Vera", "dueDate": body["dueDate"], "completed": False}, 201)
        ev = self.assertSucceeded(events, "vip-followup", "contacts.tasks.create", 201, "c",
                                  "created", vera)
        tasks = self.sandbox.state()["tasks"][vera]
        self.assertEqual(ev["record_id"], tasks[0]["id"], "the task the action created")
        self.assertEqual([(t["title"], t["completed"], t["dueDate"]) for t in tasks],
                         [("Follow up with Vera", False, body["dueDate"])])
        self.assertEqual(self.sandbox.state()["tasks"][created["Gus"]["record_id"]], [])
        self.assertQuiet(cfg, mark)
        self.assertEqual(self.echo(cfg, "tasks", tasks[0]["id"])["type"], "created")
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_tasks_update(self):
        cfg = self.configure(
            "[rule triage]\non = tasks:created\ndo = contacts.tasks.update\n"
            "contactId = {{record.contactId}}\ntaskId = {{record.id}}\n"
            "title = [triaged] {{record.title}}\nbody = was: {{record.body | default \"-\"}}\n"
            "completed = false\ndueDate = {{now + 2d}}\nassignedTo = " + self.meta["users"][0] + "\n",
            triggers=CONTACTS + TASKS)
        cid = self.ids[0]
        t0 = time.time()
        changes = self.sandbox.mutate([{"op": "create", "kind": "task", "contactId": cid,
                                        "fields": {"title": "Call back", "body": "asap",
                                                   "completed": True}}])
        tid = [c for c in changes if c["kind"] == "task"][0]["id"]
        mark = self.request_seq()
        self.run_once(cfg)
        events = self.events(cfg)
        writes = self.writes(mark)
        self.assertEqual(len(writes), 1, writes)
        body = writes[0]["body"]
        self.assertRegex(body.get("dueDate", ""), ISO_MS)
        self.assertAlmostEqual(parse_iso(body["dueDate"]), t0 + 2 * 86400, delta=600)
        self.assertRequest(writes[0], "PUT", "/contacts/%s/tasks/%s" % (cid, tid), {
            "title": "[triaged] Call back", "body": "was: asap", "completed": False,
            "dueDate": body["dueDate"], "assignedTo": self.meta["users"][0]}, 200)
        self.assertSucceeded(events, "triage", "contacts.tasks.update", 200, "tasks", "created", tid,
                             acted_on=tid)
        task = [t for t in self.sandbox.state()["tasks"][cid] if t["id"] == tid][0]
        self.assertEqual((task["title"], task["body"], task["completed"], task["assignedTo"]),
                         ("[triaged] Call back", "was: asap", False, self.meta["users"][0]))
        self.assertQuiet(cfg, mark)
        self.assertEqual(self.echo(cfg, "tasks", tid)["type"], "updated")
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_tasks_complete(self):
        cfg = self.configure(
            "[rule close]\non = tasks:updated\n"
            "when = changed(title) and record.completed == false\n"
            "do = contacts.tasks.complete\ncontactId = {{record.contactId}}\n"
            "taskId = {{record.id}}\ncompleted = true\n", triggers=CONTACTS + TASKS)
        cid = self.ids[1]
        tid = self.task_of[cid]
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "task", "contactId": cid, "id": tid,
             "fields": {"title": "Send the quote", "completed": False}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "PUT", "/contacts/%s/tasks/%s/completed" % (cid, tid),
                           {"completed": True}, 200)
        self.assertSucceeded(events, "close", "contacts.tasks.complete", 200, "tasks", "updated",
                             tid)
        task = self.sandbox.state()["tasks"][cid][0]
        self.assertEqual((task["id"], task["title"], task["completed"]),
                         (tid, "Send the quote", True))
        self.assertQuiet(cfg, mark)
        self.assertEqual(self.echo(cfg, "tasks", tid)["type"], "updated")
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_tasks_delete(self):
        rules = ("[rule drop-task]\non = tasks:updated\n"
                 "when = record.title contains \"obsolete\"\ndo = contacts.tasks.delete\n"
                 "confirm = yes\ncontactId = {{record.contactId}}\ntaskId = {{record.id}}\n")
        self.assertNeedsConfirm(rules, triggers=CONTACTS + TASKS)
        cfg = self.configure(rules, triggers=CONTACTS + TASKS)
        cid = self.ids[2]
        tid = self.task_of[cid]
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "task", "contactId": cid, "id": tid,
             "fields": {"title": "an obsolete reminder"}},
            {"op": "update", "kind": "task", "contactId": self.ids[0], "id": self.task_of[self.ids[0]],
             "fields": {"title": "a current reminder"}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "DELETE", "/contacts/%s/tasks/%s" % (cid, tid), None, 200)
        self.assertSucceeded(events, "drop-task", "contacts.tasks.delete", 200, "tasks", "updated",
                             tid)
        state = self.sandbox.state()
        self.assertEqual(state["tasks"][cid], [])
        self.assertEqual(len(state["tasks"][self.ids[0]]), 1)
        self.assertQuiet(cfg, mark)
        self.assertEqual(len(self.writes(mark)), 1)

    # -- notes ----------------------------------------------------------------

    def test_contacts_notes_create(self):
        cfg = self.configure(
            "[rule log-email]\non = c:updated\nwhen = changed(email)\ndo = contacts.notes.create\n"
            "contactId = {{record.id}}\n"
            "body = Email changed from {{changes.email.old}} to {{changes.email.new}}\n"
            "title = Email change\npinned = true\nuserId = " + self.meta["users"][1] + "\n")
        cid = self.ids[0]
        old = self.contact(cid)["email"]
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"email": "noted@example.com"}}])
        self.assertEqual(len(writes), 1, writes)
        text = "Email changed from %s to noted@example.com" % old
        self.assertRequest(writes[0], "POST", "/contacts/%s/notes" % cid, {
            "body": text, "title": "Email change", "pinned": True,
            "userId": self.meta["users"][1]}, 201)
        self.assertSucceeded(events, "log-email", "contacts.notes.create", 201, "c", "updated", cid)
        notes = [n for n in self.sandbox.state()["notes"][cid] if n["id"] != self.note_of[cid]]
        self.assertEqual([(n["body"], n["title"], n["pinned"]) for n in notes],
                         [(text, "Email change", True)])
        self.assertQuiet(cfg, mark)
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_notes_update(self):
        cfg = self.configure(
            "[rule review]\non = notes:created\ndo = contacts.notes.update\n"
            "contactId = {{record.contactId}}\nid = {{record.id}}\n"
            "body = Reviewed: {{record.body}}\npinned = false\ncolor = #FFCC00\n",
            triggers=CONTACTS + NOTES)
        cid = self.ids[1]
        changes = self.sandbox.mutate([{"op": "create", "kind": "note", "contactId": cid,
                                        "fields": {"body": "Asked for a callback", "pinned": True}}])
        nid = [c for c in changes if c["kind"] == "note"][0]["id"]
        mark = 0
        self.run_once(cfg)
        events = self.events(cfg)
        writes = self.writes()
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "PUT", "/contacts/%s/notes/%s" % (cid, nid), {
            "body": "Reviewed: Asked for a callback", "pinned": False, "color": "#FFCC00"}, 200)
        self.assertSucceeded(events, "review", "contacts.notes.update", 200, "notes", "created", nid)
        note = [n for n in self.sandbox.state()["notes"][cid] if n["id"] == nid][0]
        self.assertEqual((note["body"], note["pinned"], note["color"]),
                         ("Reviewed: Asked for a callback", False, "#FFCC00"))
        self.assertQuiet(cfg, mark)
        self.assertEqual(self.echo(cfg, "notes", nid)["type"], "updated")
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_notes_delete(self):
        rules = ("[rule drop-note]\non = notes:updated\n"
                 "when = record.body contains \"DELETE ME\"\ndo = contacts.notes.delete\n"
                 "confirm = yes\ncontactId = {{record.contactId}}\nid = {{record.id}}\n")
        self.assertNeedsConfirm(rules, triggers=CONTACTS + NOTES)
        cfg = self.configure(rules, triggers=CONTACTS + NOTES)
        cid = self.ids[1]
        nid = self.note_of[cid]
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "note", "contactId": cid, "id": nid,
             "fields": {"body": "DELETE ME please"}},
            {"op": "update", "kind": "note", "contactId": self.ids[2], "id": self.note_of[self.ids[2]],
             "fields": {"body": "keep me"}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "DELETE", "/contacts/%s/notes/%s" % (cid, nid), None, 200)
        self.assertSucceeded(events, "drop-note", "contacts.notes.delete", 200, "notes", "updated",
                             nid)
        state = self.sandbox.state()
        self.assertEqual(state["notes"][cid], [])
        self.assertEqual(len(state["notes"][self.ids[2]]), 1)
        self.assertQuiet(cfg, mark)
        self.assertEqual(len(self.writes(mark)), 1)

    # -- campaigns ------------------------------------------------------------

    def enrolled(self, cid):
        return sorted(e["campaignId"] for e in self.sandbox.state()["campaigns"].get(cid, []))

    def test_contacts_campaigns_add(self):
        camp = self.meta["campaigns"][0]
        cfg = self.configure(
            "[rule nurture]\non = c:updated\nwhen = record.tags contains \"nurture\"\n"
            "do = contacts.campaigns.add\ncontactId = {{record.id}}\ncampaignId = " + camp + "\n")
        cid = self.ids[0]
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"tags": ["nurture"]}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "POST", "/contacts/%s/campaigns/%s" % (cid, camp), {}, 201)
        self.assertSucceeded(events, "nurture", "contacts.campaigns.add", 201, "c", "updated", cid)
        self.assertEqual(self.enrolled(cid), [camp])
        self.assertEqual(self.sandbox.state()["campaigns"][cid][0]["status"], "active")
        self.assertQuiet(cfg, mark)
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_campaigns_remove(self):
        camps = self.meta["campaigns"][:2]
        cid = self.ids[0]
        for camp in camps:
            self.api("POST", "/contacts/%s/campaigns/%s" % (cid, camp), {})
        self.assertEqual(self.enrolled(cid), sorted(camps))
        # Not destructive: no confirm needed (configure() checks it).
        cfg = self.configure(
            "[rule leave]\non = c:updated\nwhen = changed(firstName)\n"
            "do = contacts.campaigns.remove\ncontactId = {{record.id}}\n"
            "campaignId = " + camps[0] + "\n")
        mark0 = self.request_seq()
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"firstName": "Leaving"}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "DELETE", "/contacts/%s/campaigns/%s" % (cid, camps[0]),
                           None, 200)
        self.assertSucceeded(events, "leave", "contacts.campaigns.remove", 200, "c", "updated", cid)
        self.assertEqual(self.enrolled(cid), [camps[1]])
        self.assertQuiet(cfg, mark0)
        self.assertEqual(len(self.writes(mark0)), 1)

    def test_contacts_campaigns_remove_all(self):
        camps = self.meta["campaigns"]
        cid, other = self.ids[1], self.ids[2]
        for c in (cid, other):
            for camp in camps[:2]:
                self.api("POST", "/contacts/%s/campaigns/%s" % (c, camp), {})
        rules = ("[rule unsubscribe]\non = c:updated\nwhen = record.tags contains \"unsubscribed\"\n"
                 "do = contacts.campaigns.remove_all\nconfirm = yes\ncontactId = {{record.id}}\n")
        self.assertNeedsConfirm(rules)
        cfg = self.configure(rules)
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"tags": ["unsubscribed"]}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "DELETE", "/contacts/%s/campaigns/removeAll" % cid, None, 200)
        self.assertSucceeded(events, "unsubscribe", "contacts.campaigns.remove_all", 200, "c",
                             "updated", cid)
        self.assertEqual(self.enrolled(cid), [])
        self.assertEqual(self.enrolled(other), sorted(camps[:2]))
        self.assertQuiet(cfg, mark)
        self.assertEqual(len(self.writes(mark)), 1)

    # -- workflows, followers, business (actions/workflows.ini) ---------------

    def workflows_of(self, cid):
        return sorted(e["workflowId"] for e in self.sandbox.state()["workflows"].get(cid, []))

    def test_contacts_workflows_add(self):
        wf = self.meta["workflows"][0]
        cfg = self.configure(
            "[rule onboard]\non = c:updated\nwhen = record.tags contains \"onboard\"\n"
            "do = contacts.workflows.add\ncontactId = {{record.id}}\nworkflowId = " + wf + "\n"
            "eventStartTime = 2026-06-23T03:30:00+01:00\n")
        cid = self.ids[0]
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"tags": ["onboard"]}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "POST", "/contacts/%s/workflow/%s" % (cid, wf),
                           {"eventStartTime": "2026-06-23T03:30:00+01:00"}, 200)
        self.assertSucceeded(events, "onboard", "contacts.workflows.add", 200, "c", "updated", cid)
        self.assertEqual(self.workflows_of(cid), [wf])
        self.assertEqual(self.sandbox.state()["workflows"][cid][0]["eventStartTime"],
                         "2026-06-23T03:30:00+01:00")
        self.assertQuiet(cfg, mark)
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_workflows_remove(self):
        wfs = self.meta["workflows"][:2]
        cid = self.ids[1]
        for wf in wfs:
            self.api("POST", "/contacts/%s/workflow/%s" % (cid, wf), {})
        self.assertEqual(self.workflows_of(cid), sorted(wfs))
        rules = ("[rule offboard]\non = c:updated\nwhen = changed(firstName)\n"
                 "do = contacts.workflows.remove\nconfirm = yes\ncontactId = {{record.id}}\n"
                 "workflowId = " + wfs[0] + "\n")
        self.assertNeedsConfirm(rules)
        cfg = self.configure(rules)
        mark0 = self.request_seq()
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"firstName": "Leaving"}}])
        self.assertEqual(len(writes), 1, writes)
        # No eventStartTime set: a DELETE without a body.
        self.assertRequest(writes[0], "DELETE", "/contacts/%s/workflow/%s" % (cid, wfs[0]),
                           None, 200)
        self.assertSucceeded(events, "offboard", "contacts.workflows.remove", 200, "c", "updated",
                             cid)
        self.assertEqual(self.workflows_of(cid), [wfs[1]])
        self.assertQuiet(cfg, mark0)
        self.assertEqual(len(self.writes(mark0)), 1)

    def test_contacts_followers_add(self):
        users = self.meta["users"][:2]
        cfg = self.configure(
            "[rule watch]\non = c:updated\nwhen = changed(email)\ndo = contacts.followers.add\n"
            "contactId = {{record.id}}\nfollowers = " + " ".join(users) + "\n")
        cid = self.ids[0]
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": cid,
                              "fields": {"followers": []}}])
        self.run_once(cfg)
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"email": "watched@example.com"}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "POST", "/contacts/%s/followers" % cid, {"followers": users},
                           201)
        self.assertSucceeded(events, "watch", "contacts.followers.add", 201, "c", "updated", cid)
        self.assertEqual(self.contact(cid)["followers"], users)
        self.assertQuiet(cfg, mark)
        self.assertEqual(self.echo(cfg, "c", cid)["type"], "updated")
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_followers_remove(self):
        users = self.meta["users"][:2]
        cid = self.ids[1]
        rules = ("[rule unwatch]\non = c:updated\nwhen = record.tags contains \"unwatch\"\n"
                 "do = contacts.followers.remove\nconfirm = yes\ncontactId = {{record.id}}\n"
                 "followers = " + users[0] + "\n")
        self.assertNeedsConfirm(rules)
        cfg = self.configure(rules)
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid,
             "fields": {"followers": users, "tags": ["unwatch"]}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "DELETE", "/contacts/%s/followers" % cid,
                           {"followers": [users[0]]}, 200)
        self.assertSucceeded(events, "unwatch", "contacts.followers.remove", 200, "c", "updated",
                             cid)
        self.assertEqual(self.contact(cid)["followers"], [users[1]])
        self.assertQuiet(cfg, mark)
        self.assertEqual(self.echo(cfg, "c", cid)["type"], "updated")
        self.assertEqual(len(self.writes(mark)), 1)

    def test_contacts_business_bulk(self):
        biz = "0123456789abcdef01234567"
        other = self.ids[2]
        # An assignment needs no confirm (only businessId = null removes: see
        # test_action_mechanisms, destructive_when).
        rules = ("[rule assign]\non = c:updated\nwhen = record.tags contains \"acme\"\n"
                 "do = contacts.business.bulk\n"
                 "ids = {{record.id}} " + other + "\nbusinessId = " + biz + "\n")
        cfg = self.configure(rules)
        cid = self.ids[0]
        writes, events, mark = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"tags": ["acme"]}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "POST", "/contacts/bulk/business",
                           {"locationId": LOC, "ids": [cid, other], "businessId": biz}, 200)
        self.assertSucceeded(events, "assign", "contacts.business.bulk", 200, "c", "updated", cid)
        for i in (cid, other):
            self.assertEqual(self.contact(i).get("businessId"), biz)
        self.assertEqual(self.contact(self.ids[1]).get("businessId"), None)
        # No target: the contacts' businessId change is not recognised as pollen's own, so
        # the rule fires once more on it; the same assignment changes nothing, which ends it.
        self.run_once(cfg)
        self.run_once(cfg)
        self.run_once(cfg)
        self.assertEqual([w["path"] for w in self.writes(mark)], ["/contacts/bulk/business"] * 2)

    def test_campaign_removal_is_not_mistaken_for_a_contact_delete(self):
        """After pollen removes a contact from a campaign (a DELETE on a path that names the
        contact), a real deletion of that contact by someone else is an external event: it
        must not be marked as pollen's own echo, and rules on `deleted` must fire."""
        camp = self.meta["campaigns"][0]
        cid = self.ids[0]
        self.api("POST", "/contacts/%s/campaigns/%s" % (cid, camp), {})
        cfg = self.configure(
            "[rule leave]\non = c:updated\nwhen = changed(firstName)\n"
            "do = contacts.campaigns.remove\ncontactId = {{record.id}}\ncampaignId = " + camp + "\n"
            "[rule gone]\non = c:deleted\ndo = contacts.find\nquery = {{record.email}}\n")
        self.fire(cfg, [{"op": "update", "kind": "contact", "id": cid,
                         "fields": {"firstName": "Leaving"}}])
        self.assertEqual(self.enrolled(cid), [])
        _, events, _ = self.fire(cfg, [{"op": "delete", "kind": "contact", "id": cid}])
        deleted = [e for e in events if e["type"] == "deleted"]
        self.assertEqual([e["record_id"] for e in deleted], [cid])
        self.assertNotIn("origin", deleted[0], "an external delete was taken for pollen's own")
        self.assertSucceeded(events, "gone", "contacts.find", 200, "c", "deleted", cid)


class ConditionsTest(RulesTest):
    """`when` and changed(): exactly the matching events fire."""

    def setUp(self):
        super().setUp()
        a, b, c = self.ids
        # Known values for the baseline.
        self.sandbox.mutate([
            {"op": "update", "kind": "contact", "id": a,
             "fields": {"tags": ["vip"], "firstName": "Ann", "email": "ann@example.com"}},
            {"op": "update", "kind": "contact", "id": b,
             "fields": {"tags": ["gold"], "firstName": "Ben", "email": "ben@example.com"}},
            {"op": "update", "kind": "contact", "id": c,
             "fields": {"tags": [], "firstName": "Cid", "email": "cid@example.com"}},
        ])

    def test_condition_table(self):
        a, b, c = self.ids
        # rule name: (on, when); each rule runs contacts.find with query NAME:record.id
        table = {
            "eq": ("c:created c:updated", 'record.firstName == "Nora"'),
            "neq": ("c:created", 'record.firstName != "Nora"'),
            "tag": ("c:created c:updated", 'record.tags contains "vip"'),
            "substr": ("c:*", 'record.email contains "@vip."'),
            "website": ("c:created", "record.website exists"),
            "no-website": ("c:created", "record.website not exists"),
            "email-upd": ("c:updated", "changed(email)"),
            "email-any": ("c:*", "changed(email)"),
            "and": ("c:*", 'record.tags contains "vip" and changed(email)'),
            "or": ("c:*", 'changed(firstName) or record.firstName == "Nora"'),
            "not": ("c:updated", 'not changed(email) and not (record.tags contains "vipish")'),
            "no-tag": ("c:updated", 'record.tags not contains "vip"'),
            "new-email": ("c:updated", 'changes.email.new == "ann2@vip.example"'),
            "created": ("c:*", 'event.type == "created"'),
            "never": ("c:*", 'record.firstName == "nora"'),
            "always": ("c:updated", None),
        }
        rules = ""
        for name, (on, when) in table.items():
            rules += f"[rule {name}]\non = {on}\n"
            if when:
                rules += f"when = {when}\n"
            rules += "do = contacts.find\nquery = " + name + ":{{record.id}}\n\n"
        cfg = self.configure(rules)
        changes = self.sandbox.mutate([
            {"op": "create", "kind": "contact",
             "fields": {"firstName": "Nora", "email": "nora@vip.example", "tags": ["vip", "new"],
                        "website": "https://nora.example"}},
            {"op": "create", "kind": "contact",
             "fields": {"firstName": "Omar", "email": "omar@example.com", "tags": [],
                        "website": None}},
            {"op": "update", "kind": "contact", "id": a, "fields": {"email": "ann2@vip.example"}},
            {"op": "update", "kind": "contact", "id": b, "fields": {"firstName": "Benny"}},
            {"op": "update", "kind": "contact", "id": c, "fields": {"tags": ["vipish"]}},
        ])
        made = {ch["record"]["firstName"]: ch["id"] for ch in changes
                if ch["kind"] == "contact" and ch["op"] == "created"}
        nora, omar = made["Nora"], made["Omar"]
        self.assertNotIn("website", self.contact(omar))
        mark = self.request_seq()
        self.run_once(cfg)
        expected = {
            "eq": {nora}, "neq": {omar}, "tag": {nora, a}, "substr": {nora, a},
            "website": {nora}, "no-website": {omar}, "email-upd": {a}, "email-any": {a},
            "and": {a}, "or": {nora, b}, "not": {b}, "no-tag": {b, c}, "new-email": {a},
            "created": {nora, omar}, "never": set(), "always": {a, b, c},
        }
        events = self.events(cfg)
        detections = {e["id"]: e for e in events if e["type"] in DETECTION}
        self.assertEqual(sorted((e["type"], e["record_id"]) for e in detections.values()),
                         sorted([("created", nora), ("created", omar), ("updated", a),
                                 ("updated", b), ("updated", c)]))
        outcomes = [e for e in events if e["type"].startswith("action.")]
        self.assertEqual({e["type"] for e in outcomes}, {"action.succeeded"})
        fired = {name: set() for name in table}
        for e in outcomes:
            self.assertIn(e["source"], detections)
            rid = detections[e["source"]]["record_id"]
            self.assertNotIn(rid, fired[e["rule"]], "a rule fired twice for one event")
            fired[e["rule"]].add(rid)
        self.assertEqual(fired, expected)
        # The requests agree, one per (rule, event).
        queries = sorted(r["body"]["query"] for r in self.writes(mark))
        self.assertEqual(queries, sorted(f"{n}:{rid}" for n, ids in expected.items() for rid in ids))
        # Nothing fires again.
        self.assertQuiet(cfg, mark)
        self.assertEqual(len(self.writes(mark)), len(queries))


class FeedbackLoopTest(RulesTest):
    """A rule that writes the contact its trigger watches runs once per external change."""

    RULE = ("[rule check-email]\non = c:updated\nwhen = changed(email)\ndo = contacts.update\n"
            "contactId = {{record.id}}\ncity = Checked\n")

    def puts(self, cid):
        return [r for r in self.writes() if r["method"] == "PUT" and r["path"] == "/contacts/" + cid]

    def test_update_of_the_watched_contact_once_cycles(self):
        cfg = self.configure(self.RULE)
        cid = self.ids[0]
        for n, email in enumerate(("first.change@example.com", "second.change@example.com"), 1):
            # Someone changes the email (and moves the contact elsewhere).
            self.sandbox.mutate([{"op": "update", "kind": "contact", "id": cid,
                                  "fields": {"email": email, "city": "Elsewhere %d" % n}}])
            for _ in range(4):
                self.run_once(cfg)
            self.assertEqual(len(self.puts(cid)), n, "one PUT per external change")
            self.assertEqual(self.contact(cid)["city"], "Checked")
        events = self.events(cfg)
        updates = [e for e in events if e["type"] in DETECTION]
        external = [e for e in updates if "email" in e["changes"]]
        self.assertEqual([e["changes"]["email"]["new"] for e in external],
                         ["first.change@example.com", "second.change@example.com"])
        # Each PUT has exactly one echo, recognised as pollen's own.
        echoes = [e for e in updates if e not in external]
        self.assertEqual([(e["record_id"], sorted(e["changes"])) for e in echoes],
                         [(cid, ["city", "dateUpdated"])] * 2)
        for n, e in enumerate(echoes, 1):
            self.assertEqual(e.get("origin"), "pollen",
                             "the echo of pollen's PUT was not recognised as its own")
            self.assertEqual(e["changes"]["city"], {"old": "Elsewhere %d" % n, "new": "Checked"})
        self.assertEqual(len([e for e in events if e["type"] == "action.succeeded"]), 2)
        self.assertEqual([e for e in events if e["type"] in ("action.failed", "action.dead")], [])

    def test_update_of_the_watched_contact_running_engine(self):
        cfg = self.configure(self.RULE)
        cid = self.ids[1]
        self.start_engine(cfg)
        time.sleep(1.5)
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": cid,
                              "fields": {"email": "running@example.com"}}])
        self.wait_for(lambda: self.puts(cid), timeout=30, what="the rule's PUT")
        self.wait_for(lambda: any(e.get("origin") == "pollen" for e in self.events(cfg)),
                      timeout=30, what="the echo event")
        time.sleep(6)  # about 6 more cycles at every = 1s
        self.assertEqual(self.stop_engine(), 0)
        with open(os.path.join(self.dir, "engine.log")) as f:
            log = f.read()
        self.assertEqual(len(self.puts(cid)), 1, log[-3000:])
        events = self.events(cfg)
        self.assertEqual([(e["type"], e.get("origin")) for e in events],
                         [("updated", None), ("action.succeeded", None), ("updated", "pollen")])
        self.assertEqual(events[2]["changes"]["city"],
                         {"old": events[0]["record"]["city"], "new": "Checked"})
        self.assertEqual(events[1]["source"], events[0]["id"])

    def test_echo_seen_before_the_response_arrives(self):
        """The API applies a write before its response reaches pollen. A poll or a
        sweep that reads the written record inside that window still sees pollen's
        own echo: the intent is recorded before the request is sent. The response
        to the task creation trickles for seconds here, while the tasks trigger
        (every 1s) reads the new task and the contact trigger its new dateUpdated."""
        cfg = self.configure(
            "[rule vip-followup]\non = c:created\nwhen = record.tags contains \"vip\"\n"
            "do = contacts.tasks.create\ncontactId = {{record.id}}\ntitle = Call {{record.firstName}}\n"
            "dueDate = {{now + 1d}}\ncompleted = false\n",
            triggers=CONTACTS + TASKS)
        self.sandbox.faults([{"path": "^/contacts/[A-Za-z0-9]{20}/tasks$", "method": "POST",
                              "kind": "trickle", "bytes_per_s": 60, "count": 1}])
        self.start_engine(cfg)
        vera = self.sandbox.mutate([{"op": "create", "kind": "contact",
                                     "fields": {"firstName": "Vera", "tags": ["vip"]}}])[0]["id"]
        self.wait_for(lambda: any(e["type"] == "action.succeeded" for e in self.events(cfg)),
                      timeout=60, what="the task creation to complete")
        tasks = self.sandbox.state()["tasks"][vera]
        self.assertEqual(len(tasks), 1)
        self.wait_for(lambda: any(e.get("record_id") == tasks[0]["id"]
                                  and not e["type"].startswith("action.")
                                  for e in self.events(cfg)),
                      timeout=30, what="the task's echo")
        time.sleep(3)
        self.assertEqual(self.stop_engine(), 0)
        faulted = [r for r in self.sandbox.requests() if r.get("fault")]
        self.assertEqual(len(faulted), 1, "the sandbox trickled the response")
        events = self.events(cfg)
        got = [(e["trigger"], e["type"], e.get("origin")) for e in events
               if not e["type"].startswith("action.")]
        self.assertEqual(got, [("c", "created", None), ("tasks", "created", "pollen"),
                               ("c", "updated", "pollen")][:len(got)], got)
        self.assertIn(("tasks", "created", "pollen"), got)
        self.assertEqual(len([r for r in self.writes() if r["method"] == "POST"]), 1)

    def test_every_trigger_on_the_record_sees_the_echo(self):
        """Two triggers watch the same contacts (found by the soak: only the first
        trigger to read pollen's write used to mark it as the echo)."""
        cfg = self.configure(
            "[rule mark]\non = c:updated\ndo = contacts.tags.add\ncontactId = {{record.id}}\n"
            "tags = seen-by-pollen\n",
            triggers=CONTACTS + "[trigger c2]\nuse = contacts.list\nevery = 1s\n")
        cid = self.ids[1]
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": cid,
                              "fields": {"firstName": "Twice-watched"}}])
        for _ in range(4):
            self.run_once(cfg)
        adds = [r for r in self.writes() if r["path"] == "/contacts/%s/tags" % cid]
        self.assertEqual(len(adds), 1)
        got = sorted((e["trigger"], e["type"], e.get("origin") or "") for e in self.events(cfg)
                     if e.get("record_id") == cid and not e["type"].startswith("action."))
        self.assertEqual(got, [("c", "updated", ""), ("c", "updated", "pollen"),
                               ("c2", "updated", ""), ("c2", "updated", "pollen")])

    def test_tags_add_on_every_update_does_not_loop(self):
        cfg = self.configure(
            "[rule mark]\non = c:updated\ndo = contacts.tags.add\ncontactId = {{record.id}}\n"
            "tags = seen-by-pollen\n")
        cid = self.ids[2]
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": cid,
                              "fields": {"firstName": "Touched"}}])
        for _ in range(4):
            self.run_once(cfg)
        adds = [r for r in self.writes() if r["path"] == "/contacts/%s/tags" % cid]
        self.assertEqual(len(adds), 1)
        events = self.events(cfg)
        self.assertEqual([(e["type"], e.get("origin")) for e in events],
                         [("updated", None), ("action.succeeded", None), ("updated", "pollen")])

    def test_note_on_contact_update_does_not_loop(self):
        """Creating a note (or task) bumps the contact's dateUpdated, so the contact
        trigger sees an `updated` event that pollen's own write caused. A rule on
        `c:updated` whose condition still holds must not create a note every cycle."""
        cfg = self.configure(
            "[rule vip-note]\non = c:updated\nwhen = record.tags contains \"vip\"\n"
            "do = contacts.notes.create\ncontactId = {{record.id}}\nbody = VIP updated\n")
        cid = self.ids[0]
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": cid,
                              "fields": {"tags": ["vip"]}}])
        for _ in range(4):
            self.run_once(cfg)
        notes = [r for r in self.writes() if r["path"] == "/contacts/%s/notes" % cid]
        self.assertEqual(len(notes), 1, "pollen's own note re-fired the rule "
                         f"{len(notes) - 1} time(s)")

    def test_external_change_after_own_tags_write_still_fires(self):
        """pollen adds a tag (its own write); before the next poll someone else changes
        the same contact's firstName. The next event carries both changes: it is not
        (only) pollen's echo, so the rule on changed(firstName) must fire."""
        cfg = self.configure(
            "[rule flag]\non = c:updated\nwhen = changed(email)\ndo = contacts.tags.add\n"
            "contactId = {{record.id}}\ntags = email-changed\n\n"
            "[rule greet]\non = c:updated\nwhen = changed(firstName)\ndo = contacts.find\n"
            "query = {{record.firstName}}\n")
        cid = self.ids[1]
        self.fire(cfg, [{"op": "update", "kind": "contact", "id": cid,
                         "fields": {"email": "flag.me@example.com"}}])
        self.assertIn("email-changed", self.contact(cid)["tags"])
        _, events, _ = self.fire(cfg, [{"op": "update", "kind": "contact", "id": cid,
                                        "fields": {"firstName": "Renamed"}}])
        last = [e for e in events if e["type"] == "updated"][-1]
        self.assertEqual(last["changes"]["firstName"]["new"], "Renamed")
        self.assertNotIn("origin", last, "an external change was swallowed as pollen's echo")
        self.assertSucceeded(events, "greet", "contacts.find", 200, "c", "updated", cid)


class DryRunTest(RulesTest):

    def test_dry_run_sends_and_records_nothing(self):
        cfg = self.configure(
            "[rule vip-followup]\non = c:created\nwhen = record.tags contains \"vip\"\n"
            "do = contacts.tasks.create\ncontactId = {{record.id}}\n"
            "title = Follow up with {{record.firstName}}\ndueDate = {{now + 1d}}\n"
            "completed = false\n\n"
            "[rule flag]\non = c:updated\nwhen = changed(email)\ndo = contacts.tags.add\n"
            "contactId = {{record.id}}\ntags = email-changed needs-review\n")
        cid = self.ids[0]
        changes = self.sandbox.mutate([
            {"op": "create", "kind": "contact", "fields": {"firstName": "Vic", "tags": ["vip"]}},
            {"op": "update", "kind": "contact", "id": cid, "fields": {"email": "dry@example.com"}}])
        vic = [ch["id"] for ch in changes if ch["kind"] == "contact" and ch["op"] == "created"][0]
        change_seq = harness.change_log_seq(self.sandbox)
        mark = self.request_seq()
        outputs = []
        for _ in range(2):
            proc = self.pollen("run", "--dry-run", "-c", cfg)
            lines = [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]
            outputs.append(lines)
            self.assertEqual(self.writes(mark), [], "a dry run sent a write")
            self.assertEqual(self.events(cfg), [], "a dry run recorded events")
            self.assertEqual(self.sandbox.changes(change_seq), [])
        lines = outputs[0]
        self.assertEqual(len(lines), 2, proc.stdout)
        by_rule = {l["rule"]: l for l in lines}
        self.assertEqual(sorted(by_rule), ["flag", "vip-followup"])
        task = by_rule["vip-followup"]["request"]
        self.assertEqual((task["method"], task["path"]), ("POST", "/contacts/%s/tasks" % vic))
        self.assertRegex(task["body"]["dueDate"], ISO_MS)
        self.assertJSON(task["body"], {"title": "Follow up with Vic",
                                       "dueDate": task["body"]["dueDate"], "completed": False})
        tags = by_rule["flag"]["request"]
        self.assertEqual((tags["method"], tags["path"]), ("POST", "/contacts/%s/tags" % cid))
        self.assertJSON(tags["body"], {"tags": ["email-changed", "needs-review"]})
        # The second dry run saw the same pending changes: nothing was recorded.
        self.assertEqual([(l["rule"], l["request"]["path"]) for l in outputs[1]],
                         [(l["rule"], l["request"]["path"]) for l in lines])
        # A real run still performs both.
        self.run_once(cfg)
        writes = self.writes(mark)
        self.assertEqual(sorted((w["method"], w["path"]) for w in writes),
                         sorted([("POST", "/contacts/%s/tasks" % vic),
                                 ("POST", "/contacts/%s/tags" % cid)]))
        events = self.events(cfg)
        self.assertSucceeded(events, "vip-followup", "contacts.tasks.create", 201, "c", "created",
                             vic)
        self.assertSucceeded(events, "flag", "contacts.tags.add", 201, "c", "updated", cid)


class DemoRuleTest(RulesTest):

    def test_demo_rule_creates_the_follow_up_task(self):
        demo = os.path.join(harness.SOURCE_ROOT, "conf", "demo.ini")
        parser = configparser.RawConfigParser(comment_prefixes=(";", "#"), strict=False)
        parser.optionxform = str
        parser.read(demo)
        rules = [s for s in parser.sections() if s.startswith("rule ")]
        if not rules:
            self.skipTest("conf/demo.ini has no rule yet")
        env = dict(self.env, POLLEN_DEMO_TOKEN="pit-demo-token")
        proc = self.pollen("check", "-c", demo, check=False, env=env)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        # The demo's rule sections, verbatim, against this sandbox's `contacts` trigger.
        text = ""
        for s in rules:
            text += f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in parser.items(s)) + "\n"
        self.assertIn("contacts:created", text)
        triggers = "[trigger contacts]\nuse = contacts.search\nevery = 1s\n"
        cfg = self.configure(text, triggers=triggers)
        t0 = time.time()
        changes = self.sandbox.mutate([
            {"op": "create", "kind": "contact", "fields": {"firstName": "Dora", "tags": ["vip"]}},
            {"op": "create", "kind": "contact", "fields": {"firstName": "Eli", "tags": ["lead"]}}])
        made = {ch["record"]["firstName"]: ch["id"] for ch in changes
                if ch["kind"] == "contact" and ch["op"] == "created"}
        mark = self.request_seq()
        self.run_once(cfg)
        writes = self.writes(mark)
        self.assertEqual([(w["method"], w["path"]) for w in writes],
                         [("POST", "/contacts/%s/tasks" % made["Dora"])])
        body = writes[0]["body"]
        self.assertIs(body["completed"], False)
        self.assertIn("Dora", body["title"])
        self.assertAlmostEqual(parse_iso(body["dueDate"]), t0 + 86400, delta=600)
        state = self.sandbox.state()["tasks"]
        self.assertEqual([t["title"] for t in state[made["Dora"]]], [body["title"]])
        self.assertEqual(state[made["Eli"]], [])
        events = self.events(cfg)
        self.assertSucceeded(events, rules[0][5:], "contacts.tasks.create", 201, "contacts",
                             "created", made["Dora"])


if __name__ == "__main__":
    harness.main()
