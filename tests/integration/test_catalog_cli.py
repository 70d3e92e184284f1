"""`pollen catalog`: the list of definitions and one definition in detail.

- The list has a header row (NAME KIND METHOD PATH SCOPE TITLE) and every
  column starts at the same offset on every row; `triggers` and `actions`
  keep only their kind; every shipped definition is listed once.
- `pollen catalog contacts.search` shows its request, Version header, scope,
  records, id and update fields, pagination with its page sizes,
  confirm_delete, for_each and its parameters and fixed bindings (name,
  where, type, required or fixed, value); a fan-out trigger says what feeds
  it.
- An action's detail shows its request, success status, result, target, the
  idempotent, destructive and gone_ok flags, its path parameters and its
  typed body fields.
- A trigger and an action with the same name are both shown.
- An unknown name exits 2 with nothing on stdout and says so on stderr,
  with a did-you-mean when a name is close.
No sandbox is needed: nothing is contacted.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness

HEADER = ["NAME", "KIND", "METHOD", "PATH", "SCOPE", "TITLE"]


def run(*args):
    return subprocess.run([harness.POLLEN_BIN, "catalog", *args], capture_output=True,
                          text=True, timeout=60)


def cells(line):
    return re.split(r"\s{2,}", line.strip())


def detail(text):
    """The "  label  value" lines of a detail as a dict, and the parameter
    table's rows (after its header) as lists of cells."""
    fields, rows, in_table = {}, [], False
    for line in text.splitlines():
        if line.startswith("    "):
            row = cells(line)
            if row[0] == "NAME":
                in_table = True
            elif in_table:
                rows.append(row)
        elif line.startswith("  ") and not line.startswith("  parameters"):
            fields[line[2:17].strip()] = line[18:]
    return fields, rows


class CatalogCliTest(unittest.TestCase):
    def catalog(self, *args, rc=0):
        proc = run(*args, "--catalog", harness.SOURCE_ROOT)
        self.assertEqual(proc.returncode, rc, proc.stderr)
        return proc

    # -- the list -----------------------------------------------------------

    def test_list_has_an_aligned_header_row(self):
        lines = self.catalog().stdout.splitlines()
        self.assertEqual(lines[0].split(), HEADER)
        starts = [lines[0].index(h) for h in HEADER]
        self.assertEqual(starts[0], 0)
        for line in lines[1:]:
            for col, start in enumerate(starts[1:], 1):
                # Each cell starts at its header's offset, after a gap.
                self.assertEqual(line[start - 2:start], "  ", (col, line))
                self.assertNotEqual(line[start], " ", (col, line))
            self.assertEqual(line, line.rstrip(), "trailing spaces")
        rows = [cells(line) for line in lines[1:]]
        kinds = {r[0]: r[1] for r in rows}
        self.assertEqual(len(kinds), len(rows), "a name listed twice")
        self.assertEqual(kinds["contacts.search"], "trigger")
        self.assertEqual(kinds["contacts.create"], "action")
        search = next(r for r in rows if r[0] == "contacts.search")
        self.assertEqual(search[1:5], ["trigger", "POST", "/contacts/search", "contacts.readonly"])
        self.assertEqual(search[5], "Search Contacts")
        delete = next(r for r in rows if r[0] == "contacts.delete")
        self.assertEqual(delete[2:4], ["DELETE", "/contacts/{contactId}"])
        self.assertIn("destructive: needs confirm = yes", delete[5])
        # The 18 of actions/contacts.ini and the 5 contact routes of actions/workflows.ini.
        self.assertEqual(len([r for r in rows if r[0].startswith("contacts.") and
                              r[1] == "action"]), 23)

    def test_list_of_one_kind(self):
        for kind, want in (("triggers", "trigger"), ("actions", "action")):
            lines = self.catalog(kind).stdout.splitlines()
            self.assertEqual(lines[0].split(), HEADER)
            self.assertGreater(len(lines), 1)
            self.assertEqual({cells(line)[1] for line in lines[1:]}, {want}, kind)

    # -- one trigger ----------------------------------------------------------

    def test_trigger_detail(self):
        out = self.catalog("contacts.search").stdout
        self.assertTrue(out.startswith("contacts.search (trigger): Search Contacts\n"), out)
        f, params = detail(out)
        self.assertEqual(f["request"], "POST /contacts/search")
        self.assertTrue(f["version"].startswith("2021-07-28"), f)
        self.assertEqual(f["scope"], "contacts.readonly")
        self.assertEqual(f["spec"], "apps/contacts.json, operationId search-contacts-advanced")
        self.assertRegex(f["defined at"], r"triggers/contacts\.ini:\d+$")
        self.assertEqual(f["resource"], "contact")
        self.assertEqual(f["records"], "contacts (an array of records)")
        self.assertEqual(f["id field"], "id")
        self.assertEqual(f["updated field"], "dateUpdated")
        self.assertEqual(f["volatile"], "searchAfter")
        # The paging lines come from the poller's own paging table.
        self.assertEqual(f["pagination"], "search_after")
        self.assertTrue(f["page size"].startswith("500 (at most 500"), f)  # the default is the maximum
        self.assertTrue(f["page size"].endswith("sent as body pageLimit"), f)
        self.assertEqual(f["first page"], "body page = 1")
        self.assertEqual(f["cursor"], "body searchAfter from the last record's searchAfter")
        self.assertEqual(f["total"], "total")
        self.assertEqual(f["confirm_delete"], "/contacts/{id}")
        self.assertEqual(f["for_each"], "no")
        self.assertEqual(params, [
            ["query", "body", "string", "optional", "-"],
            ["filters", "body", "json", "optional", "-"],
            ["locationId", "body", "string", "fixed", "{location}: the location's id"],
            ["sort", "body", "json", "fixed", '[{"field":"dateAdded","direction":"asc"}]'],
        ])

    def test_fan_out_and_single_trigger_details(self):
        f, params = detail(self.catalog("contacts.tasks").stdout)
        self.assertEqual(f["pagination"], "none")
        self.assertEqual(f["paging"], "one request returns every record")
        self.assertNotIn("page size", f)
        self.assertEqual(f["updated field"], "none: changes are found by hashing the record")
        self.assertIn("contact records feed contactId", f["for_each"])
        self.assertEqual(params, [["contactId", "path", "string", "required",
                                   "or fed by for_each"]])
        f, params = detail(self.catalog("contacts.duplicate").stdout)
        self.assertEqual(f["records"], "contact (one record)")
        self.assertEqual(f["require_one"], "email number (at least one of them)")
        self.assertIn(["email", "query", "string", "optional", "-"], params)
        f, _ = detail(self.catalog("contacts.list").stdout)
        self.assertEqual(f["pagination"], "start_after")
        self.assertTrue(f["page size"].startswith("100 (at most 100"), f)
        self.assertTrue(f["page size"].endswith("sent as query limit"), f)
        self.assertEqual(f["cursor"], "query startAfter from the response's meta.startAfter")
        self.assertEqual(f["cursor id"], "query startAfterId from the response's meta.startAfterId")
        self.assertEqual(f["total"], "meta.total")
        f, _ = detail(self.catalog("businesses.list").stdout)
        self.assertEqual(f["skip"], "query skip = records already read")

    # -- one action -------------------------------------------------------------

    def test_action_detail(self):
        out = self.catalog("contacts.delete").stdout
        self.assertTrue(out.startswith("contacts.delete (action): Delete Contact\n"), out)
        f, params = detail(out)
        self.assertEqual(f["request"], "DELETE /contacts/{contactId}")
        self.assertEqual(f["scope"], "contacts.write")
        self.assertEqual(f["success"], "200")
        self.assertEqual(f["result"], "none")
        self.assertEqual(f["target"], "contactId (the contact it acts on)")
        self.assertTrue(f["idempotent"].startswith("yes"), f)
        self.assertTrue(f["destructive"].startswith("yes: a [rule] must say confirm = yes"), f)
        self.assertTrue(f["gone_ok"].startswith("yes"), f)
        self.assertEqual(params, [["contactId", "path", "string", "required", "-"]])

        f, params = detail(self.catalog("contacts.tasks.create").stdout)
        self.assertEqual(f["request"], "POST /contacts/{contactId}/tasks")
        self.assertEqual(f["success"], "201")
        self.assertEqual(f["result"], "task")
        self.assertTrue(f["idempotent"].startswith("no"), f)
        self.assertEqual(f["destructive"], "no")
        self.assertEqual(f["gone_ok"], "no")
        by_name = {p[0]: p for p in params}
        self.assertEqual(by_name["contactId"], ["contactId", "path", "string", "required", "-"])
        self.assertEqual(by_name["title"], ["title", "body", "string", "required", "-"])
        self.assertEqual(by_name["completed"], ["completed", "body", "boolean", "required", "-"])
        self.assertEqual(by_name["body"], ["body", "body", "string", "optional", "-"])

        f, params = detail(self.catalog("contacts.create").stdout)
        self.assertEqual(f["target"], "a new contact")
        self.assertIn(["tags", "body", "string_list", "optional", "-"], params)
        self.assertIn(["locationId", "body", "string", "fixed", "{location}: the location's id"],
                      params)
        f, _ = detail(self.catalog("contacts.campaigns.add").stdout)
        self.assertEqual(f["body"], "{} (empty_body)")

    def test_trigger_and_action_of_one_name(self):
        """A copy of the catalog with an action also named contacts.search."""
        tmp = tempfile.mkdtemp(prefix="pollen-catalog-")
        try:
            for kind in ("triggers", "actions"):
                shutil.copytree(os.path.join(harness.SOURCE_ROOT, kind), os.path.join(tmp, kind))
            with open(os.path.join(harness.SOURCE_ROOT, "actions", "contacts.ini")) as f:
                text = f.read()
            find = re.search(r"^\[contacts\.find\]\n(?:[^\[\n].*\n|\n)*", text, re.M).group(0)
            with open(os.path.join(tmp, "actions", "zz.ini"), "w") as f:
                f.write(find.replace("[contacts.find]", "[contacts.search]"))
            proc = run("contacts.search", "--catalog", tmp)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertIn("contacts.search (trigger): Search Contacts\n", proc.stdout)
            self.assertIn("\n\ncontacts.search (action): Find Contact\n", proc.stdout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- unknown names ----------------------------------------------------------

    def test_unknown_name(self):
        proc = self.catalog("contacts.serch", rc=2)
        self.assertEqual(proc.stdout, "")
        self.assertEqual(proc.stderr.strip(),
                         "pollen catalog: no trigger or action named 'contacts.serch'; did you "
                         "mean 'contacts.search'? (`pollen catalog` lists them)")
        proc = self.catalog("contacts.tags.ad", rc=2)
        self.assertIn("did you mean 'contacts.tags.add'?", proc.stderr)
        proc = self.catalog("zzz", rc=2)
        self.assertEqual(proc.stdout, "")
        self.assertIn("no trigger or action named 'zzz'", proc.stderr)
        self.assertNotIn("did you mean", proc.stderr)
        proc = self.catalog("contacts.search", "extra", rc=2)
        self.assertIn("unexpected argument 'extra'", proc.stderr)


if __name__ == "__main__":
    harness.main()
