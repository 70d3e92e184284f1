"""How rule actions are rendered from event data (issue #10): record text in
an http URL is percent-encoded and stays in its path segment or query value
(F10); event strings keep their JSON type in string_list and json fields
(F11); big integers keep their digits (F20); header secrets from env:/file:
are resolved at send time and never stored or printed (F16); dead letters
and own-write marks expire (F21)."""
import glob
import json
import os
import time
import urllib.parse

import harness
from test_dispatch import FAST, TRIGGER, Receiver


class RenderTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def setUp(self):
        super().setUp()
        self.sandbox.seed(3, seed=5)

    def baseline(self, rules, engine=""):
        cfg = self.write_config(TRIGGER + rules, location=FAST, engine=engine)
        self.run_once(cfg)
        return cfg

    def create_contact(self, fields):
        changes = self.sandbox.mutate([{"op": "create", "kind": "contact", "fields": fields}])
        (cid,) = [c["id"] for c in changes if c["kind"] == "contact" and c["op"] == "created"]
        return cid

    def receiver(self):
        r = Receiver()
        self.addCleanup(r.stop)
        return r

    def dry_run(self, cfg):
        out = self.pollen("run", "-c", cfg, "--dry-run").stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def actions(self, cfg):
        return [e for e in self.events(cfg) if e["type"].startswith("action.")]

    def test_record_text_in_a_url_stays_in_its_segment_and_query_value(self):
        rcv = self.receiver()
        cfg = self.baseline(
            "[rule hook]\non = c:created\ndo = http\n"
            f"url = {rcv.url}/api/crm/contacts/{{{{record.firstName}}}}/welcome?src={{{{record.source}}}}\n")
        name = "../../admin?x=1#"
        source = "x&role=admin&callback=https://evil.example"
        self.create_contact({"firstName": name, "source": source})
        self.run_once(cfg)
        got = rcv.got()
        self.assertEqual(len(got), 1, [d["path"] for d in got])
        url = urllib.parse.urlsplit(got[0]["path"])
        self.assertEqual(url.path, "/api/crm/contacts/..%2F..%2Fadmin%3Fx%3D1%23/welcome")
        self.assertEqual(urllib.parse.unquote(url.path.split("/")[4]), name)
        self.assertEqual(urllib.parse.parse_qs(url.query), {"src": [source]},
                         "the record added query parameters")
        self.assertEqual(url.fragment, "")

    def test_raw_opts_out_of_url_encoding_but_dot_segments_are_refused(self):
        rcv = self.receiver()
        cfg = self.baseline(
            "[rule raw]\non = c:created\ndo = http\n"
            f"url = {rcv.url}/api/{{{{record.firstName | raw}}}}/x?{{{{record.source | raw}}}}\n")
        self.create_contact({"firstName": "a/b", "source": "p=1&q=2"})
        self.create_contact({"firstName": "..", "source": "z=1"})
        self.run_once(cfg)
        self.assertEqual([d["path"] for d in rcv.got()], ["/api/a/b/x?p=1&q=2"])
        (dead,) = [e for e in self.actions(cfg) if e["type"] == "action.dead"]
        self.assertIn("'..' path segment", dead["error"])

    def test_event_strings_keep_their_type_in_list_and_json_fields(self):
        cfg = self.baseline(
            "[rule tag-source]\non = c:created\ndo = contacts.tags.add\n"
            "contactId = {{record.id}}\ntags = {{record.source}}\n"
            "[rule tag-literal]\non = c:created\ndo = contacts.tags.add\n"
            "contactId = {{record.id}}\ntags = a, b c\n"
            "[rule tag-mixed]\non = c:created\ndo = contacts.tags.add\n"
            "contactId = {{record.id}}\ntags = from {{record.source}}, vip\n"
            "[rule copy-note]\non = c:created\ndo = contacts.update\n"
            "contactId = {{record.id}}\ncustomFields = {{record.companyName}}\n")
        company = '[{"id": "creditLimitFieldId01", "field_value": "999999"}]'
        self.create_contact({"firstName": "Fay", "source": "web-form, vip, do-not-bill",
                             "companyName": company})
        bodies = {e["rule"]: e["request"].get("body") for e in self.dry_run(cfg)}
        self.assertEqual(bodies["tag-source"], {"tags": ["web-form, vip, do-not-bill"]})
        self.assertEqual(bodies["tag-literal"], {"tags": ["a", "b", "c"]})
        self.assertEqual(bodies["tag-mixed"], {"tags": ["from", "web-form, vip, do-not-bill", "vip"]})
        self.assertEqual(bodies["copy-note"], {"customFields": company})

    def test_text_for_a_boolean_field_is_true_or_false_only(self):
        # One rule set for text to JSON (catalog_value_coerce): "yes" is refused
        # for a boolean field as it is in the config file, not read as true.
        cfg = self.baseline(
            "[rule dnd]\non = c:created\ndo = contacts.update\n"
            "contactId = {{record.id}}\ndnd = {{record.source}}\n")
        self.create_contact({"firstName": "Ann", "source": "true"})
        self.create_contact({"firstName": "Bob", "source": "yes"})
        self.run_once(cfg)
        acts = self.actions(cfg)
        ok = [e for e in acts if e["type"] == "action.succeeded"]
        (dead,) = [e for e in acts if e["type"] == "action.dead"]
        self.assertEqual(len(ok), 1, acts)
        self.assertIn("dnd: 'yes' is not a boolean", dead["error"])

    def test_split_and_parse_json_filters_ask_for_list_and_json_on_purpose(self):
        cfg = self.baseline(
            "[rule tag-split]\non = c:created\ndo = contacts.tags.add\n"
            "contactId = {{record.id}}\ntags = {{record.source | split}}\n"
            "[rule copy-parsed]\non = c:created\ndo = contacts.update\n"
            "contactId = {{record.id}}\ncustomFields = {{record.companyName | parse_json}}\n")
        company = '[{"id": "creditLimitFieldId01", "field_value": "999999"}]'
        self.create_contact({"firstName": "Fay", "source": "web-form, vip, do-not-bill",
                             "companyName": company})
        bodies = {e["rule"]: e["request"].get("body") for e in self.dry_run(cfg)}
        self.assertEqual(bodies["tag-split"], {"tags": ["web-form", "vip", "do-not-bill"]})
        self.assertEqual(bodies["copy-parsed"],
                         {"customFields": [{"id": "creditLimitFieldId01", "field_value": "999999"}]})

    def test_header_secrets_reach_the_receiver_and_are_never_stored_or_printed(self):
        rcv = self.receiver()
        rcv.script = {"/dead": [400]}
        env_secret, file_secret = "env-hook-secret-4711", "file-hook-secret-0815"
        path = os.path.join(self.dir, "hook.secret")
        with open(path, "w") as f:
            f.write(file_secret + "\n")
        os.chmod(path, 0o600)
        env = dict(self.env, HOOK_SECRET=env_secret)
        rules = ("[rule ok]\non = c:created\ndo = http\n"
                 f"url = {rcv.url}/ok\nheader.Authorization = env:HOOK_SECRET\n"
                 "header.X-File = file:hook.secret\nheader.X-Plain = p-{{record.id}}\n"
                 "[rule dead]\non = c:created\ndo = http\n"
                 f"url = {rcv.url}/dead\nheader.Authorization = env:HOOK_SECRET\n")
        cfg = self.write_config(TRIGGER + rules, location=FAST)
        self.run_once(cfg, env=env)
        cid = self.create_contact({"firstName": "Gus"})
        dry = self.pollen("run", "-c", cfg, "--dry-run", env=env).stdout
        self.assertIn('"Authorization":"***"', dry)
        run = self.run_once(cfg, env=env)
        by_path = {d["path"]: d for d in rcv.got()}
        self.assertEqual(by_path["/ok"]["headers"]["authorization"], env_secret)
        self.assertEqual(by_path["/ok"]["headers"]["x-file"], file_secret)
        self.assertEqual(by_path["/ok"]["headers"]["x-plain"], f"p-{cid}")
        self.assertEqual(by_path["/dead"]["headers"]["authorization"], env_secret)
        dlq = self.pollen("dlq", "list", "--json", "-c", cfg, env=env).stdout
        (letter,) = [json.loads(line) for line in dlq.splitlines() if line.strip()]
        self.assertEqual(letter["request"]["headers"], {"Authorization": "***"})
        self.assertEqual(letter["request"]["secret_headers"], {"Authorization": "env:HOOK_SECRET"})
        events = self.pollen("tail", "-c", cfg, env=env).stdout
        stored = b""
        for name in glob.glob(os.path.join(self.dir, "state", "**"), recursive=True):
            if os.path.isfile(name):
                with open(name, "rb") as f:
                    stored += f.read()
        for secret in (env_secret, file_secret):
            for where, text in (("dry-run", dry), ("dlq list", dlq), ("events", events),
                                ("engine log", run.stdout + run.stderr)):
                self.assertNotIn(secret, text, where)
            self.assertNotIn(secret.encode(), stored, "the state directory")
        # The secret file is checked like a token file, with FILE:LINE.
        os.chmod(path, 0o644)
        bad = self.pollen("check", "-c", cfg, env=env, check=False)
        self.assertNotEqual(bad.returncode, 0)
        self.assertRegex(bad.stderr, r"pollen\.ini:\d+: permissions 0644 for '.*hook\.secret' are too open")
        os.chmod(path, 0o600)
        del env["HOOK_SECRET"]
        bad = self.pollen("check", "-c", cfg, env=env, check=False)
        self.assertRegex(bad.stderr, r"pollen\.ini:\d+: environment variable HOOK_SECRET is not set")

    def test_big_integers_keep_their_digits_in_events_and_diffs(self):
        cfg = self.baseline("")
        big, twin = 12345678901234567891, 12345678901234567892  # the same double
        self.assertEqual(float(big), float(twin))
        # A numeric custom field value (the sandbox takes any JSON value there).
        cid = self.create_contact({"firstName": "Bo", "customFields": [{"id": "cfBig", "value": big}]})
        self.run_once(cfg)
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": cid,
                              "fields": {"customFields": [{"id": "cfBig", "value": twin}]}}])
        self.run_once(cfg)
        out = self.pollen("tail", "-c", cfg).stdout
        self.assertIn('"value":12345678901234567891', out)
        evs = [e for e in map(json.loads, out.splitlines()) if e.get("record_id") == cid]
        self.assertEqual([e["type"] for e in evs], ["created", "updated"])
        self.assertEqual(evs[0]["record"]["customFields"], [{"id": "cfBig", "value": big}])
        self.assertEqual(evs[1]["record"]["customFields"], [{"id": "cfBig", "value": twin}])
        self.assertEqual(evs[1]["changes"]["customFields"]["new"], [{"id": "cfBig", "value": twin}])
    def test_dead_letters_older_than_dlq_retention_are_deleted(self):
        rcv = self.receiver()
        rcv.script = {"/dead": [400, 400]}
        cfg = self.baseline(f"[rule dead]\non = c:created\ndo = http\nurl = {rcv.url}/dead\n",
                            engine="dlq_retention = 2s")
        self.create_contact({"firstName": "Old"})
        self.run_once(cfg)
        (old,) = self.dlq_list(cfg)
        time.sleep(2.5)
        self.create_contact({"firstName": "New"})
        run = self.run_once(cfg)
        letters = self.dlq_list(cfg)
        self.assertEqual(len(letters), 1, letters)
        self.assertNotEqual(letters[0]["id"], old["id"], "the old dead letter is gone, the new one stays")
        self.assertIn("dead-letter retention removed 1 dead letter", run.stdout + run.stderr)

    def dlq_list(self, cfg):
        out = self.pollen("dlq", "list", "--json", "-c", cfg).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


if __name__ == "__main__":
    harness.main()
