"""SIGHUP reload (engine.c, reload.c), against a running engine:

- test_reload_adds_changes_and_removes_triggers_and_rules: a trigger added
  records its baseline and then reports changes; the rule replaced by
  another acts on the events after the reload only; the kept trigger misses
  no change and reports none twice across two reloads (each created contact
  has exactly one event per trigger); a removed trigger sends no request
  after its reload; one summary line says what changed.
- test_invalid_reload_keeps_the_running_configuration: a file with a bad
  value is refused with FILE:LINE in the log, the engine keeps running the
  old configuration (its rule still acts), and a later valid reload works.
"""
import os
import signal
import time

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
CONTACTS = "[trigger contacts]\nuse = contacts.search\nevery = 1s\n"
VIPS = "[trigger vips]\nuse = contacts.search\nevery = 1s\n"


def rule(name, trigger="contacts"):
    return (f"[rule {name}]\non = {trigger}:created\ndo = exec\ncommand = /bin/true\n"
            "args = {{record.id}}\n")


class ReloadTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def write(self, text, name="pollen.ini"):
        return self.write_config(text, location=FAST, name=name)

    def wait_log(self, text, what, timeout=60, after=0):
        self.wait_for(lambda: text in self.engine_log_text()[after:], timeout=timeout, what=what)

    def create(self, name):
        changes = self.sandbox.mutate([{"op": "create", "kind": "contact",
                                        "fields": {"firstName": name}}])
        return [c["id"] for c in changes if c["kind"] == "contact" and c["op"] == "created"][0]

    def acted(self, cfg, cid):
        """Rule names whose action succeeded for contact cid."""
        created = {e["id"]: e for e in self.events(cfg) if e["type"] == "created"}
        return sorted(e.get("rule") for e in self.events(cfg)
                      if e["type"] == "action.succeeded" and
                      created.get(e.get("source"), {}).get("record_id") == cid)

    def reload(self, cfg_text, what):
        mark = len(self.engine_log_text())
        self.write(cfg_text)
        self.engine.send_signal(signal.SIGHUP)
        self.wait_log("reload: starting again with the new configuration", what, after=mark)
        self.wait_log("running:", "the engine running again", after=mark)
        return self.engine_log_text()[mark:]

    def test_reload_adds_changes_and_removes_triggers_and_rules(self):
        self.sandbox.seed(3, seed=51)
        cfg = self.write(CONTACTS + rule("first"))
        self.start_engine(cfg)
        self.wait_log("[trigger:contacts] baseline recorded", "the contacts baseline")
        a = self.create("Ann")
        self.wait_for(lambda: self.acted(cfg, a) == ["first"], what="rule first on Ann")

        log = self.reload(CONTACTS + VIPS + rule("second"), "the first reload")
        self.assertIn("triggers added: vips;", log)
        self.assertIn("rules: 1 -> 1", log)
        self.assertIsNone(self.engine.poll())
        self.wait_log("[trigger:vips] baseline recorded", "the vips baseline")
        b = self.create("Bob")
        self.wait_for(lambda: self.acted(cfg, b) == ["second"], what="rule second on Bob")
        self.wait_for(lambda: any(e["trigger"] == "vips" and e.get("record_id") == b
                                  for e in self.events(cfg)), what="vips reporting Bob")

        log = self.reload(CONTACTS + rule("second"), "the second reload")
        self.assertIn("removed: vips;", log)
        c = self.create("Cid")
        self.wait_for(lambda: self.acted(cfg, c) == ["second"], what="rule second on Cid")
        time.sleep(2)  # two more cycles of contacts
        self.assertEqual(self.stop_engine(), 0)

        created = [(e["trigger"], e["record_id"]) for e in self.events(cfg)
                   if e["type"] == "created"]
        self.assertEqual(sorted(created), sorted([("contacts", a), ("contacts", b),
                                                  ("vips", b), ("contacts", c)]),
                         "every change once per trigger, across two reloads")
        self.assertEqual(self.acted(cfg, a), ["first"], "the old rule's action is not repeated")
        # vips was removed: after its reload no line of it (no cycle, no request).
        after = self.engine_log_text().split("removed: vips;")[1]
        self.assertNotIn("[trigger:vips]", after.split("reload: starting again")[1])

    def test_invalid_reload_keeps_the_running_configuration(self):
        self.sandbox.seed(2, seed=52)
        good = CONTACTS + rule("first")
        cfg = self.write(good)
        self.start_engine(cfg)
        self.wait_log("[trigger:contacts] baseline recorded", "the contacts baseline")
        mark = len(self.engine_log_text())
        self.write(good.replace("every = 1s", "every = often"))
        self.engine.send_signal(signal.SIGHUP)
        self.wait_log("reload refused", "the refused reload", after=mark)
        log = self.engine_log_text()[mark:]
        self.assertRegex(log, r"reload: \S*pollen\.ini:\d+: .*every")
        self.assertNotIn("starting again", log)
        self.assertIsNone(self.engine.poll(), "an invalid reload must not stop the engine")
        self.write(good)  # `tail` (events) reads the file too; no SIGHUP: nothing reloads
        a = self.create("Ann")
        self.wait_for(lambda: self.acted(cfg, a) == ["first"],
                      what="the old configuration still acting")
        self.reload(CONTACTS + rule("second"), "a valid reload after the refused one")
        b = self.create("Bob")
        self.wait_for(lambda: self.acted(cfg, b) == ["second"], what="rule second on Bob")
        self.assertEqual(self.stop_engine(), 0)


if __name__ == "__main__":
    harness.main()
