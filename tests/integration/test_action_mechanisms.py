"""The action mechanisms of issue #11 (catalog-map M1, M2, M14), end to end
against the sandbox API.

1. Secret fields: users.create's password is `env:VAR` in the rule; the
   sandbox's request log shows the value was sent, and neither the state
   directory (the LMDB outbox, the event log, every file under it), nor
   the engine's logs, the events or the dead letters ever hold it. A
   variable missing at send time is a dead letter that names the reference.
2. conflict_ok: the first POST /users/ is written but its answer is lost (a
   `reset` fault with `process`); the retry gets 400 "already exists",
   which counts as success on a retry; one user exists.
3. Conditional destructiveness: contacts.business.bulk with businessId =
   null needs confirm = yes and sends JSON null; with a value it does not.
4. A query parameter: opportunities.followers.remove sends
   isRemoveAllFollowers=true.
5. Per-field defaults: opportunities.upsert sends followers [],
   isRemoveAllFollowers false and followersActionType add when the rule
   leaves them out.
"""
import json
import os

import harness
import test_actions
from test_actions import CONTACTS, FAST, LOC

SECRET = "Pw-5e1f0c2b-never-stored-9d41"
PW_VAR = "POLLEN_TEST_USER_PW"


class MechanismsTest(test_actions.RulesTest):

    def setUp(self):
        super().setUp()
        self.company = self.sandbox.state()["companyId"]
        self.logs = []  # every stdout/stderr of pollen, scanned for the secret

    def pollen(self, *args, **kw):
        proc = super().pollen(*args, **kw)
        self.logs.append(proc.stdout + proc.stderr)
        return proc

    def with_company(self):
        """The location's companyId for {company} (a static token carries none)."""
        return FAST + "company_id = " + self.company + "\n"

    def test_company_binding_needs_a_company_id(self):
        """users.create sends body.companyId = {company}: with a static token and no
        company_id, `pollen check` refuses the rule at its `do` line, naming the location."""
        cfg = self.write_config(CONTACTS + "\n" + self.user_rule(), location=FAST,
                                name="nocompany.ini")
        proc = self.pollen("check", "-c", cfg, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertRegex(proc.stdout + proc.stderr,
                         r"nocompany\.ini:\d+: rule 'hire': users\.create sends the companyId "
                         r"\(\{company\}\), and the static token of \[location main\] carries none")

    def with_secret(self):
        return dict(self.env, **{PW_VAR: SECRET})

    def run_until(self, cfg, predicate, env=None, timeout=60, what="condition"):
        self.start_engine(cfg, env=env)
        try:
            return self.wait_for(lambda: predicate(self.events(cfg)), timeout=timeout,
                                 interval=0.25, what=what)
        finally:
            self.assertEqual(self.stop_engine(), 0, self.engine_log_text()[-3000:])

    def user_rule(self, extra=""):
        return ("[rule hire]\non = c:updated\nwhen = record.tags contains \"hire\"\n"
                "do = users.create\n"
                "firstName = {{record.firstName}}\nlastName = Hire\n"
                "email = hire.{{record.id}}@example.com\ntype = account\nrole = user\n"
                "locationIds = " + LOC + "\npassword = env:" + PW_VAR + "\n" + extra)

    def users_by_email(self, email):
        return [u for u in self.sandbox.state()["records"]["users"] if u["email"] == email]

    def dlq(self, cfg):
        out = self.pollen("dlq", "list", "--json", "-c", cfg).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def assertNowhere(self, cfg):
        """The secret is in no file of the state directory (raw bytes, data.mdb included),
        no log line, no event and no dead letter."""
        state = os.path.join(self.dir, "state")
        scanned = 0
        for root, _, files in os.walk(state):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
                scanned += name == "data.mdb"
                self.assertNotIn(SECRET.encode(), data, os.path.join(root, name))
        self.assertGreater(scanned, 0, "no data.mdb under the state directory")
        for text in self.logs + [self.engine_log_text()]:
            self.assertNotIn(SECRET, text)
        self.assertNotIn(SECRET, json.dumps(self.events(cfg)))
        self.assertNotIn(SECRET, json.dumps(self.dlq(cfg)))

    # -- M14: secret fields ------------------------------------------------------

    def test_secret_field_is_sent_and_never_stored_or_logged(self):
        cfg = self.configure(self.user_rule(), location=self.with_company())
        with open(cfg) as f:
            self.assertNotIn(SECRET, f.read())
        cid = self.ids[0]
        mark = self.request_seq()
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": cid,
                              "fields": {"tags": ["hire"]}}])
        self.run_once(cfg, env=self.with_secret())
        writes = self.writes(mark)
        self.assertEqual(len(writes), 1, writes)
        w = writes[0]
        self.assertEqual((w["method"], w["path"], w["status"]), ("POST", "/users/", 201), w)
        email = "hire.%s@example.com" % cid
        self.assertEqual(w["body"]["password"], SECRET)
        self.assertEqual(w["body"]["email"], email)
        self.assertEqual(w["body"]["locationIds"], [LOC])
        self.assertEqual(w["body"]["companyId"], self.company)
        self.assertEqual(len(self.users_by_email(email)), 1)
        ok = [e for e in self.events(cfg) if e["type"] == "action.succeeded"]
        self.assertEqual([(e["action"], e["status"]) for e in ok], [("users.create", 201)])
        # --dry-run prints the stored request: the mask and the reference only.
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": self.ids[1],
                              "fields": {"tags": ["hire"]}}])
        dry = self.pollen("run", "-c", cfg, "--once", "--dry-run", env=self.with_secret())
        self.assertIn("env:" + PW_VAR, dry.stdout + dry.stderr)
        self.assertNowhere(cfg)

    def test_missing_secret_at_send_time_is_a_dead_letter_naming_the_reference(self):
        cfg = self.configure(self.user_rule(), location=self.with_company())
        mark = self.request_seq()
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": self.ids[0],
                              "fields": {"tags": ["hire"]}}])
        env = {k: v for k, v in self.env.items() if k != PW_VAR}
        self.run_once(cfg, env=env)
        self.assertEqual(self.writes(mark), [], "nothing may be sent without the secret")
        (letter,) = self.dlq(cfg)
        self.assertIn("secret field password = env:" + PW_VAR, letter["dead_reason"])
        dead = [e for e in self.events(cfg) if e["type"] == "action.dead"]
        self.assertEqual(len(dead), 1, dead)
        self.assertEqual(letter["request"]["body"]["password"], "***")
        self.assertEqual(letter["request"]["secret_fields"], {"password": "env:" + PW_VAR})

    def test_literal_secret_is_refused_without_quoting_it(self):
        rules = self.user_rule().replace("env:" + PW_VAR, SECRET)
        cfg = self.write_config(CONTACTS + "\n" + rules, location=FAST, name="literal.ini")
        proc = self.pollen("check", "-c", cfg, check=False)
        out = proc.stdout + proc.stderr
        self.assertEqual(proc.returncode, 2, out)
        self.assertIn("'password' is a secret field of users.create", out)
        self.assertNotIn(SECRET, out)

    # -- M14: conflict_ok ------------------------------------------------------------

    def test_conflict_on_a_retried_create_is_success(self):
        cfg = self.configure(self.user_rule("backoff = 1s\nbackoff_max = 2s\n"),
                             location=self.with_company())
        # The first POST /users/ is processed (the user is created), then the connection
        # is reset: pollen cannot know the outcome and retries.
        self.sandbox.faults([{"kind": "reset", "method": "POST", "path": "^/users/$",
                              "process": True}])
        cid = self.ids[0]
        mark = self.request_seq()
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": cid,
                              "fields": {"tags": ["hire"]}}])
        outcome = lambda ev: [e for e in ev if e["type"] in ("action.succeeded", "action.dead")]
        self.run_until(cfg, outcome, env=self.with_secret(), what="the create settled")
        posts = [w for w in self.writes(mark) if w["path"] == "/users/"]
        self.assertEqual([w["status"] for w in posts[1:]], [400], posts)
        self.assertTrue(posts[0].get("fault"), posts[0])
        acts = [(e["type"], e["attempt"]) for e in self.events(cfg)
                if e["type"].startswith("action.")]
        self.assertEqual(acts, [("action.failed", 1), ("action.succeeded", 2)])
        ok = outcome(self.events(cfg))[0]
        self.assertIn("already exists on attempt 2", ok.get("error", ""))
        self.assertEqual(len(self.users_by_email("hire.%s@example.com" % cid)), 1)
        self.assertEqual(self.dlq(cfg), [])
        self.assertNowhere(cfg)

    def test_conflict_on_a_first_attempt_stays_a_dead_letter(self):
        cid = self.ids[0]
        cfg = self.configure(self.user_rule(), location=self.with_company())
        self.api("POST", "/users/", {
            "companyId": self.company, "firstName": "Other", "lastName": "User",
            "email": "hire.%s@example.com" % cid, "password": "x-other-1", "type": "account",
            "role": "user", "locationIds": [LOC]})
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": cid,
                              "fields": {"tags": ["hire"]}}])
        self.run_once(cfg, env=self.with_secret())
        (letter,) = self.dlq(cfg)
        self.assertIn("HTTP 400", letter["dead_reason"])
        self.assertIn("already exists", letter["dead_reason"])

    # -- M14: conditional destructiveness ---------------------------------------------

    def test_bulk_business_null_needs_confirm(self):
        biz = "0123456789abcdef01234567"
        cid, other = self.ids[0], self.ids[1]
        assign = ("[rule assign]\non = c:updated\nwhen = record.tags contains \"acme\"\n"
                  "do = contacts.business.bulk\nids = {{record.id}}\nbusinessId = " + biz + "\n")
        remove = ("[rule drop]\non = c:updated\nwhen = record.tags contains \"gone\"\n"
                  "do = contacts.business.bulk\nconfirm = yes\n"
                  "ids = {{record.id}}\nbusinessId = null\n")
        # Without confirm = yes the literal null is refused at its line; with it, accepted.
        bad = self.write_config(CONTACTS + "\n" + remove.replace("confirm = yes\n", ""),
                                location=FAST, name="noconfirm.ini")
        proc = self.pollen("check", "-c", bad, check=False)
        with open(bad) as f:
            line = f.read().splitlines().index("businessId = null") + 1
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertIn("%s:%d: businessId = null makes contacts.business.bulk destructive (it "
                      "removes): add confirm = yes to rule 'drop'" % (bad, line), proc.stderr)
        cfg = self.configure(assign + remove)  # assign has no confirm: accepted
        writes, events, _ = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"tags": ["acme"]}},
            {"op": "update", "kind": "contact", "id": other, "fields": {"tags": ["acme"]}}])
        self.assertEqual(len(writes), 2, writes)
        self.assertEqual(self.contact(cid).get("businessId"), biz)
        writes, events, _ = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"tags": ["gone"]}}])
        # (The first round's writes come back as updates, so `assign` may repeat for
        # `other`: the same assignment, see test_actions.test_contacts_business_bulk.)
        removals = [w for w in writes if w["body"]["businessId"] is None]
        self.assertEqual(len(removals), 1, writes)
        self.assertRequest(removals[0], "POST", "/contacts/bulk/business",
                           {"locationId": LOC, "ids": [cid], "businessId": None}, 200)
        self.assertTrue(all(w["body"]["businessId"] == biz for w in writes if w not in removals))
        self.assertEqual(self.contact(cid).get("businessId"), None)
        self.assertEqual(self.contact(other).get("businessId"), biz)

    def test_expression_rendering_null_without_confirm_is_refused(self):
        rules = ("[rule copy]\non = c:updated\nwhen = record.tags contains \"copy\"\n"
                 "do = contacts.business.bulk\nids = {{record.id}}\n"
                 "businessId = {{record.noSuchField}}\n")
        cfg = self.configure(rules)
        writes, events, _ = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": self.ids[0], "fields": {"tags": ["copy"]}}])
        self.assertEqual(writes, [])
        text = json.dumps(events) + "".join(self.logs)
        self.assertIn("businessId rendered null, which makes contacts.business.bulk destructive",
                      text)

    # -- M2: an action's query parameter ------------------------------------------------

    def test_is_remove_all_followers_is_sent(self):
        out = self.sandbox.control("POST", "/_control/seed", {"opportunities": 2, "seed": 5})
        oid = out["opportunity_ids"][0]
        users = self.sandbox.state()["meta"]["users"][:2]
        self.sandbox.mutate([{"op": "update", "kind": "opportunity", "id": oid,
                              "fields": {"followers": users}}])
        rules = ("[rule clear]\non = c:updated\nwhen = record.tags contains \"clear\"\n"
                 "do = opportunities.followers.remove\nconfirm = yes\nid = " + oid + "\n"
                 "followers = " + users[0] + "\nisRemoveAllFollowers = true\n")
        cfg = self.configure(rules)
        writes, events, _ = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": self.ids[0], "fields": {"tags": ["clear"]}}])
        self.assertEqual(len(writes), 1, writes)
        w = writes[0]
        self.assertEqual((w["method"], w["path"], w["status"]),
                         ("DELETE", "/opportunities/%s/followers" % oid, 200), w)
        self.assertEqual(w["query"], {"isRemoveAllFollowers": "true"}, w)
        self.assertEqual(w["body"], {"followers": [users[0]]}, w)
        opp = {o["id"]: o for o in self.sandbox.state()["records"]["opportunities"]}[oid]
        self.assertEqual(opp["followers"], [])

    # -- per-field defaults: opportunities.upsert --------------------------------------

    def test_upsert_sends_the_follower_defaults(self):
        pipe = self.sandbox.state()["records"]["pipelines"][0]["id"]
        cid = self.ids[0]
        rules = ("[rule deal]\non = c:updated\nwhen = record.tags contains \"deal\"\n"
                 "do = opportunities.upsert\npipelineId = " + pipe + "\n"
                 "contactId = {{record.id}}\nname = Deal {{record.id}}\n")
        cfg = self.configure(rules)
        writes, events, _ = self.fire(cfg, [
            {"op": "update", "kind": "contact", "id": cid, "fields": {"tags": ["deal"]}}])
        self.assertEqual(len(writes), 1, writes)
        self.assertRequest(writes[0], "POST", "/opportunities/upsert", {
            "locationId": LOC, "pipelineId": pipe, "contactId": cid, "name": "Deal " + cid,
            "followers": [], "isRemoveAllFollowers": False, "followersActionType": "add"}, 200)
        ok = [e for e in events if e["type"] == "action.succeeded"]
        self.assertEqual([(e["action"], e["status"]) for e in ok], [("opportunities.upsert", 200)])
        made = [o for o in self.sandbox.state()["records"]["opportunities"]
                if o.get("contactId") == cid and o["name"] == "Deal " + cid]
        self.assertEqual(len(made), 1, made)


if __name__ == "__main__":
    harness.main()
