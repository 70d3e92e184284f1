"""`pollen --version`: the version, the build's features (failpoints,
sanitizers, the compiled-in catalog directory) and the libraries' versions,
checked against what meson configured and found for this build directory
(its meson-info), so the report cannot drift from the build."""
import json
import os
import subprocess
import unittest

import harness

BUILD = os.path.dirname(os.path.abspath(harness.POLLEN_BIN))


def meson_info(name):
    with open(os.path.join(BUILD, "meson-info", f"intro-{name}.json")) as f:
        return json.load(f)


class VersionTest(unittest.TestCase):
    def report(self, *args):
        proc = subprocess.run([harness.POLLEN_BIN, *args], capture_output=True, text=True,
                              timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stderr, "")
        lines = proc.stdout.splitlines()
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(" ")
            self.assertRegex(name, r"^[A-Za-z]+$", line)
            self.assertNotIn(name, fields, "one line per name")
            fields[name] = value
        return lines[0], fields

    def test_features_and_libraries_match_the_build(self):
        first, fields = self.report("--version")
        project = meson_info("projectinfo")
        self.assertEqual(first, "pollen " + project["version"])
        options = {o["name"]: o["value"] for o in meson_info("buildoptions")}
        self.assertEqual(fields["failpoints"], "on" if options["failpoints"] else "off")
        self.assertEqual(fields["sanitizers"], options["b_sanitize"])
        catalog = options["catalog_dir"] or harness.SOURCE_ROOT
        self.assertEqual(fields["catalog"], catalog)
        self.assertTrue(os.path.isdir(os.path.join(fields["catalog"], "triggers")), fields)
        found = {d["name"]: d.get("version") for d in meson_info("dependencies")}
        names = {"libuv": "libuv", "libcurl": "libcurl", "cJSON": "libcjson", "LMDB": "lmdb",
                 "inih": "inih", "xxHash": "libxxhash", "libcrypto": "libcrypto"}
        for shown, dep in names.items():
            self.assertIn(shown, fields)
            self.assertRegex(fields[shown], r"\d", shown)
            version = found.get(dep)
            if version and version != "unknown":
                # The runtime version is the build's unless the library was upgraded since.
                self.assertIn(version, fields[shown], shown)
        self.assertIn("(build time)", fields["inih"])

    def test_version_alias_and_write_errors(self):
        self.assertEqual(self.report("version"), self.report("--version"))
        with open("/dev/full", "w") as full:
            proc = subprocess.run([harness.POLLEN_BIN, "--version"], stdout=full,
                                  stderr=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("cannot write the output", proc.stderr)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    raise SystemExit(0 if result.wasSuccessful() else 1)
