#!/usr/bin/env python3
"""Checks the layering of src/: a file includes headers of its own folder and
of lower layers only, never of a layer above it.

    core < expr, net, store < ghl < config < sources, sinks < engine < cmd < main

Also checks that every .c under src/ is named in its folder's meson.build (the
build lists sources explicitly; a file it does not list would be dead code).
Prints one line per violation, FILE:LINE, and exits 1 if there are any."""
import os
import re
import sys

ROOT = os.environ.get("SOURCE_ROOT") or os.path.join(os.path.dirname(__file__), "..", "..")
SRC = os.path.join(ROOT, "src")

# Folder (relative to src/) -> rank. Equal ranks may not include each other.
RANK = {
    "core": 0,
    "expr": 1, "net": 1, "store": 1,
    "ghl": 2,
    "config": 3,
    "sources/poll": 4, "sinks": 4,
    ".": 5,          # engine.c, engine.h
    "cmd": 6,
}
MAIN = "main.c"      # on top of everything


def folder_of(rel):
    d = os.path.dirname(rel)
    return d if d else "."


def main():
    headers = {}     # header basename -> folder
    files = []
    for dirpath, _, names in os.walk(SRC):
        for n in names:
            if n.endswith((".c", ".h")):
                rel = os.path.relpath(os.path.join(dirpath, n), SRC)
                files.append(rel)
                if n.endswith(".h"):
                    if n in headers:
                        print(f"src/{rel}: header name also in src/{headers[n]}/ (includes are by basename)")
                        return 1
                    headers[n] = folder_of(rel)
    problems = []
    for rel in sorted(files):
        folder = folder_of(rel)
        if rel != MAIN and folder not in RANK:
            problems.append(f"src/{rel}: folder '{folder}' has no layer in tests/lint/layers.py")
            continue
        mine = RANK.get(folder, 99) if rel != MAIN else 99
        with open(os.path.join(SRC, rel), encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not m:
                    continue
                target = headers.get(os.path.basename(m.group(1)))
                if target is None:
                    problems.append(f"src/{rel}:{lineno}: includes unknown header {m.group(1)}")
                    continue
                if target == folder:
                    continue
                if RANK[target] >= mine:
                    problems.append(f"src/{rel}:{lineno}: {folder} (layer {mine}) includes "
                                    f"{target}/{m.group(1)} (layer {RANK[target]})")
    for rel in files:
        if not rel.endswith(".c") or rel == MAIN:
            continue
        build = os.path.join(SRC, folder_of(rel), "meson.build")
        text = open(build, encoding="utf-8").read() if os.path.exists(build) else ""
        if f"'{os.path.basename(rel)}'" not in text:
            problems.append(f"src/{rel}: not listed in src/{folder_of(rel)}/meson.build")
    for p in problems:
        print(p)
    print(f"{len(files)} files checked, {len(problems)} layering problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
