#!/usr/bin/env python3
"""Checks that src/ names no HighLevel resource or record field: those facts
are data in the catalog (triggers/, actions/, resources/), so adding an API
category needs no C. Prints one line per hit, FILE:LINE, and exits 1 if any.

A name counts as a whole word (so `note_write` or `contact_id` do not match
`note` or `contact`), in code and comments alike. Allowed places:
  - src/ghl/: the HighLevel client layer may name the API's wire fields;
  - src/sources/poll/paging.c: the paging table's default parameter names;
  - the diagnostic label `: note: ` in a message (English, as compilers
    print it; `pollen check` uses it)."""
import os
import re
import sys

ROOT = os.environ.get("SOURCE_ROOT") or os.path.join(os.path.dirname(__file__), "..", "..")
SRC = os.path.join(ROOT, "src")

NAMES = [
    "contact", "contacts", "contactId", "customFields",
    "task", "tasks", "note", "notes", "opportunity", "opportunities",
    "dateUpdated", "dateAdded", "firstNameLowerCase",
    "searchAfter", "startAfter", "startAfterId", "pageLimit",
]
WORD = re.compile(r"\b(" + "|".join(NAMES) + r")\b")

ALLOWED_DIRS = ["ghl"]
ALLOWED_FILES = {
    "sources/poll/paging.c",
}


# Text that uses a listed word in its English sense, removed before matching.
ENGLISH = re.compile(r": note: ")


def allowed(rel):
    if rel in ALLOWED_FILES:
        return True
    return any(rel == d or rel.startswith(d + "/") for d in ALLOWED_DIRS)


def main():
    hits = []
    nfiles = 0
    for dirpath, _, names in os.walk(SRC):
        for n in sorted(names):
            if not n.endswith((".c", ".h")):
                continue
            rel = os.path.relpath(os.path.join(dirpath, n), SRC)
            if allowed(rel):
                continue
            nfiles += 1
            with open(os.path.join(SRC, rel), encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    m = WORD.search(ENGLISH.sub(" ", line))
                    if m:
                        hits.append(f"src/{rel}:{lineno}: names '{m.group(1)}': {line.strip()}")
    for h in sorted(hits):
        print(h)
    print(f"{nfiles} files checked, {len(hits)} HighLevel names outside src/ghl/ and the "
          f"paging defaults (move them to the catalog, or reword with neutral examples)")
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
